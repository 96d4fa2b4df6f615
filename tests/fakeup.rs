//! A real upstream DNS server for the integration tests: it runs in-process
//! on the test's tokio runtime, listens on 127.0.0.1 over UDP and TCP (one
//! port for both), answers from a small fixed zone under `example.com`, and
//! records every query it receives, so a test can prove that a blocked name
//! never reached the upstream. The odd servers of the conformance tests (a
//! dropping relay, one that rejects EDNS, an authoritative, a validating
//! one, answers hickory cannot parse) live in [`odd`].

mod odd;
mod zone;

use zone::zone;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
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
    /// FORMERR (no OPT) to every query with EDNS; from the zone otherwise.
    FormErrOnEdns,
    /// No answer to queries with EDNS (a firewall that drops them); from
    /// the zone otherwise.
    DropEdns,
    /// From the zone, but never an OPT (a server that ignores EDNS).
    IgnoreEdns,
    /// From the zone as an authoritative server would: AA=1, RA=0.
    Authoritative,
    /// From the zone as a validating resolver would: AD=1 when the query
    /// has AD=1 or DO=1 (RFC 6840 §5.7).
    Validating,
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
    /// The query's RD, CD and AD bits, and the DO bit of its OPT.
    pub(crate) rd: bool,
    /// CD.
    pub(crate) cd: bool,
    /// AD.
    pub(crate) ad: bool,
    /// DO.
    pub(crate) dnssec_ok: bool,
}

/// What the serving tasks share with the handle.
struct State {
    /// Every query received so far, in order.
    seen: Vec<Seen>,
    /// How to answer from now on.
    mode: Mode,
    /// UDP queries still to be dropped (recorded, never answered).
    drop_udp: u32,
    /// Every answer sent, in order.
    sent: Vec<Vec<u8>>,
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
    /// Releases the answers to `hold.example.com`.
    release: watch::Sender<bool>,
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
            drop_udp: 0,
            sent: Vec::new(),
        }));
        let (release, held) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(serve_udp(Arc::new(udp), Arc::clone(&state), held.clone())),
            tokio::spawn(serve_tcp(tcp, Arc::clone(&state), held)),
        ];
        Self {
            addr,
            state,
            tasks,
            release,
        }
    }

    /// Drops the next `n` UDP queries (recorded, never answered): a lossy
    /// path between cutoff and its upstream.
    pub(crate) fn drop_next_udp(&self, n: u32) {
        lock(&self.state).drop_udp = n;
    }

    /// Every answer sent so far, in order, as bytes.
    pub(crate) fn sent(&self) -> Vec<Vec<u8>> {
        lock(&self.state).sent.clone()
    }

    /// Sends the answers to `hold.example.com`, held until now.
    pub(crate) fn release(&self) {
        let _ = self.release.send(true);
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
async fn serve_udp(socket: Arc<UdpSocket>, state: Shared, held: watch::Receiver<bool>) {
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
        let hold = odd::held(&query);
        if matches!(mode, Mode::Delay(_)) || hold {
            let (socket, state, mut held) = (Arc::clone(&socket), Arc::clone(&state), held.clone());
            delayed.spawn(async move {
                if let Mode::Delay(delay) = mode {
                    tokio::time::sleep(delay).await;
                }
                if hold {
                    let _ = held.wait_for(|released| *released).await;
                }
                if let Some(bytes) = respond(&state, &query, Transport::Udp, mode) {
                    let _ = socket.send_to(&bytes, src).await;
                }
            });
        } else if let Some(bytes) = respond(&state, &query, Transport::Udp, mode) {
            let _ = socket.send_to(&bytes, src).await;
        }
    }
}

/// Accepts TCP connections, each served by its own task.
async fn serve_tcp(listener: TcpListener, state: Shared, held: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if let Ok((stream, src)) = listener.accept().await {
            connections.spawn(serve_connection(
                stream,
                src,
                Arc::clone(&state),
                held.clone(),
            ));
        }
    }
}

/// Serves length-prefixed queries on one connection, one after another,
/// until the peer closes it or it has been idle for [`TCP_IDLE`].
async fn serve_connection(
    mut stream: TcpStream,
    src: SocketAddr,
    state: Shared,
    mut held: watch::Receiver<bool>,
) {
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
        if odd::held(&query) {
            let _ = held.wait_for(|released| *released).await;
        }
        let Some(bytes) = respond(&state, &query, Transport::Tcp, mode) else {
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
        rd: query.recursion_desired,
        cd: query.checking_disabled,
        ad: query.authentic_data,
        dnssec_ok: query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
    };
    let mut state = lock(state);
    state.seen.push(seen);
    if transport == Transport::Udp && state.drop_udp > 0 {
        state.drop_udp -= 1;
        return None;
    }
    Some((query, state.mode))
}

/// The wire answer to `query` in `mode` (recorded as sent), or `None` when
/// it must not be answered.
fn respond(
    state: &Mutex<State>,
    query: &Message,
    transport: Transport,
    mode: Mode,
) -> Option<Vec<u8>> {
    let bytes = match odd::answer(query, mode) {
        Some(bytes) => bytes,
        None => match mode {
            Mode::Drop => return None,
            Mode::DropEdns if query.edns.is_some() => return None,
            Mode::ServFail => reply(query, ResponseCode::ServFail).to_vec().ok()?,
            _ => zone(query, transport).to_vec().ok()?,
        },
    };
    let bytes = odd::adjust(bytes, query, mode);
    lock(state).sent.push(bytes.clone());
    Some(bytes)
}

/// An empty response to `query`: its ID, opcode, question and RD flag, with
/// QR and RA set, and an OPT (payload 1232) if and only if the query had one.
pub(crate) fn reply(query: &Message, rcode: ResponseCode) -> Message {
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
