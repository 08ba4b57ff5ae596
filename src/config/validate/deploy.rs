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
    ) -> Vec<DeployTarget> {
        let mut built: Vec<DeployTarget> = Vec::new();
        let mut dirs: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let path = certificate.key("deploy").index(index);
            match entry {
                DeployEntry::Table(target) => {
                    if let Some(target) = target.validate(self, origin, &path, &mut dirs, index) {
                        built.push(target);
                    }
                }
                DeployEntry::Named(target_name) => {
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
                            &path,
                            Anchor::Value,
                            format!("unknown deploy target `{}`", shown(target_name)),
                            Some(hint),
                        );
                        continue;
                    };
                    // Reported where it is defined.
                    let Some(target) = target.as_ref().map(|t| t.for_certificate(name)) else {
                        continue;
                    };
                    if let Some(other) = self.named_users.get(&target.id()) {
                        if other != name {
                            let message = format!(
                                "deploy target `{}` would write the files of `{other}` and `{name}` to the same place (`{}`)",
                                shown(target_name),
                                target.id()
                            );
                            self.error_with_hint(
                                origin.file,
                                &path,
                                Anchor::Value,
                                message,
                                Some("put `{certificate}` in the target's `dir`; it becomes each certificate's name".to_string()),
                            );
                            continue;
                        }
                    }
                    self.named_users.insert(target.id(), name.to_string());
                    if built.iter().any(|other| other.id() == target.id()) {
                        self.error(
                            origin.file,
                            &path,
                            Anchor::Value,
                            format!(
                                "deploy target `{}` is listed twice (as `{}`)",
                                shown(target_name),
                                target.id()
                            ),
                        );
                        continue;
                    }
                    built.push(target);
                }
            }
        }
        built
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
            crate::spec::DcvMethod::Http { via: Some(ssh), .. } => {
                (ssh.host.clone(), ssh.web_root.clone())
            }
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
        .expect_err("via to a files target");
        assert!(
            diagnostics
                .iter()
                .any(|d| d.message.contains("is not an `ssh` target")),
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
}
