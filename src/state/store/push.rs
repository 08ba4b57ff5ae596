//! Pushing the state branch with the system `git`, and catching up with a remote that moved.
//!
//! Why the system `git` and not libgit2's transports: it honours what the user already set up
//! for their remotes (credential helpers, `~/.ssh/config`, the SSH agent, `known_hosts`,
//! proxies, `insteadOf`), needs no OpenSSL or libssh2 in certform's build, and is on every CI
//! runner. Credentials certform is given (`push_token`) reach git only through its environment
//! (`GIT_CONFIG_*`, an `http.<url>.extraHeader` scoped to the remote's host): never argv,
//! output, logs or `.git/config`.
//!
//! When the remote moved since this repository last saw it (another runner pushed), the remote
//! branch is fetched; when its new commits touch none of the files certform's unpushed commits
//! touch, those commits are replayed on top of it (in memory, then one checkout of the files the
//! remote changed and one branch update, recorded in a move file so a kill is finished by the
//! next run) and pushed again, a bounded number of times. Otherwise nothing is pushed: the
//! unpushed commits are kept on a branch and the local branch is reset to the remote's commit,
//! so the next run plans from the remote's state.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine;
use git2::build::CheckoutBuilder;
use git2::{Commit, Delta, DiffOptions, Index, Oid, Repository, Sort, Tree};

use super::error::{Divergence, TransportFailure};
use super::marker::CommitMarker;
use super::remote::redact_text;
use super::{io_error, remove_durably, Error, GitStore, FILE_MODE};
use crate::atomic_file;
use crate::config::PushAuth;
use crate::http::redact_url;
use crate::secrets::{self, Secret};

/// How many times a push is tried when the remote keeps moving in between.
pub(super) const PUSH_ATTEMPTS: usize = 4;

/// File in the git directory while the branch moves to a replayed or fetched commit: `old
/// new branch`. A run killed in between is finished by the next one (`recover`).
pub(super) const MOVE_FILE: &str = "certform-move";

/// File in the git directory from the start of a push until the remote has this run's commits
/// (or the run gave up on them, keeping them on a branch): while it exists, every run pushes.
pub(super) const PUSH_PENDING_FILE: &str = "certform-push-pending";

/// Private ref the remote branch is fetched to.
const FETCHED_REF: &str = "refs/certform/fetched";

/// Default user name sent with `push_token`.
const DEFAULT_TOKEN_USER: &str = "x-access-token";

/// The outcome of one `git push`.
enum Pushed {
    Done,
    /// The remote has commits this repository lacks.
    Stale,
    /// Refused for another reason (a hook, a protected branch): git's words.
    Refused(String),
}

/// Runs `git` in the work tree with the push credentials in its environment.
pub(super) struct GitCli<'a> {
    work_tree: &'a Path,
    /// What `git push`/`git fetch` are given: a remote name, URL or absolute path.
    target: String,
    /// The remote as configured, for redaction.
    remote: &'a str,
    /// The remote's URL (a named remote's configured URL), for redaction and scoping.
    url: String,
    env: Vec<(String, String)>,
    /// Values that must never be shown (the token and what carries it).
    secrets: Vec<Secret>,
    /// Whether `push_token` is sent.
    token: bool,
}

impl<'a> GitCli<'a> {
    pub(super) fn new(
        store: &'a GitStore,
        repo: &Repository,
        auth: &PushAuth,
    ) -> Result<GitCli<'a>, Error> {
        let remote = store.resolve_remote(repo)?;
        let url = remote.url().unwrap_or_default().to_string();
        let target = if remote.name().is_some() {
            store.remote.clone()
        } else {
            url.clone()
        };
        let mut config: Vec<(String, String)> = vec![
            // No background `gc --auto` that outlives a killed run.
            ("gc.auto".into(), "0".into()),
            ("maintenance.auto".into(), "false".into()),
        ];
        let mut secrets_shown = Vec::new();
        if let Some(reference) = &auth.token {
            let token = secrets::resolve(reference).map_err(|source| Error::PushSecret {
                field: "push_token",
                source,
            })?;
            let scope = http_scope(&url).ok_or_else(|| Error::TokenNeedsHttps {
                remote: redact_url(&store.remote),
            })?;
            let user = auth.user.as_deref().unwrap_or(DEFAULT_TOKEN_USER);
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", token.expose()));
            // Only the token authenticates: no credential helper is asked, and a wrong token
            // fails instead of falling back to someone else's credentials.
            config.push(("credential.helper".into(), String::new()));
            config.push((
                format!("http.{scope}.extraHeader"),
                format!("Authorization: Basic {basic}"),
            ));
            secrets_shown.push(Secret::new(basic));
            secrets_shown.push(token);
        }
        let mut env: Vec<(String, String)> = vec![
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            ("LC_ALL".into(), "C".into()),
            ("LANGUAGE".into(), "C".into()),
        ];
        if auth.ssh_key.is_some() || auth.known_hosts.is_some() {
            env.push(("GIT_SSH_COMMAND".into(), ssh_command(auth)));
        }
        let inherited: usize = std::env::var("GIT_CONFIG_COUNT")
            .ok()
            .and_then(|count| count.parse().ok())
            .unwrap_or(0);
        for (index, (key, value)) in config.into_iter().enumerate() {
            let index = inherited + index;
            env.push((format!("GIT_CONFIG_KEY_{index}"), key));
            env.push((format!("GIT_CONFIG_VALUE_{index}"), value));
            env.push(("GIT_CONFIG_COUNT".into(), (index + 1).to_string()));
        }
        Ok(GitCli {
            work_tree: &store.work_tree,
            target,
            remote: &store.remote,
            url,
            env,
            token: !secrets_shown.is_empty(),
            secrets: secrets_shown,
        })
    }

    /// The remote as shown in messages.
    pub(super) fn shown(&self) -> String {
        redact_url(self.remote)
    }

    fn run(&self, args: &[&str]) -> Result<std::process::Output, Error> {
        let mut command = Command::new("git");
        command
            .arg("-C")
            .arg(self.work_tree)
            .args(args)
            .stdin(Stdio::null())
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            // Traces never show the Authorization header.
            .env_remove("GIT_CURL_VERBOSE")
            .env("GIT_TRACE_REDACT", "1");
        if self.env.iter().any(|(key, _)| key == "GIT_SSH_COMMAND") {
            command.env_remove("GIT_SSH");
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        tracing::debug!(args = ?args.first(), remote = %self.shown(), "running git");
        command
            .output()
            .map_err(|source| Error::GitMissing { source })
    }

    /// Git's stderr, credentials removed, trimmed to its meaningful lines, and what it means.
    fn detail(&self, stderr: &[u8]) -> (String, TransportFailure) {
        let mut text = String::from_utf8_lossy(stderr).into_owned();
        for secret in &self.secrets {
            text = text.replace(secret.expose().as_str(), "***");
        }
        text = redact_text(&text, self.remote);
        text = redact_text(&text, &self.url);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("hint:"))
            .collect();
        let said = if lines.is_empty() {
            "git exited without saying why".to_string()
        } else {
            lines.join("; ")
        };
        match self.classify(&said) {
            TransportFailure::TokenRefused => (
                format!("authentication failed: the server refused `push_token` ({said})"),
                TransportFailure::TokenRefused,
            ),
            failure => (said, failure),
        }
    }

    /// The kind of failure git's (redacted) words describe.
    fn classify(&self, said: &str) -> TransportFailure {
        // With a token and no credential helper, git's words for a 401 are about prompts.
        let refused = [
            "Authentication failed",
            "could not read Username",
            "could not read Password",
            "error: 401",
        ];
        if self.token && refused.iter().any(|words| said.contains(words)) {
            TransportFailure::TokenRefused
        } else if said.contains("Host key verification failed") {
            TransportFailure::HostKey
        } else {
            TransportFailure::Other
        }
    }

    fn transport_error(&self, action: &'static str, stderr: &[u8]) -> Error {
        let (detail, failure) = self.detail(stderr);
        Error::GitTransport {
            action,
            remote: self.shown(),
            detail,
            failure,
        }
    }

    fn push(&self, branch: &str) -> Result<Pushed, Error> {
        let spec = format!("{branch}:{branch}");
        let output = self.run(&["push", "--porcelain", "--", &self.target, &spec])?;
        if output.status.success() {
            return Ok(Pushed::Done);
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        if let Some(line) = stdout.lines().find(|line| line.starts_with('!')) {
            let reason = line.split('\t').nth(2).unwrap_or(line).trim();
            if reason.contains("fetch first") || reason.contains("non-fast-forward") {
                return Ok(Pushed::Stale);
            }
            return Ok(Pushed::Refused(self.detail(reason.as_bytes()).0));
        }
        Err(self.transport_error("push to", &output.stderr))
    }

    /// Fetch the remote's `branch` into a private ref and return its commit.
    fn fetch(&self, repo: &Repository, branch: &str) -> Result<Oid, Error> {
        let spec = format!("+{branch}:{FETCHED_REF}");
        let output = self.run(&["fetch", "--no-tags", "--quiet", "--", &self.target, &spec])?;
        if !output.status.success() {
            return Err(self.transport_error("fetch from", &output.stderr));
        }
        let fetched = repo
            .refname_to_id(FETCHED_REF)
            .map_err(|source| Error::Git {
                action: format!("read `{FETCHED_REF}`"),
                repo: self.work_tree.to_path_buf(),
                source,
            })?;
        // Only the id is needed: the objects stay, the private ref goes.
        if let Ok(mut reference) = repo.find_reference(FETCHED_REF) {
            let _ = reference.delete();
        }
        Ok(fetched)
    }
}

/// `scheme://host[:port]/` of an `https://` URL, or an `http://` one on loopback, without user
/// info: where a token may be sent.
fn http_scope(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match scheme.as_str() {
        "https" => {}
        "http" if loopback => {}
        _ => return None,
    }
    if host.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{host_port}/"))
}

/// `ssh` with strict host keys, no prompts, and the configured key and `known_hosts` (paths
/// quoted for the shell git runs it with).
fn ssh_command(auth: &PushAuth) -> String {
    let mut command =
        String::from("ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o LogLevel=ERROR");
    if let Some(known_hosts) = &auth.known_hosts {
        command.push_str(" -o UserKnownHostsFile=");
        command.push_str(&shell_quote(&known_hosts.to_string_lossy()));
    }
    if let Some(crate::config::SecretRef::File(key)) = &auth.ssh_key {
        command.push_str(" -o IdentitiesOnly=yes -i ");
        command.push_str(&shell_quote(&key.to_string_lossy()));
    }
    command
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// What catching up with the remote's commit `theirs` gives.
enum CatchUp {
    /// This run's commits replayed on `theirs`: the new tip.
    Replayed(Oid),
    /// `theirs` already has every local commit: the branch fast-forwards to it.
    FastForward,
    /// Both sides changed these paths (or the histories cannot be replayed).
    Conflict(Divergence),
}

impl GitStore {
    /// Read the push credentials (`push_token`, `push_ssh_key`) now, dropping them, and check
    /// that the token may go to the remote: a problem fails the run before any CA is asked for
    /// anything.
    pub fn check_push_credentials(&self) -> Result<(), Error> {
        for (field, secret) in [
            ("push_token", &self.push_auth.token),
            ("push_ssh_key", &self.push_auth.ssh_key),
        ] {
            if let Some(secret) = secret {
                secrets::resolve(secret).map_err(|source| Error::PushSecret { field, source })?;
            }
        }
        if self.push_auth.token.is_some() {
            let repo = self.repository()?;
            let remote = self.resolve_remote(&repo)?;
            if http_scope(remote.url().unwrap_or_default()).is_none() {
                return Err(Error::TokenNeedsHttps {
                    remote: redact_url(&self.remote),
                });
            }
        }
        Ok(())
    }

    /// Push the current branch with the system `git`; see the module documentation.
    pub(super) fn push_with_git(&self, branch: &str) -> Result<Option<String>, Error> {
        // While git pushes, fetches and moves refs, the marker tells the next run (holding the
        // state lock) that git lock files it finds are a killed run's to remove.
        let marker = CommitMarker::create(&self.git_dir)?;
        let replayed = self.push_attempts(branch)?;
        marker.finish()?;
        Ok(replayed.map(|id| id.to_string()))
    }

    /// The push loop; `Some(tip)` when this repository's commits were replayed.
    fn push_attempts(&self, branch: &str) -> Result<Option<Oid>, Error> {
        let mut replayed = None;
        let done = |replayed: Option<Oid>| {
            remove_durably(&self.git_dir.join(PUSH_PENDING_FILE)).map(|()| replayed)
        };
        self.failpoints.hit("push-started");
        let repo = self.repository()?;
        let git = GitCli::new(self, &repo, &self.push_auth)?;
        let short = branch.strip_prefix("refs/heads/").unwrap_or(branch);
        for _ in 0..PUSH_ATTEMPTS {
            match git.push(branch)? {
                Pushed::Done => return done(replayed),
                Pushed::Refused(reason) => {
                    return Err(Error::PushRejected {
                        remote: git.shown(),
                        reference: short.to_string(),
                        reason,
                    })
                }
                Pushed::Stale => {}
            }
            let theirs = git.fetch(&repo, branch)?;
            // A fresh handle: the fetch wrote objects libgit2 has not seen yet.
            let repo = self.repository()?;
            let ours = self.head_commit(&repo)?.map(|commit| commit.id());
            let Some(ours) = ours else {
                return done(replayed);
            };
            match self.catch_up(&repo, ours, theirs)? {
                CatchUp::Replayed(tip) => {
                    tracing::info!(remote = %git.shown(), "the remote moved on: replayed this run's commits on it");
                    self.move_branch(&repo, branch, ours, tip)
                        .map_err(|error| blocked(error, &git, short))?;
                    replayed = Some(tip);
                }
                CatchUp::FastForward => {
                    self.move_branch(&repo, branch, ours, theirs)
                        .map_err(|error| blocked(error, &git, short))?;
                    return done(replayed);
                }
                CatchUp::Conflict(cause) => {
                    let kept = format!("certform/unpushed-{}", &ours.to_string()[..12]);
                    let commit = repo
                        .find_commit(ours)
                        .map_err(|source| self.git("read HEAD", source))?;
                    repo.branch(&kept, &commit, true)
                        .map_err(|source| self.git(format!("create branch `{kept}`"), source))?;
                    let reset = match self.move_branch(&repo, branch, ours, theirs) {
                        Ok(()) => true,
                        Err(Error::Git { source, .. })
                            if source.code() == git2::ErrorCode::Conflict =>
                        {
                            false
                        }
                        Err(error) => return Err(error),
                    };
                    done(None)?;
                    return Err(Error::PushConflict {
                        remote: git.shown(),
                        branch: short.to_string(),
                        kept,
                        reset,
                        cause,
                    });
                }
            }
        }
        Err(Error::PushRejected {
            remote: git.shown(),
            reference: short.to_string(),
            reason: format!(
                "the remote kept moving while certform caught up ({PUSH_ATTEMPTS} attempts); \
                 run `certform apply` again"
            ),
        })
    }

    /// Replay the local commits missing from `theirs` on top of it when no path they change
    /// was changed by `theirs` since the common ancestor.
    fn catch_up(&self, repo: &Repository, ours: Oid, theirs: Oid) -> Result<CatchUp, Error> {
        let git = |action: &str, source| self.git(action.to_string(), source);
        let Ok(base) = repo.merge_base(ours, theirs) else {
            return Ok(CatchUp::Conflict(Divergence::Unrelated));
        };
        let mut walk = repo.revwalk().map_err(|s| git("walk the history", s))?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
            .map_err(|s| git("walk the history", s))?;
        walk.push(ours).map_err(|s| git("walk the history", s))?;
        walk.hide(theirs).map_err(|s| git("walk the history", s))?;
        let mut local = Vec::new();
        for id in walk {
            let id = id.map_err(|s| git("walk the history", s))?;
            let commit = repo.find_commit(id).map_err(|s| git("read a commit", s))?;
            if commit.parent_count() != 1 {
                return Ok(CatchUp::Conflict(Divergence::Merge(
                    id.to_string()[..12].to_string(),
                )));
            }
            local.push(commit);
        }
        if local.is_empty() {
            return Ok(CatchUp::FastForward);
        }
        let tree_of = |id: Oid| -> Result<Tree<'_>, Error> {
            repo.find_commit(id)
                .and_then(|commit| commit.tree())
                .map_err(|s| git("read a tree", s))
        };
        let theirs_changed = changed_paths(repo, &tree_of(base)?, &tree_of(theirs)?)
            .map_err(|s| git("compare trees", s))?;
        let mut per_commit = Vec::new();
        let mut ours_changed = BTreeSet::new();
        for commit in &local {
            let parent = commit.parent(0).map_err(|s| git("read a commit", s))?;
            let parent_tree = parent.tree().map_err(|s| git("read a tree", s))?;
            let tree = commit.tree().map_err(|s| git("read a tree", s))?;
            let paths =
                changed_paths(repo, &parent_tree, &tree).map_err(|s| git("compare trees", s))?;
            ours_changed.extend(paths.iter().cloned());
            per_commit.push((commit, tree, paths));
        }
        let both: Vec<String> = ours_changed
            .intersection(&theirs_changed)
            .cloned()
            .collect();
        if !both.is_empty() {
            return Ok(CatchUp::Conflict(Divergence::SamePaths(both)));
        }
        let mut tip = repo
            .find_commit(theirs)
            .map_err(|s| git("read a commit", s))?;
        for (commit, tree, paths) in per_commit {
            let mut index = Index::new().map_err(|s| git("create an index", s))?;
            let tip_tree = tip.tree().map_err(|s| git("read a tree", s))?;
            index
                .read_tree(&tip_tree)
                .map_err(|s| git("read a tree", s))?;
            for path in &paths {
                super::git_index::remove_from_index(&mut index, path)
                    .map_err(|s| git("replay a commit", s))?;
                if let Ok(entry) = tree.get_path(Path::new(path)) {
                    add_tree_entry(&mut index, path, &entry)
                        .map_err(|s| git("replay a commit", s))?;
                }
            }
            let new_tree = index
                .write_tree_to(repo)
                .and_then(|id| repo.find_tree(id))
                .map_err(|s| git("write the tree", s))?;
            let message = commit.message_raw().unwrap_or_default();
            let id = repo
                .commit(
                    None,
                    &commit.author(),
                    &commit.committer(),
                    message,
                    &new_tree,
                    &[&tip],
                )
                .map_err(|s| git("replay a commit", s))?;
            tip = repo.find_commit(id).map_err(|s| git("read a commit", s))?;
        }
        Ok(CatchUp::Replayed(tip.id()))
    }

    /// Move `branch` (checked out) from `old` to `new`: check out the files that differ (safe:
    /// refused, with nothing written, when one of them has uncommitted changes), then update the
    /// branch. A move file records the move first, so a run killed in between is finished by
    /// the next (`finish_move`). The caller holds the commit marker.
    fn move_branch(
        &self,
        repo: &Repository,
        branch: &str,
        old: Oid,
        new: Oid,
    ) -> Result<(), Error> {
        let path = self.git_dir.join(MOVE_FILE);
        atomic_file::write(
            &path,
            format!("{old} {new} {branch}\n").as_bytes(),
            FILE_MODE,
        )
        .map_err(|source| io_error("write", &path, source))?;
        let moved = self.checkout_between(repo, old, new, false).and_then(|()| {
            self.failpoints.hit("push-before-ref");
            repo.reference_matching(branch, new, true, old, "certform: catch up with the remote")
                .map(|_| ())
                .map_err(|source| self.git(format!("update `{branch}`"), source))
        });
        remove_durably(&path)?;
        moved
    }

    /// Check out in the work tree and index the paths that differ between `old` and `new`.
    fn checkout_between(
        &self,
        repo: &Repository,
        old: Oid,
        new: Oid,
        force: bool,
    ) -> Result<(), Error> {
        let git = |action: &str, source| self.git(action.to_string(), source);
        let old_tree = repo
            .find_commit(old)
            .and_then(|commit| commit.tree())
            .map_err(|s| git("read a tree", s))?;
        let new_commit: Commit<'_> = repo.find_commit(new).map_err(|s| git("read a commit", s))?;
        let new_tree = new_commit.tree().map_err(|s| git("read a tree", s))?;
        let paths =
            changed_paths(repo, &old_tree, &new_tree).map_err(|s| git("compare trees", s))?;
        if paths.is_empty() {
            return Ok(());
        }
        let mut checkout = CheckoutBuilder::new();
        if force {
            checkout.force();
        } else {
            checkout.safe();
        }
        // The baseline is HEAD's tree, which is `old` (or, when finishing a move, forced anyway).
        checkout.disable_pathspec_match(true);
        for path in &paths {
            checkout.path(path);
        }
        repo.checkout_tree(new_tree.as_object(), Some(&mut checkout))
            .map_err(|s| git("check out the remote's files", s))
    }

    /// Finish a branch move a killed run left (its move file); the note says what was done.
    pub(super) fn finish_move(&self) -> Result<Option<String>, Error> {
        let path = self.git_dir.join(MOVE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_error("read", &path, source)),
        };
        let parts: Vec<&str> = text.split_whitespace().collect();
        let parsed = match parts.as_slice() {
            [old, new, branch] => Oid::from_str(old)
                .and_then(|old| Ok((old, Oid::from_str(new)?, branch.to_string())))
                .ok(),
            _ => None,
        };
        let repo = self.repository()?;
        let note = match parsed {
            Some((old, new, branch)) => {
                let current = repo.refname_to_id(&branch).ok();
                if current == Some(old) || current == Some(new) {
                    // The safe checkout had found no local change in these files before the
                    // kill: what differs now is the killed run's half-written checkout.
                    self.checkout_between(&repo, old, new, true)?;
                    if current == Some(old) {
                        repo.reference_matching(
                            &branch,
                            new,
                            true,
                            old,
                            "certform: finish catching up",
                        )
                        .map_err(|source| self.git(format!("update `{branch}`"), source))?;
                    }
                    format!(
                        "finished moving `{branch}` to the remote's state ({}), interrupted in a \
                         previous run",
                        &new.to_string()[..12]
                    )
                } else {
                    format!("`{branch}` moved elsewhere since an interrupted run: left as it is")
                }
            }
            None => "removed an unreadable record of an interrupted branch move".to_string(),
        };
        remove_durably(&path)?;
        Ok(Some(note))
    }
}

/// A checkout refused because of the user's uncommitted changes, said so.
fn blocked(error: Error, git: &GitCli<'_>, branch: &str) -> Error {
    match error {
        Error::Git { source, .. } if source.code() == git2::ErrorCode::Conflict => {
            Error::CatchUpBlocked {
                remote: git.shown(),
                branch: branch.to_string(),
            }
        }
        other => other,
    }
}

/// Every path (both sides of renames) that differs between two trees.
fn changed_paths(
    repo: &Repository,
    old: &Tree<'_>,
    new: &Tree<'_>,
) -> Result<BTreeSet<String>, git2::Error> {
    let mut options = DiffOptions::new();
    options.include_typechange(true);
    let diff = repo.diff_tree_to_tree(Some(old), Some(new), Some(&mut options))?;
    let mut paths = BTreeSet::new();
    for delta in diff.deltas() {
        if delta.status() == Delta::Unmodified {
            continue;
        }
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(path) = file.path().and_then(Path::to_str) {
                paths.insert(path.to_string());
            }
        }
    }
    Ok(paths)
}

/// Add `path` to `index` as `entry` (a blob) of some tree has it.
fn add_tree_entry(
    index: &mut Index,
    path: &str,
    entry: &git2::TreeEntry<'_>,
) -> Result<(), git2::Error> {
    index.add(&git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: entry.filemode() as u32,
        uid: 0,
        gid: 0,
        file_size: 0,
        id: entry.id(),
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_go_to_https_or_loopback_http_only() {
        assert_eq!(
            http_scope("https://u:p@git.example.com/a/b.git").as_deref(),
            Some("https://git.example.com/")
        );
        assert_eq!(
            http_scope("HTTPS://git.example.com:8443/x").as_deref(),
            Some("https://git.example.com:8443/")
        );
        assert_eq!(
            http_scope("http://127.0.0.1:9/x.git").as_deref(),
            Some("http://127.0.0.1:9/")
        );
        assert_eq!(
            http_scope("http://[::1]:9/x.git").as_deref(),
            Some("http://[::1]:9/")
        );
        assert_eq!(http_scope("http://git.example.com/x.git"), None);
        assert_eq!(http_scope("ssh://git@host/x.git"), None);
        assert_eq!(http_scope("git@host:x.git"), None);
        assert_eq!(http_scope("/srv/x.git"), None);
    }

    #[test]
    fn ssh_command_is_strict_and_quotes_paths() {
        let auth = PushAuth {
            ssh_key: Some(crate::config::SecretRef::File("/k/it's key".into())),
            known_hosts: Some("/k/known hosts".into()),
            ..PushAuth::default()
        };
        assert_eq!(
            ssh_command(&auth),
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o LogLevel=ERROR \
             -o UserKnownHostsFile='/k/known hosts' -o IdentitiesOnly=yes -i '/k/it'\\''s key'"
        );
    }
}
