//! Hand-built records for the care-rule tests.

use crate::model::*;
use crate::time::{Hlc, start_of};
use crate::{ConditionId, EventId, FollowUpPlanId, PatientId, ReferralId, VisitId};
use chrono::NaiveDate;
use std::collections::BTreeMap;

pub fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub fn record() -> PatientRecord {
    PatientRecord {
        patient: Patient {
            id: PatientId::new(),
            demographics: Demographics {
                name: "张伟".into(),
                sex: Sex::Male,
                birth_date: day(1956, 4, 2),
                national_id: None,
                phone: None,
                address: None,
                village: None,
            },
            organization_id: "village-1".into(),
            registered_by: "dr-wang".into(),
            registered_at: 0,
        },
        contracts: vec![],
        conditions: vec![],
        visits: vec![],
        referrals: vec![],
        follow_up_plans: vec![],
    }
}

pub fn bp(s: u16, d: u16) -> Vitals {
    Vitals { systolic_mmhg: Some(s), diastolic_mmhg: Some(d), ..Vitals::default() }
}

pub fn add_condition(r: &mut PatientRecord, icd10: &str, on: NaiveDate) {
    r.conditions.push(Condition {
        id: ConditionId::new(),
        icd10: icd10.into(),
        program: Program::for_icd10(icd10).unwrap(),
        diagnosed_on: on,
        recorded_by: "dr-wang".into(),
        recorded_at: start_of(on) + 3_600_000,
        note: String::new(),
    });
}

pub fn add_visit(r: &mut PatientRecord, on: NaiveDate, vitals: Vitals) {
    add_visit_kind(r, on, vitals, VisitKind::FollowUp)
}

pub fn add_visit_kind(r: &mut PatientRecord, on: NaiveDate, vitals: Vitals, kind: VisitKind) {
    let at = start_of(on) + 9 * 3_600_000;
    r.visits.push(Visit {
        id: VisitId::new(),
        at,
        organization_id: "village-1".into(),
        practitioner_id: "dr-wang".into(),
        kind,
        vitals,
        symptoms: vec![],
        diagnoses: vec![],
        medicines: BTreeMap::new(),
        lifestyle: Lifestyle::default(),
        notes: String::new(),
        recorded_at: at,
        amendments: BTreeMap::new(),
    });
}

pub fn add_referral(r: &mut PatientRecord, direction: Direction, events: &[(TaskStatus, NaiveDate)]) -> ReferralId {
    add_referral_created(r, direction, day(2026, 2, 2), events)
}

pub fn add_referral_created(
    r: &mut PatientRecord,
    direction: Direction,
    created: NaiveDate,
    events: &[(TaskStatus, NaiveDate)],
) -> ReferralId {
    let id = ReferralId::new();
    let events = events
        .iter()
        .map(|(status, on)| {
            (
                EventId::new(),
                ReferralEvent {
                    status: *status,
                    by_practitioner_id: "dr-li".into(),
                    by_organization_id: "county".into(),
                    at: Hlc::from_wall(start_of(*on) + 10 * 3_600_000),
                    note: String::new(),
                    discharge_summary: None,
                },
            )
        })
        .collect();
    let referral = Referral {
        id,
        direction,
        from_organization_id: "village-1".into(),
        from_practitioner_id: "dr-wang".into(),
        to_organization_id: "county".into(),
        reason: "r".into(),
        urgency: Urgency::Routine,
        clinical_summary: String::new(),
        in_response_to: None,
        created_at: start_of(created) + 10 * 3_600_000,
        events,
    };
    r.referrals.push(ReferralView::from(referral));
    id
}

pub fn book(r: &mut PatientRecord, due: NaiveDate, booked: NaiveDate) -> FollowUpPlanId {
    let id = FollowUpPlanId::new();
    r.follow_up_plans.push(FollowUpPlan {
        id,
        due,
        reason: "recheck".into(),
        booked_by: "dr-wang".into(),
        booked_at: start_of(booked),
    });
    id
}
