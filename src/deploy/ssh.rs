//! The `ssh` deploy target: PEM files in a directory on another host, written with the system
//! OpenSSH client, then an optional reload run on that host and an optional `verify` handshake.
//!
//! Why the system `ssh` and not a Rust SSH crate: it honours the user's `~/.ssh/config`, agent,
//! jump hosts and key types as they are, and adds no cryptography to certform. Every call uses
//! `BatchMode=yes` (never a prompt), `StrictHostKeyChecking=yes` (or `accept-new` when
//! `accept_new_host_key = true`) and the configured `known_hosts` file.
//!
//! One deploy is three sessions: the hashes of the files on the host (`sha256sum`); one script
//! that writes every changed file in full beside its final name (`.NAME.certform-next`, created
//! under `umask 077` and given its mode before it is renamed), then renames them in order (cert,
//! chain, fullchain, key last) and fixes modes; then the reload (with a local timeout). File
//! contents, the key among them, travel on the session's stdin (read with `dd bs=1`, exact on
//! any POSIX host), never on a command line. A run killed between renames leaves files whose
//! hashes differ from the record: the next plan shows it as drift and the deploy rewrites them.

pub(crate) mod open;
pub mod settings;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::deploy::{Bundle, DeployError, DeployOutcome, Deployer};
use crate::keys::sha256_hex;
use crate::observed::DeployObservation;
use crate::spec::SshTarget;
use crate::state::model::DeployRecord;

/// Suffix of a staged file: `.NAME.certform-next` beside `NAME`.
const STAGED_SUFFIX: &str = ".certform-next";
/// Most of ssh's stderr kept in an error message.
const STDERR_LIMIT: usize = 600;

/// Deploys to an `SshTarget`.
#[derive(Debug, Clone)]
pub struct SshDeployer {
    target: SshTarget,
}

/// One file of the target, with the content it should have.
struct FileContent<'a> {
    name: &'a str,
    content: String,
    mode: u32,
}

impl SshDeployer {
    pub fn new(target: SshTarget) -> Self {
        Self { target }
    }

    fn target_id(&self) -> String {
        self.target.id()
    }

    /// The options of every `ssh` call, then `--` and the host.
    pub(crate) fn ssh_args(&self) -> Vec<String> {
        let target = &self.target;
        let checking = if target.accept_new_host_key {
            "accept-new"
        } else {
            "yes"
        };
        let connect = target.connect_timeout.whole_seconds().max(1);
        let mut args = vec![
            "-o".to_string(),
            "BatchMode=yes".to_string(),
            "-o".to_string(),
            format!("StrictHostKeyChecking={checking}"),
            "-o".to_string(),
            format!(
                "UserKnownHostsFile=\"{}\"",
                target.known_hosts.to_string_lossy()
            ),
            "-o".to_string(),
            format!("ConnectTimeout={connect}"),
            "-o".to_string(),
            "LogLevel=ERROR".to_string(),
            // A host that stops answering mid-session ends the session instead of hanging.
            "-o".to_string(),
            "ServerAliveInterval=5".to_string(),
            "-o".to_string(),
            "ServerAliveCountMax=3".to_string(),
            "-p".to_string(),
            target.port.to_string(),
        ];
        if let Some(identity) = &target.identity {
            args.extend([
                "-o".to_string(),
                "IdentitiesOnly=yes".to_string(),
                "-i".to_string(),
                identity.to_string_lossy().into_owned(),
            ]);
        }
        if let Some(user) = &target.user {
            args.extend(["-l".to_string(), user.clone()]);
        }
        args.extend(["--".to_string(), target.host.clone()]);
        args
    }

    /// `ssh ... host 'sh -c SCRIPT'`.
    fn command(&self, script: &str) -> Command {
        let mut command = Command::new("ssh");
        command
            .args(self.ssh_args())
            .arg(format!("sh -c {}", shell_quote(script)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// The configured file names with their content and mode, in switch order.
    fn contents(&self, bundle: &Bundle) -> Vec<FileContent<'_>> {
        let target = &self.target;
        let cert = with_newline(&bundle.cert_pem);
        let chain = with_newline(&bundle.chain_pem);
        let fullchain = format!("{cert}{chain}");
        vec![
            FileContent {
                name: &target.cert,
                content: cert,
                mode: target.mode,
            },
            FileContent {
                name: &target.chain,
                content: chain,
                mode: target.mode,
            },
            FileContent {
                name: &target.fullchain,
                content: fullchain,
                mode: target.mode,
            },
            FileContent {
                name: &target.key,
                content: with_newline(&bundle.key_pem),
                mode: target.key_mode,
            },
        ]
    }

    fn names(&self) -> Vec<&str> {
        let target = &self.target;
        vec![&target.cert, &target.chain, &target.fullchain, &target.key]
    }

    /// The script printing `<sha256> <name>` for each configured file present on the host.
    fn hash_script(&self) -> String {
        let names: Vec<String> = self.names().iter().map(|n| shell_quote(n)).collect();
        format!(
            "cd -- {} 2>/dev/null || exit 0\nfor f in {}; do\n  if [ -f \"$f\" ]; then h=$(sha256sum < \"$f\") || exit 3; printf '%s %s\\n' \"${{h%% *}}\" \"$f\"; fi\ndone\n",
            shell_quote(&self.target.dir),
            names.join(" ")
        )
    }

    /// SHA-256 of each configured file on the host (absent files are absent).
    fn remote_hashes(&self) -> Result<BTreeMap<String, String>, String> {
        let output = self
            .command(&self.hash_script())
            .output()
            .map_err(|error| {
                format!("cannot run `ssh`: {error} (hint: install OpenSSH's client)")
            })?;
        if !output.status.success() {
            return Err(failure("reading the files", &output));
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(hash, name)| (name.to_string(), hash.to_string()))
            .collect())
    }

    /// The script writing `changed` (their contents follow on stdin, in order) beside their
    /// final names, renaming them in, then fixing every file's mode.
    fn write_script(&self, changed: &[&FileContent<'_>], all: &[FileContent<'_>]) -> String {
        let mut script = format!(
            "set -e\n(umask 022; mkdir -p -- {dir})\ncd -- {dir}\numask 077\n",
            dir = shell_quote(&self.target.dir)
        );
        for file in changed {
            let staged = shell_quote(&format!(".{}{STAGED_SUFFIX}", file.name));
            script.push_str(&format!(
                "rm -f -- {staged}\ndd bs=1 count={} of={staged} 2>/dev/null\nchmod {:o} -- {staged}\n",
                file.content.len(),
                file.mode
            ));
        }
        for file in changed {
            script.push_str(&format!(
                "mv -f -- {} {}\n",
                shell_quote(&format!(".{}{STAGED_SUFFIX}", file.name)),
                shell_quote(file.name)
            ));
        }
        for file in all {
            script.push_str(&format!(
                "chmod {:o} -- {}\n",
                file.mode,
                shell_quote(file.name)
            ));
        }
        script
    }

    /// Run the write script with the changed contents on stdin.
    async fn write(
        &self,
        changed: &[&FileContent<'_>],
        all: &[FileContent<'_>],
    ) -> Result<(), DeployError> {
        let mut input = Vec::new();
        for file in changed {
            input.extend_from_slice(file.content.as_bytes());
        }
        self.run_script(&self.write_script(changed, all), &input)
            .await
            .map_err(|message| self.remote_error("write the files of", message))
    }

    /// Run `script` on the host with `input` on its stdin; `Err` says why it failed.
    pub(crate) async fn run_script(&self, script: &str, input: &[u8]) -> Result<(), String> {
        let mut command = tokio::process::Command::from(self.command(script));
        command.stdin(Stdio::piped()).kill_on_drop(true);
        let mut child = command.spawn().map_err(|error| {
            format!("cannot run `ssh`: {error} (hint: install OpenSSH's client)")
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            // A write error means ssh ended early; its status and stderr say why.
            let _ = stdin.write_all(input).await;
            drop(stdin);
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|error| error.to_string())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(failure("the remote script", &output))
        }
    }

    /// Write `content` to `path` on the host (mode 0644, parent directories created): an HTTP
    /// validation file under the target's `web_root`.
    pub async fn put_file(&self, path: &str, content: &[u8]) -> Result<(), String> {
        let parent = path.rsplit_once('/').map_or("/", |(parent, _)| parent);
        let script = format!(
            "set -e\numask 022\nmkdir -p -- {}\ncat > {}\n",
            shell_quote(if parent.is_empty() { "/" } else { parent }),
            shell_quote(path)
        );
        self.run_script(&script, content).await
    }

    /// Remove `path` on the host (absent is fine).
    pub async fn remove_file(&self, path: &str) -> Result<(), String> {
        self.run_script(&format!("rm -f -- {}", shell_quote(path)), b"")
            .await
    }

    fn remote_error(&self, action: &'static str, message: String) -> DeployError {
        DeployError::Remote {
            target: self.target_id(),
            action,
            message,
        }
    }

    /// The local command line running `reload` on the host (for `sh -c`).
    fn reload_command(&self, reload: &str) -> String {
        let mut parts = vec!["ssh".to_string()];
        parts.extend(self.ssh_args().iter().map(|arg| shell_quote(arg)));
        parts.push(shell_quote(&format!("sh -c {}", shell_quote(reload))));
        parts.join(" ")
    }
}

/// Why an ssh session failed: the exit status and ssh's (or the script's) stderr, cut short.
fn failure(doing: &str, output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut stderr = stderr.trim().to_string();
    if stderr.len() > STDERR_LIMIT {
        let mut end = STDERR_LIMIT;
        while !stderr.is_char_boundary(end) {
            end -= 1;
        }
        stderr.truncate(end);
        stderr.push_str(" [...]");
    }
    let status = match output.status.code() {
        // ssh's own failure: connection, authentication, host key.
        Some(255) => "ssh failed".to_string(),
        Some(code) => format!("{doing} failed with status {code}"),
        None => format!("{doing} was killed"),
    };
    if stderr.is_empty() {
        status
    } else {
        format!("{status}: {stderr}")
    }
}

/// `text` single-quoted for a POSIX shell.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn with_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

#[async_trait]
impl Deployer for SshDeployer {
    fn web_root(&self) -> Option<Box<dyn crate::deploy::web_root::WebRoot>> {
        Some(Box::new(crate::deploy::web_root::SshWebRoot {
            root: self.target.web_root.clone()?,
            id: self.target.id(),
            deployer: SshDeployer::new(self.target.clone()),
        }))
    }

    fn id(&self) -> String {
        self.target_id()
    }

    fn observe(&self, record: Option<&DeployRecord>) -> DeployObservation {
        let names = self.names();
        let Some(record) = record else {
            return DeployObservation::Missing(names.iter().map(|n| n.to_string()).collect());
        };
        let hashes = match self.remote_hashes() {
            Ok(hashes) => hashes,
            Err(error) => {
                return DeployObservation::Drift(format!(
                    "cannot check the files on the host: {error}"
                ))
            }
        };
        let mut missing = Vec::new();
        let mut changed = Vec::new();
        for name in names {
            match hashes.get(name) {
                None => missing.push(name.to_string()),
                Some(hash) if record.files.get(name) != Some(hash) => {
                    changed.push(name.to_string())
                }
                Some(_) => {}
            }
        }
        if !missing.is_empty() {
            return DeployObservation::Missing(missing);
        }
        if !changed.is_empty() {
            return DeployObservation::Changed(changed);
        }
        if let Some(endpoint) = &self.target.verify {
            if let Some(drift) = super::verify::drift(endpoint, &record.sha256_fingerprint) {
                return DeployObservation::Drift(drift);
            }
        }
        DeployObservation::InSync
    }

    async fn deploy(
        &self,
        bundle: &Bundle,
        previous: Option<&DeployRecord>,
        target_digest: &str,
        now: OffsetDateTime,
    ) -> Result<DeployOutcome, DeployError> {
        let contents = self.contents(bundle);
        let deployer = self.clone();
        let remote = tokio::task::spawn_blocking(move || deployer.remote_hashes())
            .await
            .map_err(|error| self.remote_error("read the files of", error.to_string()))?
            .map_err(|error| self.remote_error("read the files of", error))?;

        let hashes: BTreeMap<String, String> = contents
            .iter()
            .map(|file| (file.name.to_string(), sha256_hex(file.content.as_bytes())))
            .collect();
        let changed: Vec<&FileContent<'_>> = contents
            .iter()
            .filter(|file| remote.get(file.name) != hashes.get(file.name))
            .collect();
        self.write(&changed, &contents).await?;
        let changed_files: Vec<String> = changed.iter().map(|f| f.name.to_string()).collect();

        // Reload unless the previous record proves this exact content was deployed, reloaded
        // and (with `verify`) served.
        let already_live = previous.is_some_and(|previous| {
            previous.reload_error.is_none()
                && previous.verify_error.is_none()
                && previous.sha256_fingerprint == bundle.sha256_fingerprint
                && previous.files == hashes
        });
        // An endpoint serving another certificate (drift at refresh) needs the reload too.
        let serving = match (
            &self.target.verify,
            already_live && changed_files.is_empty(),
        ) {
            (Some(endpoint), true) => {
                let endpoint = endpoint.clone();
                let fingerprint = bundle.sha256_fingerprint.clone();
                tokio::task::spawn_blocking(move || {
                    super::verify::drift(&endpoint, &fingerprint).is_none()
                })
                .await
                .unwrap_or(false)
            }
            _ => true,
        };
        let reload = match &self.target.reload {
            Some(reload) if !changed_files.is_empty() || !already_live || !serving => {
                let timeout =
                    StdDuration::try_from(self.target.reload_timeout).unwrap_or(StdDuration::ZERO);
                let (mut report, error) =
                    super::files::reload::run_reload(&self.reload_command(reload), timeout).await;
                report.command = reload.clone();
                Some((report, error))
            }
            _ => None,
        };
        let reload_error = reload.as_ref().and_then(|(_, error)| error.clone());
        if let Some(error) = &reload_error {
            tracing::warn!(target_id = %self.target_id(), "reload failed: {error}");
        }
        let (verified, verify_error) = match &self.target.verify {
            Some(endpoint) if reload_error.is_none() => {
                let endpoint = endpoint.clone();
                let fingerprint = bundle.sha256_fingerprint.clone();
                let result = tokio::task::spawn_blocking(move || {
                    super::verify::check(&endpoint, &fingerprint)
                })
                .await
                .unwrap_or_else(|error| Err(format!("endpoint check failed: {error}")));
                match result {
                    Ok(()) => (Some(true), None),
                    Err(error) => (Some(false), Some(error)),
                }
            }
            _ => (None, None),
        };
        Ok(DeployOutcome {
            record: DeployRecord {
                sha256_fingerprint: bundle.sha256_fingerprint.clone(),
                target_digest: target_digest.to_string(),
                files: hashes,
                deployed_at: now,
                reload_error,
                serial: bundle.serial.clone(),
                verified,
                verify_error,
                // Files on another host are not removed by `cleanup` (and not listed).
                paths: Vec::new(),
                cleanup: false,
            },
            changed_files,
            reload: reload.map(|(report, _)| report),
        })
    }
}

#[cfg(test)]
mod tests;
