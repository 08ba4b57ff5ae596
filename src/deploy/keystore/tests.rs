use std::os::unix::fs::PermissionsExt;

use time::Duration;

use super::*;
use crate::config::SecretRef;
use crate::spec::{DeployTarget, Pkcs12Target};

fn target(dir: &Path, reload: Option<&str>) -> Pkcs12Target {
    Pkcs12Target {
        file: StoreFile {
            path: dir.join("tls/app.p12"),
            relative_path: None,
            alias: "web".to_string(),
            mode: 0o600,
            reload: reload.map(str::to_string),
            reload_timeout: Duration::seconds(10),
            cleanup: true,
            verify: None,
        },
        password: SecretRef::File(dir.join("password")),
        legacy: false,
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
}

async fn deploy(
    target: &Pkcs12Target,
    bundle: &Bundle,
    previous: Option<&DeployRecord>,
) -> DeployOutcome {
    let wrapped = DeployTarget::Pkcs12(target.clone());
    crate::deploy::deployer_for(&wrapped)
        .deploy(bundle, previous, &wrapped.digest(), now())
        .await
        .expect("deploy")
}

#[tokio::test]
async fn writes_once_then_only_on_drift_or_a_new_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("password"), "pw\n").expect("password");
    let target = target(dir.path(), Some("true"));
    let bundle = test_bundle();
    let path = dir.path().join("tls/app.p12");

    let first = deploy(&target, &bundle, None).await;
    assert_eq!(first.changed_files, vec!["app.p12".to_string()]);
    assert!(first.reload.as_ref().is_some_and(|r| r.success));
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o7777, 0o600);
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(first.record.files.get("app.p12"), Some(&sha256_hex(&bytes)));
    assert_eq!(first.record.paths, vec![path.clone()]);
    assert!(first.record.cleanup);
    assert_eq!(first.record.serial.as_deref(), Some("0a1b"));

    // Same inputs, file intact: nothing written, no reload.
    let second = deploy(&target, &bundle, Some(&first.record)).await;
    assert!(second.changed_files.is_empty());
    assert!(second.reload.is_none());
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
    assert_eq!(second.record.files, first.record.files);

    let wrapped = DeployTarget::Pkcs12(target.clone());
    let deployer = crate::deploy::deployer_for(&wrapped);
    assert_eq!(
        deployer.observe(Some(&first.record)),
        DeployObservation::InSync
    );
    // Changed on disk: drift, rewritten.
    std::fs::write(&path, b"tampered").expect("tamper");
    assert_eq!(
        deployer.observe(Some(&first.record)),
        DeployObservation::Changed(vec!["app.p12".to_string()])
    );
    let third = deploy(&target, &bundle, Some(&first.record)).await;
    assert_eq!(third.changed_files, vec!["app.p12".to_string()]);
    // Deleted: missing, rewritten.
    std::fs::remove_file(&path).expect("delete");
    assert_eq!(
        deployer.observe(Some(&third.record)),
        DeployObservation::Missing(vec!["app.p12".to_string()])
    );
    assert_eq!(
        deployer.observe(None),
        DeployObservation::Missing(vec!["app.p12".to_string()])
    );
    let fourth = deploy(&target, &bundle, Some(&third.record)).await;
    assert_eq!(fourth.changed_files, vec!["app.p12".to_string()]);
    // A new certificate: rewritten.
    let renewed = test_bundle();
    let fifth = deploy(&target, &renewed, Some(&fourth.record)).await;
    assert_eq!(fifth.changed_files, vec!["app.p12".to_string()]);
    assert_eq!(fifth.record.sha256_fingerprint, renewed.sha256_fingerprint);
}

#[tokio::test]
async fn a_failed_reload_is_retried_without_rewriting() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("password"), "pw").expect("password");
    let marker = dir.path().join("broken");
    std::fs::write(&marker, "").expect("marker");
    let target = target(dir.path(), Some(&format!("test ! -e {}", marker.display())));
    let bundle = test_bundle();
    let first = deploy(&target, &bundle, None).await;
    assert!(first.record.reload_error.is_some());
    std::fs::remove_file(&marker).expect("fix");
    let second = deploy(&target, &bundle, Some(&first.record)).await;
    assert!(second.changed_files.is_empty(), "content was current");
    assert!(second.reload.is_some_and(|r| r.success));
    assert_eq!(second.record.reload_error, None);
}

#[tokio::test]
async fn a_missing_password_fails_naming_the_variable_only() {
    let dir = tempfile::tempdir().expect("dir");
    let mut target = target(dir.path(), None);
    target.password = SecretRef::Env("CERTFORM_TEST_UNSET_P12_PASSWORD".to_string());
    let wrapped = DeployTarget::Pkcs12(target);
    let error = crate::deploy::deployer_for(&wrapped)
        .deploy(&test_bundle(), None, &wrapped.digest(), now())
        .await
        .expect_err("no password");
    let text = crate::apply::error_chain(&error);
    assert!(text.contains("CERTFORM_TEST_UNSET_P12_PASSWORD"), "{text}");
    assert!(!dir.path().join("tls/app.p12").exists());
}

#[test]
fn bundle_ders_wants_pkcs8_and_a_certificate() {
    let bundle = test_bundle();
    let (key, certificates) = bundle_ders(&bundle).expect("ders");
    assert!(!key.is_empty());
    assert_eq!(certificates.len(), 2);
    let sec1 = Bundle {
        key_pem: "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n".into(),
        ..bundle.clone()
    };
    let error = bundle_ders(&sec1).expect_err("sec1");
    assert!(error.contains("PKCS#8"), "{error}");
    assert!(!error.contains("AAAA"));
    let empty = Bundle {
        cert_pem: String::new(),
        chain_pem: String::new(),
        ..bundle
    };
    assert!(bundle_ders(&empty).is_err());
}
