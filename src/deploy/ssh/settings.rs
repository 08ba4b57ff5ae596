//! A `deploy` entry with `kind = "ssh"`: the table as written and its checks into an
//! `SshTarget`. Pure: no I/O, clock or environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use time::Duration;

use crate::config::provider::{absolute, duration, shown, Anchor, KeyPath, Origin, Validator};
use crate::deploy::files::settings::{file_mode_or, is_plain_file_name};
use crate::deploy::verify::settings::{self as verify, VerifyTable};
pub use crate::spec::SshTarget as Settings;

const DURATION_PATTERN: &str = r"^[0-9]+[smhdw]$";
const MODE_PATTERN: &str = r"^(0o)?[0-7]{1,4}$";

/// PEM files in a directory on a host reached with the system OpenSSH client.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// Host name or address of the server.
    pub(crate) host: String,
    /// SSH port. Default 22.
    pub(crate) port: Option<u16>,
    /// Login name. Default: what the user's ssh config says.
    pub(crate) user: Option<String>,
    /// Private key file (`ssh -i`), relative to this config file. Default: the ssh agent and
    /// the user's ssh config.
    pub(crate) identity: Option<String>,
    /// `known_hosts` file holding the host's key, relative to this config file. Checked
    /// strictly: an unknown or changed host key fails the deploy.
    pub(crate) known_hosts: String,
    /// Add the host key to `known_hosts` on the first connection (trust on first use); a
    /// changed key still fails. Default false.
    pub(crate) accept_new_host_key: Option<bool>,
    /// Absolute directory on the host receiving the files.
    pub(crate) dir: String,
    /// File name of the certificate. Default `cert.pem`.
    pub(crate) cert: Option<String>,
    /// File name of the intermediate chain. Default `chain.pem`.
    pub(crate) chain: Option<String>,
    /// File name of certificate plus chain. Default `fullchain.pem`.
    pub(crate) fullchain: Option<String>,
    /// File name of the private key. Default `privkey.pem`.
    pub(crate) key: Option<String>,
    /// Octal mode of the public files. Default `0644`.
    #[schemars(regex(pattern = MODE_PATTERN))]
    pub(crate) mode: Option<String>,
    /// Octal mode of the private key file. Default `0600`.
    #[schemars(regex(pattern = MODE_PATTERN))]
    pub(crate) key_mode: Option<String>,
    /// Command run on the host (`sh -c`) after any file changed.
    pub(crate) reload: Option<String>,
    /// Time limit of `reload`. Default `60s`.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub(crate) reload_timeout: Option<String>,
    /// Time limit of connecting to the host. Default `10s`.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub(crate) connect_timeout: Option<String>,
    /// TLS endpoint that must serve the new certificate after the reload.
    pub(crate) verify: Option<VerifyTable>,
    /// Delete the files on the host (key first) when the certificate is removed from config.
    /// Default `false`.
    pub(crate) cleanup: Option<bool>,
    /// Absolute directory on the host served at `http://NAME/`, where `dcv = { method =
    /// "http", via = "NAME" }` puts validation files under `.well-known/`.
    pub(crate) web_root: Option<String>,
    /// Named targets only: the names this host serves (`www.example.com`,
    /// `*.shop.example.com`); HTTP validation files for those names go to its `web_root`.
    pub(crate) serves: Option<Vec<String>>,
}

/// Check the `deploy[index]` entry at `path` of a certificate. `None` after reporting.
pub(crate) fn validate(
    validator: &mut Validator<'_>,
    origin: Origin<'_>,
    path: &KeyPath,
    table: &Table,
    _dirs: &mut BTreeMap<PathBuf, usize>,
    _index: usize,
) -> Option<Settings> {
    let file = origin.file;
    let before = validator.error_count();
    let error = |validator: &mut Validator<'_>, field: &str, message: String| {
        validator.error(file, &path.key(field), Anchor::Value, message);
    };

    if let Some(problem) = word_problem(&table.host) {
        error(validator, "host", format!("`host` {problem}"));
    }
    if table.port == Some(0) {
        error(validator, "port", "`port` must be 1 to 65535".to_string());
    }
    if let Some(problem) = table.user.as_deref().and_then(word_problem) {
        error(validator, "user", format!("`user` {problem}"));
    } else if table.user.as_deref().is_some_and(|user| user.contains('@')) {
        error(validator, "user", "`user` must not contain `@`".to_string());
    }
    for (field, value) in [
        ("identity", table.identity.as_deref()),
        ("known_hosts", Some(table.known_hosts.as_str())),
    ] {
        if value.is_some_and(|value| value.trim().is_empty()) {
            error(validator, field, format!("`{field}` must not be empty"));
        }
    }
    if let Some(problem) = remote_dir_problem(&table.dir) {
        error(validator, "dir", format!("`dir` {problem}"));
    }
    if let Some(problem) = table.web_root.as_deref().and_then(remote_dir_problem) {
        error(validator, "web_root", format!("`web_root` {problem}"));
    }

    let mut file_names: Vec<(&str, String)> = Vec::new();
    for (field, value, default) in [
        ("cert", &table.cert, "cert.pem"),
        ("chain", &table.chain, "chain.pem"),
        ("fullchain", &table.fullchain, "fullchain.pem"),
        ("key", &table.key, "privkey.pem"),
    ] {
        let name = value.clone().unwrap_or_else(|| default.to_string());
        if !is_plain_file_name(&name) || name.contains(['\n', '\r']) {
            error(
                validator,
                field,
                format!(
                    "`{field}` must be a plain file name inside `dir`, found `{}`",
                    shown(&name)
                ),
            );
            continue;
        }
        if let Some((other, _)) = file_names.iter().find(|(_, existing)| *existing == name) {
            error(
                validator,
                field,
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
    if key_mode.is_some_and(|mode| mode & 0o077 != 0) {
        validator.warning(
            file,
            &path.key("key_mode"),
            "`key_mode` lets other users on the host read the private key; use `0600`".to_string(),
        );
    }
    if table
        .reload
        .as_deref()
        .is_some_and(|value| value.trim().is_empty())
    {
        error(
            validator,
            "reload",
            "`reload` must not be empty".to_string(),
        );
    }
    let timeout =
        |validator: &mut Validator<'_>, key: &KeyPath, text: Option<&str>, default| match text
            .map(duration)
        {
            None => Some(Duration::seconds(default)),
            Some(Ok(value)) if value > Duration::ZERO => Some(value),
            Some(Ok(_)) => {
                validator.error(file, key, Anchor::Value, "must be more than 0s".to_string());
                None
            }
            Some(Err(message)) => {
                validator.error(file, key, Anchor::Value, message);
                None
            }
        };
    let reload_timeout = timeout(
        validator,
        &path.key("reload_timeout"),
        table.reload_timeout.as_deref(),
        60,
    );
    let connect_timeout = timeout(
        validator,
        &path.key("connect_timeout"),
        table.connect_timeout.as_deref(),
        10,
    );
    let verify = verify::validate(validator, file, path, table.verify.as_ref());
    if validator.error_count() > before {
        return None;
    }
    let (Some(mode), Some(key_mode), Some(reload_timeout), Some(connect_timeout), Some(verify)) =
        (mode, key_mode, reload_timeout, connect_timeout, verify)
    else {
        return None;
    };
    let file_name = |field: &str| {
        file_names
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    Some(Settings {
        host: table.host.clone(),
        port: table.port.unwrap_or(22),
        user: table.user.clone(),
        identity: table
            .identity
            .as_deref()
            .map(|identity| absolute(origin.base, identity)),
        known_hosts: absolute(origin.base, &table.known_hosts),
        accept_new_host_key: table.accept_new_host_key.unwrap_or(false),
        dir: table.dir.trim_end_matches('/').to_string(),
        cert: file_name("cert"),
        chain: file_name("chain"),
        fullchain: file_name("fullchain"),
        key: file_name("key"),
        mode,
        key_mode,
        reload: table.reload.clone(),
        reload_timeout,
        connect_timeout,
        verify,
        web_root: table
            .web_root
            .as_deref()
            .map(|root| root.trim_end_matches('/').to_string()),
        cleanup: table.cleanup.unwrap_or(false),
    })
}

/// Why `value` cannot be a host or user name handed to `ssh` (empty, whitespace, control
/// characters, or a leading `-` that ssh would read as an option).
pub(crate) fn word_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("must not be empty")
    } else if value.starts_with('-') {
        Some("must not start with `-`")
    } else if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\'' || c == '"')
    {
        Some("must not contain spaces, quotes or control characters")
    } else {
        None
    }
}

/// Why `dir` cannot be the target's directory on the host.
pub(crate) fn remote_dir_problem(dir: &str) -> Option<&'static str> {
    if !dir.starts_with('/') {
        Some("must be an absolute path on the host")
    } else if dir.trim_end_matches('/').is_empty() {
        Some("must not be `/`")
    } else if dir.split('/').any(|part| part == "..") {
        Some("must not contain `..`")
    } else if dir.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else {
        None
    }
}

/// `host:port` (or `[v6]:port`) split in two.
pub(crate) fn split_host_port(text: &str) -> Result<(&str, u16), &'static str> {
    let (host, port) = text.rsplit_once(':').ok_or("no `:port`")?;
    let host = host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err("no host");
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok((host, port)),
        _ => Err("the port must be 1 to 65535"),
    }
}
