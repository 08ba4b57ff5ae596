//! Account-level commands for CA kinds other than DigiCert: `ca test`, `ca info` and
//! `import` against the built-in local CA, and the clear error of a kind that does not offer
//! an operation (ACME `ca info` and `import`, against Pebble).

use crate::pebble::Pebble;
use crate::sandbox::{Sandbox, WEB};

/// `WEB` plus `old`, which is forgotten (the local CA keeps its order) once removed.
fn with_old() -> String {
    format!(
        "{WEB}\n[certificate.old]\ncommon_name = \"old.example.test\"\nsans = [\"www.old.example.test\"]\nvalidity = {{ days = 30 }}\non_remove = \"forget\"\n"
    )
}

#[test]
fn local_ca_test_and_info_read_the_ca_and_its_orders() {
    let sandbox = Sandbox::with_config(&with_old());
    // Never used: nothing is created just to be checked.
    let unused = sandbox.certform(&["ca", "test", "local"]).expect(1);
    assert!(
        unused.stderr.contains("has not been used yet"),
        "{}",
        unused.all()
    );
    assert!(!sandbox.path("keys/local-ca/local").exists());

    sandbox.apply().expect(0);
    let ok = sandbox.certform(&["ca", "test", "local"]).expect(0);
    assert!(
        ok.stdout.contains("ok: `local` answers as the local CA in")
            && ok.stdout.contains("2 orders"),
        "{}",
        ok.all()
    );

    let info = sandbox.certform(&["ca", "info", "local"]).expect(0);
    assert!(
        info.stdout.starts_with("local CA `local` in "),
        "{}",
        info.stdout
    );
    assert!(
        info.stdout.contains("\nAuthority:\n  root ")
            && info.stdout.contains("\n  intermediate ")
            && info.stdout.contains("\nOrders:\n"),
        "{}",
        info.stdout
    );
    for name in ["www.example.test", "old.example.test"] {
        assert!(info.stdout.contains(name), "{name}: {}", info.stdout);
    }
    let json = sandbox
        .certform(&["ca", "info", "local", "--format", "json"])
        .expect(0);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(value["account"], "local");
    let orders = value["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 2, "{value}");
    assert!(orders.iter().all(|o| o["status"] == "issued"), "{value}");
    assert_eq!(value["authority"][0]["role"], "root");

    // A broken CA fails the check: the intermediate key no longer matches its certificate,
    // or an order record is unreadable.
    let key = sandbox.path("keys/local-ca/local/intermediate.key");
    let root_key = std::fs::read(sandbox.path("keys/local-ca/local/root.key")).expect("root key");
    std::fs::write(&key, root_key).expect("swap key");
    let broken = sandbox.certform(&["ca", "test", "local"]).expect(1);
    assert!(
        broken
            .stderr
            .contains("`intermediate.pem` does not match its key file"),
        "{}",
        broken.all()
    );
}

#[test]
fn a_local_ca_with_an_unreadable_order_database_fails_the_check() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let orders = sandbox.path("keys/local-ca/local/orders");
    let order = std::fs::read_dir(&orders)
        .expect("orders")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .expect("an order file");
    std::fs::write(&order, "{ not json").expect("break the order");
    let broken = sandbox.certform(&["ca", "test", "local"]).expect(1);
    assert!(broken.stderr.starts_with("error: "), "{}", broken.all());
    assert!(!broken.stdout.contains("ok:"), "{}", broken.all());
}

#[test]
fn import_adopts_the_local_cas_orders_that_state_does_not_track() {
    let sandbox = Sandbox::with_config(&with_old());
    sandbox.apply().expect(0);
    let serial = sandbox.state_field("old", "serial");
    // `old` leaves config and state; the local CA keeps its order.
    sandbox.write_config(WEB);
    let forgot = sandbox.apply().expect(0);
    assert!(forgot.stdout.contains("forget old"), "{}", forgot.stdout);
    assert!(!sandbox.path("state/certificates/old.toml").exists());

    let imported = sandbox
        .certform(&["import", "local", "--write-config", "imported.toml"])
        .expect(0);
    assert!(
        imported
            .stdout
            .contains("imported old-example-test (order lo-"),
        "{}",
        imported.all()
    );
    assert!(
        imported
            .stdout
            .contains("skipped 1 order: already in state"),
        "{}",
        imported.all()
    );
    assert!(
        imported.stderr.contains("private keys"),
        "{}",
        imported.stderr
    );
    let stub = sandbox.read("imported.toml");
    assert!(
        stub.contains("from the `local` account `local`")
            && stub.contains("[certificate.old-example-test]\nca = \"local\"\ncommon_name = \"old.example.test\"\nsans = [\"www.old.example.test\"]\n"),
        "{stub}"
    );
    assert_eq!(sandbox.state_field("old-example-test", "status"), "issued");
    assert_eq!(sandbox.state_field("old-example-test", "serial"), serial);
    // The stubs and state agree: nothing to do.
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    // Importing again finds both in state.
    let again = sandbox.certform(&["import", "local"]).expect(0);
    assert!(
        again.stdout.contains("skipped 2 orders: already in state"),
        "{}",
        again.all()
    );
    assert!(
        again.stdout.contains("nothing to import"),
        "{}",
        again.all()
    );
}

#[test]
fn an_acme_account_is_checked_at_the_ca_its_orders_imported_and_info_refused_by_kind() {
    let pebble = Pebble::start();
    drop(pebble.take_http_listener());
    let account = format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.pebble]\nkind = \"acme\"\ndirectory = \"{}\"\ncontact = [\"ops@example.test\"]\nca_bundle = \"{}\"\n",
        pebble.directory_url(),
        pebble.ca_bundle().display(),
    );
    let config = format!(
        "{account}\n[certificate.web]\ncommon_name = \"www.example.test\"\non_remove = \"forget\"\ndcv = {{ method = \"http\", listen = \"127.0.0.1:{}\" }}\n",
        pebble.http_port()
    );
    let sandbox = Sandbox::with_config(&config);
    let unused = sandbox.certform(&["ca", "test", "pebble"]).expect(1);
    assert!(
        unused.stderr.contains("has not been used yet"),
        "{}",
        unused.all()
    );
    sandbox.apply().expect(0);
    let serial = sandbox.state_field("web", "serial");
    let ok = sandbox.certform(&["ca", "test", "pebble"]).expect(0);
    assert!(
        ok.stdout
            .contains("ok: `pebble` answers as ACME account `https://"),
        "{}",
        ok.all()
    );
    let refused = sandbox.certform(&["ca", "info", "pebble"]).expect(1);
    assert!(
        refused.stderr.contains(
            "error: `pebble` is a `kind = \"acme\"` account, which does not support showing account information"
        ),
        "{}",
        refused.all()
    );

    // Pebble serves the account's orders list: a forgotten certificate is adopted again.
    let again = sandbox.certform(&["import", "pebble"]).expect(0);
    assert!(
        again.stdout.contains("skipped 1 order: already in state"),
        "{}",
        again.all()
    );
    sandbox.write_config(&account);
    sandbox.apply().expect(0);
    let imported = sandbox
        .certform(&["import", "pebble", "--write-config", "imported.toml"])
        .expect(0);
    assert!(
        imported.stdout.contains("imported www-example-test"),
        "{}",
        imported.all()
    );
    assert_eq!(sandbox.state_field("www-example-test", "serial"), serial);
    let stub = sandbox.read("imported.toml");
    assert!(
        stub.contains("from the `acme` account `pebble`") && stub.contains("ca = \"pebble\""),
        "{stub}"
    );
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
}
