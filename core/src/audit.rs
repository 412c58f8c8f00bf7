//! The audit trail: who did what, when, from where.

use serde::Serialize;
use serde_json::Value;

use crate::clock::rfc3339;
use crate::db::{Db, Tx};
use crate::error::Result;
use crate::ids::{new_id, TenantId};

/// An audit event to record.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    action: String,
    tenant_id: Option<String>,
    actor_id: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    data: Option<Value>,
    ip: Option<String>,
}

impl AuditEvent {
    /// An event named `action` (`user.login`, `customer.erased`...).
    pub fn new(action: &str) -> Self {
        Self {
            action: action.to_string(),
            ..Default::default()
        }
    }
    /// The tenant it happened in.
    pub fn tenant(mut self, t: &TenantId) -> Self {
        self.tenant_id = Some(t.to_string());
        self
    }
    /// Who did it.
    pub fn actor(mut self, user_id: &str) -> Self {
        self.actor_id = Some(user_id.to_string());
        self
    }
    /// The principal's tenant, and its user as the actor when there is one
    /// (a system caller has none).
    pub fn by(mut self, who: &crate::auth::Principal) -> Self {
        self = self.tenant(&who.tenant_id);
        if let Some(u) = who.user() {
            self = self.actor(u.as_str());
        }
        self
    }
    /// What it was done to.
    pub fn target(mut self, kind: &str, id: &str) -> Self {
        self.target_type = Some(kind.to_string());
        self.target_id = Some(id.to_string());
        self
    }
    /// Extra facts (never secrets).
    pub fn data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
    /// The client IP.
    pub fn ip(mut self, ip: Option<&str>) -> Self {
        self.ip = ip.map(str::to_string);
        self
    }
}

/// Record an event inside the transaction of the change it describes.
pub async fn record_tx(tx: &mut Tx, e: &AuditEvent, now: i64) -> Result<()> {
    insert(&mut **tx, e, now).await
}

/// Record an event on its own.
pub async fn record(db: &Db, e: &AuditEvent, now: i64) -> Result<()> {
    insert(db.pool(), e, now).await
}

async fn insert<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    exec: E,
    e: &AuditEvent,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, tenant_id, actor_id, action, target_type, target_id, data, ip, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(&e.tenant_id)
    .bind(&e.actor_id)
    .bind(&e.action)
    .bind(&e.target_type)
    .bind(&e.target_id)
    .bind(e.data.as_ref().map(Value::to_string).unwrap_or_else(|| "{}".into()))
    .bind(&e.ip)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(())
}

/// An audit event as the API lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Id.
    pub id: String,
    /// Who did it (user id), if a user did.
    pub actor_id: Option<String>,
    /// What happened.
    pub action: String,
    /// Kind of the target.
    pub target_type: Option<String>,
    /// Id of the target.
    pub target_id: Option<String>,
    /// Extra facts.
    #[schema(value_type = Object)]
    pub data: Value,
    /// Client IP.
    pub ip: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: String,
    actor_id: Option<String>,
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    data: String,
    ip: Option<String>,
    created_at: i64,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            actor_id: r.actor_id,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            data: serde_json::from_str(&r.data).unwrap_or(Value::Null),
            ip: r.ip,
            created_at: rfc3339(r.created_at),
        }
    }
}

/// The newest events of a tenant, newest first; optionally about one target.
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    target_id: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditEntry>> {
    let rows = sqlx::query_as::<_, AuditRow>(
        "SELECT id, actor_id, action, target_type, target_id, data, ip, created_at FROM audit_events \
         WHERE tenant_id = $1 AND ($2 IS NULL OR target_id = $2) ORDER BY created_at DESC, id DESC LIMIT $3",
    )
    .bind(tenant.as_str())
    .bind(target_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(AuditEntry::from).collect())
}
