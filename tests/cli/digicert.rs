//! The `certform` binary against the DigiCert CertCentral simulator (run in this process on
//! `127.0.0.1:0`): plan/apply with immediate issuance and DNS DCV through a real BIND, crash
//! at every fail point, faults, read-only accounts, plan-time checks, `ca test`, `ca info` and
//! `import`.

use certform::sim::digicert::{DomainSeed, Faults, Limits, OrderSeed, RateWindow, Seed};

use crate::bind::{Bind, ZoneSpec};
use crate::digicert_sim::Sim;
use crate::sandbox::Sandbox;

const ADMIN: &str = "sim-admin-key";

fn domain(name: &str, complete: bool) -> DomainSeed {
    let mut value = serde_json::json!({ "name": name });
    if !complete {
        value["dcv_status"] = serde_json::json!("pending");
    }
    serde_json::from_value(value).expect("domain seed")
}

fn seed() -> Seed {
    Seed {
        random_seed: Some(11),
        domains: vec![domain("example.test", true)],
        ..Seed::default()
    }
}

fn account(url: &str, extra: &str) -> String {
    format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{url}\"\n{extra}\n"
    )
}

fn certificate(name: &str, common_name: &str, extra: &str) -> String {
    format!(
        "[certificate.{name}]\nca = \"dc\"\ncommon_name = \"{common_name}\"\nproduct = \"ssl_basic\"\norganization = 112233\nvalidity = {{ days = 90 }}\ndeploy = [{{ kind = \"files\", dir = \"out/{name}\" }}]\n{extra}\n"
    )
}

fn run(sandbox: &Sandbox, args: &[&str], key: &str) -> crate::sandbox::Run {
    sandbox.certform_env(args, &[("DIGICERT_API_KEY", key)])
}

fn apply(sandbox: &Sandbox) -> crate::sandbox::Run {
    run(sandbox, &["apply", "--auto-approve"], ADMIN)
}

#[track_caller]
fn verify(sandbox: &Sandbox, sim: &Sim, name: &str) {
    let root = sandbox.path("sim-root.pem");
    std::fs::write(&root, sim.sim().root_pem()).expect("root");
    let chain = sandbox.path(&format!("out/{name}/chain.pem"));
    let cert = sandbox.path(&format!("out/{name}/cert.pem"));
    let (ok, text) = sandbox.openssl(&[
        "verify",
        "-CAfile",
        root.to_str().unwrap_or_default(),
        "-untrusted",
        chain.to_str().unwrap_or_default(),
        cert.to_str().unwrap_or_default(),
    ]);
    assert!(ok && text.contains(": OK"), "openssl verify: {text}");
}

#[test]
fn immediate_issue_then_plan_is_empty_and_the_key_never_shows() {
    let sim = Sim::start(seed());
    let config = format!(
        "{}{}",
        account(&sim.sim().base_url(), ""),
        certificate("web", "www.example.test", "sans = [\"example.test\"]")
    );
    let sandbox = Sandbox::with_config(&config);
    let plan = run(&sandbox, &["plan"], ADMIN).expect(0);
    assert!(plan.stdout.contains("+ create web"), "{}", plan.stdout);
    let applied = apply(&sandbox).expect(0);
    assert!(
        applied.stdout.contains("✓ create web"),
        "{}",
        applied.stdout
    );
    verify(&sandbox, &sim, "web");
    run(&sandbox, &["plan", "--detailed-exitcode"], ADMIN).expect(0);
    assert_eq!(sim.orders_for("www.example.test"), 1);
    assert!(!sandbox.state_field("web", "order_id").is_empty());
    let log = sandbox.git("state", &["log", "-p"]);
    assert!(!log.contains(ADMIN), "API key in git");
    assert!(!applied.all().contains(ADMIN) && !plan.all().contains(ADMIN));
}

#[test]
fn pending_order_validated_through_bind_in_one_apply() {
    let bind = Bind::start(&[ZoneSpec::new("pending.test")]);
    let mut seed = seed();
    seed.domains.push(domain("pending.test", false));
    seed.dcv.dns_server = Some(bind.addr);
    let sim = Sim::start(seed);
    let secret_file = bind.dir.path().join("tsig.secret");
    std::fs::write(&secret_file, bind.secret(&bind.key_name)).expect("secret");
    let dns = format!(
        "[dns.bind]\nkind = \"rfc2136\"\nserver = \"{}\"\nkey_name = \"{}\"\nsecret = {{ file = \"{}\" }}\n",
        bind.addr,
        bind.key_name,
        secret_file.display()
    );
    let config = format!(
        "{}{}{}",
        account(&sim.sim().base_url(), ""),
        dns,
        certificate(
            "shop",
            "shop.pending.test",
            "sans = [\"pending.test\"]\ndcv = { method = \"dns\", provider = \"bind\" }"
        )
    );
    let sandbox = Sandbox::with_config(&config);
    let applied = apply(&sandbox).expect(0);
    assert!(
        applied.stdout.contains("✓ create shop"),
        "{}",
        applied.all()
    );
    verify(&sandbox, &sim, "shop");
    assert!(sim.sim().stats().dcv_checks >= 1);
    // The TXT record is gone again.
    assert!(bind.dig_answer("pending.test", "TXT").is_empty());
    run(&sandbox, &["plan", "--detailed-exitcode"], ADMIN).expect(0);
    assert_eq!(sim.orders_for("shop.pending.test"), 1);
}

#[test]
fn email_validation_waits_then_completes_after_approval() {
    let mut seed = seed();
    seed.domains.push(domain("mail.test", false));
    let sim = Sim::start(seed);
    let config = format!(
        "{}{}",
        account(&sim.sim().base_url(), ""),
        certificate("mail", "mail.test", "dcv = { method = \"email\" }")
    );
    let sandbox = Sandbox::with_config(&config);
    let first = apply(&sandbox).expect(0);
    assert!(first.stdout.contains("pending"), "{}", first.stdout);
    let plan = run(&sandbox, &["plan"], ADMIN).expect(0);
    assert!(plan.stdout.contains("mail.test"), "{}", plan.stdout);
    let order_id = sandbox
        .state_of("mail")
        .get("intent")
        .and_then(|i| i.get("order_id"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .expect("intent order id");
    sim.approve_email(&order_id);
    apply(&sandbox).expect(0);
    verify(&sandbox, &sim, "mail");
    assert_eq!(sim.orders_for("mail.test"), 1);
}

#[test]
fn without_a_dcv_rule_digicerts_default_email_dcv_waits_then_completes() {
    // No `dcv` rule: the order names no method and CertCentral validates by email (its
    // default). certform has nothing to publish: the order is placed, the names wait for
    // approval (not an error), and a later run fetches the certificate.
    let mut seed = seed();
    seed.domains.push(domain("mail.test", false));
    let sim = Sim::start(seed);
    let config = format!(
        "{}{}",
        account(&sim.sim().base_url(), ""),
        certificate("mail", "mail.test", "")
    );
    let sandbox = Sandbox::with_config(&config);
    let first = apply(&sandbox).expect(0);
    assert!(
        first.stdout.contains("mail.test pending (email)"),
        "{}",
        first.all()
    );
    assert!(!first.all().contains("no `dcv` rule"), "{}", first.all());
    let order_id = sandbox
        .state_of("mail")
        .get("intent")
        .and_then(|i| i.get("order_id"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .expect("intent order id");
    // Before approval a run waits again on the same order.
    let waiting = apply(&sandbox).expect(0);
    assert!(
        waiting.stdout.contains("mail.test pending (email)"),
        "{}",
        waiting.all()
    );
    assert_eq!(sim.orders_for("mail.test"), 1);
    sim.approve_email(&order_id);
    apply(&sandbox).expect(0);
    verify(&sandbox, &sim, "mail");
    assert_eq!(sim.orders_for("mail.test"), 1);
    run(&sandbox, &["plan", "--detailed-exitcode"], ADMIN).expect(0);
}

#[test]
fn killed_apply_at_every_fail_point_orders_exactly_once() {
    let sim = Sim::start(seed());
    // Three runs per fail point in a few seconds pass the default 100 requests per 5 s on an
    // idle machine (429s that pass under load): rate limits are tested elsewhere.
    sim.sim()
        .set_limits(Limits {
            windows: vec![RateWindow {
                requests: 1_000_000,
                seconds: 1,
            }],
            retry_after_header: false,
        })
        .expect("limits");
    for (index, point) in certform::apply::FailPoints::ALL.iter().enumerate() {
        let name = format!("c{index}.example.test");
        let config = format!(
            "{}{}",
            account(&sim.sim().base_url(), ""),
            certificate("web", &name, "")
        );
        let sandbox = Sandbox::with_config(&config);
        let killed = sandbox.certform_env(
            &["apply", "--auto-approve"],
            &[("DIGICERT_API_KEY", ADMIN), ("CERTFORM_FAILPOINT", point)],
        );
        assert_eq!(killed.code, 99, "{point}: {}", killed.all());
        // The killed run left its lock: the next apply takes it over and says so.
        let again = apply(&sandbox);
        assert_eq!(again.code, 0, "{point}: {}", again.all());
        assert!(
            again
                .stderr
                .contains("took over the state lock of `certform apply`"),
            "{point}: {}",
            again.stderr
        );
        run(&sandbox, &["plan", "--detailed-exitcode"], ADMIN).expect(0);
        verify(&sandbox, &sim, "web");
        assert_eq!(sim.orders_for(&name), 1, "{point}: exactly one order");
    }
}

#[test]
fn injected_faults_converge_without_duplicates() {
    let sim = Sim::start(seed());
    sim.sim()
        .set_faults(Faults {
            error_rate: 0.2,
            drop_rate: 0.05,
            ..Faults::default()
        })
        .expect("faults");
    let mut config = account(&sim.sim().base_url(), "");
    for index in 0..5 {
        config.push_str(&certificate(
            &format!("f{index}"),
            &format!("f{index}.example.test"),
            "",
        ));
    }
    let sandbox = Sandbox::with_config(&config);
    let mut converged = false;
    for _ in 0..15 {
        let run = apply(&sandbox);
        // Failed requests end a run normally: it releases the lock, the next run finds it free.
        assert!(
            !run.stderr.contains("locked by") && !run.stderr.contains("took over"),
            "{}",
            run.all()
        );
        let plan = sandbox.certform_env(
            &["plan", "--detailed-exitcode"],
            &[("DIGICERT_API_KEY", ADMIN)],
        );
        if plan.code == 0 {
            converged = true;
            break;
        }
    }
    assert!(converged, "apply converged under faults");
    let stats = sim.sim().stats();
    assert!(
        stats.duplicate_common_names().is_empty(),
        "{:?}",
        stats.duplicate_common_names()
    );
    assert_eq!(stats.orders_total, 5);
}

#[test]
fn read_only_account_plans_but_apply_refuses_to_write() {
    let sim = Sim::start(seed());
    let config = format!(
        "{}{}",
        account(&sim.sim().base_url(), "mode = \"read-only\""),
        certificate("web", "ro.example.test", "")
    );
    let sandbox = Sandbox::with_config(&config);
    run(&sandbox, &["plan"], "sim-view-only-key").expect(0);
    let refused = run(&sandbox, &["apply", "--auto-approve"], "sim-view-only-key").expect(3);
    assert!(refused.all().contains("read-only"), "{}", refused.all());
    assert_eq!(sim.orders_for("ro.example.test"), 0);
    let writes: u64 = sim
        .sim()
        .stats()
        .requests_by_route
        .iter()
        .filter(|(route, _)| !route.starts_with("GET"))
        .map(|(_, count)| count)
        .sum();
    assert_eq!(writes, 0, "no write reached the CA");
}

#[test]
fn plan_checks_config_against_the_account() {
    let sim = Sim::start(seed());
    let config = format!(
        "{}{}{}{}",
        account(&sim.sim().base_url(), ""),
        certificate("a", "a.example.test", "")
            .replace("product = \"ssl_basic\"", "product = \"ssl_nope\""),
        certificate("b", "b.example.test", "signature_hash = \"sha512\"")
            .replace("product = \"ssl_basic\"", "product = \"ssl_dv_geotrust\"")
            .replace("validity = { days = 90 }", "validity = { years = 3 }"),
        certificate("c", "c.example.test", "").replace("112233", "999")
    );
    let sandbox = Sandbox::with_config(&config);
    let plan = run(&sandbox, &["plan"], ADMIN).expect(1);
    assert!(
        plan.stderr.contains("product `ssl_nope` is not enabled"),
        "{}",
        plan.stderr
    );
    assert!(
        plan.stderr.contains("ssl_basic"),
        "lists available products: {}",
        plan.stderr
    );
    assert!(
        plan.stderr.contains("does not allow a validity of 3 years"),
        "{}",
        plan.stderr
    );
    assert!(
        plan.stderr.contains("organization 999 does not exist"),
        "{}",
        plan.stderr
    );
    let wrong_ca = "[certificate.l]\nca = \"local\"\ncommon_name = \"l.example.test\"\nproduct = \"ssl_basic\"\n\n[ca.local]\nkind = \"local\"\n";
    sandbox.write_config(&format!("{}{wrong_ca}", account(&sim.sim().base_url(), "")));
    let invalid = run(&sandbox, &["validate"], ADMIN).expect(1);
    assert!(
        invalid
            .stderr
            .contains("`product` applies only to certificates of a `kind = \"digicert\"` CA"),
        "{}",
        invalid.stderr
    );
}

#[test]
fn ca_test_and_info() {
    let sim = Sim::start(seed());
    let sandbox = Sandbox::with_config(&account(&sim.sim().base_url(), ""));
    let ok = run(&sandbox, &["ca", "test", "dc"], ADMIN).expect(0);
    assert!(
        ok.stdout.contains("ok: `dc` answers as user"),
        "{}",
        ok.stdout
    );
    let wrong = run(&sandbox, &["ca", "test", "dc"], "wrong-key-123").expect(1);
    // CertCentral answers a wrong key with 403 `access_denied_invalid_key` (issue 11 finding 6).
    assert!(
        wrong
            .stderr
            .contains("DigiCert rejected the API key of `dc` (HTTP 403)"),
        "{}",
        wrong.stderr
    );
    assert!(
        wrong.stderr.contains("hint: check the API key"),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains("role"), "{}", wrong.stderr);
    assert!(!wrong.all().contains("wrong-key-123"));
    let info = run(&sandbox, &["ca", "info", "dc"], ADMIN).expect(0);
    assert!(info.stdout.contains("ssl_basic"), "{}", info.stdout);
    assert!(info.stdout.contains("example.test"), "{}", info.stdout);
    assert!(info.stdout.contains("112233"), "{}", info.stdout);
    let json = run(&sandbox, &["ca", "info", "dc", "--format", "json"], ADMIN).expect(0);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert!(value["products"].as_array().is_some_and(|p| !p.is_empty()));
    assert_eq!(value["domains"][0]["dcv_status"], "complete");
    // A key restricted to orders may not list organizations: 403 with the three likely causes.
    let forbidden = run(&sandbox, &["ca", "info", "dc"], "sim-orders-key").expect(1);
    assert!(forbidden.stderr.contains("403"), "{}", forbidden.stderr);
    assert!(
        forbidden.stderr.contains("IP address"),
        "{}",
        forbidden.stderr
    );
    assert!(
        forbidden.stderr.contains("  1.") && forbidden.stderr.contains("  3."),
        "{}",
        forbidden.stderr
    );
}

#[test]
fn import_adopts_orders_writes_stubs_and_refuses_to_deploy_without_the_key() {
    let mut seed = seed();
    seed.orders = vec![
        serde_json::from_value::<OrderSeed>(serde_json::json!({
            "common_name": "old.example.test", "dns_names": ["old.example.test", "www.old.example.test"],
            "organization_id": 112233
        }))
        .expect("order seed"),
        serde_json::from_value::<OrderSeed>(serde_json::json!({
            "common_name": "gone.example.test", "status": "revoked", "organization_id": 112233
        }))
        .expect("order seed"),
    ];
    let sim = Sim::start(seed);
    let sandbox = Sandbox::with_config(&account(&sim.sim().base_url(), ""));
    let imported = run(
        &sandbox,
        &[
            "import",
            "dc",
            "--exclude-status",
            "expired,revoked",
            "--write-config",
            "imported.toml",
        ],
        "sim-view-only-key",
    )
    .expect(0);
    assert!(
        imported.stdout.contains("imported old-example-test"),
        "{}",
        imported.all()
    );
    assert!(
        imported.stdout.contains("skipped 1 order: status revoked"),
        "{}",
        imported.all()
    );
    assert!(
        imported.stderr.contains("private keys"),
        "{}",
        imported.stderr
    );
    let stub = sandbox.read("imported.toml");
    assert!(stub.contains("[certificate.old-example-test]"), "{stub}");
    assert_eq!(sandbox.state_field("old-example-test", "status"), "issued");
    // The stubs and state agree: nothing to do.
    let plan = run(&sandbox, &["plan", "--detailed-exitcode"], ADMIN);
    assert_eq!(plan.code, 0, "{}", plan.all());
    // Importing again finds it in state.
    let again = run(
        &sandbox,
        &["import", "dc", "--exclude-status", "revoked"],
        ADMIN,
    )
    .expect(0);
    assert!(
        again.stdout.contains("already in state"),
        "{}",
        again.stdout
    );
    // Asking to deploy it fails loudly: certform has no key for it.
    let with_deploy = stub.replace(
        "[certificate.old-example-test]\n",
        "[certificate.old-example-test]\ndeploy = [{ kind = \"files\", dir = \"out/old\" }]\n",
    );
    std::fs::write(sandbox.path("imported.toml"), with_deploy).expect("stub");
    let deploy = apply(&sandbox);
    assert_ne!(deploy.code, 0, "{}", deploy.all());
    assert!(
        deploy
            .all()
            .contains("certform holds no private key for certificate `old-example-test`"),
        "{}",
        deploy.all()
    );
    assert!(!sandbox.path("out/old/cert.pem").exists());
}

#[test]
fn full_lifecycle_reissue_renew_revoke_and_cancel_through_the_cli() {
    let sim = Sim::start(Seed {
        random_seed: Some(12),
        domains: vec![domain("example.test", true), domain("pending.test", false)],
        ..Seed::default()
    });
    let base = account(&sim.sim().base_url(), "");
    let web = certificate("web", "www.example.test", "sans = [\"example.test\"]");
    let sandbox = Sandbox::with_config(&format!("{base}{web}"));
    apply(&sandbox).expect(0);
    let order = sandbox.state_field("web", "order_id");
    let serial = sandbox.state_field("web", "serial");

    // Reissue: names changed, same order, new certificate.
    let reissued = certificate(
        "web",
        "www.example.test",
        "sans = [\"example.test\", \"shop.example.test\"]",
    );
    sandbox.write_config(&format!("{base}{reissued}"));
    let plan = run(&sandbox, &["plan"], ADMIN).expect(0);
    assert!(
        plan.stdout.contains("~ reissue web (ca `dc`, same order)"),
        "{}",
        plan.stdout
    );
    apply(&sandbox).expect(0);
    assert_eq!(sandbox.state_field("web", "order_id"), order, "same order");
    assert_ne!(sandbox.state_field("web", "serial"), serial);
    assert!(sandbox
        .sans_of("out/web/cert.pem")
        .contains("DNS:shop.example.test"));
    verify(&sandbox, &sim, "web");
    assert_eq!(
        sim.orders_for("www.example.test"),
        1,
        "a reissue is not a new order"
    );

    // Renew: inside the window under a pinned clock; a new order that renews the old one.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(70))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    let env = [
        ("DIGICERT_API_KEY", ADMIN),
        ("CERTFORM_NOW", later.as_str()),
    ];
    let plan = sandbox.certform_env(&["plan"], &env).expect(0);
    assert!(plan.stdout.contains("↻ renew web"), "{}", plan.stdout);
    sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert_ne!(
        sandbox.state_field("web", "order_id"),
        order,
        "renewal is a new order"
    );
    assert_eq!(sim.orders_for("www.example.test"), 2);
    verify(&sandbox, &sim, "web");
    run(&sandbox, &["plan", "--detailed-exitcode"], ADMIN).expect(0);

    // Revoke (an admin key revokes at once with skip_approval).
    sandbox.write_config(&format!("{base}{reissued}revoke = true\n"));
    let plan = run(&sandbox, &["plan"], ADMIN).expect(0);
    assert!(plan.stdout.contains("! revoke web"), "{}", plan.stdout);
    apply(&sandbox).expect(0);
    assert_eq!(
        sim.sim().stats().orders_by_status.get("revoked").copied(),
        Some(1)
    );
    run(&sandbox, &["plan", "--detailed-exitcode"], ADMIN).expect(0);

    // Cancel: a pending order (email validation never approved) removed from config.
    let pending = certificate(
        "later",
        "www.pending.test",
        "on_remove = \"cancel\"\ndcv = { method = \"email\" }",
    );
    sandbox.write_config(&format!("{base}{reissued}revoke = true\n{pending}"));
    let waiting = apply(&sandbox).expect(0);
    assert!(
        waiting.stdout.contains("create later"),
        "{}",
        waiting.stdout
    );
    sandbox.write_config(&format!("{base}{reissued}revoke = true\n"));
    let plan = run(&sandbox, &["plan"], ADMIN).expect(0);
    assert!(plan.stdout.contains("! cancel later"), "{}", plan.stdout);
    apply(&sandbox).expect(0);
    assert_eq!(
        sim.sim().stats().orders_by_status.get("canceled").copied(),
        Some(1)
    );
    assert!(!sandbox.path("state/certificates/later.toml").exists());
    run(&sandbox, &["plan", "--detailed-exitcode"], ADMIN).expect(0);
}

#[test]
fn http_token_validation_through_a_webroot_issues_in_one_apply() {
    let spare = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let port = spare.local_addr().expect("addr").port();
    drop(spare);
    let mut seed = Seed {
        random_seed: Some(13),
        domains: vec![domain("web.test", false)],
        ..Seed::default()
    };
    seed.dcv.http_port = port;
    seed.dcv.http_default_address = "127.0.0.1".parse().expect("ip");
    let sim = Sim::start(seed);
    let sandbox = Sandbox::new();
    let webroot = sandbox.path("www");
    std::fs::create_dir_all(&webroot).expect("webroot");
    let _server = crate::acme::StaticServer::start(&webroot, port);
    sandbox.write_config(&format!(
        "{}{}",
        account(&sim.sim().base_url(), ""),
        certificate(
            "web",
            "www.web.test",
            "dcv = { method = \"http\", webroot = \"www\" }"
        )
    ));
    let applied = apply(&sandbox).expect(0);
    assert!(
        applied.stdout.contains("✓ create web: serial"),
        "{}",
        applied.stdout
    );
    verify(&sandbox, &sim, "web");
    assert!(
        !webroot
            .join(".well-known/pki-validation/fileauth.txt")
            .exists(),
        "the token file is removed after validation"
    );
    run(&sandbox, &["plan", "--detailed-exitcode"], ADMIN).expect(0);
}

/// A minimal HTTP proxy on loopback (CONNECT tunnels for https, forwarding for plain http) that
/// records the upstreams it connected to.
struct ConnectProxy {
    addr: std::net::SocketAddr,
    targets: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ConnectProxy {
    fn start() -> ConnectProxy {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let targets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&targets);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let seen = std::sync::Arc::clone(&seen);
                std::thread::spawn(move || {
                    let mut client = client;
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match client.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head_text = String::from_utf8_lossy(&head).into_owned();
                    let request_line = head_text.lines().next().unwrap_or("");
                    let mut words = request_line.split_whitespace();
                    let method = words.next().unwrap_or("");
                    let uri = words.next().unwrap_or("");
                    // CONNECT host:port (https), or an absolute-form request (plain http,
                    // forwarded as written: HTTP/1.1 servers accept the absolute form).
                    let connect = method == "CONNECT";
                    let target = if connect {
                        Some(uri.to_string())
                    } else {
                        uri.strip_prefix("http://")
                            .and_then(|rest| rest.split('/').next())
                            .map(String::from)
                    };
                    let Some(target) = target else {
                        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n");
                        return;
                    };
                    let Ok(mut upstream) = std::net::TcpStream::connect(&target) else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                        return;
                    };
                    if let Ok(mut targets) = seen.lock() {
                        targets.push(target);
                    }
                    if !connect {
                        if upstream.write_all(&head).is_err() {
                            return;
                        }
                    } else {
                        let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                    }
                    let (Ok(mut client_read), Ok(mut upstream_write)) =
                        (client.try_clone(), upstream.try_clone())
                    else {
                        return;
                    };
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut client_read, &mut upstream_write);
                        let _ = upstream_write.shutdown(std::net::Shutdown::Write);
                    });
                    let mut upstream_read = upstream;
                    let _ = std::io::copy(&mut upstream_read, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        ConnectProxy { addr, targets }
    }
}

#[test]
fn api_calls_go_through_the_configured_proxy() {
    let sim = Sim::start(seed());
    let proxy = ConnectProxy::start();
    let config = format!(
        "{}{}",
        account(
            &sim.sim().base_url(),
            &format!("proxy = \"http://{}\"", proxy.addr)
        ),
        certificate("web", "www.example.test", "")
    );
    let sandbox = Sandbox::with_config(&config);
    apply(&sandbox).expect(0);
    verify(&sandbox, &sim, "web");
    let targets = proxy.targets.lock().expect("targets").clone();
    assert!(!targets.is_empty(), "no request went through the proxy");
    let sim_addr = sim.sim().local_addr().to_string();
    assert!(
        targets.iter().all(|t| *t == sim_addr),
        "tunnels to {targets:?}, expected only {sim_addr}"
    );
    run(&sandbox, &["plan", "--detailed-exitcode"], ADMIN).expect(0);
}
