//! Errors of the state store, with the hints the CLI prints under them.

use std::io;
use std::path::PathBuf;

use crate::state::key_scan::KeyMaterial;
use crate::state::lock::{self, Liveness, LockHolder};

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("state file `{}:{line}:{column}` is corrupt: {message}", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error(
        "state file `{}` has format {found}, but this certform reads format {supported}; \
         upgrade certform",
        path.display()
    )]
    UnsupportedFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error(
        "state file `{}` records certificate `{found}`, but its file name says `{expected}`",
        path.display()
    )]
    NameMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("invalid certificate name `{name}` for the state store: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("invalid path `{path}` in the state store: {reason}")]
    InvalidPath { path: String, reason: &'static str },

    #[error(
        "refusing to write private key material to `{}`: the state repository holds public \
         data only",
        path.display()
    )]
    PrivateKeyMaterial { path: PathBuf },

    #[error("failed to serialize the state of certificate `{name}`")]
    Serialize {
        name: String,
        #[source]
        source: toml::ser::Error,
    },

    #[error("failed to {action} in `{}`", repo.display())]
    Git {
        action: String,
        repo: PathBuf,
        #[source]
        source: git2::Error,
    },

    #[error("state repository `{}` is not usable: {reason}", repo.display())]
    NotWorkTree { repo: PathBuf, reason: String },

    #[error(
        "refusing to create the state repository `{}` inside the git work tree `{}`; set \
         `repo` to `{}` and `dir` to `{}` to keep state in that repository, or add `{}/` to \
         its `.gitignore`",
        repo.display(),
        work_tree.display(),
        work_tree.display(),
        relative.display(),
        relative.display()
    )]
    NestedRepository {
        repo: PathBuf,
        work_tree: PathBuf,
        relative: PathBuf,
    },

    #[error(
        "keys directory `{}` is inside the git work tree `{}` and not ignored there: a `git \
         add` in that repository would commit private keys (`{}/`)",
        keys_dir.display(),
        work_tree.display(),
        relative.display()
    )]
    KeysDirInRepository {
        keys_dir: PathBuf,
        work_tree: PathBuf,
        relative: PathBuf,
    },

    #[error(
        "state repository `{}` is locked by {holder}{}",
        repo.display(),
        lock::describe_busy(*liveness, *waited)
    )]
    Locked {
        repo: PathBuf,
        /// The lock file.
        path: PathBuf,
        holder: Box<LockHolder>,
        /// `Running`, `PidRunning` or `OtherHost`: a dead holder's lock is taken over.
        liveness: Liveness,
        /// How long this run waited for it (`--lock-timeout`).
        waited: std::time::Duration,
    },

    #[error(
        "refusing to break the lock of state repository `{}`: {}",
        repo.display(),
        lock::describe_held(holder.as_deref(), *liveness)
    )]
    LockHeld {
        repo: PathBuf,
        /// The lock file.
        path: PathBuf,
        /// `None` when the lock file is unreadable (its `flock` is held all the same).
        holder: Option<Box<LockHolder>>,
        /// `Running` or `PidRunning`.
        liveness: Liveness,
    },

    #[error(
        "keys directory `{}` is inside the state directory `{}`",
        keys_dir.display(),
        state_dir.display()
    )]
    KeysDirInStateRepository {
        keys_dir: PathBuf,
        state_dir: PathBuf,
    },

    #[error("refusing to commit `{}`: it holds {material}", path.display())]
    PrivateKeyInCommit {
        path: PathBuf,
        material: KeyMaterial,
    },

    #[error(
        "refusing to commit `{}`: it is not a regular file, and certform commits only the \
         files it writes",
        path.display()
    )]
    NotRegularFile { path: PathBuf },

    #[error(
        "git lock file `{}` exists: another git command may be running in `{}`",
        path.display(),
        repo.display()
    )]
    GitLocked { repo: PathBuf, path: PathBuf },

    #[error(
        "a certform commit (pid {pid} on {host}) is still running in `{}`",
        repo.display()
    )]
    CommitInProgress {
        repo: PathBuf,
        pid: u32,
        host: String,
    },

    #[error(
        "after commit {commit}, the index of `{}` still disagrees with HEAD for {}",
        repo.display(),
        paths.iter().map(|path| format!("`{path}`")).collect::<Vec<_>>().join(", ")
    )]
    IndexMismatch {
        repo: PathBuf,
        commit: String,
        paths: Vec<String>,
    },

    #[error(
        "state repository `{}` is locked, but its lock file `{}` is unreadable: {reason}",
        repo.display(),
        path.display()
    )]
    LockUnreadable {
        repo: PathBuf,
        path: PathBuf,
        reason: String,
    },

    #[error(
        "remote `{remote}` is not configured in `{}` and is not a path or URL",
        repo.display()
    )]
    RemoteNotFound { repo: PathBuf, remote: String },

    #[error("cannot push from `{}`: HEAD is detached, not on a branch", repo.display())]
    DetachedHead { repo: PathBuf },

    #[error("remote `{remote}` rejected the push of `{reference}`: {reason}")]
    PushRejected {
        remote: String,
        reference: String,
        reason: String,
    },

    /// `git` failed talking to the remote; `detail` is git's message with credentials removed.
    #[error("failed to {action} `{remote}`: {detail}")]
    GitTransport {
        action: &'static str,
        remote: String,
        detail: String,
        failure: TransportFailure,
    },

    #[error("cannot run `git` to push the state repository")]
    GitMissing {
        #[source]
        source: io::Error,
    },

    #[error("cannot read `[state] {field}`")]
    PushSecret {
        field: &'static str,
        #[source]
        source: crate::secrets::Error,
    },

    #[error(
        "`[state] push_token` is only sent to an `https://` remote (or `http://` on loopback), \
         not to `{remote}`"
    )]
    TokenNeedsHttps { remote: String },

    #[error(
        "remote `{remote}` moved on, and `{branch}` cannot catch up with it: the work tree has \
         uncommitted changes to files the remote changed; not pushed"
    )]
    CatchUpBlocked { remote: String, branch: String },

    #[error("remote `{remote}` moved on and {cause}: not pushed")]
    PushConflict {
        remote: String,
        branch: String,
        /// The branch keeping this run's commits.
        kept: String,
        /// Whether the local branch was reset to the remote's commit.
        reset: bool,
        cause: Divergence,
    },
}

/// What kind of failure git reported talking to a remote, classified once where git's output
/// is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    /// The server refused `push_token`.
    TokenRefused,
    /// SSH could not verify the server's host key.
    HostKey,
    /// Anything else (network, missing repository, ...).
    Other,
}

/// Why this repository's commits cannot be replayed on the remote's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Divergence {
    /// Both sides changed these paths.
    SamePaths(Vec<String>),
    /// The histories share no commit.
    Unrelated,
    /// A local commit to replay is a merge (its id).
    Merge(String),
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Divergence::SamePaths(paths) => write!(
                f,
                "its new commits change {} this run changed too",
                list_paths(paths)
            ),
            Divergence::Unrelated => f.write_str("its history shares no commit with this one"),
            Divergence::Merge(id) => write!(
                f,
                "the local commit {id} to replay on it is a merge, which certform does not replay"
            ),
        }
    }
}

fn list_paths(paths: &[String]) -> String {
    let shown: Vec<String> = paths
        .iter()
        .take(5)
        .map(|path| format!("`{path}`"))
        .collect();
    let more = paths.len().saturating_sub(shown.len());
    if more == 0 {
        shown.join(", ")
    } else {
        format!("{} and {more} more", shown.join(", "))
    }
}

impl Error {
    /// What the user can do about the error, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::KeysDirInRepository {
                work_tree,
                relative,
                ..
            } => Some(format!(
                "move `keys_dir` out of every git work tree (by default keys live under \
                 `$XDG_DATA_HOME/certform/keys`); if it must stay there, add `{}/` to `{}` so \
                 no `git add` picks it up (certform itself commits only its state files)",
                relative.display(),
                work_tree.join(".gitignore").display()
            )),
            Error::KeysDirInStateRepository { state_dir, .. } => Some(format!(
                "set `keys_dir` to a directory outside `{}`; private keys never belong with \
                 the state, ignored or not",
                state_dir.display()
            )),
            Error::PrivateKeyInCommit { path, .. } => Some(format!(
                "nothing was committed; private keys belong in `keys_dir`, outside every git \
                 repository: move `{}` out of the state directory and run certform again",
                path.display()
            )),
            Error::NotRegularFile { path } => Some(format!(
                "nothing was committed; replace `{}` by a regular file or remove it",
                path.display()
            )),
            Error::GitLocked { path, .. } => Some(format!(
                "wait for that git command to finish; if none is running (it was killed), \
                 remove `{}`",
                path.display()
            )),
            Error::CommitInProgress { .. } => Some(
                "wait for it to finish; another certform should not run while this one holds \
                 the state lock"
                    .to_string(),
            ),
            Error::IndexMismatch { paths, .. } => Some(format!(
                "run `git reset -q -- {}` in the state repository to make the index match \
                 HEAD",
                paths.join(" ")
            )),
            Error::GitMissing { .. } => Some(
                "install git (e.g. `apt-get install git`); certform pushes with the system \
                 `git` so that credential helpers, `~/.ssh/config` and the SSH agent apply"
                    .to_string(),
            ),
            Error::TokenNeedsHttps { .. } => Some(
                "use the remote's `https://` URL, or drop `push_token` and let SSH \
                 authenticate (`push_ssh_key` or the SSH agent)"
                    .to_string(),
            ),
            Error::GitTransport {
                failure: TransportFailure::TokenRefused,
                ..
            } => Some(
                "check `[state] push_token` (and `push_user`): the token must allow writing to \
                 the repository"
                    .to_string(),
            ),
            Error::GitTransport {
                failure: TransportFailure::HostKey,
                ..
            } => Some(
                "add the server's host key to `[state] push_known_hosts` (or \
                 `~/.ssh/known_hosts`), checked with `ssh-keyscan` against a trusted fingerprint"
                    .to_string(),
            ),
            Error::CatchUpBlocked { .. } => Some(
                "commit or stash your changes in the state repository (`git status` shows \
                 them); this run's commit is kept and the next `certform apply` pushes it"
                    .to_string(),
            ),
            Error::PushConflict {
                branch,
                kept,
                reset,
                ..
            } => Some(if *reset {
                format!(
                    "the remote changed what this run changed; this run's commits are kept \
                     on branch `{kept}` and `{branch}` now matches the remote: the next \
                     `certform apply` plans again from it (see `git log -p {branch}..{kept}`)"
                )
            } else {
                format!(
                    "the remote changed what this run changed; this run's commits are kept \
                     on branch `{kept}`; `{branch}` was left as it is because the work tree \
                     has uncommitted changes to files the remote changed: commit or stash \
                     them, then `git reset --hard` to the remote's `{branch}` and run \
                     `certform apply` again"
                )
            }),
            _ => None,
        }
    }
}
