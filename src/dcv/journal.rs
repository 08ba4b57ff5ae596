//! The record of HTTP validation files placed in web roots and not yet removed, so that a run
//! killed between placing and removing (or one whose removal failed) leaves nothing behind:
//! the next `apply` removes what the record names before it plans.
//!
//! The record is one JSON file beside the state lock, inside the state repository's git
//! directory (local to this machine, never committed). Each entry says where the file went —
//! a `dcv = { webroot }` directory or a deploy target with a web root, with the target's
//! settings, so the file can be removed even once the target has left the config — and the
//! file's path below `.well-known/`. An entry is written (fsynced) before its file is placed
//! and dropped once the file is removed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::deploy::web_root::{LocalWebRoot, WebRoot, WellKnownPath};
use crate::spec::DeployTarget;

/// The record's file name in the state repository's git directory.
pub const FILE_NAME: &str = "certform-dcv-files";

/// Where a validation file was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// `dcv = { method = "http", webroot = "..." }`: a directory on this machine.
    Webroot(PathBuf),
    /// The web root of a deploy target (`via`, or derived from `serves`).
    Target(Box<DeployTarget>),
}

impl Place {
    /// The web root to write in or remove from; `None` for a target without one.
    pub fn web_root(&self) -> Option<Box<dyn WebRoot>> {
        match self {
            Place::Webroot(root) => Some(Box::new(LocalWebRoot { root: root.clone() })),
            Place::Target(target) => crate::deploy::web_root::web_root_of(target),
        }
    }

    /// For messages: the target's id, or the webroot directory.
    pub fn describe(&self) -> String {
        match self {
            Place::Webroot(root) => format!("webroot `{}`", root.display()),
            Place::Target(target) => format!("`{}`", target.id()),
        }
    }
}

/// One validation file placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub place: Place,
    pub file: WellKnownPath,
}

/// The record file; entries are added and dropped one at a time, by several certificates'
/// validations at once.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Journal {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Record `entry` (before its file is placed).
    pub fn add(&self, entry: &Placed) -> std::io::Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut entries = read(&self.path);
        if !entries.iter().any(|other| same(other, entry)) {
            entries.push(entry.clone());
        }
        write(&self.path, &entries)
    }

    /// Drop `entry` (its file is gone).
    pub fn forget(&self, entry: &Placed) -> std::io::Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut entries = read(&self.path);
        entries.retain(|other| !same(other, entry));
        write(&self.path, &entries)
    }
}

/// Whether two entries name the same file in the same place, as recorded: settings that are
/// not recorded (a target's `relative_dir`) do not tell them apart.
fn same(a: &Placed, b: &Placed) -> bool {
    a.file == b.file && serde_json::to_value(&a.place).ok() == serde_json::to_value(&b.place).ok()
}

/// The entries recorded at `path`; a missing or unreadable record holds none.
fn read(path: &Path) -> Vec<Placed> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
            tracing::warn!(path = %path.display(), %error, "ignoring an unreadable record of validation files");
            Vec::new()
        }),
        Err(_) => Vec::new(),
    }
}

/// Replace the record with `entries` (removed when there are none).
fn write(path: &Path, entries: &[Placed]) -> std::io::Result<()> {
    if entries.is_empty() {
        return match std::fs::remove_file(path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        };
    }
    let bytes = serde_json::to_vec_pretty(entries).map_err(std::io::Error::other)?;
    crate::atomic_file::write(path, &bytes, 0o600)
}

/// Remove every validation file the record at `path` names (left by a killed run, or whose
/// removal failed); returns one line per file removed or still not removable (kept for the
/// next run).
pub async fn sweep(path: &Path) -> Vec<String> {
    let entries = read(path);
    if entries.is_empty() {
        return Vec::new();
    }
    let mut notes = Vec::new();
    let mut kept = Vec::new();
    for entry in entries {
        let shown = entry.file.as_str().to_string();
        let removed = match entry.place.web_root() {
            Some(root) => root
                .remove(&entry.file)
                .await
                .map(|()| root.describe(&entry.file)),
            None => Err("the target has no web root".to_string()),
        };
        match removed {
            Ok(where_) => notes.push(format!(
                "removed the validation file `.well-known/{shown}` an earlier run left on {} (`{where_}`)",
                entry.place.describe()
            )),
            Err(message) => {
                notes.push(format!(
                    "cannot remove the validation file `.well-known/{shown}` an earlier run left on {}: {message} (tried again next run)",
                    entry.place.describe()
                ));
                kept.push(entry);
            }
        }
    }
    if let Err(error) = write(path, &kept) {
        notes.push(format!(
            "cannot update the record of validation files `{}`: {error}",
            path.display()
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_recorded_file_is_swept_and_the_record_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("www");
        let journal = Journal::new(dir.path().join(FILE_NAME));
        let file = WellKnownPath::from_url_path("/.well-known/acme-challenge/t1").expect("path");
        let entry = Placed {
            place: Place::Webroot(root.clone()),
            file: file.clone(),
        };
        journal.add(&entry).expect("add");
        journal.add(&entry).expect("add twice");
        LocalWebRoot { root: root.clone() }
            .put(&file, b"t1.k")
            .await
            .expect("put");
        assert_eq!(read(&dir.path().join(FILE_NAME)), vec![entry.clone()]);

        let notes = sweep(&dir.path().join(FILE_NAME)).await;
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("removed the validation file `.well-known/acme-challenge/t1`"));
        assert!(!file.under(&root).exists());
        assert!(!dir.path().join(FILE_NAME).exists());
        assert!(sweep(&dir.path().join(FILE_NAME)).await.is_empty());

        journal.add(&entry).expect("add");
        journal.forget(&entry).expect("forget");
        assert!(!dir.path().join(FILE_NAME).exists());
    }

    #[test]
    fn a_target_entry_is_forgotten_though_its_unrecorded_settings_differ() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::new(dir.path().join(FILE_NAME));
        let target = crate::spec::FilesTarget {
            dir: dir.path().join("out"),
            relative_dir: Some(PathBuf::from("out")),
            cert: "cert.pem".into(),
            chain: "chain.pem".into(),
            fullchain: "fullchain.pem".into(),
            key: "privkey.pem".into(),
            mode: 0o644,
            key_mode: 0o600,
            owner: None,
            group: None,
            reload: None,
            reload_timeout: time::Duration::seconds(60),
            combined: None,
            cleanup: false,
            web_root: Some(dir.path().join("www")),
            verify: None,
        };
        let entry = Placed {
            place: Place::Target(Box::new(DeployTarget::Files(target))),
            file: WellKnownPath::from_url_path("/.well-known/acme-challenge/t2").expect("path"),
        };
        journal.add(&entry).expect("add");
        journal.add(&entry).expect("add again");
        assert_eq!(read(&dir.path().join(FILE_NAME)).len(), 1);
        journal.forget(&entry).expect("forget");
        assert!(!dir.path().join(FILE_NAME).exists());
    }
}
