//! `/api/v1/plans`, `/api/v1/subscriptions` and the payment webhook
//! (`/api/v1/webhooks/payments`): SaaS subscriptions.
//!
//! Who may call what:
//! * plans and the tenant's own subscriptions: `subscriptions.read` (owner, admin);
//! * start and cancel: `subscriptions.manage` (the owner unless granted on);
//! * activate: the platform operator's billing system with the operator
//!   token (`KONTOR_OPERATOR_TOKEN`), for any tenant's subscription. A user
//!   of the tenant gets `payment_required`: a paid plan is activated by its
//!   payment (the webhook) — except a free plan, which nothing is owed for;
//! * the webhook: whoever holds the payment webhook secret (the signature
//!   is the credential).
//!
//! Another tenant's subscription id is not found, whoever asks.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::signature;
use crate::auth::Principal;
use crate::config::Mode;
use crate::error::{Code, Error, ErrorBody, Result};
use crate::subscriptions::lifecycle::{self, Actor, Change, Scope, Target};
use crate::subscriptions::webhook::{self, Receipt};
use crate::subscriptions::{plans, Plan, Policy, Subscription};
use crate::web::extract::{credential, ApiJson, CredentialSource};
use crate::web::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plans))
        .routes(routes!(list_subscriptions, start_subscription))
        .routes(routes!(activate_subscription))
        .routes(routes!(cancel_subscription))
        .routes(routes!(payment_webhook))
}

/// Subscriptions exist in SaaS mode only.
fn saas(state: &AppState) -> Result<()> {
    if state.config().mode == Mode::Saas {
        Ok(())
    } else {
        Err(Error::new(
            Code::WrongMode,
            "subscriptions exist in SaaS mode; a self-hosted install is unlocked by its license (/api/v1/license)",
        ))
    }
}

/// The caller of an operator route: the operator (by the operator token)
/// or a user of a tenant.
enum Caller {
    Operator,
    Tenant(Box<Principal>),
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        if let (Some(operator), Some((token, CredentialSource::Bearer))) =
            (state.config().operator_token.as_ref(), credential(parts))
        {
            if operator.matches(&token) {
                return Ok(Caller::Operator);
            }
        }
        Principal::from_request_parts(parts, state)
            .await
            .map(|p| Caller::Tenant(Box::new(p)))
    }
}

/// The plans a tenant can subscribe to, cheapest first.
#[utoipa::path(get, path = "/plans", tag = "subscriptions",
    responses((status = 200, body = Vec<Plan>), (status = 403, body = ErrorBody)))]
async fn list_plans(State(state): State<AppState>, who: Principal) -> Result<ApiJson<Vec<Plan>>> {
    saas(&state)?;
    who.require("subscriptions.read")?;
    Ok(ApiJson(plans::list(state.db(), false).await?))
}

/// The tenant's subscriptions, newest first, with what their modules get now.
#[utoipa::path(get, path = "/subscriptions", tag = "subscriptions",
    responses((status = 200, body = Vec<Subscription>), (status = 403, body = ErrorBody)))]
async fn list_subscriptions(
    State(state): State<AppState>,
    who: Principal,
) -> Result<ApiJson<Vec<Subscription>>> {
    saas(&state)?;
    who.require("subscriptions.read")?;
    let policy = Policy::from_config(state.config());
    Ok(ApiJson(
        lifecycle::list(state.db(), &who.tenant_id, policy, state.now_ms()).await?,
    ))
}

/// The plan to subscribe to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// Id of an offered plan (`GET /plans`).
    pub plan_id: String,
}

/// Subscribe the tenant to a plan: `trialing` for the plan's trial days,
/// `active` for a free plan, `past_due` (payment due now, with the grace)
/// for a paid plan without a trial. The plan's modules are unlocked at once.
#[utoipa::path(post, path = "/subscriptions", tag = "subscriptions", request_body = NewSubscription,
    responses((status = 201, body = Subscription),
        (status = 409, description = "the tenant already has an open subscription", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn start_subscription(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(body): ApiJson<NewSubscription>,
) -> Result<(StatusCode, ApiJson<Subscription>)> {
    saas(&state)?;
    who.require("subscriptions.manage")?;
    let policy = Policy::from_config(state.config());
    let created = lifecycle::start(
        state.db(),
        &who.tenant_id,
        &body.plan_id,
        Actor::User(&who),
        policy,
        state.now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// Activate a subscription: the payment for a period arrived outside the
/// payment provider's webhook (e.g. a bank transfer).
///
/// For the platform operator's billing system, authenticated with the
/// operator token (`KONTOR_OPERATOR_TOKEN`). An active subscription stays as
/// it is, so a repeated call does no harm. A user of the tenant may only
/// activate a free plan; a paid one answers `payment_required`.
#[utoipa::path(post, path = "/subscriptions/{id}/activate", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = Subscription),
        (status = 402, description = "a paid plan is activated by its payment", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the subscription is canceled", body = ErrorBody)))]
async fn activate_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<ApiJson<Subscription>> {
    saas(&state)?;
    let policy = Policy::from_config(state.config());
    let now = state.now_ms();
    let (scope, actor) = match &caller {
        Caller::Operator => (Scope::Any, Actor::Operator),
        Caller::Tenant(who) => {
            who.require("subscriptions.manage")?;
            let own = lifecycle::list(state.db(), &who.tenant_id, policy, now)
                .await?
                .into_iter()
                .find(|s| s.id == id)
                .ok_or_else(|| Error::not_found("subscription"))?;
            if !own.plan.is_free() {
                return Err(Error::new(
                    Code::PaymentRequired,
                    "this subscription becomes active when its payment arrives through the payment provider, or when the operator activates it",
                ));
            }
            (Scope::Tenant(&who.tenant_id), Actor::User(who))
        }
    };
    Ok(ApiJson(
        lifecycle::apply(
            state.db(),
            Target { scope, id: &id },
            Change::Activate,
            actor,
            policy,
            now,
        )
        .await?,
    ))
}

/// Cancel the tenant's subscription. Its modules keep working to the end of
/// the paid (or trial) period, then go read-only: the data stays visible.
#[utoipa::path(post, path = "/subscriptions/{id}/cancel", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = Subscription), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn cancel_subscription(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<Subscription>> {
    saas(&state)?;
    who.require("subscriptions.manage")?;
    Ok(ApiJson(
        lifecycle::apply(
            state.db(),
            Target {
                scope: Scope::Tenant(&who.tenant_id),
                id: &id,
            },
            Change::Cancel,
            Actor::User(&who),
            Policy::from_config(state.config()),
            state.now_ms(),
        )
        .await?,
    ))
}

/// Payment provider events (Stripe-compatible signing).
///
/// Signed with `Kontor-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
/// "<t>.<raw body>")>` (several `v1` allowed), within 5 minutes of the
/// server's clock. Handled: `invoice.paid`, `invoice.payment_failed`,
/// `customer.subscription.deleted`, naming the Kontor subscription in
/// `data.object.metadata.kontor_subscription_id`, `data.object.subscription`
/// or (subscription events) `data.object.id`. Each event id is applied once:
/// a redelivery answers 200 with `outcome: duplicate` and changes nothing.
#[utoipa::path(post, path = "/webhooks/payments", tag = "subscriptions", security(()),
    params(("Kontor-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256>")),
    request_body(content = Object, description = "The event: `{\"id\", \"type\", \"data\": {\"object\": {...}}}`"),
    responses((status = 200, body = Receipt),
        (status = 400, description = "signature missing, malformed, stale or wrong; nothing changed", body = ErrorBody),
        (status = 503, description = "no payment webhook secret configured", body = ErrorBody)))]
async fn payment_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ApiJson<Receipt>> {
    saas(&state)?;
    let header = headers.get(signature::HEADER).and_then(|v| v.to_str().ok());
    Ok(ApiJson(
        webhook::receive(
            state.db(),
            state.config().payment_webhook_secret.as_ref(),
            header,
            &body,
            Policy::from_config(state.config()),
            state.now_ms(),
        )
        .await?,
    ))
}
