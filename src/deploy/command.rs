//! The `command` deploy target: a local hook run when the certificate changed, for anything
//! not built in.
//!
//! The command runs with `sh -c` in its own process group (killed as a group after `timeout`)
//! and receives the certificate through the environment: `CERTFORM_NAME`, `CERTFORM_SERIAL`,
//! `CERTFORM_NOT_AFTER` (RFC 3339), `CERTFORM_SANS` (comma-separated), `CERTFORM_FINGERPRINT`,
//! and `CERTFORM_CERT_PATH`, `CERTFORM_CHAIN_PATH`, `CERTFORM_FULLCHAIN_PATH`,
//! `CERTFORM_KEY_PATH`: files in a fresh private directory (0700, files 0600) removed when
//! the command ends, whatever its outcome, so the hook copies what it needs. A non-zero exit
//! or a timeout fails the deploy to this target; it is recorded and retried on the next run.
//! It runs again only when the certificate or the command changed, or it failed last time.

pub(crate) mod open;
pub mod settings;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::files::reload::run_shell;
use crate::deploy::{Bundle, DeployError, DeployOutcome, Deployer};
use crate::observed::DeployObservation;
use crate::spec::{CommandTarget, DeployTarget};
use crate::state::model::DeployRecord;

/// Mode of the hook's private directory and of its files.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Runs a `CommandTarget`.
pub struct CommandDeployer {
    target: CommandTarget,
}

impl CommandDeployer {
    pub fn new(target: CommandTarget) -> Self {
        Self { target }
    }

    fn target_id(&self) -> String {
        DeployTarget::Command(self.target.clone()).id()
    }

    fn failed(&self, reason: String) -> DeployError {
        DeployError::Command {
            target: self.target_id(),
            reason,
        }
    }

    /// The bundle as four files in a new private directory; their paths by variable name.
    fn write_files(
        &self,
        dir: &Path,
        bundle: &Bundle,
    ) -> Result<Vec<(String, String)>, DeployError> {
        let cert = with_newline(&bundle.cert_pem);
        let chain = with_newline(&bundle.chain_pem);
        let files = [
            ("CERTFORM_CERT_PATH", "cert.pem", cert.clone()),
            ("CERTFORM_CHAIN_PATH", "chain.pem", chain.clone()),
            (
                "CERTFORM_FULLCHAIN_PATH",
                "fullchain.pem",
                format!("{cert}{chain}"),
            ),
            (
                "CERTFORM_KEY_PATH",
                "privkey.pem",
                with_newline(&bundle.key_pem),
            ),
        ];
        let mut env = Vec::new();
        for (variable, name, content) in files {
            let path = dir.join(name);
            crate::atomic_file::write(&path, content.as_bytes(), FILE_MODE).map_err(|error| {
                self.failed(format!("cannot write `{}`: {error}", path.display()))
            })?;
            env.push((variable.to_string(), path.display().to_string()));
        }
        Ok(env)
    }
}

/// A new directory only this user can enter, under the system's temporary directory.
fn private_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|error| io::Error::other(error.to_string()))?;
    let dir = std::env::temp_dir().join(format!(
        "certform-hook-{}-{}",
        std::process::id(),
        hex::encode(random)
    ));
    std::fs::DirBuilder::new().mode(DIR_MODE).create(&dir)?;
    Ok(dir)
}

#[async_trait]
impl Deployer for CommandDeployer {
    fn id(&self) -> String {
        self.target_id()
    }

    /// A hook leaves nothing to compare: it is in sync once it ran for the certificate.
    fn observe(&self, record: Option<&DeployRecord>) -> DeployObservation {
        match record {
            Some(_) => DeployObservation::InSync,
            None => DeployObservation::Missing(Vec::new()),
        }
    }

    async fn deploy(
        &self,
        bundle: &Bundle,
        previous: Option<&DeployRecord>,
        target_digest: &str,
        now: OffsetDateTime,
    ) -> Result<DeployOutcome, DeployError> {
        if let Some(previous) = previous.filter(|previous| {
            previous.reload_error.is_none()
                && previous.sha256_fingerprint == bundle.sha256_fingerprint
                && previous.target_digest == target_digest
        }) {
            return Ok(DeployOutcome {
                record: previous.clone(),
                changed_files: Vec::new(),
                reload: None,
            });
        }
        let dir = private_dir()
            .map_err(|error| self.failed(format!("cannot create a private directory: {error}")))?;
        let result = match self.write_files(&dir, bundle) {
            Ok(mut env) => {
                env.extend([
                    ("CERTFORM_NAME".to_string(), bundle.name.clone()),
                    (
                        "CERTFORM_SERIAL".to_string(),
                        bundle.serial.clone().unwrap_or_default(),
                    ),
                    (
                        "CERTFORM_NOT_AFTER".to_string(),
                        bundle.not_after.clone().unwrap_or_default(),
                    ),
                    ("CERTFORM_SANS".to_string(), bundle.sans.join(",")),
                    (
                        "CERTFORM_FINGERPRINT".to_string(),
                        bundle.sha256_fingerprint.clone(),
                    ),
                ]);
                let timeout =
                    StdDuration::try_from(self.target.timeout).unwrap_or(StdDuration::ZERO);
                Ok(run_shell("command", &self.target.command, timeout, &env).await)
            }
            Err(error) => Err(error),
        };
        // The key's copy goes whatever happened.
        let removed = std::fs::remove_dir_all(&dir);
        let (report, error) = result?;
        removed
            .map_err(|error| self.failed(format!("cannot remove `{}`: {error}", dir.display())))?;
        if let Some(error) = &error {
            tracing::warn!(target_id = %self.target_id(), "command failed: {error}");
        }
        Ok(DeployOutcome {
            record: DeployRecord {
                sha256_fingerprint: bundle.sha256_fingerprint.clone(),
                target_digest: target_digest.to_string(),
                files: Default::default(),
                deployed_at: now,
                reload_error: error,
                serial: bundle.serial.clone(),
                verified: None,
                verify_error: None,
                paths: Vec::new(),
                cleanup: false,
                ssh: None,
            },
            changed_files: Vec::new(),
            reload: Some(report),
        })
    }
}

fn with_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

#[cfg(test)]
mod tests;
