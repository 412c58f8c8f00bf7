//! Types of the `crm` capability, independent of the contract version.

/// A customer as a module sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Customer {
    /// Id.
    pub id: String,
    /// Company name.
    pub company: Option<String>,
    /// Contact person.
    pub contact_name: Option<String>,
    /// Company, else contact person.
    pub display_name: String,
    /// E-mail.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Street and number.
    pub street: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Custom fields, a JSON object.
    pub custom_fields: String,
    /// `active` or `archived`.
    pub status: String,
    /// Assigned reseller.
    pub reseller_id: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// Which customers to list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerQuery {
    /// Substring search.
    pub search: Option<String>,
    /// `active` or `archived`.
    pub status: Option<String>,
    /// Page size, 1 to 200.
    pub limit: u32,
    /// From a previous page.
    pub cursor: Option<String>,
}

/// One page of customers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerPage {
    /// The customers, by name.
    pub customers: Vec<Customer>,
    /// For the next page.
    pub next_cursor: Option<String>,
}

/// A person at a customer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contact {
    /// Id.
    pub id: String,
    /// The customer.
    pub customer_id: String,
    /// Name.
    pub name: String,
    /// E-mail.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Position.
    pub position: Option<String>,
    /// The main contact.
    pub is_primary: bool,
}

/// A user of the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// E-mail.
    pub email: String,
    /// Role.
    pub role: String,
    /// Not disabled.
    pub active: bool,
}

/// A timeline entry a module writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimelineEntry {
    /// The customer.
    pub customer_id: String,
    /// What happened, without the module prefix.
    pub kind: String,
    /// One line for people.
    pub summary: String,
    /// JSON object.
    pub data: String,
}

/// A customer a module creates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewCustomer {
    /// Company name.
    pub company: Option<String>,
    /// Contact person.
    pub contact_name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
}

/// Why a CRM call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrmError {
    /// The capability is not declared or not accepted.
    Denied(String),
    /// The caller lacks a permission.
    Forbidden(String),
    /// No such customer for this caller.
    NotFound(String),
    /// Bad input.
    Invalid(String),
    /// The host failed.
    Internal(String),
}
