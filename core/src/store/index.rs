//! Index tables: derived from the documents, written in the same transaction as each change, and
//! rebuildable from the documents at any time. Lists never load every document.

use crate::care::next_follow_up;
use crate::model::{Direction, PatientRecord, TaskStatus, Urgency};
use crate::{Error, PatientId, ReferralId, Result};
use chrono::NaiveDate;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

/// One line of a patient list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatientSummary {
    /// The resident.
    pub patient_id: PatientId,
    /// Name.
    pub name: String,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Team of the latest active contract.
    pub team_id: Option<String>,
    /// Family doctor of the latest active contract.
    pub practitioner_id: Option<String>,
}

/// One line of a referral worklist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReferralSummary {
    /// The referral.
    pub referral_id: ReferralId,
    /// The resident.
    pub patient_id: PatientId,
    /// Resident's name.
    pub patient_name: String,
    /// Upward or downward.
    pub direction: Direction,
    /// Sending organization.
    pub from_organization_id: String,
    /// Receiving organization.
    pub to_organization_id: String,
    /// Current (folded) status.
    pub status: TaskStatus,
    /// Urgency.
    pub urgency: Urgency,
    /// When it was requested (ms).
    pub created_at: i64,
}

/// What [`referral_summary`] reads, with the `FROM`: callers add `WHERE ...`.
pub(crate) const REFERRAL_SUMMARY_COLUMNS: &str = "r.referral_id, r.patient_id, coalesce(p.name, ''), r.direction, \
     r.from_org, r.to_org, r.status, r.urgency, r.created_at, r.changed_at \
     FROM referral_index r LEFT JOIN patient_index p ON p.patient_id = r.patient_id";

/// A worklist line from a row of [`REFERRAL_SUMMARY_COLUMNS`], with when its status last moved.
pub(crate) fn referral_summary(row: &rusqlite::Row<'_>) -> Result<(ReferralSummary, Option<i64>)> {
    let code = |i: usize| row.get::<_, String>(i);
    let summary = ReferralSummary {
        referral_id: code(0)?.parse()?,
        patient_id: code(1)?.parse()?,
        patient_name: code(2)?,
        direction: parse_index_code("direction", &code(3)?)?,
        from_organization_id: code(4)?,
        to_organization_id: code(5)?,
        status: TaskStatus::parse(&code(6)?)?,
        urgency: parse_index_code("urgency", &code(7)?)?,
        created_at: row.get(8)?,
    };
    Ok((summary, row.get(9)?))
}

/// Reads back a code written by [`as_code`].
pub(crate) fn parse_index_code<T: serde::de::DeserializeOwned>(field: &str, code: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(code.to_string()))
        .map_err(|_| Error::CorruptDocument { doc_id: "(index)".into(), reason: format!("{field} {code:?} unknown") })
}

pub(crate) fn as_code<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Removes a document from the indexes.
pub(crate) fn remove(conn: &Connection, id: PatientId) -> Result<()> {
    let id = id.to_string();
    conn.prepare_cached("DELETE FROM patient_index WHERE patient_id = ?1")?.execute([&id])?;
    conn.prepare_cached("DELETE FROM due_index WHERE patient_id = ?1")?.execute([&id])?;
    conn.prepare_cached("DELETE FROM referral_index WHERE patient_id = ?1")?.execute([&id])?;
    Ok(())
}

/// Re-derives the index rows of one record.
pub(crate) fn write(conn: &Connection, record: &PatientRecord) -> Result<()> {
    let id = record.patient.id.to_string();
    let d = record.demographics();
    let contract = record.latest_active_contract();
    let programs: Vec<String> = record.programs().iter().map(as_code).collect();
    conn.prepare_cached(
        "INSERT OR REPLACE INTO patient_index
         (patient_id, name, sex, birth_date, organization_id, team_id, practitioner_id, contract_start, contract_end, programs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        id,
        d.name,
        as_code(&d.sex),
        d.birth_date.to_string(),
        record.patient.organization_id,
        contract.map(|c| c.team_id.clone()),
        contract.map(|c| c.practitioner_id.clone()),
        contract.map(|c| c.start.to_string()),
        contract.map(|c| c.end.to_string()),
        programs.join(","),
    ])?;

    match next_follow_up(record) {
        Some(due) => {
            conn.prepare_cached("INSERT OR REPLACE INTO due_index (patient_id, due, reasons) VALUES (?1, ?2, ?3)")?
                .execute(params![id, due.due.to_string(), serde_json::to_string(&due.reasons).unwrap_or_default()])?;
        }
        None => {
            conn.prepare_cached("DELETE FROM due_index WHERE patient_id = ?1")?.execute([&id])?;
        }
    }

    conn.prepare_cached("DELETE FROM referral_index WHERE patient_id = ?1")?.execute([&id])?;
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO referral_index
         (referral_id, patient_id, direction, from_org, to_org, status, urgency, created_at, changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut orgs = vec![record.patient.organization_id.clone()];
    orgs.extend(contract.map(|c| c.organization_id.clone()));
    for view in &record.referrals {
        let r = &view.referral;
        insert.execute(params![
            r.id.to_string(),
            id,
            as_code(&r.direction),
            r.from_organization_id,
            r.to_organization_id,
            view.status.status.as_str(),
            as_code(&r.urgency),
            r.created_at,
            view.status.changed_at.map(|h| h.wall_ms()),
        ])?;
        orgs.push(r.from_organization_id.clone());
        orgs.push(r.to_organization_id.clone());
    }
    orgs.sort();
    orgs.dedup();
    conn.prepare_cached("UPDATE docs SET scope_team = ?2, scope_orgs = ?3, scope_team_until = ?4 WHERE doc_id = ?1")?
        .execute(params![
        id,
        contract.map(|c| c.team_id.clone()),
        format!(",{},", orgs.join(",")),
        contract.map(|c| crate::time::start_of(c.end + chrono::Days::new(1))),
    ])?;
    Ok(())
}
