//! Reissue, renewal, revocation, removal and guardrails through the CLI.

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::sandbox::{Sandbox, WEB};

fn at(days: i64) -> String {
    (OffsetDateTime::now_utc() + Duration::days(days))
        .format(&Rfc3339)
        .expect("format time")
}

#[test]
fn changing_sans_gives_a_reissue_with_the_diff() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let order = sandbox.state_field("web", "order_id");
    let serial = sandbox.state_field("web", "serial");

    sandbox.write_config(&WEB.replace(
        r#"sans = ["example.test"]"#,
        r#"sans = ["example.test", "shop.example.test"]"#,
    ));
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("~ reissue web"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("- sans = example.test, www.example.test"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("+ sans = example.test, shop.example.test, www.example.test"),
        "{}",
        plan.stdout
    );

    sandbox.apply().expect(0);
    assert!(sandbox
        .sans_of("out/web/cert.pem")
        .contains("DNS:shop.example.test"));
    assert_eq!(
        sandbox.state_field("web", "order_id"),
        order,
        "reissued on the same order"
    );
    assert_ne!(sandbox.state_field("web", "serial"), serial);
    sandbox.verify_deployed("out/web");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn pinned_clock_inside_the_window_renews_with_reason() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let serial = sandbox.state_field("web", "serial");

    let later = at(70);
    let env = [("CERTFORM_NOW", later.as_str())];
    let plan = sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(2);
    assert!(plan.stdout.contains("renew web"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("inside the renewal window")
            && plan.stdout.contains("renew_before 30d"),
        "{}",
        plan.stdout
    );

    sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert_ne!(sandbox.state_field("web", "serial"), serial);
    sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(0);
    assert_eq!(
        sandbox.orders_for("www.example.test"),
        2,
        "one order, one renewal"
    );
}

#[test]
fn status_counts_days_left_and_goes_negative_after_expiry() {
    let sandbox = Sandbox::with_config(WEB);
    let before = sandbox.certform(&["status"]).expect(0);
    assert!(before.stdout.contains("not created"), "{}", before.stdout);
    sandbox.apply().expect(0);
    let now = sandbox.certform(&["status"]).expect(0);
    assert!(now.stdout.contains("valid, renews from"), "{}", now.stdout);
    assert!(
        now.stdout.contains(" 89") || now.stdout.contains(" 90"),
        "{}",
        now.stdout
    );
    let later = at(100);
    let expired = sandbox
        .certform_env(&["status"], &[("CERTFORM_NOW", later.as_str())])
        .expect(0);
    assert!(expired.stdout.contains("expired"), "{}", expired.stdout);
    assert!(
        expired.stdout.contains(" -10") || expired.stdout.contains(" -11"),
        "{}",
        expired.stdout
    );
}

#[test]
fn revoke_true_revokes_at_the_ca_once() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    sandbox.write_config(&format!(
        "{WEB}revoke = true\nrevoke_reason = \"key_compromise\"\n"
    ));
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(plan.stdout.contains("! revoke web"), "{}", plan.stdout);
    assert!(plan.stdout.contains("[DESTRUCTIVE]"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("reason key_compromise"),
        "{}",
        plan.stdout
    );

    sandbox.apply().expect(0);
    let orders = sandbox.local_orders();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["status"], "revoked", "{:?}", orders[0]);
    assert!(sandbox.certform(&["status"]).stdout.contains("revoked"));
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn prevent_destroy_blocks_revocation() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    sandbox.write_config(&format!("{WEB}revoke = true\nprevent_destroy = true\n"));
    // The revocation is blocked; the new `prevent_destroy` is still recorded.
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("blocked"), "{}", plan.stdout);
    assert!(plan.stdout.contains("prevent_destroy"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("update settings web"),
        "{}",
        plan.stdout
    );
    sandbox.apply().expect(0);
    assert_eq!(sandbox.local_orders()[0]["status"], "issued");
    assert_eq!(sandbox.state_field("web", "prevent_destroy"), "true");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn removal_follows_on_remove() {
    let two = format!(
        "{WEB}\n[certificate.old]\ncommon_name = \"old.example.test\"\non_remove = \"revoke\"\n\n[certificate.gone]\ncommon_name = \"gone.example.test\"\n"
    );
    let sandbox = Sandbox::with_config(&two);
    sandbox.apply().expect(0);
    sandbox.write_config(WEB);
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(plan.stdout.contains("- forget gone"), "{}", plan.stdout);
    assert!(plan.stdout.contains("! revoke old"), "{}", plan.stdout);
    sandbox.apply().expect(0);
    assert!(!sandbox.path("state/certificates/old.toml").exists());
    assert!(!sandbox.path("state/certificates/gone.toml").exists());
    let status = |cn: &str| {
        sandbox
            .local_orders()
            .into_iter()
            .find(|o| o["common_name"] == cn)
            .map(|o| o["status"].clone())
    };
    assert_eq!(status("old.example.test"), Some("revoked".into()));
    assert_eq!(
        status("gone.example.test"),
        Some("issued".into()),
        "forget leaves the CA alone"
    );
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn apply_off_a_terminal_without_auto_approve_refuses() {
    let sandbox = Sandbox::with_config(WEB);
    let run = sandbox.certform(&["apply"]).expect(1);
    assert!(
        run.stderr
            .contains("refusing to apply without confirmation"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--auto-approve"), "{}", run.stderr);
    assert!(sandbox.local_orders().is_empty());
}

#[test]
fn colour_follows_the_flag_and_no_color() {
    let sandbox = Sandbox::with_config(WEB);
    let plain = sandbox.certform(&["plan"]).expect(0);
    assert!(!plain.stdout.contains('\u{1b}'), "NO_COLOR is honoured");
    let coloured = sandbox.certform(&["plan", "--color", "always"]).expect(0);
    assert!(coloured.stdout.contains("\u{1b}["), "{}", coloured.stdout);
}

#[test]
fn yaml_configuration_is_the_same_schema() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.path("certform.yaml"),
        "state:\n  repo: state\n  keys_dir: keys\ncertificate:\n  web:\n    common_name: www.example.test\n    deploy:\n      - kind: files\n        dir: out/web\n",
    )
    .expect("write yaml");
    sandbox.apply().expect(0);
    sandbox.verify_deployed("out/web");
}

#[test]
fn bad_clock_and_bad_arguments_are_clear_errors() {
    let sandbox = Sandbox::with_config(WEB);
    let run = sandbox
        .certform_env(&["plan"], &[("CERTFORM_NOW", "tomorrow")])
        .expect(1);
    assert!(
        run.stderr
            .contains("`CERTFORM_NOW` is not an RFC 3339 time"),
        "{}",
        run.stderr
    );
    let run = sandbox.certform(&["apply", "--parallelism", "0"]).expect(1);
    assert!(run.stderr.contains("--parallelism"), "{}", run.stderr);
}

#[test]
fn revoked_at_the_ca_outside_certform_is_drift_and_replaced() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let order = sandbox.state_field("web", "order_id");
    let path = sandbox.path(&format!("keys/local-ca/local/orders/{order}.json"));
    let text = std::fs::read_to_string(&path).expect("order file");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("order JSON");
    json["status"] = "revoked".into();
    std::fs::write(&path, json.to_string()).expect("revoke behind certform's back");

    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("+ create web"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("drift:") && plan.stdout.contains("revoked"),
        "{}",
        plan.stdout
    );
    sandbox.apply().expect(0);
    assert_ne!(sandbox.state_field("web", "order_id"), order);
    sandbox.verify_deployed("out/web");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}
