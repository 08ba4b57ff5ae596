//! The built-in private CA (`kind = "local"`): a root, an intermediate and an order database.
//!
//! On first use it creates, in its own directory (mode 0700), an ECDSA P-256 root (10 years) and
//! intermediate (5 years, path length 0); later opens load them and never regenerate what exists.
//! Orders issue at once and are kept as one JSON file each under `orders/`, written atomically
//! under a lock, so certform's crash-safety (find an order by tag, never order twice) can be
//! tested against a real, persistent CA. Private keys never leave their 0600 files except into
//! the signer; they appear in no message.

pub(crate) mod open;
pub mod settings;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::ca::{
    CaError, Capabilities, CertificateAuthority, ErrorClass, Fetched, IssuedCertificate,
    OrderQuery, OrderRequest, RevokeOutcome,
};
use crate::config::model::LocalCaSettings;
use crate::keys::{self, PrivateKey};
use crate::observed::{OrderStatus, OrderView};
use crate::serial::Serial;
use crate::spec::{KeySpec, RevocationReason};

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
        }
    }

    fn has_tag(&self, tag: &str) -> bool {
        self.tag == tag || self.previous_certificates.iter().any(|p| p.tag == tag)
    }
}

/// The built-in private CA.
pub struct LocalCa {
    name: String,
    inner: Arc<Inner>,
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

    /// Every order in the CA's database.
    async fn list_orders(&self) -> Result<Vec<crate::ca::AccountOrder>, CaError> {
        let mut orders = self.run(|inner| inner.load_all()).await?;
        orders.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        Ok(orders
            .into_iter()
            .map(|order| crate::ca::AccountOrder {
                status: local_status_name(order.status).to_string(),
                order_id: order.order_id,
                common_name: order.common_name,
                not_after: Some(order.not_after),
                settings: Vec::new(),
            })
            .collect())
    }

    async fn refresh(&self, queries: &[OrderQuery]) -> Result<Vec<Option<OrderView>>, CaError> {
        let queries = queries.to_vec();
        self.run(move |inner| {
            let orders = inner.load_all()?;
            Ok(queries
                .iter()
                .map(|query| find(&orders, query).map(LocalOrder::view))
                .collect())
        })
        .await
    }

    async fn place_order(&self, request: &OrderRequest) -> Result<OrderView, CaError> {
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

/// The order a query names: by order id first, else the newest order carrying the tag.
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

/// What a verified CSR contributes to a certificate.
struct CsrKey {
    public_key: rcgen::SubjectPublicKeyInfo,
    is_rsa: bool,
}

/// A freshly signed leaf.
struct SignedLeaf {
    chain_pem: String,
    serial: Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    certificate_id: String,
}

impl Inner {
    fn rejected(&self, message: impl Into<String>) -> CaError {
        CaError::new(
            ErrorClass::Rejected,
            format!("local CA `{}`: {}", self.name, message.into()),
        )
    }

    fn place_order(&self, request: &OrderRequest) -> Result<OrderView, CaError> {
        let leaf = self.sign(request)?;
        self.with_lock(|| {
            let order_id = self.new_order_id()?;
            let order = LocalOrder {
                order_id,
                tag: request.tag.clone(),
                status: LocalOrderStatus::Issued,
                common_name: request.common_name.clone(),
                sans: normalise_names(&request.sans),
                serial: leaf.serial,
                not_before: leaf.not_before,
                not_after: leaf.not_after,
                chain_pem: leaf.chain_pem,
                certificate_id: leaf.certificate_id,
                created: whole_seconds(request.now),
                renewal_of: request.renewal_of.clone(),
                revocation_reason: None,
                revoked_at: None,
                previous_certificates: Vec::new(),
            };
            self.store(&order)?;
            Ok(order.view())
        })
    }

    fn reissue(&self, order_id: &str, request: &OrderRequest) -> Result<OrderView, CaError> {
        // Check first so a bad order id is reported before any signing work.
        self.load_existing(order_id)?;
        let leaf = self.sign(request)?;
        self.with_lock(|| {
            let mut order = self.load_existing(order_id)?;
            match order.status {
                LocalOrderStatus::Issued => {}
                LocalOrderStatus::Revoked => {
                    return Err(self.rejected(format!(
                        "order `{order_id}` is revoked and cannot be reissued"
                    )))
                }
                LocalOrderStatus::Canceled => {
                    return Err(self.rejected(format!(
                        "order `{order_id}` is canceled and cannot be reissued"
                    )))
                }
            }
            order.previous_certificates.push(PreviousCertificate {
                certificate_id: order.certificate_id.clone(),
                serial: order.serial.clone(),
                tag: order.tag.clone(),
                not_after: order.not_after,
                replaced_at: whole_seconds(request.now),
            });
            order.tag = request.tag.clone();
            order.common_name = request.common_name.clone();
            order.sans = normalise_names(&request.sans);
            order.serial = leaf.serial;
            order.not_before = leaf.not_before;
            order.not_after = leaf.not_after;
            order.chain_pem = leaf.chain_pem;
            order.certificate_id = leaf.certificate_id;
            self.store(&order)?;
            Ok(order.view())
        })
    }

    fn revoke(
        &self,
        order_id: &str,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<RevokeOutcome, CaError> {
        self.with_lock(|| {
            let mut order = self.load_existing(order_id)?;
            match order.status {
                LocalOrderStatus::Issued => {}
                // Asked again for the same certificate (a run that died before recording the
                // revocation): done, as at the other CAs.
                LocalOrderStatus::Revoked if *serial == order.serial => {
                    return Ok(RevokeOutcome::Revoked)
                }
                LocalOrderStatus::Revoked => {
                    return Err(self.rejected(format!("order `{order_id}` is already revoked")))
                }
                LocalOrderStatus::Canceled => {
                    return Err(self.rejected(format!(
                        "order `{order_id}` was canceled; there is nothing to revoke"
                    )))
                }
            }
            if *serial != order.serial {
                let replaced = order
                    .previous_certificates
                    .iter()
                    .any(|previous| previous.serial == *serial);
                let detail = if replaced {
                    "was replaced by a reissue; only the current certificate can be revoked"
                } else {
                    "does not belong to this order"
                };
                return Err(
                    self.rejected(format!("serial `{serial}` of order `{order_id}` {detail}"))
                );
            }
            order.status = LocalOrderStatus::Revoked;
            order.revocation_reason = Some(reason);
            order.revoked_at = Some(whole_seconds(OffsetDateTime::now_utc()));
            self.store(&order)?;
            Ok(RevokeOutcome::Revoked)
        })
    }

    /// Verify the request and its CSR, then sign a leaf with the intermediate.
    fn sign(&self, request: &OrderRequest) -> Result<SignedLeaf, CaError> {
        let sans = normalise_names(&request.sans);
        if sans.is_empty() {
            return Err(self.rejected("the order names no subject alternative names"));
        }
        let csr = self.verify_csr(&request.csr_der, &sans)?;

        let now = whole_seconds(request.now);
        if now >= self.intermediate_not_after {
            return Err(self.rejected(format!(
                "the intermediate expired on {}; create a new CA",
                self.intermediate_not_after
            )));
        }
        let requested_not_after = whole_seconds(request.validity.not_after(now));
        if requested_not_after <= now {
            return Err(self.rejected(format!(
                "requested validity ends ({requested_not_after}) before the certificate starts ({now})"
            )));
        }
        // Like any CA, never issue beyond the issuing certificate's own lifetime.
        let not_after = requested_not_after.min(self.intermediate_not_after);

        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        if !request.common_name.is_empty() {
            subject.push(DnType::CommonName, request.common_name.as_str());
        }
        params.distinguished_name = subject;
        params.subject_alt_names = sans
            .iter()
            .map(|name| {
                rcgen::string::Ia5String::try_from(name.as_str())
                    .map(SanType::DnsName)
                    .map_err(|_| self.rejected(format!("name `{name}` is not a valid DNS name")))
            })
            .collect::<Result<_, _>>()?;
        params.not_before = now;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = if csr.is_rsa {
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ]
        } else {
            vec![KeyUsagePurpose::DigitalSignature]
        };
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;

        let leaf = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(|error| {
                self.rejected("failed to sign the certificate")
                    .with_source(error)
            })?;
        let chain_pem = format!("{}{}", leaf.pem(), ensure_newline(&self.intermediate_pem));
        let (info, _) = keys::inspect_chain(&chain_pem).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "local CA `{}` produced an unreadable certificate",
                    self.name
                ),
            )
            .with_source(error)
        })?;
        Ok(SignedLeaf {
            chain_pem,
            serial: info.serial,
            not_before: info.not_before,
            not_after: info.not_after,
            certificate_id: format!("lc-{}", hex::encode(random_bytes::<8>()?)),
        })
    }

    /// Parse the CSR, check its signature and that it asks for exactly `sans`.
    fn verify_csr(&self, csr_der: &[u8], sans: &[String]) -> Result<CsrKey, CaError> {
        use x509_parser::certification_request::X509CertificationRequest;

        let (rest, csr) = X509CertificationRequest::from_der(csr_der).map_err(|error| {
            self.rejected("the CSR is not a DER PKCS#10 request")
                .with_source(error)
        })?;
        if !rest.is_empty() {
            return Err(self.rejected("the CSR has trailing bytes"));
        }
        csr.verify_signature().map_err(|error| {
            self.rejected("the CSR signature does not verify")
                .with_source(error)
        })?;

        let mut csr_names = Vec::new();
        if let Some(extensions) = csr.requested_extensions() {
            for extension in extensions {
                if let ParsedExtension::SubjectAlternativeName(san) = extension {
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(dns) => csr_names.push(dns.to_string()),
                            other => {
                                return Err(self.rejected(format!(
                                    "the CSR asks for a non-DNS subject alternative name ({other})"
                                )))
                            }
                        }
                    }
                }
            }
        }
        let csr_names = normalise_names(&csr_names);
        if csr_names != sans {
            return Err(self.rejected(format!(
                "the CSR names [{}] differ from the order's names [{}]",
                csr_names.join(", "),
                sans.join(", ")
            )));
        }

        let spki = &csr.certification_request_info.subject_pki;
        let is_rsa = spki.algorithm.algorithm == x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
        if is_rsa {
            let bits = match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => rsa.key_size(),
                _ => 0,
            };
            if bits < MIN_RSA_BITS {
                return Err(self.rejected(format!(
                    "RSA keys must have at least {MIN_RSA_BITS} bits (the CSR's has {bits})"
                )));
            }
        }
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(spki.raw).map_err(|error| {
            self.rejected("the CSR's key algorithm is not supported")
                .with_source(error)
        })?;
        Ok(CsrKey { public_key, is_rsa })
    }

    /// Run `work` holding the in-process mutex and the database's file lock.
    fn with_lock<T>(&self, work: impl FnOnce() -> Result<T, CaError>) -> Result<T, CaError> {
        // A poisoned mutex only means another thread panicked; the files are still consistent
        // because every write is atomic.
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let lock_path = self.orders_dir.join(LOCK_FILE);
        let _file_lock = crate::atomic_file::FileLock::acquire(&lock_path)
            .map_err(|error| io_error(&self.name, "lock", &lock_path, error))?;
        work()
    }

    fn new_order_id(&self) -> Result<String, CaError> {
        loop {
            let order_id = format!("lo-{}", hex::encode(random_bytes::<6>()?));
            if !self.order_path(&order_id).exists() {
                return Ok(order_id);
            }
        }
    }

    fn order_path(&self, order_id: &str) -> PathBuf {
        self.orders_dir.join(format!("{order_id}.json"))
    }

    fn store(&self, order: &LocalOrder) -> Result<(), CaError> {
        let path = self.order_path(&order.order_id);
        let mut json = serde_json::to_vec_pretty(order).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!("failed to encode order `{}`", order.order_id),
            )
            .with_source(error)
        })?;
        json.push(b'\n');
        crate::atomic_file::write(&path, &json, 0o600)
            .map_err(|error| io_error(&self.name, "write", &path, error))
    }

    /// Load an order the caller named; unknown (or malformed) ids are `Rejected`.
    fn load_existing(&self, order_id: &str) -> Result<LocalOrder, CaError> {
        if !is_order_id(order_id) {
            return Err(self.rejected(format!("no such order `{order_id}`")));
        }
        let path = self.order_path(order_id);
        match fs::read(&path) {
            Ok(bytes) => self.parse_order(&path, &bytes),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Err(self.rejected(format!("no such order `{order_id}`")))
            }
            Err(error) => Err(io_error(&self.name, "read", &path, error)),
        }
    }

    fn parse_order(&self, path: &Path, bytes: &[u8]) -> Result<LocalOrder, CaError> {
        serde_json::from_slice(bytes).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "local CA `{}`: order file `{}` is corrupt",
                    self.name,
                    path.display()
                ),
            )
            .with_source(error)
        })
    }

    /// Every order, sorted by id (the "index" of the database is a directory scan).
    fn load_all(&self) -> Result<Vec<LocalOrder>, CaError> {
        let entries = fs::read_dir(&self.orders_dir)
            .map_err(|error| io_error(&self.name, "list", &self.orders_dir, error))?;
        let mut orders = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|error| io_error(&self.name, "list", &self.orders_dir, error))?;
            let file_name = entry.file_name();
            let Some(stem) = file_name
                .to_str()
                .and_then(|name| name.strip_suffix(".json"))
            else {
                continue;
            };
            if !is_order_id(stem) {
                continue;
            }
            let path = entry.path();
            match fs::read(&path) {
                Ok(bytes) => orders.push(self.parse_order(&path, &bytes)?),
                // Lost a race with nothing: orders are never deleted, but be tolerant.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error(&self.name, "read", &path, error)),
            }
        }
        orders.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        Ok(orders)
    }
}

/// Load the root, repair a root whose key exists without its certificate, or create it.
fn load_or_create_root(
    name: &str,
    settings: &LocalCaSettings,
    home: &Path,
    orders_dir: &Path,
    now: OffsetDateTime,
) -> Result<(PrivateKey, String), CaError> {
    let key = read_key(name, home, ROOT_KEY)?;
    let cert = read_text(name, home, ROOT_CERT)?;
    match (key, cert) {
        (Some(key), Some(cert)) => {
            check_key_matches(name, ROOT_CERT, &cert, &key)?;
            let (info, _) =
                keys::inspect_chain(&cert).map_err(|error| corrupt(name, ROOT_CERT, error))?;
            if info.common_name.as_deref() != Some(settings.root_common_name.as_str()) {
                tracing::warn!(
                    ca = name,
                    "the existing root keeps its common name; `root_common_name` applies only to a new CA"
                );
            }
            Ok((key, cert))
        }
        (Some(key), None) => {
            // The key was written (and fsynced) but the run died before the certificate: the
            // certificate was never seen by anyone, so making it again from the same key is safe.
            let cert = root_certificate(name, settings, &key, now)?;
            write_file(name, home, ROOT_CERT, &cert, 0o644)?;
            Ok((key, cert))
        }
        (None, Some(_)) => Err(broken(
            name,
            home,
            format!("`{ROOT_CERT}` exists but its key `{ROOT_KEY}` is missing"),
        )),
        (None, None) => {
            for other in [INTERMEDIATE_KEY, INTERMEDIATE_CERT] {
                if home.join(other).exists() {
                    return Err(broken(
                        name,
                        home,
                        format!("`{other}` exists but the root (`{ROOT_KEY}`) is missing"),
                    ));
                }
            }
            refuse_if_orders_exist(name, home, orders_dir, "the root is missing")?;
            let key = generate_ca_key(name)?;
            write_file(name, home, ROOT_KEY, key.pem(), 0o600)?;
            let cert = root_certificate(name, settings, &key, now)?;
            write_file(name, home, ROOT_CERT, &cert, 0o644)?;
            Ok((key, cert))
        }
    }
}

/// Load the intermediate, repair one whose key exists without its certificate, or create it.
fn load_or_create_intermediate(
    name: &str,
    home: &Path,
    orders_dir: &Path,
    root_key: &PrivateKey,
    root_pem: &str,
    now: OffsetDateTime,
) -> Result<(PrivateKey, String), CaError> {
    let key = read_key(name, home, INTERMEDIATE_KEY)?;
    let cert = read_text(name, home, INTERMEDIATE_CERT)?;
    match (key, cert) {
        (Some(key), Some(cert)) => {
            check_key_matches(name, INTERMEDIATE_CERT, &cert, &key)?;
            Ok((key, cert))
        }
        (Some(key), None) => {
            let cert = intermediate_certificate(name, &key, root_key, root_pem, now)?;
            write_file(name, home, INTERMEDIATE_CERT, &cert, 0o644)?;
            Ok((key, cert))
        }
        (None, Some(_)) => Err(broken(
            name,
            home,
            format!("`{INTERMEDIATE_CERT}` exists but its key `{INTERMEDIATE_KEY}` is missing"),
        )),
        (None, None) => {
            refuse_if_orders_exist(name, home, orders_dir, "the intermediate is missing")?;
            let key = generate_ca_key(name)?;
            write_file(name, home, INTERMEDIATE_KEY, key.pem(), 0o600)?;
            let cert = intermediate_certificate(name, &key, root_key, root_pem, now)?;
            write_file(name, home, INTERMEDIATE_CERT, &cert, 0o644)?;
            Ok((key, cert))
        }
    }
}

fn root_certificate(
    name: &str,
    settings: &LocalCaSettings,
    key: &PrivateKey,
    now: OffsetDateTime,
) -> Result<String, CaError> {
    let mut params = ca_params(
        &settings.root_common_name,
        BasicConstraints::Unconstrained,
        now,
    )?;
    params.not_after = now + Duration::days(ROOT_LIFETIME_DAYS);
    let cert = params
        .self_signed(key.key_pair())
        .map_err(|error| ca_creation_error(name, "root", error))?;
    Ok(cert.pem())
}

fn intermediate_certificate(
    name: &str,
    key: &PrivateKey,
    root_key: &PrivateKey,
    root_pem: &str,
    now: OffsetDateTime,
) -> Result<String, CaError> {
    let (root_info, _) =
        keys::inspect_chain(root_pem).map_err(|error| corrupt(name, ROOT_CERT, error))?;
    let mut params = ca_params(
        &format!("certform local intermediate ({name})"),
        BasicConstraints::Constrained(0),
        now,
    )?;
    params.not_after = (now + Duration::days(INTERMEDIATE_LIFETIME_DAYS)).min(root_info.not_after);
    params.use_authority_key_identifier_extension = true;
    let root_issuer = Issuer::from_ca_cert_pem(root_pem, root_key.key_pair())
        .map_err(|error| corrupt(name, ROOT_CERT, error))?;
    let cert = params
        .signed_by(key.key_pair(), &root_issuer)
        .map_err(|error| ca_creation_error(name, "intermediate", error))?;
    Ok(cert.pem())
}

fn ca_params(
    common_name: &str,
    constraints: BasicConstraints,
    now: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - CA_BACKDATE;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    Ok(params)
}

fn generate_ca_key(name: &str) -> Result<PrivateKey, CaError> {
    PrivateKey::generate(KeySpec::Ecdsa(256)).map_err(|error| {
        CaError::new(
            ErrorClass::Protocol,
            format!("local CA `{name}`: failed to generate a key"),
        )
        .with_source(error)
    })
}

fn ca_creation_error(name: &str, what: &str, error: rcgen::Error) -> CaError {
    CaError::new(
        ErrorClass::Protocol,
        format!("local CA `{name}`: failed to create the {what} certificate"),
    )
    .with_source(error)
}

/// Check that `cert_pem` carries the public key of `key`.
fn check_key_matches(
    name: &str,
    file: &str,
    cert_pem: &str,
    key: &PrivateKey,
) -> Result<(), CaError> {
    let (info, _) = keys::inspect_chain(cert_pem).map_err(|error| corrupt(name, file, error))?;
    if info.spki_sha256 != key.spki_sha256() {
        return Err(CaError::new(
            ErrorClass::Protocol,
            format!("local CA `{name}`: `{file}` does not match its key file"),
        ));
    }
    Ok(())
}

/// Check that the intermediate is a CA certificate signed by the root.
fn check_issued_by(name: &str, intermediate_pem: &str, root_pem: &str) -> Result<(), CaError> {
    let intermediate =
        pem::parse(intermediate_pem).map_err(|error| corrupt(name, INTERMEDIATE_CERT, error))?;
    let root = pem::parse(root_pem).map_err(|error| corrupt(name, ROOT_CERT, error))?;
    let (_, intermediate) = X509Certificate::from_der(intermediate.contents())
        .map_err(|error| corrupt(name, INTERMEDIATE_CERT, error))?;
    let (_, root) = X509Certificate::from_der(root.contents())
        .map_err(|error| corrupt(name, ROOT_CERT, error))?;
    let root_key: &SubjectPublicKeyInfo = root.public_key();
    if !intermediate.is_ca() || intermediate.verify_signature(Some(root_key)).is_err() {
        return Err(CaError::new(
            ErrorClass::Protocol,
            format!("local CA `{name}`: `{INTERMEDIATE_CERT}` is not a CA certificate issued by `{ROOT_CERT}`"),
        ));
    }
    Ok(())
}

fn refuse_if_orders_exist(
    name: &str,
    home: &Path,
    orders_dir: &Path,
    problem: &str,
) -> Result<(), CaError> {
    let has_orders = match fs::read_dir(orders_dir) {
        Ok(mut entries) => entries.any(|entry| {
            entry
                .ok()
                .and_then(|entry| entry.file_name().to_str().map(|n| n.ends_with(".json")))
                .unwrap_or(false)
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => false,
        Err(error) => return Err(io_error(name, "list", orders_dir, error)),
    };
    if has_orders {
        return Err(broken(
            name,
            home,
            format!("{problem} but orders exist; a new CA would not match them"),
        ));
    }
    Ok(())
}

fn broken(name: &str, home: &Path, problem: String) -> CaError {
    CaError::new(
        ErrorClass::Protocol,
        format!(
            "local CA `{name}` in `{}` is damaged: {problem}; restore the missing file from a \
             backup, or move the directory away to start a new CA",
            home.display()
        ),
    )
}

fn corrupt(
    name: &str,
    file: &str,
    error: impl std::error::Error + Send + Sync + 'static,
) -> CaError {
    CaError::new(
        ErrorClass::Protocol,
        format!("local CA `{name}`: `{file}` cannot be read"),
    )
    .with_source(error)
}

fn local_status_name(status: LocalOrderStatus) -> &'static str {
    match status {
        LocalOrderStatus::Issued => "issued",
        LocalOrderStatus::Revoked => "revoked",
        LocalOrderStatus::Canceled => "canceled",
    }
}

fn io_error(name: &str, action: &str, path: &Path, error: io::Error) -> CaError {
    CaError::new(
        ErrorClass::Transient,
        format!("local CA `{name}`: failed to {action} `{}`", path.display()),
    )
    .with_source(error)
}

fn read_text(name: &str, home: &Path, file: &str) -> Result<Option<String>, CaError> {
    let path = home.join(file);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error(name, "read", &path, error)),
    }
}

fn read_key(name: &str, home: &Path, file: &str) -> Result<Option<PrivateKey>, CaError> {
    read_text(name, home, file)?
        .map(|text| PrivateKey::from_pem(&text).map_err(|error| corrupt(name, file, error)))
        .transpose()
}

fn write_file(name: &str, home: &Path, file: &str, text: &str, mode: u32) -> Result<(), CaError> {
    let path = home.join(file);
    crate::atomic_file::write(&path, text.as_bytes(), mode)
        .map_err(|error| io_error(name, "write", &path, error))
}

/// `lo-` followed by 12 lowercase hex digits (also keeps ids from naming other paths).
fn is_order_id(order_id: &str) -> bool {
    order_id.strip_prefix("lo-").is_some_and(|rest| {
        rest.len() == 12
            && rest
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    })
}

/// Lowercase, sorted, without duplicates.
fn normalise_names(names: &[String]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|name| name.to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    names
}

fn ensure_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

/// A random positive 16-byte serial (top bit clear, second bit set so it is always 16 bytes).
fn random_serial() -> Result<[u8; 16], CaError> {
    let mut serial = random_bytes::<16>()?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(serial)
}

/// `N` bytes from the kernel's CSPRNG.
fn random_bytes<const N: usize>() -> Result<[u8; N], CaError> {
    let mut buffer = [0u8; N];
    let mut filled = 0;
    while filled < N {
        let remaining = &mut buffer[filled..];
        // SAFETY: the pointer and length describe `remaining`, a live, writable slice.
        let read = unsafe {
            libc::getrandom(
                remaining.as_mut_ptr().cast::<libc::c_void>(),
                remaining.len(),
                0,
            )
        };
        if read < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(CaError::new(
                ErrorClass::Transient,
                "failed to read random bytes from the kernel",
            )
            .with_source(error));
        }
        filled += read.unsigned_abs();
    }
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::process::Command;

    use super::*;
    use crate::spec::Validity;

    fn openssl(args: &[&str]) -> std::process::Output {
        Command::new("openssl")
            .args(args)
            .output()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run `openssl` ({error}); install it (e.g. `apt-get install openssl`)"
                )
            })
    }

    fn settings() -> LocalCaSettings {
        LocalCaSettings {
            root_common_name: "certform test root".to_string(),
        }
    }

    fn open(home: &Path) -> LocalCa {
        LocalCa::open(
            "test",
            &settings(),
            home.to_path_buf(),
            OffsetDateTime::now_utc(),
        )
        .unwrap()
    }

    fn request(tag: &str, names: &[&str], key: &PrivateKey) -> OrderRequest {
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        OrderRequest {
            tag: tag.to_string(),
            common_name: sans[0].clone(),
            sans: sans.clone(),
            csr_der: key.csr_der(&sans[0], &sans).unwrap(),
            validity: Validity::Days(90),
            renewal_of: None,
            options: Default::default(),
            dcv: Vec::new(),
            now: OffsetDateTime::now_utc(),
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn issued_chain_verifies_with_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("ca");
        let ca = open(&home);
        assert_eq!(mode(&home), 0o700);
        assert_eq!(mode(&home.join(ROOT_KEY)), 0o600);
        assert_eq!(mode(&home.join(INTERMEDIATE_KEY)), 0o600);
        assert_eq!(ca.trust_anchor_pem(), Some(ca.root_pem()));

        let key = PrivateKey::generate(KeySpec::Rsa(2048)).unwrap();
        let mut req = request("t-1", &["www.example.test", "example.test"], &key);
        req.common_name = "www.example.test".to_string();
        let view = ca.place_order(&req).await.unwrap();
        assert_eq!(view.status, OrderStatus::Issued);
        assert!(view.order_id.starts_with("lo-"));
        let issued = ca.fetch(&view.order_id).await.unwrap().issued().unwrap();
        let (info, pems) = keys::inspect_chain(&issued.chain_pem).unwrap();
        assert_eq!(pems.len(), 2, "leaf + intermediate, no root");
        assert_eq!(Some(info.serial.clone()), view.serial);
        assert_eq!(info.sans, vec!["example.test", "www.example.test"]);
        assert_eq!(info.common_name.as_deref(), Some("www.example.test"));
        assert_eq!(info.spki_sha256, key.spki_sha256());
        assert_eq!(info.not_before, whole_seconds(req.now));
        assert_eq!(info.not_after, whole_seconds(req.now) + Duration::days(90));
        assert_eq!(view.not_after, Some(info.not_after));
        assert_eq!(info.serial.as_str().len(), 32, "16-byte serial");

        let root = dir.path().join("root.pem");
        let chain = dir.path().join("chain.pem");
        let leaf = dir.path().join("leaf.pem");
        fs::write(&root, ca.root_pem()).unwrap();
        fs::write(&chain, &issued.chain_pem).unwrap();
        fs::write(&leaf, &pems[0]).unwrap();
        let output = openssl(&[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            chain.to_str().unwrap(),
            "-purpose",
            "sslserver",
            leaf.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );

        let text = openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("Digital Signature, Key Encipherment"),
            "{text}"
        );
        assert!(text.contains("TLS Web Server Authentication"), "{text}");
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(text.contains("Authority Key Identifier"), "{text}");
        assert!(text.contains("Subject Key Identifier"), "{text}");

        let intermediate = dir.path().join("intermediate.pem");
        fs::write(&intermediate, ca.intermediate_pem()).unwrap();
        let text = openssl(&[
            "x509",
            "-in",
            intermediate.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert!(
            text.contains("certform local intermediate (test)"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn ecdsa_leaf_has_only_digital_signature() {
        let dir = tempfile::tempdir().unwrap();
        let ca = open(dir.path());
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let view = ca
            .place_order(&request("t", &["a.test"], &key))
            .await
            .unwrap();
        let chain = ca
            .fetch(&view.order_id)
            .await
            .unwrap()
            .issued()
            .unwrap()
            .chain_pem;
        let der = pem::parse(&chain).unwrap();
        let (_, cert) = X509Certificate::from_der(der.contents()).unwrap();
        let usage = cert.key_usage().unwrap().unwrap().value;
        assert!(usage.digital_signature());
        assert!(!usage.key_encipherment());
    }

    #[tokio::test]
    async fn reopen_keeps_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path());
        let second = open(dir.path());
        assert_eq!(first.root_pem(), second.root_pem());
        assert_eq!(first.intermediate_pem(), second.intermediate_pem());
    }

    #[test]
    fn half_created_home_is_repaired_or_refused() {
        // Key without certificate: repaired from the same key.
        let dir = tempfile::tempdir().unwrap();
        let ca = open(dir.path());
        let root_key = fs::read_to_string(dir.path().join(ROOT_KEY)).unwrap();
        let intermediate_key = fs::read_to_string(dir.path().join(INTERMEDIATE_KEY)).unwrap();
        drop(ca);
        fs::remove_file(dir.path().join(INTERMEDIATE_CERT)).unwrap();
        let repaired = open(dir.path());
        assert_eq!(
            fs::read_to_string(dir.path().join(INTERMEDIATE_KEY)).unwrap(),
            intermediate_key
        );
        let (info, _) = keys::inspect_chain(&repaired.intermediate_pem()).unwrap();
        assert_eq!(
            info.spki_sha256,
            PrivateKey::from_pem(&intermediate_key)
                .unwrap()
                .spki_sha256()
        );
        fs::remove_file(dir.path().join(ROOT_CERT)).unwrap();
        fs::remove_file(dir.path().join(INTERMEDIATE_CERT)).unwrap();
        open(dir.path());
        assert_eq!(
            fs::read_to_string(dir.path().join(ROOT_KEY)).unwrap(),
            root_key
        );

        // Certificate without key: a clear error, nothing replaced.
        fs::remove_file(dir.path().join(INTERMEDIATE_KEY)).unwrap();
        let before = fs::read_to_string(dir.path().join(INTERMEDIATE_CERT)).unwrap();
        let error = LocalCa::open(
            "test",
            &settings(),
            dir.path().to_path_buf(),
            OffsetDateTime::now_utc(),
        )
        .unwrap_err();
        assert!(error.message.contains("intermediate.key"), "{error}");
        assert!(error.message.contains("is missing"), "{error}");
        assert_eq!(
            fs::read_to_string(dir.path().join(INTERMEDIATE_CERT)).unwrap(),
            before
        );

        fs::remove_file(dir.path().join(ROOT_KEY)).unwrap();
        let error = LocalCa::open(
            "test",
            &settings(),
            dir.path().to_path_buf(),
            OffsetDateTime::now_utc(),
        )
        .unwrap_err();
        assert!(error.message.contains("root.key"), "{error}");
    }

    #[tokio::test]
    async fn missing_intermediate_with_orders_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = open(dir.path());
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        ca.place_order(&request("t", &["a.test"], &key))
            .await
            .unwrap();
        drop(ca);
        fs::remove_file(dir.path().join(INTERMEDIATE_KEY)).unwrap();
        fs::remove_file(dir.path().join(INTERMEDIATE_CERT)).unwrap();
        let error = LocalCa::open(
            "test",
            &settings(),
            dir.path().to_path_buf(),
            OffsetDateTime::now_utc(),
        )
        .unwrap_err();
        assert!(error.message.contains("orders exist"), "{error}");
    }

    #[tokio::test]
    async fn refresh_finds_orders_by_id_and_tag() {
        let dir = tempfile::tempdir().unwrap();
        let ca = open(dir.path());
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        let view = ca
            .place_order(&request("tag-1", &["a.test"], &key))
            .await
            .unwrap();
        let found = ca
            .refresh(&[
                OrderQuery {
                    order_id: None,
                    tag: Some("tag-1".to_string()),
                },
                OrderQuery {
                    order_id: Some(view.order_id.clone()),
                    tag: None,
                },
                OrderQuery {
                    order_id: None,
                    tag: Some("tag-unknown".to_string()),
                },
                OrderQuery {
                    order_id: Some("lo-000000000000".to_string()),
                    tag: None,
                },
                OrderQuery {
                    order_id: Some("../../etc/passwd".to_string()),
                    tag: None,
                },
            ])
            .await
            .unwrap();
        assert_eq!(found[0].as_ref(), Some(&view));
        assert_eq!(found[1].as_ref(), Some(&view));
        assert_eq!(found[2], None);
        assert_eq!(found[3], None);
        assert_eq!(found[4], None);

        // The database survives a reopen.
        let again = open(dir.path());
        let orders = again.orders().unwrap();
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].tag, "tag-1");
        assert_eq!(orders[0].status, LocalOrderStatus::Issued);
    }

    #[tokio::test]
    async fn csr_names_must_match_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let ca = open(dir.path());
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        let mut req = request("t", &["a.test", "b.test"], &key);
        req.sans = vec!["a.test".to_string(), "c.test".to_string()];
        let error = ca.place_order(&req).await.unwrap_err();
        assert_eq!(error.class, ErrorClass::Rejected);
        assert!(error.message.contains("differ"), "{error}");

        let mut req = request("t", &["a.test"], &key);
        req.csr_der = b"not a csr".to_vec();
        let error = ca.place_order(&req).await.unwrap_err();
        assert_eq!(error.class, ErrorClass::Rejected);

        let mut req = request("t", &["a.test"], &key);
        let last = req.csr_der.len() - 1;
        req.csr_der[last] ^= 0x01;
        let error = ca.place_order(&req).await.unwrap_err();
        assert_eq!(error.class, ErrorClass::Rejected);
        assert!(
            ca.orders().unwrap().is_empty(),
            "nothing recorded for rejects"
        );
    }

    #[tokio::test]
    async fn reissue_keeps_the_order_and_changes_the_serial() {
        let dir = tempfile::tempdir().unwrap();
        let ca = open(dir.path());
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        let first = ca
            .place_order(&request("t-1", &["a.test"], &key))
            .await
            .unwrap();
        let first_cert = ca.fetch(&first.order_id).await.unwrap().issued().unwrap();
        let new_key = PrivateKey::generate(KeySpec::Ecdsa(384)).unwrap();
        let second = ca
            .reissue(
                &first.order_id,
                &request("t-2", &["a.test", "b.test"], &new_key),
            )
            .await
            .unwrap();
        assert_eq!(second.order_id, first.order_id);
        assert_ne!(second.serial, first.serial);
        let second_cert = ca.fetch(&first.order_id).await.unwrap().issued().unwrap();
        assert_ne!(second_cert.certificate_id, first_cert.certificate_id);
        let (info, _) = keys::inspect_chain(&second_cert.chain_pem).unwrap();
        assert_eq!(info.sans, vec!["a.test", "b.test"]);
        assert_eq!(info.spki_sha256, new_key.spki_sha256());

        let orders = ca.orders().unwrap();
        assert_eq!(orders.len(), 1);
        assert_eq!(
            orders[0].previous_certificate_ids(),
            vec![first_cert.certificate_id.unwrap()]
        );
        // Either tag still finds the order.
        let found = ca
            .refresh(&[OrderQuery {
                order_id: None,
                tag: Some("t-1".to_string()),
            }])
            .await
            .unwrap();
        assert_eq!(found[0].as_ref(), Some(&second));

        let error = ca
            .reissue("lo-ffffffffffff", &request("t-3", &["a.test"], &key))
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::Rejected);
        assert!(error.message.contains("no such order"), "{error}");

        // After a crash the reissue is found by its tag, on its order only.
        let other = ca
            .place_order(&request("t-4", &["c.test"], &key))
            .await
            .unwrap();
        assert_eq!(
            ca.find_reissue(&first.order_id, "t-2").await.unwrap(),
            Some(second.clone())
        );
        assert_eq!(ca.find_reissue(&first.order_id, "t-9").await.unwrap(), None);
        assert_eq!(ca.find_reissue(&other.order_id, "t-2").await.unwrap(), None);
        assert_eq!(
            ca.find_reissue(&first.order_id, "t-4").await.unwrap(),
            None,
            "a tag on another order is not a reissue of this one"
        );
    }

    #[tokio::test]
    async fn revoke_again_is_done_for_its_serial() {
        let dir = tempfile::tempdir().unwrap();
        let ca = open(dir.path());
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        let view = ca
            .place_order(&request("t", &["a.test"], &key))
            .await
            .unwrap();
        let serial = view.serial.clone().unwrap();

        let error = ca
            .revoke(
                &view.order_id,
                &Serial::parse("01"),
                RevocationReason::KeyCompromise,
            )
            .await
            .unwrap_err();
        assert!(error.message.contains("does not belong"), "{error}");

        let outcome = ca
            .revoke(&view.order_id, &serial, RevocationReason::KeyCompromise)
            .await
            .unwrap();
        assert_eq!(outcome, RevokeOutcome::Revoked);
        // Again for the same certificate: done; for another serial: refused.
        let again = ca
            .revoke(&view.order_id, &serial, RevocationReason::KeyCompromise)
            .await
            .unwrap();
        assert_eq!(again, RevokeOutcome::Revoked);
        let error = ca
            .revoke(
                &view.order_id,
                &Serial::parse("02"),
                RevocationReason::KeyCompromise,
            )
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::Rejected);
        assert!(error.message.contains("already revoked"), "{error}");

        let order = &ca.orders().unwrap()[0];
        assert_eq!(order.status, LocalOrderStatus::Revoked);
        assert_eq!(
            order.revocation_reason,
            Some(RevocationReason::KeyCompromise)
        );
        assert!(order.revoked_at.is_some());
        let found = ca
            .refresh(&[OrderQuery {
                order_id: Some(view.order_id.clone()),
                tag: None,
            }])
            .await
            .unwrap();
        assert_eq!(
            found[0].as_ref().map(|v| v.status),
            Some(OrderStatus::Revoked)
        );
    }

    #[tokio::test]
    async fn cancel_is_rejected_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let ca = open(dir.path());
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        let view = ca
            .place_order(&request("t", &["a.test"], &key))
            .await
            .unwrap();
        let error = ca.cancel(&view.order_id).await.unwrap_err();
        assert_eq!(error.class, ErrorClass::Rejected);
        assert!(error.message.contains("already issued"), "{error}");
        let error = ca.cancel("lo-123456789abc").await.unwrap_err();
        assert_eq!(error.class, ErrorClass::Rejected);
        assert!(error.message.contains("no such order"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_orders_are_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Arc::new(open(dir.path()));
        let key = Arc::new(PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap());
        let mut tasks = Vec::new();
        for index in 0..20 {
            let ca = Arc::clone(&ca);
            let key = Arc::clone(&key);
            tasks.push(tokio::spawn(async move {
                ca.place_order(&request(&format!("tag-{index}"), &["a.test"], &key))
                    .await
                    .unwrap()
            }));
        }
        let mut ids = BTreeSet::new();
        let mut serials = BTreeSet::new();
        for task in tasks {
            let view = task.await.unwrap();
            ids.insert(view.order_id);
            serials.insert(view.serial.unwrap());
        }
        assert_eq!(ids.len(), 20);
        assert_eq!(serials.len(), 20);
        let orders = ca.orders().unwrap();
        assert_eq!(orders.len(), 20);
        let tags: BTreeSet<_> = orders.iter().map(|o| o.tag.clone()).collect();
        assert_eq!(tags.len(), 20);
        let sorted: Vec<_> = orders.iter().map(|o| o.order_id.clone()).collect();
        assert_eq!(sorted, ids.into_iter().collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn validity_is_capped_by_the_intermediate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = open(dir.path());
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        let mut req = request("t", &["a.test"], &key);
        req.validity = Validity::Years(20);
        let view = ca.place_order(&req).await.unwrap();
        assert_eq!(view.not_after, Some(ca.inner.intermediate_not_after));
    }

    #[test]
    fn order_ids_are_checked() {
        assert!(is_order_id("lo-0123456789ab"));
        assert!(!is_order_id("lo-0123456789AB"));
        assert!(!is_order_id("lo-../../../../x"));
        assert!(!is_order_id("lo-0123"));
    }
}
