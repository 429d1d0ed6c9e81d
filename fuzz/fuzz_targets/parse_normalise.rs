//! Fuzzes the path every partner document takes: bytes → decode → DTD entities,
//! repairs and the adapter for the dialect (feed-rs, Atom 0.3, RSS 1.0/0.90) →
//! normalise, plus the invariants normalisation promises on the same input (dates never
//! panic, plain text is idempotent, sanitised HTML stays safe).
//!
//! Run: `cargo +nightly fuzz run parse_normalise ../tests/fixtures/normalise
//! ../tests/fixtures/formats` (the seed corpus).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    feedwerk::source::feed::fuzz_check(data);
});
