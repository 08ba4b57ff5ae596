//! `[dns.NAME]`: DNS provider accounts.

use super::*;

impl<'a> Validator<'a> {
    pub(super) fn dns(&mut self, file: usize, name: &str, table: &DnsTable) -> Option<DnsSettings> {
        let before = self.error_count();
        let path = KeyPath::root().key("dns").key(name);
        let base = self.base_dir(file);
        let origin = Origin { file, base: &base };
        match table.kind {
            DnsKindName::Rfc2136 => {}
        }
        if let Err(reason) = check_server(&table.server) {
            self.error_with_hint(
                file,
                &path.key("server"),
                Anchor::Value,
                format!("invalid `server` `{}`: {reason}", shown(&table.server)),
                Some("write `host:port`, like `127.0.0.1:53`".to_string()),
            );
        }

        let any_global =
            table.key_name.is_some() || table.secret.is_some() || table.algorithm.is_some();
        let mut key = None;
        if any_global {
            if table.key_name.is_none() {
                self.error_with_hint(
                    file,
                    &path,
                    Anchor::Value,
                    "missing required key `key_name`: a TSIG key needs `key_name` and `secret`"
                        .to_string(),
                    None,
                );
                self.findings_last_key(path.key("key_name"));
            }
            if table.secret.is_none() {
                self.error_with_hint(
                    file,
                    &path,
                    Anchor::Value,
                    "missing required key `secret`: a TSIG key needs `key_name` and `secret`"
                        .to_string(),
                    Some(
                        "use `secret = { env = \"VAR\" }` or `secret = { file = \"path\" }`"
                            .to_string(),
                    ),
                );
                self.findings_last_key(path.key("secret"));
            }
            let key_name = table
                .key_name
                .as_deref()
                .and_then(|key_name| self.key_name(file, &path.key("key_name"), key_name));
            let secret = table
                .secret
                .as_ref()
                .and_then(|secret| self.secret(origin, &path.key("secret"), secret));
            if let (Some(key_name), Some(secret)) = (key_name, secret) {
                key = Some(TsigKey {
                    key_name,
                    algorithm: tsig_algorithm(table.algorithm),
                    secret,
                });
            }
        }

        let mut zones = Vec::new();
        let mut seen_zones: BTreeMap<String, usize> = BTreeMap::new();
        for (index, zone) in table.zones.iter().flatten().enumerate() {
            let zone_path = path.key("zones").index(index);
            if let Some(zone_key) = self.zone(origin, &zone_path, zone) {
                if let Some(first) = seen_zones.get(&zone_key.zone) {
                    self.error(
                        file,
                        &zone_path.key("zone"),
                        Anchor::Value,
                        format!(
                            "zone `{}` is already listed in `zones[{first}]`",
                            zone_key.zone
                        ),
                    );
                    continue;
                }
                seen_zones.insert(zone_key.zone.clone(), index);
                zones.push(zone_key);
            }
        }
        if !any_global && table.zones.as_ref().is_none_or(Vec::is_empty) {
            self.error_with_hint(
                file,
                &path,
                Anchor::Value,
                format!("DNS provider `{name}` has no TSIG key"),
                Some(
                    "set `key_name`, `algorithm` and `secret`, or per-zone keys in `zones`"
                        .to_string(),
                ),
            );
        }
        if self.error_count() > before {
            return None;
        }
        Some(DnsSettings {
            name: name.to_string(),
            kind: DnsKind::Rfc2136(Rfc2136Settings {
                server: table.server.clone(),
                key,
                zones,
            }),
            location: self.location(file, &path),
        })
    }

    pub(super) fn zone(
        &mut self,
        origin: Origin<'_>,
        path: &KeyPath,
        zone: &ZoneTable,
    ) -> Option<ZoneKey> {
        let file = origin.file;
        let written = zone.zone.strip_suffix('.').unwrap_or(&zone.zone);
        let name = match dns_name(written) {
            Ok(name) if name.is_wildcard() => {
                self.error(
                    file,
                    &path.key("zone"),
                    Anchor::Value,
                    format!("zone `{}` must not be a wildcard", shown(&zone.zone)),
                );
                None
            }
            Ok(name) => Some(name),
            Err(message) => {
                self.error(file, &path.key("zone"), Anchor::Value, message);
                None
            }
        };
        let key_name = self.key_name(file, &path.key("key_name"), &zone.key_name);
        let secret = self.secret(origin, &path.key("secret"), &zone.secret);
        Some(ZoneKey {
            zone: name?.to_string(),
            key: TsigKey {
                key_name: key_name?,
                algorithm: tsig_algorithm(zone.algorithm),
                secret: secret?,
            },
        })
    }

    pub(super) fn key_name(
        &mut self,
        file: usize,
        path: &KeyPath,
        key_name: &str,
    ) -> Option<String> {
        if key_name.is_empty()
            || key_name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            self.error(
                file,
                path,
                Anchor::Value,
                "`key_name` must be a non-empty name without spaces".to_string(),
            );
            return None;
        }
        Some(key_name.to_string())
    }
}
