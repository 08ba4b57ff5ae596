//! The `CertificateAuthority` trait and its provider-neutral types.
//!
//! Everything above `ca/` speaks only these types; each provider file (`local`, later `acme`,
//! `digicert`, `sectigo`, `sslstore`) speaks its CA's wire format and maps it here. Errors carry
//! a class the executor acts on (retry, wait, give up), never a string to match.

pub mod acme;
pub mod digicert;
pub mod local;
pub mod problem;

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::observed::OrderView;
use crate::spec::{RevocationReason, Validity};

/// What a CA can do; the planner and executor choose actions from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Can reissue (new key/SANs) on the same order instead of placing a new one.
    pub reissue_same_order: bool,
    /// Supports cancelling pending orders.
    pub cancel: bool,
    /// Supports revocation.
    pub revoke: bool,
}

/// Which order to read back: by the CA's order id, or by the tag certform attached to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderQuery {
    pub order_id: Option<String>,
    pub tag: Option<String>,
}

/// A new order (or a reissue of an existing one).
#[derive(Debug, Clone)]
pub struct OrderRequest {
    /// certform's tag for this order (stored with the order where the CA allows it).
    pub tag: String,
    pub common_name: String,
    pub sans: Vec<String>,
    /// DER-encoded PKCS#10 request, signed by a key already written to `keys_dir`.
    pub csr_der: Vec<u8>,
    pub validity: Validity,
    /// Order this one renews, for CAs with a renewal mechanism.
    pub renewal_of: Option<String>,
    /// CA-specific fields from config (product, organization, ...).
    pub options: BTreeMap<String, String>,
    /// The run's clock (pinned by `CERTFORM_NOW` in tests); CAs that issue locally use it.
    pub now: OffsetDateTime,
}

/// An issued certificate as fetched from the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    pub order_id: String,
    pub certificate_id: Option<String>,
    /// Leaf first, then the intermediates, PEM.
    pub chain_pem: String,
}

/// Outcome of a revocation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked,
    /// The CA queued a request that someone must approve.
    Requested {
        request_id: String,
    },
}

pub use crate::error::ErrorClass;
pub use problem::{AcmeProblemKind, AcmeSubproblem, DigicertProblem, Problem};

/// The error type of this boundary (`ca::Error`); `CaError` is the same type.
pub type Error = CaError;

/// An error from a CA: the class the executor acts on, the HTTP status and the CA's own typed
/// problem when it answered, and a message that says what certform was doing.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CaError {
    pub class: ErrorClass,
    pub message: String,
    /// When the CA said to come back (rate limits).
    pub retry_after: Option<Duration>,
    /// The HTTP status of the CA's answer, when it answered with a failure.
    pub status: Option<u16>,
    /// The CA's account of the failure (ACME problem document, DigiCert `errors[]`), boxed
    /// so that `Result<_, CaError>` stays small.
    pub problem: Option<Box<Problem>>,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl CaError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            retry_after: None,
            status: None,
            problem: None,
            source: None,
        }
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Record the HTTP status the CA answered with.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Record the CA's typed problem.
    pub fn with_problem(mut self, problem: Problem) -> Self {
        self.problem = Some(Box::new(problem));
        self
    }

    /// The CA did not accept the credentials (HTTP 401, ACME `unauthorized` or
    /// `accountDoesNotExist` at the account).
    pub fn is_unauthorized(&self) -> bool {
        self.class == ErrorClass::Auth
            && (self.status == Some(401)
                || matches!(
                    self.problem.as_deref().and_then(Problem::acme_kind),
                    Some(AcmeProblemKind::Unauthorized | AcmeProblemKind::AccountDoesNotExist)
                )
                || self
                    .problem
                    .as_deref()
                    .is_some_and(|p| p.has_digicert_code("invalid_api_key")))
    }

    /// The credentials work but may not do this (HTTP 403).
    pub fn is_forbidden(&self) -> bool {
        self.class == ErrorClass::Auth && self.status == Some(403)
    }

    /// The CA asked certform to slow down (HTTP 429, ACME `rateLimited`).
    pub fn is_rate_limited(&self) -> bool {
        self.class == ErrorClass::RateLimited
            || self.status == Some(429)
            || matches!(
                self.problem.as_deref().and_then(Problem::acme_kind),
                Some(AcmeProblemKind::RateLimited)
            )
    }

    /// What the user can do about it, chosen from the class, status and typed problem.
    pub fn hint(&self) -> Option<String> {
        problem::hint(self)
    }
}

/// A CA account certform can order from.
#[async_trait]
pub trait CertificateAuthority: Send + Sync {
    /// The account's name in config (`[ca.NAME]`).
    fn name(&self) -> &str;

    fn capabilities(&self) -> Capabilities;

    /// Read back many orders at once; the answer has one entry per query, in order
    /// (`None`: the CA holds no such order).
    async fn refresh(&self, queries: &[OrderQuery]) -> Result<Vec<Option<OrderView>>, CaError>;

    /// Place a new order. Before calling this the executor has recorded an intent with
    /// `request.tag`, so a lost answer can be recovered with `refresh` by tag.
    async fn place_order(&self, request: &OrderRequest) -> Result<OrderView, CaError>;

    /// Fetch the issued certificate of an order.
    async fn fetch(&self, order_id: &str) -> Result<IssuedCertificate, CaError>;

    /// Reissue an order with a new CSR/names (only when `reissue_same_order`).
    async fn reissue(&self, order_id: &str, request: &OrderRequest) -> Result<OrderView, CaError>;

    /// After a crash: the reissue of `order_id` that certform asked for under `tag`, when it
    /// reached the CA (the order's current view), else `None`. The executor records an intent
    /// with the tag before every reissue, and asks this before sending a reissue again, so a
    /// lost answer or a killed run never makes a second reissue request.
    ///
    /// The default finds the tag the way `refresh` does, which is right for CAs that keep the
    /// tag of each reissue with the order (local). CAs that cannot reissue in place (ACME)
    /// take a new order carrying the tag instead, found by `refresh`; this answers `None` for
    /// them. CAs that keep the tag elsewhere (DigiCert: the reissue request's comments)
    /// override it.
    async fn find_reissue(&self, order_id: &str, tag: &str) -> Result<Option<OrderView>, CaError> {
        let query = OrderQuery {
            order_id: None,
            tag: Some(tag.to_string()),
        };
        let found = self
            .refresh(std::slice::from_ref(&query))
            .await?
            .into_iter()
            .next()
            .flatten();
        // The tag on another order is a new order placed with it, not a reissue of this one.
        Ok(found.filter(|view| view.order_id == order_id))
    }

    async fn revoke(
        &self,
        order_id: &str,
        serial: &crate::serial::Serial,
        reason: RevocationReason,
    ) -> Result<RevokeOutcome, CaError>;

    async fn cancel(&self, order_id: &str) -> Result<(), CaError>;

    /// The challenges of a pending order: for each domain, every way the CA offers to prove
    /// control (the executor picks one per domain from the certificate's `dcv` rules).
    async fn challenges(&self, order_id: &str) -> Result<Vec<Challenge>, CaError> {
        let _ = order_id;
        Ok(Vec::new())
    }

    /// Tell the CA the chosen challenges are in place (ACME: POST the challenge; DigiCert:
    /// check-dcv).
    async fn respond(&self, order_id: &str, challenges: &[Challenge]) -> Result<(), CaError> {
        let _ = (order_id, challenges);
        Ok(())
    }

    /// Submit the CSR of an order whose domains are validated (ACME finalize). CAs that take
    /// the CSR with the order answer with the order's current view.
    async fn finalize(&self, order_id: &str, csr_der: &[u8]) -> Result<OrderView, CaError> {
        let _ = csr_der;
        let query = OrderQuery {
            order_id: Some(order_id.to_string()),
            tag: None,
        };
        self.refresh(std::slice::from_ref(&query))
            .await?
            .into_iter()
            .next()
            .flatten()
            .ok_or_else(|| CaError::new(ErrorClass::Protocol, format!("no order {order_id}")))
    }

    /// The CA's suggested renewal window for the certificate of an issued order (ACME ARI);
    /// `None` when the CA offers none.
    async fn renewal_window(
        &self,
        order_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<crate::observed::RenewalWindow>, CaError> {
        let _ = (order_id, now);
        Ok(None)
    }

    /// PEM of the trust anchor(s) to publish beside state, when the CA has a private root.
    fn trust_anchor_pem(&self) -> Option<String> {
        None
    }
}

/// One way to prove control of one domain of a pending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// CA-side identifier (ACME: the challenge URL).
    pub id: String,
    /// The domain as ordered (`*.example.com` for wildcards).
    pub domain: String,
    pub kind: ChallengeKind,
    /// The CA's status of this challenge (`pending`, `valid`, ...).
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeKind {
    /// Publish TXT `value` at `name` (ACME dns-01: `_acme-challenge.<domain>`).
    Dns { name: String, value: String },
    /// Serve `content` at `http://<domain><path>`.
    Http { path: String, content: String },
    /// Someone approves an email the CA sent.
    Email,
}

/// Open CA accounts, by name.
pub type Accounts = BTreeMap<String, std::sync::Arc<dyn CertificateAuthority>>;

/// What a configured CA kind can do, known without contacting it.
pub fn capabilities_of(kind: &crate::config::CaKind) -> Capabilities {
    match kind {
        crate::config::CaKind::Local(_) => local::CAPABILITIES,
        crate::config::CaKind::Acme(_) => acme::CAPABILITIES,
        crate::config::CaKind::Digicert(_) => digicert::CAPABILITIES,
    }
}

/// An EAB HMAC key as CAs hand it out: base64url (padding optional; standard base64 accepted).
fn decode_eab_key(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let trimmed = text.trim().trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .ok()
        .filter(|key| !key.is_empty())
}

/// Where the built-in local CA `name` keeps its keys and order database.
pub fn local_ca_home(keys_dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    keys_dir.join("local-ca").join(name)
}

/// Open the configured CA accounts.
///
/// With `create = false` (plan), a local CA that was never used is not created: it is simply
/// absent from the result, and refresh reports nothing for it.
pub async fn open_accounts(
    config: &crate::config::Config,
    keys_dir: &std::path::Path,
    now: OffsetDateTime,
    create: bool,
) -> Result<Accounts, CaError> {
    open_accounts_except(config, keys_dir, now, create, &BTreeMap::new()).await
}

/// Open the configured CA accounts that are not in `opened` (apply: after confirmation, with
/// `create = true`, the accounts its plan did not find), so each account opens once per run.
pub async fn open_accounts_except(
    config: &crate::config::Config,
    keys_dir: &std::path::Path,
    now: OffsetDateTime,
    create: bool,
    opened: &Accounts,
) -> Result<Accounts, CaError> {
    let mut accounts: Accounts = BTreeMap::new();
    for (name, settings) in &config.cas {
        if opened.contains_key(name) {
            continue;
        }
        match &settings.kind {
            crate::config::CaKind::Local(local) => {
                let home = local_ca_home(keys_dir, name);
                if !create && !home.exists() {
                    continue;
                }
                let ca = local::LocalCa::open(name, local, home, now)?;
                accounts.insert(name.clone(), std::sync::Arc::new(ca));
            }
            crate::config::CaKind::Acme(acme_settings) => {
                let home = keys_dir.join("acme").join(name);
                // Plan never registers an account: without one, nothing was ordered from it.
                if !create && !home.join("account.json").exists() {
                    continue;
                }
                let eab = match &acme_settings.eab {
                    Some(eab) => {
                        let text = crate::secrets::resolve(&eab.hmac).map_err(|e| {
                            CaError::new(
                                ErrorClass::Auth,
                                format!("cannot read the EAB key of `{name}`"),
                            )
                            .with_source(e)
                        })?;
                        Some((
                            eab.kid.clone(),
                            decode_eab_key(text.expose())
                                .map(crate::secrets::Secret::new)
                                .ok_or_else(|| {
                                    CaError::new(
                                        ErrorClass::Auth,
                                        format!("the EAB key of `{name}` is not base64url"),
                                    )
                                })?,
                        ))
                    }
                    None => None,
                };
                let settings = acme::AcmeSettings {
                    directory: acme_settings.directory.clone(),
                    contact: acme_settings
                        .contact
                        .iter()
                        .map(|c| format!("mailto:{c}"))
                        .collect(),
                    ca_bundle: acme_settings.ca_bundle.clone(),
                    eab,
                    profile: acme_settings.profile.clone(),
                    preferred_chain: acme_settings.preferred_chain.clone(),
                };
                let ca = acme::AcmeCa::open(name, settings, home).await?;
                accounts.insert(name.clone(), std::sync::Arc::new(ca));
            }
            crate::config::CaKind::Digicert(settings) => {
                let ca = digicert::open(name, settings, keys_dir)?;
                // Plan checks the certificates ordered here against the account (apply opens
                // it once, for its plan, so it checks too).
                if !create {
                    let specs: Vec<&crate::spec::CertificateSpec> = config
                        .certificates
                        .values()
                        .filter(|spec| &spec.ca == name)
                        .collect();
                    ca.check_specs(&specs).await?;
                }
                accounts.insert(name.clone(), std::sync::Arc::new(ca));
            }
        }
    }
    Ok(accounts)
}
