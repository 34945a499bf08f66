//! Store benchmark: a device holding 5,000 residents with 10 visits each.
//!
//! Prints durable `record_visit` latency (p50/p99), the time and peak RSS to open the store and
//! read one record (measured in a fresh child process), and `due_follow_ups` over a doctor's
//! 2,000 residents; writes the numbers to `target/bench/store.json`.
//!
//! Run: `cargo bench -p yilian-core --bench store` (`-- --patients N` for another size).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use chrono::Days;
use std::time::{Duration, Instant};
use yilian_core::model::*;
use yilian_core::time::{now_ms, today};
use yilian_core::{Durability, PatientId, Store, StoreOptions};

const DAY_MS: i64 = 86_400_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(spec) = std::env::var("YILIAN_BENCH_OPEN") {
        return open_child(&spec);
    }
    let support::Run { bench_mode, patients } = support::Run::from_args(5_000, 40);
    let doctor_panel = patients.min(2_000);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("device.db");

    let started = Instant::now();
    let ids = build(&path, patients, doctor_panel)?;
    let build_secs = started.elapsed().as_secs_f64();
    let db_bytes = std::fs::metadata(&path)?.len();
    println!("built {patients} residents x 10 visits in {build_secs:.1} s ({:.1} MB)", db_bytes as f64 / 1e6);

    // Durable record_visit on residents picked across the store (most not in the cache).
    // Durable record_visit on residents picked across the store (most not in the cache), first
    // with an fsync per commit (the default), then with `Normal` (durable across a crash of the
    // app, not of the phone) to separate the engine's own time from the disk's.
    let samples = if bench_mode { 1_000 } else { 20 };
    let mut pick = 0x2545F4914F6CDD1Du64;
    let mut record_visit = serde_json::Map::new();
    for durability in [Durability::Full, Durability::Normal] {
        let store = Store::open(&path, StoreOptions { durability, ..StoreOptions::default() })?;
        let mut latencies = Vec::new();
        for _ in 0..samples {
            pick ^= pick << 13;
            pick ^= pick >> 7;
            pick ^= pick << 17;
            let id = ids[(pick % ids.len() as u64) as usize];
            let t = Instant::now();
            store.record_visit(id, common::visit_at(now_ms() - 60_000, 128, 82))?;
            latencies.push(t.elapsed());
        }
        latencies.sort();
        let pct = |p: f64| ms(latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)]);
        let (p50, p90, p99, max) = (pct(0.50), pct(0.90), pct(0.99), pct(1.0));
        println!(
            "record_visit ({durability:?}): p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms, max {max:.2} ms   [target p99 <= 5 ms]"
        );
        record_visit.insert(
            format!("{durability:?}").to_lowercase(),
            serde_json::json!({ "p50": p50, "p90": p90, "p99": p99, "max": max, "samples": samples }),
        );
    }
    let store = Store::open(&path, StoreOptions::default())?;

    // due_follow_ups over the doctor's panel.
    let mut due_times = Vec::new();
    let mut due_count = 0;
    for _ in 0..20 {
        let t = Instant::now();
        due_count = store.due_follow_ups("dr-wang", today())?.len();
        due_times.push(t.elapsed());
    }
    due_times.sort();
    let due_ms = ms(due_times[due_times.len() / 2]);
    println!(
        "due_follow_ups over {doctor_panel} residents: {due_ms:.2} ms median, {due_count} due   [target <= 100 ms]"
    );
    drop(store);

    // Open + first read, in a fresh process so peak RSS is only that.
    let out = std::process::Command::new(std::env::current_exe()?)
        .env("YILIAN_BENCH_OPEN", format!("{}|{}", path.display(), ids[ids.len() / 2]))
        .output()?;
    if !out.status.success() {
        return Err(format!("open child failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let child: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let open_ms = child["open_and_read_ms"].as_f64().unwrap_or(f64::NAN);
    let rss_mb = child["peak_rss_mb"].as_f64().unwrap_or(f64::NAN);
    println!("open + first read: {open_ms:.1} ms, peak RSS {rss_mb:.1} MB   [targets <= 200 ms, <= 80 MB]");

    let report = serde_json::json!({
        "patients": patients,
        "visits_per_patient": 10,
        "db_bytes": db_bytes,
        "build_seconds": build_secs,
        "record_visit_ms": record_visit,
        "open_and_first_read_ms": open_ms,
        "open_peak_rss_mb": rss_mb,
        "due_follow_ups_ms": due_ms,
        "due_follow_ups_panel": doctor_panel,
        "due_follow_ups_count": due_count,
        "targets": { "record_visit_p99_ms": 5, "open_and_first_read_ms": 200, "open_peak_rss_mb": 80, "due_follow_ups_ms": 100 },
    });
    if !bench_mode {
        println!("smoke run: not writing target/bench/store.json");
        return Ok(());
    }
    let out_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench");
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(format!("{out_dir}/store.json"), serde_json::to_string_pretty(&report)?)?;
    println!("wrote {out_dir}/store.json");
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn build(path: &std::path::Path, patients: usize, panel: usize) -> Result<Vec<PatientId>, Box<dyn std::error::Error>> {
    let store = Store::open(path, StoreOptions { durability: Durability::Off, ..StoreOptions::default() })?;
    let today = today();
    let mut ids = Vec::with_capacity(patients);
    for i in 0..patients {
        let doctor = if i < panel { "dr-wang".to_string() } else { format!("dr-{}", i / 2_000) };
        let id = store.create_patient(NewPatient {
            id: None,
            demographics: Demographics {
                name: format!("居民{i:05}"),
                sex: if i % 2 == 0 { Sex::Female } else { Sex::Male },
                birth_date: chrono::NaiveDate::from_ymd_opt(
                    1940 + (i % 40) as i32,
                    1 + (i % 12) as u32,
                    1 + (i % 28) as u32,
                )
                .ok_or("bad date")?,
                national_id: None,
                phone: None,
                address: None,
                village: Some(format!("村{}", i % 30)),
            },
            practitioner_id: doctor.clone(),
            organization_id: "village-clinic".into(),
        })?;
        store.add_condition(
            id,
            NewCondition {
                icd10: if i % 3 == 0 { "E11.9".into() } else { "I10".into() },
                diagnosed_on: today - Days::new(800),
                practitioner_id: doctor.clone(),
                note: String::new(),
            },
        )?;
        store.sign_contract(
            id,
            NewContract {
                team_id: "team-1".into(),
                practitioner_id: doctor.clone(),
                organization_id: "village-clinic".into(),
                start: today - Days::new(300),
                end: today + Days::new(65),
            },
        )?;
        for v in 0..10i64 {
            let at = now_ms() - (10 - v) * 30 * DAY_MS - (i as i64 % 30) * DAY_MS;
            store.record_visit(id, common::visit_at(at, 118 + ((i as i64 + v) % 40) as u16, 76 + (v % 16) as u16))?;
        }
        ids.push(id);
    }
    store.compact()?;
    Ok(ids)
}

/// Child mode: open the store, read one record, report time and peak RSS.
fn open_child(spec: &str) -> Result<(), Box<dyn std::error::Error>> {
    let (path, id) = spec.split_once('|').ok_or("bad spec")?;
    let id: PatientId = id.parse()?;
    let t = Instant::now();
    let store = Store::open(path, StoreOptions::default())?;
    let record = store.patient(id)?;
    let elapsed = ms(t.elapsed());
    assert!(record.visits.len() >= 10);
    let status = std::fs::read_to_string("/proc/self/status")?;
    let hwm_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    println!("{}", serde_json::json!({ "open_and_read_ms": elapsed, "peak_rss_mb": hwm_kb / 1024.0 }));
    Ok(())
}
