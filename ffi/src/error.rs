//! The two error enums the apps see, one per surface, mapped from the core's errors in this one
//! place. Variants exist only where an app acts differently: show the field to fix, say a record
//! is missing, refuse a referral step, ask the doctor to re-enroll, retry later.

use yilian_core::Error;

/// What can go wrong with the care API (records on this phone).
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum CareError {
    /// An input broke a rule: show `reason` next to `field` (e.g. `visit.vitals.systolic_mmhg`,
    /// `400 is outside 40..=300`).
    #[error("{field}: {reason}")]
    Validation {
        /// Dotted path of the field, as the form should highlight it.
        field: String,
        /// The rule it broke.
        reason: String,
    },
    /// The record, visit or referral is not on this phone (never was, or left its scope).
    #[error("{what} {id} not found")]
    NotFound {
        /// What was looked up (`patient`, `visit`, `referral`, ...).
        what: String,
        /// The id looked up.
        id: String,
    },
    /// The referral cannot take this step from its current status (e.g. completing a rejected
    /// referral).
    #[error("referral {referral_id}: cannot go from {from} to {to}")]
    Transition {
        /// The referral.
        referral_id: String,
        /// Its current status.
        from: String,
        /// The status asked for.
        to: String,
    },
    /// The record exists but has not fully arrived yet: sync, then try again.
    #[error("patient {patient_id} has not fully arrived yet")]
    Incomplete {
        /// The record.
        patient_id: String,
    },
    /// The encryption key does not open the phone's database (or the file is not a Yilian
    /// database, or is damaged): ask for the right key; nothing was changed.
    #[error("the store cannot be opened: wrong encryption key, or the file is not a database or is damaged")]
    WrongKey,
    /// The phone's database was written by a newer version of the app: update the app (this
    /// version cannot read it, and changed nothing).
    #[error(
        "the store was written by a newer version of Yilian (schema {found}, this app reads up to {supported}): update the app"
    )]
    NewerVersion {
        /// The schema version in the file.
        found: i64,
        /// The newest this app reads.
        supported: i64,
    },
    /// The phone's database failed (full disk, damaged file).
    #[error("storage: {reason}")]
    Storage {
        /// What failed.
        reason: String,
    },
    /// A bug in Yilian (a panic inside the call); the app keeps running and nothing stored is lost.
    #[error("internal error: {reason}")]
    Internal {
        /// What went wrong, for the bug report.
        reason: String,
    },
}

/// What can go wrong with enrollment and sync.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The relay refused this phone: the code is wrong, used or expired, or the phone was revoked.
    /// The doctor needs a new enrollment code from the consortium's administrator.
    #[error("not allowed: {reason}")]
    Unauthorized {
        /// The relay's reason.
        reason: String,
    },
    /// The relay could not be reached, or the link broke: it will work later.
    #[error("network: {reason}")]
    Network {
        /// What failed.
        reason: String,
    },
    /// A setting is wrong (relay address, fingerprint, device name).
    #[error("{field}: {reason}")]
    Configuration {
        /// The setting.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The phone's database failed.
    #[error("storage: {reason}")]
    Storage {
        /// What failed.
        reason: String,
    },
    /// A bug in Yilian (a panic inside the call); the app keeps running and nothing stored is lost.
    #[error("internal error: {reason}")]
    Internal {
        /// What went wrong, for the bug report.
        reason: String,
    },
}

impl From<Error> for CareError {
    fn from(e: Error) -> Self {
        match e {
            Error::Validation { field, reason } => CareError::Validation { field, reason },
            Error::NotFound { what, id } => CareError::NotFound { what: what.into(), id },
            Error::Transition { referral, from, to } => {
                CareError::Transition { referral_id: referral, from: from.to_string(), to: to.to_string() }
            }
            Error::IncompleteRecord { patient_id } => CareError::Incomplete { patient_id },
            Error::WrongKeyOrNotADatabase => CareError::WrongKey,
            Error::SchemaTooNew { found, supported } => CareError::NewerVersion { found, supported },
            Error::AlreadyExists { what, id } => {
                CareError::Validation { field: format!("{what}.id"), reason: format!("{id} already exists") }
            }
            other => CareError::Storage { reason: other.with_causes() },
        }
    }
}

impl From<Error> for SyncError {
    fn from(e: Error) -> Self {
        match e {
            Error::Forbidden { reason } => SyncError::Unauthorized { reason },
            Error::Network { .. } | Error::Sync { .. } | Error::Frame(_) | Error::Tls { .. } => {
                SyncError::Network { reason: e.with_causes() }
            }
            Error::Validation { field, reason } => SyncError::Configuration { field, reason },
            other => SyncError::Storage { reason: other.to_string() },
        }
    }
}

/// A panic caught at the FFI boundary, as each surface's `Internal` error.
pub(crate) trait FromPanic {
    fn from_panic(reason: String) -> Self;
}

impl FromPanic for CareError {
    fn from_panic(reason: String) -> Self {
        CareError::Internal { reason }
    }
}

impl FromPanic for SyncError {
    fn from_panic(reason: String) -> Self {
        SyncError::Internal { reason }
    }
}

/// A field that must parse (an id, a date) as a validation error naming it.
pub(crate) fn parse<T: std::str::FromStr>(field: &str, value: &str) -> Result<T, CareError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| CareError::Validation { field: field.into(), reason: format!("{value:?}: {e}") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use yilian_core::model::TaskStatus;

    #[test]
    fn core_errors_map_to_what_the_app_acts_on() {
        let e = CareError::from(Error::invalid("visit.vitals.systolic_mmhg", "400 is outside 40..=300"));
        assert_eq!(e.to_string(), "visit.vitals.systolic_mmhg: 400 is outside 40..=300");
        let e = CareError::from(Error::Transition {
            referral: "r1".into(),
            from: TaskStatus::Rejected,
            to: TaskStatus::Completed,
        });
        assert!(matches!(e, CareError::Transition { ref from, ref to, .. } if from == "rejected" && to == "completed"));
        let e = SyncError::from(Error::Forbidden { reason: "device wang-phone was revoked".into() });
        assert!(matches!(e, SyncError::Unauthorized { .. }));
        let e: Result<chrono::NaiveDate, _> = parse("visit.date", "2026-13-01");
        assert!(matches!(e, Err(CareError::Validation { field, .. }) if field == "visit.date"));
    }

    #[test]
    fn a_wrong_key_and_a_newer_database_are_told_apart() {
        use yilian_core::{Store, StoreOptions};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phone.db");
        let options = |key: u8| StoreOptions { encryption_key: Some(vec![key; 32]), ..StoreOptions::default() };
        drop(Store::open(&path, options(1)).unwrap());
        let e = CareError::from(Store::open(&path, options(2)).err().unwrap());
        assert!(matches!(e, CareError::WrongKey), "{e}");
        let e = CareError::from(Error::SchemaTooNew { found: 99, supported: 13 });
        assert!(matches!(e, CareError::NewerVersion { found: 99, supported: 13 }));
        assert!(e.to_string().ends_with("update the app"), "{e}");
    }
}
