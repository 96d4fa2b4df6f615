//! The built binary, started as an admin starts it, queried with `dig`
//! (`util::needs`: a failure under CI=true without dig, a visible skip elsewhere), reloaded
//! with SIGHUP and stopped with SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::fakeup::Fakeup;
use crate::util::{bin, installed, needs, temp_file};

fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig}");
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_sees_blocked_and_forwarded_answers_from_the_binary() {
    if !needs(
        installed("dig", &["-v"]),
        "dig",
        "apt-get install bind9-dnsutils",
    ) {
        return;
    }
    let up = Fakeup::start().await;
    let port = free_port();
    let yaml = format!(
        "listen: [\"127.0.0.1:{port}\"]\nupstreams: [\"{}\"]\nlists:\n  kaspersky: {{builtin: kaspersky}}\nrules:\n  - {{name: cutoff, lists: [kaspersky], categories: [update, telemetry, activation], action: block, before: log, from: \"2024-09-29T00:00:00-04:00\"}}\n",
        up.addr()
    );
    let (_dir, path) = temp_file("cutoff.yaml", &yaml);
    let child = bin()
        .args(["serve", "--config", path.to_str().expect("utf8")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cutoff serve");
    let server = Server(child);
    let start = Instant::now();
    let mut ready = String::new();
    while start.elapsed() < Duration::from_secs(20) {
        ready = dig(port, &["example.com", "A"]);
        if ready.contains("status: NOERROR") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready.contains("192.0.2.1"), "forwarded answer:\n{ready}");

    let blocked = dig(port, &["dnl-01.geo.kaspersky.com", "A"]);
    assert!(blocked.contains("status: NXDOMAIN"), "{blocked}");
    assert!(blocked.contains("EDE: 15 (Blocked)"), "{blocked}");
    assert!(blocked.contains("rule cutoff"), "{blocked}");
    assert!(up.seen_name("dnl-01.geo.kaspersky.com").is_empty());
    let over_tcp = dig(port, &["+tcp", "s05.upd.kaspersky.com", "AAAA"]);
    assert!(over_tcp.contains("status: NXDOMAIN"), "{over_tcp}");

    // SIGHUP with a config that only logs: the name is then forwarded.
    std::fs::write(&path, yaml.replace("action: block", "action: log")).expect("rewrite");
    signal(&server.0, "-HUP");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10)
        && up.seen_name("dnl-01.geo.kaspersky.com").is_empty()
    {
        dig(port, &["dnl-01.geo.kaspersky.com", "A"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        up.seen_name("dnl-01.geo.kaspersky.com").len(),
        1,
        "reloaded policy forwards it"
    );

    // SIGTERM: a clean exit with status 0.
    let mut server = server;
    signal(&server.0, "-TERM");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = server.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "cutoff did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}
