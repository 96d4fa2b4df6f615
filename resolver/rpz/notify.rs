//! NOTIFY (RFC 1996) to one secondary: sent over UDP from a socket of its
//! own, off the query path, and sent again a few times until the
//! secondary answers (§3.6: retry until a response arrives or the tries
//! run out). A secondary that never answers still refreshes on the SOA's
//! REFRESH timer.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

/// Tries per NOTIFY.
pub(crate) const TRIES: u32 = 4;
/// Wait for an answer after the first try; doubled after each.
const FIRST_WAIT: Duration = Duration::from_secs(1);

/// How a NOTIFY ended (the `result` label of `cutoff_rpz_notify_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// The secondary answered NOERROR.
    Ok,
    /// It answered with another rcode (it does not serve the zone, or
    /// does not take NOTIFY from this address).
    Refused,
    /// No answer after every try, or no socket.
    Timeout,
}

impl Sent {
    /// Every result, for pre-creating the series.
    pub(crate) const ALL: [Self; 3] = [Self::Ok, Self::Refused, Self::Timeout];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::Timeout => "timeout",
        }
    }
}

/// Sends the NOTIFY for `zone` (wire name) with its `soa` record to `to`.
pub(crate) async fn send(zone: &[u8], soa: &[u8], to: SocketAddr) -> Sent {
    let local = if to.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let Ok(socket) = UdpSocket::bind(local).await else {
        return Sent::Timeout;
    };
    let id: u16 = rand::random();
    let message = super::wire::notify(id, zone, soa);
    let mut wait = FIRST_WAIT;
    let mut buf = [0u8; 512];
    for _ in 0..TRIES {
        if socket.send_to(&message, to).await.is_err() {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
            continue;
        }
        let deadline = tokio::time::Instant::now() + wait;
        // Skip stray datagrams (another source, another ID) until the deadline.
        while let Ok(Ok((n, from))) =
            tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
        {
            if from != to {
                continue;
            }
            match buf.get(..n).and_then(|m| super::wire::notify_answer(m, id)) {
                Some(0) => return Sent::Ok,
                Some(_) => return Sent::Refused,
                None => {}
            }
        }
        wait = wait.saturating_mul(2);
    }
    Sent::Timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_secondary_is_tried_then_given_up() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = silent.local_addr().unwrap();
        let zone = super::super::wire::wire_name("cutoff.rpz").unwrap();
        let soa = super::super::wire::soa(&zone, 1);
        assert_eq!(send(&zone, &soa, to).await, Sent::Timeout);
        silent.set_nonblocking(true).unwrap();
        let mut got = 0;
        let mut buf = [0u8; 512];
        while silent.recv_from(&mut buf).is_ok() {
            got += 1;
        }
        assert_eq!(got, TRIES);
    }

    #[tokio::test]
    async fn an_answering_secondary_is_ok_and_a_refusing_one_counted_apart() {
        for (rcode, want) in [(0u8, Sent::Ok), (5, Sent::Refused)] {
            let secondary = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let to = secondary.local_addr().unwrap();
            let answer = tokio::spawn(async move {
                let mut buf = [0u8; 512];
                let (n, from) = secondary.recv_from(&mut buf).await.unwrap();
                let mut reply = buf[..n].to_vec();
                reply[2] |= 0x80;
                reply[3] = rcode;
                secondary.send_to(&reply, from).await.unwrap();
            });
            let zone = super::super::wire::wire_name("cutoff.rpz").unwrap();
            let soa = super::super::wire::soa(&zone, 1);
            assert_eq!(send(&zone, &soa, to).await, want);
            answer.await.unwrap();
        }
    }
}
