//! The state model: what certform recorded about each certificate.
//!
//! One `CertificateState` per certificate, stored as TOML beside its public chain PEM.
//! Performs no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::serial::Serial;
use crate::spec::{CertificateSpec, OnRemove, RevocationReason};

/// Current state file format.
pub const FORMAT: u32 = 1;

/// Everything certform recorded, keyed by certificate name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub certificates: BTreeMap<String, CertificateState>,
    /// The last inventory listing of each CA account (`ca/<account>.inventory.toml`), keyed
    /// by account.
    pub ca_inventory: BTreeMap<String, crate::ca_inventory::CaInventory>,
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
    /// Serial of the current certificate.
    pub serial: Option<Serial>,
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
    /// Which of this certificate's keys belongs to the current certificate: `<kind>-<hex>`,
    /// named after the intent that generated it (see `key_id_of`). A name, never a path: the
    /// file is `<keys_dir>/<name>/<key_id>.key`, and it is checked against the certificate's
    /// public key before every deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Read-only remnant of older state files, which named the key by path
    /// (`key_file = "<name>/<kind>-<hex>.key"`). Used only when it is exactly the path the key
    /// id derives; never written back.
    #[serde(default, rename = "key_file", skip_serializing)]
    pub legacy_key_file: Option<String>,
    /// Digest of the issuance fields of the spec the current certificate was issued for.
    pub spec_digest: String,
    /// The issuance fields behind `spec_digest`, for readable diffs.
    #[serde(default)]
    pub spec_fields: crate::small_map::SmallMap<String, String>,
    /// `on_remove` of the spec at the last apply: what to do once the certificate leaves config.
    #[serde(default)]
    pub on_remove: OnRemove,
    /// `prevent_destroy` of the spec at the last apply.
    #[serde(default)]
    pub prevent_destroy: bool,
    /// `revoke_reason` of the spec at the last apply: the reason sent when `on_remove =
    /// "revoke"` revokes the certificate after it left config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<RevocationReason>,
    /// Work in flight: recorded (and fsynced) before each side effect at the CA.
    pub intent: Option<Box<Intent>>,
    /// Deploy records keyed by target id. Boxed: a map's node holds room for eleven values,
    /// and at 10,000 certificates with one target each, inline records were ~36 MB of
    /// mostly empty slots.
    #[serde(default)]
    pub deployments: crate::small_map::SmallMap<String, Box<DeployRecord>>,
    /// The CA's suggested renewal window for the current certificate (ACME ARI), kept so the
    /// CA is asked again only after its `Retry-After`.
    #[serde(default)]
    pub renewal_window: Option<crate::observed::RenewalWindow>,
    /// The end of the plan of `order_id` when the CA sells orders covering several
    /// certificates (DigiCert's `order_valid_till`): until then a renewal is a reissue on the
    /// order, not a new order. Recorded from the last detailed read of the order.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub plan_until: Option<OffsetDateTime>,
    /// The CA asked us not to retry before this instant.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub retry_after: Option<OffsetDateTime>,
    /// Orders for this certificate that failed in a row, and when the next is tried; cleared
    /// when a certificate is issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

/// A failed order backs off: the planner holds the certificate's next order until
/// `next_try`, 1 hour after the first failure, doubling up to 1 day. A certificate at risk of
/// expiring is tried whatever the backoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Failed attempts in a row (1 or more).
    pub attempts: std::num::NonZeroU32,
    /// The class of the last CA error (`transient`, `rate-limited`, `rejected`, ...); absent
    /// when the failure was not the CA's (domain validation, keys, deploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<crate::error::ErrorClass>,
    #[serde(with = "time::serde::rfc3339")]
    pub next_try: OffsetDateTime,
}

/// The first backoff after a failure.
pub const BACKOFF_FIRST: time::Duration = time::Duration::HOUR;
/// The longest backoff.
pub const BACKOFF_MAX: time::Duration = time::Duration::DAY;

impl Backoff {
    /// The backoff after one more failure at `now`, following `previous`.
    pub fn after_failure(
        previous: Option<&Backoff>,
        last_error: Option<crate::error::ErrorClass>,
        now: OffsetDateTime,
    ) -> Backoff {
        let attempts = previous
            .map(|b| b.attempts.saturating_add(1))
            .unwrap_or(std::num::NonZeroU32::MIN);
        Backoff {
            attempts,
            last_error,
            next_try: now + Self::delay(attempts.get()),
        }
    }

    /// How long to wait after `attempts` failures in a row: 1 h, 2 h, 4 h, ... up to 1 day.
    pub fn delay(attempts: u32) -> time::Duration {
        let doublings = attempts.saturating_sub(1).min(5);
        (BACKOFF_FIRST * 2_i32.pow(doublings)).min(BACKOFF_MAX)
    }
}

impl State {
    /// Re-key deploy records that an older certform keyed by absolute path (`files:/abs/dir`)
    /// under the target's current id (`files:<dir as written>`), for every certificate in
    /// `certificates`; a record whose digest was the old one gets the new one, so the move
    /// alone plans no deploy. Records that match no configured target stay as they are.
    /// Done in memory before planning; the next save of the certificate writes the new ids.
    pub fn migrate_deploy_ids(&mut self, certificates: &BTreeMap<String, CertificateSpec>) {
        for (name, spec) in certificates {
            let Some(state) = self.certificates.get_mut(name) else {
                continue;
            };
            // Longest relative directory first, so `x/web` claims `/old/x/web` before `web`.
            let mut targets: Vec<&crate::spec::DeployTarget> = spec.deploy.iter().collect();
            targets.sort_by_key(|t| match t {
                crate::spec::DeployTarget::Files(files) => {
                    std::cmp::Reverse(files.id_dir().components().count())
                }
                _ => std::cmp::Reverse(0),
            });
            for target in targets {
                let id = target.id();
                if state.deployments.contains_key(&id) {
                    continue;
                }
                let Some(old) = state
                    .deployments
                    .keys()
                    .find(|key| target.is_legacy_id(key))
                    .cloned()
                else {
                    continue;
                };
                let Some(mut record) = state.deployments.remove(&old) else {
                    continue;
                };
                let old_dir = std::path::Path::new(old.trim_start_matches("files:"));
                if record.target_digest == target.legacy_digest(old_dir) {
                    record.target_digest = target.digest();
                }
                state.deployments.insert(id, record);
            }
        }
    }
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
    pub key_algorithm: String,
    pub common_name: String,
    pub sans: Vec<String>,
    pub spec_digest: String,
    #[serde(default)]
    pub spec_fields: crate::small_map::SmallMap<String, String>,
    /// Set once the CA has accepted the order.
    pub order_id: Option<String>,
}

/// The lifecycle settings state records from the spec at every apply: what happens to the
/// certificate once its block leaves config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleSettings {
    pub on_remove: OnRemove,
    pub prevent_destroy: bool,
    pub revoke_reason: Option<RevocationReason>,
}

impl LifecycleSettings {
    pub fn of_spec(spec: &CertificateSpec) -> Self {
        LifecycleSettings {
            on_remove: spec.on_remove,
            prevent_destroy: spec.prevent_destroy,
            revoke_reason: spec.revoke_reason,
        }
    }

    /// `(setting, value)` pairs, for diffs.
    pub fn fields(&self) -> [(&'static str, String); 3] {
        [
            ("on_remove", self.on_remove.as_str().to_string()),
            ("prevent_destroy", self.prevent_destroy.to_string()),
            (
                "revoke_reason",
                self.revoke_reason
                    .map(|reason| reason.as_str().to_string())
                    .unwrap_or_else(|| "(default)".to_string()),
            ),
        ]
    }
}

impl CertificateState {
    /// The lifecycle settings recorded at the last apply.
    pub fn settings(&self) -> LifecycleSettings {
        LifecycleSettings {
            on_remove: self.on_remove,
            prevent_destroy: self.prevent_destroy,
            revoke_reason: self.revoke_reason,
        }
    }

    /// Record `settings` (done for every certificate in config that an apply touches).
    pub fn record_settings(&mut self, settings: LifecycleSettings) {
        self.on_remove = settings.on_remove;
        self.prevent_destroy = settings.prevent_destroy;
        self.revoke_reason = settings.revoke_reason;
    }

    /// Move an older state file's `key_file` to `key_id` (when it is exactly the derived path;
    /// otherwise it is dropped), so the state is written back without a path and without
    /// losing its key. Called when a state file is read.
    pub fn upgrade_legacy_key_file(&mut self) {
        if self.legacy_key_file.is_some() {
            self.key_id = self.current_key_id();
            self.legacy_key_file = None;
        }
    }

    /// The key id of the current certificate: `key_id`, or for an older state file the id its
    /// `key_file` names, accepted only when `key_file` is exactly `<name>/<key_id>.key`.
    /// Anything else (another directory, another certificate, a CA key) yields `None`.
    pub fn current_key_id(&self) -> Option<String> {
        if let Some(id) = &self.key_id {
            return is_key_id(id).then(|| id.clone());
        }
        let legacy = self.legacy_key_file.as_deref()?;
        let id = legacy
            .strip_prefix(self.name.as_str())?
            .strip_prefix('/')?
            .strip_suffix(".key")?;
        is_key_id(id).then(|| id.to_string())
    }
}

impl Intent {
    /// The key id of the key generated for this intent (`<kind>-<hex>`), derived from its kind
    /// and tag; the tag must be `<certificate_id>.<hex>`. `None` for a tag that is not.
    pub fn key_id(&self, certificate_id: &str) -> Option<String> {
        let suffix = self.tag.strip_prefix(certificate_id)?.strip_prefix('.')?;
        let id = key_id_of(self.kind, suffix);
        is_key_id(&id).then_some(id)
    }
}

/// `<kind>-<suffix>`: the key id of the key generated by an intent of `kind` with tag suffix
/// `suffix`.
pub fn key_id_of(kind: IntentKind, suffix: &str) -> String {
    format!("{}-{suffix}", kind.as_str())
}

/// A key id is `create-`, `renew-` or `reissue-` and 8 to 64 lowercase hex digits: nothing in
/// it can name a directory or another file.
pub fn is_key_id(id: &str) -> bool {
    let Some((kind, hex)) = id.split_once('-') else {
        return false;
    };
    matches!(kind, "create" | "renew" | "reissue")
        && (8..=64).contains(&hex.len())
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What certform last wrote to one deploy target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRecord {
    /// Fingerprint of the certificate deployed.
    pub sha256_fingerprint: String,
    /// Digest of the target's configuration when deployed.
    pub target_digest: String,
    /// SHA-256 of each file written, keyed by file name.
    pub files: crate::small_map::SmallMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub deployed_at: OffsetDateTime,
    /// `Some(message)` when the reload command failed; retried on the next run.
    pub reload_error: Option<String>,
    /// Serial of the certificate deployed (absent in records written before receipts had it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// For a target with `verify`: whether the endpoint served the deployed leaf after the
    /// reload. `None` without `verify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// Why the endpoint check failed (`verified = false`); the deploy runs again next time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_error: Option<String>,
    /// The files written, private key first, relative to the config file's directory when
    /// the target's path was written relative (else absolute): what removal lists and
    /// `cleanup` deletes once the certificate is gone from config (empty in older records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathBuf>,
    /// The target had `cleanup = true`: removing the certificate deletes `paths`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cleanup: bool,
    /// An `ssh` target with `cleanup = true`: how to reach the host, so that removing the
    /// certificate deletes `paths` there even when the target left the config with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshHost>,
}

/// How an `ssh` target reached its host (no secret: the paths of the key and `known_hosts`
/// files, never their content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshHost {
    pub host: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
    pub known_hosts: PathBuf,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_new_host_key: bool,
    /// `ssh -o ConnectTimeout`, in seconds.
    pub connect_timeout: u64,
}

/// One line of a certificate's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub action: String,
    pub serial: Option<Serial>,
    pub note: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(name: &str, key_id: Option<&str>, legacy: Option<&str>) -> CertificateState {
        let text = format!(
            "format = 1\nname = \"{name}\"\nid = \"cf-0011223344556677\"\nca = \"local\"\nstatus = \"issued\"\ncommon_name = \"a.example\"\nsans = []\nkey_algorithm = \"ecdsa-p256\"\nspec_digest = \"x\"\n{}{}",
            key_id.map(|k| format!("key_id = \"{k}\"\n")).unwrap_or_default(),
            legacy.map(|k| format!("key_file = \"{k}\"\n")).unwrap_or_default(),
        );
        toml::from_str(&text).expect("state")
    }

    #[test]
    fn legacy_key_file_is_accepted_only_when_it_is_the_derived_path() {
        let ok = state("web", None, Some("web/renew-0a1b2c3d4e5f.key"));
        assert_eq!(ok.current_key_id().as_deref(), Some("renew-0a1b2c3d4e5f"));
        for hostile in [
            "local-ca/local/root.key",
            "api/create-0a1b2c3d4e5f.key",
            "web/../api/create-0a1b2c3d4e5f.key",
            "/etc/ssl/private/x.key",
            "web/renew-0a1b2c3d4e5f.key/../../local-ca/local/root.key",
            "web/root.key",
            "web/renew-0A1B2C3D4E5F.key",
            "imported/web/private-key-not-held-by-certform.pem",
        ] {
            let state = state("web", None, Some(hostile));
            assert_eq!(state.current_key_id(), None, "{hostile}");
        }
        assert_eq!(state("web", Some("../x"), None).current_key_id(), None);
        assert_eq!(
            state(
                "web",
                Some("create-00112233"),
                Some("local-ca/local/root.key")
            )
            .current_key_id()
            .as_deref(),
            Some("create-00112233")
        );
    }

    #[test]
    fn state_written_now_carries_no_key_path() {
        let legacy = state("web", None, Some("web/renew-0a1b2c3d4e5f.key"));
        let written = toml::to_string(&legacy).expect("serialize");
        assert!(!written.contains("key_file"), "{written}");
        let mut upgraded = legacy;
        upgraded.upgrade_legacy_key_file();
        assert_eq!(upgraded.legacy_key_file, None);
        let written = toml::to_string(&upgraded).expect("serialize");
        assert!(
            written.contains("key_id = \"renew-0a1b2c3d4e5f\""),
            "{written}"
        );
        assert!(!written.contains('/'), "{written}");
    }

    #[test]
    fn intent_key_id_comes_from_kind_and_tag() {
        let intent = Intent {
            kind: IntentKind::Reissue,
            ca: "local".into(),
            started: OffsetDateTime::UNIX_EPOCH,
            tag: "cf-0011223344556677.a1b2c3d4e5f6".into(),
            key_algorithm: "ecdsa-p256".into(),
            common_name: "a.example".into(),
            sans: Vec::new(),
            spec_digest: String::new(),
            spec_fields: Default::default(),
            order_id: None,
        };
        assert_eq!(
            intent.key_id("cf-0011223344556677").as_deref(),
            Some("reissue-a1b2c3d4e5f6")
        );
        assert_eq!(intent.key_id("cf-other"), None);
        let mut hostile = intent.clone();
        hostile.tag = "cf-0011223344556677./../../local-ca/local/root".into();
        assert_eq!(hostile.key_id("cf-0011223344556677"), None);
    }
}
