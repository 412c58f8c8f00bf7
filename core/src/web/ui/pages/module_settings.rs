//! `/modules/{module}/settings`: a form for a module's settings, rendered
//! from the types its manifest declares — text, number or a checkbox per
//! setting — and saved through the same validation as the API.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tera::Context;

use crate::error::{Error, Result};
use crate::modules::manifest::Manifest;
use crate::modules::settings::{self, ModuleSetting};
use crate::web::api::modules::tenant_module;
use crate::web::ui::render::{FormError, Page};
use crate::web::ui::session::UiUser;
use crate::web::AppState;

/// Query of the form page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SettingsParams {
    /// Set after a save, to confirm it.
    saved: Option<String>,
}

/// One field of the form as the template shows it.
#[derive(Debug, Serialize)]
struct Field {
    key: String,
    kind: String,
    description: String,
    /// What the input shows: the value entered or stored, as text.
    text: String,
    checked: bool,
    /// The manifest's default, as text (empty when none).
    default: String,
    /// Why the entered value was refused, in the request's language.
    error: Option<String>,
}

fn as_text(v: &Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The form's fields from the current settings, with what was entered and
/// refused laid over them.
fn fields(
    page: &Page<'_>,
    current: &[ModuleSetting],
    entered: Option<&Map<String, Value>>,
    problems: &BTreeMap<String, String>,
) -> Vec<Field> {
    current
        .iter()
        .map(|s| {
            let shown = match entered.and_then(|e| e.get(&s.key)) {
                Some(Value::Null) => s.default.clone(),
                Some(v) => Some(v.clone()),
                None if s.is_set => s.value.clone(),
                None => None,
            };
            let error = problems
                .get(&s.key)
                .map(|_| page.text(&format!("module_settings.expected_{}", s.kind), &[]));
            Field {
                key: s.key.clone(),
                kind: s.kind.clone(),
                description: s.description.clone(),
                checked: matches!(shown.as_ref().or(s.value.as_ref()), Some(Value::Bool(true))),
                text: as_text(&shown),
                default: as_text(&s.default),
                error,
            }
        })
        .collect()
}

/// `GET /modules/{module}/settings`.
pub(crate) async fn show(
    State(state): State<AppState>,
    user: UiUser,
    Path(module_id): Path<String>,
    Query(params): Query<SettingsParams>,
) -> Response {
    let page = user.page(&state);
    let saved = params.saved.is_some();
    page.finish(render(&state, &user, &page, &module_id, None, saved).await)
}

async fn render(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    module_id: &str,
    refused: Option<(Map<String, Value>, Error)>,
    saved: bool,
) -> Result<Response> {
    let who = &user.principal;
    who.require("settings.read")?;
    let manifest = tenant_module(state, who, module_id).await?;
    let current = settings::list(state.db(), &who.tenant_id, &manifest).await?;
    let (entered, error) = match refused {
        Some((entered, e)) => (Some(entered), Some(e)),
        None => (None, None),
    };
    let problems: BTreeMap<String, String> = match &error {
        Some(Error::Api {
            details: Some(d), ..
        }) => serde_json::from_value(d["fields"].clone()).unwrap_or_default(),
        _ => BTreeMap::new(),
    };
    let form_error = match error {
        Some(e) => Some(FormError::from_error(page, e)?),
        None => None,
    };
    let mut ctx = Context::new();
    ctx.insert(
        "module",
        &serde_json::json!({ "id": manifest.id, "name": manifest.name }),
    );
    ctx.insert(
        "fields",
        &fields(page, &current, entered.as_ref(), &problems),
    );
    ctx.insert("can_manage", &who.can("settings.manage"));
    ctx.insert("saved", &saved);
    let status = FormError::insert_into(&form_error, &mut ctx);
    page.render_status(status, "modules/settings.html", ctx)
}

/// The submitted form as the API's change set: text as entered (empty: the
/// default), numbers parsed (unparsable text stays text, so validation
/// names the field), an unticked checkbox `false`. Fields the manifest does
/// not declare are passed on, to be refused like in the API.
fn changes(manifest: &Manifest, form: &[(String, String)]) -> Map<String, Value> {
    let mut out = Map::new();
    for decl in &manifest.settings {
        let raw = form
            .iter()
            .find(|(k, _)| *k == decl.key)
            .map(|(_, v)| v.trim());
        let value = match (decl.kind.as_str(), raw) {
            ("boolean", raw) => Value::Bool(raw.is_some_and(|v| v == "true" || v == "on")),
            (_, None) | (_, Some("")) => Value::Null,
            ("number", Some(v)) => v
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| v.parse::<f64>().map(Value::from))
                .unwrap_or_else(|_| Value::String(v.to_string())),
            (_, Some(v)) => Value::String(v.to_string()),
        };
        out.insert(decl.key.clone(), value);
    }
    for (k, v) in form {
        if !k.starts_with('_') && !out.contains_key(k) {
            out.insert(k.clone(), Value::String(v.clone()));
        }
    }
    out
}

/// `POST /modules/{module}/settings`: save, then back to the form.
pub(crate) async fn save(
    State(state): State<AppState>,
    user: UiUser,
    Path(module_id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let page = user.page(&state);
    page.finish(submit(&state, &user, &page, &module_id, form).await)
}

async fn submit(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    module_id: &str,
    form: Vec<(String, String)>,
) -> Result<Response> {
    let csrf = form
        .iter()
        .find(|(k, _)| k == "_csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    user.check_csrf(csrf)?;
    let who = &user.principal;
    who.require("settings.manage")?;
    let manifest = tenant_module(state, who, module_id).await?;
    let changes = changes(&manifest, &form);
    match settings::save(state.db(), who, &manifest, &changes, state.now_ms()).await {
        Ok(_) => {
            Ok(Redirect::to(&format!("/modules/{}/settings?saved=1", manifest.id)).into_response())
        }
        Err(e) => render(state, user, page, module_id, Some((changes, e)), false).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_submitted_form_becomes_typed_changes() {
        let text = kontor_runtime::test_guest_manifest("caps").unwrap();
        let m = Manifest::parse("caps/module.toml", &text).unwrap();
        let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let c = changes(
            &m,
            &form(&[
                ("_csrf", "t"),
                ("greeting", " Servus "),
                ("retries", "5"),
                ("verbose", "true"),
            ]),
        );
        assert_eq!(
            Value::Object(c),
            serde_json::json!({"greeting": "Servus", "retries": 5, "verbose": true})
        );
        let c = changes(
            &m,
            &form(&[("greeting", ""), ("retries", "2.5"), ("extra", "x")]),
        );
        assert_eq!(
            Value::Object(c),
            serde_json::json!({"greeting": null, "retries": 2.5, "verbose": false, "extra": "x"})
        );
        let c = changes(&m, &form(&[("retries", "many")]));
        assert_eq!(
            c["retries"], "many",
            "left as text for validation to refuse"
        );
    }

    /// The per-field messages are looked up by the setting's type.
    #[test]
    fn every_setting_type_has_its_message_in_every_language() {
        let ui = crate::web::ui::Ui::load().unwrap();
        for lang in crate::web::ui::i18n::Lang::ALL {
            for kind in crate::modules::manifest::SETTING_TYPES {
                let key = format!("module_settings.expected_{kind}");
                assert!(
                    ui.catalog(lang).get(&key).is_some(),
                    "{}: {key}",
                    lang.code()
                );
            }
        }
    }
}
