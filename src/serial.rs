//! Certificate serial numbers, in the one form certform records and compares them: lowercase
//! hex, no separators, no leading zero bytes (`00` for zero). Performs no I/O.

use serde::{Deserialize, Serialize};

/// A certificate serial number, normalised (`00:8F:01`, `8f01` and `008F01` are one serial).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(from = "String", into = "String")]
#[schemars(with = "String")]
pub struct Serial(String);

impl Serial {
    /// Normalise a serial as CAs and tools write it: hex digits in either case, with or
    /// without `:`/space separators and leading zeros. Characters that are not hex digits are
    /// dropped; an odd number of digits gets a leading zero, as the bytes it stands for.
    pub fn parse(text: &str) -> Self {
        let mut hex: String = text
            .chars()
            .filter(char::is_ascii_hexdigit)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if hex.len() % 2 == 1 {
            hex.insert(0, '0');
        }
        while hex.len() > 2 && hex.starts_with("00") {
            hex.drain(..2);
        }
        if hex.is_empty() {
            hex.push_str("00");
        }
        Self(hex)
    }

    /// The serial of a certificate from its DER bytes (big-endian, maybe with a sign byte).
    pub fn from_bytes(raw: &[u8]) -> Self {
        let start = raw.iter().position(|byte| *byte != 0).unwrap_or(raw.len());
        if start == raw.len() {
            return Self("00".to_string());
        }
        Self(hex::encode(&raw[start..]))
    }

    /// The normalised hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` names this serial (in any of the forms `parse` accepts).
    pub fn matches(&self, text: &str) -> bool {
        *self == Self::parse(text)
    }
}

impl From<String> for Serial {
    fn from(text: String) -> Self {
        Self::parse(&text)
    }
}

impl From<&str> for Serial {
    fn from(text: &str) -> Self {
        Self::parse(text)
    }
}

impl From<Serial> for String {
    fn from(serial: Serial) -> Self {
        serial.0
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for Serial {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Serial {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_written_form_normalises_to_one_serial() {
        for (text, normal) in [
            ("8f01", "8f01"),
            ("8F01", "8f01"),
            ("00:8F:01", "8f01"),
            ("00 8f 01", "8f01"),
            ("008F01", "8f01"),
            ("0A1B", "0a1b"),
            ("000A1B", "0a1b"),
            ("a:1b", "0a1b"),
            ("a1b", "0a1b"),
            ("00", "00"),
            ("000", "00"),
            ("", "00"),
            ("1a00", "1a00"),
        ] {
            assert_eq!(Serial::parse(text).as_str(), normal, "{text:?}");
        }
        assert_ne!(Serial::parse("8f02"), Serial::parse("8f01"));
        assert!(Serial::parse("8f01").matches("00:8F:01"));
    }

    #[test]
    fn bytes_and_text_agree() {
        assert_eq!(Serial::from_bytes(&[0, 0, 0x1a, 0]).as_str(), "1a00");
        assert_eq!(Serial::from_bytes(&[0]).as_str(), "00");
        assert_eq!(Serial::from_bytes(&[]).as_str(), "00");
        assert_eq!(
            Serial::from_bytes(&[0x00, 0x8f, 0x01]),
            Serial::parse("00:8F:01")
        );
        assert_eq!(Serial::from_bytes(&[0x0a, 0x1b]), Serial::parse("A1B"));
    }

    #[test]
    fn serde_reads_any_form_and_writes_the_normal_one() {
        let serial: Serial = serde_json::from_str(r#""00:AB:01""#).expect("serial");
        assert_eq!(serial.as_str(), "ab01");
        assert_eq!(serde_json::to_string(&serial).expect("json"), r#""ab01""#);
    }
}
