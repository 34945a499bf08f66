//! The frame decoder against hostile input: random bytes, random mutations of valid frames, and
//! random cuts never panic, never allocate past the limit, and always end in a message or a
//! clear error. (A coverage-guided cargo-fuzz target needs a nightly toolchain, which this
//! machine cannot fetch; this property test runs the same harness in every test run.)
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use proptest::prelude::*;
use yilian_core::sync::{CatchUp, DocumentCopy, DocumentPage, FrameDecoder, Message, WireChange, encode};

fn sample_messages() -> Vec<Message> {
    vec![
        Message::Hello {
            peer: "dev-1".into(),
            log_id: "abc".into(),
            read_seq: 0,
            local_head: 40,
            grant_seq: 0,
            catch_up: Some(CatchUp { head: 12, grant: 3, after: [7; 16] }),
            session: 0x5eed,
            restored: false,
        },
        Message::Ack { up_to: 99 },
        Message::Pull {
            from_seq: 1,
            to_seq: 9,
            items: (2..9)
                .map(|i| WireChange { seq: i, doc: [i as u8; 16], bytes: vec![i as u8; 400], signature: None })
                .collect(),
        },
        Message::Documents(DocumentPage {
            head: 12,
            grant: 3,
            grant_after: 1,
            after: None,
            last: Some([9; 16]),
            done: false,
            docs: vec![DocumentCopy {
                doc: [9; 16],
                save: vec![0x85; 600],
                signatures: vec![1; 128],
                unsigned: vec![0],
                changes: Vec::new(),
            }],
        }),
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

/// The cargo-fuzz target's corpus (`core/fuzz`): seeds named `valid-*` must decode, `bad-*` must
/// fail cleanly, and whatever the fuzzer added must not panic. `YILIAN_WRITE_CORPUS=1` rewrites
/// the seeds.
#[test]
fn the_fuzz_corpus_decodes_or_fails_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/frame_decoder");
    if std::env::var_os("YILIAN_WRITE_CORPUS").is_some() {
        write_seeds(&dir);
    }
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let result = yilian_core::sync::exercise_decoder(&std::fs::read(&path).unwrap());
        if name.starts_with("valid-") {
            assert!(matches!(result, Ok(n) if n > 0), "{name}: {result:?}");
        } else if name.starts_with("bad-") {
            assert!(result.is_err(), "{name} decoded: {result:?}");
        }
        seen += 1;
    }
    assert!(seen >= 10, "the corpus has only {seen} files");
}

fn write_seeds(dir: &std::path::Path) {
    use yilian_core::sync::ErrorCode;
    std::fs::create_dir_all(dir).unwrap();
    let mut seeds: Vec<(&str, Vec<u8>)> = sample_messages()
        .iter()
        .zip(["valid-hello", "valid-ack", "valid-pull", "valid-documents"])
        .map(|(m, name)| (name, encode(m)))
        .collect();
    let welcome = Message::Welcome {
        peer: "relay".into(),
        log_id: "0f".into(),
        acked_seq: 3,
        acked_mark: Some(yilian_core::sync::LogMark { seq: 3, hash: [9; 32] }),
        head: 90,
        grant_head: 2,
        pending_items: 10,
        pending_bytes: 5000,
        holdings: false,
    };
    let snapshot = Message::Snapshot {
        after: 1,
        grant: yilian_core::sync::Grant {
            grant: 2,
            doc: Some([7; 16]),
            bytes: vec![1; 900],
            signatures: vec![([3; 32], vec![4; 64])],
            waiting: vec![(vec![5; 300], Some(vec![6; 64]))],
        },
    };
    let refused = Message::Refused { items: vec![(4, "document is outside the scope of dev".into())] };
    let error = Message::Error { code: ErrorCode::Protocol, message: "bad".into() };
    seeds.push(("valid-welcome", encode(&welcome)));
    seeds.push(("valid-snapshot", encode(&snapshot)));
    seeds.push(("valid-stream", [encode(&refused), encode(&error), encode(&Message::Caught { up_to: 9 })].concat()));
    let mut version = encode(&welcome);
    version[4] = 9;
    seeds.push(("bad-version", version));
    let mut flags = encode(&refused);
    flags[5] = 0x80;
    seeds.push(("bad-flags", flags));
    seeds.push(("bad-oversize", (64u32 << 20).to_be_bytes().to_vec()));
    let v = yilian_core::sync::PROTOCOL_VERSION;
    seeds.push(("bad-garbage", vec![0, 0, 0, 6, v, 0, 0xff, 0xff, 0xff, 0xff]));
    seeds.push(("bad-zstd", vec![0, 0, 0, 6, v, 1, 0x28, 0xb5, 0x2f, 0x00]));
    // Two pages of a catch-up, the second compressed against the first; alone, it cannot decode.
    let pages: Vec<Vec<u8>> = {
        let mut encoder = yilian_core::sync::FrameEncoder::new();
        let first = sample_messages().pop().unwrap();
        let Message::Documents(mut second) = first.clone() else { unreachable!("the sample's last message is a page") };
        second.docs[0].doc = [10; 16];
        second.done = true;
        [first, Message::Documents(second)].iter().map(|m| encoder.encode(m, yilian_core::sync::PAGE_LEVEL)).collect()
    };
    seeds.push(("valid-prefixed-pages", pages.concat()));
    seeds.push(("bad-prefix-without-page", pages[1].clone()));
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
