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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::keys::{sha256_hex, CertificateInfo, KeyError};

/// The cache file's name in the state repository's git directory.
pub const FILE_NAME: &str = "certform-checks";

/// The first line of the cache file; another first line is an unknown format (ignored).
const HEADER: &str = "certform-checks 1";

/// How much older than the run's start a file's ctime must be for its hash to be recorded:
/// more than any file system's timestamp granularity (2 s on FAT) and the kernel's coarse
/// clock.
pub(crate) const RACY_MARGIN: Duration = Duration::from_secs(5);

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

/// The digest of a content-keyed entry: a chain's text (`c:`) or a key file's bytes (`k:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ContentKey {
    Chain([u8; 32]),
    Key([u8; 32]),
}

impl ContentKey {
    /// The key as the cache file writes it: `c:<hex>` or `k:<hex>`.
    fn text(&self) -> String {
        match self {
            ContentKey::Chain(digest) => format!("c:{}", hex::encode(digest)),
            ContentKey::Key(digest) => format!("k:{}", hex::encode(digest)),
        }
    }

    /// A `c:`/`k:` key of the cache file; `None` for another key or a digest that is not 64
    /// hex digits.
    fn parse(text: &str) -> Option<ContentKey> {
        let (kind, digest) = text.split_at_checked(2)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(digest, &mut bytes).ok()?;
        match kind {
            "c:" => Some(ContentKey::Chain(bytes)),
            "k:" => Some(ContentKey::Key(bytes)),
            _ => None,
        }
    }
}

/// The kinds of stat-keyed entries, each a value derived from the file at a path and recorded
/// with that file's stat data: `f:` a deployed file's SHA-256, `s:` a private key file's
/// public-key digest, `p:` a state chain file's leaf facts, `o:` a local CA order file's view.
const STAT_KINDS: [&str; 4] = ["f:", "s:", "p:", "o:"];

/// The SHA-256 of `bytes`, as bytes (the cache keys on it; no hex string per lookup).
fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// The entries of a cache file: its text, and each entry line's offsets in it, sorted by key
/// (the file is written sorted, so loading only checks the order). An entry's index in
/// `lines` is its index in `used`. No entry is copied out of the text: at 10,000
/// certificates the file holds ~70,000 entries (~13 MB). A lookup hashes the key and looks
/// in `slots` (a binary search over the text's lines was ~9 % of a 10,000-certificate
/// `plan`: its 17 steps each touch a line far from the last in a 13 MB text).
#[derive(Debug, Default)]
struct Entries {
    text: String,
    /// Per entry line: where its key starts, where its tab is and where the line ends.
    lines: Vec<(u32, u32, u32)>,
    /// Open addressing over `lines` by `key_hash` (linear probing, at most half full): a
    /// line's index plus one, 0 for an empty slot. Empty when there are no lines.
    slots: Vec<u32>,
    /// Lines dropped as an earlier copy of a key listed again (the last one is kept): the
    /// file is then rewritten without them.
    dropped: usize,
}

impl Entries {
    fn len(&self) -> usize {
        self.lines.len()
    }

    fn key(&self, line: &(u32, u32, u32)) -> &str {
        &self.text[line.0 as usize..line.1 as usize]
    }

    fn value(&self, line: &(u32, u32, u32)) -> &str {
        &self.text[line.1 as usize + 1..line.2 as usize]
    }

    /// The value recorded under `key` and the entry's index.
    fn get(&self, key: &str) -> Option<(&str, usize)> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut at = key_hash(key) as usize & mask;
        loop {
            let index = (*self.slots.get(at)? as usize).checked_sub(1)?;
            let line = self.lines.get(index)?;
            if self.key(line) == key {
                return Some((self.value(line), index));
            }
            at = (at + 1) & mask;
        }
    }

    /// Fill `slots` from `lines` (whose keys are distinct).
    fn index(&mut self) {
        if self.lines.is_empty() {
            self.slots = Vec::new();
            return;
        }
        let size = (self.lines.len() * 2).next_power_of_two();
        let mask = size - 1;
        let mut slots = vec![0u32; size];
        for (index, line) in self.lines.iter().enumerate() {
            let mut at = key_hash(self.key(line)) as usize & mask;
            while slots[at] != 0 {
                at = (at + 1) & mask;
            }
            // In range: there are fewer lines than bytes in a text whose length fits in a u32.
            slots[at] = index as u32 + 1;
        }
        self.slots = slots;
    }

    /// Every entry as (key, value, index).
    fn iter(&self) -> impl Iterator<Item = (&str, &str, usize)> {
        self.lines
            .iter()
            .enumerate()
            .map(|(index, line)| (self.key(line), self.value(line), index))
    }
}

/// The entries a run computed (they replace loaded entries with the same key when saved).
#[derive(Debug, Default)]
struct Computed {
    content: HashMap<ContentKey, Box<str>>,
    files: HashMap<Box<str>, Box<str>>,
    /// Content keys whose value this run recorded under a file's stat data as well (a chain
    /// or key file found by `chain_at` or `key_spki_at`): the stat-keyed entry answers the
    /// next run without reading the file, so the content-keyed one is not saved (at 10,000
    /// certificates 20,000 entries, ~4 MB the next run would load and drop).
    covered: HashSet<ContentKey>,
}

/// The entries loaded from a cache file, and whether this run used each, by the index stored
/// with it.
#[derive(Debug, Default)]
struct Loaded {
    entries: Entries,
    used: Vec<AtomicBool>,
}

impl Loaded {
    /// The cache file at `file` (empty when there is none, or it is unreadable or corrupt).
    fn read(file: Option<&Path>) -> Loaded {
        let entries = file
            .and_then(|file| fs::read_to_string(file).ok())
            .and_then(parse)
            .unwrap_or_default();
        let used = (0..entries.len()).map(|_| AtomicBool::new(false)).collect();
        Loaded { entries, used }
    }
}

/// One run's cache: the entries loaded from disk and those the run used or computed.
#[derive(Debug)]
pub struct CheckCache {
    /// Where the cache is saved; `None` keeps it in memory only.
    file: Option<PathBuf>,
    /// Stat-keyed entries are recorded only for files whose ctime is before this.
    trusted_before: SystemTime,
    /// The loaded entries, once read (`loading` reads them in the background).
    loaded: OnceLock<Loaded>,
    /// The thread reading the cache file, until the first look at the entries joins it.
    loading: Mutex<Option<std::thread::JoinHandle<Loaded>>>,
    /// Entries this run computed.
    computed: Mutex<Computed>,
    /// Installed ahead of its run by `prefetch`, and not yet taken by its `begin`.
    prefetched: AtomicBool,
}

impl CheckCache {
    /// A cache saved at `file` (loaded from it when it holds a valid cache), for a run that
    /// started at `started`.
    pub fn new(file: Option<PathBuf>, started: SystemTime) -> CheckCache {
        let loaded = OnceLock::new();
        let _ = loaded.set(Loaded::read(file.as_deref()));
        CheckCache::with(file, started, loaded, None)
    }

    /// A cache like `new`'s whose file is read on a thread of its own, so the caller goes on
    /// (reading state) meanwhile; the first look at its entries waits for the read.
    pub fn in_background(file: Option<PathBuf>, started: SystemTime) -> CheckCache {
        let path = file.clone();
        let spawned = std::thread::Builder::new()
            .name("check-cache".into())
            .spawn(move || Loaded::read(path.as_deref()));
        match spawned {
            Ok(handle) => CheckCache::with(file, started, OnceLock::new(), Some(handle)),
            // No thread to spare: read it here.
            Err(_) => CheckCache::new(file, started),
        }
    }

    fn with(
        file: Option<PathBuf>,
        started: SystemTime,
        loaded: OnceLock<Loaded>,
        loading: Option<std::thread::JoinHandle<Loaded>>,
    ) -> CheckCache {
        CheckCache {
            file,
            trusted_before: started.checked_sub(RACY_MARGIN).unwrap_or(UNIX_EPOCH),
            loaded,
            loading: Mutex::new(loading),
            computed: Mutex::new(Computed::default()),
            prefetched: AtomicBool::new(false),
        }
    }

    /// The loaded entries, waiting for the background read if it is still running (a read
    /// that panicked is an empty cache: it only costs speed).
    fn loaded(&self) -> &Loaded {
        self.loaded.get_or_init(|| {
            let handle = self
                .loading
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            handle
                .and_then(|handle| handle.join().ok())
                .unwrap_or_default()
        })
    }

    fn mark_used(&self, index: usize) {
        if let Some(flag) = self.loaded().used.get(index) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    fn computed(&self) -> std::sync::MutexGuard<'_, Computed> {
        self.computed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of a content-keyed entry, loaded (then marked used) or computed this run.
    fn content_value(&self, key: &ContentKey) -> Option<Box<str>> {
        if let Some((value, index)) = self.loaded().entries.get(&key.text()) {
            self.mark_used(index);
            return Some(value.into());
        }
        self.computed().content.get(key).cloned()
    }

    /// A computed entry by its key as the file writes it (`c:<hex>`, `k:<hex>`, `f:<path>`...).
    #[cfg(test)]
    fn computed_value(&self, key: &str) -> Option<String> {
        let computed = self.computed();
        match is_stat_key(key) {
            true => computed.files.get(key).map(|value| value.to_string()),
            false => computed
                .content
                .get(&ContentKey::parse(key)?)
                .map(|value| value.to_string()),
        }
    }

    /// The leaf facts of `chain` (see `keys::inspect_chain`), from the cache when this text
    /// was parsed before.
    pub fn chain_leaf(&self, chain: &str) -> Result<LeafFacts, KeyError> {
        self.chain_leaf_by(ContentKey::Chain(digest(chain.as_bytes())), chain)
    }

    /// `chain_leaf` of `chain`, whose content key is `key`.
    fn chain_leaf_by(&self, key: ContentKey, chain: &str) -> Result<LeafFacts, KeyError> {
        let hit = self
            .content_value(&key)
            .and_then(|value| parse_facts(&value));
        if let Some(facts) = hit {
            return Ok(facts);
        }
        let (info, _) = crate::keys::inspect_chain(chain)?;
        let facts = LeafFacts::from(&info);
        if is_token(facts.serial.as_str()) {
            let value = facts_value(&facts);
            self.computed().content.insert(key, value.into());
        }
        Ok(facts)
    }

    /// The public-key digest (lowercase hex SHA-256 of the DER SPKI) of the private key whose
    /// file holds `bytes`, from the cache when these bytes were parsed before; `None` when
    /// they are not a key certform can read.
    pub fn key_spki(&self, bytes: &[u8]) -> Option<String> {
        self.key_spki_by(ContentKey::Key(digest(bytes)), bytes)
    }

    /// `key_spki` of `bytes`, whose content key is `key`.
    fn key_spki_by(&self, key: ContentKey, bytes: &[u8]) -> Option<String> {
        if let Some(spki) = self.content_value(&key) {
            return Some(spki.into());
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let spki = crate::keys::PrivateKey::from_pem(text).ok()?.spki_sha256();
        self.computed().content.insert(key, spki.as_str().into());
        Some(spki)
    }

    /// The lowercase hex SHA-256 of the file at `path`, from the cache when its stat data
    /// (taken before reading it) is the one recorded with the hash.
    pub fn file_sha256(&self, path: &Path) -> io::Result<String> {
        let probe = self.probe("f:", path)?;
        if let Some(hash) = probe.hit() {
            return Ok(hash.to_string());
        }
        let hash = sha256_hex(&fs::read(path)?);
        let _ = self.record(probe, hash.clone());
        Ok(hash)
    }

    /// The stat data of the file at `path` (taken before the caller reads it) and the
    /// `kind` entry recorded with exactly that stat data, if any (then marked used).
    fn probe(&self, kind: &'static str, path: &Path) -> io::Result<Probe> {
        let metadata = fs::metadata(path)?;
        let stamp = stamp(&metadata);
        let key = path
            .to_str()
            .filter(|p| is_path_token(p))
            .map(|path| format!("{kind}{path}"));
        let mut hit = None;
        let entries = &self.loaded().entries;
        if let Some((value, index)) = key.as_deref().and_then(|key| entries.get(key)) {
            if let Some(found) = value.strip_prefix(&stamp).and_then(|v| v.strip_prefix(' ')) {
                self.mark_used(index);
                hit = Some(found.to_string());
            }
        }
        if hit.is_none() {
            if let Some(value) = key
                .as_deref()
                .and_then(|key| self.computed().files.get(key).cloned())
            {
                hit = value
                    .strip_prefix(&stamp)
                    .and_then(|v| v.strip_prefix(' '))
                    .map(str::to_string);
            }
        }
        let settled =
            metadata.is_file() && ctime(&metadata).is_some_and(|ctime| ctime < self.trusted_before);
        Ok(Probe {
            key: key.filter(|_| settled),
            stamp,
            hit,
        })
    }

    /// Record `value` for the file `probe` looked at, unless the file is not settled (git's
    /// racy rule) or `value` does not survive the line format: whether it was recorded.
    fn record(&self, probe: Probe, value: String) -> bool {
        let (Some(key), true) = (probe.key, is_path_token(&value)) else {
            return false;
        };
        self.computed()
            .files
            .insert(key.into(), format!("{} {value}", probe.stamp).into());
        true
    }

    /// `record`, and when recorded the content-keyed entry `content` the value came from is
    /// not saved (`Computed::covered`).
    fn record_covering(&self, probe: Probe, value: String, content: ContentKey) {
        if self.record(probe, value) {
            self.computed().covered.insert(content);
        }
    }

    /// The leaf facts of the state chain file at `path`, from the cache when its stat data is
    /// the one recorded with them (`Chain::Known`), else its text as `read` returns it. Facts
    /// are recorded only for a chain that holds no private key and parses.
    pub fn chain_at<E>(
        &self,
        path: &Path,
        read: impl FnOnce() -> Result<Option<String>, E>,
    ) -> Result<Option<Chain>, E> {
        let Ok(probe) = self.probe("p:", path) else {
            return read().map(|text| text.map(Chain::Text));
        };
        if let Some(facts) = probe.hit().and_then(parse_facts) {
            return Ok(Some(Chain::Known(facts)));
        }
        let Some(text) = read()? else {
            return Ok(None);
        };
        if !text.contains("PRIVATE KEY-----") {
            let content = ContentKey::Chain(digest(text.as_bytes()));
            if let Ok(facts) = self.chain_leaf_by(content, &text) {
                if is_token(facts.serial.as_str()) {
                    self.record_covering(probe, facts_value(&facts), content);
                }
            }
        }
        Ok(Some(Chain::Text(text)))
    }

    /// The public-key digest of the private key file at `path` (see `key_spki`), from the
    /// cache when its stat data is the one recorded with it; `None` when it cannot be read or
    /// is not a key certform can read.
    pub fn key_spki_at(&self, path: &Path) -> Option<String> {
        let probe = self.probe("s:", path).ok()?;
        if let Some(spki) = probe.hit() {
            return Some(spki.to_string());
        }
        let bytes = fs::read(path).ok()?;
        let content = ContentKey::Key(digest(&bytes));
        let spki = self.key_spki_by(content, &bytes)?;
        self.record_covering(probe, spki.clone(), content);
        Some(spki)
    }

    /// Save the entries this run used or computed (dropping the others: a certificate no
    /// longer planned, a file replaced), unless they are exactly the loaded ones. Errors
    /// are ignored: the cache only saves time.
    pub fn save(&self) {
        let Some(file) = &self.file else {
            return;
        };
        let Loaded {
            entries: loaded,
            used: flags,
        } = self.loaded();
        let used = |index: &usize| {
            flags
                .get(*index)
                .is_some_and(|flag| flag.load(Ordering::Relaxed))
        };
        let computed = self.computed();
        let all_used = flags.iter().all(|flag| flag.load(Ordering::Relaxed));
        let unchanged = all_used
            && loaded.dropped == 0
            && computed.covered.is_empty()
            && computed.content.iter().all(|(key, value)| {
                loaded.get(&key.text()).map(|(loaded, _)| loaded) == Some(&**value)
            })
            && computed
                .files
                .iter()
                .all(|(key, value)| loaded.get(key).map(|(loaded, _)| loaded) == Some(&**value));
        if unchanged {
            return;
        }
        // A loaded entry is left out when this run computed it again, or (content-keyed) a
        // stat-keyed entry recorded this run covers it.
        let replaced = |key: &str| match is_stat_key(key) {
            true => computed.files.contains_key(key),
            false => ContentKey::parse(key).is_some_and(|key| {
                computed.content.contains_key(&key) || computed.covered.contains(&key)
            }),
        };
        // The lines as (key, value) pairs borrowed from the loaded text and the computed maps,
        // not a string each: at 10,000 certificates ~70,000 lines, ~14 MB more at the end of
        // a run that holds everything else as well.
        let content_keys: Vec<(String, &str)> = computed
            .content
            .iter()
            .filter(|(key, _)| !computed.covered.contains(key))
            .map(|(key, value)| (key.text(), &value[..]))
            .collect();
        let mut lines: Vec<(&str, &str)> =
            Vec::with_capacity(loaded.len() + content_keys.len() + computed.files.len());
        for (key, value, index) in loaded.iter() {
            if used(&index) && !replaced(key) {
                lines.push((key, value));
            }
        }
        lines.extend(
            content_keys
                .iter()
                .map(|(key, value)| (key.as_str(), *value)),
        );
        lines.extend(
            computed
                .files
                .iter()
                .map(|(key, value)| (&key[..], &value[..])),
        );
        lines.sort_unstable_by(line_order);
        // Streamed to the file: the new text is not held whole beside the loaded one.
        let written = crate::atomic_file::write_with(file, 0o600, |out| {
            out.write_all(HEADER.as_bytes())?;
            out.write_all(b"\n")?;
            for (key, value) in &lines {
                out.write_all(key.as_bytes())?;
                out.write_all(b"\t")?;
                out.write_all(value.as_bytes())?;
                out.write_all(b"\n")?;
            }
            Ok(())
        });
        if let Err(error) = written {
            tracing::debug!(path = %file.display(), %error, "cannot save the check cache");
        }
    }
}

/// The order of two lines by their whole text (`key\tvalue`), as the file has always been
/// sorted.
fn line_order(left: &(&str, &str), right: &(&str, &str)) -> std::cmp::Ordering {
    fn bytes<'a>((key, value): &(&'a str, &'a str)) -> impl Iterator<Item = u8> + 'a {
        key.bytes()
            .chain(std::iter::once(b'\t'))
            .chain(value.bytes())
    }
    bytes(left).cmp(bytes(right))
}

/// What `probe` found for a file: the key to record under (`None`: not recordable, the file
/// is not settled or its path not a token), the file's stat data, and the value recorded
/// with exactly that stat data.
struct Probe {
    key: Option<String>,
    stamp: String,
    hit: Option<String>,
}

impl Probe {
    fn hit(&self) -> Option<&str> {
        self.hit.as_deref()
    }
}

/// A state chain file as `chain_at` found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chain {
    /// Unchanged since its leaf facts were recorded: not read.
    Known(LeafFacts),
    /// Read: its text.
    Text(String),
}

/// Whether `key` is the key of a stat-keyed entry (`f:<path>` and the other `STAT_KINDS`).
fn is_stat_key(key: &str) -> bool {
    STAT_KINDS.iter().any(|kind| key.starts_with(kind))
}

/// Leaf facts as an entry's value: `<serial> <fingerprint> <spki digest>`.
fn facts_value(facts: &LeafFacts) -> String {
    format!(
        "{} {} {}",
        facts.serial, facts.sha256_fingerprint, facts.spki_sha256
    )
}

/// The leaf facts of an entry's value (see `facts_value`).
fn parse_facts(value: &str) -> Option<LeafFacts> {
    let mut parts = value.split(' ');
    let facts = LeafFacts {
        serial: crate::serial::Serial::parse(parts.next()?),
        sha256_fingerprint: parts.next()?.to_string(),
        spki_sha256: parts.next()?.to_string(),
    };
    parts.next().is_none().then_some(facts)
}

/// The stat data recorded with a file's hash (and a state record, `state::store::parsed_cache`):
/// device, inode, size, mtime and ctime (ns).
pub(crate) fn stamp(metadata: &fs::Metadata) -> String {
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
pub(crate) fn ctime(metadata: &fs::Metadata) -> Option<SystemTime> {
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
fn parse(text: String) -> Option<Entries> {
    let header = text.split_once('\n')?.0;
    if header != HEADER || u32::try_from(text.len()).is_err() {
        return None;
    }
    let mut lines = Vec::with_capacity(text.bytes().filter(|byte| *byte == b'\n').count());
    let mut start = header.len() + 1;
    while start < text.len() {
        let end = text[start..]
            .find('\n')
            .map_or(text.len(), |offset| start + offset);
        let line = &text[start..end];
        let tab = start + line.find('\t')?;
        let key = &text[start..tab];
        if !is_stat_key(key) {
            ContentKey::parse(key)?;
        }
        // In range: the text's length fits in a u32.
        lines.push((start as u32, tab as u32, end as u32));
        start = end + 1;
    }
    let key = |line: &(u32, u32, u32)| &text[line.0 as usize..line.1 as usize];
    if !lines.is_sorted_by(|a, b| key(a) <= key(b)) {
        // Stable: of a key listed twice, the last line stays last.
        lines.sort_by(|a, b| key(a).cmp(key(b)));
    }
    let before = lines.len();
    // Of equal keys keep the last line: `dedup_by` keeps the first of a run, so look from
    // the end.
    lines.reverse();
    lines.dedup_by(|later, earlier| key(later) == key(earlier));
    lines.reverse();
    let dropped = before - lines.len();
    let mut entries = Entries {
        text,
        lines,
        slots: Vec::new(),
        dropped,
    };
    entries.index();
    Some(entries)
}

/// FNV-1a over the key's bytes, its high half folded in (the table takes the low bits): keys
/// are paths and digests a run reads from its own cache file, so no adversary chooses them.
fn key_hash(key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^ (hash >> 32)
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
/// `None`: no state repository yet). Replaces the cache of an earlier run in this process,
/// except one `prefetch` installed for this run from the same directory, which it takes.
pub fn begin(git_dir: Option<&Path>) {
    let file = git_dir.map(|dir| dir.join(FILE_NAME));
    let mut active = ACTIVE.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(cache) = active.as_ref() {
        if file.is_some() && cache.file == file && cache.prefetched.swap(false, Ordering::SeqCst) {
            return;
        }
    }
    *active = Some(Arc::new(CheckCache::new(file, SystemTime::now())));
}

/// Start reading the cache of the git directory `git_dir` in the background, for a run that
/// will `begin` with it soon (a 10,000-certificate cache is ~13 MB, read while the state is
/// handed over and refresh starts). The run's start for git's racy rule is now, earlier than
/// `begin`'s: only more conservative.
pub fn prefetch(git_dir: &Path) {
    let cache = CheckCache::in_background(Some(git_dir.join(FILE_NAME)), SystemTime::now());
    cache.prefetched.store(true, Ordering::SeqCst);
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

/// `CheckCache::chain_at` on the run's cache, or `read` without one.
pub fn chain_at<E>(
    path: &Path,
    read: impl FnOnce() -> Result<Option<String>, E>,
) -> Result<Option<Chain>, E> {
    match active() {
        Some(cache) => cache.chain_at(path, read),
        None => read().map(|text| text.map(Chain::Text)),
    }
}

/// `CheckCache::key_spki_at` on the run's cache, or read and parsed directly without one.
pub fn key_spki_at(path: &Path) -> Option<String> {
    match active() {
        Some(cache) => cache.key_spki_at(path),
        None => key_spki(&fs::read(path).ok()?),
    }
}

/// A value derived from the file at `path` (`kind` is one of `STAT_KINDS`): `from_cache` of
/// the entry recorded with the file's stat data when there is one and it reads back, else
/// `derive` of what `read` returns; `derive` also gives the entry to record (a text without
/// tab or line break), `None` to record nothing. Without a cache, or when the file cannot be
/// stat'ed, always `derive` of `read()`.
pub fn by_stat<R, T, E>(
    kind: &'static str,
    path: &Path,
    read: impl FnOnce() -> Result<R, E>,
    derive: impl FnOnce(R) -> Result<(T, Option<String>), E>,
    from_cache: impl FnOnce(&str) -> Option<T>,
) -> Result<T, E> {
    debug_assert!(STAT_KINDS.contains(&kind));
    let probe = active().and_then(|cache| Some((cache.probe(kind, path).ok()?, cache)));
    let Some((probe, cache)) = probe else {
        return derive(read()?).map(|(value, _)| value);
    };
    if let Some(value) = probe.hit().and_then(from_cache) {
        return Ok(value);
    }
    let (value, text) = derive(read()?)?;
    if let Some(text) = text {
        let _ = cache.record(probe, text);
    }
    Ok(value)
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
