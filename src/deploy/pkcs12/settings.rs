//! A `deploy` entry with `kind = "pkcs12"`: the table as written and its checks. Pure: no
//! I/O, clock or environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::provider::{KeyPath, Origin, SecretField, SecretTable, Validator};
use crate::deploy::keystore::settings::{
    required_secret, store_file, Common, DURATION_PATTERN, MODE_PATTERN,
};
use crate::deploy::verify::settings::VerifyTable;
pub use crate::spec::Pkcs12Target as Settings;

/// A PKCS#12 keystore (key, certificate and chain) protected by a password.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// The keystore file, relative to this config file.
    pub(crate) path: String,
    /// The keystore's password: `{ env = "VAR" }` or `{ file = "path" }`; never inline.
    #[schemars(with = "Option<SecretTable>")]
    pub(crate) password: Option<SecretField>,
    /// The key entry's alias (friendly name). Default: the file name without its extension.
    pub(crate) alias: Option<String>,
    /// `true`: 3DES and an HMAC-SHA-1 MAC, for old Java (before 8u301) and Windows (before
    /// Server 2019). Default `false`: AES-256-CBC with PBKDF2 and an HMAC-SHA-256 MAC.
    pub(crate) legacy: Option<bool>,
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
    let file = store_file(validator, origin, path, &common, dirs, index, false);
    let password = required_secret(
        validator,
        origin,
        path,
        "password",
        table.password.as_ref(),
        "pkcs12",
    );
    Some(Settings {
        file: file?,
        password: password?,
        legacy: table.legacy.unwrap_or(false),
    })
}
