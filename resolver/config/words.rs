//! The config's word enums (block mode, action, denied, log events, client
//! mode): one macro gives each its `ALL`, `as_str`, `parse` and `words`, so
//! the parser, its error message, the docs test and the answer tests all
//! iterate the same list, and a new variant cannot be forgotten by one of
//! them. Outside the query flow: read once when a config is checked.

/// Implements `ALL` (in the order the docs and error messages list them),
/// `as_str` (the config word), `parse` (its inverse) and `words` (`a, b, c`
/// for error messages) for a fieldless enum.
macro_rules! words {
    ($ty:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in the order the docs list them.
            pub const ALL: [Self; [$($word),+].len()] = [$(Self::$variant),+];

            /// The config word.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word),+
                }
            }

            /// The value a config word names.
            pub fn parse(word: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.as_str() == word)
            }

            /// Every word, for error messages: `a, b, c`.
            pub fn words() -> String {
                Self::ALL.map(Self::as_str).join(", ")
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::super::{Action, AnswerMode, ClientMode, Denied, LogEvents};

    /// Every value of `T` reads back from its word, and no two share one.
    fn round_trip<T: Copy + PartialEq + std::fmt::Debug, const N: usize>(
        all: [T; N],
        as_str: fn(T) -> &'static str,
        parse: fn(&str) -> Option<T>,
    ) {
        for v in all {
            assert_eq!(parse(as_str(v)), Some(v), "{v:?}");
        }
        let mut words: Vec<&str> = all.iter().map(|v| as_str(*v)).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), N, "one word each");
        assert_eq!(parse("no-such-word"), None);
    }

    #[test]
    fn every_config_word_reads_back_as_its_value() {
        round_trip(AnswerMode::ALL, AnswerMode::as_str, AnswerMode::parse);
        round_trip(Action::ALL, Action::as_str, Action::parse);
        round_trip(Denied::ALL, Denied::as_str, Denied::parse);
        round_trip(LogEvents::ALL, LogEvents::as_str, LogEvents::parse);
        round_trip(ClientMode::ALL, ClientMode::as_str, ClientMode::parse);
        assert_eq!(Action::words(), "block, log, allow");
    }
}
