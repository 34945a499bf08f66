//! Whole-system test support for Yilian: a relay and phones over real QUIC ([`lab`]), the
//! fixtures the tests in `tests/tests/` share, and a helper program (a visit writer that the
//! crash test kills at random moments). The benchmarks and the network lab are `yilian-bench`.

pub mod lab;

use chrono::NaiveDate;
use yilian_core::model::{
    Demographics, Direction, NewPatient, NewReferral, NewReferralEvent, NewVisit, Sex, TaskStatus, Urgency, VisitKind,
    Vitals,
};

/// A plausible follow-up visit for the `n`-th write of a test program.
pub fn follow_up_visit(n: u64) -> NewVisit {
    NewVisit {
        at: yilian_core::time::now_ms() - 60_000,
        organization_id: "shiqiao-clinic".into(),
        practitioner_id: "dr-wang".into(),
        kind: VisitKind::FollowUp,
        vitals: Vitals {
            systolic_mmhg: Some(110 + (n % 60) as u16),
            diastolic_mmhg: Some(70 + (n % 20) as u16),
            ..Vitals::default()
        },
        symptoms: vec![],
        diagnoses: vec!["I10".into()],
        medicines: vec![],
        lifestyle: Default::default(),
        notes: format!("write {n}"),
    }
}

/// A resident for test programs.
pub fn resident(name: &str) -> NewPatient {
    NewPatient {
        id: None,
        demographics: Demographics {
            name: name.into(),
            sex: Sex::Male,
            birth_date: NaiveDate::from_ymd_opt(1958, 9, 9).unwrap_or_default(),
            national_id: None,
            phone: None,
            address: None,
            village: None,
        },
        practitioner_id: "dr-wang".into(),
        organization_id: "shiqiao-clinic".into(),
    }
}

/// The county hospital, where upward referrals go.
pub const COUNTY: &str = "county-hospital";

/// An upward referral from the village clinic to the county hospital.
pub fn upward_referral() -> NewReferral {
    NewReferral {
        direction: Direction::Upward,
        from_organization_id: "shiqiao-clinic".into(),
        from_practitioner_id: "dr-wang".into(),
        to_organization_id: COUNTY.into(),
        reason: "hypertension uncontrolled at two consecutive follow-ups".into(),
        urgency: Urgency::Urgent,
        clinical_summary: "158/96 then 162/98 mmHg".into(),
        in_response_to: None,
    }
}

/// The county referral desk moving a referral to `status`.
pub fn desk_event(status: TaskStatus) -> NewReferralEvent {
    NewReferralEvent {
        status,
        by_practitioner_id: "dr-sun".into(),
        by_organization_id: COUNTY.into(),
        note: "bed 12".into(),
        discharge_summary: None,
    }
}

/// A village doctor's record set: `patients` residents, each registered with `visits` quarterly
/// follow-ups (11 changes per resident with 9 visits), recorded on `store`. Returns their ids.
pub fn village_records(
    store: &yilian_core::Store,
    patients: usize,
    visits: i64,
) -> yilian_core::Result<Vec<yilian_core::PatientId>> {
    let mut ids = Vec::with_capacity(patients);
    for i in 0..patients {
        let id = store.create_patient(resident(&format!("居民{i:05}")))?;
        for v in 0..visits {
            let mut visit = follow_up_visit(i as u64 + v as u64);
            visit.at = yilian_core::time::now_ms() - (visits + 1 - v) * 30 * 86_400_000;
            store.record_visit(id, visit)?;
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Peak resident memory of this process (VmHWM), in MB; NaN where /proc is missing.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
