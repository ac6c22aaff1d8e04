//! One attempt to deliver an event: a signed POST to one receiver, on `reqwest`.
//!
//! The client speaks HTTP/1.1 over TCP or TLS (rustls on ring, the provider the rest of the
//! server uses, with Mozilla's roots compiled in, so a container needs no CA bundle), follows no
//! redirect (a receiver that moved is a configuration to fix, and a POST must not turn into a
//! GET), and bounds each attempt, connecting included, by `webhooks.timeout_secs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};

use super::signature;
use crate::config::WebhookTargets;

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The receiver answered, but not with 2xx.
    #[error("the receiver answered {0}")]
    Status(StatusCode),
    /// No answer within `webhooks.timeout_secs`.
    #[error("no answer in time")]
    Timeout,
    /// No connection, or it broke.
    #[error("{0}")]
    Transport(String),
}

/// Why the client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// rustls refused its configuration.
    #[error("webhooks: cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// reqwest refused its configuration.
    #[error("webhooks: cannot set up the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The receivers and what is needed to reach them.
pub struct Sender {
    client: reqwest::Client,
    urls: Vec<Url>,
    key: Vec<u8>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A client for `targets`, each attempt bounded by `timeout`.
    pub fn new(targets: &WebhookTargets, timeout: Duration) -> Result<Self, ClientError> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!(
                "switchyard/",
                env!("CARGO_PKG_VERSION"),
                " webhooks"
            ))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            client,
            urls: targets.urls.clone(),
            key: targets.key.as_bytes().to_vec(),
        })
    }

    /// How many receivers there are.
    pub fn receivers(&self) -> usize {
        self.urls.len()
    }

    /// Receiver `index` as logs name it: its origin, since a path or query may hold a secret.
    pub fn origin(&self, index: usize) -> String {
        self.urls[index].origin().ascii_serialization()
    }

    /// POSTs `body` to receiver `index`, signed now.
    pub async fn attempt(&self, index: usize, body: &Bytes) -> Result<(), AttemptError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let signed = signature::sign(&self.key, now, body);
        let response = self
            .client
            .post(self.urls[index].clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(signature::HEADER, signed)
            .body(body.clone())
            .send()
            .await
            .map_err(|error| {
                if error.is_timeout() {
                    AttemptError::Timeout
                } else {
                    AttemptError::Transport(describe(&error))
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(AttemptError::Status(status))
        }
    }
}

/// reqwest's error with its causes, which say what actually went wrong ("connection refused").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    fn sender_to(url: String) -> Sender {
        let targets = WebhookTargets {
            urls: vec![url.parse().expect("a URL")],
            key: "0123456789abcdef0123456789abcdef".to_owned(),
        };
        Sender::new(&targets, Duration::from_secs(5)).expect("a client")
    }

    #[tokio::test]
    async fn an_https_receiver_is_spoken_to_in_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let sender = sender_to(format!("https://{address}/hooks"));
        let attempt = tokio::spawn(async move {
            sender
                .attempt(0, &Bytes::from_static(b"{}"))
                .await
                .map_err(|error| error.to_string())
        });
        let (mut stream, _) = listener.accept().await.expect("a connection");
        let mut first = [0u8; 3];
        stream.read_exact(&mut first).await.expect("bytes");
        // A TLS record: handshake (22), version 3.x: a ClientHello, not plain HTTP.
        assert_eq!((first[0], first[1]), (22, 3));
        drop(stream);
        let outcome = attempt.await.expect("the attempt ends");
        assert!(outcome.is_err(), "no handshake, no delivery: {outcome:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_failed_attempt_that_says_why() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let sender = sender_to(format!("http://{address}/hooks"));
        match sender.attempt(0, &Bytes::from_static(b"{}")).await {
            Err(AttemptError::Transport(why)) => {
                assert!(why.to_lowercase().contains("refused"), "{why}")
            }
            other => panic!("a transport error, not {other:?}"),
        }
    }
}
