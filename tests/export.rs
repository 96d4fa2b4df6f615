//! `cutoff export`: every format under the program that reads it
//! (`named-checkzone`, `unbound-checkconf`, `dnsmasq --test`), then loaded
//! into the real BIND, Unbound and dnsmasq on loopback, forwarding to the
//! in-process upstream: a blocked name is NXDOMAIN, an allowed one answered.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::fakeup::Fakeup;
use crate::harness::{query, udp_raw};
use crate::util::{bin, needs_tool};

/// The instant the exports decide at: after the cut-off.
const AT: &str = "2025-01-01T00:00:00Z";
/// Blocked after the cut-off; `dm.` only through its zone.
const BLOCKED: &[&str] = &["s05.upd.kaspersky.com", "dm.kaspersky-labs.com"];
/// Must be forwarded: an exemption, an override under the blocked zone, and
/// an unrelated name (the only one the in-process upstream has records for).
const ANSWERED: &[&str] = &[
    "opentip.kaspersky.com",
    "mx12.kaspersky-labs.com",
    "example.com",
];

fn export(format: &str, dir: &Path) -> std::path::PathBuf {
    let out = bin()
        .args(["export", "--format", format, "--at", AT])
        .output()
        .expect("run cutoff export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join(format!("cutoff.{format}"));
    std::fs::write(&path, &out.stdout).expect("write export");
    path
}

fn check(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_format_is_accepted_by_the_program_that_reads_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    if needs_tool("named-checkzone", "apt install bind9-utils") {
        let zone = export("rpz", dir.path());
        check("named-checkzone", &["rpz.cutoff", zone.to_str().unwrap()]);
    }
    if needs_tool("unbound-checkconf", "apt install unbound") {
        let include = export("unbound", dir.path());
        let conf = dir.path().join("unbound.conf");
        std::fs::write(
            &conf,
            format!(
                "server:\n  username: \"\"\n  chroot: \"\"\n  include: \"{}\"\n",
                include.display()
            ),
        )
        .expect("write");
        check("unbound-checkconf", &[conf.to_str().unwrap()]);
    }
    if needs_tool("dnsmasq", "apt install dnsmasq-base") {
        let conf = export("dnsmasq", dir.path());
        check("dnsmasq", &["--test", "-C", conf.to_str().unwrap()]);
    }
    for format in ["hosts", "plain", "adblock"] {
        let text = std::fs::read_to_string(export(format, dir.path())).expect("read");
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with(['#', '!']))
            .collect();
        let want = match format {
            "hosts" => "0.0.0.0 s05.upd.kaspersky.com",
            "plain" => "s05.upd.kaspersky.com",
            _ => "||kaspersky-labs.com^",
        };
        assert!(lines.contains(&want), "{format}: {want} missing");
        assert!(!text.contains("\nopentip.kaspersky.com\n"), "{format}");
    }
    let adblock = std::fs::read_to_string(dir.path().join("cutoff.adblock")).expect("read");
    assert!(
        adblock.contains("@@|mx12.kaspersky-labs.com^"),
        "the override passes"
    );
    assert!(
        adblock.contains("@@|opentip.kaspersky.com^"),
        "the exemption passes"
    );
}

/// A free loopback port (UDP and TCP), released for the peer to bind.
pub(crate) fn free_port() -> u16 {
    for _ in 0..64 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port");
}

/// A peer server, stopped when the test ends.
pub(crate) struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn start(program: &str, args: &[&str]) -> Peer {
    Peer(
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(program),
    )
}

/// Asks `server` for `name` until it answers (the peer may still be
/// starting; at most 15 s), then returns the answer.
pub(crate) async fn ask(server: SocketAddr, name: &str) -> Message {
    let q = query(name, RecordType::A, Some(1232));
    let bytes = q.to_vec().expect("encode");
    for _ in 0..30 {
        if let Some(answer) = udp_raw(server, "127.0.0.1", &bytes, Duration::from_millis(500)).await
        {
            return Message::from_vec(&answer).expect("parse");
        }
    }
    panic!("{server} never answered {name}");
}

async fn holds_the_cutoff(server: SocketAddr, up: &Fakeup, peer: &str) {
    // The first answers may come before the policy has loaded: wait for the
    // block to be in force, boundedly, then check every name once.
    for _ in 0..20 {
        if ask(server, BLOCKED[0]).await.metadata.response_code == ResponseCode::NXDomain {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for name in BLOCKED {
        let m = ask(server, name).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "{peer}: {name}"
        );
        assert!(up.seen_name(name).is_empty(), "{peer} forwarded {name}");
    }
    for name in ANSWERED {
        ask(server, name).await;
        assert!(
            !up.seen_name(name).is_empty(),
            "{peer} did not forward {name}"
        );
    }
    let m = ask(server, "example.com").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{peer}");
    assert!(!m.answers.is_empty(), "{peer}: example.com answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_unbound_and_dnsmasq_enforce_the_export() {
    let up = Fakeup::start().await;
    let upstream = up.addr();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    if needs_tool("named", "apt install bind9") {
        let zone = export("rpz", d);
        let port = free_port();
        let conf = d.join("named.conf");
        std::fs::write(
            &conf,
            format!(
                "options {{ directory \"{dir}\"; pid-file none; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n  forwarders {{ 127.0.0.1 port {up}; }}; forward only; dnssec-validation no; recursion yes; allow-query {{ any; }};\n  response-policy {{ zone \"rpz.cutoff\"; }} qname-wait-recurse no; }};\nzone \"rpz.cutoff\" {{ type primary; file \"{zone}\"; }};\n",
                dir = d.display(),
                up = upstream.port(),
                zone = zone.display()
            ),
        )
        .expect("write");
        let _named = start("named", &["-g", "-c", conf.to_str().unwrap()]);
        holds_the_cutoff(SocketAddr::from(([127, 0, 0, 1], port)), &up, "BIND").await;
    }
    if needs_tool("unbound", "apt install unbound") {
        let include = export("unbound", d);
        let port = free_port();
        let conf = d.join("unbound.conf");
        std::fs::write(
            &conf,
            format!(
                "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"\"\n  use-syslog: no\n  do-daemonize: no\n  do-not-query-localhost: no\n  access-control: 127.0.0.0/8 allow\n  include: \"{include}\"\nforward-zone:\n  name: \".\"\n  forward-addr: 127.0.0.1@{up}\nremote-control:\n  control-enable: no\n",
                dir = d.display(),
                include = include.display(),
                up = upstream.port()
            ),
        )
        .expect("write");
        let _unbound = start("unbound", &["-d", "-c", conf.to_str().unwrap()]);
        holds_the_cutoff(SocketAddr::from(([127, 0, 0, 1], port)), &up, "Unbound").await;
    }
    if needs_tool("dnsmasq", "apt install dnsmasq-base") {
        let conf = export("dnsmasq", d);
        let port = free_port();
        let _dnsmasq = start(
            "dnsmasq",
            &[
                "-k",
                "--conf-file=/dev/null",
                "-C",
                conf.to_str().unwrap(),
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                &format!("--server=127.0.0.1#{}", upstream.port()),
                "--user=root",
                "--pid-file",
            ],
        );
        holds_the_cutoff(SocketAddr::from(([127, 0, 0, 1], port)), &up, "dnsmasq").await;
    }
}
