//! Round-robin assignment and gap-free ticket numbers, sequentially and
//! under concurrent creation.

use std::collections::BTreeMap;

use futures::future::join_all;
use futures::StreamExt;

/// Requests in flight at once in the numbering test.
const IN_FLIGHT: usize = 8;
use serde_json::{json, Value};

use crate::common::*;
use crate::escalation::ids;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_robin_hands_tickets_to_the_members_in_turn_also_when_opened_at_once() {
    let h = desk_at(kontor_test::START).await;
    let mut staff = Vec::new();
    let mut members = Vec::new();
    for _ in 0..3 {
        let c = h.user("staff").await;
        members.push(user_id(&c).await);
        staff.push(c);
    }
    let r = h
        .post_json(
            "/api/v1/tickets/departments",
            &json!({ "id": "hosting", "name": "Hosting", "members": members, "assignment": "round_robin" }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text());
    let c = customer(&h, "Acme AG", "it@acme.example").await;
    let new = || json!({ "customer_id": c, "department_id": "hosting" });
    let assignee = |t: &Value| t["assignee_id"].as_str().unwrap().to_string();

    let mut got = Vec::new();
    for _ in 0..7 {
        got.push(assignee(&open(h.client(), new()).await));
    }
    let [a, b, cc] = [&members[0], &members[1], &members[2]].map(String::clone);
    assert_eq!(got, [&a, &b, &cc, &a, &b, &cc, &a].map(String::clone));

    // Three at once: three different members (b, c and a, in some order).
    let at_once = join_all((0..3).map(|_| open(h.client(), new()))).await;
    let mut three: Vec<String> = at_once.iter().map(assignee).collect();
    three.sort();
    let mut all = members.clone();
    all.sort();
    assert_eq!(three, all);
    // Six at once: each member twice.
    let at_once = join_all((0..6).map(|_| open(h.client(), new()))).await;
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for t in &at_once {
        *count.entry(assignee(t)).or_default() += 1;
    }
    assert_eq!(
        count.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "{count:?}"
    );

    // Each member's own queue holds exactly their tickets: 3 + 1 + 2 each
    // for a, 2 + 1 + 2 for b and c.
    for (member, client) in members.iter().zip(&staff) {
        let page = client.get("/api/v1/tickets/tickets?queue=mine").await;
        assert_eq!(page.status(), 200, "{}", page.text());
        let items = page.json()["items"].as_array().unwrap().clone();
        let expected = if *member == a { 6 } else { 5 };
        assert_eq!(items.len(), expected, "{member}: {}", page.text());
        assert!(items.iter().all(|t| t["assignee_id"] == member.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ticket_numbers_stay_gap_free_when_tickets_are_opened_concurrently() {
    let h = desk_at(kontor_test::START).await;
    let c = customer(&h, "Acme AG", "it@acme.example").await;
    // 56 requests, concurrently; every fourth is refused (a bad priority or no
    // subject), the other 42 are opened.
    let requests: Vec<(Value, bool)> = (0..56)
        .map(|i| match i % 8 {
            3 => (json!({ "customer_id": c, "subject": format!("No {i}"), "body": "x", "priority": "asap" }), false),
            7 => (json!({ "customer_id": c, "body": "no subject" }), false),
            _ => (json!({ "customer_id": c, "subject": format!("No {i}"), "body": "x" }), true),
        })
        .collect();
    // Eight in flight at a time: with all 56 at once, the debug host on
    // SQLite runs past the module's 2 s deadline (504 module_timeout).
    let answers: Vec<_> = futures::stream::iter(
        requests
            .iter()
            .map(|(body, _)| h.post_json("/api/v1/tickets/tickets", body)),
    )
    .buffered(IN_FLIGHT)
    .collect()
    .await;
    let mut numbers = Vec::new();
    for ((body, valid), r) in requests.iter().zip(&answers) {
        if *valid {
            assert_eq!(r.status(), 201, "{body}: {}", r.text());
            let t = r.json();
            assert_eq!(t["id"], t["number"]);
            numbers.push(t["number"].as_str().unwrap().to_string());
        } else {
            assert_eq!(r.status(), 422, "{body}: {}", r.text());
        }
    }
    numbers.sort();
    let expected: Vec<String> = (1..=42).map(|n| format!("T-2026-{n:06}")).collect();
    assert_eq!(numbers, expected);

    // A refusal after them takes no number either; the next one is 43.
    let r = h
        .post_json(
            "/api/v1/tickets/tickets",
            &json!({ "customer_id": c, "subject": "  ", "body": "x" }),
        )
        .await;
    assert_eq!(r.status(), 422, "{}", r.text());
    assert_eq!(r.error_code().as_deref(), Some("validation_failed"));
    let t = open(h.client(), json!({ "customer_id": c })).await;
    assert_eq!(t["number"], "T-2026-000043");

    // Stored: exactly these 43 tickets, each with its opening message.
    let mut stored: Vec<String> = h
        .records("tickets")
        .await
        .into_iter()
        .map(|r| r.id)
        .collect();
    stored.sort();
    let mut all = expected.clone();
    all.push("T-2026-000043".into());
    assert_eq!(stored, all);
    assert_eq!(h.records("messages").await.len(), 43);
    // The list pages newest first.
    let page = h.get("/api/v1/tickets/tickets?limit=3").await;
    assert_eq!(
        ids(&page.json()),
        ["T-2026-000043", "T-2026-000042", "T-2026-000041"]
    );
}
