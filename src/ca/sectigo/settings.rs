//! `[ca.NAME]` with `kind = "sectigo"` and the Sectigo fields of `[certificate.NAME]`: the
//! tables as written, their checks, and the validated settings. Pure: no I/O, clock or
//! environment.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ca::registry::CaOptions;
use crate::config::provider::{
    require, Anchor, CertificateTable, FieldValue, IdOrName, KeyPath, Origin, SecretField,
    SecretRef, SecretTable, ServiceUrl, Validator,
};
use crate::spec::{DcvMethod, DcvRule};

/// Sectigo Certificate Manager's header-authenticated REST API.
pub const SECTIGO_URL: &str = "https://cert-manager.com/api";

/// The most characters SCM stores in `comments`.
pub const COMMENTS_LIMIT: usize = 1024;
/// The most characters a certificate's own `comments` may hold: certform appends its marker
/// (`\ncertform <tag>`, at most 34 characters) within SCM's limit.
pub const OWN_COMMENTS_LIMIT: usize = 990;
/// The most characters of `externalRequester` (the addresses joined by `, `).
pub const EXTERNAL_REQUESTER_LIMIT: usize = 512;

/// Sectigo Certificate Manager (REST API with login, password and customer URI).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = requires_credentials)]
pub struct Table {
    /// The API base URL. Default `https://cert-manager.com/api`; regional or customer hosts
    /// (`https://hard.cert-manager.com/api`, ...) are allowed. Must be `https://` (plain
    /// `http://` only to a loopback simulator): it carries the password.
    pub(crate) url: Option<ServiceUrl>,
    /// The customer URI: the segment in `https://cert-manager.com/customer/<customer_uri>`.
    pub(crate) customer_uri: Option<String>,
    /// The administrator's login (an API admin with the RAO/DRAO SSL or MRAO role).
    pub(crate) login: Option<String>,
    /// The administrator's password, from the environment or a file; never inline.
    #[schemars(with = "Option<SecretTable>")]
    pub(crate) password: Option<SecretField>,
    /// HTTP proxy (`http://host:port`) the API is reached through (CONNECT tunnel).
    pub(crate) proxy: Option<String>,
    /// `read-write` (default) or `read-only` (plan, `ca info` and import work; apply refuses
    /// every write before a request is sent).
    pub(crate) mode: Option<ModeName>,
    /// When refresh lists this account's certificates for the inventory: `daily` (default),
    /// `every-run` or `off`. Every kind of CA takes it.
    pub(crate) inventory: Option<crate::ca_inventory::Schedule>,
    /// Most new requests (enroll, renew, replace) one run sends to this account. Default: no
    /// limit (SCM documents none).
    #[schemars(range(min = 1))]
    pub(crate) max_orders_per_run: Option<i64>,
}

fn requires_credentials(schema: &mut schemars::Schema) {
    require(schema, "customer_uri");
    require(schema, "login");
    require(schema, "password");
}

/// Whether certform may change anything at the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(rename = "SectigoModeName")]
pub(crate) enum ModeName {
    #[serde(rename = "read-write")]
    ReadWrite,
    #[serde(rename = "read-only")]
    ReadOnly,
}

/// `kind = "sectigo"`: an SCM account. The password stays a reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// API base URL, without a trailing `/` (paths start `/ssl/v1/...`).
    pub url: String,
    pub customer_uri: String,
    pub login: String,
    pub password: SecretRef,
    pub proxy: Option<String>,
    pub read_only: bool,
}

/// Check `[ca.NAME]` of `kind = "sectigo"`; `None` after reporting.
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
    let password = match &table.password {
        None => {
            validator.error_with_hint(
                file,
                path,
                Anchor::Key,
                format!("missing `password` for the Sectigo account `{name}`"),
                Some("add `password = { env = \"SECTIGO_PASSWORD\" }`".to_string()),
            );
            None
        }
        Some(secret) => validator.secret(origin, &path.key("password"), secret),
    };
    let mut text_field = |key: &str, value: &Option<String>, hint: &str| -> Option<String> {
        match value.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() && !text.chars().any(char::is_control) => {
                Some(text.to_string())
            }
            Some(_) => {
                validator.error(
                    file,
                    &path.key(key),
                    Anchor::Value,
                    format!("`{key}` must be a non-empty single line"),
                );
                None
            }
            None => {
                validator.error_with_hint(
                    file,
                    path,
                    Anchor::Key,
                    format!("missing `{key}` for the Sectigo account `{name}`"),
                    Some(hint.to_string()),
                );
                None
            }
        }
    };
    let customer_uri = text_field(
        "customer_uri",
        &table.customer_uri,
        "the customer URI is the segment in `https://cert-manager.com/customer/<customer_uri>`",
    );
    let login = text_field(
        "login",
        &table.login,
        "the login of an SCM administrator allowed to use the REST API",
    );
    if let Some(uri) = &customer_uri {
        if uri.contains('/') || uri.contains(char::is_whitespace) {
            validator.error_with_hint(
                file,
                &path.key("customer_uri"),
                Anchor::Value,
                format!("`customer_uri` must be the customer URI alone, not `{uri}`"),
                Some("take the segment after `/customer/` in the SCM login address".to_string()),
            );
        }
    }
    let url = match &table.url {
        None => SECTIGO_URL.to_string(),
        Some(url) => validator
            .service_url(file, &path.key("url"), "url", url)
            .map(|url| url.trim_end_matches('/').to_string())
            .unwrap_or_default(),
    };
    if let Some(proxy) = &table.proxy {
        if !valid_proxy(proxy) {
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
        url,
        customer_uri: customer_uri?,
        login: login?,
        password: password?,
        proxy: table.proxy.clone(),
        read_only: table.mode == Some(ModeName::ReadOnly),
    })
}

fn valid_proxy(proxy: &str) -> bool {
    proxy
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .is_some_and(|authority| {
            !authority.contains('@')
                && !authority.contains('/')
                && authority.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                })
        })
}

/// The fields of `[certificate.NAME]` a Sectigo account takes.
pub(crate) const CERTIFICATE_FIELDS: &[&str] = &[
    "profile",
    "organization",
    "term",
    "comments",
    "external_requesters",
    "custom_fields",
];

/// A profile or organization as configured: by id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    Id(u64),
    Name(String),
}

impl Reference {
    /// Whether `id`/`name` is the one meant (names compare without case).
    pub fn matches(&self, id: u64, name: &str) -> bool {
        match self {
            Reference::Id(want) => *want == id,
            Reference::Name(want) => want.eq_ignore_ascii_case(name.trim()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Reference::Id(id) => id.to_string(),
            Reference::Name(name) => format!("`{name}`"),
        }
    }

    fn digest_value(&self) -> String {
        match self {
            Reference::Id(id) => id.to_string(),
            Reference::Name(name) => name.clone(),
        }
    }
}

/// SCM's `dcvMode` of an enrollment, from the certificate's `dcv` rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DcvMode {
    #[serde(rename = "CNAME")]
    Cname,
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "EMAIL")]
    Email,
}

impl DcvMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DcvMode::Cname => "CNAME",
            DcvMode::Http => "HTTP",
            DcvMode::Email => "EMAIL",
        }
    }
}

/// The Sectigo options of one certificate, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// The profile; `None` is reported at validation (required).
    pub profile: Option<Reference>,
    /// The organization or department; `None` is reported at validation (required).
    pub organization: Option<Reference>,
    /// Term in days; `None`: the profile's shortest.
    pub term: Option<u32>,
    pub comments: Option<String>,
    pub external_requesters: Vec<String>,
    /// Custom field values by name, as text (dates `YYYY-MM-DD`).
    pub custom_fields: BTreeMap<String, String>,
    pub dcv_mode: Option<DcvMode>,
}

impl Options {
    /// The options as `key = value` lines of the issuance digest, sorted by key. Comments and
    /// requesters do not change the certificate, so they are not hashed.
    pub fn issuance_fields(&self) -> Vec<(String, String)> {
        let custom = if self.custom_fields.is_empty() {
            None
        } else {
            Some(
                self.custom_fields
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        };
        let fields = [
            ("custom_fields", custom),
            ("dcv_mode", self.dcv_mode.map(|m| m.as_str().to_string())),
            (
                "organization",
                self.organization.as_ref().map(Reference::digest_value),
            ),
            (
                "profile",
                self.profile.as_ref().map(Reference::digest_value),
            ),
            ("term", self.term.map(|t| t.to_string())),
        ];
        fields
            .into_iter()
            .filter_map(|(key, value)| value.map(|value| (key.to_string(), value)))
            .collect()
    }

    /// The Sectigo options in `options`; none for another kind's.
    pub fn of(options: &CaOptions) -> &Options {
        match options {
            CaOptions::Sectigo(options) => options,
            _ => &NO_OPTIONS,
        }
    }
}

static NO_OPTIONS: Options = Options {
    profile: None,
    organization: None,
    term: None,
    comments: None,
    external_requesters: Vec::new(),
    custom_fields: BTreeMap::new(),
    dcv_mode: None,
};

fn reference(
    validator: &mut Validator<'_>,
    file: usize,
    path: &KeyPath,
    key: &str,
    value: Option<&IdOrName>,
) -> Option<Reference> {
    match value {
        None => {
            validator.error_with_hint(
                file,
                path,
                Anchor::Key,
                format!("a Sectigo certificate needs `{key}` (an id or a name)"),
                Some(format!(
                    "`certform ca info ACCOUNT` lists the account's {key}s"
                )),
            );
            None
        }
        Some(IdOrName::Id(id)) => match u64::try_from(*id) {
            Ok(id) if id >= 1 => Some(Reference::Id(id)),
            _ => {
                validator.error(
                    file,
                    &path.key(key),
                    Anchor::Value,
                    format!("`{key}` must be a positive id or a name"),
                );
                None
            }
        },
        Some(IdOrName::Name(name)) if name.trim().is_empty() => {
            validator.error(
                file,
                &path.key(key),
                Anchor::Value,
                format!("`{key}` must not be empty"),
            );
            None
        }
        Some(IdOrName::Name(name)) => Some(Reference::Name(name.trim().to_string())),
    }
}

/// Whether `text` looks like one email address (`local@domain.tld`, no spaces or commas).
pub fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == ';')
}

/// Whether `text` is a `YYYY-MM-DD` date.
pub fn is_date(text: &str) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    text.len() == 10 && time::Date::parse(text, &format).is_ok()
}

/// The Sectigo options of a certificate, checked (everything that needs no account).
pub(crate) fn order_options(
    validator: &mut Validator<'_>,
    file: usize,
    path: &KeyPath,
    table: &CertificateTable,
    dcv: &[DcvRule],
) -> Options {
    let mut options = Options {
        profile: reference(validator, file, path, "profile", table.profile.as_ref()),
        organization: reference(
            validator,
            file,
            path,
            "organization",
            table.organization.as_ref(),
        ),
        ..Options::default()
    };
    let modes: std::collections::BTreeSet<DcvMode> = dcv
        .iter()
        .map(|rule| match rule.method {
            DcvMethod::Dns { .. } => DcvMode::Cname,
            DcvMethod::Http { .. } => DcvMode::Http,
            DcvMethod::Email { .. } => DcvMode::Email,
        })
        .collect();
    if modes.len() > 1 {
        validator.error(
            file,
            &path.key("dcv"),
            Anchor::Key,
            "a Sectigo request proves control of all its names one way: use one `dcv` method"
                .to_string(),
        );
    }
    options.dcv_mode = modes.into_iter().next();
    if let Some(term) = table.term {
        match u32::try_from(term) {
            Ok(days) if days >= 1 => options.term = Some(days),
            _ => validator.error(
                file,
                &path.key("term"),
                Anchor::Value,
                "`term` must be a positive number of days".to_string(),
            ),
        }
    }
    if let Some(comments) = &table.comments {
        let length = comments.chars().count();
        if length > OWN_COMMENTS_LIMIT {
            validator.error_with_hint(
                file,
                &path.key("comments"),
                Anchor::Value,
                format!(
                    "`comments` is {length} characters long; at most {OWN_COMMENTS_LIMIT} are allowed"
                ),
                Some(format!(
                    "SCM stores {COMMENTS_LIMIT} characters and certform adds its marker to find the request again"
                )),
            );
        } else if !comments.is_empty() {
            options.comments = Some(comments.clone());
        }
    }
    if let Some(requesters) = &table.external_requesters {
        for (index, address) in requesters.iter().enumerate() {
            if !is_email(address.trim()) {
                validator.error(
                    file,
                    &path.key("external_requesters").index(index),
                    Anchor::Value,
                    format!(
                        "`{}` is not an email address",
                        crate::config::provider::shown(address)
                    ),
                );
            }
        }
        let joined: Vec<String> = requesters.iter().map(|a| a.trim().to_string()).collect();
        if joined.join(", ").chars().count() > EXTERNAL_REQUESTER_LIMIT {
            validator.error(
                file,
                &path.key("external_requesters"),
                Anchor::Value,
                format!(
                    "`external_requesters` joined are longer than SCM's {EXTERNAL_REQUESTER_LIMIT} characters"
                ),
            );
        }
        options.external_requesters = joined;
    }
    if let Some(fields) = &table.custom_fields {
        for (name, value) in fields {
            let at = path.key("custom_fields").key(name);
            let text = match value {
                FieldValue::Text(text) => text.clone(),
                FieldValue::Integer(number) => number.to_string(),
                FieldValue::Boolean(flag) => flag.to_string(),
            };
            if name.trim().is_empty() || name.chars().count() > 256 {
                validator.error(
                    file,
                    &at,
                    Anchor::Key,
                    "a custom field name must be 1 to 256 characters".to_string(),
                );
            } else if text.is_empty() || text.chars().count() > 256 {
                validator.error(
                    file,
                    &at,
                    Anchor::Value,
                    format!("the value of custom field `{name}` must be 1 to 256 characters"),
                );
            } else {
                options.custom_fields.insert(name.clone(), text);
            }
        }
    }
    options
}

/// What the settings point at outside config, for preflight: the password.
pub(crate) fn references(settings: &Settings) -> Vec<(String, crate::preflight::Target)> {
    vec![(
        "password".to_string(),
        crate::preflight::Target::Secret(settings.password.clone()),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_lines_are_the_options_that_change_the_certificate_sorted() {
        assert!(Options::default().issuance_fields().is_empty());
        let mut options = Options {
            profile: Some(Reference::Name("OV Multi-Domain".into())),
            organization: Some(Reference::Id(1)),
            term: Some(365),
            comments: Some("not hashed".into()),
            external_requesters: vec!["a@example.com".into()],
            ..Options::default()
        };
        options.custom_fields.insert("cost".into(), "42".into());
        let keys: Vec<String> = options
            .issuance_fields()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            keys,
            [
                "custom_fields=cost=42",
                "organization=1",
                "profile=OV Multi-Domain",
                "term=365"
            ]
        );
    }

    #[test]
    fn references_match_by_id_or_by_name_without_case() {
        assert!(Reference::Id(7).matches(7, "x"));
        assert!(!Reference::Id(7).matches(8, "x"));
        assert!(Reference::Name("OV SSL".into()).matches(1, "ov ssl"));
        assert!(!Reference::Name("OV SSL".into()).matches(1, "EV SSL"));
    }

    #[test]
    fn emails_and_dates_are_checked_by_shape() {
        assert!(is_email("pki@example.com"));
        for bad in [
            "",
            "pki",
            "pki@",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@x.com, b@y.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        assert!(is_date("2026-12-31"));
        assert!(!is_date("2026-13-01"));
        assert!(!is_date("31/12/2026"));
    }

    #[test]
    fn proxies_are_plain_host_and_port() {
        assert!(valid_proxy("http://proxy.internal:3128"));
        assert!(!valid_proxy("https://proxy:3128"));
        assert!(!valid_proxy("http://user:pw@proxy:3128"));
        assert!(!valid_proxy("http://proxy"));
    }
}
