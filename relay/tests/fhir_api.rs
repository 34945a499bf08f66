//! FHIR R4 export: a full record (contract, ICD-10 conditions, visits with blood pressure,
//! glucose and more, an amended reading, a completed upward referral answered by a downward one)
//! read back as Patient, `$everything` and searches, with the mappings the hospital systems rely
//! on checked here. Every resource answered is also written under `target/fhir/`, where
//! `scripts/test` validates each against the FHIR R4 specification with an independent validator
//! (`tests/js/validate-fhir.mjs`).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::StatusCode;
use common::consortium::{COUNTY, VILLAGE, consortium};
use common::{now_ms, today};
use serde_json::{Value, json};
use std::path::PathBuf;
use yilian_core::model::*;
use yilian_core::time::start_of;

/// Where the answers go for the validator.
fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fhir");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn keep(name: &str, resource: &Value) {
    std::fs::write(out_dir().join(format!("{name}.json")), serde_json::to_vec_pretty(resource).unwrap()).unwrap();
}

fn entries<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| &e["resource"]).filter(|r| r["resourceType"] == kind).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_whole_record_exports_as_fhir_r4() {
    let d = consortium();
    let s = &d.api.store;
    s.update_demographics(
        d.patient,
        DemographicsUpdate {
            national_id: Some("11010519491231002X".into()),
            phone: Some("13800138000".into()),
            address: Some("石桥村三组12号".into()),
            ..Default::default()
        },
    )
    .unwrap();
    s.add_condition(
        d.patient,
        NewCondition {
            icd10: "E11.9".into(),
            diagnosed_on: today(),
            practitioner_id: "dr-wang".into(),
            note: "diet first".into(),
        },
    )
    .unwrap();
    let visit = s
        .record_visit(
            d.patient,
            NewVisit {
                // An hour ago, but never before today's midnight (UTC+8): the date searches
                // below count this visit as today's.
                at: (now_ms() - 3_600_000).max(start_of(today())),
                organization_id: VILLAGE.into(),
                practitioner_id: "dr-wang".into(),
                kind: VisitKind::HomeVisit,
                vitals: Vitals {
                    systolic_mmhg: Some(152),
                    diastolic_mmhg: Some(94),
                    heart_rate_bpm: Some(78),
                    fasting_glucose_mmol_l: Some(7.4),
                    two_hour_glucose_mmol_l: Some(11.2),
                    weight_kg: Some(64.5),
                    height_cm: Some(158.0),
                    spo2_percent: Some(96),
                },
                symptoms: vec!["dizziness".into()],
                diagnoses: vec!["I10".into(), "E11.9".into()],
                medicines: vec![],
                lifestyle: Lifestyle::default(),
                notes: String::new(),
            },
        )
        .unwrap();
    s.amend_visit(
        d.patient,
        visit,
        VisitAmendment {
            field: VisitField::SystolicMmhg(Some(150)),
            practitioner_id: "dr-wang".into(),
            reason: "misread the cuff".into(),
        },
    )
    .unwrap();
    for (status, note, summary) in [
        (TaskStatus::Accepted, "bed 12", None),
        (TaskStatus::InProgress, "", None),
        (TaskStatus::Completed, "", Some("BP 132/84 on three drugs".to_string())),
    ] {
        let event = NewReferralEvent {
            status,
            by_practitioner_id: "dr-sun".into(),
            by_organization_id: COUNTY.into(),
            note: note.into(),
            discharge_summary: summary,
        };
        s.add_referral_event(d.referral, event).unwrap();
    }
    let down = s
        .create_referral(
            d.patient,
            NewReferral {
                direction: Direction::Downward,
                from_organization_id: COUNTY.into(),
                from_practitioner_id: "dr-sun".into(),
                to_organization_id: VILLAGE.into(),
                reason: "rehabilitation and BP follow-up".into(),
                urgency: Urgency::Routine,
                clinical_summary: String::new(),
                in_response_to: Some(d.referral),
            },
        )
        .unwrap();

    // The CapabilityStatement needs no token.
    let (status, capability) = d.api.call("GET", "/fhir/metadata", None, None).await;
    assert_eq!((status, &capability["fhirVersion"]), (StatusCode::OK, &json!("4.0.1")));
    keep("capability-statement", &capability);

    let p = d.patient;
    let (status, patient) = d.get(&format!("/fhir/Patient/{p}"), &d.county_desk).await;
    assert_eq!(status, StatusCode::OK, "{patient}");
    assert_eq!((&patient["gender"], &patient["birthDate"]), (&json!("female"), &json!("1951-02-03")));
    assert_eq!(patient["identifier"][1]["value"], "11010519491231002X");
    assert_eq!(patient["generalPractitioner"][0]["reference"], "Practitioner/dr-wang");
    assert_eq!(patient["managingOrganization"]["reference"], format!("Organization/{VILLAGE}"));
    keep("patient", &patient);

    let (status, everything) = d.get(&format!("/fhir/Patient/{p}/$everything"), &d.analyst).await;
    assert_eq!(status, StatusCode::OK, "{everything}");
    assert_eq!((&everything["resourceType"], &everything["type"]), (&json!("Bundle"), &json!("searchset")));
    keep("everything", &everything);
    // Blood pressure: the vital-signs panel with its two components in mm[Hg]; the amended
    // systolic reading is the one exported.
    let observations: Vec<&Value> = entries(&everything, "Observation")
        .into_iter()
        .filter(|o| o["encounter"]["reference"] == format!("Encounter/{visit}"))
        .collect();
    let bp = observations.iter().find(|o| o["code"]["coding"][0]["code"] == "85354-9").expect("a BP panel");
    assert_eq!(bp["category"][0]["coding"][0]["code"], "vital-signs");
    assert_eq!(bp["status"], "amended");
    let components: Vec<(&str, f64, &str)> = bp["component"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["code"]["coding"][0]["code"].as_str().unwrap(),
                c["valueQuantity"]["value"].as_f64().unwrap(),
                c["valueQuantity"]["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(components, [("8480-6", 150.0, "mm[Hg]"), ("8462-4", 94.0, "mm[Hg]")]);
    assert_eq!(bp["component"][0]["valueQuantity"]["system"], "http://unitsofmeasure.org");
    let glucose = observations.iter().find(|o| o["code"]["coding"][0]["code"] == "77145-1").expect("fasting glucose");
    assert_eq!(
        (glucose["valueQuantity"]["value"].as_f64(), glucose["valueQuantity"]["code"].as_str()),
        (Some(7.4), Some("mmol/L"))
    );
    assert_eq!(glucose["status"], "final");
    let loinc: Vec<&str> = observations.iter().map(|o| o["code"]["coding"][0]["code"].as_str().unwrap()).collect();
    for code in ["8867-4", "14760-3", "29463-7", "8302-2", "39156-5", "59408-5"] {
        assert!(loinc.contains(&code), "{code} in {loinc:?}");
    }
    // Conditions in ICD-10; the contract as an EpisodeOfCare with its doctor and team.
    let icd: Vec<&str> = entries(&everything, "Condition")
        .iter()
        .map(|c| {
            assert_eq!(c["code"]["coding"][0]["system"], "http://hl7.org/fhir/sid/icd-10");
            c["code"]["coding"][0]["code"].as_str().unwrap()
        })
        .collect();
    assert_eq!(icd, ["I10", "E11.9"]);
    let episode = entries(&everything, "EpisodeOfCare")[0];
    assert_eq!(
        (&episode["status"], &episode["careManager"]["reference"]),
        (&json!("active"), &json!("Practitioner/dr-wang"))
    );
    assert_eq!(episode["team"][0]["reference"], "CareTeam/team-shiqiao");
    // Referrals: a ServiceRequest and a Task each; the Task's status is the fold of the events.
    let tasks = entries(&everything, "Task");
    let up = tasks.iter().find(|t| t["id"] == d.referral.to_string()).unwrap();
    assert_eq!((&up["status"], &up["priority"]), (&json!("completed"), &json!("urgent")));
    assert_eq!(up["output"][0]["valueString"], "BP 132/84 on three drugs");
    assert_eq!(up["note"].as_array().unwrap().len(), 3);
    let requests = entries(&everything, "ServiceRequest");
    let down_request = requests.iter().find(|r| r["id"] == down.to_string()).unwrap();
    assert_eq!(down_request["basedOn"][0]["reference"], format!("ServiceRequest/{}", d.referral));
    assert_eq!(entries(&everything, "Encounter").len(), 2);
    assert_eq!(entries(&everything, "Encounter").iter().filter(|e| e["class"]["code"] == "HH").count(), 1);
    // The directory entries the record points at come along.
    let practitioners: Vec<&str> =
        entries(&everything, "Practitioner").iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(practitioners, ["dr-sun", "dr-wang"]);
    assert_eq!(entries(&everything, "Organization").len(), 2);
    let team = entries(&everything, "CareTeam");
    assert_eq!((team.len(), &team[0]["name"]), (1, &json!("石桥一队")));
    // Self-contained: every reference in the Bundle resolves to one of its entries.
    let held: std::collections::BTreeSet<String> = everything["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!("{}/{}", e["resource"]["resourceType"].as_str().unwrap(), e["resource"]["id"].as_str().unwrap())
        })
        .collect();
    let dangling: Vec<String> =
        yilian_relay::fhir::references(&everything).into_iter().filter(|r| !held.contains(r)).collect();
    assert!(dangling.is_empty(), "references without an entry: {dangling:?}");

    // Searches by patient and date.
    let today = today();
    for (query, kind, expected) in [
        (format!("Encounter?patient={p}"), "Encounter", 2usize),
        (format!("Encounter?patient=Patient/{p}&date=ge{today}"), "Encounter", 1),
        (format!("Observation?patient={p}&date=lt{today}&date=ge2000-01-01"), "Observation", 1),
        (format!("Condition?patient={p}&onset-date={today}"), "Condition", 1),
        (format!("ServiceRequest?patient={p}"), "ServiceRequest", 2),
        (format!("Task?patient={p}&authored-on=ge{today}"), "Task", 2),
        (format!("EpisodeOfCare?patient={p}"), "EpisodeOfCare", 1),
        (format!("Patient?_id={p}"), "Patient", 1),
        ("Practitioner".to_string(), "Practitioner", 3),
        ("Organization".to_string(), "Organization", 3),
        ("CareTeam".to_string(), "CareTeam", 1),
    ] {
        let (status, bundle) = d.get(&format!("/fhir/{query}"), &d.analyst).await;
        assert_eq!(status, StatusCode::OK, "{query}: {bundle}");
        assert_eq!(
            (bundle["total"].as_u64(), entries(&bundle, kind).len()),
            (Some(expected as u64), expected),
            "{query}"
        );
        keep(&format!("search-{}", kind.to_lowercase()), &bundle);
    }
    // Pages: `_count` entries after `_offset`, `total` counting all, links that keep the search.
    let (status, first) = d.get(&format!("/fhir/Encounter?patient={p}&_count=1"), &d.analyst).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!((first["total"].as_u64(), entries(&first, "Encounter").len()), (Some(2), 1));
    let link = |bundle: &Value, relation: &str| {
        bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == relation)
            .map(|l| l["url"].as_str().unwrap().to_string())
    };
    let next = link(&first, "next").expect("a next page");
    assert!(next.contains(&format!("patient={p}")) && next.ends_with("_count=1&_offset=1"), "{next}");
    assert_eq!(link(&first, "previous"), None);
    let path = next.split_once("/fhir").unwrap().1.to_string();
    let (status, second) = d.get(&format!("/fhir{path}"), &d.analyst).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(entries(&second, "Encounter").len(), 1);
    assert_ne!(entries(&second, "Encounter")[0]["id"], entries(&first, "Encounter")[0]["id"]);
    assert_eq!((link(&second, "next"), link(&second, "previous").is_some()), (None, true));
    keep("search-page", &second);
    for bad in ["_count=many", "_count=1001", "_offset=-1"] {
        let (status, outcome) = d.get(&format!("/fhir/Encounter?patient={p}&{bad}"), &d.analyst).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }
    // The CapabilityStatement lists exactly what is served: each type it names answers the
    // interactions it lists (a read of one of the record's resources, a search by patient), and a
    // read it does not list is refused.
    let mut sample: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for entry in everything["entry"].as_array().unwrap() {
        let r = &entry["resource"];
        sample.entry(r["resourceType"].as_str().unwrap().into()).or_insert(r["id"].as_str().unwrap().into());
    }
    let listed = capability["rest"][0]["resource"].as_array().unwrap();
    assert_eq!(
        listed.iter().map(|r| r["type"].as_str().unwrap().to_string()).collect::<std::collections::BTreeSet<_>>(),
        sample.keys().cloned().collect(),
        "the types served are the types $everything holds"
    );
    for resource in listed {
        let kind = resource["type"].as_str().unwrap();
        let interactions: Vec<&str> =
            resource["interaction"].as_array().unwrap().iter().map(|i| i["code"].as_str().unwrap()).collect();
        let (status, answer) = d.get(&format!("/fhir/{kind}/{}", sample[kind]), &d.analyst).await;
        let expected = if interactions.contains(&"read") { StatusCode::OK } else { StatusCode::NOT_FOUND };
        assert_eq!(status, expected, "read {kind}: {answer}");
        if interactions.contains(&"search-type") {
            let by_patient =
                resource["searchParam"].as_array().is_some_and(|s| s.iter().any(|p| p["name"] == "patient"));
            let query = if kind == "Patient" {
                format!("_id={p}")
            } else if by_patient {
                format!("patient={p}")
            } else {
                String::new()
            };
            let (status, answer) = d.get(&format!("/fhir/{kind}?{query}"), &d.analyst).await;
            assert_eq!(status, StatusCode::OK, "search {kind}: {answer}");
        }
    }
    for (path, name) in [
        (format!("Task/{}", d.referral), "task"),
        (format!("ServiceRequest/{down}"), "service-request"),
        ("Practitioner/dr-sun".to_string(), "practitioner"),
        (format!("Organization/{COUNTY}"), "organization"),
        ("CareTeam/team-shiqiao".to_string(), "care-team"),
    ] {
        let (status, resource) = d.get(&format!("/fhir/{path}"), &d.county_desk).await;
        assert_eq!(status, StatusCode::OK, "{path}: {resource}");
        keep(name, &resource);
    }
}

#[tokio::test]
async fn fhir_errors_are_operation_outcomes() {
    let d = consortium();
    let p = d.patient;
    for (uri, token, status, says) in [
        (format!("/fhir/Patient/{p}"), None, StatusCode::UNAUTHORIZED, "Bearer"),
        (format!("/fhir/Patient/{p}"), Some(&d.other_desk), StatusCode::FORBIDDEN, "acts for dongcun"),
        ("/fhir/Patient/nobody".to_string(), Some(&d.analyst), StatusCode::BAD_REQUEST, "is not a patient id"),
        (
            format!("/fhir/Patient/{}", yilian_core::PatientId::new()),
            Some(&d.analyst),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        ("/fhir/Encounter".to_string(), Some(&d.analyst), StatusCode::BAD_REQUEST, "Encounter search needs patient"),
        (format!("/fhir/Encounter?patient={p}&colour=red"), Some(&d.analyst), StatusCode::BAD_REQUEST, "\"colour\""),
        (
            format!("/fhir/Encounter?patient={p}&date=sa2026-01-01"),
            Some(&d.analyst),
            StatusCode::BAD_REQUEST,
            "YYYY-MM-DD",
        ),
        (format!("/fhir/Encounter?patient={p}&patient={p}"), Some(&d.analyst), StatusCode::BAD_REQUEST, "once"),
        ("/fhir/Medication?patient=x".to_string(), Some(&d.analyst), StatusCode::NOT_FOUND, "Medication"),
        ("/fhir/Encounter/abc".to_string(), Some(&d.analyst), StatusCode::NOT_FOUND, "search the others by patient"),
        ("/fhir/Task/abc".to_string(), Some(&d.analyst), StatusCode::BAD_REQUEST, "is not a referral id"),
        ("/fhir/Practitioner/dr-nobody".to_string(), Some(&d.analyst), StatusCode::NOT_FOUND, "not found"),
    ] {
        let (got, outcome) = d.api.call("GET", &uri, token.map(String::as_str), None).await;
        assert_eq!(got, status, "{uri}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{uri}");
        let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(diagnostics.contains(says), "{uri}: {diagnostics}");
        keep(&format!("outcome-{}", got.as_u16()), &outcome);
    }
}
