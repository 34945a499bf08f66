//! The relay under load: the production `yilian-relay serve` (embedded SQLite, fsync on every
//! commit) in its own process, and N simulated phones over QUIC on loopback. Each phone recorded
//! part of its team's day offline; all connect at once, push it and pull what the relay has for
//! them, keep their connections open until every phone has pushed, then pull the rest of their
//! team's day on the same connection and hold it until all are done.
//!
//! Measured: changes per second the relay ingested (the push phase, and the best second of its
//! `ingested_changes` counter), session times (p50, p99), connections held at once (the relay's
//! `connected_devices` gauge), the relay process's peak RSS and CPU.

pub mod relay_process;

use crate::workload::{self, Params, clinical};
use anyhow::{Result, bail, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;
use tokio_util::sync::CancellationToken;
use yilian_core::net::{
    Fingerprint, SessionOptions, SessionReport, client_config, client_endpoint, connect_within, sync_over,
};
use yilian_core::sync::{PerfectLink, sync_in_process};
use yilian_core::{DeviceKind, PatientId, Store, StoreOptions};

/// How big a load.
#[derive(Clone, Debug, Serialize)]
pub struct LoadParams {
    /// Phones.
    pub devices: usize,
    /// Family doctors (phones are shared out among their teams).
    pub doctors: usize,
    /// Residents on each doctor's panel.
    pub residents_per_doctor: usize,
    /// Visits each phone records offline before the load.
    pub visits_per_device: usize,
    /// Phones per QUIC endpoint (UDP socket) on the load side.
    pub devices_per_endpoint: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for LoadParams {
    fn default() -> Self {
        LoadParams {
            devices: 1_000,
            doctors: 100,
            residents_per_doctor: 20,
            visits_per_device: 25,
            devices_per_endpoint: 50,
            seed: 2026,
        }
    }
}

/// What the load measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// The parameters.
    pub params: Option<LoadParams>,
    /// Changes the phones pushed.
    pub pushed: u64,
    /// Seconds until the relay had stored every pushed change, by its `ingested_changes`
    /// counter (sampled every 0.1 s from just before the phones start, so up to 0.1 s late).
    pub ingest_seconds: f64,
    /// `pushed / ingest_seconds`: the relay's ingest rate.
    pub ingested_per_second: f64,
    /// Seconds from the first connection attempt to the end of the last push session (a phone's
    /// push, then the teammates' changes that reached the relay meanwhile): the push phase.
    pub push_seconds: f64,
    /// `pushed / push_seconds`.
    pub changes_per_second: f64,
    /// The relay's CPU time over the push phase per change pushed, microseconds (storing the
    /// pushes and serving the teammates' pulls).
    pub relay_cpu_us_per_change: f64,
    /// The best one-second window of the relay's `ingested_changes` counter.
    pub peak_changes_per_second: f64,
    /// Seconds from the start until the relay first reported every phone connected (its
    /// `connected_devices` gauge at `devices`): the handshakes.
    pub all_connected_at: f64,
    /// Changes ingested from then until all were stored, per second: the ingest rate with every
    /// connection held, the handshakes' CPU left out (they share the 2 cores with the first pushes).
    pub held_ingested_per_second: f64,
    /// Each whole second of the push phase: changes ingested, connections open at its end, the
    /// relay's and the load side's CPU (cores), and the share of it the relay's store was held:
    /// where the time went (connecting, the steady state, the last pushes).
    pub push_timeline: Vec<(u64, u64, f64, f64, f64)>,
    /// Most connections the relay reported open at once (`connected_devices`).
    pub max_connected: u64,
    /// Push-and-pull session times, seconds: p50, p99, max.
    pub push_session: Percentiles,
    /// Pull session times (the rest of the team's day), seconds.
    pub pull_session: Percentiles,
    /// Changes pulled in all.
    pub pulled: u64,
    /// Sessions that failed (after retries), with why.
    pub failures: Vec<String>,
    /// Attempts that failed before a retry synced (connection refused or lost, session ended
    /// unsynced), by reason (the phone's name left out), with how many.
    pub failed_attempts: std::collections::BTreeMap<String, usize>,
    /// Changes the relay refused in sessions that otherwise synced (`phone: reason`): the load's
    /// phones write only their own team's records, so any refusal is a defect.
    pub refused: Vec<String>,
    /// Phones whose records differ from their teammates' at the end.
    pub diverged: usize,
    /// How the first few diverged phones differ (see [`divergence`]).
    pub divergences: Vec<String>,
    /// The relay's peak resident memory, MB.
    pub relay_peak_rss_mb: f64,
    /// Relay CPU over the load phase, in cores (1.0 = one core busy).
    pub relay_cpu_cores: f64,
    /// Relay CPU over the push phase (first connection to last push acknowledged), in cores.
    pub relay_cpu_cores_push: f64,
    /// The load side's CPU (the simulated phones: QUIC, their stores, applying what they pull)
    /// over the push phase, in cores. With the relay's, what the machine's cores did.
    pub load_cpu_cores_push: f64,
    /// The load side's CPU over the whole load phase, in cores.
    pub load_cpu_cores: f64,
    /// Share of the push phase the relay's store connection was held (1.0 = always).
    pub store_busy_push: f64,
    /// Callers waiting for the store's connection during the push phase, on average.
    pub store_waiting_push: f64,
    /// Pushes stored per transaction on the relay, on average (they share its fsync).
    pub pushes_per_group: f64,
    /// Seconds the relay's store spent storing pushes over the load: applying the changes to
    /// their records (automerge, in parallel), checking and writing them (one core), and
    /// committing (fsync included). Where the store's time goes when it limits ingest.
    pub ingest_applying_seconds: f64,
    /// See `ingest_applying_seconds`.
    pub ingest_writing_seconds: f64,
    /// See `ingest_applying_seconds`.
    pub ingest_committing_seconds: f64,
    /// The load side's peak resident memory, MB.
    pub load_peak_rss_mb: f64,
    /// Seconds of the whole load phase.
    pub seconds: f64,
    /// UDP datagrams the kernel dropped during the load because a socket's receive buffer was
    /// full (`RcvbufErrors` in /proc/net/snmp; machine-wide): each costs QUIC a loss recovery.
    pub udp_receive_drops: u64,
}

/// p50, p99 and max of some durations.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Longest.
    pub max: f64,
}

impl Percentiles {
    /// From samples in seconds.
    pub fn of(mut samples: Vec<f64>) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        Percentiles { p50: at(0.5), p99: at(0.99), max: samples[samples.len() - 1] }
    }
}

/// One simulated phone.
struct Phone {
    name: String,
    doctor: usize,
    store: Store,
    config: quinn::ClientConfig,
}

/// Builds the relay's data directory (directory, panels, enrolled phones) and the phones, each
/// with its doctor's panel and its part of the day recorded offline.
fn prepare(dir: &Path, params: &LoadParams, pin: Fingerprint) -> Result<Vec<Phone>> {
    let relay = Store::open(dir.join(yilian_relay::storage::DATABASE_FILE), StoreOptions::default())?;
    let county = Params {
        seed: params.seed,
        doctors: params.doctors,
        residents_per_doctor: params.residents_per_doctor,
        visits_per_resident: 2,
        ..Params::village_doctor()
    };
    let population = workload::populate(&relay, &county)?;
    let mut rng = StdRng::seed_from_u64(params.seed);
    let mut phones = Vec::with_capacity(params.devices);
    for i in 0..params.devices {
        let doctor = i % params.doctors;
        let clinic = &population.consortium.clinics[doctor];
        let store = Store::open_in_memory(StoreOptions::default())?;
        let name = format!("phone-{i:04}");
        let code = relay.issue_enrollment_code(
            &clinic.doctor.id,
            None,
            DeviceKind::Phone,
            Duration::from_secs(3600),
            "load",
        )?;
        relay.enroll_device(&code.code, &name, store.device_key().public_key(), yilian_core::time::now_ms())?;
        let seeded = sync_in_process(&store, &name, &relay, "relay", &mut PerfectLink)?;
        ensure!(seeded.child.synced, "seeding {name} failed: {seeded:?}");
        // The panel: residents contracted to the doctor's team (the phone's scope).
        let visible: std::collections::HashSet<PatientId> = store.patient_ids()?.into_iter().collect();
        let panel: Vec<(PatientId, &clinical::Profile)> = population
            .residents
            .iter()
            .filter(|r| r.clinic == doctor && visible.contains(&r.id))
            .map(|r| (r.id, &r.profile))
            .collect();
        ensure!(!panel.is_empty() && panel.len() == visible.len(), "{name} does not see its doctor's panel");
        let day = county.as_of + chrono::Duration::days(1);
        for _ in 0..params.visits_per_device {
            let (id, profile) = panel[rng.gen_range(0..panel.len())];
            let at = day.and_hms_opt(rng.gen_range(8..17), rng.gen_range(0..60), 0).unwrap_or_default().and_utc();
            let visit =
                clinical::visit(&mut rng, profile, at.timestamp_millis(), &clinic.organization.id, &clinic.doctor.id);
            store.record_visit(id, visit)?;
        }
        let config = client_config(pin, &store.device_key())?;
        phones.push(Phone { name, doctor, store, config });
    }
    Ok(phones)
}

/// A session that ended synced, after how long, and why the attempts before it failed.
struct Synced {
    report: SessionReport,
    took: Duration,
    failed_attempts: Vec<String>,
}

/// Runs one session, retrying (a fresh connection after a pause) until it ends synced or `deadline`.
async fn session_until_synced(
    endpoint: &quinn::Endpoint,
    phone: &Phone,
    relay: SocketAddr,
    conn: &mut Option<quinn::Connection>,
    deadline: Instant,
) -> Result<Synced> {
    let started = Instant::now();
    let mut failed_attempts = Vec::new();
    let mut last_error = String::new();
    while Instant::now() < deadline {
        if !last_error.is_empty() {
            failed_attempts.push(std::mem::take(&mut last_error).replace(&phone.name, "<phone>"));
        }
        if conn.as_ref().is_none_or(|c| c.close_reason().is_some()) {
            match connect_within(endpoint, &phone.config, relay, Duration::from_secs(30)).await {
                Ok((c, _)) => *conn = Some(c),
                Err(e) => {
                    last_error = format!("connecting: {e}");
                    // Back off before reconnecting, as a phone's agent does; bounded by `deadline`.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_ref() else { continue };
        let options = SessionOptions::default();
        match sync_over(c, &phone.store, &phone.name, "relay", &options, &CancellationToken::new(), &mut |_| {}).await {
            Ok(report) if report.outcome.synced => {
                return Ok(Synced { report, took: started.elapsed(), failed_attempts });
            }
            Ok(report) => last_error = format!("session ended unsynced: {:?}", report.outcome.error),
            Err(e) => last_error = e.to_string(),
        }
        *conn = None;
        // Back off before the next attempt; bounded by `deadline`.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("{}: not synced before the deadline: {last_error}", phone.name)
}

/// Runs the load against a relay started from `relay_binary`; `dir` is scratch space.
pub async fn run(params: LoadParams, relay_binary: &Path, dir: &Path) -> Result<LoadReport> {
    let data = dir.join("relay-data");
    let identity = relay_process::fingerprint(relay_binary, &data).await?;
    println!("preparing {} phones over {} doctors' panels...", params.devices, params.doctors);
    let prep_started = Instant::now();
    let phones = {
        let (data, params) = (data.clone(), params.clone());
        tokio::task::spawn_blocking(move || prepare(&data, &params, identity)).await??
    };
    let pushed: u64 = params.devices as u64 * params.visits_per_device as u64;
    println!("prepared in {:.1} s; starting the relay", prep_started.elapsed().as_secs_f64());
    let relay = relay_process::RelayProcess::start(relay_binary, &data).await?;
    let sampler = relay.sample_metrics(Duration::from_millis(100));
    let cpu_before = relay.cpu_seconds()?;
    let load_cpu_before = relay_process::cpu_seconds_of("self")?;
    let drops_before = udp_receive_buffer_drops();
    let endpoints: Vec<quinn::Endpoint> = (0..params.devices.div_ceil(params.devices_per_endpoint))
        .map(|_| client_endpoint(([127, 0, 0, 1], 0).into()))
        .collect::<yilian_core::Result<_>>()?;
    let pushed_all = Arc::new(Barrier::new(params.devices));
    let pulled_all = Arc::new(Barrier::new(params.devices));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    let mut tasks = tokio::task::JoinSet::new();
    let phones: Vec<Arc<Phone>> = phones.into_iter().map(Arc::new).collect();
    for (i, phone) in phones.iter().enumerate() {
        let (phone, endpoint, addr) = (phone.clone(), endpoints[i / params.devices_per_endpoint].clone(), relay.quic);
        let (pushed_all, pulled_all) = (pushed_all.clone(), pulled_all.clone());
        tasks.spawn(async move {
            let mut conn = None;
            let push = session_until_synced(&endpoint, &phone, addr, &mut conn, deadline).await;
            let pushed_at = started.elapsed();
            pushed_all.wait().await;
            let pull = session_until_synced(&endpoint, &phone, addr, &mut conn, deadline).await;
            // Every connection stays open until every phone has pulled.
            pulled_all.wait().await;
            if let Some(c) = conn {
                c.close(quinn::VarInt::from_u32(0), b"done");
            }
            (push, pushed_at, pull)
        });
    }
    let mut report = LoadReport { params: Some(params.clone()), pushed, ..LoadReport::default() };
    let (mut push_times, mut pull_times, mut last_push) = (Vec::new(), Vec::new(), Duration::ZERO);
    while let Some(done) = tasks.join_next().await {
        let (push, pushed_at, pull) = done?;
        for (what, synced) in [("push", &push), ("pull", &pull)] {
            let Ok(synced) = synced else { continue };
            for reason in &synced.failed_attempts {
                *report.failed_attempts.entry(format!("{what}: {reason}")).or_default() += 1;
            }
            let phone = &synced.report.outcome;
            report.refused.extend(phone.refused.iter().map(|r| format!("{what}: {r}")));
        }
        match push {
            Ok(synced) => {
                push_times.push(synced.took.as_secs_f64());
                last_push = last_push.max(pushed_at);
            }
            Err(e) => report.failures.push(format!("push: {e:#}")),
        }
        match pull {
            Ok(synced) => {
                pull_times.push(synced.took.as_secs_f64());
                report.pulled += synced.report.outcome.received as u64;
            }
            Err(e) => report.failures.push(format!("pull: {e:#}")),
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.udp_receive_drops = udp_receive_buffer_drops().saturating_sub(drops_before);
    for endpoint in &endpoints {
        endpoint.wait_idle().await;
    }
    report.relay_cpu_cores = (relay.cpu_seconds()? - cpu_before) / report.seconds;
    report.load_cpu_cores = (relay_process::cpu_seconds_of("self")? - load_cpu_before) / report.seconds;
    let samples = sampler.stop().await;
    report.max_connected = samples.iter().map(|s| s.connected).max().unwrap_or(0);
    report.peak_changes_per_second = peak_rate(&samples);
    report.push_timeline = per_second(&samples, last_push);
    report.relay_peak_rss_mb = relay.peak_rss_mb()?;
    relay.stop().await?;
    report.push_seconds = last_push.as_secs_f64();
    report.relay_cpu_cores_push = per_second_until(&samples, last_push, |s| s.relay_cpu);
    report.load_cpu_cores_push = per_second_until(&samples, last_push, |s| s.load_cpu);
    report.store_busy_push = per_second_until(&samples, last_push, |s| s.store_busy);
    report.store_waiting_push = per_second_until(&samples, last_push, |s| s.store_wait);
    // Sampling ran until every session had ended: the last sample counts every push.
    if let Some(last) = samples.last() {
        report.pushes_per_group = last.ingest_pushes / last.ingest_groups.max(1.0);
        [report.ingest_applying_seconds, report.ingest_writing_seconds, report.ingest_committing_seconds] =
            last.ingest_time;
    }
    report.changes_per_second = pushed as f64 / report.push_seconds.max(1e-9);
    if let Some(at) = all_ingested_at(&samples, pushed) {
        report.ingest_seconds = at.as_secs_f64();
        report.ingested_per_second = pushed as f64 / report.ingest_seconds.max(1e-9);
        if let Some(held) = samples.iter().find(|s| s.connected >= params.devices as u64) {
            report.all_connected_at = held.at.as_secs_f64();
            let seconds = (at.saturating_sub(held.at)).as_secs_f64();
            report.held_ingested_per_second = pushed.saturating_sub(held.ingested) as f64 / seconds.max(1e-9);
        }
    }
    report.relay_cpu_us_per_change = report.relay_cpu_cores_push * report.push_seconds * 1e6 / (pushed as f64).max(1.0);
    report.push_session = Percentiles::of(push_times);
    report.pull_session = Percentiles::of(pull_times);
    (report.diverged, report.divergences) = diverged(&phones, params.doctors)?;
    report.load_peak_rss_mb = yilian_tests::peak_rss_mb();
    Ok(report)
}

/// The kernel's count of UDP datagrams dropped at full receive buffers, machine-wide (0 when it
/// cannot be read).
fn udp_receive_buffer_drops() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    rcvbuf_errors(&snmp).unwrap_or(0)
}

/// `RcvbufErrors` of the `Udp:` lines of /proc/net/snmp (a header line, then a value line).
fn rcvbuf_errors(snmp: &str) -> Option<u64> {
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Phones whose records differ from the first phone of their team, and how the first few differ.
fn diverged(phones: &[Arc<Phone>], doctors: usize) -> Result<(usize, Vec<String>)> {
    let (mut count, mut how) = (0, Vec::new());
    for doctor in 0..doctors {
        let team: Vec<&Arc<Phone>> = phones.iter().filter(|p| p.doctor == doctor).collect();
        let Some(first) = team.first() else { continue };
        for other in &team[1..] {
            if yilian_tests::lab::same_records(&first.store, &other.store).is_err() {
                count += 1;
                if how.len() < 5 {
                    how.push(divergence(first, other)?);
                }
            }
        }
    }
    Ok((count, how))
}

/// A phone's log: each change's record and whether the phone authored it.
type LogByHash = std::collections::HashMap<[u8; 32], (PatientId, bool)>;

/// Which changes each of two teammates' phones lacks of the other's log, and how many of those
/// the other phone authored (pushed by it, never pulled here) rather than a third teammate.
fn divergence(a: &Phone, b: &Phone) -> Result<String> {
    let log = |store: &Store| -> Result<LogByHash> {
        Ok(store.changes_since(0, usize::MAX)?.into_iter().map(|c| (c.hash, (c.doc_id, c.local))).collect())
    };
    let (log_a, log_b) = (log(&a.store)?, log(&b.store)?);
    let lacks = |of: &LogByHash, other: &LogByHash| {
        let missing: Vec<&(PatientId, bool)> =
            other.iter().filter(|(h, _)| !of.contains_key(*h)).map(|(_, v)| v).collect();
        let records: std::collections::BTreeSet<String> = missing.iter().map(|(id, _)| id.to_string()).collect();
        let own = missing.iter().filter(|(_, local)| *local).count();
        format!("{} changes ({own} authored by the other phone) of records {records:?}", missing.len())
    };
    Ok(format!("{} lacks {}; {} lacks {}", a.name, lacks(&log_a, &log_b), b.name, lacks(&log_b, &log_a)))
}

/// The best rate over any one-second window of the counter samples.
fn peak_rate(samples: &[relay_process::Sample]) -> f64 {
    let mut best = 0.0f64;
    for (i, a) in samples.iter().enumerate() {
        if let Some(b) = samples[i..].iter().find(|b| b.at.saturating_sub(a.at) >= Duration::from_secs(1)) {
            let rate = b.ingested.saturating_sub(a.ingested) as f64 / b.at.saturating_sub(a.at).as_secs_f64();
            best = best.max(rate);
        }
    }
    best
}

/// Each whole second up to `end` (and a last part second): changes ingested, connections open
/// at its end, relay and load-side CPU in cores, share of it the relay's store was held.
fn per_second(samples: &[relay_process::Sample], end: Duration) -> Vec<(u64, u64, f64, f64, f64)> {
    let mut out = Vec::new();
    let Some(mut last) = samples.first() else { return out };
    for second in 1..=end.as_secs() + 1 {
        let Some(s) = samples.iter().rev().find(|s| s.at <= Duration::from_secs(second)) else { continue };
        let seconds = s.at.saturating_sub(last.at).as_secs_f64().max(1e-9);
        out.push((
            s.ingested.saturating_sub(last.ingested),
            s.connected,
            (s.relay_cpu - last.relay_cpu) / seconds,
            (s.load_cpu - last.load_cpu) / seconds,
            (s.store_busy - last.store_busy) / seconds,
        ));
        last = s;
    }
    out
}

/// How fast a total of seconds (CPU time, time the store was held...) grew per second of wall
/// time, from the first sample to the first sample at or after `end`: cores for CPU time.
fn per_second_until(
    samples: &[relay_process::Sample],
    end: Duration,
    total: impl Fn(&relay_process::Sample) -> f64,
) -> f64 {
    let (Some(first), Some(last)) = (samples.first(), samples.iter().find(|s| s.at >= end).or(samples.last())) else {
        return f64::NAN;
    };
    let seconds = last.at.saturating_sub(first.at).as_secs_f64();
    if seconds > 0.0 { (total(last) - total(first)) / seconds } else { f64::NAN }
}

/// When the relay's count of ingested changes reached `pushed` (the first sample at or past it),
/// since sampling started; `None` if it never did.
fn all_ingested_at(samples: &[relay_process::Sample], pushed: u64) -> Option<Duration> {
    samples.iter().find(|s| s.ingested >= pushed).map(|s| s.at)
}

/// The report as the lines the benchmark prints.
pub fn summary(r: &LoadReport) -> String {
    let devices = r.params.as_ref().map_or(0, |p| p.devices);
    let ingesting = r.ingest_applying_seconds + r.ingest_writing_seconds + r.ingest_committing_seconds;
    let share = |seconds: f64| seconds * 100.0 / ingesting.max(1e-9);
    format!(
        "relay load: {devices} phones over QUIC on loopback, relay = yilian-relay serve (SQLite, fsync per commit)\n\
         ingested {} changes in {:.2} s by the relay's count = {:.0} changes/s (best second {:.0}/s)   [target >= 5,000/s]\n\
         with all {devices} connections open (the relay's count, from {:.2} s): {:.0} changes/s\n\
         every push session (a push, then the teammates' changes that reached the relay meanwhile) ended within {:.2} s = {:.0} changes/s; relay CPU {:.0} us per change\n\
         connections held at once: {}   [target 1,000]\n\
         push+pull session: p50 {:.2} s, p99 {:.2} s, max {:.2} s; pull session: p50 {:.2} s, p99 {:.2} s ({} changes pulled)\n\
         relay: peak RSS {:.0} MB, CPU {:.2} cores over {:.1} s; load side peak RSS {:.0} MB, CPU {:.2} cores\n\
         push phase CPU: relay {:.2} cores, load side {:.2} cores (the machine has {}); relay store held {:.0}% of the time, {:.1} callers waiting for it on average; {:.1} pushes stored per transaction\n\
         relay store storing pushes: {:.2} s = applying to records (automerge, in parallel) {:.0}%, checks and writes {:.0}%, commit and fsync {:.0}%\n\
         each second: changes ingested (connections open, relay + load-side CPU cores, relay store held): {}\n\
         UDP datagrams dropped at full socket buffers during the load: {}\n\
         failed sessions: {}; attempts failed before a retry synced: {}; changes refused: {}; phones diverged from their team: {}",
        r.pushed,
        r.ingest_seconds,
        r.ingested_per_second,
        r.peak_changes_per_second,
        r.all_connected_at,
        r.held_ingested_per_second,
        r.push_seconds,
        r.changes_per_second,
        r.relay_cpu_us_per_change,
        r.max_connected,
        r.push_session.p50,
        r.push_session.p99,
        r.push_session.max,
        r.pull_session.p50,
        r.pull_session.p99,
        r.pulled,
        r.relay_peak_rss_mb,
        r.relay_cpu_cores,
        r.seconds,
        r.load_peak_rss_mb,
        r.load_cpu_cores,
        r.relay_cpu_cores_push,
        r.load_cpu_cores_push,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        r.store_busy_push * 100.0,
        r.store_waiting_push,
        r.pushes_per_group,
        ingesting,
        share(r.ingest_applying_seconds),
        share(r.ingest_writing_seconds),
        share(r.ingest_committing_seconds),
        r.push_timeline
            .iter()
            .map(|(n, open, relay, load, busy)| format!("{n} ({open}, {relay:.1}+{load:.1}, {:.0}%)", busy * 100.0))
            .collect::<Vec<_>>()
            .join(", "),
        r.udp_receive_drops,
        r.failures.len(),
        r.failed_attempts.values().sum::<usize>(),
        r.refused.len(),
        r.diverged,
    ) + &r.failed_attempts.iter().map(|(why, n)| format!("\n  {n} attempt(s) failed: {why}")).collect::<String>()
        + &r.refused.iter().take(5).map(|why| format!("\n  refused: {why}")).collect::<String>()
        + &r.divergences.iter().map(|d| format!("\n  diverged: {d}")).collect::<String>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_ranked_sample() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p99, p.max), (51.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(vec![]).max, 0.0);
    }

    #[test]
    fn the_peak_rate_is_the_best_one_second_window() {
        let s = |ms, ingested| relay_process::Sample {
            at: Duration::from_millis(ms),
            ingested,
            connected: 0,
            relay_cpu: 0.0,
            load_cpu: 0.0,
            store_busy: 0.0,
            store_wait: 0.0,
            ingest_groups: 0.0,
            ingest_pushes: 0.0,
            ingest_time: [0.0; 3],
        };
        let samples = [s(0, 0), s(500, 100), s(1000, 1000), s(1500, 4000), s(2000, 4500)];
        assert_eq!(peak_rate(&samples), 3900.0);
        // Everything was stored by the first sample that counts it all.
        assert_eq!(all_ingested_at(&samples, 4000), Some(Duration::from_millis(1500)));
        assert_eq!(all_ingested_at(&samples, 4500), Some(Duration::from_millis(2000)));
        assert_eq!(all_ingested_at(&samples, 5000), None);
    }

    #[test]
    fn udp_drops_are_read_from_the_udp_lines_of_snmp() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    Udp: 1123248 16 551100 1674369 551099 0\n\
                    UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    UdpLite: 0 0 0 0 0 0\n";
        assert_eq!(rcvbuf_errors(snmp), Some(551_099));
        assert_eq!(rcvbuf_errors("Ip: a\nIp: 1\n"), None);
    }

    #[test]
    fn cpu_cores_are_cpu_seconds_per_second_up_to_the_end() {
        let s = |ms, cpu| relay_process::Sample {
            at: Duration::from_millis(ms),
            ingested: 0,
            connected: 0,
            relay_cpu: cpu,
            load_cpu: 0.0,
            store_busy: 0.0,
            store_wait: 0.0,
            ingest_groups: 0.0,
            ingest_pushes: 0.0,
            ingest_time: [0.0; 3],
        };
        let samples = [s(0, 10.0), s(1000, 10.5), s(2000, 12.0), s(3000, 12.0)];
        assert_eq!(per_second_until(&samples, Duration::from_millis(1500), |s| s.relay_cpu), 1.0);
        assert_eq!(per_second_until(&samples, Duration::from_secs(60), |s| s.relay_cpu), 2.0 / 3.0);
        assert!(per_second_until(&[], Duration::ZERO, |s| s.relay_cpu).is_nan());
    }
}
