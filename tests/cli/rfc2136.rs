//! The `rfc2136` provider and the propagation checks against a real BIND 9 (see
//! `tests/support/bind.rs`). Every test starts its own server on its own port.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use certform::config::model::{Rfc2136Settings, SecretRef, TsigAlgorithm, TsigKey, ZoneKey};
use certform::dns::propagation::{
    authoritative_servers, resolve_cname, wait_for_record, wait_for_txt,
};
use certform::dns::rfc2136::{find_zone, lookup_txt, Rfc2136};
use certform::dns::{DnsError, DnsProvider, DnsRecord, ErrorClass, RecordData};

use crate::bind::{Bind, ZoneSpec, DEFAULT_KEY};

/// How long one DNS exchange may take. Generous: in the one test binary these tests share the
/// host with CPU-heavy CLI tests, and a loaded BIND missed 2 s. No test waits it out.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A secret reference naming the key, resolved by [`secrets`] from the running server.
fn key(name: &str, algorithm: TsigAlgorithm) -> TsigKey {
    TsigKey {
        key_name: name.to_string(),
        algorithm,
        secret: SecretRef::Env(name.to_string()),
    }
}

fn global(bind: &Bind, key: TsigKey) -> Rfc2136Settings {
    Rfc2136Settings {
        server: bind.addr.to_string(),
        key: Some(key),
        zones: Vec::new(),
    }
}

/// Resolves `SecretRef::Env(KEY)` to that key's secret on `bind`, and files by reading them.
fn secrets(bind: &Bind) -> impl Fn(&SecretRef) -> Result<Vec<u8>, String> + '_ {
    move |secret| match secret {
        SecretRef::Env(name) => bind
            .keys
            .get(name)
            .map(|key| key.secret_b64.as_bytes().to_vec())
            .ok_or_else(|| format!("no key `{name}`")),
        SecretRef::File(path) => std::fs::read(path).map_err(|err| err.to_string()),
    }
}

fn provider(bind: &Bind, settings: &Rfc2136Settings) -> Rfc2136 {
    Rfc2136::new("bind", settings, &secrets(bind))
        .expect("provider")
        .with_timeout(TIMEOUT)
}

async fn txt(bind: &Bind, name: &str) -> Vec<String> {
    let mut values = lookup_txt(bind.addr, name, TIMEOUT).await.expect("lookup");
    values.sort();
    values
}

fn assert_names(err: &DnsError, bind: &Bind, zone: &str, key: &str) {
    for needle in [
        bind.addr.to_string(),
        format!("`{zone}`"),
        format!("`{key}`"),
    ] {
        assert!(
            err.message.contains(&needle),
            "error should name {needle}: {}",
            err.message
        );
    }
}

#[tokio::test]
async fn add_txt_publishes_a_record_that_remove_record_deletes() {
    let bind = Bind::start(&[ZoneSpec::new("example.test")]);
    let dns = provider(
        &bind,
        &global(&bind, key(DEFAULT_KEY, TsigAlgorithm::HmacSha256)),
    );

    let record = dns
        .add_txt("_acme-challenge.www.example.test", "token-1")
        .await
        .expect("add");
    assert_eq!(
        record,
        DnsRecord {
            name: "_acme-challenge.www.example.test".to_string(),
            data: RecordData::Txt("token-1".to_string()),
            zone: "example.test".to_string(),
            id: None,
        }
    );
    assert_eq!(
        txt(&bind, "_acme-challenge.www.example.test").await,
        ["token-1"]
    );
    assert_eq!(
        bind.dig("_acme-challenge.www.example.test", "TXT"),
        ["\"token-1\""]
    );
    let answer = bind.dig_answer("_acme-challenge.www.example.test", "TXT");
    let fields: Vec<&str> = answer[0].split_whitespace().collect();
    assert_eq!(
        fields[1..],
        ["60", "IN", "TXT", "\"token-1\""],
        "{answer:?}"
    );

    dns.remove_record(&record).await.expect("remove");
    assert!(txt(&bind, "_acme-challenge.www.example.test")
        .await
        .is_empty());
    assert!(bind
        .dig("_acme-challenge.www.example.test", "TXT")
        .is_empty());
}

#[tokio::test]
async fn removing_one_value_keeps_the_other_values_at_the_name() {
    let bind =
        Bind::start(&[ZoneSpec::new("example.test").record("_acme-challenge IN TXT \"manual\"")]);
    let dns = provider(
        &bind,
        &global(&bind, key(DEFAULT_KEY, TsigAlgorithm::HmacSha256)),
    );
    let name = "_acme-challenge.example.test";
    let quoted = "with space, \"quotes\" and \\backslash";

    let first = dns.add_txt(name, "first").await.expect("add first");
    let second = dns.add_txt(name, quoted).await.expect("add second");
    // Adding the same value again is harmless: the server ignores duplicate RRs.
    dns.add_txt(name, "first").await.expect("add first again");
    assert_eq!(txt(&bind, name).await, ["first", "manual", quoted]);

    dns.remove_record(&first).await.expect("remove first");
    assert_eq!(txt(&bind, name).await, ["manual", quoted]);
    dns.remove_record(&second).await.expect("remove second");
    assert_eq!(txt(&bind, name).await, ["manual"]);
    // Removing what is already gone succeeds (RFC 2136 ignores deletes of absent RRs).
    dns.remove_record(&first).await.expect("remove first again");
}

#[tokio::test]
async fn wrong_secret_is_an_auth_error_naming_server_zone_and_key() {
    let bind = Bind::start(&[ZoneSpec::new("example.test").key("other-key")]);
    // `certform-test` is known to the server, but we sign with `other-key`'s secret.
    let settings = Rfc2136Settings {
        key: Some(TsigKey {
            secret: SecretRef::Env("other-key".to_string()),
            ..key(DEFAULT_KEY, TsigAlgorithm::HmacSha256)
        }),
        ..global(&bind, key(DEFAULT_KEY, TsigAlgorithm::HmacSha256))
    };
    let dns = provider(&bind, &settings);
    let err = dns
        .add_txt("_acme-challenge.example.test", "token")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Auth, "{}", err.message);
    assert!(err.message.contains("BADSIG"), "{}", err.message);
    assert_names(&err, &bind, "example.test", DEFAULT_KEY);
    for key in bind.keys.values() {
        assert!(!err.message.contains(&key.secret_b64), "{}", err.message);
        assert!(!format!("{dns:?}").contains(&key.secret_b64));
    }
}

#[tokio::test]
async fn unknown_key_is_an_auth_error() {
    let bind = Bind::start(&[ZoneSpec::new("example.test")]);
    let settings = Rfc2136Settings {
        key: Some(TsigKey {
            secret: SecretRef::Env(DEFAULT_KEY.to_string()),
            ..key("nobody-knows-me", TsigAlgorithm::HmacSha256)
        }),
        ..global(&bind, key(DEFAULT_KEY, TsigAlgorithm::HmacSha256))
    };
    let err = provider(&bind, &settings)
        .add_txt("_acme-challenge.example.test", "token")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Auth, "{}", err.message);
    assert!(err.message.contains("BADKEY"), "{}", err.message);
    assert_names(&err, &bind, "example.test", "nobody-knows-me");
}

#[tokio::test]
async fn wrong_algorithm_is_an_auth_error() {
    let bind = Bind::start(&[ZoneSpec::new("example.test")]);
    // Right name and secret, but the server knows the key as hmac-sha256.
    let err = provider(
        &bind,
        &global(&bind, key(DEFAULT_KEY, TsigAlgorithm::HmacSha512)),
    )
    .add_txt("_acme-challenge.example.test", "token")
    .await
    .unwrap_err();
    assert_eq!(err.class, ErrorClass::Auth, "{}", err.message);
    assert_names(&err, &bind, "example.test", DEFAULT_KEY);
}

#[tokio::test]
async fn a_key_for_zone_a_cannot_update_zone_b() {
    let bind = Bind::start(&[
        ZoneSpec::new("a.test").key("key-a"),
        ZoneSpec::new("b.test").key("key-b"),
    ]);
    let dns = provider(
        &bind,
        &global(&bind, key("key-a", TsigAlgorithm::HmacSha256)),
    );
    dns.add_txt("_acme-challenge.a.test", "ok")
        .await
        .expect("key-a may update a.test");
    let err = dns
        .add_txt("_acme-challenge.www.b.test", "token")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Rejected, "{}", err.message);
    assert!(
        err.message
            .contains("is key `key-a` allowed to update TXT in zone `b.test`?"),
        "{}",
        err.message
    );
    assert_names(&err, &bind, "b.test", "key-a");
    assert!(txt(&bind, "_acme-challenge.www.b.test").await.is_empty());
}

#[tokio::test]
async fn per_zone_keys_sign_each_zone_with_its_own_key() {
    let bind = Bind::start(&[
        ZoneSpec::new("a.test").key("key-a"),
        ZoneSpec::new("b.test").key_with_algorithm("key-b", "hmac-sha384"),
    ]);
    let settings = Rfc2136Settings {
        server: bind.addr.to_string(),
        key: None,
        zones: vec![
            ZoneKey {
                zone: "a.test".to_string(),
                key: key("key-a", TsigAlgorithm::HmacSha256),
            },
            ZoneKey {
                zone: "b.test.".to_string(),
                key: key("key-b", TsigAlgorithm::HmacSha384),
            },
        ],
    };
    let dns = provider(&bind, &settings);

    let in_a = dns
        .add_txt("_acme-challenge.x.a.test", "va")
        .await
        .expect("a");
    let in_b = dns
        .add_txt("_acme-challenge.b.test", "vb")
        .await
        .expect("b");
    assert_eq!(in_a.zone, "a.test");
    assert_eq!(in_b.zone, "b.test");
    assert_eq!(txt(&bind, "_acme-challenge.x.a.test").await, ["va"]);
    assert_eq!(txt(&bind, "_acme-challenge.b.test").await, ["vb"]);
    dns.remove_record(&in_b).await.expect("remove b");
    assert!(txt(&bind, "_acme-challenge.b.test").await.is_empty());

    let err = dns
        .add_txt("_acme-challenge.c.test", "vc")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Rejected, "{}", err.message);
    assert!(
        err.message.contains("`a.test`, `b.test`"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn global_key_finds_the_zone_by_soa_walk() {
    let bind = Bind::start(&[
        ZoneSpec::new("example.test").record("www IN A 127.0.0.1"),
        ZoneSpec::new("deep.sub.example.test"),
    ]);
    let dns = provider(
        &bind,
        &global(&bind, key(DEFAULT_KEY, TsigAlgorithm::HmacSha256)),
    );

    let deep = "_acme-challenge.a.b.c.deep.sub.example.test";
    assert_eq!(dns.zone_for(deep).await.unwrap(), "deep.sub.example.test");
    assert_eq!(
        find_zone(bind.addr, "_acme-challenge.www.example.test.", TIMEOUT)
            .await
            .unwrap(),
        "example.test"
    );
    assert_eq!(
        find_zone(bind.addr, "deep.sub.example.test", TIMEOUT)
            .await
            .unwrap(),
        "deep.sub.example.test"
    );
    let record = dns.add_txt(deep, "deep-token").await.expect("add deep");
    assert_eq!(record.zone, "deep.sub.example.test");
    assert_eq!(txt(&bind, deep).await, ["deep-token"]);
    let shallow = dns
        .add_txt("_acme-challenge.www.example.test", "shallow")
        .await
        .expect("add shallow");
    assert_eq!(shallow.zone, "example.test");
    dns.remove_record(&record).await.expect("remove deep");
    assert!(txt(&bind, deep).await.is_empty());

    let err = dns
        .add_txt("_acme-challenge.elsewhere.invalid", "token")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Rejected, "{}", err.message);
    assert!(err.message.contains("zone of"), "{}", err.message);
    assert!(
        err.message.contains(&bind.addr.to_string()),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn every_tsig_algorithm_works() {
    let algorithms = [
        ("hmac-sha1", TsigAlgorithm::HmacSha1),
        ("hmac-sha256", TsigAlgorithm::HmacSha256),
        ("hmac-sha384", TsigAlgorithm::HmacSha384),
        ("hmac-sha512", TsigAlgorithm::HmacSha512),
    ];
    let zones: Vec<ZoneSpec> = algorithms
        .iter()
        .map(|(name, _)| ZoneSpec::new(&format!("{name}.test")).key_with_algorithm(name, name))
        .collect();
    let bind = Bind::start(&zones);
    for (name, algorithm) in algorithms {
        let dns = provider(&bind, &global(&bind, key(name, algorithm)));
        let owner = format!("_acme-challenge.{name}.test");
        let record = dns
            .add_txt(&owner, name)
            .await
            .unwrap_or_else(|err| panic!("{name}: {}", err.message));
        assert_eq!(txt(&bind, &owner).await, [name]);
        dns.remove_record(&record)
            .await
            .unwrap_or_else(|err| panic!("{name}: {}", err.message));
        assert!(txt(&bind, &owner).await.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn secret_can_be_a_bind_key_file() {
    let bind =
        Bind::start(&[ZoneSpec::new("example.test").key_with_algorithm("file-key", "hmac-sha512")]);
    let file: PathBuf = bind.key("file-key").file.clone();
    let settings = global(
        &bind,
        TsigKey {
            key_name: "file-key".to_string(),
            algorithm: TsigAlgorithm::HmacSha512,
            secret: SecretRef::File(file),
        },
    );
    let record = provider(&bind, &settings)
        .add_txt("_acme-challenge.example.test", "from-file")
        .await
        .expect("add");
    assert_eq!(record.zone, "example.test");
}

#[tokio::test]
async fn wait_for_txt_returns_once_every_server_has_the_value() {
    let first = Bind::start(&[ZoneSpec::new("example.test")]);
    let second = Bind::start(&[ZoneSpec::new("example.test")]);
    let name = "_acme-challenge.example.test";
    for bind in [&first, &second] {
        provider(
            bind,
            &global(bind, key(DEFAULT_KEY, TsigAlgorithm::HmacSha256)),
        )
        .add_txt(name, "token")
        .await
        .expect("add");
    }
    let started = Instant::now();
    wait_for_txt(
        &[first.addr, second.addr],
        name,
        "token",
        Duration::from_secs(60),
        Duration::from_millis(100),
    )
    .await
    .expect("propagated");
    // Returns as soon as every server answers, far before the timeout even on a loaded machine.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

#[tokio::test]
async fn wait_for_txt_names_the_servers_that_lack_the_value() {
    let has_it = Bind::start(&[ZoneSpec::new("example.test")]);
    let lacks_it =
        Bind::start(&[ZoneSpec::new("example.test").record("_acme-challenge IN TXT \"stale\"")]);
    let name = "_acme-challenge.example.test";
    provider(
        &has_it,
        &global(&has_it, key(DEFAULT_KEY, TsigAlgorithm::HmacSha256)),
    )
    .add_txt(name, "fresh")
    .await
    .expect("add");

    let started = Instant::now();
    let err = wait_for_txt(
        &[has_it.addr, lacks_it.addr],
        name,
        "fresh",
        Duration::from_millis(600),
        Duration::from_millis(100),
    )
    .await
    .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.class, ErrorClass::Transient, "{}", err.message);
    // Gives up once the 600 ms are spent, not before, and does not hang (the upper bound
    // leaves room for a loaded machine).
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(20),
        "{elapsed:?}"
    );
    assert!(
        err.message
            .contains(&format!("`{}` (only `stale`)", lacks_it.addr)),
        "{}",
        err.message
    );
    assert!(
        !err.message.contains(&has_it.addr.to_string()),
        "{}",
        err.message
    );
    assert!(err.message.contains("1 of 2 servers"), "{}", err.message);
    assert!(err.message.contains("`fresh`"), "{}", err.message);
}

#[tokio::test]
async fn resolve_cname_follows_the_chain_to_its_target() {
    let bind = Bind::start(&[
        ZoneSpec::new("a.example")
            .record("_acme-challenge IN CNAME hop.a.example.")
            .record("hop IN CNAME x.validation.example.")
            .record("loop1 IN CNAME loop2.a.example.")
            .record("loop2 IN CNAME loop1.a.example."),
        ZoneSpec::new("validation.example"),
    ]);
    assert_eq!(
        resolve_cname(bind.addr, "_acme-challenge.a.example", TIMEOUT)
            .await
            .unwrap(),
        "x.validation.example"
    );
    assert_eq!(
        resolve_cname(bind.addr, "www.a.example.", TIMEOUT)
            .await
            .unwrap(),
        "www.a.example"
    );
    let err = resolve_cname(bind.addr, "loop1.a.example", TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Rejected);
    assert!(err.message.contains("CNAME loop"), "{}", err.message);

    // The record goes where the alias points, in the target's zone.
    let dns = provider(
        &bind,
        &global(&bind, key(DEFAULT_KEY, TsigAlgorithm::HmacSha256)),
    );
    let record = dns
        .add_txt("x.validation.example", "via-cname")
        .await
        .expect("add at target");
    assert_eq!(record.zone, "validation.example");
    assert_eq!(txt(&bind, "x.validation.example").await, ["via-cname"]);
}

#[tokio::test]
async fn authoritative_servers_lists_the_name_server_addresses() {
    let bind = Bind::start(&[ZoneSpec::new("example.test")
        .record("@ IN NS ns2.example.test.")
        .record("ns2 IN A 127.0.0.2")
        .record("ns2 IN AAAA ::1")]);
    let servers = authoritative_servers(bind.addr, "_acme-challenge.www.example.test", TIMEOUT)
        .await
        .unwrap();
    let expected: Vec<std::net::SocketAddr> = ["127.0.0.1:53", "127.0.0.2:53", "[::1]:53"]
        .iter()
        .map(|address| address.parse().unwrap())
        .collect();
    assert_eq!(servers, expected);
}

#[tokio::test]
async fn lookup_txt_of_a_missing_name_is_empty() {
    let bind = Bind::start(&[ZoneSpec::new("example.test")]);
    assert!(txt(&bind, "nothing.here.example.test").await.is_empty());
    let err = lookup_txt(bind.addr, "name.outside.invalid", TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Rejected);
    assert!(err.message.contains("REFUSED"), "{}", err.message);
}

#[tokio::test]
async fn large_answers_are_fetched_over_tcp() {
    // 40 values of 100 bytes do not fit the 1232-byte UDP answer: the server truncates it.
    let expected: Vec<String> = (0..40)
        .map(|index| format!("{index:03}{}", "v".repeat(97)))
        .collect();
    let mut zone = ZoneSpec::new("example.test");
    for value in &expected {
        zone = zone.record(&format!("big IN TXT \"{value}\""));
    }
    let bind = Bind::start(&[zone]);
    assert_eq!(txt(&bind, "big.example.test").await, expected);

    // Long values are split into 255-byte strings and joined again on lookup.
    let long = "L".repeat(600);
    let dns = provider(
        &bind,
        &global(&bind, key(DEFAULT_KEY, TsigAlgorithm::HmacSha256)),
    );
    dns.add_txt("long.example.test", &long)
        .await
        .expect("add long");
    assert_eq!(txt(&bind, "long.example.test").await, [long]);
}

/// A CNAME (Sectigo-style validation) is published with one update, seen by the propagation
/// check as a target (not a TXT value), and removed exactly; a wrong target is not taken for it.
#[tokio::test]
async fn add_record_publishes_a_cname_that_propagation_sees_and_remove_deletes() {
    let name = "_0123abcd.www.example.test";
    let target = RecordData::Cname("0123abcd.4567ef.sectigo.test".to_string());

    // A key allowed TXT only is refused, and the error says which type it tried.
    let txt_only = Bind::start(&[ZoneSpec::new("example.test")]);
    let dns = provider(
        &txt_only,
        &global(&txt_only, key(DEFAULT_KEY, TsigAlgorithm::HmacSha256)),
    );
    let error = dns.add_record(name, &target).await.expect_err("refused");
    assert_eq!(error.class, ErrorClass::Rejected, "{}", error.message);
    assert!(
        error.message.contains("update of CNAME"),
        "{}",
        error.message
    );

    let bind = Bind::start(&[ZoneSpec::new("example.test").allow_cname()]);
    let dns = provider(
        &bind,
        &global(&bind, key(DEFAULT_KEY, TsigAlgorithm::HmacSha256)),
    );

    let record = dns.add_record(name, &target).await.expect("add cname");
    assert_eq!(
        record,
        DnsRecord {
            name: name.to_string(),
            data: target.clone(),
            zone: "example.test".to_string(),
            id: None,
        }
    );
    assert_eq!(bind.dig(name, "CNAME"), ["0123abcd.4567ef.sectigo.test."]);
    wait_for_record(
        &[bind.addr],
        name,
        &target,
        Duration::from_secs(5),
        Duration::from_millis(10),
    )
    .await
    .expect("the CNAME is visible");
    let wrong = RecordData::Cname("elsewhere.sectigo.test".to_string());
    let error = wait_for_record(
        &[bind.addr],
        name,
        &wrong,
        Duration::from_millis(300),
        Duration::from_millis(50),
    )
    .await
    .expect_err("another target is not the record");
    assert!(
        error.message.contains("CNAME `elsewhere.sectigo.test`"),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .contains("only `0123abcd.4567ef.sectigo.test`"),
        "{}",
        error.message
    );

    dns.remove_record(&record).await.expect("remove cname");
    assert!(bind.dig(name, "CNAME").is_empty());
}
