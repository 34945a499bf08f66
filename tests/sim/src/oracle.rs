//! What must hold once a run is quiescent, and the counts a run reports.

use crate::world::{RELAY, World, short};
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use yilian_core::{PatientId, Store};

/// An edit whose call returned Ok on a phone.
#[derive(Clone, Debug)]
pub struct Edit {
    /// The phone (index in the run).
    pub phone: usize,
    /// The record it changed.
    pub doc: PatientId,
    /// The changes it made.
    pub hashes: Vec<[u8; 32]>,
    /// The scheduler step it was made at.
    pub step: usize,
    /// The phone was lost and restored from a backup before the relay received it: no system
    /// can bring such an edit back, so it is not counted as lost.
    pub lost_with_storage: bool,
}

/// Counts of one run (or of many added up).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Runs added up.
    pub runs: usize,
    /// Edits that returned Ok.
    pub edits: usize,
    /// Sessions opened.
    pub sessions: usize,
    /// Sessions that ended with a protocol error (lost, duplicated or reordered messages).
    pub failed_sessions: usize,
    /// Sessions that ended on a store error.
    pub session_errors: usize,
    /// Sessions cut.
    pub cuts: usize,
    /// Phones crashed and reopened.
    pub phone_crashes: usize,
    /// Relay crashes.
    pub relay_crashes: usize,
    /// Phones restored from an older backup.
    pub restores: usize,
    /// Relays restored from an older backup.
    pub relay_restores: usize,
    /// Doctors moved to another team or added to a second one.
    pub member_moves: usize,
    /// Phone clocks set wrong (or corrected).
    pub clock_skews: usize,
    /// Contracts signed to run out during the run.
    pub short_contracts: usize,
    /// Sessions in which a phone found its log restored (and started again saying so).
    pub restored_found: usize,
    /// Changes delivered to the relay before their dependencies.
    pub early_deliveries: usize,
    /// Devices revoked.
    pub revocations: usize,
    /// Changes the relay refused (each reported to the phone).
    pub refused: usize,
    /// Sessions checked at the moment they reported synced.
    pub synced_checks: usize,
    /// Final sync rounds until nothing moved.
    pub final_rounds: usize,
    /// Edits lost with a phone's storage (never received by the relay before a restore).
    pub lost_with_storage: usize,
    /// Edits lost: returned Ok on a phone still enrolled, held by nobody.
    pub lost: usize,
    /// Records held outside a store's scope.
    pub leaked: usize,
    /// Records that differ from the relay's on a store whose scope holds them.
    pub diverged: usize,
    /// Changes stored twice.
    pub duplicated: usize,
    /// Sessions that reported synced while the relay held a change they lacked.
    pub synced_early: usize,
}

impl Tally {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &Tally) {
        let fields: [(&mut usize, usize); 25] = [
            (&mut self.runs, other.runs.max(1)),
            (&mut self.edits, other.edits),
            (&mut self.sessions, other.sessions),
            (&mut self.failed_sessions, other.failed_sessions),
            (&mut self.session_errors, other.session_errors),
            (&mut self.cuts, other.cuts),
            (&mut self.phone_crashes, other.phone_crashes),
            (&mut self.relay_crashes, other.relay_crashes),
            (&mut self.restores, other.restores),
            (&mut self.relay_restores, other.relay_restores),
            (&mut self.member_moves, other.member_moves),
            (&mut self.clock_skews, other.clock_skews),
            (&mut self.short_contracts, other.short_contracts),
            (&mut self.restored_found, other.restored_found),
            (&mut self.early_deliveries, other.early_deliveries),
            (&mut self.revocations, other.revocations),
            (&mut self.refused, other.refused),
            (&mut self.synced_checks, other.synced_checks),
            (&mut self.final_rounds, other.final_rounds),
            (&mut self.lost_with_storage, other.lost_with_storage),
            (&mut self.lost, other.lost),
            (&mut self.leaked, other.leaked),
            (&mut self.diverged, other.diverged),
            (&mut self.duplicated, other.duplicated),
            (&mut self.synced_early, other.synced_early),
        ];
        for (mine, theirs) in fields {
            *mine += theirs;
        }
    }

    /// One line per group of counts.
    pub fn summary(&self) -> String {
        format!(
            "{} runs: {} edits, {} sessions ({} failed on faults, {} store errors, {} cut), \
             {} phone crashes, {} relay crashes, {} restores ({} found by the log mark), \
             {} relay restores, {} team moves, {} clock skews, {} contracts running out, {} early deliveries, {} revocations, {} changes refused, {} synced checks\n\
             lost {}, leaked {}, diverged {}, duplicated {}, synced early {} \
             (not counted as lost: {} edits gone with a restored phone's or relay's storage before any other store held them)",
            self.runs,
            self.edits,
            self.sessions,
            self.failed_sessions,
            self.session_errors,
            self.cuts,
            self.phone_crashes,
            self.relay_crashes,
            self.restores,
            self.restored_found,
            self.relay_restores,
            self.member_moves,
            self.clock_skews,
            self.short_contracts,
            self.early_deliveries,
            self.revocations,
            self.refused,
            self.synced_checks,
            self.lost,
            self.leaked,
            self.diverged,
            self.duplicated,
            self.synced_early,
            self.lost_with_storage,
        )
    }
}

/// The records in `peer`'s scope at `relay` (every record for a `*` grant).
pub fn scope_of(relay: &Store, peer: &str) -> Result<BTreeSet<PatientId>> {
    let rows = relay.scope_of(peer)?;
    if rows.iter().any(|d| d == "*") {
        return Ok(relay.patient_ids()?.into_iter().collect());
    }
    Ok(rows.iter().filter_map(|d| d.parse().ok()).collect())
}

/// Every change hash `store` holds.
pub fn hashes(store: &Store) -> Result<HashSet<[u8; 32]>> {
    Ok(store.changes_since(0, usize::MAX)?.into_iter().map(|c| c.hash).collect())
}

/// Each record's change hashes in `store`.
fn by_doc(store: &Store) -> Result<BTreeMap<PatientId, BTreeSet<[u8; 32]>>> {
    let mut out: BTreeMap<PatientId, BTreeSet<[u8; 32]>> = BTreeMap::new();
    for c in store.changes_since(0, usize::MAX)? {
        out.entry(c.doc_id).or_default().insert(c.hash);
    }
    Ok(out)
}

/// The changes of `docs` that `relay` held up to `head` and `phone` lacks, named.
pub fn missing_at(relay: &Store, phone: &Store, docs: &BTreeSet<PatientId>, head: i64) -> Result<Vec<String>> {
    let have = hashes(phone)?;
    Ok(relay
        .changes_since(0, usize::MAX)?
        .into_iter()
        .filter(|c| c.seq <= head && docs.contains(&c.doc_id) && !have.contains(&c.hash))
        .map(|c| format!("relay change {} of {}", c.seq, short(c.doc_id)))
        .collect())
}

/// Why the relay's scope names `doc` for `peer`, if it does at all.
fn relay_reason(relay: &Store, peer: &str, doc: PatientId) -> Result<String> {
    let id = doc.to_string();
    let reason = relay
        .scope_reasons(peer)?
        .into_iter()
        .find(|(d, _)| *d == id)
        .map_or_else(|| "none".to_string(), |(_, reason)| reason);
    let grant = relay
        .grants_after(peer, 0, usize::MAX)?
        .into_iter()
        .find(|(_, g, _)| *g == yilian_core::ScopeGrant::Document(doc))
        .map_or_else(|| "no grant".to_string(), |(n, _, _)| format!("grant {n}"));
    Ok(format!("{reason}, {grant}"))
}

fn fail(world: &mut World<'_>, line: String) {
    world.failures.push(line);
}

/// Checks a quiescent run; adds what it finds to the world's failures and tally.
pub(crate) fn check(world: &mut World<'_>) -> Result<()> {
    let relay = world.relay;
    let at_relay = hashes(relay)?;
    let relay_docs = by_doc(relay)?;
    // Every edit that returned Ok on a phone still enrolled is at the relay (and from there, by
    // the per-record comparison below, on every store whose scope holds its record).
    let edits = world.edits.clone();
    for edit in &edits {
        let phone = &world.phones[edit.phone];
        if phone.revoked {
            continue;
        }
        if edit.lost_with_storage {
            world.tally.lost_with_storage += 1;
            continue;
        }
        let missing = edit.hashes.iter().filter(|h| !at_relay.contains(*h)).count();
        if missing == 0 {
            continue;
        }
        world.tally.lost += 1;
        let line = format!(
            "LOST: an edit of {} on {} at step {} ({missing} of {} change(s) not at the relay)",
            phone.id,
            short(edit.doc),
            edit.step,
            edit.hashes.len()
        );
        fail(world, line);
    }
    let mut stores: Vec<(String, &Store)> = vec![("relay".to_string(), relay)];
    for i in 0..world.phones.len() {
        let phone = &world.phones[i];
        stores.push((phone.id.clone(), phone.store));
        if phone.revoked {
            continue;
        }
        let scope = scope_of(relay, &phone.id)?;
        let held: BTreeSet<PatientId> = phone.store.patient_ids()?.into_iter().collect();
        let docs = by_doc(phone.store)?;
        let (id, store) = (phone.id.clone(), phone.store);
        for doc in held.difference(&scope) {
            world.tally.leaked += 1;
            let at_relay = relay_docs.get(doc).map_or(0, BTreeSet::len);
            let (mine, why) = (docs.get(doc).map_or(0, BTreeSet::len), relay_reason(relay, &id, *doc)?);
            let cursor = store.peer_grant_seq(RELAY)?;
            fail(
                world,
                format!(
                    "LEAKED: {id} holds {} outside its scope ({mine} change(s) here, {at_relay} at the relay; relay's scope row: {why}; its grant cursor {cursor})",
                    short(*doc)
                ),
            );
        }
        for doc in &scope {
            let theirs = relay_docs.get(doc);
            let mine = docs.get(doc);
            if theirs != mine {
                world.tally.diverged += 1;
                let (t, m) = (theirs.map_or(0, BTreeSet::len), mine.map_or(0, BTreeSet::len));
                fail(world, format!("DIVERGED: {id}'s {} has {m} change(s), the relay's {t}", short(*doc)));
            } else if mine.is_some() && !store.patient_ids()?.contains(doc) {
                world.tally.diverged += 1;
                let why = relay_reason(relay, &id, *doc)?;
                fail(
                    world,
                    format!(
                        "DIVERGED: {id} lacks {}, which is in its scope (relay's scope row: {why}), but keeps its own changes of it",
                        short(*doc)
                    ),
                );
            } else if mine.is_some() && store.export_json(*doc)? != relay.export_json(*doc)? {
                world.tally.diverged += 1;
                let fields = differing_fields(&store.export_json(*doc)?, &relay.export_json(*doc)?);
                fail(world, format!("DIVERGED: {id}'s {} reads differently from the relay's ({fields})", short(*doc)));
            }
        }
    }
    for (id, store) in stores {
        let all = store.changes_since(0, usize::MAX)?;
        let distinct: HashSet<[u8; 32]> = all.iter().map(|c| c.hash).collect();
        if distinct.len() != all.len() {
            world.tally.duplicated += all.len() - distinct.len();
            fail(world, format!("TWICE: {id} stores {} change(s) twice", all.len() - distinct.len()));
        }
    }
    world.tally.synced_early = world.failures.iter().filter(|f| f.contains("reported synced")).count();
    world.tally.runs = 1;
    Ok(())
}

/// The top-level fields of two records' JSON that differ, for a divergence report.
fn differing_fields(mine: &serde_json::Value, theirs: &serde_json::Value) -> String {
    let empty = serde_json::Map::new();
    let (mine, theirs) = (mine.as_object().unwrap_or(&empty), theirs.as_object().unwrap_or(&empty));
    let mut keys: BTreeSet<&String> = mine.keys().collect();
    keys.extend(theirs.keys());
    let differ: Vec<&str> = keys.into_iter().filter(|k| mine.get(*k) != theirs.get(*k)).map(String::as_str).collect();
    format!("differs in: {}", differ.join(", "))
}

/// The SHA-256 of every row of every table of the database at `path` (rows in a canonical order),
/// read through a connection of its own: equal for two runs of one seed only if every byte each
/// store wrote (changes, their times and authors, cursors, grants) is the same.
pub fn fingerprint(path: &std::path::Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut digest = Sha256::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\""))?;
        let columns = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let values = (0..columns)
                    .map(|c| r.get::<_, rusqlite::types::Value>(c).map(|v| format!("{v:?}")))
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                Ok(values.join("\u{1f}"))
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.sort_unstable();
        digest.update(table.as_bytes());
        for row in rows {
            digest.update(row.as_bytes());
            digest.update([0x1e]);
        }
    }
    Ok(digest.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
