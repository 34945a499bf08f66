//! The sync transport: the log sync protocol of [`crate::sync`] over QUIC (quinn + rustls,
//! TLS 1.3, ALPN `yilian/1`).
//!
//! One connection per session. The child opens a bidirectional stream: child → parent carries
//! hello and pushes, parent → child carries the welcome, acks and refusals (control). The parent
//! opens a unidirectional stream for the bulk of the pull (log batches, snapshots of documents
//! that entered the scope) so that acks of the child's push are never queued behind it: push and
//! pull overlap. Tuned for poor mobile links: BBR congestion control, keep-alive 15 s, idle
//! timeout 60 s, 0-RTT on reconnect (a hello and idempotent pushes are safe to replay).

mod child;
mod framed;
mod ingest;
mod parent;
mod tls;

pub use child::{
    ANSWER_TIMEOUT, Enrollment, NUDGE_AFTER, SessionOptions, SessionProgress, SessionReport, WireStats, connect,
    connect_within, enroll, sync_over,
};
pub use ingest::{GROUP_PUSHES, IngestQueue};
pub use parent::{ServeOptions, refuse, serve_child, serve_enrollment};
pub use tls::{
    ALPN, Fingerprint, RELAY_SERVER_NAME, RelayIdentity, certificate_key, client_tls, device_certificate,
    device_key_of, server_tls,
};

use crate::{Error, Result};
use std::sync::Arc;
use std::time::Duration;

/// Keep-alive: often enough to hold NAT bindings on mobile networks, rarely enough to spare the
/// battery.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A connection silent this long is dead (several lost keep-alives on a 2G link).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// QUIC transport settings for poor links.
pub fn transport_config() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(IDLE_TIMEOUT.as_millis() as u32))));
    // BBR paces by measured bandwidth and RTT instead of backing off on every random loss, which
    // is what a lossy 2G/4G link needs. Measured on the emulated 2g link (300 residents, first
    // sync): BBR 197 s, Cubic 186 s, NewReno 191 s; BBR overshoots the bottleneck queue (about
    // half its packets dropped there on long transfers) but finishes as fast.
    transport.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    // Path MTU probes cost several full-size datagrams on every connection (about 6 KB, more than
    // an idle sync itself) to gain a few percent of header overhead on bulk transfers: not worth
    // it on metered 2G links. Datagrams stay at QUIC's safe 1200 bytes.
    transport.mtu_discovery_config(None);
    transport.datagram_receive_buffer_size(Some(DATAGRAM_BUFFER));
    transport
}

/// Bytes of QUIC DATAGRAMs a connection holds unread. The protocol reads none: a child sends
/// one-byte datagrams only to carry its acknowledgements after a silence
/// ([`NUDGE_AFTER`]), and the oldest are dropped unread. quinn's default holds 1.25 MB
/// per connection, which a relay with a thousand phones must not let them fill.
pub const DATAGRAM_BUFFER: usize = 4 * 1024;

/// The relay's QUIC server configuration.
pub fn server_config(identity: &RelayIdentity) -> Result<quinn::ServerConfig> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_tls(identity)?)
        .map_err(|e| Error::tls_caused("relay quic tls", e))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}

/// The relay's QUIC endpoint on `listen`, serving with `identity`. Its stateless-reset key is
/// derived from the identity's private key, so a relay restarted on the same data directory still
/// answers packets of connections it lost in the restart with a reset the phones recognise: they
/// drop the dead connection at their next packet and reconnect, instead of waiting out the idle
/// timeout.
pub fn relay_endpoint(identity: &RelayIdentity, listen: std::net::SocketAddr) -> Result<quinn::Endpoint> {
    use sha2::{Digest, Sha256};
    let secret =
        Sha256::new().chain_update(b"yilian quic stateless reset v1").chain_update(&identity.key_der).finalize();
    let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    let config = quinn::EndpointConfig::new(Arc::new(reset_key));
    let socket = udp_socket(listen)?;
    Ok(quinn::Endpoint::new(config, Some(server_config(identity)?), socket, Arc::new(quinn::TokioRuntime))?)
}

/// Socket buffers asked for on a UDP socket that carries many connections (the kernel caps them
/// at `net.core.rmem_max` / `wmem_max`). With the default (about 200 KiB) a relay receiving
/// from 1,000 phones at once dropped half its datagrams at the socket (the kernel's
/// `RcvbufErrors`), and every drop cost a QUIC loss-recovery delay.
pub const UDP_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// A UDP socket bound to `addr` with [`UDP_BUFFER_BYTES`] of buffers (or what the kernel allows).
pub fn udp_socket(addr: std::net::SocketAddr) -> Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer still works, only less well under bursts.
    if let Err(e) = socket.set_recv_buffer_size(UDP_BUFFER_BYTES) {
        tracing::warn!(error = %e, "could not enlarge the UDP receive buffer");
    }
    if let Err(e) = socket.set_send_buffer_size(UDP_BUFFER_BYTES) {
        tracing::warn!(error = %e, "could not enlarge the UDP send buffer");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A client QUIC endpoint on `bind` for many connections at once (an edge hub's or a test's
/// simulated phones), with [`UDP_BUFFER_BYTES`] socket buffers.
pub fn client_endpoint(bind: std::net::SocketAddr) -> Result<quinn::Endpoint> {
    let socket = udp_socket(bind)?;
    Ok(quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, Arc::new(quinn::TokioRuntime))?)
}

/// A device's QUIC client configuration, pinning the relay and presenting the device's key.
/// Keep one per relay for the life of the app: it holds the session tickets that make reconnects
/// 0-RTT.
pub fn client_config(pinned: Fingerprint, key: &crate::identity::DeviceKey) -> Result<quinn::ClientConfig> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_tls(pinned, key)?)
        .map_err(|e| Error::tls_caused("device quic tls", e))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}

/// Application close code of a connection the relay refuses: the device is not enrolled, was
/// revoked, or claims another device's identity. The close reason says which.
pub const CLOSE_FORBIDDEN: u32 = 0x403;

/// A connection that ended: a refusal by the relay becomes [`Error::Forbidden`] with its reason,
/// anything else a network error (syncing again later will resume).
pub(crate) fn connection_error(what: &str, e: &quinn::ConnectionError) -> Error {
    if let quinn::ConnectionError::ApplicationClosed(close) = e
        && close.error_code == quinn::VarInt::from_u32(CLOSE_FORBIDDEN)
    {
        return Error::Forbidden { reason: String::from_utf8_lossy(&close.reason).into_owned() };
    }
    Error::network_caused(what, e.clone())
}

/// A network error saying what failed, with the error underneath as its source.
pub(crate) fn network<E: std::error::Error + Send + Sync + 'static>(what: &str) -> impl Fn(E) -> Error + '_ {
    move |e| Error::network_caused(what, e)
}

/// Callers of one process that may be inside store calls at once (see [`with_store`]).
const STORE_TURNS: usize = 4;

static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(STORE_TURNS);

/// Runs a store call from async code: waits (asynchronously) for one of a few turns, then runs
/// it where it may block. A store serves one caller at a time, so more callers waiting inside
/// would only hold threads: with 1,000 phones arriving at once, blocked callers used up the
/// runtime's threads, the QUIC endpoint stopped reading its socket and the kernel dropped
/// datagrams by the ten thousand (measured with the relay load test).
pub async fn with_store<T>(f: impl FnOnce() -> T) -> T {
    // The semaphore is never closed, so a turn always comes.
    let _turn = TURNS.acquire().await.ok();
    blocking(f)
}

/// Runs a store call that may block on SQLite without stalling the other tasks of a
/// multi-threaded runtime.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The first address of a relay given as `host:port` (looked up at every call, so DNS changes
/// are followed).
pub async fn resolve(relay: &str) -> Result<std::net::SocketAddr> {
    let mut addrs = tokio::net::lookup_host(relay)
        .await
        .map_err(|e| Error::network_caused(format!("cannot resolve {relay}"), e))?;
    addrs.next().ok_or_else(|| Error::network(format!("{relay} has no address")))
}
