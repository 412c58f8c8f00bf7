//! SLA due times on the business-hours calendar, through the API: weekends,
//! holidays, daylight saving, pauses and a priority change. The desk works
//! Monday to Friday, 08:00–18:00 in Berlin; times are written with their
//! offset (CET +01:00, CEST +02:00).

use kontor_test::time::Duration;
use serde_json::json;

use crate::common::*;

/// Normal: 4 h to the first response, 8 h to an update, 20 h to resolve.
fn normal() -> serde_json::Value {
    json!({ "normal": { "first_response": 240, "update": 480, "resolution": 1200 } })
}

#[tokio::test]
async fn a_ticket_opened_on_friday_afternoon_is_due_on_monday_morning() {
    let h = desk_at(at("2026-03-06T16:00:00+01:00")).await;
    berlin_office(&h, &[]).await;
    default_policy(&h, normal()).await;
    let c = customer(&h, "Acme AG", "it@acme.example").await;

    let t = open(
        h.client(),
        json!({ "customer_id": c, "priority": "normal" }),
    )
    .await;
    assert_eq!(t["opened_at"], ms("2026-03-06T16:00:00+01:00"));
    // 2 h on Friday (16–18), the rest from Monday 08:00.
    assert_due(&t, "first_response", "2026-03-09T10:00:00+01:00");
    assert_due(&t, "update", "2026-03-09T14:00:00+01:00");
    // 2 h Friday + 10 h Monday + 8 h Tuesday.
    assert_due(&t, "resolution", "2026-03-10T16:00:00+01:00");

    // The weekend passes; nothing moves, nothing is late yet.
    h.set_now(at("2026-03-08T23:59:00+01:00"));
    let t = ticket(&h, t["id"].as_str().unwrap()).await;
    assert_due(&t, "first_response", "2026-03-09T10:00:00+01:00");
    // One minute after the due time it is breached at that instant.
    h.set_now(at("2026-03-09T10:01:00+01:00"));
    let t = ticket(&h, t["id"].as_str().unwrap()).await;
    assert_eq!(
        t["sla"]["first_response"]["state"], "breached",
        "{}",
        t["sla"]
    );
    assert_eq!(
        t["sla"]["first_response"]["due_at"],
        ms("2026-03-09T10:00:00+01:00")
    );
}

#[tokio::test]
async fn a_holiday_monday_moves_the_due_time_to_tuesday() {
    let h = desk_at(at("2026-03-06T16:00:00+01:00")).await;
    berlin_office(&h, &["2026-03-09"]).await;
    default_policy(&h, normal()).await;
    let c = customer(&h, "Acme AG", "it@acme.example").await;

    let t = open(h.client(), json!({ "customer_id": c })).await;
    assert_eq!(t["priority"], "normal");
    assert_due(&t, "first_response", "2026-03-10T10:00:00+01:00");
    assert_due(&t, "update", "2026-03-10T14:00:00+01:00");
    assert_due(&t, "resolution", "2026-03-11T16:00:00+01:00");
}

#[tokio::test]
async fn business_hours_follow_the_wall_clock_across_the_switch_to_summer_time() {
    // Clocks go forward on Sunday 2026-03-29: Friday is CET, Monday CEST.
    let h = desk_at(at("2026-03-27T16:00:00+01:00")).await;
    berlin_office(&h, &[]).await;
    default_policy(&h, normal()).await;
    let c = customer(&h, "Acme AG", "it@acme.example").await;

    let t = open(h.client(), json!({ "customer_id": c })).await;
    assert_due(&t, "first_response", "2026-03-30T10:00:00+02:00");
    assert_due(&t, "resolution", "2026-03-31T16:00:00+02:00");
}

#[tokio::test]
async fn waiting_for_the_customer_pauses_every_timer_for_exactly_the_working_time_waited() {
    let h = desk_at(at("2026-03-02T10:00:00+01:00")).await;
    berlin_office(&h, &[]).await;
    default_policy(&h, normal()).await;
    let c = customer(&h, "Acme AG", "it@acme.example").await;
    let portal = h.customer_user(&c).await;

    let t = open(h.client(), json!({ "customer_id": c })).await;
    let id = t["id"].as_str().unwrap().to_string();
    assert_due(&t, "first_response", "2026-03-02T14:00:00+01:00");
    assert_due(&t, "update", "2026-03-02T18:00:00+01:00");
    // 8 h Monday, 10 h Tuesday, 2 h Wednesday.
    assert_due(&t, "resolution", "2026-03-04T10:00:00+01:00");

    // One working hour later staff ask the customer something.
    h.set_now(at("2026-03-02T11:00:00+01:00"));
    let t = patch(h.client(), &id, json!({ "status": "pending_customer" })).await;
    let paused = json!({
        "first_response": { "state": "paused", "left_minutes": 180 },
        "update": { "state": "paused", "left_minutes": 420 },
        "resolution": { "state": "paused", "left_minutes": 1140 },
    });
    assert_eq!(t["sla"], paused);

    // A night and a morning pass while the customer thinks; nothing counts.
    h.set_now(at("2026-03-03T10:00:00+01:00"));
    assert_eq!(ticket(&h, &id).await["sla"], paused);

    // The customer answers in the portal: the ticket is open again and the
    // timers resume. Waited: Monday 11–18 and Tuesday 8–10, 9 working hours.
    let r = portal
        .post_json(
            &format!("/api/v1/tickets/tickets/{id}/replies"),
            &json!({ "body": "It is the VPN gateway." }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text());
    let t = r.json();
    assert_eq!(t["status"], "open");
    // Monday 14:00 + 9 working hours = Tuesday 13:00 (= resumed + 180 min).
    assert_due(&t, "first_response", "2026-03-03T13:00:00+01:00");
    // Wednesday 10:00 + 9 working hours = Thursday 09:00.
    assert_due(&t, "resolution", "2026-03-05T09:00:00+01:00");
    // The update timer starts over from the customer's message: 8 h.
    assert_due(&t, "update", "2026-03-03T18:00:00+01:00");

    // On hold pauses too, and staff setting it open resumes it.
    h.set_now(at("2026-03-03T11:00:00+01:00"));
    let t = patch(h.client(), &id, json!({ "status": "on_hold" })).await;
    assert_eq!(
        t["sla"]["first_response"],
        json!({ "state": "paused", "left_minutes": 120 })
    );
    h.advance(Duration::hours(4));
    let t = patch(h.client(), &id, json!({ "status": "open" })).await;
    // Tuesday 13:00 + the 4 h on hold.
    assert_due(&t, "first_response", "2026-03-03T17:00:00+01:00");
    assert_due(&t, "resolution", "2026-03-05T13:00:00+01:00");
}

#[tokio::test]
async fn raising_the_priority_measures_the_ticket_anew_from_its_opening() {
    let h = desk_at(at("2026-03-02T10:00:00+01:00")).await;
    berlin_office(&h, &[]).await;
    default_policy(
        &h,
        json!({
            "normal": { "first_response": 240, "update": 480, "resolution": 1200 },
            "urgent": { "first_response": 120, "update": 240, "resolution": 480 },
        }),
    )
    .await;
    let c = customer(&h, "Acme AG", "it@acme.example").await;
    let t = open(h.client(), json!({ "customer_id": c })).await;
    let id = t["id"].as_str().unwrap().to_string();
    assert_due(&t, "first_response", "2026-03-02T14:00:00+01:00");

    // After an hour of working time it turns out to be urgent: urgent's
    // targets count from the opening (10:00), not from the change (11:00).
    h.set_now(at("2026-03-02T11:00:00+01:00"));
    let t = patch(h.client(), &id, json!({ "priority": "urgent" })).await;
    assert_eq!(t["priority"], "urgent");
    assert_due(&t, "first_response", "2026-03-02T12:00:00+01:00");
    assert_due(&t, "update", "2026-03-02T14:00:00+01:00");
    assert_due(&t, "resolution", "2026-03-02T18:00:00+01:00");
    assert_eq!(ticket(&h, &id).await["sla"], t["sla"]);

    // Lowered again: normal's targets, again from the opening.
    h.set_now(at("2026-03-02T11:30:00+01:00"));
    let t = patch(h.client(), &id, json!({ "priority": "normal" })).await;
    assert_due(&t, "first_response", "2026-03-02T14:00:00+01:00");
    assert_due(&t, "resolution", "2026-03-04T10:00:00+01:00");
}
