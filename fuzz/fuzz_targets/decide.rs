//! F-2: the policy engine and the answer builders, CoreDNS `fuzz.Do` style.
//! The property lives in `fuzz/checks.rs`, shared with `tests/fuzz_corpus.rs`.

#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::decide(data));
