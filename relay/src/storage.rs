//! The relay's storage. Sync needs [`ParentStorage`] (the log, cursors, scope-filtered reads,
//! grants); the relay adds what operators manage. The default backend is the core [`Store`] on
//! embedded SQLite (WAL) in the data directory; a PostgreSQL backend implements the same traits.

use std::path::Path;
use std::sync::Arc;
use yilian_core::model::PatientRecord;
use yilian_core::sync::ParentStorage;
use yilian_core::time::{Millis, now_ms};
use yilian_core::{Device, DeviceAccess, Durability, PatientId, Result, ScopeGrant, Store, StoreOptions};

/// File name of the embedded database in the data directory.
pub const DATABASE_FILE: &str = "relay.db";

/// Everything the relay keeps.
pub trait RelayStorage: ParentStorage {
    /// What is known of the holder of a device key (from its TLS certificate).
    fn device_access(&self, public_key: &[u8; 32]) -> Result<DeviceAccess>;
    /// Enrolls the holder of `public_key` as `device` with a one-time code.
    fn enroll(&self, code: &str, device: &str, public_key: [u8; 32]) -> Result<Device>;
    /// Revokes a device (its connections are closed within seconds).
    fn revoke(&self, device: &str, by: &str, reason: &str) -> Result<Device>;
    /// Moves whenever a device is revoked (polled to catch revocations made by another process).
    fn revocation_count(&self) -> Result<u64>;
    /// Re-derives scopes whose referral grace period ran out by `now`.
    fn sweep_scope(&self, now: Millis) -> Result<usize>;
    /// Assigns a record (or every record) to a device's scope; it flows to the device on its
    /// next sync, or at once if it is connected to this process.
    fn grant(&self, device: &str, grant: ScopeGrant) -> Result<i64>;
    /// The records in a device's scope (`*` for all).
    fn scope(&self, device: &str) -> Result<Vec<String>>;
    /// A resident's record as the relay holds it.
    fn record(&self, patient: PatientId) -> Result<PatientRecord>;
}

impl RelayStorage for Store {
    fn device_access(&self, public_key: &[u8; 32]) -> Result<DeviceAccess> {
        Store::device_access(self, public_key)
    }

    fn enroll(&self, code: &str, device: &str, public_key: [u8; 32]) -> Result<Device> {
        self.enroll_device(code, device, public_key, now_ms())
    }

    fn revoke(&self, device: &str, by: &str, reason: &str) -> Result<Device> {
        self.revoke_device(device, by, reason)
    }

    fn revocation_count(&self) -> Result<u64> {
        Store::revocation_count(self)
    }

    fn sweep_scope(&self, now: Millis) -> Result<usize> {
        Store::sweep_scope(self, now)
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
}

/// Opens (creating) the embedded SQLite storage in `data_dir`. Every commit is fsynced: an
/// acknowledged change survives a power cut.
pub fn open_sqlite(data_dir: &Path) -> Result<Arc<Store>> {
    std::fs::create_dir_all(data_dir)?;
    let options = StoreOptions { durability: Durability::Full, cache_capacity: 1024, ..StoreOptions::default() };
    Ok(Arc::new(Store::open(data_dir.join(DATABASE_FILE), options)?))
}
