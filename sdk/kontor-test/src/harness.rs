//! The harness: a real host with the module under test installed.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use kontor::auth::users::NewUser;
use kontor::auth::Role;
use kontor::clock::{ManualClock, SharedClock, SystemClock};
use kontor::config::Config;
use kontor::db::Db;
use kontor::ids::TenantId;
use kontor::jobs::worker::{self, Handlers};
use kontor::modules::capabilities::{self, Capability};
use kontor::modules::host::Loaded;
use kontor::modules::manifest::Manifest;
use kontor::modules::records::{self, Quota, RecordScope};
use kontor::modules::registry::{self, ModuleInfo};
use kontor::modules::{entitlements, events, package};
use kontor::web::AppState;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::build_output;
use crate::client::{Client, Response};
use crate::logs::{self, LogLine};

/// The password of the harness's administrator (a test host only).
pub const ADMIN_PASSWORD: &str = "kontor-test-password";

/// Where the harness's clock stands when a test starts: a fixed Monday
/// morning, so a test's dates do not depend on the day it runs.
pub const START: OffsetDateTime = time::macros::datetime!(2026-03-02 09:00 UTC);

/// How to start a [`Harness`]; [`Harness::start`] uses the defaults.
#[derive(Debug, Clone)]
pub struct Builder {
    module_dir: Option<PathBuf>,
    wasm: Option<PathBuf>,
    accept: Option<Vec<String>>,
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    system_clock: bool,
    background: bool,
    start_at: OffsetDateTime,
    admin_email: String,
    admin_password: String,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            module_dir: None,
            wasm: None,
            accept: None,
            data_dir: None,
            listen: None,
            system_clock: false,
            background: false,
            start_at: START,
            admin_email: "admin@example.com".to_string(),
            admin_password: ADMIN_PASSWORD.to_string(),
        }
    }
}

impl Builder {
    /// The module's crate folder (holding `Cargo.toml` and `module.toml`).
    /// Default: `CARGO_MANIFEST_DIR`, which `cargo test` sets to the crate
    /// whose tests run — the module under test.
    pub fn module_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.module_dir = Some(dir.into());
        self
    }

    /// The component to install, instead of looking for the build output
    /// (`KONTOR_TEST_WASM` does the same from the environment).
    pub fn wasm(mut self, path: impl Into<PathBuf>) -> Self {
        self.wasm = Some(path.into());
        self
    }

    /// Accept only these of the capabilities the manifest requests
    /// (`["secrets"]`; empty: none), to test how the module copes with a
    /// refusal. Default: every capability it requests.
    pub fn accept<S: Into<String>>(mut self, capabilities: impl IntoIterator<Item = S>) -> Self {
        self.accept = Some(capabilities.into_iter().map(Into::into).collect());
        self
    }

    /// Keep the database and data in `dir` (made if missing) instead of a
    /// fresh temporary folder removed at the end; a second start on the same
    /// folder finds the tenant and data of the first (`kontor-module dev`).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Listen on `addr` instead of a free port of 127.0.0.1.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Run on the wall clock instead of a clock the test sets
    /// ([`Harness::set_now`] then refuses).
    pub fn system_clock(mut self) -> Self {
        self.system_clock = true;
        self
    }

    /// Stand the test clock at `now` at the start (default: [`START`]).
    pub fn start_at(mut self, now: OffsetDateTime) -> Self {
        self.start_at = now;
        self
    }

    /// Run the job worker and the event/cron loops in the background, as
    /// `kontor serve` does. Default off: a test runs them when it wants
    /// with [`Harness::drain`] and [`Harness::run_due_jobs`], so it is
    /// deterministic.
    pub fn background(mut self, on: bool) -> Self {
        self.background = on;
        self
    }

    /// The administrator's login (default `admin@example.com` /
    /// [`ADMIN_PASSWORD`]); the password must be at least 10 characters.
    pub fn admin(mut self, email: impl Into<String>, password: impl Into<String>) -> Self {
        self.admin_email = email.into();
        self.admin_password = password.into();
        self
    }

    /// Start the host, install the module and sign in.
    ///
    /// # Panics
    /// When anything on the way fails, with what and why: a test cannot go
    /// on without its host. [`Builder::try_start`] returns the error instead.
    pub async fn start(self) -> Harness {
        match self.try_start().await {
            Ok(h) => h,
            Err(e) => panic!("kontor-test: could not start the test host: {e:#}"),
        }
    }

    /// [`Builder::start`], returning what went wrong instead of panicking.
    pub async fn try_start(self) -> anyhow::Result<Harness> {
        let logging = logs::install();
        let module_dir = match &self.module_dir {
            Some(d) => d.clone(),
            None => PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or_else(|| {
                anyhow!("CARGO_MANIFEST_DIR is not set: run under `cargo test`, or name the module with Harness::builder().module_dir(..)")
            })?),
        };
        let manifest_path = module_dir.join("module.toml");
        let wasm_path = match &self.wasm {
            Some(p) => p.clone(),
            None => build_output::find_wasm(&module_dir)?,
        };
        let manifest_text = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        let manifest = Manifest::parse(&manifest_path.display().to_string(), &manifest_text)?;

        let (data_dir, temp) = match &self.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = TempDir::new()?;
                (t.0.clone(), Some(t))
            }
        };
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let data_dir = std::path::absolute(&data_dir)?;
        let mut env = HashMap::new();
        env.insert(
            "KONTOR_DATABASE_URL".to_string(),
            format!("sqlite://{}", data_dir.join("kontor.db").display()),
        );
        env.insert("KONTOR_DATA_DIR".into(), data_dir.display().to_string());
        // SaaS: access comes from the entitlement the harness grants, with
        // no trial that runs out when a test moves the clock by months.
        env.insert("KONTOR_MODE".into(), "saas".into());
        // Dev trust: the module is installed from its build output, unsigned.
        env.insert("KONTOR_DEV".into(), "true".into());
        let listen = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        env.insert("KONTOR_LISTEN".into(), listen.to_string());
        let config = Config::from_sources(None, &env)?;
        if temp.is_some() {
            share_compile_cache(&data_dir);
        }

        let manual = (!self.system_clock).then(|| Arc::new(ManualClock::new(self.start_at)));
        let clock: SharedClock = match &manual {
            Some(m) => m.clone(),
            None => Arc::new(SystemClock),
        };
        let db = Db::connect(&config.database_url).await?;
        db.migrate().await?;
        let state = AppState::new(db.clone(), config, clock.clone())?;
        let (tenant, fresh_admin) = tenant_and_admin(&state, &self).await?;

        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = watch::channel(false);
        let serve_state = state.clone();
        let until = wait_for(stopped.clone());
        tokio::spawn(async move {
            if let Err(e) = kontor::web::serve(listener, serve_state, until).await {
                tracing::error!(error = %e, "the test host stopped serving");
            }
        });
        let mut handlers = Handlers::core(db.clone(), clock.clone());
        kontor::modules::jobs::register(
            &mut handlers,
            state.modules().clone(),
            db.clone(),
            clock.clone(),
        );
        if self.background {
            tokio::spawn(worker::run(
                db.clone(),
                clock.clone(),
                handlers.clone(),
                wait_for(stopped.clone()),
            ));
            tokio::spawn(kontor::modules::jobs::run_background(
                db.clone(),
                state.modules().clone(),
                clock.clone(),
                wait_for(stopped.clone()),
            ));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let token = match fresh_admin {
            // A token that never expires: the test may move the clock by years.
            Some(user_id) => {
                let new = kontor::auth::tokens::NewToken {
                    name: "kontor-test".into(),
                    expires_in_days: None,
                };
                let user = kontor::ids::UserId::from_trusted(user_id);
                kontor::auth::tokens::create(&db, &tenant, &user, &new, clock.now_ms())
                    .await?
                    .token
            }
            None => login(&http, &base, &self.admin_email, &self.admin_password).await?,
        };
        let harness = Harness {
            manifest,
            module_dir,
            manifest_path,
            wasm_path,
            accept: self.accept.clone(),
            state,
            clock: manual,
            tenant,
            admin_email: self.admin_email.clone(),
            admin_password: self.admin_password.clone(),
            client: Client::new(http.clone(), base, Some(token)),
            http,
            handlers,
            stop,
            logging,
            _temp: temp,
        };
        harness.reinstall().await?;
        Ok(harness)
    }
}

/// The first tenant and its administrator: made on a fresh database
/// (returns the new user's id), found on a kept one (`None`).
async fn tenant_and_admin(
    state: &AppState,
    b: &Builder,
) -> anyhow::Result<(TenantId, Option<String>)> {
    if let Some(t) = kontor::tenants::list(state.db()).await?.into_iter().next() {
        return Ok((TenantId::from_trusted(t.id), None));
    }
    let owner = NewUser {
        email: b.admin_email.clone(),
        name: "Administrator".into(),
        role: Role::Owner,
        password: b.admin_password.clone(),
        locale: None,
        customer_id: None,
    };
    let (tenant, user) = kontor::tenants::create(
        state.db(),
        state.permissions(),
        state.config().mode,
        "Module test",
        owner,
        state.now_ms(),
    )
    .await?;
    Ok((TenantId::from_trusted(tenant.id), Some(user.id)))
}

async fn login(
    http: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let res = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    match body["token"].as_str() {
        Some(t) if status.is_success() => Ok(t.to_string()),
        _ => bail!("signing in as {email} failed ({status}): {body}"),
    }
}

/// Resolves when `rx` sees `true` (or its sender is gone).
async fn wait_for(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            break;
        }
    }
}

/// A temporary folder, removed when dropped.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("kontor-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A record the module stored, as the host keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// Id within its collection.
    pub id: String,
    /// Grows by one with every write, starting at 1.
    pub version: u64,
    /// The JSON the module wrote.
    pub data: Value,
    /// When it was created (Unix ms, on the harness's clock).
    pub created_at: i64,
    /// When it was last written (Unix ms).
    pub updated_at: i64,
}

/// A running Kontor host with the module under test installed, enabled,
/// entitled and its requested capabilities accepted, and an administrator
/// signed in. Dropping it stops the server and removes its data (unless
/// [`Builder::data_dir`] kept them).
///
/// ```no_run
/// # async fn t() {
/// let h = kontor_test::Harness::start().await;
/// let r = h.get(&format!("/api/v1/{}/hello", h.module_id())).await;
/// assert_eq!(r.status(), 200, "{}", r.text());
/// assert!(h.logged("said hello"), "{:?}", h.logs());
/// # }
/// ```
pub struct Harness {
    manifest: Manifest,
    module_dir: PathBuf,
    manifest_path: PathBuf,
    wasm_path: PathBuf,
    accept: Option<Vec<String>>,
    state: AppState,
    clock: Option<Arc<ManualClock>>,
    tenant: TenantId,
    admin_email: String,
    admin_password: String,
    client: Client,
    http: reqwest::Client,
    handlers: Handlers,
    stop: watch::Sender<bool>,
    logging: bool,
    _temp: Option<TempDir>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("module", &self.manifest.id)
            .field("base", &self.client.base_url())
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        logs::forget(self.tenant.as_str());
    }
}

impl Harness {
    /// Start a host with the module of the crate under test (see
    /// [`Builder`] for the defaults and the other choices).
    pub async fn start() -> Harness {
        Builder::default().start().await
    }

    /// Choose how to start ([`Builder`]).
    pub fn builder() -> Builder {
        Builder::default()
    }

    // --- the module --------------------------------------------------------

    /// The module's id (its URL prefix: `/api/v1/<id>`, `/app/<id>`).
    pub fn module_id(&self) -> &str {
        &self.manifest.id
    }

    /// The installed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The component that was installed.
    pub fn wasm_path(&self) -> &Path {
        &self.wasm_path
    }

    /// Install the module again from its build output and manifest (after
    /// a rebuild), keeping its records, settings and secrets; what was
    /// accepted and the entitlement are given again. `kontor-module dev`
    /// calls this when the build changes.
    pub async fn reinstall(&self) -> anyhow::Result<ModuleInfo> {
        let text = std::fs::read_to_string(&self.manifest_path)
            .with_context(|| format!("reading {}", self.manifest_path.display()))?;
        let manifest = Manifest::parse(&self.manifest_path.display().to_string(), &text)?;
        if manifest.id != self.manifest.id {
            bail!(
                "{}: the module id changed from {} to {}; restart",
                self.manifest_path.display(),
                self.manifest.id,
                manifest.id
            );
        }
        let wasm = std::fs::read(&self.wasm_path)
            .with_context(|| format!("reading {}", self.wasm_path.display()))?;
        let extra = extra_files(&self.module_dir)?;
        let kmod = package::pack(&text, &wasm, &extra)
            .map_err(|e| anyhow!("packing {}: {e}", self.module_dir.display()))?;
        let accept: BTreeSet<Capability> = match &self.accept {
            Some(names) => capabilities::parse_list("accept", names)?,
            None => capabilities::requested(&manifest),
        };
        let (db, host, now) = (self.state.db(), self.state.modules(), self.now_ms());
        if registry::graph(db).await?.contains_key(&manifest.id) {
            // Same version or not, the build output replaces what is there.
            registry::uninstall(db, host, &manifest.id, false, now).await?;
        }
        let info =
            registry::install_package_accepting(db, host, self.state.config(), &kmod, &accept, now)
                .await?;
        entitlements::grant(
            db,
            &self.tenant,
            manifest.entitlement_key(),
            "manual",
            None,
            now,
        )
        .await?;
        Ok(info)
    }

    fn loaded(&self) -> Arc<Loaded> {
        match self.state.modules().get(&self.manifest.id) {
            Some(m) => m,
            None => panic!("module {} is not loaded in the test host", self.manifest.id),
        }
    }

    // --- HTTP --------------------------------------------------------------

    /// The administrator's client (all the tenant's permissions, the
    /// module's included).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `http://127.0.0.1:<port>` of the host.
    pub fn base_url(&self) -> &str {
        self.client.base_url()
    }

    /// The administrator's login e-mail (with [`Harness::admin_password`],
    /// for a browser on a kept `kontor-module dev` host).
    pub fn admin_email(&self) -> &str {
        &self.admin_email
    }

    /// The administrator's password.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// `GET path` as the administrator.
    pub async fn get(&self, path: &str) -> Response {
        self.client.get(path).await
    }

    /// `POST path` with a JSON body, as the administrator.
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post_json(path, body).await
    }

    /// `PUT path` with a JSON body, as the administrator.
    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.client.put_json(path, body).await
    }

    /// `DELETE path` as the administrator.
    pub async fn delete(&self, path: &str) -> Response {
        self.client.delete(path).await
    }

    /// Render the module page at `path` (relative to `/app/<id>`, e.g.
    /// `/`) inside the core layout, as the administrator's browser gets it.
    pub async fn page(&self, path: &str) -> Response {
        self.client
            .get(&format!("/app/{}{path}", self.manifest.id))
            .await
    }

    /// A client with no credential, to test what strangers get.
    pub fn anonymous(&self) -> Client {
        Client::new(self.http.clone(), self.base_url().to_string(), None)
    }

    /// `POST` `body` to the module's signed hook at `path` (a route with
    /// `signed_by` in module.toml, e.g. `/inbound`), as an outside sender
    /// does: to `/api/v1/hooks/<tenant slug>/<module id><path>`, with no
    /// credential, signed with `secret` at the harness's clock time
    /// (`Kontor-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`). Set the
    /// same value first with [`Harness::set_secret`]; sign with another to
    /// test a refusal. The module sees no principal.
    ///
    /// # Panics
    /// When the harness's tenant cannot be read.
    pub async fn post_signed(&self, path: &str, body: &Value, secret: &str) -> Response {
        let slug = match kontor::tenants::find(self.db(), self.tenant.as_str()).await {
            Ok(Some(t)) => t.slug,
            other => panic!("reading the harness's tenant: {other:?}"),
        };
        let bytes = body.to_string().into_bytes();
        let signed = kontor::auth::signature::header_value(
            secret.as_bytes(),
            self.now_ms().div_euclid(1000),
            &bytes,
        );
        let anonymous = self.anonymous();
        let url = format!("/api/v1/hooks/{slug}/{}{path}", self.manifest.id);
        let req = anonymous
            .request(reqwest::Method::POST, &url)
            .header("content-type", "application/json")
            .header("kontor-signature", signed)
            .body(bytes);
        anonymous.send(req).await
    }

    /// A new user of the tenant with `role` (`admin`, `staff`, `reseller`,
    /// `customer`...), signed in: to test the module's permissions.
    ///
    /// # Panics
    /// When the host refuses to make the user (a `customer` needs a
    /// customer: use [`Harness::customer_user`]).
    pub async fn user(&self, role: &str) -> Client {
        self.signed_in_user(role, None).await
    }

    /// A new portal user (role `customer`) of the CRM customer
    /// `customer_id`, signed in: to test what a customer sees of the module
    /// (a portal page, routes with permissions customers hold). Make the
    /// customer first, e.g. with `h.post_json("/api/v1/customers", ...)`.
    /// The user sees that customer's record and nothing of other customers.
    ///
    /// # Panics
    /// When the host refuses to make the user (no such customer).
    pub async fn customer_user(&self, customer_id: &str) -> Client {
        self.signed_in_user("customer", Some(customer_id)).await
    }

    async fn signed_in_user(&self, role: &str, customer_id: Option<&str>) -> Client {
        let email = format!("{role}-{}@example.com", uuid::Uuid::new_v4().simple());
        let r = self
            .post_json(
                "/api/v1/users",
                &json!({
                    "email": email,
                    "name": format!("A {role}"),
                    "role": role,
                    "password": ADMIN_PASSWORD,
                    "customer_id": customer_id,
                }),
            )
            .await;
        assert_eq!(r.status(), 201, "creating a {role} user: {}", r.text());
        match login(&self.http, self.base_url(), &email, ADMIN_PASSWORD).await {
            Ok(token) => Client::new(self.http.clone(), self.base_url().to_string(), Some(token)),
            Err(e) => panic!("{e:#}"),
        }
    }

    // --- settings and secrets ----------------------------------------------

    /// Set the module's settings for the tenant, as an administrator does
    /// on its settings page: `{"key": value}`, `null` back to the default.
    ///
    /// # Panics
    /// When the host refuses them (an undeclared key, a wrong type): that
    /// is what the message says.
    pub async fn set_settings(&self, values: &Value) {
        let r = self
            .put_json(
                &format!("/api/v1/modules/{}/settings", self.manifest.id),
                values,
            )
            .await;
        assert_eq!(r.status(), 200, "setting {values}: {}", r.text());
    }

    /// Set one setting ([`Harness::set_settings`]).
    pub async fn set_setting(&self, key: &str, value: Value) {
        self.set_settings(&json!({ key: value })).await;
    }

    /// Set a secret the module declares, as an administrator does.
    ///
    /// # Panics
    /// When the host refuses it (an undeclared name, an empty value).
    pub async fn set_secret(&self, name: &str, value: &str) {
        let r = self
            .put_json(
                &format!("/api/v1/modules/{}/secrets/{name}", self.manifest.id),
                &json!({ "value": value }),
            )
            .await;
        assert!(
            (200..300).contains(&r.status()),
            "setting secret {name}: {} {}",
            r.status(),
            r.text()
        );
    }

    // --- events and jobs ---------------------------------------------------

    /// Deliver event `name` with `payload` to the module now, for the
    /// tenant, and return its answer (`Err`: it asked for a retry, or the
    /// call failed — trap, timeout — with the host's message).
    ///
    /// # Panics
    /// When the manifest does not subscribe to `name`: the host would
    /// never deliver it.
    pub async fn emit(&self, name: &str, payload: &Value) -> Result<(), String> {
        if !self.manifest.events.iter().any(|e| e.name == name) {
            panic!(
                "module {} does not subscribe to `{name}`; add it to `events` in module.toml",
                self.manifest.id
            );
        }
        let event = kontor_runtime::call::Event {
            id: kontor::ids::new_id(),
            name: name.to_string(),
            payload: payload.to_string(),
            occurred_at: self.now_ms(),
        };
        let module = self.loaded();
        match self
            .state
            .modules()
            .deliver(&module, &self.tenant, event)
            .await
        {
            Ok(answer) => answer,
            Err(e) => Err(e.to_string()),
        }
    }

    /// Publish event `name` in the tenant as the core does (into the
    /// outbox), then [`Harness::drain`]: every subscribed module gets it
    /// through the queue, with its entitlement checked.
    pub async fn publish(&self, name: &str, payload: &Value) -> usize {
        if let Err(e) =
            events::publish(self.state.db(), &self.tenant, name, payload, self.now_ms()).await
        {
            panic!("publishing {name}: {e}");
        }
        self.drain().await
    }

    /// Run job `name` of the module now, for the tenant, and return its
    /// answer (as [`Harness::emit`]).
    ///
    /// # Panics
    /// When the manifest declares no job `name`.
    pub async fn run_job(&self, name: &str) -> Result<(), String> {
        if !self.manifest.jobs.iter().any(|j| j.name == name) {
            panic!(
                "module {} declares no job `{name}` in module.toml",
                self.manifest.id
            );
        }
        let module = self.loaded();
        match self
            .state
            .modules()
            .run_job(&module, &self.tenant, name)
            .await
        {
            Ok(answer) => answer,
            Err(e) => Err(e.to_string()),
        }
    }

    /// Do the background work that is due now, as `kontor serve` would:
    /// fan out the event outbox (events the core and modules published)
    /// and run every job whose time has come, until nothing is left.
    /// Returns how many jobs ran. A job that fails is retried later (move
    /// the clock past its backoff and drain again).
    pub async fn drain(&self) -> usize {
        let db = self.state.db();
        let clock = self.state.clock().clone();
        let mut ran = 0;
        loop {
            let dispatched =
                match events::dispatch(db, self.state.modules(), self.now_ms(), 100).await {
                    Ok(n) => n,
                    Err(e) => panic!("dispatching events: {e}"),
                };
            let mut any = false;
            loop {
                match worker::run_once(db, &clock, &self.handlers, "kontor-test").await {
                    Ok(true) => {
                        any = true;
                        ran += 1;
                    }
                    Ok(false) => break,
                    Err(e) => panic!("running jobs: {e}"),
                }
            }
            if dispatched == 0 && !any {
                return ran;
            }
        }
    }

    /// Schedule the module's cron jobs that are due at the current time and
    /// run them ([`Harness::drain`]). The host counts a job's schedule from
    /// the first time it sees it: call this once at the start, move the
    /// clock ([`Harness::advance`]), call it again. Returns how many runs
    /// were scheduled.
    pub async fn run_due_jobs(&self) -> usize {
        let scheduled = match kontor::modules::jobs::schedule_due(
            self.state.db(),
            self.state.modules(),
            self.now_ms(),
        )
        .await
        {
            Ok(n) => n,
            Err(e) => panic!("scheduling jobs: {e}"),
        };
        self.drain().await;
        scheduled
    }

    // --- records -----------------------------------------------------------

    fn scope(&self) -> RecordScope<'_> {
        RecordScope {
            tenant: &self.tenant,
            module_id: &self.manifest.id,
            collections: &self.manifest.collections,
            quota: Quota::default(),
        }
    }

    /// Record `id` of `collection`, as the module stored it for the tenant.
    ///
    /// # Panics
    /// When the manifest declares no such collection.
    pub async fn record(&self, collection: &str, id: &str) -> Option<StoredRecord> {
        match records::get(self.state.db(), &self.scope(), collection, id).await {
            Ok(r) => r.map(stored),
            Err(e) => panic!("reading {collection}/{id}: {e:?}"),
        }
    }

    /// Every record of `collection` for the tenant, by id.
    ///
    /// # Panics
    /// When the manifest declares no such collection.
    pub async fn records(&self, collection: &str) -> Vec<StoredRecord> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let q = kontor_runtime::host::Query {
                collection: collection.to_string(),
                conditions: Vec::new(),
                order_by: None,
                descending: false,
                limit: records::MAX_PAGE,
                cursor,
            };
            let page = match records::query(self.state.db(), &self.scope(), &q).await {
                Ok(p) => p,
                Err(e) => panic!("listing {collection}: {e:?}"),
            };
            out.extend(page.records.into_iter().map(stored));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    /// Store a record as the module would (for a test's starting data).
    ///
    /// # Panics
    /// When the host refuses it (undeclared collection, not an object...).
    pub async fn put_record(&self, collection: &str, id: &str, data: &Value) -> StoredRecord {
        match records::put(
            self.state.db(),
            &self.scope(),
            collection,
            id,
            &data.to_string(),
            None,
            self.now_ms(),
        )
        .await
        {
            Ok(r) => stored(r),
            Err(e) => panic!("writing {collection}/{id}: {e:?}"),
        }
    }

    // --- logs --------------------------------------------------------------

    /// What the module logged in this harness's calls, oldest first.
    ///
    /// # Panics
    /// When the test binary set its own global `tracing` subscriber before
    /// the harness started: the lines then go there, not here.
    pub fn logs(&self) -> Vec<LogLine> {
        assert!(
            self.logging,
            "kontor-test cannot read module logs: this test binary set its own global tracing subscriber"
        );
        logs::of_tenant(self.tenant.as_str())
    }

    /// Whether the module logged a line containing `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.logs().iter().any(|l| l.message.contains(text))
    }

    // --- time --------------------------------------------------------------

    fn manual_clock(&self) -> &ManualClock {
        match &self.clock {
            Some(c) => c,
            None => panic!("this harness runs on the system clock (Builder::system_clock)"),
        }
    }

    /// Now, on the host's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.state.clock().now()
    }

    /// Now as Unix milliseconds, the form the host stores.
    pub fn now_ms(&self) -> i64 {
        self.state.clock().now_ms()
    }

    /// Stand the host's clock at `now` (everything the host and the module
    /// see: record times, schedules, entitlement dates).
    pub fn set_now(&self, now: OffsetDateTime) {
        self.manual_clock().set(now);
    }

    /// Move the host's clock by `by` (negative: back).
    pub fn advance(&self, by: time::Duration) {
        self.manual_clock().advance(by);
    }

    // --- the host underneath -----------------------------------------------

    /// The tenant the module runs for in this harness.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The host's state (database, module host, configuration), for what
    /// the helpers do not cover; the core's own APIs take it.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The host's database.
    pub fn db(&self) -> &Db {
        self.state.db()
    }
}

/// Point a throw-away host's compile cache (`<data>/cache/modules`) at
/// one folder shared by every harness on this machine: compiling a
/// component takes seconds in a debug build, and every test starts a host
/// with the same one. The cache is keyed by the component's digest and the
/// engine's settings, so sharing it never loads the wrong code. Best
/// effort: without it, each host compiles for itself.
fn share_compile_cache(data_dir: &Path) {
    let shared = std::env::temp_dir().join("kontor-test-module-cache");
    let cache = data_dir.join("cache");
    if std::fs::create_dir_all(&shared).is_err() || std::fs::create_dir_all(&cache).is_err() {
        return;
    }
    #[cfg(unix)]
    let _ = std::os::unix::fs::symlink(&shared, cache.join("modules"));
}

fn stored(r: kontor_runtime::host::Record) -> StoredRecord {
    StoredRecord {
        data: serde_json::from_str(&r.data).unwrap_or(Value::String(r.data)),
        id: r.id,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// The module's `templates/`, `assets/` and `locales/` files, as
/// `kontor-module pack --include` would add them.
fn extra_files(module_dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for top in package::EXTRA_DIRS {
        let mut stack = vec![module_dir.join(top)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.is_file() {
                    let rel = path
                        .strip_prefix(module_dir)
                        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
                    let name = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/");
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    out.push((name, bytes));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}
