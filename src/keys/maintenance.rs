//! State-only work on the key store itself, planned and shown before it is done: moving keys
//! when `[state] keys` switched (`files` <-> `age`) and re-encrypting the repository's keys when
//! `age_recipients` changed. No certificate changes and no key is lost or made: a key is always
//! written to its new place before its old copy goes.

use std::collections::BTreeMap;

use super::{KeyError, KeyStore};

/// What one task does to one certificate's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// From `keys_dir` into the state repository, encrypted (after `keys = "age"`).
    ToRepository,
    /// From the state repository into `keys_dir`, decrypted (after `keys = "files"`).
    ToKeysDir,
    /// Encrypt the repository's key files again, to the new `age_recipients`.
    Reencrypt,
}

/// One certificate's key files to move or re-encrypt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTask {
    pub certificate: String,
    pub kind: TaskKind,
    /// Key ids, sorted.
    pub key_ids: Vec<String>,
}

impl KeyTask {
    /// One line for plan and apply output.
    pub fn describe(&self) -> String {
        let count = self.key_ids.len();
        let keys = if count == 1 { "key" } else { "keys" };
        let what = match self.kind {
            TaskKind::ToRepository => {
                format!("move {count} {keys} from keys_dir into the state repository (encrypted with age)")
            }
            TaskKind::ToKeysDir => {
                format!("move {count} {keys} from the state repository into keys_dir (decrypted)")
            }
            TaskKind::Reencrypt => format!("re-encrypt {count} {keys} to new recipients"),
        };
        format!("{}: {what}", self.certificate)
    }

    /// Whether the task decrypts, so needs `age_identity`.
    pub fn needs_identity(&self) -> bool {
        matches!(self.kind, TaskKind::ToKeysDir | TaskKind::Reencrypt)
    }
}

/// The tasks `keys` calls for, by certificate then kind.
pub fn plan(keys: &KeyStore) -> Result<Vec<KeyTask>, KeyError> {
    let mut tasks: BTreeMap<(String, u8), KeyTask> = BTreeMap::new();
    let mut add = |relative: &str, kind: TaskKind| {
        let Some((name, file)) = relative.split_once('/') else {
            return;
        };
        let key_id = file.strip_suffix(".key").unwrap_or(file).to_string();
        tasks
            .entry((name.to_string(), kind as u8))
            .or_insert_with(|| KeyTask {
                certificate: name.to_string(),
                kind,
                key_ids: Vec::new(),
            })
            .key_ids
            .push(key_id);
    };
    if let Some(legacy) = keys.legacy() {
        let kind = if keys.is_age() {
            TaskKind::ToRepository
        } else {
            TaskKind::ToKeysDir
        };
        for relative in legacy.all_key_files()? {
            // Already at its new place (a run killed before it removed the old copy) or not:
            // either way the old copy is moved away.
            add(&relative, kind);
        }
    }
    if keys.is_age() && keys.recorded_recipients().as_deref() != Some(keys.recipients()) {
        // Files written before `recipients.txt` existed, or to other recipients.
        for relative in keys.all_key_files()? {
            add(&relative, TaskKind::Reencrypt);
        }
    }
    Ok(tasks.into_values().collect())
}

/// What `run` did; `cleanup` removes the plaintext copies left in `keys_dir` once the commit
/// holding their encrypted copies exists.
#[derive(Debug, Default)]
pub struct Done {
    pub lines: Vec<String>,
    moved_to_repository: Vec<(String, String)>,
}

/// Carry out `tasks` (from `plan(keys)`) and record the recipients; the caller commits, then
/// calls `cleanup`.
pub fn run(keys: &KeyStore, tasks: &[KeyTask]) -> Result<Done, KeyError> {
    let mut done = Done::default();
    for task in tasks {
        for key_id in &task.key_ids {
            let relative = super::certificate_key_path(&task.certificate, key_id)?;
            match task.kind {
                TaskKind::ToRepository | TaskKind::ToKeysDir => {
                    let Some(legacy) = keys.legacy() else {
                        continue;
                    };
                    if !keys.holds(&relative) {
                        let key = legacy.read(&relative)?;
                        keys.write(&relative, &key)?;
                    }
                    if task.kind == TaskKind::ToKeysDir {
                        legacy.remove_certificate_key(&task.certificate, key_id)?;
                    } else {
                        done.moved_to_repository
                            .push((task.certificate.clone(), key_id.clone()));
                    }
                }
                TaskKind::Reencrypt => keys.reencrypt(&relative)?,
            }
        }
        done.lines.push(task.describe());
    }
    if keys.is_age() && keys.recorded_recipients().as_deref() != Some(keys.recipients()) {
        keys.record_recipients()?;
    }
    if !keys.is_age() {
        if let Some(legacy) = keys.legacy() {
            if legacy.all_key_files()?.is_empty() {
                legacy.remove_recipients_file()?;
            }
        }
    }
    Ok(done)
}

impl Done {
    /// Remove from `keys_dir` the keys now committed, encrypted, to the state repository.
    pub fn cleanup(&self, keys: &KeyStore) -> Result<(), KeyError> {
        let Some(legacy) = keys.legacy() else {
            return Ok(());
        };
        for (name, key_id) in &self.moved_to_repository {
            legacy.remove_certificate_key(name, key_id)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{AgeSettings, SecretRef, StateSettings};
    use crate::keys::PrivateKey;
    use crate::spec::KeySpec;
    use crate::state::{GitStore, StateStore};

    struct Fixture {
        dir: tempfile::TempDir,
        store: Arc<GitStore>,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("temp dir");
            let settings = StateSettings {
                repo: dir.path().join("state"),
                dir: ".".into(),
                keys_dir: None,
                push: false,
                remote: "origin".into(),
                push_auth: Default::default(),
                keys: Default::default(),
                location: Default::default(),
            };
            let store = Arc::new(GitStore::open(&settings).expect("open store"));
            Self { dir, store }
        }

        fn identity(&self, name: &str) -> (String, SecretRef) {
            let identity = age::x25519::Identity::generate();
            let path = self.dir.path().join(name);
            std::fs::write(
                &path,
                age::secrecy::ExposeSecret::expose_secret(&identity.to_string()),
            )
            .expect("write identity");
            (identity.to_public().to_string(), SecretRef::File(path))
        }

        fn files(&self) -> KeyStore {
            KeyStore::new(self.dir.path().join("keys"))
        }

        fn age(&self, recipients: &[&str], identity: &SecretRef) -> KeyStore {
            let settings = AgeSettings {
                recipients: recipients.iter().map(|r| r.to_string()).collect(),
                identity: Some(identity.clone()),
            };
            KeyStore::age(
                self.store.root(),
                &settings,
                Some(self.store.clone() as Arc<dyn StateStore>),
            )
        }
    }

    fn with_legacy(mut store: KeyStore, legacy: KeyStore) -> KeyStore {
        store.legacy = Some(Box::new(legacy));
        store
    }

    const WEB_KEY: &str = "web/create-0a0b0c0d.key";

    #[test]
    fn files_to_age_moves_the_key_and_drops_the_plaintext_after_the_commit() {
        let fixture = Fixture::new();
        let (recipient, identity) = fixture.identity("id");
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).expect("key");
        fixture.files().write(WEB_KEY, &key).expect("write");
        let keys = with_legacy(fixture.age(&[&recipient], &identity), fixture.files());
        assert!(keys.exists(WEB_KEY) && !keys.holds(WEB_KEY));
        assert_eq!(keys.read(WEB_KEY).expect("legacy read").pem(), key.pem());

        let tasks = plan(&keys).expect("plan");
        assert_eq!(
            tasks,
            vec![KeyTask {
                certificate: "web".into(),
                kind: TaskKind::ToRepository,
                key_ids: vec!["create-0a0b0c0d".into()],
            }]
        );
        assert!(!tasks[0].needs_identity());
        let done = run(&keys, &tasks).expect("run");
        assert_eq!(done.lines, vec![tasks[0].describe()]);
        assert!(keys.holds(WEB_KEY));
        assert!(fixture.files().holds(WEB_KEY), "kept until committed");
        fixture.store.commit("move").expect("commit");
        done.cleanup(&keys).expect("cleanup");
        assert!(!fixture.files().holds(WEB_KEY));
        let reread = with_legacy(fixture.age(&[&recipient], &identity), fixture.files());
        assert_eq!(reread.read(WEB_KEY).expect("decrypt").pem(), key.pem());
        assert_eq!(plan(&reread).expect("plan"), vec![]);
        let stored =
            std::fs::read_to_string(fixture.store.root().join("keys/web/create-0a0b0c0d.age"))
                .expect("ciphertext");
        assert!(!stored.contains("PRIVATE KEY"));
    }

    #[test]
    fn new_recipients_re_encrypt_every_key_and_are_recorded() {
        let fixture = Fixture::new();
        let (old, old_identity) = fixture.identity("old");
        let (new, new_identity) = fixture.identity("new");
        let key = PrivateKey::generate(KeySpec::Ed25519).expect("key");
        let first = fixture.age(&[&old], &old_identity);
        first.write(WEB_KEY, &key).expect("write");
        assert_eq!(
            plan(&first).expect("plan").len(),
            1,
            "no recipients.txt yet"
        );
        run(&first, &[]).expect("record");
        assert_eq!(first.recorded_recipients(), Some(vec![old.clone()]));
        assert_eq!(plan(&first).expect("plan"), vec![]);

        let rotated = fixture.age(&[&new], &old_identity);
        let tasks = plan(&rotated).expect("plan");
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].kind, TaskKind::Reencrypt);
        assert!(tasks[0].needs_identity());
        assert_eq!(
            tasks[0].describe(),
            "web: re-encrypt 1 key to new recipients"
        );
        run(&rotated, &tasks).expect("re-encrypt");
        assert_eq!(rotated.recorded_recipients(), Some(vec![new.clone()]));
        let by_new = fixture.age(&[&new], &new_identity);
        assert_eq!(by_new.read(WEB_KEY).expect("new reads").pem(), key.pem());
        let by_old = fixture.age(&[&new], &old_identity);
        assert!(matches!(
            by_old.read(WEB_KEY),
            Err(KeyError::AgeDecrypt { .. })
        ));
        assert_eq!(plan(&by_new).expect("plan"), vec![]);
    }

    #[test]
    fn age_to_files_writes_plaintext_to_keys_dir_and_removes_the_ciphertexts() {
        let fixture = Fixture::new();
        let (recipient, identity) = fixture.identity("id");
        let key = PrivateKey::generate(KeySpec::Ecdsa(384)).expect("key");
        let age = fixture.age(&[&recipient], &identity);
        age.write(WEB_KEY, &key).expect("write");
        run(&age, &[]).expect("record");
        let settings = AgeSettings {
            recipients: Vec::new(),
            identity: Some(identity.clone()),
        };
        let legacy = KeyStore::age(
            fixture.store.root(),
            &settings,
            Some(fixture.store.clone() as Arc<dyn StateStore>),
        );
        let keys = with_legacy(fixture.files(), legacy);
        let tasks = plan(&keys).expect("plan");
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].kind, TaskKind::ToKeysDir);
        assert!(tasks[0].describe().contains("into keys_dir"));
        run(&keys, &tasks).expect("move");
        assert_eq!(
            fixture.files().read(WEB_KEY).expect("plain").pem(),
            key.pem()
        );
        assert!(!fixture.store.root().join("keys/web").exists());
        assert!(!fixture.store.root().join("keys/recipients.txt").exists());
        assert_eq!(plan(&keys).expect("plan"), vec![]);
    }
}
