//! Resolving secret references (`{ env = "VAR" }`, `{ file = "path" }`) to their values, at
//! the moment a provider is opened. Errors name the variable or file, never the value.

use crate::config::SecretRef;

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
pub fn resolve(reference: &SecretRef) -> Result<String, Error> {
    match reference {
        SecretRef::Env(variable) => match std::env::var(variable) {
            Ok(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
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
            Ok(text.to_string())
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
        assert_eq!(
            resolve(&SecretRef::File(path)).expect("read"),
            "s3cr3t-value"
        );
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
