//! The module's pages: HTML fragments the host places in its layout under
//! `/app/{module-id}`.
//!
//! ```no_run
//! use kontor_sdk::{escape_html, Error, Page, Pages, Request};
//!
//! fn index(req: Request) -> Result<Page, Error> {
//!     let who = req.user_id().unwrap_or("guest");
//!     Ok(Page::new("Tickets", format!("<h2>Hello, {}</h2>", escape_html(who))))
//! }
//!
//! let pages = Pages::new().page("/", index);
//! ```

use crate::bindings::kontor::module::types as raw;
use crate::error::Error;
use crate::request::Request;
use crate::router::Pattern;

/// A rendered page: the host shows `title` and places `html` inside its
/// layout (navigation, styles, the CSRF token for forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The page title.
    pub title: String,
    /// An HTML fragment. The module is signed and trusted to escape its
    /// output: pass everything that came from users through
    /// [`crate::escape_html`].
    pub html: String,
}

impl Page {
    /// A page with `title` and the HTML fragment `html`.
    pub fn new(title: impl Into<String>, html: impl Into<String>) -> Self {
        Page {
            title: title.into(),
            html: html.into(),
        }
    }
}

type Handler = Box<dyn Fn(Request) -> Result<Page, Error>>;

/// The module's pages, by path below `/app/{module-id}` (`/` for the
/// module's start page). Each must also be declared under `[[pages]]` in
/// `module.toml`, with its title, permission and navigation entry.
#[derive(Default)]
pub struct Pages {
    pages: Vec<(Pattern, Handler)>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.paths()).finish()
    }
}

impl Pages {
    /// No pages yet.
    pub fn new() -> Self {
        Pages::default()
    }

    /// The page at `path`, rendered by `handler`. A handler's error is
    /// shown to the user as the reason the page could not be rendered.
    pub fn page<F>(mut self, path: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Result<Page, Error> + 'static,
    {
        self.pages.push((Pattern::parse(path), Box::new(handler)));
        self
    }

    /// Render the page `request` asks for. Public so a module's own tests
    /// can render its pages.
    pub fn render(&self, request: Request) -> Result<Page, Error> {
        for (pattern, handler) in &self.pages {
            if let Some(params) = pattern.matches(request.path()) {
                return handler(request.with_params(params));
            }
        }
        Err(Error::not_found(format!(
            "this module has no page {}",
            request.path()
        )))
    }

    /// The path of every page, as the manifest spells it.
    pub fn paths(&self) -> Vec<String> {
        self.pages.iter().map(|(p, _)| p.manifest_path()).collect()
    }
}

impl From<Page> for raw::Page {
    fn from(p: Page) -> Self {
        raw::Page {
            title: p.title,
            html: p.html,
        }
    }
}
