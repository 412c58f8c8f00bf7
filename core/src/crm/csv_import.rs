//! CSV import of customers.
//!
//! The file is read as a stream, validated row by row, and written in
//! batches, one transaction each. A row is either imported whole (customer
//! and timeline entry) or rejected with its line number and reason — never
//! half-written. Rows are de-duplicated on e-mail: against the file itself
//! and against the customers the tenant already has.
//!
//! A license that caps customers: an import that would cross the cap
//! imports rows up to it, in file order, and rejects every row after with
//! `license_limit_reached`'s sentence (which names the limit) — like any
//! other rejected row, so the report says exactly which lines to import
//! again under a larger license. Existing customers are never touched.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::io::AsyncRead;
use tokio::task::JoinSet;

use super::customers::{CustomerData, CustomerInput};
use crate::auth::principal::CustomerScope;
use crate::auth::{normalize_email, Principal};
use crate::db::args::Args;
use crate::db::{Backend, Db, Tx};
use crate::error::{Code, Error, Result};
use crate::ids::{new_id, CustomerId};
use crate::license::Quota;

/// Columns the import reads. `tags` is `;`-separated, `custom_fields` a JSON object.
pub const COLUMNS: &[&str] = &[
    "company",
    "contact_name",
    "email",
    "phone",
    "street",
    "postal_code",
    "city",
    "region",
    "country",
    "tags",
    "status",
    "custom_fields",
];
/// Columns of an export that an import accepts and ignores (so an export
/// can be imported again as it is).
pub const IGNORED_COLUMNS: &[&str] = &["id", "created_at", "updated_at", "display_name"];
/// Rows written per transaction. Large batches keep the number of commits
/// (and, on SQLite, of full-text index segments flushed per commit) low.
pub const BATCH: usize = 5_000;
/// Rows per INSERT statement: 1,000 rows of 20 values stay below the bind
/// limits of SQLite (32,766) and PostgreSQL (65,535).
const ROWS_PER_STATEMENT: usize = 1_000;
/// Rejections listed in the report (all are counted).
pub const MAX_REPORTED: usize = 1000;

/// What happened to an import.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Data rows read.
    pub rows: u64,
    /// Customers created.
    pub imported: u64,
    /// Rows refused.
    pub rejected: u64,
    /// The refused rows (the first 1000), with reasons.
    pub rejections: Vec<Rejection>,
}

/// A refused row.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rejection {
    /// Line in the file (the header is line 1).
    pub line: u64,
    /// The field at fault, if one is.
    pub field: Option<String>,
    /// Why.
    pub reason: String,
}

impl ImportReport {
    /// Add what one batch's writer found.
    fn merge(&mut self, other: ImportReport) {
        self.imported += other.imported;
        self.rejected += other.rejected;
        self.rejections.extend(other.rejections);
    }

    fn reject(&mut self, line: u64, field: Option<&str>, reason: impl Into<String>) {
        self.rejected += 1;
        if self.rejections.len() < MAX_REPORTED {
            self.rejections.push(Rejection {
                line,
                field: field.map(str::to_string),
                reason: reason.into(),
            });
        }
    }
}

struct Pending {
    line: u64,
    data: CustomerData,
    email_norm: Option<String>,
}

/// Import customers from CSV text read from `input`, within the license's
/// `quota` of customers.
pub async fn import<R>(
    db: &Db,
    who: &Principal,
    input: R,
    quota: &Quota,
    now: i64,
) -> Result<ImportReport>
where
    R: AsyncRead + Unpin + Send,
{
    who.require("customers.import")?;
    let reseller = match who.customer_scope() {
        CustomerScope::All => None,
        CustomerScope::Reseller(me) => Some(me.to_string()),
        CustomerScope::Own(_) => return Err(Error::forbidden("customers.import")),
    };
    let mut reader = csv_async::AsyncReaderBuilder::new()
        .flexible(false)
        .trim(csv_async::Trim::All)
        .create_reader(input);
    let headers = reader
        .headers()
        .await
        .map_err(|e| Error::new(Code::BadRequest, format!("cannot read the CSV header: {e}")))?
        .clone();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim_start_matches('\u{feff}');
        if let Some(col) = COLUMNS.iter().find(|c| **c == h) {
            if index.insert(col, i).is_some() {
                return Err(Error::invalid(
                    "header",
                    format!("column `{h}` appears twice"),
                ));
            }
        } else if !IGNORED_COLUMNS.contains(&h) {
            return Err(Error::invalid(
                "header",
                format!(
                    "unknown column `{h}`; expected some of: {}",
                    COLUMNS.join(", ")
                ),
            ));
        }
    }
    if !index.contains_key("company") && !index.contains_key("contact_name") {
        return Err(Error::invalid(
            "header",
            "needs a `company` or a `contact_name` column",
        ));
    }

    let mut report = ImportReport::default();
    // Batches are written by tasks of their own while the next ones are
    // read and checked; PostgreSQL takes two at a time (its server work
    // runs beside this process), SQLite one (it has a single writer). Under
    // a license cap one at a time, so the rows within it are the first ones
    // of the file.
    let writers = match db.backend() {
        Backend::Postgres if quota.max().is_none() => 2,
        _ => 1,
    };
    let mut writing: JoinSet<Result<ImportReport>> = JoinSet::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut batch: Vec<Pending> = Vec::with_capacity(BATCH);
    let mut records = reader.records();
    while let Some(record) = records.next().await {
        report.rows += 1;
        let line = report.rows + 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                report.reject(line, None, format!("unreadable row: {e}"));
                continue;
            }
        };
        let field = |name: &str| {
            index
                .get(name)
                .and_then(|i| record.get(*i))
                .map(str::to_string)
        };
        let data = match row_data(&field, reseller.as_deref()) {
            Ok(d) => d,
            Err(e) => {
                let (f, reason) = split_error(&e);
                report.reject(line, f.as_deref(), reason);
                continue;
            }
        };
        let email_norm = data.email.as_deref().map(normalize_email);
        if let Some(e) = &email_norm {
            if let Some(first) = seen.get(e) {
                report.reject(
                    line,
                    Some("email"),
                    format!("duplicate e-mail; line {first} has it already"),
                );
                continue;
            }
            seen.insert(e.clone(), line);
        }
        batch.push(Pending {
            line,
            data,
            email_norm,
        });
        if batch.len() >= BATCH {
            if writing.len() >= writers {
                report.merge(next_written(&mut writing).await?);
            }
            let batch = std::mem::take(&mut batch);
            writing.spawn(write_batch(db.clone(), who.clone(), batch, *quota, now));
        }
    }
    if !batch.is_empty() {
        writing.spawn(write_batch(db.clone(), who.clone(), batch, *quota, now));
    }
    while !writing.is_empty() {
        report.merge(next_written(&mut writing).await?);
    }
    // Duplicates against the database are found per batch, after the
    // per-row checks of later rows: report in file order.
    report.rejections.sort_by_key(|r| r.line);
    report.rejections.truncate(MAX_REPORTED);
    if db.backend() == Backend::Postgres {
        // Move what the import put into the search index's pending list
        // into the index proper now, so searches do not scan it.
        sqlx::query("SELECT gin_clean_pending_list('customers_search_idx'::regclass)")
            .execute(db.pool())
            .await?;
    }
    crate::audit::record(
        db,
        &crate::audit::AuditEvent::new("customers.imported")
            .tenant(&who.tenant_id)
            .actor(who.user_id.as_str())
            .data(serde_json::json!({ "rows": report.rows, "imported": report.imported, "rejected": report.rejected })),
        now,
    )
    .await?;
    Ok(report)
}

fn row_data(
    field: &dyn Fn(&str) -> Option<String>,
    reseller: Option<&str>,
) -> Result<CustomerData> {
    let text = |name: &str| field(name).filter(|s| !s.is_empty()).map(Some);
    let custom_fields = match field("custom_fields").filter(|s| !s.is_empty()) {
        Some(json) => Some(
            serde_json::from_str::<Map<String, Value>>(&json)
                .map_err(|_| Error::invalid("custom_fields", "must be a JSON object"))?,
        ),
        None => None,
    };
    let input = CustomerInput {
        company: text("company"),
        contact_name: text("contact_name"),
        email: text("email"),
        phone: text("phone"),
        street: text("street"),
        postal_code: text("postal_code"),
        city: text("city"),
        region: text("region"),
        country: text("country"),
        tags: field("tags").map(|t| t.split(';').map(str::to_string).collect()),
        custom_fields,
        status: field("status").filter(|s| !s.is_empty()),
        reseller_id: reseller.map(|r| Some(r.to_string())),
    };
    let data = CustomerData::default().merged(&input);
    data.validate()?;
    Ok(data)
}

fn split_error(e: &Error) -> (Option<String>, String) {
    if let Error::Api {
        details: Some(d),
        message,
        ..
    } = e
    {
        if let Some(field) = d.get("field").and_then(Value::as_str) {
            return (Some(field.to_string()), message.clone());
        }
    }
    (None, e.to_string())
}

/// Write one batch in one transaction: drop rows whose e-mail the tenant
/// already has and rows beyond the license's cap, insert the rest with
/// their timeline entries and events.
async fn write_batch(
    db: Db,
    who: Principal,
    batch: Vec<Pending>,
    quota: Quota,
    now: i64,
) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let who = &who;
    let tenant = who.tenant_id.as_str();
    let backend = db.backend();
    let mut tx = db.begin().await?;
    // First, so the cap's lock is taken before this transaction reads.
    let mut room = quota.remaining_tx(&mut tx).await?;
    let emails: Vec<&String> = batch.iter().filter_map(|p| p.email_norm.as_ref()).collect();
    let mut existing: HashSet<String> = HashSet::new();
    if !emails.is_empty() {
        let mut args = Args::in_order(backend);
        let t = args.text(tenant);
        let list: Vec<String> = emails.iter().map(|e| args.text(e.as_str())).collect();
        let sql = format!(
            "SELECT email_norm FROM customers WHERE tenant_id = {t} AND email_norm IN ({})",
            list.join(", ")
        );
        existing = args
            .bind_scalar(sqlx::query_scalar::<_, String>(&sql))
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    }
    let mut rows: Vec<(CustomerId, Pending)> = Vec::with_capacity(batch.len());
    for p in batch {
        if p.email_norm.as_ref().is_some_and(|e| existing.contains(e)) {
            report.reject(
                p.line,
                Some("email"),
                "a customer with this e-mail already exists",
            );
        } else if room == Some(0) {
            let reason = quota.refusal().map_or_else(String::new, |e| e.to_string());
            report.reject(p.line, None, reason);
        } else {
            room = room.map(|r| r - 1);
            rows.push((CustomerId::generate(), p));
        }
    }
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(report);
    }
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        insert_chunk(&mut tx, backend, who, chunk, now).await?;
    }
    tx.commit().await?;
    report.imported += rows.len() as u64;
    Ok(report)
}

/// The report of the next batch written (its error, or a writer's panic).
async fn next_written(writing: &mut JoinSet<Result<ImportReport>>) -> Result<ImportReport> {
    match writing.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(Error::internal(format!("an import writer failed: {e}"))),
        None => Ok(ImportReport::default()),
    }
}

/// Insert `rows` (customers, their timeline entries and their
/// `customer.created` events) with one statement per table.
async fn insert_chunk(
    tx: &mut Tx,
    backend: Backend,
    who: &Principal,
    rows: &[(CustomerId, Pending)],
    now: i64,
) -> Result<()> {
    let tenant = who.tenant_id.as_str();
    let mut args = Args::in_order(backend);
    let mut values = Vec::with_capacity(rows.len());
    for (id, p) in rows {
        let d = &p.data;
        let cols = [
            args.text(id.as_str()),
            args.text(tenant),
            opt(&mut args, &d.company),
            opt(&mut args, &d.contact_name),
            opt(&mut args, &d.email),
            opt(&mut args, &p.email_norm),
            opt(&mut args, &d.phone),
            opt(&mut args, &d.street),
            opt(&mut args, &d.postal_code),
            opt(&mut args, &d.city),
            opt(&mut args, &d.region),
            opt(&mut args, &d.country),
            args.text(serde_json::to_string(&d.tags).unwrap_or_else(|_| "[]".into())),
            args.text(Value::Object(d.custom_fields.clone()).to_string()),
            args.text(d.status.as_str()),
            opt(&mut args, &d.reseller_id),
            args.text(d.sort_key()),
            args.text(d.search_text()),
            args.int(now),
            args.int(now),
        ];
        values.push(format!("({})", cols.join(", ")));
    }
    let sql = format!(
        "INSERT INTO customers (id, tenant_id, company, contact_name, email, email_norm, phone, street, \
         postal_code, city, region, country, tags, custom_fields, status, reseller_id, sort_key, search_text, \
         created_at, updated_at) VALUES {}",
        values.join(", ")
    );
    args.bind(sqlx::query(&sql)).execute(&mut **tx).await?;

    let mut args = Args::in_order(backend);
    let mut values = Vec::with_capacity(rows.len());
    for (id, _) in rows {
        let cols = [
            args.text(new_id()),
            args.text(tenant),
            args.text(id.as_str()),
            args.text("core"),
            args.text("customer.created"),
            args.text("Customer created (import)"),
            args.text("{\"via\":\"import\"}"),
            args.text(who.user_id.as_str()),
            args.int(now),
        ];
        values.push(format!("({})", cols.join(", ")));
    }
    let sql = format!(
        "INSERT INTO activities (id, tenant_id, customer_id, source, kind, summary, data, actor_id, created_at) VALUES {}",
        values.join(", ")
    );
    args.bind(sqlx::query(&sql)).execute(&mut **tx).await?;

    // One `customer.created` event per row, in the same transaction.
    let mut args = Args::in_order(backend);
    let mut values = Vec::with_capacity(rows.len());
    for (id, p) in rows {
        let payload = super::customers::event_payload(id, &p.data).to_string();
        let cols = [
            args.text(new_id()),
            args.text(tenant),
            args.text("customer.created"),
            args.text(payload),
            args.int(now),
        ];
        values.push(format!("({})", cols.join(", ")));
    }
    let sql = format!(
        "INSERT INTO event_outbox (id, tenant_id, name, payload, occurred_at) VALUES {}",
        values.join(", ")
    );
    args.bind(sqlx::query(&sql)).execute(&mut **tx).await?;
    Ok(())
}

fn opt(args: &mut Args, v: &Option<String>) -> String {
    match v {
        Some(s) => args.text(s.as_str()),
        None => args.null_text(),
    }
}
