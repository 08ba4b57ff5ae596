//! ACME accounts (RFC 8555) with renewal information (ARI, RFC 9773): Let's Encrypt, Pebble and
//! any other ACME CA, spoken through `instant-acme`.
//!
//! One `AcmeCa` is one ACME account. Its directory under the keys directory (mode 0700) holds:
//!
//! - `account.json` (0600): the account URL and private key (`instant-acme`'s credentials) and
//!   the directory URL it was registered at. Written once, atomically, on first use; later opens
//!   reuse it, so an account bound to an external account (EAB) is registered exactly once.
//! - `orders/<sha256(tag)>.json`: ACME orders carry no client-chosen label, so certform keeps a
//!   local index from its tag to the order URL, written atomically right after `newOrder`
//!   answers. A run killed between the CA's answer and that write leaves an order the index does
//!   not know: that window cannot be closed on the client side (the CA lets the order expire
//!   unused; a new one is placed).
//! - `orders/cert-<sha256(order URL)>.json`: the certificate chain of a valid order, kept at the
//!   first download (for serials, revocation and ARI `replaces`) and whether this account
//!   revoked it (ACME orders stay `valid` after a revocation).
//!
//! HTTP goes through `AcmeHttp`, `instant-acme`'s `HttpClient` over `crate::http` (which bounds
//! every request and retries only the unsigned `GET`/`HEAD`s: a signed POST carries a nonce and
//! is never replayed), and remembers, per task, the status, `Retry-After`, `Link: rel="alternate"` and body of the
//! last answer: `instant-acme` drops them on errors, yet they decide between "the CA has no
//! such order" (404, which Pebble sends without a body) and a failure, carry the wait of a
//! `rateLimited` answer, and point at alternate chains for `preferred_chain`.
//!
//! The account key and the EAB HMAC key are never printed or logged.

mod account;
mod ari;
mod chain;
pub(crate) mod open;
mod orders;
mod problem;
pub mod settings;
mod store;
mod transport;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeStatus, ChallengeType,
    ExternalAccountKey, NewAccount, Order, OrderStatus as AcmeOrderStatus, Problem,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

pub use self::ari::ari_cert_id;
use self::ari::certificate_identifier;
use self::chain::leaf_der;
use self::orders::{map_status, status_name};
use self::problem::{classify, classify_with, is_bad_nonce};
use self::store::{io_error, read_optional};
use self::transport::{builder, last_response, scoped};
use crate::ca::{
    CaError, Capabilities, CertificateAuthority, Challenge, ErrorClass, Fetched, IssuedCertificate,
    OrderQuery, OrderRequest, RevokeOutcome,
};
use crate::http::redact_url;
use crate::observed::OrderView;
use crate::serial::Serial;
use crate::spec::RevocationReason;

const ACCOUNT_FILE: &str = "account.json";
const ORDERS_DIR: &str = "orders";
const LOCK_FILE: &str = ".lock";
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
/// Prefix of ACME problem types (RFC 8555 §6.7).
const PROBLEM_PREFIX: &str = "urn:ietf:params:acme:error:";
/// Attempts per request when the CA keeps answering `badNonce` (on top of `instant-acme`'s own).
const NONCE_ATTEMPTS: u32 = 4;
/// Orders read back at the same time by `refresh`.
const REFRESH_CONCURRENCY: usize = 8;
/// Bounds for the ARI `Retry-After` (RFC 9773 §4.3.2 suggests one minute and one day).
const ARI_MIN_RETRY: Duration = Duration::minutes(1);
const ARI_MAX_RETRY: Duration = Duration::days(1);
/// Used when a CA's renewal information comes without `Retry-After`.
const ARI_DEFAULT_RETRY: Duration = Duration::hours(6);
/// Bound on one HTTP exchange with the CA (connect, answer and body).
const REQUEST_TIMEOUT: StdDuration = StdDuration::from_secs(30);
/// Bound on one attempt of a POST-as-GET (a read the CA answers at once), retried after it.
const READ_TIMEOUT: StdDuration = StdDuration::from_secs(10);

/// An ACME account's settings, resolved from config (secrets already read).
#[derive(Clone, Default)]
pub struct AcmeSettings {
    /// Directory URL (`https://...`).
    pub directory: String,
    /// Contact URIs (`mailto:...`).
    pub contact: Vec<String>,
    /// PEM file with the CA certificate(s) to trust for the directory's TLS, instead of the
    /// platform's trust store (for test CAs such as Pebble; no "insecure" mode exists).
    pub ca_bundle: Option<PathBuf>,
    /// External account binding: key id and the HMAC key bytes. Secret: never printed.
    pub eab: Option<(String, crate::secrets::Secret<Vec<u8>>)>,
    /// ACME profile for new orders (Let's Encrypt profiles extension).
    pub profile: Option<String>,
    /// Common name of the top issuer of the chain to prefer.
    pub preferred_chain: Option<String>,
}

impl fmt::Debug for AcmeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeSettings")
            .field("directory", &redact_url(&self.directory))
            .field("contact", &self.contact)
            .field("ca_bundle", &self.ca_bundle)
            .field("eab", &self.eab)
            .field("profile", &self.profile)
            .field("preferred_chain", &self.preferred_chain)
            .finish()
    }
}

/// How `finalize` waits for the CA: the first delay, its growth factor and the overall bound.
/// A `Retry-After` from the CA overrides the delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polling {
    pub initial_delay: StdDuration,
    pub backoff: f32,
    pub timeout: StdDuration,
}

impl Default for Polling {
    fn default() -> Self {
        Self {
            initial_delay: StdDuration::from_millis(50),
            backoff: 1.5,
            timeout: StdDuration::from_secs(60),
        }
    }
}

/// One ACME account.
pub struct AcmeCa {
    inner: Arc<Inner>,
    polling: Polling,
}

impl fmt::Debug for AcmeCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeCa")
            .field("name", &self.inner.name)
            .field("directory", &redact_url(&self.inner.settings.directory))
            .field("account_url", &self.inner.account_url)
            .field("home", &self.inner.home)
            .finish_non_exhaustive()
    }
}

/// Where an account file is kept instead of `home/account.json` (`[state] keys = "age"`: in
/// the state repository, encrypted). Errors are messages that hold no key material.
pub trait AccountSeal: Send + Sync {
    /// Where the sealed account lives, for messages.
    fn place(&self) -> String;
    /// The account file's bytes; `None` when no account was sealed yet.
    fn load(&self) -> Result<Option<crate::secrets::Secret<Vec<u8>>>, String>;
    /// Seal the account file's bytes.
    fn save(&self, bytes: &[u8]) -> Result<(), String>;
}

struct Inner {
    name: String,
    settings: AcmeSettings,
    /// Keeps the account file instead of `home` (the order index stays in `home`).
    seal: Option<Arc<dyn AccountSeal>>,
    home: PathBuf,
    orders_dir: PathBuf,
    account: Account,
    account_url: String,
    /// Challenge URLs this process answered. A CA may keep an answered challenge `pending`
    /// until its validation finishes (Pebble does, RFC 8555 §7.5.1 notwithstanding), so a
    /// `finalize` right after `respond` must not take that for "never answered".
    answered: std::sync::Mutex<BTreeSet<String>>,
    /// Requests sent to the CA through this account (see `AcmeHttp`).
    sent: Arc<AtomicU64>,
    /// Orders between DCV steps, by URL, as the last step left them (see `order_for`): the
    /// next step reads nothing again, and signs with the nonce the last answer brought.
    orders: std::sync::Mutex<BTreeMap<String, Order>>,
}

/// A certificate to collect, or the status of an order that has none yet.
enum Collectable {
    Ready(CertificateRecord),
    NotYet(AcmeOrderStatus),
}

/// `account.json`. The credentials hold the account key: never print this.
#[derive(Serialize, Deserialize)]
struct AccountFile {
    directory: String,
    #[serde(default)]
    eab_kid: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    registered: OffsetDateTime,
    credentials: AccountCredentials,
}

/// `orders/<sha256(tag)>.json`: where the order placed for a tag lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TagEntry {
    tag: String,
    order_url: String,
    #[serde(with = "time::serde::rfc3339")]
    placed: OffsetDateTime,
}

/// `orders/cert-<sha256(order URL)>.json`: the certificate of a valid order.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CertificateRecord {
    order_url: String,
    certificate_url: Option<String>,
    /// Leaf first, PEM, as the CA served it (normalised line endings).
    chain_pem: String,
    serial: Serial,
    #[serde(with = "time::serde::rfc3339")]
    not_after: OffsetDateTime,
    #[serde(default)]
    revoked: Option<Revocation>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Revocation {
    reason: u8,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
}

/// An authorization of an order, read back.
struct AuthorizationInfo {
    /// As ordered: `*.example.com` for a wildcard authorization.
    domain: String,
    status: AuthorizationStatus,
    challenges: Vec<ChallengeInfo>,
}

struct ChallengeInfo {
    kind: ChallengeType,
    url: String,
    token: String,
    status: ChallengeStatus,
    error: Option<Problem>,
}

/// What an ACME request was doing, for error messages and classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Account,
    Order,
    Read,
    Respond,
    Finalize,
    Download,
    Revoke,
    RenewalInfo,
}

impl Operation {
    fn describe(self) -> &'static str {
        match self {
            Operation::Account => "register or load the account",
            Operation::Order => "place the order",
            Operation::Read => "read the order",
            Operation::Respond => "answer the challenge",
            Operation::Finalize => "finalize the order",
            Operation::Download => "download the certificate",
            Operation::Revoke => "revoke the certificate",
            Operation::RenewalInfo => "read renewal information",
        }
    }
}

impl AcmeCa {
    /// Open the account whose files live in `home`, registering it on first use.
    ///
    /// A new account agrees to the CA's terms, lists `settings.contact` and, when configured,
    /// binds the external account. The credentials are saved before this returns, so the
    /// account is registered once and reused by every later run.
    pub async fn open(
        name: &str,
        settings: AcmeSettings,
        home: PathBuf,
    ) -> Result<AcmeCa, CaError> {
        scoped(Self::open_scoped(name, settings, home, None, false)).await
    }

    /// Like `open`, with the account file kept by `seal`. An account file already in `home`
    /// (before the switch to the seal) is used, and sealed when `migrate` (apply, not plan).
    pub async fn open_sealed(
        name: &str,
        settings: AcmeSettings,
        home: PathBuf,
        seal: Arc<dyn AccountSeal>,
        migrate: bool,
    ) -> Result<AcmeCa, CaError> {
        scoped(Self::open_scoped(name, settings, home, Some(seal), migrate)).await
    }

    async fn open_scoped(
        name: &str,
        settings: AcmeSettings,
        home: PathBuf,
        seal: Option<Arc<dyn AccountSeal>>,
        migrate: bool,
    ) -> Result<AcmeCa, CaError> {
        if !settings.directory.starts_with("https://") {
            return Err(CaError::new(
                ErrorClass::Rejected,
                format!(
                    "ACME account `{name}`: directory `{}` is not an `https://` URL",
                    redact_url(&settings.directory)
                ),
            ));
        }
        crate::atomic_file::create_dir_all(&home, DIR_MODE)
            .and_then(|()| fs::set_permissions(&home, fs::Permissions::from_mode(DIR_MODE)))
            .map_err(|error| io_error(name, "create the account directory", &home, error))?;
        let orders_dir = home.join(ORDERS_DIR);
        crate::atomic_file::create_dir_all(&orders_dir, DIR_MODE)
            .map_err(|error| io_error(name, "create the order directory", &orders_dir, error))?;

        // Two processes opening a new account at once must not both register one.
        let lock_path = home.join(LOCK_FILE);
        let _lock = {
            let path = lock_path.clone();
            tokio::task::spawn_blocking(move || crate::atomic_file::FileLock::acquire(&path))
                .await
                .map_err(|error| {
                    CaError::new(
                        ErrorClass::Protocol,
                        format!("ACME account `{name}`: lock task failed"),
                    )
                    .with_source(error)
                })?
                .map_err(|error| io_error(name, "lock", &lock_path, error))?
        };

        let sent = Arc::new(AtomicU64::new(0));
        let account_path = home.join(ACCOUNT_FILE);
        let sealed = match &seal {
            Some(seal) => seal
                .load()
                .map_err(|reason| seal_error(name, seal.as_ref(), reason))?,
            None => None,
        };
        let stored = match sealed {
            Some(bytes) => Some(bytes.expose().clone()),
            None => {
                let plain = read_optional(&account_path)
                    .map_err(|error| io_error(name, "read", &account_path, error))?;
                if let (Some(seal), Some(bytes), true) = (&seal, &plain, migrate) {
                    seal.save(bytes)
                        .map_err(|reason| seal_error(name, seal.as_ref(), reason))?;
                }
                plain
            }
        };
        let account = match stored {
            Some(bytes) => {
                let file: AccountFile = serde_json::from_slice(&bytes).map_err(|error| {
                    // The serde message may quote the key material: report the position only.
                    CaError::new(
                        ErrorClass::Protocol,
                        format!(
                            "ACME account `{name}`: `{}` is not a valid account file (line {}, column {})",
                            account_path.display(),
                            error.line(),
                            error.column()
                        ),
                    )
                })?;
                if file.directory != settings.directory {
                    return Err(CaError::new(
                        ErrorClass::Rejected,
                        format!(
                            "ACME account `{name}` was registered at `{}` but config names `{}`; \
                             move `{}` away to register a new account there",
                            redact_url(&file.directory),
                            redact_url(&settings.directory),
                            account_path.display()
                        ),
                    ));
                }
                builder(name, &settings, &sent)?
                    .from_credentials(file.credentials)
                    .await
                    .map_err(|error| classify(name, Operation::Account, error))?
            }
            None => {
                let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
                let eab = settings
                    .eab
                    .as_ref()
                    .map(|(kid, key)| ExternalAccountKey::new(kid.clone(), key.expose()));
                let new_account = NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let mut attempt = 1;
                let (account, credentials) = loop {
                    let created = builder(name, &settings, &sent)?
                        .create(&new_account, settings.directory.clone(), eab.as_ref())
                        .await;
                    match created {
                        Ok(created) => break created,
                        // Not processed by the CA: no account was made.
                        Err(error) if is_bad_nonce(&error) && attempt < NONCE_ATTEMPTS => {
                            attempt += 1;
                        }
                        Err(error) => return Err(classify(name, Operation::Account, error)),
                    }
                };
                let file = AccountFile {
                    directory: settings.directory.clone(),
                    eab_kid: settings.eab.as_ref().map(|(kid, _)| kid.clone()),
                    registered: OffsetDateTime::now_utc(),
                    credentials,
                };
                let bytes = serde_json::to_vec_pretty(&file).map_err(|error| {
                    CaError::new(
                        ErrorClass::Protocol,
                        format!("ACME account `{name}`: cannot encode the account file"),
                    )
                    .with_source(error)
                })?;
                match &seal {
                    Some(seal) => seal
                        .save(&bytes)
                        .map_err(|reason| seal_error(name, seal.as_ref(), reason))?,
                    None => crate::atomic_file::write(&account_path, &bytes, FILE_MODE)
                        .map_err(|error| io_error(name, "write", &account_path, error))?,
                }
                tracing::info!(
                    account = name,
                    url = account.id(),
                    "registered ACME account"
                );
                account
            }
        };

        Ok(AcmeCa {
            inner: Arc::new(Inner {
                name: name.to_string(),
                account_url: account.id().to_string(),
                settings,
                seal,
                home,
                orders_dir,
                account,
                answered: std::sync::Mutex::new(BTreeSet::new()),
                sent,
                orders: std::sync::Mutex::new(BTreeMap::new()),
            }),
            polling: Polling::default(),
        })
    }

    /// Change how `finalize` waits (tests use tiny delays; slow CAs want longer bounds).
    pub fn with_polling(mut self, polling: Polling) -> Self {
        self.polling = polling;
        self
    }

    /// The account's URL at the CA (its `kid`).
    pub fn account_url(&self) -> &str {
        &self.inner.account_url
    }

    /// How many requests this account has sent to the CA since it was opened (registration
    /// included; a retry by the HTTP layer counts once). Tests and benchmarks use it.
    pub fn requests_sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// The account's directory under the keys directory.
    pub fn home(&self) -> &Path {
        &self.inner.home
    }

    /// The CA's suggested renewal window for a certificate (ARI, RFC 9773): start, end and
    /// when to ask again (clamped to one minute .. one day).
    ///
    /// `None` when the CA's directory has no `renewalInfo`.
    pub async fn renewal_window(
        &self,
        cert_der: &[u8],
    ) -> Result<Option<(OffsetDateTime, OffsetDateTime, Option<Duration>)>, CaError> {
        let cert_id = ari_cert_id(cert_der)?;
        let identifier = certificate_identifier(&cert_id);
        let inner = &self.inner;
        let (result, last) = scoped(async {
            let result = inner.account.renewal_info(&identifier).await;
            (result, last_response())
        })
        .await;
        let (info, retry) = match result {
            // The header as sent (`instant-acme` turns it into an instant and back).
            Ok((info, retry)) => (
                info,
                last.retry_after
                    .unwrap_or_else(|| Duration::try_from(retry).unwrap_or(ARI_MAX_RETRY)),
            ),
            Err(instant_acme::Error::Unsupported(_)) => return Ok(None),
            // `instant-acme` insists on `Retry-After`, which RFC 9773 only recommends.
            Err(instant_acme::Error::Str(_)) if last.status == Some(200) => {
                let info = serde_json::from_slice::<instant_acme::RenewalInfo>(&last.body)
                    .map_err(|error| {
                        CaError::new(
                            ErrorClass::Protocol,
                            format!(
                                "ACME account `{}`: renewal information for `{cert_id}` cannot be read",
                                inner.name
                            ),
                        )
                        .with_source(error)
                    })?;
                (info, ARI_DEFAULT_RETRY)
            }
            Err(error) => {
                return Err(classify_with(
                    &inner.name,
                    Operation::RenewalInfo,
                    error,
                    &last,
                ))
            }
        };
        let window = info.suggested_window;
        if window.end < window.start {
            return Err(CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{}`: renewal window of `{cert_id}` ends before it starts",
                    inner.name
                ),
            ));
        }
        let retry = retry.clamp(ARI_MIN_RETRY, ARI_MAX_RETRY);
        Ok(Some((window.start, window.end, Some(retry))))
    }
}

/// What this CA can do (also used by the planner, without opening an account).
pub const CAPABILITIES: Capabilities = Capabilities {
    reissue_same_order: false,
    cancel: false,
    revoke: true,
    // `orders/<sha256(tag)>.json`, written right after `newOrder` answers.
    duplicates: crate::capabilities::DuplicatePrevention::LocalIndex,
    cancel_refunds: false,
    honours_validity: false,
    // Let's Encrypt's limit: 300 new orders per account per 3 hours.
    max_orders_per_run: Some(300),
    max_lifetime: &[],
    // An ACME certificate is mostly waiting (validation, polling): eight at once stay far
    // below Let's Encrypt's 20 requests per second per endpoint.
    parallel_certificates: 8,
};

#[async_trait]
impl CertificateAuthority for AcmeCa {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "acme"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    /// The account exists at the CA and the saved key is its key: `newAccount` with
    /// `onlyReturnExisting` (RFC 8555 §7.3.1) answers with the account's URL, creating nothing.
    async fn check_credentials(&self) -> Result<crate::ca::Credentials, CaError> {
        scoped(self.inner.check_account()).await
    }

    /// The account's `orders` list (RFC 8555 §7.1.2.1), served by Pebble; CAs whose account
    /// object names no list (Let's Encrypt) answer `Unsupported`. `valid` orders show as
    /// `issued`.
    async fn list_orders(&self) -> Result<Vec<crate::ca::AccountOrder>, CaError> {
        scoped(self.inner.list_orders()).await
    }

    async fn refresh(&self, queries: &[OrderQuery]) -> Result<Vec<Option<OrderView>>, CaError> {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(REFRESH_CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for (index, query) in queries.iter().enumerate() {
            let inner = Arc::clone(&self.inner);
            let semaphore = Arc::clone(&semaphore);
            let query = query.clone();
            tasks.spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                (index, scoped(inner.refresh_one(&query)).await)
            });
        }
        let mut results: Vec<Option<OrderView>> = vec![None; queries.len()];
        while let Some(joined) = tasks.join_next().await {
            let (index, result) = joined.map_err(|error| {
                CaError::new(
                    ErrorClass::Protocol,
                    format!("ACME account `{}`: refresh task failed", self.inner.name),
                )
                .with_source(error)
            })?;
            if let Some(slot) = results.get_mut(index) {
                *slot = result?;
            }
        }
        Ok(results)
    }

    async fn place_order(&self, request: &OrderRequest) -> Result<OrderView, CaError> {
        scoped(self.inner.place_order(request)).await
    }

    async fn fetch(&self, order_id: &str) -> Result<Fetched, CaError> {
        let inner = &self.inner;
        Ok(match scoped(inner.certificate_of(order_id)).await? {
            Collectable::Ready(record) => Fetched::Issued(IssuedCertificate {
                order_id: order_id.to_string(),
                certificate_id: record.certificate_url,
                chain_pem: record.chain_pem,
            }),
            Collectable::NotYet(status) => Fetched::NotYet {
                status: map_status(status),
                detail: status_name(status).to_string(),
            },
        })
    }

    async fn reissue(&self, order_id: &str, request: &OrderRequest) -> Result<OrderView, CaError> {
        let _ = (order_id, request);
        Err(CaError::new(
            ErrorClass::Unsupported,
            format!(
                "ACME account `{}`: ACME cannot reissue on an existing order; place a new one",
                self.inner.name
            ),
        ))
    }

    async fn revoke(
        &self,
        order_id: &str,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<RevokeOutcome, CaError> {
        scoped(self.inner.revoke(order_id, serial, reason)).await
    }

    async fn cancel(&self, order_id: &str) -> Result<(), CaError> {
        Err(CaError::new(
            ErrorClass::Unsupported,
            format!(
                "ACME account `{}`: ACME has no way to cancel order `{order_id}`; an unused order expires on its own",
                self.inner.name
            ),
        ))
    }

    fn offers_renewal_windows(&self) -> bool {
        true
    }

    async fn renewal_window(
        &self,
        order_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<crate::observed::RenewalWindow>, CaError> {
        // The window is for the certificate this account fetched for the order.
        let Some(record) = self.inner.read_record(order_id)? else {
            return Ok(None);
        };
        let Some(der) = leaf_der(&record.chain_pem) else {
            return Ok(None);
        };
        let Some((start, end, retry_after)) = self.renewal_window(&der).await? else {
            return Ok(None);
        };
        Ok(Some(crate::observed::RenewalWindow {
            serial: record.serial.clone(),
            start,
            end,
            next_check: now + retry_after.unwrap_or(time::Duration::hours(6)),
        }))
    }

    async fn challenges(&self, order: &OrderView) -> Result<Vec<Challenge>, CaError> {
        scoped(self.inner.challenges(&order.order_id)).await
    }

    async fn respond(&self, order: &OrderView, challenges: &[Challenge]) -> Result<(), CaError> {
        scoped(self.inner.respond(&order.order_id, challenges)).await
    }

    async fn finalize(&self, order: &OrderView, csr_der: &[u8]) -> Result<OrderView, CaError> {
        scoped(self.inner.finalize(&order.order_id, csr_der, self.polling)).await
    }
}

#[cfg(test)]
mod tests;

/// The seal could not be read or written: the account is not used (never replaced).
fn seal_error(name: &str, seal: &dyn AccountSeal, reason: String) -> CaError {
    CaError::new(
        ErrorClass::Auth,
        format!(
            "ACME account `{name}`: cannot use the account key at `{}`: {reason}",
            seal.place()
        ),
    )
}
