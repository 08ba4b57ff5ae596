//! The `CertificateAuthority` trait and its provider-neutral types.
//!
//! Everything above `ca/` speaks only these types; each provider file (`local`, later `acme`,
//! `digicert`, `sectigo`, `sslstore`) speaks its CA's wire format and maps it here. Errors carry
//! a class the executor acts on (retry, wait, give up), never a string to match.

pub mod acme;
pub mod digicert;
pub mod local;
pub mod registry;

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

/// How the executor should treat a CA error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Network trouble, timeouts, 5xx: retry with backoff.
    Transient,
    /// 429 and friends: wait until `retry_after`.
    RateLimited,
    /// The CA refused this request (bad CSR, unknown product, not allowed): do not retry.
    Rejected,
    /// Credentials wrong or lacking permission.
    Auth,
    /// The CA answered something certform does not understand.
    Protocol,
    /// The CA (or this provider) does not support the operation.
    Unsupported,
}

impl From<crate::http::Class> for ErrorClass {
    fn from(class: crate::http::Class) -> Self {
        match class {
            crate::http::Class::Transient => ErrorClass::Transient,
            crate::http::Class::RateLimited => ErrorClass::RateLimited,
            crate::http::Class::Rejected => ErrorClass::Rejected,
            crate::http::Class::Auth => ErrorClass::Auth,
            crate::http::Class::Bug => ErrorClass::Protocol,
        }
    }
}

/// An error from a CA, classified.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CaError {
    pub class: ErrorClass,
    pub message: String,
    /// When the CA said to come back (rate limits).
    pub retry_after: Option<Duration>,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl CaError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
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
        serial: &str,
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
    }
    Ok(accounts)
}
