//! Domain-control validation: planning a check under the account lock, running the DNS and
//! HTTP look-ups without it, and applying the result.
//!
//! `dns-txt-token`: a TXT record holding the token at the name (without `*.`), at its base (without
//! `www.`), or at `_dnsauth.` under either. `dns-cname-token`: `_dnsauth.NAME` is a CNAME to
//! `TOKEN.dcv.digicert.com`. `http-token`: `http://NAME:PORT/.well-known/pki-validation/FILE`
//! answers 200 with the token in its body.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::model::{Account, ApiError, OrderStatus, Reply};
use super::seed::{DcvSettings, DcvStatus};
use crate::sim::{dns_reader, http_fetch};

/// A check to run outside the lock.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) target: Target,
    pub(crate) method: String,
    pub(crate) names: Vec<String>,
    pub(crate) tokens: Vec<String>,
    pub(crate) settings: DcvSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Order(u64),
    Domain(u64),
}

/// Either an answer right away, or a check to run.
pub(crate) enum Plan {
    Done(Result<Reply, ApiError>),
    Run(Box<Check>),
}

/// The outcome per name: `Err` says why it failed.
pub(crate) type Outcome = Vec<(String, Result<(), String>)>;

fn method_error(method: &str) -> ApiError {
    match method {
        "dns-txt-token" => ApiError::bad_request(
            "invalid_dns_txt",
            "Could not find a valid TXT record for one or more domains.",
        ),
        "dns-cname-token" => ApiError::bad_request(
            "invalid_dns_cname",
            "Could not find a valid CNAME record for one or more domains.",
        ),
        _ => ApiError::bad_request(
            "file_random_value_not_found",
            "The random value file was not found on one or more domains.",
        ),
    }
}

fn token_method(method: &str) -> bool {
    matches!(
        method,
        "dns-txt-token" | "dns-cname-token" | "http-token" | "http-token-dynamic"
    )
}

#[derive(Debug, Default, serde::Deserialize)]
struct CheckBody {
    #[serde(flatten)]
    fields: serde_json::Map<String, Value>,
}

/// `PUT /order/certificate/{order_id}/check-dcv`, first half.
pub(crate) fn plan_order(
    account: &mut Account,
    id: &str,
    bytes: &[u8],
    now: OffsetDateTime,
) -> Plan {
    let body: CheckBody = match super::query::optional_body(bytes) {
        Ok(body) => body,
        Err(error) => return Plan::Done(Err(error)),
    };
    let Some(order) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.orders.get(&id))
    else {
        return Plan::Done(Err(ApiError::order_not_found()));
    };
    let order_id = order.id;
    match order.status {
        OrderStatus::Issued => {
            return Plan::Done(Ok(Reply::Json(
                200,
                json!({"order_status": "issued", "certificate_id": order.certificate_id, "dcv_status": "valid"}),
            )))
        }
        OrderStatus::Pending
        | OrderStatus::ReissuePending
        | OrderStatus::NeedsApproval
        | OrderStatus::WaitingPickup => {}
        other => return Plan::Done(Err(ApiError::wrong_status(other, "validated"))),
    }
    if !token_method(&order.dcv_method) {
        return Plan::Done(Err(ApiError::bad_request(
            "invalid_dns_method",
            format!(
                "The order uses `{}` DCV; check-dcv needs dns-txt-token, dns-cname-token or http-token.",
                order.dcv_method
            ),
        )));
    }
    let mut names = account.unvalidated_names(order, now);
    let field = account.settings.quirks.check_dcv_subset_field.clone();
    if let Some(subset) = body.fields.get(&field) {
        let Some(list) = subset.as_array() else {
            return Plan::Done(Err(ApiError::bad_format(format!(
                "`{field}` must be an array of names"
            ))));
        };
        let mut wanted = Vec::new();
        for item in list {
            let name = item
                .as_str()
                .or_else(|| item.get("dns_name").and_then(Value::as_str));
            match name {
                Some(name) => wanted.push(super::model::normalize_name(name)),
                None => {
                    return Plan::Done(Err(ApiError::bad_format(format!(
                        "`{field}` must be an array of names"
                    ))))
                }
            }
        }
        if let Some(unknown) = wanted
            .iter()
            .find(|name| !order.target().dns_names.contains(name))
        {
            return Plan::Done(Err(ApiError::invalid(
                &field,
                format!("`{unknown}` is not a name of this order."),
            )));
        }
        names.retain(|name| wanted.contains(name));
    }
    let method = order.dcv_method.clone();
    // The order's random value while it is valid; a domain's own token only behind the quirk.
    let mut tokens: Vec<String> = order
        .dcv_random_value
        .iter()
        .filter(|_| {
            order
                .dcv_random_value_expires
                .is_none_or(|until| now < until)
        })
        .cloned()
        .collect();
    if account.settings.quirks.order_dcv_accepts_domain_token {
        for name in &names {
            let base = Account::dcv_domain_name(name);
            if let Some(domain) = account.domains.values().find(|d| d.name == base) {
                if !tokens.contains(&domain.token) {
                    tokens.push(domain.token.clone());
                }
            }
        }
    }
    if names.is_empty() {
        let progressed = account.progress(order_id, now);
        return Plan::Done(progressed.map(|_| order_reply(account, order_id, &[])));
    }
    Plan::Run(Box::new(Check {
        target: Target::Order(order_id),
        method,
        names,
        tokens,
        settings: account.settings.dcv.clone(),
    }))
}

/// `PUT /order/certificate/{order_id}/dcv-random-value`: the order's random value and its
/// expiry. The current value while it is valid (a new one after `dcv.token_lifetime_days`, or
/// on every call with `quirks.rotate_dcv_random_value`); the old value is no longer accepted.
pub(crate) fn random_value(
    account: &mut Account,
    id: &str,
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let order_id = id
        .parse::<u64>()
        .ok()
        .filter(|id| account.orders.contains_key(id))
        .ok_or_else(ApiError::order_not_found)?;
    let lifetime = time::Duration::days(i64::from(account.settings.dcv.token_lifetime_days));
    let rotate = account.settings.quirks.rotate_dcv_random_value;
    let fresh = account.rng.alphanumeric(32);
    let order = account
        .orders
        .get_mut(&order_id)
        .ok_or_else(ApiError::order_not_found)?;
    if !token_method(&order.dcv_method) {
        return Err(ApiError::bad_request(
            "invalid_dcv_method",
            format!(
                "The order uses `{}` DCV; a random value is for dns-txt-token, dns-cname-token or http-token.",
                order.dcv_method
            ),
        ));
    }
    let valid = order.dcv_random_value.is_some()
        && order
            .dcv_random_value_expires
            .is_none_or(|until| now < until);
    if rotate || !valid {
        order.dcv_random_value = Some(fresh);
        order.dcv_random_value_expires = Some(now + lifetime);
    }
    let expires = order.dcv_random_value_expires.unwrap_or(now + lifetime);
    Ok(Reply::Json(
        200,
        json!({
            "dcv_random_value": order.dcv_random_value.clone().unwrap_or_default(),
            "expiration_date": super::model::iso_z(expires),
        }),
    ))
}

/// `PUT /domain/{domain_id}/dcv/validate-token`, first half.
pub(crate) fn plan_domain(account: &mut Account, id: &str, now: OffsetDateTime) -> Plan {
    let Some(domain) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.domains.get(&id))
    else {
        return Plan::Done(Err(domain_not_found()));
    };
    if domain.is_validated(now) {
        return Plan::Done(Ok(Reply::Json(
            200,
            json!({"token": domain.token, "status": "active"}),
        )));
    }
    if !token_method(&domain.dcv_method) {
        return Plan::Done(Err(ApiError::bad_request(
            "invalid_dns_method",
            format!(
                "The domain uses `{}` DCV; validate-token needs a token method.",
                domain.dcv_method
            ),
        )));
    }
    let mut tokens = vec![domain.token.clone()];
    for order in account.orders.values() {
        if let Some(value) = &order.dcv_random_value {
            let concerned = order
                .target()
                .dns_names
                .iter()
                .any(|name| Account::dcv_domain_name(name) == domain.name);
            if concerned && !tokens.contains(value) {
                tokens.push(value.clone());
            }
        }
    }
    Plan::Run(Box::new(Check {
        target: Target::Domain(domain.id),
        method: domain.dcv_method.clone(),
        names: vec![domain.name.clone()],
        tokens,
        settings: account.settings.dcv.clone(),
    }))
}

pub(crate) fn domain_not_found() -> ApiError {
    ApiError::new(
        404,
        "not_found|domain",
        "The specified domain was not found.",
    )
}

/// Run the look-ups of `check`.
pub(crate) async fn run(check: &Check) -> Outcome {
    let mut outcome = Vec::new();
    for name in &check.names {
        let result = check_name(check, name).await;
        outcome.push((name.clone(), result));
    }
    outcome
}

/// The names a record for `name` may sit at: the name without `*.`, and its base without
/// `www.`.
fn candidates(name: &str) -> Vec<String> {
    let bare = name.strip_prefix("*.").unwrap_or(name).to_string();
    let base = Account::dcv_domain_name(name);
    if base == bare {
        vec![bare]
    } else {
        vec![bare, base]
    }
}

async fn check_name(check: &Check, name: &str) -> Result<(), String> {
    let settings = &check.settings;
    let timeout = Duration::from_millis(settings.dns_timeout_ms.max(1));
    match check.method.as_str() {
        "dns-txt-token" => {
            let server = settings
                .dns_server
                .ok_or_else(|| "the simulator has no `dcv.dns_server`".to_string())?;
            let mut seen = Vec::new();
            for candidate in candidates(name) {
                for owner in [candidate.clone(), format!("_dnsauth.{candidate}")] {
                    match dns_reader::lookup_txt(server, &owner, timeout).await {
                        Ok(values) => {
                            if values
                                .iter()
                                .any(|value| check.tokens.iter().any(|token| value.trim() == token))
                            {
                                return Ok(());
                            }
                            seen.extend(values);
                        }
                        Err(error) => seen.push(format!("({error})")),
                    }
                }
            }
            Err(format!(
                "no TXT record with the token at `{name}` (found: {})",
                seen.join(", ")
            ))
        }
        "dns-cname-token" => {
            let server = settings
                .dns_server
                .ok_or_else(|| "the simulator has no `dcv.dns_server`".to_string())?;
            for candidate in candidates(name) {
                let owner = format!("_dnsauth.{candidate}");
                if let Some(target) = cname(server, &owner, timeout).await {
                    let target = target.trim_end_matches('.').to_ascii_lowercase();
                    if check.tokens.iter().any(|token| {
                        target == format!("{}.dcv.digicert.com", token.to_ascii_lowercase())
                    }) {
                        return Ok(());
                    }
                }
            }
            Err(format!(
                "no CNAME to `TOKEN.dcv.digicert.com` at `_dnsauth.{name}`"
            ))
        }
        _ => {
            let path = format!("/.well-known/pki-validation/{}", settings.http_file_name);
            let mut last = String::new();
            for candidate in candidates(name) {
                let address = settings
                    .http_hosts
                    .get(&candidate)
                    .copied()
                    .unwrap_or(settings.http_default_address);
                let addr = SocketAddr::new(address, settings.http_port);
                let timeout = Duration::from_millis(settings.http_timeout_ms.max(1));
                match http_fetch::get(addr, &candidate, &path, timeout).await {
                    Ok(fetched) if fetched.status == 200 => {
                        let body = String::from_utf8_lossy(&fetched.body);
                        if body
                            .lines()
                            .any(|line| check.tokens.iter().any(|token| line.trim() == token))
                        {
                            return Ok(());
                        }
                        last = format!("`http://{candidate}{path}` does not hold the token");
                    }
                    Ok(fetched) => {
                        last = format!("`http://{candidate}{path}` answered {}", fetched.status);
                    }
                    Err(error) => last = error,
                }
            }
            Err(last)
        }
    }
}

async fn cname(server: SocketAddr, owner: &str, timeout: Duration) -> Option<String> {
    dns_reader::lookup_cname(server, owner, timeout)
        .await
        .ok()
        .flatten()
}

/// The check-dcv answer for an order.
fn order_reply(account: &Account, order_id: u64, validated: &[String]) -> Reply {
    let (status, certificate_id) = account
        .orders
        .get(&order_id)
        .map_or(("pending", 0), |order| {
            (order.status.as_str(), order.certificate_id)
        });
    let validations: Vec<Value> = validated
        .iter()
        .map(|name| json!({"dns_name": name, "status": "approved"}))
        .collect();
    let mut body = json!({
        "order_status": status,
        "certificate_id": certificate_id,
        "dcv_status": "valid",
    });
    if let Some(map) = body.as_object_mut() {
        map.insert("dns_name_validations".into(), json!(validations));
    }
    Reply::Json(200, body)
}

/// Second half: record what passed, move orders on, answer.
pub(crate) fn finish(
    account: &mut Account,
    check: &Check,
    outcome: Outcome,
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    account.counters.dcv_checks += 1;
    let passed: Vec<String> = outcome
        .iter()
        .filter(|(_, result)| result.is_ok())
        .map(|(name, _)| name.clone())
        .collect();
    let failures: Vec<String> = outcome
        .iter()
        .filter_map(|(name, result)| result.as_ref().err().map(|why| format!("{name}: {why}")))
        .collect();
    match check.target {
        Target::Order(order_id) => {
            account.mark_validated(&passed, order_id, now);
            if failures.is_empty() {
                Ok(order_reply(account, order_id, &passed))
            } else {
                let mut error = method_error(&check.method);
                error.message = format!("{} ({})", error.message, failures.join("; "));
                Err(error)
            }
        }
        Target::Domain(domain_id) => {
            let token = account
                .domains
                .get(&domain_id)
                .map(|domain| domain.token.clone())
                .ok_or_else(domain_not_found)?;
            if failures.is_empty() {
                if let Some(domain) = account.domains.get_mut(&domain_id) {
                    domain.dcv_status = DcvStatus::Complete;
                    domain.validated_until = Some(
                        now + time::Duration::days(i64::from(
                            account.settings.policy.dcv_reuse_days,
                        )),
                    );
                    domain.dcv_approval = Some(now);
                }
                account.progress_all(now);
                Ok(Reply::Json(
                    200,
                    json!({"token": token, "status": "active"}),
                ))
            } else {
                Ok(Reply::Json(
                    200,
                    json!({"token": token, "status": "pending"}),
                ))
            }
        }
    }
}

/// `POST /_sim/approve-email/{order_id}`: the domain owner clicked the link in every DCV email.
pub(crate) fn approve_email(
    account: &mut Account,
    order_id: u64,
    now: OffsetDateTime,
) -> Result<Value, ApiError> {
    let order = account
        .orders
        .get(&order_id)
        .ok_or_else(ApiError::order_not_found)?;
    if order.dcv_method != "email" {
        return Err(ApiError::bad_request(
            "invalid_dns_method",
            format!(
                "Order {order_id} uses `{}` DCV, not email.",
                order.dcv_method
            ),
        ));
    }
    if !matches!(
        order.status,
        OrderStatus::Pending | OrderStatus::ReissuePending | OrderStatus::NeedsApproval
    ) {
        return Err(ApiError::wrong_status(order.status, "validated"));
    }
    let names = account.unvalidated_names(order, now);
    account.mark_validated(&names, order_id, now);
    let order = account
        .orders
        .get(&order_id)
        .ok_or_else(ApiError::order_not_found)?;
    Ok(json!({
        "order_id": order_id,
        "status": order.status.as_str(),
        "certificate_id": order.certificate_id,
        "approved_names": names,
    }))
}
