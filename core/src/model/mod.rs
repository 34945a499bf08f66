//! The patient record model: typed entities, their validation, and the referral status fold.
//!
//! Nothing here knows about storage or the network.

mod condition;
mod contract;
mod follow_up;
mod patient;
mod record;
mod referral;
pub mod referral_status;
mod validate;
mod visit;

pub use condition::{Condition, NewCondition, Program};
pub use contract::{Contract, ContractStatus, NewContract};
pub use follow_up::{FollowUpPlan, NewFollowUpPlan};
pub use patient::{Demographics, DemographicsUpdate, NewPatient, Patient, Sex};
pub use record::{PatientRecord, ReferralView};
pub use referral::{Direction, NewReferral, NewReferralEvent, Referral, ReferralEvent, TaskStatus, Urgency};
pub use referral_status::{FoldedEvent, ReferralStatus};
pub use validate::CLOCK_SKEW_MS;
pub(crate) use validate::code as validate_code;
pub use visit::{
    Adherence, Amendment, Lifestyle, Medicine, NewVisit, SaltIntake, Visit, VisitAmendment, VisitField, VisitKind,
    Vitals,
};
