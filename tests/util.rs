//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The built `cutoff` binary.
pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cutoff"))
}

/// Runs the binary with `args`; returns (exit code, stdout, stderr).
pub(crate) fn run(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = bin().args(args).output().expect("run cutoff");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The repository root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// Writes `text` to `name` in a fresh temp dir.
pub(crate) fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    (dir, path)
}

/// Runs a tool in the repository root; `None` when it is not installed,
/// else whether it succeeded and its stdout and stderr.
pub(crate) fn tool(program: &str, args: &[&str]) -> Option<(bool, String)> {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

/// Whether `program` can be run; under `CI=true` a missing one fails the
/// test, otherwise the test is reported as skipped.
pub(crate) fn needs_tool(program: &str, how: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var("CI").is_err_and(|_| true)
                || std::env::var("CI").is_ok_and(|v| v != "true"),
            "CI=true: needs {program} ({how})"
        );
        eprintln!("SKIPPED: needs {program} ({how})");
    }
    found
}
