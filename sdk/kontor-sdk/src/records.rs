//! The module's record store: typed collections of JSON records, per tenant
//! and per module.
//!
//! Declare each collection in `module.toml`, with the fields queries may
//! filter and order on:
//!
//! ```toml
//! [[collections]]
//! name = "tickets"
//! indexes = [{ field = "status", type = "string" }, { field = "number", type = "number" }]
//! ```
//!
//! and use it through a [`Collection`] of a serde type:
//!
//! ```no_run
//! use kontor_sdk::records::{self, Collection};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Ticket {
//!     number: u64,
//!     status: String,
//!     title: String,
//! }
//!
//! const TICKETS: Collection<Ticket> = Collection::new("tickets");
//!
//! # fn main() -> Result<(), records::Error> {
//! let number = records::next_sequence("ticket")?;
//! let id = number.to_string();
//! TICKETS.insert(&id, &Ticket { number, status: "open".into(), title: "Printer".into() })?;
//!
//! // Every open ticket, newest first, 50 per page.
//! let mut page = TICKETS.query().eq("status", "open").order_by("number").descending().limit(50).fetch()?;
//! while let Some(cursor) = page.next_cursor.take() {
//!     page = TICKETS.query().eq("status", "open").order_by("number").descending().limit(50).after(&cursor).fetch()?;
//! }
//!
//! // Close it unless someone changed it since it was read.
//! if let Some(mut t) = TICKETS.get(&id)? {
//!     t.data.status = "closed".into();
//!     TICKETS.update(&id, t.version, &t.data)?;
//! }
//! # Ok(()) }
//! ```
//!
//! Every record has a version that grows with each write: [`Collection::update`]
//! and [`Collection::insert`] write only if the stored version is the one
//! expected, and fail with [`Error::Conflict`] otherwise (optimistic
//! concurrency). [`Batch`] writes several records all or none.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::kontor::module::records as raw;

/// Why a record operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The collection is not declared in `module.toml`.
    UnknownCollection(String),
    /// The stored version is not the expected one; carries the current
    /// version (0: the record does not exist).
    Conflict(u64),
    /// Bad input: not a JSON object, a query on an unindexed field, a
    /// stored record that does not fit the collection's type...
    Invalid(String),
    /// The tenant's quota for this module is used up.
    QuotaExceeded(String),
    /// The module is read-only for this tenant (its license or subscription
    /// ended): data can be read and shown, not changed.
    ReadOnly(String),
    /// The host could not complete the call.
    Internal(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownCollection(c) => write!(
                f,
                "collection `{c}` is not declared in module.toml; add it under [[collections]]"
            ),
            Error::Conflict(0) => write!(f, "version conflict: the record does not exist"),
            Error::Conflict(v) => write!(
                f,
                "version conflict: the record is at version {v}; read it again and retry"
            ),
            Error::Invalid(m) => write!(f, "invalid: {m}"),
            Error::QuotaExceeded(m) => write!(f, "quota exceeded: {m}"),
            Error::ReadOnly(m) => write!(f, "read-only: {m}"),
            Error::Internal(m) => write!(f, "record store failed: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<raw::Error> for Error {
    fn from(e: raw::Error) -> Self {
        match e {
            raw::Error::UnknownCollection(c) => Error::UnknownCollection(c),
            raw::Error::Conflict(v) => Error::Conflict(v),
            raw::Error::Invalid(m) => Error::Invalid(m),
            raw::Error::QuotaExceeded(m) => Error::QuotaExceeded(m),
            raw::Error::ReadOnly(m) => Error::ReadOnly(m),
            raw::Error::Internal(m) => Error::Internal(m),
        }
    }
}

/// A route answers a record error in the host's error shape: a conflict is
/// 409 `conflict`, bad input 422 `validation_failed`, a used-up quota 403
/// `quota_exceeded`, a read-only module 403 `license_expired`, the rest 500.
impl From<Error> for crate::Error {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Conflict(_) => crate::Error::conflict(message),
            Error::Invalid(_) => crate::Error::new(422, "validation_failed", message),
            Error::QuotaExceeded(_) => crate::Error::new(403, "quota_exceeded", message),
            Error::ReadOnly(_) => crate::Error::new(403, "license_expired", message),
            Error::UnknownCollection(_) | Error::Internal(_) => crate::Error::internal(message),
        }
    }
}

/// A stored record of type `T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<T> {
    /// Its id within the collection.
    pub id: String,
    /// Starts at 1 and grows with every write: pass it to
    /// [`Collection::update`] to write only if nobody else did meanwhile.
    pub version: u64,
    /// The data.
    pub data: T,
    /// When it was created, Unix milliseconds.
    pub created_at: i64,
    /// When it was last written, Unix milliseconds.
    pub updated_at: i64,
}

fn decode<T: DeserializeOwned>(collection: &str, r: raw::Record) -> Result<Record<T>, Error> {
    let data = serde_json::from_str(&r.data).map_err(|e| {
        Error::Invalid(format!(
            "record `{}` in `{collection}` does not fit {}: {e}",
            r.id,
            std::any::type_name::<T>()
        ))
    })?;
    Ok(Record {
        id: r.id,
        version: r.version,
        data,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    let json = serde_json::to_value(value)
        .map_err(|e| Error::Invalid(format!("the record is not JSON: {e}")))?;
    if !json.is_object() {
        return Err(Error::Invalid(
            "a record is a JSON object: store a struct or a map".into(),
        ));
    }
    Ok(json.to_string())
}

/// A collection declared in `module.toml`, holding records of type `T`.
///
/// Cheap to create (a name), so keep it in a `const`.
pub struct Collection<T> {
    name: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Collection<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Collection<T> {}

impl<T> fmt::Debug for Collection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Collection({})", self.name)
    }
}

impl<T> Collection<T> {
    /// The collection `name`, as declared under `[[collections]]`.
    pub const fn new(name: &'static str) -> Self {
        Collection {
            name,
            _type: PhantomData,
        }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<T: Serialize + DeserializeOwned> Collection<T> {
    /// The record `id`, or `None`.
    pub fn get(&self, id: &str) -> Result<Option<Record<T>>, Error> {
        raw::get(self.name, id)?
            .map(|r| decode(self.name, r))
            .transpose()
    }

    /// Write the record `id`, whatever is stored.
    pub fn put(&self, id: &str, value: &T) -> Result<Record<T>, Error> {
        self.write(id, value, None)
    }

    /// Write the record `id` only if it does not exist yet
    /// ([`Error::Conflict`] if it does).
    pub fn insert(&self, id: &str, value: &T) -> Result<Record<T>, Error> {
        self.write(id, value, Some(0))
    }

    /// Write the record `id` only if it is still at `version` (as read):
    /// [`Error::Conflict`] with the current version if someone wrote it
    /// meanwhile.
    pub fn update(&self, id: &str, version: u64, value: &T) -> Result<Record<T>, Error> {
        self.write(id, value, Some(version))
    }

    /// Read the record `id`, change it with `change` (which gets `None` if
    /// it does not exist) and write it back only if nobody wrote it
    /// meanwhile — reading and retrying up to 5 times on a conflict.
    pub fn modify(
        &self,
        id: &str,
        mut change: impl FnMut(Option<T>) -> T,
    ) -> Result<Record<T>, Error> {
        let mut last = Error::Conflict(0);
        for _ in 0..5 {
            let current = self.get(id)?;
            let version = current.as_ref().map_or(0, |r| r.version);
            let next = change(current.map(|r| r.data));
            match self.update(id, version, &next) {
                Err(e @ Error::Conflict(_)) => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    fn write(&self, id: &str, value: &T, expected: Option<u64>) -> Result<Record<T>, Error> {
        let data = encode(value)?;
        let stored = raw::put(self.name, id, &data, expected)?;
        decode(self.name, stored)
    }

    /// Delete the record `id`; `false` if it did not exist.
    pub fn delete(&self, id: &str) -> Result<bool, Error> {
        Ok(raw::delete(self.name, id, None)?)
    }

    /// Delete the record `id` only if it is still at `version`.
    pub fn delete_version(&self, id: &str, version: u64) -> Result<bool, Error> {
        Ok(raw::delete(self.name, id, Some(version))?)
    }

    /// A query on this collection: conditions on indexed fields, an order,
    /// a page size and a cursor.
    pub fn query(&self) -> Query<T> {
        Query {
            collection: *self,
            conditions: Vec::new(),
            order_by: None,
            descending: false,
            limit: 50,
            cursor: None,
            bad_value: None,
        }
    }
}

/// A query on one collection, built step by step and run with
/// [`Query::fetch`] (one page) or [`Query::all`] (every page).
///
/// Conditions and the order name indexed fields (`indexes` in the
/// manifest); a query on another field is [`Error::Invalid`]. Values are
/// strings or numbers, as the index's type.
#[must_use = "a query does nothing until it is fetched"]
pub struct Query<T> {
    collection: Collection<T>,
    conditions: Vec<raw::Condition>,
    order_by: Option<String>,
    descending: bool,
    limit: u32,
    cursor: Option<String>,
    bad_value: Option<String>,
}

impl<T> Clone for Query<T> {
    fn clone(&self) -> Self {
        Query {
            collection: self.collection,
            conditions: self.conditions.clone(),
            order_by: self.order_by.clone(),
            descending: self.descending,
            limit: self.limit,
            cursor: self.cursor.clone(),
            bad_value: self.bad_value.clone(),
        }
    }
}

impl<T> fmt::Debug for Query<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("collection", &self.collection.name)
            .field("conditions", &self.conditions)
            .field("order_by", &self.order_by)
            .field("descending", &self.descending)
            .field("limit", &self.limit)
            .field("cursor", &self.cursor)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Query<T> {
    fn condition<V: Serialize + ?Sized>(mut self, field: &str, op: raw::Op, value: &V) -> Self {
        match serde_json::to_string(value) {
            Ok(value) => self.conditions.push(raw::Condition {
                field: field.to_string(),
                op,
                value,
            }),
            Err(e) => self.bad_value = Some(format!("the value for `{field}` is not JSON: {e}")),
        }
        self
    }

    /// Only records whose `field` equals `value`.
    pub fn eq<V: Serialize + ?Sized>(self, field: &str, value: &V) -> Self {
        self.condition(field, raw::Op::Eq, value)
    }

    /// Only records whose `field` is less than `value`.
    pub fn lt<V: Serialize + ?Sized>(self, field: &str, value: &V) -> Self {
        self.condition(field, raw::Op::Lt, value)
    }

    /// Only records whose `field` is at most `value`.
    pub fn lte<V: Serialize + ?Sized>(self, field: &str, value: &V) -> Self {
        self.condition(field, raw::Op::Lte, value)
    }

    /// Only records whose `field` is greater than `value`.
    pub fn gt<V: Serialize + ?Sized>(self, field: &str, value: &V) -> Self {
        self.condition(field, raw::Op::Gt, value)
    }

    /// Only records whose `field` is at least `value`.
    pub fn gte<V: Serialize + ?Sized>(self, field: &str, value: &V) -> Self {
        self.condition(field, raw::Op::Gte, value)
    }

    /// Order by an indexed field (by record id without it).
    pub fn order_by(mut self, field: &str) -> Self {
        self.order_by = Some(field.to_string());
        self
    }

    /// Reverse the order.
    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }

    /// Records per page, 1 to 500 (50 unless set).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Continue after a previous page: its [`Page::next_cursor`].
    pub fn after(mut self, cursor: &str) -> Self {
        self.cursor = Some(cursor.to_string());
        self
    }

    /// One page of records.
    pub fn fetch(&self) -> Result<Page<T>, Error> {
        if let Some(e) = &self.bad_value {
            return Err(Error::Invalid(e.clone()));
        }
        let name = self.collection.name;
        let page = raw::query(&raw::QuerySpec {
            collection: name.to_string(),
            conditions: self.conditions.clone(),
            order_by: self.order_by.clone(),
            descending: self.descending,
            limit: self.limit,
            cursor: self.cursor.clone(),
        })?;
        Ok(Page {
            records: page
                .records
                .into_iter()
                .map(|r| decode(name, r))
                .collect::<Result<_, _>>()?,
            next_cursor: page.next_cursor,
        })
    }

    /// Every matching record, following the cursor page by page. Meant for
    /// collections known to be small; page with [`Query::fetch`] otherwise.
    pub fn all(&self) -> Result<Vec<Record<T>>, Error> {
        let mut query = self.clone();
        let mut out = Vec::new();
        loop {
            let page = query.fetch()?;
            out.extend(page.records);
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(out),
            }
        }
    }
}

/// One page of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The records, in the query's order.
    pub records: Vec<Record<T>>,
    /// Where the next page starts ([`Query::after`]); `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Writes to several records (of any collections) that happen all or none.
///
/// ```no_run
/// use kontor_sdk::records::{Batch, Collection};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Invoice { total: u64 }
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Counter { n: u64 }
/// const INVOICES: Collection<Invoice> = Collection::new("invoices");
/// const COUNTERS: Collection<Counter> = Collection::new("counters");
/// # fn main() -> Result<(), kontor_sdk::records::Error> {
/// Batch::new()
///     .insert(&INVOICES, "2024-1", &Invoice { total: 100 })
///     .update(&COUNTERS, "invoices", 7, &Counter { n: 8 })
///     .commit()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
#[must_use = "a batch does nothing until it is committed"]
pub struct Batch {
    ops: Vec<raw::BatchOp>,
    bad_value: Option<String>,
}

impl Batch {
    /// No operations yet.
    pub fn new() -> Self {
        Batch::default()
    }

    fn write<T: Serialize>(
        mut self,
        collection: &Collection<T>,
        id: &str,
        value: &T,
        expected: Option<u64>,
    ) -> Self {
        match encode(value) {
            Ok(data) => self.ops.push(raw::BatchOp::Put((
                collection.name.to_string(),
                id.to_string(),
                data,
                expected,
            ))),
            Err(e) => self.bad_value = Some(e.to_string()),
        }
        self
    }

    /// Write `id`, whatever is stored.
    pub fn put<T: Serialize>(self, collection: &Collection<T>, id: &str, value: &T) -> Self {
        self.write(collection, id, value, None)
    }

    /// Write `id` only if it does not exist yet.
    pub fn insert<T: Serialize>(self, collection: &Collection<T>, id: &str, value: &T) -> Self {
        self.write(collection, id, value, Some(0))
    }

    /// Write `id` only if it is still at `version`.
    pub fn update<T: Serialize>(
        self,
        collection: &Collection<T>,
        id: &str,
        version: u64,
        value: &T,
    ) -> Self {
        self.write(collection, id, value, Some(version))
    }

    /// Delete `id` (`version`: only if it is still at that version).
    pub fn delete<T>(mut self, collection: &Collection<T>, id: &str, version: Option<u64>) -> Self {
        self.ops.push(raw::BatchOp::Delete((
            collection.name.to_string(),
            id.to_string(),
            version,
        )));
        self
    }

    /// Run every operation, or none if one fails (a conflict names the
    /// current version). Returns, per operation in order, the version the
    /// write stored, or `None` for a delete.
    pub fn commit(self) -> Result<Vec<Option<u64>>, Error> {
        if let Some(e) = self.bad_value {
            return Err(Error::Invalid(e));
        }
        let written = raw::batch(&self.ops)?;
        Ok(written.into_iter().map(|r| r.map(|r| r.version)).collect())
    }
}

/// The next number of the gap-free sequence `name` (1, 2, 3...), per
/// tenant: invoice and ticket numbers. Sequences need no declaration.
pub fn next_sequence(name: &str) -> Result<u64, Error> {
    Ok(raw::next_sequence(name)?)
}
