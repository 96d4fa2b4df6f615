//! Where a YAML syntax error really is. The YAML reader reports the place it
//! stopped, which is often a line late: an unclosed `[` on line 1 is noticed
//! on line 2, and a tab that starts line 4 while a plain value of line 3 is
//! being read is reported at line 3. This moves the line to the mistake and
//! says what it is. Outside the query flow: `config::load` only.

/// The line (1-based) to report for a syntax error the reader placed at
/// `reported`, and the message to give.
pub(super) fn locate(text: &str, reported: u32, message: &str) -> (u32, String) {
    if message.contains("tab") {
        let from = usize::try_from(reported.saturating_sub(1)).unwrap_or(0);
        if let Some(i) = text.lines().skip(from).position(|l| l.contains('\t')) {
            let line = u32::try_from(from + i + 1).unwrap_or(reported);
            return (
                line,
                format!("{message} (YAML indents with spaces only; replace the tab)"),
            );
        }
    }
    if let Some((bracket, line)) = unclosed_before(text, reported)
        && line < reported
    {
        let close = if bracket == '[' { ']' } else { '}' };
        return (
            line,
            format!(
                "`{bracket}` is not closed: a flow list or mapping opened here needs its `{close}` on the same line or a later one, with `,` between items (the reader stopped at line {reported}: {message})"
            ),
        );
    }
    (reported, message.to_owned())
}

/// The innermost `[` or `{` still open at the start of line `line`, with the
/// line it was opened on (quotes and comments skipped).
fn unclosed_before(text: &str, line: u32) -> Option<(char, u32)> {
    let mut open: Vec<(char, u32)> = Vec::new();
    for (n, l) in (1u32..).zip(text.lines()) {
        if n >= line {
            break;
        }
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        let mut chars = l.chars().peekable();
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some('"'), '\\') => {
                    chars.next();
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') if prev.is_whitespace() || "[{,:".contains(prev) => {
                    quote = Some(c);
                }
                (None, '#') if prev.is_whitespace() => break,
                (None, '[' | '{') => open.push((c, n)),
                (None, ']' | '}') => {
                    open.pop();
                }
                _ => {}
            }
            prev = c;
        }
    }
    open.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unclosed_bracket_is_reported_where_it_opens() {
        let text = "listen: [127.0.0.1:53\nupstreams: [9.9.9.9]\n";
        let (line, message) = locate(text, 2, "illegal placement of ':' indicator");
        assert_eq!(line, 1);
        assert!(message.starts_with("`[` is not closed"), "{message}");
    }

    #[test]
    fn brackets_in_quotes_and_comments_do_not_count() {
        let text = "a: \"[x\" # [y\nb: '{z'\nc: [1, 2]\nd: e\n";
        assert_eq!(unclosed_before(text, 4), None);
        assert_eq!(locate(text, 4, "x"), (4, "x".to_owned()));
    }

    #[test]
    fn a_tab_is_reported_on_its_own_line() {
        let text = "upstreams:\n  - 9.9.9.9\n\t- 1.1.1.1\n";
        let (line, message) = locate(text, 2, "while scanning a plain scalar, found a tab");
        assert_eq!(line, 3);
        assert!(message.contains("replace the tab"), "{message}");
    }
}
