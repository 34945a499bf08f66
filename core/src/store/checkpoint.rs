//! WAL checkpoints off the edit path.
//!
//! SQLite's automatic checkpoint runs inside whichever commit crosses the threshold, copying the
//! WAL back into the database and syncing it: a doctor's "save" then takes tens of milliseconds
//! instead of two. A checkpointer thread with its own connection does that work between edits
//! instead (a PASSIVE checkpoint never blocks the writer); the writer keeps a much higher
//! automatic threshold only as a safety valve.

use crate::Result;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// WAL pages after which the writer checkpoints by itself (the checkpointer normally keeps the
/// WAL far smaller).
pub(crate) const WRITER_AUTOCHECKPOINT_PAGES: i64 = 16_384;

/// Runs PASSIVE checkpoints every `interval` until dropped.
pub(crate) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(path: PathBuf, key: Option<Vec<u8>>, interval: Duration) -> Result<Checkpointer> {
        let conn = Connection::open(&path)?;
        if let Some(key) = &key {
            super::apply_key(&conn, key)?;
        }
        conn.busy_timeout(Duration::from_millis(50))?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let handle = std::thread::Builder::new().name("yilian-checkpoint".into()).spawn(move || {
            let (lock, cvar) = &*signal;
            let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
            while !*stopped {
                let (guard, _) = cvar.wait_timeout(stopped, interval).unwrap_or_else(|p| p.into_inner());
                stopped = guard;
                if *stopped {
                    break;
                }
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "checkpoint skipped");
                }
            }
        })?;
        Ok(Checkpointer { stop, handle: Some(handle) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cvar.notify_all();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
