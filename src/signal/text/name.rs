//! Display names: how a participant appears to the others, so nothing in one may hide, pad or
//! reorder it. Right-to-left scripts, emoji sequences and combining accents are names like any.

use super::chars::{Kind, Offending};

/// The longest display name, in characters (Unicode scalar values), after trimming.
pub const MAX_NAME_CHARS: usize = 64;

/// Why a display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or too long, once trimmed.
    #[error(
        "a display name is 1 to {MAX_NAME_CHARS} characters after trimming white space; this one has {0}"
    )]
    Length(usize),
    /// A character no name may carry.
    #[error("a display name may not contain {0}")]
    Refused(Offending),
    /// A combining mark with nothing to combine with: it would attach to whatever a client
    /// shows before the name.
    #[error("a display name may not start with {0}")]
    Leading(Offending),
    /// A joiner that joins nothing: it would only make the name differ invisibly.
    #[error("a display name may have {0} only between two visible characters")]
    StrayJoiner(Offending),
    /// Nothing in it can be seen.
    #[error(
        "a display name needs at least one visible character: a letter, digit, punctuation mark or symbol"
    )]
    NothingVisible,
}

/// Checks a display name and returns it trimmed of the white space around it.
///
/// Once trimmed it is 1 to [`MAX_NAME_CHARS`] characters, has at least one letter, digit,
/// punctuation mark or symbol, and does not start with a combining mark. It may contain spaces
/// and combining marks, and a zero-width joiner or non-joiner between two visible characters.
/// It may not contain control characters, line separators, bidirectional controls or marks,
/// invisible (default-ignorable) or other formatting characters, symbols drawn as blank space,
/// private-use characters, or code points Unicode has not assigned.
pub fn normalize_display_name(name: &str) -> Result<String, NameError> {
    let name = name.trim();
    let length = name.chars().count();
    if !(1..=MAX_NAME_CHARS).contains(&length) {
        return Err(NameError::Length(length));
    }
    let kinds: Vec<(char, Kind)> = name.chars().map(|ch| (ch, Kind::of(ch))).collect();
    let joins = |index: usize| {
        index
            .checked_sub(1)
            .and_then(|before| kinds.get(before))
            .zip(kinds.get(index + 1))
            .is_some_and(|((_, before), (_, after))| {
                matches!(before, Kind::Visible | Kind::Mark) && *after == Kind::Visible
            })
    };
    for (index, &(ch, kind)) in kinds.iter().enumerate() {
        match kind {
            Kind::Visible | Kind::Space => {}
            Kind::Mark if index == 0 => return Err(NameError::Leading(Offending { ch, kind })),
            Kind::Mark => {}
            Kind::Joiner if joins(index) => {}
            Kind::Joiner => return Err(NameError::StrayJoiner(Offending { ch, kind })),
            Kind::LineBreak
            | Kind::Control
            | Kind::BidiFormatting
            | Kind::BidiMark
            | Kind::Invisible
            | Kind::Format
            | Kind::Blank
            | Kind::PrivateUse
            | Kind::Unassigned => return Err(NameError::Refused(Offending { ch, kind })),
        }
    }
    if !kinds.iter().any(|(_, kind)| *kind == Kind::Visible) {
        return Err(NameError::NothingVisible);
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(name: &str) -> NameError {
        normalize_display_name(name).expect_err(name)
    }

    #[test]
    fn ordinary_names_in_any_script_are_kept() {
        for name in [
            "Ada",
            "Ada Lovelace",
            "Zoë O'Brien-Smith",
            "محمد",
            "דוד כהן",
            "Ada (עברית)",
            "山田 太郎",
            "Nguyễn Văn A",
            "می\u{200C}خواهم",
            "कृष्ण",
            "👩\u{200D}💻 Ada",
            "❤\u{FE0F}\u{200D}🔥",
            "👩🏽\u{200D}🚀",
            "1\u{FE0F}\u{20E3}",
            "e\u{301}mile",
            "🙂",
            "?",
        ] {
            assert_eq!(normalize_display_name(name).as_deref(), Ok(name), "{name}");
        }
    }

    #[test]
    fn white_space_around_is_trimmed() {
        assert_eq!(normalize_display_name("  Ada \t"), Ok("Ada".into()));
        assert_eq!(
            normalize_display_name("\u{3000}Ada\u{A0}"),
            Ok("Ada".into())
        );
    }

    #[test]
    fn length_counts_characters_after_trimming() {
        assert_eq!(normalize_display_name(&"é".repeat(64)), Ok("é".repeat(64)));
        assert_eq!(refused(&"é".repeat(65)), NameError::Length(65));
        assert_eq!(refused(""), NameError::Length(0));
        assert_eq!(refused("   "), NameError::Length(0));
    }

    #[test]
    fn names_of_nothing_visible_are_refused() {
        for name in [
            "\u{200B}",
            "\u{FEFF}",
            "\u{3164}",
            "\u{3164}\u{3164}",
            "\u{115F}\u{1160}",
            "\u{FFA0}",
            "\u{2800}",
            "\u{2060}",
            "\u{AD}",
        ] {
            assert!(
                matches!(refused(name), NameError::Refused(_)),
                "{name:?} is refused for its invisible character"
            );
        }
        assert_eq!(
            refused("\u{301}\u{301}"),
            NameError::Leading(Offending::new('\u{301}'))
        );
        assert_eq!(
            refused("\u{200D}"),
            NameError::StrayJoiner(Offending::new('\u{200D}'))
        );
        assert_eq!(refused("\u{A0} \u{2003}"), NameError::Length(0));
    }

    #[test]
    fn visible_names_padded_or_reordered_are_refused() {
        for (name, ch) in [
            ("Ada\u{200B}", '\u{200B}'),
            ("A\u{FEFF}da", '\u{FEFF}'),
            ("Ada\u{3164}", '\u{3164}'),
            ("Ada\u{2800}", '\u{2800}'),
            ("\u{202E}adA", '\u{202E}'),
            ("Ada\u{202E}nimda", '\u{202E}'),
            ("\u{2067}Ada\u{2069}", '\u{2067}'),
            ("Ada\u{200F}", '\u{200F}'),
            ("Ada\0", '\0'),
            ("Ada\nBob", '\n'),
            ("Ada\u{1B}[31m", '\u{1B}'),
            ("Ada\u{2028}Bob", '\u{2028}'),
            ("Ada\u{E000}", '\u{E000}'),
            ("Ada\u{FFFF}", '\u{FFFF}'),
            ("Ada\u{E0041}", '\u{E0041}'),
            ("\u{600}1", '\u{600}'),
        ] {
            assert_eq!(
                refused(name),
                NameError::Refused(Offending::new(ch)),
                "{name:?}"
            );
        }
        for ch in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(
                refused(&format!("Ada{ch}")),
                NameError::Refused(Offending::new(ch))
            );
        }
    }

    #[test]
    fn joiners_join_two_visible_characters_only() {
        for name in [
            "\u{200D}Ada",
            "Ada\u{200D}",
            "Ada \u{200C}Bob",
            "Ada\u{200D}\u{200D}Bob",
        ] {
            assert!(
                matches!(refused(name), NameError::StrayJoiner(_)),
                "{name:?}"
            );
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            refused("Ada\u{202E}").to_string(),
            "a display name may not contain U+202E, a bidirectional control, which reorders the text around it"
        );
        assert_eq!(
            refused(&"x".repeat(65)).to_string(),
            "a display name is 1 to 64 characters after trimming white space; this one has 65"
        );
    }
}
