//! The ACME provider against a real Pebble, with real validation: HTTP-01 answered by a tiny
//! responder on Pebble's `httpPort`, DNS-01 through `pebble-challtestsrv` (which also answers
//! A 127.0.0.1 for every name). Each test runs its own Pebble on its own ports, in parallel.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration as StdDuration, Instant};

use certform::ca::acme::{AcmeCa, AcmeSettings, Polling};
use certform::ca::{
    CertificateAuthority, Challenge, ChallengeKind, ErrorClass, Fetched, IssuedCertificate,
    OrderQuery, OrderRequest, RevokeOutcome,
};
use certform::keys::{self, PrivateKey};
use certform::observed::{OrderStatus, OrderView};
use certform::spec::{CaOptions, KeySpec, RevocationReason, Validity};
use time::OffsetDateTime;

use crate::pebble::{AriStub, HttpResponder, Pebble, PebbleOptions};

fn settings(pebble: &Pebble) -> AcmeSettings {
    AcmeSettings {
        directory: pebble.directory_url().to_string(),
        contact: vec!["mailto:ops@example.com".to_string()],
        ca_bundle: Some(pebble.ca_bundle().to_path_buf()),
        ..AcmeSettings::default()
    }
}

async fn open(pebble: &Pebble, home: &Path) -> AcmeCa {
    AcmeCa::open("pebble", settings(pebble), home.to_path_buf())
        .await
        .unwrap_or_else(|error| panic!("open: {error:?}\n{}", pebble.log_text()))
        .with_polling(Polling {
            initial_delay: StdDuration::from_millis(20),
            backoff: 1.5,
            timeout: StdDuration::from_secs(30),
        })
}

fn request(tag: &str, names: &[&str], key: &PrivateKey) -> OrderRequest {
    let sans: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    OrderRequest {
        tag: tag.to_string(),
        common_name: sans[0].clone(),
        csr_der: key.csr_der(&sans[0], &sans).unwrap(),
        sans,
        validity: Validity::Days(90),
        renewal_of: None,
        options: CaOptions::default(),
        dcv: Vec::new(),
        now: OffsetDateTime::now_utc(),
    }
}

fn http_challenges(challenges: &[Challenge]) -> Vec<Challenge> {
    challenges
        .iter()
        .filter(|challenge| matches!(challenge.kind, ChallengeKind::Http { .. }))
        .cloned()
        .collect()
}

/// Place an order for `names`, answer HTTP-01, finalize, fetch.
async fn issue_over_http(
    ca: &AcmeCa,
    responder: &HttpResponder,
    tag: &str,
    names: &[&str],
) -> (OrderView, IssuedCertificate, PrivateKey) {
    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
    let request = request(tag, names, &key);
    let placed = ca.place_order(&request).await.unwrap();
    assert!(
        placed.order_id.starts_with("https://127.0.0.1:"),
        "{placed:?}"
    );
    let challenges = http_challenges(&ca.challenges(&placed).await.unwrap());
    for challenge in &challenges {
        let ChallengeKind::Http { path, content } = &challenge.kind else {
            unreachable!()
        };
        responder.set(path, content);
    }
    ca.respond(&placed, &challenges).await.unwrap();
    let finalized = ca.finalize(&placed, &request.csr_der).await.unwrap();
    assert_eq!(finalized.status, OrderStatus::Issued, "{finalized:?}");
    let issued = ca.fetch(&placed.order_id).await.unwrap().issued().unwrap();
    (finalized, issued, key)
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run `openssl` ({error}): apt-get install -y openssl")
        })
}

/// `openssl verify` the issued chain against Pebble's issuing root + intermediate.
fn verify_chain(pebble: &Pebble, issued: &IssuedCertificate, name: &str) {
    let (root, intermediate) = pebble.issuing_roots();
    verify_chain_against(&root, &intermediate, issued, name);
}

fn verify_chain_against(root: &str, intermediate: &str, issued: &IssuedCertificate, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_, pems) = keys::inspect_chain(&issued.chain_pem).unwrap();
    assert!(pems.len() >= 2, "leaf and intermediate expected");
    let root_path = dir.path().join("root.pem");
    let untrusted_path = dir.path().join("untrusted.pem");
    let leaf_path = dir.path().join("leaf.pem");
    fs::write(&root_path, root).unwrap();
    fs::write(
        &untrusted_path,
        format!("{intermediate}{}", pems[1..].concat()),
    )
    .unwrap();
    fs::write(&leaf_path, &pems[0]).unwrap();
    let output = openssl(&[
        "verify",
        "-CAfile",
        root_path.to_str().unwrap(),
        "-untrusted",
        untrusted_path.to_str().unwrap(),
        "-verify_hostname",
        name,
        leaf_path.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn account_is_registered_once_and_reused() {
    let pebble = Pebble::start_with(PebbleOptions {
        dns: false,
        ..PebbleOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("accounts/pebble");
    let first = open(&pebble, &home).await;
    assert!(first.account_url().starts_with("https://127.0.0.1:"));

    let account_file = home.join("account.json");
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&account_file), 0o600);
    assert_eq!(mode(&home), 0o700);
    let second = open(&pebble, &home).await;
    assert_eq!(second.account_url(), first.account_url());
    // The key never shows in Debug.
    let text = fs::read_to_string(&account_file).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&text).unwrap();
    let key = stored["credentials"]["key_pkcs8"].as_str().unwrap();
    assert!(!format!("{second:?}").contains(key));

    // Pointing the same account at another directory is refused, not silently re-registered.
    let mut moved = settings(&pebble);
    moved.directory = format!("{}/other", pebble.directory_url());
    let error = AcmeCa::open("pebble", moved, home.clone())
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::Rejected, "{error}");
    assert_eq!(fs::read_to_string(&account_file).unwrap(), text);

    // ACME has no cancel and no same-order reissue.
    assert!(!first.capabilities().cancel && !first.capabilities().reissue_same_order);
    let error = first.cancel("https://127.0.0.1:1/x").await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Unsupported);
}

#[tokio::test]
async fn http01_order_is_issued_fetched_and_verifies() {
    let pebble = Pebble::start();
    let responder = pebble.start_http_responder();
    let dir = tempfile::tempdir().unwrap();
    let ca = open(&pebble, dir.path()).await;

    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
    let names = ["www.example.test", "api.example.test"];
    let request = request("tag-web-1", &names, &key);
    let placed = ca.place_order(&request).await.unwrap();
    assert_eq!(placed.status, OrderStatus::Pending);
    let mut domains: Vec<&str> = placed.dcv.iter().map(|d| d.domain.as_str()).collect();
    domains.sort();
    assert_eq!(domains, ["api.example.test", "www.example.test"]);
    assert!(placed
        .dcv
        .iter()
        .all(|d| d.method == "acme" && d.status == "pending"));

    // Placing the same tag again (a retry after a lost answer) adopts the order.
    let again = ca.place_order(&request).await.unwrap();
    assert_eq!(again.order_id, placed.order_id);

    // Nothing to collect yet: `fetch` says so, distinctly from an error.
    match ca.fetch(&placed.order_id).await.unwrap() {
        Fetched::NotYet { status, detail } => {
            assert_eq!(status, OrderStatus::Pending);
            assert_eq!(detail, "pending");
        }
        Fetched::Issued(issued) => panic!("a pending order has no certificate: {issued:?}"),
    }

    // Finalizing before any challenge is answered fails at once instead of waiting.
    let error = ca.finalize(&placed, &request.csr_der).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Rejected, "{error}");
    assert!(
        error.message.contains("no challenge was answered"),
        "{error}"
    );

    let challenges = ca.challenges(&placed).await.unwrap();
    for name in names {
        let kinds: Vec<&ChallengeKind> = challenges
            .iter()
            .filter(|c| c.domain == name)
            .map(|c| &c.kind)
            .collect();
        assert!(kinds
            .iter()
            .any(|k| matches!(k, ChallengeKind::Http { .. })));
        assert!(kinds.iter().any(|k| matches!(k,
            ChallengeKind::DnsTxt { name: txt, .. } if *txt == format!("_acme-challenge.{name}"))));
    }
    let http = http_challenges(&challenges);
    for challenge in &http {
        assert!(challenge.id.starts_with("https://127.0.0.1:"));
        assert_eq!(challenge.status, "pending");
        let ChallengeKind::Http { path, content } = &challenge.kind else {
            unreachable!()
        };
        assert!(path.starts_with("/.well-known/acme-challenge/"));
        let token = path.rsplit('/').next().unwrap();
        assert!(content.starts_with(&format!("{token}.")));
        responder.set(path, content);
    }
    ca.respond(&placed, &http).await.unwrap();
    let finalized = ca.finalize(&placed, &request.csr_der).await.unwrap();
    assert_eq!(finalized.status, OrderStatus::Issued);
    assert!(
        !responder.requests().is_empty(),
        "pebble fetched the answers"
    );

    let issued = ca.fetch(&placed.order_id).await.unwrap().issued().unwrap();
    assert_eq!(issued.order_id, placed.order_id);
    let (info, _) = keys::inspect_chain(&issued.chain_pem).unwrap();
    assert_eq!(info.spki_sha256, key.spki_sha256(), "leaf first");
    assert_eq!(info.sans, ["api.example.test", "www.example.test"]);
    assert_eq!(finalized.serial.as_deref(), Some(info.serial.as_str()));
    assert_eq!(finalized.not_after, Some(info.not_after));
    verify_chain(&pebble, &issued, "www.example.test");

    // Refresh by tag and by URL find it; unknown ones are None.
    let unknown_url = format!(
        "{}/my-order/does-not-exist",
        pebble.directory_url().trim_end_matches("/dir")
    );
    let queries = [
        OrderQuery {
            order_id: None,
            tag: Some("tag-web-1".to_string()),
        },
        OrderQuery {
            order_id: Some(placed.order_id.clone()),
            tag: None,
        },
        OrderQuery {
            order_id: Some(unknown_url),
            tag: None,
        },
        OrderQuery {
            order_id: None,
            tag: Some("tag-never-placed".to_string()),
        },
        OrderQuery {
            order_id: Some("not-a-url".to_string()),
            tag: None,
        },
    ];
    let views = ca.refresh(&queries).await.unwrap();
    assert_eq!(views.len(), 5);
    for view in &views[..2] {
        let view = view.as_ref().unwrap();
        assert_eq!(view.order_id, placed.order_id);
        assert_eq!(view.status, OrderStatus::Issued);
        assert_eq!(view.serial.as_deref(), Some(info.serial.as_str()));
    }
    assert!(views[2..].iter().all(Option::is_none), "{views:?}");

    // Directories without ARI (Debian's Pebble) give no renewal window.
    let leaf_der = pem_der(&issued.chain_pem);
    assert_eq!(ca.renewal_window(&leaf_der).await.unwrap(), None);
    assert!(certform::ca::acme::ari_cert_id(&leaf_der).is_ok());

    // A renewal that names the old order: no ARI here, so it orders without `replaces`.
    let mut renewal = request.clone();
    renewal.tag = "tag-web-2".to_string();
    renewal.renewal_of = Some(placed.order_id.clone());
    let renewed = ca.place_order(&renewal).await.unwrap();
    assert_ne!(renewed.order_id, placed.order_id);
}

fn pem_der(chain_pem: &str) -> Vec<u8> {
    pem::parse_many(chain_pem).unwrap()[0].contents().to_vec()
}

#[tokio::test]
async fn dns01_wildcard_is_issued() {
    let pebble = Pebble::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = open(&pebble, dir.path()).await;

    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
    let request = request("tag-wild", &["*.wild.example.test"], &key);
    let placed = ca.place_order(&request).await.unwrap();
    assert_eq!(placed.dcv.len(), 1);
    assert_eq!(placed.dcv[0].domain, "*.wild.example.test");

    let challenges = ca.challenges(&placed).await.unwrap();
    let dns: Vec<Challenge> = challenges
        .iter()
        .filter(|c| matches!(c.kind, ChallengeKind::DnsTxt { .. }))
        .cloned()
        .collect();
    assert_eq!(dns.len(), 1, "{challenges:?}");
    assert_eq!(dns[0].domain, "*.wild.example.test");
    let ChallengeKind::DnsTxt { name, value } = &dns[0].kind else {
        unreachable!()
    };
    assert_eq!(name, "_acme-challenge.wild.example.test");
    assert_eq!(value.len(), 43, "base64url SHA-256");
    pebble.set_txt(name, value);

    ca.respond(&placed, &dns).await.unwrap();
    let finalized = ca.finalize(&placed, &request.csr_der).await.unwrap();
    assert_eq!(finalized.status, OrderStatus::Issued);
    let issued = ca.fetch(&placed.order_id).await.unwrap().issued().unwrap();
    let (info, _) = keys::inspect_chain(&issued.chain_pem).unwrap();
    assert_eq!(info.sans, ["*.wild.example.test"]);
    verify_chain(&pebble, &issued, "host.wild.example.test");
}

#[tokio::test]
async fn revoked_certificate_shows_at_pebble_and_in_refresh() {
    let pebble = Pebble::start();
    let responder = pebble.start_http_responder();
    let dir = tempfile::tempdir().unwrap();
    let ca = open(&pebble, dir.path()).await;
    let (view, issued, _) =
        issue_over_http(&ca, &responder, "tag-rev", &["rev.example.test"]).await;
    let serial = view.serial.clone().unwrap();
    assert!(pebble.cert_status(&serial).contains("\"Valid\""));

    let error = ca
        .revoke(
            &view.order_id,
            &certform::serial::Serial::parse("0123"),
            RevocationReason::KeyCompromise,
        )
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::Rejected, "wrong serial: {error}");

    let outcome = ca
        .revoke(&view.order_id, &serial, RevocationReason::KeyCompromise)
        .await
        .unwrap();
    assert_eq!(outcome, RevokeOutcome::Revoked);
    let status: serde_json::Value = serde_json::from_str(&pebble.cert_status(&serial)).unwrap();
    assert_eq!(status["Status"], "Revoked", "{status}");
    assert_eq!(status["Reason"], 1, "{status}");

    // Revoking again is a no-op; refresh reports the revocation.
    let again = ca
        .revoke(&view.order_id, &serial, RevocationReason::KeyCompromise)
        .await
        .unwrap();
    assert_eq!(again, RevokeOutcome::Revoked);
    let query = OrderQuery {
        order_id: Some(issued.order_id.clone()),
        tag: None,
    };
    let views = ca.refresh(&[query]).await.unwrap();
    assert_eq!(views[0].as_ref().unwrap().status, OrderStatus::Revoked);

    // A run that died after the CA revoked but before recording it: the CA answers
    // `alreadyRevoked`, which counts as done.
    let other_home = tempfile::tempdir().unwrap();
    fs::copy(
        dir.path().join("account.json"),
        other_home.path().join("account.json"),
    )
    .unwrap();
    fs::create_dir(other_home.path().join("orders")).unwrap();
    for entry in fs::read_dir(dir.path().join("orders")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.starts_with("cert-") {
            let mut record: serde_json::Value =
                serde_json::from_slice(&fs::read(entry.path()).unwrap()).unwrap();
            assert!(!record["revoked"].is_null());
            record["revoked"] = serde_json::Value::Null;
            fs::write(
                other_home.path().join("orders").join(&name),
                serde_json::to_vec(&record).unwrap(),
            )
            .unwrap();
        }
    }
    let fresh = open(&pebble, other_home.path()).await;
    assert_eq!(fresh.account_url(), ca.account_url());
    let outcome = fresh
        .revoke(&view.order_id, &serial, RevocationReason::KeyCompromise)
        .await
        .unwrap();
    assert_eq!(outcome, RevokeOutcome::Revoked);
}

#[tokio::test]
async fn failed_validation_is_rejected_with_the_ca_detail() {
    let pebble = Pebble::start();
    let responder = pebble.start_http_responder();
    let dir = tempfile::tempdir().unwrap();
    let ca = open(&pebble, dir.path()).await;
    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
    let request = request("tag-bad", &["bad.example.test"], &key);
    let placed = ca.place_order(&request).await.unwrap();
    let http = http_challenges(&ca.challenges(&placed).await.unwrap());
    for challenge in &http {
        let ChallengeKind::Http { path, .. } = &challenge.kind else {
            unreachable!()
        };
        responder.set(path, "not-the-key-authorization");
    }
    ca.respond(&placed, &http).await.unwrap();
    let error = ca.finalize(&placed, &request.csr_der).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Rejected, "{error}");
    assert!(error.message.contains("bad.example.test"), "{error}");
    assert!(error.message.contains("unauthorized"), "{error}");

    let views = ca
        .refresh(&[OrderQuery {
            order_id: None,
            tag: Some("tag-bad".to_string()),
        }])
        .await
        .unwrap();
    let view = views[0].as_ref().unwrap();
    assert_eq!(view.status, OrderStatus::Rejected);
    assert_eq!(view.dcv[0].status, "invalid");

    // A new request under the same tag does not adopt the failed order.
    let retried = ca.place_order(&request).await.unwrap();
    assert_ne!(retried.order_id, placed.order_id);
    assert_eq!(retried.status, OrderStatus::Pending);
}

#[tokio::test]
async fn external_account_binding_is_required_and_used_once() {
    // Pebble's EAB keys are base64url; the provider takes the decoded bytes.
    let hmac_b64 = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let pebble = Pebble::start_with(PebbleOptions {
        dns: false,
        eab_required: true,
        eab_keys: vec![("kid-1".to_string(), hmac_b64.to_string())],
        ..PebbleOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("eab");

    let error = AcmeCa::open("pebble", settings(&pebble), home.clone())
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::Auth, "{error}");
    assert!(error.message.contains("externalAccountRequired"), "{error}");
    assert!(!home.join("account.json").exists());

    let mut wrong = settings(&pebble);
    wrong.eab = Some((
        "kid-1".to_string(),
        certform::secrets::Secret::new(b"not the key".to_vec()),
    ));
    let error = AcmeCa::open("pebble", wrong, home.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(error.class, ErrorClass::Auth | ErrorClass::Rejected),
        "{error}"
    );
    assert!(!home.join("account.json").exists());

    let mut with_eab = settings(&pebble);
    with_eab.eab = Some((
        "kid-1".to_string(),
        certform::secrets::Secret::new(base64url_decode(hmac_b64)),
    ));
    let ca = AcmeCa::open("pebble", with_eab.clone(), home.clone())
        .await
        .unwrap_or_else(|error| panic!("{error:?}\n{}", pebble.log_text()));
    let stored = fs::read_to_string(home.join("account.json")).unwrap();
    assert!(stored.contains("\"kid-1\""));
    assert!(!stored.contains(hmac_b64), "the HMAC key is not stored");
    assert!(!format!("{with_eab:?}").contains(hmac_b64));

    // Reopening reuses the bound account (no second binding).
    let again = AcmeCa::open("pebble", with_eab, home.clone())
        .await
        .unwrap();
    assert_eq!(again.account_url(), ca.account_url());
}

#[tokio::test]
async fn default_bad_nonce_rate_does_not_break_five_orders_in_a_row() {
    // Pebble's default rejects 5 % of nonces as `badNonce`; every step must retry them.
    let pebble = Pebble::start_with(PebbleOptions {
        nonce_reject: None,
        ..PebbleOptions::default()
    });
    let responder = pebble.start_http_responder();
    let dir = tempfile::tempdir().unwrap();
    let ca = open(&pebble, dir.path()).await;
    let started = Instant::now();
    for index in 0..5 {
        let name = format!("n{index}.nonce.example.test");
        let (view, issued, _) =
            issue_over_http(&ca, &responder, &format!("tag-nonce-{index}"), &[&name]).await;
        assert_eq!(view.status, OrderStatus::Issued);
        verify_chain(&pebble, &issued, &name);
    }
    eprintln!("5 orders in {:?}", started.elapsed());
}

fn base64url_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

/// Common name of the subject of the first certificate in `pem_text`.
fn subject_common_name(pem_text: &str) -> String {
    let der = pem_der(pem_text);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap();
    cn.as_str().unwrap().to_string()
}

/// Common name of the issuer of the last certificate in a chain.
fn top_issuer(chain_pem: &str) -> String {
    let blocks = pem::parse_many(chain_pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(blocks.last().unwrap().contents()).unwrap();
    let cn = cert.issuer().iter_common_name().next().unwrap();
    cn.as_str().unwrap().to_string()
}

#[tokio::test]
async fn preferred_chain_picks_the_alternate_that_ends_at_it() {
    let pebble = Pebble::start_with(PebbleOptions {
        alternate_roots: Some(1),
        ..PebbleOptions::default()
    });
    let responder = pebble.start_http_responder();
    let default_root = pebble.management_get("/roots/0");
    let other_root = pebble.management_get("/roots/1");
    let other_intermediate = pebble.management_get("/intermediates/1");
    let wanted = subject_common_name(&other_root);
    assert_ne!(wanted, subject_common_name(&default_root));

    let dir = tempfile::tempdir().unwrap();
    let mut with_preference = settings(&pebble);
    with_preference.preferred_chain = Some(wanted.clone());
    let ca = AcmeCa::open("pebble", with_preference, dir.path().to_path_buf())
        .await
        .unwrap();
    let (_, issued, _) = issue_over_http(&ca, &responder, "tag-alt", &["alt.example.test"]).await;
    assert_eq!(top_issuer(&issued.chain_pem), wanted);
    verify_chain_against(
        &other_root,
        &other_intermediate,
        &issued,
        "alt.example.test",
    );

    // Without a preference (or with one no chain matches) the default chain comes back.
    let plain_dir = tempfile::tempdir().unwrap();
    let mut unmatched = settings(&pebble);
    unmatched.preferred_chain = Some("No Such Root".to_string());
    let plain = AcmeCa::open("pebble", unmatched, plain_dir.path().to_path_buf())
        .await
        .unwrap();
    let (_, issued, _) =
        issue_over_http(&plain, &responder, "tag-plain", &["plain.example.test"]).await;
    assert_eq!(
        top_issuer(&issued.chain_pem),
        subject_common_name(&default_root)
    );
    verify_chain(&pebble, &issued, "plain.example.test");
}

/// A leaf with an authority key identifier, as ARI needs.
fn leaf_with_aki() -> Vec<u8> {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["ari.example.test".to_string()]).unwrap();
    params.use_authority_key_identifier_extension = true;
    params.signed_by(&key, &issuer).unwrap().der().to_vec()
}

#[tokio::test]
async fn renewal_window_is_read_from_ari() {
    use time::macros::datetime;
    use time::Duration;

    let stub = AriStub::start();
    let dir = tempfile::tempdir().unwrap();
    // The stub cannot register accounts: hand it credentials as `open` would have saved them.
    let key = rcgen::KeyPair::generate().unwrap();
    let account = serde_json::json!({
        "directory": stub.directory_url(),
        "registered": "2025-01-01T00:00:00Z",
        "credentials": {
            "id": stub.account_url(),
            "key_pkcs8": base64url_encode(key.serialized_der()),
            "directory": stub.directory_url(),
        },
    });
    fs::write(
        dir.path().join("account.json"),
        serde_json::to_vec(&account).unwrap(),
    )
    .unwrap();
    let settings = AcmeSettings {
        directory: stub.directory_url(),
        ca_bundle: Some(stub.ca_bundle().to_path_buf()),
        ..AcmeSettings::default()
    };
    let ca = AcmeCa::open("stub", settings, dir.path().to_path_buf())
        .await
        .unwrap();
    assert_eq!(ca.account_url(), stub.account_url());

    let cert = leaf_with_aki();
    let cert_id = certform::ca::acme::ari_cert_id(&cert).unwrap();
    let (start, end) = ("2025-01-02T04:00:00Z", "2025-01-03T04:00:00Z");

    stub.set_window(&cert_id, start, end, Some("7200"));
    let window = ca.renewal_window(&cert).await.unwrap();
    assert_eq!(
        window,
        Some((
            datetime!(2025-01-02 04:00 UTC),
            datetime!(2025-01-03 04:00 UTC),
            Some(Duration::hours(2))
        ))
    );

    // Retry-After is clamped to at least a minute; without one, six hours.
    stub.set_window(&cert_id, start, end, Some("5"));
    let (_, _, retry) = ca.renewal_window(&cert).await.unwrap().unwrap();
    assert_eq!(retry, Some(Duration::minutes(1)));
    stub.set_window(&cert_id, start, end, None);
    let (_, _, retry) = ca.renewal_window(&cert).await.unwrap().unwrap();
    assert_eq!(retry, Some(Duration::hours(6)));

    // Unknown certificate, rate limit: classified errors.
    stub.set_problem(&cert_id, 404, "malformed", "unknown certificate");
    let error = ca.renewal_window(&cert).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Rejected, "{error}");
    stub.set_problem(&cert_id, 429, "rateLimited", "slow down");
    let error = ca.renewal_window(&cert).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::RateLimited, "{error}");
    assert_eq!(error.retry_after, Some(Duration::seconds(60)));
}

fn base64url_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn heavy_bad_nonce_rate_is_survived() {
    // Far above Pebble's default: exercises the provider's own retries beyond `instant-acme`'s.
    let pebble = Pebble::start_with(PebbleOptions {
        nonce_reject: Some(40),
        ..PebbleOptions::default()
    });
    let responder = pebble.start_http_responder();
    let dir = tempfile::tempdir().unwrap();
    let ca = open(&pebble, dir.path()).await;
    let (view, issued, _) =
        issue_over_http(&ca, &responder, "tag-heavy", &["heavy.example.test"]).await;
    let serial = view.serial.clone().unwrap();
    let refreshed = ca
        .refresh(&[OrderQuery {
            order_id: None,
            tag: Some("tag-heavy".to_string()),
        }])
        .await
        .unwrap();
    assert_eq!(refreshed[0].as_ref().unwrap().status, OrderStatus::Issued);
    ca.revoke(&issued.order_id, &serial, RevocationReason::Superseded)
        .await
        .unwrap();
}

/// One certificate for one name, through the trait's steps as the executor takes them (place,
/// challenges, respond, finalize, fetch), sends no more requests than the protocol needs:
/// newOrder, the authorization, the challenge, polls of the order, finalize and the download,
/// each signed with the nonce of the previous answer (no HEAD newNonce per request).
#[tokio::test]
async fn one_certificate_takes_only_the_requests_the_protocol_needs() {
    let pebble = Pebble::start();
    let responder = pebble.start_http_responder();
    let dir = tempfile::tempdir().unwrap();
    // Polls far enough apart that a Pebble slowed by a loaded machine still finishes within
    // the two spare polls (20 ms apart, growing by 1.5, it did not always: 11 requests).
    let ca = open(&pebble, dir.path()).await.with_polling(Polling {
        initial_delay: StdDuration::from_millis(250),
        backoff: 2.0,
        timeout: StdDuration::from_secs(30),
    });
    let before = ca.requests_sent();
    let started = Instant::now();
    issue_over_http(&ca, &responder, "tag-count-1", &["count.example.test"]).await;
    let requests = ca.requests_sent() - before;
    eprintln!(
        "requests for one certificate: {requests} in {:?}",
        started.elapsed()
    );
    // The protocol's floor is 8: HEAD newNonce (instant-acme asks one for each new order),
    // newOrder, the authorization, the challenge, an order poll, finalize, an order poll and
    // the certificate. Two more polls are allowed for a slow Pebble. Reading the order again
    // in each DCV step (as before the order was kept between steps) took 15.
    assert!(requests <= 10, "{requests} requests");
}
