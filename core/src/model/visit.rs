//! Visits (encounters): vitals, symptoms, diagnoses, medicines, lifestyle, and field-level
//! amendments that keep who changed what and when.

use super::validate;
use crate::time::Millis;
use crate::{AmendmentId, Error, MedicineId, Result, VisitId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What kind of encounter a visit was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VisitKind {
    /// At the clinic.
    Clinic,
    /// At the resident's home.
    HomeVisit,
    /// A scheduled chronic-disease follow-up (face to face).
    FollowUp,
    /// By phone or video; does not count as a face-to-face follow-up.
    Telemedicine,
}

impl VisitKind {
    /// Whether the national standard counts it as a face-to-face follow-up.
    pub fn is_face_to_face(self) -> bool {
        !matches!(self, VisitKind::Telemedicine)
    }
}

/// Measurements taken at a visit. Every field is optional; those present are range-checked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vitals {
    /// Systolic blood pressure, mmHg (40..=300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systolic_mmhg: Option<u16>,
    /// Diastolic blood pressure, mmHg (20..=200, below systolic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diastolic_mmhg: Option<u16>,
    /// Heart rate, beats per minute (20..=250).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heart_rate_bpm: Option<u16>,
    /// Fasting plasma glucose, mmol/L (1.0..=35.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fasting_glucose_mmol_l: Option<f64>,
    /// Two-hour post-load glucose, mmol/L (1.0..=50.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub two_hour_glucose_mmol_l: Option<f64>,
    /// Weight, kg (1.0..=300.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_kg: Option<f64>,
    /// Height, cm (30.0..=250.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height_cm: Option<f64>,
    /// Oxygen saturation, % (50..=100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spo2_percent: Option<u8>,
}

impl Vitals {
    /// Body-mass index from weight and height, rounded to one decimal, when both are known.
    pub fn bmi(&self) -> Option<f64> {
        let (w, h) = (self.weight_kg?, self.height_cm? / 100.0);
        Some((w / (h * h) * 10.0).round() / 10.0)
    }

    /// Checks every measurement present; `prefix` is the field path (`visit.vitals`).
    pub fn validated(&self, prefix: &str) -> Result<Self> {
        let f = |name: &str| format!("{prefix}.{name}");
        let v = Vitals {
            systolic_mmhg: validate::opt_int(&f("systolic_mmhg"), self.systolic_mmhg, 40..=300)?,
            diastolic_mmhg: validate::opt_int(&f("diastolic_mmhg"), self.diastolic_mmhg, 20..=200)?,
            heart_rate_bpm: validate::opt_int(&f("heart_rate_bpm"), self.heart_rate_bpm, 20..=250)?,
            fasting_glucose_mmol_l: validate::opt_f64(
                &f("fasting_glucose_mmol_l"),
                self.fasting_glucose_mmol_l,
                1.0..=35.0,
            )?,
            two_hour_glucose_mmol_l: validate::opt_f64(
                &f("two_hour_glucose_mmol_l"),
                self.two_hour_glucose_mmol_l,
                1.0..=50.0,
            )?,
            weight_kg: validate::opt_f64(&f("weight_kg"), self.weight_kg, 1.0..=300.0)?,
            height_cm: validate::opt_f64(&f("height_cm"), self.height_cm, 30.0..=250.0)?,
            spo2_percent: validate::opt_int(&f("spo2_percent"), self.spo2_percent, 50..=100)?,
        };
        if let (Some(sys), Some(dia)) = (v.systolic_mmhg, v.diastolic_mmhg)
            && dia >= sys
        {
            return Err(Error::invalid(f("diastolic_mmhg"), format!("{dia} must be below systolic {sys}")));
        }
        Ok(v)
    }
}

/// How the resident takes a medicine (the standard's 规律 / 间断 / 不服药).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Adherence {
    /// Takes it as prescribed.
    Regular,
    /// Takes it now and then.
    Intermittent,
    /// Does not take it.
    NotTaking,
}

/// A medicine line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Medicine {
    /// Medicine name (generic name preferred).
    pub name: String,
    /// Dose, e.g. `5 mg`.
    pub dose: String,
    /// Frequency, e.g. `qd`, `bid`.
    pub frequency: String,
    /// Adherence reported at the visit.
    pub adherence: Adherence,
}

impl Medicine {
    fn validated(&self, prefix: &str) -> Result<Self> {
        Ok(Medicine {
            name: validate::text(&format!("{prefix}.name"), &self.name, 100)?,
            dose: validate::optional_text(&format!("{prefix}.dose"), &self.dose, 50)?,
            frequency: validate::optional_text(&format!("{prefix}.frequency"), &self.frequency, 50)?,
            adherence: self.adherence,
        })
    }
}

/// Dietary salt intake as the doctor judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SaltIntake {
    /// Light.
    Light,
    /// Moderate.
    Moderate,
    /// Heavy.
    Heavy,
}

/// Lifestyle at the visit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lifestyle {
    /// Cigarettes a day (0..=100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cigarettes_per_day: Option<u16>,
    /// Alcohol, ml of liquor a day (0..=2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alcohol_ml_per_day: Option<u16>,
    /// Exercise minutes a week (0..=5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exercise_minutes_per_week: Option<u16>,
    /// Salt intake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<SaltIntake>,
}

impl Lifestyle {
    fn validated(&self) -> Result<Self> {
        Ok(Lifestyle {
            cigarettes_per_day: validate::opt_int(
                "visit.lifestyle.cigarettes_per_day",
                self.cigarettes_per_day,
                0..=100,
            )?,
            alcohol_ml_per_day: validate::opt_int(
                "visit.lifestyle.alcohol_ml_per_day",
                self.alcohol_ml_per_day,
                0..=2000,
            )?,
            exercise_minutes_per_week: validate::opt_int(
                "visit.lifestyle.exercise_minutes_per_week",
                self.exercise_minutes_per_week,
                0..=5000,
            )?,
            salt: self.salt,
        })
    }
}

/// A visit to record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewVisit {
    /// When the encounter happened.
    pub at: Millis,
    /// Where.
    pub organization_id: String,
    /// Who saw the resident.
    pub practitioner_id: String,
    /// Kind of encounter.
    pub kind: VisitKind,
    /// Measurements.
    #[serde(default)]
    pub vitals: Vitals,
    /// Symptoms reported (free text items).
    #[serde(default)]
    pub symptoms: Vec<String>,
    /// Diagnoses made (ICD-10 codes).
    #[serde(default)]
    pub diagnoses: Vec<String>,
    /// Medicines.
    #[serde(default)]
    pub medicines: Vec<Medicine>,
    /// Lifestyle.
    #[serde(default)]
    pub lifestyle: Lifestyle,
    /// Notes.
    #[serde(default)]
    pub notes: String,
}

impl NewVisit {
    /// Checks the whole visit (its time not after `now`, give or take clock skew).
    pub fn validated(&self, now: crate::time::Millis) -> Result<Self> {
        if self.symptoms.len() > 50 {
            return Err(Error::invalid("visit.symptoms", "at most 50 symptoms"));
        }
        if self.diagnoses.len() > 20 {
            return Err(Error::invalid("visit.diagnoses", "at most 20 diagnoses"));
        }
        if self.medicines.len() > 30 {
            return Err(Error::invalid("visit.medicines", "at most 30 medicines"));
        }
        Ok(NewVisit {
            at: validate::instant("visit.at", self.at, now)?,
            organization_id: validate::code("visit.organization_id", &self.organization_id)?,
            practitioner_id: validate::code("visit.practitioner_id", &self.practitioner_id)?,
            kind: self.kind,
            vitals: self.vitals.validated("visit.vitals")?,
            symptoms: self
                .symptoms
                .iter()
                .enumerate()
                .map(|(i, s)| validate::text(&format!("visit.symptoms[{i}]"), s, 100))
                .collect::<Result<_>>()?,
            diagnoses: self
                .diagnoses
                .iter()
                .enumerate()
                .map(|(i, d)| validate::icd10(&format!("visit.diagnoses[{i}]"), d))
                .collect::<Result<_>>()?,
            medicines: self
                .medicines
                .iter()
                .enumerate()
                .map(|(i, m)| m.validated(&format!("visit.medicines[{i}]")))
                .collect::<Result<_>>()?,
            lifestyle: self.lifestyle.validated()?,
            notes: validate::optional_text("visit.notes", &self.notes, 4000)?,
        })
    }
}

/// One field-level amendment kept in the visit's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Amendment {
    /// Dotted path of the amended field (`vitals.systolic_mmhg`, `notes`, ...).
    pub field: String,
    /// The new value, as JSON text (`null` when a measurement was removed).
    pub value: String,
    /// Who amended it.
    pub by_practitioner: String,
    /// When.
    pub at: Millis,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// A visit as stored in the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Visit {
    /// Visit id.
    pub id: VisitId,
    /// When it happened.
    pub at: Millis,
    /// Where.
    pub organization_id: String,
    /// Who.
    pub practitioner_id: String,
    /// Kind of encounter.
    pub kind: VisitKind,
    /// Measurements.
    #[serde(default)]
    pub vitals: Vitals,
    /// Symptoms.
    #[serde(default)]
    pub symptoms: Vec<String>,
    /// Diagnoses (ICD-10).
    #[serde(default)]
    pub diagnoses: Vec<String>,
    /// Medicines, keyed by medicine id.
    #[serde(default)]
    pub medicines: BTreeMap<MedicineId, Medicine>,
    /// Lifestyle.
    #[serde(default)]
    pub lifestyle: Lifestyle,
    /// Notes.
    #[serde(default)]
    pub notes: String,
    /// When it was recorded on the device.
    pub recorded_at: Millis,
    /// Field-level amendments, keyed by amendment id (time-ordered UUIDv7).
    #[serde(default)]
    pub amendments: BTreeMap<AmendmentId, Amendment>,
}

/// One field of a visit to amend, with its new value. Measurements may be cleared with `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "field", content = "value")]
pub enum VisitField {
    /// Systolic blood pressure, mmHg.
    SystolicMmhg(Option<u16>),
    /// Diastolic blood pressure, mmHg.
    DiastolicMmhg(Option<u16>),
    /// Heart rate.
    HeartRateBpm(Option<u16>),
    /// Fasting glucose, mmol/L.
    FastingGlucoseMmolL(Option<f64>),
    /// Two-hour glucose, mmol/L.
    TwoHourGlucoseMmolL(Option<f64>),
    /// Weight, kg.
    WeightKg(Option<f64>),
    /// Height, cm.
    HeightCm(Option<f64>),
    /// Oxygen saturation, %.
    Spo2Percent(Option<u8>),
    /// Kind of encounter.
    Kind(VisitKind),
    /// Notes.
    Notes(String),
    /// Adherence of one medicine line.
    MedicineAdherence {
        /// The medicine line.
        medicine_id: MedicineId,
        /// New adherence.
        adherence: Adherence,
    },
}

/// A field-level correction of a recorded visit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VisitAmendment {
    /// The field and its new value.
    pub field: VisitField,
    /// Who amends.
    pub practitioner_id: String,
    /// Why (shown in the history).
    #[serde(default)]
    pub reason: String,
}

impl VisitAmendment {
    /// Checks the new value against the same rules as a new visit, and against the visit's other
    /// blood-pressure value. Returns the amendment normalised.
    pub fn validated(&self, visit: &Visit) -> Result<Self> {
        let mut vitals = visit.vitals.clone();
        match &self.field {
            VisitField::SystolicMmhg(v) => vitals.systolic_mmhg = *v,
            VisitField::DiastolicMmhg(v) => vitals.diastolic_mmhg = *v,
            VisitField::HeartRateBpm(v) => vitals.heart_rate_bpm = *v,
            VisitField::FastingGlucoseMmolL(v) => vitals.fasting_glucose_mmol_l = *v,
            VisitField::TwoHourGlucoseMmolL(v) => vitals.two_hour_glucose_mmol_l = *v,
            VisitField::WeightKg(v) => vitals.weight_kg = *v,
            VisitField::HeightCm(v) => vitals.height_cm = *v,
            VisitField::Spo2Percent(v) => vitals.spo2_percent = *v,
            VisitField::Kind(_) => {}
            VisitField::Notes(n) => {
                validate::optional_text("visit.notes", n, 4000)?;
            }
            VisitField::MedicineAdherence { medicine_id, .. } => {
                if !visit.medicines.contains_key(medicine_id) {
                    return Err(Error::NotFound { what: "medicine", id: medicine_id.to_string() });
                }
            }
        }
        vitals.validated("visit.vitals")?;
        Ok(VisitAmendment {
            field: self.field.clone(),
            practitioner_id: validate::code("amendment.practitioner_id", &self.practitioner_id)?,
            reason: validate::optional_text("amendment.reason", &self.reason, 500)?,
        })
    }
}
