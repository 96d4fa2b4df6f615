//! Histograms with fixed buckets, counted as they are recorded.
//!
//! The Prometheus exporter's histograms keep every recorded value, with the
//! instant it was recorded, in a growing list of blocks until its upkeep
//! drains them into buckets. At 100,000 queries a second that is about 8 MB
//! allocated and freed between two upkeeps for `cutoff_query_duration_seconds`
//! alone, and a block of some 2 KiB allocated on the query path every 128
//! values (which also makes glibc consolidate its small free chunks). Here a
//! value is counted into its bucket at once: an atomic add to the bucket and
//! one to the sum (an `f64`, as the exporter keeps it: integer nanoseconds
//! would wrap after some months of a busy server's summed latencies), and no
//! allocation. The buckets are the ones docs/metrics.md lists; the
//! exposition is the same text.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{Histogram, HistogramFn};

/// One series: a count per bucket (not cumulative; the last is `+Inf`),
/// and the sum of the values (the bits of an `f64`, in seconds).
#[derive(Debug)]
struct Series {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Series {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0.0f64.to_bits()),
        }
    }
}

impl HistogramFn for Series {
    /// Counts `value` (seconds) in the first bucket whose bound is at least
    /// the value (`le` is inclusive). A negative or NaN value counts as 0;
    /// an infinite one is counted in `+Inf` but left out of the sum, which
    /// it would make infinite for good.
    fn record(&self, value: f64) {
        let value = if value > 0.0 { value } else { 0.0 };
        let i = self.bounds.partition_point(|b| *b < value);
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        if value.is_finite() {
            // Err only when the closure returns None, which it never does.
            let _ = self
                .sum
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                    Some((f64::from_bits(bits) + value).to_bits())
                });
        }
    }
}

/// The histogram families of one recorder, by name, each series by its
/// rendered label set.
#[derive(Debug, Default)]
pub(super) struct Families {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

#[derive(Debug)]
struct Family {
    help: &'static str,
    series: BTreeMap<String, Arc<Series>>,
}

impl Families {
    /// The handle of one series, made at zero the first time it is asked
    /// for (so it is rendered from then on) and the same series after.
    pub(super) fn series(
        &self,
        (name, help): (&'static str, &'static str),
        bounds: &'static [f64],
        labels: &[(&str, &str)],
    ) -> Histogram {
        let mut families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            series: BTreeMap::new(),
        });
        let labels = labels.iter().fold(String::new(), |mut s, (k, v)| {
            let _ = write!(s, "{k}=\"{}\",", escape(v));
            s
        });
        let series = family
            .series
            .entry(labels)
            .or_insert_with(|| Arc::new(Series::new(bounds)));
        Histogram::from_arc(Arc::clone(series))
    }

    /// Appends every family in the Prometheus text format: `_bucket` lines
    /// with cumulative counts up to `le="+Inf"`, then `_sum` (seconds) and
    /// `_count`.
    pub(super) fn render_into(&self, out: &mut String) {
        let families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, family) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (labels, s) in &family.series {
                let mut total = 0u64;
                for (i, b) in s.buckets.iter().enumerate() {
                    total = total.saturating_add(b.load(Ordering::Relaxed));
                    let le = s
                        .bounds
                        .get(i)
                        .map_or_else(|| "+Inf".to_owned(), f64::to_string);
                    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {total}");
                }
                let bare = match labels.strip_suffix(',') {
                    Some(l) => format!("{{{l}}}"),
                    None => String::new(),
                };
                let sum = f64::from_bits(s.sum.load(Ordering::Relaxed));
                let _ = writeln!(out, "{name}_sum{bare} {sum}");
                let _ = writeln!(out, "{name}_count{bare} {total}");
            }
            out.push('\n');
        }
    }
}

/// A label value as the text format writes it: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.001, 0.01, 1.0];

    fn families() -> (Families, Histogram) {
        let f = Families::default();
        let h = f.series(("t_seconds", "A test."), BOUNDS, &[("path", "cached")]);
        (f, h)
    }

    fn render(f: &Families) -> String {
        let mut out = String::new();
        f.render_into(&mut out);
        out
    }

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_holds_them_and_count_cumulatively() {
        let (f, h) = families();
        // Binary fractions, so the sum is exact.
        let values = [
            0.00048828125, // 2^-11
            0.0009765625,  // 2^-10
            0.001953125,   // 2^-9
            0.5,
            1.0, // on a bound: `le` holds it
            7.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
        ];
        for v in values {
            h.record(v);
        }
        assert_eq!(
            render(&f),
            "# HELP t_seconds A test.\n\
             # TYPE t_seconds histogram\n\
             t_seconds_bucket{path=\"cached\",le=\"0.001\"} 4\n\
             t_seconds_bucket{path=\"cached\",le=\"0.01\"} 5\n\
             t_seconds_bucket{path=\"cached\",le=\"1\"} 7\n\
             t_seconds_bucket{path=\"cached\",le=\"+Inf\"} 9\n\
             t_seconds_sum{path=\"cached\"} 8.50341796875\n\
             t_seconds_count{path=\"cached\"} 9\n\n"
        );
    }

    #[test]
    fn a_series_asked_for_again_is_the_same_series_and_each_is_rendered_from_zero() {
        let (f, h) = families();
        let again = f.series(("t_seconds", "A test."), BOUNDS, &[("path", "cached")]);
        h.record(0.5);
        again.record(0.5);
        let _other = f.series(("t_seconds", "A test."), BOUNDS, &[("path", "blocked")]);
        let text = render(&f);
        assert!(
            text.contains("t_seconds_count{path=\"cached\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_count{path=\"blocked\"} 0\n"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 1, "{text}");
    }

    #[test]
    fn label_values_are_escaped_and_a_series_without_labels_has_none() {
        let f = Families::default();
        let _ = f.series(("a", "A."), BOUNDS, &[("upstream", "say \"hi\"\\\n")]);
        let _ = f.series(("b", "B."), BOUNDS, &[]);
        let text = render(&f);
        assert!(
            text.contains(r#"a_count{upstream="say \"hi\"\\\n"} 0"#),
            "{text}"
        );
        assert!(text.contains("b_bucket{le=\"+Inf\"} 0\n"), "{text}");
        assert!(text.contains("\nb_sum 0\n"), "{text}");
    }
}
