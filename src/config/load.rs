//! Loading the configuration: defaults, then the TOML file, then the environment, then flags.
//!
//! Each layer overrides the one before it, key by key. A value that does not read, a key the
//! file should not have, or a pair that does not fit together stops the server at start with a
//! message naming the key and where it came from.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};

use super::Config;
use super::draft::Draft;
use super::keys::{self, KEYS, Key, Shape};
use super::value::Raw;

/// The flag naming the TOML file.
pub const CONFIG_FLAG: &str = "config";

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The TOML file at this path.
    File(PathBuf),
    /// This environment variable.
    Environment(String),
    /// This flag.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "in {}", path.display()),
            Origin::Environment(name) => write!(f, "from the environment variable {name}"),
            Origin::Flag(flag) => write!(f, "from the flag --{flag}"),
        }
    }
}

/// A configuration the server refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("the configuration file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// The file has a key no setting goes by.
    #[error("unknown key `{key}` {origin}{hint}")]
    UnknownKey {
        /// The key, with its section.
        key: String,
        /// The file.
        origin: Origin,
        /// A suggestion, if a known key is close.
        hint: String,
    },
    /// A value that is not what its key takes.
    #[error("`{key}` {origin} {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Where the value came from.
        origin: Origin,
        /// What is wrong with it.
        reason: String,
    },
}

/// The command-line arguments of every key, and `--config`, for the `switchyard` command.
pub fn args() -> Vec<Arg> {
    let mut args = vec![
        Arg::new(CONFIG_FLAG)
            .long(CONFIG_FLAG)
            .value_name("FILE")
            .env("SWITCHYARD_CONFIG")
            .help("TOML configuration file. The environment and flags override what it says.")
            .help_heading("Configuration"),
    ];
    args.extend(KEYS.iter().map(key_arg));
    args
}

fn key_arg(key: &'static Key) -> Arg {
    let arg = Arg::new(key.path)
        .long(key.flag)
        .value_name(key.value_name)
        .env(key.env())
        .hide_env_values(true)
        .help(format!("{} [file: {}]", key.help, key.path))
        .help_heading(heading(key.section()));
    match key.shape {
        Shape::One => arg.action(ArgAction::Set),
        Shape::List => arg.action(ArgAction::Append),
        Shape::Switch => arg
            .action(ArgAction::Set)
            .num_args(0..=1)
            .default_missing_value("true"),
    }
}

fn heading(section: Option<&str>) -> &'static str {
    match section {
        Some("http") => "HTTP [http]",
        Some("media") => "Media [media]",
        Some("ice") => "ICE servers for clients [ice]",
        Some("auth") => "Access [auth]",
        Some("limits") => "Limits [limits]",
        Some("log") => "Logging [log]",
        _ => "Server",
    }
}

/// Builds the configuration from parsed command-line arguments (which carry the environment
/// too, through [`args`]).
pub fn from_matches(matches: &ArgMatches) -> Result<Config, ConfigError> {
    let mut draft = Draft::default();
    if let Some(path) = matches.get_one::<String>(CONFIG_FLAG) {
        apply_file(&mut draft, Path::new(path))?;
    }
    for key in KEYS {
        let origin = match matches.value_source(key.path) {
            Some(ValueSource::CommandLine) => Origin::Flag(key.flag),
            Some(ValueSource::EnvVariable) => Origin::Environment(key.env()),
            _ => continue,
        };
        let values: Vec<String> = matches
            .get_many::<String>(key.path)
            .map(|values| values.cloned().collect())
            .unwrap_or_default();
        apply(&mut draft, key, Raw::Text(&values), origin)?;
    }
    finish(draft)
}

/// Builds the configuration from a TOML file's text alone, over the defaults.
pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let mut draft = Draft::default();
    apply_toml(&mut draft, path, text)?;
    finish(draft)
}

fn apply_file(draft: &mut Draft, path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    apply_toml(draft, path, &text)
}

fn apply_toml(draft: &mut Draft, path: &Path, text: &str) -> Result<(), ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|error| ConfigError::Syntax {
        path: path.to_owned(),
        message: error.message().to_owned(),
    })?;
    let origin = Origin::File(path.to_owned());
    for (name, value) in &table {
        match value {
            toml::Value::Table(section) if is_section(name) => {
                for (inner, value) in section {
                    let full = format!("{name}.{inner}");
                    let key = known(&full, &origin)?;
                    apply(draft, key, Raw::Toml(value), origin.clone())?;
                }
            }
            _ => {
                let key = known(name, &origin)?;
                apply(draft, key, Raw::Toml(value), origin.clone())?;
            }
        }
    }
    Ok(())
}

fn is_section(name: &str) -> bool {
    KEYS.iter().any(|key| key.section() == Some(name))
}

fn known(path: &str, origin: &Origin) -> Result<&'static Key, ConfigError> {
    keys::find(path).ok_or_else(|| ConfigError::UnknownKey {
        key: path.to_owned(),
        origin: origin.clone(),
        hint: suggestion(path),
    })
}

/// "; did you mean `limits.max_rooms`?" when a known key shares the unknown one's last part or
/// differs from it by a letter or two.
fn suggestion(path: &str) -> String {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    KEYS.iter()
        .map(|key| key.path)
        .find(|known| {
            let known_leaf = known.rsplit('.').next().unwrap_or(known);
            known_leaf == leaf || edit_distance(known, path) <= 2
        })
        .map(|known| format!("; did you mean `{known}`?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn apply(
    draft: &mut Draft,
    key: &'static Key,
    raw: Raw<'_>,
    origin: Origin,
) -> Result<(), ConfigError> {
    (key.apply)(draft, raw).map_err(|reason| ConfigError::Invalid {
        key: key.path,
        origin: origin.clone(),
        reason,
    })?;
    draft.origins.insert(key.path, origin);
    Ok(())
}

fn finish(draft: Draft) -> Result<Config, ConfigError> {
    let origins = draft.origins.clone();
    draft.finish().map_err(|refused| ConfigError::Invalid {
        key: refused.key,
        origin: origins.get(refused.key).cloned().unwrap_or(Origin::Flag(
            keys::find(refused.key).map_or("", |key| key.flag),
        )),
        reason: refused.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        from_toml(Path::new("switchyard.toml"), text)
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = load("").expect("empty file");
        assert_eq!(config.http.listen, Config::default().http.listen);
    }

    #[test]
    fn a_file_sets_keys_in_sections() {
        let config = load(
            "shutdown_grace_secs = 2\n\
             [http]\nlisten = \"127.0.0.1:9000\"\n\
             [media]\nudp_port = 50100\n\
             [limits]\nmax_rooms = 3\n",
        )
        .expect("valid file");
        assert_eq!(config.http.listen.port(), 9000);
        assert_eq!(config.limits.max_rooms, 3);
        assert_eq!(config.shutdown_grace.as_secs(), 2);
        assert_eq!(config.media.udp_port, 50_100);
    }

    #[test]
    fn errors_name_the_key_and_the_file() {
        let error = load("[limits]\nmax_rooms = \"many\"\n").expect_err("string for integer");
        assert_eq!(
            error.to_string(),
            "`limits.max_rooms` in switchyard.toml must be an integer, not a string"
        );
        let error = load("[limits]\nmax_room = 3\n").expect_err("unknown key");
        assert_eq!(
            error.to_string(),
            "unknown key `limits.max_room` in switchyard.toml; did you mean `limits.max_rooms`?"
        );
        let error = load("[media]\nudp_port = 70000\n").expect_err("port");
        assert_eq!(
            error.to_string(),
            "`media.udp_port` in switchyard.toml must be between 0 and 65535, not 70000"
        );
        let error = load("[nonsense]\nx = 1\n").expect_err("unknown section");
        assert!(error.to_string().starts_with("unknown key `nonsense`"));
        let error = load("[http\n").expect_err("syntax");
        assert!(matches!(error, ConfigError::Syntax { .. }));
    }

    #[test]
    fn flags_override_the_environment_and_the_file() {
        let file =
            std::env::temp_dir().join(format!("switchyard-test-{}.toml", std::process::id()));
        std::fs::write(&file, "[limits]\nmax_rooms = 3\nmax_chat_bytes = 100\n").expect("write");
        let command = clap::Command::new("switchyard").args(args());
        let matches = command
            .try_get_matches_from([
                "switchyard",
                "--config",
                file.to_str().expect("UTF-8 path"),
                "--max-rooms",
                "7",
                "--media-ip",
                "127.0.0.1",
                "--media-ip",
                "127.0.0.2",
                "--json-logs",
            ])
            .expect("arguments");
        let config = from_matches(&matches).expect("config");
        let _ = std::fs::remove_file(&file);
        assert_eq!(config.limits.max_rooms, 7);
        assert_eq!(config.limits.max_chat_bytes, 100);
        assert_eq!(config.media.ips.len(), 2);
        assert!(config.log.json);
    }

    #[test]
    fn suggestions_catch_near_misses() {
        assert_eq!(suggestion("http.lisen"), "; did you mean `http.listen`?");
        assert_eq!(suggestion("completely_else"), "");
    }
}
