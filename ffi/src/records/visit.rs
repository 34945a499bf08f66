//! Visits (encounters) with their vitals, medicines and lifestyle, and field-level amendments.

use super::{all, mirror_enum};
use crate::error::{CareError, parse};
use yilian_core::model as core;

mirror_enum!(
    /// Kind of encounter.
    VisitKind = core::VisitKind {
        /// At the clinic.
        Clinic,
        /// At the resident's home.
        HomeVisit,
        /// A scheduled chronic-disease follow-up.
        FollowUp,
        /// By phone or video (does not count as face to face).
        Telemedicine,
    }
);

mirror_enum!(
    /// How the resident takes a medicine (规律 / 间断 / 不服药).
    Adherence = core::Adherence {
        /// As prescribed.
        Regular,
        /// Now and then.
        Intermittent,
        /// Not at all.
        NotTaking,
    }
);

mirror_enum!(
    /// Dietary salt intake as the doctor judges it.
    SaltIntake = core::SaltIntake {
        /// Light.
        Light,
        /// Moderate.
        Moderate,
        /// Heavy.
        Heavy,
    }
);

/// Measurements taken at a visit; each is optional and range-checked when present.
#[derive(Clone, Debug, Default, PartialEq, uniffi::Record)]
pub struct Vitals {
    /// Systolic blood pressure, mmHg (40..=300).
    #[uniffi(default = None)]
    pub systolic_mmhg: Option<u16>,
    /// Diastolic blood pressure, mmHg (20..=200, below systolic).
    #[uniffi(default = None)]
    pub diastolic_mmhg: Option<u16>,
    /// Heart rate, beats per minute (20..=250).
    #[uniffi(default = None)]
    pub heart_rate_bpm: Option<u16>,
    /// Fasting plasma glucose, mmol/L (1.0..=35.0).
    #[uniffi(default = None)]
    pub fasting_glucose_mmol_l: Option<f64>,
    /// Two-hour post-load glucose, mmol/L (1.0..=50.0).
    #[uniffi(default = None)]
    pub two_hour_glucose_mmol_l: Option<f64>,
    /// Weight, kg (1.0..=300.0).
    #[uniffi(default = None)]
    pub weight_kg: Option<f64>,
    /// Height, cm (30.0..=250.0).
    #[uniffi(default = None)]
    pub height_cm: Option<f64>,
    /// Oxygen saturation, % (50..=100).
    #[uniffi(default = None)]
    pub spo2_percent: Option<u8>,
}

/// A medicine line.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Medicine {
    /// Generic name preferred.
    pub name: String,
    /// Dose, e.g. `5 mg`.
    pub dose: String,
    /// Frequency, e.g. `qd`, `bid`.
    pub frequency: String,
    /// Adherence reported at the visit.
    pub adherence: Adherence,
}

/// A medicine line of a stored visit, with its id (to amend its adherence).
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct MedicineLine {
    /// The line's id.
    pub id: String,
    /// The medicine.
    pub medicine: Medicine,
}

/// Lifestyle as reported at a visit.
#[derive(Clone, Debug, Default, PartialEq, uniffi::Record)]
pub struct Lifestyle {
    /// Cigarettes a day.
    #[uniffi(default = None)]
    pub cigarettes_per_day: Option<u16>,
    /// Alcohol, ml a day.
    #[uniffi(default = None)]
    pub alcohol_ml_per_day: Option<u16>,
    /// Exercise, minutes a week.
    #[uniffi(default = None)]
    pub exercise_minutes_per_week: Option<u16>,
    /// Salt intake.
    #[uniffi(default = None)]
    pub salt: Option<SaltIntake>,
}

/// A visit to record.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct NewVisit {
    /// When it took place (ms since the epoch).
    pub at: i64,
    /// Where.
    pub organization_id: String,
    /// Who saw the resident.
    pub practitioner_id: String,
    /// Kind of encounter.
    pub kind: VisitKind,
    /// Measurements.
    pub vitals: Vitals,
    /// Symptoms reported.
    pub symptoms: Vec<String>,
    /// ICD-10 diagnoses made.
    pub diagnoses: Vec<String>,
    /// Medicines.
    pub medicines: Vec<Medicine>,
    /// Lifestyle.
    pub lifestyle: Lifestyle,
    /// Free-text notes.
    pub notes: String,
}

/// One correction kept in a visit's history.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Amendment {
    /// The amendment's id.
    pub id: String,
    /// Dotted path of the field (`vitals.systolic_mmhg`, `notes`, ...).
    pub field: String,
    /// The new value as JSON text (`null` when a measurement was removed).
    pub value: String,
    /// Who amended it.
    pub by_practitioner: String,
    /// When (ms since the epoch).
    pub at: i64,
    /// Why.
    pub reason: String,
}

/// A recorded visit, as amended.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Visit {
    /// The visit's id.
    pub id: String,
    /// When it took place (ms since the epoch).
    pub at: i64,
    /// Where.
    pub organization_id: String,
    /// Who saw the resident.
    pub practitioner_id: String,
    /// Kind of encounter.
    pub kind: VisitKind,
    /// Measurements, amendments applied.
    pub vitals: Vitals,
    /// Symptoms.
    pub symptoms: Vec<String>,
    /// ICD-10 diagnoses.
    pub diagnoses: Vec<String>,
    /// Medicine lines.
    pub medicines: Vec<MedicineLine>,
    /// Lifestyle.
    pub lifestyle: Lifestyle,
    /// Notes.
    pub notes: String,
    /// When it was recorded (ms since the epoch).
    pub recorded_at: i64,
    /// Corrections, oldest first.
    pub amendments: Vec<Amendment>,
}

/// One field of a visit to correct, with its new value (`None` clears a measurement).
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum VisitField {
    /// Systolic blood pressure, mmHg.
    SystolicMmhg {
        /// New value.
        value: Option<u16>,
    },
    /// Diastolic blood pressure, mmHg.
    DiastolicMmhg {
        /// New value.
        value: Option<u16>,
    },
    /// Heart rate.
    HeartRateBpm {
        /// New value.
        value: Option<u16>,
    },
    /// Fasting glucose, mmol/L.
    FastingGlucoseMmolL {
        /// New value.
        value: Option<f64>,
    },
    /// Two-hour glucose, mmol/L.
    TwoHourGlucoseMmolL {
        /// New value.
        value: Option<f64>,
    },
    /// Weight, kg.
    WeightKg {
        /// New value.
        value: Option<f64>,
    },
    /// Height, cm.
    HeightCm {
        /// New value.
        value: Option<f64>,
    },
    /// Oxygen saturation, %.
    Spo2Percent {
        /// New value.
        value: Option<u8>,
    },
    /// Kind of encounter.
    Kind {
        /// New value.
        value: VisitKind,
    },
    /// Notes.
    Notes {
        /// New value.
        value: String,
    },
    /// Adherence of one medicine line.
    MedicineAdherence {
        /// The medicine line's id.
        medicine_id: String,
        /// New adherence.
        adherence: Adherence,
    },
}

/// A correction of a recorded visit.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct VisitAmendment {
    /// The field and its new value.
    pub field: VisitField,
    /// Who corrects it.
    pub practitioner_id: String,
    /// Why (shown in the history).
    pub reason: String,
}

impl From<Vitals> for core::Vitals {
    fn from(v: Vitals) -> Self {
        core::Vitals {
            systolic_mmhg: v.systolic_mmhg,
            diastolic_mmhg: v.diastolic_mmhg,
            heart_rate_bpm: v.heart_rate_bpm,
            fasting_glucose_mmol_l: v.fasting_glucose_mmol_l,
            two_hour_glucose_mmol_l: v.two_hour_glucose_mmol_l,
            weight_kg: v.weight_kg,
            height_cm: v.height_cm,
            spo2_percent: v.spo2_percent,
        }
    }
}

impl From<core::Vitals> for Vitals {
    fn from(v: core::Vitals) -> Self {
        Vitals {
            systolic_mmhg: v.systolic_mmhg,
            diastolic_mmhg: v.diastolic_mmhg,
            heart_rate_bpm: v.heart_rate_bpm,
            fasting_glucose_mmol_l: v.fasting_glucose_mmol_l,
            two_hour_glucose_mmol_l: v.two_hour_glucose_mmol_l,
            weight_kg: v.weight_kg,
            height_cm: v.height_cm,
            spo2_percent: v.spo2_percent,
        }
    }
}

impl From<Medicine> for core::Medicine {
    fn from(m: Medicine) -> Self {
        core::Medicine { name: m.name, dose: m.dose, frequency: m.frequency, adherence: m.adherence.into() }
    }
}

impl From<core::Medicine> for Medicine {
    fn from(m: core::Medicine) -> Self {
        Medicine { name: m.name, dose: m.dose, frequency: m.frequency, adherence: m.adherence.into() }
    }
}

impl From<Lifestyle> for core::Lifestyle {
    fn from(l: Lifestyle) -> Self {
        core::Lifestyle {
            cigarettes_per_day: l.cigarettes_per_day,
            alcohol_ml_per_day: l.alcohol_ml_per_day,
            exercise_minutes_per_week: l.exercise_minutes_per_week,
            salt: l.salt.map(Into::into),
        }
    }
}

impl From<core::Lifestyle> for Lifestyle {
    fn from(l: core::Lifestyle) -> Self {
        Lifestyle {
            cigarettes_per_day: l.cigarettes_per_day,
            alcohol_ml_per_day: l.alcohol_ml_per_day,
            exercise_minutes_per_week: l.exercise_minutes_per_week,
            salt: l.salt.map(Into::into),
        }
    }
}

impl From<NewVisit> for core::NewVisit {
    fn from(v: NewVisit) -> Self {
        core::NewVisit {
            at: v.at,
            organization_id: v.organization_id,
            practitioner_id: v.practitioner_id,
            kind: v.kind.into(),
            vitals: v.vitals.into(),
            symptoms: v.symptoms,
            diagnoses: v.diagnoses,
            medicines: all(v.medicines),
            lifestyle: v.lifestyle.into(),
            notes: v.notes,
        }
    }
}

impl From<core::Visit> for Visit {
    fn from(v: core::Visit) -> Self {
        Visit {
            id: v.id.to_string(),
            at: v.at,
            organization_id: v.organization_id,
            practitioner_id: v.practitioner_id,
            kind: v.kind.into(),
            vitals: v.vitals.into(),
            symptoms: v.symptoms,
            diagnoses: v.diagnoses,
            medicines: v
                .medicines
                .into_iter()
                .map(|(id, m)| MedicineLine { id: id.to_string(), medicine: m.into() })
                .collect(),
            lifestyle: v.lifestyle.into(),
            notes: v.notes,
            recorded_at: v.recorded_at,
            amendments: v
                .amendments
                .into_iter()
                .map(|(id, a)| Amendment {
                    id: id.to_string(),
                    field: a.field,
                    value: a.value,
                    by_practitioner: a.by_practitioner,
                    at: a.at,
                    reason: a.reason,
                })
                .collect(),
        }
    }
}

impl VisitAmendment {
    pub(crate) fn into_core(self) -> Result<core::VisitAmendment, CareError> {
        use core::VisitField as F;
        let field = match self.field {
            VisitField::SystolicMmhg { value } => F::SystolicMmhg(value),
            VisitField::DiastolicMmhg { value } => F::DiastolicMmhg(value),
            VisitField::HeartRateBpm { value } => F::HeartRateBpm(value),
            VisitField::FastingGlucoseMmolL { value } => F::FastingGlucoseMmolL(value),
            VisitField::TwoHourGlucoseMmolL { value } => F::TwoHourGlucoseMmolL(value),
            VisitField::WeightKg { value } => F::WeightKg(value),
            VisitField::HeightCm { value } => F::HeightCm(value),
            VisitField::Spo2Percent { value } => F::Spo2Percent(value),
            VisitField::Kind { value } => F::Kind(value.into()),
            VisitField::Notes { value } => F::Notes(value),
            VisitField::MedicineAdherence { medicine_id, adherence } => F::MedicineAdherence {
                medicine_id: parse("amendment.medicine_id", &medicine_id)?,
                adherence: adherence.into(),
            },
        };
        Ok(core::VisitAmendment { field, practitioner_id: self.practitioner_id, reason: self.reason })
    }
}
