//! Reading the log: changes after a cursor (all, this replica's own, or what a child may see),
//! its head, and the records it touched.

use super::*;
use crate::store::Store;
use crate::{Error, PatientId, Result};
use rusqlite::{OptionalExtension, params};

impl Store {
    /// Changes after `after_seq` in log order, at most `limit`.
    pub fn changes_since(&self, after_seq: i64, limit: usize) -> Result<Vec<StoredChange>> {
        self.read_log("local_seq > ?1", after_seq, limit)
    }

    /// Changes made on this replica after `after_seq` (what a device pushes).
    pub fn local_changes_since(&self, after_seq: i64, limit: usize) -> Result<Vec<StoredChange>> {
        self.read_log("local = 1 AND local_seq > ?1", after_seq, limit)
    }

    /// What a child pushes next: its own changes after `after_seq` (at most `limit`), and how far
    /// its log they cover — the newest local change when the batch is not full (the log looked
    /// at up to its head), else the batch's last. Both are read under one lock, so a change
    /// committed meanwhile is either in the batch or after what it covers: a batch that covered
    /// an edit it did not carry would be acknowledged and that edit never pushed.
    pub fn local_batch(&self, after_seq: i64, limit: usize) -> Result<(Vec<StoredChange>, i64)> {
        let inner = self.lock();
        let head: i64 = inner.conn.prepare_cached(LOCAL_HEAD)?.query_row([], |r| r.get(0))?;
        let changes = read_log(&inner.conn, "local = 1 AND local_seq > ?1", after_seq, limit)?;
        let up_to = match changes.last() {
            Some(last) if changes.len() >= limit => last.seq,
            _ => head.max(after_seq),
        };
        Ok((changes, up_to))
    }

    /// This replica's changes after `after_seq` in `peer`'s scope that did not come from `peer`,
    /// at most `limit`, and how far the log has been looked at for `peer` (the cursor moves past
    /// the changes left out).
    pub fn changes_for_peer(&self, peer: &str, after_seq: i64, limit: usize) -> Result<(Vec<StoredChange>, i64)> {
        let inner = self.lock();
        let head: i64 = inner
            .conn
            .prepare_cached("SELECT coalesce(max(local_seq), 0) FROM changes")?
            .query_row([], |r| r.get(0))?;
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
        Ok(inner
            .conn
            .prepare_cached("SELECT CAST(value AS TEXT) FROM meta WHERE key = 'log_id'")?
            .query_row([], |r| r.get(0))?)
    }

    /// The newest sequence number of a change made on this replica (0 when none).
    pub fn last_local_seq(&self) -> Result<i64> {
        Ok(self.lock().conn.prepare_cached(LOCAL_HEAD)?.query_row([], |r| r.get(0))?)
    }

    /// The newest sequence number in the log (0 when empty).
    pub fn last_seq(&self) -> Result<i64> {
        Ok(self
            .lock()
            .conn
            .prepare_cached("SELECT coalesce(max(local_seq), 0) FROM changes")?
            .query_row([], |r| r.get(0))?)
    }

    /// How many changes in the log came from peers (on a relay: ingested from devices).
    pub fn remote_change_count(&self) -> Result<u64> {
        let n: i64 = self
            .lock()
            .conn
            .prepare_cached("SELECT count(*) FROM changes WHERE local = 0")?
            .query_row([], |r| r.get(0))?;
        Ok(n.max(0) as u64)
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
        read_log(&self.lock().conn, filter, after_seq, limit)
    }

    /// The hash of the change this replica made at `seq` of its log (`None`: no change of its
    /// own there).
    pub fn local_change_hash(&self, seq: i64) -> Result<Option<[u8; 32]>> {
        let inner = self.lock();
        let hash: Option<Vec<u8>> = inner
            .conn
            .prepare_cached(
                "SELECT hash FROM changes WHERE local_seq = ?1 AND local = 1
                 UNION ALL SELECT hash FROM purged_log WHERE local_seq = ?1",
            )?
            .query_row([seq], |r| r.get(0))
            .optional()?;
        Ok(hash.and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok()))
    }
}

/// The newest position of a change made on this replica, counting its own changes a purge deleted.
pub(super) const LOCAL_HEAD: &str = "SELECT max(coalesce((SELECT max(local_seq) FROM changes WHERE local = 1), 0),
                            coalesce((SELECT max(local_seq) FROM purged_log), 0))";

pub(super) fn read_log(
    conn: &rusqlite::Connection,
    filter: &str,
    after_seq: i64,
    limit: usize,
) -> Result<Vec<StoredChange>> {
    let sql = format!(
        "SELECT local_seq, doc_id, hash, bytes, signature, local FROM changes WHERE {filter} ORDER BY local_seq LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
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

/// A log row as a [`StoredChange`]; a malformed row is reported, not trusted.
pub(super) fn stored_change(
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
