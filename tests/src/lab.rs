//! A network lab in one process: a relay on real QUIC over 127.0.0.1 and phones (durable stores
//! with their own UDP endpoint and pinned TLS configuration) that sync with it.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use yilian_core::net::{Fingerprint, SessionOptions, SessionReport, client_config, connect, sync_over};
use yilian_core::{Durability, Store, StoreOptions};
use yilian_relay::{Relay, RelayConfig};

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
    /// A phone called `name` with `store`, pinning `relay`.
    pub fn new(name: &str, store: Arc<Store>, relay: Fingerprint) -> Result<Phone> {
        let endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        Ok(Phone { name: name.into(), store, endpoint, client: client_config(relay)? })
    }

    /// One session with the relay at `addr` (connect, sync, close).
    pub async fn sync_with(&self, addr: SocketAddr, options: &SessionOptions) -> Result<SessionReport> {
        let run = async {
            let (conn, _) = connect(&self.endpoint, &self.client, addr).await?;
            let result =
                sync_over(&conn, &self.store, &self.name, "relay", options, &CancellationToken::new(), &mut |_| {})
                    .await;
            conn.close(quinn::VarInt::from_u32(0), b"done");
            result
        };
        Ok(tokio::time::timeout(STEP, run).await.context("sync step timed out")??)
    }

    /// A complete session that must end synced.
    pub async fn sync(&self, addr: SocketAddr) -> Result<SessionReport> {
        let report = self.sync_with(addr, &SessionOptions::default()).await?;
        anyhow::ensure!(report.outcome.synced, "{} ended a session without being synced: {report:?}", self.name);
        Ok(report)
    }
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
