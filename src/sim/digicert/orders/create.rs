//! Placing an order (`POST /order/certificate/{product}`): the product, the certificate
//! parameters and validity a request asks for (shared with reissues), and the create response.

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime, Time};

use super::{CertificateBody, OrderBody};
use crate::sim::digicert::ca::parse_csr;
use crate::sim::digicert::model::{
    end_of_day, is_dns_name, iso, normalize_name, parse_date, Account, ApiError, CertParams,
    Certificate, Key, Order, OrderStatus, Reply, Request, RequestKind, Validity,
};
use crate::sim::digicert::query;
use crate::sim::digicert::render;
use crate::sim::digicert::seed::{DomainNameKey, ProductSeed, SkipApproval};

/// Whether a `skip_approval: true` from `key` takes effect (or is refused by the quirk).
pub(super) fn skip_approval(
    account: &Account,
    key: &Key,
    asked: Option<bool>,
) -> Result<bool, ApiError> {
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
pub(super) fn certificate_params(
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
        dcv_random_value_expires: dcv_random_value.as_ref().map(|_| {
            now + time::Duration::days(i64::from(account.settings.dcv.token_lifetime_days))
        }),
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
        Request::pending(
            request_id,
            RequestKind::NewRequest,
            order_id,
            key.user_id,
            now,
            body.comments.clone().unwrap_or_default(),
        ),
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
                "expiration_date": iso(domain.token_expires),
            }),
        );
        entries.push(Value::Object(entry));
    }
    json!(entries)
}
