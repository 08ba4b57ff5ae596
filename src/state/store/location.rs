//! Where the state lives: certificate names and managed paths that cannot escape certform's
//! directories, the state directory as a git prefix, opening (or initialising) the repository,
//! and the git work tree enclosing a path (to keep private keys out of every one).

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use git2::{ErrorCode, Repository, RepositoryInitOptions};

use super::{io_error, remove_durably, Error, DIR_MODE, INIT_LOCK, MANAGED_DIRS};
use crate::atomic_file;

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

/// A certificate name usable as a file stem: nothing that could leave `certificates/`.
pub(super) fn validate_name(name: &str) -> Result<(), Error> {
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
pub(super) fn managed_relative_path(relative: &str) -> Result<PathBuf, Error> {
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
            "it must name a file under `ca/`, `certificates/` or `keys/`",
        )),
    }
}

/// `settings.dir` as a git path prefix: `""` for the top of the work tree.
pub(super) fn git_prefix(dir: &Path) -> Result<String, Error> {
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

pub(super) fn open_or_init(path: &Path) -> Result<Repository, Error> {
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
                // A run killed while creating the repository may have left the init lock.
                remove_durably(&path.join(INIT_LOCK))?;
                return Ok(repo);
            }
            Err(error) if error.code() == ErrorCode::NotFound => {}
            // Another certform is creating it right now: wait for it under the init lock.
            Err(_) if path.join(INIT_LOCK).exists() => return init_serialised(path),
            Err(source) => return Err(git("open the repository", source)),
        },
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(io_error("read", path, source)),
    }

    if let Some(enclosing) = enclosing_work_tree(path)? {
        // The work tree found may be this very repository, created by a concurrent run since
        // it was looked for above: then it is opened under the init lock, not refused.
        let itself = matches!(
            (fs::canonicalize(&enclosing.work_tree), fs::canonicalize(path)),
            (Ok(work_tree), Ok(path)) if work_tree == path
        );
        if itself {
            return init_serialised(path);
        }
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
    init_serialised(path)
}

/// `git init` in `path`, one process at a time (under an `flock` on `INIT_LOCK` in `path`):
/// two certforms starting on a new state repository at once would otherwise both write
/// `.git/config`, and one would fail on `config.lock`. The one that waited opens the
/// repository the other created.
fn init_serialised(path: &Path) -> Result<Repository, Error> {
    let git = |action: &str, source| Error::Git {
        action: action.to_string(),
        repo: path.to_path_buf(),
        source,
    };
    let lock_path = path.join(INIT_LOCK);
    loop {
        let lock = atomic_file::FileLock::acquire(&lock_path)
            .map_err(|source| io_error("lock", &lock_path, source))?;
        // The previous holder removes the file when done: a lock on a removed file would
        // exclude nobody, so take the lock again on the file now at that path.
        if !lock
            .is_at(&lock_path)
            .map_err(|source| io_error("read", &lock_path, source))?
        {
            continue;
        }
        let repository = match Repository::open(path) {
            Ok(repository) => Ok(repository),
            Err(error) if error.code() == ErrorCode::NotFound => {
                // Holding the lock, nobody else initialises this repository: lock files in a
                // half-made `.git` are a killed init's.
                for leftover in ["config.lock", "HEAD.lock"] {
                    let leftover = path.join(".git").join(leftover);
                    if let Err(error) = fs::remove_file(&leftover) {
                        if error.kind() != io::ErrorKind::NotFound {
                            return Err(io_error("remove", &leftover, error));
                        }
                    }
                }
                let mut options = RepositoryInitOptions::new();
                options.initial_head("main").no_reinit(true);
                Repository::init_opts(path, &options)
                    .map_err(|source| git("initialise a repository", source))
            }
            Err(source) => Err(git("open the repository", source)),
        };
        remove_durably(&lock_path)?;
        drop(lock);
        return repository;
    }
}

/// `path` made absolute with symbolic links resolved as far as it exists.
pub(super) fn resolve_path(path: &Path) -> Result<PathBuf, Error> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let current =
            std::env::current_dir().map_err(|source| io_error("read", Path::new("."), source))?;
        current.join(path)
    };
    let absolute = lexical_normalise(&absolute);
    let mut existing = absolute.as_path();
    let mut missing = Vec::new();
    loop {
        match fs::canonicalize(existing) {
            Ok(mut resolved) => {
                resolved.extend(missing.iter().rev());
                return Ok(resolved);
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_error("read", existing, source)),
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent;
            }
            _ => return Ok(absolute),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
            "other/x.pem",
            "keys",
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
        // `keys/` holds age-encrypted keys (`[state] keys = "age"`).
        assert_eq!(
            managed_relative_path("keys/web/create-0a0b0c0d.age").unwrap(),
            Path::new("keys/web/create-0a0b0c0d.age")
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
