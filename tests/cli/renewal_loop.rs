//! No self-inflicted paid-order loop (a CA issuing less than was asked must not make every run
//! renew), and a broken chain file in state is drift repaired from the CA.

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::sandbox::{Sandbox, WEB};

const CHAIN: &str = "state/certificates/web.pem";

/// A time 20 days before the end of a local CA intermediate created after this call (it lasts 5
/// years): the CA caps what it issues there at 20 days (and a few seconds), well under `validity = 90 days` and
/// `renew_before = 30d`.
fn near_the_intermediates_end() -> String {
    (OffsetDateTime::now_utc() + Duration::days(5 * 365 - 20))
        .format(&Rfc3339)
        .expect("format time")
}

#[test]
fn a_ca_issuing_less_than_asked_is_ordered_once_over_three_applies() {
    let later = near_the_intermediates_end();
    // Create the local CA on today's clock (its intermediate ends in 5 years) with another
    // certificate, then manage `web` only.
    let seed = WEB
        .replace("[certificate.web]", "[certificate.seed]")
        .replace("www.example.test", "seed.example.test")
        .replace("out/web", "out/seed");
    let sandbox = Sandbox::with_config(&seed);
    sandbox.apply().expect(0);
    sandbox.write_config(WEB);
    let env = [("CERTFORM_NOW", later.as_str())];

    for _ in 0..3 {
        sandbox
            .certform_env(&["apply", "--auto-approve"], &env)
            .expect(0);
    }
    assert_eq!(
        sandbox.orders_for("www.example.test"),
        1,
        "one order over three applies"
    );
    let time = |field: &str| {
        OffsetDateTime::parse(&sandbox.state_field("web", field), &Rfc3339).expect("state time")
    };
    let lifetime = time("not_after") - time("not_before");
    assert!(
        lifetime >= Duration::days(20) && lifetime < Duration::days(21),
        "the CA issued {lifetime}, less than the 90 days asked"
    );

    let plan = sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(0);
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("! warning web")
            && plan.stdout.contains(
                "`renew_before` (30d) is not shorter than the 20 days lifetime `local` issued"
            )
            && plan.stdout.contains("renewing at two thirds of it"),
        "{}",
        plan.stdout
    );
    let json = sandbox
        .certform_env(&["plan", "--format", "json"], &env)
        .expect(0);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("plan JSON");
    assert_eq!(json["changes"], serde_json::json!([]));
    assert_eq!(json["warnings"][0]["certificate"], "web");
    assert!(
        json["warnings"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("renewing at two thirds")),
        "{json}"
    );
}

/// Apply once, break the chain file with `damage`, and check the plan names the drift, apply
/// repairs it from the CA without a new order, and the next plan is empty.
fn chain_drift_is_repaired(damage: impl FnOnce(&Sandbox), why: &str) {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let original = sandbox.read(CHAIN);
    damage(&sandbox);

    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("fetch web"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains(&format!(
            "drift: the chain file `certificates/web.pem` in state {why}"
        )),
        "{}",
        plan.stdout
    );
    assert!(
        !plan.all().contains("BEGIN"),
        "no PEM content in the plan: {}",
        plan.all()
    );

    sandbox.apply().expect(0);
    assert_eq!(sandbox.read(CHAIN), original, "the chain is fetched again");
    assert_eq!(sandbox.orders_for("www.example.test"), 1, "no new order");
    assert_eq!(
        sandbox.git("state", &["show", "HEAD:certificates/web.pem"]),
        original
    );
    assert_eq!(
        sandbox.git("state", &["status", "--porcelain", "certificates"]),
        ""
    );
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    sandbox.verify_deployed("out/web");
}

#[test]
fn a_deleted_chain_file_is_drift_fetched_again() {
    chain_drift_is_repaired(
        |sandbox| std::fs::remove_file(sandbox.path(CHAIN)).expect("remove chain"),
        "is missing",
    );
}

#[test]
fn a_corrupt_chain_file_is_drift_fetched_again() {
    chain_drift_is_repaired(
        |sandbox| {
            let chain = sandbox.read(CHAIN);
            let half = &chain[..chain.len() / 2];
            std::fs::write(sandbox.path(CHAIN), half).expect("truncate chain");
        },
        "is not a certificate chain",
    );
}

#[test]
fn a_chain_file_holding_a_private_key_is_drift_fetched_again() {
    chain_drift_is_repaired(
        |sandbox| {
            let key = sandbox.path("stray.key");
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
            let chain = sandbox.read(CHAIN);
            let key = sandbox.read("stray.key");
            assert!(key.contains("PRIVATE KEY-----"), "{key}");
            std::fs::write(sandbox.path(CHAIN), format!("{chain}{key}")).expect("add key");
        },
        "holds a private key",
    );
}

#[test]
fn a_chain_file_holding_another_certificate_is_drift_fetched_again() {
    chain_drift_is_repaired(
        |sandbox| {
            // The local CA's root: a valid certificate, but not the one state records.
            let root = sandbox.read("state/ca/local.pem");
            std::fs::write(sandbox.path(CHAIN), root).expect("replace chain");
        },
        "holds another certificate (serial",
    );
}
