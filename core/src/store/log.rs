//! The change log as the sync engine sees it: reading changes after a cursor, applying changes
//! received from a peer (idempotently, by hash), and the peers' cursors.

use super::directory::own_changes_only;
use super::docs::{ChangeToStore, Loaded, exists, store_changes, write_doc_row};
use super::scope::{in_scope, record_created};
use super::{Committed, Inner, Store};
use crate::document::{Touched, decode_change};
use crate::time::now_ms;
use crate::{Error, PatientId, Result};
use automerge::{Automerge, Change, PatchLog};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest change accepted from a peer. A visit is about 500 bytes; a big discharge summary a few
/// kilobytes. Anything near this is an attack or a bug.
pub const MAX_CHANGE_BYTES: usize = 1024 * 1024;

/// A change as stored in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChange {
    /// Position in this replica's log.
    pub seq: i64,
    /// The document (patient) it belongs to.
    pub doc_id: PatientId,
    /// Automerge change hash.
    pub hash: [u8; 32],
    /// Raw automerge change bytes.
    pub bytes: Vec<u8>,
    /// Signature of the authoring device over the hash.
    pub signature: Option<Vec<u8>>,
    /// Made on this replica.
    pub local: bool,
}

/// A change received from a peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingChange {
    /// The document it belongs to.
    pub doc_id: PatientId,
    /// Raw automerge change bytes.
    pub bytes: Vec<u8>,
    /// Signature of the authoring device over the hash, if the peer sent one.
    pub signature: Option<Vec<u8>>,
}

/// A change that was refused, by its position in the batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedChange {
    /// Index in the batch passed to [`Store::apply_remote_changes`].
    pub index: usize,
    /// Why it was refused.
    pub reason: String,
}

/// What applying a batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Changes stored for the first time.
    pub applied: usize,
    /// Changes already stored (re-sent): no-ops.
    pub duplicates: usize,
    /// Changes refused; nothing of them was stored.
    pub rejected: Vec<RejectedChange>,
    /// Documents that changed.
    pub changed: Vec<PatientId>,
}

/// One child's push, for [`Store::ingest_group`]: its changes and how far its log they reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildPush {
    /// The child (device or edge hub) that pushed.
    pub peer: String,
    /// Its changes, in the order it sent them.
    pub items: Vec<IncomingChange>,
    /// How much of the child's log is stored here once these are.
    pub up_to: i64,
}

/// Sync cursors for one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCursor {
    /// How much of our log the peer has durably acknowledged.
    pub acked_seq: i64,
    /// How far we have read the peer's log.
    pub read_seq: i64,
}

impl Store {
    /// Changes after `after_seq` in log order, at most `limit`.
    pub fn changes_since(&self, after_seq: i64, limit: usize) -> Result<Vec<StoredChange>> {
        self.read_log("local_seq > ?1", after_seq, limit)
    }

    /// Changes made on this replica after `after_seq` (what a device pushes).
    pub fn local_changes_since(&self, after_seq: i64, limit: usize) -> Result<Vec<StoredChange>> {
        self.read_log("local = 1 AND local_seq > ?1", after_seq, limit)
    }

    /// This replica's changes after `after_seq` in `peer`'s scope that did not come from `peer`,
    /// at most `limit`, and how far the log has been looked at for `peer` (the cursor moves past
    /// the changes left out).
    pub fn changes_for_peer(&self, peer: &str, after_seq: i64, limit: usize) -> Result<(Vec<StoredChange>, i64)> {
        let inner = self.lock();
        let head: i64 = inner.conn.query_row("SELECT coalesce(max(local_seq), 0) FROM changes", [], |r| r.get(0))?;
        let sql = format!(
            "SELECT local_seq, doc_id, hash, bytes, signature, local FROM changes
             WHERE {} ORDER BY local_seq LIMIT ?3",
            for_peer(&inner.conn, peer)?
        );
        let mut stmt = inner.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![after_seq, peer, limit.min(i64::MAX as usize) as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
                r.get::<_, bool>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, doc, hash, bytes, signature, local) = row?;
            out.push(stored_change(seq, &doc, &hash, bytes, signature, local)?);
        }
        // Fewer rows than asked for: everything up to the head was looked at. Otherwise every
        // change for the peer up to the last row is in this batch (rows come in log order).
        let up_to = match out.last() {
            Some(last) if out.len() >= limit => last.seq,
            _ => head.max(after_seq),
        };
        Ok((out, up_to))
    }

    /// The id of this replica's log; a peer whose cursor names another log starts again at 0.
    pub fn log_id(&self) -> Result<String> {
        let inner = self.lock();
        Ok(inner.conn.query_row("SELECT CAST(value AS TEXT) FROM meta WHERE key = 'log_id'", [], |r| r.get(0))?)
    }

    /// The peer's log id our cursor refers to ('' when none).
    pub fn peer_log_id(&self, peer: &str) -> Result<String> {
        let inner = self.lock();
        Ok(inner
            .conn
            .query_row("SELECT log_id FROM peers WHERE peer_id = ?1", [peer], |r| r.get(0))
            .optional()?
            .unwrap_or_default())
    }

    /// Starts reading `peer`'s log (and its grants) again from 0: its log was replaced.
    pub fn reset_peer_read_cursor(&self, peer: &str, log_id: &str) -> Result<()> {
        let inner = self.lock();
        inner.conn.execute(
            "INSERT INTO peers (peer_id, read_seq, log_id, updated_at) VALUES (?1, 0, ?2, ?3)
             ON CONFLICT(peer_id) DO UPDATE SET read_seq = 0, grant_seq = 0, log_id = excluded.log_id,
                 updated_at = excluded.updated_at",
            params![peer, log_id, now_ms()],
        )?;
        Ok(())
    }

    /// Changes made here that `peer` has not durably acknowledged yet, and their size in bytes.
    pub fn unacknowledged(&self, peer: &str) -> Result<(u64, u64)> {
        count_and_bytes(
            &self.lock().conn,
            "local = 1 AND local_seq > coalesce((SELECT acked_seq FROM peers WHERE peer_id = ?1), 0)",
            params![peer],
        )
    }

    /// A child's log went back (restored from a backup): forget how much of it we hold, and stop
    /// treating its earlier changes as ones it has (they are sent back to it; duplicates are
    /// no-ops), in one transaction.
    pub fn forget_child_log(&self, child: &str) -> Result<()> {
        let inner = self.lock();
        let tx = inner.conn.unchecked_transaction()?;
        tx.execute("UPDATE peers SET read_seq = 0, updated_at = ?2 WHERE peer_id = ?1", params![child, now_ms()])?;
        tx.execute("UPDATE changes SET origin = NULL WHERE origin = ?1", [child])?;
        tx.commit()?;
        Ok(())
    }

    /// The newest sequence number of a change made on this replica (0 when none).
    pub fn last_local_seq(&self) -> Result<i64> {
        Ok(self
            .lock()
            .conn
            .query_row("SELECT coalesce(max(local_seq), 0) FROM changes WHERE local = 1", [], |r| r.get(0))?)
    }

    /// The newest sequence number in the log (0 when empty).
    pub fn last_seq(&self) -> Result<i64> {
        Ok(self.lock().conn.query_row("SELECT coalesce(max(local_seq), 0) FROM changes", [], |r| r.get(0))?)
    }

    /// How many changes in the log came from peers (on a relay: ingested from devices).
    pub fn remote_change_count(&self) -> Result<u64> {
        let n: i64 = self.lock().conn.query_row("SELECT count(*) FROM changes WHERE local = 0", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Records how far `peer` (a child) has read this log: what it said at its hello, then the end
    /// of each batch sent to it.
    ///
    /// Written without an fsync of its own: it only feeds an operator's view of the child's lag,
    /// and a power cut that loses the last few is repaired by the child's next hello. It becomes
    /// durable with the next commit that is (every ingest is). Measured under the relay load test,
    /// this write was most of the relay's fsyncs: one per batch sent.
    pub fn set_peer_delivered(&self, peer: &str, seq: i64) -> Result<()> {
        self.lock().without_fsync(|conn| {
            conn.prepare_cached(
                "INSERT INTO peers (peer_id, delivered_seq, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (peer_id) DO UPDATE SET delivered_seq = excluded.delivered_seq,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![peer, seq, now_ms()])?;
            Ok(())
        })
    }

    /// How far `peer` (a child) has read this log, as far as this store knows.
    pub fn peer_delivered(&self, peer: &str) -> Result<i64> {
        let inner = self.lock();
        let seq: Option<i64> = inner
            .conn
            .prepare_cached("SELECT delivered_seq FROM peers WHERE peer_id = ?1")?
            .query_row([peer], |r| r.get(0))
            .optional()?;
        Ok(seq.unwrap_or(0))
    }

    /// When the sync bookkeeping with `peer` last moved (a session pushed, pulled or
    /// acknowledged something), if it ever synced.
    pub fn peer_last_sync(&self, peer: &str) -> Result<Option<crate::time::Millis>> {
        let inner = self.lock();
        let at: Option<i64> = inner
            .conn
            .prepare_cached("SELECT updated_at FROM peers WHERE peer_id = ?1")?
            .query_row([peer], |r| r.get(0))
            .optional()?;
        Ok(at.filter(|at| *at > 0))
    }

    /// The records with changes after `after_seq`, and the newest sequence number: what a screen
    /// showing records needs to know to refresh after a sync or an edit.
    pub fn changed_records_since(&self, after_seq: i64) -> Result<(Vec<PatientId>, i64)> {
        let page = self.changed_records_page(after_seq, usize::MAX)?;
        let newest = page.last().map_or(after_seq, |(_, seq)| *seq);
        Ok((page.into_iter().map(|(id, _)| id).collect(), newest))
    }

    /// A page of the records changed after `after_seq`: at most `limit` records, each with the
    /// sequence number of its newest change, in that order. The next page starts after the last
    /// number of this one; a record changed again later shows up again there, and no record is
    /// skipped (every record left out of a full page has its newest change after the page's last).
    pub fn changed_records_page(&self, after_seq: i64, limit: usize) -> Result<Vec<(PatientId, i64)>> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(
            "SELECT doc_id, max(local_seq) AS newest FROM changes WHERE local_seq > ?1
             GROUP BY doc_id ORDER BY newest LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after_seq, limit.min(i64::MAX as usize) as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (doc, seq) = row?;
            out.push((doc.parse()?, seq));
        }
        Ok(out)
    }

    fn read_log(&self, filter: &str, after_seq: i64, limit: usize) -> Result<Vec<StoredChange>> {
        let inner = self.lock();
        let sql = format!(
            "SELECT local_seq, doc_id, hash, bytes, signature, local FROM changes WHERE {filter} ORDER BY local_seq LIMIT ?2"
        );
        let mut stmt = inner.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![after_seq, limit.min(i64::MAX as usize) as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, doc, hash, bytes, signature, local) = row?;
            out.push(stored_change(seq, &doc, &hash, bytes, signature, local)?);
        }
        Ok(out)
    }

    /// Applies changes received from a peer, in one transaction. Re-sent changes are no-ops;
    /// changes that are not valid automerge, too large, or refused by their document are
    /// reported in [`ApplyReport::rejected`] and nothing of them is stored. Changes whose
    /// dependencies have not arrived yet are stored and take effect when they do.
    pub fn apply_remote_changes(&self, batch: Vec<IncomingChange>) -> Result<ApplyReport> {
        self.apply(None, batch)
    }

    /// Like [`Store::apply_remote_changes`] for changes received from `peer` during sync: each
    /// new change remembers it came from `peer` (so it is never echoed back), and the cursor of
    /// `peer`'s log moves to `read_up_to` (with `log_id`) in the same transaction.
    pub fn apply_changes_from(
        &self,
        peer: Option<&str>,
        batch: Vec<IncomingChange>,
        read_up_to: Option<(i64, &str)>,
    ) -> Result<ApplyReport> {
        let cursor = match read_up_to {
            Some((up_to, log_id)) => CursorMove::Read { up_to, log_id },
            None => CursorMove::Unchanged,
        };
        self.apply(peer.map(|peer| Source { peer, cursor, enforce_scope: false }), batch)
    }

    /// A parent storing a child's pushed changes: each must be for a document in the child's
    /// scope, or new here (the child created it: it enters its scope); others are refused item by
    /// item. How much of the child's log we hold moves to `up_to` in the same transaction.
    pub fn ingest_from_child(&self, peer: &str, batch: Vec<IncomingChange>, up_to: i64) -> Result<ApplyReport> {
        self.apply(Some(Source { peer, cursor: CursorMove::Read { up_to, log_id: "" }, enforce_scope: true }), batch)
    }

    /// [`Store::ingest_from_child`] for the pushes of several children at once, as if one after
    /// the other, in one transaction: one fsync for all of them, and each record changed by
    /// several pushes has its view, indexes and scope written once. A result per push, in order.
    /// Should the shared transaction fail, each push is tried again on its own, so one push's
    /// error is never another's.
    pub fn ingest_group(&self, pushes: Vec<ChildPush>) -> Vec<Result<ApplyReport>> {
        if pushes.len() <= 1 {
            return pushes.into_iter().map(|p| self.ingest_from_child(&p.peer, p.items, p.up_to)).collect();
        }
        // Kept whole for a retry push by push; the group works on its decoded copy.
        let retry = pushes.clone();
        let mut pushes = pushes;
        let mut decoded: Vec<(ApplyReport, Batch)> =
            pushes.iter_mut().map(|p| decode(std::mem::take(&mut p.items))).collect();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut touched = Vec::new();
        let applied = inner.in_transaction(|inner| {
            let mut deferred = Deferred::default();
            for (push, (report, by_doc)) in pushes.iter().zip(decoded.iter_mut()) {
                let cursor = CursorMove::Read { up_to: push.up_to, log_id: "" };
                let source = Source { peer: &push.peer, cursor, enforce_scope: true };
                apply_batch(inner, std::mem::take(by_doc), report, &mut touched, Some(&source), &mut deferred)?;
            }
            deferred.flush_all(inner)
        });
        if let Err(e) = applied {
            for id in touched {
                inner.cache.pop(&id);
            }
            drop(guard);
            tracing::warn!(error = %e, pushes = retry.len(), "a group of pushes failed together; storing each on its own");
            return retry.into_iter().map(|p| self.ingest_from_child(&p.peer, p.items, p.up_to)).collect();
        }
        let mut changed: Vec<PatientId> = decoded.iter().flat_map(|(r, _)| r.changed.iter().copied()).collect();
        changed.sort_unstable();
        changed.dedup();
        if decoded.iter().any(|(r, _)| r.applied > 0) {
            inner.notify(false, Committed::Records(&changed));
        }
        decoded
            .into_iter()
            .map(|(mut report, _)| {
                report.rejected.sort_by_key(|r| r.index);
                Ok(report)
            })
            .collect()
    }

    /// A child storing a document its parent sent whole (it entered the child's scope), and its
    /// grant cursor, in one transaction. `doc: None` grants every document: the read cursor goes
    /// back to 0 so the whole log comes again (re-sent changes are no-ops).
    pub fn apply_snapshot_from(
        &self,
        parent: &str,
        grant: i64,
        doc: Option<PatientId>,
        bytes: &[u8],
        signatures: &[([u8; 32], Vec<u8>)],
    ) -> Result<ApplyReport> {
        let Some(doc_id) = doc else {
            return self.apply(
                Some(Source { peer: parent, cursor: CursorMove::Grant { grant, rewind: true }, enforce_scope: false }),
                vec![],
            );
        };
        let saved = Automerge::load(bytes).map_err(|e| Error::BadChange {
            reason: format!("snapshot of document {doc_id} is not an automerge document: {e}"),
        })?;
        let signature_of: BTreeMap<&[u8; 32], &Vec<u8>> = signatures.iter().map(|(h, s)| (h, s)).collect();
        let batch = saved
            .get_changes(&[])
            .into_iter()
            .map(|c| IncomingChange {
                doc_id,
                bytes: c.raw_bytes().to_vec(),
                signature: signature_of.get(&c.hash().0).map(|s| (*s).clone()),
            })
            .collect();
        self.apply(
            Some(Source { peer: parent, cursor: CursorMove::Grant { grant, rewind: false }, enforce_scope: false }),
            batch,
        )
    }

    /// A child deleting a record that left its scope (its parent said so at grant `grant`), and
    /// moving its grant cursor, in one transaction. Only that record goes: the child's unsynced
    /// edits to other records stay and are pushed as usual. Edits to the purged record that the
    /// parent had not acknowledged are lost with it (the parent would refuse them now).
    pub fn purge_document_from(&self, parent: &str, grant: i64, doc: PatientId) -> Result<()> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let tx = inner.conn.unchecked_transaction()?;
        let id = doc.to_string();
        let dropped = tx.execute("DELETE FROM changes WHERE doc_id = ?1", [&id])?;
        tx.execute("DELETE FROM docs WHERE doc_id = ?1", [&id])?;
        super::index::remove(&tx, doc)?;
        move_cursor(
            &tx,
            &Source { peer: parent, cursor: CursorMove::Grant { grant, rewind: false }, enforce_scope: false },
        )?;
        tx.commit()?;
        inner.cache.pop(&doc);
        tracing::info!(%doc, changes = dropped, "purged a record that left this device's scope");
        inner.notify(false, Committed::Records(&[doc]));
        Ok(())
    }

    pub(super) fn apply(&self, source: Option<Source<'_>>, batch: Vec<IncomingChange>) -> Result<ApplyReport> {
        let (mut report, by_doc) = decode(batch);
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut touched = Vec::new();
        let applied = inner.in_transaction(|inner| {
            let mut deferred = Deferred::default();
            apply_batch(inner, by_doc, &mut report, &mut touched, source.as_ref(), &mut deferred)?;
            deferred.flush_all(inner)
        });
        if let Err(e) = applied {
            // Nothing was committed: forget the documents that ran ahead of the disk.
            for id in touched {
                inner.cache.pop(&id);
            }
            return Err(e);
        }
        if report.applied > 0 {
            inner.notify(false, Committed::Records(&report.changed));
        }
        report.rejected.sort_by_key(|r| r.index);
        Ok(report)
    }

    /// The cursors stored for `peer`.
    pub fn peer_cursor(&self, peer: &str) -> Result<PeerCursor> {
        let inner = self.lock();
        Ok(inner
            .conn
            .query_row("SELECT acked_seq, read_seq FROM peers WHERE peer_id = ?1", [peer], |r| {
                Ok(PeerCursor { acked_seq: r.get(0)?, read_seq: r.get(1)? })
            })
            .optional()?
            .unwrap_or_default())
    }

    /// Stores the cursors for `peer`. Cursors only move forward.
    pub fn set_peer_cursor(&self, peer: &str, cursor: PeerCursor) -> Result<()> {
        let inner = self.lock();
        inner.conn.execute(
            "INSERT INTO peers (peer_id, acked_seq, read_seq, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(peer_id) DO UPDATE SET acked_seq = max(acked_seq, excluded.acked_seq),
                 read_seq = max(read_seq, excluded.read_seq), updated_at = excluded.updated_at",
            params![peer, cursor.acked_seq, cursor.read_seq, now_ms()],
        )?;
        Ok(())
    }
}

/// A log row as a [`StoredChange`]; a malformed row is reported, not trusted.
fn stored_change(
    seq: i64,
    doc: &str,
    hash: &[u8],
    bytes: Vec<u8>,
    signature: Option<Vec<u8>>,
    local: bool,
) -> Result<StoredChange> {
    Ok(StoredChange {
        seq,
        doc_id: doc.parse()?,
        hash: hash.try_into().map_err(|_| Error::CorruptDocument {
            doc_id: doc.to_string(),
            reason: format!("change {seq} has a hash of {} bytes", hash.len()),
        })?,
        bytes,
        signature,
        local,
    })
}

type Batch = BTreeMap<PatientId, Vec<(usize, Change, Option<Vec<u8>>)>>;

/// Where a batch of remote changes came from, and what moves with it.
pub(super) struct Source<'a> {
    pub(super) peer: &'a str,
    pub(super) cursor: CursorMove<'a>,
    /// A parent ingesting a child's push: refuse documents outside the child's scope.
    pub(super) enforce_scope: bool,
}

/// The cursor committed in the same transaction as a batch.
pub(super) enum CursorMove<'a> {
    Unchanged,
    /// How far we have read the peer's log (and which log that is).
    Read {
        up_to: i64,
        log_id: &'a str,
    },
    /// How far we have read the peer's grants for us; `rewind` (a grant of every document) also
    /// reads the peer's log again from 0.
    Grant {
        grant: i64,
        rewind: bool,
    },
    /// A page of a catch-up of the peer's log `log_id`: where it stands (`last`), or, on its last
    /// page (`last: None`), the read cursor at `head` and the grant cursor at `grant`.
    CatchUp {
        head: i64,
        grant: i64,
        last: Option<[u8; 16]>,
        log_id: &'a str,
    },
}

/// Splits a batch by document, refusing what is too large or not an automerge change.
fn decode(batch: Vec<IncomingChange>) -> (ApplyReport, Batch) {
    let mut report = ApplyReport::default();
    let mut by_doc: Batch = BTreeMap::new();
    for (index, incoming) in batch.into_iter().enumerate() {
        if incoming.bytes.len() > MAX_CHANGE_BYTES {
            report.rejected.push(RejectedChange {
                index,
                reason: format!("change is {} bytes, more than the {MAX_CHANGE_BYTES} allowed", incoming.bytes.len()),
            });
            continue;
        }
        match decode_change(&incoming.bytes) {
            Ok(change) => by_doc.entry(incoming.doc_id).or_default().push((index, change, incoming.signature)),
            Err(e) => report.rejected.push(RejectedChange { index, reason: e.to_string() }),
        }
    }
    (report, by_doc)
}

/// Documents a transaction changed whose record view, row, indexes and scope are written once,
/// before it commits (or earlier, when a later batch needs the document's scope as it stands):
/// with several pushes in one transaction, a record several of them change is read and written
/// once. Each holds the document, how many changes were stored for it and what they touched.
#[derive(Default)]
struct Deferred(BTreeMap<PatientId, (Loaded, usize, Touched)>);

impl Deferred {
    /// Writes one document's view and row, and puts it back in the cache.
    fn flush(&mut self, inner: &mut Inner, doc_id: PatientId) -> Result<()> {
        let Some((mut loaded, stored, touched)) = self.0.remove(&doc_id) else {
            return Ok(());
        };
        loaded.refresh_touched(doc_id, &touched);
        write_doc_row(&inner.conn, doc_id, &loaded, stored, i64::from(inner.options.compact_every.max(1)))?;
        inner.cache.put(doc_id, loaded);
        Ok(())
    }

    /// Whether `peer` may see and write `doc_id` as the transaction stands. Who sees a record
    /// follows its team and referrals: for one this transaction changed, its scope is derived
    /// first, as if the earlier push had committed.
    fn in_scope(&mut self, inner: &mut Inner, peer: &str, doc_id: PatientId) -> Result<bool> {
        if in_scope(&inner.conn, peer, doc_id)? {
            return Ok(true);
        }
        if !self.0.contains_key(&doc_id) {
            return Ok(false);
        }
        self.flush(inner, doc_id)?;
        in_scope(&inner.conn, peer, doc_id)
    }

    fn flush_all(&mut self, inner: &mut Inner) -> Result<()> {
        while let Some(&doc_id) = self.0.keys().next() {
            self.flush(inner, doc_id)?;
        }
        Ok(())
    }
}

fn apply_batch(
    inner: &mut Inner,
    by_doc: Batch,
    report: &mut ApplyReport,
    touched: &mut Vec<PatientId>,
    source: Option<&Source<'_>>,
    deferred: &mut Deferred,
) -> Result<()> {
    let origin = source.map(|s| s.peer);
    // An enrolled phone may push only the changes it authored (a hub forwards its phones').
    let own_key = match source.filter(|s| s.enforce_scope) {
        Some(source) => own_changes_only(&inner.conn, source.peer)?,
        None => None,
    };
    for (doc_id, items) in by_doc {
        let on_disk = exists(&inner.conn, doc_id)?;
        let pending = deferred.0.contains_key(&doc_id);
        let known_doc = on_disk || pending;
        if let Some(source) = source.filter(|s| s.enforce_scope)
            && known_doc
            && !deferred.in_scope(inner, source.peer, doc_id)?
        {
            // Already-stored changes are harmless no-ops; anything new is refused.
            for (index, change, _) in items {
                if is_stored(&inner.conn, &change)? {
                    report.duplicates += 1;
                } else {
                    report.rejected.push(RejectedChange {
                        index,
                        reason: format!("document {doc_id} is outside the scope of {}", source.peer),
                    });
                }
            }
            continue;
        }
        let checked = source.filter(|s| s.enforce_scope);
        let mut fresh = Vec::new();
        for (index, change, signature) in items {
            let stored = is_stored(&inner.conn, &change)?;
            if !stored
                && let Some(source) = checked
                && let Err(reason) =
                    check_signed(&inner.conn, doc_id, &change, signature.as_deref(), own_key.as_deref())?
            {
                tracing::warn!(child = %source.peer, %reason, "refused a change");
                report.rejected.push(RejectedChange { index, reason });
                continue;
            }
            if stored || fresh.iter().any(|(_, c, _): &(usize, Change, _)| c.hash() == change.hash()) {
                report.duplicates += 1;
            } else {
                fresh.push((index, change, signature));
            }
        }
        if fresh.is_empty() {
            continue;
        }
        touched.push(doc_id);
        let fresh_doc = || Loaded { doc: Automerge::new(), record: None };
        // As committed so far in this transaction: the disk's snapshot and the changes stored
        // after it (for a record new in this transaction, every change stored for it).
        let committed = |inner: &Inner| match (on_disk, pending) {
            (true, _) => inner.load(doc_id),
            (false, true) => inner.rebuild_from_log(doc_id),
            (false, false) => Ok(fresh_doc()),
        };
        let (mut loaded, stored_before, mut touched) = match deferred.0.remove(&doc_id) {
            Some(held) => held,
            None => match inner.cache.pop(&doc_id) {
                Some(loaded) => (loaded, 0, Touched::Nothing),
                None => (committed(inner)?, 0, Touched::Nothing),
            },
        };
        // Happy path: the whole batch at once, noting what it touched in the record. If automerge
        // refuses it, start again from the committed document and apply one change at a time, so
        // only the bad ones are refused (and read the record whole after).
        let all: Vec<Change> = fresh.iter().map(|(_, c, _)| c.clone()).collect();
        // A document without a record yet (new here) is read whole anyway: no patches to log.
        let mut patches = if loaded.record.is_some() { PatchLog::active() } else { PatchLog::inactive() };
        let accepted: Vec<ChangeToStore> = if loaded.doc.apply_changes_log_patches(all, &mut patches).is_ok() {
            if loaded.record.is_some() {
                touched.add_patches(&loaded.doc.make_patches(&mut patches));
            } else {
                touched = Touched::Everything;
            }
            fresh.into_iter().map(|(_, change, signature)| ChangeToStore { change, signature, local: false }).collect()
        } else {
            touched = Touched::Everything;
            loaded = committed(inner)?;
            let mut accepted = Vec::new();
            for (index, change, signature) in fresh {
                let mut trial = loaded.doc.fork();
                match trial.apply_changes([change.clone()]) {
                    Ok(()) => {
                        loaded.doc = trial;
                        accepted.push(ChangeToStore { change, signature, local: false });
                    }
                    Err(e) => report
                        .rejected
                        .push(RejectedChange { index, reason: format!("document {doc_id} refused the change: {e}") }),
                }
            }
            accepted
        };
        inner.adopt(&mut loaded.doc);
        let mut stored = stored_before;
        if !accepted.is_empty() {
            stored += accepted.len();
            report.applied += store_changes(&inner.conn, doc_id, &accepted, origin)?;
            if let Some(source) = source.filter(|s| s.enforce_scope && !known_doc) {
                record_created(&inner.conn, source.peer, doc_id)?;
            }
            report.changed.push(doc_id);
        }
        if stored > 0 {
            deferred.0.insert(doc_id, (loaded, stored, touched));
        } else {
            inner.cache.put(doc_id, loaded);
        }
    }
    if let Some(source) = source {
        move_cursor(&inner.conn, source)?;
    }
    Ok(())
}

/// Whether a change a child pushed is attributable: signed by the device that owns its actor.
/// Automerge names the author (the device key) only in an actor's first change; the parent binds
/// the actor to that key then (first binding wins) and checks every later change of the actor
/// against it. The genesis change, identical on every device, is the one unsigned change.
/// `Ok(Err(reason))` refuses the change.
fn check_signed(
    conn: &rusqlite::Connection,
    doc_id: PatientId,
    change: &Change,
    signature: Option<&[u8]>,
    own_key: Option<&[u8]>,
) -> Result<std::result::Result<(), String>> {
    let hash = change.hash();
    let short = crate::identity::hex(&hash.0[..6]);
    if crate::document::is_genesis(doc_id, change)? {
        return Ok(Ok(()));
    }
    let actor = change.actor_id().to_bytes().to_vec();
    let actor_hex = crate::identity::hex(&actor[..actor.len().min(8)]);
    let bound: Option<Vec<u8>> = conn
        .prepare_cached("SELECT author FROM actors WHERE actor = ?1")?
        .query_row([&actor], |r| r.get(0))
        .optional()?;
    let named = change.author().map(|a| a.as_bytes().to_vec());
    let author = match (named, &bound) {
        (Some(named), Some(bound)) if &named != bound => {
            return Ok(Err(format!("change {short}: actor {actor_hex} belongs to another device")));
        }
        (Some(named), _) => named,
        (None, Some(bound)) => bound.clone(),
        (None, None) => {
            return Ok(Err(format!(
                "change {short}: actor {actor_hex} is unknown here (its first change, which names its device, has not arrived)"
            )));
        }
    };
    if let Some(own) = own_key
        && own != author.as_slice()
    {
        return Ok(Err(format!(
            "change {short} was authored by device {}; a phone may push only its own changes",
            crate::identity::hex(&author[..author.len().min(8)])
        )));
    }
    let Some(signature) = signature else {
        return Ok(Err(format!("change {short} is not signed")));
    };
    if !crate::identity::verify_signature(&author, &hash.0, signature) {
        return Ok(Err(format!(
            "change {short}: the signature is not by its device {}",
            crate::identity::hex(&author[..author.len().min(8)])
        )));
    }
    if bound.is_none() {
        conn.prepare_cached("INSERT INTO actors (actor, author) VALUES (?1, ?2)")?.execute(params![actor, author])?;
    }
    Ok(Ok(()))
}

/// SQL condition on the log: the changes after `?1` that peer `?2` may see and did not send.
///
/// A peer scoped to listed records (a team's phone) reads them through the per-record index, so
/// its cost follows its own records, not everything the county pushed since its cursor; a peer
/// that sees everything (a `*` row: a hub) reads the log in order.
pub(crate) fn for_peer(conn: &rusqlite::Connection, peer: &str) -> Result<&'static str> {
    let everything = conn
        .prepare_cached("SELECT 1 FROM scope WHERE peer_id = ?1 AND doc_id = '*'")?
        .query_row([peer], |_| Ok(()))
        .optional()?
        .is_some();
    Ok(if everything {
        "local_seq > ?1 AND coalesce(origin, '') != ?2"
    } else {
        "doc_id IN (SELECT doc_id FROM scope WHERE peer_id = ?2 AND reason != 'purge')
         AND local_seq > ?1 AND coalesce(origin, '') != ?2"
    })
}

/// How many log rows match `filter`, and the size of their changes in bytes.
pub(crate) fn count_and_bytes(
    conn: &rusqlite::Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> Result<(u64, u64)> {
    let sql = format!("SELECT count(*), coalesce(sum(length(bytes)), 0) FROM changes WHERE {filter}");
    let (count, bytes): (i64, i64) = conn.prepare_cached(&sql)?.query_row(args, |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((count.max(0) as u64, bytes.max(0) as u64))
}

fn is_stored(conn: &rusqlite::Connection, change: &Change) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM changes WHERE hash = ?1")?
        .query_row([change.hash().0.to_vec()], |_| Ok(()))
        .optional()?
        .is_some())
}

fn move_cursor(conn: &rusqlite::Connection, source: &Source<'_>) -> Result<()> {
    let peer = source.peer;
    match source.cursor {
        CursorMove::Unchanged => {}
        CursorMove::Read { up_to, log_id } => {
            conn.prepare_cached(
                "INSERT INTO peers (peer_id, read_seq, log_id, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(peer_id) DO UPDATE SET read_seq = max(read_seq, excluded.read_seq),
                     log_id = excluded.log_id, updated_at = excluded.updated_at",
            )?
            .execute(params![peer, up_to, log_id, now_ms()])?;
        }
        CursorMove::Grant { grant, rewind } => {
            conn.prepare_cached(
                "INSERT INTO peers (peer_id, grant_seq, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(peer_id) DO UPDATE SET grant_seq = max(grant_seq, excluded.grant_seq),
                     read_seq = CASE WHEN ?4 THEN 0 ELSE read_seq END, updated_at = excluded.updated_at",
            )?
            .execute(params![peer, grant, now_ms(), rewind])?;
        }
        CursorMove::CatchUp { head, grant, last: Some(after), log_id } => {
            conn.prepare_cached(
                "INSERT INTO peers (peer_id, log_id, catch_up_head, catch_up_grant, catch_up_after, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(peer_id) DO UPDATE SET log_id = excluded.log_id, catch_up_head = excluded.catch_up_head,
                     catch_up_grant = excluded.catch_up_grant, catch_up_after = excluded.catch_up_after,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![peer, log_id, head, grant, after.to_vec(), now_ms()])?;
        }
        CursorMove::CatchUp { head, grant, last: None, log_id } => {
            conn.prepare_cached(
                "INSERT INTO peers (peer_id, read_seq, grant_seq, log_id, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(peer_id) DO UPDATE SET read_seq = max(read_seq, excluded.read_seq),
                     grant_seq = max(grant_seq, excluded.grant_seq), log_id = excluded.log_id,
                     catch_up_head = NULL, catch_up_grant = NULL, catch_up_after = NULL,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![peer, head, grant, log_id, now_ms()])?;
        }
    }
    Ok(())
}
