//! The `jks` deploy target: a Java KeyStore (the JDK's proprietary format, still what many
//! Java servers are configured with) holding one private key entry with its chain.
//!
//! No maintained crate writes JKS, and the format is small, so it is written here after the
//! JDK's `sun.security.provider.JavaKeyStore` and `KeyProtector`:
//!
//! - file: magic `FEEDFEED`, version 2, entry count, the entries, then an integrity digest
//!   SHA-1(store password as UTF-16BE ‖ "Mighty Aphrodite" ‖ everything before the digest);
//! - a private key entry: tag 1, alias (Java modified UTF-8, lowercase), creation time in
//!   milliseconds, the protected key as an `EncryptedPrivateKeyInfo` (algorithm OID
//!   1.3.6.1.4.1.42.2.17.1.1), the chain length and each certificate (`X.509`, DER);
//! - the key protection: a random 20-byte salt; a keystream of SHA-1 blocks, each over the
//!   key password (UTF-16BE) and the previous block (the salt first), XORed with the PKCS#8
//!   key; then the salt ‖ the XORed key ‖ SHA-1(key password ‖ PKCS#8 key).
//!
//! SHA-1 here is the format's, not a choice: JKS offers nothing else (prefer `pkcs12`).

pub(crate) mod open;
pub mod settings;

use aws_lc_rs::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY};
use time::OffsetDateTime;

use crate::deploy::keystore::{bundle_ders, password};
use crate::deploy::{Bundle, DeployError};
use crate::spec::JksTarget;

const MAGIC: u32 = 0xFEED_FEED;
const VERSION: u32 = 2;
const PRIVATE_KEY_ENTRY: u32 = 1;
/// The `KeyProtector` algorithm, 1.3.6.1.4.1.42.2.17.1.1, DER.
const KEY_PROTECTOR_OID: &[u8] = &[
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02, 0x11, 0x01, 0x01,
];
const SHA1_LEN: usize = 20;

/// The JKS file of `target` holding `bundle`, its entry created at `now`.
pub(crate) fn encode(
    id: &str,
    target: &JksTarget,
    bundle: &Bundle,
    now: OffsetDateTime,
) -> Result<Vec<u8>, DeployError> {
    let failed = |reason: String| DeployError::Keystore {
        target: id.to_string(),
        reason,
    };
    let (key_der, certificates) = bundle_ders(bundle).map_err(failed)?;
    let store_password = password(id, &target.store_password)?;
    let key_password = match &target.key_password {
        Some(reference) => password(id, reference)?,
        None => store_password.clone(),
    };
    let mut salt = [0u8; SHA1_LEN];
    getrandom::fill(&mut salt)
        .map_err(|error| failed(format!("no random salt from the system: {error}")))?;
    let protected = protect(&key_der, key_password.expose(), &salt);
    let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    Ok(store(
        &target.file.alias,
        millis,
        &protected,
        &certificates,
        store_password.expose(),
    ))
}

/// The whole keystore: header, one private key entry, integrity digest.
fn store(
    alias: &str,
    millis: u64,
    protected_key: &[u8],
    certificates: &[Vec<u8>],
    store_password: &str,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&PRIVATE_KEY_ENTRY.to_be_bytes());
    write_utf(&mut out, &alias.to_lowercase());
    out.extend_from_slice(&millis.to_be_bytes());
    write_bytes(&mut out, protected_key);
    out.extend_from_slice(&len32(certificates.len()).to_be_bytes());
    for certificate in certificates {
        write_utf(&mut out, "X.509");
        write_bytes(&mut out, certificate);
    }
    let mut digest = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
    digest.update(&utf16be(store_password));
    digest.update(b"Mighty Aphrodite");
    digest.update(&out);
    out.extend_from_slice(digest.finish().as_ref());
    out
}

/// `KeyProtector.protect`: the `EncryptedPrivateKeyInfo` of `pkcs8` under `password`.
fn protect(pkcs8: &[u8], password: &str, salt: &[u8; SHA1_LEN]) -> Vec<u8> {
    let password = utf16be(password);
    let mut keystream = Vec::with_capacity(pkcs8.len() + SHA1_LEN);
    let mut block = salt.to_vec();
    while keystream.len() < pkcs8.len() {
        let mut digest = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
        digest.update(&password);
        digest.update(&block);
        block = digest.finish().as_ref().to_vec();
        keystream.extend_from_slice(&block);
    }
    let mut protected = salt.to_vec();
    protected.extend(pkcs8.iter().zip(&keystream).map(|(byte, key)| byte ^ key));
    let mut check = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
    check.update(&password);
    check.update(pkcs8);
    protected.extend_from_slice(check.finish().as_ref());

    let mut algorithm = KEY_PROTECTOR_OID.to_vec();
    algorithm.extend_from_slice(&[0x05, 0x00]);
    let mut info = der(0x30, &algorithm);
    info.extend(der(0x04, &protected));
    der(0x30, &info)
}

/// One DER element: `tag`, definite length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|byte| *byte == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// Java's `DataOutputStream.writeUTF`: a 2-byte length, then modified UTF-8 (NUL as `C0 80`,
/// characters outside the BMP as two 3-byte surrogates). Longer strings are cut (aliases are
/// checked to be at most 255 characters).
fn write_utf(out: &mut Vec<u8>, text: &str) {
    let mut bytes = Vec::new();
    for unit in text.encode_utf16() {
        match unit {
            0x0001..=0x007f => bytes.push(unit as u8),
            0x0000 | 0x0080..=0x07ff => {
                bytes.push(0xc0 | (unit >> 6) as u8);
                bytes.push(0x80 | (unit & 0x3f) as u8);
            }
            _ => {
                bytes.push(0xe0 | (unit >> 12) as u8);
                bytes.push(0x80 | ((unit >> 6) & 0x3f) as u8);
                bytes.push(0x80 | (unit & 0x3f) as u8);
            }
        }
    }
    bytes.truncate(usize::from(u16::MAX));
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend(bytes);
}

/// A 4-byte length, then `bytes`.
fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&len32(bytes.len()).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// A Java `char[]` password as bytes: UTF-16 code units, big-endian.
fn utf16be(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

#[cfg(test)]
mod tests;
