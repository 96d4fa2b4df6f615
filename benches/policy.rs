//! Policy benchmarks: `Snapshot::decide` with the shipped list, with a
//! 1,000,000-entry synthetic list next to the shipped list (`1m`: two list
//! lookups a decision) and alone (`1m-only`), for blocked and allowed
//! names, and the time to load 1M entries. Heap bytes per entry are printed.
//!
//! `cargo bench --bench policy`; set CUTOFF_BENCH_LIST to a one-domain-per-line
//! file (e.g. peerbench's blocklist-large.txt) to use it instead of the
//! generated names. Figures: docs/performance.md.

use std::hint::black_box;
use std::io::Write as _;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use cutoff::matcher::NameBuf;
use cutoff::policy::Snapshot;

/// Deterministic names shaped like peerbench's gen_data.py synthetic rules.
fn synthetic(n: usize) -> Vec<String> {
    const SYL: &[&str] = &[
        "ad", "trk", "stat", "metric", "tele", "pix", "cdn", "log", "beacon", "sync", "data",
        "track", "count", "view", "click", "serv", "net", "media", "api", "edge", "geo", "ksn",
        "upd", "dnl", "alpha", "beta",
    ];
    const TLD: &[&str] = &[
        "com", "net", "org", "ru", "io", "info", "biz", "xyz", "de", "cn",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = next();
        let a = SYL[(r % 26) as usize];
        let b = SYL[((r >> 8) % 26) as usize];
        let name = format!(
            "{a}{b}-{:x}.{}",
            (r >> 16) % 0xff_ffff,
            TLD[((r >> 48) % 10) as usize]
        );
        if seen.insert(name.clone()) {
            out.push(name);
        }
    }
    out
}

fn list_file() -> (tempfile::TempDir, std::path::PathBuf, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    if let Ok(path) = std::env::var("CUTOFF_BENCH_LIST") {
        let names: Vec<String> = std::fs::read_to_string(&path)
            .expect("CUTOFF_BENCH_LIST")
            .lines()
            .map(str::to_owned)
            .collect();
        return (dir, path.into(), names);
    }
    let names = synthetic(1_000_000);
    let path = dir.path().join("big.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    for n in &names {
        writeln!(f, "{n}").expect("write");
    }
    f.flush().expect("flush");
    (dir, path, names)
}

fn snapshot(yaml: &str) -> Snapshot {
    Snapshot::new(
        cutoff::config::from_str(yaml, "bench", std::path::Path::new(".")).expect("config"),
    )
}

fn decide(c: &mut Criterion) {
    let (_dir, path, names) = list_file();
    let shipped = Snapshot::new(cutoff::config::load_default().expect("default"));
    let big = snapshot(&format!(
        "lists:\n  big: {{path: {}}}\n  kaspersky: {{builtin: kaspersky}}\nrules:\n  - {{name: big, lists: [big], action: block}}\n  - {{name: k, lists: [kaspersky], action: block}}\n",
        path.display()
    ));
    // The 1M list alone, as in the peerbench runs (one list lookup a query).
    let only = snapshot(&format!(
        "lists:\n  big: {{path: {}}}\nrules:\n  - {{name: big, lists: [big], action: block}}\n",
        path.display()
    ));
    let list = &big.config.lists[0];
    eprintln!(
        "1M list: {} entries, {} heap bytes, {:.1} bytes/entry",
        list.active_total(),
        list.set.heap_bytes(),
        list.set.heap_bytes() as f64 / list.active_total() as f64
    );
    let now = jiff::Timestamp::now();
    let client = "192.168.1.20".parse().expect("ip");
    let blocked_shipped: Vec<NameBuf> = [
        "s05.upd.kaspersky.com",
        "dnl-07.geo.kaspersky.com",
        "ksn-url-geo.kaspersky-labs.com",
        "activation-v2.kaspersky.com",
    ]
    .iter()
    .filter_map(|n| NameBuf::new(n.as_bytes()))
    .collect();
    let allowed: Vec<NameBuf> = [
        "www.example.com",
        "mail.google.com",
        "a1.cdn.example.net",
        "github.com",
    ]
    .iter()
    .filter_map(|n| NameBuf::new(n.as_bytes()))
    .collect();
    let blocked_big: Vec<NameBuf> = names
        .iter()
        .step_by(names.len() / 64)
        .map(|n| format!("www.{n}"))
        .filter_map(|n| NameBuf::new(n.as_bytes()))
        .collect();

    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(1));
    for (label, snap, set) in [
        ("shipped/blocked", &shipped, &blocked_shipped),
        ("shipped/allowed", &shipped, &allowed),
        ("1m/blocked", &big, &blocked_big),
        ("1m/allowed", &big, &allowed),
        ("1m-only/blocked", &only, &blocked_big),
        ("1m-only/allowed", &only, &allowed),
    ] {
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % set.len();
                black_box(
                    snap.decide(client, black_box(set[i].as_bytes()), now)
                        .verdict,
                )
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.throughput(Throughput::Elements(names.len() as u64));
    g.bench_function("1m-lines", |b| {
        b.iter(|| {
            let spec = cutoff::blocklist::ListSpec {
                name: "big".into(),
                source: cutoff::blocklist::Source::File(path.clone()),
                category: None,
                coverage: cutoff::matcher::Coverage::Suffix,
            };
            black_box(cutoff::blocklist::load(&spec).expect("load").active_total())
        })
    });
    g.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
