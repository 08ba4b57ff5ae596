//! Configuration: the serde model of the TOML/YAML files, loading and merging them, and
//! semantic validation with `file:line:col` diagnostics.
//!
//! Pure: callers hand in the files' text (`Source`); this module never touches the file system,
//! the environment or the clock. Secret references are kept as references, never resolved here.

pub mod model;

use std::path::PathBuf;

pub use model::*;

/// One configuration file's text.
#[derive(Debug, Clone)]
pub struct Source {
    /// Absolute path; relative paths inside the file are resolved against its parent.
    pub path: PathBuf,
    pub text: String,
}

/// Parse, merge and validate every source. On failure, every diagnostic found, sorted by
/// file, line and column.
pub fn load(sources: &[Source]) -> Result<Config, Vec<Diagnostic>> {
    let _ = sources;
    todo!("config loading")
}
