//! TLS for `wss://` signaling and `https://` metrics: rustls with ring (the provider the WebRTC
//! stack and the server already use), trusting the system's certificate authorities, or, for a
//! test deployment with a self-signed certificate, any certificate at all.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Which server certificates a client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertificateCheck {
    /// Certificates that chain to one of the system's certificate authorities, for the name
    /// the URL gives: what a browser accepts.
    #[default]
    SystemRoots,
    /// Any certificate, for any name (`--insecure`): a deployment with a self-signed
    /// certificate. The handshake is still encrypted, but nobody is authenticated.
    AcceptAnything,
}

/// The TLS client settings could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The system has no certificate authority the client could load.
    #[error(
        "no system certificate authorities could be loaded ({0}): install the ca-certificates package, or give --insecure for a test deployment"
    )]
    NoSystemRoots(String),
    /// rustls refused the settings.
    #[error("TLS settings: {0}")]
    Settings(#[from] rustls::Error),
}

/// The rustls settings for `check`.
pub fn client_config(check: CertificateCheck) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let config = match check {
        CertificateCheck::SystemRoots => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
        CertificateCheck::AcceptAnything => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCertificate { provider }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The settings for [`CertificateCheck::SystemRoots`], made once per process: loading the
/// system's store reads a few hundred files.
pub fn system_default() -> Result<Arc<ClientConfig>, String> {
    static DEFAULT: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            client_config(CertificateCheck::SystemRoots).map_err(|error| error.to_string())
        })
        .clone()
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        return Err(TlsError::NoSystemRoots(if errors.is_empty() {
            "none found".to_owned()
        } else {
            errors.join("; ")
        }));
    }
    Ok(roots)
}

/// Accepts every server certificate, whoever issued it and whatever name it is for; only
/// with `--insecure`. The handshake's signatures are still checked against the certificate the
/// server presented, so the connection is encrypted to whoever holds its key.
#[derive(Debug)]
struct AcceptAnyServerCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
