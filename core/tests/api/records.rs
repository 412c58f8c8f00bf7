//! The record store behind the `records` import of modules, called directly
//! as the module host calls it: versions and optimistic concurrency,
//! refusals, quotas, indexed queries with keyset paging, isolation between
//! modules and tenants, atomic batches, gap-free sequences, purge — and
//! that queries run on real indexes on both engines.

use std::collections::BTreeSet;

use kontor::db::{Backend, Db};
use kontor::ids::TenantId;
use kontor::modules::manifest::{CollectionDecl, IndexDecl, IndexKind};
use kontor::modules::records::{self, Quota, RecordScope};
use kontor_runtime::host::{BatchOp, Condition, Op, Query, RecordError};
use serde_json::{json, Value};

use crate::both;
use crate::common::{Session, TestApp};

const NOW: i64 = 1_772_442_000_000;

/// The tenant of a signed-in user.
pub(crate) async fn tenant_of(app: &TestApp, who: &Session) -> TenantId {
    let id: String = sqlx::query_scalar("SELECT tenant_id FROM users WHERE id = $1")
        .bind(&who.user_id)
        .fetch_one(app.state.db().pool())
        .await
        .unwrap();
    TenantId::from_trusted(id)
}

fn index(field: &str, kind: IndexKind) -> IndexDecl {
    IndexDecl {
        field: field.into(),
        kind,
    }
}

/// `tickets` with two string indexes (s1, s2) and a number index (n1);
/// `notes` with none.
fn collections() -> Vec<CollectionDecl> {
    vec![
        CollectionDecl {
            name: "tickets".into(),
            indexes: vec![
                index("status", IndexKind::String),
                index("subject", IndexKind::String),
                index("priority", IndexKind::Number),
            ],
        },
        CollectionDecl {
            name: "notes".into(),
            indexes: vec![],
        },
    ]
}

fn scope<'a>(tenant: &'a TenantId, module: &'a str, cols: &'a [CollectionDecl]) -> RecordScope<'a> {
    RecordScope {
        tenant,
        module_id: module,
        collections: cols,
        quota: Quota::default(),
    }
}

fn cond(field: &str, op: Op, value: Value) -> Condition {
    Condition {
        field: field.into(),
        op,
        value: value.to_string(),
    }
}

fn query(
    conditions: Vec<Condition>,
    order_by: Option<&str>,
    descending: bool,
    limit: u32,
) -> Query {
    Query {
        collection: "tickets".into(),
        conditions,
        order_by: order_by.map(str::to_string),
        descending,
        limit,
        cursor: None,
    }
}

async fn put(db: &Db, s: &RecordScope<'_>, id: &str, data: Value) -> u64 {
    records::put(db, s, "tickets", id, &data.to_string(), None, NOW)
        .await
        .unwrap()
        .version
}

async fn ids(db: &Db, s: &RecordScope<'_>, q: Query) -> Vec<String> {
    records::query(db, s, &q)
        .await
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Every id of a query, page by page; panics on a page over `limit`.
async fn all_pages(db: &Db, s: &RecordScope<'_>, mut q: Query) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let page = records::query(db, s, &q).await.unwrap();
        assert!(page.records.len() <= q.limit as usize);
        pages += 1;
        out.extend(page.records.into_iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return (out, pages),
        }
        assert!(pages < 100, "paging does not end");
    }
}

both!(
    put_creates_at_version_one_and_each_write_increments,
    |app| {
        let db = app.state.db();
        let t = tenant_of(&app, &app.owner).await;
        let cols = collections();
        let s = scope(&t, "alpha", &cols);

        let r1 = records::put(db, &s, "tickets", "t1", r#"{"status":"open"}"#, None, NOW)
            .await
            .unwrap();
        assert_eq!((r1.id.as_str(), r1.version), ("t1", 1));
        assert_eq!((r1.created_at, r1.updated_at), (NOW, NOW));

        let r2 = records::put(
            db,
            &s,
            "tickets",
            "t1",
            r#"{"status":"closed"}"#,
            None,
            NOW + 5,
        )
        .await
        .unwrap();
        assert_eq!(r2.version, 2);
        assert_eq!((r2.created_at, r2.updated_at), (NOW, NOW + 5));

        let got = records::get(db, &s, "tickets", "t1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, r2);
        assert_eq!(got.data, r#"{"status":"closed"}"#);
        assert_eq!(records::get(db, &s, "tickets", "t2").await.unwrap(), None);
        // Same id in another collection of the module is another record.
        assert_eq!(records::get(db, &s, "notes", "t1").await.unwrap(), None);
    }
);

both!(expected_version_makes_writes_conditional, |app| {
    let db = app.state.db();
    let t = tenant_of(&app, &app.owner).await;
    let cols = collections();
    let s = scope(&t, "alpha", &cols);
    let write = |id: &'static str, data: &'static str, expected: Option<u64>| {
        let s = &s;
        async move { records::put(db, s, "tickets", id, data, expected, NOW).await }
    };

    // Some(0): create only.
    assert_eq!(write("t1", r#"{"v":1}"#, Some(0)).await.unwrap().version, 1);
    assert_eq!(
        write("t1", r#"{"v":"again"}"#, Some(0)).await,
        Err(RecordError::Conflict(1))
    );
    // Right version: written; stale version: conflict with the current one.
    assert_eq!(write("t1", r#"{"v":2}"#, Some(1)).await.unwrap().version, 2);
    assert_eq!(
        write("t1", r#"{"v":"stale"}"#, Some(1)).await,
        Err(RecordError::Conflict(2))
    );
    // Expecting a version of a record that does not exist: conflict with 0.
    assert_eq!(
        write("t9", r#"{"v":1}"#, Some(3)).await,
        Err(RecordError::Conflict(0))
    );
    assert_eq!(records::get(db, &s, "tickets", "t9").await.unwrap(), None);
    // Refused writes changed nothing.
    let got = records::get(db, &s, "tickets", "t1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.version, got.data.as_str()), (2, r#"{"v":2}"#));
});

both!(delete_with_and_without_expected_version, |app| {
    let db = app.state.db();
    let t = tenant_of(&app, &app.owner).await;
    let cols = collections();
    let s = scope(&t, "alpha", &cols);
    put(db, &s, "t1", json!({})).await;
    put(db, &s, "t1", json!({})).await;
    put(db, &s, "t2", json!({})).await;

    assert_eq!(
        records::delete(db, &s, "tickets", "t1", Some(1)).await,
        Err(RecordError::Conflict(2))
    );
    assert!(records::get(db, &s, "tickets", "t1")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        records::delete(db, &s, "tickets", "t1", Some(0)).await,
        Err(RecordError::Conflict(2))
    );
    assert_eq!(
        records::delete(db, &s, "tickets", "t1", Some(2)).await,
        Ok(true)
    );
    assert_eq!(
        records::delete(db, &s, "tickets", "t2", None).await,
        Ok(true)
    );
    assert_eq!(records::get(db, &s, "tickets", "t1").await.unwrap(), None);
    assert_eq!(records::get(db, &s, "tickets", "t2").await.unwrap(), None);
    // Deleting what is not there: false, or a conflict when a version was expected.
    assert_eq!(
        records::delete(db, &s, "tickets", "t1", None).await,
        Ok(false)
    );
    assert_eq!(
        records::delete(db, &s, "tickets", "t1", Some(0)).await,
        Ok(false)
    );
    assert_eq!(
        records::delete(db, &s, "tickets", "t1", Some(2)).await,
        Err(RecordError::Conflict(0))
    );
    // A deleted id starts again at version 1.
    assert_eq!(put(db, &s, "t1", json!({})).await, 1);
});

both!(bad_input_is_refused_with_the_reason, |app| {
    let db = app.state.db();
    let t = tenant_of(&app, &app.owner).await;
    let cols = collections();
    let s = scope(&t, "alpha", &cols);
    fn invalid<T: std::fmt::Debug>(r: Result<T, RecordError>, needle: &str) {
        match r {
            Err(RecordError::Invalid(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
            other => panic!("expected Invalid({needle}), got {other:?}"),
        }
    }
    let unknown = RecordError::UnknownCollection("secrets".into());

    // Collections not in the manifest.
    assert_eq!(
        records::get(db, &s, "secrets", "x").await,
        Err(unknown.clone())
    );
    assert_eq!(
        records::put(db, &s, "secrets", "x", "{}", None, NOW).await,
        Err(unknown.clone())
    );
    assert_eq!(
        records::delete(db, &s, "secrets", "x", None).await,
        Err(unknown.clone())
    );
    let mut q = query(vec![], None, false, 10);
    q.collection = "secrets".into();
    assert_eq!(records::query(db, &s, &q).await.map(|_| ()), Err(unknown));

    // Data must be a JSON object.
    for data in ["[1, 2]", "\"text\"", "42", "null", "{not json"] {
        let r = records::put(db, &s, "tickets", "x", data, None, NOW).await;
        assert!(matches!(r, Err(RecordError::Invalid(_))), "{data}: {r:?}");
    }
    invalid(
        records::put(db, &s, "tickets", "x", "[]", None, NOW).await,
        "JSON object",
    );

    // At most max_record_bytes.
    let small = RecordScope {
        quota: Quota {
            max_records: 10,
            max_record_bytes: 100,
        },
        ..s
    };
    let big = json!({ "text": "x".repeat(100) }).to_string();
    invalid(
        records::put(db, &small, "tickets", "x", &big, None, NOW).await,
        "at most 100 bytes",
    );
    let fits = json!({ "text": "x".repeat(80) }).to_string();
    assert!(records::put(db, &small, "tickets", "x", &fits, None, NOW)
        .await
        .is_ok());

    // Ids: 1 to 128 characters, no control characters.
    invalid(
        records::put(db, &s, "tickets", "", "{}", None, NOW).await,
        "1 to 128",
    );
    let long_id = "é".repeat(129);
    invalid(
        records::put(db, &s, "tickets", &long_id, "{}", None, NOW).await,
        "1 to 128",
    );
    assert!(
        records::put(db, &s, "tickets", &"é".repeat(128), "{}", None, NOW)
            .await
            .is_ok()
    );
    invalid(
        records::put(db, &s, "tickets", "a\nb", "{}", None, NOW).await,
        "control",
    );
    invalid(
        records::get(db, &s, "tickets", "a\u{0}b").await.map(|_| ()),
        "control",
    );

    // An indexed string too long to index.
    let long_status = json!({ "status": "s".repeat(2000) }).to_string();
    invalid(
        records::put(db, &s, "tickets", "y", &long_status, None, NOW).await,
        "`status`",
    );
    // Nothing refused was stored.
    assert_eq!(records::get(db, &s, "tickets", "y").await.unwrap(), None);
});

both!(quota_refuses_the_record_past_the_limit, |app| {
    let db = app.state.db();
    let t = tenant_of(&app, &app.owner).await;
    let cols = collections();
    let s = RecordScope {
        quota: Quota {
            max_records: 3,
            ..Quota::default()
        },
        ..scope(&t, "alpha", &cols)
    };
    for id in ["a", "b"] {
        put(db, &s, id, json!({})).await;
    }
    // The limit counts every collection of the module.
    records::put(db, &s, "notes", "c", "{}", None, NOW)
        .await
        .unwrap();
    match records::put(db, &s, "tickets", "d", "{}", None, NOW).await {
        Err(RecordError::QuotaExceeded(m)) => {
            assert!(
                m.contains("`alpha`") && m.contains("at most 3 records"),
                "{m}"
            )
        }
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert_eq!(records::get(db, &s, "tickets", "d").await.unwrap(), None);
    // Updates do not count; deleting makes room.
    assert_eq!(put(db, &s, "a", json!({"x": 1})).await, 2);
    records::delete(db, &s, "tickets", "b", None).await.unwrap();
    put(db, &s, "d", json!({})).await;
    assert!(matches!(
        records::put(db, &s, "tickets", "e", "{}", None, NOW).await,
        Err(RecordError::QuotaExceeded(_))
    ));
    // Another module of the same tenant has its own quota.
    let beta = RecordScope {
        module_id: "beta",
        ..s
    };
    put(db, &beta, "e", json!({})).await;
});

/// 20 tickets: `t00`..`t19`, status open for even numbers, priority = n % 5,
/// subject `subject-{19-n}`; and one without status or priority.
async fn seed_tickets(db: &Db, s: &RecordScope<'_>) {
    for n in 0..20 {
        let status = if n % 2 == 0 { "open" } else { "closed" };
        put(
            db,
            s,
            &format!("t{n:02}"),
            json!({ "status": status, "priority": n % 5, "subject": format!("subject-{:02}", 19 - n) }),
        )
        .await;
    }
    put(
        db,
        s,
        "untyped",
        json!({ "status": 7, "subject": "subject-99" }),
    )
    .await;
}

both!(query_filters_orders_and_limits_on_indexed_fields, |app| {
    let db = app.state.db();
    let t = tenant_of(&app, &app.owner).await;
    let cols = collections();
    let s = scope(&t, "alpha", &cols);
    seed_tickets(db, &s).await;

    // Equality on a string index; by id when no order is given.
    let open = ids(
        db,
        &s,
        query(
            vec![cond("status", Op::Eq, json!("open"))],
            None,
            false,
            100,
        ),
    )
    .await;
    let expected: Vec<String> = (0..20).step_by(2).map(|n| format!("t{n:02}")).collect();
    assert_eq!(open, expected);

    // A range on a number index combined with equality on a string one.
    let r = ids(
        db,
        &s,
        query(
            vec![
                cond("priority", Op::Gte, json!(2)),
                cond("priority", Op::Lt, json!(4)),
                cond("status", Op::Eq, json!("closed")),
            ],
            None,
            false,
            100,
        ),
    )
    .await;
    assert_eq!(r, ["t03", "t07", "t13", "t17"]);
    let gt = ids(
        db,
        &s,
        query(vec![cond("priority", Op::Gt, json!(3.5))], None, false, 100),
    )
    .await;
    assert_eq!(gt, ["t04", "t09", "t14", "t19"]);
    let lte = ids(
        db,
        &s,
        query(
            vec![cond("subject", Op::Lte, json!("subject-02"))],
            None,
            false,
            100,
        ),
    )
    .await;
    assert_eq!(lte, ["t17", "t18", "t19"]);

    // Order by a string index, both ways, with a limit. The record whose
    // `status` is a number holds no value for the string index.
    let by_subject = ids(db, &s, query(vec![], Some("subject"), false, 3)).await;
    assert_eq!(by_subject, ["t19", "t18", "t17"]);
    let by_subject_desc = ids(db, &s, query(vec![], Some("subject"), true, 2)).await;
    assert_eq!(by_subject_desc, ["untyped", "t00"]);
    let by_status = ids(db, &s, query(vec![], Some("status"), false, 100)).await;
    assert_eq!(
        by_status.len(),
        20,
        "the record with a numeric status is left out"
    );

    // Order by a number index: ties broken by id; descending reverses both.
    let by_priority = ids(db, &s, query(vec![], Some("priority"), false, 5)).await;
    assert_eq!(by_priority, ["t00", "t05", "t10", "t15", "t01"]);
    let by_priority_desc = ids(db, &s, query(vec![], Some("priority"), true, 5)).await;
    assert_eq!(by_priority_desc, ["t19", "t14", "t09", "t04", "t18"]);

    // Refusals name the problem.
    let refused = |q: Query, needle: &'static str| {
        let s = &s;
        async move {
            match records::query(db, s, &q).await {
                Err(RecordError::Invalid(m)) => {
                    assert!(m.contains(needle), "{m:?} lacks {needle:?}")
                }
                other => panic!("expected Invalid({needle}), got {other:?}"),
            }
        }
    };
    refused(
        query(vec![cond("title", Op::Eq, json!("x"))], None, false, 10),
        "`title` is not indexed",
    )
    .await;
    refused(query(vec![], Some("title"), false, 10), "`title`").await;
    refused(
        query(vec![cond("status", Op::Eq, json!(1))], None, false, 10),
        "string",
    )
    .await;
    refused(
        query(vec![cond("priority", Op::Eq, json!("1"))], None, false, 10),
        "number",
    )
    .await;
    let mut raw = query(vec![], None, false, 10);
    raw.conditions.push(Condition {
        field: "status".into(),
        op: Op::Eq,
        value: "open".into(),
    });
    refused(raw, "must be JSON").await;
    refused(query(vec![], None, false, 0), "limit").await;
    refused(query(vec![], None, false, 501), "limit").await;
    assert_eq!(ids(db, &s, query(vec![], None, false, 500)).await.len(), 21);
    // `notes` declares no index: nothing to filter on.
    let mut notes = query(vec![cond("status", Op::Eq, json!("open"))], None, false, 10);
    notes.collection = "notes".into();
    refused(notes, "indexed: none").await;
});

both!(cursor_paging_returns_every_record_once_in_order, |app| {
    let db = app.state.db();
    let t = tenant_of(&app, &app.owner).await;
    let cols = collections();
    let s = scope(&t, "alpha", &cols);
    // 23 records with only three priorities: ties straddle the page ends.
    for n in 0..23 {
        put(
            db,
            &s,
            &format!("r{n:02}"),
            json!({ "priority": n % 3, "status": "open" }),
        )
        .await;
    }
    let mut by_priority: Vec<(i64, String)> =
        (0..23).map(|n| (n % 3, format!("r{n:02}"))).collect();
    by_priority.sort();
    let asc: Vec<String> = by_priority.iter().map(|(_, id)| id.clone()).collect();
    let desc: Vec<String> = asc.iter().rev().cloned().collect();

    for (order, descending, expected) in [
        (Some("priority"), false, asc.clone()),
        (Some("priority"), true, desc.clone()),
        (
            None,
            false,
            (0..23).map(|n| format!("r{n:02}")).collect::<Vec<_>>(),
        ),
        (
            None,
            true,
            (0..23).rev().map(|n| format!("r{n:02}")).collect(),
        ),
    ] {
        for limit in [1, 4, 5, 22, 23, 24] {
            let (got, pages) = all_pages(db, &s, query(vec![], order, descending, limit)).await;
            assert_eq!(
                got, expected,
                "order {order:?} desc {descending} limit {limit}"
            );
            let distinct: BTreeSet<&String> = got.iter().collect();
            assert_eq!(distinct.len(), 23);
            assert_eq!(pages, 23usize.div_ceil(limit as usize).max(1));
        }
    }
    // Paging with a condition.
    let (got, _) = all_pages(
        db,
        &s,
        query(
            vec![cond("priority", Op::Gte, json!(1))],
            Some("priority"),
            true,
            4,
        ),
    )
    .await;
    assert_eq!(got, desc[..15].to_vec());

    // A cursor only fits the query it came from.
    let page = records::query(db, &s, &query(vec![], Some("priority"), false, 5))
        .await
        .unwrap();
    let mut other = query(vec![], None, false, 5);
    other.cursor = page.next_cursor.clone();
    assert!(matches!(
        records::query(db, &s, &other).await,
        Err(RecordError::Invalid(_))
    ));
    other.order_by = Some("priority".into());
    other.descending = true;
    assert!(matches!(
        records::query(db, &s, &other).await,
        Err(RecordError::Invalid(_))
    ));
    other.cursor = Some("garbage!".into());
    assert!(matches!(
        records::query(db, &s, &other).await,
        Err(RecordError::Invalid(_))
    ));
});

both!(modules_and_tenants_cannot_see_each_others_records, |app| {
    let db = app.state.db();
    let ta = tenant_of(&app, &app.owner).await;
    let other = app.new_tenant("B").await;
    let tb = tenant_of(&app, &other).await;
    assert_ne!(ta, tb);
    let cols = collections();
    let alpha_a = scope(&ta, "alpha", &cols);
    let beta_a = scope(&ta, "beta", &cols);
    let alpha_b = scope(&tb, "alpha", &cols);

    // Same collection, same id, same indexed values in all three places.
    records::put(
        db,
        &alpha_a,
        "tickets",
        "t1",
        r#"{"status":"open","owner":"alpha/A"}"#,
        None,
        NOW,
    )
    .await
    .unwrap();
    records::put(
        db,
        &alpha_a,
        "tickets",
        "t2",
        r#"{"status":"open","owner":"alpha/A"}"#,
        None,
        NOW,
    )
    .await
    .unwrap();
    records::put(
        db,
        &beta_a,
        "tickets",
        "t1",
        r#"{"status":"open","owner":"beta/A"}"#,
        None,
        NOW,
    )
    .await
    .unwrap();

    // Reads see only their own.
    let owner = |r: Option<kontor_runtime::host::Record>| {
        r.map(|r| serde_json::from_str::<Value>(&r.data).unwrap()["owner"].clone())
    };
    assert_eq!(
        owner(records::get(db, &alpha_a, "tickets", "t1").await.unwrap()),
        Some(json!("alpha/A"))
    );
    assert_eq!(
        owner(records::get(db, &beta_a, "tickets", "t1").await.unwrap()),
        Some(json!("beta/A"))
    );
    assert_eq!(
        records::get(db, &beta_a, "tickets", "t2").await.unwrap(),
        None
    );
    assert_eq!(
        records::get(db, &alpha_b, "tickets", "t1").await.unwrap(),
        None
    );

    let open = || {
        query(
            vec![cond("status", Op::Eq, json!("open"))],
            Some("status"),
            false,
            100,
        )
    };
    assert_eq!(ids(db, &alpha_a, open()).await, ["t1", "t2"]);
    assert_eq!(ids(db, &beta_a, open()).await, ["t1"]);
    assert!(ids(db, &alpha_b, open()).await.is_empty());
    assert!(ids(db, &alpha_b, query(vec![], None, false, 100))
        .await
        .is_empty());

    // Writes and deletes elsewhere do not touch A's alpha records.
    assert_eq!(
        records::put(db, &alpha_b, "tickets", "t1", "{}", Some(0), NOW)
            .await
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        records::delete(db, &beta_a, "tickets", "t2", None).await,
        Ok(false)
    );
    assert_eq!(
        records::delete(db, &alpha_b, "tickets", "t2", Some(1)).await,
        Err(RecordError::Conflict(0))
    );
    let batch = [BatchOp::Delete {
        collection: "tickets".into(),
        id: "t1".into(),
        expected_version: None,
    }];
    records::batch(db, &beta_a, &batch, NOW).await.unwrap();
    let mine = records::get(db, &alpha_a, "tickets", "t1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (mine.version, owner(Some(mine.clone()))),
        (1, Some(json!("alpha/A")))
    );
    assert_eq!(
        ids(db, &alpha_a, query(vec![], None, false, 100)).await,
        ["t1", "t2"]
    );

    // Sequences are per tenant and module too.
    assert_eq!(records::next_sequence(db, &alpha_a, "invoice").await, Ok(1));
    assert_eq!(records::next_sequence(db, &alpha_a, "invoice").await, Ok(2));
    assert_eq!(records::next_sequence(db, &beta_a, "invoice").await, Ok(1));
    assert_eq!(records::next_sequence(db, &alpha_b, "invoice").await, Ok(1));
});

both!(batch_is_all_or_nothing, |app| {
    let db = app.state.db();
    let t = tenant_of(&app, &app.owner).await;
    let cols = collections();
    let s = scope(&t, "alpha", &cols);
    put(db, &s, "a", json!({"n": 1})).await;
    put(db, &s, "b", json!({"n": 1})).await;
    let put_op = |id: &str, data: Value, expected: Option<u64>| BatchOp::Put {
        collection: "tickets".into(),
        id: id.into(),
        data: data.to_string(),
        expected_version: expected,
    };
    let delete_op = |id: &str, expected: Option<u64>| BatchOp::Delete {
        collection: "tickets".into(),
        id: id.into(),
        expected_version: expected,
    };

    // The third operation conflicts: the first two are rolled back.
    let ops = [
        put_op("c", json!({"n": 1}), Some(0)),
        delete_op("b", Some(1)),
        put_op("a", json!({"n": 2}), Some(7)),
    ];
    assert_eq!(
        records::batch(db, &s, &ops, NOW).await,
        Err(RecordError::Conflict(1))
    );
    assert_eq!(records::get(db, &s, "tickets", "c").await.unwrap(), None);
    assert!(records::get(db, &s, "tickets", "b")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        records::get(db, &s, "tickets", "a")
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );

    // An invalid operation is refused before anything runs, naming it.
    let ops = [put_op("c", json!({}), None), put_op("d", json!([1]), None)];
    match records::batch(db, &s, &ops, NOW).await {
        Err(RecordError::Invalid(m)) => assert!(m.starts_with("batch operation 1:"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(records::get(db, &s, "tickets", "c").await.unwrap(), None);

    // All fine: all applied, in order, with per-operation results.
    let ops = [
        put_op("c", json!({"n": 1}), Some(0)),
        put_op("c", json!({"n": 2}), Some(1)),
        delete_op("b", Some(1)),
        put_op("a", json!({"n": 2}), Some(1)),
    ];
    let out = records::batch(db, &s, &ops, NOW).await.unwrap();
    let versions: Vec<Option<u64>> = out.iter().map(|r| r.as_ref().map(|r| r.version)).collect();
    assert_eq!(versions, [Some(1), Some(2), None, Some(2)]);
    assert_eq!(records::get(db, &s, "tickets", "b").await.unwrap(), None);
    assert_eq!(
        records::get(db, &s, "tickets", "c")
            .await
            .unwrap()
            .unwrap()
            .data,
        r#"{"n":2}"#
    );
    assert_eq!(records::batch(db, &s, &[], NOW).await, Ok(vec![]));

    // A batch over the quota is rolled back whole; one that frees as much
    // as it adds past the limit fits (the count is checked at the end).
    let tight = RecordScope {
        quota: Quota {
            max_records: 3,
            ..Quota::default()
        },
        ..s
    };
    let ops = [put_op("x", json!({}), None), put_op("y", json!({}), None)];
    assert!(matches!(
        records::batch(db, &tight, &ops, NOW).await,
        Err(RecordError::QuotaExceeded(_))
    ));
    assert_eq!(records::get(db, &s, "tickets", "x").await.unwrap(), None);
    let ops = [
        put_op("x", json!({}), None),
        put_op("y", json!({}), None),
        delete_op("a", None),
    ];
    records::batch(db, &tight, &ops, NOW).await.unwrap();
});

both!(sequences_are_gap_free_under_concurrency, |app| {
    let db = app.state.db();
    let t = tenant_of(&app, &app.owner).await;
    let cols = collections();
    let s = scope(&t, "alpha", &cols);
    for expected in 1..=3 {
        assert_eq!(
            records::next_sequence(db, &s, "invoice").await,
            Ok(expected)
        );
    }
    assert_eq!(records::next_sequence(db, &s, "offer").await, Ok(1));
    assert!(matches!(
        records::next_sequence(db, &s, "").await,
        Err(RecordError::Invalid(_))
    ));

    let calls = (0..50).map(|_| records::next_sequence(db, &s, "invoice"));
    let mut got: Vec<u64> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (4..=53).collect::<Vec<u64>>());
    assert_eq!(records::next_sequence(db, &s, "invoice").await, Ok(54));
});

both!(concurrent_writes_to_one_record_serialize, |app| {
    let db = app.state.db();
    let t = tenant_of(&app, &app.owner).await;
    let cols = collections();
    let s = scope(&t, "alpha", &cols);

    // 20 unconditional writes racing to create the same new record: each
    // gets its own version.
    let writes = (0..20).map(|n| {
        let data = json!({ "n": n }).to_string();
        let s = &s;
        async move { records::put(db, s, "tickets", "hot", &data, None, NOW).await }
    });
    let mut versions: Vec<u64> = futures::future::join_all(writes)
        .await
        .into_iter()
        .map(|r| r.unwrap().version)
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=20).collect::<Vec<u64>>());

    // 10 writes expecting version 20: exactly one wins.
    let writes = (0..10).map(|_| {
        let s = &s;
        async move { records::put(db, s, "tickets", "hot", "{}", Some(20), NOW).await }
    });
    let results = futures::future::join_all(writes).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| *e == RecordError::Conflict(21)));

    // 10 creates-only racing for one new id: exactly one wins.
    let writes = (0..10).map(|_| {
        let s = &s;
        async move { records::put(db, s, "tickets", "new", "{}", Some(0), NOW).await }
    });
    let results = futures::future::join_all(writes).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    let usage: i64 = sqlx::query_scalar(
        "SELECT records FROM module_record_usage WHERE tenant_id = $1 AND module_id = 'alpha'",
    )
    .bind(t.as_str())
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(usage, 2, "the quota count matches the records");
});

both!(purge_removes_a_modules_data_in_one_or_all_tenants, |app| {
    let db = app.state.db();
    let ta = tenant_of(&app, &app.owner).await;
    let other = app.new_tenant("B").await;
    let tb = tenant_of(&app, &other).await;
    let cols = collections();
    let alpha_a = scope(&ta, "alpha", &cols);
    let alpha_b = scope(&tb, "alpha", &cols);
    let beta_a = scope(&ta, "beta", &cols);
    for s in [&alpha_a, &alpha_b, &beta_a] {
        put(db, s, "t1", json!({"status": "open"})).await;
        put(db, s, "t2", json!({"status": "open"})).await;
        records::next_sequence(db, s, "invoice").await.unwrap();
    }

    assert_eq!(records::purge(db, Some(&ta), "alpha").await.unwrap(), 2);
    assert!(ids(db, &alpha_a, query(vec![], None, false, 10))
        .await
        .is_empty());
    assert_eq!(
        ids(db, &alpha_b, query(vec![], None, false, 10))
            .await
            .len(),
        2
    );
    assert_eq!(records::next_sequence(db, &alpha_a, "invoice").await, Ok(1));

    assert_eq!(records::purge(db, None, "alpha").await.unwrap(), 2);
    assert!(ids(db, &alpha_b, query(vec![], None, false, 10))
        .await
        .is_empty());
    assert_eq!(records::next_sequence(db, &alpha_b, "invoice").await, Ok(1));
    // Other modules keep everything.
    assert_eq!(
        ids(db, &beta_a, query(vec![], None, false, 10)).await,
        ["t1", "t2"]
    );
    assert_eq!(records::next_sequence(db, &beta_a, "invoice").await, Ok(2));
    // The quota count went with the records.
    let tight = RecordScope {
        quota: Quota {
            max_records: 2,
            ..Quota::default()
        },
        ..alpha_b
    };
    put(db, &tight, "x", json!({})).await;
    put(db, &tight, "y", json!({})).await;
});

both!(reindex_refills_slots_after_the_declaration_changes, |app| {
    let db = app.state.db();
    let t = tenant_of(&app, &app.owner).await;
    let v1 = collections();
    let s1 = scope(&t, "alpha", &v1);
    put(
        db,
        &s1,
        "a",
        json!({"status": "open", "subject": "zz", "rank": 2}),
    )
    .await;
    put(
        db,
        &s1,
        "b",
        json!({"status": "closed", "subject": "open", "rank": 1}),
    )
    .await;

    // Version 2 of the module indexes `subject` first and adds `rank`.
    let v2 = vec![CollectionDecl {
        name: "tickets".into(),
        indexes: vec![
            index("subject", IndexKind::String),
            index("status", IndexKind::String),
            index("rank", IndexKind::Number),
        ],
    }];
    let s2 = scope(&t, "alpha", &v2);
    let open = || query(vec![cond("status", Op::Eq, json!("open"))], None, false, 10);
    // Without a reindex the slots still hold the old declaration's values.
    assert_eq!(ids(db, &s2, open()).await, ["b"]);

    let mut tx = db.begin().await.unwrap();
    assert_eq!(records::reindex_tx(&mut tx, "alpha", &v2).await.unwrap(), 2);
    tx.commit().await.unwrap();
    assert_eq!(ids(db, &s2, open()).await, ["a"]);
    assert_eq!(
        ids(db, &s2, query(vec![], Some("rank"), false, 10)).await,
        ["b", "a"]
    );
});

both!(queries_run_on_the_slot_indexes, |app| {
    let db = app.state.db();
    let t = tenant_of(&app, &app.owner).await;
    let cols = collections();
    let s = scope(&t, "alpha", &cols);
    let names = [
        "module_records_s1_idx",
        "module_records_s2_idx",
        "module_records_s3_idx",
        "module_records_s4_idx",
        "module_records_n1_idx",
        "module_records_n2_idx",
        "module_records_n3_idx",
        "module_records_n4_idx",
    ];
    let by_status = query(vec![cond("status", Op::Eq, json!("s-17"))], None, false, 10);
    let by_priority = query(
        vec![cond("priority", Op::Gte, json!(1990))],
        Some("priority"),
        true,
        10,
    );

    match db.backend() {
        Backend::Sqlite => {
            let listed: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'module_records'",
            )
            .fetch_all(db.pool())
            .await
            .unwrap();
            for n in names {
                assert!(listed.iter().any(|l| l == n), "{n} missing from {listed:?}");
            }
            put(db, &s, "t1", json!({"status": "s-17", "priority": 1})).await;
            let plan = records::explain(db, &s, &by_status)
                .await
                .unwrap()
                .join("\n");
            assert!(plan.contains("module_records_s1_idx"), "{plan}");
            assert!(!plan.contains("SCAN"), "{plan}");
            let plan = records::explain(db, &s, &by_priority)
                .await
                .unwrap()
                .join("\n");
            assert!(plan.contains("module_records_n1_idx"), "{plan}");
            assert!(
                !plan.contains("TEMP B-TREE"),
                "ordered by the index, not sorted: {plan}"
            );
            // A later page seeks into the index from the cursor.
            put(db, &s, "t2", json!({"status": "s-18", "priority": 1995})).await;
            put(db, &s, "t3", json!({"status": "s-19", "priority": 1996})).await;
            let mut page = by_priority.clone();
            page.limit = 1;
            page.cursor = records::query(db, &s, &page).await.unwrap().next_cursor;
            assert!(page.cursor.is_some());
            let plan = records::explain(db, &s, &page).await.unwrap().join("\n");
            assert!(plan.contains("module_records_n1_idx"), "{plan}");
            assert!(
                !plan.contains("SCAN") && !plan.contains("TEMP B-TREE"),
                "{plan}"
            );
        }
        Backend::Postgres => {
            let listed: Vec<String> = sqlx::query_scalar(
                "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'module_records'",
            )
            .fetch_all(db.pool())
            .await
            .unwrap();
            for n in names {
                assert!(listed.iter().any(|l| l == n), "{n} missing from {listed:?}");
            }
            // Enough rows, with statistics, that the planner prefers an index.
            for chunk in 0..4 {
                let ops: Vec<BatchOp> = (0..500)
                    .map(|k| {
                        let n = chunk * 500 + k;
                        BatchOp::Put {
                            collection: "tickets".into(),
                            id: format!("t{n:04}"),
                            data: json!({"status": format!("s-{n}"), "priority": n}).to_string(),
                            expected_version: None,
                        }
                    })
                    .collect();
                records::batch(db, &s, &ops, NOW).await.unwrap();
            }
            sqlx::query("ANALYZE module_records")
                .execute(db.pool())
                .await
                .unwrap();
            let plan = records::explain(db, &s, &by_status)
                .await
                .unwrap()
                .join("\n");
            assert!(plan.contains("module_records_s1_idx"), "{plan}");
            assert!(!plan.contains("Seq Scan"), "{plan}");
            let plan = records::explain(db, &s, &by_priority)
                .await
                .unwrap()
                .join("\n");
            assert!(plan.contains("module_records_n1_idx"), "{plan}");
            assert!(
                !plan.contains("Sort"),
                "ordered by the index, not sorted: {plan}"
            );
            // A later page seeks into the index from the cursor.
            let mut page = query(vec![], Some("priority"), false, 10);
            page.cursor = records::query(db, &s, &page).await.unwrap().next_cursor;
            assert!(page.cursor.is_some());
            let plan = records::explain(db, &s, &page).await.unwrap().join("\n");
            assert!(plan.contains("module_records_n1_idx"), "{plan}");
            assert!(
                !plan.contains("Sort") && !plan.contains("Seq Scan"),
                "{plan}"
            );
            assert_eq!(
                ids(db, &s, by_priority.clone()).await,
                (1990..2000)
                    .rev()
                    .map(|n| format!("t{n:04}"))
                    .collect::<Vec<_>>()
            );
        }
    }
});

// A module call is cut off at its deadline wherever it awaits, including
// inside `BEGIN`: no connection may go back to the pool inside a
// transaction nobody ends (sqlx's own `begin` is not cancel-safe).
both!(
    a_transaction_start_cut_off_anywhere_leaves_the_pool_healthy,
    |app| {
        let db = app.state.db();
        for i in 0..300u64 {
            let cut = std::time::Duration::from_micros(i % 50);
            let _ = tokio::time::timeout(cut, db.begin()).await;
        }
        // Every connection of the pool still starts, writes and commits.
        let mut open = Vec::new();
        for _ in 0..4 {
            let mut tx = db.begin().await.expect("begin after cut-off begins");
            sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
            tx.commit().await.expect("commit");
            open.push(());
        }
        let t = tenant_of(&app, &app.owner).await;
        let cols = collections();
        let s = scope(&t, "alpha", &cols);
        let r = records::put(
            db,
            &s,
            "tickets",
            "after",
            r#"{"status":"open"}"#,
            None,
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(r.version, 1);
    }
);

// A number index left empty by one record and filled by the next, in either
// order, on one connection's prepared statement: both are stored and found
// (the `NULL` must go to PostgreSQL with the same type as a value).
both!(an_empty_number_index_then_a_value_are_both_stored, |app| {
    let db = app.state.db();
    let t = tenant_of(&app, &app.owner).await;
    let cols = collections();
    let s = scope(&t, "alpha", &cols);
    for i in 0..20 {
        let data = if i % 2 == 0 {
            r#"{"status":"open"}"#.to_string()
        } else {
            format!(
                r#"{{"status":"open","priority":{}.5}}"#,
                1_772_524_800_000i64 + i
            )
        };
        records::put(db, &s, "tickets", &format!("t{i:02}"), &data, None, NOW)
            .await
            .unwrap_or_else(|e| panic!("record {i}: {e:?}"));
    }
    let q = kontor_runtime::host::Query {
        collection: "tickets".into(),
        conditions: vec![kontor_runtime::host::Condition {
            field: "priority".into(),
            op: kontor_runtime::host::Op::Gte,
            value: "0".into(),
        }],
        order_by: Some("priority".into()),
        descending: false,
        limit: 100,
        cursor: None,
    };
    let page = records::query(db, &s, &q).await.unwrap();
    assert_eq!(page.records.len(), 10);
});
