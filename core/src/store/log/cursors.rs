//! The peers' cursors: how far each has read our log and acknowledged its own, where a
//! catch-up stands, and how a stored batch moves them in its transaction.

use super::*;
use crate::Result;
use crate::store::Store;
use crate::sync::LogMark;
use crate::time::Millis;
use rusqlite::{OptionalExtension, params};

impl Store {
    /// The peer's log id our cursor refers to ('' when none).
    pub fn peer_log_id(&self, peer: &str) -> Result<String> {
        let inner = self.lock();
        Ok(inner
            .conn
            .prepare_cached("SELECT log_id FROM peers WHERE peer_id = ?1")?
            .query_row([peer], |r| r.get(0))
            .optional()?
            .unwrap_or_default())
    }

    /// Starts reading `peer`'s log (and its grants) again from 0: its log was replaced.
    pub fn reset_peer_read_cursor(&self, peer: &str, log_id: &str) -> Result<()> {
        let inner = self.lock();
        inner
            .conn
            .prepare_cached(
                "INSERT INTO peers (peer_id, read_seq, log_id, updated_at) VALUES (?1, 0, ?2, ?3)
             ON CONFLICT(peer_id) DO UPDATE SET read_seq = 0, grant_seq = 0, log_id = excluded.log_id,
                 updated_at = excluded.updated_at",
            )?
            .execute(params![peer, log_id, inner.now()])?;
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
        tx.prepare_cached(
            "UPDATE peers SET read_seq = 0, acked_mark_seq = NULL, acked_mark_hash = NULL, updated_at = ?2
             WHERE peer_id = ?1",
        )?
        .execute(params![child, inner.now()])?;
        tx.prepare_cached("UPDATE changes SET origin = NULL WHERE origin = ?1")?.execute([child])?;
        tx.commit()?;
        Ok(())
    }

    /// Records how far `peer` (a child) has read this log: what it said at its hello, then the end
    /// of each batch sent to it.
    ///
    /// Written without an fsync of its own: it only feeds an operator's view of the child's lag,
    /// and a power cut that loses the last few is repaired by the child's next hello. It becomes
    /// durable with the next commit that is (every ingest is). Measured under the relay load test,
    /// this write was most of the relay's fsyncs: one per batch sent.
    pub fn set_peer_delivered(&self, peer: &str, seq: i64) -> Result<()> {
        let inner = self.lock();
        let now = inner.now();
        inner.without_fsync(|conn| {
            conn.prepare_cached(
                "INSERT INTO peers (peer_id, delivered_seq, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (peer_id) DO UPDATE SET delivered_seq = excluded.delivered_seq,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![peer, seq, now])?;
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

    /// The cursors stored for `peer`.
    pub fn peer_cursor(&self, peer: &str) -> Result<PeerCursor> {
        let inner = self.lock();
        Ok(inner
            .conn
            .prepare_cached("SELECT acked_seq, read_seq FROM peers WHERE peer_id = ?1")?
            .query_row([peer], |r| Ok(PeerCursor { acked_seq: r.get(0)?, read_seq: r.get(1)? }))
            .optional()?
            .unwrap_or_default())
    }

    /// How much of `child`'s log is stored here, and the last change of it stored here
    /// (position and hash; `None` before any, or after the child's log was forgotten).
    pub fn child_acked(&self, child: &str) -> Result<(i64, Option<LogMark>)> {
        let inner = self.lock();
        let row: Option<(i64, Option<i64>, Option<Vec<u8>>)> = inner
            .conn
            .prepare_cached("SELECT read_seq, acked_mark_seq, acked_mark_hash FROM peers WHERE peer_id = ?1")?
            .query_row([child], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((acked, seq, hash)) = row else {
            return Ok((0, None));
        };
        let mark = seq.zip(hash.and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok()));
        Ok((acked, mark.map(|(seq, hash)| LogMark { seq, hash })))
    }

    /// Whether this child found its log is not the one `parent` acknowledged, and the parent has
    /// not yet taken it whole again (the next hello says so).
    pub fn peer_restored(&self, parent: &str) -> Result<bool> {
        let inner = self.lock();
        Ok(inner
            .conn
            .prepare_cached("SELECT restored FROM peers WHERE peer_id = ?1")?
            .query_row([parent], |r| r.get(0))
            .optional()?
            .unwrap_or(false))
    }

    /// Marks (or clears) that this child's log is not the one `parent` acknowledged; marking also
    /// forgets what `parent` acknowledged of it (it will take the whole log again).
    pub fn set_peer_restored(&self, parent: &str, restored: bool) -> Result<()> {
        let inner = self.lock();
        inner
            .conn
            .prepare_cached(
                "INSERT INTO peers (peer_id, restored, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(peer_id) DO UPDATE SET restored = excluded.restored,
                     acked_seq = CASE WHEN excluded.restored THEN 0 ELSE acked_seq END,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![parent, restored, inner.now()])?;
        Ok(())
    }

    /// Sets how much of this replica's log `peer` holds, as it said when it welcomed us: unlike
    /// [`Store::set_peer_cursor`] it may go back (the parent was restored from an older backup),
    /// so what it lost is pushed again and a purge keeps it.
    pub fn set_peer_acked(&self, peer: &str, acked: i64) -> Result<()> {
        let inner = self.lock();
        inner
            .conn
            .prepare_cached(
                "INSERT INTO peers (peer_id, acked_seq, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(peer_id) DO UPDATE SET acked_seq = excluded.acked_seq, updated_at = excluded.updated_at",
            )?
            .execute(params![peer, acked, inner.now()])?;
        Ok(())
    }

    /// Stores the cursors for `peer`. Cursors only move forward.
    pub fn set_peer_cursor(&self, peer: &str, cursor: PeerCursor) -> Result<()> {
        let inner = self.lock();
        let tx = inner.conn.unchecked_transaction()?;
        tx.prepare_cached(
            "INSERT INTO peers (peer_id, acked_seq, read_seq, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(peer_id) DO UPDATE SET acked_seq = max(acked_seq, excluded.acked_seq),
                 read_seq = max(read_seq, excluded.read_seq), updated_at = excluded.updated_at",
        )?
        .execute(params![peer, cursor.acked_seq, cursor.read_seq, inner.now()])?;
        tx.commit()?;
        Ok(())
    }
}

/// Where a batch of remote changes came from, and what moves with it.
pub(crate) struct Source<'a> {
    pub(crate) peer: &'a str,
    pub(crate) cursor: CursorMove<'a>,
    /// A parent ingesting a child's push: refuse documents outside the child's scope.
    pub(crate) enforce_scope: bool,
}

/// The cursor committed in the same transaction as a batch.
pub(crate) enum CursorMove<'a> {
    Unchanged,
    /// How far we have read the peer's log (and which log that is).
    Read {
        up_to: i64,
        log_id: &'a str,
    },
    /// How much of a child's log we hold (its push is stored), and the last change of it we hold
    /// (position, hash) when the push carried one.
    Pushed {
        up_to: i64,
        mark: Option<(i64, [u8; 32])>,
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

pub(super) fn move_cursor(conn: &rusqlite::Connection, source: &Source<'_>, now: Millis) -> Result<()> {
    let peer = source.peer;
    match source.cursor {
        CursorMove::Unchanged => {}
        CursorMove::Pushed { up_to, mark } => {
            let (mark_seq, mark_hash) = mark.map_or((None, None), |(seq, hash)| (Some(seq), Some(hash.to_vec())));
            conn.prepare_cached(
                "INSERT INTO peers (peer_id, read_seq, log_id, acked_mark_seq, acked_mark_hash, updated_at)
                 VALUES (?1, ?2, '', ?3, ?4, ?5)
                 ON CONFLICT(peer_id) DO UPDATE SET read_seq = max(read_seq, excluded.read_seq), log_id = '',
                     acked_mark_hash = CASE WHEN excluded.acked_mark_seq > coalesce(acked_mark_seq, -1)
                         THEN excluded.acked_mark_hash ELSE acked_mark_hash END,
                     acked_mark_seq = CASE WHEN excluded.acked_mark_seq > coalesce(acked_mark_seq, -1)
                         THEN excluded.acked_mark_seq ELSE acked_mark_seq END,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![peer, up_to, mark_seq, mark_hash, now])?;
        }
        CursorMove::Read { up_to, log_id } => {
            conn.prepare_cached(
                "INSERT INTO peers (peer_id, read_seq, log_id, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(peer_id) DO UPDATE SET read_seq = max(read_seq, excluded.read_seq),
                     log_id = excluded.log_id, updated_at = excluded.updated_at",
            )?
            .execute(params![peer, up_to, log_id, now])?;
        }
        CursorMove::Grant { grant, rewind } => {
            conn.prepare_cached(
                "INSERT INTO peers (peer_id, grant_seq, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(peer_id) DO UPDATE SET grant_seq = max(grant_seq, excluded.grant_seq),
                     read_seq = CASE WHEN ?4 THEN 0 ELSE read_seq END, updated_at = excluded.updated_at",
            )?
            .execute(params![peer, grant, now, rewind])?;
        }
        CursorMove::CatchUp { head, grant, last: Some(after), log_id } => {
            conn.prepare_cached(
                "INSERT INTO peers (peer_id, log_id, catch_up_head, catch_up_grant, catch_up_after, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(peer_id) DO UPDATE SET log_id = excluded.log_id, catch_up_head = excluded.catch_up_head,
                     catch_up_grant = excluded.catch_up_grant, catch_up_after = excluded.catch_up_after,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![peer, log_id, head, grant, after.to_vec(), now])?;
        }
        CursorMove::CatchUp { head, grant, last: None, log_id } => {
            conn.prepare_cached(
                "INSERT INTO peers (peer_id, read_seq, grant_seq, log_id, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(peer_id) DO UPDATE SET read_seq = max(read_seq, excluded.read_seq),
                     grant_seq = max(grant_seq, excluded.grant_seq), log_id = excluded.log_id,
                     catch_up_head = NULL, catch_up_grant = NULL, catch_up_after = NULL,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![peer, head, grant, log_id, now])?;
        }
    }
    Ok(())
}
