//! A network lab in one process: a relay on real QUIC over 127.0.0.1 and phones (durable stores
//! with their own UDP endpoint, a TLS configuration that pins the relay and presents the phone's
//! key) that enroll with it and sync.

use anyhow::Result;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use yilian_core::identity::DeviceKey;
use yilian_core::net::{
    Enrollment, Fingerprint, SessionOptions, SessionReport, client_config, connect, enroll, sync_over,
};
use yilian_core::time::now_ms;
use yilian_core::{DeviceKind, Durability, OrganizationKind, Store, StoreOptions};
use yilian_relay::{Relay, RelayConfig};
use yilian_testing::Consortium;

/// Longest any one lab step may take before the test fails (instead of hanging).
pub const STEP: Duration = Duration::from_secs(60);

/// Starts a relay on `127.0.0.1:0` over `storage`, its certificate kept in `dir`.
pub async fn start_relay(dir: &Path, storage: Arc<Store>) -> Result<Relay> {
    let config = RelayConfig { data_dir: dir.to_path_buf(), listen: ([127, 0, 0, 1], 0).into(), name: "relay".into() };
    Ok(Relay::start(config, storage).await?)
}

/// A store in a file, fsync off (lab speed; durability has its own tests).
pub fn open_store(path: PathBuf) -> Result<Arc<Store>> {
    Ok(Arc::new(Store::open(path, StoreOptions { durability: Durability::Off, ..StoreOptions::default() })?))
}

/// The lab's organization and the practitioner every lab phone belongs to.
pub const LAB_CLINIC: &str = "shiqiao-clinic";
/// The lab's practitioner.
pub const LAB_DOCTOR: &str = "dr-wang";

/// Puts the lab's clinic and doctor in the relay's directory (once).
pub fn lab_directory(storage: &Store) -> Result<()> {
    if storage.practitioners()?.iter().any(|p| p.id == LAB_DOCTOR) {
        return Ok(());
    }
    Consortium::new()
        .organization(LAB_CLINIC, "石桥村卫生室", OrganizationKind::VillageClinic, None)
        .family_doctor(LAB_DOCTOR, "王医生", LAB_CLINIC)
        .enter(storage)?;
    Ok(())
}

/// A fresh one-time code for a lab phone.
pub fn lab_code(storage: &Store) -> Result<String> {
    lab_directory(storage)?;
    let code = storage.issue_enrollment_code(LAB_DOCTOR, None, DeviceKind::Phone, Duration::from_secs(600), "lab")?;
    Ok(code.code)
}

/// Enrolls `key` as `device` straight in the relay's storage (the admin's and the device's steps
/// in one), for raw clients that speak the protocol by hand.
pub fn enroll_directly(storage: &Store, device: &str, key: &DeviceKey) -> Result<()> {
    storage.enroll_device(&lab_code(storage)?, device, key.public_key(), now_ms())?;
    Ok(())
}

/// A phone: a store, a UDP endpoint, and a client configuration pinning one relay.
pub struct Phone {
    /// Its peer id.
    pub name: String,
    /// Its store.
    pub store: Arc<Store>,
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
}

impl Phone {
    /// A phone called `name` with `store` (already enrolled), pinning `relay`.
    pub fn new(name: &str, store: Arc<Store>, relay: Fingerprint) -> Result<Phone> {
        let endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let client = client_config(relay, &store.device_key())?;
        Ok(Phone { name: name.into(), store, endpoint, client })
    }

    /// A new phone called `name` with `store`, enrolled over QUIC with a fresh code for the lab's
    /// doctor on `relay` (whose storage is `storage`).
    pub async fn join(name: &str, store: Arc<Store>, relay: &Relay, storage: &Store) -> Result<Phone> {
        let phone = Phone::new(name, store, relay.fingerprint)?;
        phone.enroll(relay.addr, &lab_code(storage)?).await?;
        Ok(phone)
    }

    /// Presents an enrollment code to the relay at `addr`, enrolling as this phone's name.
    pub async fn enroll(&self, addr: SocketAddr, code: &str) -> yilian_core::Result<Enrollment> {
        tokio::time::timeout(STEP, enroll(&self.endpoint, &self.client, addr, code, &self.name))
            .await
            .map_err(|_| yilian_core::Error::network("enrollment timed out"))?
    }

    /// One session with the relay at `addr` (connect, sync, close).
    pub async fn sync_with(&self, addr: SocketAddr, options: &SessionOptions) -> Result<SessionReport> {
        Ok(self.try_sync(addr, options, &CancellationToken::new()).await?)
    }

    /// One session, with the core error as it is (a refusal is [`yilian_core::Error::Forbidden`]);
    /// a live session runs until `stop`.
    pub async fn try_sync(
        &self,
        addr: SocketAddr,
        options: &SessionOptions,
        stop: &CancellationToken,
    ) -> yilian_core::Result<SessionReport> {
        let run = session(&self.endpoint, &self.client, addr, &self.store, &self.name, options, stop);
        tokio::time::timeout(STEP, run).await.map_err(|_| yilian_core::Error::network("sync step timed out"))?
    }

    /// A complete session that must end synced.
    pub async fn sync(&self, addr: SocketAddr) -> Result<SessionReport> {
        let report = self.sync_with(addr, &SessionOptions::default()).await?;
        anyhow::ensure!(report.outcome.synced, "{} ended a session without being synced: {report:?}", self.name);
        Ok(report)
    }
}

/// One session of `store` (peer id `me`) with the relay at `addr` on a fresh connection: connect,
/// sync, close.
pub async fn session(
    endpoint: &quinn::Endpoint,
    config: &quinn::ClientConfig,
    addr: SocketAddr,
    store: &Store,
    me: &str,
    options: &SessionOptions,
    stop: &CancellationToken,
) -> yilian_core::Result<SessionReport> {
    let (conn, _) = connect(endpoint, config, addr).await?;
    let result = sync_over(&conn, store, me, "relay", options, stop, &mut |_| {}).await;
    conn.close(quinn::VarInt::from_u32(0), b"done");
    result
}

/// Asserts that `a` holds exactly the records of `b`, field for field.
pub fn same_records(a: &Store, b: &Store) -> Result<()> {
    let ids = a.patient_ids()?;
    anyhow::ensure!(ids == b.patient_ids()?, "different record sets");
    for id in ids {
        anyhow::ensure!(a.export_json(id)? == b.export_json(id)?, "record {id} differs");
    }
    Ok(())
}

/// Whether every change of `store`'s log appears once.
pub fn no_duplicates(store: &Store) -> Result<bool> {
    let all = store.changes_since(0, usize::MAX)?;
    let mut hashes: Vec<_> = all.iter().map(|c| c.hash).collect();
    hashes.sort_unstable();
    hashes.dedup();
    Ok(hashes.len() == all.len())
}

/// Hands every change of `from`'s log to `to` directly (a record learned out of band).
pub fn copy_log(from: &Store, to: &Store) -> Result<()> {
    let changes = from
        .changes_since(0, usize::MAX)?
        .into_iter()
        .map(|c| yilian_core::IncomingChange { doc_id: c.doc_id, bytes: c.bytes, signature: c.signature })
        .collect();
    to.apply_remote_changes(changes)?;
    Ok(())
}
