//! Yilian's lane: a relay listening on the link's near end, and a device — its own process, as
//! on a phone — that dials the far end and syncs until it is synced, reconnecting when the link
//! drops the connection.

use super::dataset::Dataset;
use super::{Figures, Scenario};
use crate::link::Link;
use anyhow::{Context, Result, ensure};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use yilian_core::net::{Fingerprint, SessionOptions, client_config};
use yilian_core::sync::{PerfectLink, sync_in_process};
use yilian_core::{DeviceKind, PractitionerRole, ScopeGrant, Store, StoreOptions};
use yilian_relay::{Relay, RelayConfig};
use yilian_tests::lab::session;

/// The device's name at the relay.
const DEVICE: &str = "proof-phone";
/// Its practitioner.
const PROOF_PRACTITIONER: &str = "proof-nurse";
/// Pause between two connection attempts of the device (the agent's first backoff step).
const RETRY: Duration = Duration::from_secs(1);

/// What the device process is asked to do.
#[derive(Clone, Debug)]
pub struct DeviceArgs {
    /// Its store.
    pub db: PathBuf,
    /// The relay's address as the device dials it.
    pub relay: SocketAddr,
    /// The relay's certificate fingerprint.
    pub pin: Fingerprint,
    /// Give up after this long.
    pub cap: Duration,
}

impl DeviceArgs {
    /// The command-line form the proof binary parses back.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "device".into(),
            "--db".into(),
            self.db.display().to_string(),
            "--relay".into(),
            self.relay.to_string(),
            "--pin".into(),
            self.pin.to_string(),
            "--cap".into(),
            self.cap.as_secs_f64().to_string(),
        ]
    }
}

/// The device side (runs in its own process): sessions until one ends synced or the cap passes;
/// prints one `RESULT {json}` line.
pub async fn device(args: DeviceArgs) -> Result<()> {
    let store = Store::open(&args.db, StoreOptions::default())?;
    let endpoint = quinn::Endpoint::client(([0, 0, 0, 0], 0).into())?;
    let config = client_config(args.pin, &store.device_key())?;
    let started = Instant::now();
    let (mut attempts, mut rounds, mut up, mut down, mut received) = (0u64, 0u64, 0u64, 0u64, 0usize);
    let mut errors: Vec<String> = Vec::new();
    let mut synced = false;
    while !synced && started.elapsed() < args.cap {
        attempts += 1;
        let (options, stop) = (SessionOptions::default(), CancellationToken::new());
        let session = session(&endpoint, &config, args.relay, &store, DEVICE, &options, &stop);
        match tokio::time::timeout(args.cap.saturating_sub(started.elapsed()), session).await {
            Ok(Ok(report)) => {
                rounds += u64::from(report.rounds);
                up += report.bytes_up;
                down += report.bytes_down;
                received += report.outcome.received;
                synced = report.outcome.synced;
                if let Some(error) = report.outcome.error {
                    errors.push(error);
                }
            }
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(_) => errors.push("cap reached".into()),
        }
        if !synced && started.elapsed() + RETRY < args.cap {
            tokio::time::sleep(RETRY).await;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    endpoint.wait_idle().await;
    let line = json!({
        "synced": synced,
        "seconds": seconds,
        "attempts": attempts,
        "rounds": rounds,
        "received": received,
        "protocol_bytes_up": up,
        "protocol_bytes_down": down,
        "errors": errors,
        "peak_rss_mb": yilian_tests::peak_rss_mb(),
    });
    println!("RESULT {line}");
    Ok(())
}

/// A Yilian lane on `link`.
pub struct Lane {
    storage: Arc<Store>,
    relay: Relay,
    device_db: PathBuf,
    program: PathBuf,
}

impl Lane {
    /// Starts a relay over a copy of the dataset's relay storage, listening on the link's near
    /// end, and enrolls a fresh device whose scope is the doctor's whole panel. `program` is the
    /// proof binary (run again as the device).
    pub async fn start(dir: &Path, dataset: &Dataset, link: &Link, program: &Path) -> Result<Lane> {
        std::fs::create_dir_all(dir)?;
        let db = dir.join("relay.db");
        std::fs::copy(&dataset.relay_template, &db).context("copying the relay template")?;
        let storage = Arc::new(Store::open(&db, StoreOptions::default())?);
        // The phone belongs to a practitioner of the clinic who is on no team, and is granted every
        // record: exactly the documents automerge-repo's client holds. (A team member's phone
        // would also get each contracted record as a snapshot on top of the log: measured twice
        // the bytes, 169.8 KiB against 85.6 KiB for 60 residents.)
        yilian_testing::Consortium::new()
            .practitioner(PROOF_PRACTITIONER, "王护士", PractitionerRole::Nurse, "clinic-000")
            .enter(&storage)?;
        let device_db = dir.join("device.db");
        let key = Store::open(&device_db, StoreOptions::default())?.device_key();
        let code = storage.issue_enrollment_code(
            PROOF_PRACTITIONER,
            None,
            DeviceKind::Phone,
            Duration::from_secs(600),
            "proof",
        )?;
        storage.enroll_device(&code.code, DEVICE, key.public_key(), yilian_core::time::now_ms())?;
        storage.grant_scope(DEVICE, ScopeGrant::Everything)?;
        let config = RelayConfig {
            data_dir: dir.join("relay"),
            listen: SocketAddr::new(link.near().into(), 0),
            name: "relay".into(),
        };
        let relay = Relay::start(config, storage.clone()).await?;
        Ok(Lane { storage, relay, device_db, program: program.to_path_buf() })
    }

    /// Runs `scenario` (the step's changes already at the relay) and measures it.
    pub async fn run(
        &self,
        link: &Link,
        scenario: Scenario,
        cut: Option<(u64, Duration)>,
        cap: Duration,
    ) -> Result<Figures> {
        let args = DeviceArgs {
            db: self.device_db.clone(),
            relay: SocketAddr::new(link.far().into(), self.relay.addr.port()),
            pin: self.relay.fingerprint,
            cap,
        };
        let mut command = tokio::process::Command::new(&self.program);
        command.args(args.to_args());
        let measured = super::measure(command, link, cut, cap).await?;
        let detail = measured.result.with_context(|| format!("the Yilian device of {scenario:?}"))?;
        if cut.is_some() {
            ensure!(measured.cut_fired, "the {scenario:?} transfer ended before the link was cut");
        }
        Ok(Figures {
            complete: detail["synced"].as_bool() == Some(true),
            seconds: detail["seconds"].as_f64().unwrap_or(f64::NAN),
            rounds: detail["rounds"].as_u64().unwrap_or(0),
            reconnects: detail["attempts"].as_u64().unwrap_or(1).saturating_sub(1),
            ..Figures::carried(measured.carried, measured.recovery, cap, detail)
        })
    }

    /// The relay's storage (steps are delivered to it).
    pub fn storage(&self) -> &Store {
        &self.storage
    }

    /// Brings the device level with the relay without the link (after a scenario that did not
    /// finish, so the next one starts from the state it assumes).
    pub fn catch_up(&self) -> Result<()> {
        let device = Store::open(&self.device_db, StoreOptions::default())?;
        let report = sync_in_process(&device, DEVICE, &self.storage, "relay", &mut PerfectLink)?;
        ensure!(report.child.synced, "catching the device up failed: {report:?}");
        Ok(())
    }

    /// Whether the device holds exactly the relay's records.
    pub fn converged(&self) -> Result<bool> {
        let device = Store::open(&self.device_db, StoreOptions::default())?;
        Ok(yilian_tests::lab::same_records(&device, &self.storage).is_ok())
    }

    /// Stops the relay.
    pub async fn stop(self) {
        self.relay.shutdown().await;
    }
}
