//! A bounded TTL cache of upstream answers, and the sharing of concurrent
//! identical misses (one upstream query for many clients: the DNSpooq
//! birthday defence).
//!
//! Sits after the policy decision and before `upstream` in the query flow:
//! only allowed and logged names get here. Answers are kept as the upstream's
//! bytes with the offsets of their TTLs, so a hit costs a copy and a few
//! byte patches, not a parse. Negative answers are kept for the SOA's
//! negative TTL (RFC 2308); SERVFAIL and truncated answers are not kept.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;
use tokio::sync::OnceCell;

use crate::wire::{self, Layout};

/// What identifies a cached answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Lowercase name without the trailing dot.
    pub name: Box<[u8]>,
    /// Query type.
    pub qtype: u16,
    /// Query class.
    pub qclass: u16,
    /// DO and CD bits of the query (they change what upstreams return).
    pub flags: u8,
}

/// One upstream answer, ready to be served again.
#[derive(Debug)]
pub struct Entry {
    /// The answer's bytes as the upstream sent them.
    pub bytes: Vec<u8>,
    /// Where its TTLs and OPT are.
    pub layout: Layout,
    /// When it was received.
    pub stored: Instant,
    /// How long it may be served (0: not cacheable).
    pub ttl: Duration,
    /// Its response code.
    pub rcode: ResponseCode,
    /// CNAME targets in the answer section, normalised, for policy checks.
    pub targets: Vec<Box<[u8]>>,
    /// A and AAAA addresses in the answer section, for response-IP rules.
    pub addresses: Vec<IpAddr>,
    /// Index of the upstream that answered.
    pub upstream: usize,
}

impl Entry {
    /// Reads an upstream answer; `None` when it is malformed.
    pub fn new(bytes: Vec<u8>, upstream: usize, max_ttl: u32) -> Option<Self> {
        let layout = wire::walk(&bytes)?;
        let msg = Message::from_vec(&bytes).ok()?;
        let rcode = msg.metadata.response_code;
        let mut targets = Vec::new();
        let mut addresses = Vec::new();
        for r in &msg.answers {
            match &r.data {
                RData::CNAME(c) => {
                    let name = c.0.to_ascii().to_ascii_lowercase();
                    let name = name.strip_suffix('.').unwrap_or(&name);
                    targets.push(name.as_bytes().into());
                }
                RData::A(a) => addresses.push(IpAddr::V4(a.0)),
                RData::AAAA(a) => addresses.push(IpAddr::V6(a.0)),
                _ => {}
            }
        }
        let positive = rcode == ResponseCode::NoError && !msg.answers.is_empty();
        let negative = rcode == ResponseCode::NXDomain
            || (rcode == ResponseCode::NoError && msg.answers.is_empty());
        let ttl = if wire::truncated(&bytes) {
            0
        } else if positive {
            msg.answers.iter().map(|r| r.ttl).min().unwrap_or(0)
        } else if negative {
            // RFC 2308: the negative TTL is the SOA's own TTL capped by its MINIMUM.
            msg.authorities
                .iter()
                .find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                    _ => None,
                })
                .unwrap_or(0)
        } else {
            0
        };
        Some(Self {
            bytes,
            layout,
            stored: Instant::now(),
            ttl: Duration::from_secs(u64::from(ttl.min(max_ttl))),
            rcode,
            targets,
            addresses,
            upstream,
        })
    }

    /// Whether it may still be served at `now`.
    pub fn fresh(&self, now: Instant) -> bool {
        now.duration_since(self.stored) < self.ttl
    }

    /// The bytes to send a client: its ID, its question's spelling, TTLs
    /// aged by the time in cache, no OPT unless the client sent one.
    pub fn render(&self, id: u16, client_question: &[u8], edns: bool, now: Instant) -> Vec<u8> {
        let mut out = self.bytes.clone();
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
}

type Flight = Arc<OnceCell<Option<Arc<Entry>>>>;

/// The cache and the table of upstream queries in flight.
#[derive(Debug)]
pub struct Cache {
    capacity: usize,
    inner: Mutex<Inner>,
    flights: Mutex<HashMap<Key, Flight, Hasher>>,
}

/// Seeded per process: keys are query names, which clients choose.
type Hasher = foldhash::fast::RandomState;

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, Arc<Entry>, Hasher>,
    order: VecDeque<Key>,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// A fresh entry.
    Hit(Arc<Entry>),
    /// Nothing usable.
    Miss,
}

impl Cache {
    /// A cache holding at most `capacity` answers (0 disables caching but
    /// keeps the sharing of identical misses).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
            flights: Mutex::new(HashMap::default()),
        }
    }

    /// Number of answers held.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    /// Whether it holds no answer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh answer for `key`, if any.
    pub fn get(&self, key: &Key, now: Instant) -> Lookup {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match inner.map.get(key) {
            Some(e) if e.fresh(now) => Lookup::Hit(e.clone()),
            Some(_) => {
                inner.map.remove(key);
                Lookup::Miss
            }
            None => Lookup::Miss,
        }
    }

    fn put(&self, key: Key, entry: Arc<Entry>) {
        if self.capacity == 0 || entry.ttl.is_zero() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Evict in insertion order; keys already replaced or removed are skipped.
        while inner.map.len() >= self.capacity {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            inner.map.remove(&old);
        }
        if inner.map.insert(key.clone(), entry).is_none() {
            inner.order.push_back(key);
        }
        // The order queue holds stale keys of replaced entries; keep it bounded.
        if inner.order.len() > self.capacity.saturating_mul(2) {
            let Inner { map, order } = &mut *inner;
            order.retain(|k| map.contains_key(k));
        }
    }

    /// The answer for `key` from `fetch`, running `fetch` once for all
    /// callers asking for the same key at the same time, and caching it.
    pub async fn fetch<F, Fut>(&self, key: &Key, fetch: F) -> Option<Arc<Entry>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<Entry>>,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            flights.entry(key.clone()).or_default().clone()
        };
        let result = flight
            .get_or_init(|| async {
                let entry = fetch().await.map(Arc::new);
                if let Some(e) = &entry {
                    self.put(key.clone(), e.clone());
                }
                entry
            })
            .await
            .clone();
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(key);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn answer(ttl: u32) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 1];
        m.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&[0, 4, 192, 0, 2, 1]);
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        m
    }

    fn key(name: &str) -> Key {
        Key {
            name: name.as_bytes().into(),
            qtype: 1,
            qclass: 1,
            flags: 0,
        }
    }

    #[test]
    fn render_sets_id_question_spelling_and_ages_ttls() {
        let mut e = Entry::new(answer(300), 0, 86400).unwrap();
        e.stored -= Duration::from_secs(100);
        let q = b"\x07ExAmPle\x03COM\x00\x00\x01\x00\x01";
        let out = e.render(7, q, false, Instant::now());
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.queries[0].name().to_ascii(), "ExAmPle.COM.");
        assert_eq!(m.answers[0].ttl, 200);
        assert!(m.edns.is_none());
        assert_eq!(e.addresses, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn entries_expire_with_their_ttl() {
        let mut e = Entry::new(answer(2), 0, 86400).unwrap();
        assert!(e.fresh(Instant::now()));
        e.stored -= Duration::from_secs(3);
        assert!(!e.fresh(Instant::now()));
    }

    #[test]
    fn capacity_bounds_the_entries() {
        let c = Cache::new(3);
        for i in 0..10 {
            c.put(
                key(&format!("n{i}.example")),
                Arc::new(Entry::new(answer(300), 0, 86400).unwrap()),
            );
        }
        assert_eq!(c.len(), 3);
        assert!(matches!(
            c.get(&key("n9.example"), Instant::now()),
            Lookup::Hit(_)
        ));
        assert!(matches!(
            c.get(&key("n0.example"), Instant::now()),
            Lookup::Miss
        ));
    }

    #[tokio::test]
    async fn concurrent_identical_misses_fetch_once() {
        let c = Arc::new(Cache::new(100));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (c, calls) = (c.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                c.fetch(&key("same.example"), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Entry::new(answer(300), 0, 86400)
                })
                .await
                .is_some()
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
