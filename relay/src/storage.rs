//! The relay's storage. Sync needs [`ParentStorage`] (the log, cursors, scope-filtered reads,
//! grants); the relay adds what operators manage. The default backend is the core [`Store`] on
//! embedded SQLite (WAL) in the data directory; a PostgreSQL backend implements the same traits.

use crate::metrics::StoreFigures;
use chrono::NaiveDate;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use yilian_core::care::{Period, ReferralStatistics};
use yilian_core::model::{NewReferral, NewReferralEvent, PatientRecord};
use yilian_core::store::{ApiOperator, AuditTrail, OperatorRole, RecordRead, WorklistFilter, WorklistItem};
use yilian_core::sync::ParentStorage;
use yilian_core::time::{Clock, Millis};
use yilian_core::{
    Device, DeviceAccess, DeviceKind, Durability, EnrollmentCode, EventId, Organization, PatientId, Practitioner,
    ReferralId, Result, ScopeGrant, Store, StoreOptions, Team,
};

/// File name of the embedded database in the data directory.
pub const DATABASE_FILE: &str = "relay.db";

/// Everything the relay keeps.
pub trait RelayStorage: ParentStorage {
    /// What is known of the holder of a device key (from its TLS certificate).
    fn device_access(&self, public_key: &[u8; 32]) -> Result<DeviceAccess>;
    /// The clock the relay reads the time from (its scope sweeps, its calendar, enrollment):
    /// the system's, or one a test sets.
    fn clock(&self) -> Clock;
    /// Enrolls the holder of `public_key` as `device` with a one-time code.
    fn enroll(&self, code: &str, device: &str, public_key: [u8; 32]) -> Result<Device>;
    /// Revokes a device (its connections are closed within seconds).
    fn revoke(&self, device: &str, by: &str, reason: &str) -> Result<Device>;
    /// Moves whenever a device is revoked (polled to catch revocations made by another process).
    fn revocation_count(&self) -> Result<u64>;
    /// Size of the database and changes received from devices (for `/metrics`); answering at all
    /// is the readiness check.
    fn figures(&self) -> Result<StoreFigures>;
    /// Re-derives scopes whose referral grace period ran out by `now`.
    fn sweep_scope(&self, now: Millis) -> Result<usize>;
    /// A device's scope rows with their reasons (`team`, `referral`, `created`, `assigned`, `purge`).
    fn scope_reasons(&self, device: &str) -> Result<Vec<(String, String)>>;

    /// Adds an organization.
    fn add_organization(&self, org: &Organization) -> Result<()>;
    /// Every organization, parents first.
    fn organizations(&self) -> Result<Vec<Organization>>;
    /// Adds a practitioner.
    fn add_practitioner(&self, practitioner: &Practitioner) -> Result<()>;
    /// Every practitioner.
    fn practitioners(&self) -> Result<Vec<Practitioner>>;
    /// Adds a family-doctor team.
    fn add_team(&self, team: &Team) -> Result<()>;
    /// Adds or removes a team member (their devices' scopes follow).
    fn set_team_member(&self, team: &str, practitioner: &str, member: bool) -> Result<()>;
    /// Every team.
    fn teams(&self) -> Result<Vec<Team>>;
    /// Issues a one-time enrollment code.
    fn issue_code(
        &self,
        practitioner: &str,
        organization: Option<&str>,
        kind: DeviceKind,
        valid_for: Duration,
        issued_by: &str,
    ) -> Result<EnrollmentCode>;
    /// Every enrolled device.
    fn devices(&self) -> Result<Vec<Device>>;
    /// When a device last synced (its sync bookkeeping last moved), if ever.
    fn last_sync_at(&self, device: &str) -> Result<Option<Millis>>;

    /// Creates an operator API token (returned once; kept hashed).
    fn create_admin_token(&self, name: &str, role: OperatorRole, organization: Option<&str>) -> Result<String>;
    /// The operator a token belongs to, with its role.
    fn admin_token_owner(&self, token: &str) -> Result<Option<ApiOperator>>;
    /// Logs an operator's read of a record.
    fn log_record_read(&self, reader: &str, patient: &str, what: &str) -> Result<()> {
        self.log_record_reads(reader, &[patient], what)
    }
    /// Logs an operator's reads of several records at once (one commit).
    fn log_record_reads(&self, reader: &str, patients: &[&str], what: &str) -> Result<()>;
    /// Operators' reads, newest first.
    fn record_reads(&self, patient: Option<&str>, limit: usize) -> Result<Vec<RecordRead>>;
    /// Who changed which field of a record, from which device, when, with a valid signature.
    fn audit_trail(&self, patient: PatientId) -> Result<AuditTrail>;
    /// Assigns a record (or every record) to a device's scope; it flows to the device on its
    /// next sync, or at once if it is connected to this process.
    fn grant(&self, device: &str, grant: ScopeGrant) -> Result<i64>;
    /// The records in a device's scope (`*` for all).
    fn scope(&self, device: &str) -> Result<Vec<String>>;
    /// A resident's record as the relay holds it.
    fn record(&self, patient: PatientId) -> Result<PatientRecord>;

    /// An organization's referral worklist.
    fn referral_worklist(&self, organization: &str, filter: &WorklistFilter) -> Result<Vec<WorklistItem>>;
    /// The record holding a referral.
    fn record_of_referral(&self, referral: ReferralId) -> Result<PatientRecord>;
    /// Moves a referral on, as a change signed by the relay's own key (it syncs to the devices
    /// that see the record).
    fn add_referral_event(&self, referral: ReferralId, event: NewReferralEvent) -> Result<EventId>;
    /// Creates a referral in a resident's record, signed by the relay's key.
    fn create_referral(&self, patient: PatientId, referral: NewReferral) -> Result<ReferralId>;
    /// A page of the records changed after `after_seq`, each with its newest sequence number.
    fn changed_records_page(&self, after_seq: i64, limit: usize) -> Result<Vec<(PatientId, i64)>>;
    /// Two-way referral statistics of an organization.
    fn referral_statistics(&self, organization: &str, period: Period, today: NaiveDate) -> Result<ReferralStatistics>;
}

impl RelayStorage for Store {
    fn device_access(&self, public_key: &[u8; 32]) -> Result<DeviceAccess> {
        Store::device_access(self, public_key)
    }

    fn clock(&self) -> Clock {
        Store::clock(self)
    }

    fn enroll(&self, code: &str, device: &str, public_key: [u8; 32]) -> Result<Device> {
        self.enroll_device(code, device, public_key, Store::clock(self).now_ms())
    }

    fn revoke(&self, device: &str, by: &str, reason: &str) -> Result<Device> {
        self.revoke_device(device, by, reason)
    }

    fn revocation_count(&self) -> Result<u64> {
        Store::revocation_count(self)
    }

    fn figures(&self) -> Result<StoreFigures> {
        Ok(StoreFigures {
            bytes: Store::database_bytes(self)?,
            device_changes: Store::remote_change_count(self)?,
            contention: Store::contention(self),
        })
    }

    fn sweep_scope(&self, now: Millis) -> Result<usize> {
        Store::sweep_scope(self, now)
    }

    fn scope_reasons(&self, device: &str) -> Result<Vec<(String, String)>> {
        Store::scope_reasons(self, device)
    }

    fn add_organization(&self, org: &Organization) -> Result<()> {
        Store::add_organization(self, org)
    }

    fn organizations(&self) -> Result<Vec<Organization>> {
        Store::organizations(self)
    }

    fn add_practitioner(&self, practitioner: &Practitioner) -> Result<()> {
        Store::add_practitioner(self, practitioner)
    }

    fn practitioners(&self) -> Result<Vec<Practitioner>> {
        Store::practitioners(self)
    }

    fn add_team(&self, team: &Team) -> Result<()> {
        Store::add_team(self, team)
    }

    fn set_team_member(&self, team: &str, practitioner: &str, member: bool) -> Result<()> {
        Store::set_team_member(self, team, practitioner, member)
    }

    fn teams(&self) -> Result<Vec<Team>> {
        Store::teams(self)
    }

    fn issue_code(
        &self,
        practitioner: &str,
        organization: Option<&str>,
        kind: DeviceKind,
        valid_for: Duration,
        issued_by: &str,
    ) -> Result<EnrollmentCode> {
        self.issue_enrollment_code(practitioner, organization, kind, valid_for, issued_by)
    }

    fn devices(&self) -> Result<Vec<Device>> {
        Store::devices(self)
    }

    fn last_sync_at(&self, device: &str) -> Result<Option<Millis>> {
        self.peer_last_sync(device)
    }

    fn create_admin_token(&self, name: &str, role: OperatorRole, organization: Option<&str>) -> Result<String> {
        Store::create_admin_token(self, name, role, organization)
    }

    fn admin_token_owner(&self, token: &str) -> Result<Option<ApiOperator>> {
        Store::admin_token_owner(self, token)
    }

    fn log_record_reads(&self, reader: &str, patients: &[&str], what: &str) -> Result<()> {
        Store::log_record_reads(self, reader, patients, what)
    }

    fn record_reads(&self, patient: Option<&str>, limit: usize) -> Result<Vec<RecordRead>> {
        Store::record_reads(self, patient, limit)
    }

    fn audit_trail(&self, patient: PatientId) -> Result<AuditTrail> {
        Store::audit_trail(self, patient)
    }

    fn grant(&self, device: &str, grant: ScopeGrant) -> Result<i64> {
        self.grant_scope(device, grant)
    }

    fn scope(&self, device: &str) -> Result<Vec<String>> {
        self.scope_of(device)
    }

    fn record(&self, patient: PatientId) -> Result<PatientRecord> {
        self.patient(patient)
    }

    fn referral_worklist(&self, organization: &str, filter: &WorklistFilter) -> Result<Vec<WorklistItem>> {
        Store::referral_worklist(self, organization, filter)
    }

    fn record_of_referral(&self, referral: ReferralId) -> Result<PatientRecord> {
        Store::record_of_referral(self, referral)
    }

    fn add_referral_event(&self, referral: ReferralId, event: NewReferralEvent) -> Result<EventId> {
        Store::add_referral_event(self, referral, event)
    }

    fn create_referral(&self, patient: PatientId, referral: NewReferral) -> Result<ReferralId> {
        Store::create_referral(self, patient, referral)
    }

    fn changed_records_page(&self, after_seq: i64, limit: usize) -> Result<Vec<(PatientId, i64)>> {
        Store::changed_records_page(self, after_seq, limit)
    }

    fn referral_statistics(&self, organization: &str, period: Period, today: NaiveDate) -> Result<ReferralStatistics> {
        Store::referral_statistics(self, organization, period, today)
    }
}

/// SQLite's page cache on a relay: a county's log, indexes and scope tables stay in memory
/// instead of being read from the operating system page by page (measured under the load test:
/// 88,000 reads a second with SQLite's default 2 MB, all while holding the store).
pub const RELAY_PAGE_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// Records the relay keeps loaded. A record evicted is loaded again from its snapshot and the
/// changes after it: in the relay load benchmark (2,000 records) loading took 8 % of the relay's
/// CPU with 1,024 kept; with all kept the relay's peak RSS was 428 MB.
pub const RELAY_CACHED_RECORDS: usize = 4096;

/// Changes after which the relay saves a record's snapshot again. Saving writes the whole record,
/// so a relay that keeps its records loaded saves them less often than a phone (16).
pub const RELAY_COMPACT_EVERY: u32 = 64;

/// Opens (creating) the embedded SQLite storage in `data_dir`. Every commit is fsynced: an
/// acknowledged change survives a power cut.
pub fn open_sqlite(data_dir: &Path) -> Result<Arc<Store>> {
    std::fs::create_dir_all(data_dir)?;
    let options = StoreOptions {
        durability: Durability::Full,
        cache_capacity: RELAY_CACHED_RECORDS,
        compact_every: RELAY_COMPACT_EVERY,
        page_cache_bytes: RELAY_PAGE_CACHE_BYTES,
        ..StoreOptions::default()
    };
    Ok(Arc::new(Store::open(data_dir.join(DATABASE_FILE), options)?))
}
