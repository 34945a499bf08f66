//! The relay's `/metrics` after real QUIC traffic: sessions, changes ingested, bytes, refused
//! connections, durations and store size, read back with a Prometheus text parser.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use prometheus_parse::{Scrape, Value};
use std::sync::Arc;
use tokio::sync::watch;
use tower::ServiceExt;
use yilian_core::net::SessionOptions;
use yilian_relay::http::{AppState, app};
use yilian_tests::lab::{Phone, open_store, start_relay};
use yilian_tests::{follow_up_visit, resident};

fn sample<'a>(scrape: &'a Scrape, name: &str, kind: Option<&str>) -> Option<&'a Value> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && kind.is_none_or(|k| s.labels.get("kind") == Some(k)))
        .map(|s| &s.value)
}

fn number(value: Option<&Value>) -> f64 {
    match value {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        _ => f64::NAN,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_real_sessions_and_parse_as_prometheus_text() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = open_store(dir.path().join("relay.db"))?;
    let relay = start_relay(dir.path(), storage.clone()).await?;
    let wang = Phone::join("wang-phone", open_store(dir.path().join("w.db"))?, &relay, &storage).await?;
    let lost = Phone::join("lost-phone", open_store(dir.path().join("l.db"))?, &relay, &storage).await?;
    for name in ["王秀英", "李桂兰", "赵建国"] {
        let p = wang.store.create_patient(resident(name))?;
        wang.store.record_visit(p, follow_up_visit(1))?;
    }
    wang.sync(relay.addr).await?;
    relay.revoke("lost-phone", "admin", "reported lost")?;
    ensure!(lost.try_sync(relay.addr, &SessionOptions::default(), &Default::default()).await.is_err());

    // Shutting down waits for every connection's task, so every session has been counted.
    let metrics = relay.metrics();
    relay.shutdown().await;
    let state = AppState { storage: storage.clone(), revocations: Arc::new(watch::Sender::new(0)), metrics };
    let response = app(state).oneshot(Request::get("/metrics").body(Body::empty())?).await?;
    ensure!(response.status() == StatusCode::OK);
    let content_type = response.headers().get("content-type").context("content type")?.to_str()?.to_string();
    ensure!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    let text = String::from_utf8(body.to_vec())?;
    println!("{text}");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))?;

    // The phone closed its connection after syncing: a clean session, no errors; the lost phone
    // never got a session.
    let sessions = number(sample(&scrape, "yilian_relay_sessions_total", Some("ok")));
    ensure!(sessions == 1.0, "one sync session, got {sessions}");
    // Every kind of error has its series from the start, at 0.
    let errors: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "yilian_relay_sync_errors_total")
        .map(|s| number(Some(&s.value)))
        .collect();
    ensure!(errors.len() == yilian_relay::metrics::ERROR_KINDS.len() && errors.iter().all(|e| *e == 0.0), "{errors:?}");
    let stored_from_phones = storage.remote_change_count()? as f64;
    ensure!(stored_from_phones >= 6.0, "three registrations and three visits at least");
    ensure!(number(sample(&scrape, "yilian_relay_ingested_changes", None)) == stored_from_phones);
    ensure!(number(sample(&scrape, "yilian_relay_refused_connections_total", Some("revoked"))) == 1.0);
    ensure!(number(sample(&scrape, "yilian_relay_connected_devices", None)) == 0.0);
    ensure!(number(sample(&scrape, "yilian_relay_udp_bytes_total", Some("in"))) > 1000.0);
    ensure!(number(sample(&scrape, "yilian_relay_udp_bytes_total", Some("out"))) > 1000.0);
    ensure!(number(sample(&scrape, "yilian_relay_store_bytes", None)) > 0.0);
    match sample(&scrape, "yilian_relay_session_duration_seconds", None) {
        Some(Value::Histogram(buckets)) => {
            let total = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
            ensure!(total == 1.0, "one duration observed, got {total}");
        }
        other => anyhow::bail!("no duration histogram: {other:?}"),
    }
    Ok(())
}
