//! The UI's filter hooks: modules extend the navigation (`nav.items`), the
//! dashboard (`dashboard.widgets`) and the customer page (`customer.tabs`).
//!
//! Each hook hands the modules that registered for it a JSON payload (shape
//! below), in priority order, through [`crate::modules::filters::run`]; each
//! may pass or return it changed. What comes back is checked before it
//! reaches a template: links must stay on this site (a path starting with
//! one `/`), texts are cut to a sane length, and everything is escaped when
//! rendered. A module that fails, runs late or refuses is skipped with a
//! logged error — a broken module never breaks a page.
//!
//! | hook | payload | a module may |
//! |---|---|---|
//! | `nav.items` | `{"path": "/customers", "items": [{"label": "Customers", "href": "/customers"}]}` | add, remove, reorder links |
//! | `dashboard.widgets` | `{"widgets": [{"title": "…", "text": "…", "href": "/app/x/"}]}` (`href` optional) | add cards |
//! | `customer.tabs` | `{"customer_id": "…", "tabs": [{"label": "…", "href": "/app/x/?customer=…"}]}` | add tabs |
//!
//! Labels reach modules translated into the user's language.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::web::AppState;

/// Longest label or title kept.
const MAX_LABEL: usize = 100;
/// Longest widget text kept.
const MAX_TEXT: usize = 2_000;
/// Most entries a hook may produce (links, widgets or tabs).
const MAX_ENTRIES: usize = 50;

/// A link in the navigation or a customer tab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Link {
    /// The text shown.
    pub label: String,
    /// Where it goes: a path on this site.
    pub href: String,
}

/// A card on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Widget {
    /// Heading of the card.
    pub title: String,
    /// Its text.
    #[serde(default)]
    pub text: String,
    /// Optional link of the card: a path on this site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
}

/// Whether `href` is a path on this site: `/` followed by no second `/` or
/// `\` (a protocol-relative URL leaves the site), no control characters.
fn local_href(href: &str) -> bool {
    href.starts_with('/')
        && !href.starts_with("//")
        && !href.starts_with("/\\")
        && href.len() <= 500
        && !href.chars().any(char::is_control)
}

fn clip(s: &str, max: usize) -> String {
    s.trim().chars().take(max).collect()
}

fn clean_link(link: Link) -> Option<Link> {
    let label = clip(&link.label, MAX_LABEL);
    (!label.is_empty() && local_href(&link.href)).then_some(Link {
        label,
        href: link.href,
    })
}

fn clean_widget(w: Widget) -> Option<Widget> {
    let title = clip(&w.title, MAX_LABEL);
    if title.is_empty() || w.href.as_deref().is_some_and(|h| !local_href(h)) {
        return None;
    }
    Some(Widget {
        title,
        text: clip(&w.text, MAX_TEXT),
        href: w.href,
    })
}

/// Run `hook` for the user's tenant on `payload`; `None` when no module
/// registered for it or the chain failed (logged), so callers keep what
/// they had.
async fn run(state: &AppState, who: &Principal, hook: &str, payload: Value) -> Option<Value> {
    if state.modules().filters(hook).is_empty() {
        return None;
    }
    match crate::modules::filters::run(
        state.db(),
        state.modules(),
        &who.tenant_id,
        hook,
        payload,
        state.now_ms(),
    )
    .await
    {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(hook, error = %e, "UI filter hook failed; the page shows the core's entries");
            None
        }
    }
}

/// The entries under `key` of a hook's answer, each checked by `clean`
/// (entries that fail it are dropped with a log line).
fn entries<T: serde::de::DeserializeOwned>(
    hook: &str,
    answer: &Value,
    key: &str,
    clean: fn(T) -> Option<T>,
) -> Option<Vec<T>> {
    let Some(list) = answer.get(key).and_then(Value::as_array) else {
        tracing::error!(hook, "filter answer lacks the `{key}` list; ignored");
        return None;
    };
    let mut out = Vec::new();
    for item in list.iter().take(MAX_ENTRIES) {
        match serde_json::from_value::<T>(item.clone())
            .ok()
            .and_then(clean)
        {
            Some(v) => out.push(v),
            None => tracing::warn!(hook, entry = %item, "dropped an entry a module returned"),
        }
    }
    Some(out)
}

/// The navigation links after the `nav.items` hook.
pub(crate) async fn nav_items(
    state: &AppState,
    who: &Principal,
    path: &str,
    links: Vec<Link>,
) -> Vec<Link> {
    let payload = json!({ "path": path, "items": links });
    match run(state, who, "nav.items", payload).await {
        Some(answer) => entries("nav.items", &answer, "items", clean_link).unwrap_or(links),
        None => links,
    }
}

/// The dashboard's module cards (`dashboard.widgets`).
pub(crate) async fn dashboard_widgets(state: &AppState, who: &Principal) -> Vec<Widget> {
    match run(state, who, "dashboard.widgets", json!({ "widgets": [] })).await {
        Some(answer) => {
            entries("dashboard.widgets", &answer, "widgets", clean_widget).unwrap_or_default()
        }
        None => Vec::new(),
    }
}

/// The tabs modules add to a customer's page (`customer.tabs`).
pub(crate) async fn customer_tabs(
    state: &AppState,
    who: &Principal,
    customer_id: &str,
) -> Vec<Link> {
    let payload = json!({ "customer_id": customer_id, "tabs": [] });
    match run(state, who, "customer.tabs", payload).await {
        Some(answer) => entries("customer.tabs", &answer, "tabs", clean_link).unwrap_or_default(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_links() {
        for ok in ["/", "/app/hello/", "/customers?status=active"] {
            assert!(local_href(ok), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "//evil.example/x",
            "/\\evil.example",
            "javascript:alert(1)",
            "",
            "/a\nb",
        ] {
            assert!(!local_href(bad), "{bad:?}");
        }
    }

    #[test]
    fn entries_are_checked_and_bounded() {
        let answer = json!({ "items": [
            { "label": "  Hello  ", "href": "/app/hello/" },
            { "label": "", "href": "/x" },
            { "label": "Away", "href": "https://evil.example" },
            { "nolabel": true },
        ]});
        let links = entries("nav.items", &answer, "items", clean_link).unwrap();
        assert_eq!(
            links,
            vec![Link {
                label: "Hello".into(),
                href: "/app/hello/".into()
            }]
        );
        let many = json!({ "items": (0..200).map(|i| json!({"label": i.to_string(), "href": "/"})).collect::<Vec<_>>() });
        assert_eq!(
            entries("nav.items", &many, "items", clean_link)
                .unwrap()
                .len(),
            MAX_ENTRIES
        );
        assert!(entries::<Link>("nav.items", &json!({}), "items", clean_link).is_none());
        let w = json!({ "widgets": [{ "title": "T", "text": "x".repeat(5000), "href": "//x" }, { "title": "U" }] });
        let widgets = entries("dashboard.widgets", &w, "widgets", clean_widget).unwrap();
        assert_eq!(widgets.len(), 1);
        assert_eq!(widgets[0].title, "U");
    }
}
