//! `verify`: which certificate a TLS endpoint serves. A rustls handshake that accepts any
//! certificate (the point is which leaf is served, not whether a client would trust it; the
//! handshake signature is still checked), then the leaf's SHA-256 and serial compared with the
//! deployed certificate's.
//!
//! Every target kind takes the same `verify` setting and goes through the same code:
//! `Verifying` wraps the kind's deployer. At refresh, a target whose files are in sync is
//! checked once at its endpoint (serving another certificate is drift). At apply, when the
//! endpoint did not serve this very certificate (last run's check failed, or it serves another
//! now), the kind is handed a previous record marked as not reloaded, so it runs its reload
//! even though no file changes; after a successful deploy and reload the endpoint is checked
//! (retried until `timeout`) and the result goes in the record (`verified`, `verify_error`).

pub mod settings;

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::deploy::{Bundle, DeployError, DeployOutcome, Deployer};
use crate::observed::DeployObservation;
use crate::spec::VerifyEndpoint;
use crate::state::model::DeployRecord;

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

/// A deployer whose endpoint must serve what it deployed: the kind's own deployer, then the
/// check (see the module's documentation).
pub(crate) struct Verifying {
    inner: Box<dyn Deployer>,
    endpoint: VerifyEndpoint,
}

impl Verifying {
    pub(crate) fn new(inner: Box<dyn Deployer>, endpoint: VerifyEndpoint) -> Self {
        Self { inner, endpoint }
    }

    /// Why the reload must run again although `previous` deployed this very certificate: last
    /// run's check failed, or the endpoint serves another certificate now. `None`: it serves it.
    async fn not_served(&self, previous: &DeployRecord) -> Option<String> {
        if let Some(error) = &previous.verify_error {
            return Some(error.clone());
        }
        let endpoint = self.endpoint.clone();
        let fingerprint = previous.sha256_fingerprint.clone();
        tokio::task::spawn_blocking(move || drift(&endpoint, &fingerprint))
            .await
            .unwrap_or_else(|error| Some(format!("endpoint check failed: {error}")))
    }
}

#[async_trait]
impl Deployer for Verifying {
    fn id(&self) -> String {
        self.inner.id()
    }

    fn recover(&self) -> Result<Vec<String>, DeployError> {
        self.inner.recover()
    }

    fn recovers_from_hidden_files(&self) -> bool {
        self.inner.recovers_from_hidden_files()
    }

    fn observe(&self, record: Option<&DeployRecord>) -> DeployObservation {
        match (self.inner.observe(record), record) {
            (DeployObservation::InSync, Some(record)) => {
                match drift(&self.endpoint, &record.sha256_fingerprint) {
                    Some(drift) => DeployObservation::Drift(drift),
                    None => DeployObservation::InSync,
                }
            }
            (observed, _) => observed,
        }
    }

    async fn deploy(
        &self,
        bundle: &Bundle,
        previous: Option<&DeployRecord>,
        target_digest: &str,
        now: OffsetDateTime,
    ) -> Result<DeployOutcome, DeployError> {
        // Same certificate as last time but not (or no longer) served: every kind reloads
        // when its previous reload failed, so hand it a record saying so.
        let mut forced = None;
        if let Some(previous) =
            previous.filter(|previous| previous.sha256_fingerprint == bundle.sha256_fingerprint)
        {
            if let Some(reason) = self.not_served(previous).await {
                forced = Some(DeployRecord {
                    reload_error: Some(reason),
                    ..previous.clone()
                });
            }
        }
        let previous_fingerprint = previous.map(|previous| previous.sha256_fingerprint.clone());
        let previous = forced.as_ref().or(previous);
        let mut outcome = self
            .inner
            .deploy(bundle, previous, target_digest, now)
            .await?;
        // A failed reload is the error to report; the endpoint is not asked then.
        if outcome.record.reload_error.is_some() {
            return Ok(outcome);
        }
        let endpoint = self.endpoint.clone();
        let fingerprint = bundle.sha256_fingerprint.clone();
        let result = tokio::task::spawn_blocking(move || {
            check(&endpoint, &fingerprint, previous_fingerprint.as_deref())
        })
        .await
        .unwrap_or_else(|error| Err(format!("endpoint check failed: {error}")));
        let (verified, verify_error) = match result {
            Ok(()) => (true, None),
            Err(error) => (false, Some(error)),
        };
        outcome.record.verified = Some(verified);
        outcome.record.verify_error = verify_error;
        Ok(outcome)
    }
}

/// Whether `endpoint` serves the certificate with `fingerprint`: `Ok(())`, or why not (a
/// message naming the endpoint and the serial and fingerprint it served; "still serves old
/// serial" when that is the certificate with `old_fingerprint`, deployed before). Tries again
/// until `endpoint.timeout`.
pub fn check(
    endpoint: &VerifyEndpoint,
    fingerprint: &str,
    old_fingerprint: Option<&str>,
) -> Result<(), String> {
    let deadline = Instant::now() + std_duration(endpoint.timeout);
    loop {
        let result = served(endpoint, deadline.saturating_duration_since(Instant::now()));
        let problem = match result {
            Ok(served) if served.sha256_fingerprint == fingerprint => return Ok(()),
            Ok(served) if Some(served.sha256_fingerprint.as_str()) == old_fingerprint => format!(
                "endpoint `{}` still serves old serial {} (sha256 {}), not the deployed certificate (sha256 {fingerprint})",
                endpoint.connect, served.serial, served.sha256_fingerprint
            ),
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

#[cfg(test)]
mod tests;
