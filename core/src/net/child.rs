//! The child side over QUIC: a device (or an edge hub towards its upstream) runs sessions of the
//! log sync protocol on a connection to its parent.

use super::framed::{FramedRecv, FramedSend, ZERO_RTT_REJECTED};
use super::{RELAY_SERVER_NAME, blocking, connection_error, network};
use crate::sync::{ChildDriver, Message, SessionOutcome};
use crate::{Error, Result, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a connection attempt, or the parent's first answer, may take before the attempt
/// counts as failed (a 2G handshake takes one to two seconds).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// While a session is not yet synced and nothing has arrived from the parent for this long, the
/// child sends it a one-byte QUIC DATAGRAM, which the parent ignores ([`super::DATAGRAM_BUFFER`]).
/// The packet carries the child's acknowledgements: after an outage, the first one through tells
/// the parent at once what reached the child and what was lost, and the parent sends again. Without
/// it the parent waits for its next loss probe, whose interval doubles with every probe lost in the
/// outage (on the emulated flapping 2G link, several seconds after the link came back).
pub const NUDGE_AFTER: Duration = Duration::from_secs(1);

/// How to run one session.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// After syncing, stay connected: push new local edits and receive the parent's as they
    /// happen, until `stop` is cancelled or the connection breaks.
    pub live: bool,
    /// Fault injection (tests, benchmarks): close the connection abruptly once this many
    /// protocol bytes have moved, both ways together.
    pub cut_after_bytes: Option<u64>,
}

/// Progress of a running session, for the UI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionProgress {
    /// Changes sent and received so far.
    pub items_done: u64,
    /// Changes to send and receive in all (known once the parent's welcome arrived).
    pub items_total: u64,
    /// Bytes of those changes done (uncompressed).
    pub bytes_done: u64,
    /// Bytes of those changes in all.
    pub bytes_total: u64,
    /// Everything as of the session start is exchanged and the parent acknowledged all our
    /// changes durably.
    pub synced: bool,
}

/// UDP-level counters of a connection: what the radio actually carried, QUIC handshake,
/// headers, acknowledgements and retransmissions included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireStats {
    /// UDP payload bytes sent.
    pub tx_bytes: u64,
    /// UDP payload bytes received.
    pub rx_bytes: u64,
    /// Datagrams sent.
    pub tx_datagrams: u64,
    /// Datagrams received.
    pub rx_datagrams: u64,
    /// Smoothed round-trip time at the end.
    pub rtt: Duration,
}

impl WireStats {
    /// The counters of `conn` so far.
    pub fn of(conn: &quinn::Connection) -> WireStats {
        let stats = conn.stats();
        WireStats {
            tx_bytes: stats.udp_tx.bytes,
            rx_bytes: stats.udp_rx.bytes,
            tx_datagrams: stats.udp_tx.datagrams,
            rx_datagrams: stats.udp_rx.datagrams,
            rtt: conn.rtt(),
        }
    }
}

/// What one session did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionReport {
    /// The protocol's view (synced, changes sent and received, refusals).
    pub outcome: SessionOutcome,
    /// Protocol bytes child → parent (frames, after compression).
    pub bytes_up: u64,
    /// Protocol bytes parent → child.
    pub bytes_down: u64,
    /// Request/answer rounds as the child saw them: answers that arrived after the child had sent
    /// something new. An idle sync is 1.
    pub rounds: u32,
    /// Time from the first byte sent to the end.
    pub elapsed: Duration,
}

/// Opens a connection to the parent at `addr`, in 0-RTT when a session ticket from an earlier
/// connection allows it (the returned flag says so). Gives up after [`ANSWER_TIMEOUT`].
pub async fn connect(
    endpoint: &quinn::Endpoint,
    config: &quinn::ClientConfig,
    addr: SocketAddr,
) -> Result<(quinn::Connection, bool)> {
    connect_within(endpoint, config, addr, ANSWER_TIMEOUT).await
}

/// [`connect`] giving up after `timeout` (an unreachable relay does not answer at all).
pub async fn connect_within(
    endpoint: &quinn::Endpoint,
    config: &quinn::ClientConfig,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(quinn::Connection, bool)> {
    let connecting = endpoint.connect_with(config.clone(), addr, RELAY_SERVER_NAME).map_err(network("connect"))?;
    match connecting.into_0rtt() {
        Ok((conn, _accepted)) => Ok((conn, true)),
        Err(connecting) => match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(conn)) => Ok((conn, false)),
            Ok(Err(e)) => Err(connection_error("handshake", &e)),
            Err(_) => Err(Error::network(format!("no answer from {addr} within {timeout:?}"))),
        },
    }
}

/// What the relay answered to an enrollment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrollment {
    /// The device id enrolled.
    pub device: String,
    /// The practitioner it belongs to.
    pub practitioner: String,
    /// The organization it works for.
    pub organization: String,
}

/// Enrolls this device with the relay at `addr`: presents the one-time `code` an admin issued
/// and asks to be known as `device`. `config` must carry the device's key (see
/// [`super::client_config`]): that key is what the relay records. A refused code (unknown,
/// used, expired) comes back as [`Error::Forbidden`] with the relay's reason.
pub async fn enroll(
    endpoint: &quinn::Endpoint,
    config: &quinn::ClientConfig,
    addr: SocketAddr,
    code: &str,
    device: &str,
) -> Result<Enrollment> {
    let (conn, _) = connect(endpoint, config, addr).await?;
    let result = async {
        let (send, recv) = conn.open_bi().await.map_err(|e| connection_error("open stream", &e))?;
        let mut tasks = tokio::task::JoinSet::new();
        let bytes = Arc::new(AtomicU64::new(0));
        let out = FramedSend::start(send, &mut tasks, None, bytes.clone(), None);
        out.send(Message::Enroll { code: code.to_string(), device: device.to_string() });
        let mut input = FramedRecv::new(recv, bytes);
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, input.next())
            .await
            .map_err(|_| Error::network(format!("no answer to the enrollment within {ANSWER_TIMEOUT:?}")))?;
        match answer {
            Ok(Some(Message::Enrolled { device, practitioner, organization })) => {
                Ok(Enrollment { device, practitioner, organization })
            }
            Ok(Some(Message::Error { message, .. })) => Err(Error::Forbidden { reason: message }),
            Ok(Some(other)) => Err(Error::Sync {
                reason: format!("the relay answered the enrollment with {}", crate::sync::message_name(&other)),
            }),
            Ok(None) => Err(Error::Sync { reason: "the relay closed the enrollment without an answer".into() }),
            Err(e) => Err(e),
        }
    }
    .await;
    conn.close(quinn::VarInt::from_u32(0), b"enrollment done");
    result
}

/// Runs one session of `store` (peer id `me`) with its parent (known as `parent` in the store's
/// cursors) over `conn`. Returns when synced (or, in live mode, when `stop` is cancelled); an
/// error when the connection breaks or the parent ends the session. Progress is reported to
/// `progress` after every step. If 0-RTT data was rejected the session runs again once, in 1-RTT;
/// so does a session that found this device's log restored from a backup (the parent then takes
/// it all again).
pub async fn sync_over(
    conn: &quinn::Connection,
    store: &Store,
    me: &str,
    parent: &str,
    options: &SessionOptions,
    stop: &CancellationToken,
    progress: &mut (dyn FnMut(&SessionProgress) + Send),
) -> Result<SessionReport> {
    match session(conn, store, me, parent, options, stop, progress).await {
        Err(Error::Network { reason, .. }) if reason.ends_with(ZERO_RTT_REJECTED) => {
            session(conn, store, me, parent, options, stop, progress).await
        }
        // Our log was found restored: the next hello says so, and the parent takes it all again.
        Ok(report) if report.outcome.restart => session(conn, store, me, parent, options, stop, progress).await,
        other => other,
    }
}

async fn session(
    conn: &quinn::Connection,
    store: &Store,
    me: &str,
    parent: &str,
    options: &SessionOptions,
    stop: &CancellationToken,
    progress: &mut (dyn FnMut(&SessionProgress) + Send),
) -> Result<SessionReport> {
    let started = Instant::now();
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (send, recv) = conn.open_bi().await.map_err(|e| connection_error("open stream", &e))?;
    let mut tasks = tokio::task::JoinSet::new();
    let control_out = FramedSend::start(send, &mut tasks, None, up.clone(), None);
    let mut control_in = FramedRecv::new(recv, down.clone());
    let mut bulk_in: Option<FramedRecv> = None;
    // Whether `bulk_in` has named this session (its first message): a stream of an earlier session
    // on this connection (one whose 0-RTT data was rejected, say) is dropped unread.
    let mut bulk_bound = false;
    let mut held = Vec::new();
    let mut events = store.watch();
    let mut local_edits = events.borrow_and_update().local_edits;

    let session_id = crate::sync::next_session_number();
    let (mut driver, hello) = blocking(|| ChildDriver::start_session(store, me, parent, session_id))?;
    let mut state = Counters::default();
    state.send_all(&control_out, hello);
    let push_total = blocking(|| store.unacknowledged(parent))?;
    let deadline = tokio::time::sleep(ANSWER_TIMEOUT);
    tokio::pin!(deadline);
    let mut nudge = tokio::time::interval_at(tokio::time::Instant::now() + NUDGE_AFTER, NUDGE_AFTER);
    nudge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = conn.stats().udp_rx.datagrams;

    let result = loop {
        let welcomed = driver.session().is_welcomed();
        let report = progress_of(&driver, push_total);
        progress(&report);
        if let Some(reason) = driver.session().forbidden() {
            break Err(Error::Forbidden { reason: reason.to_string() });
        }
        if driver.outcome.restart {
            break Ok(());
        }
        if let Some(why) = driver.outcome.error.clone() {
            break Err(Error::Sync { reason: why });
        }
        if report.synced && !options.live {
            break Ok(());
        }
        if let Some(limit) = options.cut_after_bytes
            && up.load(Ordering::Relaxed) + down.load(Ordering::Relaxed) >= limit
        {
            conn.close(quinn::VarInt::from_u32(2), b"cut");
            break Err(Error::network(format!("connection cut after {limit} bytes (fault injection)")));
        }
        let incoming = tokio::select! {
            biased;
            _ = stop.cancelled() => break Ok(()),
            _ = &mut deadline, if !welcomed => {
                break Err(Error::network(format!("no welcome from the parent within {ANSWER_TIMEOUT:?}")));
            }
            message = control_in.next() => message,
            stream = conn.accept_uni(), if bulk_in.is_none() => {
                match stream {
                    Ok(stream) => {
                        bulk_in = Some(FramedRecv::new(stream, down.clone()));
                        bulk_bound = false;
                    }
                    Err(e) => break Err(read_error(&e)),
                }
                continue;
            }
            message = next_on(&mut bulk_in) => {
                if !bulk_bound {
                    match message {
                        Ok(Some(Message::Stream { session })) if session == session_id => bulk_bound = true,
                        // Another session's stream, or one that does not say: not ours to read.
                        _ => bulk_in = None,
                    }
                    continue;
                }
                message
            }
            _ = nudge.tick(), if !report.synced => {
                let now_heard = conn.stats().udp_rx.datagrams;
                if now_heard == heard {
                    // Best effort: a parent that takes no datagrams, or a full send buffer, only
                    // means no nudge this time.
                    let _ = conn.send_datagram(vec![0u8].into());
                }
                heard = now_heard;
                continue;
            }
            changed = events.changed(), if options.live && welcomed => {
                if changed.is_err() {
                    break Ok(());
                }
                let now = events.borrow_and_update().local_edits;
                if now != local_edits {
                    local_edits = now;
                    let out = blocking(|| driver.local_changed())?;
                    state.send_all(&control_out, out);
                }
                continue;
            }
        };
        let message = match incoming {
            Ok(Some(message)) => message,
            Ok(None) => break Err(Error::Sync { reason: "the parent closed the session".into() }),
            Err(e) => break Err(e),
        };
        state.received();
        if message.is_bulk() && !welcomed {
            held.push(message); // the pull stream overtook the welcome
            continue;
        }
        let out = blocking(|| driver.on_message(message))?;
        state.send_all(&control_out, out);
        if !welcomed && driver.session().is_welcomed() {
            for message in std::mem::take(&mut held) {
                let out = blocking(|| driver.on_message(message))?;
                state.send_all(&control_out, out);
            }
        }
    };
    drop(control_out);
    if result.is_err() {
        // Let an error message reach the parent before the connection goes.
        let _ = tokio::time::timeout(Duration::from_millis(200), async { while tasks.join_next().await.is_some() {} })
            .await;
    }
    result?;
    Ok(SessionReport {
        outcome: driver.outcome.clone(),
        bytes_up: up.load(Ordering::Relaxed),
        bytes_down: down.load(Ordering::Relaxed),
        rounds: state.rounds,
        elapsed: started.elapsed(),
    })
}

async fn next_on(stream: &mut Option<FramedRecv>) -> Result<Option<Message>> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

fn read_error(e: &quinn::ConnectionError) -> Error {
    connection_error("connection", e)
}

fn progress_of(driver: &ChildDriver<'_>, push_total: (u64, u64)) -> SessionProgress {
    let (pull_items, pull_bytes) = driver.session().pull_pending();
    let outcome = &driver.outcome;
    SessionProgress {
        items_done: (outcome.sent + outcome.received) as u64,
        items_total: push_total.0 + pull_items,
        bytes_done: outcome.change_bytes,
        bytes_total: push_total.1 + pull_bytes,
        synced: driver.session().is_synced(),
    }
}

/// Round counting: an answer that arrives after we sent something new starts a round.
#[derive(Default)]
struct Counters {
    rounds: u32,
    sent_since_answer: bool,
}

impl Counters {
    fn send(&mut self, out: &FramedSend, message: Message) {
        out.send(message);
        self.sent_since_answer = true;
    }

    fn send_all(&mut self, out: &FramedSend, messages: Vec<Message>) {
        for message in messages {
            self.send(out, message);
        }
    }

    fn received(&mut self) {
        if self.sent_since_answer {
            self.rounds += 1;
            self.sent_since_answer = false;
        }
    }
}
