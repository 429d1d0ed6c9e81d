//! Fuzzes the path every partner document takes: bytes → decode → feed-rs adapter →
//! normalise, plus the invariants normalisation promises on the same input (dates never
//! panic, plain text is idempotent, sanitised HTML stays safe).
//!
//! Run: `cargo +nightly fuzz run parse_normalise` (seed corpus: `tests/fixtures/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    feedwerk::source::feed::fuzz_check(data);
});
