//! Coverage-guided fuzzing of the sync frame decoder: whatever bytes a peer sends, decoding
//! ends in messages or a clear error, never a panic or an unbounded allocation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = yilian_core::sync::exercise_decoder(data);
});
