//! Scheduled renewal through the CLI and the library: quiet no-op runs, run budgets with
//! their turns, backoff after a failed renewal, at-risk certificates that make `apply` exit 3,
//! and the simulated season (`certform::sim::year`) at CI size.

use time::format_description::well_known::Rfc3339;
use time::Duration;

use crate::sandbox::{snapshot_tree, Sandbox};

/// The clock at `days` from a fixed start, as `CERTFORM_NOW` takes it.
fn at(days: i64) -> String {
    (time::macros::datetime!(2030-01-01 02:00 UTC) + Duration::days(days))
        .format(&Rfc3339)
        .expect("format time")
}

/// Three certificates on the local CA, 30-day lifetimes renewing 9 days before expiry
/// (window opens on day 21, spread to day 24, overdue from day 24, at risk from day 25.5).
fn fleet(extra_defaults: &str, local: &str) -> String {
    let mut text = format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[defaults]\nvalidity = {{ days = 30 }}\nrenew_before = \"9d\"\n{extra_defaults}\n[ca.local]\nkind = \"local\"\n{local}\n"
    );
    for name in ["a", "b", "c"] {
        text.push_str(&format!(
            "\n[certificate.{name}]\ncommon_name = \"{name}.example.test\"\n"
        ));
    }
    text
}

fn run_at(sandbox: &Sandbox, days: i64, args: &[&str]) -> crate::sandbox::Run {
    sandbox.certform_env(args, &[("CERTFORM_NOW", at(days).as_str())])
}

#[test]
fn a_run_with_nothing_due_makes_no_commit_and_writes_no_object() {
    let sandbox = Sandbox::with_config(&fleet("", ""));
    run_at(&sandbox, 0, &["apply", "--auto-approve"]).expect(0);
    let head = sandbox.git("state", &["rev-parse", "HEAD"]);
    let before = snapshot_tree(&sandbox.path("state/.git/objects"));
    let refs = snapshot_tree(&sandbox.path("state/.git/refs"));
    for day in [1, 5, 20] {
        let run = run_at(&sandbox, day, &["apply", "--auto-approve"]).expect(0);
        assert!(run.stdout.contains("No changes."), "{}", run.stdout);
        assert!(run.stdout.contains("Next renewals: "), "{}", run.stdout);
    }
    assert_eq!(sandbox.git("state", &["rev-parse", "HEAD"]), head);
    assert!(
        snapshot_tree(&sandbox.path("state/.git/objects")) == before,
        "new git objects"
    );
    assert!(snapshot_tree(&sandbox.path("state/.git/refs")) == refs);
    // The lock was released: nothing of the run is left in the repository.
    assert!(!sandbox.path("state/.git/certform.lock").exists());
}

#[test]
fn a_budget_renews_the_closest_to_expiry_first_and_lists_the_rest_with_their_turn() {
    let sandbox = Sandbox::with_config(&fleet("", ""));
    run_at(&sandbox, 0, &["apply", "--auto-approve"]).expect(0);
    sandbox.write_config(&fleet("max_renewals_per_run = 2\n", ""));
    // Day 24.5: all three are due (each point lies in days 21 to 24).
    let plan = run_at(&sandbox, 24, &["plan", "--format", "json"]).expect(0);
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("json");
    let renewing = json["changes"].as_array().expect("changes").len();
    let waiting: Vec<&str> = json["blocked"]
        .as_array()
        .expect("blocked")
        .iter()
        .filter_map(|b| b["reason"].as_str())
        .collect();
    assert_eq!(renewing, 2, "{}", plan.stdout);
    assert_eq!(
        waiting,
        ["waiting for budget (turn 2 of 2): `max_renewals_per_run = 2` per run, and more urgent orders go first"]
    );
    let apply = run_at(&sandbox, 24, &["apply", "--auto-approve"]).expect(0);
    assert!(
        apply.stdout.contains("waiting for budget (turn 2 of 2)"),
        "{}",
        apply.stdout
    );
    assert!(
        apply.stdout.contains("Apply complete: 2 changes applied."),
        "{}",
        apply.stdout
    );
    // The next day's run renews the one that waited.
    let next = run_at(&sandbox, 25, &["apply", "--auto-approve"]).expect(0);
    assert!(
        next.stdout.contains("Apply complete: 1 change applied."),
        "{}",
        next.stdout
    );
    run_at(&sandbox, 25, &["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn a_ca_budget_holds_creates_too() {
    let sandbox = Sandbox::with_config(&fleet("", "max_orders_per_run = 1\n"));
    let plan = run_at(&sandbox, 0, &["plan"]).expect(0);
    assert!(
        plan.stdout.contains(
            "waiting for budget (turn 3 of 3): `local` takes `max_orders_per_run = 1` per run"
        ),
        "{}",
        plan.stdout
    );
    run_at(&sandbox, 0, &["apply", "--auto-approve"]).expect(0);
    let orders = sandbox.local_orders().len();
    assert_eq!(orders, 1);
    let bad = Sandbox::with_config(&fleet("", "max_orders_per_run = 0\n"));
    let run = run_at(&bad, 0, &["validate"]).expect(1);
    assert!(
        run.stderr.contains(
            "`ca.local.max_orders_per_run`: `max_orders_per_run` must be 1 or more, not 0"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_failed_renewal_backs_off_and_a_certificate_at_risk_is_never_silent() {
    let sandbox = Sandbox::with_config(&fleet("", ""));
    run_at(&sandbox, 0, &["apply", "--auto-approve"]).expect(0);
    // The CA now refuses every order (transiently).
    sandbox.write_config(&fleet("", "simulate_failures = 1.0\n"));
    let failed = run_at(&sandbox, 24, &["apply", "--auto-approve"]).expect(3);
    assert!(
        failed.stderr.contains("simulated transient failure"),
        "{}",
        failed.stderr
    );
    let state = sandbox.read("state/certificates/a.toml");
    assert!(state.contains("[backoff]\nattempts = 1\nlast_error = \"transient\"\nnext_try = \"2030-01-25T03:00:00Z\""), "{state}");

    // Within the hour nothing is ordered, and the plan says when the next try is.
    let plan = sandbox
        .certform_env(&["plan"], &[("CERTFORM_NOW", "2030-01-25T02:30:00Z")])
        .expect(0);
    assert!(
        plan.stdout.contains("backing off after 1 failed attempt in a row (last error: transient); next try at 2030-01-25T03:00:00Z"),
        "{}",
        plan.stdout
    );
    let status = run_at(&sandbox, 24, &["status"]).expect(0);
    assert!(
        status.stdout.contains("1 failed renewal attempt in a row"),
        "{}",
        status.stdout
    );

    // Day 26 (4 days left of a 9-day margin): at risk. The plan and status say so loudly,
    // and an apply that cannot renew exits 3 even when all else went well.
    let plan = run_at(&sandbox, 26, &["plan"]).expect(0);
    assert!(
        plan.stdout.contains("!! AT RISK OF EXPIRING: a, b, c"),
        "{}",
        plan.stdout
    );
    let status = run_at(&sandbox, 26, &["status", "--status", "at-risk"]).expect(0);
    assert!(
        status.stdout.contains("AT RISK: expires 2030-01-31"),
        "{}",
        status.stdout
    );
    let failed = run_at(&sandbox, 26, &["apply", "--auto-approve"]).expect(3);
    assert!(
        failed.stderr.contains(
            "certificates are at risk of expiring and not renewed by this run: `a`, `b`, `c`"
        ),
        "{}",
        failed.stderr
    );
    // A budget that holds an at-risk certificate back is not silent either.
    sandbox.write_config(&fleet("max_renewals_per_run = 1\n", ""));
    let partial = run_at(&sandbox, 26, &["apply", "--auto-approve"]).expect(3);
    assert!(
        partial.stdout.contains("Apply complete: 1 change applied."),
        "{}",
        partial.stdout
    );
    assert!(
        partial.stderr.contains("not renewed by this run"),
        "{}",
        partial.stderr
    );
    // Once the CA answers again, the renewal clears the backoff.
    sandbox.write_config(&fleet("", ""));
    run_at(&sandbox, 26, &["apply", "--auto-approve"]).expect(0);
    assert!(!sandbox
        .read("state/certificates/a.toml")
        .contains("backoff"));
    run_at(&sandbox, 26, &["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn a_backoff_in_state_is_validated() {
    let sandbox = Sandbox::with_config(&fleet("", ""));
    run_at(&sandbox, 0, &["apply", "--auto-approve"]).expect(0);
    let path = sandbox.path("state/certificates/a.toml");
    let text = std::fs::read_to_string(&path).expect("state");
    std::fs::write(
        &path,
        format!("{text}\n[backoff]\nattempts = 0\nnext_try = \"2030-01-02T00:00:00Z\"\n"),
    )
    .expect("write");
    let run = run_at(&sandbox, 1, &["plan"]).expect(1);
    assert!(
        run.stderr.contains("certificates/a.toml:"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nonzero"), "{}", run.stderr);
    std::fs::write(
        &path,
        format!("{text}\n[backoff]\nattempts = 2\nlast_error = \"gremlins\"\nnext_try = \"2030-01-02T00:00:00Z\"\n"),
    )
    .expect("write");
    let run = run_at(&sandbox, 1, &["plan"]).expect(1);
    assert!(
        run.stderr.contains("unknown variant `gremlins`"),
        "{}",
        run.stderr
    );
}

/// 300 certificates on 47-day lifetimes for 110 days, one apply a day, 2 % of orders failing:
/// no storm, nothing expires, no certificate renews twice in a lifetime without cause, the
/// CA budget holds, and the state repository stays packed.
#[test]
fn a_simulated_season_renews_evenly_and_nothing_expires() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = certform::sim::year::YearOptions::new(dir.path().to_path_buf(), 300, 110);
    let budget = options.max_orders_per_run as usize;
    let report = certform::sim::year::run(options).expect("the season runs");
    let figures = report.describe();
    let (mean, max) = report.renewals_per_day();
    assert!(mean > 5.0, "{figures}");
    assert!(max as f64 <= 2.0 * mean, "storm: {figures}");
    assert!(
        report.expired.is_empty(),
        "expired: {:?}\n{figures}",
        report.expired
    );
    assert!(report.max_renewals_per_lifetime <= 2, "{figures}");
    assert!(
        report.days.iter().all(|d| d.ca_writes <= budget),
        "{figures}"
    );
    assert!(
        report.days.iter().any(|d| d.failures > 0),
        "no failure was injected: {figures}"
    );
    assert!(report.days.iter().all(|d| d.at_risk == 0), "{figures}");
    // Days with nothing to do made no commit.
    let odd: Vec<&certform::sim::year::Day> = report
        .days
        .iter()
        .filter(|d| d.committed != (d.renewals + d.creates + d.failures > 0))
        .collect();
    assert!(odd.is_empty(), "{odd:?}\n{figures}");
    assert!(report.loose_objects < 2048, "{figures}");
    assert!(report.packs >= 1, "{figures}");
    eprintln!("{figures}");
}
