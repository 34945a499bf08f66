//! The operators' `/v1` API without a socket: worklists, referral decisions, the downward
//! referral, records, statistics and the changes feed — each with its success, its bad input,
//! and the tokens and roles it refuses, always with a JSON error that names the problem.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::{Request, StatusCode};
use chrono::NaiveDate;
use common::consortium::{COUNTY, OTHER, VILLAGE, consortium};
use common::error;
use common::today;
use serde_json::{Value, json};
use yilian_core::model::*;
use yilian_core::{PatientId, ReferralId};

#[tokio::test]
async fn unknown_endpoints_and_missing_tokens_answer_json() {
    let d = consortium();
    let (status, body) = d.get("/v1/nothing-here", &d.analyst).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error(&body), "no endpoint GET /v1/nothing-here");
    let uri = format!("/v1/organizations/{COUNTY}/worklist");
    let (status, body) = d.api.call("GET", &uri, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error(&body).contains("Bearer"));
    assert_eq!(d.get(&uri, "yat_not-a-token").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_worklist_filters_and_refuses_what_it_cannot_read() {
    let d = consortium();
    let uri = |q: &str| format!("/v1/organizations/{COUNTY}/worklist{q}");
    let (status, list) = d.get(&uri(""), &d.county_desk).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["referral_id"], d.referral.to_string());
    assert_eq!((list[0]["side"].as_str(), list[0]["status"].as_str()), (Some("incoming"), Some("requested")));
    assert_eq!(list[0]["patient_name"], "刘桂兰");
    // Filters.
    let today = today();
    for (query, expected) in [
        ("?side=incoming&status=requested,received&urgency=urgent&direction=upward".to_string(), 1),
        ("?side=outgoing".to_string(), 0),
        ("?status=accepted".to_string(), 0),
        ("?urgency=emergency".to_string(), 0),
        ("?direction=downward".to_string(), 0),
        (format!("?from={today}&to={today}"), 1),
        (format!("?from={}", today.succ_opt().unwrap()), 0),
    ] {
        let (status, list) = d.get(&uri(&query), &d.analyst).await;
        assert_eq!((status, list.as_array().map(Vec::len)), (StatusCode::OK, Some(expected)), "{query}: {list}");
    }
    let (_, village) = d.get(&format!("/v1/organizations/{VILLAGE}/worklist"), &d.village_desk).await;
    assert_eq!(village[0]["side"], "outgoing");
    // Bad input names the parameter.
    let (status, body) = d.get(&uri("?status=done"), &d.county_desk).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).starts_with("status: \"done\" is not one of requested,"), "{body}");
    let (status, body) = d.get(&uri("?from=2026-13-01"), &d.county_desk).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).starts_with("query:") && error(&body).contains("from"), "{body}");
    let (status, body) = d.get(&uri("?colour=red"), &d.county_desk).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("colour"), "{body}");
    let (status, body) = d.get(&uri("?limit=5000"), &d.county_desk).await;
    assert_eq!((status, error(&body)), (StatusCode::BAD_REQUEST, "worklist.limit: 5000 is more than 1000"));
    let (status, body) = d.get("/v1/organizations/atlantis/worklist", &d.analyst).await;
    assert_eq!((status, error(&body)), (StatusCode::NOT_FOUND, "organization atlantis not found"));
    // A desk reads its own organization's worklist only.
    let (status, body) = d.get(&uri(""), &d.other_desk).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error(&body), "token desk-dongcun acts for dongcun; this concerns county");
}

#[tokio::test]
async fn the_desk_decides_and_the_workflow_refuses_what_it_does_not_allow() {
    let d = consortium();
    let base = format!("/v1/referrals/{}", d.referral);
    let sun = json!({"practitioner_id": "dr-sun"});
    // Roles and organizations.
    let (status, body) = d.post(&format!("{base}/accept"), &d.analyst, sun.clone()).await;
    assert_eq!(
        (status, error(&body)),
        (StatusCode::FORBIDDEN, "token analyst-sun has the role analyst; this needs admin or referral_desk")
    );
    let (status, body) = d.post(&format!("{base}/accept"), &d.other_desk, sun.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = d.post(&format!("{base}/accept"), &d.village_desk, sun.clone()).await;
    assert_eq!(
        (status, error(&body)),
        (StatusCode::FORBIDDEN, "token desk-shiqiao acts for shiqiao; this concerns county")
    );
    // Bad input.
    let request = Request::builder().method("POST").uri(format!("{base}/accept"));
    let (status, body) = d.api.raw(request, Some(&d.county_desk), Some("{\"practitioner_id\": ".into())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).starts_with("request body:"), "{body}");
    let (status, body) = d.post(&format!("{base}/accept"), &d.county_desk, json!({"note": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("practitioner_id"), "{body}");
    let (status, body) = d.post(&format!("{base}/accept"), &d.county_desk, json!({"practitioner_id": "dr-wang"})).await;
    assert_eq!(
        (status, error(&body)),
        (StatusCode::BAD_REQUEST, "practitioner_id: dr-wang works at shiqiao, not at county")
    );
    let (status, body) =
        d.post(&format!("{base}/accept"), &d.county_desk, json!({"practitioner_id": "dr-nobody"})).await;
    assert_eq!((status, error(&body)), (StatusCode::BAD_REQUEST, "practitioner_id: dr-nobody is not in the directory"));
    let (status, body) = d.post(&format!("{base}/teleport"), &d.county_desk, sun.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        error(&body).starts_with("no referral action \"teleport\"; the actions are receive, accept, reject"),
        "{body}"
    );
    let (status, body) = d.post("/v1/referrals/not-an-id/accept", &d.county_desk, sun.clone()).await;
    assert_eq!((status, error(&body)), (StatusCode::BAD_REQUEST, "referral: \"not-an-id\" is not a referral id"));
    let unknown = ReferralId::new();
    let (status, _) = d.post(&format!("/v1/referrals/{unknown}/accept"), &d.county_desk, sun.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A rejection needs its reason; a withdrawal is the sender's.
    let (status, body) = d.post(&format!("{base}/reject"), &d.county_desk, sun.clone()).await;
    assert_eq!((status, error(&body)), (StatusCode::BAD_REQUEST, "referral_event.note: a rejection needs a reason"));
    let (status, _) = d.post(&format!("{base}/cancel"), &d.county_desk, sun.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The decisions, in order; a jump the workflow has not is a conflict with the current status.
    let (status, body) = d.post(&format!("{base}/receive"), &d.county_desk, sun.clone()).await;
    assert_eq!((status, &body["referral"]["status"]["status"]), (StatusCode::OK, &json!("received")), "{body}");
    let (status, body) = d.post(&format!("{base}/start"), &d.county_desk, sun.clone()).await;
    assert_eq!(
        (status, error(&body)),
        (StatusCode::CONFLICT, format!("referral {}: cannot go from received to in-progress", d.referral).as_str())
    );
    d.post(&format!("{base}/accept"), &d.county_desk, sun.clone()).await;
    d.post(&format!("{base}/start"), &d.api.token.clone(), sun.clone()).await;
    let (status, body) = d.post(&format!("{base}/complete"), &d.county_desk, sun.clone()).await;
    assert_eq!(
        (status, error(&body)),
        (
            StatusCode::BAD_REQUEST,
            "referral_event.discharge_summary: completing an upward referral needs a discharge summary"
        )
    );
    let discharge = json!({"practitioner_id": "dr-sun", "discharge_summary": "stable on three drugs"});
    let (status, body) = d.post(&format!("{base}/complete"), &d.county_desk, discharge).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let history: Vec<&str> = body["referral"]["status"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["received", "accepted", "in-progress", "completed"]);
    assert!(body["event_id"].is_string());
    let (status, _) = d.post(&format!("{base}/accept"), &d.county_desk, sun.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "completed is terminal");

    // Reading the referral: both sides' desks and the analyst; not a third clinic.
    for token in [&d.county_desk, &d.village_desk, &d.analyst] {
        let (status, body) = d.get(&base, token).await;
        assert_eq!((status, &body["status"]["status"]), (StatusCode::OK, &json!("completed")), "{body}");
        assert_eq!(body["patient_id"], d.patient.to_string());
    }
    assert_eq!(d.get(&base, &d.other_desk).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_hospital_sends_the_resident_back_down() {
    let d = consortium();
    let base = format!("/v1/referrals/{}", d.referral);
    let back = json!({"practitioner_id": "dr-sun", "reason": "rehabilitation at home", "clinical_summary": "walks with a stick"});
    let (status, body) = d.post(&format!("{base}/downward"), &d.village_desk, back.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only the hospital that received it: {body}");
    let (status, down) = d.post(&format!("{base}/downward"), &d.county_desk, back.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{down}");
    assert_eq!((down["direction"].as_str(), down["urgency"].as_str()), (Some("downward"), Some("routine")));
    assert_eq!(
        (down["from_organization_id"].as_str(), down["to_organization_id"].as_str()),
        (Some(COUNTY), Some(VILLAGE))
    );
    assert_eq!(down["in_response_to"], d.referral.to_string());
    let record = d.api.store.patient(d.patient).unwrap();
    assert_eq!(record.referrals.len(), 2);
    // It appears in the village clinic's incoming worklist.
    let (_, list) = d.get(&format!("/v1/organizations/{VILLAGE}/worklist?side=incoming"), &d.village_desk).await;
    assert_eq!(list[0]["id"].as_str().or(list[0]["referral_id"].as_str()), down["id"].as_str());
    // A downward referral is not answered by another; an unknown destination is refused.
    let (status, body) =
        d.post(&format!("/v1/referrals/{}/downward", down["id"].as_str().unwrap()), &d.analyst, back.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = d
        .post(&format!("/v1/referrals/{}/downward", down["id"].as_str().unwrap()), &d.api.token.clone(), back.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).ends_with("is a downward referral"), "{body}");
    let elsewhere = json!({"practitioner_id": "dr-sun", "reason": "x", "to_organization_id": "atlantis"});
    let (status, body) = d.post(&format!("{base}/downward"), &d.county_desk, elsewhere).await;
    assert_eq!((status, error(&body)), (StatusCode::NOT_FOUND, "organization atlantis not found"));
    let (status, body) =
        d.post(&format!("{base}/downward"), &d.county_desk, json!({"practitioner_id": "dr-sun", "reason": ""})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).starts_with("referral.reason"), "{body}");
}

#[tokio::test]
async fn records_are_read_by_those_concerned_and_every_read_is_logged() {
    let d = consortium();
    let uri = format!("/v1/patients/{}", d.patient);
    let (status, record) = d.get(&uri, &d.county_desk).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["patient"]["name"], "刘桂兰");
    let (status, body) = d.get(&uri, &d.other_desk).await;
    assert_eq!(
        (status, error(&body)),
        (StatusCode::FORBIDDEN, "token desk-dongcun acts for dongcun; no referral of this resident concerns it")
    );
    assert_eq!(d.get(&uri, &d.analyst).await.0, StatusCode::OK);
    let (status, body) = d.get("/v1/patients/nobody", &d.analyst).await;
    assert_eq!((status, error(&body)), (StatusCode::BAD_REQUEST, "patient: \"nobody\" is not a patient id"));
    assert_eq!(d.get(&format!("/v1/patients/{}", PatientId::new()), &d.analyst).await.0, StatusCode::NOT_FOUND);
    let reads = d.api.store.record_reads(Some(&d.patient.to_string()), 10).unwrap();
    let readers: Vec<&str> = reads.iter().map(|r| r.reader.as_str()).collect();
    assert_eq!(readers, ["analyst-sun", "desk-county"], "the refused read is not logged");
}

#[tokio::test]
async fn statistics_count_referrals_and_overdue_follow_ups_per_team() {
    let d = consortium();
    let uri = format!("/v1/organizations/{COUNTY}/statistics");
    let (status, stats) = d.get(&uri, &d.analyst).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["referrals"]["upward"]["requested"], 1);
    assert_eq!(stats["closed_loop"]["completed_upward"], 0);
    assert!(stats["months"].as_array().unwrap().len() >= 6);
    // The county's consortium includes Shiqiao's team; its resident was last seen 200 days ago.
    let teams = stats["overdue_follow_ups"].as_array().unwrap();
    assert_eq!(teams.len(), 1, "{stats}");
    assert_eq!((teams[0]["team_id"].as_str(), teams[0]["overdue"].as_u64()), (Some("team-shiqiao"), Some(1)));
    assert_eq!(teams[0]["overdue_over_30_days"], 1);
    let (_, other) = d.get(&format!("/v1/organizations/{OTHER}/statistics"), &d.other_desk).await;
    assert!(other["overdue_follow_ups"].as_array().unwrap().is_empty());
    assert_eq!(other["closed_loop"]["rate"], Value::Null);
    let (status, body) = d.get(&format!("{uri}?from=2026-03-01&to=2026-02-01"), &d.analyst).await;
    assert_eq!(
        (status, error(&body)),
        (StatusCode::BAD_REQUEST, "period.from: 2026-03-01 is after period.to 2026-02-01")
    );
    let (status, body) = d.get(&format!("{uri}?from=yesterday"), &d.analyst).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("from"), "{body}");
    assert_eq!(d.get(&uri, &d.other_desk).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_changes_feed_pages_through_every_record() {
    let d = consortium();
    let second = d.api.store.create_patient(NewPatient {
        id: None,
        demographics: Demographics {
            name: "赵建国".into(),
            sex: Sex::Male,
            birth_date: NaiveDate::from_ymd_opt(1948, 7, 1).unwrap(),
            national_id: None,
            phone: None,
            address: None,
            village: None,
        },
        practitioner_id: "dr-zhou".into(),
        organization_id: OTHER.into(),
    });
    let second = second.unwrap();
    let (status, page) = d.get("/v1/changes?since=0&limit=1", &d.analyst).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!((page["changes"].as_array().unwrap().len(), &page["more"]), (1, &json!(true)));
    assert_eq!(page["changes"][0]["patient_id"], d.patient.to_string());
    let next = page["next"].as_i64().unwrap();
    let (_, page) = d.get(&format!("/v1/changes?since={next}&limit=1"), &d.analyst).await;
    assert_eq!(page["changes"][0]["patient_id"], second.to_string());
    // An analyst reads the resident's identity masked; an admin (a hospital system's token) whole.
    assert_eq!(page["changes"][0]["record"]["patient"]["name"], "赵*国");
    let (_, whole) = d.get(&format!("/v1/changes?since={next}&limit=1"), &d.api.token).await;
    assert_eq!(whole["changes"][0]["record"]["patient"]["name"], "赵建国");
    assert_eq!(page["more"], false);
    let end = page["next"].as_i64().unwrap();
    // Nothing new and no wait: an empty page at once, pointing at the same place.
    let (_, page) = d.get(&format!("/v1/changes?since={end}"), &d.analyst).await;
    assert_eq!((page["changes"].as_array().unwrap().len(), page["next"].as_i64()), (0, Some(end)));
    for (query, message) in [
        ("limit=0", "limit: 0 is outside 1..=500"),
        ("since=-4", "since: -4 is negative"),
        ("wait=600", "wait: 600 is more than 60 seconds"),
    ] {
        let (status, body) = d.get(&format!("/v1/changes?{query}"), &d.analyst).await;
        assert_eq!((status, error(&body)), (StatusCode::BAD_REQUEST, message));
    }
    let (status, body) = d.get("/v1/changes", &d.county_desk).await;
    assert_eq!(
        (status, error(&body)),
        (StatusCode::FORBIDDEN, "token desk-county acts for county; the changes feed is consortium-wide")
    );
}

#[tokio::test]
async fn organizations_devices_and_the_dashboard() {
    let d = consortium();
    let (status, orgs) = d.get("/v1/organizations", &d.analyst).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = orgs.as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [COUNTY, OTHER, VILLAGE]);
    let (status, devices) = d.get("/v1/devices", &d.county_desk).await;
    assert_eq!((status, devices), (StatusCode::OK, json!([])));
    assert_eq!(d.api.call("GET", "/v1/devices", None, None).await.0, StatusCode::UNAUTHORIZED);
    // The dashboard's page and assets are served without a token (the data is not), with a
    // content security policy that keeps other origins' scripts out.
    for (path, kind) in
        [("/dashboard", "text/html"), ("/dashboard/app.js", "text/javascript"), ("/dashboard/style.css", "text/css")]
    {
        let response = tower::ServiceExt::oneshot(
            yilian_relay::http::app(d.api.state.clone()),
            Request::get(path).body(axum::body::Body::empty()).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        assert!(headers["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    }
}

/// Reads a server-sent events body until `n` events arrived (each within 5 s: the stream answers
/// at once or at a commit, so a missing event fails instead of hanging).
async fn next_events(body: &mut axum::body::BodyDataStream, n: usize) -> Vec<(String, Value)> {
    use futures_util::StreamExt;
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < n {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), body.next())
            .await
            .expect("an event within 5 s")
            .expect("the stream is open")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field =
                |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).map(str::to_string);
            if let (Some(kind), Some(data)) = (field("event:"), field("data:")) {
                events.push((kind, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    events
}

#[tokio::test]
async fn the_desk_is_alerted_of_green_channel_referrals_as_they_arrive_and_move() {
    let d = consortium();
    let request = Request::get(format!("/v1/organizations/{COUNTY}/alerts"))
        .header("authorization", format!("Bearer {}", d.county_desk))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(yilian_relay::http::app(d.api.state.clone()), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut body = response.into_body().into_data_stream();
    // On connect: the open urgent referral addressed to the county.
    let first = next_events(&mut body, 1).await;
    assert_eq!(first[0].0, "urgent-referral");
    assert_eq!(first[0].1["referral_id"], d.referral.to_string());
    assert_eq!(first[0].1["patient_name"], "刘桂兰");
    // A green-channel referral arrives: the desk hears of it at the commit; a routine one is not
    // an alert.
    let s = &d.api.store;
    let refer = |urgency, reason: &str| NewReferral {
        direction: Direction::Upward,
        from_organization_id: VILLAGE.into(),
        from_practitioner_id: "dr-wang".into(),
        to_organization_id: COUNTY.into(),
        reason: reason.into(),
        urgency,
        clinical_summary: String::new(),
        in_response_to: None,
    };
    s.create_referral(d.patient, refer(Urgency::Routine, "annual review")).unwrap();
    let green = s.create_referral(d.patient, refer(Urgency::Emergency, "BP 210/125, chest pain")).unwrap();
    let arrived = next_events(&mut body, 1).await;
    assert_eq!((arrived[0].0.as_str(), &arrived[0].1["referral_id"]), ("urgent-referral", &json!(green.to_string())));
    assert_eq!(arrived[0].1["urgency"], "emergency");
    // The desk accepts it and starts: its status moves; then it is completed: it closes.
    let base = format!("/v1/referrals/{green}");
    let (status, body_accept) =
        d.post(&format!("{base}/accept"), &d.county_desk, json!({"practitioner_id": "dr-sun"})).await;
    assert_eq!(status, StatusCode::OK, "{body_accept}");
    let moved = next_events(&mut body, 1).await;
    assert_eq!((moved[0].0.as_str(), &moved[0].1["status"]), ("referral-status", &json!("accepted")));
    let (status, _) = d.post(&format!("{base}/start"), &d.county_desk, json!({"practitioner_id": "dr-sun"})).await;
    assert_eq!(status, StatusCode::OK);
    let moved = next_events(&mut body, 1).await;
    assert_eq!((moved[0].0.as_str(), &moved[0].1["status"]), ("referral-status", &json!("in-progress")));
    let (status, done) = d
        .post(
            &format!("{base}/complete"),
            &d.county_desk,
            json!({"practitioner_id": "dr-sun", "discharge_summary": "stable"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let closed = next_events(&mut body, 1).await;
    assert_eq!((closed[0].0.as_str(), &closed[0].1["referral_id"]), ("referral-closed", &json!(green.to_string())));
    // Another organization's desk cannot follow the county's alerts.
    let (status, _) = d.get(&format!("/v1/organizations/{COUNTY}/alerts"), &d.other_desk).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_analyst_reads_residents_with_their_identity_masked() {
    let d = consortium();
    let (status, record) = d.get(&format!("/v1/patients/{}", d.patient), &d.analyst).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["patient"]["name"], "刘*兰");
    assert!(record["patient"].get("address").is_none_or(Value::is_null), "{record}");
    let (_, whole) = d.get(&format!("/v1/patients/{}", d.patient), &d.county_desk).await;
    assert_eq!(whole["patient"]["name"], "刘桂兰");
    let (_, lines) = d.get(&format!("/v1/organizations/{COUNTY}/worklist"), &d.analyst).await;
    assert_eq!(lines[0]["patient_name"], "刘*兰");
    let (_, detail) = d.get(&format!("/v1/referrals/{}", d.referral), &d.analyst).await;
    assert_eq!(detail["patient_name"], "刘*兰");
    let (_, lines) = d.get(&format!("/v1/organizations/{COUNTY}/worklist"), &d.county_desk).await;
    assert_eq!(lines[0]["patient_name"], "刘桂兰");
}
