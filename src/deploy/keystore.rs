//! What the `pkcs12` and `jks` targets share: one keystore file, encoded from the bundle,
//! written atomically with its mode, then an optional reload.
//!
//! A keystore is re-encoded with fresh salts every time, so its bytes never say whether the
//! content changed. The receipt does: the file is rewritten only when the certificate
//! (fingerprint) or the target's settings (digest) differ from the record, or when the file on
//! disk no longer has the SHA-256 recorded (drift: deleted or changed by hand). Passwords are
//! read when the file is written and never recorded, logged or shown.

pub(crate) mod settings;

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::files::reload::run_reload;
use crate::deploy::{Bundle, DeployError, DeployOutcome, Deployer};
use crate::keys::sha256_hex;
use crate::observed::DeployObservation;
use crate::spec::StoreFile;
use crate::state::model::DeployRecord;

/// Mode of directories this target creates.
const DIR_MODE: u32 = 0o755;

/// Builds a keystore's bytes from a bundle (with the time of the deploy, for formats that
/// record one); errors never carry a secret.
pub(crate) type Encoder =
    Box<dyn Fn(&Bundle, OffsetDateTime) -> Result<Vec<u8>, DeployError> + Send + Sync>;

/// Deploys one keystore file.
pub(crate) struct StoreDeployer {
    id: String,
    file: StoreFile,
    encoder: Encoder,
}

impl StoreDeployer {
    pub(crate) fn new(id: String, file: StoreFile, encoder: Encoder) -> Self {
        Self { id, file, encoder }
    }

    /// The keystore's file name, its key in the receipt.
    fn name(&self) -> String {
        self.file
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn io_error(&self, action: &'static str, path: &Path, source: io::Error) -> DeployError {
        DeployError::Io {
            target: self.id.clone(),
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// SHA-256 of the file on disk; `None` when it does not exist.
    fn disk_sha256(&self) -> Result<Option<String>, DeployError> {
        match fs::read(&self.file.path) {
            Ok(bytes) => Ok(Some(sha256_hex(&bytes))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(self.io_error("read", &self.file.path, error)),
        }
    }
}

#[async_trait]
impl Deployer for StoreDeployer {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn observe(&self, record: Option<&DeployRecord>) -> DeployObservation {
        let name = self.name();
        let Some(record) = record else {
            return DeployObservation::Missing(vec![name]);
        };
        match self.disk_sha256() {
            Ok(None) => DeployObservation::Missing(vec![name]),
            Ok(Some(sha256)) if record.files.get(&name) == Some(&sha256) => {
                DeployObservation::InSync
            }
            // Changed, or unreadable: it cannot be confirmed, so deploy again.
            Ok(Some(_)) | Err(_) => DeployObservation::Changed(vec![name]),
        }
    }

    async fn deploy(
        &self,
        bundle: &Bundle,
        previous: Option<&DeployRecord>,
        target_digest: &str,
        now: OffsetDateTime,
    ) -> Result<DeployOutcome, DeployError> {
        let name = self.name();
        let on_disk = self.disk_sha256()?;
        // The receipt's inputs, not the bytes: a re-encoded keystore never equals the old one.
        let current = previous.filter(|previous| {
            previous.sha256_fingerprint == bundle.sha256_fingerprint
                && previous.target_digest == target_digest
                && on_disk.is_some()
                && previous.files.get(&name) == on_disk.as_ref()
        });
        let mut changed_files = Vec::new();
        let files = match current {
            Some(previous) => previous.files.clone(),
            None => {
                let bytes = (self.encoder)(bundle, now)?;
                if let Some(parent) = self.file.path.parent() {
                    crate::atomic_file::create_dir_all(parent, DIR_MODE)
                        .map_err(|error| self.io_error("create directory", parent, error))?;
                }
                crate::atomic_file::write(&self.file.path, &bytes, self.file.mode)
                    .map_err(|error| self.io_error("write", &self.file.path, error))?;
                changed_files.push(name.clone());
                crate::small_map::SmallMap::from([(name, sha256_hex(&bytes))])
            }
        };
        let already_live = current.is_some_and(|previous| previous.reload_error.is_none());
        let reload = match &self.file.reload {
            Some(command) if !already_live => {
                let timeout =
                    StdDuration::try_from(self.file.reload_timeout).unwrap_or(StdDuration::ZERO);
                Some(run_reload(command, timeout).await)
            }
            _ => None,
        };
        let reload_error = reload.as_ref().and_then(|(_, error)| error.clone());
        if let Some(error) = &reload_error {
            tracing::warn!(target_id = %self.id, "reload failed: {error}");
        }
        Ok(DeployOutcome {
            record: DeployRecord {
                sha256_fingerprint: bundle.sha256_fingerprint.clone(),
                target_digest: target_digest.to_string(),
                files,
                deployed_at: now,
                reload_error,
                serial: bundle.serial.clone(),
                verified: None,
                verify_error: None,
                // Relative to the config file when written so, like the target's id.
                paths: vec![self.file.id_path().to_path_buf()],
                cleanup: self.file.cleanup,
                ssh: None,
            },
            changed_files,
            reload: reload.map(|(report, _)| report),
        })
    }
}

/// The bundle's private key (PKCS#8 DER) and its certificates, leaf first (DER); the reason
/// when they cannot be read (never quoting the key).
pub(crate) fn bundle_ders(bundle: &Bundle) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    let key = pem::parse(bundle.key_pem.as_bytes())
        .map_err(|_| "the private key is not PEM".to_string())?;
    if key.tag() != "PRIVATE KEY" {
        return Err(format!(
            "the private key is `{}` PEM; keystores take PKCS#8 (`PRIVATE KEY`)",
            key.tag()
        ));
    }
    let text = format!("{}\n{}", bundle.cert_pem, bundle.chain_pem);
    let certificates: Vec<Vec<u8>> = pem::parse_many(text.as_bytes())
        .map_err(|error| format!("the certificate chain is not PEM: {error}"))?
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if certificates.is_empty() {
        return Err("the bundle holds no certificate".to_string());
    }
    Ok((key.into_contents(), certificates))
}

/// Resolve a password reference for target `id`.
pub(crate) fn password(
    id: &str,
    reference: &crate::config::SecretRef,
) -> Result<crate::secrets::Secret, DeployError> {
    crate::secrets::resolve(reference).map_err(|source| DeployError::Secret {
        target: id.to_string(),
        source,
    })
}

/// A real bundle for tests: a leaf signed by a throwaway CA, the CA as its chain.
#[cfg(test)]
pub(crate) fn test_bundle() -> Bundle {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "certform test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["a.example".to_string()]).expect("params");
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "a.example");
    let leaf = params.signed_by(&key, &issuer).expect("leaf");
    Bundle {
        cert_pem: leaf.pem(),
        chain_pem: ca.pem(),
        key_pem: key.serialize_pem(),
        sha256_fingerprint: sha256_hex(leaf.der()),
        name: "web".to_string(),
        serial: Some("0a1b".to_string()),
        not_after: Some("2026-03-01T00:00:00Z".to_string()),
        sans: vec!["a.example".to_string(), "b.example".to_string()],
    }
}

#[cfg(test)]
mod settings_tests;
#[cfg(test)]
mod tests;
