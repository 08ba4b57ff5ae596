//! Plans as reviewable artefacts: `plan --format markdown|json`, `plan --out FILE` and
//! `apply FILE`, which carries out exactly the saved plan or refuses it, naming what moved.

use std::path::Path;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::sandbox::{Sandbox, WEB};

const API: &str = r#"
[certificate.api]
common_name = "api.example.test"
validity = { days = 30 }
deploy = [{ kind = "files", dir = "out/api" }]
"#;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn at(days: i64) -> (String, i64) {
    let time = OffsetDateTime::now_utc() + Duration::days(days);
    (
        time.format(&Rfc3339).expect("format time"),
        time.unix_timestamp(),
    )
}

/// `web` issued, `api` added to the config and planned into `plan.json`.
fn saved_create_of_api() -> Sandbox {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    sandbox.write_config(&format!("{WEB}{API}"));
    let plan = sandbox
        .certform(&["plan", "--out", "plan.json", "--detailed-exitcode"])
        .expect(2);
    assert!(plan.stdout.contains("+ create api"), "{}", plan.stdout);
    assert!(
        plan.stderr.contains(
            "plan saved to `plan.json`; to carry out exactly these actions, run: certform apply plan.json"
        ),
        "{}",
        plan.stderr
    );
    sandbox
}

#[test]
fn a_fresh_saved_plan_applies_exactly_its_actions() {
    let sandbox = saved_create_of_api();
    let web_serial = sandbox.state_field("web", "serial");
    let saved = std::fs::read(sandbox.path("plan.json")).expect("plan.json");
    assert_eq!(
        certform::state::key_scan::find_private_key(&saved),
        None,
        "the saved plan holds private key material"
    );

    // 70 days on, a new plan would also renew `web`: the saved plan does not.
    let (later, epoch) = at(70);
    let env = [("CERTFORM_NOW", later.as_str())];
    let fresh = sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(2);
    assert!(fresh.stdout.contains("renew web"), "{}", fresh.stdout);

    let run = sandbox
        .certform_env(&["apply", "plan.json"], &env)
        .expect(0);
    assert!(run.stdout.contains("✓ create api"), "{}", run.stdout);
    assert!(!run.stdout.contains("renew web"), "{}", run.stdout);
    assert_eq!(sandbox.state_field("web", "serial"), web_serial);
    sandbox.verify_deployed_at("out/api", Some(epoch + 60));
    assert!(sandbox
        .certform_env(&["plan"], &env)
        .stdout
        .contains("renew web"));
}

#[test]
fn a_saved_plan_is_refused_once_the_config_changed() {
    let sandbox = saved_create_of_api();
    sandbox.write_config(&format!("{WEB}{API}").replace(
        r#"sans = ["example.test"]"#,
        r#"sans = ["example.test", "shop.example.test"]"#,
    ));
    let run = sandbox.certform(&["apply", "plan.json"]).expect(1);
    assert!(
        run.stderr
            .contains("error: the saved plan is stale: the config of `web` changed"),
        "{}",
        run.stderr
    );
    assert!(run
        .stderr
        .contains("hint: run `certform plan --out FILE` again"));
    assert_eq!(sandbox.orders_for("api.example.test"), 0, "nothing applied");

    // A comment is a change of the reviewed files too, though no certificate changed.
    let sandbox = saved_create_of_api();
    sandbox.write_config(&format!("# reviewed?\n{WEB}{API}"));
    let run = sandbox.certform(&["apply", "plan.json"]).expect(1);
    assert!(
        run.stderr
            .contains("error: the saved plan is stale: the config changed"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_saved_plan_is_refused_once_another_apply_changed_the_state() {
    let sandbox = saved_create_of_api();
    sandbox.apply().expect(0);
    let run = sandbox.certform(&["apply", "plan.json"]).expect(1);
    assert!(
        run.stderr
            .contains("error: the saved plan is stale: the state of `api` changed"),
        "{}",
        run.stderr
    );
    assert_eq!(
        sandbox.orders_for("api.example.test"),
        1,
        "api ordered once"
    );
}

#[test]
fn a_saved_plan_is_refused_once_the_ca_read_back_changed() {
    let sandbox = saved_create_of_api();
    // `web` revoked at the CA behind certform's back.
    let order = sandbox.state_field("web", "order_id");
    let path = sandbox.path(&format!("keys/local-ca/local/orders/{order}.json"));
    let text = std::fs::read_to_string(&path).expect("order file");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("order JSON");
    json["status"] = "revoked".into();
    std::fs::write(&path, json.to_string()).expect("revoke");

    let run = sandbox.certform(&["apply", "plan.json"]).expect(1);
    assert!(
        run.stderr
            .contains("error: the saved plan is stale: the CA read-back of `web` changed"),
        "{}",
        run.stderr
    );
    assert_eq!(sandbox.orders_for("api.example.test"), 0, "nothing applied");
}

#[test]
fn an_edited_saved_plan_is_refused() {
    let sandbox = saved_create_of_api();
    let text = sandbox.read("plan.json");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("plan JSON");
    // A revocation of `web` slipped into the reviewed file.
    let serial = sandbox.state_field("web", "serial");
    json["changes"]
        .as_array_mut()
        .expect("changes")
        .push(serde_json::json!({
            "certificate": "web", "ca": "local", "reason": "routine", "deploy": [], "undeploy": [],
            "action": {
                "action": "revoke", "serial": serial, "reason": "key_compromise",
                "record_only": false, "forget": false, "cancel_order": null, "cancel_refund": false
            }
        }));
    std::fs::write(sandbox.path("plan.json"), json.to_string()).expect("write");
    let run = sandbox.certform(&["apply", "plan.json"]).expect(1);
    assert!(
        run.stderr.contains(
            "error: the saved plan's actions are not the ones its inputs give (the file was edited, or made by another certform): `web`"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(sandbox.orders_for("api.example.test"), 0, "nothing applied");
    assert!(
        sandbox
            .local_orders()
            .iter()
            .all(|o| o["status"] != "revoked"),
        "web was not revoked"
    );
}

#[test]
fn a_saved_plan_of_another_format_version_is_refused() {
    let sandbox = saved_create_of_api();
    let text = sandbox.read("plan.json");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("plan JSON");
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["certform_version"], env!("CARGO_PKG_VERSION"));
    json["format_version"] = 99.into();
    std::fs::write(sandbox.path("plan.json"), json.to_string()).expect("write");
    let run = sandbox.certform(&["apply", "plan.json"]).expect(1);
    assert!(run.stderr.contains("format version 99"), "{}", run.stderr);

    std::fs::write(sandbox.path("plan.json"), "not json").expect("write");
    let run = sandbox.certform(&["apply", "plan.json"]).expect(1);
    assert!(
        run.stderr.contains("the saved plan is not a certform plan"),
        "{}",
        run.stderr
    );
    assert_eq!(sandbox.orders_for("api.example.test"), 0);
}

#[test]
fn detailed_exitcode_is_the_same_in_every_format() {
    let sandbox = Sandbox::with_config(WEB);
    for format in ["text", "markdown", "json"] {
        sandbox
            .certform(&["plan", "--detailed-exitcode", "--format", format])
            .expect(2);
    }
    sandbox.apply().expect(0);
    for format in ["text", "markdown", "json"] {
        sandbox
            .certform(&["plan", "--detailed-exitcode", "--format", format])
            .expect(0);
    }
    sandbox.write_config("not toml [");
    for format in ["text", "markdown", "json"] {
        sandbox
            .certform(&["plan", "--detailed-exitcode", "--format", format])
            .expect(1);
    }
}

#[test]
fn plan_schema_file_is_current() {
    let path = manifest_dir().join("schemas/plan.schema.json");
    let schema = certform::apply::saved::json_schema();
    if std::env::var("CERTFORM_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, &schema).expect("write schema");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == schema,
        "schemas/plan.schema.json is out of date; run: cargo run -- schema --plan > schemas/plan.schema.json"
    );
}

/// A minimal JSON Schema check (no validator crate is available): types, required
/// properties, no unknown properties where the schema closes them, enums, consts, `$ref`,
/// `oneOf`/`anyOf` and arrays/maps, enough for the schemas schemars writes.
fn violations(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    value: &serde_json::Value,
    at: &str,
) -> Vec<String> {
    use serde_json::Value;
    let mut found = Vec::new();
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference
            .trim_start_matches("#/")
            .split('/')
            .fold(root, |node, key| &node[key]);
        return violations(root, target, value, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let matching = options
                .iter()
                .filter(|option| violations(root, option, value, at).is_empty())
                .count();
            let ok = if key == "oneOf" {
                matching == 1
            } else {
                matching >= 1
            };
            if !ok {
                found.push(format!("{at}: {matching} of the {key} options match"));
            }
        }
    }
    if let Some(expected) = schema.get("const") {
        if expected != value {
            found.push(format!("{at}: {value} is not {expected}"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            found.push(format!("{at}: {value} not in {options:?}"));
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        if !types
            .iter()
            .any(|t| *t == actual || (*t == "number" && actual == "integer"))
        {
            found.push(format!("{at}: {actual} is not {types:?}"));
        }
    }
    if let Value::Object(map) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(required) {
                found.push(format!("{at}: `{required}` missing"));
            }
        }
        for (key, inner) in map {
            let path = format!("{at}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(property) => found.extend(violations(root, property, inner, &path)),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => found.push(format!("{path}: not in the schema")),
                    Some(extra @ Value::Object(_)) => {
                        found.extend(violations(root, extra, inner, &path))
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (index, inner) in items.iter().enumerate() {
            found.extend(violations(root, item, inner, &format!("{at}[{index}]")));
        }
    }
    found
}

#[test]
fn a_real_plan_validates_against_the_plan_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&certform::apply::saved::json_schema()).expect("schema JSON");
    // Every kind of change the local CA gives quickly: create, then revoke and forget.
    let sandbox = Sandbox::with_config(&format!("{WEB}{API}"));
    let mut plans = Vec::new();
    plans.push(
        sandbox
            .certform(&["plan", "--format", "json"])
            .expect(0)
            .stdout,
    );
    sandbox.apply().expect(0);
    sandbox.write_config(&format!("{WEB}revoke = true\n"));
    plans.push(
        sandbox
            .certform(&["plan", "--format", "json"])
            .expect(0)
            .stdout,
    );
    for text in plans {
        let plan: serde_json::Value = serde_json::from_str(&text).expect("plan JSON");
        assert!(plan["changes"].as_array().is_some_and(|c| !c.is_empty()));
        let found = violations(&schema, &schema, &plan, "$");
        assert!(found.is_empty(), "{found:#?}\n{text}");
        // The checker is not vacuous: a plan without its version fails it.
        let mut broken = plan.clone();
        broken
            .as_object_mut()
            .expect("object")
            .remove("format_version");
        broken["changes"][0]["action"] = "explode".into();
        assert!(violations(&schema, &schema, &broken, "$").len() >= 2);
    }
}

/// The CI examples parse, and their jobs run the review workflow: plan to markdown with a
/// saved plan, then apply of that file.
#[test]
fn ci_examples_parse_and_run_plan_then_apply_of_the_saved_plan() {
    let read = |name: &str| -> serde_yaml::Value {
        let path = manifest_dir().join("examples/ci").join(name);
        let text = std::fs::read_to_string(&path).expect("example");
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let steps = |job: &serde_yaml::Value| -> String {
        let mut text = String::new();
        for step in job["steps"].as_sequence().into_iter().flatten() {
            text.push_str(step["run"].as_str().unwrap_or_default());
            text.push('\n');
        }
        for line in job["script"].as_sequence().into_iter().flatten() {
            text.push_str(line.as_str().unwrap_or_default());
            text.push('\n');
        }
        text
    };

    let github = read("github-actions.yml");
    let plan = steps(&github["jobs"]["plan"]);
    assert!(
        plan.contains("certform plan --format markdown --out certform.plan.json --detailed-exitcode > plan.md"),
        "{plan}"
    );
    assert!(plan.contains("gh pr comment"), "{plan}");
    let upload = github["jobs"]["plan"]["steps"]
        .as_sequence()
        .expect("steps")
        .iter()
        .find(|s| s["uses"].as_str() == Some("actions/upload-artifact@v4"))
        .expect("the plan is kept as an artifact");
    assert_eq!(upload["with"]["path"].as_str(), Some("certform.plan.json"));
    let apply = steps(&github["jobs"]["apply"]);
    assert!(
        apply.contains("certform apply certform.plan.json"),
        "{apply}"
    );
    assert!(github["jobs"]["apply"]["if"]
        .as_str()
        .is_some_and(|c| c.contains("merged == true")));

    let gitlab = read("gitlab-ci.yml");
    let plan = steps(&gitlab["certform-plan"]);
    assert!(
        plan.contains("certform plan --format markdown --out certform.plan.json"),
        "{plan}"
    );
    assert!(plan.contains("/notes"), "{plan}");
    assert_eq!(
        gitlab["certform-plan"]["artifacts"]["paths"][0].as_str(),
        Some("certform.plan.json")
    );
    let apply = steps(&gitlab["certform-apply"]);
    assert!(
        apply.contains("certform apply certform.plan.json"),
        "{apply}"
    );
}

/// Against the DigiCert simulator: a saved plan made while an email validation is pending
/// applies while nothing moved, and is refused once the order was approved at the CA. The
/// API key is in neither saved plan.
#[test]
fn a_saved_plan_is_refused_once_the_digicert_order_moved() {
    use certform::sim::digicert::{DomainSeed, Seed};

    const KEY: &str = "sim-admin-key";
    let domain = |name: &str, pending: bool| -> DomainSeed {
        let mut value = serde_json::json!({ "name": name });
        if pending {
            value["dcv_status"] = serde_json::json!("pending");
        }
        serde_json::from_value(value).expect("domain seed")
    };
    let sim = crate::digicert_sim::Sim::start(Seed {
        random_seed: Some(11),
        domains: vec![domain("mail.test", true)],
        ..Seed::default()
    });
    let config = format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\n\
         api_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{}\"\n\n[certificate.mail]\n\
         ca = \"dc\"\ncommon_name = \"mail.test\"\nproduct = \"ssl_basic\"\n\
         organization = 112233\nvalidity = {{ days = 90 }}\ndcv = {{ method = \"email\" }}\n\
         deploy = [{{ kind = \"files\", dir = \"out/mail\" }}]\n",
        sim.sim().base_url()
    );
    let sandbox = Sandbox::with_config(&config);
    let env = [("DIGICERT_API_KEY", KEY)];
    sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);

    for file in ["first.json", "second.json"] {
        let plan = sandbox
            .certform_env(&["plan", "--out", file, "--detailed-exitcode"], &env)
            .expect(2);
        assert!(plan.stdout.contains("wait mail"), "{}", plan.stdout);
        let saved = std::fs::read(sandbox.path(file)).expect("saved plan");
        assert!(
            !String::from_utf8_lossy(&saved).contains(KEY),
            "the API key leaked"
        );
        assert_eq!(certform::state::key_scan::find_private_key(&saved), None);
        if file == "first.json" {
            // Nothing moved: the pending order is checked again, exactly as planned.
            let run = sandbox
                .certform_env(&["apply", "first.json"], &env)
                .expect(0);
            assert!(run.stdout.contains("wait mail"), "{}", run.all());
        }
    }
    let order_id = sandbox
        .state_of("mail")
        .get("intent")
        .and_then(|i| i.get("order_id"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .expect("intent order id");
    sim.approve_email(&order_id);
    let run = sandbox
        .certform_env(&["apply", "second.json"], &env)
        .expect(1);
    assert!(
        run.stderr
            .contains("error: the saved plan is stale: the CA read-back of `mail` changed"),
        "{}",
        run.stderr
    );
    assert!(
        !sandbox.path("out/mail/cert.pem").exists(),
        "nothing applied"
    );
    assert_eq!(sim.orders_for("mail.test"), 1);
}

/// Against Pebble: what refresh reads back from an ACME CA (orders, the ARI renewal window)
/// is stable between plan and apply, so a saved plan applies when nothing moved.
#[test]
fn a_saved_plan_applies_against_pebble() {
    let pebble = crate::pebble::Pebble::start();
    drop(pebble.take_http_listener());
    let certificate = |name: &str| {
        format!(
            "\n[certificate.{name}]\ncommon_name = \"{name}.example.test\"\n\
             dcv = {{ method = \"http\", listen = \"127.0.0.1:{}\" }}\n\
             deploy = [{{ kind = \"files\", dir = \"out/{name}\" }}]\n",
            pebble.http_port()
        )
    };
    let account = format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.pebble]\nkind = \"acme\"\n\
         directory = \"{}\"\ncontact = [\"ops@example.test\"]\nca_bundle = \"{}\"\n",
        pebble.directory_url(),
        pebble.ca_bundle().display()
    );
    let sandbox = Sandbox::with_config(&format!("{account}{}", certificate("web")));
    sandbox.apply().expect(0);
    sandbox.write_config(&format!(
        "{account}{}{}",
        certificate("web"),
        certificate("api")
    ));
    let plan = sandbox
        .certform(&["plan", "--out", "plan.json", "--detailed-exitcode"])
        .expect(2);
    assert!(plan.stdout.contains("+ create api"), "{}", plan.stdout);
    let saved = sandbox.read("plan.json");
    assert!(saved.contains("\"web\""), "web is read back: {saved}");
    let run = sandbox.certform(&["apply", "plan.json"]).expect(0);
    assert!(run.stdout.contains("✓ create api"), "{}", run.all());
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}
