//! Configuration: the serde model of the TOML/YAML files, loading and merging them, and
//! semantic validation with `file:line:col` diagnostics.
//!
//! Pure: callers hand in the files' text (`Source`); this module never touches the file system,
//! the environment or the clock. Secret references are kept as references, never resolved here.
//!
//! The layers, in order: `tree` parses each file (TOML or YAML) into one node tree and reports
//! syntax errors; `de` reads that tree into the file model of `schema`, recording every type
//! error, unknown field and missing key; `validate` checks the rules types cannot express and
//! builds the `model`. Findings carry key paths and become `file:line:col` at the end.

mod de;
mod dns_name;
pub mod lifetime;
mod locate;
pub mod model;
pub(crate) mod provider;
mod report;
mod scalar;
mod schema;
mod tree;
mod validate;

use std::collections::BTreeSet;
use std::path::PathBuf;

pub use model::*;
pub use report::escaped;
pub(crate) use report::suggestion;
pub(crate) use schema::tagged_branch;

use report::{Finding, Severity};
use tree::{FileText, Syntax};

use crate::spec::Location;

/// One configuration file's text.
#[derive(Debug, Clone)]
pub struct Source {
    /// Absolute path; relative paths inside the file are resolved against its parent.
    pub path: PathBuf,
    pub text: String,
}

/// Parse, merge and validate every source. On failure, every diagnostic found, sorted by
/// file, line and column.
///
/// Files ending in `.yaml` or `.yml` are YAML, all others TOML; both have the same schema.
/// Warnings (non-fatal findings) are returned in `Config::warnings` when there is no error.
pub fn load(sources: &[Source]) -> Result<Config, Vec<Diagnostic>> {
    load_with(sources, &mut |_| {})
}

/// `load`, calling `on_state` with the `[state]` settings as soon as they are known and
/// valid, before the rest is checked (at most once; not at all when the files do not parse or
/// `[state]` has an error). The configuration may still turn out invalid, or (only when it
/// is) other than `on_state` saw: a caller that starts work with them compares them with the
/// loaded configuration's.
pub fn load_with(
    sources: &[Source],
    on_state: &mut dyn FnMut(&StateSettings),
) -> Result<Config, Vec<Diagnostic>> {
    if sources.is_empty() {
        return Err(vec![Diagnostic {
            location: Location::default(),
            key: String::new(),
            message: "no configuration files".to_string(),
            hint: Some("add a `*.toml` file with a `[certificate.NAME]` table".to_string()),
        }]);
    }
    let mut ordered: Vec<&Source> = sources.iter().collect();
    ordered.sort_by(|left, right| left.path.cmp(&right.path));

    let mut findings = Vec::new();
    let mut texts = Vec::with_capacity(ordered.len());
    for (index, source) in ordered.iter().enumerate() {
        let syntax = Syntax::of(&source.path);
        let root = tree::parse(source, syntax, index, &mut findings);
        texts.push(FileText::new(source, syntax, root));
    }
    let syntax_ok = findings.is_empty();

    let mut files = Vec::with_capacity(texts.len());
    for (index, text) in texts.iter().enumerate() {
        let Some(root) = &text.root else {
            continue;
        };
        let collector = de::Collector::new(index);
        let raw = de::deserialize::<schema::ConfigFile>(root, &collector).unwrap_or_default();
        let file_findings = collector.into_findings();
        let broken = broken_items(&file_findings);
        findings.extend(file_findings);
        files.push((index, raw, broken));
    }
    let inputs: Vec<validate::FileInput<'_>> = files
        .iter()
        .map(|(index, raw, broken)| validate::FileInput {
            index: *index,
            raw,
            broken: broken.clone(),
        })
        .collect();
    let mut on_state = |settings: &StateSettings| {
        if syntax_ok {
            on_state(settings);
        }
    };
    let (mut config, semantic) = validate::validate(&texts, &inputs, syntax_ok, &mut on_state);
    findings.extend(semantic);

    let (errors, warnings): (Vec<Finding>, Vec<Finding>) = findings
        .into_iter()
        .partition(|finding| finding.severity == Severity::Error);
    if !errors.is_empty() {
        return Err(resolve(&texts, errors));
    }
    config.warnings = resolve(&texts, warnings);
    Ok(config)
}

/// The JSON Schema of one configuration file (TOML or YAML), pretty JSON ending in a newline.
pub fn json_schema() -> String {
    schema::render()
}

/// The items (`certificate.web`, `state`, ...) that findings fall in.
fn broken_items(findings: &[Finding]) -> BTreeSet<String> {
    findings
        .iter()
        .filter_map(|finding| match &finding.place {
            report::Place::Path { path, .. } => match path.item() {
                Some((section @ ("ca" | "dns" | "certificate"), name)) => {
                    Some(format!("{section}.{name}"))
                }
                _ => match path.segments().first() {
                    Some(tree::Segment::Key(section)) => Some(section.clone()),
                    _ => None,
                },
            },
            report::Place::At { .. } => None,
        })
        .collect()
}

/// Turn findings into sorted diagnostics.
fn resolve(texts: &[FileText<'_>], findings: Vec<Finding>) -> Vec<Diagnostic> {
    let mut diagnostics: Vec<Diagnostic> = findings
        .into_iter()
        .map(|finding| {
            let (file, (line, column)) = match texts.get(finding.file) {
                Some(text) => (text.source.path.clone(), text.position(&finding.place)),
                None => (PathBuf::new(), (1, 1)),
            };
            // Names and values reach messages in many ways; escape once here so that none
            // can hide or reorder what the terminal shows.
            Diagnostic {
                location: Location { file, line, column },
                key: escaped(&finding.key).into_owned(),
                message: escaped(&finding.message).into_owned(),
                hint: finding.hint.map(|hint| escaped(&hint).into_owned()),
            }
        })
        .collect();
    diagnostics.sort_by(|left, right| {
        (
            &left.location.file,
            left.location.line,
            left.location.column,
            &left.key,
            &left.message,
        )
            .cmp(&(
                &right.location.file,
                right.location.line,
                right.location.column,
                &right.key,
                &right.message,
            ))
    });
    diagnostics.dedup();
    diagnostics
}

#[cfg(test)]
mod tests;
