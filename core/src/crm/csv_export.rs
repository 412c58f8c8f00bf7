//! CSV export of customers, in the columns the import reads, so an export
//! imports again as it is. Written page by page, never the whole table in
//! memory.

use crate::auth::Principal;
use crate::db::Db;
use crate::error::Result;

use super::csv_import::COLUMNS;
use super::customers::{list, Customer, ListQuery};

/// Header of the export: `id` (ignored on import), then the import columns.
pub fn header() -> Vec<&'static str> {
    std::iter::once("id")
        .chain(COLUMNS.iter().copied())
        .collect()
}

fn record(c: &Customer) -> Vec<String> {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    vec![
        c.id.clone(),
        o(&c.company),
        o(&c.contact_name),
        o(&c.email),
        o(&c.phone),
        o(&c.street),
        o(&c.postal_code),
        o(&c.city),
        o(&c.region),
        o(&c.country),
        c.tags.join(";"),
        c.status.clone(),
        if c.custom_fields.is_empty() {
            String::new()
        } else {
            serde_json::Value::Object(c.custom_fields.clone()).to_string()
        },
    ]
}

/// Encode rows as CSV bytes (with the header when `with_header`).
pub fn encode(customers: &[Customer], with_header: bool) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if with_header {
        let _ = w.write_record(header());
    }
    for c in customers {
        let _ = w.write_record(record(c));
    }
    w.into_inner().unwrap_or_default()
}

/// The customers the principal may see, as CSV chunks sent to `tx` page by
/// page; stops early when the receiver goes away.
pub async fn stream(
    db: Db,
    who: Principal,
    status: Option<String>,
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>>>,
) {
    let mut query = ListQuery {
        status,
        limit: Some(super::customers::MAX_PAGE),
        ..Default::default()
    };
    let mut first = true;
    loop {
        let page = match list(&db, &who, &query).await {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if tx.send(Ok(encode(&page.items, first))).await.is_err() {
            return;
        }
        first = false;
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return,
        }
    }
}
