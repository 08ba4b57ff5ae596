//! A `deploy` entry with `kind = "command"`: the table as written and its checks. Pure: no
//! I/O, clock or environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::provider::{Anchor, KeyPath, Origin, Validator};
use crate::deploy::keystore::settings::{timeout, DURATION_PATTERN};
use crate::deploy::verify::settings::{self as verify, VerifyTable};
pub use crate::spec::CommandTarget as Settings;

/// A local hook run when the certificate changed; it gets the certificate through `CERTFORM_*`
/// environment variables.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// Shell command (`sh -c`). A non-zero exit fails the deploy to this target (retried next run).
    pub(crate) command: String,
    /// Time limit; the command's process group is killed after it. Default `60s`.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub(crate) timeout: Option<String>,
    /// TLS endpoint that must serve the new certificate once the command succeeded.
    pub(crate) verify: Option<VerifyTable>,
}

/// Check the `deploy[index]` entry at `path`; no two hooks of a certificate may run the same
/// command. `None` after reporting.
pub(crate) fn validate(
    validator: &mut Validator<'_>,
    origin: Origin<'_>,
    path: &KeyPath,
    table: &Table,
    dirs: &mut BTreeMap<PathBuf, usize>,
    index: usize,
) -> Option<Settings> {
    let file = origin.file;
    let command = if table.command.trim().is_empty() {
        validator.error(
            file,
            &path.key("command"),
            Anchor::Value,
            "`command` must not be empty".to_string(),
        );
        None
    } else {
        // The command is the target's id: a relative key, so it never meets the absolute
        // paths the other kinds keep in `dirs`.
        let key = PathBuf::from(format!("command:{}", table.command));
        if let Some(first) = dirs.get(&key) {
            validator.error(
                file,
                &path.key("command"),
                Anchor::Value,
                format!("`deploy[{first}]` of this certificate already runs this command"),
            );
        } else {
            dirs.insert(key, index);
        }
        Some(table.command.clone())
    };
    let timeout = timeout(
        validator,
        file,
        &path.key("timeout"),
        table.timeout.as_deref(),
    );
    let verify = verify::validate(validator, file, path, table.verify.as_ref());
    Some(Settings {
        command: command?,
        timeout: timeout?,
        verify: verify?,
    })
}
