//! Upstream UDP sockets, reused across queries instead of one per try.
//!
//! Sits under [`super::transport`]: every UDP try takes a socket from its
//! endpoint's pool, sends one query on it and gives it back once a
//! matching answer came. A socket is connected to its endpoint, so the
//! kernel drops datagrams from any other source; its port is the kernel's
//! random ephemeral choice, made when the socket is opened. RFC 5452
//! asks for an unpredictable port and ID per query: each try still gets a
//! fresh random ID, and a socket is retired after [`ROTATE_AFTER`] queries
//! (or on any error, or when its try is abandoned), so a port learnt by an
//! off-path attacker is good for a few dozen queries at most and the set
//! of ports in use keeps moving. See docs/adr/0008-upstream-socket-pool.md.
//!
//! A socket is held by one try at a time (no demultiplexing of answers
//! between queries), and a stray answer left over from an earlier query
//! fails the ID and question checks like any forged one.
//!
//! The pools follow the load: every socket given back is kept, and one
//! idle for [`IDLE_FOR`] is closed (the most recently given back is taken
//! first, so the least used sit at the front and age out when the load
//! falls). Before a socket is opened, the longest idle one of another
//! endpoint is closed, so the pools of all endpoints together never hold
//! more sockets than their tries had in use at once: the one descriptor
//! per query in flight that `descriptors` counts. A fixed cap of 64 idle
//! sockets made a busy server open and close a socket for about one query
//! in eight.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Queries one socket carries before it is closed and a new port opened.
pub(super) const ROTATE_AFTER: u32 = 64;
/// How long a socket may sit unused in the pool before it is closed: the
/// pool shrinks to the load of the last few seconds, and an idle port does
/// not stay open for long.
pub(super) const IDLE_FOR: Duration = Duration::from_secs(10);
/// Receive room: we advertise 1232 bytes upstream; 4096 leaves room for
/// upstreams that ignore it.
pub(super) const RECV_MAX: usize = 4096;

/// The pools of one upstream list's UDP endpoints, by endpoint index
/// (`None` for the endpoints that are not plain UDP).
#[derive(Debug)]
pub(super) struct Pools(Box<[Option<Pool>]>);

/// One endpoint's idle sockets: the longest idle at the front, the next
/// to be taken at the back.
#[derive(Debug)]
pub(super) struct Pool {
    addr: SocketAddr,
    idle: Mutex<VecDeque<Socket>>,
}

/// A socket connected to one endpoint, with its buffers (kept with it, so
/// a try allocates nothing but the answer it returns).
#[derive(Debug)]
pub(super) struct Socket {
    /// The connected socket.
    pub(super) udp: UdpSocket,
    /// The query as sent (its random ID in place).
    pub(super) out: Vec<u8>,
    /// Receive buffer, [`RECV_MAX`] bytes.
    pub(super) buf: Box<[u8]>,
    uses: u32,
    /// When it was last given back.
    idle_since: Instant,
}

impl Pools {
    /// A pool for each endpoint whose address is given.
    pub(super) fn new(addrs: impl IntoIterator<Item = Option<SocketAddr>>) -> Self {
        Self(addrs.into_iter().map(|a| a.map(Pool::new)).collect())
    }

    /// The pool of `endpoint`, when it is a UDP endpoint.
    pub(super) fn get(&self, endpoint: usize) -> Option<&Pool> {
        self.0.get(endpoint).and_then(Option::as_ref)
    }

    /// An idle socket of `endpoint`, or a new one on a fresh random port.
    pub(super) fn take(&self, endpoint: usize) -> io::Result<Socket> {
        let pool = self
            .get(endpoint)
            .ok_or_else(|| io::Error::other("no UDP sockets"))?;
        if let Some(s) = pool.idle().pop_back() {
            return Ok(s);
        }
        // Opening one more: an idle socket elsewhere goes first, so that
        // after a failover the old endpoint's sockets do not stay on top
        // of the new one's.
        let others = self.0.iter().enumerate().filter(|(i, _)| *i != endpoint);
        for (_, other) in others {
            let oldest = other.as_ref().and_then(|o| o.idle().pop_front());
            if oldest.is_some() {
                break;
            }
        }
        pool.open()
    }

    /// Gives back a socket of `endpoint` whose try got its answer.
    pub(super) fn give(&self, endpoint: usize, s: Socket) {
        if let Some(pool) = self.get(endpoint) {
            pool.give(s);
        }
    }
}

impl Pool {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            idle: Mutex::new(VecDeque::new()),
        }
    }

    /// A new socket on a fresh random port, connected to the endpoint.
    fn open(&self) -> io::Result<Socket> {
        let bind: SocketAddr = match self.addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let std = std::net::UdpSocket::bind(bind)?;
        std.connect(self.addr)?;
        std.set_nonblocking(true)?;
        Ok(Socket {
            udp: UdpSocket::from_std(std)?,
            out: Vec::with_capacity(512),
            buf: vec![0u8; RECV_MAX].into_boxed_slice(),
            uses: 0,
            idle_since: Instant::now(),
        })
    }

    /// Gives back a socket whose try got its answer; it is closed instead
    /// when it has carried [`ROTATE_AFTER`] queries. The socket that has
    /// been idle longest is closed when that was [`IDLE_FOR`] or more.
    fn give(&self, mut s: Socket) {
        s.uses = s.uses.saturating_add(1);
        if s.uses >= ROTATE_AFTER {
            return;
        }
        let now = Instant::now();
        s.idle_since = now;
        let expired = {
            let mut idle = self.idle();
            idle.push_back(s);
            let old = idle
                .front()
                .is_some_and(|f| now.saturating_duration_since(f.idle_since) >= IDLE_FOR);
            if old { idle.pop_front() } else { None }
        };
        // Closed outside the lock.
        drop(expired);
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<Socket>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Idle sockets held now.
    #[cfg(test)]
    pub(super) fn idle_len(&self) -> usize {
        self.idle().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pools for UDP endpoints on the discard port of 127.0.0.1 and .2.
    fn pools(n: u8) -> Pools {
        Pools::new((1..=n).map(|i| Some(SocketAddr::from(([127, 0, 0, i], 9)))))
    }

    fn port(s: &Socket) -> u16 {
        s.udp.local_addr().unwrap().port()
    }

    fn idle(p: &Pools, endpoint: usize) -> usize {
        p.get(endpoint).unwrap().idle_len()
    }

    #[tokio::test]
    async fn a_socket_given_back_is_taken_again_until_it_has_carried_its_share() {
        let p = pools(1);
        let pool = p.get(0).unwrap();
        let first = p.take(0).unwrap();
        let port0 = port(&first);
        pool.give(first);
        let mut ports = vec![];
        for _ in 1..ROTATE_AFTER {
            let s = p.take(0).unwrap();
            ports.push(port(&s));
            pool.give(s);
        }
        assert!(ports.iter().all(|p| *p == port0), "reused, not reopened");
        assert_eq!(idle(&p, 0), 0, "retired after {ROTATE_AFTER} queries");
        let fresh = p.take(0).unwrap();
        assert_eq!(fresh.uses, 0, "a new socket");
    }

    #[tokio::test]
    async fn a_pool_keeps_every_socket_given_back_however_many_were_in_use() {
        // More than the 64 the pool once kept: that cap made a busy server
        // open and close a socket for one query in eight.
        const N: usize = 200;
        let p = pools(1);
        let held: Vec<_> = (0..N).map(|_| p.take(0).unwrap()).collect();
        let ports: std::collections::HashSet<_> = held.iter().map(port).collect();
        for s in held {
            p.give(0, s);
        }
        assert_eq!(idle(&p, 0), N);
        let again: Vec<_> = (0..N).map(|_| p.take(0).unwrap()).collect();
        assert!(
            again.iter().all(|s| ports.contains(&port(s))),
            "the same sockets taken again, none opened"
        );
    }

    #[tokio::test]
    async fn opening_a_socket_closes_an_idle_one_of_another_endpoint() {
        let p = pools(2);
        let held: Vec<_> = (0..5).map(|_| p.take(0).unwrap()).collect();
        for s in held {
            p.give(0, s);
        }
        // A failover: the second endpoint's tries now need sockets.
        let moved: Vec<_> = (0..3).map(|_| p.take(1).unwrap()).collect();
        assert_eq!(idle(&p, 0), 2, "one closed for each opened");
        for s in moved {
            p.give(1, s);
        }
        assert_eq!(idle(&p, 0) + idle(&p, 1), 5, "never more than were in use");
        let again = p.take(1).unwrap();
        assert_eq!(idle(&p, 0), 2, "an idle socket of its own was there");
        drop(again);
    }

    #[tokio::test(start_paused = true)]
    async fn sockets_idle_for_long_are_closed_as_the_load_falls() {
        let p = pools(1);
        let pool = p.get(0).unwrap();
        let burst: Vec<_> = (0..3).map(|_| p.take(0).unwrap()).collect();
        for s in burst {
            pool.give(s);
        }
        tokio::time::advance(IDLE_FOR - Duration::from_millis(1)).await;
        let busy = p.take(0).unwrap();
        pool.give(busy);
        assert_eq!(pool.idle_len(), 3, "not idle long enough yet");
        tokio::time::advance(Duration::from_millis(1)).await;
        // One query at a time now: the same socket comes and goes, and each
        // give closes one that has sat idle since the burst.
        for left in [2, 1, 1] {
            let s = p.take(0).unwrap();
            pool.give(s);
            assert_eq!(pool.idle_len(), left);
        }
    }

    #[tokio::test]
    async fn sockets_are_connected_to_their_endpoint_from_distinct_ports() {
        let p = pools(1);
        let a = p.take(0).unwrap();
        let b = p.take(0).unwrap();
        assert_eq!(a.udp.peer_addr().unwrap(), "127.0.0.1:9".parse().unwrap());
        assert_ne!(port(&a), port(&b));
    }

    #[test]
    fn an_endpoint_without_udp_has_no_sockets() {
        let p = Pools::new([None]);
        assert!(p.get(0).is_none());
        assert!(p.take(0).is_err() && p.take(7).is_err());
    }
}
