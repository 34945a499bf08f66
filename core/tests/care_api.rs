//! The typed care API against a real store: edits, reads, lists, and refused input.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::*;
use yilian_core::care::{DueReason, SuggestionKind};
use yilian_core::model::*;
use yilian_core::store::{WorklistFilter, WorklistSide};

use yilian_core::{Error, ReferralId};

#[test]
fn a_visit_is_read_back_with_everything_recorded() {
    let store = memory_store();
    let p = registered(&store, "王秀英");
    let mut v = visit(152, 94);
    v.vitals.weight_kg = Some(68.0);
    v.vitals.height_cm = Some(160.0);
    v.symptoms = vec!["头晕".into()];
    let id = store.record_visit(p, v.clone()).unwrap();
    let visits = store.visits(p).unwrap();
    assert_eq!(visits.len(), 1);
    let got = &visits[0];
    assert_eq!(got.id, id);
    assert_eq!(got.vitals, v.vitals);
    assert_eq!(got.vitals.bmi(), Some(26.6));
    assert_eq!(got.symptoms, vec!["头晕".to_string()]);
    assert_eq!(got.diagnoses, vec!["I10".to_string()]);
    assert_eq!(got.medicines.values().next().unwrap().name, "氨氯地平");
    assert_eq!(store.patient(p).unwrap().demographics().name, "王秀英");
}

#[test]
fn amendments_change_the_field_and_keep_who_and_why() {
    let store = memory_store();
    let p = registered(&store, "李四");
    let v = store.record_visit(p, visit(190, 95)).unwrap();
    store
        .amend_visit(
            p,
            v,
            VisitAmendment {
                field: VisitField::SystolicMmhg(Some(150)),
                practitioner_id: DR_WANG.into(),
                reason: "typo".into(),
            },
        )
        .unwrap();
    let medicine = *store.visits(p).unwrap()[0].medicines.keys().next().unwrap();
    store
        .amend_visit(
            p,
            v,
            VisitAmendment {
                field: VisitField::MedicineAdherence { medicine_id: medicine, adherence: Adherence::Intermittent },
                practitioner_id: DR_WANG.into(),
                reason: String::new(),
            },
        )
        .unwrap();
    let got = &store.visits(p).unwrap()[0];
    assert_eq!(got.vitals.systolic_mmhg, Some(150));
    assert_eq!(got.medicines[&medicine].adherence, Adherence::Intermittent);
    let history: Vec<_> = got.amendments.values().collect();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].field, "vitals.systolic_mmhg");
    assert_eq!(history[0].value, "150");
    assert_eq!(history[0].by_practitioner, DR_WANG);
    assert_eq!(history[0].reason, "typo");
    assert_eq!(history[1].field, format!("medicines.{medicine}.adherence"));

    // An amendment that would break a rule is refused and changes nothing.
    let err = store
        .amend_visit(
            p,
            v,
            VisitAmendment {
                field: VisitField::DiastolicMmhg(Some(160)),
                practitioner_id: DR_WANG.into(),
                reason: String::new(),
            },
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "visit.vitals.diastolic_mmhg: 160 must be below systolic 150");
    assert_eq!(store.visits(p).unwrap()[0].amendments.len(), 2);
}

#[test]
fn out_of_range_and_unknown_input_is_refused_naming_the_field() {
    let store = memory_store();
    let p = registered(&store, "赵六");
    let cases: Vec<(NewVisit, &str)> = vec![
        (visit(400, 90), "visit.vitals.systolic_mmhg: 400 is outside 40..=300"),
        (visit(120, 130), "visit.vitals.diastolic_mmhg: 130 must be below systolic 120"),
        (
            NewVisit {
                vitals: Vitals { fasting_glucose_mmol_l: Some(f64::INFINITY), ..Vitals::default() },
                ..visit(120, 80)
            },
            "visit.vitals.fasting_glucose_mmol_l: must be a finite number",
        ),
        (NewVisit { at: now_ms() + 86_400_000, ..visit(120, 80) }, "visit.at: is in the future"),
        (
            NewVisit { diagnoses: vec!["hypertension".into()], ..visit(120, 80) },
            "visit.diagnoses[0]: \"hypertension\" is not an ICD-10 code (like I10 or E11.9)",
        ),
        (
            NewVisit { practitioner_id: "".into(), ..visit(120, 80) },
            "visit.practitioner_id: must be 1 to 64 characters",
        ),
    ];
    for (input, message) in cases {
        assert_eq!(store.record_visit(p, input).unwrap_err().to_string(), message);
    }
    let err = store
        .add_condition(
            p,
            NewCondition {
                icd10: "K35".into(),
                diagnosed_on: day(2025, 1, 1),
                practitioner_id: DR_WANG.into(),
                note: String::new(),
            },
        )
        .unwrap_err();
    assert!(err.to_string().starts_with("condition.icd10: K35 is not a chronic condition the engine manages"), "{err}");
    let err = store
        .create_patient(NewPatient {
            demographics: Demographics { name: " ".into(), ..new_patient("x").demographics },
            ..new_patient("x")
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "patient.name: is required");
    assert!(matches!(
        store.record_visit(yilian_core::PatientId::new(), visit(120, 80)),
        Err(Error::NotFound { what: "patient", .. })
    ));
    // Nothing of the refused input was stored.
    assert!(store.visits(p).unwrap().is_empty());
}

#[test]
fn referral_workflow_allows_and_refuses_transitions() {
    let store = memory_store();
    let p = registered(&store, "孙七");
    let r = store.create_referral(p, upward("uncontrolled hypertension")).unwrap();
    assert_eq!(store.referral_status(r).unwrap().status, TaskStatus::Requested);

    // Only the receiving organization accepts.
    let err = store.add_referral_event(r, event(TaskStatus::Accepted, VILLAGE)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "referral_event.by_organization_id: only the receiving organization ({COUNTY}) can mark this referral accepted"
        )
    );
    store.add_referral_event(r, event(TaskStatus::Received, COUNTY)).unwrap();
    // received -> in-progress skips acceptance.
    let err = store.add_referral_event(r, event(TaskStatus::InProgress, COUNTY)).unwrap_err();
    assert!(matches!(err, Error::Transition { from: TaskStatus::Received, to: TaskStatus::InProgress, .. }));
    assert_eq!(err.to_string(), format!("referral {r}: cannot go from received to in-progress"));
    for status in [
        TaskStatus::Accepted,
        TaskStatus::InProgress,
        TaskStatus::OnHold,
        TaskStatus::InProgress,
        TaskStatus::Completed,
    ] {
        store.add_referral_event(r, event(status, COUNTY)).unwrap();
    }
    let s = store.referral_status(r).unwrap();
    assert_eq!(s.status, TaskStatus::Completed);
    assert_eq!(s.history.len(), 6);
    assert!(s.history.iter().all(|e| e.applied));
    // Terminal stays terminal.
    let err = store.add_referral_event(r, event(TaskStatus::Cancelled, VILLAGE)).unwrap_err();
    assert!(matches!(err, Error::Transition { from: TaskStatus::Completed, .. }));
    // A downward referral answers it and closes the loop.
    let down = store.create_referral(p, downward(r)).unwrap();
    assert!(store.referral_suggestions(p).unwrap().iter().all(|s| s.kind != SuggestionKind::DownwardReferralExpected));
    assert_eq!(store.open_referrals(VILLAGE).unwrap().iter().map(|s| s.referral_id).collect::<Vec<_>>(), vec![down]);
    assert!(matches!(
        store.add_referral_event(yilian_core::ReferralId::new(), event(TaskStatus::Received, COUNTY)),
        Err(Error::NotFound { what: "referral", .. })
    ));
}

#[test]
fn open_referrals_list_both_directions_until_finished() {
    let store = memory_store();
    let a = registered(&store, "甲");
    let b = registered(&store, "乙");
    let ra = store.create_referral(a, upward("chest pain")).unwrap();
    let rb = store.create_referral(b, upward("stroke rehab assessment")).unwrap();
    let open = store.open_referrals(COUNTY).unwrap();
    assert_eq!(open.len(), 2);
    assert_eq!(open[0].patient_name, "甲");
    assert_eq!(open[0].direction, Direction::Upward);
    store
        .add_referral_event(rb, NewReferralEvent { note: "no bed".into(), ..event(TaskStatus::Rejected, COUNTY) })
        .unwrap();
    let open = store.open_referrals(COUNTY).unwrap();
    assert_eq!(open.iter().map(|s| s.referral_id).collect::<Vec<_>>(), vec![ra]);
    assert_eq!(store.open_referrals(VILLAGE).unwrap().len(), 1);
    assert!(store.open_referrals("elsewhere").unwrap().is_empty());
}

#[test]
fn due_follow_ups_come_from_the_rules_for_the_contracted_doctor() {
    let store = memory_store();
    let today = today();
    let year_ago = today - chrono::Days::new(200);
    let controlled = registered(&store, "控制良好");
    let uncontrolled = registered(&store, "血压高");
    let never_seen = registered(&store, "新诊断");
    let not_mine = registered(&store, "别人的");
    for p in [controlled, uncontrolled, never_seen, not_mine] {
        store.add_condition(p, hypertension(year_ago)).unwrap();
    }
    for p in [controlled, uncontrolled, never_seen] {
        store.sign_contract(p, contract(year_ago, today + chrono::Days::new(100))).unwrap();
    }
    store
        .sign_contract(
            not_mine,
            NewContract { practitioner_id: "dr-zhao".into(), ..contract(year_ago, today + chrono::Days::new(100)) },
        )
        .unwrap();
    // Seen 30 days ago, controlled: next quarterly in 60 days, not due.
    store.record_visit(controlled, visit_on(today - chrono::Days::new(30), 128, 80)).unwrap();
    // Seen 20 days ago, uncontrolled: due 6 days ago.
    store.record_visit(uncontrolled, visit_on(today - chrono::Days::new(20), 156, 98)).unwrap();

    let due = store.due_follow_ups(DR_WANG, today).unwrap();
    let names: Vec<_> = due.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec!["血压高", "新诊断"], "most overdue first");
    assert_eq!(due[0].days_overdue, 6);
    assert!(matches!(&due[0].reasons[0], DueReason::Uncontrolled { reading, .. } if reading == "156/98 mmHg"));
    // Enrolled today and never seen: due from the day the condition was recorded.
    assert_eq!(due[1].days_overdue, 0);
    assert!(matches!(due[1].reasons[0], DueReason::NeverFollowedUp { .. }));
    // In 60 days the controlled one is due too.
    let later = store.due_follow_ups(DR_WANG, today + chrono::Days::new(60)).unwrap();
    assert!(later.iter().any(|d| d.patient_id == controlled));
    // Outside the contract period nobody is due for this doctor.
    assert!(store.due_follow_ups(DR_WANG, today + chrono::Days::new(101)).unwrap().is_empty());
    assert_eq!(store.due_follow_ups("dr-zhao", today).unwrap().len(), 1);
    assert_eq!(store.patients_of(DR_WANG).unwrap().len(), 3);

    // The indexes are derived data: rebuilding them gives the same lists.
    assert_eq!(store.rebuild_indexes().unwrap(), 4);
    assert_eq!(store.due_follow_ups(DR_WANG, today).unwrap(), due);
}

#[test]
fn terminated_contract_takes_the_resident_off_the_due_list() {
    let store = memory_store();
    let today = today();
    let p = registered(&store, "搬走了");
    store.add_condition(p, hypertension(today - chrono::Days::new(10))).unwrap();
    let c = store.sign_contract(p, contract(today - chrono::Days::new(10), today + chrono::Days::new(300))).unwrap();
    assert_eq!(store.due_follow_ups(DR_WANG, today).unwrap().len(), 1);
    store.terminate_contract(p, c).unwrap();
    assert!(store.due_follow_ups(DR_WANG, today).unwrap().is_empty());
}

#[test]
fn suggestions_follow_the_readings() {
    let store = memory_store();
    let p = registered(&store, "危急值");
    store.add_condition(p, hypertension(day(2025, 1, 1))).unwrap();
    store.record_visit(p, visit(186, 112)).unwrap();
    let s = store.referral_suggestions(p).unwrap();
    assert_eq!(s[0].kind, SuggestionKind::UrgentUpwardReferral);
    assert!(s[0].reason.contains("systolic 186 mmHg >= 180"));
    store.create_referral(p, upward("danger values")).unwrap();
    assert!(store.referral_suggestions(p).unwrap().iter().all(|s| s.kind != SuggestionKind::UrgentUpwardReferral));
}

#[test]
fn demographics_update_validates_and_keeps_other_fields() {
    let store = memory_store();
    let p = registered(&store, "周八");
    store
        .update_demographics(p, DemographicsUpdate { phone: Some("138 0013 8000".into()), ..Default::default() })
        .unwrap();
    let err = store
        .update_demographics(
            p,
            DemographicsUpdate { national_id: Some("110105194912310021".into()), ..Default::default() },
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "patient.national_id: check digit is 1, expected X");
    let d = store.patient(p).unwrap().patient.demographics;
    assert_eq!(d.phone.as_deref(), Some("13800138000"));
    assert_eq!(d.name, "周八");
    assert_eq!(d.national_id, None);
}

#[test]
fn the_same_resident_id_cannot_be_registered_twice_on_one_device() {
    let store = memory_store();
    let p = registered(&store, "重复");
    let err = store.create_patient(NewPatient { id: Some(p), ..new_patient("重复") }).unwrap_err();
    assert_eq!(err.to_string(), format!("patient {p} already exists"));
}

#[test]
fn json_export_carries_the_whole_record() {
    let store = memory_store();
    let p = registered(&store, "导出");
    store.record_visit(p, visit(130, 85)).unwrap();
    let r = store.create_referral(p, upward("check")).unwrap();
    let json = store.export_json(p).unwrap();
    assert_eq!(json["patient"]["name"], "导出");
    assert_eq!(json["visits"][0]["vitals"]["systolic_mmhg"], 130);
    assert_eq!(json["referrals"][0]["id"], r.to_string());
    assert_eq!(json["referrals"][0]["status"]["status"], "requested");
}

#[test]
fn the_worklist_filters_by_side_status_urgency_direction_and_day() {
    let store = memory_store();
    let a = registered(&store, "甲");
    let b = registered(&store, "乙");
    let urgent = store.create_referral(a, upward("chest pain")).unwrap();
    let routine =
        store.create_referral(b, NewReferral { urgency: Urgency::Routine, ..upward("stroke rehab") }).unwrap();
    let emergency =
        store.create_referral(b, NewReferral { urgency: Urgency::Emergency, ..upward("BP 200/120") }).unwrap();
    store.add_referral_event(urgent, event(TaskStatus::Accepted, COUNTY)).unwrap();

    let ids = |filter: WorklistFilter, org: &str| -> Vec<ReferralId> {
        store.referral_worklist(org, &filter).unwrap().iter().map(|i| i.referral.referral_id).collect()
    };
    // Most urgent first.
    assert_eq!(ids(WorklistFilter::default(), COUNTY), vec![emergency, urgent, routine]);
    let all = store.referral_worklist(COUNTY, &WorklistFilter::default()).unwrap();
    assert!(all.iter().all(|i| i.side == WorklistSide::Incoming));
    assert!(all[1].status_changed_at.is_some() && all[0].status_changed_at.is_none());
    assert_eq!(all[0].referral.patient_name, "乙");
    let outgoing = WorklistFilter { side: Some(WorklistSide::Outgoing), ..Default::default() };
    assert_eq!(ids(outgoing.clone(), VILLAGE).len(), 3);
    assert!(ids(outgoing, COUNTY).is_empty());
    let accepted = WorklistFilter { statuses: vec![TaskStatus::Accepted], ..Default::default() };
    assert_eq!(ids(accepted, COUNTY), vec![urgent]);
    let waiting = WorklistFilter { statuses: vec![TaskStatus::Requested, TaskStatus::Received], ..Default::default() };
    assert_eq!(ids(waiting, COUNTY), vec![emergency, routine]);
    let only_routine = WorklistFilter { urgency: Some(Urgency::Routine), ..Default::default() };
    assert_eq!(ids(only_routine, COUNTY), vec![routine]);
    let downward = WorklistFilter { direction: Some(Direction::Downward), ..Default::default() };
    assert!(ids(downward, COUNTY).is_empty());
    let today = today();
    let today_only = WorklistFilter { from: Some(today), to: Some(today), ..Default::default() };
    assert_eq!(ids(today_only, COUNTY).len(), 3);
    let tomorrow = today.succ_opt().unwrap();
    assert!(ids(WorklistFilter { from: Some(tomorrow), ..Default::default() }, COUNTY).is_empty());
    assert_eq!(ids(WorklistFilter { limit: 1, ..Default::default() }, COUNTY), vec![emergency]);
    let err = store.referral_worklist(COUNTY, &WorklistFilter { limit: 5000, ..Default::default() }).unwrap_err();
    assert_eq!(err.to_string(), "worklist.limit: 5000 is more than 1000");
    let backwards = WorklistFilter { from: Some(tomorrow), to: Some(today), ..Default::default() };
    assert!(store.referral_worklist(COUNTY, &backwards).unwrap_err().to_string().starts_with("worklist.from:"));
}

#[test]
fn changed_records_come_in_pages_that_skip_nothing() {
    let store = memory_store();
    let a = registered(&store, "甲");
    let b = registered(&store, "乙");
    let c = registered(&store, "丙");
    store.record_visit(a, visit(130, 80)).unwrap();
    let first = store.changed_records_page(0, 2).unwrap();
    // a changed last: its newest change is after b's and c's.
    assert_eq!(first.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![b, c]);
    let second = store.changed_records_page(first[1].1, 2).unwrap();
    assert_eq!(second.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![a]);
    assert!(store.changed_records_page(second[0].1, 2).unwrap().is_empty());
    store.record_visit(b, visit(128, 78)).unwrap();
    assert_eq!(
        store.changed_records_page(second[0].1, 2).unwrap().iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![b]
    );
}

#[test]
fn statistics_count_the_closed_loop_of_real_referrals() {
    let store = memory_store();
    let p = registered(&store, "孙七");
    let today = today();
    let period = yilian_core::care::Period::new(today.pred_opt().unwrap(), today).unwrap();
    let up = store.create_referral(p, upward("uncontrolled hypertension")).unwrap();
    for status in [TaskStatus::Accepted, TaskStatus::InProgress, TaskStatus::Completed] {
        store.add_referral_event(up, event(status, COUNTY)).unwrap();
    }
    let stats = store.referral_statistics(COUNTY, period, today).unwrap();
    assert_eq!(stats.referrals[&Direction::Upward][&TaskStatus::Completed], 1);
    assert_eq!(stats.acceptance.accepted, 1);
    assert_eq!((stats.closed_loop.completed_upward, stats.closed_loop.awaiting, stats.closed_loop.closed), (1, 1, 0));
    store.create_referral(p, downward(up)).unwrap();
    store.record_visit(p, visit_at(now_ms(), 132, 84)).unwrap();
    let stats = store.referral_statistics(COUNTY, period, today).unwrap();
    assert_eq!((stats.closed_loop.closed, stats.closed_loop.rate), (1, Some(1.0)));
    assert_eq!(
        stats.months.len(),
        if period.from.format("%m").to_string() == today.format("%m").to_string() { 1 } else { 2 }
    );
}
