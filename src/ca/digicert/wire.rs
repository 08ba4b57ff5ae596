//! DigiCert's JSON on the wire: field readers, wire names and codes, and the order, domain,
//! organization, product and user records certform reads from it. Performs no I/O.

use serde::Serialize;
use serde_json::Value;
use time::{Date, OffsetDateTime};

use crate::ca::{CaError, ErrorClass, ValidationMethod};
use crate::observed::OrderStatus;
use crate::serial::Serial;
use crate::spec::RevocationReason;

/// A string field (numbers are rendered).
pub(super) fn text(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integer field (strings of digits accepted).
pub(super) fn int(value: &Value, key: &str) -> Option<u64> {
    match value.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A flag: `true`, `1` or `"1"` (the list's filters speak of `is_renewed` as 1/0).
pub(super) fn flag(value: &Value, key: &str) -> bool {
    match value.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => matches!(s.trim(), "1" | "true"),
        _ => false,
    }
}

/// An array field; `{}`/absent/`null` are empty (the API may send `[]` for `{}` and back).
pub(super) fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
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
pub(super) fn dcv_wire_name(method: ValidationMethod) -> &'static str {
    match method {
        ValidationMethod::DnsTxt => "dns-txt-token",
        ValidationMethod::DnsCname => "dns-cname-token",
        ValidationMethod::Http => "http-token",
        ValidationMethod::Email => "email",
    }
}

/// The name a DNS or email check of `domain` validates: without `*.` and `www.`.
pub(super) fn dcv_base(domain: &str) -> &str {
    let name = domain.strip_prefix("*.").unwrap_or(domain);
    name.strip_prefix("www.").unwrap_or(name)
}

/// The `revocation_reason` certform sends: snake_case, as DigiCert documents its revocation
/// reasons (`superseded` in the CertCentral example, `key_compromise`, `affiliation_changed`,
/// `cessation_of_operation` in DigiCert's revocation reason table) and as CertCentral spells
/// its other field values; never RFC 5280's camelCase.
pub(super) fn reason_text(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::Unspecified => "unspecified",
        RevocationReason::KeyCompromise => "key_compromise",
        RevocationReason::AffiliationChanged => "affiliation_changed",
        RevocationReason::Superseded => "superseded",
        RevocationReason::CessationOfOperation => "cessation_of_operation",
    }
}

/// Percent-encode a path segment or query value.
pub(super) fn encode(text: &str) -> String {
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

pub(super) fn csr_pem(csr_der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE REQUEST", csr_der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

pub(super) fn order_number(order_id: &str) -> Result<u64, CaError> {
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
    /// The end of the order's plan (`order_valid_till`, the end of that day); the order detail
    /// carries it, the list may not.
    pub order_valid_till: Option<OffsetDateTime>,
    pub product: Option<String>,
    pub organization: Option<u64>,
    pub signature_hash: Option<String>,
    pub dcv_method: Option<String>,
    pub alternative_order_id: Option<String>,
    pub dcv_random_value: Option<String>,
    pub server_platform: Option<i64>,
    pub payment_method: Option<String>,
    /// `is_renewed`: a later order renewed this one.
    pub is_renewed: bool,
    /// `renewed_order_id` (0 or absent: none).
    pub renewed_order_id: Option<u64>,
    /// `renewal_of_order_id`: the order this one renews.
    pub renewal_of_order_id: Option<u64>,
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
            names: self.dns_names,
            serial: self.serial,
            tag: self.alternative_order_id,
            not_after: self.valid_till,
            settings,
            certificate_id: self.certificate_id.map(|id| id.to_string()),
            lineage: crate::ca::Lineage {
                renewed: self.is_renewed || self.renewed_order_id.is_some(),
                renewed_by: self.renewed_order_id.map(|id| id.to_string()),
                renewal_of: self.renewal_of_order_id.map(|id| id.to_string()),
            },
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
            order_valid_till: text(value, "order_valid_till").and_then(|t| parse_day(&t)),
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
            is_renewed: flag(value, "is_renewed"),
            renewed_order_id: int(value, "renewed_order_id").filter(|id| *id > 0),
            renewal_of_order_id: int(value, "renewal_of_order_id").filter(|id| *id > 0),
        })
    }
}

/// The answer of `PUT /order/certificate/{id}/dcv-random-value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RandomValue {
    pub value: String,
    /// When the value stops being accepted (`expiration_date`, ISO 8601 UTC).
    pub expires: Option<OffsetDateTime>,
}

impl RandomValue {
    pub fn from_json(value: &Value) -> Option<Self> {
        Some(Self {
            value: text(value, "dcv_random_value").filter(|v| !v.is_empty())?,
            expires: text(value, "expiration_date").and_then(|t| {
                OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
            }),
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
    /// From a domain of `GET /domain?include_validation=true` or `GET /domain/{id}`. The
    /// documented listing gives `validations[]` with `status` only: an `active` validation
    /// means DCV is done (the domain is pre-validated). Where a validation also carries
    /// `dcv_status` (domain info, older answers), that field decides; the deprecated top-level
    /// `status: "active"` counts too.
    pub(super) fn from_json(value: &Value) -> Option<Self> {
        let validations = list(value, "validations");
        let active = |v: &Value| {
            text(v, "status").is_some_and(|status| status.eq_ignore_ascii_case("active"))
        };
        let complete = validations.iter().any(|v| match text(v, "dcv_status") {
            Some(dcv) => dcv.eq_ignore_ascii_case("complete"),
            None => active(v),
        }) || text(value, "status")
            .is_some_and(|s| s.eq_ignore_ascii_case("active"));
        Some(Self {
            id: int(value, "id")?,
            name: text(value, "name")?,
            dcv_status: if complete { "complete" } else { "pending" }.to_string(),
            validated: active_types(validations, active),
        })
    }

    pub(super) fn covers(&self, name: &str) -> bool {
        let base = dcv_base(name);
        base == self.name || base.ends_with(&format!(".{}", self.name))
    }
}

/// The lowercase `type`s of the validations `keep` accepts (`ov`, `ev`, ...).
pub(super) fn active_types(validations: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
    validations
        .iter()
        .filter(|v| keep(v))
        .filter_map(|v| text(v, "type"))
        .map(|kind| kind.to_ascii_lowercase())
        .collect()
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

impl OrganizationInfo {
    /// From an entry of `GET /organization?include_validation=true`.
    pub(super) fn from_json(value: &Value) -> Option<Self> {
        Some(Self {
            id: int(value, "id")?,
            name: text(value, "name").unwrap_or_default(),
            status: text(value, "status").unwrap_or_default(),
            validated: active_types(list(value, "validations"), |v| {
                text(v, "status").is_some_and(|s| s.eq_ignore_ascii_case("active"))
            }),
        })
    }
}

/// A product enabled for the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductInfo {
    pub name_id: String,
    pub name: String,
    /// Lowercase (`ov`, `ev`, `dv`): the documented answer spells it `"OV"`.
    pub validation_type: Option<String>,
    pub allowed_validity_years: Vec<u64>,
    pub signature_hashes: Vec<String>,
    pub default_signature_hash: Option<String>,
    pub server_platforms: Vec<i64>,
    pub custom_expiration_date_allowed: bool,
}

impl ProductInfo {
    pub(super) fn from_json(value: &Value) -> Option<Self> {
        let hashes = value
            .get("signature_hash_types")
            .cloned()
            .unwrap_or_default();
        Some(Self {
            name_id: text(value, "name_id")?,
            name: text(value, "name").unwrap_or_default(),
            validation_type: text(value, "validation_type")
                .filter(|kind| !kind.is_empty())
                .map(|kind| kind.to_ascii_lowercase()),
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

    pub(super) fn needs_organization(&self) -> bool {
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
    /// From `GET /user/me`.
    pub(super) fn from_json(value: &Value) -> Self {
        Self {
            id: int(value, "id").unwrap_or_default(),
            username: text(value, "username").unwrap_or_default(),
            account_id: int(value, "account_id"),
            roles: list(value, "access_roles")
                .iter()
                .filter_map(|r| text(r, "name"))
                .collect(),
        }
    }

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
