//! Findings collected while loading, before they are turned into `Diagnostic`s.
//!
//! A finding names its place by key path; the path becomes `file:line:column` only at the end,
//! once every file is parsed. Also the wording helpers shared by all checks. Performs no I/O.

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

/// A user-written value for a message: backticks removed, long values shortened.
pub(crate) fn shown(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| if c == '`' || c.is_control() { '?' } else { c })
        .collect();
    if cleaned.chars().count() > 80 {
        let short: String = cleaned.chars().take(77).collect();
        format!("{short}...")
    } else {
        cleaned
    }
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
    }
}
