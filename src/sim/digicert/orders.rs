//! Order endpoints: place, view, list, find by alternative id, status changes, reissue, revoke,
//! cancel, and certificate downloads.

use serde::Deserialize;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime, Time};

use super::ca::parse_csr;
use super::formats;
use super::model::{
    end_of_day, is_dns_name, normalize_name, parse_date, Account, ApiError, CertParams,
    Certificate, Key, Order, OrderStatus, Reply, Request, RequestKind, RequestStatus, Validity,
};
use super::query::{self, Condition, Query};
use super::render;
use super::seed::{DomainNameKey, ProductSeed, SkipApproval};

/// Most orders one list page returns.
pub(crate) const MAX_PAGE: u64 = 1000;

/// Revocation reasons the reference names (only `superseded` is confirmed).
const REVOCATION_REASONS: [&str; 5] = [
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
];

#[derive(Debug, Default, Deserialize)]
pub(crate) struct IdRef {
    pub(crate) id: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PlatformRef {
    pub(crate) id: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ValidityBody {
    pub(crate) years: Option<u32>,
    pub(crate) days: Option<u32>,
    pub(crate) custom_expiration_date: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CertificateBody {
    pub(crate) common_name: Option<String>,
    pub(crate) dns_names: Option<Vec<String>>,
    pub(crate) csr: Option<String>,
    pub(crate) signature_hash: Option<String>,
    pub(crate) server_platform: Option<PlatformRef>,
    pub(crate) organization_units: Option<Vec<String>>,
    pub(crate) profile_option: Option<String>,
    pub(crate) ca_cert_id: Option<String>,
    pub(crate) cert_validity: Option<ValidityBody>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CustomField {
    pub(crate) metadata_id: u64,
    pub(crate) value: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ProductHint {
    pub(crate) type_hint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OrderBody {
    pub(crate) certificate: Option<CertificateBody>,
    pub(crate) organization: Option<IdRef>,
    pub(crate) validity_years: Option<u32>,
    pub(crate) validity_days: Option<u32>,
    pub(crate) custom_expiration_date: Option<String>,
    pub(crate) order_validity: Option<ValidityBody>,
    pub(crate) comments: Option<String>,
    pub(crate) disable_renewal_notifications: Option<bool>,
    pub(crate) renewal_of_order_id: Option<u64>,
    pub(crate) payment_method: Option<String>,
    pub(crate) dcv_method: Option<String>,
    pub(crate) skip_approval: Option<bool>,
    pub(crate) disable_ct: Option<Value>,
    pub(crate) container: Option<IdRef>,
    pub(crate) custom_fields: Option<Vec<CustomField>>,
    pub(crate) alternative_order_id: Option<String>,
    pub(crate) product: Option<ProductHint>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReissueBody {
    pub(crate) certificate: Option<CertificateBody>,
    pub(crate) skip_approval: Option<bool>,
    pub(crate) comments: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RevokeBody {
    pub(crate) comments: Option<String>,
    pub(crate) comment: Option<String>,
    pub(crate) skip_approval: Option<bool>,
    pub(crate) revocation_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StatusBody {
    pub(crate) status: Option<String>,
    pub(crate) note: Option<String>,
    #[serde(rename = "send_emails")]
    pub(crate) _send_emails: Option<bool>,
}

/// Whether a `skip_approval: true` from `key` takes effect (or is refused by the quirk).
fn skip_approval(account: &Account, key: &Key, asked: Option<bool>) -> Result<bool, ApiError> {
    let asked = asked.unwrap_or(false);
    if asked && !key.is_admin() {
        if account.settings.quirks.skip_approval_without_admin == SkipApproval::Forbid {
            return Err(ApiError::forbidden());
        }
        return Ok(false);
    }
    Ok(asked)
}

/// The product of `POST /order/certificate/{product}`.
fn order_product(
    account: &Account,
    name_id: &str,
    body: &OrderBody,
) -> Result<ProductSeed, ApiError> {
    if name_id == "ssl" {
        let hint = body
            .product
            .as_ref()
            .and_then(|product| product.type_hint.as_deref())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let candidates: Vec<&ProductSeed> = account
            .products
            .iter()
            .filter(|product| !hint.is_empty() && product.validation_type.as_str() == hint)
            .collect();
        return match candidates.as_slice() {
            [only] => Ok((*only).clone()),
            _ => Err(ApiError::bad_request(
                "ambiguous_product",
                "The product.type_hint value could not be used to determine a product.",
            )),
        };
    }
    account.product(name_id).cloned().ok_or_else(|| {
        ApiError::new(
            404,
            "not_found|product",
            "The specified product was not found.",
        )
    })
}

/// Build the certificate parameters from a request, defaulting to `base` (reissues).
fn certificate_params(
    account: &Account,
    product: &ProductSeed,
    base: Option<&CertParams>,
    body: &CertificateBody,
) -> Result<CertParams, ApiError> {
    let common_name = match (&body.common_name, base) {
        (Some(name), _) => normalize_name(name),
        (None, Some(base)) => base.common_name.clone(),
        (None, None) => return Err(ApiError::missing("certificate.common_name")),
    };
    if !is_dns_name(&common_name) {
        return Err(ApiError::bad_request(
            "invalid_dns_name",
            format!("`{common_name}` is not a valid domain name."),
        ));
    }
    let requested: Vec<String> = match (&body.dns_names, base) {
        (Some(names), _) => names.iter().map(|name| normalize_name(name)).collect(),
        (None, Some(base)) => base.dns_names.clone(),
        (None, None) => Vec::new(),
    };
    let mut dns_names = vec![common_name.clone()];
    for name in requested {
        if !is_dns_name(&name) {
            return Err(ApiError::bad_request(
                "invalid_dns_name",
                format!("`{name}` is not a valid domain name."),
            ));
        }
        if !dns_names.contains(&name) {
            dns_names.push(name);
        }
    }
    if !product.additional_dns_names_allowed {
        let bare = common_name.strip_prefix("www.").unwrap_or(&common_name);
        let free = [bare.to_string(), format!("www.{bare}")];
        if let Some(extra) = dns_names.iter().find(|name| !free.contains(name)) {
            return Err(ApiError::invalid(
                "certificate.dns_names",
                format!(
                    "Product `{}` does not allow additional DNS names such as `{extra}`.",
                    product.name_id
                ),
            ));
        }
    }
    if dns_names.len() > 250 {
        return Err(ApiError::invalid(
            "certificate.dns_names",
            "A certificate can have at most 250 names.",
        ));
    }
    let (csr_text, csr) = match (&body.csr, base) {
        (Some(text), _) => {
            let csr = parse_csr(text)
                .map_err(|problem| ApiError::bad_request(problem.code, problem.message))?;
            (text.clone(), csr)
        }
        (None, Some(base)) => (base.csr_text.clone(), base.csr.clone()),
        (None, None) => return Err(ApiError::missing("certificate.csr")),
    };
    let signature_hash = match (&body.signature_hash, base) {
        (Some(hash), _) => hash.to_ascii_lowercase(),
        (None, Some(base)) => base.signature_hash.clone(),
        (None, None) => product.default_signature_hash.clone(),
    };
    if !product.signature_hashes.contains(&signature_hash) {
        return Err(ApiError::invalid(
            "certificate.signature_hash",
            format!(
                "Signature hash `{signature_hash}` is not allowed for product `{}` (allowed: {}).",
                product.name_id,
                product.signature_hashes.join(", ")
            ),
        ));
    }
    let server_platform_id = match (body.server_platform.as_ref().and_then(|p| p.id), base) {
        (Some(id), _) => id,
        (None, Some(base)) => base.server_platform_id,
        (None, None) => -1,
    };
    if server_platform_id != -1
        && !product
            .server_platforms
            .iter()
            .any(|platform| platform.id == server_platform_id)
    {
        return Err(ApiError::invalid(
            "certificate.server_platform.id",
            format!("Server platform {server_platform_id} is not offered for this product."),
        ));
    }
    let ca_cert_id = match (&body.ca_cert_id, base) {
        (Some(id), _) => Some(id.clone()),
        (None, Some(base)) => base.ca_cert_id.clone(),
        (None, None) => None,
    };
    if let Some(id) = &ca_cert_id {
        if account.ca.intermediate(&signature_hash, Some(id)).is_none() {
            return Err(ApiError::invalid(
                "certificate.ca_cert_id",
                format!("`{id}` is not an issuing CA of this account."),
            ));
        }
    }
    Ok(CertParams {
        common_name,
        dns_names,
        csr_text,
        csr,
        signature_hash,
        server_platform_id,
        organization_units: body
            .organization_units
            .clone()
            .or_else(|| base.map(|base| base.organization_units.clone()))
            .unwrap_or_default(),
        profile_option: body
            .profile_option
            .clone()
            .or_else(|| base.and_then(|base| base.profile_option.clone())),
        ca_cert_id,
    })
}

/// One of years / days / custom date, checked.
fn one_validity(
    product: &ProductSeed,
    account: &Account,
    field: &str,
    years: Option<u32>,
    days: Option<u32>,
    custom: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<Validity>, ApiError> {
    let max_years = account.settings.policy.max_order_validity_years.max(1);
    let given = [years.is_some(), days.is_some(), custom.is_some()]
        .iter()
        .filter(|given| **given)
        .count();
    if given > 1 {
        return Err(ApiError::invalid(
            field,
            "Give only one of years, days and custom_expiration_date.",
        ));
    }
    if let Some(years) = years {
        if !product.allowed_validity_years.contains(&years) || years > max_years {
            return Err(ApiError::invalid(
                field,
                format!(
                    "{years} years is not an allowed validity for product `{}`.",
                    product.name_id
                ),
            ));
        }
        return Ok(Some(Validity::Years(years)));
    }
    if let Some(days) = days {
        if days == 0 || days > 366 * max_years {
            return Err(ApiError::invalid(
                field,
                format!("{days} days is not an allowed validity."),
            ));
        }
        return Ok(Some(Validity::Days(days)));
    }
    if let Some(text) = custom {
        if !product.custom_expiration_date_allowed {
            return Err(ApiError::invalid(
                field,
                format!(
                    "Product `{}` does not allow a custom expiration date.",
                    product.name_id
                ),
            ));
        }
        let day = parse_date(text).ok_or_else(|| {
            ApiError::invalid(field, format!("`{text}` is not a YYYY-MM-DD date."))
        })?;
        let today = now.date();
        if day <= today || day > (now + Duration::days(366 * i64::from(max_years))).date() {
            return Err(ApiError::invalid(
                field,
                format!("`{text}` is not an allowed expiration date."),
            ));
        }
        return Ok(Some(Validity::Custom(day)));
    }
    Ok(None)
}

/// The end of a validity that starts `now`.
fn validity_end(validity: &Validity, now: OffsetDateTime) -> OffsetDateTime {
    let start = now.replace_time(Time::MIDNIGHT);
    match validity {
        Validity::Years(years) => {
            end_of_day(start + Duration::days(365 * i64::from(*years)) - Duration::days(1))
        }
        Validity::Days(days) => {
            end_of_day(start + Duration::days(i64::from(*days)) - Duration::days(1))
        }
        Validity::Custom(day) => end_of_day(day.with_time(Time::MIDNIGHT).assume_utc()),
    }
}

/// `POST /order/certificate/{product_name_id}`.
pub(crate) fn create(
    account: &mut Account,
    key: &Key,
    product_id: &str,
    bytes: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let body: OrderBody = query::body(bytes)?;
    let product = order_product(account, product_id, &body)?;
    let skip = skip_approval(account, key, body.skip_approval)?;
    let certificate = body
        .certificate
        .as_ref()
        .ok_or_else(|| ApiError::missing("certificate"))?;
    let params = certificate_params(account, &product, None, certificate)?;

    let organization_id = body.organization.as_ref().and_then(|o| o.id);
    match organization_id {
        None if product.validation_type.needs_organization() => {
            return Err(ApiError::missing("organization.id"))
        }
        Some(id) if !account.organizations.contains_key(&id) => {
            return Err(ApiError::invalid(
                "organization.id",
                format!("Organization {id} does not exist in this account."),
            ))
        }
        _ => {}
    }

    let order_validity = match &body.order_validity {
        Some(v) => one_validity(
            &product,
            account,
            "order_validity",
            v.years,
            v.days,
            v.custom_expiration_date.as_deref(),
            now,
        )?,
        None => one_validity(
            &product,
            account,
            "validity_years",
            body.validity_years,
            body.validity_days,
            body.custom_expiration_date.as_deref(),
            now,
        )?,
    };
    let cert_validity = match &certificate.cert_validity {
        Some(v) => one_validity(
            &product,
            account,
            "certificate.cert_validity",
            v.years,
            v.days,
            v.custom_expiration_date.as_deref(),
            now,
        )?,
        None => None,
    };
    let (order_validity, cert_validity) = match (order_validity, cert_validity) {
        (Some(order), Some(cert)) => (order, cert),
        (Some(order), None) => (order.clone(), order),
        (None, Some(cert)) => (cert.clone(), cert),
        (None, None) => return Err(ApiError::missing("validity_years")),
    };
    let order_valid_till = validity_end(&order_validity, now);
    if validity_end(&cert_validity, now) > order_valid_till {
        return Err(ApiError::bad_request(
            "cert_validity_exceeds_order_validity",
            "The validity period of the certificate cannot exceed the validity period of the order.",
        ));
    }

    let payment_method = body
        .payment_method
        .clone()
        .unwrap_or_else(|| "balance".into());
    if !matches!(payment_method.as_str(), "balance" | "card" | "profile") {
        return Err(ApiError::invalid(
            "payment_method",
            format!("`{payment_method}` is not a payment method (balance, card, profile)."),
        ));
    }
    let dcv_method = body
        .dcv_method
        .clone()
        .unwrap_or_else(|| account.settings.dcv.default_method.clone());
    if !account.settings.dcv.methods.contains(&dcv_method) {
        return Err(ApiError::bad_request(
            "invalid_dcv_method",
            format!("`{dcv_method}` is not a DCV method this account accepts."),
        ));
    }
    if let Some(old) = body.renewal_of_order_id {
        if !account.orders.contains_key(&old) {
            return Err(ApiError::invalid(
                "renewal_of_order_id",
                format!("Order {old} does not exist in this account."),
            ));
        }
    }
    if let Some(alternative) = &body.alternative_order_id {
        if alternative.trim().is_empty() || alternative.len() > 64 {
            return Err(ApiError::invalid(
                "alternative_order_id",
                "The alternative order id must be 1 to 64 characters.",
            ));
        }
    }
    let container_id = account.settings.account.container_id;
    if let Some(id) = body.container.as_ref().and_then(|c| c.id) {
        if id != container_id {
            return Err(ApiError::invalid(
                "container.id",
                format!("Container {id} does not exist in this account."),
            ));
        }
    }
    let disable_ct = match &body.disable_ct {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(number)) => number.as_u64() == Some(1),
        _ => false,
    };

    let order_id = account.next_order_id();
    let certificate_id = account.next_certificate_id();
    let request_id = account.next_request_id();
    let token_method = dcv_method != "email";
    let dcv_random_value = token_method.then(|| account.rng.alphanumeric(32));
    let needs_approval = account.settings.account.require_approval && !skip;
    let years = match order_validity {
        Validity::Years(years) => Some(years),
        _ => None,
    };
    let price = product.price * f64::from(years.unwrap_or(1));
    let order = Order {
        id: order_id,
        product: product.name_id.clone(),
        status: if needs_approval {
            OrderStatus::NeedsApproval
        } else {
            OrderStatus::Pending
        },
        status_last_updated: now,
        date_created: now,
        user_id: key.user_id,
        params: params.clone(),
        reissue: None,
        awaiting_approval: needs_approval,
        organization_id,
        cert_validity,
        order_valid_from: now,
        order_valid_till,
        validity_years: years,
        payment_method,
        disable_renewal_notifications: body.disable_renewal_notifications.unwrap_or(false),
        disable_ct,
        container_id,
        custom_fields: body
            .custom_fields
            .iter()
            .flatten()
            .map(|field| (field.metadata_id, field.value.clone()))
            .collect(),
        alternative_order_id: body.alternative_order_id.clone(),
        renewal_of_order_id: body.renewal_of_order_id,
        renewed_order_id: None,
        dcv_method: dcv_method.clone(),
        dcv_random_value: dcv_random_value.clone(),
        certificate_id,
        certificate_ids: vec![certificate_id],
        request_ids: vec![request_id],
        issue_at: None,
        price,
    };
    account.count_new_order(&order);
    account.certificates.insert(
        certificate_id,
        Certificate {
            id: certificate_id,
            order_id,
            params,
            date_created: now,
            issued: None,
            revoked: None,
        },
    );
    account.requests.insert(
        request_id,
        Request {
            id: request_id,
            kind: RequestKind::NewRequest,
            status: RequestStatus::Pending,
            order_id,
            certificate_id: None,
            requester_id: key.user_id,
            date: now,
            comments: body.comments.clone().unwrap_or_default(),
            revocation_reason: None,
            processor_id: None,
            processor_comment: String::new(),
            date_processed: None,
        },
    );
    account.orders.insert(order_id, order);
    if let Some(old) = body
        .renewal_of_order_id
        .and_then(|old| account.orders.get_mut(&old))
    {
        old.renewed_order_id = Some(order_id);
    }
    // Names no validated domain covers get a pending domain record (with the token) at once,
    // even while the order waits for approval.
    let missing = account
        .orders
        .get(&order_id)
        .map(|order| account.unvalidated_names(order, now))
        .unwrap_or_default();
    for name in &missing {
        account.ensure_domain(name, order_id, now);
    }
    let issued = account.progress(order_id, now)?;

    let mut out = serde_json::Map::new();
    out.insert("id".into(), json!(order_id));
    let request_status = account
        .requests
        .get(&request_id)
        .map_or("pending", |request| request.status.as_str());
    out.insert(
        "requests".into(),
        json!([{"id": request_id, "status": request_status}]),
    );
    out.insert("certificate_id".into(), json!(certificate_id));
    if issued {
        if let Some(certificate) = account.certificates.get(&certificate_id) {
            out.insert(
                "certificate_chain".into(),
                render::certificate_chain(account, certificate),
            );
        }
    } else if let (Some(value), Some(order)) = (&dcv_random_value, account.orders.get(&order_id)) {
        out.insert("dcv_random_value".into(), json!(value));
        out.insert("domains".into(), pending_domains(account, order, now));
    }
    Ok(Reply::Json(201, Value::Object(out)))
}

/// `domains[]` of a create response: the domains still waiting for DCV.
fn pending_domains(account: &Account, order: &Order, now: OffsetDateTime) -> Value {
    let mut seen = Vec::new();
    let mut entries = Vec::new();
    for name in account.unvalidated_names(order, now) {
        let base = Account::dcv_domain_name(&name);
        let Some(domain) = account.domains.values().find(|d| d.name == base) else {
            continue;
        };
        if seen.contains(&domain.id) {
            continue;
        }
        seen.push(domain.id);
        let mut entry = serde_json::Map::new();
        entry.insert("id".into(), json!(domain.id));
        match account.settings.quirks.order_domain_name_key {
            DomainNameKey::DnsName => {
                entry.insert("dns_name".into(), json!(domain.name));
            }
            DomainNameKey::Name => {
                entry.insert("name".into(), json!(domain.name));
            }
            DomainNameKey::Both => {
                entry.insert("dns_name".into(), json!(domain.name));
                entry.insert("name".into(), json!(domain.name));
            }
        }
        entry.insert(
            "dcv_token".into(),
            json!({
                "token": domain.token,
                "status": "pending",
                "expiration_date": super::model::iso(domain.token_expires),
            }),
        );
        entries.push(Value::Object(entry));
    }
    json!(entries)
}

/// An order by id, or by the serial number or thumbprint of its primary certificate.
pub(crate) fn find_order(account: &Account, text: &str) -> Option<u64> {
    if let Ok(id) = text.parse::<u64>() {
        if account.orders.contains_key(&id) {
            return Some(id);
        }
    }
    account.orders.values().find_map(|order| {
        let issued = account
            .certificates
            .get(&order.certificate_id)?
            .issued
            .as_ref()?;
        (issued.serial.eq_ignore_ascii_case(text) || issued.thumbprint.eq_ignore_ascii_case(text))
            .then_some(order.id)
    })
}

/// `GET /order/certificate/{order_id}` (`include_caa_status=true` adds the CAA result of every
/// name while the order is pending; the simulator's CAA check always passes).
pub(crate) fn info(
    account: &Account,
    id: &str,
    query: &Query,
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let order_id = find_order(account, id).ok_or_else(ApiError::order_not_found)?;
    let order = account
        .orders
        .get(&order_id)
        .ok_or_else(ApiError::order_not_found)?;
    let mut detail = render::order_detail(account, order, now);
    let pending = matches!(
        order.status,
        OrderStatus::Pending | OrderStatus::ReissuePending | OrderStatus::NeedsApproval
    );
    if pending && query.flag("include_caa_status") {
        let messages: serde_json::Map<String, Value> = order
            .target()
            .dns_names
            .iter()
            .map(|name| (name.clone(), json!("CAA check passed.")))
            .collect();
        if let Some(map) = detail.as_object_mut() {
            map.insert("caa_status_message".into(), Value::Object(messages));
        }
    }
    Ok(Reply::Json(200, detail))
}

fn order_matches(
    account: &Account,
    order: &Order,
    prop: &str,
    condition: &Condition,
) -> Result<bool, ApiError> {
    let issued = account
        .certificates
        .get(&order.certificate_id)
        .and_then(|certificate| certificate.issued.as_ref());
    let flag = |value: bool| match condition {
        Condition::Equals(text) => match text.to_ascii_lowercase().as_str() {
            "1" | "true" => value,
            "0" | "false" => !value,
            _ => false,
        },
        _ => false,
    };
    let params = &order.params;
    Ok(match prop {
        "id" => condition.number(i128::from(order.id)),
        "status" => match condition {
            Condition::Equals(wanted) => wanted
                .split(',')
                .any(|one| render::status_matches(order.status, one.trim())),
            other => other.text(order.status.as_str()),
        },
        "organization_id" => order
            .organization_id
            .is_some_and(|id| condition.number(i128::from(id))),
        "product_name_id" => condition.text(&order.product),
        "valid_till" => issued.is_some_and(|issued| condition.instant(issued.not_after)),
        "user_id" => condition.number(i128::from(order.user_id)),
        "common_name" => condition.text(&params.common_name),
        "domain_name" => params.dns_names.iter().any(|name| condition.text(name)),
        "date_created" => condition.instant(order.date_created),
        "status_last_updated" => condition.instant(order.status_last_updated),
        "container_id" => condition.number(i128::from(order.container_id)),
        "metadata_id" => order
            .custom_fields
            .iter()
            .any(|(id, _)| condition.number(i128::from(*id))),
        "is_renewed" => flag(order.renewed_order_id.is_some()),
        "disable_renewal_notifications" => flag(order.disable_renewal_notifications),
        "email" => account
            .users
            .get(&order.user_id)
            .is_some_and(|user| condition.text(&user.email)),
        "certificate_id" => order
            .certificate_ids
            .iter()
            .any(|id| condition.number(i128::from(*id))),
        "origin" => condition.text("certcentral"),
        "serial_number" => issued.is_some_and(|issued| condition.text(&issued.serial)),
        "search" => {
            condition.text(&order.id.to_string())
                || params.dns_names.iter().any(|name| condition.text(name))
                || issued.is_some_and(|issued| condition.text(&issued.serial))
        }
        other => {
            return Err(ApiError::bad_request(
                format!("invalid_filter|{other}"),
                format!("`{other}` is not a filterable property."),
            ))
        }
    })
}

fn sort_orders(
    account: &Account,
    orders: &mut [&Order],
    sort: Option<&str>,
) -> Result<(), ApiError> {
    let Some(sort) = sort.filter(|s| !s.trim().is_empty()) else {
        return Ok(());
    };
    let keys: Vec<(String, bool)> = sort
        .split(',')
        .map(|key| {
            let key = key.trim();
            match key.strip_prefix('-') {
                Some(rest) => (rest.to_string(), true),
                None => (key.trim_start_matches('+').to_string(), false),
            }
        })
        .collect();
    const SORTABLE: [&str; 8] = [
        "id",
        "date_created",
        "valid_till",
        "common_name",
        "status",
        "product_name_id",
        "organization_id",
        "status_last_updated",
    ];
    if let Some((bad, _)) = keys
        .iter()
        .find(|(key, _)| !SORTABLE.contains(&key.as_str()))
    {
        return Err(ApiError::invalid(
            "sort",
            format!("Orders cannot be sorted by `{bad}`."),
        ));
    }
    let valid_till = |order: &Order| {
        account
            .certificates
            .get(&order.certificate_id)
            .and_then(|certificate| certificate.issued.as_ref())
            .map(|issued| issued.not_after)
    };
    orders.sort_by(|a, b| {
        for (key, descending) in &keys {
            let ordering = match key.as_str() {
                "id" => a.id.cmp(&b.id),
                "date_created" => a.date_created.cmp(&b.date_created),
                "valid_till" => valid_till(a).cmp(&valid_till(b)),
                "common_name" => a.params.common_name.cmp(&b.params.common_name),
                "status" => a.status.as_str().cmp(b.status.as_str()),
                "product_name_id" => a.product.cmp(&b.product),
                "organization_id" => a.organization_id.cmp(&b.organization_id),
                _ => a.status_last_updated.cmp(&b.status_last_updated),
            };
            let ordering = if *descending {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering.is_ne() {
                return ordering;
            }
        }
        a.id.cmp(&b.id)
    });
    Ok(())
}

/// Paging parameters: `(offset, limit)`, limit capped at 1000.
pub(crate) fn paging(query: &Query) -> Result<(u64, u64), ApiError> {
    let offset = query.number("offset")?.unwrap_or(0);
    let limit = match query.number("limit")? {
        None | Some(0) => MAX_PAGE,
        Some(limit) => limit.min(MAX_PAGE),
    };
    Ok((offset, limit))
}

/// `GET /order/certificate` (JSON, or CSV when the client accepts `text/csv`).
pub(crate) fn list(
    account: &Account,
    query: &Query,
    csv: bool,
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let conditions: Vec<(String, Condition)> = query
        .filters()
        .into_iter()
        .map(|(prop, value)| (prop, Condition::parse(&value)))
        .collect();
    let mut matching = Vec::new();
    for order in account.orders.values() {
        let mut keep = true;
        for (prop, condition) in &conditions {
            if !order_matches(account, order, prop, condition)? {
                keep = false;
                break;
            }
        }
        if keep {
            matching.push(order);
        }
    }
    sort_orders(account, &mut matching, query.get("sort"))?;
    let (offset, limit) = paging(query)?;
    let total = matching.len() as u64;
    let page = matching
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit as usize);
    if csv {
        let mut text = String::from(
            "order_id,certificate_id,common_name,dns_names,status,product_name_id,valid_till,date_created\r\n",
        );
        for order in page {
            let valid_till = account
                .certificates
                .get(&order.certificate_id)
                .and_then(|certificate| certificate.issued.as_ref())
                .map(|issued| super::model::date(issued.not_after))
                .unwrap_or_default();
            text.push_str(&format!(
                "{},{},{},\"{}\",{},{},{},{}\r\n",
                order.id,
                order.certificate_id,
                order.params.common_name,
                order.params.dns_names.join(","),
                order.status,
                order.product,
                valid_till,
                super::model::iso(order.date_created)
            ));
        }
        return Ok(Reply::Bytes {
            content_type: "text/csv",
            bytes: text.into_bytes(),
        });
    }
    let orders: Vec<Value> = page
        .map(|order| render::order_summary(account, order, now))
        .collect();
    Ok(Reply::Json(
        200,
        json!({"orders": orders, "page": {"total": total, "limit": limit, "offset": offset}}),
    ))
}

/// `GET /order/alternate/{alternative_order_id}`.
pub(crate) fn alternate(
    account: &Account,
    alternative: &str,
    query: &Query,
) -> Result<Reply, ApiError> {
    let matching: Vec<&Order> = account
        .orders
        .values()
        .filter(|order| order.alternative_order_id.as_deref() == Some(alternative))
        .collect();
    if matching.is_empty() {
        return Err(ApiError::order_not_found());
    }
    let (offset, limit) = paging(query)?;
    let orders: Vec<Value> = matching
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit as usize)
        .map(|order| {
            json!({
                "order_id": order.id,
                "certificate_id": order.certificate_id,
                "status": order.status.as_str(),
            })
        })
        .collect();
    Ok(Reply::Json(
        200,
        json!({"orders": orders, "page": {"total": matching.len(), "limit": limit, "offset": offset}}),
    ))
}

/// `GET /order/certificate/status-changes` (`seconds=N` or
/// `filters[status_last_updated]=START...END`).
pub(crate) fn status_changes(
    account: &Account,
    query: &Query,
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let range = query
        .filters()
        .into_iter()
        .find(|(prop, _)| prop == "status_last_updated");
    let condition = match (query.number("seconds")?, range) {
        (Some(seconds), _) => {
            // Anything beyond a century is "everything".
            let seconds = i64::try_from(seconds)
                .unwrap_or(i64::MAX)
                .min(100 * 365 * 86_400);
            Condition::Greater(super::model::iso(now - Duration::seconds(seconds)), true)
        }
        (None, Some((_, value))) => Condition::parse(&value),
        (None, None) => return Err(ApiError::missing("seconds")),
    };
    let orders: Vec<Value> = account
        .orders
        .values()
        .filter(|order| condition.instant(order.status_last_updated))
        .map(|order| {
            json!({
                "order_id": order.id,
                "certificate_id": order.certificate_id,
                "status": order.status.as_str(),
            })
        })
        .collect();
    Ok(Reply::Json(200, json!({"orders": orders})))
}

/// `POST /order/certificate/{order_id}/reissue`.
pub(crate) fn reissue(
    account: &mut Account,
    key: &Key,
    id: &str,
    bytes: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let body: ReissueBody = query::optional_body(bytes)?;
    let order_id = id
        .parse::<u64>()
        .ok()
        .filter(|id| account.orders.contains_key(id))
        .ok_or_else(ApiError::order_not_found)?;
    let skip = skip_approval(account, key, body.skip_approval)?;
    let order = account
        .orders
        .get(&order_id)
        .ok_or_else(ApiError::order_not_found)?;
    let allowed = order.status == OrderStatus::Issued
        || (order.status == OrderStatus::Revoked && account.settings.account.reissue_after_revoke);
    if !allowed {
        return Err(ApiError::wrong_status(order.status, "reissued"));
    }
    if now > order.order_valid_till {
        return Err(ApiError::bad_request(
            "order_expired",
            "The order's validity has ended; place a renewal order instead.",
        ));
    }
    let product = account
        .product(&order.product)
        .cloned()
        .ok_or_else(|| ApiError::new(500, "internal_error", "The order's product is gone."))?;
    let params = certificate_params(
        account,
        &product,
        Some(&order.params),
        &body.certificate.unwrap_or_default(),
    )?;
    let needs_approval = account.settings.account.require_approval && !skip;
    let request_id = account.next_request_id();
    account.requests.insert(
        request_id,
        Request {
            id: request_id,
            kind: RequestKind::Reissue,
            status: RequestStatus::Pending,
            order_id,
            certificate_id: None,
            requester_id: key.user_id,
            date: now,
            comments: body.comments.clone().unwrap_or_default(),
            revocation_reason: None,
            processor_id: None,
            processor_comment: String::new(),
            date_processed: None,
        },
    );
    if let Some(order) = account.orders.get_mut(&order_id) {
        order.reissue = Some(params);
        order.status = OrderStatus::ReissuePending;
        order.status_last_updated = now;
        order.awaiting_approval = needs_approval;
        order.issue_at = None;
        order.request_ids.push(request_id);
    }
    let issued = account.progress(order_id, now)?;
    let request_status = account
        .requests
        .get(&request_id)
        .map_or("pending", |request| request.status.as_str());
    let mut out = serde_json::Map::new();
    out.insert("id".into(), json!(order_id));
    out.insert(
        "requests".into(),
        json!([{"id": request_id, "status": request_status}]),
    );
    if issued {
        if let Some(certificate) = account
            .orders
            .get(&order_id)
            .and_then(|order| account.certificates.get(&order.certificate_id))
        {
            out.insert("certificate_id".into(), json!(certificate.id));
            out.insert(
                "certificate_chain".into(),
                render::certificate_chain(account, certificate),
            );
        }
    }
    Ok(Reply::Json(201, Value::Object(out)))
}

/// What a revoke targets.
pub(crate) enum RevokeTarget<'a> {
    Order(&'a str),
    Certificate(&'a str),
}

/// `PUT /order/certificate/{order_id}/revoke` and `PUT /certificate/{id_or_serial}/revoke`.
pub(crate) fn revoke(
    account: &mut Account,
    key: &Key,
    target: RevokeTarget<'_>,
    bytes: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let body: RevokeBody = query::optional_body(bytes)?;
    let skip = skip_approval(account, key, body.skip_approval)?;
    if let Some(reason) = &body.revocation_reason {
        if account.settings.quirks.strict_revocation_reason
            && !REVOCATION_REASONS.contains(&reason.as_str())
        {
            return Err(ApiError::invalid(
                "revocation_reason",
                format!(
                    "`{reason}` is not a revocation reason ({}).",
                    REVOCATION_REASONS.join(", ")
                ),
            ));
        }
    }
    let (order_id, certificate_id) = match target {
        RevokeTarget::Order(id) => (
            id.parse::<u64>()
                .ok()
                .filter(|id| account.orders.contains_key(id))
                .ok_or_else(ApiError::order_not_found)?,
            None,
        ),
        RevokeTarget::Certificate(text) => {
            let certificate = account
                .certificates
                .values()
                .find(|certificate| {
                    text.parse::<u64>().is_ok_and(|id| id == certificate.id)
                        || certificate
                            .issued
                            .as_ref()
                            .is_some_and(|issued| issued.serial.eq_ignore_ascii_case(text))
                })
                .ok_or_else(certificate_not_found)?;
            if certificate.issued.is_none() {
                return Err(ApiError::bad_request(
                    "certificate_not_issued",
                    "The certificate has not been issued; cancel the order instead.",
                ));
            }
            if certificate.revoked.is_some() {
                return Err(ApiError::bad_request(
                    "certificate_already_revoked",
                    "The certificate is already revoked.",
                ));
            }
            (certificate.order_id, Some(certificate.id))
        }
    };
    let order = account
        .orders
        .get(&order_id)
        .ok_or_else(ApiError::order_not_found)?;
    match order.status {
        OrderStatus::Issued => {}
        OrderStatus::ReissuePending => {
            return Err(ApiError::bad_request(
                "reissue_pending",
                "A certificate with a pending reissue cannot be revoked.",
            ))
        }
        other => return Err(ApiError::wrong_status(other, "revoked")),
    }
    let pending_revoke = order.request_ids.iter().any(|id| {
        account.requests.get(id).is_some_and(|request| {
            request.kind == RequestKind::Revoke && request.status == RequestStatus::Pending
        })
    });
    if skip {
        match certificate_id {
            Some(id) => account.revoke_certificate(id, now),
            None => account.revoke_order(order_id, now),
        }
        return Ok(Reply::Empty);
    }
    if pending_revoke {
        return Err(ApiError::bad_request(
            "duplicate_request",
            "A revoke request for this order is already pending approval.",
        ));
    }
    let request_id = account.next_request_id();
    let request = Request {
        id: request_id,
        kind: RequestKind::Revoke,
        status: RequestStatus::Pending,
        order_id,
        certificate_id,
        requester_id: key.user_id,
        date: now,
        comments: body.comments.or(body.comment).unwrap_or_default(),
        revocation_reason: body.revocation_reason,
        processor_id: None,
        processor_comment: String::new(),
        date_processed: None,
    };
    let rendered = json!({
        "id": request.id,
        "date": super::model::iso(now),
        "type": "revoke",
        "status": "pending",
        "requester": account.users.get(&key.user_id).map_or_else(|| json!({"id": key.user_id}), |user| json!({
            "id": user.id,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "email": user.email,
        })),
        "comments": request.comments,
    });
    account.requests.insert(request_id, request);
    if let Some(order) = account.orders.get_mut(&order_id) {
        order.request_ids.push(request_id);
    }
    Ok(Reply::Json(201, rendered))
}

pub(crate) fn certificate_not_found() -> ApiError {
    ApiError::new(
        404,
        "not_found|certificate",
        "The specified certificate was not found.",
    )
}

/// `PUT /order/certificate/{order_id}/status` (cancel).
pub(crate) fn update_status(
    account: &mut Account,
    id: &str,
    bytes: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let body: StatusBody = query::body(bytes)?;
    let order_id = id
        .parse::<u64>()
        .ok()
        .filter(|id| account.orders.contains_key(id))
        .ok_or_else(ApiError::order_not_found)?;
    let status = body.status.ok_or_else(|| ApiError::missing("status"))?;
    match status.as_str() {
        "canceled" => {}
        "renewed" | "not_renewed" => {
            return Err(ApiError::bad_request(
                "invalid_status_change",
                format!("`{status}` applies only to migrated orders."),
            ))
        }
        other => {
            return Err(ApiError::invalid(
                "status",
                format!(
                    "`{other}` is not a status an order can be set to (values are case-sensitive)."
                ),
            ))
        }
    }
    let note = body.note.unwrap_or_default();
    if note.trim().is_empty() {
        return Err(ApiError::missing("note"));
    }
    let order = account
        .orders
        .get(&order_id)
        .ok_or_else(ApiError::order_not_found)?;
    let request_ids = order.request_ids.clone();
    match order.status {
        OrderStatus::Pending | OrderStatus::WaitingPickup => {
            for id in request_ids {
                if let Some(request) = account.requests.get_mut(&id) {
                    if request.status == RequestStatus::Pending {
                        request.status = RequestStatus::Rejected;
                        request.processor_comment = note.clone();
                        request.date_processed = Some(now);
                    }
                }
            }
            if let Some(order) = account.orders.get_mut(&order_id) {
                order.status = OrderStatus::Canceled;
                order.status_last_updated = now;
                order.issue_at = None;
            }
        }
        OrderStatus::ReissuePending => {
            for id in request_ids {
                if let Some(request) = account.requests.get_mut(&id) {
                    if request.kind == RequestKind::Reissue
                        && request.status == RequestStatus::Pending
                    {
                        request.status = RequestStatus::Rejected;
                        request.processor_comment = note.clone();
                        request.date_processed = Some(now);
                    }
                }
            }
            if let Some(order) = account.orders.get_mut(&order_id) {
                order.reissue = None;
                order.awaiting_approval = false;
                order.issue_at = None;
                order.status = OrderStatus::Issued;
                order.status_last_updated = now;
            }
        }
        other => return Err(ApiError::wrong_status(other, "canceled")),
    }
    Ok(Reply::Empty)
}

/// `GET /certificate/{id}/download/format/{format}`.
pub(crate) fn download(account: &Account, id: &str, format: &str) -> Result<Reply, ApiError> {
    let certificate = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.certificates.get(&id))
        .ok_or_else(certificate_not_found)?;
    download_certificate(account, certificate, format)
}

/// `GET /certificate/download/order/{order_id}[/format/{format}]` (UNCONFIRMED; quirk).
pub(crate) fn download_by_order(
    account: &Account,
    id: &str,
    format: &str,
) -> Result<Reply, ApiError> {
    let certificate = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.orders.get(&id))
        .and_then(|order| account.certificates.get(&order.certificate_id))
        .ok_or_else(ApiError::order_not_found)?;
    download_certificate(account, certificate, format)
}

fn download_certificate(
    account: &Account,
    certificate: &Certificate,
    format: &str,
) -> Result<Reply, ApiError> {
    let chain = account.chain_der(certificate).ok_or_else(|| {
        ApiError::new(
            404,
            "not_found|certificate",
            "The certificate has not been issued yet.",
        )
    })?;
    formats::render(format, &certificate.params.common_name, &chain).ok_or_else(|| {
        ApiError::invalid("format", format!("`{format}` is not a certificate format."))
    })
}

/// `GET /certificate/{id}/chain` (intermediates; key style per quirk).
pub(crate) fn chain(account: &Account, id: &str) -> Result<Reply, ApiError> {
    let certificate = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.certificates.get(&id))
        .ok_or_else(certificate_not_found)?;
    let issued = certificate.issued.as_ref().ok_or_else(|| {
        ApiError::new(
            404,
            "not_found|certificate",
            "The certificate has not been issued yet.",
        )
    })?;
    let intermediate = account
        .ca
        .intermediates
        .get(issued.intermediate)
        .ok_or_else(certificate_not_found)?;
    let entries = [
        (
            intermediate.name.clone(),
            render::pem_crlf(&intermediate.der),
        ),
        (
            account.ca.root_name.clone(),
            render::pem_crlf(&account.ca.root_der),
        ),
    ];
    let body = match account.settings.quirks.chain_key_style {
        super::seed::KeyStyle::Snake => {
            let list: Vec<Value> = entries
                .iter()
                .map(|(name, pem)| json!({"subject_common_name": name, "pem": pem}))
                .collect();
            json!({"intermediates": list})
        }
        super::seed::KeyStyle::Pascal => {
            let list: Vec<Value> = entries
                .iter()
                .map(|(name, pem)| json!({"SubjectCommonName": name, "PEM": pem}))
                .collect();
            json!({"Intermediates": list})
        }
    };
    Ok(Reply::Json(200, body))
}

/// Approve or reject a request (`PUT /request/{id}/status`), running what it asked for.
pub(crate) fn decide_request(
    account: &mut Account,
    key: &Key,
    request_id: u64,
    approve: bool,
    comment: String,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let request = account.requests.get(&request_id).ok_or_else(|| {
        ApiError::new(
            404,
            "not_found|request",
            "The specified request was not found.",
        )
    })?;
    if request.status != RequestStatus::Pending {
        return Err(ApiError::bad_request(
            "request_already_processed",
            format!("The request is already {}.", request.status.as_str()),
        ));
    }
    let (kind, order_id, certificate_id) = (request.kind, request.order_id, request.certificate_id);
    if let Some(request) = account.requests.get_mut(&request_id) {
        request.status = if approve {
            RequestStatus::Approved
        } else {
            RequestStatus::Rejected
        };
        request.processor_id = Some(key.user_id);
        request.processor_comment = comment;
        request.date_processed = Some(now);
    }
    match (kind, approve) {
        (RequestKind::Revoke, true) => {
            let issued = account
                .orders
                .get(&order_id)
                .is_some_and(|order| order.status == OrderStatus::Issued);
            if issued {
                match certificate_id {
                    Some(id) => account.revoke_certificate(id, now),
                    None => account.revoke_order(order_id, now),
                }
            }
        }
        (RequestKind::Revoke, false) => {}
        (RequestKind::NewRequest, true) | (RequestKind::Reissue, true) => {
            if let Some(order) = account.orders.get_mut(&order_id) {
                order.awaiting_approval = false;
                if order.status == OrderStatus::NeedsApproval {
                    order.status = OrderStatus::Pending;
                    order.status_last_updated = now;
                }
            }
            account.progress(order_id, now)?;
        }
        (RequestKind::NewRequest, false) => {
            if let Some(order) = account.orders.get_mut(&order_id) {
                order.status = OrderStatus::Rejected;
                order.status_last_updated = now;
                order.awaiting_approval = false;
            }
        }
        (RequestKind::Reissue, false) => {
            if let Some(order) = account.orders.get_mut(&order_id) {
                order.reissue = None;
                order.awaiting_approval = false;
                order.status = OrderStatus::Issued;
                order.status_last_updated = now;
            }
        }
    }
    Ok(())
}
