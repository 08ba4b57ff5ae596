//! A `deploy` entry with `kind = "jks"`: the table as written and its checks. Pure: no I/O,
//! clock or environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::provider::{KeyPath, Origin, SecretField, SecretTable, Validator};
use crate::deploy::keystore::settings::{
    required_secret, store_file, Common, DURATION_PATTERN, MODE_PATTERN,
};
use crate::deploy::verify::settings::VerifyTable;
pub use crate::spec::JksTarget as Settings;

/// A Java KeyStore (JKS) with one private key entry and its chain.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// The keystore file, relative to this config file.
    pub(crate) path: String,
    /// The keystore's password: `{ env = "VAR" }` or `{ file = "path" }`; never inline.
    #[schemars(with = "Option<SecretTable>")]
    pub(crate) store_password: Option<SecretField>,
    /// The key entry's password. Default: `store_password` (what Tomcat and most servers expect).
    #[schemars(with = "Option<SecretTable>")]
    pub(crate) key_password: Option<SecretField>,
    /// The key entry's alias, lowercase. Default: the file name without its extension.
    pub(crate) alias: Option<String>,
    /// Octal mode of the file. Default `0600`.
    #[schemars(regex(pattern = MODE_PATTERN))]
    pub(crate) mode: Option<String>,
    /// Shell command run (`sh -c`) after the keystore changed.
    pub(crate) reload: Option<String>,
    /// Time limit of `reload`; the command's process group is killed after it. Default `60s`.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub(crate) reload_timeout: Option<String>,
    /// Delete the keystore when the certificate is removed from config. Default `false`.
    pub(crate) cleanup: Option<bool>,
    /// TLS endpoint that must serve the new certificate after the reload.
    pub(crate) verify: Option<VerifyTable>,
}

/// Check the `deploy[index]` entry at `path`. `None` after reporting.
pub(crate) fn validate(
    validator: &mut Validator<'_>,
    origin: Origin<'_>,
    path: &KeyPath,
    table: &Table,
    dirs: &mut BTreeMap<PathBuf, usize>,
    index: usize,
) -> Option<Settings> {
    let common = Common {
        path: &table.path,
        alias: table.alias.as_deref(),
        mode: table.mode.as_deref(),
        reload: table.reload.as_deref(),
        reload_timeout: table.reload_timeout.as_deref(),
        cleanup: table.cleanup,
        verify: table.verify.as_ref(),
    };
    let file = store_file(validator, origin, path, &common, dirs, index, true);
    let store_password = required_secret(
        validator,
        origin,
        path,
        "store_password",
        table.store_password.as_ref(),
        "jks",
    );
    let key_password = match &table.key_password {
        None => Some(None),
        Some(secret) => validator
            .secret(origin, &path.key("key_password"), secret)
            .map(Some),
    };
    Some(Settings {
        file: file?,
        store_password: store_password?,
        key_password: key_password?,
    })
}
