//! F-6: any bytes as an upstream answer through the cache's wire-level
//! reader (`cache::Entry::new`), its rendering and its stale copy.
//! The property lives in `fuzz/checks.rs`, shared with `tests/fuzz_corpus.rs`.

#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::cache_entry(data));
