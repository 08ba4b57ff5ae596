//! The built-in private CA (`kind = "local"`): a root, an intermediate and an order database.
//!
//! On first use it creates, in its own directory (mode 0700), an ECDSA P-256 root (10 years) and
//! intermediate (5 years, path length 0); later opens load them and never regenerate what exists.
//! Orders issue at once and are kept as one JSON file each under `orders/`, written atomically
//! under a lock, so certform's crash-safety (find an order by tag, never order twice) can be
//! tested against a real, persistent CA. Private keys never leave their 0600 files except into
//! the signer; they appear in no message.

mod issue;
mod material;
pub(crate) mod open;
mod orders;
pub mod settings;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rcgen::{Issuer, KeyPair};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use self::issue::whole_seconds;
use self::material::{check_issued_by, load_or_create_intermediate, load_or_create_root};
use self::orders::{corrupt, local_status_name};
use crate::ca::{
    CaError, Capabilities, CertificateAuthority, ErrorClass, Fetched, IssuedCertificate,
    OrderQuery, OrderRequest, RevokeOutcome,
};
use crate::config::model::LocalCaSettings;
use crate::keys::{self, PrivateKey};
use crate::observed::{OrderStatus, OrderView};
use crate::serial::Serial;
use crate::spec::RevocationReason;

const ROOT_KEY: &str = "root.key";
const ROOT_CERT: &str = "root.pem";
const INTERMEDIATE_KEY: &str = "intermediate.key";
const INTERMEDIATE_CERT: &str = "intermediate.pem";
const ORDERS_DIR: &str = "orders";
const LOCK_FILE: &str = ".lock";

const ROOT_LIFETIME_DAYS: i64 = 3650;
const INTERMEDIATE_LIFETIME_DAYS: i64 = 5 * 365;
/// CA certificates start a little in the past, to tolerate clock skew between runs.
const CA_BACKDATE: Duration = Duration::hours(1);
/// Smallest RSA modulus the CA signs.
const MIN_RSA_BITS: usize = 2048;

/// Status of a local order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalOrderStatus {
    Issued,
    Revoked,
    Canceled,
}

/// A certificate an order held before a reissue replaced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousCertificate {
    pub certificate_id: String,
    pub serial: Serial,
    /// Tag of the request that produced this certificate.
    pub tag: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub replaced_at: OffsetDateTime,
}

/// One order in the local CA's database (`orders/<order_id>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalOrder {
    pub order_id: String,
    /// Tag of the request behind the current certificate (the reissue's tag after a reissue).
    pub tag: String,
    pub status: LocalOrderStatus,
    pub common_name: String,
    pub sans: Vec<String>,
    /// Serial of the current certificate.
    pub serial: Serial,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Leaf then intermediate, PEM.
    pub chain_pem: String,
    pub certificate_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    pub renewal_of: Option<String>,
    pub revocation_reason: Option<RevocationReason>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Certificates replaced by reissues, oldest first.
    #[serde(default)]
    pub previous_certificates: Vec<PreviousCertificate>,
}

impl LocalOrder {
    /// Ids of the certificates replaced by reissues, oldest first.
    pub fn previous_certificate_ids(&self) -> Vec<String> {
        self.previous_certificates
            .iter()
            .map(|previous| previous.certificate_id.clone())
            .collect()
    }

    fn view(&self) -> OrderView {
        OrderView {
            order_id: self.order_id.clone(),
            status: match self.status {
                LocalOrderStatus::Issued => OrderStatus::Issued,
                LocalOrderStatus::Revoked => OrderStatus::Revoked,
                LocalOrderStatus::Canceled => OrderStatus::Canceled,
            },
            serial: Some(self.serial.clone()),
            not_after: Some(self.not_after),
            dcv: Vec::new(),
            plan_until: None,
        }
    }

    #[cfg(test)]
    fn has_tag(&self, tag: &str) -> bool {
        self.tag == tag || self.previous_certificates.iter().any(|p| p.tag == tag)
    }
}

/// Whether `simulate_failures` (`ppm` parts per million) refuses the order tagged `tag` at
/// `now`: a hash of both, so every try of one run gets the same answer and a later run
/// another.
fn simulated_failure(ppm: u32, tag: &str, now: OffsetDateTime) -> bool {
    if ppm == 0 {
        return false;
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(format!("{tag}/{}", now.unix_timestamp()));
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&digest[..4]);
    u32::from_be_bytes(bytes) % 1_000_000 < ppm
}

/// The built-in private CA.
pub struct LocalCa {
    name: String,
    inner: Arc<Inner>,
    /// `simulate_failures`, in parts per million.
    fail_ppm: u32,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("name", &self.name)
            .field("home", &self.inner.home)
            .finish_non_exhaustive()
    }
}

struct Inner {
    name: String,
    home: PathBuf,
    orders_dir: PathBuf,
    root_pem: String,
    intermediate_pem: String,
    intermediate_not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
    /// Serialises writers inside this process; `orders/.lock` (flock) across processes.
    lock: Mutex<()>,
}

impl LocalCa {
    /// Open the CA whose files live in `home`, creating root and intermediate on first use.
    pub fn open(
        name: &str,
        settings: &LocalCaSettings,
        home: PathBuf,
        now: OffsetDateTime,
    ) -> Result<LocalCa, CaError> {
        let now = whole_seconds(now);
        crate::atomic_file::create_dir_all(&home, 0o700)
            .and_then(|()| fs::set_permissions(&home, fs::Permissions::from_mode(0o700)))
            .map_err(|error| io_error(name, "create the CA directory", &home, error))?;
        let orders_dir = home.join(ORDERS_DIR);

        let (root_key, root_pem) = load_or_create_root(name, settings, &home, &orders_dir, now)?;
        let (intermediate_key, intermediate_pem) =
            load_or_create_intermediate(name, &home, &orders_dir, &root_key, &root_pem, now)?;
        check_issued_by(name, &intermediate_pem, &root_pem)?;

        crate::atomic_file::create_dir_all(&orders_dir, 0o700)
            .map_err(|error| io_error(name, "create the order directory", &orders_dir, error))?;

        let (intermediate_info, _) = keys::inspect_chain(&intermediate_pem)
            .map_err(|error| corrupt(name, INTERMEDIATE_CERT, error))?;
        let issuer = Issuer::from_ca_cert_pem(&intermediate_pem, intermediate_key.into_key_pair())
            .map_err(|error| corrupt(name, INTERMEDIATE_CERT, error))?;

        Ok(LocalCa {
            name: name.to_string(),
            fail_ppm: settings.simulate_failures_ppm,
            inner: Arc::new(Inner {
                name: name.to_string(),
                home,
                orders_dir,
                root_pem,
                intermediate_pem,
                intermediate_not_after: intermediate_info.not_after,
                issuer,
                lock: Mutex::new(()),
            }),
        })
    }

    /// PEM of the root certificate (the trust anchor to install in clients).
    pub fn root_pem(&self) -> String {
        self.inner.root_pem.clone()
    }

    /// PEM of the intermediate certificate.
    pub fn intermediate_pem(&self) -> String {
        self.inner.intermediate_pem.clone()
    }

    /// The CA's directory.
    pub fn home(&self) -> &Path {
        &self.inner.home
    }

    /// Every order in the database, sorted by order id.
    pub fn orders(&self) -> Result<Vec<LocalOrder>, CaError> {
        self.inner.load_all()
    }

    /// Run `work` on a blocking thread (it does file I/O, fsyncs and signing).
    async fn run<T, F>(&self, work: F) -> Result<T, CaError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, CaError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(move || work(&inner))
                .await
                .map_err(|error| {
                    CaError::new(
                        ErrorClass::Protocol,
                        format!("local CA `{}` task failed", self.name),
                    )
                    .with_source(error)
                })?,
            Err(_) => work(&inner),
        }
    }
}

/// What this CA can do (also used by the planner, without opening an account).
pub const CAPABILITIES: Capabilities = Capabilities {
    reissue_same_order: true,
    cancel: true,
    revoke: true,
    // The order database is written with the order, in the same process.
    duplicates: crate::capabilities::DuplicatePrevention::LocalIndex,
    cancel_refunds: false,
    honours_validity: true,
    max_orders_per_run: None,
    max_lifetime: &[],
    // Bound by file writes and fsyncs, which overlap: 1,000 renewals take ~25 % less time at
    // 16 than at 4 on the 2-core reference machine.
    parallel_certificates: 16,
};

#[async_trait]
impl CertificateAuthority for LocalCa {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "local"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    /// The CA material is readable and whole: `open` already checked that both keys match
    /// their certificates; this reads the keys again (they are read only at open) and the
    /// order database.
    async fn check_credentials(&self) -> Result<crate::ca::Credentials, CaError> {
        self.run(|inner| {
            for key_file in [ROOT_KEY, INTERMEDIATE_KEY] {
                let path = inner.home.join(key_file);
                let text = fs::read_to_string(&path)
                    .map_err(|error| io_error(&inner.name, "read", &path, error))?;
                PrivateKey::from_pem(&text)
                    .map_err(|error| corrupt(&inner.name, key_file, error))?;
            }
            let orders = inner.load_all()?;
            Ok(crate::ca::Credentials {
                identity: format!(
                    "the local CA in `{}` (intermediate valid until {}; {} order{})",
                    inner.home.display(),
                    crate::plan::render::format_time(inner.intermediate_not_after),
                    orders.len(),
                    if orders.len() == 1 { "" } else { "s" }
                ),
                read_only: false,
            })
        })
        .await
    }

    async fn account_info(&self) -> Result<crate::ca::AccountInfo, CaError> {
        use crate::ca::{InfoItem, InfoSection};
        let mut orders = self.run(|inner| inner.load_all()).await?;
        orders.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        let mut authority = Vec::new();
        for (role, file, pem) in [
            ("root", ROOT_CERT, &self.inner.root_pem),
            (
                "intermediate",
                INTERMEDIATE_CERT,
                &self.inner.intermediate_pem,
            ),
        ] {
            let (info, _) =
                keys::inspect_chain(pem).map_err(|error| corrupt(&self.name, file, error))?;
            let subject = info.common_name.clone().unwrap_or_default();
            let until = crate::plan::render::format_time(info.not_after);
            authority.push(InfoItem::new(
                format!(
                    "{role:<14} {subject}, serial {}, until {until}",
                    info.serial
                ),
                &serde_json::json!({
                    "role": role,
                    "common_name": subject,
                    "serial": info.serial,
                    "not_after": until,
                }),
            ));
        }
        let orders = orders
            .iter()
            .map(|order| {
                let status = local_status_name(order.status);
                let until = crate::plan::render::format_time(order.not_after);
                InfoItem::new(
                    format!(
                        "{:<24} {status:<8} {} (serial {}, until {until})",
                        order.order_id, order.common_name, order.serial
                    ),
                    &serde_json::json!({
                        "order_id": order.order_id,
                        "status": status,
                        "common_name": order.common_name,
                        "sans": order.sans,
                        "serial": order.serial,
                        "not_after": until,
                    }),
                )
            })
            .collect();
        Ok(crate::ca::AccountInfo {
            account: self.name.clone(),
            heading: format!(
                "local CA `{}` in `{}`",
                self.name,
                self.inner.home.display()
            ),
            sections: vec![
                InfoSection {
                    key: "authority".into(),
                    title: "Authority".into(),
                    items: authority,
                },
                InfoSection {
                    key: "orders".into(),
                    title: "Orders".into(),
                    items: orders,
                },
            ],
        })
    }

    /// Every order in the CA's database (each order file read only when the check cache has
    /// no summary for its stat data: the daily inventory lists a year of renewals).
    async fn list_orders(&self) -> Result<Vec<crate::ca::AccountOrder>, CaError> {
        let orders = self.run(|inner| inner.load_summaries()).await?;
        Ok(orders
            .into_iter()
            .map(|order| crate::ca::AccountOrder {
                status: local_status_name(order.status).to_string(),
                order_id: order.order_id,
                common_name: order.common_name,
                names: order.sans,
                serial: Some(order.serial),
                tag: Some(order.tag),
                not_after: Some(order.not_after),
                settings: Vec::new(),
                certificate_id: None,
                lineage: Default::default(),
            })
            .collect())
    }

    /// One read of the CA's database.
    async fn inventory_orders(&self) -> Result<Vec<crate::ca::AccountOrder>, CaError> {
        crate::ca::CertificateAuthority::list_orders(self).await
    }

    async fn refresh(&self, queries: &[OrderQuery]) -> Result<Vec<Option<OrderView>>, CaError> {
        let queries = queries.to_vec();
        self.run(move |inner| {
            // An order asked for by id is read from its own file (on a few threads): the
            // database keeps every order ever placed (a year of renewals is ten times the
            // fleet), and a refresh asks about each current certificate by id.
            // Each order is turned into its view on the thread that read it: the order
            // record holds the whole chain, and 10,000 of them at once are ~15 MB.
            let by_id = crate::par::map(&queries, |query| match query.order_id.as_deref() {
                Some(order_id) => inner.find_view_by_id(order_id),
                None => Ok(None),
            });
            let mut views = Vec::with_capacity(queries.len());
            let mut by_tag = Vec::new();
            for (index, (query, found)) in queries.iter().zip(by_id).enumerate() {
                match found? {
                    Some(view) => views.push(Some(view)),
                    None if query.tag.is_some() => {
                        views.push(None);
                        by_tag.push(index);
                    }
                    None => views.push(None),
                }
            }
            // Orders found only by tag (an interrupted order): one scan of the database,
            // looked up by tag, not a scan per query (quadratic at 10,000 certificates).
            if !by_tag.is_empty() {
                let orders = inner.load_all()?;
                let index = OrderIndex::new(&orders);
                for at in by_tag {
                    views[at] = index.find(&queries[at]).map(LocalOrder::view);
                }
            }
            Ok(views)
        })
        .await
    }

    async fn place_order(&self, request: &OrderRequest) -> Result<OrderView, CaError> {
        if simulated_failure(self.fail_ppm, &request.tag, request.now) {
            return Err(CaError::new(
                ErrorClass::Transient,
                format!(
                    "`{}` refused the order: a simulated transient failure (`simulate_failures`)",
                    self.name
                ),
            ));
        }
        let request = request.clone();
        self.run(move |inner| inner.place_order(&request)).await
    }

    async fn fetch(&self, order_id: &str) -> Result<Fetched, CaError> {
        let order_id = order_id.to_string();
        self.run(move |inner| {
            let order = inner.load_existing(&order_id)?;
            if order.status == LocalOrderStatus::Canceled {
                return Err(inner.rejected(format!("order `{order_id}` was canceled")));
            }
            Ok(Fetched::Issued(IssuedCertificate {
                order_id: order.order_id,
                certificate_id: Some(order.certificate_id),
                chain_pem: order.chain_pem,
            }))
        })
        .await
    }

    async fn reissue(&self, order_id: &str, request: &OrderRequest) -> Result<OrderView, CaError> {
        let order_id = order_id.to_string();
        let request = request.clone();
        self.run(move |inner| inner.reissue(&order_id, &request))
            .await
    }

    async fn revoke(
        &self,
        order_id: &str,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<RevokeOutcome, CaError> {
        let order_id = order_id.to_string();
        let serial = serial.clone();
        self.run(move |inner| inner.revoke(&order_id, &serial, reason))
            .await
    }

    async fn cancel(&self, order_id: &str) -> Result<(), CaError> {
        let order_id = order_id.to_string();
        self.run(move |inner| {
            let order = inner.load_existing(&order_id)?;
            let status = match order.status {
                LocalOrderStatus::Issued => "issued",
                LocalOrderStatus::Revoked => "revoked",
                LocalOrderStatus::Canceled => return Ok(()),
            };
            Err(inner.rejected(format!(
                "order `{order_id}` is already {status}: local orders issue at once, so only \
                 pending orders could be canceled (revoke the certificate instead)"
            )))
        })
        .await
    }

    fn trust_anchor_pem(&self) -> Option<String> {
        Some(self.root_pem())
    }
}

/// The order a query names: by order id first, else the newest order carrying the tag (the
/// plain statement of what `OrderIndex::find` answers).
#[cfg(test)]
fn find<'a>(orders: &'a [LocalOrder], query: &OrderQuery) -> Option<&'a LocalOrder> {
    if let Some(order_id) = &query.order_id {
        if let Some(order) = orders.iter().find(|order| &order.order_id == order_id) {
            return Some(order);
        }
    }
    let tag = query.tag.as_deref()?;
    orders
        .iter()
        .filter(|order| order.has_tag(tag))
        .max_by(|a, b| (a.created, &a.order_id).cmp(&(b.created, &b.order_id)))
}

/// `find` over many queries: the orders by id (the first with an id, as `find` scans) and by
/// tag (the newest carrying it).
struct OrderIndex<'a> {
    by_id: std::collections::HashMap<&'a str, &'a LocalOrder>,
    by_tag: std::collections::HashMap<&'a str, &'a LocalOrder>,
}

impl<'a> OrderIndex<'a> {
    fn new(orders: &'a [LocalOrder]) -> Self {
        let mut by_id = std::collections::HashMap::with_capacity(orders.len());
        let mut by_tag: std::collections::HashMap<&str, &LocalOrder> =
            std::collections::HashMap::with_capacity(orders.len());
        let newer =
            |a: &LocalOrder, b: &LocalOrder| (a.created, &a.order_id) > (b.created, &b.order_id);
        for order in orders {
            by_id.entry(order.order_id.as_str()).or_insert(order);
            let tags = std::iter::once(order.tag.as_str())
                .chain(order.previous_certificates.iter().map(|p| p.tag.as_str()));
            for tag in tags {
                by_tag
                    .entry(tag)
                    .and_modify(|kept| {
                        if newer(order, kept) {
                            *kept = order;
                        }
                    })
                    .or_insert(order);
            }
        }
        OrderIndex { by_id, by_tag }
    }

    /// What `find(orders, query)` returns.
    fn find(&self, query: &OrderQuery) -> Option<&'a LocalOrder> {
        if let Some(order) = query.order_id.as_deref().and_then(|id| self.by_id.get(id)) {
            return Some(order);
        }
        self.by_tag.get(query.tag.as_deref()?).copied()
    }
}

fn io_error(name: &str, action: &str, path: &Path, error: io::Error) -> CaError {
    CaError::new(
        ErrorClass::Transient,
        format!("local CA `{name}`: failed to {action} `{}`", path.display()),
    )
    .with_source(error)
}

#[cfg(test)]
mod tests;
