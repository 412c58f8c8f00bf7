//! Notes on a customer, written by staff.

use serde::{Deserialize, Serialize};

use super::customers::fetch_visible;
use super::{check_len, timeline};
use crate::auth::Principal;
use crate::clock::rfc3339;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::ids::{new_id, CustomerId};

/// Longest note body.
pub const MAX_NOTE: usize = 20_000;

/// A note as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Note {
    /// Id.
    pub id: String,
    /// The customer it is about.
    pub customer_id: String,
    /// Who wrote it.
    pub author_id: Option<String>,
    /// The text.
    pub body: String,
    /// RFC 3339.
    pub created_at: String,
}

/// A new note.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    /// The text (at most 20,000 characters).
    pub body: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    customer_id: String,
    author_id: Option<String>,
    body: String,
    created_at: i64,
}

impl From<Row> for Note {
    fn from(r: Row) -> Self {
        Note {
            id: r.id,
            customer_id: r.customer_id,
            author_id: r.author_id,
            body: r.body,
            created_at: rfc3339(r.created_at),
        }
    }
}

/// Notes of a customer, newest first.
pub async fn list(db: &Db, who: &Principal, customer: &CustomerId) -> Result<Vec<Note>> {
    who.require("customers.read")?;
    fetch_visible(db.pool(), who, customer, "").await?;
    let rows = sqlx::query_as::<_, Row>(
        "SELECT id, customer_id, author_id, body, created_at FROM notes \
         WHERE tenant_id = $1 AND customer_id = $2 ORDER BY id DESC",
    )
    .bind(who.tenant_id.as_str())
    .bind(customer.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(Note::from).collect())
}

/// Add a note as `who`, its author.
pub async fn create(
    db: &Db,
    who: &Principal,
    customer: &CustomerId,
    input: &NoteInput,
    now: i64,
) -> Result<Note> {
    create_from(db, who, customer, input, "core", now).await
}

/// Add a note on behalf of `source` (`core` or a module id, recorded on the
/// timeline entry). The author is `who`'s user; a system caller (a module
/// in an event or job) writes a note without an author.
pub async fn create_from(
    db: &Db,
    who: &Principal,
    customer: &CustomerId,
    input: &NoteInput,
    source: &str,
    now: i64,
) -> Result<Note> {
    who.require("customers.write")?;
    let author = who.user().map(|u| u.to_string());
    let body = input.body.trim();
    if body.is_empty() {
        return Err(Error::invalid("body", "must not be empty"));
    }
    check_len("body", Some(body), MAX_NOTE)?;
    let mut tx = db.begin().await?;
    fetch_visible(&mut *tx, who, customer, db.for_update()).await?;
    let id = new_id();
    sqlx::query(
        "INSERT INTO notes (id, tenant_id, customer_id, author_id, body, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&id)
    .bind(who.tenant_id.as_str())
    .bind(customer.as_str())
    .bind(&author)
    .bind(body)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let preview: String = body.chars().take(80).collect();
    timeline::add_tx(
        &mut tx,
        &who.tenant_id,
        customer,
        timeline::Entry {
            source,
            kind: "note.added",
            summary: format!("Note: {preview}"),
            data: serde_json::json!({ "note_id": id }),
            actor_id: author.clone(),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Note {
        id,
        customer_id: customer.to_string(),
        author_id: author,
        body: body.to_string(),
        created_at: rfc3339(now),
    })
}

/// Remove a note.
pub async fn delete(db: &Db, who: &Principal, customer: &CustomerId, note_id: &str) -> Result<()> {
    who.require("customers.write")?;
    fetch_visible(db.pool(), who, customer, "").await?;
    let done =
        sqlx::query("DELETE FROM notes WHERE tenant_id = $1 AND customer_id = $2 AND id = $3")
            .bind(who.tenant_id.as_str())
            .bind(customer.as_str())
            .bind(note_id)
            .execute(db.pool())
            .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found("note"));
    }
    Ok(())
}
