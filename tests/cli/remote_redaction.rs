//! A state remote written with credentials (user info, a token in the query) never shows them:
//! not in the error, not in its causes.

use crate::sandbox::{Sandbox, WEB};

const SECRETS: [&str; 2] = ["s3cr3t-password", "t0ps3cret-token"];

#[test]
fn push_failure_names_the_remote_without_its_credentials() {
    let remote =
        "https://deploy:s3cr3t-password@127.0.0.1:1/state.git?access_token=t0ps3cret-token";
    let config = WEB.replace(
        "keys_dir = \"keys\"",
        &format!("keys_dir = \"keys\"\npush = true\nremote = \"{remote}\""),
    );
    let sandbox = Sandbox::with_config(&config);
    let run = sandbox.apply();
    let output = run.all();
    assert_ne!(
        run.code, 0,
        "a push to a closed port cannot succeed:\n{output}"
    );
    for secret in SECRETS {
        assert!(!output.contains(secret), "`{secret}` shown:\n{output}");
    }
    assert!(
        output.contains("`https://***@127.0.0.1:1/state.git?access_token=***`"),
        "{output}"
    );
}
