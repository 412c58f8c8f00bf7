//! `/api/v1/license`: the installation's license (self-hosted; admins with
//! `license.manage`). Reading it never changes anything; installing a file
//! verifies it completely first, and a refused file changes nothing.
//! Neither the license text nor its signature is ever sent back.

use axum::body::Body;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{self, AuditEvent};
use crate::auth::Principal;
use crate::clock::rfc3339;
use crate::error::{Code, Error, ErrorBody, Result};
use crate::license::describe::describe;
use crate::license::state::{DAY_MS, TRIAL_DAYS};
use crate::license::{KeyKind, LicenseStatus};
use crate::web::extract::ApiJson;
use crate::web::AppState;

/// The permission the license API and page need.
pub const PERMISSION: &str = "license.manage";

/// Largest body an install takes; a license is ~1 KiB and the verifier
/// refuses more than 64 KiB with its own explanation.
const MAX_BODY: usize = 1024 * 1024;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_license, install_license))
}

/// The installation's license and what it means now.
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseInfo {
    /// `trial`, `active`, `grace`, `expired` or `clock_moved_back`.
    pub state: String,
    /// What the state means and what to do.
    pub explanation: String,
    /// Whether admins are warned: grace, expired, clock moved back, or the
    /// trial's last 7 days.
    pub needs_attention: bool,
    /// This installation's id (what an instance-bound license names).
    pub instance_id: String,
    /// When the installation's trial of every module ends (or ended).
    pub trial_ends_at: String,
    /// The installed license, if one is installed and usable.
    pub license: Option<InstalledLicense>,
    /// Why an installed license is not used (e.g. a host-bound license after
    /// the public URL changed): it is reported, never silently ignored.
    pub problem: Option<LicenseProblem>,
    /// Whether this build trusts the license test key (a development build).
    pub development_build: bool,
}

/// What the installed license says (never its text or signature).
#[derive(Debug, Serialize, ToSchema)]
pub struct InstalledLicense {
    /// The vendor's id of the license.
    pub license_id: String,
    /// Licensee's name.
    pub licensee_name: String,
    /// Licensee's e-mail.
    pub licensee_email: String,
    /// Licensee's company.
    pub licensee_company: Option<String>,
    /// `starter`, `professional` or `enterprise`.
    pub edition: String,
    /// When it expires; absent for a perpetual license.
    pub expires_at: Option<String>,
    /// When licensed modules become read-only (expiry plus grace days).
    pub read_only_from: Option<String>,
    /// Until when a perpetual license includes updates.
    pub updates_until: Option<String>,
    /// Modules it unlocks (`*`: every module), each with an optional
    /// version requirement and end of its own.
    pub modules: Vec<LicensedModule>,
    /// Caps; absent means unlimited.
    pub limits: LicenseLimits,
    /// When it was installed here.
    pub installed_at: Option<String>,
    /// Whether a vendor key or the test key signed it.
    pub signed_by: KeyKind,
    /// Every field in words, as `kontor license inspect` prints them.
    pub fields: Vec<LicenseField>,
}

/// A module a license unlocks.
#[derive(Debug, Serialize, ToSchema)]
pub struct LicensedModule {
    /// Module (entitlement) id, or `*`.
    pub id: String,
    /// Versions covered, e.g. `^1`.
    pub version: Option<String>,
    /// Its own end.
    pub expires_at: Option<String>,
}

/// A license's caps.
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseLimits {
    /// Active users who work in the CRM (portal logins do not count).
    pub users: Option<u64>,
    /// Customers.
    pub customers: Option<u64>,
    /// Tenants.
    pub tenants: Option<u64>,
}

/// One field of a license, in words.
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseField {
    /// E.g. `expires`.
    pub label: String,
    /// E.g. `2027-01-01T00:00:00Z (then 14 grace days ...)`.
    pub value: String,
}

/// Why an installed license is not used.
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseProblem {
    /// The refusal's stable code, e.g. `license_wrong_instance`.
    pub code: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl LicenseInfo {
    /// The view of `status` at `now`.
    pub fn new(status: &LicenseStatus, development_build: bool, now: i64) -> Self {
        let license = status.license.as_ref().map(|l| {
            let p = l.payload();
            InstalledLicense {
                license_id: p.license_id.clone(),
                licensee_name: p.licensee.name.clone(),
                licensee_email: p.licensee.email.clone(),
                licensee_company: p.licensee.company.clone(),
                edition: p.edition.to_string(),
                expires_at: p.expires_at.map(rfc3339),
                read_only_from: p
                    .expires_at
                    .map(|at| rfc3339(at.saturating_add(i64::from(p.grace_days) * DAY_MS))),
                updates_until: p.updates_until.map(rfc3339),
                modules: p
                    .modules
                    .iter()
                    .map(|m| LicensedModule {
                        id: m.id.clone(),
                        version: m.version.as_ref().map(|v| v.to_string()),
                        expires_at: m.expires_at.map(rfc3339),
                    })
                    .collect(),
                limits: LicenseLimits {
                    users: p.limits.users,
                    customers: p.limits.customers,
                    tenants: p.limits.tenants,
                },
                installed_at: status.installed_at.map(rfc3339),
                signed_by: l.key_kind(),
                fields: describe(l)
                    .into_iter()
                    .map(|(label, value)| LicenseField {
                        label: label.to_string(),
                        value,
                    })
                    .collect(),
            }
        });
        LicenseInfo {
            state: status.state.name().to_string(),
            explanation: status.explanation(),
            needs_attention: status.state.needs_attention(now) || status.problem.is_some(),
            instance_id: status.instance_id.clone(),
            trial_ends_at: rfc3339(status.trial_started_at.saturating_add(TRIAL_DAYS * DAY_MS)),
            license,
            problem: status.problem.as_ref().map(|p| LicenseProblem {
                code: p.code().as_str().to_string(),
                message: p.to_string(),
            }),
            development_build,
        }
    }
}

/// The caller may manage the license, and there is one to manage.
pub(crate) fn authorize(state: &AppState, who: &Principal) -> Result<()> {
    who.require(PERMISSION)?;
    state.licensing().require_self_hosted()
}

/// The status as the API and the license page show it.
pub(crate) async fn info(state: &AppState) -> Result<LicenseInfo> {
    let now = state.now_ms();
    let status = state.licensing().status(state.db(), now).await?;
    Ok(LicenseInfo::new(
        &status,
        state.licensing().trusts_test_key(),
        now,
    ))
}

/// The installation's license: state (trial, active, grace, expired,
/// clock moved back), what it means, the licensee, modules, limits and
/// expiry.
#[utoipa::path(get, path = "/license", tag = "license",
    responses((status = 200, body = LicenseInfo), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn get_license(
    State(state): State<AppState>,
    who: Principal,
) -> Result<ApiJson<LicenseInfo>> {
    authorize(&state, &who)?;
    Ok(ApiJson(info(&state).await?))
}

/// Install a license: the body is the armored license text as the vendor
/// sent it (`-----BEGIN KONTOR LICENSE-----` ...). It is verified
/// completely — signature, dates, instance — before anything changes; a
/// refusal says why with its code (`license_bad_signature`,
/// `license_expired`, `license_wrong_instance`...) and the license that was
/// installed stays.
#[utoipa::path(put, path = "/license", tag = "license",
    request_body(content = String, content_type = "text/plain"),
    responses((status = 200, body = LicenseInfo), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn install_license(
    State(state): State<AppState>,
    who: Principal,
    body: Body,
) -> Result<ApiJson<LicenseInfo>> {
    authorize(&state, &who)?;
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        Error::new(
            Code::PayloadTooLarge,
            "a license file is about 1 KiB; send the file as it is",
        )
    })?;
    install(&state, &who, &bytes).await?;
    Ok(ApiJson(info(&state).await?))
}

/// Install `text` as the license, and audit who did — a refusal too.
pub(crate) async fn install(state: &AppState, who: &Principal, text: &[u8]) -> Result<()> {
    let now = state.now_ms();
    let result = state.licensing().install(state.db(), text, now).await;
    let event = match &result {
        Ok(status) => AuditEvent::new("license.installed").data(serde_json::json!({
            "license_id": status.license.as_ref().map(|l| l.payload().license_id.clone()),
            "state": status.state.name(),
        })),
        Err(e) => AuditEvent::new("license.refused")
            .data(serde_json::json!({ "code": e.code().as_str() })),
    };
    audit::record(state.db(), &event.by(who), now).await?;
    result.map(|_| ())
}
