//! The log sync protocol between stores, in process, through real frames: convergence, idle and
//! incremental costs, and sessions broken by lost, duplicated, reordered or cut frames.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use yilian_core::Store;
use yilian_core::sync::{Link, Message, ParentDriver, PerfectLink, decode_body, encode, sync_in_process};

fn sync(child: &Store, name: &str, relay: &Store) -> yilian_core::sync::SyncStats {
    let stats = sync_in_process(child, name, relay, "relay", &mut PerfectLink).unwrap();
    assert_eq!(stats.child.error, None);
    assert_eq!(stats.parent.error, None);
    assert!(stats.child.synced, "{stats:?}");
    stats
}

/// The welcome of relay log `log-1` with `head` and `grant_head`, to a device it holds nothing of.
fn welcome(head: i64, grant_head: i64) -> Message {
    Message::Welcome {
        peer: "relay".into(),
        log_id: "log-1".into(),
        acked_seq: 0,
        acked_mark: None,
        head,
        grant_head,
        pending_items: 0,
        pending_bytes: 0,
        holdings: false,
    }
}

fn assert_same_records(stores: &[&Store]) {
    let ids = stores[0].patient_ids().unwrap();
    for s in stores {
        assert_eq!(s.patient_ids().unwrap(), ids);
        for id in &ids {
            assert_eq!(s.export_json(*id).unwrap(), stores[0].export_json(*id).unwrap());
        }
    }
}

/// Number of log rows whose hash repeats (must be 0: re-sent changes are no-ops).
fn unique_log(store: &Store) -> bool {
    let all = store.changes_since(0, usize::MAX).unwrap();
    let mut hashes: Vec<_> = all.iter().map(|c| c.hash).collect();
    hashes.sort();
    hashes.dedup();
    hashes.len() == all.len()
}

#[test]
fn two_devices_and_a_relay_converge_after_offline_edits() {
    let (a, b, relay) = (memory_store(), memory_store(), relay_for(&["a", "b"]));
    let pa = registered(&a, "甲");
    a.record_visit(pa, visit(150, 95)).unwrap();
    let pb = registered(&b, "乙");
    b.record_visit(pb, visit(128, 80)).unwrap();
    let r = b.create_referral(pb, upward("check")).unwrap();
    sync(&a, "a", &relay);
    sync(&b, "b", &relay);
    let stats = sync(&a, "a", &relay);
    assert!(stats.child.received > 0);
    assert_same_records(&[&a, &b, &relay]);
    // The relay's edit flows back to both.
    relay.add_referral_event(r, event(yilian_core::model::TaskStatus::Accepted, COUNTY)).unwrap();
    sync(&a, "a", &relay);
    sync(&b, "b", &relay);
    assert_same_records(&[&a, &b, &relay]);
    assert_eq!(a.referral_status(r).unwrap().status, yilian_core::model::TaskStatus::Accepted);
    assert!(unique_log(&a) && unique_log(&b) && unique_log(&relay));
}

#[test]
fn idle_sync_is_one_round_trip_and_a_few_bytes() {
    let (device, relay) = (memory_store(), relay_for(&["dev"]));
    for i in 0..20 {
        let p = registered(&device, &format!("居民{i}"));
        device.record_visit(p, visit(130, 80)).unwrap();
    }
    sync(&device, "dev", &relay);
    let idle = sync(&device, "dev", &relay);
    assert_eq!(idle.round_trips, 1);
    assert!(idle.bytes_up + idle.bytes_down < 1024, "{idle:?}");
    assert_eq!((idle.child.sent, idle.child.received), (0, 0));
}

#[test]
fn incremental_sync_costs_what_the_new_changes_cost() {
    let (device, relay, other) = (memory_store(), relay_for(&["dev", "other"]), memory_store());
    let ids: Vec<_> = (0..50).map(|i| registered(&device, &format!("居民{i}"))).collect();
    sync(&device, "dev", &relay);
    sync(&other, "other", &relay);
    for id in &ids {
        device.record_visit(*id, visit(132, 84)).unwrap();
    }
    let push = sync(&device, "dev", &relay);
    assert_eq!(push.child.sent, 50);
    assert!(push.round_trips <= 2, "{push:?}");
    let pull = sync(&other, "other", &relay);
    assert_eq!(pull.child.received, 50);
    assert!(pull.round_trips <= 2, "{pull:?}");
    // What is new: the 50 changes and their signatures (64 random bytes each, which no
    // compressor shrinks), compressed together.
    let compressed = compressed_changes(&relay, 50);
    assert!(
        (pull.bytes_down as f64) < 1.5 * compressed as f64,
        "{} protocol bytes for {compressed} bytes of new changes compressed",
        pull.bytes_down
    );
    assert_same_records(&[&device, &relay, &other]);
}

/// A link that loses, duplicates and reorders frames, seeded.
struct FaultyLink {
    rng: StdRng,
    loss: f64,
    dup: f64,
    shuffle: bool,
}

impl Link for FaultyLink {
    fn carry(&mut self, _up: bool, frames: Vec<Vec<u8>>) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        for f in frames {
            if self.rng.gen_bool(self.loss) {
                continue;
            }
            if self.rng.gen_bool(self.dup) {
                out.push(f.clone());
            }
            out.push(f);
        }
        if self.shuffle {
            out.shuffle(&mut self.rng);
        }
        (out.concat(), true)
    }
}

#[test]
fn lost_duplicated_and_reordered_frames_never_lose_or_duplicate_a_change() {
    for seed in 0..12u64 {
        let (device, relay, hospital) = (memory_store(), relay_for(&["dev", "hospital"]), memory_store());
        let h = registered(&hospital, "医院的");
        sync(&hospital, "hospital", &relay);
        for i in 0..30 {
            let p = registered(&device, &format!("居民{i}"));
            device.record_visit(p, visit(120 + i, 80)).unwrap();
        }
        hospital.record_visit(h, visit(140, 90)).unwrap();
        sync(&hospital, "hospital", &relay);
        let mut link = FaultyLink { rng: StdRng::seed_from_u64(seed), loss: 0.2, dup: 0.2, shuffle: seed % 2 == 0 };
        // Sessions over the bad link: each may fail, none may corrupt.
        for _ in 0..6 {
            let _ = sync_in_process(&device, "dev", &relay, "relay", &mut link).unwrap();
        }
        // Then the link heals.
        sync(&device, "dev", &relay);
        sync(&hospital, "hospital", &relay);
        assert_same_records(&[&device, &relay, &hospital]);
        assert!(unique_log(&device) && unique_log(&relay) && unique_log(&hospital), "seed {seed}");
    }
}

/// A link that goes down after a number of bytes in one direction.
struct CutLink {
    up: bool,
    left: usize,
}

impl Link for CutLink {
    fn carry(&mut self, up: bool, frames: Vec<Vec<u8>>) -> (Vec<u8>, bool) {
        let bytes = frames.concat();
        if up != self.up {
            return (bytes, true);
        }
        if bytes.len() <= self.left {
            self.left -= bytes.len();
            return (bytes, true);
        }
        let cut = bytes[..self.left].to_vec();
        self.left = 0;
        (cut, false)
    }
}

#[test]
fn a_session_cut_at_any_byte_resumes_to_convergence() {
    let mut cuts = 0;
    for up in [true, false] {
        for cut in (0..3000).step_by(97) {
            let (device, relay, hospital) = (memory_store(), relay_for(&["dev", "hospital"]), memory_store());
            for i in 0..8 {
                let p = registered(&device, &format!("居民{i}"));
                device.record_visit(p, visit(125, 80)).unwrap();
                let q = registered(&hospital, &format!("病人{i}"));
                hospital.record_visit(q, visit(145, 92)).unwrap();
            }
            sync(&hospital, "hospital", &relay);
            let _ = sync_in_process(&device, "dev", &relay, "relay", &mut CutLink { up, left: cut }).unwrap();
            sync(&device, "dev", &relay);
            sync(&hospital, "hospital", &relay);
            assert_same_records(&[&device, &relay, &hospital]);
            assert!(
                unique_log(&device) && unique_log(&relay),
                "cut after {cut} bytes going {}",
                if up { "up" } else { "down" }
            );
            cuts += 1;
        }
    }
    assert!(cuts >= 50);
}

#[test]
fn a_replaced_relay_log_makes_devices_start_again_from_zero() {
    let (device, relay) = (memory_store(), relay_for(&["dev"]));
    let p = registered(&device, "甲");
    sync(&device, "dev", &relay);
    // The relay's database is replaced by a fresh one holding another device's work.
    let replacement = relay_for(&["dev"]);
    let other = memory_store();
    let q = registered(&other, "乙");
    sync(&other, "other", &replacement);
    let stats = sync(&device, "dev", &replacement);
    assert!(stats.child.received > 0);
    assert!(device.patient(q).is_ok());
    // The device's own work was pushed again (the new relay had not acked it).
    assert!(replacement.patient(p).is_ok());
}

/// A relay session that has welcomed device "dev" with `local_head` changes of its own.
fn welcomed_driver(relay: &Store, local_head: i64) -> ParentDriver<'_> {
    let mut driver = ParentDriver::new(relay, "relay");
    let hello = Message::Hello {
        peer: "dev".into(),
        log_id: String::new(),
        read_seq: 0,
        local_head,
        grant_seq: 0,
        catch_up: None,
        session: 1,
        restored: false,
    };
    driver.on_message(hello).unwrap();
    driver
}

#[test]
fn malformed_frames_and_protocol_violations_end_the_session_with_a_reason() {
    let relay = memory_store();
    // A push before hello.
    let mut driver = ParentDriver::new(&relay, "relay");
    let out = driver.on_message(Message::Push { from_seq: 0, to_seq: 1, items: vec![] }).unwrap();
    assert!(matches!(&out[0], Message::Error { message, .. } if message.contains("unexpected push")), "{out:?}");
    assert!(driver.outcome.error.is_some());
    // A push that leaves a gap in the child's log.
    let mut driver = welcomed_driver(&relay, 10);
    let out = driver.on_message(Message::Push { from_seq: 5, to_seq: 10, items: vec![] }).unwrap();
    assert!(matches!(&out[0], Message::Error { message, .. } if message.contains("leaves a gap")), "{out:?}");
    // Garbage and a wrong version never decode into a message.
    assert!(decode_body(&[yilian_core::sync::PROTOCOL_VERSION, 0, 0xff, 0xff, 0xff, 0xff]).is_err());
    let mut frame = encode(&Message::Ack { up_to: 3 });
    frame[4] = 1;
    assert_eq!(
        decode_body(&frame[4..]).unwrap_err().to_string(),
        format!(
            "protocol version 1 is not supported (this side speaks {}): update the app or the relay",
            yilian_core::sync::PROTOCOL_VERSION
        )
    );
    // A change that is not automerge is refused item by item; the rest is stored.
    let device = memory_store();
    let p = registered(&device, "好的");
    let good = device.changes_since(0, 10).unwrap();
    let mut driver = welcomed_driver(&relay, 3);
    let mut items: Vec<_> = good
        .iter()
        .map(|c| yilian_core::sync::WireChange {
            seq: c.seq,
            doc: *c.doc_id.0.as_bytes(),
            bytes: c.bytes.clone(),
            signature: c.signature.clone(),
        })
        .collect();
    items.push(yilian_core::sync::WireChange {
        seq: 3,
        doc: *p.0.as_bytes(),
        bytes: b"junk".to_vec(),
        signature: None,
    });
    let out = driver.on_message(Message::Push { from_seq: 0, to_seq: 3, items }).unwrap();
    assert!(matches!(&out[0], Message::Refused { items } if items.len() == 1 && items[0].0 == 3), "{out:?}");
    assert!(matches!(out[1], Message::Ack { up_to: 3 }));
    assert!(relay.patient(p).is_ok());
}

#[test]
fn a_device_sees_only_its_scope_and_writes_outside_it_are_refused_item_by_item() {
    let (a, b, relay) = (memory_store(), memory_store(), memory_store());
    let pa = registered(&a, "甲");
    let pb = registered(&b, "乙");
    sync(&a, "a", &relay);
    sync(&b, "b", &relay);
    // Each holds only what it created.
    assert_eq!(a.patient_ids().unwrap(), vec![pa]);
    assert_eq!(b.patient_ids().unwrap(), vec![pb]);
    assert_eq!(relay.scope_of("a").unwrap(), vec![pa.to_string()]);

    // b learns of a's resident out of band and writes to it: refused, the rest of the batch lands.
    let from_a: Vec<_> = a
        .changes_since(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|c| yilian_core::IncomingChange { doc_id: c.doc_id, bytes: c.bytes, signature: c.signature })
        .collect();
    b.apply_remote_changes(from_a).unwrap();
    b.record_visit(pa, visit(150, 95)).unwrap();
    b.record_visit(pb, visit(120, 80)).unwrap();
    let before = relay.patient(pa).unwrap();
    let stats = sync(&b, "b", &relay);
    assert_eq!(stats.child.refused.len(), 1, "{stats:?}");
    assert!(stats.child.refused[0].contains("outside the scope of b"), "{:?}", stats.child.refused);
    assert_eq!(relay.patient(pa).unwrap(), before, "nothing of the refused change was stored");
    assert_eq!(relay.patient(pb).unwrap().visits.len(), 1, "the rest of the batch was stored");
    // The refusal is final for those changes; the next sync is clean and idle.
    let again = sync(&b, "b", &relay);
    assert!(again.child.refused.is_empty() && again.child.sent == 0);
}

#[test]
fn a_record_assigned_later_arrives_whole_and_then_follows_the_log() {
    let (village, desk, relay) = (memory_store(), memory_store(), memory_store());
    let p = registered(&village, "甲");
    for i in 0..5 {
        village.record_visit(p, visit(130 + i, 85)).unwrap();
    }
    sync(&village, "village", &relay);
    sync(&desk, "desk", &relay);
    assert!(desk.patient_ids().unwrap().is_empty(), "not in the desk's scope yet");

    relay.grant_scope("desk", yilian_core::ScopeGrant::Document(p)).unwrap();
    let stats = sync(&desk, "desk", &relay);
    assert_eq!(stats.child.snapshots, 1);
    assert_eq!(desk.export_json(p).unwrap(), relay.export_json(p).unwrap());
    // Signatures travel with the snapshot: every change keeps its author's signature.
    let signed = |s: &Store| {
        let mut v: Vec<_> =
            s.changes_since(0, usize::MAX).unwrap().into_iter().map(|c| (c.hash, c.signature)).collect();
        v.sort();
        v
    };
    assert_eq!(signed(&desk), signed(&relay));
    assert!(signed(&desk).iter().filter(|(_, s)| s.is_some()).count() >= 5);

    // From now on the record follows the log both ways, and the grant is not sent again.
    village.record_visit(p, visit(150, 95)).unwrap();
    sync(&village, "village", &relay);
    let stats = sync(&desk, "desk", &relay);
    assert_eq!((stats.child.snapshots, stats.child.received), (0, 1));
    assert_eq!(desk.export_json(p).unwrap(), village.export_json(p).unwrap());

    // Everything: the log is read again from the start; nothing is duplicated.
    let q = registered(&village, "乙");
    sync(&village, "village", &relay);
    relay.grant_scope("desk", yilian_core::ScopeGrant::Everything).unwrap();
    sync(&desk, "desk", &relay);
    assert_eq!(desk.patient_ids().unwrap().len(), 2);
    assert_eq!(desk.export_json(q).unwrap(), village.export_json(q).unwrap());
    assert!(unique_log(&desk));
}

#[test]
fn a_device_restored_from_a_backup_still_delivers_its_new_edits() {
    let dir = tempfile::tempdir().unwrap();
    let (db, backup) = (dir.path().join("dev.db"), dir.path().join("backup.db"));
    let relay = relay_for(&["dev"]);
    let p = registered(&Store::open(&db, options()).unwrap(), "甲");
    std::fs::copy(&db, &backup).unwrap();
    {
        let device = Store::open(&db, options()).unwrap();
        for i in 0..5 {
            device.record_visit(p, visit(120 + i, 80)).unwrap();
        }
        sync(&device, "dev", &relay);
    }
    // The phone is replaced and restored from the older backup: its log is shorter than what the
    // relay acknowledged, and its next edits reuse those sequence numbers.
    std::fs::copy(&backup, &db).unwrap();
    let device = Store::open(&db, options()).unwrap();
    assert!(device.last_local_seq().unwrap() < relay.peer_cursor("dev").unwrap().read_seq);
    device.record_visit(p, visit(170, 100)).unwrap();
    sync(&device, "dev", &relay);
    sync(&device, "dev", &relay);
    assert_eq!(relay.patient(p).unwrap().visits.len(), 6, "the restored phone's new visit reached the relay");
    assert_same_records(&[&device, &relay]);
    assert!(unique_log(&relay));
}

#[test]
fn a_relay_refuses_unsigned_forged_and_actor_stealing_changes() {
    use automerge::transaction::Transactable;
    use yilian_core::IncomingChange;
    use yilian_core::identity::DeviceKey;
    let (relay, device) = (memory_store(), memory_store());
    let p = registered(&device, "甲");
    device.record_visit(p, visit(130, 85)).unwrap();
    let log = device.changes_since(0, usize::MAX).unwrap();
    let with = |signature: &dyn Fn(&yilian_core::StoredChange) -> Option<Vec<u8>>| -> Vec<IncomingChange> {
        log.iter()
            .map(|c| IncomingChange { doc_id: c.doc_id, bytes: c.bytes.clone(), signature: signature(c) })
            .collect()
    };
    let thief = DeviceKey::generate();

    // Unsigned, and signed by a key that is not the author's: refused, nothing stored but the
    // genesis change (the one change every device makes identically, unsigned).
    let unsigned = relay.ingest_from_child("dev", with(&|_| None), 1).unwrap();
    let forged = relay.ingest_from_child("dev", with(&|c| Some(thief.sign(&c.hash).to_vec())), 2).unwrap();
    assert_eq!(unsigned.rejected.len(), log.len() - 1, "{unsigned:?}");
    // The actor's first change names its device but is unsigned; the later ones cannot even be
    // attributed, since the first was refused.
    assert!(
        unsigned.rejected.iter().all(|r| r.reason.ends_with("is not signed") || r.reason.contains("is unknown here")),
        "{unsigned:?}"
    );
    assert_eq!(forged.rejected.len(), log.len() - 1, "{forged:?}");
    assert!(
        forged
            .rejected
            .iter()
            .all(|r| r.reason.contains("is not by its device") || r.reason.contains("is unknown here")),
        "{forged:?}"
    );
    assert!(relay.patient(p).is_err(), "no registration was stored");

    // The genuine changes pass.
    let genuine = relay.ingest_from_child("dev", with(&|c| c.signature.clone()), 3).unwrap();
    assert!(genuine.rejected.is_empty(), "{genuine:?}");
    assert_eq!(relay.patient(p).unwrap().visits.len(), 1);

    // Another key writes under the device's actor: continuing its history (the change is checked
    // against the device the actor belongs to), or claiming the actor afresh.
    let actor_bytes: Vec<u8> = (0..device.actor().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&device.actor()[i..i + 2], 16).unwrap())
        .collect();
    let steal = |base: automerge::Automerge, seq: u64| {
        let mut doc = base;
        doc.set_author(Some(automerge::Author::from(thief.public_key().to_vec())));
        doc.set_actor(automerge::ActorId::from(actor_bytes.clone()));
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "stolen", seq).unwrap();
        tx.commit();
        let change = doc.get_last_local_change().unwrap().clone();
        IncomingChange {
            doc_id: p,
            bytes: change.raw_bytes().to_vec(),
            signature: Some(thief.sign(&change.hash().0).to_vec()),
        }
    };
    let continued = steal(automerge::Automerge::load(&relay.document_snapshot(p).unwrap().bytes).unwrap(), 1);
    let claimed = steal(automerge::Automerge::new(), 2);
    let report = relay.ingest_from_child("dev", vec![continued, claimed], 4).unwrap();
    assert_eq!(report.rejected.len(), 2, "{report:?}");
    assert!(report.rejected[0].reason.contains("is not by its device"), "{report:?}");
    assert!(report.rejected[1].reason.contains("belongs to another device"), "{report:?}");
    assert!(report.applied == 0);
}

/// Found by the phone tests: a desk's second referral event, made while the first was being read
/// for a push, was covered by that push (acknowledged) without being in it, and never sent. A
/// batch and how far it covers are read together, so whatever commits meanwhile is either in the
/// batch or after what it covers.
#[test]
fn a_push_batch_never_covers_an_edit_it_does_not_carry() {
    let store = std::sync::Arc::new(memory_store());
    let p = store.create_patient(new_patient("孙秀英")).unwrap();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..400u16 {
                store.record_visit(p, visit(110 + i % 60, 80)).unwrap();
            }
        })
    };
    let (mut after, mut carried) = (0, std::collections::BTreeSet::new());
    loop {
        let done = writer.is_finished();
        let (batch, up_to) = store.local_batch(after, 3).unwrap();
        assert!(batch.iter().all(|c| c.seq > after && c.seq <= up_to), "a batch past what it covers");
        carried.extend(batch.iter().map(|c| c.seq));
        after = up_to;
        if done && after == store.last_local_seq().unwrap() {
            break;
        }
    }
    writer.join().unwrap();
    let all: std::collections::BTreeSet<i64> =
        store.local_changes_since(0, usize::MAX).unwrap().into_iter().map(|c| c.seq).collect();
    assert_eq!(carried, all, "every edit is in the batch that covers it");
}

/// Defect 1 of the lost-edit issue: a phone restored from an older backup whose doctor records
/// past the cursor the relay acknowledged before it syncs again. Comparing numbers believed it
/// (its head was not below the relay's cursor): its new edits numbered at or below that cursor
/// were never pushed, and the edits the restore lost never came back to it.
#[test]
fn a_restored_device_that_records_past_the_acknowledged_cursor_delivers_everything_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (db, backup) = (dir.path().join("dev.db"), dir.path().join("backup.db"));
    let relay = relay_for(&["dev"]);
    let p = registered(&Store::open(&db, options()).unwrap(), "甲");
    std::fs::copy(&db, &backup).unwrap();
    {
        let device = Store::open(&db, options()).unwrap();
        for i in 0..3 {
            device.record_visit(p, visit(120 + i, 80)).unwrap();
        }
        sync(&device, "dev", &relay);
    }
    std::fs::copy(&backup, &db).unwrap();
    let device = Store::open(&db, options()).unwrap();
    let acked = relay.peer_cursor("dev").unwrap().read_seq;
    // Offline after the restore, the doctor records more than the restore lost.
    for i in 0..6 {
        device.record_visit(p, visit(140 + i, 90)).unwrap();
    }
    assert!(device.last_local_seq().unwrap() > acked, "the restored log passed the acknowledged cursor");
    for _ in 0..3 {
        sync_in_process(&device, "dev", &relay, "relay", &mut PerfectLink).unwrap();
    }
    let stats = sync(&device, "dev", &relay);
    assert_eq!(relay.patient(p).unwrap().visits.len(), 9, "the 6 new visits reached the relay");
    assert_eq!(device.patient(p).unwrap().visits.len(), 9, "the 3 visits the restore lost came back");
    assert_eq!((stats.child.sent, stats.child.received), (0, 0), "and then it is idle");
    assert_same_records(&[&device, &relay]);
    assert!(unique_log(&relay) && unique_log(&device));
}

/// Defect 2 of the lost-edit issue: a record enters a device's scope while the relay holds one of
/// its changes waiting for a dependency. The snapshot of the grant left the waiting change out and
/// the device's cursor had passed it, so it never arrived even after its dependency did.
#[test]
fn a_record_granted_while_a_change_of_it_waits_for_a_dependency_arrives_whole_in_the_end() {
    let (village, desk, relay) = (memory_store(), memory_store(), relay_for(&["village"]));
    let p = registered(&village, "甲");
    sync(&village, "village", &relay);
    village.record_visit(p, visit(130, 85)).unwrap();
    village.record_visit(p, visit(150, 95)).unwrap();
    // The second visit reaches the relay before the first (another path: a hub, another node).
    let log = village.changes_since(0, usize::MAX).unwrap();
    let second = log.last().unwrap();
    let early = yilian_core::IncomingChange {
        doc_id: second.doc_id,
        bytes: second.bytes.clone(),
        signature: second.signature.clone(),
    };
    relay.apply_remote_changes(vec![early]).unwrap();
    assert_eq!(relay.patient(p).unwrap().visits.len(), 0, "the second visit waits for the first");
    // The desk reads past it (not in its scope yet), then the record is granted to it.
    sync(&desk, "desk", &relay);
    relay.grant_scope("desk", yilian_core::ScopeGrant::Document(p)).unwrap();
    sync(&desk, "desk", &relay);
    // The first visit arrives; both apply on the relay.
    sync(&village, "village", &relay);
    assert_eq!(relay.patient(p).unwrap().visits.len(), 2);
    sync(&desk, "desk", &relay);
    assert_eq!(desk.patient(p).unwrap().visits.len(), 2, "the desk has both visits");
    assert_same_records(&[&village, &desk, &relay]);
}

/// Defect 3 of the lost-edit issue: a `Caught` below the head the welcome announced (a stale bulk
/// stream's, from an earlier session on the same connection) let the session report synced while
/// the parent still held changes the child lacked.
#[test]
fn a_caught_below_the_welcomes_head_never_makes_a_session_synced() {
    use yilian_core::sync::{ChildAction, ChildSession, ChildStart};
    let start = ChildStart { peer: "dev".into(), log_id: "log-1".into(), read_seq: 5, ..ChildStart::default() };
    let (mut session, _hello) = ChildSession::start(start);
    session.on_message(welcome(10, 0));
    let actions = session.on_message(Message::Caught { up_to: 5 });
    assert!(!actions.contains(&ChildAction::Synced), "{actions:?}");
    assert!(!session.is_synced(), "changes 6..=10 have not arrived");
}

/// Found by the simulation (`yilian-sim`, seed 404 of 1,000 with messages lost at random): a
/// purge lost on its way, then the next grant stored, moved the device's grant cursor past the
/// purge, and the record stayed on a phone outside its scope for good. Each grant message now
/// names the grant it follows; a gap ends the session, and the next one reads from the cursor.
#[test]
fn a_grant_that_does_not_follow_the_last_one_heard_ends_the_session() {
    use yilian_core::sync::{ChildAction, ChildSession, ChildStart};
    let start = ChildStart { peer: "dev".into(), log_id: "log-1".into(), grant_seq: 12, ..ChildStart::default() };
    let (mut session, _hello) = ChildSession::start(start);
    session.on_message(welcome(0, 14));
    // Grant 13 (a purge) is lost; grant 14 says it follows 13.
    let grant =
        yilian_core::sync::Grant { grant: 14, doc: Some([7; 16]), bytes: vec![], signatures: vec![], waiting: vec![] };
    let actions = session.on_message(Message::Snapshot { after: 13, grant: grant.clone() });
    assert!(!actions.iter().any(|a| matches!(a, ChildAction::ApplySnapshot(_))), "{actions:?}");
    assert!(
        matches!(&actions[..], [ChildAction::Send(Message::Error { message, .. }), ..] if message.contains("follows grant 13, but the last one heard was 12")),
        "{actions:?}"
    );
    // In order, the same grants are stored one after the other.
    let (mut session, _hello) = ChildSession::start(ChildStart {
        peer: "dev".into(),
        log_id: "log-1".into(),
        grant_seq: 12,
        ..ChildStart::default()
    });
    session.on_message(welcome(0, 14));
    let purge = session.on_message(Message::Purge { after: 12, grant: 13, doc: [6; 16] });
    assert_eq!(purge, vec![ChildAction::Purge { grant: 13, doc: [6; 16] }]);
    let snapshot = session.on_message(Message::Snapshot { after: 13, grant });
    assert!(matches!(&snapshot[..], [ChildAction::ApplySnapshot(g)] if g.grant == 14), "{snapshot:?}");
    // A catch-up's page that overtook the purge sent before it (simulation seed 1,323 of 2,000).
    let (mut session, _hello) =
        ChildSession::start(ChildStart { peer: "dev".into(), log_id: "log-1".into(), ..ChildStart::default() });
    session.on_message(welcome(30, 14));
    let page = yilian_core::sync::DocumentPage {
        head: 30,
        grant: 14,
        grant_after: 13,
        after: None,
        last: None,
        done: true,
        docs: vec![],
    };
    let actions = session.on_message(Message::Documents(page));
    assert!(
        matches!(&actions[..], [ChildAction::Send(Message::Error { message, .. }), ..] if message.contains("documents page after grant 13, but the last grant heard was 0")),
        "{actions:?}"
    );
}

/// Found by the simulation (`yilian-sim`): a record whose first change reached the relay by
/// another path (a hub) before its registration was refused to the phone that created it: the
/// relay knew the record, with no team or creator, so the creator's push was "outside its scope".
#[test]
fn a_record_whose_first_change_came_by_another_path_is_still_its_creators() {
    let (village, relay) = (memory_store(), memory_store());
    relay.grant_scope("hub", yilian_core::ScopeGrant::Everything).unwrap();
    let p = registered(&village, "甲");
    village.record_visit(p, visit(150, 95)).unwrap();
    let first = &village.changes_since(0, usize::MAX).unwrap()[0];
    let early = yilian_core::IncomingChange {
        doc_id: first.doc_id,
        bytes: first.bytes.clone(),
        signature: first.signature.clone(),
    };
    relay.ingest_from_child("hub", vec![early], 1).unwrap();
    let stats = sync(&village, "village", &relay);
    assert_eq!(stats.child.refused, Vec::<String>::new());
    assert_eq!(relay.patient(p).unwrap().visits.len(), 1);
    assert_same_records(&[&village, &relay]);
}

/// Found by the simulation (`yilian-sim`, relay restores): a relay whose database was restored
/// from an older backup numbered its new changes (and grants) with the numbers it had used after
/// the backup, and a phone that had read past them missed what came next, or failed every
/// session on "pull batch does not follow cursor".
#[test]
fn a_relay_restored_from_an_older_backup_loses_nothing_its_devices_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (path, copy) = (dir.path().join("relay.db"), dir.path().join("backup.db"));
    let relay = Store::open(&path, options()).unwrap();
    for device in ["a", "b"] {
        relay.grant_scope(device, yilian_core::ScopeGrant::Everything).unwrap();
    }
    let (a, b) = (memory_store(), memory_store());
    let p = registered(&a, "甲");
    a.record_visit(p, visit(150, 95)).unwrap();
    sync(&a, "a", &relay);
    sync(&b, "b", &relay);
    copy_database(&path, &copy);
    // After the backup: more edits, which both phones hold.
    for systolic in [152, 151, 153] {
        a.record_visit(p, visit(systolic, 96)).unwrap();
    }
    let q = registered(&b, "乙");
    sync(&a, "a", &relay);
    sync(&b, "b", &relay);
    sync(&a, "a", &relay);
    let read_before = b.peer_cursor("relay").unwrap().read_seq;
    // The relay's disk is lost; its database comes back from the backup.
    drop(relay);
    let relay = Store::open(&copy, options()).unwrap();
    assert!(relay.patient(q).is_err(), "the backup predates the second record");
    // New edits after the restore reach every phone; what the restore lost comes back from them.
    let c = memory_store();
    relay.grant_scope("c", yilian_core::ScopeGrant::Everything).unwrap();
    let r = registered(&c, "丙");
    for systolic in [140, 141, 142] {
        c.record_visit(r, visit(systolic, 90)).unwrap();
    }
    let seen = a.record_visit(p, visit(149, 92)).unwrap();
    for _ in 0..2 {
        for (phone, name) in [(&c, "c"), (&a, "a"), (&b, "b")] {
            sync(phone, name, &relay);
        }
    }
    assert!(relay.last_seq().unwrap() > read_before, "new numbers come after every number used before");
    assert!(
        b.patient(p).unwrap().visits.iter().any(|v| v.id == seen),
        "the phone that read past the backup got the new visit"
    );
    assert_eq!(b.patient(r).unwrap().visits.len(), 3, "and the new record");
    assert_same_records(&[&relay, &a, &b, &c]);
    assert!(unique_log(&relay) && unique_log(&b));
}

/// Found by the simulation (`--relay-restores`, seed 128): a relay restored from an older backup
/// welcomed a phone holding less of its log than it had acknowledged, but the phone's cursor only
/// moved forward, so a purge that followed deleted the phone's own edits as acknowledged, the only
/// copy left of them. The welcome now sets the cursor, lower if need be.
#[test]
fn a_welcome_holding_less_than_was_acknowledged_lowers_the_phones_cursor() {
    let relay = relay_for(&["a"]);
    let a = memory_store();
    let p = registered(&a, "韩淑兰");
    a.record_visit(p, visit(148, 90)).unwrap();
    sync(&a, "a", &relay);
    let head = a.last_local_seq().unwrap();
    assert_eq!(a.peer_cursor("relay").unwrap().acked_seq, head);
    let (mut child, _hello) = yilian_core::sync::ChildDriver::start(&a, "a", "relay").unwrap();
    child
        .on_message(Message::Welcome {
            peer: "relay".into(),
            log_id: a.peer_log_id("relay").unwrap(),
            acked_seq: 1,
            acked_mark: None,
            head: relay.last_seq().unwrap(),
            grant_head: a.peer_grant_seq("relay").unwrap(),
            pending_items: 0,
            pending_bytes: 0,
            holdings: false,
        })
        .unwrap();
    assert_eq!(a.peer_cursor("relay").unwrap().acked_seq, 1);
    assert_eq!(a.unacknowledged("relay").unwrap().0 as i64, head - 1, "what the relay lost counts as not acknowledged");
}
