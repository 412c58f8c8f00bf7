//! The capabilities a module imports, as one trait the embedding host
//! implements for each call.
//!
//! Every method works on the tenant and module the host bound when it
//! created the value; none takes a tenant. Whether the module may use a
//! capability at all (`secrets`, `crm`, outbound `http`) is the
//! implementation's decision, made per call; the runtime links every
//! interface (`wasi:http` too), so a module that asks
//! for something it was not granted gets an error it can report, never a
//! linker failure. The types here are independent
//! of the contract version: each [`crate::api`] version converts its own
//! generated types to and from these, so the host implements them once.

use std::sync::Arc;

use async_trait::async_trait;

pub mod crm;
pub mod http;
pub(crate) mod http_send;

pub use crm::{
    Contact, CrmError, Customer, CustomerPage, CustomerQuery, NewCustomer, TimelineEntry, User,
};
pub use http::{HostPattern, OutboundLimits, OutboundPolicy};

/// Log level of a guest log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Debugging.
    Debug,
    /// Normal.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Id within its collection.
    pub id: String,
    /// Grows with every write, starting at 1.
    pub version: u64,
    /// JSON object.
    pub data: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// Why a record operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The collection is not declared in the manifest.
    UnknownCollection(String),
    /// The expected version did not match; the current version (0: absent).
    Conflict(u64),
    /// Bad input.
    Invalid(String),
    /// The quota is used up.
    QuotaExceeded(String),
    /// The module is read-only for the tenant: writes are refused.
    ReadOnly(String),
    /// The host failed.
    Internal(String),
}

/// Comparison in a query condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

/// A condition on an indexed field.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Indexed field name.
    pub field: String,
    /// Comparison.
    pub op: Op,
    /// JSON value (string or number).
    pub value: String,
}

/// A query on one collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Collection.
    pub collection: String,
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// Indexed field to order by; `None` orders by id.
    pub order_by: Option<String>,
    /// Reverse order.
    pub descending: bool,
    /// Page size, 1 to 500.
    pub limit: u32,
    /// From a previous page.
    pub cursor: Option<String>,
}

/// One page of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage {
    /// The records.
    pub records: Vec<Record>,
    /// For the next page.
    pub next_cursor: Option<String>,
}

/// One operation of an atomic batch.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchOp {
    /// Write a record.
    Put {
        /// Collection.
        collection: String,
        /// Id.
        id: String,
        /// JSON object.
        data: String,
        /// Optimistic concurrency check.
        expected_version: Option<u64>,
    },
    /// Delete a record.
    Delete {
        /// Collection.
        collection: String,
        /// Id.
        id: String,
        /// Optimistic concurrency check.
        expected_version: Option<u64>,
    },
}

/// What the host offers a module during one call.
#[async_trait]
pub trait Capabilities: Send + Sync {
    /// A guest log line.
    fn log(&self, level: LogLevel, message: &str);
    /// Read a record.
    async fn record_get(&self, collection: &str, id: &str) -> Result<Option<Record>, RecordError>;
    /// Write a record.
    async fn record_put(
        &self,
        collection: &str,
        id: &str,
        data: &str,
        expected_version: Option<u64>,
    ) -> Result<Record, RecordError>;
    /// Delete a record.
    async fn record_delete(
        &self,
        collection: &str,
        id: &str,
        expected_version: Option<u64>,
    ) -> Result<bool, RecordError>;
    /// Query a collection.
    async fn record_query(&self, query: Query) -> Result<QueryPage, RecordError>;
    /// Run operations atomically.
    async fn record_batch(&self, ops: Vec<BatchOp>) -> Result<Vec<Option<Record>>, RecordError>;
    /// Next number of a gap-free sequence.
    async fn next_sequence(&self, name: &str) -> Result<u64, RecordError>;
    /// Emit `{module-id}.{name}`.
    async fn emit_event(&self, name: &str, payload: &str) -> Result<(), String>;
    /// A setting of the module, as JSON.
    async fn setting(&self, key: &str) -> Option<String>;
    /// A secret of the module (`secrets` capability); the error never holds
    /// a secret value.
    async fn secret(&self, name: &str) -> Result<Option<String>, String>;
    /// One customer the caller may see (`crm` capability).
    async fn crm_customer(&self, id: &str) -> Result<Option<Customer>, CrmError>;
    /// A page of customers the caller may see.
    async fn crm_customers(&self, query: CustomerQuery) -> Result<CustomerPage, CrmError>;
    /// The contacts of a customer the caller may see.
    async fn crm_contacts(&self, customer_id: &str) -> Result<Vec<Contact>, CrmError>;
    /// The users of the tenant.
    async fn crm_users(&self) -> Result<Vec<User>, CrmError>;
    /// Write a timeline entry; its id.
    async fn crm_add_timeline_entry(&self, entry: TimelineEntry) -> Result<String, CrmError>;
    /// Add a note to a customer; its id.
    async fn crm_add_note(&self, customer_id: &str, body: &str) -> Result<String, CrmError>;
    /// Create a customer (`crm` capability, `customers.write` for a calling
    /// user). By default a call creates none.
    async fn crm_create_customer(&self, customer: NewCustomer) -> Result<Customer, CrmError> {
        let _ = customer;
        Err(no_crm())
    }
    /// The outbound HTTP policy of the call (`http` capability), asked
    /// before every `wasi:http` request; `Err` refuses the request with that
    /// reason. By default a call sends nothing.
    async fn outbound_http(&self) -> Result<Arc<OutboundPolicy>, String> {
        Err("no outbound HTTP in this call".into())
    }
    /// Queue an e-mail from one of the module's templates (`notify`
    /// capability); its Message-ID. By default a call sends nothing.
    async fn notify_send(&self, email: Email) -> Result<String, NotifyError> {
        let _ = email;
        Err(NotifyError::Denied("no e-mail in this call".into()))
    }
    /// Now, as Unix milliseconds: the guest's wall clock
    /// (`wasi:clocks/wall-clock`, so `SystemTime::now()` in a module), the
    /// same clock the host stamps records and runs schedules with — tests
    /// move it. `None` (the default): the machine's clock.
    fn now_ms(&self) -> Option<i64> {
        None
    }
}

/// An e-mail a module asks the host to send (`notify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Recipient addresses.
    pub to: Vec<String>,
    /// A template the manifest declares.
    pub template: String,
    /// JSON object: the template's variables.
    pub data: String,
    /// Where replies go.
    pub reply_to: Option<String>,
    /// The Message-ID this message answers.
    pub in_reply_to: Option<String>,
}

/// Why an e-mail was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyError {
    /// Capability not declared or not accepted.
    Denied(String),
    /// Bad input; the message names it.
    Invalid(String),
    /// The host failed.
    Internal(String),
}

/// Capabilities that refuse everything: for calls that must not touch
/// data (tests, validation runs).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCapabilities;

#[async_trait]
impl Capabilities for NoCapabilities {
    fn log(&self, level: LogLevel, message: &str) {
        tracing::debug!(?level, message, "guest log");
    }
    async fn record_get(&self, collection: &str, _: &str) -> Result<Option<Record>, RecordError> {
        Err(RecordError::UnknownCollection(collection.to_string()))
    }
    async fn record_put(
        &self,
        collection: &str,
        _: &str,
        _: &str,
        _: Option<u64>,
    ) -> Result<Record, RecordError> {
        Err(RecordError::UnknownCollection(collection.to_string()))
    }
    async fn record_delete(
        &self,
        collection: &str,
        _: &str,
        _: Option<u64>,
    ) -> Result<bool, RecordError> {
        Err(RecordError::UnknownCollection(collection.to_string()))
    }
    async fn record_query(&self, query: Query) -> Result<QueryPage, RecordError> {
        Err(RecordError::UnknownCollection(query.collection))
    }
    async fn record_batch(&self, _: Vec<BatchOp>) -> Result<Vec<Option<Record>>, RecordError> {
        Err(RecordError::Invalid("no record store in this call".into()))
    }
    async fn next_sequence(&self, _: &str) -> Result<u64, RecordError> {
        Err(RecordError::Invalid("no record store in this call".into()))
    }
    async fn emit_event(&self, _: &str, _: &str) -> Result<(), String> {
        Err("events cannot be emitted in this call".into())
    }
    async fn setting(&self, _: &str) -> Option<String> {
        None
    }
    async fn secret(&self, _: &str) -> Result<Option<String>, String> {
        Err("no secrets in this call".into())
    }
    async fn crm_customer(&self, _: &str) -> Result<Option<Customer>, CrmError> {
        Err(no_crm())
    }
    async fn crm_customers(&self, _: CustomerQuery) -> Result<CustomerPage, CrmError> {
        Err(no_crm())
    }
    async fn crm_contacts(&self, _: &str) -> Result<Vec<Contact>, CrmError> {
        Err(no_crm())
    }
    async fn crm_users(&self) -> Result<Vec<User>, CrmError> {
        Err(no_crm())
    }
    async fn crm_add_timeline_entry(&self, _: TimelineEntry) -> Result<String, CrmError> {
        Err(no_crm())
    }
    async fn crm_add_note(&self, _: &str, _: &str) -> Result<String, CrmError> {
        Err(no_crm())
    }
}

fn no_crm() -> CrmError {
    CrmError::Denied("no CRM access in this call".into())
}
