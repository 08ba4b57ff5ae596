//! `verify = { connect = "host:port", sni = "name", timeout = "10s" }`, the one setting every
//! deploy target kind takes: the table as written and its checks into a `VerifyEndpoint`. Pure:
//! no I/O, clock or environment.

use schemars::JsonSchema;
use serde::Deserialize;
use time::Duration;

use crate::config::provider::{duration, shown, Anchor, KeyPath, Validator};
use crate::deploy::ssh::settings::{split_host_port, word_problem};
use crate::spec::VerifyEndpoint;

const DURATION_PATTERN: &str = r"^[0-9]+[smhdw]$";
/// How long the endpoint may take to serve the new certificate when `timeout` is unset.
const DEFAULT_TIMEOUT_SECONDS: i64 = 10;

/// `verify = { connect = "host:port", sni = "name", timeout = "10s" }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyTable {
    /// `host:port` of the TLS endpoint (`[v6]:port` for an IPv6 address).
    pub(crate) connect: String,
    /// Server name sent in the handshake. Default: the host of `connect`.
    pub(crate) sni: Option<String>,
    /// How long the endpoint may take to serve the new certificate. Default `10s`.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub(crate) timeout: Option<String>,
}

/// Check `verify` of the target at `path` (the target's table): `Some(None)` when unset,
/// `Some(Some(endpoint))` when valid, `None` after reporting.
pub(crate) fn validate(
    validator: &mut Validator<'_>,
    file: usize,
    path: &KeyPath,
    table: Option<&VerifyTable>,
) -> Option<Option<VerifyEndpoint>> {
    let Some(table) = table else {
        return Some(None);
    };
    let path = path.key("verify");
    let before = validator.error_count();
    let timeout = match table.timeout.as_deref().map(duration) {
        None => Some(Duration::seconds(DEFAULT_TIMEOUT_SECONDS)),
        Some(Ok(value)) if value > Duration::ZERO => Some(value),
        Some(Ok(_)) => {
            validator.error(
                file,
                &path.key("timeout"),
                Anchor::Value,
                "must be more than 0s".to_string(),
            );
            None
        }
        Some(Err(message)) => {
            validator.error(file, &path.key("timeout"), Anchor::Value, message);
            None
        }
    };
    let sni = match split_host_port(&table.connect) {
        Err(problem) => {
            validator.error(
                file,
                &path.key("connect"),
                Anchor::Value,
                format!(
                    "`connect` must be `host:port`, found `{}`: {problem}",
                    shown(&table.connect)
                ),
            );
            None
        }
        Ok((host, _)) => {
            let sni = table.sni.clone().unwrap_or_else(|| host.to_string());
            match word_problem(&sni) {
                Some(problem) => {
                    validator.error(
                        file,
                        &path.key("sni"),
                        Anchor::Value,
                        format!("`sni` {problem}"),
                    );
                    None
                }
                None => Some(sni),
            }
        }
    };
    if validator.error_count() > before {
        return None;
    }
    Some(Some(VerifyEndpoint {
        connect: table.connect.clone(),
        sni: sni?,
        timeout: timeout?,
    }))
}
