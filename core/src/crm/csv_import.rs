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
use sqlx::{Any, AnyConnection, Connection};
use tokio::io::AsyncRead;
use tokio::task::JoinSet;

use super::customers::{CustomerData, CustomerInput};
use crate::auth::principal::CustomerScope;
use crate::auth::{normalize_email, Principal};
use crate::db::{Backend, Db};
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
/// Rows written per transaction (PostgreSQL). Large batches keep the
/// number of commits low, and with them how often the pages of the indexes
/// in random order (e-mail, name) are written out again.
const POSTGRES_BATCH: usize = 10_000;
/// Rows written per transaction on SQLite: there a batch also becomes one
/// full-text index segment, and every commit copies the pages it changed
/// into the WAL and, at the next checkpoint, into the database file. At a
/// million customers a batch changes nearly every page of the e-mail and
/// name indexes (their keys arrive in random order), whatever its size, so
/// the larger the batch, the fewer times each of those pages is written
/// per row: 40,000 imports about 13 % faster there than 20,000. It
/// holds the write lock for about two seconds, which writers beside the
/// import wait out (their busy timeout is 10 s).
const SQLITE_BATCH: usize = 40_000;
/// The page cache, in KiB, of the connection a SQLite import writes with
/// (see [`Writer::own`]). A batch changes pages all over the e-mail and
/// name indexes (their keys arrive in random order); once those indexes
/// outgrow the pool's cache ([`crate::db::SQLITE_CACHE_KIB`]), changed
/// pages are written out to the WAL before the commit, then read and
/// changed again, several times per batch. With room for them all, each is
/// written once, at the commit. The cache only takes what the import
/// touches, and is freed when the import ends.
const IMPORT_CACHE_KIB: i64 = 262_144;
/// WAL pages after which the SQLite import's connection checkpoints (the
/// pool's connections: SQLite's default, 1,000). Checkpointing after every
/// batch copies the index pages each batch changed into the database file
/// each time; after every few batches, a page changed by all of them is
/// copied once. The WAL grows to about this size (4 KiB pages: 400 MiB)
/// during a large import.
const IMPORT_CHECKPOINT_PAGES: i64 = 100_000;
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

/// A checked row waiting for its batch, already in the form the inserts
/// take (see [`insert_rows`]): that work is done here, by the reader, while
/// the previous batch is being written.
struct Pending {
    line: u64,
    /// The new customer's id.
    id: CustomerId,
    email_norm: Option<String>,
    /// The `customers` row, a JSON array.
    customer: String,
    /// The timeline entry: `[id, customer_id]`.
    activity: String,
    /// The `customer.created` event: `[id, payload]`.
    event: String,
}

impl Pending {
    fn new(line: u64, data: &CustomerData, email_norm: Option<String>) -> Pending {
        let id = CustomerId::generate();
        let tags = serde_json::to_string(&data.tags).unwrap_or_else(|_| "[]".into());
        let custom_fields =
            serde_json::to_string(&data.custom_fields).unwrap_or_else(|_| "{}".into());
        let customer = json_row(&[
            Some(id.as_str()),
            data.company.as_deref(),
            data.contact_name.as_deref(),
            data.email.as_deref(),
            email_norm.as_deref(),
            data.phone.as_deref(),
            data.street.as_deref(),
            data.postal_code.as_deref(),
            data.city.as_deref(),
            data.region.as_deref(),
            data.country.as_deref(),
            Some(&tags),
            Some(&custom_fields),
            Some(data.status.as_str()),
            data.reseller_id.as_deref(),
            Some(&data.sort_key()),
            Some(&data.search_text()),
        ]);
        let activity = json_row(&[Some(&new_id()), Some(id.as_str())]);
        let payload = super::customers::event_payload(&id, data).to_string();
        let event = json_row(&[Some(&new_id()), Some(&payload)]);
        Pending {
            line,
            id,
            email_norm,
            customer,
            activity,
            event,
        }
    }
}

/// A row as a JSON array of strings and nulls.
fn json_row(values: &[Option<&str>]) -> String {
    // Serialising strings cannot fail.
    serde_json::to_string(values).unwrap_or_default()
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
    // runs beside this process), SQLite one, on a connection of its own
    // (it has a single writer). Under a license cap one at a time, so the
    // rows within it are the first ones of the file.
    let idle = match db.backend() {
        Backend::Postgres => {
            let writers = if quota.max().is_none() { 2 } else { 1 };
            (0..writers).map(|_| Writer::Pool(db.clone())).collect()
        }
        Backend::Sqlite => vec![Writer::own(db).await?],
    };
    let mut writers = Writers {
        idle,
        writing: JoinSet::new(),
        who: who.clone(),
        quota: *quota,
        now,
    };
    let mut seen: HashMap<String, u64> = HashMap::new();
    let batch_size = match db.backend() {
        Backend::Sqlite => SQLITE_BATCH,
        Backend::Postgres => POSTGRES_BATCH,
    };
    let mut batch: Vec<Pending> = Vec::with_capacity(batch_size);
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
        batch.push(Pending::new(line, &data, email_norm));
        if batch.len() >= batch_size {
            writers
                .start(std::mem::take(&mut batch), &mut report)
                .await?;
        }
    }
    if !batch.is_empty() {
        writers.start(batch, &mut report).await?;
    }
    writers.finish(&mut report).await?;
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

/// Where batches are written.
enum Writer {
    /// PostgreSQL: a pooled connection per batch.
    Pool(Db),
    /// SQLite: the import's own connection, for all its batches (see
    /// [`Writer::own`]).
    Own(AnyConnection),
}

impl Writer {
    /// A SQLite connection of the import's own, with a page cache of
    /// [`IMPORT_CACHE_KIB`] for as long as the import writes: the next
    /// batch finds the index pages the last one changed still in memory
    /// instead of reading them again. Taken out of the pool, so the pool's
    /// connections keep their own cache size, and closed at the end (or
    /// dropped, and so closed, when the import stops early).
    async fn own(db: &Db) -> Result<Writer> {
        let mut conn = db.pool().acquire().await?.detach();
        sqlx::query(&format!("PRAGMA cache_size = -{IMPORT_CACHE_KIB}"))
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!(
            "PRAGMA wal_autocheckpoint = {IMPORT_CHECKPOINT_PAGES}"
        ))
        .execute(&mut conn)
        .await?;
        Ok(Writer::Own(conn))
    }

    async fn begin(&mut self) -> Result<sqlx::Transaction<'_, Any>> {
        Ok(match self {
            Writer::Pool(db) => db.begin().await?,
            Writer::Own(conn) => conn.begin_with("BEGIN IMMEDIATE").await?,
        })
    }

    async fn close(self) -> Result<()> {
        if let Writer::Own(conn) = self {
            conn.close().await?;
        }
        Ok(())
    }

    fn backend(&self) -> Backend {
        match self {
            Writer::Pool(db) => db.backend(),
            Writer::Own(_) => Backend::Sqlite,
        }
    }
}

/// The import's writer tasks: each writes one batch with a [`Writer`] and
/// gives it back for the next.
struct Writers {
    idle: Vec<Writer>,
    writing: JoinSet<Result<(ImportReport, Writer)>>,
    who: Principal,
    quota: Quota,
    now: i64,
}

impl Writers {
    /// Hand `batch` to an idle writer, or else to the next one to finish
    /// its batch (whose report goes into `report`).
    async fn start(&mut self, batch: Vec<Pending>, report: &mut ImportReport) -> Result<()> {
        let mut writer = match self.idle.pop() {
            Some(writer) => writer,
            None => self.next_written(report).await?,
        };
        let (who, quota, now) = (self.who.clone(), self.quota, self.now);
        self.writing.spawn(async move {
            let written = write_batch(&mut writer, &who, &batch, quota, now).await?;
            Ok((written, writer))
        });
        Ok(())
    }

    /// Wait for the next writer task to finish: its report goes into
    /// `report`, its writer is free again (or the batch's error, or a
    /// writer's panic).
    async fn next_written(&mut self, report: &mut ImportReport) -> Result<Writer> {
        match self.writing.join_next().await {
            Some(Ok(result)) => {
                let (written, writer) = result?;
                report.merge(written);
                Ok(writer)
            }
            Some(Err(e)) => Err(Error::internal(format!("an import writer failed: {e}"))),
            None => Err(Error::internal("no import writer is at work")),
        }
    }

    /// Wait for every batch under way, then close the writers.
    async fn finish(mut self, report: &mut ImportReport) -> Result<()> {
        while !self.writing.is_empty() {
            let writer = self.next_written(report).await?;
            self.idle.push(writer);
        }
        for writer in self.idle {
            writer.close().await?;
        }
        Ok(())
    }
}

/// Write one batch in one transaction: drop rows whose e-mail the tenant
/// already has and rows beyond the license's cap, insert the rest with
/// their timeline entries and events.
async fn write_batch(
    writer: &mut Writer,
    who: &Principal,
    batch: &[Pending],
    quota: Quota,
    now: i64,
) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let tenant = who.tenant_id.as_str();
    let backend = writer.backend();
    let mut tx = writer.begin().await?;
    // First, so the cap's lock is taken before this transaction reads.
    let mut room = quota.remaining_tx(&mut tx).await?;
    if backend == Backend::Postgres {
        // New rows' search trigrams go to the GIN index's pending list; an
        // insert that finds the list full moves it into the index, in
        // pieces of `work_mem` (4 MiB by default): a piece the size of the
        // list (see migrations/postgres/…000020) moves it in one pass.
        // `LOCAL`: for this transaction only.
        sqlx::query("SET LOCAL work_mem = '64MB'")
            .execute(&mut *tx)
            .await?;
    }
    // Which rows' e-mails the tenant has already. Under a cap this is asked
    // first, so that only new customers take its places, in file order.
    // Without one, the insert itself finds them: the unique key on
    // (tenant, e-mail) skips them (see [`insert_rows`]), and the rows it
    // skipped are looked up afterwards — only when there are any, which
    // spares the usual batch a query that reads the same index pages the
    // insert then reads again.
    let existing: HashSet<String> = if room.is_some() {
        let emails = batch.iter().filter_map(|p| p.email_norm.as_deref());
        let sql = format!(
            "SELECT email_norm FROM customers WHERE tenant_id = $1 AND email_norm IN ({})",
            listed(backend, 2)
        );
        sqlx::query_scalar::<_, String>(&sql)
            .bind(tenant)
            .bind(json_strings(emails))
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect()
    } else {
        HashSet::new()
    };
    let mut rows: Vec<&Pending> = Vec::with_capacity(batch.len());
    for p in batch {
        if p.email_norm.as_ref().is_some_and(|e| existing.contains(e)) {
            report.reject(p.line, Some("email"), EMAIL_TAKEN);
        } else if room == Some(0) {
            let reason = quota.refusal().map_or_else(String::new, |e| e.to_string());
            report.reject(p.line, None, reason);
        } else {
            room = room.map(|r| r - 1);
            rows.push(p);
        }
    }
    if !rows.is_empty() {
        for p in insert_rows(&mut tx, backend, who, &mut rows, now).await? {
            report.reject(p.line, Some("email"), EMAIL_TAKEN);
        }
        report.imported += rows.len() as u64;
    }
    tx.commit().await?;
    Ok(report)
}

/// Why a row whose e-mail the tenant has already is refused.
const EMAIL_TAKEN: &str = "a customer with this e-mail already exists";

/// A list of strings, passed as one JSON array in parameter `$n`, as a
/// subquery of its elements (text, in a column `value`).
fn listed(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => format!("SELECT value FROM json_each(${n})"),
        Backend::Postgres => {
            format!("SELECT value FROM jsonb_array_elements_text(${n}::jsonb) AS j(value)")
        }
    }
}

/// Strings as one JSON array: many values as a single bound parameter (see
/// [`insert_rows`] for why).
fn json_strings<'a>(values: impl Iterator<Item = &'a str>) -> String {
    serde_json::to_string(&values.collect::<Vec<_>>()).unwrap_or_default()
}

/// Insert `rows` (customers, their timeline entries and their
/// `customer.created` events) with one statement per table. A row whose
/// e-mail the tenant has already (a customer from before, or one another
/// writer has just added) is left out whole: it is taken out of `rows` and
/// returned.
///
/// The rows travel as one parameter, a JSON array of arrays, which the
/// statement unpacks (`json_each` on SQLite, `jsonb_array_elements` on
/// PostgreSQL) instead of as thousands of bound values: binding and
/// preparing those cost more than the rows themselves, and a multi-row
/// `VALUES` has to stay below the engines' bind limits, so a batch took
/// several statements. On SQLite that matters beyond the binding: every
/// statement after the first that writes the full-text index makes FTS5
/// flush its pending terms into a new segment, so fewer statements mean
/// fewer, larger segments and less merging.
async fn insert_rows<'a>(
    tx: &mut AnyConnection,
    backend: Backend,
    who: &Principal,
    rows: &mut Vec<&'a Pending>,
    now: i64,
) -> Result<Vec<&'a Pending>> {
    let tenant = who.tenant_id.as_str();
    // `value` is each inner array; `value->>n` its n-th element as text
    // (NULL for a JSON null), the same on both engines.
    let each = match backend {
        Backend::Sqlite => "json_each($1)",
        Backend::Postgres => "jsonb_array_elements($1::jsonb) AS j(value)",
    };
    // `WHERE true`: SQLite would otherwise read `ON CONFLICT` as the join
    // condition of the `FROM`.
    let sql = format!(
        "INSERT INTO customers (id, company, contact_name, email, email_norm, phone, street, postal_code, \
         city, region, country, tags, custom_fields, status, reseller_id, sort_key, search_text, \
         tenant_id, created_at, updated_at) SELECT {}, $2, $3, $3 FROM {each} WHERE true \
         ON CONFLICT (tenant_id, email_norm) DO NOTHING",
        elements(17)
    );
    let written = sqlx::query(&sql)
        .bind(json_array(rows.iter().map(|p| p.customer.as_str())))
        .bind(tenant)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let mut skipped = Vec::new();
    if written < rows.len() as u64 {
        // The ids of the rows the unique key turned away: those not there.
        let sql = format!(
            "SELECT value FROM ({}) AS ids WHERE NOT EXISTS \
             (SELECT 1 FROM customers c WHERE c.id = ids.value)",
            listed(backend, 1)
        );
        let absent: HashSet<String> = sqlx::query_scalar::<_, String>(&sql)
            .bind(json_strings(rows.iter().map(|p| p.id.as_str())))
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
        let (gone, kept) = rows.iter().partition(|p| absent.contains(p.id.as_str()));
        skipped = gone;
        *rows = kept;
        if rows.is_empty() {
            return Ok(skipped);
        }
    }
    let sql = format!(
        "INSERT INTO activities (id, customer_id, tenant_id, source, kind, summary, data, actor_id, created_at) \
         SELECT {}, $2, 'core', 'customer.created', 'Customer created (import)', '{{\"via\":\"import\"}}', $4, $3 \
         FROM {each}",
        elements(2)
    );
    sqlx::query(&sql)
        .bind(json_array(rows.iter().map(|p| p.activity.as_str())))
        .bind(tenant)
        .bind(now)
        .bind(who.user_id.as_str())
        .execute(&mut *tx)
        .await?;
    // One `customer.created` event per row, in the same transaction.
    let sql = format!(
        "INSERT INTO event_outbox (id, payload, tenant_id, name, occurred_at) \
         SELECT {}, $2, 'customer.created', $3 FROM {each}",
        elements(2)
    );
    sqlx::query(&sql)
        .bind(json_array(rows.iter().map(|p| p.event.as_str())))
        .bind(tenant)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(skipped)
}

/// `value->>0, value->>1, ...`: the first `n` elements of a row.
fn elements(n: usize) -> String {
    (0..n)
        .map(|i| format!("value->>{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The JSON array of `rows` (each already JSON).
fn json_array<'a>(rows: impl Iterator<Item = &'a str> + Clone) -> String {
    let mut out = String::with_capacity(rows.clone().map(|r| r.len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (i, row) in rows.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(row);
    }
    out.push(']');
    out
}
