//! A real upstream DNS server for the integration tests: it runs in-process
//! on the test's tokio runtime, listens on 127.0.0.1 over UDP and TCP (one
//! port for both), answers from a small fixed zone under `example.com`, and
//! records every query it receives, so a test can prove that a blocked name
//! never reached the upstream.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;

/// The EDNS payload size the server advertises in its answers.
const MAX_PAYLOAD: u16 = 1232;
/// The EDNS option code of Extended DNS Errors (RFC 8914).
const EDE_CODE: u16 = 15;
/// The EDE INFO-CODE sent for `servfail-ede.example.com` (6: DNSSEC Bogus).
const EDE_INFO_CODE: u16 = 6;
/// The EDE EXTRA-TEXT sent for `servfail-ede.example.com`.
const EDE_TEXT: &str = "fakeup bogus";
/// How long a TCP connection may sit idle before the server closes it.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The TTL of every zone record unless stated otherwise.
const TTL: u32 = 300;

/// How the server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Answer from the zone below.
    Normal,
    /// Read the query, record it, never answer.
    Drop,
    /// Answer every query SERVFAIL.
    ServFail,
    /// Answer after this delay (from the zone).
    Delay(Duration),
}

/// Transport a query came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// A UDP datagram.
    Udp,
    /// A length-prefixed message on a TCP connection.
    Tcp,
}

/// One query as received.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// The qname as received: presentation form, no trailing dot, case preserved.
    pub(crate) name: String,
    /// The QTYPE.
    pub(crate) qtype: u16,
    /// The message ID.
    pub(crate) id: u16,
    /// The transport the query came over.
    pub(crate) transport: Transport,
    /// The sender's address.
    pub(crate) src: SocketAddr,
    /// Whether the query carried an OPT record.
    pub(crate) edns: bool,
}

/// What the serving tasks share with the handle.
struct State {
    /// Every query received so far, in order.
    seen: Vec<Seen>,
    /// How to answer from now on.
    mode: Mode,
}

/// The state shared between the handle and the serving tasks.
type Shared = Arc<Mutex<State>>;

/// Locks the state; a panic elsewhere while holding it does not lose it.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake upstream; dropping it stops its tasks.
pub(crate) struct Fakeup {
    /// The address (UDP and TCP).
    addr: SocketAddr,
    /// Recorded queries and the current mode.
    state: Shared,
    /// The UDP and TCP serving tasks.
    tasks: Vec<JoinHandle<()>>,
}

impl Fakeup {
    /// Binds UDP and TCP on 127.0.0.1 (one port for both; retry with a new
    /// port if TCP cannot bind the UDP port) and spawns the serving tasks on
    /// the current tokio runtime.
    pub(crate) async fn start() -> Self {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("fakeup: UDP socket has an address");
        let state: Shared = Arc::new(Mutex::new(State {
            seen: Vec::new(),
            mode: Mode::Normal,
        }));
        let tasks = vec![
            tokio::spawn(serve_udp(Arc::new(udp), Arc::clone(&state))),
            tokio::spawn(serve_tcp(tcp, Arc::clone(&state))),
        ];
        Self { addr, state, tasks }
    }

    /// The address (UDP and TCP).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every query received so far, in order.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        lock(&self.state).seen.clone()
    }

    /// Queries received so far whose name equals `name` case-insensitively
    /// (trailing dot ignored).
    pub(crate) fn seen_name(&self, name: &str) -> Vec<Seen> {
        let want = name.strip_suffix('.').unwrap_or(name);
        lock(&self.state)
            .seen
            .iter()
            .filter(|seen| seen.name.eq_ignore_ascii_case(want))
            .cloned()
            .collect()
    }

    /// Changes how it answers from now on.
    pub(crate) fn set_mode(&self, mode: Mode) {
        lock(&self.state).mode = mode;
    }
}

impl Drop for Fakeup {
    fn drop(&mut self) {
        // Each task owns a JoinSet of its children, which aborts them when dropped.
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Binds a UDP socket and a TCP listener on the same 127.0.0.1 port.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..64 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("fakeup: bind UDP on 127.0.0.1");
        let addr = udp.local_addr().expect("fakeup: UDP socket has an address");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("fakeup: no 127.0.0.1 port free for both UDP and TCP after 64 tries");
}

/// Receives datagrams and answers them; in Delay mode each answer is sent
/// from its own task so a delayed query does not hold up the next one.
async fn serve_udp(socket: Arc<UdpSocket>, state: Shared) {
    let mut delayed = JoinSet::new();
    let mut buf = vec![0u8; 65_535];
    loop {
        while delayed.try_join_next().is_some() {}
        let Ok((len, src)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Some((query, mode)) = receive(&state, &buf[..len], Transport::Udp, src) else {
            continue;
        };
        if let Mode::Delay(delay) = mode {
            let socket = Arc::clone(&socket);
            delayed.spawn(async move {
                tokio::time::sleep(delay).await;
                if let Some(bytes) = respond(&query, Transport::Udp, mode) {
                    let _ = socket.send_to(&bytes, src).await;
                }
            });
        } else if let Some(bytes) = respond(&query, Transport::Udp, mode) {
            let _ = socket.send_to(&bytes, src).await;
        }
    }
}

/// Accepts TCP connections, each served by its own task.
async fn serve_tcp(listener: TcpListener, state: Shared) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if let Ok((stream, src)) = listener.accept().await {
            connections.spawn(serve_connection(stream, src, Arc::clone(&state)));
        }
    }
}

/// Serves length-prefixed queries on one connection, one after another,
/// until the peer closes it or it has been idle for [`TCP_IDLE`].
async fn serve_connection(mut stream: TcpStream, src: SocketAddr, state: Shared) {
    loop {
        let Ok(Ok(len)) = timeout(TCP_IDLE, stream.read_u16()).await else {
            return;
        };
        let mut buf = vec![0u8; usize::from(len)];
        let Ok(Ok(_)) = timeout(TCP_IDLE, stream.read_exact(&mut buf)).await else {
            return;
        };
        let Some((query, mode)) = receive(&state, &buf, Transport::Tcp, src) else {
            continue;
        };
        if let Mode::Delay(delay) = mode {
            tokio::time::sleep(delay).await;
        }
        let Some(bytes) = respond(&query, Transport::Tcp, mode) else {
            continue;
        };
        let Ok(len) = u16::try_from(bytes.len()) else {
            continue;
        };
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&bytes);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// Parses a query and records it; returns it with the mode to answer in.
/// Bytes that are not a query with a question are neither recorded nor answered.
fn receive(
    state: &Mutex<State>,
    bytes: &[u8],
    transport: Transport,
    src: SocketAddr,
) -> Option<(Message, Mode)> {
    let query = Message::from_vec(bytes).ok()?;
    if query.message_type != MessageType::Query {
        return None;
    }
    let question = query.queries.first()?;
    let ascii = question.name().to_ascii();
    let seen = Seen {
        name: ascii.strip_suffix('.').unwrap_or(&ascii).to_owned(),
        qtype: u16::from(question.query_type()),
        id: query.id,
        transport,
        src,
        edns: query.edns.is_some(),
    };
    let mut state = lock(state);
    state.seen.push(seen);
    Some((query, state.mode))
}

/// The wire answer to `query` in `mode`, or `None` when it must not be answered.
fn respond(query: &Message, transport: Transport, mode: Mode) -> Option<Vec<u8>> {
    let answer = match mode {
        Mode::Drop => return None,
        Mode::ServFail => reply(query, ResponseCode::ServFail),
        Mode::Normal | Mode::Delay(_) => zone(query, transport),
    };
    answer.to_vec().ok()
}

/// An empty response to `query`: its ID, opcode, question and RD flag, with
/// QR and RA set, and an OPT (payload 1232) if and only if the query had one.
fn reply(query: &Message, rcode: ResponseCode) -> Message {
    let mut answer = Message::response(query.id, query.op_code);
    answer.metadata.recursion_desired = query.recursion_desired;
    answer.metadata.recursion_available = true;
    answer.metadata.response_code = rcode;
    answer.queries = query.queries.clone();
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_PAYLOAD);
        answer.edns = Some(edns);
    }
    answer
}

/// The answer from the fixed zone: `example.com` and `www` (A, AAAA),
/// `short-ttl` (A, TTL 2), `a.b` and `a\.b` (A, two addresses), `alias`
/// (CNAME into `upd.kaspersky.com`), `kasperskyip` (A in 91.103.64.0/21),
/// `many` (40 A), `huge` (12 TXT; TC over UDP), `tc-only` (TC over UDP, A
/// over TCP), `servfail-ede` (SERVFAIL with EDE 6 under EDNS); known names without the type get NODATA, all other
/// names NXDOMAIN, both with the SOA in authority.
fn zone(query: &Message, transport: Transport) -> Message {
    let mut answer = reply(query, ResponseCode::NoError);
    let Some(question) = query.queries.first() else {
        answer.metadata.response_code = ResponseCode::FormErr;
        return answer;
    };
    let qname = question.name();
    let qtype = question.query_type();
    let wants = |rtype: RecordType| qtype == rtype || qtype == RecordType::ANY;
    let record = |ttl: u32, rdata: RData| Record::from_rdata(qname.clone(), ttl, rdata);
    let a = |ip: [u8; 4]| RData::A(A(Ipv4Addr::from(ip)));
    let udp = transport == Transport::Udp;

    let ascii = qname.to_ascii().to_ascii_lowercase();
    match ascii.strip_suffix('.').unwrap_or(&ascii) {
        "example.com" | "www.example.com" => {
            if wants(RecordType::A) {
                answer.answers.push(record(TTL, a([192, 0, 2, 1])));
            }
            if wants(RecordType::AAAA) {
                let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
                answer.answers.push(record(TTL, RData::AAAA(AAAA(ip))));
            }
        }
        "short-ttl.example.com" if wants(RecordType::A) => {
            answer.answers.push(record(2, a([192, 0, 2, 2])));
        }
        // Three labels, and two (`a.b` holds a dot): distinct names.
        "a.b.example.com" if wants(RecordType::A) => {
            answer.answers.push(record(TTL, a([192, 0, 2, 31])));
        }
        "a\\.b.example.com" if wants(RecordType::A) => {
            answer.answers.push(record(TTL, a([192, 0, 2, 32])));
        }
        "alias.example.com" => {
            let target = name("s05.upd.kaspersky.com.");
            answer
                .answers
                .push(record(TTL, RData::CNAME(CNAME(target.clone()))));
            if wants(RecordType::A) {
                let rdata = a([203, 0, 113, 5]);
                answer.answers.push(Record::from_rdata(target, TTL, rdata));
            }
        }
        "kasperskyip.example.com" if wants(RecordType::A) => {
            answer.answers.push(record(TTL, a([91, 103, 66, 155])));
        }
        "many.example.com" if wants(RecordType::A) => {
            for last in 1..=40 {
                answer.answers.push(record(TTL, a([198, 51, 100, last])));
            }
        }
        "huge.example.com" | "tc-only.example.com" if udp => {
            answer.metadata.truncation = true;
            return answer;
        }
        "huge.example.com" if wants(RecordType::TXT) => {
            for index in 0..12 {
                let text = format!("{index:02}{}", "x".repeat(248));
                answer
                    .answers
                    .push(record(TTL, RData::TXT(TXT::new(vec![text]))));
            }
        }
        "tc-only.example.com" if wants(RecordType::A) => {
            answer.answers.push(record(TTL, a([192, 0, 2, 99])));
        }
        "servfail-ede.example.com" => {
            answer.metadata.response_code = ResponseCode::ServFail;
            if let Some(edns) = answer.edns.as_mut() {
                let mut payload = EDE_INFO_CODE.to_be_bytes().to_vec();
                payload.extend_from_slice(EDE_TEXT.as_bytes());
                let option = EdnsOption::Unknown(EDE_CODE, payload);
                edns.options_mut().insert(option);
            }
            return answer;
        }
        // Names in the zone without records of the asked type: NODATA.
        "short-ttl.example.com"
        | "a.b.example.com"
        | "a\\.b.example.com"
        | "kasperskyip.example.com"
        | "many.example.com"
        | "huge.example.com"
        | "tc-only.example.com" => {}
        // Everything else, `nx.example.com` and below included.
        _ => answer.metadata.response_code = ResponseCode::NXDomain,
    }
    if answer.answers.is_empty() {
        answer.authorities.push(soa());
    }
    answer
}

/// The zone's SOA record, sent in the authority section of negative answers.
fn soa() -> Record {
    let rdata = SOA::new(
        name("ns.example.com."),
        name("hostmaster.example.com."),
        1,
        3600,
        600,
        86_400,
        60,
    );
    Record::from_rdata(name("example.com."), 60, RData::SOA(rdata))
}

/// Parses a name written in this file.
fn name(ascii: &str) -> Name {
    Name::from_ascii(ascii).expect("fakeup: a zone name in the source is valid")
}
