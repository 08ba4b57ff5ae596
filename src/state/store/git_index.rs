//! Writing to git for a commit: HEAD and the branch (moved only from the parent it was read
//! at), and index entries kept in step with HEAD for certform's paths and nothing else.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use git2::{Commit, ErrorCode, Index, IndexEntry, IndexTime, ObjectType, Oid, Repository, Tree};

use super::{io_error, Error, GitStore};

impl GitStore {
    /// HEAD's commit, `None` on an unborn branch.
    pub(super) fn head_commit<'r>(
        &self,
        repo: &'r Repository,
    ) -> Result<Option<Commit<'r>>, Error> {
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
    pub(super) fn update_head(
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

    /// What the index should hold for each of `paths`: HEAD's blob and mode (absent when
    /// HEAD has no such file). Each directory's tree is read once: a lookup by full path reads
    /// `certificates/` (two entries per certificate) again for every file, which made a
    /// commit of 1,000 renewals quadratic.
    pub(super) fn head_entries(
        repo: &Repository,
        tree: Option<&Tree<'_>>,
        paths: &BTreeSet<String>,
    ) -> HashMap<String, (Oid, u32)> {
        let mut found = HashMap::new();
        let Some(tree) = tree else {
            return found;
        };
        let mut dirs: HashMap<&str, Option<Tree<'_>>> = HashMap::new();
        for git_path in paths {
            let (dir, name) = git_path.rsplit_once('/').unwrap_or(("", git_path));
            let subtree = dirs.entry(dir).or_insert_with(|| {
                if dir.is_empty() {
                    return Some(tree.clone());
                }
                let entry = tree.get_path(Path::new(dir)).ok()?;
                (entry.kind() == Some(ObjectType::Tree))
                    .then(|| repo.find_tree(entry.id()).ok())
                    .flatten()
            });
            let Some(entry) = subtree.as_ref().and_then(|subtree| subtree.get_name(name)) else {
                continue;
            };
            if entry.kind() == Some(ObjectType::Blob) {
                let mode = u32::try_from(entry.filemode()).unwrap_or(0o100644);
                found.insert(git_path.clone(), (entry.id(), mode));
            }
        }
        found
    }

    /// The paths among `paths` whose index entry differs from HEAD's (`head_entries`), or is
    /// conflicted.
    pub(super) fn index_mismatches(
        index: &Index,
        head: &HashMap<String, (Oid, u32)>,
        paths: &BTreeSet<String>,
    ) -> Vec<String> {
        paths
            .iter()
            .filter(|git_path| {
                let path = Path::new(git_path.as_str());
                let staged = index.get_path(path, 0).map(|entry| (entry.id, entry.mode));
                let conflicted = (1..=3).any(|stage| index.get_path(path, stage).is_some());
                conflicted || staged != head.get(git_path.as_str()).copied()
            })
            .cloned()
            .collect()
    }

    /// Make the index entries of `paths` match HEAD (a file HEAD lacks leaves the index), and
    /// nothing else; returns the paths changed. The user's other staged and unstaged changes
    /// stay exactly as they were.
    pub(super) fn sync_index(
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
        let head = Self::head_entries(repo, tree.as_ref(), paths);
        let changed = Self::index_mismatches(&index, &head, paths);
        if changed.is_empty() {
            return Ok(changed);
        }
        for git_path in &changed {
            remove_from_index(&mut index, git_path)
                .map_err(|source| self.git(format!("unstage `{git_path}`"), source))?;
            if let Some(&(id, mode)) = head.get(git_path.as_str()) {
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
    pub(super) fn index_entry(
        &self,
        git_path: &str,
        id: Oid,
        mode: u32,
    ) -> Result<IndexEntry, Error> {
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
}

/// Remove every stage of `git_path` from `index`; a missing entry is fine.
pub(super) fn remove_from_index(index: &mut Index, git_path: &str) -> Result<(), git2::Error> {
    for stage in 0..=3 {
        match index.remove(Path::new(git_path), stage) {
            Ok(()) => {}
            Err(error) if error.code() == ErrorCode::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn index_time(seconds: i64, nanoseconds: i64) -> IndexTime {
    // The index stores 32-bit times, as git does.
    IndexTime::new(seconds as i32, nanoseconds as u32)
}
