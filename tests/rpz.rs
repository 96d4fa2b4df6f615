//! The RPZ feed in-process (issue 10 part 4): SOA over UDP and TCP, AXFR
//! and IXFR over TCP, REFUSED outside `rpz.allow_transfer`, the zone file
//! on the admin endpoint, and a serial that grows with a list change and
//! is announced with NOTIFY to a secondary that records it.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;

use crate::fakeup::Fakeup;
use crate::harness::{
    Running, http, http_response, parse_metrics, query, read_frame, serve, tcp, tcp_connect, udp,
    value,
};

const ZONE: &str = "cutoff.rpz";

fn yaml(dir: &std::path::Path, notify: SocketAddr) -> String {
    format!(
        "listen: [\"127.0.0.1:0\"]\nupstreams: [\"{{upstream}}\"]\nlists:\n  extra:\n    path: {list}\nrules:\n  - name: block-extra\n    lists: [extra]\n    action: block\nrpz:\n  zones:\n    - name: Cutoff.RPZ.\n      lists: [extra]\n  allow_transfer: [127.0.0.1/32]\n  notify: [\"{notify}\"]\n",
        list = dir.join("extra.txt").display()
    )
}

/// A secondary that answers every NOTIFY and keeps the serials it was told.
async fn secondary() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<u32>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = sock.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let Ok(m) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if m.metadata.op_code != OpCode::Notify {
                continue;
            }
            if let Some(RData::SOA(s)) = m.answers.first().map(|r| &r.data) {
                let _ = tx.send(s.serial);
            }
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80;
            let _ = sock.send_to(&reply, from).await;
        }
    });
    (addr, rx)
}

/// The next serial the secondary is told (bounded wait).
async fn wait(rx: &mut tokio::sync::mpsc::UnboundedReceiver<u32>) -> u32 {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a NOTIFY")
        .expect("open")
}

/// Asks for the zone's SOA over UDP until the zone is built (bounded).
async fn serial(addr: SocketAddr) -> u32 {
    for _ in 0..50 {
        let (m, _) = udp(addr, "127.0.0.1", &query(ZONE, RecordType::SOA, Some(1232))).await;
        if m.metadata.response_code == ResponseCode::NoError {
            assert!(m.metadata.authoritative);
            let Some(RData::SOA(s)) = m.answers.first().map(|r| &r.data) else {
                panic!("no SOA in {m:?}");
            };
            return s.serial;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the zone was never built");
}

/// Transfers the zone over TCP; its records and the number of messages.
async fn axfr(addr: SocketAddr, qtype: RecordType) -> (Vec<hickory_proto::rr::Record>, usize) {
    let mut s = tcp_connect(addr, "127.0.0.1").await;
    let bytes = query(ZONE, qtype, None).to_vec().expect("encode");
    let mut framed = u16::try_from(bytes.len())
        .expect("len")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(&bytes);
    s.write_all(&framed).await.expect("write");
    let mut records = Vec::new();
    let mut messages = 0;
    // Until the closing SOA (bounded: the zone is small).
    for _ in 0..1000 {
        let m = Message::from_vec(&read_frame(&mut s).await.expect("a message")).expect("parse");
        messages += 1;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(!m.metadata.truncation, "a transfer never sets TC");
        records.extend(m.answers);
        let soas = records
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count();
        if soas == 2 || (soas == 1 && records.len() == 1 && qtype == RecordType::IXFR) {
            return (records, messages);
        }
    }
    panic!("no closing SOA");
}

struct Feed {
    running: Running,
    _dir: tempfile::TempDir,
    list: std::path::PathBuf,
}

async fn start(up: &Fakeup, notify: SocketAddr, names: &str) -> Feed {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("extra.txt");
    std::fs::write(&list, names).expect("write list");
    let running = serve(&yaml(dir.path(), notify), up.addr()).await;
    Feed {
        running,
        _dir: dir,
        list,
    }
}

#[tokio::test]
async fn the_zone_is_served_by_soa_axfr_and_http_to_allowed_clients_only() {
    let up = Fakeup::start().await;
    let (notify, _rx) = secondary().await;
    let f = start(&up, notify, "first.example.net\n").await;
    let addr = f.running.addr;
    let serial = serial(addr).await;
    // SOA over TCP too.
    let m = tcp(addr, "127.0.0.1", &query(ZONE, RecordType::SOA, None)).await;
    assert_eq!(m.answers[0].record_type(), RecordType::SOA);

    let (records, _) = axfr(addr, RecordType::AXFR).await;
    assert_eq!(
        records.first().map(|r| r.record_type()),
        Some(RecordType::SOA)
    );
    assert_eq!(
        records.last().map(|r| r.record_type()),
        Some(RecordType::SOA)
    );
    let owners: Vec<String> = records
        .iter()
        .filter(|r| r.record_type() == RecordType::CNAME)
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    assert!(
        owners.contains(&"first.example.net.cutoff.rpz. .".to_owned()),
        "{owners:?}"
    );
    assert!(
        owners.contains(&"*.first.example.net.cutoff.rpz. .".to_owned()),
        "{owners:?}"
    );
    // IXFR: the whole zone, as AXFR would send it (RFC 1995 §4).
    let (ixfr, _) = axfr(addr, RecordType::IXFR).await;
    assert_eq!(ixfr.len(), records.len());

    // Outside `allow_transfer` (127.0.0.1/32): REFUSED, over UDP and TCP,
    // for SOA and AXFR alike; the name is never forwarded.
    let (m, _) = udp(addr, "127.0.0.2", &query(ZONE, RecordType::SOA, None)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let m = tcp(addr, "127.0.0.2", &query(ZONE, RecordType::AXFR, None)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());
    // Names inside the zone are only read by transfer.
    let inside = format!("first.example.net.{ZONE}");
    let (m, _) = udp(addr, "127.0.0.1", &query(&inside, RecordType::A, None)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(up.seen_name(ZONE).is_empty() && up.seen_name(&inside).is_empty());

    let (head, body) = http_response(f.running.http, "GET", "/rpz/cutoff.rpz").await;
    assert!(head.contains("text/dns"), "{head}");
    assert!(
        body.contains(&format!("@ SOA localhost. hostmaster.localhost. {serial} ")),
        "{body}"
    );
    assert!(body.contains("\nfirst.example.net CNAME .\n"), "{body}");
    let (status, body) = http(f.running.http, "GET", "/rpz/nope.rpz").await;
    assert_eq!(status, 404);
    assert!(body.contains("served: cutoff.rpz"), "{body}");
    // The same zone as a list for blockers that subscribe to a URL.
    let (status, body) = http(f.running.http, "GET", "/export/cutoff.rpz.txt").await;
    assert_eq!(status, 200);
    assert!(body.contains("\n||first.example.net^\n"), "{body}");
    let (status, body) = http(f.running.http, "GET", "/export/cutoff.rpz.txt?format=hosts").await;
    assert_eq!(status, 200);
    assert!(body.contains("\n0.0.0.0 first.example.net\n"), "{body}");
    let (status, body) = http(f.running.http, "GET", "/export/cutoff.rpz.txt?format=x").await;
    assert_eq!(status, 400);
    assert!(body.contains("formats: rpz, hosts"), "{body}");
    f.running.stop().await;
}

#[tokio::test]
async fn a_list_change_grows_the_serial_and_notifies_the_secondary() {
    let up = Fakeup::start().await;
    let (notify, mut told) = secondary().await;
    let f = start(&up, notify, "first.example.net\n").await;
    let addr = f.running.addr;
    let first = serial(addr).await;
    assert_eq!(wait(&mut told).await, first, "NOTIFY at start");

    // A reload with the same lists keeps the serial and sends nothing.
    f.running.state.reload().expect("reload");
    let same = f.running.state.current.load_full();
    for _ in 0..50 {
        if cutoff::rpz::built_from(&f.running.state, &same) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cutoff::rpz::built_from(&f.running.state, &same));
    assert_eq!(serial(addr).await, first);

    std::fs::write(&f.list, "first.example.net\nsecond.example.net\n").expect("rewrite");
    f.running.state.reload().expect("reload");
    let next = wait(&mut told).await;
    assert!(next > first, "{next} after {first}");
    assert_eq!(serial(addr).await, next);
    let (records, _) = axfr(addr, RecordType::AXFR).await;
    assert!(
        records
            .iter()
            .any(|r| r.name.to_string() == "second.example.net.cutoff.rpz.")
    );
    assert!(told.try_recv().is_err(), "one NOTIFY per change");

    let (_, text) = http(f.running.http, "GET", "/metrics").await;
    for (name, kind) in [
        ("cutoff_rpz_serial", "gauge"),
        ("cutoff_rpz_notify_total", "counter"),
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{text}");
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{text}");
    }
    let samples = parse_metrics(&text);
    assert_eq!(
        value(&samples, "cutoff_rpz_notify_total", &[("result", "ok")]),
        Some(2.0)
    );
    assert_eq!(
        value(
            &samples,
            "cutoff_rpz_notify_total",
            &[("result", "timeout")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&samples, "cutoff_rpz_serial", &[("zone", ZONE)]),
        Some(f64::from(next))
    );
    f.running.stop().await;
}
