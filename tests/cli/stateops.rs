//! State operations through the CLI: `state list|show|rm|mv`, `--target`, `--replace`,
//! `--refresh-only` and a lost key file.

use crate::sandbox::{Sandbox, WEB};

const TWO: &str = r#"
[state]
repo = "state"
keys_dir = "keys"

[ca.local]
kind = "local"

[certificate.api]
common_name = "api.example.test"
deploy = [{ kind = "files", dir = "out/api" }]

[certificate.web]
common_name = "www.example.test"
sans = ["example.test"]
validity = { days = 90 }
renew_before = "30d"
deploy = [{ kind = "files", dir = "out/web" }]
"#;

/// The key files of certificate `name` in the sandbox's keys_dir, sorted.
fn key_files(sandbox: &Sandbox, name: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(sandbox.path("keys").join(name))
        .map(|listing| {
            listing
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn last_commit_message(sandbox: &Sandbox) -> String {
    sandbox
        .git("state", &["log", "-1", "--format=%s"])
        .trim()
        .to_string()
}

#[test]
fn state_list_and_show_print_entries_without_secrets() {
    let sandbox = Sandbox::with_config(TWO);
    sandbox.apply().expect(0);
    let listed = sandbox.certform(&["state", "list"]).expect(0);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", listed.stdout);
    assert!(lines[0].starts_with("NAME"), "{}", listed.stdout);
    assert!(
        lines[1].starts_with("api ") && lines[1].contains("local") && lines[1].contains("issued")
    );
    assert!(lines[2].starts_with("web "), "{}", listed.stdout);
    let order = sandbox.state_field("web", "order_id");
    assert!(lines[2].ends_with(&order), "{}", listed.stdout);

    let json = sandbox.certform(&["state", "list", "--json"]).expect(0);
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(parsed[1]["name"], "web");
    assert_eq!(parsed[1]["order_id"], order.as_str());

    let shown = sandbox.certform(&["state", "show", "web"]).expect(0);
    let table: toml::Table = toml::from_str(&shown.stdout).expect("toml");
    assert_eq!(table["name"].as_str(), Some("web"));
    assert_eq!(
        table["serial"].as_str().map(str::to_string),
        Some(sandbox.state_field("web", "serial"))
    );
    assert!(!shown.stdout.contains("PRIVATE KEY"), "{}", shown.stdout);
    let shown = sandbox
        .certform(&["state", "show", "web", "--json"])
        .expect(0);
    let parsed: serde_json::Value = serde_json::from_str(&shown.stdout).expect("json");
    assert_eq!(parsed["common_name"], "www.example.test");

    let unknown = sandbox.certform(&["state", "show", "wbe"]).expect(1);
    assert!(
        unknown
            .stderr
            .contains("error: certificate `wbe` is not in state"),
        "{}",
        unknown.stderr
    );
    assert!(
        unknown.stderr.contains("hint: did you mean `web`?"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn state_rm_forgets_without_a_ca_call_after_confirmation() {
    let sandbox = Sandbox::with_config(TWO);
    sandbox.apply().expect(0);
    let orders = sandbox.local_orders().len();
    let keys = key_files(&sandbox, "web");
    assert_eq!(keys.len(), 1, "{keys:?}");

    let refused = sandbox.certform(&["state", "rm", "web"]).expect(1);
    assert!(
        refused.stderr.contains("standard input is not a terminal"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("--auto-approve"),
        "{}",
        refused.stderr
    );
    assert!(sandbox.path("state/certificates/web.toml").exists());

    let removed = sandbox
        .certform(&["state", "rm", "web", "--auto-approve"])
        .expect(0);
    assert!(
        removed.stdout.contains("Forgot `web`"),
        "{}",
        removed.stdout
    );
    assert!(!sandbox.path("state/certificates/web.toml").exists());
    assert!(!sandbox.path("state/certificates/web.pem").exists());
    assert!(sandbox.path("state/certificates/api.toml").exists());
    assert_eq!(last_commit_message(&sandbox), "certform state rm web");
    let status = sandbox.git("state", &["status", "--porcelain"]);
    assert_eq!(status.trim(), "", "everything written is committed");
    assert_eq!(sandbox.local_orders().len(), orders, "no CA call");
    assert_eq!(key_files(&sandbox, "web"), keys, "keys stay in keys_dir");

    let again = sandbox
        .certform(&["state", "rm", "web", "--auto-approve"])
        .expect(1);
    assert!(
        again.stderr.contains("`web` is not in state"),
        "{}",
        again.stderr
    );
}

#[test]
fn state_rm_refuses_an_order_in_flight_unless_forced() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox
        .certform_env(
            &["apply", "--auto-approve"],
            &[("CERTFORM_FAILPOINT", "after-order")],
        )
        .expect(99);
    let refused = sandbox
        .certform(&["state", "rm", "web", "--auto-approve"])
        .expect(1);
    assert!(
        refused.stderr.contains("has an order in flight"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert!(sandbox.path("state/certificates/web.toml").exists());
    sandbox
        .certform(&["state", "rm", "web", "--auto-approve", "--force"])
        .expect(0);
    assert!(!sandbox.path("state/certificates/web.toml").exists());
}

#[test]
fn state_mv_renames_without_a_new_order_and_moves_the_keys() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let orders = sandbox.local_orders().len();
    let serial = sandbox.state_field("web", "serial");
    let keys = key_files(&sandbox, "web");

    let moved = sandbox.certform(&["state", "mv", "web", "www"]).expect(0);
    assert!(
        moved
            .stdout
            .contains("Moved `web` to `www` with 1 key file"),
        "{}",
        moved.stdout
    );
    assert!(
        moved.stderr.contains("[certificate.www]"),
        "{}",
        moved.stderr
    );
    assert_eq!(last_commit_message(&sandbox), "certform state mv web www");
    assert_eq!(sandbox.git("state", &["status", "--porcelain"]).trim(), "");
    assert_eq!(key_files(&sandbox, "www"), keys);
    assert!(!sandbox.path("keys/web").exists(), "old key names dropped");
    assert_eq!(sandbox.state_field("www", "serial"), serial);

    sandbox.write_config(&WEB.replace("[certificate.web]", "[certificate.www]"));
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
    sandbox.apply().expect(0);
    assert_eq!(sandbox.local_orders().len(), orders, "no new order");

    let taken = sandbox.certform(&["state", "mv", "www", "www"]).expect(1);
    assert!(
        taken.stderr.contains("already in state"),
        "{}",
        taken.stderr
    );
}

#[test]
fn a_killed_state_mv_never_loses_the_key_and_is_finished_by_running_it_again() {
    for point in [
        "state-mv-after-keys",
        "state-mv-after-new",
        "state-mv-before-commit",
    ] {
        let sandbox = Sandbox::with_config(WEB);
        sandbox.apply().expect(0);
        let keys = key_files(&sandbox, "web");
        let key = sandbox.read(&format!("keys/web/{}", keys[0]));
        sandbox
            .certform_env(
                &["state", "mv", "web", "www"],
                &[("CERTFORM_FAILPOINT", point)],
            )
            .expect(99);
        // The key is reachable under its old name whatever state says.
        assert_eq!(
            sandbox.read(&format!("keys/web/{}", keys[0])),
            key,
            "{point}"
        );

        let resumed = sandbox.certform(&["state", "mv", "web", "www"]);
        assert_eq!(resumed.code, 0, "{point}: {}", resumed.stderr);
        assert_eq!(
            sandbox.read(&format!("keys/www/{}", keys[0])),
            key,
            "{point}"
        );
        assert!(!sandbox.path("keys/web").exists(), "{point}");
        assert_eq!(
            sandbox.git("state", &["status", "--porcelain"]).trim(),
            "",
            "{point}"
        );
        sandbox.write_config(&WEB.replace("[certificate.web]", "[certificate.www]"));
        let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
        assert!(
            plan.stdout.contains("No changes"),
            "{point}: {}",
            plan.stdout
        );
    }
}

#[test]
fn target_plans_and_applies_only_the_named_certificates() {
    let sandbox = Sandbox::with_config(TWO);
    sandbox.apply().expect(0);
    let api_serial = sandbox.state_field("api", "serial");
    let changed = TWO
        .replace(
            r#"common_name = "api.example.test""#,
            "common_name = \"api.example.test\"\nsans = [\"api2.example.test\"]",
        )
        .replace(
            r#"sans = ["example.test"]"#,
            r#"sans = ["example.test", "shop.example.test"]"#,
        );
    sandbox.write_config(&changed);
    let plan = sandbox
        .certform(&["plan", "--target", "web", "--detailed-exitcode"])
        .expect(2);
    assert!(plan.stdout.contains("reissue web"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("api"), "{}", plan.stdout);
    sandbox
        .certform(&["apply", "--auto-approve", "--target", "web"])
        .expect(0);
    assert!(sandbox
        .sans_of("out/web/cert.pem")
        .contains("shop.example.test"));
    assert_eq!(
        sandbox.state_field("api", "serial"),
        api_serial,
        "api untouched"
    );
    let rest = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(rest.stdout.contains("reissue api"), "{}", rest.stdout);
    assert!(!rest.stdout.contains("reissue web"), "{}", rest.stdout);

    // A certificate outside the targets is not "removed" because it is left out.
    sandbox.write_config(&WEB.replace(
        r#"sans = ["example.test"]"#,
        r#"sans = ["example.test", "shop.example.test"]"#,
    ));
    let plan = sandbox
        .certform(&["plan", "--target", "web", "--detailed-exitcode"])
        .expect(0);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);

    let unknown = sandbox.certform(&["plan", "--target", "wbe"]).expect(1);
    assert!(
        unknown.stderr.contains(
            "error: `--target wbe` names no certificate in the configuration or in state"
        ),
        "{}",
        unknown.stderr
    );
    assert!(
        unknown.stderr.contains("hint: did you mean `web`?"),
        "{}",
        unknown.stderr
    );
    let unknown = sandbox
        .certform(&["apply", "--auto-approve", "--replace", "nope"])
        .expect(1);
    assert!(
        unknown
            .stderr
            .contains("`--replace nope` names no certificate"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn a_lost_key_is_planned_with_the_fix_and_replace_recovers_it() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let orders = sandbox.local_orders().len();
    let key = key_files(&sandbox, "web")[0].clone();
    std::fs::remove_file(sandbox.path(&format!("keys/web/{key}"))).expect("lose the key");

    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout.contains(&format!("keys/web/{key}` is missing")),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("`certform apply --replace web`"),
        "{}",
        plan.stdout
    );

    let failed = sandbox.apply().expect(3);
    assert!(
        failed.stderr.contains(&format!("keys/web/{key}")),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains(
            "hint: run `certform apply --replace web` to order a new certificate with a new key"
        ),
        "{}",
        failed.stderr
    );
    assert!(
        !failed.all().contains("No such file or directory"),
        "{}",
        failed.all()
    );

    let plan = sandbox.certform(&["plan", "--replace", "web"]).expect(0);
    assert!(
        plan.stdout
            .contains("replacement requested with `--replace`"),
        "{}",
        plan.stdout
    );
    sandbox
        .certform(&["apply", "--auto-approve", "--replace", "web"])
        .expect(0);
    assert_eq!(sandbox.local_orders().len(), orders + 1, "one new order");
    assert_ne!(key_files(&sandbox, "web"), vec![key], "a new key");
    sandbox.verify_deployed("out/web");
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
}

#[test]
fn a_lost_key_without_deploy_targets_is_no_longer_invisible() {
    let config = WEB.replace("deploy = [{ kind = \"files\", dir = \"out/web\" }]\n", "");
    let sandbox = Sandbox::with_config(&config);
    sandbox.apply().expect(0);
    let key = key_files(&sandbox, "web")[0].clone();
    std::fs::remove_file(sandbox.path(&format!("keys/web/{key}"))).expect("lose the key");
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(
        plan.stdout.contains("! blocked web (wanted: replace)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains(&format!("keys/web/{key}` is missing")),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("`certform apply --replace web`"),
        "{}",
        plan.stdout
    );
}

#[test]
fn refresh_only_records_a_revocation_at_the_ca_and_acts_on_nothing() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let order = sandbox.state_field("web", "order_id");
    let order_file = sandbox.path(&format!("keys/local-ca/local/orders/{order}.json"));
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&order_file).expect("order")).expect("json");
    record["status"] = "revoked".into();
    std::fs::write(&order_file, record.to_string()).expect("revoke outside certform");
    let orders = sandbox.local_orders().len();
    let deployed = crate::sandbox::snapshot_tree(&sandbox.path("out"));

    let plan = sandbox
        .certform(&["plan", "--refresh-only", "--detailed-exitcode"])
        .expect(2);
    assert!(
        plan.stdout
            .contains(&format!("~ web: `local` reports order {order} as revoked")),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Refresh: 1 certificate to record in state."),
        "{}",
        plan.stdout
    );
    assert_eq!(
        sandbox.state_field("web", "status"),
        "issued",
        "plan writes nothing"
    );

    let applied = sandbox.certform(&["apply", "--refresh-only"]).expect(0);
    assert!(
        applied.stdout.contains("refreshed state committed"),
        "{}",
        applied.stdout
    );
    assert_eq!(sandbox.state_field("web", "status"), "revoked");
    assert_eq!(
        last_commit_message(&sandbox),
        "certform apply --refresh-only: record what the CAs hold"
    );
    assert_eq!(sandbox.local_orders().len(), orders, "nothing ordered");
    assert_eq!(
        crate::sandbox::snapshot_tree(&sandbox.path("out")),
        deployed,
        "nothing deployed"
    );
    let again = sandbox
        .certform(&["plan", "--refresh-only", "--detailed-exitcode"])
        .expect(0);
    assert!(again.stdout.contains("No drift"), "{}", again.stdout);
}

#[test]
fn state_rm_and_mv_wait_for_the_state_lock_like_apply() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let lock = "pid = 1\nhost = \"build-7.elsewhere.example\"\nuser = \"someone\"\ncommand = \"certform apply --nightly\"\nsince = \"2026-05-01T12:00:00Z\"\nstarted = 12\nboot_id = \"other-boot\"\n";
    std::fs::write(sandbox.path("state/.git/certform.lock"), lock).expect("write lock");
    for args in [
        &["state", "rm", "web", "--auto-approve"][..],
        &["state", "mv", "web", "www"][..],
    ] {
        let run = sandbox.certform(args).expect(1);
        assert!(
            run.stderr.contains("locked by `certform apply --nightly`"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            sandbox.path("state/certificates/web.toml").exists(),
            "{args:?}"
        );
        assert!(!sandbox.path("keys/www").exists(), "{args:?}");
    }
    // Reading needs no lock.
    sandbox.certform(&["state", "list"]).expect(0);
}
