//! What refresh found in the world: the CA's view of each order and the deploy targets' files.
//!
//! Plain data produced by `refresh` and consumed by the planner. Performs no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::serial::Serial;

/// Everything refresh observed, keyed by certificate name (names come from state).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub certificates: BTreeMap<String, ObservedCertificate>,
    /// The inventory listings refresh made, by CA account (only accounts that were due and
    /// can list). Not part of a saved plan's fingerprint: no action depends on it.
    #[serde(skip)]
    pub ca_inventory: BTreeMap<String, crate::ca_inventory::Listing>,
}

/// The CA's and the deploy targets' view of one certificate in state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObservedCertificate {
    /// The CA's view of the current certificate (`state.order_id` / `serial`).
    pub current: Option<OrderView>,
    /// The CA's view of the in-flight order: by `intent.order_id`, or found by `intent.tag`.
    /// `None` when there is no intent or the CA holds no order for it. Boxed: most
    /// certificates have none, and every observation would carry its room (~100 bytes).
    pub intent_order: Option<Box<OrderView>>,
    /// Per deploy target id: do the files on disk match what was deployed?
    pub deployments: crate::small_map::SmallMap<String, DeployObservation>,
    /// Refresh could not read this certificate's CA (message); the planner leaves it alone.
    pub refresh_error: Option<String>,
    /// The CA's suggested renewal window (ACME ARI) for the current certificate (boxed, as
    /// `intent_order`).
    pub renewal_window: Option<Box<RenewalWindow>>,
    /// Why the key in keys_dir cannot be deployed with the current certificate (missing, or
    /// not the certificate's public key); `None` when it matches or nothing is deployed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_problem: Option<String>,
    /// The key file of the current certificate is gone from keys_dir (its path): the
    /// certificate cannot be deployed again; `--replace` orders one with a new key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_key: Option<String>,
    /// What is wrong with the certificate's public chain file in state; `None` when it holds
    /// the issued certificate (or the certificate is not issued).
    pub chain: Option<ChainDrift>,
}

/// Why the public chain `certificates/<name>.pem` in state does not hold the issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainDrift {
    /// The file is gone.
    Missing,
    /// The file holds a private key (its content is never shown).
    PrivateKey,
    /// The file is not a PEM certificate chain, or could not be read (why).
    Unreadable(String),
    /// The file's leaf is another certificate than the one state records.
    OtherCertificate { serial: Serial },
}

impl ChainDrift {
    /// A phrase completing "the chain file in state ...".
    pub fn describe(&self) -> String {
        match self {
            ChainDrift::Missing => "is missing".to_string(),
            ChainDrift::PrivateKey => "holds a private key".to_string(),
            ChainDrift::Unreadable(why) => format!("is not a certificate chain: {why}"),
            ChainDrift::OtherCertificate { serial } => {
                format!("holds another certificate (serial {serial})")
            }
        }
    }
}

/// A CA's suggested renewal window for one certificate (RFC 9773).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalWindow {
    /// Serial of the certificate the window is for.
    pub serial: Serial,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    /// Do not ask the CA again before this instant (its `Retry-After`).
    #[serde(with = "time::serde::rfc3339")]
    pub next_check: OffsetDateTime,
}

impl RenewalWindow {
    /// The instant inside the window at which this certificate renews: a fixed point derived
    /// from `seed` (the certificate's stable id), so plans are deterministic and a fleet does
    /// not renew all at once.
    pub fn renew_at(&self, seed: &str) -> OffsetDateTime {
        point_in(self.start, self.end, &format!("{seed}/{}", self.serial))
    }
}

/// A fixed instant in `[start, end)` derived from `seed` (SHA-256), spread evenly over the
/// interval; `start` when it is empty.
pub fn point_in(start: OffsetDateTime, end: OffsetDateTime, seed: &str) -> OffsetDateTime {
    if end <= start {
        return start;
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(seed);
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    let fraction = (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    start + (end - start) * fraction
}

/// One order as the CA reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderView {
    pub order_id: String,
    pub status: OrderStatus,
    pub serial: Option<Serial>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// Per-domain validation status while pending.
    pub dcv: Vec<DcvStatus>,
    /// The end of what the order paid for, when it covers more than one certificate
    /// (DigiCert's `order_valid_till` of a multi-year plan): until then the next certificate is
    /// a reissue on this order, not a new order. `None`: the order covers one certificate, or
    /// the CA did not say (a list read; state keeps the last one seen).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub plan_until: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// A run was killed while switching these files in; apply finishes the switch first.
    Interrupted(Vec<String>),
    /// Drift a target describes itself: its `verify` endpoint serves another certificate,
    /// e.g. ``endpoint `web:443` still serves old serial 0a1b``, or why the files cannot be checked.
    Drift(String),
}
