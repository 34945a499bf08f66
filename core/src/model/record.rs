//! The whole record of a resident as apps read it (and as it is exported to JSON).

use super::{
    Condition, Contract, Demographics, FollowUpPlan, Patient, Program, Referral, ReferralStatus, Visit, referral_status,
};
use crate::{ReferralId, VisitId};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A referral with its folded status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReferralView {
    /// The referral as stored.
    #[serde(flatten)]
    pub referral: Referral,
    /// Its status and history (see [`referral_status::fold`]).
    pub status: ReferralStatus,
}

impl From<Referral> for ReferralView {
    fn from(referral: Referral) -> Self {
        let status = referral_status::fold(&referral);
        ReferralView { referral, status }
    }
}

/// A resident's health record: demographics, contracts, conditions, visits, referrals and booked
/// follow-ups. Collections are sorted (visits by time, the rest by creation) so two replicas with
/// the same changes produce identical records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientRecord {
    /// The resident.
    pub patient: Patient,
    /// Family-doctor contracts, oldest first.
    pub contracts: Vec<Contract>,
    /// Diagnosed chronic conditions.
    pub conditions: Vec<Condition>,
    /// Visits, oldest first.
    pub visits: Vec<Visit>,
    /// Referrals with their status, oldest first.
    pub referrals: Vec<ReferralView>,
    /// Booked follow-ups.
    pub follow_up_plans: Vec<FollowUpPlan>,
}

impl PatientRecord {
    /// The resident's demographics.
    pub fn demographics(&self) -> &Demographics {
        &self.patient.demographics
    }

    /// The contract in force on `day`, the most recently started if several overlap.
    pub fn contract_on(&self, day: NaiveDate) -> Option<&Contract> {
        self.contracts.iter().filter(|c| c.in_force_on(day)).max_by_key(|c| (c.start, c.signed_at, c.id))
    }

    /// The latest active contract, whatever its period (the index keeps its dates).
    pub fn latest_active_contract(&self) -> Option<&Contract> {
        self.contracts
            .iter()
            .filter(|c| c.status == super::ContractStatus::Active)
            .max_by_key(|c| (c.start, c.signed_at, c.id))
    }

    /// The chronic programs the resident is enrolled in.
    pub fn programs(&self) -> Vec<Program> {
        let mut p: Vec<Program> = self.conditions.iter().map(|c| c.program).collect();
        p.sort();
        p.dedup();
        p
    }

    /// A visit by id.
    pub fn visit(&self, id: VisitId) -> Option<&Visit> {
        self.visits.iter().find(|v| v.id == id)
    }

    /// Puts every collection in its canonical order (the order reading a document produces), so
    /// a record updated in memory equals one read back from the document.
    pub(crate) fn sort(&mut self) {
        self.contracts.sort_by_key(|c| (c.start, c.signed_at, c.id));
        self.conditions.sort_by_key(|c| (c.recorded_at, c.id));
        self.visits.sort_by_key(|v| (v.at, v.id));
        self.referrals.sort_by_key(|r| (r.referral.created_at, r.referral.id));
        self.follow_up_plans.sort_by_key(|p| (p.booked_at, p.id));
    }

    /// A referral by id.
    pub fn referral(&self, id: ReferralId) -> Option<&ReferralView> {
        self.referrals.iter().find(|r| r.referral.id == id)
    }
}
