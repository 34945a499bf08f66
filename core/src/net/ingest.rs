//! Group commit of the children's pushes. A store commits one transaction at a time and each
//! durable commit waits for an fsync; with many phones pushing at once, storing each push on its
//! own spends the store on fsyncs and on re-reading and re-writing the same records. Here the
//! pushes that arrive while a group is being stored wait together, and the next group takes
//! them all (up to [`GROUP_PUSHES`]) in one transaction ([`ParentStorage::ingest_group`]).
//!
//! No thread of its own: the session whose push finds no group being stored stores the group
//! (its own push and whatever queued with it); the others wait for their answers.

use super::{blocking, with_store};
use crate::store::{ApplyReport, ChildPush};
use crate::sync::ParentStorage;
use crate::{Error, Result};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;

/// Pushes stored in one transaction at most. A push carries up to 500 changes; a group keeps
/// the store (and every reader waiting for it) for about as long as a few hundred changes take.
pub const GROUP_PUSHES: usize = 64;

type Waiting = Vec<(ChildPush, oneshot::Sender<Result<ApplyReport>>)>;

/// The pushes waiting to be stored, shared by the sessions of one parent (one per storage).
#[derive(Default)]
pub struct IngestQueue {
    waiting: Mutex<Waiting>,
    /// Held while a group is stored.
    writer: tokio::sync::Mutex<()>,
    groups: AtomicU64,
    pushes: AtomicU64,
}

impl std::fmt::Debug for IngestQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (groups, pushes) = self.figures();
        f.debug_struct("IngestQueue").field("groups", &groups).field("pushes", &pushes).finish()
    }
}

impl IngestQueue {
    /// Stores `push` in `storage` with the pushes queued beside it; its own result.
    pub async fn ingest(&self, storage: &dyn ParentStorage, mut push: ChildPush) -> Result<ApplyReport> {
        // Decoding and signature checks need no store: done here, beside the other sessions.
        blocking(|| push.check_ahead());
        let (answer, mut result) = oneshot::channel();
        self.lock_waiting().push((push, answer));
        loop {
            let _writer = tokio::select! {
                biased;
                stored = &mut result => {
                    return stored.unwrap_or_else(|_| {
                        Err(Error::Sync { reason: "the push was not stored (the relay stopped or its writer failed)".into() })
                    });
                }
                writer = self.writer.lock() => writer,
            };
            // Empty when an earlier group took this push: its answer is in (the writer lock is
            // released only after answering), and the next turn of the loop returns it.
            let group: Waiting = {
                let mut waiting = self.lock_waiting();
                let take = waiting.len().min(GROUP_PUSHES);
                waiting.drain(..take).collect()
            };
            if group.is_empty() {
                continue;
            }
            self.groups.fetch_add(1, Ordering::Relaxed);
            self.pushes.fetch_add(group.len() as u64, Ordering::Relaxed);
            let (pushes, answers): (Vec<ChildPush>, Vec<_>) = group.into_iter().unzip();
            let results = with_store(|| storage.ingest_group(pushes)).await;
            for (answer, stored) in answers.into_iter().zip(results) {
                // A session that went away does not want its answer.
                let _ = answer.send(stored);
            }
        }
    }

    /// Groups stored so far, and the pushes they held (pushes / groups: how many shared an
    /// fsync on average).
    pub fn figures(&self) -> (u64, u64) {
        (self.groups.load(Ordering::Relaxed), self.pushes.load(Ordering::Relaxed))
    }

    /// Pushes waiting for a group now.
    pub fn queued(&self) -> usize {
        self.lock_waiting().len()
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // The list stays consistent whatever panicked while holding it (push and drain only).
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
