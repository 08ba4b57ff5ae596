//! Reading orders: view one, list (JSON or CSV) with filters, sorting and paging, find by
//! alternative id, and status changes.

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use crate::sim::digicert::model::{date, iso, Account, ApiError, Order, OrderStatus, Reply};
use crate::sim::digicert::query::{Condition, Query};
use crate::sim::digicert::render;

/// Most orders one list page returns.
pub(crate) const MAX_PAGE: u64 = 1000;

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
                .map(|issued| date(issued.not_after))
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
                iso(order.date_created)
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
        .map(|order| status_summary(order))
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
            Condition::Greater(iso(now - Duration::seconds(seconds)), true)
        }
        (None, Some((_, value))) => Condition::parse(&value),
        (None, None) => return Err(ApiError::missing("seconds")),
    };
    let orders: Vec<Value> = account
        .orders
        .values()
        .filter(|order| condition.instant(order.status_last_updated))
        .map(status_summary)
        .collect();
    Ok(Reply::Json(200, json!({"orders": orders})))
}

/// An order as the alternative-id and status-change lists show it.
fn status_summary(order: &Order) -> Value {
    json!({
        "order_id": order.id,
        "certificate_id": order.certificate_id,
        "status": order.status.as_str(),
    })
}
