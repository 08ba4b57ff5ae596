//! TSIG (RFC 8945): the configured keys, signing requests and verifying answers with aws-lc-rs,
//! and reading key secrets (plain base64 or a BIND key file).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine as _;
use hickory_proto::op::{Header, Message, Query};
use hickory_proto::rr::rdata::tsig::{
    make_tsig_record, message_tbs, TsigAlgorithm as WireAlgorithm, TSIG,
};
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::{BinDecodable as _, BinDecoder, BinEncoder};

use super::{display_name, error, TSIG_FUDGE};
use crate::config::model::{SecretRef, TsigAlgorithm, TsigKey};
use crate::dns::{DnsError, ErrorClass};

/// A loaded TSIG key. The secret lives only inside `hmac`, and `Debug` does not show it.
pub(super) struct Key {
    /// Fully qualified key name as sent on the wire.
    name: Name,
    algorithm: TsigAlgorithm,
    hmac: hmac::Key,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.label())
            .field("algorithm", &self.algorithm)
            .field("secret", &"***")
            .finish()
    }
}

impl Key {
    /// Resolves the secret of `key` and decodes it (see [`Rfc2136::new`] for the accepted forms).
    pub(super) fn load(
        provider: &str,
        key: &TsigKey,
        secrets: &dyn Fn(&SecretRef) -> Result<Vec<u8>, String>,
    ) -> Result<Self, DnsError> {
        let mut name = Name::from_ascii(key.key_name.trim_end_matches('.')).map_err(|err| {
            error(
                ErrorClass::Rejected,
                format!(
                    "invalid TSIG key name `{}` for DNS provider `{provider}`: {err}",
                    key.key_name
                ),
            )
        })?;
        name.set_fqdn(true);
        let label = display_name(&name);
        let text = secrets(&key.secret).map_err(|reason| {
            error(
                ErrorClass::Auth,
                format!("cannot read the secret of TSIG key `{label}` for DNS provider `{provider}`: {reason}"),
            )
        })?;
        let secret = decode_secret(&text).map_err(|reason| {
            error(
                ErrorClass::Auth,
                format!("the secret of TSIG key `{label}` for DNS provider `{provider}` {reason}"),
            )
        })?;
        Ok(Self {
            name,
            algorithm: key.algorithm,
            hmac: hmac::Key::new(hmac_algorithm(key.algorithm), &secret),
        })
    }

    pub(super) fn label(&self) -> String {
        display_name(&self.name)
    }

    fn wire_algorithm(&self) -> WireAlgorithm {
        match self.algorithm {
            TsigAlgorithm::HmacSha1 => WireAlgorithm::HmacSha1,
            TsigAlgorithm::HmacSha256 => WireAlgorithm::HmacSha256,
            TsigAlgorithm::HmacSha384 => WireAlgorithm::HmacSha384,
            TsigAlgorithm::HmacSha512 => WireAlgorithm::HmacSha512,
        }
    }

    fn mac_len(&self) -> usize {
        hmac_algorithm(self.algorithm)
            .digest_algorithm()
            .output_len()
    }

    /// Appends a TSIG record to `message` and returns the request MAC (needed to check the
    /// answer's signature).
    pub(super) fn sign(&self, message: &mut Message, now: u64) -> Result<Vec<u8>, String> {
        let stub = TSIG::new(
            self.wire_algorithm(),
            now,
            TSIG_FUDGE,
            Vec::new(),
            message.metadata.id,
            None,
            Vec::new(),
        );
        let to_be_signed =
            message_tbs(message, &stub, &self.name).map_err(|err| err.to_string())?;
        let mac = hmac::sign(&self.hmac, &to_be_signed).as_ref().to_vec();
        message.signature = Some(Box::new(make_tsig_record(
            self.name.clone(),
            stub.set_mac(mac.clone()),
        )));
        Ok(mac)
    }

    /// Checks the TSIG record that ends `answer`, a reply to a request signed with `request_mac`
    /// (RFC 8945 §4.3 and §5.3).
    pub(super) fn verify(&self, answer: &[u8], request_mac: &[u8], now: u64) -> Result<(), String> {
        let malformed = |err: &dyn fmt::Display| format!("malformed answer: {err}");
        let mut decoder = BinDecoder::new(answer);
        let header = Header::read(&mut decoder).map_err(|err| malformed(&err))?;
        let counts = header.counts;
        let Some(additionals) = counts.additionals.checked_sub(1) else {
            return Err("the answer is not signed".to_string());
        };
        let op_code = header.metadata.op_code;
        for _ in 0..counts.queries {
            Query::read(&mut decoder).map_err(|err| malformed(&err))?;
        }
        let records = usize::from(counts.answers) + usize::from(counts.authorities);
        Message::read_records(&mut decoder, records, false, op_code)
            .map_err(|err| malformed(&err))?;
        Message::read_records(&mut decoder, usize::from(additionals), true, op_code)
            .map_err(|err| malformed(&err))?;
        let signed_end = answer.len() - decoder.len();
        let last = Record::<RData>::read(&mut decoder).map_err(|err| malformed(&err))?;
        let RData::TSIG(tsig) = &last.data else {
            return Err("the answer is not signed".to_string());
        };
        let signer = &last.name;
        if *signer != self.name || tsig.algorithm != self.wire_algorithm() {
            return Err(format!(
                "the answer is signed with key `{}` ({}) instead",
                display_name(signer),
                tsig.algorithm
            ));
        }
        if tsig.mac.len() != self.mac_len() {
            return Err("the answer's MAC has the wrong length".to_string());
        }

        // The MAC covers: request MAC, the answer as it was before the TSIG record was added
        // (original id, one additional record fewer), then the TSIG variables.
        let mut to_be_verified = Vec::with_capacity(answer.len() + request_mac.len() + 64);
        to_be_verified
            .extend_from_slice(&u16::try_from(request_mac.len()).unwrap_or(0).to_be_bytes());
        to_be_verified.extend_from_slice(request_mac);
        to_be_verified.extend_from_slice(&tsig.oid.to_be_bytes());
        to_be_verified.extend_from_slice(answer.get(2..10).ok_or("the answer is truncated")?);
        to_be_verified.extend_from_slice(&additionals.to_be_bytes());
        to_be_verified.extend_from_slice(
            answer
                .get(12..signed_end)
                .ok_or("the answer is truncated")?,
        );
        // A fresh buffer: `BinEncoder` writes from offset 0 of the vector it is given.
        let mut variables = Vec::with_capacity(64);
        tsig.emit_tsig_for_mac(&mut BinEncoder::new(&mut variables), signer)
            .map_err(|err| malformed(&err))?;
        to_be_verified.extend_from_slice(&variables);
        hmac::verify(&self.hmac, &to_be_verified, &tsig.mac)
            .map_err(|_| "the answer's MAC does not match the key".to_string())?;
        if now.abs_diff(tsig.time) > u64::from(tsig.fudge) {
            return Err(format!(
                "the answer was signed at {} but our clock says {now} (fudge {} s)",
                tsig.time, tsig.fudge
            ));
        }
        if let Some(err) = tsig.error {
            return Err(format!("the answer's TSIG record carries error {err:?}"));
        }
        Ok(())
    }
}

/// The TSIG record of a decoded message. hickory-proto moves it to `signature` only when its
/// DNSSEC features are on; otherwise it is the last additional record.
pub(super) fn message_tsig(message: &Message) -> Option<(&Name, &TSIG)> {
    if let Some(record) = &message.signature {
        return Some((&record.name, &record.data));
    }
    match message.additionals.last() {
        Some(Record {
            name,
            data: RData::TSIG(tsig),
            ..
        }) => Some((name, tsig)),
        _ => None,
    }
}

fn hmac_algorithm(algorithm: TsigAlgorithm) -> hmac::Algorithm {
    match algorithm {
        TsigAlgorithm::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        TsigAlgorithm::HmacSha256 => hmac::HMAC_SHA256,
        TsigAlgorithm::HmacSha384 => hmac::HMAC_SHA384,
        TsigAlgorithm::HmacSha512 => hmac::HMAC_SHA512,
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Decodes a TSIG secret: plain base64, or the `secret "..."` of a BIND key file. The error
/// says what is wrong without quoting the text.
pub(super) fn decode_secret(text: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "is not UTF-8 text".to_string())?;
    let encoded = if text.contains('{') {
        bind_key_file_secret(text)?
    } else {
        text.trim()
    };
    let secret = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "is not valid base64".to_string())?;
    if secret.is_empty() {
        return Err("is empty".to_string());
    }
    Ok(secret)
}

/// The quoted value of the one `secret` statement in a BIND key file.
fn bind_key_file_secret(text: &str) -> Result<&str, String> {
    let mut found = Vec::new();
    for (start, _) in text.match_indices("secret") {
        let before = text[..start].chars().next_back();
        if !matches!(before, Some(c) if c.is_whitespace() || c == '{' || c == ';') {
            continue;
        }
        let rest = text[start + "secret".len()..].trim_start();
        if let Some(quoted) = rest.strip_prefix('"') {
            if let Some(end) = quoted.find('"') {
                found.push(&quoted[..end]);
            }
        }
    }
    match found.as_slice() {
        [secret] => Ok(secret.trim()),
        [] => Err("looks like a BIND key file but has no `secret \"...\";` statement".to_string()),
        _ => Err("is a BIND key file with more than one key: keep one key per file".to_string()),
    }
}
