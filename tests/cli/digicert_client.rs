//! The DigiCert client (`ca::digicert`) against the CertCentral simulator on `127.0.0.1:0`,
//! through the `CertificateAuthority` trait: issue, adopt by tag, refresh through the list
//! API, DCV challenges, reissue, renew, revoke (both forms), cancel, read-only refusal and the
//! error classes of 401/403/404/429/5xx.

use std::time::Duration as StdDuration;

use certform::ca::digicert::{self, DigicertCa, DigicertSettings, Retry, Secret};
use certform::ca::{
    CertificateAuthority, ChallengeKind, DomainValidation, ErrorClass, OrderQuery, OrderRequest,
    Problem, RevokeOutcome, ValidationMethod,
};
use certform::keys::PrivateKey;
use certform::observed::OrderStatus;
use certform::serial::Serial;
use certform::sim::digicert::{self as sim, DomainSeed, Faults, Limits, RateWindow, Seed};
use certform::spec::{CaOptions, KeySpec, RevocationReason, Validity};

const ADMIN: &str = "sim-admin-key";
const VIEW_ONLY: &str = "sim-view-only-key";

fn domain(name: &str, complete: bool) -> DomainSeed {
    let mut value = serde_json::json!({ "name": name });
    if !complete {
        value["dcv_status"] = serde_json::json!("pending");
    }
    serde_json::from_value(value).expect("domain seed")
}

fn seed() -> Seed {
    Seed {
        random_seed: Some(7),
        domains: vec![domain("example.test", true), domain("pending.test", false)],
        ..Seed::default()
    }
}

async fn start(seed: Seed) -> sim::RunningSim {
    sim::start(seed, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator starts")
}

fn client(sim: &sim::RunningSim, key: &str, cache: Option<&std::path::Path>) -> DigicertCa {
    let mut settings = DigicertSettings::new(sim.base_url(), Secret::new(key));
    settings.retry = Retry {
        attempts: 4,
        base_delay: StdDuration::ZERO,
        max_retry_after: StdDuration::ZERO,
    };
    settings.cache_dir = cache.map(std::path::Path::to_path_buf);
    DigicertCa::open("digicert-test", settings).expect("open")
}

fn request(tag: &str, common_name: &str, sans: &[&str]) -> OrderRequest {
    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).expect("key");
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    OrderRequest {
        tag: tag.to_string(),
        common_name: common_name.to_string(),
        sans: sans.clone(),
        csr_der: key.csr_der(common_name, &sans).expect("csr"),
        validity: Validity::Days(90),
        renewal_of: None,
        options: CaOptions::Digicert(digicert::settings::Options {
            product: Some("ssl_basic".to_string()),
            organization: Some(112233),
            ..Default::default()
        }),
        dcv: Vec::new(),
        now: time::OffsetDateTime::now_utc(),
    }
}

fn by_tag(tag: &str) -> OrderQuery {
    OrderQuery {
        order_id: None,
        tag: Some(tag.to_string()),
    }
}

fn by_id(id: &str) -> OrderQuery {
    OrderQuery {
        order_id: Some(id.to_string()),
        tag: None,
    }
}

#[tokio::test]
async fn immediate_issue_fetch_and_adopt_by_tag() {
    let sim = start(seed()).await;
    let ca = client(&sim, ADMIN, None);
    let order = request("cf-1.aa", "www.example.test", &["www.example.test"]);
    let view = ca.place_order(&order).await.expect("order");
    assert_eq!(view.status, OrderStatus::Issued, "{view:?}");

    // A run killed after the order finds it by its tag (the executor's lookup before it
    // resumes a create), so it is adopted, not ordered twice.
    let again = ca.refresh(&[by_tag("cf-1.aa")]).await.expect("lookup");
    assert_eq!(
        again[0].as_ref().map(|v| v.order_id.clone()),
        Some(view.order_id.clone())
    );
    assert_eq!(sim.stats().orders_by_common_name["www.example.test"], 1);

    let issued = ca
        .fetch(&view.order_id)
        .await
        .expect("fetch")
        .issued()
        .expect("issued");
    let (info, blocks) = certform::keys::inspect_chain(&issued.chain_pem).expect("chain");
    assert!(blocks.len() >= 2, "leaf and intermediate");
    assert_eq!(Some(info.serial.clone()), view.serial);

    let found = ca
        .refresh(&[by_tag("cf-1.aa"), by_tag("cf-unknown")])
        .await
        .expect("refresh");
    assert_eq!(
        found[0].as_ref().map(|v| v.order_id.clone()),
        Some(view.order_id.clone())
    );
    assert!(found[1].is_none());
    let missing = ca.refresh(&[by_id("999999999")]).await.expect("refresh");
    assert!(missing[0].is_none());
}

#[tokio::test]
async fn refresh_of_many_orders_uses_the_list_api() {
    let sim = start(seed()).await;
    let cache = tempfile::tempdir().expect("temp");
    let ca = client(&sim, ADMIN, Some(cache.path()));
    let mut ids = Vec::new();
    for index in 0..15 {
        let name = format!("h{index}.example.test");
        let view = ca
            .place_order(&request(&format!("cf-{index}.bb"), &name, &[&name]))
            .await
            .expect("order");
        ca.fetch(&view.order_id)
            .await
            .expect("fetch")
            .issued()
            .expect("issued");
        ids.push(view.order_id);
    }
    let before = sim.stats().requests_total;
    let queries: Vec<OrderQuery> = ids.iter().map(|id| by_id(id)).collect();
    let views = ca.refresh(&queries).await.expect("refresh");
    let used = sim.stats().requests_total - before;
    assert_eq!(used, 1, "one list page for 15 orders");
    for view in views {
        let view = view.expect("found");
        assert_eq!(view.status, OrderStatus::Issued);
        assert!(view.serial.is_some(), "serial from the cache");
    }
}

#[tokio::test]
async fn pending_orders_offer_dns_and_http_challenges() {
    let sim = start(seed()).await;
    let ca = client(&sim, ADMIN, None);
    let mut order = request(
        "cf-2.cc",
        "pending.test",
        &["pending.test", "www.pending.test"],
    );
    if let CaOptions::Digicert(options) = &mut order.options {
        options.dcv_method = Some(digicert::settings::DcvMethodWire::DnsTxtToken);
    }
    let view = ca.place_order(&order).await.expect("order");
    assert_eq!(view.status, OrderStatus::Pending);
    assert!(view.dcv.iter().all(|d| d.status == "pending"), "{view:?}");
    let challenges = ca.challenges(&view).await.expect("challenges");
    assert_eq!(challenges.len(), 2);
    for challenge in &challenges {
        match &challenge.kind {
            ChallengeKind::DnsTxt { name, value } => {
                assert_eq!(name, "pending.test");
                assert!(!value.is_empty());
            }
            other => panic!("expected DNS, got {other:?}"),
        }
    }
    // No TXT record anywhere: check-dcv is refused, the order stays pending.
    let error = ca.respond(&view, &challenges).await.expect_err("no record");
    assert_eq!(error.class, ErrorClass::Rejected, "{error}");

    // The method comes from the certificate's `dcv` rules, known at order time.
    let mut http = request("cf-3.cc", "pending.test", &["pending.test"]);
    http.dcv = vec![DomainValidation {
        domain: "pending.test".into(),
        method: ValidationMethod::Http,
        approver_email: None,
    }];
    let view = ca.place_order(&http).await.expect("order");
    let challenges = ca.challenges(&view).await.expect("challenges");
    assert!(matches!(
        &challenges[0].kind,
        ChallengeKind::Http { path, .. } if path == "/.well-known/pki-validation/fileauth.txt"
    ));

    // Cancel the pending order; cancelling again is fine.
    ca.cancel(&view.order_id).await.expect("cancel");
    ca.cancel(&view.order_id).await.expect("cancel again");
    let after = ca.refresh(&[by_id(&view.order_id)]).await.expect("refresh");
    assert_eq!(
        after[0].as_ref().map(|v| v.status),
        Some(OrderStatus::Canceled)
    );
}

#[tokio::test]
async fn reissue_renew_and_revoke() {
    let sim = start(seed()).await;
    let ca = client(&sim, ADMIN, None);
    let first = ca
        .place_order(&request(
            "cf-4.dd",
            "api.example.test",
            &["api.example.test"],
        ))
        .await
        .expect("order");
    let serial = first.serial.clone().expect("serial");

    let reissue = request(
        "cf-4.ee",
        "api.example.test",
        &["api.example.test", "x.example.test"],
    );
    let reissued = ca
        .reissue(&first.order_id, &reissue)
        .await
        .expect("reissue");
    assert_eq!(reissued.order_id, first.order_id, "same order");
    assert_eq!(reissued.status, OrderStatus::Issued);
    assert_ne!(reissued.serial.as_deref(), Some(serial.as_str()));
    let fetched = ca
        .fetch(&first.order_id)
        .await
        .expect("fetch")
        .issued()
        .expect("issued");
    let (info, _) = certform::keys::inspect_chain(&fetched.chain_pem).expect("chain");
    assert!(info.sans.contains(&"x.example.test".to_string()));

    let mut renewal = request("cf-4.ff", "api.example.test", &["api.example.test"]);
    renewal.renewal_of = Some(first.order_id.clone());
    let renewed = ca.place_order(&renewal).await.expect("renew");
    assert_ne!(renewed.order_id, first.order_id);

    let outcome = ca
        .revoke(
            &renewed.order_id,
            renewed.serial.as_ref().expect("serial"),
            RevocationReason::Superseded,
        )
        .await
        .expect("revoke");
    assert_eq!(outcome, RevokeOutcome::Revoked, "admin key skips approval");
    let after = ca
        .refresh(&[by_id(&renewed.order_id)])
        .await
        .expect("refresh");
    assert_eq!(
        after[0].as_ref().map(|v| v.status),
        Some(OrderStatus::Revoked)
    );

    // An orders-only key cannot skip approval: the revocation is a request.
    let orders = client(&sim, "sim-orders-key", None);
    let requested = orders
        .revoke(
            &first.order_id,
            &Serial::parse(""),
            RevocationReason::Unspecified,
        )
        .await
        .expect("revoke request");
    assert!(
        matches!(requested, RevokeOutcome::Requested { .. }),
        "{requested:?}"
    );
}

#[tokio::test]
async fn read_only_refuses_writes_before_sending_anything() {
    let sim = start(seed()).await;
    let mut settings = DigicertSettings::new(sim.base_url(), Secret::new(VIEW_ONLY));
    settings.read_only = true;
    let ca = DigicertCa::open("ro", settings).expect("open");
    let before = sim.stats().requests_total;
    let error = ca
        .place_order(&request("cf-5.aa", "ro.example.test", &["ro.example.test"]))
        .await
        .expect_err("read-only");
    assert_eq!(error.class, ErrorClass::Rejected);
    assert!(error.message.contains("read-only"), "{error}");
    assert!(ca.cancel("1").await.is_err());
    assert!(ca
        .revoke("1", &Serial::parse("aa"), RevocationReason::Unspecified)
        .await
        .is_err());
    assert_eq!(sim.stats().requests_total, before, "nothing was sent");
    // Reads work.
    ca.refresh(&[by_tag("cf-5.aa")]).await.expect("read");
}

#[tokio::test]
async fn error_statuses_map_to_classes_and_never_show_the_key() {
    let sim = start(seed()).await;
    let wrong = client(&sim, "not-a-real-key-1234", None);
    let error = wrong.user().await.expect_err("403");
    assert_eq!(error.class, ErrorClass::Auth);
    assert!(error.message.contains("403"), "{error}");
    assert_eq!(error.status, Some(403));
    assert!(error.is_unauthorized());
    assert!(
        error
            .hint()
            .is_some_and(|hint| hint.starts_with("check the API key")),
        "{:?}",
        error.hint()
    );
    assert!(!format!("{error} {error:?}").contains("not-a-real-key-1234"));

    let view_only = client(&sim, VIEW_ONLY, None);
    let error = view_only
        .place_order(&request("cf-6.aa", "vo.example.test", &["vo.example.test"]))
        .await
        .expect_err("403");
    assert_eq!(error.class, ErrorClass::Auth, "{error}");
    assert_eq!(error.status, Some(403));
    assert!(error.is_forbidden() && !error.is_unauthorized());
    // The likely causes are the hint, chosen from the status; the message states the refusal.
    let hint = error.hint().expect("hint");
    assert!(hint.contains("IP address"), "{hint}");
    assert!(hint.contains("View Only"), "{hint}");
    assert!(!error.message.contains("IP address"), "{error}");

    let admin = client(&sim, ADMIN, None);
    let error = admin.fetch("987654321").await.expect_err("404");
    assert_eq!(error.class, ErrorClass::Rejected);

    // 5xx on every request: retried, then transient.
    sim.set_faults(Faults {
        error_rate: 1.0,
        error_status: 503,
        ..Faults::default()
    })
    .expect("faults");
    let before = sim.stats().requests_total;
    let error = admin.user().await.expect_err("503");
    assert_eq!(error.class, ErrorClass::Transient);
    assert_eq!(sim.stats().requests_total - before, 4, "four attempts");
    sim.set_faults(Faults::default()).expect("faults");

    // 429 past the window: rate limited, with the wait.
    sim.set_limits(Limits {
        windows: vec![RateWindow {
            requests: 2,
            seconds: 60,
        }],
        retry_after_header: true,
    })
    .expect("limits");
    admin.user().await.expect("1");
    admin.user().await.expect("2");
    let error = admin.user().await.expect_err("429");
    assert_eq!(error.class, ErrorClass::RateLimited, "{error}");
    assert!(error.retry_after.is_some());
    assert_eq!(error.status, Some(429));
    assert!(error.is_rate_limited());
    assert!(
        error
            .problem
            .as_deref()
            .is_some_and(|problem| matches!(problem, Problem::Digicert { .. })),
        "{error:?}"
    );
    assert!(
        error
            .hint()
            .is_some_and(|hint| hint.contains("asked to wait")),
        "{:?}",
        error.hint()
    );
}

#[tokio::test]
async fn injected_faults_converge_without_duplicates() {
    let sim = start(seed()).await;
    sim.set_faults(Faults {
        error_rate: 0.2,
        drop_rate: 0.1,
        ..Faults::default()
    })
    .expect("faults");
    let ca = client(&sim, ADMIN, None);
    for index in 0..10 {
        let name = format!("f{index}.example.test");
        let order = request(&format!("cf-f{index}.aa"), &name, &[&name]);
        // Like the executor: after a failed create, look the tag up before trying again.
        let mut placed = None;
        for _ in 0..10 {
            if let Ok(view) = ca.place_order(&order).await {
                placed = Some(view);
                break;
            }
            let found = loop {
                if let Ok(found) = ca.refresh(&[by_tag(&order.tag)]).await {
                    break found;
                }
            };
            if let Some(view) = found.into_iter().next().flatten() {
                placed = Some(view);
                break;
            }
        }
        assert!(placed.is_some(), "{name} converged");
    }
    let stats = sim.stats();
    assert!(
        stats.duplicate_common_names().is_empty(),
        "{:?}",
        stats.duplicate_common_names()
    );
    assert_eq!(stats.orders_total, 10);
}

/// Benchmark (run with `--ignored`): 10,000 orders, 20 ms latency, default rate limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark"]
async fn refresh_of_ten_thousand_orders() {
    let mut seed = seed();
    seed.orders = vec![serde_json::from_value(serde_json::json!({
        "count": 10000, "common_name": "bulk.example.test", "organization_id": 112233
    }))
    .expect("order seed")];
    seed.faults = Faults {
        latency_ms: 20,
        ..Faults::default()
    };
    let sim = start(seed).await;
    let cache = tempfile::tempdir().expect("temp");
    let ca = client(&sim, ADMIN, Some(cache.path()));
    let queries: Vec<OrderQuery> = (0..10_000u64)
        .map(|i| by_id(&(1_000_001 + i).to_string()))
        .collect();
    for run in ["first (no cache)", "second"] {
        let before = sim.stats().requests_total;
        let started = std::time::Instant::now();
        let views = ca.refresh(&queries).await.expect("refresh");
        let elapsed = started.elapsed();
        let requests = sim.stats().requests_total - before;
        assert_eq!(views.iter().flatten().count(), 10_000);
        println!("{run}: {elapsed:?}, {requests} requests");
        assert!(requests <= 15, "{requests} requests");
        // The request count above is the measure; the time only catches work that grows with
        // the orders beyond reason (one request each would take 200 s at 20 ms), with room
        // for a machine busy with other builds.
        assert!(elapsed < StdDuration::from_secs(20), "{elapsed:?}");
    }
}
