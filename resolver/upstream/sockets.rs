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

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};

use tokio::net::UdpSocket;

/// Queries one socket carries before it is closed and a new port opened.
pub(super) const ROTATE_AFTER: u32 = 64;
/// Idle sockets kept per endpoint; more are closed when given back.
const IDLE_MAX: usize = 64;
/// Receive room: we advertise 1232 bytes upstream; 4096 leaves room for
/// upstreams that ignore it.
pub(super) const RECV_MAX: usize = 4096;

/// One endpoint's idle sockets.
#[derive(Debug)]
pub(super) struct Pool {
    addr: SocketAddr,
    idle: Mutex<Vec<Socket>>,
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
}

impl Pool {
    /// An empty pool for the endpoint at `addr`.
    pub(super) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle socket, or a new one on a fresh random port.
    pub(super) fn take(&self) -> io::Result<Socket> {
        if let Some(s) = self.idle().pop() {
            return Ok(s);
        }
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
        })
    }

    /// Gives back a socket whose try got its answer; it is closed instead
    /// when it has carried [`ROTATE_AFTER`] queries or the pool is full.
    pub(super) fn give(&self, mut s: Socket) {
        s.uses = s.uses.saturating_add(1);
        if s.uses >= ROTATE_AFTER {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < IDLE_MAX {
            idle.push(s);
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Socket>> {
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

    #[tokio::test]
    async fn a_socket_given_back_is_taken_again_until_it_has_carried_its_share() {
        let pool = Pool::new("127.0.0.1:9".parse().unwrap());
        let first = pool.take().unwrap();
        let port = first.udp.local_addr().unwrap().port();
        pool.give(first);
        let mut ports = vec![];
        for _ in 1..ROTATE_AFTER {
            let s = pool.take().unwrap();
            ports.push(s.udp.local_addr().unwrap().port());
            pool.give(s);
        }
        assert!(ports.iter().all(|p| *p == port), "reused, not reopened");
        assert_eq!(pool.idle_len(), 0, "retired after {ROTATE_AFTER} queries");
        let fresh = pool.take().unwrap();
        assert_eq!(fresh.uses, 0, "a new socket");
    }

    #[tokio::test]
    async fn a_full_pool_closes_what_is_given_back() {
        let pool = Pool::new("127.0.0.1:9".parse().unwrap());
        let held: Vec<_> = (0..IDLE_MAX + 3).map(|_| pool.take().unwrap()).collect();
        for s in held {
            pool.give(s);
        }
        assert_eq!(pool.idle_len(), IDLE_MAX);
    }

    #[tokio::test]
    async fn sockets_are_connected_to_their_endpoint_from_distinct_ports() {
        let pool = Pool::new("127.0.0.1:9".parse().unwrap());
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        assert_eq!(a.udp.peer_addr().unwrap(), "127.0.0.1:9".parse().unwrap());
        assert_ne!(
            a.udp.local_addr().unwrap().port(),
            b.udp.local_addr().unwrap().port()
        );
    }
}
