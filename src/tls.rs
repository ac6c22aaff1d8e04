//! HTTPS: the certificate and key from PEM files, and the TLS acceptor the HTTP listener uses.
//!
//! Browsers share a camera only with a secure origin, so a server reached by anything but
//! `localhost` needs HTTPS (and the signaling socket `wss://`). Either a reverse proxy in front
//! terminates TLS (the compose setup uses Caddy), or the server does, with `http.tls_cert` and
//! `http.tls_key`.
//!
//! The HTTP listener (`http::serve`) runs each handshake with [`Tls::acceptor`], bounded in
//! time (`http.tls_handshake_timeout_secs`) and counted against the same connection caps as
//! plain HTTP. [`Tls::reload`] reads the files again (on SIGHUP): new handshakes present the new
//! certificate, and connections already open keep theirs.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

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

/// The certificate and key being served, and where they are read from.
#[derive(Clone)]
pub struct Tls {
    files: TlsFiles,
    config: Arc<ArcSwap<ServerConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Reads `files`.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        Ok(Self {
            files: files.clone(),
            config: Arc::new(ArcSwap::new(server_config(files)?)),
        })
    }

    /// Reads the files again and serves what they hold from the next handshake on. When they
    /// cannot be used, the previous certificate stays.
    pub fn reload(&self) -> Result<&TlsFiles, TlsError> {
        self.config.store(server_config(&self.files)?);
        Ok(&self.files)
    }

    /// What runs a handshake with the certificate being served now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(folder: &Path) -> TlsFiles {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        let files = TlsFiles {
            cert: folder.join("cert.pem"),
            key: folder.join("key.pem"),
        };
        std::fs::write(&files.cert, certified.cert.pem()).expect("write");
        std::fs::write(&files.key, certified.signing_key.serialize_pem()).expect("write");
        files
    }

    #[test]
    fn a_failed_reload_keeps_the_previous_certificate() {
        let folder =
            std::env::temp_dir().join(format!("switchyard-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&folder).expect("folder");
        let files = self_signed(&folder);
        let tls = Tls::load(&files).expect("the first certificate");
        let before = tls.config.load_full();
        std::fs::write(&files.cert, "not PEM\n").expect("write");
        let error = tls.reload().expect_err("garbage is refused");
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
        assert!(Arc::ptr_eq(&before, &tls.config.load_full()));
        self_signed(&folder);
        tls.reload().expect("a new certificate");
        assert!(!Arc::ptr_eq(&before, &tls.config.load_full()));
        let _ = std::fs::remove_dir_all(&folder);
    }
}
