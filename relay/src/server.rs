//! The relay's QUIC sync endpoint: accepts device connections and serves each with the parent
//! side of the sync protocol, live, over the relay's storage.

use crate::storage::RelayStorage;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use yilian_core::net::{Fingerprint, RelayIdentity, ServeOptions, serve_child, server_config};
use yilian_core::{Error, Result};

/// How to run a relay.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Where the database and the certificate live.
    pub data_dir: PathBuf,
    /// UDP address for QUIC (`0.0.0.0:4433`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// This relay's peer id in the protocol.
    pub name: String,
}

/// A running relay. Stop it with [`Relay::shutdown`].
pub struct Relay {
    endpoint: quinn::Endpoint,
    stop: CancellationToken,
    accept: tokio::task::JoinHandle<()>,
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
        let endpoint = quinn::Endpoint::server(server_config(&identity)?, config.listen)?;
        let addr = endpoint.local_addr()?;
        let stop = CancellationToken::new();
        let accept = tokio::spawn(accept_loop(
            endpoint.clone(),
            storage.clone(),
            ServeOptions { me: config.name.clone() },
            stop.clone(),
        ));
        tracing::info!(%addr, fingerprint = %identity.fingerprint(), "relay listening");
        Ok(Relay { endpoint, stop, accept, addr, fingerprint: identity.fingerprint(), storage })
    }

    /// Graceful shutdown: stop accepting, end every session, close the endpoint and wait until
    /// the peers have been told.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.accept.await {
            tracing::error!(error = %e, "accept loop failed");
        }
        self.endpoint.close(quinn::VarInt::from_u32(0), b"relay shutting down");
        self.endpoint.wait_idle().await;
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    storage: Arc<dyn RelayStorage>,
    options: ServeOptions,
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
        let (storage, options, stop) = (storage.clone(), options.clone(), stop.clone());
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
                match serve_child(conn.clone(), storage.as_ref(), &options, &stop).await {
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
            .instrument(span),
        );
    }
    // Sessions see `stop` and end; wait for them so nothing is cut mid-transaction.
    while connections.join_next().await.is_some() {}
}

fn log_session_error(e: &Error) {
    match e {
        Error::Network { .. } => tracing::info!(error = %e, "connection lost"),
        _ => tracing::warn!(error = %e, "session failed"),
    }
}
