//! Which ticket an inbound e-mail belongs to, as FreeScout and Zammad
//! decide it: first by the mail's own references (`In-Reply-To`,
//! `References`) to messages the desk sent or received, then by a ticket
//! number in the subject (`[T-2026-000123]`), else it opens a new ticket.
//! Only a ticket of the same customer may be continued by subject: a
//! stranger quoting a number must not write into someone else's ticket.

/// Where an inbound message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Thread {
    /// Onto this existing ticket (its id).
    Existing(String),
    /// A new ticket.
    New,
}

/// What the desk knows to place a message.
pub trait Lookup {
    /// The ticket that sent or received the message with this Message-ID.
    fn ticket_by_message_id(&self, message_id: &str) -> Option<String>;
    /// The ticket with this number and the customer it belongs to.
    fn ticket_by_number(&self, number: &str) -> Option<(String, String)>;
}

/// An inbound message's threading headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers<'a> {
    /// `Subject`.
    pub subject: &'a str,
    /// `In-Reply-To`.
    pub in_reply_to: Option<&'a str>,
    /// `References` (Message-IDs separated by white space).
    pub references: Option<&'a str>,
}

/// The ticket `headers` continue, for a sender who is `customer_id` (none:
/// an unknown sender).
pub fn place(headers: &Headers<'_>, customer_id: Option<&str>, desk: &impl Lookup) -> Thread {
    // Newest reference first: In-Reply-To, then References from the end.
    let references = headers.in_reply_to.into_iter().chain(
        headers
            .references
            .unwrap_or_default()
            .split_whitespace()
            .rev(),
    );
    for id in references {
        if let Some(ticket) = desk.ticket_by_message_id(id.trim()) {
            return Thread::Existing(ticket);
        }
    }
    if let (Some(number), Some(customer)) = (number_in_subject(headers.subject), customer_id) {
        if let Some((ticket, owner)) = desk.ticket_by_number(&number) {
            if owner == customer {
                return Thread::Existing(ticket);
            }
        }
    }
    Thread::New
}

/// The ticket number quoted in a subject: `Re: [T-2026-000123] Server down`.
pub fn number_in_subject(subject: &str) -> Option<String> {
    subject.match_indices("[T-").find_map(|(at, _)| {
        let rest = &subject[at + 1..];
        let end = rest.find(']')?;
        let number = &rest[..end];
        let mut parts = number.splitn(3, '-');
        let (t, year, seq) = (parts.next()?, parts.next()?, parts.next()?);
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (t == "T" && year.len() == 4 && digits(year) && seq.len() >= 6 && digits(seq))
            .then(|| number.to_string())
    })
}

/// A subject the desk sends with the ticket number in front, once:
/// `[T-2026-000123] Server down`.
pub fn subject_with_number(number: &str, subject: &str) -> String {
    if number_in_subject(subject).as_deref() == Some(number) {
        subject.to_string()
    } else {
        format!("[{number}] {subject}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Desk {
        by_message: HashMap<&'static str, &'static str>,
        by_number: HashMap<&'static str, (&'static str, &'static str)>,
    }

    impl Lookup for Desk {
        fn ticket_by_message_id(&self, id: &str) -> Option<String> {
            self.by_message.get(id).map(|t| t.to_string())
        }
        fn ticket_by_number(&self, number: &str) -> Option<(String, String)> {
            self.by_number
                .get(number)
                .map(|(t, c)| (t.to_string(), c.to_string()))
        }
    }

    fn desk() -> Desk {
        Desk {
            by_message: HashMap::from([("<a@desk>", "ticket-1"), ("<b@desk>", "ticket-2")]),
            by_number: HashMap::from([("T-2026-000007", ("ticket-7", "customer-ada"))]),
        }
    }

    #[test]
    fn replies_thread_by_their_references_newest_first() {
        let h = Headers {
            subject: "Re: anything",
            in_reply_to: Some("<b@desk>"),
            references: Some("<a@desk> <b@desk>"),
        };
        assert_eq!(
            place(&h, None, &desk()),
            Thread::Existing("ticket-2".into())
        );
        let h = Headers {
            subject: "Re: anything",
            in_reply_to: Some("<unknown@client>"),
            references: Some("<a@desk> <unknown@client>"),
        };
        assert_eq!(
            place(&h, None, &desk()),
            Thread::Existing("ticket-1".into())
        );
    }

    #[test]
    fn a_number_in_the_subject_continues_only_the_senders_own_ticket() {
        let h = Headers {
            subject: "Re: [T-2026-000007] Server down",
            ..Default::default()
        };
        assert_eq!(
            place(&h, Some("customer-ada"), &desk()),
            Thread::Existing("ticket-7".into())
        );
        assert_eq!(place(&h, Some("customer-eve"), &desk()), Thread::New);
        assert_eq!(place(&h, None, &desk()), Thread::New);
        let fresh = Headers {
            subject: "Server down",
            ..Default::default()
        };
        assert_eq!(place(&fresh, Some("customer-ada"), &desk()), Thread::New);
    }

    #[test]
    fn ticket_numbers_are_found_in_subjects_and_added_once() {
        assert_eq!(
            number_in_subject("AW: Re: [T-2026-000123] x").as_deref(),
            Some("T-2026-000123")
        );
        assert_eq!(
            number_in_subject("[note] [T-2027-1234567]").as_deref(),
            Some("T-2027-1234567")
        );
        for not_one in [
            "[T-26-000123]",
            "[T-2026-12]",
            "T-2026-000123",
            "[T-2026-00012x]",
            "[T-",
        ] {
            assert_eq!(number_in_subject(not_one), None, "{not_one}");
        }
        assert_eq!(
            subject_with_number("T-2026-000123", "Server down"),
            "[T-2026-000123] Server down"
        );
        assert_eq!(
            subject_with_number("T-2026-000123", "Re: [T-2026-000123] Server down"),
            "Re: [T-2026-000123] Server down"
        );
    }
}
