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
//! | [`http`] | the admin endpoint: `/metrics`, `/healthz`, `/readyz`, the status page `/`, `/api/v1/…` (read-only) |
//! | [`since`] | "since when?" for `report --since` and `?since=`: durations, instants, dates; checked arithmetic |
//! | [`descriptors`] | the file descriptors a config needs, checked against `RLIMIT_NOFILE` at start-up |
//! | [`files`] | opening config and list files: regular files only, never a blocking open, reads capped |
//! | [`firewall`] | outside the query flow: the nftables or iptables rules `cutoff firewall` prints |
//! | [`export`] | outside the query flow: what a network's policy blocks, as RPZ, Unbound, dnsmasq, hosts, plain or adblock (`cutoff export`) |
//!
//! # One query
//!
//! ```text
//! packet ─► server: bytes from a UDP socket or a TCP connection (limits here)
//!        ─► pipeline::prepare: QR=1 dropped; every query read into one question
//!           view from its bytes (the rare one the reader declines is parsed in
//!           full and re-encoded first; FORMERR for what cannot be read, NOTIMP
//!           for other opcodes)
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

// `unsafe` is confined to the two modules that call libc (server/pktinfo.rs,
// ADR 0002, and the getrlimit/setrlimit pair in descriptors.rs), which
// alone allow it, each block with its SAFETY reason.
#![deny(unsafe_code)]

pub mod activity;
pub mod answer;
pub mod blocklist;
pub mod cache;
pub mod certs;
pub mod chain;
pub mod cli;
pub mod clients;
pub mod config;
#[allow(unsafe_code)]
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
pub mod runtime;
pub mod server;
pub mod service;
pub mod since;
pub mod upstream;
pub mod wire;
