//! The tries of one forwarded query: which endpoint, when to resend, when
//! to move on, and what to tell the client when nothing answered.
//!
//! Endpoints are tried fastest first (by their smoothed RTT; the config's
//! order breaks ties). Each gets an equal share of what is left of the
//! query's budget. Within its share a UDP endpoint is resent to after its
//! retransmit timeout, doubling each time; every try has its own socket
//! (taken from the endpoint's pool) and ID and keeps listening until the budget is spent, so a late answer to an
//! early try still wins. An endpoint that refuses or is unreachable gives
//! up its share at once. FORMERR or NOTIMP to an EDNS query, or an answer
//! only to the tries without EDNS, makes the endpoint be asked without EDNS
//! for a while.

use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use futures_util::future::{Fuse, FusedFuture, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use smallvec::SmallVec;
use tokio::time::{Instant, sleep_until};

use super::error::{Failure, ForwardError};
use super::health::{NO_EDNS_AFTER_SILENCE, NO_EDNS_FOR};
use super::sockets::Pools;
use super::tls::{exchange_https, exchange_tls};
use super::transport::{exchange_tcp, exchange_udp, relayable};
use super::{Answer, Upstreams};
use crate::config::Upstream;
use crate::metrics::UpstreamHandles;
use crate::wire;

/// Tries sent to one UDP endpoint at most, per query.
const MAX_TRIES: u32 = 4;
/// Tries with EDNS before the rest of an endpoint's tries go without it.
const EDNS_TRIES: u32 = 2;

/// One try in flight.
#[derive(Clone, Copy, Debug)]
struct Try {
    endpoint: usize,
    sent: Instant,
    edns: bool,
}

/// The endpoint whose share of the budget is running.
#[derive(Clone, Copy, Debug)]
struct Current {
    endpoint: usize,
    tries: u32,
    wait: Duration,
    next: Instant,
    share_end: Instant,
}

/// What an endpoint did in this query.
#[derive(Debug, Default)]
struct Seen {
    tried: bool,
    edns_tries: u32,
    failure: Option<Failure>,
}

/// What a try ends with.
type Tried = (Try, io::Result<Vec<u8>>);

type TryFuture<'a> = Pin<Box<dyn Future<Output = Tried> + Send + 'a>>;

/// Endpoints a query keeps its bookkeeping for without a heap allocation.
const FEW: usize = 4;

/// The state of one query's forwarding. The tries are futures polled by
/// the query's own task, not tasks of their own: an answer wakes one task,
/// and a try borrows the query and its endpoint instead of copying them.
/// The first try is polled where it was made; only a second one (a resend,
/// the next endpoint, the EDNS fallback) sets up the boxed set of tries,
/// so a query answered at the first try allocates nothing here.
struct Run<'a> {
    upstreams: &'a Upstreams,
    query: &'a [u8],
    /// Whether the query has an OPT that endpoints rejecting EDNS are
    /// asked without.
    has_opt: bool,
    /// The query without its OPT, made the first time it is needed.
    plain: Option<Vec<u8>>,
    deadline: Instant,
    order: smallvec::IntoIter<[usize; FEW]>,
    seen: SmallVec<[Seen; FEW]>,
    /// The tries after the first.
    more: Option<FuturesUnordered<TryFuture<'a>>>,
}

impl<'a> Run<'a> {
    /// Starts a try in the set of tries after the first.
    fn launch(&mut self, endpoint: usize, edns: bool) {
        let t = self.start(endpoint, edns);
        self.more
            .get_or_insert_with(FuturesUnordered::new)
            .push(Box::pin(t));
    }

    /// Whether tries after the first are in flight.
    fn more_running(&self) -> bool {
        self.more.as_ref().is_some_and(|m| !m.is_empty())
    }

    /// A try of `endpoint`, counted as sent now, to be polled by the caller.
    fn start(
        &mut self,
        endpoint: usize,
        edns: bool,
    ) -> impl Future<Output = Tried> + Send + use<'a> {
        let edns = edns && self.has_opt;
        let bytes: Cow<'a, [u8]> = if edns || !self.has_opt {
            Cow::Borrowed(self.query)
        } else {
            let query = self.query;
            let plain = self.plain.get_or_insert_with(|| {
                let mut q = query.to_vec();
                if let Some(l) = wire::outline(query) {
                    // Cannot fail: `has_opt` saw the OPT last.
                    let _ = wire::strip_opt(&mut q, &l);
                }
                q
            });
            Cow::Owned(plain.clone())
        };
        if let Some(s) = self.seen.get_mut(endpoint) {
            s.tried = true;
            s.edns_tries += u32::from(edns);
        }
        let t = Try {
            endpoint,
            sent: Instant::now(),
            edns,
        };
        let ups = self.upstreams;
        let deadline = self.deadline;
        async move {
            let result = match ups.endpoints.get(endpoint) {
                Some(u) => {
                    exchange(u, (&ups.udp, endpoint), ups.tls.as_ref(), &bytes, deadline).await
                }
                None => Err(io::Error::other("no such endpoint")),
            };
            (t, result)
        }
    }

    /// Starts the next endpoint's share of what is left of the budget.
    fn begin(&mut self) -> Option<Current> {
        let (current, edns) = self.share()?;
        self.launch(current.endpoint, edns);
        Some(current)
    }

    /// The next endpoint's share of what is left of the budget, and
    /// whether its first try has EDNS; nothing is sent yet.
    fn share(&mut self) -> Option<(Current, bool)> {
        let endpoint = self.order.next()?;
        let now = Instant::now();
        let left = u32::try_from(self.order.len() + 1).unwrap_or(u32::MAX);
        let share = self
            .deadline
            .saturating_duration_since(now)
            .checked_div(left)
            .unwrap_or_default();
        let health = &self.upstreams.health[endpoint];
        let edns = !health.no_edns(now);
        let wait = health.rto();
        let current = Current {
            endpoint,
            tries: 1,
            wait,
            next: now + wait,
            share_end: now + share,
        };
        Some((current, edns))
    }

    /// What the try `t` ended with: the answer to relay, or `None` when
    /// the query goes on (its endpoint's share handed on if it failed
    /// outright, or asked again without EDNS).
    fn settle(
        &mut self,
        (t, result): Tried,
        current: &mut Option<Current>,
        metrics: &[UpstreamHandles],
    ) -> Option<Answer> {
        let ups = self.upstreams;
        let health = &ups.health[t.endpoint];
        match result {
            // RFC 6891 §7: FORMERR/NOTIMP to EDNS; ask again without.
            Ok(bytes) if t.edns && matches!(wire::rcode(&bytes), 1 | 4) => {
                health.rejects_edns(Instant::now(), NO_EDNS_FOR);
                self.launch(t.endpoint, false);
                return None;
            }
            Ok(bytes) if relayable(&bytes) => {
                if !t.edns && self.seen[t.endpoint].edns_tries >= EDNS_TRIES {
                    health.rejects_edns(Instant::now(), NO_EDNS_AFTER_SILENCE);
                }
                let rtt = t.sent.elapsed();
                health.sample(rtt);
                if let Some(h) = metrics.get(t.endpoint) {
                    h.ok.increment(1);
                    h.duration.record(rtt.as_secs_f64());
                }
                ups.count_failures(&self.seen, t.endpoint, metrics);
                return Some(Answer {
                    bytes,
                    endpoint: t.endpoint,
                });
            }
            Ok(bytes) => {
                self.seen[t.endpoint].failure = Some(Failure::Unusable(wire::rcode(&bytes)));
            }
            Err(e) => self.seen[t.endpoint].failure = Some(Failure::from_io(e)),
        }
        // The running endpoint failed outright: give its share to the next.
        if current.is_some_and(|c| c.endpoint == t.endpoint) {
            health.timed_out();
            *current = self.begin();
        }
        None
    }
}

/// The next try after the first to end (`None`: none is running).
async fn next_of<'a>(more: &mut Option<FuturesUnordered<TryFuture<'a>>>) -> Option<Tried> {
    match more {
        Some(m) => m.next().await,
        None => None,
    }
}

impl Upstreams {
    /// Sends `query` (wire bytes with an OPT as its last record; its ID is
    /// replaced with a random one per try) until an endpoint answers or the
    /// budget is spent.
    pub async fn forward(
        &self,
        query: &[u8],
        metrics: &[UpstreamHandles],
    ) -> Result<Answer, ForwardError> {
        let deadline = Instant::now() + self.budget;
        // Only an OPT that is the last record can be taken out (`wire::strip_opt`).
        let has_opt = wire::outline(query)
            .and_then(|l| l.opt)
            .is_some_and(|(_, end)| end == query.len());
        let mut order: SmallVec<[usize; FEW]> = (0..self.endpoints.len()).collect();
        // Stable: the config's order breaks ties (and orders the unmeasured).
        order.sort_by_key(|&i| self.health[i].rto());
        let mut run = Run {
            upstreams: self,
            query,
            has_opt,
            plain: None,
            deadline,
            order: order.into_iter(),
            seen: self.endpoints.iter().map(|_| Seen::default()).collect(),
            more: None,
        };
        let (mut current, first) = match run.share() {
            Some((c, edns)) => (Some(c), run.start(c.endpoint, edns).fuse()),
            None => (None, Fuse::terminated()),
        };
        tokio::pin!(first);
        // One timer for the query, moved when the next resend, the end of
        // the running endpoint's share or the deadline moves; with no
        // endpoint running it is the deadline.
        let mut armed = current.map_or(deadline, |c| c.next.min(c.share_end));
        let timer = sleep_until(armed);
        tokio::pin!(timer);
        while current.is_some() || !first.is_terminated() || run.more_running() {
            let due = current.map_or(deadline, |c| c.next.min(c.share_end));
            if due != armed {
                armed = due;
                timer.as_mut().reset(due);
            }
            tokio::select! {
                biased;
                tried = &mut first, if !first.is_terminated() => {
                    if let Some(answer) = run.settle(tried, &mut current, metrics) {
                        return Ok(answer);
                    }
                }
                Some(tried) = next_of(&mut run.more) => {
                    if let Some(answer) = run.settle(tried, &mut current, metrics) {
                        return Ok(answer);
                    }
                }
                () = &mut timer => {
                    // Nothing running: this was the deadline.
                    let Some(mut c) = current else { break };
                    let health = &self.health[c.endpoint];
                    health.timed_out();
                    let now = Instant::now();
                    // A timer that fired late (a busy loop) must not send
                    // tries past the deadline that are dropped at once.
                    if now >= deadline {
                        break;
                    }
                    let udp = matches!(self.endpoints[c.endpoint], Upstream::Plain(_));
                    if udp && c.tries < MAX_TRIES && c.next < c.share_end {
                        let edns = c.tries < EDNS_TRIES && !health.no_edns(now);
                        run.launch(c.endpoint, edns);
                        c.tries += 1;
                        c.wait = c.wait.saturating_mul(2);
                        c.next = now + c.wait;
                        current = Some(c);
                    } else {
                        current = run.begin();
                    }
                }
            }
        }
        let failures = run
            .seen
            .into_iter()
            .enumerate()
            .filter(|(_, s)| s.tried)
            .map(|(i, s)| {
                let failure = s.failure.unwrap_or(Failure::TimedOut);
                self.failed(i, &failure, metrics);
                (self.endpoints[i].to_string(), failure)
            })
            .collect();
        Err(ForwardError {
            failures,
            budget: self.budget,
        })
    }

    /// Counts the endpoints that failed before `answered` answered.
    fn count_failures(&self, seen: &[Seen], answered: usize, metrics: &[UpstreamHandles]) {
        for (i, s) in seen.iter().enumerate() {
            if i != answered
                && s.tried
                && let Some(f) = &s.failure
            {
                self.failed(i, f, metrics);
            }
        }
    }

    /// Counts a failed endpoint, and logs it at warn level at most once per
    /// endpoint in ten seconds.
    fn failed(&self, i: usize, failure: &Failure, metrics: &[UpstreamHandles]) {
        if let Some(h) = metrics.get(i) {
            h.error.increment(1);
        }
        let Some(endpoint) = self.endpoints.get(i) else {
            return;
        };
        self.health[i].failed();
        if let Some(suppressed) = self.health[i].warn(Instant::now()) {
            tracing::warn!(
                upstream = %endpoint,
                kind = failure.kind(),
                error = %failure,
                suppressed,
                "upstream failed"
            );
        } else {
            tracing::debug!(upstream = %endpoint, error = %failure, "upstream failed");
        }
    }
}

/// One exchange with one endpoint; a truncated UDP answer is asked again
/// over TCP.
async fn exchange(
    upstream: &Upstream,
    (pools, endpoint): (&Pools, usize),
    tls: Option<&super::Tls>,
    query: &[u8],
    deadline: Instant,
) -> io::Result<Vec<u8>> {
    match upstream {
        Upstream::Plain(addr) => match exchange_udp(pools, endpoint, query).await {
            Ok(bytes) if wire::truncated(&bytes) => {
                Box::pin(exchange_tcp(*addr, query, deadline)).await
            }
            other => other,
        },
        // Boxed: a UDP try's future (polled in place for the first try)
        // stays the size UDP needs, not that of a TLS handshake.
        Upstream::Tcp(addr) => Box::pin(exchange_tcp(*addr, query, deadline)).await,
        Upstream::Tls { addr, name } => match tls {
            Some(tls) => Box::pin(exchange_tls(tls, *addr, name, query, deadline)).await,
            None => Err(io::Error::other("no TLS settings")),
        },
        Upstream::Https { addr, name, path } => match tls {
            Some(tls) => Box::pin(exchange_https(tls, *addr, name, path, query, deadline)).await,
            None => Err(io::Error::other("no TLS settings")),
        },
        // `Upstreams::new` reads `system` into its addresses.
        Upstream::System => Err(io::Error::other("`system` was not read")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_apart_by_kind() {
        let kind = |k| Failure::from_io(io::Error::from(k)).kind();
        assert_eq!(kind(io::ErrorKind::TimedOut), "timeout");
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), "refused");
        assert_eq!(kind(io::ErrorKind::NetworkUnreachable), "unreachable");
        assert_eq!(kind(io::ErrorKind::HostUnreachable), "unreachable");
        assert_eq!(kind(io::ErrorKind::InvalidData), "error");
        let e = ForwardError {
            failures: vec![
                ("udp://192.0.2.1:53".into(), Failure::Refused),
                ("udp://192.0.2.2:53".into(), Failure::TimedOut),
            ],
            budget: Duration::from_secs(5),
        };
        assert!(e.timed_out());
        assert_eq!(
            e.to_string(),
            "no upstream answered within 5s: udp://192.0.2.1:53 refused the connection; udp://192.0.2.2:53 timed out"
        );
    }

    #[tokio::test]
    async fn a_timer_that_fires_after_the_deadline_sends_no_more_tries() {
        // Two silent endpoints. The query runs until its first try reaches
        // the first; then its task is held past the whole budget, as a busy
        // loop would hold it, before it is polled again.
        let a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let endpoints = [
            Upstream::Plain(a.local_addr().unwrap()),
            Upstream::Plain(b.local_addr().unwrap()),
        ];
        let budget = Duration::from_millis(200);
        let ups = Upstreams::new(
            &endpoints,
            budget,
            &[],
            std::path::Path::new("/nonexistent"),
            None,
        )
        .unwrap();
        let mut query = vec![0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(b"\x07example\x00\x00\x01\x00\x01");
        let mut forward = Box::pin(ups.forward(&query, &[]));
        let mut buf = [0u8; 512];
        tokio::select! {
            _ = &mut forward => panic!("ended before its first try was sent"),
            r = a.recv_from(&mut buf) => { r.unwrap(); }
        }
        // Blocks this runtime's only thread: no timer or try is polled.
        std::thread::sleep(budget * 2);
        let e = forward.await.unwrap_err();
        assert!(e.timed_out(), "{e}");
        // Each try sends on its first poll, so a try launched is a datagram
        // queued at the second endpoint by now.
        tokio::task::yield_now().await;
        assert!(
            b.try_recv_from(&mut buf).is_err(),
            "nothing was sent to the second endpoint after the deadline"
        );
    }

    #[tokio::test]
    async fn without_upstreams_forwarding_fails() {
        let ups = Upstreams::new(
            &[],
            Duration::from_secs(5),
            &[],
            std::path::Path::new("/nonexistent"),
            None,
        )
        .unwrap();
        let e = ups.forward(b"", &[]).await.unwrap_err();
        assert!(e.failures.is_empty());
        assert_eq!(e.to_string(), "no upstreams");
    }
}
