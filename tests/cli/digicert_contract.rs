//! DigiCert's documented response examples (`tests/fixtures/digicert/`, pages in `SOURCES.md`)
//! as a contract for the simulator: the same endpoint answers with the documented keys, casing
//! and value vocabulary. And the CLI regression tests of issue 11's findings 4–7 against the
//! simulator: `validation_type` in capitals, domain listings without `dcv_status`, the order's
//! DCV random value, a wrong key's 403, snake_case revocation reasons.

use std::io::{Read, Write};

use certform::sim::digicert::{DomainSeed, OrderSeed, ReasonSpelling, Seed};
use serde_json::{json, Value};

use crate::bind::{Bind, ZoneSpec};
use crate::digicert_sim::Sim;
use crate::sandbox::Sandbox;

const ADMIN: &str = "sim-admin-key";
const ORDERS: &str = "sim-orders-key";

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/digicert")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn domain(name: &str, complete: bool) -> DomainSeed {
    let mut value = json!({ "name": name });
    if !complete {
        value["dcv_status"] = json!("pending");
    }
    serde_json::from_value(value).expect("domain seed")
}

fn order_seed(value: Value) -> OrderSeed {
    serde_json::from_value(value).expect("order seed")
}

fn seed() -> Seed {
    Seed {
        random_seed: Some(21),
        domains: vec![domain("example.test", true), domain("pending.test", false)],
        ..Seed::default()
    }
}

/// One request to the simulator's API (blocking, `Connection: close`): status and JSON body
/// (`null` when empty).
fn call(sim: &Sim, method: &str, path: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
    raw(sim, method, &format!("/services/v2/{path}"), key, body)
}

/// The simulator's clock (`GET /_sim/clock`), RFC 3339.
fn sim_now(sim: &Sim) -> String {
    let (_, clock) = raw(sim, "GET", "/_sim/clock", "", None);
    clock["now"].as_str().expect("now").to_string()
}

fn raw(sim: &Sim, method: &str, path: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
    let address = sim.sim().local_addr();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nX-DC-DEVKEY: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, text) = answer.split_once("\r\n\r\n").expect("HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let text = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(text)
    } else {
        text.to_string()
    };
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text}"))
    };
    (status, value)
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(rest.get(..size).expect("chunk"));
        text = rest
            .get(size..)
            .unwrap_or_default()
            .trim_start_matches("\r\n");
    }
    out
}

/// Paths of keys the documentation shows in `documented` that `simulated` lacks (recursively;
/// arrays compared by their first elements), and of values whose JSON type differs. `optional`
/// lists paths the documentation marks as conditional. Placeholder strings (`<csr>`) match any
/// type.
fn differences(documented: &Value, simulated: &Value, optional: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    walk(documented, simulated, "", optional, &mut out);
    out
}

fn walk(
    documented: &Value,
    simulated: &Value,
    path: &str,
    optional: &[&str],
    out: &mut Vec<String>,
) {
    match (documented, simulated) {
        (Value::Object(doc), Value::Object(sim)) => {
            for (key, value) in doc {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match sim.get(key) {
                    Some(found) => walk(value, found, &here, optional, out),
                    None if optional.contains(&here.as_str()) => {}
                    None => out.push(format!("missing `{here}`")),
                }
            }
        }
        (Value::Array(doc), Value::Array(sim)) => {
            if let (Some(first), Some(found)) = (doc.first(), sim.first()) {
                walk(first, found, &format!("{path}[]"), optional, out);
            }
        }
        (Value::String(text), _) if text.starts_with('<') => {}
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, _) => {}
        (doc, sim) => out.push(format!("`{path}`: documented {doc}, simulated {sim}")),
    }
}

#[track_caller]
fn agrees(name: &str, simulated: &Value, optional: &[&str]) {
    let found = differences(&fixture(name), simulated, optional);
    assert!(
        found.is_empty(),
        "{name} vs the simulator: {found:?}\n{simulated:#}"
    );
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .map(|map| map.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn documented_examples_and_the_simulator_agree_on_keys_casing_and_values() {
    let mut seed = seed();
    seed.domains[0] =
        serde_json::from_value(json!({"name": "example.test", "organization_id": 112233}))
            .expect("domain seed");
    seed.orders = vec![order_seed(json!({
        "common_name": "www.example.test", "dns_names": ["www.example.test"],
        "organization_id": 112233, "product": "ssl_basic"
    }))];
    let sim = Sim::start(seed);

    let (status, me) = call(&sim, "GET", "user/me", ADMIN, None);
    assert_eq!(status, 200);
    agrees("user-me.json", &me, &[]);
    assert_eq!(me["access_roles"][0]["name"], "Administrator");

    let (_, products) = call(&sim, "GET", "product", ADMIN, None);
    agrees("product-list.json", &products, &[]);
    let (_, basic) = call(&sim, "GET", "product/ssl_basic", ADMIN, None);
    agrees("product-info.json", &basic, &[]);
    // The documented spelling, not just the key: "OV" in capitals.
    assert_eq!(basic["validation_type"], "OV");
    let (_, plus) = call(&sim, "GET", "product/ssl_plus", ADMIN, None);
    agrees("product-info-ssl-plus.json", &plus, &[]);

    let (_, organizations) = call(&sim, "GET", "organization", ADMIN, None);
    agrees("organization-list.json", &organizations, &[]);
    let (_, validated) = call(
        &sim,
        "GET",
        "organization?include_validation=true",
        ADMIN,
        None,
    );
    agrees("organization-list-validations.json", &validated, &[]);

    let (_, domains) = call(&sim, "GET", "domain?include_validation=true", ADMIN, None);
    let listed = domains["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .find(|d| d["name"] == "example.test")
        .cloned()
        .expect("example.test");
    agrees(
        "domain-list.json",
        &json!({ "domains": [listed.clone()] }),
        // "Returned for all domains you have completed a DCV check for at least once" (the
        // seeded domain was validated before the simulator started); last submission likewise.
        &[
            "domains[].dcv_approval_datetime",
            "domains[].last_submitted_datetime",
        ],
    );
    // The documented validation entries exactly: `status`, and no `dcv_status`.
    let documented = fixture("domain-list.json");
    let mut documented_keys = keys(&documented["domains"][0]["validations"][0]);
    let mut simulated_keys = keys(&listed["validations"][0]);
    documented_keys.sort_unstable();
    simulated_keys.sort_unstable();
    assert_eq!(simulated_keys, documented_keys, "{listed:#}");
    assert_eq!(listed["validations"][0]["status"], "active");
    let pending = domains["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .find(|d| d["name"] == "pending.test")
        .cloned()
        .expect("pending.test");
    assert_eq!(pending["validations"][0]["status"], "pending");

    let (_, list) = call(&sim, "GET", "order/certificate", ADMIN, None);
    // Seeded orders are day-based; like `cert_validity.years` ("only returned if you used
    // years"), `validity_years` is for year-based orders.
    agrees("order-list.json", &list, &["orders[].validity_years"]);
    let order_id = list["orders"][0]["id"].as_u64().expect("order id");
    let statuses = [
        "needs_approval",
        "pending",
        "processing",
        "waiting_pickup",
        "reissue_pending",
        "issued",
        "rejected",
        "revoked",
        "canceled",
        "expired",
    ];
    assert!(statuses.contains(&list["orders"][0]["status"].as_str().unwrap_or_default()));
    let (_, info) = call(
        &sim,
        "GET",
        &format!("order/certificate/{order_id}"),
        ADMIN,
        None,
    );
    agrees("order-info.json", &info, &[]);
    let methods = ["email", "dns-txt-token", "dns-cname-token", "http-token"];
    assert!(
        methods.contains(&info["dcv_method"].as_str().unwrap_or_default()),
        "{info:#}"
    );

    // check-dcv on an issued order: the older DV page's answer.
    let (status, checked) = call(
        &sim,
        "PUT",
        &format!("order/certificate/{order_id}/check-dcv"),
        ADMIN,
        Some(&json!({})),
    );
    assert_eq!(status, 200, "{checked}");
    agrees("check-dcv-dv.json", &checked, &[]);
    assert_eq!(checked["dcv_status"], "valid");
    assert_eq!(checked["order_status"], "issued");

    // A revoke request from a key that may not skip approval: the documented request object.
    let certificate_id = info["certificate"]["id"].as_u64().expect("certificate id");
    let (status, request) = call(
        &sim,
        "PUT",
        &format!("certificate/{certificate_id}/revoke"),
        ORDERS,
        Some(&json!({"comments": "I no longer need this certificate."})),
    );
    assert_eq!(status, 201, "{request}");
    agrees("revoke-request.json", &request, &[]);
    assert_eq!(
        (request["type"].as_str(), request["status"].as_str()),
        (Some("revoke"), Some("pending"))
    );
}

#[test]
fn the_order_random_value_is_the_documented_answer_and_lasts_its_30_days() {
    let mut seed = seed();
    seed.dcv.default_method = "dns-txt-token".to_string();
    seed.orders = vec![order_seed(json!({
        "common_name": "shop.pending.test", "status": "pending",
        "organization_id": 112233, "product": "ssl_basic"
    }))];
    let sim = Sim::start(seed);
    let (_, list) = call(&sim, "GET", "order/certificate", ADMIN, None);
    let order_id = list["orders"][0]["id"].as_u64().expect("order id");
    let path = format!("order/certificate/{order_id}/dcv-random-value");
    let (status, first) = call(&sim, "PUT", &path, ADMIN, None);
    assert_eq!(status, 200, "{first}");
    let documented = fixture("dcv-random-value.json");
    let mut documented_keys = keys(&documented);
    let mut simulated_keys = keys(&first);
    documented_keys.sort_unstable();
    simulated_keys.sort_unstable();
    assert_eq!(simulated_keys, documented_keys);
    let expires = first["expiration_date"].as_str().expect("expiration_date");
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let expires = time::PrimitiveDateTime::parse(expires, &format)
        .unwrap_or_else(|e| panic!("`YYYY-MM-DDTHH:MM:SSZ`: {expires}: {e}"))
        .assume_utc();
    let lifetime = expires - time::OffsetDateTime::now_utc();
    assert!(
        lifetime > time::Duration::days(29)
            && lifetime <= time::Duration::days(30) + time::Duration::minutes(1),
        "30 days: {lifetime}"
    );
    // The current value while it is valid...
    let (_, again) = call(&sim, "PUT", &path, ADMIN, None);
    assert_eq!(again["dcv_random_value"], first["dcv_random_value"]);
    // ...a new one once it expired.
    assert!(sim
        .sim()
        .advance_clock(std::time::Duration::from_secs(31 * 86_400)));
    let (_, renewed) = call(&sim, "PUT", &path, ADMIN, None);
    assert_ne!(renewed["dcv_random_value"], first["dcv_random_value"]);
    // A view-only key may not (it is a PUT); an email order has no random value.
    let (status, _) = call(&sim, "PUT", &path, "sim-view-only-key", None);
    assert_eq!(status, 403);
    let (status, unknown) = call(
        &sim,
        "PUT",
        "order/certificate/999999/dcv-random-value",
        ADMIN,
        None,
    );
    assert_eq!(
        (status, unknown["errors"][0]["code"].as_str()),
        (404, Some("not_found|order"))
    );
}

#[test]
fn with_the_rotation_switch_every_call_makes_a_new_random_value() {
    let mut seed = seed();
    seed.dcv.default_method = "dns-txt-token".to_string();
    seed.quirks.rotate_dcv_random_value = true;
    seed.orders = vec![order_seed(json!({
        "common_name": "shop.pending.test", "status": "pending",
        "organization_id": 112233, "product": "ssl_basic"
    }))];
    let sim = Sim::start(seed);
    let (_, list) = call(&sim, "GET", "order/certificate", ADMIN, None);
    let order_id = list["orders"][0]["id"].as_u64().expect("order id");
    let path = format!("order/certificate/{order_id}/dcv-random-value");
    let (_, first) = call(&sim, "PUT", &path, ADMIN, None);
    let (_, second) = call(&sim, "PUT", &path, ADMIN, None);
    assert_ne!(first["dcv_random_value"], second["dcv_random_value"]);
}

fn account(url: &str) -> String {
    format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{url}\"\n"
    )
}

fn run(sandbox: &Sandbox, args: &[&str], key: &str) -> crate::sandbox::Run {
    sandbox.certform_env(args, &[("DIGICERT_API_KEY", key)])
}

fn bind_provider(bind: &Bind) -> String {
    let secret_file = bind.dir.path().join("tsig.secret");
    std::fs::write(&secret_file, bind.secret(&bind.key_name)).expect("secret");
    format!(
        "[dns.bind]\nkind = \"rfc2136\"\nserver = \"{}\"\nkey_name = \"{}\"\nsecret = {{ file = \"{}\" }}\n",
        bind.addr,
        bind.key_name,
        secret_file.display()
    )
}

#[test]
fn an_ov_product_without_an_organization_is_refused_before_any_order() {
    let sim = Sim::start(seed());
    let config = format!(
        "{}[certificate.web]\nca = \"dc\"\ncommon_name = \"www.example.test\"\nproduct = \"ssl_basic\"\nvalidity = {{ days = 90 }}\n",
        account(&sim.sim().base_url())
    );
    let sandbox = Sandbox::with_config(&config);
    let plan = run(&sandbox, &["plan"], ADMIN).expect(1);
    assert!(
        plan.stderr
            .contains("product `ssl_basic` is OV-validated and needs `organization`"),
        "{}",
        plan.stderr
    );
    assert!(
        plan.stderr.contains("112233"),
        "lists the organizations: {}",
        plan.stderr
    );
    let applied = run(&sandbox, &["apply", "--auto-approve"], ADMIN);
    assert_ne!(applied.code, 0, "{}", applied.all());
    assert_eq!(sim.orders_for("www.example.test"), 0, "no order was placed");
}

#[test]
fn a_pre_validated_domain_needs_no_dcv() {
    // BIND serves only `pending.test`: a TXT record for the pre-validated `example.test` would
    // be refused, so the apply passes only if certform sees that domain as validated.
    let bind = Bind::start(&[ZoneSpec::new("pending.test")]);
    let mut seed = seed();
    seed.dcv.dns_server = Some(bind.addr);
    let sim = Sim::start(seed);
    let config = format!(
        "{}{}[certificate.web]\nca = \"dc\"\ncommon_name = \"www.example.test\"\nsans = [\"shop.pending.test\"]\nproduct = \"ssl_basic\"\norganization = 112233\nvalidity = {{ days = 90 }}\ndcv = {{ method = \"dns\", provider = \"bind\" }}\n",
        account(&sim.sim().base_url()),
        bind_provider(&bind)
    );
    let sandbox = Sandbox::with_config(&config);
    let applied = run(&sandbox, &["apply", "--auto-approve"], ADMIN);
    assert_eq!(applied.code, 0, "{}", applied.all());
    assert!(applied.stdout.contains("✓ create web"), "{}", applied.all());
    assert_eq!(sandbox.state_field("web", "status"), "issued");
    assert!(
        !bind.log().contains("example.test/IN"),
        "no update for the validated domain"
    );
    let info = run(&sandbox, &["ca", "info", "dc", "--format", "json"], ADMIN).expect(0);
    let value: Value = serde_json::from_str(&info.stdout).expect("JSON");
    let example = value["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .find(|d| d["name"] == "example.test")
        .cloned()
        .expect("example.test");
    assert_eq!(example["dcv_status"], "complete", "{value:#}");
}

#[test]
fn a_wrong_key_gets_the_key_hint_not_the_role_causes() {
    let sim = Sim::start(seed());
    let sandbox = Sandbox::with_config(&account(&sim.sim().base_url()));
    let wrong = run(&sandbox, &["ca", "info", "dc"], "revoked-key-0042").expect(1);
    let stderr = &wrong.stderr;
    assert!(
        stderr.contains("DigiCert rejected the API key of `dc` (HTTP 403)"),
        "{stderr}"
    );
    assert!(stderr.contains("access_denied_invalid_key"), "{stderr}");
    assert!(stderr.contains("hint: check the API key"), "{stderr}");
    assert!(!stderr.contains("likely causes"), "{stderr}");
    assert!(!wrong.all().contains("revoked-key-0042"));
    // A real permission problem still lists the role and IP causes.
    let forbidden = run(&sandbox, &["ca", "info", "dc"], ORDERS).expect(1);
    assert!(
        forbidden.stderr.contains("the three likely causes"),
        "{}",
        forbidden.stderr
    );
}

#[test]
fn revocation_sends_the_documented_reason_spelling() {
    let sim = Sim::start(seed());
    let web = "[certificate.web]\nca = \"dc\"\ncommon_name = \"www.example.test\"\nproduct = \"ssl_basic\"\norganization = 112233\nvalidity = { days = 90 }\n";
    let base = account(&sim.sim().base_url());
    let sandbox = Sandbox::with_config(&format!("{base}{web}"));
    run(&sandbox, &["apply", "--auto-approve"], ADMIN).expect(0);
    sandbox.write_config(&format!(
        "{base}{web}revoke = true\nrevoke_reason = \"key_compromise\"\n"
    ));
    let revoked = run(&sandbox, &["apply", "--auto-approve"], ADMIN);
    assert_eq!(revoked.code, 0, "{}", revoked.all());
    assert_eq!(
        sim.sim().stats().orders_by_status.get("revoked").copied(),
        Some(1)
    );
    // The simulator refuses RFC 5280's camelCase with the documented error shape...
    let mut seed = seed();
    seed.orders = vec![order_seed(json!({
        "common_name": "old.example.test", "organization_id": 112233
    }))];
    let strict = Sim::start(seed.clone());
    let camel = json!({"skip_approval": true, "revocation_reason": "keyCompromise"});
    let (_, list) = call(&strict, "GET", "order/certificate", ADMIN, None);
    let certificate_id = list["orders"][0]["certificate"]["id"].as_u64().expect("id");
    let path = format!("certificate/{certificate_id}/revoke");
    let (status, refused) = call(&strict, "PUT", &path, ADMIN, Some(&camel));
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        refused["errors"][0]["code"],
        "invalid_param|revocation_reason"
    );
    // ...unless switched to the old spelling.
    seed.quirks.revocation_reasons = ReasonSpelling::Camel;
    let old = Sim::start(seed);
    let (status, _) = call(&old, "PUT", &path, ADMIN, Some(&camel));
    assert_eq!(status, 204);
}

#[test]
fn dns_dcv_completes_on_an_imported_order_reissued_with_a_new_name() {
    let bind = Bind::start(&[ZoneSpec::new("pending.test")]);
    let mut seed = seed();
    seed.dcv.dns_server = Some(bind.addr);
    seed.dcv.default_method = "dns-txt-token".to_string();
    seed.orders = vec![order_seed(json!({
        "common_name": "www.example.test", "dns_names": ["www.example.test"],
        "organization_id": 112233, "product": "ssl_basic"
    }))];
    let sim = Sim::start(seed);
    let base = format!("{}{}", account(&sim.sim().base_url()), bind_provider(&bind));
    let sandbox = Sandbox::with_config(&base);
    run(
        &sandbox,
        &["import", "dc", "--write-config", "imported.toml"],
        ADMIN,
    )
    .expect(0);
    let order_id = sandbox.state_field("www-example-test", "order_id");
    let serial = sandbox.state_field("www-example-test", "serial");
    // Add a name of a domain that still needs DCV: a reissue on the adopted order, whose DCV
    // value certform never saw (no create answer, nothing cached).
    let stub = sandbox.read("imported.toml").replace(
        "common_name = \"www.example.test\"\n",
        "common_name = \"www.example.test\"\nsans = [\"shop.pending.test\"]\ndcv = { method = \"dns\", provider = \"bind\" }\n",
    );
    std::fs::write(sandbox.path("imported.toml"), stub).expect("stub");
    let plan = run(&sandbox, &["plan"], ADMIN).expect(0);
    assert!(
        plan.stdout.contains("~ reissue www-example-test"),
        "{}",
        plan.all()
    );
    let applied = run(&sandbox, &["apply", "--auto-approve"], ADMIN);
    assert_eq!(applied.code, 0, "{}", applied.all());
    assert_eq!(sandbox.state_field("www-example-test", "status"), "issued");
    assert_eq!(
        sandbox.state_field("www-example-test", "order_id"),
        order_id
    );
    assert_ne!(sandbox.state_field("www-example-test", "serial"), serial);
    assert!(
        sim.requests("PUT /order/certificate/{id}/dcv-random-value") >= 1,
        "{:?}",
        sim.sim().stats().requests_by_route
    );
    assert!(sim.sim().stats().dcv_checks >= 1);
    assert!(
        bind.dig_answer("shop.pending.test", "TXT").is_empty(),
        "cleaned up"
    );
}

#[test]
fn dns_dcv_completes_on_a_reissue_adding_a_name_after_the_value_expired() {
    let bind = Bind::start(&[ZoneSpec::new("pending.test"), ZoneSpec::new("later.test")]);
    let mut seed = seed();
    seed.dcv.dns_server = Some(bind.addr);
    seed.dcv.default_method = "dns-txt-token".to_string();
    seed.domains.push(domain("later.test", false));
    let sim = Sim::start(seed);
    let base = format!("{}{}", account(&sim.sim().base_url()), bind_provider(&bind));
    let web = |sans: &str| {
        format!(
            "[certificate.web]\nca = \"dc\"\ncommon_name = \"shop.pending.test\"\nsans = [{sans}]\nproduct = \"ssl_basic\"\norganization = 112233\nvalidity = {{ days = 90 }}\ndcv = {{ method = \"dns\", provider = \"bind\" }}\n"
        )
    };
    let sandbox = Sandbox::with_config(&format!("{base}{}", web("")));
    run(&sandbox, &["apply", "--auto-approve"], ADMIN).expect(0);
    let order_id = sandbox.state_field("web", "order_id");
    let before = sim.requests("PUT /order/certificate/{id}/dcv-random-value");
    // The create answer's value is cached; 31 days later CertCentral no longer accepts it. A
    // new name of another pending domain needs DCV with the order's current value.
    assert!(sim
        .sim()
        .advance_clock(std::time::Duration::from_secs(31 * 86_400)));
    let now = sim_now(&sim);
    sandbox.write_config(&format!("{base}{}", web("\"api.later.test\"")));
    let applied = sandbox.certform_env(
        &["apply", "--auto-approve"],
        &[("DIGICERT_API_KEY", ADMIN), ("CERTFORM_NOW", &now)],
    );
    assert_eq!(applied.code, 0, "{}", applied.all());
    assert!(applied.stdout.contains("reissue web"), "{}", applied.all());
    assert_eq!(sandbox.state_field("web", "order_id"), order_id);
    assert_eq!(sandbox.state_field("web", "status"), "issued");
    assert!(sim.requests("PUT /order/certificate/{id}/dcv-random-value") > before);
    assert_eq!(sim.orders_for("shop.pending.test"), 1, "no second order");
}

#[test]
fn the_client_also_reads_the_old_shapes_behind_the_switches() {
    let mut seed = seed();
    seed.quirks.unauthorized_status = 401;
    seed.quirks.unauthorized_code = "invalid_api_key".to_string();
    seed.quirks.validation_type_case = certform::sim::digicert::LetterCase::Lower;
    seed.quirks.domain_list_dcv_status = true;
    let sim = Sim::start(seed);
    let (_, basic) = call(&sim, "GET", "product/ssl_basic", ADMIN, None);
    assert_eq!(basic["validation_type"], "ov");
    let (_, domains) = call(&sim, "GET", "domain?include_validation=true", ADMIN, None);
    assert!(domains["domains"][0]["validations"][0]
        .get("dcv_status")
        .is_some());
    let config = format!(
        "{}[certificate.web]\nca = \"dc\"\ncommon_name = \"www.example.test\"\nproduct = \"ssl_basic\"\nvalidity = {{ days = 90 }}\n",
        account(&sim.sim().base_url())
    );
    let sandbox = Sandbox::with_config(&config);
    let plan = run(&sandbox, &["plan"], ADMIN).expect(1);
    assert!(
        plan.stderr
            .contains("is OV-validated and needs `organization`"),
        "{}",
        plan.stderr
    );
    let wrong = run(&sandbox, &["ca", "test", "dc"], "wrong-key-77").expect(1);
    assert!(wrong.stderr.contains("(HTTP 401)"), "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("hint: check the API key"),
        "{}",
        wrong.stderr
    );
    let info = run(&sandbox, &["ca", "info", "dc", "--format", "json"], ADMIN).expect(0);
    let value: Value = serde_json::from_str(&info.stdout).expect("JSON");
    let statuses: Vec<(&str, &str)> = value["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or_default(),
                d["dcv_status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&("example.test", "complete")),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("pending.test", "pending")),
        "{statuses:?}"
    );
}

/// Publish `value` as a TXT record at `name` in the test's BIND.
fn publish_txt(bind: &Bind, name: &str, value: &str) {
    use certform::config::model::{Rfc2136Settings, SecretRef, TsigAlgorithm, TsigKey};
    use certform::dns::DnsProvider;
    let settings = Rfc2136Settings {
        server: bind.addr.to_string(),
        key: Some(TsigKey {
            key_name: crate::bind::DEFAULT_KEY.to_string(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: SecretRef::Env(crate::bind::DEFAULT_KEY.to_string()),
        }),
        zones: Vec::new(),
    };
    let secrets = |secret: &SecretRef| match secret {
        SecretRef::Env(name) => Ok(bind.secret(name).as_bytes().to_vec()),
        SecretRef::File(path) => std::fs::read(path).map_err(|e| e.to_string()),
    };
    let provider = certform::dns::rfc2136::Rfc2136::new("bind", &settings, &secrets)
        .expect("provider")
        .with_timeout(std::time::Duration::from_secs(10));
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(provider.add_txt(name, value))
        .expect("TXT published");
}

#[test]
fn order_dcv_checks_the_order_random_value_with_the_documented_answers() {
    let bind = Bind::start(&[ZoneSpec::new("pending.test")]);
    let mut seed = seed();
    seed.dcv.dns_server = Some(bind.addr);
    seed.dcv.dns_timeout_ms = 2000;
    seed.dcv.default_method = "dns-txt-token".to_string();
    seed.orders = vec![order_seed(json!({
        "common_name": "shop.pending.test", "dns_names": ["shop.pending.test"], "status": "pending",
        "organization_id": 112233, "product": "ssl_basic"
    }))];
    let sim = Sim::start(seed);
    let (_, list) = call(&sim, "GET", "order/certificate", ADMIN, None);
    let order_id = list["orders"][0]["id"].as_u64().expect("order id");
    let check = format!("order/certificate/{order_id}/check-dcv");

    // Nothing published: the documented 400.
    let (status, refused) = call(&sim, "PUT", &check, ADMIN, Some(&json!({})));
    assert_eq!(status, 400, "{refused}");
    let documented = fixture("error-invalid-dns-txt.json");
    agrees("error-invalid-dns-txt.json", &refused, &[]);
    assert_eq!(
        refused["errors"][0]["code"],
        documented["errors"][0]["code"]
    );
    // The documented message, then the simulator's detail of what it found.
    let message = documented["errors"][0]["message"]
        .as_str()
        .expect("message");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(message)),
        "{refused}"
    );

    // The domain's own token is not the order's value.
    let (_, domains) = call(&sim, "GET", "domain?include_validation=true", ADMIN, None);
    let domain_id = domains["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .find(|d| d["name"] == "pending.test")
        .and_then(|d| d["id"].as_u64())
        .expect("pending.test");
    let (_, detail) = call(
        &sim,
        "GET",
        &format!("domain/{domain_id}?include_dcv=true"),
        ADMIN,
        None,
    );
    let domain_token = detail["dcv_token"]["token"].as_str().expect("token");
    let (_, random) = call(
        &sim,
        "PUT",
        &format!("order/certificate/{order_id}/dcv-random-value"),
        ADMIN,
        None,
    );
    let value = random["dcv_random_value"].as_str().expect("value");
    assert_ne!(domain_token, value);
    publish_txt(&bind, "shop.pending.test", domain_token);
    let (status, refused) = call(&sim, "PUT", &check, ADMIN, Some(&json!({})));
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["errors"][0]["code"], "invalid_dns_txt");

    // The order's value passes: the documented answer, with its vocabulary.
    publish_txt(&bind, "shop.pending.test", value);
    let (status, checked) = call(&sim, "PUT", &check, ADMIN, Some(&json!({})));
    assert_eq!(status, 200, "{checked}");
    agrees("check-dcv.json", &checked, &[]);
    assert_eq!(checked["dcv_status"], "valid");
    assert_eq!(checked["order_status"], "issued");
    assert_eq!(
        checked["dns_name_validations"][0]["dns_name"],
        "shop.pending.test"
    );
    assert_eq!(checked["dns_name_validations"][0]["status"], "approved");
}
