use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
use time::Duration;

use super::*;
use crate::config::SecretRef;
use crate::deploy::keystore::test_bundle;
use crate::spec::StoreFile;

fn target(dir: &std::path::Path, legacy: bool) -> Pkcs12Target {
    std::fs::write(dir.join("password"), "s3cret-pass\n").expect("password");
    Pkcs12Target {
        file: StoreFile {
            path: dir.join("app.p12"),
            relative_path: None,
            alias: "Web Server".to_string(),
            mode: 0o600,
            reload: None,
            reload_timeout: Duration::seconds(60),
            cleanup: false,
            verify: None,
        },
        password: SecretRef::File(dir.join("password")),
        legacy,
    }
}

#[test]
fn encodes_the_key_and_chain_under_the_alias_in_both_profiles() {
    let dir = tempfile::tempdir().expect("dir");
    for legacy in [false, true] {
        let bundle = test_bundle();
        let bytes = encode("pkcs12:app.p12", &target(dir.path(), legacy), &bundle).expect("encode");
        assert!(
            KeyStore::from_pkcs12(&bytes, "wrong", Pkcs12ImportPolicy::Strict).is_err(),
            "the MAC checks the password"
        );
        let store =
            KeyStore::from_pkcs12(&bytes, "s3cret-pass", Pkcs12ImportPolicy::Strict).expect("read");
        let Some(KeyStoreEntry::PrivateKeyChain(chain)) = store.entry("Web Server") else {
            panic!("no key entry under the alias (legacy {legacy})");
        };
        let (key, certificates) = crate::deploy::keystore::bundle_ders(&bundle).expect("ders");
        assert_eq!(chain.key().as_der(), key.as_slice());
        let stored: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
        let expected: Vec<&[u8]> = certificates.iter().map(Vec::as_slice).collect();
        assert_eq!(stored, expected, "leaf first, then the chain");
    }
}

#[test]
fn the_two_profiles_use_their_algorithms() {
    // The algorithm identifiers appear in the DER: PBES2 (1.2.840.113549.1.5.13) and
    // AES-256-CBC (2.16.840.1.101.3.4.1.42) by default, pbeWithSHAAnd3-KeyTripleDES-CBC
    // (1.2.840.113549.1.12.1.3) when legacy.
    const PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
    const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
    const TRIPLE_DES: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03];
    let contains =
        |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    let dir = tempfile::tempdir().expect("dir");
    let bundle = test_bundle();
    let modern = encode("p", &target(dir.path(), false), &bundle).expect("modern");
    assert!(contains(&modern, PBES2) && contains(&modern, AES256_CBC));
    assert!(!contains(&modern, TRIPLE_DES));
    let legacy = encode("p", &target(dir.path(), true), &bundle).expect("legacy");
    assert!(contains(&legacy, TRIPLE_DES));
    assert!(!contains(&legacy, PBES2));
}

#[test]
fn errors_never_carry_the_password_or_key() {
    let dir = tempfile::tempdir().expect("dir");
    let target = target(dir.path(), false);
    let bundle = crate::deploy::Bundle {
        key_pem: "-----BEGIN RSA PRIVATE KEY-----\nSECRETKEY\n-----END RSA PRIVATE KEY-----\n"
            .to_string(),
        ..test_bundle()
    };
    let error = encode("pkcs12:app.p12", &target, &bundle).expect_err("not pkcs8");
    let text = crate::apply::error_chain(&error);
    assert!(text.contains("pkcs12:app.p12"), "{text}");
    assert!(
        !text.contains("SECRETKEY") && !text.contains("s3cret-pass"),
        "{text}"
    );
}
