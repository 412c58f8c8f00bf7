//! The bundled `tickets` support desk end to end through the real host:
//! staff and portal flows over HTTP, tenant isolation on every route and
//! page, e-mail in (the signed inbound hook) and out (the SMTP sink), SLA
//! escalation by the cron job on the test clock, and what the module adds
//! to the core's pages.

use std::time::Duration;

use kontor::auth::signature;
use kontor_smtp_sink::Received;
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

use super::{drain, entitle, install_built};
use crate::both;
use crate::common::{assert_error, Session, TestApp};

const API: &str = "/api/v1/tickets";
const SECRET: &str = "tickets-inbound-secret-0123456789";
const HOUR_MS: i64 = 3_600_000;

/// The bundled tickets module, installed with its capabilities accepted
/// and entitled for the owner's tenant.
async fn install_tickets(app: &TestApp) {
    let (text, wasm) = kontor_runtime::bundled::TICKETS;
    install_built(app, text, wasm).await;
}

async fn get(app: &TestApp, who: &Session, path: &str) -> (StatusCode, Value) {
    app.call(Method::GET, path, Some(who), None).await
}

/// `POST /api/v1/tickets/tickets` as `who`.
async fn open(app: &TestApp, who: &Session, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("{API}/tickets"),
        Some(who),
        Some(body),
    )
    .await
}

/// Open a ticket and insist it worked; returns the ticket.
async fn opened(app: &TestApp, who: &Session, body: Value) -> Value {
    let (status, ticket) = open(app, who, body).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    ticket
}

/// `GET /tickets/{id}` as `who`, insisting it is there.
async fn ticket(app: &TestApp, who: &Session, id: &str) -> Value {
    let (status, t) = get(app, who, &format!("{API}/tickets/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t
}

async fn reply(app: &TestApp, who: &Session, id: &str, body: Value) -> (StatusCode, Value) {
    let path = format!("{API}/tickets/{id}/replies");
    app.call(Method::POST, &path, Some(who), Some(body)).await
}

async fn patch(app: &TestApp, who: &Session, id: &str, body: Value) -> (StatusCode, Value) {
    let path = format!("{API}/tickets/{id}");
    app.call(Method::PATCH, &path, Some(who), Some(body)).await
}

async fn close(app: &TestApp, who: &Session, id: &str) -> (StatusCode, Value) {
    let path = format!("{API}/tickets/{id}/close");
    app.call(Method::POST, &path, Some(who), None).await
}

/// The ticket ids of a list (`query` after `?`) as `who`, in order.
async fn listed(app: &TestApp, who: &Session, query: &str) -> Vec<String> {
    let (status, page) = get(app, who, &format!("{API}/tickets?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

/// The kinds of a ticket's messages, in thread order.
fn kinds(ticket: &Value) -> Vec<&str> {
    ticket["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect()
}

/// The events of the tickets module published for `who`'s tenant:
/// (name, payload), in the order they were written.
async fn events(app: &TestApp, who: &Session) -> Vec<(String, Value)> {
    let tenant = crate::records::tenant_of(app, who).await;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, payload FROM event_outbox WHERE tenant_id = $1 AND name LIKE 'tickets.%' \
         ORDER BY occurred_at, id",
    )
    .bind(tenant.as_str())
    .fetch_all(app.state.db().pool())
    .await
    .unwrap();
    rows.into_iter()
        .map(|(n, p)| (n, serde_json::from_str(&p).unwrap()))
        .collect()
}

/// Set the tickets module's `inbound_secret` for `who`'s tenant.
async fn set_inbound_secret(app: &TestApp, who: &Session, value: &str) {
    crate::modules::hooks::set_inbound_secret(app, who, "tickets", value).await;
}

/// Post a parsed e-mail to tenant `slug`'s inbound hook, signed with
/// `secret` at the host's time.
async fn inbound(app: &TestApp, slug: &str, secret: &str, mail: &Value) -> (StatusCode, Value) {
    let body = mail.to_string();
    let t = app.state.now_ms() / 1000;
    let res = app
        .raw(
            Method::POST,
            &format!("/api/v1/hooks/{slug}/tickets/inbound"),
            None,
        )
        .header("content-type", "application/json")
        .header(
            "Kontor-Signature",
            signature::header_value(secret.as_bytes(), t, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Deliver what is queued; the messages the sink holds for `address`.
async fn mail_to(app: &TestApp, address: &str) -> Vec<Received> {
    drain(app).await;
    app.mail
        .messages()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t == address))
        .collect()
}

/// A page as `who` sees it in the browser (their session cookie).
async fn page(app: &TestApp, who: &Session, path: &str) -> (StatusCode, String) {
    let res = app
        .raw(Method::GET, path, None)
        .header(header::COOKIE, format!("kontor_session={}", who.token))
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

/// The customer's timeline through the core API.
async fn timeline(app: &TestApp, who: &Session, customer: &str) -> Vec<Value> {
    let (status, body) = get(app, who, &format!("/api/v1/customers/{customer}/timeline")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

both!(
    staff_open_answer_and_change_tickets_with_queues_events_and_the_customer_timeline,
    |app| {
        install_tickets(&app).await;
        let owner = app.owner.clone();
        let staff = app.user(&owner, "staff", None).await;
        let ada = app
            .customer(
                &owner,
                json!({"company": "Analytical Engines Ltd", "email": "ada@example.com"}),
            )
            .await;
        let t0 = app.state.now_ms();

        let first = opened(
            &app,
            &staff,
            json!({"customer_id": ada, "subject": "Server down", "body": "Nothing answers since 8:00.", "priority": "high"}),
        )
        .await;
        assert_eq!(first["number"], "T-2026-000001", "{first}");
        assert_eq!(first["id"], "T-2026-000001");
        assert_eq!(first["customer_id"], ada.as_str());
        assert_eq!(first["department_id"], "support");
        assert_eq!(
            (&first["status"], &first["priority"]),
            (&json!("open"), &json!("high"))
        );
        assert_eq!(first["assignee_id"], Value::Null);
        // High: first response in 4 working hours from Monday 09:00.
        assert_eq!(
            first["sla"]["first_response"],
            json!({"state": "running", "due_at": t0 + 4 * HOUR_MS}),
            "{first}"
        );

        let (status, billing) = app
            .call(
                Method::POST,
                &format!("{API}/departments"),
                Some(&owner),
                Some(json!({"id": "billing", "name": "Billing"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{billing}");
        let second = opened(
            &app,
            &staff,
            json!({"customer_id": ada, "subject": "Invoice twice", "body": "We were billed twice.", "department_id": "billing"}),
        )
        .await;
        assert_eq!(second["number"], "T-2026-000002", "{second}");
        let (a, b) = ("T-2026-000001", "T-2026-000002");

        let shown = ticket(&app, &staff, a).await;
        assert_eq!(shown["sla"]["first_response"]["state"], "running");
        assert!(
            shown["sla"]["resolution"]["due_at"].as_i64().unwrap() > t0 + 4 * HOUR_MS,
            "{shown}"
        );
        assert_eq!(kinds(&shown), ["customer"]);
        assert_eq!(
            shown["messages"][0]["body"], "Nothing answers since 8:00.",
            "{shown}"
        );

        // Queues.
        assert_eq!(listed(&app, &staff, "queue=unassigned").await, [b, a]);
        assert!(listed(&app, &staff, "queue=mine").await.is_empty());
        let (status, changed) = patch(&app, &owner, a, json!({"assignee_id": staff.user_id})).await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["assignee_id"], staff.user_id.as_str());
        assert_eq!(listed(&app, &staff, "queue=mine").await, [a]);
        assert!(listed(&app, &owner, "queue=mine").await.is_empty());
        assert_eq!(listed(&app, &staff, "queue=unassigned").await, [b]);
        assert_eq!(
            listed(&app, &staff, "queue=department&department=support").await,
            [a]
        );
        assert_eq!(
            listed(&app, &staff, "queue=department&department=billing").await,
            [b]
        );
        assert_eq!(listed(&app, &staff, "queue=all").await, [b, a]);
        assert_eq!(
            listed(&app, &staff, &format!("customer={ada}")).await,
            [b, a]
        );
        let (status, body) = get(&app, &staff, &format!("{API}/tickets?queue=nonsense")).await;
        assert_error(status, &body, 422, "validation_failed");

        // A public reply meets the first response; a note does not count.
        let (status, replied) = reply(&app, &staff, a, json!({"body": "We are on it."})).await;
        assert_eq!(status, StatusCode::CREATED, "{replied}");
        assert_eq!(
            replied["sla"]["first_response"]["state"], "met",
            "{replied}"
        );
        let (status, noted) = reply(
            &app,
            &staff,
            a,
            json!({"body": "Disk full on node 3.", "internal": true}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{noted}");
        let shown = ticket(&app, &staff, a).await;
        assert_eq!(kinds(&shown), ["customer", "reply", "note"], "{shown}");
        assert_eq!(shown["messages"][2]["body"], "Disk full on node 3.");

        // Status, priority, assignee.
        let (status, changed) = patch(
            &app,
            &staff,
            a,
            json!({"status": "pending_customer", "priority": "urgent", "assignee_id": null}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["status"], "pending_customer");
        assert_eq!(changed["priority"], "urgent");
        assert_eq!(changed["assignee_id"], Value::Null);
        assert_eq!(
            changed["sla"]["resolution"]["state"], "paused",
            "waiting for the customer pauses the clock: {changed}"
        );
        assert_eq!(listed(&app, &staff, "queue=unassigned").await, [b, a]);
        let (status, body) = patch(&app, &staff, a, json!({"status": "sleeping"})).await;
        assert_error(status, &body, 422, "validation_failed");
        let (status, closed) = close(&app, &staff, a).await;
        assert_eq!(status, StatusCode::OK, "{closed}");
        assert_eq!(closed["status"], "closed");
        let (status, body) = reply(&app, &staff, a, json!({"body": "One more thing"})).await;
        assert_error(status, &body, 409, "not_allowed");
        let (status, body) = patch(&app, &staff, a, json!({"priority": "low"})).await;
        assert_error(status, &body, 409, "not_allowed");

        // The events, each with the ticket's facts.
        let published = events(&app, &owner).await;
        let names: Vec<&str> = published.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "tickets.ticket.opened",
                "tickets.ticket.opened",
                "tickets.ticket.replied",
                "tickets.ticket.replied",
                "tickets.ticket.status_changed",
                "tickets.ticket.status_changed",
                "tickets.ticket.closed",
            ],
            "{published:?}"
        );
        let (_, opened_payload) = &published[0];
        assert_eq!(opened_payload["number"], a);
        assert_eq!(opened_payload["customer_id"], ada.as_str());
        assert_eq!(opened_payload["priority"], "high");
        assert_eq!(published[2].1["kind"], "reply");
        assert_eq!(published[2].1["author_id"], staff.user_id.as_str());
        assert_eq!(published[3].1["kind"], "note");
        assert_eq!(
            (&published[4].1["from"], &published[4].1["status"]),
            (&json!("open"), &json!("pending_customer"))
        );
        assert_eq!(
            (&published[5].1["from"], &published[5].1["status"]),
            (&json!("pending_customer"), &json!("closed"))
        );
        assert_eq!(published[6].1["id"], a);

        // The customer's timeline, through the core API.
        let entries = timeline(&app, &owner, &ada).await;
        let tickets: Vec<(&str, &str)> = entries
            .iter()
            .filter(|e| e["kind"].as_str().unwrap().starts_with("tickets."))
            .map(|e| (e["kind"].as_str().unwrap(), e["summary"].as_str().unwrap()))
            .collect();
        assert!(
            tickets.contains(&(
                "tickets.ticket.opened",
                "Ticket T-2026-000001 opened: Server down"
            )),
            "{entries:?}"
        );
        assert!(
            tickets.contains(&(
                "tickets.ticket.opened",
                "Ticket T-2026-000002 opened: Invoice twice"
            )),
            "{entries:?}"
        );
        assert!(
            tickets.contains(&(
                "tickets.ticket.closed",
                "Ticket T-2026-000001 closed: Server down"
            )),
            "{entries:?}"
        );
    }
);

both!(
    a_portal_customer_works_only_their_own_tickets_and_never_sees_notes,
    |app| {
        install_tickets(&app).await;
        let owner = app.owner.clone();
        let ada = app
            .customer(
                &owner,
                json!({"company": "Ada AG", "email": "ada@example.com"}),
            )
            .await;
        let bob = app
            .customer(
                &owner,
                json!({"company": "Bob GmbH", "email": "bob@example.com"}),
            )
            .await;
        let portal = app.user(&owner, "customer", Some(&ada)).await;
        let bobs = opened(
            &app,
            &owner,
            json!({"customer_id": bob, "subject": "Bob's secret", "body": "Only for Bob."}),
        )
        .await;
        let bobs = bobs["id"].as_str().unwrap().to_string();

        // Opening needs no customer: the portal user's own is taken.
        let mine = opened(
            &app,
            &portal,
            json!({"subject": "Login fails", "body": "Since this morning."}),
        )
        .await;
        assert_eq!(mine["customer_id"], ada.as_str(), "{mine}");
        assert_eq!(mine["number"], "T-2026-000002");
        let mine = mine["id"].as_str().unwrap().to_string();
        let (status, body) = open(
            &app,
            &portal,
            json!({"subject": "For Bob", "body": "x", "customer_id": bob}),
        )
        .await;
        assert_error(status, &body, 403, "forbidden");
        let (status, body) = open(
            &app,
            &portal,
            json!({"subject": "Mine", "body": "x", "assignee_id": owner.user_id}),
        )
        .await;
        assert_error(status, &body, 403, "forbidden");

        // Only their own, anywhere.
        assert_eq!(listed(&app, &portal, "").await, [mine.as_str()]);
        assert_eq!(
            listed(&app, &portal, &format!("customer={bob}")).await,
            [mine.as_str()]
        );
        let (status, body) = get(&app, &portal, &format!("{API}/tickets?queue=unassigned")).await;
        assert_error(status, &body, 422, "validation_failed");
        let (status, body) = get(&app, &portal, &format!("{API}/tickets/{bobs}")).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = reply(&app, &portal, &bobs, json!({"body": "Hi Bob"})).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = close(&app, &portal, &bobs).await;
        assert_error(status, &body, 404, "not_found");

        // No notes, no changes beyond closing.
        let (status, body) = reply(
            &app,
            &portal,
            &mine,
            json!({"body": "psst", "internal": true}),
        )
        .await;
        assert_error(status, &body, 403, "forbidden");
        let (status, body) = patch(&app, &portal, &mine, json!({"priority": "urgent"})).await;
        assert_error(status, &body, 403, "forbidden");
        assert_eq!(body["error"]["details"]["permission"], "tickets.manage");
        let (status, body) = reply(
            &app,
            &portal,
            &mine,
            json!({"body": "x", "status": "on_hold"}),
        )
        .await;
        assert_error(status, &body, 409, "not_allowed");

        let (status, body) = reply(
            &app,
            &portal,
            &mine,
            json!({"body": "It says 'password expired'."}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        reply(
            &app,
            &owner,
            &mine,
            json!({"body": "Customer is on the legacy SSO.", "internal": true}),
        )
        .await;
        let (status, _) = reply(
            &app,
            &owner,
            &mine,
            json!({"body": "Please reset it at /reset."}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);

        // Staff see the customer's reply and the note ...
        let staff_view = ticket(&app, &owner, &mine).await;
        assert_eq!(
            kinds(&staff_view),
            ["customer", "customer", "note", "reply"],
            "{staff_view}"
        );
        assert_eq!(
            staff_view["messages"][1]["body"],
            "It says 'password expired'."
        );
        assert_eq!(
            staff_view["messages"][1]["author_id"],
            portal.user_id.as_str()
        );
        // ... the customer everything but the note.
        let their_view = ticket(&app, &portal, &mine).await;
        assert_eq!(
            kinds(&their_view),
            ["customer", "customer", "reply"],
            "{their_view}"
        );
        assert!(
            !their_view.to_string().contains("legacy SSO"),
            "{their_view}"
        );

        let (status, closed) = close(&app, &portal, &mine).await;
        assert_eq!(status, StatusCode::OK, "{closed}");
        assert_eq!(closed["status"], "closed");
        assert!(!closed.to_string().contains("legacy SSO"), "{closed}");
        let (status, body) = reply(&app, &portal, &mine, json!({"body": "Again"})).await;
        assert_error(status, &body, 409, "not_allowed");
        assert_eq!(ticket(&app, &owner, &mine).await["status"], "closed");
        assert_eq!(ticket(&app, &owner, &bobs).await["message_count"], 1);
    }
);

both!(
    another_tenant_can_neither_see_nor_change_tickets_nor_thread_mail_into_them,
    |app| {
        install_tickets(&app).await;
        let owner_a = app.owner.clone();
        let ada = app
            .customer(
                &owner_a,
                json!({"company": "Ada AG", "email": "ada@example.com"}),
            )
            .await;
        let portal_a = app.user(&owner_a, "customer", Some(&ada)).await;
        opened(
            &app,
            &owner_a,
            json!({"customer_id": ada, "subject": "A first", "body": "one"}),
        )
        .await;
        let a = opened(
            &app,
            &owner_a,
            json!({"customer_id": ada, "subject": "Tenant A secret", "body": "A's words"}),
        )
        .await;
        assert_eq!(a["id"], "T-2026-000002");
        let a_id = "T-2026-000002";
        // The confirmation to Ada: its Message-ID names A's ticket.
        let confirmation = mail_to(&app, "ada@example.com")
            .await
            .into_iter()
            .find(|m| m.subject().unwrap_or_default().contains("[T-2026-000002]"))
            .expect("Ada's confirmation of T-2026-000002");
        let a_message_id = confirmation.header("Message-ID").unwrap();

        let owner_b = app.new_tenant("Tenant B").await;
        entitle(&app, &owner_b, "tickets").await;
        let staff_b = app.user(&owner_b, "staff", None).await;
        let carl = app
            .customer(
                &owner_b,
                json!({"company": "Carl KG", "email": "carl@example.com"}),
            )
            .await;
        let portal_b = app.user(&owner_b, "customer", Some(&carl)).await;
        let b = opened(
            &app,
            &portal_b,
            json!({"subject": "Tenant B ticket", "body": "B's words"}),
        )
        .await;
        assert_eq!(
            b["number"], "T-2026-000001",
            "each tenant numbers its own tickets"
        );

        for who in [&owner_b, &staff_b, &portal_b] {
            assert_eq!(listed(&app, who, "").await, ["T-2026-000001"]);
            let (status, body) = get(&app, who, &format!("{API}/tickets/{a_id}")).await;
            assert_error(status, &body, 404, "not_found");
            let (status, body) = reply(&app, who, a_id, json!({"body": "intrusion"})).await;
            assert_error(status, &body, 404, "not_found");
            let (status, body) = close(&app, who, a_id).await;
            assert_error(status, &body, 404, "not_found");
            let (_, own) = get(&app, who, &format!("{API}/tickets/T-2026-000001")).await;
            assert_eq!(own["subject"], "Tenant B ticket", "{own}");
            assert_eq!(own["customer_id"], carl.as_str());
        }
        for who in [&owner_b, &staff_b] {
            assert!(listed(&app, who, &format!("customer={ada}"))
                .await
                .is_empty());
            let (status, body) = patch(&app, who, a_id, json!({"status": "resolved"})).await;
            assert_error(status, &body, 404, "not_found");
        }
        let (status, canned) = app
            .call(
                Method::POST,
                &format!("{API}/canned"),
                Some(&staff_b),
                Some(json!({"title": "Hello", "body": "Dear {customer.name}, about {ticket.subject}"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{canned}");
        let canned_id = canned["id"].as_str().unwrap();
        let (status, body) = get(
            &app,
            &staff_b,
            &format!("{API}/canned/{canned_id}/render?ticket={a_id}"),
        )
        .await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = get(
            &app,
            &staff_b,
            &format!("{API}/canned/{canned_id}/render?ticket=T-2026-000001"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["text"], "Dear Carl KG, about Tenant B ticket");

        // The pages show nothing of A either.
        for (who, path) in [
            (&owner_b, format!("/app/tickets/ticket?id={a_id}")),
            (&staff_b, format!("/app/tickets/ticket?id={a_id}")),
            (&portal_b, format!("/app/tickets/portal/ticket?id={a_id}")),
            (&owner_b, format!("/app/tickets/?customer={ada}")),
        ] {
            let (status, html) = page(&app, who, &path).await;
            assert!(!html.contains("Tenant A secret"), "{path}: {html}");
            if !path.contains("customer=") {
                assert!(!status.is_success(), "{path}: {status} {html}");
            }
        }
        // A's own portal user does see it (the pages work at all).
        let (status, html) = page(
            &app,
            &portal_a,
            &format!("/app/tickets/portal/ticket?id={a_id}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("Tenant A secret"), "{html}");

        // Mail to B quoting A's number and Message-ID opens a ticket in B.
        set_inbound_secret(&app, &owner_b, SECRET).await;
        let slug_b = crate::modules::hooks::slug_of(&app, &owner_b).await;
        let mail = json!({
            "from": "Ada Lovelace <ada@example.com>",
            "to": "support@tenant-b.example",
            "subject": "Re: [T-2026-000002] Tenant A secret",
            "body": "Sent to the wrong desk.",
            "message_id": "<wrong-desk@mail.example.com>",
            "in_reply_to": a_message_id,
            "references": a_message_id,
        });
        let (status, answer) = inbound(&app, &slug_b, SECRET, &mail).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["threaded"], false, "{answer}");
        assert_eq!(answer["created_customer"], true, "{answer}");
        let new_in_b = answer["ticket"].as_str().unwrap();
        let in_b = ticket(&app, &owner_b, new_in_b).await;
        assert_eq!(in_b["subject"], "Re: [T-2026-000002] Tenant A secret");
        assert_ne!(in_b["customer_id"], ada.as_str());
        assert_eq!(kinds(&in_b), ["customer"]);
        // A's ticket is as it was.
        let still = ticket(&app, &owner_a, a_id).await;
        assert_eq!(kinds(&still), ["customer"], "{still}");
        assert_eq!(still["status"], "open");
        assert_eq!(still["message_count"], 1);
        assert_eq!(listed(&app, &owner_a, "").await.len(), 2);
        assert!(events(&app, &owner_a)
            .await
            .iter()
            .all(|(n, _)| n == "tickets.ticket.opened"));
    }
);

both!(
    inbound_mail_opens_threads_deduplicates_and_handles_unknown_senders,
    |app| {
        install_tickets(&app).await;
        let owner = app.owner.clone();
        let slug = crate::modules::hooks::slug_of(&app, &owner).await;
        set_inbound_secret(&app, &owner, SECRET).await;
        let ada = app
            .customer(
                &owner,
                json!({"company": "Analytical Engines Ltd", "email": "ada@example.com"}),
            )
            .await;

        let first = json!({
            "from": "Ada Lovelace <Ada@Example.com>",
            "to": "support@example.com",
            "subject": "Printer on fire",
            "body": "Smoke everywhere.",
            "message_id": "<m1@mail.example.com>",
        });
        let (status, answer) = inbound(&app, &slug, SECRET, &first).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(
            answer,
            json!({"ticket": "T-2026-000001", "threaded": false, "created_customer": false})
        );
        let id = "T-2026-000001";
        let t = ticket(&app, &owner, id).await;
        assert_eq!(t["customer_id"], ada.as_str());
        assert_eq!(t["subject"], "Printer on fire");
        assert_eq!(t["messages"][0]["body"], "Smoke everywhere.");
        assert_eq!(t["messages"][0]["author_id"], Value::Null);

        // Staff answer: the customer gets it by mail, numbered, threaded.
        let (status, body) =
            reply(&app, &owner, id, json!({"body": "Pull the plug, please."})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let to_ada = mail_to(&app, "ada@example.com").await;
        let answer_mail = to_ada
            .iter()
            .find(|m| m.text().contains("Pull the plug, please."))
            .unwrap_or_else(|| {
                panic!(
                    "the reply reaches Ada: {:?}",
                    to_ada.iter().map(|m| m.subject()).collect::<Vec<_>>()
                )
            });
        let subject = answer_mail.subject().unwrap();
        assert!(subject.contains("[T-2026-000001]"), "{subject}");
        assert_eq!(
            answer_mail.header("In-Reply-To").as_deref(),
            Some("<m1@mail.example.com>"),
            "answers the ticket's first message"
        );
        let answer_id = answer_mail.header("Message-ID").unwrap();

        // Her answer to it threads by In-Reply-To alone (no number quoted).
        let second = json!({
            "from": "ada@example.com",
            "subject": "Re: Printer on fire",
            "body": "Done, it stopped.",
            "message_id": "<m2@mail.example.com>",
            "in_reply_to": answer_id,
            "references": format!("<m1@mail.example.com> {answer_id}"),
        });
        let (status, answer) = inbound(&app, &slug, SECRET, &second).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["ticket"], id);
        assert_eq!(answer["threaded"], true);
        let t = ticket(&app, &owner, id).await;
        assert_eq!(kinds(&t), ["customer", "reply", "customer"], "{t}");
        assert_eq!(t["messages"][2]["body"], "Done, it stopped.");

        // The gateway retries: acknowledged, not added twice.
        let (status, answer) = inbound(&app, &slug, SECRET, &second).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["duplicate"], true, "{answer}");
        let (status, answer) = inbound(&app, &slug, SECRET, &first).await;
        assert_eq!(
            (status, &answer["duplicate"]),
            (StatusCode::OK, &json!(true))
        );
        assert_eq!(ticket(&app, &owner, id).await["message_count"], 3);

        // A bad signature: refused, nothing stored.
        let forged = json!({
            "from": "ada@example.com",
            "subject": "Forged",
            "body": "Trust me.",
            "message_id": "<forged@mail.example.com>",
        });
        let (status, answer) = inbound(&app, &slug, "not-the-secret", &forged).await;
        assert_error(status, &answer, 400, "webhook_signature_invalid");
        assert_eq!(listed(&app, &owner, "").await, [id]);
        assert_eq!(ticket(&app, &owner, id).await["message_count"], 3);

        // An unknown sender becomes a lead.
        let grace = json!({
            "from": "Grace Hopper <grace@navy.example>",
            "subject": "A bug in the relay",
            "body": "There is a moth in it.",
            "message_id": "<g1@navy.example>",
        });
        let (status, answer) = inbound(&app, &slug, SECRET, &grace).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["created_customer"], true);
        let t = ticket(&app, &owner, answer["ticket"].as_str().unwrap()).await;
        let (status, lead) = get(
            &app,
            &owner,
            &format!("/api/v1/customers/{}", t["customer_id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{lead}");
        assert_eq!(lead["email"], "grace@navy.example", "{lead}");
        assert!(
            lead["tags"].as_array().unwrap().contains(&json!("lead")),
            "{lead}"
        );
        assert!(lead.to_string().contains("Grace Hopper"), "{lead}");

        // A department that takes customers only refuses them.
        let (status, body) = app
            .call(
                Method::PUT,
                &format!("{API}/departments/support"),
                Some(&owner),
                Some(json!({"name": "Support", "unknown_senders": "reject"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, customers_before) = get(&app, &owner, "/api/v1/customers").await;
        let eve = json!({
            "from": "eve@unknown.example",
            "subject": "Hello",
            "body": "Buy now.",
            "message_id": "<e1@unknown.example>",
        });
        let (status, answer) = inbound(&app, &slug, SECRET, &eve).await;
        assert_error(status, &answer, 422, "unknown_sender");
        let (_, customers_after) = get(&app, &owner, "/api/v1/customers").await;
        assert_eq!(customers_before["items"], customers_after["items"]);
        assert_eq!(listed(&app, &owner, "").await.len(), 2);
        // A known customer still gets through.
        let again = json!({
            "from": "ada@example.com",
            "subject": "New question",
            "body": "Another one.",
            "message_id": "<m3@mail.example.com>",
        });
        let (status, answer) = inbound(&app, &slug, SECRET, &again).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
);

both!(
    a_missed_first_response_is_escalated_once_by_mail_event_and_queue,
    |app| {
        install_tickets(&app).await;
        let owner = app.owner.clone();
        let (status, body) = app
            .call(
                Method::PUT,
                &format!("{API}/departments/support"),
                Some(&owner),
                Some(json!({"name": "Support", "email": "desk@tenant-a.example"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ada = app.customer(&owner, json!({"company": "Urgent AG"})).await;
        let t0 = app.state.now_ms();
        let urgent = opened(
            &app,
            &owner,
            json!({"customer_id": ada, "subject": "Everything is down", "body": "Help!", "priority": "urgent"}),
        )
        .await;
        let id = urgent["id"].as_str().unwrap().to_string();
        assert_eq!(
            urgent["sla"]["first_response"],
            json!({"state": "running", "due_at": t0 + HOUR_MS})
        );
        // The scheduler sees the job for the first time: its clock starts.
        let modules = app.state.modules();
        let db = app.state.db();
        kontor::modules::jobs::schedule_due(db, modules, app.state.now_ms())
            .await
            .unwrap();
        drain(&app).await;
        let breach_mails = || {
            app.mail
                .messages()
                .into_iter()
                .filter(|m| m.subject().unwrap_or_default().contains("SLA breached"))
                .collect::<Vec<_>>()
        };

        // 30 minutes in: nothing is late.
        app.clock.advance(time::Duration::minutes(30));
        kontor::modules::jobs::schedule_due(db, modules, app.state.now_ms())
            .await
            .unwrap();
        drain(&app).await;
        assert!(breach_mails().is_empty());
        assert!(listed(&app, &owner, "queue=breached").await.is_empty());

        // 90 minutes in: the first response is 30 minutes late.
        app.clock.advance(time::Duration::minutes(60));
        assert_eq!(
            kontor::modules::jobs::schedule_due(db, modules, app.state.now_ms())
                .await
                .unwrap(),
            1
        );
        drain(&app).await;
        let received = app.mail.wait_for(1, Duration::from_secs(10));
        let breached: Vec<_> = breach_mails();
        assert_eq!(
            breached.len(),
            1,
            "{:?}",
            received.iter().map(|m| m.subject()).collect::<Vec<_>>()
        );
        let m = &breached[0];
        assert_eq!(m.to, ["desk@tenant-a.example"]);
        let subject = m.subject().unwrap();
        assert!(
            subject.contains(&format!("[{id}]")) && subject.contains("first response"),
            "{subject}"
        );
        assert!(
            m.text().contains("was due at 2026-03-02 10:00 UTC"),
            "{}",
            m.text()
        );
        let breaches: Vec<Value> = events(&app, &owner)
            .await
            .into_iter()
            .filter(|(n, _)| n == "tickets.sla.breached")
            .map(|(_, p)| p)
            .collect();
        assert_eq!(breaches.len(), 1, "{breaches:?}");
        assert_eq!(breaches[0]["timer"], "first_response");
        assert_eq!(breaches[0]["due_at"], t0 + HOUR_MS);
        assert_eq!(breaches[0]["id"], id.as_str());
        assert!(timeline(&app, &owner, &ada)
            .await
            .iter()
            .any(|e| e["kind"] == "tickets.sla.breached"));

        let t = ticket(&app, &owner, &id).await;
        assert_eq!(t["breached_open"], 1, "{t}");
        assert_eq!(
            t["sla"]["first_response"],
            json!({"state": "breached", "due_at": t0 + HOUR_MS})
        );
        assert_eq!(listed(&app, &owner, "queue=breached").await, [id.as_str()]);

        // Later runs report it no more.
        for _ in 0..2 {
            app.clock.advance(time::Duration::minutes(20));
            kontor::modules::jobs::schedule_due(db, modules, app.state.now_ms())
                .await
                .unwrap();
            drain(&app).await;
        }
        // The first-response breach is reported once. (The module also
        // reports an `update` breach at 11:00 for the same missing first
        // answer: see the report; not asserted here.)
        let first_response_mails = breach_mails()
            .into_iter()
            .filter(|m| m.subject().unwrap_or_default().contains("first response"))
            .count();
        assert_eq!(first_response_mails, 1);
        let first_response_events = events(&app, &owner)
            .await
            .into_iter()
            .filter(|(n, p)| n == "tickets.sla.breached" && p["timer"] == "first_response")
            .count();
        assert_eq!(first_response_events, 1);

        // Answering meets it late; the ticket leaves the breached queue only
        // when it is no longer active.
        let (status, body) = reply(&app, &owner, &id, json!({"body": "Looking."})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["sla"]["first_response"]["state"], "met_late", "{body}");
        let (status, _) = close(&app, &owner, &id).await;
        assert_eq!(status, StatusCode::OK);
        assert!(listed(&app, &owner, "queue=breached").await.is_empty());
    }
);

both!(
    the_queue_ticket_portal_customer_tab_and_dashboard_pages_show_tickets,
    |app| {
        install_tickets(&app).await;
        let owner = app.owner.clone();
        let ada = app
            .customer(
                &owner,
                json!({"company": "Page Test AG", "email": "page@example.com"}),
            )
            .await;
        let portal = app.user(&owner, "customer", Some(&ada)).await;
        let t = opened(
            &app,
            &owner,
            json!({"customer_id": ada, "subject": "Shown on the page", "body": "First words.", "assignee_id": owner.user_id}),
        )
        .await;
        let id = t["id"].as_str().unwrap().to_string();
        reply(
            &app,
            &owner,
            &id,
            json!({"body": "Team-only remark.", "internal": true}),
        )
        .await;
        reply(&app, &owner, &id, json!({"body": "Public answer."})).await;

        // Staff queue: "mine" by default.
        let (status, html) = page(&app, &owner, "/app/tickets/").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(
            html.contains(&id) && html.contains("Shown on the page"),
            "{html}"
        );
        assert!(
            html.contains(&format!("/app/tickets/ticket?id={id}")),
            "{html}"
        );
        let (status, html) = page(&app, &owner, &format!("/app/tickets/ticket?id={id}")).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        for text in [
            "First words.",
            "Team-only remark.",
            "Public answer.",
            "Internal note",
        ] {
            assert!(html.contains(text), "{text}: {html}");
        }

        // The portal.
        let (status, html) = page(&app, &portal, "/app/tickets/portal").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(
            html.contains(&id) && html.contains("Shown on the page"),
            "{html}"
        );
        assert!(
            html.contains(&format!("/app/tickets/portal/ticket?id={id}")),
            "{html}"
        );
        let (status, html) = page(
            &app,
            &portal,
            &format!("/app/tickets/portal/ticket?id={id}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("Public answer."), "{html}");
        assert!(!html.contains("Team-only remark."), "{html}");
        assert!(!html.contains("Internal note"), "{html}");
        let (_, html) = page(&app, &portal, &format!("/app/tickets/ticket?id={id}")).await;
        assert!(!html.contains("Team-only remark."), "{html}");

        // The customer's Tickets tab and the dashboard card.
        let (status, html) = page(&app, &owner, &format!("/customers/{ada}")).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(
            html.contains(&format!("/app/tickets/?customer={ada}")) && html.contains("Tickets"),
            "{html}"
        );
        let (status, html) = page(&app, &owner, &format!("/app/tickets/?customer={ada}")).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(
            html.contains("Tickets of Page Test AG") && html.contains(&id),
            "{html}"
        );
        let (status, html) = page(&app, &owner, "/").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("1 open · 0 breached · 0 due today"), "{html}");
        assert!(html.contains("/app/tickets/?queue=all"), "{html}");
    }
);
