//! The SSL endpoints under `/api/ssl/v1` that create and read certificates: enroll, details,
//! list/count and collect, with the request-body checks the other endpoints share
//! (`lifecycle.rs` changes existing certificates). Codes and texts are those of Sectigo's error
//! table (D25 `#overview-errors`); the few the table lacks are marked as the simulator's own.

use serde_json::{json, Map, Value};
use time::{Duration, OffsetDateTime};

use super::ca::{parse_csr, pkcs7, Csr};
use super::model::{Account, ApiError, Certificate, DateStyle, FieldValue, Reply, Status, User};
use super::query::Query;
use super::seed::{Privilege, ProfileSeed};

/// Largest page of `GET /api/ssl/v1` (OpenAPI `size` maximum).
const MAX_PAGE: usize = 200;
/// Page size when `size` is absent (undocumented; small on purpose so that clients page).
const DEFAULT_PAGE: usize = 10;
/// DCV modes of D25's enroll (`AUTO` is OpenAPI-only).
const DCV_MODES: [&str; 5] = ["CNAME", "EMAIL", "HTTP", "HTTPS", "TXT"];

/// -3 "You are not authorized to perform {0}." unless `user` holds `privilege`.
pub(crate) fn require(
    account: &mut Account,
    user: &User,
    privilege: Privilege,
    operation: &str,
) -> Result<(), ApiError> {
    if user.can(privilege) {
        return Ok(());
    }
    account.counters.forbidden += 1;
    Err(ApiError::new(
        account.quirks.forbidden_status,
        -3,
        format!("You are not authorized to perform {operation}."),
    ))
}

// ---------------------------------------------------------------------------------------------
// Request bodies

/// A JSON object body (an empty body is an empty object when `empty_ok`).
pub(crate) fn object(body: &[u8], empty_ok: bool) -> Result<Map<String, Value>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::unparsable())?;
    let trimmed = text.trim();
    if empty_ok && (trimmed.is_empty() || trimmed == "\"\"" || trimmed == "null") {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::unparsable()),
    }
}

pub(super) fn present<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|value| !value.is_null())
}

/// A number field; a numeric string is coerced (as the server's JSON mapper does).
pub(crate) fn int_field(body: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    match present(body, name) {
        None => Ok(None),
        Some(Value::Number(number)) => number.as_i64().map(Some).ok_or_else(ApiError::unparsable),
        Some(Value::String(text)) => text
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::unparsable()),
        Some(_) => Err(ApiError::unparsable()),
    }
}

/// A string field; numbers and booleans are coerced, arrays and objects are unparsable.
pub(crate) fn str_field(body: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match present(body, name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(Value::Bool(flag)) => Ok(Some(flag.to_string())),
        Some(_) => Err(ApiError::unparsable()),
    }
}

pub(super) fn required_str(body: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match str_field(body, name)? {
        Some(text) if !text.trim().is_empty() => Ok(text),
        _ => Err(ApiError::missing(name)),
    }
}

fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_email(text: &str) -> bool {
    let mut parts = text.split('@');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None) if !local.is_empty() && domain.contains('.')
    )
}

/// Check the CSR's key against the profile: -170 (EC not allowed), -11 (other algorithm),
/// -13 (size or curve not allowed).
pub(super) fn check_key(csr: &Csr, profile: &ProfileSeed) -> Result<(), ApiError> {
    let Some(allowed) = profile.key_types.get(csr.algorithm) else {
        if csr.algorithm == "EC" {
            return Err(ApiError::bad(
                -170,
                "Based on the customer configuration, ECC CSRs are not allowed.",
            ));
        }
        return Err(ApiError::bad(-11, "The CSR uses an unsupported algorithm!"));
    };
    if !allowed
        .iter()
        .any(|value| value.eq_ignore_ascii_case(&csr.parameter))
    {
        return Err(ApiError::bad(-13, "The CSR uses an unsupported key size!"));
    }
    Ok(())
}

/// Check each name: a DNS name (-1601), under a registered domain delegated to the
/// organization (-1010), validated unless a DCV mode is given (-737).
pub(super) fn check_names(
    account: &Account,
    names: &[String],
    org_id: u64,
    dcv_mode: Option<&str>,
    field: &str,
) -> Result<(), ApiError> {
    let mut unvalidated = Vec::new();
    for name in names {
        if !is_dns_name(name) {
            return Err(ApiError::invalid(field));
        }
        if account.covering_domain(name, org_id).is_none() {
            return Err(ApiError::bad(
                -1010,
                format!("Domain '{name}' is not allowed."),
            ));
        }
        if !account.name_validated(name, org_id) {
            unvalidated.push(name.clone());
        }
    }
    if !unvalidated.is_empty() && dcv_mode.is_none() {
        return Err(ApiError::bad(
            -737,
            format!(
                "The domain(s): {} are not validated! Please perform the DCV process for them before proceed.",
                unvalidated.join(", ")
            ),
        ));
    }
    Ok(())
}

/// `dcvMode` (one of D25's five) and `dcvEmail` (required for `EMAIL`).
pub(super) fn dcv_fields(
    body: &Map<String, Value>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let mode = str_field(body, "dcvMode")?.filter(|mode| !mode.is_empty());
    if let Some(mode) = &mode {
        if !DCV_MODES.contains(&mode.as_str()) {
            return Err(ApiError::invalid("dcvMode"));
        }
    }
    let email = str_field(body, "dcvEmail")?.filter(|email| !email.is_empty());
    if let Some(email) = &email {
        if !is_email(email) {
            return Err(ApiError::invalid("dcvEmail"));
        }
    }
    if mode.as_deref() == Some("EMAIL") && email.is_none() {
        return Err(ApiError::missing("dcvEmail"));
    }
    Ok((mode, email))
}

/// `customFields`: known names (-135), typed values (-1601), every mandatory one (-62).
pub(super) fn custom_fields(
    account: &Account,
    body: &Map<String, Value>,
) -> Result<Vec<FieldValue>, ApiError> {
    let mut values = Vec::new();
    match present(body, "customFields") {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Value::Object(item) = item else {
                    return Err(ApiError::unparsable());
                };
                let name = str_field(item, "name")?.unwrap_or_default();
                let value = str_field(item, "value")?.unwrap_or_default();
                if name.is_empty() || name.len() > 256 {
                    return Err(ApiError::invalid("customFields[].name"));
                }
                if value.len() > 256 {
                    return Err(ApiError::invalid("customFields[].value"));
                }
                let Some(definition) = account
                    .custom_fields
                    .iter()
                    .find(|field| field.name == name)
                else {
                    return Err(ApiError::bad(-135, "Custom field cannot be found."));
                };
                let valid = match definition.input.as_str() {
                    "NUMBER" => value.trim().parse::<f64>().is_ok(),
                    "DATE" => time::Date::parse(
                        &value,
                        time::macros::format_description!("[year]-[month]-[day]"),
                    )
                    .is_ok(),
                    "EMAIL" => is_email(&value),
                    _ => true,
                };
                if !valid {
                    return Err(ApiError::invalid(&name));
                }
                values.push(FieldValue { name, value });
            }
        }
        Some(_) => return Err(ApiError::unparsable()),
    }
    for definition in account.custom_fields.iter().filter(|field| field.mandatory) {
        if !values
            .iter()
            .any(|value| value.name == definition.name && !value.value.trim().is_empty())
        {
            return Err(ApiError::bad(-62, "Missing mandatory custom field!"));
        }
    }
    Ok(values)
}

/// `externalRequester`: ≤ 512 characters of comma-separated emails; required per workflow.
pub(super) fn external_requester(
    account: &Account,
    body: &Map<String, Value>,
) -> Result<String, ApiError> {
    let text = str_field(body, "externalRequester")?.unwrap_or_default();
    if text.len() > 512
        || (!text.trim().is_empty() && !text.split(',').all(|part| is_email(part.trim())))
    {
        return Err(ApiError::invalid("externalRequester"));
    }
    if text.trim().is_empty() && account.workflow.require_external_requester {
        return Err(ApiError::bad(-139, "External Requester is required."));
    }
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// Enroll

/// `POST /api/ssl/v1/enroll` → 200 `{sslId, renewId}`.
pub(crate) fn enroll(
    account: &mut Account,
    user: &User,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    require(account, user, Privilege::SslRequest, "SSL enrollment")?;
    let body = object(body, false)?;
    let org_id = int_field(&body, "orgId")?.ok_or_else(|| ApiError::missing("orgId"))?;
    let org_id = u64::try_from(org_id).map_err(|_| ApiError::invalid("orgId"))?;
    let Some((organization, _)) = account.organization(org_id) else {
        return Err(ApiError::bad(
            -1023,
            format!("Organization '{org_id}' not found."),
        ));
    };
    let org_validation = organization.validation_status.clone();
    let csr_text = required_str(&body, "csr")?;
    if csr_text.len() > 32_767 {
        return Err(ApiError::invalid("csr"));
    }
    let csr = parse_csr(&csr_text)?;
    let profile_id = int_field(&body, "certType")?.ok_or_else(|| ApiError::missing("certType"))?;
    let Some(profile) = u64::try_from(profile_id)
        .ok()
        .and_then(|id| account.profile(id))
        .cloned()
    else {
        return Err(ApiError::bad(-39, "The certificate profile id is invalid!"));
    };
    let term = int_field(&body, "term")?.ok_or_else(|| ApiError::missing("term"))?;
    if term < 1
        || !profile
            .terms
            .iter()
            .any(|allowed| i64::from(*allowed) == term)
    {
        return Err(ApiError::bad(
            -36,
            "The validity period (term) is invalid for this certificate profile.",
        ));
    }
    check_key(&csr, &profile)?;
    if profile.validation != "DV" && org_validation != "Validated" {
        return Err(ApiError::bad(
            -843,
            format!(
                "SSL certificate of this type cannot be requested due to '{org_validation}' validation status of the selected organization."
            ),
        ));
    }
    let comments = str_field(&body, "comments")?.unwrap_or_default();
    if comments.chars().count() > 1024 {
        return Err(ApiError::invalid("comments"));
    }
    let external_requester = external_requester(account, &body)?;
    let fields = custom_fields(account, &body)?;
    let (dcv_mode, dcv_email) = dcv_fields(&body)?;
    let sans: Vec<String> = str_field(&body, "subjAltNames")?
        .unwrap_or_default()
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    let common_name = match csr.common_name.clone().or_else(|| sans.first().cloned()) {
        Some(name) => name.to_ascii_lowercase(),
        None => return Err(ApiError::missing("commonName")),
    };
    if common_name.len() > 64 {
        return Err(ApiError::invalid("commonName"));
    }
    let mut names = vec![common_name.clone()];
    names.extend(sans.iter().cloned());
    check_names(account, &names, org_id, dcv_mode.as_deref(), "subjAltNames")?;
    let id = create(
        account,
        user,
        New {
            common_name,
            sans,
            org_id,
            profile_id: profile.id,
            term: term as u32,
            comments,
            external_requester,
            custom_fields: fields,
            csr,
            dcv_mode,
            dcv_email,
            requested_via: "REST API".to_string(),
        },
        now,
    );
    account.counters.enrollments += 1;
    let renew_id = account
        .certificates
        .get(&id)
        .map(|certificate| certificate.renew_id.clone())
        .unwrap_or_default();
    Ok(Reply::ok(json!({"sslId": id, "renewId": renew_id})))
}

/// What a new record is made of.
pub(super) struct New {
    pub(super) common_name: String,
    pub(super) sans: Vec<String>,
    pub(super) org_id: u64,
    pub(super) profile_id: u64,
    pub(super) term: u32,
    pub(super) comments: String,
    pub(super) external_requester: String,
    pub(super) custom_fields: Vec<FieldValue>,
    pub(super) csr: Csr,
    pub(super) dcv_mode: Option<String>,
    pub(super) dcv_email: Option<String>,
    pub(super) requested_via: String,
}

/// Create a record in `Requested`, approved at once when the user's requests auto-approve.
pub(super) fn create(account: &mut Account, user: &User, new: New, now: OffsetDateTime) -> u64 {
    let (id, order_number, renew_id) = account.next_certificate_id();
    let mut names = vec![new.common_name.clone()];
    names.extend(new.sans.iter().cloned());
    let dcv = account.dcv_instructions(
        &names,
        new.org_id,
        new.dcv_mode.as_deref(),
        new.dcv_email.as_deref(),
    );
    *account
        .counters
        .enrollments_by_common_name
        .entry(new.common_name.clone())
        .or_default() += 1;
    account.certificates.insert(
        id,
        Certificate {
            id,
            renew_id,
            order_number,
            common_name: new.common_name,
            sans: new.sans,
            org_id: new.org_id,
            profile_id: new.profile_id,
            term: new.term,
            comments: new.comments,
            external_requester: new.external_requester,
            custom_fields: new.custom_fields,
            spki_der: new.csr.spki_der,
            key_algorithm: new.csr.algorithm,
            key_parameter: new.csr.parameter,
            key_bits: new.csr.bits,
            dcv_mode: new.dcv_mode,
            dcv_email: new.dcv_email,
            requester: user.email.clone(),
            requester_id: user.id,
            requested_via: new.requested_via,
            // D25's `Requested` example already names an owner (the responsible admin).
            owner: Some((user.login.clone(), user.id)),
            status: Status::Requested,
            requested: now,
            approved: None,
            issued: None,
            declined: None,
            revoked: None,
            replaced: None,
            reason_code: None,
            renewed: false,
            renewed_date: None,
            issue_at: None,
            leaf: None,
            dcv,
        },
    );
    if account.auto_approves(user) {
        account.approve(id, Some((user.login.clone(), user.id)), now);
    }
    id
}

// ---------------------------------------------------------------------------------------------
// Reading

/// The certificate `id` as `user` sees it (other roles see no SSL certificates).
pub(super) fn visible<'a>(
    account: &'a Account,
    user: &User,
    id: &str,
) -> Result<&'a Certificate, ApiError> {
    let parsed = id.parse::<u64>().map_err(|_| ApiError::wrong_id(id))?;
    match account.certificates.get(&parsed) {
        Some(certificate) if user.role.manages_ssl() => Ok(certificate),
        _ => Err(ApiError::wrong_id(id)),
    }
}

fn validation_type(profile: Option<&ProfileSeed>) -> &'static str {
    match profile.map(|profile| profile.validation.as_str()) {
        Some("EV") => "Extended Validation (EV)",
        Some("DV") => "Domain Validation (DV)",
        _ => "Organization Validation (OV)",
    }
}

pub(crate) fn profile_json(profile: &ProfileSeed) -> Value {
    json!({
        "id": profile.id,
        "name": profile.name,
        "description": profile.description,
        "terms": profile.terms,
        "keyTypes": profile.key_types,
        "useSecondaryOrgName": profile.use_secondary_org_name,
    })
}

/// `GET /api/ssl/v1/{sslId}` in D25's key order; dates per `dateFormat` or the quirk.
pub(crate) fn details(
    account: &Account,
    user: &User,
    id: &str,
    query: &Query,
) -> Result<Reply, ApiError> {
    let style = match query.get("dateFormat") {
        Some(name) => DateStyle::parse(name).ok_or_else(|| ApiError::invalid("dateFormat"))?,
        None => DateStyle::parse(&account.quirks.details_date_format).unwrap_or(DateStyle::Us),
    };
    let certificate = visible(account, user, id)?;
    Ok(Reply::ok(details_json(account, certificate, style)))
}

pub(crate) fn details_json(
    account: &Account,
    certificate: &Certificate,
    style: DateStyle,
) -> Value {
    let date = |at: OffsetDateTime| Value::String(style.format(at));
    let profile = account.profile(certificate.profile_id);
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_string(), value);
    };
    put("commonName", json!(certificate.common_name));
    put("sslId", json!(certificate.id));
    put("id", json!(certificate.id));
    put("orgId", json!(certificate.org_id));
    put("status", json!(certificate.status.name(&account.quirks)));
    put("orderNumber", json!(certificate.order_number));
    put("backendCertId", json!(certificate.order_number.to_string()));
    put("vendor", json!("Sectigo Limited"));
    put(
        "certType",
        profile.map_or_else(|| json!({"id": certificate.profile_id}), profile_json),
    );
    put("subType", json!(""));
    put("validationType", json!(validation_type(profile)));
    put("term", json!(certificate.term));
    if let Some((owner, owner_id)) = &certificate.owner {
        put("owner", json!(owner));
        put("ownerId", json!(owner_id));
    }
    put("requester", json!(certificate.requester));
    put("requesterId", json!(certificate.requester_id));
    put("requestedVia", json!(certificate.requested_via));
    if !certificate.external_requester.is_empty() {
        put("externalRequester", json!(certificate.external_requester));
    }
    put("comments", json!(certificate.comments));
    put("requested", date(certificate.requested));
    if let Some(at) = certificate.approved {
        put("approved", date(at));
    }
    if let Some(at) = certificate.issued {
        put("issued", date(at));
    }
    if let Some(at) = certificate.declined {
        put("declined", date(at));
    }
    // Before issuance SCM shows the expected end (D25's `Requested` example has `expires`).
    let expires = certificate
        .expires()
        .unwrap_or_else(|| certificate.requested + Duration::days(i64::from(certificate.term)));
    put("expires", date(expires));
    if let Some(at) = certificate.replaced {
        put("replaced", date(at));
    }
    if let Some(at) = certificate.revoked {
        put("revoked", date(at));
    }
    if let Some(code) = certificate.reason_code {
        put("reasonCode", json!(code));
    }
    put("renewed", json!(certificate.renewed));
    if let Some(at) = certificate.renewed_date {
        put("renewedDate", date(at));
    }
    if let Some(leaf) = &certificate.leaf {
        put("serialNumber", json!(leaf.serial));
        put("signatureAlg", json!("SHA256WITHRSA"));
    }
    put("keyAlgorithm", json!(certificate.key_algorithm));
    put("keySize", json!(certificate.key_bits));
    put(
        "keyType",
        json!(format!(
            "{} - {}",
            certificate.key_algorithm, certificate.key_parameter
        )),
    );
    put("subjectAlternativeNames", json!(certificate.names()));
    put(
        "customFields",
        Value::Array(
            certificate
                .custom_fields
                .iter()
                .map(|field| json!({"name": field.name, "value": field.value}))
                .collect(),
        ),
    );
    let mut details = Map::new();
    details.insert("issuer".to_string(), json!(account.ca.issuer_subject));
    if let Some(leaf) = &certificate.leaf {
        details.insert("subject".to_string(), json!(leaf.subject));
        details.insert(
            "subjectAltNames".to_string(),
            json!(certificate
                .names()
                .iter()
                .map(|name| format!("dNSName={name}"))
                .collect::<Vec<_>>()
                .join(", ")),
        );
        details.insert("sha1Hash".to_string(), json!(leaf.sha1));
        details.insert("sha256Hash".to_string(), json!(leaf.sha256));
    }
    put("certificateDetails", Value::Object(details));
    put("autoInstallDetails", json!({"state": "Not configured"}));
    put("autoRenewDetails", json!({"state": "Not scheduled"}));
    put("suspendNotifications", json!(false));
    Value::Object(out)
}

/// D25's `requestedVia` filter names → the display strings of details.
fn requested_via_display(filter: &str) -> Option<&'static str> {
    Some(match filter.to_ascii_uppercase().as_str() {
        "WEB_FORM" => "Enrollment Form",
        "CLIENT_ADMIN" => "Client Admin",
        "API" => "Web API",
        "DISCOVERY" => "Discovery",
        "IMPORTED" => "Imported",
        "SCEP" => "SCEP",
        "CD_AGENT" => "CD Agent",
        "MS_AGENT" => "MS Agent",
        "MS_CA" => "MS CA",
        "BULK_REQUEST" => "Bulk Request",
        "ACME" => "ACME",
        "EST" => "EST",
        "REST" => "REST API",
        _ => return None,
    })
}

fn contains(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// `GET /api/ssl/v1` (page of summaries + `X-Total-Count`) and `HEAD` (count only).
pub(crate) fn list(
    account: &Account,
    user: &User,
    query: &Query,
    head: bool,
) -> Result<Reply, ApiError> {
    let number = |name: &str| -> Result<Option<usize>, ApiError> {
        match query.get(name) {
            None | Some("") => Ok(None),
            Some(text) => text
                .parse::<usize>()
                .map(Some)
                .map_err(|_| ApiError::invalid(name)),
        }
    };
    let position = number("position")?.unwrap_or(0);
    let size = number("size")?.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
    let status = match query.get("status").filter(|text| !text.is_empty()) {
        Some(text) => match Status::parse(text) {
            Some(status) => Some(status),
            // `Unmanaged` is deprecated: "result will be empty".
            None if text.eq_ignore_ascii_case("Unmanaged") => None,
            None => return Err(ApiError::invalid("status")),
        },
        None => None,
    };
    let unmanaged = query
        .get("status")
        .is_some_and(|text| text.eq_ignore_ascii_case("Unmanaged"));
    let requested_via = match query.get("requestedVia").filter(|text| !text.is_empty()) {
        Some(text) => {
            Some(requested_via_display(text).ok_or_else(|| ApiError::invalid("requestedVia"))?)
        }
        None => None,
    };
    let id_filter = |name: &str| -> Result<Option<u64>, ApiError> {
        match query.get(name).filter(|text| !text.is_empty()) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| ApiError::invalid(name)),
        }
    };
    let type_id = id_filter("sslTypeId")?;
    let org_id = id_filter("orgId")?;
    let text = |name: &str| query.get(name).filter(|text| !text.is_empty());
    let comments_filter = if account.quirks.list_comments_filter {
        text("comments")
    } else {
        None
    };
    let matches: Vec<&Certificate> = account
        .certificates
        .values()
        .filter(|_| user.role.manages_ssl() && !unmanaged)
        .filter(|c| status.is_none_or(|status| c.status == status))
        .filter(|c| type_id.is_none_or(|id| c.profile_id == id))
        .filter(|c| org_id.is_none_or(|id| c.org_id == id))
        .filter(|c| requested_via.is_none_or(|via| c.requested_via == via))
        .filter(|c| text("commonName").is_none_or(|name| contains(&c.common_name, name)))
        .filter(|c| {
            text("subjectAlternativeName")
                .is_none_or(|name| c.names().iter().any(|known| contains(known, name)))
        })
        .filter(|c| {
            text("serialNumber").is_none_or(|serial| {
                c.leaf
                    .as_ref()
                    .is_some_and(|leaf| same_serial(&leaf.serial, serial))
            })
        })
        .filter(|c| text("requester").is_none_or(|who| contains(&c.requester, who)))
        .filter(|c| {
            text("externalRequester").is_none_or(|who| contains(&c.external_requester, who))
        })
        .filter(|c| {
            text("keyAlgorithm").is_none_or(|alg| c.key_algorithm.eq_ignore_ascii_case(alg))
        })
        .filter(|c| {
            text("keyParam").is_none_or(|param| c.key_parameter.eq_ignore_ascii_case(param))
        })
        .filter(|c| {
            text("sha1Hash").is_none_or(|hash| {
                c.leaf
                    .as_ref()
                    .is_some_and(|leaf| leaf.sha1.eq_ignore_ascii_case(hash))
            })
        })
        .filter(|c| {
            text("sha256Hash").is_none_or(|hash| {
                c.leaf
                    .as_ref()
                    .is_some_and(|leaf| leaf.sha256.eq_ignore_ascii_case(hash))
            })
        })
        .filter(|c| {
            text("issuer").is_none_or(|issuer| {
                contains(&account.ca.issuer_subject, issuer) && c.leaf.is_some()
            })
        })
        .filter(|c| comments_filter.is_none_or(|needle| c.comments.contains(needle)))
        .collect();
    let total = vec![("X-Total-Count", matches.len().to_string())];
    if head {
        return Ok(Reply::Empty(200, total));
    }
    let full = account.quirks.list_item_fields == "full";
    let items: Vec<Value> = matches
        .iter()
        .skip(position)
        .take(size)
        .map(|certificate| {
            let mut item = json!({"sslId": certificate.id, "commonName": certificate.common_name});
            if full {
                item["subjectAlternativeNames"] = json!(certificate.names());
                if let Some(leaf) = &certificate.leaf {
                    item["serialNumber"] = json!(leaf.serial);
                }
            }
            item
        })
        .collect();
    Ok(Reply::Json(200, Value::Array(items), total))
}

pub(super) fn same_serial(known: &str, asked: &str) -> bool {
    let normalize = |text: &str| {
        text.chars()
            .filter(char::is_ascii_hexdigit)
            .collect::<String>()
            .trim_start_matches('0')
            .to_ascii_uppercase()
    };
    normalize(known) == normalize(asked)
}

// ---------------------------------------------------------------------------------------------
// Collect

/// `GET /api/ssl/v1/collect/{sslId}?format=` (and the `/collect/{sslId}/{format}` form).
pub(crate) fn collect(
    account: &Account,
    user: &User,
    id: &str,
    format: Option<&str>,
) -> Result<Reply, ApiError> {
    let certificate = visible(account, user, id)?;
    let format = format
        .filter(|format| !format.is_empty())
        .unwrap_or("base64");
    const FORMATS: [&str; 10] = [
        "x509", "x509CO", "base64", "bin", "x509IO", "x509IOR", "pem", "pemco", "pemia", "x509R",
    ];
    if !FORMATS.contains(&format) {
        return Err(ApiError::bad(
            -126,
            format!("Unknown SSL certificate file format requested: {format}"),
        ));
    }
    match certificate.status {
        Status::Issued | Status::Expired => {}
        Status::Revoked => {
            return Err(ApiError::bad(
                -110,
                "Certificate has been revoked and cannot be downloaded.",
            ))
        }
        _ => {
            let (code, text) = match account.quirks.not_collectable_code {
                -109 => (
                    -109,
                    "Certificate is not available now, please try again later.",
                ),
                -1400 => (-1400, "The request is being processed by Sectigo."),
                _ => (-183, "Certificate is not collectable."),
            };
            return Err(ApiError::new(
                account.quirks.not_collectable_status,
                code,
                text,
            ));
        }
    }
    let Some(leaf) = &certificate.leaf else {
        return Err(ApiError::bad(-183, "Certificate is not collectable."));
    };
    let ca = &account.ca;
    let leaf_der = leaf.der.as_slice();
    let issuer = ca.issuer_der.as_slice();
    let root = ca.root_der.as_slice();
    let chain: Vec<&[u8]> = match format {
        // D25's collect example lists the root first and the certificate last.
        "x509" | "pem" => vec![root, issuer, leaf_der],
        "x509R" => vec![leaf_der, issuer, root],
        "x509CO" | "pemco" => vec![leaf_der],
        "pemia" => vec![leaf_der, issuer],
        "x509IO" => vec![root, issuer],
        "x509IOR" => vec![issuer, root],
        _ => Vec::new(),
    };
    let file_stem = certificate.common_name.replace('*', "star");
    let crlf = account.quirks.pem_line_endings == "crlf";
    let encode = |tag: &str, der: &[u8]| {
        let mut text = pem::encode(&pem::Pem::new(tag, der.to_vec()));
        text = text.replace("\r\n", "\n");
        if crlf {
            text = text.replace('\n', "\r\n");
        }
        text
    };
    let (bytes, extension) = match format {
        "bin" => (pkcs7(&[leaf_der, issuer, root]), "p7b"),
        "base64" => (
            encode("PKCS7", &pkcs7(&[leaf_der, issuer, root])).into_bytes(),
            "p7b",
        ),
        _ => (
            chain
                .iter()
                .map(|der| encode("CERTIFICATE", der))
                .collect::<String>()
                .into_bytes(),
            "crt",
        ),
    };
    Ok(Reply::Bytes {
        content_type: "application/octet-stream;charset=UTF-8",
        file_name: format!("{file_stem}.{extension}"),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_and_emails() {
        assert!(is_dns_name("www.example.com"));
        assert!(is_dns_name("*.example.com"));
        assert!(!is_dns_name("example"));
        assert!(!is_dns_name("-a.example.com"));
        assert!(!is_dns_name("a..example.com"));
        assert!(!is_dns_name("a b.example.com"));
        assert!(is_email("a@example.com"));
        assert!(!is_email("a@b@example.com"));
        assert!(!is_email("example.com"));
    }

    #[test]
    fn serials_compare_without_separators_or_leading_zeros() {
        assert!(same_serial("0A:3E:C0", "a3ec0"));
        assert!(same_serial("A9:3E", "A93E"));
        assert!(!same_serial("A9:3E", "A93F"));
    }

    #[test]
    fn bodies_coerce_like_the_server() {
        let body = object(
            br#"{"orgId":"101","term":199,"comments":7,"subjAltNames":["a"]}"#,
            false,
        )
        .unwrap();
        assert_eq!(int_field(&body, "orgId").unwrap(), Some(101));
        assert_eq!(int_field(&body, "term").unwrap(), Some(199));
        assert_eq!(str_field(&body, "comments").unwrap().as_deref(), Some("7"));
        assert_eq!(str_field(&body, "subjAltNames").unwrap_err().code, -1002);
        assert!(object(b"", true).unwrap().is_empty());
        assert_eq!(object(b"", false).unwrap_err().code, -1002);
        assert_eq!(object(b"[1]", false).unwrap_err().code, -1002);
    }
}
