//! Malformed and hostile packets against the real server over real sockets
//! (reliability plan P-MAL-1, P-MAL-3 and P-MAL-4): ten thousand seeded
//! mutations of valid queries over UDP, answers sent to it as if they were
//! questions (QR=1), and broken TCP framing. The server must keep answering,
//! reply only with QR=1 and an ID it was sent, never reply to a QR=1 packet,
//! and close a broken TCP connection within its idle timeout.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::fakeup::Fakeup;
use crate::harness::{Running, http, parse_metrics, query, serve, tcp_connect, udp, value};

/// Blocks the Kaspersky update names for every client; everything else is
/// forwarded to the fake upstream.
const CONFIG: &str = "
upstreams: [\"{upstream}\"]
upstream_timeout: 500ms
lists:
  kaspersky: {builtin: kaspersky}
rules:
  - {name: cutoff, lists: [kaspersky], categories: [update, telemetry, activation], action: block}
";

/// The blocked name every canary asks for (answered NXDOMAIN locally).
const CANARY: &str = "s05.upd.kaspersky.com.";

/// The TCP idle timeout of the framing test's server.
const IDLE: Duration = Duration::from_secs(1);

/// Packets the mutation test sends.
const MUTATIONS: usize = 10_000;

/// An OPT record advertising 1232 bytes.
const OPT: [u8; 11] = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];

/// xorshift64: the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

/// The valid queries the mutations start from.
fn bases() -> Vec<Vec<u8>> {
    [
        query(CANARY, RecordType::A, Some(1232)),
        query("www.example.com.", RecordType::AAAA, None),
        query("example.com.", RecordType::ANY, Some(4096)),
        query("nx.example.com.", RecordType::MX, Some(512)),
    ]
    .iter()
    .map(|m| m.to_vec().expect("encode"))
    .collect()
}

/// Where the question name of an uncompressed query ends (its QTYPE).
fn name_end(p: &[u8]) -> usize {
    let mut at = 12;
    while p[at] != 0 {
        at += 1 + usize::from(p[at]);
    }
    at + 1
}

/// Adds `n` to the header count at `at` (4: QD, 6: AN, 8: NS, 10: AR).
fn add_count(p: &mut [u8], at: usize, n: u16) {
    let count = u16::from_be_bytes([p[at], p[at + 1]]).wrapping_add(n);
    p[at..at + 2].copy_from_slice(&count.to_be_bytes());
}

/// One hostile variant of `base`, with `id` as its ID where it has one.
fn mutate(rng: &mut Rng, base: &[u8], id: u16) -> Vec<u8> {
    let mut p = base.to_vec();
    p[0..2].copy_from_slice(&id.to_be_bytes());
    let qtype = name_end(&p);
    match rng.below(15) {
        0 => {
            for _ in 0..=rng.below(8) {
                let i = rng.below(p.len());
                p[i] ^= 1 << rng.below(8);
            }
        }
        1 => p.truncate(rng.below(p.len())),
        2 => {
            let field = 4 + 2 * rng.below(4);
            let count: u16 = [0, 2, u16::MAX][rng.below(3)];
            p[field..field + 2].copy_from_slice(&count.to_be_bytes());
        }
        // A compression pointer to itself, and a label then a pointer back.
        3 => drop(p.splice(12..qtype, [0xc0, 12])),
        4 => drop(p.splice(12..qtype, [1, b'a', 0xc0, 12])),
        // A pointer forward, into the question's own type field.
        5 => drop(p.splice(12..qtype, [0xc0, 14])),
        6 => {
            let mut name = vec![64];
            name.extend([b'a'; 64]);
            name.push(0);
            drop(p.splice(12..qtype, name));
        }
        // 256 bytes on the wire: one more than a name may have.
        7 => {
            let mut name = Vec::new();
            for len in [63u8, 63, 63, 62] {
                name.push(len);
                name.extend(std::iter::repeat_n(b'b', usize::from(len)));
            }
            name.push(0);
            drop(p.splice(12..qtype, name));
        }
        8 => p.clear(),
        9 => {
            p.truncate(12);
            for b in &mut p[2..] {
                *b = rng.byte();
            }
        }
        10 => {
            p.extend_from_slice(&OPT);
            p.extend_from_slice(&OPT);
            add_count(&mut p, 10, 2);
        }
        // An OPT record in the answer section.
        11 => {
            p.extend_from_slice(&OPT);
            add_count(&mut p, 6, 1);
        }
        12 => {
            let t: u16 = if rng.below(2) == 0 { 0 } else { u16::MAX };
            p[qtype..qtype + 2].copy_from_slice(&t.to_be_bytes());
        }
        13 => {
            let class: u16 = if rng.below(2) == 0 { 3 } else { 255 };
            p[qtype + 2..qtype + 4].copy_from_slice(&class.to_be_bytes());
        }
        _ => p = (0..rng.below(512)).map(|_| rng.byte()).collect(),
    }
    p
}

/// The canary: a blocked name from 127.0.0.1 is answered NXDOMAIN.
async fn canary(server: SocketAddr) {
    let q = query(CANARY, RecordType::A, None);
    let (m, _) = udp(server, "127.0.0.1", &q).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.queries, q.queries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mutated_packets_leave_the_server_answering() {
    let up = Fakeup::start().await;
    let s = serve(CONFIG, up.addr()).await;
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let bases = bases();
    let packets: Vec<Vec<u8>> = (0..MUTATIONS)
        .map(|i| {
            let id = u16::try_from(i).expect("one ID each");
            mutate(&mut rng, &bases[i % bases.len()], id)
        })
        .collect();
    let sent: HashSet<u16> = packets
        .iter()
        .filter(|p| p.len() >= 2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();

    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let receiver = tokio::spawn({
        let sock = sock.clone();
        async move {
            let mut replies = Vec::new();
            let mut buf = vec![0u8; 65535];
            loop {
                tokio::select! {
                    r = sock.recv_from(&mut buf) => if let Ok((n, _)) = r {
                        replies.push(buf[..n].to_vec());
                    },
                    _ = &mut stopped => break,
                }
            }
            replies
        }
    });

    // 10 packets every 10 ms (1,000 a second), a canary after every 1,000.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for (i, chunk) in packets.chunks(10).enumerate() {
        tick.tick().await;
        for p in chunk {
            let _ = sock.send_to(p, s.addr).await;
        }
        if (i + 1) % 100 == 0 {
            canary(s.addr).await;
        }
    }
    // Forwarded ones take up to the upstream timeout.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(());
    let replies = receiver.await.expect("receiver");

    assert!(!replies.is_empty(), "no reply to {MUTATIONS} packets");
    for r in &replies {
        assert!(r.len() >= 12, "a reply shorter than a header: {r:02x?}");
        assert!(r[2] & 0x80 != 0, "a reply without QR=1: {r:02x?}");
        let id = u16::from_be_bytes([r[0], r[1]]);
        assert!(sent.contains(&id), "a reply with an ID never sent: {id}");
        let m = Message::from_vec(r).unwrap_or_else(|e| panic!("reply {r:02x?}: {e}"));
        assert_eq!(m.metadata.message_type, MessageType::Response);
    }
    canary(s.addr).await;
    let (m, _) = udp(
        s.addr,
        "127.0.0.1",
        &query("www.example.com.", RecordType::A, Some(1232)),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.answers.is_empty(), "forwarding still works: {m:?}");
    s.stop().await;
}

/// `cutoff_dropped_total{reason="qr_set"}` now.
async fn qr_dropped(s: &Running) -> f64 {
    let (status, body) = http(s.http, "GET", "/metrics").await;
    assert_eq!(status, 200);
    value(
        &parse_metrics(&body),
        "cutoff_dropped_total",
        &[("reason", "qr_set")],
    )
    .expect("the qr_set series")
}

/// A real answer (compressed, with a record), as an upstream would send it.
fn response(id: u16) -> Vec<u8> {
    let mut m = query("www.example.com.", RecordType::A, None);
    m.metadata.id = id;
    m.metadata.message_type = MessageType::Response;
    m.add_answer(Record::from_rdata(
        Name::from_ascii("www.example.com.").expect("name"),
        300,
        RData::A(A([192, 0, 2, 1].into())),
    ));
    m.to_vec().expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_with_qr_set_get_no_reply_and_are_counted() {
    let up = Fakeup::start().await;
    let s = serve(CONFIG, up.addr()).await;
    let before = qr_dropped(&s).await;
    let sock = UdpSocket::bind("127.0.0.5:0")
        .await
        .expect("bind 127.0.0.5");
    let bases = bases();
    for i in 0..100u16 {
        // Half are queries with QR flipped, half real answers.
        let p = if i % 2 == 0 {
            let mut p = bases[usize::from(i / 2) % bases.len()].clone();
            p[2] |= 0x80;
            p
        } else {
            response(i)
        };
        sock.send_to(&p, s.addr).await.expect("send");
    }
    let mut buf = vec![0u8; 65535];
    let got = tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await;
    assert!(got.is_err(), "a QR=1 packet was answered: {got:?}");
    // Every packet has been handled once the counter stops short of 100.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = qr_dropped(&s).await;
    while after < before + 100.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = qr_dropped(&s).await;
    }
    assert_eq!(after - before, 100.0, "dropped qr_set");
    s.stop().await;
}

/// `data` behind a length prefix of `len` (which need not match).
fn framed(len: u16, data: &[u8]) -> Vec<u8> {
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(data);
    out
}

/// Reads until the server closes the connection, which must happen within
/// the idle timeout and a second; what it sent meanwhile.
async fn closes_in_time(stream: &mut TcpStream, case: &str) -> Vec<u8> {
    let wait = IDLE + Duration::from_secs(1);
    let mut got = Vec::new();
    let closed = tokio::time::timeout(wait, stream.read_to_end(&mut got)).await;
    assert!(closed.is_ok(), "{case}: still open after {wait:?}");
    got
}

/// The complete messages in a TCP byte stream.
fn messages(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((len, rest)) = bytes.split_first_chunk::<2>() {
        let Some(msg) = rest.get(..usize::from(u16::from_be_bytes(*len))) else {
            break;
        };
        out.push(msg);
        bytes = &rest[msg.len()..];
    }
    out
}

/// The next message on a connection (bounded wait).
async fn read_message(stream: &mut TcpStream) -> Message {
    let buf = crate::harness::read_frame(stream)
        .await
        .expect("an answer within 5 s, before the connection closed");
    Message::from_vec(&buf).expect("the answer parses")
}

/// One bad framing case: send `bytes`, then wait for the server to close.
async fn bad_framing(server: SocketAddr, case: &str, bytes: Vec<u8>) {
    let mut stream = tcp_connect(server, "127.0.0.1").await;
    stream.write_all(&bytes).await.expect("write");
    let got = closes_in_time(&mut stream, case).await;
    for m in messages(&got) {
        assert!(m.len() >= 12 && m[2] & 0x80 != 0, "{case}: {m:02x?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_tcp_framing_is_closed_within_the_idle_timeout() {
    let up = Fakeup::start().await;
    let s = serve(&format!("{CONFIG}tcp: {{idle_timeout: 1s}}\n"), up.addr()).await;
    let valid = query(CANARY, RecordType::A, None);
    let bytes = valid.to_vec().expect("encode");
    let len = u16::try_from(bytes.len()).expect("len");

    let garbage_then_valid = async {
        let mut stream = tcp_connect(s.addr, "127.0.0.1").await;
        // QDCOUNT 65535 and no question behind it: FORMERR, then the query.
        let mut garbage = vec![0xab, 0xcd, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0];
        garbage.extend([0xff; 18]);
        let mut out = framed(30, &garbage);
        out.extend(framed(len, &bytes));
        stream.write_all(&out).await.expect("write");
        let formerr = read_message(&mut stream).await;
        assert_eq!(formerr.metadata.id, 0xabcd);
        assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);
        let answer = read_message(&mut stream).await;
        assert_eq!(answer.metadata.id, valid.metadata.id);
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(answer.queries, valid.queries);
        closes_in_time(&mut stream, "garbage then a valid query").await;
    };
    tokio::join!(
        bad_framing(
            s.addr,
            "a prefix shorter than the header",
            framed(5, &bytes[..5])
        ),
        bad_framing(
            s.addr,
            "a prefix longer than the data",
            framed(100, &bytes[..20])
        ),
        bad_framing(s.addr, "a prefix cutting the message", framed(20, &bytes)),
        garbage_then_valid,
    );
    s.stop().await;
}
