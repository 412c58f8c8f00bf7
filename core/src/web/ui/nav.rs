//! The navigation bar.
//!
//! The bar is a list of [`NavEntry`]s built in Rust, not in a template: the
//! core contributes [`core_entries`], every loaded module the tenant is
//! entitled to adds the pages its manifest puts in the navigation (under
//! `/app/{module-id}/...`), and the `nav.items` filter hook may change the
//! list. Each request shows only the entries whose permission the user
//! holds, so a module page nobody may open never shows up as a link; portal
//! users (role `customer`) see no staff page either, only module pages
//! (a portal) whose permission they hold.

use serde::Serialize;

use super::hooks::{self, Link};
use super::i18n::Catalog;
use crate::auth::Principal;
use crate::web::AppState;

/// One link of the navigation bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NavEntry {
    /// Translation key of the label, e.g. `nav.customers`.
    pub label_key: String,
    /// Where the link goes, e.g. `/customers`.
    pub href: String,
    /// The permission a user needs to see the entry; `None`: everyone signed in.
    pub permission: Option<String>,
    /// A page of the tenant's staff: portal users never see it, whatever
    /// their role holds (their pages are modules' portal pages).
    pub staff_only: bool,
}

impl NavEntry {
    /// An entry.
    pub fn new(label_key: &str, href: &str, permission: Option<&str>) -> Self {
        NavEntry {
            label_key: label_key.to_string(),
            href: href.to_string(),
            permission: permission.map(str::to_string),
            staff_only: false,
        }
    }

    /// An entry of a staff page (see [`NavEntry::staff_only`]).
    pub fn staff(label_key: &str, href: &str, permission: Option<&str>) -> Self {
        NavEntry {
            staff_only: true,
            ..NavEntry::new(label_key, href, permission)
        }
    }

    /// Whether `who` sees the entry.
    fn shown_to(&self, who: &Principal) -> bool {
        !(self.staff_only && who.is_portal_user())
            && self.permission.as_deref().is_none_or(|p| who.can(p))
    }
}

/// The entries of the core, in the order they appear.
pub fn core_entries() -> Vec<NavEntry> {
    vec![
        NavEntry::new("nav.dashboard", "/", None),
        NavEntry::staff("nav.customers", "/customers", Some("customers.read")),
        NavEntry::staff("nav.users", "/users", Some("users.read")),
        NavEntry::staff("nav.modules", "/modules", Some("modules.manage")),
        NavEntry::staff("nav.mail", "/mail", Some("audit.read")),
    ]
}

/// An entry as a template sees it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NavItem {
    /// The label in the user's language.
    pub label: String,
    pub href: String,
    pub active: bool,
}

/// Navigation entries of the loaded modules' pages the tenant is entitled
/// to, by their declared order. A module the tenant may not use shows no
/// link (its pages would answer `module_not_entitled`); a read-only one
/// does, since its pages still show its data.
async fn module_entries(state: &AppState, who: &Principal) -> Vec<NavEntry> {
    let mut pages: Vec<(i32, NavEntry)> = Vec::new();
    for module in state.modules().all() {
        let denied = crate::modules::entitlements::access(
            state.db(),
            state.licensing(),
            &who.tenant_id,
            &module.manifest,
            state.now_ms(),
        )
        .await
        .map_or(true, |a| a.is_denied());
        if denied {
            continue;
        }
        for page in &module.manifest.pages {
            if let Some(n) = &page.nav {
                let href = format!("/app/{}{}", module.manifest.id, page.path);
                pages.push((
                    n.order,
                    NavEntry::new(&n.label, &href, page.permission.as_deref()),
                ));
            }
        }
    }
    pages.sort_by_key(|(order, _)| *order);
    pages.into_iter().map(|(_, e)| e).collect()
}

/// The navigation `who` sees on `path`: the core's and the entitled
/// modules' entries whose permission the user holds, labels translated,
/// then the `nav.items` hook; the entry for `path` marked active.
pub(crate) async fn for_user(
    state: &AppState,
    who: &Principal,
    path: &str,
    catalog: &Catalog,
) -> Vec<NavItem> {
    let mut entries = state.ui().nav_entries();
    entries.extend(module_entries(state, who).await);
    // Only a self-hosted install has a license to manage.
    if state.licensing().applies() {
        entries.push(NavEntry::staff(
            "nav.license",
            "/license",
            Some("license.manage"),
        ));
    }
    let links: Vec<Link> = entries
        .iter()
        .filter(|e| e.shown_to(who))
        .map(|e| Link {
            label: catalog
                .get(&e.label_key)
                .unwrap_or(&e.label_key)
                .to_string(),
            href: e.href.clone(),
        })
        .collect();
    hooks::nav_items(state, who, path, links)
        .await
        .into_iter()
        .map(|l| NavItem {
            active: is_under(path, &l.href),
            label: l.label,
            href: l.href,
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
