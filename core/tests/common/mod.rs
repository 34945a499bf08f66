//! Fixtures shared by the core integration tests.
#![allow(dead_code)]

use chrono::NaiveDate;
use yilian_core::model::*;
use yilian_core::time::start_of;
use yilian_core::{IncomingChange, PatientId, Store};

pub const VILLAGE: &str = "shiqiao-clinic";
pub const COUNTY: &str = "county-hospital";
pub const DR_WANG: &str = "dr-wang";
pub const DR_LI: &str = "dr-li";

pub fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

pub use yilian_testing::clock::{now_ms, options, today};

pub fn memory_store() -> Store {
    Store::open_in_memory(options()).expect("in-memory store")
}

/// A relay store on which each of `devices` sees every record (scope `*`), for tests about the
/// protocol rather than about scope.
#[allow(dead_code)] // not every test binary syncs
pub fn relay_for(devices: &[&str]) -> Store {
    let relay = memory_store();
    for device in devices {
        relay.grant_scope(device, yilian_core::ScopeGrant::Everything).expect("grant");
    }
    relay
}

pub fn new_patient(name: &str) -> NewPatient {
    NewPatient {
        id: None,
        demographics: Demographics {
            name: name.into(),
            sex: Sex::Female,
            birth_date: day(1950, 6, 1),
            national_id: None,
            phone: None,
            address: None,
            village: Some("石桥村".into()),
        },
        practitioner_id: DR_WANG.into(),
        organization_id: VILLAGE.into(),
    }
}

pub fn visit_at(at: i64, systolic: u16, diastolic: u16) -> NewVisit {
    NewVisit {
        at,
        organization_id: VILLAGE.into(),
        practitioner_id: DR_WANG.into(),
        kind: VisitKind::FollowUp,
        vitals: Vitals { systolic_mmhg: Some(systolic), diastolic_mmhg: Some(diastolic), ..Vitals::default() },
        symptoms: vec![],
        diagnoses: vec!["I10".into()],
        medicines: vec![Medicine {
            name: "氨氯地平".into(),
            dose: "5 mg".into(),
            frequency: "qd".into(),
            adherence: Adherence::Regular,
        }],
        lifestyle: Lifestyle::default(),
        notes: String::new(),
    }
}

/// A visit a minute ago, but never before today's midnight (UTC+8), so it is always today's.
pub fn visit(systolic: u16, diastolic: u16) -> NewVisit {
    visit_at((now_ms() - 60_000).max(start_of(today())), systolic, diastolic)
}

pub fn visit_on(date: NaiveDate, systolic: u16, diastolic: u16) -> NewVisit {
    visit_at(start_of(date) + 9 * 3_600_000, systolic, diastolic)
}

pub fn contract(start: NaiveDate, end: NaiveDate) -> NewContract {
    NewContract {
        team_id: "team-shiqiao-1".into(),
        practitioner_id: DR_WANG.into(),
        organization_id: VILLAGE.into(),
        start,
        end,
    }
}

pub fn hypertension(on: NaiveDate) -> NewCondition {
    NewCondition { icd10: "I10".into(), diagnosed_on: on, practitioner_id: DR_WANG.into(), note: String::new() }
}

pub fn upward(reason: &str) -> NewReferral {
    NewReferral {
        direction: Direction::Upward,
        from_organization_id: VILLAGE.into(),
        from_practitioner_id: DR_WANG.into(),
        to_organization_id: COUNTY.into(),
        reason: reason.into(),
        urgency: Urgency::Urgent,
        clinical_summary: "BP uncontrolled on two drugs".into(),
        in_response_to: None,
    }
}

/// The county hospital sending the resident back to the village, answering `upward`.
pub fn downward(upward: yilian_core::ReferralId) -> NewReferral {
    NewReferral {
        direction: Direction::Downward,
        from_organization_id: COUNTY.into(),
        from_practitioner_id: DR_LI.into(),
        to_organization_id: VILLAGE.into(),
        reason: "rehabilitation at home".into(),
        urgency: Urgency::Routine,
        clinical_summary: String::new(),
        in_response_to: Some(upward),
    }
}

pub fn event(status: TaskStatus, org: &str) -> NewReferralEvent {
    NewReferralEvent {
        status,
        by_practitioner_id: DR_LI.into(),
        by_organization_id: org.into(),
        note: "noted".into(),
        discharge_summary: (status == TaskStatus::Completed).then(|| "stable on three drugs".to_string()),
    }
}

/// Sends every change `from` has to `to` (a stand-in for sync until the protocol lands).
pub fn exchange(from: &Store, to: &Store) {
    let changes = from
        .changes_since(0, usize::MAX)
        .expect("read log")
        .into_iter()
        .map(|c| IncomingChange { doc_id: c.doc_id, bytes: c.bytes, signature: c.signature })
        .collect();
    let report = to.apply_remote_changes(changes).expect("apply");
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

/// Size of the `newest` changes of `store`'s log with their signatures, compressed together
/// (zstd 3): what shipping them one by one costs at best.
pub fn compressed_changes(store: &Store, newest: usize) -> usize {
    let bytes: Vec<u8> = store
        .changes_since(0, usize::MAX)
        .expect("read log")
        .iter()
        .rev()
        .take(newest)
        .flat_map(|c| [c.bytes.clone(), c.signature.clone().unwrap_or_default()].concat())
        .collect();
    zstd::bulk::compress(&bytes, 3).expect("compress").len()
}

pub fn registered(store: &Store, name: &str) -> PatientId {
    store.create_patient(new_patient(name)).expect("create patient")
}

/// A copy of a store's database and its write-ahead log, as a backup taken while it is idle.
pub fn copy_database(from: &std::path::Path, to: &std::path::Path) {
    std::fs::copy(from, to).expect("copy the database");
    let wal = |p: &std::path::Path| std::path::PathBuf::from(format!("{}-wal", p.display()));
    if wal(from).exists() {
        std::fs::copy(wal(from), wal(to)).expect("copy its write-ahead log");
    }
}
