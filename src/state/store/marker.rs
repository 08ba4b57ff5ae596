//! The commit marker: a file in the git directory naming the process that is committing, so a
//! later run holding the state lock can tell a killed commit's git lock files from a live one's.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_error, remove_durably, Error, COMMIT_MARKER, FILE_MODE};
use crate::atomic_file;
use crate::state::lock::{host_name, process_start};

/// Who is committing: written to `COMMIT_MARKER` before a commit touches the repository and
/// removed after the index is updated.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CommitMarker {
    pub(super) pid: u32,
    pub(super) host: String,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat`), so a reused
    /// pid is not mistaken for the committer.
    #[serde(default)]
    pub(super) start: Option<u64>,
}

/// A written commit marker; dropping it without `finish` removes it too (an error return),
/// only a killed process leaves it behind.
pub(super) struct MarkerGuard {
    path: PathBuf,
    finished: bool,
}

impl CommitMarker {
    pub(super) fn create(git_dir: &Path) -> Result<MarkerGuard, Error> {
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
    pub(super) fn read(path: &Path) -> Result<Option<CommitMarker>, Error> {
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
    pub(super) fn is_another_live_process(&self) -> bool {
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
    pub(super) fn finish(mut self) -> Result<(), Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
