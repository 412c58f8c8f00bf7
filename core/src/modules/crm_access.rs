//! The `crm` capability: the core CRM as a module sees it.
//!
//! Every call goes through the CRM's own functions with a [`Principal`], so
//! a module sees exactly what its caller may see — a reseller their
//! customers, a portal user their own record, nobody another tenant's. With
//! no user (events, jobs, filters) the module acts as the tenant's system
//! principal ([`system_principal`]), which reads every customer of the
//! tenant and writes notes and customers without an author or actor: the
//! timeline names the module as their source. Errors reach the guest with a
//! kind it can act on; database failures are logged here with an id, never
//! handed to the module.

use kontor_runtime::host::{
    Contact, CrmError, Customer, CustomerPage, CustomerQuery, NewCustomer, TimelineEntry, User,
};
use serde_json::Value;

use crate::auth::Principal;
use crate::crm::{contacts, customers, notes, timeline};
use crate::db::Db;
use crate::error::{Code, Error};
use crate::ids::{CustomerId, TenantId};
use crate::license::LimitKind;

use super::host::ModuleHost;

/// What a module may do for the tenant when no user called it: read
/// customers (with contacts) and users, create customers, write timeline
/// entries and notes. Nothing else: deleting, exporting or changing
/// customers is not part of the capability.
pub const SYSTEM_PERMISSIONS: &[&str] = &["customers.read", "customers.write", "users.read"];

/// The principal of a module running for `tenant` with no user.
pub fn system_principal(tenant: &TenantId, module_id: &str) -> Principal {
    Principal::system(
        tenant.clone(),
        &format!("module {module_id}"),
        SYSTEM_PERMISSIONS,
    )
}

/// The core's error as the guest sees it.
fn error_out(module_id: &str, e: Error) -> CrmError {
    let message = e.to_string();
    match e.code() {
        Code::Forbidden | Code::LicenseLimitReached => CrmError::Forbidden(message),
        Code::NotFound => CrmError::NotFound(message),
        Code::ValidationFailed | Code::InvalidBody | Code::BadRequest => CrmError::Invalid(message),
        // Named like a validation error, so the module knows which field.
        Code::EmailTaken => CrmError::Invalid(format!("email: {message}")),
        _ => {
            let error_id = uuid::Uuid::new_v4().simple().to_string();
            tracing::error!(module = %module_id, error_id = %error_id, error = %e, "crm call of a module failed");
            CrmError::Internal(format!(
                "the host could not complete the call; reference {error_id} in the server log"
            ))
        }
    }
}

/// RFC 3339 (as the CRM's API types carry it) back to Unix ms.
fn ms(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(crate::clock::to_ms)
        .unwrap_or_default()
}

fn customer_out(c: customers::Customer) -> Customer {
    Customer {
        created_at: ms(&c.created_at),
        updated_at: ms(&c.updated_at),
        id: c.id,
        company: c.company,
        contact_name: c.contact_name,
        display_name: c.display_name,
        email: c.email,
        phone: c.phone,
        street: c.street,
        postal_code: c.postal_code,
        city: c.city,
        region: c.region,
        country: c.country,
        tags: c.tags,
        custom_fields: Value::Object(c.custom_fields).to_string(),
        status: c.status,
        reseller_id: c.reseller_id,
    }
}

/// One customer `who` may see; `None` when it does not exist or is hidden.
pub async fn customer(
    db: &Db,
    who: &Principal,
    module_id: &str,
    id: &str,
) -> Result<Option<Customer>, CrmError> {
    match customers::get(db, who, &CustomerId::from_path(id)).await {
        Ok(c) => Ok(Some(customer_out(c))),
        Err(e) if e.code() == Code::NotFound => Ok(None),
        Err(e) => Err(error_out(module_id, e)),
    }
}

/// A page of the customers `who` may see.
pub async fn customer_page(
    db: &Db,
    who: &Principal,
    module_id: &str,
    q: CustomerQuery,
) -> Result<CustomerPage, CrmError> {
    let query = customers::ListQuery {
        q: q.search,
        status: q.status,
        limit: Some(i64::from(q.limit)),
        cursor: q.cursor,
    };
    let page = customers::list(db, who, &query)
        .await
        .map_err(|e| error_out(module_id, e))?;
    Ok(CustomerPage {
        customers: page.items.into_iter().map(customer_out).collect(),
        next_cursor: page.next_cursor,
    })
}

/// The contacts of a customer `who` may see.
pub async fn contact_list(
    db: &Db,
    who: &Principal,
    module_id: &str,
    customer_id: &str,
) -> Result<Vec<Contact>, CrmError> {
    let list = contacts::list(db, who, &CustomerId::from_path(customer_id))
        .await
        .map_err(|e| error_out(module_id, e))?;
    Ok(list
        .into_iter()
        .map(|c| Contact {
            id: c.id,
            customer_id: c.customer_id,
            name: c.name,
            email: c.email,
            phone: c.phone,
            position: c.position,
            is_primary: c.is_primary,
        })
        .collect())
}

/// The users of the tenant, if `who` may see them (`users.read`).
pub async fn user_list(db: &Db, who: &Principal, module_id: &str) -> Result<Vec<User>, CrmError> {
    who.require("users.read")
        .map_err(|e| error_out(module_id, e))?;
    let list = crate::auth::users::list(db, &who.tenant_id)
        .await
        .map_err(|e| error_out(module_id, e))?;
    Ok(list
        .into_iter()
        .map(|u| User {
            active: u.status == "active",
            id: u.id,
            name: u.name,
            email: u.email,
            role: u.role.as_str().to_string(),
        })
        .collect())
}

/// Check a module's timeline entry: a dotted lower-case kind, a summary of
/// one line, a JSON object of facts.
fn check_entry(e: &TimelineEntry) -> Result<Value, Error> {
    let kind_ok = (1..=64).contains(&e.kind.len())
        && e.kind.starts_with(|c: char| c.is_ascii_lowercase())
        && e.kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_');
    if !kind_ok {
        return Err(Error::invalid(
            "kind",
            "1 to 64 lower-case letters, digits, `.` and `_`, like `invoice.paid`",
        ));
    }
    let summary = e.summary.trim();
    if summary.is_empty() || summary.chars().count() > 500 || summary.contains('\n') {
        return Err(Error::invalid("summary", "one line of 1 to 500 characters"));
    }
    if e.data.len() > 16 * 1024 {
        return Err(Error::invalid("data", "at most 16 KiB of JSON"));
    }
    let data: Value = if e.data.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(&e.data).map_err(|_| Error::invalid("data", "not JSON"))?
    };
    if !data.is_object() {
        return Err(Error::invalid("data", "must be a JSON object"));
    }
    Ok(data)
}

/// Write a timeline entry with the module as its source and `{module}.{kind}`
/// as its kind (so a module's entries never pass for the core's); the
/// calling user, if any, is its actor.
pub async fn add_timeline_entry(
    db: &Db,
    who: &Principal,
    module_id: &str,
    entry: TimelineEntry,
    now: i64,
) -> Result<String, CrmError> {
    let data = check_entry(&entry).map_err(|e| error_out(module_id, e))?;
    let kind = format!("{module_id}.{}", entry.kind);
    timeline::add(
        db,
        who,
        &CustomerId::from_path(&entry.customer_id),
        timeline::Entry {
            source: module_id,
            kind: &kind,
            summary: entry.summary.trim().to_string(),
            data,
            actor_id: who.user().map(|u| u.to_string()),
        },
        now,
    )
    .await
    .map_err(|e| error_out(module_id, e))
}

/// Add a note to a customer, recorded on the timeline as coming from the module.
pub async fn add_note(
    db: &Db,
    who: &Principal,
    module_id: &str,
    customer_id: &str,
    body: &str,
    now: i64,
) -> Result<String, CrmError> {
    let input = notes::NoteInput {
        body: body.to_string(),
    };
    notes::create_from(
        db,
        who,
        &CustomerId::from_path(customer_id),
        &input,
        module_id,
        now,
    )
    .await
    .map(|n| n.id)
    .map_err(|e| error_out(module_id, e))
}

/// Create a customer as `who`, the way the API does: the
/// `customer.before_save` filters of `host`, the license's customer quota,
/// the CRM's validation, `customer.created` and a timeline entry with the
/// module as its source.
pub async fn create_customer(
    db: &Db,
    host: &ModuleHost,
    who: &Principal,
    module_id: &str,
    new: NewCustomer,
    now: i64,
) -> Result<Customer, CrmError> {
    let input = customers::CustomerInput {
        company: Some(new.company),
        contact_name: Some(new.contact_name),
        email: Some(new.email),
        phone: Some(new.phone),
        tags: Some(new.tags),
        ..Default::default()
    };
    let created = async {
        // Refused before the filters see anything the caller may not write.
        who.require("customers.write")?;
        let input =
            super::filters::customer_before_save(db, host, &who.tenant_id, None, input, now)
                .await?;
        let quota = host
            .licensing()
            .quota(db, LimitKind::Customers, now)
            .await?;
        customers::create_from(db, who, &input, &quota, module_id, now).await
    };
    created
        .await
        .map(customer_out)
        .map_err(|e| error_out(module_id, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, summary: &str, data: &str) -> TimelineEntry {
        TimelineEntry {
            customer_id: "c".into(),
            kind: kind.into(),
            summary: summary.into(),
            data: data.into(),
        }
    }

    #[test]
    fn module_timeline_entries_are_checked_field_by_field() {
        assert!(check_entry(&entry("invoice.paid", "Paid", "{\"n\":1}")).is_ok());
        assert!(check_entry(&entry("invoice.paid", "Paid", "")).is_ok());
        for (e, field) in [
            (entry("Invoice Paid", "x", "{}"), "kind"),
            (entry("", "x", "{}"), "kind"),
            (entry("a", " ", "{}"), "summary"),
            (entry("a", "two\nlines", "{}"), "summary"),
            (entry("a", "x", "[1]"), "data"),
            (entry("a", "x", "nope"), "data"),
        ] {
            let err = check_entry(&e).unwrap_err();
            assert!(err.to_string().starts_with(field), "{err}");
        }
        let p = system_principal(&TenantId::from_trusted("t"), "billing");
        assert!(p.is_system() && p.user().is_none());
        assert!(p.can("customers.read") && !p.can("customers.delete"));
        assert!(p.can("customers.write"), "what creating a customer needs");
    }
}
