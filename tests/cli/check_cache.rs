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
