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
use std::io::{self, Read};
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

/// The entries of a valid cache file, by certificate name: the stat data recorded and the
/// whole line (kept as it is when the cache is written again).
#[derive(Debug, Default)]
pub struct Cache<'a> {
    entries: HashMap<&'a str, Entry<'a>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry<'a> {
    stamp: &'a str,
    json: &'a str,
    line: &'a str,
}

impl<'a> Cache<'a> {
    /// The entries of `text` when it is a complete cache of the certificates directory
    /// `directory`; `None` for anything else (another format, version or directory, a
    /// malformed or truncated file).
    pub fn parse(text: &'a str, directory: &str) -> Option<Cache<'a>> {
        let body = text.strip_suffix('\n')?;
        let (body, count) = body.rsplit_once('\n')?;
        let count: usize = count.strip_prefix("end ")?.parse().ok()?;
        let mut lines = body.split('\n');
        if lines.next()? != header() {
            return None;
        }
        if lines.next()?.strip_prefix("directory\t")? != directory {
            return None;
        }
        let mut entries = HashMap::with_capacity(count);
        for line in lines {
            let (name, rest) = line.split_once('\t')?;
            let (stamp, json) = rest.split_once('\t')?;
            entries.insert(name, Entry { stamp, json, line });
        }
        (entries.len() == count).then_some(Cache { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Where a loaded record came from, and what the cache records for it.
#[derive(Debug)]
pub enum Source<'a> {
    /// The cache's entry (its line, written again as it is).
    Cached(&'a str),
    /// Parsed from the file; the new entry's line, when it may be cached.
    Parsed(Option<String>),
}

/// The state file `path` of certificate `name`: the cached record when its stat data is the
/// recorded one, else read and parsed (`parse_certificate`) with a new entry when the file
/// is settled (ctime before `trusted_before`).
pub fn read<'a>(
    cache: &Cache<'a>,
    name: &str,
    path: &Path,
    trusted_before: SystemTime,
) -> Result<(CertificateState, Source<'a>), Error> {
    let metadata = fs::metadata(path).map_err(|source| io_error("read", path, source))?;
    let stamp = stamp(&metadata);
    if let Some(entry) = cache.entries.get(name).filter(|entry| entry.stamp == stamp) {
        let decoded = serde_json::from_str::<CertificateState>(entry.json)
            .ok()
            .filter(|certificate| certificate.name == name);
        if let Some(certificate) = decoded {
            return Ok((certificate, Source::Cached(entry.line)));
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
/// exactly `loaded` (every loaded entry used, nothing new): nothing to write.
pub fn render(loaded: &Cache<'_>, directory: &str, sources: &[Source<'_>]) -> Option<String> {
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
    let mut text = String::with_capacity(loaded.entries.values().map(|e| e.line.len() + 1).sum());
    text.push_str(&header());
    text.push('\n');
    text.push_str("directory\t");
    text.push_str(directory);
    text.push('\n');
    let mut count = 0usize;
    for source in sources {
        let line = match source {
            Source::Cached(line) => *line,
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
