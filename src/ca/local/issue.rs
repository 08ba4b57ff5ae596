//! Issuing: checking a CSR against its order and signing the leaf with the intermediate.

use std::io;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension};

use super::{Inner, MIN_RSA_BITS};
use crate::ca::{CaError, ErrorClass, OrderRequest};
use crate::keys::{self};
use crate::serial::Serial;

impl Inner {
    /// Verify the request and its CSR, then sign a leaf with the intermediate.
    pub(super) fn sign(&self, request: &OrderRequest) -> Result<SignedLeaf, CaError> {
        let sans = normalise_names(&request.sans);
        if sans.is_empty() {
            return Err(self.rejected("the order names no subject alternative names"));
        }
        let csr = self.verify_csr(&request.csr_der, &sans)?;

        let now = whole_seconds(request.now);
        if now >= self.intermediate_not_after {
            return Err(self.rejected(format!(
                "the intermediate expired on {}; create a new CA",
                self.intermediate_not_after
            )));
        }
        let requested_not_after = whole_seconds(request.validity.not_after(now));
        if requested_not_after <= now {
            return Err(self.rejected(format!(
                "requested validity ends ({requested_not_after}) before the certificate starts ({now})"
            )));
        }
        // Like any CA, never issue beyond the issuing certificate's own lifetime.
        let not_after = requested_not_after.min(self.intermediate_not_after);

        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        if !request.common_name.is_empty() {
            subject.push(DnType::CommonName, request.common_name.as_str());
        }
        params.distinguished_name = subject;
        params.subject_alt_names = sans
            .iter()
            .map(|name| {
                rcgen::string::Ia5String::try_from(name.as_str())
                    .map(SanType::DnsName)
                    .map_err(|_| self.rejected(format!("name `{name}` is not a valid DNS name")))
            })
            .collect::<Result<_, _>>()?;
        params.not_before = now;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = if csr.is_rsa {
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ]
        } else {
            vec![KeyUsagePurpose::DigitalSignature]
        };
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;

        let leaf = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(|error| {
                self.rejected("failed to sign the certificate")
                    .with_source(error)
            })?;
        let chain_pem = format!("{}{}", leaf.pem(), ensure_newline(&self.intermediate_pem));
        let (info, _) = keys::inspect_chain(&chain_pem).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "local CA `{}` produced an unreadable certificate",
                    self.name
                ),
            )
            .with_source(error)
        })?;
        Ok(SignedLeaf {
            chain_pem,
            serial: info.serial,
            not_before: info.not_before,
            not_after: info.not_after,
            certificate_id: format!("lc-{}", hex::encode(random_bytes::<8>()?)),
        })
    }

    /// Parse the CSR, check its signature and that it asks for exactly `sans`.
    fn verify_csr(&self, csr_der: &[u8], sans: &[String]) -> Result<CsrKey, CaError> {
        use x509_parser::certification_request::X509CertificationRequest;

        let (rest, csr) = X509CertificationRequest::from_der(csr_der).map_err(|error| {
            self.rejected("the CSR is not a DER PKCS#10 request")
                .with_source(error)
        })?;
        if !rest.is_empty() {
            return Err(self.rejected("the CSR has trailing bytes"));
        }
        csr.verify_signature().map_err(|error| {
            self.rejected("the CSR signature does not verify")
                .with_source(error)
        })?;

        let mut csr_names = Vec::new();
        if let Some(extensions) = csr.requested_extensions() {
            for extension in extensions {
                if let ParsedExtension::SubjectAlternativeName(san) = extension {
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(dns) => csr_names.push(dns.to_string()),
                            other => {
                                return Err(self.rejected(format!(
                                    "the CSR asks for a non-DNS subject alternative name ({other})"
                                )))
                            }
                        }
                    }
                }
            }
        }
        let csr_names = normalise_names(&csr_names);
        if csr_names != sans {
            return Err(self.rejected(format!(
                "the CSR names [{}] differ from the order's names [{}]",
                csr_names.join(", "),
                sans.join(", ")
            )));
        }

        let spki = &csr.certification_request_info.subject_pki;
        let is_rsa = spki.algorithm.algorithm == x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
        if is_rsa {
            let bits = match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => rsa.key_size(),
                _ => 0,
            };
            if bits < MIN_RSA_BITS {
                return Err(self.rejected(format!(
                    "RSA keys must have at least {MIN_RSA_BITS} bits (the CSR's has {bits})"
                )));
            }
        }
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(spki.raw).map_err(|error| {
            self.rejected("the CSR's key algorithm is not supported")
                .with_source(error)
        })?;
        Ok(CsrKey { public_key, is_rsa })
    }
}

/// What a verified CSR contributes to a certificate.
struct CsrKey {
    public_key: rcgen::SubjectPublicKeyInfo,
    is_rsa: bool,
}

/// A freshly signed leaf.
pub(super) struct SignedLeaf {
    pub(super) chain_pem: String,
    pub(super) serial: Serial,
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
    pub(super) certificate_id: String,
}

/// Lowercase, sorted, without duplicates.
pub(super) fn normalise_names(names: &[String]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|name| name.to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    names
}

fn ensure_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

pub(super) fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

/// A random positive 16-byte serial (top bit clear, second bit set so it is always 16 bytes).
pub(super) fn random_serial() -> Result<[u8; 16], CaError> {
    let mut serial = random_bytes::<16>()?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(serial)
}

/// `N` bytes from the kernel's CSPRNG.
pub(super) fn random_bytes<const N: usize>() -> Result<[u8; N], CaError> {
    let mut buffer = [0u8; N];
    let mut filled = 0;
    while filled < N {
        let remaining = &mut buffer[filled..];
        // SAFETY: the pointer and length describe `remaining`, a live, writable slice.
        let read = unsafe {
            libc::getrandom(
                remaining.as_mut_ptr().cast::<libc::c_void>(),
                remaining.len(),
                0,
            )
        };
        if read < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(CaError::new(
                ErrorClass::Transient,
                "failed to read random bytes from the kernel",
            )
            .with_source(error));
        }
        filled += read.unsigned_abs();
    }
    Ok(buffer)
}
