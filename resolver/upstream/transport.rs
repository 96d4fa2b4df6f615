//! One exchange with one endpoint over UDP, TCP or a framed stream (DoT),
//! for the tries that [`super::forward`] schedules.
//!
//! Every UDP try takes a socket of its endpoint's pool (connected, on a
//! kernel-chosen random source port, retired after a few dozen queries:
//! [`super::sockets`]) and a random ID, and an answer is accepted only when
//! its source, ID and question match (RFC 5452); forged or stray replies
//! are ignored and the wait goes on.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::sockets::Pools;
use crate::wire;

fn with_random_id(query: &[u8]) -> (Vec<u8>, u16) {
    let mut q = query.to_vec();
    let id: u16 = rand::random();
    wire::set_id(&mut q, id);
    (q, id)
}

/// The question section of a message (bytes 12..end of question), for
/// matching an answer to what was asked, case-insensitively.
fn question(msg: &[u8]) -> Option<&[u8]> {
    let end = wire::outline(msg)?.question_end;
    msg.get(12..end)
}

/// Whether `answer` answers `query` (sent with `id`): a response with the
/// ID and the question. A FORMERR or NOTIMP may come without the question
/// (old servers reject EDNS so); it counts, so the EDNS fallback can see it,
/// but is never relayed (see [`relayable`]).
pub(super) fn matches(query: &[u8], id: u16, answer: &[u8]) -> bool {
    if answer.len() < 12 || wire::id(answer) != id || answer[2] & 0x80 == 0 {
        return false;
    }
    let header_only = answer[4..6] == [0, 0] && matches!(wire::rcode(answer), 1 | 4);
    match (question(query), question(answer)) {
        (Some(q), Some(a)) if !a.is_empty() => q.eq_ignore_ascii_case(a),
        _ => header_only,
    }
}

/// Whether a matching answer can go to the client: it carries the question
/// and its records can be walked. The RDATA is not read, so records that
/// hickory cannot parse are relayed as they are.
pub(super) fn relayable(answer: &[u8]) -> bool {
    question(answer).is_some_and(|q| !q.is_empty())
}

/// One UDP try on a socket of `endpoint`'s pool, given back once it got
/// its answer (closed on an error or when the try is dropped). It has no
/// timer of its own: the query's one timer in [`super::forward`] drops
/// every try at the deadline.
pub(super) async fn exchange_udp(
    pools: &Pools,
    endpoint: usize,
    query: &[u8],
) -> io::Result<Vec<u8>> {
    let mut s = pools.take(endpoint)?;
    let id: u16 = rand::random();
    s.out.clear();
    s.out.extend_from_slice(query);
    wire::set_id(&mut s.out, id);
    s.udp.send(&s.out).await?;
    loop {
        let n = s.udp.recv(&mut s.buf).await?;
        let answer = s.buf.get(..n).unwrap_or_default();
        // A connected socket only receives from its endpoint; the ID and
        // question must match too, else it is a stray or forged reply (or
        // a late one to an earlier query on this socket): keep waiting.
        if matches(&s.out, id, answer) {
            // Copied out at its own size: the buffer stays with the socket.
            let bytes = answer.to_vec();
            drained(&s.udp);
            pools.give(endpoint, s);
            return Ok(bytes);
        }
        tracing::debug!(addr = ?s.udp.peer_addr().ok(), "ignored a UDP reply that does not match the query");
    }
}

/// Marks a socket whose one answer was read as not readable, as a read
/// finding nothing would: the next query on it then waits for its answer
/// instead of first trying a read that finds nothing (tokio keeps a socket
/// readable until a read fails). A datagram still queued (a duplicate) is
/// read, and fails the checks, when the next one arrives: epoll reports
/// every arrival.
fn drained(udp: &tokio::net::UdpSocket) {
    let _ = udp.try_io(Interest::READABLE, || {
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
}

pub(super) async fn exchange_tcp(
    addr: SocketAddr,
    query: &[u8],
    deadline: Instant,
) -> io::Result<Vec<u8>> {
    let stream = timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out())??;
    let _ = stream.set_nodelay(true);
    exchange_framed(stream, query, deadline).await
}

pub(super) fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// One query over a stream with RFC 1035 length framing (TCP and DoT).
pub(super) async fn exchange_framed<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    query: &[u8],
    deadline: Instant,
) -> io::Result<Vec<u8>> {
    let (q, id) = with_random_id(query);
    let len = u16::try_from(q.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    timeout_at(deadline, stream.write_all(&framed))
        .await
        .map_err(|_| timed_out())??;
    loop {
        let mut len = [0u8; 2];
        timeout_at(deadline, stream.read_exact(&mut len))
            .await
            .map_err(|_| timed_out())??;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        timeout_at(deadline, stream.read_exact(&mut buf))
            .await
            .map_err(|_| timed_out())??;
        if matches(&q, id, &buf) {
            return Ok(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        q
    }

    #[test]
    fn a_header_only_formerr_matches_but_is_not_relayed() {
        let q = query();
        let formerr = [0x12, 0x34, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches(&q, 0x1234, &formerr));
        assert!(!relayable(&formerr));
        let mut noerror = formerr;
        noerror[3] = 0x80;
        assert!(!matches(&q, 0x1234, &noerror), "a header-only NOERROR");
        let mut answer = q.clone();
        answer[2] |= 0x80;
        answer[9..12].copy_from_slice(&[0, 0, 0]);
        assert!(matches(&q, 0x1234, &answer) && relayable(&answer));
        assert!(!matches(&q, 0x4321, &answer), "another ID");
        answer[13] = b'E';
        assert!(
            matches(&q, 0x1234, &answer),
            "0x20 case is the same question"
        );
        answer[14] = b'z';
        assert!(!matches(&q, 0x1234, &answer), "another question");
    }

    #[tokio::test]
    async fn a_reused_socket_still_gets_its_answer_after_a_duplicate_was_left_queued() {
        let up = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let pools = Pools::new([Some(up.local_addr().unwrap())]);
        let q = query();
        // A hang guard: a try has no timer of its own any more.
        let guard = std::time::Duration::from_secs(60);
        let try_ = || tokio::time::timeout(guard, exchange_udp(&pools, 0, &q));
        let (first, seen) = tokio::join!(try_(), async {
            let mut buf = [0u8; 512];
            let (n, from) = up.recv_from(&mut buf).await.unwrap();
            buf[2] |= 0x80;
            // The answer twice: the second stays queued on the socket.
            up.send_to(&buf[..n], from).await.unwrap();
            up.send_to(&buf[..n], from).await.unwrap();
            from
        });
        assert_eq!(first.expect("answered").unwrap().len(), q.len());
        let (second, again) = tokio::join!(try_(), async {
            let mut buf = [0u8; 512];
            let (n, from) = up.recv_from(&mut buf).await.unwrap();
            buf[2] |= 0x80;
            up.send_to(&buf[..n], from).await.unwrap();
            (from, wire::id(&buf))
        });
        assert_eq!(again.0, seen, "the same socket, taken again");
        let second = second.expect("answered").unwrap();
        assert_eq!(
            wire::id(&second),
            again.1,
            "its own answer, not the duplicate"
        );
    }
}
