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
        let _ = writeln!(out, "$TTL 300");
        let _ = writeln!(
            out,
            "@ SOA localhost. hostmaster.localhost. {} 3600 600 604800 300",
            serial(e)
        );
        let _ = writeln!(out, "  NS localhost.");
        let _ = writeln!(out, "@ 300 IN A 127.0.0.1");
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
            let owner = if o.below {
                format!("*.{}", o.name)
            } else {
                o.name.clone()
            };
            let target = if pass { "rpz-passthru." } else { "." };
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

/// The SOA serial: the config version's first 8 hex digits would not sort,
/// so the serial is the instant in seconds (seconds since 1970 fit u32
/// until 2106), which only grows between exports.
fn serial(e: &Export) -> u32 {
    u32::try_from(e.at.as_second()).unwrap_or(u32::MAX)
}
