//! Personal API tokens.
//!
//! A token looks like `kpat_<prefix>_<secret>`: the prefix is stored in clear
//! so an admin (or a secret scanner) can tell which token leaked, the whole
//! token only as a hash. The token is shown once, at creation.

use serde::{Deserialize, Serialize};
use subtle_eq::constant_time_eq;

use super::{random_secret, token_hash};
use crate::clock::rfc3339;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::ids::{new_id, TenantId, UserId};

/// Prefix of personal API tokens.
pub const TOKEN_PREFIX: &str = "kpat_";

/// A token as listed (never the secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    /// Id.
    pub id: String,
    /// What the user called it.
    pub name: String,
    /// The identifying start of the token, e.g. `kpat_1a2b3c4d`.
    pub prefix: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, or null if never used.
    pub last_used_at: Option<String>,
    /// RFC 3339, or null for no expiry.
    pub expires_at: Option<String>,
}

/// A new token: `token` is shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The token to send as `Authorization: Bearer ...`. Not retrievable later.
    pub token: String,
    /// The stored description of it.
    #[serde(flatten)]
    pub info: ApiToken,
}

/// Request to create a token.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A name to recognise it by.
    pub name: String,
    /// Days until it expires; none for no expiry.
    #[serde(default)]
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    prefix: String,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
}

impl From<TokenRow> for ApiToken {
    fn from(r: TokenRow) -> Self {
        ApiToken {
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            created_at: rfc3339(r.created_at),
            last_used_at: r.last_used_at.map(rfc3339),
            expires_at: r.expires_at.map(rfc3339),
        }
    }
}

/// Create a token for a user.
pub async fn create(
    db: &Db,
    tenant: &TenantId,
    user: &UserId,
    new: &NewToken,
    now: i64,
) -> Result<CreatedToken> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid("name", "must be 1 to 100 characters"));
    }
    if let Some(days) = new.expires_in_days {
        if !(1..=3650).contains(&days) {
            return Err(Error::invalid(
                "expires_in_days",
                "must be between 1 and 3650",
            ));
        }
    }
    let prefix = format!("{TOKEN_PREFIX}{}", &hex::encode(rand::random::<[u8; 4]>()));
    let token = format!("{prefix}_{}", random_secret());
    let id = new_id();
    let expires_at = new.expires_in_days.map(|d| now + d * 86_400_000);
    sqlx::query(
        "INSERT INTO api_tokens (id, tenant_id, user_id, name, prefix, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(tenant.as_str())
    .bind(user.as_str())
    .bind(name)
    .bind(&prefix)
    .bind(token_hash(&token))
    .bind(now)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok(CreatedToken {
        token,
        info: ApiToken {
            id,
            name: name.to_string(),
            prefix,
            created_at: rfc3339(now),
            last_used_at: None,
            expires_at: expires_at.map(rfc3339),
        },
    })
}

/// The live tokens of a user.
pub async fn list(db: &Db, tenant: &TenantId, user: &UserId) -> Result<Vec<ApiToken>> {
    let rows = sqlx::query_as::<_, TokenRow>(
        "SELECT id, name, prefix, created_at, last_used_at, expires_at FROM api_tokens \
         WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL ORDER BY created_at DESC",
    )
    .bind(tenant.as_str())
    .bind(user.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(ApiToken::from).collect())
}

/// Revoke a token of the user.
pub async fn revoke(db: &Db, tenant: &TenantId, user: &UserId, id: &str, now: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $4 \
         WHERE tenant_id = $1 AND user_id = $2 AND id = $3 AND revoked_at IS NULL",
    )
    .bind(tenant.as_str())
    .bind(user.as_str())
    .bind(id)
    .bind(now)
    .execute(db.pool())
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found("token"));
    }
    Ok(())
}

/// (token id, tenant id, user id) of a live token, recording its use.
pub(crate) async fn lookup(
    db: &Db,
    token: &str,
    now: i64,
) -> Result<Option<(String, String, String)>> {
    let Some(prefix) = token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .map(|(p, _)| format!("{TOKEN_PREFIX}{p}"))
    else {
        return Ok(None);
    };
    #[derive(sqlx::FromRow)]
    struct Row {
        id: String,
        tenant_id: String,
        user_id: String,
        token_hash: String,
        last_used_at: Option<i64>,
    }
    let row = sqlx::query_as::<_, Row>(
        "SELECT id, tenant_id, user_id, token_hash, last_used_at FROM api_tokens \
         WHERE prefix = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(&prefix)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    if !constant_time_eq(row.token_hash.as_bytes(), token_hash(token).as_bytes()) {
        return Ok(None);
    }
    if row.last_used_at.is_none_or(|t| now - t > 60_000) {
        sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(&row.id)
            .bind(now)
            .execute(db.pool())
            .await?;
    }
    Ok(Some((row.id, row.tenant_id, row.user_id)))
}

mod subtle_eq {
    /// Compare without an early exit, so timing does not reveal how much matched.
    pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

pub(crate) use subtle_eq::constant_time_eq as ct_eq;
