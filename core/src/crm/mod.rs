//! The CRM core: customers and what hangs off them.
//!
//! * [`customers`] — records, validation, scoped listing with keyset paging and search;
//! * [`contacts`] — people at a customer;
//! * [`notes`] — free-text notes by staff;
//! * [`timeline`] — the activity timeline (core and modules write entries);
//! * [`csv_import`] / [`csv_export`] — bulk in and out;
//! * [`gdpr`] — export of everything about a customer, and erasure.

pub mod contacts;
pub mod csv_export;
pub mod csv_import;
pub mod customers;
pub mod gdpr;
pub mod notes;
pub mod timeline;

use crate::error::{Error, Result};

/// Check an optional text field's length; the error names the field and the limit.
pub(crate) fn check_len(field: &str, value: Option<&str>, max: usize) -> Result<()> {
    if let Some(v) = value {
        if v.chars().count() > max {
            return Err(
                Error::invalid(field, format!("must be at most {max} characters")).with_details(
                    serde_json::json!({ "field": field, "reason": "too_long", "max": max }),
                ),
            );
        }
    }
    Ok(())
}

/// Trim; empty becomes `None`.
pub(crate) fn clean(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}
