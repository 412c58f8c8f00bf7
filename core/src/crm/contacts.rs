//! People at a customer.

use serde::{Deserialize, Serialize};

use super::customers::fetch_visible;
use super::{check_len, clean, timeline};
use crate::auth::{is_plausible_email, Principal};
use crate::clock::rfc3339;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::ids::{new_id, CustomerId};

/// A contact as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Contact {
    /// Id.
    pub id: String,
    /// The customer it belongs to.
    pub customer_id: String,
    /// Name.
    pub name: String,
    /// E-mail.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Position (e.g. "CFO").
    pub position: Option<String>,
    /// The main contact of the customer.
    pub is_primary: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// Create or replace a contact.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// Name.
    pub name: String,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// Position.
    #[serde(default)]
    pub position: Option<String>,
    /// The main contact of the customer.
    #[serde(default)]
    pub is_primary: bool,
}

impl ContactInput {
    fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        check_len("name", Some(&self.name), 200)?;
        check_len("email", self.email.as_deref(), 254)?;
        check_len("phone", self.phone.as_deref(), 50)?;
        check_len("position", self.position.as_deref(), 100)?;
        if let Some(e) = clean(self.email.as_deref()) {
            if !is_plausible_email(&e) {
                return Err(Error::invalid("email", "is not a valid e-mail address"));
            }
        }
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    id: String,
    customer_id: String,
    name: String,
    email: Option<String>,
    phone: Option<String>,
    position: Option<String>,
    is_primary: i64,
    created_at: i64,
}

impl From<Row> for Contact {
    fn from(r: Row) -> Self {
        Contact {
            id: r.id,
            customer_id: r.customer_id,
            name: r.name,
            email: r.email,
            phone: r.phone,
            position: r.position,
            is_primary: r.is_primary != 0,
            created_at: rfc3339(r.created_at),
        }
    }
}

const COLUMNS: &str = "id, customer_id, name, email, phone, position, is_primary, created_at";

/// Contacts of a customer the principal may see.
pub async fn list(db: &Db, who: &Principal, customer: &CustomerId) -> Result<Vec<Contact>> {
    who.require("customers.read")?;
    fetch_visible(db.pool(), who, customer, "").await?;
    let rows = sqlx::query_as::<_, Row>(&format!(
        "SELECT {COLUMNS} FROM contacts WHERE tenant_id = $1 AND customer_id = $2 ORDER BY is_primary DESC, name, id"
    ))
    .bind(who.tenant_id.as_str())
    .bind(customer.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(Contact::from).collect())
}

/// Add a contact.
pub async fn create(
    db: &Db,
    who: &Principal,
    customer: &CustomerId,
    input: &ContactInput,
    now: i64,
) -> Result<Contact> {
    who.require("customers.write")?;
    input.validate()?;
    let mut tx = db.begin().await?;
    fetch_visible(&mut *tx, who, customer, db.for_update()).await?;
    let id = new_id();
    sqlx::query(
        "INSERT INTO contacts (id, tenant_id, customer_id, name, email, phone, position, is_primary, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&id)
    .bind(who.tenant_id.as_str())
    .bind(customer.as_str())
    .bind(input.name.trim())
    .bind(clean(input.email.as_deref()))
    .bind(clean(input.phone.as_deref()))
    .bind(clean(input.position.as_deref()))
    .bind(i64::from(input.is_primary))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    timeline::add_tx(
        &mut tx,
        &who.tenant_id,
        customer,
        timeline::Entry {
            source: "core",
            kind: "contact.added",
            summary: format!("Contact added: {}", input.name.trim()),
            data: serde_json::json!({ "contact_id": id }),
            actor_id: Some(who.user_id.to_string()),
        },
        now,
    )
    .await?;
    let row = sqlx::query_as::<_, Row>(&format!("SELECT {COLUMNS} FROM contacts WHERE id = $1"))
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row.into())
}

/// Replace a contact's fields.
pub async fn update(
    db: &Db,
    who: &Principal,
    customer: &CustomerId,
    contact_id: &str,
    input: &ContactInput,
    now: i64,
) -> Result<Contact> {
    who.require("customers.write")?;
    input.validate()?;
    let mut tx = db.begin().await?;
    fetch_visible(&mut *tx, who, customer, db.for_update()).await?;
    let done = sqlx::query(
        "UPDATE contacts SET name = $4, email = $5, phone = $6, position = $7, is_primary = $8, updated_at = $9 \
         WHERE tenant_id = $1 AND customer_id = $2 AND id = $3",
    )
    .bind(who.tenant_id.as_str())
    .bind(customer.as_str())
    .bind(contact_id)
    .bind(input.name.trim())
    .bind(clean(input.email.as_deref()))
    .bind(clean(input.phone.as_deref()))
    .bind(clean(input.position.as_deref()))
    .bind(i64::from(input.is_primary))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found("contact"));
    }
    let row = sqlx::query_as::<_, Row>(&format!("SELECT {COLUMNS} FROM contacts WHERE id = $1"))
        .bind(contact_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row.into())
}

/// Remove a contact.
pub async fn delete(
    db: &Db,
    who: &Principal,
    customer: &CustomerId,
    contact_id: &str,
) -> Result<()> {
    who.require("customers.write")?;
    fetch_visible(db.pool(), who, customer, "").await?;
    let done =
        sqlx::query("DELETE FROM contacts WHERE tenant_id = $1 AND customer_id = $2 AND id = $3")
            .bind(who.tenant_id.as_str())
            .bind(customer.as_str())
            .bind(contact_id)
            .execute(db.pool())
            .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found("contact"));
    }
    Ok(())
}
