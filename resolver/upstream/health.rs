//! What [`super::Upstreams`] remembers about each endpoint between queries:
//! a smoothed round-trip time and its variance (RFC 6298, as unbound's
//! infrastructure cache keeps one per server), whether it rejects EDNS, and
//! when its failures were last logged.
//!
//! Read and updated only on the forwarding path (cache misses), never for
//! blocked or cached answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The retransmit timeout of an endpoint never measured (unbound starts
/// its servers at 376 ms).
const INITIAL_RTO: Duration = Duration::from_millis(400);
/// The shortest retransmit timeout: below this, loopback jitter resends.
const MIN_RTO: Duration = Duration::from_millis(50);
/// The longest: a slow server is resent to at least this often.
const MAX_RTO: Duration = Duration::from_secs(2);
/// How long an endpoint that answered FORMERR or NOTIMP to EDNS is asked
/// without it.
pub(super) const NO_EDNS_FOR: Duration = Duration::from_secs(600);
/// How long one that only answered a query without EDNS is (shorter: loss
/// of the EDNS tries looks the same).
pub(super) const NO_EDNS_AFTER_SILENCE: Duration = Duration::from_secs(60);
/// At most one warning per endpoint in this time.
const WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Rtt {
    /// Smoothed RTT and its variance, microseconds (0: no sample yet).
    srtt: u64,
    rttvar: u64,
    /// The current retransmit timeout (backed off after timeouts).
    rto: Option<Duration>,
}

/// One endpoint's health.
#[derive(Debug)]
pub(super) struct Health {
    rtt: Mutex<Rtt>,
    /// Milliseconds since `epoch` until which EDNS is left out (0: never).
    no_edns_until: AtomicU64,
    /// Milliseconds since `epoch` of the last warning, plus one.
    warned: AtomicU64,
    /// Failures not logged since the last warning.
    suppressed: AtomicU64,
    /// Failed queries to this endpoint (for the status page).
    failures: AtomicU64,
    epoch: Instant,
}

impl Health {
    pub(super) fn new(epoch: Instant) -> Self {
        Self {
            rtt: Mutex::new(Rtt::default()),
            no_edns_until: AtomicU64::new(0),
            warned: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            epoch,
        }
    }

    fn millis(&self, now: Instant) -> u64 {
        u64::try_from(now.duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// The time to wait for an answer before resending.
    pub(super) fn rto(&self) -> Duration {
        let rtt = self.rtt.lock().unwrap_or_else(PoisonError::into_inner);
        rtt.rto.unwrap_or(INITIAL_RTO)
    }

    /// A round trip measured on a try that was sent once (Karn: resent
    /// tries use their own socket and ID, so every sample is unambiguous).
    pub(super) fn sample(&self, rtt: Duration) {
        let r = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        let mut s = self.rtt.lock().unwrap_or_else(PoisonError::into_inner);
        if s.srtt == 0 {
            s.srtt = r.max(1);
            s.rttvar = r / 2;
        } else {
            let diff = s.srtt.abs_diff(r);
            s.rttvar = s.rttvar / 4 * 3 + diff / 4;
            s.srtt = (s.srtt / 8 * 7 + r / 8).max(1);
        }
        let rto = Duration::from_micros(s.srtt.saturating_add(s.rttvar.saturating_mul(4)));
        s.rto = Some(rto.clamp(MIN_RTO, MAX_RTO));
    }

    /// Counts a failed query to this endpoint.
    pub(super) fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Failed queries so far.
    pub(super) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The smoothed round-trip time (`None`: never measured).
    pub(super) fn srtt(&self) -> Option<Duration> {
        let s = self.rtt.lock().unwrap_or_else(PoisonError::into_inner);
        (s.srtt > 0).then(|| Duration::from_micros(s.srtt))
    }

    /// A try went unanswered for its timeout: back off (RFC 6298 §5.5).
    pub(super) fn timed_out(&self) {
        let mut s = self.rtt.lock().unwrap_or_else(PoisonError::into_inner);
        let rto = s.rto.unwrap_or(INITIAL_RTO);
        s.rto = Some(rto.saturating_mul(2).min(MAX_RTO));
    }

    /// Whether EDNS is to be left out of queries to this endpoint now.
    pub(super) fn no_edns(&self, now: Instant) -> bool {
        self.millis(now) < self.no_edns_until.load(Ordering::Relaxed)
    }

    /// The endpoint answered FORMERR or NOTIMP to EDNS, or only answered
    /// without it: leave EDNS out for `how_long`.
    pub(super) fn rejects_edns(&self, now: Instant, how_long: Duration) {
        let until = self
            .millis(now)
            .saturating_add(u64::try_from(how_long.as_millis()).unwrap_or(u64::MAX));
        self.no_edns_until.store(until, Ordering::Relaxed);
    }

    /// Whether a failure is to be logged now; `Some(n)` with the number of
    /// failures left unlogged since the last warning.
    pub(super) fn warn(&self, now: Instant) -> Option<u64> {
        let at = self.millis(now).saturating_add(1);
        let last = self.warned.load(Ordering::Relaxed);
        let every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && at.saturating_sub(last) < every {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // Two threads may both pass the check above; only one wins the swap.
        self.warned
            .compare_exchange(last, at, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retransmit_timeout_follows_the_measured_round_trip() {
        let h = Health::new(Instant::now());
        assert_eq!(h.rto(), INITIAL_RTO);
        for _ in 0..20 {
            h.sample(Duration::from_millis(100));
        }
        let rto = h.rto();
        assert!(rto >= Duration::from_millis(100) && rto < Duration::from_millis(200));
        h.timed_out();
        assert_eq!(h.rto(), rto * 2);
        for _ in 0..10 {
            h.timed_out();
        }
        assert_eq!(h.rto(), MAX_RTO);
        h.sample(Duration::from_micros(10));
        assert!(h.rto() >= MIN_RTO);
    }

    #[test]
    fn edns_is_left_out_for_a_while_after_a_rejection() {
        let epoch = Instant::now();
        let h = Health::new(epoch);
        assert!(!h.no_edns(epoch));
        h.rejects_edns(epoch, NO_EDNS_FOR);
        assert!(h.no_edns(epoch + Duration::from_secs(1)));
        assert!(!h.no_edns(epoch + NO_EDNS_FOR + Duration::from_secs(1)));
    }

    #[test]
    fn warnings_are_rate_limited_and_count_what_they_left_out() {
        let epoch = Instant::now();
        let h = Health::new(epoch);
        assert_eq!(h.warn(epoch), Some(0));
        assert_eq!(h.warn(epoch + Duration::from_secs(1)), None);
        assert_eq!(h.warn(epoch + Duration::from_secs(2)), None);
        assert_eq!(h.warn(epoch + WARN_EVERY + Duration::from_secs(1)), Some(2));
    }
}
