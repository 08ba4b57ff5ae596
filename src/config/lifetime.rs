//! Lifetimes against the CA's limits by date: a CA that caps certificates (DigiCert's 199
//! days from 2026-02-24, shorter from 2027 and 2029: `Capabilities::max_lifetime`) issues
//! less than `validity` asks, and `renew_before` must be shorter than what it *issues*, not
//! than what was asked; otherwise every run would renew again.
//!
//! Pure: the date comes in as an argument (the run's clock, `CERTFORM_NOW` in tests).

use time::Date;

use super::model::{Config, Diagnostic};
use crate::capabilities::{lifetime_on, LifetimeStep};
use crate::spec::{CertificateSpec, RenewBefore, Validity};

/// The findings of one check: errors stop the run, warnings are shown.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LifetimeFindings {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// Check every certificate's `validity` and `renew_before` against the maximum lifetime its
/// CA issues on `today`.
pub fn check(config: &Config, today: Date) -> LifetimeFindings {
    let mut findings = LifetimeFindings::default();
    for spec in config.certificates.values() {
        let Some(ca) = config.cas.get(&spec.ca) else {
            continue;
        };
        let steps = ca.kind.capabilities().max_lifetime;
        let kind = ca.kind.name();
        check_one(spec, kind, steps, today, &mut findings);
    }
    findings
}

/// The days `validity` asks for when the certificate is issued on `today`.
fn asked_days(validity: Validity, today: Date) -> i64 {
    match validity {
        Validity::Days(days) => i64::from(days),
        Validity::Years(years) => 365 * i64::from(years),
        Validity::Until(date) => (date - today).whole_days(),
    }
}

fn check_one(
    spec: &CertificateSpec,
    kind: &str,
    steps: &[LifetimeStep],
    today: Date,
    findings: &mut LifetimeFindings,
) {
    let Some(step) = lifetime_on(steps, today) else {
        return;
    };
    let cap = i64::from(step.days);
    let asked = asked_days(spec.validity, today);
    let issued = asked.min(cap);
    let limit = format!(
        "the {cap}-day certificates `{}` ({kind}) issues from {}",
        spec.ca, step.from
    );
    if let RenewBefore::Duration(margin) = spec.renew_before {
        if margin.whole_seconds() >= issued * 86_400 {
            let what = if asked > cap {
                format!(
                    "{limit} (`validity` {} buys the order, not a longer certificate)",
                    spec.validity.describe()
                )
            } else {
                format!("the {issued}-day lifetime of `validity`")
            };
            findings.errors.push(Diagnostic {
                location: spec.location.clone(),
                key: format!("certificate.{}.renew_before", spec.name),
                message: format!(
                    "`renew_before` ({}) is not shorter than {what}: every run would renew it",
                    spec.renew_before.describe()
                ),
                hint: Some(format!(
                    "make `renew_before` shorter than {issued}d, e.g. `{}d`, or a share such as `33%`",
                    (issued / 3).max(1)
                )),
            });
        }
    }
    if asked > cap && !matches!(spec.validity, Validity::Years(_)) {
        findings.warnings.push(Diagnostic {
            location: spec.location.clone(),
            key: format!("certificate.{}.validity", spec.name),
            message: format!(
                "`validity` {} is longer than {limit}: each certificate lasts at most {cap} days",
                spec.validity.describe()
            ),
            hint: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::DIGICERT_LIFETIMES;
    use time::macros::date;
    use time::Duration;

    const CONFIG: &str = "[state]\nrepo = \"/state\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = { env = \"DIGICERT_API_KEY\" }\nurl = \"https://dc.example.test/services/v2/\"\n\n[certificate.web]\nca = \"dc\"\ncommon_name = \"www.example.test\"\nproduct = \"ssl_basic\"\norganization = 1\n";

    fn config() -> Config {
        crate::config::load(&[crate::config::Source {
            path: "/c/certform.toml".into(),
            text: CONFIG.to_string(),
        }])
        .expect("a valid configuration")
    }

    fn spec(validity: Validity, renew_before: RenewBefore) -> CertificateSpec {
        let mut spec = config().certificates["web"].clone();
        spec.validity = validity;
        spec.renew_before = renew_before;
        spec
    }

    fn run(spec: &CertificateSpec, today: Date) -> LifetimeFindings {
        let mut findings = LifetimeFindings::default();
        check_one(spec, "digicert", DIGICERT_LIFETIMES, today, &mut findings);
        findings
    }

    const TODAY: Date = date!(2026 - 12 - 02);

    #[test]
    fn renew_before_longer_than_the_issued_lifetime_is_an_error() {
        let findings = run(
            &spec(
                Validity::Years(1),
                RenewBefore::Duration(Duration::days(250)),
            ),
            TODAY,
        );
        assert_eq!(findings.errors.len(), 1, "{findings:?}");
        let error = &findings.errors[0];
        assert_eq!(error.key, "certificate.web.renew_before");
        assert_eq!(
            error.message,
            "`renew_before` (250d) is not shorter than the 199-day certificates `dc` (digicert) issues from 2026-02-24 (`validity` 1 year buys the order, not a longer certificate): every run would renew it"
        );
        assert_eq!(
            error.hint.as_deref(),
            Some("make `renew_before` shorter than 199d, e.g. `66d`, or a share such as `33%`")
        );
        assert!(findings.warnings.is_empty(), "years buy a plan: no warning");
    }

    #[test]
    fn the_boundary_is_the_issued_lifetime_itself() {
        let at = |days| {
            run(
                &spec(
                    Validity::Years(1),
                    RenewBefore::Duration(Duration::days(days)),
                ),
                TODAY,
            )
            .errors
            .len()
        };
        assert_eq!(at(198), 0);
        assert_eq!(at(199), 1);
        // Before DigiCert's cut, 1 year was issued as asked (under 397 days).
        let before = run(
            &spec(
                Validity::Years(1),
                RenewBefore::Duration(Duration::days(250)),
            ),
            date!(2026 - 02 - 23),
        );
        assert!(before.errors.is_empty(), "{before:?}");
        // From 2027-03-15 the cap is 99 days.
        let later = run(
            &spec(
                Validity::Years(1),
                RenewBefore::Duration(Duration::days(120)),
            ),
            date!(2027 - 03 - 15),
        );
        assert_eq!(later.errors.len(), 1, "{later:?}");
        assert!(later.errors[0].message.contains("99-day"));
    }

    #[test]
    fn a_validity_shorter_than_the_cap_is_checked_against_itself() {
        let findings = run(
            &spec(
                Validity::Days(90),
                RenewBefore::Duration(Duration::days(90)),
            ),
            TODAY,
        );
        assert_eq!(findings.errors.len(), 1);
        assert!(findings.errors[0]
            .message
            .contains("not shorter than the 90-day lifetime of `validity`"));
        let fine = run(
            &spec(
                Validity::Days(90),
                RenewBefore::Duration(Duration::days(30)),
            ),
            TODAY,
        );
        assert_eq!(fine, LifetimeFindings::default());
    }

    #[test]
    fn a_validity_at_the_cap_is_its_own_lifetime_and_years_count_365_days() {
        let findings = run(
            &spec(
                Validity::Days(199),
                RenewBefore::Duration(Duration::days(200)),
            ),
            TODAY,
        );
        assert_eq!(findings.errors.len(), 1);
        assert!(
            findings.errors[0]
                .message
                .contains("not shorter than the 199-day lifetime of `validity`: every run"),
            "{findings:?}"
        );
        assert!(findings.warnings.is_empty(), "199 days is not past the cap");
        // Under the 397-day cap (before 2026-02-24) a year is 365 days, two are capped.
        let before = date!(2026 - 01 - 01);
        let year = |days| {
            run(
                &spec(
                    Validity::Years(1),
                    RenewBefore::Duration(Duration::days(days)),
                ),
                before,
            )
            .errors
            .len()
        };
        assert_eq!((year(364), year(365)), (0, 1));
        let two = run(
            &spec(
                Validity::Years(2),
                RenewBefore::Duration(Duration::days(300)),
            ),
            before,
        );
        assert!(two.errors.is_empty(), "{two:?}");
        let two = run(
            &spec(
                Validity::Years(2),
                RenewBefore::Duration(Duration::days(397)),
            ),
            before,
        );
        assert_eq!(two.errors.len(), 1, "{two:?}");
    }

    #[test]
    fn days_past_the_cap_warn_and_shares_never_fail() {
        let findings = run(&spec(Validity::Days(365), RenewBefore::Percent(33)), TODAY);
        assert!(findings.errors.is_empty());
        assert_eq!(findings.warnings.len(), 1);
        assert_eq!(
            findings.warnings[0].message,
            "`validity` 365 days is longer than the 199-day certificates `dc` (digicert) issues from 2026-02-24: each certificate lasts at most 199 days"
        );
        let until = run(
            &spec(
                Validity::Until(date!(2027 - 12 - 31)),
                RenewBefore::Percent(50),
            ),
            TODAY,
        );
        assert_eq!(until.warnings.len(), 1);
    }

    #[test]
    fn check_reads_the_ca_of_each_certificate() {
        let mut config = config();
        let web = config.certificates.get_mut("web").expect("web");
        web.validity = Validity::Years(1);
        web.renew_before = RenewBefore::Duration(Duration::days(250));
        let findings = check(&config, TODAY);
        assert_eq!(findings.errors.len(), 1, "{findings:?}");
        assert_eq!(
            findings.errors[0].to_string(),
            "/c/certform.toml:9:1: `certificate.web.renew_before`: `renew_before` (250d) is not shorter than the 199-day certificates `dc` (digicert) issues from 2026-02-24 (`validity` 1 year buys the order, not a longer certificate): every run would renew it (hint: make `renew_before` shorter than 199d, e.g. `66d`, or a share such as `33%`)"
        );
        // The built-in local CA has no limits.
        let web = config.certificates.get_mut("web").expect("web");
        web.ca = "local".to_string();
        assert_eq!(check(&config, TODAY), LifetimeFindings::default());
    }

    #[test]
    fn a_ca_without_limits_is_not_checked() {
        let mut findings = LifetimeFindings::default();
        check_one(
            &spec(
                Validity::Days(90),
                RenewBefore::Duration(Duration::days(400)),
            ),
            "local",
            &[],
            TODAY,
            &mut findings,
        );
        assert_eq!(findings, LifetimeFindings::default());
    }
}
