//! DigiCert plans versus certificates (issue 11, finding 3 and 8) through the CLI against the
//! simulator: a renewal inside the order's plan is a reissue on the order (no new order) until
//! the plan ends; `renew_before` is checked against the lifetime the CA issues on the run's
//! date; a CA that issues less than asked never makes every apply order again; a read-only
//! account's refusal leaves state and its history alone; the simulator's clock follows
//! `CERTFORM_NOW`; a certificate already expired at the run's time is deployed with a warning.

use std::io::BufRead;

use certform::sim::digicert::{DomainSeed, Policy, Seed};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::digicert_sim::Sim;
use crate::sandbox::Sandbox;

const ADMIN: &str = "sim-admin-key";
const REISSUE_ROUTE: &str = "POST /order/certificate/{id}/reissue";

fn seed() -> Seed {
    let domain: DomainSeed =
        serde_json::from_value(serde_json::json!({ "name": "example.test" })).expect("domain");
    Seed {
        random_seed: Some(31),
        domains: vec![domain],
        ..Seed::default()
    }
}

fn config(url: &str, account_extra: &str, certificate_extra: &str) -> String {
    format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{url}\"\n{account_extra}\n\n[certificate.web]\nca = \"dc\"\ncommon_name = \"www.example.test\"\nproduct = \"ssl_basic\"\norganization = 112233\ndeploy = [{{ kind = \"files\", dir = \"out/web\" }}]\n{certificate_extra}\n"
    )
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).expect("RFC 3339")
}

/// Run certform with the admin key and the clock pinned at `at`.
fn run_at(sandbox: &Sandbox, args: &[&str], at: &str) -> crate::sandbox::Run {
    sandbox.certform_env(args, &[("DIGICERT_API_KEY", ADMIN), ("CERTFORM_NOW", at)])
}

/// Move the simulator and certform to `days` after `start`, together.
fn at_day(sim: &Sim, start: OffsetDateTime, days: i64) -> String {
    let at = start + Duration::days(days);
    assert!(sim.sim().set_now(at), "the simulator's clock moves to {at}");
    rfc3339(at)
}

fn commits(sandbox: &Sandbox) -> usize {
    if !sandbox.path("state/.git").exists() {
        return 0;
    }
    sandbox
        .git("state", &["rev-list", "--all", "--count"])
        .trim()
        .parse()
        .expect("a count")
}

#[test]
fn renewals_inside_a_one_year_plan_are_reissues_and_a_new_order_comes_when_little_is_left() {
    let sim = Sim::start(seed());
    let sandbox = Sandbox::with_config(&config(
        &sim.sim().base_url(),
        "",
        "validity = { years = 1 }",
    ));
    let start = OffsetDateTime::now_utc();
    let now = at_day(&sim, start, 0);
    run_at(&sandbox, &["apply", "--auto-approve"], &now).expect(0);
    assert_eq!(sim.orders_for("www.example.test"), 1);
    let order = sandbox.state_field("web", "order_id");
    let first_serial = sandbox.state_field("web", "serial");
    // The order's plan: one year from the order (the simulator ends it the day before the
    // anniversary, at the end of that day).
    let plan_until = sandbox.state_field("web", "plan_until");
    let plan_day = plan_until.get(..10).unwrap_or_default().to_string();
    let anniversary = start + Duration::days(365);
    assert!(
        [anniversary.date(), anniversary.date() - Duration::days(1)]
            .iter()
            .any(|day| plan_day == day.to_string()),
        "state records the order's plan end: {plan_until:?}"
    );
    // The certificate is capped at 199 days although 1 year was asked.
    let not_after = sandbox.state_field("web", "not_after");
    let capped = (start + Duration::days(198)).date().to_string();
    assert!(not_after.starts_with(&capped), "{not_after} vs {capped}");

    // ~160 days on: due (two thirds of 199 days, spread over the window's first third), and
    // the plan still runs: a reissue on the same order.
    let now = at_day(&sim, start, 160);
    let plan = run_at(&sandbox, &["plan", "--detailed-exitcode"], &now).expect(2);
    let shown = format!("reissue on order {order} (plan valid until {plan_day})");
    assert!(plan.stdout.contains(&shown), "{}", plan.stdout);
    assert!(plan.stdout.contains("no new order"), "{}", plan.stdout);
    let json = run_at(&sandbox, &["plan", "--format", "json"], &now).expect(0);
    let document: serde_json::Value = serde_json::from_str(&json.stdout).expect("plan JSON");
    let action = &document["changes"][0]["action"];
    assert_eq!(action["action"], "renew", "{action}");
    assert_eq!(action["on_order"]["order_id"], order.as_str(), "{action}");
    let applied = run_at(&sandbox, &["apply", "--auto-approve"], &now).expect(0);
    assert!(applied.stdout.contains("renew web"), "{}", applied.stdout);
    assert_eq!(sim.orders_for("www.example.test"), 1, "no new order");
    assert_eq!(sim.requests(REISSUE_ROUTE), 1);
    assert_eq!(sandbox.state_field("web", "order_id"), order);
    assert_ne!(sandbox.state_field("web", "serial"), first_serial);
    run_at(&sandbox, &["plan", "--detailed-exitcode"], &now).expect(0);

    // ~320 days on: due again, but less than half a certificate's lifetime of the plan is
    // left: a new (paid) order, a renewal of the old one.
    let now = at_day(&sim, start, 320);
    let plan = run_at(&sandbox, &["plan", "--detailed-exitcode"], &now).expect(2);
    assert!(plan.stdout.contains("renew web"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("reissue on order"), "{}", plan.stdout);
    run_at(&sandbox, &["apply", "--auto-approve"], &now).expect(0);
    assert_eq!(sim.orders_for("www.example.test"), 2);
    assert_eq!(sim.requests(REISSUE_ROUTE), 1);
    let renewal = sandbox.state_field("web", "order_id");
    assert_ne!(renewal, order);
    // The new order has its own plan, recorded in state.
    assert!(sandbox.state_field("web", "plan_until") > plan_until);
    run_at(&sandbox, &["plan", "--detailed-exitcode"], &now).expect(0);
}

#[test]
fn renew_before_not_shorter_than_the_issued_lifetime_is_refused_with_its_line() {
    let sim = Sim::start(seed());
    let sandbox = Sandbox::with_config(&config(
        &sim.sim().base_url(),
        "",
        "validity = { years = 1 }\nrenew_before = \"250d\"",
    ));
    let now = rfc3339(OffsetDateTime::now_utc());
    for args in [
        &["validate"][..],
        &["plan"][..],
        &["apply", "--auto-approve"][..],
    ] {
        let refused = run_at(&sandbox, args, &now).expect(1);
        assert!(
            refused.stderr.contains("certform.toml:11:1: `certificate.web.renew_before`: `renew_before` (250d) is not shorter than the 199-day certificates `dc` (digicert) issues from 2026-02-24"),
            "{args:?}: {}",
            refused.stderr
        );
        assert!(refused.stderr.contains("e.g. `66d`"), "{}", refused.stderr);
    }
    assert_eq!(
        sim.sim().stats().requests_total,
        0,
        "no request before the error"
    );
    assert!(!sandbox.path("state/certificates/web.toml").exists());
}

#[test]
fn a_ca_issuing_less_than_asked_is_renewed_once_not_on_every_apply() {
    // The CA caps certificates at 60 days, less than certform's table says (199 days), so
    // validation cannot see it: `renew_before = "100d"` is longer than what is issued.
    let mut seed = seed();
    seed.policy = Policy {
        max_cert_validity_days: 60,
        ..Policy::default()
    };
    let sim = Sim::start(seed);
    let sandbox = Sandbox::with_config(&config(
        &sim.sim().base_url(),
        "",
        "validity = { days = 150 }\nrenew_before = \"100d\"",
    ));
    let now = rfc3339(OffsetDateTime::now_utc());
    for _ in 0..3 {
        run_at(&sandbox, &["apply", "--auto-approve"], &now).expect(0);
    }
    assert_eq!(sim.orders_for("www.example.test"), 1, "3 applies, 1 order");
    assert_eq!(sim.requests(REISSUE_ROUTE), 0);
    let plan = run_at(&sandbox, &["plan"], &now).expect(0);
    assert!(
        plan.all().contains("renewing at two thirds of it"),
        "{}",
        plan.all()
    );
}

#[test]
fn a_read_only_apply_that_refuses_a_create_leaves_state_and_history_alone() {
    let sim = Sim::start(seed());
    let sandbox = Sandbox::with_config(&config(
        &sim.sim().base_url(),
        "mode = \"read-only\"",
        "validity = { days = 90 }",
    ));
    let now = rfc3339(OffsetDateTime::now_utc());
    // A first run creates the state repository; count its commits from there.
    run_at(&sandbox, &["plan"], &now).expect(0);
    let before = commits(&sandbox);
    let refused = sandbox.certform_env(
        &["apply", "--auto-approve"],
        &[
            ("DIGICERT_API_KEY", "sim-view-only-key"),
            ("CERTFORM_NOW", &now),
        ],
    );
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(
        refused.all().contains(
            "`dc` is read-only (`mode = \"read-only\"`): no order was sent and state is unchanged"
        ),
        "{}",
        refused.all()
    );
    assert!(
        !sandbox.path("state/certificates/web.toml").exists(),
        "no intent recorded"
    );
    assert_eq!(commits(&sandbox), before, "no commit");
    assert_eq!(sim.orders_for("www.example.test"), 0);
    // The next plan still plans a create, not an interrupted order to adopt.
    let plan = run_at(&sandbox, &["plan"], &now).expect(0);
    assert!(plan.stdout.contains("+ create web"), "{}", plan.stdout);
}

#[test]
fn a_renewed_certificate_already_expired_at_the_pinned_time_is_deployed_with_a_warning() {
    let sim = Sim::start(seed());
    let sandbox = Sandbox::with_config(&config(
        &sim.sim().base_url(),
        "",
        "validity = { days = 30 }",
    ));
    // certform runs 100 days ahead of the simulator (its clock left at real time): the
    // certificate the CA issues now, for 30 days, is already expired at the run's time.
    let ahead = rfc3339(OffsetDateTime::now_utc() + Duration::days(100));
    let applied = run_at(&sandbox, &["apply", "--auto-approve"], &ahead).expect(0);
    assert!(
        applied.all().contains("warning: it expired on"),
        "{}",
        applied.all()
    );
    assert!(
        applied
            .all()
            .contains("deployed anyway, as nothing newer exists"),
        "{}",
        applied.all()
    );
    assert!(sandbox.path("out/web/cert.pem").exists(), "deployed");
}

#[test]
fn the_simulator_starts_at_certform_now_or_at_now() {
    let pinned = "2027-06-01T08:00:00Z";
    for (flag, env) in [(Some(pinned), None), (None, Some(pinned))] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_certform"));
        command.args(["sim", "digicert", "--listen", "127.0.0.1:0"]);
        if let Some(at) = flag {
            command.args(["--now", at]);
        }
        command.env_remove("CERTFORM_NOW");
        if let Some(at) = env {
            command.env("CERTFORM_NOW", at);
        }
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let mut child = command.spawn().expect("start the simulator");
        let stdout = child.stdout.take().expect("stdout");
        let mut clock = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("a line");
            if line.trim_start().starts_with("clock:") {
                clock = line;
                break;
            }
        }
        child.kill().expect("stop the simulator");
        let _ = child.wait();
        assert!(
            clock.contains("2027-06-01T08:00:0"),
            "{flag:?} {env:?}: {clock:?}"
        );
    }
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_certform"))
        .args([
            "sim",
            "digicert",
            "--listen",
            "127.0.0.1:0",
            "--now",
            "tomorrow",
        ])
        .output()
        .expect("run");
    assert_ne!(refused.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("expected an RFC 3339 time"));
}
