//! Typed ids. Every entity inside a record is keyed by a UUIDv7, never by a list position, so
//! concurrent additions on different devices never collide.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// An id a store draws from its own clock and randomness (so a simulation replays byte for byte).
pub(crate) trait Drawn: Sized {
    /// The id holding `uuid`.
    fn from_uuid(uuid: Uuid) -> Self;

    /// The UUIDv7 of the instant `ms` with these 80 bits (74 of them kept: the version and
    /// variant take the rest).
    fn drawn(ms: crate::time::Millis, bits: [u8; 10]) -> Self {
        Self::from_uuid(uuid::Builder::from_unix_timestamp_millis(ms.max(0) as u64, &bits).into_uuid())
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Drawn for $name {
            fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|e| crate::Error::invalid($what, format!("{s:?} is not a uuid ({e})")))
            }
        }
    };
}

uuid_id!(
    /// A resident's health record; also the id of the record's automerge document.
    PatientId,
    "patient_id"
);
uuid_id!(
    /// A family-doctor contract (signing) inside a record.
    ContractId,
    "contract_id"
);
uuid_id!(
    /// A diagnosed condition inside a record.
    ConditionId,
    "condition_id"
);
uuid_id!(
    /// An encounter (visit) inside a record.
    VisitId,
    "visit_id"
);
uuid_id!(
    /// A medicine line inside a visit.
    MedicineId,
    "medicine_id"
);
uuid_id!(
    /// A referral inside a record.
    ReferralId,
    "referral_id"
);
uuid_id!(
    /// One event in a referral's history.
    EventId,
    "event_id"
);
uuid_id!(
    /// A planned follow-up.
    FollowUpPlanId,
    "follow_up_plan_id"
);
uuid_id!(
    /// One field-level amendment of a visit.
    AmendmentId,
    "amendment_id"
);
