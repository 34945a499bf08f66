//! The admin HTTP API without a socket (`app(state).oneshot(request)`): token checks, the
//! directory, enrollment codes, revocation, and record reads that are logged.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::StatusCode;
use common::Api;
use serde_json::json;
use yilian_core::Store;
use yilian_core::model::{Demographics, NewPatient, Sex};
use yilian_core::store::OperatorRole;

#[tokio::test]
async fn admin_endpoints_need_a_live_token() {
    let api = Api::new();
    assert_eq!(api.call("GET", "/healthz", None, None).await.0, StatusCode::OK);
    assert_eq!(api.call("GET", "/readyz", None, None).await.0, StatusCode::OK);
    let (status, body) = api.call("GET", "/admin/devices", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("Bearer"));
    assert_eq!(api.call("GET", "/admin/devices", Some("yat_guessed"), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(api.admin("GET", "/admin/devices", None).await.0, StatusCode::OK);
    // A read-only analyst and a referral desk may not touch the directory or devices.
    yilian_testing::Consortium::new()
        .organization("county", "县人民医院", yilian_core::OrganizationKind::CountyHospital, None)
        .enter(&api.store)
        .unwrap();
    for (name, role) in [("analyst-sun", OperatorRole::Analyst), ("desk-zhao", OperatorRole::ReferralDesk)] {
        let token = api.store.create_admin_token(name, role, Some("county")).unwrap();
        let (status, body) = api.call("GET", "/admin/devices", Some(&token), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let expected = format!("token {name} has the role {role}; this needs admin");
        assert_eq!(body["error"].as_str().unwrap(), expected);
    }
    api.store.revoke_admin_token("ops-li").unwrap();
    assert_eq!(api.admin("GET", "/admin/devices", None).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_admin_builds_the_directory_enrolls_and_revokes_a_device() {
    let api = Api::new();
    let county = json!({"id": "county", "name": "县人民医院", "kind": "county_hospital", "part_of": null});
    assert_eq!(api.admin("POST", "/admin/organizations", Some(county.clone())).await.0, StatusCode::CREATED);
    let (status, body) = api.admin("POST", "/admin/organizations", Some(county)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let orphan = json!({"id": "v1", "name": "村", "kind": "village_clinic", "part_of": "nowhere"});
    let (status, body) = api.admin("POST", "/admin/organizations", Some(orphan)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("organization nowhere"), "{body}");
    let village = json!({"id": "shiqiao", "name": "石桥村卫生室", "kind": "village_clinic", "part_of": "county"});
    assert_eq!(api.admin("POST", "/admin/organizations", Some(village)).await.0, StatusCode::CREATED);
    let doctor = json!({"id": "dr-wang", "name": "王医生", "role": "family_doctor", "organization_id": "shiqiao"});
    assert_eq!(api.admin("POST", "/admin/practitioners", Some(doctor)).await.0, StatusCode::CREATED);
    let team = json!({"id": "team-1", "name": "一队", "organization_id": "shiqiao", "members": ["dr-wang"]});
    assert_eq!(api.admin("POST", "/admin/teams", Some(team)).await.0, StatusCode::CREATED);
    let (_, teams) = api.admin("GET", "/admin/teams", None).await;
    assert_eq!(teams[0]["members"], json!(["dr-wang"]));
    let bad = json!({"id": "x", "name": "x", "role": "wizard", "organization_id": "shiqiao"});
    let (status, body) = api.admin("POST", "/admin/practitioners", Some(bad)).await;
    assert!(status.is_client_error() && body.to_string().contains("wizard"), "{status} {body}");

    let (status, code) =
        api.admin("POST", "/admin/enrollment-codes", Some(json!({"practitioner": "dr-wang", "valid_hours": 24}))).await;
    assert_eq!(status, StatusCode::CREATED, "{code}");
    assert_eq!(code["organization_id"], "shiqiao");
    let phone = Store::open_in_memory(common::options()).unwrap();
    api.store
        .enroll_device(code["code"].as_str().unwrap(), "wang-phone", phone.device_key().public_key(), common::now_ms())
        .unwrap();
    let (_, devices) = api.admin("GET", "/admin/devices", None).await;
    assert_eq!(devices[0]["device_id"], "wang-phone");
    assert!(devices[0]["revoked_at"].is_null());

    let mut revocations = api.state.revocations.subscribe();
    revocations.borrow_and_update();
    let (status, revoked) =
        api.admin("POST", "/admin/devices/wang-phone/revoke", Some(json!({"reason": "phone lost"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revoked["revoke_reason"], "phone lost");
    assert!(revocations.has_changed().unwrap(), "the QUIC side is told at once");
    let (status, _) = api.admin("POST", "/admin/devices/nobody/revoke", Some(json!({"reason": "x"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reading_a_record_or_its_audit_trail_is_logged_with_the_operator() {
    let api = Api::new();
    let p = api
        .store
        .create_patient(NewPatient {
            id: None,
            demographics: Demographics {
                name: "刘桂兰".into(),
                sex: Sex::Female,
                birth_date: chrono::NaiveDate::from_ymd_opt(1951, 2, 3).unwrap(),
                national_id: None,
                phone: None,
                address: None,
                village: None,
            },
            practitioner_id: "dr-wang".into(),
            organization_id: "shiqiao".into(),
        })
        .unwrap();
    let (status, record) = api.admin("GET", &format!("/admin/records/{p}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["patient"]["name"], "刘桂兰", "{record}");
    let (status, trail) = api.admin("GET", &format!("/admin/records/{p}/audit"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(trail["problems"].as_array().unwrap().is_empty());
    assert!(trail["entries"].as_array().unwrap().iter().any(|e| e["fields"].to_string().contains("刘桂兰")), "{trail}");
    let (status, body) = api.admin("GET", "/admin/records/not-a-uuid", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("not a patient id"));

    let (_, reads) = api.admin("GET", &format!("/admin/reads?patient={p}"), None).await;
    let reads = reads.as_array().unwrap();
    assert_eq!(reads.len(), 2);
    assert_eq!(reads[0]["what"], "audit");
    assert_eq!(reads[1]["what"], "record");
    assert!(reads.iter().all(|r| r["reader"] == "ops-li"));
}
