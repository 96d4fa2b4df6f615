//! Replays the fuzz inputs on stable: every file in `fuzz/corpus/<target>/`
//! (seeds and committed regressions) and, when present,
//! `fuzz/artifacts/<target>/` (crashes found and not yet committed) goes
//! through the same check the cargo-fuzz target runs. The checks live in
//! `fuzz/checks.rs`, shared with the targets, so the two cannot drift.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use crate::util::root;

/// The cargo-fuzz targets, each replayed by one test below.
const TARGETS: [&str; 10] = [
    "wire_query",
    "decide",
    "list_line",
    "config",
    "querylog_name",
    "cache_entry",
    "since",
    "clients_query",
    "config_values",
    "opaque_answer",
];

/// The corpus and crash files of `target`, sorted (dot files are
/// libFuzzer's bookkeeping, not inputs).
fn inputs(target: &str) -> (usize, Vec<PathBuf>) {
    let mut corpus = 0;
    let mut files = Vec::new();
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root().join("fuzz").join(dir).join(target)) else {
            continue;
        };
        let before = files.len();
        files.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                }),
        );
        if dir == "corpus" {
            corpus = files.len() - before;
        }
    }
    files.sort();
    (corpus, files)
}

/// Runs `target`'s check on every input; reports every failing file, not
/// just the first.
fn replay(target: &str, check: fn(&[u8])) {
    let (corpus, files) = inputs(target);
    assert!(corpus > 0, "fuzz/corpus/{target}/ has no seed files");
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("read a fuzz input");
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {target} inputs fail (reproduce: cd fuzz && cargo fuzz run {target} FILE): {failed:#?}",
        failed.len(),
        files.len()
    );
}

#[test]
fn every_corpus_directory_belongs_to_a_target() {
    let dirs = std::fs::read_dir(root().join("fuzz/corpus")).expect("fuzz/corpus exists");
    for dir in dirs.filter_map(Result::ok).filter(|e| e.path().is_dir()) {
        let name = dir.file_name().to_string_lossy().into_owned();
        assert!(
            TARGETS.contains(&name.as_str()),
            "fuzz/corpus/{name}/ has no target in tests/fuzz_corpus.rs"
        );
        assert!(
            root()
                .join(format!("fuzz/fuzz_targets/{name}.rs"))
                .is_file(),
            "fuzz/corpus/{name}/ has no fuzz/fuzz_targets/{name}.rs"
        );
    }
}

#[test]
fn wire_query_inputs_read_as_hickory_reads_them() {
    replay("wire_query", checks::wire_query);
}

#[test]
fn decide_inputs_get_well_formed_answers() {
    replay("decide", checks::decide);
}

#[test]
fn list_line_inputs_give_only_names_dns_can_carry() {
    replay("list_line", checks::list_line);
}

#[test]
fn config_inputs_load_or_fail_without_panicking() {
    replay("config", checks::config);
}

#[test]
fn querylog_name_inputs_round_trip_through_json() {
    replay("querylog_name", checks::querylog_name);
}

#[test]
fn cache_entry_inputs_read_render_and_go_stale_without_panicking() {
    replay("cache_entry", checks::cache_entry);
}

#[test]
fn since_inputs_parse_or_say_what_is_accepted() {
    replay("since", checks::since);
}

#[test]
fn clients_query_inputs_give_an_instant_or_a_400() {
    replay("clients_query", checks::clients_query);
}

#[test]
fn config_values_inputs_load_within_their_ranges_or_fail_without_panicking() {
    replay("config_values", checks::config_values);
}

#[test]
fn opaque_answer_inputs_read_their_records_inside_the_message() {
    replay("opaque_answer", checks::opaque_answer);
}
