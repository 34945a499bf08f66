//! What every request handler shares, the HTTP API's and FHIR's alike: the state, the operator
//! behind a request and what it may read ([`access`]), request bodies and queries ([`extract`]),
//! errors that never leak internals, and store calls run off the async workers.

mod access;
mod extract;

pub use access::{READERS, mask_name, masked_for, name_for, readable_record};
pub use extract::{Admin, Body, Operator, Params};

use crate::metrics::RelayMetrics;
use crate::storage::RelayStorage;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::watch;
use utoipa::ToSchema;
use yilian_core::Error;

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

/// An error answer.
#[derive(serde::Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong: the field, parameter, token, role or status that refused the request.
    pub error: String,
}

/// Runs a storage call off the async workers (SQLite blocks).
pub async fn blocking<T: Send + 'static>(
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
    /// 409: already exists, or the referral's status does not allow the transition.
    Conflict(String),
    /// 500: logged, not shown.
    Internal(String),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        match e {
            Error::Validation { .. } => AppError::BadRequest(e.to_string()),
            // The referral is not in a state that allows it: a conflict with its current status.
            Error::Transition { .. } => AppError::Conflict(e.to_string()),
            Error::NotFound { .. } => AppError::NotFound(e.to_string()),
            Error::AlreadyExists { .. } => AppError::Conflict(e.to_string()),
            Error::Forbidden { reason } => AppError::Forbidden(reason),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl AppError {
    /// The HTTP status and the message to show (internal failures are logged here and shown as a
    /// generic message).
    pub fn status_and_message(self) -> (StatusCode, String) {
        match self {
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
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = self.status_and_message();
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}
