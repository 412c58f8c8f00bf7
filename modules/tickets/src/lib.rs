//! Kontor's support desk (module id `tickets`): tickets with departments,
//! priorities and statuses, SLA timers measured on business hours,
//! escalation, canned responses, the customer portal, e-mail in and out.
//!
//! Written with the public SDK only. The desk's rules are plain Rust,
//! tested natively:
//!
//! * [`calendar`] — business hours in a time zone, with holidays;
//! * [`sla`] — the timers of a ticket, their due times and breaches;
//! * [`desk`] — ticket numbers and round-robin assignment;
//! * [`threading`] — which ticket an inbound e-mail continues;
//! * [`canned`] — canned responses and their placeholders;
//! * [`ticket`] — the ticket record, who may see and change it, the queues.
//!
//! Over the SDK:
//!
//! * [`store`] — the record collections and the desk's configuration;
//! * [`service`] — open, reply, change, escalate, list: every route, page,
//!   e-mail and job goes through it;
//! * [`api`], [`ui`], [`inbound`], [`hooks`], [`notifications`] — the
//!   routes, pages, inbound e-mail, job/events/filters and outgoing e-mail.

pub mod api;
pub mod calendar;
pub mod canned;
pub mod desk;
pub mod hooks;
pub mod inbound;
pub mod notifications;
pub mod service;
pub mod sla;
pub mod store;
pub mod threading;
pub mod ticket;
pub mod ui;
pub mod who;

use kontor_sdk::{Events, Filters, Jobs, Module, Pages, Router};

/// The module.
pub struct Tickets;

impl Module for Tickets {
    fn routes() -> Router {
        api::routes()
    }

    fn pages() -> Pages {
        ui::pages()
    }

    fn events() -> Events {
        Events::new()
            .on("customer.deleted", hooks::forget_customer)
            .on("customer.erased", hooks::forget_customer)
            .on("tickets.ticket.opened", hooks::notify_staff)
            .on("tickets.ticket.replied", hooks::notify_staff)
    }

    fn filters() -> Filters {
        Filters::new()
            .hook("customer.tabs", hooks::customer_tab)
            .hook("dashboard.widgets", hooks::dashboard_widget)
    }

    fn jobs() -> Jobs {
        Jobs::new().job("escalate", hooks::escalate)
    }
}

kontor_sdk::module!(Tickets);
