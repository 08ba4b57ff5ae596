//! `certform import` from a DigiCert account against the simulator: one live order per
//! certificate (issue 11, finding 1), downloads from the list data within the account's rate
//! limit with no 429, a 429 caused by someone else waited out, and a re-run that fetches
//! nothing it already holds (finding 2).

use certform::sim::digicert::{DomainSeed, Limits, OrderSeed, RateWindow, Seed};

use crate::digicert_sim::Sim;
use crate::sandbox::Sandbox;

const ADMIN: &str = "sim-admin-key";
const DOWNLOAD: &str = "GET /certificate/{id}/download/format/{format}";

fn order(value: serde_json::Value) -> OrderSeed {
    serde_json::from_value(value).expect("order seed")
}

fn seed(orders: Vec<OrderSeed>) -> Seed {
    let domain: DomainSeed =
        serde_json::from_value(serde_json::json!({ "name": "example.test" })).expect("domain");
    Seed {
        random_seed: Some(23),
        domains: vec![domain],
        orders,
        ..Seed::default()
    }
}

fn config(url: &str, extra: &str) -> String {
    format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{url}\"\n{extra}\n"
    )
}

fn run(sandbox: &Sandbox, args: &[&str]) -> crate::sandbox::Run {
    sandbox.certform_env(args, &[("DIGICERT_API_KEY", ADMIN)])
}

fn route(sim: &Sim, route: &str) -> u64 {
    sim.sim()
        .stats()
        .requests_by_route
        .get(route)
        .copied()
        .unwrap_or(0)
}

/// An order and its renewal for the same name (the first order 1000001 is `is_renewed`),
/// plus two unlinked orders for one other name: import adopts one order for each name, says
/// which it skipped and why, and the next plan places no order.
#[test]
fn import_adopts_one_live_order_per_certificate_and_the_next_plan_orders_nothing() {
    let sim = Sim::start(seed(vec![
        order(serde_json::json!({
            "common_name": "www.example.test", "validity_days": 199, "age_days": 150
        })),
        order(serde_json::json!({
            "common_name": "www.example.test", "validity_days": 199, "age_days": 10,
            "renewal_of_order_id": 1_000_001
        })),
        order(serde_json::json!({
            "common_name": "api.example.test", "validity_days": 199, "age_days": 100
        })),
        order(serde_json::json!({
            "common_name": "api.example.test", "validity_days": 199, "age_days": 20
        })),
    ]));
    let sandbox = Sandbox::with_config(&config(&sim.sim().base_url(), ""));
    let imported = run(
        &sandbox,
        &["import", "dc", "--write-config", "imported.toml"],
    )
    .expect(0);
    let out = &imported.stdout;
    assert!(
        out.contains("imported www-example-test (order 1000002,"),
        "{}",
        imported.all()
    );
    assert!(
        out.contains("imported api-example-test (order 1000004,"),
        "{}",
        imported.all()
    );
    assert_eq!(out.matches("imported ").count(), 2, "{out}");
    assert!(
        out.contains(
            "not imported: order 1000001 (www.example.test): renewed by a later order (`is_renewed`)"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "not imported: order 1000003 (api.example.test): same names as order 1000004, which expires later"
        ),
        "{out}"
    );
    assert!(
        out.contains("skipped 1 order: replaced by a renewal"),
        "{out}"
    );
    assert!(
        out.contains("skipped 1 order: same names as a later order"),
        "{out}"
    );
    let stubs = sandbox.read("imported.toml");
    assert_eq!(stubs.matches("[certificate.").count(), 2, "{stubs}");
    // From the list data: one download per adopted order, no order detail read.
    assert_eq!(route(&sim, DOWNLOAD), 2);
    assert_eq!(route(&sim, "GET /order/certificate/{order_id}"), 0);

    let orders_before = sim.sim().stats().orders_total;
    let plan = run(&sandbox, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "no change after import: {}", plan.all());
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
    let apply = run(&sandbox, &["apply", "--auto-approve"]).expect(0);
    assert_eq!(
        sim.sim().stats().orders_total,
        orders_before,
        "apply placed an order: {}",
        apply.all()
    );
}

/// An order for the names a certificate of this state already holds is not adopted again.
#[test]
fn import_skips_orders_for_names_this_state_manages() {
    let sim = Sim::start(seed(vec![order(
        serde_json::json!({ "common_name": "www.example.test", "age_days": 5 }),
    )]));
    let sandbox = Sandbox::with_config(&config(&sim.sim().base_url(), ""));
    run(
        &sandbox,
        &["import", "dc", "--write-config", "imported.toml"],
    )
    .expect(0);
    // The same certificate ordered again outside certform: the state already manages it.
    let mut other = seed(vec![order(
        serde_json::json!({ "common_name": "www.example.test", "age_days": 1 }),
    )]);
    other.account.first_order_id = 2_000_001;
    let sim2 = Sim::start(other);
    let text = config(&sim2.sim().base_url(), "");
    std::fs::write(sandbox.path("certform.toml"), text).expect("config");
    let again = run(&sandbox, &["import", "dc"]).expect(0);
    assert!(
        again.stdout.contains(
            "not imported: order 2000001 (www.example.test): its names are already managed by certificate `www-example-test`"
        ),
        "{}",
        again.all()
    );
    assert_eq!(route(&sim2, DOWNLOAD), 0);
}

/// 300 orders against CertCentral's limits run 20 times faster (100 per 0.25 s, 1,000 per
/// 9 s), the client's budget scaled the same way: no 429, one list page and one download per
/// order; a second import downloads nothing (the orders are in state).
#[test]
fn import_stays_inside_the_rate_limit_and_a_rerun_fetches_nothing_again() {
    let mut seed = seed(vec![order(serde_json::json!({
        "count": 300, "common_name": "h{n}.example.test", "age_days": 3
    }))]);
    seed.limits_time_scale = 20;
    seed.limits = Limits::default();
    let sim = Sim::start(seed);
    let sandbox = Sandbox::with_config(&config(
        &sim.sim().base_url(),
        "rate_limit = [{ requests = 100, seconds = 0.25 }, { requests = 1000, seconds = 9 }]",
    ));
    let first = run(
        &sandbox,
        &["import", "dc", "--write-config", "imported.toml"],
    )
    .expect(0);
    let stats = sim.sim().stats();
    assert_eq!(stats.rate_limited, 0, "{:?}", stats.requests_by_route);
    assert_eq!(route(&sim, DOWNLOAD), 300, "{:?}", stats.requests_by_route);
    assert!(stats.requests_total <= 302, "{:?}", stats.requests_by_route);
    assert_eq!(first.stdout.matches("imported h").count(), 300);
    // No progress bar when stderr is not a terminal.
    assert!(
        !first.stderr.contains("certificates downloaded"),
        "{}",
        first.stderr
    );

    let before = sim.sim().stats().requests_total;
    let again = run(&sandbox, &["import", "dc"]).expect(0);
    assert!(
        again
            .stdout
            .contains("skipped 300 orders: already in state"),
        "{}",
        again.all()
    );
    assert_eq!(route(&sim, DOWNLOAD), 300, "nothing downloaded again");
    assert!(sim.sim().stats().requests_total - before <= 2);

    // Refresh of the 300 imported certificates reads the list, not one order each; the
    // account's daily inventory listing (due: never listed yet) takes the same page instead
    // of listing again.
    let before = sim.sim().stats().requests_total;
    let lists = route(&sim, "GET /order/certificate");
    let plan = run(&sandbox, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let requests = sim.sim().stats().requests_total - before;
    assert!(requests <= 15, "{requests} requests for plan");
    assert_eq!(
        route(&sim, "GET /order/certificate") - lists,
        1,
        "one list page in all"
    );
}

/// Someone else uses the account's budget: the simulator refuses with 429 (and
/// `Retry-After: 1`) although certform's own budget is off; import waits and resumes, and
/// every order is imported.
#[test]
fn a_429_is_waited_out_and_the_import_resumes() {
    let sim = Sim::start(seed(vec![order(serde_json::json!({
        "count": 40, "common_name": "h{n}.example.test", "age_days": 3
    }))]));
    sim.sim()
        .set_limits(Limits {
            windows: vec![RateWindow {
                requests: 25,
                seconds: 1,
            }],
            retry_after_header: true,
        })
        .expect("limits");
    let sandbox = Sandbox::with_config(&config(&sim.sim().base_url(), "rate_limit = []"));
    let imported = run(&sandbox, &["import", "dc"]).expect(0);
    assert_eq!(imported.stdout.matches("imported h").count(), 40);
    let stats = sim.sim().stats();
    assert!(stats.rate_limited > 0, "{:?}", stats.requests_by_route);
    assert_eq!(route(&sim, DOWNLOAD), 40);
}

/// An import killed after writing a batch's stubs but before committing it: the re-run adopts
/// those orders under the names the stubs give them and writes no second stub for them.
#[test]
fn a_rerun_after_an_interruption_keeps_the_stubs_it_wrote() {
    let sim = Sim::start(seed(vec![
        order(serde_json::json!({ "common_name": "a.example.test", "age_days": 2 })),
        order(serde_json::json!({ "common_name": "b.example.test", "age_days": 2 })),
    ]));
    let first = Sandbox::with_config(&config(&sim.sim().base_url(), ""));
    run(&first, &["import", "dc", "--write-config", "imported.toml"]).expect(0);
    let stubs = first.read("imported.toml");
    // The state of the interrupted run: stubs on disk, nothing committed.
    let second = Sandbox::with_config(&config(&sim.sim().base_url(), ""));
    std::fs::write(second.path("imported.toml"), &stubs).expect("stubs");
    let again = run(
        &second,
        &["import", "dc", "--write-config", "imported.toml"],
    )
    .expect(0);
    assert!(
        again
            .stdout
            .contains("imported a-example-test (order 1000001,"),
        "{}",
        again.all()
    );
    assert!(
        again
            .stdout
            .contains("imported b-example-test (order 1000002,"),
        "{}",
        again.all()
    );
    assert_eq!(second.read("imported.toml"), stubs, "no stub written twice");
    let plan = run(&second, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
}
