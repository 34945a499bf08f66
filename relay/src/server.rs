//! The relay's QUIC sync endpoint: accepts device connections, tells enrolled devices from
//! unknown and revoked ones by the key of their TLS certificate, and serves each enrolled device
//! with the parent side of the sync protocol, live, over the relay's storage.
//!
//! - an enrolled device syncs (its hello must name the device its certificate belongs to);
//! - a device never seen may only enroll, with a one-time code;
//! - a revoked device is refused with the reason, and a device revoked while connected is cut
//!   off within [`REVOCATION_POLL`].

use crate::metrics::RelayMetrics;
use crate::storage::RelayStorage;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use yilian_core::net::{
    Fingerprint, RelayIdentity, ServeOptions, device_key_of, refuse, relay_endpoint, serve_child, serve_enrollment,
    with_store,
};
use yilian_core::time::format_ms;
use yilian_core::{Device, DeviceAccess, Error, Result};

/// How often the relay looks for revocations made by another process (the CLI, another relay
/// node): a revoked device's live connection closes within this.
pub const REVOCATION_POLL: Duration = Duration::from_secs(1);

/// How often referral grace periods are checked (records whose grace ran out are purged).
pub const SCOPE_SWEEP: Duration = Duration::from_secs(60);

/// How to run a relay.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Where the database and the certificate live.
    pub data_dir: PathBuf,
    /// UDP address for QUIC (`0.0.0.0:4433`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// This relay's peer id.
    pub name: String,
}

/// A running relay. Stop it with [`Relay::shutdown`].
pub struct Relay {
    endpoint: quinn::Endpoint,
    stop: CancellationToken,
    tasks: JoinSet<()>,
    revocations: Arc<watch::Sender<u64>>,
    metrics: Arc<RelayMetrics>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// What devices pin.
    pub fingerprint: Fingerprint,
    /// Its storage.
    pub storage: Arc<dyn RelayStorage>,
}

impl Relay {
    /// Starts serving on `config.listen` with `storage`; the certificate is loaded from the data
    /// directory (generated on first start).
    pub async fn start(config: RelayConfig, storage: Arc<dyn RelayStorage>) -> Result<Relay> {
        let identity = RelayIdentity::load_or_generate(&config.data_dir)?;
        let endpoint = relay_endpoint(&identity, config.listen)?;
        let addr = endpoint.local_addr()?;
        let stop = CancellationToken::new();
        let revocations = Arc::new(watch::Sender::new(storage.revocation_count()?));
        let options = ServeOptions::new(&config.name);
        let metrics = Arc::new(RelayMetrics::new(options.ingest.clone()));
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(
            endpoint.clone(),
            storage.clone(),
            options,
            revocations.subscribe(),
            metrics.clone(),
            stop.clone(),
        ));
        tasks.spawn(watch_revocations(storage.clone(), revocations.clone(), stop.clone()));
        tasks.spawn(sweep_scope(storage.clone(), stop.clone()));
        tracing::info!(%addr, fingerprint = %identity.fingerprint(), "relay listening");
        Ok(Relay { endpoint, stop, tasks, revocations, metrics, addr, fingerprint: identity.fingerprint(), storage })
    }

    /// The signal that makes connections re-check their device (the HTTP API's revocations
    /// move it, so the device is cut off at once).
    pub fn revocations(&self) -> Arc<watch::Sender<u64>> {
        self.revocations.clone()
    }

    /// The relay's counters, for the HTTP API's `/metrics`.
    pub fn metrics(&self) -> Arc<RelayMetrics> {
        self.metrics.clone()
    }

    /// Revokes a device and closes its live connections at once.
    pub fn revoke(&self, device: &str, by: &str, reason: &str) -> Result<Device> {
        let revoked = self.storage.revoke(device, by, reason)?;
        self.revocations.send_modify(|n| *n += 1);
        Ok(revoked)
    }

    /// Graceful shutdown: stop accepting, end every session, close the endpoint and wait until
    /// the peers have been told.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while let Some(done) = self.tasks.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "relay task failed");
            }
        }
        self.endpoint.close(quinn::VarInt::from_u32(0), b"relay shutting down");
        self.endpoint.wait_idle().await;
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    storage: Arc<dyn RelayStorage>,
    options: ServeOptions,
    revocations: watch::Receiver<u64>,
    metrics: Arc<RelayMetrics>,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next() => continue,
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
        };
        let remote = incoming.remote_address();
        let (storage, options, stop, revocations, metrics) =
            (storage.clone(), options.clone(), stop.clone(), revocations.clone(), metrics.clone());
        let span = tracing::info_span!("conn", %remote, device = tracing::field::Empty);
        connections.spawn(
            async move {
                let conn = match incoming.await {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::info!(error = %e, "handshake failed");
                        return;
                    }
                };
                serve_connection(conn, storage.as_ref(), options, revocations, &metrics, &stop).await;
            }
            .instrument(span),
        );
    }
    // Sessions see `stop` and end; wait for them so nothing is cut mid-transaction.
    while connections.join_next().await.is_some() {}
}

/// Decides from the certificate's key who is connecting, then serves, enrolls or refuses.
async fn serve_connection(
    conn: quinn::Connection,
    storage: &dyn RelayStorage,
    mut options: ServeOptions,
    mut revocations: watch::Receiver<u64>,
    metrics: &RelayMetrics,
    stop: &CancellationToken,
) {
    let Some(key) = device_key_of(&conn) else {
        metrics.refused("no_certificate");
        refuse(&conn, "no device certificate");
        return;
    };
    let device = match with_store(|| storage.device_access(&key)).await {
        Ok(DeviceAccess::Enrolled(device)) => device,
        Ok(DeviceAccess::Revoked(device)) => {
            tracing::warn!(device = %device.device_id, "refused a revoked device");
            metrics.refused("revoked");
            refuse(&conn, &revoked_reason(&device));
            return;
        }
        Ok(DeviceAccess::Unknown) => {
            match serve_enrollment(&conn, &|code, device| storage.enroll(code, device, key)).await {
                Ok(device) => tracing::info!(
                    device = %device.device_id,
                    practitioner = %device.practitioner_id,
                    organization = %device.organization_id,
                    "device enrolled"
                ),
                Err(e) => tracing::warn!(error = %e, "enrollment refused"),
            }
            conn.close(quinn::VarInt::from_u32(0), b"");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the device directory");
            metrics.refused("directory");
            conn.close(quinn::VarInt::from_u32(1), b"the relay cannot serve now; try again later");
            return;
        }
    };
    tracing::Span::current().record("device", device.device_id.as_str());
    options.device = Some(device.device_id.clone());
    revocations.borrow_and_update();
    let meter = metrics.session_started();
    let session = serve_child(conn.clone(), storage, &options, stop);
    tokio::pin!(session);
    let outcome = loop {
        tokio::select! {
            outcome = &mut session => break outcome,
            changed = revocations.changed() => {
                if changed.is_err() {
                    continue;
                }
                if let Ok(DeviceAccess::Revoked(device)) = with_store(|| storage.device_access(&key)).await {
                    tracing::warn!("closing the connection of a device revoked while connected");
                    let reason = revoked_reason(&device);
                    meter.ended(Err(&Error::Forbidden { reason: reason.clone() }), &conn);
                    refuse(&conn, &reason);
                    return;
                }
            }
        }
    };
    // A device that closes its connection after syncing ends the session as a broken link would;
    // count it as the clean end it is.
    let closed_by_device = matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(ref close)) if close.error_code == quinn::VarInt::from_u32(0)
    );
    let counted = match &outcome {
        Err(Error::Network { .. }) if closed_by_device => Ok(()),
        other => other.as_ref().map(|_| ()),
    };
    meter.ended(counted, &conn);
    match outcome {
        Ok(outcome) => tracing::info!(
            pushed = outcome.received,
            pulled = outcome.sent,
            refused = outcome.refused.len(),
            "connection done"
        ),
        Err(e) => log_session_error(&e),
    }
    conn.close(quinn::VarInt::from_u32(0), b"");
}

fn revoked_reason(device: &Device) -> String {
    format!(
        "device {} was revoked at {}: {}",
        device.device_id,
        device.revoked_at.map(format_ms).unwrap_or_default(),
        device.revoke_reason.as_deref().unwrap_or("no reason given")
    )
}

/// Polls for revocations made outside this process; connections re-check their device when the
/// count moves.
async fn watch_revocations(
    storage: Arc<dyn RelayStorage>,
    revocations: Arc<watch::Sender<u64>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(REVOCATION_POLL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match with_store(|| storage.revocation_count()).await {
            Ok(count) => {
                revocations.send_if_modified(|seen| {
                    let moved = *seen != count;
                    *seen = count;
                    moved
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot read revocations"),
        }
    }
}

/// Purges records whose referral grace period ran out, every [`SCOPE_SWEEP`].
async fn sweep_scope(storage: Arc<dyn RelayStorage>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(SCOPE_SWEEP);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match with_store(|| storage.sweep_scope(storage.clock().now_ms())).await {
            Ok(0) => {}
            Ok(changed) => tracing::info!(changed, "referral grace periods ran out: records purged from scopes"),
            Err(e) => tracing::warn!(error = %e, "cannot sweep scopes"),
        }
    }
}

fn log_session_error(e: &Error) {
    match e {
        Error::Network { .. } => tracing::info!(error = %e.with_causes(), "connection lost"),
        _ => tracing::warn!(error = %e.with_causes(), "session failed"),
    }
}
