//! What a parent (relay, edge hub) needs from its storage to serve children. The SQLite
//! [`Store`] implements it; a relay backend on another database (PostgreSQL) implements the same
//! trait and the sync engine does not change.

use super::message::{DocumentCopy, Grant, LogMark, ScopeChange};
use crate::store::{ApplyReport, ChildPush, ScopeGrant, StoredChange};
use crate::{PatientId, Result, Store, StoreEvents};

/// Grants read per request: each is a whole document, so keep batches small.
pub const GRANTS_PER_READ: usize = 16;

/// Bytes of documents per catch-up page before compression. Bigger pages compress better (the
/// frame's zstd shares more across records; measured on the workload: 1.20x the payload's best
/// compression at 128 KiB, 1.11x at 1 MiB); 1 MiB is about a quarter of that on the wire, half a
/// minute of a 2G link lost at most to a cut, and a transaction of some 150 records on the phone.
pub const DOCUMENTS_PAGE_BYTES: usize = 1024 * 1024;

/// Storage as seen by the parent side of a sync session.
pub trait ParentStorage: Send + Sync {
    /// Identity of this parent's log (a child whose cursor names another log starts again at 0).
    fn log_id(&self) -> Result<String>;
    /// Newest sequence number in this parent's log.
    fn head(&self) -> Result<i64>;
    /// How much of `child`'s log is durably stored here, and the last change of it stored here
    /// (its position in the child's log and its hash), which the child checks its log against.
    fn child_acked(&self, child: &str) -> Result<(i64, Option<LogMark>)>;
    /// Forgets how much of `child`'s log is stored here (its log went back): it pushes it all
    /// again, and its own earlier changes are sent back to it (the restored device lost them).
    fn forget_child_log(&self, child: &str) -> Result<()>;
    /// Changes and bytes `child` is about to pull after `after_seq`.
    fn pending_for(&self, child: &str, after_seq: i64) -> Result<(u64, u64)>;
    /// Changes after `after_seq` in `child`'s scope, not from it, at most `limit`; and the last
    /// sequence looked at.
    fn changes_for(&self, child: &str, after_seq: i64, limit: usize) -> Result<(Vec<StoredChange>, i64)>;
    /// A page of the documents in `child`'s scope (not only the child's own), whole, in id order
    /// after `after`: the documents, the last one looked at, and whether none follow.
    fn documents_for(
        &self,
        child: &str,
        after: Option<[u8; 16]>,
    ) -> Result<(Vec<DocumentCopy>, Option<[u8; 16]>, bool)>;
    /// The newest grant to send to `child` (0 when none).
    fn grant_head(&self, child: &str) -> Result<i64>;
    /// Changes to `child`'s scope after grant `after` (documents that entered it, whole; documents
    /// that left it); and whether there are more.
    fn grants_for(&self, child: &str, after: i64) -> Result<(Vec<ScopeChange>, bool)>;
    /// Stores a child's pushed changes (scope enforced, item by item), its cursor and the mark of
    /// its log (the last item's position and hash), atomically.
    fn ingest(&self, push: ChildPush) -> Result<ApplyReport>;
    /// Stores several children's pushes, as [`ParentStorage::ingest`] one after the other would;
    /// a storage that can does it in one transaction (one fsync for all). A result per push, in
    /// order: one push's error is never another's.
    fn ingest_group(&self, pushes: Vec<ChildPush>) -> Vec<Result<ApplyReport>> {
        pushes.into_iter().map(|p| self.ingest(p)).collect()
    }
    /// The key of `child` when it is an enrolled phone (which may push only changes it authored),
    /// so its pushes' signatures can be checked before they wait for the store
    /// ([`ChildPush::check_ahead`]). `None` (the default) leaves every check to storing.
    fn phone_key(&self, child: &str) -> Result<Option<Vec<u8>>> {
        let _ = child;
        Ok(None)
    }
    /// Wakes when the log grows or scope changes, so live sessions stream new changes (SQLite: in
    /// process; PostgreSQL: LISTEN/NOTIFY across relay nodes).
    fn watch(&self) -> tokio::sync::watch::Receiver<StoreEvents>;
    /// Notes how far `child` has read this log (at its hello, and after each batch sent): what
    /// an operator's view of its sync lag counts from.
    fn note_child_read(&self, child: &str, read_seq: i64) -> Result<()>;
    /// How far `child` has read this log, as last noted.
    fn child_read(&self, child: &str) -> Result<i64>;
    /// Whether grant `grant_seq`, which a child heard, is one this store issued and then lost (its
    /// database was restored from an older backup).
    fn grant_lost(&self, grant_seq: i64) -> Result<bool>;
    /// A child's report of the records it holds, after a restore lost what we knew of its scope:
    /// those it may not read get a purge (its late edits to them are taken), those in its scope
    /// granted up to `heard` that it lacks are granted again. Returns how many rows changed.
    fn record_holdings(&self, child: &str, docs: &[PatientId], heard: i64) -> Result<usize>;
}

impl ParentStorage for Store {
    fn log_id(&self) -> Result<String> {
        Store::log_id(self)
    }

    fn head(&self) -> Result<i64> {
        self.last_seq()
    }

    fn child_acked(&self, child: &str) -> Result<(i64, Option<LogMark>)> {
        Store::child_acked(self, child)
    }

    fn forget_child_log(&self, child: &str) -> Result<()> {
        Store::forget_child_log(self, child)
    }

    fn pending_for(&self, child: &str, after_seq: i64) -> Result<(u64, u64)> {
        self.pending_for_peer(child, after_seq)
    }

    fn changes_for(&self, child: &str, after_seq: i64, limit: usize) -> Result<(Vec<StoredChange>, i64)> {
        self.changes_for_peer(child, after_seq, limit)
    }

    fn documents_for(
        &self,
        child: &str,
        after: Option<[u8; 16]>,
    ) -> Result<(Vec<DocumentCopy>, Option<[u8; 16]>, bool)> {
        self.documents_for_peer(child, after, self.catch_up_page_bytes())
    }

    fn grant_head(&self, child: &str) -> Result<i64> {
        Store::grant_head(self, child)
    }

    fn grants_for(&self, child: &str, after: i64) -> Result<(Vec<ScopeChange>, bool)> {
        let grants = self.grants_after(child, after, GRANTS_PER_READ)?;
        let more = grants.len() == GRANTS_PER_READ;
        let mut out = Vec::with_capacity(grants.len());
        for (grant, what, purge) in grants {
            out.push(match (what, purge) {
                (ScopeGrant::Document(id), true) => ScopeChange::Leave { grant, doc: *id.0.as_bytes() },
                (ScopeGrant::Everything, _) => ScopeChange::Enter(Grant {
                    grant,
                    doc: None,
                    bytes: Vec::new(),
                    signatures: Vec::new(),
                    waiting: Vec::new(),
                }),
                (ScopeGrant::Document(id), false) => {
                    let snapshot = self.document_snapshot(id)?;
                    ScopeChange::Enter(Grant {
                        grant,
                        doc: Some(*id.0.as_bytes()),
                        bytes: snapshot.bytes,
                        signatures: snapshot.signatures,
                        waiting: snapshot.waiting,
                    })
                }
            });
        }
        Ok((out, more))
    }

    fn ingest_group(&self, pushes: Vec<ChildPush>) -> Vec<Result<ApplyReport>> {
        Store::ingest_group(self, pushes)
    }

    fn ingest(&self, push: ChildPush) -> Result<ApplyReport> {
        let mut reports = Store::ingest_group(self, vec![push]);
        reports.pop().unwrap_or_else(|| Err(crate::Error::Sync { reason: "a push was stored without a report".into() }))
    }

    fn phone_key(&self, child: &str) -> Result<Option<Vec<u8>>> {
        Store::phone_key(self, child)
    }

    fn grant_lost(&self, grant_seq: i64) -> Result<bool> {
        Store::grant_lost(self, grant_seq)
    }

    fn record_holdings(&self, child: &str, docs: &[PatientId], heard: i64) -> Result<usize> {
        Store::record_holdings(self, child, docs, heard)
    }

    fn watch(&self) -> tokio::sync::watch::Receiver<StoreEvents> {
        Store::watch(self)
    }

    fn note_child_read(&self, child: &str, read_seq: i64) -> Result<()> {
        self.set_peer_delivered(child, read_seq)
    }

    fn child_read(&self, child: &str) -> Result<i64> {
        self.peer_delivered(child)
    }
}
