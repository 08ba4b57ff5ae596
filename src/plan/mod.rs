//! The plan: what `apply` will do and why, the pure planner that builds it, and its renderers.
//!
//! A `Plan` is plain data. The executor carries out exactly the plan it was given and never
//! re-decides. Nothing in this module performs I/O or reads the clock.

pub mod markdown;
pub mod planner;
pub mod refresh_only;
pub mod render;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::observed::{DcvStatus, OrderStatus};
use crate::serial::Serial;
use crate::spec::RevocationReason;

pub use planner::{plan, renewal_schedule, PlanInput, RenewalSchedule};

/// Which certificates one run plans (`--target`) and which it renews now with a new key
/// (`--replace`). Empty `targets`: every certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub targets: std::collections::BTreeSet<String>,
    pub replace: std::collections::BTreeSet<String>,
}

/// A `--target` or `--replace` name that names no certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`--{flag} {name}` names no certificate {scope}")]
pub struct UnknownName {
    pub flag: &'static str,
    pub name: String,
    scope: &'static str,
    /// "did you mean `x`?" or the names there are.
    pub hint: Option<String>,
}

impl Selection {
    /// Whether `name` is planned this run.
    pub fn includes(&self, name: &str) -> bool {
        self.targets.is_empty() || self.targets.contains(name)
    }

    /// Every `--target` names a certificate of the configuration or of state, every
    /// `--replace` one of the configuration (a removed certificate cannot get a new key).
    pub fn check<'a>(
        &self,
        configured: impl Iterator<Item = &'a String> + Clone,
        recorded: impl Iterator<Item = &'a String>,
    ) -> Result<(), UnknownName> {
        let configured: Vec<&str> = configured.map(String::as_str).collect();
        let mut known: Vec<&str> = configured
            .iter()
            .copied()
            .chain(recorded.map(String::as_str))
            .collect();
        known.sort_unstable();
        known.dedup();
        let unknown = |flag, name: &String, scope, candidates: &[&str]| UnknownName {
            flag,
            name: name.clone(),
            scope,
            hint: crate::config::suggestion(name, candidates),
        };
        if let Some(name) = self.targets.iter().find(|n| !known.contains(&n.as_str())) {
            return Err(unknown(
                "target",
                name,
                "in the configuration or in state",
                &known,
            ));
        }
        if let Some(name) = self
            .replace
            .iter()
            .find(|n| !configured.contains(&n.as_str()))
        {
            return Err(unknown(
                "replace",
                name,
                "in the configuration",
                &configured,
            ));
        }
        if let Some(name) = self.replace.iter().find(|n| !self.includes(n)) {
            return Err(UnknownName {
                flag: "replace",
                name: name.clone(),
                scope: "among the `--target` names",
                hint: Some(format!("add `--target {name}`, or leave out `--target`")),
            });
        }
        Ok(())
    }
}

/// Everything `apply` will do, with a reason for each step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub now: OffsetDateTime,
    /// One entry per certificate that needs work, sorted by certificate name.
    pub changes: Vec<Change>,
    /// Certificates certform will not touch this run, and why (guardrails, refresh errors,
    /// rate limits).
    pub blocked: Vec<Blocked>,
    /// Certificates that are up to date.
    pub unchanged: Vec<String>,
    /// Settings certform had to override to stay safe (e.g. a `renew_before` longer than the
    /// lifetime the CA actually issued), sorted by certificate name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// Safety thresholds this plan exceeds: `apply` refuses it without `--force`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<Guard>,
    /// When each issued certificate this plan does not renew will renew, soonest first: a
    /// point spread over the first third of its renewal window (or the CA's ARI window).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<Scheduled>,
    /// Certificates whose renewal is so late that they may expire (more than half of the
    /// renewal margin has passed): reported loudly, and `apply` exits 3 unless they renew.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_risk: Vec<String>,
}

/// When one certificate renews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Scheduled {
    pub certificate: String,
    /// The first run at or after this instant renews it.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub renew_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub not_after: OffsetDateTime,
}

/// Safety thresholds (`[defaults] max_destructive`, `max_reissue_percent`), modelled on
/// octoDNS's update/delete thresholds: a plan beyond one needs `apply --force`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// Most destructive actions (revoke, cancel) one plan may hold.
    pub max_destructive: usize,
    /// Largest share, in percent, of the certificates in state one plan may reissue.
    pub max_reissue_percent: u8,
    /// Most renewals one plan carries out (`[defaults] max_renewals_per_run`); `None`: no
    /// limit. The rest wait for a later run, closest to expiry first.
    pub max_renewals_per_run: Option<usize>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_destructive: DEFAULT_MAX_DESTRUCTIVE,
            max_reissue_percent: DEFAULT_MAX_REISSUE_PERCENT,
            max_renewals_per_run: None,
        }
    }
}

/// Default of `max_destructive`.
pub const DEFAULT_MAX_DESTRUCTIVE: usize = 5;
/// Default of `max_reissue_percent`.
pub const DEFAULT_MAX_REISSUE_PERCENT: u8 = 50;
/// The percentage rule applies only once state holds at least this many certificates: with
/// fewer, a single reissue is already a large share (one of three is 33 %), and the rule would
/// fire on ordinary edits. octoDNS skips its percentage thresholds below ten records likewise.
pub const REISSUE_PERCENT_MIN_CERTIFICATES: usize = 10;

/// A safety threshold the plan exceeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Guard {
    /// The `[defaults]` setting that sets the threshold.
    pub setting: String,
    pub message: String,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Counts per verb, for the summary line.
    pub fn summary(&self) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for change in &self.changes {
            let verb = change.action.verb();
            match counts.iter_mut().find(|(v, _)| *v == verb) {
                Some((_, n)) => *n += 1,
                None => counts.push((verb, 1)),
            }
        }
        counts.sort_by_key(|(verb, _)| Action::verb_order(verb));
        counts
    }
}

/// The work planned for one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    pub certificate: String,
    /// The CA account that will be contacted (the config's CA; for removed certificates the
    /// one recorded in state).
    pub ca: String,
    pub action: Action,
    /// Why, in words a reviewer can check.
    pub reason: String,
    /// Deploy target ids written after this action (every target of the certificate after a
    /// new certificate; the drifted ones for `Deploy`).
    pub deploy: Vec<String>,
    /// Deploy target ids in state that are no longer configured: their records are dropped
    /// (files on disk are left alone).
    pub undeploy: Vec<String>,
}

/// One planned step. Destructive ones (`Revoke`, `Cancel`) are marked loudly by renderers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Order a certificate that state does not have.
    Create {
        common_name: String,
        sans: Vec<String>,
        key: String,
        validity: String,
    },
    /// An order certificate placed but never recorded (the run was interrupted) exists at the
    /// CA: take it over instead of ordering again.
    Adopt {
        order_id: String,
        status: OrderStatus,
    },
    /// An order is pending at the CA: check it again.
    Wait {
        order_id: String,
        dcv: Vec<DcvStatus>,
    },
    /// The CA issued a certificate certform has not fetched yet.
    Fetch { order_id: String },
    /// Write the current certificate to deploy targets (listed in `Change::deploy`).
    Deploy,
    /// Replace a certificate that is due or expired.
    Renew {
        /// The serial being replaced, for display (empty when state holds none).
        serial: String,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "String")]
        not_after: OffsetDateTime,
        /// The current order's plan still covers the next certificate: it is a reissue on
        /// that order (no new order, nothing paid). `None`: a new order.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_order: Option<PlanCoverage>,
    },
    /// The spec changed in a way the issued certificate does not reflect.
    Reissue {
        /// Reissued on the same order (the CA supports it) or as a new order.
        same_order: bool,
        changes: Vec<FieldChange>,
    },
    /// Revoke the current certificate (irreversible).
    Revoke {
        serial: Serial,
        reason: RevocationReason,
        /// The CA already reports it revoked: only state is updated.
        record_only: bool,
        /// Drop the certificate from state afterwards (it was removed from config).
        forget: bool,
        /// A pending order (e.g. a renewal) of the same certificate, cancelled with it.
        cancel_order: Option<String>,
        /// Cancelling `cancel_order` gives its price back (`Capabilities::cancel_refunds`).
        cancel_refund: bool,
    },
    /// Cancel a pending order.
    Cancel {
        order_id: String,
        forget: bool,
        /// The CA gives the order's price back (`Capabilities::cancel_refunds`).
        refund: bool,
    },
    /// Drop from state only; the CA keeps the certificate.
    Forget,
    /// Record changed lifecycle settings (`on_remove`, `prevent_destroy`, `revoke_reason`) in
    /// state; no CA call. Removal later acts on what state records.
    UpdateSettings { changes: Vec<FieldChange> },
}

impl Action {
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Adopt { .. } => "adopt",
            Action::Wait { .. } => "wait",
            Action::Fetch { .. } => "fetch",
            Action::Deploy => "deploy",
            Action::Renew { .. } => "renew",
            Action::Reissue { .. } => "reissue",
            Action::Revoke { .. } => "revoke",
            Action::Cancel { .. } => "cancel",
            Action::Forget => "forget",
            Action::UpdateSettings { .. } => "update settings",
        }
    }

    fn verb_order(verb: &str) -> usize {
        const ORDER: [&str; 11] = [
            "create",
            "adopt",
            "wait",
            "fetch",
            "renew",
            "reissue",
            "deploy",
            "update settings",
            "revoke",
            "cancel",
            "forget",
        ];
        ORDER.iter().position(|v| *v == verb).unwrap_or(ORDER.len())
    }

    /// The action's particulars in one line (order, serial, revocation reason, ...), empty
    /// when the verb says it all. Renderers that know nothing else of an action (the markdown
    /// table) show this, so a new action renders without changing them.
    pub fn detail(&self) -> String {
        match self {
            Action::Create {
                key,
                validity,
                sans,
                ..
            } => format!("{} name(s), key {key}, validity {validity}", sans.len()),
            Action::Adopt { order_id, status } => {
                format!("order {order_id} ({})", status.as_str())
            }
            Action::Wait { order_id, .. } | Action::Fetch { order_id } => {
                format!("order {order_id}")
            }
            Action::Renew {
                serial, on_order, ..
            } => {
                let mut detail = on_order
                    .as_ref()
                    .map(PlanCoverage::describe)
                    .unwrap_or_default();
                if !serial.is_empty() {
                    if !detail.is_empty() {
                        detail.push_str(", ");
                    }
                    detail.push_str(&format!("replaces serial {serial}"));
                }
                detail
            }
            Action::Reissue { same_order, .. } => if *same_order {
                "same order"
            } else {
                "new order"
            }
            .to_string(),
            Action::Revoke {
                serial,
                reason,
                record_only,
                forget,
                cancel_order,
                ..
            } => {
                let mut detail = format!("serial {serial}, reason {}", reason.as_str());
                if *record_only {
                    detail.push_str(", already revoked at the CA (state only)");
                }
                if let Some(order_id) = cancel_order {
                    detail.push_str(&format!(", then cancel order {order_id}"));
                }
                if *forget {
                    detail.push_str(", then forget");
                }
                detail
            }
            Action::Cancel {
                order_id,
                forget,
                refund,
            } => format!(
                "order {order_id}, refund {}{}",
                if *refund { "yes" } else { "no" },
                if *forget { ", then forget" } else { "" }
            ),
            _ => String::new(),
        }
    }

    /// Irreversible at the CA.
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Action::Revoke {
                record_only: false,
                ..
            } | Action::Cancel { .. }
        )
    }

    /// Whether the action places a new order (or a reissue) at the CA: what run budgets count
    /// and what backs off after a failure.
    pub fn places_order(&self) -> bool {
        matches!(
            self,
            Action::Create { .. } | Action::Renew { .. } | Action::Reissue { .. }
        )
    }

    /// Whether the action talks to the CA (and so is held back while rate limited).
    pub fn contacts_ca(&self) -> bool {
        !matches!(
            self,
            Action::Deploy
                | Action::Forget
                | Action::UpdateSettings { .. }
                | Action::Revoke {
                    record_only: true,
                    ..
                }
        )
    }
}

/// An order whose plan covers more certificates than the one it holds (DigiCert's multi-year
/// plans, `order_valid_till`): the next certificate is a reissue on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlanCoverage {
    pub order_id: String,
    /// The end of the order's plan.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub until: OffsetDateTime,
}

impl PlanCoverage {
    /// `reissue on order N (plan valid until D)`.
    pub fn describe(&self) -> String {
        format!(
            "reissue on order {} (plan valid until {})",
            self.order_id,
            self.until.date()
        )
    }
}

/// One issuance field that differs between state and config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldChange {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// A setting of one certificate that the plan does not follow as written, and what it does
/// instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Warning {
    pub certificate: String,
    pub message: String,
}

/// A certificate left alone this run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Blocked {
    pub certificate: String,
    /// What would have been done.
    pub wanted: Option<String>,
    pub reason: String,
}

#[cfg(test)]
mod selection_tests {
    use super::Selection;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn targets_must_name_a_configured_or_recorded_certificate() {
        let configured = names(&["api", "web"]);
        let recorded = names(&["old"]);
        let selection = |targets: &[&str], replace: &[&str]| Selection {
            targets: targets.iter().map(|n| n.to_string()).collect(),
            replace: replace.iter().map(|n| n.to_string()).collect(),
        };
        let check = |s: &Selection| s.check(configured.iter(), recorded.iter());
        assert!(check(&selection(&["web", "old"], &["web"])).is_ok());
        assert!(check(&selection(&[], &["api"])).is_ok());
        let error = check(&selection(&["wbe"], &[])).expect_err("unknown");
        assert_eq!(
            error.to_string(),
            "`--target wbe` names no certificate in the configuration or in state"
        );
        assert_eq!(error.hint.as_deref(), Some("did you mean `web`?"));
        let error = check(&selection(&[], &["old"])).expect_err("removed");
        assert_eq!(
            error.to_string(),
            "`--replace old` names no certificate in the configuration"
        );
        let error = check(&selection(&["api"], &["web"])).expect_err("outside the targets");
        assert_eq!(
            error.to_string(),
            "`--replace web` names no certificate among the `--target` names"
        );
        assert!(check(&selection(&["web"], &["web"])).is_ok());
        assert!(selection(&[], &[]).includes("anything"));
        assert!(selection(&["web"], &[]).includes("web"));
        assert!(!selection(&["web"], &[]).includes("api"));
    }
}
