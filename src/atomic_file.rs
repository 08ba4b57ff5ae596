//! Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory.
//!
//! Used for state files, private keys and deployed files, so a reader sees either the old or
//! the new content, never a torn write, and a written file survives a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Atomically replace `path` with `bytes`, creating it with `mode` (e.g. `0o600`).
///
/// The parent directory must exist. The temp file is created with `mode` from the start, so
/// the content is never readable with wider permissions, even for a moment.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_unsynced_dir(path, bytes, mode)?;
    sync_dir(parent_of(path))
}

/// [`write`] without the final directory fsync: the content is durable and the replacement
/// atomic, but the new name is durable only once the caller fsyncs the directory
/// ([`sync_dir`]). For a batch of writes into one directory that needs one directory fsync,
/// not one per file.
pub fn write_unsynced_dir(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let temp = temp_path(path)?;
    let result = (|| {
        create_synced(&temp, bytes, mode)?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// [`write`] of what `fill` writes, streamed to the temp file (through a buffer) instead of
/// held whole in memory first.
pub fn write_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let temp = temp_path(path)?;
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        // The umask may have narrowed `mode`; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        let mut buffered = io::BufWriter::with_capacity(64 * 1024, &mut file);
        fill(&mut buffered)?;
        buffered.flush()?;
        drop(buffered);
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
        return result;
    }
    sync_dir(parent_of(path))
}

/// Create `path` with `bytes` and `mode`, durably, failing with
/// [`io::ErrorKind::AlreadyExists`] when `path` exists: the content is written and fsynced
/// under a temp name, then hard-linked to `path` (which never replaces anything, unlike a
/// rename), and the directory is fsynced. Writers of new files need no lock to pick a free name.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let parent = parent_of(path);
    let temp = temp_path(path)?;
    let result = (|| {
        create_synced(&temp, bytes, mode)?;
        fs::hard_link(&temp, path)
    })();
    let removed = fs::remove_file(&temp);
    result?;
    removed?;
    sync_dir(parent)
}

/// Write `bytes` to `path` in place (a leftover at `path` is removed first, so the file is a
/// new one with exactly `mode`) and fsync the content, without a temp file, a rename or a
/// directory fsync. Only for files nothing trusts until a later durable record vouches for
/// them (a deploy's staged files: a switch journal names each with its digest, and a staged
/// file the journal does not match is removed, never used).
pub fn write_staged(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    create_synced(path, bytes, mode)
}

/// Create `path` (never an existing file) with exactly `mode`, write `bytes` and fsync them.
fn create_synced(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    // The umask may have narrowed `mode`; set it exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A fresh temp name beside `path`: `.NAME.tmp-PID-N` ([`remove_stale_temps`] knows it).
fn temp_path(path: &Path) -> io::Result<std::path::PathBuf> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    Ok(parent_of(path).join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        unique_suffix()
    )))
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
}

/// Atomically replace `path` with `bytes` (created with `mode`) without any fsync: a reader
/// sees the old or the new content, but after a power loss the file may be empty or torn.
/// Only for files whose loss or damage costs time and nothing else (a cache that checks what
/// it reads).
pub fn write_unsynced(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let temp = temp_path(path)?;
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        // The umask may have narrowed `mode`; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        drop(file);
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Create `dir` and its parents with `mode` for the directories this call creates.
pub fn create_dir_all(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
    builder.recursive(true).create(dir)
}

/// fsync a directory so a rename or a new entry in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An exclusive `flock` on a file, held across processes until dropped (the descriptor
/// closes). Blocks until the lock is free.
pub struct FileLock {
    _file: File,
}

impl FileLock {
    pub fn acquire(path: &Path) -> io::Result<Self> {
        use std::os::fd::AsRawFd;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        loop {
            // SAFETY: `file` owns a valid open descriptor for the duration of the call.
            let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if result == 0 {
                return Ok(Self { _file: file });
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }

    /// Whether `path` still names the locked file (not removed or replaced since it was
    /// opened): a lock file its holder removes must be locked again under the new file.
    pub fn is_at(&self, path: &Path) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let held = self._file.metadata()?;
        match fs::metadata(path) {
            Ok(current) => Ok(current.dev() == held.dev() && current.ino() == held.ino()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }
}

/// A temp file older than this is stale even when a process with its pid is alive (the pid was
/// reused: a write holds its temp file for milliseconds).
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Remove temp files a dead run left behind in `dir` and its subdirectories (down to `depth`
/// levels, symlinks not followed): only names of this module's pattern, `.NAME.tmp-PID-N`,
/// whose process is not alive (or, pid reused, older than an hour), never this process's own.
/// Returns the files removed. A missing `dir` is nothing to clean.
pub fn remove_stale_temps(dir: &Path, depth: usize) -> io::Result<Vec<std::path::PathBuf>> {
    Ok(sweep(dir, depth)?.removed)
}

/// What `sweep` did in one directory tree.
#[derive(Debug, Default)]
pub struct Swept {
    /// Stale temp files removed.
    pub removed: Vec<std::path::PathBuf>,
    /// Whether `dir` itself (not its subdirectories) holds a hidden name with `certform` in it
    /// that is not one of this module's temp files (a deploy switch's journal or staged
    /// file, say): what a target's recovery looks for.
    pub certform_files: bool,
}

/// `remove_stale_temps`, also noting whether `dir` holds certform's own hidden files (see
/// `Swept::certform_files`), from the same listing.
pub fn sweep(dir: &Path, depth: usize) -> io::Result<Swept> {
    let mut swept = Swept::default();
    let removed = &mut swept.removed;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Swept::default()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let file_type = entry.file_type()?;
        let path = entry.path();
        if file_type.is_dir() {
            if depth > 0 {
                removed.extend(remove_stale_temps(&path, depth - 1)?);
            }
            continue;
        }
        if !file_type.is_file() {
            continue;
        }
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(temp_pid) else {
            if file_name_has_certform(&file_name) {
                swept.certform_files = true;
            }
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let old = entry
            .metadata()?
            .modified()
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old || !process_alive(pid) {
            match fs::remove_file(&path) {
                Ok(()) => removed.push(path),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
    }
    if !removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok(swept)
}

fn file_name_has_certform(name: &std::ffi::OsStr) -> bool {
    let name = name.as_encoded_bytes();
    name.starts_with(b".") && name.windows(8).any(|part| part == b"certform")
}

/// The pid in a temp file name `.NAME.tmp-PID-N`, or `None` for any other name.
fn temp_pid(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?;
    let (name, tail) = rest.rsplit_once(".tmp-")?;
    let (pid, counter) = tail.split_once('-')?;
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if name.is_empty() || !digits(pid) || !digits(counter) {
        return None;
    }
    pid.parse().ok().filter(|pid| *pid > 0)
}

/// Whether a process with `pid` exists on this host.
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_sweep_notes_certform_hidden_files_but_not_temps_or_plain_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cert.pem"), "c").unwrap();
        fs::write(dir.path().join(".profile"), "p").unwrap();
        fs::create_dir(dir.path().join(".certform-dir")).unwrap();
        // A live process's temp file (this one's) is neither removed nor a certform file.
        let temp = format!(".cert.pem.tmp-{}-1", std::process::id());
        fs::write(dir.path().join(&temp), "t").unwrap();
        let swept = sweep(dir.path(), 0).unwrap();
        assert!(!swept.certform_files && swept.removed.is_empty());
        for name in [".certform-switch-0123456789ab", ".cert.pem.certform-next"] {
            fs::write(dir.path().join(name), "x").unwrap();
            assert!(sweep(dir.path(), 0).unwrap().certform_files, "{name}");
            fs::remove_file(dir.path().join(name)).unwrap();
        }
        assert!(
            !sweep(&dir.path().join("missing"), 0)
                .unwrap()
                .certform_files
        );
    }
    use super::*;

    #[test]
    fn writes_with_exact_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write(&path, b"one", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write(&path, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }

    #[test]
    fn write_unsynced_replaces_with_exact_mode_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        write_unsynced(&path, b"one", 0o644).unwrap();
        write_unsynced(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
        let missing = dir.path().join("no/such/dir/cache");
        assert!(write_unsynced(&missing, b"x", 0o600).is_err());
    }

    #[test]
    fn write_new_never_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lo-1.json");
        write_new(&path, b"first", 0o600).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let taken = write_new(&path, b"second", 0o600).unwrap_err();
        assert_eq!(taken.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"first");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("lo-1.json")]);
    }

    #[test]
    fn write_staged_replaces_a_leftover_with_a_new_file_of_exact_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".cert.pem.certform-next");
        fs::write(&path, "a longer leftover of a killed run").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        write_staged(&path, b"new", 0o640).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        write_unsynced_dir(&dir.path().join("journal"), b"j", 0o600).unwrap();
        assert_eq!(fs::read(dir.path().join("journal")).unwrap(), b"j");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2, "no temp left");
    }

    #[test]
    fn temp_names_are_recognised_strictly() {
        assert_eq!(temp_pid(".key.pem.tmp-123-4"), Some(123));
        assert_eq!(temp_pid(".a.tmp-b.tmp-77-0"), Some(77));
        for other in [
            "key.pem",
            ".key.pem",
            "key.pem.tmp-1-2",
            ".key.pem.tmp-1",
            ".key.pem.tmp-x-2",
            ".key.pem.tmp-1-2x",
            "..tmp-1-2",
            ".key.pem.tmp-0-1",
        ] {
            assert_eq!(temp_pid(other), None, "{other}");
        }
    }

    #[test]
    fn stale_temps_of_dead_runs_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("web");
        fs::create_dir(&sub).unwrap();
        // A pid that is certainly dead: a child that has exited and been reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = sub.join(format!(".create-00112233.key.tmp-{dead}-0"));
        let own = dir.path().join(format!(".x.tmp-{}-5", std::process::id()));
        let alive = dir.path().join(".y.tmp-1-0");
        let user = dir.path().join("backup.key");
        let lookalike = dir.path().join(format!(".z.tmp-{dead}"));
        for path in [&stale, &own, &alive, &user, &lookalike] {
            fs::write(path, "x").unwrap();
        }
        let removed = remove_stale_temps(dir.path(), 2).unwrap();
        assert_eq!(removed, vec![stale.clone()]);
        assert!(!stale.exists());
        for kept in [&own, &alive, &user, &lookalike] {
            assert!(kept.exists(), "{}", kept.display());
        }
        assert_eq!(
            remove_stale_temps(&dir.path().join("none"), 2).unwrap(),
            Vec::<std::path::PathBuf>::new()
        );
        // Depth 0 does not descend.
        fs::write(&stale, "x").unwrap();
        assert!(remove_stale_temps(dir.path(), 0).unwrap().is_empty());
        assert!(stale.exists());
    }
}
