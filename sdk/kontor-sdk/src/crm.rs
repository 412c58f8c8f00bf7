//! The tenant's CRM: customers, contacts, users; timeline entries, notes
//! and new customers.
//!
//! Needs `capabilities = ["crm"]` in `module.toml`. In a route or page the
//! module sees exactly what the calling user may see (a reseller their
//! customers, a portal user their own record); in an event, job or filter
//! there is no user and the module acts for the tenant.
//!
//! ```ignore
//! use kontor_sdk::crm;
//! let page = crm::customers(&crm::CustomerQuery::search("acme").limit(20))?;
//! for c in page.customers {
//!     crm::add_timeline_entry(&c.id, "report.sent", "Monthly report sent", &serde_json::json!({}))?;
//! }
//! ```

use crate::bindings::kontor::module::crm as raw;

/// The contract's types; [`Error`] prints (`Display`) with its kind and message.
pub use raw::{Contact, Customer, CustomerPage, Error, NewCustomer, User};

/// Which customers to list: a builder over the contract's query.
#[derive(Debug, Clone)]
pub struct CustomerQuery(raw::CustomerQuery);

impl Default for CustomerQuery {
    fn default() -> Self {
        CustomerQuery(raw::CustomerQuery {
            search: None,
            status: None,
            limit: 50,
            cursor: None,
        })
    }
}

impl CustomerQuery {
    /// Every customer, 50 per page.
    pub fn all() -> Self {
        Self::default()
    }

    /// Customers whose name, e-mail, phone or city contain `text`.
    pub fn search(text: &str) -> Self {
        let mut q = Self::default();
        q.0.search = Some(text.to_string());
        q
    }

    /// Only `active` or only `archived` customers.
    pub fn status(mut self, status: &str) -> Self {
        self.0.status = Some(status.to_string());
        self
    }

    /// Page size, 1 to 200.
    pub fn limit(mut self, limit: u32) -> Self {
        self.0.limit = limit;
        self
    }

    /// Continue after a previous page (its `next_cursor`).
    pub fn after(mut self, cursor: &str) -> Self {
        self.0.cursor = Some(cursor.to_string());
        self
    }
}

/// One customer, or `None` if it does not exist or the caller may not see it.
pub fn customer(id: &str) -> Result<Option<Customer>, Error> {
    raw::get_customer(id)
}

/// A page of customers, by name.
pub fn customers(query: &CustomerQuery) -> Result<CustomerPage, Error> {
    raw::list_customers(&query.0)
}

/// The contacts of a customer, primary first.
pub fn contacts(customer_id: &str) -> Result<Vec<Contact>, Error> {
    raw::list_contacts(customer_id)
}

/// The users of the tenant (a calling user needs `users.read`).
pub fn users() -> Result<Vec<User>, Error> {
    raw::list_users()
}

/// Write an entry on a customer's timeline: `kind` without the module
/// prefix (`invoice.paid`), one line for people, facts as a JSON object.
/// Returns the entry's id.
pub fn add_timeline_entry(
    customer_id: &str,
    kind: &str,
    summary: &str,
    data: &serde_json::Value,
) -> Result<String, Error> {
    raw::add_timeline_entry(&raw::TimelineEntry {
        customer_id: customer_id.to_string(),
        kind: kind.to_string(),
        summary: summary.to_string(),
        data: data.to_string(),
    })
}

/// Add a note to a customer (a calling user needs `customers.write`).
/// Returns the note's id.
pub fn add_note(customer_id: &str, body: &str) -> Result<String, Error> {
    raw::add_note(customer_id, body)
}

/// Create a customer and return it as stored: the CRM checks it as it checks
/// one created through the API (a company or a contact name; `Invalid`
/// names the field, also for an e-mail another customer uses), modules'
/// `customer.before_save` filters may change or refuse it, and
/// `customer.created` is published. A calling user needs `customers.write`;
/// in an event, job or signed inbound route the module creates it for the
/// tenant, and the customer's timeline names the module as its source.
///
/// ```ignore
/// let c = crm::create_customer(&crm::NewCustomer {
///     company: Some("ACME AG".into()),
///     contact_name: None,
///     email: Some("support@acme.example".into()),
///     phone: None,
///     tags: vec!["ticket".into()],
/// })?;
/// ```
pub fn create_customer(new: &NewCustomer) -> Result<Customer, Error> {
    raw::create_customer(new)
}

/// A route answers a CRM refusal in the host's error shape: `denied` (the
/// capability is missing) and `forbidden` are 403, `not_found` 404,
/// `invalid` 422 `validation_failed`, `internal` 500.
impl From<Error> for crate::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Denied(m) => crate::Error::new(403, "denied", m),
            Error::Forbidden(m) => crate::Error::forbidden(m),
            Error::NotFound(m) => crate::Error::not_found(m),
            Error::Invalid(m) => crate::Error::new(422, "validation_failed", m),
            Error::Internal(m) => crate::Error::internal(m),
        }
    }
}
