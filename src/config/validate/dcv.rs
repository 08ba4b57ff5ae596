//! `dcv`: how control of a certificate's names is proven.

use super::*;
use crate::spec::CONSTRUCTED_APPROVERS;

impl<'a> Validator<'a> {
    pub(super) fn dcv(
        &mut self,
        origin: Origin<'_>,
        certificate_name: &str,
        certificate: &KeyPath,
        field: &DcvField,
        names: &[DnsName],
    ) -> Vec<DcvRule> {
        let file = origin.file;
        let dcv_path = certificate.key("dcv");
        let rules: Vec<(KeyPath, &DcvRuleTable)> = match field {
            DcvField::One(rule) => vec![(dcv_path.clone(), rule)],
            DcvField::Many(rules) => rules
                .iter()
                .enumerate()
                .map(|(index, rule)| (dcv_path.index(index), rule))
                .collect(),
        };
        if rules.is_empty() {
            self.error(file, &dcv_path, Anchor::Value, "`dcv` is empty".to_string());
            return Vec::new();
        }
        let certificate_names: BTreeSet<&DnsName> = names.iter().collect();

        // Which rule covers which name, from the rules' explicit `names`.
        let mut covered: BTreeMap<DnsName, KeyPath> = BTreeMap::new();
        let mut catch_all: Option<KeyPath> = None;
        let mut built: Vec<(KeyPath, DcvRule, bool)> = Vec::new();
        for (rule_path, rule) in &rules {
            let method = self.dcv_method(origin, rule_path, rule);
            // `{ method = "http" }` alone, once named targets say which names they serve:
            // the files go where the names are served.
            let derived = rule.method == DcvMethodName::Http
                && rule.via.is_none()
                && rule.webroot.is_none()
                && rule.listen.is_none()
                && !self.named_serves.is_empty();
            let mut rule_names = Vec::new();
            match &rule.names {
                None => {
                    if let Some(first) = &catch_all {
                        self.error_with_hint(
                            file,
                            rule_path,
                            Anchor::Value,
                            format!(
                                "only one DCV rule may leave out `names`, `{first}` already does"
                            ),
                            Some("list the names each rule covers in `names`".to_string()),
                        );
                    } else {
                        catch_all = Some(rule_path.clone());
                    }
                }
                Some(listed) if listed.is_empty() => {
                    self.error_with_hint(
                        file,
                        &rule_path.key("names"),
                        Anchor::Value,
                        "`names` is empty".to_string(),
                        Some(
                            "leave `names` out to cover every name no other rule covers"
                                .to_string(),
                        ),
                    );
                }
                Some(listed) => {
                    for (index, written) in listed.iter().enumerate() {
                        let name_path = rule_path.key("names").index(index);
                        let name = match dns_name(written) {
                            Ok(name) => name,
                            Err(message) => {
                                self.error(file, &name_path, Anchor::Value, message);
                                continue;
                            }
                        };
                        if !certificate_names.contains(&name) {
                            self.error_with_hint(
                                file,
                                &name_path,
                                Anchor::Value,
                                format!("`{name}` is not a name of this certificate"),
                                Some(format!(
                                    "the certificate's names: {}",
                                    list(names.iter().map(DnsName::as_str))
                                )),
                            );
                            continue;
                        }
                        if rule_names.contains(&name) {
                            continue;
                        }
                        if let Some(first) = covered.get(&name) {
                            self.error(
                                file,
                                &name_path,
                                Anchor::Value,
                                format!("`{name}` is covered by two DCV rules: `{first}` and `{rule_path}`"),
                            );
                            continue;
                        }
                        covered.insert(name.clone(), rule_path.clone());
                        if rule.method == DcvMethodName::Http && name.is_wildcard() {
                            self.error_with_hint(
                                file,
                                &name_path,
                                Anchor::Value,
                                format!("wildcard name `{name}` cannot be validated with `method = \"http\"`"),
                                Some("use `method = \"dns\"` for wildcard names".to_string()),
                            );
                        }
                        rule_names.push(name);
                    }
                }
            }
            rule_names.sort();
            if let Some(method) = method {
                built.push((
                    rule_path.clone(),
                    DcvRule {
                        names: rule_names,
                        method,
                    },
                    derived,
                ));
            }
        }

        let uncovered: Vec<&DnsName> = names
            .iter()
            .filter(|name| !covered.contains_key(*name))
            .collect();
        match &catch_all {
            Some(rule_path) => {
                let is_http = rules
                    .iter()
                    .any(|(path, rule)| path == rule_path && rule.method == DcvMethodName::Http);
                if let Some(wildcard) = uncovered.iter().find(|name| name.is_wildcard()) {
                    if is_http {
                        self.error_with_hint(
                            file,
                            &rule_path.key("method"),
                            Anchor::Value,
                            format!("wildcard name `{wildcard}` cannot be validated with `method = \"http\"`"),
                            Some("use `method = \"dns\"` for wildcard names, in a rule of their own with `names`".to_string()),
                        );
                    }
                }
            }
            None => {
                if !uncovered.is_empty() {
                    self.error_with_hint(
                        file,
                        &dcv_path,
                        Anchor::Value,
                        format!(
                            "no DCV rule covers {}",
                            list(uncovered.iter().map(|name| name.as_str()))
                        ),
                        Some(
                            "add the names to a rule's `names`, or add a rule without `names`"
                                .to_string(),
                        ),
                    );
                }
            }
        }
        for (rule_path, rule, _) in &built {
            let DcvMethod::Email {
                approver: Some(approver),
            } = &rule.method
            else {
                continue;
            };
            let covers: Vec<&DnsName> = if rule.names.is_empty() {
                uncovered.clone()
            } else {
                rule.names.iter().collect()
            };
            self.approver(file, &rule_path.key("approver"), approver, &covers);
        }
        let mut result = Vec::new();
        for (rule_path, rule, derived) in built {
            if !derived {
                result.push(rule);
                continue;
            }
            let covers: Vec<DnsName> = if rule.names.is_empty() {
                uncovered.iter().map(|name| (*name).clone()).collect()
            } else {
                rule.names.clone()
            };
            result.extend(self.derived_via(file, &rule_path, &covers));
        }
        // The targets as this certificate uses them (`{certificate}` in `dir` filled), so
        // messages and the record of placed files name them as its deploys do.
        for rule in &mut result {
            if let DcvMethod::Http { via, .. } = &mut rule.method {
                for target in via.iter_mut() {
                    *target = target.for_certificate(certificate_name);
                }
            }
        }
        result
    }

    /// Check an email DCV `approver` against the names it approves: a constructed address
    /// (`admin@`, ... of the name or a parent) or else, with a warning, a WHOIS contact.
    fn approver(&mut self, file: usize, path: &KeyPath, approver: &str, names: &[&DnsName]) {
        let Some((local, domain)) = approver.rsplit_once('@') else {
            return;
        };
        if !CONSTRUCTED_APPROVERS.contains(&local) {
            self.warning(
                file,
                path,
                format!(
                    "`{approver}` is not a constructed approver address ({}), so CAs send to it only when it is a WHOIS contact of the domain",
                    list(CONSTRUCTED_APPROVERS.iter().map(|local| format!("{local}@")))
                ),
            );
            return;
        }
        let outside: Vec<&str> = names
            .iter()
            .map(|name| name.as_str())
            .filter(|name| !approves(domain, name))
            .collect();
        if !outside.is_empty() {
            self.error_with_hint(
                file,
                path,
                Anchor::Value,
                format!(
                    "`{approver}` cannot approve {}: `{local}@` must be at the name or one of its parents",
                    list(outside.iter().copied())
                ),
                Some(
                    "give those names a DCV rule of their own with `names` and an approver at their domain"
                        .to_string(),
                ),
            );
        }
    }

    pub(super) fn dcv_method(
        &mut self,
        origin: Origin<'_>,
        path: &KeyPath,
        rule: &DcvRuleTable,
    ) -> Option<DcvMethod> {
        let file = origin.file;
        let before = self.error_count();
        let method_name = match rule.method {
            DcvMethodName::Dns => "dns",
            DcvMethodName::Http => "http",
            DcvMethodName::Email => "email",
        };
        let misplaced = |field: &str, only: &str| {
            (
                path.key(field),
                format!("`{field}` applies only to `method = \"{only}\"`, not `\"{method_name}\"`"),
            )
        };
        let mut wrong = Vec::new();
        if rule.method != DcvMethodName::Dns && rule.provider.is_some() {
            wrong.push(misplaced("provider", "dns"));
        }
        if rule.method != DcvMethodName::Http {
            if rule.webroot.is_some() {
                wrong.push(misplaced("webroot", "http"));
            }
            if rule.listen.is_some() {
                wrong.push(misplaced("listen", "http"));
            }
            if rule.via.is_some() {
                wrong.push(misplaced("via", "http"));
            }
        }
        if rule.method != DcvMethodName::Email && rule.approver.is_some() {
            wrong.push(misplaced("approver", "email"));
        }
        for (field_path, message) in wrong {
            self.error(file, &field_path, Anchor::Key, message);
        }
        let method = match rule.method {
            DcvMethodName::Dns => match &rule.provider {
                None => {
                    let hint = if self.declared_dns.is_empty() {
                        "define a `[dns.NAME]` provider and name it in `provider`".to_string()
                    } else {
                        format!("defined DNS providers: {}", list(self.declared_dns.iter()))
                    };
                    self.error_with_hint(
                        file,
                        path,
                        Anchor::Value,
                        "missing required key `provider` for `method = \"dns\"`".to_string(),
                        Some(hint),
                    );
                    self.findings_last_key(path.key("provider"));
                    None
                }
                Some(provider) => {
                    if self.check_references && !self.declared_dns.contains(provider) {
                        let hint = if self.declared_dns.is_empty() {
                            "no `[dns.NAME]` provider is defined".to_string()
                        } else {
                            let near =
                                nearest(provider, self.declared_dns.iter().map(String::as_str))
                                    .map(|near| format!("did you mean `{near}`? "))
                                    .unwrap_or_default();
                            format!(
                                "{near}defined DNS providers: {}",
                                list(self.declared_dns.iter())
                            )
                        };
                        self.error_with_hint(
                            file,
                            &path.key("provider"),
                            Anchor::Value,
                            format!("undefined DNS provider `{}`", shown(provider)),
                            Some(hint),
                        );
                        None
                    } else {
                        Some(DcvMethod::Dns {
                            provider: provider.clone(),
                        })
                    }
                }
            },
            DcvMethodName::Http => {
                let webroot = match &rule.webroot {
                    Some(webroot) if webroot.is_empty() => {
                        self.error(
                            file,
                            &path.key("webroot"),
                            Anchor::Value,
                            "`webroot` must not be empty".to_string(),
                        );
                        None
                    }
                    Some(webroot) => Some(scalar::absolute(origin.base, webroot)),
                    None => None,
                };
                if let Some(listen) = &rule.listen {
                    if let Err(reason) = check_listen(listen) {
                        self.error_with_hint(
                            file,
                            &path.key("listen"),
                            Anchor::Value,
                            format!("invalid `listen` `{}`: {reason}", shown(listen)),
                            Some("write `address:port`, like `0.0.0.0:80` or `:80`".to_string()),
                        );
                    }
                }
                let via = match &rule.via {
                    None => Vec::new(),
                    Some(via) => self
                        .dcv_via(file, &path.key("via"), via, rule)
                        .unwrap_or_default(),
                };
                Some(DcvMethod::Http {
                    webroot,
                    listen: rule.listen.clone(),
                    via,
                })
            }
            DcvMethodName::Email => {
                let approver = rule
                    .approver
                    .as_ref()
                    .map(|address| address.trim().to_lowercase());
                if let Some(address) = &approver {
                    if !is_email_address(address) {
                        self.error_with_hint(
                            file,
                            &path.key("approver"),
                            Anchor::Value,
                            format!("`approver` `{}` is not an email address", shown(address)),
                            Some("write an address such as `admin@example.com`".to_string()),
                        );
                    }
                }
                Some(DcvMethod::Email { approver })
            }
        };
        if self.error_count() > before {
            return None;
        }
        method
    }
}

/// Whether `address` looks like `local@host.tld` (one `@`, no spaces, a dotted host).
fn is_email_address(address: &str) -> bool {
    address.split_once('@').is_some_and(|(local, host)| {
        !local.is_empty()
            && !host.contains('@')
            && host.contains('.')
            && !host.starts_with('.')
            && !host.ends_with('.')
            && !host.contains("..")
    }) && !address.contains(|c: char| c.is_whitespace() || c.is_control())
}

/// Whether an address at `domain` may approve `name`: `domain` is the name (without `*.`) or
/// one of its parents.
fn approves(domain: &str, name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    name == domain || name.ends_with(&format!(".{domain}"))
}

impl Validator<'_> {
    /// `via = "NAME"` or `via = ["NAME", ...]` of an `http` rule: named targets with a
    /// `web_root`, each receiving every validation file. `None` after reporting.
    fn dcv_via(
        &mut self,
        file: usize,
        path: &KeyPath,
        via: &OneOrMany,
        rule: &DcvRuleTable,
    ) -> Option<Vec<DeployTarget>> {
        if rule.webroot.is_some() || rule.listen.is_some() {
            self.error(
                file,
                path,
                Anchor::Value,
                "`via` places the files itself: drop `webroot` and `listen`".to_string(),
            );
            return None;
        }
        let names = via.names();
        if names.is_empty() {
            self.error(file, path, Anchor::Value, "`via` is empty".to_string());
            return None;
        }
        let before = self.error_count();
        let mut targets: Vec<DeployTarget> = Vec::new();
        for (index, name) in names.into_iter().enumerate() {
            let at = match via {
                OneOrMany::One(_) => path.clone(),
                OneOrMany::Many(_) => path.index(index),
            };
            if let Some(target) = self.via_target(file, &at, name) {
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
        }
        (self.error_count() == before).then_some(targets)
    }

    /// One target named in `via`: defined, and of a kind with a configured `web_root`.
    fn via_target(&mut self, file: usize, path: &KeyPath, name: &str) -> Option<DeployTarget> {
        let target = match self.named_deploy.get(name) {
            // Reported where it is defined.
            Some(None) => return None,
            Some(Some(target)) => target.clone(),
            None => {
                let known: Vec<String> = self
                    .named_deploy
                    .keys()
                    .map(|name| format!("`{name}`"))
                    .collect();
                let hint = if known.is_empty() {
                    format!(
                        "define it in a `[deploy.{}]` table with `web_root`",
                        shown(name)
                    )
                } else {
                    format!("named targets: {}", known.join(", "))
                };
                self.error_with_hint(
                    file,
                    path,
                    Anchor::Value,
                    format!("unknown deploy target `{}`", shown(name)),
                    Some(hint),
                );
                return None;
            }
        };
        if target.web_root().is_some() {
            return Some(target);
        }
        if target.has_web_root_kind() {
            self.error_with_hint(
                file,
                path,
                Anchor::Value,
                format!("deploy target `{}` has no `web_root`", shown(name)),
                Some(format!(
                    "add `web_root = \"/var/www/html\"` (the directory the server publishes) to `[deploy.{}]`",
                    shown(name)
                )),
            );
        } else {
            self.error_with_hint(
                file,
                path,
                Anchor::Value,
                format!(
                    "deploy target `{}`: `{}` targets serve no web root",
                    shown(name),
                    target.kind_name()
                ),
                Some("name a `files` or `ssh` target with `web_root`".to_string()),
            );
        }
        None
    }

    /// The `http` rule at `rule_path` with no `via`, `webroot` or `listen`, in a config whose
    /// named targets declare `serves`: one rule per name it covers, placing the name's file on
    /// every named target whose `serves` covers it (a load balancer may send the CA to any).
    /// A name no target with a `web_root` serves is an error at the rule.
    fn derived_via(&mut self, file: usize, rule_path: &KeyPath, names: &[DnsName]) -> Vec<DcvRule> {
        let mut rules = Vec::new();
        for name in names {
            // Reported already: HTTP cannot validate a wildcard.
            if name.is_wildcard() {
                continue;
            }
            let serving = self.serving(name);
            let with_root: Vec<DeployTarget> = serving
                .iter()
                .filter_map(|(_, target)| *target)
                .filter(|target| target.web_root().is_some())
                .cloned()
                .collect();
            if with_root.is_empty() {
                let (message, hint) = if serving.is_empty() {
                    (
                        format!("no named deploy target serves `{name}`, so its HTTP validation file has nowhere to go"),
                        format!(
                            "add `{name}` (or a `*.` pattern covering it) to the `serves` of the target that serves it ({}), or use `via`, `webroot` or `listen`",
                            list(self.named_serves.keys())
                        ),
                    )
                } else {
                    (
                        format!(
                            "`{name}` is served by {}, but none has a `web_root` for its HTTP validation file",
                            list(serving.iter().map(|(target, _)| *target))
                        ),
                        "add `web_root` to one of them".to_string(),
                    )
                };
                self.error_with_hint(file, rule_path, Anchor::Value, message, Some(hint));
                continue;
            }
            rules.push(DcvRule {
                names: vec![name.clone()],
                method: DcvMethod::Http {
                    webroot: None,
                    listen: None,
                    via: with_root,
                },
            });
        }
        rules
    }
}
