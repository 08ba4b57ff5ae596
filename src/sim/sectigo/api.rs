//! The HTTP face of the simulator: `/api/...` with `login`/`password`/`customerUri` header
//! authentication, optional rate limits and fault injection, routed to the endpoints in
//! `ssl.rs` and `catalog.rs`; answers in SCM's shapes (`{code, description}` errors).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::catalog;
use super::lifecycle::{self, RevokeTarget};
use super::model::{error_body, Account, ApiError, DcvInstruction, Reply, User};
use super::query::{decode, Query};
use super::seed::Limits;
use super::ssl;
use crate::sim::dns_reader;
use crate::sim::faults::{DropPhase, FaultDecision, Faults};
use crate::sim::listener::Connection;
use crate::sim::random::Rng;
use crate::sim::rate_limit::{RateLimiter, Window};

/// Where the API lives, as on `cert-manager.com`.
pub(crate) const PREFIX: &str = "/api";

/// Largest request body read.
const MAX_BODY: usize = 2 * 1024 * 1024;

/// Limits and faults, changeable at run time.
pub(crate) struct Control {
    pub(crate) limiter: RateLimiter,
    pub(crate) limits: Limits,
    pub(crate) faults: Faults,
    pub(crate) rng: Rng,
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub(crate) account: Mutex<Account>,
    pub(crate) control: Mutex<Control>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the state itself is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn windows(limits: &Limits) -> Vec<Window> {
    limits
        .windows
        .iter()
        .map(|window| Window {
            requests: window.requests,
            period: std::time::Duration::from_secs(window.seconds),
        })
        .collect()
}

enum Route {
    Types,
    CustomFields,
    Enroll,
    Update,
    RevokeManual,
    RenewManual(String),
    List,
    Count,
    Details(String),
    Delete(String),
    Dcv(String),
    DcvRecheck(String),
    Collect(String, Option<String>),
    RenewById(String),
    Renew(String),
    Replace(String),
    Revoke(String),
    RevokeSerial(String),
    Approve(String),
    Decline(String),
    Organizations,
    Organization(String),
    Domains,
    Domain(String),
    DcvList,
    DcvStatus,
    DcvAction(String, String),
}

/// Match a path below `/api` to a route and its template (for the stats).
fn route(method: &Method, path: &str) -> Option<(Route, &'static str)> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(decode)
        .collect();
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = method == Method::GET;
    let head = method == Method::HEAD;
    let post = method == Method::POST;
    let delete = method == Method::DELETE;
    let s = |text: &str| text.to_string();
    // `/ssl/v2/...` has the same shapes as `/ssl/v1/...` (OpenAPI).
    let ssl = matches!(parts.as_slice(), ["ssl", "v1" | "v2", ..]);
    let rest: &[&str] = if ssl { &parts[2..] } else { &[] };
    if ssl {
        return Some(match rest {
            ["types"] if get => (Route::Types, "GET /ssl/v1/types"),
            ["customFields"] if get => (Route::CustomFields, "GET /ssl/v1/customFields"),
            ["enroll"] if post => (Route::Enroll, "POST /ssl/v1/enroll"),
            [] if get => (Route::List, "GET /ssl/v1"),
            [] if head => (Route::Count, "HEAD /ssl/v1"),
            [] if method == Method::PUT => (Route::Update, "PUT /ssl/v1"),
            ["revoke", "manual"] if post => (Route::RevokeManual, "POST /ssl/v1/revoke/manual"),
            ["renew", "manual", id] if post => (
                Route::RenewManual(s(id)),
                "POST /ssl/v1/renew/manual/{sslId}",
            ),
            ["collect", id] if get => (Route::Collect(s(id), None), "GET /ssl/v1/collect/{sslId}"),
            ["collect", id, format] if get => (
                Route::Collect(s(id), Some(s(format))),
                "GET /ssl/v1/collect/{sslId}/{format}",
            ),
            ["renewById", id] if post => {
                (Route::RenewById(s(id)), "POST /ssl/v1/renewById/{sslId}")
            }
            ["renew", id] if post => (Route::Renew(s(id)), "POST /ssl/v1/renew/{renewId}"),
            ["replace", id] if post => (Route::Replace(s(id)), "POST /ssl/v1/replace/{sslId}"),
            ["revoke", "serial", serial] if post => (
                Route::RevokeSerial(s(serial)),
                "POST /ssl/v1/revoke/serial/{serialNumber}",
            ),
            ["revoke", id] if post => (Route::Revoke(s(id)), "POST /ssl/v1/revoke/{sslId}"),
            ["approve", id] if post => (Route::Approve(s(id)), "POST /ssl/v1/approve/{sslId}"),
            ["decline", id] if post => (Route::Decline(s(id)), "POST /ssl/v1/decline/{sslId}"),
            [id, "dcv"] if get => (Route::Dcv(s(id)), "GET /ssl/v1/{sslId}/dcv"),
            [id, "dcv", "recheck"] if post => {
                (Route::DcvRecheck(s(id)), "POST /ssl/v1/{sslId}/dcv/recheck")
            }
            [id] if get => (Route::Details(s(id)), "GET /ssl/v1/{sslId}"),
            [id] if delete => (Route::Delete(s(id)), "DELETE /ssl/v1/{sslId}"),
            _ => return None,
        });
    }
    Some(match parts.as_slice() {
        ["organization", "v1"] if get => (Route::Organizations, "GET /organization/v1"),
        ["organization", "v1", id] if get => {
            (Route::Organization(s(id)), "GET /organization/v1/{id}")
        }
        ["domain", "v1"] if get => (Route::Domains, "GET /domain/v1"),
        ["domain", "v1", id] if get => (Route::Domain(s(id)), "GET /domain/v1/{id}"),
        ["dcv", "v1", "validation"] if get => (Route::DcvList, "GET /dcv/v1/validation"),
        ["dcv", "v2", "validation", "status"] if post => {
            (Route::DcvStatus, "POST /dcv/v2/validation/status")
        }
        ["dcv", "v1", "validation", action @ ("start" | "submit"), "domain", method] if post => (
            Route::DcvAction(s(action), s(method)),
            "POST /dcv/v1/validation/{action}/domain/{method}",
        ),
        _ => return None,
    })
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// Every request outside `/_sim/`.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    lock(&shared.account).counters.requests_total += 1;
    let path = parts.uri.path();
    let below = match path.strip_prefix(PREFIX) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.to_string(),
        _ => {
            return finish(
                &shared,
                "unmatched",
                Err(ApiError::new(404, -1, "Not Found")),
                false,
            )
        }
    };
    let head = parts.method == Method::HEAD;

    // Authentication: the three headers of D25 "User Login via Password".
    let login = header_text(&parts.headers, "login");
    let password = header_text(&parts.headers, "password");
    let customer = header_text(&parts.headers, "customeruri");
    let user: Option<User> = lock(&shared.account)
        .authenticate(login, password, customer)
        .cloned();
    let Some(user) = user else {
        let code = {
            let mut account = lock(&shared.account);
            account.counters.unauthorized += 1;
            account.quirks.unauthorized_code
        };
        let description = if code == -970 {
            "Incorrect login credentials."
        } else {
            "Unknown user"
        };
        return finish(
            &shared,
            "unauthorized",
            Err(ApiError::new(401, code, description)),
            head,
        );
    };

    // Rate limits, then faults.
    let (limited, decision, retry_after_header) = {
        let mut control = lock(&shared.control);
        let limited = control.limiter.check(&user.login, Instant::now()).err();
        let decision = if limited.is_none() {
            let faults = control.faults.clone();
            Some(faults.decide(&mut control.rng))
        } else {
            None
        };
        (limited, decision, control.limits.retry_after_header)
    };
    if let Some(wait) = limited {
        lock(&shared.account).counters.rate_limited += 1;
        // Not documented: the simulator's own code and text.
        let mut response = finish(
            &shared,
            "rate_limited",
            Err(ApiError::new(429, -1, "Too many requests.")),
            head,
        );
        if retry_after_header {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        return response;
    }
    let decision = decision.unwrap_or(FaultDecision {
        delay: std::time::Duration::ZERO,
        error: None,
        drop: None,
    });
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    if let Some(status) = decision.error {
        lock(&shared.account).counters.injected_errors += 1;
        return finish(
            &shared,
            "injected_error",
            Err(ApiError::new(
                status,
                -2,
                "Internal error. Please contact Support for details.",
            )),
            head,
        );
    }
    if decision.drop == Some(DropPhase::Before) {
        lock(&shared.account).counters.dropped_connections += 1;
        connection.cut();
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }

    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return finish(
                &shared,
                "unreadable_body",
                Err(ApiError::unparsable()),
                head,
            )
        }
    };
    let query = Query::parse(parts.uri.query());
    let (template, result) = match route(&parts.method, &below) {
        None => ("unmatched", Err(ApiError::new(404, -1, "Not Found"))),
        Some((route, template)) => {
            if let Route::DcvRecheck(id) = &route {
                check_dns(&shared, &user, id).await;
            }
            (template, dispatch(&shared, &user, route, &query, &bytes))
        }
    };
    let response = finish(&shared, template, result, head);
    if decision.drop == Some(DropPhase::After) {
        lock(&shared.account).counters.dropped_connections += 1;
        connection.cut();
    }
    response
}

/// Before a per-certificate DCV recheck: look up the CNAME/TXT records the certificate's
/// instructions ask for on the configured DNS server (without holding the lock), and validate
/// the domains whose record is there.
async fn check_dns(shared: &Shared, user: &User, id: &str) {
    let (server, timeout, checks) = {
        let account = lock(&shared.account);
        let Some(server) = account
            .dcv
            .dns_server
            .as_deref()
            .and_then(|server| server.parse::<std::net::SocketAddr>().ok())
        else {
            return;
        };
        let Some(certificate) = id
            .parse::<u64>()
            .ok()
            .and_then(|id| account.certificates.get(&id))
            .filter(|_| user.role.manages_ssl())
        else {
            return;
        };
        let checks: Vec<DcvInstruction> = certificate
            .dcv
            .iter()
            .filter(|check| matches!(check.mode.as_str(), "CNAME" | "TXT"))
            .filter(|check| !account.name_validated(&check.domain, certificate.org_id))
            .cloned()
            .collect();
        (
            server,
            std::time::Duration::from_millis(account.dcv.dns_timeout_ms),
            checks,
        )
    };
    let mut passed = Vec::new();
    for check in checks {
        let host = check.host.trim_end_matches('.');
        let found = if check.mode == "TXT" {
            dns_reader::lookup_txt(server, host, timeout)
                .await
                .is_ok_and(|values| values.iter().any(|value| value == &check.point))
        } else {
            dns_reader::lookup_cname(server, host, timeout)
                .await
                .ok()
                .flatten()
                .is_some_and(|target| {
                    target
                        .trim_end_matches('.')
                        .eq_ignore_ascii_case(check.point.trim_end_matches('.'))
                })
        };
        if found {
            passed.push(check.domain);
        }
    }
    if passed.is_empty() {
        return;
    }
    let mut account = lock(&shared.account);
    let now = account.now();
    for domain in passed {
        catalog::validate_domain(&mut account, &domain, now);
    }
}

fn dispatch(
    shared: &Shared,
    user: &User,
    route: Route,
    query: &Query,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let mut account = lock(&shared.account);
    let now = account.now();
    account.tick(now);
    let account = &mut *account;
    match route {
        Route::Types => catalog::types(account, user, query),
        Route::CustomFields => Ok(catalog::custom_fields(account)),
        Route::Enroll => ssl::enroll(account, user, body, now),
        Route::Update => lifecycle::update(account, user, body, query),
        Route::RevokeManual => lifecycle::revoke_manual(account, user, body, now),
        Route::RenewManual(id) => lifecycle::renew_manual(account, user, &id, body, now),
        Route::List => ssl::list(account, user, query, false),
        Route::Count => ssl::list(account, user, query, true),
        Route::Details(id) => ssl::details(account, user, &id, query),
        Route::Delete(id) => lifecycle::delete(account, user, &id),
        Route::Dcv(id) => lifecycle::dcv(account, user, &id, now),
        Route::DcvRecheck(id) => lifecycle::dcv_recheck(account, user, &id, now),
        Route::Collect(id, format) => {
            let format = format.or_else(|| query.get("format").map(str::to_string));
            ssl::collect(account, user, &id, format.as_deref())
        }
        Route::RenewById(id) => lifecycle::renew_by_id(account, user, &id, body, now),
        Route::Renew(renew_id) => lifecycle::renew_by_renew_id(account, user, &renew_id, body, now),
        Route::Replace(id) => lifecycle::replace(account, user, &id, body, now),
        Route::Revoke(id) => lifecycle::revoke(account, user, RevokeTarget::Id(&id), body, now),
        Route::RevokeSerial(serial) => {
            lifecycle::revoke(account, user, RevokeTarget::Serial(&serial), body, now)
        }
        Route::Approve(id) => lifecycle::approve(account, user, &id, body, now),
        Route::Decline(id) => lifecycle::decline(account, user, &id, body, now),
        Route::Organizations => Ok(catalog::organizations(account)),
        Route::Organization(id) => catalog::organization(account, &id),
        Route::Domains => catalog::domains(account, query),
        Route::Domain(id) => catalog::domain(account, &id),
        Route::DcvList => catalog::dcv_list(account, query),
        Route::DcvStatus => catalog::dcv_domain_status(account, body),
        Route::DcvAction(action, method) => {
            catalog::dcv_submit(account, user, &action, &method, body)
        }
    }
}

/// Count and render the answer.
fn finish(
    shared: &Shared,
    template: &str,
    result: Result<Reply, ApiError>,
    head: bool,
) -> Response {
    let status = match &result {
        Ok(Reply::Json(status, _, _)) | Ok(Reply::Empty(status, _)) => *status,
        Ok(Reply::Bytes { .. }) => 200,
        Err(error) => error.status,
    };
    {
        let mut account = lock(&shared.account);
        *account
            .counters
            .requests_by_route
            .entry(template.to_string())
            .or_default() += 1;
        *account
            .counters
            .responses_by_status
            .entry(status)
            .or_default() += 1;
    }
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match result {
        Ok(Reply::Json(_, value, headers)) => {
            let mut response = json_response(status_code, &value);
            add_headers(&mut response, &headers);
            response
        }
        Ok(Reply::Empty(_, headers)) => {
            let mut response = status_code.into_response();
            add_headers(&mut response, &headers);
            response
        }
        Ok(Reply::Bytes {
            content_type,
            file_name,
            bytes,
        }) => (
            status_code,
            [
                (header::CONTENT_TYPE, content_type.to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{file_name}\""),
                ),
            ],
            Body::from(bytes),
        )
            .into_response(),
        Err(error) => json_response(status_code, &error_body(&error)),
    };
    if head {
        *response.body_mut() = Body::empty();
    }
    response
}

fn add_headers(response: &mut Response, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, value);
        }
    }
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        Body::from(bytes),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let template = |method: Method, path: &str| route(&method, path).map(|(_, t)| t);
        assert_eq!(template(Method::GET, "/ssl/v1"), Some("GET /ssl/v1"));
        assert_eq!(template(Method::HEAD, "/ssl/v1"), Some("HEAD /ssl/v1"));
        assert_eq!(
            template(Method::GET, "/ssl/v1/types"),
            Some("GET /ssl/v1/types")
        );
        assert_eq!(
            template(Method::GET, "/ssl/v1/55"),
            Some("GET /ssl/v1/{sslId}")
        );
        assert_eq!(
            template(Method::GET, "/ssl/v2/55"),
            Some("GET /ssl/v1/{sslId}")
        );
        assert_eq!(
            template(Method::POST, "/ssl/v1/revoke/serial/A9%3A3E"),
            Some("POST /ssl/v1/revoke/serial/{serialNumber}")
        );
        assert_eq!(
            template(Method::GET, "/ssl/v1/collect/5/x509CO"),
            Some("GET /ssl/v1/collect/{sslId}/{format}")
        );
        assert_eq!(
            template(Method::POST, "/dcv/v1/validation/submit/domain/txt"),
            Some("POST /dcv/v1/validation/{action}/domain/{method}")
        );
        assert!(template(Method::PUT, "/ssl/v1/enroll").is_none());
        assert_eq!(template(Method::PUT, "/ssl/v1"), Some("PUT /ssl/v1"));
        assert_eq!(
            template(Method::POST, "/ssl/v1/revoke/manual"),
            Some("POST /ssl/v1/revoke/manual")
        );
        assert_eq!(
            template(Method::POST, "/ssl/v1/revoke/12"),
            Some("POST /ssl/v1/revoke/{sslId}")
        );
        assert_eq!(
            template(Method::POST, "/ssl/v1/renew/manual/12"),
            Some("POST /ssl/v1/renew/manual/{sslId}")
        );
        assert!(template(Method::GET, "/dcv/v2/validation").is_none());
    }
}
