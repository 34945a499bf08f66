//! Scope derived from the directory, over the sync protocol in process: three village teams that
//! never see each other's residents, a county desk that holds a referred record while the
//! referral is open and loses it after the grace period, team membership that moves, and a phone
//! that may push only what it authored.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::Duration;
use yilian_core::model::*;
use yilian_core::sync::{PerfectLink, sync_in_process};
use yilian_core::time::{Clock, ManualClock};
use yilian_core::{
    ApplyReport, ChildPush, DeviceKind, Error, IncomingChange, OrganizationKind, PatientId, Practitioner,
    PractitionerRole, ScopeGrant, Store, StoreOptions,
};
use yilian_testing::Consortium;

const GRACE: Duration = Duration::from_secs(24 * 3600);

/// A relay with a county hospital and three village clinics, one team of one doctor each; the
/// county has a referral-desk practitioner.
fn consortium() -> Store {
    let relay = memory_store();
    directory_on(&relay);
    relay
}

/// The directory of [`consortium`], entered on `relay`.
fn directory_on(relay: &Store) {
    relay.set_referral_grace(GRACE).unwrap();
    let mut directory = Consortium::new()
        .organization(COUNTY, COUNTY, OrganizationKind::CountyHospital, None)
        .referral_desk("desk-zhao", "desk-zhao", COUNTY);
    for v in ["a", "b", "c"] {
        let (clinic, doctor) = (format!("village-{v}"), format!("dr-{v}"));
        directory = directory
            .organization(&clinic, &clinic, OrganizationKind::VillageClinic, Some(COUNTY))
            .family_doctor(&doctor, &doctor, &clinic)
            .team(&format!("team-{v}"), &format!("team {v}"), &clinic, &[&doctor]);
    }
    directory.enter(relay).unwrap();
}

fn practitioner(id: &str, role: PractitionerRole, org: &str) -> Practitioner {
    Practitioner { id: id.into(), name: id.into(), role, organization_id: org.into() }
}

/// A device of `practitioner`, enrolled on `relay` as `device_id` with a fresh code.
fn enrolled(relay: &Store, device_id: &str, practitioner: &str) -> Store {
    let phone = memory_store();
    enroll_on(relay, &phone, device_id, practitioner);
    phone
}

/// Enrolls `phone` (its key) on `relay` as `device_id` of `practitioner`.
fn enroll_on(relay: &Store, phone: &Store, device_id: &str, practitioner: &str) {
    let code =
        relay.issue_enrollment_code(practitioner, None, DeviceKind::Phone, Duration::from_secs(600), "admin").unwrap();
    relay.enroll_device(&code.code, device_id, phone.device_key().public_key(), now_ms()).unwrap();
}

/// What `phone` authored after its log position `after` (up to `to`), as its push to the relay.
fn push_of(phone: &Store, device_id: &str, after: i64, to: i64) -> ChildPush {
    let items = phone
        .local_changes_since(after, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|c| c.seq <= to)
        .map(|c| IncomingChange { doc_id: c.doc_id, bytes: c.bytes, signature: c.signature })
        .collect();
    ChildPush::new(device_id, items, to)
}

/// A resident of village `v`, signed to its team, created on `phone`.
fn contracted(phone: &Store, v: &str, name: &str) -> PatientId {
    let mut new = new_patient(name);
    new.organization_id = format!("village-{v}");
    let p = phone.create_patient(new).unwrap();
    let today = today();
    phone
        .sign_contract(
            p,
            NewContract {
                team_id: format!("team-{v}"),
                practitioner_id: format!("dr-{v}"),
                organization_id: format!("village-{v}"),
                start: today,
                end: today + chrono::Days::new(365),
            },
        )
        .unwrap();
    p
}

fn sync(phone: &Store, id: &str, relay: &Store) -> yilian_core::sync::SyncStats {
    let stats = sync_in_process(phone, id, relay, "relay", &mut PerfectLink).unwrap();
    assert!(stats.child.synced, "{id} did not finish syncing: {stats:?}");
    stats
}

fn held(store: &Store) -> BTreeSet<PatientId> {
    store.patient_ids().unwrap().into_iter().collect()
}

#[test]
fn three_teams_never_see_each_others_residents_and_a_referral_opens_the_record_to_the_county() {
    let relay = consortium();
    let phones: Vec<(&str, Store)> =
        ["a", "b", "c"].into_iter().map(|v| (v, enrolled(&relay, &format!("phone-{v}"), &format!("dr-{v}")))).collect();
    let desk = enrolled(&relay, "desk", "desk-zhao");
    let mut residents = std::collections::BTreeMap::new();
    for (v, phone) in &phones {
        let ids: BTreeSet<PatientId> = (0..3).map(|i| contracted(phone, v, &format!("{v}{i}"))).collect();
        residents.insert(*v, ids);
    }
    // Village a refers one resident up to the county.
    let referred = *residents["a"].iter().next().unwrap();
    let referral = phones[0].1.create_referral(referred, upward("BP uncontrolled")).unwrap();
    for _ in 0..2 {
        for (v, phone) in &phones {
            sync(phone, &format!("phone-{v}"), &relay);
        }
        sync(&desk, "desk", &relay);
    }
    // Cross-check every record every device holds.
    for (v, phone) in &phones {
        assert_eq!(held(phone), residents[v], "phone-{v} holds exactly its team's residents");
    }
    assert_eq!(held(&desk), BTreeSet::from([referred]), "the desk holds only the referred record");
    assert_eq!(desk.patient(referred).unwrap(), relay.patient(referred).unwrap());

    // A second doctor joins team b with a new phone: it receives the team's residents whole.
    relay.add_practitioner(&practitioner("dr-b2", PractitionerRole::Nurse, "village-b")).unwrap();
    let nurse = enrolled(&relay, "phone-b2", "dr-b2");
    relay.set_team_member("team-b", "dr-b2", true).unwrap();
    let stats = sync(&nurse, "phone-b2", &relay);
    assert_eq!(stats.child.snapshots, 3);
    assert_eq!(stats.parent.sent, 0, "each record arrives once, whole, not again change by change");
    assert_eq!(held(&nurse), residents["b"]);
    // ... and leaves it: the phone purges them.
    relay.set_team_member("team-b", "dr-b2", false).unwrap();
    let stats = sync(&nurse, "phone-b2", &relay);
    assert_eq!(stats.child.purged.len(), 3);
    assert!(held(&nurse).is_empty());
    assert!(nurse.changes_since(0, usize::MAX).unwrap().is_empty(), "nothing of the purged records is left");

    // The county completes the referral; the record stays for the grace period, then goes.
    desk.add_referral_event(referral, event(TaskStatus::Accepted, COUNTY)).unwrap();
    desk.add_referral_event(referral, event(TaskStatus::InProgress, COUNTY)).unwrap();
    desk.add_referral_event(referral, event(TaskStatus::Completed, COUNTY)).unwrap();
    sync(&desk, "desk", &relay);
    assert_eq!(relay.referral_status(referral).unwrap().status, TaskStatus::Completed);
    assert_eq!(relay.sweep_scope(now_ms()).unwrap(), 0, "within the grace period nothing moves");
    sync(&desk, "desk", &relay);
    assert!(held(&desk).contains(&referred));

    // A second, open referral; the desk edits it offline before the first one's purge arrives.
    let second = *residents["c"].iter().next().unwrap();
    let second_referral = phones[2].1.create_referral(second, upward("chest pain")).unwrap();
    sync(&phones[2].1, "phone-c", &relay);
    sync(&desk, "desk", &relay);
    desk.add_referral_event(second_referral, event(TaskStatus::Received, COUNTY)).unwrap();

    let later = now_ms() + GRACE.as_millis() as i64 + 60_000;
    assert_eq!(relay.sweep_scope(later).unwrap(), 1);
    let stats = sync(&desk, "desk", &relay);
    assert_eq!(stats.child.purged, vec![referred]);
    assert_eq!(held(&desk), BTreeSet::from([second]));
    assert!(matches!(desk.patient(referred), Err(Error::NotFound { .. })));
    // The unsynced edit to the other record survived the purge and reached the relay.
    assert_eq!(relay.referral_status(second_referral).unwrap().status, TaskStatus::Received);
    assert_eq!(desk.unacknowledged("relay").unwrap().0, 0);
    // The record flows no more: village a's next visit does not reach the desk.
    phones[0].1.record_visit(referred, visit(150, 95)).unwrap();
    sync(&phones[0].1, "phone-a", &relay);
    let stats = sync(&desk, "desk", &relay);
    assert_eq!(stats.child.received, 0, "{:?} referred {referred} second {second}", stats.child.changed);
    assert!(!held(&desk).contains(&referred));
}

#[test]
fn a_write_outside_the_scope_is_refused_and_nothing_of_it_is_stored() {
    let relay = consortium();
    let a = enrolled(&relay, "phone-a", "dr-a");
    let b = enrolled(&relay, "phone-b", "dr-b");
    let p = contracted(&a, "a", "刘桂兰");
    sync(&a, "phone-a", &relay);
    let before = relay.export_json(p).unwrap();
    // Village b learns the record out of band and writes to it.
    exchange(&a, &b);
    b.record_visit(p, visit(160, 100)).unwrap();
    let stats = sync(&b, "phone-b", &relay);
    assert_eq!(stats.child.refused.len(), 1, "{:?}", stats.child.refused);
    assert!(stats.child.refused[0].contains("outside the scope of phone-b"), "{:?}", stats.child.refused);
    assert_eq!(relay.export_json(p).unwrap(), before, "nothing of the refused write is stored");
}

/// Village a's team with two members' phones (`phone-a` of dr-a, `phone-a2` of nurse dr-a2),
/// both synced with a resident phone a registered.
fn two_phones_of_team_a() -> (Store, Store, Store, PatientId) {
    let relay = consortium();
    let a = enrolled(&relay, "phone-a", "dr-a");
    relay.add_practitioner(&practitioner("dr-a2", PractitionerRole::Nurse, "village-a")).unwrap();
    relay.set_team_member("team-a", "dr-a2", true).unwrap();
    let a2 = enrolled(&relay, "phone-a2", "dr-a2");
    let p = contracted(&a, "a", "陈建国");
    sync(&a, "phone-a", &relay);
    sync(&a2, "phone-a2", &relay);
    (relay, a, a2, p)
}

#[test]
fn a_phone_may_push_only_the_changes_it_authored() {
    let (relay, a, a2, p) = two_phones_of_team_a();
    // Phone a's next visit reaches phone a2 out of band (Bluetooth, say) before the relay.
    a.record_visit(p, visit(150, 90)).unwrap();
    let newest = a.changes_since(0, usize::MAX).unwrap().pop().unwrap();
    let report = a2
        .apply_remote_changes(vec![IncomingChange {
            doc_id: newest.doc_id,
            bytes: newest.bytes.clone(),
            signature: newest.signature.clone(),
        }])
        .unwrap();
    assert_eq!(report.applied, 1);
    // It is not in a2's own log as a local change, so a2 never pushes it: the relay gets it
    // only from its author.
    let stats = sync(&a2, "phone-a2", &relay);
    assert_eq!(stats.child.sent, 0);
    assert_eq!(relay.visits(p).unwrap().len(), 0);
    // A modified client that pushes it anyway is refused.
    let forwarded = IncomingChange { doc_id: newest.doc_id, bytes: newest.bytes, signature: newest.signature };
    let report = relay.ingest_from_child("phone-a2", vec![forwarded], 99).unwrap();
    assert_eq!(report.rejected.len(), 1);
    assert!(report.rejected[0].reason.contains("a phone may push only its own changes"), "{:?}", report.rejected);
    assert_eq!(relay.visits(p).unwrap().len(), 0);
    sync(&a, "phone-a", &relay);
    assert_eq!(relay.visits(p).unwrap().len(), 1);
}

#[test]
fn a_signature_checked_ahead_counts_only_for_the_change_and_key_it_was_checked_with() {
    let (relay, a, a2, p) = two_phones_of_team_a();
    a.record_visit(p, visit(150, 90)).unwrap();
    // a2's actor is known to the relay once its first change (which names a2's key) is there.
    a2.record_visit(p, visit(142, 88)).unwrap();
    sync(&a2, "phone-a2", &relay);
    let before = relay.export_json(p).unwrap();
    a2.record_visit(p, visit(140, 85)).unwrap();
    a2.record_visit(p, visit(138, 84)).unwrap();
    let by_a = a.local_changes_since(0, usize::MAX).unwrap().pop().unwrap();
    let mine = a2.local_changes_since(0, usize::MAX).unwrap();
    let (first, second) = (&mine[mine.len() - 2], &mine[mine.len() - 1]);
    let item = |c: &yilian_core::store::StoredChange, signature: &Option<Vec<u8>>| IncomingChange {
        doc_id: c.doc_id,
        bytes: c.bytes.clone(),
        signature: signature.clone(),
    };
    let ahead = |claimed_key: Option<Vec<u8>>, items: Vec<IncomingChange>| {
        let mut push = ChildPush::new("phone-a2", items, 99).from_phone(claimed_key);
        push.check_ahead();
        push
    };
    let a2_key = || relay.phone_key("phone-a2").unwrap();
    let mut forged = first.signature.clone();
    if let Some(forged) = forged.as_mut() {
        forged[0] ^= 1;
    }
    // Checked ahead, then its bytes replaced by its next change (with the first's signature).
    let mut replaced = ahead(a2_key(), vec![item(first, &first.signature)]);
    replaced.items[0].bytes = second.bytes.clone();
    let pushes = vec![
        // Phone a's change pushed by a2, checked with a's key (which did sign it): a2 may push
        // only its own.
        ahead(Some(a.device_key().public_key().to_vec()), vec![item(&by_a, &by_a.signature)]),
        // A signature that is not a2's: found bad ahead, and by the store.
        ahead(a2_key(), vec![item(first, &forged)]),
        // The check ahead was of other bytes: the store checks these, and refuses them.
        replaced,
    ];
    let reports: Vec<ApplyReport> = relay.ingest_group(pushes).into_iter().map(Result::unwrap).collect();
    assert!(reports.iter().all(|r| r.applied == 0 && r.rejected.len() == 1), "{reports:?}");
    let reasons: Vec<&str> = reports.iter().map(|r| r.rejected[0].reason.as_str()).collect();
    assert!(reasons[0].contains("a phone may push only its own changes"), "{reasons:?}");
    assert!(reasons[1].contains("the signature is not by its device"), "{reasons:?}");
    assert!(reasons[2].contains("the signature is not by its device"), "{reasons:?}");
    assert_eq!(relay.export_json(p).unwrap(), before, "nothing of the refused changes is stored");
    // Its own changes, rightly signed and checked ahead, land.
    let own = ahead(a2_key(), vec![item(first, &first.signature), item(second, &second.signature)]);
    let report = relay.ingest_group(vec![own]).pop().unwrap().unwrap();
    assert_eq!((report.applied, report.rejected.len()), (2, 0), "{report:?}");
    assert_eq!(relay.visits(p).unwrap().len(), 3);
}

#[test]
fn pushes_stored_together_end_as_if_stored_one_after_the_other() {
    let (together, apart) = (consortium(), consortium());
    let (a, b, c, desk) = (memory_store(), memory_store(), memory_store(), memory_store());
    for relay in [&together, &apart] {
        enroll_on(relay, &a, "phone-a", "dr-a");
        enroll_on(relay, &b, "phone-b", "dr-b");
        enroll_on(relay, &c, "phone-c", "dr-c");
        enroll_on(relay, &desk, "desk", "desk-zhao");
    }
    // Phone a registers a resident and refers her up: its push opens the record to the desk.
    let p = contracted(&a, "a", "周桂英");
    let referral = a.create_referral(p, upward("BP uncontrolled")).unwrap();
    let first = a.last_local_seq().unwrap();
    // The desk and phone c (another village) get the record out of band; the desk receives the
    // referral, phone c writes to a record it may not see; phone a records a visit; phone b
    // registers a resident of its own.
    exchange(&a, &desk);
    exchange(&a, &c);
    desk.add_referral_event(referral, event(TaskStatus::Received, COUNTY)).unwrap();
    c.record_visit(p, visit(150, 90)).unwrap();
    a.record_visit(p, visit(160, 95)).unwrap();
    let q = contracted(&b, "b", "李秀兰");
    let head = |s: &Store| s.last_local_seq().unwrap();
    let pushes = vec![
        push_of(&a, "phone-a", 0, first),
        push_of(&desk, "desk", 0, head(&desk)),
        push_of(&b, "phone-b", 0, head(&b)),
        push_of(&c, "phone-c", 0, head(&c)),
        push_of(&a, "phone-a", first, head(&a)),
    ];
    // The relay's sessions check the phones' signatures before a push waits for the store.
    let checked_ahead = pushes.iter().map(|push| {
        let mut push = push.clone().from_phone(together.phone_key(&push.peer).unwrap());
        push.check_ahead();
        push
    });
    let grouped: Vec<ApplyReport> =
        together.ingest_group(checked_ahead.collect()).into_iter().map(Result::unwrap).collect();
    let one_by_one: Vec<ApplyReport> =
        pushes.into_iter().map(|p| apart.ingest_from_child(&p.peer, p.items, p.up_to).unwrap()).collect();
    assert_eq!(grouped, one_by_one);
    // The desk's push lands: the referral earlier in the same transaction opened its scope.
    assert!(grouped[1].applied > 0 && grouped[1].rejected.is_empty(), "{:?}", grouped[1]);
    // Phone c's write is refused, and only it.
    assert!(!grouped[3].rejected.is_empty(), "{:?}", grouped[3]);
    assert!(grouped[3].rejected.iter().all(|r| r.reason.contains("outside the scope of phone-c")), "{:?}", grouped[3]);
    assert!([0, 2, 4].iter().all(|&i| grouped[i].rejected.is_empty() && grouped[i].applied > 0), "{grouped:?}");
    for id in [p, q] {
        assert_eq!(together.export_json(id).unwrap(), apart.export_json(id).unwrap());
    }
    assert_eq!(together.visits(p).unwrap().len(), 1, "phone a's visit, not phone c's");
    assert_eq!(together.referral_status(referral).unwrap(), apart.referral_status(referral).unwrap());
    assert_eq!(together.open_referrals(COUNTY).unwrap(), apart.open_referrals(COUNTY).unwrap());
    for device in ["phone-a", "phone-b", "phone-c", "desk"] {
        assert_eq!(together.scope_reasons(device).unwrap(), apart.scope_reasons(device).unwrap(), "{device}");
        assert_eq!(together.peer_cursor(device).unwrap(), apart.peer_cursor(device).unwrap(), "{device}");
    }
    // What the desk pulls next is the same from both.
    let pulled = |relay: &Store| relay.changes_for_peer("desk", 0, usize::MAX).unwrap().0.len();
    assert_eq!(pulled(&together), pulled(&apart));
}

#[test]
fn the_audit_trail_names_each_fields_author_and_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    let relay = Store::open(&path, options()).unwrap();
    relay.set_referral_grace(GRACE).unwrap();
    let people = [
        ("dr-a", PractitionerRole::FamilyDoctor),
        ("nurse-a", PractitionerRole::Nurse),
        ("ph-a", PractitionerRole::PublicHealth),
    ];
    let mut directory = Consortium::new().organization("village-a", "a", OrganizationKind::VillageClinic, None);
    for (who, role) in people {
        directory = directory.practitioner(who, who, role, "village-a");
    }
    let members: Vec<&str> = people.iter().map(|(who, _)| *who).collect();
    directory.team("team-a", "a", "village-a", &members).enter(&relay).unwrap();
    let phones: Vec<(String, &str)> = people.iter().map(|(who, _)| (format!("{who}-phone"), *who)).collect();
    let stores: Vec<Store> = phones.iter().map(|(id, who)| enrolled(&relay, id, who)).collect();
    let p = contracted(&stores[0], "a", "王秀英");
    sync(&stores[0], "dr-a-phone", &relay);
    for (store, (id, _)) in stores.iter().zip(&phones).skip(1) {
        sync(store, id, &relay);
    }
    stores[1].record_visit(p, visit(152, 94)).unwrap();
    stores[2]
        .update_demographics(
            p,
            DemographicsUpdate { phone: Some("13800000000".into()), ..DemographicsUpdate::default() },
        )
        .unwrap();
    for (store, (id, _)) in stores.iter().zip(&phones) {
        sync(store, id, &relay);
    }

    let trail = relay.audit_trail(p).unwrap();
    assert!(trail.problems.is_empty(), "{:?}", trail.problems);
    let by = |path: &str| trail.last_writer_of(path).and_then(|e| e.device.clone());
    assert_eq!(by("team_id").as_deref(), Some("dr-a-phone"), "{trail:#?}");
    assert_eq!(by("systolic_mmhg").as_deref(), Some("nurse-a-phone"));
    assert_eq!(by("phone").as_deref(), Some("ph-a-phone"));
    let vitals = trail.last_writer_of("systolic_mmhg").unwrap();
    assert_eq!(vitals.practitioner.as_deref(), Some("nurse-a"));
    assert_eq!(vitals.signature, yilian_core::store::SignatureCheck::Valid);
    assert!(vitals.fields.iter().any(|f| f.path.ends_with("systolic_mmhg") && f.value.as_deref() == Some("152")));
    assert!(trail.entries.iter().all(|e| matches!(
        e.signature,
        yilian_core::store::SignatureCheck::Valid | yilian_core::store::SignatureCheck::Genesis
    )));

    // Someone with the database file alters a stored visit and swaps a signature.
    drop(relay);
    let (visit_seq, phone_seq) = (vitals.seq, trail.last_writer_of("phone").unwrap().seq);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let mut bytes: Vec<u8> =
        raw.query_row("SELECT bytes FROM changes WHERE local_seq = ?1", [visit_seq], |r| r.get(0)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    raw.execute("UPDATE changes SET bytes = ?2 WHERE local_seq = ?1", rusqlite::params![visit_seq, bytes]).unwrap();
    raw.execute("UPDATE changes SET signature = zeroblob(64) WHERE local_seq = ?1", [phone_seq]).unwrap();
    drop(raw);
    let relay = Store::open(&path, options()).unwrap();
    let trail = relay.audit_trail(p).unwrap();
    assert_eq!(trail.problems.len(), 2, "{:?}", trail.problems);
    assert!(trail.problems.iter().any(|p| p.starts_with(&format!("change {visit_seq}:"))), "{:?}", trail.problems);
    assert!(
        trail.problems.iter().any(|p| p.starts_with(&format!("change {phone_seq}:")) && p.contains("signature")),
        "{:?}",
        trail.problems
    );
}

#[test]
fn a_commit_wakes_only_the_live_sessions_of_the_children_it_concerns() {
    let relay = consortium();
    let a = enrolled(&relay, "phone-a", "dr-a");
    let b = enrolled(&relay, "phone-b", "dr-b");
    let p = contracted(&a, "a", "王秀英");
    sync(&a, "phone-a", &relay);
    sync(&b, "phone-b", &relay);
    let events = relay.watch();
    let before = events.borrow().clone();
    a.record_visit(p, visit(150, 95)).unwrap();
    sync(&a, "phone-a", &relay);
    let after = events.borrow().clone();
    assert!(after.touched("phone-a") > before.touched("phone-a"), "village a's own record moved");
    assert_eq!(after.touched("phone-b"), before.touched("phone-b"), "nothing of village b's moved");
    assert_eq!(after.scope_changes, before.scope_changes, "a visit changes no one's scope");
    // A referral to the county puts the record in the desk's scope: every session looks again.
    let desk = enrolled(&relay, "desk", "desk-zhao");
    sync(&desk, "desk", &relay);
    let before = events.borrow().clone();
    a.create_referral(p, upward("BP uncontrolled")).unwrap();
    sync(&a, "phone-a", &relay);
    let after = events.borrow().clone();
    assert!(after.scope_changes > before.scope_changes);
    assert!(after.touched("desk") > before.touched("desk"));
    assert_eq!(after.touched("phone-b"), before.touched("phone-b"));
}

#[test]
fn a_contract_that_ran_out_leaves_the_teams_phones_after_the_grace_period_and_a_moved_one_follows_its_team() {
    let relay = consortium();
    let a = enrolled(&relay, "phone-a", "dr-a");
    let b = enrolled(&relay, "phone-b", "dr-b");
    let today = today();
    // A contract signed last year that ends tomorrow, and one that runs for a year.
    let mut new = new_patient("孙玉兰");
    new.organization_id = "village-a".into();
    let lapsing = a.create_patient(new).unwrap();
    let signing = |team: &str, start, end| NewContract {
        team_id: format!("team-{team}"),
        practitioner_id: format!("dr-{team}"),
        organization_id: format!("village-{team}"),
        start,
        end,
    };
    a.sign_contract(lapsing, signing("a", today - chrono::Days::new(364), today + chrono::Days::new(1))).unwrap();
    let moving = contracted(&a, "a", "赵德明");
    sync(&a, "phone-a", &relay);
    assert_eq!(held(&a), BTreeSet::from([lapsing, moving]));

    // The second resident moves to team b: the old contract ends, a new one is signed.
    let old = a.patient(moving).unwrap().contracts[0].id;
    a.terminate_contract(moving, old).unwrap();
    a.sign_contract(moving, signing("b", today, today + chrono::Days::new(365))).unwrap();
    sync(&a, "phone-a", &relay);
    sync(&b, "phone-b", &relay);
    // The purge was decided by the push of that sync, after its welcome: the next one brings it.
    let stats = sync(&a, "phone-a", &relay);
    assert_eq!(stats.child.purged, vec![moving]);
    assert_eq!(held(&a), BTreeSet::from([lapsing]), "the old team's phone purged the moved resident");
    assert_eq!(held(&b), BTreeSet::from([moving]), "the new team's phone holds the moved resident");
    assert_eq!(b.patient(moving).unwrap(), relay.patient(moving).unwrap());

    // The lapsed contract's team keeps the record through its last day and the grace period ...
    let last_day_over = yilian_core::time::start_of(today + chrono::Days::new(2));
    assert_eq!(relay.sweep_scope(last_day_over + GRACE.as_millis() as i64 - 60_000).unwrap(), 0);
    sync(&a, "phone-a", &relay);
    assert!(held(&a).contains(&lapsing));
    // ... and then it leaves the phone, unless someone renews it.
    assert_eq!(relay.sweep_scope(last_day_over + GRACE.as_millis() as i64 + 60_000).unwrap(), 1);
    let stats = sync(&a, "phone-a", &relay);
    assert_eq!(stats.child.purged, vec![lapsing]);
    assert!(held(&a).is_empty());
    assert!(relay.patient(lapsing).is_ok(), "the relay keeps the record");
}

#[test]
fn a_visit_recorded_offline_on_a_record_that_left_the_phones_scope_still_reaches_the_relay() {
    let relay = consortium();
    let a = enrolled(&relay, "phone-a", "dr-a");
    let today = today();
    let mut new = new_patient("钱淑珍");
    new.organization_id = "village-a".into();
    let p = a.create_patient(new).unwrap();
    let contract = NewContract {
        team_id: "team-a".into(),
        practitioner_id: "dr-a".into(),
        organization_id: "village-a".into(),
        start: today - chrono::Days::new(364),
        end: today,
    };
    a.sign_contract(p, contract.clone()).unwrap();
    sync(&a, "phone-a", &relay);
    // Offline, the doctor records a visit; meanwhile the contract ran out at the relay.
    let seen = a.record_visit(p, visit(162, 101)).unwrap();
    let head = a.last_local_seq().unwrap();
    let over = yilian_core::time::start_of(today + chrono::Days::new(1)) + GRACE.as_millis() as i64 + 60_000;
    assert_eq!(relay.sweep_scope(over).unwrap(), 1);
    let stats = sync(&a, "phone-a", &relay);
    assert!(stats.child.refused.is_empty(), "{:?}", stats.child.refused);
    assert_eq!(stats.child.purged, vec![p]);
    assert!(held(&a).is_empty(), "the record left the phone");
    assert!(relay.patient(p).unwrap().visits.iter().any(|v| v.id == seen), "the visit reached the relay");
    assert_eq!(a.last_local_seq().unwrap(), head, "the phone's log keeps its head");
    assert_eq!(a.unacknowledged("relay").unwrap().0, 0);
    // The next sync is an idle one (the log is still the one the relay acknowledged).
    let stats = sync(&a, "phone-a", &relay);
    assert_eq!((stats.child.sent, stats.child.received, stats.child.snapshots), (0, 0, 0), "{stats:?}");
}

#[test]
fn a_record_purged_before_its_visit_was_pushed_comes_back_whole_when_granted_again() {
    let relay = consortium();
    let a = enrolled(&relay, "phone-a", "dr-a");
    let p = contracted(&a, "a", "吴凤英");
    sync(&a, "phone-a", &relay);
    let seen = a.record_visit(p, visit(158, 96)).unwrap();
    // The purge is applied before the visit is pushed (it came first on a cut connection).
    relay.set_team_member("team-a", "dr-a", false).unwrap();
    let (grant, _, purge) = relay.grants_after("phone-a", a.peer_grant_seq("relay").unwrap(), 10).unwrap()[0];
    assert!(purge);
    a.purge_document_from("relay", grant, p).unwrap();
    assert!(matches!(a.patient(p), Err(Error::NotFound { .. })), "the record left the lists at once");
    // Back on the team before the phone syncs again: the record is granted whole, with the visit.
    relay.set_team_member("team-a", "dr-a", true).unwrap();
    // (This phone never read anything from the relay: its sync is a catch-up, record by record.)
    sync(&a, "phone-a", &relay);
    assert!(a.patient(p).unwrap().visits.iter().any(|v| v.id == seen), "the phone's record has its visit");
    assert_eq!(a.patient(p).unwrap(), relay.patient(p).unwrap());
    assert_eq!(a.unacknowledged("relay").unwrap().0, 0);
}

/// Found by the simulation (`yilian-sim`, seed 636 of 1,000): a record whose registration
/// reached the relay through a hub before the phone that made it synced was in nobody's scope
/// but the hub's, and the phone's own next edits to it were refused.
#[test]
fn a_record_registered_through_a_hub_is_in_the_scope_of_the_phone_that_made_it() {
    let relay = consortium();
    relay.grant_scope("hub", yilian_core::ScopeGrant::Everything).unwrap();
    let a = enrolled(&relay, "phone-a", "dr-a");
    let mut new = new_patient("何秀珍");
    new.organization_id = "village-a".into();
    let p = a.create_patient(new).unwrap();
    let registered_at = a.last_local_seq().unwrap();
    let seen = a.record_visit(p, visit(150, 95)).unwrap();
    // A hub forwards the registration, not the visit, before the phone syncs.
    let forwarded = push_of(&a, "hub", 0, registered_at).items;
    let report = relay.ingest_from_child("hub", forwarded, registered_at).unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let stats = sync(&a, "phone-a", &relay);
    assert!(stats.child.refused.is_empty(), "{:?}", stats.child.refused);
    assert!(relay.patient(p).unwrap().visits.iter().any(|v| v.id == seen));
    // Its registration came from the hub: the phone gets the record whole once ('creator').
    assert!(relay.scope_reasons("phone-a").unwrap().contains(&(p.to_string(), "creator".to_string())));
    assert_eq!(a.patient(p).unwrap(), relay.patient(p).unwrap());
}

/// Found by the simulation (`yilian-sim`, seed 4,131 of 10,000): a phone restored from a backup
/// taken before it first synced registered its record again; a hub had already forwarded one of
/// the phone's later changes (lost with the restore) to the relay, which made the record the
/// phone's own ("it has it all") and never sent that change back.
#[test]
fn a_record_created_here_whose_other_changes_came_first_is_sent_back_to_its_creator_whole() {
    let relay = consortium();
    relay.grant_scope("hub", yilian_core::ScopeGrant::Everything).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (path, backup) = (dir.path().join("phone.db"), dir.path().join("backup.db"));
    let phone = Store::open(&path, options()).unwrap();
    enroll_on(&relay, &phone, "phone-a", "dr-a");
    let p = contracted(&phone, "a", "冯桂芝");
    drop(phone);
    std::fs::copy(&path, &backup).unwrap();
    // After the backup the doctor records a visit; a hub forwards it to the relay; then the phone
    // is lost.
    let phone = Store::open(&path, options()).unwrap();
    let registered_at = phone.last_local_seq().unwrap();
    let seen = phone.record_visit(p, visit(157, 93)).unwrap();
    let forwarded = push_of(&phone, "hub", registered_at, phone.last_local_seq().unwrap()).items;
    relay.ingest_from_child("hub", forwarded, 1).unwrap();
    drop(phone);
    std::fs::copy(&backup, &path).unwrap();
    let phone = Store::open(&path, options()).unwrap();
    assert!(phone.patient(p).unwrap().visits.is_empty(), "the restore lost the visit");
    sync(&phone, "phone-a", &relay);
    sync(&phone, "phone-a", &relay);
    assert!(relay.patient(p).unwrap().visits.iter().any(|v| v.id == seen));
    assert_eq!(phone.patient(p).unwrap(), relay.patient(p).unwrap(), "the visit came back to the phone");
}

/// Found by the simulation (`yilian-sim`, seed 7,227 of 10,000): a record purged from a phone
/// with a visit not yet pushed came back (its doctor rejoined the team) in a snapshot the relay
/// read before the late visit arrived. The phone had deleted its copy of the visit once the relay
/// acknowledged it, the relay never sends a phone its own changes, and the phone's next edit of
/// the record reused the visit's sequence number: the relay refused it as a duplicate.
#[test]
fn a_purged_record_granted_again_before_its_late_visit_arrived_keeps_the_visit() {
    let relay = consortium();
    let a = enrolled(&relay, "phone-a", "dr-a");
    let p = contracted(&a, "a", "沈玉珍");
    sync(&a, "phone-a", &relay);
    let acked = a.last_local_seq().unwrap();
    let seen = a.record_visit(p, visit(158, 96)).unwrap();
    // The doctor leaves the team: the purge reaches the phone before its visit is pushed.
    relay.set_team_member("team-a", "dr-a", false).unwrap();
    let (purge, _, _) = relay.grants_after("phone-a", a.peer_grant_seq("relay").unwrap(), 10).unwrap()[0];
    a.purge_document_from("relay", purge, p).unwrap();
    // Back on the team; the relay reads the record for the grant before the visit arrives.
    relay.set_team_member("team-a", "dr-a", true).unwrap();
    let (grant, _, _) = relay.grants_after("phone-a", purge, 10).unwrap()[0];
    let snapshot = relay.document_snapshot(p).unwrap();
    let late = push_of(&a, "phone-a", acked, a.last_local_seq().unwrap());
    let report = relay.ingest_from_child("phone-a", late.items, a.last_local_seq().unwrap()).unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    a.set_peer_cursor("relay", yilian_core::PeerCursor { acked_seq: a.last_local_seq().unwrap(), read_seq: 0 })
        .unwrap();
    a.apply_snapshot_from("relay", grant, Some(p), &snapshot.bytes, &snapshot.signatures, &snapshot.waiting).unwrap();
    assert!(a.patient(p).unwrap().visits.iter().any(|v| v.id == seen), "the phone's record has its visit");
    // Its next edit is stored by the relay like any other.
    a.record_visit(p, visit(150, 92)).unwrap();
    let stats = sync(&a, "phone-a", &relay);
    assert!(stats.child.refused.is_empty(), "{:?}", stats.child.refused);
    assert_eq!(a.patient(p).unwrap(), relay.patient(p).unwrap());
}

/// Found by the simulation (`--relay-restores`): a relay restored from an older backup forgot
/// the grants it made after it, so a phone holding a record granted then kept it outside its
/// scope for good, and the visit it recorded on it offline was refused. Now the restored relay
/// sees the phone heard a grant it no longer has and asks for the records the phone holds: the
/// one it may no longer read gets a purge, and its late visit is taken.
#[test]
fn a_record_granted_after_the_relays_backup_leaves_the_phone_and_its_visit_is_kept_when_the_backup_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let (path, copy) = (dir.path().join("relay.db"), dir.path().join("backup.db"));
    let clock = ManualClock::new(now_ms());
    let options = || StoreOptions { clock: Clock::Manual(clock.clone()), ..options() };
    let relay = Store::open(&path, options()).unwrap();
    directory_on(&relay);
    let (a, b) = (enrolled(&relay, "phone-a", "dr-a"), enrolled(&relay, "phone-b", "dr-b"));
    let q = contracted(&b, "b", "孙桂芝");
    sync(&b, "phone-b", &relay);
    sync(&a, "phone-a", &relay);
    copy_database(&path, &copy);
    // After the backup an operator lends team b's record to phone a, which reads it and records
    // a visit on it offline.
    relay.grant_scope("phone-a", ScopeGrant::Document(q)).unwrap();
    sync(&a, "phone-a", &relay);
    assert!(held(&a).contains(&q));
    let seen = a.record_visit(q, visit(171, 104)).unwrap();
    // The relay's disk is lost; the backup comes back a second later.
    drop(relay);
    clock.advance(1_000);
    let relay = Store::open(&copy, options()).unwrap();
    let stats = sync(&a, "phone-a", &relay);
    assert!(stats.child.refused.is_empty(), "{:?}", stats.child.refused);
    assert_eq!(stats.child.purged, vec![q], "the record is outside the phone's scope again");
    assert!(!held(&a).contains(&q));
    assert!(relay.patient(q).unwrap().visits.iter().any(|v| v.id == seen), "the late visit reached the relay");
    // Team b's phone gets the visit too, and the next sync of phone a is idle.
    sync(&b, "phone-b", &relay);
    assert!(b.patient(q).unwrap().visits.iter().any(|v| v.id == seen));
    let stats = sync(&a, "phone-a", &relay);
    assert_eq!((stats.child.sent, stats.child.received, stats.child.snapshots), (0, 0, 0), "{stats:?}");
}

/// A phone that registers a resident and signs them straight to another team keeps the record
/// only until the relay places it: from then on it follows its team, as it would had the contract
/// moved later (before, the phone that registered it held it for good).
#[test]
fn a_resident_registered_for_another_team_leaves_the_phone_that_registered_them() {
    let relay = consortium();
    let (a, b) = (enrolled(&relay, "phone-a", "dr-a"), enrolled(&relay, "phone-b", "dr-b"));
    let p = contracted(&a, "b", "褚秀英");
    sync(&a, "phone-a", &relay);
    sync(&a, "phone-a", &relay);
    sync(&b, "phone-b", &relay);
    assert!(!held(&a).contains(&p), "team a's phone no longer holds team b's resident");
    assert_eq!(b.patient(p).unwrap(), relay.patient(p).unwrap());
    assert_eq!(relay.scope_reasons("phone-a").unwrap(), vec![(p.to_string(), "purge".to_string())]);
}

/// Found by the simulation (`--relay-restores`, seed 17): a phone purged a record it had
/// registered before the relay acknowledged any of it, so it kept every change of it; when the
/// record came back in a snapshot, nothing in it was new to the phone, which stored nothing and
/// never showed the record again.
#[test]
fn a_purged_record_whose_every_change_the_phone_kept_is_readable_again_when_granted_back() {
    let relay = consortium();
    let a = enrolled(&relay, "phone-a", "dr-a");
    let p = contracted(&a, "a", "魏春兰");
    a.record_visit(p, visit(149, 91)).unwrap();
    // The relay learns the record from a hub and sends the phone a purge before the phone pushed.
    let forwarded = push_of(&a, "hub", 0, a.last_local_seq().unwrap()).items;
    relay.grant_scope("hub", ScopeGrant::Everything).unwrap();
    relay.ingest_from_child("hub", forwarded, 1).unwrap();
    let snapshot = relay.document_snapshot(p).unwrap();
    a.purge_document_from("relay", 1, p).unwrap();
    assert!(!held(&a).contains(&p));
    // It comes back whole: every change in it is one the phone kept.
    a.apply_snapshot_from("relay", 2, Some(p), &snapshot.bytes, &snapshot.signatures, &snapshot.waiting).unwrap();
    assert_eq!(a.patient(p).unwrap(), relay.patient(p).unwrap());
    assert!(held(&a).contains(&p));
}
