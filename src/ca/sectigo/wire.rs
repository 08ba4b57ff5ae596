//! SCM's JSON on the wire: field readers, dates, statuses, error codes, and the profile,
//! custom field, organization, domain and certificate records certform reads. Performs no I/O.
//!
//! Where Sectigo's two references disagree (`../shared/reference/sectigo-check.md`: the 25.5
//! header-auth reference "D25" and the OAuth OpenAPI "OAS"), both shapes are read: dates as
//! `MM/dd/yyyy`, `yyyy-MM-dd`, `yyyy-MM-dd HH:mm:ss` or ISO 8601; `SAApproved` and
//! `SA Approved`; `reasonCode` as a number or a string; `validationStatus` as `Validated` or
//! `VALIDATED`.

use serde::Serialize;
use serde_json::Value;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::observed::OrderStatus;
use crate::serial::Serial;
use crate::spec::RevocationReason;

/// A string field (numbers and booleans rendered).
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

/// A signed integer field.
pub(super) fn signed(value: &Value, key: &str) -> Option<i64> {
    match value.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An array field; absent or not an array: empty.
pub(super) fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    match value.get(key) {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

/// The items of a top-level array answer (lists answer `[...]`; some wrap it in an object).
pub(super) fn items(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        Value::Object(_) => ["items", "content", "certificates", "types", "organizations"]
            .iter()
            .map(|key| list(value, key))
            .find(|items| !items.is_empty())
            .unwrap_or(&[]),
        _ => &[],
    }
}

/// A date or date-time in any of SCM's spellings, UTC. A plain date is its last second (an
/// expiry date means "through that day").
pub fn parse_date(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(at) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Some(at);
    }
    // ISO with a `+00:00`/`+0000` offset and milliseconds (`2025-05-21T12:24:27.916+00:00`).
    let iso = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]][offset_hour sign:mandatory][optional [:]][offset_minute]"
    );
    if let Ok(at) = OffsetDateTime::parse(text, &iso) {
        return Some(at);
    }
    let spaced = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    if let Ok(at) = PrimitiveDateTime::parse(text, &spaced) {
        return Some(at.assume_utc());
    }
    let end_of = |date: Date| date.with_hms(23, 59, 59).ok().map(|d| d.assume_utc());
    let us = time::macros::format_description!("[month]/[day]/[year]");
    if let Ok(date) = Date::parse(text.get(..10).unwrap_or(text), &us) {
        return end_of(date);
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = Date::parse(text.get(..10).unwrap_or(text), &day) {
        return end_of(date);
    }
    None
}

/// An SCM certificate status, as certform acts on it.
pub fn map_status(status: &str) -> OrderStatus {
    match normalize(status).as_str() {
        "issued" => OrderStatus::Issued,
        "revoked" => OrderStatus::Revoked,
        "expired" => OrderStatus::Expired,
        "declined" => OrderStatus::Canceled,
        "rejected" | "invalid" => OrderStatus::Rejected,
        // Requested (awaiting approval), Approved, SAApproved, Applied, Init; unknown statuses
        // are in progress too (lenient, as the reference asks).
        _ => OrderStatus::Pending,
    }
}

/// A status lowercased without spaces, dashes or underscores (`SA Approved` = `SAApproved`).
pub fn normalize(status: &str) -> String {
    status
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a status means the request waits for an SCM administrator's approval.
pub fn awaits_approval(status: &str) -> bool {
    normalize(status) == "requested"
}

/// What a pending status waits for, for messages.
pub fn pending_detail(status: &str) -> String {
    match normalize(status).as_str() {
        "requested" => "awaiting approval in SCM".to_string(),
        "approved" | "saapproved" => "approved, being sent to the CA".to_string(),
        "applied" => "applied, awaiting validation and issuance".to_string(),
        "init" => "initialising".to_string(),
        _ => format!("status `{status}`"),
    }
}

/// SCM's revocation reason code (RFC 5280 numbering; D25 allows 0, 1 and 3 to 5).
pub fn reason_code(reason: RevocationReason) -> u8 {
    match reason {
        RevocationReason::Unspecified => 0,
        RevocationReason::KeyCompromise => 1,
        RevocationReason::AffiliationChanged => 3,
        RevocationReason::Superseded => 4,
        RevocationReason::CessationOfOperation => 5,
    }
}

/// The reason text sent with a revocation (`reason`, 1..512, must not be empty).
pub fn reason_text(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::Unspecified => "revoked by certform",
        RevocationReason::KeyCompromise => "key compromise (certform)",
        RevocationReason::AffiliationChanged => "affiliation changed (certform)",
        RevocationReason::Superseded => "superseded (certform)",
        RevocationReason::CessationOfOperation => "cessation of operation (certform)",
    }
}

/// Collect codes that mean "not yet": -183 not collectable, -109 not available now, -1400
/// being processed (D25; sectigo-check §2.3).
pub const NOT_YET_CODES: [i64; 3] = [-183, -109, -1400];
/// Codes of authorization failures (-3, -25, -37 not authorized; -226 no privilege for the
/// organization; -738 domain operation not allowed).
pub const FORBIDDEN_CODES: [i64; 5] = [-3, -25, -37, -226, -738];
/// Codes of rejected credentials (-16 unknown user, -970 incorrect login credentials).
pub const CREDENTIAL_CODES: [i64; 2] = [-16, -970];

/// SCM's error body `{code, description}`.
pub fn error_body(body: &[u8]) -> Option<(i64, String)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let code = signed(&value, "code")?;
    Some((code, text(&value, "description").unwrap_or_default()))
}

/// A serial number in any spelling (colon-separated hex, plain hex).
pub fn serial(text: &str) -> Option<Serial> {
    if !text.chars().any(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(Serial::parse(text))
}

/// The certform marker in `comments`: how a request is found again after a crash.
pub fn marker(tag: &str) -> String {
    format!("certform {tag}")
}

/// Whether `comments` carry the marker of `tag` (a whole word: `cf-1` does not match `cf-12`).
pub fn has_marker(comments: &str, tag: &str) -> bool {
    let marker = marker(tag);
    comments.match_indices(&marker).any(|(at, _)| {
        comments[at + marker.len()..]
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace())
    })
}

/// The `comments` of an enrollment: the configured ones, then the marker.
pub fn comments(own: Option<&str>, tag: &str) -> String {
    match own {
        Some(own) if !own.is_empty() => format!("{own}\n{}", marker(tag)),
        _ => marker(tag),
    }
}

pub(super) fn csr_pem(csr_der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE REQUEST", csr_der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A certificate profile ("type").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub terms: Vec<u32>,
    /// Algorithm (`RSA`, `EC`) → sizes or curves as SCM spells them.
    pub key_types: Vec<(String, Vec<String>)>,
}

impl Profile {
    pub fn from_json(value: &Value) -> Option<Self> {
        let key_types = match value.get("keyTypes") {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(alg, sizes)| {
                    let sizes = match sizes {
                        Value::Array(items) => items
                            .iter()
                            .filter_map(|s| match s {
                                Value::String(s) => Some(s.clone()),
                                Value::Number(n) => Some(n.to_string()),
                                _ => None,
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    (alg.clone(), sizes)
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(Profile {
            id: int(value, "id")?,
            name: text(value, "name").unwrap_or_default(),
            description: text(value, "description").unwrap_or_default(),
            terms: list(value, "terms")
                .iter()
                .filter_map(|t| match t {
                    Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                })
                .collect(),
            key_types,
        })
    }

    /// Whether the profile allows `key` (no key types listed: any).
    pub fn allows_key(&self, key: &crate::spec::KeySpec) -> bool {
        use crate::spec::KeySpec;
        if self.key_types.is_empty() {
            return true;
        }
        let (algorithms, sizes): (&[&str], Vec<String>) = match key {
            KeySpec::Rsa(bits) => (&["RSA"], vec![bits.to_string()]),
            KeySpec::Ecdsa(bits) => (
                &["EC", "ECC", "ECDSA"],
                vec![
                    format!("P-{bits}"),
                    format!("P{bits}"),
                    bits.to_string(),
                    format!("secp{bits}r1"),
                    if *bits == 256 {
                        "prime256v1".to_string()
                    } else {
                        format!("P-{bits}")
                    },
                ],
            ),
            KeySpec::Ed25519 => (&["ED25519", "EDDSA"], vec!["Ed25519".to_string()]),
        };
        self.key_types.iter().any(|(alg, allowed)| {
            algorithms.iter().any(|a| a.eq_ignore_ascii_case(alg))
                && (allowed.is_empty()
                    || allowed
                        .iter()
                        .any(|s| sizes.iter().any(|w| w.eq_ignore_ascii_case(s.trim()))))
        })
    }

    /// The key types as one line: `RSA 2048/4096, EC P-256`.
    pub fn describe_keys(&self) -> String {
        self.key_types
            .iter()
            .map(|(alg, sizes)| format!("{alg} {}", sizes.join("/")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A custom field of the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomField {
    pub id: Option<u64>,
    pub name: String,
    pub mandatory: bool,
    /// The input type where the API says it (`TEXT_SINGLE_LINE`, `NUMBER`, `DATE`, `EMAIL`,
    /// `TEXT_OPTION`, ...); `None`: free text.
    pub input_type: Option<String>,
    /// Allowed values of an option field.
    pub options: Vec<String>,
}

impl CustomField {
    pub fn from_json(value: &Value) -> Option<Self> {
        let input = value.get("input");
        let input_type = input
            .and_then(|i| text(i, "type"))
            .or_else(|| text(value, "inputType"))
            .or_else(|| text(value, "type"));
        let options = input
            .map(|i| list(i, "options"))
            .unwrap_or(&[])
            .iter()
            .filter_map(|o| o.as_str().map(str::to_string))
            .collect();
        Some(CustomField {
            id: int(value, "id"),
            name: text(value, "name")?,
            mandatory: value
                .get("mandatory")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            input_type,
            options,
        })
    }

    /// Why `value` does not fit this field, if it does not.
    pub fn refuses(&self, value: &str) -> Option<String> {
        let kind = self
            .input_type
            .as_deref()
            .map(normalize)
            .unwrap_or_default();
        if kind.contains("number") && value.trim().parse::<f64>().is_err() {
            return Some("is not a number".to_string());
        }
        if kind.contains("date") && !super::settings::is_date(value) {
            return Some("is not a `YYYY-MM-DD` date".to_string());
        }
        if kind.contains("email") && !super::settings::is_email(value) {
            return Some("is not an email address".to_string());
        }
        if !self.options.is_empty() && !self.options.iter().any(|o| o == value) {
            return Some(format!("is not one of {}", self.options.join(", ")));
        }
        None
    }
}

/// An organization or department of the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    pub id: u64,
    pub name: String,
    /// The parent organization's name, for departments.
    pub parent: Option<String>,
}

/// The organizations of an answer, departments flattened after their organization.
pub fn organizations(value: &Value) -> Vec<Organization> {
    let mut out = Vec::new();
    for org in items(value) {
        let Some(id) = int(org, "id") else { continue };
        let name = text(org, "name").unwrap_or_default();
        out.push(Organization {
            id,
            name: name.clone(),
            parent: text(org, "parentName"),
        });
        for department in list(org, "departments") {
            if let Some(id) = int(department, "id") {
                out.push(Organization {
                    id,
                    name: text(department, "name").unwrap_or_default(),
                    parent: text(department, "parentName").or_else(|| Some(name.clone())),
                });
            }
        }
    }
    out
}

/// A domain of the account with its validation status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Domain {
    pub id: Option<u64>,
    pub name: String,
    /// `validated`, `not validated`, `expired` or as SCM wrote it (lowercased).
    pub validation: String,
    pub method: Option<String>,
    pub expires: Option<String>,
}

impl Domain {
    pub fn from_json(value: &Value) -> Option<Self> {
        let name = text(value, "name").or_else(|| text(value, "domain"))?;
        let raw = text(value, "validationStatus")
            .or_else(|| text(value, "dcvStatus"))
            .unwrap_or_default();
        Some(Domain {
            id: int(value, "id"),
            name,
            validation: domain_status(&raw),
            method: text(value, "validationMethod").or_else(|| text(value, "dcvMethod")),
            expires: text(value, "dcvExpiration").or_else(|| text(value, "expirationDate")),
        })
    }

    /// Whether this domain record covers `name` (itself or a subdomain; `*.` ignored).
    pub fn covers(&self, name: &str) -> bool {
        let base = self.name.trim_start_matches("*.").to_ascii_lowercase();
        let name = name.trim_start_matches("*.").to_ascii_lowercase();
        name == base || name.ends_with(&format!(".{base}"))
    }

    pub fn is_validated(&self) -> bool {
        self.validation == "validated"
    }
}

/// A domain validation status in one spelling: `Validated`/`VALIDATED` → `validated`,
/// `Not validated`/`NOT_VALIDATED` → `not validated`.
pub fn domain_status(raw: &str) -> String {
    match normalize(raw).as_str() {
        "" => "unknown".to_string(),
        "validated" => "validated".to_string(),
        "notvalidated" => "not validated".to_string(),
        "expired" => "expired".to_string(),
        other => other.to_string(),
    }
}

/// One certificate record (`GET /ssl/v1/{sslId}`), or a list summary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Details {
    pub id: u64,
    pub status: String,
    pub common_name: String,
    pub names: Vec<String>,
    pub org_id: Option<u64>,
    pub profile_id: Option<u64>,
    pub profile_name: Option<String>,
    pub term: Option<u32>,
    pub comments: String,
    pub serial: Option<Serial>,
    pub expires: Option<OffsetDateTime>,
    pub requested: Option<OffsetDateTime>,
    pub renewed: bool,
    pub renew_id: Option<String>,
    pub key_type: Option<String>,
}

impl Details {
    pub fn from_json(value: &Value) -> Option<Self> {
        let id = int(value, "sslId").or_else(|| int(value, "id"))?;
        let names = match value.get("subjectAlternativeNames") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(joined)) => split_names(joined),
            _ => text(value, "subjAltNames")
                .map(|joined| split_names(&joined))
                .unwrap_or_default(),
        };
        let cert_type = value.get("certType");
        Some(Details {
            id,
            status: text(value, "status").unwrap_or_default(),
            common_name: text(value, "commonName").unwrap_or_default(),
            names,
            org_id: int(value, "orgId"),
            profile_id: cert_type
                .and_then(|t| int(t, "id"))
                .or_else(|| int(value, "certType")),
            profile_name: cert_type.and_then(|t| text(t, "name")),
            term: int(value, "term").and_then(|t| u32::try_from(t).ok()),
            comments: text(value, "comments").unwrap_or_default(),
            serial: text(value, "serialNumber").and_then(|s| serial(&s)),
            expires: text(value, "expires").and_then(|d| parse_date(&d)),
            requested: text(value, "requested").and_then(|d| parse_date(&d)),
            renewed: value
                .get("renewed")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            renew_id: text(value, "renewId"),
            key_type: text(value, "keyType"),
        })
    }

    /// Whether the record was superseded by a reissue (`Replaced`) or a renewal.
    pub fn is_superseded(&self) -> bool {
        normalize(&self.status) == "replaced"
    }
}

fn split_names(joined: &str) -> Vec<String> {
    joined
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

/// Per-certificate DCV (`GET /ssl/v1/{sslId}/dcv`): each name's status and instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcvEntry {
    pub domain: String,
    pub status: String,
    pub mode: Option<String>,
    pub host: Option<String>,
    pub point: Option<String>,
    pub url: Option<String>,
    pub file: Option<String>,
    pub email: Option<String>,
}

/// The DCV entries of a per-certificate DCV answer (an array of `{dcvLog, instructions}` or
/// one such object).
pub fn dcv_entries(value: &Value) -> Vec<DcvEntry> {
    let blocks: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![value],
        _ => Vec::new(),
    };
    let mut out: Vec<DcvEntry> = Vec::new();
    for block in blocks {
        let logs = block.get("dcvLog").map(|l| list(l, "log")).unwrap_or(&[]);
        for instruction in list(block, "instructions") {
            let Some(domain) = text(instruction, "domainName") else {
                continue;
            };
            let status = logs
                .iter()
                .find(|l| text(l, "domainName").as_deref() == Some(domain.as_str()))
                .and_then(|l| text(l, "dcvStatus"))
                .unwrap_or_default();
            out.push(DcvEntry {
                domain,
                status,
                mode: text(instruction, "dcvMode"),
                host: text(instruction, "host"),
                point: text(instruction, "point"),
                url: text(instruction, "url"),
                file: text(instruction, "file"),
                email: text(instruction, "dcvEmail"),
            });
        }
        for log in logs {
            let Some(domain) = text(log, "domainName") else {
                continue;
            };
            if !out.iter().any(|e| e.domain == domain) {
                out.push(DcvEntry {
                    domain,
                    status: text(log, "dcvStatus").unwrap_or_default(),
                    mode: None,
                    host: None,
                    point: None,
                    url: None,
                    file: None,
                    email: None,
                });
            }
        }
    }
    out
}

/// Whether a per-domain DCV status means validated.
pub fn dcv_done(status: &str) -> bool {
    matches!(
        normalize(status).as_str(),
        "validated" | "valid" | "completed" | "complete" | "approved"
    )
}
