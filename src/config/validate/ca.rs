//! `[ca.NAME]`: CA accounts and references to them.

use super::*;

impl<'a> Validator<'a> {
    pub(super) fn ca(&mut self, file: usize, name: &str, table: &CaTable) -> Option<CaSettings> {
        let path = KeyPath::root().key("ca").key(name);
        let kind_name = match table.kind {
            CaKindName::Local => "local",
            CaKindName::Acme => "acme",
            CaKindName::Digicert => "digicert",
        };
        let digicert_keys = [
            ("api_key", table.api_key.is_some()),
            ("url", table.url.is_some()),
            ("proxy", table.proxy.is_some()),
            ("mode", table.mode.is_some()),
        ];
        // Keys that belong to another kind.
        let foreign: Vec<&str> = match table.kind {
            CaKindName::Local => [
                ("directory", table.directory.is_some()),
                ("contact", table.contact.is_some()),
                ("ca_bundle", table.ca_bundle.is_some()),
                ("eab", table.eab.is_some()),
                ("profile", table.profile.is_some()),
                ("preferred_chain", table.preferred_chain.is_some()),
            ]
            .iter()
            .chain(digicert_keys.iter())
            .filter(|(_, given)| *given)
            .map(|(key, _)| *key)
            .collect(),
            CaKindName::Acme => [("root_common_name", table.root_common_name.is_some())]
                .iter()
                .chain(digicert_keys.iter())
                .filter(|(_, given)| *given)
                .map(|(key, _)| *key)
                .collect(),
            CaKindName::Digicert => [
                ("root_common_name", table.root_common_name.is_some()),
                ("directory", table.directory.is_some()),
                ("contact", table.contact.is_some()),
                ("ca_bundle", table.ca_bundle.is_some()),
                ("eab", table.eab.is_some()),
                ("profile", table.profile.is_some()),
                ("preferred_chain", table.preferred_chain.is_some()),
            ]
            .iter()
            .filter(|(_, given)| *given)
            .map(|(key, _)| *key)
            .collect(),
        };
        for key in &foreign {
            self.error(
                file,
                &path.key(key),
                Anchor::Key,
                format!("`{key}` does not apply to a CA of `kind = \"{kind_name}\"`"),
            );
        }
        if !foreign.is_empty() {
            return None;
        }
        match table.kind {
            CaKindName::Local => {
                let root_common_name = match &table.root_common_name {
                    Some(common_name) if common_name.trim().is_empty() => {
                        self.error(
                            file,
                            &path.key("root_common_name"),
                            Anchor::Value,
                            "`root_common_name` must not be empty".to_string(),
                        );
                        return None;
                    }
                    Some(common_name) => common_name.clone(),
                    None => default_root_common_name(name),
                };
                Some(CaSettings {
                    name: name.to_string(),
                    kind: CaKind::Local(LocalCaSettings { root_common_name }),
                    location: self.location(file, &path),
                })
            }
            CaKindName::Acme => self.acme(file, name, &path, table),
            CaKindName::Digicert => self.digicert(file, name, &path, table),
        }
    }

    pub(super) fn digicert(
        &mut self,
        file: usize,
        name: &str,
        path: &KeyPath,
        table: &CaTable,
    ) -> Option<CaSettings> {
        let before = self.error_count();
        let base = self.base_dir(file);
        let origin = Origin { file, base: &base };
        let api_key = match &table.api_key {
            None => {
                self.error_with_hint(
                    file,
                    path,
                    Anchor::Key,
                    format!("missing `api_key` for the DigiCert account `{name}`"),
                    Some("add `api_key = { env = \"DIGICERT_API_KEY\" }`".to_string()),
                );
                None
            }
            Some(secret) => self.secret(origin, &path.key("api_key"), secret),
        };
        let url = match &table.url {
            None => DIGICERT_URL.to_string(),
            Some(url) => match self.service_url(file, &path.key("url"), "url", url) {
                Some(url) if url.ends_with('/') => url,
                Some(url) => format!("{url}/"),
                None => String::new(),
            },
        };
        if let Some(proxy) = &table.proxy {
            // `http://host:port`: a plain HTTP proxy reached with CONNECT; no credentials in
            // config (they would be a plaintext secret).
            let valid = proxy
                .strip_prefix("http://")
                .map(|rest| rest.trim_end_matches('/'))
                .is_some_and(|authority| {
                    !authority.contains('@')
                        && !authority.contains('/')
                        && authority.rsplit_once(':').is_some_and(|(host, port)| {
                            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                        })
                });
            if !valid {
                self.error_with_hint(
                    file,
                    &path.key("proxy"),
                    Anchor::Value,
                    "`proxy` must be `http://host:port` (an HTTP proxy reached with CONNECT)"
                        .to_string(),
                    Some("credentials in the proxy URL are not supported".to_string()),
                );
            }
        }
        if self.error_count() > before {
            return None;
        }
        Some(CaSettings {
            name: name.to_string(),
            kind: CaKind::Digicert(DigicertCaSettings {
                api_key: api_key?,
                url,
                proxy: table.proxy.clone(),
                read_only: table.mode == Some(CaModeName::ReadOnly),
            }),
            location: self.location(file, path),
        })
    }

    pub(super) fn acme(
        &mut self,
        file: usize,
        name: &str,
        path: &KeyPath,
        table: &CaTable,
    ) -> Option<CaSettings> {
        let before = self.error_count();
        let base = self.base_dir(file);
        let origin = Origin { file, base: &base };
        let directory = match &table.directory {
            None => {
                self.error(
                    file,
                    path,
                    Anchor::Key,
                    format!("missing `directory` for the ACME account `{name}`"),
                );
                String::new()
            }
            Some(url) => self
                .service_url(file, &path.key("directory"), "directory", url)
                .unwrap_or_default(),
        };
        let mut contact = Vec::new();
        for (index, address) in table.contact.iter().flatten().enumerate() {
            let address = address.strip_prefix("mailto:").unwrap_or(address);
            let valid = address
                .split_once('@')
                .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
                && !address.contains(char::is_whitespace);
            if valid {
                contact.push(address.to_string());
            } else {
                self.error(
                    file,
                    &path.key("contact").index(index),
                    Anchor::Value,
                    "`contact` entries must be email addresses".to_string(),
                );
            }
        }
        let ca_bundle = table
            .ca_bundle
            .as_ref()
            .map(|bundle| scalar::absolute(&base, bundle));
        let eab = match &table.eab {
            None => None,
            Some(eab) => {
                if eab.kid.trim().is_empty() {
                    self.error(
                        file,
                        &path.key("eab").key("kid"),
                        Anchor::Value,
                        "`eab.kid` must not be empty".to_string(),
                    );
                }
                self.secret(origin, &path.key("eab").key("hmac"), &eab.hmac)
                    .map(|hmac| EabSettings {
                        kid: eab.kid.clone(),
                        hmac,
                    })
            }
        };
        for (key, value) in [
            ("profile", &table.profile),
            ("preferred_chain", &table.preferred_chain),
        ] {
            if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
                self.error(
                    file,
                    &path.key(key),
                    Anchor::Value,
                    format!("`{key}` must not be empty"),
                );
            }
        }
        if self.error_count() > before {
            return None;
        }
        Some(CaSettings {
            name: name.to_string(),
            kind: CaKind::Acme(AcmeCaSettings {
                directory,
                contact,
                ca_bundle,
                eab,
                profile: table.profile.clone(),
                preferred_chain: table.preferred_chain.clone(),
            }),
            location: self.location(file, path),
        })
    }

    /// A URL credentials are sent to, checked by the one rule every such field shares
    /// (`ServiceUrl`); reported at `path` when it breaks it.
    pub(super) fn service_url(
        &mut self,
        file: usize,
        path: &KeyPath,
        field: &str,
        url: &ServiceUrl,
    ) -> Option<String> {
        match url.checked(field) {
            Ok(url) => Some(url),
            Err(message) => {
                self.error_with_hint(
                    file,
                    path,
                    Anchor::Value,
                    message,
                    Some(scalar::SERVICE_URL_HINT.to_string()),
                );
                None
            }
        }
    }

    /// Whether `name` is a CA; reports an undefined one at `path`.
    pub(super) fn check_ca(&mut self, file: usize, path: &KeyPath, name: &str) -> bool {
        if !self.check_references || name == IMPLICIT_CA || self.declared_cas.contains(name) {
            return true;
        }
        let mut defined: Vec<&str> = self.declared_cas.iter().map(String::as_str).collect();
        if !defined.contains(&IMPLICIT_CA) {
            defined.insert(0, IMPLICIT_CA);
        }
        let near = nearest(name, defined.iter().copied());
        let hint = match near {
            Some(near) => format!("did you mean `{near}`? defined CAs: {}", list(&defined)),
            None => format!(
                "defined CAs: {} (`local` is the built-in CA)",
                list(&defined)
            ),
        };
        self.error_with_hint(
            file,
            path,
            Anchor::Value,
            format!("undefined CA `{}`", shown(name)),
            Some(hint),
        );
        false
    }
}
