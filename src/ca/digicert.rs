//! DigiCert CertCentral accounts, spoken through the Services API v2 (`X-DC-DEVKEY`).
//!
//! One `DigicertCa` is one API key on one CertCentral account. What it relies on, from the
//! reference (`../shared/reference/digicert.md`):
//!
//! - **No duplicate orders.** Every order carries certform's tag as `alternative_order_id`, so
//!   `refresh` by tag (`GET /order/alternate/{tag}`) finds it. The executor, and only it, looks
//!   the tag up before a create it resumes and before it repeats a create that failed in transit;
//!   `place_order` sends the create as asked.
//! - **Cheap refresh.** Many orders are read with the list API (pages of 1000), not one `GET` per
//!   order; details are read only for orders still in progress and for issued orders whose
//!   certificate id differs from the one last seen (a reissue outside certform). The last seen
//!   certificate id and serial of each order are kept in a small cache file beside the keys
//!   (`<keys_dir>/digicert/<account>/cache.json`); it holds no secret and losing it only costs
//!   requests.
//! - **HTTP** goes through `crate::http`: reads (and writes marked safe to repeat) are retried
//!   there on 5xx, timeouts and 429 (the `Retry-After` when present, else from 5 s doubling;
//!   `CERTFORM_RETRY_DELAY_MS` sets the first delay); a create is sent once, after the tag
//!   lookup says the order does not exist, and the executor decides whether to try again.
//! - **Rate limits as a budget.** A configured account (`open`) holds every request to its
//!   `rate_limit` windows (default CertCentral's: 100 per 5 s and 1,000 per 3 min, rolling),
//!   shared by all tasks of the run, so certform does not cause a 429 itself. A 429 that comes
//!   anyway (another client on the same account) holds the account's requests for the
//!   `Retry-After` (else 5 s doubling up to the longest window) and the request resumes; only
//!   after `RATE_LIMIT_WAIT` of 429s does the error reach the caller.
//! - **Read-only accounts** (`mode = "read-only"`, a View Only key) refuse every write before a
//!   request leaves the process.
//!
//! The API key is a `Secret`: never printed, logged, or put in errors; HTTP request bodies are
//! never logged.

mod account;
mod client;
pub(crate) mod open;
pub mod settings;
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ca::{
    CaError, Capabilities, CertificateAuthority, Challenge, ChallengeKind, ErrorClass, Fetched,
    IssuedCertificate, OrderQuery, OrderRequest, RevokeOutcome,
};
use crate::observed::{OrderStatus, OrderView};
use crate::serial::Serial;
use crate::spec::{CertificateSpec, RevocationReason, Validity};
use settings::{DcvMethodWire, Options, PaymentMethod, SignatureHash};

/// Bound on one HTTP exchange with the API (connect, answer and body).
const REQUEST_TIMEOUT: StdDuration = StdDuration::from_secs(60);
/// Largest page the list endpoints serve.
const PAGE_LIMIT: u64 = 1000;
/// Up to this many orders are read one by one; more are read with the list API.
const DETAIL_THRESHOLD: usize = 10;
/// Largest answer body read.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// The file of `http-token` validation (the reference: `fileauth.txt`, UNCONFIRMED).
const HTTP_TOKEN_PATH: &str = "/.well-known/pki-validation/fileauth.txt";
/// Product ordered when a certificate names none.
pub const DEFAULT_PRODUCT: &str = "ssl_basic";
/// DigiCert's rate limits (reference §3): 100 requests per 5 seconds, 1,000 per 3 minutes.
pub const RATE_LIMITS: [crate::http::Window; 2] = [
    crate::http::Window::new(100, StdDuration::from_secs(5)),
    crate::http::Window::new(1000, StdDuration::from_secs(180)),
];

/// How long one read keeps waiting out 429 answers before the error goes to the caller.
pub const RATE_LIMIT_WAIT: StdDuration = StdDuration::from_secs(30 * 60);

pub use crate::secrets::Secret;

/// How requests are retried: the HTTP layer's one policy.
pub type Retry = crate::http::RetryPolicy;

/// A CertCentral account's settings, resolved from config (the key already read).
#[derive(Debug, Clone)]
pub struct DigicertSettings {
    /// Services API base URL, ending in `/`.
    pub url: String,
    pub api_key: Secret,
    /// Refuse every write (`mode = "read-only"`).
    pub read_only: bool,
    pub retry: Retry,
    /// Directory of the refresh cache; `None` keeps it in memory only.
    pub cache_dir: Option<PathBuf>,
    /// `http://host:port` of an HTTP proxy reached with CONNECT.
    pub proxy: Option<String>,
    /// Client-side rate limit; empty (none) by default. `RATE_LIMITS` are DigiCert's (what
    /// `open` gives a configured account unless its `rate_limit` says otherwise).
    pub limits: Vec<crate::http::Window>,
    /// How long a read waits out 429s (`RATE_LIMIT_WAIT` for a configured account); zero: a
    /// 429 is retried like a 5xx and then returned.
    pub rate_limit_wait: StdDuration,
}

impl DigicertSettings {
    pub fn new(url: impl Into<String>, api_key: Secret) -> Self {
        let mut url = url.into();
        if !url.ends_with('/') {
            url.push('/');
        }
        Self {
            url,
            api_key,
            read_only: false,
            retry: Retry::from_env(),
            cache_dir: None,
            proxy: None,
            limits: Vec::new(),
            rate_limit_wait: StdDuration::ZERO,
        }
    }
}

/// What refresh remembers of an order between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    certificate_id: Option<u64>,
    serial: Option<Serial>,
}

/// `cache.json`: per order, what was seen last, and the DCV random values of pending orders.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cache {
    #[serde(default)]
    orders: BTreeMap<u64, Seen>,
    #[serde(default)]
    tokens: BTreeMap<u64, String>,
    /// Names of a reissue certform asked for, until the order is issued again: the order's
    /// details show the current certificate's names while the reissue is pending.
    #[serde(default)]
    reissue_names: BTreeMap<u64, Vec<String>>,
}

/// One DigiCert CertCentral account.
pub struct DigicertCa {
    name: String,
    settings: DigicertSettings,
    client: crate::http::Client,
    cache: Mutex<Cache>,
    /// When `save_cache_soon` last wrote the cache, and whether changes wait to be written
    /// (written at the latest when the account is dropped).
    cache_saved: Mutex<Option<std::time::Instant>>,
    cache_dirty: std::sync::atomic::AtomicBool,
    /// Whether the key's user is an administrator (may `skip_approval`), learned once.
    admin: tokio::sync::OnceCell<bool>,
    /// The whole order list a refresh of many orders read in this run, kept for the run's
    /// inventory listing (the same pages), which takes it instead of listing again.
    listed: Mutex<Option<Vec<OrderInfo>>>,
}

impl fmt::Debug for DigicertCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigicertCa")
            .field("name", &self.name)
            .field("url", &self.settings.url)
            .field("read_only", &self.settings.read_only)
            .finish_non_exhaustive()
    }
}

use self::client::{has_reissue_request, pending_revoke_request, reissue_comments};
use self::wire::{csr_pem, dcv_base, dcv_wire_name, encode, int, order_number, reason_text, text};
pub use self::wire::{map_status, DomainInfo, OrderInfo, OrganizationInfo, ProductInfo, UserInfo};
pub use super::problem::FORBIDDEN_CAUSES;

impl DigicertCa {
    // ----- HTTP ---------------------------------------------------------------------------------

    // ----- cache --------------------------------------------------------------------------------

    // ----- reads --------------------------------------------------------------------------------

    /// Plan-time checks of the certificates ordered from this account: product, validity,
    /// organization, signature hash and server platform. Every problem is reported at once.
    pub async fn check_specs(&self, specs: &[&CertificateSpec]) -> Result<(), CaError> {
        if specs.is_empty() {
            return Ok(());
        }
        let mut products: BTreeMap<String, Option<ProductInfo>> = BTreeMap::new();
        for spec in specs {
            let name = Options::of(&spec.ca_options)
                .product_or(DEFAULT_PRODUCT)
                .to_string();
            if let std::collections::btree_map::Entry::Vacant(slot) = products.entry(name) {
                let product = self.product(slot.key()).await?;
                slot.insert(product);
            }
        }
        let wants_organization = specs
            .iter()
            .any(|s| Options::of(&s.ca_options).organization.is_some())
            || products
                .values()
                .flatten()
                .any(ProductInfo::needs_organization);
        let organizations = if wants_organization {
            match self.organizations().await {
                Ok(organizations) => Some(organizations),
                // A key restricted to orders cannot list organizations: the CA checks at order
                // time instead.
                Err(error) if error.class == ErrorClass::Auth => {
                    tracing::warn!(account = %self.name, %error, "cannot check organizations at plan time");
                    None
                }
                Err(error) => return Err(error),
            }
        } else {
            None
        };
        let mut available: Option<Vec<String>> = None;
        let mut problems = Vec::new();
        for spec in specs {
            let at = format!("certificate `{}` ({})", spec.name, spec.location);
            let options = Options::of(&spec.ca_options);
            let name = options.product_or(DEFAULT_PRODUCT).to_string();
            let Some(Some(product)) = products.get(&name) else {
                if available.is_none() {
                    available = Some(
                        self.products()
                            .await
                            .map(|p| p.into_iter().map(|p| p.name_id).collect())
                            .unwrap_or_default(),
                    );
                }
                problems.push(format!(
                    "{at}: product `{name}` is not enabled for `{}`; available: {}",
                    self.name,
                    available.as_deref().unwrap_or_default().join(", ")
                ));
                continue;
            };
            match spec.validity {
                Validity::Years(years)
                    if !product.allowed_validity_years.is_empty()
                        && !product.allowed_validity_years.contains(&u64::from(years)) =>
                {
                    problems.push(format!(
                        "{at}: product `{name}` does not allow a validity of {}; allowed years: {}",
                        spec.validity.describe(),
                        product
                            .allowed_validity_years
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                Validity::Until(_) if !product.custom_expiration_date_allowed => {
                    problems.push(format!(
                        "{at}: product `{name}` does not allow a custom expiration date (`validity.until`)"
                    ));
                }
                _ => {}
            }
            if let Some(hash) = options.signature_hash.map(SignatureHash::as_str) {
                if !product.signature_hashes.is_empty()
                    && !product.signature_hashes.iter().any(|h| h == hash)
                {
                    problems.push(format!(
                        "{at}: product `{name}` does not allow signature hash `{hash}`; allowed: {}",
                        product.signature_hashes.join(", ")
                    ));
                }
            }
            if let Some(platform) = options.server_platform {
                if platform != -1
                    && !product.server_platforms.is_empty()
                    && !product.server_platforms.contains(&platform)
                {
                    problems.push(format!(
                        "{at}: product `{name}` has no server platform {platform}"
                    ));
                }
            }
            let organization = options.organization;
            let Some(organizations) = organizations.as_deref() else {
                continue;
            };
            match organization {
                None if product.needs_organization() => {
                    problems.push(format!(
                        "{at}: product `{name}` is {}-validated and needs `organization`; organizations of `{}`: {}",
                        product.validation_type.as_deref().unwrap_or("organization").to_uppercase(),
                        self.name,
                        describe_organizations(organizations)
                    ));
                }
                None => {}
                Some(id) => match organizations.iter().find(|o| o.id == id) {
                    None => problems.push(format!(
                        "{at}: organization {id} does not exist in `{}`; organizations: {}",
                        self.name,
                        describe_organizations(organizations)
                    )),
                    Some(found) => {
                        let kind = product
                            .validation_type
                            .clone()
                            .filter(|_| product.needs_organization());
                        let validated = match &kind {
                            Some(kind) => found.validated.contains(kind),
                            None => true,
                        };
                        if !validated {
                            problems.push(format!(
                                "{at}: organization {id} (`{}`) has no active {} validation, which product `{name}` needs",
                                found.name,
                                kind.as_deref().unwrap_or_default().to_uppercase()
                            ));
                        }
                    }
                },
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CaError::new(
                ErrorClass::Rejected,
                format!(
                    "configuration does not fit DigiCert account `{}`:\n  {}",
                    self.name,
                    problems.join("\n  ")
                ),
            ))
        }
    }

    /// The order body of a create.
    fn order_body(&self, request: &OrderRequest, skip_approval: bool) -> Value {
        let options = Options::of(&request.options);
        let mut certificate = json!({
            "common_name": request.common_name,
            "dns_names": request.sans,
            "csr": csr_pem(&request.csr_der),
        });
        if let Some(hash) = options.signature_hash {
            certificate["signature_hash"] = json!(hash.as_str());
        }
        if let Some(platform) = options.server_platform {
            certificate["server_platform"] = json!({ "id": platform });
        }
        let mut body = json!({
            "certificate": certificate,
            "alternative_order_id": request.tag,
            "comments": format!("certform {}", request.tag),
            "payment_method": options.payment_method.unwrap_or(PaymentMethod::Balance).as_str(),
        });
        body["order_validity"] = match request.validity {
            Validity::Days(days) => json!({ "days": days }),
            Validity::Years(years) => json!({ "years": years }),
            Validity::Until(date) => json!({ "custom_expiration_date": date.to_string() }),
        };
        if let Some(organization) = options.organization {
            body["organization"] = json!({ "id": organization });
        }
        // One method for the whole order: the common name's (config allows only one).
        let method = request
            .dcv
            .first()
            .map(|validation| dcv_wire_name(validation.method))
            .or_else(|| options.dcv_method.map(DcvMethodWire::as_str));
        if let Some(method) = method {
            body["dcv_method"] = json!(method);
        }
        if let Some(old) = request
            .renewal_of
            .as_deref()
            .and_then(|o| o.parse::<u64>().ok())
        {
            body["renewal_of_order_id"] = json!(old);
        }
        if skip_approval {
            body["skip_approval"] = json!(true);
        }
        body
    }
}

fn describe_organizations(organizations: &[OrganizationInfo]) -> String {
    if organizations.is_empty() {
        return "none".to_string();
    }
    organizations
        .iter()
        .map(|o| {
            format!(
                "{} `{}` ({})",
                o.id,
                o.name,
                if o.validated.is_empty() {
                    "not validated".to_string()
                } else {
                    format!("validated: {}", o.validated.join(", "))
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What this CA can do (also used by the planner, without opening an account).
pub const CAPABILITIES: Capabilities = Capabilities {
    reissue_same_order: true,
    cancel: true,
    revoke: true,
    // The tag travels in the order's comments and is searched for by `refresh`.
    duplicates: crate::capabilities::DuplicatePrevention::TagAtCa,
    // A cancelled pending order's funds return to the account.
    cancel_refunds: true,
    honours_validity: true,
    // CertCentral allows 1,000 API requests per 3 minutes (and 100 per 5 s); an order takes about four
    // (place, poll, fetch, check), so 250 orders fit one run.
    max_orders_per_run: Some(250),
    max_lifetime: crate::capabilities::DIGICERT_LIFETIMES,
    // 100 API requests per 5 seconds (reference/digicert.md §3): four certificates at a time
    // (each a handful of requests) stay well inside it.
    parallel_certificates: 4,
};

#[async_trait]
impl CertificateAuthority for DigicertCa {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "digicert"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn is_read_only(&self) -> bool {
        DigicertCa::is_read_only(self)
    }

    async fn check_credentials(&self) -> Result<crate::ca::Credentials, CaError> {
        let user = self.user().await?;
        Ok(crate::ca::Credentials {
            identity: user.describe(),
            read_only: self.is_read_only(),
        })
    }

    async fn account_info(&self) -> Result<crate::ca::AccountInfo, CaError> {
        self.read_account_info().await
    }

    async fn list_orders(&self) -> Result<Vec<crate::ca::AccountOrder>, CaError> {
        Ok(DigicertCa::list_orders(self, &[])
            .await?
            .into_iter()
            .map(OrderInfo::into_account_order)
            .collect())
    }

    /// The order list, one call per page of 1000 orders; none when this run's refresh
    /// already read the whole list.
    async fn inventory_orders(&self) -> Result<Vec<crate::ca::AccountOrder>, CaError> {
        let listed = self
            .listed
            .lock()
            .map(|mut listed| listed.take())
            .ok()
            .flatten();
        let orders = match listed {
            Some(orders) => orders,
            None => DigicertCa::list_orders(self, &[]).await?,
        };
        Ok(orders
            .into_iter()
            .map(OrderInfo::into_account_order)
            .collect())
    }

    async fn check(&self, specs: &[&CertificateSpec]) -> Result<(), CaError> {
        self.check_specs(specs).await
    }

    async fn refresh(&self, queries: &[OrderQuery]) -> Result<Vec<Option<OrderView>>, CaError> {
        // Resolve tags to order ids first (one lookup per tag without an order id).
        let mut ids: Vec<Option<u64>> = Vec::with_capacity(queries.len());
        for query in queries {
            let id = match (&query.order_id, &query.tag) {
                (Some(order_id), _) => order_id.parse::<u64>().ok(),
                (None, Some(tag)) => self.order_for_tag(tag).await?,
                (None, None) => None,
            };
            ids.push(id);
        }
        let wanted: BTreeSet<u64> = ids.iter().flatten().copied().collect();
        let views: BTreeMap<u64, OrderView> = if wanted.len() <= DETAIL_THRESHOLD {
            let list: Vec<u64> = wanted.iter().copied().collect();
            let infos = self.detailed(&list).await?;
            self.views_of(&infos).await?
        } else {
            let all = self.list_orders(&[]).await?;
            let listed: BTreeMap<u64, OrderInfo> = all
                .iter()
                .filter(|o| wanted.contains(&o.id))
                .map(|o| (o.id, o.clone()))
                .collect();
            if let Ok(mut kept) = self.listed.lock() {
                *kept = Some(all);
            }
            let mut views = BTreeMap::new();
            let mut details = Vec::new();
            let mut baseline = false;
            for id in &wanted {
                let Some(info) = listed.get(id) else {
                    // Not in the list (another container?): ask for it directly.
                    details.push(*id);
                    continue;
                };
                let status = map_status(&info.status);
                if status == OrderStatus::Pending {
                    details.push(*id);
                    continue;
                }
                let seen = self.with_cache(|cache| cache.orders.get(id).cloned());
                match seen {
                    Some(seen) if seen.certificate_id == info.certificate_id => {
                        let mut info = info.clone();
                        info.serial = seen.serial;
                        views.insert(*id, self.view(&info, None));
                    }
                    // A certificate certform has not seen on this order: read its serial.
                    Some(_) if status == OrderStatus::Issued => details.push(*id),
                    _ => {
                        // First sight: remember the certificate id as the baseline.
                        baseline = true;
                        self.with_cache(|cache| {
                            cache.orders.insert(
                                *id,
                                Seen {
                                    certificate_id: info.certificate_id,
                                    serial: None,
                                },
                            );
                        });
                        views.insert(*id, self.view(info, None));
                    }
                }
            }
            let infos = self.detailed(&details).await?;
            views.extend(self.views_of(&infos).await?);
            if baseline || !details.is_empty() {
                self.save_cache();
            }
            views
        };
        if wanted.len() <= DETAIL_THRESHOLD && !wanted.is_empty() {
            self.save_cache();
        }
        Ok(ids
            .into_iter()
            .map(|id| id.and_then(|id| views.get(&id).cloned()))
            .collect())
    }

    async fn place_order(&self, request: &OrderRequest) -> Result<OrderView, CaError> {
        self.refuse_write("place an order")?;
        let product = Options::of(&request.options).product_or(DEFAULT_PRODUCT);
        let skip_approval = self.is_admin().await;
        let body = self.order_body(request, skip_approval);
        // Sent as asked: the executor looks the tag up (`refresh`) before a create it resumes
        // and before it repeats one that failed in transit, so no second order is placed.
        let answer = self
            .call(
                Method::POST,
                &format!("order/certificate/{}", encode(product)),
                Some(&body),
                false,
            )
            .await?;
        let value = answer.json("the order")?;
        let id = int(&value, "id").ok_or_else(|| {
            CaError::new(
                ErrorClass::Protocol,
                "DigiCert answered the order without an order id",
            )
        })?;
        if let Some(token) = text(&value, "dcv_random_value") {
            self.with_cache(|cache| cache.tokens.insert(id, token));
            self.save_cache();
        }
        self.current_view(id).await
    }

    async fn fetch(&self, order_id: &str) -> Result<Fetched, CaError> {
        let id = order_number(order_id)?;
        let info = self.order(id).await?.ok_or_else(|| {
            CaError::new(
                ErrorClass::Rejected,
                format!("DigiCert account `{}` has no order {id}", self.name),
            )
        })?;
        let status = map_status(&info.status);
        if status == OrderStatus::Pending {
            // Pending validation or approval: nothing to download yet.
            return Ok(Fetched::NotYet {
                status,
                detail: info.status.clone(),
            });
        }
        let certificate_id = info.certificate_id.ok_or_else(|| {
            CaError::new(
                ErrorClass::Protocol,
                format!("order {id} has no certificate id"),
            )
        })?;
        self.download_chain(id, certificate_id).await
    }

    async fn download(&self, order: &crate::ca::AccountOrder) -> Result<Fetched, CaError> {
        // The list gave the certificate id: one request, the download (no order detail).
        let certificate_id = order
            .certificate_id
            .as_deref()
            .and_then(|id| id.parse::<u64>().ok());
        match (order.order_id.parse::<u64>(), certificate_id) {
            (Ok(id), Some(certificate_id)) if map_status(&order.status) != OrderStatus::Pending => {
                self.download_chain(id, certificate_id).await
            }
            _ => self.fetch(&order.order_id).await,
        }
    }

    async fn reissue(&self, order_id: &str, request: &OrderRequest) -> Result<OrderView, CaError> {
        self.refuse_write("reissue a certificate")?;
        let id = order_number(order_id)?;
        let mut certificate = json!({
            "common_name": request.common_name,
            "dns_names": request.sans,
            "csr": csr_pem(&request.csr_der),
        });
        let options = Options::of(&request.options);
        if let Some(hash) = options.signature_hash {
            certificate["signature_hash"] = json!(hash.as_str());
        }
        if let Some(platform) = options.server_platform {
            certificate["server_platform"] = json!({ "id": platform });
        }
        let mut body = json!({
            "certificate": certificate,
            "comments": reissue_comments(&request.tag),
        });
        if self.is_admin().await {
            body["skip_approval"] = json!(true);
        }
        self.call(
            Method::POST,
            &format!("order/certificate/{id}/reissue"),
            Some(&body),
            false,
        )
        .await?;
        let mut names = vec![request.common_name.clone()];
        names.extend(request.sans.iter().cloned());
        self.with_cache(|cache| cache.reissue_names.insert(id, names));
        self.save_cache();
        self.current_view(id).await
    }

    /// A reissue keeps the order (and its `alternative_order_id`), so the tag is looked for
    /// in the order's requests: every reissue certform sends carries `certform <tag>` as its
    /// comments. A rejected request did not reissue anything.
    async fn find_reissue(&self, order_id: &str, tag: &str) -> Result<Option<OrderView>, CaError> {
        let id = order_number(order_id)?;
        let Some(value) = self
            .get_optional(&format!("order/certificate/{id}"))
            .await?
        else {
            return Ok(None);
        };
        if !has_reissue_request(&value, tag) {
            return Ok(None);
        }
        tracing::info!(account = %self.name, order = id, "a reissue requested earlier for this tag reached DigiCert; adopting it");
        self.current_view(id).await.map(Some)
    }

    async fn revoke(
        &self,
        order_id: &str,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<RevokeOutcome, CaError> {
        self.refuse_write("revoke a certificate")?;
        let skip = self.is_admin().await;
        let body = json!({
            "comments": format!("certform: revoke serial {serial}"),
            "revocation_reason": reason_text(reason),
            "skip_approval": skip,
        });
        let id = order_number(order_id)?;
        let detail = self
            .get_optional(&format!("order/certificate/{id}"))
            .await?;
        // A request sent earlier (by a run killed before state recorded it) still awaits
        // approval: report it rather than asking again.
        if !skip {
            if let Some(request_id) = detail.as_ref().and_then(pending_revoke_request) {
                return Ok(RevokeOutcome::Requested {
                    request_id: request_id.to_string(),
                });
            }
        }
        // The certificate of the order (by its id), else the whole order.
        let info = detail.as_ref().and_then(OrderInfo::from_json);
        if let Some(info) = &info {
            self.remember(info);
            // Revoked already (a run that died before recording it asks again): done.
            if info.status == "revoked" {
                return Ok(RevokeOutcome::Revoked);
            }
        }
        let certificate_id = info.and_then(|o| o.certificate_id);
        let path = match certificate_id {
            Some(certificate_id) => format!("certificate/{certificate_id}/revoke"),
            None => format!("order/certificate/{id}/revoke"),
        };
        let answer = self.call(Method::PUT, &path, Some(&body), false).await?;
        if answer.status == StatusCode::NO_CONTENT || answer.body.is_empty() {
            return Ok(RevokeOutcome::Revoked);
        }
        let value = answer.json("the revocation")?;
        match (text(&value, "status").as_deref(), int(&value, "id")) {
            (Some("approved"), _) => Ok(RevokeOutcome::Revoked),
            (_, Some(request_id)) => Ok(RevokeOutcome::Requested {
                request_id: request_id.to_string(),
            }),
            _ => Ok(RevokeOutcome::Revoked),
        }
    }

    async fn cancel(&self, order_id: &str) -> Result<(), CaError> {
        self.refuse_write("cancel an order")?;
        let id = order_number(order_id)?;
        let body = json!({ "status": "canceled", "note": "canceled by certform" });
        match self
            .call(
                Method::PUT,
                &format!("order/certificate/{id}/status"),
                Some(&body),
                true,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.class == ErrorClass::Rejected => {
                // Already canceled (a retry after a lost answer): done.
                match self.order(id).await? {
                    Some(info) if info.status == "canceled" => Ok(()),
                    _ => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn challenges(&self, order: &OrderView) -> Result<Vec<Challenge>, CaError> {
        let id = order_number(&order.order_id)?;
        let Some(info) = self.order(id).await? else {
            return Ok(Vec::new());
        };
        let domains = match self.domains().await {
            Ok(domains) => domains,
            Err(error) if error.class == ErrorClass::Auth => Vec::new(),
            Err(error) => return Err(error),
        };
        let method = info.dcv_method.clone().unwrap_or_else(|| "email".into());
        let mut names = info.dns_names.clone();
        if map_status(&info.status) == OrderStatus::Pending {
            let requested = self.with_cache(|cache| cache.reissue_names.get(&id).cloned());
            for name in requested.unwrap_or_default() {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let validated = |name: &str| {
            domains
                .iter()
                .any(|d| d.covers(name) && d.dcv_status == "complete")
        };
        let token_method = matches!(method.as_str(), "dns-txt-token" | "http-token");
        // The order's random value, asked for fresh whenever a name still needs DCV: an
        // adopted order, a reissue adding names and a value past its 30 days all get the value
        // CertCentral checks now (it answers the current one while that is valid).
        let mut token = if token_method && names.iter().any(|name| !validated(name)) {
            self.order_random_value(id).await?
        } else {
            None
        };
        if token.is_none() {
            token = info
                .dcv_random_value
                .clone()
                .or_else(|| self.with_cache(|cache| cache.tokens.get(&id).cloned()));
        }
        let mut challenges = Vec::new();
        for name in &names {
            let validated = validated(name);
            let status = if validated { "valid" } else { "pending" };
            let kind = match method.as_str() {
                "dns-txt-token" | "http-token" => {
                    if token.is_none() && !validated {
                        token = self.domain_token(&domains, name).await?;
                    }
                    // A validated name needs no value: nothing is published for it.
                    let Some(value) = token.clone().or_else(|| validated.then(String::new)) else {
                        return Err(CaError::new(
                            ErrorClass::Protocol,
                            format!("DigiCert gave no DCV random value for `{name}` of order {id}"),
                        ));
                    };
                    if method == "http-token" {
                        ChallengeKind::Http {
                            path: HTTP_TOKEN_PATH.to_string(),
                            content: value,
                        }
                    } else {
                        ChallengeKind::DnsTxt {
                            name: dcv_base(name).to_string(),
                            value,
                        }
                    }
                }
                _ => ChallengeKind::Email { approver: None },
            };
            challenges.push(Challenge {
                id: format!("{id}/{name}"),
                domain: name.clone(),
                kind,
                status: status.to_string(),
            });
        }
        Ok(challenges)
    }

    async fn respond(&self, order: &OrderView, challenges: &[Challenge]) -> Result<(), CaError> {
        self.refuse_write("ask for a DCV check")?;
        let id = order_number(&order.order_id)?;
        if challenges
            .iter()
            .all(|c| matches!(c.kind, ChallengeKind::Email { .. }))
        {
            return Ok(());
        }
        match self
            .call(
                Method::PUT,
                &format!("order/certificate/{id}/check-dcv"),
                None,
                true,
            )
            .await
        {
            Ok(_) => Ok(()),
            // Not found yet (DNS propagation, file not served): the order stays pending and
            // the next run checks again.
            Err(error) if error.class == ErrorClass::Rejected => {
                tracing::warn!(account = %self.name, order = id, %error, "DCV check did not pass yet");
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    async fn finalize(&self, order: &OrderView, _csr_der: &[u8]) -> Result<OrderView, CaError> {
        // DigiCert takes the CSR with the order: answer with the order as it is now.
        self.current_view(order_number(&order.order_id)?).await
    }
}

impl DigicertCa {
    /// Download certificate `certificate_id` of order `id` (`pem_all`), the root dropped, and
    /// remember it as the order's last seen certificate.
    async fn download_chain(&self, id: u64, certificate_id: u64) -> Result<Fetched, CaError> {
        let answer = self
            .call(
                Method::GET,
                &format!("certificate/{certificate_id}/download/format/pem_all"),
                None,
                true,
            )
            .await?;
        let text = String::from_utf8_lossy(&answer.body).replace("\r\n", "\n");
        let blocks = pem::parse_many(text.as_bytes()).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!("certificate {certificate_id} is not PEM"),
            )
            .with_source(error)
        })?;
        let certificates: Vec<&pem::Pem> =
            blocks.iter().filter(|b| b.tag() == "CERTIFICATE").collect();
        if certificates.is_empty() {
            return Err(CaError::new(
                ErrorClass::Protocol,
                format!("certificate {certificate_id} download holds no certificate"),
            ));
        }
        // Leaf then intermediates; a self-signed root at the end is dropped.
        let mut chain: Vec<String> = Vec::new();
        for (index, block) in certificates.iter().enumerate() {
            if index > 0 && is_self_signed(block.contents()) {
                continue;
            }
            chain.push(crate::keys::encode_certificate(block.contents()));
        }
        let chain_pem = chain.concat();
        if let Ok((leaf, _)) = crate::keys::inspect_chain(&chain_pem) {
            self.with_cache(|cache| {
                cache.orders.insert(
                    id,
                    Seen {
                        certificate_id: Some(certificate_id),
                        serial: Some(leaf.serial.clone()),
                    },
                );
                cache.tokens.remove(&id);
                cache.reissue_names.remove(&id);
            });
            self.save_cache_soon();
        }
        Ok(Fetched::Issued(IssuedCertificate {
            order_id: id.to_string(),
            certificate_id: Some(certificate_id.to_string()),
            chain_pem,
        }))
    }
}

/// Open the configured account `name`: resolve its API key; the cache lives under `keys_dir`.
pub fn open(
    name: &str,
    settings: &crate::config::DigicertCaSettings,
    keys_dir: &std::path::Path,
) -> Result<DigicertCa, CaError> {
    let key = crate::secrets::resolve(&settings.api_key).map_err(|e| {
        CaError::new(
            ErrorClass::Auth,
            format!("cannot read the API key of `{name}`"),
        )
        .with_source(e)
    })?;
    let mut resolved = DigicertSettings::new(settings.url.clone(), key);
    resolved.read_only = settings.read_only;
    resolved.cache_dir = Some(keys_dir.join("digicert").join(name));
    resolved.proxy = settings.proxy.clone();
    resolved.limits = settings
        .rate_limit
        .iter()
        .map(|window| {
            crate::http::Window::new(window.requests, StdDuration::from_millis(window.per_ms))
        })
        .collect();
    resolved.rate_limit_wait = RATE_LIMIT_WAIT;
    DigicertCa::open(name, resolved)
}

impl Drop for DigicertCa {
    fn drop(&mut self) {
        // Changes `save_cache_soon` left for later (best effort: a lost cache costs requests).
        if self.cache_dirty.load(std::sync::atomic::Ordering::Relaxed) {
            self.save_cache();
        }
    }
}

fn is_self_signed(der: &[u8]) -> bool {
    use x509_parser::prelude::{FromDer, X509Certificate};
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert.subject() == cert.issuer())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod contract_tests;
