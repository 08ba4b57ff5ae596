//! The state model: what certform recorded about each certificate.
//!
//! One `CertificateState` per certificate, stored as TOML beside its public chain PEM.
//! Performs no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::spec::OnRemove;

/// Current state file format.
pub const FORMAT: u32 = 1;

/// Everything certform recorded, keyed by certificate name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub certificates: BTreeMap<String, CertificateState>,
}

/// Lifecycle of the current certificate of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateStatus {
    /// No certificate issued yet (an order may be in flight, see `intent`).
    New,
    Issued,
    Revoked,
    Canceled,
}

/// One certificate's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateState {
    pub format: u32,
    pub name: String,
    /// Stable id, also used to tag the CA order so a lost order can be found and adopted.
    pub id: String,
    pub ca: String,
    pub status: CertificateStatus,
    pub order_id: Option<String>,
    pub certificate_id: Option<String>,
    /// Hex serial of the current certificate.
    pub serial: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub not_before: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    pub sha256_fingerprint: Option<String>,
    pub spki_sha256: Option<String>,
    pub common_name: String,
    pub sans: Vec<String>,
    /// `rsa-3072`, `ecdsa-p256`, `ed25519`.
    pub key_algorithm: String,
    /// Key file of the current certificate, relative to `keys_dir`.
    pub key_file: Option<String>,
    /// Digest of the issuance fields of the spec the current certificate was issued for.
    pub spec_digest: String,
    /// The issuance fields behind `spec_digest`, for readable diffs.
    #[serde(default)]
    pub spec_fields: BTreeMap<String, String>,
    /// `on_remove` of the spec at the last apply: what to do once the certificate leaves config.
    #[serde(default)]
    pub on_remove: OnRemove,
    /// `prevent_destroy` of the spec at the last apply.
    #[serde(default)]
    pub prevent_destroy: bool,
    /// Work in flight: recorded (and fsynced) before each side effect at the CA.
    pub intent: Option<Intent>,
    /// Deploy records keyed by target id.
    #[serde(default)]
    pub deployments: BTreeMap<String, DeployRecord>,
    /// The CA's suggested renewal window for the current certificate (ACME ARI), kept so the
    /// CA is asked again only after its `Retry-After`.
    #[serde(default)]
    pub renewal_window: Option<crate::observed::RenewalWindow>,
    /// The CA asked us not to retry before this instant.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub retry_after: Option<OffsetDateTime>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

/// Why an order is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentKind {
    Create,
    Renew,
    Reissue,
}

impl IntentKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            IntentKind::Create => "create",
            IntentKind::Renew => "renew",
            IntentKind::Reissue => "reissue",
        }
    }
}

/// An order certificate is placing or has placed but not yet finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub kind: IntentKind,
    /// CA account the order goes to (may differ from the current certificate's CA).
    pub ca: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    /// Tag sent to the CA with the order (unique per intent), used to adopt a lost order.
    pub tag: String,
    /// Key file (relative to `keys_dir`) generated for this order; written before the CSR leaves.
    pub key_file: String,
    pub key_algorithm: String,
    pub common_name: String,
    pub sans: Vec<String>,
    pub spec_digest: String,
    #[serde(default)]
    pub spec_fields: BTreeMap<String, String>,
    /// Set once the CA has accepted the order.
    pub order_id: Option<String>,
}

/// What certform last wrote to one deploy target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRecord {
    /// Fingerprint of the certificate deployed.
    pub sha256_fingerprint: String,
    /// Digest of the target's configuration when deployed.
    pub target_digest: String,
    /// SHA-256 of each file written, keyed by file name.
    pub files: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub deployed_at: OffsetDateTime,
    /// `Some(message)` when the reload command failed; retried on the next run.
    pub reload_error: Option<String>,
}

/// One line of a certificate's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub action: String,
    pub serial: Option<String>,
    pub note: String,
}
