//! The state repository's lock: one apply at a time.
//!
//! The lock is a file in the repository's git directory (`.git/certform.lock`), so it is never
//! tracked, committed or pushed. It is created with `create_new` and holds who took it (pid,
//! host, user, command, since). Dropping the `LockGuard` removes it; `certform unlock --force`
//! removes it explicitly. A stale lock (a killed run) is never broken automatically.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::store::Error;
use crate::atomic_file;

/// Name of the lock file inside the repository's git directory.
pub const LOCK_FILE: &str = "certform.lock";

const HEADER: &str = "# certform lock: a run holds the state repository; \
                      `certform unlock --force` removes it\n";

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
}

impl LockHolder {
    /// The holder record for this process running `command`.
    pub fn current(command: &str) -> LockHolder {
        let now = OffsetDateTime::now_utc();
        LockHolder {
            pid: std::process::id(),
            host: host_name(),
            user: std::env::var("USER").ok().filter(|user| !user.is_empty()),
            command: command.to_string(),
            since: now.replace_nanosecond(0).unwrap_or(now),
        }
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

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    path: PathBuf,
    content: Vec<u8>,
    holder: LockHolder,
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
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Remove the file only while it is still ours: after `unlock --force` another run may
        // hold a lock of its own under the same name.
        match fs::read(&self.path) {
            Ok(content) if content == self.content => {
                if let Err(error) = fs::remove_file(&self.path) {
                    tracing::warn!(
                        path = %self.path.display(),
                        %error,
                        "failed to remove the state lock"
                    );
                }
            }
            Ok(_) => tracing::warn!(
                path = %self.path.display(),
                "state lock was broken and taken by another run; leaving it in place"
            ),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(path = %self.path.display(), "state lock was broken while held")
            }
            Err(error) => tracing::warn!(
                path = %self.path.display(),
                %error,
                "failed to read the state lock before releasing it"
            ),
        }
    }
}

/// Take the lock in `git_dir` for `command`; `repo` names the repository in errors.
pub(crate) fn acquire(git_dir: &Path, repo: &Path, command: &str) -> Result<LockGuard, Error> {
    let path = git_dir.join(LOCK_FILE);
    let holder = LockHolder::current(command);
    let content = render(&holder, &path)?;
    // A lock released between our failed create and our read is simply retried.
    for _ in 0..3 {
        match create(&path, &content) {
            Ok(()) => {
                return Ok(LockGuard {
                    path,
                    content,
                    holder,
                })
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(Error::Io {
                    action: "create the lock file",
                    path,
                    source,
                })
            }
        }
        match read_holder(&path, repo)? {
            Some(holder) => {
                return Err(Error::Locked {
                    repo: repo.to_path_buf(),
                    holder,
                })
            }
            None => continue,
        }
    }
    Err(Error::Io {
        action: "create the lock file",
        path,
        source: io::Error::other("the lock kept appearing and disappearing"),
    })
}

/// Remove the lock in `git_dir` whoever holds it; returns the holder it recorded, `None` when
/// there was no lock or its content could not be read.
pub(crate) fn break_lock(git_dir: &Path, repo: &Path) -> Result<Option<LockHolder>, Error> {
    let path = git_dir.join(LOCK_FILE);
    let holder = match read_holder(&path, repo) {
        Ok(holder) => holder,
        Err(Error::LockUnreadable { path, reason, .. }) => {
            tracing::warn!(path = %path.display(), %reason, "removing an unreadable state lock");
            None
        }
        Err(error) => return Err(error),
    };
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                action: "remove the lock file",
                path,
                source,
            })
        }
    }
    atomic_file::sync_dir(git_dir).map_err(|source| Error::Io {
        action: "sync",
        path: git_dir.to_path_buf(),
        source,
    })?;
    Ok(holder)
}

fn render(holder: &LockHolder, path: &Path) -> Result<Vec<u8>, Error> {
    let body = toml::to_string(holder).map_err(|error| Error::Io {
        action: "prepare the lock file",
        path: path.to_path_buf(),
        source: io::Error::other(error),
    })?;
    Ok(format!("{HEADER}{body}").into_bytes())
}

fn create(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)?;
    let written = file.write_all(content).and_then(|()| file.sync_all());
    if let Err(error) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(error);
    }
    if let Some(parent) = path.parent() {
        atomic_file::sync_dir(parent)?;
    }
    Ok(())
}

/// The holder recorded in the lock file; `None` when there is no lock file.
fn read_holder(path: &Path, repo: &Path) -> Result<Option<LockHolder>, Error> {
    let mut attempt = 0;
    loop {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(Error::LockUnreadable {
                    repo: repo.to_path_buf(),
                    path: path.to_path_buf(),
                    reason: error.to_string(),
                })
            }
        };
        match toml::from_str::<LockHolder>(&text) {
            Ok(holder) => return Ok(Some(holder)),
            // The holder may have created the file and not yet written it: look once more.
            Err(_) if attempt == 0 => {
                attempt += 1;
                thread::sleep(Duration::from_millis(100));
            }
            Err(error) => {
                return Err(Error::LockUnreadable {
                    repo: repo.to_path_buf(),
                    path: path.to_path_buf(),
                    reason: error.message().trim_end().to_string(),
                })
            }
        }
    }
}

fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: `buffer` is valid for writes of `buffer.len()` bytes for the whole call.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return "unknown host".to_string();
    }
    // Without a NUL the name was truncated to the whole buffer.
    let end = buffer
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_display_names_command_pid_host_user_and_time() {
        let holder = LockHolder {
            pid: 123,
            host: "ci-7".to_string(),
            user: Some("alice".to_string()),
            command: "certform apply".to_string(),
            since: time::macros::datetime!(2026-05-01 12:00:00 UTC),
        };
        assert_eq!(
            holder.to_string(),
            "`certform apply` (pid 123 on ci-7, user alice, since 2026-05-01T12:00:00Z)"
        );
    }

    #[test]
    fn unreadable_lock_is_reported_and_can_be_broken() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LOCK_FILE), "garbage").unwrap();
        let error = acquire(dir.path(), Path::new("/x/state"), "certform apply").unwrap_err();
        assert!(
            matches!(error, Error::LockUnreadable { .. }),
            "unexpected: {error}"
        );
        assert!(error.to_string().contains("certform.lock"), "{error}");
        assert_eq!(break_lock(dir.path(), Path::new("/x/state")).unwrap(), None);
        let guard = acquire(dir.path(), Path::new("/x/state"), "certform apply").unwrap();
        assert!(guard.path().exists());
    }

    #[test]
    fn guard_leaves_a_lock_taken_over_by_another_run() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Path::new("/x/state");
        let guard = acquire(dir.path(), repo, "certform apply").unwrap();
        assert!(break_lock(dir.path(), repo).unwrap().is_some());
        let second = acquire(dir.path(), repo, "certform apply --second").unwrap();
        drop(guard);
        let error = acquire(dir.path(), repo, "certform plan").unwrap_err();
        assert!(error.to_string().contains("--second"), "{error}");
        drop(second);
        assert!(!dir.path().join(LOCK_FILE).exists());
    }
}
