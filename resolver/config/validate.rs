//! `RawConfig` → `Config`: parse every value, check every cross-reference,
//! load every list; record each problem and keep going, so the admin sees
//! them all at once.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use jiff::Timestamp;

use super::raw::{At, RawConfig, RawList, RawRule};
use super::{
    Access, Action, AnswerMode, Blocking, Config, Denied, Network, Problem, Rule, Upstream,
};
use crate::blocklist::{self, Category, ListSpec, Source};
use crate::matcher::Coverage;
use crate::networks::{self, DEFAULT_NETWORK};

struct Checker<'p> {
    problems: &'p mut Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Checker<'_> {
    fn error<T>(&mut self, at: &At<T>, message: impl Into<String>) {
        self.problems.push(Problem::new(
            Some(at.line),
            at.path.as_str(),
            message.into(),
        ));
    }

    fn warn<T>(&mut self, at: &At<T>, message: impl Into<String>) {
        self.warnings.push(Problem::new(
            Some(at.line),
            at.path.as_str(),
            message.into(),
        ));
    }
}

/// Validates `raw`; `None` when any problem was recorded.
pub(crate) fn validate(
    raw: RawConfig,
    base: &Path,
    problems: &mut Vec<Problem>,
    warnings_out: &mut Vec<Problem>,
) -> Option<Config> {
    let mut c = Checker {
        problems,
        warnings: Vec::new(),
    };
    let listen = match &raw.listen {
        Some(items) => {
            if items.value.is_empty() {
                c.error(items, "needs at least one address to answer DNS on");
            }
            items
                .value
                .iter()
                .filter_map(|a| socket(&mut c, a, 53))
                .collect()
        }
        None => vec![
            SocketAddr::from((Ipv4Addr::LOCALHOST, 5353)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, 5353)),
        ],
    };
    let upstreams = match &raw.upstreams {
        Some(items) => {
            if items.value.is_empty() {
                c.error(
                    items,
                    "needs at least one upstream (`system` reads /etc/resolv.conf)",
                );
            }
            items
                .value
                .iter()
                .filter_map(|a| match Upstream::parse(&a.value) {
                    Ok(u) => Some(u),
                    Err(e) => {
                        c.error(a, e.to_string());
                        None
                    }
                })
                .collect()
        }
        None => vec![Upstream::System],
    };
    let http = match &raw.http {
        Some(a) => socket(&mut c, a, 9153),
        None => Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 9153))),
    };

    let access = access(&mut c, &raw);
    let networks = networks(&mut c, &raw);
    let lists = lists(&mut c, &raw.lists, base);
    let list_names: Vec<&str> = raw.lists.iter().map(|l| l.name.value.as_str()).collect();
    let rules = rules(&mut c, &raw.rules, &networks, &list_names, &lists);
    if raw.rules.is_empty() {
        c.warnings.push(Problem::new(
            raw.rules_line,
            "rules",
            "no rules: every query is forwarded and nothing is logged as Kaspersky".into(),
        ));
    }
    for l in &raw.lists {
        if !raw
            .rules
            .iter()
            .any(|r| r.lists.iter().any(|n| n.value == l.name.value))
        {
            c.warn(
                &l.name,
                format!("list `{}` is not used by any rule", l.name.value),
            );
        }
    }
    let acl = networks::AccessList::new(&access.allow, &access.deny);
    for n in &networks {
        let Some(raw_net) = raw.networks.iter().find(|r| r.name.value == n.name) else {
            continue;
        };
        for cidr in &n.cidrs {
            if !acl.allows(cidr.network()) || !acl.allows(cidr.broadcast()) {
                c.warn(
                    &raw_net.name,
                    format!(
                        "{cidr} is not (wholly) allowed by `access`: those clients are refused"
                    ),
                );
            }
        }
    }
    let blocking = blocking(&mut c, &raw);
    let serve = serve(&mut c, &raw, base);
    let query_log = query_log(&mut c, &raw);

    let mut warnings = c.warnings;
    warnings.sort_by_key(|p| p.line.unwrap_or(u32::MAX));
    if !problems.is_empty() {
        *warnings_out = warnings;
        return None;
    }
    Some(Config {
        origin: String::new(),
        version: String::new(),
        listen,
        upstreams,
        http: http?,
        access,
        networks,
        lists: lists.into_iter().flatten().collect(),
        rules: rules.into_iter().flatten().collect(),
        blocking: blocking?,
        serve: serve?,
        query_log,
        warnings,
    })
}

fn socket(c: &mut Checker<'_>, a: &At<String>, default_port: u16) -> Option<SocketAddr> {
    if let Ok(s) = a.value.parse::<SocketAddr>() {
        return Some(s);
    }
    let bare = a.value.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, default_port));
    }
    c.error(
        a,
        format!(
            "`{}` is not an address like 127.0.0.1:5353 or [::1]:5353",
            a.value
        ),
    );
    None
}

fn cidr(c: &mut Checker<'_>, a: &At<String>) -> Option<IpNet> {
    let parsed = a
        .value
        .parse::<IpNet>()
        .ok()
        .or_else(|| a.value.parse::<IpAddr>().ok().map(IpNet::from));
    let Some(n) = parsed else {
        c.error(
            a,
            format!("`{}` is not a CIDR like 10.1.0.0/16 or fd00::/64", a.value),
        );
        return None;
    };
    if n.trunc() != n {
        c.warn(
            a,
            format!("{} has host bits set; it means {}", a.value, n.trunc()),
        );
    }
    Some(canonical(n.trunc()))
}

/// Clients are looked up by their IPv4 address when they come as
/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`), so such CIDRs are stored as IPv4 too.
fn canonical(n: IpNet) -> IpNet {
    match n {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(n, IpNet::V4),
            None => n,
        },
        _ => n,
    }
}

fn access(c: &mut Checker<'_>, raw: &RawConfig) -> Access {
    let allow = match &raw.access.allow {
        Some(items) => {
            if items.value.is_empty() {
                c.warn(items, "`access.allow` is empty: every client is refused");
            }
            items.value.iter().filter_map(|a| cidr(c, a)).collect()
        }
        None => networks::default_allowed(),
    };
    let deny = raw.access.deny.iter().filter_map(|a| cidr(c, a)).collect();
    let denied = match &raw.access.denied {
        None => Denied::Refuse,
        Some(a) => match a.value.as_str() {
            "refuse" => Denied::Refuse,
            "drop" => Denied::Drop,
            other => {
                c.error(a, format!("`{other}` is not one of: refuse, drop"));
                Denied::Refuse
            }
        },
    };
    Access {
        allow,
        deny,
        denied,
    }
}

fn networks(c: &mut Checker<'_>, raw: &RawConfig) -> Vec<Network> {
    let mut out = Vec::new();
    let mut owner: BTreeMap<IpNet, String> = BTreeMap::new();
    for n in &raw.networks {
        if n.name.value == DEFAULT_NETWORK {
            c.error(
                &n.name,
                "`default` is built in: it holds every allowed client that is in no other network, and takes no CIDRs",
            );
            continue;
        }
        if !valid_name(&n.name.value) {
            c.error(&n.name, bad_name(&n.name.value));
        }
        if n.cidrs.is_empty() {
            c.warn(
                &n.name,
                format!(
                    "network `{}` has no CIDRs: no client is in it",
                    n.name.value
                ),
            );
        }
        let mut cidrs = Vec::new();
        for a in &n.cidrs {
            let Some(net) = cidr(c, a) else { continue };
            match owner.get(&net) {
                Some(other) if *other == n.name.value => {
                    c.warn(a, format!("{net} is listed twice in `{other}`"));
                }
                Some(other) => {
                    c.error(a, format!("{net} is already in network `{other}`; a CIDR can be in one network only"));
                }
                None => {
                    owner.insert(net, n.name.value.clone());
                    cidrs.push(net);
                }
            }
        }
        out.push(Network {
            name: n.name.value.clone(),
            cidrs,
        });
    }
    out.push(Network {
        name: DEFAULT_NETWORK.to_owned(),
        cidrs: Vec::new(),
    });
    out
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.')
}

fn bad_name(name: &str) -> String {
    format!(
        "`{name}` is not a usable name: use 1 to 64 letters, digits, `-`, `_` or `.` (it becomes a metric label)"
    )
}

fn lists(c: &mut Checker<'_>, raw: &[RawList], base: &Path) -> Vec<Option<Arc<blocklist::List>>> {
    raw.iter().map(|l| list(c, l, base)).collect()
}

fn list(c: &mut Checker<'_>, l: &RawList, base: &Path) -> Option<Arc<blocklist::List>> {
    if !valid_name(&l.name.value) {
        c.error(&l.name, bad_name(&l.name.value));
    }
    let category = l
        .category
        .as_ref()
        .and_then(|a| match Category::parse(&a.value) {
            Some(cat) => Some(cat),
            None => {
                c.error(
                    a,
                    format!(
                        "`{}` is not a category; categories: {}",
                        a.value,
                        category_words()
                    ),
                );
                None
            }
        });
    let coverage = match &l.coverage {
        None => Coverage::Suffix,
        Some(a) => match a.value.as_str() {
            "suffix" => Coverage::Suffix,
            "exact" => Coverage::Exact,
            other => {
                c.error(a, format!("`{other}` is not one of: suffix, exact"));
                Coverage::Suffix
            }
        },
    };
    let given = [l.builtin.is_some(), l.path.is_some(), l.prefixes.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        c.error(&l.name, "give one of `builtin`, `path` or `prefixes`");
        return None;
    }
    let source = if let Some(b) = &l.builtin {
        if !blocklist::BUILTIN.contains(&b.value.as_str()) {
            c.error(
                b,
                format!(
                    "no builtin list `{}`; builtin lists: {}",
                    b.value,
                    blocklist::BUILTIN.join(", ")
                ),
            );
            return None;
        }
        Source::Builtin(b.value.clone())
    } else if let Some(p) = &l.path {
        Source::File(base.join(&p.value))
    } else if let Some(items) = &l.prefixes {
        let nets: Vec<IpNet> = items.value.iter().filter_map(|a| cidr(c, a)).collect();
        if nets.len() != items.value.len() {
            return None;
        }
        Source::Prefixes(nets)
    } else {
        c.error(
            &l.name,
            format!(
                "list `{}` needs `builtin: kaspersky`, `path: FILE` or `prefixes: [CIDR, ...]`",
                l.name.value
            ),
        );
        return None;
    };
    let catalogue = match &source {
        Source::Builtin(_) | Source::Prefixes(_) => true,
        Source::File(p) => matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")),
    };
    if catalogue {
        for a in [&l.category, &l.coverage].into_iter().flatten() {
            c.error(
                a,
                "only line lists (a `path` to a text file) take this: catalogue entries carry their own category and match, and prefixes have neither",
            );
        }
    }
    let spec = ListSpec {
        name: l.name.value.clone(),
        source,
        category,
        coverage,
    };
    let at = l.path.as_ref().or(l.builtin.as_ref()).unwrap_or(&l.name);
    match blocklist::load(&spec) {
        Ok(list) => {
            if list.problems.count > 0 {
                let first = list
                    .problems
                    .first
                    .iter()
                    .take(5)
                    .map(|p| format!("{}:{}: {}", spec.source, p.line, p.reason))
                    .collect::<Vec<_>>()
                    .join("; ");
                c.warn(
                    at,
                    format!("{} bad line(s) skipped: {first}", list.problems.count),
                );
            }
            if list.active_total() == 0 {
                c.error(
                    at,
                    format!(
                        "list `{}` has no active entries ({} disabled): an empty list blocks nothing",
                        spec.name, list.disabled
                    ),
                );
                return None;
            }
            Some(Arc::new(list))
        }
        Err(e) => {
            c.error(at, e.to_string());
            None
        }
    }
}

fn category_words() -> String {
    Category::ALL.map(Category::as_str).join(", ")
}

fn action(c: &mut Checker<'_>, a: &At<String>) -> Option<Action> {
    match a.value.as_str() {
        "block" => Some(Action::Block),
        "log" => Some(Action::Log),
        "allow" => Some(Action::Allow),
        other => {
            c.error(
                a,
                format!("`{other}` is not an action; actions: block, log, allow"),
            );
            None
        }
    }
}

fn instant(c: &mut Checker<'_>, a: &At<String>) -> Option<Timestamp> {
    match a.value.parse::<Timestamp>() {
        Ok(t) => Some(t),
        Err(_) => {
            let hint = if a.value.parse::<jiff::civil::DateTime>().is_ok()
                || a.value.parse::<jiff::civil::Date>().is_ok()
            {
                " (it needs a time and an offset, e.g. 2024-09-29T00:00:00-04:00 or 2024-09-29T04:00:00Z)"
            } else {
                " (expected RFC 3339 with an offset, e.g. 2024-09-29T00:00:00-04:00)"
            };
            c.error(a, format!("`{}` is not an instant{hint}", a.value));
            None
        }
    }
}

fn rules(
    c: &mut Checker<'_>,
    raw: &[RawRule],
    networks: &[Network],
    list_names: &[&str],
    lists: &[Option<Arc<blocklist::List>>],
) -> Vec<Option<Rule>> {
    let mut names: Vec<&str> = Vec::new();
    raw.iter()
        .map(|r| {
            let whole = At {
                value: (),
                line: r.line,
                path: r.path.clone(),
            };
            let name = match &r.name {
                Some(n) if names.contains(&n.value.as_str()) => {
                    c.error(n, format!("another rule is already named `{}`", n.value));
                    None
                }
                Some(n) if !valid_name(&n.value) => {
                    c.error(n, bad_name(&n.value));
                    None
                }
                Some(n) => {
                    names.push(&n.value);
                    Some(n.value.clone())
                }
                None => {
                    c.error(&whole, "a rule needs a `name`");
                    None
                }
            };
            if let Some(items) = r.networks.as_ref().filter(|i| i.value.is_empty()) {
                c.warn(items, "`networks: []` selects no network: the rule never applies (leave it out for every network)");
            }
            if let Some(items) = r.categories.as_ref().filter(|i| i.value.is_empty()) {
                c.warn(items, "`categories: []` selects no entry: the rule never applies (leave it out for every entry)");
            }
            let nets = r.networks.as_ref().map(|items| {
                items
                    .value
                    .iter()
                    .filter_map(|a| match networks.iter().position(|n| n.name == a.value) {
                        Some(i) => Some(i),
                        None => {
                            let known: Vec<&str> =
                                networks.iter().map(|n| n.name.as_str()).collect();
                            c.error(
                                a,
                                format!(
                                    "no network named `{}`; networks: {}",
                                    a.value,
                                    known.join(", ")
                                ),
                            );
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            });
            if r.lists.is_empty() {
                c.error(
                    &whole,
                    "a rule needs `lists` (which lists it selects names from)",
                );
            }
            let mut list_ids = Vec::new();
            for a in &r.lists {
                match list_names.iter().position(|n| *n == a.value) {
                    Some(i) => list_ids.push(i),
                    None if list_names.is_empty() => c.error(
                        a,
                        format!("no list named `{}`: no lists are defined under `lists`", a.value),
                    ),
                    None => c.error(
                        a,
                        format!("no list named `{}`; lists: {}", a.value, list_names.join(", ")),
                    ),
                }
            }
            let categories = r.categories.as_ref().map(|items| {
                items
                    .value
                    .iter()
                    .filter_map(|a| match Category::parse(&a.value) {
                        Some(cat) => {
                            let any = list_ids.iter().any(|&i| {
                                lists[i].as_ref().is_some_and(|l| {
                                    l.active[usize::from(Category::payload(Some(cat)))] > 0
                                })
                            });
                            if !any && list_ids.iter().all(|&i| lists[i].is_some()) {
                                c.warn(
                                    a,
                                    format!("no list of this rule has active `{}` entries", cat),
                                );
                            }
                            Some(cat)
                        }
                        None => {
                            c.error(
                                a,
                                format!(
                                    "`{}` is not a category; categories: {}",
                                    a.value,
                                    category_words()
                                ),
                            );
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            });
            let act = match &r.action {
                Some(a) => action(c, a),
                None => {
                    c.error(&whole, "a rule needs an `action` (block, log or allow)");
                    None
                }
            };
            let from = r.from.as_ref().and_then(|a| instant(c, a));
            let until = r.until.as_ref().and_then(|a| instant(c, a));
            if let (Some(f), Some(u), Some(ua)) = (from, until, &r.until)
                && u <= f
            {
                c.error(ua, "`until` must be later than `from`");
            }
            let before = r.before.as_ref().and_then(|a| {
                if r.from.is_none() {
                    c.error(a, "`before` needs `from` (the instant it is before)");
                }
                action(c, a)
            });
            let after = r.after.as_ref().and_then(|a| {
                if r.until.is_none() {
                    c.error(a, "`after` needs `until` (the instant it is after)");
                }
                action(c, a)
            });
            Some(Rule {
                name: name?,
                networks: nets,
                lists: list_ids,
                categories,
                action: act?,
                from,
                until,
                from_text: r.from.as_ref().map(|a| a.value.clone()),
                until_text: r.until.as_ref().map(|a| a.value.clone()),
                before,
                after,
            })
        })
        .collect()
}

fn blocking(c: &mut Checker<'_>, raw: &RawConfig) -> Option<Blocking> {
    let b = &raw.blocking;
    let answer = match &b.answer {
        None => Some(AnswerMode::NxDomain),
        Some(a) => match a.value.as_str() {
            "nxdomain" => Some(AnswerMode::NxDomain),
            "nodata" => Some(AnswerMode::NoData),
            "refused" => Some(AnswerMode::Refused),
            "sinkhole" => Some(AnswerMode::Sinkhole),
            other => {
                c.error(
                    a,
                    format!("`{other}` is not one of: nxdomain, nodata, refused, sinkhole"),
                );
                None
            }
        },
    };
    let v4 = match &b.sinkhole_ipv4 {
        None => Some(Ipv4Addr::UNSPECIFIED),
        Some(a) => a
            .value
            .parse()
            .map_err(|_| c.error(a, format!("`{}` is not an IPv4 address", a.value)))
            .ok(),
    };
    let v6 = match &b.sinkhole_ipv6 {
        None => Some(Ipv6Addr::UNSPECIFIED),
        Some(a) => a
            .value
            .parse()
            .map_err(|_| c.error(a, format!("`{}` is not an IPv6 address", a.value)))
            .ok(),
    };
    let ttl = b
        .ttl
        .as_ref()
        .map_or(300, |t| u32::try_from(t.value).unwrap_or(u32::MAX));
    if let Some(t) = &b.ttl
        && t.value > 604_800
    {
        c.warn(
            t,
            "a blocked answer cached for more than a week outlives most policy changes",
        );
    }
    Some(Blocking {
        answer: answer?,
        ttl,
        sinkhole_ipv4: v4?,
        sinkhole_ipv6: v6?,
    })
}

/// Parses `1500ms`, `2s`, `1m` (or a bare number of seconds).
pub(crate) fn duration(text: &str) -> Option<std::time::Duration> {
    let t = text.trim();
    let (num, unit) = t
        .find(|ch: char| !ch.is_ascii_digit() && ch != '.')
        .map_or((t, "s"), |i| (&t[..i], t[i..].trim()));
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    (secs.is_finite() && secs > 0.0 && secs <= 3600.0)
        .then(|| std::time::Duration::from_secs_f64(secs))
}

fn serve(c: &mut Checker<'_>, raw: &RawConfig, base: &Path) -> Option<super::Serve> {
    let mut ok = true;
    let mut dur = |a: &Option<At<String>>, default_ms: u64| match a {
        None => std::time::Duration::from_millis(default_ms),
        Some(a) => duration(&a.value).unwrap_or_else(|| {
            c.error(
                a,
                format!(
                    "`{}` is not a duration like 1500ms, 2s or 1m (up to 1 hour)",
                    a.value
                ),
            );
            ok = false;
            std::time::Duration::from_millis(default_ms)
        }),
    };
    let upstream_timeout = dur(&raw.upstream_timeout, 2000);
    let tcp_idle_timeout = dur(&raw.tcp_idle_timeout, 10_000);
    let num = |a: &Option<At<i128>>, default: usize| {
        a.as_ref()
            .map_or(default, |a| usize::try_from(a.value).unwrap_or(default))
    };
    let upstream_ca = raw.upstream_ca.as_ref().map(|a| base.join(&a.value));
    if let (Some(a), Some(p)) = (&raw.upstream_ca, &upstream_ca)
        && !p.is_file()
    {
        c.error(a, format!("`{}` is not a readable file", p.display()));
        ok = false;
    }
    let s = super::Serve {
        upstream_timeout,
        upstream_ca,
        max_inflight: num(&raw.max_inflight, 4096),
        cache_size: num(&raw.cache_size, 10_000),
        cache_max_ttl: raw
            .cache_max_ttl
            .as_ref()
            .map_or(86_400, |a| u32::try_from(a.value).unwrap_or(86_400)),
        tcp_idle_timeout,
        tcp_max_connections: num(&raw.tcp_max_connections, 256),
        tcp_max_queries: num(&raw.tcp_max_queries, 100),
    };
    ok.then_some(s)
}

fn query_log(c: &mut Checker<'_>, raw: &RawConfig) -> super::QueryLogConfig {
    let mut q = super::QueryLogConfig {
        path: raw.log_path.as_ref().map(|a| a.value.clone()),
        ..super::QueryLogConfig::default()
    };
    if let Some(a) = &raw.log_events {
        q.events = match a.value.as_str() {
            "all" => super::LogEvents::All,
            "matched" => super::LogEvents::Matched,
            other => {
                c.error(a, format!("`{other}` is not one of: all, matched"));
                q.events
            }
        };
    }
    if let Some(a) = &raw.log_client {
        q.client = match a.value.as_str() {
            "full" => super::ClientMode::Full,
            "truncate" => super::ClientMode::Truncate,
            "hash" => super::ClientMode::Hash,
            other => {
                c.error(a, format!("`{other}` is not one of: full, truncate, hash"));
                q.client
            }
        };
    }
    if let Some(a) = &raw.log_salt {
        q.salt.clone_from(&a.value);
    }
    if q.client == super::ClientMode::Hash && q.salt.len() < 8 {
        let at = raw.log_salt.as_ref().or(raw.log_client.as_ref());
        if let Some(a) = at {
            c.error(a, "`client: hash` needs a secret `salt` of at least 8 characters (anyone with the salt can test addresses against the hashes)");
        }
    }
    if let Some(a) = &raw.log_queue {
        q.queue = usize::try_from(a.value).unwrap_or(q.queue);
    }
    q
}
