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
//! SHA-256) is written and fsynced, then the staged files are renamed over the final names in a
//! fixed order (cert, chain, fullchain, key last), then the journal is removed. A run killed
//! before the journal leaves the old files untouched (the staged leftovers are removed later);
//! a run killed after it is rolled forward by `recover`, which `apply` runs for every target
//! before anything else, and `plan` reports it. What a reader can see: between the first and
//! the last rename of one switch (microseconds, or until the next apply when the run was killed
//! there) the key and the certificate can disagree; the reload command only ever runs after
//! every rename of the switch.

pub(crate) mod open;
pub mod settings;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::apply::FailPoints;
use crate::deploy::{Bundle, DeployError, DeployOutcome, Deployer, ReloadReport};
use crate::keys::sha256_hex;
use crate::observed::DeployObservation;
use crate::spec::{DeployTarget, FilesTarget};
use crate::state::model::DeployRecord;

/// Most output kept from a reload command.
pub const RELOAD_OUTPUT_LIMIT: usize = 4096;
/// How long to wait for a reload's output after it exited (a background child may hold the pipe).
const OUTPUT_GRACE: StdDuration = StdDuration::from_millis(250);
/// Mode of directories this target creates.
const DIR_MODE: u32 = 0o755;
/// Prefix of the switch journal's name, in the target's directory.
const JOURNAL: &str = ".certform-switch";
/// Suffix of a staged file: `.NAME.certform-next` beside `NAME`.
const STAGED_SUFFIX: &str = ".certform-next";
/// Mode of the journal (it names files, holds no secret, but nobody else needs it).
const JOURNAL_MODE: u32 = 0o600;
const TRUNCATED: &str = "\n[output truncated]";

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
        let mut names = vec![
            self.target.cert.as_str(),
            self.target.chain.as_str(),
            self.target.fullchain.as_str(),
            self.target.key.as_str(),
        ];
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The four files, in switch order: cert, chain, fullchain, key.
    fn contents(&self, bundle: &Bundle) -> Result<Vec<FileContent<'_>>, DeployError> {
        let target = &self.target;
        let cert = with_newline(&bundle.cert_pem);
        let chain = with_newline(&bundle.chain_pem);
        let fullchain = format!("{cert}{chain}");
        let files = [
            (target.cert.as_str(), cert, target.mode),
            (target.chain.as_str(), chain, target.mode),
            (target.fullchain.as_str(), fullchain, target.mode),
            (
                target.key.as_str(),
                with_newline(&bundle.key_pem),
                target.key_mode,
            ),
        ];
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
        let staged = staged_path(&file.path);
        crate::atomic_file::write(&staged, file.content.as_bytes(), file.mode)
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
        crate::atomic_file::write(&journal_path, &text, JOURNAL_MODE)
            .map_err(|error| self.io_error("write", &journal_path, error))?;
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

    /// fsync the directories of `paths`, then remove the journal (and fsync again).
    fn finish_switch<'p>(&self, paths: impl Iterator<Item = &'p Path>) -> Result<(), DeployError> {
        let mut dirs: Vec<&Path> = paths.filter_map(Path::parent).collect();
        dirs.sort_unstable();
        dirs.dedup();
        for dir in dirs {
            crate::atomic_file::sync_dir(dir).map_err(|error| self.io_error("sync", dir, error))?;
        }
        let journal_path = self.journal_path();
        match fs::remove_file(&journal_path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(self.io_error("remove", &journal_path, error)),
        }
        crate::atomic_file::sync_dir(&self.target.dir)
            .map_err(|error| self.io_error("sync", &self.target.dir, error))
    }

    /// The journal of a switch a killed run left, if any (`Err` when it is unreadable).
    fn pending_journal(&self) -> Result<Option<Journal>, DeployError> {
        let path = self.journal_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(self.io_error("read", &path, error)),
        };
        // A journal is written atomically, so an unparsable one was not written by certform:
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
    fn id(&self) -> String {
        self.target_id()
    }

    fn recover(&self) -> Result<Vec<String>, DeployError> {
        self.recover_switch()
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
            match fs::read(&path) {
                Ok(bytes) => {
                    if record.files.get(name) != Some(&sha256_hex(&bytes)) {
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
        let mut hashes = BTreeMap::new();
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
        Ok(DeployOutcome {
            record: DeployRecord {
                sha256_fingerprint: bundle.sha256_fingerprint.clone(),
                target_digest: target_digest.to_string(),
                files: hashes,
                deployed_at: now,
                reload_error,
            },
            changed_files,
            reload: reload.map(|(report, _)| report),
        })
    }
}

/// Run `command` with `sh -c` in its own process group; on timeout kill the whole group.
/// Returns the report and, when it failed, the message to record.
async fn run_reload(command: &str, timeout: StdDuration) -> (ReloadReport, Option<String>) {
    let started = Instant::now();
    let report = |success: bool, output: String| ReloadReport {
        command: command.to_string(),
        success,
        output,
        duration: started.elapsed(),
    };
    let mut child = match tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            let message = format!("failed to start the reload command: {error}");
            return (report(false, String::new()), Some(message));
        }
    };
    let pid = child.id();
    let stdout = Arc::new(Mutex::new(Captured::default()));
    let stderr = Arc::new(Mutex::new(Captured::default()));
    let readers = [
        child
            .stdout
            .take()
            .map(|pipe| capture(pipe, Arc::clone(&stdout))),
        child
            .stderr
            .take()
            .map(|pipe| capture(pipe, Arc::clone(&stderr))),
    ];

    let failure = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => None,
        Ok(Ok(status)) => Some(match (status.code(), signal_of(&status)) {
            (Some(code), _) => format!("reload command exited with status {code}"),
            (None, Some(signal)) => format!("reload command was killed by signal {signal}"),
            (None, None) => "reload command failed".to_string(),
        }),
        Ok(Err(error)) => Some(format!("failed to wait for the reload command: {error}")),
        Err(_) => {
            if let Some(pid) = pid.and_then(|pid| libc::pid_t::try_from(pid).ok()) {
                // SAFETY: plain syscall; a negative pid names the process group the child leads
                // (it was started with `process_group(0)`), so no unrelated process is signalled.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.kill().await;
            Some(format!("reload command timed out after {timeout:?}"))
        }
    };

    for reader in readers.into_iter().flatten() {
        if tokio::time::timeout(OUTPUT_GRACE, reader).await.is_err() {
            // A background process still holds the pipe; keep what was read so far.
        }
    }
    let output = combine(&stdout, &stderr);
    (report(failure.is_none(), output), failure)
}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

/// Output read from one pipe, capped.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

/// Read `pipe` to its end in a task, keeping the first `RELOAD_OUTPUT_LIMIT` bytes (and draining
/// the rest so the command never blocks on a full pipe).
fn capture(
    mut pipe: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<Captured>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buffer = [0u8; 1024];
        loop {
            match pipe.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    let mut captured = into.lock().unwrap_or_else(|p| p.into_inner());
                    let room = RELOAD_OUTPUT_LIMIT.saturating_sub(captured.bytes.len());
                    let kept = read.min(room);
                    captured.bytes.extend_from_slice(&buffer[..kept]);
                    if kept < read {
                        captured.truncated = true;
                    }
                }
            }
        }
    })
}

/// stdout then stderr, cut to `RELOAD_OUTPUT_LIMIT` bytes on a character boundary.
fn combine(stdout: &Mutex<Captured>, stderr: &Mutex<Captured>) -> String {
    let stdout = stdout.lock().unwrap_or_else(|p| p.into_inner());
    let stderr = stderr.lock().unwrap_or_else(|p| p.into_inner());
    let mut text = String::from_utf8_lossy(&stdout.bytes).into_owned();
    if !text.is_empty() && !stderr.bytes.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&String::from_utf8_lossy(&stderr.bytes));
    let mut truncated = stdout.truncated || stderr.truncated;
    if text.len() > RELOAD_OUTPUT_LIMIT {
        truncated = true;
    }
    if truncated {
        let mut end = RELOAD_OUTPUT_LIMIT
            .saturating_sub(TRUNCATED.len())
            .min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(TRUNCATED);
    }
    text
}

fn with_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

/// A user name (or numeric id) to a uid; `None` when no such user exists.
fn lookup_user(user: &str) -> io::Result<Option<u32>> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok(Some(uid));
    }
    let Ok(name) = CString::new(user) else {
        return Ok(None);
    };
    let mut buffer = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: `passwd` is plain old data; all-zero is a valid (empty) value to be filled in.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to live storage of the stated size; the strings `entry`
        // points into live in `buffer`, and only `pw_uid` (a copy) is used afterwards.
        let code = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut entry,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut result,
            )
        };
        if code == libc::ERANGE && buffer.len() < (1 << 20) {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if code != 0 && code != libc::ENOENT {
            return Err(io::Error::from_raw_os_error(code));
        }
        return Ok((!result.is_null()).then_some(entry.pw_uid));
    }
}

/// A group name (or numeric id) to a gid; `None` when no such group exists.
fn lookup_group(group: &str) -> io::Result<Option<u32>> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(Some(gid));
    }
    let Ok(name) = CString::new(group) else {
        return Ok(None);
    };
    let mut buffer = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: `group` is plain old data; all-zero is a valid (empty) value to be filled in.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `lookup_user`; only `gr_gid` (a copy) is used afterwards.
        let code = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut entry,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut result,
            )
        };
        if code == libc::ERANGE && buffer.len() < (1 << 20) {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if code != 0 && code != libc::ENOENT {
            return Err(io::Error::from_raw_os_error(code));
        }
        return Ok((!result.is_null()).then_some(entry.gr_gid));
    }
}

/// Change owner and/or group of `path` (`None` leaves it as is).
fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // `(uid_t)-1` / `(gid_t)-1` mean "leave unchanged".
    let uid = uid.unwrap_or(libc::uid_t::MAX);
    let gid = gid.unwrap_or(libc::gid_t::MAX);
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::chown(path.as_ptr(), uid, gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;

    fn target(dir: &Path, reload: Option<&str>) -> FilesTarget {
        FilesTarget {
            dir: dir.to_path_buf(),
            cert: "cert.pem".to_string(),
            chain: "chain.pem".to_string(),
            fullchain: "fullchain.pem".to_string(),
            key: "key.pem".to_string(),
            mode: 0o644,
            key_mode: 0o600,
            owner: None,
            group: None,
            reload: reload.map(str::to_string),
            reload_timeout: Duration::seconds(10),
        }
    }

    fn bundle(serial: &str) -> Bundle {
        Bundle {
            cert_pem: format!("-----BEGIN CERTIFICATE-----\n{serial}\n-----END CERTIFICATE-----\n"),
            chain_pem: "-----BEGIN CERTIFICATE-----\nINTERMEDIATE\n-----END CERTIFICATE-----\n"
                .to_string(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n".to_string(),
            sha256_fingerprint: format!("fp-{serial}"),
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn count_lines(path: &Path) -> usize {
        fs::read_to_string(path)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn first_deploy_writes_four_files_then_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tls/site");
        let log = dir.path().join("reloads.log");
        let reload = format!("echo reloaded >> {}", log.display());
        let deployer = FilesDeployer::new(target(&out, Some(&reload)));
        assert_eq!(deployer.id(), format!("files:{}", out.display()));

        let first = deployer
            .deploy(&bundle("ONE"), None, "digest", now())
            .await
            .unwrap();
        assert_eq!(
            first.changed_files,
            vec!["cert.pem", "chain.pem", "fullchain.pem", "key.pem"]
        );
        assert_eq!(mode(&out.join("cert.pem")), 0o644);
        assert_eq!(mode(&out.join("chain.pem")), 0o644);
        assert_eq!(mode(&out.join("fullchain.pem")), 0o644);
        assert_eq!(mode(&out.join("key.pem")), 0o600);
        let fullchain = fs::read_to_string(out.join("fullchain.pem")).unwrap();
        assert!(fullchain.contains("ONE") && fullchain.contains("INTERMEDIATE"));
        let report = first.reload.as_ref().unwrap();
        assert!(report.success);
        assert_eq!(first.record.reload_error, None);
        assert_eq!(first.record.files.len(), 4);
        assert_eq!(
            first.record.files["key.pem"],
            sha256_hex(fs::read(out.join("key.pem")).unwrap().as_slice())
        );
        assert_eq!(first.record.target_digest, "digest");
        assert_eq!(first.record.deployed_at, now());
        assert_eq!(first.record.sha256_fingerprint, "fp-ONE");
        assert_eq!(count_lines(&log), 1);
        assert_eq!(
            deployer.observe(Some(&first.record)),
            DeployObservation::InSync
        );

        let second = deployer
            .deploy(&bundle("ONE"), Some(&first.record), "digest", now())
            .await
            .unwrap();
        assert!(second.changed_files.is_empty());
        assert!(second.reload.is_none());
        assert_eq!(count_lines(&log), 1, "no reload without changes");
    }

    #[tokio::test]
    async fn changed_cert_rewrites_only_changed_files_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let deployer = FilesDeployer::new(target(dir.path(), Some("true")));
        let first = deployer
            .deploy(&bundle("ONE"), None, "d", now())
            .await
            .unwrap();
        let key_inode = fs::metadata(dir.path().join("key.pem")).unwrap().ino();
        let chain_inode = fs::metadata(dir.path().join("chain.pem")).unwrap().ino();
        let second = deployer
            .deploy(&bundle("TWO"), Some(&first.record), "d", now())
            .await
            .unwrap();
        assert_eq!(second.changed_files, vec!["cert.pem", "fullchain.pem"]);
        assert!(second.reload.as_ref().unwrap().success);
        assert_eq!(
            fs::metadata(dir.path().join("key.pem")).unwrap().ino(),
            key_inode
        );
        assert_eq!(
            fs::metadata(dir.path().join("chain.pem")).unwrap().ino(),
            chain_inode
        );
    }

    #[tokio::test]
    async fn failed_reload_is_recorded_and_retried() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let flag = dir.path().join("fail");
        fs::write(&flag, "").unwrap();
        let command = format!(
            "echo to-stdout; echo to-stderr >&2; test ! -e {}",
            flag.display()
        );
        let deployer = FilesDeployer::new(target(&out, Some(&command)));

        let first = deployer
            .deploy(&bundle("ONE"), None, "d", now())
            .await
            .unwrap();
        let report = first.reload.as_ref().unwrap();
        assert!(!report.success);
        assert_eq!(report.output, "to-stdout\nto-stderr\n");
        let error = first.record.reload_error.clone().unwrap();
        assert!(error.contains("status 1"), "{error}");

        // Nothing changed, but the last reload failed: it runs again.
        fs::remove_file(&flag).unwrap();
        let second = deployer
            .deploy(&bundle("ONE"), Some(&first.record), "d", now())
            .await
            .unwrap();
        assert!(second.changed_files.is_empty());
        assert!(second.reload.as_ref().unwrap().success);
        assert_eq!(second.record.reload_error, None);

        let third = deployer
            .deploy(&bundle("ONE"), Some(&second.record), "d", now())
            .await
            .unwrap();
        assert!(third.reload.is_none());
    }

    #[tokio::test]
    async fn files_already_in_place_after_a_crash_still_reload() {
        let dir = tempfile::tempdir().unwrap();
        let deployer = FilesDeployer::new(target(dir.path(), Some("true")));
        let old = deployer
            .deploy(&bundle("ONE"), None, "d", now())
            .await
            .unwrap();
        // A run wrote TWO and died before recording it.
        deployer
            .deploy(&bundle("TWO"), Some(&old.record), "d", now())
            .await
            .unwrap();
        let again = deployer
            .deploy(&bundle("TWO"), Some(&old.record), "d", now())
            .await
            .unwrap();
        assert!(again.changed_files.is_empty());
        assert!(
            again.reload.is_some(),
            "the record says ONE is live, so reload"
        );
    }

    #[tokio::test]
    async fn reload_timeout_kills_the_process_group_fast() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = target(dir.path(), Some("echo started; sleep 5 & sleep 5"));
        files.reload_timeout = Duration::milliseconds(200);
        let deployer = FilesDeployer::new(files);
        let started = Instant::now();
        let outcome = deployer
            .deploy(&bundle("ONE"), None, "d", now())
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert!(elapsed < StdDuration::from_secs(2), "took {elapsed:?}");
        let report = outcome.reload.unwrap();
        assert!(!report.success);
        assert_eq!(report.output, "started\n");
        let error = outcome.record.reload_error.unwrap();
        assert!(error.contains("timed out after 200ms"), "{error}");
    }

    #[tokio::test]
    async fn long_output_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let deployer = FilesDeployer::new(target(
            dir.path(),
            Some(
                "i=0; while [ $i -lt 2000 ]; do echo 'output line'; i=$((i+1)); done; echo err >&2",
            ),
        ));
        let outcome = deployer
            .deploy(&bundle("ONE"), None, "d", now())
            .await
            .unwrap();
        let report = outcome.reload.unwrap();
        assert!(report.success);
        assert!(report.output.len() <= RELOAD_OUTPUT_LIMIT);
        assert!(report.output.ends_with(TRUNCATED));
    }

    #[tokio::test]
    async fn observe_detects_modified_and_deleted_files() {
        let dir = tempfile::tempdir().unwrap();
        let deployer = FilesDeployer::new(target(dir.path(), None));
        assert_eq!(
            deployer.observe(None),
            DeployObservation::Missing(vec![
                "cert.pem".to_string(),
                "chain.pem".to_string(),
                "fullchain.pem".to_string(),
                "key.pem".to_string()
            ])
        );
        let outcome = deployer
            .deploy(&bundle("ONE"), None, "d", now())
            .await
            .unwrap();
        assert!(outcome.reload.is_none());
        let record = outcome.record;
        assert_eq!(deployer.observe(Some(&record)), DeployObservation::InSync);

        fs::write(dir.path().join("chain.pem"), "tampered").unwrap();
        assert_eq!(
            deployer.observe(Some(&record)),
            DeployObservation::Changed(vec!["chain.pem".to_string()])
        );
        fs::remove_file(dir.path().join("key.pem")).unwrap();
        assert_eq!(
            deployer.observe(Some(&record)),
            DeployObservation::Missing(vec!["key.pem".to_string()])
        );

        // Deploying again repairs exactly those files.
        let repaired = deployer
            .deploy(&bundle("ONE"), Some(&record), "d", now())
            .await
            .unwrap();
        assert_eq!(repaired.changed_files, vec!["chain.pem", "key.pem"]);
        assert_eq!(
            deployer.observe(Some(&repaired.record)),
            DeployObservation::InSync
        );
    }

    /// Stage `bundle` and write its journal as a run would, then rename only the first
    /// `renamed` files: the state a kill between renames leaves.
    fn interrupted_switch(deployer: &FilesDeployer, bundle: &Bundle, renamed: usize) {
        let contents = deployer.contents(bundle).unwrap();
        for file in &contents {
            deployer.stage(file, None, None).unwrap();
        }
        let journal = Journal {
            files: contents
                .iter()
                .map(|file| JournalEntry {
                    name: file.name.to_string(),
                    sha256: sha256_hex(file.content.as_bytes()),
                })
                .collect(),
        };
        fs::write(
            deployer.journal_path(),
            serde_json::to_vec(&journal).unwrap(),
        )
        .unwrap();
        for file in contents.iter().take(renamed) {
            fs::rename(staged_path(&file.path), &file.path).unwrap();
        }
    }

    #[tokio::test]
    async fn a_switch_killed_between_renames_is_rolled_forward() {
        for renamed in 0..=4 {
            let dir = tempfile::tempdir().unwrap();
            let deployer = FilesDeployer::new(target(dir.path(), None));
            let first = deployer
                .deploy(&bundle("ONE"), None, "d", now())
                .await
                .unwrap();
            let mut two = bundle("TWO");
            two.key_pem = two.key_pem.replace("SECRET", "SECRET-TWO");
            interrupted_switch(&deployer, &two, renamed);
            let observed = deployer.observe(Some(&first.record));
            assert!(
                matches!(&observed, DeployObservation::Interrupted(files) if files.len() == 4),
                "{renamed}: {observed:?}"
            );

            let switched = deployer.recover().unwrap();
            assert_eq!(switched.len(), 4 - renamed, "{renamed}");
            assert!(!deployer.journal_path().exists());
            for name in ["cert.pem", "fullchain.pem"] {
                assert!(fs::read_to_string(dir.path().join(name))
                    .unwrap()
                    .contains("TWO"));
            }
            assert!(fs::read_to_string(dir.path().join("key.pem"))
                .unwrap()
                .contains("SECRET-TWO"));
            assert_eq!(mode(&dir.path().join("key.pem")), 0o600);
            let leftovers: Vec<String> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with('.'))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
            assert!(deployer.recover().unwrap().is_empty(), "nothing left to do");
        }
    }

    #[tokio::test]
    async fn staged_files_without_a_journal_are_dropped_and_old_files_kept() {
        let dir = tempfile::tempdir().unwrap();
        let deployer = FilesDeployer::new(target(dir.path(), None));
        let first = deployer
            .deploy(&bundle("ONE"), None, "d", now())
            .await
            .unwrap();
        // Killed while staging: no journal yet.
        for file in deployer.contents(&bundle("TWO")).unwrap() {
            deployer.stage(&file, None, None).unwrap();
        }
        assert_eq!(
            deployer.observe(Some(&first.record)),
            DeployObservation::InSync
        );
        assert!(deployer.recover().unwrap().is_empty());
        assert!(!staged_path(&dir.path().join("key.pem")).exists());
        assert!(fs::read_to_string(dir.path().join("cert.pem"))
            .unwrap()
            .contains("ONE"));
    }

    #[tokio::test]
    async fn deploy_finishes_an_interrupted_switch_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let deployer = FilesDeployer::new(target(dir.path(), Some("true")));
        let first = deployer
            .deploy(&bundle("ONE"), None, "d", now())
            .await
            .unwrap();
        interrupted_switch(&deployer, &bundle("TWO"), 1);
        let again = deployer
            .deploy(&bundle("TWO"), Some(&first.record), "d", now())
            .await
            .unwrap();
        assert!(again.changed_files.is_empty(), "{:?}", again.changed_files);
        assert!(
            again.reload.is_some(),
            "the switched files were never reloaded"
        );
        assert_eq!(
            deployer.observe(Some(&again.record)),
            DeployObservation::InSync
        );
    }

    #[test]
    fn targets_sharing_a_directory_keep_separate_journals() {
        let dir = tempfile::tempdir().unwrap();
        let first = FilesDeployer::new(target(dir.path(), None));
        let mut other = target(dir.path(), None);
        other.cert = "b-cert.pem".into();
        other.chain = "b-chain.pem".into();
        other.fullchain = "b-fullchain.pem".into();
        other.key = "b-key.pem".into();
        let second = FilesDeployer::new(other);
        assert_ne!(first.journal_path(), second.journal_path());
        assert_eq!(first.journal_path().parent(), Some(dir.path()));
    }

    #[tokio::test]
    async fn wrong_mode_is_fixed_without_rewriting() {
        let dir = tempfile::tempdir().unwrap();
        let deployer = FilesDeployer::new(target(dir.path(), None));
        let first = deployer
            .deploy(&bundle("ONE"), None, "d", now())
            .await
            .unwrap();
        fs::set_permissions(
            dir.path().join("key.pem"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let again = deployer
            .deploy(&bundle("ONE"), Some(&first.record), "d", now())
            .await
            .unwrap();
        assert!(again.changed_files.is_empty());
        assert_eq!(mode(&dir.path().join("key.pem")), 0o600);
    }

    #[tokio::test]
    async fn owner_and_group_are_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = fs::metadata(dir.path()).unwrap();
        let mut files = target(dir.path(), None);
        files.owner = Some(metadata.uid().to_string());
        files.group = Some(metadata.gid().to_string());
        let deployer = FilesDeployer::new(files.clone());
        deployer
            .deploy(&bundle("ONE"), None, "d", now())
            .await
            .unwrap();
        assert_eq!(
            fs::metadata(dir.path().join("key.pem")).unwrap().uid(),
            metadata.uid()
        );

        files.owner = Some("no-such-user-certform".to_string());
        let error = FilesDeployer::new(files.clone())
            .deploy(&bundle("TWO"), None, "d", now())
            .await
            .unwrap_err();
        assert!(matches!(error, DeployError::UnknownUser { .. }));
        assert!(
            error.to_string().contains("no-such-user-certform"),
            "{error}"
        );
        assert!(
            fs::read_to_string(dir.path().join("cert.pem"))
                .unwrap()
                .contains("ONE"),
            "nothing written when the owner is unknown"
        );

        files.owner = None;
        files.group = Some("no-such-group-certform".to_string());
        let error = FilesDeployer::new(files)
            .deploy(&bundle("TWO"), None, "d", now())
            .await
            .unwrap_err();
        assert!(matches!(error, DeployError::UnknownGroup { .. }));

        assert_eq!(lookup_user("root").unwrap(), Some(0));
        assert_eq!(lookup_group("root").unwrap(), Some(0));
        assert_eq!(lookup_user("no-such-user-certform").unwrap(), None);
    }

    #[tokio::test]
    async fn bad_names_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = target(dir.path(), None);
        files.fullchain = "cert.pem".to_string();
        let error = FilesDeployer::new(files)
            .deploy(&bundle("ONE"), None, "d", now())
            .await
            .unwrap_err();
        assert!(
            matches!(error, DeployError::DuplicateFile { .. }),
            "{error}"
        );

        let mut files = target(dir.path(), None);
        files.key = "../key.pem".to_string();
        let error = FilesDeployer::new(files)
            .deploy(&bundle("ONE"), None, "d", now())
            .await
            .unwrap_err();
        assert!(
            matches!(error, DeployError::InvalidFileName { .. }),
            "{error}"
        );
    }

    #[test]
    fn bundle_debug_hides_the_key() {
        let text = format!("{:?}", bundle("ONE"));
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("***"));
    }

    #[test]
    fn deployer_for_files_target() {
        let files = target(Path::new("/srv/tls"), None);
        let deployer = crate::deploy::deployer_for(&DeployTarget::Files(files));
        assert_eq!(deployer.id(), "files:/srv/tls");
    }
}
