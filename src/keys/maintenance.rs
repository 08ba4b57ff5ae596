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
