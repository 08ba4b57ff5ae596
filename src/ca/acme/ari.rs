//! ARI certificate identifiers (RFC 9773 §4.1).

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use instant_acme::CertificateIdentifier;
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use crate::ca::{CaError, ErrorClass};

/// The ARI certificate identifier (RFC 9773 §4.1) of a DER certificate:
/// `base64url(AKI keyIdentifier) "." base64url(serial content octets)`, both unpadded.
pub fn ari_cert_id(cert_der: &[u8]) -> Result<String, CaError> {
    let (_, certificate) = X509Certificate::from_der(cert_der).map_err(|error| {
        CaError::new(
            ErrorClass::Protocol,
            "certificate for the ARI identifier cannot be parsed",
        )
        .with_source(error)
    })?;
    let key_identifier = certificate
        .extensions()
        .iter()
        .find_map(|extension| match extension.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        })
        .ok_or_else(|| {
            CaError::new(
                ErrorClass::Protocol,
                "certificate has no authority key identifier; ARI needs one",
            )
        })?;
    Ok(cert_id_from_parts(
        key_identifier.0,
        certificate.raw_serial(),
    ))
}

/// certID from the AKI `keyIdentifier` bytes and the serial's DER content octets.
pub(super) fn cert_id_from_parts(key_identifier: &[u8], serial: &[u8]) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(key_identifier),
        URL_SAFE_NO_PAD.encode(serial)
    )
}

pub(super) fn certificate_identifier(cert_id: &str) -> CertificateIdentifier<'static> {
    let (aki, serial) = cert_id.split_once('.').unwrap_or((cert_id, ""));
    CertificateIdentifier {
        authority_key_identifier: Cow::Owned(aki.to_string()),
        serial: Cow::Owned(serial.to_string()),
    }
}

pub(super) fn looks_like_cert_id(text: &str) -> bool {
    let base64url = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    };
    match text.split_once('.') {
        Some((aki, serial)) => base64url(aki) && base64url(serial),
        None => false,
    }
}
