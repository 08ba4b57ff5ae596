//! A cache of the local checks a `plan` repeats on every run, so that a fleet where nothing
//! changed is not read, parsed and hashed again in full:
//!
//! - the leaf facts of a public chain (serial, fingerprint, public-key digest), keyed by the
//!   SHA-256 of the chain's text: the chain is parsed once per run and once per content;
//! - the public-key digest of a private key file, keyed by the SHA-256 of the file's bytes (so
//!   the PKCS#8 parse and the public-key derivation run once per key, not once per run);
//! - the SHA-256 of a deployed file, keyed by its path and stat data (device, inode, size,
//!   mtime and ctime in nanoseconds), as git's index does: the file is re-hashed only when
//!   the stat data changed.
//!
//! Content-keyed entries cannot go stale: other bytes are another key. A stat-keyed entry is
//! only recorded for a file whose ctime is older than the run's start by a margin (git's
//! "racy" rule): any later change to the file sets its ctime to a time after that, so the
//! recorded stat data can never match a file changed after it was hashed.
//!
//! The cache holds digests only (never a secret: a SHA-256 of a key does not reveal it) and
//! lives in the state repository's git directory (`.git/certform-checks`), outside the
//! tracked state. A missing, unreadable or corrupt cache only costs speed: every check is
//! computed again. The cache is process-wide: `begin` installs it for a run, `finish` saves
//! what the run used; without `begin` every check is computed directly. Every entry is true
//! of any workspace (a digest of bytes, or of the file at an absolute path with that stat
//! data), so runs of two workspaces in one process (tests, library users) may share one.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::keys::{sha256_hex, CertificateInfo, KeyError};

/// The cache file's name in the state repository's git directory.
pub const FILE_NAME: &str = "certform-checks";

/// The first line of the cache file; another first line is an unknown format (ignored).
const HEADER: &str = "certform-checks 1";

/// How much older than the run's start a file's ctime must be for its hash to be recorded:
/// more than any file system's timestamp granularity (2 s on FAT) and the kernel's coarse
/// clock.
const RACY_MARGIN: Duration = Duration::from_secs(5);

/// The facts of a chain's leaf certificate that refresh and the key check compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafFacts {
    pub serial: crate::serial::Serial,
    /// Lowercase hex SHA-256 of the leaf's DER.
    pub sha256_fingerprint: String,
    /// Lowercase hex SHA-256 of the leaf's DER `SubjectPublicKeyInfo`.
    pub spki_sha256: String,
}

impl From<&CertificateInfo> for LeafFacts {
    fn from(info: &CertificateInfo) -> Self {
        LeafFacts {
            serial: info.serial.clone(),
            sha256_fingerprint: info.sha256_fingerprint.clone(),
            spki_sha256: info.spki_sha256.clone(),
        }
    }
}

/// One run's cache: the entries loaded from disk and those the run used or computed.
#[derive(Debug)]
pub struct CheckCache {
    /// Where the cache is saved; `None` keeps it in memory only.
    file: Option<PathBuf>,
    /// Stat-keyed entries are recorded only for files whose ctime is before this.
    trusted_before: SystemTime,
    loaded: HashMap<String, String>,
    /// Keys of loaded entries this run used.
    used: Mutex<HashSet<String>>,
    /// Entries this run computed.
    computed: Mutex<HashMap<String, String>>,
}

impl CheckCache {
    /// A cache saved at `file` (loaded from it when it holds a valid cache), for a run that
    /// started at `started`.
    pub fn new(file: Option<PathBuf>, started: SystemTime) -> CheckCache {
        let loaded = file
            .as_deref()
            .and_then(|file| fs::read_to_string(file).ok())
            .and_then(|text| parse(&text))
            .unwrap_or_default();
        CheckCache {
            file,
            trusted_before: started.checked_sub(RACY_MARGIN).unwrap_or(UNIX_EPOCH),
            loaded,
            used: Mutex::new(HashSet::new()),
            computed: Mutex::new(HashMap::new()),
        }
    }

    /// A loaded entry, marked used.
    fn get(&self, key: &str) -> Option<&str> {
        let value = self.loaded.get(key)?;
        self.mark_used(key);
        Some(value)
    }

    fn mark_used(&self, key: &str) {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_string());
    }

    fn put(&self, key: String, value: String) {
        self.computed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, value);
    }

    fn computed_value(&self, key: &str) -> Option<String> {
        self.computed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// The leaf facts of `chain` (see `keys::inspect_chain`), from the cache when this text
    /// was parsed before.
    pub fn chain_leaf(&self, chain: &str) -> Result<LeafFacts, KeyError> {
        let key = format!("c:{}", sha256_hex(chain.as_bytes()));
        let hit = self
            .get(&key)
            .map(str::to_string)
            .or_else(|| self.computed_value(&key))
            .and_then(|value| {
                let mut parts = value.split(' ');
                let facts = LeafFacts {
                    serial: crate::serial::Serial::parse(parts.next()?),
                    sha256_fingerprint: parts.next()?.to_string(),
                    spki_sha256: parts.next()?.to_string(),
                };
                parts.next().is_none().then_some(facts)
            });
        if let Some(facts) = hit {
            return Ok(facts);
        }
        let (info, _) = crate::keys::inspect_chain(chain)?;
        let facts = LeafFacts::from(&info);
        if is_token(facts.serial.as_str()) {
            self.put(
                key,
                format!(
                    "{} {} {}",
                    facts.serial, facts.sha256_fingerprint, facts.spki_sha256
                ),
            );
        }
        Ok(facts)
    }

    /// The public-key digest (lowercase hex SHA-256 of the DER SPKI) of the private key whose
    /// file holds `bytes`, from the cache when these bytes were parsed before; `None` when
    /// they are not a key certform can read.
    pub fn key_spki(&self, bytes: &[u8]) -> Option<String> {
        let key = format!("k:{}", sha256_hex(bytes));
        if let Some(spki) = self
            .get(&key)
            .map(str::to_string)
            .or_else(|| self.computed_value(&key))
        {
            return Some(spki);
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let spki = crate::keys::PrivateKey::from_pem(text).ok()?.spki_sha256();
        self.put(key, spki.clone());
        Some(spki)
    }

    /// The lowercase hex SHA-256 of the file at `path`, from the cache when its stat data
    /// (taken before reading it) is the one recorded with the hash.
    pub fn file_sha256(&self, path: &Path) -> io::Result<String> {
        let metadata = fs::metadata(path)?;
        let stamp = stamp(&metadata);
        let key = path
            .to_str()
            .filter(|p| is_path_token(p))
            .map(|p| format!("f:{p}"));
        if let Some(key) = &key {
            if let Some(value) = self.loaded.get(key) {
                if let Some(hash) = value.strip_prefix(&stamp).and_then(|v| v.strip_prefix(' ')) {
                    self.mark_used(key);
                    return Ok(hash.to_string());
                }
            }
        }
        let hash = sha256_hex(&fs::read(path)?);
        let settled =
            metadata.is_file() && ctime(&metadata).is_some_and(|ctime| ctime < self.trusted_before);
        if let (Some(key), true) = (key, settled) {
            self.put(key, format!("{stamp} {hash}"));
        }
        Ok(hash)
    }

    /// Save the entries this run used or computed (dropping the others: a certificate no
    /// longer planned, a file replaced), unless they are exactly the loaded ones. Errors
    /// are ignored: the cache only saves time.
    pub fn save(&self) {
        let Some(file) = &self.file else {
            return;
        };
        let used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        let computed = self.computed.lock().unwrap_or_else(PoisonError::into_inner);
        let unchanged = used.len() == self.loaded.len()
            && computed
                .iter()
                .all(|(key, value)| self.loaded.get(key) == Some(value));
        if unchanged {
            return;
        }
        let mut lines: Vec<String> = self
            .loaded
            .iter()
            .filter(|(key, _)| used.contains(*key) && !computed.contains_key(*key))
            .chain(computed.iter())
            .map(|(key, value)| format!("{key}\t{value}\n"))
            .collect();
        lines.sort_unstable();
        let mut text = String::with_capacity(lines.iter().map(String::len).sum::<usize>() + 32);
        text.push_str(HEADER);
        text.push('\n');
        for line in lines {
            text.push_str(&line);
        }
        if let Err(error) = crate::atomic_file::write(file, text.as_bytes(), 0o600) {
            tracing::debug!(path = %file.display(), %error, "cannot save the check cache");
        }
    }
}

/// The stat data recorded with a file's hash: device, inode, size, mtime and ctime (ns).
fn stamp(metadata: &fs::Metadata) -> String {
    format!(
        "{} {} {} {}.{} {}.{}",
        metadata.dev(),
        metadata.ino(),
        metadata.size(),
        metadata.mtime(),
        metadata.mtime_nsec(),
        metadata.ctime(),
        metadata.ctime_nsec()
    )
}

/// The file's ctime (the last change of its content or metadata, which no user can set).
fn ctime(metadata: &fs::Metadata) -> Option<SystemTime> {
    let seconds = u64::try_from(metadata.ctime()).ok()?;
    let nanos = u64::try_from(metadata.ctime_nsec()).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds) + Duration::from_nanos(nanos))
}

/// A value part that survives the line format (no separators or line breaks).
fn is_token(text: &str) -> bool {
    !text.is_empty() && !text.contains([' ', '\t', '\n', '\r'])
}

/// A path that survives the line format (no tab or line break).
fn is_path_token(text: &str) -> bool {
    !text.is_empty() && !text.contains(['\t', '\n', '\r'])
}

/// The entries of a cache file; `None` when it is not one (unknown header, a malformed line).
fn parse(text: &str) -> Option<HashMap<String, String>> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let mut entries = HashMap::new();
    for line in lines {
        let (key, value) = line.split_once('\t')?;
        if !(key.starts_with("c:") || key.starts_with("k:") || key.starts_with("f:")) {
            return None;
        }
        entries.insert(key.to_string(), value.to_string());
    }
    Some(entries)
}

/// The cache of the current run, if one was begun.
static ACTIVE: RwLock<Option<Arc<CheckCache>>> = RwLock::new(None);

fn active() -> Option<Arc<CheckCache>> {
    ACTIVE
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Install the cache for a run, loaded from the git directory `git_dir` (in memory only when
/// `None`: no state repository yet). Replaces the cache of an earlier run in this process.
pub fn begin(git_dir: Option<&Path>) {
    let cache = CheckCache::new(git_dir.map(|dir| dir.join(FILE_NAME)), SystemTime::now());
    *ACTIVE.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(cache));
}

/// Save and remove the run's cache (see `CheckCache::save`).
pub fn finish() {
    let cache = ACTIVE
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(cache) = cache {
        cache.save();
    }
}

/// `CheckCache::chain_leaf` on the run's cache, or parsed directly without one.
pub fn chain_leaf(chain: &str) -> Result<LeafFacts, KeyError> {
    match active() {
        Some(cache) => cache.chain_leaf(chain),
        None => crate::keys::inspect_chain(chain).map(|(info, _)| LeafFacts::from(&info)),
    }
}

/// `CheckCache::key_spki` on the run's cache, or parsed directly without one.
pub fn key_spki(bytes: &[u8]) -> Option<String> {
    match active() {
        Some(cache) => cache.key_spki(bytes),
        None => {
            let text = std::str::from_utf8(bytes).ok()?;
            Some(crate::keys::PrivateKey::from_pem(text).ok()?.spki_sha256())
        }
    }
}

/// `CheckCache::file_sha256` on the run's cache, or read and hashed directly without one.
pub fn file_sha256(path: &Path) -> io::Result<String> {
    match active() {
        Some(cache) => cache.file_sha256(path),
        None => Ok(sha256_hex(&fs::read(path)?)),
    }
}

#[cfg(test)]
mod tests;
