//! The parent side over QUIC: the relay (or an edge hub) serving one child connection.

use super::framed::{FramedRecv, FramedSend};
use super::ingest::IngestQueue;
use super::{network, with_store};
use crate::sync::{ErrorCode, FrameError, Message, ParentDriver, ParentStep, ParentStorage, SessionOutcome};
use crate::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a connected child's session gathers commits that concern it before reading them
/// out: in a burst the store commits many times a second, and one batch of several commits
/// costs the relay one query and one frame, and the phone one transaction per record, instead
/// of one each per commit. Live updates reach a phone this much later at most.
const LIVE_GATHER: Duration = Duration::from_millis(100);

/// How a parent serves its children.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// This parent's peer id (sent in the welcome).
    pub me: String,
    /// The device this connection authenticated as (from its certificate): a hello that names
    /// another device is refused. `None` trusts the hello (in-process tools only).
    pub device: Option<String>,
    /// Where the sessions' pushes wait to be stored together: one per storage, shared by all
    /// the connections served from it.
    pub ingest: Arc<IngestQueue>,
}

impl ServeOptions {
    /// Options for a parent named `me`, with a queue of its own for the pushes.
    pub fn new(me: &str) -> ServeOptions {
        ServeOptions { me: me.to_string(), device: None, ingest: Arc::default() }
    }
}

/// Closes a connection the relay refuses, telling the device why (it sees
/// [`Error::Forbidden`] with `reason`).
pub fn refuse(conn: &quinn::Connection, reason: &str) {
    // A QUIC close reason must fit in one packet.
    let mut end = reason.len().min(512);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    conn.close(quinn::VarInt::from_u32(super::CLOSE_FORBIDDEN), &reason.as_bytes()[..end]);
}

/// Serves a connection from a device that is not enrolled: the only thing it may do is present
/// an enrollment code. `enroll(code, device_id)` records the device (with the key of its
/// certificate) or says why not; the answer goes back to the device and the connection closes.
/// Returns the enrolled device, or the reason it was refused.
pub async fn serve_enrollment(
    conn: &quinn::Connection,
    enroll: &(dyn Fn(&str, &str) -> Result<crate::Device> + Sync),
) -> Result<crate::Device> {
    let first = async {
        let (send, recv) = conn.accept_bi().await.map_err(network("connection"))?;
        let mut input = FramedRecv::new(recv, Arc::new(AtomicU64::new(0)));
        Ok::<_, Error>((send, input.next().await?))
    };
    let (send, message) = match tokio::time::timeout(super::ANSWER_TIMEOUT, first).await {
        Ok(result) => result?,
        Err(_) => {
            refuse(conn, "device is not enrolled and presented no enrollment code");
            return Err(Error::Forbidden { reason: "no enrollment code presented".into() });
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    let control = FramedSend::start(send, &mut tasks, None, Arc::new(AtomicU64::new(0)), None);
    let result = match message {
        Some(Message::Enroll { code, device }) => with_store(|| enroll(&code, &device)).await,
        _ => Err(Error::Forbidden {
            reason: "device is not enrolled: enroll it first with a code from the consortium admin".into(),
        }),
    };
    let answer = match &result {
        Ok(device) => Message::Enrolled {
            device: device.device_id.clone(),
            practitioner: device.practitioner_id.clone(),
            organization: device.organization_id.clone(),
        },
        Err(Error::Forbidden { reason }) => Message::Error { code: ErrorCode::Forbidden, message: reason.clone() },
        Err(e @ (Error::Validation { .. } | Error::AlreadyExists { .. })) => {
            Message::Error { code: ErrorCode::Forbidden, message: e.to_string() }
        }
        Err(_) => ParentDriver::internal_error("the relay could not enroll this device; try again later"),
    };
    control.send(answer);
    drop(control);
    let _ = tokio::time::timeout(Duration::from_secs(2), async { while tasks.join_next().await.is_some() {} }).await;
    result
}

/// Serves one child connection: runs the parent side of each session the child opens on it
/// (one at a time) until the child closes, the connection breaks or `stop` is cancelled. While a
/// session is open it is live: changes that reach the store (other children's pushes, documents
/// granted to this child) are streamed to the child as they commit.
///
/// Returns the last session's outcome. Errors from the child (a malformed frame, a protocol
/// violation) are sent to the child, logged, and end only this connection.
pub async fn serve_child(
    conn: quinn::Connection,
    storage: &dyn ParentStorage,
    options: &ServeOptions,
    stop: &CancellationToken,
) -> Result<SessionOutcome> {
    let mut last = SessionOutcome::default();
    loop {
        let (send, recv) = tokio::select! {
            _ = stop.cancelled() => return Ok(last),
            stream = conn.accept_bi() => match stream {
                Ok(stream) => stream,
                Err(quinn::ConnectionError::ApplicationClosed(_) | quinn::ConnectionError::LocallyClosed) => {
                    return Ok(last);
                }
                Err(e) => return Err(network("connection")(e)),
            },
        };
        last = session(&conn, send, recv, storage, options, stop).await?;
    }
}

/// Handles a message from the child; a push is stored with the other sessions' (see
/// [`IngestQueue`]).
async fn handle(
    driver: &mut ParentDriver<'_>,
    message: Message,
    storage: &dyn ParentStorage,
    ingest: &IngestQueue,
) -> Result<Vec<Message>> {
    let mut step = with_store(|| driver.begin(message)).await?;
    loop {
        match step {
            ParentStep::Send(send) => return Ok(send),
            ParentStep::Store(push) => {
                let report = ingest.ingest(storage, push).await;
                step = with_store(|| driver.stored(report)).await?;
            }
        }
    }
}

async fn session(
    conn: &quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    storage: &dyn ParentStorage,
    options: &ServeOptions,
    stop: &CancellationToken,
) -> Result<SessionOutcome> {
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = tokio::task::JoinSet::new();
    let control = FramedSend::start(send, &mut tasks, None, down.clone(), None);
    let mut bulk: Option<FramedSend> = None;
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel();
    let mut input = FramedRecv::new(recv, up);
    let mut driver = ParentDriver::new(storage, &options.me);
    let mut events = storage.watch();
    // What the store had announced when the child said hello: later commits that concern it
    // (or the scope) wake the session; the rest pass it by without a query.
    let (mut seen_scope, mut seen_touched) = (events.borrow_and_update().scope_changes, 0);
    // Commits gathered for the child: when to read them out, and whether the scope changed.
    let mut gathered: Option<(tokio::time::Instant, bool)> = None;

    let result: Result<()> = loop {
        if let Some(why) = driver.outcome.error.clone() {
            break Err(Error::Sync { reason: why });
        }
        let welcomed = driver.session().is_welcomed();
        let gathering = async {
            match gathered {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let out = tokio::select! {
            biased;
            _ = stop.cancelled() => break Ok(()),
            message = input.next() => match message {
                Ok(Some(Message::Hello { peer, .. })) if options.device.as_ref().is_some_and(|d| *d != peer) => {
                    let why = format!(
                        "hello names device {peer}, but this connection's certificate belongs to {}",
                        options.device.as_deref().unwrap_or_default()
                    );
                    control.send(Message::Error { code: ErrorCode::Forbidden, message: why.clone() });
                    break Err(Error::Forbidden { reason: why });
                }
                Ok(Some(message)) => {
                    if let Message::Hello { peer, .. } = &message {
                        let now = events.borrow_and_update();
                        (seen_scope, seen_touched) = (now.scope_changes, now.touched(peer));
                    }
                    handle(&mut driver, message, storage, &options.ingest).await
                }
                Ok(None) => break Ok(()), // the child finished its session
                Err(Error::Frame(e)) => {
                    let code = if matches!(e, FrameError::UnsupportedVersion { .. }) { ErrorCode::Version } else { ErrorCode::Protocol };
                    control.send(Message::Error { code, message: e.to_string() });
                    break Err(Error::Frame(e));
                }
                Err(e) => break Err(e),
            },
            Some(()) = sent_rx.recv() => with_store(|| driver.pull_sent()).await,
            changed = events.changed(), if welcomed => {
                if changed.is_err() {
                    break Ok(());
                }
                let (scope, touched) = {
                    let now = events.borrow_and_update();
                    (now.scope_changes, now.touched(driver.peer()))
                };
                if scope != seen_scope || touched != seen_touched {
                    let scope_changed = scope != seen_scope || gathered.is_some_and(|(_, s)| s);
                    let at = gathered.map_or_else(|| tokio::time::Instant::now() + LIVE_GATHER, |(at, _)| at);
                    gathered = Some((at, scope_changed));
                    (seen_scope, seen_touched) = (scope, touched);
                }
                Ok(Vec::new())
            }
            () = gathering => {
                let scope_changed = gathered.take().is_some_and(|(_, s)| s);
                with_store(|| driver.log_grew(scope_changed)).await
            }
        };
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                control.send(ParentDriver::internal_error("the relay could not serve this session; try again later"));
                break Err(e);
            }
        };
        if !welcomed && driver.session().is_welcomed() {
            tracing::Span::current().record("device", driver.peer());
        }
        for message in out {
            if message.is_bulk() {
                if bulk.is_none() {
                    let stream = conn.open_uni().await.map_err(network("open stream"))?;
                    let opened =
                        FramedSend::start(stream, &mut tasks, Some(sent_tx.clone()), down.clone(), Some(conn.clone()));
                    // The stream names its session first: a child never reads another session's.
                    opened.send(Message::Stream { session: driver.session().session_id() });
                    bulk = Some(opened);
                }
                if let Some(bulk) = &bulk {
                    bulk.send(message);
                }
            } else {
                control.send(message);
            }
        }
    };
    drop((control, bulk));
    // Let what was queued (an ack, an error for the child) leave before the session's streams go.
    let _ = tokio::time::timeout(Duration::from_secs(2), async { while tasks.join_next().await.is_some() {} }).await;
    match result {
        Ok(()) => Ok(driver.outcome),
        Err(e) => {
            tracing::warn!(child = %driver.peer(), error = %e.with_causes(), "session ended with an error");
            Err(e)
        }
    }
}
