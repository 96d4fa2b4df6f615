//! One TCP connection per RFC 7766: pipelined queries are served
//! concurrently and each answer is written as soon as it is ready (§6.2.1.1),
//! so one slow upstream answer does not hold back the rest.
//!
//! Sits in `server`, between the accept loop and the pipeline. At
//! `tcp.max_queries` the connection stops reading, answers everything it
//! has read, closes its side with FIN and then reads and discards what the
//! client still sends until it closes too: closing a socket with unread
//! data would send RST, and the client's kernel would throw away answers
//! it had already received.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};

use super::conns::Lease;
use super::{Limits, sent, stopped};
use crate::metrics::Dropped;
use crate::pipeline::{self, Outcome, Protocol, Step};
use crate::runtime::State;

/// Who is on the other end of a connection, and over what.
#[derive(Clone, Copy, Debug)]
pub(super) struct Peer {
    /// The client's address (the TCP peer), for policy, logs and metrics.
    pub(super) addr: SocketAddr,
    /// `Tcp`, or `Dot` for a TLS session.
    pub(super) protocol: Protocol,
}

/// Serves one connection until the client closes it, it idles out, it
/// reaches `tcp.max_queries`, the table evicts it to make room, or shutdown
/// is asked for. `stream` is a TCP socket or a TLS session over one (DoT):
/// the framing is the same.
pub(super) async fn connection<S>(
    stream: S,
    peer: Peer,
    state: Arc<State>,
    limits: Limits,
    inflight: Arc<Semaphore>,
    lease: &Lease,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let Peer {
        addr: src,
        protocol,
    } = peer;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(512);
    let mut pending: JoinSet<(Option<Vec<u8>>, Outcome)> = JoinSet::new();
    let mut read = 0usize;
    let mut reading = limits.tcp_queries > 0;
    // Set when reading stopped with the client still sending (the cap, a
    // full in-flight table): then its leftovers are read before closing.
    let mut linger = false;
    let stop = stopped(&mut shutdown);
    tokio::pin!(stop);
    let evicted = lease.slot.evicted();
    tokio::pin!(evicted);
    // The idle timer covers the whole next message, so a client sending
    // one byte a second (slowloris) is cut off too.
    let idle = sleep_until(Instant::now() + limits.tcp_idle);
    tokio::pin!(idle);
    loop {
        while reading && let Some(msg) = frame(&mut buf) {
            read += 1;
            if read >= limits.tcp_queries {
                reading = false;
                linger = true;
            }
            idle.as_mut().reset(Instant::now() + limits.tcp_idle);
            lease.slot.touch();
            match pipeline::prepare(&state, &msg, src, protocol) {
                Step::Reply(bytes, outcome) => {
                    write(&mut wr, &state, bytes, outcome, limits).await?
                }
                Step::Forward(p) => {
                    let Ok(permit) = inflight.clone().try_acquire_owned() else {
                        // Full: answer what is in hand and close; the client retries.
                        state.metrics.dropped(Dropped::InflightFull);
                        reading = false;
                        linger = true;
                        continue;
                    };
                    let state = state.clone();
                    // Busy before the upstream can see it: never evicted
                    // with a query in hand.
                    lease.slot.set_busy(true);
                    pending.spawn(async move {
                        let answer = pipeline::finish(&state, p).await;
                        drop(permit);
                        answer
                    });
                }
            }
        }
        if !reading && pending.is_empty() {
            break;
        }
        lease.slot.set_busy(!pending.is_empty());
        tokio::select! {
            r = rd.read_buf(&mut buf), if reading => match r {
                Ok(0) | Err(_) => reading = false,
                Ok(_) => {}
            },
            Some(joined) = pending.join_next() => {
                if let Ok((bytes, outcome)) = joined {
                    write(&mut wr, &state, bytes, outcome, limits).await?;
                }
            }
            () = &mut idle, if reading && pending.is_empty() => reading = false,
            () = &mut stop, if reading => reading = false,
            // Chosen as the idle connection to make room: it has no query in
            // hand, so closing now loses no answer.
            () = &mut evicted, if reading => {
                reading = false;
                linger = false;
            }
        }
    }
    // FIN; then let the client finish sending, so closing sends no RST.
    let _ = wr.shutdown().await;
    if linger {
        let _ = timeout(limits.tcp_idle, discard(&mut rd)).await;
    }
    Ok(())
}

/// The next whole message in `buf`, if one is there.
fn frame(buf: &mut BytesMut) -> Option<Vec<u8>> {
    let len = usize::from(u16::from_be_bytes([*buf.first()?, *buf.get(1)?]));
    if buf.len() < 2 + len {
        return None;
    }
    buf.advance(2);
    Some(buf.split_to(len).to_vec())
}

/// Reads until the client closes its side.
async fn discard(rd: &mut (impl AsyncRead + Unpin)) {
    let mut sink = [0u8; 1024];
    while let Ok(n) = rd.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

/// Writes one framed answer (a client that stops reading gets
/// `tcp.idle_timeout`), then observes it.
async fn write(
    wr: &mut (impl AsyncWrite + Unpin),
    state: &State,
    bytes: Option<Vec<u8>>,
    outcome: Outcome,
    limits: Limits,
) -> io::Result<()> {
    let Some(b) = bytes else {
        pipeline::observe(state, None, outcome);
        return Ok(());
    };
    let result = match u16::try_from(b.len()) {
        Ok(n) => {
            let mut framed = Vec::with_capacity(b.len() + 2);
            framed.extend_from_slice(&n.to_be_bytes());
            framed.extend_from_slice(&b);
            match timeout(limits.tcp_idle, wr.write_all(&framed)).await {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
            }
        }
        Err(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "answer too long",
        )),
    };
    let failed = result.is_err();
    sent(state, result, &b, outcome);
    if failed {
        return Err(io::Error::other("write failed"));
    }
    Ok(())
}
