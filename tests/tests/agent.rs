//! The on-device sync agent against a real relay: status from pending to synced (and synced
//! only once the relay holds everything), live propagation between two phones, retries with
//! backoff while the relay is down, and recovery when it comes back.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use anyhow::{Context, Result, ensure};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use yilian_core::agent::{AgentConfig, AgentState, SyncAgent, SyncStatus};
use yilian_core::model::TaskStatus;
use yilian_core::net::Fingerprint;
use yilian_core::{ScopeGrant, Store};
use yilian_relay::{Relay, RelayConfig};
use yilian_tests::lab::{STEP, enroll_directly, open_store, start_relay};
use yilian_tests::{follow_up_visit, resident};

fn config(addr: SocketAddr, pin: Fingerprint, device: &str) -> AgentConfig {
    let mut config = AgentConfig::new(addr.to_string(), pin, device);
    config.debounce = Duration::from_millis(20);
    config.retry_min = Duration::from_millis(50);
    config.retry_max = Duration::from_millis(500);
    config.connect_timeout = Duration::from_millis(500);
    config
}

/// Waits until `status` satisfies `done`; returns that status.
async fn until(agent: &SyncAgent, what: &str, done: impl Fn(&SyncStatus) -> bool) -> Result<SyncStatus> {
    let mut rx = agent.status();
    tokio::time::timeout(STEP, async {
        loop {
            rx.borrow_and_update();
            let status = agent.status_now();
            if done(&status) {
                return Ok(status);
            }
            rx.changed().await.context("agent stopped")?;
        }
    })
    .await
    .with_context(|| format!("waiting for {what}"))?
}

fn hashes(store: &Store, local_only: bool) -> HashSet<[u8; 32]> {
    let log = if local_only { store.local_changes_since(0, usize::MAX) } else { store.changes_since(0, usize::MAX) };
    log.unwrap().iter().map(|c| c.hash).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_goes_from_pending_to_synced_only_when_the_relay_holds_everything() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = open_store(dir.path().join("relay.db"))?;
    let relay = start_relay(dir.path(), storage.clone()).await?;
    let phone = open_store(dir.path().join("phone.db"))?;
    for i in 0..40 {
        let p = phone.create_patient(resident(&format!("居民{i}")))?;
        phone.record_visit(p, follow_up_visit(i))?;
    }
    enroll_directly(&storage, "phone", &phone.device_key())?;
    let agent = SyncAgent::start(phone.clone(), config(relay.addr, relay.fingerprint, "phone"))?;
    let mut rx = agent.status();
    let mut seen_pending = false;
    let synced = tokio::time::timeout(STEP, async {
        loop {
            let status = rx.borrow_and_update().clone();
            seen_pending |= status.unacknowledged > 0 && !status.synced;
            if status.synced {
                // Reported synced: the relay must already hold every change of the phone.
                ensure!(hashes(&phone, true).is_subset(&hashes(&storage, false)), "synced before the relay held all");
                return Ok(status);
            }
            ensure!(status.unacknowledged > 0 || status.progress.is_some() || status.state != AgentState::Live);
            rx.changed().await?;
        }
    })
    .await??;
    ensure!(seen_pending, "the status never showed pending changes");
    ensure!(synced.unacknowledged == 0 && synced.last_synced_at.is_some() && synced.connected, "{synced:?}");
    let progress = synced.progress.unwrap();
    ensure!(progress.items_total >= 80 && progress.items_done >= progress.items_total, "{progress:?}");

    // A new edit makes it pending again, and live mode carries it without any "sync now".
    let p = phone.patient_ids()?[0];
    phone.record_visit(p, follow_up_visit(99))?;
    until(&agent, "the new edit to be acknowledged", |s| s.synced && s.unacknowledged == 0).await?;
    ensure!(hashes(&phone, true).is_subset(&hashes(&storage, false)));
    agent.stop().await;
    relay.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_agents_carry_an_edit_from_one_phone_to_another() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = open_store(dir.path().join("relay.db"))?;
    let relay = start_relay(dir.path(), storage.clone()).await?;
    let (village, county) = (open_store(dir.path().join("v.db"))?, open_store(dir.path().join("c.db"))?);
    let p = village.create_patient(resident("刘桂兰"))?;
    let referral = village.create_referral(p, yilian_tests::upward_referral())?;
    enroll_directly(&storage, "village", &village.device_key())?;
    enroll_directly(&storage, "county", &county.device_key())?;
    let agents = [
        SyncAgent::start(village.clone(), config(relay.addr, relay.fingerprint, "village"))?,
        SyncAgent::start(county.clone(), config(relay.addr, relay.fingerprint, "county"))?,
    ];
    for agent in &agents {
        agent.sync_and_wait(STEP).await?;
    }
    // The desk is assigned the record while connected: it arrives without a new session.
    let mut events = county.watch();
    storage.grant_scope("county", ScopeGrant::Document(p))?;
    tokio::time::timeout(STEP, async {
        while county.patient(p).is_err() {
            events.changed().await.unwrap();
        }
    })
    .await?;

    let mut events = village.watch();
    let started = Instant::now();
    county.add_referral_event(referral, yilian_tests::desk_event(TaskStatus::Received))?;
    tokio::time::timeout(STEP, async {
        while village.referral_status(referral).map(|s| s.status).ok() != Some(TaskStatus::Received) {
            events.changed().await.unwrap();
        }
    })
    .await?;
    println!("county → village, live: {} ms", started.elapsed().as_millis());
    for agent in agents {
        agent.stop().await;
    }
    relay.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_retries_while_the_relay_is_down_and_recovers_when_it_returns() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Reserve a port, then leave it closed: the relay is not there yet.
    let addr = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
    let pin = yilian_core::net::RelayIdentity::load_or_generate(dir.path())?.fingerprint();
    let phone = open_store(dir.path().join("phone.db"))?;
    let p = phone.create_patient(resident("马秀珍"))?;
    let agent = SyncAgent::start(phone.clone(), config(addr, pin, "phone"))?;

    let waiting = until(&agent, "two failed attempts", |s| {
        s.last_error.is_some() && matches!(s.state, AgentState::Waiting { .. })
    })
    .await?;
    ensure!(!waiting.synced && waiting.unacknowledged > 0 && !waiting.connected, "{waiting:?}");
    ensure!(waiting.last_error.as_deref().unwrap().contains("network"), "{waiting:?}");

    // The relay comes up on its address; the app's connectivity hint makes the agent try at once.
    let storage = open_store(dir.path().join("relay.db"))?;
    enroll_directly(&storage, "phone", &phone.device_key())?;
    let data_dir = dir.path().to_path_buf();
    let start = |storage: Arc<Store>| {
        let config = RelayConfig { data_dir: data_dir.clone(), listen: addr, name: "relay".into() };
        start_on(config, storage)
    };

    let relay = start(storage.clone()).await?;
    agent.network_changed(true);
    let synced = until(&agent, "synced", |s| s.synced).await?;
    ensure!(synced.last_error.is_none() && synced.unacknowledged == 0);

    // The relay restarts; the agent notices, retries, and is live again without help.
    relay.shutdown().await;
    until(&agent, "the connection loss", |s| !s.connected).await?;
    phone.record_visit(p, follow_up_visit(5))?;
    let relay = start(storage.clone()).await?;
    until(&agent, "synced after the restart", |s| s.synced && s.unacknowledged == 0).await?;
    ensure!(hashes(&phone, true).is_subset(&hashes(&storage, false)));
    agent.stop().await;
    relay.shutdown().await;
    Ok(())
}

/// Starts a relay on a fixed address. A stopped relay's UDP socket is released by quinn's
/// endpoint driver once it has run after the last handle went; let it run (a new process would
/// not have to).
async fn start_on(config: RelayConfig, storage: Arc<Store>) -> yilian_core::Result<Relay> {
    let mut tries = 0;
    loop {
        match Relay::start(config.clone(), storage.clone()).await {
            Err(yilian_core::Error::Io(e)) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 100_000 => {
                tries += 1;
                tokio::task::yield_now().await;
            }
            other => return other,
        }
    }
}
