//! Chat messages: any text a person could type, line breaks included, but no control
//! character (it could drive a terminal that shows a log) and no bidirectional control (it
//! could make a message read differently from what it says).

use super::chars::{Kind, Offending};

/// The longest chat message, in characters (Unicode scalar values).
pub const MAX_CHAT_CHARS: usize = 2000;

/// Why a chat message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// Empty, or too long.
    #[error("a chat message is 1 to {MAX_CHAT_CHARS} characters; this one has {0}")]
    Length(usize),
    /// A character no message may carry.
    #[error("a chat message may not contain {0} (line breaks and tabs are fine)")]
    Refused(Offending),
    /// Nothing in it can be seen.
    #[error(
        "a chat message needs at least one visible character: a letter, digit, punctuation mark or symbol"
    )]
    NothingVisible,
}

/// Checks a chat message, which is kept exactly as sent.
///
/// It is 1 to [`MAX_CHAT_CHARS`] characters with at least one letter, digit, punctuation mark
/// or symbol. It may not contain control characters other than tab, line feed and carriage
/// return, nor the bidirectional embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069). Anything else is the sender's business: the invisible bidirectional marks
/// (LRM, RLM, ALM) and zero-width characters that right-to-left and complex scripts use are
/// allowed.
pub fn check_chat_text(text: &str) -> Result<(), ChatError> {
    let length = text.chars().count();
    if !(1..=MAX_CHAT_CHARS).contains(&length) {
        return Err(ChatError::Length(length));
    }
    let mut visible = false;
    for ch in text.chars() {
        match Kind::of(ch) {
            Kind::Visible => visible = true,
            Kind::Control if matches!(ch, '\t' | '\n' | '\r') => {}
            kind @ (Kind::Control | Kind::BidiFormatting) => {
                return Err(ChatError::Refused(Offending { ch, kind }));
            }
            _ => {}
        }
    }
    if visible {
        Ok(())
    } else {
        Err(ChatError::NothingVisible)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_messages_pass_as_they_are() {
        for text in [
            "hi",
            "  two\nlines  ",
            "tab\tseparated",
            "windows\r\nline",
            "مرحبا بالجميع",
            "שלום, עולם!",
            "mixed \u{200F}עברית\u{200E} text",
            "👩\u{200D}💻",
            "می\u{200C}خواهم",
            "zero\u{200B}width",
            "…",
        ] {
            assert_eq!(check_chat_text(text), Ok(()), "{text:?}");
        }
        assert_eq!(check_chat_text(&"é".repeat(MAX_CHAT_CHARS)), Ok(()));
    }

    #[test]
    fn empty_long_and_blank_messages_are_refused() {
        assert_eq!(check_chat_text(""), Err(ChatError::Length(0)));
        assert_eq!(
            check_chat_text(&"é".repeat(MAX_CHAT_CHARS + 1)),
            Err(ChatError::Length(MAX_CHAT_CHARS + 1))
        );
        for text in [
            " \n\t ",
            "\u{200B}",
            "\u{3164}\u{3164}",
            "\u{2800}",
            "\u{FEFF} ",
        ] {
            assert_eq!(
                check_chat_text(text),
                Err(ChatError::NothingVisible),
                "{text:?}"
            );
        }
    }

    #[test]
    fn control_and_bidirectional_controls_are_refused() {
        for ch in [
            '\0', '\u{7}', '\u{8}', '\u{B}', '\u{C}', '\u{1B}', '\u{7F}', '\u{85}', '\u{9B}',
        ]
        .into_iter()
        .chain('\u{202A}'..='\u{202E}')
        .chain('\u{2066}'..='\u{2069}')
        {
            assert_eq!(
                check_chat_text(&format!("hello {ch} there")),
                Err(ChatError::Refused(Offending::new(ch))),
                "U+{:04X}",
                u32::from(ch)
            );
        }
        assert_eq!(
            check_chat_text("a\0b").unwrap_err().to_string(),
            "a chat message may not contain U+0000, a control character (line breaks and tabs are fine)"
        );
    }
}
