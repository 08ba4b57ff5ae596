//! ACME end to end through the CLI against the real Pebble: HTTP-01 with the built-in
//! responder, DNS-01 through RFC 2136 on a real BIND (wildcard, and a certificate whose names
//! are split across both methods), renewal of short-lived certificates, and revocation.

use std::path::Path;

use crate::bind::{Bind, ZoneSpec};
use crate::pebble::{Pebble, PebbleOptions};
use crate::sandbox::Sandbox;

/// The port Pebble validates HTTP-01 on, released by the harness for certform's responder.
pub(crate) fn http_port(pebble: &Pebble) -> u16 {
    drop(pebble.take_http_listener());
    pebble.http_port()
}

pub(crate) fn acme_account(pebble: &Pebble) -> String {
    format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.pebble]\nkind = \"acme\"\ndirectory = \"{}\"\ncontact = [\"ops@example.test\"]\nca_bundle = \"{}\"\n",
        pebble.directory_url(),
        pebble.ca_bundle().display()
    )
}

/// Verify a deployed chain against Pebble's issuing root.
#[track_caller]
pub(crate) fn verify_with_pebble(sandbox: &Sandbox, pebble: &Pebble, out: &str) {
    let (root, _) = pebble.issuing_roots();
    let root_file = sandbox.path("pebble-root.pem");
    std::fs::write(&root_file, root).expect("write root");
    let chain = sandbox.path(&format!("{out}/chain.pem"));
    let cert = sandbox.path(&format!("{out}/cert.pem"));
    let (ok, text) = sandbox.openssl(&[
        "verify",
        "-CAfile",
        root_file.to_str().unwrap_or_default(),
        "-untrusted",
        chain.to_str().unwrap_or_default(),
        cert.to_str().unwrap_or_default(),
    ]);
    assert!(ok && text.contains(": OK"), "openssl verify failed: {text}");
}

fn serial_of(sandbox: &Sandbox, cert: &str) -> String {
    let path = sandbox.path(cert);
    let (ok, text) = sandbox.openssl(&[
        "x509",
        "-noout",
        "-serial",
        "-in",
        path.to_str().unwrap_or_default(),
    ]);
    assert!(ok, "{text}");
    text.trim().trim_start_matches("serial=").to_lowercase()
}

#[test]
fn http_01_with_the_built_in_responder_then_revocation() {
    let pebble = Pebble::start();
    let config = format!(
        "{}\n[certificate.web]\ncommon_name = \"www.example.test\"\nsans = [\"example.test\"]\ndcv = {{ method = \"http\", listen = \"127.0.0.1:{}\" }}\ndeploy = [{{ kind = \"files\", dir = \"out/web\" }}]\n",
        acme_account(&pebble),
        http_port(&pebble)
    );
    let sandbox = Sandbox::with_config(&config);
    let run = sandbox.apply().expect(0);
    assert!(run.stdout.contains("create web"), "{}", run.stdout);
    verify_with_pebble(&sandbox, &pebble, "out/web");
    assert!(sandbox
        .sans_of("out/web/cert.pem")
        .contains("DNS:example.test"));
    sandbox.apply().expect(0);
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    assert!(
        sandbox.path("keys/acme/pebble/account.json").exists(),
        "the account is kept in keys_dir"
    );

    let serial = serial_of(&sandbox, "out/web/cert.pem");
    sandbox.write_config(&format!(
        "{config}revoke = true\nrevoke_reason = \"superseded\"\n"
    ));
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(plan.stdout.contains("! revoke web"), "{}", plan.stdout);
    sandbox.apply().expect(0);
    let status = pebble.cert_status(&serial);
    assert!(status.contains("Revoked"), "{status}");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn dns_01_through_rfc2136_on_bind_for_a_wildcard_and_split_methods() {
    let bind = Bind::start(&[ZoneSpec::new("example.test")
        .record("www IN A 127.0.0.1")
        .record("_acme-challenge.www IN TXT \"someone else's value\"")]);
    let pebble = Pebble::start_with(PebbleOptions {
        dns_server: Some(bind.addr),
        ..PebbleOptions::default()
    });
    let secret_file = bind.dir.path().join("tsig.secret");
    std::fs::write(&secret_file, bind.secret(&bind.key_name)).expect("secret file");
    let config = format!(
        "{account}\n[dns.bind]\nkind = \"rfc2136\"\nserver = \"{server}\"\nkey_name = \"{key}\"\nsecret = {{ file = \"{secret}\" }}\n\n\
[certificate.wild]\ncommon_name = \"*.example.test\"\ndcv = {{ method = \"dns\", provider = \"bind\" }}\ndeploy = [{{ kind = \"files\", dir = \"out/wild\" }}]\n\n\
[certificate.split]\ncommon_name = \"www.example.test\"\nsans = [\"*.www.example.test\"]\n\
dcv = [{{ names = [\"*.www.example.test\"], method = \"dns\", provider = \"bind\" }}, {{ names = [\"www.example.test\"], method = \"http\", listen = \"127.0.0.1:{http}\" }}]\n\
deploy = [{{ kind = \"files\", dir = \"out/split\" }}]\n",
        account = acme_account(&pebble),
        server = bind.addr,
        key = bind.key_name,
        secret = secret_file.display(),
        http = http_port(&pebble),
    );
    let sandbox = Sandbox::with_config(&config);
    let run = sandbox.apply().expect(0);
    assert!(
        !run.all().contains(bind.secret(&bind.key_name)),
        "TSIG secret printed"
    );
    verify_with_pebble(&sandbox, &pebble, "out/wild");
    verify_with_pebble(&sandbox, &pebble, "out/split");
    assert!(sandbox
        .sans_of("out/wild/cert.pem")
        .contains("DNS:*.example.test"));
    let split = sandbox.sans_of("out/split/cert.pem");
    assert!(
        split.contains("DNS:www.example.test") && split.contains("DNS:*.www.example.test"),
        "{split}"
    );

    // Only certform's values are removed: the pre-existing TXT value stays.
    assert_eq!(
        bind.dig("_acme-challenge.www.example.test", "TXT"),
        vec!["\"someone else's value\"".to_string()]
    );
    assert!(bind.dig("_acme-challenge.example.test", "TXT").is_empty());
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn short_lived_certificates_are_renewed_when_due() {
    let pebble = Pebble::start_with(PebbleOptions {
        validity_seconds: Some(10 * 86_400),
        ..PebbleOptions::default()
    });
    let config = format!(
        "{}\n[certificate.web]\ncommon_name = \"www.example.test\"\nrenew_before = \"33%\"\ndcv = {{ method = \"http\", listen = \"127.0.0.1:{}\" }}\ndeploy = [{{ kind = \"files\", dir = \"out/web\" }}]\n",
        acme_account(&pebble),
        http_port(&pebble)
    );
    let sandbox = Sandbox::with_config(&config);
    sandbox.apply().expect(0);
    let first = serial_of(&sandbox, "out/web/cert.pem");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(8))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    let env = [("CERTFORM_NOW", later.as_str())];
    let plan = sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(2);
    assert!(plan.stdout.contains("renew web"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("33% of the lifetime"),
        "{}",
        plan.stdout
    );
    sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert_ne!(serial_of(&sandbox, "out/web/cert.pem"), first);
    verify_with_pebble(&sandbox, &pebble, "out/web");
    // Pebble issues from the real clock: the new certificate is fresh now.
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn acme_example_config_validates() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/acme-pebble");
    let sandbox = Sandbox::new();
    for entry in std::fs::read_dir(&example)
        .expect("examples/acme-pebble")
        .flatten()
    {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) == Some("toml") {
            let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
            std::fs::copy(&path, sandbox.dir.join(name)).expect("copy");
        }
    }
    sandbox.certform(&["validate"]).expect(0);
}

/// A static file server for a webroot (Python's `http.server`), killed on drop.
pub(crate) struct StaticServer(std::process::Child);

impl StaticServer {
    pub(crate) fn start(root: &Path, port: u16) -> StaticServer {
        let server = StaticServer(
            std::process::Command::new("python3")
                .args([
                    "-m",
                    "http.server",
                    "--bind",
                    "127.0.0.1",
                    &port.to_string(),
                    "--directory",
                ])
                .arg(root)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("python3 serves the webroot (apt-get install -y python3)"),
        );
        // Python's start-up takes seconds on a loaded 2-core machine: wait up to 60 s, and
        // stop at once if the server exited (the port taken, say).
        let mut server = server;
        for _ in 0..1200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.0.try_wait() {
                panic!("static file server on port {port} exited at start: {status}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("static file server did not start on port {port} within 60 s");
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn http_01_through_a_webroot_and_token_files_are_removed() {
    let pebble = Pebble::start();
    let sandbox = Sandbox::new();
    let webroot = sandbox.path("www");
    std::fs::create_dir_all(&webroot).expect("webroot");
    let _server = StaticServer::start(&webroot, http_port(&pebble));
    sandbox.write_config(&format!(
        "{}\n[certificate.web]\ncommon_name = \"www.example.test\"\ndcv = {{ method = \"http\", webroot = \"www\" }}\ndeploy = [{{ kind = \"files\", dir = \"out/web\" }}]\n",
        acme_account(&pebble)
    ));
    sandbox.apply().expect(0);
    verify_with_pebble(&sandbox, &pebble, "out/web");
    let challenge_dir = webroot.join(".well-known/acme-challenge");
    let left: Vec<_> = std::fs::read_dir(&challenge_dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "token files left behind: {left:?}");
}

#[test]
fn eab_account_from_an_environment_secret() {
    // Pebble's EAB keys are base64url HMAC keys.
    let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let pebble = Pebble::start_with(PebbleOptions {
        eab_required: true,
        eab_keys: vec![("kid-1".into(), hmac.into())],
        ..PebbleOptions::default()
    });
    let config = format!(
        "{}eab = {{ kid = \"kid-1\", hmac = {{ env = \"CERTFORM_TEST_EAB\" }} }}\n\n[certificate.web]\ncommon_name = \"www.example.test\"\ndcv = {{ method = \"http\", listen = \"127.0.0.1:{}\" }}\n",
        acme_account(&pebble),
        http_port(&pebble)
    );
    let sandbox = Sandbox::with_config(&config);
    let missing = sandbox.apply().expect(1);
    assert!(
        missing.stderr.contains("CERTFORM_TEST_EAB"),
        "{}",
        missing.stderr
    );
    let run = sandbox
        .certform_env(&["apply", "--auto-approve"], &[("CERTFORM_TEST_EAB", hmac)])
        .expect(0);
    assert!(!run.all().contains(hmac), "EAB key printed");
    let account = sandbox.read("keys/acme/pebble/account.json");
    assert!(!account.contains(hmac), "EAB key stored");
    assert!(
        !sandbox.git("state", &["log", "-p"]).contains(hmac),
        "EAB key in git"
    );
}

#[test]
fn a_failed_validation_fails_only_its_certificate_with_the_cas_detail() {
    let pebble = Pebble::start();
    let port = http_port(&pebble);
    let spare = std::net::TcpListener::bind("127.0.0.1:0").expect("spare port");
    let wrong_port = spare.local_addr().expect("addr").port();
    drop(spare);
    let config = format!(
        "{account}\n[certificate.good]\ncommon_name = \"good.example.test\"\ndcv = {{ method = \"http\", listen = \"127.0.0.1:{port}\" }}\ndeploy = [{{ kind = \"files\", dir = \"out/good\" }}]\n\n\
[certificate.bad]\ncommon_name = \"bad.example.test\"\ndcv = {{ method = \"http\", listen = \"127.0.0.1:{wrong_port}\" }}\ndeploy = [{{ kind = \"files\", dir = \"out/bad\" }}]\n",
        account = acme_account(&pebble),
    );
    let sandbox = Sandbox::with_config(&config);
    let run = sandbox
        .certform(&["apply", "--auto-approve", "--parallelism", "1"])
        .expect(3);
    assert!(run.stdout.contains("✗ create bad"), "{}", run.stdout);
    assert!(run.stdout.contains("bad.example.test"), "{}", run.stdout);
    assert!(
        run.stderr.contains("unauthorized") || run.stderr.contains("connection"),
        "the CA's problem detail is shown: {}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: the CA could not validate the domain"),
        "the hint comes from the ACME problem type: {}",
        run.stderr
    );
    verify_with_pebble(&sandbox, &pebble, "out/good");
    assert!(!sandbox.path("out/bad/cert.pem").exists());
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(
        plan.stdout.contains("bad"),
        "the failed one is planned again: {}",
        plan.stdout
    );
}
