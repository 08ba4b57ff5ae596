//! Account endpoints other than orders: users, products, organizations, domains, requests.

use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::model::{Account, ApiError, Key, Reply};
use super::orders;
use super::query::{self, Query};
use super::render;

/// `GET /user/me`.
pub(crate) fn me(account: &Account, key: &Key, now: OffsetDateTime) -> Result<Reply, ApiError> {
    let user = account
        .users
        .get(&key.user_id)
        .ok_or_else(|| ApiError::new(404, "not_found|user", "The specified user was not found."))?;
    Ok(Reply::Json(200, render::user(account, user, key.role, now)))
}

/// `GET /user`.
pub(crate) fn users(account: &Account, now: OffsetDateTime) -> Result<Reply, ApiError> {
    let users: Vec<Value> = account
        .users
        .values()
        .map(|user| render::user(account, user, user.role, now))
        .collect();
    let total = users.len();
    Ok(Reply::Json(
        200,
        json!({"users": users, "page": {"total": total, "limit": 1000, "offset": 0}}),
    ))
}

/// `GET /product`.
pub(crate) fn products(account: &Account) -> Result<Reply, ApiError> {
    let products: Vec<Value> = account
        .products
        .iter()
        .map(|product| render::product_summary(product, account.settings.account.container_id))
        .collect();
    Ok(Reply::Json(200, json!({"products": products})))
}

/// `GET /product/{name_id}`.
pub(crate) fn product(account: &Account, name_id: &str) -> Result<Reply, ApiError> {
    let product = account.product(name_id).ok_or_else(|| {
        ApiError::new(
            404,
            "not_found|product",
            "The specified product was not found.",
        )
    })?;
    Ok(Reply::Json(
        200,
        render::product_detail(product, account.settings.quirks.validation_type_case),
    ))
}

fn organization_not_found() -> ApiError {
    ApiError::new(
        404,
        "not_found|organization",
        "The specified organization was not found.",
    )
}

/// `GET /organization` (`include_validation`, `container_id`, `filters[status]`).
pub(crate) fn organizations(
    account: &Account,
    query: &Query,
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let include_validation = query.flag("include_validation");
    let container = query.number("container_id")?;
    let status = query
        .filters()
        .into_iter()
        .find(|(prop, _)| prop == "status")
        .map(|(_, value)| value);
    let organizations: Vec<Value> = account
        .organizations
        .values()
        .filter(|_| container.is_none_or(|id| id == account.settings.account.container_id))
        .map(|organization| render::organization(account, organization, include_validation, now))
        .filter(|rendered| {
            status
                .as_deref()
                .is_none_or(|wanted| rendered.get("status").and_then(Value::as_str) == Some(wanted))
        })
        .collect();
    let total = organizations.len();
    Ok(Reply::Json(
        200,
        json!({"organizations": organizations, "page": {"total": total, "limit": 1000, "offset": 0}}),
    ))
}

/// `GET /organization/{id}`.
pub(crate) fn organization(
    account: &Account,
    id: &str,
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let organization = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.organizations.get(&id))
        .ok_or_else(organization_not_found)?;
    Ok(Reply::Json(
        200,
        render::organization(account, organization, true, now),
    ))
}

/// `GET /organization/{id}/validation`.
pub(crate) fn organization_validation(
    account: &Account,
    id: &str,
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let organization = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.organizations.get(&id))
        .ok_or_else(organization_not_found)?;
    Ok(Reply::Json(
        200,
        json!({"validations": render::organization_validations(organization, now)}),
    ))
}

/// `GET /domain` (`include_validation`, `include_dcv`, `container_id`, `filters[...]`,
/// `offset`, `limit`).
pub(crate) fn domains(
    account: &Account,
    query: &Query,
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let include_validation = query.flag("include_validation");
    let include_dcv = query.flag("include_dcv");
    let container = query.number("container_id")?;
    let filters = query.filters();
    let (offset, limit) = orders::paging(query)?;
    let mut matching = Vec::new();
    for domain in account.domains.values() {
        if container.is_some_and(|id| id != account.settings.account.container_id) {
            continue;
        }
        let mut keep = true;
        for (prop, value) in &filters {
            let condition = query::Condition::parse(value);
            keep &= match prop.as_str() {
                "name" | "search" => condition.text(&domain.name),
                "organization_id" => domain
                    .organization_id
                    .is_some_and(|id| condition.number(i128::from(id))),
                "status" | "validation" => {
                    let status = if domain.is_validated(now) {
                        "active"
                    } else {
                        "pending"
                    };
                    condition.text(status)
                }
                other => {
                    return Err(ApiError::bad_request(
                        format!("invalid_filter|{other}"),
                        format!("`{other}` is not a filterable property."),
                    ))
                }
            };
        }
        if keep {
            matching.push(domain);
        }
    }
    let total = matching.len();
    let domains: Vec<Value> = matching
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit as usize)
        .map(|domain| render::domain(account, domain, include_validation, include_dcv, false, now))
        .collect();
    Ok(Reply::Json(
        200,
        json!({"domains": domains, "page": {"total": total, "limit": limit, "offset": offset}}),
    ))
}

/// `GET /domain/{id}` (`include_dcv`, `include_validation`).
pub(crate) fn domain(
    account: &Account,
    id: &str,
    query: &Query,
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let domain = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.domains.get(&id))
        .ok_or_else(super::dcv::domain_not_found)?;
    Ok(Reply::Json(
        200,
        render::domain(
            account,
            domain,
            query.flag("include_validation"),
            query.flag("include_dcv"),
            true,
            now,
        ),
    ))
}

fn request_not_found() -> ApiError {
    ApiError::new(
        404,
        "not_found|request",
        "The specified request was not found.",
    )
}

/// `GET /request` (`filters[status]`, `filters[type]`).
pub(crate) fn requests(account: &Account, query: &Query) -> Result<Reply, ApiError> {
    let filters = query.filters();
    let (offset, limit) = orders::paging(query)?;
    let matching: Vec<Value> = account
        .requests
        .values()
        .filter(|request| {
            filters.iter().all(|(prop, value)| match prop.as_str() {
                "status" => request.status.as_str() == value,
                "type" => request.kind.as_str() == value,
                "order_id" => request.order_id.to_string() == *value,
                _ => true,
            })
        })
        .map(|request| render::request(account, request))
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit as usize)
        .collect();
    Ok(Reply::Json(
        200,
        json!({"requests": page, "page": {"total": total, "limit": limit, "offset": offset}}),
    ))
}

/// `GET /request/{id}`.
pub(crate) fn request(account: &Account, id: &str) -> Result<Reply, ApiError> {
    let request = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.requests.get(&id))
        .ok_or_else(request_not_found)?;
    Ok(Reply::Json(200, render::request(account, request)))
}

#[derive(Debug, Default, Deserialize)]
struct RequestStatusBody {
    status: Option<String>,
    processor_comment: Option<String>,
}

/// `PUT /request/{id}/status` → 204. Only administrators approve.
pub(crate) fn update_request(
    account: &mut Account,
    key: &Key,
    id: &str,
    bytes: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let body: RequestStatusBody = query::body(bytes)?;
    let request_id = id
        .parse::<u64>()
        .ok()
        .filter(|id| account.requests.contains_key(id))
        .ok_or_else(request_not_found)?;
    if !key.is_admin() {
        return Err(ApiError::new(
            403,
            "access_denied|invalid_approver",
            "The user of this API key is not allowed to approve or reject requests.",
        ));
    }
    let approve = match body.status.as_deref() {
        Some("approved") => true,
        Some("rejected") => false,
        Some(other) => {
            return Err(ApiError::invalid(
                "status",
                format!("`{other}` is not a request status (approved, rejected)."),
            ))
        }
        None => return Err(ApiError::missing("status")),
    };
    orders::decide_request(
        account,
        key,
        request_id,
        approve,
        body.processor_comment.unwrap_or_default(),
        now,
    )?;
    Ok(Reply::Empty)
}
