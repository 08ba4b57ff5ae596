//! What refresh found in the world: the CA's view of each order and the deploy targets' files.
//!
//! Plain data produced by `refresh` and consumed by the planner. Performs no I/O.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

/// Everything refresh observed, keyed by certificate name (names come from state).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub certificates: BTreeMap<String, ObservedCertificate>,
}

/// The CA's and the deploy targets' view of one certificate in state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObservedCertificate {
    /// The CA's view of the current certificate (`state.order_id` / `serial`).
    pub current: Option<OrderView>,
    /// The CA's view of the in-flight order: by `intent.order_id`, or found by `intent.tag`.
    /// `None` when there is no intent or the CA holds no order for it.
    pub intent_order: Option<OrderView>,
    /// Per deploy target id: do the files on disk match what was deployed?
    pub deployments: BTreeMap<String, DeployObservation>,
    /// Refresh could not read this certificate's CA (message); the planner leaves it alone.
    pub refresh_error: Option<String>,
}

/// One order as the CA reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderView {
    pub order_id: String,
    pub status: OrderStatus,
    pub serial: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// Per-domain validation status while pending.
    pub dcv: Vec<DcvStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    /// Every domain validated; waiting for the CSR (ACME `ready`) or for issuance.
    Ready,
    Issued,
    Revoked,
    Canceled,
    Rejected,
    Expired,
    /// The CA has no such order.
    NotFound,
}

impl OrderStatus {
    /// Still in progress at the CA (waiting for validation, the CSR or issuance).
    pub fn is_in_progress(&self) -> bool {
        matches!(self, OrderStatus::Pending | OrderStatus::Ready)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Ready => "ready",
            OrderStatus::Issued => "issued",
            OrderStatus::Revoked => "revoked",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Expired => "expired",
            OrderStatus::NotFound => "not found",
        }
    }
}

/// Validation status of one domain of a pending order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DcvStatus {
    pub domain: String,
    pub method: String,
    pub status: String,
}

/// State of one deploy target's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployObservation {
    InSync,
    /// Files missing on disk.
    Missing(Vec<String>),
    /// Files whose content differs from what was deployed.
    Changed(Vec<String>),
}
