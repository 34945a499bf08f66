//! The record as FHIR R4 resources (JSON): Patient, Encounter per visit, Observations for its
//! measurements (the vital-signs blood-pressure panel, heart rate, glucose, weight, height, BMI,
//! SpO2), Condition (ICD-10), EpisodeOfCare per family-doctor contract, and per referral a
//! ServiceRequest with the Task that carries its workflow status from the core fold.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde_json::{Value, json};
use yilian_core::model::{
    Condition, Contract, ContractStatus, Direction, PatientRecord, ReferralView, Sex, TaskStatus, Urgency, Visit,
    VisitKind,
};
use yilian_core::store::OrganizationKind;
use yilian_core::{Organization, Practitioner, Team};

/// LOINC.
pub const LOINC: &str = "http://loinc.org";
/// UCUM units.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// ICD-10 (WHO; China's national edition uses the same categories).
pub const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
/// Identifier system of Yilian record ids.
pub const RECORD_ID_SYSTEM: &str = "urn:yilian:record-id";
/// Identifier system of the resident identity card number (居民身份证).
pub const RESIDENT_ID_SYSTEM: &str = "urn:yilian:resident-identity-card";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

/// An instant as a FHIR `dateTime`/`instant` in consortium time: `2026-11-23T09:30:00+08:00`.
pub fn instant(ms: i64) -> String {
    let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let china = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"));
    utc.with_timezone(&china).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// A directory id as a FHIR id (`[A-Za-z0-9-.]{1,64}`): `.`, `_` and `:` are escaped as `.2E`,
/// `.5F` and `.3A`, so distinct directory ids stay distinct and UUIDs pass unchanged.
pub fn fhir_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        match c {
            '.' => out.push_str(".2E"),
            '_' => out.push_str(".5F"),
            ':' => out.push_str(".3A"),
            c => out.push(c),
        }
    }
    out
}

fn reference(kind: &str, id: &str) -> Value {
    json!({ "reference": format!("{kind}/{}", fhir_id(id)) })
}

fn text(s: &str) -> Value {
    json!({ "text": s })
}

/// Drops the members whose value is `null` (FHIR forbids nulls and empty arrays).
fn compact(mut resource: Value) -> Value {
    if let Value::Object(map) = &mut resource {
        map.retain(|_, v| !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)));
    }
    resource
}

/// The resident.
pub fn patient(record: &PatientRecord) -> Value {
    let d = record.demographics();
    let id = record.patient.id.to_string();
    let mut identifier = vec![json!({ "system": RECORD_ID_SYSTEM, "value": id })];
    if let Some(card) = &d.national_id {
        identifier.push(json!({ "use": "official", "system": RESIDENT_ID_SYSTEM, "value": card }));
    }
    let address: Vec<&str> = [d.village.as_deref(), d.address.as_deref()].into_iter().flatten().collect();
    let gender = match d.sex {
        Sex::Male => "male",
        Sex::Female => "female",
        Sex::Other => "other",
        Sex::Unknown => "unknown",
    };
    compact(json!({
        "resourceType": "Patient",
        "id": id,
        "identifier": identifier,
        "active": true,
        "name": [{ "text": d.name }],
        "telecom": d.phone.as_ref().map(|p| vec![json!({ "system": "phone", "value": p })]),
        "gender": gender,
        "birthDate": d.birth_date.to_string(),
        "address": (!address.is_empty()).then(|| vec![json!({ "text": address.join(" ") })]),
        "generalPractitioner": record.latest_active_contract().map(|c| vec![reference("Practitioner", &c.practitioner_id)]),
        "managingOrganization": reference("Organization", &record.patient.organization_id),
    }))
}

/// A visit as an Encounter.
pub fn encounter(record: &PatientRecord, visit: &Visit) -> Value {
    let (class, display) = match visit.kind {
        VisitKind::Clinic | VisitKind::FollowUp => ("AMB", "ambulatory"),
        VisitKind::HomeVisit => ("HH", "home health"),
        VisitKind::Telemedicine => ("VR", "virtual"),
    };
    let kind = match visit.kind {
        VisitKind::Clinic => "clinic visit",
        VisitKind::HomeVisit => "home visit",
        VisitKind::FollowUp => "chronic disease follow-up",
        VisitKind::Telemedicine => "telemedicine",
    };
    let reasons: Vec<Value> =
        visit.diagnoses.iter().map(|code| json!({ "coding": [{ "system": ICD10, "code": code }] })).collect();
    compact(json!({
        "resourceType": "Encounter",
        "id": visit.id.to_string(),
        "status": "finished",
        "class": { "system": ACT_CODE, "code": class, "display": display },
        "type": [text(kind)],
        "subject": reference("Patient", &record.patient.id.to_string()),
        "participant": [{ "individual": reference("Practitioner", &visit.practitioner_id) }],
        "period": { "start": instant(visit.at) },
        "reasonCode": reasons,
        "serviceProvider": reference("Organization", &visit.organization_id),
    }))
}

fn quantity(value: f64, unit: &str) -> Value {
    json!({ "value": value, "unit": unit, "system": UCUM, "code": unit })
}

fn loinc(code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": LOINC, "code": code, "display": display }], "text": display })
}

/// One measurement of a visit.
struct Measurement {
    suffix: &'static str,
    category: &'static str,
    code: Value,
    value: Option<Value>,
    components: Vec<Value>,
    fields: &'static [&'static str],
}

fn measurement(
    suffix: &'static str,
    category: &'static str,
    code: Value,
    value: Value,
    field: &'static [&'static str],
) -> Measurement {
    Measurement { suffix, category, code, value: Some(value), components: Vec::new(), fields: field }
}

/// The visit's measurements as Observations; blood pressure as the vital-signs BP panel.
pub fn observations(record: &PatientRecord, visit: &Visit) -> Vec<Value> {
    let v = &visit.vitals;
    let mut out = Vec::new();
    let bp: Vec<Value> = [
        (v.systolic_mmhg, "8480-6", "Systolic blood pressure"),
        (v.diastolic_mmhg, "8462-4", "Diastolic blood pressure"),
    ]
    .into_iter()
    .filter_map(|(value, code, display)| {
        value.map(|mmhg| json!({ "code": loinc(code, display), "valueQuantity": quantity(f64::from(mmhg), "mm[Hg]") }))
    })
    .collect();
    if !bp.is_empty() {
        out.push(Measurement {
            suffix: "bp",
            category: "vital-signs",
            code: loinc("85354-9", "Blood pressure panel with all children optional"),
            value: None,
            components: bp,
            fields: &["vitals.systolic_mmhg", "vitals.diastolic_mmhg"],
        });
    }
    if let Some(bpm) = v.heart_rate_bpm {
        out.push(measurement(
            "hr",
            "vital-signs",
            loinc("8867-4", "Heart rate"),
            quantity(f64::from(bpm), "/min"),
            &["vitals.heart_rate_bpm"],
        ));
    }
    if let Some(mmol) = v.fasting_glucose_mmol_l {
        let code = loinc("77145-1", "Fasting glucose [Moles/volume] in Serum, Plasma or Blood");
        out.push(measurement(
            "glu-fasting",
            "laboratory",
            code,
            quantity(mmol, "mmol/L"),
            &["vitals.fasting_glucose_mmol_l"],
        ));
    }
    if let Some(mmol) = v.two_hour_glucose_mmol_l {
        let code = loinc("14760-3", "Glucose [Moles/volume] in Capillary blood --2 hours post meal");
        out.push(measurement(
            "glu-2h",
            "laboratory",
            code,
            quantity(mmol, "mmol/L"),
            &["vitals.two_hour_glucose_mmol_l"],
        ));
    }
    if let Some(kg) = v.weight_kg {
        out.push(measurement(
            "weight",
            "vital-signs",
            loinc("29463-7", "Body weight"),
            quantity(kg, "kg"),
            &["vitals.weight_kg"],
        ));
    }
    if let Some(cm) = v.height_cm {
        out.push(measurement(
            "height",
            "vital-signs",
            loinc("8302-2", "Body height"),
            quantity(cm, "cm"),
            &["vitals.height_cm"],
        ));
    }
    if let Some(bmi) = v.bmi() {
        let bmi = (bmi * 10.0).round() / 10.0;
        let fields = &["vitals.weight_kg", "vitals.height_cm"];
        out.push(measurement(
            "bmi",
            "vital-signs",
            loinc("39156-5", "Body mass index (BMI) [Ratio]"),
            quantity(bmi, "kg/m2"),
            fields,
        ));
    }
    if let Some(pct) = v.spo2_percent {
        let code = loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry");
        out.push(measurement("spo2", "vital-signs", code, quantity(f64::from(pct), "%"), &["vitals.spo2_percent"]));
    }
    out.into_iter()
        .map(|m| {
            let amended = visit.amendments.values().any(|a| m.fields.contains(&a.field.as_str()));
            compact(json!({
                "resourceType": "Observation",
                "id": format!("{}-{}", visit.id, m.suffix),
                "status": if amended { "amended" } else { "final" },
                "category": [{ "coding": [{ "system": OBSERVATION_CATEGORY, "code": m.category }] }],
                "code": m.code,
                "subject": reference("Patient", &record.patient.id.to_string()),
                "encounter": reference("Encounter", &visit.id.to_string()),
                "effectiveDateTime": instant(visit.at),
                "performer": [reference("Practitioner", &visit.practitioner_id)],
                "valueQuantity": m.value,
                "component": m.components,
            }))
        })
        .collect()
}

/// A diagnosed condition, coded in ICD-10.
pub fn condition(record: &PatientRecord, c: &Condition) -> Value {
    compact(json!({
        "resourceType": "Condition",
        "id": c.id.to_string(),
        "clinicalStatus": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active" }] },
        "verificationStatus": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed" }] },
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item" }] }],
        "code": { "coding": [{ "system": ICD10, "code": c.icd10 }], "text": c.icd10 },
        "subject": reference("Patient", &record.patient.id.to_string()),
        "onsetDateTime": c.diagnosed_on.to_string(),
        "recordedDate": instant(c.recorded_at),
        "recorder": reference("Practitioner", &c.recorded_by),
        "note": (!c.note.is_empty()).then(|| vec![text(&c.note)]),
    }))
}

/// A family-doctor contract (家庭医生签约) as an EpisodeOfCare managed by the doctor and team.
pub fn episode_of_care(record: &PatientRecord, c: &Contract, today: NaiveDate) -> Value {
    let status = match c.status {
        ContractStatus::Active if c.end >= today => "active",
        _ => "finished",
    };
    json!({
        "resourceType": "EpisodeOfCare",
        "id": c.id.to_string(),
        "status": status,
        "type": [text("family doctor contract (家庭医生签约服务)")],
        "patient": reference("Patient", &record.patient.id.to_string()),
        "managingOrganization": reference("Organization", &c.organization_id),
        "period": { "start": c.start.to_string(), "end": c.end.to_string() },
        "careManager": reference("Practitioner", &c.practitioner_id),
        "team": [reference("CareTeam", &c.team_id)],
    })
}

fn priority(u: Urgency) -> &'static str {
    match u {
        Urgency::Routine => "routine",
        Urgency::Urgent => "urgent",
        Urgency::Emergency => "stat",
    }
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Upward => "upward referral (上转)",
        Direction::Downward => "downward referral (下转)",
    }
}

/// A referral as the request it is.
pub fn service_request(record: &PatientRecord, view: &ReferralView) -> Value {
    let r = &view.referral;
    let status = match view.status.status {
        TaskStatus::Completed => "completed",
        TaskStatus::Rejected | TaskStatus::Cancelled | TaskStatus::Failed => "revoked",
        TaskStatus::OnHold => "on-hold",
        _ => "active",
    };
    compact(json!({
        "resourceType": "ServiceRequest",
        "id": r.id.to_string(),
        "basedOn": r.in_response_to.map(|up| vec![reference("ServiceRequest", &up.to_string())]),
        "status": status,
        "intent": "order",
        "category": [text(direction(r.direction))],
        "priority": priority(r.urgency),
        "code": text(direction(r.direction)),
        "subject": reference("Patient", &record.patient.id.to_string()),
        "authoredOn": instant(r.created_at),
        "requester": reference("Practitioner", &r.from_practitioner_id),
        "performer": [reference("Organization", &r.to_organization_id)],
        "reasonCode": [text(&r.reason)],
        "note": (!r.clinical_summary.is_empty()).then(|| vec![text(&r.clinical_summary)]),
    }))
}

/// The referral's workflow as a Task; its status is the core fold of the referral's events, and
/// each event is a note.
pub fn task(record: &PatientRecord, view: &ReferralView) -> Value {
    let r = &view.referral;
    let notes: Vec<Value> = view
        .status
        .history
        .iter()
        .map(|e| {
            let mut line =
                format!("{} by {} ({})", e.event.status, e.event.by_practitioner_id, e.event.by_organization_id);
            if !e.applied {
                line.push_str(" — superseded by an earlier concurrent decision");
            }
            if !e.event.note.is_empty() {
                line.push_str(&format!(": {}", e.event.note));
            }
            json!({ "time": instant(e.event.at.wall_ms()), "text": line })
        })
        .collect();
    let rejection = view
        .status
        .history
        .iter()
        .rev()
        .find(|e| e.applied && e.event.status == TaskStatus::Rejected && !e.event.note.is_empty())
        .map(|e| text(&e.event.note));
    let discharge: Option<Vec<Value>> = view.status.history.iter().rev().find_map(|e| {
        let summary = e.event.discharge_summary.as_ref().filter(|_| e.applied)?;
        Some(vec![json!({ "type": text("discharge summary"), "valueString": summary })])
    });
    compact(json!({
        "resourceType": "Task",
        "id": r.id.to_string(),
        "basedOn": [reference("ServiceRequest", &r.id.to_string())],
        "status": view.status.status.as_str(),
        "statusReason": rejection,
        "intent": "order",
        "priority": priority(r.urgency),
        "code": text(direction(r.direction)),
        "focus": reference("ServiceRequest", &r.id.to_string()),
        "for": reference("Patient", &record.patient.id.to_string()),
        "authoredOn": instant(r.created_at),
        "lastModified": instant(view.status.changed_at.map_or(r.created_at, |h| h.wall_ms())),
        "requester": reference("Organization", &r.from_organization_id),
        "owner": reference("Organization", &r.to_organization_id),
        "note": notes,
        "output": discharge,
    }))
}

/// A practitioner of the directory.
pub fn practitioner(p: &Practitioner) -> Value {
    json!({
        "resourceType": "Practitioner",
        "id": fhir_id(&p.id),
        "active": true,
        "name": [{ "text": p.name }],
        "qualification": [{ "code": text(p.role.as_str()) }],
    })
}

/// A family-doctor team (家庭医生团队) as a CareTeam: its organization and its members.
pub fn care_team(t: &Team) -> Value {
    let members: Vec<Value> = t.members.iter().map(|m| json!({ "member": reference("Practitioner", m) })).collect();
    compact(json!({
        "resourceType": "CareTeam",
        "id": fhir_id(&t.id),
        "status": "active",
        "category": [text("family doctor team (家庭医生团队)")],
        "name": t.name,
        "managingOrganization": [reference("Organization", &t.organization_id)],
        "participant": (!members.is_empty()).then_some(members),
    }))
}

/// An organization of the consortium.
pub fn organization(o: &Organization) -> Value {
    let kind = match o.kind {
        OrganizationKind::TertiaryHospital => "tertiary hospital",
        OrganizationKind::CountyHospital => "county hospital",
        OrganizationKind::TownshipHealthCentre => "township health centre",
        OrganizationKind::CommunityHealthCentre => "community health centre",
        OrganizationKind::CommunityJointWard => "community joint ward",
        OrganizationKind::VillageClinic => "village clinic",
    };
    compact(json!({
        "resourceType": "Organization",
        "id": fhir_id(&o.id),
        "active": true,
        "type": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov" }], "text": kind }],
        "name": o.name,
        "partOf": o.part_of.as_ref().map(|p| reference("Organization", p)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_ids_map_to_distinct_fhir_ids() {
        let ids = ["county-hospital", "team_1", "org:42", "a.b_c:d", "a.5Fb", "a_b", ".2E", "._"];
        let mapped: std::collections::BTreeSet<String> = ids.iter().map(|id| fhir_id(id)).collect();
        assert_eq!(mapped.len(), ids.len());
        assert!(mapped.iter().all(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')));
        assert_eq!(fhir_id("dr-wang"), "dr-wang");
        assert_eq!(instant(1_763_861_400_000), "2025-11-23T09:30:00+08:00");
    }
}
