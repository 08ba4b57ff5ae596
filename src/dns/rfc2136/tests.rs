use hickory_proto::rr::rdata::tsig::TsigAlgorithm as WireAlgorithm;
use tokio::net::UdpSocket;

use super::tsig::{decode_secret, message_tsig, Key};
use super::*;
use crate::config::model::ZoneKey;
use crate::config::model::{TsigAlgorithm, TsigKey};

const SECRET: &str = "qxSdneHkGkDPPqxctrXkYvpo8WCyN9HSxaZKpBKPjfk=";

fn settings(server: &str) -> Rfc2136Settings {
    Rfc2136Settings {
        server: server.to_string(),
        key: Some(TsigKey {
            key_name: "global-key".to_string(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: SecretRef::Env("GLOBAL".to_string()),
        }),
        zones: vec![
            ZoneKey {
                zone: "example.test".to_string(),
                key: TsigKey {
                    key_name: "outer-key".to_string(),
                    algorithm: TsigAlgorithm::HmacSha1,
                    secret: SecretRef::Env("OUTER".to_string()),
                },
            },
            ZoneKey {
                zone: "inner.example.test".to_string(),
                key: TsigKey {
                    key_name: "inner-key".to_string(),
                    algorithm: TsigAlgorithm::HmacSha512,
                    secret: SecretRef::Env("INNER".to_string()),
                },
            },
        ],
    }
}

fn secrets(_: &SecretRef) -> Result<Vec<u8>, String> {
    Ok(SECRET.as_bytes().to_vec())
}

#[test]
fn decodes_plain_base64_with_whitespace() {
    let decoded = decode_secret(format!("  {SECRET}\n").as_bytes()).unwrap();
    assert_eq!(decoded.len(), 32);
}

#[test]
fn decodes_a_bind_key_file() {
    let file = format!(
        "key \"my-secret-key.\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n"
    );
    assert_eq!(
        decode_secret(file.as_bytes()).unwrap(),
        decode_secret(SECRET.as_bytes()).unwrap()
    );
}

#[test]
fn secret_errors_do_not_quote_the_text() {
    let err = decode_secret(b"not base64 at all !!").unwrap_err();
    assert_eq!(err, "is not valid base64");
    let err = decode_secret(b"key \"k\" { algorithm hmac-sha256; };").unwrap_err();
    assert!(err.contains("no `secret"), "{err}");
    assert_eq!(decode_secret(b"   ").unwrap_err(), "is empty");
    assert_eq!(
        decode_secret(&[0xff, 0xfe]).unwrap_err(),
        "is not UTF-8 text"
    );
}

#[test]
fn unreadable_secret_is_an_auth_error_naming_the_key() {
    let failing = |_: &SecretRef| Err("environment variable `GLOBAL` is not set".to_string());
    let err = Rfc2136::new("bind", &settings("127.0.0.1:53"), &failing).unwrap_err();
    assert_eq!(err.class, ErrorClass::Auth);
    assert!(err.message.contains("`global-key`"), "{}", err.message);
    assert!(err.message.contains("`bind`"), "{}", err.message);
}

#[test]
fn debug_never_shows_the_secret() {
    let provider = Rfc2136::new("bind", &settings("127.0.0.1:53"), &secrets).unwrap();
    let shown = format!("{provider:?}");
    assert!(shown.contains("***"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains("qxSdne"), "{shown}");
}

#[test]
fn longest_configured_zone_picks_the_key() {
    let provider = Rfc2136::new("bind", &settings("127.0.0.1:53"), &secrets).unwrap();
    let pick = |name: &str| {
        let owner = parse_name(name).unwrap();
        provider
            .key_for(&owner)
            .map(|(zone, key)| (zone.map(display_name), key.label()))
    };
    assert_eq!(
        pick("_acme-challenge.a.inner.example.test"),
        Some((
            Some("inner.example.test".to_string()),
            "inner-key".to_string()
        ))
    );
    assert_eq!(
        pick("_acme-challenge.example.test."),
        Some((Some("example.test".to_string()), "outer-key".to_string()))
    );
    assert_eq!(
        pick("_acme-challenge.other.test"),
        Some((None, "global-key".to_string()))
    );
}

#[test]
fn names_parse_with_or_without_the_trailing_dot() {
    let name = parse_name("_acme-challenge.www.example.com.").unwrap();
    assert_eq!(display_name(&name), "_acme-challenge.www.example.com");
    assert_eq!(parse_name("_acme-challenge.www.example.com").unwrap(), name);
    assert!(parse_name("").is_err());
    assert!(parse_name(".").is_err());
    assert!(parse_name("a..b").is_err());
}

#[test]
fn long_values_are_split_into_255_byte_strings() {
    let value = "x".repeat(300);
    let txt = txt_data(&value);
    let lengths: Vec<usize> = txt.txt_data.iter().map(|part| part.len()).collect();
    assert_eq!(lengths, vec![255, 45]);
    assert_eq!(txt_data("").txt_data.len(), 1);
}

#[test]
fn signing_adds_a_tsig_record_that_verifies() {
    let key = Key::load(
        "bind",
        &TsigKey {
            key_name: "k".to_string(),
            algorithm: TsigAlgorithm::HmacSha1,
            secret: SecretRef::Env("K".to_string()),
        },
        &secrets,
    )
    .unwrap();
    let mut message = Message::query();
    message.metadata.op_code = OpCode::Update;
    message.add_zone(Query::query(
        parse_name("example.test").unwrap(),
        RecordType::SOA,
    ));
    let mac = key.sign(&mut message, 1_700_000_000).unwrap();
    assert_eq!(mac.len(), 20);
    let bytes = message.to_vec().unwrap();
    let decoded = Message::from_vec(&bytes).unwrap();
    let (signer, tsig) = message_tsig(&decoded).unwrap();
    assert_eq!(display_name(signer), "k");
    assert_eq!(tsig.algorithm, WireAlgorithm::HmacSha1);
    assert_eq!(tsig.mac, mac);
}

/// A server that answers every update NOERROR without signing: a spoofed success.
#[tokio::test]
async fn an_unsigned_success_answer_is_not_trusted() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = server.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        while let Ok((length, peer)) = server.recv_from(&mut buffer).await {
            let request = Message::from_vec(&buffer[..length]).unwrap();
            let mut answer = Message::response(request.metadata.id, request.metadata.op_code);
            answer.queries = request.queries.clone();
            let _ = server.send_to(&answer.to_vec().unwrap(), peer).await;
        }
    });
    let provider = Rfc2136::new(
        "bind",
        &Rfc2136Settings {
            server: address.to_string(),
            ..settings("unused:53")
        },
        &secrets,
    )
    .unwrap()
    .with_timeout(Duration::from_secs(2));
    let err = provider
        .add_txt("_acme-challenge.example.test", "token")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Auth, "{}", err.message);
    assert!(err.message.contains("not signed"), "{}", err.message);
    assert!(err.message.contains("`outer-key`"), "{}", err.message);
}

#[tokio::test]
async fn a_silent_server_is_a_transient_error_naming_it() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let provider = Rfc2136::new(
        "bind",
        &Rfc2136Settings {
            zones: Vec::new(),
            ..settings(&address.to_string())
        },
        &secrets,
    )
    .unwrap()
    .with_timeout(Duration::from_millis(300));
    let err = provider
        .add_txt("_acme-challenge.example.test", "token")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient);
    assert!(
        err.message.contains(&address.to_string()),
        "{}",
        err.message
    );
    assert!(err.message.contains("no answer within"), "{}", err.message);
}
