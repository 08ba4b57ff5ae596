//! `[dns.NAME]` with `kind = "rfc2136"`: the table as written, its checks, and the validated
//! settings. Pure: no I/O, clock or environment.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::provider::{
    dns_name, shown, Anchor, KeyPath, Origin, SecretField, SecretRef, SecretTable, Validator,
};

/// RFC 2136 dynamic updates signed with TSIG (BIND, Knot, PowerDNS, ...).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// `host:port` of the primary name server.
    pub(crate) server: String,
    /// TSIG key name used for every zone (with `secret`).
    pub(crate) key_name: Option<String>,
    /// TSIG algorithm of `key_name`. Default `hmac-sha256`.
    pub(crate) algorithm: Option<TsigAlgorithmName>,
    /// TSIG secret of `key_name` (base64), from the environment or a file; never inline.
    #[schemars(with = "Option<SecretTable>")]
    pub(crate) secret: Option<SecretField>,
    /// Per-zone TSIG keys.
    pub(crate) zones: Option<Vec<ZoneTable>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub(crate) enum TsigAlgorithmName {
    #[serde(rename = "hmac-sha1")]
    HmacSha1,
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "hmac-sha384")]
    HmacSha384,
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

/// The TSIG key of one zone.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ZoneTable {
    /// The zone, e.g. `example.com`.
    pub(crate) zone: String,
    /// TSIG key name.
    pub(crate) key_name: String,
    /// TSIG algorithm. Default `hmac-sha256`.
    pub(crate) algorithm: Option<TsigAlgorithmName>,
    /// TSIG secret (base64), from the environment or a file; never inline.
    #[schemars(with = "SecretTable")]
    pub(crate) secret: SecretField,
}

/// `kind = "rfc2136"`: RFC 2136 dynamic updates signed with TSIG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// `host:port` of the primary server.
    pub server: String,
    /// One key for every zone (the zone is found via SOA), or `None` when `zones` is used.
    pub key: Option<TsigKey>,
    /// Per-zone keys.
    pub zones: Vec<ZoneKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TsigKey {
    pub key_name: String,
    pub algorithm: TsigAlgorithm,
    pub secret: SecretRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneKey {
    pub zone: String,
    pub key: TsigKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TsigAlgorithm {
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

/// Check `[dns.NAME]` of `kind = "rfc2136"` at `path` in `file`; `None` after reporting.
pub(crate) fn validate(
    validator: &mut Validator<'_>,
    file: usize,
    name: &str,
    path: &KeyPath,
    table: &Table,
) -> Option<Settings> {
    let before = validator.error_count();
    let base = validator.base_dir(file);
    let origin = Origin { file, base: &base };
    if let Err(reason) = check_server(&table.server) {
        validator.error_with_hint(
            file,
            &path.key("server"),
            Anchor::Value,
            format!("invalid `server` `{}`: {reason}", shown(&table.server)),
            Some("write `host:port`, like `127.0.0.1:53`".to_string()),
        );
    }

    let any_global =
        table.key_name.is_some() || table.secret.is_some() || table.algorithm.is_some();
    let mut key = None;
    if any_global {
        if table.key_name.is_none() {
            validator.error_with_hint(
                file,
                path,
                Anchor::Value,
                "missing required key `key_name`: a TSIG key needs `key_name` and `secret`"
                    .to_string(),
                None,
            );
            validator.findings_last_key(path.key("key_name"));
        }
        if table.secret.is_none() {
            validator.error_with_hint(
                file,
                path,
                Anchor::Value,
                "missing required key `secret`: a TSIG key needs `key_name` and `secret`"
                    .to_string(),
                Some(
                    "use `secret = { env = \"VAR\" }` or `secret = { file = \"path\" }`"
                        .to_string(),
                ),
            );
            validator.findings_last_key(path.key("secret"));
        }
        let key_name = table
            .key_name
            .as_deref()
            .and_then(|key_name| check_key_name(validator, file, &path.key("key_name"), key_name));
        let secret = table
            .secret
            .as_ref()
            .and_then(|secret| validator.secret(origin, &path.key("secret"), secret));
        if let (Some(key_name), Some(secret)) = (key_name, secret) {
            key = Some(TsigKey {
                key_name,
                algorithm: tsig_algorithm(table.algorithm),
                secret,
            });
        }
    }

    let mut zones = Vec::new();
    let mut seen_zones: BTreeMap<String, usize> = BTreeMap::new();
    for (index, zone) in table.zones.iter().flatten().enumerate() {
        let zone_path = path.key("zones").index(index);
        if let Some(zone_key) = zone_key(validator, origin, &zone_path, zone) {
            if let Some(first) = seen_zones.get(&zone_key.zone) {
                validator.error(
                    file,
                    &zone_path.key("zone"),
                    Anchor::Value,
                    format!(
                        "zone `{}` is already listed in `zones[{first}]`",
                        zone_key.zone
                    ),
                );
                continue;
            }
            seen_zones.insert(zone_key.zone.clone(), index);
            zones.push(zone_key);
        }
    }
    if !any_global && table.zones.as_ref().is_none_or(Vec::is_empty) {
        validator.error_with_hint(
            file,
            path,
            Anchor::Value,
            format!("DNS provider `{name}` has no TSIG key"),
            Some(
                "set `key_name`, `algorithm` and `secret`, or per-zone keys in `zones`".to_string(),
            ),
        );
    }
    if validator.error_count() > before {
        return None;
    }
    Some(Settings {
        server: table.server.clone(),
        key,
        zones,
    })
}

fn zone_key(
    validator: &mut Validator<'_>,
    origin: Origin<'_>,
    path: &KeyPath,
    zone: &ZoneTable,
) -> Option<ZoneKey> {
    let file = origin.file;
    let written = zone.zone.strip_suffix('.').unwrap_or(&zone.zone);
    let name = match dns_name(written) {
        Ok(name) if name.is_wildcard() => {
            validator.error(
                file,
                &path.key("zone"),
                Anchor::Value,
                format!("zone `{}` must not be a wildcard", shown(&zone.zone)),
            );
            None
        }
        Ok(name) => Some(name),
        Err(message) => {
            validator.error(file, &path.key("zone"), Anchor::Value, message);
            None
        }
    };
    let key_name = check_key_name(validator, file, &path.key("key_name"), &zone.key_name);
    let secret = validator.secret(origin, &path.key("secret"), &zone.secret);
    Some(ZoneKey {
        zone: name?.to_string(),
        key: TsigKey {
            key_name: key_name?,
            algorithm: tsig_algorithm(zone.algorithm),
            secret: secret?,
        },
    })
}

fn check_key_name(
    validator: &mut Validator<'_>,
    file: usize,
    path: &KeyPath,
    key_name: &str,
) -> Option<String> {
    if key_name.is_empty()
        || key_name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        validator.error(
            file,
            path,
            Anchor::Value,
            "`key_name` must be a non-empty name without spaces".to_string(),
        );
        return None;
    }
    Some(key_name.to_string())
}

fn tsig_algorithm(algorithm: Option<TsigAlgorithmName>) -> TsigAlgorithm {
    match algorithm {
        Some(TsigAlgorithmName::HmacSha1) => TsigAlgorithm::HmacSha1,
        Some(TsigAlgorithmName::HmacSha256) | None => TsigAlgorithm::HmacSha256,
        Some(TsigAlgorithmName::HmacSha384) => TsigAlgorithm::HmacSha384,
        Some(TsigAlgorithmName::HmacSha512) => TsigAlgorithm::HmacSha512,
    }
}

/// `host:port` with a port in 1..=65535.
fn check_server(server: &str) -> Result<(), String> {
    let Some((host, port)) = server.rsplit_once(':') else {
        return Err("no port".to_string());
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err("no host".to_string());
    }
    match port.parse::<u16>() {
        Ok(1..) => Ok(()),
        _ => Err(format!("invalid port `{}`", shown(port))),
    }
}
