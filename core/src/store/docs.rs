//! Loading documents on demand, and committing changes to disk with their document row, the
//! record view and the indexes in one transaction.

use super::{Inner, index};
use crate::document::{Touched, read_record, refresh_parts};
use crate::model::PatientRecord;
use crate::time::Millis;
use crate::{Error, PatientId, Result};
use automerge::{Author, Automerge, AutomergeError, Change, PatchLog, ReadDoc};
use rusqlite::{Connection, OptionalExtension, params};

/// A document in memory with its typed record.
///
/// Reading a record out of automerge costs a pass over every op (about a millisecond for a
/// resident with ten visits), so the typed record is kept beside the document: local edits update
/// both, remote changes re-read only the entities they touched, and its JSON is saved with each
/// snapshot as the document's `view`, so a cold load re-reads only what changed since.
pub(crate) struct Loaded {
    pub(crate) doc: Automerge,
    /// The record as of `doc`'s heads; `None` while the registration has not arrived (or the
    /// record does not parse: reads then report why).
    pub(crate) record: Option<PatientRecord>,
}

impl Loaded {
    /// Re-reads the typed record from the document.
    pub(crate) fn refresh(&mut self, id: PatientId) {
        self.record = match read_record(&self.doc, id) {
            Ok(record) => Some(record),
            Err(Error::IncompleteRecord { .. }) => None,
            Err(e) => {
                tracing::warn!(patient = %id, error = %e, "record unreadable");
                None
            }
        };
    }

    /// Brings the record up to date after changes that touched `touched`: re-reads only those
    /// entities when it can, the whole record otherwise.
    pub(crate) fn refresh_touched(&mut self, id: PatientId, touched: Touched) {
        match (touched, self.record.as_mut()) {
            (Touched::Nothing, _) => {}
            (Touched::Parts(parts), Some(record)) => match refresh_parts(&self.doc, id, record, parts) {
                Ok(true) => {}
                Ok(false) => self.refresh(id),
                Err(e) => {
                    tracing::warn!(patient = %id, error = %e, "re-reading the record whole");
                    self.refresh(id);
                }
            },
            (Touched::Parts(_) | Touched::Everything, _) => self.refresh(id),
        }
    }

    /// Applies changes to the document and brings the record up to date: when the record is
    /// known, only the entities the changes touched (automerge's patches say which) are read
    /// again; otherwise the whole record is read. On error the document refused the changes.
    pub(crate) fn apply_changes(
        &mut self,
        id: PatientId,
        changes: Vec<Change>,
    ) -> std::result::Result<(), AutomergeError> {
        let known = self.record.is_some();
        let mut patches = if known { PatchLog::active() } else { PatchLog::inactive() };
        self.doc.apply_changes_log_patches(changes, &mut patches)?;
        let touched = if known {
            let mut touched = Touched::Nothing;
            touched.add_patches(&self.doc.make_patches(&mut patches));
            touched
        } else {
            Touched::Everything
        };
        self.refresh_touched(id, touched);
        Ok(())
    }

    /// The record, or the reason there is none.
    pub(crate) fn record(&self, id: PatientId) -> Result<&PatientRecord> {
        match &self.record {
            Some(record) => Ok(record),
            None => {
                Err(read_record(&self.doc, id).err().unwrap_or(Error::IncompleteRecord { patient_id: id.to_string() }))
            }
        }
    }
}

/// A document's bytes as stored: its snapshot, the changes logged after it, and the view of
/// the record saved with the snapshot (and the heads that view is of).
pub(crate) struct StoredDoc {
    snapshot: Option<Vec<u8>>,
    changes: Vec<Vec<u8>>,
    view: Option<Vec<u8>>,
    view_heads: Option<Vec<u8>>,
}

/// Why stored bytes did not open.
pub(crate) enum StoredDocError {
    /// The snapshot does not load: the document is rebuilt from its change log.
    Snapshot(String),
    /// A logged change does not parse or apply.
    Other(Error),
}

impl StoredDoc {
    /// Parses the document and reads its record: from the view saved with the snapshot, when it
    /// is of the snapshot's heads, updated by the changes logged since; read whole otherwise.
    /// Touches nothing but itself. The caller sets the document's actor ([`Inner::adopt`])
    /// before writing to it.
    pub(crate) fn open(self, id: PatientId) -> std::result::Result<Loaded, StoredDocError> {
        let doc = match self.snapshot.map(|bytes| Automerge::load(&bytes)) {
            None => Automerge::new(),
            Some(Ok(doc)) => doc,
            Some(Err(e)) => return Err(StoredDocError::Snapshot(e.to_string())),
        };
        let changes = self
            .changes
            .into_iter()
            .map(|bytes| parse_logged(id, bytes))
            .collect::<Result<Vec<_>>>()
            .map_err(StoredDocError::Other)?;
        let saved = match (self.view, self.view_heads) {
            (Some(view), Some(heads)) if heads == heads_bytes(&doc) => serde_json::from_slice(&view).ok(),
            _ => None,
        };
        let mut loaded = Loaded { doc, record: saved };
        loaded.apply_changes(id, changes).map_err(|e| StoredDocError::Other(corrupt(id, e)))?;
        Ok(loaded)
    }
}

/// A change to commit, with what the log keeps beside its bytes.
pub(crate) struct ChangeToStore {
    pub(crate) change: Change,
    pub(crate) signature: Option<Vec<u8>>,
    pub(crate) local: bool,
}

fn heads_bytes(doc: &Automerge) -> Vec<u8> {
    doc.get_heads().iter().flat_map(|h| h.0).collect()
}

impl Inner {
    /// The document of `id`, loaded into the cache if needed.
    pub(crate) fn doc(&mut self, id: PatientId) -> Result<&mut Loaded> {
        if !self.cache.contains(&id) {
            let loaded = self.load(id)?;
            self.cache.put(id, loaded);
        }
        self.cache.get_mut(&id).ok_or(Error::NotFound { what: "patient", id: id.to_string() })
    }

    /// Prepares a document for local edits: this store's actor, authored by the device key.
    pub(crate) fn adopt(&self, doc: &mut Automerge) {
        // set_author picks a random actor; ours replaces it, one fresh actor per open.
        doc.set_author(Some(Author::from(self.key.public_key().to_vec())));
        doc.set_actor(self.actor.clone());
    }

    /// Reads a document from disk: its snapshot plus the changes logged after it, and its record
    /// (see [`StoredDoc::open`]).
    pub(crate) fn load(&self, id: PatientId) -> Result<Loaded> {
        match self.read_stored(id)?.open(id) {
            Ok(mut loaded) => {
                self.adopt(&mut loaded.doc);
                Ok(loaded)
            }
            Err(StoredDocError::Snapshot(e)) => {
                tracing::warn!(patient = %id, error = %e, "snapshot unreadable; rebuilding from the change log");
                self.rebuild_from_log(id)
            }
            Err(StoredDocError::Other(e)) => Err(e),
        }
    }

    /// A document's stored bytes, read but not parsed: parsing (most of a load) can then run
    /// outside the store's lock or on another thread ([`StoredDoc::open`]).
    pub(crate) fn read_stored(&self, id: PatientId) -> Result<StoredDoc> {
        type Row = (Option<Vec<u8>>, i64, Option<Vec<u8>>, Option<Vec<u8>>);
        let row: Option<Row> = self
            .conn
            .prepare_cached("SELECT snapshot, snapshot_seq, view, view_heads FROM docs WHERE doc_id = ?1")?
            .query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        let Some((snapshot, snapshot_seq, view, view_heads)) = row else {
            return Err(Error::NotFound { what: "patient", id: id.to_string() });
        };
        let changes = self.logged_bytes(id, snapshot_seq)?;
        Ok(StoredDoc { snapshot, changes, view, view_heads })
    }

    /// A purged record whose own edits still wait for the parent's acknowledgement, when it comes
    /// back (granted again): those edits, so that the record re-created holds them.
    pub(crate) fn read_purged_waiting(&self, id: PatientId) -> Result<Option<StoredDoc>> {
        let waiting = self
            .conn
            .prepare_cached("SELECT 1 FROM purge_waiting WHERE doc_id = ?1")?
            .query_row([id.to_string()], |_| Ok(()))
            .optional()?
            .is_some();
        if !waiting {
            return Ok(None);
        }
        Ok(Some(StoredDoc { snapshot: None, changes: self.logged_bytes(id, 0)?, view: None, view_heads: None }))
    }

    fn changes_of(&self, id: PatientId, after_seq: i64) -> Result<Vec<Change>> {
        self.logged_bytes(id, after_seq)?.into_iter().map(|bytes| parse_logged(id, bytes)).collect()
    }

    /// The bytes of a document's changes logged after `after_seq`, in log order.
    fn logged_bytes(&self, id: PatientId, after_seq: i64) -> Result<Vec<Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT bytes FROM changes WHERE doc_id = ?1 AND local_seq > ?2 ORDER BY local_seq")?;
        let rows = stmt.query_map(params![id.to_string(), after_seq], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Rebuilds a document from every change in the log and rewrites its snapshot.
    pub(crate) fn rebuild_from_log(&self, id: PatientId) -> Result<Loaded> {
        let mut doc = Automerge::new();
        doc.apply_changes(self.changes_of(id, 0)?).map_err(|e| corrupt(id, e))?;
        if doc.get_heads().is_empty() {
            return Err(corrupt(id, "snapshot unreadable and no changes in the log"));
        }
        self.adopt(&mut doc);
        let mut loaded = Loaded { doc, record: None };
        loaded.refresh(id);
        snapshot(&self.conn, id, &loaded)?;
        Ok(loaded)
    }

    /// Commits `changes` of document `id` (already applied to the cached document, whose record
    /// is up to date) with the document row, its view and its indexes, in one transaction. On
    /// failure the cached document is dropped, so memory never holds what the disk does not.
    /// Returns how many changes were new.
    pub(crate) fn commit(&mut self, id: PatientId, changes: Vec<ChangeToStore>) -> Result<usize> {
        let compact_every = i64::from(self.options.compact_every.max(1));
        let now = self.now();
        let result = (|| {
            let Inner { conn, cache, .. } = &mut *self;
            let loaded = cache.get(&id).ok_or(Error::NotFound { what: "patient", id: id.to_string() })?;
            let tx = conn.transaction()?;
            let stored = store_changes(&tx, id, &changes, None, now)?;
            write_doc_row(&tx, id, loaded, stored, compact_every, now)?;
            tx.commit()?;
            Ok(stored)
        })();
        match &result {
            Ok(_) => self.notify(true, super::Committed::Records(&[id])),
            Err(_) => {
                self.cache.pop(&id);
            }
        }
        result
    }

    /// Writes a snapshot of every document with changes since its last one.
    pub(crate) fn compact_all(&mut self) -> Result<usize> {
        let ids: Vec<String> = {
            let mut stmt = self.conn.prepare("SELECT doc_id FROM docs WHERE pending > 0")?;
            stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
        };
        let mut done = 0;
        for id in ids {
            let Ok(id) = id.parse::<PatientId>() else { continue };
            self.doc(id)?;
            let Inner { conn, cache, .. } = &mut *self;
            let Some(loaded) = cache.get(&id) else { continue };
            let tx = conn.transaction()?;
            if snapshot(&tx, id, loaded)? {
                done += 1;
            }
            tx.commit()?;
        }
        Ok(done)
    }
}

/// A change read back from the log.
fn parse_logged(id: PatientId, bytes: Vec<u8>) -> Result<Change> {
    Change::from_bytes(bytes).map_err(|e| corrupt(id, format!("change log: {e}")))
}

fn corrupt(id: PatientId, e: impl std::fmt::Display) -> Error {
    Error::CorruptDocument { doc_id: id.to_string(), reason: e.to_string() }
}

/// Inserts changes into the log, skipping those already there (by hash). Returns how many were new.
pub(crate) fn store_changes(
    tx: &Connection,
    id: PatientId,
    changes: &[ChangeToStore],
    origin: Option<&str>,
    now: Millis,
) -> Result<usize> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO changes (doc_id, hash, bytes, author, signature, local, stored_at, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut stored = 0;
    for c in changes {
        let author = c.change.author().map(|a| a.as_bytes().to_vec());
        if c.local
            && let Some(author) = &author
        {
            // Our own actor's first change names our key; later ones only the actor. Binding it
            // here lets the audit trail name this replica as the author of all of them.
            tx.prepare_cached("INSERT OR IGNORE INTO actors (actor, author) VALUES (?1, ?2)")?
                .execute(params![c.change.actor_id().to_bytes(), author])?;
        }
        stored += stmt.execute(params![
            id.to_string(),
            c.change.hash().0.to_vec(),
            c.change.raw_bytes(),
            author,
            c.signature,
            c.local,
            now,
            origin
        ])?;
    }
    Ok(stored)
}

/// Updates the document row (heads, changes pending since the snapshot) and the indexes, and
/// writes a fresh snapshot when enough changes have piled up.
pub(crate) fn write_doc_row(
    tx: &Connection,
    id: PatientId,
    loaded: &Loaded,
    stored: usize,
    compact_every: i64,
    now: Millis,
) -> Result<()> {
    let pending: i64 = tx
        .prepare_cached(
            "INSERT INTO docs (doc_id, heads, pending, updated_seq)
             VALUES (?1, ?2, ?3, (SELECT coalesce(max(local_seq), 0) FROM changes))
             ON CONFLICT(doc_id) DO UPDATE SET heads = excluded.heads, pending = pending + excluded.pending,
                 updated_seq = excluded.updated_seq
             RETURNING pending",
        )?
        .query_row(params![id.to_string(), heads_bytes(&loaded.doc), stored as i64], |r| r.get(0))?;
    match &loaded.record {
        Some(record) => index::write(tx, record)?,
        None => index::remove(tx, id)?,
    }
    // On a relay, who may see the record follows its team and referrals: re-derive it with them.
    if super::directory::has_devices(tx)? {
        super::scope::refresh_document_scope(tx, id, now)?;
    }
    if pending >= compact_every {
        snapshot(tx, id, loaded)?;
    }
    Ok(())
}

/// Saves the document as its snapshot, with the record's JSON as its view (so a cold load reads
/// the record from the view and re-reads only what later changes touch). The view is written
/// with the snapshot only: rewriting the whole record's JSON on every change cost the relay
/// about a tenth of its CPU per change. Returns false (and leaves the row) while changes wait
/// for missing dependencies: the snapshot would not contain them.
fn snapshot(tx: &Connection, id: PatientId, loaded: &Loaded) -> Result<bool> {
    let doc = &loaded.doc;
    if !doc.get_missing_deps(&[]).is_empty() {
        return Ok(false);
    }
    let max_seq: i64 = tx
        .prepare_cached("SELECT coalesce(max(local_seq), 0) FROM changes WHERE doc_id = ?1")?
        .query_row([id.to_string()], |r| r.get(0))?;
    let view = loaded.record.as_ref().and_then(|r| serde_json::to_vec(r).ok());
    tx.prepare_cached(
        "UPDATE docs SET snapshot = ?2, snapshot_seq = ?3, pending = 0, view = ?4, view_heads = ?5 WHERE doc_id = ?1",
    )?
    .execute(params![id.to_string(), doc.save(), max_seq, view, heads_bytes(doc)])?;
    Ok(true)
}

/// Whether a document row exists.
/// Whether the record is registered here (its patient, with the demographics and organization
/// scope follows, has been applied): a record known only by changes that came before its
/// registration (by another path: a genesis, or changes that wait for a dependency) has no team,
/// referral or creator that scope could follow yet.
pub(crate) fn is_registered(conn: &Connection, id: PatientId) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM patient_index WHERE patient_id = ?1")?
        .query_row([id.to_string()], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(crate) fn exists(conn: &Connection, id: PatientId) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM docs WHERE doc_id = ?1")?
        .query_row([id.to_string()], |_| Ok(()))
        .optional()?
        .is_some())
}
