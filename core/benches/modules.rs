//! Module runtime benchmark: what running a feature as a WebAssembly module
//! costs next to running it in the core, measured side by side in one run.
//!
//! 1. **Route throughput** — the bundled `hello` module's
//!    `GET /api/v1/hello/greeting?name=Ada` against a native axum route
//!    doing the same work (`/bench/native-greeting`: authenticate the
//!    `Principal`, check `hello.view`, parse `name`, answer the same JSON),
//!    merged into `kontor::web::router(state)` under the same middleware
//!    stack. Two informational routes split the difference: the native
//!    route plus the two database reads the module path makes on top
//!    (`/bench/native-greeting-db`: the entitlement check, the module's
//!    `greeting` setting), and the module call without them
//!    (`/bench/module-greeting-no-db`: a fresh hello instance whose
//!    `settings.get` has no database behind it, no entitlement query). All
//!    four are driven over real HTTP on 127.0.0.1 by the same number of
//!    concurrent `reqwest` clients for the same time, in two rounds (the
//!    second in reverse order, so drift of a shared machine hits all
//!    alike); then the server side of one module request is taken apart in
//!    process, one caller at a time. Target: module ≥ 50 % of native
//!    requests/s.
//! 2. **Instantiation per call** — with `kontor_runtime` directly (no
//!    database): a fresh `Call` (store) alone, and a fresh `Call` plus the
//!    most trivial export call (`filter` on a hook the module ignores). The
//!    runtime instantiates inside every export call, so the second figure is
//!    store + instantiation + a no-op call + teardown: an upper bound of the
//!    instantiation, and the one judged. Target: p50 < 50 µs.
//! 3. **Filter fan-out** — the hello component loaded under 5 module ids
//!    into one `ModuleHost`, all 5 entitled, `filters::run` on
//!    `customer.before_save`. Also shown apart: the 5 entitlement lookups
//!    alone, the 5 filter calls alone, both interleaved by hand, one
//!    entitlement query for all modules, and that one query followed by the
//!    5 calls. Target: p50 < 100 µs.
//! 4. **Start-up to first served request** — the real `kontor` binary
//!    (`CARGO_BIN_EXE_kontor`, built by `cargo bench`) after `kontor migrate`
//!    and `kontor admin create`, timed from spawn until `GET /health`
//!    answers 200: first start with an empty compile cache, warm starts
//!    (`cache/modules/*.cwasm` present), and a cold start again after the
//!    cache was emptied. Target: warm start < 500 ms.
//!
//! The database is SQLite in a fresh temporary folder. Like the `kontor`
//! binary, the benchmark turns off backtraces of error values unless
//! `RUST_LIB_BACKTRACE` is set (`kontor::quiet_error_backtraces`); the
//! header says whether they are captured: wasmtime 48 makes one per dropped
//! store, so with capture on every module call pays for a stack walk.
//!
//! Run (release build):
//!
//! ```text
//! cargo bench -p kontor --bench modules
//! ```
//!
//! Environment (all optional; every loop is bounded):
//!
//! * `KONTOR_BENCH_CLIENTS` — concurrent HTTP clients (default 8);
//! * `KONTOR_BENCH_SECS` — seconds per route and round (default 3; two
//!   rounds, after a 1 s warm-up per route);
//! * `KONTOR_BENCH_ITERS` — timed calls for instantiation and filters
//!   (default 2000, after a warm-up of a tenth of that);
//! * `KONTOR_BENCH_STARTS` — warm starts of the binary (default 3).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use kontor::auth::users::NewUser;
use kontor::auth::{Principal, Role};
use kontor::clock::{Clock, SharedClock, SystemClock};
use kontor::config::{Config, Mode};
use kontor::db::testing::TestDb;
use kontor::db::{Backend, Db};
use kontor::ids::TenantId;
use kontor::modules::host::ModuleHost;
use kontor::modules::manifest::Manifest;
use kontor::modules::{entitlements, filters, registry};
use kontor::settings;
use kontor::web::{middleware, AppState};
use kontor_runtime::call::{FilterResult, HttpRequest, Principal as ModulePrincipal};
use kontor_runtime::host::NoCapabilities;
use kontor_runtime::{Call, CompiledModule, Deadlines, Runtime, RuntimeConfig};

const TARGET_THROUGHPUT_RATIO: f64 = 0.50;
const TARGET_INSTANTIATE_US: f64 = 50.0;
const TARGET_FILTER_CHAIN_US: f64 = 100.0;
const TARGET_WARM_START_MS: f64 = 500.0;

const PASSWORD: &str = "correct horse battery staple";
const HOOK: &str = "customer.before_save";
const FAN_OUT: usize = 5;
/// Most requests one HTTP run may send, whatever its duration.
const MAX_REQUESTS_PER_RUN: usize = 500_000;
/// Longest wait for a started binary to answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

fn main() -> Result<()> {
    // As the `kontor` binary does: measure the server as it runs.
    kontor::quiet_error_backtraces();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

struct Settings {
    clients: usize,
    secs: u64,
    iters: usize,
    starts: usize,
}

async fn run() -> Result<()> {
    let settings = Settings {
        clients: env_usize("KONTOR_BENCH_CLIENTS", 8)?.max(1),
        secs: env_usize("KONTOR_BENCH_SECS", 3)?.max(1) as u64,
        iters: env_usize("KONTOR_BENCH_ITERS", 2000)?.max(10),
        starts: env_usize("KONTOR_BENCH_STARTS", 3)?.max(1),
    };
    let tdb = TestDb::new(Backend::Sqlite)
        .await
        .context("a SQLite database for the benchmark")?;
    let data_dir = std::env::temp_dir().join(format!(
        "kontor-bench-modules-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&data_dir)?;
    println!("Kontor module runtime benchmark");
    println!(
        "  database: SQLite in a temp dir ({}), data dir {}",
        tdb.url,
        data_dir.display()
    );
    println!(
        "  machine: {} CPUs (load generator, server and modules share them)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("  backtraces: {}", backtrace_note());
    println!();

    let outcome = measure_all(&tdb.db, &tdb.url, &data_dir, &settings).await;
    tdb.cleanup().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    let summary = outcome?;
    summary.print();
    Ok(())
}

/// Whether error values capture backtraces in this process: wasmtime 48
/// builds an error value (so, with capture on, a backtrace) every time a
/// store is dropped, i.e. once per module call — a cost worth seeing next
/// to the numbers.
fn backtrace_note() -> String {
    let var = |k: &str| std::env::var(k).ok();
    let (lib, rust) = (var("RUST_LIB_BACKTRACE"), var("RUST_BACKTRACE"));
    let capture = match lib.as_deref().or(rust.as_deref()) {
        Some("0") | None => false,
        Some(_) => true,
    };
    format!(
        "RUST_BACKTRACE={} RUST_LIB_BACKTRACE={} — {}",
        rust.as_deref().unwrap_or("(unset)"),
        lib.as_deref().unwrap_or("(unset)"),
        if capture {
            "error values capture backtraces, and wasmtime 48 makes one per store drop: \
             every module call below pays for a stack walk (RUST_LIB_BACKTRACE=0 turns it off)"
        } else {
            "off"
        }
    )
}

async fn measure_all(db: &Db, url: &str, data_dir: &Path, s: &Settings) -> Result<Summary> {
    let app = BenchApp::start(db, url, data_dir).await?;
    let route = route_throughput(&app, s).await?;
    let instantiate = instantiation(s).await?;
    let chain = filter_fan_out(&app, data_dir, s).await?;
    let start = start_up(data_dir, s).await?;
    Ok(Summary {
        route,
        instantiate,
        chain,
        start,
    })
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy)]
struct Stats {
    n: usize,
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort_unstable();
        let n = samples.len();
        let at = |p: f64| {
            if n == 0 {
                Duration::ZERO
            } else {
                samples[((p * (n - 1) as f64).round() as usize).min(n - 1)]
            }
        };
        let total: Duration = samples.iter().sum();
        Stats {
            n,
            p50: at(0.50),
            p99: at(0.99),
            mean: if n == 0 {
                Duration::ZERO
            } else {
                total / n as u32
            },
        }
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

// ---------------------------------------------------------------------------
// The in-process host
// ---------------------------------------------------------------------------

/// The real router (plus the bench's native routes) served on 127.0.0.1,
/// with one tenant, its logged-in owner and the hello module installed
/// and entitled.
struct BenchApp {
    base: String,
    state: AppState,
    tenant: TenantId,
    token: String,
    http: reqwest::Client,
    /// hello compiled by the bench's own runtime, for calls that bypass
    /// the module host (no database behind its capabilities).
    hello: Arc<CompiledModule>,
}

#[derive(Deserialize)]
struct GreetingQuery {
    name: Option<String>,
}

/// What the hello module's `/greeting` does, natively: the same
/// authentication (the `Principal` extractor), the route's permission, the
/// `name` parameter, the same JSON.
async fn native_greeting(
    who: Principal,
    Query(q): Query<GreetingQuery>,
) -> kontor::Result<Json<Value>> {
    who.require("hello.view")?;
    let name = q.name.unwrap_or_else(|| "world".to_string());
    Ok(Json(json!({ "greeting": format!("Hello, {name}") })))
}

/// [`native_greeting`] plus the two database reads the module path makes
/// on top: the tenant's entitlement (the host, before calling) and the
/// module's `greeting` setting (the guest, through `settings.get`).
async fn native_greeting_db(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<GreetingQuery>,
) -> kontor::Result<Json<Value>> {
    let hello = state
        .modules()
        .get("hello")
        .ok_or_else(|| kontor::Error::internal("hello is not loaded"))?;
    entitlements::check(
        state.db(),
        state.licensing(),
        &who.tenant_id,
        &hello.manifest,
        state.now_ms(),
    )
    .await?;
    who.require("hello.view")?;
    let word = read_greeting_setting(state.db(), &who.tenant_id)
        .await?
        .and_then(|v| serde_json::from_str::<String>(&v).ok())
        .unwrap_or_else(|| "Hello".to_string());
    let name = q.name.unwrap_or_else(|| "world".to_string());
    Ok(Json(json!({ "greeting": format!("{word}, {name}") })))
}

/// The read `settings.get("greeting")` makes for hello (`HostCaps::setting`):
/// the tenant's stored settings, from the per-tenant cache.
async fn read_greeting_setting(db: &Db, tenant: &TenantId) -> kontor::Result<Option<String>> {
    let now = SystemClock.now_ms();
    Ok(settings::stored(db, tenant, now)
        .await?
        .get("module.hello.greeting")
        .cloned())
}

/// hello's `/greeting` called as the module route calls it (permission,
/// headers without credentials, the principal, a fresh instance, the same
/// deadline) minus its two database reads: no entitlement query, and
/// capabilities that answer `settings.get` without the database (the
/// default applies). What the module route would cost with entitlements
/// and settings served from memory.
async fn module_greeting_no_db(
    Extension(hello): Extension<Arc<CompiledModule>>,
    who: Principal,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> kontor::Result<Response> {
    who.require("hello.view")?;
    let mut permissions: Vec<String> = who.permissions.iter().cloned().collect();
    permissions.sort();
    let headers = headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "cookie" | "authorization"))
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect();
    let req = HttpRequest {
        method: "GET".into(),
        path: "/greeting".into(),
        query: query.unwrap_or_default(),
        headers,
        body: Vec::new(),
        principal: Some(ModulePrincipal {
            user_id: who.user_id.to_string(),
            role: who.role.as_str().to_string(),
            permissions,
            locale: who.locale.clone().unwrap_or_else(|| "de".into()),
        }),
    };
    let res = Call::new(&hello, Arc::new(NoCapabilities), Deadlines::default().http)
        .handle_http(req)
        .await
        .map_err(kontor::Error::internal)?;
    let status = StatusCode::from_u16(res.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok((
        status,
        [(header::CONTENT_TYPE, "application/json")],
        res.body,
    )
        .into_response())
}

/// The bench routes under the same middleware stack as
/// `kontor::web::router` puts around the product's routes (layers apply
/// only to routes present when they are added, so merging bare routes into
/// the product router would spare the native side that work).
fn bench_routes(state: AppState, hello: Arc<CompiledModule>) -> Router {
    Router::new()
        .route("/bench/native-greeting", get(native_greeting))
        .route("/bench/native-greeting-db", get(native_greeting_db))
        .route("/bench/module-greeting-no-db", get(module_greeting_no_db))
        .layer(Extension(hello))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::security_headers,
        ))
        .layer(PropagateRequestIdLayer::new(middleware::REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(middleware::make_span))
        .layer(SetRequestIdLayer::new(
            middleware::REQUEST_ID,
            MakeRequestUuid,
        ))
        .with_state(state)
}

impl BenchApp {
    async fn start(db: &Db, url: &str, data_dir: &Path) -> Result<BenchApp> {
        let mut env = HashMap::new();
        env.insert("KONTOR_DATABASE_URL".to_string(), url.to_string());
        env.insert("KONTOR_MODE".to_string(), "saas".to_string());
        env.insert(
            "KONTOR_DATA_DIR".to_string(),
            data_dir.join("in-process").display().to_string(),
        );
        let config = Config::from_sources(None, &env)?;
        let clock: SharedClock = Arc::new(SystemClock);
        let state = AppState::new(db.clone(), config, clock)?;

        let email = "owner@bench.example.com".to_string();
        let owner = NewUser {
            email: email.clone(),
            name: "Bench Owner".into(),
            role: Role::Owner,
            password: PASSWORD.into(),
            locale: None,
            customer_id: None,
        };
        let (tenant, _) = kontor::tenants::create(
            db,
            state.permissions(),
            Mode::Saas,
            "Bench Tenant",
            owner,
            state.now_ms(),
        )
        .await?;
        let tenant = TenantId::from_trusted(tenant.id);

        let (text, wasm) = kontor_runtime::bundled::HELLO;
        let manifest = Manifest::parse("hello/module.toml", text)?;
        registry::install(
            db,
            state.modules(),
            Mode::Saas,
            registry::Candidate {
                manifest: &manifest,
                component: wasm,
                source: registry::Source::Bundled,
                package: None,
            },
            state.now_ms(),
        )
        .await?;
        entitlements::grant(db, &tenant, "hello", "manual", None, state.now_ms()).await?;

        let runtime = Runtime::new(RuntimeConfig::default())?;
        let hello = Arc::new(CompiledModule::load(&runtime, wasm, &manifest.api)?);
        let app =
            kontor::web::router(state.clone()).merge(bench_routes(state.clone(), hello.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            if let Err(e) = axum::serve(listener, service).await {
                eprintln!("bench server stopped: {e}");
            }
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let token = login(&http, &base, &email).await?;
        Ok(BenchApp {
            base,
            state,
            tenant,
            token,
            http,
            hello,
        })
    }
}

async fn login(http: &reqwest::Client, base: &str, email: &str) -> Result<String> {
    let res = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    if !status.is_success() {
        bail!("login of {email} failed: {status} {body}");
    }
    body["token"]
        .as_str()
        .map(str::to_string)
        .context("login answer without token")
}

// ---------------------------------------------------------------------------
// 1. Route throughput
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Native,
    NativeDb,
    Module,
    ModuleNoDb,
}

impl Route {
    const ALL: [Route; 4] = [
        Route::Native,
        Route::NativeDb,
        Route::Module,
        Route::ModuleNoDb,
    ];

    fn path(self) -> &'static str {
        match self {
            Route::Native => "/bench/native-greeting?name=Ada",
            Route::NativeDb => "/bench/native-greeting-db?name=Ada",
            Route::Module => "/api/v1/hello/greeting?name=Ada",
            Route::ModuleNoDb => "/bench/module-greeting-no-db?name=Ada",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Route::Native => "native",
            Route::NativeDb => "native + the module path's 2 db reads",
            Route::Module => "module (hello)",
            Route::ModuleNoDb => "module call without its 2 db reads",
        }
    }
}

/// Requests of one route: how many, over how long, and their latencies.
#[derive(Default)]
struct Load {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct RouteResult {
    clients: usize,
    secs: u64,
    rows: Vec<(Route, f64, Stats)>,
}

impl RouteResult {
    fn rate(&self, route: Route) -> f64 {
        self.rows.iter().find(|r| r.0 == route).map_or(0.0, |r| r.1)
    }

    fn ratio(&self) -> f64 {
        self.rate(Route::Module) / self.rate(Route::Native).max(1e-9)
    }
}

/// `clients` concurrent callers of `url` for `duration` (at most
/// [`MAX_REQUESTS_PER_RUN`] requests); every answer must be 200 with the
/// expected JSON.
async fn drive(app: &BenchApp, route: Route, clients: usize, duration: Duration) -> Result<Load> {
    let url = format!("{}{}", app.base, route.path());
    let issued = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let http = app.http.clone();
        let url = url.clone();
        let token = app.token.clone();
        let issued = issued.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < end
                && issued.fetch_add(1, Ordering::Relaxed) < MAX_REQUESTS_PER_RUN
            {
                let t = Instant::now();
                let res = http.get(&url).bearer_auth(&token).send().await?;
                let status = res.status();
                let body = res.bytes().await?;
                latencies.push(t.elapsed());
                if status != reqwest::StatusCode::OK {
                    bail!(
                        "{url}: {status} {}",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    );
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut load = Load::default();
    for task in tasks {
        load.latencies.extend(task.await??);
    }
    load.elapsed = start.elapsed();
    Ok(load)
}

async fn route_throughput(app: &BenchApp, s: &Settings) -> Result<RouteResult> {
    println!(
        "1. Route throughput: {} concurrent clients over HTTP on 127.0.0.1, 2 rounds × {} s per route",
        s.clients, s.secs
    );
    // Same answer from every route, or the comparison means nothing.
    for route in Route::ALL {
        let res = app
            .http
            .get(format!("{}{}", app.base, route.path()))
            .bearer_auth(&app.token)
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await?;
        if status != reqwest::StatusCode::OK || body != json!({ "greeting": "Hello, Ada" }) {
            bail!("{} answered {status} {body}", route.path());
        }
    }
    for route in Route::ALL {
        drive(app, route, s.clients, Duration::from_secs(1)).await?;
    }
    let mut loads: Vec<(Route, Load)> = Route::ALL.iter().map(|r| (*r, Load::default())).collect();
    for round in 0..2 {
        let mut order: Vec<usize> = (0..loads.len()).collect();
        if round == 1 {
            order.reverse();
        }
        for i in order {
            let route = loads[i].0;
            let l = drive(app, route, s.clients, Duration::from_secs(s.secs)).await?;
            loads[i].1.latencies.extend(l.latencies);
            loads[i].1.elapsed += l.elapsed;
        }
    }
    let mut result = RouteResult {
        clients: s.clients,
        secs: s.secs,
        rows: Vec::new(),
    };
    println!(
        "   {:<38} {:<38} {:>9} {:>9} {:>9} {:>9}",
        "route", "path", "requests", "req/s", "p50 ms", "p99 ms"
    );
    for (route, load) in loads {
        let rate = load.per_second();
        let stats = Stats::of(load.latencies);
        println!(
            "   {:<38} {:<38} {:>9} {:>9.0} {:>9.3} {:>9.3}",
            route.label(),
            route.path(),
            stats.n,
            rate,
            ms(stats.p50),
            ms(stats.p99)
        );
        result.rows.push((route, rate, stats));
    }
    // Where a module request's server time goes: one caller, in process.
    let db = app.state.db();
    let host = app.state.modules();
    let module = host.get("hello").context("hello is not loaded")?;
    let greeting = || HttpRequest {
        method: "GET".into(),
        path: "/greeting".into(),
        query: "name=Ada".into(),
        ..Default::default()
    };
    let no_caps = || -> Arc<dyn kontor_runtime::Capabilities> { Arc::new(NoCapabilities) };
    let deadline = Deadlines::default().http;
    let warm = s.iters / 10;
    let check = timed(warm, s.iters, || async {
        let now = app.state.now_ms();
        entitlements::check(db, host.licensing(), &app.tenant, &module.manifest, now).await?;
        Ok(())
    })
    .await?;
    let setting = timed(warm, s.iters, || async {
        read_greeting_setting(db, &app.tenant).await?;
        Ok(())
    })
    .await?;
    let bare_call = timed(warm, s.iters, || async {
        Call::new(&app.hello, no_caps(), deadline)
            .handle_http(greeting())
            .await?;
        Ok(())
    })
    .await?;
    let call_then_setting = timed(warm, s.iters, || async {
        Call::new(&app.hello, no_caps(), deadline)
            .handle_http(greeting())
            .await?;
        read_greeting_setting(db, &app.tenant).await?;
        Ok(())
    })
    .await?;
    let host_call = timed(warm, s.iters, || async {
        let res = host.handle_http(&module, &app.tenant, greeting()).await?;
        if res.status != 200 {
            bail!("/greeting answered {}", res.status);
        }
        Ok(())
    })
    .await?;
    println!("   where a module request's server time goes (in process, one caller, no HTTP):");
    println!("   {:<66} {:>9} {:>9}", "", "p50 µs", "p99 µs");
    for (label, st) in [
        ("entitlements::check (host, before the call)", check),
        ("the greeting setting's read alone (cached)", setting),
        (
            "Call::new + handle-http /greeting, no db behind settings.get",
            bare_call,
        ),
        (
            "that call, then the setting's query, back to back",
            call_then_setting,
        ),
        (
            "ModuleHost::handle_http /greeting (guest reads the setting)",
            host_call,
        ),
    ] {
        println!("   {:<66} {:>9.1} {:>9.1}", label, us(st.p50), us(st.p99));
    }
    let native = result.rate(Route::Native).max(1e-9);
    println!(
        "   module / native = {:.0} %   target ≥ {:.0} %   {}   (native + 2 db reads / native = {:.0} %, module without its 2 db reads / native = {:.0} %)",
        result.ratio() * 100.0,
        TARGET_THROUGHPUT_RATIO * 100.0,
        verdict(result.ratio() >= TARGET_THROUGHPUT_RATIO),
        result.rate(Route::NativeDb) / native * 100.0,
        result.rate(Route::ModuleNoDb) / native * 100.0,
    );
    println!();
    Ok(result)
}

// ---------------------------------------------------------------------------
// 2. Instantiation per call
// ---------------------------------------------------------------------------

struct InstantiateResult {
    store_only: Stats,
    full: Stats,
}

async fn instantiation(s: &Settings) -> Result<InstantiateResult> {
    println!(
        "2. Instantiation per call: kontor_runtime directly, hello component, no database, {} calls each",
        s.iters
    );
    let (text, wasm) = kontor_runtime::bundled::HELLO;
    let manifest = Manifest::parse("hello/module.toml", text)?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let compiled = CompiledModule::load(&runtime, wasm, &manifest.api)?;
    let caps: Arc<dyn kontor_runtime::Capabilities> = Arc::new(NoCapabilities);
    let deadline = Duration::from_millis(200);

    let warm = s.iters / 10;
    let store_only = timed(warm, s.iters, || async {
        drop(Call::new(&compiled, caps.clone(), deadline));
        Ok(())
    })
    .await?;
    let full = timed(warm, s.iters, || async {
        let verdict = Call::new(&compiled, caps.clone(), deadline)
            .filter("bench.noop", "{}")
            .await?;
        if verdict != FilterResult::Pass {
            bail!("the no-op filter call answered {verdict:?}");
        }
        Ok(())
    })
    .await?;
    let greeting = timed(warm, s.iters, || async {
        let res = Call::new(&compiled, caps.clone(), deadline)
            .handle_http(HttpRequest {
                method: "GET".into(),
                path: "/greeting".into(),
                query: "name=Ada".into(),
                ..Default::default()
            })
            .await?;
        if res.status != 200 {
            bail!("/greeting answered {}", res.status);
        }
        Ok(())
    })
    .await?;
    let result = InstantiateResult { store_only, full };
    println!(
        "   {:<58} {:>9} {:>9} {:>9}",
        "", "p50 µs", "p99 µs", "mean µs"
    );
    for (label, st) in [
        ("Call::new alone (fresh store, dropped)", result.store_only),
        (
            "Call::new + no-op filter export (store+instantiate+call)",
            result.full,
        ),
        (
            "Call::new + handle-http /greeting (no db: default setting)",
            greeting,
        ),
    ] {
        println!(
            "   {:<58} {:>9.1} {:>9.1} {:>9.1}",
            label,
            us(st.p50),
            us(st.p99),
            us(st.mean)
        );
    }
    println!(
        "   instantiation per call ≤ {:.1} µs (p50 of the whole call)   target < {:.0} µs   {}",
        us(result.full.p50),
        TARGET_INSTANTIATE_US,
        verdict(us(result.full.p50) < TARGET_INSTANTIATE_US)
    );
    println!();
    Ok(result)
}

// ---------------------------------------------------------------------------
// 3. Filter fan-out
// ---------------------------------------------------------------------------

struct ChainResult {
    chain: Stats,
    projected: Stats,
}

/// The entitlement keys a tenant may use at `now`, in one query (what a
/// filter chain would need instead of one query per module).
async fn entitled_keys(db: &Db, tenant: &TenantId, now: i64) -> Result<HashSet<String>> {
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT module_id FROM module_entitlements WHERE tenant_id = $1 AND status = 'active' \
         AND (valid_until IS NULL OR valid_until > $2)",
    )
    .bind(tenant.as_str())
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    Ok(keys.into_iter().collect())
}

async fn timed<F, Fut>(warm: usize, iters: usize, mut f: F) -> Result<Stats>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut samples = Vec::with_capacity(iters);
    for i in 0..warm + iters {
        let t = Instant::now();
        f().await?;
        if i >= warm {
            samples.push(t.elapsed());
        }
    }
    Ok(Stats::of(samples))
}

async fn filter_fan_out(app: &BenchApp, data_dir: &Path, s: &Settings) -> Result<ChainResult> {
    println!(
        "3. Filter fan-out: `{HOOK}` through {FAN_OUT} modules (hello loaded under {FAN_OUT} ids, all entitled), {} runs each",
        s.iters
    );
    let db = app.state.db();
    let clock: SharedClock = Arc::new(SystemClock);
    let host = ModuleHost::new(
        db.clone(),
        clock.clone(),
        kontor::auth::roles::PermissionRegistry::default(),
        Some(data_dir.join("in-process").join("cache").join("modules")),
    )?;
    let (text, wasm) = kontor_runtime::bundled::HELLO;
    let now = clock.now_ms();
    for i in 1..=FAN_OUT {
        let id = format!("hello-{i}");
        let manifest = Manifest::parse(&format!("{id}/module.toml"), &text.replace("hello", &id))?;
        let key = manifest.entitlement_key().to_string();
        host.load(manifest, wasm)?;
        entitlements::grant(db, &app.tenant, &key, "manual", None, now).await?;
    }
    let chain_modules = host.filters(HOOK);
    if chain_modules.len() != FAN_OUT {
        bail!(
            "{} modules run {HOOK}, expected {FAN_OUT}",
            chain_modules.len()
        );
    }
    let payload = json!({
        "company": "Bench Hosting AG",
        "email": "info@bench-hosting.example.com",
        "phone": "+41 44 123 45 67",
        "tags": ["hosting", "premium"],
        "custom": { "contract": "H-2026-001" }
    });
    let payload_text = payload.to_string();
    let tenant = &app.tenant;
    let warm = s.iters / 10;

    let chain = timed(warm, s.iters, || async {
        let out = filters::run(db, &host, tenant, HOOK, payload.clone(), now).await?;
        if out != payload {
            bail!("the filter chain changed the payload: {out}");
        }
        Ok(())
    })
    .await?;
    let lookups = timed(warm, s.iters, || async {
        for m in &chain_modules {
            if !entitlements::access(db, host.licensing(), tenant, &m.manifest, now)
                .await?
                .is_enabled()
            {
                bail!("{} is not entitled", m.manifest.id);
            }
        }
        Ok(())
    })
    .await?;
    let calls = timed(warm, s.iters, || async {
        for m in &chain_modules {
            host.filter(m, tenant, HOOK, &payload_text).await?;
        }
        Ok(())
    })
    .await?;
    let interleaved = timed(warm, s.iters, || async {
        for m in &chain_modules {
            if entitlements::access(db, host.licensing(), tenant, &m.manifest, now)
                .await?
                .is_enabled()
            {
                host.filter(m, tenant, HOOK, &payload_text).await?;
            }
        }
        Ok(())
    })
    .await?;
    let one_query = timed(warm, s.iters, || async {
        let keys = entitled_keys(db, tenant, now).await?;
        if keys.len() < FAN_OUT {
            bail!("only {} entitlements found", keys.len());
        }
        Ok(())
    })
    .await?;
    let projected = timed(warm, s.iters, || async {
        let keys = entitled_keys(db, tenant, now).await?;
        for m in &chain_modules {
            if keys.contains(m.manifest.entitlement_key()) {
                host.filter(m, tenant, HOOK, &payload_text).await?;
            }
        }
        Ok(())
    })
    .await?;
    let result = ChainResult { chain, projected };
    println!(
        "   {:<58} {:>9} {:>9} {:>9}",
        "", "p50 µs", "p99 µs", "mean µs"
    );
    for (label, st) in [
        ("filters::run, 5 modules (the chain)", chain),
        ("  its parts alone: 5 × entitlements::access", lookups),
        ("  its parts alone: 5 × ModuleHost::filter", calls),
        (
            "  both interleaved by hand, as filters::run does",
            interleaved,
        ),
        ("  1 query for all of the tenant's entitlements", one_query),
        ("  that 1 query + 5 × ModuleHost::filter", projected),
    ] {
        println!(
            "   {:<58} {:>9.1} {:>9.1} {:>9.1}",
            label,
            us(st.p50),
            us(st.p99),
            us(st.mean)
        );
    }
    println!(
        "   chain p50 {:.1} µs   target < {:.0} µs   {}",
        us(result.chain.p50),
        TARGET_FILTER_CHAIN_US,
        verdict(us(result.chain.p50) < TARGET_FILTER_CHAIN_US)
    );
    println!();
    Ok(result)
}

// ---------------------------------------------------------------------------
// 4. Start-up to first served request
// ---------------------------------------------------------------------------

struct StartResult {
    first_cold: Duration,
    warm: Vec<Duration>,
    cold_again: Duration,
}

impl StartResult {
    fn warm_median(&self) -> Duration {
        let mut w = self.warm.clone();
        w.sort_unstable();
        w.get(w.len() / 2).copied().unwrap_or_default()
    }
}

/// A `kontor` command with only this benchmark's settings (no inherited
/// `KONTOR_*`, no `kontor.toml` from the working directory).
fn kontor(dir: &Path, listen: Option<&str>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kontor"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KONTOR_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("KONTOR_DATA_DIR", dir)
        .env("KONTOR_LOG", "warn")
        .stdin(std::process::Stdio::null());
    if let Some(addr) = listen {
        cmd.env("KONTOR_LISTEN", addr);
    }
    cmd
}

async fn run_to_end(dir: &Path, args: &[&str]) -> Result<()> {
    let out = kontor(dir, None).args(args).output().await?;
    if !out.status.success() {
        bail!(
            "kontor {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn cached_components(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("cache").join("modules"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                .count()
        })
        .unwrap_or(0)
}

/// Start `kontor serve` on a free port; the time until `/health` answers
/// 200, and whether the hello module came from the compile cache.
async fn start_once(dir: &Path, admin_email: &str) -> Result<(Duration, Option<bool>)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("serve.log"))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let health = format!("http://{addr}/health");
    let start = Instant::now();
    let mut child = kontor(dir, Some(&addr))
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    let served = loop {
        if let Ok(res) = http.get(&health).send().await {
            if res.status() == reqwest::StatusCode::OK {
                break Ok(start.elapsed());
            }
        }
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!(
                "kontor serve exited with {status}: {}",
                std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
            ));
        }
        if start.elapsed() > START_TIMEOUT {
            break Err(anyhow::anyhow!(
                "kontor serve did not answer /health in {START_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let from_cache = match &served {
        Ok(_) => hello_from_cache(&http, &addr, admin_email).await.ok(),
        Err(_) => None,
    };
    child.kill().await?;
    Ok((served?, from_cache))
}

async fn hello_from_cache(http: &reqwest::Client, addr: &str, email: &str) -> Result<bool> {
    let base = format!("http://{addr}");
    let token = login(http, &base, email).await?;
    let list: Value = http
        .get(format!("{base}/api/v1/modules"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    list.as_array()
        .and_then(|l| l.iter().find(|m| m["id"] == "hello"))
        .and_then(|m| m["health"]["from_cache"].as_bool())
        .context("hello not in /api/v1/modules")
}

fn cache_note(from_cache: Option<bool>) -> &'static str {
    match from_cache {
        Some(true) => "hello loaded from cache",
        Some(false) => "hello compiled",
        None => "cache use unknown",
    }
}

async fn start_up(data_dir: &Path, s: &Settings) -> Result<StartResult> {
    let bin = env!("CARGO_BIN_EXE_kontor");
    println!("4. Start-up to first served request: `{bin}` serve, timed from spawn until GET /health is 200");
    let dir = data_dir.join("binary");
    std::fs::create_dir_all(&dir)?;
    let email = "admin@bench.example.com";
    run_to_end(&dir, &["migrate"]).await?;
    run_to_end(
        &dir,
        &["admin", "create", "--email", email, "--password", PASSWORD],
    )
    .await?;

    let before = cached_components(&dir);
    let (first_cold, note) = start_once(&dir, email).await?;
    println!(
        "   first start, empty compile cache ({before} .cwasm before)        {:>8.1} ms   ({})",
        ms(first_cold),
        cache_note(note)
    );
    let mut warm = Vec::with_capacity(s.starts);
    for i in 1..=s.starts {
        let before = cached_components(&dir);
        let (t, note) = start_once(&dir, email).await?;
        println!(
            "   warm start {i}, compile cache present ({before} .cwasm)          {:>8.1} ms   ({})",
            ms(t),
            cache_note(note)
        );
        warm.push(t);
    }
    std::fs::remove_dir_all(dir.join("cache").join("modules"))?;
    let (cold_again, note) = start_once(&dir, email).await?;
    println!(
        "   cold start again, cache emptied, module installed      {:>8.1} ms   ({})",
        ms(cold_again),
        cache_note(note)
    );
    let result = StartResult {
        first_cold,
        warm,
        cold_again,
    };
    println!(
        "   warm start (median of {}) {:.1} ms   target < {:.0} ms   {}",
        result.warm.len(),
        ms(result.warm_median()),
        TARGET_WARM_START_MS,
        verdict(ms(result.warm_median()) < TARGET_WARM_START_MS)
    );
    println!();
    Ok(result)
}

// ---------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------

struct Summary {
    route: RouteResult,
    instantiate: InstantiateResult,
    chain: ChainResult,
    start: StartResult,
}

impl Summary {
    fn print(&self) {
        let r = &self.route;
        let rows = [
            (
                format!(
                    "module route req/s vs native ({} clients, 2×{} s)",
                    r.clients, r.secs
                ),
                format!(
                    "{:.0} % ({:.0} vs {:.0}/s)",
                    r.ratio() * 100.0,
                    r.rate(Route::Module),
                    r.rate(Route::Native)
                ),
                format!("≥ {:.0} %", TARGET_THROUGHPUT_RATIO * 100.0),
                r.ratio() >= TARGET_THROUGHPUT_RATIO,
            ),
            (
                "instantiation per call, p50 (whole no-op call)".to_string(),
                format!("{:.1} µs", us(self.instantiate.full.p50)),
                format!("< {TARGET_INSTANTIATE_US:.0} µs"),
                us(self.instantiate.full.p50) < TARGET_INSTANTIATE_US,
            ),
            (
                format!("filter chain through {FAN_OUT} modules, p50"),
                format!("{:.1} µs", us(self.chain.chain.p50)),
                format!("< {TARGET_FILTER_CHAIN_US:.0} µs"),
                us(self.chain.chain.p50) < TARGET_FILTER_CHAIN_US,
            ),
            (
                "warm start to first served request (median)".to_string(),
                format!("{:.1} ms", ms(self.start.warm_median())),
                format!("< {TARGET_WARM_START_MS:.0} ms"),
                ms(self.start.warm_median()) < TARGET_WARM_START_MS,
            ),
        ];
        println!("Summary (SQLite database)");
        println!(
            "   {:<50} {:>28} {:>10}   result",
            "measure", "measured", "target"
        );
        for (label, measured, target, met) in rows {
            println!(
                "   {label:<50} {measured:>28} {target:>10}   {}",
                verdict(met)
            );
        }
        println!(
            "   {:<50} {:>28} {:>10}   (no target)",
            "cold start, first / after emptying the cache",
            format!(
                "{:.0} / {:.0} ms",
                ms(self.start.first_cold),
                ms(self.start.cold_again)
            ),
            "-"
        );
        println!(
            "   {:<50} {:>28} {:>10}   (no target)",
            "filter chain with 1 entitlement query, p50",
            format!("{:.1} µs", us(self.chain.projected.p50)),
            "-"
        );
    }
}
