//! Sync benchmark over real QUIC on loopback: a device whose scope holds 2,000 patient documents
//! (11 changes each) syncs with a relay.
//!
//! Prints, and writes to `target/bench/sync.json`: first full sync (seconds, protocol and UDP
//! bytes), idle sync (rounds, bytes), incremental sync after 50 new visits across 50 patients
//! (rounds, bytes, and bytes over the new changes compressed alone), and the device's peak RSS.
//! The device runs in its own process (this binary, re-executed with `--device`) so its RSS is
//! its own; protocol bytes (frames) and wire bytes (UDP payload, QUIC handshake included) are
//! counted separately.
//!
//! The idle sync is also run again on a second connection that resumes the first's TLS session
//! in 0-RTT (`idle_sync_resumed`), as a phone's next sync does; `YILIAN_QUIC_STATS=1` prints that
//! connection's QUIC statistics (datagrams, frames by type) to see where its bytes go.
//!
//! Run: `cargo bench -p yilian-bench --bench sync` (`-- --patients N` for another size). Under
//! `cargo test` it runs as a quick smoke run that writes nothing.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use yilian_core::net::{SessionOptions, WireStats, client_config, connect, sync_over};
use yilian_core::sync::{PerfectLink, sync_in_process};
use yilian_core::{Durability, ScopeGrant, Store, StoreOptions};
use yilian_relay::{Relay, RelayConfig};
use yilian_tests::{follow_up_visit, peak_rss_mb, village_records};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(db) = arg("--device") {
        return runtime.block_on(device(&db));
    }
    runtime.block_on(bench())
}

/// The device side: one session, then a JSON line with what it cost.
async fn device(db: &str) -> Result<()> {
    let addr = arg("--relay").context("--relay")?.parse()?;
    let pin = arg("--pin").context("--pin")?.parse()?;
    let store = Store::open(db, StoreOptions::default())?;
    let endpoint = quinn::Endpoint::client(([127, 0, 0, 1], 0).into())?;
    // One client configuration for every connection: its session cache lets the next resume.
    let config = client_config(pin, &store.device_key())?;
    let started = Instant::now();
    let (conn, _) = connect(&endpoint, &config, addr).await?;
    let report =
        sync_over(&conn, &store, "device", "relay", &SessionOptions::default(), &CancellationToken::new(), &mut |_| {})
            .await?;
    let seconds = started.elapsed().as_secs_f64();
    let wire = WireStats::of(&conn);
    conn.close(quinn::VarInt::from_u32(0), b"done");
    if !report.outcome.synced {
        bail!("the device did not sync: {report:?}");
    }
    // `--again`: a second sync on a new connection that resumes the first's TLS session (0-RTT),
    // as a phone's next sync does: what a reconnect costs on the wire.
    if std::env::args().any(|a| a == "--again") {
        let (again, zero_rtt) = connect(&endpoint, &config, addr).await?;
        let report = sync_over(
            &again,
            &store,
            "device",
            "relay",
            &SessionOptions::default(),
            &CancellationToken::new(),
            &mut |_| {},
        )
        .await?;
        // Closed, and the close sent, before the count.
        again.close(quinn::VarInt::from_u32(0), b"done");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let resumed = WireStats::of(&again);
        if std::env::var_os("YILIAN_QUIC_STATS").is_some() {
            println!("STATS {:#?}", again.stats());
        }
        let line = json!({
            "synced": report.outcome.synced,
            "zero_rtt": zero_rtt,
            "protocol_bytes_up": report.bytes_up,
            "protocol_bytes_down": report.bytes_down,
            "udp_bytes_up": resumed.tx_bytes,
            "udp_bytes_down": resumed.rx_bytes,
            "udp_datagrams": resumed.tx_datagrams + resumed.rx_datagrams,
        });
        println!("RESUMED {line}");
    }
    endpoint.wait_idle().await;
    let line = json!({
        "seconds": seconds,
        "rounds": report.rounds,
        "received": report.outcome.received,
        "protocol_bytes_up": report.bytes_up,
        "protocol_bytes_down": report.bytes_down,
        "udp_bytes_up": wire.tx_bytes,
        "udp_bytes_down": wire.rx_bytes,
        "udp_datagrams": wire.tx_datagrams + wire.rx_datagrams,
        "peak_rss_mb": peak_rss_mb(),
    });
    println!("RESULT {line}");
    Ok(())
}

fn run_device(db: &Path, relay: &Relay) -> Result<Value> {
    Ok(run_device_with(db, relay, &[])?.0)
}

/// The device process with `extra` arguments: its result, and its resumed sync's (`--again`).
fn run_device_with(db: &Path, relay: &Relay, extra: &[&str]) -> Result<(Value, Option<Value>)> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--device", &db.display().to_string()])
        .args(["--relay", &relay.addr.to_string(), "--pin", &relay.fingerprint.to_string()])
        .args(extra)
        .output()?;
    if std::env::var_os("YILIAN_QUIC_STATS").is_some() {
        println!("{}", String::from_utf8_lossy(&out.stdout));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
        bail!("device process failed: {}{}", stdout, String::from_utf8_lossy(&out.stderr));
    };
    let resumed = stdout.lines().find_map(|l| l.strip_prefix("RESUMED ")).map(serde_json::from_str).transpose()?;
    Ok((serde_json::from_str(line)?, resumed))
}

async fn bench() -> Result<()> {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let patients = arg("--patients").and_then(|n| n.parse().ok()).unwrap_or(if bench_mode { 2_000 } else { 30 });
    let dir = tempfile::tempdir()?;
    let open = |name: &str, durability| {
        Store::open(dir.path().join(name), StoreOptions { durability, ..StoreOptions::default() })
    };
    // The records are made elsewhere in the consortium and reach the relay first.
    let source = open("source.db", Durability::Off)?;
    let ids = village_records(&source, patients, 9)?;
    let storage = std::sync::Arc::new(open("relay.db", Durability::Normal)?);
    // The device's scope is the whole set, as a village doctor's team would be.
    storage.grant_scope("device", ScopeGrant::Everything)?;
    if !sync_in_process(&source, "source", &storage, "relay", &mut PerfectLink)?.child.synced {
        bail!("the relay did not receive the records");
    }
    let payload: usize = storage.changes_since(0, usize::MAX)?.iter().map(|c| c.bytes.len()).sum();
    println!(
        "{patients} documents, {} changes, {:.2} MB of automerge changes",
        storage.last_seq()?,
        payload as f64 / 1e6
    );
    let relay = Relay::start(
        RelayConfig { data_dir: dir.path().join("relay"), listen: ([127, 0, 0, 1], 0).into(), name: "relay".into() },
        storage.clone(),
    )
    .await?;
    let db = dir.path().join("device.db");
    // The device enrolled with the relay before its first sync (its key is made with its store).
    yilian_tests::lab::enroll_directly(&storage, "device", &Store::open(&db, StoreOptions::default())?.device_key())?;

    let first = run_device(&db, &relay)?;
    let total = |v: &Value, what: &str| {
        v[format!("{what}_up")].as_u64().unwrap_or(0) + v[format!("{what}_down")].as_u64().unwrap_or(0)
    };
    println!(
        "first sync:  {:.2} s, {} rounds, protocol {:.2} MB down / {} B up, UDP {:.2} MB in all, device peak RSS {:.0} MB   [target <= 5 s, <= 5.3 MB (automerge-repo: 19 s, 5.3 MB, 430 MB client); RSS <= 100 MB]",
        first["seconds"].as_f64().unwrap_or(f64::NAN),
        first["rounds"],
        first["protocol_bytes_down"].as_u64().unwrap_or(0) as f64 / 1e6,
        first["protocol_bytes_up"],
        total(&first, "udp_bytes") as f64 / 1e6,
        first["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
    );

    let (idle, resumed) = run_device_with(&db, &relay, &["--again"])?;
    let resumed = resumed.context("the device printed no resumed sync")?;
    println!(
        "idle sync:   {} round(s) after the handshake, protocol {} B, UDP {} B with a full handshake, {} B ({} datagrams) resuming the session   [target 1 round, <= 1 KB protocol, <= 2 KB resumed; automerge-repo: 2,001 messages each way, ~700 KiB, 17.8 s]",
        idle["rounds"],
        total(&idle, "protocol_bytes"),
        total(&idle, "udp_bytes"),
        total(&resumed, "udp_bytes"),
        resumed["udp_datagrams"],
    );

    // A day's work elsewhere: 50 visits across 50 patients reach the relay.
    let step = (ids.len() / 50).max(1);
    for (n, id) in ids.iter().step_by(step).take(50).enumerate() {
        source.record_visit(*id, follow_up_visit(1000 + n as u64))?;
    }
    sync_in_process(&source, "source", &storage, "relay", &mut PerfectLink)?;
    let device_store = Store::open(&db, StoreOptions::default())?;
    let before = device_store.last_seq()?;
    drop(device_store);
    let incremental = run_device(&db, &relay)?;
    let device_store = Store::open(&db, StoreOptions::default())?;
    let new = device_store.changes_since(before, usize::MAX)?;
    let alone: Vec<u8> =
        new.iter().flat_map(|c| [c.bytes.clone(), c.signature.clone().unwrap_or_default()].concat()).collect();
    let compressed = zstd::bulk::compress(&alone, 3)?.len();
    let protocol = total(&incremental, "protocol_bytes");
    println!(
        "incremental: {} changes, {} round(s), protocol {protocol} B = {:.2}x the new changes compressed alone ({compressed} B), UDP {} B   [target <= 2 rounds, <= 1.5x; automerge-repo: ~750 KiB, 15.5 s]",
        new.len(),
        incremental["rounds"],
        protocol as f64 / compressed as f64,
        total(&incremental, "udp_bytes"),
    );
    relay.shutdown().await;

    if !bench_mode {
        println!("smoke run: not writing target/bench/sync.json");
        return Ok(());
    }
    let report = json!({
        "documents": patients,
        "changes": storage.last_seq()?,
        "payload_bytes": payload,
        "transport": "QUIC on 127.0.0.1, device in its own process",
        "first_sync": first,
        "idle_sync": idle,
        "idle_sync_resumed": resumed,
        "incremental_sync": { "changes": new.len(), "compressed_alone_bytes": compressed, "ratio": protocol as f64 / compressed as f64, "session": incremental },
    });
    let out_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench");
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(format!("{out_dir}/sync.json"), serde_json::to_string_pretty(&report)?)?;
    println!("wrote {out_dir}/sync.json");
    Ok(())
}
