//! Secrets: resolving references (`{ env = "VAR" }`, `{ file = "path" }`) to their values, at
//! the moment a provider is opened, and the `Secret` wrapper that holds them (API keys, EAB HMAC
//! keys, TSIG secrets) so they never reach output or logs. Errors name the variable or file,
//! never the value.

use crate::config::SecretRef;

/// A secret value whose `Debug` and `Display` print `***`; only `expose` gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T = String>(T);

impl<T> Secret<T> {
    pub fn new(value: impl Into<T>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send or use it (never to print).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<T> std::fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("environment variable `{0}` is not set (it holds a secret named in config)")]
    MissingEnv(String),
    #[error("cannot read secret file `{path}`")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file `{0}` is empty")]
    EmptyFile(std::path::PathBuf),
}

/// The secret's text, surrounding whitespace trimmed.
pub fn resolve(reference: &SecretRef) -> Result<Secret, Error> {
    match reference {
        SecretRef::Env(variable) => match std::env::var(variable) {
            Ok(value) if !value.trim().is_empty() => Ok(Secret::new(value.trim())),
            _ => Err(Error::MissingEnv(variable.clone())),
        },
        SecretRef::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| Error::File {
                path: path.clone(),
                source,
            })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(Error::EmptyFile(path.clone()));
            }
            Ok(Secret::new(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_and_never_shows_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("hmac");
        std::fs::write(&path, "s3cr3t-value\n").expect("write");
        let secret = resolve(&SecretRef::File(path)).expect("read");
        assert_eq!(secret.expose(), "s3cr3t-value");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        assert!(!format!("{:?}", Some(&secret)).contains("s3cr3t"));
        let missing =
            resolve(&SecretRef::Env("CERTFORM_TEST_SURELY_UNSET_VAR".into())).expect_err("unset");
        assert!(missing
            .to_string()
            .contains("CERTFORM_TEST_SURELY_UNSET_VAR"));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        assert!(matches!(
            resolve(&SecretRef::File(empty)),
            Err(Error::EmptyFile(_))
        ));
    }
}
