//! The checks the `pkcs12` and `jks` tables share (path, alias, mode, reload, cleanup). Pure:
//! no I/O, clock or environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use time::Duration;

use crate::config::provider::{
    absolute, duration, file_mode, normalize, shown, Anchor, KeyPath, Origin, SecretField,
    SecretRef, Validator,
};
use crate::deploy::verify::settings::{self as verify, VerifyTable};
use crate::spec::StoreFile;

pub(crate) const DURATION_PATTERN: &str = r"^[0-9]+[smhdw]$";
pub(crate) const MODE_PATTERN: &str = r"^(0o)?[0-7]{1,4}$";

/// The fields of a keystore table every keystore kind has, as written.
pub(crate) struct Common<'a> {
    pub(crate) path: &'a str,
    pub(crate) alias: Option<&'a str>,
    pub(crate) mode: Option<&'a str>,
    pub(crate) reload: Option<&'a str>,
    pub(crate) reload_timeout: Option<&'a str>,
    pub(crate) cleanup: Option<bool>,
    pub(crate) verify: Option<&'a VerifyTable>,
}

/// Check the shared fields of the keystore entry at `path`; `dirs` holds the paths of the
/// certificate's earlier targets. `lowercase_alias`: the format looks aliases up in lowercase
/// (JKS). `None` after reporting.
pub(crate) fn store_file(
    validator: &mut Validator<'_>,
    origin: Origin<'_>,
    path: &KeyPath,
    common: &Common<'_>,
    dirs: &mut BTreeMap<PathBuf, usize>,
    index: usize,
    lowercase_alias: bool,
) -> Option<StoreFile> {
    let file = origin.file;
    let before = validator.error_count();
    let store_path = if common.path.is_empty() || common.path.ends_with('/') {
        validator.error(
            file,
            &path.key("path"),
            Anchor::Value,
            format!(
                "`path` must name a keystore file, found `{}`",
                shown(common.path)
            ),
        );
        None
    } else {
        let store_path = absolute(origin.base, common.path);
        if let Some(first) = dirs.get(&store_path) {
            validator.error_with_hint(
                file,
                &path.key("path"),
                Anchor::Value,
                format!(
                    "keystore `{}` is already written by `deploy[{first}]` of this certificate",
                    store_path.display()
                ),
                Some("give each target its own `path`".to_string()),
            );
        } else {
            dirs.insert(store_path.clone(), index);
        }
        validator.outside_state(file, &path.key("path"), &store_path, false);
        Some(store_path)
    };
    let alias = match common.alias {
        Some(alias) => alias.to_string(),
        None => store_path
            .as_deref()
            .and_then(Path::file_stem)
            .map(|stem| stem.to_string_lossy().to_lowercase())
            .unwrap_or_default(),
    };
    // Without a valid `path` the default alias is unknown; the path's error says enough.
    let alias_known = common.alias.is_some() || store_path.is_some();
    let invalid_alias =
        alias.is_empty() || alias.chars().count() > 255 || alias.chars().any(char::is_control);
    if alias_known && invalid_alias {
        validator.error(
            file,
            &path.key("alias"),
            Anchor::Value,
            format!(
                "`alias` must be 1 to 255 printable characters, found `{}`",
                shown(&alias)
            ),
        );
    } else if alias_known && lowercase_alias && alias != alias.to_lowercase() {
        validator.error_with_hint(
            file,
            &path.key("alias"),
            Anchor::Value,
            format!("`alias` `{}` has uppercase letters", shown(&alias)),
            Some(format!(
                "JKS looks aliases up in lowercase: write `alias = \"{}\"`",
                shown(&alias.to_lowercase())
            )),
        );
    }
    let mode = match common.mode {
        None => Some(0o600),
        Some(text) => match file_mode(text) {
            Ok(mode) => {
                if mode & 0o077 != 0 {
                    validator.warning(
                        file,
                        &path.key("mode"),
                        format!(
                            "`mode = \"{}\"` lets others read the keystore, which holds the private key; use `0600`",
                            shown(text)
                        ),
                    );
                }
                Some(mode)
            }
            Err(message) => {
                validator.error(file, &path.key("mode"), Anchor::Value, message);
                None
            }
        },
    };
    let reload = reload_command(validator, file, path, common.reload);
    let reload_timeout = timeout(
        validator,
        file,
        &path.key("reload_timeout"),
        common.reload_timeout,
    );
    let verify = verify::validate(validator, file, path, common.verify);
    if validator.error_count() > before {
        return None;
    }
    let (Some(store_path), Some(mode), Some(reload_timeout), Some(verify)) =
        (store_path, mode, reload_timeout, verify)
    else {
        return None;
    };
    let relative_path = Path::new(common.path)
        .is_relative()
        .then(|| normalize(Path::new(common.path)));
    Some(StoreFile {
        path: store_path,
        relative_path,
        alias,
        mode,
        reload,
        reload_timeout,
        cleanup: common.cleanup.unwrap_or(false),
        verify,
    })
}

/// `reload` when set and not blank (reported otherwise).
pub(crate) fn reload_command(
    validator: &mut Validator<'_>,
    file: usize,
    path: &KeyPath,
    reload: Option<&str>,
) -> Option<String> {
    let reload = reload?;
    if reload.trim().is_empty() {
        validator.error(
            file,
            &path.key("reload"),
            Anchor::Value,
            "`reload` must not be empty".to_string(),
        );
        return None;
    }
    Some(reload.to_string())
}

/// A time limit at `path`, `60s` when unset; `None` after reporting.
pub(crate) fn timeout(
    validator: &mut Validator<'_>,
    file: usize,
    path: &KeyPath,
    text: Option<&str>,
) -> Option<Duration> {
    match text {
        None => Some(Duration::seconds(60)),
        // `duration` refuses `0s` and negative durations.
        Some(text) => match duration(text) {
            Ok(timeout) => Some(timeout),
            Err(message) => {
                validator.error(file, path, Anchor::Value, message);
                None
            }
        },
    }
}

/// A required password reference at `field`; `None` after reporting.
pub(crate) fn required_secret(
    validator: &mut Validator<'_>,
    origin: Origin<'_>,
    path: &KeyPath,
    field: &str,
    secret: Option<&SecretField>,
    kind: &str,
) -> Option<SecretRef> {
    match secret {
        Some(secret) => validator.secret(origin, &path.key(field), secret),
        None => {
            validator.error_with_hint(
                origin.file,
                path,
                Anchor::Value,
                format!("missing `{field}` for the `{kind}` target"),
                Some(format!(
                    "add `{field} = {{ env = \"KEYSTORE_PASSWORD\" }}` or `{{ file = \"path\" }}`"
                )),
            );
            None
        }
    }
}
