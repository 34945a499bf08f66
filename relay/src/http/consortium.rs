//! What every operator may read of the consortium itself: its organizations, and its devices with
//! how far behind each one is (when it last synced, what it has still to pull) — the dashboard's
//! sync-lag view.

use super::{AppError, AppState, Operator, blocking};
use crate::request::READERS;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yilian_core::Organization;
use yilian_core::time::Millis;

/// `GET /v1/organizations`: every organization, parents first.
#[utoipa::path(
    get,
    path = "/organizations",
    tag = "consortium",
    security(("bearer" = [])),
    responses((status = 200, description = "every organization, parents first", body = Vec<Organization>), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
pub async fn organizations(operator: Operator, State(s): State<AppState>) -> Result<Json<Vec<Organization>>, AppError> {
    operator.allow(READERS)?;
    Ok(Json(blocking(move || s.storage.organizations()).await?))
}

/// A device and how far behind it is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceSync {
    /// Device id.
    pub device_id: String,
    /// Its practitioner.
    pub practitioner_id: String,
    /// Their organization.
    pub organization_id: String,
    /// `phone` or `hub`.
    pub kind: String,
    /// When it enrolled (ms).
    pub enrolled_at: Millis,
    /// When it was revoked (ms), if it was.
    pub revoked_at: Option<Millis>,
    /// When it last synced (ms), if ever.
    pub last_sync_at: Option<Millis>,
    /// Changes in its scope it has not pulled yet.
    pub pending_changes: u64,
    /// Their size in bytes.
    pub pending_bytes: u64,
}

/// `GET /v1/devices`: every device with its sync lag (a desk sees its organization's devices).
#[utoipa::path(
    get,
    path = "/devices",
    tag = "consortium",
    security(("bearer" = [])),
    responses((status = 200, description = "devices with their last sync and what they have still to pull", body = Vec<DeviceSync>), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
pub async fn devices(operator: Operator, State(s): State<AppState>) -> Result<Json<Vec<DeviceSync>>, AppError> {
    operator.allow(READERS)?;
    let own = operator.organization_id.clone();
    let rows = blocking(move || {
        let storage = &s.storage;
        let mut out = Vec::new();
        for d in storage.devices()? {
            if own.as_ref().is_some_and(|own| own != &d.organization_id) {
                continue;
            }
            let read = storage.child_read(&d.device_id)?;
            let (pending_changes, pending_bytes) = storage.pending_for(&d.device_id, read)?;
            out.push(DeviceSync {
                last_sync_at: storage.last_sync_at(&d.device_id)?,
                device_id: d.device_id,
                practitioner_id: d.practitioner_id,
                organization_id: d.organization_id,
                kind: d.kind.as_str().to_string(),
                enrolled_at: d.enrolled_at,
                revoked_at: d.revoked_at,
                pending_changes,
                pending_bytes,
            });
        }
        Ok(out)
    })
    .await?;
    Ok(Json(rows))
}
