//! Planned follow-ups: the doctor books the next face-to-face contact.

use super::validate;
use crate::time::Millis;
use crate::{FollowUpPlanId, Result};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A follow-up to book.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewFollowUpPlan {
    /// Day it is due.
    pub due: NaiveDate,
    /// Why (shown in the due list).
    pub reason: String,
    /// Who books it.
    pub practitioner_id: String,
}

impl NewFollowUpPlan {
    /// Checks the plan.
    pub fn validated(&self) -> Result<Self> {
        if self.due < validate::earliest_date() {
            return Err(crate::Error::invalid("follow_up.due", "is before 1900-01-01"));
        }
        Ok(NewFollowUpPlan {
            due: self.due,
            reason: validate::text("follow_up.reason", &self.reason, 500)?,
            practitioner_id: validate::code("follow_up.practitioner_id", &self.practitioner_id)?,
        })
    }
}

/// A booked follow-up as stored. It counts as done once a face-to-face visit is recorded after
/// it was booked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FollowUpPlan {
    /// Plan id.
    pub id: FollowUpPlanId,
    /// Day it is due.
    pub due: NaiveDate,
    /// Why.
    pub reason: String,
    /// Who booked it.
    pub booked_by: String,
    /// When it was booked.
    pub booked_at: Millis,
}
