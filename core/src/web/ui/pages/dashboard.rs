//! `/`: the dashboard — a greeting, customer counts, the latest activity,
//! and the cards modules contribute through the `dashboard.widgets` hook.

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use tera::Context;

use super::activity_text;
use crate::auth::principal::CustomerScope;
use crate::crm::customers::scope_sql;
use crate::db::args::Args;
use crate::error::Result;
use crate::web::ui::render::Page;
use crate::web::ui::session::UiUser;
use crate::web::AppState;

/// How many activities the dashboard lists.
const RECENT: i64 = 10;

#[derive(Debug, sqlx::FromRow)]
struct RecentRow {
    customer_id: String,
    kind: String,
    summary: String,
    data: String,
    created_at: i64,
    company: Option<String>,
    contact_name: Option<String>,
}

#[derive(Debug, Serialize)]
struct Recent {
    customer_id: String,
    customer: String,
    text: String,
    created_at: String,
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    active: i64,
    archived: i64,
}

/// `GET /`.
pub(crate) async fn show(State(state): State<AppState>, user: UiUser) -> Response {
    let page = user.page(&state);
    page.finish(build(&state, &user, &page).await)
}

async fn build(state: &AppState, user: &UiUser, page: &Page<'_>) -> Result<Response> {
    let who = &user.principal;
    let mut ctx = Context::new();
    // Customer counts and activity are the staff's view; a portal user
    // (who sees only their own record) gets the greeting and the modules' cards.
    if who.can("customers.read") && !who.is_portal_user() {
        ctx.insert("counts", &counts(state, user).await?);
        let recent: Vec<Recent> = recent(state, user)
            .await?
            .into_iter()
            .map(|r| {
                let data = serde_json::from_str(&r.data).unwrap_or_default();
                Recent {
                    text: activity_text(page, &r.kind, &r.summary, &data),
                    customer: r.company.or(r.contact_name).unwrap_or_default(),
                    customer_id: r.customer_id,
                    created_at: crate::clock::rfc3339(r.created_at),
                }
            })
            .collect();
        ctx.insert("recent", &recent);
        ctx.insert("tz", &page.time_zone().await);
    }
    // Modules build their cards for the tenant, not for the user (a card
    // may count every customer's tickets): portal users get none.
    if !who.is_portal_user() {
        ctx.insert(
            "widgets",
            &crate::web::ui::hooks::dashboard_widgets(state, who).await,
        );
    }
    page.render("dashboard.html", ctx)
}

/// Active and archived customers the user may see — the same scope as the
/// customer list, counted in the database.
async fn counts(state: &AppState, user: &UiUser) -> Result<Counts> {
    let who = &user.principal;
    let mut args = Args::new();
    let tenant = args.text(who.tenant_id.as_str());
    let scope = scope_sql(&who.customer_scope(), &mut args);
    let sql = format!(
        "SELECT status, COUNT(*) FROM customers WHERE tenant_id = {tenant}{scope} GROUP BY status"
    );
    let rows: Vec<(String, i64)> = args
        .bind_as(sqlx::query_as(&sql))
        .fetch_all(state.db().pool())
        .await?;
    let mut counts = Counts::default();
    for (status, n) in rows {
        match status.as_str() {
            "active" => counts.active = n,
            "archived" => counts.archived = n,
            _ => {}
        }
    }
    Ok(counts)
}

/// The newest activities on customers the user may see.
async fn recent(state: &AppState, user: &UiUser) -> Result<Vec<RecentRow>> {
    let who = &user.principal;
    let mut args = Args::new();
    let tenant = args.text(who.tenant_id.as_str());
    let scope = match who.customer_scope() {
        CustomerScope::All => String::new(),
        // The scope condition names customer columns unqualified, so it
        // goes into a subquery of its own.
        other => format!(
            " AND a.customer_id IN (SELECT id FROM customers WHERE tenant_id = {tenant}{})",
            scope_sql(&other, &mut args)
        ),
    };
    let limit = args.int(RECENT);
    let sql = format!(
        "SELECT a.customer_id, a.kind, a.summary, a.data, a.created_at, c.company, c.contact_name \
         FROM activities a JOIN customers c ON c.tenant_id = a.tenant_id AND c.id = a.customer_id \
         WHERE a.tenant_id = {tenant}{scope} ORDER BY a.id DESC LIMIT {limit}"
    );
    Ok(args
        .bind_as(sqlx::query_as::<_, RecentRow>(&sql))
        .fetch_all(state.db().pool())
        .await?)
}
