//! The validated configuration the rest of certform works with.
//!
//! Built only by `config::load`; anything that reaches these types has passed validation.
//! Performs no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

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
    pub location: Location,
}

/// `[ca.NAME]`: one CA account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaSettings {
    pub name: String,
    pub kind: CaKind,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
