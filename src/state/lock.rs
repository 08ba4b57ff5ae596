//! The state repository's lock: one writing run (`apply`, `import`) at a time, and no lock-out
//! after a crash.
//!
//! The lock is a file in the repository's git directory (`.git/certform.lock`), so it is never
//! tracked, committed or pushed. It records who holds it: command, pid, host, user, since, and
//! the two facts that tell a running holder from a dead one on this host: the start time of its
//! process (field 22 of `/proc/PID/stat`, so a reused pid does not pass for the holder) and the
//! kernel's boot id (after a reboot every recorded pid is dead).
//!
//! The holder also keeps an exclusive `flock` on the lock file for the life of its run. The
//! kernel drops it when the process dies, however it dies, so a held `flock` cannot lie: it
//! proves a live holder even where pids mislead (another pid namespace sharing the repository,
//! a host name changed under a running process). And it makes a takeover atomic: the file at
//! the lock path is replaced or removed only by whoever holds that file's `flock`, so of two
//! runs racing to take over a dead holder's lock, one wins and the other finds the winner.
//!
//! A holder is dead only when nobody holds the file's `flock` and its process is gone on this
//! host (no such pid, a zombie, another start time, another boot). Then the lock is taken over
//! at once and the caller says so. A holder that runs, or that runs on another host (which
//! cannot be checked from here), is waited for up to the caller's timeout, then reported.
//! Locks written before start times were recorded are judged by their pid alone.
//!
//! A new lock is written in full to a temporary file, locked, and then hard-linked to the lock
//! path, so the lock path never shows a half-written or unlocked file.

mod process;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use self::process::{boot_id, probe, Probe};
pub(crate) use self::process::{host_name, process_start};
use super::store::Error;
use crate::atomic_file;

/// Name of the lock file inside the repository's git directory.
pub const LOCK_FILE: &str = "certform.lock";

/// Prefix of the temporary files a new lock is written to before it is linked into place.
const TEMPORARY_PREFIX: &str = "certform.lock.tmp-";

/// How often a waiting run looks at the lock again.
const POLL: Duration = Duration::from_millis(200);

/// How often, 10 ms apart, a held `flock` is looked at again before the holder is judged
/// running: another run may hold it for an instant while it inspects or takes over the lock.
const INSPECTION_RETRIES: u32 = 5;

/// Bound on how often the lock path may change under us in one attempt.
const CHANGE_RETRIES: u32 = 1_000;

const HEADER: &str = "# certform lock: a run holds the state repository; a dead holder's \
                      lock is taken over by the next run\n";

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// `$USER` of the holder, when it was set.
    #[serde(default)]
    pub user: Option<String>,
    /// What the holder runs, e.g. `certform apply`.
    pub command: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Start time of the holder's process in clock ticks after boot (field 22 of
    /// `/proc/PID/stat`); absent in locks written before certform recorded it, or where
    /// `/proc` is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`) when the lock was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

impl LockHolder {
    /// The holder record for this process running `command`.
    pub fn current(command: &str) -> LockHolder {
        let now = OffsetDateTime::now_utc();
        let pid = std::process::id();
        LockHolder {
            pid,
            host: host_name(),
            user: std::env::var("USER").ok().filter(|user| !user.is_empty()),
            command: command.to_string(),
            since: now.replace_nanosecond(0).unwrap_or(now),
            started: match probe(pid) {
                Probe::Running { started } => started,
                Probe::Gone => None,
            },
            boot_id: boot_id(),
        }
    }

    /// Whether the holder's process still runs, judged from its pid, start time and boot id
    /// alone (the lock file's `flock` is the caller's business).
    pub fn liveness(&self) -> Liveness {
        process_liveness(self, &host_name(), boot_id().as_deref())
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = self
            .since
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|_| fmt::Error)?;
        write!(f, "`{}` (pid {} on {}", self.command, self.pid, self.host)?;
        if let Some(user) = &self.user {
            write!(f, ", user {user}")?;
        }
        write!(f, ", since {since})")
    }
}

/// Whether a lock's holder still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It runs on this host: its `flock` is held, or its pid runs with the recorded start time.
    Running,
    /// Its pid runs on this host, but the lock does not record a start time (an older
    /// certform wrote it), so that process may be another that reuses the pid.
    PidRunning,
    /// It runs on another host, where its liveness cannot be checked from here.
    OtherHost,
    /// It is dead on this host.
    Dead(Death),
}

/// How a holder is known to be dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Death {
    /// No process has its pid (or only a zombie does).
    Exited,
    /// Its pid belongs to a process started at another time.
    PidReused,
    /// The host rebooted since the lock was taken.
    Rebooted,
}

impl Death {
    /// Why the holder with `pid` is dead, as a sentence fragment.
    pub fn describe(self, pid: u32) -> String {
        match self {
            Death::Exited => format!("pid {pid} is no longer running"),
            Death::PidReused => {
                format!("pid {pid} now belongs to a process started after the lock was taken")
            }
            Death::Rebooted => "the host rebooted since the lock was taken".to_string(),
        }
    }
}

/// The end of "locked by HOLDER" for a holder that was not taken over.
pub(crate) fn describe_busy(liveness: Liveness, waited: Duration) -> String {
    let state = match liveness {
        Liveness::Running => ", which is still running".to_string(),
        Liveness::PidRunning => {
            ", whose pid still runs (the lock predates start times, so certform cannot tell \
             whether that process is still the holder)"
                .to_string()
        }
        Liveness::OtherHost => {
            ", on another host: certform cannot check from here whether it still runs".to_string()
        }
        Liveness::Dead(_) => ", which is no longer running".to_string(),
    };
    if waited >= Duration::from_millis(1) {
        format!("{state}; waited {:.1}s", waited.as_secs_f64())
    } else {
        state
    }
}

/// Why `certform unlock --force` leaves a lock alone.
pub(crate) fn describe_held(holder: Option<&LockHolder>, liveness: Liveness) -> String {
    let Some(holder) = holder else {
        return "a running process holds its lock file".to_string();
    };
    match liveness {
        Liveness::PidRunning => format!(
            "its holder {holder} may still run: pid {} runs, and the lock predates start \
             times, so certform cannot tell whether that process is still the holder",
            holder.pid
        ),
        _ => format!("its holder {holder} is still running on this host"),
    }
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    path: PathBuf,
    /// The lock file, open and `flock`ed for as long as the guard lives.
    file: File,
    holder: LockHolder,
    taken_over: Option<(LockHolder, Death)>,
}

impl LockGuard {
    /// The record written into the lock file.
    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dead holder whose lock this run took over, and how it is known to be dead.
    pub fn taken_over(&self) -> Option<&(LockHolder, Death)> {
        self.taken_over.as_ref()
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // While we hold our file's `flock` no other certform replaces or removes the file at
        // the lock path, so it is ours unless something outside the protocol touched it.
        match same_file(&self.file, &self.path) {
            Ok(true) => {
                if let Err(error) = fs::remove_file(&self.path) {
                    tracing::warn!(
                        path = %self.path.display(),
                        %error,
                        "failed to remove the state lock"
                    );
                }
            }
            Ok(false) => tracing::warn!(
                path = %self.path.display(),
                "state lock was broken and taken by another run; leaving it in place"
            ),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(path = %self.path.display(), "state lock was broken while held")
            }
            Err(error) => tracing::warn!(
                path = %self.path.display(),
                %error,
                "failed to look at the state lock before releasing it"
            ),
        }
        // Closing `self.file` afterwards releases the `flock`.
    }
}

/// A lock broken by `certform unlock --force`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLock {
    /// The holder it recorded; `None` when the file was unreadable.
    pub holder: Option<LockHolder>,
    /// Why breaking it was allowed: `Dead` or `OtherHost`; `None` when unreadable.
    pub liveness: Option<Liveness>,
}

/// Take the lock in `git_dir` for `command`, waiting up to `wait` for a running holder (or one
/// on another host); a dead holder's lock is taken over at once. `repo` names the repository in
/// errors.
pub(crate) fn acquire(
    git_dir: &Path,
    repo: &Path,
    command: &str,
    wait: Duration,
) -> Result<LockGuard, Error> {
    let path = git_dir.join(LOCK_FILE);
    let mut holder = LockHolder::current(command);
    let host = host_name();
    let boot = boot_id();
    sweep_temporary_files(git_dir);
    let mut temporary = Temporary::create(git_dir, &render(&holder, &path)?)?;
    let started = Instant::now();
    loop {
        match attempt(&path, repo, &mut temporary, &host, boot.as_deref())? {
            Attempt::Taken { file, taken_over } => {
                return Ok(LockGuard {
                    path,
                    file,
                    holder,
                    taken_over,
                })
            }
            Attempt::Busy {
                holder: other,
                liveness,
            } => {
                let waited = started.elapsed();
                if waited >= wait {
                    return Err(Error::Locked {
                        repo: repo.to_path_buf(),
                        path,
                        holder: Box::new(other),
                        liveness,
                        // Looking twice at a busy `flock` is not waiting.
                        waited: if wait.is_zero() { wait } else { waited },
                    });
                }
                thread::sleep(POLL.min(wait - waited));
                // Record when the lock is taken, not when the wait began.
                holder = LockHolder::current(command);
                temporary = Temporary::create(git_dir, &render(&holder, &path)?)?;
            }
        }
    }
}

enum Attempt {
    Taken {
        file: File,
        taken_over: Option<(LockHolder, Death)>,
    },
    Busy {
        holder: LockHolder,
        liveness: Liveness,
    },
}

/// One try at the lock: link our file into place, or take over a dead holder's, or report the
/// live one.
fn attempt(
    path: &Path,
    repo: &Path,
    temporary: &mut Temporary,
    host: &str,
    boot: Option<&str>,
) -> Result<Attempt, Error> {
    let io_error = |action: &'static str, source: io::Error| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let mut contention = 0;
    for _ in 0..CHANGE_RETRIES {
        match fs::hard_link(&temporary.path, path) {
            Ok(()) => {
                let file = temporary.linked(path)?;
                return Ok(Attempt::Taken {
                    file,
                    taken_over: None,
                });
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(io_error("create the lock file", source)),
        }
        match inspect(path).map_err(|source| io_error("read the lock file", source))? {
            Found::Gone => {}
            Found::Held(_) if contention < INSPECTION_RETRIES => {
                contention += 1;
                thread::sleep(Duration::from_millis(10));
            }
            Found::Held(Ok(holder)) => {
                return Ok(Attempt::Busy {
                    holder,
                    liveness: Liveness::Running,
                })
            }
            Found::Held(Err(reason)) | Found::Free(_, Err(reason)) => {
                return Err(Error::LockUnreadable {
                    repo: repo.to_path_buf(),
                    path: path.to_path_buf(),
                    reason,
                })
            }
            Found::Free(existing, Ok(holder)) => {
                match process_liveness(&holder, host, boot) {
                    Liveness::Dead(death) => {
                        // We hold `existing`'s `flock`: nobody else replaces it meanwhile.
                        let file = temporary.replace(path)?;
                        drop(existing);
                        return Ok(Attempt::Taken {
                            file,
                            taken_over: Some((holder, death)),
                        });
                    }
                    liveness => return Ok(Attempt::Busy { holder, liveness }),
                }
            }
        }
    }
    Err(io_error(
        "take the lock",
        io::Error::other("the lock file kept changing"),
    ))
}

/// Remove the lock in `git_dir` unless its holder runs on this host (`certform unlock
/// --force`); `None` when there was no lock.
pub(crate) fn break_lock(git_dir: &Path, repo: &Path) -> Result<Option<BrokenLock>, Error> {
    let path = git_dir.join(LOCK_FILE);
    let io_error = |action: &'static str, source: io::Error| Error::Io {
        action,
        path: path.clone(),
        source,
    };
    let host = host_name();
    let boot = boot_id();
    let mut contention = 0;
    for _ in 0..CHANGE_RETRIES {
        let (file, holder) = match inspect(&path).map_err(|e| io_error("read the lock file", e))? {
            Found::Gone => match fs::symlink_metadata(&path) {
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
                _ => continue,
            },
            Found::Held(_) if contention < INSPECTION_RETRIES => {
                contention += 1;
                thread::sleep(Duration::from_millis(10));
                continue;
            }
            Found::Held(holder) => {
                return Err(Error::LockHeld {
                    repo: repo.to_path_buf(),
                    path,
                    holder: holder.ok().map(Box::new),
                    liveness: Liveness::Running,
                })
            }
            Found::Free(file, holder) => (file, holder),
        };
        let broken = match holder {
            Ok(holder) => match process_liveness(&holder, &host, boot.as_deref()) {
                liveness @ (Liveness::Running | Liveness::PidRunning) => {
                    return Err(Error::LockHeld {
                        repo: repo.to_path_buf(),
                        path,
                        holder: Some(Box::new(holder)),
                        liveness,
                    })
                }
                liveness => BrokenLock {
                    holder: Some(holder),
                    liveness: Some(liveness),
                },
            },
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "removing an unreadable state lock");
                BrokenLock {
                    holder: None,
                    liveness: None,
                }
            }
        };
        // Removed while we hold its `flock`, so it is the file we judged.
        fs::remove_file(&path).map_err(|e| io_error("remove the lock file", e))?;
        atomic_file::sync_dir(git_dir).map_err(|source| Error::Io {
            action: "sync",
            path: git_dir.to_path_buf(),
            source,
        })?;
        drop(file);
        return Ok(Some(broken));
    }
    Err(io_error(
        "break the lock",
        io::Error::other("the lock file kept changing"),
    ))
}

/// What is at the lock path.
enum Found {
    /// Nothing, or the file changed while we looked: look again.
    Gone,
    /// Another process holds the file's `flock`; what the file records.
    Held(Result<LockHolder, String>),
    /// Nobody held its `flock`: we hold it now (as long as the `File` lives).
    Free(File, Result<LockHolder, String>),
}

fn inspect(path: &Path) -> io::Result<Found> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Found::Gone),
        Err(error) => return Err(error),
    };
    let locked = try_flock(&file)?;
    // The file we opened may have been replaced or removed before we locked it.
    match same_file(&file, path) {
        Ok(true) => {}
        Ok(false) => return Ok(Found::Gone),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Found::Gone),
        Err(error) => return Err(error),
    }
    let holder = read_holder(&mut file);
    Ok(if locked {
        Found::Free(file, holder)
    } else {
        Found::Held(holder)
    })
}

/// What the lock file records, or why it cannot be read; never panics on any content.
fn read_holder(file: &mut File) -> Result<LockHolder, String> {
    let mut bytes = Vec::new();
    // A lock file is a few hundred bytes; more is not a lock certform wrote.
    file.take(64 * 1024)
        .read_to_end(&mut bytes)
        .map_err(|error| error.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    if text.trim().is_empty() {
        return Err("it is empty".to_string());
    }
    toml::from_str::<LockHolder>(&text).map_err(|error| error.message().trim_end().to_string())
}

/// A new lock file before it is linked into place: written in full, synced and `flock`ed.
#[derive(Debug)]
struct Temporary {
    path: PathBuf,
    file: Option<File>,
}

impl Temporary {
    fn create(git_dir: &Path, content: &[u8]) -> Result<Temporary, Error> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = git_dir.join(format!(
            "{TEMPORARY_PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let io_error = |source: io::Error| Error::Io {
            action: "create the lock file",
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .map_err(io_error)?;
        // From here on, dropping `temporary` on an error removes the file.
        let mut temporary = Temporary {
            path: path.clone(),
            file: Some(file),
        };
        let file = temporary.file.as_mut().ok_or_else(|| {
            io_error(io::Error::other("the temporary lock file was already used"))
        })?;
        match try_flock(file) {
            Ok(true) => {}
            Ok(false) => {
                return Err(io_error(io::Error::other(
                    "a new lock file was locked by another process",
                )))
            }
            Err(source) => return Err(io_error(source)),
        }
        file.write_all(content)
            .and_then(|()| file.sync_all())
            .map_err(io_error)?;
        Ok(temporary)
    }

    /// After the link to the lock path: drop the temporary name and return the lock's file.
    fn linked(&mut self, lock: &Path) -> Result<File, Error> {
        let file = self.take_file(lock)?;
        if let Err(error) = fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "failed to remove a temporary lock file");
        }
        sync_parent(lock)?;
        Ok(file)
    }

    /// Replace the file at the lock path (a dead holder's) with ours, atomically.
    fn replace(&mut self, lock: &Path) -> Result<File, Error> {
        fs::rename(&self.path, lock).map_err(|source| Error::Io {
            action: "take over the lock file",
            path: lock.to_path_buf(),
            source,
        })?;
        let file = self.take_file(lock)?;
        sync_parent(lock)?;
        Ok(file)
    }

    fn take_file(&mut self, lock: &Path) -> Result<File, Error> {
        self.file.take().ok_or_else(|| Error::Io {
            action: "take the lock",
            path: lock.to_path_buf(),
            source: io::Error::other("the temporary lock file was already used"),
        })
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        // Still holding the file: it was never linked into place.
        if self.file.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Remove temporary lock files whose creator died between writing and linking them.
fn sweep_temporary_files(git_dir: &Path) {
    let Ok(entries) = fs::read_dir(git_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMPORARY_PREFIX)) else {
            continue;
        };
        let Some(Ok(pid)) = rest.split('-').next().map(str::parse::<u32>) else {
            continue;
        };
        if pid != std::process::id() && probe(pid) == Probe::Gone {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn sync_parent(path: &Path) -> Result<(), Error> {
    match path.parent() {
        Some(parent) => atomic_file::sync_dir(parent).map_err(|source| Error::Io {
            action: "sync",
            path: parent.to_path_buf(),
            source,
        }),
        None => Ok(()),
    }
}

fn render(holder: &LockHolder, path: &Path) -> Result<Vec<u8>, Error> {
    let body = toml::to_string(holder).map_err(|error| Error::Io {
        action: "prepare the lock file",
        path: path.to_path_buf(),
        source: io::Error::other(error),
    })?;
    Ok(format!("{HEADER}{body}").into_bytes())
}

/// Take `file`'s exclusive `flock` without waiting: `false` when another open file holds it.
fn try_flock(file: &File) -> io::Result<bool> {
    loop {
        // SAFETY: the descriptor belongs to `file`, which outlives the call.
        let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if result == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(error),
        }
    }
}

/// Whether the open `file` is the one at `path` now.
fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    let open = file.metadata()?;
    let there = fs::metadata(path)?;
    Ok(open.dev() == there.dev() && open.ino() == there.ino())
}

/// Whether `holder`'s process runs, on a host named `host` booted as `boot`.
fn process_liveness(holder: &LockHolder, host: &str, boot: Option<&str>) -> Liveness {
    if holder.host != host {
        return Liveness::OtherHost;
    }
    if let (Some(recorded), Some(current)) = (holder.boot_id.as_deref(), boot) {
        if recorded != current {
            return Liveness::Dead(Death::Rebooted);
        }
    }
    match (probe(holder.pid), holder.started) {
        (Probe::Gone, _) => Liveness::Dead(Death::Exited),
        (Probe::Running { started: Some(now) }, Some(recorded)) if now != recorded => {
            Liveness::Dead(Death::PidReused)
        }
        (Probe::Running { started: Some(_) }, Some(_)) => Liveness::Running,
        // No start time to compare: the pid alone says the holder may run.
        (Probe::Running { .. }, _) => Liveness::PidRunning,
    }
}

#[cfg(test)]
mod tests;
