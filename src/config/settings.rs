//! What each key's value may be: the configuration as serde reads it from every layer at once,
//! before the checks on keys that go together ([`super::check`]).
//!
//! Every key is optional (its default applies), and a key no setting goes by is refused. The
//! value types say, in words a person setting the value understands, what they wanted instead.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::{MediaTransport, PublicIp};
use crate::http::origin::WebOrigin;
use crate::ids::NodeId;

/// Counts are bounded so that a typo (an extra zero or three) is caught, not obeyed.
pub const COUNT_MAX: i64 = 1_000_000;
const PORT_MAX: i64 = u16::MAX as i64;
const WORKERS_MAX: i64 = 256;
const SECONDS_IN_A_WEEK: i64 = 7 * 24 * 3600;
const SECONDS_IN_AN_HOUR: i64 = 3600;
const SECONDS_IN_A_YEAR: i64 = 366 * 24 * 3600;
/// The longest any one wait on an HTTP connection may be set to.
const HTTP_WAIT_MAX_SECS: i64 = 600;

/// Every key, by section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub shutdown_grace_secs: Option<Bounded<0, 60>>,
    pub http: Http,
    pub media: Media,
    pub ice: Ice,
    pub auth: Auth,
    pub limits: Limits,
    pub signaling: Signaling,
    pub webhooks: Webhooks,
    pub cluster: Cluster,
    pub log: Log,
}

/// `[http]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    pub listen: Option<Parsed<SocketAddr>>,
    pub internal_listen: Option<Parsed<SocketAddr>>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub client_dir: Option<String>,
    pub header_timeout_secs: Option<Bounded<1, HTTP_WAIT_MAX_SECS>>,
    pub idle_timeout_secs: Option<Bounded<0, HTTP_WAIT_MAX_SECS>>,
    pub tls_handshake_timeout_secs: Option<Bounded<1, HTTP_WAIT_MAX_SECS>>,
    pub allowed_origins: Option<List<WebOrigin>>,
}

/// `[media]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Media {
    pub ips: Option<List<IpAddr>>,
    pub interfaces: Option<List<String>>,
    pub public_ips: Option<List<PublicIp>>,
    pub udp_port: Option<Bounded<0, PORT_MAX>>,
    pub tcp_port: Option<Bounded<0, PORT_MAX>>,
    pub transports: Option<List<MediaTransport>>,
    pub workers: Option<Bounded<1, WORKERS_MAX>>,
    pub spread_when_busy: Option<Bounded<0, 100>>,
    pub tcp_streams_per_ip: Option<Bounded<0, COUNT_MAX>>,
    pub max_tcp_streams: Option<Bounded<0, COUNT_MAX>>,
}

/// `[ice]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ice {
    pub urls: Option<List<String>>,
    pub turn_urls: Option<List<String>>,
    pub turn_secret: Option<String>,
    pub turn_credential_ttl_secs: Option<Bounded<60, SECONDS_IN_A_WEEK>>,
}

/// `[auth]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub token_key: Option<String>,
    pub max_token_lifetime_secs: Option<Bounded<60, SECONDS_IN_A_YEAR>>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_rooms: Option<Bounded<1, COUNT_MAX>>,
    pub max_participants_per_room: Option<Bounded<1, COUNT_MAX>>,
    pub messages_per_second: Option<Bounded<1, COUNT_MAX>>,
    pub message_burst: Option<Bounded<1, COUNT_MAX>>,
    pub max_chat_bytes: Option<Bounded<1, { 60 * 1024 }>>,
    pub connections_per_ip: Option<Bounded<0, COUNT_MAX>>,
    pub max_connections: Option<Bounded<0, COUNT_MAX>>,
    pub max_unjoined_sockets: Option<Bounded<1, COUNT_MAX>>,
}

/// `[signaling]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Signaling {
    pub join_timeout_secs: Option<Bounded<1, SECONDS_IN_AN_HOUR>>,
    pub offer_timeout_secs: Option<Bounded<1, SECONDS_IN_AN_HOUR>>,
    pub media_timeout_secs: Option<Bounded<1, SECONDS_IN_AN_HOUR>>,
    pub ping_interval_secs: Option<Bounded<1, SECONDS_IN_AN_HOUR>>,
    pub ping_timeout_secs: Option<Bounded<1, SECONDS_IN_AN_HOUR>>,
    pub outbox_bytes: Option<Bounded<{ 16 * 1024 }, { 1024 * 1024 * 1024 }>>,
}

/// `[webhooks]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webhooks {
    pub urls: Option<List<String>>,
    pub key: Option<String>,
    pub attempts: Option<Bounded<1, 100>>,
    pub first_retry_ms: Option<Bounded<10, 60_000>>,
    pub timeout_secs: Option<Bounded<1, 60>>,
    pub queue_events: Option<Bounded<1, COUNT_MAX>>,
}

/// `[cluster]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    pub redis_url: Option<String>,
    pub signaling_url: Option<String>,
    pub node_id: Option<Parsed<NodeId>>,
    pub lease_secs: Option<Bounded<2, 300>>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub json: Option<bool>,
    pub filter: Option<String>,
}

/// A whole number within `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const MIN: i64, const MAX: i64>(pub i64);

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Integer<const MIN: i64, const MAX: i64>;
        impl<const MIN: i64, const MAX: i64> Visitor<'_> for Integer<MIN, MAX> {
            type Value = Bounded<MIN, MAX>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }

            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
                if (MIN..=MAX).contains(&number) {
                    Ok(Bounded(number))
                } else {
                    Err(E::custom(format!(
                        "must be between {MIN} and {MAX}, not {number}"
                    )))
                }
            }

            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
                self.visit_i64(i64::try_from(number).unwrap_or(i64::MAX))
            }
        }
        deserializer.deserialize_i64(Integer::<MIN, MAX>)
    }
}

/// What a value parsed from text is, for messages: "an IP address such as 192.0.2.10".
pub trait Described {
    /// One of them.
    const ONE: &'static str;
    /// Several of them.
    const MANY: &'static str;
}

impl Described for SocketAddr {
    const ONE: &'static str = "an address such as 0.0.0.0:8080";
    const MANY: &'static str = "addresses such as 0.0.0.0:8080";
}

impl Described for IpAddr {
    const ONE: &'static str = "an IP address such as 192.0.2.10";
    const MANY: &'static str = "IP addresses such as 192.0.2.10";
}

impl Described for PublicIp {
    const ONE: &'static str = "an IP address or a PUBLIC/LOCAL pair";
    const MANY: &'static str = "IP addresses or PUBLIC/LOCAL pairs";
}

impl Described for MediaTransport {
    const ONE: &'static str = "udp or tcp";
    const MANY: &'static str = "udp or tcp";
}

impl Described for NodeId {
    const ONE: &'static str = "a node id such as node-1";
    const MANY: &'static str = "node ids such as node-1";
}

impl Described for WebOrigin {
    const ONE: &'static str = "an origin such as https://meet.example.com";
    const MANY: &'static str = "origins such as https://meet.example.com";
}

impl Described for String {
    const ONE: &'static str = "text";
    const MANY: &'static str = "text";
}

/// A value written as a string and parsed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T>(pub T);

impl<'de, T> Deserialize<'de> for Parsed<T>
where
    T: FromStr + Described,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text<T>(PhantomData<T>);
        impl<T> Visitor<'_> for Text<T>
        where
            T: FromStr + Described,
            T::Err: fmt::Display,
        {
            type Value = Parsed<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                text.trim().parse().map(Parsed).map_err(|error| {
                    E::custom(format!("must be {}: `{text}` is not ({error})", T::ONE))
                })
            }
        }
        deserializer.deserialize_str(Text(PhantomData))
    }
}

/// A list of values, each written as a string (the environment's comma-separated text is
/// split before it gets here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<'de, T> Deserialize<'de> for List<T>
where
    T: FromStr + Described,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items<T>(PhantomData<T>);
        impl<'de, T> Visitor<'de> for Items<T>
        where
            T: FromStr + Described,
            T::Err: fmt::Display,
        {
            type Value = List<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings")
            }

            fn visit_seq<S: SeqAccess<'de>>(self, mut items: S) -> Result<Self::Value, S::Error> {
                let mut parsed = Vec::new();
                while let Some(Item(text)) = items.next_element()? {
                    let item = text.trim().parse().map_err(|error| {
                        de::Error::custom(format!(
                            "must list {}: `{text}` is not ({error})",
                            T::MANY
                        ))
                    })?;
                    parsed.push(item);
                }
                Ok(List(parsed))
            }
        }
        deserializer.deserialize_seq(Items(PhantomData))
    }
}

/// One item of a list: a string.
struct Item(String);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Item;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Item(text.to_owned()))
            }
        }
        deserializer.deserialize_str(Text)
    }
}
