//! Executor tests against the in-memory fake CA and state store (`crate::testing`): every
//! crash and duplicate path, with exact call counts at the CA. Each "run" is what `apply` does:
//! load state, refresh, plan, execute; a fail point unwinds the run like a kill.

use std::path::{Path, PathBuf};

use time::macros::datetime;

use super::*;
use crate::ca::Capabilities;
use crate::plan::PlanInput;
use crate::spec::CaOptions;
use crate::testing::{FakeCa, Fault, MemoryStore, Op};

const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

const REISSUING: Capabilities = Capabilities {
    reissue_same_order: true,
    cancel: true,
    revoke: true,
    duplicates: crate::capabilities::DuplicatePrevention::TagAtCa,
    cancel_refunds: false,
    honours_validity: true,
    max_orders_per_run: None,
    max_lifetime: &[],
    parallel_certificates: 4,
};

const ORDERING: Capabilities = Capabilities {
    reissue_same_order: false,
    cancel: true,
    revoke: true,
    duplicates: crate::capabilities::DuplicatePrevention::TagAtCa,
    cancel_refunds: false,
    honours_validity: true,
    max_orders_per_run: None,
    max_lifetime: &[],
    parallel_certificates: 4,
};

fn certificate_toml(name: &str, sans: &[&str], extra: &str) -> String {
    let sans: Vec<String> = sans.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[certificate.{name}]\nca = \"fake\"\ncommon_name = \"{name}.example.test\"\nsans = [{}]\nvalidity = {{ days = 90 }}\nrenew_before = \"30d\"\nkey = {{ algorithm = \"ecdsa\", size = 256 }}\ndeploy = [{{ kind = \"files\", dir = \"out/{name}\" }}]\n{extra}\n",
        sans.join(", ")
    )
}

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: Arc<Config>,
    store: Arc<MemoryStore>,
    keys: Arc<KeyStore>,
    ca: Arc<FakeCa>,
    now: OffsetDateTime,
    retry: RetryPolicy,
    parallelism: usize,
    per_ca: BTreeMap<String, usize>,
}

impl World {
    fn new(capabilities: Capabilities, certificates: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let keys = Arc::new(KeyStore::new(root.join("keys")));
        let ca = Arc::new(FakeCa::new("fake", capabilities, Some(Arc::clone(&keys))));
        let mut world = World {
            _dir: dir,
            config: Arc::new(load_config(&root, certificates)),
            root,
            store: Arc::new(MemoryStore::default()),
            keys,
            ca,
            now: NOW,
            retry: RetryPolicy {
                attempts: 3,
                base_delay: StdDuration::ZERO,
            },
            parallelism: 1,
            per_ca: BTreeMap::new(),
        };
        world.set_config(certificates);
        world
    }

    fn set_config(&mut self, certificates: &str) {
        self.config = Arc::new(load_config(&self.root, certificates));
    }

    fn accounts(&self) -> Accounts {
        let mut accounts: Accounts = BTreeMap::new();
        accounts.insert(
            "fake".into(),
            Arc::clone(&self.ca) as Arc<dyn CertificateAuthority>,
        );
        accounts
    }

    async fn plan(&self, state: &State) -> Plan {
        let store = Arc::clone(&self.store);
        let read_chain = move |name: &str| {
            store
                .read_chain(name)
                .map(|text| text.map(crate::check_cache::Chain::Text))
                .map_err(|e| e.to_string())
        };
        let mut observed =
            crate::refresh::refresh(&self.config, state, &read_chain, &self.accounts(), self.now)
                .await;
        crate::deploy::observe_keys(
            &self.config,
            state,
            &self.keys,
            |name| read_chain(name).ok().flatten(),
            &mut observed,
        );
        let capabilities = BTreeMap::from([("fake".to_string(), self.ca.capabilities())]);
        crate::plan::plan(&PlanInput {
            certificates: &self.config.certificates,
            state,
            observed: &observed,
            capabilities: &capabilities,
            replace: &std::collections::BTreeSet::new(),
            now: self.now,
            thresholds: self.config.thresholds,
        })
    }

    /// One apply; `Err` when the run was killed at `failpoint` or failed as a whole.
    async fn apply_at(&self, failpoint: Option<&str>) -> (Plan, Result<Report, String>) {
        let state = self.store.load().expect("load");
        let plan = self.plan(&state).await;
        let result = self.execute(&plan, failpoint).await;
        (plan, result)
    }

    /// Carry out `plan` (possibly planned before an earlier run was killed) on current state.
    async fn execute(&self, plan: &Plan, failpoint: Option<&str>) -> Result<Report, String> {
        let state = self.store.load().expect("load");
        let executor = Arc::new(Executor {
            config: Arc::clone(&self.config),
            store: Arc::clone(&self.store) as Arc<dyn StateStore>,
            keys: Arc::clone(&self.keys),
            accounts: self.accounts(),
            now: self.now,
            parallelism: self.parallelism,
            per_ca: self.per_ca.clone(),
            retry: self.retry,
            failpoints: FailPoints::new(failpoint.map(str::to_string)),
            dcv: Arc::new(crate::dcv::Validator::new(BTreeMap::new())),
            on_done: None,
        });
        let to_run = plan.clone();
        tokio::spawn(async move { executor.run(&to_run, &state).await })
            .await
            .map_err(|killed| format!("killed: {killed}"))
            .and_then(|result| result.map_err(|e| error_chain(&e)))
    }

    async fn apply(&self) -> Report {
        let (plan, result) = self.apply_at(None).await;
        result.unwrap_or_else(|e| panic!("apply of {plan:?} failed: {e}"))
    }

    fn state_of(&self, name: &str) -> CertificateState {
        self.store.snapshot().certificates[name].clone()
    }

    /// The certificate is issued, nothing is in flight, and the deployed key is the key of
    /// the deployed certificate, which is the one state records.
    fn assert_converged(&self, name: &str) {
        let state = self.state_of(name);
        assert_eq!(state.status, CertificateStatus::Issued, "{state:?}");
        assert!(state.intent.is_none(), "{state:?}");
        let out = self.root.join("out").join(name);
        let cert = std::fs::read_to_string(out.join("cert.pem")).expect("deployed cert");
        let key = std::fs::read_to_string(out.join("privkey.pem")).expect("deployed key");
        let (info, _) = keys::inspect_chain(&cert).expect("cert");
        assert_eq!(state.serial.as_deref(), Some(info.serial.as_str()));
        assert_eq!(
            PrivateKey::from_pem(&key).expect("key").spki_sha256(),
            info.spki_sha256
        );
        assert!(self.ca.keyless_requests().is_empty());
    }

    async fn assert_nothing_to_do(&self) {
        let state = self.store.load().expect("load");
        let plan = self.plan(&state).await;
        assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    }
}

fn load_config(root: &Path, certificates: &str) -> Config {
    let text = format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.fake]\nkind = \"local\"\n\n{certificates}"
    );
    let source = crate::config::Source {
        path: root.join("certform.toml"),
        text,
    };
    crate::config::load(&[source]).expect("config")
}

fn web() -> String {
    certificate_toml("web", &["web.example.test"], "")
}

/// Every fail point a create, renew or new-order reissue passes.
const ORDER_POINTS: [&str; 7] = FailPoints::ALL;

#[tokio::test]
async fn a_create_places_one_order_fetches_and_deploys() {
    let world = World::new(REISSUING, &web());
    let report = world.apply().await;
    assert_eq!(report.failures(), 0, "{report:?}");
    assert!(report.commit.is_some());
    world.assert_converged("web");
    assert_eq!(world.ca.count(Op::Place), 1);
    assert_eq!(world.ca.count(Op::Fetch), 1);
    assert_eq!(world.ca.count(Op::LookupByTag), 0);
    assert_eq!(world.store.commits().len(), 1);
    // The intent was durable before the order left, and the commit took every write.
    let first = &world.store.writes()[0].certificates["web"];
    let intent = first.intent.as_ref().expect("intent first");
    assert_eq!(intent.order_id, None);
    assert_eq!(world.ca.calls()[0], (Op::Place, intent.tag.clone()));
    let written = world.store.snapshot();
    world.store.drop_uncommitted();
    assert_eq!(world.store.snapshot(), written);
    assert_eq!(
        written.public.len(),
        1,
        "the CA's trust anchor is published"
    );
    world.assert_nothing_to_do().await;
}

#[tokio::test]
async fn an_order_whose_record_cannot_be_written_is_adopted_not_placed_again() {
    let world = World::new(REISSUING, &web());
    // The intent is written; the write recording the order id fails (a dying disk).
    world.store.fail_writes_after(Some(1));
    let (_, failed) = world.apply_at(None).await;
    let error = failed.expect_err("the run cannot write state");
    assert!(error.contains("injected write failure"), "{error}");
    assert!(world.store.commits().is_empty());
    assert_eq!(world.ca.count(Op::Place), 1);
    world.store.fail_writes_after(None);
    let (plan, result) = world.apply_at(None).await;
    assert!(
        matches!(plan.changes[0].action, Action::Adopt { .. }),
        "{plan:?}"
    );
    assert_eq!(result.expect("apply").failures(), 0);
    world.assert_converged("web");
    assert_eq!(world.ca.count(Op::Place), 1, "{:?}", world.ca.calls());
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_found_by_tag_in_the_same_run() {
    let world = World::new(REISSUING, &web());
    world.ca.inject(Op::Place, &[Fault::Lost]);
    let report = world.apply().await;
    assert_eq!(report.failures(), 0, "{report:?}");
    world.assert_converged("web");
    assert_eq!(world.ca.count(Op::Place), 1, "{:?}", world.ca.calls());
    assert_eq!(world.ca.count(Op::LookupByTag), 1);
    assert_eq!(world.ca.order_count(), 1);
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_adopted_by_tag_on_the_next_run() {
    let mut world = World::new(REISSUING, &web());
    world.retry.attempts = 1;
    world.ca.inject(Op::Place, &[Fault::Lost]);
    let report = world.apply().await;
    assert_eq!(report.failures(), 1, "{report:?}");
    let state = world.state_of("web");
    let intent = state.intent.clone().expect("intent kept");
    assert_eq!(intent.order_id, None);

    let (plan, result) = world.apply_at(None).await;
    assert!(
        matches!(plan.changes[0].action, Action::Adopt { .. }),
        "{plan:?}"
    );
    assert_eq!(result.expect("apply").failures(), 0);
    world.assert_converged("web");
    assert_eq!(world.ca.count(Op::Place), 1, "{:?}", world.ca.calls());
    assert_eq!(world.ca.order_count(), 1);
    assert_eq!(
        world.ca.order_tags().into_values().collect::<Vec<_>>(),
        vec![vec![intent.tag]]
    );
    world.assert_nothing_to_do().await;
}

#[tokio::test]
async fn a_create_killed_at_each_fail_point_converges_with_one_order() {
    for point in ORDER_POINTS {
        let world = World::new(REISSUING, &web());
        let (_, killed) = world.apply_at(Some(point)).await;
        assert!(killed.is_err(), "{point}: {killed:?}");
        // A key written before the kill is the one the order uses.
        let report = world.apply().await;
        assert_eq!(report.failures(), 0, "{point}: {report:?}");
        world.assert_converged("web");
        assert_eq!(
            world.ca.count(Op::Place),
            1,
            "{point}: {:?}",
            world.ca.calls()
        );
        assert_eq!(world.ca.order_count(), 1, "{point}");
        assert!(!world.store.commits().is_empty(), "{point}");
        world.assert_nothing_to_do().await;
    }
}

/// Issue `web` at `NOW`, then move the clock into its renewal window.
async fn issued_and_due(capabilities: Capabilities) -> World {
    let mut world = World::new(capabilities, &web());
    world.apply().await;
    world.now = NOW + time::Duration::days(70);
    world
}

#[tokio::test]
async fn a_renewal_killed_at_each_fail_point_places_exactly_one_renewal_order() {
    for point in ORDER_POINTS {
        let world = issued_and_due(ORDERING).await;
        let before = world.state_of("web");
        let (plan, killed) = world.apply_at(Some(point)).await;
        assert!(
            matches!(plan.changes[0].action, Action::Renew { .. }),
            "{plan:?}"
        );
        assert!(killed.is_err(), "{point}: {killed:?}");
        let report = world.apply().await;
        assert_eq!(report.failures(), 0, "{point}: {report:?}");
        world.assert_converged("web");
        let after = world.state_of("web");
        assert_ne!(after.serial, before.serial, "{point}");
        assert_ne!(
            after.key_id, before.key_id,
            "{point}: a renewal has a new key"
        );
        assert_eq!(
            world.ca.count(Op::Place),
            2,
            "{point}: {:?}",
            world.ca.calls()
        );
        assert_eq!(world.ca.order_count(), 2, "{point}");
        world.assert_nothing_to_do().await;
    }
}

#[tokio::test]
async fn a_reissue_on_the_same_order_killed_at_each_fail_point_reissues_once() {
    let points = ORDER_POINTS.iter().copied().chain(["after-reissue"]);
    for point in points {
        let mut world = World::new(REISSUING, &web());
        world.apply().await;
        let before = world.state_of("web");
        world.set_config(&certificate_toml(
            "web",
            &["web.example.test", "www.example.test"],
            "",
        ));
        let (plan, killed) = world.apply_at(Some(point)).await;
        assert!(
            matches!(
                plan.changes[0].action,
                Action::Reissue {
                    same_order: true,
                    ..
                }
            ),
            "{plan:?}"
        );
        assert!(killed.is_err(), "{point}: {killed:?}");
        let report = world.apply().await;
        assert_eq!(report.failures(), 0, "{point}: {report:?}");
        world.assert_converged("web");
        let after = world.state_of("web");
        assert_eq!(after.order_id, before.order_id, "{point}");
        assert_eq!(after.sans.len(), 2, "{point}");
        assert_eq!(
            world.ca.count(Op::Place),
            1,
            "{point}: {:?}",
            world.ca.calls()
        );
        assert_eq!(
            world.ca.count(Op::Reissue),
            1,
            "{point}: {:?}",
            world.ca.calls()
        );
        world.assert_nothing_to_do().await;
    }
}

#[tokio::test]
async fn a_resumed_reissue_asks_the_ca_before_sending_it_again() {
    // The CA keeps reissue tags where `refresh` does not see them (like DigiCert). After a
    // kill, refresh asks `find_reissue` and the next plan adopts a reissue that arrived; the
    // executor asks again itself, so even the plan made before the kill (`Reissue`) carried
    // out on the interrupted state sends no second request.
    for (point, reached) in [
        ("after-intent", false),
        ("after-key", false),
        ("after-reissue", true),
        ("after-order", true),
    ] {
        let mut world = World::new(REISSUING, &web());
        world.ca.hide_reissue_tags(true);
        world.apply().await;
        world.set_config(&certificate_toml(
            "web",
            &["web.example.test", "www.example.test"],
            "",
        ));
        let (stale_plan, killed) = world.apply_at(Some(point)).await;
        assert!(killed.is_err(), "{point}: {killed:?}");
        assert_eq!(world.ca.count(Op::Reissue), usize::from(reached), "{point}");
        let asked = world.ca.count(Op::FindReissue);

        let report = world.execute(&stale_plan, None).await.expect("apply");
        assert_eq!(report.failures(), 0, "{point}: {report:?}");
        assert_eq!(world.ca.count(Op::FindReissue), asked + 1, "{point}");
        world.assert_converged("web");
        assert_eq!(world.state_of("web").sans.len(), 2, "{point}");
        assert_eq!(
            world.ca.count(Op::Reissue),
            1,
            "{point}: {:?}",
            world.ca.calls()
        );
        assert_eq!(world.ca.count(Op::Place), 1, "{point}");
        world.assert_nothing_to_do().await;
    }
}

#[tokio::test]
async fn after_a_killed_reissue_the_next_plan_adopts_what_find_reissue_reports() {
    for (point, reached) in [("after-key", false), ("after-reissue", true)] {
        let mut world = World::new(REISSUING, &web());
        world.ca.hide_reissue_tags(true);
        world.apply().await;
        world.set_config(&certificate_toml(
            "web",
            &["web.example.test", "www.example.test"],
            "",
        ));
        let (_, killed) = world.apply_at(Some(point)).await;
        assert!(killed.is_err(), "{point}: {killed:?}");
        let (plan, result) = world.apply_at(None).await;
        if reached {
            assert!(
                matches!(plan.changes[0].action, Action::Adopt { .. }),
                "{plan:?}"
            );
        } else {
            assert!(
                matches!(plan.changes[0].action, Action::Reissue { .. }),
                "{plan:?}"
            );
        }
        assert_eq!(result.expect("apply").failures(), 0, "{point}");
        world.assert_converged("web");
        assert_eq!(
            world.ca.count(Op::Reissue),
            1,
            "{point}: {:?}",
            world.ca.calls()
        );
    }
}

#[tokio::test]
async fn a_reissue_whose_answer_is_lost_is_found_not_sent_again() {
    let mut world = World::new(REISSUING, &web());
    world.apply().await;
    world.set_config(&certificate_toml(
        "web",
        &["web.example.test", "www.example.test"],
        "",
    ));
    world.ca.inject(Op::Reissue, &[Fault::Lost]);
    let report = world.apply().await;
    assert_eq!(report.failures(), 0, "{report:?}");
    world.assert_converged("web");
    assert_eq!(world.ca.count(Op::Reissue), 1, "{:?}", world.ca.calls());
    assert_eq!(world.ca.count(Op::Place), 1);
}

#[tokio::test]
async fn transient_read_errors_are_not_retried_by_the_executor() {
    // The HTTP layer retries reads; what still fails reaches the executor once and the
    // certificate fails for this run. The next run fetches, not re-orders.
    let world = World::new(REISSUING, &web());
    world.ca.inject(Op::Fetch, &[Fault::Transient]);
    let report = world.apply().await;
    assert_eq!(report.failures(), 1, "{report:?}");
    assert_eq!(world.ca.count(Op::Fetch), 1, "{:?}", world.ca.calls());
    let failure = report.outcomes[0].result.clone().expect_err("failed");
    assert_eq!(failure.class, Some(ErrorClass::Transient), "{failure:?}");
    let (plan, result) = world.apply_at(None).await;
    assert!(
        matches!(plan.changes[0].action, Action::Fetch { .. }),
        "{plan:?}"
    );
    assert_eq!(result.expect("apply").failures(), 0);
    world.assert_converged("web");
    assert_eq!(world.ca.count(Op::Fetch), 2);
    assert_eq!(world.ca.count(Op::Place), 1);
}

#[tokio::test]
async fn a_transient_order_error_looks_up_the_tag_then_orders_once_more() {
    let world = World::new(REISSUING, &web());
    world.ca.inject(Op::Place, &[Fault::Transient]);
    let report = world.apply().await;
    assert_eq!(report.failures(), 0, "{report:?}");
    world.assert_converged("web");
    assert_eq!(world.ca.count(Op::Place), 2);
    assert_eq!(world.ca.count(Op::LookupByTag), 1);
    assert_eq!(world.ca.order_count(), 1);

    // Never more than the policy's attempts.
    let world = World::new(REISSUING, &web());
    world.ca.inject(Op::Place, &[Fault::Transient; 5]);
    let report = world.apply().await;
    assert_eq!(report.failures(), 1, "{report:?}");
    assert_eq!(world.ca.count(Op::Place), 3);
    assert_eq!(world.ca.count(Op::LookupByTag), 2);
    assert_eq!(world.ca.order_count(), 0);
}

#[tokio::test]
async fn a_rate_limited_order_records_retry_after_and_is_not_retried() {
    let world = World::new(REISSUING, &web());
    world
        .ca
        .inject(Op::Place, &[Fault::RateLimited(time::Duration::hours(2))]);
    let report = world.apply().await;
    assert_eq!(report.failures(), 1, "{report:?}");
    let error = report.outcomes[0]
        .result
        .clone()
        .expect_err("failed")
        .to_string();
    assert!(error.contains("too many requests"), "{error}");
    assert_eq!(world.ca.count(Op::Place), 1);
    assert_eq!(world.ca.count(Op::LookupByTag), 0);
    assert_eq!(
        world.state_of("web").retry_after,
        Some(NOW + time::Duration::hours(2))
    );
    // The next run at the same time holds it back: no call to place an order.
    let (plan, result) = world.apply_at(None).await;
    assert!(plan.changes.is_empty(), "{plan:?}");
    assert_eq!(plan.blocked.len(), 1, "{plan:?}");
    result.expect("apply");
    assert_eq!(world.ca.count(Op::Place), 1);
}

#[tokio::test]
async fn a_rejected_certificate_fails_alone_and_the_report_lists_each_failure() {
    let certificates = format!(
        "{}{}{}",
        certificate_toml("api", &["api.example.test"], ""),
        certificate_toml("db", &["db.example.test"], ""),
        web()
    );
    let world = World::new(REISSUING, &certificates);
    // Parallelism 1 and changes sorted by name: `api` then `db` then `web`.
    world
        .ca
        .inject(Op::Place, &[Fault::Rejected, Fault::Rejected]);
    let report = world.apply().await;
    let outcomes: Vec<(&str, bool)> = report
        .outcomes
        .iter()
        .map(|o| (o.certificate.as_str(), o.result.is_ok()))
        .collect();
    assert_eq!(outcomes, vec![("api", false), ("db", false), ("web", true)]);
    assert_eq!(report.failures(), 2);
    assert!(report.commit.is_some());
    let message = &world.store.commits()[0];
    assert!(message.contains("create api FAILED"), "{message}");
    assert!(message.contains("create db FAILED"), "{message}");
    world.assert_converged("web");
    // Rejections are not retried.
    assert_eq!(world.ca.count(Op::Place), 3);
}

#[tokio::test]
async fn the_fake_ca_notices_an_order_whose_key_is_not_on_disk() {
    // The check the other tests rely on (`keyless_requests` empty) can fail.
    let world = World::new(REISSUING, &web());
    let key = PrivateKey::generate(crate::spec::KeySpec::Ecdsa(256)).expect("key");
    let request = OrderRequest {
        tag: "cf-0.00".into(),
        common_name: "web.example.test".into(),
        sans: vec!["web.example.test".into()],
        csr_der: key
            .csr_der("web.example.test", &["web.example.test".into()])
            .expect("csr"),
        validity: crate::spec::Validity::Days(90),
        renewal_of: None,
        options: CaOptions::default(),
        dcv: Vec::new(),
        now: NOW,
    };
    world.ca.place_order(&request).await.expect("order");
    assert_eq!(world.ca.keyless_requests(), vec!["cf-0.00".to_string()]);
}

#[tokio::test]
async fn every_order_and_reissue_leaves_after_its_key_is_written() {
    let mut world = World::new(REISSUING, &web());
    world.apply().await;
    world.set_config(&certificate_toml(
        "web",
        &["web.example.test", "www.example.test"],
        "",
    ));
    world.apply().await;
    world.now = NOW + time::Duration::days(70);
    world.apply().await;
    assert_eq!(world.ca.count(Op::Reissue) + world.ca.count(Op::Place), 3);
    assert!(world.ca.keyless_requests().is_empty());
}

#[tokio::test]
async fn a_revocation_whose_answer_is_lost_is_recorded_not_sent_again() {
    let mut world = World::new(REISSUING, &web());
    world.apply().await;
    world.set_config(&certificate_toml(
        "web",
        &["web.example.test"],
        "revoke = true\nrevoke_reason = \"superseded\"\n",
    ));
    world.ca.inject(Op::Revoke, &[Fault::Lost]);
    let (plan, result) = world.apply_at(None).await;
    assert!(
        matches!(
            plan.changes[0].action,
            Action::Revoke {
                record_only: false,
                ..
            }
        ),
        "{plan:?}"
    );
    assert_eq!(result.expect("apply").failures(), 1);
    assert_eq!(world.ca.count(Op::Revoke), 1);

    let (plan, result) = world.apply_at(None).await;
    assert!(
        matches!(
            plan.changes[0].action,
            Action::Revoke {
                record_only: true,
                ..
            }
        ),
        "{plan:?}"
    );
    assert_eq!(result.expect("apply").failures(), 0);
    assert_eq!(world.ca.count(Op::Revoke), 1, "{:?}", world.ca.calls());
    let state = world.state_of("web");
    assert_eq!(state.status, CertificateStatus::Revoked);
    let order = state.order_id.expect("order");
    assert_eq!(world.ca.status_of(&order), Some(OrderStatus::Revoked));
    world.assert_nothing_to_do().await;
}

#[tokio::test]
async fn a_revocation_killed_after_the_ca_revoked_is_not_sent_again() {
    let mut world = World::new(REISSUING, &web());
    world.apply().await;
    world.set_config(&certificate_toml(
        "web",
        &["web.example.test"],
        "revoke = true\nrevoke_reason = \"superseded\"\n",
    ));
    let (_, killed) = world.apply_at(Some("after-revoke")).await;
    assert!(killed.is_err(), "{killed:?}");
    assert_eq!(world.ca.count(Op::Revoke), 1);
    let report = world.apply().await;
    assert_eq!(report.failures(), 0, "{report:?}");
    assert_eq!(world.ca.count(Op::Revoke), 1, "{:?}", world.ca.calls());
    assert_eq!(world.state_of("web").status, CertificateStatus::Revoked);
    world.assert_nothing_to_do().await;
}

#[tokio::test]
async fn a_cancellation_whose_answer_is_lost_is_not_sent_again() {
    let mut world = World::new(
        REISSUING,
        &certificate_toml("web", &["web.example.test"], "on_remove = \"cancel\"\n"),
    );
    world.ca.set_pending(true);
    let report = world.apply().await;
    assert_eq!(report.failures(), 0, "{report:?}");
    let order = world.state_of("web").intent.and_then(|i| i.order_id);
    let order = order.expect("the pending order is recorded");
    assert_eq!(world.ca.status_of(&order), Some(OrderStatus::Pending));

    world.set_config("");
    world.ca.inject(Op::Cancel, &[Fault::Lost]);
    let (plan, result) = world.apply_at(None).await;
    assert!(
        matches!(&plan.changes[0].action, Action::Cancel { order_id, .. } if *order_id == order),
        "{plan:?}"
    );
    assert_eq!(result.expect("apply").failures(), 1);
    assert_eq!(world.ca.count(Op::Cancel), 1);
    assert_eq!(world.ca.status_of(&order), Some(OrderStatus::Canceled));

    // The next run sees the order cancelled at the CA and only forgets it.
    let (plan, result) = world.apply_at(None).await;
    assert!(matches!(plan.changes[0].action, Action::Forget), "{plan:?}");
    assert_eq!(result.expect("apply").failures(), 0);
    assert_eq!(world.ca.count(Op::Cancel), 1, "{:?}", world.ca.calls());
    assert!(world.store.snapshot().certificates.is_empty());
    assert_eq!(world.ca.count(Op::Place), 1);
}

#[tokio::test]
async fn a_ca_that_cannot_be_read_blocks_its_renewals_without_ordering() {
    let world = issued_and_due(ORDERING).await;
    world.ca.inject(Op::Refresh, &[Fault::Transient]);
    let (plan, result) = world.apply_at(None).await;
    assert!(plan.changes.is_empty(), "{plan:?}");
    assert_eq!(plan.blocked.len(), 1, "{plan:?}");
    result.expect("apply");
    assert_eq!(world.ca.count(Op::Place), 1);
    // Once the CA answers again, the renewal goes ahead.
    let report = world.apply().await;
    assert_eq!(report.failures(), 0, "{report:?}");
    assert_eq!(world.ca.count(Op::Place), 2);
    world.assert_converged("web");
}

#[tokio::test]
async fn a_reissue_as_a_new_order_killed_at_each_fail_point_orders_once() {
    for point in ORDER_POINTS {
        let mut world = World::new(ORDERING, &web());
        world.apply().await;
        let before = world.state_of("web");
        world.set_config(&certificate_toml(
            "web",
            &["web.example.test", "www.example.test"],
            "",
        ));
        let (plan, killed) = world.apply_at(Some(point)).await;
        assert!(
            matches!(
                plan.changes[0].action,
                Action::Reissue {
                    same_order: false,
                    ..
                }
            ),
            "{plan:?}"
        );
        assert!(killed.is_err(), "{point}: {killed:?}");
        let report = world.apply().await;
        assert_eq!(report.failures(), 0, "{point}: {report:?}");
        world.assert_converged("web");
        assert_ne!(world.state_of("web").order_id, before.order_id, "{point}");
        assert_eq!(
            world.ca.count(Op::Place),
            2,
            "{point}: {:?}",
            world.ca.calls()
        );
        assert_eq!(world.ca.count(Op::Reissue), 0, "{point}");
        world.assert_nothing_to_do().await;
    }
}

#[tokio::test]
async fn a_renewal_whose_answer_is_lost_is_adopted_on_the_next_run() {
    let mut world = issued_and_due(ORDERING).await;
    world.retry.attempts = 1;
    world.ca.inject(Op::Place, &[Fault::Lost]);
    let report = world.apply().await;
    assert_eq!(report.failures(), 1, "{report:?}");
    let (plan, result) = world.apply_at(None).await;
    assert!(
        matches!(plan.changes[0].action, Action::Adopt { .. }),
        "{plan:?}"
    );
    assert_eq!(result.expect("apply").failures(), 0);
    world.assert_converged("web");
    assert_eq!(world.ca.count(Op::Place), 2, "{:?}", world.ca.calls());
    assert_eq!(world.ca.order_count(), 2);
}

#[tokio::test]
async fn an_unanswered_find_reissue_blocks_the_certificate_instead_of_reissuing() {
    let mut world = World::new(REISSUING, &web());
    world.ca.hide_reissue_tags(true);
    world.apply().await;
    world.set_config(&certificate_toml(
        "web",
        &["web.example.test", "www.example.test"],
        "",
    ));
    let (_, killed) = world.apply_at(Some("after-reissue")).await;
    assert!(killed.is_err(), "{killed:?}");
    world.ca.inject(Op::FindReissue, &[Fault::Transient]);
    let (plan, result) = world.apply_at(None).await;
    assert!(plan.changes.is_empty(), "{plan:?}");
    assert_eq!(plan.blocked.len(), 1, "{plan:?}");
    result.expect("apply");
    assert_eq!(world.ca.count(Op::Reissue), 1, "{:?}", world.ca.calls());
    // Answered, the reissue that arrived is adopted.
    let report = world.apply().await;
    assert_eq!(report.failures(), 0, "{report:?}");
    world.assert_converged("web");
    assert_eq!(world.ca.count(Op::Reissue), 1, "{:?}", world.ca.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_certificates_each_get_one_order_whatever_faults_they_meet() {
    let names = ["a", "b", "c", "d", "e", "f"];
    let certificates: String = names
        .iter()
        .map(|n| certificate_toml(n, &[&format!("{n}.example.test")], ""))
        .collect();
    let mut world = World::new(REISSUING, &certificates);
    world.parallelism = 4;
    // Whichever certificates meet them: one is refused, one order's answer is lost (found by
    // tag), one request is lost before the CA (looked up, then placed again).
    world
        .ca
        .inject(Op::Place, &[Fault::Rejected, Fault::Lost, Fault::Transient]);
    let report = world.apply().await;
    let order: Vec<&str> = report
        .outcomes
        .iter()
        .map(|o| o.certificate.as_str())
        .collect();
    assert_eq!(order, names, "outcomes in plan order");
    assert_eq!(report.failures(), 1, "{report:?}");
    assert_eq!(world.ca.count(Op::Place), 7, "{:?}", world.ca.calls());
    assert_eq!(world.ca.count(Op::LookupByTag), 2);
    assert_eq!(world.ca.order_count(), 5);
    let tags = world.ca.order_tags();
    let distinct: std::collections::BTreeSet<_> = tags.values().flatten().collect();
    assert_eq!(distinct.len(), 5, "one tag per order: {tags:?}");
    for outcome in report.outcomes.iter().filter(|o| o.result.is_ok()) {
        world.assert_converged(&outcome.certificate);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_limit_bounds_its_certificates_at_once_below_the_runs() {
    let names = ["a", "b", "c", "d", "e", "f"];
    let certificates: String = names
        .iter()
        .map(|n| certificate_toml(n, &[&format!("{n}.example.test")], ""))
        .collect();
    let world = |per_ca: &[(&str, usize)]| {
        let mut world = World::new(REISSUING, &certificates);
        world.parallelism = 6;
        world.per_ca = per_ca
            .iter()
            .map(|(ca, limit)| (ca.to_string(), *limit))
            .collect();
        world.ca.set_place_delay(StdDuration::from_millis(100));
        world
    };
    // The run's own number alone lets all six order at once...
    let unbounded = world(&[]);
    let report = unbounded.apply().await;
    assert_eq!(report.failures(), 0, "{report:?}");
    assert!(unbounded.ca.most_placing_at_once() > 2);
    // ...the account's limit of two holds them to two.
    let bounded = world(&[("fake", 2)]);
    let report = bounded.apply().await;
    assert_eq!(report.failures(), 0, "{report:?}");
    assert_eq!(bounded.ca.most_placing_at_once(), 2);
    for name in names {
        bounded.assert_converged(name);
    }
}

#[tokio::test]
async fn a_pending_order_is_waited_on_then_fetched_never_ordered_again() {
    let world = World::new(REISSUING, &web());
    world.ca.set_pending(true);
    let report = world.apply().await;
    assert_eq!(report.failures(), 0, "{report:?}");
    let summary = report.outcomes[0].result.clone().expect("ok");
    assert!(summary.contains("is pending"), "{summary}");

    let (plan, result) = world.apply_at(None).await;
    assert!(
        matches!(plan.changes[0].action, Action::Wait { .. }),
        "{plan:?}"
    );
    result.expect("apply");
    assert_eq!(world.ca.count(Op::Fetch), 0);

    world.ca.issue_pending();
    let (plan, result) = world.apply_at(None).await;
    assert!(!plan.changes.is_empty(), "{plan:?}");
    assert_eq!(result.expect("apply").failures(), 0);
    world.assert_converged("web");
    assert_eq!(world.ca.count(Op::Place), 1, "{:?}", world.ca.calls());
    assert_eq!(world.ca.count(Op::Fetch), 1);
    world.assert_nothing_to_do().await;
}

#[tokio::test]
async fn a_lost_order_answer_whose_lookup_fails_is_not_placed_again() {
    // The lookup before a retry is not retried by the executor (the HTTP layer did); while it
    // cannot answer, nothing is ordered a second time: the certificate fails and the next run
    // adopts the order by its tag.
    let world = World::new(REISSUING, &web());
    world.ca.inject(Op::Place, &[Fault::Lost]);
    world.ca.inject(Op::Refresh, &[Fault::Transient]);
    let report = world.apply().await;
    assert_eq!(report.failures(), 1, "{report:?}");
    assert_eq!(world.ca.count(Op::Place), 1, "{:?}", world.ca.calls());
    assert_eq!(world.ca.count(Op::LookupByTag), 1);
    let (plan, result) = world.apply_at(None).await;
    assert!(
        matches!(plan.changes[0].action, Action::Adopt { .. }),
        "{plan:?}"
    );
    assert_eq!(result.expect("apply").failures(), 0);
    world.assert_converged("web");
    assert_eq!(world.ca.count(Op::Place), 1, "{:?}", world.ca.calls());
    assert_eq!(world.ca.order_count(), 1);
}

/// A CA that cannot find orders by certform's tag.
const UNTAGGED: Capabilities = Capabilities {
    duplicates: crate::capabilities::DuplicatePrevention::None,
    ..ORDERING
};

#[tokio::test]
async fn a_lost_create_at_a_ca_without_tag_lookup_is_not_sent_again_and_the_user_is_asked() {
    let world = World::new(UNTAGGED, &web());
    world.ca.inject(Op::Place, &[Fault::Lost]);
    let report = world.apply().await;
    assert_eq!(report.failures(), 1, "{report:?}");
    let error = report.outcomes[0].result.clone().expect_err("failed");
    assert!(
        error.message.contains("may have reached it")
            && error.message.contains("is not sent again"),
        "{error:?}"
    );
    // One request, no lookup, no retry; the intent stays while the outcome is unknown.
    assert_eq!(world.ca.count(Op::Place), 1, "{:?}", world.ca.calls());
    assert_eq!(world.ca.count(Op::LookupByTag), 0);
    assert_eq!(world.ca.order_count(), 1);
    assert!(world.state_of("web").intent.is_some());

    // The next run does not order again: the certificate is blocked until the user checks.
    let (plan, result) = world.apply_at(None).await;
    assert!(plan.changes.is_empty(), "{plan:?}");
    assert_eq!(plan.blocked.len(), 1, "{plan:?}");
    assert!(
        plan.blocked[0]
            .reason
            .contains("cannot find orders by certform's tag"),
        "{:?}",
        plan.blocked
    );
    assert_eq!(result.expect("apply").failures(), 0);
    assert_eq!(world.ca.count(Op::Place), 1, "{:?}", world.ca.calls());
    assert_eq!(world.ca.order_count(), 1);
}

#[tokio::test]
async fn a_refused_create_at_a_ca_without_tag_lookup_is_ordered_again_next_run() {
    let mut world = World::new(UNTAGGED, &web());
    world.ca.inject(Op::Place, &[Fault::Rejected]);
    let report = world.apply().await;
    assert_eq!(report.failures(), 1, "{report:?}");
    // The CA said no: no order exists, so nothing is left in flight.
    assert!(world.state_of("web").intent.is_none());
    // The failure backs off for an hour: a run before then orders nothing.
    let backoff = world.state_of("web").backoff.expect("a backoff");
    assert_eq!(backoff.attempts.get(), 1);
    assert_eq!(backoff.last_error, Some(ErrorClass::Rejected));
    assert_eq!(backoff.next_try, NOW + time::Duration::HOUR);
    let (plan, _) = world.apply_at(None).await;
    assert!(plan.changes.is_empty(), "{plan:?}");
    assert!(
        plan.blocked[0].reason.starts_with(
            "backing off after 1 failed attempt in a row (last error: rejected); next try at"
        ),
        "{plan:?}"
    );
    assert_eq!(world.ca.count(Op::Place), 1);
    world.now = backoff.next_try;
    let report = world.apply().await;
    assert_eq!(report.failures(), 0, "{report:?}");
    world.assert_converged("web");
    assert_eq!(world.state_of("web").backoff, None, "reset on success");
    assert_eq!(world.ca.order_count(), 1);
    world.assert_nothing_to_do().await;
}

#[tokio::test]
async fn a_create_killed_at_a_ca_without_tag_lookup_is_blocked_not_ordered_twice() {
    let world = World::new(UNTAGGED, &web());
    let (_, killed) = world.apply_at(Some("after-order")).await;
    assert!(killed.is_err(), "{killed:?}");
    assert_eq!(world.ca.order_count(), 1);
    let (plan, _) = world.apply_at(None).await;
    assert!(plan.changes.is_empty(), "{plan:?}");
    assert_eq!(plan.blocked.len(), 1, "{plan:?}");
    assert_eq!(world.ca.count(Op::Place), 1, "{:?}", world.ca.calls());
}

#[tokio::test]
async fn a_lost_reissue_at_a_ca_without_tag_lookup_is_not_sent_again() {
    let mut world = World::new(
        Capabilities {
            reissue_same_order: true,
            ..UNTAGGED
        },
        &web(),
    );
    world.apply().await;
    world.set_config(&certificate_toml(
        "web",
        &["web.example.test", "www.example.test"],
        "",
    ));
    world.ca.inject(Op::Reissue, &[Fault::Lost]);
    let report = world.apply().await;
    assert_eq!(report.failures(), 1, "{report:?}");
    let error = report.outcomes[0].result.clone().expect_err("failed");
    assert!(error.message.contains("is not sent again"), "{error:?}");
    assert_eq!(world.ca.count(Op::Reissue), 1, "{:?}", world.ca.calls());
    // The next run asks the user instead of reissuing a second time.
    let (plan, _) = world.apply_at(None).await;
    assert!(plan.changes.is_empty(), "{plan:?}");
    assert_eq!(plan.blocked.len(), 1, "{plan:?}");
    assert_eq!(world.ca.count(Op::Reissue), 1, "{:?}", world.ca.calls());
}

#[tokio::test]
async fn an_issued_order_whose_certificate_is_not_ready_is_waited_on_not_failed() {
    // `fetch` answering "not collectable yet" is a wait: no failure, the order stays recorded,
    // nothing is ordered again, and a later run fetches the certificate.
    let world = World::new(REISSUING, &web());
    world.ca.set_certificate_not_ready(true);
    let report = world.apply().await;
    assert_eq!(report.failures(), 0, "{report:?}");
    let summary = report.outcomes[0].result.clone().expect("ok");
    assert!(summary.contains("not ready"), "{summary}");
    let order = world.state_of("web").intent.and_then(|i| i.order_id);
    assert!(order.is_some(), "the order is kept for the next run");
    assert_eq!(world.ca.count(Op::Fetch), 1);

    world.ca.set_certificate_not_ready(false);
    let (plan, result) = world.apply_at(None).await;
    assert!(!plan.changes.is_empty(), "{plan:?}");
    assert_eq!(result.expect("apply").failures(), 0);
    world.assert_converged("web");
    assert_eq!(world.ca.count(Op::Place), 1, "{:?}", world.ca.calls());
    assert_eq!(world.ca.count(Op::Fetch), 2);
    world.assert_nothing_to_do().await;
}

#[tokio::test]
async fn a_resumed_create_is_looked_up_by_its_tag_in_the_executor_not_placed_again() {
    // A plan made before a run was killed after its order still says `create`. The CA client
    // places whatever it is asked to; the executor, resuming the intent, looks the tag up first
    // and adopts the order. A fresh create looks nothing up.
    let world = World::new(REISSUING, &web());
    let state = world.store.load().expect("load");
    let plan = world.plan(&state).await;
    let lookups = world.ca.count(Op::LookupByTag);
    let killed = world.execute(&plan, Some("after-order")).await;
    assert!(killed.is_err(), "{killed:?}");
    assert_eq!(world.ca.count(Op::Place), 1);
    assert_eq!(world.ca.count(Op::LookupByTag), lookups, "a fresh create");
    let report = world.execute(&plan, None).await.expect("apply");
    assert_eq!(report.failures(), 0, "{report:?}");
    assert_eq!(world.ca.count(Op::Place), 1, "{:?}", world.ca.calls());
    assert_eq!(world.ca.count(Op::LookupByTag), lookups + 1);
    assert_eq!(world.ca.order_count(), 1);
    world.assert_converged("web");
}

#[tokio::test]
async fn changed_settings_are_recorded_without_a_ca_call_and_a_tombstone_waits_for_state_rm() {
    let mut world = World::new(
        REISSUING,
        &certificate_toml("web", &["web.example.test"], "on_remove = \"revoke\"\n"),
    );
    assert_eq!(world.apply().await.failures(), 0);

    world.set_config(&certificate_toml(
        "web",
        &["web.example.test"],
        "on_remove = \"forget\"\nprevent_destroy = true\nrevoke_reason = \"superseded\"\n",
    ));
    let (plan, result) = world.apply_at(None).await;
    assert_eq!(plan.changes.len(), 1, "{plan:?}");
    assert_eq!(plan.changes[0].action.verb(), "update settings");
    assert_eq!(result.expect("apply").failures(), 0);
    let recorded = world.state_of("web");
    assert_eq!(recorded.on_remove, crate::spec::OnRemove::Forget);
    assert!(recorded.prevent_destroy);
    assert_eq!(
        recorded.revoke_reason,
        Some(crate::spec::RevocationReason::Superseded)
    );
    world.assert_nothing_to_do().await;

    // Removed: a tombstone that nothing acts on, until `state rm` (`state_ops::remove`).
    world.set_config("");
    let (plan, result) = world.apply_at(None).await;
    assert!(plan.changes.is_empty(), "{plan:?}");
    assert_eq!(plan.blocked.len(), 1, "{plan:?}");
    drop(result);
    assert!(world.store.snapshot().certificates.contains_key("web"));
    // Only reads after the first order: no revocation, cancellation or order.
    for op in [Op::Revoke, Op::Cancel] {
        assert_eq!(world.ca.count(op), 0, "{:?}", world.ca.calls());
    }
    assert_eq!(world.ca.count(Op::Place), 1, "{:?}", world.ca.calls());
    let mut state = world.store.load().expect("load");
    crate::state_ops::remove(world.store.as_ref(), &mut state, "web", false).expect("state rm");
    assert!(crate::state_ops::remove(world.store.as_ref(), &mut state, "web", false).is_err());
    assert!(world.store.snapshot().certificates.is_empty());
    world.assert_nothing_to_do().await;
}
