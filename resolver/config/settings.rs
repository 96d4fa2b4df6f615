//! Validation of the serving settings: the blocked answer, timeouts and
//! limits, the cache and the query log. Part of `validate`, split out to
//! keep each file to one concern.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::check::Checker;
use super::raw::{At, RawConfig};
use super::{AnswerMode, Blocking};

/// An answer-mode word, or a problem naming the known ones.
pub(super) fn answer_mode(c: &mut Checker<'_>, a: &At<String>) -> Option<AnswerMode> {
    let mode = AnswerMode::parse(&a.value);
    if mode.is_none() {
        let words = AnswerMode::words();
        c.error(a, format!("`{}` is not one of: {words}", a.value));
    }
    mode
}

pub(super) fn blocking(c: &mut Checker<'_>, raw: &RawConfig) -> Option<Blocking> {
    let b = &raw.blocking;
    let answer = match &b.answer {
        None => Some(AnswerMode::NxDomain),
        Some(a) => answer_mode(c, a),
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

/// Parses a whole number followed by one of `units` (name, multiplier).
fn with_unit(text: &str, units: &[(&str, u64)]) -> Option<u64> {
    let t = text.trim();
    let at = t.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..at].parse().ok()?;
    let unit = t[at..].trim();
    let (_, mul) = units.iter().find(|(name, _)| *name == unit)?;
    n.checked_mul(*mul)
}

/// Parses a byte size: `0`, a number of bytes, or a whole number of
/// `KiB`, `MiB` or `GiB`; between 64 KiB and 64 GiB unless 0.
pub(crate) fn size(text: &str) -> Option<usize> {
    let units = [
        ("", 1),
        ("B", 1),
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
    ];
    let bytes = with_unit(text, &units)?;
    if bytes != 0 && !((64 << 10)..=(64 << 30)).contains(&bytes) {
        return None;
    }
    usize::try_from(bytes).ok()
}

/// Parses `0`, or a whole number of `s`, `m`, `h` or `d`, up to 7 days.
pub(crate) fn long_duration(text: &str) -> Option<std::time::Duration> {
    let units = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)];
    let secs = match text.trim() {
        "0" => 0,
        t => with_unit(t, &units).filter(|s| *s <= 7 * 86_400)?,
    };
    Some(std::time::Duration::from_secs(secs))
}

/// The value `parse` reads from `a`; an error saying it is not `what`
/// (and `ok` cleared) when it reads nothing; `None` when `a` is absent or bad.
pub(super) fn parsed<T>(
    c: &mut Checker<'_>,
    ok: &mut bool,
    a: &Option<At<String>>,
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Option<T> {
    let a = a.as_ref()?;
    let value = parse(&a.value);
    if value.is_none() {
        c.error(a, format!("`{}` is not {what}", a.value));
        *ok = false;
    }
    value
}

pub(super) fn serve(c: &mut Checker<'_>, raw: &RawConfig, base: &Path) -> Option<super::Serve> {
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
    let upstream_timeout = dur(&raw.upstream_timeout, 5000);
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
        threads: raw
            .threads
            .as_ref()
            .and_then(|a| usize::try_from(a.value).ok()),
        cache_size: raw
            .cache_size
            .as_ref()
            .and_then(|a| usize::try_from(a.value).ok()),
        cache_max_bytes: parsed(
            c,
            &mut ok,
            &raw.cache_max_bytes,
            size,
            "0 or a size from 64KiB to 64GiB, like 16MiB or 1048576",
        )
        .unwrap_or(crate::cache::DEFAULT_MAX_BYTES),
        cache_stale_for: parsed(
            c,
            &mut ok,
            &raw.cache_stale_for,
            long_duration,
            "0 or a duration like 30m, 12h or 1d (up to 7d)",
        )
        .unwrap_or(crate::cache::DEFAULT_STALE_FOR),
        cache_stale_refresh: parsed(
            c,
            &mut ok,
            &raw.cache_stale_refresh,
            duration,
            "a duration like 30s or 5m (up to 1 hour)",
        )
        .unwrap_or(crate::cache::RECHECK),
        cache_max_ttl: raw
            .cache_max_ttl
            .as_ref()
            .map_or(86_400, |a| u32::try_from(a.value).unwrap_or(86_400)),
        tcp_idle_timeout,
        tcp_max_connections: num(&raw.tcp_max_connections, 256),
        tcp_max_per_client: num(&raw.tcp_max_per_client, 64),
        tcp_max_queries: num(&raw.tcp_max_queries, 100),
        state_dir: state_dir(raw, base),
    };
    ok.then_some(s)
}

/// The default `state_dir` (systemd's `StateDirectory=cutoff`).
pub(crate) const DEFAULT_STATE_DIR: &str = "/var/lib/cutoff";

/// `state_dir`, relative to the config file's directory; not checked here:
/// only URL lists use it, and a missing directory is created on first write.
pub(super) fn state_dir(raw: &RawConfig, base: &Path) -> std::path::PathBuf {
    raw.state_dir
        .as_ref()
        .map_or_else(|| DEFAULT_STATE_DIR.into(), |a| base.join(&a.value))
}

pub(super) fn query_log(c: &mut Checker<'_>, raw: &RawConfig) -> super::QueryLogConfig {
    let mut q = super::QueryLogConfig {
        path: raw.log_path.as_ref().map(|a| a.value.clone()),
        ..super::QueryLogConfig::default()
    };
    if let Some(a) = &raw.log_events {
        q.events = super::LogEvents::parse(&a.value).unwrap_or_else(|| {
            let words = super::LogEvents::words();
            c.error(a, format!("`{}` is not one of: {words}", a.value));
            q.events
        });
    }
    if let Some(a) = &raw.log_client {
        q.client = super::ClientMode::parse(&a.value).unwrap_or_else(|| {
            let words = super::ClientMode::words();
            c.error(a, format!("`{}` is not one of: {words}", a.value));
            q.client
        });
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
    if let Some(a) = &raw.log_chain {
        q.chain = match a.value.as_str() {
            "true" => true,
            "false" => false,
            other => {
                c.error(a, format!("`{other}` is not true or false"));
                false
            }
        };
    }
    q
}

/// `rate_limit`: `None` when absent (no limit); `qps` is required.
pub(super) fn rate_limit(
    c: &mut Checker<'_>,
    raw: &RawConfig,
) -> Option<Option<crate::ratelimit::Settings>> {
    let Some(r) = &raw.rate_limit else {
        return Some(None);
    };
    let n = |a: &Option<At<i128>>| a.as_ref().and_then(|a| u32::try_from(a.value).ok());
    let Some(qps) = n(&r.qps) else {
        c.error(
            &r.at,
            "needs `qps`, the queries per second one client prefix may send",
        );
        return None;
    };
    let exempt: Vec<_> = r.exempt.iter().map(|a| super::check::cidr(c, a)).collect();
    let exempt: Option<Vec<_>> = exempt.into_iter().collect();
    Some(Some(crate::ratelimit::Settings {
        qps,
        burst: n(&r.burst).unwrap_or_else(|| qps.saturating_mul(2)),
        slip: n(&r.slip).unwrap_or(2),
        ipv4_prefix: n(&r.ipv4_prefix)
            .and_then(|v| u8::try_from(v).ok())
            .unwrap_or(32),
        ipv6_prefix: n(&r.ipv6_prefix)
            .and_then(|v| u8::try_from(v).ok())
            .unwrap_or(56),
        exempt: exempt?,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::{long_duration, size};
    use crate::config::{ConfigError, from_str};

    #[test]
    fn cache_sizes_take_binary_units_within_bounds() {
        assert_eq!(size("16MiB"), Some(16 << 20));
        assert_eq!(size("65536"), Some(64 << 10));
        assert_eq!(size("0"), Some(0));
        assert_eq!(size("1GiB"), Some(1 << 30));
        // Below 64 KiB, above 64 GiB, decimal units, overflow: refused.
        for bad in [
            "1000",
            "65GiB",
            "16MB",
            "16 mib",
            "-1",
            "99999999999999999999GiB",
        ] {
            assert_eq!(size(bad), None, "{bad}");
        }
    }

    #[test]
    fn stale_windows_take_days_hours_minutes_and_seconds() {
        assert_eq!(long_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(long_duration("90m"), Some(Duration::from_secs(5_400)));
        assert_eq!(long_duration("0"), Some(Duration::ZERO));
        for bad in ["8d", "1w", "12", "", "1.5h", "18446744073709551615d"] {
            assert_eq!(long_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_cache_values_are_reported_with_their_lines() {
        let text = "cache:\n  max_bytes: 16MB\n  stale_for: 2w\n";
        let Err(ConfigError::Invalid { problems, .. }) = from_str(text, "t", Path::new("/")) else {
            panic!("accepted");
        };
        let lines: Vec<Option<u32>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(2), Some(3)], "{problems:?}");
        let ok = from_str(
            "cache:\n  max_bytes: 8MiB\n  stale_for: 12h\n",
            "t",
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(ok.serve.cache_max_bytes, 8 << 20);
        assert_eq!(ok.serve.cache_stale_for, Duration::from_secs(43_200));
        assert_eq!(ok.serve.cache_size, None);
    }
}
