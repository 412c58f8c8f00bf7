//! E-mail in: `POST /api/v1/hooks/{tenant}/tickets/inbound`, a message a
//! mail gateway parsed, signed with the `inbound_secret` (the host checks
//! the signature before the module sees the request).
//!
//! The message goes to the department whose address it was sent to (else
//! the default department). It continues a ticket when its references
//! name a message of that ticket, or its subject quotes the number of a
//! ticket of the sender's customer; otherwise it opens a new ticket. A
//! sender no customer has becomes a new customer tagged `lead`, or is
//! refused, as the department says. A message seen before (the gateway
//! retried) is acknowledged and not added twice.

use kontor_sdk::crm::{self, CustomerQuery};
use kontor_sdk::{Error, Json, Request};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::service::{self, NewMessage, NewTicket};
use crate::sla::Status;
use crate::store::{self, MESSAGES, TICKETS};
use crate::threading::{self, Headers, Lookup, Thread};
use crate::who::Who;

/// A parsed inbound message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inbound {
    /// `Ada Lovelace <ada@example.com>` or `ada@example.com`.
    pub from: String,
    /// The address it was sent to (a department's).
    #[serde(default)]
    pub to: Option<String>,
    /// `Subject`.
    pub subject: String,
    /// The plain text body.
    pub body: String,
    /// `Message-ID`.
    #[serde(default)]
    pub message_id: Option<String>,
    /// `In-Reply-To`.
    #[serde(default)]
    pub in_reply_to: Option<String>,
    /// `References`.
    #[serde(default)]
    pub references: Option<String>,
}

/// `("Ada Lovelace", "ada@example.com")` from a `From` header value; the
/// address lower-cased.
pub fn parse_from(from: &str) -> Option<(String, String)> {
    let from = from.trim();
    let (name, address) = match (from.rfind('<'), from.rfind('>')) {
        (Some(l), Some(r)) if l < r => (
            from[..l].trim().trim_matches('"').trim().to_string(),
            from[l + 1..r].trim(),
        ),
        _ => (String::new(), from),
    };
    let (local, domain) = address.split_once('@')?;
    if local.is_empty() || !domain.contains('.') || address.contains(char::is_whitespace) {
        return None;
    }
    Some((name, address.to_ascii_lowercase()))
}

/// The desk's messages and tickets, as threading looks them up.
struct Desk;

impl Lookup for Desk {
    fn ticket_by_message_id(&self, message_id: &str) -> Option<String> {
        MESSAGES
            .query()
            .eq("email_message_id", message_id)
            .limit(1)
            .fetch()
            .ok()?
            .records
            .into_iter()
            .next()
            .map(|m| m.data.ticket_id)
    }

    fn ticket_by_number(&self, number: &str) -> Option<(String, String)> {
        TICKETS
            .get(number)
            .ok()
            .flatten()
            .map(|t| (t.id, t.data.customer_id))
    }
}

/// The customer whose e-mail address is `address`.
fn customer_by_email(address: &str) -> Result<Option<crm::Customer>, Error> {
    let page = crm::customers(&CustomerQuery::search(address).limit(20))?;
    Ok(page.customers.into_iter().find(|c| {
        c.email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(address))
    }))
}

/// The department the message was sent to.
fn department_for(to: Option<&str>) -> Result<(String, store::Department), Error> {
    if let Some((_, address)) = to.and_then(parse_from) {
        let found = store::DEPARTMENTS
            .query()
            .eq("email", &address)
            .limit(1)
            .fetch()?;
        if let Some(d) = found.records.into_iter().next() {
            return Ok((d.id, d.data));
        }
    }
    let id =
        kontor_sdk::settings::get_or("default_department", store::DEFAULT_DEPARTMENT.to_string());
    let d = store::department(&id)?;
    Ok((d.id, d.data))
}

/// `POST /inbound`.
pub fn receive(req: Request) -> Result<(u16, Json<Value>), Error> {
    let mail: Inbound = req.json()?;
    let (name, address) = parse_from(&mail.from)
        .ok_or_else(|| Error::invalid("from", format!("`{}` is not an address", mail.from)))?;
    if let Some(id) = &mail.message_id {
        if let Some(ticket) = Desk.ticket_by_message_id(id) {
            return Ok((200, Json(json!({ "ticket": ticket, "duplicate": true }))));
        }
    }
    let (department_id, department) = department_for(mail.to.as_deref())?;
    let customer = customer_by_email(&address)?;
    let headers = Headers {
        subject: &mail.subject,
        in_reply_to: mail.in_reply_to.as_deref(),
        references: mail.references.as_deref(),
    };
    let place = threading::place(&headers, customer.as_ref().map(|c| c.id.as_str()), &Desk);
    if let Thread::Existing(id) = place {
        let ticket = service::visible(None, &id)?.data;
        if ticket.status() != Status::Closed {
            let sender = Who::Sender {
                customer_id: ticket.customer_id.clone(),
                name: if name.is_empty() {
                    address.clone()
                } else {
                    name.clone()
                },
            };
            let new = NewMessage {
                body: mail.body.clone(),
                internal: false,
                status: None,
            };
            let (ticket, _) = service::reply(&sender, &id, new, mail.message_id.as_deref())?;
            return Ok((
                200,
                Json(json!({ "ticket": ticket.id, "threaded": true, "created_customer": false })),
            ));
        }
        // A closed ticket is not reopened: the message starts a new one.
    }
    let (customer_id, customer_name, created) = match customer {
        Some(c) => (c.id, c.display_name, false),
        None if department.unknown_senders == "reject" => {
            return Err(Error::new(
                422,
                "unknown_sender",
                format!(
                    "no customer has the address {address}, and department `{department_id}` takes e-mail from customers only"
                ),
            ));
        }
        None => {
            let lead = crm::create_customer(&crm::NewCustomer {
                company: None,
                contact_name: Some(if name.is_empty() {
                    address.clone()
                } else {
                    name.clone()
                }),
                email: Some(address.clone()),
                phone: None,
                tags: vec!["lead".into()],
            })?;
            (lead.id, lead.display_name, true)
        }
    };
    let sender = Who::Sender {
        customer_id,
        name: customer_name,
    };
    let subject = match mail.subject.trim() {
        "" => "(no subject)".to_string(),
        s => s.chars().take(service::MAX_SUBJECT).collect(),
    };
    let new = NewTicket {
        subject,
        body: mail.body,
        department_id: Some(department_id),
        ..NewTicket::default()
    };
    let (ticket, _) = service::open(&sender, new, mail.message_id.as_deref())?;
    Ok((
        201,
        Json(json!({ "ticket": ticket.id, "threaded": false, "created_customer": created })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_headers_parse_with_and_without_a_name() {
        assert_eq!(
            parse_from("\"Ada Lovelace\" <Ada@Example.com>"),
            Some(("Ada Lovelace".into(), "ada@example.com".into()))
        );
        assert_eq!(
            parse_from("grace@example.org"),
            Some((String::new(), "grace@example.org".into()))
        );
        assert_eq!(parse_from("nobody"), None);
        assert_eq!(parse_from("a b@example.com"), None);
    }
}
