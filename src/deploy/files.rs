//! The `files` deploy target: PEM files in a directory, then an optional reload command.
//!
//! Writes `cert`, `chain`, `fullchain` (cert + chain) and `key` with the configured names, each
//! only when its content differs from what is on disk, with the configured mode and owner. Then
//! runs the reload command (`sh -c`, in its own process group, killed as a group on timeout)
//! when something changed or the last reload failed. Never logs the key.
//!
//! Switching a pair. The files stay plain files at the configured names (what a server is
//! pointed at), and POSIX has no rename of several files at once, so a switch is made safe by
//! a journal: every changed file is first written in full beside its final name
//! (`.NAME.certform-next`, fsynced), then the journal `.certform-switch-*` listing them (with their
//! SHA-256) is written and fsynced, and one directory fsync makes the staged files and the
//! journal durable together; then the staged files are renamed over the final names in a
//! fixed order (cert, chain, fullchain, key last), the directory is fsynced, and the journal
//! is removed. A run killed
//! before the journal leaves the old files untouched (the staged leftovers are removed later);
//! a run killed after it is rolled forward by `recover`, which `apply` runs for every target
//! before anything else, and `plan` reports it. What a reader can see: between the first and
//! the last rename of one switch (microseconds, or until the next apply when the run was killed
//! there) the key and the certificate can disagree; the reload command only ever runs after
//! every rename of the switch.

pub(crate) mod open;
mod owner;
pub(crate) mod reload;
pub mod settings;

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use time::OffsetDateTime;

use self::owner::{chown, lookup_group, lookup_user};
use self::reload::run_reload;
pub use self::reload::RELOAD_OUTPUT_LIMIT;
use crate::apply::FailPoints;
use crate::deploy::{Bundle, DeployError, DeployOutcome, Deployer};
use crate::keys::sha256_hex;
use crate::observed::DeployObservation;
use crate::spec::{DeployTarget, FilesTarget};
use crate::state::model::DeployRecord;

/// Mode of directories this target creates.
const DIR_MODE: u32 = 0o755;
/// Prefix of the switch journal's name, in the target's directory.
const JOURNAL: &str = ".certform-switch";
/// Suffix of a staged file: `.NAME.certform-next` beside `NAME`.
const STAGED_SUFFIX: &str = ".certform-next";
/// Mode of the journal (it names files, holds no secret, but nobody else needs it).
const JOURNAL_MODE: u32 = 0o600;
/// Deploys to a `FilesTarget`.
#[derive(Debug, Clone)]
pub struct FilesDeployer {
    target: FilesTarget,
    failpoints: FailPoints,
}

/// The switch journal: the staged files to rename, in order, with the SHA-256 of each.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Journal {
    files: Vec<JournalEntry>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct JournalEntry {
    name: String,
    sha256: String,
}

/// One file of the target, with the content it should have.
struct FileContent<'a> {
    name: &'a str,
    path: PathBuf,
    content: String,
    mode: u32,
}

impl FilesDeployer {
    pub fn new(target: FilesTarget) -> Self {
        Self {
            target,
            failpoints: FailPoints::default(),
        }
    }

    /// With fail points (`CERTFORM_FAILPOINT`) between the steps of a switch, for crash tests:
    /// `deploy-staged`, then `deploy-renamed-1` ... `deploy-renamed-4` after each rename.
    pub fn with_failpoints(mut self, failpoints: FailPoints) -> Self {
        self.failpoints = failpoints;
        self
    }

    fn target_id(&self) -> String {
        DeployTarget::Files(self.target.clone()).id()
    }

    /// The switch journal: `dir/.certform-switch-<digest of the file names>`, so certificates
    /// that deploy different file names into one directory never share a journal.
    fn journal_path(&self) -> PathBuf {
        let names = self.names().join("\0");
        let digest = sha256_hex(names.as_bytes());
        self.target.dir.join(format!("{JOURNAL}-{}", &digest[..12]))
    }

    /// Configured file names, sorted.
    fn names(&self) -> Vec<&str> {
        let mut names = self.target.names();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The files, in switch order: cert, chain, fullchain, combined (when configured), key.
    fn contents(&self, bundle: &Bundle) -> Result<Vec<FileContent<'_>>, DeployError> {
        let target = &self.target;
        let cert = with_newline(&bundle.cert_pem);
        let chain = with_newline(&bundle.chain_pem);
        let fullchain = format!("{cert}{chain}");
        let key = with_newline(&bundle.key_pem);
        let mut files = vec![
            (target.cert.as_str(), cert, target.mode),
            (target.chain.as_str(), chain, target.mode),
            (target.fullchain.as_str(), fullchain.clone(), target.mode),
        ];
        if let Some(combined) = &target.combined {
            // Key first, then the certificate and its chain: HAProxy's `crt` layout.
            files.push((
                combined.as_str(),
                format!("{key}{fullchain}"),
                target.key_mode,
            ));
        }
        files.push((target.key.as_str(), key, target.key_mode));
        let mut seen = Vec::new();
        let mut contents = Vec::new();
        for (name, content, mode) in files {
            if seen.contains(&name) {
                return Err(DeployError::DuplicateFile {
                    target: self.target_id(),
                    file: name.to_string(),
                });
            }
            seen.push(name);
            contents.push(FileContent {
                name,
                path: self.path_of(name)?,
                content,
                mode,
            });
        }
        Ok(contents)
    }

    /// `dir/name`, refusing names that would leave `dir`.
    fn path_of(&self, name: &str) -> Result<PathBuf, DeployError> {
        let invalid = |reason| DeployError::InvalidFileName {
            target: self.target_id(),
            file: name.to_string(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("empty"));
        }
        for component in Path::new(name).components() {
            match component {
                Component::Normal(_) | Component::CurDir => {}
                Component::ParentDir => return Err(invalid("`..` is not allowed")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(invalid("must be relative to `dir`"))
                }
            }
        }
        Ok(self.target.dir.join(name))
    }

    fn io_error(&self, action: &'static str, path: &Path, source: io::Error) -> DeployError {
        DeployError::Io {
            target: self.target_id(),
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Resolve `owner` and `group` to ids (before anything is written).
    fn ownership(&self) -> Result<(Option<u32>, Option<u32>), DeployError> {
        let uid = match &self.target.owner {
            None => None,
            Some(user) => match lookup_user(user) {
                Ok(Some(uid)) => Some(uid),
                Ok(None) => {
                    return Err(DeployError::UnknownUser {
                        target: self.target_id(),
                        user: user.clone(),
                    })
                }
                Err(source) => {
                    return Err(self.io_error("look up the owner of", Path::new(user), source))
                }
            },
        };
        let gid = match &self.target.group {
            None => None,
            Some(group) => match lookup_group(group) {
                Ok(Some(gid)) => Some(gid),
                Ok(None) => {
                    return Err(DeployError::UnknownGroup {
                        target: self.target_id(),
                        group: group.clone(),
                    })
                }
                Err(source) => {
                    return Err(self.io_error("look up the group of", Path::new(group), source))
                }
            },
        };
        Ok((uid, gid))
    }

    /// Whether `file`'s content differs from what is on disk.
    fn differs(&self, file: &FileContent<'_>) -> Result<bool, DeployError> {
        match fs::read(&file.path) {
            Ok(bytes) => Ok(bytes != file.content.as_bytes()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(error) => Err(self.io_error("read", &file.path, error)),
        }
    }

    /// Write `file` in full to its staged name, with its final mode and owner.
    fn stage(
        &self,
        file: &FileContent<'_>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<(), DeployError> {
        if let Some(parent) = file.path.parent() {
            crate::atomic_file::create_dir_all(parent, DIR_MODE)
                .map_err(|error| self.io_error("create directory", parent, error))?;
        }
        // Written in place and fsynced, without a rename or a directory fsync of its own: it
        // is used only through the journal, which names its digest, and the directory is
        // fsynced once with the journal before the first rename.
        let staged = staged_path(&file.path);
        crate::atomic_file::write_staged(&staged, file.content.as_bytes(), file.mode)
            .map_err(|error| self.io_error("write", &staged, error))?;
        self.fix_metadata(&staged, file.mode, uid, gid)
    }

    /// Set `path`'s mode and owner when they differ.
    fn fix_metadata(
        &self,
        path: &Path,
        mode: u32,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<(), DeployError> {
        let metadata = fs::metadata(path).map_err(|error| self.io_error("inspect", path, error))?;
        if metadata.permissions().mode() & 0o7777 != mode {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(|error| self.io_error("set the mode of", path, error))?;
        }
        let wrong_owner = uid.is_some_and(|uid| uid != metadata.uid());
        let wrong_group = gid.is_some_and(|gid| gid != metadata.gid());
        if wrong_owner || wrong_group {
            chown(path, uid, gid)
                .map_err(|error| self.io_error("change the owner of", path, error))?;
        }
        Ok(())
    }

    /// Switch the staged `files` in: journal, renames in order, journal removed.
    fn switch(&self, files: &[&FileContent<'_>]) -> Result<(), DeployError> {
        let journal = Journal {
            files: files
                .iter()
                .map(|file| JournalEntry {
                    name: file.name.to_string(),
                    sha256: sha256_hex(file.content.as_bytes()),
                })
                .collect(),
        };
        let journal_path = self.journal_path();
        let text = serde_json::to_vec(&journal).map_err(|error| {
            self.io_error("write", &journal_path, io::Error::other(error.to_string()))
        })?;
        crate::atomic_file::write_unsynced_dir(&journal_path, &text, JOURNAL_MODE)
            .map_err(|error| self.io_error("write", &journal_path, error))?;
        // One fsync per directory makes the staged names and the journal durable together,
        // before the first rename (the journal must never be lost once a rename is).
        let staged_dirs = files.iter().filter_map(|file| file.path.parent());
        for dir in distinct_dirs(staged_dirs.chain([self.target.dir.as_path()])) {
            crate::atomic_file::sync_dir(dir).map_err(|error| self.io_error("sync", dir, error))?;
        }
        self.failpoints.hit("deploy-staged");
        for (index, file) in files.iter().enumerate() {
            let staged = staged_path(&file.path);
            fs::rename(&staged, &file.path)
                .map_err(|error| self.io_error("rename into place", &file.path, error))?;
            self.failpoints
                .hit(&format!("deploy-renamed-{}", index + 1));
        }
        self.finish_switch(files.iter().map(|file| file.path.as_path()))
    }

    /// fsync the directories of `paths` (the renames are durable), then remove the journal.
    ///
    /// The removal is not fsynced: a journal a power loss brings back names staged files that
    /// are gone (renamed), so the next run's roll-forward finds nothing to do and removes it.
    fn finish_switch<'p>(&self, paths: impl Iterator<Item = &'p Path>) -> Result<(), DeployError> {
        for dir in distinct_dirs(paths.filter_map(Path::parent)) {
            crate::atomic_file::sync_dir(dir).map_err(|error| self.io_error("sync", dir, error))?;
        }
        let journal_path = self.journal_path();
        match fs::remove_file(&journal_path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(self.io_error("remove", &journal_path, error)),
        }
    }

    /// The journal of a switch a killed run left, if any (`Err` when it is unreadable).
    fn pending_journal(&self) -> Result<Option<Journal>, DeployError> {
        let path = self.journal_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(self.io_error("read", &path, error)),
        };
        // A journal is written atomically (temp file, fsync, rename), so an unparsable one was
        // not written by certform:
        // treat it as empty (the staged files are then removed and the next deploy rewrites).
        Ok(Some(
            serde_json::from_slice(&bytes).unwrap_or(Journal { files: Vec::new() }),
        ))
    }

    /// Finish a switch a killed run left half done (roll forward from the journal), and remove
    /// staged files no journal refers to. Returns the names switched now.
    pub fn recover_switch(&self) -> Result<Vec<String>, DeployError> {
        let names = self.names();
        let journal = self.pending_journal()?;
        let mut switched = Vec::new();
        let mut touched = Vec::new();
        if let Some(journal) = &journal {
            for entry in &journal.files {
                if !names.contains(&entry.name.as_str()) {
                    continue;
                }
                let path = self.path_of(&entry.name)?;
                let staged = staged_path(&path);
                match fs::read(&staged) {
                    Ok(bytes) if sha256_hex(&bytes) == entry.sha256 => {
                        fs::rename(&staged, &path)
                            .map_err(|error| self.io_error("rename into place", &path, error))?;
                        switched.push(entry.name.clone());
                        touched.push(path);
                    }
                    // Not what the journal promised: leave the final file, drop the stage.
                    Ok(_) => {}
                    // Already renamed before the kill.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(self.io_error("read", &staged, error)),
                }
            }
        }
        // Leftovers: staged files of a run killed before its journal, or not in the journal.
        for name in &names {
            let staged = staged_path(&self.path_of(name)?);
            match fs::remove_file(&staged) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(self.io_error("remove", &staged, error)),
            }
        }
        if journal.is_some() {
            self.finish_switch(touched.iter().map(PathBuf::as_path))?;
        }
        Ok(switched)
    }
}

/// `dirs` sorted, each once.
fn distinct_dirs<'p>(dirs: impl Iterator<Item = &'p Path>) -> Vec<&'p Path> {
    let mut dirs: Vec<&Path> = dirs.collect();
    dirs.sort_unstable();
    dirs.dedup();
    dirs
}

/// `dir/.NAME.certform-next` for `dir/NAME`.
fn staged_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{STAGED_SUFFIX}"))
}

#[async_trait]
impl Deployer for FilesDeployer {
    fn web_root(&self) -> Option<Box<dyn crate::deploy::web_root::WebRoot>> {
        let root = self.target.web_root.clone()?;
        Some(Box::new(crate::deploy::web_root::LocalWebRoot { root }))
    }

    fn id(&self) -> String {
        self.target_id()
    }

    fn recover(&self) -> Result<Vec<String>, DeployError> {
        self.recover_switch()
    }

    /// The switch journal `.certform-switch-*` and the staged `.NAME.certform-next` files,
    /// beside the final names (in `dir` or the sub-directory a name puts them in).
    fn recovers_from_hidden_files(&self) -> bool {
        true
    }

    fn observe(&self, record: Option<&DeployRecord>) -> DeployObservation {
        let names = self.names();
        if let Ok(Some(journal)) = self.pending_journal() {
            return DeployObservation::Interrupted(
                journal.files.into_iter().map(|entry| entry.name).collect(),
            );
        }
        let Some(record) = record else {
            return DeployObservation::Missing(names.iter().map(|n| n.to_string()).collect());
        };
        let mut missing = Vec::new();
        let mut changed = Vec::new();
        for name in names {
            let path = self.target.dir.join(name);
            // Re-hashed only when the file's stat data changed since it was last hashed.
            match crate::check_cache::file_sha256(&path) {
                Ok(hash) => {
                    if record.files.get(name) != Some(&hash) {
                        changed.push(name.to_string());
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    missing.push(name.to_string())
                }
                // Unreadable: it cannot be confirmed, so deploy again (and fail loudly there).
                Err(_) => changed.push(name.to_string()),
            }
        }
        if !missing.is_empty() {
            DeployObservation::Missing(missing)
        } else if !changed.is_empty() {
            DeployObservation::Changed(changed)
        } else {
            DeployObservation::InSync
        }
    }

    async fn deploy(
        &self,
        bundle: &Bundle,
        previous: Option<&DeployRecord>,
        target_digest: &str,
        now: OffsetDateTime,
    ) -> Result<DeployOutcome, DeployError> {
        let contents = self.contents(bundle)?;
        let (uid, gid) = self.ownership()?;
        let dir = &self.target.dir;
        crate::atomic_file::create_dir_all(dir, DIR_MODE)
            .map_err(|error| self.io_error("create directory", dir, error))?;
        // A switch a killed run left half done is finished before anything else.
        self.recover_switch()?;

        let mut changed = Vec::new();
        let mut hashes = crate::small_map::SmallMap::new();
        for file in &contents {
            if self.differs(file)? {
                self.stage(file, uid, gid)?;
                changed.push(file);
            }
            hashes.insert(file.name.to_string(), sha256_hex(file.content.as_bytes()));
        }
        if !changed.is_empty() {
            self.switch(&changed)?;
        }
        for file in &contents {
            self.fix_metadata(&file.path, file.mode, uid, gid)?;
        }
        let changed_files: Vec<String> = changed.iter().map(|f| f.name.to_string()).collect();

        // Reload unless the previous record proves this exact content was deployed and
        // reloaded: a run that died between writing and recording must still reload.
        let already_live = previous.is_some_and(|previous| {
            previous.reload_error.is_none()
                && previous.sha256_fingerprint == bundle.sha256_fingerprint
                && previous.files == hashes
        });
        let reload = match &self.target.reload {
            Some(command) if !changed_files.is_empty() || !already_live => {
                let timeout =
                    StdDuration::try_from(self.target.reload_timeout).unwrap_or(StdDuration::ZERO);
                Some(run_reload(command, timeout).await)
            }
            _ => None,
        };
        let reload_error = reload.as_ref().and_then(|(_, error)| error.clone());
        if let Some(error) = &reload_error {
            tracing::warn!(target_id = %self.target_id(), "reload failed: {error}");
        }
        // Private key material first (key, combined), then the public files: removal
        // deletes in this order. Named like the target's id: relative to the config file
        // when `dir` was written relative, so the receipt holds in every checkout.
        let paths: Vec<PathBuf> = contents
            .iter()
            .rev()
            .take(1 + usize::from(self.target.combined.is_some()))
            .chain(contents.iter().take(3))
            .map(|file| self.target.id_dir().join(file.name))
            .collect();
        Ok(DeployOutcome {
            record: DeployRecord {
                sha256_fingerprint: bundle.sha256_fingerprint.clone(),
                target_digest: target_digest.to_string(),
                files: hashes,
                deployed_at: now,
                reload_error,
                serial: bundle.serial.clone(),
                verified: None,
                paths,
                cleanup: self.target.cleanup,
                verify_error: None,
                ssh: None,
            },
            changed_files,
            reload: reload.map(|(report, _)| report),
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
