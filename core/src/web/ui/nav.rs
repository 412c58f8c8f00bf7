//! The navigation bar.
//!
//! The bar is a list of [`NavEntry`]s built in Rust, not in a template: the
//! core contributes [`core_entries`], and modules will append theirs through
//! [`super::Ui::add_nav_entry`] when they are enabled (pointing at their
//! pages under `/app/{module-id}/...`). Each request shows only the entries
//! whose permission the user holds, so a module page nobody may open never
//! shows up as a link.

use serde::Serialize;

use crate::auth::Principal;

/// One link of the navigation bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NavEntry {
    /// Translation key of the label, e.g. `nav.customers`.
    pub label_key: String,
    /// Where the link goes, e.g. `/customers`.
    pub href: String,
    /// The permission a user needs to see the entry; `None`: everyone signed in.
    pub permission: Option<String>,
}

impl NavEntry {
    /// An entry.
    pub fn new(label_key: &str, href: &str, permission: Option<&str>) -> Self {
        NavEntry {
            label_key: label_key.to_string(),
            href: href.to_string(),
            permission: permission.map(str::to_string),
        }
    }
}

/// The entries of the core, in the order they appear.
pub fn core_entries() -> Vec<NavEntry> {
    vec![
        NavEntry::new("nav.dashboard", "/", None),
        NavEntry::new("nav.customers", "/customers", Some("customers.read")),
        NavEntry::new("nav.users", "/users", Some("users.read")),
    ]
}

/// An entry as a template sees it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NavItem {
    pub label_key: String,
    pub href: String,
    pub active: bool,
}

/// The entries `who` may see, the one for `path` marked active.
pub(crate) fn visible(entries: &[NavEntry], who: &Principal, path: &str) -> Vec<NavItem> {
    entries
        .iter()
        .filter(|e| e.permission.as_deref().is_none_or(|p| who.can(p)))
        .map(|e| NavItem {
            label_key: e.label_key.clone(),
            href: e.href.clone(),
            active: is_under(path, &e.href),
        })
        .collect()
}

/// Whether `path` is `href` or a page below it (`/` only matches itself).
fn is_under(path: &str, href: &str) -> bool {
    if href == "/" {
        return path == "/";
    }
    path == href
        || path
            .strip_prefix(href)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_entry_matches_its_subpages_only() {
        assert!(is_under("/customers/abc", "/customers"));
        assert!(is_under("/customers", "/customers"));
        assert!(!is_under("/customersx", "/customers"));
        assert!(!is_under("/customers", "/"));
        assert!(is_under("/", "/"));
    }
}
