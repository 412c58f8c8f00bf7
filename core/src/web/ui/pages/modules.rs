//! Pages of modules (`/app/{module-id}/...`), rendered by the module and
//! placed inside the core layout.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use tera::Context;

use crate::error::{Code, Error, Result};
use crate::web::modules::{module_request, visible_module};
use crate::web::ui::render::Page;
use crate::web::ui::session::UiUser;
use crate::web::AppState;

/// `GET /app/{module}` and `GET /app/{module}/{*rest}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    user: UiUser,
    Path(params): Path<Vec<(String, String)>>,
    RawQuery(query): RawQuery,
) -> Response {
    let page = user.page(&state);
    page.finish(render(&state, &user, &page, params, query).await)
}

async fn render(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    params: Vec<(String, String)>,
    query: Option<String>,
) -> Result<Response> {
    let module_id = params
        .iter()
        .find(|(k, _)| k == "module")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let rest = params
        .iter()
        .find(|(k, _)| k == "rest")
        .map(|(_, v)| format!("/{v}"))
        .unwrap_or_else(|| "/".into());
    let who = &user.principal;
    // Pages only read, so a read-only module still shows them.
    let (module, access) = visible_module(state, who, &module_id).await?;
    let decl = module
        .manifest
        .pages
        .iter()
        .find(|p| p.path == rest)
        .ok_or_else(|| {
            Error::new(
                Code::NotFound,
                format!("module {module_id} has no page {rest}"),
            )
        })?;
    if let Some(p) = &decl.permission {
        who.require(p)?;
    }
    let req = module_request(
        who,
        "GET",
        &rest,
        query.unwrap_or_default(),
        Vec::new(),
        Vec::new(),
    );
    let context = crate::modules::caps::CallContext::from(who).under(&access);
    let rendered = state.modules().render_page(&module, context, req).await?;
    let p = rendered.map_err(|m| {
        Error::new(
            Code::ModuleFailed,
            format!("module {module_id} could not render the page: {m}"),
        )
    })?;
    let mut ctx = Context::new();
    ctx.insert("title", &p.title);
    ctx.insert("html", &p.html);
    ctx.insert("module_id", &module_id);
    page.render("module_page.html", ctx)
}
