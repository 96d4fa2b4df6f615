//! The RPZ feed with the real secondaries (issue 10 part 4): a running
//! `cutoff serve` is the primary of `cutoff.rpz`; BIND (`type secondary`,
//! `response-policy`), Unbound (`rpz:` with `primary:`) and PowerDNS
//! Recursor (`rpzPrimary`) transfer it on loopback and answer a blocked
//! name NXDOMAIN. After the list file changes and cutoff reloads (SIGHUP),
//! the NOTIFY makes BIND and Unbound transfer the new serial: the SOA's
//! hourly REFRESH could not within the test's bounded wait. The Recursor
//! takes no NOTIFY for RPZ and polls (`refresh=1`).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::export::{Peer, ask, free_port, start};
use crate::fakeup::Fakeup;
use crate::harness::{http, parse_metrics, query, udp_raw, value};
use crate::proc::{Proc, Start};
use crate::util::needs_tool;

const ZONE: &str = "cutoff.rpz";
/// Blocked from the start; the in-process upstream would answer it.
const FIRST: &str = "www.example.com";
/// Listed from the start, asked first to see that the zone is in force.
const PROBE: &str = "probe.example.org";
/// Added to the list later; answered until then.
const SECOND: &str = "many.example.com";

/// The list: `names`, and enough filler that a transfer takes many
/// messages (about 4,000 records, some 15 messages of 16 KiB).
fn list(names: &[&str]) -> String {
    let mut text: String = names.iter().map(|n| format!("{n}\n")).collect();
    for i in 0..2000 {
        text.push_str(&format!("filler-{i}.example.org\n"));
    }
    text
}

/// The serial `server` has for the zone (`None`: no answer yet).
async fn serial(server: SocketAddr) -> Option<u32> {
    let q = query(ZONE, RecordType::SOA, None).to_vec().expect("encode");
    let a = udp_raw(server, "127.0.0.1", &q, Duration::from_millis(500)).await?;
    let m = Message::from_vec(&a).ok()?;
    match m.answers.first().map(|r| &r.data) {
        Some(RData::SOA(s)) => Some(s.serial),
        _ => None,
    }
}

/// Waits (at most 80 x 250 ms) until `peer` answers `name` NXDOMAIN.
async fn blocks(peer: SocketAddr, name: &str, who: &str) {
    for _ in 0..80 {
        if ask(peer, name).await.metadata.response_code == ResponseCode::NXDomain {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{who} never blocked {name}");
}

/// Waits (bounded) until `peer` has `want` as the zone's serial.
async fn has_serial(peer: SocketAddr, want: u32, who: &str) {
    let mut last = None;
    for _ in 0..80 {
        last = serial(peer).await;
        if last == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{who} has serial {last:?}, not {want}");
}

fn bind_secondary(dir: &std::path::Path, port: u16, primary: SocketAddr, up: SocketAddr) -> Peer {
    let conf = dir.join("named.conf");
    std::fs::write(
        &conf,
        format!(
            "options {{ directory \"{d}\"; pid-file none; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n  forwarders {{ 127.0.0.1 port {up}; }}; forward only; dnssec-validation no; recursion yes; allow-query {{ any; }}; notify no;\n  response-policy {{ zone \"{ZONE}\" min-update-interval 0; }} qname-wait-recurse no; }};\nzone \"{ZONE}\" {{ type secondary; primaries {{ {ip} port {cport}; }}; file \"{d}/{ZONE}.db\"; }};\n",
            d = dir.display(),
            up = up.port(),
            ip = primary.ip(),
            cport = primary.port(),
        ),
    )
    .expect("write named.conf");
    start("named", &["-g", "-c", conf.to_str().expect("utf8")])
}

fn unbound_secondary(
    dir: &std::path::Path,
    port: u16,
    primary: SocketAddr,
    up: SocketAddr,
) -> Peer {
    let conf = dir.join("unbound.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"\"\n  use-syslog: no\n  do-daemonize: no\n  do-not-query-localhost: no\n  access-control: 127.0.0.0/8 allow\n  module-config: \"respip iterator\"\nrpz:\n  name: \"{ZONE}\"\n  primary: {ip}@{cport}\nforward-zone:\n  name: \".\"\n  forward-addr: 127.0.0.1@{up}\nremote-control:\n  control-enable: no\n",
            d = dir.display(),
            ip = primary.ip(),
            cport = primary.port(),
            up = up.port(),
        ),
    )
    .expect("write unbound.conf");
    start("unbound", &["-d", "-c", conf.to_str().expect("utf8")])
}

fn pdns_recursor(dir: &std::path::Path, port: u16, primary: SocketAddr, up: SocketAddr) -> Peer {
    std::fs::write(
        dir.join("rpz.lua"),
        format!("rpzPrimary(\"{primary}\", \"{ZONE}\", {{refresh=1}})\n"),
    )
    .expect("write rpz.lua");
    std::fs::write(
        dir.join("recursor.conf"),
        format!(
            "local-address=127.0.0.1\nlocal-port={port}\nsocket-dir={d}\nlua-config-file={d}/rpz.lua\nforward-zones-recurse=.=127.0.0.1:{up}\ndnssec=off\ndaemon=no\nwrite-pid=no\ndisable-syslog=yes\nallow-from=127.0.0.0/8\nsecurity-poll-suffix=\ndisable-packetcache=yes\n",
            d = dir.display(),
            up = up.port(),
        ),
    )
    .expect("write recursor.conf");
    let arg = format!("--config-dir={}", dir.display());
    start("pdns_recursor", &[&arg])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_unbound_and_pdns_recursor_follow_the_feed() {
    let with_bind = needs_tool("named", "apt install bind9");
    let with_unbound = needs_tool("unbound", "apt install unbound");
    let with_pdns = needs_tool("pdns_recursor", "apt install pdns-recursor");
    if !with_bind && !with_unbound && !with_pdns {
        return;
    }
    // One upstream per program, so a name sent upstream is the program's.
    let up = Fakeup::start().await;
    let bind_port = free_port();
    let unbound_port = free_port();
    let pdns_port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("extra.txt");
    std::fs::write(&path, list(&[PROBE, FIRST])).expect("write list");
    let config = dir.path().join("cutoff.yaml");
    let extra = format!(
        "lists:\n  extra:\n    path: {list}\nrules:\n  - name: block-extra\n    lists: [extra]\n    action: block\nrpz:\n  zones:\n    - name: {ZONE}.\n  notify: [\"127.0.0.1:{bind_port}\", \"127.0.0.1:{unbound_port}\"]\n",
        list = path.display()
    );
    // A fixed admin port: with `127.0.0.1:0` a reload would move the
    // endpoint to another port the kernel picks.
    let yaml = crate::proc::config(up.addr(), &extra).replace(
        "http: \"127.0.0.1:0\"",
        &format!("http: \"127.0.0.1:{}\"", free_port()),
    );
    std::fs::write(&config, yaml).expect("write config");
    let cutoff = Proc::start_at(dir, config, Start::default());
    let primary = cutoff.dns;

    let mut start_serial = None;
    for _ in 0..80 {
        start_serial = serial(primary).await;
        if start_serial.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let start_serial = start_serial.expect("cutoff builds its zone");
    let peers = tempfile::tempdir().expect("tempdir");
    let mut running = Vec::new();
    if with_bind {
        let d = peers.path().join("bind");
        std::fs::create_dir(&d).expect("mkdir");
        let u = Fakeup::start().await;
        let p = bind_secondary(&d, bind_port, primary, u.addr());
        running.push((p, SocketAddr::from(([127, 0, 0, 1], bind_port)), "BIND", u));
    }
    if with_unbound {
        let d = peers.path().join("unbound");
        std::fs::create_dir(&d).expect("mkdir");
        let u = Fakeup::start().await;
        let p = unbound_secondary(&d, unbound_port, primary, u.addr());
        running.push((
            p,
            SocketAddr::from(([127, 0, 0, 1], unbound_port)),
            "Unbound",
            u,
        ));
    }
    if with_pdns {
        let d = peers.path().join("pdns");
        std::fs::create_dir(&d).expect("mkdir");
        let u = Fakeup::start().await;
        let p = pdns_recursor(&d, pdns_port, primary, u.addr());
        running.push((
            p,
            SocketAddr::from(([127, 0, 0, 1], pdns_port)),
            "PowerDNS Recursor",
            u,
        ));
    }
    for (_, addr, who, u) in &running {
        // A peer answers (and forwards) before its first transfer: BIND
        // shows the zone's serial once it has the zone; for the others
        // another listed name shows when their zone is in force.
        if *who == "BIND" {
            has_serial(*addr, start_serial, who).await;
        } else {
            blocks(*addr, PROBE, who).await;
        }
        blocks(*addr, FIRST, who).await;
        blocks(*addr, "filler-1999.example.org", who).await;
        let m = ask(*addr, SECOND).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{who}");
        assert!(!m.answers.is_empty(), "{who} answers {SECOND}");
        assert!(
            u.seen_name(FIRST).is_empty(),
            "{who} forwarded a blocked name: {:?}",
            u.seen_name(FIRST)
        );
    }
    let first = start_serial;

    // The NOTIFY at start may reach a peer still loading its config (it
    // refuses it then): only the ones after the change are counted.
    let before = notified(cutoff.http).await;
    std::fs::write(&path, list(&[PROBE, FIRST, SECOND])).expect("rewrite list");
    cutoff.signal("HUP");
    let mut next = first;
    for _ in 0..80 {
        next = serial(primary).await.unwrap_or(first);
        if next != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(next > first, "the serial grew: {first} -> {next}");
    for (_, addr, who, _) in &running {
        // Unbound does not answer questions for its RPZ zones; BIND serves
        // its secondary copy, so its serial can be read.
        if *who == "BIND" {
            has_serial(*addr, next, who).await;
        }
        blocks(*addr, SECOND, who).await;
    }
    // BIND and Unbound answered the NOTIFY of the new serial.
    let notified_peers: Vec<_> = running
        .iter()
        .filter(|(_, _, who, _)| *who != "PowerDNS Recursor")
        .collect();
    for (_, addr, who, _) in &notified_peers {
        let line = format!("serial={next} to={addr}");
        let answered = cutoff
            .log()
            .lines()
            .any(|l| l.contains("NOTIFY answered") && l.contains(&line));
        assert!(
            answered,
            "{who} did not answer the NOTIFY of {next}; log:\n{}",
            cutoff.log()
        );
    }
    let after = notified(cutoff.http).await;
    assert!(
        after - before >= notified_peers.len() as f64,
        "{before} -> {after}"
    );
}

/// `cutoff_rpz_notify_total{result="ok"}`.
async fn notified(admin: SocketAddr) -> f64 {
    let (_, text) = http(admin, "GET", "/metrics").await;
    value(
        &parse_metrics(&text),
        "cutoff_rpz_notify_total",
        &[("result", "ok")],
    )
    .unwrap_or(0.0)
}
