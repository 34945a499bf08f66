//! # yilian-core
//!
//! The offline-first heart of Yilian: each resident's health record is an automerge CRDT document,
//! edited only through a typed care API that validates every input, stored durably in SQLite, and
//! merged with the edits of other devices without losing any.
//!
//! ```
//! use yilian_core::{Store, StoreOptions, model::*};
//! # fn main() -> Result<(), yilian_core::Error> {
//! let village = Store::open_in_memory(StoreOptions::default())?;
//! let patient = village.create_patient(NewPatient {
//!     id: None,
//!     demographics: Demographics {
//!         name: "王秀英".into(), sex: Sex::Female,
//!         birth_date: chrono::NaiveDate::from_ymd_opt(1952, 3, 14).unwrap(),
//!         national_id: None, phone: None, address: None, village: Some("石桥村".into()),
//!     },
//!     practitioner_id: "dr-wang".into(),
//!     organization_id: "shiqiao-clinic".into(),
//! })?;
//! village.record_visit(patient, NewVisit {
//!     at: yilian_core::time::now_ms(),
//!     organization_id: "shiqiao-clinic".into(), practitioner_id: "dr-wang".into(),
//!     kind: VisitKind::FollowUp,
//!     vitals: Vitals { systolic_mmhg: Some(152), diastolic_mmhg: Some(94), ..Default::default() },
//!     symptoms: vec![], diagnoses: vec!["I10".into()], medicines: vec![],
//!     lifestyle: Default::default(), notes: String::new(),
//! })?;
//!
//! // A second device (the township centre) receives the village's changes and converges.
//! let township = Store::open_in_memory(StoreOptions::default())?;
//! let changes = village.changes_since(0, 1000)?.into_iter()
//!     .map(|c| yilian_core::IncomingChange { doc_id: c.doc_id, bytes: c.bytes, signature: c.signature })
//!     .collect();
//! township.apply_remote_changes(changes)?;
//! assert_eq!(township.patient(patient)?, village.patient(patient)?);
//!
//! // Out-of-range input is refused with the field and the rule.
//! let err = village.record_visit(patient, NewVisit {
//!     vitals: Vitals { systolic_mmhg: Some(400), ..Default::default() },
//!     ..NewVisit { at: 0, organization_id: "x".into(), practitioner_id: "y".into(),
//!                  kind: VisitKind::Clinic, vitals: Default::default(), symptoms: vec![],
//!                  diagnoses: vec![], medicines: vec![], lifestyle: Default::default(), notes: String::new() }
//! }).unwrap_err();
//! assert!(err.to_string().starts_with("visit."));
//! # Ok(()) }
//! ```
//!
//! Layout: [`model`] (typed entities, validation, the referral status fold), [`care`] (the chronic
//! disease rules), `document` (how a record maps onto automerge), [`store`] (SQLite, change log,
//! indexes, on-demand loading).

pub mod agent;
pub mod care;
mod document;
mod error;
pub mod identity;
mod ids;
pub mod model;
pub mod net;
pub mod store;
pub mod sync;
pub mod time;

pub use error::{Error, Result};
pub use ids::*;
pub use store::{
    ApplyReport, ChildPush, Device, DeviceAccess, DeviceKind, Durability, EnrollmentCode, IncomingChange, IngestTime,
    Organization, OrganizationKind, PeerCursor, Practitioner, PractitionerRole, ScopeGrant, Store, StoreContention,
    StoreEvents, StoreOptions, StoredChange, Team,
};
