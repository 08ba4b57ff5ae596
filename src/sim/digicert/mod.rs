//! A stateful simulator of DigiCert CertCentral's Services API v2, faithful to
//! `../shared/reference/digicert.md`: `X-DC-DEVKEY` keys with roles, products, organizations,
//! domains with validation status, orders moving through `needs_approval → pending → issued`,
//! `reissue_pending`, `revoked`, `canceled`, `expired`, real X.509 certificates from the
//! simulator's own CA, DCV by DNS TXT/CNAME (on a configured DNS server), HTTP file (fetched
//! from the client's web server) and email (approved through `/_sim/approve-email/{id}`),
//! rolling-window rate limits and fault injection.
//!
//! Run it with [`start`] (or `certform sim digicert --listen ADDR --seed FILE`); the API is at
//! [`RunningSim::base_url`] (`http://ADDR/services/v2/`), the simulator's own control endpoints
//! under `/_sim/` (listed in `admin.rs`).
//!
//! # Seed
//!
//! JSON, or TOML with the same keys; every key is optional (`{}` gives three keys `admin`,
//! `orders`, `view-only` (values `sim-admin-key`, `sim-orders-key`, `sim-view-only-key`), the
//! built-in products, organization 112233 "Example Inc" validated OV and EV, and the
//! pre-validated domain `example.com`):
//!
//! ```json
//! {
//!   "random_seed": 42,
//!   "account": {"require_approval": false},
//!   "api_keys": [
//!     {"name": "ci", "key": "test-admin-key", "role": "admin"},
//!     {"name": "bot", "key": "test-orders-key", "role": "orders"},
//!     {"name": "auditor", "key": "test-view-key", "role": "view_only"}
//!   ],
//!   "organizations": [{"id": 112233, "name": "Example Inc",
//!                      "validations": [{"type": "ov", "status": "active"}]}],
//!   "domains": [{"name": "example.com", "organization_id": 112233, "dcv_status": "complete"},
//!               {"name": "new.test", "dcv_status": "pending", "dcv_method": "dns-txt-token"}],
//!   "orders": [{"count": 100, "common_name": "host{n}.example.com", "status": "issued"}],
//!   "limits": {"windows": [{"requests": 100, "seconds": 5}, {"requests": 1000, "seconds": 180}],
//!              "retry_after_header": false},
//!   "limits_time_scale": 1,
//!   "faults": {"error_rate": 0.0, "error_status": 500, "latency_ms": 0,
//!              "latency_jitter_ms": 0, "drop_rate": 0.0, "drop_phase": "after"},
//!   "dcv": {"dns_server": "127.0.0.1:5353", "http_port": 8080,
//!           "http_hosts": {"www.example.net": "127.0.0.1"}, "http_file_name": "fileauth.txt",
//!           "issue_delay_seconds": 0, "default_method": "email"},
//!   "policy": {"max_cert_validity_days": 199, "max_order_validity_years": 3},
//!   "quirks": {"unauthorized_code": "access_denied_invalid_key", "order_domain_name_key": "dns_name"}
//! }
//! ```
//!
//! Roles: `admin` (unrestricted Administrator: may `skip_approval` and approve requests),
//! `orders` (orders, requests, certificates, products), `orders_domains_organizations` (also
//! organizations and domains), `view_only` (any GET), `user_management` (users). Anything else
//! is 403 `access_denied|missing_permission`; `GET /user/me` works for every key.
//!
//! # UNCONFIRMED facts and their switches (`quirks`, `limits`, `dcv`)
//!
//! | fact | default | other shape |
//! | --- | --- | --- |
//! | unknown key | 403 `access_denied_invalid_key` (issue 11 finding 6) | 401 and any code (`quirks.unauthorized_status`, `quirks.unauthorized_code`) |
//! | product `validation_type` | `"OV"` (product info example) | `"ov"` (`quirks.validation_type_case`) |
//! | `dcv_status` in `GET /domain` validations | absent (list example) | present (`quirks.domain_list_dcv_status`) |
//! | order DCV value | the order's random value (`PUT .../dcv-random-value`, current one while valid, 30 days) | also the domain token (`quirks.order_dcv_accepts_domain_token`); a new value per call (`quirks.rotate_dcv_random_value`) |
//! | `Retry-After` on 429 | absent | whole seconds (`limits.retry_after_header`) |
//! | `domains[]` name key in create | `dns_name` | `name` or `both` (`quirks.order_domain_name_key`) |
//! | `check-dcv` subset field | `dns_names_validations` | any name (`quirks.check_dcv_subset_field`) |
//! | HTTP token file | `fileauth.txt` | any (`dcv.http_file_name`) |
//! | `http-token-dynamic` | refused | add to `dcv.methods` |
//! | download by order id | 404 route | served (`quirks.download_by_order`) |
//! | `/certificate/{id}/chain` keys | `intermediates[].subject_common_name/pem` | `Intermediates[].SubjectCommonName/PEM` (`quirks.chain_key_style`) |
//! | duplicate/reissue counts in order info | absent | present (`quirks.order_duplicate_counts`) |
//! | revocation reasons | snake_case (`key_compromise`, ...; else 400 `invalid_param\|revocation_reason`) | camelCase or any (`quirks.revocation_reasons`) |
//! | non-admin `skip_approval` | ignored (request created) | 403 (`quirks.skip_approval_without_admin`) |
//! | `errors` shape | array | single object (`quirks.errors_as_object`) |
//! | empty objects | `{}` | `[]` (`quirks.empty_objects_as_arrays`) |
//! | product names `ssl_ev_basic`, `ssl_ev_securesite_flex`, `ssl_cloud_wildcard` | in the built-in catalogue | a seed's `products` replaces the catalogue |
//!
//! Error codes that the reference does not list (`missing_param|FIELD`,
//! `invalid_param|FIELD`, `invalid_order_status`, `invalid_filter|PROP`, `not_found|domain`,
//! ...) are the simulator's own: clients should act on the HTTP status and the documented codes.

mod admin;
mod api;
mod ca;
mod catalog;
mod dcv;
mod formats;
mod model;
mod orders;
mod query;
mod render;
mod seed;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::routing::any;
use axum::Router;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use seed::{
    default_api_keys, default_products, AccountSeed, ApiKeySeed, CaSeed, DcvSettings, DcvStatus,
    DomainNameKey, DomainSeed, KeyStyle, LetterCase, Limits, OrderSeed, OrganizationSeed,
    OrganizationValidationSeed, Policy, ProductSeed, Quirks, RateWindow, ReasonSpelling, Role,
    Seed, ServerPlatform, SkipApproval, UserSeed, ValidationStatus, ValidationType,
};

pub use crate::sim::faults::{DropPhase, Faults};

use self::api::{lock, Control, Shared};
use crate::sim::listener::{Connection, CuttableListener};
use crate::sim::random::Rng;
use crate::sim::rate_limit::RateLimiter;

pub use crate::sim::error::Error;

/// What the simulator has seen and done, for tests (`GET /_sim/stats` serves the same).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// API requests received (every request outside `/_sim/`).
    pub requests_total: u64,
    /// Requests per route template (`POST /order/certificate/{product}`); refused requests
    /// under `unauthorized`, `rate_limited`, `injected_error`, `unmatched`.
    pub requests_by_route: BTreeMap<String, u64>,
    pub responses_by_status: BTreeMap<u16, u64>,
    pub unauthorized: u64,
    pub rate_limited: u64,
    pub injected_errors: u64,
    pub dropped_connections: u64,
    pub orders_total: u64,
    pub orders_by_status: BTreeMap<String, u64>,
    /// Orders ever placed per common name (seeded orders included).
    pub orders_by_common_name: BTreeMap<String, u64>,
    pub orders_by_alternative_order_id: BTreeMap<String, u64>,
    pub certificates_issued: u64,
    pub dcv_checks: u64,
}

impl Stats {
    /// Common names with more than one order.
    pub fn duplicate_common_names(&self) -> BTreeMap<String, u64> {
        self.orders_by_common_name
            .iter()
            .filter(|(_, count)| **count > 1)
            .map(|(name, count)| (name.clone(), *count))
            .collect()
    }
}

/// An API key of the running simulator. `Debug` does not show the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub name: String,
    pub key: String,
    pub role: Role,
}

impl std::fmt::Debug for ApiKeyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyInfo")
            .field("name", &self.name)
            .field("key", &"***")
            .field("role", &self.role)
            .finish()
    }
}

/// A simulator serving on a socket; dropping it stops the server.
pub struct RunningSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), String>>>,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Start the simulator on `listen` (use port 0 for a free port).
pub async fn start(seed: Seed, listen: SocketAddr) -> Result<RunningSim, Error> {
    seed.validate()?;
    let random_seed = seed.random_seed;
    let mut rng = random_seed.map_or_else(Rng::from_entropy, Rng::new);
    let fault_rng = Rng::new(rng.next_u64() ^ 0xfa17_5eed);
    let limits = seed.limits.clone();
    let time_scale = seed.limits_time_scale;
    let faults = seed.faults.clone();
    let quirks = seed.quirks.clone();
    // Key generation and seeded certificates are CPU work: keep it off the async workers.
    let account = tokio::task::spawn_blocking(move || {
        let now = model::whole_seconds(OffsetDateTime::now_utc());
        let ca = ca::SimCa::new(seed.ca.as_ref(), now)?;
        model::Account::new(&seed, ca, rng)
    })
    .await
    .map_err(|error| Error::Server {
        reason: format!("start-up task failed: {error}"),
    })??;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: listen,
        source,
    })?;
    let shared = Arc::new(Shared {
        account: Mutex::new(account),
        control: Mutex::new(Control {
            limiter: RateLimiter::new(api::windows(&limits, time_scale)),
            limits,
            time_scale,
            faults,
            rng: fault_rng,
        }),
        quirks,
    });
    let app = Router::new()
        .route("/_sim/{*rest}", any(admin::handle))
        .fallback(api::handle)
        .with_state(Arc::clone(&shared));
    let (shutdown, signal) = oneshot::channel::<()>();
    let server = axum::serve(
        CuttableListener::new(listener),
        app.into_make_service_with_connect_info::<Connection>(),
    )
    .with_graceful_shutdown(async move {
        let _ = signal.await;
    });
    let task = tokio::spawn(async move { server.await.map_err(|error| error.to_string()) });
    Ok(RunningSim {
        addr,
        shared,
        shutdown: Some(shutdown),
        task: Some(task),
    })
}

/// Check rate-limit windows: positive counts, periods of at most a year.
pub(crate) fn validate_limits(limits: &Limits) -> Result<(), String> {
    for window in &limits.windows {
        if window.requests == 0 || window.seconds == 0 || window.seconds > 366 * 86_400 {
            return Err(format!(
                "rate-limit window {} requests / {} seconds: both must be positive, the period at most a year",
                window.requests, window.seconds
            ));
        }
    }
    Ok(())
}

fn stats(shared: &Shared) -> Stats {
    let account = lock(&shared.account);
    let counters = &account.counters;
    let mut orders_by_status = BTreeMap::new();
    for order in account.orders.values() {
        *orders_by_status
            .entry(order.status.as_str().to_string())
            .or_default() += 1;
    }
    Stats {
        requests_total: counters.requests_total,
        requests_by_route: counters.requests_by_route.clone(),
        responses_by_status: counters.responses_by_status.clone(),
        unauthorized: counters.unauthorized,
        rate_limited: counters.rate_limited,
        injected_errors: counters.injected_errors,
        dropped_connections: counters.dropped_connections,
        orders_total: account.orders.len() as u64,
        orders_by_status,
        orders_by_common_name: counters.orders_by_common_name.clone(),
        orders_by_alternative_order_id: counters.orders_by_alternative_order_id.clone(),
        certificates_issued: counters.certificates_issued,
        dcv_checks: counters.dcv_checks,
    }
}

impl RunningSim {
    /// The socket the simulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API base URL, with a trailing slash: `http://127.0.0.1:PORT/services/v2/`.
    pub fn base_url(&self) -> String {
        format!("http://{}{}/", self.addr, api::PREFIX)
    }

    /// The control endpoints' base URL: `http://127.0.0.1:PORT/_sim/`.
    pub fn admin_url(&self) -> String {
        format!("http://{}/_sim/", self.addr)
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        stats(&self.shared)
    }

    /// The root CA certificate (PEM) the simulator's chains end in.
    pub fn root_pem(&self) -> String {
        lock(&self.shared.account).ca.root_pem.clone()
    }

    /// The API keys (name, `X-DC-DEVKEY` value, role).
    pub fn api_keys(&self) -> Vec<ApiKeyInfo> {
        lock(&self.shared.account)
            .keys
            .iter()
            .map(|key| ApiKeyInfo {
                name: key.name.clone(),
                key: key.key.clone(),
                role: key.role,
            })
            .collect()
    }

    /// Replace the fault settings.
    pub fn set_faults(&self, faults: Faults) -> Result<(), Error> {
        faults.validate().map_err(|reason| Error::Seed { reason })?;
        lock(&self.shared.control).faults = faults;
        Ok(())
    }

    /// Replace the rate limits (and forget the requests counted so far).
    pub fn set_limits(&self, limits: Limits) -> Result<(), Error> {
        validate_limits(&limits).map_err(|reason| Error::Seed { reason })?;
        let mut control = lock(&self.shared.control);
        let scale = control.time_scale;
        control.limiter.reset(api::windows(&limits, scale));
        control.limits = limits;
        Ok(())
    }

    /// Move the simulator's clock forward (certificates expire, delayed issuance happens).
    /// Returns false, leaving the clock alone, beyond 100 years from real time.
    pub fn advance_clock(&self, by: std::time::Duration) -> bool {
        let mut account = lock(&self.shared.account);
        let seconds = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        if !account.advance_clock(time::Duration::seconds(seconds)) {
            return false;
        }
        let now = account.now();
        account.tick(now);
        true
    }

    /// The simulator's clock now (RFC 3339).
    pub fn now(&self) -> String {
        let now = lock(&self.shared.account).now();
        now.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    /// Set the simulator's clock to `at` (it runs on from there, in step with real time), so
    /// that it agrees with a certform run pinned with `CERTFORM_NOW`. Returns false, leaving
    /// the clock alone, beyond 100 years from real time.
    pub fn set_now(&self, at: time::OffsetDateTime) -> bool {
        let mut account = lock(&self.shared.account);
        if !account.set_clock(at) {
            return false;
        }
        let now = account.now();
        account.tick(now);
        true
    }

    /// Stop serving: finish requests in flight (for up to five seconds), then close.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(std::time::Duration::from_secs(5), &mut task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(Error::Server { reason }),
            Ok(Err(error)) => Err(Error::Server {
                reason: error.to_string(),
            }),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }

    /// Serve until the server stops (it only stops on an error: for `certform sim`).
    pub async fn wait(mut self) -> Result<(), Error> {
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Error::Server { reason }),
            Err(error) => Err(Error::Server {
                reason: error.to_string(),
            }),
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
