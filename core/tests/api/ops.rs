//! Health, metrics, request ids, security headers, the job queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kontor::jobs::{self, worker, NewJob};
use reqwest::{header, Method, StatusCode};
use serde_json::json;

use crate::both;

both!(
    health_and_readiness_report_version_database_and_queue,
    |app| {
        let (status, live) = app.call(Method::GET, "/health", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(live, json!({"status": "ok", "version": kontor::VERSION}));
        let now = app.state.now_ms();
        jobs::enqueue(
            app.state.db(),
            &NewJob::new("test.noop", json!({}), now),
            now,
        )
        .await
        .unwrap();
        let (status, ready) = app.call(Method::GET, "/health/ready", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ready["checks"]["database"], true);
        assert_eq!(ready["checks"]["migrations"], true);
        assert_eq!(ready["checks"]["job_queue_depth"], 1);
    }
);

both!(metrics_count_requests_by_route_pattern, |app| {
    let id = app
        .customer(&app.owner, json!({"company": "Metric AG"}))
        .await;
    app.call(
        Method::GET,
        &format!("/api/v1/customers/{id}"),
        Some(&app.owner),
        None,
    )
    .await;
    let text = app
        .raw(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"kontor_http_requests_total{method="GET",route="/api/v1/customers/{id}",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("kontor_http_request_duration_seconds_bucket"));
    assert!(text.contains("kontor_job_queue_depth 0"));
    assert!(!text.contains(&id), "ids never become labels");
});

both!(responses_carry_request_id_and_security_headers, |app| {
    let res = app
        .raw(Method::GET, "/health", None)
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = app
        .raw(Method::GET, "/api/v1/customers", Some(&app.owner))
        .send()
        .await
        .unwrap();
    let h = res.headers();
    assert!(h.get("x-request-id").is_some());
    assert!(h[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(
        h[header::REFERRER_POLICY],
        "strict-origin-when-cross-origin"
    );
});

both!(
    jobs_retry_with_backoff_then_die_and_successes_complete,
    |app| {
        let db = app.state.db().clone();
        let clock: kontor::clock::SharedClock = app.clock.clone();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut handlers = worker::Handlers::default();
        let c = calls.clone();
        handlers.register("test.flaky", move |job| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                Err(format!("attempt {} failed", job.attempts))
            }
        });
        handlers.register("test.ok", |_| async { Ok(()) });
        handlers.register("test.panics", |_| async { panic!("boom") });
        let now = app.state.now_ms();
        let mut flaky = NewJob::new("test.flaky", json!({}), now);
        flaky.max_attempts = 3;
        let flaky_id = jobs::enqueue(&db, &flaky, now).await.unwrap();
        let ok_id = jobs::enqueue(&db, &NewJob::new("test.ok", json!({}), now), now)
            .await
            .unwrap();
        let mut panics = NewJob::new("test.panics", json!({}), now);
        panics.max_attempts = 1;
        let panic_id = jobs::enqueue(&db, &panics, now).await.unwrap();

        while worker::run_once(&db, &clock, &handlers, "w1")
            .await
            .unwrap()
        {}
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the retry waits for its backoff"
        );
        assert_eq!(
            jobs::status(&db, &ok_id).await.unwrap().unwrap().status,
            "done"
        );
        let p = jobs::status(&db, &panic_id).await.unwrap().unwrap();
        assert_eq!(p.status, "dead");
        assert!(p.last_error.unwrap().contains("panicked"));
        let f = jobs::status(&db, &flaky_id).await.unwrap().unwrap();
        assert_eq!((f.status.as_str(), f.attempts), ("queued", 1));

        for _ in 0..2 {
            app.clock.advance(time::Duration::hours(2));
            while worker::run_once(&db, &clock, &handlers, "w1")
                .await
                .unwrap()
            {}
        }
        let f = jobs::status(&db, &flaky_id).await.unwrap().unwrap();
        assert_eq!((f.status.as_str(), f.attempts), ("dead", 3));
        assert_eq!(f.last_error.as_deref(), Some("attempt 3 failed"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
);

both!(
    a_job_whose_worker_died_is_taken_over_after_its_lease,
    |app| {
        let db = app.state.db().clone();
        let now = app.state.now_ms();
        let id = jobs::enqueue(&db, &NewJob::new("test.ok", json!({}), now), now)
            .await
            .unwrap();
        let claimed = jobs::claim(&db, "dead-worker", now).await.unwrap().unwrap();
        assert_eq!(claimed.id, id);
        assert!(
            jobs::claim(&db, "w2", now).await.unwrap().is_none(),
            "a leased job is not claimed twice"
        );
        let later = now + jobs::LEASE_MS + 1;
        let again = jobs::claim(&db, "w2", later).await.unwrap().unwrap();
        assert_eq!((again.id, again.attempts), (id, 2));
    }
);

both!(concurrent_workers_never_run_the_same_job_twice, |app| {
    let db = app.state.db().clone();
    let now = app.state.now_ms();
    for _ in 0..40 {
        jobs::enqueue(&db, &NewJob::new("test.ok", json!({}), now), now)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(job) = jobs::claim(&db, &format!("w{w}"), now).await.unwrap() {
                mine.push(job.id.clone());
                jobs::complete(&db, &job.id, now).await.unwrap();
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(all.len(), 40);
    assert_eq!(unique.len(), 40);
});
