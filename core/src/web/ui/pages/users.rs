//! `/users`: the people of the tenant, and the form for a new one.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use tera::Context;

use super::present;
use crate::audit::{self, AuditEvent};
use crate::auth::users::{self, NewUser};
use crate::auth::Role;
use crate::error::{Code, Error, Result};
use crate::web::ui::render::{FormError, Page};
use crate::web::ui::session::UiUser;
use crate::web::AppState;

/// Query of `GET /users`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct UsersParams {
    /// Set after a user was created, to confirm it.
    created: Option<String>,
}

/// Fields of the new-user form.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct UserForm {
    #[serde(rename = "_csrf", skip_serializing)]
    csrf: String,
    email: String,
    name: String,
    role: String,
    #[serde(skip_serializing)]
    password: String,
    locale: String,
}

/// `GET /users`.
pub(crate) async fn index(
    State(state): State<AppState>,
    user: UiUser,
    Query(params): Query<UsersParams>,
) -> Response {
    let page = user.page(&state);
    let form = UserForm {
        role: Role::Staff.as_str().to_string(),
        ..Default::default()
    };
    let created = params.created.is_some();
    page.finish(render(&state, &user, &page, &form, None, created).await)
}

/// The roles the current user may hand out here. Portal users belong to a
/// customer record and are created from the API.
fn assignable_roles(user: &UiUser) -> Vec<&'static str> {
    Role::ALL
        .into_iter()
        .filter(|r| *r != Role::Customer)
        .filter(|r| *r != Role::Owner || user.principal.role == Role::Owner)
        .map(Role::as_str)
        .collect()
}

async fn render(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    form: &UserForm,
    error: Option<FormError>,
    created: bool,
) -> Result<Response> {
    let who = &user.principal;
    who.require("users.read")?;
    let list = users::list(state.db(), &who.tenant_id).await?;
    let mut ctx = Context::new();
    ctx.insert("users", &list);
    ctx.insert("can_manage", &who.can("users.manage"));
    ctx.insert("roles", &assignable_roles(user));
    ctx.insert("form", form);
    ctx.insert("created", &created);
    ctx.insert("tz", &page.time_zone().await);
    let status = FormError::insert_into(&error, &mut ctx);
    page.render_status(status, "users/list.html", ctx)
}

/// `POST /users`: create a user, then back to the list.
pub(crate) async fn create(
    State(state): State<AppState>,
    user: UiUser,
    Form(form): Form<UserForm>,
) -> Response {
    let page = user.page(&state);
    page.finish(create_user(&state, &user, &page, form).await)
}

async fn create_user(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    form: UserForm,
) -> Result<Response> {
    user.check_csrf(&form.csrf)?;
    let who = &user.principal;
    who.require("users.manage")?;
    match insert(state, user, &form).await {
        Ok(()) => Ok(Redirect::to("/users?created=1").into_response()),
        Err(e) => {
            let error = FormError::from_error(page, e)?;
            render(state, user, page, &form, Some(error), false).await
        }
    }
}

async fn insert(state: &AppState, user: &UiUser, form: &UserForm) -> Result<()> {
    let who = &user.principal;
    let role: Role = form.role.parse()?;
    if !assignable_roles(user).contains(&role.as_str()) {
        return match role {
            Role::Owner => Err(Error::new(
                Code::Forbidden,
                "only an owner can make a new owner",
            )),
            _ => Err(Error::invalid("role", "create portal users from the API")),
        };
    }
    let new = NewUser {
        email: form.email.trim().to_string(),
        name: form.name.trim().to_string(),
        role,
        password: form.password.clone(),
        locale: present(&form.locale),
        customer_id: None,
    };
    let now = state.now_ms();
    let quota = users::quota_for(state.licensing(), state.db(), new.role, now).await?;
    let mut tx = state.db().begin().await?;
    quota.check_tx(&mut tx).await?;
    let created = users::create(&mut tx, &who.tenant_id, &new, now).await?;
    audit::record_tx(
        &mut tx,
        &AuditEvent::new("user.created")
            .tenant(&who.tenant_id)
            .actor(who.user_id.as_str())
            .target("user", &created.id)
            .data(serde_json::json!({ "role": created.role, "via": "ui" })),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
