//! The activity timeline of a customer. The core writes entries for its own
//! changes; modules write theirs through the `crm` capability ([`add`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::customers::fetch_visible;
use crate::auth::Principal;
use crate::clock::rfc3339;
use crate::db::{Db, Tx};
use crate::error::{Error, Result};
use crate::ids::{new_id, CustomerId, TenantId};

/// An entry to write.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// `core` or the module id.
    pub source: &'a str,
    /// What happened, e.g. `customer.updated`.
    pub kind: &'a str,
    /// One line for people.
    pub summary: String,
    /// Facts for machines.
    pub data: Value,
    /// The user who did it.
    pub actor_id: Option<String>,
}

/// An entry as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Activity {
    /// Id.
    pub id: String,
    /// `core` or a module id.
    pub source: String,
    /// What happened.
    pub kind: String,
    /// One line for people.
    pub summary: String,
    /// Facts for machines.
    #[schema(value_type = Object)]
    pub data: Value,
    /// The user who did it.
    pub actor_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    source: String,
    kind: String,
    summary: String,
    data: String,
    actor_id: Option<String>,
    created_at: i64,
}

/// Write an entry inside the transaction of the change it records; its id.
pub async fn add_tx(
    tx: &mut Tx,
    tenant: &TenantId,
    customer: &CustomerId,
    e: Entry<'_>,
    now: i64,
) -> Result<String> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO activities (id, tenant_id, customer_id, source, kind, summary, data, actor_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(tenant.as_str())
    .bind(customer.as_str())
    .bind(e.source)
    .bind(e.kind)
    .bind(e.summary)
    .bind(e.data.to_string())
    .bind(e.actor_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Write an entry about a customer the principal may see, on its own (not
/// part of another change): what a module records through the `crm`
/// capability. Needs `customers.read`: whoever may see a customer may add
/// to what happened with it. Returns the entry's id.
pub async fn add(
    db: &Db,
    who: &Principal,
    customer: &CustomerId,
    e: Entry<'_>,
    now: i64,
) -> Result<String> {
    who.require("customers.read")?;
    let mut tx = db.begin().await?;
    fetch_visible(&mut *tx, who, customer, db.for_update()).await?;
    let id = add_tx(&mut tx, &who.tenant_id, customer, e, now).await?;
    tx.commit().await?;
    Ok(id)
}

/// Paging of the timeline.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// Only entries older than this entry id (the last id of the previous page).
    pub before: Option<String>,
}

/// The timeline of a customer, newest first.
pub async fn list(
    db: &Db,
    who: &Principal,
    customer: &CustomerId,
    q: &TimelineQuery,
) -> Result<Vec<Activity>> {
    who.require("customers.read")?;
    fetch_visible(db.pool(), who, customer, "").await?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Error::invalid("limit", "must be between 1 and 200"));
    }
    // Ids are UUIDv7, so they order like their creation time.
    let rows = sqlx::query_as::<_, Row>(
        "SELECT id, source, kind, summary, data, actor_id, created_at FROM activities \
         WHERE tenant_id = $1 AND customer_id = $2 AND ($3 IS NULL OR id < $3) \
         ORDER BY id DESC LIMIT $4",
    )
    .bind(who.tenant_id.as_str())
    .bind(customer.as_str())
    .bind(&q.before)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Activity {
            id: r.id,
            source: r.source,
            kind: r.kind,
            summary: r.summary,
            data: serde_json::from_str(&r.data).unwrap_or(Value::Null),
            actor_id: r.actor_id,
            created_at: rfc3339(r.created_at),
        })
        .collect())
}
