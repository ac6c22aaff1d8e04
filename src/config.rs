//! Configuration, with defaults that run with no file.

use std::net::{IpAddr, SocketAddr};

use crate::client::ClientFiles;
use crate::signal::protocol::IceServer;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server (client page, WebSocket, metrics) listens.
    pub http: SocketAddr,
    /// Local addresses media is gathered on, one UDP socket per address per connection.
    pub media_ips: Vec<IpAddr>,
    /// STUN/TURN URLs handed to clients.
    pub ice_urls: Vec<String>,
    /// Where the browser client's files come from.
    pub client: ClientFiles,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: SocketAddr::from(([0, 0, 0, 0], 8080)),
            media_ips: crate::rtc::engine::default_media_ips(),
            ice_urls: Vec::new(),
            client: ClientFiles::Embedded,
        }
    }
}

impl Config {
    /// A configuration for tests and tools on this machine: HTTP on an ephemeral loopback
    /// port, media on loopback only.
    pub fn loopback() -> Self {
        Self {
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            media_ips: vec![IpAddr::from([127, 0, 0, 1])],
            ice_urls: Vec::new(),
            client: ClientFiles::Embedded,
        }
    }

    /// The ICE servers clients are told to use.
    pub fn ice_servers(&self) -> Vec<IceServer> {
        if self.ice_urls.is_empty() {
            return Vec::new();
        }
        vec![IceServer {
            urls: self.ice_urls.clone(),
            username: None,
            credential: None,
        }]
    }
}
