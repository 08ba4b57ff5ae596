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
    // One TOML parse for a valid file of a known format (most of a 10,000-certificate
    // `status`); anything else goes through the format check first, so that its error is
    // the one that check reports.
    let parsed = std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| toml::from_str::<CertificateState>(text).ok())
        .filter(|certificate| certificate.format <= FORMAT);
    let mut certificate = match parsed {
        Some(certificate) => certificate,
        None => {
            let text = checked_text(path, bytes, FORMAT)?;
            toml::from_str(text).map_err(|error| corrupt(path, text, &error))?
        }
    };
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
    let text = checked_text(path, bytes, crate::ca_inventory::FORMAT)?;
    let inventory: CaInventory =
        toml::from_str(text).map_err(|error| corrupt(path, text, &error))?;
    if inventory.ca != ca {
        return Err(at_key(
            path,
            text,
            "ca",
            format!(
                "the record is of CA `{}`, but its file name says `{ca}`",
                inventory.ca
            ),
        ));
    }
    if let Some((key, message)) = inventory.problem() {
        // Point at the key's line, where a hand edit broke the counts.
        return Err(at_key(path, text, key, message));
    }
    Ok(inventory)
}

/// A state file's text: valid UTF-8 and TOML, of a `format` no newer than `supported` (checked
/// before the fields, so a newer file is reported as such rather than as a field error).
fn checked_text<'a>(path: &Path, bytes: &'a [u8], supported: u32) -> Result<&'a str, Error> {
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
    if let Some(found) = probe.format.filter(|found| *found > supported) {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    Ok(text)
}

/// A `Corrupt` error at the first line that sets `key` (else at the start).
fn at_key(path: &Path, text: &str, key: &str, message: String) -> Error {
    let offset = text
        .lines()
        .scan(0, |start, line| {
            let here = *start;
            *start += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| {
            line.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(0, |(start, _)| start);
    let (line, column) = line_column(text.as_bytes(), offset);
    Error::Corrupt {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
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
    fn an_inventory_record_round_trips_and_a_broken_one_says_where() {
        use crate::ca_inventory::Finding;
        let at = time::macros::datetime!(2027-01-02 01:00 UTC);
        let finding = |id: &str, certificate: Option<&str>| Finding {
            order_id: id.to_string(),
            common_name: "a.example".to_string(),
            status: "issued".to_string(),
            not_after: certificate.is_none().then_some(at),
            certificate: certificate.map(str::to_string),
        };
        let record = CaInventory {
            format: crate::ca_inventory::FORMAT,
            ca: "dc".to_string(),
            listed_at: at,
            orders: 1200,
            unmanaged_total: 70,
            duplicate_total: 1,
            unmanaged: vec![finding("1", None), finding("2", None)],
            duplicate: vec![finding("3", Some("web"))],
        };
        let path = Path::new("ca/dc.inventory.toml");
        let text = render_inventory(&record).expect("render");
        assert!(text.starts_with(HEADER), "{text}");
        assert_eq!(
            parse_inventory(path, "dc", text.as_bytes()).expect("parse"),
            record
        );
        let error = |text: String| {
            parse_inventory(path, "dc", text.as_bytes())
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            error(text.replace("ca = \"dc\"", "ca = \"other\"")),
            "state file `ca/dc.inventory.toml:3:1` is corrupt: the record is of CA `other`, but its file name says `dc`"
        );
        assert!(
            error(text.replace("format = 1", "format = 9")).contains("has format 9"),
            "newer format"
        );
        assert!(
            error(text.replace("orders = 1200", "orders = 12")).starts_with(
                "state file `ca/dc.inventory.toml:5:1` is corrupt: `orders` is 12 but 71 orders"
            ),
            "{}",
            error(text.replace("orders = 1200", "orders = 12"))
        );
        assert!(
            error(text.replace("status = \"issued\"", "statu = \"issued\""))
                .contains("unknown field `statu`"),
            "a typo is named"
        );
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("a = 1\nbé = x\n".as_bytes(), 10), (2, 4));
        assert_eq!(line_column(b"", 5), (1, 1));
    }
}
