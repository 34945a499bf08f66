//! How busy the store's one writer connection is: every call takes it in turn, so under load the
//! time callers spend waiting for it, and holding it, says whether the store is what limits a
//! relay.

use super::Inner;
use std::ops::{Deref, DerefMut};
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Totals since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreContention {
    /// Times the connection was taken.
    pub acquisitions: u64,
    /// Time callers spent waiting for it, summed over callers (several can wait at once).
    pub waited: Duration,
    /// Time it was held (reading, writing, fsync included).
    pub held: Duration,
    /// Of `held`, the time spent storing children's pushes (a relay's ingest), split by what it
    /// was spent on.
    pub ingest: IngestTime,
}

/// Where the time storing a group of children's pushes goes (totals), while the store's
/// connection is held: what to make faster when a relay's ingest is what limits it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestTime {
    /// Applying the changes to their records: automerge and re-reading the records, on the
    /// machine's cores in parallel.
    pub applying: Duration,
    /// Checking scope, duplicates and signatures, and writing the changes, records and indexes
    /// (one core).
    pub writing: Duration,
    /// Committing the transaction, fsync included.
    pub committing: Duration,
}

impl IngestTime {
    /// The names of the three parts, in the order of [`IngestTime::by_kind`] (the relay's
    /// `ingest_seconds` metric labels them so).
    pub const KINDS: [&'static str; 3] = ["applying", "writing", "committing"];

    /// Each part with its name from [`IngestTime::KINDS`].
    pub fn by_kind(&self) -> [(&'static str, Duration); 3] {
        let [applying, writing, committing] = Self::KINDS;
        [(applying, self.applying), (writing, self.writing), (committing, self.committing)]
    }
}

/// The counters behind [`StoreContention`].
#[derive(Default)]
pub(crate) struct Counters {
    acquisitions: AtomicU64,
    waited_ns: AtomicU64,
    held_ns: AtomicU64,
    applying_ns: AtomicU64,
    writing_ns: AtomicU64,
    committing_ns: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> StoreContention {
        StoreContention {
            acquisitions: self.acquisitions.load(Ordering::Relaxed),
            waited: Duration::from_nanos(self.waited_ns.load(Ordering::Relaxed)),
            held: Duration::from_nanos(self.held_ns.load(Ordering::Relaxed)),
            ingest: IngestTime {
                applying: Duration::from_nanos(self.applying_ns.load(Ordering::Relaxed)),
                writing: Duration::from_nanos(self.writing_ns.load(Ordering::Relaxed)),
                committing: Duration::from_nanos(self.committing_ns.load(Ordering::Relaxed)),
            },
        }
    }

    /// Counts a group of pushes stored: `applying` of the `in_transaction` time was spent on
    /// automerge, the rest on writing; then `committing`.
    pub(crate) fn ingested(&self, in_transaction: Duration, applying: Duration, committing: Duration) {
        self.applying_ns.fetch_add(nanos(applying), Ordering::Relaxed);
        self.writing_ns.fetch_add(nanos(in_transaction.saturating_sub(applying)), Ordering::Relaxed);
        self.committing_ns.fetch_add(nanos(committing), Ordering::Relaxed);
    }

    /// Counts a wait that began at `asked` and ended now with `guard`; the hold is counted when
    /// the returned guard drops.
    pub(crate) fn taken<'a>(&'a self, guard: MutexGuard<'a, Inner>, asked: Instant) -> Locked<'a> {
        let since = Instant::now();
        self.acquisitions.fetch_add(1, Ordering::Relaxed);
        self.waited_ns.fetch_add(nanos(since - asked), Ordering::Relaxed);
        Locked { guard, since, counters: self }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The store's connection while one caller holds it.
pub(crate) struct Locked<'a> {
    guard: MutexGuard<'a, Inner>,
    since: Instant,
    counters: &'a Counters,
}

impl Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.guard
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.guard
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.counters.held_ns.fetch_add(nanos(self.since.elapsed()), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreOptions};

    fn synchronous(store: &Store) -> i64 {
        store.lock().conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap_or(-1)
    }

    #[test]
    fn bookkeeping_without_fsync_leaves_every_other_commit_fsynced() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(dir.path().join("s.db"), StoreOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(synchronous(&store), 2, "FULL");
        store.set_peer_delivered("phone", 7).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.peer_delivered("phone").unwrap_or_default(), 7);
        assert_eq!(synchronous(&store), 2, "FULL again after the write");
        let before = store.contention();
        store.peer_delivered("phone").unwrap_or_default();
        let after = store.contention();
        assert_eq!(after.acquisitions, before.acquisitions + 1);
        assert!(after.held > before.held);
    }
}
