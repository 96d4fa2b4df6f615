//! The real `cutoff serve` binary as a child process: listening on ports
//! the kernel picks (read back from its "serving" log line), its log kept in
//! a file the test reads, signalled with `kill`, stopped with a bounded
//! wait. For what only a whole process shows: signal handling, file
//! descriptor limits, start-up on hostile files, the log itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::util::bin;

/// A running `cutoff serve`.
pub(crate) struct Proc {
    child: Child,
    log: PathBuf,
    /// The directory holding the config and the log (removed on drop).
    _dir: tempfile::TempDir,
    /// The config file.
    pub(crate) config: PathBuf,
    /// The first DNS listen address.
    pub(crate) dns: SocketAddr,
    /// The admin endpoint.
    pub(crate) http: SocketAddr,
}

/// How the binary is started.
#[derive(Default)]
pub(crate) struct Start<'a> {
    /// Soft and hard `RLIMIT_NOFILE` for the child (set with the shell's
    /// `ulimit`, so no tool is needed).
    pub(crate) nofile: Option<u32>,
    /// Only the soft `RLIMIT_NOFILE` (the hard one is inherited).
    pub(crate) soft_nofile: Option<u32>,
    /// Run in a new mount namespace with a 64 KiB tmpfs on this directory
    /// (a disk that fills); the test reads it through `/proc/PID/root`.
    pub(crate) small_tmpfs: Option<&'a std::path::Path>,
    /// Extra arguments after `serve --config PATH`.
    pub(crate) args: &'a [&'a str],
    /// Environment variables for the child.
    pub(crate) env: &'a [(&'a str, &'a str)],
    /// Do not wait for the "serving" line (the test expects a failure).
    pub(crate) no_wait: bool,
}

impl Proc {
    /// Writes `yaml` as `cutoff.yaml` in a fresh directory (`{dir}` is
    /// replaced with that directory) and starts the binary with it.
    pub(crate) fn start(yaml: &str, how: Start<'_>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("cutoff.yaml");
        let text = yaml.replace("{dir}", dir.path().to_str().expect("utf8 dir"));
        std::fs::write(&config, text).expect("write config");
        Self::start_at(dir, config, how)
    }

    /// Starts the binary on an existing config path inside `dir`.
    pub(crate) fn start_at(dir: tempfile::TempDir, config: PathBuf, how: Start<'_>) -> Self {
        let log = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let exe = bin().get_program().to_owned();
        let mut steps = Vec::new();
        match (how.nofile, how.soft_nofile) {
            (Some(n), _) => steps.push(format!("ulimit -Sn {n} && ulimit -Hn {n}")),
            (None, Some(n)) => steps.push(format!("ulimit -Sn {n}")),
            (None, None) => {}
        }
        if let Some(d) = how.small_tmpfs {
            steps.push(format!(
                "mount -t tmpfs -o size=64k tmpfs '{}'",
                d.display()
            ));
        }
        let mut cmd = if steps.is_empty() {
            Command::new(exe)
        } else {
            let script = format!("{} && exec \"$0\" \"$@\"", steps.join(" && "));
            let mut c = if how.small_tmpfs.is_some() {
                let mut c = Command::new("unshare");
                c.args(["--mount", "sh"]);
                c
            } else {
                Command::new("sh")
            };
            c.arg("-c").arg(script).arg(exe);
            c
        };
        cmd.args(["serve", "--config", config.to_str().expect("utf8")])
            .args(how.args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in how.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start cutoff serve");
        let mut p = Self {
            child,
            log,
            _dir: dir,
            config,
            dns: "0.0.0.0:0".parse().expect("addr"),
            http: "0.0.0.0:0".parse().expect("addr"),
        };
        if !how.no_wait {
            p.wait_serving();
        }
        p
    }

    /// Waits (bounded) for the "serving" line and reads the bound addresses.
    fn wait_serving(&mut self) {
        let line = self
            .wait_log(" serving ", Duration::from_secs(30))
            .unwrap_or_else(|| panic!("no \"serving\" line; log:\n{}", self.log()));
        let field = |key: &str| -> String {
            let at = line
                .find(key)
                .unwrap_or_else(|| panic!("no {key} in {line}"));
            line[at + key.len()..]
                .split([' ', ',', ']'])
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        self.dns = field("listen=[").parse().expect("listen address");
        self.http = field("http=").parse().expect("http address");
    }

    /// Everything the process logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first log line containing `needle`, waiting up to `within`.
    pub(crate) fn wait_log(&self, needle: &str, within: Duration) -> Option<String> {
        let start = Instant::now();
        loop {
            if let Some(l) = self.log().lines().find(|l| l.contains(needle)) {
                return Some(l.to_owned());
            }
            if start.elapsed() > within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many log lines contain `needle`.
    pub(crate) fn count_log(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Sends a signal by name (`HUP`, `TERM`, ...).
    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// `path` as the process sees it (through its mount namespace).
    pub(crate) fn seen(&self, path: &std::path::Path) -> PathBuf {
        let rel = path.strip_prefix("/").unwrap_or(path);
        PathBuf::from(format!("/proc/{}/root", self.child.id())).join(rel)
    }

    /// The soft and hard open-files limits of the running process.
    pub(crate) fn nofile(&self) -> (String, String) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id()))
            .expect("/proc/PID/limits");
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("Max open files");
        let mut v = line.split_whitespace().skip(3);
        (
            v.next().unwrap_or_default().to_owned(),
            v.next().unwrap_or_default().to_owned(),
        )
    }

    /// Waits up to `within` for the process to exit.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return Some(s);
            }
            if start.elapsed() > within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The hard open-files limit of the test process (children inherit it).
pub(crate) fn own_hard_nofile() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Makes a FIFO at `path` (with `mkfifo`, part of coreutils).
pub(crate) fn mkfifo(path: &std::path::Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo")
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config for the binary: loopback on ports the kernel picks, the given
/// upstream, plus `extra` YAML.
pub(crate) fn config(upstream: SocketAddr, extra: &str) -> String {
    format!(
        "listen: [\"127.0.0.1:0\"]\nhttp: \"127.0.0.1:0\"\nupstreams: [\"{upstream}\"]\nupstream_timeout: 500ms\n{extra}"
    )
}
