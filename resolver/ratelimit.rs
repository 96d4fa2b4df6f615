//! Per-client rate limiting of UDP queries (`rate_limit` in the config; off
//! unless set). Sits at UDP receive, before any parsing or policy: one
//! token bucket per client prefix (/32 IPv4 and /56 IPv6 by default), with
//! an exempt list. A query over the limit is dropped, except every
//! `slip`-th one, which gets an empty TC=1 reply so a real client behind
//! a busy address retries over TCP (as BIND's RRL does); TCP is not limited
//! here (a spoofed source cannot complete a handshake).
//!
//! The table holds at most [`MAX_CLIENTS`] prefixes, in [`Shards`] (one
//! lock each, so workers seldom wait for one another), each shard its
//! share; when a shard is full, its prefixes whose bucket has refilled are
//! forgotten, and if none has, a new prefix is let through unlimited (fail
//! open: a spoofing flood must not lock real clients out).

#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;

use crate::shards::{SHARDS, Shards};
use crate::wire;

/// Prefixes tracked at once.
pub const MAX_CLIENTS: usize = 65_536;
/// Prefixes tracked at once by one shard.
const PER_SHARD: usize = MAX_CLIENTS / SHARDS;

/// The validated `rate_limit` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Queries per second per prefix, sustained.
    pub qps: u32,
    /// Queries a prefix may send at once after being quiet.
    pub burst: u32,
    /// Every `slip`-th query over the limit gets TC=1; 0 drops them all.
    pub slip: u32,
    /// IPv4 prefix length a bucket covers.
    pub ipv4_prefix: u8,
    /// IPv6 prefix length a bucket covers.
    pub ipv6_prefix: u8,
    /// Clients never limited.
    pub exempt: Vec<IpNet>,
}

/// What to do with one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit (or exempt): serve it.
    Pass,
    /// Over the limit: answer with an empty TC=1 reply.
    Slip,
    /// Over the limit: no answer.
    Drop,
}

/// Thousandths of a token, so refills need no floating point.
const MILLI: u64 = 1_000;

struct Bucket {
    milli_tokens: u64,
    last: Instant,
    over: u32,
}

/// The buckets, kept across reloads.
#[derive(Default)]
pub struct Limiter {
    buckets: Shards<HashMap<(bool, u128), Bucket>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").finish_non_exhaustive()
    }
}

impl Limiter {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Charges one query from `ip` at `now`.
    pub fn check(&self, s: &Settings, ip: IpAddr, now: Instant) -> Verdict {
        let ip = ip.to_canonical();
        if s.exempt.iter().any(|n| n.contains(&ip)) {
            return Verdict::Pass;
        }
        let key = prefix(ip, s);
        let full = u64::from(s.burst.max(1)).saturating_mul(MILLI);
        let mut table = self.buckets.lock(&key);
        if table.len() >= PER_SHARD && !table.contains_key(&key) {
            table.retain(|_, b| refilled(b, s, now) < full);
            if table.len() >= PER_SHARD {
                return Verdict::Pass;
            }
        }
        let b = table.entry(key).or_insert(Bucket {
            milli_tokens: full,
            last: now,
            over: 0,
        });
        b.milli_tokens = refilled(b, s, now).min(full);
        b.last = now;
        if b.milli_tokens >= MILLI {
            b.milli_tokens = b.milli_tokens.saturating_sub(MILLI);
            b.over = 0;
            return Verdict::Pass;
        }
        b.over = b.over.saturating_add(1);
        match s.slip {
            0 => Verdict::Drop,
            n if b.over.checked_rem(n) == Some(0) => Verdict::Slip,
            _ => Verdict::Drop,
        }
    }
}

/// The bucket's tokens (thousandths) after refilling up to `now`.
fn refilled(b: &Bucket, s: &Settings, now: Instant) -> u64 {
    let ms = u64::try_from(now.saturating_duration_since(b.last).as_millis()).unwrap_or(u64::MAX);
    // qps tokens per second = qps thousandths per millisecond.
    b.milli_tokens
        .saturating_add(ms.saturating_mul(u64::from(s.qps)))
}

/// The bucket key: the address cut to the configured prefix.
fn prefix(ip: IpAddr, s: &Settings) -> (bool, u128) {
    prefix_key(ip, s.ipv4_prefix, s.ipv6_prefix)
}

/// `ip` cut to `v4` or `v6` bits, with its family: the key by which a
/// client is counted here and in the TCP connection table.
pub(crate) fn prefix_key(ip: IpAddr, v4: u8, v6: u8) -> (bool, u128) {
    match ip.to_canonical() {
        IpAddr::V4(v4addr) => {
            let bits = u32::from(v4addr);
            let keep = u32::from(v4.min(32));
            let mask = u32::MAX
                .checked_shl(32u32.saturating_sub(keep))
                .unwrap_or(0);
            (false, u128::from(bits & mask))
        }
        IpAddr::V6(v6addr) => {
            let bits = u128::from(v6addr);
            let keep = u32::from(v6.min(128));
            let mask = u128::MAX
                .checked_shl(128u32.saturating_sub(keep))
                .unwrap_or(0);
            (true, bits & mask)
        }
    }
}

/// An empty reply with TC=1 to a plain query (others get nothing).
pub fn slip(packet: &[u8]) -> Option<Vec<u8>> {
    let q = wire::parse_query(packet)?;
    let mut reply = wire::truncate(packet, q.question_end, q.edns.map(|e| e.dnssec_ok));
    if let Some(flags) = reply.get_mut(2) {
        *flags |= 0x80;
    }
    Some(reply)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings() -> Settings {
        Settings {
            qps: 10,
            burst: 20,
            slip: 2,
            ipv4_prefix: 32,
            ipv6_prefix: 56,
            exempt: vec!["10.9.0.0/16".parse().unwrap()],
        }
    }

    #[test]
    fn a_burst_passes_then_the_rate_and_every_second_extra_query_slips() {
        let (l, s, t0) = (Limiter::new(), settings(), Instant::now());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..20 {
            assert_eq!(l.check(&s, ip, t0), Verdict::Pass);
        }
        let over: Vec<Verdict> = (0..4).map(|_| l.check(&s, ip, t0)).collect();
        assert_eq!(
            over,
            [Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]
        );
        // 100 ms later, one token (10 per second) is back.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(l.check(&s, ip, t1), Verdict::Pass);
        assert_ne!(l.check(&s, ip, t1), Verdict::Pass);
    }

    #[test]
    fn one_flooding_client_does_not_limit_another_and_exempt_ones_are_never_limited() {
        let (l, s, t0) = (Limiter::new(), settings(), Instant::now());
        let flood: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10_000 {
            l.check(&s, flood, t0);
        }
        assert_eq!(l.check(&s, "192.0.2.2".parse().unwrap(), t0), Verdict::Pass);
        for _ in 0..1_000 {
            assert_eq!(l.check(&s, "10.9.1.1".parse().unwrap(), t0), Verdict::Pass);
        }
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_56_and_mapped_ipv4_is_ipv4() {
        let (l, s, t0) = (Limiter::new(), settings(), Instant::now());
        for i in 0..20u16 {
            let ip: IpAddr = format!("2001:db8:0:{:x}::{i}", i % 256).parse().unwrap();
            assert_eq!(l.check(&s, ip, t0), Verdict::Pass);
        }
        assert_ne!(
            l.check(&s, "2001:db8:0:ff::1".parse().unwrap(), t0),
            Verdict::Pass
        );
        assert_eq!(
            l.check(&s, "2001:db8:0:100::1".parse().unwrap(), t0),
            Verdict::Pass
        );
        assert_eq!(
            prefix(
                "::ffff:192.0.2.1".parse::<IpAddr>().unwrap().to_canonical(),
                &s
            ),
            prefix("192.0.2.1".parse().unwrap(), &s)
        );
    }

    #[test]
    fn a_full_table_forgets_refilled_buckets_or_fails_open() {
        let (l, mut s, t0) = (Limiter::new(), settings(), Instant::now());
        s.burst = 1;
        let len = |l: &Limiter| {
            let mut n = 0;
            l.buckets.each(|t| n += t.len());
            n
        };
        // New clients until every shard is full, whatever the hash spread.
        let mut i = 0u32;
        while len(&l) < MAX_CLIENTS && i < 4 * MAX_CLIENTS as u32 {
            l.check(&s, IpAddr::V4(i.into()), t0);
            i += 1;
        }
        assert_eq!(len(&l), MAX_CLIENTS, "bounded, every shard full");
        // Every bucket is empty: a new client passes unlimited, its shard
        // stays bounded, and it passes again (fail open, not counted).
        let new = IpAddr::V4(u32::MAX.into());
        assert_eq!(l.check(&s, new, t0), Verdict::Pass);
        assert_eq!(l.check(&s, new, t0), Verdict::Pass);
        assert_eq!(len(&l), MAX_CLIENTS);
        // A second later its shard's buckets have refilled and are forgotten.
        assert_eq!(l.check(&s, new, t0 + Duration::from_secs(1)), Verdict::Pass);
        assert_eq!(len(&l), MAX_CLIENTS - PER_SHARD + 1);
    }
}
