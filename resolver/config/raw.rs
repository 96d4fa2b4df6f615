//! What the admin wrote: the YAML read into plain structs, every value with
//! its line and key path, every unknown key and wrong type recorded. Nothing
//! here is cross-checked; `validate` does that.
//!
//! The field docs here, `docs/configuration.md` and `docs/examples/` describe
//! the same keys; `tests/config_docs.rs` keeps them in step.

use super::yaml::{Fields, Node, Path, Reader};

/// A value with the place it was written.
#[derive(Clone, Debug)]
pub(crate) struct At<T> {
    pub(crate) value: T,
    pub(crate) line: u32,
    pub(crate) path: Path,
}

/// The whole file.
#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    /// `listen`: addresses to answer DNS on, UDP and TCP each.
    pub(crate) listen: Option<At<Vec<At<String>>>>,
    /// `listen_tls`: addresses to answer DNS over TLS on (RFC 7858).
    pub(crate) listen_tls: Option<At<Vec<At<String>>>>,
    /// `tls.certificate`: PEM certificate chain of the encrypted listeners.
    pub(crate) tls_certificate: Option<At<String>>,
    /// `tls.key`: PEM private key of `tls.certificate`.
    pub(crate) tls_key: Option<At<String>>,
    /// `tls.handshake_timeout`: how long a TLS handshake may take (`5s`).
    pub(crate) tls_handshake_timeout: Option<At<String>>,
    /// `tls.name`: the name the certificate is for, announced by DDR.
    pub(crate) tls_name: Option<At<String>>,
    /// `listen_https`: addresses to answer DNS over HTTPS on (RFC 8484).
    pub(crate) listen_https: Option<At<Vec<At<String>>>>,
    /// `https.path`: the DoH path (`/dns-query`).
    pub(crate) https_path: Option<At<String>>,
    /// `https.max_streams`: HTTP/2 streams open at once on one connection.
    pub(crate) https_max_streams: Option<At<i128>>,
    /// `upstreams`: resolvers to forward allowed queries to, in order.
    pub(crate) upstreams: Option<At<Vec<At<String>>>>,
    /// `http`: the admin endpoint's address, written alone or as
    /// `http.listen`.
    pub(crate) http: Option<At<String>>,
    /// `http.token_file`: a file holding the bearer token every write
    /// (`/api/v1/allow`, `/api/v1/reload`) must carry.
    pub(crate) http_token_file: Option<At<String>>,
    /// `http.read_token_file`: when set, the page, `/api/v1/*` and
    /// `/metrics` need this bearer token (or the write token) too.
    pub(crate) http_read_token_file: Option<At<String>>,
    /// `http.max_allow`: the longest temporary allow (`24h`).
    pub(crate) http_max_allow: Option<At<String>>,
    /// `access`: which clients may use the resolver.
    pub(crate) access: RawAccess,
    /// `networks`: named sets of CIDRs.
    pub(crate) networks: Vec<RawNetwork>,
    /// `lists`: named domain lists.
    pub(crate) lists: Vec<RawList>,
    /// `rules`: what to do with listed names, per network.
    pub(crate) rules: Vec<RawRule>,
    /// `blocking`: how blocked names are answered.
    pub(crate) blocking: RawBlocking,
    /// `bypass.firefox_canary`, `bypass.ddr`, `bypass.icloud_private_relay`:
    /// `auto` (on for networks where a rule blocks), `on` or `off`.
    pub(crate) bypass: Vec<(String, At<String>)>,
    /// `upstream_timeout`: the total time one query may wait for upstreams,
    /// retransmits and failover included (`5s`, `1500ms`).
    pub(crate) upstream_timeout: Option<At<String>>,
    /// `upstream_ca`: extra CA certificates (PEM) for DoT/DoH upstreams
    /// and list downloads.
    pub(crate) upstream_ca: Option<At<String>>,
    /// `state_dir`: where state kept across restarts lives (last-good list
    /// copies); default `/var/lib/cutoff`.
    pub(crate) state_dir: Option<At<String>>,
    /// `max_inflight`: queries waiting for upstreams at once.
    pub(crate) max_inflight: Option<At<i128>>,
    /// `threads`: UDP receive loops per listen address and runtime workers.
    pub(crate) threads: Option<At<i128>>,
    /// `cache.size`: most answers kept; `cache.max_ttl`: longest time one is kept.
    pub(crate) cache_size: Option<At<i128>>,
    /// See `cache_size`.
    pub(crate) cache_max_ttl: Option<At<i128>>,
    /// `cache.max_bytes`: the cache's memory budget (`16MiB`, or bytes).
    pub(crate) cache_max_bytes: Option<At<String>>,
    /// `cache.stale_for`: how long expired answers may be served when every
    /// upstream fails (`1d`, `12h`, `0` for never).
    pub(crate) cache_stale_for: Option<At<String>>,
    /// `cache.stale_refresh`: how long a name is served stale after a
    /// failed refresh before the upstreams are asked again (`30s`).
    pub(crate) cache_stale_refresh: Option<At<String>>,
    /// `tcp.idle_timeout`, `tcp.max_connections`, `tcp.max_per_client`,
    /// `tcp.max_queries`.
    pub(crate) tcp_idle_timeout: Option<At<String>>,
    /// See `tcp_idle_timeout`.
    pub(crate) tcp_max_connections: Option<At<i128>>,
    /// See `tcp_idle_timeout`.
    pub(crate) tcp_max_per_client: Option<At<i128>>,
    /// See `tcp_idle_timeout`.
    pub(crate) tcp_max_queries: Option<At<i128>>,
    /// `query_log.path`: a file, or `-` for stdout.
    pub(crate) log_path: Option<At<String>>,
    /// `query_log.events`: `all` or `matched` (log and block decisions).
    pub(crate) log_events: Option<At<String>>,
    /// `query_log.client`: `full`, `truncate` or `hash`.
    pub(crate) log_client: Option<At<String>>,
    /// `query_log.salt`: the secret for `client: hash`.
    pub(crate) log_salt: Option<At<String>>,
    /// `query_log.queue`: records buffered before drops.
    pub(crate) log_queue: Option<At<i128>>,
    /// `query_log.chain`: `true` puts a running SHA-256 on each line
    /// (`cutoff report --verify` checks it).
    pub(crate) log_chain: Option<At<String>>,
    /// `forward_only`: `true` when the file means to have no rules (a plain
    /// forwarder); without it a reload that drops every rule is refused.
    pub(crate) forward_only: Option<At<String>>,
    /// `rate_limit`: per-client UDP query limits (off when absent).
    pub(crate) rate_limit: Option<RawRateLimit>,
    /// `rpz`: zones served to secondaries (see `config::rpz`).
    pub(crate) rpz: Option<RawRpz>,
    /// Line of the `rules` key, for "no rules" warnings.
    pub(crate) rules_line: Option<u32>,
}

/// `rate_limit:`.
#[derive(Debug)]
pub(crate) struct RawRateLimit {
    /// Where `rate_limit` was written.
    pub(crate) at: At<()>,
    /// `qps`: queries per second per client prefix, sustained.
    pub(crate) qps: Option<At<i128>>,
    /// `burst`: queries a quiet prefix may send at once (default 2 x qps).
    pub(crate) burst: Option<At<i128>>,
    /// `slip`: every N-th query over the limit gets TC=1 (0: drop all).
    pub(crate) slip: Option<At<i128>>,
    /// `ipv4_prefix`: IPv4 prefix length one bucket covers (default 32).
    pub(crate) ipv4_prefix: Option<At<i128>>,
    /// `ipv6_prefix`: IPv6 prefix length one bucket covers (default 56).
    pub(crate) ipv6_prefix: Option<At<i128>>,
    /// `exempt`: CIDRs never limited.
    pub(crate) exempt: Vec<At<String>>,
}

/// `access:`.
#[derive(Debug, Default)]
pub(crate) struct RawAccess {
    /// `allow`: CIDRs whose clients may query (default: loopback and private).
    pub(crate) allow: Option<At<Vec<At<String>>>>,
    /// `deny`: CIDRs refused even inside `allow` (more specific wins).
    pub(crate) deny: Vec<At<String>>,
    /// `denied`: `refuse` (answer REFUSED) or `drop` (no answer).
    pub(crate) denied: Option<At<String>>,
}

/// One entry of `networks:`.
#[derive(Debug)]
pub(crate) struct RawNetwork {
    pub(crate) name: At<String>,
    /// The CIDRs, written as the network's value or as `cidrs`.
    pub(crate) cidrs: Vec<At<String>>,
    /// `overrides`: `true` lets temporary allows open names on this network
    /// (default: `false` where a rule blocks, `true` elsewhere).
    pub(crate) overrides: Option<At<String>>,
}

/// One entry of `lists:`.
#[derive(Debug)]
pub(crate) struct RawList {
    pub(crate) name: At<String>,
    /// `builtin`: a list compiled into the binary (`kaspersky`).
    pub(crate) builtin: Option<At<String>>,
    /// `path`: a list file (catalogue `.yaml`, or lines).
    pub(crate) path: Option<At<String>>,
    /// `prefixes`: CIDRs for response-IP rules.
    pub(crate) prefixes: Option<At<Vec<At<String>>>>,
    /// `category`: category of every entry of a line list.
    pub(crate) category: Option<At<String>>,
    /// `match`: `suffix` (default) or `exact`, for plain and hosts lines.
    pub(crate) coverage: Option<At<String>>,
    /// `url`: a line list downloaded from `https://` (see `config::urllist`
    /// for `refresh`, `timeout`, `max_bytes`, `max_lines`, `allow_http`,
    /// `required`).
    pub(crate) url: Option<At<String>>,
    /// `refresh`: time between downloads (default 6h).
    pub(crate) refresh: Option<At<String>>,
    /// `timeout`: the most one download may take (default 60s).
    pub(crate) timeout: Option<At<String>>,
    /// `max_bytes`: the largest body (default and most 64MiB).
    pub(crate) max_bytes: Option<At<String>>,
    /// `max_lines`: the most entries (default 2000000).
    pub(crate) max_lines: Option<At<i128>>,
    /// `allow_http`: `true` allows a plain `http://` URL.
    pub(crate) allow_http: Option<At<String>>,
    /// `required`: `true` makes a list with no copy fatal at start.
    pub(crate) required: Option<At<String>>,
    /// `feed`: the signed feed that may replace `builtin: kaspersky`.
    pub(crate) feed: Option<At<String>>,
    /// `feed_key`: the minisign public key of a feed of one's own.
    pub(crate) feed_key: Option<At<String>>,
}

/// One entry of `rules:`.
#[derive(Debug)]
pub(crate) struct RawRule {
    pub(crate) line: u32,
    pub(crate) path: Path,
    /// `name`: unique; shown in logs, metrics and answers.
    pub(crate) name: Option<At<String>>,
    /// `networks`: which networks it applies to (default: all).
    pub(crate) networks: Option<At<Vec<At<String>>>>,
    /// `lists`: which lists it selects from.
    pub(crate) lists: Vec<At<String>>,
    /// `categories`: which entry categories (default: every entry).
    pub(crate) categories: Option<At<Vec<At<String>>>>,
    /// `action`: `block`, `log` or `allow`, from `from` until `until`.
    pub(crate) action: Option<At<String>>,
    /// `from`: RFC 3339 instant with offset when `action` starts.
    pub(crate) from: Option<At<String>>,
    /// `until`: RFC 3339 instant with offset when `action` ends.
    pub(crate) until: Option<At<String>>,
    /// `before`: action before `from` (default: the rule does not apply).
    pub(crate) before: Option<At<String>>,
    /// `after`: action from `until` on (default: the rule does not apply).
    pub(crate) after: Option<At<String>>,
    /// `answer`: how this rule's blocks are answered (default: `blocking.answer`).
    pub(crate) answer: Option<At<String>>,
}

/// `blocking:`.
#[derive(Debug, Default)]
pub(crate) struct RawBlocking {
    /// `answer`: `nxdomain`, `nodata`, `refused` or `sinkhole`.
    pub(crate) answer: Option<At<String>>,
    /// `ttl`: seconds clients may cache a blocked answer.
    pub(crate) ttl: Option<At<i128>>,
    /// `sinkhole_ipv4`: address returned for A queries in sinkhole mode.
    pub(crate) sinkhole_ipv4: Option<At<String>>,
    /// `sinkhole_ipv6`: address returned for AAAA queries in sinkhole mode.
    pub(crate) sinkhole_ipv6: Option<At<String>>,
}

/// Top-level keys.
pub(crate) const TOP_KEYS: &[&str] = &[
    "listen",
    "upstreams",
    "http",
    "access",
    "networks",
    "lists",
    "rules",
    "forward_only",
    "blocking",
    "upstream_timeout",
    "upstream_ca",
    "max_inflight",
    "cache",
    "tcp",
    "query_log",
    "bypass",
    "rate_limit",
    "state_dir",
    "listen_tls",
    "tls",
    "listen_https",
    "https",
    "rpz",
    "threads",
];
const RATE_KEYS: &[&str] = &[
    "qps",
    "burst",
    "slip",
    "ipv4_prefix",
    "ipv6_prefix",
    "exempt",
];
/// `bypass.*`: the switches for names answered locally to keep clients on this resolver.
pub(crate) const BYPASS_KEYS: &[&str] = &["firefox_canary", "ddr", "icloud_private_relay"];
const LOG_KEYS: &[&str] = &["path", "events", "client", "salt", "queue", "chain"];
const CACHE_KEYS: &[&str] = &["size", "max_ttl", "max_bytes", "stale_for", "stale_refresh"];
const TCP_KEYS: &[&str] = &[
    "idle_timeout",
    "max_connections",
    "max_queries",
    "max_per_client",
];
const TLS_KEYS: &[&str] = &["certificate", "key", "handshake_timeout", "name"];
const HTTPS_KEYS: &[&str] = &["path", "max_streams"];
const HTTP_KEYS: &[&str] = &["listen", "token_file", "read_token_file", "max_allow"];
const NETWORK_KEYS: &[&str] = &["cidrs", "overrides"];
const ACCESS_KEYS: &[&str] = &["allow", "deny", "denied"];
const LIST_KEYS: &[&str] = &[
    "builtin",
    "path",
    "prefixes",
    "category",
    "match",
    "url",
    "refresh",
    "timeout",
    "max_bytes",
    "max_lines",
    "allow_http",
    "required",
    "feed",
    "feed_key",
];
const RULE_KEYS: &[&str] = &[
    "name",
    "networks",
    "lists",
    "categories",
    "action",
    "from",
    "until",
    "before",
    "after",
    "answer",
];
const BLOCKING_KEYS: &[&str] = &["answer", "ttl", "sinkhole_ipv4", "sinkhole_ipv6"];

/// Every key path the schema knows, for the docs test.
pub(crate) fn all_keys() -> Vec<String> {
    let mut out: Vec<String> = TOP_KEYS.iter().map(|k| (*k).to_owned()).collect();
    out.extend(ACCESS_KEYS.iter().map(|k| format!("access.{k}")));
    out.extend(LIST_KEYS.iter().map(|k| format!("lists.NAME.{k}")));
    out.extend(RULE_KEYS.iter().map(|k| format!("rules[].{k}")));
    out.extend(BLOCKING_KEYS.iter().map(|k| format!("blocking.{k}")));
    out.extend(CACHE_KEYS.iter().map(|k| format!("cache.{k}")));
    out.extend(TCP_KEYS.iter().map(|k| format!("tcp.{k}")));
    out.extend(LOG_KEYS.iter().map(|k| format!("query_log.{k}")));
    out.extend(BYPASS_KEYS.iter().map(|k| format!("bypass.{k}")));
    out.extend(RATE_KEYS.iter().map(|k| format!("rate_limit.{k}")));
    out.extend(TLS_KEYS.iter().map(|k| format!("tls.{k}")));
    out.extend(HTTPS_KEYS.iter().map(|k| format!("https.{k}")));
    out.extend(RPZ_KEYS.iter().map(|k| format!("rpz.{k}")));
    out.extend(RPZ_ZONE_KEYS.iter().map(|k| format!("rpz.zones[].{k}")));
    out.extend(HTTP_KEYS.iter().map(|k| format!("http.{k}")));
    out.extend(NETWORK_KEYS.iter().map(|k| format!("networks.NAME.{k}")));
    out
}

/// Reads the tree into a [`RawConfig`], recording every problem in `r`.
pub(crate) fn read(root: &Node, r: &mut Reader) -> RawConfig {
    let mut raw = RawConfig::default();
    let top = Path::default();
    let Some(f) = r.fields(root, &top, TOP_KEYS) else {
        return raw;
    };
    raw.listen = f.get("listen").map(|(n, p)| At {
        value: strings(r, n, &p),
        line: n.line,
        path: p,
    });
    raw.upstreams = f.get("upstreams").map(|(n, p)| At {
        value: strings(r, n, &p),
        line: n.line,
        path: p,
    });
    raw.listen_tls = f.get("listen_tls").map(|(n, p)| At {
        value: strings(r, n, &p),
        line: n.line,
        path: p,
    });
    if let Some((n, p)) = f.get("tls")
        && let Some(t) = r.fields(n, &p, TLS_KEYS)
    {
        raw.tls_certificate = string(r, &t, "certificate");
        raw.tls_key = string(r, &t, "key");
        raw.tls_handshake_timeout = string(r, &t, "handshake_timeout");
        raw.tls_name = string(r, &t, "name");
    }
    raw.listen_https = f.get("listen_https").map(|(n, p)| At {
        value: strings(r, n, &p),
        line: n.line,
        path: p,
    });
    if let Some((n, p)) = f.get("https")
        && let Some(h) = r.fields(n, &p, HTTPS_KEYS)
    {
        raw.https_path = string(r, &h, "path");
        raw.https_max_streams = int(r, &h, "max_streams", 1, 10_000);
    }
    match f.get("http") {
        Some((n, p)) if matches!(n.value, super::yaml::Value::Map(_)) => {
            if let Some(h) = r.fields(n, &p, HTTP_KEYS) {
                raw.http = string(r, &h, "listen");
                raw.http_token_file = string(r, &h, "token_file");
                raw.http_read_token_file = string(r, &h, "read_token_file");
                raw.http_max_allow = string(r, &h, "max_allow");
            }
        }
        _ => raw.http = string(r, &f, "http"),
    }
    raw.forward_only = string(r, &f, "forward_only");
    raw.upstream_timeout = string(r, &f, "upstream_timeout");
    raw.upstream_ca = string(r, &f, "upstream_ca");
    raw.state_dir = string(r, &f, "state_dir");
    raw.max_inflight = int(r, &f, "max_inflight", 1, 1_000_000);
    raw.threads = int(r, &f, "threads", 1, 1024);
    if let Some((n, p)) = f.get("cache")
        && let Some(c) = r.fields(n, &p, CACHE_KEYS)
    {
        raw.cache_size = int(r, &c, "size", 0, 10_000_000);
        raw.cache_max_ttl = int(r, &c, "max_ttl", 0, 604_800);
        raw.cache_max_bytes = string(r, &c, "max_bytes");
        raw.cache_stale_for = string(r, &c, "stale_for");
        raw.cache_stale_refresh = string(r, &c, "stale_refresh");
    }
    if let Some((n, p)) = f.get("query_log")
        && let Some(l) = r.fields(n, &p, LOG_KEYS)
    {
        raw.log_path = string(r, &l, "path");
        raw.log_events = string(r, &l, "events");
        raw.log_client = string(r, &l, "client");
        raw.log_salt = string(r, &l, "salt");
        raw.log_queue = int(r, &l, "queue", 1, 10_000_000);
        raw.log_chain = string(r, &l, "chain");
    }
    if let Some((n, p)) = f.get("tcp")
        && let Some(t) = r.fields(n, &p, TCP_KEYS)
    {
        raw.tcp_idle_timeout = string(r, &t, "idle_timeout");
        raw.tcp_max_connections = int(r, &t, "max_connections", 1, 100_000);
        raw.tcp_max_queries = int(r, &t, "max_queries", 1, 1_000_000);
        raw.tcp_max_per_client = int(r, &t, "max_per_client", 1, 100_000);
    }
    if let Some((n, p)) = f.get("rate_limit")
        && let Some(l) = r.fields(n, &p, RATE_KEYS)
    {
        raw.rate_limit = Some(RawRateLimit {
            at: At {
                value: (),
                line: n.line,
                path: p.clone(),
            },
            qps: int(r, &l, "qps", 1, 1_000_000),
            burst: int(r, &l, "burst", 1, 10_000_000),
            slip: int(r, &l, "slip", 0, 100),
            ipv4_prefix: int(r, &l, "ipv4_prefix", 8, 32),
            ipv6_prefix: int(r, &l, "ipv6_prefix", 16, 128),
            exempt: l
                .get("exempt")
                .map(|(n, p)| strings(r, n, &p))
                .unwrap_or_default(),
        });
    }
    if let Some((n, p)) = f.get("access")
        && let Some(a) = r.fields(n, &p, ACCESS_KEYS)
    {
        raw.access.allow = a.get("allow").map(|(n, p)| At {
            value: strings(r, n, &p),
            line: n.line,
            path: p,
        });
        raw.access.deny = a
            .get("deny")
            .map(|(n, p)| strings(r, n, &p))
            .unwrap_or_default();
        raw.access.denied = string(r, &a, "denied");
    }
    if let Some((n, p)) = f.get("networks") {
        for (name, line, value) in r.named(n, &p) {
            let path = p.key(&name);
            let (cidrs, overrides) = match &value.value {
                super::yaml::Value::Map(_) => match r.fields(value, &path, NETWORK_KEYS) {
                    Some(nf) => (
                        nf.get("cidrs")
                            .map(|(n, p)| strings(r, n, &p))
                            .unwrap_or_default(),
                        string(r, &nf, "overrides"),
                    ),
                    None => (Vec::new(), None),
                },
                _ => (strings(r, value, &path), None),
            };
            raw.networks.push(RawNetwork {
                name: At {
                    value: name,
                    line,
                    path,
                },
                cidrs,
                overrides,
            });
        }
    }
    if let Some((n, p)) = f.get("lists") {
        for (name, line, value) in r.named(n, &p) {
            let path = p.key(&name);
            let Some(l) = r.fields(value, &path, LIST_KEYS) else {
                continue;
            };
            raw.lists.push(RawList {
                builtin: string(r, &l, "builtin"),
                path: string(r, &l, "path"),
                prefixes: l.get("prefixes").map(|(n, p)| At {
                    value: strings(r, n, &p),
                    line: n.line,
                    path: p,
                }),
                category: string(r, &l, "category"),
                coverage: string(r, &l, "match"),
                url: string(r, &l, "url"),
                refresh: string(r, &l, "refresh"),
                timeout: string(r, &l, "timeout"),
                max_bytes: string(r, &l, "max_bytes"),
                max_lines: int(r, &l, "max_lines", 1, 2_000_000),
                allow_http: string(r, &l, "allow_http"),
                required: string(r, &l, "required"),
                feed: string(r, &l, "feed"),
                feed_key: string(r, &l, "feed_key"),
                name: At {
                    value: name,
                    line,
                    path,
                },
            });
        }
    }
    if let Some((n, p)) = f.get("rules") {
        raw.rules_line = Some(n.line);
        for (i, item) in r.seq(n, &p).iter().enumerate() {
            let path = p.index(i);
            let Some(rf) = r.fields(item, &path, RULE_KEYS) else {
                continue;
            };
            raw.rules.push(RawRule {
                line: item.line,
                name: string(r, &rf, "name"),
                networks: rf.get("networks").map(|(n, p)| At {
                    value: strings(r, n, &p),
                    line: n.line,
                    path: p,
                }),
                lists: rf
                    .get("lists")
                    .map(|(n, p)| strings(r, n, &p))
                    .unwrap_or_default(),
                categories: rf.get("categories").map(|(n, p)| At {
                    value: strings(r, n, &p),
                    line: n.line,
                    path: p,
                }),
                action: string(r, &rf, "action"),
                from: string(r, &rf, "from"),
                until: string(r, &rf, "until"),
                before: string(r, &rf, "before"),
                after: string(r, &rf, "after"),
                answer: string(r, &rf, "answer"),
                path,
            });
        }
    }
    if let Some((n, p)) = f.get("bypass")
        && let Some(b) = r.fields(n, &p, BYPASS_KEYS)
    {
        for key in BYPASS_KEYS {
            if let Some(value) = string(r, &b, key) {
                raw.bypass.push(((*key).to_owned(), value));
            }
        }
    }
    raw.rpz = f.get("rpz").and_then(|(n, p)| read_rpz(r, n, &p));
    if let Some((n, p)) = f.get("blocking")
        && let Some(b) = r.fields(n, &p, BLOCKING_KEYS)
    {
        raw.blocking.answer = string(r, &b, "answer");
        raw.blocking.ttl = b.get("ttl").and_then(|(n, p)| {
            r.int(n, &p, 0, i128::from(u32::MAX)).map(|value| At {
                value,
                line: n.line,
                path: p,
            })
        });
        raw.blocking.sinkhole_ipv4 = string(r, &b, "sinkhole_ipv4");
        raw.blocking.sinkhole_ipv6 = string(r, &b, "sinkhole_ipv6");
    }
    raw
}

pub(super) fn string(r: &mut Reader, f: &Fields<'_>, key: &str) -> Option<At<String>> {
    let (n, path) = f.get(key)?;
    let value = r.string(n, &path)?;
    Some(At {
        value,
        line: n.line,
        path,
    })
}

fn int(r: &mut Reader, f: &Fields<'_>, key: &str, min: i128, max: i128) -> Option<At<i128>> {
    let (n, path) = f.get(key)?;
    let value = r.int(n, &path, min, max)?;
    Some(At {
        value,
        line: n.line,
        path,
    })
}

pub(super) fn strings(r: &mut Reader, n: &Node, path: &Path) -> Vec<At<String>> {
    r.strings(n, path)
        .into_iter()
        .map(|(value, line, path)| At { value, line, path })
        .collect()
}

/// `rpz:` as written.
#[derive(Debug)]
pub(crate) struct RawRpz {
    pub(super) at: At<()>,
    pub(super) zones: Vec<RawZone>,
    pub(super) allow_transfer: Option<Vec<At<String>>>,
    pub(super) notify: Vec<At<String>>,
}

/// One entry of `rpz.zones` as written.
#[derive(Debug)]
pub(super) struct RawZone {
    pub(super) at: At<()>,
    /// `name`: the zone name (`cutoff.rpz.`).
    pub(super) name: Option<At<String>>,
    /// `network`: whose policy (default `default`).
    pub(super) network: Option<At<String>>,
    /// `lists`: which lists (default: every list of the network's rules).
    pub(super) lists: Vec<At<String>>,
}

/// Keys of `rpz:`.
pub(crate) const RPZ_KEYS: &[&str] = &["zones", "allow_transfer", "notify"];
/// Keys of one `rpz.zones` entry.
pub(crate) const RPZ_ZONE_KEYS: &[&str] = &["name", "network", "lists"];

/// Reads `rpz:`.
fn read_rpz(r: &mut Reader, n: &Node, p: &Path) -> Option<RawRpz> {
    let f = r.fields(n, p, RPZ_KEYS)?;
    let mut zones = Vec::new();
    if let Some((zn, zp)) = f.get("zones") {
        for (i, item) in r.seq(zn, &zp).iter().enumerate() {
            let path = zp.index(i);
            let Some(z) = r.fields(item, &path, RPZ_ZONE_KEYS) else {
                continue;
            };
            let name = string(r, &z, "name");
            let network = string(r, &z, "network");
            let lists = z
                .get("lists")
                .map(|(n, p)| strings(r, n, &p))
                .unwrap_or_default();
            zones.push(RawZone {
                at: At {
                    value: (),
                    line: item.line,
                    path,
                },
                name,
                network,
                lists,
            });
        }
    }
    Some(RawRpz {
        at: At {
            value: (),
            line: n.line,
            path: p.clone(),
        },
        zones,
        allow_transfer: f.get("allow_transfer").map(|(n, p)| strings(r, n, &p)),
        notify: f
            .get("notify")
            .map(|(n, p)| strings(r, n, &p))
            .unwrap_or_default(),
    })
}
