//! `/_sim/...`: the simulator's own control endpoints (no credentials, no faults, no limits).
//!
//! | method + path | does |
//! | --- | --- |
//! | `GET /_sim/stats` | counters: requests per route, enrollments per common name, ... |
//! | `GET /_sim/root.pem` | the root CA certificate |
//! | `GET /_sim/ca` | root and issuing CA (PEM) |
//! | `POST /_sim/certificates/{id}/approve` | approve a `Requested` certificate |
//! | `POST /_sim/certificates/{id}/decline` | decline a pending certificate |
//! | `POST /_sim/certificates/{id}/issue` | issue now, skipping the delay and DCV |
//! | `PUT /_sim/certificates/{id}/status` | force a status: `{"status": "Rejected"}` |
//! | `GET /_sim/certificates/{id}` | the record as details show it (ISO dates) |
//! | `POST /_sim/domains/{name}/validate` | complete a domain's DCV (pending issuance follows) |
//! | `POST /_sim/users` | add or replace a user: `{"login", "password", "role", "privileges"?}` |
//! | `GET`/`PUT /_sim/workflow` | approval (`auto`/`manual`), issue delay, external requester |
//! | `GET`/`PUT /_sim/faults` | fault injection settings |
//! | `GET`/`PUT /_sim/limits` | rate limits (PUT also forgets past requests) |
//! | `GET /_sim/clock`, `POST /_sim/clock` | `{"advance_seconds": N}` moves the clock |

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use time::Duration;

use super::api::{json_response, lock, windows, Shared};
use super::model::{error_body, ApiError, DateStyle, Status};
use super::seed::{validate_limits, Limits, UserSeed, Workflow};
use super::stats;
use crate::sim::faults::Faults;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    advance_seconds: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|error| ApiError::bad(-1002, format!("Cannot parse message body: {error}")))
}

/// Every request below `/_sim/`.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, 1024 * 1024).await {
        Ok(bytes) => bytes,
        Err(_) => return respond(Err(ApiError::unparsable())),
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
            Ok(json!({"root": account.ca.root_pem, "issuer": account.ca.issuer_pem}))
        }
        (&Method::GET, ["certificates", id]) => certificate(&shared, id),
        (&Method::POST, ["certificates", id, action]) => certificate_action(&shared, id, action),
        (&Method::PUT, ["certificates", id, "status"]) => match parse::<StatusBody>(&bytes) {
            Ok(body) => force_status(&shared, id, &body.status),
            Err(error) => Err(error),
        },
        (&Method::POST, ["domains", name, "validate"]) => {
            let mut account = lock(&shared.account);
            let now = account.now();
            if super::catalog::validate_domain(&mut account, name, now) {
                Ok(json!({"domain": name, "validated": true}))
            } else {
                Err(ApiError::new(
                    404,
                    -727,
                    format!("The domain '{name}' does not exist."),
                ))
            }
        }
        (&Method::POST, ["users"]) => match parse::<UserSeed>(&bytes) {
            Ok(user) if !user.login.is_empty() && !user.password.is_empty() => {
                lock(&shared.account).add_user(&user);
                Ok(json!({"login": user.login, "role": user.role.as_str()}))
            }
            Ok(_) => Err(ApiError::missing("login")),
            Err(error) => Err(error),
        },
        (&Method::GET, ["workflow"]) => Ok(json!(lock(&shared.account).workflow)),
        (&Method::PUT, ["workflow"]) => match parse::<Workflow>(&bytes) {
            Ok(workflow) => {
                lock(&shared.account).workflow = workflow.clone();
                Ok(json!(workflow))
            }
            Err(error) => Err(error),
        },
        (&Method::GET, ["faults"]) => Ok(json!(lock(&shared.control).faults)),
        (&Method::PUT, ["faults"]) => match parse::<Faults>(&bytes) {
            Ok(faults) => match faults.validate() {
                Ok(()) => {
                    lock(&shared.control).faults = faults.clone();
                    Ok(json!(faults))
                }
                Err(reason) => Err(ApiError::bad(-1601, reason)),
            },
            Err(error) => Err(error),
        },
        (&Method::GET, ["limits"]) => Ok(json!(lock(&shared.control).limits)),
        (&Method::PUT, ["limits"]) => match parse::<Limits>(&bytes) {
            Ok(limits) => match validate_limits(&limits) {
                Ok(()) => {
                    let mut control = lock(&shared.control);
                    control.limiter.reset(windows(&limits));
                    control.limits = limits.clone();
                    Ok(json!(limits))
                }
                Err(reason) => Err(ApiError::bad(-1601, reason)),
            },
            Err(error) => Err(error),
        },
        (&Method::GET, ["clock"]) => Ok(clock(&shared)),
        (&Method::POST, ["clock"]) => match parse::<ClockBody>(&bytes) {
            Ok(body) => {
                let mut account = lock(&shared.account);
                if account.advance_clock(Duration::seconds(body.advance_seconds)) {
                    let now = account.now();
                    account.tick(now);
                    drop(account);
                    Ok(clock(&shared))
                } else {
                    Err(ApiError::bad(
                        -1601,
                        "the clock may move at most a hundred years from real time",
                    ))
                }
            }
            Err(error) => Err(error),
        },
        _ => Err(ApiError::new(404, -1, "Not Found")),
    };
    respond(result)
}

fn respond(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(error) => json_response(
            StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST),
            &error_body(&error),
        ),
    }
}

fn clock(shared: &Shared) -> Value {
    let account = lock(&shared.account);
    json!({
        "now": DateStyle::IsoHms.format(account.now()),
        "offset_seconds": account.clock_offset().whole_seconds(),
    })
}

fn parse_id(id: &str) -> Result<u64, ApiError> {
    id.parse::<u64>().map_err(|_| ApiError::wrong_id(id))
}

fn certificate(shared: &Shared, id: &str) -> Result<Value, ApiError> {
    let id = parse_id(id)?;
    let mut account = lock(&shared.account);
    let now = account.now();
    account.tick(now);
    let certificate = account
        .certificates
        .get(&id)
        .ok_or_else(|| ApiError::wrong_id(id))?;
    Ok(super::ssl::details_json(
        &account,
        certificate,
        DateStyle::IsoHms,
    ))
}

fn certificate_action(shared: &Shared, id: &str, action: &str) -> Result<Value, ApiError> {
    let id = parse_id(id)?;
    let mut account = lock(&shared.account);
    let now = account.now();
    account.tick(now);
    let status = account
        .certificates
        .get(&id)
        .map(|certificate| certificate.status)
        .ok_or_else(|| ApiError::wrong_id(id))?;
    match action {
        "approve" => {
            if status != Status::Requested {
                return Err(ApiError::bad(
                    -1112,
                    format!(
                        "Certificate can't be approved cause it has state = {}",
                        status.name(&account.quirks)
                    ),
                ));
            }
            account.approve(id, Some(("sim-admin".to_string(), 1)), now);
            account.counters.approvals += 1;
        }
        "decline" => super::lifecycle::decline_now(&mut account, id, now)?,
        "issue" => {
            if !matches!(
                status,
                Status::Requested | Status::Approved | Status::SaApproved | Status::Applied
            ) {
                return Err(ApiError::bad(
                    -1113,
                    format!(
                        "SSL certificate is not ready to be applied. Current certificate state is {}.",
                        status.name(&account.quirks)
                    ),
                ));
            }
            if let Some(certificate) = account.certificates.get_mut(&id) {
                certificate.approved.get_or_insert(now);
            }
            account.issue(id, now)?;
        }
        _ => return Err(ApiError::new(404, -1, "Not Found")),
    }
    let status = account
        .certificates
        .get(&id)
        .map(|certificate| certificate.status.name(&account.quirks).to_string());
    Ok(json!({"sslId": id, "status": status}))
}

fn force_status(shared: &Shared, id: &str, status: &str) -> Result<Value, ApiError> {
    let id = parse_id(id)?;
    let status = Status::parse(status).ok_or_else(|| ApiError::invalid("status"))?;
    let mut account = lock(&shared.account);
    let now = account.now();
    let certificate = account
        .certificates
        .get_mut(&id)
        .ok_or_else(|| ApiError::wrong_id(id))?;
    certificate.status = status;
    match status {
        Status::Revoked => {
            certificate.revoked.get_or_insert(now);
        }
        Status::Declined => {
            certificate.declined.get_or_insert(now);
        }
        Status::Replaced => {
            certificate.replaced.get_or_insert(now);
        }
        _ => {}
    }
    if status != Status::Applied {
        certificate.issue_at = None;
    }
    let needs_leaf = status == Status::Issued && certificate.leaf.is_none();
    if needs_leaf {
        // An `Issued` certificate is collectable: sign it now.
        account.issue(id, now)?;
    }
    let name = status.name(&account.quirks).to_string();
    Ok(json!({"sslId": id, "status": name}))
}
