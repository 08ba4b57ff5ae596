//! Private keys, certificate signing requests and certificate inspection.
//!
//! Generates keys (RSA, ECDSA, Ed25519) with rcgen, stores them as PKCS#8 PEM files (mode 0600,
//! written atomically and fsynced) under the keys directory, builds PKCS#10 requests and reads
//! the facts certform records about an issued chain (serial, validity, fingerprints, names).
//! A private key never appears in `Debug`, `Display`, logs or error messages.
//!
//! `KeyStore` has two backends (`[state] keys`): `files`, PEM files in `keys_dir`, and `age`,
//! files in the state repository's `keys/` encrypted to age recipients (see `age_backend`). The
//! paths callers use are the same for both (`<name>/<key id>.key`); the age backend keeps them
//! as `<name>/<key id>.age`.

pub mod age_backend;
pub mod maintenance;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData, RsaKeySize, SanType,
    SignatureAlgorithm,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::spec::KeySpec;

/// Mode of key files.
const KEY_FILE_MODE: u32 = 0o600;
/// Mode of directories created under the keys directory.
const KEY_DIR_MODE: u32 = 0o700;

/// Errors from key generation, key storage, CSR building and certificate inspection.
///
/// No variant carries key material: parse failures say what was wrong, never what was read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported key `{spec}` (supported: rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384, ed25519)")]
    UnsupportedSpec { spec: String },

    #[error("failed to generate a `{spec}` key")]
    Generate {
        spec: String,
        #[source]
        source: rcgen::Error,
    },

    #[error("private key PEM is `{found}`, expected a PKCS#8 `PRIVATE KEY` block (convert with `openssl pkcs8 -topk8 -nocrypt`)")]
    NotPkcs8 { found: String },

    #[error("private key is not valid PEM")]
    KeyPem {
        #[source]
        source: pem::PemError,
    },

    #[error("private key cannot be parsed")]
    KeyParse {
        #[source]
        source: rcgen::Error,
    },

    #[error("unsupported private key algorithm: {algorithm}")]
    UnsupportedAlgorithm { algorithm: String },

    #[error("invalid private key file `{path}`")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: Box<KeyError>,
    },

    #[error("name `{name}` cannot go into a certificate request (not IA5/ASCII)")]
    InvalidName { name: String },

    #[error("failed to build the certificate signing request")]
    Csr {
        #[source]
        source: rcgen::Error,
    },

    #[error("invalid key file name `{relative}`: {reason}")]
    InvalidKeyPath {
        relative: String,
        reason: &'static str,
    },

    #[error("key file `{path}` already exists with a different key; refusing to overwrite it")]
    KeyExists { path: PathBuf },

    #[error("failed to {action} `{path}`")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("certform holds no private key for certificate `{certificate}` ({reason})")]
    NotHeld { certificate: String, reason: String },

    #[error("the key in keys_dir for certificate `{certificate}` does not match the certificate: certificate public key sha256 {certificate_spki}, key `{}` public key sha256 {key_spki}; refusing to deploy", path.display())]
    Mismatch {
        certificate: String,
        path: PathBuf,
        certificate_spki: String,
        key_spki: String,
    },

    #[error("certificate chain contains no PEM `CERTIFICATE` block")]
    EmptyChain,

    #[error("certificate chain is not valid PEM")]
    ChainPem {
        #[source]
        source: pem::PemError,
    },

    #[error("PEM block {index} of the certificate chain is `{tag}`, expected `CERTIFICATE`")]
    NotCertificate { index: usize, tag: String },

    #[error("certificate {index} of the chain cannot be parsed: {reason}")]
    CertificateParse { index: usize, reason: String },

    #[error("cannot decrypt `{}`: {reason}", path.display())]
    NoIdentity {
        path: PathBuf,
        reason: String,
        hint: String,
    },

    #[error("cannot decrypt `{}`: {reason}", path.display())]
    AgeDecrypt { path: PathBuf, reason: String },

    #[error("cannot encrypt a private key with age: {reason}")]
    AgeEncrypt { reason: String },

    #[error("the key store was opened read-only (plan): it cannot write keys")]
    ReadOnly,

    #[error("cannot record the key file in the state repository")]
    State {
        #[source]
        source: Box<crate::state::Error>,
    },
}

/// A private key, held as PKCS#8 PEM. `Debug` prints `PrivateKey(***)`.
pub struct PrivateKey {
    pem: String,
    key_pair: KeyPair,
    spec: KeySpec,
    spki_sha256: String,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(***)")
    }
}

impl PrivateKey {
    /// Generate a new key of the given kind.
    pub fn generate(spec: KeySpec) -> Result<Self, KeyError> {
        let unsupported = || KeyError::UnsupportedSpec { spec: spec.label() };
        let generated = match spec {
            KeySpec::Rsa(bits) => {
                let size = match bits {
                    2048 => RsaKeySize::_2048,
                    3072 => RsaKeySize::_3072,
                    4096 => RsaKeySize::_4096,
                    _ => return Err(unsupported()),
                };
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
            }
            KeySpec::Ecdsa(256) => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeySpec::Ecdsa(384) => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeySpec::Ecdsa(_) => return Err(unsupported()),
            KeySpec::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        };
        let key_pair = generated.map_err(|source| KeyError::Generate {
            spec: spec.label(),
            source,
        })?;
        Self::from_key_pair(key_pair)
    }

    /// Parse a PKCS#8 `PRIVATE KEY` PEM block.
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(pem_text).map_err(|source| KeyError::KeyPem { source })?;
        if block.tag() != "PRIVATE KEY" {
            return Err(KeyError::NotPkcs8 {
                found: block.tag().to_string(),
            });
        }
        let key_pair =
            KeyPair::try_from(block.contents()).map_err(|source| KeyError::KeyParse { source })?;
        Self::from_key_pair(key_pair)
    }

    fn from_key_pair(key_pair: KeyPair) -> Result<Self, KeyError> {
        let spki = key_pair.subject_public_key_info();
        let spec = key_spec_of(key_pair.algorithm(), &spki)?;
        let pem = pem::encode_config(
            &pem::Pem::new("PRIVATE KEY", key_pair.serialized_der().to_vec()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        Ok(Self {
            pem,
            key_pair,
            spec,
            spki_sha256: sha256_hex(&spki),
        })
    }

    /// The key as PKCS#8 PEM. Secret: never log it.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Algorithm and size of the key.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// Lowercase hex SHA-256 of the DER `SubjectPublicKeyInfo`.
    pub fn spki_sha256(&self) -> String {
        self.spki_sha256.clone()
    }

    /// The rcgen key pair, for signing inside this crate.
    pub(crate) fn key_pair(&self) -> &KeyPair {
        &self.key_pair
    }

    /// Give up the wrapper and keep the rcgen key pair (for a long-lived signer).
    pub(crate) fn into_key_pair(self) -> KeyPair {
        self.key_pair
    }

    /// A DER PKCS#10 request with `common_name` as subject CN and `sans` as dNSNames.
    ///
    /// An empty `common_name` leaves the subject empty.
    pub fn csr_der(&self, common_name: &str, sans: &[String]) -> Result<Vec<u8>, KeyError> {
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        if !common_name.is_empty() {
            subject.push(DnType::CommonName, common_name);
        }
        params.distinguished_name = subject;
        params.subject_alt_names = sans
            .iter()
            .map(|name| {
                rcgen::string::Ia5String::try_from(name.as_str())
                    .map(SanType::DnsName)
                    .map_err(|_| KeyError::InvalidName { name: name.clone() })
            })
            .collect::<Result<_, _>>()?;
        let csr = params
            .serialize_request(&self.key_pair)
            .map_err(|source| KeyError::Csr { source })?;
        Ok(csr.der().to_vec())
    }
}

/// Work out the `KeySpec` of a key from its algorithm (and, for RSA, its modulus size).
fn key_spec_of(algorithm: &SignatureAlgorithm, spki_der: &[u8]) -> Result<KeySpec, KeyError> {
    if algorithm == &rcgen::PKCS_ECDSA_P256_SHA256 {
        return Ok(KeySpec::Ecdsa(256));
    }
    if algorithm == &rcgen::PKCS_ECDSA_P384_SHA384 {
        return Ok(KeySpec::Ecdsa(384));
    }
    if algorithm == &rcgen::PKCS_ED25519 {
        return Ok(KeySpec::Ed25519);
    }
    let unsupported = |detail: &str| KeyError::UnsupportedAlgorithm {
        algorithm: detail.to_string(),
    };
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|_| unsupported("unreadable public key"))?;
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            match bits {
                2048 | 3072 | 4096 => Ok(KeySpec::Rsa(bits as u32)),
                _ => Err(unsupported(&format!("rsa-{bits}"))),
            }
        }
        Ok(PublicKey::EC(_)) => Err(unsupported("elliptic curve other than P-256/P-384")),
        _ => Err(unsupported(&spki.algorithm.algorithm.to_id_string())),
    }
}

/// Where private keys are kept: the directory `keys_dir` (every file in it mode 0600), or the
/// state repository's `keys/` encrypted with age.
#[derive(Debug)]
pub struct KeyStore {
    dir: PathBuf,
    backend: Backend,
    /// The other backend, read (never written) while `[state] keys` was just switched and its
    /// keys are not moved yet; `maintenance` moves them.
    legacy: Option<Box<KeyStore>>,
}

#[derive(Debug)]
enum Backend {
    Files,
    Age {
        age: Box<age_backend::AgeBackend>,
        /// PEM of the keys this process wrote, by relative path: a key made on a runner
        /// without the identity is still usable for the CSR and the deploy of its own run.
        written: Mutex<std::collections::BTreeMap<String, crate::secrets::Secret>>,
    },
}

impl KeyStore {
    /// The `files` backend: PEM files in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            backend: Backend::Files,
            legacy: None,
        }
    }

    /// The `age` backend: `<state_root>/keys`, written through `store` (so the state commit
    /// holds the files); `store` is `None` for a read-only store (plan, status).
    pub fn age(
        state_root: &Path,
        settings: &crate::config::AgeSettings,
        store: Option<Arc<dyn crate::state::StateStore>>,
    ) -> Self {
        Self {
            dir: state_root.join(crate::state::store::KEYS_DIR),
            backend: Backend::Age {
                age: Box::new(age_backend::AgeBackend::new(settings, store)),
                written: Mutex::default(),
            },
            legacy: None,
        }
    }

    /// The store `[state] keys` names: `keys_dir` for `files`, the state repository for `age`.
    pub fn configured(
        config: &crate::config::Config,
        keys_dir: &Path,
        state_root: &Path,
        store: Option<Arc<dyn crate::state::StateStore>>,
    ) -> Self {
        let (mut primary, legacy) = match &config.state.keys {
            crate::config::KeyBackend::Age(settings) => (
                Self::age(state_root, settings, store),
                Self::new(keys_dir.to_path_buf()),
            ),
            crate::config::KeyBackend::Files { identity } => {
                let settings = crate::config::AgeSettings {
                    recipients: Vec::new(),
                    identity: identity.clone(),
                };
                (
                    Self::new(keys_dir.to_path_buf()),
                    Self::age(state_root, &settings, store),
                )
            }
        };
        if legacy.dir.is_dir() {
            primary.legacy = Some(Box::new(legacy));
        }
        primary
    }

    /// The other backend's store, holding keys not moved yet (see `configured`).
    pub fn legacy(&self) -> Option<&KeyStore> {
        self.legacy.as_deref()
    }

    /// Whether this backend itself (not the legacy one) holds `relative`.
    pub fn holds(&self, relative: &str) -> bool {
        self.path_of(relative)
            .map(|path| path.is_file())
            .unwrap_or(false)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether keys are kept encrypted in the state repository.
    pub fn is_age(&self) -> bool {
        matches!(self.backend, Backend::Age { .. })
    }

    /// Why this store cannot decrypt (age without a usable identity); `None` when it can, or
    /// for the files backend.
    pub fn identity_problem(&self) -> Option<&age_backend::IdentityProblem> {
        match &self.backend {
            Backend::Age { age, .. } => age.identity_problem(),
            Backend::Files => None,
        }
    }

    /// Recipients configured for the age backend, sorted (empty for files).
    pub fn recipients(&self) -> &[String] {
        match &self.backend {
            Backend::Age { age, .. } => age.recipient_names(),
            Backend::Files => &[],
        }
    }

    /// The recipients `keys/recipients.txt` says the files were encrypted to (`None` when the
    /// file is missing, or for the files backend).
    pub fn recorded_recipients(&self) -> Option<Vec<String>> {
        if !self.is_age() {
            return None;
        }
        let text = fs::read_to_string(self.dir.join(age_backend::RECIPIENTS_FILE)).ok()?;
        let mut recipients: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_string)
            .collect();
        recipients.sort();
        recipients.dedup();
        Some(recipients)
    }

    /// Write `keys/recipients.txt` with the configured recipients (age only).
    pub fn record_recipients(&self) -> Result<(), KeyError> {
        let Backend::Age { age, .. } = &self.backend else {
            return Ok(());
        };
        let mut text = String::from(
            "# age recipients every key file here is encrypted to (written by certform)\n",
        );
        for recipient in age.recipient_names() {
            text.push_str(recipient);
            text.push('\n');
        }
        let relative = format!(
            "{}/{}",
            crate::state::store::KEYS_DIR,
            age_backend::RECIPIENTS_FILE
        );
        age.store()?
            .write_public_file(&relative, &text)
            .map_err(|source| KeyError::State {
                source: Box::new(source),
            })
    }

    /// Remove `keys/recipients.txt` (age only), once no key file is left.
    pub fn remove_recipients_file(&self) -> Result<(), KeyError> {
        let Backend::Age { age, .. } = &self.backend else {
            return Ok(());
        };
        age.store()?
            .remove_public_file(&format!(
                "{}/{}",
                crate::state::store::KEYS_DIR,
                age_backend::RECIPIENTS_FILE
            ))
            .map_err(|source| KeyError::State {
                source: Box::new(source),
            })
    }

    /// Encrypt the key at `relative` again, to the configured recipients (age only; needs the
    /// identity). The old ciphertext is replaced in the work tree.
    pub fn reencrypt(&self, relative: &str) -> Result<(), KeyError> {
        let Backend::Age { age, .. } = &self.backend else {
            return Ok(());
        };
        let key = self.read(relative)?;
        let ciphertext = age.encrypt(key.pem().as_bytes())?;
        self.store_file(age, relative, &ciphertext)
    }

    /// The decrypted bytes of the age file `relative` (e.g. `acme/NAME/account.age`); `None`
    /// when it does not exist (age only).
    pub fn read_sealed(
        &self,
        relative: &str,
    ) -> Result<Option<crate::secrets::Secret<Vec<u8>>>, KeyError> {
        let Backend::Age { age, .. } = &self.backend else {
            return Ok(None);
        };
        let path = self.path_of(relative)?;
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeyError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        Ok(Some(crate::secrets::Secret::new(
            age.decrypt(&path, &bytes)?,
        )))
    }

    /// Encrypt `bytes` to the recipients into the age file `relative`: through the state store
    /// when there is one, else straight to the work tree (`record_sealed` records it later).
    pub fn write_sealed(&self, relative: &str, bytes: &[u8]) -> Result<(), KeyError> {
        let Backend::Age { age, .. } = &self.backend else {
            return Err(KeyError::ReadOnly);
        };
        let path = self.path_of(relative)?;
        let ciphertext = age.encrypt(bytes)?;
        if age.store().is_ok() {
            return self.store_file(age, relative, &ciphertext);
        }
        let parent = path.parent().unwrap_or(&self.dir).to_path_buf();
        crate::atomic_file::create_dir_all(&parent, 0o755).map_err(|source| KeyError::Io {
            action: "create directory",
            path: parent,
            source,
        })?;
        crate::atomic_file::write(&path, ciphertext.as_bytes(), 0o644).map_err(|source| {
            KeyError::Io {
                action: "write",
                path,
                source,
            }
        })
    }

    /// Have the state commit hold the age file `relative` when it exists (one written by
    /// `write_sealed` without a store).
    pub fn record_sealed(&self, relative: &str) -> Result<(), KeyError> {
        let Backend::Age { age, .. } = &self.backend else {
            return Ok(());
        };
        let path = self.path_of(relative)?;
        match fs::read_to_string(&path) {
            Ok(text) => self.store_file(age, relative, &text),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(KeyError::Io {
                action: "read",
                path,
                source,
            }),
        }
    }

    /// Every key file's relative path (`<name>/<key id>.key`), sorted.
    pub fn all_key_files(&self) -> Result<Vec<String>, KeyError> {
        let listing = match fs::read_dir(&self.dir) {
            Ok(listing) => listing,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(KeyError::Io {
                    action: "list",
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut files = Vec::new();
        for entry in listing.filter_map(Result::ok) {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            if certificate_key_path(&name, "create-00000000").is_err() {
                continue;
            }
            for key_id in self.certificate_key_ids(&name)? {
                files.push(certificate_key_path(&name, &key_id)?);
            }
        }
        files.sort();
        Ok(files)
    }

    /// The key file's suffix in this backend.
    fn suffix(&self) -> &'static str {
        match self.backend {
            Backend::Files => ".key",
            Backend::Age { .. } => ".age",
        }
    }

    /// Write an age file through the state store, so the state commit holds it.
    fn store_file(
        &self,
        age: &age_backend::AgeBackend,
        relative: &str,
        ciphertext: &str,
    ) -> Result<(), KeyError> {
        let stored = self.stored_name(relative);
        age.store()?
            .write_public_file(
                &format!("{}/{stored}", crate::state::store::KEYS_DIR),
                ciphertext,
            )
            .map_err(|source| KeyError::State {
                source: Box::new(source),
            })
    }

    /// `relative` as the backend names the file (`.key` becomes `.age` for age).
    fn stored_name(&self, relative: &str) -> String {
        match (&self.backend, relative.strip_suffix(".key")) {
            (Backend::Age { .. }, Some(stem)) => format!("{stem}.age"),
            _ => relative.to_string(),
        }
    }

    /// Write `key` to `relative` (creating directories 0700, the file 0600, atomically and fsynced).
    ///
    /// Writing the same key again is a no-op; a different key at an existing path is refused, so
    /// a key an order may already depend on is never lost.
    pub fn write(&self, relative: &str, key: &PrivateKey) -> Result<(), KeyError> {
        let path = self.path_of(relative)?;
        if let Backend::Age { age, written } = &self.backend {
            if path.is_file() {
                // A ciphertext differs every time: compare what it decrypts to.
                return match self.read(relative) {
                    Ok(existing) if existing.pem() == key.pem() => Ok(()),
                    _ => Err(KeyError::KeyExists { path }),
                };
            }
            let ciphertext = age.encrypt(key.pem().as_bytes())?;
            self.store_file(age, relative, &ciphertext)?;
            written
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(relative.to_string(), crate::secrets::Secret::new(key.pem()));
            return Ok(());
        }
        match fs::read(&path) {
            Ok(existing) if existing == key.pem().as_bytes() => return Ok(()),
            Ok(_) => return Err(KeyError::KeyExists { path }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(KeyError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        }
        let parent = path.parent().unwrap_or(&self.dir);
        crate::atomic_file::create_dir_all(parent, KEY_DIR_MODE).map_err(|source| {
            KeyError::Io {
                action: "create directory",
                path: parent.to_path_buf(),
                source,
            }
        })?;
        crate::atomic_file::write(&path, key.pem().as_bytes(), KEY_FILE_MODE).map_err(|source| {
            KeyError::Io {
                action: "write",
                path,
                source,
            }
        })
    }

    /// Read and parse the key at `relative`.
    pub fn read(&self, relative: &str) -> Result<PrivateKey, KeyError> {
        let path = self.path_of(relative)?;
        if let Some(legacy) = &self.legacy {
            if !path.is_file() && legacy.holds(relative) {
                return legacy.read(relative);
            }
        }
        if let Backend::Age { age, written } = &self.backend {
            let known = written
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(relative)
                .map(|pem| pem.expose().clone());
            let text = match known {
                Some(pem) => pem,
                None => {
                    let bytes = fs::read(&path).map_err(|source| KeyError::Io {
                        action: "read",
                        path: path.clone(),
                        source,
                    })?;
                    let plaintext = age.decrypt(&path, &bytes)?;
                    String::from_utf8(plaintext).map_err(|_| KeyError::AgeDecrypt {
                        path: path.clone(),
                        reason: "it does not hold a PEM private key".to_string(),
                    })?
                }
            };
            return PrivateKey::from_pem(&text).map_err(|source| KeyError::KeyFile {
                path,
                source: Box::new(source),
            });
        }
        let text = fs::read_to_string(&path).map_err(|source| KeyError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        PrivateKey::from_pem(&text).map_err(|source| KeyError::KeyFile {
            path,
            source: Box::new(source),
        })
    }

    /// Whether a key file exists at `relative` (false for invalid names).
    pub fn exists(&self, relative: &str) -> bool {
        self.holds(relative)
            || self
                .legacy
                .as_ref()
                .is_some_and(|legacy| legacy.holds(relative))
    }

    /// Whether the key file of certificate `name` and `key_id` in keys_dir is known to hold
    /// the public key `certificate_spki`: a quick check for `plan` (the file is read only when
    /// its stat data changed, and parsed only when these bytes were not parsed before:
    /// `check_cache`). `false` means
    /// "not shown here", never "mismatch": `certificate_key` then says why.
    pub fn holds_key_for(&self, name: &str, key_id: Option<&str>, certificate_spki: &str) -> bool {
        if !matches!(self.backend, Backend::Files) {
            return false;
        }
        let Some(path) = key_id
            .and_then(|key_id| certificate_key_path(name, key_id).ok())
            .and_then(|relative| self.path_of(&relative).ok())
        else {
            return false;
        };
        crate::check_cache::key_spki_at(&path).is_some_and(|spki| spki == certificate_spki)
    }

    /// The key of certificate `name` whose certificate has public key `certificate_spki`
    /// (lowercase hex SHA-256 of the DER SPKI): read from the path derived from `name` and
    /// `key_id`, and refused unless its public key is the certificate's.
    pub fn certificate_key(
        &self,
        name: &str,
        key_id: Option<&str>,
        certificate_spki: &str,
    ) -> Result<PrivateKey, KeyError> {
        let not_held = |reason: &str| KeyError::NotHeld {
            certificate: name.to_string(),
            reason: reason.to_string(),
        };
        let key_id = key_id.ok_or_else(|| not_held("state names no key of its own"))?;
        let relative = certificate_key_path(name, key_id)?;
        let path = self.path_of(&relative)?;
        if !self.exists(&relative) {
            return Err(not_held(&format!("`{}` does not exist", path.display())));
        }
        let key = self.read(&relative)?;
        if key.spki_sha256() != certificate_spki {
            return Err(KeyError::Mismatch {
                certificate: name.to_string(),
                path,
                certificate_spki: certificate_spki.to_string(),
                key_spki: key.spki_sha256(),
            });
        }
        Ok(key)
    }

    /// The key ids of every key file certificate `name` keeps (`<name>/<key_id>.key`), sorted.
    /// A missing directory holds none; files that are not key ids are left out.
    pub fn certificate_key_ids(&self, name: &str) -> Result<Vec<String>, KeyError> {
        let dir = self.dir.join(name);
        // Checks the name: the listing can only be one certificate's own directory.
        certificate_key_path(name, "create-00000000")?;
        let listing = match fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(KeyError::Io {
                    action: "list",
                    path: dir,
                    source,
                })
            }
        };
        let mut ids: Vec<String> = listing
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let file_name = entry.file_name().into_string().ok()?;
                let id = file_name.strip_suffix(self.suffix())?;
                crate::state::is_key_id(id).then(|| id.to_string())
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Give key `key_id` of certificate `from` a second name under certificate `to` (a hard
    /// link, fsynced): the key then exists under both names and is never absent from both. A
    /// file already at the target with the same bytes is accepted (a resumed move); one with
    /// other bytes is refused.
    pub fn link_certificate_key(&self, from: &str, to: &str, key_id: &str) -> Result<(), KeyError> {
        let source = self.path_of(&certificate_key_path(from, key_id)?)?;
        let target = self.path_of(&certificate_key_path(to, key_id)?)?;
        if let Backend::Age { age, .. } = &self.backend {
            // The same ciphertext under the new name; the commit records both.
            let bytes = fs::read_to_string(&source).map_err(|error| KeyError::Io {
                action: "read",
                path: source.clone(),
                source: error,
            })?;
            return match fs::read_to_string(&target) {
                Ok(existing) if existing == bytes => Ok(()),
                Ok(_) => Err(KeyError::KeyExists { path: target }),
                Err(_) => self.store_file(age, &certificate_key_path(to, key_id)?, &bytes),
            };
        }
        let parent = target.parent().unwrap_or(&self.dir).to_path_buf();
        crate::atomic_file::create_dir_all(&parent, KEY_DIR_MODE).map_err(|source| {
            KeyError::Io {
                action: "create directory",
                path: parent.clone(),
                source,
            }
        })?;
        match fs::hard_link(&source, &target) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                let same = fs::read(&source)
                    .ok()
                    .is_some_and(|bytes| fs::read(&target).is_ok_and(|existing| existing == bytes));
                if !same {
                    return Err(KeyError::KeyExists { path: target });
                }
            }
            Err(error) => {
                return Err(KeyError::Io {
                    action: "link",
                    path: target,
                    source: error,
                })
            }
        }
        crate::atomic_file::sync_dir(&parent).map_err(|source| KeyError::Io {
            action: "sync",
            path: parent,
            source,
        })
    }

    /// Remove key `key_id` of certificate `name` (a missing file is not an error), and the
    /// certificate's key directory once it is empty.
    pub fn remove_certificate_key(&self, name: &str, key_id: &str) -> Result<(), KeyError> {
        let path = self.path_of(&certificate_key_path(name, key_id)?)?;
        if let Backend::Age { age, .. } = &self.backend {
            let stored = self.stored_name(&certificate_key_path(name, key_id)?);
            return age
                .store()?
                .remove_public_file(&format!("{}/{stored}", crate::state::store::KEYS_DIR))
                .map_err(|source| KeyError::State {
                    source: Box::new(source),
                });
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(KeyError::Io {
                    action: "remove",
                    path,
                    source,
                })
            }
        }
        let dir = self.dir.join(name);
        // Only an empty directory is removed; one holding anything else stays.
        let _ = fs::remove_dir(&dir);
        crate::atomic_file::sync_dir(&self.dir).map_err(|source| KeyError::Io {
            action: "sync",
            path: self.dir.clone(),
            source,
        })
    }

    /// The keys directory's mode when group or others can reach it (`None` when private or
    /// missing).
    pub fn exposed_mode(&self) -> Option<u32> {
        use std::os::unix::fs::PermissionsExt;
        if self.is_age() {
            return None;
        }
        let metadata = fs::symlink_metadata(&self.dir).ok()?;
        let mode = metadata.permissions().mode() & 0o7777;
        (metadata.is_dir() && mode & 0o077 != 0).then_some(mode)
    }

    /// Narrow the keys directory to 0700 when group or others can reach it; returns the mode
    /// it had (`None` when it was already private or does not exist yet).
    pub fn secure_dir(&self) -> Result<Option<u32>, KeyError> {
        use std::os::unix::fs::PermissionsExt;
        if self.is_age() {
            return Ok(None);
        }
        let metadata = match fs::symlink_metadata(&self.dir) {
            Ok(metadata) if metadata.is_dir() => metadata,
            Ok(_) => return Ok(None),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeyError::Io {
                    action: "inspect",
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            return Ok(None);
        }
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(KEY_DIR_MODE)).map_err(
            |source| KeyError::Io {
                action: "set the mode of",
                path: self.dir.clone(),
                source,
            },
        )?;
        Ok(Some(mode))
    }

    /// Resolve `relative` under the keys directory, refusing anything that could escape it.
    fn path_of(&self, relative: &str) -> Result<PathBuf, KeyError> {
        let invalid = |reason| KeyError::InvalidKeyPath {
            relative: relative.to_string(),
            reason,
        };
        if relative.is_empty() {
            return Err(invalid("empty"));
        }
        let path = Path::new(relative);
        for component in path.components() {
            match component {
                Component::Normal(_) => {}
                Component::ParentDir => return Err(invalid("`..` is not allowed")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(invalid("must be relative to the keys directory"))
                }
                Component::CurDir => return Err(invalid("`.` is not allowed")),
            }
        }
        if relative.ends_with('/') {
            return Err(invalid("must name a file"));
        }
        Ok(self.dir.join(self.stored_name(relative)))
    }
}

impl KeyError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            KeyError::NotHeld { certificate, .. } | KeyError::Mismatch { certificate, .. } => {
                Some(format!(
                    "run `certform apply --replace {certificate}` to order a new certificate with a new key"
                ))
            }
            KeyError::NoIdentity { hint, .. } => Some(hint.clone()),
            KeyError::AgeDecrypt { .. } => Some(
                "check `[state] age_identity`: it must be an identity whose public key was in `age_recipients` when the file was written; a damaged file can be restored from git history".to_string(),
            ),
            _ => None,
        }
    }
}

/// `acme/<ca>/account.age`: where ACME account `ca` keeps its account file with `keys = "age"`,
/// relative to the repository's `keys/`.
pub fn sealed_account_path(ca: &str) -> String {
    format!("acme/{ca}/account.age")
}

/// An ACME account file kept in the state repository, encrypted to the age recipients.
pub struct SealedAccount {
    keys: KeyStore,
    relative: String,
}

impl SealedAccount {
    /// Account `ca`'s file under `<state root>/keys/`; written straight to the work tree (the
    /// apply records it with `KeyStore::record_sealed`).
    pub fn new(state_root: &Path, settings: &crate::config::AgeSettings, ca: &str) -> Self {
        Self {
            keys: KeyStore::age(state_root, settings, None),
            relative: sealed_account_path(ca),
        }
    }

    /// Whether the repository holds the sealed account.
    pub fn exists(&self) -> bool {
        self.keys.holds(&self.relative)
    }
}

impl crate::ca::acme::AccountSeal for SealedAccount {
    fn place(&self) -> String {
        self.keys.dir().join(&self.relative).display().to_string()
    }

    fn load(&self) -> Result<Option<crate::secrets::Secret<Vec<u8>>>, String> {
        self.keys.read_sealed(&self.relative).map_err(|error| {
            let reason = match &error {
                KeyError::NoIdentity { reason, .. } | KeyError::AgeDecrypt { reason, .. } => {
                    reason.clone()
                }
                other => other.to_string(),
            };
            match error.hint() {
                Some(hint) => format!("{reason} (hint: {hint})"),
                None => reason,
            }
        })
    }

    fn save(&self, bytes: &[u8]) -> Result<(), String> {
        self.keys
            .write_sealed(&self.relative, bytes)
            .map_err(|error| error.to_string())
    }
}

/// `<name>/<key_id>.key`: where certificate `name` keeps the key `key_id`, relative to the keys
/// directory. Both parts are checked, so the result can only ever name one of that
/// certificate's own keys (never a CA key, another certificate's key or a path outside).
pub fn certificate_key_path(name: &str, key_id: &str) -> Result<String, KeyError> {
    let relative = format!("{name}/{key_id}.key");
    let invalid = |reason| KeyError::InvalidKeyPath {
        relative: relative.clone(),
        reason,
    };
    let name_ok = name.len() <= 63
        && name.bytes().enumerate().all(|(index, byte)| {
            byte.is_ascii_lowercase()
                || byte.is_ascii_digit()
                || (index > 0 && (byte == b'_' || byte == b'-'))
        })
        && !name.is_empty();
    if !name_ok {
        return Err(invalid(
            "certificate names must match `[a-z0-9][a-z0-9_-]{0,62}`",
        ));
    }
    if !crate::state::is_key_id(key_id) {
        return Err(invalid(
            "key ids are `create-`, `renew-` or `reissue-` and hex digits",
        ));
    }
    Ok(relative)
}

/// Facts about one certificate, as certform records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub serial: crate::serial::Serial,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Lowercase hex SHA-256 of the certificate's DER.
    pub sha256_fingerprint: String,
    /// Lowercase hex SHA-256 of the DER `SubjectPublicKeyInfo`.
    pub spki_sha256: String,
    pub common_name: Option<String>,
    /// dNSName SANs, sorted and without duplicates.
    pub sans: Vec<String>,
}

/// Inspect a PEM chain (leaf first): the leaf's facts and every certificate as its own PEM block.
///
/// Fails on empty input, text that holds no certificate, non-certificate blocks (such as a key
/// pasted into the chain) and certificates that do not parse.
pub fn inspect_chain(chain_pem: &str) -> Result<(CertificateInfo, Vec<String>), KeyError> {
    let blocks = pem::parse_many(chain_pem).map_err(|source| KeyError::ChainPem { source })?;
    if blocks.is_empty() {
        return Err(KeyError::EmptyChain);
    }
    let mut leaf = None;
    let mut pems = Vec::with_capacity(blocks.len());
    for (index, block) in blocks.iter().enumerate() {
        if block.tag() != "CERTIFICATE" {
            return Err(KeyError::NotCertificate {
                index,
                tag: block.tag().to_string(),
            });
        }
        let info = certificate_info(index, block.contents())?;
        if leaf.is_none() {
            leaf = Some(info);
        }
        pems.push(encode_certificate(block.contents()));
    }
    let leaf = leaf.ok_or(KeyError::EmptyChain)?;
    Ok((leaf, pems))
}

/// PEM-encode a DER certificate with LF line endings.
pub fn encode_certificate(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

fn certificate_info(index: usize, der: &[u8]) -> Result<CertificateInfo, KeyError> {
    let parse_error = |reason: String| KeyError::CertificateParse { index, reason };
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|error| parse_error(error.to_string()))?;
    if !rest.is_empty() {
        return Err(parse_error(
            "trailing bytes after the certificate".to_string(),
        ));
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let mut sans = Vec::new();
    for extension in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() {
            for name in &san.general_names {
                if let GeneralName::DNSName(dns) = name {
                    sans.push(dns.to_string());
                }
            }
        }
    }
    sans.sort();
    sans.dedup();
    Ok(CertificateInfo {
        serial: crate::serial::Serial::from_bytes(cert.raw_serial()),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        sha256_fingerprint: sha256_hex(der),
        spki_sha256: sha256_hex(cert.public_key().raw),
        common_name,
        sans,
    })
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use rcgen::{Issuer, KeyPair};

    use super::*;

    /// Run `openssl` with `args`; panics with an install hint when it is missing.
    pub(crate) fn openssl(args: &[&str]) -> std::process::Output {
        Command::new("openssl")
            .args(args)
            .output()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run `openssl` ({error}); install it (e.g. `apt-get install openssl`)"
                )
            })
    }

    fn all_specs() -> Vec<KeySpec> {
        vec![
            KeySpec::Rsa(2048),
            KeySpec::Rsa(3072),
            KeySpec::Rsa(4096),
            KeySpec::Ecdsa(256),
            KeySpec::Ecdsa(384),
            KeySpec::Ed25519,
        ]
    }

    #[test]
    fn every_algorithm_generates_a_key_whose_csr_verifies() {
        let dir = tempfile::tempdir().unwrap();
        for spec in all_specs() {
            let key = PrivateKey::generate(spec).unwrap();
            assert_eq!(key.spec(), spec);
            assert!(key.pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let sans = vec!["example.com".to_string(), "*.example.com".to_string()];
            let csr = key.csr_der("example.com", &sans).unwrap();
            let path = dir.path().join(format!("{}.csr", spec.label()));
            fs::write(&path, &csr).unwrap();
            let output = openssl(&[
                "req",
                "-verify",
                "-noout",
                "-text",
                "-inform",
                "DER",
                "-in",
                path.to_str().unwrap(),
            ]);
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "{spec}: {stdout}{stderr}");
            assert!(stdout.contains("DNS:*.example.com"), "{spec}: {stdout}");
            assert!(stdout.contains("CN=example.com") || stdout.contains("CN = example.com"));
        }
    }

    #[test]
    fn unsupported_sizes_are_refused() {
        assert!(matches!(
            PrivateKey::generate(KeySpec::Rsa(1024)),
            Err(KeyError::UnsupportedSpec { .. })
        ));
        assert!(matches!(
            PrivateKey::generate(KeySpec::Ecdsa(521)),
            Err(KeyError::UnsupportedSpec { .. })
        ));
    }

    #[test]
    fn from_pem_round_trips() {
        for spec in [KeySpec::Ecdsa(256), KeySpec::Ed25519, KeySpec::Rsa(2048)] {
            let key = PrivateKey::generate(spec).unwrap();
            let again = PrivateKey::from_pem(key.pem()).unwrap();
            assert_eq!(again.pem(), key.pem());
            assert_eq!(again.spki_sha256(), key.spki_sha256());
            assert_eq!(again.spec(), spec);
        }
    }

    #[test]
    fn debug_and_errors_never_show_the_key() {
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        assert_eq!(format!("{key:?}"), "PrivateKey(***)");
        let broken = key.pem().replace("PRIVATE KEY", "EC PRIVATE KEY");
        let error = PrivateKey::from_pem(&broken).unwrap_err();
        assert!(error.to_string().contains("EC PRIVATE KEY"));
        let body: String = key.pem().lines().nth(1).unwrap().to_string();
        assert!(!format!("{error:?}").contains(&body));
        assert!(PrivateKey::from_pem("garbage").is_err());
    }

    #[test]
    fn openssl_generated_key_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let output = openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            path.to_str().unwrap(),
        ]);
        assert!(output.status.success());
        let key = PrivateKey::from_pem(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(key.spec(), KeySpec::Ecdsa(384));
    }

    #[test]
    fn key_store_writes_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path().join("keys"));
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        assert!(!store.exists("web/1.key"));
        store.write("web/1.key", &key).unwrap();
        assert!(store.exists("web/1.key"));
        let file = dir.path().join("keys/web/1.key");
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir.path().join("keys/web")), 0o700);
        assert_eq!(mode(&dir.path().join("keys")), 0o700);
        let read = store.read("web/1.key").unwrap();
        assert_eq!(read.pem(), key.pem());

        // Same key again: fine. A different key: refused, the first one survives.
        store.write("web/1.key", &key).unwrap();
        let other = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        assert!(matches!(
            store.write("web/1.key", &other),
            Err(KeyError::KeyExists { .. })
        ));
        assert_eq!(store.read("web/1.key").unwrap().pem(), key.pem());
    }

    #[test]
    fn key_store_refuses_escaping_paths() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path().to_path_buf());
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        for bad in [
            "../x.key",
            "/etc/x.key",
            "a/../../x.key",
            "",
            "./x.key",
            "dir/",
        ] {
            assert!(
                matches!(store.write(bad, &key), Err(KeyError::InvalidKeyPath { .. })),
                "{bad}"
            );
            assert!(!store.exists(bad));
        }
        let missing = store.read("missing.key").unwrap_err();
        assert!(missing.to_string().contains("missing.key"), "{missing}");
    }

    #[test]
    fn corrupt_key_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bad.key"), "not a key").unwrap();
        let store = KeyStore::new(dir.path().to_path_buf());
        let error = store.read("bad.key").unwrap_err();
        assert!(error.to_string().contains("bad.key"), "{error}");
    }

    #[test]
    fn certificate_key_paths_cannot_escape() {
        assert_eq!(
            certificate_key_path("web", "renew-0a1b2c3d4e5f").unwrap(),
            "web/renew-0a1b2c3d4e5f.key"
        );
        for (name, id) in [
            ("..", "renew-0a1b2c3d4e5f"),
            ("local-ca/local", "renew-0a1b2c3d4e5f"),
            ("web", "root"),
            ("web", "../root"),
            ("", "create-00000000"),
            ("Web", "create-00000000"),
            ("-web", "create-00000000"),
        ] {
            assert!(
                matches!(
                    certificate_key_path(name, id),
                    Err(KeyError::InvalidKeyPath { .. })
                ),
                "{name} {id}"
            );
        }
    }

    #[test]
    fn certificate_key_must_match_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path().to_path_buf());
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        let other = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        store.write("web/create-00112233.key", &key).unwrap();
        let found = store
            .certificate_key("web", Some("create-00112233"), &key.spki_sha256())
            .unwrap();
        assert_eq!(found.pem(), key.pem());
        let error = store
            .certificate_key("web", Some("create-00112233"), &other.spki_sha256())
            .unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, KeyError::Mismatch { .. }), "{text}");
        assert!(text.contains(&key.spki_sha256()), "{text}");
        assert!(text.contains(&other.spki_sha256()), "{text}");
        assert!(text.contains("`web`"), "{text}");
        assert!(!text.contains("PRIVATE"), "{text}");
        assert!(matches!(
            store.certificate_key("web", None, &key.spki_sha256()),
            Err(KeyError::NotHeld { .. })
        ));
        assert!(matches!(
            store.certificate_key("web", Some("create-99999999"), &key.spki_sha256()),
            Err(KeyError::NotHeld { .. })
        ));
    }

    #[test]
    fn wide_keys_dir_is_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        fs::create_dir(&keys).unwrap();
        fs::set_permissions(&keys, fs::Permissions::from_mode(0o777)).unwrap();
        let store = KeyStore::new(keys.clone());
        assert_eq!(store.secure_dir().unwrap(), Some(0o777));
        assert_eq!(
            fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(store.secure_dir().unwrap(), None);
        assert_eq!(
            KeyStore::new(dir.path().join("none")).secure_dir().unwrap(),
            None
        );
    }

    /// Issue a certificate for `key` from a throwaway CA.
    fn issue_for(key: &PrivateKey) -> (String, String) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let mut params =
            CertificateParams::new(vec!["b.example".to_string(), "a.example".to_string()]).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "a.example");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x00, 0x8f, 0x01]));
        let leaf = params.signed_by(key.key_pair(), &issuer).unwrap();
        (leaf.pem(), ca_cert.pem())
    }

    #[test]
    fn spki_of_key_matches_issued_certificate() {
        for spec in [
            KeySpec::Ecdsa(256),
            KeySpec::Ecdsa(384),
            KeySpec::Ed25519,
            KeySpec::Rsa(2048),
        ] {
            let key = PrivateKey::generate(spec).unwrap();
            let (leaf, ca) = issue_for(&key);
            let (info, pems) = inspect_chain(&format!("{leaf}{ca}")).unwrap();
            assert_eq!(info.spki_sha256, key.spki_sha256(), "{spec}");
            assert_eq!(pems.len(), 2);
            assert_eq!(info.sans, vec!["a.example", "b.example"]);
            assert_eq!(info.common_name.as_deref(), Some("a.example"));
            assert_eq!(info.serial.as_str(), "8f01");
        }
    }

    #[test]
    fn inspect_matches_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        let (leaf, _) = issue_for(&key);
        let path = dir.path().join("leaf.pem");
        fs::write(&path, &leaf).unwrap();
        let (info, _) = inspect_chain(&leaf).unwrap();
        let output = openssl(&[
            "x509",
            "-in",
            path.to_str().unwrap(),
            "-noout",
            "-fingerprint",
            "-sha256",
            "-serial",
        ]);
        let stdout = String::from_utf8_lossy(&output.stdout)
            .to_lowercase()
            .replace(':', "");
        assert!(stdout.contains(&info.sha256_fingerprint), "{stdout}");
        assert!(
            stdout.contains(&format!("serial={}", info.serial)),
            "{stdout}"
        );
    }

    #[test]
    fn inspect_rejects_garbage() {
        assert!(matches!(inspect_chain(""), Err(KeyError::EmptyChain)));
        assert!(matches!(
            inspect_chain("hello world"),
            Err(KeyError::EmptyChain)
        ));
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let error = inspect_chain(key.pem()).unwrap_err();
        assert!(matches!(error, KeyError::NotCertificate { index: 0, .. }));
        let bogus = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            inspect_chain(bogus),
            Err(KeyError::CertificateParse { index: 0, .. })
        ));
    }

    #[test]
    fn a_linked_key_keeps_its_bytes_and_a_different_one_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::new(dir.path().to_path_buf());
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).expect("key");
        store.write("web/create-00112233.key", &key).expect("write");
        assert_eq!(
            store.certificate_key_ids("web").expect("list"),
            vec!["create-00112233".to_string()]
        );
        store
            .link_certificate_key("web", "www", "create-00112233")
            .expect("link");
        // Linking again (a resumed move) is accepted.
        store
            .link_certificate_key("web", "www", "create-00112233")
            .expect("link again");
        assert_eq!(
            store.read("www/create-00112233.key").expect("read").pem(),
            key.pem()
        );
        let other = PrivateKey::generate(KeySpec::Ecdsa(256)).expect("key");
        store
            .write("api/create-00112233.key", &other)
            .expect("write");
        assert!(matches!(
            store.link_certificate_key("api", "www", "create-00112233"),
            Err(KeyError::KeyExists { .. })
        ));
        store
            .remove_certificate_key("web", "create-00112233")
            .expect("remove");
        assert!(!dir.path().join("web").exists(), "empty directory removed");
        assert_eq!(
            store.read("www/create-00112233.key").expect("read").pem(),
            key.pem()
        );
        assert!(store.certificate_key_ids("../x").is_err());
        assert!(store.certificate_key_ids("gone").expect("none").is_empty());
    }
}
