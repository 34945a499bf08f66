//! Residents: demographics, registration and the patient list.

use super::{Condition, Contract, FollowUpPlan, ReferralView, Visit, all, mirror_enum};
use crate::error::{CareError, parse};
use yilian_core::model as core;

mirror_enum!(
    /// Administrative sex.
    Sex = core::Sex {
        /// Male.
        Male,
        /// Female.
        Female,
        /// Other.
        Other,
        /// Not recorded.
        Unknown,
    }
);

/// Who a resident is.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Demographics {
    /// Full name.
    pub name: String,
    /// Administrative sex.
    pub sex: Sex,
    /// Date of birth, `YYYY-MM-DD`.
    pub birth_date: String,
    /// Resident identity card number (18 characters, checksum verified), if known.
    pub national_id: Option<String>,
    /// Mobile phone number, if any.
    pub phone: Option<String>,
    /// Address.
    pub address: Option<String>,
    /// Village or neighbourhood committee.
    pub village: Option<String>,
}

/// A resident to register.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct NewPatient {
    /// Who the resident is.
    pub demographics: Demographics,
    /// The registering practitioner.
    pub practitioner_id: String,
    /// The registering organization.
    pub organization_id: String,
}

/// Changes to demographics: only the fields given are changed.
#[derive(Clone, Debug, Default, PartialEq, uniffi::Record)]
pub struct DemographicsUpdate {
    /// New name.
    pub name: Option<String>,
    /// New sex.
    pub sex: Option<Sex>,
    /// New date of birth, `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// New identity card number.
    pub national_id: Option<String>,
    /// New phone number.
    pub phone: Option<String>,
    /// New address.
    pub address: Option<String>,
    /// New village.
    pub village: Option<String>,
}

/// A registered resident.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Patient {
    /// The record's id.
    pub id: String,
    /// Who the resident is.
    pub demographics: Demographics,
    /// The registering organization.
    pub organization_id: String,
    /// The registering practitioner.
    pub registered_by: String,
    /// When the resident was registered (ms since the epoch).
    pub registered_at: i64,
}

/// A resident's whole record as one screen shows it.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct PatientRecord {
    /// The resident.
    pub patient: Patient,
    /// Family-doctor contracts, oldest first.
    pub contracts: Vec<Contract>,
    /// Diagnosed conditions.
    pub conditions: Vec<Condition>,
    /// Visits, oldest first.
    pub visits: Vec<Visit>,
    /// Referrals with their current status.
    pub referrals: Vec<ReferralView>,
    /// Booked follow-ups.
    pub follow_up_plans: Vec<FollowUpPlan>,
}

/// One line of a doctor's patient list.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct PatientSummary {
    /// The record's id.
    pub patient_id: String,
    /// Name.
    pub name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub birth_date: String,
    /// Team of the contract in force.
    pub team_id: Option<String>,
    /// Family doctor of the contract in force.
    pub practitioner_id: Option<String>,
}

impl Demographics {
    pub(crate) fn into_core(self, field: &str) -> Result<core::Demographics, CareError> {
        Ok(core::Demographics {
            name: self.name,
            sex: self.sex.into(),
            birth_date: parse(&format!("{field}.birth_date"), &self.birth_date)?,
            national_id: self.national_id,
            phone: self.phone,
            address: self.address,
            village: self.village,
        })
    }
}

impl From<core::Demographics> for Demographics {
    fn from(d: core::Demographics) -> Self {
        Demographics {
            name: d.name,
            sex: d.sex.into(),
            birth_date: d.birth_date.to_string(),
            national_id: d.national_id,
            phone: d.phone,
            address: d.address,
            village: d.village,
        }
    }
}

impl NewPatient {
    pub(crate) fn into_core(self) -> Result<core::NewPatient, CareError> {
        Ok(core::NewPatient {
            id: None,
            demographics: self.demographics.into_core("patient.demographics")?,
            practitioner_id: self.practitioner_id,
            organization_id: self.organization_id,
        })
    }
}

impl DemographicsUpdate {
    pub(crate) fn into_core(self) -> Result<core::DemographicsUpdate, CareError> {
        Ok(core::DemographicsUpdate {
            name: self.name,
            sex: self.sex.map(Into::into),
            birth_date: self.birth_date.map(|d| parse("patient.demographics.birth_date", &d)).transpose()?,
            national_id: self.national_id,
            phone: self.phone,
            address: self.address,
            village: self.village,
        })
    }
}

impl From<core::Patient> for Patient {
    fn from(p: core::Patient) -> Self {
        Patient {
            id: p.id.to_string(),
            demographics: p.demographics.into(),
            organization_id: p.organization_id,
            registered_by: p.registered_by,
            registered_at: p.registered_at,
        }
    }
}

impl From<core::PatientRecord> for PatientRecord {
    fn from(r: core::PatientRecord) -> Self {
        PatientRecord {
            patient: r.patient.into(),
            contracts: all(r.contracts),
            conditions: all(r.conditions),
            visits: all(r.visits),
            referrals: all(r.referrals),
            follow_up_plans: all(r.follow_up_plans),
        }
    }
}

impl From<yilian_core::store::PatientSummary> for PatientSummary {
    fn from(s: yilian_core::store::PatientSummary) -> Self {
        PatientSummary {
            patient_id: s.patient_id.to_string(),
            name: s.name,
            birth_date: s.birth_date.to_string(),
            team_id: s.team_id,
            practitioner_id: s.practitioner_id,
        }
    }
}
