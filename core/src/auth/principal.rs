//! The authenticated caller.
//!
//! Every handler that touches tenant data receives a [`Principal`]; its
//! [`TenantId`] is the only tenant a query may use.

use std::collections::HashSet;

use super::roles::{permissions_for, PermissionRegistry};
use super::users::{fetch_row, UserRow};
use super::{sessions, tokens, Role};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::ids::{CustomerId, TenantId, UserId};

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum AuthMethod {
    /// A login session (cookie or bearer).
    Session {
        /// Session id.
        id: String,
        /// The CSRF token forms of this session carry.
        csrf_token: String,
    },
    /// A personal API token.
    Token {
        /// Token id.
        id: String,
    },
    /// No user at all: module code running for the tenant in an event or a
    /// job, with the permissions the host granted it ([`Principal::system`]).
    System,
}

/// Which customers the caller may see at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerScope {
    /// Every customer of the tenant.
    All,
    /// Only customers assigned to this reseller.
    Reseller(UserId),
    /// Only this one customer (a portal user).
    Own(CustomerId),
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The tenant every query of this request is scoped to.
    pub tenant_id: TenantId,
    /// The user.
    pub user_id: UserId,
    /// Their role.
    pub role: Role,
    /// Display name.
    pub name: String,
    /// E-mail.
    pub email: String,
    /// Preferred UI language.
    pub locale: Option<String>,
    /// For portal users: their customer.
    pub customer_id: Option<CustomerId>,
    /// What the role holds in this tenant.
    pub permissions: HashSet<String>,
    /// Session or token.
    pub method: AuthMethod,
}

impl Principal {
    /// Whether the caller holds `permission`.
    pub fn can(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// `Ok` if the caller holds `permission`, else `forbidden` naming it.
    pub fn require(&self, permission: &str) -> Result<()> {
        if self.can(permission) {
            Ok(())
        } else {
            Err(Error::forbidden(permission))
        }
    }

    /// Whether this is a portal user (role `customer`): someone of a
    /// customer, not of the tenant's staff. The staff pages of the UI refuse
    /// them whatever permissions their role was given.
    pub fn is_portal_user(&self) -> bool {
        self.role == Role::Customer
    }

    /// The customers this caller may see.
    pub fn customer_scope(&self) -> CustomerScope {
        match self.role {
            Role::Reseller => CustomerScope::Reseller(self.user_id.clone()),
            Role::Customer => match &self.customer_id {
                Some(c) => CustomerScope::Own(c.clone()),
                // A portal user without a record sees nothing: scope to an id no row has.
                None => CustomerScope::Own(CustomerId::from_path("")),
            },
            _ => CustomerScope::All,
        }
    }

    /// The session id, when authenticated by session.
    pub fn session_id(&self) -> Option<&str> {
        match &self.method {
            AuthMethod::Session { id, .. } => Some(id),
            AuthMethod::Token { .. } | AuthMethod::System => None,
        }
    }

    /// A caller with no user, for code the host runs on behalf of the tenant
    /// (a module's event handler or job). It holds exactly `permissions`,
    /// sees every customer of the tenant, and has no user id: nothing it
    /// writes names an author.
    pub fn system(tenant: TenantId, name: &str, permissions: &[&str]) -> Principal {
        Principal {
            tenant_id: tenant,
            user_id: UserId::from_trusted(""),
            // Staff: the widest customer scope without any owner/admin-only powers.
            role: Role::Staff,
            name: name.to_string(),
            email: String::new(),
            locale: None,
            customer_id: None,
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            method: AuthMethod::System,
        }
    }

    /// Whether this is a [`Principal::system`] caller, not a user.
    pub fn is_system(&self) -> bool {
        matches!(self.method, AuthMethod::System)
    }

    /// The user's id, or `None` for a system caller.
    pub fn user(&self) -> Option<&UserId> {
        (!self.is_system()).then_some(&self.user_id)
    }
}

/// Resolve a bearer or cookie token to a principal; `None` for unknown,
/// revoked or expired credentials and for disabled users.
pub async fn authenticate(
    db: &Db,
    registry: &PermissionRegistry,
    token: &str,
    now: i64,
    idle_hours: i64,
) -> Result<Option<Principal>> {
    let (method, tenant_id, user_id) = if token.starts_with(tokens::TOKEN_PREFIX) {
        match tokens::lookup(db, token, now).await? {
            Some((id, tenant, user)) => (AuthMethod::Token { id }, tenant, user),
            None => return Ok(None),
        }
    } else if token.starts_with(sessions::TOKEN_PREFIX) {
        match sessions::lookup(db, token, now, idle_hours).await? {
            Some(s) => (
                AuthMethod::Session {
                    id: s.id,
                    csrf_token: s.csrf_token,
                },
                s.tenant_id,
                s.user_id,
            ),
            None => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    let tenant = TenantId::from_trusted(tenant_id);
    let Some(user) = fetch_row(db.pool(), &tenant, &user_id).await? else {
        return Ok(None);
    };
    if user.status != "active" {
        return Ok(None);
    }
    principal_for(db, registry, tenant, user, method)
        .await
        .map(Some)
}

pub(crate) async fn principal_for(
    db: &Db,
    registry: &PermissionRegistry,
    tenant: TenantId,
    user: UserRow,
    method: AuthMethod,
) -> Result<Principal> {
    let role = user.role()?;
    let permissions = permissions_for(db, registry, &tenant, role).await?;
    Ok(Principal {
        tenant_id: tenant,
        user_id: UserId::from_trusted(user.id),
        role,
        name: user.name,
        email: user.email,
        locale: user.locale,
        customer_id: user.customer_id.map(CustomerId::from_path),
        permissions,
        method,
    })
}
