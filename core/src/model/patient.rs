//! Demographics of a resident.

use super::validate;
use crate::time::Millis;
use crate::{PatientId, Result};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Administrative sex (FHIR `AdministrativeGender`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// Male.
    Male,
    /// Female.
    Female,
    /// Other.
    Other,
    /// Not known or not recorded.
    Unknown,
}

/// Who the resident is, as entered by the doctor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Demographics {
    /// Full name.
    pub name: String,
    /// Administrative sex.
    pub sex: Sex,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Resident identity card number (18 characters, checked), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_id: Option<String>,
    /// Phone number, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Home address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Village or community (居委会/村委会) the resident belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub village: Option<String>,
}

impl Demographics {
    /// Checks every field (the birth date not after `now`); returns the normalised demographics.
    pub fn validated(&self, now: crate::time::Millis) -> Result<Self> {
        Ok(Demographics {
            name: validate::text("patient.name", &self.name, 64)?,
            sex: self.sex,
            birth_date: validate::past_date("patient.birth_date", self.birth_date, now)?,
            national_id: self
                .national_id
                .as_deref()
                .map(|v| validate::resident_id("patient.national_id", v))
                .transpose()?,
            phone: self.phone.as_deref().map(validate_phone).transpose()?,
            address: self.address.as_deref().map(|v| validate::text("patient.address", v, 200)).transpose()?,
            village: self.village.as_deref().map(|v| validate::text("patient.village", v, 64)).transpose()?,
        })
    }
}

fn validate_phone(value: &str) -> Result<String> {
    let digits: String = value.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let body = digits.strip_prefix('+').unwrap_or(&digits);
    if body.len() < 5 || body.len() > 20 || !body.chars().all(|c| c.is_ascii_digit()) {
        return Err(crate::Error::invalid(
            "patient.phone",
            format!("{value:?} is not a phone number (5-20 digits, optional leading +)"),
        ));
    }
    Ok(digits)
}

/// A new resident to register.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewPatient {
    /// Use this id (e.g. from the resident's health card QR code) instead of a fresh one. Two
    /// devices that register the same id offline end up with one merged record.
    #[serde(default)]
    pub id: Option<PatientId>,
    /// Who the resident is.
    pub demographics: Demographics,
    /// Practitioner registering the resident.
    pub practitioner_id: String,
    /// Organization where the resident is registered.
    pub organization_id: String,
}

/// A change of some demographic fields; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DemographicsUpdate {
    /// New name.
    pub name: Option<String>,
    /// New sex.
    pub sex: Option<Sex>,
    /// Corrected birth date.
    pub birth_date: Option<NaiveDate>,
    /// Resident identity number.
    pub national_id: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Address.
    pub address: Option<String>,
    /// Village.
    pub village: Option<String>,
}

/// The resident part of a record as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Patient {
    /// Record id.
    pub id: PatientId,
    /// Demographics (flattened into the `patient` map of the document).
    #[serde(flatten)]
    pub demographics: Demographics,
    /// Organization that registered the resident.
    pub organization_id: String,
    /// Practitioner who registered the resident.
    pub registered_by: String,
    /// When the registration was recorded.
    pub registered_at: Millis,
}
