//! Listeners: UDP and TCP on every listen address, with the limits that keep
//! one abusive client from starving the rest.
//!
//! Sits at the edge of the query flow: bytes in, [`pipeline`] in the middle,
//! bytes out. A UDP receive loop answers what needs no upstream (blocks,
//! refusals, cache hits) itself and keeps its cache misses as futures it
//! polls (no task each; their number is capped), and sends the replies of
//! a batch together (docs/adr/0009-udp-workers-and-batches.md).
//!
//! TCP has a cap on open connections (a full table evicts the connection
//! idle the longest) and on connections per client, an idle timeout and a
//! cap on queries per connection, so a flood of idle connections cannot
//! stop UDP or new TCP clients.
//!
//! We run our own loops over tokio sockets instead of `hickory_server::Server`,
//! which has none of these caps: see docs/adr/0001-own-listeners.md.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::stream::StreamExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::metrics::Dropped;
use crate::pipeline::{self, Step};
use crate::query::Protocol;
use crate::ratelimit;
use crate::runtime::State;

// With `pktinfo`, the modules with `unsafe` code: the libc calls behind
// recvmmsg (ADR 0009) and IP_PKTINFO (ADR 0002).
#[allow(unsafe_code)]
mod batch;
mod conns;
mod https;
#[allow(unsafe_code)]
mod pktinfo;
mod slots;
mod tcp;
mod tls;

pub use https::Settings as HttpsSettings;
pub use tls::Settings as TlsSettings;

/// Bound sockets, before serving starts.
#[derive(Debug)]
pub struct Listeners {
    /// One UDP socket per listen address.
    pub udp: Vec<UdpSocket>,
    /// One TCP listener per listen address.
    pub tcp: Vec<TcpListener>,
    /// DoT listeners (`listen_tls`) and their certificate pair.
    pub tls: Vec<TcpListener>,
    /// The certificate pair and handshake timeout, when `tls` is not empty.
    pub tls_settings: Option<TlsSettings>,
    /// DoH listeners (`listen_https`).
    pub https: Vec<TcpListener>,
    /// Their certificate pair (ALPN `h2`, `http/1.1`) and what they serve.
    pub https_settings: Option<(TlsSettings, HttpsSettings)>,
}

impl Listeners {
    /// Binds UDP and TCP on every address (port 0 picks one port for both).
    /// IPv6 sockets are IPv6-only, so `0.0.0.0:53` and `[::]:53` can be
    /// listed together whatever the host's `bindv6only` says.
    pub async fn bind(addrs: &[SocketAddr]) -> io::Result<Self> {
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for addr in addrs {
            let (u, t) = bind_pair(*addr)?;
            udp.push(u);
            tcp.push(t);
        }
        Ok(Self {
            udp,
            tcp,
            tls: Vec::new(),
            tls_settings: None,
            https: Vec::new(),
            https_settings: None,
        })
    }

    /// Binds a DoT listener on every address in `addrs`.
    pub fn bind_tls(&mut self, addrs: &[SocketAddr], settings: TlsSettings) -> io::Result<()> {
        for addr in addrs {
            let t = bind_tcp(*addr).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot listen on tls {addr}: {e}"))
            })?;
            self.tls.push(t);
        }
        self.tls_settings = Some(settings);
        Ok(())
    }

    /// Binds a DoH listener on every address in `addrs`.
    pub fn bind_https(
        &mut self,
        addrs: &[SocketAddr],
        tls: TlsSettings,
        settings: HttpsSettings,
    ) -> io::Result<()> {
        for addr in addrs {
            let t = bind_tcp(*addr).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot listen on https {addr}: {e}"))
            })?;
            self.https.push(t);
        }
        self.https_settings = Some((tls, settings));
        Ok(())
    }

    /// The bound DoH addresses.
    pub fn https_addrs(&self) -> Vec<SocketAddr> {
        self.https
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The bound DoT addresses.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.tls
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// Opens `threads - 1` more UDP sockets on each bound UDP address, so
    /// each worker thread has a receive loop of its own
    /// (docs/adr/0009-udp-workers-and-batches.md).
    fn spread(&mut self, threads: usize) -> io::Result<Vec<UdpSocket>> {
        let mut more = Vec::new();
        for addr in self.addrs() {
            for _ in 1..threads {
                more.push(bind_udp(addr).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot open another udp socket on {addr}: {e}"),
                    )
                })?);
            }
        }
        Ok(more)
    }

    /// The bound UDP addresses (the TCP ones are the same).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }
}

/// Tries at a port that is free for both UDP and TCP when the port is 0.
const PAIR_TRIES: usize = 32;

/// A UDP socket and a TCP listener on the same address and port. With port
/// 0 the kernel picks the UDP port, and that port may be taken for TCP (by
/// another program's listener or an outgoing connection); then another UDP
/// port is picked, up to [`PAIR_TRIES`] times. The rejected UDP sockets are
/// held until the end, so the kernel cannot pick one of their ports again.
/// A port given in the config is bound once: an error there is the user's
/// to see.
fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut rejected = Vec::new();
    loop {
        let u = bind_udp(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on udp {addr}: {e}")))?;
        let bound = u.local_addr()?;
        match bind_tcp(bound) {
            Ok(t) => return Ok((u, t)),
            Err(e)
                if addr.port() == 0
                    && e.kind() == io::ErrorKind::AddrInUse
                    && rejected.len() + 1 < PAIR_TRIES =>
            {
                rejected.push(u);
            }
            Err(e) => {
                let tried = if rejected.is_empty() {
                    String::new()
                } else {
                    format!(" (the last of {} ports tried)", rejected.len() + 1)
                };
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot listen on tcp {bound}: {e}{tried}"),
                ));
            }
        }
    }
}

fn socket(
    addr: SocketAddr,
    ty: socket2::Type,
    proto: socket2::Protocol,
) -> io::Result<socket2::Socket> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = socket(addr, socket2::Type::DGRAM, socket2::Protocol::UDP)?;
    // Every worker's socket on one address shares it; the kernel spreads
    // clients over them by their address and port. Linux only lets sockets
    // of the same user join, and TCP (no SO_REUSEPORT) still fails at once
    // when another server holds the address. With port 0 it is set only
    // after the bind: Linux's choice of a free port skips no port that a
    // socket of the same user holds with SO_REUSEPORT, so another cutoff's
    // port could be picked and shared.
    #[cfg(unix)]
    if addr.port() != 0 {
        s.set_reuse_port(true)?;
    }
    s.bind(&addr.into())?;
    #[cfg(unix)]
    if addr.port() == 0 {
        s.set_reuse_port(true)?;
    }
    UdpSocket::from_std(s.into())
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = socket(addr, socket2::Type::STREAM, socket2::Protocol::TCP)?;
    // A restart must not wait for old connections in TIME_WAIT.
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

/// The rate limit at UDP receive, before anything else looks at the packet:
/// `None` serves it; `Some(reply)` means it is over the limit, with the
/// TC=1 slip to send, if any. Counted in `cutoff_rate_limited_total`.
fn rate_limited(state: &State, packet: &[u8], ip: IpAddr) -> Option<Option<Vec<u8>>> {
    let runtime = state.current.load();
    let settings = runtime.policy.config.rate_limit.as_ref()?;
    match state.limiter.check(settings, ip, Instant::now()) {
        ratelimit::Verdict::Pass => None,
        ratelimit::Verdict::Drop => {
            state.metrics.rate_limited[0].increment(1);
            Some(None)
        }
        ratelimit::Verdict::Slip => {
            state.metrics.rate_limited[1].increment(1);
            Some(ratelimit::slip(packet))
        }
    }
}

/// Limits on what clients can hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Queries waiting for an upstream at once (UDP and TCP together).
    pub inflight: usize,
    /// Open TCP connections.
    pub tcp_connections: usize,
    /// Open TCP connections from one client prefix.
    pub tcp_per_client: usize,
    /// A TCP connection with no complete query for this long is closed.
    pub tcp_idle: Duration,
    /// Queries answered on one TCP connection before it is closed.
    pub tcp_queries: usize,
}

/// Serves until `shutdown` turns true, then stops accepting and gives
/// in-flight queries `drain` to finish.
pub async fn run(
    mut listeners: Listeners,
    state: Arc<State>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) -> io::Result<()> {
    let threads = state.current.load().policy.config.serve.threads();
    let more = listeners.spread(threads)?;
    let inflight = Arc::new(Semaphore::new(limits.inflight));
    let connections = conns::Table::new(limits.tcp_connections, limits.tcp_per_client);
    let mut tasks = JoinSet::new();
    // One receive loop per socket: `threads` per UDP address, spread by the
    // multi-thread runtime over its `threads` workers.
    for socket in listeners.udp.into_iter().chain(more) {
        tasks.spawn(udp_loop(
            Arc::new(socket),
            state.clone(),
            inflight.clone(),
            shutdown.clone(),
        ));
    }
    // Names served stale are refreshed off the query path (RFC 8767).
    if let Some(rx) = state.cache.refreshes() {
        let refresher = state.clone();
        let refresh = move |key| {
            let state = refresher.clone();
            async move { state.refresh_stale(&key).await }
        };
        tasks.spawn(crate::cache::refresh::run(refresh, rx, shutdown.clone()));
    }
    for listener in listeners.tcp {
        tasks.spawn(tcp_loop(
            listener,
            state.clone(),
            limits,
            inflight.clone(),
            connections.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(settings) = listeners.tls_settings {
        // Its own cap: a DoT flood cannot take plain TCP's slots.
        let tls_connections = conns::Table::new(limits.tcp_connections, limits.tcp_per_client);
        for listener in listeners.tls {
            tasks.spawn(tls::accept_loop(
                listener,
                settings.clone(),
                tls::Serves::Dot,
                state.clone(),
                limits,
                inflight.clone(),
                tls_connections.clone(),
                shutdown.clone(),
            ));
        }
    }
    if let Some((settings, https)) = listeners.https_settings {
        // And DoH its own, for the same reason.
        let https_connections = conns::Table::new(limits.tcp_connections, limits.tcp_per_client);
        let serves = tls::Serves::Doh(Arc::new(https));
        for listener in listeners.https {
            tasks.spawn(tls::accept_loop(
                listener,
                settings.clone(),
                serves.clone(),
                state.clone(),
                limits,
                inflight.clone(),
                https_connections.clone(),
                shutdown.clone(),
            ));
        }
    }
    stopped(&mut shutdown).await;
    // Loops exit on the signal; give them (and their queries) the grace period.
    let _ = tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
    Ok(())
}

async fn udp_loop(
    socket: Arc<UdpSocket>,
    state: Arc<State>,
    inflight: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut batch = batch::Batch::new();
    let mut outbox = batch::Outbox::new();
    // Queries waiting for an upstream: futures of this loop, polled by its
    // task (no task each) in slots it reuses, their replies sent in batches too.
    let mut forwards = slots::Slots::new();
    // A wildcard listener replies from the address each query came to.
    let wildcard = socket.local_addr().is_ok_and(|a| a.ip().is_unspecified());
    let pktinfo = wildcard
        && pktinfo::enable(&socket)
            .inspect_err(|e| {
                tracing::warn!(error = %e, "cannot learn query destinations: replies may come from another address");
            })
            .is_ok();
    // One stop future for the whole loop: re-arming it for every packet
    // costs more than the rest of a blocked answer.
    let stop = stopped(&mut shutdown);
    tokio::pin!(stop);
    // After a turn that sent a whole batch of forwarded answers, the socket
    // is read first: a burst of answers (an upstream coming back) cannot
    // keep new queries waiting for more than one turn.
    let mut recv_first = false;
    loop {
        // Forwards first as a rule: new ones send their upstream queries on
        // that poll, and the answers that came go out before more is read.
        let event = if recv_first {
            tokio::select! {
                biased;
                r = batch.recv(&socket, pktinfo) => Event::Received(r),
                Some(done) = forwards.next(), if !forwards.is_empty() => Event::Answered(done),
                () = &mut stop => Event::Stop,
            }
        } else {
            tokio::select! {
                biased;
                Some(done) = forwards.next(), if !forwards.is_empty() => Event::Answered(done),
                r = batch.recv(&socket, pktinfo) => Event::Received(r),
                () = &mut stop => Event::Stop,
            }
        };
        match event {
            Event::Answered(done) => {
                reply(&state, &mut outbox, done);
                // Every other answer already there goes in the same batch.
                while outbox.has_room() {
                    match forwards.next().now_or_never() {
                        Some(Some(done)) => reply(&state, &mut outbox, done),
                        _ => break,
                    }
                }
                recv_first = !outbox.has_room();
            }
            // Every query waiting in the socket (up to a batch) in one call.
            Event::Received(Ok(n)) => {
                for i in 0..n {
                    let Some((packet, src, local)) = batch.get(i) else {
                        continue;
                    };
                    let to = Client { addr: src, local };
                    if let Some(p) = serve_datagram(&state, &inflight, &mut outbox, packet, to) {
                        forwards.push(forward(&state, p, to));
                    }
                }
                recv_first = false;
            }
            Event::Received(Err(e)) => {
                // ICMP errors from earlier sends surface here on Linux; keep serving.
                tracing::debug!(error = %e, "udp receive error");
                recv_first = false;
            }
            Event::Stop => break,
        }
        outbox
            .flush(&socket, |out, result| sent_out(&state, out, result))
            .await;
    }
    while let Some(done) = forwards.next().await {
        reply(&state, &mut outbox, done);
        outbox
            .flush(&socket, |out, result| sent_out(&state, out, result))
            .await;
    }
}

/// What woke a UDP receive loop.
#[expect(
    clippy::large_enum_variant,
    reason = "on the loop's stack for one turn; a box would cost an allocation per answer"
)]
enum Event {
    /// A forwarded query's answer is in.
    Answered(Done),
    /// Datagrams were read (their count), or the read failed.
    Received(io::Result<usize>),
    /// Shutdown.
    Stop,
}

/// Where a UDP reply goes: the client, and the address its query came to.
#[derive(Clone, Copy, Debug)]
struct Client {
    addr: SocketAddr,
    local: Option<pktinfo::Local>,
}

/// What a queued UDP reply is: a rate limiter's slip (not observed), or
/// the answer to a query.
#[derive(Debug)]
enum Sent {
    Slip,
    Answer(pipeline::Outcome),
}

/// A query on its way upstream: the answer, and who gets it. The permit
/// holds its place in the in-flight cap until the answer is in.
struct Done {
    bytes: Option<Vec<u8>>,
    outcome: pipeline::Outcome,
    to: Client,
}

async fn forward(
    state: &State,
    (p, permit): (pipeline::Pending, OwnedSemaphorePermit),
    to: Client,
) -> Done {
    let (bytes, outcome) = pipeline::finish(state, p).await;
    drop(permit);
    Done { bytes, outcome, to }
}

/// Queues a forwarded query's answer (or observes that there is none).
fn reply(state: &State, outbox: &mut batch::Outbox<Sent>, done: Done) {
    let Some(bytes) = done.bytes else {
        pipeline::observe(state, None, done.outcome);
        return;
    };
    queue(state, outbox, bytes, done.to, Sent::Answer(done.outcome));
}

/// Queues a reply; with a full outbox (it holds a batch, and a batch
/// has one reply per query) the reply is dropped and counted as unsent.
fn queue(state: &State, outbox: &mut batch::Outbox<Sent>, bytes: Vec<u8>, to: Client, sent: Sent) {
    let out = batch::Out {
        bytes,
        to: to.addr,
        local: to.local,
        tag: sent,
    };
    if let Err(out) = outbox.push(out) {
        // Not reached: the loop flushes before it reads or drains more
        // than a batch.
        sent_out(state, out, Err(io::Error::other("reply outbox full")));
    }
}

/// After a queued reply went out (or failed to).
fn sent_out(state: &State, out: batch::Out<Sent>, result: io::Result<()>) {
    match out.tag {
        Sent::Slip => {}
        Sent::Answer(outcome) => sent(state, result, &out.bytes, outcome),
    }
}

/// One UDP query: the rate limit, then the pipeline; a reply answered here
/// is queued in `outbox`, and a query that must wait for an upstream is
/// returned (with its place in the in-flight cap) for the loop to forward.
fn serve_datagram(
    state: &State,
    inflight: &Arc<Semaphore>,
    outbox: &mut batch::Outbox<Sent>,
    packet: &[u8],
    to: Client,
) -> Option<(pipeline::Pending, OwnedSemaphorePermit)> {
    if let Some(slip) = rate_limited(state, packet, to.addr.ip()) {
        if let Some(b) = slip {
            queue(state, outbox, b, to, Sent::Slip);
        }
        return None;
    }
    match pipeline::prepare(state, packet, to.addr, Protocol::Udp) {
        Step::Reply(Some(b), outcome) => queue(state, outbox, b, to, Sent::Answer(outcome)),
        Step::Reply(None, outcome) => pipeline::observe(state, None, outcome),
        Step::Forward(p) => {
            // A full table drops the query: the client retries, and a
            // pile-up of upstream waits (DNSBomb) stays bounded.
            let Ok(permit) = inflight.clone().try_acquire_owned() else {
                state.metrics.dropped(Dropped::InflightFull);
                return None;
            };
            return Some((p, permit));
        }
    }
    None
}

async fn tcp_loop(
    listener: TcpListener,
    state: Arc<State>,
    limits: Limits,
    inflight: Arc<Semaphore>,
    connections: Arc<conns::Table>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut open = JoinSet::new();
    loop {
        let Some((stream, src)) = accept(&listener, &mut shutdown, "tcp").await else {
            break;
        };
        // A refused connection is closed at once: it costs nothing and the
        // client can fall back to UDP or retry later.
        let Some(lease) = admit(&state, &connections, src) else {
            continue;
        };
        let (state, inflight, shutdown) = (state.clone(), inflight.clone(), shutdown.clone());
        state.metrics.tcp_connections.increment(1.0);
        let _ = stream.set_nodelay(true);
        open.spawn(async move {
            let _ = tcp::connection(
                stream,
                tcp::Peer {
                    addr: src,
                    protocol: Protocol::Tcp,
                },
                state.clone(),
                limits,
                inflight,
                &lease,
                shutdown,
            )
            .await;
            state.metrics.tcp_connections.decrement(1.0);
            drop(lease);
        });
        while open.try_join_next().is_some() {}
    }
    while open.join_next().await.is_some() {}
}

/// The next connection on `listener`, or `None` once shutdown is asked
/// for. An accept error (EMFILE and friends) is logged and followed by a
/// short back-off instead of a spin.
async fn accept(
    listener: &TcpListener,
    shutdown: &mut watch::Receiver<bool>,
    what: &'static str,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => return Some(x),
                Err(e) => {
                    tracing::warn!(error = %e, "{what} accept error");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = stopped(shutdown) => return None,
        }
    }
}

/// A slot in `table` for a new connection from `src` (the idle connection
/// evicted to make room, or the refusal, counted), or `None`: close it.
fn admit(state: &State, table: &Arc<conns::Table>, src: SocketAddr) -> Option<conns::Lease> {
    match table.admit(client_key(state, src)) {
        conns::Admit::Open { lease, evicted } => {
            if evicted {
                state.metrics.dropped(Dropped::TcpEvicted);
            }
            Some(lease)
        }
        conns::Admit::OverClient => {
            state.metrics.dropped(Dropped::TcpPerClient);
            None
        }
        conns::Admit::Full => {
            state.metrics.dropped(Dropped::TcpConnections);
            None
        }
    }
}

/// The prefix a TCP client is counted under: the rate limiter's when it is
/// configured, else /32 and /56.
fn client_key(state: &State, src: SocketAddr) -> conns::ClientKey {
    let runtime = state.current.load();
    let (v4, v6) = runtime
        .policy
        .config
        .rate_limit
        .as_ref()
        .map_or((32, 56), |s| (s.ipv4_prefix, s.ipv6_prefix));
    crate::ratelimit::prefix_key(src.ip(), v4, v6)
}

/// After a reply was sent (or its send failed): a failed send is counted
/// and logged, and the query is observed as unanswered (no rcode).
fn sent(state: &State, result: io::Result<()>, bytes: &[u8], outcome: pipeline::Outcome) {
    match result {
        Ok(()) => pipeline::observe(state, Some(bytes), outcome),
        Err(e) => {
            state.metrics.dropped(Dropped::SendFailed);
            if warn_now() {
                tracing::warn!(client = %outcome.client, error = %e, "reply not sent (at most one such warning in 10 s)");
            } else {
                tracing::debug!(client = %outcome.client, error = %e, "reply not sent");
            }
            pipeline::observe(state, None, outcome);
        }
    }
}

/// Whether a failed send may be logged at warn level now: one line per 10 s
/// for the whole process, so clients that vanish cannot flood the log.
fn warn_now() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST.load(Ordering::Relaxed);
    now >= last.saturating_add(10)
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Resolves once shutdown has been asked for (the watch guard is dropped
/// here, so callers can hold the future across other awaits).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
