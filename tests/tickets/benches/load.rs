//! Load benchmark of the `tickets` module: how fast the desk opens tickets
//! and lists its queues with 100,000 tickets already stored.
//!
//! A [`Harness`] on the system clock (the real host over HTTP on 127.0.0.1,
//! SQLite in a temporary folder, the release build of the component) is
//! set up as a desk would be: staff, a round-robin department, customers.
//! A sample of tickets is opened through the module's own `POST`, the
//! honest creation path; the bulk is seeded directly into the host's record
//! store, built from the module's own types (`Ticket`, `Message`, with
//! `Ticket::reindex` and `take_new_breaches` filling the index fields and
//! breaches as the module's writes and escalation job would), 500 records
//! per transaction, and the ticket sequence set past them. Then:
//!
//! 1. **Creation** — `POST /api/v1/tickets/tickets` one after the other,
//!    then from N concurrent clients: tickets/s, p50/p95.
//! 2. **Queues** — `GET /api/v1/tickets/tickets?queue=...` (all, unassigned,
//!    mine, breached, one customer's, due today), first pages of 50, one
//!    client and N concurrent clients: pages/s, p50/p95.
//!
//! Not a test: `cargo test` never runs it. Run (release build):
//!
//! ```text
//! cargo bench -p kontor-tickets-tests --bench load
//! ```
//!
//! Environment (all optional):
//!
//! * `KONTOR_BENCH_TICKETS` — tickets seeded (default 100000);
//! * `KONTOR_BENCH_CLIENTS` — concurrent clients (default 8);
//! * `KONTOR_BENCH_CREATE` — tickets opened per creation run (default 300);
//! * `KONTOR_BENCH_PAGES` — pages fetched per queue and run (default 200).
//!
//! A seeded ticket is two records (the ticket and its first message),
//! well inside the host's quota of 1,000,000 records per tenant × module
//! (`kontor::modules::records::Quota::default`), so the module goes on
//! opening tickets on top of them as it would in production.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::future::join_all;
use kontor::modules::records::{self, Quota, RecordScope};
use kontor_runtime::host::BatchOp;
use kontor_test::{Client, Harness};
use kontor_tickets::store::{self, Message};
use kontor_tickets::ticket::Ticket;
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;
/// How far back the seeded tickets were opened.
const HISTORY_DAYS: i64 = 180;
/// Tickets opened in the last `RECENT_DAYS` are mostly still being worked.
const RECENT_DAYS: i64 = 10;
const CUSTOMERS: usize = 100;
const STAFF: usize = 4;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift), so every run seeds the same desk.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let tickets = env("KONTOR_BENCH_TICKETS", 100_000);
    let clients = env("KONTOR_BENCH_CLIENTS", 8).max(1);
    let create = env("KONTOR_BENCH_CREATE", 300).max(clients);
    let pages = env("KONTOR_BENCH_PAGES", 200).max(clients);

    let module_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules/tickets");
    let h = Harness::builder()
        .system_clock()
        .module_dir(module_dir)
        .wasm(Path::new(kontor_runtime::TEST_GUEST_DIR).join("tickets.wasm"))
        .start()
        .await;
    println!(
        "tickets load benchmark: {tickets} seeded tickets, {clients} concurrent clients, SQLite, {}",
        if cfg!(debug_assertions) {
            "DEBUG build (numbers mean little)"
        } else {
            "release build"
        }
    );

    // --- the desk: staff, a round-robin department, customers ------------
    let admin_id = user_id(h.client()).await;
    let mut members = vec![admin_id.clone()];
    for _ in 0..STAFF {
        members.push(user_id(&h.user("staff").await).await);
    }
    let r = h
        .put_json(
            "/api/v1/tickets/departments/support",
            &json!({ "name": "Support", "email": "support@desk.example",
                     "members": members, "assignment": "round_robin" }),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text());
    let mut customers = Vec::new();
    for i in 0..CUSTOMERS {
        let r = h
            .post_json(
                "/api/v1/customers",
                &json!({ "company": format!("Customer {i:03} AG"), "email": format!("it@c{i:03}.example") }),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text());
        customers.push(r.json()["id"].as_str().unwrap().to_string());
    }

    // --- seed ---------------------------------------------------------------
    let started = Instant::now();
    let year = kontor_test::time::OffsetDateTime::now_utc().year();
    seed(&h, tickets, year, &customers, &members).await;
    let seeded_in = started.elapsed();
    let stored = count_tickets(&h).await;
    println!(
        "seeded {tickets} tickets (+ {tickets} messages) in {:.1} s; {stored} tickets stored",
        seeded_in.as_secs_f64()
    );

    // A sample through the module: the records it writes have exactly the
    // fields of the seeded ones.
    let sample = post_ticket(h.client(), &customers[0]).await;
    let sample: Value = sample.expect("the module opens a ticket on the seeded store");
    let expected_number = format!("T-{year}-{:06}", tickets + 1);
    assert_eq!(sample["number"], expected_number.as_str(), "{sample}");
    let written = h.record("tickets", &expected_number).await.unwrap().data;
    let seeded = h
        .record("tickets", &format!("T-{year}-{tickets:06}"))
        .await
        .unwrap()
        .data;
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .filter(|k| !matches!(k.as_str(), "next_due_at" | "breached_open"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&written),
        keys(&seeded),
        "seeded tickets differ from the module's"
    );

    // --- creation -------------------------------------------------------------
    let mut table = Table::default();
    let runs = creation(&h, &customers, create, 1).await;
    table.row("POST /tickets, 1 client", &runs);
    let runs = creation(&h, &customers, create, clients).await;
    table.row(&format!("POST /tickets, {clients} clients"), &runs);

    // --- queues ---------------------------------------------------------------
    let queues = [
        ("all".to_string(), "queue=all".to_string()),
        ("unassigned".to_string(), "queue=unassigned".to_string()),
        ("mine".to_string(), "queue=mine".to_string()),
        ("breached".to_string(), "queue=breached".to_string()),
        (
            "customer".to_string(),
            format!("customer={}", customers[CUSTOMERS / 2]),
        ),
        ("due_today".to_string(), "queue=due_today".to_string()),
    ];
    let mut sizes = Vec::new();
    for (name, query) in &queues {
        let path = format!("/api/v1/tickets/tickets?{query}");
        let first = h.get(&path).await;
        assert_eq!(first.status(), 200, "{path}: {}", first.text());
        let items = first.json()["items"].as_array().map_or(0, Vec::len);
        sizes.push(format!("{name} {items}"));
        for c in [1, clients] {
            let runs = listing(h.client(), &path, pages, c).await;
            table.row(&format!("GET ?{name}, {c} client(s)"), &runs);
        }
    }
    println!("first-page sizes: {}", sizes.join(", "));
    table.print();
    let total = count_tickets(&h).await;
    println!("tickets stored at the end: {total}");
}

/// The user id behind a signed-in client.
async fn user_id(c: &Client) -> String {
    let r = c.get("/api/v1/auth/me").await;
    assert_eq!(r.status(), 200, "{}", r.text());
    r.json()["user"]["id"].as_str().unwrap().to_string()
}

/// How many tickets the store holds (the host's index, not the module).
async fn count_tickets(h: &Harness) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM module_records WHERE tenant_id = $1 AND module_id = 'tickets' AND collection = 'tickets'",
    )
    .bind(h.tenant().as_str())
    .fetch_one(h.db().pool())
    .await
    .unwrap()
}

/// Write `n` tickets with their first messages as the module would have,
/// numbered 1..=n in the order they were opened over the last
/// [`HISTORY_DAYS`]; then the sequence past them.
async fn seed(h: &Harness, n: usize, year: i32, customers: &[String], staff: &[String]) {
    let policy = store::default_policy().policy();
    let hours = store::default_calendar()
        .hours()
        .expect("the module's default calendar");
    let now = h.now_ms();
    let scope = RecordScope {
        tenant: h.tenant(),
        module_id: "tickets",
        collections: &h.manifest().collections,
        quota: Quota::default(),
    };
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut ops = Vec::with_capacity(records::MAX_BATCH);
    let n_i64 = i64::try_from(n).unwrap();
    for i in 0..n {
        let i64_i = i64::try_from(i).unwrap();
        // Evenly spread, the newest opened a minute ago.
        let opened_at = now - MINUTE_MS - (n_i64 - 1 - i64_i) * HISTORY_DAYS * DAY_MS / n_i64;
        let age_days = (now - opened_at) / DAY_MS;
        let number = format!("T-{year}-{:06}", i + 1);
        let customer = &customers[rng.below(customers.len() as u64) as usize];
        let priority =
            ["low", "normal", "normal", "normal", "high", "urgent"][rng.below(6) as usize];
        let active = age_days < RECENT_DAYS || rng.below(10) == 0;
        let mut status_changes = Vec::new();
        let mut staff_replies = Vec::new();
        let status = if active {
            if rng.below(2) == 0 {
                staff_replies.push(opened_at + (5 + rng.below(120) as i64) * MINUTE_MS);
            }
            let status = [
                "open",
                "open",
                "open",
                "pending_customer",
                "pending_staff",
                "on_hold",
            ][rng.below(6) as usize];
            if status != "open" {
                let at = staff_replies.first().copied().unwrap_or(opened_at) + MINUTE_MS;
                status_changes.push((at.min(now), status.to_string()));
            }
            status
        } else {
            let reply = opened_at + (5 + rng.below(240) as i64) * MINUTE_MS;
            staff_replies.push(reply);
            status_changes.push((reply + 2 * 60 * MINUTE_MS, "resolved".to_string()));
            if rng.below(3) != 0 {
                status_changes.push((reply + 7 * DAY_MS, "closed".to_string()));
                "closed"
            } else {
                "resolved"
            }
        };
        // Active tickets: a fifth unassigned, the rest in turn; done ones
        // were all somebody's.
        let assignee_id = if active && rng.below(5) == 0 {
            None
        } else {
            Some(staff[i % staff.len()].clone())
        };
        let customer_name = format!("Customer of {number}");
        let mut ticket = Ticket {
            id: number.clone(),
            number: number.clone(),
            subject: format!("Seeded ticket {}", i + 1),
            customer_id: customer.clone(),
            service_ref: None,
            department_id: store::DEFAULT_DEPARTMENT.into(),
            priority: priority.into(),
            status: status.into(),
            assignee_id,
            tags: Vec::new(),
            opened_at,
            status_changes,
            staff_replies,
            customer_messages: Vec::new(),
            breached: Vec::new(),
            policy_id: "default".into(),
            customer_name: customer_name.clone(),
            message_count: 1,
            updated_at: opened_at,
            queue_assignee: None,
            queue_department: None,
            next_due_at: None,
            breached_open: None,
        };
        if ticket.is_active() {
            // What the escalation job would have recorded by now.
            ticket.take_new_breaches(&policy, &hours, now);
        }
        ticket.reindex(&policy, &hours, now);
        let message = Message {
            ticket_id: number.clone(),
            kind: "customer".into(),
            author_id: None,
            author_name: customer_name,
            body: "Seeded: the server does not answer since this morning.".into(),
            at: opened_at,
            email_message_id: None,
        };
        ops.push(BatchOp::Put {
            collection: "tickets".into(),
            id: number.clone(),
            data: serde_json::to_string(&ticket).unwrap(),
            expected_version: None,
        });
        ops.push(BatchOp::Put {
            collection: "messages".into(),
            id: store::message_id(&number, 1),
            data: serde_json::to_string(&message).unwrap(),
            expected_version: None,
        });
        if ops.len() + 2 > records::MAX_BATCH || i + 1 == n {
            records::batch(h.db(), &scope, &ops, now)
                .await
                .unwrap_or_else(|e| panic!("seeding up to {number}: {e:?}"));
            ops.clear();
        }
    }
    let db = h.db().pool();
    sqlx::query(
        "INSERT INTO module_sequences (tenant_id, module_id, name, value) VALUES ($1, 'tickets', $2, $3) \
         ON CONFLICT (tenant_id, module_id, name) DO UPDATE SET value = excluded.value",
    )
    .bind(h.tenant().as_str())
    .bind(format!("ticket-{year}"))
    .bind(n_i64)
    .execute(db)
    .await
    .unwrap();
}

/// Open a ticket for `customer`; the ticket, or the refusal.
async fn post_ticket(c: &Client, customer: &str) -> Result<Value, String> {
    let r = c
        .post_json(
            "/api/v1/tickets/tickets",
            &json!({ "customer_id": customer, "subject": "Load test", "body": "The server does not answer." }),
        )
        .await;
    if r.status() == 201 {
        Ok(r.json())
    } else {
        Err(format!("{} {}", r.status(), r.text()))
    }
}

/// One timed call: how long, and whether it succeeded.
type Run = (Duration, bool);

/// What a set of calls took: every call's time, and the wall time of all.
struct Runs {
    calls: Vec<Run>,
    wall: Duration,
    errors: BTreeMap<String, usize>,
}

/// Open `n` tickets from `clients` concurrent clients.
async fn creation(h: &Harness, customers: &[String], n: usize, clients: usize) -> Runs {
    let per = n / clients;
    let started = Instant::now();
    let results = join_all((0..clients).map(|c| async move {
        let mut out = Vec::with_capacity(per);
        for i in 0..per {
            let customer = &customers[(c * per + i) % customers.len()];
            let t = Instant::now();
            let r = post_ticket(h.client(), customer).await;
            out.push((t.elapsed(), r.err()));
        }
        out
    }))
    .await;
    collect(results, started.elapsed())
}

/// Fetch `path` `n` times from `clients` concurrent clients.
async fn listing(client: &Client, path: &str, n: usize, clients: usize) -> Runs {
    for _ in 0..3 {
        client.get(path).await;
    }
    let per = n / clients;
    let started = Instant::now();
    let results = join_all((0..clients).map(|_| async move {
        let mut out = Vec::with_capacity(per);
        for _ in 0..per {
            let t = Instant::now();
            let r = client.get(path).await;
            let err = (r.status() != 200).then(|| format!("{} {}", r.status(), r.text()));
            out.push((t.elapsed(), err));
        }
        out
    }))
    .await;
    collect(results, started.elapsed())
}

fn collect(results: Vec<Vec<(Duration, Option<String>)>>, wall: Duration) -> Runs {
    let mut calls = Vec::new();
    let mut errors = BTreeMap::new();
    for (took, err) in results.into_iter().flatten() {
        calls.push((took, err.is_none()));
        if let Some(e) = err {
            let short: String = e.chars().take(160).collect();
            *errors.entry(short).or_default() += 1;
        }
    }
    Runs {
        calls,
        wall,
        errors,
    }
}

/// The result table.
#[derive(Default)]
struct Table {
    rows: Vec<[String; 6]>,
    errors: Vec<String>,
}

impl Table {
    fn row(&mut self, name: &str, runs: &Runs) {
        let mut times: Vec<Duration> = runs.calls.iter().map(|(t, _)| *t).collect();
        times.sort();
        let pct = |p: f64| {
            let i = ((times.len() as f64 - 1.0) * p).round() as usize;
            times.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let ok = runs.calls.iter().filter(|(_, ok)| *ok).count();
        self.rows.push([
            name.to_string(),
            runs.calls.len().to_string(),
            ok.to_string(),
            format!("{:.1}", ok as f64 / runs.wall.as_secs_f64()),
            format!("{:.1}", pct(0.5)),
            format!("{:.1}", pct(0.95)),
        ]);
        for (e, n) in &runs.errors {
            self.errors.push(format!("{name}: {n} × {e}"));
        }
        eprintln!("  done: {name}");
    }

    fn print(&self) {
        let head = ["operation", "calls", "ok", "ok/s", "p50 ms", "p95 ms"];
        println!();
        println!(
            "{:<34} {:>6} {:>6} {:>8} {:>8} {:>8}",
            head[0], head[1], head[2], head[3], head[4], head[5]
        );
        for r in &self.rows {
            println!(
                "{:<34} {:>6} {:>6} {:>8} {:>8} {:>8}",
                r[0], r[1], r[2], r[3], r[4], r[5]
            );
        }
        if !self.errors.is_empty() {
            println!("\nrefused or failed calls:");
            for e in &self.errors {
                println!("  {e}");
            }
        }
    }
}
