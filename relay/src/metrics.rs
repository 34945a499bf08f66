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
    /// Where the relay's sessions store their pushes together (its totals are read at a scrape).
    ingest: Arc<IngestQueue>,
    ingest_groups: Counter<u64, AtomicU64>,
    ingest_pushes: Counter<u64, AtomicU64>,
    ingest_queued: Gauge<u64, AtomicU64>,
    /// The store's time storing pushes, by what it went on ([`yilian_core::IngestTime::KINDS`]).
    ingest_seconds: Family<Kind, Counter<f64, AtomicU64>>,
    /// The totals read at the last scrape: the counters move by the difference (under the lock,
    /// so concurrent scrapes move them once).
    seen: std::sync::Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    contention: StoreContention,
    /// Groups and pushes of the ingest queue.
    ingest: (u64, u64),
}

/// Registers `metric` under `name` and returns it.
fn registered<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Default for RelayMetrics {
    /// Metrics with an ingest queue of their own (tests).
    fn default() -> Self {
        RelayMetrics::new(Arc::default())
    }
}

impl RelayMetrics {
    /// The relay's metrics; `ingest` is the queue its sessions store pushes through.
    pub fn new(ingest: Arc<IngestQueue>) -> Self {
        let mut registry = Registry::with_prefix("yilian_relay");
        let r = &mut registry;
        let connected = registered(r, "connected_devices", "Devices with a sync session open now", Gauge::default());
        let sessions = registered(
            r,
            "sessions",
            "Sync sessions ended, by outcome (ok, error)",
            Family::<Kind, Counter>::default(),
        );
        let errors = registered(r, "sync_errors", "Sync sessions that failed, by kind of error", Family::default());
        let refused = registered(
            r,
            "refused_connections",
            "Connections refused, by reason (revoked, no_certificate, directory)",
            Family::default(),
        );
        // Read from the store at each scrape: exact, and right across restarts and sessions
        // that end with a broken link (most live sessions do).
        let device_changes =
            registered(r, "ingested_changes", "Changes received from devices and stored", Gauge::default());
        let bytes =
            registered(r, "udp_bytes", "UDP bytes of device connections, by direction (in, out)", Family::default());
        let duration = registered(
            r,
            "session_duration_seconds",
            "How long device connections lasted",
            Histogram::new(exponential_buckets(0.01, 4.0, 10)),
        );
        let store_bytes = registered(r, "store_bytes", "Size of the relay's database", Gauge::default());
        // The store has one writer connection that every session takes in turn: how long they
        // waited for it and held it says whether the store is what limits the relay.
        let store_waited = registered(
            r,
            "store_wait_seconds",
            "Time sessions and API calls waited for the store's connection, summed over callers",
            Counter::<f64, AtomicU64>::default(),
        );
        let store_held =
            registered(r, "store_busy_seconds", "Time the store's connection was held", Counter::default());
        let store_taken =
            registered(r, "store_acquisitions", "Times the store's connection was taken", Counter::default());
        // Pushes stored together share a transaction and its fsync: pushes / groups says how
        // many did, on average, and a queue that stays long says the store cannot keep up.
        let ingest_groups =
            registered(r, "ingest_groups", "Transactions that stored devices' pushes", Counter::default());
        let ingest_pushes =
            registered(r, "ingest_pushes", "Devices' pushes stored (several per transaction)", Counter::default());
        let ingest_queued =
            registered(r, "ingest_queued", "Devices' pushes waiting to be stored now", Gauge::default());
        // Of the time the store was held storing pushes, what it went on: automerge (in
        // parallel), the checks and writes (one core), or the commit and its fsync.
        let ingest_seconds = registered(
            r,
            "ingest_seconds",
            "Time the store spent storing devices' pushes, by kind: applying, writing, committing",
            Family::<Kind, Counter<f64, AtomicU64>>::default(),
        );
        // Every series a label can take exists from the start at 0, so a dashboard's rate() and
        // alert see it before its first event.
        for outcome in ["ok", "error"] {
            drop(sessions.get_or_create(&kind(outcome)));
        }
        for error in ERROR_KINDS {
            drop(errors.get_or_create(&kind(error)));
        }
        for reason in REFUSALS {
            drop(refused.get_or_create(&kind(reason)));
        }
        for direction in ["in", "out"] {
            drop(bytes.get_or_create(&kind(direction)));
        }
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
            ingest,
            ingest_groups,
            ingest_pushes,
            ingest_queued,
            ingest_seconds,
            seen: std::sync::Mutex::default(),
        }
    }
}

fn kind(value: &str) -> Kind {
    Kind { kind: value.to_string() }
}

/// Every value of the `kind` label of `sync_errors` ([`error_kind`]).
pub const ERROR_KINDS: [&str; 8] =
    ["network", "protocol", "frame", "forbidden", "bad_change", "storage", "tls", "other"];

/// Every reason a connection is refused (`refused_connections`): no device certificate, a revoked
/// device, the directory could not be read.
pub const REFUSALS: [&str; 3] = ["no_certificate", "revoked", "directory"];

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

    /// The metrics in Prometheus text format, with the store's figures as of now.
    pub fn render(&self, store: StoreFigures) -> String {
        self.store_bytes.set(store.bytes);
        self.device_changes.set(store.device_changes);
        // The store and the queue keep totals; the counters move by what was added since the
        // last scrape.
        {
            let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let (now, was) = (store.contention, seen.contention);
            self.store_waited.inc_by(now.waited.saturating_sub(was.waited).as_secs_f64());
            self.store_held.inc_by(now.held.saturating_sub(was.held).as_secs_f64());
            self.store_taken.inc_by(now.acquisitions.saturating_sub(was.acquisitions));
            for ((name, total), (_, before)) in now.ingest.by_kind().into_iter().zip(was.ingest.by_kind()) {
                self.ingest_seconds.get_or_create(&kind(name)).inc_by(total.saturating_sub(before).as_secs_f64());
            }
            let ((groups, pushes), (groups_was, pushes_was)) = (self.ingest.figures(), seen.ingest);
            self.ingest_groups.inc_by(groups.saturating_sub(groups_was));
            self.ingest_pushes.inc_by(pushes.saturating_sub(pushes_was));
            *seen = Seen { contention: now, ingest: (groups, pushes) };
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
