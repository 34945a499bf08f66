//! What a doctor should consider referring, and why.

use super::readings::{Control, blood_pressure_control, danger_values, glucose_control};
use crate::ReferralId;
use crate::model::{Direction, PatientRecord, Program, TaskStatus, Urgency, Visit};
use serde::{Deserialize, Serialize};

/// The kind of action suggested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionKind {
    /// Danger values: refer up now.
    UrgentUpwardReferral,
    /// Two consecutive uncontrolled follow-ups: consider referring up.
    UpwardReferral,
    /// An upward referral was completed without a downward referral back (closed loop open).
    DownwardReferralExpected,
}

/// One suggestion with its reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferralSuggestion {
    /// What to do.
    pub kind: SuggestionKind,
    /// How urgent.
    pub urgency: Urgency,
    /// The program concerned, if any.
    pub program: Option<Program>,
    /// The referral concerned (for a downward referral expected).
    pub referral_id: Option<ReferralId>,
    /// Why, for the doctor.
    pub reason: String,
}

/// Suggestions for a resident, from their record.
pub fn referral_suggestions(record: &PatientRecord) -> Vec<ReferralSuggestion> {
    let mut out = Vec::new();
    let referred_up_since = |at: i64| {
        record.referrals.iter().any(|r| {
            r.referral.direction == Direction::Upward
                && r.referral.created_at >= at
                && !matches!(r.status.status, TaskStatus::Rejected | TaskStatus::Cancelled | TaskStatus::Failed)
        })
    };

    if let Some(latest) = record.visits.iter().rev().find(|v| !danger_values(&v.vitals).is_empty() || has_readings(v)) {
        let danger = danger_values(&latest.vitals);
        if !danger.is_empty() && !referred_up_since(latest.at) {
            out.push(ReferralSuggestion {
                kind: SuggestionKind::UrgentUpwardReferral,
                urgency: Urgency::Emergency,
                program: None,
                referral_id: None,
                reason: format!("danger values at the last visit: {}", danger.join(", ")),
            });
        }
    }

    for program in record.programs() {
        let control = |v: &Visit| match program {
            Program::Hypertension => blood_pressure_control(&v.vitals),
            Program::Type2Diabetes => glucose_control(&v.vitals),
            _ => None,
        };
        let measured: Vec<(&Visit, Control)> = record
            .visits
            .iter()
            .filter(|v| v.kind.is_face_to_face())
            .filter_map(|v| control(v).map(|c| (v, c)))
            .collect();
        if let [.., (_, Control::Uncontrolled(first)), (second_visit, Control::Uncontrolled(second))] =
            measured.as_slice()
            && !referred_up_since(second_visit.at)
        {
            out.push(ReferralSuggestion {
                kind: SuggestionKind::UpwardReferral,
                urgency: Urgency::Routine,
                program: Some(program),
                referral_id: None,
                reason: format!("two consecutive uncontrolled follow-ups ({first}, then {second})"),
            });
        }
    }

    for up in record
        .referrals
        .iter()
        .filter(|r| r.referral.direction == Direction::Upward && r.status.status == TaskStatus::Completed)
    {
        let answered = record
            .referrals
            .iter()
            .any(|d| d.referral.direction == Direction::Downward && d.referral.in_response_to == Some(up.referral.id));
        if !answered {
            out.push(ReferralSuggestion {
                kind: SuggestionKind::DownwardReferralExpected,
                urgency: Urgency::Routine,
                program: None,
                referral_id: Some(up.referral.id),
                reason: format!(
                    "upward referral to {} completed without a downward referral back",
                    up.referral.to_organization_id
                ),
            });
        }
    }
    out
}

fn has_readings(v: &Visit) -> bool {
    blood_pressure_control(&v.vitals).is_some()
        || glucose_control(&v.vitals).is_some()
        || v.vitals.two_hour_glucose_mmol_l.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::care::test_records::*;

    #[test]
    fn danger_values_suggest_an_urgent_referral_until_one_is_made() {
        let mut r = record();
        add_condition(&mut r, "I10", day(2026, 1, 5));
        add_visit(&mut r, day(2026, 2, 1), bp(186, 100));
        let s = referral_suggestions(&r);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, SuggestionKind::UrgentUpwardReferral);
        assert_eq!(s[0].urgency, Urgency::Emergency);
        assert!(s[0].reason.contains("systolic 186 mmHg >= 180"));
        add_referral_created(&mut r, Direction::Upward, day(2026, 2, 1), &[]);
        assert!(referral_suggestions(&r).iter().all(|s| s.kind != SuggestionKind::UrgentUpwardReferral));
    }

    #[test]
    fn low_glucose_is_a_danger_value() {
        let mut r = record();
        let v = crate::model::Vitals { fasting_glucose_mmol_l: Some(3.2), ..Default::default() };
        add_visit(&mut r, day(2026, 2, 1), v);
        assert_eq!(referral_suggestions(&r)[0].kind, SuggestionKind::UrgentUpwardReferral);
    }

    #[test]
    fn two_consecutive_uncontrolled_follow_ups_suggest_upward_referral() {
        let mut r = record();
        add_condition(&mut r, "I10", day(2026, 1, 5));
        add_visit(&mut r, day(2026, 2, 1), bp(150, 92));
        assert!(referral_suggestions(&r).is_empty(), "one uncontrolled follow-up is not enough");
        add_visit(&mut r, day(2026, 2, 15), bp(148, 95));
        let s = referral_suggestions(&r);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, SuggestionKind::UpwardReferral);
        assert_eq!(s[0].program, Some(Program::Hypertension));
        // Controlled in between breaks the run.
        add_visit(&mut r, day(2026, 3, 1), bp(130, 80));
        add_visit(&mut r, day(2026, 3, 15), bp(150, 90));
        assert!(referral_suggestions(&r).is_empty());
    }

    #[test]
    fn completed_upward_referral_expects_a_downward_one() {
        let mut r = record();
        let up = add_referral(
            &mut r,
            Direction::Upward,
            &[
                (TaskStatus::Accepted, day(2026, 2, 3)),
                (TaskStatus::InProgress, day(2026, 2, 4)),
                (TaskStatus::Completed, day(2026, 2, 10)),
            ],
        );
        let s = referral_suggestions(&r);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, SuggestionKind::DownwardReferralExpected);
        assert_eq!(s[0].referral_id, Some(up));
        let down = add_referral_created(&mut r, Direction::Downward, day(2026, 2, 10), &[]);
        r.referrals.iter_mut().find(|x| x.referral.id == down).unwrap().referral.in_response_to = Some(up);
        assert!(referral_suggestions(&r).is_empty());
    }
}
