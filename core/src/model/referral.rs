//! Referrals between organizations (upward to a hospital, downward back to the village) and the
//! events that move them through the FHIR Task workflow.

use super::validate;
use crate::time::{Hlc, Millis};
use crate::{Error, EventId, ReferralId, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Upward (to a higher-level hospital) or downward (back to primary care for rehabilitation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// 上转: village/township to county/tertiary.
    Upward,
    /// 下转: hospital back to primary care.
    Downward,
}

/// How soon the receiving side must act (FHIR request priority).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// FHIR `routine`.
    Routine,
    /// FHIR `urgent`.
    Urgent,
    /// FHIR `stat`: danger values, act now.
    Emergency,
}

/// Status of a referral: FHIR R4 `TaskStatus` names (the subset the referral workflow uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    /// Sent, not yet seen.
    Requested,
    /// Seen by the receiving organization.
    Received,
    /// Accepted; the patient is expected.
    Accepted,
    /// Refused by the receiving organization (terminal).
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

impl TaskStatus {
    /// All statuses, in workflow order.
    pub const ALL: [TaskStatus; 9] = [
        TaskStatus::Requested,
        TaskStatus::Received,
        TaskStatus::Accepted,
        TaskStatus::Rejected,
        TaskStatus::InProgress,
        TaskStatus::OnHold,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// The FHIR code (`in-progress`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Requested => "requested",
            TaskStatus::Received => "received",
            TaskStatus::Accepted => "accepted",
            TaskStatus::Rejected => "rejected",
            TaskStatus::InProgress => "in-progress",
            TaskStatus::OnHold => "on-hold",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a FHIR code.
    pub fn parse(code: &str) -> Result<TaskStatus> {
        TaskStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == code)
            .ok_or_else(|| Error::invalid("referral_event.status", format!("{code:?} is not a referral status")))
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Rejected | TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled)
    }

    /// Whether the referral workflow allows going from `self` to `to`.
    pub fn can_become(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, to),
            (Requested, Received | Accepted | Rejected | Cancelled)
                | (Received, Accepted | Rejected | Cancelled)
                | (Accepted, InProgress | Cancelled)
                | (InProgress, OnHold | Completed | Failed)
                | (OnHold, InProgress)
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A referral to create.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewReferral {
    /// Upward or downward.
    pub direction: Direction,
    /// Sending organization.
    pub from_organization_id: String,
    /// Sending practitioner.
    pub from_practitioner_id: String,
    /// Receiving organization.
    pub to_organization_id: String,
    /// Why the patient is referred.
    pub reason: String,
    /// How urgent.
    pub urgency: Urgency,
    /// Clinical summary for the receiving side.
    #[serde(default)]
    pub clinical_summary: String,
    /// For a downward referral: the upward referral it closes the loop of.
    #[serde(default)]
    pub in_response_to: Option<ReferralId>,
}

impl NewReferral {
    /// Checks the referral.
    pub fn validated(&self) -> Result<Self> {
        let from = validate::code("referral.from_organization_id", &self.from_organization_id)?;
        let to = validate::code("referral.to_organization_id", &self.to_organization_id)?;
        if from == to {
            return Err(Error::invalid("referral.to_organization_id", "must differ from the sending organization"));
        }
        if self.direction == Direction::Upward && self.in_response_to.is_some() {
            return Err(Error::invalid("referral.in_response_to", "only a downward referral answers an upward one"));
        }
        Ok(NewReferral {
            direction: self.direction,
            from_organization_id: from,
            from_practitioner_id: validate::code("referral.from_practitioner_id", &self.from_practitioner_id)?,
            to_organization_id: to,
            reason: validate::text("referral.reason", &self.reason, 500)?,
            urgency: self.urgency,
            clinical_summary: validate::optional_text("referral.clinical_summary", &self.clinical_summary, 8000)?,
            in_response_to: self.in_response_to,
        })
    }
}

/// An event to add to a referral's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewReferralEvent {
    /// The status the event moves the referral to.
    pub status: TaskStatus,
    /// Who acts.
    pub by_practitioner_id: String,
    /// On behalf of which organization.
    pub by_organization_id: String,
    /// Note (the reason for a rejection, ...).
    #[serde(default)]
    pub note: String,
    /// Discharge summary; required to complete an upward referral.
    #[serde(default)]
    pub discharge_summary: Option<String>,
}

impl NewReferralEvent {
    /// Checks the event on its own (the transition is checked against the folded status).
    pub fn validated(&self, direction: Direction) -> Result<Self> {
        if self.status == TaskStatus::Requested {
            return Err(Error::invalid("referral_event.status", "requested is the initial status, not an event"));
        }
        if self.status == TaskStatus::Rejected && self.note.trim().is_empty() {
            return Err(Error::invalid("referral_event.note", "a rejection needs a reason"));
        }
        let discharge_summary = self
            .discharge_summary
            .as_deref()
            .map(|s| validate::text("referral_event.discharge_summary", s, 8000))
            .transpose()?;
        if self.status == TaskStatus::Completed && direction == Direction::Upward && discharge_summary.is_none() {
            return Err(Error::invalid(
                "referral_event.discharge_summary",
                "completing an upward referral needs a discharge summary",
            ));
        }
        Ok(NewReferralEvent {
            status: self.status,
            by_practitioner_id: validate::code("referral_event.by_practitioner_id", &self.by_practitioner_id)?,
            by_organization_id: validate::code("referral_event.by_organization_id", &self.by_organization_id)?,
            note: validate::optional_text("referral_event.note", &self.note, 2000)?,
            discharge_summary,
        })
    }
}

/// One event of a referral's append-only history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReferralEvent {
    /// The status it asks for.
    pub status: TaskStatus,
    /// Who.
    pub by_practitioner_id: String,
    /// For which organization.
    pub by_organization_id: String,
    /// Hybrid logical clock reading; orders the events.
    pub at: Hlc,
    /// Note.
    #[serde(default)]
    pub note: String,
    /// Discharge summary (completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discharge_summary: Option<String>,
}

/// A referral as stored in the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Referral {
    /// Referral id.
    pub id: ReferralId,
    /// Upward or downward.
    pub direction: Direction,
    /// Sending organization.
    pub from_organization_id: String,
    /// Sending practitioner.
    pub from_practitioner_id: String,
    /// Receiving organization.
    pub to_organization_id: String,
    /// Reason.
    pub reason: String,
    /// Urgency.
    pub urgency: Urgency,
    /// Clinical summary.
    #[serde(default)]
    pub clinical_summary: String,
    /// The upward referral a downward one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_response_to: Option<ReferralId>,
    /// When it was requested.
    pub created_at: Millis,
    /// Its events, keyed by event id.
    #[serde(default)]
    pub events: BTreeMap<EventId, ReferralEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transition_of_the_workflow() {
        use TaskStatus::*;
        let allowed = [
            (Requested, Received),
            (Requested, Accepted),
            (Requested, Rejected),
            (Requested, Cancelled),
            (Received, Accepted),
            (Received, Rejected),
            (Received, Cancelled),
            (Accepted, InProgress),
            (Accepted, Cancelled),
            (InProgress, OnHold),
            (InProgress, Completed),
            (InProgress, Failed),
            (OnHold, InProgress),
        ];
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                assert_eq!(from.can_become(to), allowed.contains(&(from, to)), "{from} -> {to}");
            }
        }
        for terminal in [Rejected, Cancelled, Completed, Failed] {
            assert!(terminal.is_terminal());
            assert!(TaskStatus::ALL.iter().all(|to| !terminal.can_become(*to)));
        }
    }

    #[test]
    fn status_codes_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()).unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let err = TaskStatus::parse("done").unwrap_err();
        assert_eq!(err.to_string(), "referral_event.status: \"done\" is not a referral status");
    }

    #[test]
    fn completing_an_upward_referral_needs_a_discharge_summary() {
        let event = NewReferralEvent {
            status: TaskStatus::Completed,
            by_practitioner_id: "dr-li".into(),
            by_organization_id: "county-hospital".into(),
            note: String::new(),
            discharge_summary: None,
        };
        assert!(event.validated(Direction::Upward).is_err());
        assert!(event.validated(Direction::Downward).is_ok());
        let reject = NewReferralEvent { status: TaskStatus::Rejected, ..event };
        assert_eq!(
            reject.validated(Direction::Upward).unwrap_err().to_string(),
            "referral_event.note: a rejection needs a reason"
        );
    }
}
