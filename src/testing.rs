//! Test doubles for the executor and everything above it (compiled only for unit tests): a
//! scriptable in-memory CA that records every call and can inject faults per call, and an
//! in-memory state store that can lose what was not committed, as a crash would.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair,
};
use time::{Duration, OffsetDateTime};

use crate::ca::{
    CaError, Capabilities, CertificateAuthority, ErrorClass, Fetched, IssuedCertificate,
    OrderQuery, OrderRequest, RevokeOutcome,
};
use crate::keys::{KeyStore, PrivateKey};
use crate::observed::{OrderStatus, OrderView, RenewalWindow};
use crate::spec::RevocationReason;
use crate::state::{CertificateState, State, StateStore};

/// The CA operations the fake records and can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// A `refresh` call (one per call, however many queries).
    Refresh,
    /// One query of a `refresh` call that asks by tag only (a lookup before a retry).
    LookupByTag,
    Place,
    Reissue,
    /// `find_reissue` (asked before a resumed reissue is sent again).
    FindReissue,
    Fetch,
    Revoke,
    Cancel,
    /// `renewal_window` (ACME ARI).
    RenewalWindow,
}

/// A fault injected into the next call of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A network error; nothing happened at the CA.
    Transient,
    /// 429 with `Retry-After`.
    RateLimited(Duration),
    /// The CA refused the request.
    Rejected,
    /// The request reached the CA and took effect, but the answer was lost on the way back.
    Lost,
}

#[derive(Debug, Clone)]
struct FakeOrder {
    /// Every tag the order was placed or reissued with, in order.
    tags: Vec<String>,
    status: OrderStatus,
    chain_pem: String,
    serial: crate::serial::Serial,
    not_after: OffsetDateTime,
}

#[derive(Default)]
struct FakeState {
    orders: BTreeMap<String, FakeOrder>,
    next_id: u32,
    calls: Vec<(Op, String)>,
    faults: BTreeMap<Op, VecDeque<Fault>>,
    /// Orders placed or reissued while the CSR's key was not in the key store.
    keyless_requests: Vec<String>,
    /// New orders stay pending (domain validation that never completes).
    pending: bool,
    /// Keep the tags of reissues where only `find_reissue` sees them (as DigiCert keeps them
    /// in the reissue request's comments), not `refresh`.
    hide_reissue_tags: bool,
    /// `fetch` answers "not collectable yet" whatever the order's status.
    certificate_not_ready: bool,
    /// Answer `renewal_window` with a window (as an ACME CA with ARI does) instead of `None`.
    renewal_windows: bool,
    /// How long each `place_order` takes (to see how many run at once).
    place_delay: std::time::Duration,
    /// `place_order` calls running now, and the most that ever ran at once.
    placing: usize,
    most_placing: usize,
}

/// A scriptable in-memory CA issuing real certificates (rcgen), signed by its own root.
pub struct FakeCa {
    name: String,
    capabilities: Capabilities,
    /// When set, every order and reissue checks that the CSR's key is already in this store.
    keys: Option<Arc<KeyStore>>,
    issuer: Issuer<'static, KeyPair>,
    root_pem: String,
    state: Mutex<FakeState>,
}

impl FakeCa {
    pub fn new(name: &str, capabilities: Capabilities, keys: Option<Arc<KeyStore>>) -> Self {
        let key = KeyPair::generate().expect("root key");
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, format!("fake CA {name}"));
        params.distinguished_name = subject;
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let root = params.self_signed(&key).expect("root");
        let root_pem = root.pem();
        let issuer = Issuer::from_ca_cert_pem(&root_pem, key).expect("issuer");
        Self {
            name: name.to_string(),
            capabilities,
            keys,
            issuer,
            root_pem,
            state: Mutex::new(FakeState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fail the next calls of `op` with `faults`, one per call, in order.
    pub fn inject(&self, op: Op, faults: &[Fault]) {
        self.lock()
            .faults
            .entry(op)
            .or_default()
            .extend(faults.iter().copied());
    }

    /// Make each `place_order` take `delay` (blocking its thread, as a slow CA would).
    pub fn set_place_delay(&self, delay: std::time::Duration) {
        self.lock().place_delay = delay;
    }

    /// The most `place_order` calls that ran at once.
    pub fn most_placing_at_once(&self) -> usize {
        self.lock().most_placing
    }

    /// Leave new orders pending instead of issuing them at once.
    pub fn set_pending(&self, pending: bool) {
        self.lock().pending = pending;
    }

    /// Issue every pending order (its domains were validated out of band).
    pub fn issue_pending(&self) {
        for order in self.lock().orders.values_mut() {
            if order.status == OrderStatus::Pending {
                order.status = OrderStatus::Issued;
            }
        }
    }

    /// Answer `fetch` with "not collectable yet" even for issued orders (a CA whose issued
    /// certificate is still being produced).
    pub fn set_certificate_not_ready(&self, not_ready: bool) {
        self.lock().certificate_not_ready = not_ready;
    }

    /// Let only `find_reissue` see the tags of reissues.
    pub fn hide_reissue_tags(&self, hide: bool) {
        self.lock().hide_reissue_tags = hide;
    }

    /// Offer a renewal window for every issued order: it opens 50 days after the `now` it is
    /// asked at, closes two days later, and may be asked again after six hours.
    pub fn offer_renewal_windows(&self, offer: bool) {
        self.lock().renewal_windows = offer;
    }

    /// An issued order for `a.example` that was placed with `tags[0]` and reissued with the
    /// rest, as a previous run left it; returns its id and its certificate's serial.
    pub fn add_issued_order(&self, tags: &[&str]) -> (String, crate::serial::Serial) {
        let key = KeyPair::generate().expect("leaf key");
        let params = CertificateParams::new(vec!["a.example".to_string()]).expect("leaf params");
        let leaf = params.signed_by(&key, &self.issuer).expect("leaf");
        let (info, _) = crate::keys::inspect_chain(&leaf.pem()).expect("leaf chain");
        let mut state = self.lock();
        state.next_id += 1;
        let id = format!("order-{}", state.next_id);
        let order = FakeOrder {
            tags: tags.iter().map(|tag| tag.to_string()).collect(),
            status: OrderStatus::Issued,
            chain_pem: format!("{}{}", leaf.pem(), self.root_pem),
            serial: info.serial.clone(),
            not_after: info.not_after,
        };
        state.orders.insert(id.clone(), order);
        (id, info.serial)
    }

    /// How many calls of `op` the CA received.
    pub fn count(&self, op: Op) -> usize {
        self.lock().calls.iter().filter(|(o, _)| *o == op).count()
    }

    /// Every call, in order, with its order id or tag.
    pub fn calls(&self) -> Vec<(Op, String)> {
        self.lock().calls.clone()
    }

    pub fn order_count(&self) -> usize {
        self.lock().orders.len()
    }

    /// Tags every order at the CA carries, by order id.
    pub fn order_tags(&self) -> BTreeMap<String, Vec<String>> {
        self.lock()
            .orders
            .iter()
            .map(|(id, order)| (id.clone(), order.tags.clone()))
            .collect()
    }

    pub fn status_of(&self, order_id: &str) -> Option<OrderStatus> {
        self.lock().orders.get(order_id).map(|o| o.status)
    }

    /// Orders and reissues whose CSR key was not in the key store when they reached the CA.
    pub fn keyless_requests(&self) -> Vec<String> {
        self.lock().keyless_requests.clone()
    }

    /// Record the call and take the fault scripted for it, if any.
    fn enter(&self, op: Op, detail: &str) -> Option<Fault> {
        let mut state = self.lock();
        state.calls.push((op, detail.to_string()));
        state.faults.get_mut(&op).and_then(VecDeque::pop_front)
    }

    fn error(fault: Fault) -> CaError {
        match fault {
            Fault::Transient | Fault::Lost => {
                CaError::new(ErrorClass::Transient, "connection reset by peer")
            }
            Fault::RateLimited(wait) => {
                let mut error = CaError::new(ErrorClass::RateLimited, "too many requests");
                error.retry_after = Some(wait);
                error
            }
            Fault::Rejected => CaError::new(ErrorClass::Rejected, "the CA refused the request"),
        }
    }

    /// `Err` for a fault that stops the call before it takes effect.
    fn before(fault: Option<Fault>) -> Result<(), CaError> {
        match fault {
            Some(Fault::Lost) | None => Ok(()),
            Some(fault) => Err(Self::error(fault)),
        }
    }

    fn view(id: &str, order: &FakeOrder) -> OrderView {
        OrderView {
            order_id: id.to_string(),
            status: order.status,
            serial: Some(order.serial.clone()),
            not_after: Some(order.not_after),
            dcv: Vec::new(),
            plan_until: None,
        }
    }

    /// Sign the request's CSR; note when its key is not (yet) in the key store.
    fn sign(
        &self,
        request: &OrderRequest,
    ) -> Result<(String, crate::serial::Serial, OffsetDateTime), CaError> {
        let der = rustls::pki_types::CertificateSigningRequestDer::from(request.csr_der.clone());
        let mut csr = CertificateSigningRequestParams::from_der(&der)
            .map_err(|e| CaError::new(ErrorClass::Rejected, format!("bad CSR: {e}")))?;
        if let Some(keys) = &self.keys {
            let spki = crate::keys::sha256_hex(&rcgen::PublicKeyData::subject_public_key_info(
                &csr.public_key,
            ));
            if !key_in_store(keys, &spki) {
                self.lock().keyless_requests.push(request.tag.clone());
            }
        }
        let not_before = request.now - Duration::minutes(1);
        let not_after = request.validity.not_after(request.now);
        csr.params.not_before = not_before;
        csr.params.not_after = not_after;
        let serial: [u8; 8] = rand_bytes();
        csr.params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let leaf = csr
            .signed_by(&self.issuer)
            .map_err(|e| CaError::new(ErrorClass::Rejected, format!("cannot sign: {e}")))?;
        let (info, _) = crate::keys::inspect_chain(&leaf.pem())
            .map_err(|e| CaError::new(ErrorClass::Protocol, e.to_string()))?;
        Ok((
            format!("{}{}", leaf.pem(), self.root_pem),
            info.serial,
            not_after,
        ))
    }
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("randomness");
    bytes[0] = (bytes[0] & 0x7f) | 0x10;
    bytes
}

/// Whether some key file under the store's directory has public key `spki`.
fn key_in_store(keys: &KeyStore, spki: &str) -> bool {
    fn walk(dir: &std::path::Path, spki: &str) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|entry| {
            let path = entry.path();
            if path.is_dir() {
                return walk(&path, spki);
            }
            std::fs::read_to_string(&path)
                .ok()
                .and_then(|pem| PrivateKey::from_pem(&pem).ok())
                .is_some_and(|key| key.spki_sha256() == spki)
        })
    }
    walk(keys.dir(), spki)
}

#[async_trait]
impl CertificateAuthority for FakeCa {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "fake"
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn refresh(&self, queries: &[OrderQuery]) -> Result<Vec<Option<OrderView>>, CaError> {
        let fault = self.enter(Op::Refresh, &format!("{} queries", queries.len()));
        for query in queries.iter().filter(|q| q.order_id.is_none()) {
            let tag = query.tag.clone().unwrap_or_default();
            self.lock().calls.push((Op::LookupByTag, tag));
        }
        if let Some(fault) = fault {
            return Err(Self::error(fault));
        }
        let state = self.lock();
        Ok(queries
            .iter()
            .map(|query| match (&query.order_id, &query.tag) {
                (Some(id), _) => state.orders.get(id).map(|o| Self::view(id, o)),
                // A CA without tag lookup (`DuplicatePrevention::None`) cannot answer this.
                (None, Some(_)) if !self.capabilities.duplicates.finds_by_tag() => None,
                (None, Some(tag)) => state
                    .orders
                    .iter()
                    .find(|(_, o)| {
                        let visible = if state.hide_reissue_tags {
                            1
                        } else {
                            o.tags.len()
                        };
                        o.tags.iter().take(visible).any(|t| t == tag)
                    })
                    .map(|(id, o)| Self::view(id, o)),
                (None, None) => None,
            })
            .collect())
    }

    async fn place_order(&self, request: &OrderRequest) -> Result<OrderView, CaError> {
        let delay = {
            let mut state = self.lock();
            state.placing += 1;
            state.most_placing = state.most_placing.max(state.placing);
            state.place_delay
        };
        std::thread::sleep(delay);
        self.lock().placing -= 1;
        let fault = self.enter(Op::Place, &request.tag);
        Self::before(fault)?;
        let (chain_pem, serial, not_after) = self.sign(request)?;
        let mut state = self.lock();
        state.next_id += 1;
        let id = format!("order-{}", state.next_id);
        let order = FakeOrder {
            tags: vec![request.tag.clone()],
            status: if state.pending {
                OrderStatus::Pending
            } else {
                OrderStatus::Issued
            },
            chain_pem,
            serial,
            not_after,
        };
        let view = Self::view(&id, &order);
        state.orders.insert(id, order);
        match fault {
            Some(lost) => Err(Self::error(lost)),
            None => Ok(view),
        }
    }

    async fn fetch(&self, order_id: &str) -> Result<Fetched, CaError> {
        let fault = self.enter(Op::Fetch, order_id);
        if let Some(fault) = fault {
            return Err(Self::error(fault));
        }
        let state = self.lock();
        let order = state
            .orders
            .get(order_id)
            .ok_or_else(|| CaError::new(ErrorClass::Rejected, format!("no order {order_id}")))?;
        if order.status == OrderStatus::Pending || state.certificate_not_ready {
            return Ok(Fetched::NotYet {
                status: order.status,
                detail: "the certificate is not ready".to_string(),
            });
        }
        Ok(Fetched::Issued(IssuedCertificate {
            order_id: order_id.to_string(),
            certificate_id: None,
            chain_pem: order.chain_pem.clone(),
        }))
    }

    async fn reissue(&self, order_id: &str, request: &OrderRequest) -> Result<OrderView, CaError> {
        let fault = self.enter(Op::Reissue, &format!("{order_id} {}", request.tag));
        Self::before(fault)?;
        if !self.capabilities.reissue_same_order {
            return Err(CaError::new(ErrorClass::Unsupported, "no reissue"));
        }
        let (chain_pem, serial, not_after) = self.sign(request)?;
        let mut state = self.lock();
        let order = state
            .orders
            .get_mut(order_id)
            .ok_or_else(|| CaError::new(ErrorClass::Rejected, format!("no order {order_id}")))?;
        order.tags.push(request.tag.clone());
        order.chain_pem = chain_pem;
        order.serial = serial;
        order.not_after = not_after;
        order.status = OrderStatus::Issued;
        let view = Self::view(order_id, order);
        match fault {
            Some(lost) => Err(Self::error(lost)),
            None => Ok(view),
        }
    }

    async fn find_reissue(&self, order_id: &str, tag: &str) -> Result<Option<OrderView>, CaError> {
        let fault = self.enter(Op::FindReissue, &format!("{order_id} {tag}"));
        if let Some(fault) = fault {
            return Err(Self::error(fault));
        }
        if !self.capabilities.duplicates.finds_by_tag() {
            return Ok(None);
        }
        let state = self.lock();
        Ok(state
            .orders
            .get(order_id)
            .filter(|o| o.tags.iter().skip(1).any(|t| t == tag))
            .map(|o| Self::view(order_id, o)))
    }

    async fn revoke(
        &self,
        order_id: &str,
        _serial: &crate::serial::Serial,
        _reason: RevocationReason,
    ) -> Result<RevokeOutcome, CaError> {
        let fault = self.enter(Op::Revoke, order_id);
        Self::before(fault)?;
        let mut state = self.lock();
        let order = state
            .orders
            .get_mut(order_id)
            .ok_or_else(|| CaError::new(ErrorClass::Rejected, format!("no order {order_id}")))?;
        // Revoking twice is not an error here (the CA answers as for the first time).
        order.status = OrderStatus::Revoked;
        match fault {
            Some(lost) => Err(Self::error(lost)),
            None => Ok(RevokeOutcome::Revoked),
        }
    }

    async fn cancel(&self, order_id: &str) -> Result<(), CaError> {
        let fault = self.enter(Op::Cancel, order_id);
        Self::before(fault)?;
        let mut state = self.lock();
        let order = state
            .orders
            .get_mut(order_id)
            .ok_or_else(|| CaError::new(ErrorClass::Rejected, format!("no order {order_id}")))?;
        order.status = OrderStatus::Canceled;
        match fault {
            Some(lost) => Err(Self::error(lost)),
            None => Ok(()),
        }
    }

    fn offers_renewal_windows(&self) -> bool {
        true
    }

    async fn renewal_window(
        &self,
        order_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<RenewalWindow>, CaError> {
        if let Some(fault) = self.enter(Op::RenewalWindow, order_id) {
            return Err(Self::error(fault));
        }
        let state = self.lock();
        if !state.renewal_windows {
            return Ok(None);
        }
        Ok(state
            .orders
            .get(order_id)
            .filter(|order| order.status == OrderStatus::Issued)
            .map(|order| RenewalWindow {
                serial: order.serial.clone(),
                start: now + Duration::days(50),
                end: now + Duration::days(52),
                next_check: now + Duration::hours(6),
            }))
    }

    fn trust_anchor_pem(&self) -> Option<String> {
        Some(self.root_pem.clone())
    }
}

/// What the store holds: certificates, chains and public files, by name/path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub certificates: BTreeMap<String, CertificateState>,
    pub chains: BTreeMap<String, String>,
    pub public: BTreeMap<String, String>,
}

#[derive(Default)]
struct MemoryInner {
    /// What is written (the work tree: durable once a write returns).
    current: Snapshot,
    /// What the last commit holds.
    committed: Snapshot,
    /// The snapshot after every write, in order.
    writes: Vec<Snapshot>,
    commits: Vec<String>,
    /// Writes that succeed before every further write fails (a dying disk or process).
    writes_left: Option<usize>,
}

/// An in-memory `StateStore`.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Everything written so far, as it is now.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().current.clone()
    }

    /// The snapshot after each write, in order.
    pub fn writes(&self) -> Vec<Snapshot> {
        self.lock().writes.clone()
    }

    pub fn commits(&self) -> Vec<String> {
        self.lock().commits.clone()
    }

    /// Lose everything not committed (a store whose uncommitted writes did not survive).
    pub fn drop_uncommitted(&self) {
        let mut inner = self.lock();
        inner.current = inner.committed.clone();
    }

    /// Let `n` more writes succeed, then fail every write.
    pub fn fail_writes_after(&self, n: Option<usize>) {
        self.lock().writes_left = n;
    }

    fn write(&self, change: impl FnOnce(&mut Snapshot)) -> Result<(), crate::state::Error> {
        let mut inner = self.lock();
        match inner.writes_left {
            Some(0) => {
                return Err(crate::state::Error::Io {
                    action: "write",
                    path: PathBuf::from("memory"),
                    source: std::io::Error::other("injected write failure"),
                })
            }
            Some(n) => inner.writes_left = Some(n - 1),
            None => {}
        }
        change(&mut inner.current);
        let snapshot = inner.current.clone();
        inner.writes.push(snapshot);
        Ok(())
    }
}

impl StateStore for MemoryStore {
    fn load(&self) -> Result<State, crate::state::Error> {
        Ok(State {
            certificates: self.lock().current.certificates.clone(),
            ..State::default()
        })
    }

    fn save_certificate(&self, certificate: &CertificateState) -> Result<(), crate::state::Error> {
        let certificate = certificate.clone();
        self.write(|s| {
            s.certificates.insert(certificate.name.clone(), certificate);
        })
    }

    fn save_chain(&self, name: &str, chain_pem: &str) -> Result<(), crate::state::Error> {
        self.write(|s| {
            s.chains.insert(name.to_string(), chain_pem.to_string());
        })
    }

    fn read_chain(&self, name: &str) -> Result<Option<String>, crate::state::Error> {
        Ok(self.lock().current.chains.get(name).cloned())
    }

    fn remove_certificate(&self, name: &str) -> Result<(), crate::state::Error> {
        self.write(|s| {
            s.certificates.remove(name);
            s.chains.remove(name);
        })
    }

    fn write_public_file(&self, relative: &str, content: &str) -> Result<(), crate::state::Error> {
        self.write(|s| {
            s.public.insert(relative.to_string(), content.to_string());
        })
    }

    fn remove_public_file(&self, relative: &str) -> Result<(), crate::state::Error> {
        self.write(|s| {
            s.public.remove(relative);
        })
    }

    fn commit(&self, message: &str) -> Result<Option<String>, crate::state::Error> {
        let mut inner = self.lock();
        if inner.current == inner.committed {
            return Ok(None);
        }
        inner.committed = inner.current.clone();
        inner.commits.push(message.to_string());
        Ok(Some(format!("commit-{}", inner.commits.len())))
    }

    fn push(&self) -> Result<Option<String>, crate::state::Error> {
        Ok(None)
    }
}
