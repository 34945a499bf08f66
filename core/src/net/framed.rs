//! Protocol frames over QUIC streams: a reader that decodes messages as bytes arrive, and a
//! writer task per stream so that reading never waits on a write (two peers blocked writing to
//! each other's full windows would deadlock).

use super::{connection_error, network};
use crate::sync::{FrameDecoder, FrameEncoder, Message, PAGE_LEVEL, page_level};
use crate::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// Reads messages from a stream.
pub(crate) struct FramedRecv {
    stream: quinn::RecvStream,
    decoder: FrameDecoder,
    buf: Vec<u8>,
    /// Protocol bytes read.
    pub(crate) bytes: Arc<AtomicU64>,
}

impl FramedRecv {
    pub(crate) fn new(stream: quinn::RecvStream, bytes: Arc<AtomicU64>) -> FramedRecv {
        FramedRecv { stream, decoder: FrameDecoder::new(), buf: vec![0; 64 * 1024], bytes }
    }

    /// The next message; `None` when the peer finished the stream. Cancel-safe: bytes already
    /// read stay in the decoder.
    pub(crate) async fn next(&mut self) -> Result<Option<Message>> {
        loop {
            if let Some(message) = self.decoder.next_message()? {
                return Ok(Some(message));
            }
            let read = match self.stream.read(&mut self.buf).await {
                Ok(read) => read,
                // The peer closed the connection on purpose, between frames: the session is over.
                Err(quinn::ReadError::ConnectionLost(quinn::ConnectionError::ApplicationClosed(close)))
                    if close.error_code == quinn::VarInt::from_u32(0) && self.decoder.pending() == 0 =>
                {
                    None
                }
                Err(quinn::ReadError::ZeroRttRejected) => return Err(zero_rtt_rejected()),
                Err(quinn::ReadError::ConnectionLost(e)) => return Err(connection_error("read", &e)),
                Err(e) => return Err(network("read")(e)),
            };
            match read {
                Some(n) => {
                    self.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    self.decoder.push(&self.buf[..n]);
                }
                None if self.decoder.pending() == 0 => return Ok(None),
                None => {
                    return Err(Error::Sync {
                        reason: format!("stream ended inside a frame ({} bytes left over)", self.decoder.pending()),
                    });
                }
            }
        }
    }
}

/// Sends messages on a stream from a task of its own, which also encodes them: a catch-up page
/// compressed hard for a slow link takes a core for a while, and that must hold back neither
/// the session nor the runtime (it runs on the blocking pool). Each pull batch written is
/// reported on `sent` so the session can pace reading against the network.
pub(crate) struct FramedSend {
    queue: mpsc::UnboundedSender<Message>,
}

impl FramedSend {
    /// Starts the writer task on `tasks`, counting the protocol bytes it writes in `bytes`.
    /// `sent` receives `()` for each pull batch written; `link`, when given, is the connection
    /// whose speed sets how hard catch-up pages are compressed ([`link_bytes_per_second`]).
    pub(crate) fn start(
        mut stream: quinn::SendStream,
        tasks: &mut tokio::task::JoinSet<()>,
        sent: Option<mpsc::UnboundedSender<()>>,
        bytes: Arc<AtomicU64>,
        link: Option<quinn::Connection>,
    ) -> FramedSend {
        let (queue, mut rx) = mpsc::unbounded_channel::<Message>();
        tasks.spawn(async move {
            let mut encoder = FrameEncoder::new();
            while let Some(message) = rx.recv().await {
                let is_pull = message.is_pull_batch();
                let frame = if matches!(message, Message::Documents(_)) {
                    let level = page_level(link.as_ref().map(link_bytes_per_second));
                    let mut page_encoder = std::mem::take(&mut encoder);
                    let encoded = tokio::task::spawn_blocking(move || {
                        let frame = page_encoder.encode(&message, level);
                        (page_encoder, frame)
                    });
                    let Ok((page_encoder, frame)) = encoded.await else {
                        return; // the runtime is shutting down
                    };
                    encoder = page_encoder;
                    frame
                } else {
                    encoder.encode(&message, PAGE_LEVEL)
                };
                bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
                if stream.write_all(&frame).await.is_err() {
                    return; // the connection is gone; the session notices on its reads
                }
                if is_pull && let Some(sent) = &sent {
                    let _ = sent.send(());
                }
            }
            // Finish, and return only once the peer has acknowledged every byte: whoever closes the
            // connection after this task (with a bounded wait) no longer discards a last ack or
            // error message still in flight.
            if stream.finish().is_ok() {
                let _ = stream.stopped().await;
            }
        });
        FramedSend { queue }
    }

    /// Queues a message for the stream.
    pub(crate) fn send(&self, message: Message) {
        let _ = self.queue.send(message);
    }
}

/// What the connection carries per second by its congestion controller's estimate: the window
/// over the smoothed round trip.
fn link_bytes_per_second(conn: &quinn::Connection) -> f64 {
    let path = conn.stats().path;
    path.cwnd as f64 / path.rtt.as_secs_f64().max(1e-4)
}

/// How a read ends whose 0-RTT data the relay rejected: the session runs again in 1-RTT.
pub(crate) const ZERO_RTT_REJECTED: &str = "0-rtt data rejected";

/// The error a read returns when the relay rejected the 0-RTT data it answers.
pub(crate) fn zero_rtt_rejected() -> Error {
    Error::network(format!("read: {ZERO_RTT_REJECTED}"))
}
