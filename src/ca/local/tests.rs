use std::collections::BTreeSet;
use std::process::Command;

use x509_parser::prelude::{FromDer, X509Certificate};

use super::issue::whole_seconds;
use super::orders::is_order_id;
use super::*;
use crate::spec::{KeySpec, Validity};

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run `openssl` ({error}); install it (e.g. `apt-get install openssl`)")
        })
}

fn settings() -> LocalCaSettings {
    LocalCaSettings {
        root_common_name: "certform test root".to_string(),
        simulate_failures_ppm: 0,
    }
}

fn open(home: &Path) -> LocalCa {
    LocalCa::open(
        "test",
        &settings(),
        home.to_path_buf(),
        OffsetDateTime::now_utc(),
    )
    .unwrap()
}

fn request(tag: &str, names: &[&str], key: &PrivateKey) -> OrderRequest {
    let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    OrderRequest {
        tag: tag.to_string(),
        common_name: sans[0].clone(),
        sans: sans.clone(),
        csr_der: key.csr_der(&sans[0], &sans).unwrap(),
        validity: Validity::Days(90),
        renewal_of: None,
        options: Default::default(),
        dcv: Vec::new(),
        now: OffsetDateTime::now_utc(),
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn issued_chain_verifies_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("ca");
    let ca = open(&home);
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join(ROOT_KEY)), 0o600);
    assert_eq!(mode(&home.join(INTERMEDIATE_KEY)), 0o600);
    assert_eq!(ca.trust_anchor_pem(), Some(ca.root_pem()));

    let key = PrivateKey::generate(KeySpec::Rsa(2048)).unwrap();
    let mut req = request("t-1", &["www.example.test", "example.test"], &key);
    req.common_name = "www.example.test".to_string();
    let view = ca.place_order(&req).await.unwrap();
    assert_eq!(view.status, OrderStatus::Issued);
    assert!(view.order_id.starts_with("lo-"));
    let issued = ca.fetch(&view.order_id).await.unwrap().issued().unwrap();
    let (info, pems) = keys::inspect_chain(&issued.chain_pem).unwrap();
    assert_eq!(pems.len(), 2, "leaf + intermediate, no root");
    assert_eq!(Some(info.serial.clone()), view.serial);
    assert_eq!(info.sans, vec!["example.test", "www.example.test"]);
    assert_eq!(info.common_name.as_deref(), Some("www.example.test"));
    assert_eq!(info.spki_sha256, key.spki_sha256());
    assert_eq!(info.not_before, whole_seconds(req.now));
    assert_eq!(info.not_after, whole_seconds(req.now) + Duration::days(90));
    assert_eq!(view.not_after, Some(info.not_after));
    assert_eq!(info.serial.as_str().len(), 32, "16-byte serial");

    let root = dir.path().join("root.pem");
    let chain = dir.path().join("chain.pem");
    let leaf = dir.path().join("leaf.pem");
    fs::write(&root, ca.root_pem()).unwrap();
    fs::write(&chain, &issued.chain_pem).unwrap();
    fs::write(&leaf, &pems[0]).unwrap();
    let output = openssl(&[
        "verify",
        "-CAfile",
        root.to_str().unwrap(),
        "-untrusted",
        chain.to_str().unwrap(),
        "-purpose",
        "sslserver",
        leaf.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let text = openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Digital Signature, Key Encipherment"),
        "{text}"
    );
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("Authority Key Identifier"), "{text}");
    assert!(text.contains("Subject Key Identifier"), "{text}");

    let intermediate = dir.path().join("intermediate.pem");
    fs::write(&intermediate, ca.intermediate_pem()).unwrap();
    let text = openssl(&[
        "x509",
        "-in",
        intermediate.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(
        text.contains("certform local intermediate (test)"),
        "{text}"
    );
}

#[tokio::test]
async fn ecdsa_leaf_has_only_digital_signature() {
    let dir = tempfile::tempdir().unwrap();
    let ca = open(dir.path());
    let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
    let view = ca
        .place_order(&request("t", &["a.test"], &key))
        .await
        .unwrap();
    let chain = ca
        .fetch(&view.order_id)
        .await
        .unwrap()
        .issued()
        .unwrap()
        .chain_pem;
    let der = pem::parse(&chain).unwrap();
    let (_, cert) = X509Certificate::from_der(der.contents()).unwrap();
    let usage = cert.key_usage().unwrap().unwrap().value;
    assert!(usage.digital_signature());
    assert!(!usage.key_encipherment());
}

#[tokio::test]
async fn reopen_keeps_the_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let second = open(dir.path());
    assert_eq!(first.root_pem(), second.root_pem());
    assert_eq!(first.intermediate_pem(), second.intermediate_pem());
}

#[test]
fn half_created_home_is_repaired_or_refused() {
    // Key without certificate: repaired from the same key.
    let dir = tempfile::tempdir().unwrap();
    let ca = open(dir.path());
    let root_key = fs::read_to_string(dir.path().join(ROOT_KEY)).unwrap();
    let intermediate_key = fs::read_to_string(dir.path().join(INTERMEDIATE_KEY)).unwrap();
    drop(ca);
    fs::remove_file(dir.path().join(INTERMEDIATE_CERT)).unwrap();
    let repaired = open(dir.path());
    assert_eq!(
        fs::read_to_string(dir.path().join(INTERMEDIATE_KEY)).unwrap(),
        intermediate_key
    );
    let (info, _) = keys::inspect_chain(&repaired.intermediate_pem()).unwrap();
    assert_eq!(
        info.spki_sha256,
        PrivateKey::from_pem(&intermediate_key)
            .unwrap()
            .spki_sha256()
    );
    fs::remove_file(dir.path().join(ROOT_CERT)).unwrap();
    fs::remove_file(dir.path().join(INTERMEDIATE_CERT)).unwrap();
    open(dir.path());
    assert_eq!(
        fs::read_to_string(dir.path().join(ROOT_KEY)).unwrap(),
        root_key
    );

    // Certificate without key: a clear error, nothing replaced.
    fs::remove_file(dir.path().join(INTERMEDIATE_KEY)).unwrap();
    let before = fs::read_to_string(dir.path().join(INTERMEDIATE_CERT)).unwrap();
    let error = LocalCa::open(
        "test",
        &settings(),
        dir.path().to_path_buf(),
        OffsetDateTime::now_utc(),
    )
    .unwrap_err();
    assert!(error.message.contains("intermediate.key"), "{error}");
    assert!(error.message.contains("is missing"), "{error}");
    assert_eq!(
        fs::read_to_string(dir.path().join(INTERMEDIATE_CERT)).unwrap(),
        before
    );

    fs::remove_file(dir.path().join(ROOT_KEY)).unwrap();
    let error = LocalCa::open(
        "test",
        &settings(),
        dir.path().to_path_buf(),
        OffsetDateTime::now_utc(),
    )
    .unwrap_err();
    assert!(error.message.contains("root.key"), "{error}");
}

#[tokio::test]
async fn missing_intermediate_with_orders_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = open(dir.path());
    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
    ca.place_order(&request("t", &["a.test"], &key))
        .await
        .unwrap();
    drop(ca);
    fs::remove_file(dir.path().join(INTERMEDIATE_KEY)).unwrap();
    fs::remove_file(dir.path().join(INTERMEDIATE_CERT)).unwrap();
    let error = LocalCa::open(
        "test",
        &settings(),
        dir.path().to_path_buf(),
        OffsetDateTime::now_utc(),
    )
    .unwrap_err();
    assert!(error.message.contains("orders exist"), "{error}");
}

#[tokio::test]
async fn refresh_finds_orders_by_id_and_tag() {
    let dir = tempfile::tempdir().unwrap();
    let ca = open(dir.path());
    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
    let view = ca
        .place_order(&request("tag-1", &["a.test"], &key))
        .await
        .unwrap();
    let found = ca
        .refresh(&[
            OrderQuery {
                order_id: None,
                tag: Some("tag-1".to_string()),
            },
            OrderQuery {
                order_id: Some(view.order_id.clone()),
                tag: None,
            },
            OrderQuery {
                order_id: None,
                tag: Some("tag-unknown".to_string()),
            },
            OrderQuery {
                order_id: Some("lo-000000000000".to_string()),
                tag: None,
            },
            OrderQuery {
                order_id: Some("../../etc/passwd".to_string()),
                tag: None,
            },
        ])
        .await
        .unwrap();
    assert_eq!(found[0].as_ref(), Some(&view));
    assert_eq!(found[1].as_ref(), Some(&view));
    assert_eq!(found[2], None);
    assert_eq!(found[3], None);
    assert_eq!(found[4], None);

    // The database survives a reopen.
    let again = open(dir.path());
    let orders = again.orders().unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].tag, "tag-1");
    assert_eq!(orders[0].status, LocalOrderStatus::Issued);
}

#[tokio::test]
async fn csr_names_must_match_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let ca = open(dir.path());
    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
    let mut req = request("t", &["a.test", "b.test"], &key);
    req.sans = vec!["a.test".to_string(), "c.test".to_string()];
    let error = ca.place_order(&req).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Rejected);
    assert!(error.message.contains("differ"), "{error}");

    let mut req = request("t", &["a.test"], &key);
    req.csr_der = b"not a csr".to_vec();
    let error = ca.place_order(&req).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Rejected);

    let mut req = request("t", &["a.test"], &key);
    let last = req.csr_der.len() - 1;
    req.csr_der[last] ^= 0x01;
    let error = ca.place_order(&req).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Rejected);
    assert!(
        ca.orders().unwrap().is_empty(),
        "nothing recorded for rejects"
    );
}

#[tokio::test]
async fn reissue_keeps_the_order_and_changes_the_serial() {
    let dir = tempfile::tempdir().unwrap();
    let ca = open(dir.path());
    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
    let first = ca
        .place_order(&request("t-1", &["a.test"], &key))
        .await
        .unwrap();
    let first_cert = ca.fetch(&first.order_id).await.unwrap().issued().unwrap();
    let new_key = PrivateKey::generate(KeySpec::Ecdsa(384)).unwrap();
    let second = ca
        .reissue(
            &first.order_id,
            &request("t-2", &["a.test", "b.test"], &new_key),
        )
        .await
        .unwrap();
    assert_eq!(second.order_id, first.order_id);
    assert_ne!(second.serial, first.serial);
    let second_cert = ca.fetch(&first.order_id).await.unwrap().issued().unwrap();
    assert_ne!(second_cert.certificate_id, first_cert.certificate_id);
    let (info, _) = keys::inspect_chain(&second_cert.chain_pem).unwrap();
    assert_eq!(info.sans, vec!["a.test", "b.test"]);
    assert_eq!(info.spki_sha256, new_key.spki_sha256());

    let orders = ca.orders().unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(
        orders[0].previous_certificate_ids(),
        vec![first_cert.certificate_id.unwrap()]
    );
    // Either tag still finds the order.
    let found = ca
        .refresh(&[OrderQuery {
            order_id: None,
            tag: Some("t-1".to_string()),
        }])
        .await
        .unwrap();
    assert_eq!(found[0].as_ref(), Some(&second));

    let error = ca
        .reissue("lo-ffffffffffff", &request("t-3", &["a.test"], &key))
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::Rejected);
    assert!(error.message.contains("no such order"), "{error}");

    // After a crash the reissue is found by its tag, on its order only.
    let other = ca
        .place_order(&request("t-4", &["c.test"], &key))
        .await
        .unwrap();
    assert_eq!(
        ca.find_reissue(&first.order_id, "t-2").await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(ca.find_reissue(&first.order_id, "t-9").await.unwrap(), None);
    assert_eq!(ca.find_reissue(&other.order_id, "t-2").await.unwrap(), None);
    assert_eq!(
        ca.find_reissue(&first.order_id, "t-4").await.unwrap(),
        None,
        "a tag on another order is not a reissue of this one"
    );
}

#[tokio::test]
async fn revoke_again_is_done_for_its_serial() {
    let dir = tempfile::tempdir().unwrap();
    let ca = open(dir.path());
    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
    let view = ca
        .place_order(&request("t", &["a.test"], &key))
        .await
        .unwrap();
    let serial = view.serial.clone().unwrap();

    let error = ca
        .revoke(
            &view.order_id,
            &Serial::parse("01"),
            RevocationReason::KeyCompromise,
        )
        .await
        .unwrap_err();
    assert!(error.message.contains("does not belong"), "{error}");

    let outcome = ca
        .revoke(&view.order_id, &serial, RevocationReason::KeyCompromise)
        .await
        .unwrap();
    assert_eq!(outcome, RevokeOutcome::Revoked);
    // Again for the same certificate: done; for another serial: refused.
    let again = ca
        .revoke(&view.order_id, &serial, RevocationReason::KeyCompromise)
        .await
        .unwrap();
    assert_eq!(again, RevokeOutcome::Revoked);
    let error = ca
        .revoke(
            &view.order_id,
            &Serial::parse("02"),
            RevocationReason::KeyCompromise,
        )
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::Rejected);
    assert!(error.message.contains("already revoked"), "{error}");

    let order = &ca.orders().unwrap()[0];
    assert_eq!(order.status, LocalOrderStatus::Revoked);
    assert_eq!(
        order.revocation_reason,
        Some(RevocationReason::KeyCompromise)
    );
    assert!(order.revoked_at.is_some());
    let found = ca
        .refresh(&[OrderQuery {
            order_id: Some(view.order_id.clone()),
            tag: None,
        }])
        .await
        .unwrap();
    assert_eq!(
        found[0].as_ref().map(|v| v.status),
        Some(OrderStatus::Revoked)
    );
}

#[tokio::test]
async fn cancel_is_rejected_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let ca = open(dir.path());
    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
    let view = ca
        .place_order(&request("t", &["a.test"], &key))
        .await
        .unwrap();
    let error = ca.cancel(&view.order_id).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Rejected);
    assert!(error.message.contains("already issued"), "{error}");
    let error = ca.cancel("lo-123456789abc").await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Rejected);
    assert!(error.message.contains("no such order"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_are_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Arc::new(open(dir.path()));
    let key = Arc::new(PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap());
    let mut tasks = Vec::new();
    for index in 0..20 {
        let ca = Arc::clone(&ca);
        let key = Arc::clone(&key);
        tasks.push(tokio::spawn(async move {
            ca.place_order(&request(&format!("tag-{index}"), &["a.test"], &key))
                .await
                .unwrap()
        }));
    }
    let mut ids = BTreeSet::new();
    let mut serials = BTreeSet::new();
    for task in tasks {
        let view = task.await.unwrap();
        ids.insert(view.order_id);
        serials.insert(view.serial.unwrap());
    }
    assert_eq!(ids.len(), 20);
    assert_eq!(serials.len(), 20);
    let orders = ca.orders().unwrap();
    assert_eq!(orders.len(), 20);
    let tags: BTreeSet<_> = orders.iter().map(|o| o.tag.clone()).collect();
    assert_eq!(tags.len(), 20);
    let sorted: Vec<_> = orders.iter().map(|o| o.order_id.clone()).collect();
    assert_eq!(sorted, ids.into_iter().collect::<Vec<_>>());
}

#[tokio::test]
async fn validity_is_capped_by_the_intermediate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = open(dir.path());
    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
    let mut req = request("t", &["a.test"], &key);
    req.validity = Validity::Years(20);
    let view = ca.place_order(&req).await.unwrap();
    assert_eq!(view.not_after, Some(ca.inner.intermediate_not_after));
}

#[test]
fn order_ids_are_checked() {
    assert!(is_order_id("lo-0123456789ab"));
    assert!(!is_order_id("lo-0123456789AB"));
    assert!(!is_order_id("lo-../../../../x"));
    assert!(!is_order_id("lo-0123"));
}

#[test]
fn simulated_failures_hit_their_share_and_answer_one_run_alike() {
    let now = time::macros::datetime!(2030-01-01 02:00 UTC);
    let tags: Vec<String> = (0..20_000).map(|n| format!("cf-{n:016x}.abcdef")).collect();
    let failed = tags
        .iter()
        .filter(|tag| simulated_failure(20_000, tag, now))
        .count();
    assert!((300..500).contains(&failed), "{failed} of 20000 at 2 %");
    assert!(tags.iter().all(|tag| !simulated_failure(0, tag, now)));
    assert!(tags
        .iter()
        .all(|tag| simulated_failure(1_000_000, tag, now)));
    let tag = tags
        .iter()
        .find(|tag| simulated_failure(20_000, tag, now))
        .expect("one fails");
    assert!(
        simulated_failure(20_000, tag, now),
        "the same run, the same answer"
    );
    let later: Vec<bool> = (1..50)
        .map(|day| simulated_failure(20_000, tag, now + time::Duration::days(day)))
        .collect();
    assert!(
        later.iter().any(|failed| !failed),
        "a later run gets another answer"
    );
}

#[tokio::test]
async fn a_simulated_failure_is_a_transient_refusal_that_places_no_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = settings();
    settings.simulate_failures_ppm = 1_000_000;
    let now = time::macros::datetime!(2030-01-01 02:00 UTC);
    let ca = LocalCa::open("local", &settings, dir.path().join("ca"), now).expect("open");
    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).expect("key");
    let request = OrderRequest {
        dcv: Vec::new(),
        tag: "cf-0011223344556677.a1b2c3".into(),
        common_name: "a.example.test".into(),
        sans: vec!["a.example.test".into()],
        csr_der: key
            .csr_der("a.example.test", &["a.example.test".to_string()])
            .expect("csr"),
        validity: Validity::Days(30),
        renewal_of: None,
        options: crate::spec::CaOptions::default(),
        now,
    };
    let error = ca.place_order(&request).await.expect_err("refused");
    assert_eq!(error.class, ErrorClass::Transient);
    assert!(
        error.to_string().contains("simulated transient failure"),
        "{error}"
    );
    let orders: Vec<String> = std::fs::read_dir(dir.path().join("ca/orders"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("lo-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(orders.is_empty(), "{orders:?}");
}

fn order(order_id: &str, tag: &str, created: &str, previous_tags: &[&str]) -> LocalOrder {
    let previous: Vec<serde_json::Value> = previous_tags
        .iter()
        .map(|tag| {
            serde_json::json!({
                "certificate_id": format!("old-{tag}"),
                "serial": "01",
                "tag": tag,
                "not_after": "2027-04-04T00:00:00Z",
                "replaced_at": "2027-01-05T00:00:00Z",
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "order_id": order_id,
        "tag": tag,
        "status": "issued",
        "common_name": "a.example",
        "sans": ["a.example"],
        "serial": "02",
        "not_before": "2027-01-04T00:00:00Z",
        "not_after": "2027-04-04T00:00:00Z",
        "chain_pem": "",
        "certificate_id": format!("cert-{order_id}"),
        "created": created,
        "renewal_of": null,
        "previous_certificates": previous,
    }))
    .expect("order")
}

#[test]
fn the_order_index_answers_what_a_scan_of_every_order_answers() {
    let orders = vec![
        order("lo-1", "t-a", "2027-01-04T00:00:00Z", &[]),
        // The same id twice (a scan takes the first).
        order("lo-1", "t-b", "2027-01-06T00:00:00Z", &[]),
        // A tag carried by two orders: the newer wins, then the larger id on a tie.
        order("lo-2", "t-c", "2027-01-05T00:00:00Z", &["t-a"]),
        order("lo-3", "t-d", "2027-01-05T00:00:00Z", &["t-a"]),
        order("lo-0", "t-e", "2027-01-05T00:00:00Z", &["t-a"]),
        order("lo-4", "t-f", "2027-01-01T00:00:00Z", &["t-c"]),
    ];
    let index = OrderIndex::new(&orders);
    let ids = [None, Some("lo-1"), Some("lo-2"), Some("lo-9")];
    let tags = [
        None,
        Some("t-a"),
        Some("t-b"),
        Some("t-c"),
        Some("t-f"),
        Some("t-x"),
    ];
    for id in ids {
        for tag in tags {
            let query = OrderQuery {
                order_id: id.map(str::to_string),
                tag: tag.map(str::to_string),
            };
            let scanned = find(&orders, &query).map(|o| (&o.order_id, &o.tag));
            let indexed = index.find(&query).map(|o| (&o.order_id, &o.tag));
            assert_eq!(indexed, scanned, "query {id:?} {tag:?}");
        }
    }
    let by_tag = |tag: &str| {
        index
            .find(&OrderQuery {
                order_id: None,
                tag: Some(tag.to_string()),
            })
            .map(|o| o.order_id.as_str())
    };
    assert_eq!(by_tag("t-a"), Some("lo-3"));
    assert_eq!(by_tag("t-c"), Some("lo-2"));
    assert_eq!(by_tag("t-x"), None);
}
