//! The status page's building blocks: the one escaping function every
//! value goes through, the inline SVG sparkline, the style sheet. Query
//! names and explain input are chosen by whoever asks, so nothing reaches
//! the page unescaped. Beside the query flow.

use std::fmt::Write as _;

/// `text` with `& < > " '` replaced by entities: safe in element text and
/// in double- or single-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An inline SVG polyline of `series` (oldest first), `width` × `height`
/// pixels, with `label` as its accessible title.
pub(super) fn sparkline(series: &[u64], width: u32, height: u32, label: &str) -> String {
    let max = series.iter().copied().max().unwrap_or(0).max(1);
    let n = series.len().max(2);
    let mut points = String::new();
    for (i, v) in series.iter().enumerate() {
        // f64 keeps this free of integer overflow for any count.
        let x = (i as f64) * f64::from(width) / (n.saturating_sub(1) as f64);
        let y = f64::from(height) - 1.0 - (*v as f64) * (f64::from(height) - 2.0) / (max as f64);
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    format!(
        "<svg class=\"spark\" role=\"img\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\"><title>{}</title><polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        escape(label),
        points.trim_end()
    )
}

/// The page's style sheet (served at `/style.css`; the policy allows no
/// inline style). Prints cleanly: no backgrounds, no form.
pub(super) const STYLE: &str = r#"
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #b42318; --muted: #6b7280; }
body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 0.75rem; line-height: 1.35; }
h1 { font-size: 1.4rem; margin: 0.2rem 0; }
h2 { font-size: 1.1rem; margin: 1.2rem 0 0.4rem; border-bottom: 1px solid var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { text-align: left; padding: 0.2rem 0.4rem; border-bottom: 1px solid #8884; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.wrap { overflow-x: auto; }
.name { word-break: break-all; font-family: "DejaVu Sans Mono", monospace; }
.holds { color: var(--ok); font-weight: bold; }
.open { color: var(--bad); font-weight: bold; }
.muted { color: var(--muted); }
.spark { color: var(--bad); vertical-align: middle; }
form { display: flex; flex-wrap: wrap; gap: 0.4rem; }
input { font: inherit; padding: 0.2rem; min-width: 10rem; }
pre { white-space: pre-wrap; word-break: break-all; padding: 0.4rem; border: 1px solid #8886; }
@media print { form, .noprint { display: none; } body { max-width: none; } }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("s05.upd.kaspersky.com"), "s05.upd.kaspersky.com");
    }

    #[test]
    fn a_sparkline_scales_to_its_box_and_escapes_its_title() {
        let s = sparkline(&[0, 5, 10], 100, 20, "<b>");
        assert!(s.contains("points=\"0.0,19.0 50.0,10.0 100.0,1.0\""), "{s}");
        assert!(s.contains("<title>&lt;b&gt;</title>"), "{s}");
        // No data: a flat line, no division by zero.
        assert!(sparkline(&[], 10, 10, "").contains("points=\"\""));
        assert!(sparkline(&[0, 0], 10, 10, "").contains("0.0,9.0 10.0,9.0"));
    }
}
