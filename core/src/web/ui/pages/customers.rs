//! `/customers`: the list with search and keyset paging, one customer with
//! contacts, notes and timeline, and the form for a new customer.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use tera::Context;

use super::{activity_text, present};
use crate::crm::contacts;
use crate::crm::customers::{self, CustomerInput, ListQuery};
use crate::crm::notes::{self, NoteInput};
use crate::crm::timeline::{self, TimelineQuery};
use crate::error::Result;
use crate::ids::CustomerId;
use crate::license::LimitKind;
use crate::web::ui::render::{FormError, Page};
use crate::web::ui::session::UiUser;
use crate::web::AppState;

/// Customers per page of the list.
const PAGE_SIZE: i64 = 25;
/// Timeline entries on the customer page.
const TIMELINE_SIZE: i64 = 50;

/// Query of `GET /customers`; blank fields count as absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListParams {
    q: String,
    status: String,
    cursor: String,
}

/// `GET /customers`: the whole page, or only the table when htmx asks
/// (the search box updates the table as one types).
pub(crate) async fn index(
    State(state): State<AppState>,
    user: UiUser,
    Query(params): Query<ListParams>,
) -> Response {
    let page = user.page(&state);
    page.finish(list(&state, &user, &page, params).await)
}

async fn list(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    params: ListParams,
) -> Result<Response> {
    user.require_staff()?;
    let who = &user.principal;
    let query = ListQuery {
        q: present(&params.q),
        status: present(&params.status),
        limit: Some(PAGE_SIZE),
        cursor: present(&params.cursor),
    };
    let result = customers::list(state.db(), who, &query).await?;
    let mut ctx = Context::new();
    ctx.insert("customers", &result.items);
    ctx.insert("q", &params.q);
    ctx.insert("status", &params.status);
    ctx.insert("paged", &query.cursor.is_some());
    ctx.insert(
        "first_href",
        &list_href(query.q.as_deref(), query.status.as_deref(), None),
    );
    ctx.insert(
        "next_href",
        &result
            .next_cursor
            .as_deref()
            .map(|c| list_href(query.q.as_deref(), query.status.as_deref(), Some(c))),
    );
    ctx.insert("can_write", &who.can("customers.write"));
    if user.req.wants_fragment() {
        page.render("customers/_table.html", ctx)
    } else {
        page.render("customers/list.html", ctx)
    }
}

/// The URL of a page of the list.
fn list_href(q: Option<&str>, status: Option<&str>, cursor: Option<&str>) -> String {
    let params: Vec<String> = [("q", q), ("status", status), ("cursor", cursor)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC))))
        .collect();
    if params.is_empty() {
        "/customers".to_string()
    } else {
        format!("/customers?{}", params.join("&"))
    }
}

/// Fields of the new-customer form.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct CustomerForm {
    #[serde(rename = "_csrf", skip_serializing)]
    csrf: String,
    company: String,
    contact_name: String,
    email: String,
    phone: String,
    street: String,
    postal_code: String,
    city: String,
    region: String,
    country: String,
    tags: String,
}

impl CustomerForm {
    fn input(&self) -> CustomerInput {
        let opt = |s: &str| present(s).map(Some);
        let tags: Vec<String> = self
            .tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        CustomerInput {
            company: opt(&self.company),
            contact_name: opt(&self.contact_name),
            email: opt(&self.email),
            phone: opt(&self.phone),
            street: opt(&self.street),
            postal_code: opt(&self.postal_code),
            city: opt(&self.city),
            region: opt(&self.region),
            country: opt(&self.country),
            tags: (!tags.is_empty()).then_some(tags),
            ..Default::default()
        }
    }
}

/// `GET /customers/new`.
pub(crate) async fn new_form(State(state): State<AppState>, user: UiUser) -> Response {
    let page = user.page(&state);
    let result = user
        .require_staff()
        .and_then(|()| user.principal.require("customers.write"))
        .and_then(|()| render_form(&page, &CustomerForm::default(), None));
    page.finish(result)
}

fn render_form(page: &Page<'_>, form: &CustomerForm, error: Option<FormError>) -> Result<Response> {
    let mut ctx = Context::new();
    ctx.insert("form", form);
    let status = FormError::insert_into(&error, &mut ctx);
    page.render_status(status, "customers/new.html", ctx)
}

/// `POST /customers`: create, then show the new customer.
pub(crate) async fn create(
    State(state): State<AppState>,
    user: UiUser,
    Form(form): Form<CustomerForm>,
) -> Response {
    let page = user.page(&state);
    page.finish(create_customer(&state, &user, &page, form).await)
}

async fn create_customer(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    form: CustomerForm,
) -> Result<Response> {
    user.check_csrf(&form.csrf)?;
    user.require_staff()?;
    let now = state.now_ms();
    let quota = state
        .licensing()
        .quota(state.db(), LimitKind::Customers, now)
        .await?;
    match customers::create(state.db(), &user.principal, &form.input(), &quota, now).await {
        Ok(c) => Ok(Redirect::to(&format!("/customers/{}", c.id)).into_response()),
        Err(e) => {
            let error = FormError::from_error(page, e)?;
            render_form(page, &form, Some(error))
        }
    }
}

/// `GET /customers/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<String>,
) -> Response {
    let page = user.page(&state);
    let id = CustomerId::from_path(id);
    page.finish(detail(&state, &user, &page, &id, None).await)
}

/// A note that could not be saved, shown again in its form.
struct NoteDraft {
    body: String,
    error: FormError,
}

#[derive(Debug, Serialize)]
struct NoteView {
    body: String,
    author: String,
    created_at: String,
}

#[derive(Debug, Serialize)]
struct ActivityView {
    text: String,
    source: String,
    author: String,
    created_at: String,
}

async fn detail(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    id: &CustomerId,
    draft: Option<NoteDraft>,
) -> Result<Response> {
    user.require_staff()?;
    let who = &user.principal;
    let db = state.db();
    let customer = customers::get(db, who, id).await?;
    let contacts = contacts::list(db, who, id).await?;
    let notes = notes::list(db, who, id).await?;
    let activities = timeline::list(
        db,
        who,
        id,
        &TimelineQuery {
            limit: Some(TIMELINE_SIZE),
            before: None,
        },
    )
    .await?;
    let names: HashMap<String, String> = crate::auth::users::list(db, &who.tenant_id)
        .await?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect();
    let name_of = |id: &Option<String>| {
        id.as_ref()
            .and_then(|i| names.get(i))
            .cloned()
            .unwrap_or_default()
    };
    let notes: Vec<NoteView> = notes
        .into_iter()
        .map(|n| NoteView {
            author: name_of(&n.author_id),
            body: n.body,
            created_at: n.created_at,
        })
        .collect();
    let activities: Vec<ActivityView> = activities
        .into_iter()
        .map(|a| ActivityView {
            text: activity_text(page, &a.kind, &a.summary, &a.data),
            author: name_of(&a.actor_id),
            source: a.source,
            created_at: a.created_at,
        })
        .collect();
    let custom_fields: Vec<(String, String)> = customer
        .custom_fields
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect();
    let mut ctx = Context::new();
    ctx.insert("customer", &customer);
    ctx.insert("custom_fields", &custom_fields);
    ctx.insert("contacts", &contacts);
    ctx.insert("notes", &notes);
    ctx.insert("activities", &activities);
    ctx.insert("can_write", &who.can("customers.write"));
    ctx.insert("tz", &page.time_zone().await);
    ctx.insert(
        "tabs",
        &crate::web::ui::hooks::customer_tabs(state, who, id.as_str()).await,
    );
    let status = match &draft {
        Some(d) => {
            ctx.insert("note_body", &d.body);
            ctx.insert("note_error", &d.error);
            d.error.status()
        }
        None => axum::http::StatusCode::OK,
    };
    page.render_status(status, "customers/detail.html", ctx)
}

/// Fields of the add-note form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NoteForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    body: String,
}

/// `POST /customers/{id}/notes`: add a note, then back to the customer.
pub(crate) async fn add_note(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<String>,
    Form(form): Form<NoteForm>,
) -> Response {
    let page = user.page(&state);
    let id = CustomerId::from_path(id);
    page.finish(save_note(&state, &user, &page, &id, form).await)
}

async fn save_note(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    id: &CustomerId,
    form: NoteForm,
) -> Result<Response> {
    user.check_csrf(&form.csrf)?;
    user.require_staff()?;
    let input = NoteInput {
        body: form.body.clone(),
    };
    match notes::create(state.db(), &user.principal, id, &input, state.now_ms()).await {
        Ok(_) => Ok(Redirect::to(&format!("/customers/{id}#notes")).into_response()),
        Err(e) => {
            let error = FormError::from_error(page, e)?;
            let draft = NoteDraft {
                body: form.body,
                error,
            };
            detail(state, user, page, id, Some(draft)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_links_keep_the_filters_and_encode_them() {
        assert_eq!(list_href(None, None, None), "/customers");
        assert_eq!(
            list_href(Some("a&b c"), Some("active"), Some("xyz")),
            "/customers?q=a%26b%20c&status=active&cursor=xyz"
        );
    }
}
