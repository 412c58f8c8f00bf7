//! CRM benchmark: customer list, search, get and CSV import at scale, on
//! SQLite and PostgreSQL side by side.
//!
//! It generates a CSV of realistic, varied customers (companies, contact
//! people, unique e-mails, phones, addresses, tags, custom fields), imports it
//! through `kontor::crm::csv_import::import` into a fresh SQLite file and a
//! fresh PostgreSQL schema — the import time is the rows/s figure — and then
//! times the library's own read paths, one caller at a time, after a warm-up:
//!
//! * list, first page — `customers::list` with no cursor (page of 50);
//! * list, deep page — `customers::list` with a keyset cursor taken from
//!   85–95 % into the table (several cursors, rotated);
//! * search — `customers::list` with `q` set to a few realistic substrings
//!   (part of a company name, a surname, an e-mail domain, a city, one exact
//!   e-mail), rotated; each term is also shown on its own;
//! * get by id — `customers::get` of random customers.
//!
//! It prints p50/p95 per operation and backend in one table, next to the
//! targets (p95 < 20 ms for list and get, < 50 ms for search; import
//! > 20,000 rows/s) and whether each is met.
//!
//! Run (release build):
//!
//! ```text
//! cargo bench -p kontor --bench crm                          # 1,000,000 rows
//! KONTOR_BENCH_ROWS=20000 cargo bench -p kontor --bench crm  # quick try
//! ```
//!
//! Environment:
//!
//! * `KONTOR_BENCH_ROWS` — customers to seed (default 1000000);
//! * `KONTOR_BENCH_ITERS` — timed calls per operation (default 200, after
//!   a warm-up of a tenth of that, at least 10);
//! * `KONTOR_BENCH_POSTGRES_URL` — PostgreSQL server (default
//!   `postgres://postgres@127.0.0.1:5432/test`); when it is not reachable a
//!   notice is printed and only SQLite is measured;
//! * `KONTOR_BENCH_ONLY=sqlite|postgres` — measure one backend only;
//! * `KONTOR_BENCH_KEEP=1` — keep the SQLite file, the CSV and the
//!   PostgreSQL schema afterwards (their names are printed), e.g. to run
//!   `EXPLAIN` on them.
//!
//! Files live under `target/kontor-bench/`, which is removed and recreated
//! on every run. The PostgreSQL schema `bench_<random>` is dropped at the end.
//! After the import PostgreSQL gets a `VACUUM ANALYZE customers`, the state
//! autovacuum would reach on its own after a bulk load; SQLite gets nothing
//! (Kontor does not run `ANALYZE` there). If the PostgreSQL server runs with
//! `autovacuum = off`, the benchmark says so and stands in for it during the
//! import with an `ANALYZE customers` every 60 s (autovacuum's default
//! naptime).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sqlx::Connection;

use kontor::auth::principal::AuthMethod;
use kontor::auth::roles::PermissionRegistry;
use kontor::auth::users::NewUser;
use kontor::auth::{Principal, Role};
use kontor::config::Mode;
use kontor::crm::{csv_import, customers};
use kontor::db::{Backend, Db};
use kontor::ids::{CustomerId, TenantId, UserId};

const DEFAULT_ROWS: usize = 1_000_000;
const DEFAULT_ITERS: usize = 200;
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

const TARGET_LIST_MS: f64 = 20.0;
const TARGET_GET_MS: f64 = 20.0;
const TARGET_SEARCH_MS: f64 = 50.0;
const TARGET_IMPORT_ROWS_PER_S: f64 = 20_000.0;

// ---------------------------------------------------------------------------
// Generated data
// ---------------------------------------------------------------------------

const FIRST_NAMES: &[&str] = &[
    "Anna",
    "Peter",
    "Maria",
    "Hans",
    "Ursula",
    "Thomas",
    "Sandra",
    "Daniel",
    "Monika",
    "Martin",
    "Claudia",
    "Andreas",
    "Nicole",
    "Stefan",
    "Barbara",
    "Markus",
    "Sabine",
    "Christian",
    "Petra",
    "Michael",
    "Laura",
    "Lukas",
    "Sarah",
    "Jonas",
    "Lea",
    "Noah",
    "Mia",
    "Luca",
    "Elena",
    "David",
    "Julia",
    "Simon",
    "Nina",
    "Fabian",
    "Lara",
    "Marco",
    "Chiara",
    "Reto",
    "Corinne",
    "Beat",
    "Franziska",
    "Urs",
    "Regula",
    "Jürg",
    "Esther",
    "René",
    "Sophie",
    "Pascal",
    "Céline",
    "Matteo",
    "Giulia",
    "Samuel",
    "Tanja",
    "Adrian",
    "Katrin",
    "Roger",
    "Yvonne",
    "Patrick",
    "Manuela",
    "Oliver",
];

const LAST_NAMES: &[&str] = &[
    "Müller",
    "Meier",
    "Schmid",
    "Keller",
    "Weber",
    "Huber",
    "Schneider",
    "Meyer",
    "Steiner",
    "Fischer",
    "Gerber",
    "Brunner",
    "Baumann",
    "Frei",
    "Zimmermann",
    "Moser",
    "Widmer",
    "Wyss",
    "Graf",
    "Roth",
    "Baumgartner",
    "Bachmann",
    "Kälin",
    "Bühler",
    "Suter",
    "Lehmann",
    "Hofmann",
    "Marti",
    "Kaufmann",
    "Studer",
    "Berger",
    "Koch",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Neumann",
    "Schwarz",
    "Zimmerli",
    "Hess",
    "Bosshard",
    "Egli",
    "Ammann",
    "Sutter",
    "Fuchs",
    "Rossi",
    "Bernasconi",
    "Favre",
    "Rochat",
    "Dubois",
    "Girard",
    "Perrin",
    "Bianchi",
    "Ferrari",
    "Vogel",
];

const INDUSTRIES: &[&str] = &[
    "Treuhand",
    "Schreinerei",
    "Elektro",
    "Sanitär",
    "Malerei",
    "Bau",
    "Immobilien",
    "Informatik",
    "Consulting",
    "Transporte",
    "Garage",
    "Bäckerei",
    "Metzgerei",
    "Gartenbau",
    "Architektur",
    "Druckerei",
    "Optik",
    "Physiotherapie",
    "Zahnarztpraxis",
    "Reisen",
    "Versicherungen",
    "Software",
    "Logistik",
    "Handel",
    "Holzbau",
    "Dachdecker",
    "Medizintechnik",
    "Werbeagentur",
    "Catering",
    "Haustechnik",
];

const LEGAL_FORMS: &[&str] = &[
    "AG", "GmbH", "GmbH", "AG", "& Co.", "KG", "SA", "Sàrl", "e.K.",
];

const BRANDS: &[&str] = &[
    "Alpina",
    "Helvetia",
    "Novum",
    "Primus",
    "Vita",
    "Aurora",
    "Terra",
    "Nordlicht",
    "Bergblick",
    "Seeland",
    "Rheintal",
    "Jura",
    "Limmat",
    "Aare",
    "Pilatus",
    "Säntis",
    "Titlis",
    "Rigi",
    "Emmental",
    "Engadin",
];

/// (postal code, city, canton/state, country)
const CITIES: &[(&str, &str, &str, &str)] = &[
    ("8001", "Zürich", "ZH", "CH"),
    ("3011", "Bern", "BE", "CH"),
    ("4051", "Basel", "BS", "CH"),
    ("1201", "Genève", "GE", "CH"),
    ("1003", "Lausanne", "VD", "CH"),
    ("6003", "Luzern", "LU", "CH"),
    ("9000", "St. Gallen", "SG", "CH"),
    ("8400", "Winterthur", "ZH", "CH"),
    ("6900", "Lugano", "TI", "CH"),
    ("2502", "Biel/Bienne", "BE", "CH"),
    ("3600", "Thun", "BE", "CH"),
    ("5400", "Baden", "AG", "CH"),
    ("6300", "Zug", "ZG", "CH"),
    ("7000", "Chur", "GR", "CH"),
    ("8200", "Schaffhausen", "SH", "CH"),
    ("1700", "Fribourg", "FR", "CH"),
    ("2000", "Neuchâtel", "NE", "CH"),
    ("5000", "Aarau", "AG", "CH"),
    ("4500", "Solothurn", "SO", "CH"),
    ("8500", "Frauenfeld", "TG", "CH"),
    ("6500", "Bellinzona", "TI", "CH"),
    ("1950", "Sion", "VS", "CH"),
    ("8640", "Rapperswil", "SG", "CH"),
    ("8610", "Uster", "ZH", "CH"),
    ("10115", "Berlin", "BE", "DE"),
    ("80331", "München", "BY", "DE"),
    ("70173", "Stuttgart", "BW", "DE"),
    ("79098", "Freiburg im Breisgau", "BW", "DE"),
    ("1010", "Wien", "W", "AT"),
    ("6020", "Innsbruck", "T", "AT"),
];

const STREETS: &[&str] = &[
    "Bahnhofstrasse",
    "Hauptstrasse",
    "Dorfstrasse",
    "Kirchweg",
    "Seestrasse",
    "Industriestrasse",
    "Schulhausstrasse",
    "Bergstrasse",
    "Gartenweg",
    "Rosenweg",
    "Poststrasse",
    "Lindenstrasse",
    "Mühleweg",
    "Rue du Marché",
    "Via Cantonale",
    "Feldstrasse",
    "Wiesenstrasse",
    "Sonnenbergstrasse",
    "Birkenweg",
    "Neugasse",
];

const PRIVATE_DOMAINS: &[&str] = &[
    "bluewin.ch",
    "gmail.com",
    "gmx.ch",
    "gmx.de",
    "hotmail.com",
    "outlook.com",
    "sunrise.ch",
    "yahoo.de",
    "proton.me",
    "icloud.com",
];

const TAGS: &[&str] = &[
    "VIP",
    "Newsletter",
    "B2B",
    "B2C",
    "Lead",
    "Partner",
    "Messe 2025",
    "Wartungsvertrag",
    "Zahlungsverzug",
    "Neukunde",
    "Stammkunde",
    "Empfehlung",
];

/// Lower-case ASCII slug for an e-mail domain or local part.
fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.to_lowercase().chars() {
        let c = match c {
            'ä' => "ae",
            'ö' => "oe",
            'ü' => "ue",
            'é' | 'è' | 'ê' => "e",
            'à' | 'â' => "a",
            c if c.is_ascii_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => {
                if !out.is_empty() && !out.ends_with('-') {
                    out.push('-');
                }
                continue;
            }
        };
        out.push_str(c);
    }
    out.trim_matches('-').to_string()
}

fn pick<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    list.choose(rng).copied().unwrap_or_default()
}

/// Write `rows` customers as CSV to `path`; returns one e-mail from the
/// middle of the file (for an exact-match search).
fn generate_csv(path: &Path, rows: usize) -> Result<String> {
    let mut rng = StdRng::seed_from_u64(0x6b6f_6e74_6f72);
    let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
    w.write_record(csv_import::COLUMNS)?;
    let mut probe_email = String::new();
    for i in 0..rows {
        let first = pick(&mut rng, FIRST_NAMES);
        let last = pick(&mut rng, LAST_NAMES);
        let contact = format!("{first} {last}");
        // About a quarter are private customers with no company.
        let company = if rng.gen_bool(0.75) {
            let owner = pick(&mut rng, LAST_NAMES);
            let name = match rng.gen_range(0..4) {
                0 => format!(
                    "{owner} {} {}",
                    pick(&mut rng, INDUSTRIES),
                    pick(&mut rng, LEGAL_FORMS)
                ),
                1 => format!(
                    "{owner} & {} {}",
                    pick(&mut rng, LAST_NAMES),
                    pick(&mut rng, LEGAL_FORMS)
                ),
                2 => format!(
                    "{} {} {}",
                    pick(&mut rng, BRANDS),
                    pick(&mut rng, INDUSTRIES),
                    pick(&mut rng, LEGAL_FORMS)
                ),
                _ => format!(
                    "{} {owner} {}",
                    pick(&mut rng, INDUSTRIES),
                    pick(&mut rng, LEGAL_FORMS)
                ),
            };
            Some(name)
        } else {
            None
        };
        // Unique: the row number is part of the local part.
        let local = format!("{}.{}{}", slug(first), slug(last), i);
        let email = match &company {
            Some(c) if rng.gen_bool(0.8) => {
                let domain = slug(c.split(" AG").next().unwrap_or(c));
                format!(
                    "{local}@{domain}.{}",
                    if rng.gen_bool(0.8) { "ch" } else { "com" }
                )
            }
            _ => format!("{local}@{}", pick(&mut rng, PRIVATE_DOMAINS)),
        };
        if i == rows / 2 {
            probe_email = email.clone();
        }
        let phone = if rng.gen_bool(0.9) {
            let prefix = *["44", "31", "61", "79", "78", "76", "77", "52", "41"]
                .choose(&mut rng)
                .unwrap_or(&"79");
            format!(
                "+41 {prefix} {:03} {:02} {:02}",
                rng.gen_range(100..1000),
                rng.gen_range(0..100),
                rng.gen_range(0..100)
            )
        } else {
            String::new()
        };
        let (postal, city, region, country) = *CITIES.choose(&mut rng).unwrap_or(&CITIES[0]);
        let street = format!("{} {}", pick(&mut rng, STREETS), rng.gen_range(1..200));
        let ntags = rng.gen_range(0..4);
        let tags: Vec<&str> = TAGS.choose_multiple(&mut rng, ntags).copied().collect();
        let status = if rng.gen_bool(0.9) {
            "active"
        } else {
            "archived"
        };
        let custom = match rng.gen_range(0..3) {
            0 => String::new(),
            1 => format!(
                "{{\"customer_no\":\"K-{:07}\",\"segment\":\"{}\"}}",
                i + 1,
                if company.is_some() { "B2B" } else { "B2C" }
            ),
            _ => format!(
                "{{\"customer_no\":\"K-{:07}\",\"employees\":{},\"source\":\"{}\"}}",
                i + 1,
                rng.gen_range(1..500),
                ["web", "fair", "referral", "cold call"][rng.gen_range(0..4)]
            ),
        };
        w.write_record([
            company.as_deref().unwrap_or(""),
            contact.as_str(),
            email.as_str(),
            phone.as_str(),
            street.as_str(),
            postal,
            city,
            region,
            country,
            tags.join(";").as_str(),
            status,
            custom.as_str(),
        ])?;
    }
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("flush CSV: {e}"))?
        .flush()?;
    Ok(probe_email)
}

// ---------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct Stat {
    p50: f64,
    p95: f64,
    n: usize,
}

fn stat(samples: &[Duration]) -> Stat {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    // Nearest-rank percentiles.
    let rank = |p: f64| {
        let k = ((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len().max(1));
        ms.get(k - 1).copied().unwrap_or(f64::NAN)
    };
    Stat {
        p50: rank(0.50),
        p95: rank(0.95),
        n: ms.len(),
    }
}

/// Results of one backend.
#[derive(Debug, Default)]
struct Results {
    engine: String,
    import_rows: usize,
    import_secs: f64,
    /// CPU time of this process during the import (Linux only).
    import_cpu_secs: Option<f64>,
    list_first: Stat,
    list_deep: Stat,
    search: Stat,
    search_terms: Vec<(String, Stat, usize)>,
    get: Stat,
}

struct Bench {
    rows: usize,
    iters: usize,
    warmup: usize,
    csv: PathBuf,
    probe_email: String,
}

impl Bench {
    async fn run(&self, db: &Db, label: &str) -> Result<Results> {
        let now = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        let registry = PermissionRegistry::default();
        let (tenant, owner) = kontor::tenants::create(
            db,
            &registry,
            Mode::Saas,
            "Bench AG",
            NewUser {
                email: "owner@bench.example".into(),
                name: "Bench Owner".into(),
                role: Role::Owner,
                password: "bench-password-123".into(),
                locale: None,
                customer_id: None,
            },
            now,
        )
        .await?;
        let who = Principal {
            tenant_id: TenantId::from_trusted(tenant.id.clone()),
            user_id: UserId::from_trusted(owner.id.clone()),
            role: Role::Owner,
            name: owner.name.clone(),
            email: owner.email.clone(),
            locale: None,
            customer_id: None,
            permissions: registry.names(),
            method: AuthMethod::Token {
                id: "bench-token".into(),
            },
        };
        let engine = engine_version(db).await?;

        // --- Import -------------------------------------------------------
        eprintln!("[{label}] importing {} rows ...", self.rows);
        let file = tokio::fs::File::open(&self.csv).await?;
        let reader = tokio::io::BufReader::with_capacity(1 << 20, file);
        let analyzer = autovacuum_stand_in(db, label).await?;
        let cpu_before = process_cpu_secs();
        let started = Instant::now();
        let quota = kontor::license::Quota::unlimited(kontor::license::LimitKind::Customers);
        let report = csv_import::import(db, &who, reader, &quota, now).await;
        let import_secs = started.elapsed().as_secs_f64();
        let import_cpu_secs = process_cpu_secs()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        if let Some(task) = analyzer {
            task.abort();
        }
        let report = report?;
        if report.imported as usize != self.rows || report.rejected != 0 {
            bail!(
                "[{label}] import: {} imported, {} rejected of {} (first rejections: {:?})",
                report.imported,
                report.rejected,
                self.rows,
                report.rejections.iter().take(3).collect::<Vec<_>>()
            );
        }
        eprintln!(
            "[{label}] imported in {import_secs:.1} s ({:.0} rows/s), {} s CPU in this process",
            self.rows as f64 / import_secs,
            import_cpu_secs.map_or("?".to_string(), |c| format!("{c:.1}"))
        );
        if db.backend() == Backend::Postgres {
            // What autovacuum would do after a bulk load, done now so the
            // measurement does not depend on when it wakes up.
            sqlx::query("VACUUM ANALYZE customers")
                .execute(db.pool())
                .await?;
        }

        // --- Inputs: keyset positions and ids (setup, not timed) ----------
        // The order `list` pages in; read once to pick deep cursors and
        // random ids.
        let order: Vec<(String, String)> = sqlx::query_as(
            "SELECT sort_key, id FROM customers WHERE tenant_id = $1 ORDER BY sort_key, id",
        )
        .bind(tenant.id.as_str())
        .fetch_all(db.pool())
        .await?;
        let n = order.len();
        if n < 100 {
            bail!("too few rows to benchmark ({n})");
        }
        let mut rng = StdRng::seed_from_u64(42);
        let deep: Vec<(String, String)> = (0..10)
            .map(|k| {
                let pos = n * (85 + k) / 100;
                let (key, id) = &order[pos];
                let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(serde_json::json!([key, id]).to_string());
                (cursor, order[pos + 1].1.clone())
            })
            .collect();
        let ids: Vec<CustomerId> = (0..self.iters)
            .map(|_| CustomerId::from_path(order[rng.gen_range(0..n)].1.clone()))
            .collect();
        drop(order);
        // The cursors must be ones `list` accepts and continues from.
        for (cursor, next_id) in &deep {
            let page = customers::list(db, &who, &deep_query(cursor)).await?;
            if page.items.first().map(|c| c.id.as_str()) != Some(next_id.as_str()) {
                bail!("[{label}] a deep cursor did not continue where expected");
            }
        }

        let terms: Vec<String> = [
            "treuhand",
            "brunner",
            "bluewin.ch",
            "winterthur",
            self.probe_email.as_str(),
        ]
        .into_iter()
        .map(str::to_string)
        .collect();

        // --- Timed reads ---------------------------------------------------
        let first_q = customers::ListQuery::default();
        eprintln!("[{label}] list, first page ...");
        let list_first = self
            .time(|_| async {
                let page = customers::list(db, &who, &first_q).await?;
                Ok(page.items.len())
            })
            .await?;

        eprintln!("[{label}] list, deep page ...");
        let deep_qs: Vec<customers::ListQuery> = deep.iter().map(|(c, _)| deep_query(c)).collect();
        let list_deep = self
            .time(|i| {
                let q = &deep_qs[i % deep_qs.len()];
                let who = &who;
                async move {
                    let page = customers::list(db, who, q).await?;
                    Ok(page.items.len())
                }
            })
            .await?;

        eprintln!("[{label}] search ...");
        let search_qs: Vec<customers::ListQuery> = terms
            .iter()
            .map(|t| customers::ListQuery {
                q: Some(t.clone()),
                ..Default::default()
            })
            .collect();
        let mut per_term: Vec<Vec<Duration>> = vec![Vec::new(); terms.len()];
        let mut hits = vec![0usize; terms.len()];
        for i in 0..self.warmup {
            customers::list(db, &who, &search_qs[i % terms.len()]).await?;
        }
        let mut all = Vec::with_capacity(self.iters);
        for i in 0..self.iters {
            let t = i % terms.len();
            let started = Instant::now();
            let page = customers::list(db, &who, &search_qs[t]).await?;
            let d = started.elapsed();
            hits[t] = page.items.len();
            per_term[t].push(d);
            all.push(d);
        }
        let search = stat(&all);
        let search_terms = terms
            .iter()
            .zip(per_term.iter())
            .zip(hits.iter())
            .map(|((t, d), h)| (t.clone(), stat(d), *h))
            .collect();

        eprintln!("[{label}] get by id ...");
        let get = self
            .time(|i| {
                let id = &ids[i % ids.len()];
                let who = &who;
                async move {
                    customers::get(db, who, id).await?;
                    Ok(1)
                }
            })
            .await?;

        eprintln!(
            "[{label}] done: import {:.0} rows/s; p95 ms: list {:.2}, deep {:.2}, search {:.2}, get {:.2}",
            self.rows as f64 / import_secs,
            list_first.p95,
            list_deep.p95,
            search.p95,
            get.p95
        );
        Ok(Results {
            engine,
            import_rows: self.rows,
            import_secs,
            import_cpu_secs,
            list_first,
            list_deep,
            search,
            search_terms,
            get,
        })
    }

    /// Warm up, then time `iters` sequential calls of `op(i)`.
    async fn time<F, Fut>(&self, op: F) -> Result<Stat>
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = kontor::Result<usize>>,
    {
        for i in 0..self.warmup {
            op(i).await?;
        }
        let mut samples = Vec::with_capacity(self.iters);
        for i in 0..self.iters {
            let started = Instant::now();
            let got = op(i).await?;
            samples.push(started.elapsed());
            if got == 0 {
                bail!("an operation returned nothing");
            }
        }
        Ok(stat(&samples))
    }
}

/// On a PostgreSQL server with `autovacuum = off`, run `ANALYZE customers`
/// every minute during the import, as autovacuum with its defaults (naptime
/// 60 s, analyze after 10 % growth) would. Without statistics PostgreSQL
/// plans the import's duplicate-e-mail check as a scan of every customer of
/// the tenant (the cached generic plan keeps doing so), and the import slows
/// down quadratically.
async fn autovacuum_stand_in(db: &Db, label: &str) -> Result<Option<tokio::task::JoinHandle<()>>> {
    if db.backend() != Backend::Postgres {
        return Ok(None);
    }
    let setting: String = sqlx::query_scalar("SHOW autovacuum")
        .fetch_one(db.pool())
        .await?;
    if setting != "off" {
        return Ok(None);
    }
    println!(
        "NOTICE: autovacuum is off on this PostgreSQL server; the benchmark runs ANALYZE customers \
         every 60 s during the import in its place."
    );
    let pool = db.pool().clone();
    let label = label.to_string();
    Ok(Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = sqlx::query("ANALYZE customers").execute(&pool).await {
                eprintln!("[{label}] ANALYZE failed: {e}");
            }
        }
    })))
}

/// User + system CPU seconds of this process so far (all threads), from
/// `/proc/self/stat`; `None` where that does not exist.
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th of them, in clock ticks (USER_HZ, 100).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn deep_query(cursor: &str) -> customers::ListQuery {
    customers::ListQuery {
        cursor: Some(cursor.to_string()),
        ..Default::default()
    }
}

async fn engine_version(db: &Db) -> Result<String> {
    Ok(match db.backend() {
        Backend::Sqlite => {
            let v: String = sqlx::query_scalar("SELECT sqlite_version()")
                .fetch_one(db.pool())
                .await?;
            format!("SQLite {v}")
        }
        Backend::Postgres => {
            let v: String = sqlx::query_scalar("SHOW server_version")
                .fetch_one(db.pool())
                .await?;
            format!("PostgreSQL {}", v.split_whitespace().next().unwrap_or(&v))
        }
    })
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// `p50 p95 verdict` of one backend (blank when it was not measured).
fn cell(s: Option<&Stat>, target_ms: Option<f64>) -> String {
    match s {
        Some(s) if s.n > 0 => {
            let v = target_ms.map_or("", |t| verdict(s.p95 < t));
            format!("{:>8.2} {:>8.2}  {:<6}", s.p50, s.p95, v)
        }
        _ => format!("{:>8} {:>8}  {:<6}", "-", "-", ""),
    }
}

fn ratio(sqlite: Option<f64>, pg: Option<f64>) -> String {
    match (sqlite, pg) {
        (Some(s), Some(p)) if s > 0.0 => format!("{:>6.2}x", p / s),
        _ => format!("{:>7}", "-"),
    }
}

fn print_table(rows: usize, iters: usize, sqlite: Option<&Results>, pg: Option<&Results>) {
    const W: usize = 42;
    let engine = |r: Option<&Results>| r.map_or("not measured".to_string(), |r| r.engine.clone());
    println!();
    println!(
        "Kontor CRM benchmark: {rows} customers, {iters} timed calls per operation \
         (one caller, after a warm-up); latencies in ms"
    );
    println!("SQLite: {}   PostgreSQL: {}", engine(sqlite), engine(pg));
    println!();
    println!(
        "{:<W$} {:<13} | {:^26} | {:^26} | {:>7}",
        "operation", "target", "SQLite", "PostgreSQL", "PG/SQLi"
    );
    println!(
        "{:<W$} {:<13} | {:>8} {:>8}  {:<6} | {:>8} {:>8}  {:<6} | {:>7}",
        "", "", "p50", "p95", "", "p50", "p95", "", "p95"
    );
    println!("{}", "-".repeat(W + 1 + 13 + 3 + 26 + 3 + 26 + 3 + 7));
    type Pick = fn(&Results) -> &Stat;
    let lines: [(&str, f64, Pick); 4] = [
        ("list, first page (50)", TARGET_LIST_MS, |r| &r.list_first),
        ("list, deep page (keyset, 85-95%)", TARGET_LIST_MS, |r| {
            &r.list_deep
        }),
        ("search (all terms)", TARGET_SEARCH_MS, |r| &r.search),
        ("get by id", TARGET_GET_MS, |r| &r.get),
    ];
    for (name, target, f) in lines {
        let s = sqlite.map(f);
        let p = pg.map(f);
        println!(
            "{:<W$} {:<13} | {} | {} | {}",
            name,
            format!("p95 < {target} ms"),
            cell(s, Some(target)),
            cell(p, Some(target)),
            ratio(s.map(|s| s.p95), p.map(|p| p.p95))
        );
        if name.starts_with("search") {
            let terms = sqlite.or(pg).map_or(&[][..], |r| &r.search_terms[..]);
            for (k, (term, _, _)) in terms.iter().enumerate() {
                let s = sqlite.and_then(|r| r.search_terms.get(k));
                let p = pg.and_then(|r| r.search_terms.get(k));
                let hits = s.or(p).map_or(0, |(_, _, h)| *h);
                let mut label = format!("  q={term:?}");
                if label.chars().count() > W - 8 {
                    label = label.chars().take(W - 11).collect::<String>() + "...";
                }
                println!(
                    "{:<W$} {:<13} | {} | {} | {}",
                    format!("{label} ({hits})"),
                    "",
                    cell(s.map(|(_, s, _)| s), None),
                    cell(p.map(|(_, s, _)| s), None),
                    ratio(s.map(|(_, s, _)| s.p95), p.map(|(_, s, _)| s.p95))
                );
            }
        }
    }
    let rate = |r: &Results| r.import_rows as f64 / r.import_secs;
    let import_cell = |r: Option<&Results>| match r {
        Some(r) => format!(
            "{:>10.0} rows/s   {:<6}",
            rate(r),
            verdict(rate(r) > TARGET_IMPORT_ROWS_PER_S)
        ),
        None => format!("{:>10} {:>6}   {:<6}", "-", "", ""),
    };
    let secs = |r: Option<&Results>| match r {
        Some(r) => format!("{:>10.1} s {:<13}", r.import_secs, ""),
        None => format!("{:>10} {:<15}", "-", ""),
    };
    let cpu = |r: Option<&Results>| match r.and_then(|r| r.import_cpu_secs) {
        Some(c) => format!("{c:>10.1} s {:<13}", ""),
        None => format!("{:>10} {:<15}", "-", ""),
    };
    println!(
        "{:<W$} {:<13} | {} | {} | {}",
        "CSV import",
        format!("> {TARGET_IMPORT_ROWS_PER_S:.0}/s"),
        import_cell(sqlite),
        import_cell(pg),
        ratio(sqlite.map(rate), pg.map(rate))
    );
    println!(
        "{:<W$} {:<13} | {} | {} |",
        "  (import wall time)",
        "",
        secs(sqlite),
        secs(pg)
    );
    println!(
        "{:<W$} {:<13} | {} | {} |",
        "  (import CPU, bench process)",
        "",
        cpu(sqlite),
        cpu(pg)
    );
    println!();
    println!("Search sub-rows: hits on the first page (at most 50) in brackets; the e-mail is an exact one.");
    println!("PG/SQLi: PostgreSQL p95 / SQLite p95 (import: PostgreSQL rows/s / SQLite rows/s).");
    println!(
        "Import CPU is this process only: for SQLite all of the work, for PostgreSQL the client side."
    );
}

// ---------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------

fn bench_dir() -> PathBuf {
    // target/<profile>/deps/crm-<hash> → target/kontor-bench
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .filter(|t| t.join("CACHEDIR.TAG").exists() || t.ends_with("target"))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("kontor-bench")
}

/// A fresh PostgreSQL schema; `None` (with a notice) when the server is not
/// reachable.
async fn postgres_schema(base: &str) -> Option<(String, String)> {
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let prepared = async {
        let mut conn =
            tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(base))
                .await
                .map_err(|_| anyhow::anyhow!("connection timed out"))??;
        // Database-wide; installed once in `public`, like the tests do.
        let _ = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
            .execute(&mut conn)
            .await;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        anyhow::Ok(())
    }
    .await;
    match prepared {
        Ok(()) => {
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema},public");
            Some((url, schema))
        }
        Err(e) => {
            println!(
                "NOTICE: PostgreSQL at {base} is not reachable ({e}); benchmarking SQLite only."
            );
            None
        }
    }
}

async fn drop_schema(base: &str, schema: &str) {
    match sqlx::PgConnection::connect(base).await {
        Ok(mut conn) => {
            if let Err(e) = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&mut conn)
                .await
            {
                eprintln!("warning: could not drop schema {schema}: {e}");
            }
        }
        Err(e) => eprintln!("warning: could not drop schema {schema}: {e}"),
    }
}

fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v} is not a number")),
        _ => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let rows = env_usize("KONTOR_BENCH_ROWS", DEFAULT_ROWS)?.max(1000);
    let iters = env_usize("KONTOR_BENCH_ITERS", DEFAULT_ITERS)?.max(10);
    let keep = std::env::var("KONTOR_BENCH_KEEP").is_ok_and(|v| !v.is_empty() && v != "0");
    let only = std::env::var("KONTOR_BENCH_ONLY")
        .ok()
        .map(|v| v.trim().to_lowercase())
        .filter(|v| !v.is_empty());
    if let Some(o) = &only {
        if o != "sqlite" && o != "postgres" {
            bail!("KONTOR_BENCH_ONLY={o}: expected sqlite or postgres");
        }
    }
    let pg_base = std::env::var("KONTOR_BENCH_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_string());

    let dir = bench_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let csv = dir.join("customers.csv");
    eprintln!("generating {rows} customers into {} ...", csv.display());
    let started = Instant::now();
    let probe_email = generate_csv(&csv, rows)?;
    eprintln!(
        "generated {:.0} MB in {:.1} s",
        std::fs::metadata(&csv)?.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let bench = Bench {
        rows,
        iters,
        warmup: (iters / 10).max(10),
        csv: csv.clone(),
        probe_email,
    };

    // SQLite.
    let mut sqlite = None;
    if only.as_deref() != Some("postgres") {
        let sqlite_file = dir.join("kontor.db");
        let db = Db::connect(&format!("sqlite://{}", sqlite_file.display())).await?;
        db.migrate().await?;
        let result = bench.run(&db, "sqlite").await;
        db.close().await;
        sqlite = Some(result?);
    }

    // PostgreSQL.
    let mut pg = None;
    let schema = match only.as_deref() {
        Some("sqlite") => None,
        _ => postgres_schema(&pg_base).await,
    };
    if let Some((url, schema)) = schema {
        let result = async {
            let db = Db::connect(&url).await?;
            db.migrate().await?;
            let r = bench.run(&db, "postgres").await;
            db.close().await;
            r
        }
        .await;
        if keep {
            eprintln!("kept PostgreSQL schema {schema} (KONTOR_BENCH_KEEP)");
        } else {
            drop_schema(&pg_base, &schema).await;
        }
        match result {
            Ok(r) => pg = Some(r),
            Err(e) => {
                // Keep what was measured.
                print_table(rows, iters, sqlite.as_ref(), None);
                return Err(e);
            }
        }
    }

    print_table(rows, iters, sqlite.as_ref(), pg.as_ref());

    if keep {
        eprintln!("kept {} (KONTOR_BENCH_KEEP)", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
