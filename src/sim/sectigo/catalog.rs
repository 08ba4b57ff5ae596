//! Account data under `/api`: certificate profiles (`/ssl/v1/types`), custom fields,
//! organizations, domains with their validation status, and domain DCV (list under
//! `/dcv/v1/validation`, status under `/dcv/v2/validation/status`, start/submit per method).

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::model::{iso_date, Account, ApiError, Domain, Reply, User};
use super::query::Query;
use super::seed::{DomainValidation, Privilege};
use super::ssl::{object, profile_json, require, str_field};

/// `GET /api/ssl/v1/types[?organizationId=N]`: profiles (none for non-SSL roles).
pub(crate) fn types(account: &Account, user: &User, query: &Query) -> Result<Reply, ApiError> {
    if let Some(org) = query.get("organizationId").filter(|text| !text.is_empty()) {
        let id = org
            .parse::<u64>()
            .map_err(|_| ApiError::invalid("organizationId"))?;
        if account.organization(id).is_none() {
            return Err(ApiError::bad(
                -1023,
                format!("Organization '{id}' not found."),
            ));
        }
    }
    let items: Vec<Value> = account
        .profiles
        .iter()
        .filter(|_| user.role.manages_ssl())
        .map(profile_json)
        .collect();
    Ok(Reply::ok(Value::Array(items)))
}

/// `GET /api/ssl/v1/customFields`: `[{id, name, mandatory}]`.
pub(crate) fn custom_fields(account: &Account) -> Reply {
    Reply::ok(Value::Array(
        account
            .custom_fields
            .iter()
            .map(|field| json!({"id": field.id, "name": field.name, "mandatory": field.mandatory}))
            .collect(),
    ))
}

fn organization_json(organization: &super::seed::OrganizationSeed) -> Value {
    json!({
        "id": organization.id,
        "name": organization.name,
        "departments": organization.departments.iter().map(|department| json!({
            "id": department.id,
            "name": department.name,
            "parentName": organization.name,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /api/organization/v1`.
pub(crate) fn organizations(account: &Account) -> Reply {
    Reply::ok(Value::Array(
        account
            .organizations
            .iter()
            .map(organization_json)
            .collect(),
    ))
}

/// `GET /api/organization/v1/{id}` (an organization or a department).
pub(crate) fn organization(account: &Account, id: &str) -> Result<Reply, ApiError> {
    let not_found = || ApiError::new(404, -1023, format!("Organization '{id}' not found."));
    let parsed = id.parse::<u64>().map_err(|_| not_found())?;
    match account.organization(parsed) {
        Some((organization, None)) => Ok(Reply::ok(organization_json(organization))),
        Some((organization, Some(name))) => Ok(Reply::ok(json!({
            "id": parsed,
            "name": name,
            "parentName": organization.name,
            "departments": [],
        }))),
        None => Err(not_found()),
    }
}

fn validation_status(account: &Account, domain: &Domain) -> &'static str {
    let upper = account.quirks.domain_status_style == "upper";
    match (domain.seed.validation, domain.validated_at.is_some(), upper) {
        (DomainValidation::Expired, false, true) => "EXPIRED",
        (DomainValidation::Expired, false, false) => "Expired",
        (_, true, true) => "VALIDATED",
        (_, true, false) => "Validated",
        (_, false, true) => "NOT_VALIDATED",
        (_, false, false) => "Not validated",
    }
}

fn page(query: &Query) -> Result<(usize, usize), ApiError> {
    let number = |name: &str, default: usize| -> Result<usize, ApiError> {
        match query.get(name) {
            None | Some("") => Ok(default),
            Some(text) => text.parse().map_err(|_| ApiError::invalid(name)),
        }
    };
    Ok((number("position", 0)?, number("size", 200)?.min(200)))
}

/// `GET /api/domain/v1`: `[{id, name}]` and `X-Total-Count`.
pub(crate) fn domains(account: &Account, query: &Query) -> Result<Reply, ApiError> {
    let (position, size) = page(query)?;
    let name = query.get("name").filter(|text| !text.is_empty());
    let org_id = match query.get("orgId").filter(|text| !text.is_empty()) {
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| ApiError::invalid("orgId"))?,
        ),
        None => None,
    };
    let matching: Vec<&Domain> = account
        .domains
        .iter()
        .filter(|domain| name.is_none_or(|name| domain.seed.name.contains(name)))
        .filter(|domain| {
            org_id.is_none_or(|id| {
                domain.seed.org_ids.is_empty() || domain.seed.org_ids.contains(&id)
            })
        })
        .collect();
    let total = matching.len();
    let items: Vec<Value> = matching
        .into_iter()
        .skip(position)
        .take(size)
        .map(|domain| json!({"id": domain.seed.id, "name": domain.seed.name}))
        .collect();
    Ok(Reply::Json(
        200,
        Value::Array(items),
        vec![("X-Total-Count", total.to_string())],
    ))
}

/// `GET /api/domain/v1/{id}`.
pub(crate) fn domain(account: &Account, id: &str) -> Result<Reply, ApiError> {
    let not_found = || ApiError::new(404, -727, format!("The domain '{id}' does not exist."));
    let parsed = id.parse::<u64>().map_err(|_| not_found())?;
    let domain = account
        .domains
        .iter()
        .find(|domain| domain.seed.id == parsed)
        .ok_or_else(not_found)?;
    let org_ids: Vec<u64> = if domain.seed.org_ids.is_empty() {
        account.organizations.iter().map(|org| org.id).collect()
    } else {
        domain.seed.org_ids.clone()
    };
    let mut out = json!({
        "id": domain.seed.id,
        "name": domain.seed.name,
        "delegationStatus": "ACTIVE",
        "state": "ACTIVE",
        "validationStatus": validation_status(account, domain),
        "validationMethod": domain.seed.validation_method,
        "delegations": org_ids.iter().map(|org| json!({
            "orgId": org,
            "certTypes": ["SSL"],
            "domainCertificateRequestPrivileges": ["SUBDOMAIN", "DOMAIN"],
            "status": "ACTIVE",
        })).collect::<Vec<_>>(),
    });
    if let Some(at) = domain.validated_at {
        out["dcvValidation"] = json!(iso_date(at));
        out["dcvExpiration"] = json!(iso_date(at + Duration::days(397)));
    }
    Ok(Reply::ok(out))
}

/// Mark a domain validated (admin endpoint, or a submitted DCV order).
pub(crate) fn validate_domain(account: &mut Account, name: &str, now: OffsetDateTime) -> bool {
    let Some(domain) = account
        .domains
        .iter_mut()
        .find(|domain| domain.seed.name.eq_ignore_ascii_case(name))
    else {
        return false;
    };
    domain.validated_at = Some(now);
    domain.seed.validation = DomainValidation::Validated;
    account.tick(now);
    true
}

/// DCV API values are UPPER_SNAKE (D25; HM's tests).
fn dcv_status(domain: &Domain) -> &'static str {
    match (domain.seed.validation, domain.validated_at.is_some()) {
        (_, true) => "VALIDATED",
        (DomainValidation::Expired, false) => "EXPIRED",
        _ => "NOT_VALIDATED",
    }
}

/// `GET /api/dcv/v1/validation`: `[{domain, dcvStatus, dcvOrderStatus, dcvMethod,
/// expirationDate}]` and `X-Total-Count`.
pub(crate) fn dcv_list(account: &Account, query: &Query) -> Result<Reply, ApiError> {
    let (position, size) = page(query)?;
    let name = query.get("domain").filter(|text| !text.is_empty());
    let matching: Vec<&Domain> = account
        .domains
        .iter()
        .filter(|domain| name.is_none_or(|name| domain.seed.name.contains(name)))
        .collect();
    let total = matching.len();
    let items: Vec<Value> = matching
        .into_iter()
        .skip(position)
        .take(size)
        .map(|domain| {
            let mut item = json!({
                "domain": domain.seed.name,
                "dcvStatus": dcv_status(domain),
                "dcvOrderStatus": if domain.validated_at.is_some() { "NOT_INITIATED" } else { "SUBMITTED" },
                "dcvMethod": domain.seed.validation_method,
            });
            if let Some(at) = domain.validated_at {
                item["expirationDate"] = json!(iso_date(at + Duration::days(397)));
            }
            item
        })
        .collect();
    Ok(Reply::Json(
        200,
        Value::Array(items),
        vec![("X-Total-Count", total.to_string())],
    ))
}

fn domain_from_body<'a>(account: &'a Account, body: &[u8]) -> Result<&'a Domain, ApiError> {
    let body = object(body, false)?;
    let name = str_field(&body, "domain")?.ok_or_else(|| ApiError::missing("domain"))?;
    account
        .domains
        .iter()
        .find(|domain| domain.seed.name.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| ApiError::bad(-727, format!("The domain '{name}' does not exist.")))
}

/// `POST /api/dcv/v2/validation/status` `{domain}`.
pub(crate) fn dcv_domain_status(account: &Account, body: &[u8]) -> Result<Reply, ApiError> {
    let domain = domain_from_body(account, body)?;
    let mut out = json!({
        "status": dcv_status(domain),
        "orderStatus": if domain.validated_at.is_some() { "NOT_INITIATED" } else { "SUBMITTED" },
        "orderMode": domain.seed.validation_method,
    });
    if let Some(at) = domain.validated_at {
        out["validationDate"] = json!(iso_date(at));
        out["expirationDate"] = json!(iso_date(at + Duration::days(397)));
    }
    Ok(Reply::ok(out))
}

/// `POST /api/dcv/v1/validation/{start|submit}/domain/{method}` `{domain}`: the sim records
/// the order; `/_sim/domains/{name}/validate` completes it. TXT has no start (D25).
pub(crate) fn dcv_submit(
    account: &mut Account,
    user: &User,
    action: &str,
    method: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    require(account, user, Privilege::AllowDcv, "DCV validation")?;
    let method = method.to_ascii_lowercase();
    if !matches!(
        method.as_str(),
        "cname" | "http" | "https" | "email" | "txt"
    ) {
        return Err(ApiError::invalid("method"));
    }
    let name = domain_from_body(account, body)?.seed.name.clone();
    if action == "start" && method == "txt" {
        return Err(ApiError::bad(
            -1,
            "Start request is not supported by the API. Use submit directly.",
        ));
    }
    let token = hex::encode(account.rng.bytes::<16>());
    if action == "start" {
        return Ok(Reply::ok(json!({
            "host": format!("_{token}.{name}."),
            "point": format!("{token}.sectigo.com."),
        })));
    }
    let mut out = json!({
        "status": "NOT_VALIDATED",
        "orderStatus": "SUBMITTED",
        "message": "Submitted successfully",
    });
    if method == "txt" {
        // D25: create the TXT record `host` with the value `point`.
        out["host"] = json!(format!("_pki-validation.{name}."));
        out["point"] = json!(token);
    }
    Ok(Reply::ok(out))
}
