//! The git-backed state store: reads and writes certform's files in the state repository's work
//! tree, commits exactly those files, and pushes.
//!
//! Layout under `<repo>/<dir>`: `certificates/<name>.toml` (one `CertificateState` each),
//! `certificates/<name>.pem` (the public chain) and `ca/` (public CA material). Those two
//! directories are certform's; nothing else in the repository is read, written, staged or
//! committed, because the state repository may be the user's own config repository with their
//! own staged and unstaged edits. Private keys never come here.
//!
//! A commit takes exactly the paths this store wrote or removed, listed in a journal in the git
//! directory before each write (so a killed run's files are committed by the next run), never a
//! directory sweep; every file is scanned for private keys first and the commit refused if one
//! holds any. While a commit writes objects, the branch and the index, a marker in the git
//! directory names the committing process: a later run holding the state lock that finds it
//! removes the git lock files the killed run left and restores the index from HEAD.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use git2::{
    Commit, ErrorCode, Index, IndexEntry, IndexTime, ObjectType, Oid, PushOptions, Remote,
    RemoteCallbacks, Repository, RepositoryInitOptions, Signature, Tree,
};
use serde::{Deserialize, Serialize};

use super::key_scan::{self, KeyMaterial};
use super::lock::{self, host_name, process_start, BrokenLock, Liveness, LockGuard, LockHolder};
use super::model::{CertificateState, State, FORMAT};
use crate::apply::FailPoints;
use crate::atomic_file;
use crate::config::StateSettings;

/// First line of every state file certform writes.
pub const HEADER: &str = "# managed by certform; edit with care\n";

/// Directory (under `<dir>`) of the per-certificate state files and chains.
pub const CERTIFICATES_DIR: &str = "certificates";

/// Directory (under `<dir>`) of public CA material, e.g. `ca/local.pem`.
pub const CA_DIR: &str = "ca";

/// The directories (under `<dir>`) certform owns: the only ones it writes and commits.
const MANAGED_DIRS: [&str; 2] = [CERTIFICATES_DIR, CA_DIR];

/// File in the git directory listing the paths certform wrote or removed and has not committed
/// yet, one per line, appended before each write: a killed run's writes are committed by the
/// next run, by exact path.
const PENDING_FILE: &str = "certform-pending";

/// File in the git directory that exists while a certform commit writes objects, the branch
/// and the index. A run holding the state lock that finds it knows the git lock files present
/// are a killed certform's, and repairs them.
const COMMIT_MARKER: &str = "certform-commit";

/// Lock file (`flock`) in a new state repository's directory while it is initialised.
const INIT_LOCK: &str = ".certform-init.lock";

/// Git's own lock files, relative to the git directory (plus any `refs/**/*.lock`).
const GIT_LOCK_FILES: [&str; 4] = ["index.lock", "HEAD.lock", "config.lock", "packed-refs.lock"];

/// The fail points of a commit, in the order a commit passes them (`CERTFORM_FAILPOINT`).
pub const COMMIT_FAIL_POINTS: [&str; 4] = [
    "commit-started",
    "commit-before-ref",
    "commit-before-index",
    "commit-after-index",
];

const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;
const FALLBACK_NAME: &str = "certform";
const FALLBACK_EMAIL: &str = "certform@localhost";

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

    /// `remote` is shown with any credentials redacted, and so is `source`'s message.
    #[error("failed to push `{branch}` to `{remote}`")]
    Push {
        remote: String,
        branch: String,
        #[source]
        source: git2::Error,
    },

    #[error("remote `{remote}` rejected the push of `{reference}`: {reason}")]
    PushRejected {
        remote: String,
        reference: String,
        reason: String,
    },
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
            _ => None,
        }
    }
}

/// Where certform's state lives and how it is recorded.
pub trait StateStore: Send + Sync {
    /// Read every `certificates/*.toml` from the work tree (not HEAD): a killed apply leaves
    /// uncommitted intents there and the next run must see them.
    fn load(&self) -> Result<State, Error>;

    /// Atomically write `certificates/<name>.toml` (fsynced, mode 0644).
    fn save_certificate(&self, certificate: &CertificateState) -> Result<(), Error>;

    /// Atomically write the public chain `certificates/<name>.pem`.
    fn save_chain(&self, name: &str, chain_pem: &str) -> Result<(), Error>;

    /// The public chain of `name`, `None` when there is none.
    fn read_chain(&self, name: &str) -> Result<Option<String>, Error>;

    /// Remove the state file and the chain of `name` (missing files are fine).
    fn remove_certificate(&self, name: &str) -> Result<(), Error>;

    /// Atomically write a public file such as `ca/local.pem`; `relative` must lie under `ca/`
    /// or `certificates/` (the directories that are committed), with no `..`.
    fn write_public_file(&self, relative: &str, content: &str) -> Result<(), Error>;

    /// Commit the files this store wrote or removed (and those a killed run wrote before its
    /// commit), exactly those paths, as they are in the work tree; `Some(commit id)`, or `None`
    /// when none of them changed. Refuses, committing nothing, when one holds a private key.
    fn commit(&self, message: &str) -> Result<Option<String>, Error>;

    /// Push the current branch to the configured remote.
    fn push(&self) -> Result<(), Error>;
}

/// The state store in a git work tree.
#[derive(Debug, Clone)]
pub struct GitStore {
    /// Top of the work tree (`settings.repo`).
    work_tree: PathBuf,
    /// The repository's git directory (`.git`), home of the lock.
    git_dir: PathBuf,
    /// `settings.dir` as a git path: `""` for the top, else `a/b` without trailing slash.
    prefix: String,
    /// `<repo>/<dir>`.
    root: PathBuf,
    /// `settings.remote`: a remote name configured in the repository, or a path or URL.
    remote: String,
    /// Git paths this store wrote or removed and has not committed yet.
    touched: Arc<Mutex<BTreeSet<String>>>,
    failpoints: FailPoints,
}

impl GitStore {
    /// Open the state repository, creating it (`git init`, initial branch `main`) when missing.
    ///
    /// `settings.repo` must be the top of a work tree (possibly the user's own repository,
    /// possibly without commits) or not a repository yet. A new repository is not created
    /// inside another repository's work tree unless that repository ignores it.
    pub fn open(settings: &StateSettings) -> Result<GitStore, Error> {
        let prefix = git_prefix(&settings.dir)?;
        let work_tree = settings.repo.clone();
        let repository = open_or_init(&work_tree)?;
        let git_dir = repository.path().to_path_buf();
        let root = if prefix.is_empty() {
            work_tree.clone()
        } else {
            work_tree.join(&prefix)
        };
        Ok(GitStore {
            work_tree,
            git_dir,
            prefix,
            root,
            remote: settings.remote.clone(),
            touched: Arc::default(),
            failpoints: FailPoints::default(),
        })
    }

    /// Exit at the named points of a commit (`COMMIT_FAIL_POINTS`), for crash tests.
    pub fn set_failpoints(&mut self, failpoints: FailPoints) {
        self.failpoints = failpoints;
    }

    /// Fail when `keys_dir` lies inside the state directory (`<repo>/<dir>`), ignored or not,
    /// or elsewhere in a git work tree that does not ignore it: defence in depth behind the
    /// configuration's own check, run once the state repository exists.
    pub fn check_keys_dir(&self, keys_dir: &Path) -> Result<(), Error> {
        let keys = resolve_path(keys_dir)?;
        let root = resolve_path(&self.root)?;
        if keys.starts_with(&root) {
            return Err(Error::KeysDirInStateRepository {
                keys_dir: keys_dir.to_path_buf(),
                state_dir: self.root.clone(),
            });
        }
        check_keys_dir_outside_git(keys_dir)
    }

    /// Clean up after a certform killed in the middle of a commit, before anything else
    /// touches the repository; returns what was repaired, for the output.
    ///
    /// Call it while holding the state lock: the lock guarantees no other live certform works
    /// in this repository, so git lock files found together with the commit marker are the
    /// killed run's; they are removed and the index entries of certform's files restored from
    /// HEAD. A git lock file without the marker may belong to a running git command: that is
    /// an error naming the file.
    pub fn recover(&self) -> Result<Vec<String>, Error> {
        // The marker and the journal are written through temp files in the git directory; a
        // run killed mid-write leaves one there (certform's own pattern only, dead pids only).
        let mut notes: Vec<String> = atomic_file::remove_stale_temps(&self.git_dir, 0)
            .map_err(|source| io_error("clean", &self.git_dir, source))?
            .into_iter()
            .map(|path| {
                format!(
                    "removed `{}`, a temp file left by an interrupted run",
                    path.display()
                )
            })
            .collect();
        let marker_path = self.git_dir.join(COMMIT_MARKER);
        let marker = CommitMarker::read(&marker_path)?;
        let locks = self.git_lock_files()?;
        let Some(marker) = marker else {
            return match locks.into_iter().next() {
                Some(path) => Err(Error::GitLocked {
                    repo: self.work_tree.clone(),
                    path,
                }),
                None => Ok(notes),
            };
        };
        if marker.is_another_live_process() {
            return Err(Error::CommitInProgress {
                repo: self.work_tree.clone(),
                pid: marker.pid,
                host: marker.host,
            });
        }
        for path in &locks {
            match fs::remove_file(path) {
                Ok(()) => notes.push(format!(
                    "removed `{}`, left by a certform (pid {}) killed while committing",
                    path.display(),
                    marker.pid
                )),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(io_error("remove", path, source)),
            }
        }
        let repo = self.repository()?;
        let paths = self.pending()?;
        let repaired = self.sync_index(&repo, &paths)?;
        if !repaired.is_empty() {
            notes.push(format!(
                "restored the index entries of {} from HEAD after a certform (pid {}) was \
                 killed while committing",
                repaired
                    .iter()
                    .map(|path| format!("`{path}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                marker.pid
            ));
        }
        remove_durably(&marker_path)?;
        Ok(notes)
    }

    /// `<repo>/<dir>`: the directory holding `certificates/` and `ca/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Take the repository's lock for `command` (e.g. `certform apply`): one run at a time.
    /// A dead holder's lock is taken over (see `LockGuard::taken_over`); a live one fails.
    pub fn lock(&self, command: &str) -> Result<LockGuard, Error> {
        self.lock_waiting(command, std::time::Duration::ZERO)
    }

    /// `lock`, waiting up to `wait` for a holder that runs (or runs on another host).
    pub fn lock_waiting(
        &self,
        command: &str,
        wait: std::time::Duration,
    ) -> Result<LockGuard, Error> {
        lock::acquire(&self.git_dir, &self.work_tree, command, wait)
    }

    /// Remove the lock unless its holder runs on this host (`certform unlock --force`);
    /// `None` when there was no lock.
    pub fn break_lock(&self) -> Result<Option<BrokenLock>, Error> {
        lock::break_lock(&self.git_dir, &self.work_tree)
    }

    fn certificates_dir(&self) -> PathBuf {
        self.root.join(CERTIFICATES_DIR)
    }

    fn certificate_file(&self, name: &str, extension: &str) -> Result<PathBuf, Error> {
        validate_name(name)?;
        Ok(self.certificates_dir().join(format!("{name}.{extension}")))
    }

    fn repository(&self) -> Result<Repository, Error> {
        Repository::open(&self.work_tree).map_err(|source| self.git("open the repository", source))
    }

    fn git(&self, action: impl Into<String>, source: git2::Error) -> Error {
        Error::Git {
            action: action.into(),
            repo: self.work_tree.clone(),
            source,
        }
    }

    /// Git path (relative to the work tree, `/`-separated) of a managed directory.
    fn git_path(&self, managed: &str) -> String {
        if self.prefix.is_empty() {
            managed.to_string()
        } else {
            format!("{}/{managed}", self.prefix)
        }
    }

    /// The git path of `relative` (e.g. `certificates/www.toml`) under `<dir>`.
    fn managed_git_path(&self, relative: &str) -> String {
        self.git_path(relative)
    }

    /// Whether `git_path` names a file under certform's directories.
    fn is_managed_git_path(&self, git_path: &str) -> bool {
        let relative = if self.prefix.is_empty() {
            Some(git_path)
        } else {
            git_path
                .strip_prefix(self.prefix.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
        };
        relative.is_some_and(|relative| managed_relative_path(relative).is_ok())
    }

    /// Remember that this run writes or removes `relative`: in the journal first (durably),
    /// so a kill right after the write still gets the file committed by the next run.
    fn record(&self, relative: &str) -> Result<(), Error> {
        let git_path = self.managed_git_path(relative);
        let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        if touched.contains(&git_path) {
            return Ok(());
        }
        let path = self.git_dir.join(PENDING_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|source| io_error("open", &path, source))?;
        let created = file
            .metadata()
            .map_err(|source| io_error("read", &path, source))?
            .len()
            == 0;
        file.write_all(format!("{git_path}\n").as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|source| io_error("write", &path, source))?;
        if created {
            atomic_file::sync_dir(&self.git_dir)
                .map_err(|source| io_error("sync", &self.git_dir, source))?;
        }
        touched.insert(git_path);
        Ok(())
    }

    /// Every path written or removed and not committed yet: this run's and a killed run's.
    fn pending(&self) -> Result<BTreeSet<String>, Error> {
        let path = self.git_dir.join(PENDING_FILE);
        let mut paths = BTreeSet::new();
        match fs::read(&path) {
            Ok(bytes) => {
                let mut lines: Vec<&[u8]> = bytes.split(|&byte| byte == b'\n').collect();
                // After the last newline: nothing, or a line a crash cut short.
                lines.pop();
                for line in lines {
                    match std::str::from_utf8(line) {
                        Ok(line) if self.is_managed_git_path(line) => {
                            paths.insert(line.to_string());
                        }
                        _ => tracing::warn!(
                            path = %path.display(),
                            line = %String::from_utf8_lossy(line),
                            "ignoring a journal line that names no state file"
                        ),
                    }
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_error("read", &path, source)),
        }
        let touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        paths.extend(touched.iter().cloned());
        Ok(paths)
    }

    /// Forget `committed`: they are in HEAD and in the index now.
    fn clear_pending(&self, committed: &BTreeSet<String>) -> Result<(), Error> {
        let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        touched.retain(|path| !committed.contains(path));
        let path = self.git_dir.join(PENDING_FILE);
        if touched.is_empty() {
            return remove_durably(&path);
        }
        let rest: String = touched.iter().map(|path| format!("{path}\n")).collect();
        atomic_file::write(&path, rest.as_bytes(), FILE_MODE)
            .map_err(|source| io_error("write", &path, source))
    }

    /// Git's lock files present in the git directory.
    fn git_lock_files(&self) -> Result<Vec<PathBuf>, Error> {
        let mut found = Vec::new();
        for name in GIT_LOCK_FILES {
            let path = self.git_dir.join(name);
            match fs::symlink_metadata(&path) {
                Ok(_) => found.push(path),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(io_error("read", &path, source)),
            }
        }
        let mut directories = vec![self.git_dir.join("refs")];
        while let Some(directory) = directories.pop() {
            let listing = match fs::read_dir(&directory) {
                Ok(listing) => listing,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(io_error("list", &directory, source)),
            };
            for entry in listing {
                let entry = entry.map_err(|source| io_error("list", &directory, source))?;
                let path = entry.path();
                let file_type = entry
                    .file_type()
                    .map_err(|source| io_error("read", &path, source))?;
                if file_type.is_dir() {
                    directories.push(path);
                } else if entry.file_name().as_bytes().ends_with(b".lock") {
                    found.push(path);
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// HEAD's commit, `None` on an unborn branch.
    fn head_commit<'r>(&self, repo: &'r Repository) -> Result<Option<Commit<'r>>, Error> {
        match repo.head() {
            Ok(head) => {
                Ok(Some(head.peel_to_commit().map_err(|source| {
                    self.git("read the HEAD commit", source)
                })?))
            }
            Err(error) if matches!(error.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => {
                Ok(None)
            }
            Err(source) => Err(self.git("read HEAD", source)),
        }
    }

    /// Point the current branch (or a detached HEAD) at `id`, only if it still points at
    /// `parent`: a commit made meanwhile by someone else is never overwritten.
    fn update_head(
        &self,
        repo: &Repository,
        id: Oid,
        parent: Option<Oid>,
        message: &str,
    ) -> Result<(), Error> {
        let log = format!(
            "commit{}: {}",
            if parent.is_none() { " (initial)" } else { "" },
            message.lines().next().unwrap_or_default()
        );
        let head = repo
            .find_reference("HEAD")
            .map_err(|source| self.git("read HEAD", source))?;
        let name = head.symbolic_target().unwrap_or("HEAD").to_string();
        let updated = match parent {
            Some(parent) => repo.reference_matching(&name, id, true, parent, &log),
            None => repo.reference(&name, id, false, &log),
        };
        match updated {
            Ok(_) => Ok(()),
            Err(error) if error.code() == ErrorCode::Locked => Err(Error::GitLocked {
                repo: self.work_tree.clone(),
                path: self.git_dir.join(format!("{name}.lock")),
            }),
            Err(source) => Err(self.git(format!("update `{name}`"), source)),
        }
    }

    /// What the index should hold for `git_path`: HEAD's blob and mode, `None` when HEAD has
    /// no such file.
    fn head_entry(tree: Option<&Tree<'_>>, git_path: &str) -> Option<(Oid, u32)> {
        let entry = tree?.get_path(Path::new(git_path)).ok()?;
        (entry.kind() == Some(ObjectType::Blob)).then(|| {
            (
                entry.id(),
                u32::try_from(entry.filemode()).unwrap_or(0o100644),
            )
        })
    }

    /// The paths among `paths` whose index entry differs from HEAD (or is conflicted).
    fn index_mismatches(
        index: &Index,
        tree: Option<&Tree<'_>>,
        paths: &BTreeSet<String>,
    ) -> Vec<String> {
        paths
            .iter()
            .filter(|git_path| {
                let path = Path::new(git_path.as_str());
                let staged = index.get_path(path, 0).map(|entry| (entry.id, entry.mode));
                let conflicted = (1..=3).any(|stage| index.get_path(path, stage).is_some());
                conflicted || staged != Self::head_entry(tree, git_path)
            })
            .cloned()
            .collect()
    }

    /// Make the index entries of `paths` match HEAD (a file HEAD lacks leaves the index), and
    /// nothing else; returns the paths changed. The user's other staged and unstaged changes
    /// stay exactly as they were.
    fn sync_index(
        &self,
        repo: &Repository,
        paths: &BTreeSet<String>,
    ) -> Result<Vec<String>, Error> {
        let head = self.head_commit(repo)?;
        let tree = head
            .as_ref()
            .map(Commit::tree)
            .transpose()
            .map_err(|source| self.git("read the HEAD tree", source))?;
        let mut index = repo
            .index()
            .map_err(|source| self.git("read the index", source))?;
        index
            .read(true)
            .map_err(|source| self.git("read the index", source))?;
        let changed = Self::index_mismatches(&index, tree.as_ref(), paths);
        if changed.is_empty() {
            return Ok(changed);
        }
        for git_path in &changed {
            remove_from_index(&mut index, git_path)
                .map_err(|source| self.git(format!("unstage `{git_path}`"), source))?;
            if let Some((id, mode)) = Self::head_entry(tree.as_ref(), git_path) {
                let entry = self.index_entry(git_path, id, mode)?;
                index
                    .add(&entry)
                    .map_err(|source| self.git(format!("stage `{git_path}`"), source))?;
            }
        }
        match index.write() {
            Ok(()) => Ok(changed),
            Err(error) if error.code() == ErrorCode::Locked => Err(Error::GitLocked {
                repo: self.work_tree.clone(),
                path: self.git_dir.join("index.lock"),
            }),
            Err(source) => Err(self.git("update the index", source)),
        }
    }

    /// An index entry for blob `id`, with the work tree file's stat data when the file holds
    /// exactly that blob (so `git status` needs not re-read it), else zeros (so it does).
    fn index_entry(&self, git_path: &str, id: Oid, mode: u32) -> Result<IndexEntry, Error> {
        let path = self.work_tree.join(git_path);
        let matching = match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_file() => {
                let content = fs::read(&path).map_err(|source| io_error("read", &path, source))?;
                let hashed = Oid::hash_object(ObjectType::Blob, &content)
                    .map_err(|source| self.git(format!("hash `{git_path}`"), source))?;
                (hashed == id).then_some((metadata, content.len()))
            }
            Ok(_) => None,
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(io_error("read", &path, source)),
        };
        let zero = IndexTime::new(0, 0);
        Ok(match matching {
            Some((metadata, size)) => IndexEntry {
                ctime: index_time(metadata.ctime(), metadata.ctime_nsec()),
                mtime: index_time(metadata.mtime(), metadata.mtime_nsec()),
                // The index keeps the low 32 bits of these, as git does.
                dev: metadata.dev() as u32,
                ino: metadata.ino() as u32,
                mode,
                uid: metadata.uid(),
                gid: metadata.gid(),
                file_size: size as u32,
                id,
                flags: 0,
                flags_extended: 0,
                path: git_path.as_bytes().to_vec(),
            },
            None => IndexEntry {
                ctime: zero,
                mtime: zero,
                dev: 0,
                ino: 0,
                mode,
                uid: 0,
                gid: 0,
                file_size: 0,
                id,
                flags: 0,
                flags_extended: 0,
                path: git_path.as_bytes().to_vec(),
            },
        })
    }

    fn resolve_remote<'r>(&self, repo: &'r Repository) -> Result<Remote<'r>, Error> {
        match repo.find_remote(&self.remote) {
            Ok(remote) => return Ok(remote),
            Err(error) if matches!(error.code(), ErrorCode::NotFound | ErrorCode::InvalidSpec) => {}
            Err(source) => {
                return Err(self.git(
                    format!("look up remote `{}`", redact_url(&self.remote)),
                    source,
                ))
            }
        }
        let url = match remote_location(&self.remote) {
            Some(RemoteLocation::Url) => self.remote.clone(),
            Some(RemoteLocation::Path(path)) if path.is_relative() => {
                self.work_tree.join(path).to_string_lossy().into_owned()
            }
            Some(RemoteLocation::Path(_)) => self.remote.clone(),
            None => {
                return Err(Error::RemoteNotFound {
                    repo: self.work_tree.clone(),
                    remote: self.remote.clone(),
                })
            }
        };
        repo.remote_anonymous(&url).map_err(|source| {
            self.git(
                format!("use remote `{}`", redact_url(&self.remote)),
                redact_git_error(source, &self.remote),
            )
        })
    }
}

impl StateStore for GitStore {
    fn load(&self) -> Result<State, Error> {
        let dir = self.certificates_dir();
        let listing = match fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => return Err(io_error("list", &dir, source)),
        };
        let mut files = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|source| io_error("list", &dir, source))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if file_name.starts_with('.') {
                continue;
            }
            let Some(name) = file_name.strip_suffix(".toml") else {
                continue;
            };
            let path = entry.path();
            let metadata = fs::metadata(&path).map_err(|source| io_error("read", &path, source))?;
            if metadata.is_file() {
                files.push((name.to_string(), path));
            }
        }
        files.sort();
        let mut state = State::default();
        for (name, path) in files {
            let bytes = fs::read(&path).map_err(|source| io_error("read", &path, source))?;
            let certificate = parse_certificate(&path, &name, &bytes)?;
            state.certificates.insert(name, certificate);
        }
        Ok(state)
    }

    fn save_certificate(&self, certificate: &CertificateState) -> Result<(), Error> {
        let path = self.certificate_file(&certificate.name, "toml")?;
        let text = render_certificate(certificate)?;
        refuse_private_key(&path, &text)?;
        self.record(&format!("{CERTIFICATES_DIR}/{}.toml", certificate.name))?;
        write_file(&path, &text)
    }

    fn save_chain(&self, name: &str, chain_pem: &str) -> Result<(), Error> {
        let path = self.certificate_file(name, "pem")?;
        refuse_private_key(&path, chain_pem)?;
        self.record(&format!("{CERTIFICATES_DIR}/{name}.pem"))?;
        write_file(&path, chain_pem)
    }

    fn read_chain(&self, name: &str) -> Result<Option<String>, Error> {
        let path = self.certificate_file(name, "pem")?;
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(io_error("read", &path, source)),
        }
    }

    fn remove_certificate(&self, name: &str) -> Result<(), Error> {
        let mut removed = false;
        for extension in ["toml", "pem"] {
            let path = self.certificate_file(name, extension)?;
            self.record(&format!("{CERTIFICATES_DIR}/{name}.{extension}"))?;
            match fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(io_error("remove", &path, source)),
            }
        }
        if removed {
            let dir = self.certificates_dir();
            atomic_file::sync_dir(&dir).map_err(|source| io_error("sync", &dir, source))?;
        }
        Ok(())
    }

    fn write_public_file(&self, relative: &str, content: &str) -> Result<(), Error> {
        let relative_path = managed_relative_path(relative)?;
        let path = self.root.join(&relative_path);
        refuse_private_key(&path, content)?;
        let parts: Vec<_> = relative_path
            .components()
            .filter_map(|part| part.as_os_str().to_str())
            .collect();
        self.record(&parts.join("/"))?;
        write_file(&path, content)
    }

    fn commit(&self, message: &str) -> Result<Option<String>, Error> {
        for note in self.recover()? {
            tracing::warn!("{note}");
        }
        let paths = self.pending()?;
        if paths.is_empty() {
            return Ok(None);
        }
        let repo = self.repository()?;
        let head = self.head_commit(&repo)?;
        let head_tree = head
            .as_ref()
            .map(Commit::tree)
            .transpose()
            .map_err(|source| self.git("read the HEAD tree", source))?;

        // Read and scan every file before anything is written to the repository: a private
        // key refuses the whole commit and leaves the files where they are.
        let mut files: Vec<(&str, Option<WorkTreeFile>)> = Vec::new();
        for git_path in &paths {
            let path = self.work_tree.join(git_path);
            match fs::symlink_metadata(&path) {
                Ok(metadata) if metadata.is_file() => {
                    let content =
                        fs::read(&path).map_err(|source| io_error("read", &path, source))?;
                    if let Some(material) = key_scan::find_private_key(&content) {
                        return Err(Error::PrivateKeyInCommit { path, material });
                    }
                    let executable = metadata.permissions().mode() & 0o111 != 0;
                    let mode = if executable { 0o100755 } else { 0o100644 };
                    files.push((git_path, Some(WorkTreeFile { content, mode })));
                }
                Ok(_) => return Err(Error::NotRegularFile { path }),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    files.push((git_path, None));
                }
                Err(source) => return Err(io_error("read", &path, source)),
            }
        }

        // HEAD's tree with exactly these paths replaced, built in an in-memory index so the
        // user's staged changes stay out of the commit.
        let mut index = Index::new().map_err(|source| self.git("create an index", source))?;
        if let Some(tree) = &head_tree {
            index
                .read_tree(tree)
                .map_err(|source| self.git("read the HEAD tree", source))?;
        }
        for (git_path, file) in &files {
            remove_from_index(&mut index, git_path)
                .map_err(|source| self.git(format!("unstage `{git_path}`"), source))?;
            if let Some(WorkTreeFile { content, mode }) = file {
                let id = repo
                    .blob(content)
                    .map_err(|source| self.git(format!("store `{git_path}`"), source))?;
                let entry = IndexEntry {
                    ctime: IndexTime::new(0, 0),
                    mtime: IndexTime::new(0, 0),
                    dev: 0,
                    ino: 0,
                    mode: *mode,
                    uid: 0,
                    gid: 0,
                    file_size: content.len() as u32,
                    id,
                    flags: 0,
                    flags_extended: 0,
                    path: git_path.as_bytes().to_vec(),
                };
                index
                    .add(&entry)
                    .map_err(|source| self.git(format!("stage `{git_path}`"), source))?;
            }
        }
        let tree_id = index
            .write_tree_to(&repo)
            .map_err(|source| self.git("write the tree", source))?;
        let unchanged = match &head_tree {
            Some(tree) => tree.id() == tree_id,
            None => files.iter().all(|(_, file)| file.is_none()),
        };

        // From here on the branch or the index may be written: a kill leaves the marker, and
        // the next run knows the git lock files it finds are ours to remove.
        let marker = CommitMarker::create(&self.git_dir)?;
        let mut committed = None;
        if !unchanged {
            self.failpoints.hit("commit-started");
            let tree = repo
                .find_tree(tree_id)
                .map_err(|source| self.git("read the new tree", source))?;
            let signature = match repo.signature() {
                Ok(signature) => signature,
                Err(_) => Signature::now(FALLBACK_NAME, FALLBACK_EMAIL)
                    .map_err(|source| self.git("create a signature", source))?,
            };
            let parents: Vec<&Commit<'_>> = head.iter().collect();
            let id = repo
                .commit(None, &signature, &signature, message, &tree, &parents)
                .map_err(|source| self.git("commit", source))?;
            self.failpoints.hit("commit-before-ref");
            self.update_head(&repo, id, head.as_ref().map(Commit::id), message)?;
            self.failpoints.hit("commit-before-index");
            committed = Some(id);
        }

        // Stage exactly these paths as HEAD now has them, then check that the index says so.
        self.sync_index(&repo, &paths)?;
        self.failpoints.hit("commit-after-index");
        let mut index = repo
            .index()
            .map_err(|source| self.git("read the index", source))?;
        index
            .read(true)
            .map_err(|source| self.git("read the index", source))?;
        let head_tree = self
            .head_commit(&repo)?
            .map(|commit| commit.tree())
            .transpose()
            .map_err(|source| self.git("read the HEAD tree", source))?;
        let mismatched = Self::index_mismatches(&index, head_tree.as_ref(), &paths);
        if !mismatched.is_empty() {
            return Err(Error::IndexMismatch {
                repo: self.work_tree.clone(),
                commit: committed.map_or_else(|| "HEAD".to_string(), |id| id.to_string()),
                paths: mismatched,
            });
        }
        marker.finish()?;
        self.clear_pending(&paths)?;
        Ok(committed.map(|id| id.to_string()))
    }

    fn push(&self) -> Result<(), Error> {
        let repo = self.repository()?;
        let head = repo
            .find_reference("HEAD")
            .map_err(|source| self.git("read HEAD", source))?;
        let Some(branch) = head.symbolic_target().map(str::to_string) else {
            return Err(Error::DetachedHead {
                repo: self.work_tree.clone(),
            });
        };
        match repo.find_reference(&branch) {
            Ok(_) => {}
            // No commit yet: nothing to push.
            Err(error) if error.code() == ErrorCode::NotFound => return Ok(()),
            Err(source) => return Err(self.git(format!("read `{branch}`"), source)),
        }
        let mut remote = self.resolve_remote(&repo)?;
        let shown = redact_url(&self.remote);
        let mut rejected: Vec<(String, String)> = Vec::new();
        let pushed = {
            let mut callbacks = RemoteCallbacks::new();
            callbacks.push_update_reference(|reference, status| {
                if let Some(status) = status {
                    rejected.push((reference.to_string(), status.to_string()));
                }
                Ok(())
            });
            let mut options = PushOptions::new();
            options.remote_callbacks(callbacks);
            remote.push(&[format!("{branch}:{branch}")], Some(&mut options))
        };
        let short = branch.strip_prefix("refs/heads/").unwrap_or(&branch);
        match pushed {
            Ok(()) => {}
            Err(error) if error.code() == ErrorCode::NotFastForward => {
                return Err(Error::PushRejected {
                    remote: shown,
                    reference: short.to_string(),
                    reason: "the remote has commits this repository does not have \
                             (not a fast-forward)"
                        .to_string(),
                });
            }
            Err(source) => {
                return Err(Error::Push {
                    remote: shown,
                    branch: short.to_string(),
                    source: redact_git_error(source, &self.remote),
                })
            }
        }
        if let Some((reference, reason)) = rejected.into_iter().next() {
            return Err(Error::PushRejected {
                remote: shown,
                reference,
                reason,
            });
        }
        Ok(())
    }
}

/// Fail when `keys_dir` (or, if it does not exist yet, its nearest existing ancestor) is inside
/// a git work tree that does not ignore it: private keys must never be committed.
pub fn check_keys_dir_outside_git(keys_dir: &Path) -> Result<(), Error> {
    match enclosing_work_tree(keys_dir)? {
        Some(enclosing) if !enclosing.ignored => Err(Error::KeysDirInRepository {
            keys_dir: keys_dir.to_path_buf(),
            work_tree: enclosing.work_tree,
            relative: enclosing.relative,
        }),
        _ => Ok(()),
    }
}

/// The serialized state file: header comment, then the fields in declaration order.
pub fn render_certificate(certificate: &CertificateState) -> Result<String, Error> {
    let body = toml::to_string_pretty(certificate).map_err(|source| Error::Serialize {
        name: certificate.name.clone(),
        source,
    })?;
    Ok(format!("{HEADER}{body}"))
}

/// Parse a state file's bytes; `path` and `name` (its file stem) are for checks and errors.
pub fn parse_certificate(path: &Path, name: &str, bytes: &[u8]) -> Result<CertificateState, Error> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        let (line, column) = line_column(bytes, error.valid_up_to());
        Error::Corrupt {
            path: path.to_path_buf(),
            line,
            column,
            message: "not valid UTF-8".to_string(),
        }
    })?;

    // Check the format before the fields, so a newer file is reported as such.
    #[derive(Deserialize)]
    struct FormatProbe {
        format: Option<u32>,
    }
    let probe: FormatProbe = toml::from_str(text).map_err(|error| corrupt(path, text, &error))?;
    if let Some(found) = probe.format.filter(|found| *found > FORMAT) {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            found,
            supported: FORMAT,
        });
    }

    let mut certificate: CertificateState =
        toml::from_str(text).map_err(|error| corrupt(path, text, &error))?;
    certificate.upgrade_legacy_key_file();
    if certificate.name != name {
        return Err(Error::NameMismatch {
            path: path.to_path_buf(),
            expected: name.to_string(),
            found: certificate.name,
        });
    }
    Ok(certificate)
}

fn corrupt(path: &Path, text: &str, error: &toml::de::Error) -> Error {
    let (line, column) = error
        .span()
        .map_or((1, 1), |span| line_column(text.as_bytes(), span.start));
    Error::Corrupt {
        path: path.to_path_buf(),
        line,
        column,
        message: error.message().trim_end().to_string(),
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&byte| byte == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

fn write_file(path: &Path, content: &str) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        atomic_file::create_dir_all(parent, DIR_MODE)
            .map_err(|source| io_error("create directory", parent, source))?;
    }
    atomic_file::write(path, content.as_bytes(), FILE_MODE)
        .map_err(|source| io_error("write", path, source))
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn refuse_private_key(path: &Path, content: &str) -> Result<(), Error> {
    if key_scan::find_private_key(content.as_bytes()).is_some() {
        return Err(Error::PrivateKeyMaterial {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// A file of the work tree about to be committed: its bytes and git mode.
struct WorkTreeFile {
    content: Vec<u8>,
    mode: u32,
}

/// Remove `path` and sync its directory; a missing file is fine.
fn remove_durably(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io_error("remove", path, source)),
    }
    match path.parent() {
        Some(parent) => {
            atomic_file::sync_dir(parent).map_err(|source| io_error("sync", parent, source))
        }
        None => Ok(()),
    }
}

/// Remove every stage of `git_path` from `index`; a missing entry is fine.
fn remove_from_index(index: &mut Index, git_path: &str) -> Result<(), git2::Error> {
    for stage in 0..=3 {
        match index.remove(Path::new(git_path), stage) {
            Ok(()) => {}
            Err(error) if error.code() == ErrorCode::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Who is committing: written to `COMMIT_MARKER` before a commit touches the repository and
/// removed after the index is updated.
#[derive(Debug, Serialize, Deserialize)]
struct CommitMarker {
    pid: u32,
    host: String,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat`), so a reused
    /// pid is not mistaken for the committer.
    #[serde(default)]
    start: Option<u64>,
}

/// A written commit marker; dropping it without `finish` removes it too (an error return),
/// only a killed process leaves it behind.
struct MarkerGuard {
    path: PathBuf,
    finished: bool,
}

impl CommitMarker {
    fn create(git_dir: &Path) -> Result<MarkerGuard, Error> {
        let pid = std::process::id();
        let marker = CommitMarker {
            pid,
            host: host_name(),
            start: process_start(pid),
        };
        let path = git_dir.join(COMMIT_MARKER);
        let text = toml::to_string(&marker).map_err(|error| Error::Io {
            action: "prepare",
            path: path.clone(),
            source: io::Error::other(error),
        })?;
        atomic_file::write(&path, text.as_bytes(), FILE_MODE)
            .map_err(|source| io_error("write", &path, source))?;
        Ok(MarkerGuard {
            path,
            finished: false,
        })
    }

    /// The marker at `path`; `None` when there is none. An unreadable marker (a kill while
    /// writing it) is a dead committer's.
    fn read(path: &Path) -> Result<Option<CommitMarker>, Error> {
        match fs::read_to_string(path) {
            Ok(text) => Ok(Some(toml::from_str(&text).unwrap_or(CommitMarker {
                pid: 0,
                host: String::new(),
                start: None,
            }))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(io_error("read", path, source)),
        }
    }

    /// Whether the committer is a process other than this one, alive on this host.
    fn is_another_live_process(&self) -> bool {
        if self.pid == 0 || self.pid == std::process::id() || self.host != host_name() {
            return false;
        }
        match (self.start, process_start(self.pid)) {
            (Some(recorded), Some(current)) => recorded == current,
            (None, current) => current.is_some(),
            (Some(_), None) => false,
        }
    }
}

impl MarkerGuard {
    fn finish(mut self) -> Result<(), Error> {
        self.finished = true;
        remove_durably(&self.path)
    }
}

impl Drop for MarkerGuard {
    fn drop(&mut self) {
        if !self.finished {
            if let Err(error) = remove_durably(&self.path) {
                tracing::warn!(%error, "failed to remove the commit marker");
            }
        }
    }
}

/// A certificate name usable as a file stem: nothing that could leave `certificates/`.
fn validate_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.starts_with('.') {
        "it starts with `.`"
    } else if name.contains(['/', '\\']) {
        "it contains a path separator"
    } else if name.chars().any(char::is_control) {
        "it contains a control character"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// `relative` as a path under one of certform's directories.
fn managed_relative_path(relative: &str) -> Result<PathBuf, Error> {
    let invalid = |reason| Error::InvalidPath {
        path: relative.to_string(),
        reason,
    };
    if relative.contains('\\') || relative.chars().any(char::is_control) {
        return Err(invalid("it contains `\\` or a control character"));
    }
    let path = Path::new(relative);
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) if !part.as_bytes().starts_with(b".") => parts.push(part),
            Component::Normal(_) => return Err(invalid("a path component starts with `.`")),
            Component::CurDir | Component::ParentDir => {
                return Err(invalid("it contains `.` or `..`"))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid("it must be relative"))
            }
        }
    }
    match parts.first() {
        Some(first)
            if parts.len() >= 2 && MANAGED_DIRS.iter().any(|dir| first.to_str() == Some(*dir)) =>
        {
            Ok(parts.iter().collect())
        }
        _ => Err(invalid(
            "it must name a file under `ca/` or `certificates/`",
        )),
    }
}

/// `settings.dir` as a git path prefix: `""` for the top of the work tree.
fn git_prefix(dir: &Path) -> Result<String, Error> {
    let invalid = |reason| Error::InvalidPath {
        path: dir.display().to_string(),
        reason,
    };
    let mut parts = Vec::new();
    for component in dir.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(part) => {
                let part = part
                    .to_str()
                    .ok_or_else(|| invalid("the state directory must be UTF-8"))?;
                if part == ".git" {
                    return Err(invalid("the state directory cannot be inside `.git`"));
                }
                parts.push(part);
            }
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(
                    "the state directory must be relative to the repository, without `..`",
                ))
            }
        }
    }
    Ok(parts.join("/"))
}

fn open_or_init(path: &Path) -> Result<Repository, Error> {
    let git = |action: &str, source| Error::Git {
        action: action.to_string(),
        repo: path.to_path_buf(),
        source,
    };
    let not_work_tree = |reason: String| Error::NotWorkTree {
        repo: path.to_path_buf(),
        reason,
    };
    match fs::metadata(path) {
        Ok(metadata) if !metadata.is_dir() => {
            return Err(not_work_tree("it is not a directory".to_string()))
        }
        Ok(_) => match Repository::open(path) {
            Ok(repo) => {
                let Some(workdir) = repo.workdir() else {
                    return Err(not_work_tree(
                        "it is a bare repository; certform needs a work tree".to_string(),
                    ));
                };
                let same = match (fs::canonicalize(workdir), fs::canonicalize(path)) {
                    (Ok(workdir), Ok(path)) => workdir == path,
                    _ => false,
                };
                if !same {
                    return Err(not_work_tree(format!(
                        "it is not the top of a work tree (that is `{}`)",
                        workdir.display()
                    )));
                }
                // A run killed while creating the repository may have left the init lock.
                remove_durably(&path.join(INIT_LOCK))?;
                return Ok(repo);
            }
            Err(error) if error.code() == ErrorCode::NotFound => {}
            // Another certform is creating it right now: wait for it under the init lock.
            Err(_) if path.join(INIT_LOCK).exists() => return init_serialised(path),
            Err(source) => return Err(git("open the repository", source)),
        },
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(io_error("read", path, source)),
    }

    if let Some(enclosing) = enclosing_work_tree(path)? {
        // The work tree found may be this very repository, created by a concurrent run since
        // it was looked for above: then it is opened under the init lock, not refused.
        let itself = matches!(
            (fs::canonicalize(&enclosing.work_tree), fs::canonicalize(path)),
            (Ok(work_tree), Ok(path)) if work_tree == path
        );
        if itself {
            return init_serialised(path);
        }
        if !enclosing.ignored {
            return Err(Error::NestedRepository {
                repo: path.to_path_buf(),
                work_tree: enclosing.work_tree,
                relative: enclosing.relative,
            });
        }
    }
    atomic_file::create_dir_all(path, DIR_MODE)
        .map_err(|source| io_error("create directory", path, source))?;
    init_serialised(path)
}

/// `git init` in `path`, one process at a time (under an `flock` on `INIT_LOCK` in `path`):
/// two certforms starting on a new state repository at once would otherwise both write
/// `.git/config`, and one would fail on `config.lock`. The one that waited opens the
/// repository the other created.
fn init_serialised(path: &Path) -> Result<Repository, Error> {
    let git = |action: &str, source| Error::Git {
        action: action.to_string(),
        repo: path.to_path_buf(),
        source,
    };
    let lock_path = path.join(INIT_LOCK);
    loop {
        let lock = atomic_file::FileLock::acquire(&lock_path)
            .map_err(|source| io_error("lock", &lock_path, source))?;
        // The previous holder removes the file when done: a lock on a removed file would
        // exclude nobody, so take the lock again on the file now at that path.
        if !lock
            .is_at(&lock_path)
            .map_err(|source| io_error("read", &lock_path, source))?
        {
            continue;
        }
        let repository = match Repository::open(path) {
            Ok(repository) => Ok(repository),
            Err(error) if error.code() == ErrorCode::NotFound => {
                // Holding the lock, nobody else initialises this repository: lock files in a
                // half-made `.git` are a killed init's.
                for leftover in ["config.lock", "HEAD.lock"] {
                    let leftover = path.join(".git").join(leftover);
                    if let Err(error) = fs::remove_file(&leftover) {
                        if error.kind() != io::ErrorKind::NotFound {
                            return Err(io_error("remove", &leftover, error));
                        }
                    }
                }
                let mut options = RepositoryInitOptions::new();
                options.initial_head("main").no_reinit(true);
                Repository::init_opts(path, &options)
                    .map_err(|source| git("initialise a repository", source))
            }
            Err(source) => Err(git("open the repository", source)),
        };
        remove_durably(&lock_path)?;
        drop(lock);
        return repository;
    }
}

/// `path` made absolute with symbolic links resolved as far as it exists.
fn resolve_path(path: &Path) -> Result<PathBuf, Error> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let current =
            std::env::current_dir().map_err(|source| io_error("read", Path::new("."), source))?;
        current.join(path)
    };
    let absolute = lexical_normalise(&absolute);
    let mut existing = absolute.as_path();
    let mut missing = Vec::new();
    loop {
        match fs::canonicalize(existing) {
            Ok(mut resolved) => {
                resolved.extend(missing.iter().rev());
                return Ok(resolved);
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_error("read", existing, source)),
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent;
            }
            _ => return Ok(absolute),
        }
    }
}

/// The git work tree a path is (or would be) in.
struct Enclosing {
    work_tree: PathBuf,
    /// The path relative to `work_tree`.
    relative: PathBuf,
    /// Whether that repository ignores the path (or files directly in it).
    ignored: bool,
}

fn enclosing_work_tree(path: &Path) -> Result<Option<Enclosing>, Error> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let current =
            std::env::current_dir().map_err(|source| io_error("read", Path::new("."), source))?;
        current.join(path)
    };
    let absolute = lexical_normalise(&absolute);

    // The nearest existing ancestor, and the missing components below it.
    let mut existing = absolute.as_path();
    let mut missing = Vec::new();
    loop {
        match fs::metadata(existing) {
            Ok(_) => break,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_error("read", existing, source)),
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent;
            }
            _ => return Ok(None),
        }
    }
    let existing =
        fs::canonicalize(existing).map_err(|source| io_error("read", existing, source))?;

    let repo = match Repository::discover(&existing) {
        Ok(repo) => repo,
        Err(error) if error.code() == ErrorCode::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Git {
                action: "look for a repository".to_string(),
                repo: existing,
                source,
            })
        }
    };
    let Some(workdir) = repo.workdir() else {
        return Ok(None);
    };
    let work_tree =
        fs::canonicalize(workdir).map_err(|source| io_error("read", workdir, source))?;
    let Ok(inside) = existing.strip_prefix(&work_tree) else {
        return Ok(None);
    };
    let mut relative = inside.to_path_buf();
    relative.extend(missing.iter().rev());

    let ignored = if relative.as_os_str().is_empty() {
        false
    } else if relative.starts_with(".git") {
        // Inside the git directory: never tracked.
        true
    } else {
        let is_ignored = |candidate: &Path| {
            repo.is_path_ignored(candidate)
                .map_err(|source| Error::Git {
                    action: format!("check whether `{}` is ignored", candidate.display()),
                    repo: work_tree.clone(),
                    source,
                })
        };
        let mut as_directory = relative.as_os_str().to_os_string();
        as_directory.push("/");
        is_ignored(Path::new(&as_directory))?
            || is_ignored(&relative)?
            || is_ignored(&relative.join("certform-key.pem"))?
    };
    Ok(Some(Enclosing {
        work_tree,
        relative,
        ignored,
    }))
}

/// Resolve `.` and `..` without touching the file system.
fn lexical_normalise(path: &Path) -> PathBuf {
    let mut normalised = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normalised.pop();
            }
            other => normalised.push(other),
        }
    }
    normalised
}

enum RemoteLocation<'a> {
    Url,
    Path(&'a Path),
}

/// How `remote` reads when it is not a configured remote name: a URL (`scheme://`, or
/// scp-like `host:path`), a path, or neither (a plain name).
fn remote_location(remote: &str) -> Option<RemoteLocation<'_>> {
    if remote.contains("://") {
        return Some(RemoteLocation::Url);
    }
    let first_slash = remote.find('/');
    if let Some(colon) = remote.find(':') {
        if first_slash.is_none_or(|slash| colon < slash) {
            return Some(RemoteLocation::Url);
        }
    }
    if first_slash.is_some() || remote.starts_with('.') || remote.starts_with('~') {
        return Some(RemoteLocation::Path(Path::new(remote)));
    }
    None
}

/// `remote` with the credentials of a URL (`scheme://user:secret@host/…`) replaced by `***`.
pub fn redact_url(remote: &str) -> String {
    match userinfo(remote) {
        Some(userinfo) => remote.replacen(userinfo, "***", 1),
        None => remote.to_string(),
    }
}

/// The `user[:password]` part of a URL, if any.
fn userinfo(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")?;
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    Some(&rest[..at]).filter(|userinfo| !userinfo.is_empty())
}

/// `error` with `remote`'s credentials removed from its message.
fn redact_git_error(error: git2::Error, remote: &str) -> git2::Error {
    match userinfo(remote) {
        Some(userinfo) if error.message().contains(userinfo) => git2::Error::new(
            error.code(),
            error.class(),
            error.message().replace(userinfo, "***"),
        ),
        _ => error,
    }
}

fn index_time(seconds: i64, nanoseconds: i64) -> IndexTime {
    // The index stores 32-bit times, as git does.
    IndexTime::new(seconds as i32, nanoseconds as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_in_urls_only() {
        assert_eq!(
            redact_url("https://user:hunter2@git.example.com/state.git"),
            "https://***@git.example.com/state.git"
        );
        assert_eq!(
            redact_url("https://ghp_token@github.com/o/r"),
            "https://***@github.com/o/r"
        );
        assert_eq!(
            redact_url("https://github.com/o/r@v1"),
            "https://github.com/o/r@v1"
        );
        assert_eq!(redact_url("git@github.com:o/r"), "git@github.com:o/r");
        assert_eq!(redact_url("/srv/state.git"), "/srv/state.git");
    }

    #[test]
    fn redacts_credentials_in_git_messages() {
        let error = git2::Error::from_str("cannot reach https://u:hunter2@host/x");
        let redacted = redact_git_error(error, "https://u:hunter2@host/x");
        assert!(!redacted.message().contains("hunter2"), "{redacted}");
    }

    #[test]
    fn classifies_remotes() {
        assert!(remote_location("origin").is_none());
        assert!(matches!(
            remote_location("https://h/x"),
            Some(RemoteLocation::Url)
        ));
        assert!(matches!(
            remote_location("git@h:x"),
            Some(RemoteLocation::Url)
        ));
        assert!(matches!(
            remote_location("../bare"),
            Some(RemoteLocation::Path(_))
        ));
        assert!(matches!(
            remote_location("/srv/a:b"),
            Some(RemoteLocation::Path(_))
        ));
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("a = 1\nbé = x\n".as_bytes(), 10), (2, 4));
        assert_eq!(line_column(b"", 5), (1, 1));
    }

    #[test]
    fn names_and_paths_cannot_escape() {
        for name in ["", ".hidden", "a/b", "..", "a\\b", "a\nb"] {
            assert!(validate_name(name).is_err(), "{name:?}");
        }
        assert!(validate_name("www-example.com_1").is_ok());
        for path in [
            "/etc/passwd",
            "ca/../../x",
            "../x",
            "ca",
            "keys/x.pem",
            "ca/.x",
            "./ca/x",
            "",
        ] {
            assert!(managed_relative_path(path).is_err(), "{path:?}");
        }
        assert_eq!(
            managed_relative_path("ca/local.pem").unwrap(),
            Path::new("ca/local.pem")
        );
    }

    #[test]
    fn commit_marker_is_live_only_for_the_same_running_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let marker = CommitMarker {
            pid: child.id(),
            host: host_name(),
            start: process_start(child.id()),
        };
        assert!(marker.start.is_some());
        assert!(marker.is_another_live_process());
        // The same pid reused by a later process, another host, this very process.
        let reused = CommitMarker {
            pid: marker.pid,
            host: host_name(),
            start: marker.start.map(|start| start + 1),
        };
        assert!(!reused.is_another_live_process());
        let elsewhere = CommitMarker {
            pid: marker.pid,
            host: "elsewhere".to_string(),
            start: marker.start,
        };
        assert!(!elsewhere.is_another_live_process());
        let this = CommitMarker {
            pid: std::process::id(),
            host: host_name(),
            start: process_start(std::process::id()),
        };
        assert!(!this.is_another_live_process());
        child.kill().unwrap();
        child.wait().unwrap();
        let dead = CommitMarker {
            pid: child.id(),
            host: host_name(),
            start: process_start(child.id()),
        };
        assert_eq!(dead.start, None);
        assert!(!dead.is_another_live_process());
    }

    #[test]
    fn state_dir_becomes_a_git_prefix() {
        assert_eq!(git_prefix(Path::new(".")).unwrap(), "");
        assert_eq!(git_prefix(Path::new("")).unwrap(), "");
        assert_eq!(
            git_prefix(Path::new("infra/certs/")).unwrap(),
            "infra/certs"
        );
        assert!(git_prefix(Path::new("../x")).is_err());
        assert!(git_prefix(Path::new("/x")).is_err());
        assert!(git_prefix(Path::new(".git/x")).is_err());
    }
}
