//! `[state]`: where state and keys live, and the rule that no key lands inside it.

use super::*;

impl<'a> Validator<'a> {
    pub(super) fn state(
        &mut self,
        definition: Option<(usize, Option<&StateTable>)>,
    ) -> StateSettings {
        let default = |validator: &Self, file: usize| StateSettings {
            repo: scalar::absolute(&validator.base_dir(file), "state"),
            dir: PathBuf::from("."),
            keys_dir: None,
            push: false,
            remote: "origin".to_string(),
            push_auth: PushAuth::default(),
            keys: KeyBackend::default(),
            location: validator.file_start(file),
        };
        let (file, table) = match definition {
            Some((file, Some(table))) => (file, table),
            Some((file, None)) => return default(self, file),
            None => return default(self, 0),
        };
        let base = self.base_dir(file);
        let path = KeyPath::root().key("state");
        let mut settings = default(self, file);
        settings.location = self.location(file, &path);

        if let Some(repo) = &table.repo {
            if repo.is_empty() {
                self.error(
                    file,
                    &path.key("repo"),
                    Anchor::Value,
                    "`repo` must not be empty".to_string(),
                );
            } else {
                settings.repo = scalar::absolute(&base, repo);
            }
        }
        if let Some(dir) = &table.dir {
            let dir_path = path.key("dir");
            let as_path = Path::new(dir);
            if dir.is_empty() {
                self.error_with_hint(
                    file,
                    &dir_path,
                    Anchor::Value,
                    "`dir` must not be empty".to_string(),
                    Some("use `.` for the root of the repository".to_string()),
                );
            } else if as_path.is_absolute() || dir.starts_with('/') || dir.starts_with('\\') {
                self.error_with_hint(
                    file,
                    &dir_path,
                    Anchor::Value,
                    format!(
                        "`dir` must be relative to the state repository, `{}` is absolute",
                        shown(dir)
                    ),
                    Some("`dir` names a sub-directory inside `repo`".to_string()),
                );
            } else if as_path
                .components()
                .any(|component| component == Component::ParentDir)
            {
                self.error_with_hint(
                    file,
                    &dir_path,
                    Anchor::Value,
                    format!("`dir` must not contain `..`, found `{}`", shown(dir)),
                    Some("`dir` names a sub-directory inside `repo`".to_string()),
                );
            } else {
                settings.dir = scalar::normalize(as_path);
            }
        }
        if let Some(keys_dir) = &table.keys_dir {
            if keys_dir.is_empty() {
                self.error(
                    file,
                    &path.key("keys_dir"),
                    Anchor::Value,
                    "`keys_dir` must not be empty".to_string(),
                );
            } else {
                settings.keys_dir = Some(scalar::absolute(&base, keys_dir));
            }
        }
        if let Some(push) = table.push {
            settings.push = push;
        }
        if let Some(remote) = &table.remote {
            if remote.is_empty() {
                self.error(
                    file,
                    &path.key("remote"),
                    Anchor::Value,
                    "`remote` must not be empty".to_string(),
                );
            } else {
                settings.remote = remote.clone();
            }
        }
        let origin = Origin { file, base: &base };
        if let Some(token) = &table.push_token {
            settings.push_auth.token = self.secret(origin, &path.key("push_token"), token);
        }
        if let Some(user) = &table.push_user {
            if user.is_empty() || user.contains([':', '\n', '\r']) {
                self.error(
                    file,
                    &path.key("push_user"),
                    Anchor::Value,
                    "`push_user` must be a non-empty name without `:` or line breaks".to_string(),
                );
            } else {
                settings.push_auth.user = Some(user.clone());
            }
        }
        if let Some(key) = &table.push_ssh_key {
            match self.secret(origin, &path.key("push_ssh_key"), key) {
                Some(SecretRef::Env(_)) => self.error_with_hint(
                    file,
                    &path.key("push_ssh_key"),
                    Anchor::Value,
                    "`push_ssh_key` must name a key file, not an environment variable".to_string(),
                    Some(
                        "write the key to a file readable only by you (mode 0600) and use \
                         `{ file = \"path\" }`"
                            .to_string(),
                    ),
                ),
                reference => settings.push_auth.ssh_key = reference,
            }
        }
        if let Some(known_hosts) = &table.push_known_hosts {
            if known_hosts.is_empty() {
                self.error(
                    file,
                    &path.key("push_known_hosts"),
                    Anchor::Value,
                    "`push_known_hosts` must not be empty".to_string(),
                );
            } else {
                settings.push_auth.known_hosts = Some(scalar::absolute(&base, known_hosts));
            }
        }
        settings.keys = self.key_backend(file, &base, &path, table);
        settings
    }

    /// `keys`, `age_recipients` and `age_identity`: every recipient must parse as an age X25519
    /// recipient, `keys = "age"` needs at least one, and recipients mean nothing without it.
    fn key_backend(
        &mut self,
        file: usize,
        base: &Path,
        path: &KeyPath,
        table: &StateTable,
    ) -> KeyBackend {
        let identity = table.age_identity.as_ref().and_then(|secret| {
            self.secret(Origin { file, base }, &path.key("age_identity"), secret)
        });
        let age = table.keys == Some(KeysName::Age);
        let Some(written) = &table.age_recipients else {
            if age {
                self.error_with_hint(
                    file,
                    &path.key("keys"),
                    Anchor::Value,
                    "`keys = \"age\"` needs `age_recipients`".to_string(),
                    Some("add `age_recipients = [\"age1...\"]` (the public keys printed by `age-keygen`)".to_string()),
                );
            }
            return KeyBackend::Files { identity };
        };
        if !age {
            self.error_with_hint(
                file,
                &path.key("age_recipients"),
                Anchor::Key,
                "`age_recipients` is used only with `keys = \"age\"`".to_string(),
                Some("set `keys = \"age\"` to keep the keys in the state repository, or remove `age_recipients`".to_string()),
            );
            return KeyBackend::Files { identity };
        }
        if written.is_empty() {
            self.error_with_hint(
                file,
                &path.key("age_recipients"),
                Anchor::Value,
                "`age_recipients` must name at least one recipient".to_string(),
                Some("add the public key printed by `age-keygen` (`age1...`)".to_string()),
            );
        }
        let mut recipients = Vec::new();
        for (index, recipient) in written.iter().enumerate() {
            let trimmed = recipient.trim();
            if trimmed.parse::<age::x25519::Recipient>().is_ok() {
                if !recipients.iter().any(|known: &String| known == trimmed) {
                    recipients.push(trimmed.to_string());
                }
                continue;
            }
            let hint = if trimmed.starts_with("AGE-SECRET-KEY-") {
                "this is an identity (a secret key): give its public key (`age-keygen -y`) here and keep the identity in `age_identity`"
            } else if trimmed.starts_with("ssh-") {
                "ssh recipients are not supported: use an X25519 recipient from `age-keygen`"
            } else {
                "an age X25519 recipient looks like `age1` followed by 58 characters (`age-keygen -y`)"
            };
            // An identity pasted here is a secret: never repeat it.
            let shown_value = if trimmed.starts_with("AGE-SECRET-KEY-") {
                "AGE-SECRET-KEY-...".to_string()
            } else {
                shown(trimmed)
            };
            self.error_with_hint(
                file,
                &path.key("age_recipients").index(index),
                Anchor::Value,
                format!("`{shown_value}` is not an age X25519 recipient"),
                Some(hint.to_string()),
            );
        }
        KeyBackend::Age(AgeSettings {
            recipients,
            identity,
        })
    }

    /// Report `dir` (`keys_dir` or a deploy `dir`, absolute and normalised) when it is inside
    /// the state repository's work tree: a private key written there can be committed. Compared
    /// lexically, so it holds whether or not the repository exists yet.
    pub(crate) fn outside_state(
        &mut self,
        file: usize,
        path: &KeyPath,
        dir: &Path,
        keys_dir: bool,
    ) {
        if !dir.starts_with(&self.state_repo) {
            return;
        }
        let field = if keys_dir {
            "`keys_dir`"
        } else {
            "deploy directory"
        };
        let place = if dir.starts_with(&self.state_dir) && self.state_dir != self.state_repo {
            format!("certform's state folder `{}`", self.state_dir.display())
        } else {
            format!("the state repository `{}`", self.state_repo.display())
        };
        let outside = self
            .state_repo
            .parent()
            .map(|parent| format!(" (e.g. under `{}`)", parent.display()))
            .unwrap_or_default();
        self.error_with_hint(
            file,
            path,
            Anchor::Value,
            format!(
                "{field} `{}` is inside {place}: private keys written there could be committed",
                dir.display()
            ),
            Some(if keys_dir {
                format!("move `keys_dir` outside the state repository{outside}, or remove it to keep keys in the default place outside every repository")
            } else {
                format!("deploy to a directory outside the state repository{outside}")
            }),
        );
    }

    /// A web root (`web_root`) must not be inside the state repository: validation files
    /// placed there would end up in a commit, and no web server should publish it.
    pub(crate) fn web_root_outside_state(&mut self, file: usize, path: &KeyPath, dir: &Path) {
        if !dir.starts_with(&self.state_repo) {
            return;
        }
        self.error_with_hint(
            file,
            path,
            Anchor::Value,
            format!(
                "`web_root` `{}` is inside the state repository `{}`",
                dir.display(),
                self.state_repo.display()
            ),
            Some(
                "name the directory your web server publishes, outside the state repository"
                    .to_string(),
            ),
        );
    }
}
