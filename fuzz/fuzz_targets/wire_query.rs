//! F-1: the plain-query reader (`wire::parse_query`) and `wire::walk` against hickory-proto's parser.
//! The property lives in `fuzz/checks.rs`, shared with `tests/fuzz_corpus.rs`.

#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::wire_query(data));
