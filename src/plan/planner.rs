//! The planner: a pure function from (config, state, observed world, now) to a `Plan`.
//!
//! No I/O, no clock, no environment: everything it needs is in `PlanInput`. The same input
//! always gives the same plan, and it only ever revokes or cancels what state records.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use super::{
    Action, Blocked, Change, FieldChange, Guard, Plan, PlanCoverage, Thresholds, Warning,
    REISSUE_PERCENT_MIN_CERTIFICATES,
};
use crate::capabilities::Capabilities;
use crate::observed::{
    ChainDrift, DeployObservation, Observed, ObservedCertificate, OrderStatus, OrderView,
    RenewalWindow,
};
use crate::spec::{CertificateSpec, OnRemove, RenewBefore, RevocationReason};
use crate::state::{
    CertificateState, CertificateStatus, Intent, IntentKind, LifecycleSettings, State,
};

/// Everything the planner looks at.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub certificates: &'a BTreeMap<String, CertificateSpec>,
    pub state: &'a State,
    pub observed: &'a Observed,
    /// Capabilities of each configured CA account, by name.
    pub capabilities: &'a BTreeMap<String, Capabilities>,
    /// Certificates to renew now with a new key (`--replace`), whatever their validity.
    pub replace: &'a BTreeSet<String>,
    pub now: OffsetDateTime,
    /// Limits beyond which the plan needs `apply --force`.
    pub thresholds: Thresholds,
}

enum Decision {
    Change(Change),
    Blocked {
        wanted: Option<String>,
        reason: String,
    },
    Unchanged,
}

/// Build the plan.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let names: BTreeSet<&String> = input
        .certificates
        .keys()
        .chain(input.state.certificates.keys())
        .collect();
    let empty = ObservedCertificate::default();
    let mut plan = Plan {
        now: input.now,
        changes: Vec::new(),
        blocked: Vec::new(),
        unchanged: Vec::new(),
        warnings: Vec::new(),
        guards: Vec::new(),
        schedule: Vec::new(),
        at_risk: Vec::new(),
    };
    // Each configured certificate's renewal schedule, worked out once for its risk and for
    // the plan's schedule.
    let mut schedules = Vec::new();
    for name in names {
        let spec = input.certificates.get(name);
        let state = input.state.certificates.get(name);
        let observed = input.observed.certificates.get(name).unwrap_or(&empty);
        let decision = match (spec, state) {
            (Some(spec), None) if spec.revoke.is_some() => Decision::Blocked {
                wanted: None,
                reason: "`revoke = true`, and state holds no certificate for it: nothing to revoke"
                    .to_string(),
            },
            (Some(spec), None) => Decision::Change(create(spec, "not in state".to_string())),
            (_, Some(state)) if observed.refresh_error.is_some() => Decision::Blocked {
                wanted: None,
                reason: format!(
                    "could not read `{}`: {}",
                    state.ca,
                    observed.refresh_error.as_deref().unwrap_or_default()
                ),
            },
            (Some(spec), Some(state)) => plan_configured(spec, state, observed, input),
            (None, Some(state)) => match twin(input.state, state) {
                Some(other) => Decision::Blocked {
                    wanted: None,
                    reason: format!(
                        "state also records this certificate (id `{}`) as `{other}`: a `certform state mv` was interrupted; run it again to finish (`certform state mv {name} {other}`)",
                        state.id
                    ),
                },
                None if state.prevent_destroy => Decision::Blocked {
                    wanted: None,
                    reason: format!(
                        "protected: removed from config, but `prevent_destroy` was set when it was last applied; kept in state as a tombstone and nothing is done at `{}` (run `certform state rm {}` to drop it)",
                        state.ca, state.name
                    ),
                },
                None => plan_removed(state, observed, input),
            },
            (None, None) => Decision::Unchanged,
        };
        if let Some(message) = spec
            .zip(state)
            .and_then(|(spec, state)| renewal_warning(spec, state, observed))
        {
            plan.warnings.push(Warning {
                certificate: name.clone(),
                message,
            });
        }
        let schedule = spec
            .zip(state)
            .filter(|(spec, _)| spec.revoke.is_none())
            .and_then(|(spec, state)| schedule_of(spec, state, renewal_window(state, observed)));
        if let Some(schedule) = schedule {
            schedules.push((name, schedule));
        }
        let risk = schedule.and_then(|schedule| Some((schedule, schedule.risk(input.now)?)));
        if let Some((schedule, risk)) = risk {
            plan.warnings.push(Warning {
                certificate: name.clone(),
                message: risk_warning(&schedule, risk, input.now),
            });
            if risk == Risk::AtRisk {
                plan.at_risk.push(name.clone());
            }
        }
        let at_risk = matches!(risk, Some((_, Risk::AtRisk)));
        if let (Some(spec), Decision::Change(change)) = (spec, &decision) {
            if let Some(message) = validity_warning(spec, change, input) {
                plan.warnings.push(Warning {
                    certificate: name.clone(),
                    message,
                });
            }
        }
        // Changed lifecycle settings are recorded even when the certificate is otherwise up to
        // date or held back (no CA call), so that a later removal acts on them.
        let settings = spec
            .zip(state)
            .and_then(|(spec, state)| update_settings(spec, state));
        let record_settings = |plan: &mut Plan| {
            if let Some(settings) = settings.clone() {
                plan.changes.push(settings);
            }
        };
        match decision {
            Decision::Unchanged if settings.is_some() => record_settings(&mut plan),
            Decision::Change(change) => {
                let retry_after = state.and_then(|s| s.retry_after);
                let backoff = state
                    .and_then(|s| s.backoff.as_ref())
                    .filter(|b| b.next_try > input.now && change.action.places_order());
                match retry_after {
                    Some(until) if until > input.now && change.action.contacts_ca() => {
                        plan.blocked.push(Blocked {
                            certificate: name.clone(),
                            wanted: Some(change.action.verb().to_string()),
                            reason: format!(
                                "rate limited by `{}` until {}",
                                change.ca,
                                super::render::format_time(until)
                            ),
                        });
                        record_settings(&mut plan);
                    }
                    // A certificate at risk of expiring is tried again whatever the backoff.
                    _ if backoff.is_some() && !at_risk => {
                        let backoff = backoff.map(backoff_reason).unwrap_or_default();
                        plan.blocked.push(Blocked {
                            certificate: name.clone(),
                            wanted: Some(change.action.verb().to_string()),
                            reason: backoff,
                        });
                        record_settings(&mut plan);
                    }
                    _ => plan.changes.push(change),
                }
            }
            Decision::Blocked { wanted, reason } => {
                plan.blocked.push(Blocked {
                    certificate: name.clone(),
                    wanted,
                    reason,
                });
                record_settings(&mut plan);
            }
            Decision::Unchanged => plan.unchanged.push(name.clone()),
        }
    }
    hold_over_budget(&mut plan, input);
    plan.schedule = scheduled(&plan, schedules);
    plan.guards = guards(
        &plan.changes,
        input.state.certificates.len(),
        input.thresholds,
    );
    plan
}

/// Another entry of state with the same id as `state` (a rename killed half way): the
/// certificate is one, so the removed-looking name is never revoked or cancelled.
fn twin<'a>(all: &'a State, state: &CertificateState) -> Option<&'a String> {
    all.certificates
        .iter()
        .find(|(name, other)| **name != state.name && other.id == state.id)
        .map(|(name, _)| name)
}

/// The safety thresholds `changes` exceeds, given `existing` certificates in state.
/// Renewals do not count: they are due by time, and holding them back lets certificates expire.
fn guards(changes: &[Change], existing: usize, thresholds: Thresholds) -> Vec<Guard> {
    let mut guards = Vec::new();
    let destructive = changes.iter().filter(|c| c.action.is_destructive()).count();
    if destructive > thresholds.max_destructive {
        guards.push(Guard {
            setting: "max_destructive".to_string(),
            message: format!(
                "{destructive} destructive actions (revoke, cancel) exceed `max_destructive = {}`",
                thresholds.max_destructive
            ),
        });
    }
    let reissues = changes
        .iter()
        .filter(|c| matches!(c.action, Action::Reissue { .. }))
        .count();
    let limit = usize::from(thresholds.max_reissue_percent);
    if existing >= REISSUE_PERCENT_MIN_CERTIFICATES && reissues * 100 > limit * existing {
        guards.push(Guard {
            setting: "max_reissue_percent".to_string(),
            message: format!(
                "{reissues} of {existing} certificates reissued ({}%) exceed `max_reissue_percent = {limit}`",
                reissues * 100 / existing
            ),
        });
    }
    guards
}

fn plan_configured(
    spec: &CertificateSpec,
    state: &CertificateState,
    observed: &ObservedCertificate,
    input: &PlanInput<'_>,
) -> Decision {
    if let Some(reason) = spec.revoke {
        return plan_revoke(
            state,
            observed,
            input,
            reason,
            false,
            spec.prevent_destroy,
            "config sets `revoke = true`",
        );
    }
    if let Some(intent) = &state.intent {
        return plan_intent(spec, state, intent, observed, input);
    }
    match state.status {
        CertificateStatus::New => Decision::Change(recreate(
            spec,
            state,
            "no certificate yet: the last order did not complete".to_string(),
        )),
        CertificateStatus::Canceled => Decision::Change(recreate(
            spec,
            state,
            "the previous order was canceled".to_string(),
        )),
        CertificateStatus::Revoked => Decision::Change(recreate(
            spec,
            state,
            "the certificate is revoked and config no longer asks for revocation".to_string(),
        )),
        CertificateStatus::Issued => plan_issued(spec, state, observed, input),
    }
}

fn plan_issued(
    spec: &CertificateSpec,
    state: &CertificateState,
    observed: &ObservedCertificate,
    input: &PlanInput<'_>,
) -> Decision {
    if let Some(current) = &observed.current {
        match current.status {
            OrderStatus::Revoked
            | OrderStatus::Canceled
            | OrderStatus::Rejected
            | OrderStatus::NotFound => {
                return Decision::Change(recreate(
                    spec,
                    state,
                    format!(
                        "drift: `{}` reports order {} as {}; ordering a replacement",
                        state.ca,
                        current.order_id,
                        current.status.as_str()
                    ),
                ));
            }
            OrderStatus::Issued if current.serial.is_some() && current.serial != state.serial => {
                return Decision::Change(Change {
                    deploy: target_ids(spec),
                    ..change(
                        spec,
                        Action::Fetch {
                            order_id: current.order_id.clone(),
                        },
                        format!(
                            "drift: `{}` holds serial {} but state has {}",
                            state.ca,
                            current.serial.as_deref().unwrap_or("?"),
                            state.serial.as_deref().unwrap_or("none")
                        ),
                    )
                });
            }
            _ => {}
        }
    }
    let on_order = || plan_coverage(spec, state, observed, input);
    if input.replace.contains(&spec.name) {
        let lost = observed
            .lost_key
            .as_ref()
            .map(|path| format!(" (the key file `{path}` is missing)"))
            .unwrap_or_default();
        return Decision::Change(renew_on(
            spec,
            state,
            state.not_after.unwrap_or(input.now),
            format!(
                "replacement requested with `--replace`{lost}: a new certificate with a new key"
            ),
            on_order(),
        ));
    }
    let (Some(not_before), Some(not_after)) = (state.not_before, state.not_after) else {
        return Decision::Change(recreate(
            spec,
            state,
            "state records no validity for the certificate".to_string(),
        ));
    };
    let changes = field_changes(&state.spec_fields, spec);
    let fields_changed = state.spec_digest != spec.issuance_digest();
    let changed_note = if fields_changed {
        format!(
            " (the new certificate also applies: {})",
            describe_fields(&changes)
        )
    } else {
        String::new()
    };
    if not_after <= input.now {
        return Decision::Change(renew_on(
            spec,
            state,
            not_after,
            format!(
                "expired on {}{changed_note}",
                super::render::format_time(not_after)
            ),
            on_order(),
        ));
    }
    if let Some(window) = renewal_window(state, observed) {
        let at = window.renew_at(&state.id);
        if input.now >= at {
            return Decision::Change(renew_on(
                spec,
                state,
                not_after,
                format!(
                    "ARI window: `{}` suggests renewing between {} and {}; this certificate's point is {}{changed_note}",
                    state.ca,
                    super::render::format_time(window.start),
                    super::render::format_time(window.end),
                    super::render::format_time(at)
                ),
                on_order(),
            ));
        }
    } else {
        let point = renewal_point(spec.renew_before, not_before, not_after);
        let at = spread(state, point.at, not_after);
        if input.now >= at {
            let days_left = (not_after - input.now).whole_days();
            let clamped = if point.clamped {
                " (clamped to two thirds of the issued lifetime)"
            } else {
                ""
            };
            return Decision::Change(renew_on(
                spec,
                state,
                not_after,
                format!(
                    "inside the renewal window: expires {} ({days_left} days left), renew_before {}{clamped}; this certificate's point in the window is {}{changed_note}",
                    super::render::format_time(not_after),
                    spec.renew_before.describe(),
                    super::render::format_time(at)
                ),
                on_order(),
            ));
        }
    }
    if fields_changed {
        let capabilities = input.capabilities.get(&spec.ca);
        let same_order =
            state.ca == spec.ca && capabilities.is_some_and(|caps| caps.reissue_same_order);
        let reason = if same_order {
            format!(
                "{} changed; reissued on the same order",
                describe_fields(&changes)
            )
        } else if state.ca != spec.ca {
            format!(
                "the CA changed from `{}` to `{}`: a new order at `{}` (the old certificate is left as it is)",
                state.ca, spec.ca, spec.ca
            )
        } else {
            format!(
                "{} changed; `{}` cannot reissue on the same order, so a new order",
                describe_fields(&changes),
                spec.ca
            )
        };
        return Decision::Change(Change {
            deploy: target_ids(spec),
            ..change(
                spec,
                Action::Reissue {
                    same_order,
                    changes,
                },
                reason,
            )
        });
    }
    if let (Some(path), true) = (&observed.lost_key, spec.deploy.is_empty()) {
        return Decision::Blocked {
            wanted: Some("replace".to_string()),
            reason: lost_key_reason(&spec.name, path),
        };
    }
    if let Some(drift) = &observed.chain {
        return plan_chain_repair(spec, state, observed, drift);
    }
    plan_deploy(spec, state, observed)
}

/// The chain file in state is gone, corrupt, holds a key or another certificate: fetch the
/// issued certificate again from the CA (which rewrites the file), with any deploy drift.
fn plan_chain_repair(
    spec: &CertificateSpec,
    state: &CertificateState,
    observed: &ObservedCertificate,
    drift: &ChainDrift,
) -> Decision {
    let what = format!(
        "drift: the chain file `certificates/{}.pem` in state {}",
        state.name,
        drift.describe()
    );
    let Some(order_id) = &state.order_id else {
        return Decision::Change(recreate(
            spec,
            state,
            format!("{what}, and state records no order to fetch it from"),
        ));
    };
    let mut reason = format!(
        "{what}; fetching order {order_id} again from `{}`",
        state.ca
    );
    let (deploy, undeploy) = match plan_deploy(spec, state, observed) {
        Decision::Change(deploy) => {
            reason = format!("{reason}; {}", deploy.reason);
            (deploy.deploy, deploy.undeploy)
        }
        _ => (Vec::new(), Vec::new()),
    };
    Decision::Change(Change {
        deploy,
        undeploy,
        ..change(
            spec,
            Action::Fetch {
                order_id: order_id.clone(),
            },
            reason,
        )
    })
}

/// The CA's renewal window (ACME ARI) for the current certificate: the fresh one refresh
/// observed, else the one kept in state; only a window for the serial state holds counts.
fn renewal_window<'a>(
    state: &'a CertificateState,
    observed: &'a ObservedCertificate,
) -> Option<&'a RenewalWindow> {
    observed
        .renewal_window
        .as_deref()
        .or(state.renewal_window.as_ref())
        .filter(|w| Some(&w.serial) == state.serial.as_ref())
}

/// When the planner renews the issued certificate of `state` under `spec` (see
/// `RenewalSchedule`). `None` when state records no validity. For `status`, which reads state
/// only; `plan` decides with the window refresh observed.
pub fn renewal_time(spec: &CertificateSpec, state: &CertificateState) -> Option<OffsetDateTime> {
    renewal_schedule(spec, state).map(|schedule| schedule.renew_at)
}

/// The renewal schedule of the issued certificate of `state` under `spec`, from state alone
/// (the ARI window state keeps for its serial, if any): what `status` shows.
pub fn renewal_schedule(
    spec: &CertificateSpec,
    state: &CertificateState,
) -> Option<RenewalSchedule> {
    let window = state
        .renewal_window
        .as_ref()
        .filter(|w| Some(&w.serial) == state.serial.as_ref());
    schedule_of(spec, state, window)
}

/// When one issued certificate renews, and from when a missing renewal is late.
///
/// Without an ARI window the renewal window opens at the renewal point (`renew_before`, as
/// clamped) and the certificate renews at a point spread over the window's first third: a
/// fraction derived from its id and serial, so certificates issued together renew on
/// different days, the plan is the same on every run, and a renewed certificate (new serial)
/// gets a new point. An ARI window from the CA takes precedence: its point, its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalSchedule {
    /// The first run at or after this instant renews the certificate.
    pub renew_at: OffsetDateTime,
    /// Where the renewal window opens (the renewal point, or the ARI window's start).
    pub opens: OffsetDateTime,
    /// Past this, the renewal is overdue: the spread part of the window (or the ARI window)
    /// is over and the certificate is still not renewed.
    pub overdue_from: OffsetDateTime,
    /// Past this, the certificate is at risk: half of the renewal margin (from `opens` to
    /// expiry) has gone by without a renewal.
    pub at_risk_from: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// How late a renewal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Risk {
    /// Past the spread part of the window: still time, but it should have renewed.
    Overdue,
    /// Half of the renewal margin is gone (or the certificate expired): reported loudly, and
    /// a failed renewal's backoff no longer holds it back.
    AtRisk,
}

impl RenewalSchedule {
    /// How late the renewal is at `now`; `None` when it is not late.
    pub fn risk(&self, now: OffsetDateTime) -> Option<Risk> {
        if now >= self.at_risk_from {
            Some(Risk::AtRisk)
        } else if now >= self.overdue_from {
            Some(Risk::Overdue)
        } else {
            None
        }
    }
}

/// The share of the renewal window (from its opening to expiry) over which renewals are
/// spread: the first third.
const SPREAD_DIVISOR: i32 = 3;

/// A certificate's point in the spread part of the window that opens at `opens`.
fn spread(
    state: &CertificateState,
    opens: OffsetDateTime,
    not_after: OffsetDateTime,
) -> OffsetDateTime {
    let span = if not_after > opens {
        (not_after - opens) / SPREAD_DIVISOR
    } else {
        time::Duration::ZERO
    };
    let seed = format!(
        "{}/{}",
        state.id,
        state.serial.as_deref().unwrap_or_default()
    );
    let at = crate::observed::point_in(opens, opens + span, &seed);
    // Whole seconds, as plans and state show times.
    at.replace_nanosecond(0).unwrap_or(at).max(opens)
}

fn schedule_of(
    spec: &CertificateSpec,
    state: &CertificateState,
    window: Option<&RenewalWindow>,
) -> Option<RenewalSchedule> {
    if state.status != CertificateStatus::Issued {
        return None;
    }
    let (not_before, not_after) = (state.not_before?, state.not_after?);
    let (renew_at, opens, overdue_from) = match window {
        Some(window) => (window.renew_at(&state.id), window.start, window.end),
        None => {
            let opens = renewal_point(spec.renew_before, not_before, not_after).at;
            let end = if not_after > opens {
                opens + (not_after - opens) / SPREAD_DIVISOR
            } else {
                opens
            };
            (spread(state, opens, not_after), opens, end)
        }
    };
    let halfway = if not_after > opens {
        not_after - (not_after - opens) / 2
    } else {
        not_after
    };
    Some(RenewalSchedule {
        renew_at,
        opens,
        overdue_from,
        at_risk_from: halfway.max(overdue_from).min(not_after),
        not_after,
    })
}

/// The plan's warning for a certificate whose renewal is late.
fn risk_warning(schedule: &RenewalSchedule, risk: Risk, now: OffsetDateTime) -> String {
    let left = describe_left(schedule.not_after - now);
    match risk {
        Risk::AtRisk if now >= schedule.not_after => format!(
            "AT RISK: expired on {} and not renewed; `apply` exits 3 until it renews",
            super::render::format_time(schedule.not_after)
        ),
        Risk::AtRisk => format!(
            "AT RISK: expires {} ({left} left) and is still not renewed: more than half of its renewal margin has passed (renewal window opened {}); a failed renewal's backoff no longer holds it back, and `apply` exits 3 until it renews",
            super::render::format_time(schedule.not_after),
            super::render::format_time(schedule.opens)
        ),
        Risk::Overdue => format!(
            "renewal overdue: it was due from {} and expires {} ({left} left)",
            super::render::format_time(schedule.renew_at),
            super::render::format_time(schedule.not_after)
        ),
    }
}

/// Time left, readable: `3 days`, `20 hours`.
fn describe_left(left: time::Duration) -> String {
    if left.whole_days() >= 2 {
        format!("{} days", left.whole_days())
    } else if left.whole_hours() >= 1 {
        format!("{} hours", left.whole_hours())
    } else {
        format!("{} minutes", left.whole_minutes().max(0))
    }
}

/// Why an order waits after failures in a row.
fn backoff_reason(backoff: &crate::state::Backoff) -> String {
    format!(
        "backing off after {} failed attempt{} in a row (last error: {}); next try at {}",
        backoff.attempts,
        if backoff.attempts.get() == 1 { "" } else { "s" },
        backoff
            .last_error
            .map(|class| class.as_str())
            .unwrap_or("not from the CA"),
        super::render::format_time(backoff.next_try)
    )
}

/// The schedule of every issued certificate in config that this plan does not renew,
/// soonest first.
fn scheduled(plan: &Plan, schedules: Vec<(&String, RenewalSchedule)>) -> Vec<super::Scheduled> {
    let renewing: BTreeSet<&String> = plan
        .changes
        .iter()
        .filter(|c| c.action.places_order())
        .map(|c| &c.certificate)
        .collect();
    let mut schedule: Vec<super::Scheduled> = schedules
        .into_iter()
        .filter(|(name, _)| !renewing.contains(name))
        .map(|(name, schedule)| super::Scheduled {
            certificate: name.clone(),
            renew_at: schedule.renew_at,
            not_after: schedule.not_after,
        })
        .collect();
    schedule.sort_by(|a, b| (a.renew_at, &a.certificate).cmp(&(b.renew_at, &b.certificate)));
    schedule
}

/// Hold back the orders beyond the run's budgets (`max_renewals_per_run`, each CA's
/// `max_orders_per_run`): the most urgent (closest to expiry; creates last) are carried out,
/// the rest are listed as blocked with the turn (1 = this run) at which they would run if
/// nothing else became due.
fn hold_over_budget(plan: &mut Plan, input: &PlanInput<'_>) {
    let renewal_limit = input.thresholds.max_renewals_per_run;
    let ca_limit = |ca: &str| {
        input
            .capabilities
            .get(ca)
            .and_then(|caps| caps.max_orders_per_run)
            .and_then(|n| usize::try_from(n).ok())
    };
    let urgency = |change: &Change| match &change.action {
        Action::Renew { not_after, .. } => Some(*not_after),
        _ => input
            .state
            .certificates
            .get(&change.certificate)
            .and_then(|s| s.not_after),
    };
    let mut pending: Vec<usize> = (0..plan.changes.len())
        .filter(|&i| plan.changes[i].action.places_order())
        .collect();
    pending.sort_by_key(|&i| {
        let at = urgency(&plan.changes[i]);
        (at.is_none(), at, i)
    });
    let mut turn_of: BTreeMap<usize, usize> = BTreeMap::new();
    let mut turn = 1;
    while !pending.is_empty() {
        let mut renewals = 0;
        let mut orders: BTreeMap<&str, usize> = BTreeMap::new();
        let mut later = Vec::new();
        for &i in &pending {
            let change = &plan.changes[i];
            let is_renewal = matches!(change.action, Action::Renew { .. });
            let ca_used = orders.get(change.ca.as_str()).copied().unwrap_or(0);
            let fits = (!is_renewal || renewal_limit.is_none_or(|limit| renewals < limit))
                && ca_limit(&change.ca).is_none_or(|limit| ca_used < limit);
            if fits {
                renewals += usize::from(is_renewal);
                orders.insert(change.ca.as_str(), ca_used + 1);
                turn_of.insert(i, turn);
            } else {
                later.push(i);
            }
        }
        pending = later;
        turn += 1;
    }
    if turn_of.values().all(|&turn| turn == 1) {
        return;
    }
    let last_turn = turn_of.values().copied().max().unwrap_or(1);
    let changes = std::mem::take(&mut plan.changes);
    for (i, change) in changes.into_iter().enumerate() {
        let turn = turn_of.get(&i).copied().unwrap_or(1);
        if turn == 1 {
            plan.changes.push(change);
            continue;
        }
        let mut limits = Vec::new();
        if matches!(change.action, Action::Renew { .. }) {
            if let Some(limit) = renewal_limit {
                limits.push(format!("`max_renewals_per_run = {limit}`"));
            }
        }
        if let Some(limit) = ca_limit(&change.ca) {
            limits.push(format!(
                "`{}` takes `max_orders_per_run = {limit}`",
                change.ca
            ));
        }
        plan.blocked.push(Blocked {
            certificate: change.certificate.clone(),
            wanted: Some(change.action.verb().to_string()),
            reason: format!(
                "waiting for budget (turn {turn} of {last_turn}): {} per run, and more urgent orders go first",
                limits.join("; ")
            ),
        });
        let spec = input.certificates.get(&change.certificate);
        let state = input.state.certificates.get(&change.certificate);
        if let Some(settings) = spec
            .zip(state)
            .and_then(|(spec, state)| update_settings(spec, state))
        {
            plan.changes.push(settings);
        }
    }
    plan.changes
        .sort_by(|a, b| a.certificate.cmp(&b.certificate));
    plan.blocked
        .sort_by(|a, b| a.certificate.cmp(&b.certificate));
}

/// When an issued certificate is due under `renew_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RenewalPoint {
    at: OffsetDateTime,
    /// The configured rule would renew within the first tenth of the lifetime actually issued
    /// (or before issuance, when `renew_before` is not shorter than that lifetime): `at` is two
    /// thirds of the lifetime instead, so no run right after issuance renews again.
    clamped: bool,
}

/// The renewal point of a certificate valid from `not_before` to `not_after`: the issued
/// validity, not the configured one, because CAs may issue less than was asked (DigiCert's
/// 199-day cap, an ACME CA's own lifetime, a CA policy).
fn renewal_point(
    renew_before: RenewBefore,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> RenewalPoint {
    let lifetime = not_after - not_before;
    let configured = renew_before.due_at(not_before, not_after);
    if configured - not_before >= lifetime / 10 {
        RenewalPoint {
            at: configured,
            clamped: false,
        }
    } else {
        RenewalPoint {
            at: not_before + lifetime * 2 / 3,
            clamped: true,
        }
    }
}

/// The plan's warning when `renew_before` does not fit the lifetime the CA issued.
fn renewal_warning(
    spec: &CertificateSpec,
    state: &CertificateState,
    observed: &ObservedCertificate,
) -> Option<String> {
    let (Some(not_before), Some(not_after)) = (state.not_before, state.not_after) else {
        return None;
    };
    if spec.revoke.is_some()
        || state.status != CertificateStatus::Issued
        || renewal_window(state, observed).is_some()
    {
        return None;
    }
    let point = renewal_point(spec.renew_before, not_before, not_after);
    if !point.clamped {
        return None;
    }
    let problem = if spec.renew_before.due_at(not_before, not_after) <= not_before {
        "is not shorter than"
    } else {
        "would renew within the first tenth of"
    };
    Some(format!(
        "`renew_before` ({}) {problem} the {} lifetime `{}` issued (serial {}); renewing at two thirds of it, on {}, instead of on every run (hint: make `renew_before` shorter than the issued lifetime, or a share such as `33%`)",
        spec.renew_before.describe(),
        describe_lifetime(not_after - not_before),
        state.ca,
        state.serial.as_deref().unwrap_or("none"),
        super::render::format_time(point.at)
    ))
}

/// The plan's warning when it orders a certificate whose `validity` the CA will not follow
/// (`Capabilities::honours_validity`): the plan shows the validity asked for, the CA decides.
fn validity_warning(
    spec: &CertificateSpec,
    change: &Change,
    input: &PlanInput<'_>,
) -> Option<String> {
    if !matches!(change.action, Action::Create { .. }) {
        return None;
    }
    let capabilities = input.capabilities.get(&spec.ca)?;
    if capabilities.honours_validity {
        return None;
    }
    Some(format!(
        "`validity` ({}) is not sent to `{}`: the CA decides the lifetime, and the certificate may live longer or shorter (hint: a `renew_before` share such as `33%` follows the lifetime issued)",
        spec.validity.describe(),
        spec.ca
    ))
}

/// A lifetime in the largest unit that keeps it readable: `199 days`, `36 hours`, `50 minutes`.
fn describe_lifetime(lifetime: time::Duration) -> String {
    if lifetime.whole_days() >= 2 {
        format!("{} days", lifetime.whole_days())
    } else if lifetime.whole_hours() >= 2 {
        format!("{} hours", lifetime.whole_hours())
    } else {
        format!("{} minutes", lifetime.whole_minutes())
    }
}

fn plan_deploy(
    spec: &CertificateSpec,
    state: &CertificateState,
    observed: &ObservedCertificate,
) -> Decision {
    let mut targets = Vec::new();
    let mut reasons = Vec::new();
    let ids = target_ids(spec);
    for (target, id) in spec.deploy.iter().zip(&ids) {
        let interrupted = match observed.deployments.get(id) {
            Some(DeployObservation::Interrupted(files)) => Some(format!(
                "interrupted deploy: {} not all switched in; apply finishes it first",
                files.join(", ")
            )),
            _ => None,
        };
        let why = interrupted.or_else(|| match state.deployments.get(id) {
            None => Some("new deploy target".to_string()),
            Some(record)
                if Some(&record.sha256_fingerprint) != state.sha256_fingerprint.as_ref() =>
            {
                Some("holds an older certificate".to_string())
            }
            Some(record) if record.target_digest != target.digest() => {
                Some("target settings changed".to_string())
            }
            Some(record) if record.reload_error.is_some() => Some(format!(
                "reload failed last run: {}",
                record.reload_error.as_deref().unwrap_or_default()
            )),
            Some(record) if record.verify_error.is_some() => Some(format!(
                "endpoint check failed last run: {}",
                record.verify_error.as_deref().unwrap_or_default()
            )),
            Some(_) => match observed.deployments.get(id) {
                Some(DeployObservation::Missing(files)) => {
                    Some(format!("drift: missing on disk: {}", files.join(", ")))
                }
                Some(DeployObservation::Changed(files)) => {
                    Some(format!("drift: changed on disk: {}", files.join(", ")))
                }
                Some(DeployObservation::Drift(what)) => Some(format!("drift: {what}")),
                Some(DeployObservation::InSync | DeployObservation::Interrupted(_)) | None => None,
            },
        });
        if let Some(why) = why {
            reasons.push(format!("`{id}`: {why}"));
            targets.push(id.clone());
        }
    }
    if let Some(problem) = &observed.key_problem {
        // The deploy will refuse, loudly; the plan says why beforehand.
        reasons.push(problem.clone());
        if let Some(path) = &observed.lost_key {
            reasons.push(lost_key_reason(&spec.name, path));
        }
        targets = ids.clone();
    }
    let undeploy: Vec<String> = state
        .deployments
        .keys()
        .filter(|id| !ids.contains(*id))
        .cloned()
        .collect();
    for id in &undeploy {
        reasons.push(format!(
            "`{id}`: no longer configured; its record is dropped"
        ));
    }
    if targets.is_empty() && undeploy.is_empty() {
        return Decision::Unchanged;
    }
    Decision::Change(Change {
        deploy: targets,
        undeploy,
        ..change(spec, Action::Deploy, reasons.join("; "))
    })
}

fn plan_intent(
    spec: &CertificateSpec,
    state: &CertificateState,
    intent: &Intent,
    observed: &ObservedCertificate,
    input: &PlanInput<'_>,
) -> Decision {
    match (&intent.order_id, &observed.intent_order) {
        (None, Some(found)) => Decision::Change(Change {
            deploy: if found.status == OrderStatus::Issued {
                target_ids(spec)
            } else {
                Vec::new()
            },
            ..change(
                spec,
                Action::Adopt {
                    order_id: found.order_id.clone(),
                    status: found.status,
                },
                adopt_reason(state, intent, found),
            )
        }),
        (None, None)
            if input
                .capabilities
                .get(&intent.ca)
                .is_some_and(|caps| !caps.duplicates.finds_by_tag()) =>
        {
            Decision::Blocked {
                wanted: Some(intent.kind.as_str().to_string()),
                reason: format!(
                    "an interrupted {} may have placed an order at `{}` (started {}, tag `{}`), and `{}` cannot find orders by certform's tag: ordering again could buy the certificate twice. Check the account's orders at the CA first",
                    intent.kind.as_str(),
                    intent.ca,
                    super::render::format_time(intent.started),
                    intent.tag,
                    intent.ca
                ),
            }
        }
        (None, None) => resume(
            spec,
            state,
            intent,
            input,
            format!(
                "resuming the interrupted {}: no order reached `{}`",
                intent.kind.as_str(),
                state.ca
            ),
        ),
        (Some(order_id), Some(view)) if view.status.is_in_progress() => Decision::Change(change(
            spec,
            Action::Wait {
                order_id: order_id.clone(),
                dcv: view.dcv.clone(),
            },
            format!(
                "order {order_id} is {} at `{}`",
                view.status.as_str(),
                state.ca
            ),
        )),
        (Some(order_id), Some(view)) if view.status == OrderStatus::Issued => {
            Decision::Change(Change {
                deploy: target_ids(spec),
                ..change(
                    spec,
                    Action::Fetch {
                        order_id: order_id.clone(),
                    },
                    format!("order {order_id} is issued and not yet fetched"),
                )
            })
        }
        (Some(order_id), view) => {
            let status = view
                .as_ref()
                .map(|v| v.status)
                .unwrap_or(OrderStatus::NotFound);
            resume(
                spec,
                state,
                intent,
                input,
                format!(
                    "order {order_id} is {} at `{}`; placing a new order",
                    status.as_str(),
                    state.ca
                ),
            )
        }
    }
}

/// Why an order the CA holds for an interrupted intent is adopted.
fn adopt_reason(state: &CertificateState, intent: &Intent, found: &OrderView) -> String {
    if state.order_id.as_deref() == Some(found.order_id.as_str()) {
        return format!(
            "an interrupted reissue of order {} (tag `{}`) reached `{}` but state did not record it; adopting it instead of reissuing again",
            found.order_id, intent.tag, intent.ca
        );
    }
    format!(
        "an interrupted {} placed order {} (tag `{}`) that state did not record; adopting it instead of ordering again",
        intent.kind.as_str(),
        found.order_id,
        intent.tag
    )
}

/// Redo the work of an intent whose order never completed.
fn resume(
    spec: &CertificateSpec,
    state: &CertificateState,
    intent: &Intent,
    input: &PlanInput<'_>,
    reason: String,
) -> Decision {
    match (intent.kind, state.status, state.not_after) {
        (IntentKind::Renew, CertificateStatus::Issued, Some(not_after)) => {
            Decision::Change(renew(spec, state, not_after, reason))
        }
        (IntentKind::Reissue, CertificateStatus::Issued, _) => {
            let same_order = state.ca == spec.ca
                && input
                    .capabilities
                    .get(&spec.ca)
                    .is_some_and(|caps| caps.reissue_same_order);
            Decision::Change(Change {
                deploy: target_ids(spec),
                ..change(
                    spec,
                    Action::Reissue {
                        same_order,
                        changes: field_changes(&state.spec_fields, spec),
                    },
                    reason,
                )
            })
        }
        _ => Decision::Change(recreate(spec, state, reason)),
    }
}

/// A certificate whose lifecycle settings differ from what state recorded: record them (no CA
/// call), so that removal acts on the settings it last had in config. Planned when nothing
/// else is, or when the certificate is held back (blocked, rate limited); any other action
/// records them itself.
fn update_settings(spec: &CertificateSpec, state: &CertificateState) -> Option<Change> {
    let recorded = state.settings().fields();
    let wanted = LifecycleSettings::of_spec(spec).fields();
    let changes: Vec<FieldChange> = recorded
        .into_iter()
        .zip(wanted)
        .filter(|((_, old), (_, new))| old != new)
        .map(|((field, old), (_, new))| FieldChange {
            field: field.to_string(),
            old: Some(old),
            new: Some(new),
        })
        .collect();
    if changes.is_empty() {
        return None;
    }
    let reason = format!(
        "{} changed; recorded in state (no CA call)",
        describe_fields(&changes)
    );
    Some(change(spec, Action::UpdateSettings { changes }, reason))
}

fn plan_removed(
    state: &CertificateState,
    observed: &ObservedCertificate,
    input: &PlanInput<'_>,
) -> Decision {
    match state.on_remove {
        OnRemove::Forget => Decision::Change(removed_change(
            state,
            Action::Forget,
            "removed from config; on_remove = forget: the CA keeps the certificate".to_string(),
        )),
        OnRemove::Revoke => plan_revoke(
            state,
            observed,
            input,
            state
                .revoke_reason
                .unwrap_or(RevocationReason::CessationOfOperation),
            true,
            // `prevent_destroy` keeps a removed certificate as a tombstone before this point.
            false,
            "removed from config; on_remove = revoke",
        ),
        OnRemove::Cancel => match pending_order(state, observed) {
            Some(order_id) => Decision::Change(removed_change(
                state,
                Action::Cancel {
                    order_id: order_id.clone(),
                    forget: true,
                    refund: cancel_refunds(state, input),
                },
                format!("removed from config; on_remove = cancel: order {order_id} is pending"),
            )),
            None => Decision::Change(removed_change(
                state,
                Action::Forget,
                "removed from config; on_remove = cancel, but no order is pending".to_string(),
            )),
        },
    }
}

fn plan_revoke(
    state: &CertificateState,
    observed: &ObservedCertificate,
    input: &PlanInput<'_>,
    reason: RevocationReason,
    forget: bool,
    prevent_destroy: bool,
    why: &str,
) -> Decision {
    let forget_change = |note: &str| {
        Decision::Change(removed_change(
            state,
            Action::Forget,
            format!("{why}; {note}"),
        ))
    };
    match (state.status, &state.serial) {
        (CertificateStatus::Issued, Some(serial)) => {
            let cancel_order = pending_order(state, observed).cloned();
            let at_ca = observed.current.as_ref().map(|view| view.status);
            if at_ca == Some(OrderStatus::Revoked) {
                return Decision::Change(removed_change(
                    state,
                    Action::Revoke {
                        serial: serial.clone(),
                        reason,
                        record_only: true,
                        forget,
                        cancel_refund: cancel_order.is_some() && cancel_refunds(state, input),
                        cancel_order,
                    },
                    format!("{why}; `{}` already reports it revoked", state.ca),
                ));
            }
            if prevent_destroy {
                return Decision::Blocked {
                    wanted: Some("revoke".to_string()),
                    reason: format!(
                        "{why}, but `prevent_destroy` is set: revocation is refused (remove `prevent_destroy` to allow it)"
                    ),
                };
            }
            Decision::Change(removed_change(
                state,
                Action::Revoke {
                    serial: serial.clone(),
                    reason,
                    record_only: false,
                    forget,
                    cancel_refund: cancel_order.is_some() && cancel_refunds(state, input),
                    cancel_order,
                },
                format!("{why}: serial {serial} (irreversible)"),
            ))
        }
        _ => match pending_order(state, observed) {
            Some(order_id) if !prevent_destroy => Decision::Change(removed_change(
                state,
                Action::Cancel {
                    order_id: order_id.clone(),
                    forget,
                    refund: cancel_refunds(state, input),
                },
                format!("{why}; nothing is issued yet, so pending order {order_id} is cancelled"),
            )),
            _ if forget => forget_change("nothing issued to revoke"),
            _ => Decision::Unchanged,
        },
    }
}

/// Whether cancelling the in-flight order of `state` gives its price back: the order is at the
/// intent's CA.
fn cancel_refunds(state: &CertificateState, input: &PlanInput<'_>) -> bool {
    let ca = state
        .intent
        .as_ref()
        .map(|intent| intent.ca.as_str())
        .filter(|ca| !ca.is_empty())
        .unwrap_or(&state.ca);
    input
        .capabilities
        .get(ca)
        .is_some_and(|caps| caps.cancel_refunds)
}

/// The order id of the intent's order when the CA reports it pending.
fn pending_order<'a>(
    state: &'a CertificateState,
    observed: &ObservedCertificate,
) -> Option<&'a String> {
    let order_id = state.intent.as_ref()?.order_id.as_ref()?;
    let pending = observed
        .intent_order
        .as_deref()
        .is_some_and(|view: &OrderView| view.status.is_in_progress());
    pending.then_some(order_id)
}

/// Why a certificate whose key file is gone needs `--replace`.
fn lost_key_reason(name: &str, path: &str) -> String {
    format!(
        "the private key `{path}` is missing: the certificate cannot be deployed again; `certform apply --replace {name}` orders a new certificate with a new key"
    )
}

fn change(spec: &CertificateSpec, action: Action, reason: String) -> Change {
    Change {
        certificate: spec.name.clone(),
        ca: spec.ca.clone(),
        action,
        reason,
        deploy: Vec::new(),
        undeploy: Vec::new(),
    }
}

fn removed_change(state: &CertificateState, action: Action, reason: String) -> Change {
    let forgets = match &action {
        Action::Forget => true,
        Action::Revoke { forget, .. } | Action::Cancel { forget, .. } => *forget,
        _ => false,
    };
    let reason = match removal_files(state) {
        Some(files) if forgets => format!("{reason}; {files}"),
        _ => reason,
    };
    Change {
        certificate: state.name.clone(),
        ca: state.ca.clone(),
        action,
        reason,
        deploy: Vec::new(),
        undeploy: Vec::new(),
    }
}

/// What forgetting `state` does to the files its deploy targets hold: `cleanup = true`
/// targets have them removed (key first), the others leave them. `None` when no receipt
/// names a file.
fn removal_files(state: &CertificateState) -> Option<String> {
    let notes: Vec<String> = state
        .deployments
        .iter()
        .filter(|(_, record)| !record.paths.is_empty())
        .map(|(id, record)| {
            let paths: Vec<String> = record
                .paths
                .iter()
                .map(|path| format!("`{}`", path.display()))
                .collect();
            if record.cleanup {
                format!("`{id}` cleanup removes {}", paths.join(", "))
            } else {
                format!("`{id}` leaves {} (no `cleanup`)", paths.join(", "))
            }
        })
        .collect();
    (!notes.is_empty()).then(|| notes.join("; "))
}

fn target_ids(spec: &CertificateSpec) -> Vec<String> {
    spec.deploy.iter().map(|target| target.id()).collect()
}

fn create(spec: &CertificateSpec, reason: String) -> Change {
    Change {
        deploy: target_ids(spec),
        ..change(
            spec,
            Action::Create {
                common_name: spec.common_name.to_string(),
                sans: spec.sans.iter().map(|n| n.to_string()).collect(),
                key: spec.key.label(),
                validity: spec.validity.describe(),
            },
            reason,
        )
    }
}

/// A new order for a certificate state already knows (drift, cancelled, revoked, failed).
fn recreate(spec: &CertificateSpec, state: &CertificateState, reason: String) -> Change {
    let _ = state;
    create(spec, reason)
}

fn renew(
    spec: &CertificateSpec,
    state: &CertificateState,
    not_after: OffsetDateTime,
    reason: String,
) -> Change {
    renew_on(spec, state, not_after, reason, None)
}

/// A renewal; with `on_order`, a reissue on the order whose plan covers it (the reason says
/// so).
fn renew_on(
    spec: &CertificateSpec,
    state: &CertificateState,
    not_after: OffsetDateTime,
    reason: String,
    on_order: Option<PlanCoverage>,
) -> Change {
    let reason = match &on_order {
        Some(coverage) => format!(
            "{reason}; the order's plan covers the next certificate: {}, no new order",
            coverage.describe()
        ),
        None => reason,
    };
    Change {
        deploy: target_ids(spec),
        ..change(
            spec,
            Action::Renew {
                serial: state
                    .serial
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                not_after,
                on_order,
            },
            reason,
        )
    }
}

/// Whether the next certificate of `state` is a reissue on its order rather than a new
/// order: the CA reported (now, or when state last read the order in detail) that the
/// order's plan runs past the current certificate's expiry and, from `now`, for more than
/// half the current certificate's lifetime (so the reissue is a certificate worth having),
/// the certificate stays at the same CA account, and that CA reissues on the same order.
/// Otherwise a new order (a renewal of the old one).
fn plan_coverage(
    spec: &CertificateSpec,
    state: &CertificateState,
    observed: &ObservedCertificate,
    input: &PlanInput<'_>,
) -> Option<PlanCoverage> {
    if state.ca != spec.ca
        || !input
            .capabilities
            .get(&spec.ca)
            .is_some_and(|caps| caps.reissue_same_order)
    {
        return None;
    }
    let order_id = state.order_id.as_ref()?;
    let not_after = state.not_after?;
    let until = observed
        .current
        .as_ref()
        .filter(|view| &view.order_id == order_id)
        .and_then(|view| view.plan_until)
        .or(state.plan_until)?;
    // The reissue would end with the plan at the latest: worth it only when that leaves more
    // than half a certificate's lifetime (an order of `days = 90` renewed at day 60 is not).
    let lifetime = state
        .not_before
        .map_or(time::Duration::ZERO, |from| not_after - from);
    (until > not_after && until - input.now > lifetime / 2).then(|| PlanCoverage {
        order_id: order_id.clone(),
        until,
    })
}

/// Issuance fields that differ between what state recorded and the spec.
pub fn field_changes(
    recorded: &crate::small_map::SmallMap<String, String>,
    spec: &CertificateSpec,
) -> Vec<FieldChange> {
    let wanted: BTreeMap<String, String> = spec.issuance_fields().into_iter().collect();
    let keys: BTreeSet<&String> = recorded.keys().chain(wanted.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let old = recorded.get(key);
            let new = wanted.get(key);
            (old != new).then(|| FieldChange {
                field: key.clone(),
                old: old.cloned(),
                new: new.cloned(),
            })
        })
        .collect()
}

fn describe_fields(changes: &[FieldChange]) -> String {
    if changes.is_empty() {
        return "the issuance settings".to_string();
    }
    changes
        .iter()
        .map(|c| format!("`{}`", c.field))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "planner_tests.rs"]
mod tests;
