//! What kind of character each one is, as far as the rules on names and chat care, from the
//! Unicode Character Database as ICU4X compiles it (`icu_properties`).

use std::fmt;

use icu_properties::props::{
    BidiClass, BidiControl, DefaultIgnorableCodePoint, GeneralCategory, GeneralCategoryGroup,
};
use icu_properties::{CodePointMapData, CodePointSetData};

/// What a character is, for the text rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Something to see: a letter, digit, punctuation mark or symbol.
    Visible,
    /// A space between words (general category Zs).
    Space,
    /// A line or paragraph separator (U+2028, U+2029).
    LineBreak,
    /// A control character (general category Cc): NUL, escape, tab, line feed...
    Control,
    /// A bidirectional embedding, override or isolate, or the end of one (U+202A–U+202E,
    /// U+2066–U+2069): it reorders the text around it.
    BidiFormatting,
    /// An implicit bidirectional mark (LRM, RLM, ALM): invisible, it only sets the direction of
    /// the neutral characters next to it.
    BidiMark,
    /// The zero-width joiner or non-joiner (U+200D, U+200C), which emoji sequences and scripts
    /// such as Persian and the Indic ones need between two characters.
    Joiner,
    /// A combining mark (general category M), variation selectors included: it changes the
    /// character before it.
    Mark,
    /// A default-ignorable code point, shown as nothing: zero-width space, byte order mark,
    /// word joiner, soft hyphen, the Hangul fillers, tag characters...
    Invisible,
    /// Any other formatting character (general category Cf), such as the Arabic number signs.
    Format,
    /// A symbol that is drawn as blank space but is not white space.
    Blank,
    /// A private-use character: every font draws it differently, or not at all.
    PrivateUse,
    /// A code point Unicode has not assigned (as of the server's tables), noncharacters
    /// included.
    Unassigned,
}

/// Symbols that are drawn as blank space without being white space or default-ignorable:
/// U+2800 BRAILLE PATTERN BLANK and U+1D159 MUSICAL SYMBOL NULL NOTEHEAD. Unicode has no
/// property for "looks empty"; these two are the ones used to fake an empty name.
const BLANKS: [char; 2] = ['\u{2800}', '\u{1D159}'];

impl Kind {
    /// The kind of `ch`.
    pub fn of(ch: char) -> Kind {
        let category = CodePointMapData::<GeneralCategory>::new().get(ch);
        if category == GeneralCategory::Control {
            return Kind::Control;
        }
        if CodePointSetData::new::<BidiControl>().contains(ch) {
            let class = CodePointMapData::<BidiClass>::new().get(ch);
            return if matches!(
                class,
                BidiClass::LeftToRight | BidiClass::RightToLeft | BidiClass::ArabicLetter
            ) {
                Kind::BidiMark
            } else {
                Kind::BidiFormatting
            };
        }
        if matches!(ch, '\u{200C}' | '\u{200D}') {
            return Kind::Joiner;
        }
        // Before the default-ignorables, which include the variation selectors that follow
        // an emoji (❤️ is U+2764 U+FE0F).
        if GeneralCategoryGroup::Mark.contains(category) {
            return Kind::Mark;
        }
        if CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(ch) {
            return Kind::Invisible;
        }
        match category {
            GeneralCategory::SpaceSeparator => Kind::Space,
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => Kind::LineBreak,
            GeneralCategory::Format => Kind::Format,
            GeneralCategory::PrivateUse => Kind::PrivateUse,
            GeneralCategory::Unassigned | GeneralCategory::Surrogate => Kind::Unassigned,
            _ if BLANKS.contains(&ch) => Kind::Blank,
            _ => Kind::Visible,
        }
    }

    /// What it is, in words.
    fn describe(self) -> &'static str {
        match self {
            Kind::Visible => "a visible character",
            Kind::Space => "white space",
            Kind::LineBreak => "a line or paragraph separator",
            Kind::Control => "a control character",
            Kind::BidiFormatting => "a bidirectional control, which reorders the text around it",
            Kind::BidiMark => "an invisible bidirectional mark",
            Kind::Joiner => "a zero-width joiner or non-joiner",
            Kind::Mark => "a combining mark",
            Kind::Invisible => "an invisible character",
            Kind::Format => "a formatting character",
            Kind::Blank => "a symbol drawn as blank space",
            Kind::PrivateUse => "a private-use character, which every font draws differently",
            Kind::Unassigned => "a code point Unicode has not assigned",
        }
    }
}

/// A character a rule refused, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offending {
    /// The character.
    pub ch: char,
    /// Its kind.
    pub kind: Kind,
}

impl Offending {
    /// `ch`, with its kind.
    pub fn new(ch: char) -> Self {
        Self {
            ch,
            kind: Kind::of(ch),
        }
    }
}

impl fmt::Display for Offending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U+{:04X}, {}", u32::from(self.ch), self.kind.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_character() {
        let cases = [
            ('a', Kind::Visible),
            ('ع', Kind::Visible),
            ('א', Kind::Visible),
            ('字', Kind::Visible),
            ('7', Kind::Visible),
            ('.', Kind::Visible),
            ('😀', Kind::Visible),
            ('\u{1F3FD}', Kind::Visible),
            (' ', Kind::Space),
            ('\u{A0}', Kind::Space),
            ('\u{3000}', Kind::Space),
            ('\u{2028}', Kind::LineBreak),
            ('\u{2029}', Kind::LineBreak),
            ('\0', Kind::Control),
            ('\t', Kind::Control),
            ('\n', Kind::Control),
            ('\u{1B}', Kind::Control),
            ('\u{85}', Kind::Control),
            ('\u{9B}', Kind::Control),
            ('\u{200E}', Kind::BidiMark),
            ('\u{200F}', Kind::BidiMark),
            ('\u{61C}', Kind::BidiMark),
            ('\u{200C}', Kind::Joiner),
            ('\u{200D}', Kind::Joiner),
            ('\u{301}', Kind::Mark),
            ('\u{FE0F}', Kind::Mark),
            ('\u{20E3}', Kind::Mark),
            ('\u{200B}', Kind::Invisible),
            ('\u{FEFF}', Kind::Invisible),
            ('\u{2060}', Kind::Invisible),
            ('\u{AD}', Kind::Invisible),
            ('\u{3164}', Kind::Invisible),
            ('\u{115F}', Kind::Invisible),
            ('\u{1160}', Kind::Invisible),
            ('\u{FFA0}', Kind::Invisible),
            ('\u{E0041}', Kind::Invisible),
            ('\u{180E}', Kind::Invisible),
            ('\u{600}', Kind::Format),
            ('\u{FFF9}', Kind::Format),
            ('\u{2800}', Kind::Blank),
            ('\u{1D159}', Kind::Blank),
            ('\u{E000}', Kind::PrivateUse),
            ('\u{10FFFD}', Kind::PrivateUse),
            ('\u{FFFF}', Kind::Unassigned),
            ('\u{FDD0}', Kind::Unassigned),
            ('\u{E0080}', Kind::Invisible),
            ('\u{50000}', Kind::Unassigned),
        ];
        for (ch, kind) in cases {
            assert_eq!(Kind::of(ch), kind, "U+{:04X}", u32::from(ch));
        }
        for ch in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(
                Kind::of(ch),
                Kind::BidiFormatting,
                "U+{:04X}",
                u32::from(ch)
            );
        }
    }

    #[test]
    fn an_offending_character_is_named_by_its_code_point() {
        assert_eq!(
            Offending::new('\u{202E}').to_string(),
            "U+202E, a bidirectional control, which reorders the text around it"
        );
        assert_eq!(
            Offending::new('\0').to_string(),
            "U+0000, a control character"
        );
        assert_eq!(
            Offending::new('\u{1D159}').to_string(),
            "U+1D159, a symbol drawn as blank space"
        );
    }
}
