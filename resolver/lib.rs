//! cutoff: a DNS sinkhole and policy engine that blocks or logs Kaspersky
//! update, telemetry and activation lookups per client network, from dated
//! cut-offs onward, and forwards everything else.
//!
//! # Layout
//!
//! | module | responsibility |
//! | --- | --- |
//! | [`service`] | the whole server started as `cutoff serve` starts it: config in, listeners bound, a handle with the addresses and a shutdown |
//! | [`cli`] | the commands (`serve`, `check`, `explain`, `report`, `status`, `firewall`, `export`), their arguments and output |
//! | [`config`] | YAML → raw structs → a validated [`config::Config`]; every problem with its line; the embedded default |
//! | [`blocklist`] | list sources (the shipped catalogue and prefixes, plain/hosts/adblock/wildcard files, URL lists and their last-good copies) with file:line errors |
//! | [`matcher`] | "is this name, or a parent of it, in the set?": label-aware, no allocation per lookup |
//! | [`networks`] | client address → allowed? → the most specific named network, in one longest-prefix lookup |
//! | [`policy`] | the immutable [`policy::Snapshot`] and `decide(client, name, now)` with its reason |
//! | [`server`] | UDP, TCP and DoT listeners with their limits; bytes in, bytes out |
//! | [`certs`] | the DoT certificate pair: PEM files → a rustls server config, key checked |
//! | [`ratelimit`] | per-client token buckets at UDP receive: drop or TC=1 slip over the limit, exempt list |
//! | [`shards`] | a table split by key hash into 16 locks, for state every worker touches per query (the rate limiter, the cache) |
//! | [`query`] | a leaf: the question view, the protocol, how a query was answered |
//! | [`pipeline`] | the order of one query's steps: the only place where the order lives, and the only path |
//! | [`wire`] | byte-level reading and writing of messages: the question view of any query, TTL offsets, truncation |
//! | [`answer`] | answers cutoff makes itself, as bytes: blocked (with EDE), refused, ANY, errors |
//! | [`cache`] | the bounded TTL cache of upstream answers and the sharing of identical misses |
//! | [`upstream`] | forwarding: UDP/TCP/DoT/DoH, per-try timeouts, failover, transparent |
//! | [`runtime`] | the running state a query reads (policy, upstreams, cache, counters), swapped whole |
//! | [`reload`] | SIGHUP / list refresh → build a whole new runtime → swap it in, or keep the old one |
//! | [`refresh`] | beside the listeners: URL lists downloaded when due, last-good copies stored, then a reload |
//! | [`metrics`] | metric names, help texts, bounded labels, the handles a query increments |
//! | [`querylog`] | the JSON query log behind a bounded queue |
//! | [`chain`] | `query_log.chain`: a running SHA-256 on each log line, sealed by the writer; `report --verify` |
//! | [`logfile`] | the query log's output: whole lines in batches, counted when written, torn lines cut back |
//! | [`lograte`] | at most a few lines per message site per 10 s, the rest counted and reported in one line |
//! | [`clients`] | the remediation table: who asked for Kaspersky names |
//! | [`activity`] | the status page's bounded memory: 5-minute buckets over 24 h, the last blocked or logged lookups |
//! | [`explain`] | one decision and why, as `cutoff explain` and the status page's explain form show it |
//! | [`http`] | the admin endpoint: `/metrics`, `/healthz`, `/readyz`, the status page `/`, `/api/v1/…` (writes need a bearer token) |
//! | [`allows`] | temporary allows: an overlay the decide step asks after the policy, kept under `state_dir` |
//! | [`since`] | "since when?" for `report --since` and `?since=`: durations, instants, dates; checked arithmetic |
//! | [`descriptors`] | the file descriptors a config needs, checked against `RLIMIT_NOFILE` at start-up |
//! | [`files`] | opening config and list files: regular files only, never a blocking open, reads capped |
//! | [`firewall`] | outside the query flow: the nftables or iptables rules `cutoff firewall` prints |
//! | [`export`] | outside the query flow: what a network's policy blocks, as RPZ, Unbound, dnsmasq, hosts, plain or adblock (`cutoff export`) |
//! | [`rpz`] | beside the query flow: the export as live RPZ zones (`rpz:`), SOA/AXFR/IXFR to `allow_transfer`, NOTIFY on a new serial |
//!
//! # One query
//!
//! ```text
//! packet ─► server: bytes from a UDP socket or a TCP connection (limits here)
//!        ─► pipeline::prepare: QR=1 dropped; every query read into one question
//!           view from its bytes (the rare one the reader declines is parsed in
//!           full and re-encoded first; FORMERR for what cannot be read, NOTIMP
//!           for other opcodes)
//!        ─► a question at or under an `rpz:` zone: its SOA, or REFUSED (rpz::answer)
//!        ─► policy.decide(client, qname, now): access → network → lists → rules
//!             refuse ─► REFUSED (EDE 18) or silence
//!             block  ─► answer: synthesised, EDE 15 with rule and list; never forwarded
//!        ─► ANY ─► the RFC 8482 answer, never forwarded
//!        ─► cache hit ─► the stored bytes, re-checked (CNAME targets, answer addresses)
//!        ─► pipeline::finish: upstream (one query for identical misses), cache store,
//!           the same re-check, fitted to the client's size
//!        ─► reply sent ─► pipeline::observe: metrics, client table, query log
//! ```
//!
//! The decision always comes before any upstream I/O, and `cutoff explain`
//! calls the same `decide` as serving does.

// `unsafe` is confined to the one module that calls libc: the IP_PKTINFO
// receive and send in server/pktinfo.rs (ADR 0002), which alone allows it,
// each block with its SAFETY reason. `forbid` cannot be used here, since a
// crate-level `forbid` admits no `allow` below it; `deny` plus the one
// `allow` in server.rs is the same guarantee, and the test below keeps it.
#![deny(unsafe_code)]

pub mod activity;
pub mod allows;
pub mod answer;
pub mod blocklist;
pub mod cache;
pub mod certs;
pub mod chain;
pub mod cli;
pub mod clients;
pub mod config;
pub mod descriptors;
pub mod explain;
pub mod export;
pub mod files;
pub mod firewall;
pub mod http;
pub mod logfile;
pub mod lograte;
pub mod matcher;
pub mod metrics;
pub mod networks;
pub mod pipeline;
pub mod policy;
pub mod query;
pub mod querylog;
pub mod ratelimit;
pub mod refresh;
pub mod reload;
pub mod rpz;
pub mod runtime;
pub mod server;
pub mod service;
pub mod shards;
pub mod since;
pub mod upstream;
pub mod wire;

#[cfg(test)]
mod tests {
    /// Every `.rs` file under `dir`, recursively.
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The modules allowed `unsafe`: the libc calls behind IP_PKTINFO (ADR 0002)
    /// and recvmmsg (ADR 0009), each allowed once, in server.rs.
    const UNSAFE_MODULES: [&str; 2] = ["server/pktinfo.rs", "server/batch.rs"];

    #[test]
    fn unsafe_code_is_allowed_in_the_pktinfo_and_batch_modules_alone() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("resolver");
        let mut files = Vec::new();
        sources(&root, &mut files);
        assert!(files.len() > 50, "read the tree: {}", files.len());
        // Spelled in pieces, so this test does not find itself.
        let (allow, block, function) = (
            concat!("allow(", "unsafe_code)"),
            concat!("unsafe", " {"),
            concat!("unsafe", " fn"),
        );
        let mut allows = Vec::new();
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap();
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if code.contains(allow) {
                    allows.push(format!("{rel}:{}: {}", i + 1, line.trim()));
                }
                if !UNSAFE_MODULES.contains(&rel.as_str()) {
                    assert!(
                        !code.contains(block) && !code.contains(function),
                        "{rel}:{}: unsafe outside {UNSAFE_MODULES:?}",
                        i + 1
                    );
                }
            }
        }
        assert_eq!(allows.len(), UNSAFE_MODULES.len(), "{allows:#?}");
        assert!(
            allows.iter().all(|a| a.starts_with("server.rs:")),
            "{allows:#?}"
        );
        let lib = std::fs::read_to_string(root.join("lib.rs")).unwrap();
        assert!(lib.contains("#![deny(unsafe_code)]"));
    }
}
