//! The registry of installed modules: install, upgrade, enable, disable,
//! uninstall, list — in the database, with dependencies resolved before
//! anything changes and every change in one transaction.

use std::collections::BTreeSet;

use serde::Serialize;

use super::capabilities::{self, Capability};
use super::deps::{self, Graph, Installed};
use super::host::{Health, ModuleHost};
use super::manifest::Manifest;
use crate::config::Mode;
use crate::db::Db;
use crate::error::{Code, Error, Result};

/// Where a module's component comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Built into this binary (trusted as part of it).
    Bundled,
    /// An uploaded, verified package stored in `module_packages`.
    Package,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Bundled => "bundled",
            Source::Package => "package",
        }
    }
}

/// An installed module as the API lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModuleInfo {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// Publisher.
    pub publisher: String,
    /// `enabled` or `disabled`.
    pub state: String,
    /// `bundled` or `package`.
    pub source: String,
    /// Contract requirement.
    pub api: String,
    /// Capabilities its manifest asks for (`secrets`, `crm`...).
    pub capabilities: Vec<String>,
    /// The ones an administrator accepted: the module can use only these.
    pub accepted_capabilities: Vec<String>,
    /// Failed calls recorded since install.
    pub failures: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Live counts of this process, when loaded.
    pub health: Option<Health>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    version: String,
    state: String,
    source: String,
    manifest: String,
    failures: i64,
    last_error: Option<String>,
    accepted_capabilities: String,
}

async fn rows(db: &Db) -> Result<Vec<Row>> {
    Ok(sqlx::query_as::<_, Row>(
        "SELECT id, version, state, source, manifest, failures, last_error, accepted_capabilities FROM modules ORDER BY id",
    )
    .fetch_all(db.pool())
    .await?)
}

fn parse(row: &Row) -> Result<Manifest> {
    Manifest::parse(&format!("{}/module.toml", row.id), &row.manifest)
        .map_err(|e| Error::internal(format!("stored manifest of {} is invalid: {e}", row.id)))
}

/// The installed modules as a dependency graph.
pub async fn graph(db: &Db) -> Result<Graph> {
    let mut g = Graph::new();
    for row in rows(db).await? {
        g.insert(
            row.id.clone(),
            Installed {
                manifest: parse(&row)?,
                enabled: row.state == "enabled",
            },
        );
    }
    Ok(g)
}

/// The installed module `id`, or `module_not_found`.
fn installed<'g>(g: &'g Graph, id: &str) -> Result<&'g Installed> {
    g.get(id).ok_or_else(|| {
        Error::new(
            Code::ModuleNotFound,
            format!("module {id} is not installed"),
        )
    })
}

/// Every installed module.
pub async fn list(db: &Db, host: &ModuleHost) -> Result<Vec<ModuleInfo>> {
    let mut out = Vec::new();
    for row in rows(db).await? {
        let m = parse(&row)?;
        out.push(ModuleInfo {
            health: host.get(&row.id).map(|l| l.health()),
            id: row.id,
            name: m.name,
            version: row.version,
            publisher: m.publisher,
            state: row.state,
            source: row.source,
            api: m.api.to_string(),
            capabilities: m.capabilities.clone(),
            accepted_capabilities: capabilities::from_stored(&row.accepted_capabilities)
                .into_iter()
                .map(|c| c.to_string())
                .collect(),
            failures: row.failures,
            last_error: row.last_error,
        });
    }
    Ok(out)
}

/// The component bytes of an installed module.
async fn component(db: &Db, id: &str, version: &str, source: &str) -> Result<Vec<u8>> {
    if source == Source::Bundled.as_str() {
        for (text, wasm) in kontor_runtime::bundled::ALL {
            if let Ok(m) = Manifest::parse("module.toml", text) {
                if m.id == id {
                    return Ok(wasm.to_vec());
                }
            }
        }
        return Err(Error::internal(format!(
            "bundled module {id} is not in this binary"
        )));
    }
    let package: Vec<u8> = sqlx::query_scalar(
        "SELECT package FROM module_packages WHERE module_id = $1 AND version = $2",
    )
    .bind(id)
    .bind(version)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| Error::internal(format!("package of {id} {version} is missing")))?;
    // Verified when it was installed; stored packages are read back as they are.
    let opened = super::package::open(
        &package,
        &super::trust::TrustStore::empty(),
        super::package::OpenOptions { dev: true },
    )
    .map_err(|e| Error::internal(format!("stored package of {id} {version}: {e}")))?;
    Ok(opened.component)
}

/// Load every enabled module into `host` (at start). A module that fails to
/// load is logged and skipped: one broken module never stops the host.
pub async fn load_enabled(db: &Db, host: &ModuleHost) -> Result<()> {
    for row in rows(db).await? {
        if row.state != "enabled" {
            continue;
        }
        if let Err(e) = load_row(db, host, &row).await {
            tracing::error!(module = %row.id, error = %e, "module not loaded");
        }
    }
    Ok(())
}

async fn load_row(db: &Db, host: &ModuleHost, row: &Row) -> Result<()> {
    let manifest = parse(row)?;
    let bytes = component(db, &row.id, &row.version, &row.source).await?;
    host.load(manifest, &bytes).map(|_| ())
}

/// Load (or reload) one installed module into `host` as the registry has
/// it, e.g. after another process installed or upgraded it.
pub async fn load_one(db: &Db, host: &ModuleHost, id: &str) -> Result<()> {
    let row = rows(db)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| Error::not_found("module"))?;
    load_row(db, host, &row).await
}

/// A module version to install.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Its manifest.
    pub manifest: &'a Manifest,
    /// The component bytes.
    pub component: &'a [u8],
    /// Where it comes from.
    pub source: Source,
    /// The verified package, kept so every process can load it.
    pub package: Option<&'a [u8]>,
}

/// Install (or upgrade to) a candidate, enabled, in one transaction, after
/// resolving dependencies and compiling it; on any failure the previous
/// version stays active. A bundled module gets the capabilities it
/// declares; a package gets none it was not accepted for (see
/// [`install_accepting`]).
pub async fn install(
    db: &Db,
    host: &ModuleHost,
    mode: Mode,
    candidate: Candidate<'_>,
    now: i64,
) -> Result<ModuleInfo> {
    install_accepting(db, host, mode, candidate, &BTreeSet::new(), now).await
}

/// [`install`], recording that an administrator accepted `accept` of the
/// capabilities the package requests. An upgrade keeps what was accepted
/// for the previous version (of what the new one still requests); a
/// capability requested but never accepted stays refused until it is
/// ([`accept_capabilities`]).
pub async fn install_accepting(
    db: &Db,
    host: &ModuleHost,
    mode: Mode,
    candidate: Candidate<'_>,
    accept: &BTreeSet<Capability>,
    now: i64,
) -> Result<ModuleInfo> {
    let Candidate {
        manifest,
        component,
        source,
        package,
    } = candidate;
    let manifest = manifest.clone();
    let g = graph(db).await?;
    match g.get(&manifest.id) {
        Some(old) if old.manifest.version == manifest.version => {
            return Err(Error::new(
                Code::ModuleAlreadyInstalled,
                format!(
                    "module {} {} is already installed",
                    manifest.id, manifest.version
                ),
            ))
        }
        Some(_) => deps::check_version_change(&g, &manifest)?,
        None => deps::check_enable(&g, &manifest)?,
    }
    // Compile before touching the database: a component that does not load
    // changes nothing, and the old version keeps serving until the new one
    // is committed.
    let compiled = host.compile(manifest.clone(), component)?;
    host.check_handlers(&compiled).await?;
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(component));
    let requested = capabilities::requested(&manifest);
    let accepted: BTreeSet<Capability> = match source {
        // Part of the binary the operator chose to run.
        Source::Bundled => requested.clone(),
        Source::Package => {
            let before: Option<String> =
                sqlx::query_scalar("SELECT accepted_capabilities FROM modules WHERE id = $1")
                    .bind(&manifest.id)
                    .fetch_optional(db.pool())
                    .await?;
            let mut granted = before
                .map(|t| capabilities::from_stored(&t))
                .unwrap_or_default();
            granted.extend(accept.iter().copied());
            granted.intersection(&requested).copied().collect()
        }
    };
    let result = async {
        let mut tx = db.begin().await?;
        sqlx::query(
            "INSERT INTO modules (id, version, state, source, manifest, component_digest, installed_at, updated_at, accepted_capabilities) \
             VALUES ($1, $2, 'enabled', $3, $4, $5, $6, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, state = 'enabled', source = excluded.source, \
             manifest = excluded.manifest, component_digest = excluded.component_digest, updated_at = excluded.updated_at, \
             accepted_capabilities = excluded.accepted_capabilities",
        )
        .bind(&manifest.id)
        .bind(manifest.version.to_string())
        .bind(source.as_str())
        .bind(manifest_text(&manifest)?)
        .bind(&digest)
        .bind(now)
        .bind(capabilities::to_stored(&accepted))
        .execute(&mut *tx)
        .await?;
        if let Some(bytes) = package {
            sqlx::query(
                "INSERT INTO module_packages (module_id, version, package, stored_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (module_id, version) DO UPDATE SET package = excluded.package, stored_at = excluded.stored_at",
            )
            .bind(&manifest.id)
            .bind(manifest.version.to_string())
            .bind(bytes.to_vec())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if g.contains_key(&manifest.id) {
            // An upgrade may declare other indexes: refill them with the change.
            super::records::reindex_tx(&mut tx, &manifest.id, &manifest.collections).await?;
        }
        crate::audit::record_tx(
            &mut tx,
            &crate::audit::AuditEvent::new("module.installed")
                .target("module", &manifest.id)
                .data(serde_json::json!({
                    "version": manifest.version.to_string(),
                    "source": source.as_str(),
                    "capabilities": requested,
                    "accepted_capabilities": accepted,
                })),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok::<(), Error>(())
    }
    .await;
    result?;
    host.activate(compiled);
    super::sync::announce(db).await;
    register_permissions(db, &manifest, now).await?;
    if mode == Mode::SelfHosted {
        super::entitlements::grant_trials(db, manifest.entitlement_key(), now).await?;
    }
    list(db, host)
        .await?
        .into_iter()
        .find(|m| m.id == manifest.id)
        .ok_or_else(|| Error::not_found("module"))
}

async fn component_of_loaded(db: &Db, m: &Manifest) -> Result<Vec<u8>> {
    let source: String = sqlx::query_scalar("SELECT source FROM modules WHERE id = $1")
        .bind(&m.id)
        .fetch_one(db.pool())
        .await?;
    component(db, &m.id, &m.version.to_string(), &source).await
}

/// The manifest as stored: TOML text.
fn manifest_text(m: &Manifest) -> Result<String> {
    toml::to_string(m).map_err(Error::internal)
}

/// Give the module's permissions to their default roles in every tenant
/// (rows that already exist are left as admins set them).
async fn register_permissions(db: &Db, m: &Manifest, _now: i64) -> Result<()> {
    for p in &m.permissions {
        for role in &p.default_roles {
            sqlx::query(
                "INSERT INTO role_permissions (tenant_id, role, permission) SELECT id, $1, $2 FROM tenants \
                 WHERE TRUE ON CONFLICT DO NOTHING",
            )
            .bind(role.as_str())
            .bind(&p.name)
            .execute(db.pool())
            .await?;
        }
    }
    Ok(())
}

/// Install the modules built into this binary that are missing or older.
pub async fn sync_bundled(db: &Db, host: &ModuleHost, mode: Mode, now: i64) -> Result<()> {
    let g = graph(db).await?;
    for (text, wasm) in kontor_runtime::bundled::ALL {
        let manifest = Manifest::parse("bundled module.toml", text).map_err(Error::internal)?;
        let newer = g
            .get(&manifest.id)
            .is_none_or(|i| i.manifest.version < manifest.version);
        if newer {
            let candidate = Candidate {
                manifest: &manifest,
                component: wasm,
                source: Source::Bundled,
                package: None,
            };
            if let Err(e) = install(db, host, mode, candidate, now).await {
                tracing::error!(module = %manifest.id, error = %e, "bundled module not installed");
            }
        }
    }
    Ok(())
}

/// Enable an installed module (dependencies must be enabled).
pub async fn enable(db: &Db, host: &ModuleHost, id: &str, now: i64) -> Result<()> {
    let g = graph(db).await?;
    let installed = installed(&g, id)?;
    deps::check_enable(&g, &installed.manifest)?;
    let bytes = component_of_loaded(db, &installed.manifest).await?;
    host.load(installed.manifest.clone(), &bytes)?;
    set_state(db, id, "enabled", now).await?;
    super::sync::announce(db).await;
    Ok(())
}

/// Disable a module; refused while an enabled module needs it. Its data stays.
pub async fn disable(db: &Db, host: &ModuleHost, id: &str, now: i64) -> Result<()> {
    let g = graph(db).await?;
    installed(&g, id)?;
    deps::check_disable(&g, id)?;
    set_state(db, id, "disabled", now).await?;
    host.unload(id);
    super::sync::announce(db).await;
    Ok(())
}

async fn set_state(db: &Db, id: &str, state: &str, now: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE modules SET state = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(state)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    crate::audit::record_tx(
        &mut tx,
        &crate::audit::AuditEvent::new(&format!("module.{state}")).target("module", id),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Remove a module. Its records stay unless `purge` is asked for.
pub async fn uninstall(db: &Db, host: &ModuleHost, id: &str, purge: bool, now: i64) -> Result<()> {
    let g = graph(db).await?;
    installed(&g, id)?;
    deps::check_disable(&g, id)?;
    let mut tx = db.begin().await?;
    for sql in [
        "DELETE FROM modules WHERE id = $1",
        "DELETE FROM module_packages WHERE module_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *tx).await?;
    }
    crate::audit::record_tx(
        &mut tx,
        &crate::audit::AuditEvent::new("module.uninstalled")
            .target("module", id)
            .data(serde_json::json!({ "purge": purge })),
        now,
    )
    .await?;
    tx.commit().await?;
    host.unload(id);
    super::sync::announce(db).await;
    if purge {
        super::records::purge(db, None, id).await?;
        super::secrets::purge(db, id).await?;
        super::settings::purge(db, id).await?;
    }
    Ok(())
}

/// Set which of the capabilities module `id` requests an administrator
/// accepts (the rest are refused to it from now on). Install-wide, audited.
pub async fn accept_capabilities(
    db: &Db,
    id: &str,
    accepted: &BTreeSet<Capability>,
    now: i64,
) -> Result<()> {
    let g = graph(db).await?;
    let installed = installed(&g, id)?;
    let requested = capabilities::requested(&installed.manifest);
    if let Some(extra) = accepted.iter().find(|c| !requested.contains(c)) {
        let asked: Vec<&str> = requested.iter().map(|c| c.as_str()).collect();
        return Err(Error::invalid(
            "accepted",
            format!(
                "module {id} does not request the capability `{extra}` (it requests: {})",
                if asked.is_empty() {
                    "none".to_string()
                } else {
                    asked.join(", ")
                }
            ),
        ));
    }
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE modules SET accepted_capabilities = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(capabilities::to_stored(accepted))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    crate::audit::record_tx(
        &mut tx,
        &crate::audit::AuditEvent::new("module.capabilities.accepted")
            .target("module", id)
            .data(serde_json::json!({ "accepted_capabilities": accepted })),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The manifest of installed module `id` (enabled or not), or `module_not_found`.
pub async fn manifest(db: &Db, id: &str) -> Result<Manifest> {
    let text: Option<String> = sqlx::query_scalar("SELECT manifest FROM modules WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    let text = text.ok_or_else(|| {
        Error::new(
            Code::ModuleNotFound,
            format!("module {id} is not installed"),
        )
    })?;
    Manifest::parse(&format!("{id}/module.toml"), &text)
        .map_err(|e| Error::internal(format!("stored manifest of {id} is invalid: {e}")))
}

/// Give every tenant a trial of every installed module it has no
/// entitlement for yet (self-hosted: a tenant made after the install).
pub async fn grant_trials_for_installed(db: &Db, now: i64) -> Result<()> {
    for (_, installed) in graph(db).await? {
        super::entitlements::grant_trials(db, installed.manifest.entitlement_key(), now).await?;
    }
    Ok(())
}

/// The trust store of this install: the built-in publisher keys (the dev
/// key only with `--dev`) and the keys an admin added.
pub async fn trust_store(db: &Db, dev: bool) -> Result<super::trust::TrustStore> {
    let mut store = super::trust::TrustStore::builtin(dev);
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT key_id, publisher, public_key FROM module_trusted_keys ORDER BY key_id",
    )
    .fetch_all(db.pool())
    .await?;
    for (key_id, publisher, public_key) in rows {
        if let Err(e) = store.add(&key_id, &publisher, &public_key) {
            tracing::warn!(key_id, error = %e, "ignoring an unusable trusted key");
        }
    }
    Ok(store)
}

/// Verify a `.kmod` package against the trust store and install it,
/// accepting none of the capabilities it requests (the answer lists them;
/// [`accept_capabilities`] grants them later).
pub async fn install_package(
    db: &Db,
    host: &ModuleHost,
    config: &crate::config::Config,
    bytes: &[u8],
    now: i64,
) -> Result<ModuleInfo> {
    install_package_accepting(db, host, config, bytes, &BTreeSet::new(), now).await
}

/// [`install_package`], with the capabilities an administrator accepted
/// after seeing what the package requests.
pub async fn install_package_accepting(
    db: &Db,
    host: &ModuleHost,
    config: &crate::config::Config,
    bytes: &[u8],
    accept: &BTreeSet<Capability>,
    now: i64,
) -> Result<ModuleInfo> {
    let trust = trust_store(db, config.dev).await?;
    let package = super::package::open(
        bytes,
        &trust,
        super::package::OpenOptions { dev: config.dev },
    )
    .map_err(super::package::PackageError::into_api_error)?;
    let candidate = Candidate {
        manifest: &package.manifest,
        component: &package.component,
        source: Source::Package,
        package: Some(bytes),
    };
    install_accepting(db, host, config.mode, candidate, accept, now).await
}

/// Add a publisher key to the trust store of this install.
pub async fn add_trusted_key(db: &Db, key: &super::trust::PublisherKey, now: i64) -> Result<()> {
    // Refuse what the trust store would refuse, before storing it.
    let mut probe = super::trust::TrustStore::empty();
    probe
        .add_key(key)
        .map_err(|e| Error::invalid("key", e.to_string()))?;
    sqlx::query(
        "INSERT INTO module_trusted_keys (key_id, publisher, public_key, added_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key_id) DO UPDATE SET publisher = excluded.publisher, public_key = excluded.public_key",
    )
    .bind(&key.key_id)
    .bind(&key.publisher)
    .bind(&key.public_key)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}
