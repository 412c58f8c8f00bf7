//! The record store behind the `records` import of modules: per tenant and
//! per module collections of JSON records.
//!
//! Every statement takes the tenant and the module from a [`RecordScope`]
//! that the host builds from the call it is serving, never from what the
//! guest passes, so a module can only ever reach its own records in the
//! tenant it runs for.
//!
//! Records live in one table, `module_records`. A collection's declared
//! indexes map, in declaration order, onto typed slot columns: string
//! indexes onto `s1`..`s4`, number indexes onto `n1`..`n4`. Every write
//! fills the slots from the record's top-level fields (a missing field, or
//! one of another type, leaves the slot NULL), and each slot has a real
//! index `(tenant_id, module_id, collection, slot, id)` on both engines, so
//! equality, ranges, order and keyset paging on an indexed field never scan
//! a collection. Strings compare bytewise (UTF-8) on both engines. A query
//! that filters or orders on a field only returns records that hold a
//! value of the declared type in it.
//!
//! Writes run read-modify-write in one transaction (`FOR UPDATE` on
//! PostgreSQL; `BEGIN IMMEDIATE` on SQLite, so two writers queue on the
//! busy timeout instead of failing when they upgrade a read lock). The
//! per-tenant × module record count lives in `module_record_usage` and is
//! adjusted last in each transaction, after the record rows are locked:
//! one lock order everywhere, and a quota check that is exact under
//! concurrency.

use base64::Engine;
use kontor_runtime::host::{BatchOp, Condition, Op, Query, QueryPage, Record, RecordError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Row};

use crate::db::{Backend, Db, Tx};
use crate::ids::TenantId;
use crate::modules::manifest::{CollectionDecl, IndexKind};

/// Indexes of one kind (string or number) a collection may declare: the
/// number of slot columns of that kind in `module_records`.
pub const SLOTS_PER_KIND: usize = 4;
/// Longest record id, in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest sequence name, in characters.
pub const MAX_SEQUENCE_NAME_CHARS: usize = 128;
/// Largest page of a query.
pub const MAX_PAGE: u32 = 500;
/// Most operations in one batch: a batch is one transaction and holds its
/// row locks until it ends.
pub const MAX_BATCH: usize = 500;
/// Most conditions in one query.
pub const MAX_CONDITIONS: usize = 16;
/// Longest value of an indexed string field, in bytes. PostgreSQL refuses
/// index entries above about 2.7 KB; a clear refusal at write time beats a
/// database error, and equality on long text belongs in a hash field anyway.
pub const MAX_INDEXED_STRING_BYTES: usize = 1024;

const STRING_SLOTS: [&str; SLOTS_PER_KIND] = ["s1", "s2", "s3", "s4"];
const NUMBER_SLOTS: [&str; SLOTS_PER_KIND] = ["n1", "n2", "n3", "n4"];

/// Limits of one module in one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Records the module may keep in the tenant, over all its collections.
    pub max_records: i64,
    /// Largest record, as the JSON text the module writes, in bytes.
    pub max_record_bytes: usize,
}

impl Default for Quota {
    /// 1,000,000 records per tenant × module and 256 KiB per record: room
    /// for a busy support desk (a ticket is a record plus one per message),
    /// while one runaway module cannot fill the disk.
    fn default() -> Self {
        Quota {
            max_records: 1_000_000,
            max_record_bytes: 256 * 1024,
        }
    }
}

/// Whose records a call may touch: built by the host from the call it
/// serves (the tenant of the request or event, the module being called,
/// the collections of its manifest), never from guest input.
#[derive(Debug, Clone, Copy)]
pub struct RecordScope<'a> {
    /// The tenant the module runs for.
    pub tenant: &'a TenantId,
    /// The module being called.
    pub module_id: &'a str,
    /// The collections its manifest declares; anything else is refused.
    pub collections: &'a [CollectionDecl],
    /// Its limits in this tenant.
    pub quota: Quota,
}

/// Check that every collection's indexes fit the slot columns: at most
/// [`SLOTS_PER_KIND`] string and as many number indexes, each field indexed
/// once. Meant for manifest validation, so a module that cannot be stored
/// is refused at install, not at its first write.
pub fn check_collections(collections: &[CollectionDecl]) -> Result<(), String> {
    for (i, c) in collections.iter().enumerate() {
        for kind in [IndexKind::String, IndexKind::Number] {
            let n = c.indexes.iter().filter(|ix| ix.kind == kind).count();
            if n > SLOTS_PER_KIND {
                return Err(format!(
                    "collections[{i}].indexes: collection `{}` declares {n} {} indexes; at most {SLOTS_PER_KIND} of each type",
                    c.name,
                    kind_name(kind)
                ));
            }
        }
        for (k, ix) in c.indexes.iter().enumerate() {
            if c.indexes[..k].iter().any(|other| other.field == ix.field) {
                return Err(format!(
                    "collections[{i}].indexes[{k}].field: `{}` is indexed twice in collection `{}`",
                    ix.field, c.name
                ));
            }
        }
    }
    Ok(())
}

fn kind_name(kind: IndexKind) -> &'static str {
    match kind {
        IndexKind::String => "string",
        IndexKind::Number => "number",
    }
}

/// A declared collection with the slot column of each indexed field.
struct Collection<'a> {
    name: &'a str,
    fields: Vec<(&'a str, IndexKind, &'static str)>,
}

impl<'a> Collection<'a> {
    fn of(decl: &'a CollectionDecl) -> Result<Self, String> {
        let (mut strings, mut numbers) = (0, 0);
        let mut fields = Vec::with_capacity(decl.indexes.len());
        for ix in &decl.indexes {
            let (counter, columns) = match ix.kind {
                IndexKind::String => (&mut strings, &STRING_SLOTS),
                IndexKind::Number => (&mut numbers, &NUMBER_SLOTS),
            };
            let column = columns.get(*counter).ok_or_else(|| {
                format!(
                    "collection `{}` declares more than {SLOTS_PER_KIND} {} indexes",
                    decl.name,
                    kind_name(ix.kind)
                )
            })?;
            *counter += 1;
            fields.push((ix.field.as_str(), ix.kind, *column));
        }
        Ok(Collection {
            name: &decl.name,
            fields,
        })
    }

    fn field(&self, name: &str) -> Result<(IndexKind, &'static str), RecordError> {
        self.fields
            .iter()
            .find(|(f, _, _)| *f == name)
            .map(|(_, kind, column)| (*kind, *column))
            .ok_or_else(|| {
                let indexed: Vec<&str> = self.fields.iter().map(|(f, _, _)| *f).collect();
                RecordError::Invalid(format!(
                    "field `{name}` is not indexed in collection `{}` (indexed: {}); declare it under the collection's `indexes` in module.toml",
                    self.name,
                    if indexed.is_empty() { "none".to_string() } else { indexed.join(", ") }
                ))
            })
    }

    /// The slot values of a record. `strict` refuses an indexed string
    /// that is too long to index; otherwise it is left unindexed.
    fn slots(&self, data: &Map<String, Value>, strict: bool) -> Result<Slots, RecordError> {
        let mut slots = Slots::default();
        for (field, kind, column) in &self.fields {
            match (kind, data.get(*field)) {
                (IndexKind::String, Some(Value::String(s))) => {
                    if s.len() > MAX_INDEXED_STRING_BYTES {
                        if strict {
                            return Err(RecordError::Invalid(format!(
                                "indexed field `{field}` is {} bytes; an indexed string may be at most {MAX_INDEXED_STRING_BYTES} bytes",
                                s.len()
                            )));
                        }
                        continue;
                    }
                    slots.set_text(column, s.clone());
                }
                (IndexKind::Number, Some(Value::Number(n))) => {
                    if let Some(x) = n.as_f64() {
                        slots.set_number(column, x);
                    }
                }
                _ => {}
            }
        }
        Ok(slots)
    }
}

/// A number slot's value as a parameter. sqlx 0.8's `Any` driver sends a
/// `NULL` `f64` to PostgreSQL typed `real` (4 bytes) and a present one as
/// `double precision`; a statement first prepared with a `NULL` there then
/// refuses every later 8-byte value ("incorrect binary data format"). A
/// `NULL` `f32` is what it sends as `double precision`, so that is bound
/// instead: the parameter's type is the same whether or not it is `NULL`.
struct Real(Option<f64>);

impl<'q> sqlx::Encode<'q, Any> for Real {
    fn encode_by_ref(
        &self,
        buf: &mut <Any as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        match self.0 {
            Some(v) => <f64 as sqlx::Encode<'q, Any>>::encode_by_ref(&v, buf),
            None => <Option<f32> as sqlx::Encode<'q, Any>>::encode_by_ref(&None, buf),
        }
    }
}

impl sqlx::Type<Any> for Real {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <f64 as sqlx::Type<Any>>::type_info()
    }
}

/// Values of the slot columns of one record.
#[derive(Debug, Default)]
struct Slots {
    s: [Option<String>; SLOTS_PER_KIND],
    n: [Option<f64>; SLOTS_PER_KIND],
}

impl Slots {
    fn set_text(&mut self, column: &str, v: String) {
        if let Some(k) = STRING_SLOTS.iter().position(|c| *c == column) {
            self.s[k] = Some(v);
        }
    }

    fn set_number(&mut self, column: &str, v: f64) {
        if let Some(k) = NUMBER_SLOTS.iter().position(|c| *c == column) {
            self.n[k] = Some(v);
        }
    }
}

/// Numbered `$n` arguments, with floats (which [`crate::db::args::Args`]
/// does not carry) for the number slots.
#[derive(Debug, Default)]
struct Binds(Vec<Bind>);

#[derive(Debug)]
enum Bind {
    Text(Option<String>),
    Int(i64),
    Real(Option<f64>),
}

impl Binds {
    fn push(&mut self, b: Bind) -> String {
        self.0.push(b);
        format!("${}", self.0.len())
    }

    fn text(&mut self, v: impl Into<String>) -> String {
        self.push(Bind::Text(Some(v.into())))
    }

    fn apply(self, sql: &str) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(sql);
        for b in self.0 {
            q = match b {
                Bind::Text(v) => q.bind(v),
                Bind::Int(v) => q.bind(v),
                Bind::Real(v) => q.bind(Real(v)),
            };
        }
        q
    }
}

/// Why an internal step stopped: a refusal for the guest, or a database
/// error (mapped at the boundary, so a batch can retry a deadlock).
enum Fail {
    Refused(RecordError),
    Db(sqlx::Error),
    Internal(String),
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<RecordError> for Fail {
    fn from(e: RecordError) -> Self {
        Fail::Refused(e)
    }
}

impl Fail {
    /// A PostgreSQL deadlock or serialization failure: the transaction was
    /// rolled back and may simply run again.
    fn is_retryable(&self) -> bool {
        matches!(self, Fail::Db(sqlx::Error::Database(db))
            if matches!(db.code().as_deref(), Some("40P01") | Some("40001")))
    }
}

/// Log a database failure with an id and give the guest only the id: the
/// text may name tables and constraints, which are none of its business.
fn internal(scope: &RecordScope<'_>, e: &dyn std::fmt::Display) -> RecordError {
    let id = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(error_id = %id, module = scope.module_id, error = %e, "record store failed");
    RecordError::Internal(format!(
        "the record store failed; reference {id} in the server log"
    ))
}

fn finish<T>(scope: &RecordScope<'_>, r: Result<T, Fail>) -> Result<T, RecordError> {
    r.map_err(|f| match f {
        Fail::Refused(e) => e,
        Fail::Db(e) => internal(scope, &e),
        Fail::Internal(m) => internal(scope, &m),
    })
}

fn collection<'s>(scope: &RecordScope<'s>, name: &str) -> Result<Collection<'s>, RecordError> {
    let decl = scope
        .collections
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| RecordError::UnknownCollection(name.to_string()))?;
    Collection::of(decl).map_err(RecordError::Invalid)
}

fn check_name(what: &str, s: &str, max: usize) -> Result<(), RecordError> {
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(RecordError::Invalid(format!(
            "{what} must be 1 to {max} characters, got {n}"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(RecordError::Invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// A put, checked and ready to write.
struct PreparedPut<'a> {
    collection: &'a str,
    id: &'a str,
    data: &'a str,
    slots: Slots,
}

fn prepare_put<'a>(
    scope: &RecordScope<'_>,
    collection_name: &'a str,
    id: &'a str,
    data: &'a str,
) -> Result<PreparedPut<'a>, RecordError> {
    let coll = collection(scope, collection_name)?;
    check_name("a record id", id, MAX_ID_CHARS)?;
    let max = scope.quota.max_record_bytes;
    if data.len() > max {
        return Err(RecordError::Invalid(format!(
            "record data is {} bytes; a record may be at most {max} bytes",
            data.len()
        )));
    }
    let object = match serde_json::from_str::<Value>(data) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Err(RecordError::Invalid(
                "record data must be a JSON object".into(),
            ))
        }
        Err(e) => {
            return Err(RecordError::Invalid(format!(
                "record data is not valid JSON: {e}"
            )))
        }
    };
    let slots = coll.slots(&object, true)?;
    Ok(PreparedPut {
        collection: collection_name,
        id,
        data,
        slots,
    })
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or_default()
}

/// Whether `expected` (none: anything goes) matches `current` (0: absent).
fn version_matches(expected: Option<u64>, current: i64) -> bool {
    expected.is_none_or(|e| i64::try_from(e).ok() == Some(current))
}

/// The version and creation time of a record, locked for the transaction.
async fn locked_version(
    tx: &mut Tx,
    db: &Db,
    scope: &RecordScope<'_>,
    collection: &str,
    id: &str,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let sql = format!(
        "SELECT version, created_at FROM module_records \
         WHERE tenant_id = $1 AND module_id = $2 AND collection = $3 AND id = $4{}",
        db.for_update()
    );
    let row: Option<(i64, i64)> = sqlx::query_as(&sql)
        .bind(scope.tenant.as_str())
        .bind(scope.module_id)
        .bind(collection)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row)
}

/// Write one record inside `tx`; returns it and whether it is new.
async fn put_tx(
    tx: &mut Tx,
    db: &Db,
    scope: &RecordScope<'_>,
    p: &PreparedPut<'_>,
    expected: Option<u64>,
    now: i64,
) -> Result<(Record, bool), Fail> {
    let [s1, s2, s3, s4] = &p.slots.s;
    let [n1, n2, n3, n4] = p.slots.n;
    // A second round only happens on PostgreSQL, when a concurrent
    // transaction inserted the same new id between our read and our insert.
    for _ in 0..3 {
        match locked_version(tx, db, scope, p.collection, p.id).await? {
            Some((version, created_at)) => {
                if !version_matches(expected, version) {
                    return Err(RecordError::Conflict(to_u64(version)).into());
                }
                let done = sqlx::query(
                    "UPDATE module_records SET version = $5, data = $6, updated_at = $7, \
                     s1 = $8, s2 = $9, s3 = $10, s4 = $11, n1 = $12, n2 = $13, n3 = $14, n4 = $15 \
                     WHERE tenant_id = $1 AND module_id = $2 AND collection = $3 AND id = $4 \
                     AND version = $16",
                )
                .bind(scope.tenant.as_str())
                .bind(scope.module_id)
                .bind(p.collection)
                .bind(p.id)
                .bind(version + 1)
                .bind(p.data)
                .bind(now)
                .bind(s1)
                .bind(s2)
                .bind(s3)
                .bind(s4)
                .bind(Real(n1))
                .bind(Real(n2))
                .bind(Real(n3))
                .bind(Real(n4))
                .bind(version)
                .execute(&mut **tx)
                .await?;
                if done.rows_affected() == 1 {
                    let record = Record {
                        id: p.id.to_string(),
                        version: to_u64(version + 1),
                        data: p.data.to_string(),
                        created_at,
                        updated_at: now,
                    };
                    return Ok((record, false));
                }
            }
            None => {
                if !version_matches(expected, 0) {
                    return Err(RecordError::Conflict(0).into());
                }
                let done = sqlx::query(
                    "INSERT INTO module_records (tenant_id, module_id, collection, id, version, data, \
                     created_at, updated_at, s1, s2, s3, s4, n1, n2, n3, n4) \
                     VALUES ($1, $2, $3, $4, 1, $5, $6, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (tenant_id, module_id, collection, id) DO NOTHING",
                )
                .bind(scope.tenant.as_str())
                .bind(scope.module_id)
                .bind(p.collection)
                .bind(p.id)
                .bind(p.data)
                .bind(now)
                .bind(s1)
                .bind(s2)
                .bind(s3)
                .bind(s4)
                .bind(Real(n1))
                .bind(Real(n2))
                .bind(Real(n3))
                .bind(Real(n4))
                .execute(&mut **tx)
                .await?;
                if done.rows_affected() == 1 {
                    let record = Record {
                        id: p.id.to_string(),
                        version: 1,
                        data: p.data.to_string(),
                        created_at: now,
                        updated_at: now,
                    };
                    return Ok((record, true));
                }
            }
        }
    }
    Err(Fail::Internal(format!(
        "record {}/{} kept changing under a write",
        p.collection, p.id
    )))
}

/// Delete one record inside `tx`; whether it existed.
async fn delete_tx(
    tx: &mut Tx,
    db: &Db,
    scope: &RecordScope<'_>,
    collection: &str,
    id: &str,
    expected: Option<u64>,
) -> Result<bool, Fail> {
    let current = locked_version(tx, db, scope, collection, id)
        .await?
        .map_or(0, |(v, _)| v);
    if !version_matches(expected, current) {
        return Err(RecordError::Conflict(to_u64(current)).into());
    }
    if current == 0 {
        return Ok(false);
    }
    sqlx::query(
        "DELETE FROM module_records \
         WHERE tenant_id = $1 AND module_id = $2 AND collection = $3 AND id = $4",
    )
    .bind(scope.tenant.as_str())
    .bind(scope.module_id)
    .bind(collection)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

/// Add `delta` to the module's record count in the tenant and enforce the
/// quota when it grows. Runs last in a write transaction (see the module
/// docs on lock order); a refusal rolls the whole transaction back.
async fn adjust_usage(tx: &mut Tx, scope: &RecordScope<'_>, delta: i64) -> Result<(), Fail> {
    if delta == 0 {
        return Ok(());
    }
    let records: i64 = sqlx::query_scalar(
        "INSERT INTO module_record_usage (tenant_id, module_id, records) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, module_id) \
         DO UPDATE SET records = module_record_usage.records + excluded.records \
         RETURNING records",
    )
    .bind(scope.tenant.as_str())
    .bind(scope.module_id)
    .bind(delta)
    .fetch_one(&mut **tx)
    .await?;
    let max = scope.quota.max_records;
    if delta > 0 && records > max {
        return Err(RecordError::QuotaExceeded(format!(
            "module `{}` may keep at most {max} records in this tenant and this write would make {records}; delete records it no longer needs or ask an administrator to raise the quota",
            scope.module_id
        ))
        .into());
    }
    Ok(())
}

/// Read one record.
pub async fn get(
    db: &Db,
    scope: &RecordScope<'_>,
    collection_name: &str,
    id: &str,
) -> Result<Option<Record>, RecordError> {
    collection(scope, collection_name)?;
    check_name("a record id", id, MAX_ID_CHARS)?;
    let row = sqlx::query(
        "SELECT id, version, data, created_at, updated_at FROM module_records \
         WHERE tenant_id = $1 AND module_id = $2 AND collection = $3 AND id = $4",
    )
    .bind(scope.tenant.as_str())
    .bind(scope.module_id)
    .bind(collection_name)
    .bind(id)
    .fetch_optional(db.pool())
    .await
    .map_err(|e| internal(scope, &e))?;
    row.as_ref()
        .map(record_from_row)
        .transpose()
        .map_err(|e| internal(scope, &e))
}

fn record_from_row(row: &AnyRow) -> Result<Record, sqlx::Error> {
    Ok(Record {
        id: row.try_get("id")?,
        version: to_u64(row.try_get("version")?),
        data: row.try_get("data")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Write a record: create it (version 1) or replace its data (version + 1).
/// `expected_version` makes the write conditional: `Some(0)` means "must
/// not exist yet", `Some(n)` "must be at version n"; a mismatch is a
/// [`RecordError::Conflict`] carrying the current version (0: absent).
/// The data is stored as the text given, so the module reads back exactly
/// what it wrote.
pub async fn put(
    db: &Db,
    scope: &RecordScope<'_>,
    collection: &str,
    id: &str,
    data_json: &str,
    expected_version: Option<u64>,
    now_ms: i64,
) -> Result<Record, RecordError> {
    let p = prepare_put(scope, collection, id, data_json)?;
    let r = async {
        let mut tx = db.begin_sqlx().await?;
        let (record, created) = put_tx(&mut tx, db, scope, &p, expected_version, now_ms).await?;
        adjust_usage(&mut tx, scope, i64::from(created)).await?;
        tx.commit().await?;
        Ok(record)
    }
    .await;
    finish(scope, r)
}

/// Delete a record; whether it existed. With `expected_version` the delete
/// is conditional as in [`put`] (`Some(0)`: only succeeds when absent).
pub async fn delete(
    db: &Db,
    scope: &RecordScope<'_>,
    collection_name: &str,
    id: &str,
    expected_version: Option<u64>,
) -> Result<bool, RecordError> {
    collection(scope, collection_name)?;
    check_name("a record id", id, MAX_ID_CHARS)?;
    let r = async {
        let mut tx = db.begin_sqlx().await?;
        let existed = delete_tx(&mut tx, db, scope, collection_name, id, expected_version).await?;
        adjust_usage(&mut tx, scope, -i64::from(existed)).await?;
        tx.commit().await?;
        Ok(existed)
    }
    .await;
    finish(scope, r)
}

/// Run puts and deletes as one transaction: all of them happen or none.
/// Returns, per operation, the written record (`None` for a delete). Every
/// operation is checked before anything is written; the first refusal
/// (conflict, quota...) rolls back those before it.
pub async fn batch(
    db: &Db,
    scope: &RecordScope<'_>,
    ops: &[BatchOp],
    now_ms: i64,
) -> Result<Vec<Option<Record>>, RecordError> {
    if ops.len() > MAX_BATCH {
        return Err(RecordError::Invalid(format!(
            "a batch may hold at most {MAX_BATCH} operations, got {}",
            ops.len()
        )));
    }
    let at = |i: usize, e: RecordError| match e {
        RecordError::Invalid(m) => RecordError::Invalid(format!("batch operation {i}: {m}")),
        other => other,
    };
    let mut prepared = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        prepared.push(match op {
            BatchOp::Put {
                collection,
                id,
                data,
                expected_version,
            } => Prepared::Put(
                prepare_put(scope, collection, id, data).map_err(|e| at(i, e))?,
                *expected_version,
            ),
            BatchOp::Delete {
                collection: name,
                id,
                expected_version,
            } => {
                collection(scope, name).map_err(|e| at(i, e))?;
                check_name("a record id", id, MAX_ID_CHARS).map_err(|e| at(i, e))?;
                Prepared::Delete(name, id, *expected_version)
            }
        });
    }
    // Two batches that lock the same records in different orders deadlock
    // on PostgreSQL; the loser was rolled back and simply runs again.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match run_batch(db, scope, &prepared, now_ms).await {
            Err(f) if attempt < 3 && f.is_retryable() => continue,
            r => return finish(scope, r),
        }
    }
}

/// A batch operation, checked and ready to run.
enum Prepared<'a> {
    Put(PreparedPut<'a>, Option<u64>),
    Delete(&'a str, &'a str, Option<u64>),
}

async fn run_batch(
    db: &Db,
    scope: &RecordScope<'_>,
    ops: &[Prepared<'_>],
    now_ms: i64,
) -> Result<Vec<Option<Record>>, Fail> {
    let mut tx = db.begin_sqlx().await?;
    let mut out = Vec::with_capacity(ops.len());
    let mut delta = 0i64;
    for op in ops {
        match op {
            Prepared::Put(p, expected) => {
                let (record, created) = put_tx(&mut tx, db, scope, p, *expected, now_ms).await?;
                delta += i64::from(created);
                out.push(Some(record));
            }
            Prepared::Delete(collection, id, expected) => {
                let existed = delete_tx(&mut tx, db, scope, collection, id, *expected).await?;
                delta -= i64::from(existed);
                out.push(None);
            }
        }
    }
    adjust_usage(&mut tx, scope, delta).await?;
    tx.commit().await?;
    Ok(out)
}

/// Where a page ends: the sort value and id of its last record, with the
/// ordering it belongs to (a cursor of another ordering is refused rather
/// than silently skipping records).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Cursor {
    /// Field ordered by; `None`: the id.
    o: Option<String>,
    /// Descending.
    d: bool,
    /// Sort value (null when ordering by id).
    v: Value,
    /// Id.
    i: String,
}

fn encode_cursor(c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode_cursor(s: &str) -> Result<Cursor, RecordError> {
    let bad = || {
        RecordError::Invalid(
            "cursor is not a `next_cursor` this store handed out for this query".into(),
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// A value for a slot of `kind`, from the JSON text of a condition or cursor.
fn slot_value(kind: IndexKind, v: &Value, field: &str) -> Result<Bind, RecordError> {
    match (kind, v) {
        (IndexKind::String, Value::String(s)) => Ok(Bind::Text(Some(s.clone()))),
        (IndexKind::Number, Value::Number(n)) => n
            .as_f64()
            .map(|x| Bind::Real(Some(x)))
            .ok_or_else(|| RecordError::Invalid(format!("`{field}`: {n} is not a usable number"))),
        _ => Err(RecordError::Invalid(format!(
            "`{field}` is a {} index; compare it with a JSON {}, got {v}",
            kind_name(kind),
            kind_name(kind)
        ))),
    }
}

fn op_sql(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Lt => "<",
        Op::Lte => "<=",
        Op::Gt => ">",
        Op::Gte => ">=",
    }
}

/// The SQL of a query and its arguments; `Some(kind)` when it orders by a
/// slot (selected as `sort_value`).
struct BuiltQuery {
    sql: String,
    binds: Binds,
    order: Option<(String, IndexKind)>,
    limit: usize,
}

fn build_query(scope: &RecordScope<'_>, q: &Query) -> Result<BuiltQuery, RecordError> {
    let coll = collection(scope, &q.collection)?;
    if !(1..=MAX_PAGE).contains(&q.limit) {
        return Err(RecordError::Invalid(format!(
            "limit must be between 1 and {MAX_PAGE}, got {}",
            q.limit
        )));
    }
    if q.conditions.len() > MAX_CONDITIONS {
        return Err(RecordError::Invalid(format!(
            "a query may have at most {MAX_CONDITIONS} conditions"
        )));
    }
    let mut b = Binds::default();
    let mut filters = String::new();
    let mut not_null: Vec<&str> = Vec::new();
    let t = b.text(scope.tenant.as_str());
    let m = b.text(scope.module_id);
    let c = b.text(coll.name);
    for Condition { field, op, value } in &q.conditions {
        let (kind, column) = coll.field(field)?;
        let v: Value = serde_json::from_str(value).map_err(|_| {
            RecordError::Invalid(format!(
                "the value compared with `{field}` must be JSON (a {}), got `{value}`",
                kind_name(kind)
            ))
        })?;
        let p = b.push(slot_value(kind, &v, field)?);
        filters.push_str(&format!(" AND {column} {} {p}", op_sql(*op)));
        if !not_null.contains(&column) {
            not_null.push(column);
        }
    }
    let order = match &q.order_by {
        Some(field) => {
            let (kind, column) = coll.field(field)?;
            if !not_null.contains(&column) {
                not_null.push(column);
            }
            Some((field.clone(), kind, column))
        }
        None => None,
    };
    let (cmp, dir) = if q.descending {
        ("<", " DESC")
    } else {
        (">", "")
    };
    if let Some(cursor) = &q.cursor {
        let cur = decode_cursor(cursor)?;
        if cur.o != q.order_by || cur.d != q.descending {
            return Err(RecordError::Invalid(
                "cursor belongs to a query with another order; start again without a cursor".into(),
            ));
        }
        match &order {
            Some((field, kind, column)) => {
                let v = b.push(slot_value(*kind, &cur.v, field)?);
                let i = b.text(cur.i);
                filters.push_str(&format!(" AND ({column}, id) {cmp} ({v}, {i})"));
            }
            None => {
                let i = b.text(cur.i);
                filters.push_str(&format!(" AND id {cmp} {i}"));
            }
        }
    }
    // Spelled out for every slot used, so the partial slot indexes
    // (`WHERE sK IS NOT NULL`) match on both engines' planners.
    let present: String = not_null
        .iter()
        .map(|col| format!(" AND {col} IS NOT NULL"))
        .collect();
    let limit = q.limit as usize;
    let l = b.push(Bind::Int(i64::from(q.limit) + 1));
    let (select_sort, order_sql) = match &order {
        Some((_, _, column)) => (
            format!(", {column} AS sort_value"),
            format!("{column}{dir}, id{dir}"),
        ),
        None => (String::new(), format!("id{dir}")),
    };
    let sql = format!(
        "SELECT id, version, data, created_at, updated_at{select_sort} FROM module_records \
         WHERE tenant_id = {t} AND module_id = {m} AND collection = {c}{present}{filters} \
         ORDER BY {order_sql} LIMIT {l}"
    );
    Ok(BuiltQuery {
        sql,
        binds: b,
        order: order.map(|(f, k, _)| (f, k)),
        limit,
    })
}

/// One page of a collection: records matching every condition (on indexed
/// fields only), ordered by an indexed field or by id, `limit` at a time.
/// Paging is by keyset — the cursor holds the last (sort value, id) — so a
/// page costs the same however deep it is and a record appears on exactly
/// one page while the collection does not change.
pub async fn query(db: &Db, scope: &RecordScope<'_>, q: &Query) -> Result<QueryPage, RecordError> {
    let built = build_query(scope, q)?;
    let rows = built
        .binds
        .apply(&built.sql)
        .fetch_all(db.pool())
        .await
        .map_err(|e| internal(scope, &e))?;
    let more = rows.len() > built.limit;
    let mut records = Vec::with_capacity(rows.len().min(built.limit));
    let mut last_sort = Value::Null;
    for row in rows.iter().take(built.limit) {
        records.push(record_from_row(row).map_err(|e| internal(scope, &e))?);
        if let Some((_, kind)) = &built.order {
            last_sort = match kind {
                IndexKind::String => row
                    .try_get::<Option<String>, _>("sort_value")
                    .map(|v| v.map_or(Value::Null, Value::String)),
                IndexKind::Number => row.try_get::<Option<f64>, _>("sort_value").map(|v| {
                    v.and_then(serde_json::Number::from_f64)
                        .map_or(Value::Null, Value::Number)
                }),
            }
            .map_err(|e| internal(scope, &e))?;
        }
    }
    let next_cursor = match (more, records.last()) {
        (true, Some(last)) => Some(encode_cursor(&Cursor {
            o: q.order_by.clone(),
            d: q.descending,
            v: last_sort,
            i: last.id.clone(),
        })),
        _ => None,
    };
    Ok(QueryPage {
        records,
        next_cursor,
    })
}

/// The database's plan for a query, one line per step (`EXPLAIN QUERY
/// PLAN` on SQLite, `EXPLAIN` on PostgreSQL): to show that queries run on
/// the slot indexes, and to diagnose a slow module query.
pub async fn explain(
    db: &Db,
    scope: &RecordScope<'_>,
    q: &Query,
) -> Result<Vec<String>, RecordError> {
    let built = build_query(scope, q)?;
    let (sql, column) = match db.backend() {
        Backend::Sqlite => (format!("EXPLAIN QUERY PLAN {}", built.sql), 3),
        Backend::Postgres => (format!("EXPLAIN {}", built.sql), 0),
    };
    let rows = built
        .binds
        .apply(&sql)
        .fetch_all(db.pool())
        .await
        .map_err(|e| internal(scope, &e))?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(column))
        .collect::<Result<_, _>>()
        .map_err(|e| internal(scope, &e))
}

/// The next number of a named sequence of the module in the tenant: 1, 2,
/// 3… with no gaps and no repeats however many calls race, because one
/// atomic upsert both creates and bumps the counter. A number handed out is
/// used up even if the module then fails to store what it numbered.
pub async fn next_sequence(
    db: &Db,
    scope: &RecordScope<'_>,
    name: &str,
) -> Result<u64, RecordError> {
    check_name("a sequence name", name, MAX_SEQUENCE_NAME_CHARS)?;
    let value: i64 = sqlx::query_scalar(
        "INSERT INTO module_sequences (tenant_id, module_id, name, value) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (tenant_id, module_id, name) \
         DO UPDATE SET value = module_sequences.value + 1 \
         RETURNING value",
    )
    .bind(scope.tenant.as_str())
    .bind(scope.module_id)
    .bind(name)
    .fetch_one(db.pool())
    .await
    .map_err(|e| internal(scope, &e))?;
    Ok(to_u64(value))
}

/// Delete everything the module stored — records, sequences and usage — in
/// one tenant, or in every tenant when `tenant` is `None` (uninstall with
/// purge). Returns the number of records deleted.
pub async fn purge(db: &Db, tenant: Option<&TenantId>, module_id: &str) -> crate::Result<u64> {
    let mut tx = db.begin().await?;
    let mut deleted = 0;
    for table in ["module_records", "module_sequences", "module_record_usage"] {
        let done = match tenant {
            Some(t) => {
                let sql = format!("DELETE FROM {table} WHERE module_id = $1 AND tenant_id = $2");
                sqlx::query(&sql)
                    .bind(module_id)
                    .bind(t.as_str())
                    .execute(&mut *tx)
                    .await?
            }
            None => {
                let sql = format!("DELETE FROM {table} WHERE module_id = $1");
                sqlx::query(&sql).bind(module_id).execute(&mut *tx).await?
            }
        };
        if table == "module_records" {
            deleted = done.rows_affected();
        }
    }
    tx.commit().await?;
    Ok(deleted)
}

/// Refill the slot columns of every record of a module from its data, for
/// the collections as now declared: an upgrade that adds, removes or
/// reorders indexes must run this in its transaction, or queries would
/// read the slots of the old declaration. A string too long to index is
/// left unindexed rather than failing the upgrade. Returns the number of
/// records rewritten.
pub async fn reindex_tx(
    tx: &mut Tx,
    module_id: &str,
    collections: &[CollectionDecl],
) -> crate::Result<u64> {
    check_collections(collections).map_err(|m| crate::Error::invalid("collections", m))?;
    let tenants: Vec<String> = sqlx::query_scalar(
        "SELECT tenant_id FROM module_record_usage WHERE module_id = $1 ORDER BY tenant_id",
    )
    .bind(module_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut rewritten = 0;
    for tenant in &tenants {
        for decl in collections {
            let coll = Collection::of(decl).map_err(crate::Error::internal)?;
            let mut after = String::new();
            loop {
                let page: Vec<(String, String)> = sqlx::query_as(
                    "SELECT id, data FROM module_records \
                     WHERE tenant_id = $1 AND module_id = $2 AND collection = $3 AND id > $4 \
                     ORDER BY id LIMIT 500",
                )
                .bind(tenant)
                .bind(module_id)
                .bind(coll.name)
                .bind(&after)
                .fetch_all(&mut **tx)
                .await?;
                let Some((last, _)) = page.last() else { break };
                after = last.clone();
                for (id, data) in &page {
                    let object = match serde_json::from_str::<Value>(data) {
                        Ok(Value::Object(m)) => m,
                        _ => Map::new(),
                    };
                    let slots = coll
                        .slots(&object, false)
                        .map_err(|e| crate::Error::internal(format!("{e:?}")))?;
                    let [s1, s2, s3, s4] = slots.s;
                    let [n1, n2, n3, n4] = slots.n;
                    sqlx::query(
                        "UPDATE module_records SET s1 = $5, s2 = $6, s3 = $7, s4 = $8, \
                         n1 = $9, n2 = $10, n3 = $11, n4 = $12 \
                         WHERE tenant_id = $1 AND module_id = $2 AND collection = $3 AND id = $4",
                    )
                    .bind(tenant)
                    .bind(module_id)
                    .bind(coll.name)
                    .bind(id)
                    .bind(s1)
                    .bind(s2)
                    .bind(s3)
                    .bind(s4)
                    .bind(Real(n1))
                    .bind(Real(n2))
                    .bind(Real(n3))
                    .bind(Real(n4))
                    .execute(&mut **tx)
                    .await?;
                    rewritten += 1;
                }
            }
        }
    }
    Ok(rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::manifest::IndexDecl;

    fn decl(name: &str, indexes: &[(&str, IndexKind)]) -> CollectionDecl {
        CollectionDecl {
            name: name.into(),
            indexes: indexes
                .iter()
                .map(|(f, k)| IndexDecl {
                    field: (*f).into(),
                    kind: *k,
                })
                .collect(),
        }
    }

    #[test]
    fn indexes_map_to_slots_in_declaration_order_per_kind() {
        let d = decl(
            "t",
            &[
                ("a", IndexKind::String),
                ("x", IndexKind::Number),
                ("b", IndexKind::String),
            ],
        );
        let c = Collection::of(&d).unwrap();
        assert_eq!(c.field("a").unwrap(), (IndexKind::String, "s1"));
        assert_eq!(c.field("b").unwrap(), (IndexKind::String, "s2"));
        assert_eq!(c.field("x").unwrap(), (IndexKind::Number, "n1"));
        let err = c.field("nope").unwrap_err();
        assert!(
            matches!(&err, RecordError::Invalid(m) if m.contains("`nope`") && m.contains("a, x, b")),
            "{err:?}"
        );
    }

    #[test]
    fn check_collections_refuses_a_fifth_index_of_a_kind_and_duplicates() {
        let ok = decl(
            "t",
            &[
                ("a", IndexKind::String),
                ("b", IndexKind::String),
                ("c", IndexKind::String),
                ("d", IndexKind::String),
                ("x", IndexKind::Number),
            ],
        );
        assert!(check_collections(std::slice::from_ref(&ok)).is_ok());
        let mut five = ok.clone();
        five.indexes.push(IndexDecl {
            field: "e".into(),
            kind: IndexKind::String,
        });
        let e = check_collections(&[five]).unwrap_err();
        assert!(e.contains("5 string indexes"), "{e}");
        let dup = decl("t", &[("a", IndexKind::String), ("a", IndexKind::Number)]);
        assert!(check_collections(&[dup])
            .unwrap_err()
            .contains("indexed twice"));
    }

    #[test]
    fn slots_take_values_of_the_declared_type_only() {
        let d = decl(
            "t",
            &[("name", IndexKind::String), ("n", IndexKind::Number)],
        );
        let c = Collection::of(&d).unwrap();
        let data: Map<String, Value> = serde_json::from_str(r#"{"name": 5, "n": 2.5}"#).unwrap();
        let s = c.slots(&data, true).unwrap();
        assert_eq!(s.s[0], None);
        assert_eq!(s.n[0], Some(2.5));
        let long = serde_json::json!({ "name": "x".repeat(MAX_INDEXED_STRING_BYTES + 1) });
        let long = long.as_object().unwrap();
        assert!(matches!(c.slots(long, true), Err(RecordError::Invalid(_))));
        assert_eq!(c.slots(long, false).unwrap().s[0], None);
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            o: Some("n".into()),
            d: true,
            v: serde_json::json!(1.5),
            i: "id-1".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        assert!(decode_cursor("not a cursor!").is_err());
    }

    #[test]
    fn expected_version_zero_means_absent() {
        assert!(version_matches(None, 7));
        assert!(version_matches(Some(0), 0));
        assert!(!version_matches(Some(0), 1));
        assert!(version_matches(Some(3), 3));
        assert!(!version_matches(Some(u64::MAX), 3));
    }
}
