//! Enrollment and the sync agent: the phone joins the consortium's relay once with a code, then
//! an agent keeps it in sync whenever a link appears and reports its status to the app.

use crate::error::SyncError;
use crate::runtime::{runtime, spawned};
use crate::store::{TaskHandle, YilianStore};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use yilian_core::agent::{AgentConfig, AgentState, SyncAgent};
use yilian_core::net::{Fingerprint, client_config, resolve};
use yilian_core::store::check_device_id;

/// How the phone reaches its relay.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct SyncConfig {
    /// The relay's address, `host:port` (resolved at every attempt).
    pub relay: String,
    /// The relay certificate's fingerprint, `sha256:…` (printed by `yilian-relay serve`); pinned.
    pub fingerprint: String,
    /// This phone's device id, as enrolled (e.g. `wang-phone`).
    pub device_id: String,
}

/// Who the relay enrolled this phone as.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Enrollment {
    /// The device id.
    pub device_id: String,
    /// The practitioner the phone belongs to.
    pub practitioner_id: String,
    /// The organization they work for.
    pub organization_id: String,
}

/// What the agent is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SyncState {
    /// Not started, or stopped.
    Stopped,
    /// Opening a connection.
    Connecting,
    /// Exchanging changes.
    Syncing,
    /// Connected and up to date; edits flow both ways as they happen.
    Live,
    /// No connection; the next attempt comes after `retry_in_ms` (sooner on an edit, a
    /// connectivity hint or a "sync now").
    Waiting,
}

/// The agent's status, as the app shows it.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct SyncStatus {
    /// What the agent is doing.
    pub state: SyncState,
    /// Milliseconds until the next attempt, while waiting.
    pub retry_in_ms: Option<u64>,
    /// A connection to the relay is open.
    pub connected: bool,
    /// Edits made on this phone that the relay has not durably acknowledged yet ("pending").
    pub unacknowledged: u64,
    /// Everything is exchanged and acknowledged; never true while edits are pending.
    pub synced: bool,
    /// When the last sync completed (ms since the epoch).
    pub last_synced_at: Option<i64>,
    /// The last error, until the next successful sync.
    pub last_error: Option<String>,
    /// Changes exchanged so far in the running sync.
    pub items_done: u64,
    /// Changes to exchange in all in the running sync (0 until known).
    pub items_total: u64,
    /// Edits the relay refused in the last session, with reasons (they stay on the phone).
    pub refused: Vec<String>,
    /// Sessions completed since the agent started.
    pub sessions: u64,
}

impl From<yilian_core::agent::SyncStatus> for SyncStatus {
    fn from(s: yilian_core::agent::SyncStatus) -> Self {
        let (state, retry_in_ms) = match s.state {
            AgentState::Stopped => (SyncState::Stopped, None),
            AgentState::Connecting => (SyncState::Connecting, None),
            AgentState::Syncing => (SyncState::Syncing, None),
            AgentState::Live => (SyncState::Live, None),
            AgentState::Waiting { retry_in_ms } => (SyncState::Waiting, Some(retry_in_ms)),
        };
        SyncStatus {
            state,
            retry_in_ms,
            connected: s.connected,
            unacknowledged: s.unacknowledged,
            synced: s.synced,
            last_synced_at: s.last_synced_at,
            last_error: s.last_error,
            items_done: s.progress.map(|p| p.items_done).unwrap_or(0),
            items_total: s.progress.map(|p| p.items_total).unwrap_or(0),
            refused: s.refused,
            sessions: s.sessions,
        }
    }
}

/// What the app implements to follow the sync status (a status bar, a "pending" badge).
#[uniffi::export(with_foreign)]
pub trait SyncObserver: Send + Sync {
    /// The status changed; called once at once with the current status.
    fn on_status(&self, status: SyncStatus);
}

fn fingerprint(config: &SyncConfig) -> Result<Fingerprint, SyncError> {
    config.fingerprint.parse().map_err(|e: yilian_core::Error| SyncError::Configuration {
        field: "fingerprint".into(),
        reason: format!("{:?}: {e}", config.fingerprint),
    })
}

/// Enrolls this phone with the relay: presents the one-time `code` the consortium's administrator
/// issued for the doctor, and asks to be known as `config.device_id`. A wrong, used or expired
/// code is `SyncError.Unauthorized` with the relay's reason.
#[uniffi::export]
pub async fn enroll(store: Arc<YilianStore>, config: SyncConfig, code: String) -> Result<Enrollment, SyncError> {
    let pinned = fingerprint(&config)?;
    check_device_id(&config.device_id)?;
    spawned(async move {
        let client = client_config(pinned, &store.store.device_key())?;
        let endpoint = quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0)))
            .map_err(|e| SyncError::Network { reason: format!("cannot open a UDP socket: {e}") })?;
        let addr = resolve(&config.relay).await?;
        let enrolled = tokio::time::timeout(
            Duration::from_secs(30),
            yilian_core::net::enroll(&endpoint, &client, addr, &code, &config.device_id),
        )
        .await
        .map_err(|_| SyncError::Network { reason: format!("{} did not answer within 30 s", config.relay) })??;
        endpoint.close(quinn::VarInt::from_u32(0), b"enrolled");
        Ok(Enrollment {
            device_id: enrolled.device,
            practitioner_id: enrolled.practitioner,
            organization_id: enrolled.organization,
        })
    })
    .await
}

/// The phone's sync agent: syncs at start, after edits, when the network comes back, and on a
/// timer with backoff; stays connected while it can so edits flow both ways within a second.
/// Start one per store after enrollment; `stop` it (or drop it) when the app closes the store.
#[derive(uniffi::Object)]
pub struct YilianSyncAgent {
    agent: Mutex<Option<Arc<SyncAgent>>>,
}

impl YilianSyncAgent {
    fn slot(&self) -> Result<std::sync::MutexGuard<'_, Option<Arc<SyncAgent>>>, SyncError> {
        self.agent.lock().map_err(|_| SyncError::Internal { reason: "agent lock poisoned".into() })
    }

    fn running(&self) -> Result<Arc<SyncAgent>, SyncError> {
        self.slot()?.clone().ok_or_else(|| SyncError::Configuration { field: "agent".into(), reason: "stopped".into() })
    }
}

#[uniffi::export]
impl YilianSyncAgent {
    /// Starts syncing `store` with the relay of `config`.
    #[uniffi::constructor]
    pub fn start(store: Arc<YilianStore>, config: SyncConfig) -> Result<Arc<YilianSyncAgent>, SyncError> {
        let pinned = fingerprint(&config)?;
        check_device_id(&config.device_id)?;
        let _runtime = runtime().enter();
        let agent = SyncAgent::start(store.store.clone(), AgentConfig::new(config.relay, pinned, config.device_id))?;
        Ok(Arc::new(YilianSyncAgent { agent: Mutex::new(Some(Arc::new(agent))) }))
    }

    /// The status as of now (edits made a moment ago already count as pending).
    pub fn status(&self) -> Result<SyncStatus, SyncError> {
        Ok(self.running()?.status_now().into())
    }

    /// Calls `observer` with the status now and at every change, until the handle is dropped or
    /// cancelled.
    pub fn observe(&self, observer: Arc<dyn SyncObserver>) -> Result<Arc<TaskHandle>, SyncError> {
        let agent = self.running()?;
        let mut status = agent.status();
        observer.on_status(agent.status_now().into());
        drop(agent);
        Ok(TaskHandle::spawn(async move {
            while status.changed().await.is_ok() {
                let now = status.borrow_and_update().clone();
                observer.on_status(now.into());
            }
        }))
    }

    /// Syncs now (the doctor pulled to refresh) and returns once this phone is synced; an
    /// unreachable relay or a refusal is an error, and so is not being synced within
    /// `timeout_ms`.
    pub async fn sync_now(&self, timeout_ms: u64) -> Result<SyncStatus, SyncError> {
        let agent = self.running()?;
        spawned(async move { Ok(agent.sync_and_wait(Duration::from_millis(timeout_ms)).await?.into()) }).await
    }

    /// The app's connectivity callback: `true` when a network appeared (sync at once), `false`
    /// when it went away.
    pub fn network_changed(&self, available: bool) -> Result<(), SyncError> {
        self.running()?.network_changed(available);
        Ok(())
    }

    /// Stops the agent, ending the session with the relay cleanly. Edits keep being stored and
    /// sync when an agent runs again.
    pub async fn stop(&self) -> Result<(), SyncError> {
        let agent = self.slot()?.take();
        if let Some(agent) = agent {
            spawned(async move {
                // A `sync_now` still running holds a reference: dropping ours cancels the agent,
                // which ends that call too.
                if let Ok(agent) = Arc::try_unwrap(agent) {
                    agent.stop().await;
                }
                Ok::<(), SyncError>(())
            })
            .await?;
        }
        Ok(())
    }
}
