//! Integration tests, one module per concern. They run the real binary or
//! the real server on 127.0.0.1:0 with real sockets.

/// The admin endpoint under idle, slowloris and over-the-cap connections.
mod admin;
/// The write API: bearer tokens, temporary allows over real sockets, reload.
mod allow;
/// `cutoff allow`, `cutoff reload`, `cutoff explain` and `cutoff check` with the write API.
mod allow_cli;
/// `serve` at start-up: bind errors that name the cause, a host without `::1`.
mod bind;
/// The answer cache over real sockets: serve-stale, key boundaries.
mod cache;
/// `cutoff check` and `cutoff explain` as an admin runs them.
mod cli;
/// The docs, the commented examples and the schema stay in step.
mod config_docs;
/// Forwarding conformance (issue #9): retransmits, opaque answers, EDNS,
/// header bits, RFC 7766 TCP, reply source addresses.
mod conformance;
/// The container image's recipe and the Kubernetes manifests that run it.
mod container;
/// Zone coverage, exemptions, the strict profile, bypass names, discovery.
mod coverage;
/// Discovery of Designated Resolvers: SVCB with cutoff's own endpoints, NODATA without.
mod ddr;
/// Deployment files under the tools that check them.
mod deploy;
/// DNS over HTTPS listeners: kdig, dig and hyper clients, HTTP errors, floods.
mod doh;
/// DoH HTTP/2 streams of one connection served side by side (a held upstream answer).
mod doh_streams;
/// DNS over TLS listeners: kdig and rustls clients, limits, bad pairs.
mod dot;
/// The built binary under dig, SIGHUP and SIGTERM.
mod e2e;
/// One question spelled four ways (plain, compressed, ECS, TCP): one reply,
/// one count, one query-log line (#14).
mod equivalence;
/// The query log's hash chain and `cutoff report --verify` (issue 11).
mod evidence;
/// `cutoff export` under named-checkzone, unbound-checkconf, dnsmasq, and
/// loaded into BIND, Unbound and dnsmasq.
mod export;
/// The in-process upstream DNS server the tests forward to.
mod fakeup;
/// fakeup answers as its tests expect.
mod fakeup_selftest;
/// The real binary under signals, hostile files, low limits and floods.
mod faults;
/// The signed feed of the shipped list, with minisign keys made in the test.
mod feed;
/// cutoff firewall: generated rules under nft, sh and the shipped examples.
mod firewall;
/// Every fuzz corpus and crash file, replayed on stable.
mod fuzz_corpus;
/// Runs the server in-process and queries it over real sockets.
mod harness;
/// The HTTPS list server the URL-list tests download from.
mod listserver;
/// Malformed and hostile packets over real sockets.
mod malformed;
/// Metrics, the query log, the client table and the admin endpoint.
mod observability;
/// The real binary as a child process, its log in a file.
mod proc;
/// Per-client rate limiting: a flooding client cannot starve another.
mod ratelimit;
/// Reloads that would silently weaken the policy are refused.
mod reload;
/// Where `cutoff report` reads from, and its errors.
mod report_source;
/// The RPZ feed in-process: SOA, AXFR/IXFR, REFUSED, the zone file, NOTIFY.
mod rpz;
/// The RPZ feed with BIND and Unbound as secondaries, following it by NOTIFY.
mod rpz_peers;
/// Which metric series a config pre-creates.
mod series;
/// `cutoff serve` over UDP and TCP: policy, forwarding, limits, reload.
mod serve;
/// The status page and its JSON API, also in a real browser (issue 11).
mod status;
/// The TCP connection table: per-client caps and eviction of idle connections.
mod tcplimits;
/// DNS over TLS and HTTPS upstreams against real TLS servers.
mod tls_upstream;
/// URL lists: downloads, every bad answer, the last-good copy, refresh while serving.
mod url_lists;
/// Shared helpers: temp configs, running the binary.
mod util;
/// `threads:`: a UDP socket and receive loop per worker; upstream sockets reused.
mod workers;
