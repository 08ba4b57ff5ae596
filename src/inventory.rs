//! The inventory: one row per certificate (configured, recorded in state, or both) saying what
//! it is in words a person understands, for `certform status`, and its renderings as a table,
//! JSON and a Prometheus textfile.
//!
//! Pure: a function of the configuration, the state and `now`. It performs no I/O, reads no
//! clock and contacts no CA (it shows what state recorded at the last run).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::ca_inventory::CaInventory;
use crate::plan::render::format_time;
use crate::spec::{CertificateSpec, DcvMethod, OnRemove};
use crate::state::{CertificateState, CertificateStatus, IntentKind, State};

/// Where a certificate stands, as `status --status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// In config, never ordered.
    NotCreated,
    /// An order is being placed: a run stopped before the CA answered (the next apply adopts
    /// the order or places it).
    Ordering,
    /// An order is pending at the CA (domain validation or issuance).
    Pending,
    /// An order waits for someone to approve an email sent by the CA.
    AwaitingApproval,
    /// The CA asked certform not to retry before a time.
    RateLimited,
    /// Issued and not yet due for renewal.
    Valid,
    /// Issued and inside its renewal window: the next apply renews it.
    RenewalDue,
    /// Issued, and the spread part of its renewal window is over without a renewal (a failed
    /// renewal backing off, a budget, a run that did not happen).
    RenewalOverdue,
    /// Issued, and more than half of its renewal margin passed without a renewal: it may
    /// expire. `apply` exits 3 until it renews.
    AtRisk,
    /// Issued and past its `not_after`.
    Expired,
    /// The current certificate was revoked.
    Revoked,
    /// The order was canceled.
    Canceled,
    /// In state but no longer in config: the next apply acts on its `on_remove`.
    Removed,
    /// Not a certificate's status: selects the live orders at a CA that no state entry knows
    /// (the "Unmanaged at CA" sections, from the last inventory listing).
    Unmanaged,
    /// Not a certificate's status: selects the live orders at a CA that repeat a managed
    /// certificate's names (the "Duplicates at CA" sections).
    Duplicate,
}

impl Status {
    /// Every status a certificate can have, in declaration order (not the inventory's
    /// `Unmanaged` and `Duplicate`, which select orders at a CA).
    pub const ALL: [Status; 13] = [
        Status::NotCreated,
        Status::Ordering,
        Status::Pending,
        Status::AwaitingApproval,
        Status::RateLimited,
        Status::Valid,
        Status::RenewalDue,
        Status::RenewalOverdue,
        Status::AtRisk,
        Status::Expired,
        Status::Revoked,
        Status::Canceled,
        Status::Removed,
    ];

    /// The name used by `--status`, JSON and metrics labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::NotCreated => "not-created",
            Status::Ordering => "ordering",
            Status::Pending => "pending",
            Status::AwaitingApproval => "awaiting-approval",
            Status::RateLimited => "rate-limited",
            Status::Valid => "valid",
            Status::RenewalDue => "renewal-due",
            Status::RenewalOverdue => "renewal-overdue",
            Status::AtRisk => "at-risk",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
            Status::Canceled => "canceled",
            Status::Removed => "removed",
            Status::Unmanaged => "unmanaged",
            Status::Duplicate => "duplicate",
        }
    }
}

/// One certificate of the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub name: String,
    /// The CA of the current certificate (state), else the configured one.
    pub ca: String,
    pub status: Status,
    /// The status in words: `awaiting email approval (order 1234)`, `rate limited until ...`.
    pub description: String,
    /// The order in flight, else the order of the current certificate.
    pub order_id: Option<String>,
    pub serial: Option<crate::serial::Serial>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// The current certificate is issued, unexpired and not revoked (cert-manager's `Ready`),
    /// whatever is in flight: a valid certificate whose renewal waits or is rate limited is
    /// still ready.
    pub ready: bool,
    /// Whole days until `not_after`; negative once expired.
    pub days_left: Option<i64>,
    /// When the planner renews the current certificate.
    #[serde(with = "time::serde::rfc3339::option")]
    pub renewal_at: Option<OffsetDateTime>,
    /// The latest deploy of the current certificate to any target.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_deploy: Option<OffsetDateTime>,
    pub in_config: bool,
}

/// Which rows to keep; an empty filter keeps every row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Keep rows with any of these statuses (all when empty).
    pub statuses: Vec<Status>,
    /// Keep rows of this CA account.
    pub ca: Option<String>,
    /// Keep rows whose certificate expires within this span of `now` (expired ones included).
    pub expiring_within: Option<Duration>,
}

impl Filter {
    pub fn matches(&self, row: &Row, now: OffsetDateTime) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&row.status))
            && self.ca.as_ref().is_none_or(|ca| *ca == row.ca)
            && self.expiring_within.is_none_or(|within| {
                row.not_after
                    .is_some_and(|not_after| not_after <= now + within)
            })
    }
}

impl Filter {
    /// Whether the inventory's `kind` section (`Unmanaged` or `Duplicate`) of CA account `ca`
    /// is shown: when `--status` is not given or names it, `--ca` is not given or names `ca`,
    /// and no `--expiring-within` asks about managed certificates' expiry.
    /// `--status` names only the inventory's `unmanaged`/`duplicate`: no certificate rows.
    pub fn only_inventory(&self) -> bool {
        !self.statuses.is_empty()
            && self
                .statuses
                .iter()
                .all(|status| matches!(status, Status::Unmanaged | Status::Duplicate))
    }

    pub fn shows_inventory(&self, kind: Status, ca: &str) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&kind))
            && self.ca.as_ref().is_none_or(|wanted| wanted == ca)
            && self.expiring_within.is_none()
    }
}

/// One CA account's last inventory listing as `status` shows it, with which of its two
/// sections the filter keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryView {
    pub record: CaInventory,
    pub unmanaged: bool,
    pub duplicate: bool,
}

/// The last inventory listing of each configured CA account that has one, with the sections
/// `filter` keeps (accounts with neither are left out; a listing that found nothing stays,
/// so "listed, nothing found" shows in JSON and metrics).
///
/// Orders state has adopted since the listing are left out (see
/// `CaInventory::without_adopted`).
pub fn inventories(
    state: &State,
    configured: &BTreeSet<&str>,
    filter: &Filter,
) -> Vec<InventoryView> {
    state
        .ca_inventory
        .values()
        .filter(|record| configured.contains(record.ca.as_str()))
        .map(|record| InventoryView {
            record: record.clone().without_adopted(state),
            unmanaged: filter.shows_inventory(Status::Unmanaged, &record.ca),
            duplicate: filter.shows_inventory(Status::Duplicate, &record.ca),
        })
        .filter(|view| view.unmanaged || view.duplicate)
        .collect()
}

/// How long ago `then` was, in the largest whole unit: `3h ago`, `2d ago`, `just now`.
pub fn age(then: OffsetDateTime, now: OffsetDateTime) -> String {
    let elapsed = now - then;
    if elapsed < Duration::minutes(1) {
        return "just now".to_string();
    }
    if elapsed < Duration::hours(1) {
        return format!("{}m ago", elapsed.whole_minutes());
    }
    if elapsed < Duration::days(2) {
        return format!("{}h ago", elapsed.whole_hours());
    }
    format!("{}d ago", elapsed.whole_days())
}

/// The inventory sections of the table: per CA account, its unmanaged then its duplicate
/// orders (at most the record's `MAX_LISTED` each, then how many more), with a hint to
/// `certform import`. Empty when there is nothing to report.
pub fn render_inventory_table(inventories: &[InventoryView], now: OffsetDateTime) -> String {
    let mut out = String::new();
    for view in inventories {
        let record = &view.record;
        let ca = crate::config::escaped(&record.ca).into_owned();
        let listed = age(record.listed_at, now);
        let sections = [
            (
                "Unmanaged",
                view.unmanaged,
                record.unmanaged_total,
                &record.unmanaged,
            ),
            (
                "Duplicates",
                view.duplicate,
                record.duplicate_total,
                &record.duplicate,
            ),
        ];
        for (title, shown, total, findings) in sections {
            if !shown || total == 0 {
                continue;
            }
            let _ = writeln!(out, "\n{title} at CA `{ca}` (listed {listed}): {total}");
            for finding in findings {
                let mut line = format!(
                    "  {}  {}  {}  {}",
                    crate::config::escaped(&finding.order_id),
                    crate::config::escaped(&finding.common_name),
                    crate::config::escaped(&finding.status),
                    finding
                        .not_after
                        .map_or_else(|| "-".to_string(), format_time)
                );
                if let Some(certificate) = &finding.certificate {
                    let _ = write!(
                        line,
                        "  duplicates `{}`",
                        crate::config::escaped(certificate)
                    );
                }
                let _ = writeln!(out, "{line}");
            }
            if total > findings.len() {
                let _ = writeln!(out, "  ... and {} more", total - findings.len());
            }
            let hint = if findings.iter().any(|f| f.certificate.is_some()) {
                "hint: cancel or revoke the extra orders at the CA; certform keeps the one in state"
                    .to_string()
            } else {
                format!("hint: `certform import {ca}` adopts them into state and config")
            };
            let _ = writeln!(out, "{hint}");
        }
    }
    out
}

/// One line per CA account with findings, for the end of `plan`: `2 certificates at CA `x`
/// are not managed by certform`. Plan takes no action on them.
pub fn plan_lines(inventories: &[&CaInventory]) -> Vec<String> {
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            format!("{n} {one}")
        } else {
            format!("{n} {many}")
        }
    };
    inventories
        .iter()
        .filter(|record| record.unmanaged_total + record.duplicate_total > 0)
        .map(|record| {
            let ca = crate::config::escaped(&record.ca);
            let mut parts = Vec::new();
            if record.unmanaged_total > 0 {
                parts.push(format!(
                    "{} at CA `{ca}` {} not managed by certform",
                    plural(record.unmanaged_total, "certificate", "certificates"),
                    if record.unmanaged_total == 1 {
                        "is"
                    } else {
                        "are"
                    }
                ));
            }
            if record.duplicate_total > 0 {
                parts.push(format!(
                    "{} at CA `{ca}` {} a managed certificate",
                    plural(record.duplicate_total, "order", "orders"),
                    if record.duplicate_total == 1 {
                        "duplicates"
                    } else {
                        "duplicate"
                    }
                ));
            }
            format!("{} (see `certform status`)", parts.join("; "))
        })
        .collect()
}

/// Every certificate of config and state, sorted by name.
pub fn rows(
    certificates: &BTreeMap<String, CertificateSpec>,
    state: &State,
    now: OffsetDateTime,
) -> Vec<Row> {
    let names: BTreeSet<&String> = certificates
        .keys()
        .chain(state.certificates.keys())
        .collect();
    names
        .into_iter()
        .map(|name| {
            let spec = certificates.get(name);
            match state.certificates.get(name) {
                Some(recorded) => recorded_row(spec, recorded, now),
                None => Row {
                    name: name.clone(),
                    ca: spec.map(|s| s.ca.clone()).unwrap_or_default(),
                    status: Status::NotCreated,
                    description: "not created yet: the next apply orders it".to_string(),
                    order_id: None,
                    serial: None,
                    not_after: None,
                    ready: false,
                    days_left: None,
                    renewal_at: None,
                    last_deploy: None,
                    in_config: true,
                },
            }
        })
        .collect()
}

fn recorded_row(
    spec: Option<&CertificateSpec>,
    recorded: &CertificateState,
    now: OffsetDateTime,
) -> Row {
    let issued = recorded.status == CertificateStatus::Issued;
    let schedule = match spec {
        Some(spec) if issued => crate::plan::renewal_schedule(spec, recorded),
        _ => None,
    };
    let renewal_at = schedule.map(|schedule| schedule.renew_at);
    let (status, description) = describe(spec, recorded, renewal_at, now);
    let (status, description) = flag_late(status, description, schedule, recorded, now);
    let order_id = recorded
        .intent
        .as_ref()
        .and_then(|intent| intent.order_id.clone())
        .or_else(|| recorded.order_id.clone());
    let current = recorded.sha256_fingerprint.as_deref();
    let last_deploy = recorded
        .deployments
        .values()
        .filter(|record| Some(record.sha256_fingerprint.as_str()) == current)
        .map(|record| record.deployed_at)
        .max();
    Row {
        name: recorded.name.clone(),
        ca: recorded.ca.clone(),
        status,
        description,
        order_id,
        serial: recorded.serial.clone(),
        not_after: recorded.not_after,
        ready: issued && recorded.not_after.is_some_and(|t| t > now),
        days_left: recorded.not_after.map(|t| days_between(now, t)),
        renewal_at,
        last_deploy,
        in_config: spec.is_some(),
    }
}

/// Whole days from `now` to `then`, rounded toward negative infinity once past: a certificate
/// that expired an hour ago has `-1` days left, never `0`.
fn days_between(now: OffsetDateTime, then: OffsetDateTime) -> i64 {
    let seconds = (then - now).whole_seconds();
    seconds.div_euclid(86_400)
}

/// The status and its words, in order of what a person must know first.
fn describe(
    spec: Option<&CertificateSpec>,
    recorded: &CertificateState,
    renewal_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> (Status, String) {
    let Some(spec) = spec else {
        if recorded.prevent_destroy {
            return (
                Status::Removed,
                "removed from config, protected by `prevent_destroy`: kept in state as a tombstone until `certform state rm`".to_string(),
            );
        }
        let next = match recorded.on_remove {
            OnRemove::Forget => "forgets it (the CA keeps it)",
            OnRemove::Cancel => "cancels its pending order, else forgets it",
            OnRemove::Revoke => "revokes it",
        };
        return (
            Status::Removed,
            format!("removed from config: the next apply {next}"),
        );
    };
    match recorded.status {
        CertificateStatus::Revoked => return (Status::Revoked, "revoked".to_string()),
        CertificateStatus::Canceled => return (Status::Canceled, "order canceled".to_string()),
        CertificateStatus::New | CertificateStatus::Issued => {}
    }
    if let Some(until) = recorded.retry_after.filter(|until| *until > now) {
        return (
            Status::RateLimited,
            format!(
                "rate limited by `{}` until {}",
                recorded
                    .intent
                    .as_ref()
                    .map_or(recorded.ca.as_str(), |i| i.ca.as_str()),
                format_time(until)
            ),
        );
    }
    if let Some(intent) = &recorded.intent {
        let what = match intent.kind {
            IntentKind::Create => "",
            IntentKind::Renew => "renewal ",
            IntentKind::Reissue => "reissue ",
        };
        return match &intent.order_id {
            None => (
                Status::Ordering,
                format!(
                    "{what}order not confirmed by `{}` (a run stopped while placing it): the next apply adopts or places it",
                    intent.ca
                ),
            ),
            Some(order_id) if uses_email(spec) => (
                Status::AwaitingApproval,
                format!("{what}order {order_id} awaiting email approval"),
            ),
            Some(order_id) => (
                Status::Pending,
                format!(
                    "{what}order {order_id} pending at `{}` (validation or issuance)",
                    intent.ca
                ),
            ),
        };
    }
    if recorded.status == CertificateStatus::New {
        return (
            Status::NotCreated,
            "no certificate yet: the next apply orders it".to_string(),
        );
    }
    match recorded.not_after {
        Some(not_after) if not_after <= now => (
            Status::Expired,
            format!("expired on {}", format_time(not_after)),
        ),
        _ => match renewal_at {
            Some(at) if at <= now => (
                Status::RenewalDue,
                "renewal due: the next apply renews it".to_string(),
            ),
            Some(at) => (
                Status::Valid,
                format!("valid, renews from {}", format_time(at)),
            ),
            None => (Status::Valid, "valid".to_string()),
        },
    }
}

/// A renewal that is late is flagged first (`renewal overdue`, `AT RISK`), with the backoff
/// of a failed renewal when there is one: a missed renewal is never shown as merely due.
fn flag_late(
    status: Status,
    description: String,
    schedule: Option<crate::plan::RenewalSchedule>,
    recorded: &CertificateState,
    now: OffsetDateTime,
) -> (Status, String) {
    let backoff = recorded
        .backoff
        .as_ref()
        .map(|backoff| {
            format!(
                "; {} failed renewal attempt{} in a row, next try at {}",
                backoff.attempts,
                if backoff.attempts.get() == 1 { "" } else { "s" },
                format_time(backoff.next_try)
            )
        })
        .unwrap_or_default();
    let risk = schedule.and_then(|schedule| Some((schedule, schedule.risk(now)?)));
    match (status, risk) {
        (
            Status::Valid | Status::RenewalDue | Status::Ordering,
            Some((schedule, crate::plan::planner::Risk::AtRisk)),
        ) => (
            Status::AtRisk,
            format!(
                "AT RISK: expires {} and is not renewed yet ({description}){backoff}",
                format_time(schedule.not_after)
            ),
        ),
        (
            Status::Valid | Status::RenewalDue,
            Some((schedule, crate::plan::planner::Risk::Overdue)),
        ) => (
            Status::RenewalOverdue,
            format!(
                "renewal overdue: due from {}, expires {}{backoff}",
                format_time(schedule.renew_at),
                format_time(schedule.not_after)
            ),
        ),
        // Expired says it all.
        (Status::Expired, _) => (status, format!("{description}{backoff}")),
        // An order pending at the CA or a rate limit explains the wait; the risk is still said.
        (status, Some((schedule, crate::plan::planner::Risk::AtRisk))) => (
            status,
            format!(
                "{description}{backoff}; AT RISK: expires {}",
                format_time(schedule.not_after)
            ),
        ),
        (status, _) => (status, format!("{description}{backoff}")),
    }
}

/// Whether any of the certificate's names is validated by email.
fn uses_email(spec: &CertificateSpec) -> bool {
    spec.dcv
        .iter()
        .any(|rule| matches!(rule.method, DcvMethod::Email { .. }))
}

/// Parse `--expiring-within`: a whole number and a unit (`h`, `d`, `w`), like `30d`.
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let shape = "expected a whole number and a unit (`h`, `d`, `w`), like `30d`";
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let count: i64 = digits.parse().map_err(|_| shape.to_string())?;
    let unit_hours = match unit {
        "h" => 1,
        "d" => 24,
        "w" => 24 * 7,
        _ => return Err(shape.to_string()),
    };
    count
        .checked_mul(unit_hours)
        .filter(|hours| *hours <= 24 * 36_500)
        .map(Duration::hours)
        .ok_or_else(|| "at most 100 years (`36500d`)".to_string())
}

/// The rows as an aligned text table.
pub fn render_table(rows: &[Row]) -> String {
    use std::borrow::Cow;

    const HEADER: [&str; 7] = [
        "NAME",
        "CA",
        "STATUS",
        "ORDER",
        "NOT AFTER",
        "DAYS LEFT",
        "LAST DEPLOY",
    ];
    let dash = || Cow::Borrowed("-");
    let mut lines: Vec<[Cow<'_, str>; 7]> = Vec::with_capacity(rows.len() + 1);
    lines.push(HEADER.map(Cow::Borrowed));
    for row in rows {
        lines.push([
            crate::config::escaped(&row.name),
            crate::config::escaped(&row.ca),
            crate::config::escaped(&row.description),
            row.order_id
                .as_deref()
                .map_or_else(dash, crate::config::escaped),
            row.not_after
                .map_or_else(dash, |time| Cow::Owned(format_time(time))),
            row.days_left
                .map_or_else(dash, |days| Cow::Owned(days.to_string())),
            row.last_deploy
                .map_or_else(dash, |time| Cow::Owned(format_time(time))),
        ]);
    }
    let mut widths = [0usize; 7];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    // Each cell left-aligned to its column's width (in characters), two spaces between
    // columns, trailing blanks trimmed; one buffer for every line.
    let mut out = String::new();
    let mut text = String::new();
    for line in &lines {
        text.clear();
        for (column, (cell, width)) in line.iter().zip(widths).enumerate() {
            if column > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let padding = width.saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', padding));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// The rows as JSON: `{"now": ..., "certificates": [...], "ca_inventory": [...]}`.
pub fn render_json(rows: &[Row], inventories: &[InventoryView], now: OffsetDateTime) -> String {
    #[derive(Serialize)]
    struct Document<'a> {
        #[serde(with = "time::serde::rfc3339")]
        now: OffsetDateTime,
        certificates: &'a [Row],
        ca_inventory: Vec<InventoryJson<'a>>,
    }
    /// A record without its file format.
    #[derive(Serialize)]
    struct InventoryJson<'a> {
        ca: &'a str,
        #[serde(with = "time::serde::rfc3339")]
        listed_at: OffsetDateTime,
        orders: usize,
        /// `None` (left out) when `--status` keeps only the other section.
        #[serde(skip_serializing_if = "Option::is_none")]
        unmanaged_total: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        duplicate_total: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        unmanaged: Option<&'a [crate::ca_inventory::Finding]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        duplicate: Option<&'a [crate::ca_inventory::Finding]>,
    }
    let document = Document {
        now: now.replace_nanosecond(0).unwrap_or(now),
        certificates: rows,
        ca_inventory: inventories
            .iter()
            .map(|view| {
                let record = &view.record;
                InventoryJson {
                    ca: &record.ca,
                    listed_at: record.listed_at,
                    orders: record.orders,
                    unmanaged_total: view.unmanaged.then_some(record.unmanaged_total),
                    duplicate_total: view.duplicate.then_some(record.duplicate_total),
                    unmanaged: view.unmanaged.then_some(record.unmanaged.as_slice()),
                    duplicate: view.duplicate.then_some(record.duplicate.as_slice()),
                }
            })
            .collect(),
    };
    // Serialising plain strings, numbers and times cannot fail.
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

/// The rows in the Prometheus text format, for node_exporter's textfile collector. The
/// metrics follow cert-manager's (`certmanager_certificate_expiration_timestamp_seconds`,
/// `..._renewal_timestamp_seconds`, `..._ready_status`), named `certform_certificate_*`, with
/// the labels `name` and `ca`; `..._status` has one series per status, 1 for the current one.
///
/// Each CA account with an inventory record adds `certform_ca_unmanaged_certificates`,
/// `certform_ca_duplicate_certificates` and `certform_ca_inventory_timestamp_seconds`
/// (label `ca`).
pub fn render_prometheus(rows: &[Row], inventories: &[InventoryView]) -> String {
    let mut out = String::new();
    let labels = |row: &Row| {
        format!(
            "name=\"{}\",ca=\"{}\"",
            escape_label(&row.name),
            escape_label(&row.ca)
        )
    };
    let mut family = |name: &str, help: &str, samples: Vec<String>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for sample in samples {
            let _ = writeln!(out, "{name}{sample}");
        }
    };
    family(
        "certform_certificate_expiration_timestamp_seconds",
        "The date after which the certificate expires, as seconds since the Unix epoch.",
        rows.iter()
            .filter_map(|row| {
                let at = row.not_after?;
                Some(format!("{{{}}} {}", labels(row), at.unix_timestamp()))
            })
            .collect(),
    );
    family(
        "certform_certificate_renewal_timestamp_seconds",
        "The date from which certform renews the certificate, as seconds since the Unix epoch.",
        rows.iter()
            .filter_map(|row| {
                let at = row.renewal_at?;
                Some(format!("{{{}}} {}", labels(row), at.unix_timestamp()))
            })
            .collect(),
    );
    family(
        "certform_certificate_ready_status",
        "Whether the certificate is issued, unexpired and not revoked (condition True), or not (False).",
        rows.iter()
            .flat_map(|row| {
                ["True", "False", "Unknown"].map(|condition| {
                    let value = match condition {
                        "True" => row.ready,
                        "False" => !row.ready,
                        _ => false,
                    };
                    format!(
                        "{{{},condition=\"{condition}\"}} {}",
                        labels(row),
                        u8::from(value)
                    )
                })
            })
            .collect(),
    );
    family(
        "certform_certificate_status",
        "The certificate's status as `certform status --status` names it: 1 for the current one, 0 for the others.",
        rows.iter()
            .flat_map(|row| {
                Status::ALL.map(|status| {
                    format!(
                        "{{{},status=\"{}\"}} {}",
                        labels(row),
                        status.as_str(),
                        u8::from(status == row.status)
                    )
                })
            })
            .collect(),
    );
    if inventories.is_empty() {
        return out;
    }
    let ca_label = |view: &InventoryView| format!("{{ca=\"{}\"}}", escape_label(&view.record.ca));
    family(
        "certform_ca_unmanaged_certificates",
        "Live orders at the CA account that no certificate in state knows, at the last inventory listing.",
        inventories
            .iter()
            .filter(|view| view.unmanaged)
            .map(|view| format!("{} {}", ca_label(view), view.record.unmanaged_total))
            .collect(),
    );
    family(
        "certform_ca_duplicate_certificates",
        "Live orders at the CA account that repeat the names of a certificate certform manages there, at the last inventory listing.",
        inventories
            .iter()
            .filter(|view| view.duplicate)
            .map(|view| format!("{} {}", ca_label(view), view.record.duplicate_total))
            .collect(),
    );
    family(
        "certform_ca_inventory_timestamp_seconds",
        "When the CA account's orders were last listed for the inventory, as seconds since the Unix epoch.",
        inventories
            .iter()
            .map(|view| format!("{} {}", ca_label(view), view.record.listed_at.unix_timestamp()))
            .collect(),
    );
    out
}

/// A label value in the Prometheus text format: backslash, double quote and line feed escaped.
fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{CaOptions, DcvRule, DnsName, KeySpec, Location, RenewBefore, Validity};
    use crate::state::{DeployRecord, Intent};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2027-01-01 00:00 UTC);

    fn spec(name: &str, dcv: Vec<DcvRule>) -> CertificateSpec {
        CertificateSpec {
            name: name.to_string(),
            ca: "local".to_string(),
            common_name: DnsName::new_unchecked("a.example"),
            sans: vec![DnsName::new_unchecked("a.example")],
            key: KeySpec::Ecdsa(256),
            validity: Validity::Days(90),
            renew_before: RenewBefore::Duration(Duration::days(30)),
            on_remove: OnRemove::Forget,
            revoke: None,
            prevent_destroy: false,
            revoke_reason: None,
            dcv,
            deploy: Vec::new(),
            ca_options: CaOptions::default(),
            location: Location::default(),
        }
    }

    fn issued(name: &str, not_after: OffsetDateTime) -> CertificateState {
        CertificateState {
            format: crate::state::FORMAT,
            name: name.to_string(),
            id: format!("cf-{name}"),
            ca: "local".to_string(),
            status: CertificateStatus::Issued,
            order_id: Some("o-1".to_string()),
            certificate_id: None,
            serial: Some("0a".into()),
            not_before: Some(not_after - Duration::days(90)),
            not_after: Some(not_after),
            sha256_fingerprint: Some("fp".to_string()),
            spki_sha256: None,
            common_name: "a.example".to_string(),
            sans: vec!["a.example".to_string()],
            key_algorithm: "ecdsa-p256".to_string(),
            key_id: None,
            legacy_key_file: None,
            spec_digest: String::new(),
            spec_fields: Default::default(),
            on_remove: OnRemove::Forget,
            prevent_destroy: false,
            revoke_reason: None,
            intent: None,
            deployments: Default::default(),
            renewal_window: None,
            retry_after: None,
            plan_until: None,
            backoff: None,
            history: Vec::new(),
        }
    }

    fn intent(order_id: Option<&str>) -> Intent {
        Intent {
            kind: IntentKind::Create,
            ca: "local".to_string(),
            started: NOW - Duration::hours(1),
            tag: "cf-x.00112233".to_string(),
            key_algorithm: "ecdsa-p256".to_string(),
            common_name: "a.example".to_string(),
            sans: Vec::new(),
            spec_digest: String::new(),
            spec_fields: Default::default(),
            order_id: order_id.map(str::to_string),
        }
    }

    fn one(spec: Option<CertificateSpec>, recorded: Option<CertificateState>) -> Row {
        let mut certificates = BTreeMap::new();
        let mut state = State::default();
        if let Some(spec) = spec {
            certificates.insert(spec.name.clone(), spec);
        }
        if let Some(recorded) = recorded {
            state.certificates.insert(recorded.name.clone(), recorded);
        }
        let mut rows = rows(&certificates, &state, NOW);
        assert_eq!(rows.len(), 1);
        rows.remove(0)
    }

    fn pending(order_id: Option<&str>) -> CertificateState {
        let mut recorded = issued("web", NOW);
        recorded.status = CertificateStatus::New;
        recorded.serial = None;
        recorded.not_before = None;
        recorded.not_after = None;
        recorded.order_id = None;
        recorded.intent = Some(Box::new(intent(order_id)));
        recorded
    }

    #[test]
    fn statuses_in_words() {
        let email = vec![DcvRule {
            names: Vec::new(),
            method: DcvMethod::Email { approver: None },
        }];
        let cases: Vec<(
            Option<CertificateSpec>,
            Option<CertificateState>,
            Status,
            &str,
        )> = vec![
            (
                Some(spec("web", vec![])),
                None,
                Status::NotCreated,
                "not created yet",
            ),
            (
                Some(spec("web", email.clone())),
                Some(pending(Some("1234"))),
                Status::AwaitingApproval,
                "order 1234 awaiting email approval",
            ),
            (
                Some(spec("web", vec![])),
                Some(pending(Some("1234"))),
                Status::Pending,
                "order 1234 pending at `local`",
            ),
            (
                Some(spec("web", email)),
                Some(pending(None)),
                Status::Ordering,
                "the next apply adopts or places it",
            ),
            (
                Some(spec("web", vec![])),
                Some(issued("web", NOW + Duration::days(60))),
                Status::Valid,
                "valid, renews from 2027-02-09T13:01:02Z",
            ),
            (
                Some(spec("web", vec![])),
                Some(issued("web", NOW + Duration::hours(20 * 24 + 1))),
                Status::RenewalDue,
                "renewal due",
            ),
            (
                Some(spec("web", vec![])),
                Some(issued("web", NOW - Duration::hours(1))),
                Status::Expired,
                "expired on 2026-12-31T23:00:00Z",
            ),
            (
                None,
                Some(issued("web", NOW + Duration::days(60))),
                Status::Removed,
                "removed from config: the next apply forgets it",
            ),
        ];
        for (spec, recorded, status, words) in cases {
            let row = one(spec, recorded);
            assert_eq!(row.status, status, "{row:?}");
            assert!(row.description.contains(words), "{row:?}");
        }
    }

    #[test]
    fn rate_limit_comes_first_and_names_the_time() {
        let mut recorded = pending(Some("1234"));
        recorded.retry_after = Some(NOW + Duration::hours(2));
        let row = one(Some(spec("web", vec![])), Some(recorded.clone()));
        assert_eq!(row.status, Status::RateLimited);
        assert_eq!(
            row.description,
            "rate limited by `local` until 2027-01-01T02:00:00Z"
        );
        recorded.retry_after = Some(NOW - Duration::hours(2));
        let row = one(Some(spec("web", vec![])), Some(recorded));
        assert_eq!(
            row.status,
            Status::Pending,
            "a past limit no longer applies"
        );
        assert!(!row.ready, "nothing issued yet");
        let mut renewing = issued("web", NOW + Duration::days(10));
        renewing.retry_after = Some(NOW + Duration::hours(2));
        let row = one(Some(spec("web", vec![])), Some(renewing));
        assert_eq!(row.status, Status::RateLimited);
        assert!(row.ready, "the current certificate still serves");
        let expired = one(
            Some(spec("web", vec![])),
            Some(issued("web", NOW - Duration::hours(1))),
        );
        assert!(!expired.ready);
    }

    #[test]
    fn days_left_go_negative_once_expired_and_last_deploy_is_of_the_current_certificate() {
        let mut recorded = issued("web", NOW - Duration::hours(1));
        let record = |fingerprint: &str, at| DeployRecord {
            sha256_fingerprint: fingerprint.to_string(),
            target_digest: String::new(),
            files: Default::default(),
            deployed_at: at,
            reload_error: None,
            serial: None,
            verified: None,
            paths: Vec::new(),
            cleanup: false,
            verify_error: None,
            ssh: None,
        };
        recorded
            .deployments
            .insert("a".into(), Box::new(record("fp", NOW - Duration::days(3))));
        recorded
            .deployments
            .insert("b".into(), Box::new(record("old", NOW - Duration::days(1))));
        let row = one(Some(spec("web", vec![])), Some(recorded));
        assert_eq!(row.days_left, Some(-1));
        assert_eq!(row.last_deploy, Some(NOW - Duration::days(3)));
        assert_eq!(row.order_id.as_deref(), Some("o-1"));
        let row = one(
            Some(spec("web", vec![])),
            Some(issued("web", NOW + Duration::hours(47))),
        );
        assert_eq!(row.days_left, Some(1));
    }

    #[test]
    fn the_order_in_flight_is_shown_over_the_current_one() {
        let mut recorded = issued("web", NOW + Duration::days(10));
        recorded.intent = Some(Box::new(Intent {
            kind: IntentKind::Renew,
            ..intent(Some("o-2"))
        }));
        let row = one(Some(spec("web", vec![])), Some(recorded));
        assert_eq!(row.order_id.as_deref(), Some("o-2"));
        assert_eq!(row.status, Status::Pending);
        assert!(row.description.starts_with("renewal order o-2"), "{row:?}");
        assert_eq!(row.serial.as_ref().map(|s| s.as_str()), Some("0a"));
    }

    #[test]
    fn filters_combine() {
        let mut other = spec("api", vec![]);
        other.ca = "acme".to_string();
        let mut api = issued("api", NOW + Duration::hours(20 * 24 + 1));
        api.ca = "acme".to_string();
        let certificates: BTreeMap<String, CertificateSpec> = [
            ("web".to_string(), spec("web", vec![])),
            ("api".to_string(), other),
            ("new".to_string(), spec("new", vec![])),
        ]
        .into();
        let mut state = State::default();
        state
            .certificates
            .insert("web".into(), issued("web", NOW + Duration::days(60)));
        state.certificates.insert("api".into(), api);
        let rows = rows(&certificates, &state, NOW);
        let kept = |filter: Filter| -> Vec<String> {
            rows.iter()
                .filter(|row| filter.matches(row, NOW))
                .map(|row| row.name.clone())
                .collect()
        };
        assert_eq!(kept(Filter::default()), ["api", "new", "web"]);
        let within = |days| Some(Duration::days(days));
        assert_eq!(
            kept(Filter {
                expiring_within: within(30),
                ..Filter::default()
            }),
            ["api"]
        );
        assert_eq!(
            kept(Filter {
                ca: Some("local".into()),
                ..Filter::default()
            }),
            ["new", "web"]
        );
        assert_eq!(
            kept(Filter {
                statuses: vec![Status::NotCreated, Status::RenewalDue],
                ..Filter::default()
            }),
            ["api", "new"]
        );
        assert_eq!(
            kept(Filter {
                statuses: vec![Status::Valid],
                expiring_within: within(30),
                ..Filter::default()
            }),
            Vec::<String>::new()
        );
    }

    #[test]
    fn renewal_at_is_the_instant_plan_starts_renewing() {
        for renew_before in [
            RenewBefore::Duration(Duration::days(30)),
            RenewBefore::Percent(33),
            // Not shorter than the lifetime: plan clamps to two thirds of it, so must status.
            RenewBefore::Duration(Duration::days(100)),
        ] {
            let mut spec = spec("web", vec![]);
            spec.renew_before = renew_before;
            let mut recorded = issued("web", NOW + Duration::days(80));
            recorded.spec_digest = spec.issuance_digest();
            recorded.spec_fields = spec.issuance_fields().into_iter().collect();
            let certificates: BTreeMap<String, CertificateSpec> =
                [("web".to_string(), spec)].into();
            let mut state = State::default();
            state.certificates.insert("web".into(), recorded);
            let renewal_at = rows(&certificates, &state, NOW)[0]
                .renewal_at
                .expect("renewal time");
            let renews = |now: OffsetDateTime| {
                let plan = crate::plan::plan(&crate::plan::PlanInput {
                    certificates: &certificates,
                    state: &state,
                    observed: &crate::observed::Observed::default(),
                    capabilities: &BTreeMap::new(),
                    replace: &std::collections::BTreeSet::new(),
                    now,
                    thresholds: crate::plan::Thresholds::default(),
                });
                plan.changes
                    .iter()
                    .any(|c| matches!(c.action, crate::plan::Action::Renew { .. }))
            };
            assert!(
                !renews(renewal_at - Duration::seconds(1)),
                "{renew_before:?}"
            );
            assert!(renews(renewal_at), "{renew_before:?}");
            let status_at = |now| rows(&certificates, &state, now)[0].status;
            assert_eq!(status_at(renewal_at - Duration::seconds(1)), Status::Valid);
            assert_eq!(status_at(renewal_at), Status::RenewalDue);
        }
    }

    #[test]
    fn inventory_sections_follow_status_ca_and_expiry_filters() {
        let finding = |id: &str| crate::ca_inventory::Finding {
            order_id: id.to_string(),
            common_name: "x.example".to_string(),
            status: "issued".to_string(),
            not_after: None,
            certificate: None,
        };
        let record = |ca: &str| CaInventory {
            format: 1,
            ca: ca.to_string(),
            listed_at: NOW - Duration::hours(3),
            orders: 4,
            unmanaged_total: 2,
            duplicate_total: 1,
            unmanaged: vec![finding("u1"), finding("u2")],
            duplicate: vec![finding("d1")],
        };
        let mut state = State::default();
        for ca in ["dc", "gone", "local"] {
            state.ca_inventory.insert(ca.to_string(), record(ca));
        }
        let configured: BTreeSet<&str> = ["dc", "local"].into();
        let shown = |filter: Filter| -> Vec<(String, bool, bool)> {
            inventories(&state, &configured, &filter)
                .into_iter()
                .map(|v| (v.record.ca, v.unmanaged, v.duplicate))
                .collect()
        };
        let all = shown(Filter::default());
        assert_eq!(
            all,
            [("dc".into(), true, true), ("local".into(), true, true)],
            "an account no longer configured is left out"
        );
        assert_eq!(
            shown(Filter {
                statuses: vec![Status::Duplicate, Status::Valid],
                ca: Some("local".into()),
                ..Filter::default()
            }),
            [("local".into(), false, true)]
        );
        assert!(shown(Filter {
            statuses: vec![Status::Valid],
            ..Filter::default()
        })
        .is_empty());
        assert!(shown(Filter {
            expiring_within: Some(Duration::days(30)),
            ..Filter::default()
        })
        .is_empty());
        assert!(Filter {
            statuses: vec![Status::Unmanaged],
            ..Filter::default()
        }
        .only_inventory());
        assert!(!Filter::default().only_inventory());

        // An order imported since the listing is gone from the section and the count.
        let mut imported = issued("u2", NOW + Duration::days(60));
        imported.ca = "local".into();
        imported.order_id = Some("u2".into());
        state.certificates.insert("u2".into(), imported);
        let views = inventories(&state, &configured, &Filter::default());
        let local = &views[1].record;
        assert_eq!((local.unmanaged_total, local.unmanaged.len()), (1, 1));
        assert_eq!(
            views[0].record.unmanaged_total, 2,
            "`dc` is another account"
        );

        let table = render_inventory_table(&views, NOW);
        assert!(
            table.contains("\nUnmanaged at CA `local` (listed 3h ago): 1\n  u1  x.example  issued  -\nhint: `certform import local` adopts them into state and config\n"),
            "{table}"
        );
        let text = render_prometheus(&[], &views);
        assert!(
            text.contains("certform_ca_unmanaged_certificates{ca=\"local\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("certform_ca_duplicate_certificates{ca=\"dc\"} 1\n"),
            "{text}"
        );
        assert_eq!(age(NOW - Duration::seconds(59), NOW), "just now");
        assert_eq!(age(NOW - Duration::minutes(59), NOW), "59m ago");
        assert_eq!(age(NOW - Duration::hours(47), NOW), "47h ago");
        assert_eq!(age(NOW - Duration::hours(48), NOW), "2d ago");
    }

    #[test]
    fn plan_lines_count_in_words() {
        let record = |unmanaged: usize, duplicate: usize| CaInventory {
            format: 1,
            ca: "x".to_string(),
            listed_at: NOW,
            orders: 9,
            unmanaged_total: unmanaged,
            duplicate_total: duplicate,
            unmanaged: Vec::new(),
            duplicate: Vec::new(),
        };
        let (none, one, many, dup) = (record(0, 0), record(1, 0), record(3, 0), record(0, 2));
        assert_eq!(
            plan_lines(&[&none, &one, &many, &dup]),
            [
                "1 certificate at CA `x` is not managed by certform (see `certform status`)",
                "3 certificates at CA `x` are not managed by certform (see `certform status`)",
                "2 orders at CA `x` duplicate a managed certificate (see `certform status`)",
            ]
        );
    }

    #[test]
    fn spans_parse() {
        assert_eq!(parse_span("30d"), Ok(Duration::days(30)));
        assert_eq!(parse_span("12h"), Ok(Duration::hours(12)));
        assert_eq!(parse_span("2w"), Ok(Duration::days(14)));
        for bad in ["", "30", "d", "-3d", "3x", "99999999999999999999d"] {
            assert!(parse_span(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prometheus_has_help_type_and_escaped_labels() {
        let mut recorded = issued("we\"b\\\n", NOW + Duration::days(60));
        recorded.ca = "local".into();
        let text = render_prometheus(&[one(None, Some(recorded))], &[]);
        let name = r#"name="we\"b\\\n",ca="local""#;
        assert!(
            text.contains(&format!(
                "certform_certificate_expiration_timestamp_seconds{{{name}}} {}\n",
                (NOW + Duration::days(60)).unix_timestamp()
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "certform_certificate_ready_status{{{name},condition=\"True\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "certform_certificate_status{{{name},status=\"removed\"}} 1\n"
        )));
        for family in [
            "expiration_timestamp_seconds",
            "renewal_timestamp_seconds",
            "ready_status",
            "status",
        ] {
            let metric = format!("certform_certificate_{family}");
            assert!(text.contains(&format!("# HELP {metric} ")), "{metric}");
            assert!(
                text.contains(&format!("# TYPE {metric} gauge\n")),
                "{metric}"
            );
        }
        assert_eq!(
            text.lines().filter(|l| !l.starts_with('#')).count(),
            1 + 3 + Status::ALL.len(),
            "no renewal time for a removed certificate: {text}"
        );
    }
}
