//! Integration tests, one module per concern. They run the real binary or
//! the real server on 127.0.0.1:0 with real sockets.

/// `serve` at start-up: bind errors that name the cause, a host without `::1`.
mod bind;
/// `cutoff check` and `cutoff explain` as an admin runs them.
mod cli;
/// The docs, the commented examples and the schema stay in step.
mod config_docs;
/// Deployment files under the tools that check them.
mod deploy;
/// The built binary under dig, SIGHUP and SIGTERM.
mod e2e;
/// The in-process upstream DNS server the tests forward to.
mod fakeup;
/// fakeup answers as its tests expect.
mod fakeup_selftest;
/// cutoff firewall: generated rules under nft, sh and the shipped examples.
mod firewall;
/// Every fuzz corpus and crash file, replayed on stable.
mod fuzz_corpus;
/// Runs the server in-process and queries it over real sockets.
mod harness;
/// Malformed and hostile packets over real sockets.
mod malformed;
/// Metrics, the query log, the client table and the admin endpoint.
mod observability;
/// Where `cutoff report` reads from, and its errors.
mod report_source;
/// Which metric series a config pre-creates.
mod series;
/// `cutoff serve` over UDP and TCP: policy, forwarding, limits, reload.
mod serve;
/// DNS over TLS and HTTPS upstreams against real TLS servers.
mod tls_upstream;
/// Shared helpers: temp configs, running the binary.
mod util;
