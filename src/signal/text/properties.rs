//! Properties of the rules on names and chat over generated text: any text is judged without
//! panicking, what is accepted obeys every rule, text in any script is accepted, and one
//! hiding, reordering or control character refuses it wherever it stands.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::chars::{Kind, Offending};
use super::{
    ChatError, MAX_CHAT_CHARS, MAX_NAME_CHARS, NameError, check_chat_text, normalize_display_name,
};

/// Letters, digits, punctuation and symbols from several scripts, right-to-left ones included.
const VISIBLE: &[char] = &[
    'a', 'Z', 'é', 'ß', 'Ж', 'λ', '7', '.', '-', '\'', '(', ')', 'ع', 'ب', 'م', 'ي', 'א', 'ש', 'ל',
    '字', '山', 'カ', '한', 'क', 'ก', '😀', '🙂', '€', '+', '!',
];

/// Characters that hide, pad or reorder a name, or control a terminal, and that trimming does
/// not remove: a name may hold none of them.
const REFUSED_IN_NAMES: &[char] = &[
    '\0',
    '\u{7}',
    '\u{1B}',
    '\u{7F}',
    '\u{80}',
    '\u{9B}',
    '\u{9F}',
    '\u{202A}',
    '\u{202B}',
    '\u{202C}',
    '\u{202D}',
    '\u{202E}',
    '\u{2066}',
    '\u{2067}',
    '\u{2068}',
    '\u{2069}',
    '\u{200E}',
    '\u{200F}',
    '\u{61C}',
    '\u{200B}',
    '\u{FEFF}',
    '\u{2060}',
    '\u{AD}',
    '\u{3164}',
    '\u{115F}',
    '\u{1160}',
    '\u{FFA0}',
    '\u{2800}',
    '\u{1D159}',
    '\u{180E}',
    '\u{E0041}',
    '\u{E000}',
    '\u{FFFF}',
];

/// Characters a chat message may not hold.
const REFUSED_IN_CHAT: &[char] = &[
    '\0', '\u{7}', '\u{8}', '\u{B}', '\u{C}', '\u{1B}', '\u{7F}', '\u{85}', '\u{9B}', '\u{202A}',
    '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
];

/// Characters that show nothing by themselves.
const SHOWING_NOTHING: &[char] = &[
    ' ',
    '\u{A0}',
    '\u{3000}',
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{FEFF}',
    '\u{3164}',
    '\u{115F}',
    '\u{1160}',
    '\u{FFA0}',
    '\u{2800}',
    '\u{1D159}',
    '\u{301}',
    '\u{FE0F}',
    '\u{34F}',
    '\u{2060}',
    '\u{200E}',
    '\u{AD}',
    '\u{E0020}',
];

fn visible_text(length: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    vec(prop_oneof![4 => select(VISIBLE), 1 => Just(' ')], length)
        .prop_map(|chars| chars.into_iter().collect())
        .prop_filter("something visible at both ends", |text: &String| {
            !text.starts_with(' ') && !text.ends_with(' ')
        })
}

/// Text with a fair share of the characters the rules are about.
fn tricky_text() -> impl Strategy<Value = String> {
    vec(
        prop_oneof![
            select(VISIBLE),
            select(REFUSED_IN_NAMES),
            select(SHOWING_NOTHING),
            Just('\n'),
            Just('\t'),
            any::<char>(),
        ],
        0..80,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn insert(text: &str, at: Index, ch: char) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = at.index(chars.len() + 1);
    chars[..at]
        .iter()
        .chain([&ch])
        .chain(&chars[at..])
        .collect()
}

/// Checks everything an accepted name must be.
fn a_sound_name(input: &str, name: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(name, input.trim(), "only trimmed");
    let kinds: Vec<Kind> = name.chars().map(Kind::of).collect();
    prop_assert!((1..=MAX_NAME_CHARS).contains(&kinds.len()));
    prop_assert!(kinds.contains(&Kind::Visible));
    prop_assert_ne!(kinds[0], Kind::Mark);
    for (index, kind) in kinds.iter().enumerate() {
        match kind {
            Kind::Visible | Kind::Space | Kind::Mark => {}
            Kind::Joiner => {
                prop_assert!(matches!(kinds[index - 1], Kind::Visible | Kind::Mark));
                prop_assert_eq!(kinds[index + 1], Kind::Visible);
            }
            other => prop_assert!(false, "{:?} in an accepted name", other),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn any_name_is_judged_and_an_accepted_one_is_sound(
        input in prop_oneof![any::<String>(), tricky_text()],
    ) {
        if let Ok(name) = normalize_display_name(&input) {
            a_sound_name(&input, &name)?;
            prop_assert_eq!(normalize_display_name(&name), Ok(name.clone()), "stable");
        }
    }

    #[test]
    fn names_in_any_script_are_accepted(name in visible_text(1..=MAX_NAME_CHARS)) {
        prop_assert_eq!(normalize_display_name(&name), Ok(name.clone()));
        prop_assert_eq!(normalize_display_name(&format!(" \t{name}\u{3000}")), Ok(name));
    }

    #[test]
    fn one_hiding_or_reordering_character_refuses_a_name(
        name in visible_text(1..=MAX_NAME_CHARS - 1),
        bad in select(REFUSED_IN_NAMES),
        at in any::<Index>(),
    ) {
        prop_assert_eq!(
            normalize_display_name(&insert(&name, at, bad)),
            Err(NameError::Refused(Offending::new(bad)))
        );
    }

    #[test]
    fn a_name_showing_nothing_is_refused(
        chars in vec(select(SHOWING_NOTHING), 0..=MAX_NAME_CHARS),
    ) {
        let name: String = chars.into_iter().collect();
        prop_assert!(normalize_display_name(&name).is_err(), "{:?}", name);
    }

    #[test]
    fn any_chat_is_judged_and_an_accepted_one_is_sound(
        text in prop_oneof![any::<String>(), tricky_text()],
    ) {
        if check_chat_text(&text).is_ok() {
            let kinds: Vec<(char, Kind)> = text.chars().map(|ch| (ch, Kind::of(ch))).collect();
            prop_assert!((1..=MAX_CHAT_CHARS).contains(&kinds.len()));
            prop_assert!(kinds.iter().any(|(_, kind)| *kind == Kind::Visible));
            for (ch, kind) in kinds {
                prop_assert!(kind != Kind::BidiFormatting, "U+{:04X}", u32::from(ch));
                prop_assert!(kind != Kind::Control || matches!(ch, '\t' | '\n' | '\r'));
            }
        }
    }

    #[test]
    fn chat_keeps_line_breaks_and_tabs_and_refuses_controls(
        text in visible_text(1..=200),
        space in select(&['\n', '\t', '\r', ' ', '\u{200F}', '\u{200B}'][..]),
        bad in select(REFUSED_IN_CHAT),
        at in any::<Index>(),
        again in any::<Index>(),
    ) {
        let spaced = insert(&text, at, space);
        prop_assert_eq!(check_chat_text(&spaced), Ok(()));
        prop_assert_eq!(
            check_chat_text(&insert(&spaced, again, bad)),
            Err(ChatError::Refused(Offending::new(bad)))
        );
    }

    #[test]
    fn a_chat_showing_nothing_is_refused(
        chars in vec(prop_oneof![select(SHOWING_NOTHING), Just('\n'), Just('\t')], 1..50),
    ) {
        let text: String = chars.into_iter().collect();
        prop_assert_eq!(check_chat_text(&text), Err(ChatError::NothingVisible));
    }
}
