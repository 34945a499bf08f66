//! The relay's HTTP API (axum). This module holds what every endpoint shares: the state, the
//! operator check (a bearer token, stored hashed), and the error type that never leaks internals.
//!
//! - `GET /healthz` (the process answers), `GET /readyz` (the store answers too), `GET /metrics`
//!   (Prometheus text format), no token;
//! - `/admin/...` (token): the directory, enrollment codes, devices and revocation, record views
//!   and audit trails (each read logged), the read log — see [`admin`].

pub mod admin;

use crate::metrics::RelayMetrics;
use crate::storage::RelayStorage;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;
use yilian_core::Error;
use yilian_core::store::OperatorRole;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The relay's storage.
    pub storage: Arc<dyn RelayStorage>,
    /// Moves when a device is revoked, so the QUIC side closes its connections at once (see
    /// [`crate::Relay::revocations`]).
    pub revocations: Arc<watch::Sender<u64>>,
    /// The relay's counters (moved by the QUIC side, rendered by `/metrics`).
    pub metrics: Arc<RelayMetrics>,
}

/// The whole HTTP API. Tests call it with `app(state).oneshot(request)`, no socket needed.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(serde_json::json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/admin", admin::routes())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Ready when the store answers: 200, or 503 naming what failed.
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

/// The operator making a request: the live API token presented as `Authorization: Bearer <token>`
/// (its name and role).
pub struct Operator {
    /// The token's name.
    pub name: String,
    /// What it may do.
    pub role: OperatorRole,
}

impl Operator {
    /// 403 unless the operator has one of `roles`.
    pub fn allow(&self, roles: &[OperatorRole]) -> Result<(), AppError> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let needed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(AppError::Forbidden(format!(
            "token {} has the role {}; this needs {}",
            self.name,
            self.role,
            needed.join(" or ")
        )))
    }
}

/// An operator with the `admin` role (the directory, enrollment, devices, audit): the token's name.
pub struct Admin(pub String);

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let operator = Operator::from_request_parts(parts, state).await?;
        operator.allow(&[OperatorRole::Admin])?;
        Ok(Admin(operator.name))
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AppError::Unauthorized)?
            .trim()
            .to_string();
        let storage = state.storage.clone();
        match blocking(move || storage.admin_token_owner(&token)).await? {
            Some(operator) => Ok(Operator { name: operator.name, role: operator.role }),
            None => Err(AppError::Unauthorized),
        }
    }
}

/// Runs a storage call off the async workers (SQLite blocks).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> yilian_core::Result<T> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| AppError::Internal(e.to_string()))?.map_err(AppError::from)
}

/// An error answer: a status and `{"error": "..."}`. Internal failures are logged and answered
/// with a generic message.
#[derive(Debug)]
pub enum AppError {
    /// 400: the request broke a rule (the message names the field).
    BadRequest(String),
    /// 401: no valid token.
    Unauthorized,
    /// 403: not allowed.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 409: already exists.
    Conflict(String),
    /// 500: logged, not shown.
    Internal(String),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        match e {
            Error::Validation { .. } | Error::Transition { .. } => AppError::BadRequest(e.to_string()),
            Error::NotFound { .. } => AppError::NotFound(e.to_string()),
            Error::AlreadyExists { .. } => AppError::Conflict(e.to_string()),
            Error::Forbidden { reason } => AppError::Forbidden(reason),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            AppError::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "an operator token is required: Authorization: Bearer <token>".into())
            }
            AppError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            AppError::Conflict(m) => (StatusCode::CONFLICT, m),
            AppError::Internal(m) => {
                tracing::error!(error = %m, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the relay's log".into())
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}
