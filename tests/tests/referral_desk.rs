//! The closed loop end to end: a village phone records a visit and an upward referral offline and
//! syncs over real QUIC; the county hospital's referral desk accepts, admits and discharges the
//! resident over the relay's HTTP API (signed changes of the relay's own key); the phone receives
//! every event; the desk sends the resident back down; the phone's follow-up visit closes the
//! loop, and the closed-loop statistics move with each step. A hospital system following the
//! changes feed sees the record.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::watch;
use tower::ServiceExt;
use yilian_core::model::TaskStatus;
use yilian_core::store::{OperatorRole, SignatureCheck};
use yilian_core::{OrganizationKind, PractitionerRole, ReferralId, Store};
use yilian_relay::http::{AppState, app};
use yilian_testing::Consortium;
use yilian_tests::lab::{LAB_CLINIC, Phone, lab_directory, open_store, start_relay};
use yilian_tests::{COUNTY, follow_up_visit, resident, upward_referral};

struct Http {
    state: AppState,
}

impl Http {
    async fn call(&self, method: &str, uri: &str, token: &str, body: Option<Value>) -> Result<(StatusCode, Value)> {
        let request = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {token}"));
        let request = match body {
            Some(b) => request.header("content-type", "application/json").body(Body::from(b.to_string()))?,
            None => request.body(Body::empty())?,
        };
        let response = app(self.state.clone()).oneshot(request).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 8 << 20).await?;
        Ok((status, serde_json::from_slice(&bytes).with_context(|| format!("{method} {uri}: not JSON"))?))
    }

    /// A call that must answer `expected`.
    async fn expect(&self, expected: StatusCode, method: &str, uri: &str, token: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method, uri, token, body).await.unwrap();
        assert_eq!(status, expected, "{method} {uri}: {value}");
        value
    }
}

fn county_directory(storage: &Store) -> Result<()> {
    lab_directory(storage)?;
    Consortium::new()
        .organization(COUNTY, "县人民医院", OrganizationKind::CountyHospital, None)
        .practitioner("dr-sun", "孙医生", PractitionerRole::Specialist, COUNTY)
        .enter(storage)?;
    Ok(())
}

fn closed_loop(stats: &Value) -> (u64, u64, u64) {
    let c = &stats["closed_loop"];
    (c["completed_upward"].as_u64().unwrap(), c["closed"].as_u64().unwrap(), c["awaiting"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_closes_the_loop_over_http_and_the_phone_sees_every_step() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = open_store(dir.path().join("relay.db"))?;
    county_directory(&storage)?;
    let relay = start_relay(dir.path(), storage.clone()).await?;
    let http = Http {
        state: AppState {
            storage: storage.clone(),
            revocations: Arc::new(watch::Sender::new(0)),
            metrics: relay.metrics(),
        },
    };
    let desk = storage.create_admin_token("desk-zhao", OperatorRole::ReferralDesk, Some(COUNTY))?;
    let analyst = storage.create_admin_token("his-feed", OperatorRole::Analyst, None)?;
    let phone = Phone::join("wang-phone", open_store(dir.path().join("wang.db"))?, &relay, &storage).await?;

    // Offline at the village clinic: a visit with a high reading and an upward referral.
    let patient = phone.store.create_patient(resident("王秀英"))?;
    let mut visit = follow_up_visit(50);
    visit.vitals.systolic_mmhg = Some(168);
    phone.store.record_visit(patient, visit)?;
    let referral = phone.store.create_referral(patient, upward_referral())?;
    phone.sync(relay.addr).await?;

    // The county desk's worklist shows it, urgent and waiting.
    let list = http
        .expect(
            StatusCode::OK,
            "GET",
            &format!("/v1/organizations/{COUNTY}/worklist?side=incoming&status=requested"),
            &desk,
            None,
        )
        .await;
    ensure!(list.as_array().map(Vec::len) == Some(1), "{list}");
    ensure!(list[0]["referral_id"] == referral.to_string() && list[0]["urgency"] == "urgent", "{list}");
    ensure!(list[0]["patient_name"] == "王秀英" && list[0]["side"] == "incoming");
    let stats_uri = format!("/v1/organizations/{COUNTY}/statistics");
    let stats = http.expect(StatusCode::OK, "GET", &stats_uri, &desk, None).await;
    ensure!(stats["referrals"]["upward"]["requested"] == 1, "{stats}");
    ensure!(closed_loop(&stats) == (0, 0, 0));

    // Accept, admit, discharge: three decisions over HTTP.
    let base = format!("/v1/referrals/{referral}");
    let accepted = http
        .expect(
            StatusCode::OK,
            "POST",
            &format!("{base}/accept"),
            &desk,
            Some(json!({"practitioner_id": "dr-sun", "note": "bed 12 on Thursday"})),
        )
        .await;
    ensure!(accepted["referral"]["status"]["status"] == "accepted", "{accepted}");
    // Completing before admission is not a transition the workflow has.
    let conflict = http
        .expect(
            StatusCode::CONFLICT,
            "POST",
            &format!("{base}/complete"),
            &desk,
            Some(json!({"practitioner_id": "dr-sun", "discharge_summary": "x"})),
        )
        .await;
    ensure!(conflict["error"].as_str().unwrap().contains("cannot go from accepted to completed"), "{conflict}");
    http.expect(StatusCode::OK, "POST", &format!("{base}/start"), &desk, Some(json!({"practitioner_id": "dr-sun"})))
        .await;
    let done = http
        .expect(StatusCode::OK, "POST", &format!("{base}/complete"), &desk, Some(json!({"practitioner_id": "dr-sun", "discharge_summary": "BP 132/84 on amlodipine + valsartan; recheck in two weeks"})))
        .await;
    ensure!(done["referral"]["status"]["status"] == "completed");

    // The decisions are changes of the relay's own key, validly signed.
    let trail = storage.audit_trail(patient)?;
    let relay_key = storage.device_public_key();
    let by_relay: Vec<_> =
        trail.entries.iter().filter(|e| e.author_key.as_deref() == Some(relay_key.as_str())).collect();
    ensure!(by_relay.len() == 3, "three decisions signed by the relay, got {}", by_relay.len());
    ensure!(by_relay.iter().all(|e| e.signature == SignatureCheck::Valid));

    // The dashboard's sync-lag view: the phone has the three decisions still to pull.
    let lag =
        |devices: &Value| devices.as_array().and_then(|d| d.iter().find(|d| d["device_id"] == "wang-phone").cloned());
    let devices = http.expect(StatusCode::OK, "GET", "/v1/devices", &analyst, None).await;
    ensure!(lag(&devices).is_some_and(|d| d["pending_changes"] == 3 && d["last_sync_at"].is_i64()), "{devices}");

    // The phone receives every event on its next sync.
    phone.sync(relay.addr).await?;
    let devices = http.expect(StatusCode::OK, "GET", "/v1/devices", &analyst, None).await;
    ensure!(lag(&devices).is_some_and(|d| d["pending_changes"] == 0), "{devices}");
    let status = phone.store.referral_status(referral)?;
    ensure!(status.status == TaskStatus::Completed, "phone sees {:?}", status.status);
    let seen: Vec<TaskStatus> = status.history.iter().map(|e| e.event.status).collect();
    ensure!(seen == [TaskStatus::Accepted, TaskStatus::InProgress, TaskStatus::Completed], "{seen:?}");
    ensure!(
        status.history.iter().all(|e| e.event.by_organization_id == COUNTY && e.event.by_practitioner_id == "dr-sun")
    );
    // Completed, not yet answered: awaiting its two weeks.
    let stats = http.expect(StatusCode::OK, "GET", &stats_uri, &desk, None).await;
    ensure!(closed_loop(&stats) == (1, 0, 1), "{stats}");
    ensure!(stats["acceptance"]["accepted"] == 1);

    // The desk sends the resident back down; the phone gets the downward referral.
    let down = http
        .expect(
            StatusCode::CREATED,
            "POST",
            &format!("{base}/downward"),
            &desk,
            Some(
                json!({"practitioner_id": "dr-sun", "reason": "rehabilitation and BP follow-up at the village clinic"}),
            ),
        )
        .await;
    let down_id: ReferralId = down["id"].as_str().context("downward id")?.parse()?;
    ensure!(down["to_organization_id"] == LAB_CLINIC && down["in_response_to"] == referral.to_string(), "{down}");
    phone.sync(relay.addr).await?;
    let on_phone = phone.store.patient(patient)?;
    ensure!(on_phone.referral(down_id).is_some_and(|v| v.referral.in_response_to == Some(referral)));
    let stats = http.expect(StatusCode::OK, "GET", &stats_uri, &desk, None).await;
    ensure!(closed_loop(&stats).1 == 0, "a downward referral alone does not close the loop");

    // The village doctor's follow-up visit closes it.
    let mut back_home = follow_up_visit(7);
    back_home.at = yilian_core::time::now_ms();
    phone.store.record_visit(patient, back_home)?;
    phone.sync(relay.addr).await?;
    let stats = http.expect(StatusCode::OK, "GET", &stats_uri, &desk, None).await;
    ensure!(closed_loop(&stats) == (1, 1, 0), "{stats}");
    ensure!(stats["closed_loop"]["rate"] == 1.0, "{stats}");

    // A hospital system following the changes feed gets the record as it is now.
    let page = http.expect(StatusCode::OK, "GET", "/v1/changes?since=0", &analyst, None).await;
    let changes = page["changes"].as_array().context("changes")?;
    ensure!(changes.len() == 1 && changes[0]["patient_id"] == patient.to_string(), "{page}");
    ensure!(changes[0]["record"]["referrals"].as_array().map(Vec::len) == Some(2));
    let next = page["next"].as_i64().context("next")?;
    ensure!(page["more"] == false);

    // Long poll: the request waits until the phone's next visit arrives, then answers with it.
    let waiting = {
        let state = http.state.clone();
        let analyst = analyst.clone();
        tokio::spawn(async move {
            Http { state }.call("GET", &format!("/v1/changes?since={next}&wait=30"), &analyst, None).await
        })
    };
    phone.store.record_visit(patient, follow_up_visit(8))?;
    phone.sync(relay.addr).await?;
    let (status, page) = waiting.await??;
    ensure!(status == StatusCode::OK && page["changes"][0]["patient_id"] == patient.to_string(), "{page}");
    ensure!(page["next"].as_i64().unwrap() > next);
    ensure!(storage.record_reads(Some(&patient.to_string()), 100)?.iter().any(|r| r.reader == "his-feed"));
    relay.shutdown().await;
    Ok(())
}
