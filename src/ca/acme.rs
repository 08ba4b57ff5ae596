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

pub(crate) mod open;
pub mod settings;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse,
    CertificateIdentifier, ChallengeStatus, ChallengeType, ExternalAccountKey, HttpClient,
    Identifier, NewAccount, NewOrder, Order, OrderStatus as AcmeOrderStatus, Problem, RetryPolicy,
    RevocationRequest,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use crate::ca::{
    CaError, Capabilities, CertificateAuthority, Challenge, ChallengeKind, ErrorClass, Fetched,
    IssuedCertificate, OrderQuery, OrderRequest, RevokeOutcome,
};
use crate::http::redact_url;
use crate::keys;
use crate::observed::{DcvStatus, OrderStatus, OrderView};
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

struct Inner {
    name: String,
    settings: AcmeSettings,
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
        scoped(Self::open_scoped(name, settings, home)).await
    }

    async fn open_scoped(
        name: &str,
        settings: AcmeSettings,
        home: PathBuf,
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
        let account = match read_optional(&account_path)
            .map_err(|error| io_error(name, "read", &account_path, error))?
        {
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
                crate::atomic_file::write(&account_path, &bytes, FILE_MODE)
                    .map_err(|error| io_error(name, "write", &account_path, error))?;
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

impl Inner {
    /// POST-as-GET `url` and read the answer as JSON. `instant-acme` has no call for account
    /// resources, so this reads it as an order and takes the body the HTTP layer kept when it
    /// does not parse as one (as `download_alternate` does).
    async fn post_as_get_json(&self, url: &str) -> Result<serde_json::Value, CaError> {
        let result = self
            .with_nonce_retry(|| self.account.order(url.to_string()))
            .await;
        let last = last_response();
        let unreadable = || {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{}`: `{}` is not the JSON object expected",
                    self.name,
                    redact_url(url)
                ),
            )
        };
        match result {
            Err(instant_acme::Error::Json(_)) if last.status == Some(200) => {
                serde_json::from_slice(&last.body).map_err(|error| unreadable().with_source(error))
            }
            Ok(_) => Err(unreadable()),
            Err(error) => Err(classify_with(&self.name, Operation::Read, error, &last)),
        }
    }

    async fn list_orders(&self) -> Result<Vec<crate::ca::AccountOrder>, CaError> {
        let account = self.post_as_get_json(&self.account_url).await?;
        let Some(list_url) = account.get("orders").and_then(serde_json::Value::as_str) else {
            return Err(crate::ca::unsupported(
                &self.name,
                "acme",
                "listing orders (the CA's account object names no `orders` list)",
            ));
        };
        let list = self.post_as_get_json(list_url).await?;
        let urls: Vec<String> = list
            .get("orders")
            .and_then(serde_json::Value::as_array)
            .map(|urls| {
                urls.iter()
                    .filter_map(serde_json::Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut orders = Vec::with_capacity(urls.len());
        for url in urls {
            let Some(mut order) = self.load_order(&url).await? else {
                continue;
            };
            // The identifiers are in the order's body, which `instant-acme` does not expose.
            let body: serde_json::Value =
                serde_json::from_slice(&last_response().body).unwrap_or_default();
            let common_name = body
                .get("identifiers")
                .and_then(serde_json::Value::as_array)
                .and_then(|ids| ids.first())
                .and_then(|id| id.get("value"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string();
            let status = match order.state().status {
                AcmeOrderStatus::Valid => "issued",
                other => status_name(other),
            };
            orders.push(crate::ca::AccountOrder {
                order_id: url,
                status: status.to_string(),
                common_name,
                not_after: None,
                settings: Vec::new(),
            });
        }
        Ok(orders)
    }

    async fn check_account(&self) -> Result<crate::ca::Credentials, CaError> {
        let name = &self.name;
        let path = self.home.join(ACCOUNT_FILE);
        let bytes = read_optional(&path)
            .map_err(|error| io_error(name, "read", &path, error))?
            .ok_or_else(|| {
                CaError::new(
                    ErrorClass::Rejected,
                    format!(
                        "ACME account `{name}` is not registered: `{}` is missing",
                        path.display()
                    ),
                )
            })?;
        let file: AccountFile = serde_json::from_slice(&bytes).map_err(|error| {
            // The serde message may quote the key material: report the position only.
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{name}`: `{}` is not a valid account file (line {}, column {})",
                    path.display(),
                    error.line(),
                    error.column()
                ),
            )
        })?;
        let der = file.credentials.private_key().clone_key();
        let key = instant_acme::Key::from_pkcs8_der(der.clone_key())
            .map_err(|error| classify(name, Operation::Account, error))?;
        let (account, _) = builder(name, &self.settings, &self.sent)?
            .from_key(
                (key, rustls::pki_types::PrivateKeyDer::Pkcs8(der)),
                self.settings.directory.clone(),
            )
            .await
            .map_err(|error| classify(name, Operation::Account, error))?;
        if account.id() != self.account_url {
            return Err(CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{name}`: the CA knows the key as `{}`, not `{}`",
                    redact_url(account.id()),
                    redact_url(&self.account_url)
                ),
            ));
        }
        Ok(crate::ca::Credentials {
            identity: format!(
                "ACME account `{}` at `{}`",
                redact_url(account.id()),
                redact_url(&self.settings.directory)
            ),
            read_only: false,
        })
    }

    async fn refresh_one(&self, query: &OrderQuery) -> Result<Option<OrderView>, CaError> {
        let order_url = match (&query.order_id, &query.tag) {
            (Some(order_id), _) => order_id.clone(),
            (None, Some(tag)) => match self.tag_entry(tag)? {
                Some(entry) => entry.order_url,
                None => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        match self.load_order(&order_url).await? {
            Some(mut order) => {
                let view = self.view(&mut order).await?;
                self.keep(order);
                Ok(Some(view))
            }
            None => Ok(None),
        }
    }

    async fn place_order(&self, request: &OrderRequest) -> Result<OrderView, CaError> {
        // The same tag again (a retry after a lost answer): adopt the order it already placed.
        if let Some(entry) = self.tag_entry(&request.tag)? {
            if let Some(mut order) = self.load_order(&entry.order_url).await? {
                if order.state().status != AcmeOrderStatus::Invalid {
                    let view = self.view(&mut order).await?;
                    self.keep(order);
                    return Ok(view);
                }
            }
        }

        let mut names: Vec<String> = Vec::new();
        for name in std::iter::once(&request.common_name).chain(&request.sans) {
            if !name.is_empty() && !names.contains(name) {
                names.push(name.clone());
            }
        }
        if names.is_empty() {
            return Err(CaError::new(
                ErrorClass::Rejected,
                format!("ACME account `{}`: the order names no domain", self.name),
            ));
        }
        let identifiers: Vec<Identifier> = names.into_iter().map(Identifier::Dns).collect();
        let replaces = request
            .renewal_of
            .as_deref()
            .and_then(|renewal_of| self.replaces_for(renewal_of));

        let result = self
            .with_nonce_retry(|| {
                let replaces = replaces.as_deref();
                let identifiers = &identifiers;
                async move {
                    let mut new_order = NewOrder::new(identifiers);
                    if let Some(profile) = &self.settings.profile {
                        new_order = new_order.profile(profile);
                    }
                    if let Some(cert_id) = replaces {
                        let with_replaces = new_order.replaces(certificate_identifier(cert_id));
                        match self.account.new_order(&with_replaces).await {
                            // No ARI at this CA: checked before anything is sent, so order
                            // without `replaces`.
                            Err(instant_acme::Error::Unsupported(_)) => {}
                            other => return other,
                        }
                        new_order = NewOrder::new(identifiers);
                        if let Some(profile) = &self.settings.profile {
                            new_order = new_order.profile(profile);
                        }
                    }
                    self.account.new_order(&new_order).await
                }
            })
            .await;
        let mut order = match result {
            Ok(order) => order,
            Err(error) => {
                // The CA created the order (201 + Location) but its answer was not accepted
                // (say, a `replaces` it did not echo): adopt the order rather than lose it.
                let last = last_response();
                match (last.status, last.location.clone()) {
                    (Some(201), Some(order_url)) => {
                        tracing::warn!(
                            account = %self.name,
                            order = %order_url,
                            error = %classify_with(&self.name, Operation::Order, error, &last),
                            "adopting an order whose creation answer was not understood"
                        );
                        self.load_order(&order_url)
                            .await?
                            .ok_or_else(|| {
                                CaError::new(
                                    ErrorClass::Protocol,
                                    format!(
                                        "ACME account `{}`: order `{order_url}` was created but cannot be read",
                                        self.name
                                    ),
                                )
                            })?
                    }
                    _ => return Err(classify_with(&self.name, Operation::Order, error, &last)),
                }
            }
        };

        let entry = TagEntry {
            tag: request.tag.clone(),
            order_url: order.url().to_string(),
            placed: OffsetDateTime::now_utc(),
        };
        let indexed = match self.write_tag_entry(&entry).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(
                    account = %self.name,
                    order = %entry.order_url,
                    %error,
                    "order placed but the tag index could not be written"
                );
                false
            }
        };
        tracing::debug!(account = %self.name, order = %entry.order_url, tag = %request.tag, "placed ACME order");

        match self.view(&mut order).await {
            Ok(view) => {
                self.keep(order);
                Ok(view)
            }
            // Without the index a retry could not find this order: answer what is known.
            Err(_) if !indexed => Ok(OrderView {
                order_id: order.url().to_string(),
                status: map_status(order.state().status),
                serial: None,
                not_after: None,
                dcv: Vec::new(),
            }),
            Err(error) => Err(error),
        }
    }

    async fn challenges(&self, order_id: &str) -> Result<Vec<Challenge>, CaError> {
        let mut order = self.order_for(order_id).await?;
        let authorizations = self.authorizations(&mut order).await?;
        self.keep(order);
        let thumbprint = self.account.key_thumbprint();
        let mut challenges = Vec::new();
        for authorization in authorizations {
            if authorization.status != AuthorizationStatus::Pending {
                continue;
            }
            let bare = authorization
                .domain
                .strip_prefix("*.")
                .unwrap_or(&authorization.domain);
            for challenge in &authorization.challenges {
                let key_authorization = format!("{}.{thumbprint}", challenge.token);
                let kind = match challenge.kind {
                    ChallengeType::Dns01 => ChallengeKind::DnsTxt {
                        name: format!("_acme-challenge.{bare}"),
                        value: URL_SAFE_NO_PAD.encode(Sha256::digest(key_authorization)),
                    },
                    ChallengeType::Http01 => ChallengeKind::Http {
                        path: format!("/.well-known/acme-challenge/{}", challenge.token),
                        content: key_authorization,
                    },
                    _ => continue,
                };
                challenges.push(Challenge {
                    id: challenge.url.clone(),
                    domain: authorization.domain.clone(),
                    kind,
                    status: challenge_status(challenge.status).to_string(),
                });
            }
        }
        Ok(challenges)
    }

    async fn respond(&self, order_id: &str, challenges: &[Challenge]) -> Result<(), CaError> {
        let mut order = self.order_for(order_id).await?;
        // Read every authorization first (retrying bad nonces; none when the order kept from
        // the last step has them); the loop below then works on the cached states.
        let known = self.authorizations(&mut order).await?;
        let wanted: BTreeSet<&str> = challenges.iter().map(|c| c.id.as_str()).collect();
        let offered: BTreeSet<&str> = known
            .iter()
            .flat_map(|authorization| authorization.challenges.iter())
            .map(|challenge| challenge.url.as_str())
            .collect();
        if let Some(unknown) = wanted.iter().find(|id| !offered.contains(*id)) {
            return Err(CaError::new(
                ErrorClass::Rejected,
                format!(
                    "ACME account `{}`: challenge `{unknown}` is not part of order `{order_id}`",
                    self.name
                ),
            ));
        }

        let mut authorizations = order.authorizations();
        while let Some(result) = authorizations.next().await {
            let mut authorization =
                result.map_err(|error| classify(&self.name, Operation::Read, error))?;
            if authorization.status != AuthorizationStatus::Pending {
                continue;
            }
            let Some((kind, status)) = authorization
                .challenges
                .iter()
                .find(|challenge| wanted.contains(challenge.url.as_str()))
                .map(|challenge| (challenge.r#type.clone(), challenge.status))
            else {
                continue;
            };
            if status != ChallengeStatus::Pending {
                continue;
            }
            let Some(mut handle) = authorization.challenge(kind) else {
                continue;
            };
            let url = handle.url.clone();
            let mut attempt = 1;
            loop {
                match handle.set_ready().await {
                    Ok(()) => {
                        if let Ok(mut answered) = self.answered.lock() {
                            answered.insert(url);
                        }
                        break;
                    }
                    Err(error) if is_bad_nonce(&error) && attempt < NONCE_ATTEMPTS => {
                        attempt += 1;
                    }
                    Err(error) => return Err(classify(&self.name, Operation::Respond, error)),
                }
            }
        }
        self.keep(order);
        Ok(())
    }

    async fn finalize(
        &self,
        order_id: &str,
        csr_der: &[u8],
        polling: Polling,
    ) -> Result<OrderView, CaError> {
        let deadline = Instant::now() + polling.timeout;
        let mut order = self.order_for(order_id).await?;

        // Waiting only makes sense once every pending authorization has an answered challenge
        // (a POSTed challenge turns `processing` at once, RFC 8555 §7.5.1).
        if order.state().status == AcmeOrderStatus::Pending {
            let authorizations = self.authorizations(&mut order).await?;
            let answered = self.answered.lock().ok();
            let unanswered: Vec<String> = authorizations
                .into_iter()
                .filter(|authorization| {
                    authorization.status == AuthorizationStatus::Pending
                        && authorization.challenges.iter().all(|challenge| {
                            challenge.status == ChallengeStatus::Pending
                                && !answered
                                    .as_ref()
                                    .is_some_and(|answered| answered.contains(&challenge.url))
                        })
                })
                .map(|authorization| format!("`{}`", authorization.domain))
                .collect();
            drop(answered);
            if !unanswered.is_empty() {
                return Err(CaError::new(
                    ErrorClass::Rejected,
                    format!(
                        "ACME account `{}`: order `{order_id}` cannot be finalized: no challenge was answered for {}",
                        self.name,
                        unanswered.join(", ")
                    ),
                ));
            }
        }

        // Wait until every authorization is valid.
        while order.state().status == AcmeOrderStatus::Pending {
            let policy = retry_policy(polling, deadline, order_id, &self.name, "pending")?;
            match order.poll_ready(&policy).await {
                Ok(_) => {}
                Err(error) if is_bad_nonce(&error) => {}
                // The order turned invalid: explained below.
                Err(_) if order.state().status == AcmeOrderStatus::Invalid => {}
                Err(instant_acme::Error::Timeout(_)) => {
                    return Err(still(order_id, &self.name, "pending", polling.timeout))
                }
                Err(error) => return Err(classify(&self.name, Operation::Read, error)),
            }
        }

        if order.state().status == AcmeOrderStatus::Ready {
            let mut attempt = 1;
            loop {
                match order.finalize_csr(csr_der).await {
                    Ok(()) => break,
                    Err(error) if is_bad_nonce(&error) && attempt < NONCE_ATTEMPTS => {
                        attempt += 1;
                        // The CA may have taken the request after all: look before retrying.
                        self.refresh_order(&mut order).await?;
                        if order.state().status != AcmeOrderStatus::Ready {
                            break;
                        }
                    }
                    Err(error) => return Err(classify(&self.name, Operation::Finalize, error)),
                }
            }
        }

        // Wait for issuance.
        let mut downloaded = None;
        loop {
            match order.state().status {
                AcmeOrderStatus::Valid | AcmeOrderStatus::Invalid => break,
                AcmeOrderStatus::Pending | AcmeOrderStatus::Ready => {
                    return Err(CaError::new(
                        ErrorClass::Protocol,
                        format!(
                            "ACME account `{}`: order `{order_id}` went back to `{}` after finalize",
                            self.name,
                            status_name(order.state().status)
                        ),
                    ));
                }
                AcmeOrderStatus::Processing => {}
            }
            let policy = retry_policy(polling, deadline, order_id, &self.name, "processing")?;
            match order.poll_certificate(&policy).await {
                Ok(chain) => {
                    let alternates = last_response().alternates;
                    downloaded = Some(self.choose_chain(chain, alternates).await);
                    break;
                }
                Err(error) if is_bad_nonce(&error) => {}
                Err(_) if order.state().status == AcmeOrderStatus::Invalid => {}
                Err(instant_acme::Error::Timeout(_)) => {
                    return Err(still(order_id, &self.name, "processing", polling.timeout))
                }
                Err(error) => return Err(classify(&self.name, Operation::Download, error)),
            }
        }

        if order.state().status == AcmeOrderStatus::Invalid {
            return Err(self.invalid_order(&mut order).await);
        }
        if let Some(chain) = downloaded {
            self.store_certificate(&mut order, &chain).await?;
        }
        self.view(&mut order).await
    }

    async fn revoke(
        &self,
        order_id: &str,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<RevokeOutcome, CaError> {
        let mut record = self.issued_record(order_id).await?;
        if *serial != record.serial {
            return Err(CaError::new(
                ErrorClass::Rejected,
                format!(
                    "ACME account `{}`: order `{order_id}` issued serial `{}`, not `{serial}`",
                    self.name, record.serial
                ),
            ));
        }
        if record.revoked.is_some() {
            return Ok(RevokeOutcome::Revoked);
        }
        let leaf = leaf_der(&record.chain_pem).ok_or_else(|| {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{}`: stored chain of order `{order_id}` holds no certificate",
                    self.name
                ),
            )
        })?;
        let result = self
            .with_nonce_retry(|| {
                let leaf = leaf.clone();
                async move {
                    let certificate = leaf.into();
                    self.account
                        .revoke(&RevocationRequest {
                            certificate: &certificate,
                            reason: Some(acme_reason(reason)),
                        })
                        .await
                }
            })
            .await;
        match result {
            Ok(()) => {}
            // Revoked before (a run that died before recording it): the goal is reached.
            Err(instant_acme::Error::Api(problem))
                if problem_type(&problem) == Some("alreadyRevoked") => {}
            Err(error) => return Err(classify(&self.name, Operation::Revoke, error)),
        }
        record.revoked = Some(Revocation {
            reason: reason.code(),
            at: OffsetDateTime::now_utc(),
        });
        self.write_record(&record).await?;
        Ok(RevokeOutcome::Revoked)
    }

    /// The view of an order as certform's model sees it.
    async fn view(&self, order: &mut Order) -> Result<OrderView, CaError> {
        let status = order.state().status;
        let mut view = OrderView {
            order_id: order.url().to_string(),
            status: map_status(status),
            serial: None,
            not_after: None,
            dcv: Vec::new(),
        };
        if status == AcmeOrderStatus::Valid {
            let record = self.record_for(order).await?;
            view.serial = Some(record.serial.clone());
            view.not_after = Some(record.not_after);
            if record.revoked.is_some() {
                view.status = OrderStatus::Revoked;
            }
        } else {
            view.dcv = self
                .authorizations(order)
                .await?
                .into_iter()
                .map(|authorization| DcvStatus {
                    domain: authorization.domain,
                    method: "acme".to_string(),
                    status: authorization_status(authorization.status).to_string(),
                })
                .collect();
        }
        Ok(view)
    }

    /// The stored certificate of a valid order, downloading (and storing) it the first time.
    async fn record_for(&self, order: &mut Order) -> Result<CertificateRecord, CaError> {
        if let Some(record) = self.read_record(order.url())? {
            return Ok(record);
        }
        let mut attempt = 1;
        let chain = loop {
            match order.certificate().await {
                Ok(Some(chain)) => break chain,
                Ok(None) => {
                    return Err(CaError::new(
                        ErrorClass::Transient,
                        format!(
                            "ACME account `{}`: order `{}` is still processing",
                            self.name,
                            order.url()
                        ),
                    ))
                }
                Err(error) if is_bad_nonce(&error) && attempt < NONCE_ATTEMPTS => attempt += 1,
                Err(error) => return Err(classify(&self.name, Operation::Download, error)),
            }
        };
        let alternates = last_response().alternates;
        let chain = self.choose_chain(chain, alternates).await;
        self.store_certificate(order, &chain).await
    }

    /// The default chain, or the first alternate whose top issuer is `preferred_chain`.
    async fn choose_chain(&self, default: String, alternates: Vec<String>) -> String {
        let Some(preferred) = &self.settings.preferred_chain else {
            return default;
        };
        if top_issuer_common_name(&default).as_deref() == Some(preferred.as_str()) {
            return default;
        }
        for url in &alternates {
            match self.download_alternate(url).await {
                Ok(chain) if top_issuer_common_name(&chain).as_deref() == Some(preferred) => {
                    return chain
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(
                    account = %self.name,
                    url = %url,
                    %error,
                    "cannot download an alternate chain"
                ),
            }
        }
        tracing::warn!(
            account = %self.name,
            preferred = %preferred,
            alternates = alternates.len(),
            "no chain ends at the preferred issuer; using the default chain"
        );
        default
    }

    /// POST-as-GET an alternate chain URL. `instant-acme` has no call for that, so this reads
    /// it as an order and takes the body the HTTP layer kept when the PEM does not parse as one.
    async fn download_alternate(&self, url: &str) -> Result<String, CaError> {
        let result = self
            .with_nonce_retry(|| self.account.order(url.to_string()))
            .await;
        let last = last_response();
        match result {
            Err(instant_acme::Error::Json(_)) if last.status == Some(200) => {
                let text = String::from_utf8(last.body.to_vec()).map_err(|_| {
                    CaError::new(
                        ErrorClass::Protocol,
                        format!("ACME account `{}`: chain `{url}` is not text", self.name),
                    )
                })?;
                let (_, pems) = keys::inspect_chain(&text).map_err(|error| {
                    CaError::new(
                        ErrorClass::Protocol,
                        format!("ACME account `{}`: chain `{url}` cannot be read", self.name),
                    )
                    .with_source(error)
                })?;
                Ok(pems.concat())
            }
            Err(error) => Err(classify_with(&self.name, Operation::Download, error, &last)),
            Ok(_) => Err(CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{}`: alternate chain `{url}` is an order",
                    self.name
                ),
            )),
        }
    }

    /// The stored certificate of `order_id`, from disk or the CA; `NotYet` while the order
    /// is pending, ready or processing.
    async fn certificate_of(&self, order_id: &str) -> Result<Collectable, CaError> {
        if let Some(record) = self.read_record(order_id)? {
            return Ok(Collectable::Ready(record));
        }
        let mut order = self.require_order(order_id).await?;
        match order.state().status {
            AcmeOrderStatus::Valid => self.record_for(&mut order).await.map(Collectable::Ready),
            AcmeOrderStatus::Invalid => Err(self.invalid_order(&mut order).await),
            status => Ok(Collectable::NotYet(status)),
        }
    }

    /// The stored certificate of `order_id`, or an error when it cannot be collected now.
    async fn issued_record(&self, order_id: &str) -> Result<CertificateRecord, CaError> {
        match self.certificate_of(order_id).await? {
            Collectable::Ready(record) => Ok(record),
            Collectable::NotYet(status) => Err(CaError::new(
                ErrorClass::Rejected,
                format!(
                    "ACME account `{}`: order `{order_id}` is `{}`, not issued",
                    self.name,
                    status_name(status)
                ),
            )),
        }
    }

    /// The live order `order_id` as the last step left it (its authorizations read, its
    /// nonce unspent), else read from the CA. The caller hands it back with `keep`.
    async fn order_for(&self, order_id: &str) -> Result<Order, CaError> {
        let kept = self
            .orders
            .lock()
            .ok()
            .and_then(|mut orders| orders.remove(order_id));
        match kept {
            Some(order) => Ok(order),
            None => self.require_order(order_id).await,
        }
    }

    /// Keep a live order for the next DCV step, while it has one (pending, ready or
    /// processing); an issued or invalid order is dropped.
    fn keep(&self, mut order: Order) {
        if matches!(
            order.state().status,
            AcmeOrderStatus::Valid | AcmeOrderStatus::Invalid
        ) {
            return;
        }
        if let Ok(mut orders) = self.orders.lock() {
            orders.insert(order.url().to_string(), order);
        }
    }

    async fn store_certificate(
        &self,
        order: &mut Order,
        chain: &str,
    ) -> Result<CertificateRecord, CaError> {
        let (info, pems) = keys::inspect_chain(chain).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{}`: the certificate of order `{}` cannot be read",
                    self.name,
                    order.url()
                ),
            )
            .with_source(error)
        })?;
        let record = CertificateRecord {
            order_url: order.url().to_string(),
            certificate_url: order_certificate_url(order),
            chain_pem: pems.concat(),
            serial: info.serial,
            not_after: info.not_after,
            revoked: None,
        };
        self.write_record(&record).await?;
        Ok(record)
    }

    /// The `replaces` certID for a renewal of `renewal_of` (a certID or an order URL whose
    /// certificate is stored here).
    fn replaces_for(&self, renewal_of: &str) -> Option<String> {
        if looks_like_cert_id(renewal_of) {
            return Some(renewal_of.to_string());
        }
        let record = self.read_record(renewal_of).ok().flatten()?;
        let der = leaf_der(&record.chain_pem)?;
        ari_cert_id(&der).ok()
    }

    /// Why an invalid order failed: its own problem, or its failed authorizations'.
    async fn invalid_order(&self, order: &mut Order) -> CaError {
        // Authorizations cached on an order kept between steps predate the failure: read the
        // order again so they are read afresh (only on this failure path).
        let mut fresh = self.load_order(order.url()).await.ok().flatten();
        let order = match fresh.as_mut() {
            Some(fresh) => fresh,
            None => order,
        };
        let mut reasons = Vec::new();
        let mut first: Option<crate::ca::Problem> = None;
        if let Some(problem) = &order.state().error {
            let typed = typed_problem(problem);
            reasons.push(typed.describe());
            first = Some(typed);
        }
        if let Ok(authorizations) = self.authorizations(order).await {
            for authorization in authorizations {
                if authorization.status != AuthorizationStatus::Invalid {
                    continue;
                }
                for challenge in &authorization.challenges {
                    if let Some(problem) = &challenge.error {
                        let typed = typed_problem(problem);
                        reasons.push(format!("`{}`: {}", authorization.domain, typed.describe()));
                        first.get_or_insert(typed);
                    }
                }
            }
        }
        if reasons.is_empty() {
            reasons.push("the CA gave no reason".to_string());
        }
        let error = CaError::new(
            ErrorClass::Rejected,
            format!(
                "ACME account `{}`: order `{}` is invalid: {}",
                self.name,
                order.url(),
                reasons.join("; ")
            ),
        );
        match first {
            Some(problem) => error.with_problem(problem),
            None => error,
        }
    }

    /// Read every authorization of `order` (retrying bad nonces).
    async fn authorizations(&self, order: &mut Order) -> Result<Vec<AuthorizationInfo>, CaError> {
        let mut attempt = 1;
        loop {
            match collect_authorizations(order).await {
                Ok(list) => return Ok(list),
                Err(error) if is_bad_nonce(&error) && attempt < NONCE_ATTEMPTS => attempt += 1,
                Err(error) => return Err(classify(&self.name, Operation::Read, error)),
            }
        }
    }

    async fn refresh_order(&self, order: &mut Order) -> Result<(), CaError> {
        let mut attempt = 1;
        loop {
            match order.refresh().await {
                Ok(_) => return Ok(()),
                Err(error) if is_bad_nonce(&error) && attempt < NONCE_ATTEMPTS => attempt += 1,
                Err(error) => return Err(classify(&self.name, Operation::Read, error)),
            }
        }
    }

    /// Read an order by URL; `None` when the CA does not know it (404) or the id is no URL.
    async fn load_order(&self, order_url: &str) -> Result<Option<Order>, CaError> {
        if !order_url.starts_with("https://") || order_url.contains(char::is_whitespace) {
            return Ok(None);
        }
        let result = self
            .with_nonce_retry(|| self.account.order(order_url.to_string()))
            .await;
        match result {
            Ok(order) => Ok(Some(order)),
            // 404 on the order itself (Pebble sends it without a body, Boulder with one).
            Err(instant_acme::Error::Api(_)) | Err(instant_acme::Error::Json(_))
                if last_response().status == Some(404) =>
            {
                Ok(None)
            }
            Err(instant_acme::Error::InvalidUri(_)) | Err(instant_acme::Error::Http(_)) => Ok(None),
            Err(error) => Err(classify(&self.name, Operation::Read, error)),
        }
    }

    async fn require_order(&self, order_id: &str) -> Result<Order, CaError> {
        self.load_order(order_id).await?.ok_or_else(|| {
            CaError::new(
                ErrorClass::Rejected,
                format!(
                    "ACME account `{}`: the CA has no order `{order_id}`",
                    self.name
                ),
            )
        })
    }

    /// Run `call` again while the CA answers `badNonce` (a request it did not process).
    async fn with_nonce_retry<T, F, Fut>(&self, mut call: F) -> Result<T, instant_acme::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, instant_acme::Error>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Err(error) if is_bad_nonce(&error) && attempt < NONCE_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    fn tag_path(&self, tag: &str) -> PathBuf {
        self.orders_dir
            .join(format!("{}.json", keys::sha256_hex(tag.as_bytes())))
    }

    fn record_path(&self, order_url: &str) -> PathBuf {
        self.orders_dir.join(format!(
            "cert-{}.json",
            keys::sha256_hex(order_url.as_bytes())
        ))
    }

    fn tag_entry(&self, tag: &str) -> Result<Option<TagEntry>, CaError> {
        let path = self.tag_path(tag);
        let entry: Option<TagEntry> = self.read_json(&path)?;
        Ok(entry.filter(|entry| entry.tag == tag))
    }

    async fn write_tag_entry(&self, entry: &TagEntry) -> Result<(), CaError> {
        self.write_json(self.tag_path(&entry.tag), entry).await
    }

    fn read_record(&self, order_url: &str) -> Result<Option<CertificateRecord>, CaError> {
        let record: Option<CertificateRecord> = self.read_json(&self.record_path(order_url))?;
        Ok(record.filter(|record| record.order_url == order_url))
    }

    async fn write_record(&self, record: &CertificateRecord) -> Result<(), CaError> {
        self.write_json(self.record_path(&record.order_url), record)
            .await
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<Option<T>, CaError> {
        let Some(bytes) =
            read_optional(path).map_err(|error| io_error(&self.name, "read", path, error))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{}`: `{}` cannot be read",
                    self.name,
                    path.display()
                ),
            )
            .with_source(error)
        })
    }

    /// Write atomically (fsyncs included) on a blocking thread: with many certificates in
    /// flight, fsyncs on the runtime's few worker threads would stall every other request.
    async fn write_json<T: Serialize>(&self, path: PathBuf, value: &T) -> Result<(), CaError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{}`: cannot encode `{}`",
                    self.name,
                    path.display()
                ),
            )
            .with_source(error)
        })?;
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || {
            crate::atomic_file::write(&target, &bytes, FILE_MODE)
        })
        .await
        .unwrap_or_else(|error| Err(io::Error::other(error)));
        written.map_err(|error| io_error(&self.name, "write", &path, error))
    }
}

/// The ARI certificate identifier (RFC 9773 §4.1) of a DER certificate:
/// `base64url(AKI keyIdentifier) "." base64url(serial content octets)`, both unpadded.
pub fn ari_cert_id(cert_der: &[u8]) -> Result<String, CaError> {
    let (_, certificate) = X509Certificate::from_der(cert_der).map_err(|error| {
        CaError::new(
            ErrorClass::Protocol,
            "certificate for the ARI identifier cannot be parsed",
        )
        .with_source(error)
    })?;
    let key_identifier = certificate
        .extensions()
        .iter()
        .find_map(|extension| match extension.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        })
        .ok_or_else(|| {
            CaError::new(
                ErrorClass::Protocol,
                "certificate has no authority key identifier; ARI needs one",
            )
        })?;
    Ok(cert_id_from_parts(
        key_identifier.0,
        certificate.raw_serial(),
    ))
}

/// certID from the AKI `keyIdentifier` bytes and the serial's DER content octets.
fn cert_id_from_parts(key_identifier: &[u8], serial: &[u8]) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(key_identifier),
        URL_SAFE_NO_PAD.encode(serial)
    )
}

fn certificate_identifier(cert_id: &str) -> CertificateIdentifier<'static> {
    let (aki, serial) = cert_id.split_once('.').unwrap_or((cert_id, ""));
    CertificateIdentifier {
        authority_key_identifier: Cow::Owned(aki.to_string()),
        serial: Cow::Owned(serial.to_string()),
    }
}

fn looks_like_cert_id(text: &str) -> bool {
    let base64url = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    };
    match text.split_once('.') {
        Some((aki, serial)) => base64url(aki) && base64url(serial),
        None => false,
    }
}

/// An account builder whose HTTP client is `AcmeHttp`.
fn builder(
    name: &str,
    settings: &AcmeSettings,
    sent: &Arc<AtomicU64>,
) -> Result<instant_acme::AccountBuilder, CaError> {
    let http =
        AcmeHttp::new(name, settings.ca_bundle.as_deref(), Arc::clone(sent)).map_err(|error| {
            let message = match &settings.ca_bundle {
                Some(bundle) => format!(
                    "ACME account `{name}`: CA bundle `{}` cannot be used",
                    bundle.display()
                ),
                None => {
                    format!(
                        "ACME account `{name}`: cannot set up TLS with the system's trust store"
                    )
                }
            };
            let mut failure = CaError::new(ErrorClass::Rejected, message);
            failure.source = Some(Box::new(error));
            failure
        })?;
    Ok(Account::builder_with_http(Box::new(http)))
}

/// What the HTTP layer saw of the last answer in the current task.
#[derive(Debug, Clone, Default)]
struct LastResponse {
    status: Option<u16>,
    retry_after: Option<Duration>,
    /// `Link: <...>;rel="alternate"` targets, absolute.
    alternates: Vec<String>,
    /// `Location` (where a created resource lives).
    location: Option<String>,
    body: Bytes,
}

tokio::task_local! {
    static LAST_RESPONSE: RefCell<LastResponse>;
}

/// Run `future` with its own record of the last HTTP answer (see `last_response`).
async fn scoped<F: Future>(future: F) -> F::Output {
    LAST_RESPONSE
        .scope(RefCell::new(LastResponse::default()), future)
        .await
}

/// The last HTTP answer seen in this task's `scoped` call (empty outside one).
fn last_response() -> LastResponse {
    LAST_RESPONSE
        .try_with(|last| last.borrow().clone())
        .unwrap_or_default()
}

/// The HTTPS client `instant-acme` sends through: `crate::http`, trusting either the account's
/// `ca_bundle` (only it) or the platform's verifier. Every exchange is bounded by
/// `REQUEST_TIMEOUT` and leaves its status, headers and body in `LAST_RESPONSE`.
///
/// A POST-as-GET (an empty JWS payload: a read, RFC 8555 §6.3) is idempotent, so it is bounded
/// by the shorter `read_timeout` and may be sent again by the HTTP layer's one retry policy: a
/// CA that never answers one read (Pebble under concurrent reads) costs `read_timeout`, not a
/// hung run. A repeated read whose nonce the CA already spent answers `badNonce` with a fresh
/// nonce, which `instant-acme` then signs again with. Every other POST is sent once.
struct AcmeHttp {
    client: crate::http::Client,
    read_timeout: StdDuration,
    /// Requests `instant-acme` sent (a retry by the HTTP layer counts once), for
    /// `AcmeCa::requests_sent`.
    sent: Arc<AtomicU64>,
}

impl AcmeHttp {
    fn new(
        name: &str,
        ca_bundle: Option<&Path>,
        sent: Arc<AtomicU64>,
    ) -> Result<Self, crate::http::Error> {
        let mut options = crate::http::Options::new(name);
        options.trust = match ca_bundle {
            Some(path) => crate::http::Trust::Only(path.to_path_buf()),
            None => crate::http::Trust::System,
        };
        options.timeout = REQUEST_TIMEOUT;
        Self::with_options(options, READ_TIMEOUT, sent)
    }

    fn with_options(
        options: crate::http::Options,
        read_timeout: StdDuration,
        sent: Arc<AtomicU64>,
    ) -> Result<Self, crate::http::Error> {
        Ok(Self {
            client: crate::http::Client::new(options)?,
            read_timeout,
            sent,
        })
    }
}

/// Whether a JWS request body is a POST-as-GET: its payload is the empty string.
fn is_post_as_get(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Jws<'a> {
        #[serde(borrow)]
        payload: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<Jws<'_>>(body)
        .ok()
        .and_then(|jws| jws.payload)
        .is_some_and(|payload| payload.is_empty())
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        let sent = Arc::clone(&self.sent);
        Box::pin(async move {
            let _ = LAST_RESPONSE.try_with(|last| *last.borrow_mut() = LastResponse::default());
            let (parts, body) = request.into_parts();
            let url = parts.uri.to_string();
            // A request body is already in memory: this only unwraps it.
            let body = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX)
                .await
                .map_err(|error| instant_acme::Error::Other(Box::new(error)))?;
            let read = parts.method == http::Method::POST && is_post_as_get(&body);
            let mut request = crate::http::Request::new(parts.method, url.clone())
                .headers(parts.headers)
                .body(body);
            if read {
                request = request.retry(true).timeout(read_timeout);
            }
            sent.fetch_add(1, Ordering::Relaxed);
            let response = client
                .send(request)
                .await
                .map_err(|error| instant_acme::Error::Other(Box::new(error)))?;
            let seen = LastResponse {
                status: Some(response.status.as_u16()),
                retry_after: response
                    .retry_after()
                    .and_then(|wait| Duration::try_from(wait).ok()),
                alternates: response
                    .headers
                    .get_all(http::header::LINK)
                    .iter()
                    .filter_map(|value| value.to_str().ok())
                    .flat_map(|value| alternate_links(value, &url))
                    .collect(),
                location: response
                    .headers
                    .get(http::header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_string),
                body: response.body.clone(),
            };
            let _ = LAST_RESPONSE.try_with(|last| *last.borrow_mut() = seen);
            let mut answer = http::Response::new(());
            *answer.status_mut() = response.status;
            *answer.headers_mut() = response.headers;
            let (parts, ()) = answer.into_parts();
            Ok(BytesResponse {
                parts,
                body: Box::new(response.body),
            })
        })
    }
}

async fn collect_authorizations(
    order: &mut Order,
) -> Result<Vec<AuthorizationInfo>, instant_acme::Error> {
    let mut list = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(result) = authorizations.next().await {
        let authorization = result?;
        list.push(AuthorizationInfo {
            domain: authorization.identifier().to_string(),
            status: authorization.status,
            challenges: authorization
                .challenges
                .iter()
                .map(|challenge| ChallengeInfo {
                    kind: challenge.r#type.clone(),
                    url: challenge.url.clone(),
                    token: challenge.token.clone(),
                    status: challenge.status,
                    error: challenge.error.clone(),
                })
                .collect(),
        });
    }
    Ok(list)
}

fn retry_policy(
    polling: Polling,
    deadline: Instant,
    order_id: &str,
    name: &str,
    waiting_in: &str,
) -> Result<RetryPolicy, CaError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(still(order_id, name, waiting_in, polling.timeout));
    }
    Ok(RetryPolicy::new()
        .initial_delay(polling.initial_delay)
        .backoff(polling.backoff)
        .timeout(remaining))
}

fn still(order_id: &str, name: &str, status: &str, timeout: StdDuration) -> CaError {
    CaError::new(
        ErrorClass::Transient,
        format!(
            "ACME account `{name}`: order `{order_id}` is still `{status}` after {}s",
            timeout.as_secs()
        ),
    )
}

fn order_certificate_url(order: &mut Order) -> Option<String> {
    order.state().certificate.clone()
}

fn map_status(status: AcmeOrderStatus) -> OrderStatus {
    match status {
        AcmeOrderStatus::Pending | AcmeOrderStatus::Processing => OrderStatus::Pending,
        AcmeOrderStatus::Ready => OrderStatus::Ready,
        AcmeOrderStatus::Valid => OrderStatus::Issued,
        AcmeOrderStatus::Invalid => OrderStatus::Rejected,
    }
}

fn status_name(status: AcmeOrderStatus) -> &'static str {
    match status {
        AcmeOrderStatus::Pending => "pending",
        AcmeOrderStatus::Ready => "ready",
        AcmeOrderStatus::Processing => "processing",
        AcmeOrderStatus::Valid => "valid",
        AcmeOrderStatus::Invalid => "invalid",
    }
}

fn authorization_status(status: AuthorizationStatus) -> &'static str {
    match status {
        AuthorizationStatus::Pending => "pending",
        AuthorizationStatus::Valid => "valid",
        AuthorizationStatus::Invalid => "invalid",
        AuthorizationStatus::Revoked => "revoked",
        AuthorizationStatus::Expired => "expired",
        AuthorizationStatus::Deactivated => "deactivated",
    }
}

fn challenge_status(status: ChallengeStatus) -> &'static str {
    match status {
        ChallengeStatus::Pending => "pending",
        ChallengeStatus::Processing => "processing",
        ChallengeStatus::Valid => "valid",
        ChallengeStatus::Invalid => "invalid",
    }
}

fn acme_reason(reason: RevocationReason) -> instant_acme::RevocationReason {
    match reason {
        RevocationReason::Unspecified => instant_acme::RevocationReason::Unspecified,
        RevocationReason::KeyCompromise => instant_acme::RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged => instant_acme::RevocationReason::AffiliationChanged,
        RevocationReason::Superseded => instant_acme::RevocationReason::Superseded,
        RevocationReason::CessationOfOperation => {
            instant_acme::RevocationReason::CessationOfOperation
        }
    }
}

fn is_bad_nonce(error: &instant_acme::Error) -> bool {
    matches!(error, instant_acme::Error::Api(problem) if problem_type(problem) == Some("badNonce"))
}

/// The short problem type (`rateLimited` for `urn:ietf:params:acme:error:rateLimited`).
fn problem_type(problem: &Problem) -> Option<&str> {
    problem
        .r#type
        .as_deref()
        .map(|kind| kind.strip_prefix(PROBLEM_PREFIX).unwrap_or(kind))
}

/// The problem document as certform keeps it (typed kind, detail, subproblems).
fn typed_problem(problem: &Problem) -> crate::ca::Problem {
    crate::ca::Problem::Acme {
        kind: crate::ca::AcmeProblemKind::parse(problem.r#type.as_deref()),
        detail: problem.detail.clone(),
        subproblems: problem
            .subproblems
            .iter()
            .map(|subproblem| crate::ca::AcmeSubproblem {
                kind: crate::ca::AcmeProblemKind::parse(subproblem.r#type.as_deref()),
                detail: subproblem.detail.clone(),
                identifier: subproblem
                    .identifier
                    .as_ref()
                    .map(|identifier| identifier.authorized(false).to_string()),
            })
            .collect(),
    }
}

/// Turn an `instant-acme` error into a classified `CaError`, using what the HTTP layer saw.
fn classify(name: &str, operation: Operation, error: instant_acme::Error) -> CaError {
    classify_with(name, operation, error, &last_response())
}

fn classify_with(
    name: &str,
    operation: Operation,
    error: instant_acme::Error,
    last: &LastResponse,
) -> CaError {
    let what = operation.describe();
    match error {
        instant_acme::Error::Api(problem) => {
            let kind = problem_type(&problem).unwrap_or("");
            let status = last.status.or(problem.status).unwrap_or(0);
            let class = match kind {
                "rateLimited" => ErrorClass::RateLimited,
                _ if status == 429 => ErrorClass::RateLimited,
                "badNonce" | "serverInternal" => ErrorClass::Transient,
                _ if status >= 500 => ErrorClass::Transient,
                "externalAccountRequired" | "accountDoesNotExist" | "badPublicKey" => {
                    ErrorClass::Auth
                }
                "unauthorized" if operation == Operation::Account => ErrorClass::Auth,
                "malformed" if operation == Operation::Account && status == 401 => ErrorClass::Auth,
                _ => ErrorClass::Rejected,
            };
            let typed = typed_problem(&problem);
            let mut error = CaError::new(
                class,
                format!(
                    "ACME account `{name}`: the CA refused to {what}: {}",
                    typed.describe()
                ),
            )
            .with_problem(typed);
            if status != 0 {
                error = error.with_status(status);
            }
            if class == ErrorClass::RateLimited {
                error.retry_after = last.retry_after.or_else(|| {
                    problem
                        .detail
                        .as_deref()
                        .and_then(|detail| retry_after_in(detail, OffsetDateTime::now_utc()))
                });
            }
            error
        }
        // A body that is no problem document: the status says what happened.
        instant_acme::Error::Json(source) => {
            let (class, message) = match last.status {
                Some(429) => (
                    ErrorClass::RateLimited,
                    format!("ACME account `{name}`: the CA answered HTTP 429 to {what}"),
                ),
                Some(status) if status >= 500 => (
                    ErrorClass::Transient,
                    format!("ACME account `{name}`: the CA answered HTTP {status} to {what}"),
                ),
                Some(status) if status >= 400 => (
                    ErrorClass::Rejected,
                    format!(
                        "ACME account `{name}`: the CA answered HTTP {status} without a problem document to {what}"
                    ),
                ),
                _ => (
                    ErrorClass::Protocol,
                    format!(
                        "ACME account `{name}`: the CA's answer to {what} is not the expected JSON"
                    ),
                ),
            };
            let mut error = CaError::new(class, message).with_source(source);
            if let Some(status) = last.status {
                error = error.with_status(status);
            }
            if class == ErrorClass::RateLimited {
                error.retry_after = last.retry_after;
            }
            error
        }
        instant_acme::Error::Timeout(_) => CaError::new(
            ErrorClass::Transient,
            format!("ACME account `{name}`: timed out trying to {what}"),
        ),
        instant_acme::Error::Unsupported(feature) => CaError::new(
            ErrorClass::Unsupported,
            format!("ACME account `{name}`: the CA does not support {feature}"),
        ),
        instant_acme::Error::Crypto | instant_acme::Error::KeyRejected => CaError::new(
            ErrorClass::Auth,
            format!("ACME account `{name}`: the account key cannot be used to {what}"),
        ),
        instant_acme::Error::Str(message) => {
            let class = match last.status {
                Some(status) if status >= 500 => ErrorClass::Transient,
                _ => ErrorClass::Protocol,
            };
            CaError::new(
                class,
                format!("ACME account `{name}`: failed to {what}: {message}"),
            )
        }
        instant_acme::Error::Http(source) => CaError::new(
            ErrorClass::Protocol,
            format!("ACME account `{name}`: failed to {what}: invalid request"),
        )
        .with_source(source),
        instant_acme::Error::InvalidUri(source) => CaError::new(
            ErrorClass::Protocol,
            format!("ACME account `{name}`: failed to {what}: invalid URL"),
        )
        .with_source(source),
        // Connection refused, TLS failures, resets, timeouts: as the HTTP layer classed them.
        instant_acme::Error::Other(source) => {
            let class = source
                .downcast_ref::<crate::http::Error>()
                .map_or(ErrorClass::Transient, |error| error.class());
            let status = source
                .downcast_ref::<crate::http::Error>()
                .and_then(crate::http::Error::status);
            let mut error = CaError::new(class, format!("ACME account `{name}`: failed to {what}"));
            error.status = status.map(|status| status.as_u16());
            error.source = Some(source);
            error
        }
        other => CaError::new(
            ErrorClass::Transient,
            format!("ACME account `{name}`: failed to {what}"),
        )
        .with_source(other),
    }
}

/// The wait a `rateLimited` detail names: Let's Encrypt writes
/// "retry after 2025-01-01 00:00:00 UTC" (or an RFC 3339 time).
fn retry_after_in(detail: &str, now: OffsetDateTime) -> Option<Duration> {
    let lower = detail.to_ascii_lowercase();
    let start = lower.find("retry after ")? + "retry after ".len();
    let rest = detail.get(start..)?;
    let spaced =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    let at = rest
        .get(..23)
        .and_then(|text| time::PrimitiveDateTime::parse(text, spaced).ok())
        .map(|at| at.assume_utc())
        .or_else(|| {
            let token = rest.split_whitespace().next()?;
            let token = token.trim_end_matches([',', ';', '.', ':']);
            OffsetDateTime::parse(token, &time::format_description::well_known::Rfc3339).ok()
        })?;
    Some((at - now).max(Duration::ZERO))
}

/// Absolute targets of `rel="alternate"` links in one `Link` header value.
fn alternate_links(value: &str, request_url: &str) -> Vec<String> {
    let mut links = Vec::new();
    for link in value.split(',') {
        let link = link.trim();
        let Some(rest) = link.strip_prefix('<') else {
            continue;
        };
        let Some((target, params)) = rest.split_once('>') else {
            continue;
        };
        let alternate = params.split(';').any(|param| {
            let param = param.trim().replace(' ', "");
            param.eq_ignore_ascii_case("rel=\"alternate\"")
                || param.eq_ignore_ascii_case("rel=alternate")
        });
        if !alternate {
            continue;
        }
        if target.starts_with("https://") {
            links.push(target.to_string());
        } else if target.starts_with('/') {
            if let Some(origin) = origin_of(request_url) {
                links.push(format!("{origin}{target}"));
            }
        }
    }
    links
}

/// `https://host:port` of a URL.
fn origin_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    url.get(.."https://".len() + end)
}

fn leaf_der(chain_pem: &str) -> Option<Vec<u8>> {
    pem::parse_many(chain_pem)
        .ok()?
        .into_iter()
        .find(|block| block.tag() == "CERTIFICATE")
        .map(|block| block.contents().to_vec())
}

/// Common name of the issuer of the last certificate in the chain.
fn top_issuer_common_name(chain_pem: &str) -> Option<String> {
    let blocks = pem::parse_many(chain_pem).ok()?;
    let last = blocks.last()?;
    let (_, certificate) = X509Certificate::from_der(last.contents()).ok()?;
    let common_name = certificate
        .issuer()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(common_name)
}

fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

fn io_error(name: &str, action: &str, path: &Path, error: io::Error) -> CaError {
    CaError::new(
        ErrorClass::Transient,
        format!(
            "ACME account `{name}`: failed to {action} `{}`",
            path.display()
        ),
    )
    .with_source(error)
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, IsCa, Issuer, KeyIdMethod, KeyPair,
        SerialNumber,
    };
    use time::macros::datetime;

    use super::*;

    #[test]
    fn cert_id_matches_the_lets_encrypt_example() {
        let aki = [
            0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
            0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4,
        ];
        let serial = [0x00, 0x87, 0x65, 0x43, 0x21];
        assert_eq!(
            cert_id_from_parts(&aki, &serial),
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
        );
    }

    #[test]
    fn cert_id_of_a_real_certificate() {
        let aki = vec![
            0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
            0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4,
        ];
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_identifier_method = KeyIdMethod::PreSpecified(aki);
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["example.com".to_string()]).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.serial_number = Some(SerialNumber::from_slice(&[0x00, 0x87, 0x65, 0x43, 0x21]));
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
        assert_eq!(
            ari_cert_id(leaf.der()).unwrap(),
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
        );
        assert!(looks_like_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"));
        assert!(!looks_like_cert_id("https://ca.example/order/1"));

        // No AKI: a clear error, not a panic.
        let mut bare = CertificateParams::new(vec!["example.com".to_string()]).unwrap();
        bare.use_authority_key_identifier_extension = false;
        let self_signed = bare.self_signed(&leaf_key).unwrap();
        let error = ari_cert_id(self_signed.der()).unwrap_err();
        assert_eq!(error.class, ErrorClass::Protocol);
        assert!(ari_cert_id(b"not a certificate").is_err());
        assert!(ari_cert_id(&[]).is_err());
    }

    fn problem(json: &str) -> instant_acme::Error {
        instant_acme::Error::Api(serde_json::from_str::<Problem>(json).unwrap())
    }

    #[test]
    fn problems_are_classified() {
        let cases = [
            (
                r#"{"type":"urn:ietf:params:acme:error:badNonce","status":400}"#,
                Operation::Order,
                ErrorClass::Transient,
            ),
            (
                r#"{"type":"urn:ietf:params:acme:error:rateLimited","status":429,"detail":"too many"}"#,
                Operation::Order,
                ErrorClass::RateLimited,
            ),
            (
                r#"{"type":"about:blank","status":429}"#,
                Operation::Order,
                ErrorClass::RateLimited,
            ),
            (
                r#"{"type":"urn:ietf:params:acme:error:rateLimited","status":503,"detail":"Service busy; retry later."}"#,
                Operation::Order,
                ErrorClass::RateLimited,
            ),
            (
                r#"{"type":"urn:ietf:params:acme:error:serverInternal","status":500}"#,
                Operation::Read,
                ErrorClass::Transient,
            ),
            (r#"{"status":502}"#, Operation::Read, ErrorClass::Transient),
            (
                r#"{"type":"urn:ietf:params:acme:error:unauthorized","status":403}"#,
                Operation::Order,
                ErrorClass::Rejected,
            ),
            (
                r#"{"type":"urn:ietf:params:acme:error:unauthorized","status":403}"#,
                Operation::Account,
                ErrorClass::Auth,
            ),
            (
                r#"{"type":"urn:ietf:params:acme:error:externalAccountRequired","status":400}"#,
                Operation::Account,
                ErrorClass::Auth,
            ),
            (
                r#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","status":400}"#,
                Operation::Order,
                ErrorClass::Rejected,
            ),
            (
                r#"{"type":"urn:ietf:params:acme:error:caa","status":403}"#,
                Operation::Finalize,
                ErrorClass::Rejected,
            ),
            (
                r#"{"type":"urn:ietf:params:acme:error:dns","status":400}"#,
                Operation::Finalize,
                ErrorClass::Rejected,
            ),
            (
                r#"{"type":"urn:ietf:params:acme:error:connection","status":400}"#,
                Operation::Finalize,
                ErrorClass::Rejected,
            ),
            (
                r#"{"type":"urn:ietf:params:acme:error:incorrectResponse","status":400}"#,
                Operation::Finalize,
                ErrorClass::Rejected,
            ),
            (
                r#"{"type":"urn:ietf:params:acme:error:badCSR","status":400}"#,
                Operation::Finalize,
                ErrorClass::Rejected,
            ),
        ];
        for (json, operation, class) in cases {
            let error = classify("le", operation, problem(json));
            assert_eq!(error.class, class, "{json}");
            assert!(
                error.message.starts_with("ACME account `le`"),
                "{}",
                error.message
            );
        }
        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert_eq!(
            classify("le", Operation::Read, instant_acme::Error::Json(json)).class,
            ErrorClass::Protocol
        );
        let error = classify(
            "le",
            Operation::Order,
            problem(
                r#"{"type":"urn:ietf:params:acme:error:malformed","detail":"Some identifiers were rejected","subproblems":[{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"no","identifier":{"type":"dns","value":"bad.example"}}]}"#,
            ),
        );
        assert!(
            error
                .message
                .contains("`bad.example`: no (`rejectedIdentifier`)"),
            "{}",
            error.message
        );
    }

    #[test]
    fn rate_limit_wait_is_read_from_the_detail() {
        let now = datetime!(2025-01-01 00:00:00 UTC);
        let detail = "too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s, retry after 2025-01-01 01:30:00 UTC: see https://letsencrypt.org/docs/rate-limits/";
        assert_eq!(retry_after_in(detail, now), Some(Duration::minutes(90)));
        let rfc3339 = "limit reached, retry after 2025-01-01T00:00:30Z.";
        assert_eq!(retry_after_in(rfc3339, now), Some(Duration::seconds(30)));
        assert_eq!(retry_after_in("Service busy; retry later.", now), None);
        assert_eq!(retry_after_in("retry after garbage", now), None);
        assert_eq!(retry_after_in("retry after ", now), None);
        let past = "retry after 2024-12-31 23:00:00 UTC";
        assert_eq!(retry_after_in(past, now), Some(Duration::ZERO));
    }

    #[test]
    fn answers_without_a_problem_document_are_classified_by_status() {
        let json = || instant_acme::Error::Json(serde_json::from_str::<u8>("").unwrap_err());
        let with_status = |status: u16| LastResponse {
            status: Some(status),
            retry_after: Some(Duration::seconds(30)),
            ..LastResponse::default()
        };
        let cases = [
            (None, ErrorClass::Protocol),
            (Some(200), ErrorClass::Protocol),
            (Some(404), ErrorClass::Rejected),
            (Some(429), ErrorClass::RateLimited),
            (Some(502), ErrorClass::Transient),
        ];
        for (status, class) in cases {
            let last = status.map(with_status).unwrap_or_default();
            let error = classify_with("le", Operation::Read, json(), &last);
            assert_eq!(error.class, class, "{status:?}");
        }
        let limited = classify_with("le", Operation::Order, json(), &with_status(429));
        assert_eq!(limited.retry_after, Some(Duration::seconds(30)));
        // A problem document with a `Retry-After` header: the header wins over the detail.
        let problem = problem(
            r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"retry after 2999-01-01 00:00:00 UTC"}"#,
        );
        let error = classify_with("le", Operation::Order, problem, &with_status(429));
        assert_eq!(error.retry_after, Some(Duration::seconds(30)));
        // The problem and status stay typed on the error; the hint comes from them.
        assert_eq!(error.status, Some(429));
        assert!(error.is_rate_limited());
        assert_eq!(
            error
                .problem
                .as_deref()
                .and_then(crate::ca::Problem::acme_kind),
            Some(&crate::ca::AcmeProblemKind::RateLimited)
        );
        assert!(error.hint().is_some_and(|hint| hint.contains("wait 30s")));
        assert_eq!(limited.status, Some(429));
        assert_eq!(limited.problem, None);
    }

    #[test]
    fn alternate_links_are_found_and_made_absolute() {
        let request = "https://ca.example:14000/certZ/abc";
        let header = r#"<https://ca.example:14000/dir>;rel="index", <https://ca.example:14000/certZ/abc/1>;rel="alternate""#;
        assert_eq!(
            alternate_links(header, request),
            ["https://ca.example:14000/certZ/abc/1"]
        );
        assert_eq!(
            alternate_links("</certZ/abc/2>; rel=alternate", request),
            ["https://ca.example:14000/certZ/abc/2"]
        );
        assert!(alternate_links("garbage", request).is_empty());
        assert!(alternate_links("<http://plain/x>;rel=\"alternate\"", request).is_empty());
        assert_eq!(origin_of("https://h:1/a/b"), Some("https://h:1"));
        assert_eq!(origin_of("https://h"), Some("https://h"));
        assert_eq!(origin_of("http://h/a"), None);
    }

    #[test]
    fn settings_debug_hides_the_hmac() {
        let settings = AcmeSettings {
            directory: "https://user:pw@acme.example/dir".to_string(),
            eab: Some((
                "kid-1".to_string(),
                crate::secrets::Secret::new(b"super-secret-hmac".to_vec()),
            )),
            ..AcmeSettings::default()
        };
        let debug = format!("{settings:?}");
        assert!(debug.contains("kid-1"), "{debug}");
        assert!(!debug.contains("super-secret"), "{debug}");
        assert!(!debug.contains("115, 117, 112"), "{debug}");
        assert!(!debug.contains("pw"), "{debug}");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("https://a:b@host/dir"), "https://***@host/dir");
        assert_eq!(redact_url("https://host/dir?x=@"), "https://host/dir?x=@");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[tokio::test]
    async fn open_refuses_plain_http_before_any_io() {
        let dir = tempfile::tempdir().unwrap();
        let settings = AcmeSettings {
            directory: "http://127.0.0.1:1/dir".to_string(),
            ..AcmeSettings::default()
        };
        let error = AcmeCa::open("le", settings, dir.path().join("acct"))
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::Rejected);
        assert!(!dir.path().join("acct").exists());
    }

    #[tokio::test]
    async fn unreachable_directory_is_transient() {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = AcmeSettings {
            directory: format!("https://127.0.0.1:{port}/dir"),
            ..AcmeSettings::default()
        };
        let error = AcmeCa::open("le", settings, dir.path().join("acct"))
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::Transient, "{error}");
        assert!(!dir.path().join("acct/account.json").exists());
    }

    /// A plain-HTTP server that never answers the first request it reads (holding the
    /// connection open) and answers every later one `200` with a nonce; it counts requests.
    async fn hang_once_server() -> (String, Arc<AtomicU64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/acme/order/1", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(read) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                        let text = String::from_utf8_lossy(&buffer).to_string();
                        let Some(end) = text.find("\r\n\r\n") else {
                            continue;
                        };
                        let length: usize = text[..end]
                            .lines()
                            .find_map(|line| {
                                let (name, value) = line.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        if buffer.len() < end + 4 + length {
                            continue;
                        }
                        buffer.drain(..end + 4 + length);
                        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                            // Hang: keep the connection, never answer.
                            tokio::time::sleep(StdDuration::from_secs(60)).await;
                            return;
                        }
                        let answer = "HTTP/1.1 200 OK\r\nReplay-Nonce: fresh\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, seen)
    }

    fn jws_post(url: &str, payload: &str) -> http::Request<BodyWrapper<Bytes>> {
        let body = format!(r#"{{"protected":"e30","payload":"{payload}","signature":"c2ln"}}"#);
        http::Request::builder()
            .method(http::Method::POST)
            .uri(url)
            .header(http::header::CONTENT_TYPE, "application/jose+json")
            .body(BodyWrapper::from(body.into_bytes()))
            .unwrap()
    }

    fn short_timeout_client(sent: &Arc<AtomicU64>) -> AcmeHttp {
        let mut options = crate::http::Options::new("pebble");
        options.timeout = StdDuration::from_millis(400);
        AcmeHttp::with_options(options, StdDuration::from_millis(300), Arc::clone(sent)).unwrap()
    }

    #[tokio::test]
    async fn a_post_as_get_the_ca_never_answers_is_sent_again() {
        let (url, seen) = hang_once_server().await;
        let sent = Arc::new(AtomicU64::new(0));
        let client = short_timeout_client(&sent);
        let started = Instant::now();
        let answer = client.request(jws_post(&url, "")).await.expect("retried");
        assert_eq!(answer.parts.status, http::StatusCode::OK);
        assert_eq!(
            seen.load(Ordering::SeqCst),
            2,
            "the hung read was sent again"
        );
        assert_eq!(
            sent.load(Ordering::SeqCst),
            1,
            "one request as instant-acme sees it"
        );
        assert!(
            started.elapsed() < StdDuration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_post_with_a_payload_is_never_sent_twice() {
        let (url, seen) = hang_once_server().await;
        let sent = Arc::new(AtomicU64::new(0));
        let client = short_timeout_client(&sent);
        let error = client
            .request(jws_post(&url, "eyJjc3IiOiJ4In0"))
            .await
            .err()
            .expect("the hung finalize is not retried");
        assert!(
            error.to_string().contains("timed out") || format!("{error:?}").contains("Timeout"),
            "{error:?}"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn post_as_get_is_an_empty_payload() {
        assert!(is_post_as_get(
            br#"{"protected":"e30","payload":"","signature":"x"}"#
        ));
        assert!(!is_post_as_get(
            br#"{"protected":"e30","payload":"e30","signature":"x"}"#
        ));
        assert!(!is_post_as_get(b"not json"));
        assert!(!is_post_as_get(br#"{"protected":"e30","signature":"x"}"#));
    }
}
