//! `[certificate.NAME]`: one desired certificate, with the defaults folded in.

use super::*;

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
        let mut names: Vec<DnsName> = common_name.iter().cloned().collect();
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
            if reason.is_some() {
                self.warning(
                    file,
                    &path.key("revoke_reason"),
                    "`revoke_reason` has no effect without `revoke = true`".to_string(),
                );
            }
            None
        };

        let dcv = match &table.dcv {
            Some(field) if !names.is_empty() => self.dcv(origin, &path, field, &names),
            _ => Vec::new(),
        };
        let deploy = self.deploy(origin, &path, table.deploy.as_deref().unwrap_or_default());
        let ca_options = self.digicert_options(file, &path, table, ca.as_deref(), &dcv);

        if self.error_count() > before {
            return None;
        }
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
            dcv,
            deploy,
            ca_options,
            location: self.location(file, &path),
        })
    }

    /// The DigiCert order fields of a certificate (`product`, `organization`, ...), as the
    /// `ca_options` carried to the CA; an error when they are given for another kind of CA.
    pub(super) fn digicert_options(
        &mut self,
        file: usize,
        path: &KeyPath,
        table: &CertificateTable,
        ca: Option<&str>,
        dcv: &[DcvRule],
    ) -> BTreeMap<String, String> {
        let mut options = BTreeMap::new();
        if ca.is_some_and(|ca| self.digicert_cas.contains(ca)) {
            // A DigiCert order has one DCV method for all its names.
            let methods: BTreeSet<&str> = dcv
                .iter()
                .map(|rule| match rule.method {
                    DcvMethod::Dns { .. } => "dns-txt-token",
                    DcvMethod::Http { .. } => "http-token",
                    DcvMethod::Email => "email",
                })
                .collect();
            if methods.len() > 1 {
                self.error(
                    file,
                    &path.key("dcv"),
                    Anchor::Key,
                    "a DigiCert order proves control of all its names one way: use one `dcv` method"
                        .to_string(),
                );
            }
            if let Some(method) = methods.into_iter().next() {
                options.insert("dcv_method".to_string(), method.to_string());
            }
        }
        if let Some(product) = &table.product {
            if product.trim().is_empty() {
                self.error(
                    file,
                    &path.key("product"),
                    Anchor::Value,
                    "`product` must not be empty".to_string(),
                );
            }
            options.insert("product".to_string(), product.trim().to_string());
        }
        if let Some(organization) = table.organization {
            if organization < 1 {
                self.error(
                    file,
                    &path.key("organization"),
                    Anchor::Value,
                    "`organization` must be a positive organization id".to_string(),
                );
            }
            options.insert("organization".to_string(), organization.to_string());
        }
        if let Some(method) = table.payment_method {
            let text = match method {
                PaymentMethodName::Balance => "balance",
                PaymentMethodName::Card => "card",
                PaymentMethodName::Profile => "profile",
            };
            options.insert("payment_method".to_string(), text.to_string());
        }
        if let Some(hash) = table.signature_hash {
            let text = match hash {
                SignatureHashName::Sha256 => "sha256",
                SignatureHashName::Sha384 => "sha384",
                SignatureHashName::Sha512 => "sha512",
            };
            options.insert("signature_hash".to_string(), text.to_string());
        }
        if let Some(platform) = table.server_platform {
            options.insert("server_platform".to_string(), platform.to_string());
        }
        let is_digicert = ca.is_some_and(|ca| self.digicert_cas.contains(ca));
        let known = ca.is_some_and(|ca| ca == IMPLICIT_CA || self.declared_cas.contains(ca));
        if !is_digicert && known {
            for key in options.keys() {
                self.error_with_hint(
                    file,
                    &path.key(key),
                    Anchor::Key,
                    format!(
                        "`{key}` applies only to certificates of a `kind = \"digicert\"` CA, and `{}` is not one",
                        ca.unwrap_or_default()
                    ),
                    Some(format!("remove `{key}` or set `ca` to a DigiCert account")),
                );
            }
        }
        options
    }
}
