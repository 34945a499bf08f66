//! What the relay counts for `/metrics` (Prometheus text format, through `prometheus-client`):
//! connected devices, sessions and how they ended, sync errors by kind, changes ingested, bytes
//! on the wire, session durations, refused connections, and the store's size.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;
use yilian_core::net::IngestQueue;
use yilian_core::{Error, StoreContention};

/// A label with one value: the kind of error, the direction of bytes, the outcome of a session...
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// The value.
    pub kind: String,
}

/// The relay's counters. Shared (`Arc`) by the QUIC side, which moves them, and the HTTP side,
/// which renders them.
pub struct RelayMetrics {
    registry: Registry,
    connected: Gauge,
    sessions: Family<Kind, Counter>,
    errors: Family<Kind, Counter>,
    refused: Family<Kind, Counter>,
    device_changes: Gauge<u64, AtomicU64>,
    bytes: Family<Kind, Counter>,
    duration: Histogram,
    store_bytes: Gauge<u64, AtomicU64>,
    store_waited: Counter<f64, AtomicU64>,
    store_held: Counter<f64, AtomicU64>,
    store_taken: Counter<u64, AtomicU64>,
    /// The store's totals at the last scrape (concurrent scrapes move the counters once).
    contention_seen: std::sync::Mutex<StoreContention>,
    /// Where the sessions' pushes wait to be stored together (served with these metrics).
    ingest: Arc<IngestQueue>,
    ingest_groups: Counter<u64, AtomicU64>,
    ingest_pushes: Counter<u64, AtomicU64>,
    ingest_queued: Gauge<u64, AtomicU64>,
    /// The queue's totals (groups, pushes) at the last scrape.
    ingest_seen: std::sync::Mutex<(u64, u64)>,
}

impl Default for RelayMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("yilian_relay");
        let connected = Gauge::default();
        registry.register("connected_devices", "Devices with a sync session open now", connected.clone());
        let sessions = Family::<Kind, Counter>::default();
        registry.register("sessions", "Sync sessions ended, by outcome (ok, error)", sessions.clone());
        let errors = Family::<Kind, Counter>::default();
        registry.register("sync_errors", "Sync sessions that failed, by kind of error", errors.clone());
        let refused = Family::<Kind, Counter>::default();
        registry.register(
            "refused_connections",
            "Connections refused, by reason (revoked, no_certificate, directory)",
            refused.clone(),
        );
        // Read from the store at each scrape: exact, and right across restarts and sessions
        // that end with a broken link (most live sessions do).
        let device_changes = Gauge::<u64, AtomicU64>::default();
        registry.register("ingested_changes", "Changes received from devices and stored", device_changes.clone());
        let bytes = Family::<Kind, Counter>::default();
        registry.register("udp_bytes", "UDP bytes of device connections, by direction (in, out)", bytes.clone());
        let duration = Histogram::new(exponential_buckets(0.01, 4.0, 10));
        registry.register("session_duration_seconds", "How long device connections lasted", duration.clone());
        let store_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register("store_bytes", "Size of the relay's database", store_bytes.clone());
        // The store has one writer connection that every session takes in turn: how long they
        // waited for it and held it says whether the store is what limits the relay.
        let store_waited = Counter::<f64, AtomicU64>::default();
        registry.register(
            "store_wait_seconds",
            "Time sessions and API calls waited for the store's connection, summed over callers",
            store_waited.clone(),
        );
        let store_held = Counter::<f64, AtomicU64>::default();
        registry.register("store_busy_seconds", "Time the store's connection was held", store_held.clone());
        let store_taken = Counter::<u64, AtomicU64>::default();
        registry.register("store_acquisitions", "Times the store's connection was taken", store_taken.clone());
        // Pushes stored together share a transaction and its fsync: pushes / groups says how
        // many did, on average, and a queue that stays long says the store cannot keep up.
        let ingest_groups = Counter::<u64, AtomicU64>::default();
        registry.register("ingest_groups", "Transactions that stored devices' pushes", ingest_groups.clone());
        let ingest_pushes = Counter::<u64, AtomicU64>::default();
        registry.register("ingest_pushes", "Devices' pushes stored (several per transaction)", ingest_pushes.clone());
        let ingest_queued = Gauge::<u64, AtomicU64>::default();
        registry.register("ingest_queued", "Devices' pushes waiting to be stored now", ingest_queued.clone());
        RelayMetrics {
            registry,
            connected,
            sessions,
            errors,
            refused,
            device_changes,
            bytes,
            duration,
            store_bytes,
            store_waited,
            store_held,
            store_taken,
            contention_seen: std::sync::Mutex::default(),
            ingest: Arc::default(),
            ingest_groups,
            ingest_pushes,
            ingest_queued,
            ingest_seen: std::sync::Mutex::default(),
        }
    }
}

fn kind(value: &str) -> Kind {
    Kind { kind: value.to_string() }
}

/// The kind label of a session error.
pub fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Network { .. } => "network",
        Error::Sync { .. } => "protocol",
        Error::Frame(_) => "frame",
        Error::Forbidden { .. } => "forbidden",
        Error::BadChange { .. } => "bad_change",
        Error::Storage(_) | Error::Io(_) => "storage",
        Error::Tls { .. } => "tls",
        _ => "other",
    }
}

/// What the store tells the metrics at each scrape.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreFigures {
    /// Size of the database.
    pub bytes: u64,
    /// Changes received from devices and stored.
    pub device_changes: u64,
    /// Waits for and holds of the store's connection since the relay started.
    pub contention: StoreContention,
}

/// Counts one device connection while it lasts: connected now, then how it ended.
pub struct SessionMeter<'a> {
    metrics: &'a RelayMetrics,
    started: Instant,
}

impl RelayMetrics {
    /// A device's session starts.
    pub fn session_started(&self) -> SessionMeter<'_> {
        self.connected.inc();
        SessionMeter { metrics: self, started: Instant::now() }
    }

    /// A connection was refused for `reason`.
    pub fn refused(&self, reason: &str) {
        self.refused.get_or_create(&kind(reason)).inc();
    }

    /// The queue the relay's sessions store their pushes through.
    pub fn ingest(&self) -> Arc<IngestQueue> {
        self.ingest.clone()
    }

    /// The metrics in Prometheus text format, with the store's figures as of now.
    pub fn render(&self, store: StoreFigures) -> String {
        self.store_bytes.set(store.bytes);
        self.device_changes.set(store.device_changes);
        // The store keeps totals; the counters move by what was added since the last scrape.
        {
            let mut seen = self.contention_seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = store.contention;
            self.store_waited.inc_by(now.waited.saturating_sub(seen.waited).as_secs_f64());
            self.store_held.inc_by(now.held.saturating_sub(seen.held).as_secs_f64());
            self.store_taken.inc_by(now.acquisitions.saturating_sub(seen.acquisitions));
            *seen = now;
        }
        {
            let mut seen = self.ingest_seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = self.ingest.figures();
            self.ingest_groups.inc_by(now.0.saturating_sub(seen.0));
            self.ingest_pushes.inc_by(now.1.saturating_sub(seen.1));
            *seen = now;
        }
        self.ingest_queued.set(self.ingest.queued() as u64);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl SessionMeter<'_> {
    /// The session on `conn` ended with `result`; the connection's UDP bytes are counted too.
    pub fn ended(self, result: Result<(), &Error>, conn: &quinn::Connection) {
        let m = self.metrics;
        let stats = conn.stats();
        let (udp_in, udp_out) = (stats.udp_rx.bytes, stats.udp_tx.bytes);
        match result {
            Ok(()) => {
                m.sessions.get_or_create(&kind("ok")).inc();
            }
            Err(e) => {
                m.sessions.get_or_create(&kind("error")).inc();
                m.errors.get_or_create(&kind(error_kind(e))).inc();
            }
        }
        m.bytes.get_or_create(&kind("in")).inc_by(udp_in);
        m.bytes.get_or_create(&kind("out")).inc_by(udp_out);
    }
}

impl Drop for SessionMeter<'_> {
    fn drop(&mut self) {
        self.metrics.connected.dec();
        self.metrics.duration.observe(self.started.elapsed().as_secs_f64());
    }
}
