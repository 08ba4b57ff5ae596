//! The validated configuration the rest of certform works with.
//!
//! Built only by `config::load`; anything that reaches these types has passed validation.
//! Performs no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::{CertificateSpec, Location};

/// The whole validated configuration (every file of a config directory merged).
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The files the configuration was read from, sorted.
    pub files: Vec<PathBuf>,
    pub state: StateSettings,
    pub cas: BTreeMap<String, CaSettings>,
    pub dns: BTreeMap<String, DnsSettings>,
    pub certificates: BTreeMap<String, CertificateSpec>,
    /// `[defaults] max_destructive` and `max_reissue_percent`: beyond them `apply` needs
    /// `--force`.
    pub thresholds: crate::plan::Thresholds,
    /// Non-fatal findings (e.g. several validity forms given), shown by `validate` and `plan`.
    pub warnings: Vec<Diagnostic>,
}

/// `[state]`: where state and keys live. Paths are absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateSettings {
    /// Git work tree holding state; created if missing.
    pub repo: PathBuf,
    /// Sub-directory of `repo` holding certform's files (relative, normalised; `.` for the root).
    pub dir: PathBuf,
    /// Directory of private keys; `None` means the default outside every repository.
    pub keys_dir: Option<PathBuf>,
    pub push: bool,
    pub remote: String,
    /// Credentials and host keys for `push` (`push_token`, `push_ssh_key`, ...).
    pub push_auth: PushAuth,
    /// Where certificate private keys are kept.
    pub keys: KeyBackend,
    pub location: Location,
}

impl StateSettings {
    /// `<repo>/<dir>`: certform's part of the state repository.
    pub fn root(&self) -> PathBuf {
        if self.dir.as_os_str() == "." {
            self.repo.clone()
        } else {
            self.repo.join(&self.dir)
        }
    }
}

/// `[state] keys`: where certificate private keys are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum KeyBackend {
    /// PEM files in `keys_dir` (the default).
    Files {
        /// `age_identity`, kept to move keys an earlier `keys = "age"` left in the repository.
        identity: Option<SecretRef>,
    },
    /// In the state repository, encrypted with age.
    Age(AgeSettings),
}

/// `keys = "age"`: who can read the keys, and where this run finds its identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgeSettings {
    /// `age1...` X25519 recipients, each checked to parse, in the order written.
    pub recipients: Vec<String>,
    /// `age_identity`; `None` when not configured (keys can be written, not read).
    pub identity: Option<SecretRef>,
}

impl Default for KeyBackend {
    fn default() -> Self {
        KeyBackend::Files { identity: None }
    }
}

impl KeyBackend {
    /// The configured `age_identity`, whichever backend.
    pub fn identity(&self) -> Option<&SecretRef> {
        match self {
            KeyBackend::Files { identity } => identity.as_ref(),
            KeyBackend::Age(age) => age.identity.as_ref(),
        }
    }
}

/// How `push` authenticates: secret references and public paths only, safe to print.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PushAuth {
    /// `push_token`: HTTP basic auth password for an HTTPS remote.
    pub token: Option<SecretRef>,
    /// `push_user`: the user name sent with the token.
    pub user: Option<String>,
    /// `push_ssh_key`: the private key file of an SSH remote.
    pub ssh_key: Option<SecretRef>,
    /// `push_known_hosts`: absolute path of the `known_hosts` file for an SSH remote.
    pub known_hosts: Option<PathBuf>,
}

/// `[ca.NAME]`: one CA account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaSettings {
    pub name: String,
    pub kind: CaKind,
    /// `inventory`: when refresh lists the account's orders to find unmanaged and duplicate
    /// certificates (a setting of every kind).
    pub inventory: crate::ca_inventory::Schedule,
    /// `max_orders_per_run`, when set: overrides the kind's default
    /// (`Capabilities::max_orders_per_run`).
    pub max_orders_per_run: Option<u32>,
    pub location: Location,
}

pub use crate::ca::acme::settings::{EabSettings, Settings as AcmeCaSettings};
pub use crate::ca::digicert::settings::Settings as DigicertCaSettings;
pub use crate::ca::local::settings::Settings as LocalCaSettings;
pub use crate::ca::registry::CaKind;

/// `[dns.NAME]`: one DNS provider account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsSettings {
    pub name: String,
    pub kind: DnsKind,
    pub location: Location,
}

pub use crate::dns::registry::DnsKind;
pub use crate::dns::rfc2136::settings::{
    Settings as Rfc2136Settings, TsigAlgorithm, TsigKey, ZoneKey,
};

/// Where a secret comes from. Never holds the secret itself, so it is safe to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretRef {
    Env(String),
    /// Absolute path.
    File(PathBuf),
}

/// One finding about the configuration: where, which key, what rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub location: Location,
    /// Dotted key path, e.g. `certificate.web.sans[1]`; empty for syntax errors.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.location)?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}
