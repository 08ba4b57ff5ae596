//! `[ca.NAME]` with `kind = "digicert"`: the table as written, its checks, and the validated
//! settings. Pure: no I/O, clock or environment.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ca::registry::CaOptions;
use crate::config::provider::{
    require, Anchor, CertificateTable, IdOrName, KeyPath, Origin, PaymentMethodName, SecretField,
    SecretRef, SecretTable, ServiceUrl, SignatureHashName, Validator,
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
    /// When refresh lists this account's orders to find certificates certform does not manage
    /// or holds twice (`certform status`): `daily` (default; at most once in 24 hours),
    /// `every-run` or `off`. Every kind of CA takes it.
    pub(crate) inventory: Option<crate::ca_inventory::Schedule>,
    /// Most new orders (create, renew, reissue) one run sends to this account; the most
    /// urgent go first, the rest wait for a later run. Default: the CA's documented limit
    /// (250: CertCentral allows 1,000 API requests per 3 minutes).
    #[schemars(range(min = 1))]
    pub(crate) max_orders_per_run: Option<i64>,
    /// The client-side request budget of this account: every window in force at once, rolling.
    /// Default: CertCentral's limits, `[{ requests = 100, seconds = 5 }, { requests = 1000,
    /// seconds = 180 }]`, shared by every request of a run, so certform never causes a 429
    /// itself. `[]` turns the budget off (a simulator with its limits off).
    pub(crate) rate_limit: Option<Vec<RateWindowTable>>,
}

/// One rolling window of `rate_limit`: at most `requests` in any `seconds`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateWindowTable {
    /// Requests allowed in the window (at least 1).
    #[schemars(range(min = 1))]
    pub(crate) requests: i64,
    /// The window's length in seconds (fractions allowed, e.g. `0.25` against a simulator
    /// whose limits run 20 times faster); at most a day.
    pub(crate) seconds: f64,
}

/// CertCentral's documented limits (per account, rolling): 100 requests per 5 seconds and
/// 1,000 per 3 minutes.
pub const DEFAULT_RATE_LIMIT: [RateWindow; 2] = [
    RateWindow {
        requests: 100,
        per_ms: 5_000,
    },
    RateWindow {
        requests: 1000,
        per_ms: 180_000,
    },
];

/// One window of an account's request budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateWindow {
    pub requests: u32,
    /// The window's length in milliseconds.
    pub per_ms: u64,
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
    /// The request budget (`rate_limit`); empty: none.
    pub rate_limit: Vec<RateWindow>,
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
    let rate_limit = match &table.rate_limit {
        None => DEFAULT_RATE_LIMIT.to_vec(),
        Some(windows) => rate_windows(validator, file, &path.key("rate_limit"), windows),
    };
    if validator.error_count() > before {
        return None;
    }
    Some(Settings {
        api_key: api_key?,
        url,
        proxy: table.proxy.clone(),
        read_only: table.mode == Some(ModeName::ReadOnly),
        rate_limit,
    })
}

/// The windows of `rate_limit`, each checked where it is written.
fn rate_windows(
    validator: &mut Validator<'_>,
    file: usize,
    path: &KeyPath,
    windows: &[RateWindowTable],
) -> Vec<RateWindow> {
    let mut out = Vec::new();
    for (index, window) in windows.iter().enumerate() {
        let at = path.index(index);
        let requests = u32::try_from(window.requests).ok().filter(|r| *r >= 1);
        if requests.is_none() {
            validator.error(
                file,
                &at.key("requests"),
                Anchor::Value,
                format!(
                    "`requests` must be a whole number from 1 to {}, not {}",
                    u32::MAX,
                    window.requests
                ),
            );
        }
        let per_ms =
            (window.seconds.is_finite() && window.seconds >= 0.001 && window.seconds <= 86_400.0)
                .then(|| (window.seconds * 1000.0).round() as u64);
        if per_ms.is_none() {
            validator.error_with_hint(
                file,
                &at.key("seconds"),
                Anchor::Value,
                format!(
                    "`seconds` must be from 0.001 to 86400 (a day), not {}",
                    window.seconds
                ),
                Some("CertCentral's windows: `{ requests = 100, seconds = 5 }` and `{ requests = 1000, seconds = 180 }`".to_string()),
            );
        }
        if let (Some(requests), Some(per_ms)) = (requests, per_ms) {
            out.push(RateWindow { requests, per_ms });
        }
    }
    out
}

/// The fields of `[certificate.NAME]` a DigiCert account takes (its order options).
pub(crate) const CERTIFICATE_FIELDS: &[&str] = &[
    "product",
    "organization",
    "payment_method",
    "signature_hash",
    "server_platform",
];

/// A DigiCert order's payment method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentMethod {
    Balance,
    Card,
    Profile,
}

impl PaymentMethod {
    /// CertCentral's wire name (`payment_method`).
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Balance => "balance",
            PaymentMethod::Card => "card",
            PaymentMethod::Profile => "profile",
        }
    }
}

/// The signature hash of a DigiCert certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureHash {
    Sha256,
    Sha384,
    Sha512,
}

impl SignatureHash {
    /// CertCentral's wire name (`certificate.signature_hash`).
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureHash::Sha256 => "sha256",
            SignatureHash::Sha384 => "sha384",
            SignatureHash::Sha512 => "sha512",
        }
    }
}

/// The one DCV method of a DigiCert order, from the certificate's `dcv` rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DcvMethodWire {
    #[serde(rename = "dns-txt-token")]
    DnsTxtToken,
    #[serde(rename = "http-token")]
    HttpToken,
    #[serde(rename = "email")]
    Email,
}

impl DcvMethodWire {
    /// CertCentral's wire name (`dcv_method`).
    pub fn as_str(self) -> &'static str {
        match self {
            DcvMethodWire::DnsTxtToken => "dns-txt-token",
            DcvMethodWire::HttpToken => "http-token",
            DcvMethodWire::Email => "email",
        }
    }
}

/// The DigiCert order options of one certificate, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Product `name_id`; `None`: the default product.
    pub product: Option<String>,
    /// Id of the validated organization (OV/EV products).
    pub organization: Option<u64>,
    /// `None`: `balance`.
    pub payment_method: Option<PaymentMethod>,
    /// `None`: the product's default.
    pub signature_hash: Option<SignatureHash>,
    /// Server platform id (`-1` = other).
    pub server_platform: Option<i64>,
    /// The order's DCV method, from the `dcv` rules.
    pub dcv_method: Option<DcvMethodWire>,
}

impl Options {
    /// The options as `key = value` lines of the issuance digest, sorted by key. These are the
    /// lines certform has always hashed (they were a sorted string map), so the digests in
    /// existing state stay valid: change them and every DigiCert certificate is reissued.
    pub fn issuance_fields(&self) -> Vec<(String, String)> {
        let fields = [
            (
                "dcv_method",
                self.dcv_method.map(|m| m.as_str().to_string()),
            ),
            ("organization", self.organization.map(|o| o.to_string())),
            (
                "payment_method",
                self.payment_method.map(|m| m.as_str().to_string()),
            ),
            ("product", self.product.clone()),
            (
                "server_platform",
                self.server_platform.map(|p| p.to_string()),
            ),
            (
                "signature_hash",
                self.signature_hash.map(|h| h.as_str().to_string()),
            ),
        ];
        fields
            .into_iter()
            .filter_map(|(key, value)| value.map(|value| (key.to_string(), value)))
            .collect()
    }

    /// The product to order: the configured one, else `default`.
    pub fn product_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.product.as_deref().unwrap_or(default)
    }
}

/// The DigiCert order options of a certificate (`product`, `organization`, ..., and the DCV
/// method in CertCentral's words), checked.
pub(crate) fn order_options(
    validator: &mut Validator<'_>,
    file: usize,
    path: &KeyPath,
    table: &CertificateTable,
    dcv: &[DcvRule],
) -> Options {
    let mut options = Options::default();
    // A DigiCert order has one DCV method for all its names.
    let methods: BTreeSet<DcvMethodWire> = dcv
        .iter()
        .map(|rule| match rule.method {
            DcvMethod::Dns { .. } => DcvMethodWire::DnsTxtToken,
            DcvMethod::Http { .. } => DcvMethodWire::HttpToken,
            DcvMethod::Email { .. } => DcvMethodWire::Email,
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
    options.dcv_method = methods.into_iter().next();
    if let Some(product) = &table.product {
        if product.trim().is_empty() {
            validator.error(
                file,
                &path.key("product"),
                Anchor::Value,
                "`product` must not be empty".to_string(),
            );
        }
        options.product = Some(product.trim().to_string());
    }
    if let Some(organization) = &table.organization {
        let id = match organization {
            IdOrName::Id(id) => u64::try_from(*id).ok(),
            IdOrName::Name(_) => None,
        };
        match id {
            Some(id) if id >= 1 => options.organization = Some(id),
            _ => validator.error(
                file,
                &path.key("organization"),
                Anchor::Value,
                "`organization` must be a positive organization id".to_string(),
            ),
        }
    }
    options.payment_method = table.payment_method.map(|method| match method {
        PaymentMethodName::Balance => PaymentMethod::Balance,
        PaymentMethodName::Card => PaymentMethod::Card,
        PaymentMethodName::Profile => PaymentMethod::Profile,
    });
    options.signature_hash = table.signature_hash.map(|hash| match hash {
        SignatureHashName::Sha256 => SignatureHash::Sha256,
        SignatureHashName::Sha384 => SignatureHash::Sha384,
        SignatureHashName::Sha512 => SignatureHash::Sha512,
    });
    options.server_platform = table.server_platform;
    options
}

/// No options: what a certificate of another kind's account carries for DigiCert.
static NO_OPTIONS: Options = Options {
    product: None,
    organization: None,
    payment_method: None,
    signature_hash: None,
    server_platform: None,
    dcv_method: None,
};

impl Options {
    /// The DigiCert options in `options`; none when they are another kind's (config gives a
    /// certificate the options of its own CA's kind, so that happens only in tests).
    pub fn of(options: &CaOptions) -> &Options {
        match options {
            CaOptions::Digicert(options) => options,
            _ => &NO_OPTIONS,
        }
    }
}

/// What the settings point at outside config, for preflight: the API key.
pub(crate) fn references(settings: &Settings) -> Vec<(String, crate::preflight::Target)> {
    vec![(
        "api_key".to_string(),
        crate::preflight::Target::Secret(settings.api_key.clone()),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digicert_errors(extra: &str) -> Result<Settings, Vec<String>> {
        let text = format!(
            "[state]\nrepo = \"state\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"K\" }}\n{extra}\n"
        );
        let sources = [crate::config::Source {
            path: std::path::PathBuf::from("/c/certform.toml"),
            text,
        }];
        match crate::config::load(&sources) {
            Ok(config) => match config.cas.get("dc").map(|ca| &ca.kind) {
                Some(crate::config::CaKind::Digicert(settings)) => Ok(settings.clone()),
                _ => Err(vec!["no digicert account".to_string()]),
            },
            Err(diagnostics) => Err(diagnostics.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn rate_limit_defaults_to_certcentrals_windows_and_takes_fractions_and_off() {
        let settings = digicert_errors("").expect("valid");
        assert_eq!(settings.rate_limit, DEFAULT_RATE_LIMIT);
        let settings = digicert_errors(
            "rate_limit = [{ requests = 100, seconds = 0.25 }, { requests = 1000, seconds = 9 }]",
        )
        .expect("valid");
        assert_eq!(
            settings.rate_limit,
            [
                RateWindow {
                    requests: 100,
                    per_ms: 250
                },
                RateWindow {
                    requests: 1000,
                    per_ms: 9000
                }
            ]
        );
        assert!(digicert_errors("rate_limit = []")
            .expect("valid")
            .rate_limit
            .is_empty());
    }

    #[test]
    fn bad_rate_limit_windows_are_named_with_their_line() {
        let errors = digicert_errors(
            "rate_limit = [\n  { requests = 0, seconds = 5 },\n  { requests = 10, seconds = -1 },\n]",
        )
        .expect_err("invalid");
        let all = errors.join("\n");
        assert!(
            all.contains("`requests` must be a whole number from 1"),
            "{all}"
        );
        assert!(
            all.contains("`seconds` must be from 0.001 to 86400"),
            "{all}"
        );
        assert!(all.contains("certform.toml:8:16"), "{all}");
        assert!(all.contains("certform.toml:9:30"), "{all}");
    }

    /// Only the options given become digest lines, sorted by key, spelt as CertCentral spells
    /// them: the lines the old string map produced.
    #[test]
    fn issuance_fields_are_the_given_options_sorted_by_key() {
        assert!(Options::default().issuance_fields().is_empty());
        let options = Options {
            signature_hash: Some(SignatureHash::Sha512),
            product: Some("ssl_ev_basic".to_string()),
            dcv_method: Some(DcvMethodWire::Email),
            ..Options::default()
        };
        assert_eq!(
            options.issuance_fields(),
            [
                ("dcv_method", "email"),
                ("product", "ssl_ev_basic"),
                ("signature_hash", "sha512"),
            ]
            .map(|(key, value)| (key.to_string(), value.to_string()))
        );
    }

    #[test]
    fn another_kinds_options_read_as_none_and_the_product_falls_back() {
        let local = CaOptions::default();
        assert_eq!(Options::of(&local), &Options::default());
        assert_eq!(Options::of(&local).product_or("ssl_basic"), "ssl_basic");
        let digicert = CaOptions::Digicert(Options {
            product: Some("ssl_plus".to_string()),
            ..Options::default()
        });
        assert_eq!(Options::of(&digicert).product_or("ssl_basic"), "ssl_plus");
    }
}
