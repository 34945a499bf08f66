//! The store's SQLite schema, as numbered migrations applied in one transaction each.

use crate::{Error, Result};
use rusqlite::Connection;

/// Migrations in order; the schema version is the number applied (`PRAGMA user_version`).
const MIGRATIONS: &[&str] = &[
    // 1: documents, the change log, peer cursors, and the derived indexes.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    -- One row per patient document: its compacted snapshot and current heads.
    CREATE TABLE docs (
        doc_id       TEXT PRIMARY KEY,
        kind         TEXT NOT NULL DEFAULT 'patient',
        snapshot     BLOB,                          -- automerge save(); NULL until first compaction
        snapshot_seq INTEGER NOT NULL DEFAULT 0,    -- changes of this doc up to here are in the snapshot
        pending      INTEGER NOT NULL DEFAULT 0,    -- changes stored since the snapshot
        heads        BLOB NOT NULL DEFAULT x'',     -- concatenated 32-byte change hashes
        scope_team   TEXT,                          -- team of the latest active contract
        scope_orgs   TEXT NOT NULL DEFAULT '',      -- organizations that hold this record (',org,...,')
        updated_seq  INTEGER NOT NULL DEFAULT 0
    );
    -- The change log: every change this replica stores, numbered in arrival order.
    CREATE TABLE changes (
        local_seq  INTEGER PRIMARY KEY AUTOINCREMENT,
        doc_id     TEXT NOT NULL,
        hash       BLOB NOT NULL UNIQUE,
        bytes      BLOB NOT NULL,
        author     BLOB,              -- device public key when the change names it
        signature  BLOB,              -- Ed25519 over the hash, by the authoring device
        local      INTEGER NOT NULL,  -- 1: made on this replica
        stored_at  INTEGER NOT NULL
    );
    CREATE INDEX changes_by_doc ON changes(doc_id, local_seq);
    CREATE INDEX changes_local ON changes(local, local_seq);
    -- Sync cursors per peer.
    CREATE TABLE peers (
        peer_id    TEXT PRIMARY KEY,
        acked_seq  INTEGER NOT NULL DEFAULT 0,   -- how much of our log the peer has acknowledged
        read_seq   INTEGER NOT NULL DEFAULT 0,   -- how far we have read the peer's log
        updated_at INTEGER NOT NULL DEFAULT 0
    );
    -- Derived indexes, written in the same transaction as each change; rebuildable from docs.
    CREATE TABLE patient_index (
        patient_id      TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        sex             TEXT NOT NULL,
        birth_date      TEXT NOT NULL,
        organization_id TEXT NOT NULL,
        team_id         TEXT,
        practitioner_id TEXT,
        contract_start  TEXT,
        contract_end    TEXT,
        programs        TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX patient_by_practitioner ON patient_index(practitioner_id);
    CREATE INDEX patient_by_team ON patient_index(team_id);
    CREATE TABLE due_index (
        patient_id TEXT PRIMARY KEY,
        due        TEXT NOT NULL,
        reasons    TEXT NOT NULL
    );
    CREATE INDEX due_by_date ON due_index(due);
    CREATE TABLE referral_index (
        referral_id TEXT PRIMARY KEY,
        patient_id  TEXT NOT NULL,
        direction   TEXT NOT NULL,
        from_org    TEXT NOT NULL,
        to_org      TEXT NOT NULL,
        status      TEXT NOT NULL,
        urgency     TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        changed_at  INTEGER
    );
    CREATE INDEX referral_by_patient ON referral_index(patient_id);
    CREATE INDEX referral_to ON referral_index(to_org, status);
    CREATE INDEX referral_from ON referral_index(from_org, status);
    "#,
    // 2: the typed record as JSON beside each document (a materialized view, derived data), so
    // opening a record does not re-read every automerge op.
    r#"
    ALTER TABLE docs ADD COLUMN view BLOB;
    ALTER TABLE docs ADD COLUMN view_heads BLOB;
    "#,
    // 3: sync bookkeeping: which peer each change came from (not echoed back to it), which of a
    // peer's logs our cursor refers to, and this replica's own log id.
    r#"
    ALTER TABLE changes ADD COLUMN origin TEXT;
    ALTER TABLE peers ADD COLUMN log_id TEXT NOT NULL DEFAULT '';
    -- (The replica's log id is drawn when the store opens, from its seeded randomness.)
    "#,
    // 4: scope, on a parent (relay, edge hub): which documents each child may see and write.
    // Grants are numbered so that a child reads the ones meant for it like a log (its cursor is
    // `peers.grant_seq` on the child's side). `doc_id` '*' grants every document.
    r#"
    CREATE TABLE scope (
        grant_id   INTEGER PRIMARY KEY AUTOINCREMENT,
        peer_id    TEXT NOT NULL,
        doc_id     TEXT NOT NULL,
        reason     TEXT NOT NULL,      -- 'created': the child created it here; 'assigned': an operator
        granted_at INTEGER NOT NULL,
        UNIQUE (peer_id, doc_id)
    );
    ALTER TABLE peers ADD COLUMN grant_seq INTEGER NOT NULL DEFAULT 0;
    "#,
    // 5: on a parent, the device key each automerge actor belongs to (first seen wins), so a
    // change that claims another device's actor is refused.
    r#"
    CREATE TABLE actors (
        actor  BLOB PRIMARY KEY,
        author BLOB NOT NULL
    );
    "#,
    // 6: on a relay, the consortium directory (organizations, practitioners, family-doctor teams),
    // enrolled devices and their enrollment codes, operators' API tokens and the log of their
    // reads. Codes and tokens are stored as SHA-256 hashes only. Scope rows gain two reasons
    // derived from the directory ('team', 'referral') and 'purge': the document left the
    // child's scope (the row keeps its place in the child's list of grants).
    r#"
    CREATE TABLE organizations (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        kind       TEXT NOT NULL,
        part_of    TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE practitioners (
        id              TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        role            TEXT NOT NULL,
        organization_id TEXT NOT NULL,
        created_at      INTEGER NOT NULL
    );
    CREATE TABLE teams (
        id              TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        organization_id TEXT NOT NULL,
        created_at      INTEGER NOT NULL
    );
    CREATE TABLE team_members (
        team_id         TEXT NOT NULL,
        practitioner_id TEXT NOT NULL,
        PRIMARY KEY (team_id, practitioner_id)
    );
    CREATE INDEX team_members_by_practitioner ON team_members(practitioner_id);
    CREATE TABLE enrollment_codes (
        code_hash       BLOB PRIMARY KEY,
        practitioner_id TEXT NOT NULL,
        organization_id TEXT NOT NULL,
        kind            TEXT NOT NULL,     -- 'phone' | 'hub'
        issued_by       TEXT NOT NULL,
        issued_at       INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL,
        used_at         INTEGER,
        used_by         TEXT
    );
    CREATE TABLE devices (
        device_id       TEXT PRIMARY KEY,
        public_key      BLOB NOT NULL UNIQUE,
        practitioner_id TEXT NOT NULL,
        organization_id TEXT NOT NULL,
        kind            TEXT NOT NULL,
        enrolled_at     INTEGER NOT NULL,
        revoked_at      INTEGER,
        revoked_by      TEXT,
        revoke_reason   TEXT
    );
    CREATE INDEX devices_by_practitioner ON devices(practitioner_id);
    CREATE INDEX devices_by_organization ON devices(organization_id);
    CREATE TABLE admin_tokens (
        token_hash BLOB PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE TABLE record_reads (
        read_id INTEGER PRIMARY KEY AUTOINCREMENT,
        reader  TEXT NOT NULL,
        doc_id  TEXT NOT NULL,
        what    TEXT NOT NULL,
        at      INTEGER NOT NULL
    );
    CREATE INDEX record_reads_by_doc ON record_reads(doc_id, at);
    CREATE INDEX scope_by_doc ON scope(doc_id);
    CREATE INDEX docs_by_team ON docs(scope_team);
    "#,
    // 7: roles of the API's operators: tokens made before roles existed were all-powerful.
    r#"
    ALTER TABLE admin_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'
        CHECK (role IN ('admin', 'referral_desk', 'analyst'));
    "#,
    // 8: a referral desk's token acts for one organization (its worklist, its decisions);
    // consortium-wide tokens (admin, analyst) have none.
    r#"
    ALTER TABLE admin_tokens ADD COLUMN organization_id TEXT;
    "#,
    // 9: on a parent, how far each child has read this log, as far as the parent knows (what the
    // child said at its last hello, moved on by every batch sent since): its sync lag.
    r#"
    ALTER TABLE peers ADD COLUMN delivered_seq INTEGER NOT NULL DEFAULT 0;
    "#,
    // 10: on a child, where an unfinished catch-up from this parent stands (its first read of the
    // parent's log arrives as whole documents, page by page): the head and grant it covers and
    // the last document stored.
    r#"
    ALTER TABLE peers ADD COLUMN catch_up_head INTEGER;
    ALTER TABLE peers ADD COLUMN catch_up_grant INTEGER;
    ALTER TABLE peers ADD COLUMN catch_up_after BLOB;
    "#,
    // 11: a log's identity beyond its numbers. On a parent, the last change of each child's log it
    // holds (position and hash), which the child checks against its own log at every welcome; on
    // a child, that the check failed (its log was restored from a backup), until the parent has
    // taken its whole log again.
    r#"
    ALTER TABLE peers ADD COLUMN acked_mark_seq INTEGER;
    ALTER TABLE peers ADD COLUMN acked_mark_hash BLOB;
    ALTER TABLE peers ADD COLUMN restored INTEGER NOT NULL DEFAULT 0;
    "#,
    // 12: on a relay, until when a record's team holds it: the first instant (UTC+8 midnight, ms)
    // after the last day of the contract that names the team. Past it (and the grace period) the
    // team's phones purge the record. Existing rows take it from the patient index.
    // On a child, the log positions and hashes of its own changes deleted by a purge (its log's
    // head and identity stay what its parent acknowledged), and the purged records whose own
    // edits the parent has not acknowledged yet (they stay in the log until it has).
    r#"
    CREATE TABLE purged_log (local_seq INTEGER PRIMARY KEY, hash BLOB NOT NULL);
    CREATE TABLE purge_waiting (doc_id TEXT PRIMARY KEY, parent TEXT NOT NULL);
    ALTER TABLE docs ADD COLUMN scope_team_until INTEGER;
    UPDATE docs SET scope_team_until =
        (SELECT (CAST(strftime('%s', p.contract_end, '+1 day') AS INTEGER) - 8 * 3600) * 1000
         FROM patient_index p WHERE p.patient_id = docs.doc_id AND p.contract_end IS NOT NULL)
    WHERE scope_team IS NOT NULL;
    "#,
    // 13: on a parent, the grant numbers skipped at each open (from the last one issued to past
    // the clock): a child that heard a number inside one heard a grant this database lost, as it
    // was restored from an older backup.
    r#"
    CREATE TABLE grant_gaps (after INTEGER NOT NULL, upto INTEGER NOT NULL);
    "#,
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`VERSION`], one transaction per migration.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > VERSION {
        return Err(Error::SchemaTooNew { found: current, supported: VERSION });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_files() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, VERSION);
        conn.pragma_update(None, "user_version", VERSION + 1).unwrap();
        assert!(matches!(migrate(&mut conn), Err(Error::SchemaTooNew { .. })));
    }
}
