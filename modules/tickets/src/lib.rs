//! Kontor's support desk: tickets, departments and SLA timers measured on
//! business hours.
//!
//! * [`calendar`] — business hours in a time zone, with holidays;
//! * [`sla`] — the timers of a ticket, their due times and breaches;
//! * [`desk`] — ticket numbers and round-robin assignment;
//! * [`threading`] — which ticket an inbound e-mail continues;
//! * [`canned`] — canned responses and their placeholders;
//! * [`ticket`] — the ticket record, who may see and change it, the queues.

pub mod calendar;
pub mod canned;
pub mod desk;
pub mod sla;
pub mod threading;
pub mod ticket;
