//! `verify`: which certificate a TLS endpoint serves. A rustls handshake that accepts any
//! certificate (the point is which leaf is served, not whether a client would trust it; the
//! handshake signature is still checked), then the leaf's SHA-256 and serial compared with the
//! deployed certificate's.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::spec::VerifyEndpoint;

/// Pause between attempts while the endpoint still serves another certificate (a reloading
/// server may answer with its old workers for a moment).
const RETRY_PAUSE: StdDuration = StdDuration::from_millis(200);

/// The leaf an endpoint served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// Lowercase hex SHA-256 of the leaf's DER.
    pub sha256_fingerprint: String,
    /// The leaf's serial, as state writes serials.
    pub serial: String,
}

/// Whether `endpoint` serves the certificate with `fingerprint`: `Ok(())`, or why not (a
/// message naming the endpoint and what it served). Tries again until `endpoint.timeout`.
pub fn check(endpoint: &VerifyEndpoint, fingerprint: &str) -> Result<(), String> {
    let deadline = Instant::now() + std_duration(endpoint.timeout);
    loop {
        let result = served(endpoint, deadline.saturating_duration_since(Instant::now()));
        let problem = match result {
            Ok(served) if served.sha256_fingerprint == fingerprint => return Ok(()),
            Ok(served) => format!(
                "endpoint `{}` serves serial {} (sha256 {}), not the deployed certificate (sha256 {fingerprint})",
                endpoint.connect, served.serial, served.sha256_fingerprint
            ),
            Err(error) => format!("endpoint `{}`: {error}", endpoint.connect),
        };
        if Instant::now() + RETRY_PAUSE >= deadline {
            return Err(problem);
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// At refresh: a drift message when `endpoint` does not serve the certificate with
/// `fingerprint` (one attempt), else `None`.
pub fn drift(endpoint: &VerifyEndpoint, fingerprint: &str) -> Option<String> {
    match served(endpoint, std_duration(endpoint.timeout)) {
        Ok(served) if served.sha256_fingerprint == fingerprint => None,
        Ok(served) => Some(format!(
            "endpoint `{}` still serves old serial {}",
            endpoint.connect, served.serial
        )),
        Err(error) => Some(format!(
            "endpoint `{}` cannot be checked: {error}",
            endpoint.connect
        )),
    }
}

/// One handshake with `endpoint` within `timeout`: the leaf it served.
pub fn served(endpoint: &VerifyEndpoint, timeout: StdDuration) -> Result<Served, String> {
    let timeout = timeout.max(StdDuration::from_millis(100));
    let address = endpoint
        .connect
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve: {error}"))?
        .next()
        .ok_or_else(|| "cannot resolve: no address".to_string())?;
    let mut tcp = TcpStream::connect_timeout(&address, timeout)
        .map_err(|error| format!("cannot connect: {error}"))?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let name = ServerName::try_from(endpoint.sni.clone())
        .map_err(|error| format!("invalid server name `{}`: {error}", endpoint.sni))?;
    let mut connection = rustls::ClientConnection::new(client_config()?, name)
        .map_err(|error| format!("TLS setup failed: {error}"))?;
    while connection.is_handshaking() {
        match connection.complete_io(&mut tcp) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                return Err("the server closed the connection during the handshake".to_string())
            }
            Err(error) => return Err(format!("TLS handshake failed: {error}")),
        }
    }
    let leaf = connection
        .peer_certificates()
        .and_then(|certificates| certificates.first())
        .ok_or_else(|| "the server sent no certificate".to_string())?;
    let pem = crate::keys::encode_certificate(leaf.as_ref());
    let (info, _) = crate::keys::inspect_chain(&pem)
        .map_err(|error| format!("the served certificate cannot be read: {error}"))?;
    Ok(Served {
        sha256_fingerprint: info.sha256_fingerprint,
        serial: info.serial.to_string(),
    })
}

fn std_duration(duration: time::Duration) -> StdDuration {
    StdDuration::try_from(duration).unwrap_or(StdDuration::ZERO)
}

fn client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS setup failed: {error}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyLeaf { provider }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts whatever certificate the server presents (only its identity is compared, by
/// fingerprint, afterwards); still checks the handshake signature with it.
#[derive(Debug)]
struct AnyLeaf {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyLeaf {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
