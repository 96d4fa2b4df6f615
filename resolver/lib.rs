//! cutoff: a DNS sinkhole and policy engine that blocks or logs Kaspersky
//! update, telemetry and activation lookups per client network, from dated
//! cut-offs onward, and forwards everything else.
//!
//! # Layout
//!
//! | module | responsibility |
//! | --- | --- |
//! | [`cli`] | the commands (`serve`, `check`, `explain`, `report`, `firewall`), their arguments and output |
//! | [`config`] | YAML → raw structs → a validated [`config::Config`]; every problem with its line; the embedded default |
//! | [`blocklist`] | list sources (the shipped catalogue and prefixes, plain/hosts/adblock/wildcard files) with file:line errors |
//! | [`matcher`] | "is this name, or a parent of it, in the set?": label-aware, no allocation per lookup |
//! | [`networks`] | client address → allowed? → the most specific named network, in one longest-prefix lookup |
//! | [`policy`] | the immutable [`policy::Snapshot`] and `decide(client, name, now)` with its reason |
//! | [`server`] | UDP, TCP and DoT listeners with their limits; bytes in, bytes out |
//! | [`certs`] | the DoT certificate pair: PEM files → a rustls server config, key checked |
//! | [`ratelimit`] | per-client token buckets at UDP receive: drop or TC=1 slip over the limit, exempt list |
//! | [`pipeline`] | the order of one query's steps: the only place where the order lives |
//! | [`wire`] | byte-level views of messages for the hot path (plain queries, TTL offsets, truncation) |
//! | [`answer`] | answers cutoff makes itself: blocked (with EDE), refused, ANY, errors |
//! | [`cache`] | the bounded TTL cache of upstream answers and the sharing of identical misses |
//! | [`upstream`] | forwarding: UDP/TCP/DoT/DoH, per-try timeouts, failover, transparent |
//! | [`reload`] | the running state and replacing it whole on SIGHUP |
//! | [`metrics`] | metric names, help texts, bounded labels, the handles a query increments |
//! | [`querylog`] | the JSON query log behind a bounded queue |
//! | [`logfile`] | the query log's output: whole lines in batches, counted when written, torn lines cut back |
//! | [`lograte`] | at most a few lines per message site per 10 s, the rest counted and reported in one line |
//! | [`clients`] | the remediation table: who asked for Kaspersky names |
//! | [`http`] | the read-only admin endpoint: `/metrics`, `/healthz`, `/readyz`, `/api/v1/clients` |
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
//!        ─► pipeline::prepare: QR=1 dropped; a plain query is read from its bytes,
//!           anything else fully parsed (FORMERR/NOTIMP for what cannot be served)
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

pub mod answer;
pub mod blocklist;
pub mod cache;
pub mod certs;
pub mod cli;
pub mod clients;
pub mod config;
pub mod descriptors;
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
pub mod querylog;
pub mod ratelimit;
pub mod reload;
pub mod server;
pub mod since;
pub mod upstream;
pub mod wire;
