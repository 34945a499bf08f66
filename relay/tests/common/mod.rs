//! The relay's HTTP API without a socket: an in-memory store, an admin token, and a call helper
//! that returns the status and the JSON body.
#![allow(dead_code, clippy::unwrap_used)]

pub mod consortium;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::watch;
use tower::ServiceExt;
use yilian_core::Store;
use yilian_core::store::OperatorRole;
use yilian_relay::http::{AppState, app};
use yilian_relay::metrics::RelayMetrics;

pub use yilian_testing::clock::{now_ms, options, today};

pub struct Api {
    pub state: AppState,
    pub token: String,
    pub store: Arc<Store>,
}

impl Api {
    /// A relay store in memory with one admin token (`ops-li`).
    pub fn new() -> Api {
        let store = Arc::new(Store::open_in_memory(options()).unwrap());
        let token = store.create_admin_token("ops-li", OperatorRole::Admin, None).unwrap();
        let state = AppState {
            storage: store.clone(),
            revocations: Arc::new(watch::Sender::new(0)),
            metrics: Arc::new(RelayMetrics::default()),
        };
        Api { state, token, store }
    }

    /// A request with an optional bearer token and JSON body; the answer's status and body (a
    /// JSON string when the body is not JSON).
    pub async fn call(&self, method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder().method(method).uri(uri);
        let body = body.map(|b| b.to_string());
        self.raw(request, token, body).await
    }

    /// Like [`Api::call`] with the body sent as it is (malformed JSON, ...).
    pub async fn raw(
        &self,
        mut request: axum::http::request::Builder,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request.header("content-type", "application/json").body(Body::from(body)),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 8 << 20).await.unwrap();
        let value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    /// A call with the admin token.
    pub async fn admin(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, uri, Some(&self.token), body).await
    }
}

/// The error message of an error answer.
pub fn error(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_else(|| panic!("no error message in {body}"))
}
