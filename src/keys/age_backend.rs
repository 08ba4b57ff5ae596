//! `[state] keys = "age"`: private keys kept in the state repository (`<state dir>/keys/`),
//! encrypted to the configured age recipients and decrypted only in memory.
//!
//! Encrypting needs only the recipients (public), so new certificates can be created on a runner
//! without the identity; reading needs `age_identity`, resolved once when the store is built. The
//! identity and plaintext keys never reach output: errors name the variable or file, never the
//! value. `keys/recipients.txt` records the recipients the files were last encrypted to, so a
//! changed list is seen (and planned as a re-encryption).

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

use age::armor::{ArmoredReader, ArmoredWriter, Format};

use super::KeyError;
use crate::config::{AgeSettings, SecretRef};
use crate::state::StateStore;

/// File under `keys/` listing the recipients of every ciphertext there, sorted, one a line.
pub const RECIPIENTS_FILE: &str = "recipients.txt";

/// Why the identity cannot be used; says where it was looked for, never what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProblem {
    pub reason: String,
    pub hint: String,
}

/// The age side of a `KeyStore`.
pub(crate) struct AgeBackend {
    recipients: Vec<age::x25519::Recipient>,
    /// Configured recipients, sorted: what `recipients.txt` holds once every file is theirs.
    recipient_names: Vec<String>,
    identities: Result<Vec<age::x25519::Identity>, IdentityProblem>,
    /// Records writes and removals for the state commit; `None` for a read-only store (plan).
    store: Option<Arc<dyn StateStore>>,
}

impl fmt::Debug for AgeBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgeBackend")
            .field("recipients", &self.recipient_names)
            .field("identity", &self.identities.as_ref().map(|_| "***"))
            .finish()
    }
}

impl AgeBackend {
    /// Recipients as validated by config; the identity is resolved now.
    pub(crate) fn new(settings: &AgeSettings, store: Option<Arc<dyn StateStore>>) -> Self {
        let recipients = settings
            .recipients
            .iter()
            .filter_map(|text| text.parse::<age::x25519::Recipient>().ok())
            .collect();
        let mut recipient_names = settings.recipients.clone();
        recipient_names.sort();
        recipient_names.dedup();
        Self {
            recipients,
            recipient_names,
            identities: load_identities(settings.identity.as_ref()),
            store,
        }
    }

    pub(crate) fn recipient_names(&self) -> &[String] {
        &self.recipient_names
    }

    pub(crate) fn identity_problem(&self) -> Option<&IdentityProblem> {
        self.identities.as_ref().err()
    }

    pub(crate) fn store(&self) -> Result<&Arc<dyn StateStore>, KeyError> {
        self.store.as_ref().ok_or(KeyError::ReadOnly)
    }

    /// `plaintext` encrypted to every recipient, ASCII-armored.
    pub(crate) fn encrypt(&self, plaintext: &[u8]) -> Result<String, KeyError> {
        let failed = |reason: String| KeyError::AgeEncrypt { reason };
        let encryptor = age::Encryptor::with_recipients(
            self.recipients
                .iter()
                .map(|recipient| recipient as &dyn age::Recipient),
        )
        .map_err(|error| failed(error.to_string()))?;
        let mut out = Vec::with_capacity(plaintext.len() * 2);
        let armored = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor)
            .map_err(|error| failed(error.to_string()))?;
        let mut writer = encryptor
            .wrap_output(armored)
            .map_err(|error| failed(error.to_string()))?;
        writer
            .write_all(plaintext)
            .and_then(|()| writer.finish())
            .and_then(|armored| armored.finish())
            .map_err(|error| failed(error.to_string()))?;
        String::from_utf8(out).map_err(|_| failed("armor is not text".to_string()))
    }

    /// Decrypt the age file at `path` (its bytes in `ciphertext`) with the identity.
    pub(crate) fn decrypt(
        &self,
        path: &std::path::Path,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let identities = self
            .identities
            .as_ref()
            .map_err(|problem| KeyError::NoIdentity {
                path: path.to_path_buf(),
                reason: problem.reason.clone(),
                hint: problem.hint.clone(),
            })?;
        let undecryptable = |reason: String| KeyError::AgeDecrypt {
            path: path.to_path_buf(),
            reason,
        };
        let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(ciphertext))
            .map_err(|error| undecryptable(describe(&error)))?;
        let mut reader = decryptor
            .decrypt(
                identities
                    .iter()
                    .map(|identity| identity as &dyn age::Identity),
            )
            .map_err(|error| undecryptable(describe(&error)))?;
        let mut plaintext = Vec::new();
        reader
            .read_to_end(&mut plaintext)
            .map_err(|_| undecryptable("the file is truncated or was altered".to_string()))?;
        Ok(plaintext)
    }
}

/// What went wrong, in words that hold nothing secret.
fn describe(error: &age::DecryptError) -> String {
    match error {
        age::DecryptError::NoMatchingKeys => {
            "`age_identity` is not one of the recipients this file was encrypted to".to_string()
        }
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
            "not an age file (garbled, truncated or not written by certform)".to_string()
        }
        age::DecryptError::InvalidMac | age::DecryptError::DecryptionFailed => {
            "the file is damaged or was altered".to_string()
        }
        age::DecryptError::Io(_) => {
            "not a valid age file (bad armor, garbled or truncated)".to_string()
        }
        other => format!("cannot decrypt: {other}"),
    }
}

/// The identities in `age_identity`: `AGE-SECRET-KEY-1...` lines (an `age-keygen` file's text,
/// comments allowed).
fn load_identities(
    reference: Option<&SecretRef>,
) -> Result<Vec<age::x25519::Identity>, IdentityProblem> {
    let hint_of = |place: &str| {
        format!("set {place} to the age identity (`AGE-SECRET-KEY-1...`, e.g. from `age-keygen`) whose public key is in `age_recipients`")
    };
    let Some(reference) = reference else {
        return Err(IdentityProblem {
            reason: "`[state] age_identity` is not configured".to_string(),
            hint: "add `age_identity = { env = \"VAR\" }` or `{ file = \"path\" }` to `[state]`"
                .to_string(),
        });
    };
    let place = match reference {
        SecretRef::Env(variable) => format!("environment variable `{variable}`"),
        SecretRef::File(path) => format!("file `{}`", path.display()),
    };
    let text = crate::secrets::resolve(reference).map_err(|error| IdentityProblem {
        reason: format!("`age_identity`: {error}"),
        hint: hint_of(&place),
    })?;
    let mut identities = Vec::new();
    for line in text.expose().lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<age::x25519::Identity>() {
            Ok(identity) => identities.push(identity),
            Err(_) => {
                return Err(IdentityProblem {
                    reason: format!(
                        "`age_identity` ({place}) holds a line that is not an age X25519 identity"
                    ),
                    hint: hint_of(&place),
                })
            }
        }
    }
    if identities.is_empty() {
        return Err(IdentityProblem {
            reason: format!("`age_identity` ({place}) holds no age identity"),
            hint: hint_of(&place),
        });
    }
    Ok(identities)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(recipients: &[String], identity: Option<SecretRef>) -> AgeSettings {
        AgeSettings {
            recipients: recipients.to_vec(),
            identity,
        }
    }

    #[test]
    fn round_trips_and_refuses_strangers_and_garbage() {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let file = dir.path().join("id.txt");
        std::fs::write(
            &file,
            format!(
                "# created: now\n# public key: {}\n{}\n",
                identity.to_public(),
                age::secrecy::ExposeSecret::expose_secret(&identity.to_string())
            ),
        )
        .expect("write identity");
        let mine = AgeBackend::new(
            &settings(
                &[identity.to_public().to_string()],
                Some(SecretRef::File(file)),
            ),
            None,
        );
        let ciphertext = mine
            .encrypt(b"-----BEGIN PRIVATE KEY-----")
            .expect("encrypt");
        assert!(ciphertext.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!ciphertext.contains("PRIVATE KEY-----"));
        let path = std::path::Path::new("keys/web/x.age");
        assert_eq!(
            mine.decrypt(path, ciphertext.as_bytes()).expect("decrypt"),
            b"-----BEGIN PRIVATE KEY-----"
        );
        assert!(!format!("{mine:?}").contains("AGE-SECRET-KEY"));

        let other_file = dir.path().join("other.txt");
        std::fs::write(
            &other_file,
            age::secrecy::ExposeSecret::expose_secret(&other.to_string()),
        )
        .expect("write identity");
        let stranger = AgeBackend::new(
            &settings(
                &[other.to_public().to_string()],
                Some(SecretRef::File(other_file)),
            ),
            None,
        );
        let error = stranger
            .decrypt(path, ciphertext.as_bytes())
            .expect_err("not a recipient")
            .to_string();
        assert!(error.contains("not one of the recipients"), "{error}");
        let garbled = ciphertext.replace('A', "B");
        let error = mine
            .decrypt(path, garbled.as_bytes())
            .expect_err("garbled")
            .to_string();
        assert!(error.contains("keys/web/x.age"), "{error}");
        assert!(mine.decrypt(path, b"hello").is_err());
    }

    #[test]
    fn a_missing_identity_is_named_and_encrypting_still_works() {
        let identity = age::x25519::Identity::generate();
        let backend = AgeBackend::new(
            &settings(
                &[identity.to_public().to_string()],
                Some(SecretRef::Env("CERTFORM_TEST_SURELY_UNSET_AGE".into())),
            ),
            None,
        );
        let problem = backend.identity_problem().expect("no identity");
        assert!(problem.reason.contains("CERTFORM_TEST_SURELY_UNSET_AGE"));
        let ciphertext = backend.encrypt(b"key").expect("encrypt needs no identity");
        let error = backend
            .decrypt(std::path::Path::new("k.age"), ciphertext.as_bytes())
            .expect_err("no identity");
        assert!(error.to_string().contains("CERTFORM_TEST_SURELY_UNSET_AGE"));
        assert!(error.hint().is_some_and(|hint| hint.contains("age-keygen")));
        let unconfigured = AgeBackend::new(&settings(&[], None), None);
        assert!(unconfigured
            .identity_problem()
            .is_some_and(|problem| problem.reason.contains("not configured")));
    }
}
