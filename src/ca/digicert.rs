//! DigiCert CertCentral accounts, spoken through the Services API v2 (`X-DC-DEVKEY`).
//!
//! One `DigicertCa` is one API key on one CertCentral account. What it relies on, from the
//! reference (`../shared/reference/digicert.md`):
//!
//! - **No duplicate orders.** Every order carries certform's tag as `alternative_order_id`, so
//!   `refresh` by tag (`GET /order/alternate/{tag}`) finds it. The executor, and only it, looks
//!   the tag up before a create it resumes and before it repeats a create that failed in transit;
//!   `place_order` sends the create as asked.
//! - **Cheap refresh.** Many orders are read with the list API (pages of 1000), not one `GET` per
//!   order; details are read only for orders still in progress and for issued orders whose
//!   certificate id differs from the one last seen (a reissue outside certform). The last seen
//!   certificate id and serial of each order are kept in a small cache file beside the keys
//!   (`<keys_dir>/digicert/<account>/cache.json`); it holds no secret and losing it only costs
//!   requests.
//! - **HTTP** goes through `crate::http`: reads (and writes marked safe to repeat) are retried
//!   there on 5xx, timeouts and 429 (the `Retry-After` when present, else from 5 s doubling;
//!   `CERTFORM_RETRY_DELAY_MS` sets the first delay); a create is sent once, after the tag
//!   lookup says the order does not exist, and the executor decides whether to try again.
//!   A client-side rate limit (`DigicertSettings::limits`, e.g. `RATE_LIMITS`) can hold
//!   requests to DigiCert's published windows; it is off by default until the account's config
//!   can carry it (the simulator-backed benchmarks run with the server's limits off).
//! - **Read-only accounts** (`mode = "read-only"`, a View Only key) refuse every write before a
//!   request leaves the process.
//!
//! The API key is a `Secret`: never printed, logged, or put in errors; HTTP request bodies are
//! never logged.

pub(crate) mod open;
pub mod settings;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::{Date, Duration, OffsetDateTime};

use crate::ca::{
    CaError, Capabilities, CertificateAuthority, Challenge, ChallengeKind, ErrorClass, Fetched,
    IssuedCertificate, OrderQuery, OrderRequest, Problem, RevokeOutcome, ValidationMethod,
};
use crate::observed::{DcvStatus, OrderStatus, OrderView};
use crate::serial::Serial;
use crate::spec::{CertificateSpec, RevocationReason, Validity};
use settings::{DcvMethodWire, Options, PaymentMethod, SignatureHash};

/// Bound on one HTTP exchange with the API (connect, answer and body).
const REQUEST_TIMEOUT: StdDuration = StdDuration::from_secs(60);
/// Largest page the list endpoints serve.
const PAGE_LIMIT: u64 = 1000;
/// Up to this many orders are read one by one; more are read with the list API.
const DETAIL_THRESHOLD: usize = 10;
/// Largest answer body read.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// The file of `http-token` validation (the reference: `fileauth.txt`, UNCONFIRMED).
const HTTP_TOKEN_PATH: &str = "/.well-known/pki-validation/fileauth.txt";
/// Product ordered when a certificate names none.
pub const DEFAULT_PRODUCT: &str = "ssl_basic";
/// DigiCert's rate limits (reference §3): 100 requests per 5 seconds, 1,000 per 3 minutes.
pub const RATE_LIMITS: [crate::http::Window; 2] = [
    crate::http::Window::new(100, StdDuration::from_secs(5)),
    crate::http::Window::new(1000, StdDuration::from_secs(180)),
];

pub use crate::secrets::Secret;

/// How requests are retried: the HTTP layer's one policy.
pub type Retry = crate::http::RetryPolicy;

/// A CertCentral account's settings, resolved from config (the key already read).
#[derive(Debug, Clone)]
pub struct DigicertSettings {
    /// Services API base URL, ending in `/`.
    pub url: String,
    pub api_key: Secret,
    /// Refuse every write (`mode = "read-only"`).
    pub read_only: bool,
    pub retry: Retry,
    /// Directory of the refresh cache; `None` keeps it in memory only.
    pub cache_dir: Option<PathBuf>,
    /// `http://host:port` of an HTTP proxy reached with CONNECT.
    pub proxy: Option<String>,
    /// Client-side rate limit; empty (none) by default. `RATE_LIMITS` are DigiCert's.
    pub limits: Vec<crate::http::Window>,
}

impl DigicertSettings {
    pub fn new(url: impl Into<String>, api_key: Secret) -> Self {
        let mut url = url.into();
        if !url.ends_with('/') {
            url.push('/');
        }
        Self {
            url,
            api_key,
            read_only: false,
            retry: Retry::from_env(),
            cache_dir: None,
            proxy: None,
            limits: Vec::new(),
        }
    }
}

/// What refresh remembers of an order between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    certificate_id: Option<u64>,
    serial: Option<Serial>,
}

/// `cache.json`: per order, what was seen last, and the DCV random values of pending orders.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cache {
    #[serde(default)]
    orders: BTreeMap<u64, Seen>,
    #[serde(default)]
    tokens: BTreeMap<u64, String>,
}

/// One DigiCert CertCentral account.
pub struct DigicertCa {
    name: String,
    settings: DigicertSettings,
    client: crate::http::Client,
    cache: Mutex<Cache>,
    /// Whether the key's user is an administrator (may `skip_approval`), learned once.
    admin: tokio::sync::OnceCell<bool>,
}

impl fmt::Debug for DigicertCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigicertCa")
            .field("name", &self.name)
            .field("url", &self.settings.url)
            .field("read_only", &self.settings.read_only)
            .finish_non_exhaustive()
    }
}

/// A parsed answer.
struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl Answer {
    fn json(&self, what: &str) -> Result<Value, CaError> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!("DigiCert answered {what} with a body that is not JSON"),
            )
            .with_source(error)
        })
    }
}

pub use super::problem::FORBIDDEN_CAUSES;

/// A string field (numbers are rendered).
fn text(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integer field (strings of digits accepted).
fn int(value: &Value, key: &str) -> Option<u64> {
    match value.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An array field; `{}`/absent/`null` are empty (the API may send `[]` for `{}` and back).
fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    match value.get(key) {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

/// `yyyy-MM-dd` (or an ISO date-time) as the end of that day, UTC.
fn parse_day(text: &str) -> Option<OffsetDateTime> {
    let day = text.get(..10)?;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = Date::parse(day, &format).ok()?;
    Some(date.with_hms(23, 59, 59).ok()?.assume_utc())
}

/// Map a CertCentral order status.
pub fn map_status(status: &str) -> OrderStatus {
    match status {
        "issued" => OrderStatus::Issued,
        "revoked" => OrderStatus::Revoked,
        "canceled" | "cancelled" => OrderStatus::Canceled,
        "rejected" | "denied" => OrderStatus::Rejected,
        "expired" => OrderStatus::Expired,
        _ => OrderStatus::Pending,
    }
}

/// DigiCert's `dcv_method` for a validation method.
fn dcv_wire_name(method: ValidationMethod) -> &'static str {
    match method {
        ValidationMethod::DnsTxt => "dns-txt-token",
        ValidationMethod::DnsCname => "dns-cname-token",
        ValidationMethod::Http => "http-token",
        ValidationMethod::Email => "email",
    }
}

/// The name a DNS or email check of `domain` validates: without `*.` and `www.`.
fn dcv_base(domain: &str) -> &str {
    let name = domain.strip_prefix("*.").unwrap_or(domain);
    name.strip_prefix("www.").unwrap_or(name)
}

fn reason_text(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::Unspecified => "unspecified",
        RevocationReason::KeyCompromise => "keyCompromise",
        RevocationReason::AffiliationChanged => "affiliationChanged",
        RevocationReason::Superseded => "superseded",
        RevocationReason::CessationOfOperation => "cessationOfOperation",
    }
}

/// Percent-encode a path segment or query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn csr_pem(csr_der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE REQUEST", csr_der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

fn order_number(order_id: &str) -> Result<u64, CaError> {
    order_id.trim().parse::<u64>().map_err(|_| {
        CaError::new(
            ErrorClass::Rejected,
            format!("`{order_id}` is not a DigiCert order id"),
        )
    })
}

/// A summary of one order, from the list or the detail endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderInfo {
    pub id: u64,
    pub status: String,
    pub certificate_id: Option<u64>,
    pub common_name: String,
    pub dns_names: Vec<String>,
    pub serial: Option<Serial>,
    pub valid_till: Option<OffsetDateTime>,
    pub product: Option<String>,
    pub organization: Option<u64>,
    pub signature_hash: Option<String>,
    pub dcv_method: Option<String>,
    pub alternative_order_id: Option<String>,
    pub dcv_random_value: Option<String>,
    pub server_platform: Option<i64>,
    pub payment_method: Option<String>,
}

impl OrderInfo {
    /// The provider-neutral form `import` adopts, with the settings its config stub needs.
    pub fn into_account_order(self) -> crate::ca::AccountOrder {
        let mut settings = Vec::new();
        if let Some(product) = self.product {
            settings.push(("product".to_string(), toml::Value::String(product)));
        }
        if let Some(organization) = self.organization.and_then(|id| i64::try_from(id).ok()) {
            settings.push((
                "organization".to_string(),
                toml::Value::Integer(organization),
            ));
        }
        if let Some(hash) = self
            .signature_hash
            .filter(|hash| matches!(hash.as_str(), "sha256" | "sha384" | "sha512"))
        {
            settings.push(("signature_hash".to_string(), toml::Value::String(hash)));
        }
        crate::ca::AccountOrder {
            order_id: self.id.to_string(),
            status: self.status,
            common_name: self.common_name,
            not_after: self.valid_till,
            settings,
        }
    }

    /// From an entry of the list or the order detail.
    pub fn from_json(value: &Value) -> Option<Self> {
        let id = int(value, "id").or_else(|| int(value, "order_id"))?;
        let certificate = value.get("certificate").cloned().unwrap_or(Value::Null);
        let mut dns_names: Vec<String> = list(&certificate, "dns_names")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        let common_name = text(&certificate, "common_name").unwrap_or_default();
        if !common_name.is_empty() && !dns_names.contains(&common_name) {
            dns_names.insert(0, common_name.clone());
        }
        Some(Self {
            id,
            status: text(value, "status").unwrap_or_default(),
            certificate_id: int(&certificate, "id").or_else(|| int(value, "certificate_id")),
            common_name,
            dns_names,
            serial: text(&certificate, "serial_number")
                .filter(|s| !s.is_empty())
                .map(|s| Serial::parse(&s)),
            valid_till: text(&certificate, "valid_till").and_then(|t| parse_day(&t)),
            product: value
                .get("product")
                .and_then(|p| text(p, "name_id"))
                .filter(|p| !p.is_empty()),
            organization: value
                .get("organization")
                .and_then(|o| int(o, "id"))
                .or_else(|| certificate.get("organization").and_then(|o| int(o, "id")))
                .filter(|id| *id > 0),
            signature_hash: text(&certificate, "signature_hash").filter(|s| !s.is_empty()),
            dcv_method: text(value, "dcv_method").filter(|s| !s.is_empty()),
            alternative_order_id: text(value, "alternative_order_id").filter(|s| !s.is_empty()),
            dcv_random_value: text(value, "dcv_random_value").filter(|s| !s.is_empty()),
            server_platform: certificate
                .get("server_platform")
                .and_then(|p| p.get("id"))
                .and_then(Value::as_i64),
            payment_method: text(value, "payment_method").filter(|s| !s.is_empty()),
        })
    }
}

/// A domain of the account with its validation status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainInfo {
    pub id: u64,
    pub name: String,
    /// `complete` when DCV is done and still valid, else `pending`.
    pub dcv_status: String,
    /// Validation types that are active (`ov`, `ev`, ...).
    pub validated: Vec<String>,
}

impl DomainInfo {
    fn from_json(value: &Value) -> Option<Self> {
        let validations = list(value, "validations");
        let complete = validations
            .iter()
            .any(|v| text(v, "dcv_status").as_deref() == Some("complete"))
            || text(value, "status").as_deref() == Some("active");
        Some(Self {
            id: int(value, "id")?,
            name: text(value, "name")?,
            dcv_status: if complete { "complete" } else { "pending" }.to_string(),
            validated: validations
                .iter()
                .filter(|v| text(v, "status").as_deref() == Some("active"))
                .filter_map(|v| text(v, "type"))
                .collect(),
        })
    }

    fn covers(&self, name: &str) -> bool {
        let base = dcv_base(name);
        base == self.name || base.ends_with(&format!(".{}", self.name))
    }
}

/// An organization of the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrganizationInfo {
    pub id: u64,
    pub name: String,
    pub status: String,
    /// Validation types that are active (`ov`, `ev`, ...).
    pub validated: Vec<String>,
}

/// A product enabled for the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductInfo {
    pub name_id: String,
    pub name: String,
    pub validation_type: Option<String>,
    pub allowed_validity_years: Vec<u64>,
    pub signature_hashes: Vec<String>,
    pub default_signature_hash: Option<String>,
    pub server_platforms: Vec<i64>,
    pub custom_expiration_date_allowed: bool,
}

impl ProductInfo {
    fn from_json(value: &Value) -> Option<Self> {
        let hashes = value
            .get("signature_hash_types")
            .cloned()
            .unwrap_or_default();
        Some(Self {
            name_id: text(value, "name_id")?,
            name: text(value, "name").unwrap_or_default(),
            validation_type: text(value, "validation_type"),
            allowed_validity_years: list(value, "allowed_validity_years")
                .iter()
                .filter_map(Value::as_u64)
                .collect(),
            signature_hashes: list(&hashes, "allowed_hash_types")
                .iter()
                .filter_map(|h| text(h, "id"))
                .collect(),
            default_signature_hash: text(&hashes, "default_hash_type_id"),
            server_platforms: list(value, "server_platforms")
                .iter()
                .filter_map(|p| p.get("id").and_then(Value::as_i64))
                .collect(),
            custom_expiration_date_allowed: value
                .get("custom_expiration_date_allowed")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    fn needs_organization(&self) -> bool {
        matches!(self.validation_type.as_deref(), Some("ov" | "ev"))
    }
}

/// The user behind the key (`GET /user/me`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    pub id: u64,
    pub username: String,
    pub account_id: Option<u64>,
    pub roles: Vec<String>,
}

impl UserInfo {
    /// `user `jane` (id 7, account 42), roles: administrator`.
    pub fn describe(&self) -> String {
        format!(
            "user `{}` (id {}{}), roles: {}",
            self.username,
            self.id,
            self.account_id
                .map(|id| format!(", account {id}"))
                .unwrap_or_default(),
            if self.roles.is_empty() {
                "none".to_string()
            } else {
                self.roles.join(", ")
            }
        )
    }

    pub fn is_admin(&self) -> bool {
        self.roles
            .iter()
            .any(|r| r.eq_ignore_ascii_case("administrator"))
    }
}

impl DigicertCa {
    /// An account handle; nothing is sent until a call needs it.
    pub fn open(name: &str, settings: DigicertSettings) -> Result<Self, CaError> {
        let mut options = crate::http::Options::new(name);
        options.proxy = settings.proxy.clone();
        options.timeout = REQUEST_TIMEOUT;
        options.max_body = MAX_BODY;
        options.retry = settings.retry;
        options.limits = settings.limits.clone();
        let client = crate::http::Client::new(options).map_err(|error| {
            CaError::new(
                error.class(),
                format!("cannot set up HTTPS for DigiCert account `{name}`"),
            )
            .with_source(error)
        })?;
        let cache = settings
            .cache_dir
            .as_ref()
            .and_then(|dir| std::fs::read(dir.join("cache.json")).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Ok(Self {
            name: name.to_string(),
            settings,
            client,
            cache: Mutex::new(cache),
            admin: tokio::sync::OnceCell::new(),
        })
    }

    pub fn is_read_only(&self) -> bool {
        self.settings.read_only
    }

    // ----- HTTP ---------------------------------------------------------------------------------

    /// Send a request; the HTTP layer retries it on 5xx, timeouts and 429 when `retry` says it
    /// may be repeated (reads, and writes that are safe to repeat). Answers of any status come
    /// back; only a failed exchange is an error.
    async fn exchange(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        retry: bool,
    ) -> Result<(Answer, Option<StdDuration>), CaError> {
        let url = format!("{}{path}", self.settings.url);
        let key = HeaderValue::from_str(self.settings.api_key.expose().as_str()).map_err(|_| {
            CaError::new(
                ErrorClass::Auth,
                format!(
                    "the API key of `{}` holds characters an HTTP header cannot carry",
                    self.name
                ),
            )
        })?;
        let mut request = crate::http::Request::new(method.clone(), url)
            .header(http::HeaderName::from_static("x-dc-devkey"), key)
            .header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(
                http::header::ACCEPT,
                HeaderValue::from_static("application/json, */*"),
            )
            .retry(retry);
        if let Some(value) = body {
            request = request.body(value.to_string());
        }
        let response = self.client.send(request).await.map_err(|error| {
            CaError::new(
                error.class(),
                format!(
                    "DigiCert call {method} /{} for `{}` failed",
                    redact_path(path),
                    self.name
                ),
            )
            .with_source(error)
        })?;
        let retry_after = response.retry_after();
        Ok((
            Answer {
                status: response.status,
                body: response.body,
            },
            retry_after,
        ))
    }

    /// Send a request (see `exchange`); a status other than 2xx is an error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        retry: bool,
    ) -> Result<Answer, CaError> {
        self.call_accepting(method, path, body, retry, false).await
    }

    /// `call`; with `accept_404`, a 404 is an answer rather than an error.
    async fn call_accepting(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        retry: bool,
        accept_404: bool,
    ) -> Result<Answer, CaError> {
        let (answer, retry_after) = self.exchange(&method, path, body, retry).await?;
        let status = answer.status;
        if status.is_success() || (accept_404 && status == StatusCode::NOT_FOUND) {
            return Ok(answer);
        }
        Err(self.status_error(&method, path, &answer, retry_after))
    }

    fn status_error(
        &self,
        method: &Method,
        path: &str,
        answer: &Answer,
        retry_after: Option<StdDuration>,
    ) -> CaError {
        let problem = Problem::from_digicert_json(&answer.body);
        let described = problem.describe();
        let detail = if described.is_empty() {
            String::new()
        } else {
            format!(": {described}")
        };
        let status = answer.status.as_u16();
        let what = format!("{method} /{}", redact_path(path));
        let account = &self.name;
        let mut error = match status {
            401 => CaError::new(
                ErrorClass::Auth,
                format!("DigiCert rejected the API key of `{account}` (HTTP 401){detail}"),
            ),
            403 => CaError::new(
                ErrorClass::Auth,
                format!("DigiCert refused {what} for `{account}` (HTTP 403){detail}"),
            ),
            429 => CaError::new(
                ErrorClass::RateLimited,
                format!("DigiCert rate limit reached for `{account}` (HTTP 429){detail}"),
            ),
            code if code >= 500 => CaError::new(
                ErrorClass::Transient,
                format!("DigiCert failed on {what} (HTTP {code}){detail}"),
            ),
            code => CaError::new(
                ErrorClass::Rejected,
                format!("DigiCert refused {what} (HTTP {code}){detail}"),
            ),
        };
        if status == 429 {
            error.retry_after = Some(
                retry_after
                    .and_then(|d| Duration::try_from(d).ok())
                    .unwrap_or(Duration::seconds(5)),
            );
        }
        error.with_status(status).with_problem(problem)
    }

    async fn get(&self, path: &str) -> Result<Value, CaError> {
        let answer = self.call(Method::GET, path, None, true).await?;
        answer.json(&format!("GET /{}", redact_path(path)))
    }

    /// `GET`, with 404 as `None`.
    async fn get_optional(&self, path: &str) -> Result<Option<Value>, CaError> {
        let answer = self
            .call_accepting(Method::GET, path, None, true, true)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(answer.json(&format!("GET /{}", redact_path(path)))?))
    }

    fn refuse_write(&self, what: &str) -> Result<(), CaError> {
        if self.settings.read_only {
            return Err(CaError::new(
                ErrorClass::Rejected,
                format!(
                    "DigiCert account `{}` is read-only (`mode = \"read-only\"`): refusing to {what}; nothing was sent",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    // ----- cache --------------------------------------------------------------------------------

    fn with_cache<T>(&self, change: impl FnOnce(&mut Cache) -> T) -> T {
        let mut cache = match self.cache.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(&mut cache)
    }

    /// Write the cache (best effort: a lost cache only costs requests).
    fn save_cache(&self) {
        let Some(dir) = &self.settings.cache_dir else {
            return;
        };
        let bytes = self.with_cache(|cache| serde_json::to_vec(cache).unwrap_or_default());
        let result = crate::atomic_file::create_dir_all(dir, 0o700)
            .and_then(|()| crate::atomic_file::write(&dir.join("cache.json"), &bytes, 0o600));
        if let Err(error) = result {
            tracing::debug!(account = %self.name, %error, "cannot write the DigiCert cache");
        }
    }

    // ----- reads --------------------------------------------------------------------------------

    /// `GET /user/me`: the user behind the key.
    pub async fn user(&self) -> Result<UserInfo, CaError> {
        let value = self.get("user/me").await?;
        Ok(UserInfo {
            id: int(&value, "id").unwrap_or_default(),
            username: text(&value, "username").unwrap_or_default(),
            account_id: int(&value, "account_id"),
            roles: list(&value, "access_roles")
                .iter()
                .filter_map(|r| text(r, "name"))
                .collect(),
        })
    }

    async fn is_admin(&self) -> bool {
        *self
            .admin
            .get_or_init(|| async { self.user().await.map(|u| u.is_admin()).unwrap_or(false) })
            .await
    }

    /// Every product enabled for the account (summary fields only).
    pub async fn products(&self) -> Result<Vec<ProductInfo>, CaError> {
        let value = self.get("product").await?;
        Ok(list(&value, "products")
            .iter()
            .filter_map(ProductInfo::from_json)
            .collect())
    }

    /// One product's details; `None` when the account has no such product.
    pub async fn product(&self, name_id: &str) -> Result<Option<ProductInfo>, CaError> {
        Ok(self
            .get_optional(&format!("product/{}", encode(name_id)))
            .await?
            .as_ref()
            .and_then(ProductInfo::from_json))
    }

    /// Every organization with its validations.
    pub async fn organizations(&self) -> Result<Vec<OrganizationInfo>, CaError> {
        let value = self.get("organization?include_validation=true").await?;
        Ok(list(&value, "organizations")
            .iter()
            .filter_map(|o| {
                Some(OrganizationInfo {
                    id: int(o, "id")?,
                    name: text(o, "name").unwrap_or_default(),
                    status: text(o, "status").unwrap_or_default(),
                    validated: list(o, "validations")
                        .iter()
                        .filter(|v| text(v, "status").as_deref() == Some("active"))
                        .filter_map(|v| text(v, "type"))
                        .collect(),
                })
            })
            .collect())
    }

    /// Every domain with its validation status (pages of 1000).
    pub async fn domains(&self) -> Result<Vec<DomainInfo>, CaError> {
        let mut domains = Vec::new();
        let mut offset = 0;
        loop {
            let value = self
                .get(&format!(
                    "domain?include_validation=true&limit={PAGE_LIMIT}&offset={offset}"
                ))
                .await?;
            let page = list(&value, "domains");
            domains.extend(page.iter().filter_map(DomainInfo::from_json));
            let total = value.get("page").and_then(|p| int(p, "total")).unwrap_or(0);
            offset += page.len() as u64;
            if page.is_empty() || offset >= total {
                break;
            }
        }
        Ok(domains)
    }

    /// Every order of the account (pages of 1000), optionally with `filters[...]`.
    pub async fn list_orders(&self, filters: &[(&str, &str)]) -> Result<Vec<OrderInfo>, CaError> {
        let mut orders = Vec::new();
        let mut offset = 0;
        let mut query = String::new();
        for (key, value) in filters {
            query.push_str(&format!("&filters%5B{}%5D={}", encode(key), encode(value)));
        }
        loop {
            let value = self
                .get(&format!(
                    "order/certificate?limit={PAGE_LIMIT}&offset={offset}{query}"
                ))
                .await?;
            let page = list(&value, "orders");
            orders.extend(page.iter().filter_map(OrderInfo::from_json));
            let total = value.get("page").and_then(|p| int(p, "total")).unwrap_or(0);
            offset += page.len() as u64;
            if page.is_empty() || offset >= total {
                break;
            }
        }
        Ok(orders)
    }

    /// One order's details; `None` when the account has no such order.
    pub async fn order(&self, id: u64) -> Result<Option<OrderInfo>, CaError> {
        let value = self
            .get_optional(&format!("order/certificate/{id}"))
            .await?;
        let info = value.as_ref().and_then(OrderInfo::from_json);
        if let Some(info) = &info {
            self.remember(info);
        }
        Ok(info)
    }

    fn remember(&self, info: &OrderInfo) {
        self.with_cache(|cache| {
            if let Some(value) = &info.dcv_random_value {
                cache.tokens.insert(info.id, value.clone());
            }
            if info.serial.is_some() {
                cache.orders.insert(
                    info.id,
                    Seen {
                        certificate_id: info.certificate_id,
                        serial: info.serial.clone(),
                    },
                );
            }
        });
    }

    /// The orders carrying `tag` as `alternative_order_id` (404: none).
    async fn orders_by_tag(&self, tag: &str) -> Result<Vec<(u64, String)>, CaError> {
        let Some(value) = self
            .get_optional(&format!("order/alternate/{}", encode(tag)))
            .await?
        else {
            return Ok(Vec::new());
        };
        let mut found: Vec<(u64, String)> = list(&value, "orders")
            .iter()
            .filter_map(|o| {
                Some((
                    int(o, "order_id").or_else(|| int(o, "id"))?,
                    text(o, "status").unwrap_or_default(),
                ))
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// The order placed for `tag`, preferring one that is not canceled or rejected.
    async fn order_for_tag(&self, tag: &str) -> Result<Option<u64>, CaError> {
        let found = self.orders_by_tag(tag).await?;
        let live = found
            .iter()
            .find(|(_, status)| !matches!(status.as_str(), "canceled" | "rejected"));
        Ok(live.or(found.first()).map(|(id, _)| *id))
    }

    /// The view of a detailed order; the DCV status of each name while it is pending.
    fn view(&self, info: &OrderInfo, domains: Option<&[DomainInfo]>) -> OrderView {
        let status = map_status(&info.status);
        let dcv = match (status, domains) {
            (OrderStatus::Pending, Some(domains)) => {
                let method = info.dcv_method.clone().unwrap_or_else(|| "email".into());
                info.dns_names
                    .iter()
                    .map(|name| DcvStatus {
                        domain: name.clone(),
                        method: method.clone(),
                        status: if domains
                            .iter()
                            .any(|d| d.covers(name) && d.dcv_status == "complete")
                        {
                            "valid".to_string()
                        } else {
                            "pending".to_string()
                        },
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        OrderView {
            order_id: info.id.to_string(),
            status,
            serial: info.serial.clone(),
            not_after: info.valid_till,
            dcv,
        }
    }

    /// Detailed views of `ids` (pending orders get per-domain DCV status).
    async fn detailed(&self, ids: &[u64]) -> Result<BTreeMap<u64, Option<OrderInfo>>, CaError> {
        let mut out = BTreeMap::new();
        for id in ids {
            out.insert(*id, self.order(*id).await?);
        }
        Ok(out)
    }

    async fn views_of(
        &self,
        infos: &BTreeMap<u64, Option<OrderInfo>>,
    ) -> Result<BTreeMap<u64, OrderView>, CaError> {
        let pending = infos
            .values()
            .flatten()
            .any(|i| map_status(&i.status) == OrderStatus::Pending);
        let domains = if pending {
            // Per-domain status is shown in the plan; without the domains role it is omitted.
            match self.domains().await {
                Ok(domains) => Some(domains),
                Err(error) if error.class == ErrorClass::Auth => None,
                Err(error) => return Err(error),
            }
        } else {
            None
        };
        Ok(infos
            .iter()
            .filter_map(|(id, info)| {
                info.as_ref()
                    .map(|info| (*id, self.view(info, domains.as_deref())))
            })
            .collect())
    }

    /// Plan-time checks of the certificates ordered from this account: product, validity,
    /// organization, signature hash and server platform. Every problem is reported at once.
    pub async fn check_specs(&self, specs: &[&CertificateSpec]) -> Result<(), CaError> {
        if specs.is_empty() {
            return Ok(());
        }
        let mut products: BTreeMap<String, Option<ProductInfo>> = BTreeMap::new();
        for spec in specs {
            let name = Options::of(&spec.ca_options)
                .product_or(DEFAULT_PRODUCT)
                .to_string();
            if let std::collections::btree_map::Entry::Vacant(slot) = products.entry(name) {
                let product = self.product(slot.key()).await?;
                slot.insert(product);
            }
        }
        let wants_organization = specs
            .iter()
            .any(|s| Options::of(&s.ca_options).organization.is_some())
            || products
                .values()
                .flatten()
                .any(ProductInfo::needs_organization);
        let organizations = if wants_organization {
            match self.organizations().await {
                Ok(organizations) => Some(organizations),
                // A key restricted to orders cannot list organizations: the CA checks at order
                // time instead.
                Err(error) if error.class == ErrorClass::Auth => {
                    tracing::warn!(account = %self.name, %error, "cannot check organizations at plan time");
                    None
                }
                Err(error) => return Err(error),
            }
        } else {
            None
        };
        let mut available: Option<Vec<String>> = None;
        let mut problems = Vec::new();
        for spec in specs {
            let at = format!("certificate `{}` ({})", spec.name, spec.location);
            let options = Options::of(&spec.ca_options);
            let name = options.product_or(DEFAULT_PRODUCT).to_string();
            let Some(Some(product)) = products.get(&name) else {
                if available.is_none() {
                    available = Some(
                        self.products()
                            .await
                            .map(|p| p.into_iter().map(|p| p.name_id).collect())
                            .unwrap_or_default(),
                    );
                }
                problems.push(format!(
                    "{at}: product `{name}` is not enabled for `{}`; available: {}",
                    self.name,
                    available.as_deref().unwrap_or_default().join(", ")
                ));
                continue;
            };
            match spec.validity {
                Validity::Years(years)
                    if !product.allowed_validity_years.is_empty()
                        && !product.allowed_validity_years.contains(&u64::from(years)) =>
                {
                    problems.push(format!(
                        "{at}: product `{name}` does not allow a validity of {}; allowed years: {}",
                        spec.validity.describe(),
                        product
                            .allowed_validity_years
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                Validity::Until(_) if !product.custom_expiration_date_allowed => {
                    problems.push(format!(
                        "{at}: product `{name}` does not allow a custom expiration date (`validity.until`)"
                    ));
                }
                _ => {}
            }
            if let Some(hash) = options.signature_hash.map(SignatureHash::as_str) {
                if !product.signature_hashes.is_empty()
                    && !product.signature_hashes.iter().any(|h| h == hash)
                {
                    problems.push(format!(
                        "{at}: product `{name}` does not allow signature hash `{hash}`; allowed: {}",
                        product.signature_hashes.join(", ")
                    ));
                }
            }
            if let Some(platform) = options.server_platform {
                if platform != -1
                    && !product.server_platforms.is_empty()
                    && !product.server_platforms.contains(&platform)
                {
                    problems.push(format!(
                        "{at}: product `{name}` has no server platform {platform}"
                    ));
                }
            }
            let organization = options.organization;
            let Some(organizations) = organizations.as_deref() else {
                continue;
            };
            match organization {
                None if product.needs_organization() => {
                    problems.push(format!(
                        "{at}: product `{name}` is {}-validated and needs `organization`; organizations of `{}`: {}",
                        product.validation_type.as_deref().unwrap_or("organization").to_uppercase(),
                        self.name,
                        describe_organizations(organizations)
                    ));
                }
                None => {}
                Some(id) => match organizations.iter().find(|o| o.id == id) {
                    None => problems.push(format!(
                        "{at}: organization {id} does not exist in `{}`; organizations: {}",
                        self.name,
                        describe_organizations(organizations)
                    )),
                    Some(found) => {
                        let kind = product
                            .validation_type
                            .clone()
                            .filter(|_| product.needs_organization());
                        let validated = match &kind {
                            Some(kind) => found.validated.contains(kind),
                            None => true,
                        };
                        if !validated {
                            problems.push(format!(
                                "{at}: organization {id} (`{}`) has no active {} validation, which product `{name}` needs",
                                found.name,
                                kind.as_deref().unwrap_or_default().to_uppercase()
                            ));
                        }
                    }
                },
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CaError::new(
                ErrorClass::Rejected,
                format!(
                    "configuration does not fit DigiCert account `{}`:\n  {}",
                    self.name,
                    problems.join("\n  ")
                ),
            ))
        }
    }

    /// The order body of a create.
    fn order_body(&self, request: &OrderRequest, skip_approval: bool) -> Value {
        let options = Options::of(&request.options);
        let mut certificate = json!({
            "common_name": request.common_name,
            "dns_names": request.sans,
            "csr": csr_pem(&request.csr_der),
        });
        if let Some(hash) = options.signature_hash {
            certificate["signature_hash"] = json!(hash.as_str());
        }
        if let Some(platform) = options.server_platform {
            certificate["server_platform"] = json!({ "id": platform });
        }
        let mut body = json!({
            "certificate": certificate,
            "alternative_order_id": request.tag,
            "comments": format!("certform {}", request.tag),
            "payment_method": options.payment_method.unwrap_or(PaymentMethod::Balance).as_str(),
        });
        body["order_validity"] = match request.validity {
            Validity::Days(days) => json!({ "days": days }),
            Validity::Years(years) => json!({ "years": years }),
            Validity::Until(date) => json!({ "custom_expiration_date": date.to_string() }),
        };
        if let Some(organization) = options.organization {
            body["organization"] = json!({ "id": organization });
        }
        // One method for the whole order: the common name's (config allows only one).
        let method = request
            .dcv
            .first()
            .map(|validation| dcv_wire_name(validation.method))
            .or_else(|| options.dcv_method.map(DcvMethodWire::as_str));
        if let Some(method) = method {
            body["dcv_method"] = json!(method);
        }
        if let Some(old) = request
            .renewal_of
            .as_deref()
            .and_then(|o| o.parse::<u64>().ok())
        {
            body["renewal_of_order_id"] = json!(old);
        }
        if skip_approval {
            body["skip_approval"] = json!(true);
        }
        body
    }

    /// The current view of order `id` (details).
    async fn current_view(&self, id: u64) -> Result<OrderView, CaError> {
        let infos = self.detailed(&[id]).await?;
        self.views_of(&infos).await?.remove(&id).ok_or_else(|| {
            CaError::new(
                ErrorClass::Rejected,
                format!("DigiCert account `{}` has no order {id}", self.name),
            )
        })
    }
}

fn describe_organizations(organizations: &[OrganizationInfo]) -> String {
    if organizations.is_empty() {
        return "none".to_string();
    }
    organizations
        .iter()
        .map(|o| {
            format!(
                "{} `{}` ({})",
                o.id,
                o.name,
                if o.validated.is_empty() {
                    "not validated".to_string()
                } else {
                    format!("validated: {}", o.validated.join(", "))
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether an order's detail lists a live reissue request certform sent under `tag`.
fn has_reissue_request(order: &Value, tag: &str) -> bool {
    let comments = reissue_comments(tag);
    list(order, "requests").iter().any(|request| {
        text(request, "type").as_deref() == Some("reissue")
            && text(request, "comments").as_deref() == Some(comments.as_str())
            && text(request, "status").as_deref() != Some("rejected")
    })
}

/// The id of a revoke request on an order's detail that still awaits approval.
fn pending_revoke_request(order: &Value) -> Option<u64> {
    list(order, "requests")
        .iter()
        .find(|request| {
            text(request, "type").as_deref() == Some("revoke")
                && text(request, "status").as_deref() == Some("pending")
        })
        .and_then(|request| int(request, "id"))
}

/// The comments of a reissue request: how a reissue is found again after a crash.
fn reissue_comments(tag: &str) -> String {
    format!("certform {tag}")
}

/// A path for messages: query strings dropped (they hold nothing secret, but may be long).
fn redact_path(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// What this CA can do (also used by the planner, without opening an account).
pub const CAPABILITIES: Capabilities = Capabilities {
    reissue_same_order: true,
    cancel: true,
    revoke: true,
    // The tag travels in the order's comments and is searched for by `refresh`.
    duplicates: crate::capabilities::DuplicatePrevention::TagAtCa,
    // A cancelled pending order's funds return to the account.
    cancel_refunds: true,
    honours_validity: true,
};

#[async_trait]
impl CertificateAuthority for DigicertCa {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "digicert"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn check_credentials(&self) -> Result<crate::ca::Credentials, CaError> {
        let user = self.user().await?;
        Ok(crate::ca::Credentials {
            identity: user.describe(),
            read_only: self.is_read_only(),
        })
    }

    async fn account_info(&self) -> Result<crate::ca::AccountInfo, CaError> {
        self.read_account_info().await
    }

    async fn list_orders(&self) -> Result<Vec<crate::ca::AccountOrder>, CaError> {
        Ok(DigicertCa::list_orders(self, &[])
            .await?
            .into_iter()
            .map(OrderInfo::into_account_order)
            .collect())
    }

    async fn check(&self, specs: &[&CertificateSpec]) -> Result<(), CaError> {
        self.check_specs(specs).await
    }

    async fn refresh(&self, queries: &[OrderQuery]) -> Result<Vec<Option<OrderView>>, CaError> {
        // Resolve tags to order ids first (one lookup per tag without an order id).
        let mut ids: Vec<Option<u64>> = Vec::with_capacity(queries.len());
        for query in queries {
            let id = match (&query.order_id, &query.tag) {
                (Some(order_id), _) => order_id.parse::<u64>().ok(),
                (None, Some(tag)) => self.order_for_tag(tag).await?,
                (None, None) => None,
            };
            ids.push(id);
        }
        let wanted: BTreeSet<u64> = ids.iter().flatten().copied().collect();
        let views: BTreeMap<u64, OrderView> = if wanted.len() <= DETAIL_THRESHOLD {
            let list: Vec<u64> = wanted.iter().copied().collect();
            let infos = self.detailed(&list).await?;
            self.views_of(&infos).await?
        } else {
            let listed: BTreeMap<u64, OrderInfo> = self
                .list_orders(&[])
                .await?
                .into_iter()
                .filter(|o| wanted.contains(&o.id))
                .map(|o| (o.id, o))
                .collect();
            let mut views = BTreeMap::new();
            let mut details = Vec::new();
            let mut baseline = false;
            for id in &wanted {
                let Some(info) = listed.get(id) else {
                    // Not in the list (another container?): ask for it directly.
                    details.push(*id);
                    continue;
                };
                let status = map_status(&info.status);
                if status == OrderStatus::Pending {
                    details.push(*id);
                    continue;
                }
                let seen = self.with_cache(|cache| cache.orders.get(id).cloned());
                match seen {
                    Some(seen) if seen.certificate_id == info.certificate_id => {
                        let mut info = info.clone();
                        info.serial = seen.serial;
                        views.insert(*id, self.view(&info, None));
                    }
                    // A certificate certform has not seen on this order: read its serial.
                    Some(_) if status == OrderStatus::Issued => details.push(*id),
                    _ => {
                        // First sight: remember the certificate id as the baseline.
                        baseline = true;
                        self.with_cache(|cache| {
                            cache.orders.insert(
                                *id,
                                Seen {
                                    certificate_id: info.certificate_id,
                                    serial: None,
                                },
                            );
                        });
                        views.insert(*id, self.view(info, None));
                    }
                }
            }
            let infos = self.detailed(&details).await?;
            views.extend(self.views_of(&infos).await?);
            if baseline || !details.is_empty() {
                self.save_cache();
            }
            views
        };
        if wanted.len() <= DETAIL_THRESHOLD && !wanted.is_empty() {
            self.save_cache();
        }
        Ok(ids
            .into_iter()
            .map(|id| id.and_then(|id| views.get(&id).cloned()))
            .collect())
    }

    async fn place_order(&self, request: &OrderRequest) -> Result<OrderView, CaError> {
        self.refuse_write("place an order")?;
        let product = Options::of(&request.options).product_or(DEFAULT_PRODUCT);
        let skip_approval = self.is_admin().await;
        let body = self.order_body(request, skip_approval);
        // Sent as asked: the executor looks the tag up (`refresh`) before a create it resumes
        // and before it repeats one that failed in transit, so no second order is placed.
        let answer = self
            .call(
                Method::POST,
                &format!("order/certificate/{}", encode(product)),
                Some(&body),
                false,
            )
            .await?;
        let value = answer.json("the order")?;
        let id = int(&value, "id").ok_or_else(|| {
            CaError::new(
                ErrorClass::Protocol,
                "DigiCert answered the order without an order id",
            )
        })?;
        if let Some(token) = text(&value, "dcv_random_value") {
            self.with_cache(|cache| cache.tokens.insert(id, token));
            self.save_cache();
        }
        self.current_view(id).await
    }

    async fn fetch(&self, order_id: &str) -> Result<Fetched, CaError> {
        let id = order_number(order_id)?;
        let info = self.order(id).await?.ok_or_else(|| {
            CaError::new(
                ErrorClass::Rejected,
                format!("DigiCert account `{}` has no order {id}", self.name),
            )
        })?;
        let status = map_status(&info.status);
        if status == OrderStatus::Pending {
            // Pending validation or approval: nothing to download yet.
            return Ok(Fetched::NotYet {
                status,
                detail: info.status.clone(),
            });
        }
        let certificate_id = info.certificate_id.ok_or_else(|| {
            CaError::new(
                ErrorClass::Protocol,
                format!("order {id} has no certificate id"),
            )
        })?;
        let answer = self
            .call(
                Method::GET,
                &format!("certificate/{certificate_id}/download/format/pem_all"),
                None,
                true,
            )
            .await?;
        let text = String::from_utf8_lossy(&answer.body).replace("\r\n", "\n");
        let blocks = pem::parse_many(text.as_bytes()).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!("certificate {certificate_id} is not PEM"),
            )
            .with_source(error)
        })?;
        let certificates: Vec<&pem::Pem> =
            blocks.iter().filter(|b| b.tag() == "CERTIFICATE").collect();
        if certificates.is_empty() {
            return Err(CaError::new(
                ErrorClass::Protocol,
                format!("certificate {certificate_id} download holds no certificate"),
            ));
        }
        // Leaf then intermediates; a self-signed root at the end is dropped.
        let mut chain: Vec<String> = Vec::new();
        for (index, block) in certificates.iter().enumerate() {
            if index > 0 && is_self_signed(block.contents()) {
                continue;
            }
            chain.push(crate::keys::encode_certificate(block.contents()));
        }
        let chain_pem = chain.concat();
        if let Ok((leaf, _)) = crate::keys::inspect_chain(&chain_pem) {
            self.with_cache(|cache| {
                cache.orders.insert(
                    id,
                    Seen {
                        certificate_id: Some(certificate_id),
                        serial: Some(leaf.serial.clone()),
                    },
                );
                cache.tokens.remove(&id);
            });
            self.save_cache();
        }
        Ok(Fetched::Issued(IssuedCertificate {
            order_id: id.to_string(),
            certificate_id: Some(certificate_id.to_string()),
            chain_pem,
        }))
    }

    async fn reissue(&self, order_id: &str, request: &OrderRequest) -> Result<OrderView, CaError> {
        self.refuse_write("reissue a certificate")?;
        let id = order_number(order_id)?;
        let mut certificate = json!({
            "common_name": request.common_name,
            "dns_names": request.sans,
            "csr": csr_pem(&request.csr_der),
        });
        let options = Options::of(&request.options);
        if let Some(hash) = options.signature_hash {
            certificate["signature_hash"] = json!(hash.as_str());
        }
        if let Some(platform) = options.server_platform {
            certificate["server_platform"] = json!({ "id": platform });
        }
        let mut body = json!({
            "certificate": certificate,
            "comments": reissue_comments(&request.tag),
        });
        if self.is_admin().await {
            body["skip_approval"] = json!(true);
        }
        self.call(
            Method::POST,
            &format!("order/certificate/{id}/reissue"),
            Some(&body),
            false,
        )
        .await?;
        self.current_view(id).await
    }

    /// A reissue keeps the order (and its `alternative_order_id`), so the tag is looked for
    /// in the order's requests: every reissue certform sends carries `certform <tag>` as its
    /// comments. A rejected request did not reissue anything.
    async fn find_reissue(&self, order_id: &str, tag: &str) -> Result<Option<OrderView>, CaError> {
        let id = order_number(order_id)?;
        let Some(value) = self
            .get_optional(&format!("order/certificate/{id}"))
            .await?
        else {
            return Ok(None);
        };
        if !has_reissue_request(&value, tag) {
            return Ok(None);
        }
        tracing::info!(account = %self.name, order = id, "a reissue requested earlier for this tag reached DigiCert; adopting it");
        self.current_view(id).await.map(Some)
    }

    async fn revoke(
        &self,
        order_id: &str,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<RevokeOutcome, CaError> {
        self.refuse_write("revoke a certificate")?;
        let skip = self.is_admin().await;
        let body = json!({
            "comments": format!("certform: revoke serial {serial}"),
            "revocation_reason": reason_text(reason),
            "skip_approval": skip,
        });
        let id = order_number(order_id)?;
        let detail = self
            .get_optional(&format!("order/certificate/{id}"))
            .await?;
        // A request sent earlier (by a run killed before state recorded it) still awaits
        // approval: report it rather than asking again.
        if !skip {
            if let Some(request_id) = detail.as_ref().and_then(pending_revoke_request) {
                return Ok(RevokeOutcome::Requested {
                    request_id: request_id.to_string(),
                });
            }
        }
        // The certificate of the order (by its id), else the whole order.
        let info = detail.as_ref().and_then(OrderInfo::from_json);
        if let Some(info) = &info {
            self.remember(info);
            // Revoked already (a run that died before recording it asks again): done.
            if info.status == "revoked" {
                return Ok(RevokeOutcome::Revoked);
            }
        }
        let certificate_id = info.and_then(|o| o.certificate_id);
        let path = match certificate_id {
            Some(certificate_id) => format!("certificate/{certificate_id}/revoke"),
            None => format!("order/certificate/{id}/revoke"),
        };
        let answer = self.call(Method::PUT, &path, Some(&body), false).await?;
        if answer.status == StatusCode::NO_CONTENT || answer.body.is_empty() {
            return Ok(RevokeOutcome::Revoked);
        }
        let value = answer.json("the revocation")?;
        match (text(&value, "status").as_deref(), int(&value, "id")) {
            (Some("approved"), _) => Ok(RevokeOutcome::Revoked),
            (_, Some(request_id)) => Ok(RevokeOutcome::Requested {
                request_id: request_id.to_string(),
            }),
            _ => Ok(RevokeOutcome::Revoked),
        }
    }

    async fn cancel(&self, order_id: &str) -> Result<(), CaError> {
        self.refuse_write("cancel an order")?;
        let id = order_number(order_id)?;
        let body = json!({ "status": "canceled", "note": "canceled by certform" });
        match self
            .call(
                Method::PUT,
                &format!("order/certificate/{id}/status"),
                Some(&body),
                true,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.class == ErrorClass::Rejected => {
                // Already canceled (a retry after a lost answer): done.
                match self.order(id).await? {
                    Some(info) if info.status == "canceled" => Ok(()),
                    _ => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn challenges(&self, order: &OrderView) -> Result<Vec<Challenge>, CaError> {
        let id = order_number(&order.order_id)?;
        let Some(info) = self.order(id).await? else {
            return Ok(Vec::new());
        };
        let domains = match self.domains().await {
            Ok(domains) => domains,
            Err(error) if error.class == ErrorClass::Auth => Vec::new(),
            Err(error) => return Err(error),
        };
        let method = info.dcv_method.clone().unwrap_or_else(|| "email".into());
        let mut token = info
            .dcv_random_value
            .clone()
            .or_else(|| self.with_cache(|cache| cache.tokens.get(&id).cloned()));
        let mut challenges = Vec::new();
        for name in &info.dns_names {
            let validated = domains
                .iter()
                .any(|d| d.covers(name) && d.dcv_status == "complete");
            let status = if validated { "valid" } else { "pending" };
            let kind = match method.as_str() {
                "dns-txt-token" | "http-token" => {
                    if token.is_none() && !validated {
                        token = self.domain_token(&domains, name).await?;
                    }
                    let Some(value) = token.clone() else {
                        return Err(CaError::new(
                            ErrorClass::Protocol,
                            format!("DigiCert gave no DCV random value for `{name}` of order {id}"),
                        ));
                    };
                    if method == "http-token" {
                        ChallengeKind::Http {
                            path: HTTP_TOKEN_PATH.to_string(),
                            content: value,
                        }
                    } else {
                        ChallengeKind::DnsTxt {
                            name: dcv_base(name).to_string(),
                            value,
                        }
                    }
                }
                _ => ChallengeKind::Email { approver: None },
            };
            challenges.push(Challenge {
                id: format!("{id}/{name}"),
                domain: name.clone(),
                kind,
                status: status.to_string(),
            });
        }
        Ok(challenges)
    }

    async fn respond(&self, order: &OrderView, challenges: &[Challenge]) -> Result<(), CaError> {
        self.refuse_write("ask for a DCV check")?;
        let id = order_number(&order.order_id)?;
        if challenges
            .iter()
            .all(|c| matches!(c.kind, ChallengeKind::Email { .. }))
        {
            return Ok(());
        }
        match self
            .call(
                Method::PUT,
                &format!("order/certificate/{id}/check-dcv"),
                None,
                true,
            )
            .await
        {
            Ok(_) => Ok(()),
            // Not found yet (DNS propagation, file not served): the order stays pending and
            // the next run checks again.
            Err(error) if error.class == ErrorClass::Rejected => {
                tracing::warn!(account = %self.name, order = id, %error, "DCV check did not pass yet");
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    async fn finalize(&self, order: &OrderView, _csr_der: &[u8]) -> Result<OrderView, CaError> {
        // DigiCert takes the CSR with the order: answer with the order as it is now.
        self.current_view(order_number(&order.order_id)?).await
    }
}

impl DigicertCa {
    /// Products (with their details), organizations and domains, sorted, for `ca info`.
    async fn read_account_info(&self) -> Result<crate::ca::AccountInfo, CaError> {
        use crate::ca::{InfoItem, InfoSection};
        let mut products = Vec::new();
        for product in self.products().await? {
            match self.product(&product.name_id).await? {
                Some(full) => products.push(full),
                None => products.push(product),
            }
        }
        let mut organizations = self.organizations().await?;
        let mut domains = self.domains().await?;
        products.sort_by(|a, b| a.name_id.cmp(&b.name_id));
        organizations.sort_by_key(|o| o.id);
        domains.sort_by(|a, b| a.name.cmp(&b.name));
        let joined = |list: &[String], empty: &str| {
            if list.is_empty() {
                empty.to_string()
            } else {
                list.join(", ")
            }
        };
        let products = products
            .iter()
            .map(|product| {
                let years: Vec<String> = product
                    .allowed_validity_years
                    .iter()
                    .map(u64::to_string)
                    .collect();
                let line = format!(
                    "{:<24} {} ({}){}{}",
                    product.name_id,
                    product.name,
                    product
                        .validation_type
                        .as_deref()
                        .unwrap_or("?")
                        .to_uppercase(),
                    if years.is_empty() {
                        String::new()
                    } else {
                        format!(", years: {}", years.join("/"))
                    },
                    if product.signature_hashes.is_empty() {
                        String::new()
                    } else {
                        format!(", hashes: {}", product.signature_hashes.join("/"))
                    }
                );
                InfoItem::new(line, product)
            })
            .collect();
        let organizations = organizations
            .iter()
            .map(|organization| {
                let line = format!(
                    "{:<10} {} [{}] validated: {}",
                    organization.id,
                    organization.name,
                    organization.status,
                    joined(&organization.validated, "none")
                );
                InfoItem::new(line, organization)
            })
            .collect();
        let domains = domains
            .iter()
            .map(|domain| {
                let line = format!(
                    "{:<32} dcv: {}{}",
                    domain.name,
                    domain.dcv_status,
                    if domain.validated.is_empty() {
                        String::new()
                    } else {
                        format!(", validated for: {}", domain.validated.join(", "))
                    }
                );
                InfoItem::new(line, domain)
            })
            .collect();
        let section = |key: &str, title: &str, items| InfoSection {
            key: key.to_string(),
            title: title.to_string(),
            items,
        };
        Ok(crate::ca::AccountInfo {
            account: self.name.clone(),
            heading: format!("DigiCert account `{}`", self.name),
            sections: vec![
                section("products", "Products", products),
                section("organizations", "Organizations", organizations),
                section("domains", "Domains", domains),
            ],
        })
    }

    /// The DCV token of the domain record covering `name` (`GET /domain/{id}?include_dcv=true`).
    async fn domain_token(
        &self,
        domains: &[DomainInfo],
        name: &str,
    ) -> Result<Option<String>, CaError> {
        let Some(domain) = domains.iter().find(|d| d.covers(name)) else {
            return Ok(None);
        };
        let value = self
            .get_optional(&format!("domain/{}?include_dcv=true", domain.id))
            .await?;
        Ok(value
            .as_ref()
            .and_then(|v| v.get("dcv_token"))
            .and_then(|t| text(t, "token")))
    }
}

/// Open the configured account `name`: resolve its API key; the cache lives under `keys_dir`.
pub fn open(
    name: &str,
    settings: &crate::config::DigicertCaSettings,
    keys_dir: &std::path::Path,
) -> Result<DigicertCa, CaError> {
    let key = crate::secrets::resolve(&settings.api_key).map_err(|e| {
        CaError::new(
            ErrorClass::Auth,
            format!("cannot read the API key of `{name}`"),
        )
        .with_source(e)
    })?;
    let mut resolved = DigicertSettings::new(settings.url.clone(), key);
    resolved.read_only = settings.read_only;
    resolved.cache_dir = Some(keys_dir.join("digicert").join(name));
    resolved.proxy = settings.proxy.clone();
    DigicertCa::open(name, resolved)
}

fn is_self_signed(der: &[u8]) -> bool {
    use x509_parser::prelude::{FromDer, X509Certificate};
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert.subject() == cert.issuer())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("abc-very-secret");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        let settings = DigicertSettings::new("http://127.0.0.1:1", secret);
        assert!(!format!("{settings:?}").contains("very-secret"));
    }

    #[test]
    fn reissue_requests_are_found_by_tag_unless_rejected() {
        let order = serde_json::json!({
            "id": 7,
            "requests": [
                {"id": 1, "type": "new_request", "status": "approved", "comments": "certform cf-1.aa"},
                {"id": 2, "type": "reissue", "status": "rejected", "comments": "certform cf-1.bb"},
                {"id": 3, "type": "reissue", "status": "pending", "comments": "certform cf-1.cc"},
            ],
        });
        assert!(has_reissue_request(&order, "cf-1.cc"));
        assert!(!has_reissue_request(&order, "cf-1.bb"), "rejected");
        assert!(!has_reissue_request(&order, "cf-1.aa"), "not a reissue");
        assert!(!has_reissue_request(&order, "cf-1.c"), "exact tag only");
        assert!(!has_reissue_request(
            &serde_json::json!({"id": 7}),
            "cf-1.cc"
        ));
    }

    #[test]
    fn a_pending_revoke_request_is_found_on_the_order() {
        let mut order = serde_json::json!({
            "id": 7,
            "requests": [
                {"id": 1, "type": "new_request", "status": "pending"},
                {"id": 2, "type": "revoke", "status": "rejected"},
            ],
        });
        assert_eq!(pending_revoke_request(&order), None);
        if let Some(requests) = order["requests"].as_array_mut() {
            requests.push(serde_json::json!({"id": 3, "type": "revoke", "status": "pending"}));
        }
        assert_eq!(pending_revoke_request(&order), Some(3));
    }

    #[test]
    fn statuses_map_to_the_trait() {
        assert_eq!(map_status("needs_approval"), OrderStatus::Pending);
        assert_eq!(map_status("waiting_pickup"), OrderStatus::Pending);
        assert_eq!(map_status("reissue_pending"), OrderStatus::Pending);
        assert_eq!(map_status("canceled"), OrderStatus::Canceled);
        assert_eq!(dcv_base("*.www.example.com"), "example.com");
    }

    #[test]
    fn lenient_order_parsing() {
        let value = json!({"id": "12", "status": "issued", "certificate": [], "organization": []});
        let info = OrderInfo::from_json(&value).expect("parses");
        assert_eq!(info.id, 12);
        assert_eq!(info.certificate_id, None);
    }
}
