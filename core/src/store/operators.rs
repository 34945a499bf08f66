//! The relay's operators: API tokens (kept as SHA-256 hashes; the token itself is shown once)
//! and the log of every record an operator read through the API (who read what, when).

use super::Store;
use super::directory::{code_enum, require, secret_hash};
use crate::identity::hex;
use crate::time::Millis;
use crate::{Error, Result};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Prefix of an operator API token: tells a token from other secrets in a leaked log.
const TOKEN_PREFIX: &str = "yat_";

code_enum!(
    /// What an operator's token allows.
    OperatorRole, "token.role" {
        /// Everything: the directory, enrollment, devices and revocation, records, worklists.
        Admin = "admin",
        /// A hospital's referral desk: its organization's worklist and statistics, the records of
        /// its referrals, and acting on them.
        ReferralDesk = "referral_desk",
        /// Read-only: worklists, statistics, records and the changes feed (each read logged).
        Analyst = "analyst",
    }
);

/// The operator behind a live API token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiOperator {
    /// The token's name (logged with every read and action).
    pub name: String,
    /// What it may do.
    pub role: OperatorRole,
    /// The organization a referral desk acts for (none: consortium-wide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
}

/// One read of a record by an operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordRead {
    /// The operator (token name).
    pub reader: String,
    /// The record (patient id).
    pub patient: String,
    /// What was read (`record`, `audit`, `fhir`).
    pub what: String,
    /// When (ms).
    pub at: Millis,
}

impl Store {
    /// Creates an API token for the operator `name` and returns it; only its hash is kept, so
    /// this is the one time it can be read. A referral desk's token acts for one existing
    /// `organization`; admin and analyst tokens may be limited to one too, or be consortium-wide.
    pub fn create_admin_token(&self, name: &str, role: OperatorRole, organization: Option<&str>) -> Result<String> {
        if name.trim().is_empty() || name.len() > 64 {
            return Err(Error::invalid("token.name", "must be 1..=64 characters"));
        }
        if role == OperatorRole::ReferralDesk && organization.is_none() {
            return Err(Error::invalid("token.organization", "a referral desk's token acts for one organization"));
        }
        let mut inner = self.lock();
        let secret: [u8; 32] = rand::Rng::r#gen(&mut inner.rng);
        let token = format!("{TOKEN_PREFIX}{}", hex(&secret));
        if let Some(org) = organization {
            require(&inner.conn, "organizations", "organization", org)?;
        }
        match inner.conn.prepare_cached("INSERT INTO admin_tokens (token_hash, name, created_at, role, organization_id) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![secret_hash(&token), name, inner.now(), role.as_str(), organization],
        ) {
            Ok(_) => Ok(token),
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                Err(Error::AlreadyExists { what: "token", id: name.to_string() })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The operator a token belongs to, if it is a live token.
    pub fn admin_token_owner(&self, token: &str) -> Result<Option<ApiOperator>> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let inner = self.lock();
        let found: Option<(String, String, Option<String>)> = inner
            .conn
            .prepare_cached(
                "SELECT name, role, organization_id FROM admin_tokens WHERE token_hash = ?1 AND revoked_at IS NULL",
            )?
            .query_row([secret_hash(token)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        found
            .map(|(name, role, organization_id)| {
                Ok(ApiOperator { name, role: OperatorRole::parse(&role)?, organization_id })
            })
            .transpose()
    }

    /// Revokes the operator's token.
    pub fn revoke_admin_token(&self, name: &str) -> Result<()> {
        let inner = self.lock();
        let n = inner
            .conn
            .prepare_cached("UPDATE admin_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL")?
            .execute(params![name, inner.now()])?;
        if n == 0 {
            return Err(Error::NotFound { what: "token", id: name.to_string() });
        }
        Ok(())
    }

    /// Records that `reader` read `what` of `patient`'s record.
    pub fn log_record_read(&self, reader: &str, patient: &str, what: &str) -> Result<()> {
        self.log_record_reads(reader, &[patient], what)
    }

    /// Records that `reader` read `what` of each of `patients`' records, in one transaction (a
    /// page of the changes feed is one commit, not one per record).
    pub fn log_record_reads(&self, reader: &str, patients: &[&str], what: &str) -> Result<()> {
        let inner = self.lock();
        let tx = inner.conn.unchecked_transaction()?;
        let at = inner.now();
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO record_reads (reader, doc_id, what, at) VALUES (?1, ?2, ?3, ?4)")?;
            for patient in patients {
                insert.execute(params![reader, patient, what, at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Reads of records by operators, newest first (of one record when `patient` is given), at
    /// most `limit`.
    pub fn record_reads(&self, patient: Option<&str>, limit: usize) -> Result<Vec<RecordRead>> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(
            "SELECT reader, doc_id, what, at FROM record_reads WHERE ?1 IS NULL OR doc_id = ?1
             ORDER BY read_id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![patient, limit.min(i64::MAX as usize) as i64], |r| {
            Ok(RecordRead { reader: r.get(0)?, patient: r.get(1)?, what: r.get(2)?, at: r.get(3)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    #[test]
    fn a_token_is_checked_by_its_hash_and_can_be_revoked() {
        let store = Store::open_in_memory(StoreOptions::default()).unwrap();
        let token = store.create_admin_token("ops-li", OperatorRole::Admin, None).unwrap();
        assert!(token.starts_with("yat_") && token.len() == 68);
        let owner = store.admin_token_owner(&token).unwrap().unwrap();
        assert_eq!((owner.name.as_str(), owner.role, owner.organization_id), ("ops-li", OperatorRole::Admin, None));
        let err = store.create_admin_token("desk-zhao", OperatorRole::ReferralDesk, None).unwrap_err();
        assert_eq!(err.to_string(), "token.organization: a referral desk's token acts for one organization");
        assert!(matches!(
            store.create_admin_token("desk-zhao", OperatorRole::ReferralDesk, Some("county")),
            Err(Error::NotFound { what: "organization", .. })
        ));
        store
            .add_organization(&crate::Organization {
                id: "county".into(),
                name: "County Hospital".into(),
                kind: crate::OrganizationKind::CountyHospital,
                part_of: None,
            })
            .unwrap();
        let desk = store.create_admin_token("desk-zhao", OperatorRole::ReferralDesk, Some("county")).unwrap();
        let desk = store.admin_token_owner(&desk).unwrap().unwrap();
        assert_eq!((desk.role, desk.organization_id.as_deref()), (OperatorRole::ReferralDesk, Some("county")));
        assert_eq!(store.admin_token_owner("yat_0000").unwrap(), None);
        assert!(matches!(
            store.create_admin_token("ops-li", OperatorRole::Analyst, None),
            Err(Error::AlreadyExists { .. })
        ));
        assert!(OperatorRole::parse("root").unwrap_err().to_string().starts_with("token.role"));
        store.revoke_admin_token("ops-li").unwrap();
        assert_eq!(store.admin_token_owner(&token).unwrap(), None);
        store.log_record_read("ops-li", "p1", "audit").unwrap();
        store.log_record_read("ops-li", "p2", "record").unwrap();
        let reads = store.record_reads(Some("p1"), 10).unwrap();
        assert_eq!(reads.len(), 1);
        assert_eq!(reads[0].what, "audit");
        assert_eq!(store.record_reads(None, 10).unwrap().len(), 2);
    }
}
