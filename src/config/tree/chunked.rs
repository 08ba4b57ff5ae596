//! A large TOML file of certificates, parsed in pieces.
//!
//! The `toml` crate holds a file's tokens and its own table tree while it parses: ~55 MB at the
//! peak, and ~26 MB of tree, for a 1.3 MB file of 10,000 certificates, all before certform's
//! tree exists. Cut at `[certificate.NAME]` header lines into pieces of ~128 KiB, each piece is
//! parsed and turned into certform's tree on its own (two at a time), so the crate's working
//! memory is one piece's, and the two processors share the work.
//!
//! The pieces' trees are put together only when that is certainly the tree of the whole file:
//!
//! - every piece parses without an error (a cut inside a multi-line string or array leaves
//!   the piece before it unterminated, which is an error);
//! - every piece after the first holds nothing but `certificate.*` tables (it starts with
//!   a `[certificate.NAME]` header, so it has no top-level keys of its own), and never defines
//!   the `certificate` table itself (`[certificate]`), which the whole file may define once;
//! - the first piece does not make `certificate` an inline table (`certificate = { ... }`),
//!   which later headers may not extend;
//! - no certificate name is in two pieces (a certificate's sub-tables in another piece, or a
//!   duplicate).
//!
//! Anything else, an error first of all, returns `None`, and the caller parses the whole file,
//! so every message (and its line and column) is the whole file's parser's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{toml_node, Node, NodeKind};

/// Files smaller than this are parsed whole (a piece would be most of the file).
const MIN_BYTES: usize = 256 * 1024;

/// The size aimed at for each piece.
const PIECE_BYTES: usize = 128 * 1024;

/// Pieces parsed at once (fixed: the result does not depend on the machine).
const WORKERS: usize = 2;

/// Where pieces may start: a line that begins with this and a bare name (no indent, no `[[`).
const CUT_PREFIX: &str = "[certificate.";

/// The key the pieces share.
const SHARED: &str = "certificate";

/// The whole file's tree, built piece by piece, or `None` when the file is small or any rule
/// above does not hold.
pub(super) fn parse(text: &str) -> Option<Node<'_>> {
    if text.len() < MIN_BYTES {
        return None;
    }
    let starts = piece_starts(text);
    if starts.len() < 2 {
        return None;
    }
    let pieces: Vec<(usize, &str)> = starts
        .iter()
        .enumerate()
        .map(|(index, &start)| {
            let end = starts.get(index + 1).copied().unwrap_or(text.len());
            (start, &text[start..end])
        })
        .collect();
    let trees = parse_pieces(&pieces)?;
    join(trees)
}

/// Where each piece starts: 0, then the first cut line at or after each multiple of
/// `PIECE_BYTES` (never the file's first `[certificate.` line, so the first piece holds the
/// top-level tables and at least one certificate).
fn piece_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    let mut seen_first = false;
    let mut line_start = 0;
    let bytes = text.as_bytes();
    while line_start < bytes.len() {
        if is_cut_line(&text[line_start..]) {
            if seen_first && line_start >= starts.len() * PIECE_BYTES {
                starts.push(line_start);
            }
            seen_first = true;
        }
        match memchr_newline(&bytes[line_start..]) {
            Some(position) => line_start += position + 1,
            None => break,
        }
    }
    starts
}

/// Whether `rest` starts with a `[certificate.NAME]` header line, `NAME` a bare key (a
/// certificate's own sub-tables, `[certificate.NAME.key]`, stay with it).
fn is_cut_line(rest: &str) -> bool {
    let Some(after) = rest.strip_prefix(CUT_PREFIX) else {
        return false;
    };
    let name_len = after
        .bytes()
        .take_while(|byte| byte.is_ascii_alphanumeric() || *byte == b'_' || *byte == b'-')
        .count();
    name_len > 0 && after[name_len..].starts_with(']')
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&byte| byte == b'\n')
}

/// Each piece's tree, in order; `None` as soon as one breaks a rule.
fn parse_pieces<'a>(pieces: &[(usize, &'a str)]) -> Option<Vec<Node<'a>>> {
    let next = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<Mutex<Option<Node<'a>>>> = pieces.iter().map(|_| Mutex::new(None)).collect();
    let work = || loop {
        if failed.load(Ordering::Relaxed) {
            return;
        }
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(&(base, piece)) = pieces.get(index) else {
            return;
        };
        match parse_piece(piece, base, index == 0) {
            Some(tree) => {
                if let Ok(mut slot) = results[index].lock() {
                    *slot = Some(tree);
                }
            }
            None => failed.store(true, Ordering::Relaxed),
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..WORKERS {
            scope.spawn(work);
        }
        work();
    });
    if failed.load(Ordering::Relaxed) {
        return None;
    }
    results
        .into_iter()
        .map(|slot| slot.into_inner().ok().flatten())
        .collect()
}

/// One piece's tree (offsets in the whole file), if it parses cleanly and keeps its rules.
fn parse_piece(piece: &str, base: usize, first: bool) -> Option<Node<'_>> {
    let (table, errors) = DeTable::parse_recoverable(piece);
    if !errors.is_empty() {
        return None;
    }
    let shared = table
        .get_ref()
        .iter()
        .find(|(key, _)| key.get_ref() == SHARED);
    let opens_with = |value: &Spanned<DeValue<'_>>, byte: u8| {
        piece.as_bytes().get(value.span().start) == Some(&byte)
    };
    if first {
        if let Some((_, value)) = shared {
            // `certificate = { ... }`: sealed, later headers may not add to it.
            if !matches!(value.get_ref(), DeValue::Table(_)) || opens_with(value, b'{') {
                return None;
            }
        }
    } else {
        let only_shared = table.get_ref().len() == 1;
        match shared {
            // `[certificate]` itself (its span is its header, opening with `[`): the whole file
            // may define it once only.
            Some((_, value))
                if only_shared
                    && matches!(value.get_ref(), DeValue::Table(_))
                    && !opens_with(value, b'[') => {}
            _ => return None,
        }
    }
    let span = table.span();
    let mut problems = Vec::new();
    let root = toml_node(
        Spanned::new(span, DeValue::Table(table.into_inner())),
        base,
        0,
        &mut problems,
    );
    problems.is_empty().then_some(root)
}

/// The pieces' trees as one: the later pieces' certificates added to the first's
/// `certificate` table, in the order the whole file's parser keeps (sorted by name); `None`
/// when a name is in two pieces.
fn join(trees: Vec<Node<'_>>) -> Option<Node<'_>> {
    let mut trees = trees.into_iter();
    let mut root = trees.next()?;
    let NodeKind::Table(root_entries) = &mut root.kind else {
        return None;
    };
    let shared = root_entries.iter_mut().find(|entry| entry.key == SHARED)?;
    let offset = shared.value.offset;
    let NodeKind::Table(mut certificates) =
        std::mem::replace(&mut shared.value.kind, NodeKind::Null)
    else {
        return None;
    };
    for tree in trees {
        let NodeKind::Table(mut entries) = tree.kind else {
            return None;
        };
        let entry = entries.pop()?;
        let NodeKind::Table(more) = entry.value.kind else {
            return None;
        };
        certificates.extend(more);
    }
    certificates.sort_by(|left, right| left.key.cmp(&right.key));
    if certificates
        .windows(2)
        .any(|pair| pair[0].key == pair[1].key)
    {
        return None;
    }
    certificates.shrink_to_fit();
    shared.value = Node::new(NodeKind::Table(certificates), offset);
    Some(root)
}

#[cfg(test)]
mod tests {
    use super::super::{parse_toml, toml_node};
    use super::*;

    /// The whole file's tree, parsed in one go (what `parse_toml` does when `parse` declines).
    fn whole(text: &str) -> Option<Node<'_>> {
        let (table, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            return None;
        }
        let span = table.span();
        let mut problems = Vec::new();
        let root = toml_node(
            Spanned::new(span, DeValue::Table(table.into_inner())),
            0,
            0,
            &mut problems,
        );
        problems.is_empty().then_some(root)
    }

    fn certificates(range: std::ops::Range<usize>) -> String {
        let mut text = String::new();
        for i in range {
            text.push_str(&format!(
                "\n[certificate.c{i}]\ncommon_name = \"host{i}.example.test\" # a comment\nsans = [\"alt{i}.example.test\", 'x{i}']\nrenew_before = \"33%\"\ndeploy = [{{ kind = \"files\", dir = \"out/c{i}\" }}]\n\n[certificate.c{i}.key]\nalgorithm = \"ecdsa-p256\"\n"
            ));
        }
        text
    }

    fn config(n: usize) -> String {
        format!(
            "[state]\nrepo = \"state\"\n\n[ca.local]\nkind = \"local\"\n{}",
            certificates(0..n)
        )
    }

    #[test]
    fn a_large_file_in_pieces_gives_the_whole_files_tree() {
        let text = config(3_000);
        assert!(piece_starts(&text).len() > 4, "the file is cut");
        let pieces = parse(&text).expect("parsed in pieces");
        assert_eq!(Some(pieces), whole(&text));
    }

    #[test]
    fn a_small_file_is_parsed_whole() {
        assert!(parse(&config(10)).is_none());
    }

    /// Each case is valid or invalid as a whole; in pieces it must give the same tree or
    /// decline (never accept what the whole file's parser rejects).
    #[test]
    fn what_the_pieces_cannot_be_sure_of_is_left_to_the_whole_parse() {
        let body = certificates(0..3_000);
        let tail = certificates(3_000..3_001);
        let cases = [
            // A certificate's sub-table far from it, in another piece: valid, declined.
            format!("[state]\nrepo = \"s\"\n{body}\n[certificate.c1.extra]\nx = 1\n"),
            // The same certificate twice: invalid.
            format!("[state]\nrepo = \"s\"\n{body}{}", certificates(5..6)),
            // `[certificate]` defined in a later piece after dotted keys made it: invalid.
            format!("certificate.z.common_name = \"z\"\n{body}[certificate]\nx = 1\n"),
            // `[certificate]` defined twice: invalid.
            format!("[certificate]\nx = 1\n{body}[certificate]\ny = 1\n"),
            // An inline `certificate` table extended by headers: invalid.
            format!("certificate = {{ z = {{ common_name = \"z\" }} }}\n{body}"),
            // A top-level table after the certificates: valid, declined.
            format!("{body}[state]\nrepo = \"s\"\n"),
            // A header line inside a multi-line string: valid, one string.
            format!(
                "[state]\nrepo = \"s\"\n{}[certificate.q]\nnote = \"\"\"\n{}\"\"\"\n{tail}",
                certificates(0..1_500),
                certificates(1_500..3_000)
            ),
            // An unterminated array: invalid.
            format!("[state]\nrepo = [\n{body}"),
            // A syntax error in a later piece: invalid.
            format!("[state]\nrepo = \"s\"\n{body}[certificate.bad]\ncommon_name = = 1\n"),
            // `[certificate]` defined once, after its certificates: valid.
            format!("[state]\nrepo = \"s\"\n{body}[certificate]\n"),
            // Certificates made by dotted keys, then headers: valid.
            format!("certificate.z.common_name = \"z\"\n{body}"),
        ];
        for (index, text) in cases.iter().enumerate() {
            assert!(text.len() >= MIN_BYTES, "case {index} is large enough");
            let expected = whole(text);
            if let Some(tree) = parse(text) {
                assert_eq!(Some(tree), expected, "case {index}");
            }
        }
        // The certificate after the multi-line string is one of the string's lines as a whole.
        let mut findings = Vec::new();
        let tree = parse_toml(&cases[6], 0, &mut findings).expect("valid");
        let names = tree.entry("certificate").expect("certificates");
        assert!(names.value.entry("c1600").is_none());
        assert!(names.value.entry("c3000").is_some());
        // Errors are the whole file's, with its line.
        let mut findings = Vec::new();
        assert!(parse_toml(&cases[1], 0, &mut findings).is_none());
        assert!(!findings.is_empty());
    }
}
