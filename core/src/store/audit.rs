//! The audit trail of a record: for every change in its history, which fields it set, which
//! device (and practitioner) authored it, when, and whether its stored signature is valid.
//!
//! Built from what the relay keeps: the raw automerge changes of the log (each checked against
//! its hash), the signatures that came with them, the actor → device binding, and the directory.
//! A change whose bytes no longer match their hash, or whose signature does not verify with its
//! device's key, is reported as a problem: the stored history was tampered with.

use super::Store;
use crate::document::{decode_change, genesis_hash};
use crate::identity::{hex, verify_signature};
use crate::time::Millis;
use crate::{PatientId, Result};
use automerge::{Automerge, ChangeHash, Prop, ReadDoc, Value};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// What the stored signature of a change says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SignatureCheck {
    /// Signed by the key of the device that owns the change's actor.
    Valid,
    /// The record's genesis: identical on every device, carries no author.
    Genesis,
    /// No signature stored.
    Missing,
    /// A signature that does not verify (or bytes that no longer match their hash).
    Invalid,
}

/// One field a change wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldChange {
    /// Path in the record (`visits/<id>/vitals/systolic_mmhg`).
    pub path: String,
    /// `set`, `insert`, `delete` or `increment`.
    pub action: String,
    /// The value written (shortened), when there is one.
    pub value: Option<String>,
}

/// One change in a record's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Its position in this replica's log.
    pub seq: i64,
    /// Automerge change hash (hex).
    pub hash: String,
    /// When the authoring device made it (its clock, ms).
    pub at: Millis,
    /// The device key that authored it (hex), if known.
    pub author_key: Option<String>,
    /// The enrolled device with that key, if any.
    pub device: Option<String>,
    /// The practitioner the device belongs to.
    pub practitioner: Option<String>,
    /// What the stored signature says.
    pub signature: SignatureCheck,
    /// The fields it wrote.
    pub fields: Vec<FieldChange>,
}

/// The history of one record, oldest change first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditTrail {
    /// The record.
    pub patient: PatientId,
    /// Every change.
    pub entries: Vec<AuditEntry>,
    /// What does not check out (tampered bytes, bad signatures); empty when the history is sound.
    pub problems: Vec<String>,
}

impl AuditTrail {
    /// The latest entry that wrote `path` (a suffix match, e.g. `vitals/systolic_mmhg`).
    pub fn last_writer_of(&self, path: &str) -> Option<&AuditEntry> {
        self.entries.iter().rev().find(|e| e.fields.iter().any(|f| f.path.ends_with(path)))
    }
}

/// A stored log row of the record.
struct Row {
    seq: i64,
    hash: Vec<u8>,
    bytes: Vec<u8>,
    signature: Option<Vec<u8>>,
}

impl Store {
    /// The audit trail of `patient`'s record: who changed which field, from which device, when,
    /// with a valid signature or not. Checks every stored change against its hash and signature.
    pub fn audit_trail(&self, patient: PatientId) -> Result<AuditTrail> {
        let inner = self.lock();
        let rows: Vec<Row> = {
            let mut stmt = inner.conn.prepare_cached(
                "SELECT local_seq, hash, bytes, signature FROM changes WHERE doc_id = ?1 ORDER BY local_seq",
            )?;
            let rows = stmt.query_map([patient.to_string()], |r| {
                Ok(Row { seq: r.get(0)?, hash: r.get(1)?, bytes: r.get(2)?, signature: r.get(3)? })
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if rows.is_empty() {
            return Err(crate::Error::NotFound { what: "patient", id: patient.to_string() });
        }
        let genesis = genesis_hash(patient)?;
        let mut problems = Vec::new();
        let mut changes = Vec::new();
        let mut entries = Vec::new();
        for row in rows {
            let change = match decode_change(&row.bytes) {
                Ok(change) => change,
                Err(e) => {
                    problems.push(format!("change {}: stored bytes are not a change: {e}", row.seq));
                    continue;
                }
            };
            let hash = change.hash();
            let mut signature = SignatureCheck::Missing;
            if hash.0.as_slice() != row.hash.as_slice() {
                problems.push(format!(
                    "change {}: its bytes no longer match its hash {} (tampered)",
                    row.seq,
                    hex(&row.hash[..row.hash.len().min(6)])
                ));
                signature = SignatureCheck::Invalid;
            }
            let actor = change.actor_id().to_bytes().to_vec();
            let author: Option<Vec<u8>> = match change.author() {
                Some(author) => Some(author.as_bytes().to_vec()),
                None => inner
                    .conn
                    .prepare_cached("SELECT author FROM actors WHERE actor = ?1")?
                    .query_row([&actor], |r| r.get(0))
                    .optional()?,
            };
            if hash == genesis {
                signature = SignatureCheck::Genesis;
            } else if signature != SignatureCheck::Invalid
                && let Some(sig) = &row.signature
            {
                let valid = author.as_deref().is_some_and(|key| verify_signature(key, &row.hash, sig));
                signature = if valid { SignatureCheck::Valid } else { SignatureCheck::Invalid };
                if !valid {
                    problems.push(format!("change {}: the signature does not verify with its device's key", row.seq));
                }
            }
            let device: Option<(String, String)> = match &author {
                Some(key) => inner
                    .conn
                    .prepare_cached("SELECT device_id, practitioner_id FROM devices WHERE public_key = ?1")?
                    .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?,
                None => None,
            };
            entries.push(AuditEntry {
                seq: row.seq,
                hash: hex(&hash.0),
                at: change.timestamp(),
                author_key: author.as_deref().map(hex),
                device: device.as_ref().map(|d| d.0.clone()),
                practitioner: device.map(|d| d.1),
                signature,
                fields: Vec::new(),
            });
            changes.push(change);
        }
        // Replay the history and ask automerge what each change did to the record.
        let mut doc = Automerge::new();
        let deps: Vec<(ChangeHash, Vec<ChangeHash>)> = changes.iter().map(|c| (c.hash(), c.deps().to_vec())).collect();
        doc.apply_changes(changes)?;
        for (entry, (hash, deps)) in entries.iter_mut().zip(deps) {
            if doc.get_change_by_hash(&hash).is_none() {
                continue; // waiting for a dependency: not part of the record yet
            }
            entry.fields = doc.diff(&deps, &[hash]).into_iter().filter_map(field_change).collect();
        }
        Ok(AuditTrail { patient, entries, problems })
    }
}

fn prop_name(prop: &Prop) -> String {
    match prop {
        Prop::Map(key) => key.clone(),
        Prop::Seq(index) => index.to_string(),
    }
}

fn short(value: &Value<'_>) -> Option<String> {
    match value {
        Value::Scalar(s) => {
            let text = s.to_string();
            Some(if text.chars().count() > 80 {
                format!("{}…", text.chars().take(80).collect::<String>())
            } else {
                text
            })
        }
        Value::Object(_) => None,
    }
}

/// A patch as a field change; new objects are left out (their fields come as patches of their own).
fn field_change(patch: automerge::Patch) -> Option<FieldChange> {
    use automerge::PatchAction;
    let parent: Vec<String> = patch.path.iter().map(|(_, p)| prop_name(p)).collect();
    let at = |last: String| [parent.clone(), vec![last]].concat().join("/");
    let (path, action, value) = match patch.action {
        PatchAction::PutMap { key, value, .. } => (at(key), "set", Some(short(&value.0)?)),
        PatchAction::PutSeq { index, value, .. } => (at(index.to_string()), "set", Some(short(&value.0)?)),
        PatchAction::Insert { index, values } => {
            let first = values.iter().next().and_then(|(v, _, _)| short(v));
            (at(index.to_string()), "insert", first)
        }
        PatchAction::SpliceText { index, value, .. } => (at(index.to_string()), "insert", Some(value.make_string())),
        PatchAction::Increment { prop, value } => (at(prop_name(&prop)), "increment", Some(value.to_string())),
        PatchAction::DeleteMap { key } => (at(key), "delete", None),
        PatchAction::DeleteSeq { index, .. } => (at(index.to_string()), "delete", None),
        PatchAction::Conflict { .. } | PatchAction::Mark { .. } => return None,
    };
    Some(FieldChange { path, action: action.to_string(), value })
}
