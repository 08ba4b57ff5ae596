//! The plan: what `apply` will do and why, the pure planner that builds it, and its renderers.
//!
//! A `Plan` is plain data. The executor carries out exactly the plan it was given and never
//! re-decides. Nothing in this module performs I/O or reads the clock.

pub mod planner;
pub mod render;

use serde::Serialize;
use time::OffsetDateTime;

use crate::observed::{DcvStatus, OrderStatus};
use crate::serial::Serial;
use crate::spec::RevocationReason;

pub use planner::{plan, PlanInput};

/// Everything `apply` will do, with a reason for each step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    #[serde(with = "time::serde::rfc3339")]
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// Safety thresholds this plan exceeds: `apply` refuses it without `--force`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<Guard>,
}

/// Safety thresholds (`[defaults] max_destructive`, `max_reissue_percent`), modelled on
/// octoDNS's update/delete thresholds: a plan beyond one needs `apply --force`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// Most destructive actions (revoke, cancel) one plan may hold.
    pub max_destructive: usize,
    /// Largest share, in percent, of the certificates in state one plan may reissue.
    pub max_reissue_percent: u8,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_destructive: DEFAULT_MAX_DESTRUCTIVE,
            max_reissue_percent: DEFAULT_MAX_REISSUE_PERCENT,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
        not_after: OffsetDateTime,
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

/// One issuance field that differs between state and config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// A setting of one certificate that the plan does not follow as written, and what it does
/// instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub certificate: String,
    pub message: String,
}

/// A certificate left alone this run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    pub certificate: String,
    /// What would have been done.
    pub wanted: Option<String>,
    pub reason: String,
}
