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

/// Whether `program` can be started (it exists and runs `args`, whatever
/// its exit status).
pub(crate) fn installed(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// Gate for a test that needs something the machine may lack (a tool, IPv6,
/// network namespaces): returns `available`, and when it is false
///
/// - under `CI=true` fails the test: CI installs everything (.ci/setup), so a
///   missing tool there is a broken CI, not a pass;
/// - otherwise prints a `SKIPPED` line past the test harness's output
///   capture, and lists the test again after the run's summary, so a skipped
///   test never hides among the passed ones.
///
/// `what` names what is missing, `how` how to get it.
pub(crate) fn needs(available: bool, what: &str, how: &str) -> bool {
    if available {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: {test} needs {what}, which is missing ({how})");
    }
    let line = format!("SKIPPED {test}: needs {what} ({how})");
    use std::io::Write as _;
    // Straight to stderr: eprintln! would be captured and shown only on failure.
    let _ = writeln!(std::io::stderr(), "\n{line}");
    skipped::record(line);
    false
}

/// `needs(installed(program, ["--version"]), program, how)`.
pub(crate) fn needs_tool(program: &str, how: &str) -> bool {
    needs(installed(program, &["--version"]), program, how)
}

/// The skipped tests, printed again when the test binary exits (after the
/// harness's "test result" line).
mod skipped {
    use std::sync::{Mutex, Once};

    static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static AT_EXIT: Once = Once::new();

    unsafe extern "C" {
        fn atexit(callback: extern "C" fn()) -> i32;
    }

    extern "C" fn report() {
        let lines = LINES.lock().map(|l| l.clone()).unwrap_or_default();
        if lines.is_empty() {
            return;
        }
        use std::io::Write as _;
        let mut err = std::io::stderr();
        let _ = writeln!(
            err,
            "\n{} test(s) SKIPPED (counted as passed above); under CI=true they fail instead:",
            lines.len()
        );
        for l in lines {
            let _ = writeln!(err, "  {l}");
        }
    }

    pub(super) fn record(line: String) {
        if let Ok(mut l) = LINES.lock() {
            l.push(line);
        }
        AT_EXIT.call_once(|| {
            // SAFETY: `report` is a plain function that only locks a static
            // and writes to stderr; atexit runs it once when the process exits.
            unsafe {
                atexit(report);
            }
        });
    }
}

/// Moves this thread into a network namespace of its own, with `lo` up; a
/// child forked from the thread starts in it. `Err` says why it could not
/// (no CAP_SYS_ADMIN, no `ip`), for the caller to skip on.
pub(crate) fn own_network_namespace() -> Result<(), String> {
    // SAFETY: unshare takes no pointers; on this thread only, it replaces
    // the network namespace, which nothing else on the thread holds yet.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        ));
    }
    let out = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip link set lo up: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}
