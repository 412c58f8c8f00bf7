//! Tenants. A self-hosted install has exactly one; SaaS has many.

use serde::Serialize;

use crate::auth::roles::{seed_defaults, PermissionRegistry};
use crate::auth::users::{self, NewUser, User};
use crate::auth::Role;
use crate::clock::rfc3339;
use crate::config::Mode;
use crate::db::Db;
use crate::error::{Code, Error, Result};
use crate::ids::TenantId;

/// A tenant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// URL-safe unique name, used to pick a tenant at login.
    pub slug: String,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: String,
    name: String,
    slug: String,
    created_at: i64,
}

impl From<TenantRow> for Tenant {
    fn from(r: TenantRow) -> Self {
        Tenant {
            id: r.id,
            name: r.name,
            slug: r.slug,
            created_at: rfc3339(r.created_at),
        }
    }
}

/// A slug from a name: lower-case letters, digits and dashes.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().to_lowercase().chars() {
        let c = match c {
            'ä' => 'a',
            'ö' => 'o',
            'ü' => 'u',
            c => c,
        };
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-').to_string();
    if slug.is_empty() {
        "tenant".to_string()
    } else {
        slug
    }
}

/// Create a tenant with its owner. In self-hosted mode only the first
/// tenant may be created.
pub async fn create(
    db: &Db,
    registry: &PermissionRegistry,
    mode: Mode,
    name: &str,
    owner: NewUser,
    now: i64,
) -> Result<(Tenant, User)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid("name", "must be 1 to 200 characters"));
    }
    let mut tx = db.begin().await?;
    let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
        .fetch_one(&mut *tx)
        .await?;
    if mode == Mode::SelfHosted && existing > 0 {
        return Err(Error::new(
            Code::WrongMode,
            "a self-hosted install has one tenant; set KONTOR_MODE=saas to host several",
        ));
    }
    let base = slugify(name);
    let mut slug = base.clone();
    let mut n = 1;
    while sqlx::query_scalar::<_, String>("SELECT id FROM tenants WHERE slug = $1")
        .bind(&slug)
        .fetch_optional(&mut *tx)
        .await?
        .is_some()
    {
        n += 1;
        slug = format!("{base}-{n}");
    }
    let id = TenantId::generate();
    sqlx::query("INSERT INTO tenants (id, name, slug, status, created_at) VALUES ($1, $2, $3, 'active', $4)")
        .bind(id.as_str())
        .bind(name)
        .bind(&slug)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    seed_defaults(&mut tx, &id, registry).await?;
    let owner = users::create(
        &mut tx,
        &id,
        &NewUser {
            role: Role::Owner,
            ..owner
        },
        now,
    )
    .await?;
    crate::audit::record_tx(
        &mut tx,
        &crate::audit::AuditEvent::new("tenant.created")
            .tenant(&id)
            .target("tenant", id.as_str()),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((
        Tenant {
            id: id.to_string(),
            name: name.to_string(),
            slug,
            created_at: rfc3339(now),
        },
        owner,
    ))
}

/// Every tenant, oldest first.
pub async fn list(db: &Db) -> Result<Vec<Tenant>> {
    let rows = sqlx::query_as::<_, TenantRow>(
        "SELECT id, name, slug, created_at FROM tenants ORDER BY created_at, id",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(Tenant::from).collect())
}

/// Find a tenant by id or slug (operator input on the command line).
pub async fn find(db: &Db, id_or_slug: &str) -> Result<Option<Tenant>> {
    let row = sqlx::query_as::<_, TenantRow>(
        "SELECT id, name, slug, created_at FROM tenants WHERE id = $1 OR slug = $1",
    )
    .bind(id_or_slug)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(Tenant::from))
}

/// The tenant whose slug is `slug`: for requests that name their tenant in
/// the URL because no user comes with them (a module's signed hook). The
/// caller proves it may act for that tenant before using the id.
pub async fn id_by_slug(db: &Db, slug: &str) -> Result<Option<TenantId>> {
    let id: Option<String> = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_optional(db.pool())
        .await?;
    Ok(id.map(TenantId::from_trusted))
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(super::slugify("Müller & Söhne AG"), "muller-sohne-ag");
        assert_eq!(super::slugify("  "), "tenant");
    }
}
