//! Catch-up: a child reading its parent's log from the start gets the documents in its scope
//! whole (compact automerge saves) instead of their history change by change, which costs about
//! twice the bytes (each change carries its dependencies' hashes, its actor and a header).
//!
//! The parent reads pages of documents in id order ([`Store::documents_for_peer`]); the child
//! stores each page with its position in one transaction ([`Store::apply_documents_from`]), so
//! an interrupted catch-up resumes after the last page stored ([`Store::peer_catch_up`]).

use super::log::{CursorMove, IncomingChange, Source};
use super::scope::IN_SCOPE;
use super::{ApplyReport, Store};
use crate::sync::{CatchUp, DocumentCopy, DocumentPage};
use crate::{Error, PatientId, Result};
use automerge::{Automerge, ReadDoc};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeSet;

/// Documents per page at most, however small.
const PAGE_DOCUMENTS: usize = 512;
/// An Ed25519 signature.
const SIGNATURE_BYTES: usize = 64;

impl Store {
    /// A page of the documents in `peer`'s scope that hold changes not from `peer`, whole, in id
    /// order after `after`, up to about `budget` bytes (at least one document): the documents,
    /// the last one looked at, and whether none follow.
    pub fn documents_for_peer(
        &self,
        peer: &str,
        after: Option<[u8; 16]>,
        budget: usize,
    ) -> Result<(Vec<DocumentCopy>, Option<[u8; 16]>, bool)> {
        let after_id = after.map(|a| PatientId(uuid::Uuid::from_bytes(a)).to_string()).unwrap_or_default();
        let inner = self.lock();
        let ids: Vec<String> = inner
            .conn
            .prepare_cached(&format!(
                "SELECT doc_id FROM docs WHERE doc_id > ?1 AND {IN_SCOPE}
                   AND EXISTS (SELECT 1 FROM changes c WHERE c.doc_id = docs.doc_id AND coalesce(c.origin, '') != ?2)
                 ORDER BY doc_id LIMIT ?3"
            ))?
            .query_map(params![after_id, peer, PAGE_DOCUMENTS as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut docs = Vec::new();
        let mut last = after;
        let mut bytes = 0;
        for (n, id) in ids.iter().enumerate() {
            let doc_id: PatientId = id.parse()?;
            // A document another session keeps warm is read from memory; the rest from disk,
            // without pushing the warm ones out of the cache.
            let fresh;
            let doc = match inner.cache.peek(&doc_id) {
                Some(loaded) => &loaded.doc,
                None => {
                    fresh = inner.load(doc_id)?;
                    &fresh.doc
                }
            };
            let copy = document_copy(&inner.conn, doc_id, doc)?;
            bytes += copy.save.len() + copy.signatures.len() + copy.changes.iter().map(|(c, _)| c.len()).sum::<usize>();
            docs.push(copy);
            last = Some(*doc_id.0.as_bytes());
            if bytes >= budget {
                return Ok((docs, last, n + 1 == ids.len() && ids.len() < PAGE_DOCUMENTS));
            }
        }
        Ok((docs, last, ids.len() < PAGE_DOCUMENTS))
    }

    /// A child storing a page of a catch-up from `parent` (log `log_id`) and its position, in
    /// one transaction; the last page moves the read cursor to the page's head and the grant
    /// cursor to its grant. A document whose save does not load, or whose signatures do not
    /// match its changes, fails the page (nothing of it is stored).
    pub fn apply_documents_from(&self, parent: &str, page: &DocumentPage, log_id: &str) -> Result<ApplyReport> {
        let mut batch = Vec::new();
        for copy in &page.docs {
            let doc_id = PatientId(uuid::Uuid::from_bytes(copy.doc));
            if copy.save.is_empty() {
                batch.extend(copy.changes.iter().map(|(bytes, signature)| IncomingChange {
                    doc_id,
                    bytes: bytes.clone(),
                    signature: signature.clone(),
                }));
                continue;
            }
            batch.extend(changes_of_copy(doc_id, copy)?);
        }
        let cursor =
            CursorMove::CatchUp { head: page.head, grant: page.grant, last: page.last.filter(|_| !page.done), log_id };
        self.apply(Some(Source { peer: parent, cursor, enforce_scope: false }), batch)
    }

    /// Bytes of records per catch-up page this store sends as a parent.
    pub(crate) fn catch_up_page_bytes(&self) -> usize {
        self.lock().options.catch_up_page_bytes.max(1)
    }

    /// Where an unfinished catch-up from `parent` stands (`None`: none is under way).
    pub fn peer_catch_up(&self, parent: &str) -> Result<Option<CatchUp>> {
        let inner = self.lock();
        type Position = (Option<i64>, Option<i64>, Option<Vec<u8>>);
        let row: Option<Position> = inner
            .conn
            .prepare_cached("SELECT catch_up_head, catch_up_grant, catch_up_after FROM peers WHERE peer_id = ?1")?
            .query_row([parent], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        Ok(match row {
            Some((Some(head), Some(grant), Some(after))) => {
                <[u8; 16]>::try_from(after.as_slice()).ok().map(|after| CatchUp { head, grant, after })
            }
            _ => None,
        })
    }
}

/// A document as a catch-up sends it: its save and its signatures in hash order; or, while some
/// of its changes wait for dependencies (a save would leave them out), its changes one by one.
fn document_copy(conn: &rusqlite::Connection, doc_id: PatientId, doc: &Automerge) -> Result<DocumentCopy> {
    let id = doc_id.to_string();
    let mut copy = DocumentCopy {
        doc: *doc_id.0.as_bytes(),
        save: Vec::new(),
        signatures: Vec::new(),
        unsigned: Vec::new(),
        changes: Vec::new(),
    };
    if !doc.get_missing_deps(&[]).is_empty() {
        let mut stmt =
            conn.prepare_cached("SELECT bytes, signature FROM changes WHERE doc_id = ?1 ORDER BY local_seq")?;
        copy.changes = stmt.query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        return Ok(copy);
    }
    // Uncompressed: the frame's zstd then shares what every record repeats (keys, actors, the
    // shape of a visit) across the page, which DEFLATE inside each save cannot.
    copy.save = doc.save_nocompress();
    let mut stmt = conn.prepare_cached("SELECT signature FROM changes WHERE doc_id = ?1 ORDER BY hash")?;
    let rows = stmt.query_map([&id], |r| r.get::<_, Option<Vec<u8>>>(0))?;
    for (position, signature) in rows.enumerate() {
        match signature? {
            Some(s) if s.len() == SIGNATURE_BYTES => copy.signatures.extend_from_slice(&s),
            _ => copy.unsigned.push(position as u32),
        }
    }
    Ok(copy)
}

/// The changes of a document sent whole, each with its signature (matched by hash order).
fn changes_of_copy(doc_id: PatientId, copy: &DocumentCopy) -> Result<Vec<IncomingChange>> {
    let bad = |reason: String| Error::BadChange { reason: format!("catch-up document {doc_id}: {reason}") };
    let saved = Automerge::load(&copy.save).map_err(|e| bad(format!("not an automerge document: {e}")))?;
    let mut changes = saved.get_changes(&[]);
    changes.sort_by_key(|c| c.hash());
    let signed = copy.signatures.len() / SIGNATURE_BYTES;
    if !copy.signatures.len().is_multiple_of(SIGNATURE_BYTES) || signed + copy.unsigned.len() != changes.len() {
        return Err(bad(format!(
            "{} bytes of signatures and {} unsigned for {} changes",
            copy.signatures.len(),
            copy.unsigned.len(),
            changes.len()
        )));
    }
    let unsigned: BTreeSet<u32> = copy.unsigned.iter().copied().collect();
    let mut signatures = copy.signatures.chunks_exact(SIGNATURE_BYTES);
    Ok(changes
        .into_iter()
        .enumerate()
        .map(|(position, change)| IncomingChange {
            doc_id,
            bytes: change.raw_bytes().to_vec(),
            signature: if unsigned.contains(&(position as u32)) { None } else { signatures.next().map(<[u8]>::to_vec) },
        })
        .collect())
}
