//! "Since when?": the one parser for `cutoff report --since` and the admin
//! endpoint's `/api/v1/clients?since=`. Outside the query flow, but reached
//! by unauthenticated HTTP input, so nothing here may panic: arithmetic is
//! checked (enforced by the lint below) and an answer out of range is an
//! error, never a wrap or an abort (docs/adr/0003-panic-abort.md).
//!
//! Accepted, tried in this order:
//! - a duration back from `now`: digits and one unit, `s`, `m`, `h` or `d`
//!   (`90s`, `30m`, `24h`, `7d`);
//! - an RFC 3339 instant with an offset (`2024-09-29T04:00:00Z`,
//!   `2024-09-29T00:00:00-04:00`);
//! - a plain date `YYYY-MM-DD`, meaning 00:00:00 UTC that day.

#![deny(clippy::arithmetic_side_effects)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(clippy::indexing_slicing)]

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// What the error messages list as accepted, so every caller says the same.
pub const ACCEPTED: &str = "a duration back from now (90s, 30m, 24h, 7d), \
an RFC 3339 instant (2024-09-29T04:00:00Z) or a date (2024-09-29, midnight UTC)";

/// Longest input looked at: anything longer is no instant or duration we
/// accept, and the error quotes at most this much of it.
const MAX_LEN: usize = 64;

/// Why a `since` value was refused. Each message quotes the input and says
/// what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinceError {
    /// Nothing was given.
    #[error("`since` is empty; expected {ACCEPTED}")]
    Empty,
    /// The text is none of the accepted forms.
    #[error("`{input}` is not {ACCEPTED}")]
    Unrecognised {
        /// The input (cut to 64 characters).
        input: String,
    },
    /// A duration whose unit is not one of s, m, h, d.
    #[error("`{input}`: the unit must be s, m, h or d; expected {ACCEPTED}")]
    Unit {
        /// The input (cut to 64 characters).
        input: String,
    },
    /// A date that does not exist (2024-02-30).
    #[error("`{input}` is not a calendar date; expected {ACCEPTED}")]
    Date {
        /// The input (cut to 64 characters).
        input: String,
    },
    /// A duration that reaches back before the earliest instant cutoff
    /// can represent (the year -9999).
    #[error("`{input}` reaches too far back (the earliest is the year -9999); expected {ACCEPTED}")]
    OutOfRange {
        /// The input (cut to 64 characters).
        input: String,
    },
}

/// Parses a `since` value relative to `now`.
pub fn parse(text: &str, now: Timestamp) -> Result<Timestamp, SinceError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(SinceError::Empty);
    }
    let input = quoted(text);
    if text.len() > MAX_LEN {
        return Err(SinceError::Unrecognised { input });
    }
    if text.starts_with(|c: char| c.is_ascii_digit())
        && let Some(unit) = duration_unit(text)
    {
        return duration(text, unit, now);
    }
    if let Some(date) = plain_date(text) {
        return date
            .and_then(|d| {
                TimeZone::UTC
                    .to_timestamp(d.to_datetime(Time::midnight()))
                    .ok()
            })
            .ok_or(SinceError::Date { input });
    }
    text.parse::<Timestamp>()
        .map_err(|_| SinceError::Unrecognised { input })
}

/// The unit part of a duration (`d` of `7d`): the text after the leading
/// digits, when it is short and alphabetic. `None` when the text is not
/// shaped like a duration at all (an instant, a date).
fn duration_unit(text: &str) -> Option<&str> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let unit = text.get(digits..)?;
    (unit.len() <= 8 && unit.chars().all(|c| c.is_ascii_alphabetic())).then_some(unit)
}

fn duration(text: &str, unit: &str, now: Timestamp) -> Result<Timestamp, SinceError> {
    let input = || quoted(text);
    let per: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(SinceError::Unit { input: input() }),
    };
    let digits = text.strip_suffix(unit).unwrap_or(text);
    // Digits only, so the one parse failure left is overflow.
    let n: i64 = digits
        .parse()
        .map_err(|_| SinceError::OutOfRange { input: input() })?;
    let secs = n
        .checked_mul(per)
        .ok_or(SinceError::OutOfRange { input: input() })?;
    now.checked_sub(SignedDuration::from_secs(secs))
        .map_err(|_| SinceError::OutOfRange { input: input() })
}

/// `YYYY-MM-DD` exactly: `Some(Some(date))` for a real date, `Some(None)`
/// for the shape with an impossible day, `None` for another shape.
fn plain_date(text: &str) -> Option<Option<Date>> {
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    let field = |r: std::ops::Range<usize>| text.get(r).and_then(|s| s.parse::<i16>().ok());
    let (Some(y), Some(m), Some(d)) = (field(0..4), field(5..7), field(8..10)) else {
        return Some(None);
    };
    let (Ok(m), Ok(d)) = (i8::try_from(m), i8::try_from(d)) else {
        return Some(None);
    };
    Some(Date::new(y, m, d).ok())
}

/// The input as error messages quote it: at most 64 characters.
fn quoted(text: &str) -> String {
    text.chars().take(MAX_LEN).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-01T08:00:00Z".parse().unwrap()
    }

    #[test]
    fn durations_count_back_from_now_in_each_unit() {
        let at = |s| parse(s, now()).unwrap();
        assert_eq!(at("90s"), now() - SignedDuration::from_secs(90));
        assert_eq!(at("30m"), now() - SignedDuration::from_mins(30));
        assert_eq!(at("24h"), now() - SignedDuration::from_hours(24));
        assert_eq!(at("7d"), now() - SignedDuration::from_hours(7 * 24));
        assert_eq!(at("0s"), now());
        assert_eq!(at(" 7d "), at("7d"));
    }

    #[test]
    fn instants_with_an_offset_and_plain_dates_are_accepted() {
        let t = parse("2024-09-29T00:00:00-04:00", now()).unwrap();
        assert_eq!(t, "2024-09-29T04:00:00Z".parse().unwrap());
        let d = parse("2024-09-29", now()).unwrap();
        assert_eq!(d, "2024-09-29T00:00:00Z".parse().unwrap());
        assert_eq!(
            parse("2024-02-29", now()).unwrap(),
            "2024-02-29T00:00:00Z".parse().unwrap()
        );
    }

    /// Issue 15, point 1: these panicked (`n * 86_400`, then
    /// `Timestamp - SignedDuration`) and, with `panic = "abort"`, killed
    /// the server.
    #[test]
    fn durations_too_long_are_refused_not_a_panic() {
        for s in [
            "5000000d",
            "9223372036854775807s",
            "9223372036854775808s",
            "106751991167300d",
            "99999999999999999999999999d",
            "3000000000000h",
            "200000000000m",
            "400000000000s",
        ] {
            assert_eq!(
                parse(s, now()),
                Err(SinceError::OutOfRange { input: s.into() }),
                "{s}"
            );
        }
    }

    #[test]
    fn the_earliest_reachable_instant_is_accepted_and_one_more_second_is_not() {
        let min = Timestamp::MIN;
        let secs = now().as_second() - min.as_second();
        assert_eq!(
            parse(&format!("{secs}s"), now()).unwrap().as_second(),
            min.as_second()
        );
        assert!(matches!(
            parse(&format!("{}s", secs + 1), now()),
            Err(SinceError::OutOfRange { .. })
        ));
    }

    #[test]
    fn every_refusal_says_what_is_accepted() {
        for s in [
            "",
            "yesterday",
            "7x",
            "7",
            "7dd",
            "-7d",
            "+7d",
            "2024-02-30",
            "2024-13-01",
            "2024-9-29",
            "2024-09-29T25:00:00Z",
            "2024-09-29T00:00:00",
            "5000000d",
            &"9".repeat(200),
        ] {
            let e = parse(s, now()).unwrap_err().to_string();
            assert!(e.contains(ACCEPTED), "{s:?}: {e}");
            assert!(e.len() < 400, "{s:?}: the message quotes too much: {e}");
        }
    }

    #[test]
    fn errors_name_the_part_that_is_wrong() {
        assert!(matches!(parse("7x", now()), Err(SinceError::Unit { .. })));
        assert!(matches!(parse("7", now()), Err(SinceError::Unit { .. })));
        assert!(matches!(
            parse("2024-02-30", now()),
            Err(SinceError::Date { .. })
        ));
        assert!(matches!(
            parse("yesterday", now()),
            Err(SinceError::Unrecognised { .. })
        ));
        assert_eq!(parse("  ", now()), Err(SinceError::Empty));
    }

    /// Every count of every unit at the edges of i64 and of jiff's range,
    /// and a deterministic sweep between: a value is either exactly
    /// `now - n * unit` or `OutOfRange`, never a panic.
    #[test]
    fn durations_are_exact_or_out_of_range_across_the_whole_i64_range() {
        let mut counts: Vec<i64> = vec![0, 1, 59, 60, 3_599, 86_399, 86_400];
        for shift in 0..63 {
            let p = 1i64 << shift;
            counts.extend([p - 1, p, p.saturating_add(1)]);
        }
        counts.push(i64::MAX);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            counts.push((x >> (x % 64)) as i64 & i64::MAX);
        }
        let span = now().as_second() - Timestamp::MIN.as_second();
        for n in counts {
            for (unit, per) in [("s", 1i128), ("m", 60), ("h", 3_600), ("d", 86_400)] {
                let text = format!("{n}{unit}");
                let want = i128::from(n) * per;
                match parse(&text, now()) {
                    Ok(t) => {
                        assert!(want <= i128::from(span), "{text} accepted");
                        let back = i128::from(now().as_second()) - i128::from(t.as_second());
                        assert_eq!(back, want, "{text}");
                    }
                    Err(SinceError::OutOfRange { .. }) => {
                        assert!(want > i128::from(span), "{text} refused");
                    }
                    Err(e) => panic!("{text}: {e}"),
                }
            }
        }
    }

    /// `cutoff report --url` sends the parsed instant back as text in the
    /// query string: whatever parses must print in a form that parses to
    /// the same instant.
    #[test]
    fn every_accepted_value_prints_as_an_instant_that_parses_back() {
        for s in [
            "0s",
            "7d",
            "2024-09-29",
            "2024-09-29T00:00:00.5-04:00",
            "-009999-01-02",
            "0001-01-01",
        ] {
            let Ok(t) = parse(s, now()) else { continue };
            assert_eq!(parse(&t.to_string(), now()), Ok(t), "{s} → {t}");
        }
        let earliest = parse(
            &format!("{}s", now().as_second() - Timestamp::MIN.as_second()),
            now(),
        )
        .unwrap();
        assert_eq!(parse(&earliest.to_string(), now()), Ok(earliest));
    }
}
