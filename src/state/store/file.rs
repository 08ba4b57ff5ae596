//! The state file format: one `CertificateState` as TOML under a header comment, parsed with
//! `file:line:col` diagnostics and a format check before the fields. Performs no I/O.

use std::path::Path;

use serde::Deserialize;

use super::{Error, HEADER};
use crate::ca_inventory::CaInventory;
use crate::state::model::{CertificateState, FORMAT};

/// The serialized state file: header comment, then the fields in declaration order.
pub fn render_certificate(certificate: &CertificateState) -> Result<String, Error> {
    let body = toml::to_string_pretty(certificate).map_err(|source| Error::Serialize {
        name: certificate.name.clone(),
        source,
    })?;
    Ok(format!("{HEADER}{body}"))
}

/// Parse a state file's bytes; `path` and `name` (its file stem) are for checks and errors.
pub fn parse_certificate(path: &Path, name: &str, bytes: &[u8]) -> Result<CertificateState, Error> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        let (line, column) = line_column(bytes, error.valid_up_to());
        Error::Corrupt {
            path: path.to_path_buf(),
            line,
            column,
            message: "not valid UTF-8".to_string(),
        }
    })?;

    // Check the format before the fields, so a newer file is reported as such.
    #[derive(Deserialize)]
    struct FormatProbe {
        format: Option<u32>,
    }
    let probe: FormatProbe = toml::from_str(text).map_err(|error| corrupt(path, text, &error))?;
    if let Some(found) = probe.format.filter(|found| *found > FORMAT) {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            found,
            supported: FORMAT,
        });
    }

    let mut certificate: CertificateState =
        toml::from_str(text).map_err(|error| corrupt(path, text, &error))?;
    certificate.upgrade_legacy_key_file();
    if certificate.name != name {
        return Err(Error::NameMismatch {
            path: path.to_path_buf(),
            expected: name.to_string(),
            found: certificate.name,
        });
    }
    Ok(certificate)
}

/// The serialized inventory record of one CA account (`ca/<account>.inventory.toml`).
pub fn render_inventory(inventory: &CaInventory) -> Result<String, Error> {
    let body = toml::to_string_pretty(inventory).map_err(|source| Error::Serialize {
        name: inventory.ca.clone(),
        source,
    })?;
    Ok(format!("{HEADER}{body}"))
}

/// Parse an inventory record; `ca` is the account its file name says.
pub fn parse_inventory(path: &Path, ca: &str, bytes: &[u8]) -> Result<CaInventory, Error> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        let (line, column) = line_column(bytes, error.valid_up_to());
        Error::Corrupt {
            path: path.to_path_buf(),
            line,
            column,
            message: "not valid UTF-8".to_string(),
        }
    })?;
    #[derive(Deserialize)]
    struct FormatProbe {
        format: Option<u32>,
    }
    let probe: FormatProbe = toml::from_str(text).map_err(|error| corrupt(path, text, &error))?;
    if let Some(found) = probe
        .format
        .filter(|found| *found > crate::ca_inventory::FORMAT)
    {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            found,
            supported: crate::ca_inventory::FORMAT,
        });
    }
    let inventory: CaInventory =
        toml::from_str(text).map_err(|error| corrupt(path, text, &error))?;
    if inventory.ca != ca {
        return Err(Error::NameMismatch {
            path: path.to_path_buf(),
            expected: ca.to_string(),
            found: inventory.ca,
        });
    }
    if let Some((key, message)) = inventory.problem() {
        // Point at the key's line, where a hand edit broke the counts.
        let offset = text
            .lines()
            .scan(0, |start, line| {
                let here = *start;
                *start += line.len() + 1;
                Some((here, line))
            })
            .find(|(_, line)| line.trim_start().starts_with(key))
            .map_or(0, |(start, _)| start);
        let (line, column) = line_column(text.as_bytes(), offset);
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            line,
            column,
            message,
        });
    }
    Ok(inventory)
}

fn corrupt(path: &Path, text: &str, error: &toml::de::Error) -> Error {
    let (line, column) = error
        .span()
        .map_or((1, 1), |span| line_column(text.as_bytes(), span.start));
    Error::Corrupt {
        path: path.to_path_buf(),
        line,
        column,
        message: error.message().trim_end().to_string(),
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&byte| byte == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("a = 1\nbé = x\n".as_bytes(), 10), (2, 4));
        assert_eq!(line_column(b"", 5), (1, 1));
    }
}
