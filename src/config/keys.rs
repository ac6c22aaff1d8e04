//! Every configuration key, once: its place in the TOML file, its flag, its environment
//! variable, its help text, and what kind of value it takes.
//!
//! The command line, the environment, `--help` and the configuration reference in
//! `docs/deployment.md` all come from this one table, so they cannot drift apart; a unit test
//! keeps it equal to the keys the file's types ([`super::settings`]) accept.

/// What a key's value is, as the environment and flags give it in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text, taken as it is.
    Text,
    /// A whole number.
    Integer,
    /// On or off: `--flag` alone means on; the environment also takes `1`/`0`, `yes`/`no`.
    Switch,
    /// A list: an array in TOML, comma-separated in the environment, a repeatable flag.
    List,
}

/// One configuration key.
#[derive(Debug)]
pub struct Key {
    /// Where it sits in the TOML file: `section.name`, or `name` at the top.
    pub path: &'static str,
    /// The long flag, without the dashes.
    pub flag: &'static str,
    /// What the value looks like, for `--help`.
    pub value_name: &'static str,
    /// What it does, and its default.
    pub help: &'static str,
    /// What kind of value it takes.
    pub kind: Kind,
}

impl Key {
    /// The environment variable: `SWITCHYARD_` and the path in capitals, dots as underscores.
    pub fn env(&self) -> String {
        format!(
            "SWITCHYARD_{}",
            self.path.replace('.', "_").to_ascii_uppercase()
        )
    }

    /// The TOML section the key belongs to, if any.
    pub fn section(&self) -> Option<&'static str> {
        self.path.split_once('.').map(|(section, _)| section)
    }
}

/// Every key, in the order `--help` and the reference list them.
pub static KEYS: &[Key] = &[
    Key {
        path: "shutdown_grace_secs",
        flag: "shutdown-grace",
        value_name: "SECS",
        help: "Seconds a graceful shutdown (SIGTERM, Ctrl-C) waits for clients to be told and \
               connections to close before it cuts them. Default 3.",
        kind: Kind::Integer,
    },
    Key {
        path: "http.listen",
        flag: "http",
        value_name: "ADDR",
        help: "Address the HTTP server (client page, WebSocket at /ws, /healthz; /metrics and \
               the room service API under /api/ too, unless http.internal_listen is set) \
               listens on. Default 0.0.0.0:8080.",
        kind: Kind::Text,
    },
    Key {
        path: "http.internal_listen",
        flag: "internal-http",
        value_name: "ADDR",
        help: "Address of a second, plain HTTP listener for operators and monitoring: when \
               set, /metrics and everything under /api/ (counts, the room service API, its \
               OpenAPI document) are served only there, and http.listen answers them with \
               404, but a participant's POST /api/rooms/{room}/invite, which browsers make; \
               /healthz answers on both. Keep it off the internet (127.0.0.1, or a \
               private network your Prometheus reaches). Default: none, and http.listen \
               serves everything.",
        kind: Kind::Text,
    },
    Key {
        path: "http.tls_cert",
        flag: "tls-cert",
        value_name: "FILE",
        help: "PEM certificate chain: serve HTTPS and WSS instead of plain HTTP. Needs \
               http.tls_key. Default: none (plain HTTP).",
        kind: Kind::Text,
    },
    Key {
        path: "http.tls_key",
        flag: "tls-key",
        value_name: "FILE",
        help: "PEM private key of http.tls_cert.",
        kind: Kind::Text,
    },
    Key {
        path: "http.client_dir",
        flag: "client-dir",
        value_name: "DIR",
        help: "Serve the browser client from this folder instead of the copy built into the \
               binary (for working on the client: edits show on reload).",
        kind: Kind::Text,
    },
    Key {
        path: "http.header_timeout_secs",
        flag: "http-header-timeout",
        value_name: "SECS",
        help: "Seconds a connection has to send a request's headers, counted from when it is \
               ready (TLS done) or its previous response ended; a connection that sends \
               nothing is closed then. Default 10.",
        kind: Kind::Integer,
    },
    Key {
        path: "http.idle_timeout_secs",
        flag: "http-idle-timeout",
        value_name: "SECS",
        help: "Seconds a kept-alive connection may wait for its next request before it is \
               closed; at most http.header_timeout_secs. 0 closes every connection after its \
               response. Default 5 (or the header timeout, if shorter).",
        kind: Kind::Integer,
    },
    Key {
        path: "http.tls_handshake_timeout_secs",
        flag: "tls-handshake-timeout",
        value_name: "SECS",
        help: "Seconds a client has to complete its TLS handshake (with http.tls_cert). \
               Default 10.",
        kind: Kind::Integer,
    },
    Key {
        path: "http.allowed_origins",
        flag: "allowed-origin",
        value_name: "ORIGIN",
        help: "Web origin (https://meet.example.com) whose pages may open the signaling \
               WebSocket, the server's own name included; repeat for several. When any is \
               set, a browser page from another origin gets 403, but for the server's own \
               address (an IP address or localhost). Default: none, and every origin may.",
        kind: Kind::List,
    },
    Key {
        path: "media.ips",
        flag: "media-ip",
        value_name: "IP",
        help: "Local IP to gather media candidates on; repeat for several. Default: every \
               IPv4 address of every interface, loopback included.",
        kind: Kind::List,
    },
    Key {
        path: "media.interfaces",
        flag: "media-interface",
        value_name: "NAME",
        help: "Network interface whose IPv4 addresses media is gathered on (eth0, ens3...); \
               repeat for several. Adds to media.ips.",
        kind: Kind::List,
    },
    Key {
        path: "media.public_ips",
        flag: "public-ip",
        value_name: "IP",
        help: "Public IP to announce instead of the local one, for a server behind 1:1 NAT \
               (a cloud instance with an elastic/floating IP). One public IP stands for every \
               local address; `PUBLIC/LOCAL` pairs map each local address to its own.",
        kind: Kind::List,
    },
    Key {
        path: "media.udp_port",
        flag: "media-udp-port",
        value_name: "PORT",
        help: "The one UDP port all media uses, on every media IP; open it in the firewall. \
               0 lets the system pick one per IP. Default: 50000.",
        kind: Kind::Integer,
    },
    Key {
        path: "media.tcp_port",
        flag: "media-tcp-port",
        value_name: "PORT",
        help: "The one TCP port ICE over TCP listens on, on every media IP, for clients whose \
               network blocks UDP. 0 lets the system pick one per IP. Default: 50000.",
        kind: Kind::Integer,
    },
    Key {
        path: "media.transports",
        flag: "media-transport",
        value_name: "udp|tcp",
        help: "How media may reach the server: udp, tcp (ICE over TCP, tried after UDP), or \
               both; repeat for several. Default: both.",
        kind: Kind::List,
    },
    Key {
        path: "media.workers",
        flag: "media-workers",
        value_name: "N",
        help: "Media worker threads; each owns a share of the connections. Default: one per \
               core.",
        kind: Kind::Integer,
    },
    Key {
        path: "media.spread_when_busy",
        flag: "media-spread-when-busy",
        value_name: "PERCENT",
        help: "A room's connections share one media worker until that worker is this busy \
               (percent of a core its thread used over the last second); then new ones go to \
               the least busy worker. 0 spreads every connection. Default: 75.",
        kind: Kind::Integer,
    },
    Key {
        path: "media.tcp_streams_per_ip",
        flag: "media-tcp-streams-per-ip",
        value_name: "COUNT",
        help: "ICE-TCP streams one IP address may hold open at once on media.tcp_port; IPv6 \
               addresses count by /64. More are closed as soon as they are accepted. A browser \
               holds one or two per connection while ICE runs; 0 is no cap. Default 64.",
        kind: Kind::Integer,
    },
    Key {
        path: "media.max_tcp_streams",
        flag: "media-max-tcp-streams",
        value_name: "COUNT",
        help: "ICE-TCP streams open at once; more are closed as soon as they are accepted. \
               Default 0: the other half of what the open-file limit leaves after 128 \
               descriptors (limits.max_connections takes the first), so HTTP connections and \
               ICE-TCP streams together stay within it.",
        kind: Kind::Integer,
    },
    Key {
        path: "ice.urls",
        flag: "ice-url",
        value_name: "URL",
        help: "STUN URL (stun:host:port) handed to clients in `joined`; repeat for several.",
        kind: Kind::List,
    },
    Key {
        path: "ice.turn_urls",
        flag: "turn-url",
        value_name: "URL",
        help: "TURN URL handed to clients with short-lived credentials: turn:host:3478 (over \
               UDP, or TCP with ?transport=tcp), or turns:host:443?transport=tcp (TURN over \
               TLS, for networks that let only HTTPS out); repeat for several. Needs \
               ice.turn_secret.",
        kind: Kind::List,
    },
    Key {
        path: "ice.turn_secret",
        flag: "turn-secret",
        value_name: "SECRET",
        help: "Secret shared with the TURN server (coturn's static-auth-secret with \
               use-auth-secret); each client gets credentials derived from it.",
        kind: Kind::Text,
    },
    Key {
        path: "ice.turn_credential_ttl_secs",
        flag: "turn-credential-ttl",
        value_name: "SECS",
        help: "How long each client's TURN credentials stay valid, in seconds. Default 86400 \
               (a day).",
        kind: Kind::Integer,
    },
    Key {
        path: "auth.token_key",
        flag: "token-key",
        value_name: "KEY",
        help: "Key (at least 32 bytes) that signs join tokens (JWT, HS256). When set, \
               `join` needs a valid token. Default: none, and the server runs open: anybody \
               may join any room.",
        kind: Kind::Text,
    },
    Key {
        path: "auth.max_token_lifetime_secs",
        flag: "max-token-lifetime",
        value_name: "SECS",
        help: "The longest an access token may be valid, in seconds: a token whose `exp` is \
               further from its `iat`, or from now, is refused. Default 86400 (a day).",
        kind: Kind::Integer,
    },
    Key {
        path: "limits.max_rooms",
        flag: "max-rooms",
        value_name: "COUNT",
        help: "Rooms open at once. Default 1000.",
        kind: Kind::Integer,
    },
    Key {
        path: "limits.max_participants_per_room",
        flag: "max-participants-per-room",
        value_name: "COUNT",
        help: "Participants in one room. Default 500.",
        kind: Kind::Integer,
    },
    Key {
        path: "limits.messages_per_second",
        flag: "messages-per-second",
        value_name: "COUNT",
        help: "Signaling messages per second one WebSocket may send, sustained. Default 50.",
        kind: Kind::Integer,
    },
    Key {
        path: "limits.message_burst",
        flag: "message-burst",
        value_name: "COUNT",
        help: "Signaling messages one WebSocket may send in a burst above that rate. \
               Default 200.",
        kind: Kind::Integer,
    },
    Key {
        path: "limits.max_chat_bytes",
        flag: "max-chat-bytes",
        value_name: "BYTES",
        help: "Bytes of text in one chat message. Default 4096.",
        kind: Kind::Integer,
    },
    Key {
        path: "limits.connections_per_ip",
        flag: "connections-per-ip",
        value_name: "COUNT",
        help: "HTTP connections (pages, API calls, WebSockets) one IP address may hold at \
               once; IPv6 addresses count by /64. 0 is no cap: behind a reverse proxy every \
               connection comes from the proxy's address. Default 200.",
        kind: Kind::Integer,
    },
    Key {
        path: "limits.max_connections",
        flag: "max-connections",
        value_name: "COUNT",
        help: "HTTP connections at once; more are closed at once. Default 0: half of what \
               the open-file limit (raised to its hard limit at start) leaves after 128 \
               descriptors, so media sockets and ICE-TCP streams keep theirs.",
        kind: Kind::Integer,
    },
    Key {
        path: "limits.max_unjoined_sockets",
        flag: "max-unjoined-sockets",
        value_name: "COUNT",
        help: "Signaling WebSockets open at once that have not joined a room; more are \
               refused with 503. Default 1000.",
        kind: Kind::Integer,
    },
    Key {
        path: "signaling.join_timeout_secs",
        flag: "join-timeout",
        value_name: "SECS",
        help: "Seconds a WebSocket may stay open without joining a room; then it gets \
               `join_timeout` and close code 4004. Default 10.",
        kind: Kind::Integer,
    },
    Key {
        path: "signaling.offer_timeout_secs",
        flag: "offer-timeout",
        value_name: "SECS",
        help: "Seconds a participant has after `joined` to send its first offer (an empty one \
               when it publishes nothing); then it leaves the room with `offer_timeout` and \
               close code 4004. Default 30.",
        kind: Kind::Integer,
    },
    Key {
        path: "signaling.media_timeout_secs",
        flag: "media-timeout",
        value_name: "SECS",
        help: "Seconds a participant's media connection has to connect once an answer gave it \
               something to connect; then it leaves the room with `media_timeout` and close \
               code 4001. Default 30.",
        kind: Kind::Integer,
    },
    Key {
        path: "signaling.ping_interval_secs",
        flag: "ping-interval",
        value_name: "SECS",
        help: "Seconds between the WebSocket pings the server sends every socket. Default 15.",
        kind: Kind::Integer,
    },
    Key {
        path: "signaling.ping_timeout_secs",
        flag: "ping-timeout",
        value_name: "SECS",
        help: "Seconds a ping may go unanswered; then the socket is closed with close code \
               4005 and its participant leaves the room. Default 15.",
        kind: Kind::Integer,
    },
    Key {
        path: "signaling.outbox_bytes",
        flag: "outbox-bytes",
        value_name: "BYTES",
        help: "Bytes of messages that may wait for a client that reads slowly (and at most \
               1024 messages); past either its session ends with close code 4002. Default \
               1048576 (1 MiB).",
        kind: Kind::Integer,
    },
    Key {
        path: "webhooks.urls",
        flag: "webhook-url",
        value_name: "URL",
        help: "URL (http:// or https://) every room event is POSTed to as signed JSON: rooms \
               started and finished, participants joined and left, tracks published and \
               unpublished; repeat for several. Needs webhooks.key. Default: none, and no \
               events are sent.",
        kind: Kind::List,
    },
    Key {
        path: "webhooks.key",
        flag: "webhook-key",
        value_name: "KEY",
        help: "Key (at least 32 bytes) each event is signed with (HMAC-SHA256, in the \
               Switchyard-Signature header), for receivers to check that it came from this \
               server.",
        kind: Kind::Text,
    },
    Key {
        path: "webhooks.attempts",
        flag: "webhook-attempts",
        value_name: "COUNT",
        help: "Times an event is sent to a URL before it is given up, the first included. \
               Default 5.",
        kind: Kind::Integer,
    },
    Key {
        path: "webhooks.first_retry_ms",
        flag: "webhook-first-retry",
        value_name: "MS",
        help: "Milliseconds before an event that failed is sent again; each later retry \
               waits twice as long as the one before (at most a minute), give or take a \
               quarter. Default 1000.",
        kind: Kind::Integer,
    },
    Key {
        path: "webhooks.timeout_secs",
        flag: "webhook-timeout",
        value_name: "SECS",
        help: "Seconds a receiver has to answer one attempt, connecting included; then the \
               attempt has failed. Default 5.",
        kind: Kind::Integer,
    },
    Key {
        path: "webhooks.queue_events",
        flag: "webhook-queue",
        value_name: "COUNT",
        help: "Events that may wait to be delivered; more are dropped and counted \
               (switchyard_webhook_events_dropped_total) rather than held in memory. \
               Default 10000.",
        kind: Kind::Integer,
    },
    Key {
        path: "cluster.redis_url",
        flag: "redis-url",
        value_name: "URL",
        help: "Redis (redis://HOST:PORT/DB, with a password as redis://:PASSWORD@HOST/) that \
               the nodes of a cluster share: each registers there, and each room is placed on \
               one node, the others redirecting its joins to it. Keep it on a private \
               network. Default: none, and the server is a single node.",
        kind: Kind::Text,
    },
    Key {
        path: "cluster.signaling_url",
        flag: "signaling-url",
        value_name: "URL",
        help: "The URL (ws:// or wss://) clients reach this node's signaling WebSocket at, \
               which other nodes redirect joins of its rooms to (behind a proxy, such as \
               wss://meet.example.com/node/1/ws). Default: ws://ADDRESS/ws (wss:// with TLS) \
               from http.listen, which then must not be 0.0.0.0 or [::].",
        kind: Kind::Text,
    },
    Key {
        path: "cluster.node_id",
        flag: "node-id",
        value_name: "ID",
        help: "This node's name in the cluster: 1 to 64 characters of A-Z, a-z, 0-9, `_` and \
               `-`, different on every node. Default: node- and eight random hex digits, new \
               at each start.",
        kind: Kind::Text,
    },
    Key {
        path: "cluster.lease_secs",
        flag: "cluster-lease",
        value_name: "SECS",
        help: "Seconds a node's entry, and the placement of its rooms, last in Redis unless \
               renewed (every third of it): a node that dies is replaced that long after. \
               Default 5.",
        kind: Kind::Integer,
    },
    Key {
        path: "log.json",
        flag: "json-logs",
        value_name: "BOOL",
        help: "Log as JSON lines instead of text. Default false.",
        kind: Kind::Switch,
    },
    Key {
        path: "log.filter",
        flag: "log-filter",
        value_name: "FILTER",
        help: "What to log, as a tracing filter (`info`, `switchyard=debug,webrtc=warn`). \
               RUST_LOG, when set, wins. Default: the server's information and the WebRTC \
               stack's warnings, but only errors from its core (`rtc`), which warns for every \
               packet it refuses.",
        kind: Kind::Text,
    },
];

/// The key at `path`, if there is one.
pub fn find(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.path == path)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn paths_flags_and_variables_are_unique() {
        let paths: HashSet<_> = KEYS.iter().map(|key| key.path).collect();
        let flags: HashSet<_> = KEYS.iter().map(|key| key.flag).collect();
        let variables: HashSet<_> = KEYS.iter().map(Key::env).collect();
        assert_eq!(paths.len(), KEYS.len());
        assert_eq!(flags.len(), KEYS.len());
        assert_eq!(variables.len(), KEYS.len());
    }

    #[test]
    fn variables_follow_the_paths() {
        let key = find("limits.max_rooms").expect("key");
        assert_eq!(key.env(), "SWITCHYARD_LIMITS_MAX_ROOMS");
        assert_eq!(key.section(), Some("limits"));
        let top = find("shutdown_grace_secs").expect("key");
        assert_eq!(top.env(), "SWITCHYARD_SHUTDOWN_GRACE_SECS");
        assert_eq!(top.section(), None);
    }

    #[test]
    fn the_deployment_guide_describes_every_key() {
        let guide = include_str!("../../docs/deployment.md");
        for key in KEYS {
            for needle in [key.path.to_owned(), format!("--{}", key.flag), key.env()] {
                assert!(
                    guide.contains(&needle),
                    "docs/deployment.md does not mention `{needle}`"
                );
            }
        }
    }
}
