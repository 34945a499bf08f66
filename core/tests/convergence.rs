//! Merge rules under random concurrency: random edits on three replicas that exchange changes in
//! random orders and groupings always converge to identical records, and no edit is lost.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use yilian_core::model::*;
use yilian_core::{AmendmentId, EventId, IncomingChange, PatientId, ReferralId, Store, StoreOptions, VisitId};

const REPLICAS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Create { replica: usize, patient: usize },
    Visit { replica: usize, patient: usize, systolic: u16 },
    Amend { replica: usize, visit: usize, systolic: u16 },
    Refer { replica: usize, patient: usize },
    Event { replica: usize, referral: usize, status: usize },
    Sync { from: usize, to: usize, seed: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0..REPLICAS;
    prop_oneof![
        (r.clone(), 0..3usize).prop_map(|(replica, patient)| Op::Create { replica, patient }),
        (r.clone(), 0..3usize, 90u16..200).prop_map(|(replica, patient, systolic)| Op::Visit {
            replica,
            patient,
            systolic
        }),
        (r.clone(), 0..8usize, 90u16..200).prop_map(|(replica, visit, systolic)| Op::Amend {
            replica,
            visit,
            systolic
        }),
        (r.clone(), 0..3usize).prop_map(|(replica, patient)| Op::Refer { replica, patient }),
        (r.clone(), 0..4usize, 0..8usize).prop_map(|(replica, referral, status)| Op::Event {
            replica,
            referral,
            status
        }),
        (r.clone(), r, any::<u64>()).prop_map(|(from, to, seed)| Op::Sync { from, to, seed }),
    ]
}

/// Every status an event may ask for (all but the initial `requested`).
fn event_status(index: usize) -> TaskStatus {
    TaskStatus::ALL[1 + index % (TaskStatus::ALL.len() - 1)]
}

/// What the calls that returned Ok promised: it must all be everywhere at the end.
#[derive(Default)]
struct Promised {
    visits: Vec<(PatientId, VisitId)>,
    amendments: Vec<(PatientId, VisitId, AmendmentId)>,
    referrals: Vec<(PatientId, ReferralId)>,
    events: Vec<(ReferralId, EventId)>,
}

fn replicas() -> Vec<Store> {
    (0..REPLICAS)
        // A tiny cache and frequent compaction exercise eviction, reload and snapshots.
        .map(|_| Store::open_in_memory(StoreOptions { cache_capacity: 2, compact_every: 3, ..options() }).unwrap())
        .collect()
}

/// Sends `from`'s changes to `to` shuffled and cut into random groups.
fn sync(from: &Store, to: &Store, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut changes: Vec<IncomingChange> = from
        .changes_since(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|c| IncomingChange { doc_id: c.doc_id, bytes: c.bytes, signature: c.signature })
        .collect();
    changes.shuffle(&mut rng);
    while !changes.is_empty() {
        let take = rng.gen_range(1..=changes.len());
        let group: Vec<_> = changes.drain(..take).collect();
        let report = to.apply_remote_changes(group).unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    }
}

fn run(ops: Vec<Op>, patients: [PatientId; 3]) -> (Vec<Store>, Promised) {
    let stores = replicas();
    let mut promised = Promised::default();
    for op in ops {
        match op {
            Op::Create { replica, patient } => {
                let id = patients[patient];
                let _ = stores[replica]
                    .create_patient(NewPatient { id: Some(id), ..new_patient(&format!("居民{patient}-{replica}")) });
            }
            Op::Visit { replica, patient, systolic } => {
                let id = patients[patient];
                if let Ok(v) = stores[replica].record_visit(id, visit(systolic, 70)) {
                    promised.visits.push((id, v));
                }
            }
            Op::Amend { replica, visit, systolic } => {
                if let Some(&(p, v)) = promised.visits.get(visit) {
                    let amendment = VisitAmendment {
                        field: VisitField::SystolicMmhg(Some(systolic)),
                        practitioner_id: format!("dr-{replica}"),
                        reason: String::new(),
                    };
                    if let Ok(a) = stores[replica].amend_visit(p, v, amendment) {
                        promised.amendments.push((p, v, a));
                    }
                }
            }
            Op::Refer { replica, patient } => {
                let id = patients[patient];
                if let Ok(r) = stores[replica].create_referral(id, upward("check")) {
                    promised.referrals.push((id, r));
                }
            }
            Op::Event { replica, referral, status } => {
                if let Some(&(_, r)) = promised.referrals.get(referral) {
                    let status = event_status(status);
                    let org = if status == TaskStatus::Cancelled { VILLAGE } else { COUNTY };
                    if let Ok(e) = stores[replica].add_referral_event(r, event(status, org)) {
                        promised.events.push((r, e));
                    }
                }
            }
            Op::Sync { from, to, seed } => {
                if from != to {
                    sync(&stores[from], &stores[to], seed);
                }
            }
        }
    }
    // Finally everyone talks to everyone.
    for round in 0..2u64 {
        for from in 0..REPLICAS {
            for to in 0..REPLICAS {
                if from != to {
                    sync(&stores[from], &stores[to], round * 10 + (from * 3 + to) as u64);
                }
            }
        }
    }
    (stores, promised)
}

fn check_converged(stores: &[Store], promised: &Promised) {
    let ids = stores[0].patient_ids().unwrap();
    for s in stores {
        assert_eq!(s.patient_ids().unwrap(), ids);
    }
    for id in &ids {
        let records: Vec<_> = stores.iter().map(|s| s.patient(*id)).collect();
        match &records[0] {
            Ok(first) => {
                for other in &records[1..] {
                    assert_eq!(other.as_ref().unwrap(), first, "replicas disagree on {id}");
                }
            }
            Err(e) => panic!("record {id} unreadable after full exchange: {e}"),
        }
    }
    // Replicas keep each record up to date batch by batch, re-reading only the entities the
    // changes touched: it must be the record read whole from all of its changes at once.
    let whole = memory_store();
    let everything = stores[0].changes_since(0, usize::MAX).unwrap();
    let report = whole
        .apply_remote_changes(
            everything
                .into_iter()
                .map(|c| IncomingChange { doc_id: c.doc_id, bytes: c.bytes, signature: c.signature })
                .collect(),
        )
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    for id in &ids {
        assert_eq!(stores[0].patient(*id).unwrap(), whole.patient(*id).unwrap(), "{id} kept up to date != read whole");
    }
    for s in stores {
        for (p, v) in &promised.visits {
            assert!(s.patient(*p).unwrap().visit(*v).is_some(), "visit {v} lost");
        }
        for (p, v, a) in &promised.amendments {
            assert!(s.patient(*p).unwrap().visit(*v).unwrap().amendments.contains_key(a), "amendment {a} lost");
        }
        for (p, r) in &promised.referrals {
            assert!(s.patient(*p).unwrap().referral(*r).is_some(), "referral {r} lost");
        }
        for (r, e) in &promised.events {
            assert!(s.referral_status(*r).unwrap().history.iter().any(|h| h.id == *e), "event {e} lost");
        }
    }
    // Statuses agree through the index too.
    for (_, r) in &promised.referrals {
        let statuses: Vec<_> = stores.iter().map(|s| s.referral_status(*r).unwrap().status).collect();
        assert!(statuses.windows(2).all(|w| w[0] == w[1]), "{statuses:?}");
    }
    for org in [VILLAGE, COUNTY] {
        let lists: Vec<_> = stores.iter().map(|s| s.open_referrals(org).unwrap()).collect();
        assert!(lists.windows(2).all(|w| w[0] == w[1]));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_concurrent_edits_converge(ops in proptest::collection::vec(op(), 1..40)) {
        let patients = [PatientId::new(), PatientId::new(), PatientId::new()];
        let (stores, promised) = run(ops, patients);
        check_converged(&stores, &promised);
    }
}

#[test]
fn a_patient_registered_on_two_devices_merges_into_one_record() {
    let patient = PatientId::new();
    let ops = vec![
        Op::Create { replica: 0, patient: 0 },
        Op::Create { replica: 1, patient: 0 },
        Op::Visit { replica: 0, patient: 0, systolic: 150 },
        Op::Visit { replica: 1, patient: 0, systolic: 130 },
        Op::Refer { replica: 1, patient: 0 },
    ];
    let (stores, promised) = run(ops, [patient, PatientId::new(), PatientId::new()]);
    check_converged(&stores, &promised);
    let record = stores[2].patient(patient).unwrap();
    assert_eq!(record.visits.len(), 2, "both devices' visits are in the one record");
    assert_eq!(record.referrals.len(), 1);
}

#[test]
fn concurrent_amendments_of_one_visit_converge_and_both_stay_in_history() {
    let ops = vec![
        Op::Create { replica: 0, patient: 0 },
        Op::Visit { replica: 0, patient: 0, systolic: 150 },
        Op::Sync { from: 0, to: 1, seed: 1 },
        Op::Amend { replica: 0, visit: 0, systolic: 141 },
        Op::Amend { replica: 1, visit: 0, systolic: 139 },
    ];
    let p = PatientId::new();
    let (stores, promised) = run(ops, [p, PatientId::new(), PatientId::new()]);
    check_converged(&stores, &promised);
    assert_eq!(promised.amendments.len(), 2);
    let v = &stores[0].patient(p).unwrap().visits[0];
    assert_eq!(v.amendments.len(), 2);
    assert!([Some(141), Some(139)].contains(&v.vitals.systolic_mmhg));
}

#[test]
fn concurrent_accept_and_reject_fold_to_one_status_everywhere() {
    let ops = vec![
        Op::Create { replica: 0, patient: 0 },
        Op::Refer { replica: 0, patient: 0 },
        Op::Sync { from: 0, to: 1, seed: 2 },
        Op::Sync { from: 0, to: 2, seed: 3 },
        Op::Event { replica: 1, referral: 0, status: 1 }, // accepted
        Op::Event { replica: 2, referral: 0, status: 2 }, // rejected
    ];
    let p = PatientId::new();
    let (stores, promised) = run(ops, [p, PatientId::new(), PatientId::new()]);
    check_converged(&stores, &promised);
    let (_, r) = promised.referrals[0];
    let status = stores[0].referral_status(r).unwrap();
    assert_eq!(status.history.len(), 2);
    assert_eq!(status.history.iter().filter(|e| e.applied).count(), 1, "one wins, the other is superseded");
    assert!(matches!(status.status, TaskStatus::Accepted | TaskStatus::Rejected));
}
