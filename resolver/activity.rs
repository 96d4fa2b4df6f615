//! What the status page shows of recent traffic: blocked, logged and
//! allowed lookups of listed names per category in 5-minute buckets over
//! the last 24 hours, and the last [`RECENT`] blocked or logged lookups.
//!
//! Sits after the answer, beside the client table (`pipeline::observe`),
//! only for queries that matched a list entry. Memory is fixed: the buckets
//! are one array, the recent lookups a ring that overwrites its oldest
//! ([`BUCKETS_BYTES`], [`RECENT_MAX_BYTES`]; docs/api.md).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;

use crate::blocklist::Category;
use crate::policy::Verdict;

/// Seconds per bucket.
pub const BUCKET_SECONDS: i64 = 300;
/// Buckets kept: 24 hours.
pub const BUCKETS: usize = 288;
/// Recent blocked or logged lookups kept.
pub const RECENT: usize = 100;
/// Longest name text kept in the ring (a 255-byte wire name with every
/// byte escaped as `\DDD` is about four times that).
pub const NAME_MAX: usize = 1024;

/// Counts per category slot (0: no category), per verdict (blocked, logged,
/// allowed).
type Counts = [[u32; 3]; Category::SLOTS];

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// The bucket's start in seconds since the epoch, divided by
    /// [`BUCKET_SECONDS`] (0: never written).
    index: i64,
    counts: Counts,
}

/// The bytes the buckets take (fixed).
pub const BUCKETS_BYTES: usize = BUCKETS * std::mem::size_of::<Bucket>();
/// The most bytes the ring can take: every slot holding the longest name.
/// Rule names (from the config) come on top.
pub const RECENT_MAX_BYTES: usize = RECENT * (std::mem::size_of::<Lookup>() + NAME_MAX);

/// One blocked or logged lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// When it arrived.
    pub time: Timestamp,
    /// The client's network.
    pub network: Arc<str>,
    /// The client (redacted when shown, as the query log writes it).
    pub client: IpAddr,
    /// The name, escaped as the query log writes it.
    pub name: Box<str>,
    /// block or log.
    pub verdict: Verdict,
    /// The matched entry's category.
    pub category: Option<Category>,
    /// The rule that decided.
    pub rule: Option<Box<str>>,
}

/// The activity of one sum over buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Per category (`None`: entries without one): blocked, logged, allowed.
    pub by_category: Vec<(Option<Category>, [u64; 3])>,
    /// Listed lookups per bucket, oldest first (the sparkline).
    pub series: Vec<u64>,
}

#[derive(Debug)]
struct Inner {
    buckets: Box<[Bucket; BUCKETS]>,
    recent: VecDeque<Lookup>,
}

/// The buckets and the ring.
#[derive(Debug)]
pub struct Activity {
    inner: Mutex<Inner>,
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

fn slot_of(category: Option<Category>) -> usize {
    category.map_or(0, |c| (c as usize).saturating_add(1))
}

fn verdict_slot(verdict: Verdict) -> Option<usize> {
    match verdict {
        Verdict::Block => Some(0),
        Verdict::Log => Some(1),
        Verdict::Allow => Some(2),
        Verdict::Refuse => None,
    }
}

impl Activity {
    /// Empty buckets and an empty ring (all memory taken now).
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                buckets: Box::new([Bucket::default(); BUCKETS]),
                recent: VecDeque::with_capacity(RECENT),
            }),
        }
    }

    /// Counts one lookup of a listed name; a blocked or logged one also
    /// goes into the ring (`lookup` is only called for those).
    pub fn record(
        &self,
        verdict: Verdict,
        category: Option<Category>,
        now: Timestamp,
        lookup: impl FnOnce() -> Lookup,
    ) {
        let Some(v) = verdict_slot(verdict) else {
            return;
        };
        let index = now.as_second().div_euclid(BUCKET_SECONDS);
        let at = usize::try_from(index.rem_euclid(BUCKETS as i64)).unwrap_or(0);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = inner.buckets.get_mut(at) {
            if b.index != index {
                *b = Bucket {
                    index,
                    counts: Counts::default(),
                };
            }
            if let Some(c) = b
                .counts
                .get_mut(slot_of(category))
                .and_then(|c| c.get_mut(v))
            {
                *c = c.saturating_add(1);
            }
        }
        if v < 2 {
            if inner.recent.len() >= RECENT {
                inner.recent.pop_front();
            }
            inner.recent.push_back(lookup());
        }
    }

    /// Sums over the buckets of the last `buckets` (at most [`BUCKETS`])
    /// up to `now`.
    pub fn totals(&self, now: Timestamp, buckets: usize) -> Totals {
        let newest = now.as_second().div_euclid(BUCKET_SECONDS);
        let span = i64::try_from(buckets.min(BUCKETS)).unwrap_or(0);
        let mut sums = [[0u64; 3]; Category::SLOTS];
        let mut series = Vec::with_capacity(buckets.min(BUCKETS));
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for back in (0..span).rev() {
            let index = newest.saturating_sub(back);
            let at = usize::try_from(index.rem_euclid(BUCKETS as i64)).unwrap_or(0);
            let mut total = 0u64;
            if let Some(b) = inner.buckets.get(at).filter(|b| b.index == index) {
                for (sum, counts) in sums.iter_mut().zip(b.counts.iter()) {
                    for (s, c) in sum.iter_mut().zip(counts) {
                        *s = s.saturating_add(u64::from(*c));
                        total = total.saturating_add(u64::from(*c));
                    }
                }
            }
            series.push(total);
        }
        drop(inner);
        let by_category = sums
            .into_iter()
            .enumerate()
            .filter(|(_, s)| s.iter().any(|n| *n > 0))
            .map(|(i, s)| {
                (
                    i.checked_sub(1).and_then(|i| Category::ALL.get(i).copied()),
                    s,
                )
            })
            .collect();
        Totals {
            by_category,
            series,
        }
    }

    /// The ring, newest first.
    pub fn recent(&self) -> Vec<Lookup> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.recent.iter().rev().cloned().collect()
    }
}

/// The ring's record of one lookup (`name`: escaped as the query log
/// writes it; `None` when the question was not kept).
pub fn lookup(
    network: &Arc<str>,
    client: IpAddr,
    name: Option<String>,
    verdict: Verdict,
    category: Option<Category>,
    rule: Option<&str>,
    time: Timestamp,
) -> Lookup {
    Lookup {
        time,
        network: network.clone(),
        client,
        name: bounded_name(name.unwrap_or_default()),
        verdict,
        category,
        rule: rule.map(Into::into),
    }
}

/// A name for the ring: cut at [`NAME_MAX`] bytes (on a char boundary).
pub fn bounded_name(mut name: String) -> Box<str> {
    if name.len() > NAME_MAX {
        let mut cut = NAME_MAX;
        while !name.is_char_boundary(cut) {
            cut = cut.saturating_sub(1);
        }
        name.truncate(cut);
    }
    name.into_boxed_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        a: &Activity,
        verdict: Verdict,
        category: Option<Category>,
        name: &str,
        now: Timestamp,
    ) {
        a.record(verdict, category, now, || Lookup {
            time: Timestamp::UNIX_EPOCH,
            network: Arc::from("default"),
            client: IpAddr::from([10, 0, 0, 1]),
            name: name.into(),
            verdict,
            category,
            rule: None,
        });
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn lookups_are_counted_per_category_and_verdict_in_their_bucket() {
        let a = Activity::new();
        let now = at(1_800_000_000);
        record(&a, Verdict::Block, Some(Category::Update), "a", now);
        record(&a, Verdict::Block, Some(Category::Update), "a", now);
        record(&a, Verdict::Log, Some(Category::Web), "b", now);
        record(&a, Verdict::Allow, None, "c", now);
        let t = a.totals(now, 12);
        assert_eq!(
            t.by_category,
            vec![
                (None, [0, 0, 1]),
                (Some(Category::Update), [2, 0, 0]),
                (Some(Category::Web), [0, 1, 0]),
            ]
        );
        assert_eq!(t.series.len(), 12);
        assert_eq!(t.series.last(), Some(&4));
    }

    #[test]
    fn a_bucket_older_than_the_window_is_not_counted_and_is_reused() {
        let a = Activity::new();
        let then = at(1_800_000_000);
        record(&a, Verdict::Block, Some(Category::Update), "a", then);
        let hour_later = at(1_800_000_000 + 3600);
        assert_eq!(a.totals(hour_later, 12).series.iter().sum::<u64>(), 0);
        assert_eq!(a.totals(hour_later, 13).series.iter().sum::<u64>(), 1);
        // A day later the same slot holds a new bucket, not the old count.
        let day_later = at(1_800_000_000 + 86_400);
        record(&a, Verdict::Log, Some(Category::Web), "b", day_later);
        let t = a.totals(day_later, BUCKETS);
        assert_eq!(t.by_category, vec![(Some(Category::Web), [0, 1, 0])]);
    }

    #[test]
    fn the_ring_keeps_the_newest_blocked_and_logged_lookups_only() {
        let a = Activity::new();
        let now = at(1_800_000_000);
        for i in 0..RECENT + 5 {
            record(&a, Verdict::Block, None, &i.to_string(), now);
        }
        record(&a, Verdict::Allow, None, "allowed", now);
        let r = a.recent();
        assert_eq!(r.len(), RECENT);
        assert_eq!(&*r[0].name, (RECENT + 4).to_string());
        assert!(r.iter().all(|l| &*l.name != "allowed" && &*l.name != "0"));
    }

    #[test]
    fn a_long_name_is_cut_to_the_bound() {
        assert_eq!(bounded_name("é".repeat(600)).len(), NAME_MAX);
        assert_eq!(&*bounded_name("short".into()), "short");
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_memory_bound_is_the_one_docs_api_states() {
        assert_eq!(BUCKETS_BYTES, 36_864, "docs/api.md");
        assert_eq!(RECENT_MAX_BYTES, 111_200, "docs/api.md");
    }
}
