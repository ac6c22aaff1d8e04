//! HTTPS: the certificate and key from PEM files, and a TLS listener for axum.
//!
//! Browsers share a camera only with a secure origin, so a server reached by anything but
//! `localhost` needs HTTPS (and the signaling socket `wss://`). Either a reverse proxy in front
//! terminates TLS (the compose setup uses Caddy), or the server does, with `http.tls_cert` and
//! `http.tls_key`.
//!
//! [`TlsListener`] accepts TCP connections and runs their TLS handshakes concurrently, each
//! bounded in time and their number bounded, so a client that opens a connection and says
//! nothing holds up neither the others nor the shutdown. Its tasks end when it is dropped.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use crate::config::TlsFiles;

/// How long a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; connections beyond are closed at once.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

/// Why the certificate or key cannot be used. Each names the file (or both).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----): {reason}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: String,
    },
    /// The key file holds no PEM private key.
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: String,
    },
    /// The certificate and key were read but cannot be used together.
    #[error("cannot use certificate {} with key {}: {reason}", cert.display(), key.display())]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What TLS said.
        reason: String,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads the certificate chain and key and builds the TLS configuration: TLS 1.2 and 1.3,
/// HTTP/1.1 (which the WebSocket upgrade needs).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::NoCertificate {
            path: files.cert.clone(),
            reason: error.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
            reason: "the file is empty or holds other PEM sections only".to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| TlsError::NoKey {
        path: files.key.clone(),
        reason: error.to_string(),
    })?;
    let unusable = |reason: String| TlsError::Unusable {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| unusable(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| unusable(error.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TCP listener whose connections come out TLS-wrapped; see the module documentation.
#[derive(Debug)]
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    /// Wraps `listener`, handshaking with `config`.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, accepted) = mpsc::channel(16);
        let acceptor = tokio::spawn(accept(listener, TlsAcceptor::from(config), sender));
        Ok(Self {
            accepted,
            local_addr,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Its handshakes live in its JoinSet, so they go with it.
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(connection) => connection,
            // The accepting task ends only when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

type Handshake = (
    SocketAddr,
    Result<io::Result<TlsStream<TcpStream>>, tokio::time::error::Elapsed>,
);

/// Accepts connections and hands over those whose handshake succeeded.
async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    accepted: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let mut handshakes: JoinSet<Handshake> = JoinSet::new();
    loop {
        tokio::select! {
            incoming = listener.accept() => match incoming {
                Ok((stream, address)) => {
                    if handshakes.len() >= MAX_PENDING_HANDSHAKES {
                        debug!(%address, "too many TLS handshakes in progress: closing");
                        continue;
                    }
                    let acceptor = acceptor.clone();
                    handshakes.spawn(async move {
                        let result =
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                        (address, result)
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: say so, and give it a moment
                    // instead of spinning.
                    warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(done) = handshakes.join_next() => match done {
                Ok((address, Ok(Ok(stream)))) => {
                    if accepted.send((stream, address)).await.is_err() {
                        return;
                    }
                }
                Ok((address, Ok(Err(error)))) => debug!(%address, %error, "TLS handshake failed"),
                Ok((address, Err(_))) => debug!(%address, "TLS handshake timed out"),
                Err(error) => debug!(%error, "a TLS handshake task ended abnormally"),
            },
            () = accepted.closed() => return,
        }
    }
}
