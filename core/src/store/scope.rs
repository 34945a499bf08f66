//! Scope on a parent (relay or edge hub): which documents each child may see and write.
//!
//! Until device identity lands, a child's scope is every document it created here plus the
//! documents an operator assigned to it (or `*`, every document, for an edge hub or a desk that
//! sees the whole consortium). Assigned documents that the child has not seen are sent to it
//! whole, as a compacted snapshot, before the log stream continues.

use super::Store;
use super::docs::exists;
use super::log::count_and_bytes;
use crate::time::now_ms;
use crate::{Error, PatientId, Result};
use rusqlite::{Connection, OptionalExtension, params};

/// What a grant covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeGrant {
    /// One resident's record.
    Document(PatientId),
    /// Every record (an edge hub, or a desk that serves the whole consortium).
    Everything,
}

impl ScopeGrant {
    fn key(&self) -> String {
        match self {
            ScopeGrant::Document(id) => id.to_string(),
            ScopeGrant::Everything => "*".into(),
        }
    }
}

/// A document to send whole to a child, as read from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentSnapshot {
    /// `Automerge::save()` of the document.
    pub bytes: Vec<u8>,
    /// The authoring devices' signatures of its changes, by change hash.
    pub signatures: Vec<([u8; 32], Vec<u8>)>,
}

/// Whether `peer` may see and write `doc`.
pub(crate) fn in_scope(conn: &Connection, peer: &str, doc: PatientId) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM scope WHERE peer_id = ?1 AND doc_id IN (?2, '*') LIMIT 1")?
        .query_row(params![peer, doc.to_string()], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Records that `peer` created `doc` here (it is in its scope from now on; it needs no snapshot).
pub(crate) fn record_created(conn: &Connection, peer: &str, doc: PatientId) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO scope (peer_id, doc_id, reason, granted_at) VALUES (?1, ?2, 'created', ?3)",
    )?
    .execute(params![peer, doc.to_string(), now_ms()])?;
    Ok(())
}

impl Store {
    /// Assigns a document (or every document) to `peer`'s scope. The child receives it on its
    /// next sync (or at once, if connected). Returns the grant's position; granting what is
    /// already granted changes nothing.
    pub fn grant_scope(&self, peer: &str, grant: ScopeGrant) -> Result<i64> {
        if peer.is_empty() {
            return Err(Error::Validation { field: "scope.peer".into(), reason: "must not be empty".into() });
        }
        let inner = self.lock();
        if let ScopeGrant::Document(id) = grant
            && !exists(&inner.conn, id)?
        {
            return Err(Error::NotFound { what: "patient", id: id.to_string() });
        }
        let added = inner.conn.execute(
            "INSERT OR IGNORE INTO scope (peer_id, doc_id, reason, granted_at) VALUES (?1, ?2, 'assigned', ?3)",
            params![peer, grant.key(), now_ms()],
        )?;
        if added > 0 {
            inner.notify(false);
        }
        Ok(inner.conn.query_row(
            "SELECT grant_id FROM scope WHERE peer_id = ?1 AND doc_id = ?2",
            params![peer, grant.key()],
            |r| r.get(0),
        )?)
    }

    /// The documents in `peer`'s scope (`*` for every document), oldest grant first.
    pub fn scope_of(&self, peer: &str) -> Result<Vec<String>> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached("SELECT doc_id FROM scope WHERE peer_id = ?1 ORDER BY grant_id")?;
        let rows = stmt.query_map([peer], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
    }

    /// Grants to `peer` after grant `after` that must be sent to it (assigned, not created by it),
    /// at most `limit`.
    pub fn grants_after(&self, peer: &str, after: i64, limit: usize) -> Result<Vec<(i64, ScopeGrant)>> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(
            "SELECT grant_id, doc_id FROM scope WHERE peer_id = ?1 AND grant_id > ?2 AND reason = 'assigned'
             ORDER BY grant_id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![peer, after, limit.min(i64::MAX as usize) as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, doc) = row?;
            let grant = if doc == "*" { ScopeGrant::Everything } else { ScopeGrant::Document(doc.parse()?) };
            out.push((id, grant));
        }
        Ok(out)
    }

    /// The newest grant that must be sent to `peer` (0 when none).
    pub fn grant_head(&self, peer: &str) -> Result<i64> {
        let inner = self.lock();
        Ok(inner
            .conn
            .prepare_cached("SELECT coalesce(max(grant_id), 0) FROM scope WHERE peer_id = ?1 AND reason = 'assigned'")?
            .query_row([peer], |r| r.get(0))?)
    }

    /// A document whole, compacted, with the signatures of its changes.
    pub fn document_snapshot(&self, id: PatientId) -> Result<DocumentSnapshot> {
        let mut inner = self.lock();
        let bytes = inner.doc(id)?.doc.save();
        let mut stmt = inner
            .conn
            .prepare_cached("SELECT hash, signature FROM changes WHERE doc_id = ?1 AND signature IS NOT NULL")?;
        let rows = stmt.query_map([id.to_string()], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let mut signatures = Vec::new();
        for row in rows {
            let (hash, signature) = row?;
            if let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) {
                signatures.push((hash, signature));
            }
        }
        Ok(DocumentSnapshot { bytes, signatures })
    }

    /// Changes and bytes in `peer`'s scope after `after_seq` that did not come from it: what it is
    /// about to pull.
    pub fn pending_for_peer(&self, peer: &str, after_seq: i64) -> Result<(u64, u64)> {
        count_and_bytes(
            &self.lock().conn,
            &format!("local_seq > ?1 AND coalesce(origin, '') != ?2 AND {IN_SCOPE}"),
            params![after_seq, peer],
        )
    }

    /// How far this child has read `parent`'s grants.
    pub fn peer_grant_seq(&self, parent: &str) -> Result<i64> {
        let inner = self.lock();
        Ok(inner
            .conn
            .query_row("SELECT grant_seq FROM peers WHERE peer_id = ?1", [parent], |r| r.get(0))
            .optional()?
            .unwrap_or_default())
    }
}

/// SQL condition: the change's document is in the scope of peer `?2`.
pub(crate) const IN_SCOPE: &str = "(doc_id IN (SELECT doc_id FROM scope WHERE peer_id = ?2)
     OR EXISTS (SELECT 1 FROM scope WHERE peer_id = ?2 AND doc_id = '*'))";
