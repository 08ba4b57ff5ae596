//! A stateful simulator of Sectigo Certificate Manager's REST API (the header-auth flavour on
//! `cert-manager.com/api`), faithful to `../shared/reference/sectigo.md` as corrected by
//! `sectigo-check.md` (which follows Sectigo's own 25.5 REST API reference, "D25"):
//! `login`/`password`/`customerUri` headers, administrators with roles and privileges,
//! certificate profiles with terms and key types, organizations and departments, domains with
//! DCV status, typed custom fields, SSL certificates moving through
//! `Requested → Applied → Issued` (or `Declined`, `Revoked`, `Expired`, `Replaced`, ...), real
//! X.509 certificates from the simulator's own CA, `{code, description}` errors with Sectigo's
//! numeric codes, optional rate limits and fault injection.
//!
//! Run it with [`start`] (or `certform sim sectigo --listen ADDR --seed FILE`); the API is at
//! [`RunningSim::base_url`] (`http://ADDR/api`), the control endpoints under `/_sim/` (listed in
//! `admin.rs`). Like the DigiCert simulator, its clock is real time plus an offset moved
//! through `/_sim/clock`.
//!
//! # Seed
//!
//! JSON, or TOML with the same keys; every key is optional. `{}` gives customer URI
//! `certform-sim`; users `certform-admin` (MRAO), `certform-ssl` (RAO_SSL), `certform-drao`
//! (DRAO_SSL, whose requests wait for approval) and `certform-smime` (RAO_SMIME, no SSL
//! rights), passwords `sim-admin-password`, `sim-ssl-password`, `sim-drao-password`,
//! `sim-smime-password`; profiles 1001 "OV Multi-Domain" (RSA 2048/3072/4096 and EC
//! P-256/P-384, terms 199 and 365 days), 1002 "OV SSL" (RSA only, 199), 1003 "EV
//! Multi-Domain" (199, EV); organization 101 "Example Inc" with department 102 "IT"; domains
//! `example.com` (validated) and `example.net` (not validated); optional custom fields
//! `Cost Center` (text) and `Ticket` (number).
//!
//! ```json
//! {
//!   "random_seed": 42,
//!   "customer_uri": "acme",
//!   "users": [{"login": "api", "password": "secret", "role": "RAO_SSL",
//!              "privileges": ["sslRequest", "sslRenew", "sslRevoke"]}],
//!   "profiles": [{"id": 224, "name": "OV Multi-Domain", "terms": [365],
//!                 "key_types": {"RSA": ["2048"]}, "validation": "OV"}],
//!   "organizations": [{"id": 101, "name": "Example Inc",
//!                      "departments": [{"id": 102, "name": "IT"}]}],
//!   "domains": [{"id": 201, "name": "example.com", "validation": "validated"}],
//!   "custom_fields": [{"id": 1, "name": "Cost Center", "mandatory": true, "input": "TEXT"}],
//!   "certificates": [{"count": 3, "common_name": "host{n}.example.com", "status": "Issued"}],
//!   "workflow": {"approval": "auto", "issue_delay_seconds": 0,
//!                "require_external_requester": false},
//!   "dcv": {"dns_server": "127.0.0.1:5353", "dns_timeout_ms": 2000},
//!   "limits": {"windows": [{"requests": 100, "seconds": 60}], "retry_after_header": false},
//!   "faults": {"error_rate": 0.0, "error_status": 500, "latency_ms": 0,
//!              "latency_jitter_ms": 0, "drop_rate": 0.0, "drop_phase": "after"},
//!   "quirks": {"unauthorized_code": -16, "not_collectable_status": 400}
//! }
//! ```
//!
//! # UNCONFIRMED facts and their switches (`quirks`)
//!
//! | fact | default (documented shape) | other shape |
//! | --- | --- | --- |
//! | 401 body code | -16 "Unknown user" (D25 example) | -970 `unauthorized_code` |
//! | HTTP status of -183 | 400 (mocks) | any 4xx `not_collectable_status` |
//! | code while not ready | -183 | -109, -1400 `not_collectable_code` |
//! | HTTP status of -3 (no privilege) | 400 (HM mock) | 401/403 `forbidden_status` |
//! | `SAApproved` spelling | `SAApproved` (D25) | `SA Approved` (OpenAPI) |
//! | details dates | `MM/dd/yyyy` (D25 example); `?dateFormat=` honoured | `details_date_format` |
//! | list item keys | `sslId`, `commonName` (D25 example) | `full`: + SANs, serial |
//! | `comments` list filter | ignored (not documented) | `list_comments_filter` |
//! | domain `validationStatus` | `VALIDATED` (D25 example) | `title`: `Validated` |
//! | `replace` keeps the id | yes | `replace_keeps_id: false`: old `Replaced`, new id |
//! | `reasonCode` as a string | accepted (coerced) | `strict_reason_code` refuses |
//! | PEM line endings | LF | `crlf` |
//! | delete restriction | imported/discovered only (D25) | `delete_any` |
//!
//! Codes the table lacks are the simulator's own: -1 for unmatched routes (404), for refused
//! deletions and for rate limiting (429, no limits by default); -1112 also for declining a
//! certificate that is no longer pending.

mod admin;
mod api;
mod ca;
mod catalog;
mod lifecycle;
mod model;
mod query;
mod seed;
mod seeded;
mod ssl;

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
    default_custom_fields, default_domains, default_organizations, default_profiles, default_users,
    Approval, CertificateSeed, CustomFieldSeed, DcvSettings, DepartmentSeed, DomainSeed,
    DomainValidation, Limits, OrganizationSeed, Privilege, ProfileSeed, Quirks, RateWindow, Role,
    Seed, UserSeed, Workflow,
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
    /// Requests per route template (`POST /ssl/v1/enroll`); refused requests under
    /// `unauthorized`, `rate_limited`, `injected_error`, `unmatched`.
    pub requests_by_route: BTreeMap<String, u64>,
    pub responses_by_status: BTreeMap<u16, u64>,
    pub unauthorized: u64,
    /// Refusals for a missing privilege (-3).
    pub forbidden: u64,
    pub rate_limited: u64,
    pub injected_errors: u64,
    pub dropped_connections: u64,
    /// Successful `enroll` calls.
    pub enrollments: u64,
    /// Records created per common name (enrollments and renewals).
    pub enrollments_by_common_name: BTreeMap<String, u64>,
    pub renewals: u64,
    pub replacements: u64,
    pub revocations: u64,
    pub approvals: u64,
    pub declines: u64,
    pub deletions: u64,
    pub certificates_issued: u64,
    pub dcv_rechecks: u64,
    pub certificates_total: u64,
    pub certificates_by_status: BTreeMap<String, u64>,
}

impl Stats {
    /// Common names with more than one record created through the API.
    pub fn duplicate_common_names(&self) -> BTreeMap<String, u64> {
        self.enrollments_by_common_name
            .iter()
            .filter(|(_, count)| **count > 1)
            .map(|(name, count)| (name.clone(), *count))
            .collect()
    }
}

/// An API user of the running simulator. `Debug` does not show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub login: String,
    pub password: String,
    pub role: Role,
}

impl std::fmt::Debug for UserInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserInfo")
            .field("login", &self.login)
            .field("password", &"***")
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
    let mut rng = seed.random_seed.map_or_else(Rng::from_entropy, Rng::new);
    let fault_rng = Rng::new(rng.next_u64() ^ 0x5ec7_1905);
    let limits = seed.limits.clone();
    let faults = seed.faults.clone();
    // Key generation and seeded certificates are CPU work: keep it off the async workers.
    let account = tokio::task::spawn_blocking(move || {
        let now = model::whole_seconds(OffsetDateTime::now_utc());
        let ca = ca::SimCa::new(now)?;
        model::Account::new(&seed, ca, rng, now)
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
            limiter: RateLimiter::new(api::windows(&limits)),
            limits,
            faults,
            rng: fault_rng,
        }),
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

fn stats(shared: &Shared) -> Stats {
    let account = lock(&shared.account);
    let counters = &account.counters;
    let mut certificates_by_status = BTreeMap::new();
    for certificate in account.certificates.values() {
        *certificates_by_status
            .entry(certificate.status.name(&account.quirks).to_string())
            .or_default() += 1;
    }
    Stats {
        requests_total: counters.requests_total,
        requests_by_route: counters.requests_by_route.clone(),
        responses_by_status: counters.responses_by_status.clone(),
        unauthorized: counters.unauthorized,
        forbidden: counters.forbidden,
        rate_limited: counters.rate_limited,
        injected_errors: counters.injected_errors,
        dropped_connections: counters.dropped_connections,
        enrollments: counters.enrollments,
        enrollments_by_common_name: counters.enrollments_by_common_name.clone(),
        renewals: counters.renewals,
        replacements: counters.replacements,
        revocations: counters.revocations,
        approvals: counters.approvals,
        declines: counters.declines,
        deletions: counters.deletions,
        certificates_issued: counters.certificates_issued,
        dcv_rechecks: counters.dcv_rechecks,
        certificates_total: account.certificates.len() as u64,
        certificates_by_status,
    }
}

impl RunningSim {
    /// The socket the simulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API base URL, without a trailing slash: `http://127.0.0.1:PORT/api` (the form of
    /// `https://cert-manager.com/api`).
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, api::PREFIX)
    }

    /// The control endpoints' base URL: `http://127.0.0.1:PORT/_sim/`.
    pub fn admin_url(&self) -> String {
        format!("http://{}/_sim/", self.addr)
    }

    /// The `customerUri` header value.
    pub fn customer_uri(&self) -> String {
        lock(&self.shared.account).customer_uri.clone()
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        stats(&self.shared)
    }

    /// The root CA certificate (PEM) the chains end in.
    pub fn root_pem(&self) -> String {
        lock(&self.shared.account).ca.root_pem.clone()
    }

    /// The users (login, password, role).
    pub fn users(&self) -> Vec<UserInfo> {
        lock(&self.shared.account)
            .users
            .iter()
            .map(|user| UserInfo {
                login: user.login.clone(),
                password: user.password.clone(),
                role: user.role,
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
        seed::validate_limits(&limits).map_err(|reason| Error::Seed { reason })?;
        let mut control = lock(&self.shared.control);
        control.limiter.reset(api::windows(&limits));
        control.limits = limits;
        Ok(())
    }

    /// Replace the approval workflow.
    pub fn set_workflow(&self, workflow: Workflow) {
        lock(&self.shared.account).workflow = workflow;
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
                Err(Error::Server {
                    reason: "requests still running after five seconds".to_string(),
                })
            }
        }
    }

    /// Serve until the task ends (Ctrl-C ends the process).
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
