//! Frames on the wire: length-prefixed, versioned, size-limited, optionally zstd-compressed.
//!
//! ```text
//! u32 (big endian)  length of what follows, at most MAX_FRAME_BYTES
//! u8                protocol version (PROTOCOL_VERSION)
//! u8                flags: bit 0 = payload is zstd-compressed; bit 1 = compressed with the
//!                   stream's previous catch-up page as zstd's prefix (only with bit 0); other
//!                   bits must be 0
//! ...               payload: one postcard-encoded `Message`
//! ```
//!
//! A catch-up is most of a first sync, and on a 2G link its bytes are its time. Its pages are
//! compressed harder than other frames ([`page_level`], chosen by the link's speed) and each page
//! after the first with the page before it as zstd's prefix ([`FrameEncoder`], [`FrameDecoder`]):
//! records repeat their keys, actors and shapes from page to page, so a page no longer starts
//! from an empty window.

use super::message::Message;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cell::RefCell;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 6;
/// Largest frame accepted (after the length prefix). A batch is cut well below this.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// Largest payload a compressed frame may expand to.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
/// Payloads at least this big are compressed.
const COMPRESS_FROM: usize = 256;
const FLAG_ZSTD: u8 = 1;
const FLAG_PREFIXED: u8 = 2;
/// zstd level of frames other than catch-up pages: cheap, they are small and frequent.
const LEVEL: i32 = 3;
/// zstd level of a catch-up page on a link faster than [`SLOW_LINK_BYTES_PER_SECOND`].
pub const PAGE_LEVEL: i32 = 9;
/// zstd level of a catch-up page on a slow link: about 8 % fewer bytes than [`PAGE_LEVEL`] with
/// the prefix (measured on the proof's 2,000 records: 3.10 MB against 3.36 MB for pages without
/// a prefix at level 9), at about 2.6 MB of records per second of one core.
pub const SLOW_PAGE_LEVEL: i32 = 19;
/// Links slower than this get [`SLOW_PAGE_LEVEL`]: a quarter of what that level produces per
/// second of a core (~0.6 MB/s), so compressing never holds back the link. 2G and satellite
/// links are far below it, 4G and Wi-Fi above.
pub const SLOW_LINK_BYTES_PER_SECOND: f64 = 150_000.0;

/// The zstd level for a catch-up page sent over a link estimated to carry `bytes_per_second`
/// (`None`: unknown, as in-process).
pub fn page_level(bytes_per_second: Option<f64>) -> i32 {
    match bytes_per_second {
        Some(rate) if rate < SLOW_LINK_BYTES_PER_SECOND => SLOW_PAGE_LEVEL,
        _ => PAGE_LEVEL,
    }
}

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
    #[error(
        "protocol version {got} is not supported (this side speaks {PROTOCOL_VERSION}): update the app or the relay"
    )]
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

/// Encodes a message as one frame, on its own (no prefix; catch-up pages at [`PAGE_LEVEL`]).
pub fn encode(message: &Message) -> Vec<u8> {
    frame(message, PAGE_LEVEL, None).0
}

/// Encodes a message and returns its payload too. A payload is compressed with `prefix` as
/// zstd's prefix when one is given.
fn frame(message: &Message, page_level: i32, prefix: Option<&[u8]>) -> (Vec<u8>, Vec<u8>) {
    // Encoding our own enum into a Vec cannot fail; an empty payload would be refused by the peer.
    let payload = postcard::to_stdvec(message).unwrap_or_default();
    let level = if matches!(message, Message::Documents(_)) { page_level } else { LEVEL };
    let compressed = (payload.len() >= COMPRESS_FROM)
        .then(|| match prefix {
            Some(prefix) => compress_with_prefix(&payload, level, prefix).map(|c| (FLAG_ZSTD | FLAG_PREFIXED, c)),
            None => compress(&payload, level).map(|c| (FLAG_ZSTD, c)),
        })
        .and_then(Result::ok)
        .filter(|(_, c)| c.len() < payload.len());
    let (flags, body): (u8, &[u8]) = match &compressed {
        Some((flags, c)) => (*flags, c),
        None => (0, &payload),
    };
    let mut frame = Vec::with_capacity(body.len() + 6);
    frame.extend_from_slice(&((body.len() + 2) as u32).to_be_bytes());
    frame.push(PROTOCOL_VERSION);
    frame.push(flags);
    frame.extend_from_slice(body);
    (frame, payload)
}

/// Encodes the frames of one stream, in order: each catch-up page after the first is
/// compressed with the page before it as its prefix (the stream's [`FrameDecoder`] keeps the
/// same page to decode it). The page is dropped once the catch-up's last page is sent.
#[derive(Default)]
pub struct FrameEncoder {
    previous_page: Option<Vec<u8>>,
}

impl FrameEncoder {
    /// An encoder for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes `message` as the stream's next frame; a catch-up page at `page_level`
    /// (see [`page_level`]).
    pub fn encode(&mut self, message: &Message, page_level: i32) -> Vec<u8> {
        let (frame, payload) = frame(message, page_level, self.previous_page.as_deref());
        keep_prefix(&mut self.previous_page, message, || payload);
        frame
    }
}

/// What a stream keeps as the next page's prefix once `message` has passed (the same rule on
/// both sides): a catch-up page while its catch-up goes on, nothing after its last page; other
/// messages leave it as it is.
fn keep_prefix(kept: &mut Option<Vec<u8>>, message: &Message, payload: impl FnOnce() -> Vec<u8>) {
    if let Message::Documents(page) = message {
        *kept = (!page.done).then(payload);
    }
}

/// Decodes the body of one frame (what follows the length prefix) on its own: a frame
/// compressed against a previous page needs the stream's [`FrameDecoder`].
pub fn decode_body(body: &[u8]) -> Result<Message, FrameError> {
    decode_with(body, None).map(|(message, _)| message)
}

/// Decodes a frame's body, with the stream's previous catch-up page when there is one; returns
/// the message and its payload.
fn decode_with<'a>(body: &'a [u8], previous_page: Option<&[u8]>) -> Result<(Message, Cow<'a, [u8]>), FrameError> {
    if body.len() < 2 {
        return Err(FrameError::Truncated(body.len()));
    }
    let (version, flags, payload) = (body[0], body[1], &body[2..]);
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion { got: version });
    }
    if flags & !(FLAG_ZSTD | FLAG_PREFIXED) != 0 || flags == FLAG_PREFIXED {
        return Err(FrameError::UnknownFlags(flags));
    }
    let payload = if flags & FLAG_PREFIXED != 0 {
        let prefix = previous_page.ok_or_else(|| {
            FrameError::BadCompression("compressed against a previous catch-up page, but none came before it".into())
        })?;
        Cow::Owned(decompress(payload, Some(prefix)).map_err(|e| FrameError::BadCompression(e.to_string()))?)
    } else if flags & FLAG_ZSTD != 0 {
        Cow::Owned(decompress(payload, None).map_err(|e| FrameError::BadCompression(e.to_string()))?)
    } else {
        Cow::Borrowed(payload)
    };
    let message = postcard::from_bytes(&payload).map_err(|e| FrameError::Malformed(e.to_string()))?;
    Ok((message, payload))
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

/// Compresses `payload` with `prefix` as zstd's prefix (a context of its own: a prefix is
/// borrowed for one compression only).
fn compress_with_prefix(payload: &[u8], level: i32, prefix: &[u8]) -> std::io::Result<Vec<u8>> {
    use zstd::zstd_safe::{CCtx, CParameter};
    let failed =
        |what: &str, code: usize| std::io::Error::other(format!("{what}: {}", zstd::zstd_safe::get_error_name(code)));
    let mut cctx = CCtx::create();
    cctx.set_parameter(CParameter::CompressionLevel(level)).map_err(|c| failed("level", c))?;
    cctx.set_parameter(CParameter::ContentSizeFlag(true)).map_err(|c| failed("content size", c))?;
    cctx.ref_prefix(prefix).map_err(|c| failed("prefix", c))?;
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(payload.len()));
    cctx.compress2(&mut out, payload).map_err(|c| failed("compress", c))?;
    Ok(out)
}

/// Decompresses one zstd frame (with `prefix` as its prefix, when it was compressed with one)
/// into a buffer of the size its header declares (our frames always declare it); a frame that
/// declares none gets the limit, and none may expand beyond it.
fn decompress(payload: &[u8], prefix: Option<&[u8]>) -> std::io::Result<Vec<u8>> {
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
    if let Some(prefix) = prefix {
        let mut dctx = zstd::zstd_safe::DCtx::create();
        let failed =
            |code: usize| std::io::Error::new(std::io::ErrorKind::InvalidData, zstd::zstd_safe::get_error_name(code));
        dctx.ref_prefix(prefix).map_err(failed)?;
        let mut out = Vec::with_capacity(capacity);
        dctx.decompress(&mut out, payload).map_err(failed)?;
        return Ok(out);
    }
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
    /// The payload of the last catch-up page read, while its catch-up goes on: the prefix of
    /// the next page (see [`FrameEncoder`]).
    previous_page: Option<Vec<u8>>,
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
        let decoded = decode_with(&self.buffer[4..4 + len], self.previous_page.as_deref()).map(|(message, payload)| {
            keep_prefix(&mut self.previous_page, &message, || payload.into_owned());
            message
        });
        self.buffer.drain(..4 + len);
        decoded.map(Some)
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
        assert_eq!(err, "protocol version 9 is not supported (this side speaks 6): update the app or the relay");
        // Bit 1 (a prefix) means nothing without bit 0 (compressed).
        assert_eq!(decode_body(&[PROTOCOL_VERSION, FLAG_PREFIXED, 0]), Err(FrameError::UnknownFlags(FLAG_PREFIXED)));
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

    /// Page `n` of a catch-up: records that share their shape with every other page's, as a
    /// patient's saved document does (keys, codes, a visit's layout), with their own numbers.
    fn page(n: u8, done: bool) -> Message {
        use crate::sync::message::{DocumentCopy, DocumentPage};
        let docs = (0..24u8)
            .map(|i| {
                let save = (0..12)
                    .flat_map(|v| {
                        format!(
                            "visit {n}-{i}-{v} systolic_mmhg {} diastolic_mmhg {} icd10 I10 metformin 500 mg bid; ",
                            120 + v * 3 + i as i32,
                            70 + v
                        )
                        .into_bytes()
                    })
                    .collect();
                DocumentCopy {
                    doc: [n ^ i; 16],
                    save,
                    signatures: vec![n.wrapping_mul(31) ^ i; 64],
                    unsigned: vec![],
                    changes: vec![],
                }
            })
            .collect();
        Message::Documents(DocumentPage {
            head: 90,
            grant: 3,
            grant_after: 0,
            after: None,
            last: Some([n; 16]),
            done,
            docs,
        })
    }

    #[test]
    fn a_catch_ups_pages_are_compressed_against_the_page_before_and_decode_in_order() {
        let messages = vec![page(1, false), Message::Ack { up_to: 4 }, page(2, false), page(3, true), page(4, false)];
        let mut encoder = FrameEncoder::new();
        let frames: Vec<Vec<u8>> = messages.iter().map(|m| encoder.encode(m, PAGE_LEVEL)).collect();
        let flags: Vec<u8> = frames.iter().map(|f| f[5]).collect();
        // The first page has nothing before it; the next two follow a page; the last page (done)
        // ends the chain, so a later catch-up starts afresh.
        assert_eq!(flags, vec![FLAG_ZSTD, 0, FLAG_ZSTD | FLAG_PREFIXED, FLAG_ZSTD | FLAG_PREFIXED, FLAG_ZSTD]);
        assert!(frames[2].len() < encode(&messages[2]).len(), "the prefix saves bytes");
        // The stream's decoder reads them back, byte by byte.
        let mut decoder = FrameDecoder::new();
        let mut out = Vec::new();
        for byte in frames.concat() {
            decoder.push(&[byte]);
            while let Some(m) = decoder.next_message().unwrap() {
                out.push(m);
            }
        }
        assert_eq!(out, messages);
        // The hard level for slow links reads back the same way.
        let mut slow = FrameEncoder::new();
        let frames: Vec<Vec<u8>> = messages[..3].iter().map(|m| slow.encode(m, SLOW_PAGE_LEVEL)).collect();
        let mut decoder = FrameDecoder::new();
        decoder.push(&frames.concat());
        for expected in &messages[..3] {
            assert_eq!(decoder.next_message().unwrap().as_ref(), Some(expected));
        }
    }

    #[test]
    fn a_page_compressed_against_a_page_the_decoder_never_read_is_refused() {
        let mut encoder = FrameEncoder::new();
        let _first = encoder.encode(&page(1, false), PAGE_LEVEL);
        let second = encoder.encode(&page(2, false), PAGE_LEVEL);
        assert_eq!(second[5], FLAG_ZSTD | FLAG_PREFIXED);
        let err = decode_body(&second[4..]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload does not decompress: compressed against a previous catch-up page, but none came before it"
        );
        let mut decoder = FrameDecoder::new();
        decoder.push(&second);
        assert!(matches!(decoder.next_message(), Err(FrameError::BadCompression(_))));
        // Against another page than the one it was compressed with, it fails or reads as a
        // different message; it never passes for the page that was sent.
        let mut decoder = FrameDecoder::new();
        decoder.push(&encode(&page(7, false)));
        assert_eq!(decoder.next_message().unwrap(), Some(page(7, false)));
        decoder.push(&second);
        assert_ne!(decoder.next_message().ok().flatten(), Some(page(2, false)));
    }

    #[test]
    fn slow_links_get_the_hard_level() {
        assert_eq!(page_level(Some(8_000.0)), SLOW_PAGE_LEVEL, "2g: 64 kbit/s");
        assert_eq!(page_level(Some(32_000.0)), SLOW_PAGE_LEVEL, "satellite: 256 kbit/s");
        assert_eq!(page_level(Some(1_250_000.0)), PAGE_LEVEL, "4g: 10 Mbit/s");
        assert_eq!(page_level(None), PAGE_LEVEL, "in-process");
    }
}
