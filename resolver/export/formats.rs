//! The export formats. Each writes a header (what, for which network, at
//! which instant, from which config version), then one line or record per
//! owner, with the rule, list, category and sources as a comment.

use std::fmt::Write as _;

use super::{Effect, Export, Owner};

/// An export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An RPZ zone file (BIND `response-policy`, Unbound `rpz:`, PowerDNS
    /// Recursor, Knot Resolver): NXDOMAIN for blocked owners, `rpz-passthru.`
    /// for the ones that must pass.
    Rpz,
    /// A hosts file (`0.0.0.0 name`): exact names only.
    Hosts,
    /// One blocked name per line.
    Plain,
    /// An Unbound include: `local-zone: "name." always_nxdomain`, and
    /// `always_transparent` for the ones that must pass.
    Unbound,
    /// A dnsmasq config: `address=/name/` (NXDOMAIN), `server=/name/#` for
    /// the ones that must pass.
    Dnsmasq,
    /// Adblock-style DNS rules: `||name^`, `|name^` for exact names,
    /// `@@||name^` for the ones that must pass.
    Adblock,
}

impl Format {
    /// Every format.
    pub const ALL: [Self; 6] = [
        Self::Rpz,
        Self::Hosts,
        Self::Plain,
        Self::Unbound,
        Self::Dnsmasq,
        Self::Adblock,
    ];

    /// The word on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rpz => "rpz",
            Self::Hosts => "hosts",
            Self::Plain => "plain",
            Self::Unbound => "unbound",
            Self::Dnsmasq => "dnsmasq",
            Self::Adblock => "adblock",
        }
    }

    fn comment(self) -> &'static str {
        match self {
            Self::Rpz => ";",
            Self::Adblock => "!",
            _ => "#",
        }
    }
}

/// Renders an export. RPZ owner names are relative to the zone's origin, so
/// the zone can be loaded under any name (`rpz.cutoff` in the docs).
pub fn render(e: &Export, format: Format) -> String {
    let mut out = String::new();
    let c = format.comment();
    let _ = writeln!(
        out,
        "{c} cutoff export --format {}: what the policy blocks for network `{}` at {}",
        format.as_str(),
        e.network,
        e.at
    );
    let _ = writeln!(
        out,
        "{c} config version {}; regenerate rather than edit.",
        e.version
    );
    if let Some(note) = limits(format) {
        let _ = writeln!(out, "{c} {note}");
    }
    for p in &e.patterns {
        let _ = writeln!(
            out,
            "{c} not expressible in this format (pattern entry): {p}"
        );
    }
    if format == Format::Rpz {
        let s = RPZ_SOA;
        let _ = writeln!(out, "$TTL {RPZ_TTL}");
        let _ = writeln!(
            out,
            "@ SOA {} {} {} {} {} {} {}",
            s.mname, s.rname, e.serial, s.refresh, s.retry, s.expire, s.minimum
        );
        let _ = writeln!(out, "  NS {}", s.mname);
        let _ = writeln!(out, "@ {RPZ_TTL} IN A {RPZ_APEX_A}");
        let _ = writeln!(
            out,
            "{c} The apex A record only keeps NS-only zone checks quiet; RPZ ignores it."
        );
    }
    let mut last_comment = String::new();
    let zone_style = matches!(format, Format::Unbound | Format::Dnsmasq);
    let mut prev: Option<&Owner> = None;
    for o in &e.owners {
        // Unbound and dnsmasq apply a zone to the name and all below it:
        // one statement per name, written for its apex owner.
        let written = prev.is_some_and(|p| p.name == o.name && !p.below);
        prev = Some(o);
        if zone_style && o.below && written {
            continue;
        }
        let why = why(o);
        if why != last_comment {
            let _ = writeln!(out, "{c} {why}");
            last_comment = why;
        }
        line(&mut out, format, o);
    }
    out
}

fn line(out: &mut String, format: Format, o: &Owner) {
    let pass = o.effect == Effect::Pass;
    let _ = match format {
        Format::Rpz => {
            let (owner, target) = rpz_record(o);
            writeln!(out, "{owner} CNAME {target}")
        }
        // Hosts files and plain lists have no pass-through and no
        // wildcard: the name itself stands for the entry.
        Format::Hosts if !pass && !o.below => writeln!(out, "0.0.0.0 {}", o.name),
        Format::Plain if !pass && !o.below => writeln!(out, "{}", o.name),
        Format::Hosts | Format::Plain => Ok(()),
        Format::Unbound => {
            let kind = if pass {
                "always_transparent"
            } else {
                "always_nxdomain"
            };
            writeln!(out, "local-zone: \"{}.\" {kind}", o.name)
        }
        Format::Dnsmasq if pass => writeln!(out, "server=/{}/#", o.name),
        Format::Dnsmasq => writeln!(out, "address=/{}/", o.name),
        Format::Adblock => {
            let allow = if pass { "@@" } else { "" };
            if o.below {
                writeln!(out, "{allow}||{}^", o.name)
            } else {
                writeln!(out, "{allow}|{}^", o.name)
            }
        }
    };
}

fn why(o: &Owner) -> String {
    let cat = o.category.map_or("uncategorised", |c| c.as_str());
    let mut s = format!("rule {} list {} category {cat}", o.rule, o.list);
    if !o.sources.is_empty() {
        let _ = write!(s, "; sources: {}", o.sources.join(", "));
    }
    s
}

fn limits(format: Format) -> Option<&'static str> {
    match format {
        Format::Hosts | Format::Plain => Some(
            "Exact names only: names below a blocked zone and pass-through exceptions cannot be written here.",
        ),
        Format::Unbound | Format::Dnsmasq => Some(
            "Each name covers itself and every name below it; a more specific name passes through.",
        ),
        _ => None,
    }
}

/// The TTL of every record of an RPZ zone.
pub const RPZ_TTL: u32 = 300;

/// The apex A record (only keeps NS-only zone checks quiet).
pub const RPZ_APEX_A: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;

/// The SOA fields of an RPZ zone but its serial, as the zone file and a
/// zone transfer both write them. The zone's one NS is `mname`.
#[derive(Clone, Copy, Debug)]
pub struct RpzSoa {
    /// MNAME (also the NS target).
    pub mname: &'static str,
    /// RNAME.
    pub rname: &'static str,
    /// REFRESH: how often a secondary checks without a NOTIFY.
    pub refresh: u32,
    /// RETRY.
    pub retry: u32,
    /// EXPIRE.
    pub expire: u32,
    /// MINIMUM (negative TTL).
    pub minimum: u32,
}

/// The SOA of every RPZ zone cutoff writes.
pub const RPZ_SOA: RpzSoa = RpzSoa {
    mname: "localhost.",
    rname: "hostmaster.localhost.",
    refresh: 3600,
    retry: 600,
    expire: 604_800,
    minimum: 300,
};

/// An owner's RPZ record: its name relative to the zone's origin (`*.`
/// for what lies below), and its CNAME target (`.`: NXDOMAIN,
/// `rpz-passthru.`: answered normally). The zone file and a zone transfer
/// both write owners through this.
pub fn rpz_record(o: &Owner) -> (String, &'static str) {
    let owner = if o.below {
        format!("*.{}", o.name)
    } else {
        o.name.clone()
    };
    let target = if o.effect == Effect::Pass {
        "rpz-passthru."
    } else {
        "."
    };
    (owner, target)
}
