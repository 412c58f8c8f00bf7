//! GDPR: everything Kontor holds about a customer, as one JSON document
//! (Art. 15/20), and erasure (Art. 17) by anonymisation. Erasure keeps the
//! record's id and dates so that documents with a legal retention duty
//! (invoices, once billing exists) still point at something.

use serde::Serialize;
use serde_json::Value;

use super::customers::{fetch_visible, write_tx, Customer, CustomerData};
use super::{contacts, notes, timeline};
use crate::audit::{self, AuditEntry};
use crate::auth::Principal;
use crate::clock::rfc3339;
use crate::db::Db;
use crate::error::{Code, Error, Result};
use crate::ids::CustomerId;

/// The GDPR export of one customer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GdprExport {
    /// When the export was made (RFC 3339).
    pub exported_at: String,
    /// The customer record.
    pub customer: Customer,
    /// Its contacts.
    pub contacts: Vec<contacts::Contact>,
    /// Its notes.
    pub notes: Vec<notes::Note>,
    /// Its timeline.
    pub timeline: Vec<timeline::Activity>,
    /// Portal users linked to it (id, e-mail, name, role).
    #[schema(value_type = Vec<Object>)]
    pub users: Vec<Value>,
    /// Audit events about it.
    pub audit: Vec<AuditEntry>,
}

/// Collect everything about a customer.
pub async fn export(db: &Db, who: &Principal, id: &CustomerId, now: i64) -> Result<GdprExport> {
    who.require("customers.gdpr")?;
    let customer = fetch_visible(db.pool(), who, id, "").await?.to_api();
    let contacts = contacts::list(db, who, id).await?;
    let notes = notes::list(db, who, id).await?;
    let mut timeline = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = timeline::list(
            db,
            who,
            id,
            &timeline::TimelineQuery {
                limit: Some(200),
                before: before.clone(),
            },
        )
        .await?;
        let done = page.len() < 200;
        before = page.last().map(|a| a.id.clone());
        timeline.extend(page);
        if done {
            break;
        }
    }
    let users: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT id, email, name, role FROM users WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(who.tenant_id.as_str())
    .bind(id.as_str())
    .fetch_all(db.pool())
    .await?;
    let users = users
        .into_iter()
        .map(|(id, email, name, role)| serde_json::json!({ "id": id, "email": email, "name": name, "role": role }))
        .collect();
    let audit = audit::list(db, &who.tenant_id, Some(id.as_str()), 10_000).await?;
    audit::record(
        db,
        &audit::AuditEvent::new("customer.gdpr_exported")
            .tenant(&who.tenant_id)
            .actor(who.user_id.as_str())
            .target("customer", id.as_str()),
        now,
    )
    .await?;
    Ok(GdprExport {
        exported_at: rfc3339(now),
        customer,
        contacts,
        notes,
        timeline,
        users,
        audit,
    })
}

/// Erase a customer: personal data is overwritten, contacts deleted, notes
/// and timeline texts blanked, portal users disabled and anonymised. The
/// record stays (as "Erased customer") with its id and dates.
pub async fn erase(db: &Db, who: &Principal, id: &CustomerId, now: i64) -> Result<Customer> {
    who.require("customers.gdpr")?;
    let mut tx = db.begin().await?;
    let row = fetch_visible(&mut *tx, who, id, db.for_update()).await?;
    if row.to_api().erased_at.is_some() {
        return Err(Error::new(
            Code::Conflict,
            "this customer was already erased",
        ));
    }
    let erased = CustomerData {
        contact_name: Some("Erased customer".to_string()),
        status: "archived".to_string(),
        reseller_id: row.data().reseller_id,
        ..Default::default()
    };
    write_tx(&mut tx, &who.tenant_id, id, &erased, now).await?;
    let t = who.tenant_id.as_str();
    sqlx::query("UPDATE customers SET erased_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(t)
        .bind(id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM contacts WHERE tenant_id = $1 AND customer_id = $2")
        .bind(t)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE notes SET body = '[erased]', updated_at = $3 WHERE tenant_id = $1 AND customer_id = $2")
        .bind(t)
        .bind(id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE activities SET summary = '[erased]', data = '{}' WHERE tenant_id = $1 AND customer_id = $2")
        .bind(t)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    let portal_users: Vec<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = $1 AND customer_id = $2")
            .bind(t)
            .bind(id.as_str())
            .fetch_all(&mut *tx)
            .await?;
    for uid in portal_users {
        let email = format!("erased-{uid}@erased.invalid");
        sqlx::query(
            "UPDATE users SET email = $3, email_norm = $3, name = 'Erased user', status = 'disabled', updated_at = $4 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(t)
        .bind(&uid)
        .bind(&email)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        crate::auth::sessions::revoke_all_for_user(&mut tx, &who.tenant_id, &uid, now).await?;
    }
    // Modules holding personal data of the customer (tickets, invoices)
    // anonymise theirs on this, as the core did above.
    crate::modules::events::publish_tx(
        &mut tx,
        &who.tenant_id,
        "customer.erased",
        &serde_json::json!({ "id": id.as_str() }),
        now,
    )
    .await?;
    audit::record_tx(
        &mut tx,
        &audit::AuditEvent::new("customer.erased")
            .tenant(&who.tenant_id)
            .actor(who.user_id.as_str())
            .target("customer", id.as_str()),
        now,
    )
    .await?;
    let row = fetch_visible(&mut *tx, who, id, "").await?;
    tx.commit().await?;
    Ok(row.to_api())
}
