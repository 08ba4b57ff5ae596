//! The `CertificateAuthority` trait and its provider-neutral types.
//!
//! Everything above `ca/` speaks only these types; each provider file (`local`, later `acme`,
//! `digicert`, `sectigo`, `sslstore`) speaks its CA's wire format and maps it here. Errors carry
//! a class the executor acts on (retry, wait, give up), never a string to match.

pub mod account;
pub mod acme;
pub mod digicert;
pub mod local;
pub mod problem;
pub mod registry;
pub mod sectigo;

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::observed::OrderView;
use crate::spec::{RevocationReason, Validity};

pub use crate::capabilities::{Capabilities, DuplicatePrevention};
pub use account::{AccountInfo, AccountOrder, Credentials, InfoItem, InfoSection, Lineage};

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
    /// The certificate's order options, typed by its CA's kind (product, organization, ...).
    pub options: crate::spec::CaOptions,
    /// How each name will prove control, from the certificate's `dcv` rules, for CAs that
    /// must know it when the order is placed (Sectigo `dcvMode`, The SSL Store
    /// `ApproverEmail`/`*DVIndicator`, DigiCert `dcv_method`). One entry per name, in the
    /// order of `common_name` then `sans`; names no rule covers are absent.
    pub dcv: Vec<DomainValidation>,
    /// The run's clock (pinned by `CERTFORM_NOW` in tests); CAs that issue locally use it.
    pub now: OffsetDateTime,
}

/// How one name of an order proves control, as known when the order is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainValidation {
    /// The name as ordered (`*.example.com` for wildcards).
    pub domain: String,
    pub method: ValidationMethod,
    /// Who approves the email (`Email` only), when the certificate names one; `None` lets
    /// the CA choose among its usual addresses (admin@, hostmaster@, WHOIS, ...).
    pub approver_email: Option<String>,
}

/// The kind of proof a name will give; the CA maps it to its own wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ValidationMethod {
    /// A TXT record (ACME dns-01, DigiCert `dns-txt-token`).
    DnsTxt,
    /// A CNAME record pointing where the CA says (Sectigo `CNAME_CSR_HASH`).
    DnsCname,
    /// A file served over HTTP (ACME http-01, DigiCert `http-token`).
    Http,
    /// An email someone approves.
    Email,
}

impl ValidationMethod {
    /// The method as users write it in config and as messages show it.
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationMethod::DnsTxt => "dns",
            ValidationMethod::DnsCname => "dns-cname",
            ValidationMethod::Http => "http",
            ValidationMethod::Email => "email",
        }
    }
}

/// What `fetch` found: the certificate, or an order that is not issued yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    Issued(IssuedCertificate),
    /// Nothing to collect yet (the order is pending validation, or issued but the certificate
    /// is still being produced): not a failure, the caller waits and asks again later.
    NotYet {
        /// The order's status as the CA reports it.
        status: crate::observed::OrderStatus,
        /// What the CA is waiting for, for messages (`processing`, `pending validation`).
        detail: String,
    },
}

impl Fetched {
    /// The certificate, when there is one to collect.
    pub fn issued(self) -> Option<IssuedCertificate> {
        match self {
            Fetched::Issued(issued) => Some(issued),
            Fetched::NotYet { .. } => None,
        }
    }
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

    /// The CA did not accept the credentials (HTTP 401, DigiCert's 403
    /// `access_denied_invalid_key`, ACME `unauthorized` or `accountDoesNotExist` at the account).
    pub fn is_unauthorized(&self) -> bool {
        self.class == ErrorClass::Auth
            && (self.status == Some(401)
                || matches!(
                    self.problem.as_deref().and_then(Problem::acme_kind),
                    Some(AcmeProblemKind::Unauthorized | AcmeProblemKind::AccountDoesNotExist)
                )
                || self.problem.as_deref().is_some_and(|p| {
                    p.has_digicert_code("invalid_api_key")
                        || p.has_digicert_code(problem::INVALID_KEY_CODE)
                }))
    }

    /// The credentials work but may not do this (HTTP 403).
    pub fn is_forbidden(&self) -> bool {
        self.class == ErrorClass::Auth && self.status == Some(403) && !self.is_unauthorized()
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

    /// The provider's `kind` in config (`digicert`, `acme`, ...), for messages.
    fn kind(&self) -> &'static str {
        "unnamed"
    }

    fn capabilities(&self) -> Capabilities;

    /// The account is configured read-only (`mode = "read-only"`): it refuses every write, so
    /// the executor refuses an order before recording anything for it.
    fn is_read_only(&self) -> bool {
        false
    }

    /// Whether the account is usable, and who its credentials answer as (`ca test`).
    async fn check_credentials(&self) -> Result<Credentials, CaError> {
        Err(unsupported(
            self.name(),
            self.kind(),
            "checking credentials",
        ))
    }

    /// What the account holds, for people (`ca info`).
    async fn account_info(&self) -> Result<AccountInfo, CaError> {
        Err(unsupported(
            self.name(),
            self.kind(),
            "showing account information",
        ))
    }

    /// `account_info` read from the CA even where a cache of it is kept (`ca info --refresh`).
    async fn account_info_refreshed(&self) -> Result<AccountInfo, CaError> {
        self.account_info().await
    }

    /// Every order the account holds, for `import`.
    async fn list_orders(&self) -> Result<Vec<AccountOrder>, CaError> {
        Err(unsupported(self.name(), self.kind(), "listing orders"))
    }

    /// Every order the account holds, for the inventory (unmanaged and duplicate
    /// certificates) at refresh: only where the CA lists them at a bounded cost (one call per
    /// page of orders, never one request per order). `Unsupported` otherwise: refresh then
    /// skips the account silently.
    async fn inventory_orders(&self) -> Result<Vec<AccountOrder>, CaError> {
        Err(unsupported(
            self.name(),
            self.kind(),
            "listing orders for the inventory",
        ))
    }

    /// Check the certificates ordered from this account against what the account allows
    /// (products, validity, organizations, ...) before any order is placed; every problem is
    /// reported at once. Plan calls it; `Unsupported` means there is nothing to check.
    async fn check(&self, specs: &[&crate::spec::CertificateSpec]) -> Result<(), CaError> {
        let _ = specs;
        Err(unsupported(
            self.name(),
            self.kind(),
            "checking certificates",
        ))
    }

    /// Read back many orders at once; the answer has one entry per query, in order
    /// (`None`: the CA holds no such order).
    async fn refresh(&self, queries: &[OrderQuery]) -> Result<Vec<Option<OrderView>>, CaError>;

    /// Place a new order. Before calling this the executor has recorded an intent with
    /// `request.tag`, so a lost answer can be recovered with `refresh` by tag.
    async fn place_order(&self, request: &OrderRequest) -> Result<OrderView, CaError>;

    /// Fetch the issued certificate of an order; `Fetched::NotYet` when there is none to
    /// collect yet (an error means the CA could not answer or the order cannot be issued).
    async fn fetch(&self, order_id: &str) -> Result<Fetched, CaError>;

    /// The issued certificate of an order as `list_orders` described it (for `import`): a CA
    /// whose list carries what a download needs (DigiCert: the certificate id) downloads it
    /// without reading the order first. By default, `fetch`.
    async fn download(&self, order: &AccountOrder) -> Result<Fetched, CaError> {
        self.fetch(&order.order_id).await
    }

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
    ///
    /// The DCV steps (`challenges`, `respond`, `finalize`) get the order as the last step saw
    /// it (`place_order`'s or `refresh`'s answer), so a CA need not read it again: ACME keeps
    /// the order it last read (its authorizations and nonce) and answers from it.
    async fn challenges(&self, order: &OrderView) -> Result<Vec<Challenge>, CaError> {
        let _ = order;
        Ok(Vec::new())
    }

    /// Tell the CA the chosen challenges are in place (ACME: POST the challenge; DigiCert:
    /// check-dcv).
    async fn respond(&self, order: &OrderView, challenges: &[Challenge]) -> Result<(), CaError> {
        let _ = (order, challenges);
        Ok(())
    }

    /// Submit the CSR of an order whose domains are validated (ACME finalize). CAs that take
    /// the CSR with the order answer with the order's current view.
    async fn finalize(&self, order: &OrderView, csr_der: &[u8]) -> Result<OrderView, CaError> {
        let _ = csr_der;
        let order_id = order.order_id.as_str();
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

    /// Whether the CA may offer renewal windows (ACME ARI): refresh asks
    /// [`renewal_window`](Self::renewal_window) only then, so a fleet on a CA without them
    /// costs no task per certificate.
    fn offers_renewal_windows(&self) -> bool {
        false
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
    DnsTxt { name: String, value: String },
    /// Publish a CNAME at `name` pointing to `target` (Sectigo's CNAME validation).
    DnsCname { name: String, target: String },
    /// Serve `content` at `http://<domain><path>`.
    Http { path: String, content: String },
    /// Someone approves an email the CA sent to `approver` (`None`: the CA has not said
    /// which of its addresses it used).
    Email { approver: Option<String> },
}

impl ChallengeKind {
    /// The validation method this challenge is a proof of.
    pub fn method(&self) -> ValidationMethod {
        match self {
            ChallengeKind::DnsTxt { .. } => ValidationMethod::DnsTxt,
            ChallengeKind::DnsCname { .. } => ValidationMethod::DnsCname,
            ChallengeKind::Http { .. } => ValidationMethod::Http,
            ChallengeKind::Email { .. } => ValidationMethod::Email,
        }
    }
}

/// The answer of a CA kind to an account-level operation it does not offer.
pub fn unsupported(account: &str, kind: &str, operation: &str) -> CaError {
    CaError::new(
        ErrorClass::Unsupported,
        format!("`{account}` is a `kind = \"{kind}\"` account, which does not support {operation}"),
    )
}

/// Open CA accounts, by name.
pub type Accounts = BTreeMap<String, std::sync::Arc<dyn CertificateAuthority>>;

/// What a configured CA kind can do, known without contacting it.
pub fn capabilities_of(kind: &crate::config::CaKind) -> Capabilities {
    kind.capabilities()
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
    let context = registry::OpenContext {
        config,
        keys_dir,
        now,
        create,
    };
    let mut accounts: Accounts = BTreeMap::new();
    for (name, settings) in &config.cas {
        if opened.contains_key(name) {
            continue;
        }
        if let Some(ca) = settings.kind.open(name, &context).await? {
            accounts.insert(name.clone(), ca);
        }
        // Plan checks the certificates ordered here against the account (apply opens it
        // once, for its plan, so it checks too).
        if let (false, Some(ca)) = (create, accounts.get(name)) {
            let specs: Vec<&crate::spec::CertificateSpec> = config
                .certificates
                .values()
                .filter(|spec| &spec.ca == name)
                .collect();
            if !specs.is_empty() {
                if let Err(error) = ca.check(&specs).await {
                    if error.class != ErrorClass::Unsupported {
                        return Err(error);
                    }
                }
            }
        }
    }
    Ok(accounts)
}

/// Open the one configured account `name` for an account-level command (`ca test`, `ca info`,
/// `import`): nothing is created, so a local CA or ACME account never used is `None`.
pub async fn open_account(
    config: &crate::config::Config,
    name: &str,
    keys_dir: &std::path::Path,
    now: OffsetDateTime,
) -> Result<Option<std::sync::Arc<dyn CertificateAuthority>>, CaError> {
    let mut only = config.clone();
    only.cas.retain(|ca, _| ca == name);
    // No certificates: opening checks none of them against the account.
    only.certificates.clear();
    let mut opened = open_accounts(&only, keys_dir, now, false).await?;
    Ok(opened.remove(name))
}
