//! The parsed-state cache: each state file's parsed record, kept beside the repository in the
//! git directory (`.git/certform-state-cache`, mode 0600, never tracked) in JSON, which is
//! several times cheaper to read than the TOML it came from, keyed by the file's stat data.
//!
//! An entry is used only when the state file's stat data (device, inode, size, mtime and
//! ctime in nanoseconds, taken with one `stat` and no `open`) is exactly the recorded one,
//! as git's index does; any write to the file changes its ctime, which no user can set back,
//! and certform's own writes replace the file (a new inode). An entry is recorded only for a
//! file whose ctime is older than the load's start by a margin (git's "racy" rule, as in
//! `check_cache`): a change made after the file was read always sets a ctime after that, so
//! it can never match a recorded entry. A miss of any kind (no entry, other stat data, an
//! entry that does not decode) reads and parses the file as without the cache, so a hand edit
//! gets exactly the same error with file, line and column.
//!
//! The file: a header line naming the cache format and certform's version (another version's
//! cache is ignored: the record's fields may have changed), a line with the certificates
//! directory it describes (another directory's cache is ignored), one line per entry
//! (`<name>\t<stat data>\t<JSON record>`), and a last line `end <entries>`, so a truncated
//! file is not a cache. A missing, unreadable, corrupt or foreign cache only costs time: the
//! files are parsed and the cache is written again. Any run that loads the state may write it
//! (atomically: a temp file renamed over it), holding the lock or not: every entry is true of
//! its file whoever wrote it, so two runs racing leave one complete, valid cache.
//!
//! Performs file I/O; the record encoding round-trips exactly or the record is not cached
//! (checked when an entry is made).

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::SystemTime;

use super::{io_error, parse_certificate, Error};
use crate::check_cache::{ctime, stamp};
use crate::state::model::CertificateState;

/// The cache file's name in the state repository's git directory.
pub const FILE_NAME: &str = "certform-state-cache";

/// The first line of the cache file: format and the version of certform that wrote it.
fn header() -> String {
    format!("certform-state-cache 1 {}", env!("CARGO_PKG_VERSION"))
}

/// How much older than the load's start a state file's ctime must be for its record to be
/// cached: the check cache's margin.
pub(crate) use crate::check_cache::RACY_MARGIN;

/// A valid cache file, indexed: by certificate name, the stat data recorded and where the
/// entry's line is in the file. The records are not held in memory (at 10,000 certificates
/// the file is ~19 MB): each is read from the open file when its state file's stat data
/// matches, and decoded at once. The file stays open, so a cache another run replaces
/// meanwhile is still read whole from the one this index describes.
#[derive(Debug, Default)]
pub struct Cache {
    file: Option<fs::File>,
    entries: HashMap<Box<str>, Entry>,
}

#[derive(Debug, Clone)]
pub struct Entry {
    stamp: Box<str>,
    /// Where the line starts in the file, and its length (without the line break).
    line_at: u64,
    line_len: u32,
    /// Where the JSON record starts within the line.
    json_at: u32,
}

impl Cache {
    /// The cache in `file` when it is a complete cache of the certificates directory
    /// `directory`; `None` for anything else (another format, version or directory, a
    /// malformed or truncated file, a read error). The file is read once, a buffer at a time.
    pub fn scan(file: fs::File, directory: &str) -> Option<Cache> {
        (&file).seek(io::SeekFrom::Start(0)).ok()?;
        let mut reader = io::BufReader::with_capacity(1 << 16, &file);
        let mut line = Vec::new();
        let mut offset = 0u64;
        let mut next = |line: &mut Vec<u8>| -> Option<Option<u64>> {
            line.clear();
            let read = reader.read_until(b'\n', line).ok()?;
            if read == 0 {
                return Some(None);
            }
            // Every line ends with a line break, the last one too.
            line.pop().filter(|&end| end == b'\n')?;
            let at = offset;
            offset += read as u64;
            Some(Some(at))
        };
        next(&mut line)??;
        if line != header().as_bytes() {
            return None;
        }
        next(&mut line)??;
        if line.strip_prefix(b"directory\t")? != directory.as_bytes() {
            return None;
        }
        let mut entries = HashMap::new();
        let count = loop {
            let at = next(&mut line)??;
            let Some(tab) = line.iter().position(|&b| b == b'\t') else {
                // The last line: `end <entries>`, and nothing after it.
                let count: usize = std::str::from_utf8(line.strip_prefix(b"end ")?)
                    .ok()?
                    .parse()
                    .ok()?;
                if next(&mut line)?.is_some() {
                    return None;
                }
                break count;
            };
            let name = std::str::from_utf8(&line[..tab]).ok()?;
            let rest = &line[tab + 1..];
            let stamp_len = rest.iter().position(|&b| b == b'\t')?;
            let stamp = std::str::from_utf8(&rest[..stamp_len]).ok()?;
            let entry = Entry {
                stamp: stamp.into(),
                line_at: at,
                line_len: u32::try_from(line.len()).ok()?,
                json_at: u32::try_from(tab + 1 + stamp_len + 1).ok()?,
            };
            entries.insert(Box::from(name), entry);
        };
        drop(reader);
        (entries.len() == count).then_some(Cache {
            file: Some(file),
            entries,
        })
    }

    /// The cache in the file at `path`, if it is one (`scan`).
    pub fn open(path: &Path, directory: &str) -> Option<Cache> {
        Cache::scan(fs::File::open(path).ok()?, directory)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes `from..from + len` of the cache file.
    fn bytes(&self, from: u64, len: usize) -> Option<Vec<u8>> {
        let file = self.file.as_ref()?;
        let mut bytes = vec![0; len];
        file.read_exact_at(&mut bytes, from).ok()?;
        Some(bytes)
    }

    /// The JSON record of `entry`, read from the file.
    fn json(&self, entry: &Entry) -> Option<Vec<u8>> {
        let json_len = entry.line_len.checked_sub(entry.json_at)?;
        self.bytes(
            entry.line_at + u64::from(entry.json_at),
            usize::try_from(json_len).ok()?,
        )
    }
}

/// Where a loaded record came from, and what the cache records for it.
#[derive(Debug)]
pub enum Source<'a> {
    /// The cache's entry (its line, written again as it is).
    Cached(&'a Entry),
    /// Parsed from the file; the new entry's line, when it may be cached.
    Parsed(Option<String>),
}

/// The state file `path` of certificate `name`: the cached record when its stat data is the
/// recorded one, else read and parsed (`parse_certificate`) with a new entry when the file
/// is settled (ctime before `trusted_before`).
pub fn read<'a>(
    cache: &'a Cache,
    name: &str,
    path: &Path,
    trusted_before: SystemTime,
) -> Result<(CertificateState, Source<'a>), Error> {
    let metadata = fs::metadata(path).map_err(|source| io_error("read", path, source))?;
    let stamp = stamp(&metadata);
    if let Some(entry) = cache
        .entries
        .get(name)
        .filter(|entry| *entry.stamp == *stamp)
    {
        let decoded = cache
            .json(entry)
            .and_then(|json| serde_json::from_slice::<CertificateState>(&json).ok())
            .filter(|certificate| certificate.name == name);
        if let Some(certificate) = decoded {
            return Ok((certificate, Source::Cached(entry)));
        }
    }
    let bytes = read_file(path, &metadata).map_err(|source| io_error("read", path, source))?;
    let certificate = parse_certificate(path, name, &bytes)?;
    let settled = metadata.is_file()
        && ctime(&metadata).is_some_and(|ctime| ctime < trusted_before)
        && !name.contains(['\t', '\n', '\r']);
    let line = settled
        .then(|| encode(&certificate))
        .flatten()
        .map(|json| format!("{name}\t{stamp}\t{json}"));
    Ok((certificate, Source::Parsed(line)))
}

/// `certificate` as the cache holds it, when it decodes to exactly the same record (a field
/// the encoding would lose is not cached).
fn encode(certificate: &CertificateState) -> Option<String> {
    let json = serde_json::to_string(certificate).ok()?;
    let back: CertificateState = serde_json::from_str(&json).ok()?;
    (back == *certificate && !json.contains('\n')).then_some(json)
}

/// The whole file, with one read for its known size (and one more to see its end).
fn read_file(path: &Path, metadata: &fs::Metadata) -> io::Result<Vec<u8>> {
    let mut file = fs::File::open(path)?;
    let size = usize::try_from(metadata.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(size.saturating_add(1));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The cache's text for these entries (in the order given), or `None` when it would be
/// exactly `loaded` (every loaded entry used, nothing new): nothing to write. The lines kept
/// are copied from the loaded cache's file; if that cannot be read, no cache is written.
pub fn render(loaded: &Cache, directory: &str, sources: &[Source<'_>]) -> Option<String> {
    let cached = sources
        .iter()
        .filter(|source| matches!(source, Source::Cached(_)))
        .count();
    let new = sources
        .iter()
        .filter(|source| matches!(source, Source::Parsed(Some(_))))
        .count();
    // A directory name with a line break cannot be recorded: no cache.
    if (new == 0 && cached == loaded.len()) || directory.contains(['\n', '\r']) {
        return None;
    }
    // The loaded file whole (one read), when any of its lines is kept.
    let old = if cached > 0 {
        let len = loaded.file.as_ref()?.metadata().ok()?.len();
        loaded.bytes(0, usize::try_from(len).ok()?)?
    } else {
        Vec::new()
    };
    let mut text = String::with_capacity(old.len() + new * 2048);
    text.push_str(&header());
    text.push('\n');
    text.push_str("directory\t");
    text.push_str(directory);
    text.push('\n');
    let mut count = 0usize;
    for source in sources {
        let line = match source {
            Source::Cached(entry) => {
                let from = usize::try_from(entry.line_at).ok()?;
                let to = from.checked_add(usize::try_from(entry.line_len).ok()?)?;
                std::str::from_utf8(old.get(from..to)?).ok()?
            }
            Source::Parsed(Some(line)) => line.as_str(),
            Source::Parsed(None) => continue,
        };
        text.push_str(line);
        text.push('\n');
        count += 1;
    }
    text.push_str(&format!("end {count}\n"));
    Some(text)
}

/// Write the cache atomically (mode 0600), not fsynced: a cache a power loss empties or tears
/// is not one (`Cache::parse`), and every entry that parses is true of its file. Errors are
/// ignored: the cache only saves time.
pub fn save(file: &Path, text: &str) {
    if let Err(error) = crate::atomic_file::write_unsynced(file, text.as_bytes(), 0o600) {
        tracing::debug!(path = %file.display(), %error, "cannot save the state cache");
    }
}

#[cfg(test)]
mod tests;
