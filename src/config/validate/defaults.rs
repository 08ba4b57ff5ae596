//! `[defaults]` and the settings it shares with certificates: key, validity, renewal.

use super::*;

impl<'a> Validator<'a> {
    pub(super) fn defaults(&mut self, file: usize, table: &DefaultsTable) -> Defaults {
        let path = KeyPath::root().key("defaults");
        if let Some(ca) = &table.ca {
            self.check_ca(file, &path.key("ca"), ca);
        }
        let renew_before = Setting::checked(
            table
                .renew_before
                .as_deref()
                .map(|text| self.renew_before(file, &path.key("renew_before"), text)),
        );
        let key = Setting::checked(
            table
                .key
                .as_ref()
                .map(|key| self.key(file, &path.key("key"), key)),
        );
        let validity = Setting::checked(
            table
                .validity
                .as_ref()
                .map(|validity| self.validity(file, &path.key("validity"), validity)),
        );
        if let (Setting::Set(renew), Setting::Set(lifetime)) = (renew_before, validity) {
            self.check_lifetime(
                file,
                &path.key("renew_before"),
                renew,
                lifetime,
                "`[defaults]`",
            );
        }
        let builtin = crate::plan::Thresholds::default();
        let thresholds = crate::plan::Thresholds {
            max_destructive: table
                .max_destructive
                .and_then(|n| self.threshold(file, "max_destructive", n, u64::MAX))
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(builtin.max_destructive),
            max_reissue_percent: table
                .max_reissue_percent
                .and_then(|n| self.threshold(file, "max_reissue_percent", n, 100))
                .and_then(|n| u8::try_from(n).ok())
                .unwrap_or(builtin.max_reissue_percent),
            max_renewals_per_run: table.max_renewals_per_run.and_then(|n| {
                match usize::try_from(n) {
                    Ok(n) if n >= 1 => Some(n),
                    _ => {
                        self.error_with_hint(
                            file,
                            &KeyPath::root().key("defaults").key("max_renewals_per_run"),
                            Anchor::Value,
                            format!("`max_renewals_per_run` must be 1 or more, not {n}"),
                            Some("leave it out for no limit".to_string()),
                        );
                        None
                    }
                }
            }),
        };
        Defaults {
            ca: table.ca.clone(),
            renew_before,
            key,
            validity,
            on_remove: table.on_remove.map(on_remove),
            thresholds,
        }
    }

    /// A safety threshold: a whole number from 0 to `max`.
    fn threshold(&mut self, file: usize, name: &str, value: i64, max: u64) -> Option<u64> {
        match u64::try_from(value) {
            Ok(n) if n <= max => Some(n),
            _ => {
                let range = if max == u64::MAX {
                    "0 or more".to_string()
                } else {
                    format!("from 0 to {max}")
                };
                self.error_with_hint(
                    file,
                    &KeyPath::root().key("defaults").key(name),
                    Anchor::Value,
                    format!("`{name}` must be {range}, not {value}"),
                    Some("`apply --force` overrides a threshold for one run".to_string()),
                );
                None
            }
        }
    }

    pub(super) fn renew_before(
        &mut self,
        file: usize,
        path: &KeyPath,
        text: &str,
    ) -> Option<RenewBefore> {
        match scalar::renew_before(text) {
            Ok(renew_before) => Some(renew_before),
            Err(message) => {
                self.error_with_hint(
                    file,
                    path,
                    Anchor::Value,
                    message,
                    Some(
                        "write a duration like `30d` or a share of the lifetime like `33%`"
                            .to_string(),
                    ),
                );
                None
            }
        }
    }

    pub(super) fn key(&mut self, file: usize, path: &KeyPath, table: &KeyTable) -> Option<KeySpec> {
        let size_path = path.key("size");
        match (table.algorithm, table.size) {
            (KeyAlgorithmName::Rsa, None) => Some(KeySpec::Rsa(2048)),
            (KeyAlgorithmName::Rsa, Some(size @ (2048 | 3072 | 4096))) => {
                u32::try_from(size).ok().map(KeySpec::Rsa)
            }
            (KeyAlgorithmName::Rsa, Some(size)) => {
                self.error_with_hint(
                    file,
                    &size_path,
                    Anchor::Value,
                    format!("unsupported RSA key size {size}"),
                    Some("RSA keys are 2048, 3072 or 4096 bits".to_string()),
                );
                None
            }
            (KeyAlgorithmName::Ecdsa, None) => Some(KeySpec::Ecdsa(256)),
            (KeyAlgorithmName::Ecdsa, Some(size @ (256 | 384))) => {
                u32::try_from(size).ok().map(KeySpec::Ecdsa)
            }
            (KeyAlgorithmName::Ecdsa, Some(size)) => {
                self.error_with_hint(
                    file,
                    &size_path,
                    Anchor::Value,
                    format!("unsupported ECDSA key size {size}"),
                    Some("ECDSA keys are 256 (P-256) or 384 (P-384) bits".to_string()),
                );
                None
            }
            (KeyAlgorithmName::Ed25519, None) => Some(KeySpec::Ed25519),
            (KeyAlgorithmName::Ed25519, Some(_)) => {
                self.error_with_hint(
                    file,
                    &size_path,
                    Anchor::Value,
                    "`ed25519` keys have a fixed size and take no `size`".to_string(),
                    Some("remove `size`".to_string()),
                );
                None
            }
        }
    }

    pub(super) fn validity(
        &mut self,
        file: usize,
        path: &KeyPath,
        table: &ValidityTable,
    ) -> Option<Validity> {
        let before = self.error_count();
        let until = table
            .until
            .as_deref()
            .and_then(|text| match scalar::date(text) {
                Ok(date) => Some(Validity::Until(date)),
                Err(message) => {
                    self.error(file, &path.key("until"), Anchor::Value, message);
                    None
                }
            });
        let days = table
            .days
            .and_then(|days| self.whole(file, &path.key("days"), "days", days, 36_500))
            .map(Validity::Days);
        let years = table
            .years
            .and_then(|years| self.whole(file, &path.key("years"), "years", years, 100))
            .map(Validity::Years);
        let given: Vec<&str> = [
            table.until.as_ref().map(|_| "until"),
            table.days.map(|_| "days"),
            table.years.map(|_| "years"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.is_empty() {
            self.error_with_hint(
                file,
                path,
                Anchor::Value,
                "`validity` is empty".to_string(),
                Some("set one of `days`, `years` or `until`".to_string()),
            );
            return None;
        }
        if given.len() > 1 {
            self.warning(
                file,
                path,
                format!(
                    "several lifetimes given ({}): `{}` applies (`until` wins over `days`, `days` over `years`)",
                    list(&given),
                    given[0]
                ),
            );
        }
        if self.error_count() > before {
            return None;
        }
        until.or(days).or(years)
    }

    pub(super) fn whole(
        &mut self,
        file: usize,
        path: &KeyPath,
        what: &str,
        value: i64,
        max: u32,
    ) -> Option<u32> {
        if value <= 0 {
            self.error(
                file,
                path,
                Anchor::Value,
                format!("`{what}` must be positive, found {value}"),
            );
            return None;
        }
        match u32::try_from(value) {
            Ok(value) if value <= max => Some(value),
            _ => {
                self.error(
                    file,
                    path,
                    Anchor::Value,
                    format!("`{what}` must be at most {max}, found {value}"),
                );
                None
            }
        }
    }

    /// `renew_before` must be shorter than the lifetime, or every run would renew.
    pub(super) fn check_lifetime(
        &mut self,
        file: usize,
        path: &KeyPath,
        renew_before: RenewBefore,
        validity: Validity,
        whose: &str,
    ) {
        let lifetime_days = match validity {
            Validity::Days(days) => i64::from(days),
            Validity::Years(years) => 365 * i64::from(years),
            Validity::Until(_) => return,
        };
        let RenewBefore::Duration(duration) = renew_before else {
            return;
        };
        if duration >= Duration::days(lifetime_days) {
            self.error_with_hint(
                file,
                path,
                Anchor::Value,
                format!(
                    "`renew_before` ({}) is not shorter than the lifetime ({}) of {whose}: it would renew on every run",
                    renew_before.describe(),
                    validity.describe()
                ),
                Some("use a shorter `renew_before` or a share like `33%`".to_string()),
            );
        }
    }
}
