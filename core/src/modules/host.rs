//! The module host: which modules are loaded in this process, and calling
//! them with the right capabilities, deadlines and error mapping.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use kontor_runtime::call::{Event, FilterResult, HttpRequest, HttpResponse, Page};
use kontor_runtime::{Call, CallError, CompiledModule, Deadlines, Runtime, RuntimeConfig};
use serde::Serialize;

use super::caps::{CallContext, Caller, HostCaps};
use super::manifest::Manifest;
use super::secret_key::SecretKeys;
use crate::auth::roles::{PermissionDef, PermissionRegistry};
use crate::clock::SharedClock;
use crate::db::Db;
use crate::error::{Code, Error, Result};
use crate::ids::TenantId;
use crate::license::Licensing;

/// A module loaded in this process.
pub struct Loaded {
    /// Its manifest.
    pub manifest: Manifest,
    compiled: CompiledModule,
    calls: AtomicU64,
    failures: AtomicU64,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("id", &self.manifest.id)
            .field("version", &self.manifest.version)
            .finish()
    }
}

/// Call counts of a loaded module, for `/api/v1/modules`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Calls since this process loaded it.
    pub calls: u64,
    /// Calls that trapped, timed out or were refused since then.
    pub failures: u64,
    /// Whether the compiled code came from the disk cache.
    pub from_cache: bool,
}

impl Loaded {
    /// SHA-256 (hex) of the component bytes, as the registry stores it.
    pub fn digest(&self) -> &str {
        &self.compiled.digest
    }

    /// Call counts.
    pub fn health(&self) -> Health {
        Health {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            from_cache: self.compiled.from_cache,
        }
    }
}

/// The loaded modules and the runtime that runs them.
#[derive(Clone)]
pub struct ModuleHost {
    runtime: Runtime,
    loaded: Arc<RwLock<BTreeMap<String, Arc<Loaded>>>>,
    deadlines: Deadlines,
    db: Db,
    clock: SharedClock,
    permissions: PermissionRegistry,
    secret_keys: Arc<SecretKeys>,
    licensing: Licensing,
    mailer: crate::mail::Mailer,
}

impl std::fmt::Debug for ModuleHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleHost")
            .field("loaded", &self.ids())
            .finish()
    }
}

/// What a call is for (picks the deadline and the wording of errors).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Http,
    Filter,
    Event,
    Job,
}

impl ModuleHost {
    /// A host whose compiled components are cached under `cache_dir`.
    /// Permissions of loaded modules join `permissions`, so owners hold
    /// them and admins can grant them.
    pub fn new(
        db: Db,
        clock: SharedClock,
        permissions: PermissionRegistry,
        cache_dir: Option<std::path::PathBuf>,
    ) -> Result<ModuleHost> {
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir,
            ..Default::default()
        })
        .map_err(Error::internal)?;
        Ok(ModuleHost {
            runtime,
            loaded: Arc::new(RwLock::new(BTreeMap::new())),
            deadlines: Deadlines::default(),
            db,
            clock,
            permissions,
            secret_keys: Arc::new(SecretKeys::unavailable()),
            licensing: Licensing::saas(),
            mailer: crate::mail::Mailer::new(None).map_err(Error::internal)?,
        })
    }

    /// The same host with the key that seals module secrets (a host made
    /// without one refuses every secret).
    pub fn with_secret_keys(mut self, keys: SecretKeys) -> ModuleHost {
        self.secret_keys = Arc::new(keys);
        self
    }

    /// The key that seals module secrets.
    pub fn secret_keys(&self) -> &SecretKeys {
        &self.secret_keys
    }

    /// The same host under the installation's licensing (a host made
    /// without applies none: entitlement rows alone decide, as in SaaS).
    pub fn with_licensing(mut self, licensing: Licensing) -> ModuleHost {
        self.licensing = licensing;
        self
    }

    /// The same host sending module e-mail (`notify`) with `mailer`'s
    /// sender domain in Message-IDs.
    pub fn with_mailer(mut self, mailer: crate::mail::Mailer) -> ModuleHost {
        self.mailer = mailer;
        self
    }

    /// The installation's licensing, for the one entitlement check.
    pub fn licensing(&self) -> &Licensing {
        &self.licensing
    }

    /// Compile `manifest` + `component` without serving it yet: an upgrade
    /// compiles first and switches only after its transaction committed.
    pub fn compile(&self, manifest: Manifest, component: &[u8]) -> Result<Arc<Loaded>> {
        let compiled =
            CompiledModule::load(&self.runtime, component, &manifest.api).map_err(|e| match e {
                kontor_runtime::error::LoadError::ApiMismatch { needed, offered } => Error::new(
                    Code::ModuleApiMismatch,
                    format!(
                        "module {} {} needs API {needed}, this host offers {offered}",
                        manifest.id, manifest.version
                    ),
                ),
                other => Error::new(
                    Code::ModulePackageRefused,
                    format!("module {}: {other}", manifest.id),
                ),
            })?;
        Ok(Arc::new(Loaded {
            manifest,
            compiled,
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }))
    }

    /// Serve a compiled module (replacing an older version of it).
    pub fn activate(&self, loaded: Arc<Loaded>) {
        for p in &loaded.manifest.permissions {
            self.permissions.register(PermissionDef {
                name: p.name.clone(),
                description: p.description.clone(),
                source: loaded.manifest.id.clone(),
                default_roles: p.default_roles.clone(),
            });
        }
        if let Ok(mut map) = self.loaded.write() {
            map.insert(loaded.manifest.id.clone(), loaded);
        }
    }

    /// Compile and serve.
    pub fn load(&self, manifest: Manifest, component: &[u8]) -> Result<Arc<Loaded>> {
        let loaded = self.compile(manifest, component)?;
        self.activate(loaded.clone());
        Ok(loaded)
    }

    /// Stop serving a module in this process.
    pub fn unload(&self, id: &str) {
        if let Ok(mut map) = self.loaded.write() {
            map.remove(id);
        }
    }

    /// A loaded module.
    pub fn get(&self, id: &str) -> Option<Arc<Loaded>> {
        self.loaded.read().ok()?.get(id).cloned()
    }

    /// Ids of the loaded modules.
    pub fn ids(&self) -> Vec<String> {
        self.loaded
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every loaded module.
    pub fn all(&self) -> Vec<Arc<Loaded>> {
        self.loaded
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Loaded modules subscribed to event `name`.
    pub fn subscribers(&self, name: &str) -> Vec<Arc<Loaded>> {
        self.all()
            .into_iter()
            .filter(|m| m.manifest.events.iter().any(|e| e.name == name))
            .collect()
    }

    /// Loaded modules running filter `hook`, in priority order (lower first).
    pub fn filters(&self, hook: &str) -> Vec<Arc<Loaded>> {
        let mut list: Vec<(i32, Arc<Loaded>)> = self
            .all()
            .into_iter()
            .filter_map(|m| {
                let p = m
                    .manifest
                    .filters
                    .iter()
                    .find(|f| f.hook == hook)
                    .map(|f| f.priority)?;
                Some((p, m))
            })
            .collect();
        list.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.manifest.id.cmp(&b.1.manifest.id))
        });
        list.into_iter().map(|(_, m)| m).collect()
    }

    /// Refuse `loaded` unless its code has a handler for every route, page,
    /// event, filter and job its manifest declares (its `describe` export,
    /// called with every capability refused): a package whose manifest
    /// promises what its code does not do is stopped at install, not found
    /// out by the first caller.
    pub async fn check_handlers(&self, loaded: &Arc<Loaded>) -> Result<()> {
        let call = Call::new(
            &loaded.compiled,
            Arc::new(kontor_runtime::host::NoCapabilities),
            self.deadline(Kind::Filter),
        );
        let handlers = call.describe().await.map_err(|e| {
            Error::new(
                Code::ModulePackageRefused,
                format!(
                    "module {}: its `describe` export failed ({e}); build it with `kontor-module build`",
                    loaded.manifest.id
                ),
            )
        })?;
        let check = super::package::check_handlers(&loaded.manifest, &handlers);
        for warning in &check.undeclared {
            tracing::warn!(module = %loaded.manifest.id, "{warning}");
        }
        if check.missing.is_empty() {
            Ok(())
        } else {
            Err(Error::new(
                Code::ModulePackageRefused,
                check.missing.join("; "),
            ))
        }
    }

    /// The clock of the host.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn caps(&self, module: &Arc<Loaded>, context: impl Into<CallContext>) -> Arc<HostCaps> {
        Arc::new(
            HostCaps::for_context(
                self.db.clone(),
                self.clock.clone(),
                context.into(),
                module.clone(),
                self.secret_keys.clone(),
            )
            .with_mailer(self.mailer.clone())
            .with_host(self.clone()),
        )
    }

    fn deadline(&self, kind: Kind) -> std::time::Duration {
        match kind {
            Kind::Http => self.deadlines.http,
            Kind::Filter => self.deadlines.filter,
            Kind::Event => self.deadlines.event,
            Kind::Job => self.deadlines.job,
        }
    }

    /// Turn a failed call into the core's error, count it and log it with
    /// the module id and an error id.
    async fn failed(&self, module: &Loaded, err: CallError) -> Error {
        module.failures.fetch_add(1, Ordering::Relaxed);
        let error_id = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(module = %module.manifest.id, error_id = %error_id, error = %err, "module call failed");
        let now = self.clock.now_ms();
        let message: String = err.to_string().chars().take(500).collect();
        if let Err(e) = sqlx::query(
            "UPDATE modules SET failures = failures + 1, last_error = $2, last_failure_at = $3 WHERE id = $1",
        )
        .bind(&module.manifest.id)
        .bind(&message)
        .bind(now)
        .execute(self.db.pool())
        .await
        {
            tracing::warn!(error = %e, "could not record module health");
        }
        let code = match err {
            CallError::Timeout(_) => Code::ModuleTimeout,
            _ => Code::ModuleFailed,
        };
        Error::new(
            code,
            format!(
                "module {} failed ({err}); reference {error_id} in the server log",
                module.manifest.id
            ),
        )
        .with_details(serde_json::json!({ "module": module.manifest.id, "error_id": error_id }))
    }

    /// Call a module route on behalf of `caller`: pass the signed-in
    /// [`crate::auth::Principal`], so the module's CRM access is the user's;
    /// a bare tenant makes the call the tenant's own (benchmarks, tools).
    /// A [`CallContext`] made `under` a read-only access refuses the
    /// module's writes.
    pub async fn handle_http(
        &self,
        module: &Arc<Loaded>,
        caller: impl Into<CallContext>,
        req: HttpRequest,
    ) -> Result<HttpResponse> {
        module.calls.fetch_add(1, Ordering::Relaxed);
        let call = Call::new(
            &module.compiled,
            self.caps(module, caller),
            self.deadline(Kind::Http),
        );
        match call.handle_http(req).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.failed(module, e).await),
        }
    }

    /// Render a module page on behalf of `caller` (as [`Self::handle_http`]).
    pub async fn render_page(
        &self,
        module: &Arc<Loaded>,
        caller: impl Into<CallContext>,
        req: HttpRequest,
    ) -> Result<std::result::Result<Page, String>> {
        module.calls.fetch_add(1, Ordering::Relaxed);
        let call = Call::new(
            &module.compiled,
            self.caps(module, caller),
            self.deadline(Kind::Http),
        );
        match call.render_page(req).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.failed(module, e).await),
        }
    }

    /// Deliver an event; `Err` asks the queue to retry.
    pub async fn deliver(
        &self,
        module: &Arc<Loaded>,
        tenant: &TenantId,
        event: Event,
    ) -> Result<std::result::Result<(), String>> {
        module.calls.fetch_add(1, Ordering::Relaxed);
        let call = Call::new(
            &module.compiled,
            self.caps(module, Caller::Tenant(tenant.clone())),
            self.deadline(Kind::Event),
        );
        match call.on_event(event).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.failed(module, e).await),
        }
    }

    /// Run a scheduled job.
    pub async fn run_job(
        &self,
        module: &Arc<Loaded>,
        tenant: &TenantId,
        name: &str,
    ) -> Result<std::result::Result<(), String>> {
        module.calls.fetch_add(1, Ordering::Relaxed);
        let call = Call::new(
            &module.compiled,
            self.caps(module, Caller::Tenant(tenant.clone())),
            self.deadline(Kind::Job),
        );
        match call.run_job(name).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.failed(module, e).await),
        }
    }

    /// Run one module's filter.
    pub async fn filter(
        &self,
        module: &Arc<Loaded>,
        tenant: &TenantId,
        hook: &str,
        payload: &str,
    ) -> Result<FilterResult> {
        module.calls.fetch_add(1, Ordering::Relaxed);
        let call = Call::new(
            &module.compiled,
            self.caps(module, Caller::Tenant(tenant.clone())),
            self.deadline(Kind::Filter),
        );
        match call.filter(hook, payload).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.failed(module, e).await),
        }
    }
}
