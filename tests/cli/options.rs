//! Per-certificate CA options through the CLI: an ACME CA decides the lifetime itself and the
//! plan says so (against the real Pebble), and an email DCV `approver` reaches the messages of
//! a DigiCert order waiting for approval (against the DigiCert simulator). The approver's
//! config checks are fixtures in `tests/fixtures/invalid/dcv_approver_*`.

use certform::sim::digicert::{DomainSeed, Seed};

use crate::digicert_sim::Sim;
use crate::pebble::Pebble;
use crate::sandbox::Sandbox;

const VALIDITY_WARNING: &str =
    "`validity` (90 days) is not sent to `pebble`: the CA decides the lifetime";

#[test]
fn an_acme_certificate_plans_with_a_warning_that_the_ca_decides_its_lifetime() {
    let pebble = Pebble::start();
    drop(pebble.take_http_listener());
    let config = format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.pebble]\nkind = \"acme\"\ndirectory = \"{}\"\nca_bundle = \"{}\"\n\n\
[certificate.web]\ncommon_name = \"www.example.test\"\nvalidity = {{ days = 90 }}\ndcv = {{ method = \"http\", listen = \"127.0.0.1:{}\" }}\ndeploy = [{{ kind = \"files\", dir = \"out/web\" }}]\n",
        pebble.directory_url(),
        pebble.ca_bundle().display(),
        pebble.http_port()
    );
    let sandbox = Sandbox::with_config(&config);
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(plan.stdout.contains("+ create web"), "{}", plan.stdout);
    assert!(plan.stdout.contains("! warning"), "{}", plan.stdout);
    assert!(plan.stdout.contains(VALIDITY_WARNING), "{}", plan.stdout);
    let json = sandbox.certform(&["plan", "--format", "json"]).expect(0);
    assert!(
        json.stdout.contains("the CA decides the lifetime"),
        "{}",
        json.stdout
    );

    // The warning is true: Pebble issues for far longer than the 90 days asked for.
    sandbox.apply().expect(0);
    let cert = sandbox.path("out/web/cert.pem");
    let (outlives, text) = sandbox.openssl(&[
        "x509",
        "-noout",
        "-checkend",
        &(200 * 86_400).to_string(),
        "-in",
        cert.to_str().unwrap_or_default(),
    ]);
    assert!(
        outlives,
        "Pebble's certificate expires within 200 days: {text}"
    );
    // Nothing is ordered any more, so nothing is warned about.
    let again = sandbox.certform(&["plan"]).expect(0);
    assert!(!again.stdout.contains(VALIDITY_WARNING), "{}", again.stdout);
}

/// A DigiCert certificate whose email DCV names an approver: the order is placed with
/// `dcv_method = "email"`, apply names the approver while the order waits, and the order
/// completes once the email is approved.
#[test]
fn a_digicert_email_order_names_its_approver_while_it_waits() {
    let pending: DomainSeed = serde_json::from_value(serde_json::json!({
        "name": "mail.test",
        "dcv_status": "pending",
    }))
    .expect("domain seed");
    let sim = Sim::start(Seed {
        random_seed: Some(5),
        domains: vec![pending],
        ..Seed::default()
    });
    let config = format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{}\"\n\n\
[certificate.mail]\nca = \"dc\"\ncommon_name = \"mail.test\"\nsans = [\"www.mail.test\"]\nproduct = \"ssl_basic\"\norganization = 112233\nvalidity = {{ days = 90 }}\n\
dcv = {{ method = \"email\", approver = \"Hostmaster@Mail.Test\" }}\ndeploy = [{{ kind = \"files\", dir = \"out/mail\" }}]\n",
        sim.sim().base_url()
    );
    let sandbox = Sandbox::with_config(&config);
    let run = |args: &[&str]| sandbox.certform_env(args, &[("DIGICERT_API_KEY", "sim-admin-key")]);
    // DigiCert follows `validity`: no warning.
    let plan = run(&["plan"]).expect(0);
    assert!(!plan.stdout.contains("! warning"), "{}", plan.stdout);
    let first = run(&["apply", "--auto-approve"]).expect(0);
    assert!(
        first.stdout.contains("approver `hostmaster@mail.test`"),
        "{}",
        first.all()
    );
    let order_id = sandbox
        .state_of("mail")
        .get("intent")
        .and_then(|i| i.get("order_id"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .expect("intent order id");
    sim.approve_email(&order_id);
    run(&["apply", "--auto-approve"]).expect(0);
    assert!(sandbox.path("out/mail/cert.pem").exists());
    assert_eq!(sim.orders_for("mail.test"), 1);
}

/// An approver that is no constructed address is accepted with a warning (it may be a WHOIS
/// contact), and `validate` names its file, line and column.
#[test]
fn a_whois_contact_as_approver_is_a_warning() {
    let sandbox = Sandbox::with_config(
        "[certificate.web]\ncommon_name = \"www.example.test\"\ndcv = { method = \"email\", approver = \"domains@example.test\" }\n",
    );
    let run = sandbox.certform(&["validate"]).expect(0);
    let all = run.all();
    assert!(all.contains("warning"), "{all}");
    assert!(
        all.contains("`domains@example.test` is not a constructed approver address"),
        "{all}"
    );
    assert!(all.contains(":3:"), "{all}");
}
