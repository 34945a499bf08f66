//! Referrals between levels of the consortium, their events, and the status folded from them.

use super::{all, mirror_enum};
use crate::error::{CareError, parse};
use yilian_core::model as core;

mirror_enum!(
    /// Up to a higher-level hospital, or down for rehabilitation.
    Direction = core::Direction {
        /// To a higher level (village → township → county).
        Upward,
        /// Back to primary care.
        Downward,
    }
);

mirror_enum!(
    /// How urgent a referral is.
    Urgency = core::Urgency {
        /// Routine.
        Routine,
        /// Urgent: within days.
        Urgent,
        /// Emergency: now.
        Emergency,
    }
);

mirror_enum!(
    /// The closed-loop status of a referral (the FHIR Task status).
    TaskStatus = core::TaskStatus {
        /// Sent, not yet seen.
        Requested,
        /// Seen by the receiving organization.
        Received,
        /// Accepted; the patient is expected.
        Accepted,
        /// Refused (terminal).
        Rejected,
        /// Care under way.
        InProgress,
        /// Paused.
        OnHold,
        /// Care finished (terminal); upward referrals carry a discharge summary.
        Completed,
        /// Care could not be given (terminal).
        Failed,
        /// Withdrawn (terminal).
        Cancelled,
    }
);

/// A referral to create.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct NewReferral {
    /// Up or down.
    pub direction: Direction,
    /// Sending organization.
    pub from_organization_id: String,
    /// Sending practitioner.
    pub from_practitioner_id: String,
    /// Receiving organization.
    pub to_organization_id: String,
    /// Why the resident is referred.
    pub reason: String,
    /// How urgent.
    pub urgency: Urgency,
    /// Clinical summary for the receiving side.
    pub clinical_summary: String,
    /// For a downward referral: the upward referral whose loop it closes.
    #[uniffi(default = None)]
    pub in_response_to: Option<String>,
}

/// A step in a referral's workflow (received, accepted, rejected, completed, ...).
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct NewReferralEvent {
    /// The status the referral moves to.
    pub status: TaskStatus,
    /// Who acts.
    pub by_practitioner_id: String,
    /// On behalf of which organization.
    pub by_organization_id: String,
    /// Note (required for a rejection: the reason).
    pub note: String,
    /// Discharge summary (required to complete an upward referral).
    #[uniffi(default = None)]
    pub discharge_summary: Option<String>,
}

/// One event of a referral's history, with whether it moved the status.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct ReferralEvent {
    /// The event's id.
    pub id: String,
    /// The status it asked for.
    pub status: TaskStatus,
    /// Who acted.
    pub by_practitioner_id: String,
    /// For which organization.
    pub by_organization_id: String,
    /// When (ms since the epoch, the wall-clock part of its hybrid logical clock).
    pub at: i64,
    /// Note.
    pub note: String,
    /// Discharge summary.
    pub discharge_summary: Option<String>,
    /// False when an earlier concurrent event won (e.g. rejected on one device while accepted
    /// on another): kept for the history, without effect.
    pub applied: bool,
}

/// A referral with its current status and full history.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct ReferralView {
    /// The referral's id.
    pub id: String,
    /// Up or down.
    pub direction: Direction,
    /// Sending organization.
    pub from_organization_id: String,
    /// Sending practitioner.
    pub from_practitioner_id: String,
    /// Receiving organization.
    pub to_organization_id: String,
    /// Why.
    pub reason: String,
    /// How urgent.
    pub urgency: Urgency,
    /// Clinical summary.
    pub clinical_summary: String,
    /// The upward referral a downward one answers.
    pub in_response_to: Option<String>,
    /// When it was requested (ms since the epoch).
    pub created_at: i64,
    /// Current status.
    pub status: TaskStatus,
    /// Events in the order they were folded.
    pub history: Vec<ReferralEvent>,
}

/// One line of an organization's referral worklist.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct ReferralSummary {
    /// The referral.
    pub referral_id: String,
    /// The resident.
    pub patient_id: String,
    /// The resident's name.
    pub patient_name: String,
    /// Up or down.
    pub direction: Direction,
    /// Sending organization.
    pub from_organization_id: String,
    /// Receiving organization.
    pub to_organization_id: String,
    /// Current status.
    pub status: TaskStatus,
    /// How urgent.
    pub urgency: Urgency,
    /// When it was requested (ms since the epoch).
    pub created_at: i64,
}

impl NewReferral {
    pub(crate) fn into_core(self) -> Result<core::NewReferral, CareError> {
        Ok(core::NewReferral {
            direction: self.direction.into(),
            from_organization_id: self.from_organization_id,
            from_practitioner_id: self.from_practitioner_id,
            to_organization_id: self.to_organization_id,
            reason: self.reason,
            urgency: self.urgency.into(),
            clinical_summary: self.clinical_summary,
            in_response_to: self.in_response_to.map(|id| parse("referral.in_response_to", &id)).transpose()?,
        })
    }
}

impl From<NewReferralEvent> for core::NewReferralEvent {
    fn from(e: NewReferralEvent) -> Self {
        core::NewReferralEvent {
            status: e.status.into(),
            by_practitioner_id: e.by_practitioner_id,
            by_organization_id: e.by_organization_id,
            note: e.note,
            discharge_summary: e.discharge_summary,
        }
    }
}

impl From<core::FoldedEvent> for ReferralEvent {
    fn from(f: core::FoldedEvent) -> Self {
        ReferralEvent {
            id: f.id.to_string(),
            status: f.event.status.into(),
            by_practitioner_id: f.event.by_practitioner_id,
            by_organization_id: f.event.by_organization_id,
            at: f.event.at.wall_ms(),
            note: f.event.note,
            discharge_summary: f.event.discharge_summary,
            applied: f.applied,
        }
    }
}

impl From<core::ReferralView> for ReferralView {
    fn from(v: core::ReferralView) -> Self {
        let r = v.referral;
        ReferralView {
            id: r.id.to_string(),
            direction: r.direction.into(),
            from_organization_id: r.from_organization_id,
            from_practitioner_id: r.from_practitioner_id,
            to_organization_id: r.to_organization_id,
            reason: r.reason,
            urgency: r.urgency.into(),
            clinical_summary: r.clinical_summary,
            in_response_to: r.in_response_to.map(|id| id.to_string()),
            created_at: r.created_at,
            status: v.status.status.into(),
            history: all(v.status.history),
        }
    }
}

impl From<yilian_core::store::ReferralSummary> for ReferralSummary {
    fn from(s: yilian_core::store::ReferralSummary) -> Self {
        ReferralSummary {
            referral_id: s.referral_id.to_string(),
            patient_id: s.patient_id.to_string(),
            patient_name: s.patient_name,
            direction: s.direction.into(),
            from_organization_id: s.from_organization_id,
            to_organization_id: s.to_organization_id,
            status: s.status.into(),
            urgency: s.urgency.into(),
            created_at: s.created_at,
        }
    }
}
