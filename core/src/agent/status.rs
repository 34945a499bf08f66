//! What the sync agent tells the app's UI.

use crate::net::SessionProgress;

/// What the agent is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AgentState {
    /// Not started yet, or stopped.
    #[default]
    Stopped,
    /// Opening a connection to the relay.
    Connecting,
    /// Connected, exchanging changes.
    Syncing,
    /// Connected and up to date; new edits flow both ways as they happen.
    Live,
    /// No connection; the next attempt comes after `retry_in_ms` (or sooner on a local edit,
    /// a connectivity hint, or a "sync now").
    Waiting {
        /// Milliseconds until the next attempt.
        retry_in_ms: u64,
    },
}

/// The agent's status, for the UI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// What the agent is doing.
    pub state: AgentState,
    /// A connection to the relay is open.
    pub connected: bool,
    /// Changes made on this device that the relay has not durably acknowledged yet.
    pub unacknowledged: u64,
    /// The relay holds every change of this device and this device holds everything the relay
    /// had for it when the session started. Never true while `unacknowledged > 0`.
    pub synced: bool,
    /// When the last sync completed (milliseconds since the Unix epoch).
    pub last_synced_at: Option<i64>,
    /// The last error (cleared by the next successful sync).
    pub last_error: Option<String>,
    /// Progress of the running sync.
    pub progress: Option<SessionProgress>,
    /// Changes the relay refused in the last session, with reasons (e.g. outside this device's
    /// scope). They stay on the device.
    pub refused: Vec<String>,
    /// Sessions completed since the agent started.
    pub sessions: u64,
}
