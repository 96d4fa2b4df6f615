//! One cached upstream answer: what it is read into when it arrives (TTL,
//! rcode, CNAME targets, addresses, all at the wire level), how it is
//! served again, and its stale copy (RFC 8767).
//!
//! Sits between `upstream` and `pipeline`: every forwarded answer becomes an
//! [`Entry`] once; a hit renders it with byte patches, never a parse.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};

use crate::wire::{self, Layout, Section};

/// TTL of every record in a stale answer (RFC 8767 §4 recommends 30 s).
pub const STALE_TTL: u32 = 30;

/// EDE option of a stale answer: code 15, info-code 3 "Stale Answer".
pub(super) const STALE_EDE: &[u8] = b"\x00\x0f\x00\x11\x00\x03upstream failed";

/// One upstream answer, ready to be served again.
#[derive(Debug)]
pub struct Entry {
    /// The answer's bytes as the upstream sent them, exactly as long as the
    /// answer (no receive buffer's spare capacity).
    pub bytes: Box<[u8]>,
    /// Where its TTLs and OPT are.
    pub layout: Layout,
    /// When it was received.
    pub stored: Instant,
    /// How long it may be served (0: not cacheable).
    pub ttl: Duration,
    /// Its response code (with the OPT's extended bits).
    pub rcode: ResponseCode,
    /// CNAME targets in the answer section, normalised, for policy checks.
    pub targets: Box<[Box<[u8]>]>,
    /// A and AAAA addresses in the answer section, for response-IP rules.
    pub addresses: Box<[IpAddr]>,
    /// Index of the upstream that answered.
    pub upstream: usize,
}

impl Entry {
    /// Reads an upstream answer at the wire level; `None` when it cannot be
    /// read safely (a name or count past the end, a CNAME target that does
    /// not decode, an IN A/AAAA of the wrong length): such an answer can
    /// only be relayed, never cached or checked against response rules.
    /// An answer that reads but must not be kept (TC, SERVFAIL, two OPTs)
    /// gets a zero TTL.
    pub fn new(bytes: Vec<u8>, upstream: usize, max_ttl: u32) -> Option<Self> {
        Self::take(bytes, upstream, max_ttl).ok()
    }

    /// [`Entry::new`] that hands the bytes back when they cannot be read,
    /// for the caller to relay them. They move into the entry without a
    /// copy when the vector has no spare capacity (an upstream answer is
    /// copied out of its socket's buffer at its own size).
    pub fn take(bytes: Vec<u8>, upstream: usize, max_ttl: u32) -> Result<Self, Vec<u8>> {
        let Some(mut entry) = Self::parse(&bytes, upstream, max_ttl) else {
            return Err(bytes);
        };
        entry.bytes = if bytes.capacity() == bytes.len() {
            bytes.into_boxed_slice()
        } else {
            // Copied, not shrunk: see `parse`.
            bytes.as_slice().into()
        };
        Ok(entry)
    }

    /// [`Entry::new`] from borrowed bytes (copied into the entry), so a
    /// caller keeps them to relay when they cannot be read.
    pub fn read(bytes: &[u8], upstream: usize, max_ttl: u32) -> Option<Self> {
        let mut entry = Self::parse(bytes, upstream, max_ttl)?;
        entry.bytes = bytes.into();
        Some(entry)
    }

    /// Everything but the bytes, which are left empty for the caller.
    fn parse(bytes: &[u8], upstream: usize, max_ttl: u32) -> Option<Self> {
        let mut layout = wire::walk(bytes)?;
        // `walk` reserves one offset per record, so the offsets fit already
        // (one slot spare with an OPT). Anything looser is copied to fit,
        // not shrunk in place: shrinking the upstream's 4 KiB receive buffer
        // in place once left a long-lived answer inside it and its free
        // tail too small for the next buffer (RSS grew without bound under
        // a unique-name flood that way).
        if layout.ttls.is_empty() {
            // Only an OPT: its slot goes.
            layout.ttls = Vec::new();
        } else if layout.ttls.capacity() > layout.ttls.len() + 1 {
            layout.ttls = layout.ttls.as_slice().into();
        }
        let records = wire::records(bytes)?;
        let answers = records.iter().filter(|r| r.section == Section::Answer);
        // Counted first, so the boxed slices below are allocated once at
        // their size.
        let (mut n_targets, mut n_addresses) = (0, 0);
        for r in answers.clone() {
            match (r.rtype, r.class) {
                (5, _) => n_targets += 1,
                (1 | 28, 1) => n_addresses += 1,
                _ => {}
            }
        }
        let mut targets = Vec::with_capacity(n_targets);
        let mut addresses = Vec::with_capacity(n_addresses);
        let mut opts = records.iter().filter(|r| r.rtype == 41);
        let opt = opts.next();
        let one_opt = opts.next().is_none() && opt.is_none_or(|o| o.section == Section::Additional);
        if !one_opt {
            // A second OPT, or one outside the additional section, stays as
            // the upstream sent it: stripping it for a client without EDNS
            // would leave the section counts wrong.
            layout.opt = None;
        }
        let high = opt.map_or(0, |o| o.ttl.to_be_bytes()[0]);
        let rcode = ResponseCode::from(high, wire::rcode(bytes));
        for r in answers.clone() {
            let rdata = bytes.get(r.rdata.clone())?;
            match (r.rtype, r.class) {
                (5, _) => targets.push(wire::name_text(bytes, r.rdata.start, r.rdata.end)?),
                (1, 1) => {
                    addresses.push(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(rdata).ok()?)))
                }
                (28, 1) => addresses.push(IpAddr::V6(Ipv6Addr::from(
                    <[u8; 16]>::try_from(rdata).ok()?,
                ))),
                _ => {}
            }
        }
        let positive = rcode == ResponseCode::NoError && answers.clone().next().is_some();
        let negative = rcode == ResponseCode::NXDomain
            || (rcode == ResponseCode::NoError && answers.clone().next().is_none());
        let ttl = if wire::truncated(bytes) || !one_opt {
            0
        } else if positive {
            answers.map(|r| r.ttl).min().unwrap_or(0)
        } else if negative {
            // RFC 2308: the negative TTL is the SOA's own TTL capped by its
            // MINIMUM, the last four bytes of its RDATA.
            records
                .iter()
                .filter(|r| r.section == Section::Authority && r.rtype == 6)
                .find_map(|r| {
                    let min = bytes.get(r.rdata.end.checked_sub(4)?..r.rdata.end)?;
                    let min = u32::from_be_bytes(min.try_into().ok()?);
                    (r.rdata.len() >= 22).then_some(r.ttl.min(min))
                })
                .unwrap_or(0)
        } else {
            0
        };
        Some(Self {
            bytes: Box::default(),
            layout,
            stored: Instant::now(),
            ttl: Duration::from_secs(u64::from(ttl.min(max_ttl))),
            rcode,
            targets: targets.into_boxed_slice(),
            addresses: addresses.into_boxed_slice(),
            upstream,
        })
    }

    /// Whether it may still be served at `now`.
    pub fn fresh(&self, now: Instant) -> bool {
        now.duration_since(self.stored) < self.ttl
    }

    /// When it stops being fresh.
    pub fn expires(&self) -> Instant {
        self.stored + self.ttl
    }

    /// The bytes to send a client: its ID, its question's spelling, TTLs
    /// aged by the time in cache, no OPT unless the client sent one.
    pub fn render(&self, id: u16, client_question: &[u8], edns: bool, now: Instant) -> Vec<u8> {
        let mut out = self.bytes.to_vec();
        wire::set_id(&mut out, id);
        let q = 12..self.layout.question_end;
        if client_question.len() == q.len() {
            out[q].copy_from_slice(client_question);
        }
        let age = u32::try_from(now.duration_since(self.stored).as_secs()).unwrap_or(u32::MAX);
        if age > 0 {
            for &at in &self.layout.ttls {
                let at = usize::from(at);
                let ttl = wire::ttl_at(&out, at).saturating_sub(age);
                wire::set_ttl_at(&mut out, at, ttl);
            }
        }
        if !edns && !wire::strip_opt(&mut out, &self.layout) {
            // The OPT is not last: re-encode without it.
            if let Ok(mut m) = Message::from_vec(&out) {
                m.edns = None;
                if let Ok(bytes) = m.to_vec() {
                    out = bytes;
                }
            }
        }
        out
    }

    /// A copy to serve while no upstream answers (RFC 8767): every TTL 30 s
    /// from `now`, and an Extended DNS Error 3 "Stale Answer" in its OPT
    /// (added when the upstream sent none; [`Self::render`] strips it for
    /// clients without EDNS). Without room for the EDE it is served without.
    pub fn stale_copy(&self, now: Instant) -> Self {
        let mut bytes = self.bytes.to_vec();
        for &at in &self.layout.ttls {
            wire::set_ttl_at(&mut bytes, usize::from(at), STALE_TTL);
        }
        add_stale_ede(&mut bytes, &self.layout);
        let layout = wire::walk(&bytes).unwrap_or_else(|| self.layout.clone());
        Self {
            bytes: bytes.into_boxed_slice(),
            layout,
            stored: now,
            ttl: Duration::from_secs(u64::from(STALE_TTL)),
            rcode: self.rcode,
            targets: self.targets.clone(),
            addresses: self.addresses.clone(),
            upstream: self.upstream,
        }
    }

    /// Heap bytes this entry holds, as the allocator counts them.
    pub(super) fn heap_cost(&self) -> usize {
        chunk(size_of::<Self>() + 2 * size_of::<usize>())
            + chunk(self.bytes.len())
            + chunk(self.layout.ttls.capacity() * size_of::<u16>())
            + chunk(size_of_val(&*self.targets))
            + self.targets.iter().map(|t| chunk(t.len())).sum::<usize>()
            + chunk(size_of_val(&*self.addresses))
    }
}

/// What one heap allocation of `n` bytes costs with glibc's malloc (the
/// usual Linux allocator): an 8-byte header, 16-byte alignment, 32 bytes
/// at least. Nothing for `n == 0` (empty boxes do not allocate).
pub(super) fn chunk(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n.saturating_add(8).div_ceil(16) * 16).max(32)
    }
}

/// Appends the stale EDE to the OPT when the OPT ends the message, or a new
/// OPT holding it when there is none. Leaves `msg` alone otherwise.
fn add_stale_ede(msg: &mut Vec<u8>, layout: &Layout) {
    if msg.len() + STALE_EDE.len() + 11 > usize::from(u16::MAX) {
        return;
    }
    match layout.opt {
        Some((start, end)) if end == msg.len() => {
            // RDLENGTH is the last field before the RDATA; the owner is the root.
            let Some(rdlen_at) = start.checked_add(9) else {
                return;
            };
            let Some(rdlen) = msg.get(rdlen_at..rdlen_at + 2) else {
                return;
            };
            let rdlen = usize::from(u16::from_be_bytes([rdlen[0], rdlen[1]]));
            if msg[start] != 0 || rdlen_at + 2 + rdlen != end {
                return;
            }
            let Ok(new) = u16::try_from(rdlen + STALE_EDE.len()) else {
                return;
            };
            msg[rdlen_at..rdlen_at + 2].copy_from_slice(&new.to_be_bytes());
            msg.extend_from_slice(STALE_EDE);
        }
        Some(_) => {}
        None => {
            // Only right after the last record: bytes trailing it would be
            // read as the new record's start.
            let last = wire::records(msg).and_then(|r| r.last().map(|r| r.rdata.end));
            if last.unwrap_or(layout.question_end) != msg.len() {
                return;
            }
            let ar = u16::from_be_bytes([msg[10], msg[11]]);
            let Some(ar) = ar.checked_add(1) else {
                return;
            };
            msg[10..12].copy_from_slice(&ar.to_be_bytes());
            msg.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
            msg.extend_from_slice(&u16::try_from(STALE_EDE.len()).unwrap_or(0).to_be_bytes());
            msg.extend_from_slice(STALE_EDE);
        }
    }
}

#[cfg(test)]
mod tests;
