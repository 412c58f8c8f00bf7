//! Login sessions, stored server-side so revocation takes effect on the
//! very next request. The client holds only a random token; the table holds
//! its hash.

use serde::Serialize;

use super::{random_secret, token_hash};
use crate::clock::rfc3339;
use crate::db::{Db, Tx};
use crate::error::{Error, Result};
use crate::ids::{new_id, TenantId, UserId};

/// Prefix of session tokens, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "kses_";

/// A new session: the token goes to the client once.
#[derive(Debug)]
pub struct NewSession {
    /// Session id (for listing and revoking).
    pub id: String,
    /// The bearer/cookie token.
    pub token: String,
    /// The CSRF token forms of this session must carry.
    pub csrf_token: String,
    /// Unix ms when it lapses without use.
    pub expires_at: i64,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SessionRow {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub csrf_token: String,
    pub last_seen_at: i64,
}

/// A session as its owner sees it in the list of their sessions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    /// Id.
    pub id: String,
    /// IP address at login.
    pub ip: Option<String>,
    /// Browser at login.
    pub user_agent: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_seen_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Whether this is the session of the current request.
    pub current: bool,
}

/// Open a session for a user.
pub async fn create(
    db: &Db,
    tenant: &TenantId,
    user: &UserId,
    ip: Option<&str>,
    user_agent: Option<&str>,
    now: i64,
    idle_hours: i64,
) -> Result<NewSession> {
    let token = format!("{TOKEN_PREFIX}{}", random_secret());
    let csrf_token = random_secret();
    let id = new_id();
    let expires_at = now + idle_hours * 3_600_000;
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, tenant_id, user_id, csrf_token, ip, user_agent, \
         created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
    )
    .bind(&id)
    .bind(token_hash(&token))
    .bind(tenant.as_str())
    .bind(user.as_str())
    .bind(&csrf_token)
    .bind(ip)
    .bind(user_agent.map(|ua| ua.chars().take(300).collect::<String>()))
    .bind(now)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok(NewSession {
        id,
        token,
        csrf_token,
        expires_at,
    })
}

/// The live session for `token`, sliding its idle expiry forward (at most
/// once a minute, so reads do not turn into a write per request).
pub(crate) async fn lookup(
    db: &Db,
    token: &str,
    now: i64,
    idle_hours: i64,
) -> Result<Option<SessionRow>> {
    let row = sqlx::query_as::<_, SessionRow>(
        "SELECT id, tenant_id, user_id, csrf_token, last_seen_at FROM sessions \
         WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash(token))
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    if let Some(row) = &row {
        if now - row.last_seen_at > 60_000 {
            sqlx::query("UPDATE sessions SET last_seen_at = $2, expires_at = $3 WHERE id = $1")
                .bind(&row.id)
                .bind(now)
                .bind(now + idle_hours * 3_600_000)
                .execute(db.pool())
                .await?;
        }
    }
    Ok(row)
}

/// Sessions of a user that are still live.
pub async fn list_for_user(
    db: &Db,
    tenant: &TenantId,
    user: &UserId,
    current: Option<&str>,
    now: i64,
) -> Result<Vec<SessionInfo>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: String,
        ip: Option<String>,
        user_agent: Option<String>,
        created_at: i64,
        last_seen_at: i64,
        expires_at: i64,
    }
    let rows = sqlx::query_as::<_, Row>(
        "SELECT id, ip, user_agent, created_at, last_seen_at, expires_at FROM sessions \
         WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 \
         ORDER BY created_at DESC",
    )
    .bind(tenant.as_str())
    .bind(user.as_str())
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SessionInfo {
            current: current == Some(r.id.as_str()),
            id: r.id,
            ip: r.ip,
            user_agent: r.user_agent,
            created_at: rfc3339(r.created_at),
            last_seen_at: rfc3339(r.last_seen_at),
            expires_at: rfc3339(r.expires_at),
        })
        .collect())
}

/// Revoke one session of a user (their own). Unknown ids are `not_found`.
pub async fn revoke(
    db: &Db,
    tenant: &TenantId,
    user: &UserId,
    session_id: &str,
    now: i64,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $4 \
         WHERE tenant_id = $1 AND user_id = $2 AND id = $3 AND revoked_at IS NULL",
    )
    .bind(tenant.as_str())
    .bind(user.as_str())
    .bind(session_id)
    .bind(now)
    .execute(db.pool())
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found("session"));
    }
    Ok(())
}

/// Revoke every session of a user (disabled, password changed).
pub async fn revoke_all_for_user(
    tx: &mut Tx,
    tenant: &TenantId,
    user_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE sessions SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(tenant.as_str())
    .bind(user_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Delete sessions that lapsed or were revoked more than a day ago (a core job).
pub async fn purge_expired(db: &Db, now: i64) -> Result<u64> {
    let cutoff = now - 86_400_000;
    let done = sqlx::query(
        "DELETE FROM sessions WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)",
    )
    .bind(cutoff)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected())
}
