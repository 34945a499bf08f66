//! `/openapi.json` describes the non-FHIR API, generated from the handlers: every documented
//! route answers (never the "no endpoint" fallback), every route of `/admin` and `/v1` is
//! documented, and the types the API serves come with their schemas.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::{Request, StatusCode};
use common::Api;

#[tokio::test]
async fn the_description_lists_every_route_and_every_listed_route_answers() {
    let api = Api::new();
    let (status, doc) = api.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")).unwrap();
    std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/openapi.json"), doc.to_string()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete"] {
            if let Some(op) = item.get(method) {
                operations.push((method.to_uppercase(), path.clone()));
                assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
            }
        }
    }
    // Every operation the API has (a change here is a change of the API: update both).
    let expected = [
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /admin/organizations",
        "POST /admin/organizations",
        "GET /admin/practitioners",
        "POST /admin/practitioners",
        "GET /admin/teams",
        "POST /admin/teams",
        "PUT /admin/teams/{team}/members/{practitioner}",
        "DELETE /admin/teams/{team}/members/{practitioner}",
        "POST /admin/enrollment-codes",
        "GET /admin/devices",
        "POST /admin/devices/{device}/revoke",
        "GET /admin/devices/{device}/scope",
        "GET /admin/records/{patient}",
        "GET /admin/records/{patient}/audit",
        "GET /admin/reads",
        "GET /v1/organizations",
        "GET /v1/devices",
        "GET /v1/organizations/{organization}/worklist",
        "GET /v1/organizations/{organization}/alerts",
        "GET /v1/organizations/{organization}/statistics",
        "GET /v1/referrals/{referral}",
        "POST /v1/referrals/{referral}/downward",
        "POST /v1/referrals/{referral}/{action}",
        "GET /v1/patients/{patient}",
        "GET /v1/changes",
    ];
    let mut listed: Vec<String> = operations.iter().map(|(m, p)| format!("{m} {p}")).collect();
    listed.sort();
    let mut wanted: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    wanted.sort();
    assert_eq!(listed, wanted);
    // Each documented operation is a real route: with placeholders filled in and no token it is
    // refused or answered, never the fallback's "no endpoint".
    for (method, path) in &operations {
        let uri = path.replace(['{', '}'], "");
        let request = Request::builder().method(method.as_str()).uri(&uri);
        let (status, body) = api.raw(request, None, None).await;
        let fallback = body["error"].as_str().is_some_and(|e| e.starts_with("no endpoint"));
        assert!(!fallback, "{method} {path} is documented but not routed: {status} {body}");
    }
    // Operations with a token say so; the schemas of what they serve are there.
    assert!(doc["paths"]["/v1/changes"]["get"]["security"].is_array());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in
        ["PatientRecord", "WorklistItem", "ReferralStatistics", "ChangesPage", "DeviceSync", "ErrorBody", "Vitals"]
    {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let worklist_params: Vec<&str> = doc["paths"]["/v1/organizations/{organization}/worklist"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(worklist_params, ["organization", "side", "status", "urgency", "direction", "from", "to", "limit"]);
}
