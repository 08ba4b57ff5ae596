//! The `files` deploy target through the CLI: drift, reloads, failures.

use crate::sandbox::{Sandbox, WEB};

#[test]
fn a_deployed_file_changed_on_disk_is_drift_and_is_restored() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let original = sandbox.read("out/web/cert.pem");
    std::fs::write(sandbox.path("out/web/cert.pem"), "tampered\n").expect("tamper");
    std::fs::remove_file(sandbox.path("out/web/chain.pem")).expect("delete");
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("deploy web"), "{}", plan.stdout);
    assert!(plan.stdout.contains("drift"), "{}", plan.stdout);
    sandbox.apply().expect(0);
    assert_eq!(sandbox.read("out/web/cert.pem"), original);
    sandbox.verify_deployed("out/web");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn reload_runs_only_when_files_change() {
    let config = WEB.replace(
        "dir = \"out/web\" }",
        "dir = \"out/web\", reload = \"echo reloaded >> reloads.log\" }",
    );
    let sandbox = Sandbox::with_config(&config);
    sandbox.apply().expect(0);
    assert_eq!(sandbox.read("reloads.log").lines().count(), 1);
    sandbox.apply().expect(0);
    assert_eq!(sandbox.read("reloads.log").lines().count(), 1);
}

#[test]
fn failed_reload_exits_3_and_is_retried_next_run() {
    let config = format!(
        "{}\n[certificate.other]\ncommon_name = \"other.example.test\"\ndeploy = [{{ kind = \"files\", dir = \"out/other\" }}]\n",
        WEB.replace(
            "dir = \"out/web\" }",
            "dir = \"out/web\", reload = \"test ! -e broken && echo ok >> reloads.log\" }",
        )
    );
    let sandbox = Sandbox::with_config(&config);
    std::fs::write(sandbox.path("broken"), "").expect("marker");
    let run = sandbox.apply().expect(3);
    assert!(run.all().contains("reload"), "{}", run.all());
    assert!(
        sandbox.path("out/other/cert.pem").exists(),
        "independent certificate still applied"
    );
    let committed = sandbox.git("state", &["log", "-1", "--format=%B"]);
    assert!(committed.contains("FAILED"), "{committed}");

    std::fs::remove_file(sandbox.path("broken")).expect("fix");
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(
        plan.stdout.contains("reload failed last run"),
        "{}",
        plan.stdout
    );
    sandbox.apply().expect(0);
    assert_eq!(sandbox.read("reloads.log").lines().count(), 1);
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn reload_timeout_is_reported() {
    let config = WEB.replace(
        "dir = \"out/web\" }",
        "dir = \"out/web\", reload = \"sleep 120\", reload_timeout = \"1s\" }",
    );
    let sandbox = Sandbox::with_config(&config);
    let started = std::time::Instant::now();
    let run = sandbox.apply().expect(3);
    assert!(
        // The hook sleeps 120 s; the bound leaves room for a loaded machine.
        started.elapsed() < std::time::Duration::from_secs(60),
        "timeout not enforced"
    );
    assert!(run.all().contains("reload"), "{}", run.all());
}
