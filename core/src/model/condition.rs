//! Diagnosed conditions, and the chronic-disease programs the engine follows.

use super::validate;
use crate::time::Millis;
use crate::{ConditionId, Error, Result};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The chronic-disease management programs of the basic public health service that the engine
/// knows, each with the ICD-10 categories that enrol a patient in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Program {
    /// Hypertension (I10-I15).
    Hypertension,
    /// Type 2 diabetes (E11).
    Type2Diabetes,
    /// Chronic obstructive pulmonary disease (J44).
    Copd,
    /// Stroke and its sequelae, followed for rehabilitation (I60-I64, I69).
    Stroke,
    /// Coronary heart disease (I20-I25).
    CoronaryHeartDisease,
}

/// ICD-10 categories (three characters) the engine accepts for conditions, with their program.
const KNOWN_CATEGORIES: &[(&str, Program)] = &[
    ("I10", Program::Hypertension),
    ("I11", Program::Hypertension),
    ("I12", Program::Hypertension),
    ("I13", Program::Hypertension),
    ("I15", Program::Hypertension),
    ("E11", Program::Type2Diabetes),
    ("J44", Program::Copd),
    ("I60", Program::Stroke),
    ("I61", Program::Stroke),
    ("I62", Program::Stroke),
    ("I63", Program::Stroke),
    ("I64", Program::Stroke),
    ("I69", Program::Stroke),
    ("I20", Program::CoronaryHeartDisease),
    ("I21", Program::CoronaryHeartDisease),
    ("I22", Program::CoronaryHeartDisease),
    ("I24", Program::CoronaryHeartDisease),
    ("I25", Program::CoronaryHeartDisease),
];

impl Program {
    /// The program an ICD-10 code belongs to, if the engine manages it.
    pub fn for_icd10(code: &str) -> Option<Program> {
        let category = code.get(..3)?;
        KNOWN_CATEGORIES.iter().find(|(c, _)| *c == category).map(|(_, p)| *p)
    }

    /// Whether the national standard asks for quarterly face-to-face follow-ups.
    pub fn has_quarterly_follow_up(self) -> bool {
        matches!(self, Program::Hypertension | Program::Type2Diabetes)
    }
}

/// A diagnosis to add to a record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewCondition {
    /// ICD-10 code (I10, E11.9, J44.1, ...); must belong to a known program.
    pub icd10: String,
    /// Date of diagnosis.
    pub diagnosed_on: NaiveDate,
    /// Practitioner recording it.
    pub practitioner_id: String,
    /// Free-text note.
    #[serde(default)]
    pub note: String,
}

impl NewCondition {
    /// Checks the diagnosis (its date not after `now`) and returns it with the program it enrols
    /// the patient in.
    pub fn validated(&self, now: crate::time::Millis) -> Result<(Self, Program)> {
        let icd10 = validate::icd10("condition.icd10", &self.icd10)?;
        let program = Program::for_icd10(&icd10).ok_or_else(|| {
            Error::invalid(
                "condition.icd10",
                format!("{icd10} is not a chronic condition the engine manages (hypertension I10-I15, type 2 diabetes E11, COPD J44, stroke I60-I64/I69, coronary heart disease I20-I25)"),
            )
        })?;
        Ok((
            NewCondition {
                icd10,
                diagnosed_on: validate::past_date("condition.diagnosed_on", self.diagnosed_on, now)?,
                practitioner_id: validate::code("condition.practitioner_id", &self.practitioner_id)?,
                note: validate::optional_text("condition.note", &self.note, 2000)?,
            },
            program,
        ))
    }
}

/// A condition as stored in the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Condition {
    /// Condition id.
    pub id: ConditionId,
    /// ICD-10 code.
    pub icd10: String,
    /// The chronic program it enrols the patient in.
    pub program: Program,
    /// Date of diagnosis.
    pub diagnosed_on: NaiveDate,
    /// Who recorded it.
    pub recorded_by: String,
    /// When it was recorded.
    pub recorded_at: Millis,
    /// Free-text note.
    #[serde(default)]
    pub note: String,
}
