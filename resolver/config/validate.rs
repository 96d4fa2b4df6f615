//! `RawConfig` → `Config`: parse every value, check every cross-reference,
//! load every list; record each problem and keep going, so the admin sees
//! them all at once.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use ipnet::IpNet;

use super::check::{Checker, bad_name, cidr, socket, valid_name};
use super::raw::RawConfig;
use super::{Access, Config, Denied, Network, Problem, Upstream};
use crate::networks::{self, DEFAULT_NETWORK};

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
            SocketAddr::from((Ipv4Addr::LOCALHOST, 5533)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, 5533)),
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
    let state_dir = super::settings::state_dir(&raw, base);
    let ca = raw.upstream_ca.as_ref().map(|a| base.join(&a.value));
    let places = super::urllist::Places {
        base,
        state_dir: &state_dir,
        ca: ca.as_deref(),
    };
    let lists = super::lists::lists(&mut c, &raw.lists, &places);
    let list_names: Vec<&str> = raw.lists.iter().map(|l| l.name.value.as_str()).collect();
    let mut lists = lists;
    let mut rules = super::rules::rules(&mut c, &raw.rules, &networks, &list_names, &lists);
    let bypass = super::bypass::apply(&mut c, &raw, &networks, &mut lists, &mut rules);
    let forward_only = match &raw.forward_only {
        None => false,
        Some(a) => match a.value.as_str() {
            "true" => true,
            "false" => false,
            other => {
                c.error(a, format!("`{other}` is not true or false"));
                false
            }
        },
    };
    match (&raw.forward_only, raw.rules.is_empty()) {
        (Some(a), false) if forward_only => c.error(
            a,
            format!(
                "`forward_only: true` says this config has no rules, but it has {}; remove one or the other",
                raw.rules.len()
            ),
        ),
        (_, true) if !forward_only => c.warnings.push(Problem::new(
            raw.rules_line,
            "rules",
            "no rules: every query is forwarded and nothing is logged as Kaspersky (a reload to this file is refused while rules are running; write `forward_only: true` if that is what you mean)"
                .into(),
        )),
        _ => {}
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
    let blocking = super::settings::blocking(&mut c, &raw);
    let serve = super::settings::serve(&mut c, &raw, base);
    let query_log = super::settings::query_log(&mut c, &raw);
    let rate_limit = super::settings::rate_limit(&mut c, &raw);
    let tls = super::tls::tls(&mut c, &raw, base);

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
        forward_only,
        blocking: blocking?,
        bypass,
        serve: serve?,
        query_log,
        rate_limit: rate_limit?,
        tls,
        warnings,
    })
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
        Some(a) => Denied::parse(&a.value).unwrap_or_else(|| {
            let words = Denied::words();
            c.error(a, format!("`{}` is not one of: {words}", a.value));
            Denied::Refuse
        }),
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
