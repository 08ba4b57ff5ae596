use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::capabilities::DuplicatePrevention;
use crate::observed::{ChainDrift, DcvStatus, DeployObservation, ObservedCertificate, OrderView};
use crate::plan::render::{self, TextOptions};
use crate::plan::Guard;
use crate::serial::Serial;
use crate::spec::{
    CaOptions, DeployTarget, DnsName, FilesTarget, KeySpec, Location, RenewBefore, Validity,
};
use crate::state::{DeployRecord, HistoryEntry, LifecycleSettings};

const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

fn spec(name: &str, sans: &[&str]) -> CertificateSpec {
    let mut names: Vec<DnsName> = sans.iter().map(|s| DnsName::new_unchecked(*s)).collect();
    names.sort();
    names.dedup();
    CertificateSpec {
        name: name.to_string(),
        ca: "local".to_string(),
        common_name: names[0].clone(),
        sans: names,
        key: KeySpec::Ecdsa(256),
        validity: Validity::Days(90),
        renew_before: RenewBefore::Duration(Duration::days(30)),
        on_remove: OnRemove::Forget,
        revoke: None,
        prevent_destroy: false,
        revoke_reason: None,
        dcv: Vec::new(),
        deploy: vec![files_target(&format!("/srv/{name}"))],
        ca_options: CaOptions::default(),
        location: Location::default(),
    }
}

fn files_target(dir: &str) -> DeployTarget {
    DeployTarget::Files(FilesTarget {
        dir: PathBuf::from(dir),
        relative_dir: None,
        cert: "cert.pem".into(),
        chain: "chain.pem".into(),
        fullchain: "fullchain.pem".into(),
        key: "privkey.pem".into(),
        mode: 0o644,
        key_mode: 0o600,
        owner: None,
        group: None,
        reload: None,
        reload_timeout: Duration::seconds(60),
        combined: None,
        cleanup: false,
        web_root: None,
        verify: None,
    })
}

/// State of a certificate issued from `spec` at `issued`, deployed everywhere.
fn issued(spec: &CertificateSpec, serial: &str, issued: OffsetDateTime) -> CertificateState {
    let fingerprint = format!("fp-{serial}");
    CertificateState {
        format: crate::state::FORMAT,
        name: spec.name.clone(),
        id: format!("id-{}", spec.name),
        ca: spec.ca.clone(),
        status: CertificateStatus::Issued,
        order_id: Some(format!("order-{}", spec.name)),
        certificate_id: None,
        serial: Some(Serial::parse(serial)),
        not_before: Some(issued),
        not_after: Some(spec.validity.not_after(issued)),
        sha256_fingerprint: Some(fingerprint.clone()),
        spki_sha256: None,
        common_name: spec.common_name.to_string(),
        sans: spec.sans.iter().map(|n| n.to_string()).collect(),
        key_algorithm: spec.key.label(),
        key_id: Some("create-00112233".into()),
        legacy_key_file: None,
        spec_digest: spec.issuance_digest(),
        spec_fields: spec.issuance_fields().into_iter().collect(),
        on_remove: spec.on_remove,
        prevent_destroy: spec.prevent_destroy,
        revoke_reason: spec.revoke_reason,
        intent: None,
        deployments: spec
            .deploy
            .iter()
            .map(|t| {
                (
                    t.id(),
                    Box::new(DeployRecord {
                        sha256_fingerprint: fingerprint.clone(),
                        target_digest: t.digest(),
                        files: Default::default(),
                        deployed_at: issued,
                        reload_error: None,
                        serial: None,
                        verified: None,
                        paths: Vec::new(),
                        cleanup: false,
                        verify_error: None,
                        ssh: None,
                    }),
                )
            })
            .collect(),
        renewal_window: None,
        retry_after: None,
        plan_until: None,
        backoff: None,
        history: vec![HistoryEntry {
            at: issued,
            action: "create".into(),
            serial: Some(Serial::parse(serial)),
            note: String::new(),
        }],
    }
}

fn intent(kind: IntentKind, order_id: Option<&str>) -> Intent {
    Intent {
        kind,
        ca: "local".into(),
        started: NOW,
        tag: "tag-1".into(),
        key_algorithm: "ecdsa-p256".into(),
        common_name: "a.example".into(),
        sans: vec!["a.example".into()],
        spec_digest: String::new(),
        spec_fields: Default::default(),
        order_id: order_id.map(String::from),
    }
}

fn view(order_id: &str, status: OrderStatus, serial: Option<&str>) -> OrderView {
    OrderView {
        order_id: order_id.to_string(),
        status,
        serial: serial.map(Serial::parse),
        not_after: None,
        dcv: Vec::new(),
        plan_until: None,
    }
}

struct World {
    specs: BTreeMap<String, CertificateSpec>,
    state: State,
    observed: Observed,
    caps: BTreeMap<String, Capabilities>,
    replace: BTreeSet<String>,
    thresholds: crate::plan::Thresholds,
}

impl World {
    fn new() -> Self {
        let mut caps = BTreeMap::new();
        caps.insert(
            "local".to_string(),
            Capabilities {
                reissue_same_order: true,
                cancel: true,
                revoke: true,
                duplicates: crate::capabilities::DuplicatePrevention::TagAtCa,
                cancel_refunds: false,
                honours_validity: true,
                max_orders_per_run: None,
                max_lifetime: &[],
                parallel_certificates: 4,
            },
        );
        caps.insert(
            "other".to_string(),
            Capabilities {
                reissue_same_order: false,
                cancel: false,
                revoke: true,
                duplicates: crate::capabilities::DuplicatePrevention::TagAtCa,
                cancel_refunds: false,
                honours_validity: true,
                max_orders_per_run: None,
                max_lifetime: &[],
                parallel_certificates: 4,
            },
        );
        World {
            specs: BTreeMap::new(),
            state: State::default(),
            observed: Observed::default(),
            caps,
            replace: BTreeSet::new(),
            thresholds: crate::plan::Thresholds::default(),
        }
    }

    fn replacing(mut self, name: &str) -> Self {
        self.replace.insert(name.to_string());
        self
    }

    fn spec(mut self, spec: CertificateSpec) -> Self {
        self.specs.insert(spec.name.clone(), spec);
        self
    }

    fn state(mut self, state: CertificateState) -> Self {
        self.state.certificates.insert(state.name.clone(), state);
        self
    }

    fn observe(mut self, name: &str, observed: ObservedCertificate) -> Self {
        self.observed
            .certificates
            .insert(name.to_string(), observed);
        self
    }

    fn plan_at(&self, now: OffsetDateTime) -> Plan {
        plan(&PlanInput {
            certificates: &self.specs,
            state: &self.state,
            observed: &self.observed,
            capabilities: &self.caps,
            replace: &self.replace,
            now,
            thresholds: self.thresholds,
        })
    }

    fn plan(&self) -> Plan {
        self.plan_at(NOW)
    }
}

/// When the planner renews `state`, whose renewal window opens at `opens`: its point in the
/// window's first third.
fn due(state: &CertificateState, opens: OffsetDateTime) -> OffsetDateTime {
    spread(state, opens, state.not_after.expect("issued"))
}

/// The one certificate state of `world`.
fn state_of(world: &World) -> CertificateState {
    world
        .state
        .certificates
        .values()
        .next()
        .cloned()
        .expect("a state")
}

fn only_change(plan: &Plan) -> &Change {
    assert_eq!(plan.changes.len(), 1, "expected one change, got {plan:#?}");
    &plan.changes[0]
}

// ---------------------------------------------------------------- table cases

#[test]
fn new_certificate_is_created_and_deployed() {
    let plan = World::new()
        .spec(spec("web", &["www.a.example", "a.example"]))
        .plan();
    let change = only_change(&plan);
    assert_eq!(change.action.verb(), "create");
    assert_eq!(change.reason, "not in state");
    assert_eq!(change.deploy, vec!["files:/srv/web".to_string()]);
    match &change.action {
        Action::Create { sans, key, .. } => {
            assert_eq!(
                sans,
                &vec!["a.example".to_string(), "www.a.example".to_string()]
            );
            assert_eq!(key, "ecdsa-p256");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn fresh_issued_certificate_is_unchanged() {
    let s = spec("web", &["a.example"]);
    let plan = World::new()
        .state(issued(&s, "01", NOW - Duration::days(10)))
        .spec(s)
        .plan();
    assert!(plan.is_empty(), "{plan:#?}");
    assert_eq!(plan.unchanged, vec!["web".to_string()]);
}

#[test]
fn renews_inside_the_window_with_reason() {
    let s = spec("web", &["a.example"]);
    // Issued 70 days ago for 90 days: 20 days left, renew_before 30d.
    let plan = World::new()
        .state(issued(&s, "01", NOW - Duration::days(70)))
        .spec(s)
        .plan();
    let change = only_change(&plan);
    assert_eq!(change.action.verb(), "renew");
    assert!(
        change.reason.contains("inside the renewal window")
            && change.reason.contains("20 days left")
            && change.reason.contains("renew_before 30d"),
        "{}",
        change.reason
    );
}

#[test]
fn renew_before_percent_is_relative_to_lifetime() {
    let mut s = spec("web", &["a.example"]);
    s.renew_before = RenewBefore::Percent(33);
    let state = issued(&s, "01", NOW - Duration::days(59));
    let world = World::new().state(state.clone()).spec(s);
    // 90 days * 33% = 29.7 days before expiry = day 60.3: not yet due at day 59.
    assert!(world.plan().is_empty());
    let opens = RenewBefore::Percent(33).due_at(
        state.not_before.expect("issued"),
        state.not_after.expect("issued"),
    );
    let at = due(&state, opens);
    assert!(world.plan_at(at - Duration::seconds(1)).is_empty());
    assert_eq!(only_change(&world.plan_at(at)).action.verb(), "renew");
}

fn window(
    serial: &str,
    start: OffsetDateTime,
    end: OffsetDateTime,
) -> crate::observed::RenewalWindow {
    crate::observed::RenewalWindow {
        serial: serial.into(),
        start,
        end,
        next_check: NOW + Duration::hours(6),
    }
}

#[test]
fn ari_window_decides_renewal_at_a_fixed_point_inside_it() {
    let s = spec("web", &["a.example"]);
    // 20 days left: renew_before (30d) alone would renew now.
    let state = issued(&s, "01", NOW - Duration::days(70));
    let later = window("01", NOW + Duration::days(5), NOW + Duration::days(7));
    let world = World::new().state(state.clone()).spec(s.clone()).observe(
        "web",
        ObservedCertificate {
            renewal_window: Some(Box::new(later.clone())),
            ..Default::default()
        },
    );
    assert!(world.plan().is_empty(), "the CA's window is later: wait");
    let point = later.renew_at(&state.id);
    assert!(point >= later.start && point < later.end);
    assert!(world.plan_at(point - Duration::seconds(1)).is_empty());
    let change = world.plan_at(point).changes[0].clone();
    assert_eq!(change.action.verb(), "renew");
    assert!(
        change
            .reason
            .starts_with("ARI window: `local` suggests renewing between"),
        "{}",
        change.reason
    );

    // A window for another serial (an older certificate) is ignored: renew_before applies.
    let stale = World::new().state(state).spec(s).observe(
        "web",
        ObservedCertificate {
            renewal_window: Some(Box::new(window(
                "99",
                NOW + Duration::days(5),
                NOW + Duration::days(7),
            ))),
            ..Default::default()
        },
    );
    assert!(only_change(&stale.plan())
        .reason
        .contains("renew_before 30d"));
}

#[test]
fn ari_window_kept_in_state_is_used_and_a_past_window_renews_now() {
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW - Duration::days(1));
    state.renewal_window = Some(window(
        "01",
        NOW - Duration::days(3),
        NOW - Duration::days(2),
    ));
    let change = only_change(&World::new().state(state).spec(s).plan()).clone();
    assert_eq!(change.action.verb(), "renew");
    assert!(change.reason.starts_with("ARI window"), "{}", change.reason);
}

#[test]
fn renewal_time_follows_the_window_of_the_current_serial_only() {
    // `status` reads the renewal time from state: the CA's window counts only for the serial
    // it was given for; a window of a replaced certificate leaves `renew_before` in charge.
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW - Duration::days(10));
    let by_renew_before = renewal_time(&s, &state).expect("issued");
    let window_of = |serial: &str| window(serial, NOW + Duration::days(5), NOW + Duration::days(6));
    state.renewal_window = Some(window_of("01"));
    let in_window = renewal_time(&s, &state).expect("issued");
    assert!(
        in_window >= NOW + Duration::days(5) && in_window <= NOW + Duration::days(6),
        "{in_window}"
    );
    assert_ne!(in_window, by_renew_before);
    state.renewal_window = Some(window_of("02"));
    assert_eq!(renewal_time(&s, &state), Some(by_renew_before));
}

#[test]
fn expired_certificate_is_renewed() {
    let s = spec("web", &["a.example"]);
    let plan = World::new()
        .state(issued(&s, "01", NOW - Duration::days(100)))
        .spec(s)
        .plan();
    let change = only_change(&plan);
    assert_eq!(change.action.verb(), "renew");
    assert!(change.reason.starts_with("expired on"), "{}", change.reason);
}

#[test]
fn changed_sans_reissue_on_same_order_with_diff() {
    let old = spec("web", &["a.example", "b.example"]);
    let new = spec("web", &["a.example", "c.example"]);
    let plan = World::new()
        .state(issued(&old, "01", NOW - Duration::days(1)))
        .spec(new)
        .plan();
    let change = only_change(&plan);
    match &change.action {
        Action::Reissue {
            same_order,
            changes,
        } => {
            assert!(*same_order);
            assert_eq!(changes.len(), 1);
            assert_eq!(changes[0].field, "sans");
            assert_eq!(changes[0].old.as_deref(), Some("a.example, b.example"));
            assert_eq!(changes[0].new.as_deref(), Some("a.example, c.example"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = render::text(&plan, TextOptions::default());
    assert!(text.contains("- sans = a.example, b.example"), "{text}");
    assert!(text.contains("+ sans = a.example, c.example"), "{text}");
}

#[test]
fn key_change_at_a_ca_without_reissue_is_a_new_order() {
    let mut old = spec("web", &["a.example"]);
    old.ca = "other".into();
    let mut new = old.clone();
    new.key = KeySpec::Rsa(3072);
    let plan = World::new()
        .state(issued(&old, "01", NOW - Duration::days(1)))
        .spec(new)
        .plan();
    match &only_change(&plan).action {
        Action::Reissue {
            same_order: false,
            changes,
        } => assert_eq!(changes[0].field, "key"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn revoke_true_revokes_then_stays_quiet() {
    let mut s = spec("web", &["a.example"]);
    s.revoke = Some(RevocationReason::KeyCompromise);
    let state = issued(&s, "0a", NOW - Duration::days(1));
    let world = World::new().state(state.clone()).spec(s.clone());
    let change = only_change(&world.plan()).clone();
    assert_eq!(
        change.action,
        Action::Revoke {
            serial: "0a".into(),
            reason: RevocationReason::KeyCompromise,
            record_only: false,
            forget: false,
            cancel_order: None,
            cancel_refund: false,
        }
    );
    assert!(change.action.is_destructive());
    let mut revoked = state;
    revoked.status = CertificateStatus::Revoked;
    assert!(World::new().state(revoked).spec(s).plan().is_empty());
}

#[test]
fn prevent_destroy_blocks_revocation() {
    let mut s = spec("web", &["a.example"]);
    s.revoke = Some(RevocationReason::Superseded);
    s.prevent_destroy = true;
    let plan = World::new()
        .state(issued(&s, "0a", NOW - Duration::days(1)))
        .spec(s)
        .plan();
    assert!(plan.changes.is_empty());
    assert_eq!(plan.blocked.len(), 1);
    assert!(plan.blocked[0].reason.contains("prevent_destroy"));
}

#[test]
fn removal_follows_on_remove() {
    let mut s = spec("web", &["a.example"]);
    let forget = World::new().state(issued(&s, "01", NOW)).plan();
    assert_eq!(only_change(&forget).action, Action::Forget);

    s.on_remove = OnRemove::Revoke;
    let revoke = World::new().state(issued(&s, "01", NOW)).plan();
    assert!(matches!(
        only_change(&revoke).action,
        Action::Revoke {
            forget: true,
            record_only: false,
            reason: RevocationReason::CessationOfOperation,
            ..
        }
    ));

    s.on_remove = OnRemove::Cancel;
    let mut pending = issued(&s, "01", NOW);
    pending.intent = Some(Box::new(intent(IntentKind::Renew, Some("o-2"))));
    let cancel = World::new()
        .state(pending)
        .observe(
            "web",
            ObservedCertificate {
                intent_order: Some(Box::new(view("o-2", OrderStatus::Pending, None))),
                ..Default::default()
            },
        )
        .plan();
    assert_eq!(
        only_change(&cancel).action,
        Action::Cancel {
            order_id: "o-2".into(),
            forget: true,
            refund: false
        }
    );
}

#[test]
fn interrupted_order_found_by_tag_is_adopted() {
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW);
    state.status = CertificateStatus::New;
    state.serial = None;
    state.intent = Some(Box::new(intent(IntentKind::Create, None)));
    let plan = World::new()
        .state(state)
        .spec(s)
        .observe(
            "web",
            ObservedCertificate {
                intent_order: Some(Box::new(view("o-9", OrderStatus::Issued, Some("99")))),
                ..Default::default()
            },
        )
        .plan();
    let change = only_change(&plan);
    assert_eq!(
        change.action,
        Action::Adopt {
            order_id: "o-9".into(),
            status: OrderStatus::Issued
        }
    );
    assert!(change.reason.contains("instead of ordering again"));
}

#[test]
fn interrupted_order_that_never_reached_the_ca_is_resumed() {
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW - Duration::days(80));
    state.intent = Some(Box::new(intent(IntentKind::Renew, None)));
    let plan = World::new().state(state).spec(s).plan();
    let change = only_change(&plan);
    assert_eq!(change.action.verb(), "renew");
    assert!(change.reason.starts_with("resuming the interrupted renew"));
}

#[test]
fn pending_order_waits_and_shows_dcv() {
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW);
    state.intent = Some(Box::new(intent(IntentKind::Renew, Some("o-3"))));
    let mut pending = view("o-3", OrderStatus::Pending, None);
    pending.dcv = vec![DcvStatus {
        domain: "a.example".into(),
        method: "dns".into(),
        status: "pending".into(),
    }];
    let plan = World::new()
        .state(state)
        .spec(s)
        .observe(
            "web",
            ObservedCertificate {
                intent_order: Some(Box::new(pending)),
                ..Default::default()
            },
        )
        .plan();
    assert!(matches!(&only_change(&plan).action, Action::Wait { dcv, .. } if dcv.len() == 1));
}

#[test]
fn drift_revoked_at_ca_orders_replacement() {
    let s = spec("web", &["a.example"]);
    let plan = World::new()
        .state(issued(&s, "01", NOW))
        .spec(s)
        .observe(
            "web",
            ObservedCertificate {
                current: Some(view("order-web", OrderStatus::Revoked, Some("01"))),
                ..Default::default()
            },
        )
        .plan();
    let change = only_change(&plan);
    assert_eq!(change.action.verb(), "create");
    assert!(change.reason.starts_with("drift:"), "{}", change.reason);
}

#[test]
fn drift_different_serial_is_fetched() {
    let s = spec("web", &["a.example"]);
    let plan = World::new()
        .state(issued(&s, "01", NOW))
        .spec(s)
        .observe(
            "web",
            ObservedCertificate {
                current: Some(view("order-web", OrderStatus::Issued, Some("02"))),
                ..Default::default()
            },
        )
        .plan();
    assert_eq!(only_change(&plan).action.verb(), "fetch");
}

#[test]
fn deployed_file_changed_on_disk_is_redeployed() {
    let s = spec("web", &["a.example"]);
    let mut deployments = crate::small_map::SmallMap::new();
    deployments.insert(
        "files:/srv/web".to_string(),
        DeployObservation::Changed(vec!["cert.pem".into()]),
    );
    let plan = World::new()
        .state(issued(&s, "01", NOW))
        .spec(s)
        .observe(
            "web",
            ObservedCertificate {
                deployments,
                ..Default::default()
            },
        )
        .plan();
    let change = only_change(&plan);
    assert_eq!(change.action, Action::Deploy);
    assert!(change.reason.contains("changed on disk: cert.pem"));
}

#[test]
fn failed_reload_is_retried_and_removed_targets_dropped() {
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW);
    if let Some(record) = state.deployments.get_mut("files:/srv/web") {
        record.reload_error = Some("exit status 1".into());
    }
    let mut old = state.deployments["files:/srv/web"].clone();
    old.reload_error = None;
    state.deployments.insert("files:/old".into(), old);
    let plan = World::new().state(state).spec(s).plan();
    let change = only_change(&plan);
    assert_eq!(change.deploy, vec!["files:/srv/web".to_string()]);
    assert_eq!(change.undeploy, vec!["files:/old".to_string()]);
    assert!(change.reason.contains("reload failed last run"));
}

#[test]
fn rate_limited_certificate_is_held_back() {
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW - Duration::days(80));
    state.retry_after = Some(NOW + Duration::hours(2));
    let plan = World::new().state(state).spec(s).plan();
    assert!(plan.changes.is_empty());
    assert!(plan.blocked[0]
        .reason
        .starts_with("rate limited by `local` until"));
}

#[test]
fn refresh_error_blocks_only_that_certificate() {
    let a = spec("a", &["a.example"]);
    let b = spec("b", &["b.example"]);
    let plan = World::new()
        .state(issued(&a, "01", NOW - Duration::days(80)))
        .state(issued(&b, "02", NOW - Duration::days(80)))
        .spec(a)
        .spec(b)
        .observe(
            "a",
            ObservedCertificate {
                refresh_error: Some("connection refused".into()),
                ..Default::default()
            },
        )
        .plan();
    assert_eq!(plan.blocked.len(), 1);
    assert_eq!(only_change(&plan).certificate, "b");
}

#[test]
fn text_plan_snapshot() {
    let web = spec("web", &["www.a.example", "a.example"]);
    let old_api = spec("api", &["api.a.example"]);
    let api = spec("api", &["api.a.example", "api2.a.example"]);
    let db = spec("db", &["db.a.example"]);
    let mut gone = spec("gone", &["gone.a.example"]);
    gone.on_remove = OnRemove::Revoke;
    let plan = World::new()
        .spec(web)
        .state(issued(&old_api, "0a", NOW - Duration::days(5)))
        .spec(api)
        .state(issued(&db, "0b", NOW - Duration::days(70)))
        .spec(db)
        .state(issued(&gone, "0c", NOW - Duration::days(5)))
        .plan();
    insta::assert_snapshot!(render::text(&plan, TextOptions::default()));
    insta::assert_snapshot!("json_plan", render::json(&plan));
}

// ------------------------------------------------- issued lifetime shorter than asked

/// State of `spec` issued at `from` for `lifetime`, whatever the spec's validity asked.
fn issued_for(
    spec: &CertificateSpec,
    serial: &str,
    from: OffsetDateTime,
    lifetime: Duration,
) -> CertificateState {
    let mut state = issued(spec, serial, from);
    state.not_after = Some(from + lifetime);
    state
}

/// DigiCert's cap: 397 days asked, 199 issued, `renew_before` 250d fits the asked lifetime only.
fn capped() -> (CertificateSpec, CertificateState) {
    let mut s = spec("web", &["a.example"]);
    s.validity = Validity::Days(397);
    s.renew_before = RenewBefore::Duration(Duration::days(250));
    let state = issued_for(&s, "01", NOW, Duration::days(199));
    (s, state)
}

#[test]
fn renew_before_longer_than_the_issued_lifetime_renews_at_two_thirds() {
    let (s, state) = capped();
    let world = World::new().state(state).spec(s);
    for now in [NOW, NOW + Duration::minutes(5), NOW + Duration::days(132)] {
        let plan = world.plan_at(now);
        assert!(plan.changes.is_empty(), "at {now}: {plan:#?}");
        assert_eq!(plan.unchanged, vec!["web".to_string()]);
    }
    // 199 days * 2/3 = 132 days 16 hours: the window opens there.
    let at = due(
        &state_of(&world),
        NOW + Duration::days(132) + Duration::hours(16),
    );
    assert!(world.plan_at(at - Duration::seconds(1)).changes.is_empty());
    let change = only_change(&world.plan_at(at)).clone();
    assert_eq!(
        change.action,
        Action::Renew {
            serial: "01".into(),
            not_after: NOW + Duration::days(199),
            on_order: None,
        }
    );
    assert_eq!(
        change.reason,
        format!(
            "inside the renewal window: expires 2027-06-10T12:00:00Z ({} days left), renew_before 250d (clamped to two thirds of the issued lifetime); this certificate's point in the window is {}",
            (NOW + Duration::days(199) - at).whole_days(),
            render::format_time(at)
        )
    );
}

#[test]
fn a_clamped_renew_before_is_a_warning_in_every_plan() {
    let (s, state) = capped();
    let plan = World::new().state(state).spec(s).plan();
    assert_eq!(
        plan.warnings,
        vec![Warning {
            certificate: "web".into(),
            message: "`renew_before` (250d) is not shorter than the 199 days lifetime `local` issued (serial 01); renewing at two thirds of it, on 2027-04-05T04:00:00Z, instead of on every run (hint: make `renew_before` shorter than the issued lifetime, or a share such as `33%`)".into(),
        }]
    );
    let text = render::text(&plan, TextOptions::default());
    assert!(
        text.contains("  ! warning web\n      `renew_before` (250d) is not shorter than"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&render::json(&plan)).expect("json");
    assert_eq!(json["warnings"][0]["certificate"], "web");
    assert_eq!(
        json["warnings"][0]["message"].as_str(),
        Some(plan.warnings[0].message.as_str())
    );
}

#[test]
fn a_plan_without_warnings_has_no_warnings_key() {
    let s = spec("web", &["a.example"]);
    let plan = World::new()
        .state(issued(&s, "01", NOW - Duration::days(10)))
        .spec(s)
        .plan();
    assert!(plan.warnings.is_empty());
    let json: serde_json::Value = serde_json::from_str(&render::json(&plan)).expect("json");
    assert!(json.get("warnings").is_none(), "{json}");
    assert!(!render::text(&plan, TextOptions::default()).contains("warning"));
}

/// A CA that decides the lifetime itself (ACME) gets a warning on every order the plan places
/// with it, and only then: the plan shows the `validity` asked for, which the CA may ignore.
#[test]
fn ordering_from_a_ca_that_decides_the_lifetime_warns_that_validity_is_not_followed() {
    let s = spec("web", &["a.example"]);
    // (state, CA honours validity, verb, warns)
    let cases: [(Option<CertificateState>, bool, &str, bool); 6] = [
        (None, false, "create", true),
        (None, true, "create", false),
        (
            Some(issued(&s, "01", NOW - Duration::days(80))),
            false,
            "renew",
            false,
        ),
        (
            Some(issued(&s, "01", NOW - Duration::days(80))),
            true,
            "renew",
            false,
        ),
        (
            Some(issued(&s, "01", NOW - Duration::days(10))),
            false,
            "",
            false,
        ),
        (
            Some(issued(&s, "01", NOW - Duration::days(10))),
            true,
            "",
            false,
        ),
    ];
    for (state, honours, verb, warns) in cases {
        let mut world = World::new()
            .spec(s.clone())
            .local_caps(|caps| caps.honours_validity = honours);
        if let Some(state) = state {
            world = world.state(state);
        }
        let plan = world.plan();
        let verbs: Vec<&str> = plan.changes.iter().map(|c| c.action.verb()).collect();
        let expected_verbs: Vec<&str> = [verb].into_iter().filter(|v| !v.is_empty()).collect();
        assert_eq!(verbs, expected_verbs, "honours {honours}");
        let messages: Vec<&str> = plan
            .warnings
            .iter()
            .map(|w| w.message.as_str())
            .filter(|m| !m.starts_with("AT RISK") && !m.starts_with("renewal overdue"))
            .collect();
        if warns {
            assert_eq!(
                messages,
                ["`validity` (90 days) is not sent to `local`: the CA decides the lifetime, and the certificate may live longer or shorter (hint: a `renew_before` share such as `33%` follows the lifetime issued)"]
            );
            assert_eq!(plan.warnings[0].certificate, "web");
        } else {
            assert!(
                messages.is_empty(),
                "{verb} honours {honours}: {messages:?}"
            );
        }
    }
    // A CA the plan knows nothing about is not warned about.
    let mut world = World::new().spec(s);
    world.caps.clear();
    assert!(world.plan().warnings.is_empty());
}

#[test]
fn the_clamp_starts_where_renewal_would_come_in_the_first_tenth_of_the_lifetime() {
    // Lifetime 10 days: renewing 9 days before expiry is exactly at a tenth, and kept.
    let mut s = spec("web", &["a.example"]);
    s.renew_before = RenewBefore::Duration(Duration::days(9));
    let state = issued_for(&s, "01", NOW, Duration::days(10));
    let world = World::new().state(state.clone()).spec(s.clone());
    assert!(world.plan().warnings.is_empty());
    let at = due(&state, NOW + Duration::days(1));
    assert!(world.plan_at(at - Duration::seconds(1)).changes.is_empty());
    assert_eq!(only_change(&world.plan_at(at)).action.verb(), "renew");
    // One second more and the rule is clamped to two thirds (6 days 16 hours).
    s.renew_before = RenewBefore::Duration(Duration::days(9) + Duration::seconds(1));
    let world = World::new().state(state.clone()).spec(s);
    assert_eq!(world.plan().warnings.len(), 1);
    assert!(world.plan_at(NOW + Duration::days(1)).changes.is_empty());
    let at = due(&state, NOW + Duration::days(6) + Duration::hours(16));
    assert!(world.plan_at(at - Duration::seconds(1)).changes.is_empty());
    assert_eq!(only_change(&world.plan_at(at)).action.verb(), "renew");
}

#[test]
fn a_percentage_that_renews_in_the_first_tenth_is_clamped_too() {
    let mut s = spec("web", &["a.example"]);
    s.renew_before = RenewBefore::Percent(95);
    let state = issued_for(&s, "01", NOW, Duration::hours(1));
    let world = World::new().state(state.clone()).spec(s);
    let plan = world.plan_at(NOW + Duration::minutes(5));
    assert!(plan.changes.is_empty(), "{plan:#?}");
    assert!(
        plan.warnings[0]
            .message
            .starts_with("`renew_before` (95% of the lifetime) would renew within the first tenth of the 60 minutes lifetime `local` issued (serial 01); renewing at two thirds of it, on 2026-11-23T12:40:00Z,"),
        "{:?}",
        plan.warnings
    );
    let at = due(&state, NOW + Duration::minutes(40));
    assert!(world.plan_at(at - Duration::seconds(1)).changes.is_empty());
    assert_eq!(only_change(&world.plan_at(at)).action.verb(), "renew");
}

#[test]
fn no_clamp_warning_where_renew_before_does_not_decide() {
    let (s, state) = capped();
    // The CA's renewal window decides instead.
    let world = World::new().state(state.clone()).spec(s.clone()).observe(
        "web",
        ObservedCertificate {
            renewal_window: Some(Box::new(window(
                "01",
                NOW + Duration::days(100),
                NOW + Duration::days(101),
            ))),
            ..Default::default()
        },
    );
    assert!(world.plan().warnings.is_empty());
    // Config asks for revocation.
    let mut revoked = s.clone();
    revoked.revoke = Some(RevocationReason::Superseded);
    let world = World::new().state(state.clone()).spec(revoked);
    assert!(world.plan().warnings.is_empty());
    // Not issued yet.
    let mut pending = state.clone();
    pending.status = CertificateStatus::New;
    assert!(World::new()
        .state(pending)
        .spec(s.clone())
        .plan()
        .warnings
        .is_empty());
    // No validity recorded.
    let mut unknown = state.clone();
    unknown.not_before = None;
    assert!(World::new()
        .state(unknown)
        .spec(s.clone())
        .plan()
        .warnings
        .is_empty());
    // Removed from config.
    assert!(World::new().state(state).plan().warnings.is_empty());
}

#[test]
fn lifetimes_are_described_in_readable_units() {
    assert_eq!(describe_lifetime(Duration::days(199)), "199 days");
    assert_eq!(describe_lifetime(Duration::days(2)), "2 days");
    assert_eq!(describe_lifetime(Duration::hours(47)), "47 hours");
    assert_eq!(describe_lifetime(Duration::hours(2)), "2 hours");
    assert_eq!(describe_lifetime(Duration::minutes(119)), "119 minutes");
}

// ------------------------------------------------------------- chain file drift

fn chain_drift(drift: ChainDrift) -> ObservedCertificate {
    ObservedCertificate {
        chain: Some(drift),
        ..Default::default()
    }
}

#[test]
fn a_broken_chain_file_is_fetched_again_with_its_reason() {
    let s = spec("web", &["a.example"]);
    let cases = [
        (ChainDrift::Missing, "is missing"),
        (ChainDrift::PrivateKey, "holds a private key"),
        (
            ChainDrift::Unreadable("no PEM block".into()),
            "is not a certificate chain: no PEM block",
        ),
        (
            ChainDrift::OtherCertificate {
                serial: "99".into(),
            },
            "holds another certificate (serial 99)",
        ),
    ];
    for (drift, what) in cases {
        let plan = World::new()
            .state(issued(&s, "01", NOW - Duration::days(10)))
            .spec(s.clone())
            .observe("web", chain_drift(drift))
            .plan();
        let change = only_change(&plan);
        assert_eq!(
            change.action,
            Action::Fetch {
                order_id: "order-web".into()
            }
        );
        assert_eq!(
            change.reason,
            format!("drift: the chain file `certificates/web.pem` in state {what}; fetching order order-web again from `local`")
        );
        assert!(change.deploy.is_empty() && change.undeploy.is_empty());
    }
}

#[test]
fn a_chain_repair_carries_deploy_drift_along() {
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW - Duration::days(10));
    let mut old = state.deployments["files:/srv/web"].clone();
    old.sha256_fingerprint = "fp-00".into();
    state
        .deployments
        .insert("files:/srv/web".into(), old.clone());
    state.deployments.insert("files:/old".into(), old);
    let plan = World::new()
        .state(state)
        .spec(s)
        .observe("web", chain_drift(ChainDrift::Missing))
        .plan();
    let change = only_change(&plan);
    assert_eq!(change.action.verb(), "fetch");
    assert_eq!(change.deploy, vec!["files:/srv/web".to_string()]);
    assert_eq!(change.undeploy, vec!["files:/old".to_string()]);
    assert!(
        change
            .reason
            .ends_with("again from `local`; `files:/srv/web`: holds an older certificate; `files:/old`: no longer configured; its record is dropped"),
        "{}",
        change.reason
    );
}

#[test]
fn a_broken_chain_without_an_order_is_ordered_again() {
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW - Duration::days(10));
    state.order_id = None;
    let plan = World::new()
        .state(state)
        .spec(s)
        .observe("web", chain_drift(ChainDrift::Missing))
        .plan();
    let change = only_change(&plan);
    assert_eq!(change.action.verb(), "create");
    assert_eq!(
        change.reason,
        "drift: the chain file `certificates/web.pem` in state is missing, and state records no order to fetch it from"
    );
}

#[test]
fn a_due_renewal_replaces_a_broken_chain_anyway() {
    let s = spec("web", &["a.example"]);
    let plan = World::new()
        .state(issued(&s, "01", NOW - Duration::days(70)))
        .spec(s)
        .observe("web", chain_drift(ChainDrift::PrivateKey))
        .plan();
    assert_eq!(only_change(&plan).action.verb(), "renew");
}

// ------------------------------------------------ rules held against mutation testing

fn observing(observed: ObservedCertificate) -> impl FnOnce(World) -> World {
    move |world| world.observe("web", observed)
}

fn intent_order(order: OrderView) -> ObservedCertificate {
    ObservedCertificate {
        intent_order: Some(Box::new(order)),
        ..Default::default()
    }
}

#[test]
fn revoke_true_without_state_is_blocked_and_never_ordered() {
    let mut s = spec("web", &["a.example"]);
    s.revoke = Some(RevocationReason::KeyCompromise);
    let plan = World::new().spec(s).plan();
    assert!(plan.changes.is_empty(), "{plan:#?}");
    assert_eq!(
        plan.blocked,
        vec![Blocked {
            certificate: "web".into(),
            wanted: None,
            reason: "`revoke = true`, and state holds no certificate for it: nothing to revoke"
                .into(),
        }]
    );
}

#[test]
fn a_rate_limit_holds_back_only_ca_calls_and_only_until_it_ends() {
    let s = spec("web", &["a.example"]);
    // (retry_after, record fingerprint drift only, expected verb or None when held back)
    let cases: [(OffsetDateTime, bool, Option<&str>); 5] = [
        (NOW + Duration::hours(2), false, None),
        (NOW + Duration::seconds(1), false, None),
        (NOW, false, Some("renew")),
        (NOW - Duration::hours(1), false, Some("renew")),
        (NOW + Duration::hours(2), true, Some("deploy")),
    ];
    for (until, deploy_only, expected) in cases {
        let mut state = if deploy_only {
            let mut state = issued(&s, "01", NOW - Duration::days(10));
            if let Some(record) = state.deployments.get_mut("files:/srv/web") {
                record.sha256_fingerprint = "fp-00".into();
            }
            state
        } else {
            issued(&s, "01", NOW - Duration::days(80))
        };
        state.retry_after = Some(until);
        let plan = World::new().state(state).spec(s.clone()).plan();
        match expected {
            Some(verb) => {
                assert_eq!(only_change(&plan).action.verb(), verb, "until {until}");
                assert!(plan.blocked.is_empty(), "until {until}: {plan:#?}");
            }
            None => {
                assert!(plan.changes.is_empty(), "until {until}: {plan:#?}");
                assert_eq!(
                    plan.blocked,
                    vec![Blocked {
                        certificate: "web".into(),
                        wanted: Some("renew".into()),
                        reason: format!(
                            "rate limited by `local` until {}",
                            render::format_time(until)
                        ),
                    }]
                );
            }
        }
    }
}

#[test]
fn a_serial_drift_is_fetched_and_deployed_with_both_serials_named() {
    let s = spec("web", &["a.example"]);
    let plan = World::new()
        .state(issued(&s, "01", NOW))
        .spec(s)
        .observe(
            "web",
            ObservedCertificate {
                current: Some(view("order-web", OrderStatus::Issued, Some("02"))),
                ..Default::default()
            },
        )
        .plan();
    let change = only_change(&plan);
    assert_eq!(
        change.action,
        Action::Fetch {
            order_id: "order-web".into()
        }
    );
    assert_eq!(
        change.reason,
        "drift: `local` holds serial 02 but state has 01"
    );
    assert_eq!(change.deploy, vec!["files:/srv/web".to_string()]);
}

#[test]
fn the_same_serial_at_the_ca_or_none_is_no_drift() {
    let s = spec("web", &["a.example"]);
    for serial in [Some("01"), None] {
        let plan = World::new()
            .state(issued(&s, "01", NOW))
            .spec(s.clone())
            .observe(
                "web",
                ObservedCertificate {
                    current: Some(view("order-web", OrderStatus::Issued, serial)),
                    ..Default::default()
                },
            )
            .plan();
        assert!(plan.changes.is_empty(), "{serial:?}: {plan:#?}");
    }
}

#[test]
fn an_expiry_names_changed_settings_only_when_they_changed() {
    let s = spec("web", &["a.example"]);
    let state = issued(&s, "01", NOW - Duration::days(100));
    let plan = World::new().state(state.clone()).spec(s.clone()).plan();
    let change = only_change(&plan);
    assert_eq!(
        change.action,
        Action::Renew {
            serial: "01".into(),
            not_after: NOW - Duration::days(10),
            on_order: None,
        }
    );
    assert_eq!(change.reason, "expired on 2026-11-13T12:00:00Z");
    assert_eq!(change.deploy, vec!["files:/srv/web".to_string()]);

    let changed = spec("web", &["a.example", "b.example"]);
    let plan = World::new().state(state).spec(changed).plan();
    assert_eq!(
        only_change(&plan).reason,
        "expired on 2026-11-13T12:00:00Z (the new certificate also applies: `sans`)"
    );
}

#[test]
fn a_due_renewal_is_deployed_everywhere() {
    let s = spec("web", &["a.example"]);
    let plan = World::new()
        .state(issued(&s, "01", NOW - Duration::days(70)))
        .spec(s)
        .plan();
    let change = only_change(&plan);
    assert_eq!(
        change.action,
        Action::Renew {
            serial: "01".into(),
            not_after: NOW + Duration::days(20),
            on_order: None,
        }
    );
    assert!(
        change.reason.starts_with(
            "inside the renewal window: expires 2026-12-13T12:00:00Z (20 days left), renew_before 30d; this certificate's point in the window is 2026-1"
        ),
        "{}",
        change.reason
    );
    assert_eq!(change.deploy, vec!["files:/srv/web".to_string()]);
}

#[test]
fn reissue_reasons_name_the_fields_the_ca_and_the_order() {
    let local = spec("web", &["a.example"]);
    let mut other = local.clone();
    other.ca = "other".into();
    let mut other_rsa = other.clone();
    other_rsa.key = KeySpec::Rsa(3072);
    let mut local_b = spec("web", &["a.example", "b.example"]);
    local_b.ca = "local".into();
    // Only the recorded digest differs: the fields read the same.
    let mut stale_digest = issued(&local, "01", NOW - Duration::days(1));
    stale_digest.spec_digest = "old".into();
    let cases = [
        (
            issued(&local, "01", NOW - Duration::days(1)),
            local_b.clone(),
            true,
            "`sans` changed; reissued on the same order",
        ),
        (
            issued(&other, "01", NOW - Duration::days(1)),
            other_rsa,
            false,
            "`key` changed; `other` cannot reissue on the same order, so a new order",
        ),
        (
            issued(&other, "01", NOW - Duration::days(1)),
            local.clone(),
            false,
            "the CA changed from `other` to `local`: a new order at `local` (the old certificate is left as it is)",
        ),
        (
            stale_digest,
            local.clone(),
            true,
            "the issuance settings changed; reissued on the same order",
        ),
    ];
    for (state, spec, same, reason) in cases {
        let plan = World::new().state(state).spec(spec).plan();
        let change = only_change(&plan);
        assert!(
            matches!(&change.action, Action::Reissue { same_order, .. } if *same_order == same),
            "{reason}: {:?}",
            change.action
        );
        assert_eq!(change.reason, reason);
        assert_eq!(change.deploy, vec!["files:/srv/web".to_string()]);
    }
}

#[test]
fn each_deploy_drift_redeploys_with_its_reason() {
    let s = spec("web", &["a.example"]);
    let fresh = || issued(&s, "01", NOW - Duration::days(10));
    let mut older = fresh();
    let mut settings = fresh();
    let mut reload = fresh();
    if let Some(record) = older.deployments.get_mut("files:/srv/web") {
        record.sha256_fingerprint = "fp-00".into();
    }
    if let Some(record) = settings.deployments.get_mut("files:/srv/web") {
        record.target_digest = "old".into();
    }
    if let Some(record) = reload.deployments.get_mut("files:/srv/web") {
        record.reload_error = Some("exit status 1".into());
    }
    let mut unverified = fresh();
    if let Some(record) = unverified.deployments.get_mut("files:/srv/web") {
        record.verified = Some(false);
        record.verify_error = Some("endpoint `web:443` serves serial 0a".into());
    }
    let mut unrecorded = fresh();
    unrecorded.deployments.clear();
    let on_disk = |observation: DeployObservation| ObservedCertificate {
        deployments: crate::small_map::SmallMap::from([(
            "files:/srv/web".to_string(),
            observation,
        )]),
        ..Default::default()
    };
    let cases = [
        (
            older,
            ObservedCertificate::default(),
            "holds an older certificate",
        ),
        (
            settings,
            ObservedCertificate::default(),
            "target settings changed",
        ),
        (
            reload,
            ObservedCertificate::default(),
            "reload failed last run: exit status 1",
        ),
        (
            unrecorded,
            ObservedCertificate::default(),
            "new deploy target",
        ),
        (
            unverified,
            ObservedCertificate::default(),
            "endpoint check failed last run: endpoint `web:443` serves serial 0a",
        ),
        (
            fresh(),
            on_disk(DeployObservation::Drift(
                "endpoint `web:443` still serves old serial 0a".into(),
            )),
            "drift: endpoint `web:443` still serves old serial 0a",
        ),
        (
            fresh(),
            on_disk(DeployObservation::Missing(vec![
                "privkey.pem".into(),
                "cert.pem".into(),
            ])),
            "drift: missing on disk: privkey.pem, cert.pem",
        ),
        (
            fresh(),
            on_disk(DeployObservation::Changed(vec!["chain.pem".into()])),
            "drift: changed on disk: chain.pem",
        ),
    ];
    for (state, observed, why) in cases {
        let plan = World::new()
            .state(state)
            .spec(s.clone())
            .observe("web", observed)
            .plan();
        let change = only_change(&plan);
        assert_eq!(change.action, Action::Deploy, "{why}");
        assert_eq!(change.reason, format!("`files:/srv/web`: {why}"));
        assert_eq!(change.deploy, vec!["files:/srv/web".to_string()]);
        assert!(change.undeploy.is_empty());
    }
    let in_sync = World::new()
        .state(fresh())
        .spec(s.clone())
        .observe("web", on_disk(DeployObservation::InSync))
        .plan();
    assert!(in_sync.changes.is_empty(), "{in_sync:#?}");
}

#[test]
fn an_interrupted_switch_is_finished_before_any_other_deploy_reason() {
    let s = spec("web", &["a.example"]);
    let interrupted = || ObservedCertificate {
        deployments: crate::small_map::SmallMap::from([(
            "files:/srv/web".to_string(),
            DeployObservation::Interrupted(vec!["cert.pem".into(), "privkey.pem".into()]),
        )]),
        ..Default::default()
    };
    let why = "`files:/srv/web`: interrupted deploy: cert.pem, privkey.pem not all switched in; \
               apply finishes it first";
    // In sync by the record, and with an older certificate recorded: the interruption is the
    // reason either way, and the target is deployed.
    let mut older = issued(&s, "01", NOW - Duration::days(10));
    if let Some(record) = older.deployments.get_mut("files:/srv/web") {
        record.sha256_fingerprint = "fp-00".into();
    }
    for state in [issued(&s, "01", NOW - Duration::days(10)), older] {
        let plan = World::new()
            .state(state)
            .spec(s.clone())
            .observe("web", interrupted())
            .plan();
        let change = only_change(&plan);
        assert_eq!(change.action, Action::Deploy);
        assert_eq!(change.reason, why);
        assert_eq!(change.deploy, vec!["files:/srv/web".to_string()]);
    }
}

#[test]
fn a_key_that_cannot_be_deployed_is_shown_on_every_target() {
    let mut s = spec("web", &["a.example"]);
    let mut second = s.deploy[0].clone();
    let crate::spec::DeployTarget::Files(files) = &mut second else {
        unreachable!("a files target")
    };
    files.dir = "/srv/other".into();
    s.deploy.push(second);
    let state = issued(&s, "01", NOW - Duration::days(10));
    let mut state_all = state.clone();
    let mut record = state_all.deployments["files:/srv/web"].clone();
    record.target_digest = s.deploy[1].digest();
    state_all
        .deployments
        .insert("files:/srv/other".into(), record);
    let problem = "key in keys_dir does not match the certificate".to_string();
    let plan = World::new()
        .state(state_all.clone())
        .spec(s.clone())
        .observe(
            "web",
            ObservedCertificate {
                key_problem: Some(problem.clone()),
                ..Default::default()
            },
        )
        .plan();
    let change = only_change(&plan);
    assert_eq!(change.action, Action::Deploy);
    assert_eq!(change.reason, problem);
    assert_eq!(
        change.deploy,
        vec!["files:/srv/web".to_string(), "files:/srv/other".to_string()]
    );
    // Without the problem, the same world plans nothing.
    let quiet = World::new().state(state_all).spec(s).plan();
    assert!(quiet.changes.is_empty(), "{quiet:#?}");
}

#[test]
fn replace_renews_a_current_certificate_now_and_only_the_one_named() {
    let web = spec("web", &["a.example"]);
    let api = spec("api", &["b.example"]);
    let plan = World::new()
        .state(issued(&web, "01", NOW - Duration::days(10)))
        .state(issued(&api, "02", NOW - Duration::days(10)))
        .spec(web)
        .spec(api)
        .replacing("web")
        .plan();
    let change = only_change(&plan);
    assert_eq!(change.certificate, "web");
    assert!(
        matches!(&change.action, Action::Renew { serial, .. } if serial == "01"),
        "{change:#?}"
    );
    assert_eq!(
        change.reason,
        "replacement requested with `--replace`: a new certificate with a new key"
    );
    assert_eq!(change.deploy, vec!["files:/srv/web".to_string()]);
    assert_eq!(plan.unchanged, vec!["api".to_string()]);
}

#[test]
fn replace_names_a_lost_key_and_is_a_create_when_never_issued() {
    let web = spec("web", &["a.example"]);
    let lost = ObservedCertificate {
        lost_key: Some("/keys/web/create-00112233.key".into()),
        ..Default::default()
    };
    let plan = World::new()
        .state(issued(&web, "01", NOW - Duration::days(10)))
        .spec(web.clone())
        .observe("web", lost)
        .replacing("web")
        .plan();
    assert_eq!(
        only_change(&plan).reason,
        "replacement requested with `--replace` (the key file `/keys/web/create-00112233.key` is missing): a new certificate with a new key"
    );
    // Never issued: `--replace` is an ordinary create.
    let plan = World::new().spec(web).replacing("web").plan();
    assert!(matches!(only_change(&plan).action, Action::Create { .. }));
}

#[test]
fn a_lost_key_without_deploy_targets_is_blocked_with_the_fix() {
    let mut web = spec("web", &["a.example"]);
    web.deploy.clear();
    let mut state = issued(&web, "01", NOW - Duration::days(10));
    state.deployments.clear();
    let lost = ObservedCertificate {
        lost_key: Some("/keys/web/create-00112233.key".into()),
        ..Default::default()
    };
    let plan = World::new()
        .state(state.clone())
        .spec(web.clone())
        .observe("web", lost)
        .plan();
    assert!(plan.changes.is_empty(), "{plan:#?}");
    assert_eq!(plan.blocked.len(), 1, "{plan:#?}");
    assert_eq!(plan.blocked[0].wanted.as_deref(), Some("replace"));
    assert_eq!(
        plan.blocked[0].reason,
        "the private key `/keys/web/create-00112233.key` is missing: the certificate cannot be deployed again; `certform apply --replace web` orders a new certificate with a new key"
    );
    let quiet = World::new().state(state).spec(web).plan();
    assert!(quiet.blocked.is_empty() && quiet.changes.is_empty());
}

#[test]
fn a_lost_key_with_deploy_targets_is_a_deploy_that_names_the_fix() {
    let web = spec("web", &["a.example"]);
    let problem = "certform holds no private key for the certificate".to_string();
    let plan = World::new()
        .state(issued(&web, "01", NOW - Duration::days(10)))
        .spec(web)
        .observe(
            "web",
            ObservedCertificate {
                key_problem: Some(problem.clone()),
                lost_key: Some("/k/web/create-00112233.key".into()),
                ..Default::default()
            },
        )
        .plan();
    let change = only_change(&plan);
    assert_eq!(change.action, Action::Deploy);
    assert_eq!(
        change.reason,
        format!("{problem}; the private key `/k/web/create-00112233.key` is missing: the certificate cannot be deployed again; `certform apply --replace web` orders a new certificate with a new key")
    );
}

#[test]
fn a_half_done_rename_is_never_revoked_under_its_old_name() {
    let mut www = spec("www", &["a.example"]);
    www.on_remove = OnRemove::Revoke;
    let mut old = issued(&www, "01", NOW - Duration::days(10));
    old.name = "web".into();
    old.on_remove = OnRemove::Revoke;
    let new = issued(&www, "01", NOW - Duration::days(10));
    assert_eq!(old.id, new.id);
    let plan = World::new()
        .state(old.clone())
        .state(new)
        .spec(www.clone())
        .plan();
    assert!(plan.changes.is_empty(), "{plan:#?}");
    assert_eq!(plan.blocked.len(), 1, "{plan:#?}");
    assert_eq!(plan.blocked[0].certificate, "web");
    assert!(
        plan.blocked[0]
            .reason
            .ends_with("run it again to finish (`certform state mv web www`)"),
        "{}",
        plan.blocked[0].reason
    );
    // Another id: an ordinary removal.
    let mut unrelated = old;
    unrelated.id = "cf-other".into();
    let plan = World::new()
        .state(unrelated)
        .state(issued(&www, "01", NOW - Duration::days(10)))
        .spec(www)
        .plan();
    assert_eq!(only_change(&plan).certificate, "web");
}

#[test]
fn a_dropped_target_alone_is_a_deploy_that_only_drops_its_record() {
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW - Duration::days(10));
    let record = state.deployments["files:/srv/web"].clone();
    state.deployments.insert("files:/old".into(), record);
    let plan = World::new().state(state).spec(s).plan();
    let change = only_change(&plan);
    assert_eq!(change.action, Action::Deploy);
    assert!(change.deploy.is_empty());
    assert_eq!(change.undeploy, vec!["files:/old".to_string()]);
    assert_eq!(
        change.reason,
        "`files:/old`: no longer configured; its record is dropped"
    );
}

#[test]
fn an_interrupted_order_is_adopted_deployed_only_once_issued() {
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW - Duration::days(10));
    state.intent = Some(Box::new(intent(IntentKind::Renew, None)));
    for (status, deploy) in [
        (OrderStatus::Issued, vec!["files:/srv/web".to_string()]),
        (OrderStatus::Pending, Vec::new()),
    ] {
        let plan = World::new()
            .state(state.clone())
            .spec(s.clone())
            .observe("web", intent_order(view("o-9", status, None)))
            .plan();
        let change = only_change(&plan);
        assert_eq!(
            change.action,
            Action::Adopt {
                order_id: "o-9".into(),
                status
            }
        );
        assert_eq!(
            change.reason,
            "an interrupted renew placed order o-9 (tag `tag-1`) that state did not record; adopting it instead of ordering again"
        );
        assert_eq!(change.deploy, deploy, "{status:?}");
    }
}

#[test]
fn a_recorded_intent_order_waits_fetches_or_is_placed_again() {
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW - Duration::days(80));
    state.intent = Some(Box::new(intent(IntentKind::Renew, Some("o-3"))));
    let renew = Action::Renew {
        serial: "01".into(),
        not_after: NOW + Duration::days(10),
        on_order: None,
    };
    let cases = [
        (
            Some(OrderStatus::Pending),
            Action::Wait {
                order_id: "o-3".into(),
                dcv: Vec::new(),
            },
            "order o-3 is pending at `local`",
            Vec::new(),
        ),
        (
            Some(OrderStatus::Ready),
            Action::Wait {
                order_id: "o-3".into(),
                dcv: Vec::new(),
            },
            "order o-3 is ready at `local`",
            Vec::new(),
        ),
        (
            Some(OrderStatus::Issued),
            Action::Fetch {
                order_id: "o-3".into(),
            },
            "order o-3 is issued and not yet fetched",
            vec!["files:/srv/web".to_string()],
        ),
        (
            Some(OrderStatus::Rejected),
            renew.clone(),
            "order o-3 is rejected at `local`; placing a new order",
            vec!["files:/srv/web".to_string()],
        ),
        (
            None,
            renew,
            "order o-3 is not found at `local`; placing a new order",
            vec!["files:/srv/web".to_string()],
        ),
    ];
    for (status, action, reason, deploy) in cases {
        let mut world = World::new().state(state.clone()).spec(s.clone());
        if let Some(status) = status {
            world = observing(intent_order(view("o-3", status, None)))(world);
        }
        let plan = world.plan();
        let change = only_change(&plan);
        assert_eq!(change.action, action, "{reason}");
        assert_eq!(change.reason, reason);
        assert_eq!(change.deploy, deploy, "{reason}");
    }
}

#[test]
fn a_resumed_intent_redoes_its_own_kind_of_work() {
    let local = spec("web", &["a.example"]);
    let mut other = local.clone();
    other.ca = "other".into();
    let issued_at = |spec: &CertificateSpec, kind: IntentKind| {
        let mut state = issued(spec, "01", NOW - Duration::days(10));
        state.intent = Some(Box::new(intent(kind, None)));
        state
    };
    let mut never_issued = issued_at(&local, IntentKind::Renew);
    never_issued.status = CertificateStatus::New;
    let mut no_validity = issued_at(&local, IntentKind::Renew);
    no_validity.not_after = None;
    let reissue = |same_order: bool| Action::Reissue {
        same_order,
        changes: Vec::new(),
    };
    let create = Action::Create {
        common_name: "a.example".into(),
        sans: vec!["a.example".into()],
        key: "ecdsa-p256".into(),
        validity: "90 days".into(),
    };
    let cases = [
        (
            issued_at(&local, IntentKind::Renew),
            local.clone(),
            Action::Renew {
                serial: "01".into(),
                not_after: NOW + Duration::days(80),
                on_order: None,
            },
            "renew",
        ),
        (
            issued_at(&local, IntentKind::Reissue),
            local.clone(),
            reissue(true),
            "reissue",
        ),
        (
            issued_at(&other, IntentKind::Reissue),
            other.clone(),
            reissue(false),
            "reissue",
        ),
        (never_issued, local.clone(), create.clone(), "renew"),
        (no_validity, local.clone(), create.clone(), "renew"),
        (
            issued_at(&local, IntentKind::Create),
            local.clone(),
            create,
            "create",
        ),
    ];
    for (state, spec, action, kind) in cases {
        let plan = World::new().state(state).spec(spec).plan();
        let change = only_change(&plan);
        assert_eq!(change.action, action, "{kind}");
        assert_eq!(
            change.reason,
            format!(
                "resuming the interrupted {kind}: no order reached `{}`",
                change.ca
            )
        );
        assert_eq!(change.deploy, vec!["files:/srv/web".to_string()]);
    }
    // A reissue resumed after the CA changed is a new order.
    let mut moved = issued_at(&other, IntentKind::Reissue);
    moved.ca = "other".into();
    let plan = World::new().state(moved).spec(local).plan();
    assert!(matches!(
        &only_change(&plan).action,
        Action::Reissue { same_order: false, changes } if changes.iter().any(|c| c.field == "ca")
    ));
}

#[test]
fn revocation_follows_what_the_ca_and_state_hold() {
    let mut s = spec("web", &["a.example"]);
    s.revoke = Some(RevocationReason::Superseded);
    let pending = || intent_order(view("o-2", OrderStatus::Pending, None));

    // The CA already reports it revoked: recorded only, even under prevent_destroy.
    for prevent_destroy in [false, true] {
        let mut guarded = s.clone();
        guarded.prevent_destroy = prevent_destroy;
        let plan = World::new()
            .state(issued(&s, "0a", NOW - Duration::days(1)))
            .spec(guarded)
            .observe(
                "web",
                ObservedCertificate {
                    current: Some(view("order-web", OrderStatus::Revoked, Some("0a"))),
                    ..Default::default()
                },
            )
            .plan();
        let change = only_change(&plan);
        assert_eq!(
            change.action,
            Action::Revoke {
                serial: "0a".into(),
                reason: RevocationReason::Superseded,
                record_only: true,
                forget: false,
                cancel_order: None,
                cancel_refund: false,
            }
        );
        assert_eq!(
            change.reason,
            "config sets `revoke = true`; `local` already reports it revoked"
        );
    }

    // A pending renewal is cancelled with the revocation.
    let mut renewing = issued(&s, "0a", NOW - Duration::days(1));
    renewing.intent = Some(Box::new(intent(IntentKind::Renew, Some("o-2"))));
    let plan = World::new()
        .state(renewing)
        .spec(s.clone())
        .observe("web", pending())
        .plan();
    let change = only_change(&plan);
    assert_eq!(
        change.action,
        Action::Revoke {
            serial: "0a".into(),
            reason: RevocationReason::Superseded,
            record_only: false,
            forget: false,
            cancel_order: Some("o-2".into()),
            cancel_refund: false,
        }
    );
    assert_eq!(
        change.reason,
        "config sets `revoke = true`: serial 0a (irreversible)"
    );

    // Nothing issued yet: the pending order is cancelled, unless prevent_destroy.
    let mut ordering = issued(&s, "0a", NOW);
    ordering.status = CertificateStatus::New;
    ordering.serial = None;
    ordering.intent = Some(Box::new(intent(IntentKind::Create, Some("o-2"))));
    let plan = World::new()
        .state(ordering.clone())
        .spec(s.clone())
        .observe("web", pending())
        .plan();
    let change = only_change(&plan);
    assert_eq!(
        change.action,
        Action::Cancel {
            order_id: "o-2".into(),
            forget: false,
            refund: false
        }
    );
    assert_eq!(
        change.reason,
        "config sets `revoke = true`; nothing is issued yet, so pending order o-2 is cancelled"
    );
    let mut guarded = s.clone();
    guarded.prevent_destroy = true;
    let mut guarded_state = ordering.clone();
    guarded_state.prevent_destroy = true;
    let plan = World::new()
        .state(guarded_state)
        .spec(guarded)
        .observe("web", pending())
        .plan();
    assert!(
        plan.changes.is_empty() && plan.blocked.is_empty(),
        "{plan:#?}"
    );
    assert_eq!(plan.unchanged, vec!["web".to_string()]);

    // Nothing issued and nothing pending: nothing to do.
    let plan = World::new().state(ordering).spec(s).plan();
    assert!(
        plan.changes.is_empty() && plan.blocked.is_empty(),
        "{plan:#?}"
    );
}

#[test]
fn a_removed_certificate_with_nothing_issued_is_forgotten_or_cancelled() {
    let mut s = spec("web", &["a.example"]);
    let mut ordering = issued(&s, "0a", NOW);
    ordering.status = CertificateStatus::New;
    ordering.serial = None;
    ordering.intent = Some(Box::new(intent(IntentKind::Create, Some("o-2"))));
    let pending = intent_order(view("o-2", OrderStatus::Pending, None));

    // on_remove = revoke, nothing issued, order pending: cancelled; under prevent_destroy
    // the record stays as a protected tombstone.
    ordering.on_remove = OnRemove::Revoke;
    let plan = World::new()
        .state(ordering.clone())
        .observe("web", pending.clone())
        .plan();
    assert_eq!(
        only_change(&plan).action,
        Action::Cancel {
            order_id: "o-2".into(),
            forget: true,
            refund: false
        }
    );
    ordering.prevent_destroy = true;
    let tombstone = vec![Blocked {
        certificate: "web".into(),
        wanted: None,
        reason: "protected: removed from config, but `prevent_destroy` was set when it was last applied; kept in state as a tombstone and nothing is done at `local` (run `certform state rm web` to drop it)".into(),
    }];
    let plan = World::new()
        .state(ordering.clone())
        .observe("web", pending.clone())
        .plan();
    assert!(plan.changes.is_empty(), "{plan:#?}");
    assert_eq!(plan.blocked, tombstone);

    // on_remove = cancel under prevent_destroy: the same tombstone.
    ordering.on_remove = OnRemove::Cancel;
    let plan = World::new()
        .state(ordering.clone())
        .observe("web", pending.clone())
        .plan();
    assert!(plan.changes.is_empty());
    assert_eq!(plan.blocked, tombstone);

    // on_remove = cancel with no order pending (the order was issued meanwhile): forgotten.
    ordering.prevent_destroy = false;
    let plan = World::new()
        .state(ordering)
        .observe(
            "web",
            intent_order(view("o-2", OrderStatus::Issued, Some("0b"))),
        )
        .plan();
    let change = only_change(&plan);
    assert_eq!(change.action, Action::Forget);
    assert_eq!(
        change.reason,
        "removed from config; on_remove = cancel, but no order is pending"
    );
    s.on_remove = OnRemove::Forget;
    let plan = World::new().state(issued(&s, "01", NOW)).plan();
    assert_eq!(
        only_change(&plan).reason,
        "removed from config; on_remove = forget: the CA keeps the certificate"
    );
}

// ---------------------------------------------------------------- guardrails

#[test]
fn changed_lifecycle_settings_are_an_update_settings_line() {
    let recorded = spec("web", &["a.example"]);
    let state = issued(&recorded, "01", NOW - Duration::days(10));
    // Each setting on its own is a change; nothing else differs.
    type Edit = fn(&mut CertificateSpec);
    let cases: [(Edit, &str, &str, &str); 3] = [
        (
            |s| s.on_remove = OnRemove::Revoke,
            "on_remove",
            "forget",
            "revoke",
        ),
        (
            |s| s.prevent_destroy = true,
            "prevent_destroy",
            "false",
            "true",
        ),
        (
            |s| s.revoke_reason = Some(RevocationReason::Superseded),
            "revoke_reason",
            "(default)",
            "superseded",
        ),
    ];
    for (edit, field, old, new) in cases {
        let mut wanted = recorded.clone();
        edit(&mut wanted);
        let plan = World::new().state(state.clone()).spec(wanted).plan();
        let change = only_change(&plan);
        assert_eq!(
            change.action,
            Action::UpdateSettings {
                changes: vec![FieldChange {
                    field: field.into(),
                    old: Some(old.into()),
                    new: Some(new.into()),
                }]
            },
            "{field}"
        );
        assert_eq!(
            change.reason,
            format!("`{field}` changed; recorded in state (no CA call)")
        );
        assert_eq!(change.action.verb(), "update settings");
        assert!(!change.action.contacts_ca());
        assert!(!change.action.is_destructive());
        assert!(change.deploy.is_empty() && change.undeploy.is_empty());
    }
    // Recorded settings equal to config: nothing to do.
    let plan = World::new().state(state).spec(recorded).plan();
    assert!(plan.is_empty(), "{plan:#?}");
}

#[test]
fn settings_are_not_a_line_of_their_own_when_other_work_is_planned() {
    // Due for renewal and settings changed: one renew (the executor records the settings).
    let recorded = spec("web", &["a.example"]);
    let mut wanted = recorded.clone();
    wanted.prevent_destroy = true;
    let plan = World::new()
        .state(issued(&recorded, "01", NOW - Duration::days(70)))
        .spec(wanted)
        .plan();
    assert_eq!(only_change(&plan).action.verb(), "renew");
}

#[test]
fn update_settings_is_not_held_back_by_a_rate_limit() {
    let recorded = spec("web", &["a.example"]);
    let mut state = issued(&recorded, "01", NOW - Duration::days(10));
    state.retry_after = Some(NOW + Duration::hours(1));
    let mut wanted = recorded;
    wanted.on_remove = OnRemove::Revoke;
    let plan = World::new().state(state).spec(wanted).plan();
    assert_eq!(only_change(&plan).action.verb(), "update settings");
    assert!(plan.blocked.is_empty());
}

#[test]
fn settings_are_recorded_for_a_certificate_held_back() {
    // `revoke = true` newly under `prevent_destroy`: the revocation is blocked, the setting
    // is still recorded.
    let mut recorded = spec("web", &["a.example"]);
    recorded.on_remove = OnRemove::Revoke;
    let state = issued(&recorded, "01", NOW - Duration::days(10));
    let mut wanted = recorded.clone();
    wanted.revoke = Some(RevocationReason::Superseded);
    wanted.prevent_destroy = true;
    let plan = World::new().state(state.clone()).spec(wanted).plan();
    assert_eq!(plan.blocked.len(), 1, "{plan:#?}");
    assert_eq!(plan.blocked[0].wanted.as_deref(), Some("revoke"));
    assert_eq!(only_change(&plan).action.verb(), "update settings");

    // A CA that cannot be read: blocked, the setting still recorded.
    let mut wanted = recorded.clone();
    wanted.on_remove = OnRemove::Forget;
    let plan = World::new()
        .state(state.clone())
        .spec(wanted.clone())
        .observe(
            "web",
            ObservedCertificate {
                refresh_error: Some("down".into()),
                ..Default::default()
            },
        )
        .plan();
    assert_eq!(plan.blocked.len(), 1, "{plan:#?}");
    assert_eq!(only_change(&plan).action.verb(), "update settings");

    // Rate limited while due for renewal: the renewal waits, the setting is recorded.
    let mut due = issued(&recorded, "01", NOW - Duration::days(70));
    due.retry_after = Some(NOW + Duration::hours(1));
    let plan = World::new().state(due).spec(wanted).plan();
    assert_eq!(plan.blocked.len(), 1, "{plan:#?}");
    assert_eq!(plan.blocked[0].wanted.as_deref(), Some("renew"));
    assert_eq!(only_change(&plan).action.verb(), "update settings");

    // Held back with nothing changed in the settings: blocked only.
    let plan = World::new()
        .state(state)
        .spec(recorded)
        .observe(
            "web",
            ObservedCertificate {
                refresh_error: Some("down".into()),
                ..Default::default()
            },
        )
        .plan();
    assert!(plan.changes.is_empty(), "{plan:#?}");
    assert_eq!(plan.blocked.len(), 1);
}

/// The issue's regression: switched from `revoke` to `forget` + `prevent_destroy`, applied
/// (recorded), then removed: a protected tombstone, never a revocation.
#[test]
fn removal_acts_on_the_settings_last_recorded() {
    let mut s = spec("web", &["a.example"]);
    s.on_remove = OnRemove::Revoke;
    let mut state = issued(&s, "01", NOW - Duration::days(10));
    s.on_remove = OnRemove::Forget;
    s.prevent_destroy = true;
    let mut world = World::new().state(state.clone()).spec(s.clone());
    let plan = world.plan();
    assert_eq!(only_change(&plan).action.verb(), "update settings");
    simulate(&mut world, &plan, &mut 0);
    assert!(world.plan().is_empty());
    world.specs.clear();
    let plan = world.plan();
    assert!(plan.changes.is_empty(), "{plan:#?}");
    assert_eq!(plan.blocked.len(), 1);
    assert_eq!(plan.blocked[0].wanted, None);
    assert!(plan.blocked[0].reason.starts_with("protected: "));

    // Removed with `on_remove = revoke` recorded: revoked with the recorded reason, and the
    // default reason when none was recorded.
    for (recorded, sent) in [
        (
            Some(RevocationReason::Superseded),
            RevocationReason::Superseded,
        ),
        (None, RevocationReason::CessationOfOperation),
    ] {
        state.revoke_reason = recorded;
        let plan = World::new().state(state.clone()).plan();
        match &only_change(&plan).action {
            Action::Revoke { reason, forget, .. } => {
                assert_eq!(*reason, sent);
                assert!(*forget);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_tombstone_stays_whatever_on_remove_says_until_state_forgets_it() {
    let mut s = spec("web", &["a.example"]);
    s.prevent_destroy = true;
    for on_remove in [OnRemove::Forget, OnRemove::Cancel, OnRemove::Revoke] {
        s.on_remove = on_remove;
        let plan = World::new()
            .state(issued(&s, "01", NOW - Duration::days(10)))
            .plan();
        assert!(plan.changes.is_empty(), "{on_remove:?}: {plan:#?}");
        assert_eq!(plan.blocked.len(), 1, "{on_remove:?}");
        assert!(plan.blocked[0].reason.contains("`certform state rm web`"));
        assert!(plan.guards.is_empty());
    }
    // Without `prevent_destroy` recorded, removal acts.
    s.prevent_destroy = false;
    s.on_remove = OnRemove::Forget;
    let plan = World::new()
        .state(issued(&s, "01", NOW - Duration::days(10)))
        .plan();
    assert_eq!(only_change(&plan).action, Action::Forget);
}

/// `count` certificates in state, of which the first `removed` left config with
/// `on_remove = revoke` and the next `reissued` changed their names.
fn fleet(count: usize, removed: usize, reissued: usize) -> World {
    let mut world = World::new();
    for i in 0..count {
        let name = format!("c{i:02}");
        let mut s = spec(&name, &[&format!("{name}.example")]);
        s.on_remove = OnRemove::Revoke;
        world = world.state(issued(&s, "01", NOW - Duration::days(10)));
        if i < removed {
            continue;
        }
        if i < removed + reissued {
            s = spec(&name, &[&format!("{name}.example"), "extra.example"]);
            s.on_remove = OnRemove::Revoke;
        }
        world = world.spec(s);
    }
    world
}

#[test]
fn more_destructive_actions_than_the_threshold_need_force() {
    // Five revocations is at the default limit: allowed.
    let plan = fleet(12, 5, 0).plan();
    assert_eq!(plan.changes.len(), 5);
    assert!(plan.guards.is_empty(), "{:#?}", plan.guards);
    // Six exceed it.
    let plan = fleet(12, 6, 0).plan();
    assert_eq!(
        plan.guards,
        vec![Guard {
            setting: "max_destructive".into(),
            message: "6 destructive actions (revoke, cancel) exceed `max_destructive = 5`".into(),
        }]
    );
    // A configured limit counts, including 0 (every destructive action needs `--force`).
    let mut world = fleet(3, 1, 0);
    world.thresholds.max_destructive = 0;
    assert_eq!(world.plan().guards.len(), 1);
    world.thresholds.max_destructive = 1;
    assert!(world.plan().guards.is_empty());
    // Forgetting is not destructive.
    let mut world = World::new();
    for i in 0..8 {
        world = world.state(issued(
            &spec(&format!("c{i}"), &["a.example"]),
            "01",
            NOW - Duration::days(10),
        ));
    }
    let plan = world.plan();
    assert_eq!(plan.changes.len(), 8);
    assert!(plan.guards.is_empty());
}

#[test]
fn reissuing_more_than_the_share_needs_force_once_state_is_large_enough() {
    // 10 certificates, 5 reissued: exactly 50%, allowed; 6: 60%, guarded.
    assert!(fleet(10, 0, 5).plan().guards.is_empty());
    let plan = fleet(10, 0, 6).plan();
    assert_eq!(plan.changes.len(), 6);
    assert_eq!(
        plan.guards,
        vec![Guard {
            setting: "max_reissue_percent".into(),
            message: "6 of 10 certificates reissued (60%) exceed `max_reissue_percent = 50`".into(),
        }]
    );
    // Fewer than 10 certificates in state: the share rule is skipped.
    assert!(fleet(9, 0, 9).plan().guards.is_empty());
    // A configured share counts.
    let mut world = fleet(10, 0, 2);
    world.thresholds.max_reissue_percent = 10;
    assert_eq!(world.plan().guards.len(), 1);
    world.thresholds.max_reissue_percent = 20;
    assert!(world.plan().guards.is_empty());
    // Renewals never count, however many are due at once.
    let mut world = World::new();
    for i in 0..10 {
        let s = spec(&format!("c{i}"), &["a.example"]);
        world = world
            .state(issued(&s, "01", NOW - Duration::days(70)))
            .spec(s);
    }
    let plan = world.plan();
    assert_eq!(plan.summary(), vec![("renew", 10)]);
    assert!(plan.guards.is_empty());
}

#[test]
fn guards_show_loudly_in_text_and_json() {
    let plan = fleet(12, 6, 0).plan();
    let text = render::text(&plan, TextOptions::default());
    assert!(
        text.contains("!! SAFETY THRESHOLD EXCEEDED: 6 destructive actions (revoke, cancel) exceed `max_destructive = 5`\n      `apply` refuses this plan without `--force` (threshold `[defaults] max_destructive`)"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&render::json(&plan)).expect("json");
    assert_eq!(json["guards"][0]["setting"], "max_destructive");
    let quiet = render::json(&fleet(12, 5, 0).plan());
    assert!(!quiet.contains("guards"), "{quiet}");
}

/// A target written `dir = "<relative>"` in a config file at `checkout`.
fn relative_target(checkout: &str, relative: &str) -> DeployTarget {
    let DeployTarget::Files(mut files) = files_target(&format!("{checkout}/{relative}")) else {
        unreachable!("a files target")
    };
    files.relative_dir = Some(PathBuf::from(relative));
    DeployTarget::Files(files)
}

#[test]
fn deploy_ids_are_relative_to_the_config_file() {
    let target = relative_target("/home/ci/run-1", "out/web");
    assert_eq!(target.id(), "files:out/web");
    // The same target in another checkout: the same id and digest.
    let elsewhere = relative_target("/builds/x/repo", "out/web");
    assert_eq!(elsewhere.id(), target.id());
    assert_eq!(elsewhere.digest(), target.digest());
    // An absolute `dir` keeps its absolute id and the digest it always had.
    let absolute = files_target("/srv/web");
    assert_eq!(absolute.id(), "files:/srv/web");
    assert_eq!(
        absolute.digest(),
        absolute.legacy_digest(Path::new("/srv/web"))
    );
    // Legacy ids: this checkout's absolute path, or another checkout's ending in `out/web`.
    assert!(target.is_legacy_id("files:/home/ci/run-1/out/web"));
    assert!(target.is_legacy_id("files:/srv/old/checkout/out/web"));
    for other in [
        "files:out/web",
        "files:/srv/old/checkout/web",
        "files:/srv/old/checkout/out/api",
        "files:relative/out/web",
        "other:/x/out/web",
    ] {
        assert!(!target.is_legacy_id(other), "{other}");
    }
    assert!(!absolute.is_legacy_id("files:/srv/web"));
    // A relative dir leaving the config directory matches only this checkout's path.
    let up = {
        let DeployTarget::Files(mut files) = files_target("/home/ci/out") else {
            unreachable!("a files target")
        };
        files.relative_dir = Some(PathBuf::from("../out"));
        DeployTarget::Files(files)
    };
    assert_eq!(up.id(), "files:../out");
    assert!(up.is_legacy_id("files:/home/ci/out"));
    assert!(!up.is_legacy_id("files:/elsewhere/out"));
}

/// The issue's regression: state written in one checkout with absolute ids, planned from
/// another checkout: no changes (the records are re-keyed, their digests carried over).
#[test]
fn state_from_another_checkout_with_absolute_ids_plans_no_changes() {
    let mut s = spec("web", &["a.example"]);
    s.deploy = vec![
        relative_target("/home/ci/run-2", "out/web"),
        relative_target("/home/ci/run-2", "x/web"),
    ];
    let mut state = issued(&s, "01", NOW - Duration::days(10));
    // What an older certform wrote in `/srv/first`: absolute ids and digests.
    state.deployments = s
        .deploy
        .iter()
        .map(|t| {
            let DeployTarget::Files(files) = t else {
                unreachable!("a files target")
            };
            let old = Path::new("/srv/first").join(files.id_dir());
            let mut record = state.deployments[&t.id()].clone();
            record.target_digest = t.legacy_digest(&old);
            (format!("files:{}", old.display()), record)
        })
        .collect();
    let mut world = World::new().spec(s.clone()).state(state.clone());
    // Unmigrated, the planner sees two new targets and two dropped ones.
    assert_eq!(only_change(&world.plan()).action, Action::Deploy);
    world.state.migrate_deploy_ids(&world.specs);
    let plan = world.plan();
    assert!(plan.is_empty(), "{plan:#?}");
    let keys: Vec<&String> = world.state.certificates["web"].deployments.keys().collect();
    assert_eq!(keys, ["files:out/web", "files:x/web"]);

    // A target whose settings changed meanwhile is still deployed again after the move.
    let mut changed = state;
    for record in changed.deployments.values_mut() {
        record.target_digest = "sha256:old-settings".into();
    }
    let mut world = World::new().spec(s).state(changed);
    world.state.migrate_deploy_ids(&world.specs);
    let change = only_change(&world.plan()).clone();
    assert_eq!(change.action, Action::Deploy);
    assert!(change.undeploy.is_empty(), "{change:#?}");
    assert!(
        change.reason.contains("target settings changed"),
        "{}",
        change.reason
    );

    // Records of certificates no longer in config are left alone.
    let mut gone = State::default();
    let mut removed = issued(&spec("old", &["a.example"]), "01", NOW);
    let record = removed
        .deployments
        .values()
        .next()
        .cloned()
        .expect("record");
    removed.deployments = [("files:/srv/first/out/web".to_string(), record)].into();
    gone.certificates.insert("old".into(), removed.clone());
    gone.migrate_deploy_ids(&BTreeMap::new());
    assert_eq!(gone.certificates["old"], removed);
}

// ---------------------------------------------------------------- properties

/// Carry out a plan in a model world whose CA issues every order at once.
fn simulate(world: &mut World, plan: &Plan, serial: &mut u32) {
    for change in &plan.changes {
        let name = &change.certificate;
        let spec = world.specs.get(name).cloned();
        // The executor records the lifecycle settings with every action on a configured
        // certificate.
        if let (Some(spec), Some(state)) = (&spec, world.state.certificates.get_mut(name)) {
            state.record_settings(LifecycleSettings::of_spec(spec));
        }
        let mut issue = |world: &mut World| {
            let Some(spec) = spec.clone() else { return };
            *serial += 1;
            let serial_text = format!("{serial:04x}");
            let previous = world.state.certificates.get(name).cloned();
            let mut next = issued(&spec, &serial_text, plan.now);
            if let Some(previous) = previous {
                next.history = previous.history;
            }
            world.state.certificates.insert(name.clone(), next.clone());
            world.observed.certificates.insert(
                name.clone(),
                ObservedCertificate {
                    current: Some(view(
                        next.order_id.as_deref().unwrap_or_default(),
                        OrderStatus::Issued,
                        Some(&serial_text),
                    )),
                    ..Default::default()
                },
            );
        };
        match &change.action {
            Action::Create { .. }
            | Action::Renew { .. }
            | Action::Reissue { .. }
            | Action::Fetch { .. }
            | Action::Adopt { .. }
            | Action::Wait { .. } => issue(world),
            Action::Deploy => {
                let Some(spec) = spec else { continue };
                let Some(state) = world.state.certificates.get_mut(name) else {
                    continue;
                };
                let fingerprint = state.sha256_fingerprint.clone().unwrap_or_default();
                for target in &spec.deploy {
                    state.deployments.insert(
                        target.id(),
                        Box::new(DeployRecord {
                            sha256_fingerprint: fingerprint.clone(),
                            target_digest: target.digest(),
                            files: Default::default(),
                            deployed_at: plan.now,
                            reload_error: None,
                            serial: None,
                            verified: None,
                            paths: Vec::new(),
                            cleanup: false,
                            verify_error: None,
                            ssh: None,
                        }),
                    );
                }
                for id in &change.undeploy {
                    state.deployments.remove(id);
                }
                if let Some(observed) = world.observed.certificates.get_mut(name) {
                    observed.deployments.clear();
                }
            }
            Action::Revoke { forget, .. } => {
                if *forget {
                    world.state.certificates.remove(name);
                    world.observed.certificates.remove(name);
                } else if let Some(state) = world.state.certificates.get_mut(name) {
                    state.status = CertificateStatus::Revoked;
                    state.intent = None;
                    if let Some(observed) = world.observed.certificates.get_mut(name) {
                        if let Some(current) = observed.current.as_mut() {
                            current.status = OrderStatus::Revoked;
                        }
                    }
                }
            }
            Action::Cancel { forget, .. } => {
                if *forget {
                    world.state.certificates.remove(name);
                    world.observed.certificates.remove(name);
                } else if let Some(state) = world.state.certificates.get_mut(name) {
                    state.intent = None;
                    if state.status == CertificateStatus::New {
                        state.status = CertificateStatus::Canceled;
                    }
                }
            }
            Action::Forget => {
                world.state.certificates.remove(name);
                world.observed.certificates.remove(name);
            }
            // Recorded above, as for every action on a configured certificate.
            Action::UpdateSettings { .. } => {}
        }
    }
}

const NAMES: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
const DOMAINS: [&str; 4] = ["a.example", "b.example", "c.example", "d.example"];

#[derive(Debug, Clone)]
struct CaseSpec {
    present: bool,
    domains: Vec<usize>,
    rsa: bool,
    ca_other: bool,
    revoke: bool,
    prevent_destroy: bool,
    on_remove: u8,
    percent: bool,
}

#[derive(Debug, Clone)]
struct CaseState {
    present: bool,
    age_days: i64,
    old_domains: Vec<usize>,
    status: u8,
    intent: u8,
    observed_current: u8,
    observed_intent: u8,
    deploy_drift: u8,
}

fn case_spec() -> impl Strategy<Value = CaseSpec> {
    (
        any::<bool>(),
        proptest::collection::vec(0usize..4, 1..3),
        any::<bool>(),
        any::<bool>(),
        proptest::bool::weighted(0.15),
        any::<bool>(),
        0u8..3,
        any::<bool>(),
    )
        .prop_map(
            |(present, domains, rsa, ca_other, revoke, prevent_destroy, on_remove, percent)| {
                CaseSpec {
                    present,
                    domains,
                    rsa,
                    ca_other,
                    revoke,
                    prevent_destroy,
                    on_remove,
                    percent,
                }
            },
        )
}

fn case_state() -> impl Strategy<Value = CaseState> {
    (
        any::<bool>(),
        0i64..120,
        proptest::collection::vec(0usize..4, 1..3),
        0u8..4,
        0u8..4,
        0u8..4,
        0u8..6,
        0u8..4,
    )
        .prop_map(
            |(
                present,
                age_days,
                old_domains,
                status,
                intent,
                observed_current,
                observed_intent,
                deploy_drift,
            )| {
                CaseState {
                    present,
                    age_days,
                    old_domains,
                    status,
                    intent,
                    observed_current,
                    observed_intent,
                    deploy_drift,
                }
            },
        )
}

fn build_spec(name: &str, case: &CaseSpec, domains: &[usize]) -> CertificateSpec {
    let sans: Vec<&str> = domains.iter().map(|i| DOMAINS[*i]).collect();
    let mut s = spec(name, &sans);
    if case.rsa {
        s.key = KeySpec::Rsa(3072);
    }
    if case.ca_other {
        s.ca = "other".into();
    }
    if case.percent {
        s.renew_before = RenewBefore::Percent(33);
    }
    s.revoke = case.revoke.then_some(RevocationReason::Superseded);
    s.prevent_destroy = case.prevent_destroy;
    s.on_remove = [OnRemove::Forget, OnRemove::Cancel, OnRemove::Revoke][case.on_remove as usize];
    s
}

fn build_world(cases: &[(CaseSpec, CaseState)]) -> World {
    let mut world = World::new();
    for (i, (spec_case, state_case)) in cases.iter().enumerate() {
        let name = NAMES[i];
        if spec_case.present {
            world = world.spec(build_spec(name, spec_case, &spec_case.domains));
        }
        if !state_case.present {
            continue;
        }
        let old_spec = build_spec(name, spec_case, &state_case.old_domains);
        let mut state = issued(
            &old_spec,
            &format!("{i:02x}"),
            NOW - Duration::days(state_case.age_days),
        );
        state.status = [
            CertificateStatus::Issued,
            CertificateStatus::Issued,
            CertificateStatus::Revoked,
            CertificateStatus::New,
        ][state_case.status as usize];
        state.intent = match state_case.intent {
            1 => Some(Box::new(intent(IntentKind::Create, None))),
            2 => Some(Box::new(intent(IntentKind::Renew, Some("o-intent")))),
            3 => Some(Box::new(intent(IntentKind::Reissue, Some("o-intent")))),
            _ => None,
        };
        let current = match state_case.observed_current {
            1 => Some(view("order", OrderStatus::Revoked, state.serial.as_deref())),
            2 => Some(view("order", OrderStatus::Issued, Some("ff"))),
            3 => Some(view("order", OrderStatus::Issued, state.serial.as_deref())),
            _ => None,
        };
        let intent_order = match state_case.observed_intent {
            1 => Some(view("o-intent", OrderStatus::Pending, None)),
            2 => Some(view("o-intent", OrderStatus::Issued, Some("ee"))),
            3 => Some(view("o-intent", OrderStatus::Canceled, None)),
            4 => Some(view("o-found", OrderStatus::Pending, None)),
            _ => None,
        }
        .map(Box::new);
        let mut observed = ObservedCertificate {
            current,
            intent_order,
            ..Default::default()
        };
        for id in state.deployments.keys() {
            let drift = match state_case.deploy_drift {
                1 => DeployObservation::Missing(vec!["cert.pem".into()]),
                2 => DeployObservation::Changed(vec!["privkey.pem".into()]),
                _ => DeployObservation::InSync,
            };
            observed.deployments.insert(id.clone(), drift);
        }
        world = world.state(state).observe(name, observed);
    }
    world
}

fn cases() -> impl Strategy<Value = Vec<(CaseSpec, CaseState)>> {
    proptest::collection::vec((case_spec(), case_state()), 1..=4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn planning_is_deterministic(cases in cases()) {
        let world = build_world(&cases);
        prop_assert_eq!(world.plan(), world.plan());
    }

    #[test]
    fn never_revokes_or_cancels_what_state_does_not_own(cases in cases()) {
        let world = build_world(&cases);
        for change in &world.plan().changes {
            let state = world.state.certificates.get(&change.certificate);
            match &change.action {
                Action::Revoke { serial, .. } => {
                    let state = state.expect("revoke only for certificates in state");
                    prop_assert_eq!(Some(serial), state.serial.as_ref());
                    prop_assert_eq!(state.status, CertificateStatus::Issued);
                }
                Action::Cancel { order_id, .. } => {
                    let state = state.expect("cancel only for certificates in state");
                    let intent_order = state.intent.as_ref().and_then(|i| i.order_id.as_ref());
                    prop_assert_eq!(Some(order_id), intent_order);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn applying_the_plan_converges(cases in cases()) {
        let mut world = build_world(&cases);
        let mut serial = 0x1000;
        let first = world.plan();
        simulate(&mut world, &first, &mut serial);
        let second = world.plan();
        prop_assert!(second.changes.is_empty(), "second plan not empty: {:#?}\nfirst: {:#?}", second, first);
        // Blocked items stay blocked, never turn into changes.
        prop_assert!(second.blocked.len() <= first.blocked.len() + first.changes.len());
    }

    #[test]
    fn destructive_actions_are_only_for_revoke_config_or_removal(cases in cases()) {
        let world = build_world(&cases);
        for change in world.plan().changes.iter().filter(|c| c.action.is_destructive()) {
            let spec = world.specs.get(&change.certificate);
            let state = &world.state.certificates[&change.certificate];
            let allowed = match spec {
                Some(spec) => spec.revoke.is_some() && !spec.prevent_destroy,
                None => state.on_remove != OnRemove::Forget && !state.prevent_destroy,
            };
            prop_assert!(allowed, "unexpected destructive change {:?}", change);
        }
    }
}

fn any_renew_before() -> impl Strategy<Value = RenewBefore> {
    prop_oneof![
        (1i64..=20 * 366 * 86_400)
            .prop_map(|seconds| RenewBefore::Duration(Duration::seconds(seconds))),
        (1u8..=99).prop_map(RenewBefore::Percent),
    ]
}

fn any_validity() -> impl Strategy<Value = Validity> {
    prop_oneof![
        (1u32..=1000).prop_map(Validity::Days),
        (1u32..=5).prop_map(Validity::Years),
        (1i64..=2000).prop_map(|days| Validity::Until((NOW + Duration::days(days)).date())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Whatever the CA issued (1 hour to 10 years) and whatever the config asked, a certificate
    /// issued at `t` is not renewed at `t` nor in the next 5 minutes (no paid order on every
    /// run), and it is renewed before it expires.
    #[test]
    fn a_certificate_just_issued_is_not_renewed(
        lifetime in 3_600i64..=10 * 366 * 86_400,
        renew_before in any_renew_before(),
        validity in any_validity(),
        age in 0i64..=300,
    ) {
        let mut s = spec("web", &["a.example"]);
        s.validity = validity;
        s.renew_before = renew_before;
        let state = issued_for(&s, "01", NOW, Duration::seconds(lifetime));
        let world = World::new().state(state).spec(s);
        let plan = world.plan_at(NOW + Duration::seconds(age));
        prop_assert!(plan.changes.is_empty(), "renewed {}s after issuance: {:#?}", age, plan);
        let late = world.plan_at(NOW + Duration::seconds(lifetime - 1));
        prop_assert_eq!(late.changes.len(), 1);
        prop_assert_eq!(late.changes[0].action.verb(), "renew");
    }
}

impl World {
    /// Change what the `local` account can do.
    fn local_caps(mut self, change: impl FnOnce(&mut Capabilities)) -> Self {
        if let Some(caps) = self.caps.get_mut("local") {
            change(caps);
        }
        self
    }
}

#[test]
fn a_cancel_says_whether_the_ca_refunds_it_in_text_and_json() {
    let mut ordering = issued(&spec("web", &["a.example"]), "0a", NOW);
    ordering.status = CertificateStatus::New;
    ordering.serial = None;
    ordering.on_remove = OnRemove::Cancel;
    ordering.intent = Some(Box::new(intent(IntentKind::Create, Some("o-2"))));
    let pending = intent_order(view("o-2", OrderStatus::Pending, None));
    for refunds in [true, false] {
        let plan = World::new()
            .local_caps(|caps| caps.cancel_refunds = refunds)
            .state(ordering.clone())
            .observe("web", pending.clone())
            .plan();
        assert_eq!(
            only_change(&plan).action,
            Action::Cancel {
                order_id: "o-2".into(),
                forget: true,
                refund: refunds,
            }
        );
        let text = render::text(&plan, TextOptions { color: false });
        let line = if refunds {
            "      refund: yes (the CA gives a cancelled pending order's price back)\n"
        } else {
            "      refund: no\n"
        };
        assert!(text.contains(line), "{text}");
        let json: serde_json::Value = serde_json::from_str(&render::json(&plan)).unwrap();
        assert_eq!(json["changes"][0]["action"]["refund"], refunds, "{json}");
    }
}

#[test]
fn the_refund_of_a_cancel_is_the_intent_cas() {
    // The pending order is at the CA the intent went to, not the one state last issued from.
    let mut ordering = issued(&spec("web", &["a.example"]), "0a", NOW);
    ordering.status = CertificateStatus::New;
    ordering.serial = None;
    ordering.ca = "other".into();
    ordering.on_remove = OnRemove::Cancel;
    ordering.intent = Some(Box::new(intent(IntentKind::Create, Some("o-2"))));
    let plan = World::new()
        .local_caps(|caps| caps.cancel_refunds = true)
        .state(ordering)
        .observe("web", intent_order(view("o-2", OrderStatus::Pending, None)))
        .plan();
    assert!(
        matches!(
            only_change(&plan).action,
            Action::Cancel { refund: true, .. }
        ),
        "{plan:#?}"
    );
}

#[test]
fn an_interrupted_create_at_a_ca_without_tag_lookup_is_blocked_not_ordered_again() {
    let s = spec("web", &["a.example"]);
    let mut ordering = issued(&s, "0a", NOW);
    ordering.status = CertificateStatus::New;
    ordering.serial = None;
    ordering.intent = Some(Box::new(intent(IntentKind::Create, None)));

    // A CA that finds orders by tag: no order found means none was placed; ordered again.
    for duplicates in [
        DuplicatePrevention::TagAtCa,
        DuplicatePrevention::LocalIndex,
    ] {
        let plan = World::new()
            .local_caps(|caps| caps.duplicates = duplicates)
            .state(ordering.clone())
            .spec(s.clone())
            .plan();
        assert_eq!(only_change(&plan).action.verb(), "create", "{plan:#?}");
    }

    // A CA that cannot: the outcome is unknown, so the user is asked to check first.
    let plan = World::new()
        .local_caps(|caps| caps.duplicates = DuplicatePrevention::None)
        .state(ordering.clone())
        .spec(s.clone())
        .plan();
    assert!(plan.changes.is_empty(), "{plan:#?}");
    assert_eq!(plan.blocked.len(), 1, "{plan:#?}");
    let blocked = &plan.blocked[0];
    assert_eq!(blocked.wanted.as_deref(), Some("create"));
    assert!(
        blocked.reason.contains("tag `tag-1`")
            && blocked
                .reason
                .contains("cannot find orders by certform's tag"),
        "{}",
        blocked.reason
    );

    // Once the order id is known, the CA is asked by id as usual.
    let mut placed = ordering;
    placed.intent = Some(Box::new(intent(IntentKind::Create, Some("o-2"))));
    let plan = World::new()
        .local_caps(|caps| caps.duplicates = DuplicatePrevention::None)
        .state(placed)
        .spec(s)
        .observe("web", intent_order(view("o-2", OrderStatus::Pending, None)))
        .plan();
    assert_eq!(only_change(&plan).action.verb(), "wait", "{plan:#?}");
}

#[test]
fn a_pending_order_cancelled_with_a_revocation_says_whether_it_is_refunded() {
    let mut s = spec("web", &["a.example"]);
    s.revoke = Some(RevocationReason::Superseded);
    let mut renewing = issued(&s, "0a", NOW - Duration::days(1));
    renewing.intent = Some(Box::new(intent(IntentKind::Renew, Some("o-2"))));
    for refunds in [true, false] {
        let plan = World::new()
            .local_caps(|caps| caps.cancel_refunds = refunds)
            .state(renewing.clone())
            .spec(s.clone())
            .observe("web", intent_order(view("o-2", OrderStatus::Pending, None)))
            .plan();
        assert!(
            matches!(
                &only_change(&plan).action,
                Action::Revoke { cancel_order: Some(order), cancel_refund, .. }
                    if order == "o-2" && *cancel_refund == refunds
            ),
            "{plan:#?}"
        );
        let text = render::text(&plan, TextOptions { color: false });
        let line = format!(
            "      then: cancel pending order o-2 (refund: {})\n",
            if refunds { "yes" } else { "no" }
        );
        assert!(text.contains(&line), "{text}");
    }
    // Nothing to cancel: nothing to refund, whatever the CA does.
    let plan = World::new()
        .local_caps(|caps| caps.cancel_refunds = true)
        .state(issued(&s, "0a", NOW - Duration::days(1)))
        .spec(s)
        .plan();
    assert!(
        matches!(
            &only_change(&plan).action,
            Action::Revoke {
                cancel_order: None,
                cancel_refund: false,
                ..
            }
        ),
        "{plan:#?}"
    );
}

// ------------------------------------------------------------------------------------------
// schedule lane: spreading, budgets, backoff, late renewals
// ------------------------------------------------------------------------------------------

/// `count` certificates `c000`.. issued together at `from` for 90 days, renewing 30 days before
/// expiry.
fn burst(count: usize, from: OffsetDateTime) -> World {
    let mut world = World::new();
    for n in 0..count {
        let s = spec(&format!("c{n:03}"), &[&format!("c{n:03}.example")]);
        world = world.state(issued(&s, "01", from)).spec(s);
    }
    world
}

#[test]
fn certificates_issued_together_renew_spread_over_the_first_third_of_the_window() {
    let world = burst(300, NOW);
    let opens = NOW + Duration::days(60);
    let points: Vec<OffsetDateTime> = world
        .state
        .certificates
        .values()
        .map(|state| renewal_time(&world.specs[&state.name], state).expect("issued"))
        .collect();
    assert!(points
        .iter()
        .all(|at| *at >= opens && *at < opens + Duration::days(10)));
    let mut days: Vec<i64> = points.iter().map(|at| (*at - opens).whole_days()).collect();
    days.sort_unstable();
    days.dedup();
    assert_eq!(
        days,
        (0..10).collect::<Vec<_>>(),
        "every day of the spread is used"
    );
    // No day takes more than twice its share.
    for day in 0..10 {
        let on_day = points
            .iter()
            .filter(|at| (**at - opens).whole_days() == day)
            .count();
        assert!(on_day <= 60, "day {day}: {on_day} of 300");
    }
    // The plan renews exactly those whose point has come, and is the same on every run.
    let at = opens + Duration::days(3);
    let plan = world.plan_at(at);
    let due = points.iter().filter(|p| **p <= at).count();
    assert_eq!(plan.changes.len(), due);
    assert!(due > 0 && due < 300, "{due}");
    assert_eq!(plan, world.plan_at(at));
}

#[test]
fn the_point_follows_the_serial_so_a_renewed_certificate_gets_a_new_one() {
    let s = spec("web", &["a.example"]);
    let first = issued(&s, "01", NOW);
    let mut second = first.clone();
    second.serial = Some(Serial::parse("02"));
    assert_ne!(renewal_time(&s, &first), renewal_time(&s, &second));
    let mut other = first.clone();
    other.id = "id-other".into();
    assert_ne!(renewal_time(&s, &first), renewal_time(&s, &other));
    assert_eq!(renewal_time(&s, &first), renewal_time(&s, &first.clone()));
}

#[test]
fn status_and_plan_agree_on_the_renewal_time() {
    let s = spec("web", &["a.example"]);
    let state = issued(&s, "01", NOW);
    let world = World::new().state(state.clone()).spec(s.clone());
    let at = renewal_time(&s, &state).expect("issued");
    assert!(world.plan_at(at - Duration::seconds(1)).changes.is_empty());
    assert_eq!(only_change(&world.plan_at(at)).action.verb(), "renew");
    // An ARI window kept in state decides for both.
    let mut with_window = state;
    with_window.renewal_window = Some(RenewalWindow {
        serial: Serial::parse("01"),
        start: NOW + Duration::days(40),
        end: NOW + Duration::days(42),
        next_check: NOW + Duration::days(1),
    });
    let ari = renewal_time(&s, &with_window).expect("issued");
    assert!(ari >= NOW + Duration::days(40) && ari < NOW + Duration::days(42));
    let world = World::new().state(with_window).spec(s);
    assert!(world.plan_at(ari - Duration::seconds(1)).changes.is_empty());
    assert_eq!(only_change(&world.plan_at(ari)).action.verb(), "renew");
}

#[test]
fn the_plan_lists_when_each_certificate_not_renewed_now_renews() {
    let early = spec("early", &["early.example"]);
    let late = spec("late", &["late.example"]);
    let due = spec("due", &["due.example"]);
    let removed = spec("removed", &["removed.example"]);
    let mut revoking = spec("revoking", &["revoking.example"]);
    revoking.revoke = Some(RevocationReason::Superseded);
    let world = World::new()
        .state(issued(&revoking, "05", NOW - Duration::days(89)))
        .spec(revoking)
        .state(issued(&late, "01", NOW - Duration::days(1)))
        .state(issued(&early, "02", NOW - Duration::days(20)))
        .state(issued(&due, "03", NOW - Duration::days(89)))
        .state(issued(&removed, "04", NOW))
        .spec(late.clone())
        .spec(early.clone())
        .spec(due)
        .spec(spec("new", &["new.example"]));
    let plan = world.plan();
    let names: Vec<&str> = plan
        .schedule
        .iter()
        .map(|s| s.certificate.as_str())
        .collect();
    assert_eq!(
        names,
        ["early", "late"],
        "soonest first; not the renewed, new, removed or revoked"
    );
    assert!(
        plan.warnings.iter().all(|w| w.certificate == "due"),
        "{:?}",
        plan.warnings
    );
    let early_state = &world.state.certificates["early"];
    assert_eq!(
        plan.schedule[0].renew_at,
        renewal_time(&early, early_state).expect("issued")
    );
    assert_eq!(
        plan.schedule[0].not_after,
        early_state.not_after.expect("issued")
    );
    let text = render::text(&plan, TextOptions::default());
    assert!(
        text.contains(&format!(
            "Next renewals: early at {}, late at ",
            render::format_time(plan.schedule[0].renew_at)
        )),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&render::json(&plan)).expect("json");
    assert_eq!(json["schedule"][1]["certificate"], "late");
    let markdown = crate::plan::markdown::render(&plan);
    assert!(markdown.contains("Renewal schedule (2)"), "{markdown}");
    // Only the soonest five are named in text.
    let many = burst(8, NOW).plan();
    assert!(render::text(&many, TextOptions::default())
        .contains(", and 3 more (`plan --json` lists them)."),);
}

#[test]
fn max_renewals_per_run_carries_out_the_closest_to_expiry_and_lists_the_rest_with_their_turn() {
    let mut world = World::new();
    // Expiring in 5, 4, 3, 2, 1 days: e4 is the most urgent.
    for n in 0..5_i64 {
        let s = spec(&format!("e{n}"), &[&format!("e{n}.example")]);
        world = world
            .state(issued(&s, "01", NOW - Duration::days(85 + n)))
            .spec(s);
    }
    world.thresholds.max_renewals_per_run = Some(2);
    let plan = world.plan();
    let renewed: Vec<&str> = plan
        .changes
        .iter()
        .map(|c| c.certificate.as_str())
        .collect();
    assert_eq!(renewed, ["e3", "e4"]);
    let waiting: Vec<(&str, &str)> = plan
        .blocked
        .iter()
        .map(|b| (b.certificate.as_str(), b.reason.as_str()))
        .collect();
    assert_eq!(
        waiting,
        [
            ("e0", "waiting for budget (turn 3 of 3): `max_renewals_per_run = 2` per run, and more urgent orders go first"),
            ("e1", "waiting for budget (turn 2 of 3): `max_renewals_per_run = 2` per run, and more urgent orders go first"),
            ("e2", "waiting for budget (turn 2 of 3): `max_renewals_per_run = 2` per run, and more urgent orders go first"),
        ]
    );
    assert!(plan
        .blocked
        .iter()
        .all(|b| b.wanted.as_deref() == Some("renew")));
    // Exactly at the budget nothing waits.
    world.thresholds.max_renewals_per_run = Some(5);
    assert_eq!(world.plan().changes.len(), 5);
    assert!(world.plan().blocked.is_empty());
}

#[test]
fn a_ca_budget_counts_creates_and_reissues_but_not_deploys() {
    let renewing = spec("a-renew", &["a.example"]);
    let mut deploying_state = issued(&spec("b-deploy", &["b.example"]), "02", NOW);
    deploying_state.deployments.clear();
    let world = World::new()
        .state(issued(&renewing, "01", NOW - Duration::days(85)))
        .spec(renewing)
        .state(deploying_state)
        .spec(spec("b-deploy", &["b.example"]))
        .spec(spec("c-new", &["c.example"]))
        .spec(spec("d-new", &["d.example"]))
        .local_caps(|caps| caps.max_orders_per_run = Some(2));
    let plan = world.plan();
    let verbs: Vec<(&str, &str)> = plan
        .changes
        .iter()
        .map(|c| (c.certificate.as_str(), c.action.verb()))
        .collect();
    // The renewal first (it expires), then creates by name; the deploy is not an order.
    assert_eq!(
        verbs,
        [
            ("a-renew", "renew"),
            ("b-deploy", "deploy"),
            ("c-new", "create")
        ]
    );
    assert_eq!(plan.blocked.len(), 1, "{plan:#?}");
    assert_eq!(plan.blocked[0].certificate, "d-new");
    assert_eq!(
        plan.blocked[0].reason,
        "waiting for budget (turn 2 of 2): `local` takes `max_orders_per_run = 2` per run, and more urgent orders go first"
    );
    // Another CA's budget is its own.
    let world = world.local_caps(|caps| caps.max_orders_per_run = None);
    assert!(world.plan().blocked.is_empty());
}

#[test]
fn a_held_certificate_still_records_changed_settings() {
    let mut s = spec("b", &["b.example"]);
    let state = issued(&s, "01", NOW - Duration::days(85));
    s.prevent_destroy = true;
    let mut world = World::new()
        .state(issued(
            &spec("a", &["a.example"]),
            "01",
            NOW - Duration::days(86),
        ))
        .spec(spec("a", &["a.example"]))
        .state(state)
        .spec(s);
    world.thresholds.max_renewals_per_run = Some(1);
    let plan = world.plan();
    let verbs: Vec<(&str, &str)> = plan
        .changes
        .iter()
        .map(|c| (c.certificate.as_str(), c.action.verb()))
        .collect();
    assert_eq!(verbs, [("a", "renew"), ("b", "update settings")]);
}

fn backing_off(state: &mut CertificateState, attempts: u32, next_try: OffsetDateTime) {
    state.backoff = Some(crate::state::Backoff {
        attempts: std::num::NonZeroU32::new(attempts).expect("attempts"),
        last_error: Some(crate::error::ErrorClass::Transient),
        next_try,
    });
}

#[test]
fn a_failed_renewal_waits_for_its_next_try() {
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW - Duration::days(72));
    backing_off(&mut state, 3, NOW + Duration::hours(4));
    let world = World::new().state(state).spec(s);
    let plan = world.plan();
    assert!(plan.changes.is_empty(), "{plan:#?}");
    assert_eq!(
        plan.blocked[0].reason,
        "backing off after 3 failed attempts in a row (last error: transient); next try at 2026-11-23T16:00:00Z"
    );
    assert_eq!(plan.blocked[0].wanted.as_deref(), Some("renew"));
    assert!(plan.at_risk.is_empty());
    assert_eq!(
        only_change(&world.plan_at(NOW + Duration::hours(4)))
            .action
            .verb(),
        "renew"
    );
}

#[test]
fn a_certificate_at_risk_overrides_its_backoff_and_is_reported_loudly() {
    let s = spec("web", &["a.example"]);
    // 30-day margin: at risk once 15 days or less are left.
    let mut state = issued(&s, "01", NOW - Duration::days(76));
    backing_off(&mut state, 6, NOW + Duration::hours(20));
    let world = World::new().state(state.clone()).spec(s.clone());
    let plan = world.plan();
    assert_eq!(only_change(&plan).action.verb(), "renew");
    assert_eq!(plan.at_risk, ["web"]);
    assert!(
        plan.warnings[0].message.starts_with(
            "AT RISK: expires 2026-12-07T12:00:00Z (14 days left) and is still not renewed"
        ),
        "{:?}",
        plan.warnings
    );
    let text = render::text(&plan, TextOptions::default());
    assert!(text.contains("!! AT RISK OF EXPIRING: web"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&render::json(&plan)).expect("json");
    assert_eq!(json["at_risk"][0], "web");
    assert!(crate::plan::markdown::render(&plan).contains("At risk of expiring: `web`"));
    // Two days earlier, 16 days left: overdue, not yet at risk, and the backoff holds.
    let plan = world.plan_at(NOW - Duration::days(2));
    assert!(plan.at_risk.is_empty());
    assert!(plan.changes.is_empty());
    assert!(plan.warnings[0]
        .message
        .starts_with("renewal overdue: it was due from "));
    // Expired: at risk too.
    let plan = world.plan_at(NOW + Duration::days(20));
    assert_eq!(plan.at_risk, ["web"]);
    assert!(plan.warnings[0]
        .message
        .starts_with("AT RISK: expired on 2026-12-07T12:00:00Z"));
}

#[test]
fn the_late_thresholds_follow_the_window() {
    let s = spec("web", &["a.example"]);
    let state = issued(&s, "01", NOW);
    let schedule = renewal_schedule(&s, &state).expect("issued");
    assert_eq!(schedule.opens, NOW + Duration::days(60));
    assert_eq!(schedule.overdue_from, NOW + Duration::days(70));
    assert_eq!(schedule.at_risk_from, NOW + Duration::days(75));
    assert_eq!(
        schedule.risk(schedule.overdue_from - Duration::seconds(1)),
        None
    );
    assert_eq!(schedule.risk(schedule.overdue_from), Some(Risk::Overdue));
    assert_eq!(schedule.risk(schedule.at_risk_from), Some(Risk::AtRisk));
    // An ARI window: overdue after its end, at risk halfway from its start to expiry.
    let mut ari = state;
    ari.renewal_window = Some(RenewalWindow {
        serial: Serial::parse("01"),
        start: NOW + Duration::days(50),
        end: NOW + Duration::days(52),
        next_check: NOW,
    });
    let schedule = renewal_schedule(&s, &ari).expect("issued");
    assert_eq!(schedule.overdue_from, NOW + Duration::days(52));
    assert_eq!(schedule.at_risk_from, NOW + Duration::days(70));
    // A window ending after the halfway point: at risk no earlier than its end.
    ari.renewal_window.as_mut().expect("window").end = NOW + Duration::days(80);
    let schedule = renewal_schedule(&s, &ari).expect("issued");
    assert_eq!(schedule.at_risk_from, NOW + Duration::days(80));
    // ... and never later than expiry.
    ari.renewal_window.as_mut().expect("window").end = NOW + Duration::days(100);
    let schedule = renewal_schedule(&s, &ari).expect("issued");
    assert_eq!(schedule.at_risk_from, NOW + Duration::days(90));
    // Nothing issued: no schedule.
    let mut new = issued(&s, "01", NOW);
    new.status = CertificateStatus::New;
    assert_eq!(renewal_schedule(&s, &new), None);
}

#[test]
fn a_backoff_holds_orders_only() {
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW);
    state.deployments.clear();
    backing_off(&mut state, 1, NOW + Duration::hours(1));
    let plan = World::new().state(state).spec(s).plan();
    assert_eq!(only_change(&plan).action.verb(), "deploy");
}

#[test]
fn the_backoff_doubles_from_an_hour_to_a_day() {
    use crate::state::Backoff;
    let delays: Vec<i64> = (1..=8).map(|n| Backoff::delay(n).whole_hours()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 24, 24, 24]);
    let first = Backoff::after_failure(None, None, NOW);
    assert_eq!(
        (first.attempts.get(), first.next_try),
        (1, NOW + Duration::hours(1))
    );
    let second = Backoff::after_failure(Some(&first), Some(crate::error::ErrorClass::Auth), NOW);
    assert_eq!(
        (second.attempts.get(), second.next_try),
        (2, NOW + Duration::hours(2))
    );
    assert_eq!(Backoff::delay(u32::MAX).whole_hours(), 24);
}

#[test]
fn late_renewals_are_described_in_the_largest_readable_unit() {
    assert_eq!(describe_left(Duration::days(3)), "3 days");
    assert_eq!(describe_left(Duration::hours(47)), "47 hours");
    assert_eq!(describe_left(Duration::hours(1)), "1 hours");
    assert_eq!(describe_left(Duration::minutes(59)), "59 minutes");
    assert_eq!(describe_left(Duration::minutes(-5)), "0 minutes");
    let s = spec("web", &["a.example"]);
    let schedule = renewal_schedule(&s, &issued(&s, "01", NOW)).expect("issued");
    let at = schedule.not_after - Duration::hours(30);
    assert_eq!(
        risk_warning(&schedule, Risk::AtRisk, at),
        format!(
            "AT RISK: expires 2027-02-21T12:00:00Z (30 hours left) and is still not renewed: more than half of its renewal margin has passed (renewal window opened {}); a failed renewal's backoff no longer holds it back, and `apply` exits 3 until it renews",
            render::format_time(schedule.opens)
        )
    );
    assert_eq!(
        risk_warning(&schedule, Risk::Overdue, schedule.overdue_from),
        format!(
            "renewal overdue: it was due from {} and expires 2027-02-21T12:00:00Z (20 days left)",
            render::format_time(schedule.renew_at)
        )
    );
    let mut backoff = crate::state::Backoff::after_failure(None, None, NOW);
    assert_eq!(
        backoff_reason(&backoff),
        "backing off after 1 failed attempt in a row (last error: not from the CA); next try at 2026-11-23T13:00:00Z"
    );
    backoff.attempts = std::num::NonZeroU32::new(2).expect("2");
    assert!(backoff_reason(&backoff).starts_with("backing off after 2 failed attempts"));
}

#[test]
fn a_window_that_opens_at_expiry_has_no_spread() {
    let s = spec("web", &["a.example"]);
    let state = issued(&s, "01", NOW);
    let not_after = state.not_after.expect("issued");
    assert_eq!(spread(&state, not_after, not_after), not_after);
    assert_eq!(
        spread(&state, not_after + Duration::days(1), not_after),
        not_after + Duration::days(1)
    );
}

// ------------------------------------------------ mutation-testing lane: rules pinned
// Each test below pins a planner rule that `cargo mutants --file src/plan/planner.rs -- --lib`
// found (or would find) unheld by the tests above.

#[test]
fn a_revocation_the_ca_already_reports_refunds_only_a_pending_order_it_cancels() {
    // Recorded only (the CA reports it revoked): a pending renewal is still cancelled with it,
    // refunded as the CA does; with nothing pending there is nothing to refund.
    let mut s = spec("web", &["a.example"]);
    s.revoke = Some(RevocationReason::Superseded);
    let revoked_at_ca = view("order-web", OrderStatus::Revoked, Some("0a"));
    let mut renewing = issued(&s, "0a", NOW - Duration::days(1));
    renewing.intent = Some(Box::new(intent(IntentKind::Renew, Some("o-2"))));
    for refunds in [true, false] {
        let plan = World::new()
            .local_caps(|caps| caps.cancel_refunds = refunds)
            .state(renewing.clone())
            .spec(s.clone())
            .observe(
                "web",
                ObservedCertificate {
                    current: Some(revoked_at_ca.clone()),
                    intent_order: Some(Box::new(view("o-2", OrderStatus::Pending, None))),
                    ..Default::default()
                },
            )
            .plan();
        assert_eq!(
            only_change(&plan).action,
            Action::Revoke {
                serial: "0a".into(),
                reason: RevocationReason::Superseded,
                record_only: true,
                forget: false,
                cancel_order: Some("o-2".into()),
                cancel_refund: refunds,
            },
            "refunds: {refunds}"
        );
    }
    let plan = World::new()
        .local_caps(|caps| caps.cancel_refunds = true)
        .state(issued(&s, "0a", NOW - Duration::days(1)))
        .spec(s)
        .observe(
            "web",
            ObservedCertificate {
                current: Some(revoked_at_ca),
                ..Default::default()
            },
        )
        .plan();
    assert_eq!(
        only_change(&plan).action,
        Action::Revoke {
            serial: "0a".into(),
            reason: RevocationReason::Superseded,
            record_only: true,
            forget: false,
            cancel_order: None,
            cancel_refund: false,
        }
    );
}

#[test]
fn a_removed_certificate_to_revoke_with_nothing_issued_or_pending_is_forgotten() {
    // on_remove = revoke, but no certificate was ever issued and no order is pending: nothing
    // to revoke or cancel, and the record is dropped rather than kept forever.
    let mut s = spec("web", &["a.example"]);
    s.on_remove = OnRemove::Revoke;
    let mut never_issued = issued(&s, "0a", NOW);
    never_issued.status = CertificateStatus::New;
    never_issued.serial = None;
    for observed in [
        ObservedCertificate::default(),
        intent_order(view("o-2", OrderStatus::Rejected, None)),
    ] {
        let mut state = never_issued.clone();
        state.intent = observed
            .intent_order
            .as_ref()
            .map(|_| Box::new(intent(IntentKind::Create, Some("o-2"))));
        let plan = World::new().state(state).observe("web", observed).plan();
        let change = only_change(&plan);
        assert_eq!(change.action, Action::Forget);
        assert_eq!(
            change.reason,
            "removed from config; on_remove = revoke; nothing issued to revoke"
        );
        assert!(
            plan.blocked.is_empty() && plan.unchanged.is_empty(),
            "{plan:#?}"
        );
    }
}

#[test]
fn an_interrupted_reissue_on_the_same_order_is_adopted_as_that_reissue() {
    // A reissue on the same order keeps the order id state already holds: finding that order
    // by tag means the reissue reached the CA, and the reason says so.
    let s = spec("web", &["a.example"]);
    let mut state = issued(&s, "01", NOW - Duration::days(10));
    state.intent = Some(Box::new(intent(IntentKind::Reissue, None)));
    let plan = World::new()
        .state(state)
        .spec(s)
        .observe(
            "web",
            intent_order(view("order-web", OrderStatus::Issued, Some("02"))),
        )
        .plan();
    let change = only_change(&plan);
    assert_eq!(
        change.action,
        Action::Adopt {
            order_id: "order-web".into(),
            status: OrderStatus::Issued,
        }
    );
    assert_eq!(
        change.reason,
        "an interrupted reissue of order order-web (tag `tag-1`) reached `local` but state did not record it; adopting it instead of reissuing again"
    );
    assert_eq!(change.deploy, vec!["files:/srv/web".to_string()]);
}

// ---------------------------------------------------------------- plans vs certificates

/// A 1-year plan bought at NOW with a 199-day first certificate, due at two thirds.
fn on_plan() -> (CertificateSpec, CertificateState) {
    let mut s = spec("web", &["a.example"]);
    s.validity = Validity::Years(1);
    s.renew_before = RenewBefore::Percent(33);
    let mut state = issued_for(&s, "01", NOW, Duration::days(199));
    state.plan_until = Some(NOW + Duration::days(365));
    (s, state)
}

fn coverage(until: OffsetDateTime) -> Option<crate::plan::PlanCoverage> {
    Some(crate::plan::PlanCoverage {
        order_id: "order-web".into(),
        until,
    })
}

#[test]
fn a_renewal_inside_the_orders_plan_is_a_reissue_on_that_order() {
    let (s, state) = on_plan();
    let world = World::new().state(state).spec(s);
    let later = NOW + Duration::days(190);
    let change = only_change(&world.plan_at(later)).clone();
    assert_eq!(
        change.action,
        Action::Renew {
            serial: "01".into(),
            not_after: NOW + Duration::days(199),
            on_order: coverage(NOW + Duration::days(365)),
        }
    );
    assert!(
        change.reason.ends_with(
            "; the order's plan covers the next certificate: reissue on order order-web (plan valid until 2027-11-23), no new order"
        ),
        "{}",
        change.reason
    );
    assert_eq!(change.deploy, vec!["files:/srv/web".to_string()]);
    assert_eq!(
        change.action.detail(),
        "reissue on order order-web (plan valid until 2027-11-23), replaces serial 01"
    );
    let text = render::text(&world.plan_at(later), TextOptions::default());
    assert!(
        text.contains("renew web (ca `local`, reissue on order order-web (plan valid until 2027-11-23), replaces serial 01)"),
        "{text}"
    );
}

#[test]
fn a_plan_that_ends_with_the_certificate_or_before_it_orders_again() {
    let (s, mut state) = on_plan();
    let later = NOW + Duration::days(190);
    // The plan ends exactly when the certificate does (the last reissue was capped there).
    state.plan_until = state.not_after;
    let world = World::new().state(state.clone()).spec(s.clone());
    let change = only_change(&world.plan_at(later)).clone();
    assert!(
        matches!(change.action, Action::Renew { on_order: None, .. }),
        "{change:#?}"
    );
    assert!(!change.reason.contains("plan"), "{}", change.reason);
    // Early (`--replace` at day 10), with the plan ending with the certificate: a reissue
    // would give nothing more, whatever the plan's rest.
    let early = World::new()
        .state(state.clone())
        .spec(s.clone())
        .replacing("web");
    assert!(matches!(
        only_change(&early.plan_at(NOW + Duration::days(10))).action,
        Action::Renew { on_order: None, .. }
    ));
    // The plan's rest from now must be more than half the certificate's lifetime (99.5 days).
    let half = Duration::days(199) / 2;
    state.plan_until = Some(later + half);
    let world = World::new().state(state.clone()).spec(s.clone());
    assert!(matches!(
        only_change(&world.plan_at(later)).action,
        Action::Renew { on_order: None, .. }
    ));
    state.plan_until = Some(later + half + Duration::seconds(1));
    let world = World::new().state(state.clone()).spec(s.clone());
    assert_eq!(
        only_change(&world.plan_at(later)).action,
        Action::Renew {
            serial: "01".into(),
            not_after: NOW + Duration::days(199),
            on_order: coverage(later + half + Duration::seconds(1)),
        }
    );
    // Without `not_before` in state the lifetime is unknown: any rest past the certificate.
    state.not_before = None;
    state.plan_until = Some(NOW + Duration::days(199) + Duration::seconds(1));
    let world = World::new()
        .state(state.clone())
        .spec(s.clone())
        .replacing("web");
    assert!(matches!(
        only_change(&world.plan_at(later)).action,
        Action::Renew {
            on_order: Some(_),
            ..
        }
    ));
    state.not_before = Some(NOW);
    // No plan recorded or reported: a new order.
    state.plan_until = None;
    let world = World::new().state(state).spec(s);
    assert!(matches!(
        only_change(&world.plan_at(later)).action,
        Action::Renew { on_order: None, .. }
    ));
}

#[test]
fn a_plan_already_over_orders_again_even_when_longer_than_an_expired_certificate() {
    let (s, mut state) = on_plan();
    state.plan_until = Some(NOW + Duration::days(400));
    let world = World::new().state(state.clone()).spec(s.clone());
    // Expired at 199 days; the plan runs to 400: reissue.
    assert_eq!(
        only_change(&world.plan_at(NOW + Duration::days(240))).action,
        Action::Renew {
            serial: "01".into(),
            not_after: NOW + Duration::days(199),
            on_order: coverage(NOW + Duration::days(400)),
        }
    );
    // Too little of the plan left (and none at its end): a new order.
    for day in [320, 400, 410] {
        assert!(
            matches!(
                only_change(&world.plan_at(NOW + Duration::days(day))).action,
                Action::Renew { on_order: None, .. }
            ),
            "day {day}"
        );
    }
}

#[test]
fn the_plan_the_ca_reports_now_wins_over_the_one_state_recorded() {
    let (s, mut state) = on_plan();
    state.plan_until = None;
    let later = NOW + Duration::days(190);
    let mut current = view("order-web", OrderStatus::Issued, Some("01"));
    current.plan_until = Some(NOW + Duration::days(730));
    let world = World::new().state(state.clone()).spec(s.clone()).observe(
        "web",
        ObservedCertificate {
            current: Some(current.clone()),
            ..ObservedCertificate::default()
        },
    );
    assert_eq!(
        only_change(&world.plan_at(later)).action,
        Action::Renew {
            serial: "01".into(),
            not_after: NOW + Duration::days(199),
            on_order: coverage(NOW + Duration::days(730)),
        }
    );
    // A view of another order says nothing about this one's plan.
    current.order_id = "order-other".into();
    let world = World::new().state(state).spec(s).observe(
        "web",
        ObservedCertificate {
            current: Some(current),
            ..ObservedCertificate::default()
        },
    );
    assert!(matches!(
        only_change(&world.plan_at(later)).action,
        Action::Renew { on_order: None, .. }
    ));
}

#[test]
fn a_plan_is_used_only_on_the_same_account_of_a_ca_that_reissues_in_place() {
    let (s, state) = on_plan();
    let later = NOW + Duration::days(190);
    // The certificate moved to another account: a new order there.
    let mut moved = s.clone();
    moved.ca = "other".into();
    let world = World::new().state(state.clone()).spec(moved);
    assert!(!only_change(&world.plan_at(later)).reason.contains("plan"));
    // A CA that cannot reissue on the same order.
    let mut world = World::new().state(state.clone()).spec(s.clone());
    world
        .caps
        .get_mut("local")
        .expect("local")
        .reissue_same_order = false;
    assert!(matches!(
        only_change(&world.plan_at(later)).action,
        Action::Renew { on_order: None, .. }
    ));
    // No order recorded.
    let mut orphan = state;
    orphan.order_id = None;
    let world = World::new().state(orphan).spec(s);
    assert!(matches!(
        only_change(&world.plan_at(later)).action,
        Action::Renew { on_order: None, .. }
    ));
}

#[test]
fn replace_and_expiry_renewals_use_the_plan_too() {
    let (s, state) = on_plan();
    let world = World::new().state(state).spec(s).replacing("web");
    let change = only_change(&world.plan_at(NOW + Duration::days(10))).clone();
    assert_eq!(
        change.action,
        Action::Renew {
            serial: "01".into(),
            not_after: NOW + Duration::days(199),
            on_order: coverage(NOW + Duration::days(365)),
        }
    );
    assert!(change
        .reason
        .starts_with("replacement requested with `--replace`"));
}

/// `state` with receipts naming files: a `cleanup` target, one without, and a hook (no files).
fn with_receipts(mut state: CertificateState) -> CertificateState {
    let record = |paths: &[&str], cleanup: bool| {
        Box::new(DeployRecord {
            sha256_fingerprint: "ab".repeat(32),
            target_digest: String::new(),
            files: Default::default(),
            deployed_at: NOW,
            reload_error: None,
            serial: None,
            verified: None,
            verify_error: None,
            paths: paths.iter().map(PathBuf::from).collect(),
            cleanup,
            ssh: None,
        })
    };
    state.deployments = crate::small_map::SmallMap::from([
        (
            "files:/srv/web".to_string(),
            record(&["/srv/web/privkey.pem", "/srv/web/cert.pem"], true),
        ),
        (
            "pkcs12:/srv/app.p12".to_string(),
            record(&["/srv/app.p12"], false),
        ),
        ("command:true".to_string(), record(&[], true)),
    ]);
    state
}

const RECEIPT_FILES: &str = "`files:/srv/web` cleanup removes `/srv/web/privkey.pem`, `/srv/web/cert.pem`; `pkcs12:/srv/app.p12` leaves `/srv/app.p12` (no `cleanup`)";

#[test]
fn removal_lists_the_files_each_target_leaves_or_cleans_up() {
    let mut s = spec("web", &["a.example"]);
    let plan = World::new()
        .state(with_receipts(issued(&s, "01", NOW)))
        .plan();
    let change = only_change(&plan);
    assert_eq!(change.action, Action::Forget);
    assert_eq!(
        change.reason,
        format!(
            "removed from config; on_remove = forget: the CA keeps the certificate; {RECEIPT_FILES}"
        )
    );

    // Revoked then forgotten: listed too.
    s.on_remove = OnRemove::Revoke;
    let plan = World::new()
        .state(with_receipts(issued(&s, "01", NOW)))
        .plan();
    let change = only_change(&plan);
    assert!(matches!(change.action, Action::Revoke { forget: true, .. }));
    assert!(
        change.reason.ends_with(&format!("; {RECEIPT_FILES}")),
        "{}",
        change.reason
    );

    // Cancelled then forgotten: listed too.
    s.on_remove = OnRemove::Cancel;
    let mut pending = with_receipts(issued(&s, "01", NOW));
    pending.intent = Some(Box::new(intent(IntentKind::Renew, Some("o-2"))));
    let plan = World::new()
        .state(pending)
        .observe("web", intent_order(view("o-2", OrderStatus::Pending, None)))
        .plan();
    let change = only_change(&plan);
    assert!(matches!(change.action, Action::Cancel { forget: true, .. }));
    assert!(
        change.reason.ends_with(&format!("; {RECEIPT_FILES}")),
        "{}",
        change.reason
    );

    // Without receipts naming files (older state, hooks only): the reason alone.
    let mut bare = issued(&s, "01", NOW);
    bare.on_remove = OnRemove::Forget;
    let plan = World::new().state(bare).plan();
    assert_eq!(
        only_change(&plan).reason,
        "removed from config; on_remove = forget: the CA keeps the certificate"
    );
}

#[test]
fn a_revocation_that_keeps_the_certificate_lists_no_files() {
    let mut s = spec("web", &["a.example"]);
    s.revoke = Some(RevocationReason::KeyCompromise);
    let state = with_receipts(issued(&s, "01", NOW - Duration::days(1)));
    let plan = World::new().state(state).spec(s).plan();
    let change = only_change(&plan);
    assert!(matches!(
        change.action,
        Action::Revoke { forget: false, .. }
    ));
    assert!(!change.reason.contains("/srv/"), "{}", change.reason);
}
