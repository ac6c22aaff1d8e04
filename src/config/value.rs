//! Reading one setting's value, whichever layer it came from.
//!
//! The TOML file gives typed values (a string, an integer, an array); the environment and the
//! command line give text. Each reader here accepts both and says, in words a person setting
//! the value understands, what it wanted instead.

use std::fmt::Display;
use std::str::FromStr;

/// One setting's value as a layer gave it.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    /// A value from the TOML file.
    Toml(&'a toml::Value),
    /// Text from the environment or the command line: one item, or several for a list.
    Text(&'a [String]),
}

/// Why a value was refused, to be prefixed with the key and where it came from.
pub type Refusal = String;

impl Raw<'_> {
    /// The value as one piece of text.
    pub fn text(&self) -> Result<String, Refusal> {
        match self {
            Raw::Toml(toml::Value::String(text)) => Ok(text.clone()),
            Raw::Toml(other) => Err(format!("must be a string, not {}", a(other.type_str()))),
            Raw::Text([one]) => Ok(one.clone()),
            Raw::Text(many) => Err(format!("takes one value, got {}", many.len())),
        }
    }

    /// The value parsed from text, `what` naming what was expected ("an IP address").
    pub fn parsed<T>(&self, what: &str) -> Result<T, Refusal>
    where
        T: FromStr,
        T::Err: Display,
    {
        let text = self.text()?;
        text.trim()
            .parse()
            .map_err(|error| format!("must be {what}: `{text}` is not ({error})"))
    }

    /// A whole number within `min..=max`.
    pub fn integer(&self, min: i64, max: i64) -> Result<i64, Refusal> {
        let number = match self {
            Raw::Toml(toml::Value::Integer(number)) => *number,
            Raw::Toml(other) => {
                return Err(format!("must be an integer, not {}", a(other.type_str())));
            }
            Raw::Text(_) => {
                let text = self.text()?;
                text.trim()
                    .parse()
                    .map_err(|_| format!("must be an integer, not `{text}`"))?
            }
        };
        if number < min || number > max {
            return Err(format!("must be between {min} and {max}, not {number}"));
        }
        Ok(number)
    }

    /// `true` or `false` (the environment and flags also take `1`/`0`, `yes`/`no`).
    pub fn boolean(&self) -> Result<bool, Refusal> {
        match self {
            Raw::Toml(toml::Value::Boolean(value)) => Ok(*value),
            Raw::Toml(other) => Err(format!(
                "must be true or false, not {}",
                a(other.type_str())
            )),
            Raw::Text(_) => {
                let text = self.text()?;
                match text.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => Ok(true),
                    "false" | "0" | "no" | "off" => Ok(false),
                    _ => Err(format!("must be true or false, not `{text}`")),
                }
            }
        }
    }

    /// A list of items, each parsed from text. The TOML file gives an array of strings; the
    /// environment gives one comma-separated string; a flag may be repeated.
    pub fn list<T>(&self, what: &str) -> Result<Vec<T>, Refusal>
    where
        T: FromStr,
        T::Err: Display,
    {
        let items: Vec<String> = match self {
            Raw::Toml(toml::Value::Array(values)) => values
                .iter()
                .enumerate()
                .map(|(index, value)| match value {
                    toml::Value::String(text) => Ok(text.clone()),
                    other => Err(format!(
                        "must be an array of strings, but item {index} is {}",
                        a(other.type_str())
                    )),
                })
                .collect::<Result<_, _>>()?,
            Raw::Toml(other) => {
                return Err(format!(
                    "must be an array of strings, not {}",
                    a(other.type_str())
                ));
            }
            Raw::Text(items) => items
                .iter()
                .flat_map(|item| item.split(','))
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        items
            .iter()
            .map(|item| {
                item.trim()
                    .parse()
                    .map_err(|error| format!("must list {what}: `{item}` is not ({error})"))
            })
            .collect()
    }
}

/// "a string", "an integer", "an array".
fn a(type_name: &str) -> String {
    let article = if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {type_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml_value(text: &str) -> toml::Value {
        let table: toml::Table = toml::from_str(&format!("v = {text}")).expect("test TOML");
        table["v"].clone()
    }

    #[test]
    fn integers_come_from_toml_integers_or_text() {
        assert_eq!(Raw::Toml(&toml_value("42")).integer(1, 100), Ok(42));
        assert_eq!(Raw::Text(&["42".into()]).integer(1, 100), Ok(42));
        assert_eq!(
            Raw::Toml(&toml_value("\"42\"")).integer(1, 100),
            Err("must be an integer, not a string".into())
        );
        assert_eq!(
            Raw::Text(&["many".into()]).integer(1, 100),
            Err("must be an integer, not `many`".into())
        );
        assert_eq!(
            Raw::Toml(&toml_value("0")).integer(1, 100),
            Err("must be between 1 and 100, not 0".into())
        );
    }

    #[test]
    fn lists_come_from_arrays_commas_or_repeats() {
        let from_toml: Vec<u16> = Raw::Toml(&toml_value("[\"1\", \"2\"]"))
            .list("ports")
            .expect("list");
        assert_eq!(from_toml, vec![1, 2]);
        let from_env: Vec<u16> = Raw::Text(&["1, 2,".into()]).list("ports").expect("list");
        assert_eq!(from_env, vec![1, 2]);
        let from_flags: Vec<u16> = Raw::Text(&["1".into(), "2".into()])
            .list("ports")
            .expect("list");
        assert_eq!(from_flags, vec![1, 2]);
        let refused = Raw::Toml(&toml_value("[1]")).list::<u16>("ports");
        assert_eq!(
            refused,
            Err("must be an array of strings, but item 0 is an integer".into())
        );
    }

    #[test]
    fn booleans_accept_the_usual_spellings_as_text() {
        assert_eq!(Raw::Text(&["yes".into()]).boolean(), Ok(true));
        assert_eq!(Raw::Text(&["0".into()]).boolean(), Ok(false));
        assert_eq!(Raw::Toml(&toml_value("true")).boolean(), Ok(true));
        assert!(Raw::Toml(&toml_value("1")).boolean().is_err());
    }
}
