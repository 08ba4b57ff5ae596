//! The CA inventory through the binary: orders at a CA that certform does not manage
//! (unmanaged) or holds twice (duplicate), listed at refresh on the account's `inventory`
//! schedule, recorded in state and shown by `status` in every format and by `plan` in one
//! line; against the local CA and the DigiCert simulator.

use certform::sim::digicert::{OrderSeed, Seed};

use crate::digicert_sim::Sim;
use crate::sandbox::{Sandbox, WEB};

/// The clock of the first apply; the local CA issues 90 days from it.
const T0: &str = "2027-01-01T00:00:00Z";

fn at_hours(start: &str, hours: i64) -> String {
    let start = time::OffsetDateTime::parse(start, &time::format_description::well_known::Rfc3339)
        .expect("start");
    (start + time::Duration::hours(hours))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time")
}

fn at(sandbox: &Sandbox, hours: i64, args: &[&str]) -> crate::sandbox::Run {
    sandbox.certform_env(args, &[("CERTFORM_NOW", at_hours(T0, hours).as_str())])
}

/// A second certform, with its own state, ordering from `sandbox`'s local CA (same
/// `keys_dir`): its orders are outside `sandbox`'s certform.
fn order_outside(sandbox: &Sandbox, certificates: &str) {
    let outsider = Sandbox::with_config(&format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"{}\"\n\n[ca.local]\nkind = \"local\"\n{certificates}",
        sandbox.path("keys").display()
    ));
    outsider
        .certform_env(&["apply", "--auto-approve"], &[("CERTFORM_NOW", T0)])
        .expect(0);
}

/// The local CA's order id of the first order for `common_name`.
fn local_order(sandbox: &Sandbox, common_name: &str) -> String {
    sandbox
        .local_orders()
        .iter()
        .find(|o| o["common_name"].as_str() == Some(common_name))
        .and_then(|o| o["order_id"].as_str())
        .expect("order")
        .to_string()
}

#[test]
fn orders_placed_outside_certform_show_as_unmanaged_and_duplicate_once_listed() {
    let sandbox = Sandbox::with_config(WEB);
    at(&sandbox, 0, &["apply", "--auto-approve"]).expect(0);
    // The first apply made the local CA, after its plan: the next run lists the account.
    // It finds nothing to report, so it commits nothing: the listing time is noted beside
    // the repository, and `status` shows it.
    let head = sandbox.git("state", &["rev-parse", "HEAD"]);
    at(&sandbox, 0, &["apply", "--auto-approve"]).expect(0);
    assert_eq!(sandbox.git("state", &["rev-parse", "HEAD"]), head);
    let record = "state/ca/local.inventory.toml";
    assert!(!sandbox.path(record).exists());
    let json = |hours: i64| -> serde_json::Value {
        serde_json::from_str(
            &at(&sandbox, hours, &["status", "--format", "json"])
                .expect(0)
                .stdout,
        )
        .expect("JSON")
    };
    let listed = &json(1)["ca_inventory"][0];
    assert_eq!(listed["listed_at"], T0);
    assert_eq!(listed["unmanaged_total"], 0);
    assert_eq!(listed["orders"], 1);
    let web_order = sandbox.state_field("web", "order_id");

    // Another certform orders a stray certificate and a second one for `web`'s names.
    order_outside(
        &sandbox,
        "\n[certificate.stray]\ncommon_name = \"stray.example.test\"\n\n[certificate.copy]\ncommon_name = \"www.example.test\"\nsans = [\"example.test\"]\n",
    );
    let stray = local_order(&sandbox, "stray.example.test");
    let copy = sandbox
        .local_orders()
        .iter()
        .filter_map(|o| o["order_id"].as_str())
        .find(|id| *id != web_order && *id != stray)
        .expect("the copy's order")
        .to_string();

    // `daily`: within 24 hours of the last listing, nothing is listed again.
    let early = at(&sandbox, 23, &["plan"]).expect(0);
    assert!(!early.stdout.contains("not managed"), "{}", early.stdout);
    // After 24 hours, plan lists: one line, no action; plan records nothing.
    let plan = at(&sandbox, 25, &["plan"]).expect(0);
    assert!(
        plan.stdout.contains(
            "1 certificate at CA `local` is not managed by certform; 1 order at CA `local` duplicates a managed certificate (see `certform status`)"
        ),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
    let markdown = at(&sandbox, 25, &["plan", "--format", "markdown"]).expect(0);
    assert!(
        markdown
            .stdout
            .contains("1 certificate at CA `local` is not managed by certform"),
        "{}",
        markdown.stdout
    );
    let refresh_only = at(&sandbox, 25, &["plan", "--refresh-only"]).expect(0);
    assert!(
        refresh_only
            .stdout
            .contains("1 certificate at CA `local` is not managed by certform"),
        "{}",
        refresh_only.stdout
    );
    assert!(!sandbox.path(record).exists(), "plan writes nothing");

    // `apply --refresh-only` records the listing, committed with the run.
    at(&sandbox, 25, &["apply", "--refresh-only", "--auto-approve"]).expect(0);
    let committed = sandbox.git("state", &["show", "--stat", "HEAD"]);
    assert!(committed.contains("ca/local.inventory.toml"), "{committed}");

    // `status`, three hours later, without a CA call.
    let table = at(&sandbox, 28, &["status"]).expect(0).stdout;
    assert!(table.starts_with("NAME "), "{table}");
    let sections = &table[table.find("\nUnmanaged").expect("an unmanaged section")..];
    let unmanaged = format!(
        "\nUnmanaged at CA `local` (listed 3h ago): 1\n  {stray}  stray.example.test  issued  "
    );
    assert!(sections.starts_with(&unmanaged), "{table}");
    assert!(
        sections.contains("\nhint: `certform import local` adopts them into state and config\n"),
        "{table}"
    );
    let duplicate = format!(
        "\nDuplicates at CA `local` (listed 3h ago): 1\n  {copy}  www.example.test  issued  "
    );
    assert!(sections.contains(&duplicate), "{table}");
    assert!(sections.contains("  duplicates `web`\n"), "{table}");
    assert!(
        !sections.contains(&web_order),
        "`web`'s own order is managed: {table}"
    );

    let only = at(&sandbox, 28, &["status", "--status", "unmanaged"])
        .expect(0)
        .stdout;
    assert!(only.starts_with(&unmanaged), "no certificate rows: {only}");
    assert!(!only.contains("Duplicates"), "{only}");
    let other_ca = at(&sandbox, 28, &["status", "--ca", "nope"])
        .expect(0)
        .stdout;
    assert!(!other_ca.contains("at CA"), "{other_ca}");

    let json = json(28);
    let inventory = &json["ca_inventory"][0];
    assert_eq!(inventory["ca"], "local");
    assert_eq!(inventory["listed_at"], "2027-01-02T01:00:00Z");
    assert_eq!(inventory["orders"], 3);
    assert_eq!(inventory["unmanaged_total"], 1);
    assert_eq!(inventory["duplicate_total"], 1);
    assert_eq!(inventory["unmanaged"][0]["order_id"], stray.as_str());
    assert_eq!(
        inventory["unmanaged"][0]["common_name"],
        "stray.example.test"
    );
    assert_eq!(inventory["unmanaged"][0]["status"], "issued");
    assert!(
        inventory["unmanaged"][0]["not_after"].is_string(),
        "{inventory}"
    );
    assert_eq!(inventory["duplicate"][0]["order_id"], copy.as_str());
    assert_eq!(inventory["duplicate"][0]["certificate"], "web");

    let metrics = at(&sandbox, 28, &["status", "--format", "prometheus"])
        .expect(0)
        .stdout;
    for line in [
        "# TYPE certform_ca_unmanaged_certificates gauge\n",
        "certform_ca_unmanaged_certificates{ca=\"local\"} 1\n",
        "certform_ca_duplicate_certificates{ca=\"local\"} 1\n",
        "certform_ca_inventory_timestamp_seconds{ca=\"local\"} 1798851600\n",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }

    // One more stray: `daily` does not see it within the day, `every-run` does.
    order_outside(
        &sandbox,
        "\n[certificate.stray2]\ncommon_name = \"stray2.example.test\"\n",
    );
    let daily = at(&sandbox, 26, &["plan"]).expect(0);
    assert!(
        daily
            .stdout
            .contains("1 certificate at CA `local` is not managed"),
        "the recorded listing: {}",
        daily.stdout
    );
    sandbox.write_config(&WEB.replace(
        "[ca.local]\nkind = \"local\"\n",
        "[ca.local]\nkind = \"local\"\ninventory = \"every-run\"\n",
    ));
    let every_run = at(&sandbox, 26, &["plan"]).expect(0);
    assert!(
        every_run
            .stdout
            .contains("2 certificates at CA `local` are not managed"),
        "{}",
        every_run.stdout
    );

    // `certform import` adopts the strays: `status` stops reporting them before the next
    // listing. The duplicate of `web` is not adopted (a second certificate for the same names
    // would be renewed, and paid for, twice): it stays reported for cancelling at the CA.
    let imported = at(&sandbox, 27, &["import", "local"]).expect(0).stdout;
    assert!(
        imported.contains("its names are already managed by certificate `web`"),
        "{imported}"
    );
    let adopted = at(&sandbox, 28, &["status"]).expect(0).stdout;
    assert!(!adopted.contains("not managed"), "{adopted}");
    assert!(adopted.contains("duplicates `web`"), "{adopted}");
}

#[test]
fn inventory_off_never_lists_and_a_listing_failure_warns_while_the_plan_succeeds() {
    // `other` is a second local CA with material and no certificate in state.
    let config = format!(
        "{WEB}\n[defaults]\nca = \"local\"\n\n[ca.other]\nkind = \"local\"\n\n[certificate.api]\nca = \"other\"\ncommon_name = \"api.example.test\"\n"
    );
    let sandbox = Sandbox::with_config(&config);
    at(&sandbox, 0, &["apply", "--auto-approve"]).expect(0);
    // The accounts exist now: this run lists both (nothing to report).
    at(&sandbox, 0, &["apply", "--auto-approve"]).expect(0);
    // A file in `other`'s order database that is not an order: listing `other` fails.
    std::fs::write(
        sandbox.path("keys/local-ca/other/orders/lo-0123456789ab.json"),
        "not json",
    )
    .expect("write");
    let config = config.replace(
        "\n[certificate.api]\nca = \"other\"\ncommon_name = \"api.example.test\"\n",
        "",
    );
    sandbox.write_config(&config);
    sandbox
        .certform(&["state", "rm", "api", "--auto-approve"])
        .expect(0);
    let listed_at = |hours: i64| -> Vec<String> {
        let json: serde_json::Value = serde_json::from_str(
            &at(&sandbox, hours, &["status", "--format", "json"])
                .expect(0)
                .stdout,
        )
        .expect("JSON");
        json["ca_inventory"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|i| format!("{} {}", i["ca"], i["listed_at"]))
                    .collect()
            })
            .unwrap_or_default()
    };
    let t0 = [format!("\"local\" \"{T0}\""), format!("\"other\" \"{T0}\"")];
    assert_eq!(listed_at(1), t0);

    let plan = at(&sandbox, 25, &["plan"]).expect(0);
    assert!(
        plan.stderr.contains(
            "warning: cannot list the orders of CA `other` for the inventory (the plan goes on without it): "
        ),
        "{}",
        plan.stderr
    );
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
    let applied = at(&sandbox, 25, &["apply", "--auto-approve"]).expect(0);
    assert!(
        applied
            .stderr
            .contains("cannot list the orders of CA `other`"),
        "{}",
        applied.stderr
    );
    // The failed listing left `other`'s last listing as it was; `local`'s is renewed.
    assert_eq!(
        listed_at(26),
        [
            "\"local\" \"2027-01-02T01:00:00Z\"".to_string(),
            t0[1].clone()
        ]
    );

    // `off`: never listed, so no warning.
    sandbox.write_config(&config.replace(
        "[ca.other]\nkind = \"local\"\n",
        "[ca.other]\nkind = \"local\"\ninventory = \"off\"\n",
    ));
    let quiet = at(&sandbox, 60, &["plan"]).expect(0);
    assert!(!quiet.stderr.contains("cannot list"), "{}", quiet.stderr);
}

#[test]
fn a_bad_inventory_setting_and_a_hand_broken_record_get_clear_errors() {
    let sandbox = Sandbox::with_config(&WEB.replace(
        "[ca.local]\nkind = \"local\"\n",
        "[ca.local]\nkind = \"local\"\ninventory = \"hourly\"\n",
    ));
    let invalid = sandbox.certform(&["validate"]).expect(1);
    assert!(
        invalid.stderr.contains("certform.toml:"),
        "{}",
        invalid.stderr
    );
    assert!(invalid.stderr.contains("hourly"), "{}", invalid.stderr);
    assert!(invalid.stderr.contains("every-run"), "{}", invalid.stderr);

    let sandbox = Sandbox::with_config(WEB);
    at(&sandbox, 0, &["apply", "--auto-approve"]).expect(0);
    at(&sandbox, 0, &["apply", "--auto-approve"]).expect(0);
    let path = "state/ca/local.inventory.toml";
    let record = "# managed by certform; edit with care\nformat = 1\nca = \"local\"\nlisted_at = \"2027-01-01T00:00:00Z\"\norders = 3\nunmanaged_total = 0\nduplicate_total = 0\nunmanaged = []\nduplicate = []\n";
    std::fs::write(sandbox.path(path), record).expect("write");
    at(&sandbox, 1, &["status"]).expect(0);
    std::fs::write(
        sandbox.path(path),
        record.replace("unmanaged_total = 0", "unmanaged_total = -1"),
    )
    .expect("write");
    let broken = sandbox.certform(&["status"]).expect(1);
    assert!(
        broken.stderr.contains("ca/local.inventory.toml:") && broken.stderr.contains("is corrupt"),
        "{}",
        broken.stderr
    );
    std::fs::write(
        sandbox.path(path),
        record.replace(
            "unmanaged = []",
            "unmanaged = [{ order_id = \"lo-1\", common_name = \"x\", status = \"issued\" }]",
        ),
    )
    .expect("write");
    let counts = sandbox.certform(&["status"]).expect(1);
    assert!(
        counts
            .stderr
            .contains("`unmanaged_total` is 0 but 1 unmanaged orders are listed"),
        "{}",
        counts.stderr
    );
}

#[test]
fn digicert_lists_in_pages_and_finds_unmanaged_and_duplicate_orders() {
    let domain: certform::sim::digicert::DomainSeed =
        serde_json::from_value(serde_json::json!({ "name": "example.test" })).expect("domain");
    let seeded = |count: u32, common_name: &str, names: &[&str]| OrderSeed {
        count,
        common_name: common_name.to_string(),
        dns_names: names.iter().map(|n| n.to_string()).collect(),
        ..serde_json::from_value(serde_json::json!({ "common_name": common_name }))
            .expect("order seed")
    };
    let sim = Sim::start(Seed {
        random_seed: Some(5),
        domains: vec![domain],
        orders: vec![
            // Two pages of strays (the list is read 1000 at a time).
            seeded(1001, "stray.example.test", &["stray.example.test"]),
            seeded(1, "www.example.test", &["www.example.test", "example.test"]),
        ],
        ..Seed::default()
    });
    let sandbox = Sandbox::with_config(&format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{}\"\n\n[certificate.web]\nca = \"dc\"\ncommon_name = \"www.example.test\"\nsans = [\"example.test\"]\nproduct = \"ssl_basic\"\norganization = 112233\nvalidity = {{ days = 90 }}\ndeploy = [{{ kind = \"files\", dir = \"out/web\" }}]\n",
        sim.sim().base_url()
    ));
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("now")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("now");
    let run = |args: &[&str], hours: i64| {
        sandbox.certform_env(
            args,
            &[
                ("DIGICERT_API_KEY", "sim-admin-key"),
                ("CERTFORM_NOW", at_hours(&now, hours).as_str()),
            ],
        )
    };
    let list = "GET /order/certificate";
    run(&["apply", "--auto-approve"], 0).expect(0);
    assert_eq!(
        sim.requests(list),
        2,
        "one list call per page, never one per order"
    );
    // Listed before `web` was ordered: every seeded order was unmanaged then.
    let status = run(&["status"], 1).expect(0).stdout;
    assert!(
        status.contains("Unmanaged at CA `dc` (listed 1h ago): 1002\n"),
        "{status}"
    );
    assert!(
        status.contains(&format!("  ... and {} more\n", 1002 - 50)),
        "{status}"
    );
    // Within a day nothing is listed again, by plan or apply.
    run(&["plan"], 2).expect(0);
    run(&["apply", "--auto-approve"], 2).expect(0);
    assert_eq!(sim.requests(list), 2);
    // A day later: the seeded order for `web`'s names is now a duplicate of it.
    run(&["apply", "--auto-approve"], 25).expect(0);
    assert_eq!(sim.requests(list), 4);
    let json: serde_json::Value =
        serde_json::from_str(&run(&["status", "--format", "json"], 25).expect(0).stdout)
            .expect("JSON");
    let inventory = &json["ca_inventory"][0];
    assert_eq!(inventory["orders"], 1003);
    assert_eq!(inventory["unmanaged_total"], 1001);
    assert_eq!(inventory["unmanaged"].as_array().map(Vec::len), Some(50));
    assert_eq!(inventory["duplicate_total"], 1);
    assert_eq!(inventory["duplicate"][0]["certificate"], "web");
    assert_eq!(inventory["duplicate"][0]["common_name"], "www.example.test");
}

/// Another state orders from the same local CA: importing the account here warns about that
/// order (it carries certform's tag of a certificate this state does not hold), and about no
/// other. The local CA's list carries the tag; DigiCert's documented list does not.
#[test]
fn import_warns_about_an_order_another_state_placed() {
    let sandbox = Sandbox::with_config(WEB);
    at(&sandbox, 0, &["apply", "--auto-approve"]).expect(0);
    order_outside(
        &sandbox,
        "\n[certificate.api]\ncommon_name = \"api.example.test\"\nca = \"local\"\n",
    );
    let order = local_order(&sandbox, "api.example.test");
    let imported = at(&sandbox, 1, &["import", "local"]).expect(0);
    assert!(
        imported
            .stdout
            .contains("imported api-example-test (order lo-"),
        "{}",
        imported.all()
    );
    let warning = format!("warning: order {order} carries certform's tag of certificate `cf-");
    assert!(imported.stderr.contains(&warning), "{}", imported.all());
    assert!(
        imported.stderr.contains(
            "which this state does not hold: another state sharing `local` may manage it (or this state forgot it), and importing it makes two states renew it"
        ),
        "{}",
        imported.all()
    );
    assert_eq!(
        imported.stderr.matches("carries certform's tag").count(),
        1,
        "{}",
        imported.all()
    );
}
