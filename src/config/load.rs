//! Loading the configuration with `figment`: defaults, then the TOML file, then the
//! environment, then flags, each overriding the one before key by key.
//!
//! A value that does not read, a key the file should not have, or a pair that does not fit
//! together stops the server at start with a message naming the key and where it came from:
//! figment remembers which layer gave each value, and the key table names its variable and
//! flag.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};
use figment::error::{Actual, Kind as ErrorKind};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::Config;
use super::check::{self, Refused};
use super::keys::{self, KEYS, Key, Kind};
use super::settings::Settings;

/// The flag naming the TOML file.
pub const CONFIG_FLAG: &str = "config";

/// The names figment knows the text layers by.
const ENVIRONMENT: &str = "environment";
const FLAGS: &str = "flags";

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
    #[error("`{key}`{} {reason}", origin.as_ref().map(|origin| format!(" {origin}")).unwrap_or_default())]
    Invalid {
        /// The key.
        key: String,
        /// Where the value came from; `None` for a key that was needed but not set.
        origin: Option<Origin>,
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
    match key.kind {
        Kind::Text | Kind::Integer => arg.action(ArgAction::Set),
        Kind::List => arg.action(ArgAction::Append),
        Kind::Switch => arg
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
        Some("signaling") => "Signaling sessions [signaling]",
        Some("webhooks") => "Webhooks [webhooks]",
        Some("cluster") => "Several nodes [cluster]",
        Some("log") => "Logging [log]",
        _ => "Server",
    }
}

/// Builds the configuration from parsed command-line arguments (which carry the environment
/// too, through [`args`]).
pub fn from_matches(matches: &ArgMatches) -> Result<Config, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = matches.get_one::<String>(CONFIG_FLAG) {
        let path = Path::new(path);
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        figment = figment.merge(file_layer(path, &text)?);
    }
    let figment = figment
        .merge(text_layer(matches, ValueSource::EnvVariable, ENVIRONMENT))
        .merge(text_layer(matches, ValueSource::CommandLine, FLAGS));
    build(&figment)
}

/// Builds the configuration from a TOML file's text alone, over the defaults.
pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
    build(&Figment::from(file_layer(path, text)?))
}

fn build(figment: &Figment) -> Result<Config, ConfigError> {
    let settings: Settings = figment.extract().map_err(refused_value)?;
    check::finish(settings).map_err(|refused| refused_pair(figment, refused))
}

/// One layer of settings, known to figment by its name (and file).
struct Layer {
    metadata: Metadata,
    values: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// The TOML file's settings, as typed as the file writes them.
fn file_layer(path: &Path, text: &str) -> Result<Layer, ConfigError> {
    let syntax = |message: String| ConfigError::Syntax {
        path: path.to_owned(),
        message,
    };
    let table: toml::Table =
        toml::from_str(text).map_err(|error| syntax(error.message().to_owned()))?;
    let values = Value::serialize(table)
        .ok()
        .and_then(Value::into_dict)
        .ok_or_else(|| syntax("it does not read as a table".to_owned()))?;
    Ok(Layer {
        metadata: Metadata::named("TOML file").source(path),
        values,
    })
}

/// The settings the environment or the command line gave, each as text made into the kind of
/// value its key takes, when it reads as one (serde refuses it otherwise, naming the key).
fn text_layer(matches: &ArgMatches, source: ValueSource, name: &'static str) -> Layer {
    let mut values = Dict::new();
    for key in KEYS {
        if matches.value_source(key.path) != Some(source) {
            continue;
        }
        let texts: Vec<&String> = matches
            .get_many::<String>(key.path)
            .map(Iterator::collect)
            .unwrap_or_default();
        let value = match (key.kind, texts.as_slice()) {
            (Kind::List, _) => Value::from(
                texts
                    .iter()
                    .flat_map(|text| text.split(','))
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            ),
            (Kind::Integer, [text]) => match text.trim().parse::<i64>() {
                Ok(number) => Value::from(number),
                Err(_) => Value::from(text.to_string()),
            },
            (Kind::Switch, [text]) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Value::from(true),
                "false" | "0" | "no" | "off" => Value::from(false),
                _ => Value::from(text.to_string()),
            },
            (_, [text]) => Value::from(text.to_string()),
            _ => continue,
        };
        insert(&mut values, key, value);
    }
    Layer {
        metadata: Metadata::named(name),
        values,
    }
}

/// Puts `value` at `key`'s place: under its section, if it has one.
fn insert(values: &mut Dict, key: &Key, value: Value) {
    match key.path.split_once('.') {
        Some((section, name)) => {
            let section = values
                .entry(section.to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, section) = section {
                section.insert(name.to_owned(), value);
            }
        }
        None => {
            values.insert(key.path.to_owned(), value);
        }
    }
}

/// Where figment says the value of `key` came from.
fn origin(metadata: Option<&Metadata>, key: &str) -> Option<Origin> {
    let metadata = metadata?;
    if let Some(path) = metadata
        .source
        .as_ref()
        .and_then(|source| source.file_path())
    {
        return Some(Origin::File(path.to_owned()));
    }
    let key = keys::find(key)?;
    match metadata.name.as_ref() {
        ENVIRONMENT => Some(Origin::Environment(key.env())),
        FLAGS => Some(Origin::Flag(key.flag)),
        _ => None,
    }
}

/// A value serde refused, in the words of the key table.
fn refused_value(error: figment::Error) -> ConfigError {
    // The key: the error's path, less any list index below it.
    let path = error.path.join(".");
    let key = KEYS
        .iter()
        .map(|key| key.path)
        .find(|known| path == *known || path.starts_with(&format!("{known}.")))
        .map_or(path.clone(), str::to_owned);
    let origin = origin(error.metadata.as_ref(), &key);
    let from_text = matches!(origin, Some(Origin::Environment(_) | Origin::Flag(_)));
    let reason = match &error.kind {
        ErrorKind::UnknownField(..) => {
            return ConfigError::UnknownKey {
                hint: suggestion(&key),
                origin: origin.unwrap_or_else(|| Origin::File(PathBuf::new())),
                key,
            };
        }
        ErrorKind::InvalidType(actual, expected) => {
            let expected = match expected.as_str() {
                "a boolean" => "true or false",
                other => other,
            };
            format!("must be {expected}, not {}", described(actual, from_text))
        }
        ErrorKind::Message(message) => message.clone(),
        other => other.to_string(),
    };
    ConfigError::Invalid {
        key,
        origin,
        reason,
    }
}

/// "a string", "an integer", or the text itself when it came as text.
fn described(actual: &Actual, from_text: bool) -> String {
    match actual {
        Actual::Str(text) if from_text => format!("`{text}`"),
        Actual::Str(_) => "a string".to_owned(),
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer".to_owned(),
        Actual::Float(_) => "a float".to_owned(),
        Actual::Bool(_) => "a boolean".to_owned(),
        Actual::Seq => "an array".to_owned(),
        Actual::Map => "a table".to_owned(),
        other => other.to_string(),
    }
}

/// A pair that does not fit, blaming the key the check named.
fn refused_pair(figment: &Figment, refused: Refused) -> ConfigError {
    let origin = origin(figment.find_metadata(refused.key), refused.key);
    let mut reason = refused.reason;
    if origin.is_none()
        && let Some(partner) = refused.needed_by
        && let Some(set) = origin_of(figment, partner)
    {
        reason = format!("{reason}, which is set {set}");
    }
    ConfigError::Invalid {
        key: refused.key.to_owned(),
        origin,
        reason,
    }
}

fn origin_of(figment: &Figment, key: &str) -> Option<Origin> {
    origin(figment.find_metadata(key), key)
}

/// "; did you mean `limits.max_rooms`?" when a known key shares the unknown one's last part or
/// differs from it by a letter or two.
fn suggestion(path: &str) -> String {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    KEYS.iter()
        .map(|key| key.path)
        .find(|known| {
            let known_leaf = known.rsplit('.').next().unwrap_or(known);
            known_leaf == leaf || strsim::levenshtein(known, path) <= 2
        })
        .map(|known| format!("; did you mean `{known}`?"))
        .unwrap_or_default()
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
    fn the_signaling_section_sets_the_session_deadlines() {
        let config = load(
            "[signaling]\njoin_timeout_secs = 5\noffer_timeout_secs = 6\n\
             media_timeout_secs = 7\nping_interval_secs = 8\nping_timeout_secs = 9\n\
             outbox_bytes = 65536\n",
        )
        .expect("valid file");
        let signaling = &config.signaling;
        assert_eq!(
            [
                signaling.join_timeout,
                signaling.offer_timeout,
                signaling.media_timeout,
                signaling.ping_interval,
                signaling.ping_timeout,
            ],
            [5, 6, 7, 8, 9].map(std::time::Duration::from_secs)
        );
        assert_eq!(signaling.outbox_bytes, 65_536);
        let error = load("[signaling]\nping_timeout_secs = 0\n").expect_err("no time at all");
        assert_eq!(
            error.to_string(),
            "`signaling.ping_timeout_secs` in switchyard.toml must be between 1 and 3600, not 0"
        );
    }

    #[test]
    fn errors_name_the_key_and_the_file() {
        let error = load("[limits]\nmax_rooms = \"many\"\n").expect_err("string for integer");
        assert_eq!(
            error.to_string(),
            "`limits.max_rooms` in switchyard.toml must be an integer, not a string"
        );
        let error = load("[media]\nips = [\"localhost\"]\n").expect_err("not an address");
        assert_eq!(
            error.to_string(),
            "`media.ips` in switchyard.toml must list IP addresses such as 192.0.2.10: \
             `localhost` is not (invalid IP address syntax)"
        );
        let error = load("[media]\nips = [1]\n").expect_err("not a string");
        assert_eq!(
            error.to_string(),
            "`media.ips` in switchyard.toml must be an array of strings, not an integer"
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

    fn from_flags(flags: &[&str]) -> Result<Config, ConfigError> {
        let command = clap::Command::new("switchyard").args(args());
        let matches = command
            .try_get_matches_from(std::iter::once("switchyard").chain(flags.iter().copied()))
            .expect("arguments");
        from_matches(&matches)
    }

    #[test]
    fn flags_give_text_that_is_read_as_its_key_takes() {
        let config = from_flags(&[
            "--token-key",
            "0123456789012345678901234567890123456789",
            "--json-logs",
            "no",
            "--ice-url",
            "stun:a.example.com,stun:b.example.com",
            "--ice-url",
            "stun:c.example.com",
        ])
        .expect("config");
        assert_eq!(
            config.auth.token_key.as_deref(),
            Some("0123456789012345678901234567890123456789"),
            "digits stay text for a text key"
        );
        assert!(!config.log.json);
        assert_eq!(config.ice.urls.len(), 3);
        let error = from_flags(&["--max-rooms", "many"]).expect_err("not a number");
        assert_eq!(
            error.to_string(),
            "`limits.max_rooms` from the flag --max-rooms must be an integer, not `many`"
        );
        let error = from_flags(&["--json-logs", "maybe"]).expect_err("not a switch");
        assert_eq!(
            error.to_string(),
            "`log.json` from the flag --json-logs must be true or false, not `maybe`"
        );
    }

    #[test]
    fn a_missing_partner_names_where_the_other_half_was_set() {
        let error = from_flags(&["--tls-cert", "cert.pem"]).expect_err("half a pair");
        assert_eq!(
            error.to_string(),
            "`http.tls_key` is needed with http.tls_cert, which is set from the flag --tls-cert"
        );
        let error = from_flags(&["--webhook-url", "https://app.example.com/hooks"])
            .expect_err("webhooks without a key");
        assert_eq!(
            error.to_string(),
            "`webhooks.key` is needed with webhooks.urls, which is set from the flag \
             --webhook-url"
        );
        let error = load("[ice]\nturn_secret = \"s\"\n").expect_err("no URLs");
        assert_eq!(
            error.to_string(),
            "`ice.turn_urls` is needed with ice.turn_secret, which is set in switchyard.toml"
        );
    }

    /// The keys a part of the file takes, as serde lists them when refusing an unknown one.
    fn accepted_under(section: Option<&str>) -> Vec<String> {
        let text = match section {
            Some(section) => format!("[{section}]\nno_such_key = 1\n"),
            None => "no_such_key = 1\n".to_owned(),
        };
        let figment = Figment::from(file_layer(Path::new("probe.toml"), &text).expect("TOML"));
        match figment.extract::<Settings>().map_err(|error| error.kind) {
            Err(ErrorKind::UnknownField(_, accepted)) => accepted
                .iter()
                .map(|name| match section {
                    Some(section) => format!("{section}.{name}"),
                    None => (*name).to_owned(),
                })
                .collect(),
            other => panic!("an unknown key is refused: {other:?}"),
        }
    }

    #[test]
    fn the_key_table_lists_exactly_the_keys_the_file_takes() {
        let mut accepted = Vec::new();
        for name in accepted_under(None) {
            if KEYS.iter().any(|key| key.section() == Some(name.as_str())) {
                accepted.extend(accepted_under(Some(&name)));
            } else {
                accepted.push(name);
            }
        }
        let mut listed: Vec<String> = KEYS.iter().map(|key| key.path.to_owned()).collect();
        accepted.sort();
        listed.sort();
        assert_eq!(accepted, listed);
    }

    #[test]
    fn suggestions_catch_near_misses() {
        assert_eq!(suggestion("http.lisen"), "; did you mean `http.listen`?");
        assert_eq!(suggestion("completely_else"), "");
    }
}
