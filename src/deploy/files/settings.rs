//! A `deploy` entry with `kind = "files"`: the table as written and its checks into a
//! `FilesTarget`. Pure: no I/O, clock or environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use time::Duration;

use crate::config::provider::{
    absolute, duration, file_mode, normalize, shown, Anchor, KeyPath, Origin, Validator,
};
use crate::deploy::verify::settings::{self as verify, VerifyTable};
pub use crate::spec::FilesTarget as Settings;

const DURATION_PATTERN: &str = r"^[0-9]+[smhdw]$";
const MODE_PATTERN: &str = r"^(0o)?[0-7]{1,4}$";

/// PEM files in a directory.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// Directory receiving the files, relative to this config file.
    pub(crate) dir: String,
    /// File name of the certificate. Default `cert.pem`.
    pub(crate) cert: Option<String>,
    /// File name of the intermediate chain. Default `chain.pem`.
    pub(crate) chain: Option<String>,
    /// File name of certificate plus chain. Default `fullchain.pem`.
    pub(crate) fullchain: Option<String>,
    /// File name of the private key. Default `privkey.pem`.
    pub(crate) key: Option<String>,
    /// File name of key, certificate and chain in one PEM, in that order (HAProxy, some
    /// appliances); written with `key_mode`. Default: not written.
    pub(crate) combined: Option<String>,
    /// Octal mode of the public files. Default `0644`.
    #[schemars(regex(pattern = MODE_PATTERN))]
    pub(crate) mode: Option<String>,
    /// Octal mode of the private key file. Default `0600`.
    #[schemars(regex(pattern = MODE_PATTERN))]
    pub(crate) key_mode: Option<String>,
    /// Owner (user name) of the files.
    pub(crate) owner: Option<String>,
    /// Group of the files.
    pub(crate) group: Option<String>,
    /// Shell command run (`sh -c`) after any file changed.
    pub(crate) reload: Option<String>,
    /// Time limit of `reload`; the command's process group is killed after it. Default `60s`.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub(crate) reload_timeout: Option<String>,
    /// Delete the files (key first) when the certificate is removed from config. Default `false`.
    pub(crate) cleanup: Option<bool>,
    /// Directory a web server publishes (relative to this config file): `dcv = { method =
    /// "http" }` puts validation files under its `.well-known/`.
    pub(crate) web_root: Option<String>,
    /// Named targets only: the names this server serves (`www.example.com`,
    /// `*.shop.example.com`); HTTP validation files for those names go to its `web_root`.
    pub(crate) serves: Option<Vec<String>>,
    /// TLS endpoint that must serve the new certificate after the reload.
    pub(crate) verify: Option<VerifyTable>,
}

/// Check the `deploy[index]` entry at `path` of a certificate; `dirs` holds the directories of
/// its earlier targets (no two may share one). `None` after reporting.
pub(crate) fn validate(
    validator: &mut Validator<'_>,
    origin: Origin<'_>,
    path: &KeyPath,
    table: &Table,
    dirs: &mut BTreeMap<PathBuf, usize>,
    index: usize,
) -> Option<Settings> {
    let file = origin.file;
    let before = validator.error_count();
    let dir = if table.dir.is_empty() {
        validator.error(
            file,
            &path.key("dir"),
            Anchor::Value,
            "`dir` must not be empty".to_string(),
        );
        None
    } else {
        let dir = absolute(origin.base, &table.dir);
        if let Some(first) = dirs.get(&dir) {
            validator.error_with_hint(
                file,
                &path.key("dir"),
                Anchor::Value,
                format!(
                    "deploy directory `{}` is already used by `deploy[{first}]` of this certificate",
                    dir.display()
                ),
                Some("give each target its own `dir`".to_string()),
            );
        } else {
            dirs.insert(dir.clone(), index);
        }
        validator.outside_state(file, &path.key("dir"), &dir, false);
        Some(dir)
    };

    let mut file_names: Vec<(&str, String)> = Vec::new();
    for (field, value, default) in [
        ("cert", &table.cert, Some("cert.pem")),
        ("chain", &table.chain, Some("chain.pem")),
        ("fullchain", &table.fullchain, Some("fullchain.pem")),
        ("combined", &table.combined, None),
        ("key", &table.key, Some("privkey.pem")),
    ] {
        let Some(name) = value.clone().or_else(|| default.map(str::to_string)) else {
            continue;
        };
        if !is_plain_file_name(&name) {
            validator.error(
                file,
                &path.key(field),
                Anchor::Value,
                format!(
                    "`{field}` must be a plain file name inside `dir`, found `{}`",
                    shown(&name)
                ),
            );
            continue;
        }
        if let Some((other, _)) = file_names.iter().find(|(_, existing)| *existing == name) {
            validator.error(
                file,
                &path.key(field),
                Anchor::Value,
                format!("`{field}` and `{other}` are both `{}`", shown(&name)),
            );
            continue;
        }
        file_names.push((field, name));
    }

    let mode = file_mode_or(
        validator,
        file,
        &path.key("mode"),
        table.mode.as_deref(),
        0o644,
    );
    let key_mode = file_mode_or(
        validator,
        file,
        &path.key("key_mode"),
        table.key_mode.as_deref(),
        0o600,
    );
    if let (Some(mode), Some(text)) = (key_mode, table.key_mode.as_deref()) {
        if mode & 0o077 != 0 {
            validator.warning(
                file,
                &path.key("key_mode"),
                format!(
                    "`key_mode = \"{}\"` lets {} read the private key; use `0600` (or `0640` with `group` for a service group)",
                    shown(text),
                    if mode & 0o007 != 0 { "every user" } else { "the file's group" }
                ),
            );
        }
    }
    for (field, value) in [
        ("owner", &table.owner),
        ("group", &table.group),
        ("reload", &table.reload),
        ("web_root", &table.web_root),
    ] {
        if value
            .as_deref()
            .is_some_and(|value| value.trim().is_empty())
        {
            validator.error(
                file,
                &path.key(field),
                Anchor::Value,
                format!("`{field}` must not be empty"),
            );
        }
    }
    if let Some(root) = table.web_root.as_deref().filter(|root| !root.is_empty()) {
        let root = absolute(origin.base, root);
        validator.web_root_outside_state(file, &path.key("web_root"), &root);
    }
    let reload_timeout = match table.reload_timeout.as_deref() {
        None => Some(Duration::seconds(60)),
        Some(text) => match duration(text) {
            Ok(timeout) => Some(timeout),
            Err(message) => {
                validator.error(file, &path.key("reload_timeout"), Anchor::Value, message);
                None
            }
        },
    };
    let verify = verify::validate(validator, file, path, table.verify.as_ref());
    if validator.error_count() > before {
        return None;
    }
    let file_name = |field: &str| {
        file_names
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    let (Some(dir), Some(mode), Some(key_mode), Some(reload_timeout), Some(verify)) =
        (dir, mode, key_mode, reload_timeout, verify)
    else {
        return None;
    };
    // A relative `dir` also names the target in state, so that the same repository checked
    // out anywhere keys its deploy records alike.
    let relative_dir = std::path::Path::new(&table.dir)
        .is_relative()
        .then(|| normalize(std::path::Path::new(&table.dir)));
    Some(Settings {
        dir,
        relative_dir,
        cert: file_name("cert"),
        chain: file_name("chain"),
        fullchain: file_name("fullchain"),
        key: file_name("key"),
        mode,
        key_mode,
        owner: table.owner.clone(),
        group: table.group.clone(),
        reload: table.reload.clone(),
        reload_timeout,
        combined: table.combined.is_some().then(|| file_name("combined")),
        cleanup: table.cleanup.unwrap_or(false),
        web_root: table
            .web_root
            .as_deref()
            .map(|root| absolute(origin.base, root)),
        verify,
    })
}

/// The octal mode written at `path`, else `default`; `None` after reporting.
pub(crate) fn file_mode_or(
    validator: &mut Validator<'_>,
    file: usize,
    path: &KeyPath,
    text: Option<&str>,
    default: u32,
) -> Option<u32> {
    let Some(text) = text else {
        return Some(default);
    };
    match file_mode(text) {
        Ok(mode) => Some(mode),
        Err(message) => {
            validator.error(file, path, Anchor::Value, message);
            None
        }
    }
}

pub(crate) fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}
