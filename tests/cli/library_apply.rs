//! Apply run by the library: nothing reaches state before the user confirms. What refresh
//! learns (an ACME renewal window) is written only with the confirmed plan's actions, in the
//! same commit; a refused confirmation leaves the state repository byte for byte as it was.

use crate::pebble::{AriStub, Pebble};
use crate::sandbox::{snapshot_tree, Sandbox};

const HTTP_CERTIFICATE: &str = "[certificate.web]\nca = \"pebble\"\ncommon_name = \"www.example.test\"\ndcv = { method = \"http\", listen = \"127.0.0.1:PORT\" }\ndeploy = [{ kind = \"files\", dir = \"out/web\" }]\n";

/// The ACME account `pebble` at `directory`, with the HTTP-01 certificate `web`.
fn acme_config(directory: &str, ca_bundle: &std::path::Path, port: u16) -> String {
    format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.pebble]\nkind = \"acme\"\ndirectory = \"{directory}\"\ncontact = [\"ops@example.test\"]\nca_bundle = \"{}\"\n\n{}",
        ca_bundle.display(),
        HTTP_CERTIFICATE.replace("PORT", &port.to_string())
    )
}

/// Point the saved ACME account at the ARI stub (it serves only the directory and renewal
/// information, which is all a refresh of an issued certificate asks for).
fn move_account_to(sandbox: &Sandbox, stub: &AriStub) {
    let path = sandbox.path("keys/acme/pebble/account.json");
    let mut account: serde_json::Value =
        serde_json::from_str(&sandbox.read("keys/acme/pebble/account.json")).expect("account");
    account["directory"] = stub.directory_url().into();
    account["credentials"]["directory"] = stub.directory_url().into();
    account["credentials"]["id"] = stub.account_url().into();
    std::fs::write(path, account.to_string()).expect("write account");
}

/// The ARI certificate identifier of the deployed `out/web/cert.pem`.
fn deployed_cert_id(sandbox: &Sandbox) -> String {
    let der = sandbox.path("web.der");
    let pem = sandbox.path("out/web/cert.pem");
    let (ok, text) = sandbox.openssl(&[
        "x509",
        "-in",
        pem.to_str().unwrap_or_default(),
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap_or_default(),
    ]);
    assert!(ok, "{text}");
    let bytes = std::fs::read(der).expect("read DER");
    certform::ca::acme::ari_cert_id(&bytes).expect("ARI certificate id")
}

#[test]
fn observations_wait_for_confirmation_and_share_the_actions_commit() {
    let pebble = Pebble::start();
    drop(pebble.take_http_listener());
    let port = pebble.http_port();
    let sandbox = Sandbox::with_config(&acme_config(
        pebble.directory_url(),
        pebble.ca_bundle(),
        port,
    ));
    sandbox.apply().expect(0);
    assert_eq!(sandbox.state_field("web", "renewal_window"), "");

    // The CA now suggests a renewal window for `web`, and a new certificate is declared.
    let stub = AriStub::start();
    move_account_to(&sandbox, &stub);
    stub.set_window(
        &deployed_cert_id(&sandbox),
        "2099-01-01T00:00:00Z",
        "2099-01-02T00:00:00Z",
        None,
    );
    sandbox.write_config(&format!(
        "{}\n[ca.local]\nkind = \"local\"\n\n[certificate.other]\nca = \"local\"\ncommon_name = \"other.example.test\"\ndeploy = [{{ kind = \"files\", dir = \"out/other\" }}]\n",
        acme_config(&stub.directory_url(), stub.ca_bundle(), port)
    ));

    // Not on a terminal and without `--auto-approve`: refused, and state is untouched.
    let before = snapshot_tree(&sandbox.path("state"));
    let commits_before = sandbox.git("state", &["rev-list", "--count", "HEAD"]);
    // The stub serves files only: it never answers the nonce request a refresh may make, so
    // each attempt is bounded short instead of the default 30 s.
    let bounded = [("CERTFORM_HTTP_TIMEOUT_MS", "2000")];
    let refused = sandbox.certform_env(&["apply"], &bounded).expect(1);
    assert!(
        refused.stdout.contains("create other"),
        "{}",
        refused.stdout
    );
    assert!(
        refused
            .stderr
            .contains("refusing to apply without confirmation"),
        "{}",
        refused.stderr
    );
    assert!(
        before == snapshot_tree(&sandbox.path("state")),
        "a refused apply changed the state repository"
    );
    assert_eq!(sandbox.state_field("web", "renewal_window"), "");

    // Confirmed: the window is recorded in the one commit that also creates `other`.
    sandbox
        .certform_env(&["apply", "--auto-approve"], &bounded)
        .expect(0);
    let window = sandbox.state_field("web", "renewal_window");
    assert!(window.contains("2099-01-01"), "{window}");
    let commits_after = sandbox.git("state", &["rev-list", "--count", "HEAD"]);
    assert_eq!(
        commits_after.trim().parse::<u32>().expect("count"),
        commits_before.trim().parse::<u32>().expect("count") + 1
    );
    let files = sandbox.git("state", &["show", "--name-only", "--format=", "HEAD"]);
    assert!(
        files.contains("certificates/web.toml") && files.contains("certificates/other.toml"),
        "{files}"
    );
}
