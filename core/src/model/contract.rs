//! The family-doctor contract (家庭医生签约): a resident signed to a doctor's team for a period.

use super::validate;
use crate::time::Millis;
use crate::{ContractId, Error, Result};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Status of a contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ContractStatus {
    /// In force for its period.
    Active,
    /// Ended early (resident moved, asked to end it, died).
    Terminated,
}

/// A new signing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewContract {
    /// Family-doctor team.
    pub team_id: String,
    /// Responsible family doctor.
    pub practitioner_id: String,
    /// Organization the team belongs to.
    pub organization_id: String,
    /// First day of the contract.
    pub start: NaiveDate,
    /// Last day of the contract.
    pub end: NaiveDate,
}

/// A contract as stored in the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contract {
    /// Contract id.
    pub id: ContractId,
    /// Family-doctor team.
    pub team_id: String,
    /// Responsible family doctor.
    pub practitioner_id: String,
    /// Organization of the team.
    pub organization_id: String,
    /// First day.
    pub start: NaiveDate,
    /// Last day.
    pub end: NaiveDate,
    /// Active or terminated.
    pub status: ContractStatus,
    /// When it was signed (recorded).
    pub signed_at: Millis,
}

impl Contract {
    /// Whether the contract is in force on `day`.
    pub fn in_force_on(&self, day: NaiveDate) -> bool {
        self.status == ContractStatus::Active && self.start <= day && day <= self.end
    }
}

impl NewContract {
    /// Checks the signing.
    pub fn validated(&self) -> Result<Self> {
        let start = self.start;
        if self.end < start {
            return Err(Error::invalid("contract.end", format!("{} is before start {start}", self.end)));
        }
        if (self.end - start).num_days() > 3 * 366 {
            return Err(Error::invalid("contract.end", "a contract lasts at most 3 years"));
        }
        if start < validate::earliest_date() {
            return Err(Error::invalid("contract.start", "is before 1900-01-01"));
        }
        Ok(NewContract {
            team_id: validate::code("contract.team_id", &self.team_id)?,
            practitioner_id: validate::code("contract.practitioner_id", &self.practitioner_id)?,
            organization_id: validate::code("contract.organization_id", &self.organization_id)?,
            start,
            end: self.end,
        })
    }
}
