//! The store on disk: reopening, damaged files and blobs, encryption keys, and changes from
//! peers that are malformed, duplicated or out of order.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::*;
use rusqlite::Connection;
use yilian_core::model::{TaskStatus, VisitAmendment, VisitField};
use yilian_core::{Error, IncomingChange, Store, StoreOptions};

fn options() -> StoreOptions {
    StoreOptions { compact_every: 2, ..common::options() }
}

#[test]
fn records_survive_reopening_and_the_device_key_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    let (p, key, actor) = {
        let store = Store::open(&path, options()).unwrap();
        let p = registered(&store, "持久");
        for s in 120..125 {
            store.record_visit(p, visit(s, 80)).unwrap();
        }
        (p, store.device_public_key(), store.actor())
    };
    let store = Store::open(&path, options()).unwrap();
    assert_eq!(store.visits(p).unwrap().len(), 5);
    assert_eq!(store.device_public_key(), key);
    assert_ne!(store.actor(), actor, "every open gets a fresh actor");
    store.record_visit(p, visit(126, 80)).unwrap();
    assert_eq!(store.visits(p).unwrap().len(), 6);
    store.check_integrity().unwrap();
}

/// The view saved with a record's snapshot, and how many of its changes were logged after it.
fn snapshot_view_and_changes_after(path: &std::path::Path, p: yilian_core::PatientId) -> (bool, i64) {
    let conn = Connection::open(path).unwrap();
    conn.query_row(
        "SELECT view IS NOT NULL,
                (SELECT count(*) FROM changes c WHERE c.doc_id = d.doc_id AND c.local_seq > d.snapshot_seq)
         FROM docs d WHERE doc_id = ?1",
        [p.to_string()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// A cold load reads the record from the view saved with the snapshot and re-reads only what the
/// changes logged since touched: later visits, an amended visit, a referral and its status move.
/// The record reopened must be the record as it was, on the phone that made the changes and on a
/// peer that received them.
#[test]
fn a_reopened_record_is_its_snapshot_view_brought_up_to_date_by_later_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (path, peer_path) = (dir.path().join("device.db"), dir.path().join("peer.db"));
    let options = || StoreOptions { compact_every: 5, ..options() };
    let (p, before) = {
        let store = Store::open(&path, options()).unwrap();
        let p = registered(&store, "视图");
        let first = store.record_visit(p, visit(150, 95)).unwrap();
        for systolic in 120..123 {
            store.record_visit(p, visit(systolic, 80)).unwrap();
        }
        let peer = Store::open(&peer_path, options()).unwrap();
        exchange(&store, &peer);
        let amendment = VisitAmendment {
            field: VisitField::SystolicMmhg(Some(148)),
            practitioner_id: DR_WANG.into(),
            reason: "misread".into(),
        };
        store.amend_visit(p, first, amendment).unwrap();
        let referral = store.create_referral(p, upward("blood pressure uncontrolled")).unwrap();
        store.add_referral_event(referral, event(TaskStatus::Received, "county-hospital")).unwrap();
        exchange(&store, &peer);
        assert_eq!(peer.patient(p).unwrap(), store.patient(p).unwrap());
        (p, store.patient(p).unwrap())
    };
    for path in [&path, &peer_path] {
        let (view, after) = snapshot_view_and_changes_after(path, p);
        assert!(view && after > 0, "{path:?}: a snapshot with its view, and changes logged after it ({view}, {after})");
        let reopened = Store::open(path, options()).unwrap();
        assert_eq!(reopened.patient(p).unwrap(), before, "{path:?}");
    }
}

/// A store at `path` with two residents of `visits` visits each, compacted into snapshots.
fn two_compacted_records(path: &std::path::Path, visits: usize) -> (yilian_core::PatientId, yilian_core::PatientId) {
    let store = Store::open(path, options()).unwrap();
    let a = registered(&store, "甲");
    let b = registered(&store, "乙");
    for _ in 0..visits {
        store.record_visit(a, visit(130, 80)).unwrap();
        store.record_visit(b, visit(140, 90)).unwrap();
    }
    store.compact().unwrap();
    (a, b)
}

#[test]
fn a_corrupt_snapshot_is_rebuilt_from_the_change_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    let (a, b) = two_compacted_records(&path, 3);
    let conn = Connection::open(&path).unwrap();
    let n =
        conn.execute("UPDATE docs SET snapshot = x'00112233445566778899' WHERE doc_id = ?1", [a.to_string()]).unwrap();
    assert_eq!(n, 1);
    drop(conn);
    let store = Store::open(&path, options()).unwrap();
    assert_eq!(store.visits(a).unwrap().len(), 3, "rebuilt from the log");
    assert_eq!(store.visits(b).unwrap().len(), 3);
}

#[test]
fn a_change_from_a_peer_reaches_a_record_whose_snapshot_is_corrupt() {
    // The record is not loaded when the change arrives: its stored bytes are read, and opened
    // with the batch's other records; a snapshot that does not load is rebuilt from the log.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hospital.db");
    let village = memory_store();
    let (a, b) = (registered(&village, "甲"), registered(&village, "乙"));
    for s in 120..123 {
        village.record_visit(a, visit(s, 80)).unwrap();
        village.record_visit(b, visit(s, 80)).unwrap();
    }
    let from = |after: i64| -> Vec<IncomingChange> {
        let changes = village.changes_since(after, 1000).unwrap();
        changes
            .into_iter()
            .map(|c| IncomingChange { doc_id: c.doc_id, bytes: c.bytes, signature: c.signature })
            .collect()
    };
    let first = from(0);
    {
        let hospital = Store::open(&path, options()).unwrap();
        assert_eq!(hospital.apply_remote_changes(first.clone()).unwrap().applied, first.len());
        hospital.compact().unwrap();
    }
    let conn = Connection::open(&path).unwrap();
    conn.execute("UPDATE docs SET snapshot = x'00112233445566778899' WHERE doc_id = ?1", [a.to_string()]).unwrap();
    drop(conn);
    let head = village.changes_since(0, 1000).unwrap().last().unwrap().seq;
    village.record_visit(a, visit(150, 95)).unwrap();
    village.record_visit(b, visit(151, 96)).unwrap();
    let hospital = Store::open(&path, options()).unwrap();
    let report = hospital.apply_remote_changes(from(head)).unwrap();
    assert_eq!((report.applied, report.rejected.len()), (2, 0), "{report:?}");
    assert_eq!(hospital.patient(a).unwrap(), village.patient(a).unwrap());
    assert_eq!(hospital.patient(b).unwrap(), village.patient(b).unwrap());
    assert_eq!(hospital.visits(a).unwrap().len(), 4);
}

#[test]
fn a_document_lost_from_snapshot_and_log_is_reported_and_others_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    let (a, b) = two_compacted_records(&path, 1);
    let conn = Connection::open(&path).unwrap();
    conn.execute("UPDATE docs SET snapshot = x'deadbeef' WHERE doc_id = ?1", [a.to_string()]).unwrap();
    conn.execute("UPDATE changes SET bytes = x'0badc0de' WHERE doc_id = ?1", [a.to_string()]).unwrap();
    drop(conn);
    let store = Store::open(&path, options()).unwrap();
    let err = store.patient(a).unwrap_err();
    assert!(matches!(err, Error::CorruptDocument { ref doc_id, .. } if *doc_id == a.to_string()), "{err}");
    assert!(err.to_string().starts_with(&format!("document {a} is corrupt")));
    assert_eq!(store.visits(b).unwrap().len(), 1);
    store.record_visit(b, visit(135, 85)).unwrap();
    assert_eq!(store.visits(b).unwrap().len(), 2);
}

#[test]
fn a_truncated_database_gives_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    {
        let store = Store::open(&path, options()).unwrap();
        for i in 0..40 {
            let p = registered(&store, &format!("居民{i}"));
            store.record_visit(p, visit(130, 80)).unwrap();
        }
    }
    // Closing checkpointed the WAL into the main file; cut that file in half.
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 8192, "database is {len} bytes");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let outcome = Store::open(&path, options()).and_then(|store| {
        store.check_integrity()?;
        for id in store.patient_ids()? {
            store.patient(id)?;
        }
        Ok(())
    });
    let err = outcome.expect_err("a database cut in half cannot be whole");
    let message = err.to_string();
    assert!(!message.is_empty());
    assert!(
        matches!(err, Error::WrongKeyOrNotADatabase | Error::Storage(_) | Error::CorruptDocument { .. }),
        "{message}"
    );
}

#[test]
fn garbage_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    std::fs::write(&path, vec![0x5a; 10_000]).unwrap();
    assert!(matches!(Store::open(&path, options()), Err(Error::WrongKeyOrNotADatabase)));
}

#[cfg(feature = "encryption")]
#[test]
fn encrypted_store_needs_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    let key = vec![7u8; 32];
    let p = {
        let store = Store::open(&path, StoreOptions { encryption_key: Some(key.clone()), ..options() }).unwrap();
        let p = registered(&store, "加密");
        store.record_visit(p, visit(130, 80)).unwrap();
        p
    };
    // The file holds no plaintext.
    let raw = std::fs::read(&path).unwrap();
    assert!(!raw.windows("加密".len()).any(|w| w == "加密".as_bytes()));
    assert!(!raw.starts_with(b"SQLite format 3"));
    let wrong = Store::open(&path, StoreOptions { encryption_key: Some(vec![8u8; 32]), ..options() });
    assert!(matches!(wrong, Err(Error::WrongKeyOrNotADatabase)));
    assert!(matches!(Store::open(&path, options()), Err(Error::WrongKeyOrNotADatabase)));
    let short = Store::open(&path, StoreOptions { encryption_key: Some(vec![1, 2, 3]), ..options() });
    assert_eq!(short.err().unwrap().to_string(), "encryption_key: must be 32 bytes, got 3");
    let store = Store::open(&path, StoreOptions { encryption_key: Some(key), ..options() }).unwrap();
    assert_eq!(store.visits(p).unwrap().len(), 1);
}

#[test]
fn bad_changes_from_a_peer_are_refused_item_by_item() {
    let village = memory_store();
    let p = registered(&village, "来自村里");
    village.record_visit(p, visit(130, 80)).unwrap();
    let good: Vec<IncomingChange> = village
        .changes_since(0, 100)
        .unwrap()
        .into_iter()
        .map(|c| IncomingChange { doc_id: c.doc_id, bytes: c.bytes, signature: c.signature })
        .collect();
    let hospital = memory_store();
    let mut batch = vec![IncomingChange { doc_id: p, bytes: b"not automerge".to_vec(), signature: None }];
    batch.extend(good.clone());
    batch.push(IncomingChange { doc_id: p, bytes: vec![0; yilian_core::store::MAX_CHANGE_BYTES + 1], signature: None });
    let report = hospital.apply_remote_changes(batch).unwrap();
    assert_eq!(report.applied, good.len());
    assert_eq!(report.rejected.len(), 2);
    assert_eq!(report.rejected[0].index, 0);
    assert!(
        report.rejected[0].reason.starts_with("change refused: not an automerge change"),
        "{}",
        report.rejected[0].reason
    );
    assert!(report.rejected[1].reason.contains("more than the"), "{}", report.rejected[1].reason);
    assert_eq!(hospital.visits(p).unwrap().len(), 1);
    // Re-sent changes are no-ops.
    let again = hospital.apply_remote_changes(good.clone()).unwrap();
    assert_eq!((again.applied, again.duplicates), (0, good.len()));
    assert_eq!(hospital.changes_since(0, 100).unwrap().len(), good.len());
}

#[test]
fn changes_arriving_before_their_dependencies_take_effect_when_they_do() {
    let village = Store::open_in_memory(StoreOptions { compact_every: 1, ..options() }).unwrap();
    let p = registered(&village, "乱序");
    for s in 121..126 {
        village.record_visit(p, visit(s, 80)).unwrap();
    }
    let mut changes: Vec<IncomingChange> = village
        .changes_since(0, 100)
        .unwrap()
        .into_iter()
        .map(|c| IncomingChange { doc_id: c.doc_id, bytes: c.bytes, signature: c.signature })
        .collect();
    changes.reverse();
    // A tiny cache forces the document out and back in between batches.
    let hospital = Store::open_in_memory(StoreOptions { cache_capacity: 1, compact_every: 1, ..options() }).unwrap();
    let other = registered(&hospital, "别的");
    let last = changes.pop().unwrap();
    for c in changes {
        hospital.apply_remote_changes(vec![c]).unwrap();
        hospital.visits(other).unwrap();
    }
    assert!(matches!(hospital.patient(p), Err(Error::IncompleteRecord { .. })));
    hospital.apply_remote_changes(vec![last]).unwrap();
    assert_eq!(hospital.patient(p).unwrap(), village.patient(p).unwrap());
}

#[test]
fn peer_cursors_only_move_forward() {
    let store = memory_store();
    store.set_peer_cursor("relay", yilian_core::PeerCursor { acked_seq: 10, read_seq: 5 }).unwrap();
    store.set_peer_cursor("relay", yilian_core::PeerCursor { acked_seq: 3, read_seq: 9 }).unwrap();
    assert_eq!(store.peer_cursor("relay").unwrap(), yilian_core::PeerCursor { acked_seq: 10, read_seq: 9 });
    assert_eq!(store.peer_cursor("other").unwrap(), yilian_core::PeerCursor::default());
}

#[test]
fn documents_load_on_demand_within_the_cache_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    let ids: Vec<_> = {
        let store = Store::open(&path, options()).unwrap();
        (0..12).map(|i| registered(&store, &format!("居民{i}"))).collect()
    };
    let store = Store::open(&path, StoreOptions { cache_capacity: 3, ..options() }).unwrap();
    assert_eq!(store.loaded_documents(), 0, "opening loads nothing");
    assert_eq!(store.patients_of(DR_WANG).unwrap().len(), 0, "lists come from the index");
    assert_eq!(store.loaded_documents(), 0);
    for id in &ids {
        store.record_visit(*id, visit(130, 80)).unwrap();
        assert!(store.loaded_documents() <= 3);
    }
    for id in &ids {
        assert_eq!(store.visits(*id).unwrap().len(), 1);
    }
    assert_eq!(store.loaded_documents(), 3);
}
