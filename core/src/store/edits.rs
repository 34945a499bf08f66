//! The typed care API: every edit validates its input, runs as one automerge transaction on the
//! patient's document, and is durable when it returns.

use super::docs::{ChangeToStore, Loaded, exists};
use super::{Inner, Store};
use crate::document::{genesis_doc, map_at, put_json, read_record};
use crate::model::*;
use crate::time::Hlc;
use crate::{
    AmendmentId, ConditionId, ContractId, Error, EventId, FollowUpPlanId, MedicineId, PatientId, ReferralId, Result,
    VisitId,
};
use automerge::transaction::{CommitOptions, Transaction};
use rusqlite::OptionalExtension;
use serde::Serialize;
use serde_json::Value;

fn json_of<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::invalid("input", format!("cannot be encoded: {e}")))
}

/// Puts a serializable entity at `collection/<id>`.
fn put_entity<T: Serialize>(tx: &mut Transaction<'_>, collection: &str, id: &str, entity: &T) -> Result<()> {
    let obj = map_at(tx, &[collection])?;
    put_json(tx, &obj, id, &json_of(entity)?)
}

/// How the cached typed record follows an edit.
enum Mirror {
    /// The edit did exactly this to the record.
    Update(Box<dyn FnOnce(&mut PatientRecord)>),
    /// Read the record again from the document (edits whose effect depends on merged state).
    Reread,
}

fn mirror_with(f: impl FnOnce(&mut PatientRecord) + 'static) -> Mirror {
    Mirror::Update(Box::new(f))
}

impl Inner {
    /// Runs `edit` on the current record of `id` inside one automerge transaction and commits the
    /// resulting change durably, with the record view and indexes. An error from `edit` rolls the
    /// transaction back and changes nothing.
    fn edit<T>(
        &mut self,
        id: PatientId,
        edit: impl FnOnce(&PatientRecord, &mut Transaction<'_>) -> Result<(T, Mirror)>,
    ) -> Result<T> {
        let now = self.now();
        let (value, change) = {
            let Loaded { doc, record } = self.doc(id)?;
            let Some(current) = record.as_ref() else {
                return Err(read_record(doc, id)
                    .err()
                    .unwrap_or(Error::IncompleteRecord { patient_id: id.to_string() }));
            };
            let mut tx = doc.transaction();
            let (value, mirror) = match edit(current, &mut tx) {
                Ok(v) => v,
                Err(e) => {
                    tx.rollback();
                    return Err(e);
                }
            };
            let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now));
            if hash.is_none() {
                return Ok(value);
            }
            let change = doc.get_last_local_change().ok_or_else(|| Error::CorruptDocument {
                doc_id: id.to_string(),
                reason: "committed change not found".into(),
            })?;
            match mirror {
                Mirror::Update(apply) => {
                    if let Some(r) = record.as_mut() {
                        apply(r);
                        r.sort();
                    }
                }
                Mirror::Reread => *record = read_record(doc, id).ok(),
            }
            (value, change)
        };
        let signature = Some(self.key.sign(&change.hash().0).to_vec());
        self.commit(id, vec![ChangeToStore { change, signature, local: true }])?;
        Ok(value)
    }
}

impl Store {
    /// Registers a resident. With `new.id` set (a health-card id), two devices that register the
    /// same resident offline end up with one merged record.
    pub fn create_patient(&self, new: NewPatient) -> Result<PatientId> {
        let mut inner = self.lock();
        let now = inner.now();
        let demographics = new.demographics.validated(now)?;
        let organization_id = validate_code("patient.organization_id", &new.organization_id)?;
        let registered_by = validate_code("patient.practitioner_id", &new.practitioner_id)?;
        let id = match new.id {
            Some(id) => id,
            None => inner.new_id(),
        };
        if exists(&inner.conn, id)? {
            return Err(Error::AlreadyExists { what: "patient", id: id.to_string() });
        }
        let mut doc = genesis_doc(id)?;
        let genesis = doc.get_last_local_change().ok_or_else(|| Error::CorruptDocument {
            doc_id: id.to_string(),
            reason: "genesis produced no change".into(),
        })?;
        inner.adopt(&mut doc);
        let patient = Patient { id, demographics, organization_id, registered_by, registered_at: now };
        let mut tx = doc.transaction();
        let obj = map_at(&tx, &["patient"])?;
        if let Value::Object(fields) = json_of(&patient)? {
            for (key, value) in &fields {
                put_json(&mut tx, &obj, key, value)?;
            }
        }
        tx.commit_with(CommitOptions::default().with_time(now));
        let change = doc.get_last_local_change().ok_or_else(|| Error::CorruptDocument {
            doc_id: id.to_string(),
            reason: "registration produced no change".into(),
        })?;
        let signature = Some(inner.key.sign(&change.hash().0).to_vec());
        let record = PatientRecord {
            patient,
            contracts: vec![],
            conditions: vec![],
            visits: vec![],
            referrals: vec![],
            follow_up_plans: vec![],
        };
        inner.cache.put(id, Loaded { doc, record: Some(record) });
        inner.commit(
            id,
            vec![
                // The genesis is the same on every device; it carries no author and no signature.
                ChangeToStore { change: genesis, signature: None, local: true },
                ChangeToStore { change, signature, local: true },
            ],
        )?;
        Ok(id)
    }

    /// Changes some demographic fields; the others stay as they are.
    pub fn update_demographics(&self, patient: PatientId, update: DemographicsUpdate) -> Result<()> {
        let mut inner = self.lock();
        let now = inner.now();
        inner.edit(patient, |record, tx| {
            let mut d = record.demographics().clone();
            if let Some(v) = &update.name {
                d.name = v.clone();
            }
            if let Some(v) = update.sex {
                d.sex = v;
            }
            if let Some(v) = update.birth_date {
                d.birth_date = v;
            }
            if update.national_id.is_some() {
                d.national_id = update.national_id.clone();
            }
            if update.phone.is_some() {
                d.phone = update.phone.clone();
            }
            if update.address.is_some() {
                d.address = update.address.clone();
            }
            if update.village.is_some() {
                d.village = update.village.clone();
            }
            let d = d.validated(now)?;
            let (new, old) = (json_of(&d)?, json_of(record.demographics())?);
            let obj = map_at(tx, &["patient"])?;
            if let (Value::Object(new), Value::Object(old)) = (new, old) {
                // Only the fields that changed, so concurrent edits of other fields both survive.
                for (key, value) in new.iter().filter(|(k, v)| old.get(*k) != Some(*v)) {
                    put_json(tx, &obj, key, value)?;
                }
            }
            Ok(((), mirror_with(move |r| r.patient.demographics = d)))
        })
    }

    /// Signs the resident to a family-doctor team.
    pub fn sign_contract(&self, patient: PatientId, new: NewContract) -> Result<ContractId> {
        let new = new.validated()?;
        let mut inner = self.lock();
        let (now, id) = (inner.now(), inner.new_id());
        inner.edit(patient, |_, tx| {
            let contract = Contract {
                id,
                team_id: new.team_id,
                practitioner_id: new.practitioner_id,
                organization_id: new.organization_id,
                start: new.start,
                end: new.end,
                status: ContractStatus::Active,
                signed_at: now,
            };
            put_entity(tx, "contracts", &contract.id.to_string(), &contract)?;
            Ok((contract.id, mirror_with(move |r| r.contracts.push(contract))))
        })
    }

    /// Ends a contract early (the resident moved away, asked to end it, or died).
    pub fn terminate_contract(&self, patient: PatientId, contract: ContractId) -> Result<()> {
        self.lock().edit(patient, |record, tx| {
            if !record.contracts.iter().any(|c| c.id == contract) {
                return Err(Error::NotFound { what: "contract", id: contract.to_string() });
            }
            let obj = map_at(tx, &["contracts", &contract.to_string()])?;
            put_json(tx, &obj, "status", &json_of(&ContractStatus::Terminated)?)?;
            let mirror = mirror_with(move |r| {
                r.contracts.iter_mut().filter(|c| c.id == contract).for_each(|c| c.status = ContractStatus::Terminated)
            });
            Ok(((), mirror))
        })
    }

    /// Adds a diagnosed chronic condition.
    pub fn add_condition(&self, patient: PatientId, new: NewCondition) -> Result<ConditionId> {
        let mut inner = self.lock();
        let (now, id) = (inner.now(), inner.new_id());
        let (new, program) = new.validated(now)?;
        inner.edit(patient, |_, tx| {
            let condition = Condition {
                id,
                icd10: new.icd10,
                program,
                diagnosed_on: new.diagnosed_on,
                recorded_by: new.practitioner_id,
                recorded_at: now,
                note: new.note,
            };
            put_entity(tx, "conditions", &condition.id.to_string(), &condition)?;
            Ok((condition.id, mirror_with(move |r| r.conditions.push(condition))))
        })
    }

    /// Records a visit.
    pub fn record_visit(&self, patient: PatientId, new: NewVisit) -> Result<VisitId> {
        let mut inner = self.lock();
        let (now, id) = (inner.now(), inner.new_id());
        let new = new.validated(now)?;
        let medicine_ids: Vec<MedicineId> = new.medicines.iter().map(|_| inner.new_id()).collect();
        inner.edit(patient, |_, tx| {
            let visit = Visit {
                id,
                at: new.at,
                organization_id: new.organization_id,
                practitioner_id: new.practitioner_id,
                kind: new.kind,
                vitals: new.vitals,
                symptoms: new.symptoms,
                diagnoses: new.diagnoses,
                medicines: medicine_ids.into_iter().zip(new.medicines).collect(),
                lifestyle: new.lifestyle,
                notes: new.notes,
                recorded_at: now,
                amendments: Default::default(),
            };
            put_entity(tx, "visits", &visit.id.to_string(), &visit)?;
            Ok((visit.id, mirror_with(move |r| r.visits.push(visit))))
        })
    }

    /// Corrects one field of a recorded visit, keeping who changed it, when and why. Concurrent
    /// amendments of the same field converge to the same value everywhere, and every amendment
    /// stays in the visit's history.
    pub fn amend_visit(&self, patient: PatientId, visit: VisitId, amendment: VisitAmendment) -> Result<AmendmentId> {
        let mut inner = self.lock();
        let (now, id): (_, AmendmentId) = (inner.now(), inner.new_id());
        inner.edit(patient, |record, tx| {
            let current = record.visit(visit).ok_or(Error::NotFound { what: "visit", id: visit.to_string() })?;
            let amendment = amendment.validated(current)?;
            let visit_key = visit.to_string();
            let (path, value): (Vec<String>, Value) = match &amendment.field {
                VisitField::SystolicMmhg(v) => (vitals("systolic_mmhg"), json_of(v)?),
                VisitField::DiastolicMmhg(v) => (vitals("diastolic_mmhg"), json_of(v)?),
                VisitField::HeartRateBpm(v) => (vitals("heart_rate_bpm"), json_of(v)?),
                VisitField::FastingGlucoseMmolL(v) => (vitals("fasting_glucose_mmol_l"), json_of(v)?),
                VisitField::TwoHourGlucoseMmolL(v) => (vitals("two_hour_glucose_mmol_l"), json_of(v)?),
                VisitField::WeightKg(v) => (vitals("weight_kg"), json_of(v)?),
                VisitField::HeightCm(v) => (vitals("height_cm"), json_of(v)?),
                VisitField::Spo2Percent(v) => (vitals("spo2_percent"), json_of(v)?),
                VisitField::Kind(k) => (vec!["kind".into()], json_of(k)?),
                VisitField::Notes(n) => (vec!["notes".into()], json_of(n)?),
                VisitField::MedicineAdherence { medicine_id, adherence } => {
                    (vec!["medicines".into(), medicine_id.to_string(), "adherence".into()], json_of(adherence)?)
                }
            };
            let (field_key, parents) =
                path.split_last().ok_or_else(|| Error::invalid("amendment.field", "is empty"))?;
            let mut obj_path: Vec<&str> = vec!["visits", &visit_key];
            obj_path.extend(parents.iter().map(String::as_str));
            let obj = map_at(tx, &obj_path)?;
            put_json(tx, &obj, field_key, &value)?;
            let entry = Amendment {
                field: path.join("."),
                value: value.to_string(),
                by_practitioner: amendment.practitioner_id,
                at: now,
                reason: amendment.reason,
            };
            let amendments = map_at(tx, &["visits", &visit_key, "amendments"])?;
            put_json(tx, &amendments, &id.to_string(), &json_of(&entry)?)?;
            Ok((id, Mirror::Reread))
        })
    }

    /// Books a follow-up for a day.
    pub fn schedule_follow_up(&self, patient: PatientId, new: NewFollowUpPlan) -> Result<FollowUpPlanId> {
        let new = new.validated()?;
        let mut inner = self.lock();
        let (now, id) = (inner.now(), inner.new_id());
        inner.edit(patient, |_, tx| {
            let plan =
                FollowUpPlan { id, due: new.due, reason: new.reason, booked_by: new.practitioner_id, booked_at: now };
            put_entity(tx, "follow_ups", &plan.id.to_string(), &plan)?;
            Ok((plan.id, mirror_with(move |r| r.follow_up_plans.push(plan))))
        })
    }

    /// Refers the resident to another organization. A downward referral may name the upward
    /// referral it answers (closing the loop).
    pub fn create_referral(&self, patient: PatientId, new: NewReferral) -> Result<ReferralId> {
        let new = new.validated()?;
        let mut inner = self.lock();
        let (now, id) = (inner.now(), inner.new_id());
        inner.edit(patient, |record, tx| {
            if let Some(up) = new.in_response_to {
                let upward = record.referral(up).ok_or(Error::NotFound { what: "referral", id: up.to_string() })?;
                if upward.referral.direction != Direction::Upward {
                    return Err(Error::invalid("referral.in_response_to", format!("{up} is not an upward referral")));
                }
            }
            let referral = Referral {
                id,
                direction: new.direction,
                from_organization_id: new.from_organization_id,
                from_practitioner_id: new.from_practitioner_id,
                to_organization_id: new.to_organization_id,
                reason: new.reason,
                urgency: new.urgency,
                clinical_summary: new.clinical_summary,
                in_response_to: new.in_response_to,
                created_at: now,
                events: Default::default(),
            };
            put_entity(tx, "referrals", &referral.id.to_string(), &referral)?;
            let id = referral.id;
            Ok((id, mirror_with(move |r| r.referrals.push(ReferralView::from(referral)))))
        })
    }

    /// Moves a referral through its workflow. The transition must be allowed from the current
    /// (folded) status; the receiving organization acts on it, the sending one may cancel it.
    pub fn add_referral_event(&self, referral: ReferralId, event: NewReferralEvent) -> Result<EventId> {
        let mut inner = self.lock();
        let patient: Option<String> = inner
            .conn
            .prepare_cached("SELECT patient_id FROM referral_index WHERE referral_id = ?1")?
            .query_row([referral.to_string()], |r| r.get(0))
            .optional()?;
        let patient: PatientId =
            patient.ok_or(Error::NotFound { what: "referral", id: referral.to_string() })?.parse()?;
        let (now, id): (_, EventId) = (inner.now(), inner.new_id());
        inner.edit(patient, |record, tx| {
            let view =
                record.referral(referral).ok_or(Error::NotFound { what: "referral", id: referral.to_string() })?;
            let r = &view.referral;
            let event = event.validated(r.direction)?;
            let from = view.status.status;
            if !from.can_become(event.status) {
                return Err(Error::Transition { referral: referral.to_string(), from, to: event.status });
            }
            let (actor_org, role) = if event.status == TaskStatus::Cancelled {
                (&r.from_organization_id, "sending")
            } else {
                (&r.to_organization_id, "receiving")
            };
            if &event.by_organization_id != actor_org {
                return Err(Error::invalid(
                    "referral_event.by_organization_id",
                    format!("only the {role} organization ({actor_org}) can mark this referral {}", event.status),
                ));
            }
            let stored = ReferralEvent {
                status: event.status,
                by_practitioner_id: event.by_practitioner_id,
                by_organization_id: event.by_organization_id,
                at: Hlc::next(now, r.events.values().map(|e| e.at)),
                note: event.note,
                discharge_summary: event.discharge_summary,
            };
            let events = map_at(tx, &["referrals", &referral.to_string(), "events"])?;
            put_json(tx, &events, &id.to_string(), &json_of(&stored)?)?;
            let mirror = mirror_with(move |rec| {
                if let Some(view) = rec.referrals.iter_mut().find(|v| v.referral.id == referral) {
                    view.referral.events.insert(id, stored);
                    view.status = referral_status::fold(&view.referral);
                }
            });
            Ok((id, mirror))
        })
    }
}

fn vitals(name: &str) -> Vec<String> {
    vec!["vitals".into(), name.into()]
}
