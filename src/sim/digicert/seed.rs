//! The seed of the DigiCert simulator: API keys and their roles, products, organizations,
//! domains, pre-existing orders, rate limits, faults, DCV settings and the switches for the
//! facts the reference marks UNCONFIRMED. Read from JSON or TOML; every field has a default, so
//! `{}` is a working seed.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Error;
use crate::sim::faults::Faults;

/// Everything the simulator starts from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seed {
    /// Seed of the generator behind DCV tokens, serial numbers and fault decisions; absent
    /// means a fresh random seed per start.
    pub random_seed: Option<u64>,
    pub account: AccountSeed,
    /// API keys (`X-DC-DEVKEY` values) and their roles.
    pub api_keys: Vec<ApiKeySeed>,
    /// Products enabled for the account; absent means the built-in catalogue.
    pub products: Option<Vec<ProductSeed>>,
    pub organizations: Vec<OrganizationSeed>,
    pub domains: Vec<DomainSeed>,
    /// Orders that exist before the first request (bulk with `count`).
    pub orders: Vec<OrderSeed>,
    pub limits: Limits,
    /// The rate-limit windows run this many times faster than real time (1: real time), so a
    /// test or benchmark meets CertCentral's limits, scaled, in a fraction of the time: at 20,
    /// 100 per 5 s is 100 per 0.25 s. Only the limits are scaled.
    pub limits_time_scale: u32,
    pub faults: Faults,
    pub dcv: DcvSettings,
    pub policy: Policy,
    pub quirks: Quirks,
    /// The simulator's root CA; absent means a new one per start.
    pub ca: Option<CaSeed>,
}

impl Default for Seed {
    fn default() -> Self {
        Self {
            random_seed: None,
            account: AccountSeed::default(),
            api_keys: default_api_keys(),
            products: None,
            organizations: vec![OrganizationSeed::example()],
            domains: vec![DomainSeed::example()],
            orders: Vec::new(),
            limits: Limits::default(),
            limits_time_scale: 1,
            faults: Faults::default(),
            dcv: DcvSettings::default(),
            policy: Policy::default(),
            quirks: Quirks::default(),
            ca: None,
        }
    }
}

impl Seed {
    /// Parse a JSON seed.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|error| Error::Seed {
            reason: format!("invalid JSON seed: {error}"),
        })
    }

    /// Parse a TOML seed.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|error| Error::Seed {
            reason: format!("invalid TOML seed: {error}"),
        })
    }

    /// Read a seed file: `.toml` is TOML, anything else JSON.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::SeedFile {
            path: path.to_path_buf(),
            source,
        })?;
        let is_toml = path
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("toml"));
        let parsed = if is_toml {
            Self::from_toml(&text)
        } else {
            Self::from_json(&text)
        };
        parsed.map_err(|error| match error {
            Error::Seed { reason } => Error::Seed {
                reason: format!("`{}`: {reason}", path.display()),
            },
            other => other,
        })
    }
}

impl Seed {
    /// Check ranges the simulator relies on (what the account model checks, such as unknown
    /// organizations, is reported by [`super::start`] too).
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |reason: String| Err(Error::Seed { reason });
        if let Err(reason) = self.faults.validate() {
            return fail(reason);
        }
        if let Err(reason) = super::validate_limits(&self.limits) {
            return fail(reason);
        }
        if !matches!(self.quirks.unauthorized_status, 401 | 403) {
            return fail(format!(
                "`quirks.unauthorized_status` must be 401 or 403, not {}",
                self.quirks.unauthorized_status
            ));
        }
        if !(1..=1000).contains(&self.limits_time_scale) {
            return fail(format!(
                "`limits_time_scale` must be from 1 to 1000, not {}",
                self.limits_time_scale
            ));
        }
        const MAX_ID: u64 = 1 << 50;
        let account = &self.account;
        for (name, id) in [
            ("first_order_id", account.first_order_id),
            ("first_certificate_id", account.first_certificate_id),
            ("first_request_id", account.first_request_id),
            ("first_domain_id", account.first_domain_id),
            ("first_user_id", account.first_user_id),
        ] {
            if id == 0 || id > MAX_ID {
                return fail(format!("`account.{name}` must be between 1 and {MAX_ID}"));
            }
        }
        let ranges: [(&str, u64, u64, u64); 8] = [
            (
                "dcv.token_lifetime_days",
                self.dcv.token_lifetime_days.into(),
                1,
                3650,
            ),
            (
                "dcv.issue_delay_seconds",
                self.dcv.issue_delay_seconds,
                0,
                366 * 86_400,
            ),
            ("dcv.dns_timeout_ms", self.dcv.dns_timeout_ms, 1, 60_000),
            ("dcv.http_timeout_ms", self.dcv.http_timeout_ms, 1, 60_000),
            (
                "policy.max_cert_validity_days",
                self.policy.max_cert_validity_days.into(),
                1,
                3650,
            ),
            (
                "policy.max_order_validity_years",
                self.policy.max_order_validity_years.into(),
                1,
                10,
            ),
            (
                "policy.dcv_reuse_days",
                self.policy.dcv_reuse_days.into(),
                1,
                3650,
            ),
            (
                "faults.latency_ms + latency_jitter_ms",
                self.faults
                    .latency_ms
                    .saturating_add(self.faults.latency_jitter_ms),
                0,
                600_000,
            ),
        ];
        for (name, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return fail(format!(
                    "`{name}` must be between {low} and {high}, not {value}"
                ));
            }
        }
        const METHODS: [&str; 5] = [
            "email",
            "dns-txt-token",
            "dns-cname-token",
            "http-token",
            "http-token-dynamic",
        ];
        if let Some(method) = self
            .dcv
            .methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return fail(format!(
                "`dcv.methods`: `{method}` is not one of {}",
                METHODS.join(", ")
            ));
        }
        if !self.dcv.methods.contains(&self.dcv.default_method) {
            return fail(format!(
                "`dcv.default_method` `{}` is not in `dcv.methods`",
                self.dcv.default_method
            ));
        }
        if let Some(products) = &self.products {
            let mut seen = std::collections::BTreeSet::new();
            for product in products {
                if !seen.insert(product.name_id.as_str()) {
                    return fail(format!("product `{}` is listed twice", product.name_id));
                }
                if product
                    .max_cert_validity_days
                    .is_some_and(|d| d == 0 || d > 3650)
                    || product
                        .allowed_validity_years
                        .iter()
                        .any(|y| *y == 0 || *y > 10)
                {
                    return fail(format!(
                        "product `{}`: validity years must be 1..=10 and max_cert_validity_days 1..=3650",
                        product.name_id
                    ));
                }
            }
        }
        for order in &self.orders {
            if order.count > 200_000
                || order.validity_days == 0
                || order.validity_days > 3650
                || order.age_days > 3650
            {
                return fail(format!(
                    "seeded orders `{}`: count must be at most 200000, validity_days 1..=3650, age_days at most 3650",
                    order.common_name
                ));
            }
        }
        Ok(())
    }
}

/// The keys a seed without `api_keys` gets. Test keys, printed by `certform sim digicert`.
pub fn default_api_keys() -> Vec<ApiKeySeed> {
    [
        ("admin", "sim-admin-key", Role::Admin),
        ("orders", "sim-orders-key", Role::Orders),
        ("view-only", "sim-view-only-key", Role::ViewOnly),
    ]
    .into_iter()
    .map(|(name, key, role)| ApiKeySeed {
        name: name.to_string(),
        key: key.to_string(),
        role,
        user: UserSeed::default(),
    })
    .collect()
}

/// The CertCentral account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountSeed {
    pub id: u64,
    /// The top-level container (division).
    pub container_id: u64,
    pub container_name: String,
    /// Orders wait in `needs_approval` until an administrator approves the request, unless an
    /// admin key sends `skip_approval: true`.
    pub require_approval: bool,
    /// A revoked order can still be reissued (the reference: revoking the only certificate
    /// leaves the order reissuable unless an account setting says otherwise).
    pub reissue_after_revoke: bool,
    /// First ids handed out (orders, certificates, requests, domains, users), so tests can
    /// tell the kinds of id apart.
    pub first_order_id: u64,
    pub first_certificate_id: u64,
    pub first_request_id: u64,
    pub first_domain_id: u64,
    pub first_user_id: u64,
}

impl Default for AccountSeed {
    fn default() -> Self {
        Self {
            id: 5_550_001,
            container_id: 77_001,
            container_name: "Simulated CertCentral".to_string(),
            require_approval: false,
            reissue_after_revoke: true,
            first_order_id: 1_000_001,
            first_certificate_id: 2_000_001,
            first_request_id: 3_000_001,
            first_domain_id: 4_000_001,
            first_user_id: 6_000_001,
        }
    }
}

/// One API key. `Debug` does not show the key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySeed {
    /// A label, printed instead of the key where possible.
    pub name: String,
    /// The `X-DC-DEVKEY` value.
    pub key: String,
    #[serde(default)]
    pub role: Role,
    /// The user the key belongs to.
    #[serde(default)]
    pub user: UserSeed,
}

impl std::fmt::Debug for ApiKeySeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeySeed")
            .field("name", &self.name)
            .field("key", &"***")
            .field("role", &self.role)
            .field("user", &self.user)
            .finish()
    }
}

/// What a key may do. `admin` is an unrestricted key of an Administrator; the others are the
/// API key restrictions of the reference (100, 101, 102, 103).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    #[serde(alias = "administrator")]
    Admin,
    /// Orders, requests and certificates (100).
    #[serde(alias = "orders_only")]
    Orders,
    /// Orders, requests, organizations and domains (101).
    OrdersDomainsOrganizations,
    /// GET requests only (102).
    #[serde(alias = "View Only", alias = "view-only")]
    ViewOnly,
    /// Users only (103).
    UserManagement,
}

impl Role {
    /// The seed's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Orders => "orders",
            Self::OrdersDomainsOrganizations => "orders_domains_organizations",
            Self::ViewOnly => "view_only",
            Self::UserManagement => "user_management",
        }
    }
}

/// The user behind a key; empty fields are derived from the key's name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserSeed {
    pub id: Option<u64>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
}

/// One product.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSeed {
    pub name_id: String,
    pub name: String,
    #[serde(default = "ssl_certificate")]
    pub r#type: String,
    #[serde(default = "ssl_certificate")]
    pub group_name: String,
    pub validation_type: ValidationType,
    #[serde(default = "default_validity_years")]
    pub allowed_validity_years: Vec<u32>,
    #[serde(default = "default_hashes")]
    pub signature_hashes: Vec<String>,
    #[serde(default = "sha256")]
    pub default_signature_hash: String,
    #[serde(default = "yes")]
    pub additional_dns_names_allowed: bool,
    #[serde(default = "yes")]
    pub custom_expiration_date_allowed: bool,
    #[serde(default = "yes")]
    pub duplicates_allowed: bool,
    #[serde(default = "yes")]
    pub csr_required: bool,
    #[serde(default = "yes")]
    pub allow_auto_renew: bool,
    /// Price per year of order validity, in the account's currency.
    #[serde(default)]
    pub price: f64,
    /// Longest certificate this product issues; absent means `policy.max_cert_validity_days`.
    #[serde(default)]
    pub max_cert_validity_days: Option<u32>,
    #[serde(default = "default_platforms")]
    pub server_platforms: Vec<ServerPlatform>,
}

/// Validation level of a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationType {
    Dv,
    Ov,
    Ev,
    Private,
}

impl ValidationType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Dv => "dv",
            Self::Ov => "ov",
            Self::Ev => "ev",
            Self::Private => "private",
        }
    }

    pub(crate) fn label(self) -> (&'static str, &'static str) {
        match self {
            Self::Dv => ("DV", "Domain Validation"),
            Self::Ov => ("OV", "Normal Organization Validation"),
            Self::Ev => ("EV", "Extended Organization Validation (EV)"),
            Self::Private => ("Private", "Private certificate, no public validation"),
        }
    }

    /// Whether orders need an organization with an active validation of this type.
    pub(crate) fn needs_organization(self) -> bool {
        matches!(self, Self::Ov | Self::Ev)
    }
}

/// A server platform a product offers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerPlatform {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub install_url: String,
    #[serde(default)]
    pub csr_url: String,
}

fn ssl_certificate() -> String {
    "ssl_certificate".to_string()
}
fn sha256() -> String {
    "sha256".to_string()
}
fn yes() -> bool {
    true
}
fn default_validity_years() -> Vec<u32> {
    vec![1, 2, 3]
}
fn default_hashes() -> Vec<String> {
    ["sha256", "sha384", "sha512"].map(str::to_string).to_vec()
}
fn default_platforms() -> Vec<ServerPlatform> {
    [
        (-1, "OTHER"),
        (2, "Apache"),
        (45, "nginx"),
        (14, "Microsoft IIS"),
    ]
    .into_iter()
    .map(|(id, name)| ServerPlatform {
        id,
        name: name.to_string(),
        install_url: String::new(),
        csr_url: String::new(),
    })
    .collect()
}

/// The products a seed without `products` gets. Names the reference marks UNCONFIRMED
/// (`ssl_ev_basic`, `ssl_ev_securesite_flex`, `ssl_cloud_wildcard`) are included so clients
/// can be tried with them; a seed that lists its own products replaces the whole catalogue.
pub fn default_products() -> Vec<ProductSeed> {
    let product =
        |name_id: &str, name: &str, validation: ValidationType, multi: bool| ProductSeed {
            name_id: name_id.to_string(),
            name: name.to_string(),
            r#type: ssl_certificate(),
            group_name: ssl_certificate(),
            validation_type: validation,
            allowed_validity_years: default_validity_years(),
            signature_hashes: default_hashes(),
            default_signature_hash: sha256(),
            additional_dns_names_allowed: multi,
            custom_expiration_date_allowed: true,
            duplicates_allowed: true,
            csr_required: true,
            allow_auto_renew: true,
            price: 0.0,
            max_cert_validity_days: None,
            server_platforms: default_platforms(),
        };
    use ValidationType::{Dv, Ev, Ov, Private};
    let mut products = vec![
        product("ssl_basic", "Basic OV", Ov, true),
        product("ssl_securesite_flex", "Secure Site OV", Ov, true),
        product("ssl_ev_basic", "Basic EV", Ev, true),
        product("ssl_ev_securesite_flex", "Secure Site EV", Ev, true),
        product("ssl_plus", "Standard SSL", Ov, false),
        product("ssl_multi_domain", "Multi-Domain SSL", Ov, true),
        product("ssl_wildcard", "Wildcard SSL", Ov, true),
        product("ssl_cloud_wildcard", "Cloud Wildcard SSL", Ov, true),
        product("ssl_ev_plus", "EV SSL", Ev, false),
        product("ssl_ev_multi_domain", "EV Multi-Domain SSL", Ev, true),
        product("ssl_dv_geotrust", "GeoTrust Standard DV", Dv, false),
        product("ssl_dv_rapidssl", "RapidSSL Standard DV", Dv, false),
        product("wildcard_dv_geotrust", "GeoTrust Wildcard DV", Dv, true),
        product("wildcard_dv_rapidssl", "RapidSSL Wildcard DV", Dv, true),
        product("cloud_dv_geotrust", "GeoTrust Cloud DV", Dv, true),
        product("private_ssl_plus", "Private SSL", Private, true),
    ];
    for dv in products
        .iter_mut()
        .filter(|p| p.validation_type == ValidationType::Dv)
    {
        dv.allowed_validity_years = vec![1, 2];
    }
    products
}

/// One organization.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationSeed {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub assumed_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default = "yes")]
    pub is_active: bool,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub address2: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub zip: String,
    #[serde(default = "country_us")]
    pub country: String,
    #[serde(default)]
    pub telephone: String,
    /// Validations (`ov`, `ev`, ...) and their status.
    #[serde(default)]
    pub validations: Vec<OrganizationValidationSeed>,
}

fn country_us() -> String {
    "us".to_string()
}

impl OrganizationSeed {
    /// The organization of the default seed: OV and EV validated.
    pub fn example() -> Self {
        Self {
            id: 112_233,
            name: "Example Inc".to_string(),
            assumed_name: String::new(),
            display_name: None,
            is_active: true,
            address: "1 Example Way".to_string(),
            address2: String::new(),
            city: "Lehi".to_string(),
            state: "utah".to_string(),
            zip: "84043".to_string(),
            country: country_us(),
            telephone: "801-555-0100".to_string(),
            validations: ["ov", "ev"]
                .into_iter()
                .map(|kind| OrganizationValidationSeed {
                    r#type: kind.to_string(),
                    status: ValidationStatus::Active,
                    validated_until: None,
                })
                .collect(),
        }
    }
}

/// One validation of an organization.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationValidationSeed {
    pub r#type: String,
    #[serde(default)]
    pub status: ValidationStatus,
    /// `YYYY-MM-DD`; absent means 397 days after the start.
    #[serde(default)]
    pub validated_until: Option<String>,
}

/// `validations[].status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationStatus {
    #[default]
    Active,
    Pending,
    Expired,
}

/// One domain of the account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSeed {
    #[serde(default)]
    pub id: Option<u64>,
    pub name: String,
    #[serde(default)]
    pub organization_id: Option<u64>,
    /// `complete`: names under this domain issue at once; `pending`: they wait for DCV.
    #[serde(default)]
    pub dcv_status: DcvStatus,
    #[serde(default = "dns_txt_token")]
    pub dcv_method: String,
    /// Validation types the domain is validated for once DCV is complete.
    #[serde(default = "default_domain_validations")]
    pub validations: Vec<String>,
    /// `YYYY-MM-DD`; absent means 397 days after the start.
    #[serde(default)]
    pub validated_until: Option<String>,
    /// The DCV token of a pending domain; absent means a random one.
    #[serde(default)]
    pub dcv_token: Option<String>,
    #[serde(default = "yes")]
    pub is_active: bool,
}

impl DomainSeed {
    /// The domain of the default seed: `example.com`, DCV complete, under organization 112233.
    pub fn example() -> Self {
        Self {
            id: None,
            name: "example.com".to_string(),
            organization_id: Some(OrganizationSeed::example().id),
            dcv_status: DcvStatus::Complete,
            dcv_method: dns_txt_token(),
            validations: default_domain_validations(),
            validated_until: None,
            dcv_token: None,
            is_active: true,
        }
    }
}

fn dns_txt_token() -> String {
    "dns-txt-token".to_string()
}
fn default_domain_validations() -> Vec<String> {
    vec!["ov".to_string(), "ev".to_string()]
}

/// `validations[].dcv_status` of a domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DcvStatus {
    #[default]
    Complete,
    Pending,
}

/// Orders present at start. `{n}` in `common_name`, `dns_names` and `alternative_order_id` is
/// replaced by 1..=`count`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderSeed {
    #[serde(default = "one")]
    pub count: u32,
    pub common_name: String,
    #[serde(default)]
    pub dns_names: Vec<String>,
    #[serde(default = "ssl_basic")]
    pub product: String,
    /// `issued`, `pending`, `needs_approval`, `waiting_pickup`, `canceled`, `rejected`,
    /// `revoked` or `expired`.
    #[serde(default = "issued")]
    pub status: String,
    #[serde(default)]
    pub organization_id: Option<u64>,
    #[serde(default)]
    pub alternative_order_id: Option<String>,
    #[serde(default = "days_199")]
    pub validity_days: u32,
    /// How long ago the order was placed (and its certificate issued).
    #[serde(default)]
    pub age_days: u32,
    /// Which key's user placed the orders; absent means the first key.
    #[serde(default)]
    pub api_key: Option<String>,
    /// The (earlier seeded) order these orders renew: it becomes `is_renewed` with
    /// `renewed_order_id` set, as when a renewal is placed through the API.
    #[serde(default)]
    pub renewal_of_order_id: Option<u64>,
}

fn one() -> u32 {
    1
}
fn ssl_basic() -> String {
    "ssl_basic".to_string()
}
fn issued() -> String {
    "issued".to_string()
}
fn days_199() -> u32 {
    199
}

/// Rolling-window rate limits, per API key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Every window applies to every request: a request over any of them gets 429.
    pub windows: Vec<RateWindow>,
    /// Send `Retry-After` (whole seconds) with 429. The reference: not documented, UNCONFIRMED;
    /// off by default so clients are tested without it.
    pub retry_after_header: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            windows: vec![
                RateWindow {
                    requests: 100,
                    seconds: 5,
                },
                RateWindow {
                    requests: 1000,
                    seconds: 180,
                },
            ],
            retry_after_header: false,
        }
    }
}

/// At most `requests` in any `seconds`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateWindow {
    pub requests: u32,
    pub seconds: u64,
}

/// How domain control is checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DcvSettings {
    /// DNS server asked for `dns-txt-token` and `dns-cname-token` records; absent means DNS
    /// DCV never passes.
    pub dns_server: Option<SocketAddr>,
    pub dns_timeout_ms: u64,
    /// Port of the `http-token` fetch (`http://NAME:PORT/.well-known/pki-validation/FILE`).
    pub http_port: u16,
    /// Address to connect to per name, for the `http-token` fetch.
    pub http_hosts: BTreeMap<String, IpAddr>,
    /// Address for names not in `http_hosts`.
    pub http_default_address: IpAddr,
    /// File name under `/.well-known/pki-validation/` (the reference: `fileauth.txt` is
    /// UNCONFIRMED).
    pub http_file_name: String,
    pub http_timeout_ms: u64,
    /// Seconds between DCV passing and the certificate being issued (orders stay `pending`
    /// meanwhile); 0 issues at once.
    pub issue_delay_seconds: u64,
    /// Lifetime of DCV tokens (the reference: 30 days).
    pub token_lifetime_days: u32,
    /// Accepted `dcv_method` values (`http-token-dynamic` is UNCONFIRMED: add it here to
    /// accept it; it is checked like `http-token`).
    pub methods: Vec<String>,
    /// `dcv_method` of orders that send none.
    pub default_method: String,
}

impl Default for DcvSettings {
    fn default() -> Self {
        Self {
            dns_server: None,
            dns_timeout_ms: 2000,
            http_port: 80,
            http_hosts: BTreeMap::new(),
            http_default_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http_file_name: "fileauth.txt".to_string(),
            http_timeout_ms: 5000,
            issue_delay_seconds: 0,
            token_lifetime_days: 30,
            methods: ["email", "dns-txt-token", "dns-cname-token", "http-token"]
                .map(str::to_string)
                .to_vec(),
            default_method: "email".to_string(),
        }
    }
}

/// Issuance policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Longest certificate issued (public TLS since 2026-02-24: 199 days).
    pub max_cert_validity_days: u32,
    /// Longest order (plan) validity.
    pub max_order_validity_years: u32,
    /// How long a completed DCV is reused for new orders.
    pub dcv_reuse_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_cert_validity_days: 199,
            max_order_validity_years: 3,
            dcv_reuse_days: 397,
        }
    }
}

/// Switches for what the reference marks UNCONFIRMED (or calls a quirk), so clients can be
/// tested against either shape. Defaults follow the reference's best guess.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quirks {
    /// HTTP status of the answer to a missing or unknown key: CertCentral answers 403
    /// `access_denied_invalid_key`; `401` with `invalid_api_key` is the old simulator's shape.
    pub unauthorized_status: u16,
    /// `code` of that answer.
    pub unauthorized_code: String,
    /// Spelling of products' `validation_type`: `upper` (`"OV"`, as the product info example
    /// shows) or `lower` (`"ov"`, the old simulator).
    pub validation_type_case: LetterCase,
    /// Add `dcv_status` to the validations of `GET /domain` (the documented listing has only
    /// `status`; domain info keeps `dcv_status`).
    pub domain_list_dcv_status: bool,
    /// Accept a domain's DCV token for an order's DCV (old simulator); CertCentral checks the
    /// order's random value (`PUT /order/certificate/{id}/dcv-random-value`).
    pub order_dcv_accepts_domain_token: bool,
    /// `PUT .../dcv-random-value` makes a new value on every call, the old one invalid (the
    /// docs say it answers the current value while that is valid).
    pub rotate_dcv_random_value: bool,
    /// Emit `errors` as a single object instead of an array (an old fixture shows that shape).
    pub errors_as_object: bool,
    /// Emit empty JSON objects as `[]` (a Go client comment says the API does this).
    pub empty_objects_as_arrays: bool,
    /// Key of the name in the order-create response's `domains[]` (UNCONFIRMED): `dns_name`,
    /// `name` or `both`.
    pub order_domain_name_key: DomainNameKey,
    /// Body field of `check-dcv` naming the subset of names to check (UNCONFIRMED).
    pub check_dcv_subset_field: String,
    /// What a `skip_approval: true` from a non-admin key does: `ignore` it (a request is
    /// created) or `forbid` it (403).
    pub skip_approval_without_admin: SkipApproval,
    /// Serve `GET /certificate/download/order/{order_id}[/format/{format}]` (UNCONFIRMED).
    pub download_by_order: bool,
    /// Key style of `GET /certificate/{id}/chain` (UNCONFIRMED): `snake` or `pascal`.
    pub chain_key_style: KeyStyle,
    /// Add `duplicates_count`, `reissues_count`, `has_reissues` to order info (UNCONFIRMED).
    pub order_duplicate_counts: bool,
    /// Which `revocation_reason` spellings are accepted: `snake` (`key_compromise`, as DigiCert
    /// documents its reasons; others get 400 `invalid_param|revocation_reason`), `camel`
    /// (`keyCompromise`, RFC 5280's spelling, the old client's) or `any` string.
    pub revocation_reasons: ReasonSpelling,
    /// Include `dcv_random_value` in order info (the reference does not list it there).
    pub order_info_dcv_random_value: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Self {
            unauthorized_status: 403,
            unauthorized_code: "access_denied_invalid_key".to_string(),
            validation_type_case: LetterCase::Upper,
            domain_list_dcv_status: false,
            order_dcv_accepts_domain_token: false,
            rotate_dcv_random_value: false,
            errors_as_object: false,
            empty_objects_as_arrays: false,
            order_domain_name_key: DomainNameKey::DnsName,
            check_dcv_subset_field: "dns_names_validations".to_string(),
            skip_approval_without_admin: SkipApproval::Ignore,
            download_by_order: false,
            chain_key_style: KeyStyle::Snake,
            order_duplicate_counts: false,
            revocation_reasons: ReasonSpelling::Snake,
            order_info_dcv_random_value: false,
        }
    }
}

/// See [`Quirks::validation_type_case`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LetterCase {
    Upper,
    Lower,
}

/// See [`Quirks::revocation_reasons`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonSpelling {
    Snake,
    Camel,
    Any,
}

/// See [`Quirks::order_domain_name_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainNameKey {
    DnsName,
    Name,
    Both,
}

/// See [`Quirks::skip_approval_without_admin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipApproval {
    Ignore,
    Forbid,
}

/// See [`Quirks::chain_key_style`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStyle {
    Snake,
    Pascal,
}

/// A root CA to issue from (PEM certificate and PKCS#8 PEM key). `Debug` does not show the
/// key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSeed {
    pub root_certificate_pem: String,
    pub root_key_pem: String,
}

impl std::fmt::Debug for CaSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSeed")
            .field("root_certificate_pem", &self.root_certificate_pem)
            .field("root_key_pem", &"***")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_seed_is_complete() {
        let seed = Seed::from_json("{}").unwrap();
        assert_eq!(seed.api_keys.len(), 3);
        assert_eq!(seed.limits.windows.len(), 2);
        assert_eq!(seed.policy.max_cert_validity_days, 199);
        assert!(seed.products.is_none());
    }

    #[test]
    fn toml_and_json_agree() {
        let json = r#"{"random_seed": 9, "api_keys": [{"name": "a", "key": "k", "role": "view_only"}],
            "domains": [{"name": "example.com", "dcv_status": "pending"}],
            "dcv": {"dns_server": "127.0.0.1:5353"}}"#;
        let toml = r#"
            random_seed = 9
            [[api_keys]]
            name = "a"
            key = "k"
            role = "view_only"
            [[domains]]
            name = "example.com"
            dcv_status = "pending"
            [dcv]
            dns_server = "127.0.0.1:5353"
        "#;
        let a = Seed::from_json(json).unwrap();
        let b = Seed::from_toml(toml).unwrap();
        assert_eq!(a.api_keys[0].role, Role::ViewOnly);
        assert_eq!(b.api_keys[0].role, Role::ViewOnly);
        assert_eq!(a.domains[0].dcv_status, DcvStatus::Pending);
        assert_eq!(b.dcv.dns_server, a.dcv.dns_server);
    }

    #[test]
    fn ranges_are_checked() {
        assert!(Seed::default().validate().is_ok());
        for bad in [
            r#"{"dcv": {"token_lifetime_days": 100000000}}"#,
            r#"{"limits": {"windows": [{"requests": 0, "seconds": 5}]}}"#,
            r#"{"account": {"first_order_id": 18446744073709551615}}"#,
            r#"{"orders": [{"common_name": "a.b", "count": 10000000}]}"#,
            r#"{"dcv": {"default_method": "fax"}}"#,
            r#"{"faults": {"drop_rate": -1}}"#,
        ] {
            assert!(Seed::from_json(bad).unwrap().validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_keys() {
        let seed = Seed::default();
        assert!(!format!("{seed:?}").contains("sim-admin-key"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = Seed::from_json(r#"{"api_kyes": []}"#).unwrap_err();
        assert!(error.to_string().contains("api_kyes"), "{error}");
    }
}
