//! `cutoff report --verify PATH…`: checks the hash chain of query logs
//! written with `query_log.chain: true` (oldest file first) and names the
//! first broken line. Outside the query flow.

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::chain::{self, ChainError};

/// Exit 0 when the chain holds through every file, 1 with the first broken
/// line, 2 when a file cannot be read.
pub(super) fn run(paths: &[PathBuf]) -> ExitCode {
    let mut readers = Vec::with_capacity(paths.len());
    for p in paths {
        match crate::files::open_regular(p) {
            Ok(f) => readers.push(BufReader::new(f)),
            Err(e) => {
                eprintln!("error: {}: {e}", p.display());
                return ExitCode::from(2);
            }
        }
    }
    let name = |i: usize| {
        paths
            .get(i)
            .map_or_else(String::new, |p| p.display().to_string())
    };
    match chain::verify(readers) {
        Ok(v) if v.starts.is_empty() => {
            eprintln!(
                "error: no chained line in {} lines: was the log written with `query_log.chain: true`?",
                v.lines
            );
            ExitCode::FAILURE
        }
        Ok(v) => {
            println!("OK: the chain holds through {} lines", v.lines);
            if v.unchained > 0 {
                println!(
                    "  {} lines before the first chained one are not covered",
                    v.unchained
                );
            }
            for (file, line) in &v.starts {
                println!(
                    "  chain starts at {}:{line} (serve started, or the first line given)",
                    name(*file)
                );
            }
            ExitCode::SUCCESS
        }
        Err(e @ ChainError::Broken { file, .. }) => {
            println!("BROKEN: {}: {e}", name(file));
            ExitCode::FAILURE
        }
        Err(e @ ChainError::Read { file, .. }) => {
            eprintln!("error: {}: {e}", name(file));
            ExitCode::from(2)
        }
    }
}
