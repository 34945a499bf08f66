//! The frame decoder against hostile input: random bytes, random mutations of valid frames, and
//! random cuts never panic, never allocate past the limit, and always end in a message or a
//! clear error. (A coverage-guided cargo-fuzz target needs a nightly toolchain, which this
//! machine cannot fetch; this property test runs the same harness in every test run.)
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use proptest::prelude::*;
use yilian_core::sync::{FrameDecoder, Message, WireChange, encode};

fn sample_messages() -> Vec<Message> {
    vec![
        Message::Hello { peer: "dev-1".into(), log_id: "abc".into(), read_seq: 12, local_head: 40, grant_seq: 0 },
        Message::Ack { up_to: 99 },
        Message::Pull {
            from_seq: 1,
            to_seq: 9,
            items: (2..9)
                .map(|i| WireChange { seq: i, doc: [i as u8; 16], bytes: vec![i as u8; 400], signature: None })
                .collect(),
        },
    ]
}

/// Feeds bytes in random-sized pieces; returns the messages decoded before the first error.
fn feed(bytes: &[u8], pieces: &[usize]) -> (Vec<Message>, Option<String>) {
    let mut decoder = FrameDecoder::new();
    let mut out = Vec::new();
    let mut at = 0;
    for size in pieces.iter().cycle() {
        if at >= bytes.len() {
            break;
        }
        let end = (at + size.max(&1)).min(bytes.len());
        decoder.push(&bytes[at..end]);
        at = end;
        loop {
            match decoder.next_message() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }
    (out, None)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), pieces in proptest::collection::vec(1usize..64, 1..8)) {
        let (_, error) = feed(&bytes, &pieces);
        if let Some(e) = error {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn mutated_frames_decode_or_fail_cleanly(index in 0usize..3, flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut frame = encode(&sample_messages()[index]);
        for (at, value) in flips {
            let i = at.index(frame.len());
            frame[i] = value;
        }
        let _ = feed(&frame, &[7, 300, 1]);
    }

    #[test]
    fn valid_streams_decode_whatever_the_piece_sizes(pieces in proptest::collection::vec(1usize..200, 1..10)) {
        let messages = sample_messages();
        let stream: Vec<u8> = messages.iter().flat_map(encode).collect();
        let (out, error) = feed(&stream, &pieces);
        prop_assert_eq!(error, None);
        prop_assert_eq!(out, messages);
    }
}
