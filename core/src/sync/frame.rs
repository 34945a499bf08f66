//! Frames on the wire: length-prefixed, versioned, size-limited, optionally zstd-compressed.
//!
//! ```text
//! u32 (big endian)  length of what follows, at most MAX_FRAME_BYTES
//! u8                protocol version (PROTOCOL_VERSION)
//! u8                flags: bit 0 = payload is zstd-compressed; other bits must be 0
//! ...               payload: one postcard-encoded `Message`
//! ```

use super::message::Message;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 2;
/// Largest frame accepted (after the length prefix). A batch is cut well below this.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// Largest payload a compressed frame may expand to.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
/// Payloads at least this big are compressed.
const COMPRESS_FROM: usize = 256;
const FLAG_ZSTD: u8 = 1;

/// Why a frame could not be read. Each ends the session: the stream cannot be trusted after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces more than the limit.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer speaks another protocol version.
    #[error("protocol version {got} is not supported (this side speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion {
        /// Version in the frame.
        got: u8,
    },
    /// Flags this version does not know.
    #[error("unknown frame flags {0:#04x}")]
    UnknownFlags(u8),
    /// A frame shorter than its header.
    #[error("frame is {0} bytes, shorter than its 2-byte header")]
    Truncated(usize),
    /// The compressed payload is not valid zstd or expands beyond the limit.
    #[error("payload does not decompress: {0}")]
    BadCompression(String),
    /// The payload is not a message of this protocol.
    #[error("payload is not a valid message: {0}")]
    Malformed(String),
}

/// Encodes a message as one frame.
pub fn encode(message: &Message) -> Vec<u8> {
    // Encoding our own enum into a Vec cannot fail; an empty payload would be refused by the peer.
    let payload = postcard::to_stdvec(message).unwrap_or_default();
    // A page of whole documents is sent once per device and is most of a first sync: worth the
    // relay's CPU for a tighter level (measured on the workload: 5 % fewer bytes than level 3).
    let level = if matches!(message, Message::Documents(_)) { 9 } else { 3 };
    let (flags, body) = if payload.len() >= COMPRESS_FROM {
        match compress(&payload, level) {
            Ok(c) if c.len() < payload.len() => (FLAG_ZSTD, c),
            _ => (0, payload),
        }
    } else {
        (0, payload)
    };
    let mut frame = Vec::with_capacity(body.len() + 6);
    frame.extend_from_slice(&((body.len() + 2) as u32).to_be_bytes());
    frame.push(PROTOCOL_VERSION);
    frame.push(flags);
    frame.extend_from_slice(&body);
    frame
}

/// Decodes the body of one frame (what follows the length prefix).
pub fn decode_body(body: &[u8]) -> Result<Message, FrameError> {
    if body.len() < 2 {
        return Err(FrameError::Truncated(body.len()));
    }
    let (version, flags, payload) = (body[0], body[1], &body[2..]);
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion { got: version });
    }
    if flags & !FLAG_ZSTD != 0 {
        return Err(FrameError::UnknownFlags(flags));
    }
    let decompressed;
    let payload = if flags & FLAG_ZSTD != 0 {
        decompressed = decompress(payload).map_err(|e| FrameError::BadCompression(e.to_string()))?;
        &decompressed[..]
    } else {
        payload
    };
    postcard::from_bytes(payload).map_err(|e| FrameError::Malformed(e.to_string()))
}

thread_local! {
    /// zstd contexts kept per thread and level: making one allocates and clears more memory
    /// than compressing a batch of changes takes (measured: a relay serving pulls spent more
    /// time setting contexts up than compressing).
    static COMPRESSORS: RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(Vec::new()) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn compress(payload: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSORS.with_borrow_mut(|kept| {
        let at = match kept.iter().position(|(l, _)| *l == level) {
            Some(at) => at,
            None => {
                kept.push((level, zstd::bulk::Compressor::new(level)?));
                kept.len() - 1
            }
        };
        kept[at].1.compress(payload)
    })
}

/// Decompresses one zstd frame into a buffer of the size its header declares (our frames always
/// declare it); a frame that declares none gets the limit, and none may expand beyond it.
fn decompress(payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let declared = zstd::zstd_safe::get_frame_content_size(payload)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not a zstd frame"))?;
    let capacity = match declared {
        Some(size) if size > MAX_PAYLOAD_BYTES as u64 => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("declares {size} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit"),
            ));
        }
        Some(size) => size as usize,
        None => MAX_PAYLOAD_BYTES,
    };
    DECOMPRESSOR.with_borrow_mut(|kept| {
        let decompressor = match kept {
            Some(d) => d,
            None => kept.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(payload, capacity)
    })
}

/// Splits a byte stream into messages. Feed it whatever arrived; take messages out.
#[derive(Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or the error that ends
    /// the stream. A frame announcing more than the limit is refused before it is buffered.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buffer[0], self.buffer[1], self.buffer[2], self.buffer[3]]) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge { len, max: MAX_FRAME_BYTES });
        }
        if self.buffer.len() < 4 + len {
            return Ok(None);
        }
        let message = decode_body(&self.buffer[4..4 + len]);
        self.buffer.drain(..4 + len);
        message.map(Some)
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

/// Fuzzing harness, shared by the cargo-fuzz target (`core/fuzz`) and the corpus test: feeds
/// `data` to a decoder in pieces (sizes taken from the data itself) and checks the decoder's
/// contract on the way: it never panics, and every message it yields survives a re-encode
/// unchanged. Returns the number of messages, or the error that ended the stream.
#[doc(hidden)]
pub fn exercise_decoder(data: &[u8]) -> Result<usize, FrameError> {
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut decoder = FrameDecoder::new();
    let mut decoded = 0;
    for piece in data.chunks(step) {
        decoder.push(piece);
        while let Some(message) = decoder.next_message()? {
            let again = encode(&message);
            assert_eq!(decode_body(&again[4..]).as_ref(), Ok(&message), "a decoded message must re-encode unchanged");
            decoded += 1;
        }
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::message::{Message, WireChange};

    fn big() -> Message {
        Message::Push {
            from_seq: 0,
            to_seq: 40,
            items: (0..40)
                .map(|i| WireChange { seq: i, doc: [7; 16], bytes: vec![i as u8; 300], signature: Some(vec![1; 64]) })
                .collect(),
        }
    }

    #[test]
    fn messages_round_trip_byte_by_byte() {
        let messages = vec![Message::Ack { up_to: 17 }, big(), Message::Caught { up_to: 3 }];
        let stream: Vec<u8> = messages.iter().flat_map(encode).collect();
        let mut decoder = FrameDecoder::new();
        let mut out = Vec::new();
        for byte in stream {
            decoder.push(&[byte]);
            while let Some(m) = decoder.next_message().unwrap() {
                out.push(m);
            }
        }
        assert_eq!(out, messages);
        assert_eq!(decoder.pending(), 0);
    }

    #[test]
    fn large_payloads_are_compressed() {
        let frame = encode(&big());
        assert_eq!(frame[5], FLAG_ZSTD);
        assert!(frame.len() < 40 * 300 / 4, "{} bytes", frame.len());
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        let mut d = FrameDecoder::new();
        d.push(&(MAX_FRAME_BYTES as u32 + 1).to_be_bytes());
        assert_eq!(d.next_message(), Err(FrameError::TooLarge { len: MAX_FRAME_BYTES + 1, max: MAX_FRAME_BYTES }));

        let mut frame = encode(&Message::Ack { up_to: 1 });
        frame[4] = 9;
        assert_eq!(decode_body(&frame[4..]), Err(FrameError::UnsupportedVersion { got: 9 }));
        frame[4] = PROTOCOL_VERSION;
        frame[5] = 0x80;
        assert_eq!(decode_body(&frame[4..]), Err(FrameError::UnknownFlags(0x80)));
        assert!(matches!(decode_body(&[PROTOCOL_VERSION, FLAG_ZSTD, 1, 2, 3]), Err(FrameError::BadCompression(_))));
        assert!(matches!(decode_body(&[PROTOCOL_VERSION, 0, 250, 250, 250]), Err(FrameError::Malformed(_))));
        assert_eq!(decode_body(&[1]), Err(FrameError::Truncated(1)));
        let err = decode_body(&[9, 0]).unwrap_err().to_string();
        assert_eq!(err, "protocol version 9 is not supported (this side speaks 2)");
    }

    /// A body compressed by someone else: `declare` says whether the zstd header carries its size.
    fn zstd_body(payload: &[u8], declare: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = zstd::stream::Encoder::new(&mut out, 3).unwrap();
        encoder.include_contentsize(declare).unwrap();
        if declare {
            encoder.set_pledged_src_size(Some(payload.len() as u64)).unwrap();
        }
        std::io::Write::write_all(&mut encoder, payload).unwrap();
        encoder.finish().unwrap();
        [vec![PROTOCOL_VERSION, FLAG_ZSTD], out].concat()
    }

    #[test]
    fn compressed_payloads_expand_only_within_the_limit() {
        let payload = postcard::to_stdvec(&big()).unwrap();
        // Declared or not, a payload within the limit decodes.
        assert_eq!(decode_body(&zstd_body(&payload, true)), Ok(big()));
        assert_eq!(decode_body(&zstd_body(&payload, false)), Ok(big()));
        // Zeros compress to almost nothing: past the limit they are refused, declared or not.
        let bomb = vec![0u8; MAX_PAYLOAD_BYTES + 1];
        for declare in [true, false] {
            let body = zstd_body(&bomb, declare);
            assert!(body.len() < 4096, "{} bytes", body.len());
            let err = decode_body(&body).unwrap_err();
            assert!(matches!(err, FrameError::BadCompression(_)), "{err:?}");
        }
        // A header declaring other than what the frame holds is refused too. Single-segment frames
        // (the descriptor's bit 5) carry the declared size right after magic and descriptor.
        let mut lying = zstd_body(&payload, true);
        assert_eq!(lying[2 + 4] & 0x20, 0x20, "a single-segment frame");
        lying[2 + 5] ^= 1;
        assert!(decode_body(&lying).is_err());
    }
}
