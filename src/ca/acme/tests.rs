use std::time::Instant;

use bytes::Bytes;
use instant_acme::{BodyWrapper, HttpClient};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, IsCa, Issuer, KeyIdMethod, KeyPair,
    SerialNumber,
};
use time::macros::datetime;

use super::ari::{ari_cert_id, cert_id_from_parts, looks_like_cert_id};
use super::chain::{alternate_links, origin_of};
use super::problem::{classify, classify_with, retry_after_in};
use super::transport::{is_post_as_get, AcmeHttp, LastResponse};
use super::*;

#[test]
fn cert_id_matches_the_lets_encrypt_example() {
    let aki = [
        0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0, 0xAE,
        0x2C, 0xDE, 0x01, 0xC8, 0xD4,
    ];
    let serial = [0x00, 0x87, 0x65, 0x43, 0x21];
    assert_eq!(
        cert_id_from_parts(&aki, &serial),
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    );
}

#[test]
fn cert_id_of_a_real_certificate() {
    let aki = vec![
        0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0, 0xAE,
        0x2C, 0xDE, 0x01, 0xC8, 0xD4,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_identifier_method = KeyIdMethod::PreSpecified(aki);
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["example.com".to_string()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.serial_number = Some(SerialNumber::from_slice(&[0x00, 0x87, 0x65, 0x43, 0x21]));
    params.use_authority_key_identifier_extension = true;
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
    assert_eq!(
        ari_cert_id(leaf.der()).unwrap(),
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    );
    assert!(looks_like_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"));
    assert!(!looks_like_cert_id("https://ca.example/order/1"));

    // No AKI: a clear error, not a panic.
    let mut bare = CertificateParams::new(vec!["example.com".to_string()]).unwrap();
    bare.use_authority_key_identifier_extension = false;
    let self_signed = bare.self_signed(&leaf_key).unwrap();
    let error = ari_cert_id(self_signed.der()).unwrap_err();
    assert_eq!(error.class, ErrorClass::Protocol);
    assert!(ari_cert_id(b"not a certificate").is_err());
    assert!(ari_cert_id(&[]).is_err());
}

fn problem(json: &str) -> instant_acme::Error {
    instant_acme::Error::Api(serde_json::from_str::<Problem>(json).unwrap())
}

#[test]
fn problems_are_classified() {
    let cases = [
        (
            r#"{"type":"urn:ietf:params:acme:error:badNonce","status":400}"#,
            Operation::Order,
            ErrorClass::Transient,
        ),
        (
            r#"{"type":"urn:ietf:params:acme:error:rateLimited","status":429,"detail":"too many"}"#,
            Operation::Order,
            ErrorClass::RateLimited,
        ),
        (
            r#"{"type":"about:blank","status":429}"#,
            Operation::Order,
            ErrorClass::RateLimited,
        ),
        (
            r#"{"type":"urn:ietf:params:acme:error:rateLimited","status":503,"detail":"Service busy; retry later."}"#,
            Operation::Order,
            ErrorClass::RateLimited,
        ),
        (
            r#"{"type":"urn:ietf:params:acme:error:serverInternal","status":500}"#,
            Operation::Read,
            ErrorClass::Transient,
        ),
        (r#"{"status":502}"#, Operation::Read, ErrorClass::Transient),
        (
            r#"{"type":"urn:ietf:params:acme:error:unauthorized","status":403}"#,
            Operation::Order,
            ErrorClass::Rejected,
        ),
        (
            r#"{"type":"urn:ietf:params:acme:error:unauthorized","status":403}"#,
            Operation::Account,
            ErrorClass::Auth,
        ),
        (
            r#"{"type":"urn:ietf:params:acme:error:externalAccountRequired","status":400}"#,
            Operation::Account,
            ErrorClass::Auth,
        ),
        (
            r#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","status":400}"#,
            Operation::Order,
            ErrorClass::Rejected,
        ),
        (
            r#"{"type":"urn:ietf:params:acme:error:caa","status":403}"#,
            Operation::Finalize,
            ErrorClass::Rejected,
        ),
        (
            r#"{"type":"urn:ietf:params:acme:error:dns","status":400}"#,
            Operation::Finalize,
            ErrorClass::Rejected,
        ),
        (
            r#"{"type":"urn:ietf:params:acme:error:connection","status":400}"#,
            Operation::Finalize,
            ErrorClass::Rejected,
        ),
        (
            r#"{"type":"urn:ietf:params:acme:error:incorrectResponse","status":400}"#,
            Operation::Finalize,
            ErrorClass::Rejected,
        ),
        (
            r#"{"type":"urn:ietf:params:acme:error:badCSR","status":400}"#,
            Operation::Finalize,
            ErrorClass::Rejected,
        ),
    ];
    for (json, operation, class) in cases {
        let error = classify("le", operation, problem(json));
        assert_eq!(error.class, class, "{json}");
        assert!(
            error.message.starts_with("ACME account `le`"),
            "{}",
            error.message
        );
    }
    let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
    assert_eq!(
        classify("le", Operation::Read, instant_acme::Error::Json(json)).class,
        ErrorClass::Protocol
    );
    let error = classify(
        "le",
        Operation::Order,
        problem(
            r#"{"type":"urn:ietf:params:acme:error:malformed","detail":"Some identifiers were rejected","subproblems":[{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"no","identifier":{"type":"dns","value":"bad.example"}}]}"#,
        ),
    );
    assert!(
        error
            .message
            .contains("`bad.example`: no (`rejectedIdentifier`)"),
        "{}",
        error.message
    );
}

#[test]
fn rate_limit_wait_is_read_from_the_detail() {
    let now = datetime!(2025-01-01 00:00:00 UTC);
    let detail = "too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s, retry after 2025-01-01 01:30:00 UTC: see https://letsencrypt.org/docs/rate-limits/";
    assert_eq!(retry_after_in(detail, now), Some(Duration::minutes(90)));
    let rfc3339 = "limit reached, retry after 2025-01-01T00:00:30Z.";
    assert_eq!(retry_after_in(rfc3339, now), Some(Duration::seconds(30)));
    assert_eq!(retry_after_in("Service busy; retry later.", now), None);
    assert_eq!(retry_after_in("retry after garbage", now), None);
    assert_eq!(retry_after_in("retry after ", now), None);
    let past = "retry after 2024-12-31 23:00:00 UTC";
    assert_eq!(retry_after_in(past, now), Some(Duration::ZERO));
}

#[test]
fn answers_without_a_problem_document_are_classified_by_status() {
    let json = || instant_acme::Error::Json(serde_json::from_str::<u8>("").unwrap_err());
    let with_status = |status: u16| LastResponse {
        status: Some(status),
        retry_after: Some(Duration::seconds(30)),
        ..LastResponse::default()
    };
    let cases = [
        (None, ErrorClass::Protocol),
        (Some(200), ErrorClass::Protocol),
        (Some(404), ErrorClass::Rejected),
        (Some(429), ErrorClass::RateLimited),
        (Some(502), ErrorClass::Transient),
    ];
    for (status, class) in cases {
        let last = status.map(with_status).unwrap_or_default();
        let error = classify_with("le", Operation::Read, json(), &last);
        assert_eq!(error.class, class, "{status:?}");
    }
    let limited = classify_with("le", Operation::Order, json(), &with_status(429));
    assert_eq!(limited.retry_after, Some(Duration::seconds(30)));
    // A problem document with a `Retry-After` header: the header wins over the detail.
    let problem = problem(
        r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"retry after 2999-01-01 00:00:00 UTC"}"#,
    );
    let error = classify_with("le", Operation::Order, problem, &with_status(429));
    assert_eq!(error.retry_after, Some(Duration::seconds(30)));
    // The problem and status stay typed on the error; the hint comes from them.
    assert_eq!(error.status, Some(429));
    assert!(error.is_rate_limited());
    assert_eq!(
        error
            .problem
            .as_deref()
            .and_then(crate::ca::Problem::acme_kind),
        Some(&crate::ca::AcmeProblemKind::RateLimited)
    );
    assert!(error.hint().is_some_and(|hint| hint.contains("wait 30s")));
    assert_eq!(limited.status, Some(429));
    assert_eq!(limited.problem, None);
}

#[test]
fn alternate_links_are_found_and_made_absolute() {
    let request = "https://ca.example:14000/certZ/abc";
    let header = r#"<https://ca.example:14000/dir>;rel="index", <https://ca.example:14000/certZ/abc/1>;rel="alternate""#;
    assert_eq!(
        alternate_links(header, request),
        ["https://ca.example:14000/certZ/abc/1"]
    );
    assert_eq!(
        alternate_links("</certZ/abc/2>; rel=alternate", request),
        ["https://ca.example:14000/certZ/abc/2"]
    );
    assert!(alternate_links("garbage", request).is_empty());
    assert!(alternate_links("<http://plain/x>;rel=\"alternate\"", request).is_empty());
    assert_eq!(origin_of("https://h:1/a/b"), Some("https://h:1"));
    assert_eq!(origin_of("https://h"), Some("https://h"));
    assert_eq!(origin_of("http://h/a"), None);
}

#[test]
fn settings_debug_hides_the_hmac() {
    let settings = AcmeSettings {
        directory: "https://user:pw@acme.example/dir".to_string(),
        eab: Some((
            "kid-1".to_string(),
            crate::secrets::Secret::new(b"super-secret-hmac".to_vec()),
        )),
        ..AcmeSettings::default()
    };
    let debug = format!("{settings:?}");
    assert!(debug.contains("kid-1"), "{debug}");
    assert!(!debug.contains("super-secret"), "{debug}");
    assert!(!debug.contains("115, 117, 112"), "{debug}");
    assert!(!debug.contains("pw"), "{debug}");
}

#[test]
fn urls_are_redacted() {
    assert_eq!(redact_url("https://a:b@host/dir"), "https://***@host/dir");
    assert_eq!(redact_url("https://host/dir?x=@"), "https://host/dir?x=@");
    assert_eq!(redact_url("not a url"), "not a url");
}

#[tokio::test]
async fn open_refuses_plain_http_before_any_io() {
    let dir = tempfile::tempdir().unwrap();
    let settings = AcmeSettings {
        directory: "http://127.0.0.1:1/dir".to_string(),
        ..AcmeSettings::default()
    };
    let error = AcmeCa::open("le", settings, dir.path().join("acct"))
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::Rejected);
    assert!(!dir.path().join("acct").exists());
}

#[tokio::test]
async fn unreachable_directory_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = AcmeSettings {
        directory: format!("https://127.0.0.1:{port}/dir"),
        ..AcmeSettings::default()
    };
    let error = AcmeCa::open("le", settings, dir.path().join("acct"))
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::Transient, "{error}");
    assert!(!dir.path().join("acct/account.json").exists());
}

/// A plain-HTTP server that never answers the first request it reads (holding the
/// connection open) and answers every later one `200` with a nonce; it counts requests.
async fn hang_once_server() -> (String, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/acme/order/1", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(read) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buffer.len() < end + 4 + length {
                        continue;
                    }
                    buffer.drain(..end + 4 + length);
                    if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                        // Hang: keep the connection, never answer.
                        tokio::time::sleep(StdDuration::from_secs(60)).await;
                        return;
                    }
                    let answer = "HTTP/1.1 200 OK\r\nReplay-Nonce: fresh\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

fn jws_post(url: &str, payload: &str) -> http::Request<BodyWrapper<Bytes>> {
    let body = format!(r#"{{"protected":"e30","payload":"{payload}","signature":"c2ln"}}"#);
    http::Request::builder()
        .method(http::Method::POST)
        .uri(url)
        .header(http::header::CONTENT_TYPE, "application/jose+json")
        .body(BodyWrapper::from(body.into_bytes()))
        .unwrap()
}

fn short_timeout_client(sent: &Arc<AtomicU64>) -> AcmeHttp {
    let mut options = crate::http::Options::new("pebble");
    options.timeout = StdDuration::from_millis(400);
    AcmeHttp::with_options(options, StdDuration::from_millis(300), Arc::clone(sent)).unwrap()
}

#[tokio::test]
async fn a_post_as_get_the_ca_never_answers_is_sent_again() {
    let (url, seen) = hang_once_server().await;
    let sent = Arc::new(AtomicU64::new(0));
    let client = short_timeout_client(&sent);
    let started = Instant::now();
    let answer = client.request(jws_post(&url, "")).await.expect("retried");
    assert_eq!(answer.parts.status, http::StatusCode::OK);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "the hung read was sent again"
    );
    assert_eq!(
        sent.load(Ordering::SeqCst),
        1,
        "one request as instant-acme sees it"
    );
    assert!(
        started.elapsed() < StdDuration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_post_with_a_payload_is_never_sent_twice() {
    let (url, seen) = hang_once_server().await;
    let sent = Arc::new(AtomicU64::new(0));
    let client = short_timeout_client(&sent);
    let error = client
        .request(jws_post(&url, "eyJjc3IiOiJ4In0"))
        .await
        .err()
        .expect("the hung finalize is not retried");
    assert!(
        error.to_string().contains("timed out") || format!("{error:?}").contains("Timeout"),
        "{error:?}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[test]
fn post_as_get_is_an_empty_payload() {
    assert!(is_post_as_get(
        br#"{"protected":"e30","payload":"","signature":"x"}"#
    ));
    assert!(!is_post_as_get(
        br#"{"protected":"e30","payload":"e30","signature":"x"}"#
    ));
    assert!(!is_post_as_get(b"not json"));
    assert!(!is_post_as_get(br#"{"protected":"e30","signature":"x"}"#));
}
