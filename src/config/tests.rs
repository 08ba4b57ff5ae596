//! Happy-path tests of `config::load`; the invalid cases live in `tests/fixtures/invalid/`.

use std::path::{Path, PathBuf};

use time::macros::date;
use time::Duration;

use super::*;
use crate::ca::digicert::settings as digicert;
use crate::spec::CaOptions;
use crate::spec::{
    CertificateSpec, DcvMethod, DcvRule, DeployTarget, DnsName, FilesTarget, KeySpec, OnRemove,
    RenewBefore, RevocationReason, Validity,
};

const FULL_TOML: &str = r#"
[state]
repo = "state"
dir  = "."
keys_dir = "keys"
push = false
remote = "origin"

[defaults]
ca = "local"
renew_before = "33%"
key = { algorithm = "ecdsa", size = 256 }
validity = { days = 90 }
on_remove = "forget"

[ca.local]
kind = "local"

[dns.bind]
kind = "rfc2136"
server = "127.0.0.1:53"
key_name = "certform."
algorithm = "hmac-sha256"
secret = { env = "TSIG_SECRET" }
zones = [{ zone = "a.example", key_name = "k.", algorithm = "hmac-sha512", secret = { file = "k.secret" } }]

[certificate.web]
ca = "local"
common_name = "www.example.test"
sans = ["example.test"]
key = { algorithm = "rsa", size = 3072 }
validity = { days = 90 }
renew_before = "30d"
on_remove = "forget"
revoke = false
revoke_reason = "superseded"
prevent_destroy = false
dcv = { method = "dns", provider = "bind" }
deploy = [{ kind = "files", dir = "out/web", reload = "systemctl reload nginx" }]
"#;

const FULL_YAML: &str = r#"
state:
  repo: state
  dir: "."
  keys_dir: keys
  push: false
  remote: origin
defaults:
  ca: local
  renew_before: "33%"
  key: { algorithm: ecdsa, size: 256 }
  validity:
    days: 90
  on_remove: forget
ca:
  local:
    kind: local
dns:
  bind:
    kind: rfc2136
    server: "127.0.0.1:53"
    key_name: certform.
    algorithm: hmac-sha256
    secret:
      env: TSIG_SECRET
    zones:
      - zone: a.example
        key_name: k.
        algorithm: hmac-sha512
        secret: { file: k.secret }
certificate:
  web:
    ca: local
    common_name: www.example.test
    sans:
      - example.test
    key:
      algorithm: rsa
      size: 3072
    validity: { days: 90 }
    renew_before: 30d
    on_remove: forget
    revoke: false
    revoke_reason: superseded
    prevent_destroy: false
    dcv:
      method: dns
      provider: bind
    deploy:
      - kind: files
        dir: out/web
        reload: systemctl reload nginx
"#;

fn source(path: &str, text: &str) -> Source {
    Source {
        path: PathBuf::from(path),
        text: text.to_string(),
    }
}

fn load_ok(sources: &[Source]) -> Config {
    match load(sources) {
        Ok(config) => config,
        Err(diagnostics) => {
            let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            panic!("unexpected diagnostics:\n{}", lines.join("\n"));
        }
    }
}

fn load_err(sources: &[Source]) -> Vec<Diagnostic> {
    match load(sources) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(diagnostics) => diagnostics,
    }
}

fn certificate<'c>(config: &'c Config, name: &str) -> &'c CertificateSpec {
    config
        .certificates
        .get(name)
        .unwrap_or_else(|| panic!("no certificate `{name}`"))
}

fn name(text: &str) -> DnsName {
    DnsName::new_unchecked(text)
}

#[test]
fn full_example_maps_to_the_model() {
    let config = load_ok(&[source("/etc/certform/main.toml", FULL_TOML)]);
    assert_eq!(config.files, vec![PathBuf::from("/etc/certform/main.toml")]);

    assert_eq!(config.state.repo, PathBuf::from("/etc/certform/state"));
    assert_eq!(config.state.dir, PathBuf::from("."));
    assert_eq!(
        config.state.keys_dir,
        Some(PathBuf::from("/etc/certform/keys"))
    );
    assert!(!config.state.push);
    assert_eq!(config.state.remote, "origin");
    assert_eq!(config.state.location.line, 2);

    let local = config.cas.get("local").unwrap_or_else(|| panic!("no ca"));
    assert_eq!(
        local.kind,
        CaKind::Local(LocalCaSettings {
            root_common_name: "certform local root (local)".to_string(),
            simulate_failures_ppm: 0,
        })
    );
    assert_eq!((local.location.line, local.location.column), (16, 1));

    let bind = config.dns.get("bind").unwrap_or_else(|| panic!("no dns"));
    assert_eq!(
        bind.kind,
        DnsKind::Rfc2136(Rfc2136Settings {
            server: "127.0.0.1:53".to_string(),
            key: Some(TsigKey {
                key_name: "certform.".to_string(),
                algorithm: TsigAlgorithm::HmacSha256,
                secret: SecretRef::Env("TSIG_SECRET".to_string()),
            }),
            zones: vec![ZoneKey {
                zone: "a.example".to_string(),
                key: TsigKey {
                    key_name: "k.".to_string(),
                    algorithm: TsigAlgorithm::HmacSha512,
                    secret: SecretRef::File(PathBuf::from("/etc/certform/k.secret")),
                },
            }],
        })
    );

    let web = certificate(&config, "web");
    assert_eq!(web.name, "web");
    assert_eq!(web.ca, "local");
    assert_eq!(web.common_name, name("www.example.test"));
    assert_eq!(
        web.sans,
        vec![name("example.test"), name("www.example.test")]
    );
    assert_eq!(web.key, KeySpec::Rsa(3072));
    assert_eq!(web.validity, Validity::Days(90));
    assert_eq!(web.renew_before, RenewBefore::Duration(Duration::days(30)));
    assert_eq!(web.on_remove, OnRemove::Forget);
    assert_eq!(web.revoke, None);
    assert!(!web.prevent_destroy);
    assert_eq!(
        web.dcv,
        vec![DcvRule {
            names: Vec::new(),
            method: DcvMethod::Dns {
                provider: "bind".to_string()
            },
        }]
    );
    assert_eq!(
        web.deploy,
        vec![DeployTarget::Files(FilesTarget {
            dir: PathBuf::from("/etc/certform/out/web"),
            relative_dir: Some(PathBuf::from("out/web")),
            cert: "cert.pem".to_string(),
            chain: "chain.pem".to_string(),
            fullchain: "fullchain.pem".to_string(),
            key: "privkey.pem".to_string(),
            mode: 0o644,
            key_mode: 0o600,
            owner: None,
            group: None,
            reload: Some("systemctl reload nginx".to_string()),
            reload_timeout: Duration::seconds(60),
            combined: None,
            cleanup: false,
            web_root: None,
            verify: None,
        })]
    );
    assert_eq!(web.ca_options, CaOptions::default());
    assert_eq!(
        (
            web.location.file.as_path(),
            web.location.line,
            web.location.column
        ),
        (Path::new("/etc/certform/main.toml"), 27, 1)
    );

    // `revoke_reason` without `revoke = true` is only a warning.
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert_eq!(config.warnings[0].key, "certificate.web.revoke_reason");
    assert_eq!(config.warnings[0].location.line, 36);
}

#[test]
fn yaml_equals_toml_apart_from_locations() {
    let toml = load_ok(&[source("/etc/certform/main.toml", FULL_TOML)]);
    let yaml = load_ok(&[source("/etc/certform/main.yaml", FULL_YAML)]);

    let mut state = yaml.state.clone();
    state.location = toml.state.location.clone();
    assert_eq!(state, toml.state);
    let strip = |config: &Config| {
        let cas: Vec<_> = config
            .cas
            .values()
            .map(|ca| (ca.name.clone(), ca.kind.clone()))
            .collect();
        let dns: Vec<_> = config
            .dns
            .values()
            .map(|dns| (dns.name.clone(), dns.kind.clone()))
            .collect();
        let certificates: Vec<_> = config
            .certificates
            .values()
            .map(|spec| {
                let mut spec = spec.clone();
                spec.location = Default::default();
                spec
            })
            .collect();
        (cas, dns, certificates)
    };
    assert_eq!(strip(&yaml), strip(&toml));

    let web = certificate(&yaml, "web");
    assert_eq!(web.location.file, PathBuf::from("/etc/certform/main.yaml"));
    assert_eq!((web.location.line, web.location.column), (32, 3));
    assert_eq!(yaml.warnings.len(), 1);
    assert_eq!(yaml.warnings[0].location.line, 44);
}

#[test]
fn defaults_fold_into_certificates() {
    let config = load_ok(&[source(
        "/c/main.toml",
        r#"
[defaults]
renew_before = "10d"
key = { algorithm = "ed25519" }
validity = { years = 1 }
on_remove = "revoke"

[certificate.a]
common_name = "a.example"

[certificate.b]
common_name = "b.example"
key = { algorithm = "ecdsa", size = 384 }
validity = { until = 2030-01-02 }
renew_before = "5%"
on_remove = "cancel"
revoke = true
prevent_destroy = true

[certificate.c]
common_name = "c.example"
key = { algorithm = "rsa" }
"#,
    )]);
    let a = certificate(&config, "a");
    assert_eq!(a.ca, "local");
    assert_eq!(a.key, KeySpec::Ed25519);
    assert_eq!(a.validity, Validity::Years(1));
    assert_eq!(a.renew_before, RenewBefore::Duration(Duration::days(10)));
    assert_eq!(a.on_remove, OnRemove::Revoke);
    assert_eq!(a.sans, vec![name("a.example")]);
    assert!(a.dcv.is_empty() && a.deploy.is_empty());

    let b = certificate(&config, "b");
    assert_eq!(b.key, KeySpec::Ecdsa(384));
    assert_eq!(b.validity, Validity::Until(date!(2030 - 01 - 02)));
    assert_eq!(b.renew_before, RenewBefore::Percent(5));
    assert_eq!(b.on_remove, OnRemove::Cancel);
    assert_eq!(b.revoke, Some(RevocationReason::Unspecified));
    assert!(b.prevent_destroy);

    assert_eq!(certificate(&config, "c").key, KeySpec::Rsa(2048));

    // Nothing configured at all: the built-in defaults.
    let bare = load_ok(&[source(
        "/c/a.toml",
        "[certificate.x]\ncommon_name = \"x.example\"\n",
    )]);
    let x = certificate(&bare, "x");
    assert_eq!(x.key, KeySpec::Ecdsa(256));
    assert_eq!(x.validity, Validity::Days(90));
    assert_eq!(x.renew_before, RenewBefore::Percent(33));
    assert_eq!(x.on_remove, OnRemove::Forget);
    assert_eq!(bare.state.repo, PathBuf::from("/c/state"));
    assert_eq!(bare.state.keys_dir, None);
    assert!(bare.warnings.is_empty());
}

#[test]
fn implicit_local_ca() {
    // No `[ca.*]` at all: `local` exists.
    let config = load_ok(&[source(
        "/c/a.toml",
        "[certificate.x]\ncommon_name = \"x.example\"\n",
    )]);
    assert_eq!(config.cas.keys().collect::<Vec<_>>(), vec!["local"]);
    assert_eq!(certificate(&config, "x").ca, "local");

    // Other CAs defined, and `ca = "local"` without `[ca.local]`: `local` is added.
    let config = load_ok(&[source(
        "/c/a.toml",
        "[ca.other]\nkind = \"local\"\n\n[certificate.x]\nca = \"local\"\ncommon_name = \"x.example\"\n\n[certificate.y]\nca = \"other\"\ncommon_name = \"y.example\"\n",
    )]);
    assert_eq!(
        config.cas.keys().collect::<Vec<_>>(),
        vec!["local", "other"]
    );

    // Other CAs defined and nobody asks for `local`: it is not added.
    let config = load_ok(&[source(
        "/c/a.toml",
        "[defaults]\nca = \"other\"\n\n[ca.other]\nkind = \"local\"\nroot_common_name = \"Other Root\"\n\n[certificate.y]\ncommon_name = \"y.example\"\n",
    )]);
    assert_eq!(config.cas.keys().collect::<Vec<_>>(), vec!["other"]);
    assert_eq!(certificate(&config, "y").ca, "other");
}

#[test]
fn names_are_normalised() {
    let config = load_ok(&[source(
        "/c/a.toml",
        "[certificate.idn]\ncommon_name = \"Bücher.Example\"\nsans = [\"*.bücher.example\", \"WWW.EXAMPLE.TEST\", \"xn--bcher-kva.example\"]\n",
    )]);
    let idn = certificate(&config, "idn");
    assert_eq!(idn.common_name, name("xn--bcher-kva.example"));
    assert_eq!(
        idn.sans,
        vec![
            name("*.xn--bcher-kva.example"),
            name("www.example.test"),
            name("xn--bcher-kva.example"),
        ]
    );
}

#[test]
fn several_validity_forms_warn_and_follow_precedence() {
    let config = load_ok(&[source(
        "/c/a.toml",
        "[certificate.a]\ncommon_name = \"a.example\"\nvalidity = { days = 30, years = 1, until = \"2031-05-06\" }\n\n[certificate.b]\ncommon_name = \"b.example\"\nvalidity = { days = 30, years = 1 }\n",
    )]);
    assert_eq!(
        certificate(&config, "a").validity,
        Validity::Until(date!(2031 - 05 - 06))
    );
    assert_eq!(certificate(&config, "b").validity, Validity::Days(30));
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
    assert_eq!(config.warnings[0].key, "certificate.a.validity");
    assert_eq!(
        (
            config.warnings[0].location.line,
            config.warnings[0].location.column
        ),
        (3, 12)
    );
    assert!(config.warnings[0].message.contains("`until` applies"));
    assert!(config.warnings[1].message.contains("`days` applies"));
}

/// An email `approver` is kept lowercase; a constructed address approves the name and its
/// subdomains (wildcards included) in one rule, and a catch-all rule is checked against the
/// names it is left with.
#[test]
fn an_email_approver_at_a_parent_approves_every_name_below_it() {
    let config = load_ok(&[source(
        "/c/a.toml",
        r#"
[certificate.web]
common_name = "example.test"
sans = ["*.example.test", "www.shop.example.test", "other.test"]

[[certificate.web.dcv]]
method = "email"
approver = "WebMaster@Example.Test"

[[certificate.web.dcv]]
method = "email"
approver = "admin@other.test"
names = ["other.test"]
"#,
    )]);
    let web = certificate(&config, "web");
    let approvers: Vec<Option<&str>> = web
        .dcv
        .iter()
        .map(|rule| match &rule.method {
            DcvMethod::Email { approver } => approver.as_deref(),
            other => panic!("not email: {other:?}"),
        })
        .collect();
    assert_eq!(
        approvers,
        [Some("webmaster@example.test"), Some("admin@other.test")]
    );
    // A sibling or a child of the name is not a parent of it.
    for approver in [
        "admin@shop.example.test",
        "admin@ample.test",
        "admin@le.test",
    ] {
        let errors = load_err(&[source(
            "/c/a.toml",
            &format!(
                "[certificate.web]\ncommon_name = \"example.test\"\ndcv = {{ method = \"email\", approver = \"{approver}\" }}\n"
            ),
        )]);
        assert_eq!(errors.len(), 1, "{approver}: {errors:?}");
        assert!(
            errors[0]
                .to_string()
                .contains("cannot approve `example.test`"),
            "{approver}: {}",
            errors[0]
        );
    }
}

#[test]
fn dcv_rules_split_names() {
    let config = load_ok(&[source(
        "/c/a.toml",
        r#"
[dns.bind]
kind = "rfc2136"
server = "[::1]:53"
zones = [{ zone = "example.test.", key_name = "k", secret = { env = "K" } }]

[certificate.web]
common_name = "example.test"
sans = ["*.example.test", "www.example.test", "mail.example.test"]

[[certificate.web.dcv]]
method = "dns"
provider = "bind"
names = ["*.example.test", "EXAMPLE.test"]

[[certificate.web.dcv]]
method = "email"
names = ["mail.example.test"]

[[certificate.web.dcv]]
method = "http"
webroot = "../www"
listen = ":80"

[[certificate.web.deploy]]
kind = "files"
dir = "/srv/a"
mode = "0640"
key_mode = "400"
owner = "www-data"
reload_timeout = "2m"

[[certificate.web.deploy]]
kind = "files"
dir = "/srv/b"
key = "key.pem"
"#,
    )]);
    let web = certificate(&config, "web");
    assert_eq!(
        web.dcv,
        vec![
            DcvRule {
                names: vec![name("*.example.test"), name("example.test")],
                method: DcvMethod::Dns {
                    provider: "bind".to_string()
                },
            },
            DcvRule {
                names: vec![name("mail.example.test")],
                method: DcvMethod::Email { approver: None },
            },
            DcvRule {
                names: Vec::new(),
                method: DcvMethod::Http {
                    webroot: Some(PathBuf::from("/www")),
                    listen: Some(":80".to_string()),
                    via: Vec::new(),
                },
            },
        ]
    );
    let DeployTarget::Files(first) = &web.deploy[0] else {
        unreachable!("a files target")
    };
    assert_eq!((first.mode, first.key_mode), (0o640, 0o400));
    assert_eq!(first.reload_timeout, Duration::minutes(2));
    assert_eq!(first.owner.as_deref(), Some("www-data"));
    let DeployTarget::Files(second) = &web.deploy[1] else {
        unreachable!("a files target")
    };
    assert_eq!(second.key, "key.pem");
    let bind = config.dns.get("bind").unwrap_or_else(|| panic!("no dns"));
    let DnsKind::Rfc2136(settings) = &bind.kind;
    assert_eq!(settings.zones[0].zone, "example.test");
    assert_eq!(settings.key, None);
}

#[test]
fn files_merge_and_errors_are_all_collected_and_sorted() {
    let config = load_ok(&[
        source("/c/b.yaml", "certificate:\n  b:\n    common_name: b.example\n"),
        source("/c/a.toml", "[state]\nrepo = \"../repo\"\ndir = \"./x/y/\"\n\n[certificate.a]\ncommon_name = \"a.example\"\n"),
    ]);
    assert_eq!(
        config.files,
        vec![PathBuf::from("/c/a.toml"), PathBuf::from("/c/b.yaml")]
    );
    assert_eq!(config.state.repo, PathBuf::from("/repo"));
    assert_eq!(config.state.dir, PathBuf::from("x/y"));
    assert_eq!(config.certificates.len(), 2);

    let diagnostics = load_err(&[
        source("/c/b.toml", "[certificate.b]\ncommon_name = \"b..example\"\nsans = [\"ok.example\", \"-bad.example\"]\n"),
        source("/c/a.toml", "[certificate.a]\ncomon_name = \"a.example\"\n\n[certificate.c]\ncommon_name = \"c.example\"\nkey = { algorithm = \"rsa\", size = 1024 }\nrenew_before = \"0d\"\n"),
    ]);
    let rendered: Vec<String> = diagnostics
        .iter()
        .map(|diagnostic| {
            format!(
                "{}:{}:{} {}",
                diagnostic.location.file.display(),
                diagnostic.location.line,
                diagnostic.location.column,
                diagnostic.key
            )
        })
        .collect();
    assert_eq!(
        rendered,
        vec![
            "/c/a.toml:2:1 certificate.a.comon_name",
            "/c/a.toml:6:35 certificate.c.key.size",
            "/c/a.toml:7:16 certificate.c.renew_before",
            "/c/b.toml:2:15 certificate.b.common_name",
            "/c/b.toml:3:23 certificate.b.sans[1]",
        ]
    );
    assert_eq!(
        diagnostics[0].hint.as_deref(),
        Some("did you mean `common_name`?")
    );
}

#[test]
fn never_panics_on_odd_input() {
    let odd = [
        "",
        "[",
        "certificate = 5",
        "[certificate]\nweb = 5",
        "[certificate.web]\ncommon_name = 5\nsans = \"x\"\nkey = 1\ndcv = 2\ndeploy = {}\n",
        "[certificate.web]\ncommon_name = \"a\"\ndcv = []\ndeploy = [1, {}]\n",
        "[dns.x]\nkind = \"rfc2136\"\nserver = \"\"\nsecret = 1\nzones = [1]\n",
        "[certificate.web]\ncommon_name = \"a\"\nvalidity = { days = 9223372036854775807 }\nrenew_before = \"9223372036854775807w\"\n",
    ];
    for text in odd {
        let _ = load(&[source("/c/a.toml", text)]);
    }
    let odd_yaml = [
        "- 1\n- 2\n",
        "null",
        "certificate:\n  web:\n",
        "? [a]\n: b\n",
        "a: &x 1\nb: *x\n",
        "certificate: !tag {}\n",
    ];
    for text in odd_yaml {
        let _ = load(&[source("/c/a.yaml", text)]);
    }
    assert!(load(&[]).is_err());
}

#[test]
fn schema_describes_the_file() {
    let schema = json_schema();
    assert!(schema.ends_with("}\n"));
    let value: serde_json::Value =
        serde_json::from_str(&schema).unwrap_or_else(|error| panic!("{error}"));
    let properties = &value["properties"];
    for section in ["state", "defaults", "ca", "dns", "certificate"] {
        assert!(properties.get(section).is_some(), "{section}");
    }
    assert_eq!(
        value["additionalProperties"],
        serde_json::Value::Bool(false)
    );
}

/// `[ca.NAME]`, `[dns.NAME]` and `deploy` entries are one schema branch per registered kind, each with `kind`
/// fixed and only that kind's fields.
#[test]
fn schema_has_one_branch_per_kind_with_only_its_fields() {
    let schema: serde_json::Value =
        serde_json::from_str(&json_schema()).unwrap_or_else(|error| panic!("{error}"));
    for (table, kinds) in [
        ("CaTable", crate::ca::registry::KIND_NAMES),
        ("DnsTable", crate::dns::registry::KIND_NAMES),
        ("DeployTable", crate::deploy::registry::KIND_NAMES),
    ] {
        let branches = schema["$defs"][table]["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{table} has no oneOf"));
        let consts: Vec<&str> = branches
            .iter()
            .filter_map(|branch| branch["properties"]["kind"]["const"].as_str())
            .collect();
        assert_eq!(consts, kinds, "{table}");
        for branch in branches {
            assert_eq!(branch["additionalProperties"], false, "{table}: {branch}");
            assert_eq!(branch["required"][0], "kind", "{table}: {branch}");
        }
    }
    let ca = &schema["$defs"]["CaTable"]["oneOf"];
    let fields = |index: usize| -> Vec<String> {
        ca[index]["properties"]
            .as_object()
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(
        fields(0),
        [
            "inventory",
            "kind",
            "max_orders_per_run",
            "root_common_name",
            "simulate_failures"
        ]
    );
    // The settings every account shares are in every branch.
    for index in 0..crate::ca::registry::KIND_NAMES.len() {
        assert!(fields(index).contains(&"inventory".to_string()), "{index}");
        assert!(
            fields(index).contains(&"max_orders_per_run".to_string()),
            "{index}"
        );
    }
    assert!(fields(1).contains(&"directory".to_string()));
    assert!(!fields(1).contains(&"api_key".to_string()));
    assert!(fields(2).contains(&"api_key".to_string()));
    assert!(!fields(2).contains(&"directory".to_string()));
    // Fields an account cannot do without are required in their branch.
    assert_eq!(ca[1]["required"], serde_json::json!(["kind", "directory"]));
    assert_eq!(ca[2]["required"], serde_json::json!(["kind", "api_key"]));
}

/// A misspelt or foreign field of a kind-tagged table names the kind and suggests among that
/// kind's fields only; `kind` itself is never reported as unknown.
#[test]
fn unknown_fields_of_a_kind_name_the_kind_and_its_fields() {
    let diagnostics = load_err(&[source(
        "/etc/certform/ca.toml",
        r#"
[ca.le]
kind = "acme"
directroy = "https://acme.example.test/directory"

[ca.corp]
kind = "local"
api_key = { env = "KEY" }

[dns.ns]
kind = "rfc2136"
sever = "127.0.0.1:53"
key_name = "k"
secret = { env = "TSIG" }
"#,
    )]);
    let found: Vec<(String, String, Option<String>)> = diagnostics
        .iter()
        .map(|d| (d.key.clone(), d.message.clone(), d.hint.clone()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "ca.le.directroy".to_string(),
                "unknown field `directroy` for a CA of `kind = \"acme\"`".to_string(),
                Some("did you mean `directory`?".to_string()),
            ),
            (
                "ca.corp.api_key".to_string(),
                "unknown field `api_key` for a CA of `kind = \"local\"`".to_string(),
                Some(
                    "expected one of `root_common_name`, `inventory`, `simulate_failures`, `max_orders_per_run`"
                        .to_string()
                ),
            ),
            (
                "dns.ns.sever".to_string(),
                "unknown field `sever` for a DNS provider of `kind = \"rfc2136\"`".to_string(),
                Some("did you mean `server`?".to_string()),
            ),
        ]
    );
}

#[test]
fn acme_account_maps_to_the_model() {
    let config = load_ok(&[source(
        "/etc/certform/acme.toml",
        r#"
[ca.pebble]
kind = "acme"
directory = "https://127.0.0.1:14000/dir"
contact = ["mailto:ops@example.test", "dev@example.test"]
ca_bundle = "pebble.minica.pem"
eab = { kid = "kid-1", hmac = { env = "EAB_HMAC" } }
profile = "shortlived"
preferred_chain = "ISRG Root X1"

[certificate.web]
common_name = "www.example.test"
dcv = { method = "http", listen = "127.0.0.1:5002" }
"#,
    )]);
    let ca = &config.cas["pebble"];
    let CaKind::Acme(acme) = &ca.kind else {
        panic!("expected an ACME account, got {:?}", ca.kind);
    };
    assert_eq!(acme.directory, "https://127.0.0.1:14000/dir");
    assert_eq!(acme.contact, vec!["ops@example.test", "dev@example.test"]);
    assert_eq!(
        acme.ca_bundle.as_deref(),
        Some(Path::new("/etc/certform/pebble.minica.pem"))
    );
    assert_eq!(
        acme.eab,
        Some(EabSettings {
            kid: "kid-1".into(),
            hmac: SecretRef::Env("EAB_HMAC".into()),
        })
    );
    assert_eq!(acme.profile.as_deref(), Some("shortlived"));
    assert_eq!(acme.preferred_chain.as_deref(), Some("ISRG Root X1"));
    assert_eq!(
        certificate(&config, "web").ca,
        "pebble",
        "the only declared CA"
    );
}

#[test]
fn digicert_account_and_order_fields_map_to_the_model() {
    let config = load_ok(&[source(
        "/etc/certform/digicert.toml",
        r#"
[ca.dc]
kind = "digicert"
api_key = { env = "DIGICERT_API_KEY" }
url = "http://127.0.0.1:8080/services/v2"
mode = "read-only"

[dns.bind]
kind = "rfc2136"
server = "127.0.0.1:53"
key_name = "k"
secret = { env = "TSIG" }

[certificate.shop]
ca = "dc"
common_name = "shop.example.test"
product = "ssl_basic"
organization = 123456
payment_method = "balance"
signature_hash = "sha384"
server_platform = -1
dcv = { method = "dns", provider = "bind" }
"#,
    )]);
    let CaKind::Digicert(dc) = &config.cas["dc"].kind else {
        panic!(
            "expected a DigiCert account, got {:?}",
            config.cas["dc"].kind
        );
    };
    assert_eq!(dc.url, "http://127.0.0.1:8080/services/v2/");
    assert!(dc.read_only);
    assert_eq!(dc.api_key, SecretRef::Env("DIGICERT_API_KEY".into()));
    let shop = &config.certificates["shop"];
    assert_eq!(
        shop.ca_options,
        CaOptions::Digicert(digicert::Options {
            product: Some("ssl_basic".to_string()),
            organization: Some(123456),
            payment_method: Some(digicert::PaymentMethod::Balance),
            signature_hash: Some(digicert::SignatureHash::Sha384),
            server_platform: Some(-1),
            dcv_method: Some(digicert::DcvMethodWire::DnsTxtToken),
        })
    );
    // The digest that decides reissues is the one certform computed when the options were a
    // sorted string map: state written before typed options must not see every DigiCert
    // certificate as changed.
    assert_eq!(
        shop.issuance_fields()[4..],
        [
            ("dcv_method", "dns-txt-token"),
            ("organization", "123456"),
            ("payment_method", "balance"),
            ("product", "ssl_basic"),
            ("server_platform", "-1"),
            ("signature_hash", "sha384"),
        ]
        .map(|(key, value)| (key.to_string(), value.to_string()))
    );
    assert_eq!(
        shop.issuance_digest(),
        "sha256:5b15168c2db220e3de2670188354d821e0d1ab4226d262f4aa0425341ae541c1"
    );
}

/// Every property that holds a URL a provider is reached at, in every table of the schema,
/// is a `ServiceUrl`: a new provider field named like one cannot skip the https rule.
#[test]
fn every_provider_url_field_is_a_service_url() {
    fn walk(
        value: &serde_json::Value,
        trail: &str,
        found: &mut Vec<String>,
        wrong: &mut Vec<String>,
    ) {
        // Kinds are branches of a `oneOf` array: walk arrays too.
        if let Some(items) = value.as_array() {
            for (index, item) in items.iter().enumerate() {
                walk(item, &format!("{trail}/{index}"), found, wrong);
            }
            return;
        }
        let Some(object) = value.as_object() else {
            return;
        };
        if let Some(serde_json::Value::Object(properties)) = object.get("properties") {
            for (name, property) in properties {
                let lower = name.to_ascii_lowercase();
                let url_like = lower == "url"
                    || lower == "directory"
                    || lower.ends_with("_url")
                    || lower.contains("endpoint");
                if url_like {
                    found.push(format!("{trail}.{name}"));
                    if property.get("$ref") != Some(&serde_json::json!("#/$defs/ServiceUrl")) {
                        wrong.push(format!("{trail}.{name}"));
                    }
                }
            }
        }
        for (key, child) in object {
            walk(child, &format!("{trail}/{key}"), found, wrong);
        }
    }
    let schema: serde_json::Value = serde_json::from_str(&json_schema()).expect("schema is JSON");
    let (mut found, mut wrong) = (Vec::new(), Vec::new());
    walk(&schema, "", &mut found, &mut wrong);
    assert!(found.len() >= 2, "url and directory at least: {found:?}");
    assert!(
        wrong.is_empty(),
        "URL fields that are not `ServiceUrl`: {wrong:?}"
    );
}

#[test]
fn loopback_http_is_for_simulators_only() {
    let account = |url: &str| {
        format!(
            "[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"K\" }}\nurl = \"{url}\"\n\n[ca.le]\nkind = \"acme\"\ndirectory = \"{url}\"\n\n[certificate.web]\nca = \"dc\"\ncommon_name = \"www.example.test\"\n"
        )
    };
    for url in [
        "http://localhost:8080/v2/",
        "http://[::1]:8080/v2/",
        "https://ca.example/v2/",
    ] {
        let config = load_ok(&[source("/c/certform.toml", &account(url))]);
        let CaKind::Digicert(dc) = &config.cas["dc"].kind else {
            panic!("{:?}", config.cas["dc"].kind);
        };
        assert_eq!(dc.url, url);
    }
    let errors = load_err(&[source(
        "/c/certform.toml",
        &account("http://ca.example/v2/"),
    )]);
    let keys: Vec<&str> = errors.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["ca.dc.url", "ca.le.directory"], "{errors:#?}");
    for error in &errors {
        assert!(error.message.contains("in clear"), "{error}");
        assert!(
            error
                .hint
                .as_deref()
                .is_some_and(|h| h.contains("loopback")),
            "{error}"
        );
    }
}

#[test]
fn private_keys_stay_out_of_the_state_repository() {
    let config = |state: &str, dir: &str| {
        format!(
            "[state]\n{state}\n\n[certificate.web]\ncommon_name = \"www.example.test\"\ndeploy = [{{ kind = \"files\", dir = \"{dir}\" }}]\n"
        )
    };
    // Siblings that share a prefix with the repository are outside it.
    let fine = load_ok(&[source(
        "/c/certform.toml",
        &config(
            "repo = \"state\"\nkeys_dir = \"state-keys\"",
            "state-out/web",
        ),
    )]);
    assert_eq!(
        fine.state.keys_dir.as_deref(),
        Some(Path::new("/c/state-keys"))
    );

    for (state, dir, wanted) in [
        (
            "repo = \"state\"\nkeys_dir = \"state\"",
            "out",
            vec!["state.keys_dir"],
        ),
        (
            "repo = \"/srv/repo\"\nkeys_dir = \"/srv/repo/k\"",
            "/srv/repo/./x/../live",
            vec!["state.keys_dir", "certificate.web.deploy[0].dir"],
        ),
        // The default repository is `state` next to the file.
        (
            "keys_dir = \"keys\"",
            "state/live",
            vec!["certificate.web.deploy[0].dir"],
        ),
        (
            "repo = \"r\"\ndir = \"cf\"\nkeys_dir = \"r/cf/keys\"",
            "r/other",
            vec!["state.keys_dir", "certificate.web.deploy[0].dir"],
        ),
    ] {
        let errors = load_err(&[source("/c/certform.toml", &config(state, dir))]);
        let keys: Vec<&str> = errors.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, wanted, "{state} / {dir}: {errors:#?}");
        for error in &errors {
            assert!(error.message.contains("could be committed"), "{error}");
        }
    }
    let errors = load_err(&[source(
        "/c/certform.toml",
        &config(
            "repo = \"r\"\ndir = \"cf\"\nkeys_dir = \"r/cf/keys\"",
            "out",
        ),
    )]);
    assert!(
        errors[0].message.contains("state folder `/c/r/cf`"),
        "{errors:#?}"
    );
    assert!(errors[0]
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("outside")));
}

#[test]
fn readable_key_modes_warn() {
    let config = |mode: &str| {
        format!(
            "[certificate.web]\ncommon_name = \"www.example.test\"\ndeploy = [{{ kind = \"files\", dir = \"out\", key_mode = \"{mode}\" }}]\n"
        )
    };
    for (mode, wanted) in [
        ("0644", Some("every user")),
        ("0640", Some("group")),
        ("0604", Some("every user")),
        ("0600", None),
        ("0400", None),
    ] {
        let loaded = load_ok(&[source("/c/certform.toml", &config(mode))]);
        let warnings: Vec<&Diagnostic> = loaded
            .warnings
            .iter()
            .filter(|w| w.key == "certificate.web.deploy[0].key_mode")
            .collect();
        match wanted {
            Some(wanted) => {
                assert_eq!(warnings.len(), 1, "{mode}: {:?}", loaded.warnings);
                assert!(warnings[0].message.contains(wanted), "{}", warnings[0]);
                assert!(warnings[0]
                    .message
                    .contains(&format!("`key_mode = \"{mode}\"`")));
                assert_eq!(warnings[0].location.line, 3);
            }
            None => assert!(warnings.is_empty(), "{mode}: {warnings:?}"),
        }
    }
}

#[test]
fn nesting_is_capped_before_the_yaml_parser_sees_it() {
    let deep_flow = format!("a: {}{}\n", "[".repeat(33), "]".repeat(33));
    let errors = load_err(&[source("/c/a.yaml", &deep_flow)]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].message.contains("deeper than 32 levels"));
    assert_eq!(
        (errors[0].location.line, errors[0].location.column),
        (1, 36)
    );

    // Block nesting past the cap is refused after parsing, TOML nesting likewise.
    let deep_block: String = (0..40)
        .map(|level| format!("{}k:\n", "  ".repeat(level)))
        .collect();
    let errors = load_err(&[source("/c/b.yaml", &deep_block)]);
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("deeper than 32 levels")),
        "{errors:#?}"
    );
    let deep_toml = format!("a = {}{}\n", "[".repeat(40), "]".repeat(40));
    let errors = load_err(&[source("/c/c.toml", &deep_toml)]);
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("deeper than 32 levels")),
        "{errors:#?}"
    );

    // Brackets in quotes, comments, block scalars and plain values are not nesting.
    let many = "[".repeat(40);
    let shallow = format!(
        "certificate:\n  web:\n    common_name: www.example.test # {many}\n    deploy:\n      - kind: files\n        dir: 'a{many}'\n        owner: \"b{many}\"\n        group: c{many}\n        reload: |\n          echo {many}\n"
    );
    let loaded = load_ok(&[source("/c/d.yaml", &shallow)]);
    assert_eq!(loaded.certificates.len(), 1);
}

/// Lookups in a table with many entries go through its key index: locations stay exact.
#[test]
fn large_tables_locate_their_entries() {
    let mut text = String::new();
    for index in 0..200 {
        text.push_str(&format!(
            "[certificate.c{index}]\ncommon_name = \"c{index}.example.test\"\n"
        ));
    }
    text.push_str("[certificate.bad]\ncommon_name = \"bad name\"\n");
    text.push_str(
        "[certificate.c7-copy]\ncommon_name = \"c7.example.test\"\nvalidity = { days = 0 }\n",
    );
    let errors = load_err(&[source("/c/many.toml", &text)]);
    let found: Vec<(String, usize)> = errors
        .iter()
        .map(|e| (e.key.clone(), e.location.line))
        .collect();
    assert_eq!(
        found,
        [
            ("certificate.bad.common_name".to_string(), 402),
            ("certificate.c7-copy.validity.days".to_string(), 405),
        ]
    );
}

#[test]
fn safety_thresholds_come_from_defaults() {
    let config = load_ok(&[source(
        "/c/a.toml",
        "[defaults]\nmax_destructive = 0\nmax_reissue_percent = 100\n\n[certificate.a]\ncommon_name = \"a.example\"\n",
    )]);
    assert_eq!(
        config.thresholds,
        crate::plan::Thresholds {
            max_destructive: 0,
            max_reissue_percent: 100,
            max_renewals_per_run: None,
        }
    );
    let config = load_ok(&[source(
        "/c/a.toml",
        "[certificate.a]\ncommon_name = \"a.example\"\n",
    )]);
    assert_eq!(
        config.thresholds,
        crate::plan::Thresholds {
            max_destructive: 5,
            max_reissue_percent: 50,
            max_renewals_per_run: None,
        }
    );
    let errors = load_err(&[source(
        "/c/a.toml",
        "[defaults]\nmax_destructive = -1\nmax_reissue_percent = 101\n",
    )]);
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "/c/a.toml:2:19: `defaults.max_destructive`: `max_destructive` must be 0 or more, not -1 (hint: `apply --force` overrides a threshold for one run)",
            "/c/a.toml:3:23: `defaults.max_reissue_percent`: `max_reissue_percent` must be from 0 to 100, not 101 (hint: `apply --force` overrides a threshold for one run)",
        ]
    );
}

#[test]
fn revoke_reason_counts_for_on_remove_revoke() {
    let config = load_ok(&[source(
        "/c/a.toml",
        "[certificate.a]\ncommon_name = \"a.example\"\non_remove = \"revoke\"\nrevoke_reason = \"superseded\"\n",
    )]);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let a = certificate(&config, "a");
    assert_eq!(a.revoke_reason, Some(RevocationReason::Superseded));
    assert_eq!(a.revoke, None);
}

#[test]
fn age_keys_need_valid_recipients_and_recipients_need_age() {
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let config = |state: &str| {
        format!("[state]\n{state}\n\n[certificate.web]\ncommon_name = \"www.example.test\"\n")
    };
    let age = load_ok(&[source(
        "/c/certform.toml",
        &config(&format!(
            "keys = \"age\"\nage_recipients = [\"{recipient}\", \" {recipient} \"]\nage_identity = {{ file = \"id.txt\" }}"
        )),
    )]);
    assert_eq!(
        age.state.keys,
        crate::config::KeyBackend::Age(crate::config::AgeSettings {
            recipients: vec![recipient.clone()],
            identity: Some(SecretRef::File("/c/id.txt".into())),
        })
    );
    let files = load_ok(&[source(
        "/c/certform.toml",
        &config("age_identity = { env = \"AGE_ID\" }"),
    )]);
    assert_eq!(
        files.state.keys,
        crate::config::KeyBackend::Files {
            identity: Some(SecretRef::Env("AGE_ID".into()))
        }
    );
    assert_eq!(
        load_ok(&[source("/c/certform.toml", &config("keys = \"files\""))])
            .state
            .keys,
        crate::config::KeyBackend::default()
    );

    for (state, key, message) in [
        ("keys = \"age\"", "state.keys", "needs `age_recipients`"),
        (
            "keys = \"age\"\nage_recipients = []",
            "state.age_recipients",
            "at least one",
        ),
        (
            &*format!("age_recipients = [\"{recipient}\"]"),
            "state.age_recipients",
            "only with `keys = \"age\"`",
        ),
        (
            &*format!("keys = \"age\"\nage_recipients = [\"{recipient}\", \"age1xyz\"]"),
            "state.age_recipients[1]",
            "`age1xyz` is not an age X25519 recipient",
        ),
        (
            "keys = \"age\"\nage_recipients = [\"AGE-SECRET-KEY-1QQQ\"]",
            "state.age_recipients[0]",
            "`AGE-SECRET-KEY-...` is not",
        ),
        (
            &*format!("keys = \"age\"\nage_recipients = [\"{recipient}\"]\nage_identity = \"AGE-SECRET-KEY-1QQQ\""),
            "state.age_identity",
            "plaintext secret",
        ),
    ] {
        let errors = load_err(&[source("/c/certform.toml", &config(state))]);
        assert_eq!(errors.len(), 1, "{state}: {errors:#?}");
        assert_eq!(errors[0].key, key, "{state}: {errors:#?}");
        assert!(errors[0].message.contains(message), "{state}: {errors:#?}");
        assert!(!errors[0].to_string().contains("1QQQ"), "{errors:#?}");
    }
}

// --- schedule lane: run budgets ---

#[test]
fn run_budgets_come_from_defaults_and_each_ca() {
    let config = load_ok(&[source(
        "/c/a.toml",
        "[defaults]\nmax_renewals_per_run = 40\n\n[ca.le]\nkind = \"acme\"\ndirectory = \"https://acme.example/dir\"\nmax_orders_per_run = 7\n\n[ca.local]\nkind = \"local\"\n\n[certificate.a]\nca = \"le\"\ncommon_name = \"a.example\"\n",
    )]);
    assert_eq!(config.thresholds.max_renewals_per_run, Some(40));
    assert_eq!(config.cas["le"].max_orders_per_run, Some(7));
    assert_eq!(config.cas["local"].max_orders_per_run, None);
    let errors = load_err(&[source(
        "/c/a.toml",
        "[defaults]\nmax_renewals_per_run = 0\n\n[ca.local]\nkind = \"local\"\nmax_orders_per_run = -3\n",
    )]);
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "/c/a.toml:2:24: `defaults.max_renewals_per_run`: `max_renewals_per_run` must be 1 or more, not 0 (hint: leave it out for no limit)",
            "/c/a.toml:6:22: `ca.local.max_orders_per_run`: `max_orders_per_run` must be 1 or more, not -3 (hint: leave it out for the CA's documented limit; orders beyond it wait for the next run)",
        ]
    );
}

#[test]
fn simulated_failures_are_a_share_from_0_to_1() {
    let config = load_ok(&[source(
        "/c/a.toml",
        "[ca.local]\nkind = \"local\"\nsimulate_failures = 0.02\n",
    )]);
    let CaKind::Local(local) = &config.cas["local"].kind else {
        panic!("a local CA");
    };
    assert_eq!(local.simulate_failures_ppm, 20_000);
    let errors = load_err(&[source(
        "/c/a.toml",
        "[ca.local]\nkind = \"local\"\nsimulate_failures = 1.5\n",
    )]);
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["/c/a.toml:3:21: `ca.local.simulate_failures`: `simulate_failures` must be from 0 to 1, not 1.5"]
    );
}

#[test]
fn a_validated_certificate_keeps_no_spare_room_in_its_vectors() {
    // A fleet keeps 10,000 specs for the whole run; a deploy target is a few hundred bytes and
    // a vector's first push reserves four, so spare room would triple the model.
    let config = load_ok(&[source(
        "/etc/certform/certform.toml",
        r#"
[certificate.web]
common_name = "www.example.test"
sans = ["example.test", "api.example.test", "www.example.test"]
dcv = { method = "http", webroot = "/srv/www" }
deploy = [{ kind = "files", dir = "out/web" }]
"#,
    )]);
    let spec = certificate(&config, "web");
    assert_eq!(spec.deploy.len(), 1);
    assert_eq!(spec.deploy.capacity(), spec.deploy.len());
    assert_eq!(spec.sans.len(), 3);
    assert_eq!(spec.sans.capacity(), spec.sans.len());
    assert_eq!(spec.dcv.len(), 1);
    assert_eq!(spec.dcv.capacity(), spec.dcv.len());
}

#[test]
fn the_state_settings_are_handed_over_once_known_and_valid_whatever_follows() {
    let seen = |text: &str| {
        let mut seen = Vec::new();
        let result = load_with(&[source("/etc/certform/a.toml", text)], &mut |state| {
            seen.push(state.clone())
        });
        (seen, result)
    };
    let state = "[state]\nrepo = \"/srv/state\"\n[ca.local]\nkind = \"local\"\n";
    let valid = format!("{state}[certificate.web]\ncommon_name = \"www.example.test\"\n");
    let (handed, result) = seen(&valid);
    let config = result.expect("valid");
    assert_eq!(handed, vec![config.state.clone()]);
    assert_eq!(handed[0].repo, PathBuf::from("/srv/state"));
    // A certificate's error comes after: the settings were handed over, the load fails.
    let (handed, result) = seen(&format!(
        "{state}[certificate.web]\ncommon_name = \"not a name!\"\n"
    ));
    assert_eq!(handed.len(), 1);
    assert!(result.is_err());
    // An error in `[state]` itself, or a file that does not parse: nothing handed over.
    let (handed, result) = seen("[state]\nrepo = 3\n[ca.local]\nkind = \"local\"\n");
    assert!(handed.is_empty() && result.is_err());
    let (handed, result) = seen(&format!("{valid}[certificate.x\n"));
    assert!(handed.is_empty() && result.is_err());
    let (handed, result) = seen("[state]\nrepo = \"/srv/state\"\nbogus = 1\n");
    assert!(handed.is_empty() && result.is_err(), "{handed:?}");
}
