//! Canned responses: reply texts with placeholders the desk fills in, as
//! osTicket's and Zammad's text modules do (`Hello {customer.name}, about
//! ticket {ticket.number} ...`). An unknown placeholder is refused when the
//! response is saved, not discovered by a customer reading `{custmer.name}`.

use std::collections::BTreeMap;

/// The placeholders a canned response may use.
pub const PLACEHOLDERS: [&str; 6] = [
    "customer.name",
    "customer.email",
    "ticket.number",
    "ticket.subject",
    "agent.name",
    "department.name",
];

/// The placeholders in `text` that the desk does not know; empty when it
/// can be saved. `{{` writes a literal `{`.
pub fn unknown_placeholders(text: &str) -> Vec<String> {
    let mut unknown = Vec::new();
    scan(text, |name| {
        if !PLACEHOLDERS.contains(&name) && !unknown.iter().any(|u| u == name) {
            unknown.push(name.to_string());
        }
        String::new()
    });
    unknown
}

/// `text` with each placeholder replaced from `values` (missing values
/// become empty).
pub fn fill(text: &str, values: &BTreeMap<&str, String>) -> String {
    scan(text, |name| values.get(name).cloned().unwrap_or_default())
}

/// Walk `text`, replacing `{name}` by `replace(name)`; `{{` is a literal `{`
/// and a `{` without a closing `}` stays as it is.
fn scan(text: &str, mut replace: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(literal) = after.strip_prefix('{') {
            out.push('{');
            rest = literal;
            continue;
        }
        match after.find('}') {
            Some(end) if !after[..end].contains('{') => {
                out.push_str(&replace(after[..end].trim()));
                rest = &after[end + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_literals_kept() {
        let values = BTreeMap::from([
            ("customer.name", "Ada".to_string()),
            ("ticket.number", "T-2026-000001".to_string()),
        ]);
        assert_eq!(
            fill(
                "Hello {customer.name}, about {ticket.number}: {{braces}} and {agent.name}.",
                &values
            ),
            "Hello Ada, about T-2026-000001: {braces}} and ."
        );
        assert_eq!(fill("a { b", &values), "a { b");
    }

    #[test]
    fn unknown_placeholders_are_named_once() {
        assert!(unknown_placeholders("Hi {customer.name} {ticket.number}").is_empty());
        assert_eq!(
            unknown_placeholders("Hi {custmer.name}, {custmer.name} {x}"),
            vec!["custmer.name".to_string(), "x".to_string()]
        );
    }
}
