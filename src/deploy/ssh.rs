//! The `ssh` deploy target: PEM files in a directory on another host, written with the system
//! OpenSSH client, then an optional reload run on that host (`verify` is `verify::Verifying`'s).
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
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::deploy::{Bundle, DeployError, DeployOutcome, Deployer};
use crate::keys::sha256_hex;
use crate::observed::DeployObservation;
use crate::spec::SshTarget;
use crate::state::model::{DeployRecord, SshHost};

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

    /// The files on the host, private key first: what removal lists and `cleanup` deletes.
    fn remote_paths(&self) -> Vec<PathBuf> {
        let target = &self.target;
        [&target.key, &target.cert, &target.chain, &target.fullchain]
            .iter()
            .map(|name| PathBuf::from(format!("{}/{name}", target.dir)))
            .collect()
    }

    /// How this target reaches its host, for its record.
    fn host(&self) -> SshHost {
        let target = &self.target;
        SshHost {
            host: target.host.clone(),
            port: target.port,
            user: target.user.clone(),
            identity: target.identity.clone(),
            known_hosts: target.known_hosts.clone(),
            accept_new_host_key: target.accept_new_host_key,
            connect_timeout: u64::try_from(target.connect_timeout.whole_seconds()).unwrap_or(10),
        }
    }

    /// A deployer that only reaches `host` (as a record kept it): for `remove_files` after the
    /// target left the config.
    pub fn for_host(host: &SshHost) -> Self {
        Self::new(SshTarget {
            host: host.host.clone(),
            port: host.port,
            user: host.user.clone(),
            identity: host.identity.clone(),
            known_hosts: host.known_hosts.clone(),
            accept_new_host_key: host.accept_new_host_key,
            dir: String::new(),
            cert: String::new(),
            chain: String::new(),
            fullchain: String::new(),
            key: String::new(),
            mode: 0o644,
            key_mode: 0o600,
            reload: None,
            reload_timeout: time::Duration::ZERO,
            connect_timeout: time::Duration::seconds(
                i64::try_from(host.connect_timeout).unwrap_or(10),
            ),
            verify: None,
            web_root: None,
            cleanup: false,
        })
    }

    /// Whether a record's `host` and `paths` agree with its id (`ssh:[user@]host:port<dir>`):
    /// every path a plain file name in that directory on that host. State is a file anyone
    /// with the repository can edit; `cleanup` deletes nothing a deploy could not have written.
    pub fn check_removal(id: &str, host: &SshHost, paths: &[PathBuf]) -> Result<(), String> {
        let user = host
            .user
            .as_deref()
            .map(|user| format!("{user}@"))
            .unwrap_or_default();
        let prefix = format!("ssh:{user}{}:{}", host.host, host.port);
        let dir = id
            .strip_prefix(&prefix)
            .filter(|dir| dir.starts_with('/'))
            .ok_or_else(|| format!("the record's host is not the one its id `{id}` names"))?;
        for path in paths {
            let text = path.to_string_lossy();
            let name = text
                .strip_prefix(dir)
                .and_then(|rest| rest.strip_prefix('/'))
                .unwrap_or_default();
            if !crate::deploy::files::settings::is_plain_file_name(name) {
                return Err(format!(
                    "the record names `{text}`, which is not a file in `{dir}`"
                ));
            }
        }
        Ok(())
    }

    /// Delete `paths` on the host, in order, in one session; the paths that existed and were
    /// removed (absent ones are fine), or why the session failed.
    pub async fn remove_files(&self, paths: &[String]) -> Result<Vec<String>, String> {
        let mut command = tokio::process::Command::from(self.command(&remove_script(paths)));
        command.kill_on_drop(true);
        let output = command.output().await.map_err(|error| {
            format!("cannot run `ssh`: {error} (hint: install OpenSSH's client)")
        })?;
        if !output.status.success() {
            return Err(failure("removing the files", &output));
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect())
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

    /// The local command line running `reload` on the host (for `sh -c`), under the host's
    /// own watchdog (`reload_script`).
    fn reload_command(&self, reload: &str) -> String {
        let seconds = u64::try_from(self.target.reload_timeout.whole_seconds())
            .unwrap_or(0)
            .max(1);
        let mut parts = vec!["ssh".to_string()];
        parts.extend(self.ssh_args().iter().map(|arg| shell_quote(arg)));
        parts.push(shell_quote(&format!(
            "sh -c {}",
            shell_quote(&reload_script(reload, seconds))
        )));
        parts.join(" ")
    }
}

/// The script deleting `paths` in order and printing each one it removed.
fn remove_script(paths: &[String]) -> String {
    let quoted: Vec<String> = paths.iter().map(|path| shell_quote(path)).collect();
    format!(
        "for f in {}; do\n  if [ -e \"$f\" ] || [ -L \"$f\" ]; then rm -f -- \"$f\" || exit 3; printf '%s\\n' \"$f\"; fi\ndone\n",
        quoted.join(" ")
    )
}

/// What the host's watchdog writes to stderr when it kills a reload that ran out of time.
const REMOTE_TIMEOUT: &str = "certform: the reload ran out of time; killing its process group";

/// The script run on the host for `reload`, killed there after `seconds` with every process
/// it started. sshd starts each session's command as a new session and process group (its
/// `setsid()`), so `kill -KILL 0` from inside this script ends the reload, its children and
/// the script itself, and nothing else; ending the local `ssh` would not (without a terminal
/// the remote side gets no hang-up). POSIX `sh`, `sleep` and `kill` only: a `sleep` is the
/// timer; the reload runs in a subshell that stops the timer when the reload ends. The script
/// waits for the timer (quietly: some shells announce a killed job): ended by a signal means
/// the reload finished in time (its status is the script's); ended normally means time ran
/// out. The timer holds none of the session's streams, so the session ends with the reload.
fn reload_script(reload: &str, seconds: u64) -> String {
    format!(
        "sleep {seconds} </dev/null >/dev/null 2>&1 &\n\
         timer=$!\n\
         (\n\
         sh -c {reload} </dev/null\n\
         status=$?\n\
         kill $timer 2>/dev/null\n\
         exit $status\n\
         ) &\n\
         reload=$!\n\
         if wait $timer 2>/dev/null; then\n\
         echo '{REMOTE_TIMEOUT}' >&2\n\
         kill -KILL 0\n\
         fi\n\
         wait $reload\n",
        reload = shell_quote(reload)
    )
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

        let hashes: crate::small_map::SmallMap<String, String> = contents
            .iter()
            .map(|file| (file.name.to_string(), sha256_hex(file.content.as_bytes())))
            .collect();
        let changed: Vec<&FileContent<'_>> = contents
            .iter()
            .filter(|file| remote.get(file.name) != hashes.get(file.name))
            .collect();
        self.write(&changed, &contents).await?;
        let changed_files: Vec<String> = changed.iter().map(|f| f.name.to_string()).collect();

        // Reload unless the previous record proves this exact content was deployed and
        // reloaded (`verify` hands over a record marked not reloaded when the endpoint does
        // not serve it).
        let already_live = previous.is_some_and(|previous| {
            previous.reload_error.is_none()
                && previous.sha256_fingerprint == bundle.sha256_fingerprint
                && previous.files == hashes
        });
        let reload = match &self.target.reload {
            Some(reload) if !changed_files.is_empty() || !already_live => {
                // The host kills the reload at `reload_timeout`; the local limit, later by the
                // time a connection may take, ends an `ssh` whose host stopped answering.
                let timeout =
                    StdDuration::try_from(self.target.reload_timeout + self.target.connect_timeout)
                        .unwrap_or(StdDuration::ZERO);
                let (mut report, mut error) =
                    super::files::reload::run_reload(&self.reload_command(reload), timeout).await;
                if error.is_some() && report.output.contains(REMOTE_TIMEOUT) {
                    error = Some(format!(
                        "reload command timed out after {} (killed with its process group on the host)",
                        crate::spec::format_duration(self.target.reload_timeout)
                    ));
                }
                report.command = reload.clone();
                Some((report, error))
            }
            _ => None,
        };
        let reload_error = reload.as_ref().and_then(|(_, error)| error.clone());
        if let Some(error) = &reload_error {
            tracing::warn!(target_id = %self.target_id(), "reload failed: {error}");
        }
        Ok(DeployOutcome {
            record: DeployRecord {
                sha256_fingerprint: bundle.sha256_fingerprint.clone(),
                target_digest: target_digest.to_string(),
                files: hashes,
                deployed_at: now,
                reload_error,
                serial: bundle.serial.clone(),
                // Filled by `verify::Verifying` when the target has `verify`.
                verified: None,
                verify_error: None,
                paths: self.remote_paths(),
                cleanup: self.target.cleanup,
                // With `cleanup`, how to reach the host once the target left the config.
                ssh: self.target.cleanup.then(|| self.host()),
            },
            changed_files,
            reload: reload.map(|(report, _)| report),
        })
    }
}

#[cfg(test)]
mod tests;
