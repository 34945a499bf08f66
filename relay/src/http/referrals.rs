//! The referral desk's API (`/v1`): an organization's worklist, a referral with its history, the
//! desk's decisions (each one an event signed by the relay's own key that syncs to the devices
//! that see the record), the downward referral that answers an upward one, and the resident's
//! record (every read logged).
//!
//! Who may do what: `admin` everything; `referral_desk` for its own organization only;
//! `analyst` reads, never writes.

use crate::request::{AppError, AppState, Body, Operator, Params, READERS, blocking, name_for, readable_record};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use yilian_core::model::{Direction, NewReferral, NewReferralEvent, PatientRecord, ReferralView, TaskStatus, Urgency};
use yilian_core::store::{OperatorRole, WorklistFilter, WorklistItem, WorklistSide};
use yilian_core::{EventId, PatientId, ReferralId};

/// Roles that may act on referrals.
const ACTORS: &[OperatorRole] = &[OperatorRole::Admin, OperatorRole::ReferralDesk];

/// Worklist filters as query parameters: `side=incoming|outgoing`, `status=requested,received`,
/// `urgency=routine|urgent|emergency`, `direction=upward|downward`, `from`/`to` (`YYYY-MM-DD`,
/// request day, both included), `limit` (default 200, at most 1000).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WorklistQuery {
    /// `incoming` (received) or `outgoing` (sent).
    side: Option<WorklistSide>,
    /// Statuses, comma-separated (`requested,received`).
    status: Option<String>,
    /// `routine`, `urgent` or `emergency`.
    urgency: Option<Urgency>,
    /// `upward` or `downward`.
    direction: Option<Direction>,
    /// Requested on or after this day (`YYYY-MM-DD`, UTC+8).
    from: Option<NaiveDate>,
    /// Requested on or before this day.
    to: Option<NaiveDate>,
    /// At most this many lines (default 200, at most 1000).
    limit: Option<usize>,
}

impl WorklistQuery {
    fn filter(self) -> Result<WorklistFilter, AppError> {
        let statuses = match self.status.as_deref() {
            None | Some("") => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|s| TaskStatus::parse(s.trim()).map_err(|_| bad_status(s)))
                .collect::<Result<_, _>>()?,
        };
        Ok(WorklistFilter {
            side: self.side,
            statuses,
            urgency: self.urgency,
            direction: self.direction,
            from: self.from,
            to: self.to,
            limit: self.limit.unwrap_or(0),
        })
    }
}

fn bad_status(s: &str) -> AppError {
    let known: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
    AppError::BadRequest(format!("status: {s:?} is not one of {}", known.join(", ")))
}

/// 404 unless the organization is in the directory.
pub(crate) async fn known_organization(state: &AppState, organization: &str) -> Result<(), AppError> {
    let storage = state.storage.clone();
    let orgs = blocking(move || storage.organizations()).await?;
    if orgs.iter().any(|o| o.id == organization) {
        Ok(())
    } else {
        Err(AppError::NotFound(format!("organization {organization} not found")))
    }
}

#[utoipa::path(
    get,
    path = "/organizations/{organization}/worklist",
    tag = "referrals",
    params(("organization" = String, Path, description = "organization id"), WorklistQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "most urgent, then oldest first", body = Vec<WorklistItem>), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
pub(crate) async fn worklist(
    operator: Operator,
    State(s): State<AppState>,
    Path(organization): Path<String>,
    Params(query): Params<WorklistQuery>,
) -> Result<Json<Vec<WorklistItem>>, AppError> {
    operator.allow(READERS)?;
    operator.allow_organization(&[&organization])?;
    known_organization(&s, &organization).await?;
    let filter = query.filter()?;
    let mut lines = blocking(move || s.storage.referral_worklist(&organization, &filter)).await?;
    for line in &mut lines {
        line.referral.patient_name = name_for(&operator, &line.referral.patient_name);
    }
    Ok(Json(lines))
}

/// A referral with its status, history, and the resident it concerns.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReferralDetail {
    /// The resident.
    pub patient_id: PatientId,
    /// Their name.
    pub patient_name: String,
    /// The referral, its folded status and history.
    #[serde(flatten)]
    pub referral: ReferralView,
}

fn referral_id(raw: &str) -> Result<ReferralId, AppError> {
    raw.parse().map_err(|_| AppError::BadRequest(format!("referral: {raw:?} is not a referral id")))
}

fn detail(record: &PatientRecord, id: ReferralId) -> Result<ReferralDetail, AppError> {
    let view = record.referral(id).ok_or_else(|| AppError::NotFound(format!("referral {id} not found")))?;
    Ok(ReferralDetail {
        patient_id: record.patient.id,
        patient_name: record.demographics().name.clone(),
        referral: view.clone(),
    })
}

/// Loads a referral and checks the operator may see it (a desk: its organization sent or
/// received it).
async fn visible_referral(s: &AppState, operator: &Operator, raw: &str) -> Result<ReferralDetail, AppError> {
    let id = referral_id(raw)?;
    let storage = s.storage.clone();
    let record = blocking(move || storage.record_of_referral(id)).await?;
    let mut detail = detail(&record, id)?;
    let r = &detail.referral.referral;
    operator.allow_organization(&[&r.from_organization_id, &r.to_organization_id])?;
    detail.patient_name = name_for(operator, &detail.patient_name);
    Ok(detail)
}

#[utoipa::path(
    get,
    path = "/referrals/{referral}",
    tag = "referrals",
    params(("referral" = String, Path, description = "referral id (UUID)")),
    security(("bearer" = [])),
    responses((status = 200, description = "the referral, its folded status and history", body = ReferralDetail), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
pub(crate) async fn referral(
    operator: Operator,
    State(s): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<ReferralDetail>, AppError> {
    operator.allow(READERS)?;
    let detail = visible_referral(&s, &operator, &raw).await?;
    let (who, patient) = (operator.name.clone(), detail.patient_id.to_string());
    blocking(move || s.storage.log_record_read(&who, &patient, "referral")).await?;
    Ok(Json(detail))
}

/// What the desk says with a decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The practitioner deciding; must belong to the acting organization.
    pub practitioner_id: String,
    /// A note; the reason, for a rejection.
    #[serde(default)]
    pub note: String,
    /// The discharge summary, to complete an upward referral.
    #[serde(default)]
    pub discharge_summary: Option<String>,
}

/// The desk's actions and the status each moves the referral to.
const ACTIONS: [(&str, TaskStatus); 7] = [
    ("receive", TaskStatus::Received),
    ("accept", TaskStatus::Accepted),
    ("reject", TaskStatus::Rejected),
    ("start", TaskStatus::InProgress),
    ("hold", TaskStatus::OnHold),
    ("complete", TaskStatus::Completed),
    ("cancel", TaskStatus::Cancelled),
];

/// The answer to an action: the event recorded and the referral after it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActionOutcome {
    /// The event added to the referral's history.
    pub event_id: EventId,
    /// The referral as it is now.
    pub referral: ReferralDetail,
}

/// 400 unless `practitioner` is in the directory at `organization`.
async fn practitioner_at(s: &AppState, practitioner: &str, organization: &str) -> Result<(), AppError> {
    let storage = s.storage.clone();
    let all = blocking(move || storage.practitioners()).await?;
    match all.iter().find(|p| p.id == practitioner) {
        Some(p) if p.organization_id == organization => Ok(()),
        Some(p) => Err(AppError::BadRequest(format!(
            "practitioner_id: {practitioner} works at {}, not at {organization}",
            p.organization_id
        ))),
        None => Err(AppError::BadRequest(format!("practitioner_id: {practitioner} is not in the directory"))),
    }
}

#[utoipa::path(
    post,
    path = "/referrals/{referral}/{action}",
    tag = "referrals",
    params(("referral" = String, Path, description = "referral id (UUID)"), ("action" = String, Path, description = "receive, accept, reject, start, hold, complete or cancel")),
    request_body = Decision,
    security(("bearer" = [])),
    responses((status = 200, description = "the event recorded (a change signed by the relay) and the referral after it", body = ActionOutcome), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
pub(crate) async fn act(
    operator: Operator,
    State(s): State<AppState>,
    Path((raw, action)): Path<(String, String)>,
    Body(decision): Body<Decision>,
) -> Result<Json<ActionOutcome>, AppError> {
    operator.allow(ACTORS)?;
    let Some((_, status)) = ACTIONS.iter().find(|(name, _)| *name == action) else {
        let known: Vec<&str> = ACTIONS.iter().map(|(name, _)| *name).collect();
        return Err(AppError::NotFound(format!(
            "no referral action {action:?}; the actions are {} and downward",
            known.join(", ")
        )));
    };
    let current = visible_referral(&s, &operator, &raw).await?;
    let r = &current.referral.referral;
    // The receiving organization decides; the sending one may withdraw.
    let acting = if *status == TaskStatus::Cancelled { &r.from_organization_id } else { &r.to_organization_id };
    operator.allow_organization(&[acting])?;
    practitioner_at(&s, &decision.practitioner_id, acting).await?;
    let event = NewReferralEvent {
        status: *status,
        by_practitioner_id: decision.practitioner_id,
        by_organization_id: acting.clone(),
        note: decision.note,
        discharge_summary: decision.discharge_summary,
    };
    let id = r.id;
    let storage = s.storage.clone();
    let (event_id, record) = blocking(move || {
        let event_id = storage.add_referral_event(id, event)?;
        Ok((event_id, storage.record_of_referral(id)?))
    })
    .await?;
    tracing::info!(operator = %operator.name, referral = %id, status = %status, "referral decision recorded");
    Ok(Json(ActionOutcome { event_id, referral: detail(&record, id)? }))
}

/// The downward referral a hospital sends when it discharges a resident back to primary care.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DownwardRequest {
    /// The hospital's practitioner sending the resident back.
    pub practitioner_id: String,
    /// Why (rehabilitation plan, ...).
    pub reason: String,
    /// How soon primary care must act (default routine).
    #[serde(default)]
    pub urgency: Option<Urgency>,
    /// What primary care needs to know.
    #[serde(default)]
    pub clinical_summary: String,
    /// Where to (default: the organization that sent the upward referral).
    #[serde(default)]
    pub to_organization_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/referrals/{referral}/downward",
    tag = "referrals",
    params(("referral" = String, Path, description = "the upward referral id (UUID)")),
    request_body = DownwardRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "the downward referral answering the upward one", body = ReferralDetail), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
pub(crate) async fn downward(
    operator: Operator,
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Body(request): Body<DownwardRequest>,
) -> Result<(StatusCode, Json<ReferralDetail>), AppError> {
    operator.allow(ACTORS)?;
    let upward = visible_referral(&s, &operator, &raw).await?;
    let up = &upward.referral.referral;
    if up.direction != Direction::Upward {
        return Err(AppError::BadRequest(format!("referral: {} is a downward referral", up.id)));
    }
    let hospital = up.to_organization_id.clone();
    operator.allow_organization(&[&hospital])?;
    practitioner_at(&s, &request.practitioner_id, &hospital).await?;
    let to = request.to_organization_id.unwrap_or_else(|| up.from_organization_id.clone());
    known_organization(&s, &to).await?;
    let new = NewReferral {
        direction: Direction::Downward,
        from_organization_id: hospital,
        from_practitioner_id: request.practitioner_id,
        to_organization_id: to,
        reason: request.reason,
        urgency: request.urgency.unwrap_or(Urgency::Routine),
        clinical_summary: request.clinical_summary,
        in_response_to: Some(up.id),
    };
    let patient = upward.patient_id;
    let storage = s.storage.clone();
    let (id, record) = blocking(move || {
        let id = storage.create_referral(patient, new)?;
        Ok((id, storage.record(patient)?))
    })
    .await?;
    tracing::info!(operator = %operator.name, upward = %up.id, downward = %id, "downward referral created");
    Ok((StatusCode::CREATED, Json(detail(&record, id)?)))
}

#[utoipa::path(
    get,
    path = "/patients/{patient}",
    tag = "records",
    params(("patient" = String, Path, description = "patient id (UUID)")),
    security(("bearer" = [])),
    responses((status = 200, description = "the whole record (read logged)", body = PatientRecord), (status = "4XX", description = "refused: the message names the field, parameter, token or role", body = crate::http::ErrorBody))
)]
pub(crate) async fn patient(
    operator: Operator,
    State(s): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<PatientRecord>, AppError> {
    Ok(Json(readable_record(&s, &operator, &raw, "record").await?))
}
