//! The `cutoff` binary: parse the command line, run, map the outcome to an
//! exit code. Everything else lives in the library.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cutoff::cli::Cli::parse();
    match cutoff::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
