//! Cache benchmarks: a hit (lookup with a stack key, no allocation), an
//! insert into a full cache (SIEVE eviction and byte accounting), and
//! reading an upstream answer at the wire level (`Entry::new`).
//!
//! `cargo bench --bench cache`. Figures: docs/performance.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use cutoff::cache::{BoxedKey, Cache, DEFAULT_STALE_FOR, Entry, Key, Limits, Lookup};

/// `name` A? answered with one A record and an OPT.
fn answer(name: &str) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 1];
    for label in name.split('.') {
        m.push(u8::try_from(label.len()).unwrap_or(0));
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4]);
    m.extend_from_slice(&[192, 0, 2, 1, 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    m
}

fn key(name: &str) -> Key {
    Key::new(name.split('.').map(str::as_bytes), 1, 1, 0).expect("a short name")
}

fn cache(max_bytes: usize) -> Cache {
    let limits = Limits {
        max_bytes,
        max_entries: None,
        stale_for: DEFAULT_STALE_FOR,
        stale_refresh: cutoff::cache::RECHECK,
    };
    Cache::new(limits, metrics::Counter::noop())
}

fn bench(c: &mut Criterion) {
    let names: Vec<String> = (0..50_000)
        .map(|i| format!("host{i}.example.com"))
        .collect();
    let entry = Arc::new(Entry::new(answer("host0.example.com"), 0, 86400).expect("an answer"));

    let warm = cache(64 << 20);
    for n in &names[..10_000] {
        warm.insert(&key(n).boxed(), entry.clone());
    }
    let probe = key("host1234.example.com");
    c.bench_function("cache/hit", |b| {
        b.iter(|| matches!(warm.get(black_box(&probe), Instant::now()), Lookup::Hit(_)))
    });

    // 1 MiB holds some 2,500 answers: every insert past that evicts one.
    let full = cache(1 << 20);
    let keys: Vec<BoxedKey> = names.iter().map(|n| key(n).boxed()).collect();
    let mut i = 0;
    c.bench_function("cache/insert_evicting", |b| {
        b.iter(|| {
            full.insert(&keys[i % keys.len()], entry.clone());
            i += 1;
        })
    });

    let bytes = answer("www.example.com");
    c.bench_function("cache/entry_new", |b| {
        b.iter(|| Entry::new(black_box(bytes.clone()), 0, 86400))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
