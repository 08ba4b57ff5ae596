//! The HTTP face of the simulator: `/services/v2/...` with `X-DC-DEVKEY` authentication, key
//! roles, rolling-window rate limits and fault injection, routed to the endpoint functions;
//! answers in CertCentral's shapes.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::catalog;
use super::dcv::{self, Plan};
use super::model::{Account, ApiError, Key, Reply};
use super::orders::{self, RevokeTarget};
use super::query::{percent_decode, Query};
use super::render;
use super::seed::{Limits, Quirks, Role};
use crate::sim::faults::{DropPhase, Faults};
use crate::sim::listener::Connection;
use crate::sim::random::Rng;
use crate::sim::rate_limit::{RateLimiter, Window};

/// Where the API lives, as on `www.digicert.com`.
pub(crate) const PREFIX: &str = "/services/v2";

/// Largest request body read.
const MAX_BODY: usize = 2 * 1024 * 1024;

/// Limits and faults, changeable at run time.
pub(crate) struct Control {
    pub(crate) limiter: RateLimiter,
    pub(crate) limits: Limits,
    /// The windows run this many times faster than real time.
    pub(crate) time_scale: u32,
    pub(crate) faults: Faults,
    pub(crate) rng: Rng,
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub(crate) account: Mutex<Account>,
    pub(crate) control: Mutex<Control>,
    pub(crate) quirks: Quirks,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the state itself is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The windows of `limits`, `time_scale` times shorter.
pub(crate) fn windows(limits: &Limits, time_scale: u32) -> Vec<Window> {
    limits
        .windows
        .iter()
        .map(|window| Window {
            requests: window.requests,
            period: std::time::Duration::from_secs(window.seconds) / time_scale.max(1),
        })
        .collect()
}

/// Which part of the API a route belongs to (what key restrictions are about).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Me,
    Users,
    Products,
    Organizations,
    Domains,
    Orders,
    Certificates,
    Requests,
}

fn allowed(role: Role, area: Area, read_only: bool) -> bool {
    use Area::*;
    match role {
        Role::Admin => true,
        Role::ViewOnly => read_only,
        Role::Orders => matches!(area, Me | Products | Orders | Certificates | Requests),
        Role::OrdersDomainsOrganizations => matches!(
            area,
            Me | Products | Orders | Certificates | Requests | Organizations | Domains
        ),
        Role::UserManagement => matches!(area, Me | Users),
    }
}

enum Route {
    Me,
    Users,
    Products,
    Product(String),
    Organizations,
    Organization(String),
    OrganizationValidation(String),
    Domains,
    Domain(String),
    ValidateToken(String),
    OrderList,
    OrderCreate(String),
    OrderInfo(String),
    StatusChanges,
    Alternate(String),
    Reissue(String),
    CheckDcv(String),
    DcvRandomValue(String),
    OrderRevoke(String),
    OrderStatus(String),
    Download(String, String),
    DownloadByOrder(String, String),
    Chain(String),
    CertificateRevoke(String),
    Requests,
    Request(String),
    RequestStatus(String),
}

/// Match a path (below the prefix) to a route, its template for the stats, and its area.
fn route(method: &Method, path: &str, quirks: &Quirks) -> Option<(Route, &'static str, Area)> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(percent_decode)
        .collect();
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = method == Method::GET;
    let post = method == Method::POST;
    let put = method == Method::PUT;
    let s = |text: &str| text.to_string();
    Some(match parts.as_slice() {
        ["user", "me"] if get => (Route::Me, "GET /user/me", Area::Me),
        ["user"] if get => (Route::Users, "GET /user", Area::Users),
        ["product"] if get => (Route::Products, "GET /product", Area::Products),
        ["product", id] if get => (
            Route::Product(s(id)),
            "GET /product/{name_id}",
            Area::Products,
        ),
        ["organization"] if get => (
            Route::Organizations,
            "GET /organization",
            Area::Organizations,
        ),
        ["organization", id] if get => (
            Route::Organization(s(id)),
            "GET /organization/{id}",
            Area::Organizations,
        ),
        ["organization", id, "validation"] if get => (
            Route::OrganizationValidation(s(id)),
            "GET /organization/{id}/validation",
            Area::Organizations,
        ),
        ["domain"] if get => (Route::Domains, "GET /domain", Area::Domains),
        ["domain", id] if get => (Route::Domain(s(id)), "GET /domain/{id}", Area::Domains),
        ["domain", id, "dcv", "validate-token"] if put => (
            Route::ValidateToken(s(id)),
            "PUT /domain/{id}/dcv/validate-token",
            Area::Domains,
        ),
        ["order", "certificate"] if get => {
            (Route::OrderList, "GET /order/certificate", Area::Orders)
        }
        ["order", "certificate", "status-changes"] if get => (
            Route::StatusChanges,
            "GET /order/certificate/status-changes",
            Area::Orders,
        ),
        ["order", "certificate", id] if get => (
            Route::OrderInfo(s(id)),
            "GET /order/certificate/{id}",
            Area::Orders,
        ),
        ["order", "certificate", product] if post => (
            Route::OrderCreate(s(product)),
            "POST /order/certificate/{product}",
            Area::Orders,
        ),
        ["order", "certificate", id, "reissue"] if post => (
            Route::Reissue(s(id)),
            "POST /order/certificate/{id}/reissue",
            Area::Orders,
        ),
        ["order", "certificate", id, "check-dcv"] if put => (
            Route::CheckDcv(s(id)),
            "PUT /order/certificate/{id}/check-dcv",
            Area::Orders,
        ),
        ["order", "certificate", id, "dcv-random-value"] if put => (
            Route::DcvRandomValue(s(id)),
            "PUT /order/certificate/{id}/dcv-random-value",
            Area::Orders,
        ),
        ["order", "certificate", id, "revoke"] if put => (
            Route::OrderRevoke(s(id)),
            "PUT /order/certificate/{id}/revoke",
            Area::Orders,
        ),
        ["order", "certificate", id, "status"] if put => (
            Route::OrderStatus(s(id)),
            "PUT /order/certificate/{id}/status",
            Area::Orders,
        ),
        ["order", "alternate", id] if get => (
            Route::Alternate(s(id)),
            "GET /order/alternate/{id}",
            Area::Orders,
        ),
        ["certificate", "download", "order", id] if get && quirks.download_by_order => (
            Route::DownloadByOrder(s(id), s("pem_all")),
            "GET /certificate/download/order/{id}",
            Area::Certificates,
        ),
        ["certificate", "download", "order", id, "format", format]
            if get && quirks.download_by_order =>
        {
            (
                Route::DownloadByOrder(s(id), s(format)),
                "GET /certificate/download/order/{id}/format/{format}",
                Area::Certificates,
            )
        }
        ["certificate", id, "download", "format", format] if get => (
            Route::Download(s(id), s(format)),
            "GET /certificate/{id}/download/format/{format}",
            Area::Certificates,
        ),
        ["certificate", id, "chain"] if get => (
            Route::Chain(s(id)),
            "GET /certificate/{id}/chain",
            Area::Certificates,
        ),
        ["certificate", id, "revoke"] if put => (
            Route::CertificateRevoke(s(id)),
            "PUT /certificate/{id}/revoke",
            Area::Certificates,
        ),
        ["request"] if get => (Route::Requests, "GET /request", Area::Requests),
        ["request", id] if get => (Route::Request(s(id)), "GET /request/{id}", Area::Requests),
        ["request", id, "status"] if put => (
            Route::RequestStatus(s(id)),
            "PUT /request/{id}/status",
            Area::Requests,
        ),
        _ => return None,
    })
}

/// Every request below `/services/v2` (and anything else that is not `/_sim`).
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let quirks = &shared.quirks;
    lock(&shared.account).counters.requests_total += 1;

    let path = parts.uri.path();
    let below = match path.strip_prefix(PREFIX) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => {
            return finish(
                &shared,
                "unmatched",
                Err(ApiError::new(
                    404,
                    "not_found|route",
                    "The endpoint does not exist.",
                )),
            )
        }
    };

    // Authentication.
    let key_value = parts
        .headers
        .get("x-dc-devkey")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    let key: Option<Key> = lock(&shared.account).key(&key_value).cloned();
    let Some(key) = key else {
        lock(&shared.account).counters.unauthorized += 1;
        let message = if key_value.is_empty() {
            "The X-DC-DEVKEY header is missing."
        } else {
            "The API key is not valid."
        };
        return finish(
            &shared,
            "unauthorized",
            Err(ApiError::new(
                quirks.unauthorized_status,
                quirks.unauthorized_code.clone(),
                message,
            )),
        );
    };

    // Rate limits, then faults.
    let (limited, decision, retry_after_header) = {
        let mut control = lock(&shared.control);
        let limited = control.limiter.check(&key.key, Instant::now()).err();
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
        let mut response = finish(
            &shared,
            "rate_limited",
            Err(ApiError::new(
                429,
                "request_limit_exceeded",
                "Service unavailable, please limit request volume",
            )),
        );
        if retry_after_header {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        return response;
    }
    let decision = decision.unwrap_or(crate::sim::faults::FaultDecision {
        delay: std::time::Duration::ZERO,
        error: None,
        drop: None,
    });
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    if let Some(status) = decision.error {
        lock(&shared.account).counters.injected_errors += 1;
        let code = if status == 503 {
            "service_unavailable"
        } else {
            "internal_server_error"
        };
        return finish(
            &shared,
            "injected_error",
            Err(ApiError::new(
                status,
                code,
                "An unexpected error occurred (injected by the simulator).",
            )),
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
                Err(ApiError::bad_format(
                    "the body is unreadable or larger than 2 MiB",
                )),
            )
        }
    };
    let query = Query::parse(parts.uri.query());
    let csv = accepts_csv(&parts.headers);
    let (template, result) = match route(&parts.method, below, quirks) {
        None => (
            "unmatched",
            Err(ApiError::new(
                404,
                "not_found|route",
                "The endpoint does not exist.",
            )),
        ),
        Some((route, template, area)) => {
            let read_only = parts.method == Method::GET;
            if allowed(key.role, area, read_only) {
                (
                    template,
                    dispatch(&shared, &key, route, &query, &bytes, csv).await,
                )
            } else {
                (template, Err(ApiError::forbidden()))
            }
        }
    };
    let response = finish(&shared, template, result);
    if decision.drop == Some(DropPhase::After) {
        lock(&shared.account).counters.dropped_connections += 1;
        connection.cut();
    }
    response
}

fn accepts_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("text/csv"))
}

async fn dispatch(
    shared: &Shared,
    key: &Key,
    route: Route,
    query: &Query,
    body: &[u8],
    csv: bool,
) -> Result<Reply, ApiError> {
    // DCV checks look things up on the network: without holding the lock.
    let plan = match &route {
        Route::CheckDcv(id) => {
            let mut account = lock(&shared.account);
            let now = account.now();
            account.tick(now);
            Some(dcv::plan_order(&mut account, id, body, now))
        }
        Route::ValidateToken(id) => {
            let mut account = lock(&shared.account);
            let now = account.now();
            account.tick(now);
            Some(dcv::plan_domain(&mut account, id, now))
        }
        _ => None,
    };
    match plan {
        Some(Plan::Done(result)) => return result,
        Some(Plan::Run(check)) => {
            let outcome = dcv::run(&check).await;
            let mut account = lock(&shared.account);
            let now = account.now();
            return dcv::finish(&mut account, &check, outcome, now);
        }
        None => {}
    }
    let mut account = lock(&shared.account);
    let now = account.now();
    account.tick(now);
    let account = &mut *account;
    match route {
        Route::Me => catalog::me(account, key, now),
        Route::Users => catalog::users(account, now),
        Route::Products => catalog::products(account),
        Route::Product(id) => catalog::product(account, &id),
        Route::Organizations => catalog::organizations(account, query, now),
        Route::Organization(id) => catalog::organization(account, &id, now),
        Route::OrganizationValidation(id) => catalog::organization_validation(account, &id, now),
        Route::Domains => catalog::domains(account, query, now),
        Route::Domain(id) => catalog::domain(account, &id, query, now),
        Route::OrderList => orders::list(account, query, csv, now),
        Route::OrderCreate(product) => orders::create(account, key, &product, body, now),
        Route::OrderInfo(id) => orders::info(account, &id, query, now),
        Route::StatusChanges => orders::status_changes(account, query, now),
        Route::Alternate(id) => orders::alternate(account, &id, query),
        Route::Reissue(id) => orders::reissue(account, key, &id, body, now),
        Route::DcvRandomValue(id) => dcv::random_value(account, &id, now),
        Route::OrderRevoke(id) => orders::revoke(account, key, RevokeTarget::Order(&id), body, now),
        Route::CertificateRevoke(id) => {
            orders::revoke(account, key, RevokeTarget::Certificate(&id), body, now)
        }
        Route::OrderStatus(id) => orders::update_status(account, &id, body, now),
        Route::Download(id, format) => orders::download(account, &id, &format),
        Route::DownloadByOrder(id, format) => orders::download_by_order(account, &id, &format),
        Route::Chain(id) => orders::chain(account, &id),
        Route::Requests => catalog::requests(account, query),
        Route::Request(id) => catalog::request(account, &id),
        Route::RequestStatus(id) => catalog::update_request(account, key, &id, body, now),
        Route::CheckDcv(_) | Route::ValidateToken(_) => Err(ApiError::new(
            500,
            "internal_error",
            "DCV check was not planned.",
        )),
    }
}

/// Count and render the answer.
fn finish(shared: &Shared, template: &str, result: Result<Reply, ApiError>) -> Response {
    let status = match &result {
        Ok(Reply::Json(status, _)) => *status,
        Ok(Reply::Bytes { .. }) => 200,
        Ok(Reply::Empty) => 204,
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
    match result {
        Ok(Reply::Json(_, mut value)) => {
            if shared.quirks.empty_objects_as_arrays {
                render::empty_objects_as_arrays(&mut value);
            }
            json_response(status_code, &value)
        }
        Ok(Reply::Bytes {
            content_type,
            bytes,
        }) => (
            status_code,
            [(header::CONTENT_TYPE, content_type)],
            Body::from(bytes),
        )
            .into_response(),
        Ok(Reply::Empty) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => json_response(status_code, &error_body(&shared.quirks, &error)),
    }
}

/// `{"errors":[{"code","message"}]}` (or a single object, per quirk).
pub(crate) fn error_body(quirks: &Quirks, error: &ApiError) -> Value {
    let entry = json!({"code": error.code, "message": error.message});
    if quirks.errors_as_object {
        json!({"errors": entry})
    } else {
        json!({"errors": [entry]})
    }
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(bytes),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_roles() {
        let quirks = Quirks::default();
        let matched =
            |method: Method, path: &str| route(&method, path, &quirks).map(|(_, t, a)| (t, a));
        assert_eq!(
            matched(Method::GET, "/order/certificate/status-changes").map(|m| m.0),
            Some("GET /order/certificate/status-changes")
        );
        assert_eq!(
            matched(Method::POST, "/order/certificate/ssl_basic").map(|m| m.0),
            Some("POST /order/certificate/{product}")
        );
        assert!(matched(Method::DELETE, "/order/certificate/1").is_none());
        assert!(matched(Method::GET, "/certificate/download/order/1").is_none());
        assert!(allowed(Role::ViewOnly, Area::Orders, true));
        assert!(!allowed(Role::ViewOnly, Area::Orders, false));
        assert!(!allowed(Role::Orders, Area::Domains, true));
        assert!(allowed(
            Role::OrdersDomainsOrganizations,
            Area::Domains,
            false
        ));
        assert!(allowed(Role::UserManagement, Area::Me, true));
        assert!(!allowed(Role::UserManagement, Area::Orders, true));
    }
}
