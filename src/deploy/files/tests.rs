//! Tests of the `files` deploy target: writes, modes and owners, reloads, interrupted switches.

use std::time::Instant;

use time::Duration;

use super::owner::{lookup_group, lookup_user};
use super::reload::TRUNCATED;
use super::*;

fn target(dir: &Path, reload: Option<&str>) -> FilesTarget {
    FilesTarget {
        dir: dir.to_path_buf(),
        relative_dir: None,
        cert: "cert.pem".to_string(),
        chain: "chain.pem".to_string(),
        fullchain: "fullchain.pem".to_string(),
        key: "key.pem".to_string(),
        mode: 0o644,
        key_mode: 0o600,
        owner: None,
        group: None,
        reload: reload.map(str::to_string),
        reload_timeout: Duration::seconds(10),
        combined: None,
        cleanup: false,
        web_root: None,
        verify: None,
    }
}

fn bundle(serial: &str) -> Bundle {
    Bundle {
        cert_pem: format!("-----BEGIN CERTIFICATE-----\n{serial}\n-----END CERTIFICATE-----\n"),
        chain_pem: "-----BEGIN CERTIFICATE-----\nINTERMEDIATE\n-----END CERTIFICATE-----\n"
            .to_string(),
        key_pem: "-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n".to_string(),
        sha256_fingerprint: format!("fp-{serial}"),
        name: "web".to_string(),
        serial: Some(serial.to_string()),
        not_after: None,
        sans: vec!["a.example".to_string()],
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn count_lines(path: &Path) -> usize {
    fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test]
async fn first_deploy_writes_four_files_then_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls/site");
    let log = dir.path().join("reloads.log");
    let reload = format!("echo reloaded >> {}", log.display());
    let deployer = FilesDeployer::new(target(&out, Some(&reload)));
    assert_eq!(deployer.id(), format!("files:{}", out.display()));

    let first = deployer
        .deploy(&bundle("ONE"), None, "digest", now())
        .await
        .unwrap();
    assert_eq!(
        first.changed_files,
        vec!["cert.pem", "chain.pem", "fullchain.pem", "key.pem"]
    );
    assert_eq!(mode(&out.join("cert.pem")), 0o644);
    assert_eq!(mode(&out.join("chain.pem")), 0o644);
    assert_eq!(mode(&out.join("fullchain.pem")), 0o644);
    assert_eq!(mode(&out.join("key.pem")), 0o600);
    let fullchain = fs::read_to_string(out.join("fullchain.pem")).unwrap();
    assert!(fullchain.contains("ONE") && fullchain.contains("INTERMEDIATE"));
    let report = first.reload.as_ref().unwrap();
    assert!(report.success);
    assert_eq!(first.record.reload_error, None);
    assert_eq!(first.record.files.len(), 4);
    assert_eq!(
        first.record.files["key.pem"],
        sha256_hex(fs::read(out.join("key.pem")).unwrap().as_slice())
    );
    assert_eq!(first.record.target_digest, "digest");
    assert_eq!(first.record.deployed_at, now());
    assert_eq!(first.record.sha256_fingerprint, "fp-ONE");
    assert_eq!(count_lines(&log), 1);
    assert_eq!(
        deployer.observe(Some(&first.record)),
        DeployObservation::InSync
    );

    let second = deployer
        .deploy(&bundle("ONE"), Some(&first.record), "digest", now())
        .await
        .unwrap();
    assert!(second.changed_files.is_empty());
    assert!(second.reload.is_none());
    assert_eq!(count_lines(&log), 1, "no reload without changes");
}

#[tokio::test]
async fn changed_cert_rewrites_only_changed_files_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let deployer = FilesDeployer::new(target(dir.path(), Some("true")));
    let first = deployer
        .deploy(&bundle("ONE"), None, "d", now())
        .await
        .unwrap();
    let key_inode = fs::metadata(dir.path().join("key.pem")).unwrap().ino();
    let chain_inode = fs::metadata(dir.path().join("chain.pem")).unwrap().ino();
    let second = deployer
        .deploy(&bundle("TWO"), Some(&first.record), "d", now())
        .await
        .unwrap();
    assert_eq!(second.changed_files, vec!["cert.pem", "fullchain.pem"]);
    assert!(second.reload.as_ref().unwrap().success);
    assert_eq!(
        fs::metadata(dir.path().join("key.pem")).unwrap().ino(),
        key_inode
    );
    assert_eq!(
        fs::metadata(dir.path().join("chain.pem")).unwrap().ino(),
        chain_inode
    );
}

#[tokio::test]
async fn failed_reload_is_recorded_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let flag = dir.path().join("fail");
    fs::write(&flag, "").unwrap();
    let command = format!(
        "echo to-stdout; echo to-stderr >&2; test ! -e {}",
        flag.display()
    );
    let deployer = FilesDeployer::new(target(&out, Some(&command)));

    let first = deployer
        .deploy(&bundle("ONE"), None, "d", now())
        .await
        .unwrap();
    let report = first.reload.as_ref().unwrap();
    assert!(!report.success);
    assert_eq!(report.output, "to-stdout\nto-stderr\n");
    let error = first.record.reload_error.clone().unwrap();
    assert!(error.contains("status 1"), "{error}");

    // Nothing changed, but the last reload failed: it runs again.
    fs::remove_file(&flag).unwrap();
    let second = deployer
        .deploy(&bundle("ONE"), Some(&first.record), "d", now())
        .await
        .unwrap();
    assert!(second.changed_files.is_empty());
    assert!(second.reload.as_ref().unwrap().success);
    assert_eq!(second.record.reload_error, None);

    let third = deployer
        .deploy(&bundle("ONE"), Some(&second.record), "d", now())
        .await
        .unwrap();
    assert!(third.reload.is_none());
}

#[tokio::test]
async fn files_already_in_place_after_a_crash_still_reload() {
    let dir = tempfile::tempdir().unwrap();
    let deployer = FilesDeployer::new(target(dir.path(), Some("true")));
    let old = deployer
        .deploy(&bundle("ONE"), None, "d", now())
        .await
        .unwrap();
    // A run wrote TWO and died before recording it.
    deployer
        .deploy(&bundle("TWO"), Some(&old.record), "d", now())
        .await
        .unwrap();
    let again = deployer
        .deploy(&bundle("TWO"), Some(&old.record), "d", now())
        .await
        .unwrap();
    assert!(again.changed_files.is_empty());
    assert!(
        again.reload.is_some(),
        "the record says ONE is live, so reload"
    );
}

#[tokio::test]
async fn reload_timeout_kills_the_process_group_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = target(dir.path(), Some("echo started; sleep 5 & sleep 5"));
    files.reload_timeout = Duration::milliseconds(200);
    let deployer = FilesDeployer::new(files);
    let started = Instant::now();
    let outcome = deployer
        .deploy(&bundle("ONE"), None, "d", now())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed < StdDuration::from_secs(2), "took {elapsed:?}");
    let report = outcome.reload.unwrap();
    assert!(!report.success);
    assert_eq!(report.output, "started\n");
    let error = outcome.record.reload_error.unwrap();
    assert!(error.contains("timed out after 200ms"), "{error}");
}

#[tokio::test]
async fn long_output_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let deployer = FilesDeployer::new(target(
        dir.path(),
        Some("i=0; while [ $i -lt 2000 ]; do echo 'output line'; i=$((i+1)); done; echo err >&2"),
    ));
    let outcome = deployer
        .deploy(&bundle("ONE"), None, "d", now())
        .await
        .unwrap();
    let report = outcome.reload.unwrap();
    assert!(report.success);
    assert!(report.output.len() <= RELOAD_OUTPUT_LIMIT);
    assert!(report.output.ends_with(TRUNCATED));
}

#[tokio::test]
async fn observe_detects_modified_and_deleted_files() {
    let dir = tempfile::tempdir().unwrap();
    let deployer = FilesDeployer::new(target(dir.path(), None));
    assert_eq!(
        deployer.observe(None),
        DeployObservation::Missing(vec![
            "cert.pem".to_string(),
            "chain.pem".to_string(),
            "fullchain.pem".to_string(),
            "key.pem".to_string()
        ])
    );
    let outcome = deployer
        .deploy(&bundle("ONE"), None, "d", now())
        .await
        .unwrap();
    assert!(outcome.reload.is_none());
    let record = outcome.record;
    assert_eq!(deployer.observe(Some(&record)), DeployObservation::InSync);

    fs::write(dir.path().join("chain.pem"), "tampered").unwrap();
    assert_eq!(
        deployer.observe(Some(&record)),
        DeployObservation::Changed(vec!["chain.pem".to_string()])
    );
    fs::remove_file(dir.path().join("key.pem")).unwrap();
    assert_eq!(
        deployer.observe(Some(&record)),
        DeployObservation::Missing(vec!["key.pem".to_string()])
    );

    // Deploying again repairs exactly those files.
    let repaired = deployer
        .deploy(&bundle("ONE"), Some(&record), "d", now())
        .await
        .unwrap();
    assert_eq!(repaired.changed_files, vec!["chain.pem", "key.pem"]);
    assert_eq!(
        deployer.observe(Some(&repaired.record)),
        DeployObservation::InSync
    );
}

/// Stage `bundle` and write its journal as a run would, then rename only the first
/// `renamed` files: the state a kill between renames leaves.
fn interrupted_switch(deployer: &FilesDeployer, bundle: &Bundle, renamed: usize) {
    let contents = deployer.contents(bundle).unwrap();
    for file in &contents {
        deployer.stage(file, None, None).unwrap();
    }
    let journal = Journal {
        files: contents
            .iter()
            .map(|file| JournalEntry {
                name: file.name.to_string(),
                sha256: sha256_hex(file.content.as_bytes()),
            })
            .collect(),
    };
    fs::write(
        deployer.journal_path(),
        serde_json::to_vec(&journal).unwrap(),
    )
    .unwrap();
    for file in contents.iter().take(renamed) {
        fs::rename(staged_path(&file.path), &file.path).unwrap();
    }
}

#[tokio::test]
async fn a_switch_killed_between_renames_is_rolled_forward() {
    for renamed in 0..=4 {
        let dir = tempfile::tempdir().unwrap();
        let deployer = FilesDeployer::new(target(dir.path(), None));
        let first = deployer
            .deploy(&bundle("ONE"), None, "d", now())
            .await
            .unwrap();
        let mut two = bundle("TWO");
        two.key_pem = two.key_pem.replace("SECRET", "SECRET-TWO");
        interrupted_switch(&deployer, &two, renamed);
        let observed = deployer.observe(Some(&first.record));
        assert!(
            matches!(&observed, DeployObservation::Interrupted(files) if files.len() == 4),
            "{renamed}: {observed:?}"
        );

        let switched = deployer.recover().unwrap();
        assert_eq!(switched.len(), 4 - renamed, "{renamed}");
        assert!(!deployer.journal_path().exists());
        for name in ["cert.pem", "fullchain.pem"] {
            assert!(fs::read_to_string(dir.path().join(name))
                .unwrap()
                .contains("TWO"));
        }
        assert!(fs::read_to_string(dir.path().join("key.pem"))
            .unwrap()
            .contains("SECRET-TWO"));
        assert_eq!(mode(&dir.path().join("key.pem")), 0o600);
        let leftovers: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert!(deployer.recover().unwrap().is_empty(), "nothing left to do");
    }
}

#[tokio::test]
async fn staged_files_without_a_journal_are_dropped_and_old_files_kept() {
    let dir = tempfile::tempdir().unwrap();
    let deployer = FilesDeployer::new(target(dir.path(), None));
    let first = deployer
        .deploy(&bundle("ONE"), None, "d", now())
        .await
        .unwrap();
    // Killed while staging: no journal yet.
    for file in deployer.contents(&bundle("TWO")).unwrap() {
        deployer.stage(&file, None, None).unwrap();
    }
    assert_eq!(
        deployer.observe(Some(&first.record)),
        DeployObservation::InSync
    );
    assert!(deployer.recover().unwrap().is_empty());
    assert!(!staged_path(&dir.path().join("key.pem")).exists());
    assert!(fs::read_to_string(dir.path().join("cert.pem"))
        .unwrap()
        .contains("ONE"));
}

#[tokio::test]
async fn deploy_finishes_an_interrupted_switch_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let deployer = FilesDeployer::new(target(dir.path(), Some("true")));
    let first = deployer
        .deploy(&bundle("ONE"), None, "d", now())
        .await
        .unwrap();
    interrupted_switch(&deployer, &bundle("TWO"), 1);
    let again = deployer
        .deploy(&bundle("TWO"), Some(&first.record), "d", now())
        .await
        .unwrap();
    assert!(again.changed_files.is_empty(), "{:?}", again.changed_files);
    assert!(
        again.reload.is_some(),
        "the switched files were never reloaded"
    );
    assert_eq!(
        deployer.observe(Some(&again.record)),
        DeployObservation::InSync
    );
}

#[test]
fn targets_sharing_a_directory_keep_separate_journals() {
    let dir = tempfile::tempdir().unwrap();
    let first = FilesDeployer::new(target(dir.path(), None));
    let mut other = target(dir.path(), None);
    other.cert = "b-cert.pem".into();
    other.chain = "b-chain.pem".into();
    other.fullchain = "b-fullchain.pem".into();
    other.key = "b-key.pem".into();
    let second = FilesDeployer::new(other);
    assert_ne!(first.journal_path(), second.journal_path());
    assert_eq!(first.journal_path().parent(), Some(dir.path()));
}

#[tokio::test]
async fn wrong_mode_is_fixed_without_rewriting() {
    let dir = tempfile::tempdir().unwrap();
    let deployer = FilesDeployer::new(target(dir.path(), None));
    let first = deployer
        .deploy(&bundle("ONE"), None, "d", now())
        .await
        .unwrap();
    fs::set_permissions(
        dir.path().join("key.pem"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let again = deployer
        .deploy(&bundle("ONE"), Some(&first.record), "d", now())
        .await
        .unwrap();
    assert!(again.changed_files.is_empty());
    assert_eq!(mode(&dir.path().join("key.pem")), 0o600);
}

#[tokio::test]
async fn owner_and_group_are_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = fs::metadata(dir.path()).unwrap();
    let mut files = target(dir.path(), None);
    files.owner = Some(metadata.uid().to_string());
    files.group = Some(metadata.gid().to_string());
    let deployer = FilesDeployer::new(files.clone());
    deployer
        .deploy(&bundle("ONE"), None, "d", now())
        .await
        .unwrap();
    assert_eq!(
        fs::metadata(dir.path().join("key.pem")).unwrap().uid(),
        metadata.uid()
    );

    files.owner = Some("no-such-user-certform".to_string());
    let error = FilesDeployer::new(files.clone())
        .deploy(&bundle("TWO"), None, "d", now())
        .await
        .unwrap_err();
    assert!(matches!(error, DeployError::UnknownUser { .. }));
    assert!(
        error.to_string().contains("no-such-user-certform"),
        "{error}"
    );
    assert!(
        fs::read_to_string(dir.path().join("cert.pem"))
            .unwrap()
            .contains("ONE"),
        "nothing written when the owner is unknown"
    );

    files.owner = None;
    files.group = Some("no-such-group-certform".to_string());
    let error = FilesDeployer::new(files)
        .deploy(&bundle("TWO"), None, "d", now())
        .await
        .unwrap_err();
    assert!(matches!(error, DeployError::UnknownGroup { .. }));

    assert_eq!(lookup_user("root").unwrap(), Some(0));
    assert_eq!(lookup_group("root").unwrap(), Some(0));
    assert_eq!(lookup_user("no-such-user-certform").unwrap(), None);
}

#[tokio::test]
async fn bad_names_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = target(dir.path(), None);
    files.fullchain = "cert.pem".to_string();
    let error = FilesDeployer::new(files)
        .deploy(&bundle("ONE"), None, "d", now())
        .await
        .unwrap_err();
    assert!(
        matches!(error, DeployError::DuplicateFile { .. }),
        "{error}"
    );

    let mut files = target(dir.path(), None);
    files.key = "../key.pem".to_string();
    let error = FilesDeployer::new(files)
        .deploy(&bundle("ONE"), None, "d", now())
        .await
        .unwrap_err();
    assert!(
        matches!(error, DeployError::InvalidFileName { .. }),
        "{error}"
    );
}

#[test]
fn bundle_debug_hides_the_key() {
    let text = format!("{:?}", bundle("ONE"));
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("***"));
}

#[test]
fn deployer_for_files_target() {
    let files = target(Path::new("/srv/tls"), None);
    let deployer = crate::deploy::deployer_for(&DeployTarget::Files(files));
    assert_eq!(deployer.id(), "files:/srv/tls");
}

#[tokio::test]
async fn combined_is_key_then_fullchain_with_the_key_mode_and_receipt_lists_keys_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("haproxy");
    let mut files = target(&out, None);
    files.combined = Some("site.pem".to_string());
    files.key_mode = 0o640;
    files.cleanup = true;
    let deployer = FilesDeployer::new(files);
    let first = deployer
        .deploy(&bundle("ONE"), None, "digest", now())
        .await
        .unwrap();
    assert_eq!(
        first.changed_files,
        vec![
            "cert.pem",
            "chain.pem",
            "fullchain.pem",
            "site.pem",
            "key.pem"
        ]
    );
    let combined = fs::read_to_string(out.join("site.pem")).unwrap();
    let key = fs::read_to_string(out.join("key.pem")).unwrap();
    let fullchain = fs::read_to_string(out.join("fullchain.pem")).unwrap();
    assert_eq!(combined, format!("{key}{fullchain}"));
    assert_eq!(mode(&out.join("site.pem")), 0o640);
    assert_eq!(first.record.files.len(), 5);
    assert_eq!(
        first.record.paths,
        [
            "key.pem",
            "site.pem",
            "cert.pem",
            "chain.pem",
            "fullchain.pem"
        ]
        .map(|name| out.join(name))
    );
    assert!(first.record.cleanup);
    assert_eq!(first.record.serial.as_deref(), Some("ONE"));

    fs::remove_file(out.join("site.pem")).unwrap();
    assert_eq!(
        deployer.observe(Some(&first.record)),
        DeployObservation::Missing(vec!["site.pem".to_string()])
    );
    let again = deployer
        .deploy(&bundle("ONE"), Some(&first.record), "digest", now())
        .await
        .unwrap();
    assert_eq!(again.changed_files, vec!["site.pem"]);
}

#[test]
fn without_combined_the_journal_and_digest_are_those_of_older_versions() {
    // `combined` and `cleanup` unset are left out of the serialised target: the digest of an
    // existing target, and so its deploy record, stays valid after the upgrade.
    let files = target(Path::new("/srv/tls"), None);
    let text = serde_json::to_string(&DeployTarget::Files(files.clone())).unwrap();
    assert!(
        !text.contains("combined") && !text.contains("cleanup"),
        "{text}"
    );
    let mut combined = files;
    combined.combined = Some("all.pem".to_string());
    assert_ne!(
        DeployTarget::Files(combined).digest(),
        DeployTarget::Files(target(Path::new("/srv/tls"), None)).digest()
    );
}
