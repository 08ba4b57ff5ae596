//! Findings collected while loading, before they are turned into `Diagnostic`s.
//!
//! A finding names its place by key path; the path becomes `file:line:column` only at the end,
//! once every file is parsed. Also the wording helpers shared by all checks. Performs no I/O.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::tree::{Anchor, KeyPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Error,
    Warning,
}

/// Where a finding points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// A position known up front (syntax errors).
    At { line: usize, column: usize },
    /// A key path, resolved through the file's tree.
    Path { path: KeyPath, anchor: Anchor },
}

/// One error or warning about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) severity: Severity,
    /// Index of the file in the sorted list of sources.
    pub(crate) file: usize,
    /// The dotted key shown to the user (may differ from the place, e.g. for a missing key).
    pub(crate) key: String,
    pub(crate) place: Place,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl Finding {
    pub(crate) fn syntax(file: usize, line: usize, column: usize, message: String) -> Self {
        Finding {
            severity: Severity::Error,
            file,
            key: String::new(),
            place: Place::At { line, column },
            message,
            hint: None,
        }
    }

    pub(crate) fn error(file: usize, path: &KeyPath, anchor: Anchor, message: String) -> Self {
        Finding {
            severity: Severity::Error,
            file,
            key: path.to_string(),
            place: Place::Path {
                path: path.clone(),
                anchor,
            },
            message,
            hint: None,
        }
    }

    pub(crate) fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    pub(crate) fn with_key(mut self, key: String) -> Self {
        self.key = key;
        self
    }

    pub(crate) fn into_warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }
}

/// `` `a`, `b`, `c` ``
pub(crate) fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items
        .into_iter()
        .map(|item| format!("`{}`", item.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The candidate nearest to `wanted`, if it is near enough to be a likely typo.
pub(crate) fn nearest<'c>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let wanted_lower = wanted.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            (
                strsim::damerau_levenshtein(&wanted_lower, candidate),
                candidate,
            )
        })
        .filter(|(distance, candidate)| {
            *distance <= 3 && *distance < candidate.len().max(2) && *distance <= wanted.len().max(1)
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// "did you mean `x`?" when a candidate is close, else "expected one of ...".
pub(crate) fn suggestion(wanted: &str, candidates: &[&str]) -> Option<String> {
    if let Some(near) = nearest(wanted, candidates.iter().copied()) {
        Some(format!("did you mean `{near}`?"))
    } else if candidates.is_empty() {
        None
    } else {
        Some(format!("expected one of {}", list(candidates)))
    }
}

/// A user-written value for a message: backticks removed, characters that could hide or
/// reorder the text escaped (see `escaped`), long values shortened.
pub(crate) fn shown(value: &str) -> String {
    let cleaned = escaped(&value.replace('`', "?")).into_owned();
    if cleaned.chars().count() > 80 {
        let short: String = cleaned.chars().take(77).collect();
        format!("{short}...")
    } else {
        cleaned
    }
}

/// Whether a terminal could be made to hide, reorder or forge text with `c`: C0 and C1
/// controls and DEL (line feeds, escape sequences), bidirectional embeddings, overrides,
/// isolates and marks (U+202E turns `txt.exe` around), zero-width characters and the line and
/// paragraph separators.
fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `text` with every character `is_deceptive` finds written as `\u{202e}`, so a diagnostic
/// shows a name exactly as it is spelt. Borrowed when there is nothing to escape. Used for
/// every config diagnostic and wherever the CLI echoes a name in an error.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_deceptive) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_deceptive(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names_only() {
        let fields = ["common_name", "sans", "key", "validity"];
        assert_eq!(nearest("comon_name", fields), Some("common_name"));
        assert_eq!(nearest("san", fields), Some("sans"));
        assert_eq!(nearest("zzzzzzzz", fields), None);
        assert_eq!(
            suggestion("zzzzzzzz", &["a", "b"]),
            Some("expected one of `a`, `b`".to_string())
        );
    }

    #[test]
    fn shown_values_are_short_and_plain() {
        assert_eq!(shown("a`b"), "a?b");
        assert_eq!(shown(&"x".repeat(200)).len(), 80);
        assert_eq!(shown("a\nb"), "a\\u{a}b");
    }

    #[test]
    fn deceptive_characters_are_escaped() {
        assert_eq!(escaped("web"), Cow::Borrowed("web"));
        assert_eq!(escaped("exe.\u{202e}txt"), "exe.\\u{202e}txt");
        assert_eq!(
            escaped("a\u{1b}[31mb\u{7f}\u{85}\u{2066}\u{200b}\u{feff}\r"),
            "a\\u{1b}[31mb\\u{7f}\\u{85}\\u{2066}\\u{200b}\\u{feff}\\u{d}"
        );
        // Letters of every script stay as they are; escaping is idempotent.
        assert_eq!(escaped("bücher-例え"), "bücher-例え");
        assert_eq!(escaped(&escaped("\u{202e}")), "\\u{202e}");
    }
}
