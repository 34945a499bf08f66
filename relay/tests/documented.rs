//! `docs/HTTP-API.md` lists the metrics and the `/v1` endpoints by hand; this keeps the lists
//! true: every metric `/metrics` renders is in the document and every metric the document names
//! is rendered, and likewise for the `/v1` operations `/openapi.json` describes.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::StatusCode;
use common::Api;
use std::collections::BTreeSet;

fn document() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/HTTP-API.md")).unwrap()
}

#[tokio::test]
async fn every_metric_rendered_is_documented_and_every_one_documented_is_rendered() {
    let api = Api::new();
    let request = axum::http::Request::builder().uri("/metrics").body(axum::body::Body::empty()).unwrap();
    let response = tower::ServiceExt::oneshot(yilian_relay::http::app(api.state.clone()), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    // Families are declared even before their first sample (`# TYPE name kind`); a counter's
    // samples add `_total`.
    let rendered: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE yilian_relay"))
        .filter_map(|l| {
            let (name, kind) = l.split_once(' ')?;
            Some(if kind == "counter" { format!("{name}_total") } else { name.to_string() })
        })
        .collect();
    let doc = document();
    let section = doc.split("`GET /metrics`").nth(1).unwrap().split("\n## ").next().unwrap();
    let documented: BTreeSet<String> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|name| name.strip_prefix("yilian_relay").or(Some(name)))
        .filter(|name| name.starts_with('_'))
        .map(|name| name.split('{').next().unwrap().to_string())
        .collect();
    assert!(rendered.len() > 10, "{rendered:?}");
    assert_eq!(rendered, documented, "rendered (left) and documented (right) differ");
}

#[tokio::test]
async fn every_v1_operation_described_is_documented_and_every_one_documented_is_described() {
    let api = Api::new();
    let (status, description) = api.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let mut described = BTreeSet::new();
    for (path, item) in description["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_some() && path.starts_with("/v1/") {
                described.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    // The document names a path parameter as it likes (`{org}`, `{id}`): compare the shapes.
    let shape = |op: &str| {
        op.split('/').map(|part| if part.starts_with('{') { "{}" } else { part }).collect::<Vec<_>>().join("/")
    };
    let documented: BTreeSet<String> = document()
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|op| op.contains(" /v1/"))
        .map(|op| shape(op.split('?').next().unwrap()))
        .collect();
    let described: BTreeSet<String> = described.iter().map(|op| shape(op)).collect();
    assert!(described.len() > 5, "{described:?}");
    assert_eq!(described, documented, "described (left) and documented (right) differ");
}
