//! Which parts of a record changes touched, from automerge's patches, so a record kept beside
//! its document is brought up to date by re-reading those entities alone. Reading a whole record
//! walks every op of the document; a relay storing a visit for a resident with fifty visits
//! needs to read one (the relay load benchmark spent a third of its CPU re-reading records).

use super::json::from_hydrated;
use super::{COLLECTIONS, entity_matches_key};
use crate::model::{PatientRecord, Referral, ReferralView};
use crate::{PatientId, Result};
use automerge::{Automerge, ObjType, Patch, PatchAction, Prop, ROOT, ReadDoc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeSet;

/// What changes touched in a record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Touched {
    /// Nothing the record shows.
    #[default]
    Nothing,
    /// These entities, as (collection, key); the demographics are `("patient", "")`.
    Parts(BTreeSet<(String, String)>),
    /// Anything: read the record whole.
    Everything,
}

impl Touched {
    /// Adds what `patches` touched.
    pub(crate) fn add_patches(&mut self, patches: &[Patch]) {
        for patch in patches {
            match part_of(patch) {
                Part::Outside => {}
                Part::Entity(collection, key) => self.add(collection, key),
                Part::Unknown => *self = Touched::Everything,
            }
        }
    }

    fn add(&mut self, collection: String, key: String) {
        match self {
            Touched::Everything => {}
            Touched::Parts(parts) => {
                parts.insert((collection, key));
            }
            Touched::Nothing => *self = Touched::Parts(BTreeSet::from([(collection, key)])),
        }
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

/// Brings `record` (as it was before the changes) up to date with `doc` by re-reading the
/// entities in `parts`. `Ok(false)` when it cannot (the demographics are gone, an entity's id is
/// not its key): then the caller reads the record whole.
pub(crate) fn refresh_parts(
    doc: &Automerge,
    patient: PatientId,
    record: &mut PatientRecord,
    parts: &BTreeSet<(String, String)>,
) -> Result<bool> {
    for (collection, key) in parts {
        let value = entity_json(doc, collection, key)?;
        let done = match collection.as_str() {
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
