//! Scope on a parent (relay or edge hub): which documents each child may see and write.
//!
//! A child's scope is, for each document, one row of the `scope` table with its reason:
//! - `created`: the child created the record here (it stays in its scope until the directory
//!   says whose it is: once a derived reason holds for the child, the row takes that reason);
//!   `creator` likewise, sent whole once (the parent held changes of it the child did not push);
//! - `assigned`: an operator assigned it (or `*`, every document, for an edge hub or a desk that
//!   sees the whole consortium);
//! - `team`: the resident is contracted to a team of the device's practitioner, and the contract's
//!   last day is less than the grace period ago (derived);
//! - `referral`: the record is referred to the device's organization, the referral is open or
//!   closed less than the grace period ago (derived);
//! - `purge`: a derived reason no longer holds; the child is told to delete the record.
//!
//! Derived rows are re-derived whenever a document's team or referrals change (in the same
//! transaction as the change), when the directory changes, and by [`Store::sweep_scope`] for
//! grace periods that ran out. Rows are numbered: a child reads the ones meant for it like a log
//! (a document that entered its scope arrives whole, as a compacted snapshot, before the log
//! stream continues; a purge arrives in the same order).

use super::Store;
use super::docs::exists;
use super::log::{count_and_bytes, for_peer};
use crate::time::Millis;
use crate::{Error, PatientId, Result};
use rusqlite::{Connection, OptionalExtension, named_params, params};
use std::collections::BTreeMap;
use std::time::Duration;

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
    /// Its changes stored here that wait for a dependency (the save leaves them out), with
    /// their signatures.
    pub waiting: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Whether `peer` may write `doc`: it is in its scope, or was until a purge. A device offline when
/// its record left its scope still delivers the edits it made while it held it (the purge, once
/// applied, leaves it nothing to edit). What it reads follows the rows that are not purges.
/// `None`: no right; `Some(true)`: in its scope; `Some(false)`: a late edit (the record left).
pub(crate) fn may_write(conn: &Connection, peer: &str, doc: PatientId) -> Result<Option<bool>> {
    let left: Option<bool> = conn
        .prepare_cached("SELECT min(reason = 'purge') FROM scope WHERE peer_id = ?1 AND doc_id IN (?2, '*')")?
        .query_row(params![peer, doc.to_string()], |r| r.get(0))?;
    Ok(left.map(|left| !left))
}

/// Records that `peer` created `doc` here: it is in its scope from now on. It needs no snapshot
/// (`created`), unless this parent holds changes of it that did not come from `peer` (a hub
/// forwarded some before the phone's own push, from a log the phone has since lost to a
/// restore): then it is sent whole once, as a grant (`creator`).
pub(crate) fn record_created(conn: &Connection, peer: &str, doc: PatientId, now: Millis) -> Result<()> {
    let id = doc.to_string();
    let foreign: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM changes WHERE doc_id = ?1 AND coalesce(origin, '') != ?2)")?
        .query_row(params![&id, peer], |r| r.get(0))?;
    let reason = if foreign { "creator" } else { "created" };
    conn.prepare_cached("INSERT OR IGNORE INTO scope (peer_id, doc_id, reason, granted_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![peer, id, reason, now])?;
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
        // A purged document comes back as a new grant (the child deleted it).
        let tx = inner.conn.unchecked_transaction()?;
        tx.prepare_cached("DELETE FROM scope WHERE peer_id = ?1 AND doc_id = ?2 AND reason = 'purge'")?
            .execute(params![peer, grant.key()])?;
        let added = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO scope (peer_id, doc_id, reason, granted_at) VALUES (?1, ?2, 'assigned', ?3)",
            )?
            .execute(params![peer, grant.key(), inner.now()])?;
        tx.commit()?;
        if added > 0 {
            inner.notify(false, super::Committed::Scope);
        }
        Ok(inner
            .conn
            .prepare_cached("SELECT grant_id FROM scope WHERE peer_id = ?1 AND doc_id = ?2")?
            .query_row(params![peer, grant.key()], |r| r.get(0))?)
    }

    /// The documents in `peer`'s scope (`*` for every document), oldest grant first.
    pub fn scope_of(&self, peer: &str) -> Result<Vec<String>> {
        let inner = self.lock();
        let mut stmt = inner
            .conn
            .prepare_cached("SELECT doc_id FROM scope WHERE peer_id = ?1 AND reason != 'purge' ORDER BY grant_id")?;
        let rows = stmt.query_map([peer], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
    }

    /// Scope changes for `peer` after grant `after` that must be sent to it (every reason but
    /// `created`: the child has those), at most `limit`; `true` marks a purge.
    pub fn grants_after(&self, peer: &str, after: i64, limit: usize) -> Result<Vec<(i64, ScopeGrant, bool)>> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(
            "SELECT grant_id, doc_id, reason = 'purge' FROM scope WHERE peer_id = ?1 AND grant_id > ?2
             AND reason != 'created' ORDER BY grant_id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![peer, after, limit.min(i64::MAX as usize) as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, doc, purge) = row?;
            let grant = if doc == "*" { ScopeGrant::Everything } else { ScopeGrant::Document(doc.parse()?) };
            out.push((id, grant, purge));
        }
        Ok(out)
    }

    /// The newest grant that must be sent to `peer` (0 when none).
    pub fn grant_head(&self, peer: &str) -> Result<i64> {
        let inner = self.lock();
        Ok(inner
            .conn
            .prepare_cached("SELECT coalesce(max(grant_id), 0) FROM scope WHERE peer_id = ?1 AND reason != 'created'")?
            .query_row([peer], |r| r.get(0))?)
    }

    /// A document whole, compacted, with the signatures of its changes, and the changes stored
    /// for it that wait for a dependency.
    pub fn document_snapshot(&self, id: PatientId) -> Result<DocumentSnapshot> {
        let mut inner = self.lock();
        let doc = &inner.doc(id)?.doc;
        let bytes = doc.save();
        let waiting_deps = !automerge::ReadDoc::get_missing_deps(doc, &[]).is_empty();
        let mut waiting = Vec::new();
        if waiting_deps {
            let applied: std::collections::HashSet<[u8; 32]> =
                doc.get_changes(&[]).iter().map(|c| c.hash().0).collect();
            let mut stmt = inner
                .conn
                .prepare_cached("SELECT hash, bytes, signature FROM changes WHERE doc_id = ?1 ORDER BY local_seq")?;
            let rows = stmt.query_map([id.to_string()], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, Option<Vec<u8>>>(2)?))
            })?;
            for row in rows {
                let (hash, bytes, signature) = row?;
                if <[u8; 32]>::try_from(hash.as_slice()).is_ok_and(|h| !applied.contains(&h)) {
                    waiting.push((bytes, signature));
                }
            }
        }
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
        Ok(DocumentSnapshot { bytes, signatures, waiting })
    }

    /// Changes and bytes in `peer`'s scope after `after_seq` that did not come from it: what it is
    /// about to pull.
    pub fn pending_for_peer(&self, peer: &str, after_seq: i64) -> Result<(u64, u64)> {
        let inner = self.lock();
        count_and_bytes(&inner.conn, for_peer(&inner.conn, peer)?, params![after_seq, peer])
    }

    /// How far this child has read `parent`'s grants.
    pub fn peer_grant_seq(&self, parent: &str) -> Result<i64> {
        let inner = self.lock();
        Ok(inner
            .conn
            .prepare_cached("SELECT grant_seq FROM peers WHERE peer_id = ?1")?
            .query_row([parent], |r| r.get(0))
            .optional()?
            .unwrap_or_default())
    }
}

/// SQL condition: the change's document is in the scope of peer `?2`.
pub(crate) const IN_SCOPE: &str = "(doc_id IN (SELECT doc_id FROM scope WHERE peer_id = ?2 AND reason != 'purge')
     OR EXISTS (SELECT 1 FROM scope WHERE peer_id = ?2 AND doc_id = '*'))";

/// How long a closed referral keeps the record in the receiving organization's scope, unless
/// set with [`Store::set_referral_grace`]: a week, to write the discharge note and answer calls.
pub const DEFAULT_REFERRAL_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Referral statuses that keep a record in the receiving organization's scope.
const OPEN_REFERRAL: &str = "('requested', 'received', 'accepted', 'in-progress', 'on-hold')";

/// Which (device, document) pairs the directory puts in scope, and why: residents contracted to
/// a team of the device's practitioner, until the contract's last day is more than `:cutoff`
/// behind; records referred to the device's organization while the
/// referral is open or closed after `:cutoff`. Revoked devices and hubs (scoped by operators)
/// get nothing derived.
fn derived_scope(slice: &str) -> String {
    format!(
        "SELECT peer_id, doc_id, min(reason) FROM (
             SELECT d.device_id AS peer_id, x.doc_id AS doc_id, 'team' AS reason
             FROM devices d JOIN team_members m ON m.practitioner_id = d.practitioner_id
                  JOIN docs x ON x.scope_team = m.team_id
             WHERE d.revoked_at IS NULL AND d.kind = 'phone'
               AND coalesce(x.scope_team_until, :cutoff) >= :cutoff
             UNION ALL
             SELECT d.device_id, r.patient_id, 'referral'
             FROM devices d JOIN referral_index r ON r.to_org = d.organization_id
             WHERE d.revoked_at IS NULL AND d.kind = 'phone'
               AND (r.status IN {OPEN_REFERRAL} OR coalesce(r.changed_at, r.created_at) >= :cutoff)
         ) WHERE {slice} GROUP BY peer_id, doc_id"
    )
}

/// The grace period for closed referrals, in ms.
pub(crate) fn referral_grace_ms(conn: &Connection) -> Result<i64> {
    let stored: Option<i64> = conn
        .prepare_cached("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'referral_grace_ms'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(stored.unwrap_or(DEFAULT_REFERRAL_GRACE.as_millis() as i64))
}

/// The time scope decisions are made at: never earlier than the latest sweep, so a relay whose
/// clock steps back does not hand out again a record whose grace period already ran out.
pub(crate) fn scope_clock(conn: &Connection, now: Millis) -> Result<Millis> {
    let swept: Option<i64> = conn
        .prepare_cached("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'scope_swept_at'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(now.max(swept.unwrap_or(0)))
}

/// Brings the derived scope rows of one slice (`peer_id = :key` or `doc_id = :key`) in line with
/// the directory and the records: new pairs become grants, pairs whose reason is gone become
/// purges. Returns how many rows changed.
fn reconcile(conn: &Connection, slice: &str, key: &str, now: Millis, grace_ms: i64) -> Result<usize> {
    let now = scope_clock(conn, now)?;
    let cutoff = now.saturating_sub(grace_ms);
    // Ordered: the grants a change makes are numbered the same way on every run.
    let mut wanted: BTreeMap<(String, String), String> = BTreeMap::new();
    {
        let mut stmt = conn.prepare_cached(&derived_scope(slice))?;
        let rows = stmt.query_map(named_params! {":key": key, ":cutoff": cutoff}, |r| {
            Ok(((r.get::<_, String>(0)?, r.get::<_, String>(1)?), r.get::<_, String>(2)?))
        })?;
        for row in rows {
            let (pair, reason) = row?;
            wanted.insert(pair, reason);
        }
    }
    let mut held: BTreeMap<(String, String), String> = BTreeMap::new();
    {
        let mut stmt = conn.prepare_cached(&format!("SELECT peer_id, doc_id, reason FROM scope WHERE {slice}"))?;
        let rows = stmt.query_map(named_params! {":key": key}, |r| {
            Ok(((r.get::<_, String>(0)?, r.get::<_, String>(1)?), r.get::<_, String>(2)?))
        })?;
        for row in rows {
            let (pair, reason) = row?;
            held.insert(pair, reason);
        }
    }
    let mut replace = conn
        .prepare_cached("INSERT OR REPLACE INTO scope (peer_id, doc_id, reason, granted_at) VALUES (?1, ?2, ?3, ?4)")?;
    let mut changed = 0;
    for ((peer, doc), reason) in &wanted {
        match held.get(&(peer.clone(), doc.clone())).map(String::as_str) {
            None | Some("purge") => {
                // REPLACE deletes the old row: the grant gets a new, higher number.
                replace.execute(params![peer, doc, reason, now])?;
                changed += 1;
            }
            Some("created" | "creator") => {
                // The directory now says whose the record is: from here it follows its team or
                // referral like any other (the row keeps its number: nothing is sent again).
                conn.prepare_cached("UPDATE scope SET reason = ?3 WHERE peer_id = ?1 AND doc_id = ?2")?
                    .execute(params![peer, doc, reason])?;
            }
            _ => {}
        }
    }
    for ((peer, doc), reason) in &held {
        let derived = matches!(reason.as_str(), "team" | "referral")
            // A record's creator holds it until the directory places it: then it follows its
            // team like any other (a resident registered and signed to another team, or whose
            // contract ran out before this parent saw it, leaves the phone that registered it).
            || (matches!(reason.as_str(), "created" | "creator") && placed(conn, doc)?);
        if derived && !wanted.contains_key(&(peer.clone(), doc.clone())) {
            purge(conn, peer, doc, now)?;
            tracing::info!(device = %peer, doc = %doc, was = %reason, "record left the device's scope");
            changed += 1;
        }
    }
    Ok(changed)
}

/// `doc` leaves `peer`'s scope: a purge grant (with a new number) replaces its row. The child
/// deletes the record, so what came from it is no longer something it has (a catch-up that grants
/// the record again must carry those changes too).
fn purge(conn: &Connection, peer: &str, doc: &str, now: Millis) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO scope (peer_id, doc_id, reason, granted_at) VALUES (?1, ?2, 'purge', ?3)",
    )?
    .execute(params![peer, doc, now])?;
    conn.prepare_cached("UPDATE changes SET origin = NULL WHERE doc_id = ?1 AND origin = ?2")?
        .execute(params![doc, peer])?;
    Ok(())
}

/// Whether the directory places the record: a contract names its team.
fn placed(conn: &Connection, doc: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT scope_team IS NOT NULL FROM docs WHERE doc_id = ?1")?
        .query_row([doc], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}

/// Re-derives the scope of one device (enrolled, or its practitioner's teams changed).
pub(crate) fn refresh_device_scope(conn: &Connection, device: &str, now: Millis, grace_ms: i64) -> Result<usize> {
    reconcile(conn, "peer_id = :key", device, now, grace_ms)
}

/// Re-derives which devices see one document (its contract or referrals changed).
pub(crate) fn refresh_document_scope(conn: &Connection, doc: PatientId, now: Millis) -> Result<usize> {
    reconcile(conn, "doc_id = :key", &doc.to_string(), now, referral_grace_ms(conn)?)
}

impl Store {
    /// Whether grant `grant_seq`, which a child heard, was issued by this database and lost: it
    /// lies in the numbers skipped at an open, which no grant of this database's own history has.
    pub fn grant_lost(&self, grant_seq: i64) -> Result<bool> {
        Ok(self
            .lock()
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM grant_gaps WHERE after < ?1 AND ?1 <= upto)")?
            .query_row([grant_seq], |r| r.get(0))?)
    }

    /// A child's report of every record it holds, asked for after this parent was restored from
    /// an older backup (what it knew of the child's scope since the backup is gone): a record the
    /// child may not read gets a purge (so it deletes it, and its late edits to it are taken); a
    /// record of its scope granted up to `heard` that it lacks is granted again (it was purged
    /// after the backup and has come back since). Returns how many rows changed.
    pub fn record_holdings(&self, peer: &str, docs: &[PatientId], heard: i64) -> Result<usize> {
        let inner = self.lock();
        let now = inner.now();
        let tx = inner.conn.unchecked_transaction()?;
        let held: std::collections::BTreeSet<String> = docs.iter().map(PatientId::to_string).collect();
        let mut changed = 0;
        for doc in &held {
            let id: PatientId = doc.parse()?;
            // A record this parent no longer has at all is left alone: the child's copy may be
            // the only one left of what the restore lost (its creator pushes it again, and the
            // directory then places it).
            if may_write(&tx, peer, id)? == Some(true) || !exists(&tx, id)? {
                continue;
            }
            purge(&tx, peer, doc, now)?;
            changed += 1;
        }
        let granted: Vec<(String, String)> = tx
            .prepare_cached(
                "SELECT doc_id, reason FROM scope WHERE peer_id = ?1 AND grant_id <= ?2
                 AND reason != 'purge' AND doc_id != '*' ORDER BY grant_id",
            )?
            .query_map(params![peer, heard], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (doc, reason) in granted.into_iter().filter(|(doc, _)| !held.contains(doc)) {
            // A new number, so it is sent; a record it created is sent whole like any grant.
            let reason = if reason == "created" { "creator".to_string() } else { reason };
            tx.prepare_cached(
                "INSERT OR REPLACE INTO scope (peer_id, doc_id, reason, granted_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![peer, doc, reason, now])?;
            changed += 1;
        }
        tx.commit()?;
        if changed > 0 {
            inner.notify(false, super::Committed::Scope);
        }
        Ok(changed)
    }

    /// Sets how long a closed referral keeps the record in the receiving organization's scope,
    /// and a contract that ran out (its last day passed, not renewed) in its team's.
    pub fn set_referral_grace(&self, grace: Duration) -> Result<()> {
        let inner = self.lock();
        inner
            .conn
            .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('referral_grace_ms', ?1)")?
            .execute([grace.as_millis().min(i64::MAX as u128) as i64])?;
        Ok(())
    }

    /// Re-derives, as of `now`, the scope of every record some device holds through a referral:
    /// grace periods that ran out become purges. A relay calls it every minute. Returns how many
    /// scope rows changed.
    pub fn sweep_scope(&self, now: Millis) -> Result<usize> {
        let inner = self.lock();
        let tx = inner.conn.unchecked_transaction()?;
        let grace = referral_grace_ms(&tx)?;
        tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('scope_swept_at', ?1)")?.execute([now])?;
        let docs: Vec<String> = {
            let mut stmt = tx.prepare_cached(
                "SELECT doc_id FROM scope WHERE reason = 'referral'
                 UNION SELECT s.doc_id FROM scope s JOIN docs x ON x.doc_id = s.doc_id
                 WHERE s.reason = 'team' AND x.scope_team_until < ?1",
            )?;
            let cutoff = scope_clock(&tx, now)?.saturating_sub(grace);
            stmt.query_map([cutoff], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
        };
        let mut changed = 0;
        for doc in docs {
            changed += reconcile(&tx, "doc_id = :key", &doc, now, grace)?;
        }
        tx.commit()?;
        if changed > 0 {
            inner.notify(false, super::Committed::Scope);
        }
        Ok(changed)
    }

    /// The scope rows of `peer` with their reasons (`created`, `assigned`, `team`, `referral`,
    /// `purge`), oldest first: what an operator reads to see why a device holds a record.
    pub fn scope_reasons(&self, peer: &str) -> Result<Vec<(String, String)>> {
        let inner = self.lock();
        let mut stmt =
            inner.conn.prepare_cached("SELECT doc_id, reason FROM scope WHERE peer_id = ?1 ORDER BY grant_id")?;
        let rows = stmt.query_map([peer], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<(String, String)>>>()?)
    }
}
