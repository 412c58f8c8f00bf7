//! `/api/v1/customers`: customers with their contacts, notes and timeline;
//! CSV import and export; GDPR export and erasure.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::crm::contacts::{self, Contact, ContactInput};
use crate::crm::csv_export;
use crate::crm::csv_import::{self, ImportReport};
use crate::crm::customers::{self, Customer, CustomerInput, CustomerPage, ListQuery};
use crate::crm::gdpr::{self, GdprExport};
use crate::crm::notes::{self, Note, NoteInput};
use crate::crm::timeline::{self, Activity, TimelineQuery};
use crate::error::{Code, Error, ErrorBody, Result};
use crate::ids::CustomerId;
use crate::license::LimitKind;
use crate::web::extract::{ApiJson, ApiQuery};
use crate::web::AppState;

/// Largest CSV file the import takes.
pub const MAX_IMPORT_BYTES: usize = 200 * 1024 * 1024;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_customers, create_customer))
        .routes(routes!(import_customers))
        .routes(routes!(export_customers))
        .routes(routes!(get_customer, update_customer, delete_customer))
        .routes(routes!(list_contacts, create_contact))
        .routes(routes!(update_contact, delete_contact))
        .routes(routes!(list_notes, create_note))
        .routes(routes!(delete_note))
        .routes(routes!(get_timeline))
        .routes(routes!(gdpr_export))
        .routes(routes!(erase_customer))
}

/// Customers the caller may see, by name, one page at a time.
#[utoipa::path(get, path = "/customers", tag = "customers", params(ListQuery),
    responses((status = 200, body = CustomerPage), (status = 422, body = ErrorBody)))]
async fn list_customers(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<ApiJson<CustomerPage>> {
    Ok(ApiJson(customers::list(state.db(), &who, &q).await?))
}

/// Create a customer. A reseller's customers are assigned to them.
#[utoipa::path(post, path = "/customers", tag = "customers", request_body = CustomerInput,
    responses((status = 201, body = Customer), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_customer(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(input): ApiJson<CustomerInput>,
) -> Result<(StatusCode, ApiJson<Customer>)> {
    let input = before_save(&state, &who, None, input).await?;
    let now = state.now_ms();
    let quota = state
        .licensing()
        .quota(state.db(), LimitKind::Customers, now)
        .await?;
    let c = customers::create(state.db(), &who, &input, &quota, now).await?;
    Ok((StatusCode::CREATED, ApiJson(c)))
}

/// Run the `customer.before_save` filters of modules on the input: they
/// may change it or refuse it with a message for the user.
pub(crate) async fn before_save(
    state: &AppState,
    who: &Principal,
    id: Option<&str>,
    input: CustomerInput,
) -> Result<CustomerInput> {
    crate::modules::filters::customer_before_save(
        state.db(),
        state.modules(),
        &who.tenant_id,
        id,
        input,
        state.now_ms(),
    )
    .await
}

/// One customer.
#[utoipa::path(get, path = "/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "Customer id")),
    responses((status = 200, body = Customer), (status = 404, body = ErrorBody)))]
async fn get_customer(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<Customer>> {
    Ok(ApiJson(
        customers::get(state.db(), &who, &CustomerId::from_path(id)).await?,
    ))
}

/// Change a customer: absent fields stay, `null` clears.
#[utoipa::path(patch, path = "/customers/{id}", tag = "customers", request_body = CustomerInput,
    params(("id" = String, Path, description = "Customer id")),
    responses((status = 200, body = Customer), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_customer(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<CustomerInput>,
) -> Result<ApiJson<Customer>> {
    let input = before_save(&state, &who, Some(&id), input).await?;
    Ok(ApiJson(
        customers::update(
            state.db(),
            &who,
            &CustomerId::from_path(id),
            &input,
            state.now_ms(),
        )
        .await?,
    ))
}

/// Delete a customer with its contacts, notes and timeline.
#[utoipa::path(delete, path = "/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "Customer id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_customer(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    customers::delete(state.db(), &who, &CustomerId::from_path(id), state.now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Contacts of a customer.
#[utoipa::path(get, path = "/customers/{id}/contacts", tag = "customers",
    params(("id" = String, Path, description = "Customer id")),
    responses((status = 200, body = Vec<Contact>), (status = 404, body = ErrorBody)))]
async fn list_contacts(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<Vec<Contact>>> {
    Ok(ApiJson(
        contacts::list(state.db(), &who, &CustomerId::from_path(id)).await?,
    ))
}

/// Add a contact.
#[utoipa::path(post, path = "/customers/{id}/contacts", tag = "customers", request_body = ContactInput,
    params(("id" = String, Path, description = "Customer id")),
    responses((status = 201, body = Contact), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_contact(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ContactInput>,
) -> Result<(StatusCode, ApiJson<Contact>)> {
    let c = contacts::create(
        state.db(),
        &who,
        &CustomerId::from_path(id),
        &input,
        state.now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, ApiJson(c)))
}

/// Replace a contact.
#[utoipa::path(put, path = "/customers/{id}/contacts/{contact_id}", tag = "customers", request_body = ContactInput,
    params(("id" = String, Path, description = "Customer id"), ("contact_id" = String, Path, description = "Contact id")),
    responses((status = 200, body = Contact), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_contact(
    State(state): State<AppState>,
    who: Principal,
    Path((id, contact_id)): Path<(String, String)>,
    ApiJson(input): ApiJson<ContactInput>,
) -> Result<ApiJson<Contact>> {
    Ok(ApiJson(
        contacts::update(
            state.db(),
            &who,
            &CustomerId::from_path(id),
            &contact_id,
            &input,
            state.now_ms(),
        )
        .await?,
    ))
}

/// Remove a contact.
#[utoipa::path(delete, path = "/customers/{id}/contacts/{contact_id}", tag = "customers",
    params(("id" = String, Path, description = "Customer id"), ("contact_id" = String, Path, description = "Contact id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_contact(
    State(state): State<AppState>,
    who: Principal,
    Path((id, contact_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    contacts::delete(state.db(), &who, &CustomerId::from_path(id), &contact_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Notes on a customer, newest first.
#[utoipa::path(get, path = "/customers/{id}/notes", tag = "customers",
    params(("id" = String, Path, description = "Customer id")),
    responses((status = 200, body = Vec<Note>), (status = 404, body = ErrorBody)))]
async fn list_notes(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<Vec<Note>>> {
    Ok(ApiJson(
        notes::list(state.db(), &who, &CustomerId::from_path(id)).await?,
    ))
}

/// Add a note.
#[utoipa::path(post, path = "/customers/{id}/notes", tag = "customers", request_body = NoteInput,
    params(("id" = String, Path, description = "Customer id")),
    responses((status = 201, body = Note), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_note(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<NoteInput>,
) -> Result<(StatusCode, ApiJson<Note>)> {
    let n = notes::create(
        state.db(),
        &who,
        &CustomerId::from_path(id),
        &input,
        state.now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, ApiJson(n)))
}

/// Remove a note.
#[utoipa::path(delete, path = "/customers/{id}/notes/{note_id}", tag = "customers",
    params(("id" = String, Path, description = "Customer id"), ("note_id" = String, Path, description = "Note id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_note(
    State(state): State<AppState>,
    who: Principal,
    Path((id, note_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    notes::delete(state.db(), &who, &CustomerId::from_path(id), &note_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The activity timeline of a customer, newest first.
#[utoipa::path(get, path = "/customers/{id}/timeline", tag = "customers", params(("id" = String, Path, description = "Customer id"), TimelineQuery),
    responses((status = 200, body = Vec<Activity>), (status = 404, body = ErrorBody)))]
async fn get_timeline(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<ApiJson<Vec<Activity>>> {
    Ok(ApiJson(
        timeline::list(state.db(), &who, &CustomerId::from_path(id), &q).await?,
    ))
}

/// Import customers from CSV (`Content-Type: text/csv`).
///
/// Columns: company, contact_name, email, phone, street, postal_code, city,
/// region, country, tags (`;`-separated), status, custom_fields (a JSON
/// object); `id`, `created_at`, `updated_at` and `display_name` are ignored.
/// Rows are validated one by one: good rows are imported, bad rows are
/// reported with their line and reason. Rows whose e-mail exists already
/// (in the tenant or earlier in the file) are reported, not imported. Under
/// a license that caps customers, rows up to the cap are imported and the
/// rest reported with the reason of `license_limit_reached`.
#[utoipa::path(post, path = "/customers/import", tag = "customers",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn import_customers(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<ApiJson<ImportReport>> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("text/csv") {
        return Err(Error::new(
            Code::UnsupportedMediaType,
            "send the file as `Content-Type: text/csv`",
        ));
    }
    let limited = http_body_util::Limited::new(body, MAX_IMPORT_BYTES);
    let stream = http_body_util::BodyDataStream::new(limited)
        .map_err(|e| std::io::Error::other(e.to_string()));
    let reader = tokio_util::io::StreamReader::new(stream);
    let now = state.now_ms();
    let quota = state
        .licensing()
        .quota(state.db(), LimitKind::Customers, now)
        .await?;
    let report = csv_import::import(state.db(), &who, reader, &quota, now).await?;
    Ok(ApiJson(report))
}

/// Filters of the export.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `active` or `archived`; both when absent.
    pub status: Option<String>,
}

/// Export the customers the caller may see as CSV (the columns the import reads).
#[utoipa::path(get, path = "/customers/export", tag = "customers", params(ExportQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 403, body = ErrorBody)))]
async fn export_customers(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response> {
    who.require("customers.export")?;
    who.require("customers.read")?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(csv_export::stream(state.db().clone(), who, q.status, tx));
    let stream = tokio_stream_from(rx);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"customers.csv\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>>>,
) -> impl futures::Stream<Item = std::result::Result<Vec<u8>, Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Everything about a customer as one JSON document (GDPR Art. 15/20).
#[utoipa::path(get, path = "/customers/{id}/gdpr-export", tag = "customers",
    params(("id" = String, Path, description = "Customer id")),
    responses((status = 200, body = GdprExport), (status = 404, body = ErrorBody)))]
async fn gdpr_export(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<GdprExport>> {
    Ok(ApiJson(
        gdpr::export(state.db(), &who, &CustomerId::from_path(id), state.now_ms()).await?,
    ))
}

/// Erase a customer (GDPR Art. 17): personal data is anonymised, the record's id stays.
#[utoipa::path(post, path = "/customers/{id}/erase", tag = "customers",
    params(("id" = String, Path, description = "Customer id")),
    responses((status = 200, body = Customer), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn erase_customer(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<Customer>> {
    Ok(ApiJson(
        gdpr::erase(state.db(), &who, &CustomerId::from_path(id), state.now_ms()).await?,
    ))
}
