//! Sync benchmark (protocol level, in process): a device whose scope holds 2,000 patient
//! documents of 11 changes each.
//!
//! Prints first full sync (seconds, protocol bytes), idle sync (round trips, bytes), incremental
//! sync after 50 new visits across 50 patients (round trips, bytes, and bytes over the size of
//! the new changes compressed together and compressed one by one), and the process's peak RSS;
//! writes `target/bench/sync.json`. Wire bytes over QUIC come with the transport.
//!
//! Run: `cargo bench -p yilian-core --bench sync` (`-- --patients N` for another size).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::Instant;
use yilian_core::model::*;
use yilian_core::sync::{PerfectLink, SyncStats, sync_in_process};
use yilian_core::time::now_ms;
use yilian_core::{Durability, Store, StoreOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let support::Run { bench_mode, patients } = support::Run::from_args(2_000, 30);
    let dir = tempfile::tempdir()?;
    let open = |name: &str, durability| {
        Store::open(dir.path().join(name), StoreOptions { durability, ..StoreOptions::default() })
    };
    // The records are made at the hospital side and reach the relay first.
    let source = open("source.db", Durability::Off)?;
    let relay = open("relay.db", Durability::Normal)?;
    // The device's scope is the whole set (as a village doctor's team would be).
    relay.grant_scope("device", yilian_core::ScopeGrant::Everything)?;
    let mut ids = Vec::new();
    for i in 0..patients {
        let id = source.create_patient(NewPatient {
            id: None,
            demographics: Demographics {
                name: format!("居民{i:05}"),
                sex: Sex::Female,
                birth_date: chrono::NaiveDate::from_ymd_opt(1950, 1, 1).ok_or("date")?,
                national_id: None,
                phone: None,
                address: None,
                village: Some("石桥村".into()),
            },
            practitioner_id: "dr-wang".into(),
            organization_id: "village-clinic".into(),
        })?;
        for v in 0..9i64 {
            source
                .record_visit(id, common::visit_at(now_ms() - (10 - v) * 30 * 86_400_000, 120 + (i % 40) as u16, 82))?;
        }
        ids.push(id);
    }
    check(sync_in_process(&source, "source", &relay, "relay", &mut PerfectLink)?)?;
    let payload: usize = relay.changes_since(0, usize::MAX)?.iter().map(|c| c.bytes.len()).sum();
    println!(
        "{patients} documents, {} changes, {:.1} MB of automerge changes",
        relay.last_seq()?,
        payload as f64 / 1e6
    );

    // First full sync of a newly enrolled device (durable, as on a phone).
    let device = open("device.db", Durability::Full)?;
    let t = Instant::now();
    let first = check(sync_in_process(&device, "device", &relay, "relay", &mut PerfectLink)?)?;
    let first_secs = t.elapsed().as_secs_f64();
    println!(
        "first sync: {first_secs:.2} s, {} round trips, {:.2} MB down, {} B up, {} changes   [target <= 5 s; automerge-repo: 19 s, 5.3 MB]",
        first.round_trips,
        first.bytes_down as f64 / 1e6,
        first.bytes_up,
        first.child.received
    );

    let idle = check(sync_in_process(&device, "device", &relay, "relay", &mut PerfectLink)?)?;
    println!(
        "idle sync: {} round trip(s), {} B protocol   [target 1 round trip, <= 1 KB; automerge-repo: 2,001 messages each way, ~700 KiB]",
        idle.round_trips,
        idle.bytes_up + idle.bytes_down
    );

    // A day's work elsewhere: 50 visits across 50 patients reach the relay; then the device syncs.
    let step = (ids.len() / 50).max(1);
    for id in ids.iter().step_by(step).take(50) {
        source.record_visit(*id, common::visit_at(now_ms() - 3_600_000, 138, 82))?;
    }
    check(sync_in_process(&source, "source", &relay, "relay", &mut PerfectLink)?)?;
    let before = device.last_seq()?;
    let incremental = check(sync_in_process(&device, "device", &relay, "relay", &mut PerfectLink)?)?;
    let new = device.changes_since(before, usize::MAX)?;
    let joined: Vec<u8> =
        new.iter().flat_map(|c| [c.bytes.clone(), c.signature.clone().unwrap_or_default()].concat()).collect();
    let together = zstd::bulk::compress(&joined, 3)?.len();
    let one_by_one: usize = new
        .iter()
        .map(|c| zstd::bulk::compress(&c.bytes, 3).map(|z| z.len().min(c.bytes.len())).unwrap_or(c.bytes.len()))
        .sum();
    let bytes = incremental.bytes_up + incremental.bytes_down;
    println!(
        "incremental ({} changes): {} round trip(s), {bytes} B protocol = {:.2}x the new changes+signatures compressed together ({together} B), {:.2}x the changes compressed one by one ({one_by_one} B)   [target <= 2 round trips, <= 1.5x]",
        new.len(),
        incremental.round_trips,
        bytes as f64 / together as f64,
        bytes as f64 / one_by_one as f64
    );
    let rss_mb = peak_rss_mb();
    println!(
        "peak RSS of this process (source, relay and device together): {rss_mb:.1} MB   [device target <= 100 MB]"
    );

    if !bench_mode {
        println!("smoke run: not writing target/bench/sync.json");
        return Ok(());
    }
    let report = serde_json::json!({
        "documents": patients,
        "changes": relay.last_seq()?,
        "payload_bytes": payload,
        "first_sync": { "seconds": first_secs, "round_trips": first.round_trips, "bytes_down": first.bytes_down, "bytes_up": first.bytes_up },
        "idle_sync": { "round_trips": idle.round_trips, "bytes": idle.bytes_up + idle.bytes_down },
        "incremental_sync": {
            "changes": new.len(), "round_trips": incremental.round_trips, "bytes": bytes,
            "ratio_to_compressed_together": bytes as f64 / together as f64,
            "ratio_to_compressed_one_by_one": bytes as f64 / one_by_one as f64,
        },
        "peak_rss_mb_all_three_stores": rss_mb,
        "note": "protocol bytes in process; QUIC wire bytes come with the transport",
    });
    let out_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench");
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(format!("{out_dir}/sync.json"), serde_json::to_string_pretty(&report)?)?;
    println!("wrote {out_dir}/sync.json");
    Ok(())
}

fn check(stats: SyncStats) -> Result<SyncStats, Box<dyn std::error::Error>> {
    if let Some(e) = stats.child.error.clone().or(stats.parent.error.clone()) {
        return Err(e.into());
    }
    if !stats.child.synced {
        return Err(format!("session ended before it synced: {stats:?}").into());
    }
    Ok(stats)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
