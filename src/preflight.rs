//! Preflight: checks that what the configuration references outside itself is there, for
//! `certform validate` (secret environment variables and files, trust-anchor files), before a
//! `plan` or `apply` would fail on it.
//!
//! This reads the environment and the file system, so it lives outside the pure `config`.
//! A secret's value is read only to see that it is there and is never kept, shown or logged.

use std::path::PathBuf;

use crate::config::{Config, DnsKind, SecretRef};
use crate::spec::Location;

/// Something the configuration reads from outside itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Where the referencing section is defined.
    pub location: Location,
    /// Dotted key path, e.g. `ca.digicert.api_key`.
    pub key: String,
    pub target: Target,
}

/// What a reference points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A secret, in an environment variable or a file.
    Secret(SecretRef),
    /// A file that is not secret (a CA bundle).
    File(PathBuf),
}

/// A reference that cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub location: Location,
    pub key: String,
    /// What is missing, naming the variable or file (never a value).
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: `{}`: {}", self.location, self.key, self.message)
    }
}

/// Every secret and file the configuration references, in configuration order (`[state]`'s
/// push credentials, CAs, then DNS providers, each sorted by name). Pure.
pub fn references(config: &Config) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut add = |location: &Location, key: String, target: Target| {
        found.push(Reference {
            location: location.clone(),
            key,
            target,
        });
    };
    let state = &config.state;
    if state.push {
        let auth = &state.push_auth;
        for (key, secret) in [("push_token", &auth.token), ("push_ssh_key", &auth.ssh_key)] {
            if let Some(secret) = secret {
                add(
                    &state.location,
                    format!("state.{key}"),
                    Target::Secret(secret.clone()),
                );
            }
        }
        if let Some(known_hosts) = &auth.known_hosts {
            add(
                &state.location,
                "state.push_known_hosts".to_string(),
                Target::File(known_hosts.clone()),
            );
        }
    }
    if let Some(identity) = config.state.keys.identity() {
        // Without it, keys in the state repository cannot be read (deploy, re-encryption).
        add(
            &config.state.location,
            "state.age_identity".to_string(),
            Target::Secret(identity.clone()),
        );
    }
    for (name, ca) in &config.cas {
        for (key, target) in ca.kind.references() {
            add(&ca.location, format!("ca.{name}.{key}"), target);
        }
    }
    for (name, dns) in &config.dns {
        match &dns.kind {
            DnsKind::Rfc2136(settings) => {
                if let Some(key) = &settings.key {
                    add(
                        &dns.location,
                        format!("dns.{name}.secret"),
                        Target::Secret(key.secret.clone()),
                    );
                }
                for (index, zone) in settings.zones.iter().enumerate() {
                    add(
                        &dns.location,
                        format!("dns.{name}.zones[{index}].secret"),
                        Target::Secret(zone.key.secret.clone()),
                    );
                }
            }
        }
    }
    found
}

/// The references of `config` that cannot be followed now: unset or empty environment
/// variables, missing, unreadable or empty files.
pub fn check(config: &Config) -> Vec<Finding> {
    references(config)
        .into_iter()
        .filter_map(|reference| {
            let message = problem(&reference.target)?;
            Some(Finding {
                location: reference.location,
                key: reference.key,
                message,
            })
        })
        .collect()
}

/// Why `target` cannot be read, or `None` when it can.
fn problem(target: &Target) -> Option<String> {
    match target {
        Target::Secret(secret) => {
            // The value is dropped at once; only the error (which names no value) is kept.
            let error = crate::secrets::resolve(secret).err()?;
            Some(with_causes(&error))
        }
        Target::File(path) => match std::fs::File::open(path) {
            Ok(_) => None,
            Err(error) => Some(format!("cannot read file `{}`: {error}", path.display())),
        },
    }
}

/// An error and its sources on one line.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, text: &str) -> Config {
        crate::config::load(&[crate::config::Source {
            path: dir.join("certform.toml"),
            text: text.to_string(),
        }])
        .expect("valid config")
    }

    #[test]
    fn finds_missing_variables_and_files_without_showing_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("present.secret"), "s3cr3t-file-value\n").expect("write");
        std::fs::write(dir.path().join("empty.secret"), "\n").expect("write");
        let config = config(
            dir.path(),
            r#"
[state]
repo = "state"

[ca.dc]
kind = "digicert"
api_key = { env = "CERTFORM_PREFLIGHT_TEST_SURELY_UNSET" }
url = "http://127.0.0.1:8080/services/v2"

[ca.le]
kind = "acme"
directory = "https://127.0.0.1:14000/dir"
ca_bundle = "missing-bundle.pem"
eab = { kid = "kid-1", hmac = { env = "PATH" } }

[dns.bind]
kind = "rfc2136"
server = "127.0.0.1:53"
key_name = "certform."
algorithm = "hmac-sha256"
secret = { file = "present.secret" }
zones = [
  { zone = "a.example", key_name = "a.", secret = { file = "empty.secret" } },
  { zone = "b.example", key_name = "b.", secret = { file = "absent.secret" } },
]
"#,
        );
        assert_eq!(
            references(&config)
                .iter()
                .map(|r| r.key.as_str())
                .collect::<Vec<_>>(),
            [
                "ca.dc.api_key",
                "ca.le.ca_bundle",
                "ca.le.eab.hmac",
                "dns.bind.secret",
                "dns.bind.zones[0].secret",
                "dns.bind.zones[1].secret",
            ]
        );
        let findings = check(&config);
        let keys: Vec<&str> = findings.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ca.dc.api_key",
                "ca.le.ca_bundle",
                "dns.bind.zones[0].secret",
                "dns.bind.zones[1].secret",
            ]
        );
        let text: String = findings.iter().map(|f| format!("{f}\n")).collect();
        assert!(
            text.contains("`CERTFORM_PREFLIGHT_TEST_SURELY_UNSET` is not set"),
            "{text}"
        );
        assert!(text.contains("missing-bundle.pem"), "{text}");
        assert!(text.contains("empty.secret` is empty"), "{text}");
        assert!(text.contains("absent.secret"), "{text}");
        assert!(text.contains("certform.toml:"), "locations: {text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        let path = std::env::var("PATH").unwrap_or_default();
        assert!(path.is_empty() || !text.contains(&path), "{text}");
    }
}
