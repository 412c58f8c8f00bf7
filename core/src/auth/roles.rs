//! Roles and permissions.
//!
//! A permission is a dotted string (`customers.read`). The core registers its
//! own in [`CORE_PERMISSIONS`]; modules register theirs into the same
//! [`PermissionRegistry`] with the roles that get them by default. Each
//! tenant keeps its own role → permission map in `role_permissions`, which
//! admins change; `owner` always holds every permission, so nobody can lock
//! the owner out.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::db::{Db, Tx};
use crate::error::{Error, Result};
use crate::ids::TenantId;

/// The role of a user within a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds every permission; cannot be restricted.
    Owner,
    /// Runs the tenant.
    Admin,
    /// Works with customers.
    Staff,
    /// Sees only the customers assigned to them.
    Reseller,
    /// A portal user: sees only their own customer record.
    Customer,
}

impl Role {
    /// Every role, in order of power.
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Staff,
        Role::Reseller,
        Role::Customer,
    ];

    /// The role as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::Reseller => "reseller",
            Role::Customer => "customer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "role",
                    format!(
                        "unknown role `{s}`; expected owner, admin, staff, reseller or customer"
                    ),
                )
            })
    }
}

/// One permission a part of Kontor defines.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PermissionDef {
    /// The permission, e.g. `customers.read`.
    pub name: String,
    /// What it allows, for the admin UI.
    pub description: String,
    /// Who defined it: `core` or a module id.
    pub source: String,
    /// Roles that get it when a tenant is created or the module is enabled.
    pub default_roles: Vec<Role>,
}

use Role::{Admin, Customer, Reseller, Staff};

/// The permissions of the core: (name, description, default roles besides owner).
pub const CORE_PERMISSIONS: &[(&str, &str, &[Role])] = &[
    (
        "customers.read",
        "See customers, contacts, notes and timeline",
        &[Admin, Staff, Reseller, Customer],
    ),
    (
        "customers.write",
        "Create and change customers, contacts and notes",
        &[Admin, Staff, Reseller],
    ),
    ("customers.delete", "Delete customers", &[Admin]),
    (
        "customers.import",
        "Import customers from CSV",
        &[Admin, Staff],
    ),
    (
        "customers.export",
        "Export customers to CSV",
        &[Admin, Staff],
    ),
    (
        "customers.gdpr",
        "GDPR export and erasure of a customer",
        &[Admin],
    ),
    ("users.read", "See the users of the tenant", &[Admin, Staff]),
    (
        "users.manage",
        "Create, change and deactivate users",
        &[Admin],
    ),
    (
        "roles.manage",
        "Change which role has which permission",
        &[Admin],
    ),
    ("settings.read", "See settings", &[Admin, Staff]),
    ("settings.manage", "Change settings", &[Admin]),
    (
        "modules.manage",
        "Install, enable and disable modules",
        &[Admin],
    ),
    ("audit.read", "Read the audit trail", &[Admin]),
    (
        "jobs.manage",
        "See failed background work and replay it",
        &[Admin],
    ),
    (
        "subscriptions.read",
        "See the tenant's subscription and plan (SaaS)",
        &[Admin],
    ),
    (
        "subscriptions.manage",
        "Choose a plan and cancel the subscription (SaaS)",
        &[],
    ),
    (
        "license.manage",
        "See the installation's license and install a new one (self-hosted)",
        &[Admin],
    ),
];

/// All permissions known to this host: the core's and every module's.
#[derive(Debug, Clone)]
pub struct PermissionRegistry {
    inner: Arc<RwLock<BTreeMap<String, PermissionDef>>>,
}

impl Default for PermissionRegistry {
    fn default() -> Self {
        let registry = PermissionRegistry {
            inner: Arc::new(RwLock::new(BTreeMap::new())),
        };
        for (name, description, roles) in CORE_PERMISSIONS {
            registry.register(PermissionDef {
                name: (*name).to_string(),
                description: (*description).to_string(),
                source: "core".to_string(),
                default_roles: roles.to_vec(),
            });
        }
        registry
    }
}

impl PermissionRegistry {
    /// Add (or replace) a permission; modules call this when they load.
    pub fn register(&self, def: PermissionDef) {
        if let Ok(mut map) = self.inner.write() {
            map.insert(def.name.clone(), def);
        }
    }

    /// Every registered permission, sorted by name.
    pub fn all(&self) -> Vec<PermissionDef> {
        self.inner
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `name` is a registered permission.
    pub fn contains(&self, name: &str) -> bool {
        self.inner.read().is_ok_and(|m| m.contains_key(name))
    }

    /// The names of every registered permission.
    pub fn names(&self) -> HashSet<String> {
        self.inner
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// Write the default role → permission map for a new tenant.
pub async fn seed_defaults(
    tx: &mut Tx,
    tenant: &TenantId,
    registry: &PermissionRegistry,
) -> Result<()> {
    for def in registry.all() {
        for role in &def.default_roles {
            if *role == Role::Owner {
                continue;
            }
            sqlx::query(
                "INSERT INTO role_permissions (tenant_id, role, permission) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(tenant.as_str())
            .bind(role.as_str())
            .bind(&def.name)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// The permissions a role holds in a tenant.
pub async fn permissions_for(
    db: &Db,
    registry: &PermissionRegistry,
    tenant: &TenantId,
    role: Role,
) -> Result<HashSet<String>> {
    if role == Role::Owner {
        return Ok(registry.names());
    }
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT permission FROM role_permissions WHERE tenant_id = $1 AND role = $2",
    )
    .bind(tenant.as_str())
    .bind(role.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().collect())
}

/// The whole map of a tenant, role by role.
pub async fn role_map(
    db: &Db,
    registry: &PermissionRegistry,
    tenant: &TenantId,
) -> Result<BTreeMap<Role, BTreeSet<String>>> {
    let mut map = BTreeMap::new();
    for role in Role::ALL {
        let perms = permissions_for(db, registry, tenant, role).await?;
        map.insert(role, perms.into_iter().collect());
    }
    Ok(map)
}

/// Replace the permissions of `role` in `tenant`. Unknown permissions are
/// refused by name; the owner role cannot be changed.
pub async fn set_role_permissions(
    db: &Db,
    registry: &PermissionRegistry,
    tenant: &TenantId,
    role: Role,
    permissions: &[String],
) -> Result<()> {
    if role == Role::Owner {
        return Err(Error::invalid(
            "role",
            "the owner role always holds every permission and cannot be changed",
        ));
    }
    if let Some(unknown) = permissions.iter().find(|p| !registry.contains(p)) {
        return Err(Error::invalid(
            "permissions",
            format!("unknown permission `{unknown}`"),
        ));
    }
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM role_permissions WHERE tenant_id = $1 AND role = $2")
        .bind(tenant.as_str())
        .bind(role.as_str())
        .execute(&mut *tx)
        .await?;
    for p in permissions.iter().collect::<BTreeSet<_>>() {
        sqlx::query(
            "INSERT INTO role_permissions (tenant_id, role, permission) VALUES ($1, $2, $3)",
        )
        .bind(tenant.as_str())
        .bind(role.as_str())
        .bind(p)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl PartialOrd for Role {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Role {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let idx = |r: &Role| Role::ALL.iter().position(|x| x == r).unwrap_or(usize::MAX);
        idx(self).cmp(&idx(other))
    }
}
