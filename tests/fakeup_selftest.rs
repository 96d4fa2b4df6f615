//! Tests of the fake upstream itself, with a plain UDP/TCP client, so the
//! serving tests can trust what it answers and what it records.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::fakeup::{Fakeup, Mode, Transport};

/// How long a client waits for an answer before deciding there is none.
const WAIT: Duration = Duration::from_millis(500);

/// A query for `name`/`rtype` with ID `id` and RD set, with an OPT if `edns`.
fn query(name: &str, rtype: RecordType, id: u16, edns: bool) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    let name = Name::from_ascii(name).expect("test name is valid");
    message.add_query(Query::query(name, rtype));
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(1232);
        message.edns = Some(opt);
    }
    message.to_vec().expect("test query encodes")
}

/// A client UDP socket on 127.0.0.1.
async fn client() -> UdpSocket {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind client UDP socket")
}

/// Sends `bytes` to `to` from `socket`, then waits [`WAIT`] for one answer.
async fn udp_exchange(socket: &UdpSocket, to: SocketAddr, bytes: &[u8]) -> Option<Message> {
    socket.send_to(bytes, to).await.expect("send UDP query");
    let mut buf = vec![0u8; 65_535];
    let (len, _) = timeout(WAIT, socket.recv_from(&mut buf)).await.ok()?.ok()?;
    Some(Message::from_vec(&buf[..len]).expect("fakeup answers parse"))
}

/// Sends one length-prefixed message on `stream`.
async fn tcp_send(stream: &mut TcpStream, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("test query fits a TCP frame");
    stream
        .write_all(&len.to_be_bytes())
        .await
        .expect("send length");
    stream.write_all(bytes).await.expect("send TCP query");
}

/// Reads one length-prefixed answer from `stream`, waiting at most [`WAIT`].
async fn tcp_receive(stream: &mut TcpStream) -> Message {
    let read = async {
        let len = stream.read_u16().await.expect("read length");
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.expect("read TCP answer");
        buf
    };
    let buf = timeout(WAIT, read).await.expect("TCP answer in time");
    Message::from_vec(&buf).expect("fakeup answers parse")
}

#[tokio::test]
async fn answers_example_com_over_udp_and_records_it() {
    let fakeup = Fakeup::start().await;
    let socket = client().await;
    let bytes = query("WwW.Example.COM.", RecordType::A, 0x1234, false);
    let answer = udp_exchange(&socket, fakeup.addr(), &bytes)
        .await
        .expect("an answer");

    assert_eq!(answer.id, 0x1234);
    assert_eq!(answer.message_type, MessageType::Response);
    assert!(answer.recursion_desired && answer.recursion_available);
    assert!(!answer.truncation);
    assert_eq!(answer.response_code, ResponseCode::NoError);
    assert!(answer.edns.is_none(), "no OPT without one in the query");
    assert_eq!(answer.queries[0].name().to_ascii(), "WwW.Example.COM.");
    assert_eq!(answer.answers.len(), 1);
    assert_eq!(answer.answers[0].ttl, 300);
    assert_eq!(
        answer.answers[0].data,
        RData::A(Ipv4Addr::new(192, 0, 2, 1).into())
    );

    let seen = fakeup.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].name, "WwW.Example.COM");
    assert_eq!(seen[0].qtype, 1);
    assert_eq!(seen[0].id, 0x1234);
    assert_eq!(seen[0].transport, Transport::Udp);
    assert_eq!(seen[0].src, socket.local_addr().expect("client address"));
    assert!(!seen[0].edns);
    assert_eq!(fakeup.seen_name("www.example.com.").len(), 1);
    assert!(fakeup.seen_name("example.com").is_empty());
}

#[tokio::test]
async fn huge_answer_is_truncated_over_udp_and_full_over_tcp() {
    let fakeup = Fakeup::start().await;
    let bytes = query("huge.example.com.", RecordType::TXT, 7, true);

    let answer = udp_exchange(&client().await, fakeup.addr(), &bytes)
        .await
        .expect("a UDP answer");
    assert!(answer.truncation);
    assert!(answer.answers.is_empty() && answer.authorities.is_empty());
    assert!(answer.additionals.is_empty());
    let opt = answer.edns.as_ref().expect("an OPT for an EDNS query");
    assert_eq!(opt.max_payload(), 1232);

    let mut stream = TcpStream::connect(fakeup.addr()).await.expect("connect");
    tcp_send(&mut stream, &bytes).await;
    let answer = tcp_receive(&mut stream).await;
    assert!(!answer.truncation);
    assert_eq!(answer.answers.len(), 12);
    assert!(answer.to_vec().expect("re-encodes").len() > 3000);

    let transports: Vec<_> = fakeup.seen().iter().map(|s| s.transport).collect();
    assert_eq!(transports, [Transport::Udp, Transport::Tcp]);
    assert!(fakeup.seen().iter().all(|s| s.edns));
}

#[tokio::test]
async fn drop_mode_records_but_never_answers() {
    let fakeup = Fakeup::start().await;
    let socket = client().await;
    fakeup.set_mode(Mode::Drop);
    let bytes = query("example.com.", RecordType::A, 1, false);
    assert!(udp_exchange(&socket, fakeup.addr(), &bytes).await.is_none());
    assert_eq!(fakeup.seen_name("example.com").len(), 1);

    fakeup.set_mode(Mode::Normal);
    let answer = udp_exchange(&socket, fakeup.addr(), &bytes).await;
    assert!(answer.is_some(), "answers again once back in Normal mode");
    assert_eq!(fakeup.seen().len(), 2);
}

#[tokio::test]
async fn servfail_with_ede_carries_option_15() {
    let fakeup = Fakeup::start().await;
    let socket = client().await;

    let bytes = query("servfail-ede.example.com.", RecordType::A, 2, true);
    let answer = udp_exchange(&socket, fakeup.addr(), &bytes)
        .await
        .expect("an answer");
    assert_eq!(answer.response_code, ResponseCode::ServFail);
    let opt = answer.edns.as_ref().expect("an OPT for an EDNS query");
    let mut payload = vec![0, 6];
    payload.extend_from_slice(b"fakeup bogus");
    assert_eq!(
        opt.option(EdnsCode::Unknown(15)),
        Some(&EdnsOption::Unknown(15, payload))
    );

    let bytes = query("servfail-ede.example.com.", RecordType::A, 3, false);
    let answer = udp_exchange(&socket, fakeup.addr(), &bytes)
        .await
        .expect("an answer");
    assert_eq!(answer.response_code, ResponseCode::ServFail);
    assert!(answer.edns.is_none());
}

#[tokio::test]
async fn servfail_and_delay_modes_apply_to_later_queries() {
    let fakeup = Fakeup::start().await;
    let (slow, fast) = (client().await, client().await);
    let bytes = query("example.com.", RecordType::AAAA, 4, false);

    fakeup.set_mode(Mode::ServFail);
    let answer = udp_exchange(&fast, fakeup.addr(), &bytes)
        .await
        .expect("an answer");
    assert_eq!(answer.response_code, ResponseCode::ServFail);
    assert!(answer.answers.is_empty());

    fakeup.set_mode(Mode::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    slow.send_to(&bytes, fakeup.addr()).await.expect("send");
    // Wait until the slow query is recorded, so it was read in Delay mode.
    while fakeup.seen().len() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fakeup.set_mode(Mode::Normal);
    let answer = udp_exchange(&fast, fakeup.addr(), &bytes)
        .await
        .expect("a prompt answer while another query is delayed");
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(answer.answers.len(), 1);

    let mut buf = vec![0u8; 65_535];
    let (len, _) = timeout(WAIT, slow.recv_from(&mut buf))
        .await
        .expect("the delayed answer arrives")
        .expect("receive");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let answer = Message::from_vec(&buf[..len]).expect("parses");
    assert_eq!(answer.answers.len(), 1);
}

#[tokio::test]
async fn malformed_bytes_are_ignored_and_unknown_names_get_nxdomain_over_tcp() {
    let fakeup = Fakeup::start().await;
    let garbage = [0xde, 0xad, 0xbe, 0xef, 0x01];
    assert!(
        udp_exchange(&client().await, fakeup.addr(), &garbage)
            .await
            .is_none()
    );

    let mut stream = TcpStream::connect(fakeup.addr()).await.expect("connect");
    tcp_send(&mut stream, &garbage).await;
    tcp_send(
        &mut stream,
        &query("a.nx.example.com.", RecordType::A, 5, false),
    )
    .await;
    tcp_send(
        &mut stream,
        &query("alias.example.com.", RecordType::ANY, 6, false),
    )
    .await;

    let answer = tcp_receive(&mut stream).await;
    assert_eq!(answer.id, 5);
    assert_eq!(answer.response_code, ResponseCode::NXDomain);
    assert!(answer.answers.is_empty());
    assert_eq!(answer.authorities.len(), 1);
    assert_eq!(answer.authorities[0].record_type(), RecordType::SOA);

    let answer = tcp_receive(&mut stream).await;
    assert_eq!(answer.id, 6);
    let types: Vec<_> = answer.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, [RecordType::CNAME, RecordType::A]);

    let qtypes: Vec<_> = fakeup.seen().iter().map(|s| s.qtype).collect();
    assert_eq!(qtypes, [1, 255], "garbage is not recorded");
}
