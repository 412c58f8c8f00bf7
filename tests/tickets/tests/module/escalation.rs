//! The `escalate` job: each breach reported exactly once — one
//! `tickets.sla.breached` event, one `sla_breached` e-mail — however often
//! and however concurrently the job runs; the update timer can breach again
//! in a later exchange.

use serde_json::{json, Value};

use crate::common::*;

/// The `timer`/`due_at` of every breach event so far.
async fn breaches(h: &kontor_test::Harness) -> Vec<(String, i64)> {
    events(h, "tickets.sla.breached")
        .await
        .iter()
        .map(|e| {
            (
                e["timer"].as_str().unwrap().to_string(),
                e["due_at"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Run the job `n` times one after the other, then twice at once, then
/// once more through the host's scheduler.
async fn escalate_often(h: &kontor_test::Harness, n: usize) {
    for _ in 0..n {
        assert_eq!(h.run_job("escalate").await, Ok(()));
    }
    let (a, b) = futures::join!(h.run_job("escalate"), h.run_job("escalate"));
    assert_eq!((a, b), (Ok(()), Ok(())));
    h.advance(kontor_test::time::Duration::minutes(1));
    assert!(h.run_due_jobs().await >= 1, "the escalate schedule is due");
}

#[tokio::test]
async fn each_breach_is_reported_once_and_a_later_exchange_can_breach_the_update_timer_again() {
    let h = desk_at(at("2026-03-02T10:00:00+01:00")).await;
    berlin_office(&h, &[]).await;
    default_policy(
        &h,
        json!({ "normal": { "first_response": 60, "update": 120, "resolution": 2400 } }),
    )
    .await;
    let r = h
        .put_json(
            "/api/v1/tickets/departments/support",
            &json!({ "name": "Support", "email": "support@desk.example", "assignment": "manual" }),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text());
    let c = customer(&h, "Acme AG", "it@acme.example").await;
    let portal = h.customer_user(&c).await;
    // The scheduler counts the job's schedule from the first time it looks.
    h.run_due_jobs().await;

    let t = open(h.client(), json!({ "customer_id": c })).await;
    let id = t["id"].as_str().unwrap().to_string();
    assert_due(&t, "first_response", "2026-03-02T11:00:00+01:00");
    assert_due(&t, "update", "2026-03-02T12:00:00+01:00");

    // Before the due time: nothing to report.
    h.set_now(at("2026-03-02T10:59:00+01:00"));
    assert_eq!(h.run_job("escalate").await, Ok(()));
    assert_eq!(breaches(&h).await, vec![]);

    // Past it: the first response is breached, reported once.
    h.set_now(at("2026-03-02T11:05:00+01:00"));
    escalate_often(&h, 3).await;
    let first = (
        "first_response".to_string(),
        ms("2026-03-02T11:00:00+01:00"),
    );
    assert_eq!(breaches(&h).await, vec![first.clone()]);
    let event = &events(&h, "tickets.sla.breached").await[0];
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["number"], "T-2026-000001");
    assert_eq!(event["customer_id"], c.as_str());
    let mail = mails(&h, "sla_breached").await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["to"], json!(["support@desk.example"]));
    assert!(
        mail[0]["subject"]
            .as_str()
            .unwrap()
            .contains("SLA breached: first response"),
        "{}",
        mail[0]["subject"]
    );
    let t = ticket(&h, &id).await;
    assert_eq!(t["breached"], json!(["first_response"]));
    let queue = h.get("/api/v1/tickets/tickets?queue=breached").await;
    assert_eq!(ids(&queue.json()), vec![id.clone()], "{}", queue.text());

    // Staff answer late (the update timer of the opening is met in time:
    // due 12:00); then the customer writes: a new exchange, 2 h to answer.
    h.set_now(at("2026-03-02T11:30:00+01:00"));
    let t = reply(h.client(), &id, "We are looking into it.").await;
    assert_eq!(
        t["sla"]["first_response"]["state"], "met_late",
        "{}",
        t["sla"]
    );
    assert_eq!(t["sla"]["update"]["state"], "met", "{}", t["sla"]);
    h.set_now(at("2026-03-02T12:00:00+01:00"));
    reply(&portal, &id, "Any news?").await;
    h.set_now(at("2026-03-02T14:10:00+01:00"));
    escalate_often(&h, 3).await;
    let second = ("update".to_string(), ms("2026-03-02T14:00:00+01:00"));
    assert_eq!(breaches(&h).await, vec![first.clone(), second.clone()]);

    // Answered, asked again, missed again: a second update breach.
    h.set_now(at("2026-03-02T14:20:00+01:00"));
    reply(h.client(), &id, "The gateway is being replaced.").await;
    h.set_now(at("2026-03-02T15:00:00+01:00"));
    reply(&portal, &id, "Still down.").await;
    h.set_now(at("2026-03-02T17:30:00+01:00"));
    escalate_often(&h, 2).await;
    let third = ("update".to_string(), ms("2026-03-02T17:00:00+01:00"));
    assert_eq!(breaches(&h).await, vec![first, second, third]);
    assert_eq!(mails(&h, "sla_breached").await.len(), 3);

    // Days later nothing new: resolution (40 h) is not due until Friday.
    h.set_now(at("2026-03-04T17:00:00+01:00"));
    escalate_often(&h, 2).await;
    assert_eq!(breaches(&h).await.len(), 3);
}

/// The ids of a page of tickets.
pub fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}
