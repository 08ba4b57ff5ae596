//! Recognises private key material in a file's bytes, so the state store can refuse to commit
//! it whatever the file is called.
//!
//! Detection is structural: PEM blocks are found by their armour and decoded whatever their
//! label says, and DER is recognised by its ASN.1 shape (PKCS#8, encrypted PKCS#8, PKCS#1 RSA,
//! SEC1 EC, OpenSSL DSA, PKCS#12), key stores by their magic (OpenSSH, PuTTY, JKS), so a key
//! renamed to `chain.pem` or stored as `backup.bin` is still found. Public material
//! (certificates, CSRs, public keys) is not flagged. DER is looked for at the start of the file
//! and inside PEM blocks only, not at every offset of arbitrary binary data. Performs no I/O.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};

/// The kind of private key material found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// A PEM block whose label names a private key, e.g. `EC PRIVATE KEY`.
    PemLabel(String),
    /// DER `PrivateKeyInfo` (PKCS#8), possibly inside PEM armour with another label.
    Pkcs8,
    /// DER `EncryptedPrivateKeyInfo` (PKCS#8 with a password-based cipher).
    EncryptedPkcs8,
    /// DER `RSAPrivateKey` (PKCS#1).
    Pkcs1Rsa,
    /// DER `ECPrivateKey` (SEC1).
    Sec1Ec,
    /// DER DSA private key as OpenSSL writes it.
    Dsa,
    /// A PKCS#12 (PFX) file: a container of keys and certificates.
    Pkcs12,
    /// An OpenSSH private key (`openssh-key-v1`).
    OpenSsh,
    /// A PuTTY private key file.
    Putty,
    /// A Java key store (JKS or JCEKS).
    JavaKeyStore,
}

impl fmt::Display for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyMaterial::PemLabel(label) => write!(f, "a PEM `{label}` block"),
            KeyMaterial::Pkcs8 => f.write_str("a PKCS#8 private key"),
            KeyMaterial::EncryptedPkcs8 => f.write_str("an encrypted PKCS#8 private key"),
            KeyMaterial::Pkcs1Rsa => f.write_str("a PKCS#1 RSA private key"),
            KeyMaterial::Sec1Ec => f.write_str("a SEC1 EC private key"),
            KeyMaterial::Dsa => f.write_str("a DSA private key"),
            KeyMaterial::Pkcs12 => f.write_str("a PKCS#12 (PFX) key store"),
            KeyMaterial::OpenSsh => f.write_str("an OpenSSH private key"),
            KeyMaterial::Putty => f.write_str("a PuTTY private key"),
            KeyMaterial::JavaKeyStore => f.write_str("a Java key store"),
        }
    }
}

/// The first private key material in `bytes`, `None` when there is none.
pub fn find_private_key(bytes: &[u8]) -> Option<KeyMaterial> {
    if let Some(found) = der_private_key(bytes) {
        return Some(found);
    }
    if contains(bytes, OPENSSH_MAGIC) {
        return Some(KeyMaterial::OpenSsh);
    }
    if bytes.starts_with(&[0xfe, 0xed, 0xfe, 0xed]) || bytes.starts_with(&[0xce, 0xce, 0xce, 0xce])
    {
        return Some(KeyMaterial::JavaKeyStore);
    }
    if bytes.starts_with(b"PuTTY-User-Key-File-") || contains(bytes, b"\nPuTTY-User-Key-File-") {
        return Some(KeyMaterial::Putty);
    }
    for block in pem_blocks(bytes) {
        if block.label.contains("PRIVATE KEY") {
            return Some(KeyMaterial::PemLabel(block.label));
        }
        if let Some(der) = block.der {
            if let Some(found) = der_private_key(&der) {
                return Some(found);
            }
            if contains(&der, OPENSSH_MAGIC) {
                return Some(KeyMaterial::OpenSsh);
            }
        }
    }
    None
}

const OPENSSH_MAGIC: &[u8] = b"openssh-key-v1\0";

const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

/// `1.2.840.113549.1.5` (PKCS#5 password-based encryption), as OID content bytes.
const PKCS5_PREFIX: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05];
/// `1.2.840.113549.1.12.1` (PKCS#12 password-based encryption).
const PKCS12_PBE_PREFIX: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01];
/// `1.2.840.113549.1.7.1` (PKCS#7 data) and `.7.2` (signed data).
const PKCS7_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const PKCS7_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];

/// One BER/DER element: tag and content; `rest` follows it.
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
}

/// Read one element from the start of `input`: `(element, rest)`. An indefinite length (BER,
/// as some PKCS#12 writers use) takes the remainder of `input` as the content.
fn element(input: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        // Multi-byte tags occur in none of the shapes looked for.
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    if first == 0x80 {
        return Some((Element { tag, content: rest }, &[]));
    }
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |length, &byte| (length << 8) | usize::from(byte));
        (length, &rest[count..])
    };
    if rest.len() < length {
        return None;
    }
    let (content, rest) = rest.split_at(length);
    Some((Element { tag, content }, rest))
}

/// Up to `limit` leading elements of a constructed element's content.
fn children(content: &[u8], limit: usize) -> Vec<Element<'_>> {
    let mut elements = Vec::new();
    let mut rest = content;
    while elements.len() < limit && !rest.is_empty() {
        let Some((next, after)) = element(rest) else {
            break;
        };
        elements.push(next);
        rest = after;
    }
    elements
}

/// The value of a small non-negative INTEGER.
fn small_integer(element: &Element<'_>) -> Option<u64> {
    if element.tag != TAG_INTEGER || element.content.is_empty() || element.content.len() > 8 {
        return None;
    }
    if element.content[0] & 0x80 != 0 {
        return None;
    }
    Some(
        element
            .content
            .iter()
            .fold(0u64, |value, &byte| (value << 8) | u64::from(byte)),
    )
}

/// The OID content bytes that start a SEQUENCE (as an `AlgorithmIdentifier` or `ContentInfo`).
fn leading_oid<'a>(element: &Element<'a>) -> Option<&'a [u8]> {
    if element.tag != TAG_SEQUENCE {
        return None;
    }
    let (first, _) = self::element(element.content)?;
    (first.tag == TAG_OID).then_some(first.content)
}

/// The private key shape of a DER structure starting at `bytes[0]`.
fn der_private_key(bytes: &[u8]) -> Option<KeyMaterial> {
    let (top, _) = element(bytes)?;
    if top.tag != TAG_SEQUENCE {
        return None;
    }
    let parts = children(top.content, 10);
    let version = parts.first().and_then(small_integer);

    // PrivateKeyInfo: version 0 or 1, AlgorithmIdentifier, OCTET STRING privateKey, ...
    if matches!(version, Some(0 | 1))
        && parts.len() >= 3
        && leading_oid(&parts[1]).is_some()
        && parts[2].tag == TAG_OCTET_STRING
    {
        return Some(KeyMaterial::Pkcs8);
    }
    // EncryptedPrivateKeyInfo: AlgorithmIdentifier of a password-based scheme, OCTET STRING.
    if parts.len() == 2 && parts[1].tag == TAG_OCTET_STRING {
        if let Some(oid) = leading_oid(&parts[0]) {
            if oid.starts_with(PKCS5_PREFIX) || oid.starts_with(PKCS12_PBE_PREFIX) {
                return Some(KeyMaterial::EncryptedPkcs8);
            }
        }
    }
    let integers = parts
        .iter()
        .take_while(|part| part.tag == TAG_INTEGER)
        .count();
    // RSAPrivateKey: version, n, e, d, p, q, dP, dQ, qInv (and more primes in version 1).
    if matches!(version, Some(0 | 1)) && integers >= 9 {
        return Some(KeyMaterial::Pkcs1Rsa);
    }
    // ECPrivateKey: version 1, OCTET STRING privateKey, [0] parameters, [1] publicKey.
    if version == Some(1)
        && parts.len() >= 2
        && parts[1].tag == TAG_OCTET_STRING
        && parts[2..]
            .iter()
            .all(|part| matches!(part.tag, 0xa0 | 0xa1))
    {
        return Some(KeyMaterial::Sec1Ec);
    }
    // OpenSSL's DSA private key: version 0, p, q, g, y, x.
    if version == Some(0) && parts.len() == 6 && integers == 6 {
        return Some(KeyMaterial::Dsa);
    }
    // PFX: version 3, ContentInfo (data or signed data), MacData.
    if version == Some(3) && parts.len() >= 2 {
        if let Some(oid) = leading_oid(&parts[1]) {
            if oid == PKCS7_DATA || oid == PKCS7_SIGNED_DATA {
                return Some(KeyMaterial::Pkcs12);
            }
        }
    }
    None
}

/// A PEM block: its label and, when the body is valid base64, its bytes.
struct PemBlock {
    label: String,
    der: Option<Vec<u8>>,
}

/// Every `-----BEGIN LABEL-----` block in `bytes`, leniently: bad base64 or a missing END line
/// still yields the label.
fn pem_blocks(bytes: &[u8]) -> Vec<PemBlock> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const DASHES: &[u8] = b"-----";
    const END: &[u8] = b"-----END ";
    let mut blocks = Vec::new();
    let mut rest = bytes;
    while let Some(start) = find(rest, BEGIN) {
        let after_begin = &rest[start + BEGIN.len()..];
        let Some(label_end) = find(after_begin, DASHES).filter(|&end| end <= 100) else {
            rest = after_begin;
            continue;
        };
        let label = String::from_utf8_lossy(&after_begin[..label_end])
            .trim()
            .to_ascii_uppercase();
        let body_start = &after_begin[label_end + DASHES.len()..];
        let body_end = find(body_start, END).unwrap_or(body_start.len());
        let der = decode_body(&body_start[..body_end]);
        blocks.push(PemBlock { label, der });
        rest = &body_start[body_end..];
    }
    blocks
}

/// The base64 body of a PEM block, skipping RFC 1421 header lines (`Proc-Type: ...`).
fn decode_body(body: &[u8]) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let mut text = Vec::with_capacity(body.len());
    for line in body.split(|&byte| byte == b'\n') {
        if line.contains(&b':') {
            continue;
        }
        text.extend(line.iter().filter(|byte| !byte.is_ascii_whitespace()));
    }
    LENIENT.decode(&text).ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::*;

    /// Run `openssl` in `dir`; panics with an install hint when it is missing or fails.
    fn openssl(dir: &Path, args: &[&str]) {
        let output = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl is needed for these tests (apt-get install -y openssl)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn read(dir: &Path, name: &str) -> Vec<u8> {
        std::fs::read(dir.join(name)).unwrap()
    }

    /// Base64 without armour, for wrapping DER in a PEM block of a misleading label.
    fn armour(label: &str, der: &[u8]) -> Vec<u8> {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|chunk| std::str::from_utf8(chunk).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
        .into_bytes()
    }

    #[test]
    fn rcgen_keys_are_found_in_pem_and_der() {
        for algorithm in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
            &rcgen::PKCS_RSA_SHA256,
        ] {
            let key = rcgen::KeyPair::generate_for(algorithm).unwrap();
            let pem = key.serialize_pem();
            assert_eq!(
                find_private_key(pem.as_bytes()),
                Some(KeyMaterial::PemLabel("PRIVATE KEY".to_string())),
                "{algorithm:?}"
            );
            let der = key.serialize_der();
            assert_eq!(
                find_private_key(&der),
                Some(KeyMaterial::Pkcs8),
                "{algorithm:?}"
            );
            // Relabelled as a certificate, or with a prefix before the armour.
            let disguised = armour("CERTIFICATE", &der);
            assert_eq!(
                find_private_key(&disguised),
                Some(KeyMaterial::Pkcs8),
                "{algorithm:?}"
            );
            let mut prefixed = b"chain = \"\"\"\n".to_vec();
            prefixed.extend(&disguised);
            assert_eq!(find_private_key(&prefixed), Some(KeyMaterial::Pkcs8));

            // Its certificate, CSR and public key are public.
            let params =
                rcgen::CertificateParams::new(vec!["www.example.test".to_string()]).unwrap();
            let certificate = params.self_signed(&key).unwrap();
            assert_eq!(find_private_key(certificate.pem().as_bytes()), None);
            assert_eq!(find_private_key(certificate.der()), None);
            let csr = params.serialize_request(&key).unwrap();
            assert_eq!(find_private_key(csr.pem().unwrap().as_bytes()), None);
            assert_eq!(find_private_key(csr.der()), None);
            assert_eq!(find_private_key(key.public_key_pem().as_bytes()), None);
            assert_eq!(
                find_private_key(&rcgen::PublicKeyData::subject_public_key_info(&key)),
                None
            );
        }
    }

    #[test]
    fn openssl_keys_of_every_flavour_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:1024",
                "-out",
                "rsa.pem",
            ],
        );
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "ec.pem",
            ],
        );
        openssl(
            d,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", "rsa.pem", "-outform", "DER", "-out",
                "rsa8.der",
            ],
        );
        openssl(
            d,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", "ec.pem", "-outform", "DER", "-out",
                "ec8.der",
            ],
        );
        openssl(
            d,
            &["rsa", "-in", "rsa.pem", "-traditional", "-out", "rsa1.pem"],
        );
        openssl(
            d,
            &[
                "rsa",
                "-in",
                "rsa.pem",
                "-traditional",
                "-outform",
                "DER",
                "-out",
                "rsa1.der",
            ],
        );
        openssl(d, &["ec", "-in", "ec.pem", "-out", "sec1.pem"]);
        openssl(
            d,
            &["ec", "-in", "ec.pem", "-outform", "DER", "-out", "sec1.der"],
        );
        openssl(
            d,
            &[
                "ec",
                "-in",
                "ec.pem",
                "-no_public",
                "-outform",
                "DER",
                "-out",
                "sec1-bare.der",
            ],
        );
        openssl(
            d,
            &[
                "pkcs8",
                "-topk8",
                "-in",
                "ec.pem",
                "-passout",
                "pass:secret",
                "-out",
                "enc.pem",
            ],
        );
        openssl(
            d,
            &[
                "pkcs8",
                "-topk8",
                "-in",
                "ec.pem",
                "-passout",
                "pass:secret",
                "-outform",
                "DER",
                "-out",
                "enc.der",
            ],
        );
        openssl(
            d,
            &[
                "rsa",
                "-in",
                "rsa.pem",
                "-traditional",
                "-aes128",
                "-passout",
                "pass:secret",
                "-out",
                "rsa-legacy-enc.pem",
            ],
        );
        openssl(d, &["dsaparam", "-genkey", "-out", "dsa.pem", "1024"]);
        openssl(
            d,
            &[
                "dsa", "-in", "dsa.pem", "-outform", "DER", "-out", "dsa.der",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                "ec.pem",
                "-subj",
                "/CN=www.example.test",
                "-days",
                "1",
                "-out",
                "cert.pem",
            ],
        );
        openssl(
            d,
            &[
                "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                "rsa.pem",
                "-subj",
                "/CN=www.example.test",
                "-out",
                "csr.pem",
            ],
        );
        openssl(
            d,
            &[
                "req", "-in", "csr.pem", "-outform", "DER", "-out", "csr.der",
            ],
        );
        openssl(d, &["pkey", "-in", "ec.pem", "-pubout", "-out", "pub.pem"]);
        openssl(
            d,
            &[
                "pkey", "-in", "rsa.pem", "-pubout", "-outform", "DER", "-out", "pub.der",
            ],
        );
        openssl(
            d,
            &[
                "rsa",
                "-in",
                "rsa.pem",
                "-RSAPublicKey_out",
                "-outform",
                "DER",
                "-out",
                "rsapub.der",
            ],
        );
        openssl(
            d,
            &[
                "pkcs12",
                "-export",
                "-in",
                "cert.pem",
                "-inkey",
                "ec.pem",
                "-passout",
                "pass:secret",
                "-out",
                "both.p12",
            ],
        );
        openssl(
            d,
            &[
                "pkcs12",
                "-export",
                "-in",
                "cert.pem",
                "-nokeys",
                "-passout",
                "pass:",
                "-out",
                "certs-only.p12",
            ],
        );
        openssl(d, &["ecparam", "-name", "prime256v1", "-out", "params.pem"]);

        let expected = [
            ("rsa.pem", KeyMaterial::PemLabel("PRIVATE KEY".into())),
            ("ec.pem", KeyMaterial::PemLabel("PRIVATE KEY".into())),
            ("rsa8.der", KeyMaterial::Pkcs8),
            ("ec8.der", KeyMaterial::Pkcs8),
            ("rsa1.pem", KeyMaterial::PemLabel("RSA PRIVATE KEY".into())),
            ("rsa1.der", KeyMaterial::Pkcs1Rsa),
            ("sec1.pem", KeyMaterial::PemLabel("EC PRIVATE KEY".into())),
            ("sec1.der", KeyMaterial::Sec1Ec),
            ("sec1-bare.der", KeyMaterial::Sec1Ec),
            (
                "enc.pem",
                KeyMaterial::PemLabel("ENCRYPTED PRIVATE KEY".into()),
            ),
            ("enc.der", KeyMaterial::EncryptedPkcs8),
            (
                "rsa-legacy-enc.pem",
                KeyMaterial::PemLabel("RSA PRIVATE KEY".into()),
            ),
            ("dsa.der", KeyMaterial::Dsa),
            ("both.p12", KeyMaterial::Pkcs12),
            // A PKCS#12 file is refused even without a key: it is a key store.
            ("certs-only.p12", KeyMaterial::Pkcs12),
        ];
        for (file, kind) in expected {
            assert_eq!(
                find_private_key(&read(d, file)),
                Some(kind.clone()),
                "{file}"
            );
        }
        // Structure, not labels: each DER key wrapped in armour that claims something else.
        for (file, kind) in [
            ("rsa1.der", KeyMaterial::Pkcs1Rsa),
            ("sec1.der", KeyMaterial::Sec1Ec),
            ("enc.der", KeyMaterial::EncryptedPkcs8),
            ("dsa.der", KeyMaterial::Dsa),
            ("both.p12", KeyMaterial::Pkcs12),
        ] {
            let disguised = armour("CERTIFICATE", &read(d, file));
            assert_eq!(find_private_key(&disguised), Some(kind), "{file} as PEM");
        }
        for file in [
            "cert.pem",
            "cert.der",
            "csr.pem",
            "csr.der",
            "pub.pem",
            "pub.der",
            "rsapub.der",
            "params.pem",
        ] {
            assert_eq!(find_private_key(&read(d, file)), None, "{file}");
        }
        // A chain with the key appended is caught; the chain alone is not.
        let mut chain = read(d, "cert.pem");
        assert_eq!(find_private_key(&chain), None);
        chain.extend(read(d, "sec1.pem"));
        assert!(find_private_key(&chain).is_some());
    }

    #[test]
    fn openssh_keys_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        let output = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .output()
            .expect("ssh-keygen is needed for this test (apt-get install -y openssh-client)");
        assert!(output.status.success(), "{output:?}");
        let bytes = std::fs::read(&key).unwrap();
        assert_eq!(
            find_private_key(&bytes),
            Some(KeyMaterial::PemLabel("OPENSSH PRIVATE KEY".to_string()))
        );
        let text = String::from_utf8(bytes).unwrap();
        let body: String = text
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let binary = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        assert_eq!(find_private_key(&binary), Some(KeyMaterial::OpenSsh));
        let public = std::fs::read(dir.path().join("id_ed25519.pub")).unwrap();
        assert_eq!(find_private_key(&public), None);
    }

    #[test]
    fn java_key_stores_are_found() {
        let dir = tempfile::tempdir().unwrap();
        for (store_type, file) in [("JKS", "store.jks"), ("PKCS12", "store.p12")] {
            let output = Command::new("keytool")
                .current_dir(dir.path())
                .args([
                    "-genkeypair",
                    "-keyalg",
                    "EC",
                    "-alias",
                    "www",
                    "-dname",
                    "CN=www",
                    "-storetype",
                    store_type,
                    "-keystore",
                    file,
                    "-storepass",
                    "changeit",
                    "-keypass",
                    "changeit",
                ])
                .output()
                .expect(
                    "keytool is needed for this test (apt-get install -y default-jre-headless)",
                );
            assert!(output.status.success(), "{output:?}");
        }
        assert_eq!(
            find_private_key(&read(dir.path(), "store.jks")),
            Some(KeyMaterial::JavaKeyStore)
        );
        assert_eq!(
            find_private_key(&read(dir.path(), "store.p12")),
            Some(KeyMaterial::Pkcs12)
        );
    }

    #[test]
    fn state_files_and_garbage_are_not_keys() {
        for bytes in [
            &b""[..],
            b"# managed by certform; edit with care\nformat = 1\nname = \"www\"\n",
            b"-----BEGIN ",
            b"-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n",
            &[0x30, 0x80],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x03, 0x02, 0x01, 0x00],
            &[0x30, 0x03, 0x02, 0x01, 0x01],
        ] {
            assert_eq!(find_private_key(bytes), None, "{bytes:?}");
        }
    }
}
