//! The `pkcs12`, `jks` and `command` tables through `config::load`.

use std::path::PathBuf;

use time::Duration;

use crate::config::{load, Config, Diagnostic, SecretRef, Source};
use crate::spec::DeployTarget;

fn with_deploy(deploy: &str) -> Vec<Source> {
    vec![Source {
        path: PathBuf::from("/etc/certform/certform.toml"),
        text: format!(
            "[state]\nrepo = \"/var/lib/certform/state\"\nkeys_dir = \"/var/lib/certform/keys\"\n\n\
             [ca.local]\nkind = \"local\"\n\n[certificate.web]\nca = \"local\"\n\
             common_name = \"example.test\"\ndeploy = [{deploy}]\n"
        ),
    }]
}

fn targets(deploy: &str) -> Vec<DeployTarget> {
    let config: Config = load(&with_deploy(deploy)).unwrap_or_else(|diagnostics| {
        let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        panic!("unexpected diagnostics:\n{}", lines.join("\n"))
    });
    config.certificates["web"].deploy.clone()
}

fn errors(deploy: &str) -> Vec<Diagnostic> {
    match load(&with_deploy(deploy)) {
        Ok(config) => panic!("accepted: {:?}", config.certificates["web"].deploy),
        Err(diagnostics) => diagnostics,
    }
}

#[test]
fn keystore_defaults_and_ids() {
    let targets = targets(
        r#"{ kind = "pkcs12", path = "tls/App.p12", password = { env = "P12" } },
           { kind = "jks", path = "/srv/t.jks", store_password = { file = "jks.pass" }, key_password = { env = "KEY" }, mode = "0640", reload = "true", reload_timeout = "5s", cleanup = true },
           { kind = "command", command = "hook" }"#,
    );
    let DeployTarget::Pkcs12(p12) = &targets[0] else {
        panic!("{:?}", targets[0])
    };
    assert_eq!(p12.file.path, PathBuf::from("/etc/certform/tls/App.p12"));
    assert_eq!(p12.file.relative_path, Some(PathBuf::from("tls/App.p12")));
    assert_eq!(p12.file.alias, "app", "file stem, lowercase");
    assert_eq!(p12.file.mode, 0o600);
    assert_eq!(p12.file.reload, None);
    assert_eq!(p12.file.reload_timeout, Duration::seconds(60));
    assert!(!p12.file.cleanup && !p12.legacy);
    assert_eq!(p12.password, SecretRef::Env("P12".to_string()));
    assert_eq!(targets[0].id(), "pkcs12:tls/App.p12");
    assert_eq!(targets[0].dirs(), vec![PathBuf::from("/etc/certform/tls")]);

    let DeployTarget::Jks(jks) = &targets[1] else {
        panic!("{:?}", targets[1])
    };
    assert_eq!(jks.file.relative_path, None);
    assert_eq!(jks.file.alias, "t");
    assert_eq!(jks.file.mode, 0o640);
    assert_eq!(jks.file.reload.as_deref(), Some("true"));
    assert_eq!(jks.file.reload_timeout, Duration::seconds(5));
    assert!(jks.file.cleanup && targets[1].cleanup());
    assert_eq!(
        jks.store_password,
        SecretRef::File(PathBuf::from("/etc/certform/jks.pass"))
    );
    assert_eq!(jks.key_password, Some(SecretRef::Env("KEY".to_string())));
    assert_eq!(targets[1].id(), "jks:/srv/t.jks");

    let DeployTarget::Command(command) = &targets[2] else {
        panic!("{:?}", targets[2])
    };
    assert_eq!(command.timeout, Duration::seconds(60));
    assert_eq!(targets[2].id(), "command:hook");
    assert!(targets[2].dirs().is_empty() && !targets[2].cleanup());
}

#[test]
fn the_digest_follows_the_settings_but_not_the_checkout() {
    let one = targets(r#"{ kind = "pkcs12", path = "a.p12", password = { env = "P" } }"#);
    let moved = load(&[Source {
        path: PathBuf::from("/elsewhere/certform.toml"),
        text: with_deploy(r#"{ kind = "pkcs12", path = "a.p12", password = { env = "P" } }"#)[0]
            .text
            .clone(),
    }])
    .expect("loads");
    assert_eq!(
        one[0].digest(),
        moved.certificates["web"].deploy[0].digest()
    );
    let legacy =
        targets(r#"{ kind = "pkcs12", path = "a.p12", password = { env = "P" }, legacy = true }"#);
    assert_ne!(one[0].digest(), legacy[0].digest());
    let hook = targets(r#"{ kind = "command", command = "a" }"#);
    let other = targets(r#"{ kind = "command", command = "a", timeout = "5s" }"#);
    assert_ne!(hook[0].digest(), other[0].digest());
}

#[test]
fn bad_keystore_and_hook_settings_are_named() {
    let found = errors(
        r#"{ kind = "pkcs12", path = "" },
           { kind = "jks", path = "b.jks", store_password = { env = "1BAD" }, alias = "Up", mode = "999", reload = " ", reload_timeout = "0s" },
           { kind = "jks", path = "b.jks", store_password = { env = "S" }, alias = "" },
           { kind = "command", command = "  " },
           { kind = "command", command = "x", timeout = "soon" },
           { kind = "command", command = "x" }"#,
    );
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    let has = |key: &str, fragment: &str| {
        assert!(
            found
                .iter()
                .any(|d| d.key == key && d.to_string().contains(fragment)),
            "no `{fragment}` at `{key}` in:\n{}",
            text.join("\n")
        );
    };
    has(
        "certificate.web.deploy[0].path",
        "must name a keystore file",
    );
    has(
        "certificate.web.deploy[0]",
        "missing `password` for the `pkcs12` target",
    );
    has(
        "certificate.web.deploy[1].store_password.env",
        "invalid environment variable name",
    );
    has("certificate.web.deploy[1].alias", "has uppercase letters");
    has("certificate.web.deploy[1].mode", "");
    has("certificate.web.deploy[1].reload", "must not be empty");
    has(
        "certificate.web.deploy[1].reload_timeout",
        "must be positive",
    );
    has(
        "certificate.web.deploy[2].path",
        "already written by `deploy[1]`",
    );
    has(
        "certificate.web.deploy[2].alias",
        "1 to 255 printable characters",
    );
    has("certificate.web.deploy[3].command", "must not be empty");
    has("certificate.web.deploy[4].timeout", "");
    has(
        "certificate.web.deploy[5].command",
        "`deploy[4]` of this certificate already runs this command",
    );
}

#[test]
fn a_readable_keystore_mode_warns() {
    let config = load(&with_deploy(
        r#"{ kind = "pkcs12", path = "a.p12", password = { env = "P" }, mode = "0644" }"#,
    ))
    .expect("a warning only");
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.message.contains("lets others read the keystore")),
        "{:?}",
        config.warnings
    );
}
