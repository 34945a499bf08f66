//! When a resident's next follow-up is due, and why.

use super::readings::{Control, blood_pressure_control, glucose_control};
use super::{QUARTERLY_DAYS, TWO_WEEKS_DAYS};
use crate::model::{Direction, PatientRecord, Program, TaskStatus, Visit};
use crate::time::date_of;
use crate::{FollowUpPlanId, PatientId, ReferralId};
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

/// Why a follow-up is due.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum DueReason {
    /// Enrolled in a program but never seen face to face since.
    NeverFollowedUp {
        /// The program.
        program: Program,
        /// When the condition was recorded.
        since: NaiveDate,
    },
    /// The quarterly follow-up (four a year).
    Quarterly {
        /// The program.
        program: Program,
        /// Day of the last face-to-face visit.
        last_visit: NaiveDate,
    },
    /// The last reading was uncontrolled: follow up within two weeks.
    Uncontrolled {
        /// The program.
        program: Program,
        /// The reading, e.g. `152/96 mmHg`.
        reading: String,
        /// Day of that visit.
        visit_on: NaiveDate,
    },
    /// An upward referral was completed: follow up within two weeks (closed loop).
    AfterUpwardReferral {
        /// The referral.
        referral_id: ReferralId,
        /// Day it was completed.
        completed_on: NaiveDate,
    },
    /// The doctor booked it.
    Booked {
        /// The booking.
        plan_id: FollowUpPlanId,
        /// Its reason.
        reason: String,
    },
}

impl DueReason {
    /// A sentence for the doctor.
    pub fn describe(&self) -> String {
        match self {
            DueReason::NeverFollowedUp { program, since } => {
                format!("{} since {since}, no face-to-face follow-up yet", program_name(*program))
            }
            DueReason::Quarterly { program, last_visit } => {
                format!("quarterly {} follow-up; last visit {last_visit}", program_name(*program))
            }
            DueReason::Uncontrolled { program, reading, visit_on } => {
                format!("{} uncontrolled on {visit_on} ({reading}): follow up within two weeks", program_name(*program))
            }
            DueReason::AfterUpwardReferral { completed_on, .. } => {
                format!("upward referral completed on {completed_on}: follow up within two weeks")
            }
            DueReason::Booked { reason, .. } => format!("booked: {reason}"),
        }
    }
}

fn program_name(p: Program) -> &'static str {
    match p {
        Program::Hypertension => "hypertension",
        Program::Type2Diabetes => "type 2 diabetes",
        Program::Copd => "COPD",
        Program::Stroke => "stroke",
        Program::CoronaryHeartDisease => "coronary heart disease",
    }
}

/// The next follow-up of a resident: the earliest day any rule asks for, with the reasons that
/// ask for that day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FollowUpDue {
    /// Day it is due.
    pub due: NaiveDate,
    /// Why.
    pub reasons: Vec<DueReason>,
}

/// One line of a doctor's due list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DueFollowUp {
    /// The resident.
    pub patient_id: PatientId,
    /// Their name.
    pub name: String,
    /// Day it is due.
    pub due: NaiveDate,
    /// Days past due (0 when due today).
    pub days_overdue: i64,
    /// Why.
    pub reasons: Vec<DueReason>,
}

fn plus_days(d: NaiveDate, days: i64) -> NaiveDate {
    d.checked_add_days(Days::new(days.unsigned_abs())).unwrap_or(d)
}

/// Computes the next follow-up of a resident from their record (see the module rules).
pub fn next_follow_up(record: &PatientRecord) -> Option<FollowUpDue> {
    let face_to_face: Vec<&Visit> = record.visits.iter().filter(|v| v.kind.is_face_to_face()).collect();
    let mut candidates: Vec<(NaiveDate, DueReason)> = Vec::new();

    for program in record.programs().into_iter().filter(|p| p.has_quarterly_follow_up()) {
        let since = record.conditions.iter().filter(|c| c.program == program).map(|c| date_of(c.recorded_at)).min();
        let Some(last) = face_to_face.last() else {
            if let Some(since) = since {
                candidates.push((since, DueReason::NeverFollowedUp { program, since }));
            }
            continue;
        };
        let visit_on = date_of(last.at);
        let control = match program {
            Program::Hypertension => blood_pressure_control(&last.vitals),
            _ => glucose_control(&last.vitals),
        };
        match control {
            Some(Control::Uncontrolled(reading)) => candidates
                .push((plus_days(visit_on, TWO_WEEKS_DAYS), DueReason::Uncontrolled { program, reading, visit_on })),
            _ => candidates
                .push((plus_days(visit_on, QUARTERLY_DAYS), DueReason::Quarterly { program, last_visit: visit_on })),
        }
    }

    for referral in &record.referrals {
        let r = &referral.referral;
        if r.direction != Direction::Upward || referral.status.status != TaskStatus::Completed {
            continue;
        }
        let Some(done) = referral.status.changed_at.map(|h| h.wall_ms()) else {
            continue;
        };
        if face_to_face.iter().any(|v| v.at >= done) {
            continue;
        }
        let completed_on = date_of(done);
        candidates.push((
            plus_days(completed_on, TWO_WEEKS_DAYS),
            DueReason::AfterUpwardReferral { referral_id: r.id, completed_on },
        ));
    }

    for plan in &record.follow_up_plans {
        if face_to_face.iter().any(|v| v.at > plan.booked_at) {
            continue;
        }
        candidates.push((plan.due, DueReason::Booked { plan_id: plan.id, reason: plan.reason.clone() }));
    }

    let due = candidates.iter().map(|(d, _)| *d).min()?;
    let reasons = candidates.into_iter().filter(|(d, _)| *d == due).map(|(_, r)| r).collect();
    Some(FollowUpDue { due, reasons })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::care::test_records::*;

    #[test]
    fn no_program_no_follow_up() {
        assert_eq!(next_follow_up(&record()), None);
    }

    #[test]
    fn copd_alone_has_no_quarterly_rule() {
        let mut r = record();
        add_condition(&mut r, "J44.1", day(2026, 1, 1));
        assert_eq!(next_follow_up(&r), None);
    }

    #[test]
    fn enrolled_but_never_seen_is_due_from_enrolment() {
        let mut r = record();
        add_condition(&mut r, "I10", day(2026, 1, 5));
        let due = next_follow_up(&r).unwrap();
        assert_eq!(due.due, day(2026, 1, 5));
        assert_eq!(
            due.reasons,
            vec![DueReason::NeverFollowedUp { program: Program::Hypertension, since: day(2026, 1, 5) }]
        );
    }

    #[test]
    fn controlled_reading_means_quarterly() {
        let mut r = record();
        add_condition(&mut r, "I10", day(2026, 1, 5));
        add_visit(&mut r, day(2026, 2, 1), bp(128, 82));
        let due = next_follow_up(&r).unwrap();
        assert_eq!(due.due, day(2026, 5, 2));
        assert!(matches!(due.reasons[0], DueReason::Quarterly { .. }));
    }

    #[test]
    fn uncontrolled_reading_brings_it_to_two_weeks() {
        let mut r = record();
        add_condition(&mut r, "I10", day(2026, 1, 5));
        add_visit(&mut r, day(2026, 2, 1), bp(152, 96));
        let due = next_follow_up(&r).unwrap();
        assert_eq!(due.due, day(2026, 2, 15));
        assert_eq!(
            due.reasons,
            vec![DueReason::Uncontrolled {
                program: Program::Hypertension,
                reading: "152/96 mmHg".into(),
                visit_on: day(2026, 2, 1)
            }]
        );
        assert!(due.reasons[0].describe().contains("within two weeks"));
    }

    #[test]
    fn diabetes_uses_fasting_glucose_and_the_earliest_rule_wins() {
        let mut r = record();
        add_condition(&mut r, "I10", day(2026, 1, 5));
        add_condition(&mut r, "E11.9", day(2026, 1, 5));
        let mut v = bp(128, 80);
        v.fasting_glucose_mmol_l = Some(8.1);
        add_visit(&mut r, day(2026, 3, 1), v);
        let due = next_follow_up(&r).unwrap();
        assert_eq!(due.due, day(2026, 3, 15));
        assert_eq!(due.reasons.len(), 1);
        assert!(matches!(&due.reasons[0], DueReason::Uncontrolled { program: Program::Type2Diabetes, .. }));
    }

    #[test]
    fn telemedicine_does_not_count_as_face_to_face() {
        let mut r = record();
        add_condition(&mut r, "I10", day(2026, 1, 5));
        add_visit(&mut r, day(2026, 2, 1), bp(128, 82));
        add_visit_kind(&mut r, day(2026, 4, 1), bp(120, 80), crate::model::VisitKind::Telemedicine);
        assert_eq!(next_follow_up(&r).unwrap().due, day(2026, 5, 2));
    }

    #[test]
    fn completed_upward_referral_asks_for_a_follow_up_within_two_weeks() {
        let mut r = record();
        add_condition(&mut r, "I10", day(2026, 1, 5));
        add_visit(&mut r, day(2026, 2, 1), bp(128, 82));
        let id = add_referral(
            &mut r,
            Direction::Upward,
            &[
                (TaskStatus::Accepted, day(2026, 2, 3)),
                (TaskStatus::InProgress, day(2026, 2, 4)),
                (TaskStatus::Completed, day(2026, 2, 10)),
            ],
        );
        let due = next_follow_up(&r).unwrap();
        assert_eq!(due.due, day(2026, 2, 24));
        assert_eq!(
            due.reasons,
            vec![DueReason::AfterUpwardReferral { referral_id: id, completed_on: day(2026, 2, 10) }]
        );
        // A face-to-face visit after completion closes it.
        add_visit(&mut r, day(2026, 2, 20), bp(130, 84));
        assert!(matches!(next_follow_up(&r).unwrap().reasons[0], DueReason::Quarterly { .. }));
    }

    #[test]
    fn booked_follow_up_until_a_visit_after_booking() {
        let mut r = record();
        let plan = book(&mut r, day(2026, 6, 1), day(2026, 5, 1));
        let due = next_follow_up(&r).unwrap();
        assert_eq!(due.due, day(2026, 6, 1));
        assert_eq!(due.reasons, vec![DueReason::Booked { plan_id: plan, reason: "recheck".into() }]);
        add_visit(&mut r, day(2026, 5, 20), bp(120, 80));
        assert_eq!(next_follow_up(&r), None);
    }
}
