//! Fault injection: the production relay (`yilian-relay serve`, its own process) and phones (their
//! own processes, see [`worker`]) are killed with SIGKILL at random moments of a sync, the
//! relay's disk fills up, and phones' clocks run a day ahead or behind. After each fault and its
//! recovery, every change a phone committed must be at the relay and at a teammate's phone, no
//! record may differ between them, and no log may hold a change twice.

pub mod worker;

use crate::load::relay_process::RelayProcess;
use crate::workload::{self, Params};
use anyhow::{Context, Result, bail, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use yilian_core::net::Fingerprint;
use yilian_core::{DeviceKind, Store, StoreOptions};
use yilian_tests::lab::{Phone, no_duplicates};

/// The outcome of one scenario run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    /// Scenario name.
    pub scenario: String,
    /// Whether every check held.
    pub passed: bool,
    /// Processes killed with SIGKILL in it.
    pub kills: u32,
    /// What was checked, or what failed.
    pub detail: String,
}

/// How many of each fault.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Phone processes killed mid-sync.
    pub device_kills: u32,
    /// Relay processes killed mid-sync.
    pub relay_kills: u32,
    /// Run the disk-full scenario (needs a mount namespace).
    pub disk_full: bool,
    /// Run the clock-skew scenarios (needs libfaketime's `faketime`).
    pub clock_skew: bool,
    /// Seed of the kill moments.
    pub seed: u64,
}

/// The lab: a relay data directory with one doctor's team, and the phones enrolled in it.
pub struct Lab {
    dir: PathBuf,
    relay_binary: PathBuf,
    program: PathBuf,
    pin: Fingerprint,
    quic: SocketAddr,
    http: SocketAddr,
    relay: Option<RelayProcess>,
    /// The teammate whose phone must end up with everything.
    observer: Phone,
}

/// The phones of the scenarios (`phone-<name>`, store `worker-<name>.db`).
const WORKERS: [&str; 5] = ["kill", "relay", "disk", "ahead", "behind"];

const TEAM_DOCTOR: &str = "doctor-000";

impl Lab {
    /// Makes the relay's data in `dir` (the directory of a one-doctor consortium, with the
    /// scenarios' phones and an observer enrolled under the team's doctor) and starts the relay.
    pub async fn start(dir: &Path, relay_binary: &Path, program: &Path) -> Result<Lab> {
        let data = dir.join("relay-data");
        let pin = crate::load::relay_process::fingerprint(relay_binary, &data).await?;
        let storage = Store::open(data.join(yilian_relay::storage::DATABASE_FILE), StoreOptions::default())?;
        let params = Params { doctors: 1, residents_per_doctor: 0, ..Params::village_doctor() };
        workload::Consortium::new(&params).register(&storage)?;
        let enroll = |name: &str, store: &Store| -> Result<()> {
            let code = storage.issue_enrollment_code(
                TEAM_DOCTOR,
                None,
                DeviceKind::Phone,
                Duration::from_secs(600),
                "faults",
            )?;
            storage.enroll_device(&code.code, name, store.device_key().public_key(), yilian_core::time::now_ms())?;
            Ok(())
        };
        for worker in WORKERS {
            enroll(
                &format!("phone-{worker}"),
                &Store::open(dir.join(format!("worker-{worker}.db")), StoreOptions::default())?,
            )?;
        }
        let observer_store = Arc::new(Store::open(dir.join("observer.db"), StoreOptions::default())?);
        enroll("observer", &observer_store)?;
        drop(storage);
        let observer = Phone::new("observer", observer_store, pin)?;
        let port = |udp: bool| -> Result<u16> {
            Ok(if udp {
                std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port()
            } else {
                std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()
            })
        };
        let quic = SocketAddr::from(([127, 0, 0, 1], port(true)?));
        let http = SocketAddr::from(([127, 0, 0, 1], port(false)?));
        let mut lab = Lab {
            dir: dir.to_path_buf(),
            relay_binary: relay_binary.to_path_buf(),
            program: program.to_path_buf(),
            pin,
            quic,
            http,
            relay: None,
            observer,
        };
        lab.start_relay().await?;
        Ok(lab)
    }

    /// The relay's data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.join("relay-data")
    }

    async fn start_relay(&mut self) -> Result<()> {
        self.relay = Some(RelayProcess::start_at(&self.relay_binary, &self.data(), self.quic, self.http).await?);
        Ok(())
    }

    /// Kills the relay with SIGKILL.
    async fn kill_relay(&mut self) -> Result<()> {
        if let Some(relay) = self.relay.take() {
            relay.kill().await?;
        }
        Ok(())
    }

    /// Stops the relay cleanly.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(relay) = self.relay.take() {
            relay.stop().await?;
        }
        Ok(())
    }

    /// The store file of phone `worker`.
    fn worker_db(&self, worker: &str) -> PathBuf {
        self.dir.join(format!("worker-{worker}.db"))
    }

    /// Starts the process of phone `worker`: it registers `residents` residents with a contract
    /// and `visits` visits each, then syncs until synced. `wrap` runs it under another program
    /// (`faketime +1d`).
    fn spawn_worker(&self, worker: &str, residents: usize, visits: usize, wrap: &[&str]) -> Result<Child> {
        let (program, pre): (&Path, &[&str]) = match wrap.split_first() {
            Some((first, rest)) => (Path::new(first), rest),
            None => (self.program.as_path(), &[]),
        };
        let mut command = Command::new(program);
        command.args(pre);
        if !wrap.is_empty() {
            command.arg(&self.program);
        }
        command
            .args(["worker", "--db"])
            .arg(self.worker_db(worker))
            .args(["--relay", &self.quic.to_string(), "--pin", &self.pin.to_string()])
            .args(["--name", &format!("phone-{worker}")])
            .args(["--residents", &residents.to_string(), "--visits", &visits.to_string()])
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.spawn().with_context(|| format!("starting {} (for faketime: apt install faketime)", program.display()))
    }

    /// After recovery: the worker's store and the observer's hold the same records (so every
    /// change the worker committed went through the relay), and neither log has duplicates.
    async fn check(&self, worker: &str) -> Result<String> {
        let report = self.sync_observer().await?;
        let worker = Store::open(self.worker_db(worker), StoreOptions::default())?;
        // The observer also holds the other scenarios' residents: compare the worker's.
        for id in worker.patient_ids()? {
            let there = self
                .observer
                .store
                .export_json(id)
                .with_context(|| format!("record {id} never reached the teammate"))?;
            ensure!(worker.export_json(id)? == there, "record {id} differs between the phone and its teammate");
        }
        ensure!(no_duplicates(&worker)? && no_duplicates(&self.observer.store)?, "a log holds a change twice");
        Ok(format!(
            "{} records identical on phone and teammate ({} changes pulled)",
            worker.patient_ids()?.len(),
            report
        ))
    }

    async fn sync_observer(&self) -> Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.observer.sync(self.quic).await {
                Ok(report) => return Ok(report.outcome.received),
                Err(e) if Instant::now() > deadline => return Err(e.context("the observer could not sync")),
                // Back off and retry, bounded by the deadline above.
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// Waits for `child` to print `line` (or exit).
async fn wait_for_line(child: &mut Child, line: &str, within: Duration) -> Result<()> {
    let stdout = child.stdout.as_mut().context("worker stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    tokio::time::timeout(within, async {
        while let Some(l) = lines.next_line().await? {
            if l.trim() == line {
                return Ok(());
            }
        }
        bail!("the worker exited before printing {line}")
    })
    .await
    .with_context(|| format!("no {line} from the worker within {within:?}"))?
}

/// Runs a worker to completion; fails unless it printed DONE. Returns what it printed.
async fn finish(child: Child) -> Result<String> {
    let out =
        tokio::time::timeout(Duration::from_secs(120), child.wait_with_output()).await.context("worker hung")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.lines().any(|l| l.trim() == "DONE") {
        bail!("the worker did not finish ({}): {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(stdout.into_owned())
}

/// A phone killed mid-sync `kills` times; after each, the phone restarts and finishes.
async fn device_kills(lab: &Lab, kills: u32, rng: &mut StdRng, out: &mut Vec<Outcome>) {
    for k in 0..kills {
        let result = async {
            let mut child = lab.spawn_worker("kill", 2, 4, &[])?;
            wait_for_line(&mut child, "SYNCING", Duration::from_secs(60)).await?;
            // The fault's moment: a random point of the sync that has just started (not a wait).
            tokio::time::sleep(Duration::from_micros(rng.gen_range(0..60_000))).await;
            child.start_kill()?;
            let _ = child.wait().await;
            finish(lab.spawn_worker("kill", 0, 0, &[])?).await?;
            lab.check("kill").await
        }
        .await;
        out.push(outcome(format!("kill -9 phone mid-sync #{}", k + 1), 1, result));
    }
}

/// The relay killed mid-sync `kills` times; it restarts on the same data and the phone retries.
async fn relay_kills(lab: &mut Lab, kills: u32, rng: &mut StdRng, out: &mut Vec<Outcome>) {
    for k in 0..kills {
        let result = async {
            let mut child = lab.spawn_worker("relay", 2, 4, &[])?;
            wait_for_line(&mut child, "SYNCING", Duration::from_secs(60)).await?;
            // The fault's moment: a random point of the sync that has just started (not a wait).
            tokio::time::sleep(Duration::from_micros(rng.gen_range(0..60_000))).await;
            lab.kill_relay().await?;
            // The relay stays down for a random moment before it restarts (not a wait).
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..500))).await;
            lab.start_relay().await?;
            finish(child).await?;
            lab.check("relay").await
        }
        .await;
        out.push(outcome(format!("kill -9 relay mid-sync #{}", k + 1), 1, result));
    }
}

/// The relay's data directory runs out of space while a phone pushes; the relay must stay up and
/// refuse cleanly, and once space is freed the phone finishes and nothing is lost.
async fn disk_full(lab: &mut Lab, out: &mut Vec<Outcome>) {
    let result = async {
        let data = lab.data();
        lab.stop_relay_cleanly().await?;
        // Move the data onto a tmpfs just big enough for what is there now.
        let held = dir_bytes(&data)?;
        let stash = lab.dir.join("relay-data.stash");
        std::fs::rename(&data, &stash)?;
        std::fs::create_dir_all(&data)?;
        let size = held + 256 * 1024;
        mount_tmpfs(&data, size).await?;
        copy_dir(&stash, &data)?;
        lab.start_relay().await?;
        let child = lab.spawn_worker("disk", 150, 10, &["timeout", "25"])?;
        let out_full = child.wait_with_output().await?;
        let full_stdout = String::from_utf8_lossy(&out_full.stdout).into_owned();
        ensure!(!full_stdout.contains("DONE"), "the push fitted on the small disk; make it bigger");
        let alive = lab.relay.as_mut().is_some_and(|r| r.is_running());
        ensure!(alive, "the relay exited when its disk filled up");
        let refusal = full_stdout.lines().find(|l| l.contains("ERROR")).unwrap_or("").to_string();
        remount_tmpfs(&data, 256 * 1024 * 1024).await?;
        finish(lab.spawn_worker("disk", 0, 0, &[])?).await?;
        let checked = lab.check("disk").await?;
        lab.stop_relay_cleanly().await?;
        integrity(&data)?;
        // What the relay keeps on disk, read back after its restart: every record of the phone.
        {
            let relay = Store::open(data.join(yilian_relay::storage::DATABASE_FILE), StoreOptions::default())?;
            let phone = Store::open(lab.worker_db("disk"), StoreOptions::default())?;
            for id in phone.patient_ids()? {
                ensure!(
                    relay.export_json(id).ok() == Some(phone.export_json(id)?),
                    "record {id} differs on the relay's disk"
                );
            }
        }
        lab.start_relay().await?;
        Ok(format!("relay stayed up; the phone was told: {refusal}; after space was freed: {checked}; integrity ok"))
    }
    .await;
    out.push(outcome("disk full on the relay's data directory".into(), 0, result));
}

/// A phone whose clock is a day ahead (then behind) records and syncs; its records reach the
/// teammate intact.
async fn clock_skew(lab: &Lab, out: &mut Vec<Outcome>) {
    for (worker, skew, days) in [("ahead", "+1d", 1), ("behind", "-1d", -1)] {
        let result = async {
            let printed = finish(lab.spawn_worker(worker, 3, 3, &["faketime", "-f", skew])?).await?;
            let clock: i64 = printed.lines().find_map(|l| l.strip_prefix("CLOCK ")?.trim().parse().ok()).unwrap_or(0);
            let off = clock - yilian_core::time::now_ms();
            ensure!((off - days * 86_400_000).abs() < 3_600_000, "the phone's clock was off by {off} ms, not {skew}");
            Ok(format!("phone clock off by {:.2} days; {}", off as f64 / 86_400_000.0, lab.check(worker).await?))
        }
        .await;
        out.push(outcome(format!("phone clock {skew}"), 0, result));
    }
}

fn outcome(scenario: String, kills: u32, result: Result<String>) -> Outcome {
    match result {
        Ok(detail) => Outcome { scenario, passed: true, kills, detail },
        Err(e) => Outcome { scenario, passed: false, kills, detail: format!("{e:#}") },
    }
}

/// Runs every scenario of `plan` in `dir`.
pub async fn run(plan: &Plan, dir: &Path, relay_binary: &Path, program: &Path) -> Result<Vec<Outcome>> {
    let mut lab = Lab::start(dir, relay_binary, program).await?;
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut out = Vec::new();
    device_kills(&lab, plan.device_kills, &mut rng, &mut out).await;
    relay_kills(&mut lab, plan.relay_kills, &mut rng, &mut out).await;
    if plan.clock_skew {
        clock_skew(&lab, &mut out).await;
    }
    if plan.disk_full {
        disk_full(&mut lab, &mut out).await;
    }
    lab.stop().await?;
    Ok(out)
}

impl Lab {
    async fn stop_relay_cleanly(&mut self) -> Result<()> {
        if let Some(relay) = self.relay.take() {
            relay.stop().await?;
        }
        Ok(())
    }
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        total += meta.len();
    }
    Ok(total)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}

async fn mount_tmpfs(dir: &Path, bytes: u64) -> Result<()> {
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "yilian-full"])
        .arg(dir)
        .status()
        .await?;
    ensure!(status.success(), "mounting a tmpfs on {} failed", dir.display());
    Ok(())
}

async fn remount_tmpfs(dir: &Path, bytes: u64) -> Result<()> {
    let status = Command::new("mount").args(["-o", &format!("remount,size={bytes}")]).arg(dir).status().await?;
    ensure!(status.success(), "growing the tmpfs on {} failed", dir.display());
    Ok(())
}

/// SQLite's own check of the relay's database.
fn integrity(data: &Path) -> Result<()> {
    let conn = rusqlite::Connection::open(data.join(yilian_relay::storage::DATABASE_FILE))?;
    let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    ensure!(verdict == "ok", "integrity_check: {verdict}");
    Ok(())
}
