//! The on-device sync agent: owns the store's link to the relay and syncs whenever a link
//! appears. It syncs on start, after local edits (debounced), when the app hints that the network
//! came back, and on a timer with exponential backoff and jitter while the relay is unreachable.
//! While connected it stays live: new edits go out, and the relay's arrive, within a second.
//! Its [`SyncStatus`] is what the UI shows.

mod backoff;
mod status;

pub use backoff::Backoff;
pub use status::{AgentState, SyncStatus};

use crate::net::{
    ANSWER_TIMEOUT, Fingerprint, SessionOptions, SessionProgress, client_config, connect_within, resolve, sync_over,
};
use crate::{Error, Result, Store};
use rand::SeedableRng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// How the agent reaches its relay.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The relay: `host:port` (resolved at every attempt, so DNS changes are followed).
    pub relay: String,
    /// The relay certificate's fingerprint, pinned.
    pub fingerprint: Fingerprint,
    /// The relay's name in this store's cursors.
    pub relay_name: String,
    /// This device's peer id (until enrollment: its public key).
    pub device_id: String,
    /// Quiet time after a local edit before a sync starts while disconnected (edits come in
    /// bursts: a visit is several calls).
    pub debounce: Duration,
    /// First retry delay after a failure.
    pub retry_min: Duration,
    /// Largest retry delay.
    pub retry_max: Duration,
    /// How often to sync when nothing else asks for it, while the last attempt worked.
    pub periodic: Duration,
    /// Stay connected after syncing (live mode). Off, each sync is one session.
    pub live: bool,
    /// How long to wait for an unreachable relay's handshake before counting the attempt failed.
    pub connect_timeout: Duration,
}

impl AgentConfig {
    /// Defaults for a phone: debounce 300 ms, retries from 1 s to 5 min, a sync every 15 min,
    /// live.
    pub fn new(relay: impl Into<String>, fingerprint: Fingerprint, device_id: impl Into<String>) -> AgentConfig {
        AgentConfig {
            relay: relay.into(),
            fingerprint,
            relay_name: "relay".into(),
            device_id: device_id.into(),
            debounce: Duration::from_millis(300),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            periodic: Duration::from_secs(900),
            live: true,
            connect_timeout: ANSWER_TIMEOUT,
        }
    }
}

struct Shared {
    now: Notify,
    network: watch::Sender<bool>,
    status: watch::Sender<SyncStatus>,
}

/// A running sync agent. Dropping it stops the agent's task.
pub struct SyncAgent {
    store: Arc<Store>,
    relay_name: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SyncAgent {
    /// Starts the agent on the current tokio runtime.
    pub fn start(store: Arc<Store>, config: AgentConfig) -> Result<SyncAgent> {
        let client = client_config(config.fingerprint, &store.device_key())?;
        let shared = Arc::new(Shared {
            now: Notify::new(),
            network: watch::Sender::new(true),
            status: watch::Sender::new(SyncStatus::default()),
        });
        let stop = CancellationToken::new();
        let relay_name = config.relay_name.clone();
        let task = tokio::spawn(run(store.clone(), config, client, shared.clone(), stop.clone()));
        Ok(SyncAgent { store, relay_name, shared, stop, task: Some(task) })
    }

    /// A receiver of the status that wakes on every change.
    pub fn status(&self) -> watch::Receiver<SyncStatus> {
        self.shared.status.subscribe()
    }

    /// The status as of now: edits committed a moment ago count as unacknowledged even before
    /// the agent's task has seen them, so "synced" is never shown while an edit is pending.
    pub fn status_now(&self) -> SyncStatus {
        refresh_unacknowledged(&self.store, &self.relay_name, &self.shared);
        self.shared.status.borrow().clone()
    }

    /// Sync now (the doctor pulled to refresh): skips any retry delay.
    pub fn sync_now(&self) {
        self.shared.now.notify_one();
    }

    /// The app's connectivity callback: `true` when a network appeared (sync at once, retries
    /// start over), `false` when it went away (the agent stops trying until the retry timer).
    pub fn network_changed(&self, available: bool) {
        self.shared.network.send_replace(available);
    }

    /// Syncs now and waits until this device is synced (everything acknowledged by the relay), or
    /// the attempt fails, or `timeout` passes.
    pub async fn sync_and_wait(&self, timeout: Duration) -> Result<SyncStatus> {
        let mut status = self.status();
        let before = self.status_now();
        status.borrow_and_update();
        self.sync_now();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                {
                    status.borrow_and_update();
                    let s = self.status_now();
                    if s.synced && (s.state == AgentState::Live || s.last_synced_at > before.last_synced_at) {
                        return Ok(s.clone());
                    }
                    if let (Some(e), AgentState::Waiting { .. }) = (&s.last_error, s.state)
                        && s.last_error != before.last_error
                    {
                        return Err(Error::network(e.clone()));
                    }
                }
                if status.changed().await.is_err() {
                    return Err(Error::network("the sync agent stopped"));
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| Err(Error::network(format!("not synced within {timeout:?}"))))
    }

    /// Stops the agent: ends the session cleanly and waits for the task.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SyncAgent {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run(
    store: Arc<Store>,
    config: AgentConfig,
    client: quinn::ClientConfig,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let endpoint = match quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0))) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            shared.status.send_modify(|s| s.last_error = Some(format!("cannot open a UDP socket: {e}")));
            return;
        }
    };
    let mut backoff = Backoff::new(config.retry_min, config.retry_max);
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut network = shared.network.subscribe();
    let mut events = store.watch();
    network.borrow_and_update();
    refresh_unacknowledged(&store, &config.relay_name, &shared);

    while !stop.is_cancelled() {
        let result = attempt(&endpoint, &client, &store, &config, &shared, &stop).await;
        let delay = match result {
            Ok(()) => {
                backoff.reset();
                config.periodic
            }
            Err(e) => {
                let error = e.with_causes();
                tracing::info!(%error, "sync attempt failed");
                shared.status.send_modify(|s| s.last_error = Some(error));
                backoff.next_delay(&mut rng)
            }
        };
        if stop.is_cancelled() {
            break;
        }
        refresh_unacknowledged(&store, &config.relay_name, &shared);
        shared.status.send_modify(|s| {
            s.connected = false;
            s.progress = None;
            s.state = AgentState::Waiting { retry_in_ms: delay.as_millis() as u64 };
        });
        // Wait for the timer, or for a reason to try sooner: edits made during the session that
        // just ended were its business, only new ones count.
        let local_edits = events.borrow_and_update().local_edits;
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = &mut sleep => break,
                _ = shared.now.notified() => {
                    backoff.reset();
                    break;
                }
                changed = network.changed() => {
                    if changed.is_ok() && *network.borrow_and_update() {
                        backoff.reset();
                        break;
                    }
                }
                changed = events.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    if events.borrow_and_update().local_edits != local_edits {
                        refresh_unacknowledged(&store, &config.relay_name, &shared);
                        // A burst of edits (one visit is several calls) becomes one sync.
                        tokio::time::sleep(config.debounce).await;
                        break;
                    }
                }
            }
        }
    }
    shared.status.send_modify(|s| {
        s.state = AgentState::Stopped;
        s.connected = false;
        s.progress = None;
    });
    endpoint.close(quinn::VarInt::from_u32(0), b"device stopping");
    tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await.ok();
}

/// One connection and one session on it (live: until the connection breaks or the agent stops).
async fn attempt(
    endpoint: &quinn::Endpoint,
    client: &quinn::ClientConfig,
    store: &Store,
    config: &AgentConfig,
    shared: &Shared,
    stop: &CancellationToken,
) -> Result<()> {
    shared.status.send_modify(|s| s.state = AgentState::Connecting);
    let addr = resolve(&config.relay).await?;
    let (conn, _zero_rtt) = connect_within(endpoint, client, addr, config.connect_timeout).await?;
    shared.status.send_modify(|s| {
        s.connected = true;
        s.state = AgentState::Syncing;
    });
    let options = SessionOptions { live: config.live, cut_after_bytes: None };
    let mut on_progress = |p: &SessionProgress| report_progress(store, config, shared, p);
    let mut network = shared.network.subscribe();
    network.borrow_and_update();
    let session = sync_over(&conn, store, &config.device_id, &config.relay_name, &options, stop, &mut on_progress);
    tokio::pin!(session);
    let result = loop {
        tokio::select! {
            result = &mut session => break result,
            changed = network.changed() => {
                // The phone moved networks (Wi-Fi to 4G): move the connection to a fresh socket
                // (QUIC connection migration) instead of starting over.
                if changed.is_ok() && *network.borrow_and_update() {
                    match std::net::UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0))) {
                        Ok(socket) => {
                            if let Err(e) = endpoint.rebind(socket) {
                                tracing::info!(error = %e, "could not migrate the connection");
                            }
                        }
                        Err(e) => tracing::info!(error = %e, "could not open a socket to migrate to"),
                    }
                }
            }
        }
    };
    conn.close(quinn::VarInt::from_u32(0), b"done");
    let report = result?;
    shared.status.send_modify(|s| {
        s.sessions += 1;
        s.refused = report.outcome.refused.clone();
    });
    Ok(())
}

fn report_progress(store: &Store, config: &AgentConfig, shared: &Shared, progress: &SessionProgress) {
    let unacknowledged = store.unacknowledged(&config.relay_name).map(|(n, _)| n).unwrap_or(u64::MAX);
    shared.status.send_if_modified(|s| {
        let synced = progress.synced && unacknowledged == 0;
        let before = (s.synced, s.unacknowledged, s.progress);
        if synced && !s.synced {
            s.last_synced_at = Some(store.clock().now_ms());
            s.last_error = None;
        }
        s.synced = synced;
        s.unacknowledged = unacknowledged;
        s.progress = Some(*progress);
        s.state = if synced { AgentState::Live } else { AgentState::Syncing };
        before != (s.synced, s.unacknowledged, s.progress) || s.state != AgentState::Syncing
    });
}

fn refresh_unacknowledged(store: &Store, relay_name: &str, shared: &Shared) {
    if let Ok((n, _)) = store.unacknowledged(relay_name) {
        shared.status.send_if_modified(|s| {
            let changed = s.unacknowledged != n || (n > 0 && s.synced);
            s.unacknowledged = n;
            s.synced = s.synced && n == 0;
            changed
        });
    }
}
