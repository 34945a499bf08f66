//! Applying changes received from a peer, idempotently (by hash): a child's pushes grouped into
//! one transaction, a parent's pulls, snapshots and purges; who may write what; signatures.

use super::cursors::move_cursor;
use super::*;
use crate::document::decode_change;
use crate::store::directory::own_changes_only;
use crate::store::docs::{ChangeToStore, Loaded, StoredDoc, exists, is_registered, store_changes, write_doc_row};
use crate::store::scope::{may_write, record_created};
use crate::store::{Committed, Inner, Store};
use crate::time::Millis;
use crate::{Error, PatientId, Result};
use automerge::{Automerge, Change, ChangeHash};
use rusqlite::{OptionalExtension, params};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

impl Store {
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
        self.apply(Some(Source { peer, cursor: CursorMove::Pushed { up_to, mark: None }, enforce_scope: true }), batch)
    }

    /// [`Store::ingest_from_child`] for the pushes of several children at once, as if one after
    /// the other, in one transaction: one fsync for all of them, and each record changed by
    /// several pushes has its row, indexes and scope written once. A result per push, in order.
    /// Should the shared transaction fail, each push is tried again on its own, so one push's
    /// error is never another's.
    pub fn ingest_group(&self, pushes: Vec<ChildPush>) -> Vec<Result<ApplyReport>> {
        match self.store_pushes(&pushes) {
            Ok(reports) => reports.into_iter().map(Ok).collect(),
            Err(e) if pushes.len() > 1 => {
                tracing::warn!(error = %e, pushes = pushes.len(), "a group of pushes failed together; storing each on its own");
                pushes
                    .iter()
                    .map(|push| self.store_pushes(std::slice::from_ref(push)).map(|mut one| one.remove(0)))
                    .collect()
            }
            Err(e) => vec![Err(e)],
        }
    }

    /// Stores `pushes` in one transaction, or nothing of them; a report per push.
    fn store_pushes(&self, pushes: &[ChildPush]) -> Result<Vec<ApplyReport>> {
        let decoded: Vec<(ApplyReport, Batch<'_>)> =
            pushes.iter().map(|p| decode(&p.items, p.prepared.as_ref())).collect();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut group = Group::new();
        let began = Instant::now();
        let mut settled = None;
        let applied = inner.in_transaction(|inner| {
            for (push, (report, by_doc)) in pushes.iter().zip(decoded) {
                let mark = push.last_seq.zip(last_hash(&by_doc, push.items.len()));
                let cursor = CursorMove::Pushed { up_to: push.up_to, mark };
                let source = Source { peer: &push.peer, cursor, enforce_scope: true };
                group.add_batch(inner, by_doc, report, Some(&source))?;
            }
            group.settle_all(inner)?;
            settled = Some(Instant::now());
            Ok(())
        });
        if let Some(settled) = settled {
            self.contention.ingested(settled - began, group.applying, settled.elapsed());
        }
        if let Err(e) = applied {
            // Nothing was committed: forget the documents that ran ahead of the disk.
            for id in group.touched {
                inner.cache.pop(&id);
            }
            return Err(e);
        }
        let mut changed: Vec<PatientId> = group.reports.iter().flat_map(|r| r.changed.iter().copied()).collect();
        changed.sort_unstable();
        changed.dedup();
        if group.reports.iter().any(|r| r.applied > 0) {
            inner.notify(false, Committed::Records(&changed));
        }
        Ok(group.reports.into_iter().map(finished).collect())
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
        waiting: &[(Vec<u8>, Option<Vec<u8>>)],
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
        // The changes that wait for a dependency at the parent come too: the child's cursor may
        // be past them in the parent's log.
        let batch = saved
            .get_changes(&[])
            .into_iter()
            .map(|c| IncomingChange {
                doc_id,
                bytes: c.raw_bytes().to_vec(),
                signature: signature_of.get(&c.hash().0).map(|s| (*s).clone()),
            })
            .chain(waiting.iter().map(|(bytes, signature)| IncomingChange {
                doc_id,
                bytes: bytes.clone(),
                signature: signature.clone(),
            }))
            .collect();
        self.apply(
            Some(Source { peer: parent, cursor: CursorMove::Grant { grant, rewind: false }, enforce_scope: false }),
            batch,
        )
    }

    /// A child deleting a record that left its scope (its parent said so at grant `grant`), and
    /// moving its grant cursor, in one transaction. The record goes from every list at once. The
    /// child's own edits to it that the parent has not acknowledged stay in its log, unreadable
    /// here: a push delivers them (the parent takes late edits to a record that left a device's
    /// scope), and they stay after it (should the record come back, a snapshot read before they
    /// arrived would lack them, and the parent never sends a child its own changes). Its own
    /// changes deleted leave their positions and hashes behind, so its log keeps the head and
    /// identity the parent acknowledged.
    pub fn purge_document_from(&self, parent: &str, grant: i64, doc: PatientId) -> Result<()> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let tx = inner.conn.unchecked_transaction()?;
        let id = doc.to_string();
        let acked: i64 = tx
            .prepare_cached("SELECT acked_seq FROM peers WHERE peer_id = ?1")?
            .query_row([parent], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        tx.prepare_cached(
            "INSERT OR IGNORE INTO purged_log (local_seq, hash)
             SELECT local_seq, hash FROM changes WHERE doc_id = ?1 AND local = 1 AND local_seq <= ?2",
        )?
        .execute(params![&id, acked])?;
        let dropped = tx
            .prepare_cached("DELETE FROM changes WHERE doc_id = ?1 AND NOT (local = 1 AND local_seq > ?2)")?
            .execute(params![&id, acked])?;
        let kept: i64 =
            tx.prepare_cached("SELECT count(*) FROM changes WHERE doc_id = ?1")?.query_row([&id], |r| r.get(0))?;
        if kept > 0 {
            tx.prepare_cached("INSERT OR REPLACE INTO purge_waiting (doc_id, parent) VALUES (?1, ?2)")?
                .execute(params![&id, parent])?;
        }
        tx.prepare_cached("DELETE FROM docs WHERE doc_id = ?1")?.execute([&id])?;
        crate::store::index::remove(&tx, doc)?;
        move_cursor(
            &tx,
            &Source { peer: parent, cursor: CursorMove::Grant { grant, rewind: false }, enforce_scope: false },
            inner.now(),
        )?;
        tx.commit()?;
        inner.cache.pop(&doc);
        tracing::info!(%doc, changes = dropped, waiting = kept, "purged a record that left this device's scope");
        inner.notify(false, Committed::Records(&[doc]));
        Ok(())
    }

    pub(crate) fn apply(&self, source: Option<Source<'_>>, batch: Vec<IncomingChange>) -> Result<ApplyReport> {
        let (report, by_doc) = decode(&batch, None);
        drop(batch);
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut group = Group::new();
        let applied = inner.in_transaction(|inner| {
            group.add_batch(inner, by_doc, report, source.as_ref())?;
            group.settle_all(inner)
        });
        if let Err(e) = applied {
            // Nothing was committed: forget the documents that ran ahead of the disk.
            for id in group.touched {
                inner.cache.pop(&id);
            }
            return Err(e);
        }
        let report = group.reports.pop().map(finished).unwrap_or_default();
        if report.applied > 0 {
            inner.notify(false, Committed::Records(&report.changed));
        }
        Ok(report)
    }
}

/// A record registered here for the first time is in the scope of the phone that made it, by
/// whichever path its registration came (its own push, or a hub forwarding it): the author of
/// the record's first change, when that is a phone enrolled here.
pub(super) fn creator_scope(
    conn: &rusqlite::Connection,
    doc: PatientId,
    automerge: &Automerge,
    now: Millis,
) -> Result<()> {
    // The record's skeleton change is shared and unsigned: the first change that names its
    // author is the registration.
    let Some(author) = automerge.get_changes(&[]).into_iter().find_map(|c| c.author().map(|a| a.as_bytes().to_vec()))
    else {
        return Ok(());
    };
    let device: Option<String> = conn
        .prepare_cached(
            "SELECT device_id FROM devices WHERE public_key = ?1 AND kind = 'phone' AND revoked_at IS NULL",
        )?
        .query_row([author], |r| r.get(0))
        .optional()?;
    if let Some(device) = device {
        record_created(conn, &device, doc, now)?;
    }
    Ok(())
}

pub(super) type Batch<'p> = BTreeMap<PatientId, Vec<Received<'p>>>;

/// A change of a batch, decoded.
pub(super) struct Received<'p> {
    /// Its position in the batch.
    index: usize,
    change: Change,
    signature: Option<Vec<u8>>,
    /// The key its signature was found to be by, ahead of storing (see [`ChildPush::check_ahead`]).
    checked_with: Option<&'p [u8]>,
}

/// Splits a batch by document, refusing what is too large or not an automerge change. Changes
/// decoded ahead (`prepared`) are taken as they are, with whose key their signature was checked by.
pub(super) fn decode<'p>(batch: &[IncomingChange], prepared: Option<&'p Prepared>) -> (ApplyReport, Batch<'p>) {
    let mut report = ApplyReport::default();
    let mut by_doc: Batch<'_> = BTreeMap::new();
    let ahead = prepared.filter(|p| p.changes.len() == batch.len());
    for (index, incoming) in batch.iter().enumerate() {
        if incoming.bytes.len() > MAX_CHANGE_BYTES {
            report.rejected.push(RejectedChange {
                index,
                reason: format!("change is {} bytes, more than the {MAX_CHANGE_BYTES} allowed", incoming.bytes.len()),
            });
            continue;
        }
        let decoded_ahead = ahead
            .and_then(|p| {
                p.changes[index].as_ref().map(|(change, signed)| (change, signed.then_some(p.key.as_slice())))
            })
            .filter(|(change, _)| change.raw_bytes() == incoming.bytes.as_slice());
        let (change, checked_with) = match decoded_ahead {
            Some((change, checked_with)) => (change.clone(), checked_with),
            None => match decode_change(&incoming.bytes) {
                Ok(change) => (change, None),
                Err(e) => {
                    report.rejected.push(RejectedChange { index, reason: e.to_string() });
                    continue;
                }
            },
        };
        by_doc.entry(incoming.doc_id).or_default().push(Received {
            index,
            change,
            signature: incoming.signature.clone(),
            checked_with,
        });
    }
    (report, by_doc)
}

/// A batch's report as returned: its refusals in the batch's order, its records in id order.
pub(super) fn finished(mut report: ApplyReport) -> ApplyReport {
    report.rejected.sort_by_key(|r| r.index);
    report.changed.sort_unstable();
    report
}

/// A change received in a transaction, waiting to be applied to its document.
pub(super) struct Queued {
    /// The batch of the transaction it came in (whose report tells of it).
    batch: usize,
    /// Its position in that batch.
    index: usize,
    change: Change,
    signature: Option<Vec<u8>>,
}

/// A record a transaction changes. The changes received for it wait here and are applied to the
/// document together when the record settles: several records at once on the machine's cores
/// (automerge and reading the record are most of the cost of ingesting), then, one record after
/// the other on the connection, their changes are stored and the record's row, indexes and scope
/// written once.
pub(super) struct Pending {
    loaded: Loaded,
    /// The document as stored, when it was not loaded: opened by [`Pending::apply`] (in
    /// parallel), then `loaded`.
    stored: Option<StoredDoc>,
    queued: Vec<Queued>,
    /// The batch (and child) whose push created the record here: it enters that child's scope.
    created_by: Option<(usize, String)>,
    /// What [`Pending::apply`] made of the queued changes.
    applied: Applied,
    /// A record purged here came back with nothing new: every change of it stayed in the log (our
    /// own, unacknowledged when it was purged). Its row is written again all the same.
    revive: bool,
}

/// Whether a record's queued changes applied together.
pub(super) enum Applied {
    /// Not tried yet.
    Waiting,
    /// They did, and the record is up to date.
    Together,
    /// Automerge refused them together: they are tried one by one from the stored document.
    Refused,
}

impl Pending {
    /// Applies the queued changes to the document and brings the record up to date.
    /// Touches nothing but itself, so records apply in parallel.
    fn apply(&mut self, doc_id: PatientId) {
        if let Some(stored) = self.stored.take() {
            match stored.open(doc_id) {
                Ok(loaded) => self.loaded = loaded,
                // Storing reads it again on the connection (which can rebuild it from the log).
                Err(_) => {
                    self.applied = Applied::Refused;
                    return;
                }
            }
        }
        let all: Vec<Change> = self.queued.iter().map(|q| q.change.clone()).collect();
        self.applied = match self.loaded.apply_changes(doc_id, all) {
            Ok(()) => Applied::Together,
            Err(_) => Applied::Refused,
        };
    }
}

/// The records one transaction changes, for one batch of remote changes or for the pushes of
/// several children stored together; a report per batch. A record several batches change is
/// applied, read and written once, before the transaction commits (or earlier, when a later
/// batch needs the record's scope as it stands).
pub(super) struct Group<'a> {
    reports: Vec<ApplyReport>,
    /// Where each batch came from (its new changes remember it).
    origins: Vec<Option<&'a str>>,
    pending: BTreeMap<PatientId, Pending>,
    /// Hashes of the changes queued so far: a second copy in the transaction is a duplicate.
    queued: HashSet<ChangeHash>,
    /// (batch, record): late edits, stored with no origin.
    late: HashSet<(usize, PatientId)>,
    /// Records whose loaded document ran ahead of the disk: forgotten if the transaction fails.
    touched: Vec<PatientId>,
    /// Time spent applying changes to records so far (see [`crate::IngestTime::applying`]).
    applying: Duration,
}

impl<'a> Group<'a> {
    fn new() -> Group<'a> {
        Group {
            reports: Vec::new(),
            origins: Vec::new(),
            pending: BTreeMap::new(),
            queued: HashSet::new(),
            late: HashSet::new(),
            touched: Vec::new(),
            applying: Duration::ZERO,
        }
    }

    /// Checks a batch (scope, duplicates, signatures) and queues its new changes; moves the
    /// source's cursor. `report` holds what decoding already refused.
    fn add_batch(
        &mut self,
        inner: &mut Inner,
        by_doc: Batch<'_>,
        report: ApplyReport,
        source: Option<&Source<'a>>,
    ) -> Result<()> {
        let batch = self.reports.len();
        self.reports.push(report);
        self.origins.push(source.map(|s| s.peer));
        let checked = source.filter(|s| s.enforce_scope);
        // An enrolled phone may push only the changes it authored (a hub forwards its phones').
        let own_key = match checked {
            Some(source) => own_changes_only(&inner.conn, source.peer)?,
            None => None,
        };
        for (doc_id, items) in by_doc {
            self.add_document(inner, batch, doc_id, items, checked, own_key.as_deref())?;
        }
        if let Some(source) = source {
            move_cursor(&inner.conn, source, inner.now())?;
        }
        Ok(())
    }

    fn add_document(
        &mut self,
        inner: &mut Inner,
        batch: usize,
        doc_id: PatientId,
        items: Vec<Received<'_>>,
        checked: Option<&Source<'a>>,
        own_key: Option<&[u8]>,
    ) -> Result<()> {
        let on_disk = exists(&inner.conn, doc_id)?;
        // A record known here only by changes that came before its registration (by another
        // path: a hub, another node) has nothing scope could follow yet: the push that brings its
        // registration creates it, as if it were new.
        let known_doc = (on_disk && is_registered(&inner.conn, doc_id)?) || self.pending.contains_key(&doc_id);
        let right = match checked {
            Some(source) if known_doc => self.may_write(inner, source.peer, doc_id)?,
            _ => Some(true),
        };
        if right == Some(false) {
            // A late edit: stored as if from nowhere, so that it flows back to this child should
            // the record return (a snapshot read before it arrived would lack it, and the child
            // deletes its own changes of a purged record once they are acknowledged).
            self.late.insert((batch, doc_id));
        }
        if let Some(source) = checked
            && right.is_none()
        {
            // Already-stored changes are harmless no-ops; anything new is refused.
            for Received { index, change, .. } in items {
                if self.is_stored(&inner.conn, &change)? {
                    self.reports[batch].duplicates += 1;
                } else {
                    self.reports[batch].rejected.push(RejectedChange {
                        index,
                        reason: format!("document {doc_id} is outside the scope of {}", source.peer),
                    });
                }
            }
            return Ok(());
        }
        let mut fresh = Vec::new();
        for Received { index, change, signature, checked_with } in items {
            if self.is_stored(&inner.conn, &change)? {
                self.reports[batch].duplicates += 1;
                continue;
            }
            if let Some(source) = checked
                && let Err(reason) =
                    check_signed(&inner.conn, doc_id, &change, signature.as_deref(), own_key, checked_with)?
            {
                tracing::warn!(child = %source.peer, %reason, "refused a change");
                self.reports[batch].rejected.push(RejectedChange { index, reason });
                continue;
            }
            self.queued.insert(change.hash());
            fresh.push(Queued { batch, index, change, signature });
        }
        if fresh.is_empty() {
            // From our parent, a record we purged whose every change we kept: readable again.
            if checked.is_none()
                && !on_disk
                && !self.pending.contains_key(&doc_id)
                && let Some(stored) = inner.read_purged_waiting(doc_id)?
            {
                self.touched.push(doc_id);
                let loaded = Loaded { doc: Automerge::new(), record: None };
                let (queued, created_by, applied) = (Vec::new(), None, Applied::Waiting);
                let pending = Pending { loaded, stored: Some(stored), queued, created_by, applied, revive: true };
                self.pending.insert(doc_id, pending);
            }
            return Ok(());
        }
        if !self.pending.contains_key(&doc_id) {
            let empty = || Loaded { doc: Automerge::new(), record: None };
            let (loaded, stored) = match inner.cache.pop(&doc_id) {
                Some(loaded) => (loaded, None),
                // Read now, parsed with the group's other records.
                None if on_disk => (empty(), Some(inner.read_stored(doc_id)?)),
                None => (empty(), inner.read_purged_waiting(doc_id)?),
            };
            self.touched.push(doc_id);
            let created_by = checked.filter(|_| !known_doc).map(|s| (batch, s.peer.to_string()));
            let applied = Applied::Waiting;
            let pending = Pending { loaded, stored, queued: Vec::new(), created_by, applied, revive: false };
            self.pending.insert(doc_id, pending);
        }
        if let Some(pending) = self.pending.get_mut(&doc_id) {
            pending.queued.extend(fresh);
        }
        Ok(())
    }

    /// Stored before this transaction or earlier in it, or queued in it already.
    fn is_stored(&self, conn: &rusqlite::Connection, change: &Change) -> Result<bool> {
        Ok(self.queued.contains(&change.hash()) || is_stored(conn, change)?)
    }

    /// Whether `peer` may write `doc_id` as the transaction stands. Who sees a record follows its
    /// team and referrals: for one this transaction changes, it settles first, as if the earlier
    /// batch had committed.
    fn may_write(&mut self, inner: &mut Inner, peer: &str, doc_id: PatientId) -> Result<Option<bool>> {
        if let Some(readable) = may_write(&inner.conn, peer, doc_id)? {
            return Ok(Some(readable));
        }
        if !self.pending.contains_key(&doc_id) {
            return Ok(None);
        }
        self.settle(inner, vec![doc_id])?;
        may_write(&inner.conn, peer, doc_id)
    }

    /// Applies the queued changes of `ids` (in parallel), then stores them and writes each
    /// record once, in order.
    fn settle(&mut self, inner: &mut Inner, ids: Vec<PatientId>) -> Result<()> {
        let mut records: Vec<(PatientId, Pending)> =
            ids.into_iter().filter_map(|id| self.pending.remove(&id).map(|p| (id, p))).collect();
        let began = Instant::now();
        crate::store::parallel::each(&mut records, |(id, pending)| pending.apply(*id));
        self.applying += began.elapsed();
        for (doc_id, pending) in records {
            self.store(inner, doc_id, pending)?;
        }
        Ok(())
    }

    /// Stores a record's applied changes with its row. If automerge refused them together, they
    /// are tried one at a time from the document as stored, so only the bad ones are refused.
    fn store(&mut self, inner: &mut Inner, doc_id: PatientId, pending: Pending) -> Result<()> {
        let Pending { mut loaded, queued, created_by, applied, revive, .. } = pending;
        let revived = revive && matches!(applied, Applied::Together);
        let accepted = match applied {
            Applied::Together => queued,
            Applied::Refused | Applied::Waiting => {
                loaded = if exists(&inner.conn, doc_id)? {
                    inner.load(doc_id)?
                } else {
                    Loaded { doc: Automerge::new(), record: None }
                };
                let mut accepted = Vec::new();
                for queued in queued {
                    let mut trial = loaded.doc.fork();
                    match trial.apply_changes([queued.change.clone()]) {
                        Ok(()) => {
                            loaded.doc = trial;
                            accepted.push(queued);
                        }
                        Err(e) => {
                            self.queued.remove(&queued.change.hash());
                            self.reports[queued.batch].rejected.push(RejectedChange {
                                index: queued.index,
                                reason: format!("document {doc_id} refused the change: {e}"),
                            });
                        }
                    }
                }
                loaded.refresh(doc_id);
                accepted
            }
        };
        inner.adopt(&mut loaded.doc);
        if accepted.is_empty() && !revived {
            inner.cache.put(doc_id, loaded);
            return Ok(());
        }
        // Each batch's changes in one run (they were queued batch after batch).
        for run in accepted.chunk_by(|a, b| a.batch == b.batch) {
            let batch = run[0].batch;
            let origin = if self.late.contains(&(batch, doc_id)) { None } else { self.origins[batch] };
            let changes: Vec<ChangeToStore> = run
                .iter()
                .map(|q| ChangeToStore { change: q.change.clone(), signature: q.signature.clone(), local: false })
                .collect();
            self.reports[batch].applied += store_changes(&inner.conn, doc_id, &changes, origin, inner.now())?;
            self.reports[batch].changed.push(doc_id);
            if let Some((_, peer)) = created_by.as_ref().filter(|(by, _)| *by == batch) {
                record_created(&inner.conn, peer, doc_id, inner.now())?;
            }
        }
        let compact_every = i64::from(inner.options.compact_every.max(1));
        // On a parent, a record registered by this batch enters its creator's scope.
        let newly_registered =
            crate::store::directory::has_devices(&inner.conn)? && !is_registered(&inner.conn, doc_id)?;
        write_doc_row(&inner.conn, doc_id, &loaded, accepted.len(), compact_every, inner.now())?;
        if newly_registered && is_registered(&inner.conn, doc_id)? {
            creator_scope(&inner.conn, doc_id, &loaded.doc, inner.now())?;
        }
        inner.cache.put(doc_id, loaded);
        Ok(())
    }

    /// Settles every record still pending: the transaction may commit after this.
    fn settle_all(&mut self, inner: &mut Inner) -> Result<()> {
        let ids: Vec<PatientId> = self.pending.keys().copied().collect();
        self.settle(inner, ids)
    }
}

/// Whether a change a child pushed is attributable: signed by the device that owns its actor.
/// Automerge names the author (the device key) only in an actor's first change; the parent binds
/// the actor to that key then (first binding wins) and checks every later change of the actor
/// against it. The genesis change, identical on every device, is the one unsigned change.
/// `checked_with`: the key the signature was already found to be by (see [`ChildPush::check_ahead`]);
/// when that is the author's, it is not checked again. `Ok(Err(reason))` refuses the change.
pub(super) fn check_signed(
    conn: &rusqlite::Connection,
    doc_id: PatientId,
    change: &Change,
    signature: Option<&[u8]>,
    own_key: Option<&[u8]>,
    checked_with: Option<&[u8]>,
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
    if checked_with != Some(author.as_slice()) && !crate::identity::verify_signature(&author, &hash.0, signature) {
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

pub(super) fn is_stored(conn: &rusqlite::Connection, change: &Change) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM changes WHERE hash = ?1")?
        .query_row([change.hash().0.to_vec()], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The hash of the batch's item at position `len - 1` (its last), when it decoded.
pub(super) fn last_hash(by_doc: &Batch<'_>, len: usize) -> Option<[u8; 32]> {
    let last = len.checked_sub(1)?;
    by_doc.values().flatten().find(|r| r.index == last).map(|r| r.change.hash().0)
}
