//! Whole-system test support for Yilian: helper programs (a visit writer that the crash test
//! kills at random moments) and the fixtures they share with the tests in `tests/tests/`.

pub mod lab;

use chrono::NaiveDate;
use yilian_core::model::{Demographics, NewPatient, NewVisit, Sex, VisitKind, Vitals};

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
