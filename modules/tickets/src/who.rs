//! Who is asking: staff, a portal customer, or the desk itself (an inbound
//! e-mail, the escalation job).

use kontor_sdk::crm::{self, CustomerQuery};
use kontor_sdk::{Error, Request};

use crate::ticket::Actor;

/// The caller of a route or page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// An owner, administrator or staff user.
    Staff {
        /// User id.
        user_id: String,
    },
    /// A portal user of this customer.
    Customer {
        /// User id.
        user_id: String,
        /// The CRM customer they belong to.
        customer_id: String,
        /// How the thread shows them.
        name: String,
    },
    /// An e-mail from a customer's address (no user signed in).
    Sender {
        /// The customer the address belongs to.
        customer_id: String,
        /// How the thread shows them.
        name: String,
    },
}

impl Who {
    /// The caller of `req`. A portal user's customer is the one customer
    /// the CRM shows them; resellers do not work tickets (yet).
    pub fn of(req: &Request) -> Result<Who, Error> {
        let p = req
            .principal()
            .ok_or_else(|| Error::forbidden("sign in to use the support desk"))?;
        match p.role.as_str() {
            "owner" | "admin" | "staff" => Ok(Who::Staff {
                user_id: p.user_id.clone(),
            }),
            "customer" => {
                // The CRM shows a portal user exactly their own customer.
                let page = crm::customers(&CustomerQuery::all().limit(2))?;
                match page.customers.as_slice() {
                    [c] => Ok(Who::Customer {
                        user_id: p.user_id.clone(),
                        customer_id: c.id.clone(),
                        name: c.display_name.clone(),
                    }),
                    _ => Err(Error::forbidden(
                        "this portal account is not linked to a customer; ask the support team",
                    )),
                }
            }
            role => Err(Error::forbidden(format!(
                "the support desk is for staff and customers, not the {role} role"
            ))),
        }
    }

    /// As the ticket rules take it.
    pub fn actor(&self) -> Actor<'_> {
        match self {
            Who::Staff { user_id } => Actor::Staff { user_id },
            Who::Customer { customer_id, .. } | Who::Sender { customer_id, .. } => {
                Actor::Customer { customer_id }
            }
        }
    }

    /// The signed-in user, if any.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Who::Staff { user_id } | Who::Customer { user_id, .. } => Some(user_id),
            Who::Sender { .. } => None,
        }
    }

    /// Whether this is staff.
    pub fn is_staff(&self) -> bool {
        matches!(self, Who::Staff { .. })
    }

    /// How a message by this caller is signed: a staff user's name from the
    /// CRM's user list, a customer's display name.
    pub fn display_name(&self) -> String {
        match self {
            Who::Customer { name, .. } | Who::Sender { name, .. } => name.clone(),
            Who::Staff { user_id } => staff_name(user_id).unwrap_or_else(|| "Support".into()),
        }
    }
}

/// The name of staff user `id`, if the CRM lists them.
pub fn staff_name(id: &str) -> Option<String> {
    crm::users()
        .ok()?
        .into_iter()
        .find(|u| u.id == id)
        .map(|u| u.name)
}

/// The e-mail address of staff user `id`, if the CRM lists them active.
pub fn staff_email(id: &str) -> Option<String> {
    crm::users()
        .ok()?
        .into_iter()
        .find(|u| u.id == id && u.active)
        .map(|u| u.email)
}
