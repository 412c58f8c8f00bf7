//! The server-rendered UI: tera templates and static assets embedded into
//! the binary, htmx for partial updates, German and English.
//!
//! * [`i18n`] — languages, the text catalogues and the `t()` template function;
//! * [`assets`] — `/assets/...` (stylesheet, htmx) with cache headers;
//! * [`nav`] — the navigation bar, a list modules extend;
//! * [`session`] — the signed-in [`UiUser`] (or a redirect to `/login`) and CSRF;
//! * `hooks` — the filter hooks modules extend pages with (`nav.items`, `dashboard.widgets`, `customer.tabs`);
//! * `render` — the layout context, error pages and form errors;
//! * `pages` — the handlers: login, dashboard, customers, users, module
//!   settings (a form rendered from the module's manifest), the license,
//!   the SaaS onboarding wizard (registration, plan choice).
//!
//! Every POST form carries the session's CSRF token in a hidden `_csrf`
//! field, checked before the handler does anything else; the login form,
//! which has no session yet, uses a double-submit cookie instead. The
//! Content-Security-Policy allows no inline script or style, so templates
//! link `kontor.css` and `htmx.min.js` and nothing else.

pub mod assets;
pub(crate) mod hooks;
pub mod i18n;
pub mod nav;
mod pages;
mod render;
pub mod session;
/// `/setup`: the first-run wizard, guarded by the setup token `kontor serve` prints.
pub mod setup;

use std::fmt;
use std::sync::{Arc, RwLock};

use axum::routing::{get, post};
use axum::Router;
use rust_embed::RustEmbed;

use self::i18n::{Catalog, Lang, Translate};
use self::nav::NavEntry;
pub use self::session::UiUser;
use super::AppState;
use crate::error::{Error, Result};

#[derive(RustEmbed)]
#[folder = "templates/"]
#[include = "*.html"]
struct Templates;

/// Templates and translations, loaded once per process.
pub struct Ui {
    de: Language,
    en: Language,
    nav: RwLock<Vec<NavEntry>>,
}

/// The templates of one language — each set has its own `t()` — and its texts.
struct Language {
    tera: tera::Tera,
    catalog: Arc<Catalog>,
}

impl fmt::Debug for Ui {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ui")
            .field("nav", &self.nav_entries())
            .finish_non_exhaustive()
    }
}

impl Ui {
    /// Load the embedded templates and texts. Fails when a template does not
    /// parse or a catalogue is missing, so a broken build never starts.
    pub fn load() -> Result<Self> {
        let mut sources = Vec::new();
        for name in Templates::iter() {
            let file = Templates::get(&name)
                .ok_or_else(|| Error::internal(format!("template {name} vanished")))?;
            let text = String::from_utf8(file.data.into_owned())
                .map_err(|e| Error::internal(format!("template {name}: {e}")))?;
            sources.push((name.to_string(), text));
        }
        let versions = assets::AssetVersions::load();
        let language = |lang: Lang| -> Result<Language> {
            let catalog = Arc::new(Catalog::load(lang)?);
            let mut tera = tera::Tera::default();
            tera.set_escape_fn(escape_html);
            tera.add_raw_templates(sources.iter().map(|(n, t)| (n.as_str(), t.as_str())))
                .map_err(|e| Error::internal(format!("templates: {}", tera_error(&e))))?;
            tera.register_function("t", Translate::new(catalog.clone()));
            tera.register_function("asset", assets::AssetUrl(versions.clone()));
            Ok(Language { tera, catalog })
        };
        Ok(Ui {
            de: language(Lang::De)?,
            en: language(Lang::En)?,
            nav: RwLock::new(nav::core_entries()),
        })
    }

    fn language(&self, lang: Lang) -> &Language {
        match lang {
            Lang::De => &self.de,
            Lang::En => &self.en,
        }
    }

    /// The texts of `lang`.
    pub fn catalog(&self, lang: Lang) -> &Catalog {
        &self.language(lang).catalog
    }

    /// Add a link to the navigation bar (for modules' pages). Users see it
    /// when they hold its permission.
    pub fn add_nav_entry(&self, entry: NavEntry) {
        let mut nav = self.nav.write().unwrap_or_else(|e| e.into_inner());
        if !nav.contains(&entry) {
            nav.push(entry);
        }
    }

    /// The navigation entries, in order.
    pub fn nav_entries(&self) -> Vec<NavEntry> {
        self.nav.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Render `template` in `lang`.
    pub(crate) fn render(&self, lang: Lang, template: &str, ctx: &tera::Context) -> Result<String> {
        self.language(lang)
            .tera
            .render(template, ctx)
            .map_err(|e| Error::internal(format!("template {template}: {}", tera_error(&e))))
    }
}

/// Escape text for HTML content and quoted attribute values. Tera's own
/// escaper also turns `/` into `&#x2F;`, which protects nothing inside
/// quotes and makes every URL in the markup unreadable.
fn escape_html(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 8);
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

/// A tera error with its causes, which hold the useful part.
fn tera_error(e: &tera::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// UI routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(setup::router())
        .route("/assets/{*path}", get(assets::serve))
        .route("/login", get(pages::login::show).post(pages::login::submit))
        .route(
            "/register",
            get(pages::onboarding::register_form).post(pages::onboarding::register),
        )
        .route(
            "/onboarding/plan",
            get(pages::onboarding::plan_form).post(pages::onboarding::choose_plan),
        )
        .route("/logout", post(pages::login::logout))
        .route("/", get(pages::dashboard::show))
        .route(
            "/customers",
            get(pages::customers::index).post(pages::customers::create),
        )
        .route("/customers/new", get(pages::customers::new_form))
        .route("/customers/{id}", get(pages::customers::show))
        .route("/customers/{id}/notes", post(pages::customers::add_note))
        .route(
            "/users",
            get(pages::users::index).post(pages::users::create),
        )
        .route(
            "/license",
            get(pages::license::show).post(pages::license::install),
        )
        .route("/license/upload", post(pages::license::upload))
        .route("/modules", get(pages::module_admin::list))
        .route("/mail", get(pages::mail::index))
        .route("/mail/test", post(pages::mail::send_test))
        .route(
            "/modules/{module}/settings",
            get(pages::module_settings::show).post(pages::module_settings::save),
        )
        .route("/app/{module}", get(pages::modules::show))
        .route("/app/{module}/", get(pages::modules::show))
        .route("/app/{module}/{*rest}", get(pages::modules::show))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every literal `t(key="...")` of every template exists in every catalogue.
    #[test]
    fn every_text_a_template_uses_is_translated() {
        let ui = Ui::load().unwrap();
        let mut missing = Vec::new();
        for name in Templates::iter() {
            let file = Templates::get(&name).unwrap();
            let text = std::str::from_utf8(&file.data).unwrap().to_string();
            for piece in text.split("t(key=\"").skip(1) {
                let key = piece.split('"').next().unwrap();
                for lang in Lang::ALL {
                    if ui.catalog(lang).get(key).is_none() {
                        missing.push(format!("{}: {key} ({name})", lang.code()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "missing texts: {missing:#?}");
    }

    /// Every literal key the Rust side looks up (`.text("...")`, navigation
    /// labels) exists in every catalogue.
    #[test]
    fn every_text_the_handlers_use_is_translated() {
        let ui = Ui::load().unwrap();
        let sources = [
            include_str!("render.rs"),
            include_str!("pages/mod.rs"),
            include_str!("pages/login.rs"),
            include_str!("pages/onboarding.rs"),
            include_str!("pages/dashboard.rs"),
            include_str!("pages/customers.rs"),
            include_str!("pages/users.rs"),
            include_str!("pages/license.rs"),
        ];
        let mut keys: Vec<String> = nav::core_entries()
            .into_iter()
            .map(|e| e.label_key)
            .collect();
        for source in sources {
            for piece in source.split(".text(").skip(1) {
                if let Some(literal) = piece.trim_start().strip_prefix('"') {
                    keys.push(literal.split('"').next().unwrap().to_string());
                }
            }
        }
        assert!(keys.len() > 20, "the scan found too few keys: {keys:?}");
        for lang in Lang::ALL {
            for key in &keys {
                assert!(
                    ui.catalog(lang).get(key).is_some(),
                    "{}: {key}",
                    lang.code()
                );
            }
        }
    }

    #[test]
    fn every_template_renders_its_texts_escaped() {
        let ui = Ui::load().unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert("lang", "de");
        ctx.insert("title", "<b>x</b>");
        ctx.insert("reference", "\"' onload='x");
        ctx.insert("message", "m");
        ctx.insert("datetime_format", "%Y");
        ctx.insert("tz", "UTC");
        ctx.insert("widgets", &Vec::<String>::new());
        let html = ui.render(Lang::De, "error.html", &ctx).unwrap();
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
        assert!(html.contains("<html lang=\"de\""));
        assert!(html.contains("&quot;&#x27; onload=&#x27;x"), "{html}");
    }
}
