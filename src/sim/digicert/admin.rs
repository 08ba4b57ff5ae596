//! `/_sim/...`: the simulator's own control endpoints (no key, no faults, no rate limits).
//!
//! | method + path | does |
//! | --- | --- |
//! | `GET /_sim/stats` | counters, orders per common name |
//! | `GET /_sim/root.pem` | the root CA certificate |
//! | `GET /_sim/ca` | root and intermediates (id, name, hash, PEM) |
//! | `POST /_sim/approve-email/{order_id}` | approve every email DCV of the order |
//! | `POST /_sim/domains/{id}/validate` | complete DCV of a domain |
//! | `POST /_sim/organizations/{id}/validate` | activate `{"type":"ov"}` (default ov and ev) |
//! | `GET`/`PUT /_sim/faults` | fault injection settings |
//! | `GET`/`PUT /_sim/limits` | rate limits (PUT also forgets past requests) |
//! | `GET /_sim/clock`, `POST /_sim/clock` | `{"advance_seconds": N}` moves the clock |
//! | `PUT /_sim/orders/{id}/status` | force a status (`{"status":"waiting_pickup"}`) |

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use time::Duration;

use super::api::{error_body, json_response, lock, windows, Shared};
use super::model::{iso, ApiError, OrderStatus};
use super::seed::{DcvStatus, Limits, ValidationStatus};
use super::stats;
use crate::sim::faults::Faults;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    advance_seconds: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateBody {
    r#type: Option<String>,
}

/// Every request below `/_sim/`.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, 1024 * 1024).await {
        Ok(bytes) => bytes,
        Err(_) => return error(&shared, ApiError::bad_format("the body is unreadable")),
    };
    let path = parts.uri.path().trim_start_matches("/_sim").to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = parts.method;
    let result = match (&method, segments.as_slice()) {
        (&Method::GET, ["stats"]) => Ok(json!(stats(&shared))),
        (&Method::GET, ["root.pem"]) => {
            let pem = lock(&shared.account).ca.root_pem.clone();
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-pem-file")],
                Body::from(pem),
            )
                .into_response();
        }
        (&Method::GET, ["ca"]) => {
            let account = lock(&shared.account);
            let intermediates: Vec<Value> = account
                .ca
                .intermediates
                .iter()
                .map(|ica| json!({"id": ica.id, "name": ica.name, "signature_hash": ica.hash, "pem": ica.pem}))
                .collect();
            Ok(json!({"root": account.ca.root_pem, "intermediates": intermediates}))
        }
        (&Method::POST, ["approve-email", id]) => match id.parse::<u64>() {
            Ok(order_id) => {
                let mut account = lock(&shared.account);
                let now = account.now();
                account.tick(now);
                super::dcv::approve_email(&mut account, order_id, now)
            }
            Err(_) => Err(ApiError::order_not_found()),
        },
        (&Method::POST, ["domains", id, "validate"]) => validate_domain(&shared, id),
        (&Method::POST, ["organizations", id, "validate"]) => {
            match super::query::optional_body::<ValidateBody>(&bytes) {
                Ok(body) => validate_organization(&shared, id, body.r#type),
                Err(error) => Err(error),
            }
        }
        (&Method::GET, ["faults"]) => Ok(json!(lock(&shared.control).faults)),
        (&Method::PUT, ["faults"]) => match super::query::body::<Faults>(&bytes) {
            Ok(faults) => match faults.validate() {
                Ok(()) => {
                    lock(&shared.control).faults = faults.clone();
                    Ok(json!(faults))
                }
                Err(reason) => Err(ApiError::bad_request("invalid_param|faults", reason)),
            },
            Err(error) => Err(error),
        },
        (&Method::GET, ["limits"]) => Ok(json!(lock(&shared.control).limits)),
        (&Method::PUT, ["limits"]) => match super::query::body::<Limits>(&bytes) {
            Ok(limits) => match super::validate_limits(&limits) {
                Ok(()) => {
                    let mut control = lock(&shared.control);
                    let scale = control.time_scale;
                    control.limiter.reset(windows(&limits, scale));
                    control.limits = limits.clone();
                    Ok(json!(limits))
                }
                Err(reason) => Err(ApiError::bad_request("invalid_param|limits", reason)),
            },
            Err(error) => Err(error),
        },
        (&Method::GET, ["clock"]) => Ok(json!({"now": iso(lock(&shared.account).now())})),
        (&Method::POST, ["clock"]) => match super::query::body::<ClockBody>(&bytes) {
            Ok(body) => {
                let mut account = lock(&shared.account);
                if account.advance_clock(Duration::seconds(body.advance_seconds)) {
                    let now = account.now();
                    account.tick(now);
                    Ok(json!({"now": iso(now)}))
                } else {
                    Err(ApiError::invalid(
                        "advance_seconds",
                        "The clock moves at most 100 years from real time.",
                    ))
                }
            }
            Err(error) => Err(error),
        },
        (&Method::PUT, ["orders", id, "status"]) => {
            match super::query::body::<StatusBody>(&bytes) {
                Ok(body) => force_status(&shared, id, &body.status),
                Err(error) => Err(error),
            }
        }
        _ => Err(ApiError::new(
            404,
            "not_found|route",
            "The simulator has no such admin endpoint.",
        )),
    };
    match result {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(failure) => error(&shared, failure),
    }
}

fn error(shared: &Shared, failure: ApiError) -> Response {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, &error_body(&shared.quirks, &failure))
}

fn validate_domain(shared: &Shared, id: &str) -> Result<Value, ApiError> {
    let mut account = lock(&shared.account);
    let now = account.now();
    let reuse = Duration::days(i64::from(account.settings.policy.dcv_reuse_days));
    let domain = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.domains.get_mut(&id))
        .ok_or_else(super::dcv::domain_not_found)?;
    domain.dcv_status = DcvStatus::Complete;
    domain.validated_until = Some(now + reuse);
    domain.dcv_approval = Some(now);
    domain.is_active = true;
    let name = domain.name.clone();
    account.progress_all(now);
    Ok(json!({"id": id, "name": name, "dcv_status": "complete"}))
}

fn validate_organization(
    shared: &Shared,
    id: &str,
    kind: Option<String>,
) -> Result<Value, ApiError> {
    let mut account = lock(&shared.account);
    let now = account.now();
    let organization = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.organizations.get_mut(&id))
        .ok_or_else(|| {
            ApiError::new(
                404,
                "not_found|organization",
                "The specified organization was not found.",
            )
        })?;
    let kinds = match kind {
        Some(kind) => vec![kind.to_ascii_lowercase()],
        None => vec!["ov".to_string(), "ev".to_string()],
    };
    for kind in &kinds {
        organization
            .validations
            .retain(|validation| &validation.kind != kind);
        organization
            .validations
            .push(super::model::OrganizationValidation {
                kind: kind.clone(),
                status: ValidationStatus::Active,
                validated_until: now + Duration::days(397),
                date_created: now,
            });
    }
    organization.is_active = true;
    account.progress_all(now);
    Ok(json!({"id": id, "validations": kinds}))
}

fn force_status(shared: &Shared, id: &str, status: &str) -> Result<Value, ApiError> {
    let status = OrderStatus::parse(status).ok_or_else(|| {
        ApiError::invalid("status", format!("`{status}` is not an order status."))
    })?;
    let mut account = lock(&shared.account);
    let now = account.now();
    let order = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.orders.get_mut(&id))
        .ok_or_else(ApiError::order_not_found)?;
    order.status = status;
    order.status_last_updated = now;
    if status == OrderStatus::ReissuePending {
        if order.reissue.is_none() {
            order.reissue = Some(order.params.clone());
        }
    } else {
        order.reissue = None;
    }
    Ok(json!({"id": order.id, "status": status.as_str()}))
}
