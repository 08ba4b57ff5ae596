//! The `pkcs12` deploy target: the key, the certificate and its chain in one PKCS#12 file
//! protected by a password (Windows, Java, Tomcat, appliances).
//!
//! Encoded with the `p12-keystore` crate: by default AES-256-CBC with PBKDF2 (HMAC-SHA-256)
//! for the key and the certificates and an HMAC-SHA-256 MAC (what OpenSSL 3 and current JDKs
//! write); with `legacy = true`, 3DES (PKCS#12 KDF) and an HMAC-SHA-1 MAC for old Java and
//! Windows. Written and checked for drift as `keystore` describes.

pub(crate) mod open;
pub mod settings;

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};

use crate::deploy::keystore::{bundle_ders, password};
use crate::deploy::{Bundle, DeployError};
use crate::spec::Pkcs12Target;

/// Iterations of the password-based key derivations (OpenSSL 3's default is 2,048; 10,000
/// is what `p12-keystore` and current JDKs use).
const ITERATIONS: u32 = 10_000;

/// The PKCS#12 file of `target` holding `bundle`.
pub(crate) fn encode(
    id: &str,
    target: &Pkcs12Target,
    bundle: &Bundle,
) -> Result<Vec<u8>, DeployError> {
    let failed = |reason: String| DeployError::Keystore {
        target: id.to_string(),
        reason,
    };
    let (key_der, certificate_ders) = bundle_ders(bundle).map_err(failed)?;
    let key = PrivateKey::from_der(&key_der)
        .map_err(|_| failed("the private key is not a PKCS#8 key".to_string()))?;
    let certificates = certificate_ders
        .iter()
        .map(|der| Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| failed(format!("a certificate cannot be read: {error}")))?;
    // The local key id ties the key to its certificate: the leaf's fingerprint, as OpenSSL
    // and keytool use a digest of the certificate.
    let local_key_id = hex::decode(&bundle.sha256_fingerprint)
        .ok()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| crate::keys::sha256_hex(&certificate_ders[0]).into_bytes());
    let mut store = KeyStore::new();
    store.add_entry(
        &target.file.alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, certificates)),
    );
    let password = password(id, &target.password)?;
    let writer = store
        .writer(password.expose())
        .encryption_iterations(ITERATIONS)
        .mac_iterations(ITERATIONS);
    let writer = if target.legacy {
        writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1)
    } else {
        writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256)
    };
    writer
        .write()
        .map_err(|error| failed(format!("encoding failed: {error}")))
}

#[cfg(test)]
mod tests;
