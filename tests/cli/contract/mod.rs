//! The CA contract suite: one set of cases, written once against the public
//! `CertificateAuthority` trait, run against every CA implementation (`local` in process, `acme`
//! against a real Pebble, `digicert` against the CertCentral simulator, `sectigo` against the SCM
//! simulator). A new CA plugs in with a `ContractTarget` in its own file and one
//! `contract_cases!` line.
//!
//! Every case either checks the behaviour or prints why the target cannot show it (the CA's
//! `Capabilities` say it does not support it, or the target cannot inject that fault); when a
//! capability is absent the case checks that the CA refuses the operation as `Unsupported`, so a
//! skip is never a silent pass. Each test starts its own target (servers on free ports, temp
//! dirs), so the cases run in parallel.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use certform::ca::{
    CaError, CertificateAuthority, Challenge, ChallengeKind, ErrorClass, Fetched,
    IssuedCertificate, OrderQuery, OrderRequest, RevokeOutcome,
};
use certform::keys::{self, PrivateKey};
use certform::observed::{OrderStatus, OrderView};
use certform::spec::{KeySpec, RevocationReason, Validity};
use time::{Duration, OffsetDateTime};

use crate::bind::{Bind, ZoneSpec};

/// The zone every contract name lives in (served by the test BIND where DCV is real).
pub const ZONE: &str = "contract.test";

/// How long an order may take to become issued after its DCV was answered.
const ISSUE_TIMEOUT: StdDuration = StdDuration::from_secs(30);

/// A fault a target can make its CA show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Requests (at least an order's creation) are answered "too many requests", with a wait.
    RateLimited,
    /// Requests (at least an order's creation) fail with a server error (5xx).
    Transient,
    /// Requests are carried out but their answers are lost (the connection drops).
    DroppedAnswer,
}

/// One CA implementation under contract, with the glue the suite needs around it.
#[async_trait]
pub trait ContractTarget: Send + Sync {
    /// The target's name in skip messages (`local`, `acme`, `digicert`).
    fn label(&self) -> &'static str;

    /// The CA account under test.
    fn ca(&self) -> &dyn CertificateAuthority;

    /// The same account opened again, as the next run after a crash opens it.
    async fn reopen(&self) -> Box<dyn CertificateAuthority>;

    /// Whether a new order waits for DCV (else it issues at once).
    fn needs_dcv(&self) -> bool;

    /// CA-specific order options (product, DCV method, ...).
    fn options(&self) -> certform::spec::CaOptions {
        certform::spec::CaOptions::default()
    }

    /// Put the proof for `challenges` in place and answer the ones to send to `respond`.
    async fn satisfy(&self, challenges: &[Challenge]) -> Vec<Challenge>;

    /// PEM of the root the CA's chains must verify against.
    async fn anchor_pem(&self) -> String;

    /// The order `order_id` says it renews, read from the CA; `Err` says why the target cannot
    /// tell.
    async fn renewal_of(&self, order_id: &str) -> Result<Option<String>, String>;

    /// How many orders the CA holds for `common_name`; `Err` says why the target cannot count.
    async fn orders_for(&self, common_name: &str) -> Result<usize, String>;

    /// Make the CA show `fault` from now on; `Err` says why this target cannot.
    async fn inject(&self, fault: Fault) -> Result<(), String>;

    /// Stop every injected fault.
    async fn clear_faults(&self);
}

/// Run one contract case against the target `start` builds, as a `#[tokio::test]` each:
/// `contract_cases!(start_target);` in a target's file.
macro_rules! contract_cases {
    ($start:path) => {
        $crate::contract::contract_cases!(@case $start,
            create, fetch_again, reissue, renew, revoke, cancel, adopt_after_crash,
            rate_limited, transient_faults);
    };
    (@case $start:path, $($case:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let target = $start().await;
                super::$case(&target).await;
            }
        )+
    };
}
pub(crate) use contract_cases;

// The targets (after the macro they use).
mod acme;
mod digicert;
mod local;
mod sectigo;

/// Say why a case (or part of it) does not apply to this target. Written to stderr directly,
/// past the test harness's capture, so every run shows what was not checked.
fn skip(target: &dyn ContractTarget, case: &str, reason: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "contract `{case}` on `{}`: not supported by the target: {reason}",
        target.label()
    );
}

/// The class of a CA error (one place to adapt when the error type changes).
fn class_of(error: &CaError) -> ErrorClass {
    error.class
}

/// The CA's wait of a rate-limited error.
fn retry_after_of(error: &CaError) -> Option<Duration> {
    error.retry_after
}

fn by_tag(tag: &str) -> OrderQuery {
    OrderQuery {
        order_id: None,
        tag: Some(tag.to_string()),
    }
}

fn by_id(order_id: &str) -> OrderQuery {
    OrderQuery {
        order_id: Some(order_id.to_string()),
        tag: None,
    }
}

/// The names of a certificate for `label`: `label.contract.test` and its `www.`.
pub fn names(label: &str) -> Vec<String> {
    vec![format!("{label}.{ZONE}"), format!("www.{label}.{ZONE}")]
}

/// A certificate asked of the CA: the request and the key it was made with.
struct Asked {
    request: OrderRequest,
    key: PrivateKey,
}

fn ask(target: &dyn ContractTarget, tag: &str, names: &[String]) -> Asked {
    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).expect("generate a key");
    let request = OrderRequest {
        tag: tag.to_string(),
        common_name: names[0].clone(),
        sans: names.to_vec(),
        csr_der: key.csr_der(&names[0], names).expect("CSR"),
        validity: Validity::Days(90),
        renewal_of: None,
        dcv: Vec::new(),
        options: target.options(),
        now: OffsetDateTime::now_utc(),
    };
    Asked { request, key }
}

async fn refresh_one(ca: &dyn CertificateAuthority, query: OrderQuery) -> Option<OrderView> {
    ca.refresh(std::slice::from_ref(&query))
        .await
        .unwrap_or_else(|error| panic!("refresh {query:?}: {error:?}"))
        .into_iter()
        .next()
        .flatten()
}

/// Take a placed (or reissued) order through DCV to `Issued`: challenges, proof, respond,
/// finalize, then wait. Answers the issued order's view.
async fn complete(
    target: &dyn ContractTarget,
    ca: &dyn CertificateAuthority,
    placed: OrderView,
    csr_der: &[u8],
) -> OrderView {
    if placed.status == OrderStatus::Issued {
        return placed;
    }
    assert!(
        placed.status.is_in_progress(),
        "a new order is pending or ready, not {placed:?}"
    );
    let order_id = placed.order_id.clone();
    if placed.status == OrderStatus::Pending {
        let challenges = ca
            .challenges(&placed)
            .await
            .unwrap_or_else(|error| panic!("challenges of {order_id}: {error:?}"));
        assert!(!challenges.is_empty(), "a pending order offers challenges");
        let chosen = target.satisfy(&challenges).await;
        ca.respond(&placed, &chosen)
            .await
            .unwrap_or_else(|error| panic!("respond to {order_id}: {error:?}"));
    }
    let mut view = ca
        .finalize(&placed, csr_der)
        .await
        .unwrap_or_else(|error| panic!("finalize {order_id}: {error:?}"));
    let deadline = Instant::now() + ISSUE_TIMEOUT;
    while view.status != OrderStatus::Issued {
        assert!(
            view.status.is_in_progress() && Instant::now() < deadline,
            "order {order_id} did not issue: {view:?}"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
        view = refresh_one(ca, by_id(&order_id))
            .await
            .unwrap_or_else(|| panic!("order {order_id} vanished"));
    }
    view
}

/// Fetch the certificate of an issued order (the CA must have it ready).
async fn fetch_issued(ca: &dyn CertificateAuthority, order_id: &str) -> IssuedCertificate {
    match ca.fetch(order_id).await {
        Ok(Fetched::Issued(issued)) => issued,
        other => panic!("fetch {order_id}: {other:?}"),
    }
}

/// Place, complete and fetch a certificate for `names` under `tag`.
async fn issue(
    target: &dyn ContractTarget,
    tag: &str,
    names: &[String],
) -> (OrderView, IssuedCertificate, Asked) {
    let ca = target.ca();
    let asked = ask(target, tag, names);
    let placed = ca
        .place_order(&asked.request)
        .await
        .unwrap_or_else(|error| panic!("place {tag}: {error:?}"));
    let view = complete(target, ca, placed, &asked.request.csr_der).await;
    let issued = fetch_issued(ca, &view.order_id).await;
    (view, issued, asked)
}

/// The issued chain holds the names and key asked for, and verifies against the CA's anchor.
async fn check_certificate(
    target: &dyn ContractTarget,
    view: &OrderView,
    issued: &IssuedCertificate,
    asked: &Asked,
) {
    assert_eq!(issued.order_id, view.order_id);
    let (leaf, pems) = keys::inspect_chain(&issued.chain_pem).expect("the chain is PEM");
    assert!(pems.len() >= 2, "leaf then intermediate: {}", pems.len());
    assert_eq!(
        leaf.spki_sha256,
        asked.key.spki_sha256(),
        "the key asked for"
    );
    let mut wanted = asked.request.sans.clone();
    wanted.sort();
    let mut sans = leaf.sans.clone();
    sans.sort();
    assert_eq!(sans, wanted, "the names asked for");
    assert_eq!(
        view.serial.as_deref(),
        Some(leaf.serial.as_str()),
        "{view:?}"
    );
    verify_chain(&target.anchor_pem().await, &pems, &asked.request.sans[0]);
}

/// `openssl verify` the leaf against `anchor`, with the rest of the chain as untrusted.
fn verify_chain(anchor: &str, pems: &[String], name: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |file: &str, text: &str| {
        let path = dir.path().join(file);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    let root = write("root.pem", anchor);
    let untrusted = write("untrusted.pem", &pems[1..].concat());
    let leaf = write("leaf.pem", &pems[0]);
    let output = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&root)
        .arg("-untrusted")
        .arg(&untrusted)
        .args(["-verify_hostname", name])
        .arg(&leaf)
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run `openssl` ({error}): apt-get install -y openssl")
        });
    assert!(
        output.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// The cases.

/// Place → DCV → issue → fetch: the chain verifies, with the names and key asked for.
pub async fn create(target: &dyn ContractTarget) {
    let ca = target.ca();
    let names = names("create");
    let asked = ask(target, "contract-create-1", &names);
    let placed = ca.place_order(&asked.request).await.expect("place");
    if target.needs_dcv() {
        assert_eq!(placed.status, OrderStatus::Pending, "waits for DCV");
        let early = ca.fetch(&placed.order_id).await;
        assert!(
            matches!(early, Ok(Fetched::NotYet { .. })),
            "nothing to collect before DCV, and that is not an error: {early:?}"
        );
        let mut domains: Vec<&str> = placed.dcv.iter().map(|d| d.domain.as_str()).collect();
        domains.sort();
        domains.dedup();
        assert!(!domains.is_empty(), "the pending order lists its DCV");
    } else {
        assert_eq!(placed.status, OrderStatus::Issued, "issues at once");
    }
    let view = complete(target, ca, placed.clone(), &asked.request.csr_der).await;
    assert_eq!(view.order_id, placed.order_id);
    let issued = fetch_issued(ca, &view.order_id).await;
    check_certificate(target, &view, &issued, &asked).await;

    // One refresh answers every query, in order: by id, by tag, and `None` for a tag never
    // placed.
    let queries = [
        by_id(&view.order_id),
        by_tag("contract-never-placed"),
        by_tag("contract-create-1"),
    ];
    let found = ca.refresh(&queries).await.expect("refresh");
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[1], None, "a tag never placed");
    for view_found in [&found[0], &found[2]] {
        let view_found = view_found.as_ref().expect("found");
        assert_eq!(view_found.order_id, view.order_id);
        assert_eq!(view_found.status, OrderStatus::Issued);
        assert_eq!(view_found.serial, view.serial);
    }
}

/// Fetching an issued order again answers the same certificate.
pub async fn fetch_again(target: &dyn ContractTarget) {
    let ca = target.ca();
    let (view, first, _) = issue(target, "contract-fetch-1", &names("fetch")).await;
    let second = fetch_issued(ca, &view.order_id).await;
    assert_eq!(second, first);
    let reopened = target.reopen().await;
    let third = fetch_issued(reopened.as_ref(), &view.order_id).await;
    assert_eq!(third.chain_pem, first.chain_pem);
    let found = refresh_one(ca, by_id(&view.order_id)).await.expect("found");
    assert_eq!(found.serial, view.serial);
}

/// A new key for the same names: on the same order where the CA can, else on a new order.
pub async fn reissue(target: &dyn ContractTarget) {
    let ca = target.ca();
    let names = names("reissue");
    let (first, _, _) = issue(target, "contract-reissue-1", &names).await;
    let asked = ask(target, "contract-reissue-2", &names);
    let view = if ca.capabilities().reissue_same_order {
        let reissued = ca
            .reissue(&first.order_id, &asked.request)
            .await
            .expect("reissue");
        assert_eq!(reissued.order_id, first.order_id, "the same order");
        complete(target, ca, reissued, &asked.request.csr_der).await
    } else {
        skip(
            target,
            "reissue",
            "no reissue on the same order (`reissue_same_order = false`): a new order instead",
        );
        let error = ca
            .reissue(&first.order_id, &asked.request)
            .await
            .expect_err("reissue is refused");
        assert_eq!(class_of(&error), ErrorClass::Unsupported, "{error:?}");
        let placed = ca.place_order(&asked.request).await.expect("new order");
        assert_ne!(placed.order_id, first.order_id, "a new order");
        complete(target, ca, placed, &asked.request.csr_der).await
    };
    let issued = fetch_issued(ca, &view.order_id).await;
    check_certificate(target, &view, &issued, &asked).await;
    assert_ne!(view.serial, first.serial, "a new certificate");
}

/// A renewal is a new order with a new certificate, linked to the old order where the CA can.
pub async fn renew(target: &dyn ContractTarget) {
    let ca = target.ca();
    let names = names("renew");
    let (first, _, _) = issue(target, "contract-renew-1", &names).await;
    let mut asked = ask(target, "contract-renew-2", &names);
    asked.request.renewal_of = Some(first.order_id.clone());
    let placed = ca.place_order(&asked.request).await.expect("renew");
    assert_ne!(placed.order_id, first.order_id, "a new order");
    let view = complete(target, ca, placed, &asked.request.csr_der).await;
    let issued = fetch_issued(ca, &view.order_id).await;
    check_certificate(target, &view, &issued, &asked).await;
    assert_ne!(view.serial, first.serial, "a new certificate");
    match target.renewal_of(&view.order_id).await {
        Ok(link) => assert_eq!(link.as_deref(), Some(first.order_id.as_str())),
        Err(reason) => skip(target, "renew (renewal_of link)", &reason),
    }
    // The old order is untouched.
    let old = refresh_one(ca, by_id(&first.order_id))
        .await
        .expect("old order");
    assert_eq!(old.status, OrderStatus::Issued);
    assert_eq!(old.serial, first.serial);
}

/// Revoking the certificate of an order shows in refresh; revoking again is not an error.
pub async fn revoke(target: &dyn ContractTarget) {
    let ca = target.ca();
    let (view, _, _) = issue(target, "contract-revoke-1", &names("revoke")).await;
    let serial = view.serial.clone().expect("an issued order has a serial");
    if !ca.capabilities().revoke {
        skip(target, "revoke", "`revoke = false` in its capabilities");
        let error = ca
            .revoke(&view.order_id, &serial, RevocationReason::Superseded)
            .await
            .expect_err("revoke is refused");
        assert_eq!(class_of(&error), ErrorClass::Unsupported, "{error:?}");
        return;
    }
    let outcome = ca
        .revoke(&view.order_id, &serial, RevocationReason::Superseded)
        .await
        .expect("revoke");
    assert_eq!(outcome, RevokeOutcome::Revoked);
    let found = refresh_one(ca, by_id(&view.order_id)).await.expect("found");
    assert_eq!(found.status, OrderStatus::Revoked, "{found:?}");
    // A run that died before recording the revocation asks again: that counts as done.
    let again = ca
        .revoke(&view.order_id, &serial, RevocationReason::Superseded)
        .await
        .expect("revoke again");
    assert_eq!(again, RevokeOutcome::Revoked);
    let reopened = target.reopen().await;
    let found = refresh_one(reopened.as_ref(), by_tag("contract-revoke-1"))
        .await
        .expect("found by tag after reopen");
    assert_eq!(found.status, OrderStatus::Revoked, "{found:?}");
}

/// Cancelling a pending order: refresh shows it canceled; cancelling again is not an error.
pub async fn cancel(target: &dyn ContractTarget) {
    let ca = target.ca();
    let asked = ask(target, "contract-cancel-1", &names("cancel"));
    let placed = ca.place_order(&asked.request).await.expect("place");
    if !ca.capabilities().cancel {
        skip(target, "cancel", "`cancel = false` in its capabilities");
        let error = ca
            .cancel(&placed.order_id)
            .await
            .expect_err("cancel is refused");
        assert_eq!(class_of(&error), ErrorClass::Unsupported, "{error:?}");
        return;
    }
    if !target.needs_dcv() {
        skip(
            target,
            "cancel",
            "orders issue at once, so no order is ever pending; an issued one is refused",
        );
        let error = ca
            .cancel(&placed.order_id)
            .await
            .expect_err("an issued order cannot be canceled");
        assert_eq!(class_of(&error), ErrorClass::Rejected, "{error:?}");
        return;
    }
    assert_eq!(placed.status, OrderStatus::Pending, "{placed:?}");
    ca.cancel(&placed.order_id).await.expect("cancel");
    let found = refresh_one(ca, by_id(&placed.order_id))
        .await
        .expect("found");
    assert_eq!(found.status, OrderStatus::Canceled, "{found:?}");
    ca.cancel(&placed.order_id).await.expect("cancel again");
    // A canceled order has nothing to fetch.
    assert!(
        !matches!(ca.fetch(&placed.order_id).await, Ok(Fetched::Issued(_))),
        "nothing to fetch"
    );
}

/// An order whose answer was lost is found by tag after a restart and never placed twice; a
/// reissue whose answer was lost is found by `find_reissue`.
pub async fn adopt_after_crash(target: &dyn ContractTarget) {
    let names = names("adopt");
    let asked = ask(target, "contract-adopt-1", &names);
    let lost = match target.inject(Fault::DroppedAnswer).await {
        Ok(()) => {
            let error = target
                .ca()
                .place_order(&asked.request)
                .await
                .expect_err("the answer is lost");
            assert_eq!(class_of(&error), ErrorClass::Transient, "{error:?}");
            target.clear_faults().await;
            None
        }
        Err(reason) => {
            skip(
                target,
                "adopt_after_crash (dropped answer)",
                &format!("{reason}; the caller drops the answer instead"),
            );
            let placed = target
                .ca()
                .place_order(&asked.request)
                .await
                .expect("place");
            Some(placed.order_id)
        }
    };

    // The next run looks the tag up before it places anything (the executor's protocol): the
    // order is found, and adopting it leaves one order at the CA.
    let reopened = target.reopen().await;
    let found = refresh_one(reopened.as_ref(), by_tag("contract-adopt-1"))
        .await
        .expect("the order placed before the crash is found by tag");
    if let Some(lost) = lost {
        assert_eq!(found.order_id, lost);
    }
    match target.orders_for(&names[0]).await {
        Ok(count) => assert_eq!(count, 1, "one order at the CA"),
        Err(reason) => skip(target, "adopt_after_crash (order count)", &reason),
    }
    let view = complete(target, reopened.as_ref(), found, &asked.request.csr_der).await;

    // A reissue whose answer was lost.
    let never = reopened
        .find_reissue(&view.order_id, "contract-adopt-never")
        .await
        .expect("find_reissue");
    assert_eq!(never, None, "no reissue under a tag never used");
    let reissue = ask(target, "contract-adopt-2", &names);
    if !reopened.capabilities().reissue_same_order {
        skip(
            target,
            "adopt_after_crash (reissue)",
            "no reissue on the same order: a new order carries the tag, found by refresh",
        );
        let _lost = reopened.place_order(&reissue.request).await.expect("place");
        let next = target.reopen().await;
        assert_eq!(
            next.find_reissue(&view.order_id, "contract-adopt-2")
                .await
                .expect("find_reissue"),
            None
        );
        let found = refresh_one(next.as_ref(), by_tag("contract-adopt-2"))
            .await
            .expect("found by tag");
        assert_ne!(found.order_id, view.order_id);
        return;
    }
    match target.inject(Fault::DroppedAnswer).await {
        Ok(()) => {
            let error = reopened
                .reissue(&view.order_id, &reissue.request)
                .await
                .expect_err("the answer is lost");
            assert_eq!(class_of(&error), ErrorClass::Transient, "{error:?}");
            target.clear_faults().await;
        }
        Err(reason) => {
            skip(
                target,
                "adopt_after_crash (dropped reissue answer)",
                &format!("{reason}; the caller drops the answer instead"),
            );
            let _lost = reopened
                .reissue(&view.order_id, &reissue.request)
                .await
                .expect("reissue");
        }
    }
    let next = target.reopen().await;
    let found = next
        .find_reissue(&view.order_id, "contract-adopt-2")
        .await
        .expect("find_reissue")
        .expect("the lost reissue is found");
    assert_eq!(found.order_id, view.order_id);
    let current = complete(target, next.as_ref(), found, &reissue.request.csr_der).await;
    assert_ne!(current.serial, view.serial, "the reissued certificate");
}

/// A rate-limited CA answers `RateLimited` with its wait; nothing is ordered twice after.
pub async fn rate_limited(target: &dyn ContractTarget) {
    faulted_then_clear(target, Fault::RateLimited, "rate_limited").await;
}

/// Server errors are `Transient`; the same request succeeds once they stop.
pub async fn transient_faults(target: &dyn ContractTarget) {
    faulted_then_clear(target, Fault::Transient, "transient_faults").await;
}

async fn faulted_then_clear(target: &dyn ContractTarget, fault: Fault, case: &str) {
    let names = names(case.trim_end_matches("_faults").replace('_', "-").as_str());
    let asked = ask(target, &format!("contract-{case}-1"), &names);
    if let Err(reason) = target.inject(fault).await {
        skip(target, case, &reason);
        return;
    }
    let ca = target.ca();
    let error = ca
        .place_order(&asked.request)
        .await
        .expect_err("the fault shows");
    match fault {
        Fault::RateLimited => {
            assert_eq!(class_of(&error), ErrorClass::RateLimited, "{error:?}");
            let wait = retry_after_of(&error).expect("the CA's wait is kept");
            assert!(wait > Duration::ZERO, "{wait}");
        }
        Fault::Transient | Fault::DroppedAnswer => {
            assert_eq!(class_of(&error), ErrorClass::Transient, "{error:?}");
        }
    }
    target.clear_faults().await;
    // The refused request left nothing behind: the tag finds no order, so it is placed again.
    assert_eq!(refresh_one(ca, by_tag(&asked.request.tag)).await, None);
    let placed = ca.place_order(&asked.request).await.expect("place after");
    let view = complete(target, ca, placed, &asked.request.csr_der).await;
    let issued = fetch_issued(ca, &view.order_id).await;
    check_certificate(target, &view, &issued, &asked).await;
    match target.orders_for(&names[0]).await {
        Ok(count) => assert_eq!(count, 1, "one order at the CA"),
        Err(reason) => skip(target, &format!("{case} (order count)"), &reason),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared glue: DNS proofs published in a real BIND.

/// A BIND serving `contract.test`, where DNS proofs are published with `nsupdate`.
pub struct ContractDns {
    pub bind: Bind,
}

impl ContractDns {
    pub fn start() -> ContractDns {
        ContractDns {
            bind: Bind::start(&[ZoneSpec::new(ZONE)]),
        }
    }

    /// Publish the DNS proof of every challenge not yet valid (one per domain); answer those.
    pub fn satisfy(&self, challenges: &[Challenge]) -> Vec<Challenge> {
        let mut chosen: Vec<Challenge> = Vec::new();
        for challenge in challenges {
            let ChallengeKind::DnsTxt { name, value } = &challenge.kind else {
                continue;
            };
            if chosen.iter().any(|c| c.domain == challenge.domain) {
                continue;
            }
            if challenge.status != "valid" {
                self.add_txt(name, value);
            }
            chosen.push(challenge.clone());
        }
        let mut domains: Vec<&str> = challenges.iter().map(|c| c.domain.as_str()).collect();
        domains.dedup();
        assert_eq!(
            chosen.len(),
            domains.len(),
            "a DNS challenge for every domain: {challenges:?}"
        );
        chosen
    }

    /// Add TXT `value` at `name` with a TSIG-signed `nsupdate`.
    pub fn add_txt(&self, name: &str, value: &str) {
        let key = self.bind.key(crate::bind::DEFAULT_KEY);
        let script = format!(
            "server {} {}\nzone {ZONE}\nupdate add {}. 60 TXT \"{value}\"\nsend\n",
            self.bind.addr.ip(),
            self.bind.addr.port(),
            name.trim_end_matches('.'),
        );
        run_nsupdate(&key.file, &script);
    }
}

fn run_nsupdate(key_file: &Path, script: &str) {
    let mut child = Command::new("nsupdate")
        .arg("-k")
        .arg(key_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot run `nsupdate` ({error}): apt-get install -y bind9-utils dnsutils")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the update");
    let output = child.wait_with_output().expect("nsupdate");
    assert!(
        output.status.success(),
        "nsupdate failed:\n{script}\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
