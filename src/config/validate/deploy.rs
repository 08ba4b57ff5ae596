//! `deploy`: where an issued certificate is written; each kind checks its own entry
//! (`deploy::registry`).

use super::*;

impl<'a> Validator<'a> {
    pub(super) fn deploy(
        &mut self,
        origin: Origin<'_>,
        name: &str,
        certificate: &KeyPath,
        entries: &[DeployEntry],
        serving: Option<&[DnsName]>,
    ) -> Vec<DeployTarget> {
        // Sized for the usual case (no `deploy_to_serving`): the first push would reserve four.
        let mut built: Vec<DeployTarget> = Vec::with_capacity(entries.len());
        let mut dirs: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let path = certificate.key("deploy").index(index);
            match entry {
                DeployEntry::Table(target) => {
                    if target.serves().is_some() {
                        self.error_with_hint(
                            origin.file,
                            &path.key("serves"),
                            Anchor::Key,
                            "`serves` applies only to named `[deploy.NAME]` targets".to_string(),
                            Some(
                                "define the target in a `[deploy.NAME]` table and list it by name"
                                    .to_string(),
                            ),
                        );
                    }
                    if let Some(target) = target.validate(self, origin, &path, &mut dirs, index) {
                        built.push(target);
                    }
                }
                DeployEntry::Named(target_name) => {
                    self.named_entry(origin, name, &path, target_name, &mut built, true);
                }
            }
        }
        if let Some(names) = serving {
            let path = certificate.key("deploy_to_serving");
            let mut matched: Vec<String> = Vec::new();
            for dns in names {
                for (target_name, _) in self.serving(dns) {
                    if !matched.iter().any(|m| m == target_name) {
                        matched.push(target_name.to_string());
                    }
                }
            }
            matched.sort();
            if matched.is_empty() {
                self.error_with_hint(
                    origin.file,
                    &path,
                    Anchor::Value,
                    format!(
                        "no named deploy target serves any of {}",
                        list(names.iter().map(DnsName::as_str))
                    ),
                    Some("add the names to a `[deploy.NAME]` target's `serves`, or drop `deploy_to_serving`".to_string()),
                );
            }
            for target_name in matched {
                self.named_entry(origin, name, &path, &target_name, &mut built, false);
            }
        }
        built
    }

    /// The named target `target_name` listed by certificate `name` (at `path`), added to
    /// `built`; `listed`: written in `deploy` (listed twice is an error), else added by
    /// `deploy_to_serving` (already listed is fine).
    fn named_entry(
        &mut self,
        origin: Origin<'_>,
        name: &str,
        path: &KeyPath,
        target_name: &str,
        built: &mut Vec<DeployTarget>,
        listed: bool,
    ) {
        let Some(target) = self.named_deploy.get(target_name) else {
            let known: Vec<String> = self
                .named_deploy
                .keys()
                .map(|name| format!("`{name}`"))
                .collect();
            let hint = if known.is_empty() {
                format!("define it in a `[deploy.{}]` table", shown(target_name))
            } else {
                format!("named targets: {}", known.join(", "))
            };
            self.error_with_hint(
                origin.file,
                path,
                Anchor::Value,
                format!("unknown deploy target `{}`", shown(target_name)),
                Some(hint),
            );
            return;
        };
        // Reported where it is defined.
        let Some(target) = target.as_ref().map(|t| t.for_certificate(name)) else {
            return;
        };
        if built.iter().any(|other| other.id() == target.id()) {
            if listed {
                self.error(
                    origin.file,
                    path,
                    Anchor::Value,
                    format!(
                        "deploy target `{}` is listed twice (as `{}`)",
                        shown(target_name),
                        target.id()
                    ),
                );
            }
            return;
        }
        if let Some(other) = self.named_users.get(&target.id()) {
            if other != name {
                let message = format!(
                    "deploy target `{}` would write the files of `{other}` and `{name}` to the same place (`{}`)",
                    shown(target_name),
                    target.id()
                );
                self.error_with_hint(
                    origin.file,
                    path,
                    Anchor::Value,
                    message,
                    Some("put `{certificate}` in the target's `dir`; it becomes each certificate's name".to_string()),
                );
                return;
            }
        }
        self.named_users.insert(target.id(), name.to_string());
        built.push(target);
    }

    /// `serves` of the named target `name`: DNS names and `*.zone` patterns, each checked as
    /// a certificate's names are. Returns the valid ones (sorted, once each).
    pub(super) fn serves(&mut self, file: usize, name: &str, patterns: &[String]) -> Vec<DnsName> {
        let path = KeyPath::root().key("deploy").key(name).key("serves");
        if patterns.is_empty() {
            self.error_with_hint(
                file,
                &path,
                Anchor::Value,
                "`serves` is empty".to_string(),
                Some("list the names the server serves, or leave `serves` out".to_string()),
            );
        }
        let mut valid = Vec::new();
        for (index, written) in patterns.iter().enumerate() {
            match dns_name(written) {
                Ok(pattern) => valid.push(pattern),
                Err(message) => {
                    self.error_with_hint(
                        file,
                        &path.index(index),
                        Anchor::Value,
                        message,
                        Some(
                            "write a name (`www.example.com`) or a wildcard pattern (`*.example.com`)"
                                .to_string(),
                        ),
                    );
                }
            }
        }
        valid.sort();
        valid.dedup();
        valid
    }

    /// The named targets whose `serves` covers `name`, in name order.
    pub(super) fn serving(&self, name: &DnsName) -> Vec<(&str, Option<&DeployTarget>)> {
        self.named_serves
            .iter()
            .filter(|(_, patterns)| patterns.iter().any(|pattern| pattern.covers(name)))
            .map(|(target, _)| {
                (
                    target.as_str(),
                    self.named_deploy.get(target).and_then(Option::as_ref),
                )
            })
            .collect()
    }

    /// `[deploy.NAME]`: one target that certificates list by name.
    pub(super) fn named_deploy_target(
        &mut self,
        file: usize,
        name: &str,
        table: &DeployTable,
    ) -> Option<DeployTarget> {
        let path = KeyPath::root().key("deploy").key(name);
        let base = self.base_dir(file);
        let origin = Origin { file, base: &base };
        let mut dirs: BTreeMap<PathBuf, usize> = BTreeMap::new();
        table.validate(self, origin, &path, &mut dirs, 0)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::config::{load, Config, Diagnostic, Source};
    use crate::spec::DeployTarget;

    fn config(text: &str) -> Result<Config, Vec<Diagnostic>> {
        load(&[Source {
            path: PathBuf::from("/etc/certform/certform.toml"),
            text: format!("[state]\nrepo = \"state\"\n{text}"),
        }])
    }

    const NAMED: &str = r#"
[deploy.web1]
kind = "ssh"
host = "web1.example.test"
known_hosts = "known_hosts"
dir = "/etc/ssl/{certificate}"

[deploy.local]
kind = "files"
dir = "out/{certificate}"
"#;

    #[test]
    fn named_targets_are_listed_by_name_and_filled_per_certificate() {
        let config = config(&format!(
            "{NAMED}\n[certificate.shop]\ncommon_name = \"shop.example.test\"\ndeploy = [\"web1\", \"local\"]\n\n[certificate.api]\ncommon_name = \"api.example.test\"\ndeploy = [\"web1\", {{ kind = \"files\", dir = \"inline\" }}]\n"
        ))
        .unwrap_or_else(|d| panic!("{d:?}"));
        let shop = &config.certificates["shop"].deploy;
        assert_eq!(shop.len(), 2);
        assert_eq!(shop[0].id(), "ssh:web1.example.test:22/etc/ssl/shop");
        let DeployTarget::Files(files) = &shop[1] else {
            panic!("files");
        };
        assert_eq!(files.dir, PathBuf::from("/etc/certform/out/shop"));
        assert_eq!(shop[1].id(), "files:out/shop");
        let api = &config.certificates["api"].deploy;
        assert_eq!(api[0].id(), "ssh:web1.example.test:22/etc/ssl/api");
        assert_eq!(api[1].id(), "files:inline");
    }

    #[test]
    fn http_rules_per_name_each_go_through_their_own_server() {
        let config = config(&format!(
            "{NAMED}\n[deploy.web2]\nkind = \"ssh\"\nhost = \"web2.example.test\"\nknown_hosts = \"known_hosts\"\ndir = \"/etc/ssl/{{certificate}}\"\nweb_root = \"/srv/www/\"\n\n[deploy.web3]\nkind = \"ssh\"\nhost = \"web3.example.test\"\nknown_hosts = \"known_hosts\"\ndir = \"/etc/ssl\"\nweb_root = \"/var/www\"\n\n[certificate.shop]\ncommon_name = \"shop.example.test\"\nsans = [\"www.shop.example.test\"]\ndcv = [{{ method = \"http\", via = \"web2\", names = [\"shop.example.test\"] }}, {{ method = \"http\", via = \"web3\" }}]\n"
        ))
        .unwrap_or_else(|d| panic!("{d:?}"));
        let rules = &config.certificates["shop"].dcv;
        let via = |index: usize| match &rules[index].method {
            crate::spec::DcvMethod::Http { via, .. } => match via.as_slice() {
                [DeployTarget::Ssh(ssh)] => (ssh.host.clone(), ssh.web_root.clone()),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        assert_eq!(
            via(0),
            (
                "web2.example.test".to_string(),
                Some("/srv/www".to_string())
            )
        );
        assert_eq!(
            via(1),
            (
                "web3.example.test".to_string(),
                Some("/var/www".to_string())
            )
        );
        let diagnostics = super::tests::config(
            "[deploy.files]\nkind = \"files\"\ndir = \"out\"\n\n[certificate.a]\ncommon_name = \"a.example.test\"\ndcv = { method = \"http\", via = \"files\", webroot = \"www\" }\n",
        )
        .expect_err("via with webroot, to a files target");
        assert!(
            diagnostics
                .iter()
                .any(|d| d.key == "certificate.a.dcv.via" && d.message.contains("drop `webroot`")),
            "{diagnostics:?}"
        );
        let diagnostics = super::tests::config(
            "[deploy.files]\nkind = \"files\"\ndir = \"out\"\n\n[certificate.a]\ncommon_name = \"a.example.test\"\ndcv = { method = \"http\", via = \"files\" }\n",
        )
        .expect_err("via to a files target without a web root");
        assert!(
            diagnostics
                .iter()
                .any(|d| d.message == "deploy target `files` has no `web_root`"),
            "{diagnostics:?}"
        );
        let diagnostics = super::tests::config(
            "[certificate.a]\ncommon_name = \"a.example.test\"\ndcv = { method = \"dns\", provider = \"x\", via = \"web1\" }\n",
        )
        .expect_err("via on dns");
        assert!(
            diagnostics.iter().any(|d| d
                .message
                .contains("`via` applies only to `method = \"http\"`")),
            "{diagnostics:?}"
        );
    }

    #[test]
    fn unknown_duplicate_and_colliding_names_are_errors_with_their_key() {
        let cases = [
            (
                "[certificate.a]\ncommon_name = \"a.example.test\"\ndeploy = [\"web2\"]\n".to_string(),
                "certificate.a.deploy[0]",
                "unknown deploy target `web2`",
            ),
            (
                "[certificate.a]\ncommon_name = \"a.example.test\"\ndeploy = [\"web1\", \"web1\"]\n".to_string(),
                "certificate.a.deploy[1]",
                "listed twice",
            ),
            (
                "[deploy.shared]\nkind = \"files\"\ndir = \"out\"\n\n[certificate.a]\ncommon_name = \"a.example.test\"\ndeploy = [\"shared\"]\n\n[certificate.b]\ncommon_name = \"b.example.test\"\ndeploy = [\"shared\"]\n".to_string(),
                "certificate.b.deploy[0]",
                "would write the files of `a` and `b` to the same place",
            ),
            (
                "[deploy.bad]\nkind = \"ssh\"\nhost = \"web\"\nknown_hosts = \"k\"\ndir = \"relative\"\n".to_string(),
                "deploy.bad.dir",
                "absolute path",
            ),
        ];
        for (text, key, phrase) in cases {
            let diagnostics = config(&format!("{NAMED}\n{text}")).expect_err(&text);
            assert!(
                diagnostics
                    .iter()
                    .any(|d| d.key == key && d.message.contains(phrase)),
                "{text}: {diagnostics:?}"
            );
        }
        // A broken named target is reported once, where it is defined, not at each use.
        let diagnostics = config(
            "[deploy.bad]\nkind = \"ssh\"\nhost = \"web\"\nknown_hosts = \"k\"\ndir = \"relative\"\n\n[certificate.a]\ncommon_name = \"a.example.test\"\ndeploy = [\"bad\"]\n",
        )
        .expect_err("bad target");
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        // A non-string, non-table entry is a type error.
        let diagnostics =
            config("[certificate.a]\ncommon_name = \"a.example.test\"\ndeploy = [5]\n")
                .expect_err("number");
        assert!(
            diagnostics
                .iter()
                .any(|d| d.key == "certificate.a.deploy[0]"),
            "{diagnostics:?}"
        );
    }

    const SERVING: &str = r#"
[deploy.web1]
kind = "files"
dir = "out/web1/{certificate}"
web_root = "www1"
serves = ["www.example.test", "*.shop.example.test"]

[deploy.web2]
kind = "ssh"
host = "web2.example.test"
known_hosts = "known_hosts"
dir = "/etc/ssl/{certificate}"
web_root = "/srv/www"
serves = ["WWW.example.test"]

[deploy.web3]
kind = "files"
dir = "out/web3/{certificate}"
web_root = "www3"
serves = ["api.example.test"]

[deploy.store]
kind = "jks"
path = "out/{certificate}.jks"
store_password = { env = "JKS_PASS" }

[deploy.plain]
kind = "files"
dir = "out/plain/{certificate}"
serves = ["plain.example.test"]
"#;

    /// `(names, ids of the via targets)` of each rule of certificate `name`.
    fn http_targets(config: &Config, name: &str) -> Vec<(Vec<String>, Vec<String>)> {
        config.certificates[name]
            .dcv
            .iter()
            .map(|rule| {
                let names = rule.names.iter().map(|n| n.to_string()).collect();
                let ids = match &rule.method {
                    crate::spec::DcvMethod::Http { via, .. } => {
                        via.iter().map(DeployTarget::id).collect()
                    }
                    other => panic!("{other:?}"),
                };
                (names, ids)
            })
            .collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_plain_http_rule_places_each_name_on_every_target_serving_it() {
        let config = config(&format!(
            "{SERVING}\n[certificate.shop]\ncommon_name = \"www.example.test\"\nsans = [\"a.shop.example.test\", \"api.example.test\"]\ndcv = {{ method = \"http\" }}\n"
        ))
        .unwrap_or_else(|d| panic!("{d:?}"));
        assert_eq!(
            http_targets(&config, "shop"),
            [
                (
                    strings(&["a.shop.example.test"]),
                    strings(&["files:out/web1/shop"])
                ),
                (
                    strings(&["api.example.test"]),
                    strings(&["files:out/web3/shop"])
                ),
                (
                    strings(&["www.example.test"]),
                    strings(&[
                        "files:out/web1/shop",
                        "ssh:web2.example.test:22/etc/ssl/shop"
                    ])
                ),
            ]
        );
        let crate::spec::DcvMethod::Http { via, .. } = &config.certificates["shop"].dcv[0].method
        else {
            panic!("http");
        };
        assert_eq!(
            via[0].web_root(),
            Some("/etc/certform/www1".to_string()),
            "relative to the config file"
        );
        // Serving decides where validation files go, not where the certificate goes.
        assert!(config.certificates["shop"].deploy.is_empty());
    }

    #[test]
    fn an_explicit_rule_keeps_its_own_place_and_via_may_list_several_targets() {
        let config = config(&format!(
            "{SERVING}\n[certificate.shop]\ncommon_name = \"www.example.test\"\nsans = [\"api.example.test\"]\ndcv = [{{ method = \"http\", via = [\"web3\", \"web2\", \"web3\"], names = [\"www.example.test\"] }}, {{ method = \"http\", webroot = \"static\" }}]\n"
        ))
        .unwrap_or_else(|d| panic!("{d:?}"));
        let rules = &config.certificates["shop"].dcv;
        assert_eq!(
            http_targets(&config, "shop")[0],
            (
                strings(&["www.example.test"]),
                strings(&[
                    "files:out/web3/shop",
                    "ssh:web2.example.test:22/etc/ssl/shop"
                ])
            )
        );
        assert_eq!(
            rules[1].method,
            crate::spec::DcvMethod::Http {
                webroot: Some(PathBuf::from("/etc/certform/static")),
                listen: None,
                via: Vec::new(),
            }
        );
        // Without any `serves` in the config, a plain rule is the built-in responder.
        let config = super::tests::config(
            "[certificate.a]\ncommon_name = \"a.example.test\"\ndcv = { method = \"http\" }\n",
        )
        .unwrap_or_else(|d| panic!("{d:?}"));
        assert_eq!(
            config.certificates["a"].dcv[0].method,
            crate::spec::DcvMethod::Http {
                webroot: None,
                listen: None,
                via: Vec::new(),
            }
        );
    }

    fn errors(text: &str) -> Vec<Diagnostic> {
        config(text).expect_err("invalid")
    }

    fn has(diagnostics: &[Diagnostic], key: &str, message: &str) -> bool {
        diagnostics
            .iter()
            .any(|d| d.key == key && d.message.contains(message))
    }

    #[test]
    fn names_no_target_serves_and_targets_without_web_roots_are_errors_at_the_rule() {
        let diagnostics = errors(&format!(
            "{SERVING}\n[certificate.a]\ncommon_name = \"www.example.test\"\nsans = [\"other.example.test\", \"plain.example.test\", \"b.a.shop.example.test\"]\ndcv = {{ method = \"http\" }}\n"
        ));
        assert!(
            has(
                &diagnostics,
                "certificate.a.dcv",
                "no named deploy target serves `other.example.test`"
            ),
            "{diagnostics:?}"
        );
        // `*.shop` covers one label only.
        assert!(
            has(
                &diagnostics,
                "certificate.a.dcv",
                "no named deploy target serves `b.a.shop.example.test`"
            ),
            "{diagnostics:?}"
        );
        assert!(
            has(
                &diagnostics,
                "certificate.a.dcv",
                "`plain.example.test` is served by `plain`, but none has a `web_root`"
            ),
            "{diagnostics:?}"
        );
        assert_eq!(diagnostics.len(), 3, "{diagnostics:?}");
        // At the `dcv` line.
        assert_eq!(diagnostics[0].location.line, SERVING.lines().count() + 7);

        let diagnostics = errors(&format!(
            "{SERVING}\n[certificate.a]\ncommon_name = \"www.example.test\"\ndcv = {{ method = \"http\", via = [\"web1\", \"store\", \"plain\", \"nope\"] }}\n"
        ));
        assert!(
            has(
                &diagnostics,
                "certificate.a.dcv.via[1]",
                "deploy target `store`: `jks` targets serve no web root"
            ),
            "{diagnostics:?}"
        );
        assert!(
            has(
                &diagnostics,
                "certificate.a.dcv.via[2]",
                "deploy target `plain` has no `web_root`"
            ),
            "{diagnostics:?}"
        );
        assert!(
            has(
                &diagnostics,
                "certificate.a.dcv.via[3]",
                "unknown deploy target `nope`"
            ),
            "{diagnostics:?}"
        );
        let diagnostics = errors(&format!(
            "{SERVING}\n[certificate.a]\ncommon_name = \"www.example.test\"\ndcv = {{ method = \"http\", via = [] }}\n"
        ));
        assert!(
            has(&diagnostics, "certificate.a.dcv.via", "`via` is empty"),
            "{diagnostics:?}"
        );
    }

    #[test]
    fn serves_holds_dns_names_and_only_named_targets_take_it() {
        let diagnostics = errors(
            "[deploy.web1]\nkind = \"files\"\ndir = \"out\"\nweb_root = \"www\"\nserves = [\"ok.example.test\", \"bad name\", \"a.*.example.test\", \"10.0.0.1\"]\n\n[deploy.web2]\nkind = \"files\"\ndir = \"out2\"\nserves = []\n\n[certificate.a]\ncommon_name = \"a.example.test\"\ndeploy = [{ kind = \"files\", dir = \"x\", serves = [\"a.example.test\"] }]\n",
        );
        for key in [
            "deploy.web1.serves[1]",
            "deploy.web1.serves[2]",
            "deploy.web1.serves[3]",
        ] {
            assert!(
                has(&diagnostics, key, "invalid DNS name"),
                "{key}: {diagnostics:?}"
            );
        }
        assert!(
            has(&diagnostics, "deploy.web2.serves", "`serves` is empty"),
            "{diagnostics:?}"
        );
        assert!(
            has(
                &diagnostics,
                "certificate.a.deploy[0].serves",
                "`serves` applies only to named `[deploy.NAME]` targets"
            ),
            "{diagnostics:?}"
        );
        assert_eq!(diagnostics.len(), 5, "{diagnostics:?}");
        let diagnostics =
            errors("[deploy.web1]\nkind = \"files\"\ndir = \"out\"\nweb_root = \"\"\n");
        assert!(
            has(&diagnostics, "deploy.web1.web_root", "must not be empty"),
            "{diagnostics:?}"
        );
    }

    #[test]
    fn deploy_to_serving_adds_the_serving_targets_and_only_when_asked() {
        let config = config(&format!(
            "{SERVING}\n[certificate.shop]\ncommon_name = \"www.example.test\"\nsans = [\"api.example.test\"]\ndeploy = [\"web3\"]\ndeploy_to_serving = true\n\n[certificate.other]\ncommon_name = \"www.example.test\"\ndeploy_to_serving = false\n"
        ))
        .unwrap_or_else(|d| panic!("{d:?}"));
        let ids: Vec<String> = config.certificates["shop"]
            .deploy
            .iter()
            .map(DeployTarget::id)
            .collect();
        assert_eq!(
            ids,
            [
                "files:out/web3/shop",
                "files:out/web1/shop",
                "ssh:web2.example.test:22/etc/ssl/shop"
            ]
        );
        assert!(config.certificates["other"].deploy.is_empty());
        let diagnostics = errors(&format!(
            "{SERVING}\n[certificate.a]\ncommon_name = \"nobody.example.test\"\ndeploy_to_serving = true\n"
        ));
        assert!(
            has(
                &diagnostics,
                "certificate.a.deploy_to_serving",
                "no named deploy target serves any of `nobody.example.test`"
            ),
            "{diagnostics:?}"
        );
    }
}
