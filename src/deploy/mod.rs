//! Deploy targets: where an issued certificate lands, and the reload that follows.
//!
//! Each kind of `DeployTarget` has a `Deployer` that can `observe` whether the files on disk still
//! match what was last deployed (for refresh) and `deploy` a `Bundle` (for apply). A failed reload
//! is not an error: it is recorded in the `DeployRecord` and retried on the next run. The private
//! key in a `Bundle` is never printed, logged or put in an error.

pub mod command;
pub mod files;
pub mod jks;
mod keystore;
pub mod pkcs12;
pub mod registry;
pub mod ssh;
pub mod verify;
pub mod web_root;

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::config::Config;
use crate::keys::{KeyError, KeyStore};
use crate::observed::{DeployObservation, Observed};
use crate::spec::DeployTarget;
use crate::state::model::DeployRecord;
use crate::state::{CertificateStatus, State};

/// What gets deployed: the certificate, its intermediates and its key.
#[derive(Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// The intermediates, PEM (may be empty).
    pub chain_pem: String,
    /// The private key, PEM. Secret: never log.
    pub key_pem: String,
    /// Lowercase hex SHA-256 of the leaf's DER.
    pub sha256_fingerprint: String,
    /// The certificate's name in config.
    pub name: String,
    /// The leaf's serial (hex), when state has it.
    pub serial: Option<String>,
    /// The leaf's expiry, RFC 3339, when state has it.
    pub not_after: Option<String>,
    /// Every name on the certificate.
    pub sans: Vec<String>,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("sha256_fingerprint", &self.sha256_fingerprint)
            .field("key_pem", &"***")
            .finish_non_exhaustive()
    }
}

/// How a reload command went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub command: String,
    pub success: bool,
    /// stdout then stderr, truncated to 4 KiB.
    pub output: String,
    pub duration: std::time::Duration,
}

/// The result of one deploy: the record to store, what changed, and the reload (if one ran).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployOutcome {
    pub record: DeployRecord,
    /// Names of the files rewritten, in write order.
    pub changed_files: Vec<String>,
    pub reload: Option<ReloadReport>,
}

/// One deploy target.
#[async_trait]
pub trait Deployer: Send + Sync {
    /// The target's id (`DeployTarget::id()`), its key in state.
    fn id(&self) -> String;

    /// Compare the files on disk with `record`: `Missing(names)`, `Changed(names)` or `InSync`.
    /// Without a record every file is missing.
    fn observe(&self, record: Option<&DeployRecord>) -> DeployObservation;

    /// Finish a switch of files a killed run left half done, before anything else touches the
    /// target; returns the files switched now (empty when there was nothing to finish).
    fn recover(&self) -> Result<Vec<String>, DeployError> {
        Ok(Vec::new())
    }

    /// Whether everything `recover` works from is a hidden file (a name starting with `.`
    /// and containing `certform`) in the target's `dirs()`: then a run whose listing of those
    /// directories shows none skips `recover` (at 10,000 targets, its probes of files that
    /// are not there were ~50,000 system calls per `apply`).
    fn recovers_from_hidden_files(&self) -> bool {
        false
    }

    /// The directory this target's server publishes over HTTP, when the kind has one and it
    /// is configured: where HTTP validation files go (`dcv`). Most kinds have none.
    fn web_root(&self) -> Option<Box<dyn web_root::WebRoot>> {
        None
    }

    /// Write `bundle`, reload when needed, and return the record to store.
    async fn deploy(
        &self,
        bundle: &Bundle,
        previous: Option<&DeployRecord>,
        target_digest: &str,
        now: OffsetDateTime,
    ) -> Result<DeployOutcome, DeployError>;
}

/// The deployer for `target`.
pub fn deployer_for(target: &DeployTarget) -> Box<dyn Deployer> {
    open(target, None)
}

/// The deployer for `target`, stopping at the fail points of a switch (crash tests).
pub fn deployer_with_failpoints(
    target: &DeployTarget,
    failpoints: &crate::apply::FailPoints,
) -> Box<dyn Deployer> {
    open(target, Some(failpoints))
}

/// The kind's deployer, wrapped in the endpoint check when the target has `verify`: the one
/// code path that checks what every kind's endpoint serves (`verify::Verifying`).
fn open(target: &DeployTarget, failpoints: Option<&crate::apply::FailPoints>) -> Box<dyn Deployer> {
    let deployer = registry::deployer(target, failpoints);
    match target.verify() {
        Some(endpoint) => Box::new(verify::Verifying::new(deployer, endpoint.clone())),
        None => deployer,
    }
}

/// Check, for every issued certificate that has deploy targets, that keys_dir holds its key
/// (at the path derived from its name and key id) and that the key's public key is the
/// certificate's; record what is wrong in `observed` so the plan shows it. Reads only.
pub fn observe_keys(
    config: &Config,
    state: &State,
    keys: &KeyStore,
    chain_of: impl Fn(&str) -> Option<crate::check_cache::Chain> + Sync,
    observed: &mut Observed,
) {
    // Each certificate's key file is read and matched to its chain on a few threads: at fleet
    // size these reads and parses are a large part of a plan.
    let certificates: Vec<(&String, &crate::state::CertificateState)> =
        state.certificates.iter().collect();
    let found = crate::par::map(&certificates, |(name, certificate)| {
        // Refresh compared the chain file's leaf with state (serial and fingerprint): when
        // they agree, state's public-key digest is the chain's, and the file is not read again.
        let chain_checked = observed
            .certificates
            .get(*name)
            .is_none_or(|seen| seen.chain.is_none());
        let leaf_spki = certificate.spki_sha256.as_deref().filter(|_| chain_checked);
        key_checks(config, keys, &chain_of, leaf_spki, name, certificate)
    });
    for ((name, _), (lost, problem)) in certificates.into_iter().zip(found) {
        if let Some(path) = lost {
            observed
                .certificates
                .entry(name.clone())
                .or_default()
                .lost_key = Some(path);
        }
        if let Some(problem) = problem {
            observed
                .certificates
                .entry(name.clone())
                .or_default()
                .key_problem = Some(problem);
        }
    }
}

/// The lost key (`lost_key`) and the key problem (`key_problem`) of certificate `name`: one
/// look at its key file when the key is there and matches. `leaf_spki` is the chain's
/// public-key digest when refresh found the chain file to hold state's certificate.
fn key_checks(
    config: &Config,
    keys: &KeyStore,
    chain_of: &(impl Fn(&str) -> Option<crate::check_cache::Chain> + Sync),
    leaf_spki: Option<&str>,
    name: &str,
    certificate: &crate::state::CertificateState,
) -> (Option<String>, Option<String>) {
    let deploys = config
        .certificates
        .get(name)
        .is_some_and(|spec| !spec.deploy.is_empty());
    if !deploys || certificate.status != CertificateStatus::Issued {
        return (lost_key(keys, certificate), None);
    }
    let leaf_spki = match leaf_spki {
        Some(spki) => Some(spki.to_string()),
        // Not parsed again: refresh parsed these bytes (`check_cache`, by the chain's
        // digest), or the chain file is unchanged since its leaf was recorded (by its stat
        // data).
        None => match chain_of(name) {
            Some(crate::check_cache::Chain::Known(leaf)) => Some(leaf.spki_sha256),
            Some(crate::check_cache::Chain::Text(text)) => crate::check_cache::chain_leaf(&text)
                .ok()
                .map(|leaf| leaf.spki_sha256),
            None => None,
        },
    };
    let Some(leaf_spki) = leaf_spki else {
        return (lost_key(keys, certificate), None);
    };
    let key_id = certificate.current_key_id();
    // A key file that is there and matches is neither lost nor a problem.
    if keys.holds_key_for(name, key_id.as_deref(), &leaf_spki) {
        return (None, None);
    }
    (
        lost_key(keys, certificate),
        key_problem(keys, &leaf_spki, name, certificate),
    )
}

/// Why the key in keys_dir (or the state repository) cannot deploy the issued certificate
/// `name` whose chain's public-key digest is `leaf_spki`, if it cannot.
fn key_problem(
    keys: &KeyStore,
    leaf_spki: &str,
    name: &str,
    certificate: &crate::state::CertificateState,
) -> Option<String> {
    let key_id = certificate.current_key_id();
    let place = if keys.is_age() {
        "the state repository"
    } else {
        "keys_dir"
    };
    let problem = match keys.certificate_key(name, key_id.as_deref(), leaf_spki) {
        Ok(_) => return None,
        Err(KeyError::Mismatch {
            path,
            certificate_spki,
            key_spki,
            ..
        }) => format!(
            "key in {place} does not match the certificate (certificate public key sha256 {certificate_spki}, `{}` sha256 {key_spki}): the deploy will refuse",
            path.display()
        ),
        Err(KeyError::NotHeld { reason, .. }) => {
            format!("certform holds no private key for the certificate ({reason}): the deploy will refuse")
        }
        Err(error) => {
            let hint = error
                .hint()
                .map(|hint| format!(" (hint: {hint})"))
                .unwrap_or_default();
            format!(
                "key in {place} cannot be used: {}{hint}: the deploy will refuse",
                crate::apply::error_chain(&error)
            )
        }
    };
    Some(problem)
}

/// The path of the current certificate's key file when it is missing from keys_dir (an
/// issued certificate whose state names a key of its own).
fn lost_key(keys: &KeyStore, certificate: &crate::state::CertificateState) -> Option<String> {
    if certificate.status != CertificateStatus::Issued {
        return None;
    }
    let relative =
        crate::keys::certificate_key_path(&certificate.name, &certificate.current_key_id()?)
            .ok()?;
    (!keys.exists(&relative)).then(|| keys.dir().join(relative).display().to_string())
}

/// A deploy failed before its record could be written; names the target and file.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("failed to {action} `{}` for target `{target}`", path.display())]
    Io {
        target: String,
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("unknown user `{user}` (owner of the files of target `{target}`)")]
    UnknownUser { target: String, user: String },

    #[error("unknown group `{group}` (group of the files of target `{target}`)")]
    UnknownGroup { target: String, group: String },

    #[error("target `{target}` uses the file name `{file}` for more than one file")]
    DuplicateFile { target: String, file: String },

    #[error("failed to {action} target `{target}`: {message}")]
    Remote {
        target: String,
        action: &'static str,
        message: String,
    },

    #[error("invalid file name `{file}` in target `{target}`: {reason}")]
    InvalidFileName {
        target: String,
        file: String,
        reason: &'static str,
    },

    #[error("cannot read the password of target `{target}`")]
    Secret {
        target: String,
        #[source]
        source: crate::secrets::Error,
    },

    #[error("cannot build the keystore of target `{target}`: {reason}")]
    Keystore { target: String, reason: String },

    #[error("cannot run the command of target `{target}`: {reason}")]
    Command { target: String, reason: String },
}
