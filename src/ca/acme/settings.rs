//! `[ca.NAME]` with `kind = "acme"`: the table as written, its checks, and the validated
//! settings. Pure: no I/O, clock or environment.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::provider::{
    absolute, require, Anchor, CertificateTable, KeyPath, Origin, SecretField, SecretRef,
    SecretTable, ServiceUrl, Validator,
};

/// An ACME CA (RFC 8555): Let's Encrypt, ZeroSSL, Pebble, ...
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = requires_directory)]
pub struct Table {
    /// The directory URL (`https://...`), e.g. Let's Encrypt's
    /// `https://acme-v02.api.letsencrypt.org/directory`.
    pub(crate) directory: Option<ServiceUrl>,
    /// Contact email addresses of the account.
    pub(crate) contact: Option<Vec<String>>,
    /// Extra PEM trust anchor for the directory's TLS (e.g. Pebble's), relative to this file.
    /// There is no switch that turns verification off.
    pub(crate) ca_bundle: Option<String>,
    /// External account binding (ZeroSSL, Sectigo, DigiCert ACME).
    pub(crate) eab: Option<EabTable>,
    /// Certificate profile to request (CAs with the profiles extension).
    pub(crate) profile: Option<String>,
    /// Prefer the alternate chain whose top issuer has this common name.
    pub(crate) preferred_chain: Option<String>,
    /// When refresh lists this account's orders to find certificates certform does not manage
    /// or holds twice (`certform status`): `daily` (default; at most once in 24 hours),
    /// `every-run` or `off`. Every kind of CA takes it.
    pub(crate) inventory: Option<crate::ca_inventory::Schedule>,
    /// Most new orders (create, renew, reissue) one run sends to this account; the most
    /// urgent go first, the rest wait for a later run. Default: the CA's documented limit
    /// (Let's Encrypt: 300 new orders per 3 hours).
    #[schemars(range(min = 1))]
    pub(crate) max_orders_per_run: Option<i64>,
}

/// `directory` is required; it is optional in `Table` only so that its absence is reported
/// with the account's name.
fn requires_directory(schema: &mut schemars::Schema) {
    require(schema, "directory");
}

/// External account binding credentials of an ACME account.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EabTable {
    /// Key identifier given by the CA.
    pub(crate) kid: String,
    /// HMAC key (base64url) given by the CA, from the environment or a file; never inline.
    #[schemars(with = "SecretTable")]
    pub(crate) hmac: SecretField,
}

/// `kind = "acme"`: an ACME account. Secrets stay references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub directory: String,
    pub contact: Vec<String>,
    /// Absolute path of an extra trust anchor for the directory's TLS.
    pub ca_bundle: Option<PathBuf>,
    pub eab: Option<EabSettings>,
    pub profile: Option<String>,
    pub preferred_chain: Option<String>,
}

/// External account binding: key id and a reference to the HMAC key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EabSettings {
    pub kid: String,
    pub hmac: SecretRef,
}

/// Check `[ca.NAME]` of `kind = "acme"` at `path` in `file`; `None` after reporting.
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
    let directory = match &table.directory {
        None => {
            validator.error(
                file,
                path,
                Anchor::Key,
                format!("missing `directory` for the ACME account `{name}`"),
            );
            String::new()
        }
        Some(url) => validator
            .service_url(file, &path.key("directory"), "directory", url)
            .unwrap_or_default(),
    };
    let mut contact = Vec::new();
    for (index, address) in table.contact.iter().flatten().enumerate() {
        let address = address.strip_prefix("mailto:").unwrap_or(address);
        let valid = address
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
            && !address.contains(char::is_whitespace);
        if valid {
            contact.push(address.to_string());
        } else {
            validator.error(
                file,
                &path.key("contact").index(index),
                Anchor::Value,
                "`contact` entries must be email addresses".to_string(),
            );
        }
    }
    let ca_bundle = table
        .ca_bundle
        .as_ref()
        .map(|bundle| absolute(&base, bundle));
    let eab = match &table.eab {
        None => None,
        Some(eab) => {
            if eab.kid.trim().is_empty() {
                validator.error(
                    file,
                    &path.key("eab").key("kid"),
                    Anchor::Value,
                    "`eab.kid` must not be empty".to_string(),
                );
            }
            validator
                .secret(origin, &path.key("eab").key("hmac"), &eab.hmac)
                .map(|hmac| EabSettings {
                    kid: eab.kid.clone(),
                    hmac,
                })
        }
    };
    for (key, value) in [
        ("profile", &table.profile),
        ("preferred_chain", &table.preferred_chain),
    ] {
        if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
            validator.error(
                file,
                &path.key(key),
                Anchor::Value,
                format!("`{key}` must not be empty"),
            );
        }
    }
    if validator.error_count() > before {
        return None;
    }
    Some(Settings {
        directory,
        contact,
        ca_bundle,
        eab,
        profile: table.profile.clone(),
        preferred_chain: table.preferred_chain.clone(),
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

/// What the settings point at outside config, for preflight: the CA bundle and the EAB key.
pub(crate) fn references(settings: &Settings) -> Vec<(String, crate::preflight::Target)> {
    use crate::preflight::Target;
    let mut out = Vec::new();
    if let Some(bundle) = &settings.ca_bundle {
        out.push(("ca_bundle".to_string(), Target::File(bundle.clone())));
    }
    if let Some(eab) = &settings.eab {
        out.push(("eab.hmac".to_string(), Target::Secret(eab.hmac.clone())));
    }
    out
}
