//! cutoff: a DNS sinkhole and policy engine that blocks or logs Kaspersky
//! update, telemetry and activation lookups per client network, from dated
//! cut-offs onward, and forwards everything else.
//!
//! # Layout
//!
//! | module | responsibility |
//! | --- | --- |
//! | [`cli`] | the commands (`check`, `explain`, …), their arguments and output |
//! | [`config`] | YAML → raw structs → a validated [`config::Config`]; every problem with its line; the embedded default |
//! | [`blocklist`] | list sources (the shipped catalogue, plain/hosts/adblock/wildcard files) with file:line errors |
//! | [`matcher`] | "is this name, or a parent of it, in the set?": label-aware, no allocation per lookup |
//! | [`networks`] | client address → allowed? → the most specific named network |
//! | [`policy`] | the immutable [`policy::Snapshot`] and `decide(client, name, now)` with its reason |
//! | [`firewall`] | outside the query flow: the nftables or iptables rules `cutoff firewall` prints (redirect clients' port 53, reject 853, drop Kaspersky's prefixes) |
//!
//! # One query
//!
//! ```text
//! packet ─► server: decode, canonical client IP, lowercase qname
//!        ─► access: client not allowed → refuse
//!        ─► networks: client IP → network
//!        ─► policy.decide(network, qname, now) → allow | log | block (+ rule, list, category, entry, phase)
//!             block ─► a synthesised answer; the name never leaves the box
//!        ─► upstream (allow, log): forward, answer transparently
//! ```
//!
//! The decision always comes before any upstream I/O, and `cutoff explain`
//! calls the same `decide` as serving does.

pub mod answer;
pub mod blocklist;
pub mod cache;
pub mod cli;
pub mod clients;
pub mod config;
pub mod firewall;
pub mod http;
pub mod matcher;
pub mod metrics;
pub mod networks;
pub mod pipeline;
pub mod policy;
pub mod querylog;
pub mod reload;
pub mod server;
pub mod upstream;
pub mod wire;
