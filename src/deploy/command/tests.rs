use time::Duration;

use super::*;
use crate::deploy::keystore::test_bundle;

fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
}

async fn run(command: &str, timeout: Duration, previous: Option<&DeployRecord>) -> DeployOutcome {
    run_with(&test_bundle(), command, timeout, previous).await
}

async fn run_with(
    bundle: &Bundle,
    command: &str,
    timeout: Duration,
    previous: Option<&DeployRecord>,
) -> DeployOutcome {
    let target = CommandTarget {
        command: command.to_string(),
        timeout,
        verify: None,
    };
    let wrapped = DeployTarget::Command(target);
    crate::deploy::deployer_for(&wrapped)
        .deploy(bundle, previous, &wrapped.digest(), now())
        .await
        .expect("deploy")
}

#[tokio::test]
async fn the_hook_gets_the_certificate_and_its_files_are_removed() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("log");
    let command = format!(
        "{{ echo \"$CERTFORM_NAME|$CERTFORM_SERIAL|$CERTFORM_NOT_AFTER|$CERTFORM_SANS\"; \
         echo \"$CERTFORM_KEY_PATH\"; stat -c %a \"$CERTFORM_KEY_PATH\" \"$(dirname \"$CERTFORM_KEY_PATH\")\"; \
         head -1 \"$CERTFORM_KEY_PATH\"; head -1 \"$CERTFORM_FULLCHAIN_PATH\"; \
         grep -c BEGIN \"$CERTFORM_FULLCHAIN_PATH\" \"$CERTFORM_CHAIN_PATH\" \"$CERTFORM_CERT_PATH\"; }} > {}",
        log.display()
    );
    let bundle = test_bundle();
    let outcome = run_with(&bundle, &command, Duration::seconds(30), None).await;
    assert!(
        outcome.reload.as_ref().is_some_and(|r| r.success),
        "{outcome:?}"
    );
    assert_eq!(outcome.record.reload_error, None);
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "web|0a1b|2026-03-01T00:00:00Z|a.example,b.example"
    );
    let key_path = std::path::Path::new(lines[1]);
    assert!(!key_path.exists(), "the key's copy is removed");
    assert!(
        !key_path.parent().expect("dir").exists(),
        "so is its directory"
    );
    assert_eq!(&lines[2..4], ["600", "700"]);
    assert_eq!(lines[4], "-----BEGIN PRIVATE KEY-----");
    assert_eq!(lines[5], "-----BEGIN CERTIFICATE-----");
    assert!(
        lines[6].ends_with(":2") && lines[7].ends_with(":1") && lines[8].ends_with(":1"),
        "{text}"
    );
    assert_eq!(outcome.record.serial.as_deref(), Some("0a1b"));

    // Same certificate, same command, no failure: not run again.
    std::fs::remove_file(&log).expect("rm");
    let again = run_with(
        &bundle,
        &command,
        Duration::seconds(30),
        Some(&outcome.record),
    )
    .await;
    assert!(again.reload.is_none());
    assert!(!log.exists());
}

#[tokio::test]
async fn a_failing_hook_is_recorded_and_runs_again() {
    let outcome = run("echo nope >&2; exit 4", Duration::seconds(30), None).await;
    let error = outcome
        .record
        .reload_error
        .clone()
        .expect("failure recorded");
    assert!(error.contains("command exited with status 4"), "{error}");
    assert!(outcome
        .reload
        .as_ref()
        .is_some_and(|r| r.output.contains("nope")));
    let again = run_with(
        &test_bundle(),
        "true",
        Duration::seconds(30),
        Some(&outcome.record),
    )
    .await;
    assert!(
        again.reload.is_some_and(|r| r.success),
        "failed last time: runs again"
    );
}

#[tokio::test]
async fn a_hung_hook_is_killed_with_its_children() {
    let dir = tempfile::tempdir().expect("dir");
    let pid_file = dir.path().join("pid");
    let command = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
    let started = std::time::Instant::now();
    let outcome = run(&command, Duration::milliseconds(500), None).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let error = outcome.record.reload_error.expect("timed out");
    assert!(
        error.contains("timed out") && error.contains("process group"),
        "{error}"
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("number");
    // The background child was in the hook's group: it is gone (or a zombie being reaped).
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false);
    assert!(!alive, "background child {pid} survived");
}

#[test]
fn observe_is_in_sync_once_it_ran() {
    let deployer = CommandDeployer::new(CommandTarget {
        command: "true".to_string(),
        timeout: Duration::seconds(1),
        verify: None,
    });
    assert_eq!(
        deployer.observe(None),
        DeployObservation::Missing(Vec::new())
    );
    assert_eq!(deployer.id(), "command:true");
}
