//! Reads: whole records from their documents, lists from the index tables.

use super::index::{PatientSummary, REFERRAL_SUMMARY_COLUMNS, ReferralSummary, referral_summary};
use super::{Inner, Store};
use crate::care::{self, DueFollowUp, DueReason, ReferralSuggestion};
use crate::model::{PatientRecord, ReferralStatus, Visit};
use crate::{Error, PatientId, ReferralId, Result};
use chrono::NaiveDate;
use rusqlite::{OptionalExtension, params};

fn parse_date(field: &str, s: &str) -> Result<NaiveDate> {
    s.parse().map_err(|_| Error::CorruptDocument {
        doc_id: "(index)".into(),
        reason: format!("{field} {s:?} is not a date"),
    })
}

impl Inner {
    fn record(&mut self, id: PatientId) -> Result<PatientRecord> {
        self.doc(id)?.record(id).cloned()
    }

    fn patient_of_referral(&self, referral: ReferralId) -> Result<PatientId> {
        let patient: Option<String> = self
            .conn
            .prepare_cached("SELECT patient_id FROM referral_index WHERE referral_id = ?1")?
            .query_row([referral.to_string()], |r| r.get(0))
            .optional()?;
        patient.ok_or(Error::NotFound { what: "referral", id: referral.to_string() })?.parse()
    }
}

impl Store {
    /// The whole record of a resident.
    pub fn patient(&self, id: PatientId) -> Result<PatientRecord> {
        self.lock().record(id)
    }

    /// The resident's visits, oldest first.
    pub fn visits(&self, id: PatientId) -> Result<Vec<Visit>> {
        Ok(self.patient(id)?.visits)
    }

    /// The record holding a referral (the referral itself is `record.referral(id)`).
    pub fn record_of_referral(&self, referral: ReferralId) -> Result<PatientRecord> {
        let mut inner = self.lock();
        let patient = inner.patient_of_referral(referral)?;
        inner.record(patient)
    }

    /// A referral's current status and history.
    pub fn referral_status(&self, referral: ReferralId) -> Result<ReferralStatus> {
        let mut inner = self.lock();
        let patient = inner.patient_of_referral(referral)?;
        let record = inner.record(patient)?;
        record
            .referral(referral)
            .map(|view| view.status.clone())
            .ok_or(Error::NotFound { what: "referral", id: referral.to_string() })
    }

    /// What a resident's record suggests referring, with reasons.
    pub fn referral_suggestions(&self, id: PatientId) -> Result<Vec<ReferralSuggestion>> {
        Ok(care::referral_suggestions(&self.patient(id)?))
    }

    /// The follow-ups due on or before `today` for the residents contracted to `practitioner`
    /// (contract in force on `today`), most overdue first.
    pub fn due_follow_ups(&self, practitioner: &str, today: NaiveDate) -> Result<Vec<DueFollowUp>> {
        let inner = self.lock();
        let day = today.to_string();
        let mut stmt = inner.conn.prepare_cached(
            "SELECT p.patient_id, p.name, d.due, d.reasons
             FROM patient_index p JOIN due_index d ON d.patient_id = p.patient_id
             WHERE p.practitioner_id = ?1 AND p.contract_start <= ?2 AND p.contract_end >= ?2 AND d.due <= ?2
             ORDER BY d.due, p.name, p.patient_id",
        )?;
        let rows = stmt.query_map(params![practitioner, day], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, due, reasons) = row?;
            let due = parse_date("due", &due)?;
            let reasons: Vec<DueReason> = serde_json::from_str(&reasons)
                .map_err(|e| Error::CorruptDocument { doc_id: id.clone(), reason: format!("due reasons: {e}") })?;
            out.push(DueFollowUp {
                patient_id: id.parse()?,
                name,
                due,
                days_overdue: (today - due).num_days(),
                reasons,
            });
        }
        Ok(out)
    }

    /// Referrals from or to `organization` that are not finished, oldest first.
    pub fn open_referrals(&self, organization: &str) -> Result<Vec<ReferralSummary>> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(&format!(
            "SELECT {REFERRAL_SUMMARY_COLUMNS}
             WHERE (r.to_org = ?1 OR r.from_org = ?1)
               AND r.status NOT IN ('completed', 'rejected', 'cancelled', 'failed')
             ORDER BY r.created_at, r.referral_id"
        ))?;
        let mut rows = stmt.query([organization])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(referral_summary(row)?.0);
        }
        Ok(out)
    }

    /// Residents whose latest active contract is with `practitioner`, by name.
    pub fn patients_of(&self, practitioner: &str) -> Result<Vec<PatientSummary>> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(
            "SELECT patient_id, name, birth_date, team_id, practitioner_id FROM patient_index
             WHERE practitioner_id = ?1 ORDER BY name, patient_id",
        )?;
        let rows = stmt.query_map([practitioner], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, birth, team_id, practitioner_id) = row?;
            out.push(PatientSummary {
                patient_id: id.parse()?,
                name,
                birth_date: parse_date("birth_date", &birth)?,
                team_id,
                practitioner_id,
            });
        }
        Ok(out)
    }

    /// Ids of every document in the store.
    pub fn patient_ids(&self) -> Result<Vec<PatientId>> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached("SELECT doc_id FROM docs ORDER BY doc_id")?;
        let ids: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        ids.iter().map(|s| s.parse()).collect()
    }

    /// The record as plain JSON (debugging; the relay's views).
    pub fn export_json(&self, id: PatientId) -> Result<serde_json::Value> {
        serde_json::to_value(self.patient(id)?)
            .map_err(|e| Error::CorruptDocument { doc_id: id.to_string(), reason: format!("cannot encode: {e}") })
    }

    /// Snapshots every document with changes since its last snapshot; returns how many.
    pub fn compact(&self) -> Result<usize> {
        self.lock().compact_all()
    }

    /// Rebuilds every index table from the documents (they are derived data). Returns how many
    /// documents were indexed.
    pub fn rebuild_indexes(&self) -> Result<usize> {
        let ids = self.patient_ids()?;
        let mut inner = self.lock();
        {
            let tx = inner.conn.transaction()?;
            tx.execute_batch("DELETE FROM patient_index; DELETE FROM due_index; DELETE FROM referral_index;")?;
            tx.commit()?;
        }
        let mut done = 0;
        for id in ids {
            if let Err(e) = inner.doc(id) {
                tracing::warn!(patient = %id, error = %e, "not indexed");
                continue;
            }
            let Inner { conn, cache, .. } = &mut *inner;
            let Some(loaded) = cache.peek(&id) else { continue };
            match &loaded.record {
                Some(record) => super::index::write(conn, record)?,
                None => super::index::remove(conn, id)?,
            }
            done += 1;
        }
        Ok(done)
    }
}
