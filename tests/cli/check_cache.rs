//! The check cache (`.git/certform-checks` in the state repository): what a `plan` already
//! checked is not parsed again, but a key, chain or deployed file changed on disk is still
//! found, and a broken cache only costs time. The unit tests in `src/check_cache/tests.rs`
//! pin the stat-data and racy rules; timings are in `benches/scale.rs`.

use crate::sandbox::Sandbox;

const WEB: &str = r#"
[state]
repo = "state"
keys_dir = "keys"

[ca.local]
kind = "local"

[certificate.web]
common_name = "web.example.test"
deploy = [{ kind = "files", dir = "out/web" }]
"#;

const CACHE: &str = "state/.git/certform-checks";

fn issued() -> Sandbox {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    sandbox
}

#[test]
fn a_plan_records_digests_only_in_an_untracked_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = issued();
    let cache = sandbox.read(CACHE);
    assert!(cache.starts_with("certform-checks 1\n"), "{cache}");
    // The chain's leaf and the key's public-key digest, never key material.
    let spki = sandbox.state_field("web", "spki_sha256");
    assert!(cache.contains(&spki), "{cache}");
    assert!(!cache.contains("PRIVATE KEY"), "{cache}");
    let key_id = sandbox.state_field("web", "key_id");
    let key = sandbox.read(&format!("keys/web/{key_id}.key"));
    for line in key.lines().filter(|line| !line.starts_with("-----")) {
        assert!(!cache.contains(line), "key material in the cache");
    }
    let mode = std::fs::metadata(sandbox.path(CACHE))
        .expect("cache")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Not tracked: nothing to commit, nothing in HEAD.
    let tracked = sandbox.git("state", &["ls-files"]);
    assert!(!tracked.contains("certform-checks"), "{tracked}");
    let status = sandbox.git("state", &["status", "--porcelain"]);
    assert!(status.trim().is_empty(), "{status}");
}

#[test]
fn a_key_swapped_after_it_was_cached_still_fails_the_plan() {
    let sandbox = issued();
    let key_id = sandbox.state_field("web", "key_id");
    let key = sandbox.path(&format!("keys/web/{key_id}.key"));
    // Another valid P-256 key in place of the cached one.
    let (ok, text) = sandbox.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        key.to_str().unwrap_or_default(),
    ]);
    assert!(ok, "{text}");
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout
            .contains("key in keys_dir does not match the certificate"),
        "{}",
        plan.stdout
    );
    // And again with the new key's digest cached by that plan.
    let again = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        again
            .stdout
            .contains("key in keys_dir does not match the certificate"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_chain_edited_after_it_was_cached_is_drift() {
    let sandbox = issued();
    let chain = sandbox.path("state/certificates/web.pem");
    let text = sandbox.read("state/certificates/web.pem");
    // Only the issuer left: another certificate than state's.
    let issuer_start = text[1..].find("-----BEGIN").map(|at| at + 1);
    let Some(issuer_start) = issuer_start else {
        panic!("the chain holds one certificate: {text}");
    };
    std::fs::write(&chain, &text[issuer_start..]).expect("edit chain");
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout
            .contains("the chain file `certificates/web.pem` in state holds another certificate"),
        "{}",
        plan.stdout
    );
    std::fs::write(&chain, &text).expect("restore chain");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn a_corrupt_or_missing_cache_only_costs_time_and_is_rewritten() {
    let sandbox = issued();
    for broken in ["certform-checks 1\nc:zz\n", "\u{0}garbage", ""] {
        std::fs::write(sandbox.path(CACHE), broken).expect("break the cache");
        sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
        let cache = sandbox.read(CACHE);
        assert!(cache.starts_with("certform-checks 1\n"), "{cache}");
        assert!(cache.lines().count() > 2, "{cache}");
    }
    std::fs::remove_file(sandbox.path(CACHE)).expect("remove the cache");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    assert!(sandbox.path(CACHE).exists());
    // A deployed file changed under a cached hash is drift.
    std::fs::write(sandbox.path("out/web/cert.pem"), "edited\n").expect("edit");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
}

/// Files older than the racy margin (5 s) get stat-keyed entries: the chain file, the key
/// file, the local CA's order file and the deployed files are then not read again while
/// their stat data is the same, and every change after that is still found.
#[test]
fn settled_files_are_not_read_again_and_a_change_to_any_of_them_is_still_found() {
    let sandbox = issued();
    std::thread::sleep(std::time::Duration::from_secs(6));
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    let cache = sandbox.read(CACHE);
    let order = sandbox.state_field("web", "order_id");
    let key_id = sandbox.state_field("web", "key_id");
    for (kind, path) in [
        ("p:", "state/certificates/web.pem".to_string()),
        ("s:", format!("keys/web/{key_id}.key")),
        ("o:", format!("keys/local-ca/local/orders/{order}.json")),
        ("f:", "out/web/cert.pem".to_string()),
    ] {
        let file = std::fs::canonicalize(sandbox.path(&path)).expect("file");
        let key = format!("{kind}{}\t", file.display());
        let held = cache.lines().any(|line| {
            line.starts_with(&key)
                || line.starts_with(&format!("{kind}{}\t", sandbox.path(&path).display()))
        });
        assert!(held, "no {key} in {cache}");
    }
    // Served from the cache, same answer.
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    // The order revoked behind certform's back, then put back as it was.
    let order_path = sandbox.path(&format!("keys/local-ca/local/orders/{order}.json"));
    let text = std::fs::read_to_string(&order_path).expect("order file");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("order JSON");
    json["status"] = "revoked".into();
    std::fs::write(&order_path, json.to_string()).expect("revoke");
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("revoked"), "{}", plan.stdout);
    std::fs::write(&order_path, &text).expect("restore");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    // The chain file edited to the same size: drift.
    let chain = sandbox.read("state/certificates/web.pem");
    let edited = chain.replacen("BEGIN CERTIFICATE", "BEGIN CERTIFICATX", 1);
    std::fs::write(sandbox.path("state/certificates/web.pem"), &edited).expect("edit");
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout.contains("certificates/web.pem"),
        "{}",
        plan.stdout
    );
    std::fs::write(sandbox.path("state/certificates/web.pem"), &chain).expect("restore");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    // Another key in place of the recorded one: the deploy would refuse.
    let key = sandbox.path(&format!("keys/web/{key_id}.key"));
    let (ok, text) = sandbox.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        key.to_str().unwrap_or_default(),
    ]);
    assert!(ok, "{text}");
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout
            .contains("key in keys_dir does not match the certificate"),
        "{}",
        plan.stdout
    );
}
