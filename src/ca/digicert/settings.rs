//! `[ca.NAME]` with `kind = "digicert"`: the table as written, its checks, and the validated
//! settings. Pure: no I/O, clock or environment.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::provider::{
    require, Anchor, CertificateTable, KeyPath, Origin, PaymentMethodName, SecretField, SecretRef,
    SecretTable, ServiceUrl, SignatureHashName, Validator,
};
use crate::spec::{DcvMethod, DcvRule};

/// CertCentral's Services API v2 (US instance).
const DIGICERT_URL: &str = "https://www.digicert.com/services/v2/";

/// DigiCert CertCentral (Services API v2).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = requires_api_key)]
pub struct Table {
    /// The CertCentral API key, from the environment or a file; never inline.
    #[schemars(with = "Option<SecretTable>")]
    pub(crate) api_key: Option<SecretField>,
    /// The Services API base URL. Default `https://www.digicert.com/services/v2/` (EU:
    /// `https://certcentral.digicert.eu/services/v2/`). Must be `https://` (plain `http://`
    /// only to a loopback simulator): it carries the key.
    pub(crate) url: Option<ServiceUrl>,
    /// HTTP proxy (`http://host:port`) the API is reached through. Plain `http://` is fine
    /// here: the API is reached through a CONNECT tunnel, TLS end to end.
    pub(crate) proxy: Option<String>,
    /// `read-write` (default) or `read-only` (a View Only key: plan and import work, apply
    /// refuses every write).
    pub(crate) mode: Option<ModeName>,
}

/// `api_key` is required; it is optional in `Table` only so that its absence is reported with
/// the account's name.
fn requires_api_key(schema: &mut schemars::Schema) {
    require(schema, "api_key");
}

/// Whether certform may change anything at a CA account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub(crate) enum ModeName {
    #[serde(rename = "read-write")]
    ReadWrite,
    #[serde(rename = "read-only")]
    ReadOnly,
}

/// `kind = "digicert"`: a CertCentral account. The API key stays a reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub api_key: SecretRef,
    /// Services API base URL, ending in `/`.
    pub url: String,
    /// `http://host:port` of an HTTP proxy.
    pub proxy: Option<String>,
    /// `true` for `mode = "read-only"`: apply refuses every write.
    pub read_only: bool,
}

/// Check `[ca.NAME]` of `kind = "digicert"` at `path` in `file`; `None` after reporting.
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
    let api_key = match &table.api_key {
        None => {
            validator.error_with_hint(
                file,
                path,
                Anchor::Key,
                format!("missing `api_key` for the DigiCert account `{name}`"),
                Some("add `api_key = { env = \"DIGICERT_API_KEY\" }`".to_string()),
            );
            None
        }
        Some(secret) => validator.secret(origin, &path.key("api_key"), secret),
    };
    let url = match &table.url {
        None => DIGICERT_URL.to_string(),
        Some(url) => match validator.service_url(file, &path.key("url"), "url", url) {
            Some(url) if url.ends_with('/') => url,
            Some(url) => format!("{url}/"),
            None => String::new(),
        },
    };
    if let Some(proxy) = &table.proxy {
        // `http://host:port`: a plain HTTP proxy reached with CONNECT; no credentials in
        // config (they would be a plaintext secret).
        let valid = proxy
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .is_some_and(|authority| {
                !authority.contains('@')
                    && !authority.contains('/')
                    && authority.rsplit_once(':').is_some_and(|(host, port)| {
                        !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                    })
            });
        if !valid {
            validator.error_with_hint(
                file,
                &path.key("proxy"),
                Anchor::Value,
                "`proxy` must be `http://host:port` (an HTTP proxy reached with CONNECT)"
                    .to_string(),
                Some("credentials in the proxy URL are not supported".to_string()),
            );
        }
    }
    if validator.error_count() > before {
        return None;
    }
    Some(Settings {
        api_key: api_key?,
        url,
        proxy: table.proxy.clone(),
        read_only: table.mode == Some(ModeName::ReadOnly),
    })
}

/// The fields of `[certificate.NAME]` a DigiCert account takes (its order options).
pub(crate) const CERTIFICATE_FIELDS: &[&str] = &[
    "product",
    "organization",
    "payment_method",
    "signature_hash",
    "server_platform",
];

/// The DigiCert order options of a certificate (`product`, `organization`, ..., and the DCV
/// method in CertCentral's words), as the `ca_options` carried to the CA.
pub(crate) fn order_options(
    validator: &mut Validator<'_>,
    file: usize,
    path: &KeyPath,
    table: &CertificateTable,
    dcv: &[DcvRule],
) -> BTreeMap<String, String> {
    let mut options = BTreeMap::new();
    // A DigiCert order has one DCV method for all its names.
    let methods: BTreeSet<&str> = dcv
        .iter()
        .map(|rule| match rule.method {
            DcvMethod::Dns { .. } => "dns-txt-token",
            DcvMethod::Http { .. } => "http-token",
            DcvMethod::Email => "email",
        })
        .collect();
    if methods.len() > 1 {
        validator.error(
            file,
            &path.key("dcv"),
            Anchor::Key,
            "a DigiCert order proves control of all its names one way: use one `dcv` method"
                .to_string(),
        );
    }
    if let Some(method) = methods.into_iter().next() {
        options.insert("dcv_method".to_string(), method.to_string());
    }
    if let Some(product) = &table.product {
        if product.trim().is_empty() {
            validator.error(
                file,
                &path.key("product"),
                Anchor::Value,
                "`product` must not be empty".to_string(),
            );
        }
        options.insert("product".to_string(), product.trim().to_string());
    }
    if let Some(organization) = table.organization {
        if organization < 1 {
            validator.error(
                file,
                &path.key("organization"),
                Anchor::Value,
                "`organization` must be a positive organization id".to_string(),
            );
        }
        options.insert("organization".to_string(), organization.to_string());
    }
    if let Some(method) = table.payment_method {
        let text = match method {
            PaymentMethodName::Balance => "balance",
            PaymentMethodName::Card => "card",
            PaymentMethodName::Profile => "profile",
        };
        options.insert("payment_method".to_string(), text.to_string());
    }
    if let Some(hash) = table.signature_hash {
        let text = match hash {
            SignatureHashName::Sha256 => "sha256",
            SignatureHashName::Sha384 => "sha384",
            SignatureHashName::Sha512 => "sha512",
        };
        options.insert("signature_hash".to_string(), text.to_string());
    }
    if let Some(platform) = table.server_platform {
        options.insert("server_platform".to_string(), platform.to_string());
    }
    options
}
