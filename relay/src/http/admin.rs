//! Admin endpoints (operator token required): the consortium directory, enrollment codes,
//! devices and their revocation, scopes, record views and audit trails (every read of a record is
//! logged with the operator's name), and the read log.

use super::{Admin, AppError, AppState, Body, Params, blocking};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use yilian_core::model::PatientRecord;
use yilian_core::store::{AuditTrail, DEFAULT_CODE_VALIDITY, RecordRead};
use yilian_core::{Device, DeviceKind, EnrollmentCode, Organization, PatientId, Practitioner, Team};

/// The `/admin` routes, each documented in the OpenAPI description by its handler.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(organizations, add_organization))
        .routes(routes!(practitioners, add_practitioner))
        .routes(routes!(teams, add_team))
        .routes(routes!(add_member, remove_member))
        .routes(routes!(issue_code))
        .routes(routes!(devices))
        .routes(routes!(revoke))
        .routes(routes!(scope))
        .routes(routes!(record))
        .routes(routes!(audit))
        .routes(routes!(reads))
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

#[utoipa::path(
    get,
    path = "/organizations",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "every organization, parents first", body = Vec<Organization>), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
async fn organizations(_: Admin, State(s): State<AppState>) -> Reply<Vec<Organization>> {
    Ok(Json(blocking(move || s.storage.organizations()).await?))
}

#[utoipa::path(
    post,
    path = "/organizations",
    tag = "admin",
    request_body = Organization,
    security(("bearer" = [])),
    responses((status = 201, description = "added", body = Organization), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
async fn add_organization(
    Admin(who): Admin,
    State(s): State<AppState>,
    Body(org): Body<Organization>,
) -> Created<Organization> {
    created(&who, "organization", &org.id.clone(), org, move |org| s.storage.add_organization(org)).await
}

#[utoipa::path(
    get,
    path = "/practitioners",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "every practitioner", body = Vec<Practitioner>), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
async fn practitioners(_: Admin, State(s): State<AppState>) -> Reply<Vec<Practitioner>> {
    Ok(Json(blocking(move || s.storage.practitioners()).await?))
}

#[utoipa::path(
    post,
    path = "/practitioners",
    tag = "admin",
    request_body = Practitioner,
    security(("bearer" = [])),
    responses((status = 201, description = "added", body = Practitioner), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
async fn add_practitioner(
    Admin(who): Admin,
    State(s): State<AppState>,
    Body(practitioner): Body<Practitioner>,
) -> Created<Practitioner> {
    let id = practitioner.id.clone();
    created(&who, "practitioner", &id, practitioner, move |p| s.storage.add_practitioner(p)).await
}

#[utoipa::path(
    get,
    path = "/teams",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "every team with its members", body = Vec<Team>), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
async fn teams(_: Admin, State(s): State<AppState>) -> Reply<Vec<Team>> {
    Ok(Json(blocking(move || s.storage.teams()).await?))
}

#[utoipa::path(
    post,
    path = "/teams",
    tag = "admin",
    request_body = Team,
    security(("bearer" = [])),
    responses((status = 201, description = "added", body = Team), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
async fn add_team(Admin(who): Admin, State(s): State<AppState>, Body(team): Body<Team>) -> Created<Team> {
    created(&who, "team", &team.id.clone(), team, move |team| s.storage.add_team(team)).await
}

#[utoipa::path(
    put,
    path = "/teams/{team}/members/{practitioner}",
    tag = "admin",
    params(("team" = String, Path, description = "team id"), ("practitioner" = String, Path, description = "practitioner id")),
    security(("bearer" = [])),
    responses((status = 204, description = "added"), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
async fn add_member(
    Admin(who): Admin,
    State(s): State<AppState>,
    Path((team, practitioner)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    tracing::info!(operator = %who, %team, %practitioner, "team member added");
    blocking(move || s.storage.set_team_member(&team, &practitioner, true)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = "/teams/{team}/members/{practitioner}",
    tag = "admin",
    params(("team" = String, Path, description = "team id"), ("practitioner" = String, Path, description = "practitioner id")),
    security(("bearer" = [])),
    responses((status = 204, description = "removed"), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
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
#[derive(Deserialize, ToSchema)]
pub struct CodeRequest {
    /// The practitioner the device will belong to.
    pub practitioner: String,
    /// Their organization (default: the practitioner's own).
    pub organization: Option<String>,
    /// An edge hub rather than a phone.
    #[serde(default)]
    pub hub: bool,
    /// Hours the code works (default 72, at most 720).
    pub valid_hours: Option<u64>,
}

#[utoipa::path(
    post,
    path = "/enrollment-codes",
    tag = "admin",
    request_body = CodeRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "a one-time code, shown once", body = EnrollmentCode), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
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

#[utoipa::path(
    get,
    path = "/devices",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "every enrolled device", body = Vec<Device>), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
async fn devices(_: Admin, State(s): State<AppState>) -> Reply<Vec<Device>> {
    Ok(Json(blocking(move || s.storage.devices()).await?))
}

/// Why a device is revoked.
#[derive(Deserialize, ToSchema)]
pub struct RevokeRequest {
    /// Shown to the device when it is refused, and kept.
    pub reason: String,
}

/// A record in a device's scope, and why it is there.
#[derive(Serialize, ToSchema)]
pub struct ScopeRow {
    /// The record (patient id), or `*` for every record.
    pub patient: String,
    /// `team`, `referral`, `created`, `assigned` or `purge` (left the scope).
    pub reason: String,
}

#[utoipa::path(
    post,
    path = "/devices/{device}/revoke",
    tag = "admin",
    params(("device" = String, Path, description = "device id")),
    request_body = RevokeRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "revoked; its connections close at once", body = Device), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
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

#[utoipa::path(
    get,
    path = "/devices/{device}/scope",
    tag = "admin",
    params(("device" = String, Path, description = "device id")),
    security(("bearer" = [])),
    responses((status = 200, description = "the records in the device's scope and why", body = Vec<ScopeRow>), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
async fn scope(_: Admin, State(s): State<AppState>, Path(device): Path<String>) -> Reply<Vec<ScopeRow>> {
    let rows = blocking(move || s.storage.scope_reasons(&device)).await?;
    Ok(Json(rows.into_iter().map(|(patient, reason)| ScopeRow { patient, reason }).collect()))
}

fn patient_id(raw: &str) -> Result<PatientId, AppError> {
    raw.parse().map_err(|_| AppError::BadRequest(format!("patient: {raw:?} is not a patient id")))
}

#[utoipa::path(
    get,
    path = "/records/{patient}",
    tag = "admin",
    params(("patient" = String, Path, description = "patient id (UUID)")),
    security(("bearer" = [])),
    responses((status = 200, description = "the whole record (read logged)", body = PatientRecord), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
async fn record(Admin(who): Admin, State(s): State<AppState>, Path(patient): Path<String>) -> Reply<PatientRecord> {
    let id = patient_id(&patient)?;
    let record = blocking(move || {
        let record = s.storage.record(id)?;
        s.storage.log_record_read(&who, &patient, "record")?;
        Ok(record)
    })
    .await?;
    Ok(Json(record))
}

#[utoipa::path(
    get,
    path = "/records/{patient}/audit",
    tag = "admin",
    params(("patient" = String, Path, description = "patient id (UUID)")),
    security(("bearer" = [])),
    responses((status = 200, description = "who changed which field, from which device, signed (read logged)", body = AuditTrail), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
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
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadsQuery {
    /// Only the reads of this record.
    pub patient: Option<String>,
    /// At most this many (default 100, at most 10000).
    pub limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/reads",
    tag = "admin",
    params(ReadsQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "operators' reads of records, newest first", body = Vec<RecordRead>), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
async fn reads(_: Admin, State(s): State<AppState>, Params(q): Params<ReadsQuery>) -> Reply<Vec<RecordRead>> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    Ok(Json(blocking(move || s.storage.record_reads(q.patient.as_deref(), limit)).await?))
}
