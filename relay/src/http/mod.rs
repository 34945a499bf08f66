//! The relay's HTTP API (axum): the routes, and the health, readiness and metrics endpoints. What
//! every endpoint shares (the state, the operator check, errors) is in [`crate::request`], which
//! FHIR uses too.
//!
//! - `GET /healthz` (the process answers), `GET /readyz` (the store answers too), `GET /metrics`
//!   (Prometheus text format), no token;
//! - `/admin/...` (admin token): the directory, enrollment codes, devices and revocation, record
//!   views and audit trails (each read logged), the read log — see [`admin`];
//! - `/v1/...` (token): referral worklists and decisions, records ([`referrals`]), closed-loop
//!   statistics ([`statistics`]), the changes feed ([`changes`]), devices ([`consortium`]);
//! - `GET /openapi.json`: the OpenAPI description of all the above, generated from the handlers;
//! - `/fhir/...` ([`crate::fhir`]) and `/dashboard` ([`dashboard`]).

pub mod admin;
pub mod alerts;
pub mod changes;
pub mod consortium;
pub mod dashboard;
pub mod referrals;
pub mod statistics;

pub(crate) use crate::request::blocking;
pub use crate::request::{Admin, AppError, AppState, Body, ErrorBody, Operator, Params};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The whole HTTP API. Tests call it with `app(state).oneshot(request)`, no socket needed.
pub fn app(state: AppState) -> Router {
    let (documented, description) = documented().split_for_parts();
    let description = Arc::new(description);
    documented
        .route("/openapi.json", get(move || async move { Json(description.as_ref().clone()) }))
        .nest("/fhir", crate::fhir::routes())
        .merge(dashboard::routes())
        .fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            AppError::NotFound(format!("no endpoint {method} {}", uri.path()))
        })
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The API described at `/openapi.json` (everything but FHIR, which has its own
/// `CapabilityStatement`, and the dashboard's assets): each route is registered together with its
/// handler's `#[utoipa::path]`, so the description cannot drift from the routes.
pub fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .nest("/admin", admin::routes())
        .nest("/v1", v1())
}

/// The operators' API: worklists, referral decisions, records, statistics, the changes feed.
fn v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(consortium::organizations))
        .routes(routes!(consortium::devices))
        .routes(routes!(referrals::worklist))
        .routes(routes!(alerts::alerts))
        .routes(routes!(statistics::statistics))
        .routes(routes!(referrals::referral))
        .routes(routes!(referrals::downward))
        .routes(routes!(referrals::act))
        .routes(routes!(referrals::patient))
        .routes(routes!(changes::changes))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Yilian relay API",
        description = "The consortium relay's HTTP API: the directory and devices (admin), referral worklists \
                       and decisions, records, closed-loop statistics and the changes feed (/v1). Errors are \
                       {\"error\": \"...\"} naming the problem. FHIR R4 is under /fhir (see /fhir/metadata)."
    ),
    modifiers(&BearerToken),
    tags(
        (name = "health", description = "liveness, readiness, metrics (no token)"),
        (name = "admin", description = "the directory, enrollment, devices, audit (admin token)"),
        (name = "referrals", description = "worklists and the referral desk's decisions"),
        (name = "records", description = "residents' records; every read is logged"),
        (name = "statistics", description = "two-way referral statistics and the closed loop"),
        (name = "changes feed", description = "what a hospital system follows to ingest every synced record"),
        (name = "consortium", description = "organizations and devices with their sync lag"),
    )
)]
struct ApiDoc;

/// Adds the operator token scheme (`Authorization: Bearer yat_…`).
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("yat_…").build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the store answers: 200, or 503 naming what failed.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses((status = 200, description = "the store answers"), (status = 503, description = "it does not", body = ErrorBody))
)]
async fn readyz(State(state): State<AppState>) -> Response {
    let storage = state.storage.clone();
    match blocking(move || storage.figures()).await {
        Ok(_) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": "the relay's store does not answer" })))
                .into_response()
        }
    }
}

/// The counters in the Prometheus (OpenMetrics) text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text"))
)]
async fn metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let storage = state.storage.clone();
    let figures = blocking(move || storage.figures()).await?;
    let body = state.metrics.render(figures);
    Ok(([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response())
}

/// Serves the API on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app(state)).with_graceful_shutdown(async move { stop.cancelled().await }).await
}
