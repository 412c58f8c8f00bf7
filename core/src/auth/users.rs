//! The people of a tenant: staff, resellers and portal customers.

use serde::{Deserialize, Serialize};

use super::{is_plausible_email, normalize_email, password, Role};
use crate::clock::rfc3339;
use crate::db::{Db, Tx};
use crate::error::{Code, Error, Result};
use crate::ids::{TenantId, UserId};
use crate::license::{Licensing, LimitKind, Quota};

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    /// Id.
    pub id: String,
    /// Login e-mail.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role within the tenant.
    pub role: Role,
    /// Preferred UI language (`de`, `en`), or null for the browser's.
    pub locale: Option<String>,
    /// For `customer` users: the customer record they belong to.
    pub customer_id: Option<String>,
    /// `active` or `disabled`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, or null.
    pub last_login_at: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub locale: Option<String>,
    pub customer_id: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

pub(crate) const USER_COLUMNS: &str = "id, tenant_id, email, name, role, password_hash, locale, \
     customer_id, status, created_at, last_login_at";

impl UserRow {
    pub(crate) fn role(&self) -> Result<Role> {
        self.role.parse().map_err(|_| {
            Error::internal(format!("user {} has unknown role {}", self.id, self.role))
        })
    }

    pub(crate) fn to_api(&self) -> Result<User> {
        Ok(User {
            id: self.id.clone(),
            email: self.email.clone(),
            name: self.name.clone(),
            role: self.role()?,
            locale: self.locale.clone(),
            customer_id: self.customer_id.clone(),
            status: self.status.clone(),
            created_at: rfc3339(self.created_at),
            last_login_at: self.last_login_at.map(rfc3339),
        })
    }
}

/// What it takes to create a user.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login e-mail, unique within the tenant.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Password (at least 10 characters).
    pub password: String,
    /// Preferred UI language.
    #[serde(default)]
    pub locale: Option<String>,
    /// Required for `customer` users: their customer record.
    #[serde(default)]
    pub customer_id: Option<String>,
}

/// A change to a user; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// Display name.
    pub name: Option<String>,
    /// Role.
    pub role: Option<Role>,
    /// `active` or `disabled`; disabling ends every session of the user.
    pub status: Option<String>,
    /// Preferred UI language.
    pub locale: Option<String>,
    /// New password.
    pub password: Option<String>,
}

fn check_locale(locale: &Option<String>) -> Result<()> {
    match locale.as_deref() {
        None | Some("de") | Some("en") => Ok(()),
        Some(other) => Err(Error::invalid(
            "locale",
            format!("`{other}` is not offered; use de or en"),
        )),
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid("name", "must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(Error::invalid("name", "must be at most 200 characters"));
    }
    Ok(())
}

/// The license's cap that creating a user of `role` counts against: users
/// who work in the CRM count, a customer's portal login does not. Check it
/// in the creating transaction, before [`create`]. (The operator's `kontor
/// admin create` and a new tenant's owner are not capped: an operator can
/// always get an administrator in.)
pub async fn quota_for(licensing: &Licensing, db: &Db, role: Role, now: i64) -> Result<Quota> {
    if role == Role::Customer {
        return Ok(Quota::unlimited(LimitKind::Users));
    }
    licensing.quota(db, LimitKind::Users, now).await
}

/// Create a user inside `tx`.
pub async fn create(tx: &mut Tx, tenant: &TenantId, new: &NewUser, now: i64) -> Result<User> {
    if !is_plausible_email(&new.email) {
        return Err(Error::invalid("email", "is not a valid e-mail address"));
    }
    check_name(&new.name)?;
    check_locale(&new.locale)?;
    password::check_policy(&new.password)?;
    match (new.role, &new.customer_id) {
        (Role::Customer, None) => {
            return Err(Error::invalid(
                "customer_id",
                "a customer user needs its customer record",
            ))
        }
        (Role::Customer, Some(cid)) => {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT id FROM customers WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(cid)
                    .fetch_optional(&mut **tx)
                    .await?;
            if exists.is_none() {
                return Err(Error::invalid("customer_id", "no such customer"));
            }
        }
        (_, Some(_)) => {
            return Err(Error::invalid(
                "customer_id",
                "only customer users belong to a customer record",
            ))
        }
        _ => {}
    }
    let hash = password::hash(&new.password).await?;
    let id = UserId::generate();
    sqlx::query(
        "INSERT INTO users (id, tenant_id, email, email_norm, name, role, password_hash, locale, \
         customer_id, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $10)",
    )
    .bind(id.as_str())
    .bind(tenant.as_str())
    .bind(new.email.trim())
    .bind(normalize_email(&new.email))
    .bind(new.name.trim())
    .bind(new.role.as_str())
    .bind(&hash)
    .bind(&new.locale)
    .bind(&new.customer_id)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        Error::from(e).on_unique(
            "users_tenant_email_key",
            Code::EmailTaken,
            "a user with this e-mail already exists",
        )
    })?;
    let row = fetch_row(&mut **tx, tenant, id.as_str())
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    let user = row.to_api()?;
    crate::modules::events::publish_tx(
        tx,
        tenant,
        "user.created",
        &serde_json::json!({ "id": user.id, "role": user.role, "name": user.name }),
        now,
    )
    .await?;
    Ok(user)
}

pub(crate) async fn fetch_row<'e, E>(
    exec: E,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<UserRow>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    Ok(sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(exec)
    .await?)
}

/// One user of the tenant.
pub async fn get(db: &Db, tenant: &TenantId, id: &str) -> Result<User> {
    fetch_row(db.pool(), tenant, id)
        .await?
        .ok_or_else(|| Error::not_found("user"))?
        .to_api()
}

/// Every user of the tenant, by name.
pub async fn list(db: &Db, tenant: &TenantId) -> Result<Vec<User>> {
    let rows = sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY name, id"
    ))
    .bind(tenant.as_str())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(UserRow::to_api).collect()
}

/// Change a user. `actor_role` decides whether owner changes are allowed:
/// only an owner makes or unmakes owners, and the last active owner stays.
/// Enabling a disabled user, or making a portal user a CRM user, takes a
/// place of the license's `users_quota`.
pub async fn update(
    db: &Db,
    tenant: &TenantId,
    id: &str,
    patch: &UserPatch,
    actor_role: Role,
    users_quota: &Quota,
    now: i64,
) -> Result<User> {
    if let Some(name) = &patch.name {
        check_name(name)?;
    }
    check_locale(&patch.locale)?;
    if let Some(p) = &patch.password {
        password::check_policy(p)?;
    }
    if let Some(s) = &patch.status {
        if s != "active" && s != "disabled" {
            return Err(Error::invalid("status", "expected active or disabled"));
        }
    }
    let hash = match &patch.password {
        Some(p) => Some(password::hash(p).await?),
        None => None,
    };
    let mut tx = db.begin().await?;
    if patch.status.as_deref() == Some("active") || patch.role.is_some_and(|r| r != Role::Customer)
    {
        // Before the read below; counted once the row shows whether this
        // change takes a place.
        users_quota.lock_tx(&mut tx).await?;
    }
    let row = sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2{}",
        db.for_update()
    ))
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::not_found("user"))?;
    let current = row.role()?;
    let touches_owner = current == Role::Owner || patch.role == Some(Role::Owner);
    if touches_owner
        && actor_role != Role::Owner
        && (patch.role.is_some() || patch.status.is_some() || patch.password.is_some())
    {
        return Err(Error::new(
            Code::Forbidden,
            "only an owner can change an owner or make a new one",
        ));
    }
    let demotes_owner = current == Role::Owner
        && (patch.role.is_some_and(|r| r != Role::Owner)
            || patch.status.as_deref() == Some("disabled"));
    if demotes_owner {
        let owners: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND role = 'owner' AND status = 'active'",
        )
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if owners <= 1 {
            return Err(Error::new(
                Code::Conflict,
                "the last active owner cannot be demoted or disabled",
            ));
        }
    }
    let counted = |role: Role, status: &str| role != Role::Customer && status == "active";
    let after_role = patch.role.unwrap_or(current);
    let after_status = patch.status.as_deref().unwrap_or(&row.status);
    if counted(after_role, after_status) && !counted(current, &row.status) {
        users_quota.check_tx(&mut tx).await?;
    }
    if patch.role.is_some_and(|r| r == Role::Customer) && row.customer_id.is_none() {
        return Err(Error::invalid(
            "role",
            "a user becomes a customer user only by creating it with a customer record",
        ));
    }
    sqlx::query(
        "UPDATE users SET name = COALESCE($3, name), role = COALESCE($4, role), \
         status = COALESCE($5, status), locale = COALESCE($6, locale), \
         password_hash = COALESCE($7, password_hash), updated_at = $8 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(patch.name.as_deref().map(str::trim))
    .bind(patch.role.map(Role::as_str))
    .bind(&patch.status)
    .bind(&patch.locale)
    .bind(&hash)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if patch.status.as_deref() == Some("disabled") || hash.is_some() {
        // A disabled user or a changed password ends every open session.
        super::sessions::revoke_all_for_user(&mut tx, tenant, id, now).await?;
    }
    let updated = fetch_row(&mut *tx, tenant, id)
        .await?
        .ok_or_else(|| Error::not_found("user"))?;
    tx.commit().await?;
    updated.to_api()
}
