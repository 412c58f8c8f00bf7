//! The desk's small rules: ticket numbers and who gets the next ticket.

/// A ticket number as people quote it: `T-2026-000123`, from the year the
/// ticket was opened and a gap-free per-tenant sequence (the host's
/// `records.next-sequence`, which never hands out a number twice or skips one).
pub fn ticket_number(year: i16, sequence: u64) -> String {
    format!("T-{year}-{sequence:06}")
}

/// Round-robin: the member after `last` in `members` (in their order),
/// starting over at the top; the first member when `last` is none or no
/// longer a member; none for an empty department.
pub fn next_assignee<'a>(members: &'a [String], last: Option<&str>) -> Option<&'a str> {
    let next = last
        .and_then(|l| members.iter().position(|m| m == l))
        .map_or(0, |i| (i + 1) % members.len());
    members.get(next).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_zero_padded_and_grow_past_six_digits() {
        assert_eq!(ticket_number(2026, 123), "T-2026-000123");
        assert_eq!(ticket_number(2027, 1_234_567), "T-2027-1234567");
    }

    #[test]
    fn round_robin_goes_around_and_survives_a_member_leaving() {
        let members: Vec<String> = ["ada", "grace", "linus"].map(String::from).to_vec();
        let mut last: Option<String> = None;
        let mut picked = Vec::new();
        for _ in 0..5 {
            let next = next_assignee(&members, last.as_deref())
                .unwrap()
                .to_string();
            picked.push(next.clone());
            last = Some(next);
        }
        assert_eq!(picked, ["ada", "grace", "linus", "ada", "grace"]);
        assert_eq!(
            next_assignee(&members, Some("someone-who-left")),
            Some("ada")
        );
        assert_eq!(next_assignee(&[], Some("ada")), None);
    }
}
