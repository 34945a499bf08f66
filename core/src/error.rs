//! The one error type of `yilian-core`.

use crate::model::TaskStatus;

/// Everything that can go wrong in the core library.
///
/// Messages are lowercase and name what was wrong, so an app can show them to a doctor and a log
/// reader can act on them without a debugger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input failed validation; `field` is the dotted path of the field, `reason` the rule.
    #[error("{field}: {reason}")]
    Validation {
        /// Dotted path of the offending field, e.g. `visit.vitals.systolic_mmhg`.
        field: String,
        /// The rule that was broken, e.g. `400 is outside 40..=300`.
        reason: String,
    },
    /// The named record or entity does not exist in this store.
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of thing was looked up (`patient`, `visit`, `referral`, ...).
        what: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// An entity with this id already exists.
    #[error("{what} {id} already exists")]
    AlreadyExists {
        /// What kind of thing (`patient`, ...).
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// A referral event asks for a transition the referral workflow does not allow.
    #[error("referral {referral}: cannot go from {from} to {to}")]
    Transition {
        /// The referral concerned.
        referral: String,
        /// Its current (folded) status.
        from: TaskStatus,
        /// The status the event asked for.
        to: TaskStatus,
    },
    /// A stored document could not be read back (neither its snapshot nor its change log).
    #[error("document {doc_id} is corrupt: {reason}")]
    CorruptDocument {
        /// The document (patient id).
        doc_id: String,
        /// What failed.
        reason: String,
    },
    /// The record exists but the change that fills in its demographics has not arrived yet.
    #[error("patient {patient_id} is incomplete: its registration has not been received yet")]
    IncompleteRecord {
        /// The patient whose record is incomplete.
        patient_id: String,
    },
    /// A change received from elsewhere was refused.
    #[error("change refused: {reason}")]
    BadChange {
        /// Why it was refused.
        reason: String,
    },
    /// The database file could not be opened: a wrong encryption key, or not a Yilian database.
    #[error("cannot open the store: wrong encryption key, or the file is not a database or is damaged")]
    WrongKeyOrNotADatabase,
    /// The database was written by a newer version of Yilian.
    #[error("store schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// Version found in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// An encryption key was passed but this build has no SQLCipher.
    #[error("encryption at rest needs the `encryption` feature of yilian-core")]
    EncryptionUnavailable,
    /// The underlying SQLite database failed.
    #[error("storage error: {0}")]
    Storage(#[from] rusqlite::Error),
    /// The operating system refused something (a file, a thread).
    #[error("system error: {0}")]
    Io(#[from] std::io::Error),
    /// Automerge refused an operation.
    #[error("document error: {0}")]
    Document(#[from] automerge::AutomergeError),
    /// The relay could not be reached, or the connection broke; syncing again later will resume.
    #[error("network: {reason}")]
    Network {
        /// What failed (connect, TLS, stream).
        reason: String,
        /// The error underneath (QUIC's, the resolver's), when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The peer ended the sync session, or broke the protocol; `reason` says which and why.
    #[error("sync failed: {reason}")]
    Sync {
        /// The peer's or our own reason.
        reason: String,
    },
    /// The peer sent bytes that are not a frame of this protocol (the session ends).
    #[error("bad frame: {0}")]
    Frame(#[from] crate::sync::FrameError),
    /// Not allowed: an unenrolled or revoked device, a bad enrollment code or API token, a
    /// record outside the caller's scope. `reason` says which.
    #[error("not allowed: {reason}")]
    Forbidden {
        /// What was refused and why.
        reason: String,
    },
    /// A certificate, key or fingerprint could not be made or read.
    #[error("tls: {reason}")]
    Tls {
        /// What was wrong.
        reason: String,
        /// The error underneath (rustls', rcgen's), when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for a validation error.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Validation { field: field.into(), reason: reason.into() }
    }

    /// A network error with nothing underneath.
    pub fn network(reason: impl Into<String>) -> Self {
        Error::Network { reason: reason.into(), source: None }
    }

    /// A network error caused by `source`.
    pub fn network_caused(reason: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Network { reason: reason.into(), source: Some(Box::new(source)) }
    }

    /// A TLS error with nothing underneath.
    pub fn tls(reason: impl Into<String>) -> Self {
        Error::Tls { reason: reason.into(), source: None }
    }

    /// A TLS error caused by `source`.
    pub fn tls_caused(reason: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Tls { reason: reason.into(), source: Some(Box::new(source)) }
    }

    /// The message and every cause under it, joined by `: ` (`network: connect: timed out`):
    /// what an app shows and a log keeps, where `to_string` gives the message alone.
    pub fn with_causes(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cause = e.source();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_error_keeps_the_error_underneath_as_its_source() {
        let underneath = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let e = Error::network_caused("connect", underneath);
        assert_eq!(e.to_string(), "network: connect");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("timed out"));
        assert_eq!(e.with_causes(), "network: connect: timed out");
        assert_eq!(Error::tls("no key").with_causes(), "tls: no key");
    }
}
