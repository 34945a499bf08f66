//! Family-doctor contracts, conditions, booked follow-ups, the due list and referral suggestions.

use super::{Urgency, mirror_enum};
use crate::error::{CareError, parse};
use yilian_core::care;
use yilian_core::model as core;

mirror_enum!(
    /// The chronic-disease programs the engine follows.
    Program = core::Program {
        /// Hypertension (I10-I15).
        Hypertension,
        /// Type 2 diabetes (E11).
        Type2Diabetes,
        /// COPD (J44).
        Copd,
        /// Stroke and its sequelae (I60-I64, I69).
        Stroke,
        /// Coronary heart disease (I20-I25).
        CoronaryHeartDisease,
    }
);

mirror_enum!(
    /// Whether a contract is in force.
    ContractStatus = core::ContractStatus {
        /// Signed and not terminated.
        Active,
        /// Terminated early.
        Terminated,
    }
);

/// A family-doctor contract (签约) to sign.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct NewContract {
    /// The family-doctor team.
    pub team_id: String,
    /// The responsible family doctor.
    pub practitioner_id: String,
    /// The team's organization.
    pub organization_id: String,
    /// First day, `YYYY-MM-DD`.
    pub start: String,
    /// Last day, `YYYY-MM-DD`.
    pub end: String,
}

/// A signed contract.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Contract {
    /// The contract's id.
    pub id: String,
    /// The team.
    pub team_id: String,
    /// The family doctor.
    pub practitioner_id: String,
    /// The team's organization.
    pub organization_id: String,
    /// First day, `YYYY-MM-DD`.
    pub start: String,
    /// Last day, `YYYY-MM-DD`.
    pub end: String,
    /// Active or terminated.
    pub status: ContractStatus,
    /// When it was signed (ms since the epoch).
    pub signed_at: i64,
}

/// A diagnosis to add.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct NewCondition {
    /// ICD-10 code (I10, E11.9, J44.1, ...) of a followed program.
    pub icd10: String,
    /// Day of diagnosis, `YYYY-MM-DD`.
    pub diagnosed_on: String,
    /// Who records it.
    pub practitioner_id: String,
    /// Note.
    pub note: String,
}

/// A diagnosed condition.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Condition {
    /// The condition's id.
    pub id: String,
    /// ICD-10 code.
    pub icd10: String,
    /// The program it enrols the resident in.
    pub program: Program,
    /// Day of diagnosis, `YYYY-MM-DD`.
    pub diagnosed_on: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// When (ms since the epoch).
    pub recorded_at: i64,
    /// Note.
    pub note: String,
}

/// A follow-up to book.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct NewFollowUpPlan {
    /// Day it is due, `YYYY-MM-DD`.
    pub due: String,
    /// Why.
    pub reason: String,
    /// Who books it.
    pub practitioner_id: String,
}

/// A booked follow-up.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct FollowUpPlan {
    /// The booking's id.
    pub id: String,
    /// Day it is due, `YYYY-MM-DD`.
    pub due: String,
    /// Why.
    pub reason: String,
    /// Who booked it.
    pub booked_by: String,
    /// When (ms since the epoch).
    pub booked_at: i64,
}

/// Which rule makes a follow-up due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum DueKind {
    /// Enrolled in a program, never followed up face to face since.
    NeverFollowedUp,
    /// The quarterly follow-up of hypertension and diabetes.
    Quarterly,
    /// The last reading was uncontrolled: within two weeks.
    Uncontrolled,
    /// An upward referral was completed: within two weeks (closing the loop).
    AfterUpwardReferral,
    /// Booked by the doctor.
    Booked,
}

/// One reason a follow-up is due.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct DueReason {
    /// The rule.
    pub kind: DueKind,
    /// The program concerned, if any.
    pub program: Option<Program>,
    /// The referral concerned (after an upward referral).
    pub referral_id: Option<String>,
    /// The booking concerned (booked).
    pub plan_id: Option<String>,
    /// A sentence for the doctor.
    pub description: String,
}

/// One line of a doctor's due list.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct DueFollowUp {
    /// The resident.
    pub patient_id: String,
    /// Their name.
    pub name: String,
    /// Day it is due, `YYYY-MM-DD`.
    pub due: String,
    /// Days past due (0 when due today).
    pub days_overdue: i64,
    /// Why.
    pub reasons: Vec<DueReason>,
}

mirror_enum!(
    /// What a referral suggestion asks for.
    SuggestionKind = care::SuggestionKind {
        /// Danger values: refer up now.
        UrgentUpwardReferral,
        /// Two consecutive uncontrolled follow-ups: consider referring up.
        UpwardReferral,
        /// An upward referral was completed without a downward referral back.
        DownwardReferralExpected,
    }
);

/// A suggestion computed from a record, with its reason.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct ReferralSuggestion {
    /// What to do.
    pub kind: SuggestionKind,
    /// How urgent.
    pub urgency: Urgency,
    /// The program concerned.
    pub program: Option<Program>,
    /// The referral concerned.
    pub referral_id: Option<String>,
    /// Why, for the doctor.
    pub reason: String,
}

impl NewContract {
    pub(crate) fn into_core(self) -> Result<core::NewContract, CareError> {
        Ok(core::NewContract {
            team_id: self.team_id,
            practitioner_id: self.practitioner_id,
            organization_id: self.organization_id,
            start: parse("contract.start", &self.start)?,
            end: parse("contract.end", &self.end)?,
        })
    }
}

impl From<core::Contract> for Contract {
    fn from(c: core::Contract) -> Self {
        Contract {
            id: c.id.to_string(),
            team_id: c.team_id,
            practitioner_id: c.practitioner_id,
            organization_id: c.organization_id,
            start: c.start.to_string(),
            end: c.end.to_string(),
            status: c.status.into(),
            signed_at: c.signed_at,
        }
    }
}

impl NewCondition {
    pub(crate) fn into_core(self) -> Result<core::NewCondition, CareError> {
        Ok(core::NewCondition {
            icd10: self.icd10,
            diagnosed_on: parse("condition.diagnosed_on", &self.diagnosed_on)?,
            practitioner_id: self.practitioner_id,
            note: self.note,
        })
    }
}

impl From<core::Condition> for Condition {
    fn from(c: core::Condition) -> Self {
        Condition {
            id: c.id.to_string(),
            icd10: c.icd10,
            program: c.program.into(),
            diagnosed_on: c.diagnosed_on.to_string(),
            recorded_by: c.recorded_by,
            recorded_at: c.recorded_at,
            note: c.note,
        }
    }
}

impl NewFollowUpPlan {
    pub(crate) fn into_core(self) -> Result<core::NewFollowUpPlan, CareError> {
        Ok(core::NewFollowUpPlan {
            due: parse("follow_up.due", &self.due)?,
            reason: self.reason,
            practitioner_id: self.practitioner_id,
        })
    }
}

impl From<core::FollowUpPlan> for FollowUpPlan {
    fn from(p: core::FollowUpPlan) -> Self {
        FollowUpPlan {
            id: p.id.to_string(),
            due: p.due.to_string(),
            reason: p.reason,
            booked_by: p.booked_by,
            booked_at: p.booked_at,
        }
    }
}

impl From<care::DueReason> for DueReason {
    fn from(r: care::DueReason) -> Self {
        use care::DueReason as R;
        let description = r.describe();
        let (kind, program, referral_id, plan_id) = match r {
            R::NeverFollowedUp { program, .. } => (DueKind::NeverFollowedUp, Some(program), None, None),
            R::Quarterly { program, .. } => (DueKind::Quarterly, Some(program), None, None),
            R::Uncontrolled { program, .. } => (DueKind::Uncontrolled, Some(program), None, None),
            R::AfterUpwardReferral { referral_id, .. } => {
                (DueKind::AfterUpwardReferral, None, Some(referral_id.to_string()), None)
            }
            R::Booked { plan_id, .. } => (DueKind::Booked, None, None, Some(plan_id.to_string())),
        };
        DueReason { kind, program: program.map(Into::into), referral_id, plan_id, description }
    }
}

impl From<care::DueFollowUp> for DueFollowUp {
    fn from(d: care::DueFollowUp) -> Self {
        DueFollowUp {
            patient_id: d.patient_id.to_string(),
            name: d.name,
            due: d.due.to_string(),
            days_overdue: d.days_overdue,
            reasons: super::all(d.reasons),
        }
    }
}

impl From<care::ReferralSuggestion> for ReferralSuggestion {
    fn from(s: care::ReferralSuggestion) -> Self {
        ReferralSuggestion {
            kind: s.kind.into(),
            urgency: s.urgency.into(),
            program: s.program.map(Into::into),
            referral_id: s.referral_id.map(|id| id.to_string()),
            reason: s.reason,
        }
    }
}
