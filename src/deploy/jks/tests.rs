use time::Duration;

use super::*;
use crate::config::SecretRef;
use crate::deploy::keystore::test_bundle;
use crate::spec::StoreFile;

fn sha1(parts: &[&[u8]]) -> Vec<u8> {
    let mut digest = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
    for part in parts {
        digest.update(part);
    }
    digest.finish().as_ref().to_vec()
}

/// A reader for what `store` writes, after the JDK's `engineLoad` and `KeyProtector.recover`.
struct Read {
    alias: String,
    millis: u64,
    key: Vec<u8>,
    certificates: Vec<Vec<u8>>,
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    head
}

fn u32_of(bytes: &mut &[u8]) -> u32 {
    u32::from_be_bytes(take(bytes, 4).try_into().expect("4 bytes"))
}

fn utf_of(bytes: &mut &[u8]) -> String {
    let len = u16::from_be_bytes(take(bytes, 2).try_into().expect("2 bytes"));
    String::from_utf8(take(bytes, usize::from(len)).to_vec()).expect("utf-8")
}

fn read(file: &[u8], store_password: &str, key_password: &str) -> Read {
    let (body, digest) = file.split_at(file.len() - SHA1_LEN);
    assert_eq!(
        sha1(&[&utf16be(store_password), b"Mighty Aphrodite", body]),
        digest,
        "integrity digest"
    );
    let mut bytes = body;
    assert_eq!(u32_of(&mut bytes), MAGIC);
    assert_eq!(u32_of(&mut bytes), VERSION);
    assert_eq!(u32_of(&mut bytes), 1, "one entry");
    assert_eq!(u32_of(&mut bytes), PRIVATE_KEY_ENTRY);
    let alias = utf_of(&mut bytes);
    let millis = u64::from_be_bytes(take(&mut bytes, 8).try_into().expect("8 bytes"));
    let len = u32_of(&mut bytes) as usize;
    let info = take(&mut bytes, len);
    // SEQUENCE { SEQUENCE { OID, NULL }, OCTET STRING }: the protected key is the tail after
    // the fixed-size algorithm identifier and the octet string's header.
    let mut algorithm = KEY_PROTECTOR_OID.to_vec();
    algorithm.extend_from_slice(&[0x05, 0x00]);
    assert!(info
        .windows(algorithm.len())
        .any(|w| w == algorithm.as_slice()));
    let protected_len = {
        let position = info
            .windows(algorithm.len())
            .position(|w| w == algorithm.as_slice())
            .expect("algorithm")
            + algorithm.len();
        let rest = &info[position..];
        assert_eq!(rest[0], 0x04, "octet string");
        let (len, skip) = if rest[1] < 0x80 {
            (usize::from(rest[1]), 2)
        } else {
            let count = usize::from(rest[1] & 0x7f);
            let len = rest[2..2 + count]
                .iter()
                .fold(0usize, |acc, byte| (acc << 8) | usize::from(*byte));
            (len, 2 + count)
        };
        (position + skip, len)
    };
    let protected = &info[protected_len.0..protected_len.0 + protected_len.1];
    let (salt, rest) = protected.split_at(SHA1_LEN);
    let (xored, check) = rest.split_at(rest.len() - SHA1_LEN);
    let password = utf16be(key_password);
    let mut block = salt.to_vec();
    let mut key = Vec::new();
    while key.len() < xored.len() {
        block = sha1(&[&password, &block]);
        key.extend_from_slice(&block);
    }
    let key: Vec<u8> = xored.iter().zip(key).map(|(a, b)| a ^ b).collect();
    assert_eq!(sha1(&[&password, &key]), check, "key password checksum");
    let count = u32_of(&mut bytes);
    let mut certificates = Vec::new();
    for _ in 0..count {
        assert_eq!(utf_of(&mut bytes), "X.509");
        let len = u32_of(&mut bytes) as usize;
        certificates.push(take(&mut bytes, len).to_vec());
    }
    assert!(bytes.is_empty(), "nothing after the entry");
    Read {
        alias,
        millis,
        key,
        certificates,
    }
}

fn target(dir: &std::path::Path, key_password: bool) -> JksTarget {
    std::fs::write(dir.join("store"), "store-pass").expect("store password");
    std::fs::write(dir.join("key"), "key-pass").expect("key password");
    JksTarget {
        file: StoreFile {
            path: dir.join("app.jks"),
            relative_path: None,
            alias: "Tomcat".to_string(),
            mode: 0o600,
            reload: None,
            reload_timeout: Duration::seconds(60),
            cleanup: false,
            verify: None,
        },
        store_password: SecretRef::File(dir.join("store")),
        key_password: key_password.then(|| SecretRef::File(dir.join("key"))),
    }
}

#[test]
fn writes_what_the_jdk_reads() {
    let dir = tempfile::tempdir().expect("dir");
    let bundle = test_bundle();
    let now = OffsetDateTime::UNIX_EPOCH + Duration::milliseconds(1_700_000_000_123);
    let (key, certificates) = bundle_ders(&bundle).expect("ders");

    let bytes = encode("jks:app.jks", &target(dir.path(), true), &bundle, now).expect("encode");
    let read_back = read(&bytes, "store-pass", "key-pass");
    assert_eq!(read_back.alias, "tomcat", "JKS aliases are lowercase");
    assert_eq!(read_back.millis, 1_700_000_000_123);
    assert_eq!(read_back.key, key);
    assert_eq!(read_back.certificates, certificates);

    // Without `key_password` the key is protected by the store password.
    let bytes = encode("jks:app.jks", &target(dir.path(), false), &bundle, now).expect("encode");
    assert_eq!(read(&bytes, "store-pass", "store-pass").key, key);
}

#[test]
fn fresh_salts_each_time() {
    let dir = tempfile::tempdir().expect("dir");
    let bundle = test_bundle();
    let now = OffsetDateTime::UNIX_EPOCH;
    let target = target(dir.path(), false);
    let one = encode("j", &target, &bundle, now).expect("one");
    let two = encode("j", &target, &bundle, now).expect("two");
    assert_ne!(one, two);
}

#[test]
fn modified_utf8_and_der_lengths() {
    let mut out = Vec::new();
    write_utf(&mut out, "a\u{0}é€😀");
    assert_eq!(
        out,
        [
            0x00, 0x0e, b'a', 0xc0, 0x80, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xed, 0xa0, 0xbd, 0xed,
            0xb8, 0x80
        ]
    );
    assert_eq!(der(0x04, &[1, 2]), [0x04, 0x02, 1, 2]);
    assert_eq!(der(0x04, &[0; 0x7f])[..2], [0x04, 0x7f]);
    assert_eq!(der(0x04, &[0; 0x80])[..3], [0x04, 0x81, 0x80]);
    assert_eq!(der(0x04, &[0; 0x1234])[..4], [0x04, 0x82, 0x12, 0x34]);
    assert_eq!(utf16be("aé"), [0x00, b'a', 0x00, 0xe9]);
}
