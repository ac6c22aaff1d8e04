//! The checks on settings that only make sense together (a TLS certificate and its key, TURN
//! URLs and their secret, at least one media transport, ...), made once, after every layer has
//! spoken, while the settings become a [`Config`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::settings::{List, Parsed, Settings};
use super::{ClusterConfig, Config, DEFAULT_CLUSTER_LEASE, TlsFiles, TurnConfig, WebhookTargets};
use crate::auth::MIN_KEY_BYTES;
use crate::client::ClientFiles;
use crate::ids::NodeId;

/// A setting refused once the layers are combined.
#[derive(Debug)]
pub struct Refused {
    /// The key to blame.
    pub key: &'static str,
    /// Why.
    pub reason: String,
    /// The key the blamed one was needed with, when the blamed one is missing.
    pub needed_by: Option<&'static str>,
}

fn refuse(key: &'static str, reason: impl Into<String>) -> Refused {
    Refused {
        key,
        reason: reason.into(),
        needed_by: None,
    }
}

/// `missing` was not set, and `present` needs it.
fn missing(missing: &'static str, present: &'static str) -> Refused {
    Refused {
        key: missing,
        reason: format!("is needed with {present}"),
        needed_by: Some(present),
    }
}

/// How long TURN credentials last unless `ice.turn_credential_ttl_secs` says otherwise.
const DEFAULT_TURN_CREDENTIAL_TTL: Duration = Duration::from_secs(24 * 3600);

fn secs(value: i64) -> Duration {
    Duration::from_secs(value.unsigned_abs())
}

fn count(value: i64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

fn small(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Checks the settings that go together and builds the configuration over the defaults.
pub fn finish(settings: Settings) -> Result<Config, Refused> {
    let mut config = Config::default();
    let Settings {
        shutdown_grace_secs,
        http,
        media,
        ice,
        auth,
        limits,
        signaling,
        webhooks,
        cluster,
        log,
    } = settings;
    if let Some(grace) = shutdown_grace_secs {
        config.shutdown_grace = secs(grace.0);
    }

    if let Some(listen) = http.listen {
        config.http.listen = listen.0;
    }
    if let Some(Parsed(internal)) = http.internal_listen {
        // Port 0 picks a free port for each listener, so only a fixed port can collide.
        if internal == config.http.listen && internal.port() != 0 {
            return Err(refuse(
                "http.internal_listen",
                format!(
                    "must differ from http.listen ({internal}): the point of it is a second \
                     address that the public one does not serve"
                ),
            ));
        }
        config.http.internal_listen = Some(internal);
    }
    config.http.tls = match (http.tls_cert, http.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }),
        (None, None) => None,
        (Some(_), None) => return Err(missing("http.tls_key", "http.tls_cert")),
        (None, Some(_)) => return Err(missing("http.tls_cert", "http.tls_key")),
    };
    if let Some(timeout) = http.header_timeout_secs {
        config.http.header_timeout = secs(timeout.0);
    }
    if let Some(timeout) = http.tls_handshake_timeout_secs {
        config.http.tls_handshake_timeout = secs(timeout.0);
    }
    match http.idle_timeout_secs {
        Some(timeout) => config.http.idle_timeout = (timeout.0 > 0).then(|| secs(timeout.0)),
        // The default never exceeds a shorter header timeout: it is only a default.
        None => {
            config.http.idle_timeout = config
                .http
                .idle_timeout
                .map(|idle| idle.min(config.http.header_timeout))
        }
    }
    if let Some(idle) = config.http.idle_timeout
        && idle > config.http.header_timeout
    {
        return Err(refuse(
            "http.idle_timeout_secs",
            format!(
                "({} s) must not exceed http.header_timeout_secs ({} s): a connection waiting \
                 for its next request waits for that request's headers, which the header \
                 timeout already bounds",
                idle.as_secs(),
                config.http.header_timeout.as_secs()
            ),
        ));
    }
    config.http.allowed_origins = http
        .allowed_origins
        .map(|List(origins)| origins)
        .unwrap_or_default();
    if let Some(dir) = http.client_dir.map(PathBuf::from) {
        if !dir.is_dir() {
            return Err(refuse(
                "http.client_dir",
                format!("must be a folder: {} is not one", dir.display()),
            ));
        }
        config.client = ClientFiles::Directory(dir);
    }

    if let Some(port) = media.udp_port {
        config.media.udp_port = port.0 as u16;
    }
    if let Some(port) = media.tcp_port {
        config.media.tcp_port = port.0 as u16;
    }
    if let Some(workers) = media.workers {
        config.media.workers = workers.0 as usize;
    }
    if let Some(percent) = media.spread_when_busy {
        config.media.spread_when_busy = percent.0 as u8;
    }
    if let Some(value) = media.tcp_streams_per_ip {
        config.media.tcp_streams_per_ip = (value.0 > 0).then(|| count(value.0));
    }
    if let Some(value) = media.max_tcp_streams {
        config.media.max_tcp_streams = (value.0 > 0).then(|| count(value.0));
    }
    if let Some(List(transports)) = media.transports {
        if transports.is_empty() {
            return Err(refuse("media.transports", "must name udp, tcp or both"));
        }
        config.media.transports = transports;
    }
    let media_ips = media.ips.map(|List(ips)| ips);
    let media_interfaces = media.interfaces.map(|List(names)| names);
    if media_ips.as_ref().is_some_and(Vec::is_empty) && media_interfaces.is_none() {
        return Err(refuse("media.ips", "must list at least one address"));
    }
    if media_ips.is_some() || media_interfaces.is_some() {
        let mut ips = media_ips.unwrap_or_default();
        for name in media_interfaces.unwrap_or_default() {
            ips.extend(interface_ips(&name).map_err(|reason| refuse("media.interfaces", reason))?);
        }
        ips.sort();
        ips.dedup();
        if ips.is_empty() {
            return Err(refuse(
                "media.interfaces",
                "gave no IPv4 address to gather on",
            ));
        }
        config.media.ips = ips;
    }
    config.media.public_ips = media.public_ips.map(|List(ips)| ips).unwrap_or_default();
    for public in &config.media.public_ips {
        if let Some(local) = public
            .local
            .filter(|local| !config.media.ips.contains(local))
        {
            return Err(refuse(
                "media.public_ips",
                format!(
                    "maps {local}, which is not a media address ({:?})",
                    config.media.ips
                ),
            ));
        }
    }

    config.ice.urls = ice.urls.map(|List(urls)| urls).unwrap_or_default();
    for url in config.ice.urls.iter() {
        check_ice_url(url, &["stun:", "stuns:"]).map_err(|reason| refuse("ice.urls", reason))?;
    }
    config.ice.turn = match (ice.turn_urls, ice.turn_secret) {
        (Some(List(urls)), Some(secret)) => {
            if urls.is_empty() {
                return Err(refuse("ice.turn_urls", "must list at least one URL"));
            }
            for url in &urls {
                check_turn_url(url).map_err(|reason| refuse("ice.turn_urls", reason))?;
            }
            if secret.is_empty() {
                return Err(refuse("ice.turn_secret", "must not be empty"));
            }
            Some(TurnConfig {
                urls,
                secret,
                credential_ttl: ice
                    .turn_credential_ttl_secs
                    .map_or(DEFAULT_TURN_CREDENTIAL_TTL, |ttl| secs(ttl.0)),
            })
        }
        (None, None) => None,
        (Some(_), None) => return Err(missing("ice.turn_secret", "ice.turn_urls")),
        (None, Some(_)) => return Err(missing("ice.turn_urls", "ice.turn_secret")),
    };

    if let Some(key) = &auth.token_key
        && key.len() < MIN_KEY_BYTES
    {
        return Err(refuse(
            "auth.token_key",
            format!(
                "must be at least {MIN_KEY_BYTES} bytes long (it has {}); \
                 `openssl rand -hex 32` makes a good one",
                key.len()
            ),
        ));
    }
    config.auth.token_key = auth.token_key;
    if let Some(lifetime) = auth.max_token_lifetime_secs {
        config.auth.max_token_lifetime = secs(lifetime.0);
    }

    let limits_config = &mut config.limits;
    if let Some(value) = limits.max_rooms {
        limits_config.max_rooms = count(value.0);
    }
    if let Some(value) = limits.max_participants_per_room {
        limits_config.max_participants_per_room = count(value.0);
    }
    if let Some(value) = limits.messages_per_second {
        limits_config.messages_per_second = small(value.0);
    }
    if let Some(value) = limits.message_burst {
        limits_config.message_burst = small(value.0);
    }
    if let Some(value) = limits.max_chat_bytes {
        limits_config.max_chat_bytes = count(value.0);
    }
    if let Some(value) = limits.connections_per_ip {
        limits_config.connections_per_ip = (value.0 > 0).then(|| count(value.0));
    }
    if let Some(value) = limits.max_connections {
        limits_config.max_connections = (value.0 > 0).then(|| count(value.0));
    }
    if let Some(value) = limits.max_unjoined_sockets {
        limits_config.max_unjoined_sockets = count(value.0);
    }
    if limits_config.message_burst < limits_config.messages_per_second {
        return Err(refuse(
            "limits.message_burst",
            format!(
                "({}) must not be below limits.messages_per_second ({})",
                limits_config.message_burst, limits_config.messages_per_second
            ),
        ));
    }

    let signaling_config = &mut config.signaling;
    for (value, setting) in [
        (
            signaling.join_timeout_secs,
            &mut signaling_config.join_timeout,
        ),
        (
            signaling.offer_timeout_secs,
            &mut signaling_config.offer_timeout,
        ),
        (
            signaling.media_timeout_secs,
            &mut signaling_config.media_timeout,
        ),
        (
            signaling.ping_interval_secs,
            &mut signaling_config.ping_interval,
        ),
        (
            signaling.ping_timeout_secs,
            &mut signaling_config.ping_timeout,
        ),
    ] {
        if let Some(value) = value {
            *setting = secs(value.0);
        }
    }
    if let Some(value) = signaling.outbox_bytes {
        signaling_config.outbox_bytes = count(value.0);
    }

    let webhooks_config = &mut config.webhooks;
    if let Some(value) = webhooks.attempts {
        webhooks_config.attempts = small(value.0);
    }
    if let Some(value) = webhooks.first_retry_ms {
        webhooks_config.first_retry = Duration::from_millis(value.0.unsigned_abs());
    }
    if let Some(value) = webhooks.timeout_secs {
        webhooks_config.timeout = secs(value.0);
    }
    if let Some(value) = webhooks.queue_events {
        webhooks_config.queue_events = count(value.0);
    }
    let urls = webhooks.urls.map(|List(urls)| urls).unwrap_or_default();
    if !urls.is_empty() {
        let urls = urls
            .iter()
            .map(|url| webhook_url(url))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| refuse("webhooks.urls", reason))?;
        let key = webhooks
            .key
            .ok_or_else(|| missing("webhooks.key", "webhooks.urls"))?;
        if key.len() < MIN_KEY_BYTES {
            return Err(refuse(
                "webhooks.key",
                format!(
                    "must be at least {MIN_KEY_BYTES} bytes long (it has {}); \
                     `openssl rand -hex 32` makes a good one",
                    key.len()
                ),
            ));
        }
        webhooks_config.targets = Some(WebhookTargets { urls, key });
    }

    config.cluster = cluster_config(cluster, config.http.listen)?;

    if let Some(json) = log.json {
        config.log.json = json;
    }
    if let Some(filter) = log.filter {
        config.log.filter = filter;
    }
    Ok(config)
}

/// The IPv4 addresses of the interface called `name`.
fn interface_ips(name: &str) -> Result<Vec<IpAddr>, String> {
    let interfaces = if_addrs::get_if_addrs()
        .map_err(|error| format!("cannot list the network interfaces: {error}"))?;
    let ips: Vec<IpAddr> = interfaces
        .iter()
        .filter(|interface| interface.name == name)
        .map(|interface| interface.ip())
        .filter(IpAddr::is_ipv4)
        .collect();
    if ips.is_empty() {
        let mut names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        return Err(format!(
            "names `{name}`, which has no IPv4 address here (interfaces: {})",
            names.join(", ")
        ));
    }
    Ok(ips)
}

/// A webhook receiver's URL: absolute, `http` or `https`, with a host.
fn webhook_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|error| {
        format!("must list URLs such as https://app.example.com/hooks: `{text}` is not ({error})")
    })?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(format!(
            "must list http:// or https:// URLs with a host: `{text}` is not one"
        ));
    }
    Ok(url)
}

/// The cluster settings: none without `cluster.redis_url`. A node that listens on every
/// address cannot tell which of them clients reach it at, so it must be told.
fn cluster_config(
    cluster: super::settings::Cluster,
    listen: SocketAddr,
) -> Result<Option<ClusterConfig>, Refused> {
    let Some(redis_url) = cluster.redis_url else {
        return Ok(None);
    };
    // Only the scheme and the host are looked at here; the URL may hold a password.
    let redis = reqwest::Url::parse(&redis_url).ok();
    if !redis
        .as_ref()
        .is_some_and(|url| url.scheme() == "redis" && url.has_host())
    {
        return Err(refuse(
            "cluster.redis_url",
            "must be a redis:// URL with a host, such as redis://127.0.0.1:6379/0",
        ));
    }
    let signaling_url = cluster
        .signaling_url
        .map(|text| {
            let url = reqwest::Url::parse(&text).map_err(|error| {
                format!(
                    "must be a URL such as wss://meet.example.com/ws: `{text}` is not ({error})"
                )
            })?;
            if !matches!(url.scheme(), "ws" | "wss") || !url.has_host() {
                return Err(format!(
                    "must be a ws:// or wss:// URL with a host: `{text}` is not one"
                ));
            }
            Ok(url)
        })
        .transpose()
        .map_err(|reason| refuse("cluster.signaling_url", reason))?;
    if signaling_url.is_none() && listen.ip().is_unspecified() {
        return Err(refuse(
            "cluster.signaling_url",
            format!(
                "is needed with cluster.redis_url while http.listen is {listen}: other nodes \
                 send clients to this URL, and a node listening on every address cannot tell \
                 which one they reach"
            ),
        ));
    }
    Ok(Some(ClusterConfig {
        redis_url,
        signaling_url,
        node_id: cluster.node_id.map_or_else(NodeId::random, |Parsed(id)| id),
        lease: cluster
            .lease_secs
            .map_or(DEFAULT_CLUSTER_LEASE, |value| secs(value.0)),
    }))
}

/// Checks that `url` starts with one of `schemes` and names a host.
fn check_ice_url(url: &str, schemes: &[&str]) -> Result<(), String> {
    let Some(rest) = schemes.iter().find_map(|scheme| url.strip_prefix(scheme)) else {
        return Err(format!(
            "must list URLs starting with {}: `{url}` does not",
            schemes.join(" or ")
        ));
    };
    if rest.is_empty() || rest.starts_with(':') || rest.starts_with('?') {
        return Err(format!("must list URLs with a host: `{url}` has none"));
    }
    Ok(())
}

/// Checks a TURN URL (RFC 7065): `turn:` or `turns:`, a host, and at most a `transport` of
/// `udp` or `tcp`. TURN over TLS (`turns:`) runs over TCP: browsers have no TURN over DTLS, so
/// `turns:...?transport=udp` would name a relay no client can use.
fn check_turn_url(url: &str) -> Result<(), String> {
    check_ice_url(url, &["turn:", "turns:"])?;
    let Some((_, query)) = url.split_once('?') else {
        return Ok(());
    };
    match query.split_once('=') {
        Some(("transport", "udp")) if url.starts_with("turns:") => Err(format!(
            "must list `turns:` URLs over TCP: TURN over TLS runs over TCP, so write \
             `?transport=tcp` or leave the transport out, not `{url}`"
        )),
        Some(("transport", "udp" | "tcp")) => Ok(()),
        _ => Err(format!(
            "must list URLs whose only query is `?transport=udp` or `?transport=tcp`, \
             not `{url}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::Bounded;

    #[test]
    fn media_needs_a_transport() {
        let mut settings = Settings::default();
        settings.media.transports = Some(List(Vec::new()));
        assert_eq!(
            finish(settings).expect_err("no transport").key,
            "media.transports"
        );
        let mut settings = Settings::default();
        settings.media.transports = Some(List(vec![crate::config::MediaTransport::Tcp]));
        settings.media.tcp_port = Some(Bounded(0));
        let config = finish(settings).expect("TCP alone");
        assert_eq!(
            config.media.transports,
            vec![crate::config::MediaTransport::Tcp]
        );
        assert!(
            config
                .media
                .addresses(crate::config::MediaTransport::Udp)
                .is_empty()
        );
    }

    #[test]
    fn turn_needs_urls_and_a_secret() {
        let mut settings = Settings::default();
        settings.ice.turn_secret = Some("s3cret".into());
        assert_eq!(finish(settings).expect_err("no URLs").key, "ice.turn_urls");

        let mut settings = Settings::default();
        settings.ice.turn_urls = Some(List(vec!["http://example.com".into()]));
        settings.ice.turn_secret = Some("s3cret".into());
        assert_eq!(finish(settings).expect_err("bad URL").key, "ice.turn_urls");
    }

    #[test]
    fn the_internal_address_must_differ_from_the_public_one() {
        let config = finish(Settings::default()).expect("defaults");
        assert_eq!(config.http.internal_listen, None);

        let mut settings = Settings::default();
        settings.http.internal_listen = Some(Parsed("0.0.0.0:8080".parse().unwrap()));
        let refused = finish(settings).expect_err("the same address twice");
        assert_eq!(refused.key, "http.internal_listen");

        let mut settings = Settings::default();
        settings.http.internal_listen = Some(Parsed("127.0.0.1:8081".parse().unwrap()));
        let config = finish(settings).expect("a second address");
        assert_eq!(
            config.http.internal_listen,
            Some("127.0.0.1:8081".parse().unwrap())
        );
    }

    #[test]
    fn short_token_keys_are_refused() {
        let mut settings = Settings::default();
        settings.auth.token_key = Some("short".into());
        assert_eq!(
            finish(settings).expect_err("short key").key,
            "auth.token_key"
        );
    }

    #[test]
    fn the_token_lifetime_cap_is_a_day_unless_set() {
        let config = finish(Settings::default()).expect("defaults");
        assert_eq!(
            config.auth.max_token_lifetime,
            crate::auth::DEFAULT_MAX_TOKEN_LIFETIME
        );
        let mut settings = Settings::default();
        settings.auth.max_token_lifetime_secs = Some(Bounded(3600));
        let config = finish(settings).expect("an hour");
        assert_eq!(config.auth.max_token_lifetime, Duration::from_secs(3600));
        let from_file = crate::config::load::from_toml(
            std::path::Path::new("switchyard.toml"),
            "[auth]\nmax_token_lifetime_secs = 10\n",
        )
        .expect_err("below a minute");
        assert!(
            from_file
                .to_string()
                .contains("`auth.max_token_lifetime_secs`"),
            "{from_file}"
        );
    }

    #[test]
    fn unknown_interfaces_are_refused() {
        let mut settings = Settings::default();
        settings.media.interfaces = Some(List(vec!["no-such-interface0".into()]));
        let refused = finish(settings).expect_err("unknown interface");
        assert_eq!(refused.key, "media.interfaces");
        assert!(refused.reason.contains("no-such-interface0"));
    }

    #[test]
    fn the_idle_timeout_fits_within_the_header_timeout() {
        let mut settings = Settings::default();
        settings.http.header_timeout_secs = Some(Bounded(4));
        settings.http.idle_timeout_secs = Some(Bounded(5));
        let refused = finish(settings).expect_err("a longer idle timeout");
        assert_eq!(refused.key, "http.idle_timeout_secs");
        assert!(refused.reason.contains("http.header_timeout_secs (4 s)"));

        let mut settings = Settings::default();
        settings.http.header_timeout_secs = Some(Bounded(4));
        let config = finish(settings).expect("the default idle timeout gives way");
        assert_eq!(config.http.idle_timeout, Some(Duration::from_secs(4)));

        let mut settings = Settings::default();
        settings.http.header_timeout_secs = Some(Bounded(4));
        settings.http.idle_timeout_secs = Some(Bounded(0));
        let config = finish(settings).expect("no keep-alive at all");
        assert_eq!(config.http.idle_timeout, None);
        assert_eq!(config.http.header_timeout, Duration::from_secs(4));
    }

    #[test]
    fn zero_turns_a_connection_cap_off() {
        let mut settings = Settings::default();
        settings.limits.connections_per_ip = Some(Bounded(0));
        settings.limits.max_connections = Some(Bounded(0));
        let config = finish(settings).expect("no caps");
        assert_eq!(config.limits.connections_per_ip, None);
        assert_eq!(config.limits.max_connections, None);
        let mut settings = Settings::default();
        settings.limits.connections_per_ip = Some(Bounded(3));
        settings.limits.max_connections = Some(Bounded(50));
        let config = finish(settings).expect("caps");
        assert_eq!(config.limits.connections_per_ip, Some(3));
        assert_eq!(config.limits.max_connections, Some(50));
    }

    #[test]
    fn zero_turns_an_ice_tcp_cap_off_or_back_to_its_share() {
        let config = finish(Settings::default()).expect("defaults");
        assert_eq!(
            config.media.tcp_streams_per_ip,
            Some(crate::config::DEFAULT_TCP_STREAMS_PER_IP)
        );
        assert_eq!(config.media.max_tcp_streams, None);
        let mut settings = Settings::default();
        settings.media.tcp_streams_per_ip = Some(Bounded(0));
        settings.media.max_tcp_streams = Some(Bounded(0));
        let config = finish(settings).expect("no per-address cap, the share in all");
        assert_eq!(config.media.tcp_streams_per_ip, None);
        assert_eq!(config.media.max_tcp_streams, None);
        let mut settings = Settings::default();
        settings.media.tcp_streams_per_ip = Some(Bounded(4));
        settings.media.max_tcp_streams = Some(Bounded(300));
        let config = finish(settings).expect("caps");
        assert_eq!(config.media.tcp_streams_per_ip, Some(4));
        assert_eq!(config.media.max_tcp_streams, Some(300));
    }

    const WEBHOOK_KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn webhook_urls_need_a_key_of_32_bytes() {
        let config = finish(Settings::default()).expect("defaults");
        assert!(config.webhooks.targets.is_none(), "no events by default");

        let mut settings = Settings::default();
        settings.webhooks.urls = Some(List(vec!["https://app.example.com/hooks".into()]));
        let refused = finish(settings).expect_err("URLs but no key");
        assert_eq!(
            (refused.key, refused.needed_by),
            ("webhooks.key", Some("webhooks.urls"))
        );

        let mut settings = Settings::default();
        settings.webhooks.urls = Some(List(vec!["https://app.example.com/hooks".into()]));
        settings.webhooks.key = Some("short".into());
        assert_eq!(finish(settings).expect_err("short").key, "webhooks.key");

        let mut settings = Settings::default();
        settings.webhooks.urls = Some(List(vec![
            "https://app.example.com/hooks".into(),
            "http://127.0.0.1:9000/".into(),
        ]));
        settings.webhooks.key = Some(WEBHOOK_KEY.into());
        settings.webhooks.attempts = Some(Bounded(3));
        settings.webhooks.first_retry_ms = Some(Bounded(250));
        let config = finish(settings).expect("two receivers");
        let targets = config.webhooks.targets.expect("targets");
        assert_eq!(targets.urls.len(), 2);
        assert_eq!(targets.urls[1].port(), Some(9000));
        assert_eq!(config.webhooks.attempts, 3);
        assert_eq!(config.webhooks.first_retry, Duration::from_millis(250));

        let mut settings = Settings::default();
        settings.webhooks.key = Some("short, but nothing is sent".into());
        assert!(
            finish(settings)
                .expect("a key alone")
                .webhooks
                .targets
                .is_none()
        );
    }

    #[test]
    fn a_cluster_needs_a_redis_url_and_a_signaling_url_it_can_give_out() {
        assert!(
            finish(Settings::default())
                .expect("defaults")
                .cluster
                .is_none()
        );

        // Listening on every address, the node cannot tell which one clients reach.
        let mut settings = Settings::default();
        settings.cluster.redis_url = Some("redis://10.0.0.5:6379/0".into());
        let refused = finish(settings).expect_err("no signaling URL");
        assert_eq!(refused.key, "cluster.signaling_url");

        let mut settings = Settings::default();
        settings.http.listen = Some(Parsed("127.0.0.1:8080".parse().expect("address")));
        settings.cluster.redis_url = Some("redis://:secret@10.0.0.5:6379/0".into());
        let cluster = finish(settings)
            .expect("a loopback node")
            .cluster
            .expect("a cluster");
        assert_eq!(cluster.signaling_url, None, "taken from the bound address");
        assert_eq!(cluster.lease, DEFAULT_CLUSTER_LEASE);
        assert!(cluster.node_id.as_str().starts_with("node-"));
        assert!(
            !format!("{cluster:?}").contains("secret"),
            "the password stays out of logs"
        );

        let mut settings = Settings::default();
        settings.cluster.redis_url = Some("redis://redis:6379".into());
        settings.cluster.signaling_url = Some("wss://meet.example.com/node/1/ws".into());
        settings.cluster.node_id = Some(Parsed("node-1".parse().expect("an id")));
        settings.cluster.lease_secs = Some(Bounded(9));
        let cluster = finish(settings)
            .expect("a node")
            .cluster
            .expect("a cluster");
        assert_eq!(cluster.node_id.as_str(), "node-1");
        assert_eq!(cluster.lease, Duration::from_secs(9));

        for (key, url, signaling) in [
            ("cluster.redis_url", "http://10.0.0.5:6379", "ws://a/ws"),
            ("cluster.redis_url", "10.0.0.5:6379", "ws://a/ws"),
            (
                "cluster.signaling_url",
                "redis://r",
                "https://meet.example.com/ws",
            ),
            ("cluster.signaling_url", "redis://r", "meet.example.com/ws"),
        ] {
            let mut settings = Settings::default();
            settings.cluster.redis_url = Some(url.into());
            settings.cluster.signaling_url = Some(signaling.into());
            assert_eq!(
                finish(settings).expect_err(url).key,
                key,
                "{url} {signaling}"
            );
        }
        assert!("node 1".parse::<NodeId>().is_err());
        assert!("".parse::<NodeId>().is_err());
        assert!("x".repeat(65).parse::<NodeId>().is_err());
    }

    #[test]
    fn webhook_urls_are_absolute_http() {
        for url in [
            "ftp://example.com/x",
            "app.example.com/hooks",
            "file:///tmp/x",
        ] {
            let mut settings = Settings::default();
            settings.webhooks.urls = Some(List(vec![url.into()]));
            settings.webhooks.key = Some(WEBHOOK_KEY.into());
            let refused = finish(settings).expect_err(url);
            assert_eq!(refused.key, "webhooks.urls", "{url}");
            assert!(refused.reason.contains(url), "{}", refused.reason);
        }
    }

    #[test]
    fn ice_urls_are_checked() {
        assert!(check_ice_url("stun:stun.example.com:3478", &["stun:"]).is_ok());
        assert!(check_ice_url("stun:", &["stun:"]).is_err());
        assert!(check_ice_url("turn:example.com", &["stun:"]).is_err());
    }

    #[test]
    fn turn_urls_may_use_tls_over_tcp() {
        for url in [
            "turn:turn.example.org",
            "turn:turn.example.org:3478?transport=udp",
            "turn:turn.example.org:3478?transport=tcp",
            "turns:turn.example.org",
            "turns:turn.example.org:443?transport=tcp",
        ] {
            assert_eq!(check_turn_url(url), Ok(()), "{url}");
        }
        for url in [
            "turns:turn.example.org:443?transport=udp",
            "turn:turn.example.org?transport=sctp",
            "turn:turn.example.org?transport=tcp&x=1",
            "turn:turn.example.org?",
            "turns:",
            "stun:turn.example.org",
        ] {
            assert!(check_turn_url(url).is_err(), "{url}");
        }
    }
}
