//! `[ca.NAME]` with `kind = "local"`: the table as written, its checks, and the validated
//! settings. Pure: no I/O, clock or environment.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::provider::{Anchor, CertificateTable, KeyPath, Validator};

/// The built-in private CA.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// Common name of the generated root. Default `certform local root (NAME)`.
    pub(crate) root_common_name: Option<String>,
    /// When refresh lists this account's orders to find certificates certform does not manage
    /// or holds twice (`certform status`): `daily` (default; at most once in 24 hours),
    /// `every-run` or `off`. Every kind of CA takes it.
    pub(crate) inventory: Option<crate::ca_inventory::Schedule>,
    /// For simulations and tests only: the share of orders (0 to 1, e.g. `0.02`) this CA
    /// refuses with a transient error, chosen by a hash of the order's tag and the run's
    /// clock. Default 0.
    #[schemars(range(min = 0, max = 1))]
    pub(crate) simulate_failures: Option<f64>,
    /// Most new orders (create, renew, reissue) one run sends to this account; the most
    /// urgent go first, the rest wait for a later run. Default: no limit.
    #[schemars(range(min = 1))]
    pub(crate) max_orders_per_run: Option<i64>,
}

/// `kind = "local"`: root and intermediate made on first use, keys in `keys_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// Common name of the generated root.
    pub root_common_name: String,
    /// `simulate_failures` in parts per million (0: none).
    pub simulate_failures_ppm: u32,
}

impl Settings {
    /// The settings of a local CA `name` that config does not describe (the built-in `local`).
    pub(crate) fn implicit(name: &str) -> Self {
        Settings {
            root_common_name: default_root_common_name(name),
            simulate_failures_ppm: 0,
        }
    }
}

fn default_root_common_name(name: &str) -> String {
    format!("certform local root ({name})")
}

/// Check `[ca.NAME]` of `kind = "local"` at `path` in `file`; `None` after reporting.
pub(crate) fn validate(
    validator: &mut Validator<'_>,
    file: usize,
    name: &str,
    path: &KeyPath,
    table: &Table,
) -> Option<Settings> {
    let root_common_name = match &table.root_common_name {
        Some(common_name) if common_name.trim().is_empty() => {
            validator.error(
                file,
                &path.key("root_common_name"),
                Anchor::Value,
                "`root_common_name` must not be empty".to_string(),
            );
            return None;
        }
        Some(common_name) => common_name.clone(),
        None => default_root_common_name(name),
    };
    let simulate_failures_ppm = match table.simulate_failures {
        Some(share) if (0.0..=1.0).contains(&share) => (share * 1_000_000.0).round() as u32,
        Some(share) => {
            validator.error(
                file,
                &path.key("simulate_failures"),
                Anchor::Value,
                format!("`simulate_failures` must be from 0 to 1, not {share}"),
            );
            return None;
        }
        None => 0,
    };
    Some(Settings {
        root_common_name,
        simulate_failures_ppm,
    })
}

/// The fields of `[certificate.NAME]` this kind of CA takes: none.
pub(crate) const CERTIFICATE_FIELDS: &[&str] = &[];

/// The per-certificate options of this kind: none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {}

impl Options {
    /// The options as `key = value` lines of the issuance digest: none.
    pub fn issuance_fields(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// The per-certificate options of this kind: none to check.
pub(crate) fn order_options(
    _validator: &mut Validator<'_>,
    _file: usize,
    _path: &KeyPath,
    _table: &CertificateTable,
    _dcv: &[crate::spec::DcvRule],
) -> Options {
    Options {}
}

/// What the settings point at outside config, for preflight: nothing.
pub(crate) fn references(_settings: &Settings) -> Vec<(String, crate::preflight::Target)> {
    Vec::new()
}
