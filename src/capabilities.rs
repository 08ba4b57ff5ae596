//! What a CA kind can do, as plain data: the planner chooses actions from it and the executor
//! decides from it whether a lost answer may be retried.
//!
//! It lives at the crate root, not in `ca/`, so the pure core (`plan/`) depends on no provider
//! code. Each provider declares its value as a `const`; nothing here performs I/O.

/// How a CA lets certform find an order whose creation answer never arrived (a crash, a lost
/// response), so the order is adopted instead of placed a second time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicatePrevention {
    /// certform's tag is stored with the order at the CA (DigiCert: the order's comments), and
    /// `refresh` finds the order by tag even when the create answer was lost in transit.
    TagAtCa,
    /// The tag is kept in an index beside the account and found by `refresh` by tag. The local
    /// CA writes it in the same transaction as the order. ACME orders carry no client label:
    /// certform writes `tag → order URL` right after `newOrder` answers, so an answer lost in
    /// transit leaves an order the index does not know; such an ACME order costs nothing and
    /// expires unused, so retrying is safe there. (RFC 8555's account `orders` list could name
    /// it; Pebble serves one, Let's Encrypt does not.)
    LocalIndex,
    /// Orders cannot be found by tag: a create whose answer was lost must not be sent again
    /// without asking the user, who checks the account first.
    None,
}

impl DuplicatePrevention {
    /// Whether `refresh` can find an order by certform's tag, so a create whose outcome is
    /// unknown may be looked up and, when absent, sent again.
    pub fn finds_by_tag(self) -> bool {
        !matches!(self, DuplicatePrevention::None)
    }
}

/// What a CA can do; the planner and executor choose actions from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Can reissue (new key/SANs) on the same order instead of placing a new one.
    pub reissue_same_order: bool,
    /// Supports cancelling pending orders.
    pub cancel: bool,
    /// Supports revocation.
    pub revoke: bool,
    /// How a create whose answer was lost is found again.
    pub duplicates: DuplicatePrevention,
    /// Cancelling a pending order gives its price back (DigiCert: a pending order's funds
    /// return to the account). `false` for CAs that charge nothing or keep the money.
    pub cancel_refunds: bool,
    /// The certificate lives as long as the order asks (`validity`). `false` for CAs that
    /// decide the lifetime themselves (ACME: certform sends no `notAfter`, which most ACME CAs
    /// reject, and Pebble issues for five years): the plan warns when it orders from them.
    pub honours_validity: bool,
    /// Most new orders (create, renew, reissue) one run sends to one account of this CA, from
    /// its documented rate limits; `None`: no limit (the local CA). `[ca.NAME]
    /// max_orders_per_run` overrides it per account.
    pub max_orders_per_run: Option<u32>,
    /// The longest certificate the CA issues, by issue date (oldest step first); empty when
    /// the CA sets no known limit (or, like ACME, decides the lifetime itself). A `validity`
    /// longer than the step in force buys the CA's *plan* (DigiCert: an order covered by
    /// reissues until `order_valid_till`), not a longer certificate.
    pub max_lifetime: &'static [LifetimeStep],
    /// How many of this account's certificates one `apply` works on at once unless
    /// `--parallelism` sets one number for the whole run: from the CA's rate limits and what
    /// one certificate costs it (the local CA is bound by local file writes and fsyncs, which
    /// overlap well; a paid CA's API by its request limits).
    pub parallel_certificates: usize,
}

/// From `from` (an issue date, UTC), certificates last at most `days` days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifetimeStep {
    pub from: time::Date,
    pub days: u32,
}

impl LifetimeStep {
    pub const fn new(from: time::Date, days: u32) -> Self {
        Self { from, days }
    }
}

/// The step of `steps` in force on `on`; `None` before the first step or without steps.
pub fn lifetime_on(steps: &[LifetimeStep], on: time::Date) -> Option<LifetimeStep> {
    steps.iter().rev().find(|step| step.from <= on).copied()
}

/// DigiCert's public TLS limits: one table, oldest first.
///
/// - 397 days since 2020-09-01 (docs.digicert.com, "End of 2-Year DV, OV, and EV public
///   SSL/TLS certificates").
/// - 199 days from 2026-02-24 (dev.digicert.com order and reissue pages: "Starting February
///   24, 2026, the maximum validity period for a Public TLS/SSL certificate will be 199 days").
/// - The CA/Browser Forum's SC-081 steps, 100 days from 2027-03-15 and 47 days from
///   2029-03-15, which DigiCert applies one day shorter ("DigiCert's implementation sets its
///   limits one day shorter", nicsrs.com/blog/digicert-moving-to-199-day-ssl-in-2026; the
///   order pages: "By 2029, the maximum validity period will be reduced to 46 days"): 99 and
///   46 days.
pub const DIGICERT_LIFETIMES: &[LifetimeStep] = &[
    LifetimeStep::new(time::macros::date!(2020 - 09 - 01), 397),
    LifetimeStep::new(time::macros::date!(2026 - 02 - 24), 199),
    LifetimeStep::new(time::macros::date!(2027 - 03 - 15), 99),
    LifetimeStep::new(time::macros::date!(2029 - 03 - 15), 46),
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{lifetime_on, DIGICERT_LIFETIMES};
    use time::macros::date;

    #[test]
    fn the_digicert_lifetime_follows_the_issue_date() {
        let days = |on| lifetime_on(DIGICERT_LIFETIMES, on).map(|step| step.days);
        assert_eq!(days(date!(2020 - 08 - 31)), None);
        assert_eq!(days(date!(2020 - 09 - 01)), Some(397));
        assert_eq!(days(date!(2026 - 02 - 23)), Some(397));
        assert_eq!(days(date!(2026 - 02 - 24)), Some(199));
        // SC-081's 200 days from 2026-03-15 does not lengthen DigiCert's 199.
        assert_eq!(days(date!(2026 - 12 - 02)), Some(199));
        assert_eq!(days(date!(2027 - 03 - 14)), Some(199));
        assert_eq!(days(date!(2027 - 03 - 15)), Some(99));
        assert_eq!(days(date!(2029 - 03 - 14)), Some(99));
        assert_eq!(days(date!(2029 - 03 - 15)), Some(46));
        assert_eq!(days(date!(2040 - 01 - 01)), Some(46));
        assert_eq!(lifetime_on(&[], date!(2027 - 01 - 01)), None);
    }

    /// The planner is pure: `src/plan/` imports nothing from the edges (`ca`, `apply`,
    /// `deploy`, `dns`, `sim`), only plain data such as `crate::capabilities`.
    #[test]
    fn the_plan_module_imports_no_edge_module() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plan");
        let forbidden = ["ca", "apply", "deploy", "dns", "sim", "http", "dcv"];
        let mut offences = Vec::new();
        let mut files = 0;
        for entry in std::fs::read_dir(&root).expect("src/plan is readable") {
            let path = entry.expect("a directory entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            for (number, line) in text.lines().enumerate() {
                for module in forbidden {
                    for prefix in ["crate::", "certform::"] {
                        let import = format!("{prefix}{module}");
                        let hit = line.match_indices(&import).any(|(at, _)| {
                            !line[at + import.len()..]
                                .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                        });
                        if hit {
                            offences.push(format!(
                                "{}:{}: {}",
                                path.display(),
                                number + 1,
                                line.trim()
                            ));
                        }
                    }
                }
            }
        }
        assert!(
            files >= 3,
            "expected the planner's files in {}",
            root.display()
        );
        assert!(
            offences.is_empty(),
            "src/plan reaches an edge module:\n{}",
            offences.join("\n")
        );
    }
}
