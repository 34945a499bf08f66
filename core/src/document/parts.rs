//! Which parts of a record changes touched, from automerge's patches, so a record kept beside
//! its document is brought up to date by re-reading those entities alone. Reading a whole record
//! walks every op of the document; a relay storing a visit for a resident with fifty visits
//! needs to read one (the relay load benchmark spent a third of its CPU re-reading records).

use super::json::{from_hydrated, scalar_json};
use super::{COLLECTIONS, entity_matches_key};
use crate::model::{PatientRecord, Referral, ReferralView};
use crate::{PatientId, Result};
use automerge::{Automerge, ObjId, ObjType, Patch, PatchAction, Prop, ROOT, ReadDoc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

/// What changes touched in a record.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Touched {
    /// Nothing the record shows.
    #[default]
    Nothing,
    /// These entities, as (collection, key); the demographics are `("patient", "")`. Each comes
    /// with its JSON when the patches created it whole (a new visit, a new referral and its
    /// events): it then needs no re-read. Reading an entity back from the document
    /// (`hydrate`) was the relay's largest cost after applying the changes themselves.
    Parts(BTreeMap<(String, String), Option<Value>>),
    /// Anything: read the record whole.
    Everything,
}

impl Touched {
    /// Adds what `patches` touched, in the order automerge made them.
    pub(crate) fn add_patches(&mut self, patches: &[Patch]) {
        for patch in patches {
            match part_of(patch) {
                Part::Outside => {}
                Part::Entity(collection, key) => self.add(collection, key, patch),
                Part::Unknown => *self = Touched::Everything,
            }
        }
    }

    fn add(&mut self, collection: String, key: String, patch: &Patch) {
        if *self == Touched::Nothing {
            *self = Touched::Parts(BTreeMap::new());
        }
        let Touched::Parts(parts) = self else { return };
        let demographics = collection == "patient";
        let built = parts.entry((collection, key)).or_insert(None);
        if demographics {
            return;
        }
        match (&patch.action, patch.path.len()) {
            // The entity put on its collection: a new object, filled by the patches that follow.
            (PatchAction::PutMap { value: (automerge::Value::Object(ObjType::Map), _), conflict: false, .. }, 1) => {
                *built = Some(Value::Object(serde_json::Map::new()));
            }
            // Replaced by something else, removed, or in conflict: read back from the document.
            (_, 1) => *built = None,
            // Inside the entity: follows into the JSON being built, if any.
            (action, _) => {
                if let Some(json) = built
                    && !apply_patch(json, &patch.path[2..], action)
                {
                    *built = None;
                }
            }
        }
    }
}

/// Applies one patch to the JSON of an entity being built from patches, at `path` inside the
/// entity (automerge's path to the patched object, after the collection and the entity's key).
/// `false` for whatever a created entity's patches do not hold (a conflict, text, counters,
/// list deletions): that entity is then read back from the document.
fn apply_patch(json: &mut Value, path: &[(ObjId, Prop)], action: &PatchAction) -> bool {
    let mut target = json;
    for (_, prop) in path {
        let next = match (prop, target) {
            (Prop::Map(key), Value::Object(map)) => map.get_mut(key.as_str()),
            (Prop::Seq(index), Value::Array(list)) => list.get_mut(*index),
            _ => None,
        };
        match next {
            Some(next) => target = next,
            None => return false,
        }
    }
    match (action, target) {
        (PatchAction::PutMap { key, value: (value, _), conflict: false }, Value::Object(map)) => {
            match fresh_json(value) {
                Some(value) => {
                    map.insert(key.clone(), value);
                    true
                }
                None => false,
            }
        }
        (PatchAction::DeleteMap { key }, Value::Object(map)) => {
            map.remove(key.as_str());
            true
        }
        (PatchAction::Insert { index, values }, Value::Array(list)) if *index <= list.len() => {
            for (offset, (value, _, conflict)) in values.iter().enumerate() {
                match fresh_json(value).filter(|_| !conflict) {
                    Some(value) => list.insert(index + offset, value),
                    None => return false,
                }
            }
            true
        }
        _ => false,
    }
}

/// The JSON a value put by a patch starts as: a scalar as it reads, an empty map or list for a
/// new object (its contents follow in later patches). `None` for text and tables.
fn fresh_json(value: &automerge::Value<'_>) -> Option<Value> {
    match value {
        automerge::Value::Scalar(scalar) => Some(scalar_json(scalar)),
        automerge::Value::Object(ObjType::Map) => Some(Value::Object(serde_json::Map::new())),
        automerge::Value::Object(ObjType::List) => Some(Value::Array(Vec::new())),
        automerge::Value::Object(ObjType::Text | ObjType::Table) => None,
    }
}

enum Part {
    /// Not something the record shows (e.g. a key a newer app version added at the root).
    Outside,
    Entity(String, String),
    /// Not a shape this version writes: read everything.
    Unknown,
}

fn part_of(patch: &Patch) -> Part {
    let map_key = |prop: &Prop| match prop {
        Prop::Map(key) => Some(key.clone()),
        Prop::Seq(_) => None,
    };
    let Some((_, top)) = patch.path.first() else {
        // At the root: a collection or the demographics replaced (only the genesis does that).
        return Part::Unknown;
    };
    let Some(top) = map_key(top) else { return Part::Unknown };
    if top == "patient" {
        return Part::Entity(top, String::new());
    }
    if !COLLECTIONS.contains(&top.as_str()) {
        return Part::Outside;
    }
    let key = match patch.path.get(1) {
        // Inside an entity (its fields, a visit's medicines, a referral's events).
        Some((_, prop)) => map_key(prop),
        // On the collection itself: an entity added, replaced or removed.
        None => match &patch.action {
            PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => Some(key.clone()),
            PatchAction::Conflict { prop } | PatchAction::Increment { prop, .. } => map_key(prop),
            _ => None,
        },
    };
    match key {
        Some(key) => Part::Entity(top, key),
        None => Part::Unknown,
    }
}

/// Brings `record` (as it was before the changes) up to date with `doc`: the entities in `parts`
/// built from patches are taken as they are, the others re-read. `Ok(false)` when it cannot
/// (the demographics are gone, an entity's id is not its key): then the caller reads the record
/// whole.
pub(crate) fn refresh_parts(
    doc: &Automerge,
    patient: PatientId,
    record: &mut PatientRecord,
    parts: BTreeMap<(String, String), Option<Value>>,
) -> Result<bool> {
    for ((collection, key), built) in parts {
        let (collection, key) = (collection.as_str(), key.as_str());
        let value = match built {
            Some(built) => Some(built),
            None => entity_json(doc, collection, key)?,
        };
        let done = match collection {
            "patient" => match value.filter(|v| v.get("name").is_some()).map(serde_json::from_value) {
                Some(Ok(p)) => {
                    record.patient = p;
                    true
                }
                _ => false,
            },
            "contracts" => upsert(&mut record.contracts, patient, collection, key, value, |c| c.id.to_string(), |c| c),
            "conditions" => {
                upsert(&mut record.conditions, patient, collection, key, value, |c| c.id.to_string(), |c| c)
            }
            "visits" => upsert(&mut record.visits, patient, collection, key, value, |v| v.id.to_string(), |v| v),
            "referrals" => upsert(
                &mut record.referrals,
                patient,
                collection,
                key,
                value,
                |r| r.referral.id.to_string(),
                |r: Referral| ReferralView::from(r),
            ),
            "follow_ups" => {
                upsert(&mut record.follow_up_plans, patient, collection, key, value, |p| p.id.to_string(), |p| p)
            }
            _ => false,
        };
        if !done {
            return Ok(false);
        }
    }
    record.sort();
    Ok(true)
}

/// The JSON of `collection[key]` (of the demographics when `collection` is `patient`), or `None`
/// when it is not there.
fn entity_json(doc: &Automerge, collection: &str, key: &str) -> Result<Option<Value>> {
    let map = |obj: &automerge::ObjId, prop: &str| -> Result<Option<automerge::ObjId>> {
        Ok(match doc.get(obj, prop)? {
            Some((automerge::Value::Object(ObjType::Map), id)) => Some(id),
            _ => None,
        })
    };
    let Some(parent) = map(&ROOT, collection)? else { return Ok(None) };
    let obj = if collection == "patient" { Some(parent) } else { map(&parent, key)? };
    match obj {
        Some(obj) => Ok(Some(from_hydrated(&ReadDoc::hydrate(doc, &obj, None)?))),
        None => Ok(None),
    }
}

/// Replaces the entity `key` of `list` with `value` read as `E` (removes it when `value` is
/// `None`). An entity that does not read, or whose id is not its key, is left out, as a whole
/// read leaves it out. `false` when the list held an entity under another key than its id.
fn upsert<T, E: DeserializeOwned>(
    list: &mut Vec<T>,
    patient: PatientId,
    collection: &str,
    key: &str,
    value: Option<Value>,
    id: impl Fn(&T) -> String,
    wrap: impl Fn(E) -> T,
) -> bool {
    list.retain(|t| id(t) != key);
    let Some(value) = value else { return true };
    if !entity_matches_key(&value, patient, collection, key) {
        return true;
    }
    match serde_json::from_value::<E>(value) {
        Ok(entity) => {
            let entity = wrap(entity);
            if id(&entity) != key {
                return false;
            }
            list.push(entity);
        }
        Err(e) => tracing::warn!(%patient, collection, key, error = %e, "skipping unreadable entity"),
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report
    use super::*;
    use crate::care::test_records::{bp, day, record};
    use crate::document::read_record;
    use crate::model::*;
    use crate::time::now_ms;
    use crate::{Store, StoreOptions};
    use automerge::PatchLog;

    const VILLAGE: &str = "shiqiao-clinic";
    const COUNTY: &str = "county-hospital";

    fn visit(systolic: u16) -> NewVisit {
        NewVisit {
            at: now_ms() - 60_000,
            organization_id: VILLAGE.into(),
            practitioner_id: "dr-wang".into(),
            kind: VisitKind::FollowUp,
            vitals: bp(systolic, 85),
            symptoms: vec!["dizziness".into()],
            diagnoses: vec!["I10".into()],
            medicines: vec![Medicine {
                name: "氨氯地平".into(),
                dose: "5 mg".into(),
                frequency: "qd".into(),
                adherence: Adherence::Regular,
            }],
            lifestyle: Lifestyle::default(),
            notes: "雨天来诊".into(),
        }
    }

    fn upward() -> NewReferral {
        NewReferral {
            direction: Direction::Upward,
            from_organization_id: VILLAGE.into(),
            from_practitioner_id: "dr-wang".into(),
            to_organization_id: COUNTY.into(),
            reason: "blood pressure uncontrolled".into(),
            urgency: Urgency::Urgent,
            clinical_summary: "two drugs".into(),
            in_response_to: None,
        }
    }

    fn received() -> NewReferralEvent {
        NewReferralEvent {
            status: TaskStatus::Received,
            by_practitioner_id: "dr-li".into(),
            by_organization_id: COUNTY.into(),
            note: String::new(),
            discharge_summary: None,
        }
    }

    /// Entities the changes created are built from the patches exactly as reading them back from
    /// the document gives them (nested maps, lists, text, numbers); entities that existed before
    /// are left to be read back; and the record brought up to date equals the record read whole.
    #[test]
    fn entities_built_from_patches_read_as_the_document_gives_them() {
        let store = Store::open_in_memory(StoreOptions::default()).unwrap();
        let p = store
            .create_patient(NewPatient {
                id: None,
                demographics: record().patient.demographics,
                practitioner_id: "dr-wang".into(),
                organization_id: VILLAGE.into(),
            })
            .unwrap();
        let first = store.record_visit(p, visit(150)).unwrap();
        let open = store.create_referral(p, upward()).unwrap();
        let before = Automerge::load(&store.document_snapshot(p).unwrap().bytes).unwrap();

        let second = store.record_visit(p, visit(128)).unwrap();
        store.add_referral_event(open, received()).unwrap();
        let amendment = VisitAmendment {
            field: VisitField::SystolicMmhg(Some(148)),
            practitioner_id: "dr-wang".into(),
            reason: "misread".into(),
        };
        store.amend_visit(p, first, amendment).unwrap();
        let plan =
            NewFollowUpPlan { due: day(2030, 1, 15), reason: "BP check".into(), practitioner_id: "dr-wang".into() };
        let plan = store.schedule_follow_up(p, plan).unwrap();
        let after = Automerge::load(&store.document_snapshot(p).unwrap().bytes).unwrap();

        let mut doc = before.clone();
        let mut record = read_record(&doc, p).unwrap();
        let mut log = PatchLog::active();
        doc.apply_changes_log_patches(after.get_changes(&before.get_heads()), &mut log).unwrap();
        let mut touched = Touched::Nothing;
        touched.add_patches(&doc.make_patches(&mut log));
        let Touched::Parts(parts) = touched else { panic!("expected parts, got {touched:?}") };

        let built: Vec<(&str, &str)> =
            parts.iter().filter(|(_, json)| json.is_some()).map(|((c, k), _)| (c.as_str(), k.as_str())).collect();
        let (second, plan) = (second.to_string(), plan.to_string());
        assert_eq!(built, [("follow_ups", plan.as_str()), ("visits", second.as_str())], "created here: built");
        assert!(parts.contains_key(&("visits".into(), first.to_string())), "amended: read back");
        assert!(parts.contains_key(&("referrals".into(), open.to_string())), "event added: read back");
        for ((collection, key), json) in &parts {
            if let Some(json) = json {
                assert_eq!(Some(json), entity_json(&doc, collection, key).unwrap().as_ref(), "{collection} {key}");
            }
        }
        assert!(refresh_parts(&doc, p, &mut record, parts).unwrap());
        assert_eq!(record, read_record(&doc, p).unwrap());
    }
}
