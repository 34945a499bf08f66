//! Admin endpoints (operator token required): the consortium directory, enrollment codes,
//! devices and their revocation, scopes, record views and audit trails (every read of a record is
//! logged with the operator's name), and the read log.

use super::{Admin, AppError, AppState, Body, Params, blocking};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use std::time::Duration;
use yilian_core::store::{AuditTrail, DEFAULT_CODE_VALIDITY, RecordRead};
use yilian_core::{Device, DeviceKind, EnrollmentCode, Organization, PatientId, Practitioner, Team};

/// The `/admin` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/organizations", get(organizations).post(add_organization))
        .route("/practitioners", get(practitioners).post(add_practitioner))
        .route("/teams", get(teams).post(add_team))
        .route("/teams/{team}/members/{practitioner}", put(add_member).delete(remove_member))
        .route("/enrollment-codes", post(issue_code))
        .route("/devices", get(devices))
        .route("/devices/{device}/revoke", post(revoke))
        .route("/devices/{device}/scope", get(scope))
        .route("/records/{patient}", get(record))
        .route("/records/{patient}/audit", get(audit))
        .route("/reads", get(reads))
}

type Reply<T> = Result<Json<T>, AppError>;
type Created<T> = Result<(StatusCode, Json<T>), AppError>;

/// Adds a directory entry with `add`, logs who did it, and answers 201 with the entry.
async fn created<T: Clone + Send + 'static>(
    operator: &str,
    what: &str,
    id: &str,
    entry: T,
    add: impl FnOnce(&T) -> yilian_core::Result<()> + Send + 'static,
) -> Created<T> {
    let stored = entry.clone();
    blocking(move || add(&stored)).await?;
    tracing::info!(operator, what, id, "directory entry added");
    Ok((StatusCode::CREATED, Json(entry)))
}

async fn organizations(_: Admin, State(s): State<AppState>) -> Reply<Vec<Organization>> {
    Ok(Json(blocking(move || s.storage.organizations()).await?))
}

async fn add_organization(
    Admin(who): Admin,
    State(s): State<AppState>,
    Body(org): Body<Organization>,
) -> Created<Organization> {
    created(&who, "organization", &org.id.clone(), org, move |org| s.storage.add_organization(org)).await
}

async fn practitioners(_: Admin, State(s): State<AppState>) -> Reply<Vec<Practitioner>> {
    Ok(Json(blocking(move || s.storage.practitioners()).await?))
}

async fn add_practitioner(
    Admin(who): Admin,
    State(s): State<AppState>,
    Body(practitioner): Body<Practitioner>,
) -> Created<Practitioner> {
    let id = practitioner.id.clone();
    created(&who, "practitioner", &id, practitioner, move |p| s.storage.add_practitioner(p)).await
}

async fn teams(_: Admin, State(s): State<AppState>) -> Reply<Vec<Team>> {
    Ok(Json(blocking(move || s.storage.teams()).await?))
}

async fn add_team(Admin(who): Admin, State(s): State<AppState>, Body(team): Body<Team>) -> Created<Team> {
    created(&who, "team", &team.id.clone(), team, move |team| s.storage.add_team(team)).await
}

async fn add_member(
    Admin(who): Admin,
    State(s): State<AppState>,
    Path((team, practitioner)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    tracing::info!(operator = %who, %team, %practitioner, "team member added");
    blocking(move || s.storage.set_team_member(&team, &practitioner, true)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_member(
    Admin(who): Admin,
    State(s): State<AppState>,
    Path((team, practitioner)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    tracing::info!(operator = %who, %team, %practitioner, "team member removed");
    blocking(move || s.storage.set_team_member(&team, &practitioner, false)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A request for an enrollment code.
#[derive(Deserialize)]
struct CodeRequest {
    practitioner: String,
    organization: Option<String>,
    #[serde(default)]
    hub: bool,
    /// Hours the code works (default 72, at most 720).
    valid_hours: Option<u64>,
}

async fn issue_code(
    Admin(who): Admin,
    State(s): State<AppState>,
    Body(req): Body<CodeRequest>,
) -> Result<(StatusCode, Json<EnrollmentCode>), AppError> {
    let valid_for =
        req.valid_hours.map(|h| Duration::from_secs(h.saturating_mul(3600))).unwrap_or(DEFAULT_CODE_VALIDITY);
    let kind = if req.hub { DeviceKind::Hub } else { DeviceKind::Phone };
    let code =
        blocking(move || s.storage.issue_code(&req.practitioner, req.organization.as_deref(), kind, valid_for, &who))
            .await?;
    tracing::info!(practitioner = %code.practitioner_id, expires_at = code.expires_at, "enrollment code issued");
    Ok((StatusCode::CREATED, Json(code)))
}

async fn devices(_: Admin, State(s): State<AppState>) -> Reply<Vec<Device>> {
    Ok(Json(blocking(move || s.storage.devices()).await?))
}

/// Why a device is revoked.
#[derive(Deserialize)]
struct RevokeRequest {
    reason: String,
}

async fn revoke(
    Admin(who): Admin,
    State(s): State<AppState>,
    Path(device): Path<String>,
    Body(req): Body<RevokeRequest>,
) -> Reply<Device> {
    let storage = s.storage.clone();
    let revoked = blocking(move || storage.revoke(&device, &who, &req.reason)).await?;
    // Live connections of the device close now, not at the next poll.
    s.revocations.send_modify(|n| *n += 1);
    Ok(Json(revoked))
}

async fn scope(_: Admin, State(s): State<AppState>, Path(device): Path<String>) -> Reply<serde_json::Value> {
    let rows = blocking(move || s.storage.scope_reasons(&device)).await?;
    let rows: Vec<_> =
        rows.into_iter().map(|(doc, reason)| serde_json::json!({ "patient": doc, "reason": reason })).collect();
    Ok(Json(serde_json::Value::Array(rows)))
}

fn patient_id(raw: &str) -> Result<PatientId, AppError> {
    raw.parse().map_err(|_| AppError::BadRequest(format!("patient: {raw:?} is not a patient id")))
}

async fn record(Admin(who): Admin, State(s): State<AppState>, Path(patient): Path<String>) -> Reply<serde_json::Value> {
    let id = patient_id(&patient)?;
    let record = blocking(move || {
        let record = s.storage.record(id)?;
        s.storage.log_record_read(&who, &patient, "record")?;
        Ok(record)
    })
    .await?;
    serde_json::to_value(record).map(Json).map_err(|e| AppError::Internal(e.to_string()))
}

async fn audit(Admin(who): Admin, State(s): State<AppState>, Path(patient): Path<String>) -> Reply<AuditTrail> {
    let id = patient_id(&patient)?;
    let trail = blocking(move || {
        let trail = s.storage.audit_trail(id)?;
        s.storage.log_record_read(&who, &patient, "audit")?;
        Ok(trail)
    })
    .await?;
    Ok(Json(trail))
}

/// Filters of the read log.
#[derive(Deserialize)]
struct ReadsQuery {
    patient: Option<String>,
    limit: Option<usize>,
}

async fn reads(_: Admin, State(s): State<AppState>, Params(q): Params<ReadsQuery>) -> Reply<Vec<RecordRead>> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    Ok(Json(blocking(move || s.storage.record_reads(q.patient.as_deref(), limit)).await?))
}
