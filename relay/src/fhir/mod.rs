//! FHIR R4 JSON export of the records the relay holds, under `/fhir` (token required, except the
//! `CapabilityStatement` at `/fhir/metadata`; every record read is logged as `fhir`):
//!
//! - `GET /fhir/Patient/{id}` and `GET /fhir/Patient/{id}/$everything` (a searchset Bundle with
//!   the patient, their encounters, observations, conditions, episodes of care, referrals as
//!   ServiceRequest + Task, and the practitioners and organizations they reference);
//! - searches by patient and date: `Encounter?patient=&date=`, `Observation?patient=&date=`,
//!   `Condition?patient=&onset-date=`, `EpisodeOfCare?patient=&date=`,
//!   `ServiceRequest?patient=&authored=`, `Task?patient=&authored-on=` (date prefixes `eq ne lt
//!   gt le ge`, day precision), and `Patient?_id=`;
//! - reads of `Task`, `ServiceRequest`, `Practitioner`, `Organization`, `CareTeam` by id, and
//!   searches of the directory (`Practitioner`, `Organization`, `CareTeam`: the family-doctor
//!   teams). `$everything` is self-contained: every reference in it resolves to one of its entries
//!   (the teams, practitioners and organizations the record points at, and those they point at).
//!
//! Errors are `OperationOutcome`s with the HTTP status of the relay's other endpoints.

pub mod resources;
mod search;

use crate::request::{AppError, AppState, Operator, READERS, blocking, readable_record};
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use resources::*;
use search::{DateFilter, SearchParams};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use yilian_core::ReferralId;
use yilian_core::model::PatientRecord;
use yilian_core::time::date_of;

/// The media type of FHIR JSON.
pub const FHIR_JSON: &str = "application/fhir+json";

/// The `/fhir` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/metadata", get(metadata))
        .route("/Patient/{id}/$everything", get(everything))
        .route("/{kind}/{id}", get(read))
        .route("/{kind}", get(search_type))
}

/// A FHIR resource answer.
pub struct Fhir(pub Value);

impl IntoResponse for Fhir {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, FHIR_JSON)], self.0.to_string()).into_response()
    }
}

/// An error answered as an `OperationOutcome`.
pub struct FhirError(AppError);

impl From<AppError> for FhirError {
    fn from(e: AppError) -> Self {
        FhirError(e)
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let (status, message) = self.0.status_and_message();
        let code = match status {
            StatusCode::BAD_REQUEST => "invalid",
            StatusCode::UNAUTHORIZED => "login",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::CONFLICT => "conflict",
            _ => "exception",
        };
        let outcome = json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": code, "diagnostics": message }],
        });
        (status, [(header::CONTENT_TYPE, FHIR_JSON)], outcome.to_string()).into_response()
    }
}

type Answer = Result<Fhir, FhirError>;

fn bad(message: String) -> FhirError {
    FhirError(AppError::BadRequest(message))
}

/// The resource types a record holds besides the Patient, with the search parameter that filters
/// each by day.
const CLINICAL: [(&str, &str); 6] = [
    ("Encounter", "date"),
    ("Observation", "date"),
    ("Condition", "onset-date"),
    ("EpisodeOfCare", "date"),
    ("ServiceRequest", "authored"),
    ("Task", "authored-on"),
];

/// Every resource of a record but the Patient, each with the day its date search looks at.
fn clinical_resources(record: &PatientRecord, today: NaiveDate) -> Vec<(NaiveDate, Value)> {
    let mut out = Vec::new();
    for c in &record.contracts {
        out.push((c.start, episode_of_care(record, c, today)));
    }
    for c in &record.conditions {
        out.push((c.diagnosed_on, condition(record, c)));
    }
    for v in &record.visits {
        let day = date_of(v.at);
        out.push((day, encounter(record, v)));
        out.extend(observations(record, v).into_iter().map(|o| (day, o)));
    }
    for r in &record.referrals {
        let day = date_of(r.referral.created_at);
        out.push((day, service_request(record, r)));
        out.push((day, task(record, r)));
    }
    out
}

/// Where the resources live, for `fullUrl`s: `http://<Host>/fhir`.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}/fhir")
}

/// A page of search results: `count` of `resources` after the first `offset`, with `self`,
/// `next` and `previous` links that keep the search's other parameters; `total` counts them all.
fn page(base: &str, kind: &str, params: &SearchParams, resources: Vec<Value>) -> Result<Value, FhirError> {
    let (count, offset) = params.paging()?;
    let total = resources.len();
    let link = |offset: usize| format!("{base}/{kind}?{}", params.with_page(count, offset));
    let shown: Vec<Value> = resources.into_iter().skip(offset).take(count).collect();
    let mut out = bundle(base, "", shown);
    out["total"] = json!(total);
    let mut links = vec![json!({ "relation": "self", "url": link(offset) })];
    if count > 0 && offset.saturating_add(count) < total {
        links.push(json!({ "relation": "next", "url": link(offset + count) }));
    }
    if count > 0 && offset > 0 {
        links.push(json!({ "relation": "previous", "url": link(offset.saturating_sub(count)) }));
    }
    out["link"] = Value::Array(links);
    Ok(out)
}

/// A searchset Bundle of `resources`.
fn bundle(base: &str, self_link: &str, resources: Vec<Value>) -> Value {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            let url = format!("{base}/{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or(""));
            json!({ "fullUrl": url, "resource": r, "search": { "mode": "match" } })
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::now_v7().to_string(),
        "type": "searchset",
        "total": entries.len(),
        "link": [{ "relation": "self", "url": format!("{base}/{self_link}") }],
    });
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

async fn metadata() -> Fhir {
    Fhir(search::capability_statement(&CLINICAL))
}

async fn everything(
    operator: Result<Operator, AppError>,
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let operator = operator?;
    let record = readable_record(&s, &operator, &id, "fhir").await?;
    let mut resources = vec![patient(&record)];
    resources.extend(clinical_resources(&record, s.storage.clock().today()).into_iter().map(|(_, r)| r));
    // The directory's resources the record points at (teams, practitioners, organizations), and
    // those they point at in turn (a team's members, an organization's parent): the Bundle is
    // self-contained, every reference in it resolves to one of its entries.
    let storage = s.storage.clone();
    let directory: Vec<Value> = blocking(move || {
        let mut all: Vec<Value> = storage.teams()?.iter().map(care_team).collect();
        all.extend(storage.practitioners()?.iter().map(practitioner));
        all.extend(storage.organizations()?.iter().map(organization));
        Ok(all)
    })
    .await?;
    let key = |r: &Value| format!("{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or(""));
    let mut included: BTreeSet<String> = resources.iter().map(key).collect();
    loop {
        let wanted: BTreeSet<String> =
            resources.iter().flat_map(references).filter(|r| !included.contains(r)).collect();
        let found: Vec<&Value> = directory.iter().filter(|r| wanted.contains(&key(r))).collect();
        if found.is_empty() {
            break;
        }
        for resource in found {
            included.insert(key(resource));
            resources.push(resource.clone());
        }
    }
    Ok(Fhir(bundle(&base_url(&headers), &format!("Patient/{id}/$everything"), resources)))
}

/// Every literal reference in a resource (or Bundle).
pub fn references(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| match (k.as_str(), v) {
                ("reference", Value::String(r)) => vec![r.clone()],
                _ => references(v),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(references).collect(),
        _ => Vec::new(),
    }
}

async fn read(
    operator: Result<Operator, AppError>,
    State(s): State<AppState>,
    Path((kind, id)): Path<(String, String)>,
) -> Answer {
    let operator = operator?;
    match kind.as_str() {
        "Patient" => Ok(Fhir(patient(&readable_record(&s, &operator, &id, "fhir").await?))),
        "Task" | "ServiceRequest" => {
            operator.allow(READERS)?;
            let referral: ReferralId = id.parse().map_err(|_| bad(format!("{kind}: {id:?} is not a referral id")))?;
            let storage = s.storage.clone();
            let holder = blocking(move || storage.record_of_referral(referral)).await?;
            let record = readable_record(&s, &operator, &holder.patient.id.to_string(), "fhir").await?;
            let view = record
                .referral(referral)
                .ok_or_else(|| FhirError(AppError::NotFound(format!("{kind}/{id} not found"))))?;
            Ok(Fhir(if kind == "Task" { task(&record, view) } else { service_request(&record, view) }))
        }
        "Practitioner" | "Organization" | "CareTeam" => {
            let found = directory(&s, &operator, &kind).await?.into_iter().find(|r| r["id"] == id.as_str());
            found.map(Fhir).ok_or_else(|| FhirError(AppError::NotFound(format!("{kind}/{id} not found"))))
        }
        _ => Err(FhirError(AppError::NotFound(format!(
            "{kind}/{id}: read is supported for Patient, Task, ServiceRequest, Practitioner, Organization and CareTeam; \
             search the others by patient"
        )))),
    }
}

/// The directory's practitioners, organizations or family-doctor teams as resources.
async fn directory(s: &AppState, operator: &Operator, kind: &str) -> Result<Vec<Value>, FhirError> {
    operator.allow(READERS)?;
    let storage = s.storage.clone();
    match kind {
        "Practitioner" => Ok(blocking(move || storage.practitioners()).await?.iter().map(practitioner).collect()),
        "CareTeam" => Ok(blocking(move || storage.teams()).await?.iter().map(care_team).collect()),
        _ => Ok(blocking(move || storage.organizations()).await?.iter().map(organization).collect()),
    }
}

async fn search_type(
    operator: Result<Operator, AppError>,
    State(s): State<AppState>,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let operator = operator?;
    let query = query.unwrap_or_default();
    let base = base_url(&headers);
    let params = SearchParams::parse(&query);
    let found = match kind.as_str() {
        "Practitioner" | "Organization" | "CareTeam" => {
            params.only(&[])?;
            directory(&s, &operator, &kind).await?
        }
        "Patient" => {
            params.only(&["_id"])?;
            let id = params.single("_id")?.ok_or_else(|| bad("Patient search needs _id".into()))?;
            vec![patient(&readable_record(&s, &operator, &id, "fhir").await?)]
        }
        _ => {
            let Some((_, date_param)) = CLINICAL.iter().find(|(k, _)| *k == kind) else {
                return Err(FhirError(AppError::NotFound(format!("no FHIR resource type {kind:?} here"))));
            };
            params.only(&["patient", date_param])?;
            let raw = params.single("patient")?.ok_or_else(|| bad(format!("{kind} search needs patient")))?;
            let id = raw.strip_prefix("Patient/").unwrap_or(&raw).to_string();
            let dates =
                params.all(date_param).map(|v| DateFilter::parse(date_param, v)).collect::<Result<Vec<_>, _>>()?;
            let record = readable_record(&s, &operator, &id, "fhir").await?;
            clinical_resources(&record, s.storage.clock().today())
                .into_iter()
                .filter(|(day, r)| r["resourceType"] == kind.as_str() && dates.iter().all(|d| d.matches(*day)))
                .map(|(_, r)| r)
                .collect()
        }
    };
    Ok(Fhir(page(&base, &kind, &params, found)?))
}
