//! The CA inventory: which live orders listed at a CA account certform does not manage
//! (**unmanaged**) or holds twice (**duplicate**), and the record state keeps of the last
//! listing (`ca/<account>.inventory.toml`), so `status` shows it without a CA call.
//!
//! Pure: it classifies what refresh listed against state and decides when an account is due
//! for listing; it performs no I/O, reads no clock and contacts no CA.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::ca::AccountOrder;
use crate::state::State;

/// Current format of the inventory record.
pub const FORMAT: u32 = 1;

/// At most this many unmanaged and this many duplicate orders are kept in a record; the
/// totals say how many there were.
pub const MAX_LISTED: usize = 50;

/// How long a `daily` listing stays fresh.
pub const DAILY: Duration = Duration::hours(24);

/// `[ca.NAME] inventory`: when refresh lists the account's orders for the inventory.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// At most once every 24 hours (the time of the last listing is kept in state).
    #[default]
    Daily,
    /// At every `plan` and `apply`.
    EveryRun,
    /// Never.
    Off,
}

impl Schedule {
    pub fn as_str(&self) -> &'static str {
        match self {
            Schedule::Daily => "daily",
            Schedule::EveryRun => "every-run",
            Schedule::Off => "off",
        }
    }

    /// Whether refresh lists the account now, given its last record. A record from the
    /// future (a clock set back, a hand edit) does not hold listing off.
    pub fn is_due(&self, last: Option<&CaInventory>, now: OffsetDateTime) -> bool {
        match self {
            Schedule::Off => false,
            Schedule::EveryRun => true,
            Schedule::Daily => {
                last.is_none_or(|last| last.listed_at > now || now - last.listed_at >= DAILY)
            }
        }
    }
}

/// What refresh's inventory listing of one CA account gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// The account's orders, classified.
    Listed(CaInventory),
    /// The account could not list its orders (why); the last record stays as it was.
    Failed(String),
}

impl Listing {
    /// The warning a failed listing prints (`plan` and `apply` go on without it).
    pub fn warning(ca: &str, why: &str) -> String {
        format!("cannot list the orders of CA `{ca}` for the inventory (the plan goes on without it): {why}")
    }
}

/// What the last listing of one CA account found: the record state keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaInventory {
    pub format: u32,
    /// The account's name in config.
    pub ca: String,
    #[serde(with = "time::serde::rfc3339")]
    pub listed_at: OffsetDateTime,
    /// How many orders the account listed (live or not).
    pub orders: usize,
    /// How many live orders no state entry knows (`unmanaged` holds the first `MAX_LISTED`).
    pub unmanaged_total: usize,
    /// How many live orders repeat a managed certificate's names (`duplicate` holds the first
    /// `MAX_LISTED`).
    pub duplicate_total: usize,
    #[serde(default)]
    pub unmanaged: Vec<Finding>,
    #[serde(default)]
    pub duplicate: Vec<Finding>,
}

/// One order the inventory reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    pub order_id: String,
    pub common_name: String,
    /// The CA's status word (`issued`, `pending`, ...).
    pub status: String,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_after: Option<OffsetDateTime>,
    /// For a duplicate: the managed certificate whose names the order repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// When an account was last listed and how many orders it had: kept beside the state
/// repository (in its git directory, never committed), so a listing that finds what the
/// record already says rewrites nothing and a run with nothing else to do makes no commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingNote {
    #[serde(with = "time::serde::rfc3339")]
    pub listed_at: OffsetDateTime,
    pub orders: usize,
}

impl CaInventory {
    /// The record of a listing of `ca` that found nothing to report.
    pub fn empty(ca: &str, note: ListingNote) -> Self {
        CaInventory {
            format: FORMAT,
            ca: ca.to_string(),
            listed_at: note.listed_at,
            orders: note.orders,
            unmanaged_total: 0,
            duplicate_total: 0,
            unmanaged: Vec::new(),
            duplicate: Vec::new(),
        }
    }

    /// Whether the record reports anything.
    pub fn has_findings(&self) -> bool {
        self.unmanaged_total > 0 || self.duplicate_total > 0
    }

    /// Whether `self` and `other` report the same orders (their listing times aside).
    pub fn same_findings(&self, other: &CaInventory) -> bool {
        (
            self.unmanaged_total,
            self.duplicate_total,
            &self.unmanaged,
            &self.duplicate,
        ) == (
            other.unmanaged_total,
            other.duplicate_total,
            &other.unmanaged,
            &other.duplicate,
        )
    }

    /// Whether a new listing must be written to the committed record: when what it reports
    /// differs from the last record (none counts as reporting nothing).
    pub fn changes(&self, last: Option<&CaInventory>) -> bool {
        match last {
            Some(last) => !self.same_findings(last),
            None => self.has_findings(),
        }
    }

    /// Fold in a later listing that found the same (`note`, from beside the repository).
    pub fn noted(mut self, note: ListingNote) -> Self {
        if note.listed_at > self.listed_at {
            self.listed_at = note.listed_at;
            self.orders = note.orders;
        }
        self
    }

    /// The record without the orders state has adopted since the listing (`certform import`
    /// or `state mv`): an order id state now holds at this account is no longer reported,
    /// and the totals count it out.
    pub fn without_adopted(mut self, state: &State) -> Self {
        let known: BTreeSet<&str> = state
            .certificates
            .values()
            .flat_map(|certificate| {
                let current = (certificate.ca == self.ca)
                    .then_some(certificate.order_id.as_deref())
                    .flatten();
                let intent = certificate
                    .intent
                    .as_ref()
                    .filter(|intent| intent.ca == self.ca)
                    .and_then(|intent| intent.order_id.as_deref());
                [current, intent]
            })
            .flatten()
            .collect();
        let before = (self.unmanaged.len(), self.duplicate.len());
        self.unmanaged
            .retain(|finding| !known.contains(finding.order_id.as_str()));
        self.duplicate
            .retain(|finding| !known.contains(finding.order_id.as_str()));
        self.unmanaged_total -= before.0 - self.unmanaged.len();
        self.duplicate_total -= before.1 - self.duplicate.len();
        self
    }

    /// What is wrong with a record read from state (a hand edit): the first broken rule, as
    /// `(key, message)`; `None` when it holds together.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let over = |listed: usize, total: usize| listed > total;
        if over(self.unmanaged.len(), self.unmanaged_total) {
            return Some((
                "unmanaged_total",
                format!(
                    "`unmanaged_total` is {} but {} unmanaged orders are listed",
                    self.unmanaged_total,
                    self.unmanaged.len()
                ),
            ));
        }
        if over(self.duplicate.len(), self.duplicate_total) {
            return Some((
                "duplicate_total",
                format!(
                    "`duplicate_total` is {} but {} duplicate orders are listed",
                    self.duplicate_total,
                    self.duplicate.len()
                ),
            ));
        }
        if self.unmanaged_total.saturating_add(self.duplicate_total) > self.orders {
            return Some((
                "orders",
                format!(
                    "`orders` is {} but {} orders are unmanaged or duplicate",
                    self.orders,
                    self.unmanaged_total.saturating_add(self.duplicate_total)
                ),
            ));
        }
        None
    }
}

/// Whether an order still holds or may become a usable certificate: not revoked, canceled,
/// rejected or invalid, and not past its `not_after`. Unknown status words count as live.
pub fn is_live(order: &AccountOrder, now: OffsetDateTime) -> bool {
    let ended = matches!(
        order.status.as_str(),
        "revoked"
            | "canceled"
            | "cancelled"
            | "rejected"
            | "denied"
            | "expired"
            | "invalid"
            | "deactivated"
    );
    !ended && order.not_after.is_none_or(|not_after| not_after > now)
}

/// The set of names of a certificate or order, compared without case.
fn name_set<'a>(
    common_name: &'a str,
    names: impl IntoIterator<Item = &'a String>,
) -> BTreeSet<String> {
    std::iter::once(common_name)
        .chain(names.into_iter().map(String::as_str))
        .map(|name| name.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The certificate id in an order's tag when the tag is one certform placed
/// (`<certificate id>.<hex>`, the id `cf-...`): the certificate the order was placed for,
/// in this state or in another one sharing the account. `None` for any other tag.
pub fn tagged_certificate(tag: &str) -> Option<&str> {
    let (id, suffix) = tag.rsplit_once('.')?;
    let ours = id.len() > 3
        && id.starts_with("cf-")
        && !suffix.is_empty()
        && suffix.bytes().all(|b| b.is_ascii_hexdigit());
    ours.then_some(id)
}

/// Classify the orders account `ca` listed against `state`, at `now`.
///
/// An order is certform's when state knows it for this account (the current order or the
/// one in flight), knows its serial (current or in a certificate's history), or it carries
/// the tag of a certificate in state (`<certificate id>.<hex>`: the orders certform placed,
/// such as the one a renewal replaced, which runs out on its own). Of the live orders that
/// are not certform's, one whose names are exactly those of a certificate state holds at this
/// account is a **duplicate** of it; the others are **unmanaged**.
pub fn classify(
    ca: &str,
    orders: &[AccountOrder],
    state: &State,
    now: OffsetDateTime,
) -> CaInventory {
    let mut order_ids: BTreeSet<&str> = BTreeSet::new();
    let mut serials: BTreeSet<&str> = BTreeSet::new();
    let mut certificate_ids: BTreeSet<&str> = BTreeSet::new();
    let mut managed_names: BTreeMap<BTreeSet<String>, &str> = BTreeMap::new();
    for (name, certificate) in &state.certificates {
        certificate_ids.insert(certificate.id.as_str());
        serials.extend(certificate.serial.as_ref().map(|s| s.as_str()));
        serials.extend(
            certificate
                .history
                .iter()
                .filter_map(|entry| entry.serial.as_ref().map(|s| s.as_str())),
        );
        if certificate.ca == ca {
            order_ids.extend(certificate.order_id.as_deref());
            managed_names
                .entry(name_set(&certificate.common_name, &certificate.sans))
                .or_insert(name.as_str());
        }
        if let Some(intent) = certificate.intent.as_ref().filter(|i| i.ca == ca) {
            order_ids.extend(intent.order_id.as_deref());
        }
    }
    let ours = |order: &AccountOrder| {
        order_ids.contains(order.order_id.as_str())
            || order
                .serial
                .as_ref()
                .is_some_and(|serial| serials.contains(serial.as_str()))
            || order.tag.as_deref().is_some_and(|tag| {
                // `<certificate id>.<hex>`: one lookup, not one comparison per certificate.
                tag.rsplit_once('.')
                    .is_some_and(|(id, _)| certificate_ids.contains(id))
            })
    };
    let mut unmanaged = Vec::new();
    let mut duplicate = Vec::new();
    for order in orders {
        if !is_live(order, now) || ours(order) {
            continue;
        }
        let finding = |certificate: Option<&str>| Finding {
            order_id: order.order_id.clone(),
            common_name: order.common_name.clone(),
            status: order.status.clone(),
            not_after: order.not_after,
            certificate: certificate.map(str::to_string),
        };
        match managed_names.get(&name_set(&order.common_name, &order.names)) {
            Some(certificate) => duplicate.push(finding(Some(certificate))),
            None => unmanaged.push(finding(None)),
        }
    }
    let sort = |findings: &mut Vec<Finding>| {
        findings.sort_by(|a, b| {
            (&a.certificate, &a.common_name, &a.order_id).cmp(&(
                &b.certificate,
                &b.common_name,
                &b.order_id,
            ))
        });
    };
    sort(&mut unmanaged);
    sort(&mut duplicate);
    let (unmanaged_total, duplicate_total) = (unmanaged.len(), duplicate.len());
    unmanaged.truncate(MAX_LISTED);
    duplicate.truncate(MAX_LISTED);
    CaInventory {
        format: FORMAT,
        ca: ca.to_string(),
        listed_at: now.replace_nanosecond(0).unwrap_or(now),
        orders: orders.len(),
        unmanaged_total,
        duplicate_total,
        unmanaged,
        duplicate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{CertificateState, HistoryEntry, Intent, IntentKind};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2027-01-01 00:00 UTC);

    fn order(id: &str, cn: &str, names: &[&str], status: &str) -> AccountOrder {
        AccountOrder {
            order_id: id.to_string(),
            status: status.to_string(),
            common_name: cn.to_string(),
            names: names.iter().map(|n| n.to_string()).collect(),
            serial: None,
            tag: None,
            not_after: Some(NOW + Duration::days(30)),
            settings: Vec::new(),
            certificate_id: None,
            lineage: Default::default(),
        }
    }

    fn recorded(name: &str, ca: &str, order_id: &str, sans: &[&str]) -> CertificateState {
        let text = format!(
            "format = 1\nname = \"{name}\"\nid = \"cf-{name}\"\nca = \"{ca}\"\nstatus = \"issued\"\norder_id = \"{order_id}\"\nserial = \"0a{name}\"\ncommon_name = \"{}\"\nsans = {sans:?}\nkey_algorithm = \"ecdsa-p256\"\nspec_digest = \"x\"\n",
            sans[0]
        );
        toml::from_str(&text).expect("state")
    }

    fn state(entries: Vec<CertificateState>) -> State {
        State {
            certificates: entries.into_iter().map(|c| (c.name.clone(), c)).collect(),
            ..State::default()
        }
    }

    fn ids(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.order_id.as_str()).collect()
    }

    #[test]
    fn a_certform_tag_names_the_certificate_it_was_placed_for() {
        assert_eq!(
            tagged_certificate("cf-0011223344556677.a1b2c3d4e5f6"),
            Some("cf-0011223344556677")
        );
        for other in [
            "",
            "cf-0011223344556677",
            "cf-.a1b2",
            "cf-0011.",
            "cf-0011.xyz",
            "po-7731.a1b2",
            "certform 7731",
        ] {
            assert_eq!(tagged_certificate(other), None, "{other:?}");
        }
    }

    #[test]
    fn orders_state_knows_are_neither_unmanaged_nor_duplicate() {
        let mut web = recorded("web", "dc", "1", &["a.example", "www.a.example"]);
        web.intent = Some(Box::new(Intent {
            kind: IntentKind::Renew,
            ca: "dc".into(),
            started: NOW,
            tag: "cf-web.00112233".into(),
            key_algorithm: "ecdsa-p256".into(),
            common_name: "a.example".into(),
            sans: Vec::new(),
            spec_digest: String::new(),
            spec_fields: Default::default(),
            order_id: Some("2".into()),
        }));
        web.history.push(HistoryEntry {
            at: NOW,
            action: "renew".into(),
            serial: Some("0b".into()),
            note: String::new(),
        });
        let names = ["a.example", "www.a.example"];
        let by_serial = AccountOrder {
            serial: Some("0b".into()),
            ..order("3", "a.example", &names, "issued")
        };
        let by_tag = AccountOrder {
            tag: Some("cf-web.99887766".into()),
            ..order("4", "a.example", &names, "issued")
        };
        let orders = [
            order("1", "a.example", &names, "issued"),
            order("2", "a.example", &names, "pending"),
            by_serial,
            by_tag,
        ];
        let found = classify("dc", &orders, &state(vec![web]), NOW);
        assert_eq!((found.unmanaged_total, found.duplicate_total), (0, 0));
        assert_eq!(found.orders, 4);
        assert_eq!(found.listed_at, NOW);
    }

    #[test]
    fn a_live_order_for_a_managed_certificates_names_is_a_duplicate() {
        let web = recorded("web", "dc", "1", &["a.example", "www.a.example"]);
        let orders = [
            order("1", "a.example", &["a.example", "www.a.example"], "issued"),
            // Same names, other order, other case and order of names.
            order(
                "7",
                "www.a.example",
                &["WWW.A.example", "a.example"],
                "issued",
            ),
            // A subset of the names is another certificate: unmanaged.
            order("8", "a.example", &["a.example"], "pending"),
            order("9", "b.example", &[], "issued"),
        ];
        let found = classify("dc", &orders, &state(vec![web]), NOW);
        assert_eq!(ids(&found.duplicate), ["7"]);
        assert_eq!(found.duplicate[0].certificate.as_deref(), Some("web"));
        assert_eq!(ids(&found.unmanaged), ["8", "9"]);
        assert_eq!(found.unmanaged[0].certificate, None);
        assert_eq!((found.unmanaged_total, found.duplicate_total), (2, 1));
    }

    #[test]
    fn ended_orders_are_not_reported() {
        let mut expired = order("5", "c.example", &[], "issued");
        expired.not_after = Some(NOW);
        let mut no_date = order("6", "c.example", &[], "pending");
        no_date.not_after = None;
        let orders = [
            order("1", "c.example", &[], "revoked"),
            order("2", "c.example", &[], "canceled"),
            order("3", "c.example", &[], "rejected"),
            order("4", "c.example", &[], "expired"),
            expired,
            no_date,
        ];
        let found = classify("dc", &orders, &State::default(), NOW);
        assert_eq!(ids(&found.unmanaged), ["6"]);
        assert_eq!(found.orders, 6);
    }

    #[test]
    fn another_accounts_order_ids_do_not_count_and_its_certificates_have_no_duplicates() {
        // `1` is `web`'s order at `other`; at `dc` the same id is someone else's order.
        let web = recorded("web", "other", "1", &["a.example"]);
        let orders = [order("1", "a.example", &["a.example"], "issued")];
        let found = classify("dc", &orders, &state(vec![web]), NOW);
        assert_eq!(ids(&found.unmanaged), ["1"]);
        assert_eq!(found.duplicate_total, 0);
        // A tag of another certificate id is not certform's.
        let mut tagged = order("2", "z.example", &[], "issued");
        tagged.tag = Some("cf-webx.0011".into());
        let web = recorded("web", "dc", "1", &["a.example"]);
        let found = classify("dc", &[tagged], &state(vec![web]), NOW);
        assert_eq!(ids(&found.unmanaged), ["2"]);
    }

    #[test]
    fn the_record_keeps_at_most_max_listed_and_counts_all() {
        let orders: Vec<AccountOrder> = (0..MAX_LISTED + 7)
            .map(|i| order(&format!("{i:03}"), "x.example", &[], "issued"))
            .collect();
        let found = classify("dc", &orders, &State::default(), NOW);
        assert_eq!(found.unmanaged.len(), MAX_LISTED);
        assert_eq!(found.unmanaged_total, MAX_LISTED + 7);
        assert_eq!(found.unmanaged[0].order_id, "000");
        assert_eq!(found.problem(), None);
    }

    #[test]
    fn daily_lists_once_a_day_every_run_always_off_never() {
        let last = classify("dc", &[], &State::default(), NOW);
        let at = |hours: i64| NOW + Duration::hours(hours);
        assert!(Schedule::Daily.is_due(None, NOW));
        assert!(!Schedule::Daily.is_due(Some(&last), at(0)));
        assert!(!Schedule::Daily.is_due(Some(&last), at(23)));
        assert!(Schedule::Daily.is_due(Some(&last), at(24)));
        assert!(
            Schedule::Daily.is_due(Some(&last), at(-1)),
            "from the future"
        );
        assert!(Schedule::EveryRun.is_due(Some(&last), at(0)));
        assert!(!Schedule::Off.is_due(None, at(0)));
        assert_eq!(Schedule::default(), Schedule::Daily);
    }

    #[test]
    fn a_record_whose_counts_do_not_add_up_names_the_key() {
        let mut record = classify(
            "dc",
            &[order("1", "x.example", &[], "issued")],
            &State::default(),
            NOW,
        );
        assert_eq!(record.problem(), None);
        record.unmanaged_total = 0;
        assert_eq!(record.problem().map(|p| p.0), Some("unmanaged_total"));
        record.unmanaged_total = 1;
        record.duplicate.push(record.unmanaged[0].clone());
        assert_eq!(record.problem().map(|p| p.0), Some("duplicate_total"));
        record.duplicate.clear();
        record.duplicate_total = 1;
        assert_eq!(record.problem().map(|p| p.0), Some("orders"));
    }

    #[test]
    fn only_a_listing_that_reports_something_new_is_written() {
        let stray = [order("9", "b.example", &[], "issued")];
        let nothing = classify("dc", &[], &State::default(), NOW);
        let found = classify("dc", &stray, &State::default(), NOW);
        assert!(!nothing.changes(None), "nothing to report, no record");
        assert!(found.changes(None));
        let later = classify("dc", &stray, &State::default(), NOW + Duration::days(2));
        assert!(!later.changes(Some(&found)), "same findings, later listing");
        assert!(nothing.changes(Some(&found)), "the stray is gone");
        let note = ListingNote {
            listed_at: later.listed_at,
            orders: 7,
        };
        let folded = found.clone().noted(note);
        assert_eq!((folded.listed_at, folded.orders), (later.listed_at, 7));
        let older = ListingNote {
            listed_at: NOW - Duration::days(1),
            orders: 3,
        };
        assert_eq!(found.clone().noted(older), found);
        let empty = CaInventory::empty("dc", note);
        assert!(!empty.has_findings() && empty.problem().is_none());
        assert_eq!(empty.listed_at, later.listed_at);
    }

    #[test]
    fn orders_adopted_since_the_listing_are_no_longer_reported() {
        let web = recorded("web", "dc", "1", &["a.example"]);
        let orders = [
            order("7", "a.example", &["a.example"], "issued"),
            order("8", "b.example", &[], "issued"),
            order("9", "c.example", &[], "issued"),
        ];
        let listed = classify("dc", &orders, &state(vec![web.clone()]), NOW);
        assert_eq!((listed.unmanaged_total, listed.duplicate_total), (2, 1));
        // `8` was imported as `b`; `9` is `c`'s order at another account only.
        let b = recorded("b", "dc", "8", &["b.example"]);
        let c = recorded("c", "other", "9", &["c.example"]);
        let now = listed
            .clone()
            .without_adopted(&state(vec![web.clone(), b, c]));
        assert_eq!(ids(&now.unmanaged), ["9"]);
        assert_eq!((now.unmanaged_total, now.duplicate_total), (1, 1));
        // The duplicate order became `web`'s (e.g. `state` edited to track it).
        let moved = recorded("web", "dc", "7", &["a.example"]);
        let now = listed.without_adopted(&state(vec![moved]));
        assert_eq!((now.unmanaged_total, now.duplicate_total), (2, 0));
    }

    #[test]
    fn status_word_decides_liveness() {
        assert!(is_live(&order("1", "x", &[], "needs_approval"), NOW));
        assert!(!is_live(&order("1", "x", &[], "invalid"), NOW));
    }
}
