//! The git-backed state store: reads and writes certform's files in the state repository's work
//! tree, commits exactly those files, and pushes.
//!
//! Layout under `<repo>/<dir>`: `certificates/<name>.toml` (one `CertificateState` each),
//! `certificates/<name>.pem` (the public chain) and `ca/` (public CA material). Those two
//! directories are certform's; nothing else in the repository is read, written, staged or
//! committed, because the state repository may be the user's own config repository with their
//! own staged and unstaged edits. Private keys never come here.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use git2::{
    Commit, ErrorCode, Index, IndexEntry, IndexTime, PushOptions, Remote, RemoteCallbacks,
    Repository, RepositoryInitOptions, Signature,
};
use serde::Deserialize;

use super::lock::{self, BrokenLock, Liveness, LockGuard, LockHolder};
use super::model::{CertificateState, State, FORMAT};
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
        "keys directory `{}` is inside the git work tree `{}` and not ignored there; add \
         `{}/` to `{}` or move the keys directory out of the repository",
        keys_dir.display(),
        work_tree.display(),
        relative.display(),
        work_tree.join(".gitignore").display()
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

    /// Commit certform's files (and only those) as they are in the work tree; `Some(commit id)`,
    /// or `None` when none of them changed.
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
        })
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

    /// Every file of certform's directories in the work tree, its blob written to the repository.
    fn work_tree_entries(&self, repo: &Repository) -> Result<Vec<IndexEntry>, Error> {
        let mut entries = Vec::new();
        for managed in MANAGED_DIRS {
            self.collect(
                repo,
                &self.root.join(managed),
                &self.git_path(managed),
                &mut entries,
            )?;
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    fn collect(
        &self,
        repo: &Repository,
        path: &Path,
        git_path: &str,
        entries: &mut Vec<IndexEntry>,
    ) -> Result<(), Error> {
        let metadata = match fs::symlink_metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(io_error("read", path, source)),
        };
        let file_type = metadata.file_type();
        let (mode, content) = if file_type.is_dir() {
            let listing = fs::read_dir(path).map_err(|source| io_error("list", path, source))?;
            for entry in listing {
                let entry = entry.map_err(|source| io_error("list", path, source))?;
                let name = entry.file_name();
                // Dot files are temp files of atomic writes (or not certform's).
                if name.as_bytes().starts_with(b".") {
                    continue;
                }
                let Some(name) = name.to_str() else {
                    return Err(Error::InvalidPath {
                        path: entry.path().display().to_string(),
                        reason: "file names in the state directory must be UTF-8",
                    });
                };
                self.collect(repo, &entry.path(), &format!("{git_path}/{name}"), entries)?;
            }
            return Ok(());
        } else if file_type.is_symlink() {
            let target = fs::read_link(path).map_err(|source| io_error("read", path, source))?;
            (0o120000, target.as_os_str().as_bytes().to_vec())
        } else if file_type.is_file() {
            let content = fs::read(path).map_err(|source| io_error("read", path, source))?;
            let executable = metadata.permissions().mode() & 0o111 != 0;
            (if executable { 0o100755 } else { 0o100644 }, content)
        } else {
            return Ok(());
        };
        let id = repo
            .blob(&content)
            .map_err(|source| self.git(format!("store `{git_path}`"), source))?;
        entries.push(IndexEntry {
            ctime: index_time(metadata.ctime(), metadata.ctime_nsec()),
            mtime: index_time(metadata.mtime(), metadata.mtime_nsec()),
            // The index keeps the low 32 bits of these, as git does.
            dev: metadata.dev() as u32,
            ino: metadata.ino() as u32,
            mode,
            uid: metadata.uid(),
            gid: metadata.gid(),
            file_size: content.len() as u32,
            id,
            flags: 0,
            flags_extended: 0,
            path: git_path.as_bytes().to_vec(),
        });
        Ok(())
    }

    /// Replace every entry under certform's directories in `index` by `entries`.
    fn replace_managed(&self, index: &mut Index, entries: &[IndexEntry]) -> Result<(), Error> {
        for managed in MANAGED_DIRS {
            let path = self.git_path(managed);
            for stage in 0..=3 {
                index
                    .remove_dir(Path::new(&path), stage)
                    .and_then(|()| match index.remove(Path::new(&path), stage) {
                        Err(error) if error.code() == ErrorCode::NotFound => Ok(()),
                        other => other,
                    })
                    .map_err(|source| self.git(format!("unstage `{path}`"), source))?;
            }
        }
        for entry in entries {
            index.add(entry).map_err(|source| {
                self.git(
                    format!("stage `{}`", String::from_utf8_lossy(&entry.path)),
                    source,
                )
            })?;
        }
        Ok(())
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
        write_file(&path, &text)
    }

    fn save_chain(&self, name: &str, chain_pem: &str) -> Result<(), Error> {
        let path = self.certificate_file(name, "pem")?;
        refuse_private_key(&path, chain_pem)?;
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
        let path = self.root.join(relative_path);
        refuse_private_key(&path, content)?;
        write_file(&path, content)
    }

    fn commit(&self, message: &str) -> Result<Option<String>, Error> {
        let repo = self.repository()?;
        let head = match repo.head() {
            Ok(head) => Some(
                head.peel_to_commit()
                    .map_err(|source| self.git("read the HEAD commit", source))?,
            ),
            Err(error) if matches!(error.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => {
                None
            }
            Err(source) => return Err(self.git("read HEAD", source)),
        };
        let head_tree = head
            .as_ref()
            .map(Commit::tree)
            .transpose()
            .map_err(|source| self.git("read the HEAD tree", source))?;

        let entries = self.work_tree_entries(&repo)?;

        // HEAD's tree with only certform's directories replaced, built in an in-memory index so
        // the user's staged changes stay out of the commit.
        let mut index = Index::new().map_err(|source| self.git("create an index", source))?;
        if let Some(tree) = &head_tree {
            index
                .read_tree(tree)
                .map_err(|source| self.git("read the HEAD tree", source))?;
        }
        self.replace_managed(&mut index, &entries)?;
        let tree_id = index
            .write_tree_to(&repo)
            .map_err(|source| self.git("write the tree", source))?;
        let unchanged = match &head_tree {
            Some(tree) => tree.id() == tree_id,
            None => entries.is_empty(),
        };
        if unchanged {
            return Ok(None);
        }
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
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                message,
                &tree,
                &parents,
            )
            .map_err(|source| self.git("commit", source))?;

        // Stage certform's paths as committed, and nothing else: the user's other staged and
        // unstaged changes stay exactly as they were.
        let mut real_index = repo
            .index()
            .map_err(|source| self.git("read the index", source))?;
        self.replace_managed(&mut real_index, &entries)?;
        real_index
            .write()
            .map_err(|source| self.git(format!("update the index after commit {id}"), source))?;
        Ok(Some(id.to_string()))
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
    if content.contains("PRIVATE KEY-----") {
        return Err(Error::PrivateKeyMaterial {
            path: path.to_path_buf(),
        });
    }
    Ok(())
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
                return Ok(repo);
            }
            Err(error) if error.code() == ErrorCode::NotFound => {}
            Err(source) => return Err(git("open the repository", source)),
        },
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(io_error("read", path, source)),
    }

    if let Some(enclosing) = enclosing_work_tree(path)? {
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
    let mut options = RepositoryInitOptions::new();
    options.initial_head("main").no_reinit(true);
    Repository::init_opts(path, &options).map_err(|source| git("initialise a repository", source))
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
