//! `[certificate.NAME]`: one desired certificate, with the defaults folded in.

use super::*;
use crate::ca::registry;

impl<'a> Validator<'a> {
    pub(super) fn certificate(
        &mut self,
        file: usize,
        name: &str,
        table: &CertificateTable,
        defaults: &Defaults,
    ) -> Option<CertificateSpec> {
        let before = self.error_count();
        let path = KeyPath::root().key("certificate").key(name);
        let base = self.base_dir(file);
        let origin = Origin { file, base: &base };

        let ca = match (&table.ca, &defaults.ca) {
            (Some(ca), _) => {
                self.check_ca(file, &path.key("ca"), ca);
                Some(ca.clone())
            }
            (None, Some(ca)) => Some(ca.clone()),
            (None, None) if self.declared_cas.is_empty() => Some(IMPLICIT_CA.to_string()),
            // With exactly one CA account declared there is nothing to choose.
            (None, None) if self.declared_cas.len() == 1 => {
                self.declared_cas.iter().next().cloned()
            }
            (None, None) => {
                let defined = list(self.declared_cas.iter());
                self.error_with_hint(
                    file,
                    &path,
                    Anchor::Value,
                    format!("certificate `{name}` names no CA"),
                    Some(format!(
                        "set `ca` here or `ca` in `[defaults]`; defined CAs: {defined}"
                    )),
                );
                self.findings_last_key(path.key("ca"));
                None
            }
        };

        let common_name = match dns_name(&table.common_name) {
            Ok(common_name) => Some(common_name),
            Err(message) => {
                self.error(file, &path.key("common_name"), Anchor::Value, message);
                None
            }
        };
        let mut names: Vec<DnsName> =
            Vec::with_capacity(1 + table.sans.as_ref().map_or(0, Vec::len));
        names.extend(common_name.iter().cloned());
        for (index, san) in table.sans.iter().flatten().enumerate() {
            match dns_name(san) {
                Ok(san) => names.push(san),
                Err(message) => {
                    self.error(file, &path.key("sans").index(index), Anchor::Value, message)
                }
            }
        }
        names.sort();
        names.dedup();

        let own_key = Setting::checked(
            table
                .key
                .as_ref()
                .map(|key| self.key(file, &path.key("key"), key)),
        );
        let own_validity = Setting::checked(
            table
                .validity
                .as_ref()
                .map(|validity| self.validity(file, &path.key("validity"), validity)),
        );
        let own_renew_before = Setting::checked(
            table
                .renew_before
                .as_deref()
                .map(|text| self.renew_before(file, &path.key("renew_before"), text)),
        );
        let key = own_key.or(defaults.key, KeySpec::Ecdsa(256));
        let validity = own_validity.or(defaults.validity, Validity::Days(90));
        let renew_before = own_renew_before.or(defaults.renew_before, RenewBefore::Percent(33));
        if let (Some(renew), Some(lifetime)) = (renew_before, validity) {
            if own_renew_before.is_given() || own_validity.is_given() {
                let at = if own_renew_before.is_given() {
                    path.key("renew_before")
                } else {
                    path.key("validity")
                };
                self.check_lifetime(file, &at, renew, lifetime, &format!("certificate `{name}`"));
            }
        }

        let on_remove = table
            .on_remove
            .map(on_remove)
            .or(defaults.on_remove)
            .unwrap_or_default();
        let reason = table.revoke_reason.map(revocation_reason);
        let revoke = if table.revoke.unwrap_or(false) {
            Some(reason.unwrap_or_default())
        } else {
            if reason.is_some() && on_remove != OnRemove::Revoke {
                self.warning(
                    file,
                    &path.key("revoke_reason"),
                    "`revoke_reason` has no effect without `revoke = true` or `on_remove = \"revoke\"`"
                        .to_string(),
                );
            }
            None
        };

        let dcv = match &table.dcv {
            Some(field) if !names.is_empty() => self.dcv(origin, name, &path, field, &names),
            _ => Vec::new(),
        };
        let deploy = self.deploy(
            origin,
            name,
            &path,
            table.deploy.as_deref().unwrap_or_default(),
            table
                .deploy_to_serving
                .unwrap_or(false)
                .then_some(names.as_slice()),
        );
        let ca_options = self.order_options(file, &path, table, ca.as_deref(), &dcv);

        if self.error_count() > before {
            return None;
        }
        // The spec lives as long as the run, 10,000 of them in a large fleet: no vector keeps
        // the spare room its growth left (a `DeployTarget` is ~370 bytes, and the first push
        // reserves four).
        names.shrink_to_fit();
        let mut dcv = dcv;
        dcv.shrink_to_fit();
        let mut deploy = deploy;
        deploy.shrink_to_fit();
        Some(CertificateSpec {
            name: name.to_string(),
            ca: ca?,
            common_name: common_name?,
            sans: names,
            key: key?,
            validity: validity?,
            renew_before: renew_before?,
            on_remove,
            revoke,
            prevent_destroy: table.prevent_destroy.unwrap_or(false),
            revoke_reason: reason,
            dcv,
            deploy,
            ca_options,
            location: self.location(file, &path),
        })
    }

    /// The fields of a certificate that only some kinds of CA take (`product`, ...), checked
    /// by its CA's kind into the typed `ca_options` carried to the CA; an error for each such field
    /// its CA does not take.
    pub(super) fn order_options(
        &mut self,
        file: usize,
        path: &KeyPath,
        table: &CertificateTable,
        ca: Option<&str>,
        dcv: &[DcvRule],
    ) -> registry::CaOptions {
        let kind = match ca {
            Some(ca) => match self.ca_kinds.get(ca) {
                Some(kind) => *kind,
                None if ca == IMPLICIT_CA => "local",
                None => return registry::CaOptions::default(),
            },
            None => return registry::CaOptions::default(),
        };
        let given = [
            ("product", table.product.is_some()),
            ("organization", table.organization.is_some()),
            ("payment_method", table.payment_method.is_some()),
            ("signature_hash", table.signature_hash.is_some()),
            ("server_platform", table.server_platform.is_some()),
            ("profile", table.profile.is_some()),
            ("term", table.term.is_some()),
            ("comments", table.comments.is_some()),
            ("external_requesters", table.external_requesters.is_some()),
            ("custom_fields", table.custom_fields.is_some()),
        ];
        let taken = registry::certificate_fields(kind);
        for (key, _) in given
            .iter()
            .filter(|(key, given)| *given && !taken.contains(key))
        {
            let takers: Vec<String> = registry::KIND_NAMES
                .iter()
                .filter(|kind| registry::certificate_fields(kind).contains(key))
                .map(|kind| format!("`kind = \"{kind}\"`"))
                .collect();
            self.error_with_hint(
                file,
                &path.key(key),
                Anchor::Key,
                format!(
                    "`{key}` applies only to certificates of a {} CA, and `{}` is not one",
                    takers.join(" or "),
                    ca.unwrap_or_default()
                ),
                Some(format!(
                    "remove `{key}` or set `ca` to an account of that kind"
                )),
            );
        }
        registry::order_options(kind, self, file, path, table, dcv)
    }
}
