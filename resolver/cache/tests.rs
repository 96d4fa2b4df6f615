//! Unit tests of the cache: keys, byte budget, SIEVE, serve-stale, shared
//! misses.

use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::Message;

use super::*;

/// `name` A? answered with one A record with `ttl`, and an OPT.
pub(super) fn answer_for(name: &str, ttl: u32) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 1];
    for label in name.split('.') {
        m.push(u8::try_from(label.len()).unwrap());
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    m.extend_from_slice(&ttl.to_be_bytes());
    m.extend_from_slice(&[0, 4, 192, 0, 2, 1]);
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    m
}

fn key(name: &str) -> Key {
    Key::new(name.split('.').map(str::as_bytes), 1, 1, 0).unwrap()
}

fn entry(name: &str, ttl: u32) -> Arc<Entry> {
    Arc::new(Entry::new(answer_for(name, ttl), 0, 86400).unwrap())
}

/// An answer for `name` with `ttl`, received `age` seconds ago.
fn aged(name: &str, ttl: u32, age: u64) -> Arc<Entry> {
    let mut e = Entry::new(answer_for(name, ttl), 0, 86400).unwrap();
    e.stored -= Duration::from_secs(age);
    Arc::new(e)
}

fn limits(max_bytes: usize) -> Limits {
    Limits {
        max_bytes,
        max_entries: None,
        stale_for: DEFAULT_STALE_FOR,
        stale_refresh: crate::cache::RECHECK,
    }
}

fn cache(l: Limits) -> Cache {
    Cache::new(l, metrics::Counter::noop())
}

#[test]
fn keys_keep_label_boundaries_and_ignore_case() {
    // a.b.example (three labels) and a\.b.example (a dot inside a label).
    let three = Key::new([&b"a"[..], b"b", b"example"].into_iter(), 1, 1, 0).unwrap();
    let two = Key::new([&b"a.b"[..], b"example"].into_iter(), 1, 1, 0).unwrap();
    assert_ne!(three, two);
    assert_eq!(three.as_bytes(), b"\0\0\x01\0\x01\x01a\x01b\x07example\0");
    let upper = Key::new([&b"A"[..], b"B", b"EXAMPLE"].into_iter(), 1, 1, 0).unwrap();
    assert_eq!(three, upper);
    // DO, type and class are part of the key.
    let dnssec = Key::new([&b"a"[..], b"b", b"example"].into_iter(), 1, 1, 1).unwrap();
    assert_ne!(three, dnssec);
    // The root has a key; a 64-byte label or a 256-byte name has none.
    assert!(Key::new(std::iter::empty(), 2, 1, 0).is_some());
    assert!(Key::new([&[b'a'; 64][..]].into_iter(), 1, 1, 0).is_none());
    let long = [&[b'a'; 63][..]; 4];
    assert!(Key::new(long.into_iter(), 1, 1, 0).is_none());
    assert!(Key::new(long[..3].iter().copied().chain([&[b'a'; 61][..]]), 1, 1, 0).is_some());
}

#[test]
fn names_differing_only_by_an_escaped_dot_get_their_own_entries() {
    let c = cache(limits(1 << 20));
    let three = Key::new([&b"a"[..], b"b", b"example"].into_iter(), 1, 1, 0).unwrap();
    let two = Key::new([&b"a.b"[..], b"example"].into_iter(), 1, 1, 0).unwrap();
    c.insert(&three.boxed(), entry("a.b.example", 300));
    assert!(matches!(c.get(&three, Instant::now()), Lookup::Hit(_)));
    assert!(matches!(c.get(&two, Instant::now()), Lookup::Miss));
}

#[test]
fn a_unique_name_flood_never_exceeds_the_byte_budget() {
    let max = 256 << 10;
    let c = cache(limits(max));
    let mut most = 0;
    for i in 0..20_000 {
        let name = format!("n{i}.flood.example");
        c.insert(&key(&name).boxed(), entry(&name, 300));
        let bytes = c.bytes();
        assert!(bytes <= max, "{bytes} bytes accounted after {i} names");
        most = most.max(c.len());
    }
    // The budget is used, not left empty: some 700 of these answers fit.
    assert!(most > 400, "only {most} entries held");
    assert!(c.len() < 20_000);
}

#[test]
fn accounting_charges_each_entry_its_exact_bytes_plus_the_overhead() {
    let e = entry("one.example", 300);
    // Exact size: no receive buffer's spare capacity is kept.
    assert_eq!(e.bytes.len(), answer_for("one.example", 300).len());
    // One store: in a sharded cache each shard rounds its own capacity up,
    // which moves the figure with the hash seed at a thousand entries.
    let c = cache(limits(SHARD_FROM - 1));
    assert_eq!(c.shards(), 1);
    let mut answers = 0;
    for i in 0..1_000 {
        let name = format!("n{i:03}.overhead.example");
        let e = entry(&name, 300);
        answers += e.bytes.len();
        c.insert(&key(&name).boxed(), e);
    }
    assert_eq!(c.len(), 1_000);
    let overhead = (c.bytes() - answers) / 1_000;
    // docs/performance.md states this figure: keep them in step.
    assert!(
        (100..=store::PER_ENTRY_OVERHEAD).contains(&overhead),
        "{overhead} bytes of overhead an entry"
    );
}

#[test]
fn the_entry_cap_bounds_the_count_too() {
    let c = cache(Limits {
        max_entries: Some(3),
        ..limits(1 << 20)
    });
    for i in 0..10 {
        let name = format!("n{i}.example");
        c.insert(&key(&name).boxed(), entry(&name, 300));
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

#[test]
fn the_entry_cap_holds_across_shards() {
    let size = crate::shards::SHARDS * 64 + 15;
    let c = cache(Limits {
        max_entries: Some(size),
        ..limits(64 << 20)
    });
    assert_eq!(c.shards(), crate::shards::SHARDS);
    for i in 0..5_000 {
        let name = format!("n{i}.cap.example");
        c.insert(&key(&name).boxed(), entry(&name, 300));
    }
    assert!(c.len() <= size, "{} answers held, size {size}", c.len());
    assert_eq!(c.len(), crate::shards::SHARDS * 64, "every shard full");
}

#[test]
fn a_popular_name_survives_a_flood_of_unique_names() {
    let c = cache(Limits {
        max_entries: Some(100),
        ..limits(1 << 20)
    });
    let popular = key("popular.example");
    c.insert(&popular.boxed(), entry("popular.example", 300));
    // Ten times more unique names than the cache holds; the popular name
    // is asked again after every few of them.
    for i in 0..1_000 {
        let name = format!("u{i}.flood.example");
        c.insert(&key(&name).boxed(), entry(&name, 300));
        if i % 10 == 0 {
            assert!(
                matches!(c.get(&popular, Instant::now()), Lookup::Hit(_)),
                "evicted after {i} unique names"
            );
        }
    }
    assert!(matches!(c.get(&popular, Instant::now()), Lookup::Hit(_)));
    assert_eq!(c.len(), 100);
}

#[test]
fn expired_answers_are_served_stale_only_after_a_failure() {
    // In one store, and in a cache split into shards (the default size).
    for l in [limits(1 << 20), limits(SHARD_FROM)] {
        let c = cache(l);
        let k = key("stale.example");
        c.insert(&k.boxed(), aged("stale.example", 60, 600));
        let now = Instant::now();
        // Expired: a lookup asks the upstreams first.
        assert!(matches!(c.get(&k, now), Lookup::Miss));
        // They failed: the stale copy, TTL 30 and EDE 3.
        let s = c.stale(&k.boxed(), now).unwrap();
        let out = s.render(9, &[], true, now);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.answers[0].ttl, STALE_TTL);
        assert!(m.edns.is_some());
        // The OPT ends with EDE option 15, info-code 3 "Stale Answer".
        let ede = entry::STALE_EDE;
        assert!(out.ends_with(ede));
        assert_eq!(&ede[..2], &[0, 15]);
        assert_eq!(&ede[4..6], &[0, 3]);
        assert_eq!(usize::from(ede[3]), ede.len() - 4);
        // Without EDNS the client gets no OPT (and so no EDE).
        let plain = Message::from_vec(&s.render(9, &[], false, now)).unwrap();
        assert!(plain.edns.is_none());
        assert_eq!(plain.answers[0].ttl, STALE_TTL);
        // For 30 s after the failure the stale copy is a hit, with no
        // upstream try at all.
        let mut refreshes = c.refreshes().unwrap();
        assert!(matches!(
            c.get(&k, now + Duration::from_secs(10)),
            Lookup::Hit(_)
        ));
        assert!(
            refreshes.try_recv().is_err(),
            "no refresh inside the interval"
        );
        // After it, the client is still answered stale at once, and the name
        // is queued once for a background refresh.
        for _ in 0..3 {
            assert!(matches!(
                c.get(&k, now + Duration::from_secs(31)),
                Lookup::Hit(_)
            ));
        }
        assert_eq!(refreshes.try_recv().unwrap(), k.boxed());
        assert!(refreshes.try_recv().is_err(), "one refresh an interval");
        assert!(matches!(
            c.get(&k, now + Duration::from_secs(62)),
            Lookup::Hit(_)
        ));
        assert_eq!(refreshes.try_recv().unwrap(), k.boxed());
        // A fresh answer ends it: a plain hit, nothing queued.
        c.insert(&k.boxed(), entry("stale.example", 60));
        assert!(matches!(c.get(&k, Instant::now()), Lookup::Hit(e) if e.fresh(Instant::now())));
        assert!(refreshes.try_recv().is_err());
    }
}

#[test]
fn a_refresh_query_asks_the_keys_question_with_its_flags() {
    // DO and CD set (flags bits 0 and 1), AAAA IN.
    let k = Key::new(
        ["www", "Example", "com"].iter().map(|l| l.as_bytes()),
        28,
        1,
        3,
    )
    .unwrap()
    .boxed();
    let m = Message::from_vec(&k.query().unwrap()).unwrap();
    assert!(m.metadata.recursion_desired && m.metadata.checking_disabled);
    assert!(!m.metadata.authentic_data);
    let q = &m.queries[0];
    assert_eq!(q.name().to_ascii(), "www.example.com.");
    assert_eq!(u16::from(q.query_type()), 28);
    let edns = m.edns.unwrap();
    assert!(edns.flags().dnssec_ok);
    assert_eq!(edns.max_payload(), crate::wire::MAX_UDP);
}

#[test]
fn answers_past_the_stale_window_are_dropped() {
    let c = cache(Limits {
        stale_for: Duration::from_secs(100),
        ..limits(1 << 20)
    });
    let k = key("old.example");
    c.insert(&k.boxed(), aged("old.example", 60, 200));
    assert!(c.stale(&k.boxed(), Instant::now()).is_none());
    assert!(matches!(c.get(&k, Instant::now()), Lookup::Miss));
    assert!(c.is_empty());
    let off = cache(Limits {
        stale_for: Duration::ZERO,
        ..limits(1 << 20)
    });
    off.insert(&k.boxed(), aged("old.example", 60, 61));
    assert!(off.stale(&k.boxed(), Instant::now()).is_none());
}

#[tokio::test]
async fn concurrent_identical_misses_fetch_once() {
    let c = Arc::new(cache(limits(1 << 20)));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (c, calls) = (c.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            c.fetch(&key("same.example").boxed(), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Entry::new(answer_for("same.example", 300), 0, 86400)
            })
            .await
            .is_some()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(c.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_fetch_whose_caller_is_dropped_mid_flight_leaves_no_trace_in_the_flights() {
    let c = cache(limits(1 << 20));
    let flights = |c: &Cache| c.flights.lock().unwrap().len();
    for i in 0..100 {
        let k = key(&format!("n{i}.example")).boxed();
        // The upstream never answers; the caller gives up (a DoH stream reset).
        let gone = tokio::time::timeout(
            Duration::from_millis(10),
            c.fetch(&k, std::future::pending::<Option<Entry>>),
        )
        .await;
        assert!(gone.is_err());
    }
    assert_eq!(flights(&c), 0);
    // A completed fetch leaves the table as well.
    let k = key("done.example").boxed();
    let got = c
        .fetch(&k, || async {
            Entry::new(answer_for("done.example", 300), 0, 86400)
        })
        .await;
    assert!(got.is_some());
    assert_eq!(flights(&c), 0);
}

#[test]
fn a_good_answer_after_an_outage_replaces_the_stale_one() {
    let c = cache(limits(1 << 20));
    let k = key("back.example");
    c.insert(&k.boxed(), aged("back.example", 60, 600));
    let now = Instant::now();
    assert!(c.stale(&k.boxed(), now).is_some());
    // The upstream is back: its answer is fresh, not a stale copy.
    c.insert(&k.boxed(), entry("back.example", 300));
    let Lookup::Hit(hit) = c.get(&k, now) else {
        panic!("a miss");
    };
    assert_eq!(hit.ttl, Duration::from_secs(300));
    assert!(!hit.bytes.ends_with(entry::STALE_EDE));
    assert_eq!(c.len(), 1);
}

#[test]
fn a_zero_budget_or_cap_keeps_nothing() {
    for l in [
        limits(0),
        Limits {
            max_entries: Some(0),
            ..limits(1 << 20)
        },
    ] {
        let c = cache(l);
        c.insert(&key("a.example").boxed(), entry("a.example", 300));
        assert!(c.is_empty());
        assert!(matches!(
            c.get(&key("a.example"), Instant::now()),
            Lookup::Miss
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn the_refresher_runs_the_given_refresh_once_per_queued_name_until_shutdown() {
    let (tx, rx) = tokio::sync::mpsc::channel(refresh::QUEUE);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(refresh::run(
        move |k: BoxedKey| {
            let done = done_tx.clone();
            async move {
                let _ = done.send(k);
            }
        },
        rx,
        stopped,
    ));
    let names = ["a.example", "b.example", "c.example"];
    for name in names {
        tx.send(key(name).boxed()).await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in names {
        seen.push(done.recv().await.unwrap());
    }
    // Refreshes run concurrently: each name once, in any order.
    for name in names {
        let k = key(name).boxed();
        assert_eq!(seen.iter().filter(|s| **s == k).count(), 1, "{name}");
    }
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[test]
fn a_large_cache_is_split_into_shards_that_find_every_key_and_keep_the_budget() {
    assert_eq!(
        cache(limits(SHARD_FROM - 1)).shards(),
        1,
        "small: one store"
    );
    let few = Limits {
        max_entries: Some(100),
        ..limits(64 << 20)
    };
    assert_eq!(cache(few).shards(), 1, "few entries: one store");
    let max = SHARD_FROM;
    let c = cache(limits(max));
    assert_eq!(c.shards(), crate::shards::SHARDS);
    assert_eq!(c.limits(), limits(max), "the limits as given");
    for i in 0..2_000 {
        let name = format!("n{i}.shard.example");
        c.insert(&key(&name).boxed(), entry(&name, 300));
    }
    assert_eq!(c.len(), 2_000);
    for i in 0..2_000 {
        let name = format!("n{i}.shard.example");
        assert!(
            matches!(c.get(&key(&name), Instant::now()), Lookup::Hit(_)),
            "{name} found in its shard"
        );
    }
    for i in 0..60_000 {
        let name = format!("n{i}.flood.example");
        c.insert(&key(&name).boxed(), entry(&name, 300));
        if i % 1_000 == 0 {
            let bytes = c.bytes();
            assert!(bytes <= max, "{bytes} bytes accounted after {i} names");
        }
    }
    assert!(c.bytes() <= max);
    assert!(c.len() > 5_000, "the budget is used: {} entries", c.len());
}
