//! `deploy`: where an issued certificate is written.

use super::*;

impl<'a> Validator<'a> {
    pub(super) fn deploy(
        &mut self,
        origin: Origin<'_>,
        certificate: &KeyPath,
        targets: &[DeployTable],
    ) -> Vec<DeployTarget> {
        let file = origin.file;
        let mut built = Vec::new();
        let mut dirs: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for (index, target) in targets.iter().enumerate() {
            let path = certificate.key("deploy").index(index);
            let before = self.error_count();
            match target.kind {
                DeployKindName::Files => {}
            }
            let dir = if target.dir.is_empty() {
                self.error(
                    file,
                    &path.key("dir"),
                    Anchor::Value,
                    "`dir` must not be empty".to_string(),
                );
                None
            } else {
                let dir = scalar::absolute(origin.base, &target.dir);
                if let Some(first) = dirs.get(&dir) {
                    self.error_with_hint(
                        file,
                        &path.key("dir"),
                        Anchor::Value,
                        format!(
                            "deploy directory `{}` is already used by `deploy[{first}]` of this certificate",
                            dir.display()
                        ),
                        Some("give each target its own `dir`".to_string()),
                    );
                } else {
                    dirs.insert(dir.clone(), index);
                }
                self.outside_state(file, &path.key("dir"), &dir, false);
                Some(dir)
            };

            let mut file_names: Vec<(&str, String)> = Vec::new();
            for (field, value, default) in [
                ("cert", &target.cert, "cert.pem"),
                ("chain", &target.chain, "chain.pem"),
                ("fullchain", &target.fullchain, "fullchain.pem"),
                ("key", &target.key, "privkey.pem"),
            ] {
                let name = value.clone().unwrap_or_else(|| default.to_string());
                if !is_plain_file_name(&name) {
                    self.error(
                        file,
                        &path.key(field),
                        Anchor::Value,
                        format!(
                            "`{field}` must be a plain file name inside `dir`, found `{}`",
                            shown(&name)
                        ),
                    );
                    continue;
                }
                if let Some((other, _)) = file_names.iter().find(|(_, existing)| *existing == name)
                {
                    self.error(
                        file,
                        &path.key(field),
                        Anchor::Value,
                        format!("`{field}` and `{other}` are both `{}`", shown(&name)),
                    );
                    continue;
                }
                file_names.push((field, name));
            }

            let mode = self.mode(file, &path.key("mode"), target.mode.as_deref(), 0o644);
            let key_mode = self.mode(
                file,
                &path.key("key_mode"),
                target.key_mode.as_deref(),
                0o600,
            );
            if let (Some(mode), Some(text)) = (key_mode, target.key_mode.as_deref()) {
                if mode & 0o077 != 0 {
                    self.warning(
                        file,
                        &path.key("key_mode"),
                        format!(
                            "`key_mode = \"{}\"` lets {} read the private key; use `0600` (or `0640` with `group` for a service group)",
                            shown(text),
                            if mode & 0o007 != 0 { "every user" } else { "the file's group" }
                        ),
                    );
                }
            }
            for (field, value) in [
                ("owner", &target.owner),
                ("group", &target.group),
                ("reload", &target.reload),
            ] {
                if value
                    .as_deref()
                    .is_some_and(|value| value.trim().is_empty())
                {
                    self.error(
                        file,
                        &path.key(field),
                        Anchor::Value,
                        format!("`{field}` must not be empty"),
                    );
                }
            }
            let reload_timeout = match target.reload_timeout.as_deref() {
                None => Some(Duration::seconds(60)),
                Some(text) => match scalar::duration(text) {
                    Ok(timeout) => Some(timeout),
                    Err(message) => {
                        self.error(file, &path.key("reload_timeout"), Anchor::Value, message);
                        None
                    }
                },
            };
            if self.error_count() > before {
                continue;
            }
            let file_name = |field: &str| {
                file_names
                    .iter()
                    .find(|(name, _)| *name == field)
                    .map(|(_, value)| value.clone())
                    .unwrap_or_default()
            };
            if let (Some(dir), Some(mode), Some(key_mode), Some(reload_timeout)) =
                (dir, mode, key_mode, reload_timeout)
            {
                built.push(DeployTarget::Files(FilesTarget {
                    dir,
                    cert: file_name("cert"),
                    chain: file_name("chain"),
                    fullchain: file_name("fullchain"),
                    key: file_name("key"),
                    mode,
                    key_mode,
                    owner: target.owner.clone(),
                    group: target.group.clone(),
                    reload: target.reload.clone(),
                    reload_timeout,
                }));
            }
        }
        built
    }

    pub(super) fn mode(
        &mut self,
        file: usize,
        path: &KeyPath,
        text: Option<&str>,
        default: u32,
    ) -> Option<u32> {
        let Some(text) = text else {
            return Some(default);
        };
        match scalar::file_mode(text) {
            Ok(mode) => Some(mode),
            Err(message) => {
                self.error(file, path, Anchor::Value, message);
                None
            }
        }
    }
}
