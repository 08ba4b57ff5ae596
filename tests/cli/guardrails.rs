//! Guardrails that follow the config: lifecycle settings recorded in state, `prevent_destroy`
//! tombstones, safety thresholds with `apply --force`, deploy ids relative to the config file.

use std::path::Path;
use std::process::Command;

use crate::sandbox::{Run, Sandbox, WEB};

const HEAD: &str = r#"
[state]
repo = "state"
keys_dir = "keys"

[ca.local]
kind = "local"
"#;

fn certificate(name: &str, extra: &str) -> String {
    format!(
        "\n[certificate.{name}]\ncommon_name = \"{name}.example.test\"\ndeploy = [{{ kind = \"files\", dir = \"out/{name}\" }}]\n{extra}"
    )
}

fn order_status(sandbox: &Sandbox, common_name: &str) -> String {
    sandbox
        .local_orders()
        .into_iter()
        .find(|o| o["common_name"] == common_name)
        .map(|o| o["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// The issue's regression: `on_remove = "revoke"` switched to `"forget"` + `prevent_destroy`
/// was never recorded, and removing the block then revoked the certificate.
#[test]
fn changed_settings_are_recorded_and_removal_follows_them() {
    let sandbox = Sandbox::with_config(&format!(
        "{HEAD}{}",
        certificate("web", "on_remove = \"revoke\"\n")
    ));
    sandbox.apply().expect(0);
    assert_eq!(sandbox.state_field("web", "on_remove"), "revoke");

    sandbox.write_config(&format!(
        "{HEAD}{}",
        certificate("web", "on_remove = \"forget\"\nprevent_destroy = true\n")
    ));
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    for line in [
        "~ update settings web (ca `local`)",
        "reason: `on_remove`, `prevent_destroy` changed; recorded in state (no CA call)",
        "- on_remove = revoke",
        "+ on_remove = forget",
        "- prevent_destroy = false",
        "+ prevent_destroy = true",
        "Plan: 1 to update settings.",
    ] {
        assert!(plan.stdout.contains(line), "{line}\n{}", plan.stdout);
    }
    let orders = sandbox.local_orders().len();
    let applied = sandbox.apply().expect(0);
    assert!(
        applied
            .stdout
            .contains("update settings web: recorded settings"),
        "{}",
        applied.stdout
    );
    assert_eq!(sandbox.local_orders().len(), orders, "no CA call");
    assert_eq!(sandbox.state_field("web", "on_remove"), "forget");
    assert_eq!(sandbox.state_field("web", "prevent_destroy"), "true");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    // Removed: a protected tombstone, no revocation, kept in state.
    sandbox.write_config(HEAD);
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    assert!(plan.stdout.contains("! blocked web"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("protected: removed from config")
            && plan.stdout.contains("`certform state rm web`"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("revoke web"), "{}", plan.stdout);
    sandbox.apply().expect(0);
    assert_eq!(order_status(&sandbox, "web.example.test"), "issued");
    assert!(sandbox.path("state/certificates/web.toml").exists());
    let status = sandbox.certform(&["status"]).expect(0);
    assert!(
        status
            .stdout
            .contains("protected by `prevent_destroy`: kept in state as a tombstone"),
        "{}",
        status.stdout
    );
}

#[test]
fn removal_revokes_with_the_recorded_reason() {
    let sandbox = Sandbox::with_config(&format!(
        "{HEAD}{}",
        certificate("web", "on_remove = \"revoke\"\n")
    ));
    sandbox.apply().expect(0);
    sandbox.write_config(&format!(
        "{HEAD}{}",
        certificate(
            "web",
            "on_remove = \"revoke\"\nrevoke_reason = \"superseded\"\n"
        )
    ));
    let run = sandbox.certform(&["validate"]).expect(0);
    assert!(!run.all().contains("revoke_reason"), "{}", run.all());
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    sandbox.apply().expect(0);
    assert_eq!(sandbox.state_field("web", "revoke_reason"), "superseded");
    sandbox.write_config(HEAD);
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(
        plan.stdout.contains("! revoke web") && plan.stdout.contains("reason superseded"),
        "{}",
        plan.stdout
    );
}

/// State files written before the settings were recorded keep working: missing fields are
/// the defaults, which match a config that sets none.
#[test]
fn old_state_files_without_the_settings_still_plan() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let path = sandbox.path("state/certificates/web.toml");
    let text = std::fs::read_to_string(&path).expect("state");
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("on_remove") && !l.starts_with("prevent_destroy"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(old, text);
    std::fs::write(&path, old).expect("write state");
    sandbox.git("state", &["commit", "-qam", "older state format"]);
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn too_many_destructive_actions_need_force() {
    let names = ["a", "b", "c"];
    let all: String = names
        .iter()
        .map(|n| certificate(n, "on_remove = \"revoke\"\n"))
        .collect();
    let defaults = "\n[defaults]\nmax_destructive = 1\n";
    let sandbox = Sandbox::with_config(&format!("{HEAD}{defaults}{all}"));
    sandbox.apply().expect(0);

    sandbox.write_config(&format!(
        "{HEAD}{defaults}{}",
        certificate("a", "on_remove = \"revoke\"\n")
    ));
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout.contains(
            "!! SAFETY THRESHOLD EXCEEDED: 2 destructive actions (revoke, cancel) exceed `max_destructive = 1`"
        ),
        "{}",
        plan.stdout
    );
    let refused = sandbox.apply().expect(1);
    assert!(
        refused
            .stderr
            .contains("error: the plan exceeds a safety threshold; nothing was changed"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(
            "caused by: 2 destructive actions (revoke, cancel) exceed `max_destructive = 1`"
        ),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("hint:") && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    for name in names {
        assert_eq!(
            order_status(&sandbox, &format!("{name}.example.test")),
            "issued"
        );
    }
    assert!(sandbox.path("state/certificates/b.toml").exists());

    sandbox
        .certform(&["apply", "--auto-approve", "--force"])
        .expect(0);
    assert_eq!(order_status(&sandbox, "b.example.test"), "revoked");
    assert_eq!(order_status(&sandbox, "c.example.test"), "revoked");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn reissuing_most_certificates_needs_force() {
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let config = |key: &str| {
        let all: String = names.iter().map(|n| certificate(n, "")).collect();
        format!("{HEAD}\n[defaults]\nkey = {{ algorithm = \"{key}\" }}\n{all}")
    };
    let sandbox = Sandbox::with_config(&config("ecdsa"));
    sandbox.apply().expect(0);
    sandbox.write_config(&config("ed25519"));
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(
        plan.stdout.contains(
            "!! SAFETY THRESHOLD EXCEEDED: 10 of 10 certificates reissued (100%) exceed `max_reissue_percent = 50`"
        ),
        "{}",
        plan.stdout
    );
    let serial = sandbox.state_field("c0", "serial");
    sandbox.apply().expect(1);
    assert_eq!(sandbox.state_field("c0", "serial"), serial);
    sandbox
        .certform(&["apply", "--auto-approve", "--force"])
        .expect(0);
    assert_ne!(sandbox.state_field("c0", "serial"), serial);
}

#[test]
fn invalid_thresholds_name_file_line_and_column() {
    let sandbox = Sandbox::with_config(&format!("{HEAD}\n[defaults]\nmax_reissue_percent = 150\n"));
    let run = sandbox.certform(&["validate"]).expect(1);
    assert!(
        run.all().contains("certform.toml:10:23")
            && run
                .all()
                .contains("`max_reissue_percent` must be from 0 to 100, not 150"),
        "{}",
        run.all()
    );
}

/// certform with `-c dir`, in `sandbox`'s hermetic environment but started in `dir`.
fn certform_in(sandbox: &Sandbox, dir: &Path, args: &[&str]) -> Run {
    let output = sandbox
        .hermetic(env!("CARGO_BIN_EXE_certform"))
        .current_dir(dir)
        .args(args)
        .arg("-c")
        .arg(dir)
        .output()
        .expect("run certform");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

/// The issue's regression: the same repository (config + state) checked out at another path
/// planned "no longer configured" for every deploy target.
#[test]
fn the_same_repository_at_another_path_plans_no_changes() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let deployments = sandbox.state_of("web")["deployments"]
        .as_table()
        .expect("deployments")
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(deployments, ["files:out/web"]);

    let elsewhere = sandbox.home.join("ci-runner-checkout");
    copy_tree(&sandbox.dir, &elsewhere);
    let plan = certform_in(&sandbox, &elsewhere, &["plan", "--detailed-exitcode"]).expect(0);
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
}

/// State an older certform wrote (deploy records keyed by absolute path, digest over the
/// absolute dir), planned from another checkout: migrated transparently, no changes, and the
/// next save writes the relative id.
#[test]
fn absolute_deploy_ids_from_an_older_state_are_migrated() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let old_dir = Path::new("/srv/first-checkout/out/web");
    let path = sandbox.path("state/certificates/web.toml");
    let mut state: toml::Table = std::fs::read_to_string(&path)
        .expect("state")
        .parse()
        .expect("toml");
    let deployments = state["deployments"].as_table_mut().expect("deployments");
    let mut record = deployments.remove("files:out/web").expect("record");
    let legacy = certform::spec::DeployTarget::Files(certform::spec::FilesTarget {
        dir: old_dir.to_path_buf(),
        relative_dir: None,
        cert: "cert.pem".into(),
        chain: "chain.pem".into(),
        fullchain: "fullchain.pem".into(),
        key: "privkey.pem".into(),
        mode: 0o644,
        key_mode: 0o600,
        owner: None,
        group: None,
        reload: None,
        reload_timeout: time::Duration::seconds(60),
        combined: None,
        cleanup: false,
        web_root: None,
        verify: None,
    });
    record["target_digest"] = legacy.digest().into();
    deployments.insert(format!("files:{}", old_dir.display()), record);
    std::fs::write(&path, toml::to_string(&state).expect("toml")).expect("write state");
    sandbox.git("state", &["commit", "-qam", "state of an older certform"]);

    let elsewhere = sandbox.home.join("second-checkout");
    copy_tree(&sandbox.dir, &elsewhere);
    let plan = certform_in(&sandbox, &elsewhere, &["plan", "--detailed-exitcode"]).expect(0);
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);

    // Changing a setting writes the record under its relative id.
    let config = std::fs::read_to_string(elsewhere.join("certform.toml")).expect("config");
    std::fs::write(
        elsewhere.join("certform.toml"),
        format!("{config}prevent_destroy = true\n"),
    )
    .expect("config");
    certform_in(&sandbox, &elsewhere, &["apply", "--auto-approve"]).expect(0);
    let written =
        std::fs::read_to_string(elsewhere.join("state/certificates/web.toml")).expect("state");
    assert!(
        written.contains("[deployments.\"files:out/web\"]"),
        "{written}"
    );
    assert!(!written.contains("/srv/first-checkout"), "{written}");
}
