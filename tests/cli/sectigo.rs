//! The `certform` binary against the Sectigo Certificate Manager simulator (run in this process
//! on `127.0.0.1:0`): the full lifecycle, import, read-only refusal, credential and role hints,
//! plan-time checks against the account, `ca info` and its cache, a kill at every fail point
//! and injected faults.

use certform::sim::sectigo::{self as sim, CertificateSeed, Faults, Seed};

use certform::apply::FailPoints;

use crate::sandbox::Sandbox;

const ADMIN: &str = "certform-admin";
const ADMIN_PASSWORD: &str = "sim-admin-password";

/// A simulator on its own runtime, alive as long as this value.
pub struct Sim {
    running: Option<sim::RunningSim>,
    runtime: tokio::runtime::Runtime,
}

impl Sim {
    pub fn start(seed: Seed) -> Sim {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let running = runtime
            .block_on(sim::start(seed, "127.0.0.1:0".parse().expect("addr")))
            .expect("simulator starts");
        Sim {
            running: Some(running),
            runtime,
        }
    }

    pub fn sim(&self) -> &sim::RunningSim {
        self.running.as_ref().expect("running")
    }

    /// Records created for `common_name` (enrollments and renewals).
    pub fn enrollments_for(&self, common_name: &str) -> u64 {
        self.sim()
            .stats()
            .enrollments_by_common_name
            .get(common_name)
            .copied()
            .unwrap_or(0)
    }

    /// Certificates in `status` (`Issued`, `Revoked`, ...).
    pub fn in_status(&self, status: &str) -> u64 {
        self.sim()
            .stats()
            .certificates_by_status
            .get(status)
            .copied()
            .unwrap_or(0)
    }

    /// Requests served on `route` (`POST /ssl/v1/enroll`).
    pub fn requests(&self, route: &str) -> u64 {
        self.sim()
            .stats()
            .requests_by_route
            .get(route)
            .copied()
            .unwrap_or(0)
    }

    /// `POST /_sim/<path>` on the control endpoints; the answer's status line must be 2xx.
    pub fn control(&self, path: &str) {
        let address = self.sim().local_addr();
        let answer = self.runtime.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
            let request = format!(
                "POST /_sim/{path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.expect("send");
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.expect("read");
            answer
        });
        assert!(answer.starts_with("HTTP/1.1 2"), "{path}: {answer}");
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = self.runtime.block_on(running.shutdown());
        }
    }
}

fn seed() -> Seed {
    Seed {
        random_seed: Some(21),
        ..Seed::default()
    }
}

fn account(sim: &Sim, login: &str, extra: &str) -> String {
    format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.scm]\nkind = \"sectigo\"\nurl = \"{}\"\ncustomer_uri = \"{}\"\nlogin = \"{login}\"\npassword = {{ env = \"SECTIGO_PASSWORD\" }}\n{extra}\n",
        sim.sim().base_url(),
        sim.sim().customer_uri()
    )
}

fn certificate(name: &str, common_name: &str, extra: &str) -> String {
    format!(
        "[certificate.{name}]\nca = \"scm\"\ncommon_name = \"{common_name}\"\nprofile = \"OV Multi-Domain\"\norganization = \"Example Inc\"\ndeploy = [{{ kind = \"files\", dir = \"out/{name}\" }}]\n{extra}\n"
    )
}

fn run(sandbox: &Sandbox, args: &[&str], password: &str) -> crate::sandbox::Run {
    sandbox.certform_env(args, &[("SECTIGO_PASSWORD", password)])
}

fn apply(sandbox: &Sandbox) -> crate::sandbox::Run {
    run(sandbox, &["apply", "--auto-approve"], ADMIN_PASSWORD)
}

#[track_caller]
fn verify(sandbox: &Sandbox, sim: &Sim, name: &str) {
    verify_at(sandbox, sim, name, None);
}

/// `openssl verify` of the deployed certificate against the simulator's root, at `at` (Unix
/// seconds) when the simulator's clock was moved.
#[track_caller]
fn verify_at(sandbox: &Sandbox, sim: &Sim, name: &str, at: Option<i64>) {
    let root = sandbox.path("sim-root.pem");
    std::fs::write(&root, sim.sim().root_pem()).expect("root");
    let chain = sandbox.path(&format!("out/{name}/chain.pem"));
    let cert = sandbox.path(&format!("out/{name}/cert.pem"));
    let at = at.map(|at| at.to_string());
    let mut args = vec!["verify"];
    if let Some(at) = &at {
        args.extend(["-attime", at.as_str()]);
    }
    args.extend([
        "-CAfile",
        root.to_str().unwrap_or_default(),
        "-untrusted",
        chain.to_str().unwrap_or_default(),
        cert.to_str().unwrap_or_default(),
    ]);
    let (ok, text) = sandbox.openssl(&args);
    assert!(ok && text.contains(": OK"), "openssl verify: {text}");
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .expect("time")
}

#[test]
fn full_lifecycle_enroll_deploy_reissue_renew_revoke_cancel_forget() {
    let sim = Sim::start(seed());
    let base = account(&sim, ADMIN, "");
    let web = certificate(
        "web",
        "www.example.com",
        "sans = [\"example.com\"]\ncomments = \"web front\"\nexternal_requesters = [\"pki@example.com\"]",
    );
    let sandbox = Sandbox::with_config(&format!("{base}{web}"));
    let plan = run(&sandbox, &["plan"], ADMIN_PASSWORD).expect(0);
    assert!(plan.stdout.contains("+ create web"), "{}", plan.stdout);
    // Enroll → issued → deployed.
    let applied = apply(&sandbox).expect(0);
    assert!(applied.stdout.contains("✓ create web"), "{}", applied.all());
    verify(&sandbox, &sim, "web");
    assert_eq!(sim.enrollments_for("www.example.com"), 1);
    run(&sandbox, &["plan", "--detailed-exitcode"], ADMIN_PASSWORD).expect(0);
    let id = sandbox.state_field("web", "order_id");
    let serial = sandbox.state_field("web", "serial");
    let log = sandbox.git("state", &["log", "-p"]);
    assert!(!log.contains(ADMIN_PASSWORD), "password in git");
    assert!(!applied.all().contains(ADMIN_PASSWORD) && !plan.all().contains(ADMIN_PASSWORD));

    // Reissue on the same record (`replace`): names changed.
    let reissued = certificate(
        "web",
        "www.example.com",
        "sans = [\"example.com\", \"shop.example.com\"]",
    );
    sandbox.write_config(&format!("{base}{reissued}"));
    let plan = run(&sandbox, &["plan"], ADMIN_PASSWORD).expect(0);
    assert!(plan.stdout.contains("~ reissue web"), "{}", plan.stdout);
    apply(&sandbox).expect(0);
    assert_eq!(sandbox.state_field("web", "order_id"), id, "same record");
    assert_ne!(sandbox.state_field("web", "serial"), serial);
    assert!(sandbox
        .sans_of("out/web/cert.pem")
        .contains("DNS:shop.example.com"));
    verify(&sandbox, &sim, "web");
    assert_eq!(sim.requests("POST /ssl/v1/replace/{sslId}"), 1);
    assert_eq!(sim.enrollments_for("www.example.com"), 1);

    // Renew (`renewById`) inside the window, the simulator's clock moved along.
    let days = 160;
    assert!(sim
        .sim()
        .advance_clock(std::time::Duration::from_secs(days * 86_400)));
    let moved = time::OffsetDateTime::now_utc() + time::Duration::days(days as i64);
    let later = rfc3339(moved);
    let env = [
        ("SECTIGO_PASSWORD", ADMIN_PASSWORD),
        ("CERTFORM_NOW", later.as_str()),
    ];
    let plan = sandbox.certform_env(&["plan"], &env).expect(0);
    assert!(plan.stdout.contains("↻ renew web"), "{}", plan.stdout);
    sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert_eq!(sim.requests("POST /ssl/v1/renewById/{sslId}"), 1);
    assert_ne!(sandbox.state_field("web", "order_id"), id, "a new record");
    verify_at(&sandbox, &sim, "web", Some(moved.unix_timestamp() + 3600));
    sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(0);

    // Revoke with a numeric reason code.
    sandbox.write_config(&format!(
        "{base}{reissued}revoke = true\nrevoke_reason = \"superseded\"\n"
    ));
    let plan = sandbox.certform_env(&["plan"], &env).expect(0);
    assert!(plan.stdout.contains("! revoke web"), "{}", plan.stdout);
    sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert_eq!(sim.in_status("Revoked"), 1);
    sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(0);

    // Cancel a pending one: a domain whose validation (by email) never completes, removed.
    let pending = certificate(
        "later",
        "later.example.net",
        "on_remove = \"cancel\"\ndcv = { method = \"email\" }",
    );
    sandbox.write_config(&format!(
        "{base}{reissued}revoke = true\nrevoke_reason = \"superseded\"\n{pending}"
    ));
    let waiting = sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert!(waiting.stdout.contains("create later"), "{}", waiting.all());
    sandbox.write_config(&format!(
        "{base}{reissued}revoke = true\nrevoke_reason = \"superseded\"\n"
    ));
    let plan = sandbox.certform_env(&["plan"], &env).expect(0);
    assert!(plan.stdout.contains("! cancel later"), "{}", plan.stdout);
    sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert_eq!(sim.sim().stats().declines, 1);
    assert!(!sandbox.path("state/certificates/later.toml").exists());

    // Forget: removed from config with the default `on_remove`; SCM keeps it.
    sandbox.write_config(&base);
    let plan = sandbox.certform_env(&["plan"], &env).expect(0);
    assert!(plan.stdout.contains("- forget web"), "{}", plan.stdout);
    sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert!(!sandbox.path("state/certificates/web.toml").exists());
    assert_eq!(sim.in_status("Revoked"), 1, "forget leaves SCM alone");
    sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(0);
}

#[test]
fn awaiting_approval_is_shown_then_issued_after_an_administrator_approves() {
    let sim = Sim::start(seed());
    // The DRAO administrator may request but not approve.
    let base = account(&sim, "certform-drao", "");
    let sandbox = Sandbox::with_config(&format!(
        "{base}{}",
        certificate("web", "appr.example.com", "")
    ));
    let first = run(&sandbox, &["apply", "--auto-approve"], "sim-drao-password").expect(0);
    assert!(first.all().contains("awaiting approval"), "{}", first.all());
    let id = sandbox
        .state_of("web")
        .get("intent")
        .and_then(|i| i.get("order_id"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .expect("intent order id");
    sim.control(&format!("certificates/{id}/approve"));
    run(&sandbox, &["apply", "--auto-approve"], "sim-drao-password").expect(0);
    verify(&sandbox, &sim, "web");
    assert_eq!(sim.enrollments_for("appr.example.com"), 1);
}

#[test]
fn read_only_account_plans_but_apply_refuses_to_write() {
    let sim = Sim::start(seed());
    let config = format!(
        "{}{}",
        account(&sim, ADMIN, "mode = \"read-only\""),
        certificate("web", "ro.example.com", "")
    );
    let sandbox = Sandbox::with_config(&config);
    run(&sandbox, &["plan"], ADMIN_PASSWORD).expect(0);
    let refused = run(&sandbox, &["apply", "--auto-approve"], ADMIN_PASSWORD).expect(3);
    assert!(refused.all().contains("read-only"), "{}", refused.all());
    assert_eq!(sim.enrollments_for("ro.example.com"), 0);
    let writes: u64 = sim
        .sim()
        .stats()
        .requests_by_route
        .iter()
        .filter(|(route, _)| !route.starts_with("GET") && !route.starts_with("HEAD"))
        .map(|(_, count)| count)
        .sum();
    assert_eq!(writes, 0, "no write reached SCM");
}

#[test]
fn ca_test_hints_for_wrong_password_customer_and_role() {
    let sim = Sim::start(seed());
    let sandbox = Sandbox::with_config(&account(&sim, ADMIN, ""));
    let ok = run(&sandbox, &["ca", "test", "scm"], ADMIN_PASSWORD).expect(0);
    assert!(ok.stdout.contains("certform-admin"), "{}", ok.stdout);

    let wrong = run(&sandbox, &["ca", "test", "scm"], "not-the-password-42").expect(1);
    assert!(wrong.stderr.contains("401"), "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("Unknown user (-16)"),
        "{}",
        wrong.stderr
    );
    assert!(wrong.stderr.contains("hint:"), "{}", wrong.stderr);
    assert!(wrong.stderr.contains("`password`"), "{}", wrong.stderr);
    assert!(!wrong.all().contains("not-the-password-42"));

    let other_customer = account(&sim, ADMIN, "").replace(
        &format!("customer_uri = \"{}\"", sim.sim().customer_uri()),
        "customer_uri = \"no-such-customer\"",
    );
    sandbox.write_config(&other_customer);
    let wrong = run(&sandbox, &["ca", "test", "scm"], ADMIN_PASSWORD).expect(1);
    assert!(wrong.stderr.contains("`customer_uri`"), "{}", wrong.stderr);

    // An administrator without an SSL role sees no profile: the role is named.
    sandbox.write_config(&account(&sim, "certform-smime", ""));
    let role = run(&sandbox, &["ca", "test", "scm"], "sim-smime-password").expect(1);
    assert!(role.stderr.contains("RAO"), "{}", role.stderr);
    assert!(role.stderr.contains("hint:"), "{}", role.stderr);
}

#[test]
fn ca_info_lists_the_account_and_caches_it_until_refresh() {
    let sim = Sim::start(seed());
    let sandbox = Sandbox::with_config(&account(&sim, ADMIN, ""));
    let info = run(&sandbox, &["ca", "info", "scm"], ADMIN_PASSWORD).expect(0);
    for wanted in [
        "OV Multi-Domain",
        "199/365",
        "Example Inc",
        "IT",
        "example.com",
        "example.net",
        "read now",
    ] {
        assert!(info.stdout.contains(wanted), "{wanted}: {}", info.stdout);
    }
    let types = sim.requests("GET /ssl/v1/types");
    let cached = run(&sandbox, &["ca", "info", "scm"], ADMIN_PASSWORD).expect(0);
    assert!(cached.stdout.contains("cached"), "{}", cached.stdout);
    assert_eq!(
        sim.requests("GET /ssl/v1/types"),
        types,
        "served from the cache"
    );
    let cache = sandbox.path("keys/sectigo/scm/account.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&cache).expect("cache file").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    run(
        &sandbox,
        &["ca", "info", "scm", "--refresh"],
        ADMIN_PASSWORD,
    )
    .expect(0);
    assert_eq!(sim.requests("GET /ssl/v1/types"), types + 1);
    // Older than a week: read again.
    let later = rfc3339(time::OffsetDateTime::now_utc() + time::Duration::days(8));
    sandbox
        .certform_env(
            &["ca", "info", "scm"],
            &[
                ("SECTIGO_PASSWORD", ADMIN_PASSWORD),
                ("CERTFORM_NOW", later.as_str()),
            ],
        )
        .expect(0);
    assert_eq!(sim.requests("GET /ssl/v1/types"), types + 2);
    let json = run(
        &sandbox,
        &["ca", "info", "scm", "--format", "json"],
        ADMIN_PASSWORD,
    )
    .expect(0);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert!(value["profiles"].as_array().is_some_and(|p| p.len() >= 3));
}

#[test]
fn config_is_checked_at_validate_and_against_the_account_at_plan() {
    let sim = Sim::start(seed());
    let base = account(&sim, ADMIN, "");
    let long = "x".repeat(1000);
    let sandbox = Sandbox::with_config(&format!(
        "{base}{}",
        certificate(
            "a",
            "a.example.com",
            &format!("comments = \"{long}\"\nexternal_requesters = [\"not-an-email\"]")
        )
    ));
    let invalid = run(&sandbox, &["validate"], ADMIN_PASSWORD).expect(1);
    assert!(
        invalid
            .stderr
            .contains("`comments` is 1000 characters long"),
        "{}",
        invalid.stderr
    );
    assert!(
        invalid
            .stderr
            .contains("`not-an-email` is not an email address"),
        "{}",
        invalid.stderr
    );
    assert_eq!(
        sim.sim().stats().requests_total,
        0,
        "no network at validate"
    );

    sandbox.write_config(&format!(
        "{base}{}{}{}{}",
        certificate("t", "t.example.com", "term = 730"),
        certificate(
            "k",
            "k.example.com",
            "key = { algorithm = \"ecdsa\", size = 256 }"
        )
        .replace("OV Multi-Domain", "OV SSL"),
        certificate("p", "p.example.com", "").replace("OV Multi-Domain", "No Such Profile"),
        certificate("c", "c.example.com", "custom_fields = { Nope = \"x\" }"),
    ));
    let plan = run(&sandbox, &["plan"], ADMIN_PASSWORD).expect(1);
    for wanted in [
        "does not offer a term of 730 days",
        "199, 365",
        "has no profile `No Such Profile`",
        "profile `OV SSL` does not allow a ecdsa-p256 key",
        "has no custom field `Nope`; its custom fields: `Cost Center`, `Ticket`",
    ] {
        assert!(plan.stderr.contains(wanted), "{wanted}: {}", plan.stderr);
    }
    assert_eq!(sim.sim().stats().enrollments, 0, "nothing enrolled");
    assert!(!sandbox.path("state/certificates/t.toml").exists());

    let wrong_ca = "[certificate.l]\nca = \"local\"\ncommon_name = \"l.example.com\"\nprofile = \"OV SSL\"\n\n[ca.local]\nkind = \"local\"\n";
    sandbox.write_config(&format!("{base}{wrong_ca}"));
    let invalid = run(&sandbox, &["validate"], ADMIN_PASSWORD).expect(1);
    assert!(
        invalid
            .stderr
            .contains("`profile` applies only to certificates of a `kind = \"sectigo\"` CA"),
        "{}",
        invalid.stderr
    );
}

#[test]
fn import_adopts_one_live_record_per_name() {
    let mut seed = seed();
    let record = |value: serde_json::Value| -> CertificateSeed {
        serde_json::from_value(value).expect("certificate seed")
    };
    seed.certificates = vec![
        record(serde_json::json!({"common_name": "old.example.com",
            "subject_alternative_names": ["old.example.com", "www.old.example.com"], "age_days": 30})),
        record(serde_json::json!({"common_name": "old.example.com", "age_days": 10})),
        record(serde_json::json!({"common_name": "gone.example.com", "status": "Revoked"})),
    ];
    let sim = Sim::start(seed);
    let sandbox = Sandbox::with_config(&account(&sim, ADMIN, ""));
    let imported = run(
        &sandbox,
        &[
            "import",
            "scm",
            "--exclude-status",
            "expired,revoked",
            "--write-config",
            "imported.toml",
        ],
        ADMIN_PASSWORD,
    )
    .expect(0);
    assert!(
        imported.stdout.contains("imported old-example-com"),
        "{}",
        imported.all()
    );
    assert!(
        imported.stdout.contains("skipped 1 order: status revoked"),
        "{}",
        imported.all()
    );
    let stub = sandbox.read("imported.toml");
    assert!(stub.contains("[certificate.old-example-com]"), "{stub}");
    assert_eq!(stub.matches("[certificate.").count(), 1, "{stub}");
    assert_eq!(sandbox.state_field("old-example-com", "status"), "issued");
    let plan = run(&sandbox, &["plan", "--detailed-exitcode"], ADMIN_PASSWORD);
    assert_eq!(plan.code, 0, "{}", plan.all());
}

#[test]
fn killed_apply_at_every_fail_point_enrolls_exactly_once() {
    let sim = Sim::start(seed());
    for (index, point) in certform::apply::FailPoints::ALL.iter().enumerate() {
        let name = format!("c{index}.example.com");
        let config = format!(
            "{}{}",
            account(&sim, ADMIN, ""),
            certificate("web", &name, "")
        );
        let sandbox = Sandbox::with_config(&config);
        let killed = sandbox.certform_env(
            &["apply", "--auto-approve"],
            &[
                ("SECTIGO_PASSWORD", ADMIN_PASSWORD),
                ("CERTFORM_FAILPOINT", point),
            ],
        );
        assert_eq!(killed.code, 99, "{point}: {}", killed.all());
        let again = apply(&sandbox);
        assert_eq!(again.code, 0, "{point}: {}", again.all());
        run(&sandbox, &["plan", "--detailed-exitcode"], ADMIN_PASSWORD).expect(0);
        verify(&sandbox, &sim, "web");
        assert_eq!(
            sim.enrollments_for(&name),
            1,
            "{point}: exactly one enrollment"
        );
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
    let mut config = account(&sim, ADMIN, "");
    for index in 0..5 {
        config.push_str(&certificate(
            &format!("f{index}"),
            &format!("f{index}.example.com"),
            "",
        ));
    }
    let sandbox = Sandbox::with_config(&config);
    let mut converged = false;
    for _ in 0..20 {
        let run = apply(&sandbox);
        assert!(
            !run.stderr.contains("locked by") && !run.stderr.contains("took over"),
            "{}",
            run.all()
        );
        let plan = sandbox.certform_env(
            &["plan", "--detailed-exitcode"],
            &[("SECTIGO_PASSWORD", ADMIN_PASSWORD)],
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
    assert_eq!(stats.enrollments, 5);
}

#[test]
fn reissue_and_renewal_killed_around_the_request_send_one_request_each() {
    let sim = Sim::start(seed());
    let mut offset_days: i64 = 0;
    // The fail points around the request to SCM; the later ones (fetch, deploy, commit) are the
    // same for every kind of change and are covered by the enrollment test above.
    let points = FailPoints::ALL.iter().filter(|point| {
        point.starts_with("after-intent")
            || point.starts_with("after-key")
            || point.starts_with("after-order")
    });
    for (index, point) in points.enumerate() {
        let name = format!("r{index}.example.com");
        let base = account(&sim, ADMIN, "");
        let sandbox = Sandbox::with_config(&format!("{base}{}", certificate("web", &name, "")));
        let at = |days: i64| rfc3339(time::OffsetDateTime::now_utc() + time::Duration::days(days));
        let now = at(offset_days);
        let env = [
            ("SECTIGO_PASSWORD", ADMIN_PASSWORD),
            ("CERTFORM_NOW", now.as_str()),
        ];
        sandbox
            .certform_env(&["apply", "--auto-approve"], &env)
            .expect(0);

        // Reissue (names changed) killed at the fail point, then run again.
        let replaced = sim.requests("POST /ssl/v1/replace/{sslId}");
        sandbox.write_config(&format!(
            "{base}{}",
            certificate("web", &name, &format!("sans = [\"www.{name}\"]"))
        ));
        let killed = sandbox.certform_env(
            &["apply", "--auto-approve"],
            &[
                ("SECTIGO_PASSWORD", ADMIN_PASSWORD),
                ("CERTFORM_NOW", now.as_str()),
                ("CERTFORM_FAILPOINT", point),
            ],
        );
        assert_eq!(killed.code, 99, "{point}: {}", killed.all());
        let again = sandbox.certform_env(&["apply", "--auto-approve"], &env);
        assert_eq!(again.code, 0, "{point}: {}", again.all());
        sandbox
            .certform_env(&["plan", "--detailed-exitcode"], &env)
            .expect(0);
        assert_eq!(
            sim.requests("POST /ssl/v1/replace/{sslId}"),
            replaced + 1,
            "{point}: one replace"
        );

        // Renewal inside the window, killed at the fail point, then run again.
        offset_days += 160;
        assert!(sim
            .sim()
            .advance_clock(std::time::Duration::from_secs(160 * 86_400)));
        let later = at(offset_days);
        let env = [
            ("SECTIGO_PASSWORD", ADMIN_PASSWORD),
            ("CERTFORM_NOW", later.as_str()),
        ];
        let renewed = sim.requests("POST /ssl/v1/renewById/{sslId}");
        let killed = sandbox.certform_env(
            &["apply", "--auto-approve"],
            &[
                ("SECTIGO_PASSWORD", ADMIN_PASSWORD),
                ("CERTFORM_NOW", later.as_str()),
                ("CERTFORM_FAILPOINT", point),
            ],
        );
        assert_eq!(killed.code, 99, "{point}: {}", killed.all());
        let again = sandbox.certform_env(&["apply", "--auto-approve"], &env);
        assert_eq!(again.code, 0, "{point}: {}", again.all());
        sandbox
            .certform_env(&["plan", "--detailed-exitcode"], &env)
            .expect(0);
        assert_eq!(
            sim.requests("POST /ssl/v1/renewById/{sslId}"),
            renewed + 1,
            "{point}: one renewal"
        );
        assert_eq!(
            sim.enrollments_for(&name),
            2,
            "{point}: records of one enrollment and one renewal"
        );
    }
}
