//! The git-backed state store: reads and writes certform's files in the state repository's work
//! tree, commits exactly those files, and pushes.
//!
//! Layout under `<repo>/<dir>`: `certificates/<name>.toml` (one `CertificateState` each),
//! `certificates/<name>.pem` (the public chain) and `ca/` (public CA material, and each CA
//! account's inventory record `ca/<account>.inventory.toml`). Those two
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

mod error;
mod file;
mod git_index;
mod location;
mod marker;
mod pack;
mod parsed_cache;
mod push;
mod remote;

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use git2::{Commit, ErrorCode, Index, IndexEntry, IndexTime, Remote, Repository, Signature};

pub use self::error::{Divergence, Error, TransportFailure};
pub use self::file::{parse_certificate, parse_inventory, render_certificate, render_inventory};
use self::git_index::remove_from_index;
pub use self::location::check_keys_dir_outside_git;
use self::location::{
    git_prefix, managed_relative_path, open_or_init, resolve_path, validate_name,
};
use self::marker::CommitMarker;
use self::pack::{PackError, PendingObjects};
use self::remote::{redact_git_error, remote_location, RemoteLocation};
use super::key_scan;
use super::lock::{self, BrokenLock, LockGuard};
use super::model::{CertificateState, State};
use crate::apply::FailPoints;
use crate::atomic_file;
use crate::config::{PushAuth, StateSettings};
use crate::http::redact_url;

/// First line of every state file certform writes.
pub const HEADER: &str = "# managed by certform; edit with care\n";

/// Directory (under `<dir>`) of the per-certificate state files and chains.
pub const CERTIFICATES_DIR: &str = "certificates";

/// Directory (under `<dir>`) of public CA material, e.g. `ca/local.pem`.
pub const CA_DIR: &str = "ca";

/// Suffix of a CA account's inventory record in `ca/`: `ca/<account>.inventory.toml`.
pub const INVENTORY_SUFFIX: &str = ".inventory.toml";

/// The path (under `<dir>`) of CA account `ca`'s inventory record.
pub fn inventory_file(ca: &str) -> String {
    format!("{CA_DIR}/{ca}{INVENTORY_SUFFIX}")
}

/// File in the git directory with the time of each CA account's last inventory listing
/// (JSON, by account): never committed.
const INVENTORY_NOTES: &str = "certform-inventory.json";

/// Record the inventory listing of one CA account: `ca/<account>.inventory.toml` (committed
/// with the run) only when it reports something other than `last` does; the listing time
/// always, beside the repository.
pub fn save_inventory(
    store: &dyn StateStore,
    inventory: &crate::ca_inventory::CaInventory,
    last: Option<&crate::ca_inventory::CaInventory>,
) -> Result<(), Error> {
    validate_name(&inventory.ca)?;
    if inventory.changes(last) {
        store.write_public_file(
            &inventory_file(&inventory.ca),
            &render_inventory(inventory)?,
        )?;
    }
    store.note_inventory_listing(
        &inventory.ca,
        crate::ca_inventory::ListingNote {
            listed_at: inventory.listed_at,
            orders: inventory.orders,
        },
    )
}
/// Directory (under `<dir>`) of age-encrypted private keys (`[state] keys = "age"`).
pub const KEYS_DIR: &str = "keys";

/// The directories (under `<dir>`) certform owns: the only ones it writes and commits.
const MANAGED_DIRS: [&str; 3] = [CERTIFICATES_DIR, CA_DIR, KEYS_DIR];

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

/// Prefix of the temp files libgit2's indexer writes in `objects/pack` (the pack, and its
/// index through a `.lock`) before it names them `pack-<sum>.*`.
const PACK_TEMP_PREFIX: &str = "pack_git2_";

/// Remove each of `paths` (one already gone is skipped), noting each removal as `note` says.
fn remove_noting(
    paths: &[PathBuf],
    notes: &mut Vec<String>,
    note: impl Fn(&Path) -> String,
) -> Result<(), Error> {
    for path in paths {
        match fs::remove_file(path) {
            Ok(()) => notes.push(note(path)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_error("remove", path, source)),
        }
    }
    Ok(())
}

/// The pack writer's temp files in the pack directory `directory`, sorted.
fn pack_leftovers(directory: &Path) -> Result<Vec<PathBuf>, Error> {
    pack_files(directory, |name| name.starts_with(PACK_TEMP_PREFIX))
}

/// `git repack`'s temp files in the pack directory `directory` (`.tmp-<pid>-pack-*`) whose
/// process is gone, sorted: a repack still running (certform's, orphaned by a kill, or the
/// user's) keeps its files.
fn repack_leftovers(directory: &Path) -> Result<Vec<PathBuf>, Error> {
    pack_files(directory, |name| {
        name.strip_prefix(".tmp-")
            .and_then(|rest| rest.split_once("-pack-"))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
            .is_some_and(|pid| pid > 0 && !atomic_file::process_alive(pid))
    })
}

/// The files of the pack directory `directory` whose (UTF-8) names `matches`, sorted; none
/// when the directory does not exist.
fn pack_files(directory: &Path, matches: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, Error> {
    let listing = match fs::read_dir(directory) {
        Ok(listing) => listing,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io_error("list", directory, source)),
    };
    let mut found = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|source| io_error("list", directory, source))?;
        if entry.file_name().to_str().is_some_and(&matches) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Git's own lock files, relative to the git directory (plus any `refs/**/*.lock`).
const GIT_LOCK_FILES: [&str; 4] = ["index.lock", "HEAD.lock", "config.lock", "packed-refs.lock"];

/// The fail points of a commit, in the order a commit passes them (`CERTFORM_FAILPOINT`).
pub const COMMIT_FAIL_POINTS: [&str; 4] = [
    "commit-started",
    "commit-before-ref",
    "commit-before-index",
    "commit-after-index",
];

/// The fail points of a push (`CERTFORM_FAILPOINT`): before git is run, and, catching up with
/// a moved remote, once the remote's files are checked out and before the branch moves.
pub const PUSH_FAIL_POINTS: [&str; 2] = ["push-started", "push-before-ref"];

const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;
const FALLBACK_NAME: &str = "certform";
const FALLBACK_EMAIL: &str = "certform@localhost";

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

    /// Atomically write a public file such as `ca/local.pem`; `relative` must lie under `ca/`,
    /// `certificates/` or `keys/` (the directories that are committed), with no `..`.
    fn write_public_file(&self, relative: &str, content: &str) -> Result<(), Error>;

    /// Remove a file `write_public_file` could write (a missing file is fine); the next commit
    /// records the removal.
    fn remove_public_file(&self, relative: &str) -> Result<(), Error>;

    /// Commit the files this store wrote or removed (and those a killed run wrote before its
    /// commit), exactly those paths, as they are in the work tree; `Some(commit id)`, or `None`
    /// when none of them changed. Refuses, committing nothing, when one holds a private key.
    fn commit(&self, message: &str) -> Result<Option<String>, Error>;

    /// Push the current branch to the configured remote; when the remote moved on, catch up
    /// with it first (replay this repository's commits when they touch other files, else keep
    /// them on a branch and fail). `Some(new HEAD)` when this repository's commits were
    /// replayed (their ids changed).
    fn push(&self) -> Result<Option<String>, Error>;

    /// Whether an earlier push did not finish (killed, or failed): the next run pushes even
    /// when it commits nothing.
    fn push_pending(&self) -> bool {
        false
    }

    /// Note that CA account `ca` was listed for the inventory, beside the repository and
    /// never committed (`load` folds it into the account's record): a listing that found
    /// what the record says changes no committed file.
    fn note_inventory_listing(
        &self,
        ca: &str,
        note: crate::ca_inventory::ListingNote,
    ) -> Result<(), Error> {
        let _ = (ca, note);
        Ok(())
    }
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
    /// `settings.push_auth`: credentials for the push.
    push_auth: PushAuth,
    /// Git paths this store wrote or removed and has not committed yet.
    touched: Arc<Mutex<BTreeSet<String>>>,
    /// Whether this run made the journal's directory entry durable (fsynced the git
    /// directory since the journal was last removed); held while doing so.
    journal_entry_synced: Arc<Mutex<bool>>,
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
            push_auth: settings.push_auth.clone(),
            touched: Arc::default(),
            journal_entry_synced: Arc::default(),
            failpoints: FailPoints::default(),
        })
    }

    /// Housekeeping of the object store after a commit: loose objects (other git tools write
    /// them; certform's commits write one pack each) are packed once there are more than
    /// `loose_threshold`, counted over the 256 fan-out directories (the one-directory sample
    /// `git gc --auto` uses is too noisy at a few thousand objects), by the system `git repack
    /// -d` (loose objects into one new pack); and once there are more than `packs_threshold`
    /// packs (a year of daily commits makes ~365), all packs are merged into one by `git
    /// repack -a -d -n`. Neither takes a ref lock (`git gc` would pack refs, and a run killed
    /// there leaves `refs/heads/*.lock` behind, which blocks the next run): a kill during
    /// either leaves the old packs or a temporary pack file, never a broken repository.
    /// Returns whether it packed. Without a system `git` the objects stay as they are, which
    /// is correct, only larger.
    pub fn pack_loose_objects(&self, loose_threshold: usize, packs_threshold: usize) -> bool {
        let objects = self.git_dir.join("objects");
        let loose: usize = (0..=255u8)
            .map(|fan_out| {
                fs::read_dir(objects.join(format!("{fan_out:02x}")))
                    .map(|entries| entries.count())
                    .unwrap_or(0)
            })
            .sum();
        let packs = fs::read_dir(objects.join("pack"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|entry| entry.file_name().as_bytes().ends_with(b".pack"))
                    .count()
            })
            .unwrap_or(0);
        let arguments: &[&str] = if packs > packs_threshold {
            &["repack", "-a", "-d", "-n", "-q"]
        } else if loose > loose_threshold {
            &["repack", "-d", "-n", "-q"]
        } else {
            return false;
        };
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.work_tree)
            .args(["-c", "repack.writeBitmaps=false"])
            .args(arguments)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => true,
            Ok(status) => {
                tracing::warn!(%status, "`git repack` failed; objects stay as they are");
                false
            }
            Err(error) => {
                tracing::warn!(%error, "cannot run `git repack`; objects stay as they are");
                false
            }
        }
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
        // A `git repack` (the pack merge) killed with its certform leaves its temp packs.
        let packs = self.git_dir.join("objects").join("pack");
        remove_noting(&repack_leftovers(&packs)?, &mut notes, |path| {
            format!(
                "removed `{}`, left by an interrupted `git repack`",
                path.display()
            )
        })?;
        let marker_path = self.git_dir.join(COMMIT_MARKER);
        let marker = CommitMarker::read(&marker_path)?;
        let locks = self.git_lock_files()?;
        let Some(marker) = marker else {
            return match locks.into_iter().next() {
                Some(path) => Err(Error::GitLocked {
                    repo: self.work_tree.clone(),
                    path,
                }),
                None => {
                    notes.extend(self.finish_move()?);
                    Ok(notes)
                }
            };
        };
        if marker.is_another_live_process() {
            return Err(Error::CommitInProgress {
                repo: self.work_tree.clone(),
                pid: marker.pid,
                host: marker.host,
            });
        }
        remove_noting(&locks, &mut notes, |path| {
            format!(
                "removed `{}`, left by a certform (pid {}) killed while committing",
                path.display(),
                marker.pid
            )
        })?;
        let repo = self.repository()?;
        // The pack writer's temp files (libgit2's indexer: `pack_git2_*`, and its index's
        // `.lock`): the pack they were becoming was never named by a ref.
        let pack_temps = pack_leftovers(&repo.commondir().join("objects").join("pack"))?;
        remove_noting(&pack_temps, &mut notes, |path| {
            format!(
                "removed `{}`, left by a certform (pid {}) killed while writing a pack",
                path.display(),
                marker.pid
            )
        })?;
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
        notes.extend(self.finish_move()?);
        remove_durably(&marker_path)?;
        Ok(notes)
    }

    /// The repository's git directory (`.git`), where certform keeps files git does not track.
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// The path of certificate `name`'s public chain file (`certificates/<name>.pem`).
    pub fn chain_file(&self, name: &str) -> Result<PathBuf, Error> {
        self.certificate_file(name, "pem")
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

    /// The inventory listing notes of the git directory; unreadable notes count as none
    /// (they only spare a listing).
    fn inventory_notes(
        &self,
    ) -> std::collections::BTreeMap<String, crate::ca_inventory::ListingNote> {
        fs::read(self.git_dir.join(INVENTORY_NOTES))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Every `ca/<account>.inventory.toml`, by account, with the later listings noted in the
    /// git directory folded in (an account listed with nothing to report has only a note).
    fn load_inventories(
        &self,
    ) -> Result<std::collections::BTreeMap<String, crate::ca_inventory::CaInventory>, Error> {
        let dir = self.root.join(CA_DIR);
        let mut inventories = std::collections::BTreeMap::new();
        let listing: Vec<io::Result<fs::DirEntry>> = match fs::read_dir(&dir) {
            Ok(listing) => listing.collect(),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(io_error("list", &dir, source)),
        };
        for entry in listing {
            let entry = entry.map_err(|source| io_error("list", &dir, source))?;
            let file_name = entry.file_name();
            let Some(ca) = file_name
                .to_str()
                .and_then(|name| name.strip_suffix(INVENTORY_SUFFIX))
                .filter(|ca| !ca.is_empty() && !ca.starts_with('.'))
            else {
                continue;
            };
            let path = entry.path();
            let bytes = fs::read(&path).map_err(|source| io_error("read", &path, source))?;
            inventories.insert(ca.to_string(), parse_inventory(&path, ca, &bytes)?);
        }
        for (ca, note) in self.inventory_notes() {
            let record = match inventories.remove(&ca) {
                Some(record) => record.noted(note),
                None => crate::ca_inventory::CaInventory::empty(&ca, note),
            };
            inventories.insert(ca, record);
        }
        Ok(inventories)
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
    ///
    /// No lock is held while the journal is synced, so certificates written at once sync
    /// their lines in parallel (`O_APPEND` keeps each write whole); the git directory is
    /// fsynced once per journal file, and every caller waits until it is.
    fn record(&self, relative: &str) -> Result<(), Error> {
        let git_path = self.managed_git_path(relative);
        if self
            .touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&git_path)
        {
            return Ok(());
        }
        let path = self.git_dir.join(PENDING_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|source| io_error("open", &path, source))?;
        file.write_all(format!("{git_path}\n").as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|source| io_error("write", &path, source))?;
        {
            let mut synced = self
                .journal_entry_synced
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !*synced {
                atomic_file::sync_dir(&self.git_dir)
                    .map_err(|source| io_error("sync", &self.git_dir, source))?;
                *synced = true;
            }
        }
        self.touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(git_path);
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
            *self
                .journal_entry_synced
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = false;
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

/// A write of the parsed-state cache that `GitStore::load_deferring_cache` left to its caller.
#[must_use = "the cache is only written by `write`"]
pub struct CacheWrite {
    file: PathBuf,
    text: String,
}

impl CacheWrite {
    /// Write the cache (errors are ignored: it only saves time).
    pub fn write(self) {
        parsed_cache::save(&self.file, &self.text);
    }
}

impl GitStore {
    /// `load`, without writing anything: the parsed-state cache's update, if any, is returned
    /// for the caller to write (a load started before the configuration that names this
    /// repository is known to be valid writes only once it is).
    pub fn load_deferring_cache(&self) -> Result<(State, Option<CacheWrite>), Error> {
        let dir = self.certificates_dir();
        let listing = match fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok((State::default(), None))
            }
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
            // The listing's file type (no `stat` per file at 10,000 files); a symbolic link
            // or a file system that does not report types is looked at through `stat`.
            let is_file = match entry.file_type() {
                Ok(kind) if kind.is_file() => true,
                Ok(kind) if kind.is_dir() => false,
                _ => fs::metadata(&path)
                    .map_err(|source| io_error("read", &path, source))?
                    .is_file(),
            };
            if is_file {
                files.push((name.to_string(), path));
            }
        }
        files.sort();
        // Each record from the parsed-state cache when the file's stat data is the recorded
        // one, else read and parsed (see `parsed_cache`).
        let trusted_before = std::time::SystemTime::now()
            .checked_sub(parsed_cache::RACY_MARGIN)
            .unwrap_or(std::time::UNIX_EPOCH);
        let cache_file = self.git_dir.join(parsed_cache::FILE_NAME);
        let directory = dir.to_string_lossy();
        let cache = if files.is_empty() {
            None
        } else {
            parsed_cache::Cache::open(&cache_file, &directory)
        }
        .unwrap_or_default();
        // Read and parsed on a few threads (10,000 files at fleet size); the first error in
        // name order is the one reported, as when they were read one by one.
        let parsed = crate::par::map(&files, |(name, path)| {
            parsed_cache::read(&cache, name, path, trusted_before)
        });
        let mut certificates = Vec::with_capacity(files.len());
        let mut sources = Vec::with_capacity(files.len());
        for ((name, _), result) in files.into_iter().zip(parsed) {
            let (certificate, source) = result?;
            certificates.push((name, certificate));
            sources.push(source);
        }
        // Built from the sorted list at once: full nodes (inserted one by one, a node of
        // records is left about half empty; ~5 MB at 10,000 certificates).
        let mut state = State {
            certificates: certificates.into_iter().collect(),
            ..State::default()
        };
        let write = parsed_cache::render(&cache, &directory, &sources).map(|text| CacheWrite {
            file: cache_file.clone(),
            text,
        });
        state.ca_inventory = self.load_inventories()?;
        Ok((state, write))
    }
}

impl StateStore for GitStore {
    fn load(&self) -> Result<State, Error> {
        let (state, write) = self.load_deferring_cache()?;
        if let Some(write) = write {
            write.write();
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

    fn remove_public_file(&self, relative: &str) -> Result<(), Error> {
        let relative_path = managed_relative_path(relative)?;
        let path = self.root.join(&relative_path);
        let parts: Vec<_> = relative_path
            .components()
            .filter_map(|part| part.as_os_str().to_str())
            .collect();
        self.record(&parts.join("/"))?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(io_error("remove", &path, source)),
        }
        if let Some(parent) = path.parent() {
            // Only an empty directory goes; git keeps no empty directories either.
            let _ = fs::remove_dir(parent);
            let synced = if parent.exists() { parent } else { &self.root };
            atomic_file::sync_dir(synced).map_err(|source| io_error("sync", synced, source))?;
        }
        Ok(())
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
        let odb = repo
            .odb()
            .map_err(|source| self.git("open the object database", source))?;
        // The commit's new objects stay in memory until they are written as one pack.
        let pending_objects = PendingObjects::attach(&odb)
            .map_err(|source| self.git("open the object database", source))?;
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
        // The objects this commit may add: its blobs, the trees on the way to every changed
        // path, the commit itself (the rest of the tree is HEAD's).
        let mut new_objects = Vec::new();
        for (git_path, file) in &files {
            remove_from_index(&mut index, git_path)
                .map_err(|source| self.git(format!("unstage `{git_path}`"), source))?;
            if let Some(WorkTreeFile { content, mode }) = file {
                let id = repo
                    .blob(content)
                    .map_err(|source| self.git(format!("store `{git_path}`"), source))?;
                new_objects.push(id);
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
            new_objects.push(tree_id);
            let directories: BTreeSet<&str> = files
                .iter()
                .flat_map(|(git_path, _)| {
                    git_path.match_indices('/').map(|(end, _)| &git_path[..end])
                })
                .collect();
            for directory in directories {
                if let Ok(entry) = tree.get_path(Path::new(directory)) {
                    new_objects.push(entry.id());
                }
            }
            new_objects.push(id);
            // The pack (blobs, trees, the commit) is durable before the branch names it.
            pending_objects
                .write_pack(&repo, repo.commondir(), &new_objects)
                .map_err(|error| match error {
                    PackError::Git(source) => self.git("write the pack", source),
                    PackError::Io(source) => {
                        io_error("write", &repo.commondir().join("objects/pack"), source)
                    }
                })?;
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
        let head = Self::head_entries(&repo, head_tree.as_ref(), &paths);
        let mismatched = Self::index_mismatches(&index, &head, &paths);
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

    fn note_inventory_listing(
        &self,
        ca: &str,
        note: crate::ca_inventory::ListingNote,
    ) -> Result<(), Error> {
        let mut notes = self.inventory_notes();
        notes.insert(ca.to_string(), note);
        let path = self.git_dir.join(INVENTORY_NOTES);
        // Plain data (names, times, counts) always serializes.
        let text = serde_json::to_vec_pretty(&notes).unwrap_or_default();
        atomic_file::write(&path, &text, FILE_MODE)
            .map_err(|source| io_error("write", &path, source))
    }

    fn push(&self) -> Result<Option<String>, Error> {
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
            Err(error) if error.code() == ErrorCode::NotFound => return Ok(None),
            Err(source) => return Err(self.git(format!("read `{branch}`"), source)),
        }
        // Recorded first: a push that fails or is killed is retried by the next run.
        let pending = self.git_dir.join(push::PUSH_PENDING_FILE);
        atomic_file::write(&pending, format!("{branch}\n").as_bytes(), FILE_MODE)
            .map_err(|source| io_error("write", &pending, source))?;
        self.push_with_git(&branch)
    }

    fn push_pending(&self) -> bool {
        self.git_dir.join(push::PUSH_PENDING_FILE).exists()
    }
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
