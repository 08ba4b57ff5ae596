//! The shared `verify` setting on every kind, and `Verifying` around a stand-in deployer with
//! an endpoint nothing listens on (the handshakes with real servers are in the CLI tests).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use time::Duration;

use super::*;
use crate::config::{load, Source};
use crate::spec::DeployTarget;

fn config_with(deploy: &str) -> Result<crate::config::Config, Vec<crate::config::Diagnostic>> {
    load(&[Source {
        path: PathBuf::from("/etc/certform/certform.toml"),
        text: format!(
            "[state]\nrepo = \"state\"\n\n[certificate.web]\ncommon_name = \"www.example.test\"\ndeploy = [{deploy}]\n"
        ),
    }])
}

#[test]
fn every_kind_takes_the_same_verify_setting() {
    let verify = "verify = { connect = \"web.example.test:8443\", timeout = \"3s\" }";
    let expected = VerifyEndpoint {
        connect: "web.example.test:8443".to_string(),
        sni: "web.example.test".to_string(),
        timeout: Duration::seconds(3),
    };
    for table in [
        "kind = \"files\", dir = \"out/web\"",
        "kind = \"pkcs12\", path = \"out/web.p12\", password = { env = \"P\" }",
        "kind = \"jks\", path = \"out/web.jks\", store_password = { env = \"P\" }",
        "kind = \"command\", command = \"true\"",
        "kind = \"ssh\", host = \"web\", known_hosts = \"k\", dir = \"/srv/tls\"",
    ] {
        let config = config_with(&format!("{{ {table}, {verify} }}"))
            .unwrap_or_else(|d| panic!("{table}: {d:?}"));
        let target = &config.certificates["web"].deploy[0];
        assert_eq!(target.verify(), Some(&expected), "{table}");
        let config = config_with(&format!("{{ {table} }}")).expect(table);
        assert_eq!(config.certificates["web"].deploy[0].verify(), None);
    }
}

#[test]
fn verify_on_a_local_target_keeps_the_digest_of_targets_without_it() {
    let with =
        config_with("{ kind = \"files\", dir = \"out/web\", verify = { connect = \"web:443\" } }")
            .expect("with");
    let without = config_with("{ kind = \"files\", dir = \"out/web\" }").expect("without");
    let digest = |config: &crate::config::Config| config.certificates["web"].deploy[0].digest();
    assert_ne!(digest(&with), digest(&without));
    let DeployTarget::Files(files) = &without.certificates["web"].deploy[0] else {
        panic!("files");
    };
    assert!(!serde_json::to_string(files).unwrap().contains("verify"));
}

#[test]
fn bad_verify_settings_are_reported_at_their_key_on_every_kind() {
    for table in [
        "kind = \"files\", dir = \"out/web\"",
        "kind = \"pkcs12\", path = \"out/web.p12\", password = { env = \"P\" }",
        "kind = \"command\", command = \"true\"",
    ] {
        for (verify, key, phrase) in [
            ("{ connect = \"web\" }", "verify.connect", "host:port"),
            ("{ connect = \"web:0\" }", "verify.connect", "1 to 65535"),
            (
                "{ connect = \"web:443\", sni = \"-x\" }",
                "verify.sni",
                "`-`",
            ),
            (
                "{ connect = \"web:443\", timeout = \"soon\" }",
                "verify.timeout",
                "",
            ),
        ] {
            let diagnostics =
                config_with(&format!("{{ {table}, verify = {verify} }}")).expect_err(verify);
            let wanted = format!("certificate.web.deploy[0].{key}");
            assert!(
                diagnostics
                    .iter()
                    .any(|d| d.key == wanted && d.message.contains(phrase)),
                "{table} {verify}: {diagnostics:?}"
            );
        }
    }
}

/// A deployer that records the previous record it was given and reports what it is told to.
struct StandIn {
    observed: DeployObservation,
    reload_error: Option<String>,
    given: Arc<Mutex<Vec<Option<DeployRecord>>>>,
}

#[async_trait]
impl Deployer for StandIn {
    fn id(&self) -> String {
        "files:out/web".to_string()
    }

    fn observe(&self, _record: Option<&DeployRecord>) -> DeployObservation {
        self.observed.clone()
    }

    async fn deploy(
        &self,
        bundle: &Bundle,
        previous: Option<&DeployRecord>,
        target_digest: &str,
        now: OffsetDateTime,
    ) -> Result<DeployOutcome, DeployError> {
        self.given
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(previous.cloned());
        Ok(DeployOutcome {
            record: record(
                &bundle.sha256_fingerprint,
                target_digest,
                now,
                self.reload_error.clone(),
            ),
            changed_files: Vec::new(),
            reload: None,
        })
    }
}

fn record(
    fingerprint: &str,
    digest: &str,
    now: OffsetDateTime,
    reload_error: Option<String>,
) -> DeployRecord {
    DeployRecord {
        sha256_fingerprint: fingerprint.to_string(),
        target_digest: digest.to_string(),
        files: Default::default(),
        deployed_at: now,
        reload_error,
        serial: None,
        verified: None,
        verify_error: None,
        paths: Vec::new(),
        cleanup: false,
        ssh: None,
    }
}

/// An endpoint on a port nothing listens on (bound, then released).
fn closed_endpoint() -> VerifyEndpoint {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("port")
        .port();
    VerifyEndpoint {
        connect: format!("127.0.0.1:{port}"),
        sni: "www.example.test".to_string(),
        timeout: Duration::milliseconds(300),
    }
}

fn bundle(fingerprint: &str) -> Bundle {
    Bundle {
        cert_pem: String::new(),
        chain_pem: String::new(),
        key_pem: String::new(),
        sha256_fingerprint: fingerprint.to_string(),
        name: "web".to_string(),
        serial: None,
        not_after: None,
        sans: Vec::new(),
    }
}

fn verifying(
    observed: DeployObservation,
    reload_error: Option<&str>,
) -> (Verifying, Arc<Mutex<Vec<Option<DeployRecord>>>>) {
    let given = Arc::new(Mutex::new(Vec::new()));
    let inner = StandIn {
        observed,
        reload_error: reload_error.map(str::to_string),
        given: Arc::clone(&given),
    };
    (Verifying::new(Box::new(inner), closed_endpoint()), given)
}

#[test]
fn observe_checks_the_endpoint_only_when_the_files_are_in_sync() {
    let now = OffsetDateTime::UNIX_EPOCH;
    let deployed = record("fp-a", "d", now, None);
    let (in_sync, _) = verifying(DeployObservation::InSync, None);
    match in_sync.observe(Some(&deployed)) {
        DeployObservation::Drift(drift) => {
            assert!(drift.contains("cannot be checked"), "{drift}");
            assert!(drift.starts_with("endpoint `127.0.0.1:"), "{drift}");
        }
        other => panic!("{other:?}"),
    }
    // Nothing deployed yet: nothing to compare the endpoint with.
    assert_eq!(in_sync.observe(None), DeployObservation::InSync);
    let missing = DeployObservation::Missing(vec!["cert.pem".to_string()]);
    let (changed, _) = verifying(missing.clone(), None);
    assert_eq!(changed.observe(Some(&deployed)), missing);
    assert_eq!(changed.id(), "files:out/web");
}

#[tokio::test]
async fn a_deploy_records_the_check_and_forces_the_reload_when_not_served() {
    let now = OffsetDateTime::UNIX_EPOCH;
    let (target, given) = verifying(DeployObservation::InSync, None);

    // A new certificate: the kind gets the previous record as it was; the check fails.
    let previous = record("fp-old", "d", now, None);
    let outcome = target
        .deploy(&bundle("fp-new"), Some(&previous), "d", now)
        .await
        .expect("deploy");
    assert_eq!(outcome.record.verified, Some(false));
    let error = outcome.record.verify_error.clone().expect("error");
    assert!(error.contains("cannot connect"), "{error}");
    assert_eq!(given.lock().unwrap()[0].as_ref(), Some(&previous));

    // The same certificate again after a failed check: the kind is told the last reload
    // did not take, so it reloads although no file changes.
    let _ = target
        .deploy(&bundle("fp-new"), Some(&outcome.record), "d", now)
        .await
        .expect("deploy");
    let forced = given.lock().unwrap()[1].clone().expect("previous");
    assert_eq!(forced.reload_error.as_deref(), Some(error.as_str()));
    assert_eq!(forced.sha256_fingerprint, "fp-new");

    // Same certificate, last check passed, but the endpoint serves nothing now: forced too.
    let served = DeployRecord {
        verified: Some(true),
        ..record("fp-new", "d", now, None)
    };
    let _ = target
        .deploy(&bundle("fp-new"), Some(&served), "d", now)
        .await
        .expect("deploy");
    let forced = given.lock().unwrap()[2].clone().expect("previous");
    assert!(
        forced
            .reload_error
            .as_deref()
            .is_some_and(|reason| reason.contains("cannot be checked")),
        "{forced:?}"
    );

    // No previous record: nothing to force.
    let _ = target
        .deploy(&bundle("fp-new"), None, "d", now)
        .await
        .expect("deploy");
    assert_eq!(given.lock().unwrap()[3], None);
}

#[tokio::test]
async fn a_failed_reload_is_reported_without_asking_the_endpoint() {
    let now = OffsetDateTime::UNIX_EPOCH;
    let (target, _) = verifying(
        DeployObservation::InSync,
        Some("reload command exited with status 1"),
    );
    let outcome = target
        .deploy(&bundle("fp-new"), None, "d", now)
        .await
        .expect("deploy");
    assert_eq!(outcome.record.verified, None);
    assert_eq!(outcome.record.verify_error, None);
    assert!(outcome.record.reload_error.is_some());
}

#[test]
fn a_check_names_what_is_served() {
    let endpoint = closed_endpoint();
    let started = std::time::Instant::now();
    let error = check(&endpoint, "fp-new", Some("fp-old")).expect_err("nothing listens");
    assert!(error.contains("cannot connect"), "{error}");
    // Tried until the timeout, not longer than a pause beyond it.
    assert!(
        started.elapsed() < StdDuration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// A TLS server on loopback presenting a fresh self-signed certificate for each handshake
/// it is asked to serve; returns its endpoint and the certificate's SHA-256 fingerprint.
fn tls_server() -> (VerifyEndpoint, String) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::KeyPair::generate().expect("key");
    let certificate = rcgen::CertificateParams::new(vec!["www.example.test".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let fingerprint = crate::keys::sha256_hex(certificate.der());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![certificate.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server config"),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    // Serves until the test binary ends; each connection ends after its handshake.
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            if let Ok(mut connection) = rustls::ServerConnection::new(Arc::clone(&config)) {
                while connection.is_handshaking() {
                    if connection.complete_io(&mut stream).is_err() {
                        break;
                    }
                }
                let _ = connection.complete_io(&mut stream);
            }
        }
    });
    let endpoint = VerifyEndpoint {
        connect: format!("127.0.0.1:{port}"),
        sni: "www.example.test".to_string(),
        timeout: Duration::milliseconds(500),
    };
    (endpoint, fingerprint)
}

#[test]
fn a_check_tells_the_old_certificate_from_another_one() {
    let (endpoint, served) = tls_server();
    assert_eq!(check(&endpoint, &served, None), Ok(()));
    assert_eq!(check(&endpoint, &served, Some("fp-old")), Ok(()));
    assert_eq!(drift(&endpoint, &served), None);

    let old = check(&endpoint, "fp-new", Some(&served)).expect_err("old served");
    assert!(
        old.starts_with(&format!(
            "endpoint `{}` still serves old serial ",
            endpoint.connect
        )),
        "{old}"
    );
    assert!(old.contains(&format!("(sha256 {served})")), "{old}");
    assert!(
        old.ends_with("not the deployed certificate (sha256 fp-new)"),
        "{old}"
    );

    let other = check(&endpoint, "fp-new", Some("fp-old")).expect_err("another served");
    assert!(other.contains("` serves serial "), "{other}");
    assert!(!other.contains("old"), "{other}");
    assert!(other.contains(&served), "{other}");

    let drifted = drift(&endpoint, "fp-new").expect("drift");
    assert!(
        drifted.starts_with(&format!(
            "endpoint `{}` still serves old serial ",
            endpoint.connect
        )),
        "{drifted}"
    );
}
