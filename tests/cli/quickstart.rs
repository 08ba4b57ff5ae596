//! The README's main job: apply from nothing, then nothing to do.

use std::os::unix::fs::PermissionsExt;

use crate::sandbox::{Sandbox, WEB};

#[test]
fn apply_issues_deploys_commits_and_second_run_has_nothing_to_do() {
    let sandbox = Sandbox::with_config(WEB);
    let first = sandbox.apply().expect(0);
    assert!(first.stdout.contains("+ create web"), "{}", first.stdout);
    assert!(first.stdout.contains("state committed"), "{}", first.stdout);

    sandbox.verify_deployed("out/web");
    let sans = sandbox.sans_of("out/web/cert.pem");
    assert!(
        sans.contains("DNS:www.example.test") && sans.contains("DNS:example.test"),
        "{sans}"
    );
    let fullchain = sandbox.read("out/web/fullchain.pem");
    assert_eq!(
        fullchain,
        format!(
            "{}{}",
            sandbox.read("out/web/cert.pem"),
            sandbox.read("out/web/chain.pem")
        )
    );

    let key = sandbox.path("out/web/privkey.pem");
    assert_eq!(
        std::fs::metadata(&key)
            .map(|m| m.permissions().mode() & 0o777)
            .ok(),
        Some(0o600)
    );
    let key_file = format!("web/{}.key", sandbox.state_field("web", "key_id"));
    let stored = sandbox.path(&format!("keys/{key_file}"));
    assert_eq!(
        std::fs::metadata(&stored)
            .map(|m| m.permissions().mode() & 0o777)
            .ok(),
        Some(0o600)
    );
    assert_eq!(
        std::fs::read(&stored).ok(),
        std::fs::read(&key).ok(),
        "deployed key is the stored key"
    );
    let keys_dir = std::fs::metadata(sandbox.path("keys")).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(keys_dir.ok(), Some(0o700));

    let second = sandbox.apply().expect(0);
    assert!(second.stdout.contains("No changes"), "{}", second.stdout);
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    let log = sandbox.git("state", &["log", "--format=%s"]);
    assert_eq!(
        log.lines().count(),
        1,
        "one commit per apply that changed something: {log}"
    );
    let message = sandbox.git("state", &["log", "-1", "--format=%B"]);
    assert!(message.contains("create web: serial"), "{message}");
    let files = sandbox.git("state", &["show", "--name-only", "--format=", "HEAD"]);
    let mut files: Vec<&str> = files.lines().collect();
    files.sort();
    assert_eq!(
        files,
        vec![
            "ca/local.pem",
            "certificates/web.pem",
            "certificates/web.toml"
        ]
    );
    assert_eq!(sandbox.orders_for("www.example.test"), 1);
}

#[test]
fn no_private_key_in_any_git_object() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let objects = sandbox.git("state", &["cat-file", "--batch-all-objects", "--batch"]);
    assert!(
        objects.contains("BEGIN CERTIFICATE"),
        "the scan sees the chain"
    );
    assert!(
        !objects.contains("PRIVATE KEY"),
        "a private key reached git"
    );
}

#[test]
fn plan_before_apply_reports_changes_and_writes_nothing() {
    let sandbox = Sandbox::with_config(WEB);
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("+ create web"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("Plan: 1 to create."),
        "{}",
        plan.stdout
    );
    assert!(
        !sandbox.path("state").exists(),
        "plan created the state repository"
    );
    assert!(!sandbox.path("keys").exists(), "plan created keys");
    assert!(!sandbox.path("out").exists(), "plan deployed");
    sandbox.certform(&["plan"]).expect(0);
}

#[test]
fn the_shipped_quickstart_example_applies() {
    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/certform.toml");
    let text = std::fs::read_to_string(source).expect("examples/quickstart/certform.toml");
    let sandbox = Sandbox::with_config(&text);
    let run = sandbox.apply().expect(0);
    assert!(
        run.stdout.contains("create api") && run.stdout.contains("create web"),
        "{}",
        run.stdout
    );
    sandbox.verify_deployed("out/web");
    let api = sandbox.path("out/api/api.key");
    assert!(api.exists(), "configured key file name is used");
    let (ok, text) = sandbox.openssl(&[
        "pkey",
        "-noout",
        "-text",
        "-in",
        api.to_str().unwrap_or_default(),
    ]);
    assert!(ok && text.contains("3072 bit"), "{text}");
    sandbox.apply().expect(0);
}

#[test]
fn json_plan_is_machine_readable() {
    let sandbox = Sandbox::with_config(WEB);
    let run = sandbox.certform(&["plan", "--format", "json"]).expect(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON plan");
    assert_eq!(plan["changes"][0]["action"]["action"], "create");
    assert_eq!(plan["changes"][0]["certificate"], "web");
}

#[test]
fn init_scaffolds_a_config_that_validates() {
    let sandbox = Sandbox::new();
    sandbox.certform(&["init"]).expect(0);
    let run = sandbox.certform(&["validate"]).expect(0);
    assert!(
        run.stdout.contains("configuration is valid"),
        "{}",
        run.stdout
    );
    let again = sandbox.certform(&["init"]).expect(1);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
}
