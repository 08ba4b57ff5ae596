//! The simulator's certificate authority: a root and one RSA issuing CA named like Sectigo's
//! OV server CA, issuing real X.509 leaves for the public key of a CSR; CSR parsing with the
//! error codes of Sectigo's table; PKCS#7 bundles for the `base64` and `bin` collect formats.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, RsaKeySize, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;

use super::model::ApiError;
use super::Error;

const ROOT_NAME: &str = "certform Sectigo Simulator Root R46";
const ISSUER_NAME: &str = "certform Sectigo Simulator RSA Organization Validation Secure Server CA";

/// Root and issuing CA.
pub(crate) struct SimCa {
    pub(crate) root_pem: String,
    pub(crate) root_der: Vec<u8>,
    pub(crate) issuer_pem: String,
    pub(crate) issuer_der: Vec<u8>,
    /// `CN=...,O=...,C=...` of the issuing CA, as details' `certificateDetails.issuer`.
    pub(crate) issuer_subject: String,
    issuer_not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

/// What goes into one leaf.
#[derive(Clone, Copy)]
pub(crate) struct LeafRequest<'a> {
    pub(crate) common_name: &'a str,
    pub(crate) sans: &'a [String],
    pub(crate) spki_der: &'a [u8],
    pub(crate) is_rsa: bool,
    pub(crate) organization: Option<&'a str>,
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
    pub(crate) serial: [u8; 16],
}

/// One issued leaf.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) der: Vec<u8>,
    /// Colon-separated uppercase hex (as in D25's revoke-by-serial example).
    pub(crate) serial: String,
    /// Uppercase hex SHA-1 and SHA-256 of the DER.
    pub(crate) sha1: String,
    pub(crate) sha256: String,
    pub(crate) subject: String,
    pub(crate) not_after: OffsetDateTime,
}

impl SimCa {
    pub(crate) fn new(now: OffsetDateTime) -> Result<Self, Error> {
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .map_err(|error| ca_error("the root key", error))?;
        let mut root_params = ca_params(ROOT_NAME, BasicConstraints::Unconstrained, now);
        root_params.not_after = now + Duration::days(3650);
        let root = root_params
            .self_signed(&root_key)
            .map_err(|error| ca_error("the root", error))?;
        let root_issuer = Issuer::new(root_params, root_key);
        let issuer_key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
            .map_err(|error| ca_error("the issuing CA key", error))?;
        let mut params = ca_params(ISSUER_NAME, BasicConstraints::Constrained(0), now);
        params.not_after = now + Duration::days(1825);
        params.use_authority_key_identifier_extension = true;
        let issuing = params
            .signed_by(&issuer_key, &root_issuer)
            .map_err(|error| ca_error("the issuing CA", error))?;
        let issuer_not_after = params.not_after;
        Ok(Self {
            root_pem: root.pem(),
            root_der: root.der().to_vec(),
            issuer_pem: issuing.pem(),
            issuer_der: issuing.der().to_vec(),
            issuer_subject: format!("CN={ISSUER_NAME},O=certform simulator,C=GB"),
            issuer_not_after,
            issuer: Issuer::new(params, issuer_key),
        })
    }

    /// Sign a leaf for `spki_der` (a CSR's key).
    pub(crate) fn sign(&self, request: &LeafRequest<'_>) -> Result<Leaf, String> {
        let LeafRequest {
            common_name,
            sans,
            spki_der,
            is_rsa,
            organization,
            not_before,
            not_after,
            serial,
        } = *request;
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        let mut subject_text = format!("CN={common_name}");
        if let Some(organization) = organization {
            subject.push(DnType::OrganizationName, organization);
            subject_text.push_str(&format!(",O={organization}"));
        }
        subject.push(DnType::CommonName, common_name);
        params.distinguished_name = subject;
        params.subject_alt_names = sans
            .iter()
            .map(|name| {
                rcgen::string::Ia5String::try_from(name.as_str())
                    .map(SanType::DnsName)
                    .map_err(|_| format!("`{name}` is not a valid DNS name"))
            })
            .collect::<Result<_, _>>()?;
        params.not_before = not_before;
        params.not_after = not_after.min(self.issuer_not_after);
        // A positive serial: clear the top bit.
        let mut serial = serial;
        serial[0] &= 0x7f;
        serial[0] |= 0x01;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = if is_rsa {
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ]
        } else {
            vec![KeyUsagePurpose::DigitalSignature]
        };
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|error| format!("the CSR's public key cannot be used: {error}"))?;
        let certificate = params
            .signed_by(&public_key, &self.issuer)
            .map_err(|error| format!("the certificate cannot be signed: {error}"))?;
        let der = certificate.der().to_vec();
        Ok(Leaf {
            serial: serial
                .iter()
                .map(|byte| format!("{byte:02X}"))
                .collect::<Vec<_>>()
                .join(":"),
            sha1: digest_hex(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der),
            sha256: digest_hex(&aws_lc_rs::digest::SHA256, &der),
            subject: subject_text,
            not_after: params.not_after,
            der,
        })
    }
}

fn digest_hex(algorithm: &'static aws_lc_rs::digest::Algorithm, bytes: &[u8]) -> String {
    hex::encode_upper(aws_lc_rs::digest::digest(algorithm, bytes).as_ref())
}

fn ca_params(
    common_name: &str,
    constraints: BasicConstraints,
    now: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CountryName, "GB");
    subject.push(DnType::OrganizationName, "certform simulator");
    subject.push(DnType::CommonName, common_name);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::days(1);
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{common_name}{now}").as_bytes(),
    );
    let mut serial = [0u8; 16];
    serial.copy_from_slice(&digest.as_ref()[..16]);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params
}

fn ca_error(what: &str, error: impl std::fmt::Display) -> Error {
    Error::Ca {
        reason: format!("{what}: {error}"),
    }
}

/// A parsed, signature-checked CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Csr {
    pub(crate) spki_der: Vec<u8>,
    /// The subject's common name, if any.
    pub(crate) common_name: Option<String>,
    /// `RSA` or `EC` (the keys of a profile's `keyTypes`).
    pub(crate) algorithm: &'static str,
    /// `2048`, `3072`, ... or `P-256`, `P-384`, `P-521`.
    pub(crate) parameter: String,
    /// Modulus bits or curve bits.
    pub(crate) bits: u32,
}

/// Parse a CSR given as PEM or bare base64 DER, with Sectigo's codes for each failure:
/// -9 not base64, -10 not decodable, -138 bad signature, -11 unsupported algorithm.
pub(crate) fn parse_csr(text: &str) -> Result<Csr, ApiError> {
    use base64::Engine as _;
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::public_key::PublicKey;

    let trimmed = text.trim();
    let der = if trimmed.contains("-----BEGIN") {
        let block = pem::parse(trimmed)
            .map_err(|_| ApiError::bad(-9, "The CSR is not valid Base-64 data!"))?;
        if !block.tag().ends_with("CERTIFICATE REQUEST") {
            return Err(ApiError::bad(-10, "Error while decoding CSR."));
        }
        block.into_contents()
    } else {
        let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| ApiError::bad(-9, "The CSR is not valid Base-64 data!"))?
    };
    let decoding = || ApiError::bad(-10, "Error while decoding CSR.");
    let (rest, csr) = X509CertificationRequest::from_der(&der).map_err(|_| decoding())?;
    if !rest.is_empty() {
        return Err(decoding());
    }
    csr.verify_signature()
        .map_err(|_| ApiError::bad(-138, "Invalid CSR."))?;
    let info = &csr.certification_request_info;
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|name| name.as_str().ok())
        .map(str::to_string);
    let spki = &info.subject_pki;
    let unsupported = || ApiError::bad(-11, "The CSR uses an unsupported algorithm!");
    let (algorithm, parameter, bits) = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size() as u32;
            ("RSA", bits.to_string(), bits)
        }
        Ok(PublicKey::EC(point)) => {
            let bits = point.key_size() as u32;
            let curve = match bits {
                256 => "P-256",
                384 => "P-384",
                521 => "P-521",
                _ => return Err(unsupported()),
            };
            ("EC", curve.to_string(), bits)
        }
        _ => return Err(unsupported()),
    };
    Ok(Csr {
        spki_der: spki.raw.to_vec(),
        common_name,
        algorithm,
        parameter,
        bits,
    })
}

/// A degenerate PKCS#7 SignedData holding `certificates` (what `base64`/`bin` collect give).
pub(crate) fn pkcs7(certificates: &[&[u8]]) -> Vec<u8> {
    let signed_data_oid = oid(&[1, 2, 840, 113_549, 1, 7, 2]);
    let data_oid = oid(&[1, 2, 840, 113_549, 1, 7, 1]);
    let version = tlv(0x02, &[1]);
    let digest_algorithms = tlv(0x31, &[]);
    let content_info = tlv(0x30, &data_oid);
    let certificates = tlv(0xa0, &certificates.concat());
    let signer_infos = tlv(0x31, &[]);
    let signed_data = tlv(
        0x30,
        &[
            version,
            digest_algorithms,
            content_info,
            certificates,
            signer_infos,
        ]
        .concat(),
    );
    tlv(0x30, &[signed_data_oid, tlv(0xa0, &signed_data)].concat())
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let length = content.len();
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes: Vec<u8> = length
            .to_be_bytes()
            .into_iter()
            .skip_while(|byte| *byte == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut push = |mut value: u64| {
        let mut groups = vec![(value & 0x7f) as u8];
        value >>= 7;
        while value > 0 {
            groups.push(0x80 | (value & 0x7f) as u8);
            value >>= 7;
        }
        groups.reverse();
        body.extend_from_slice(&groups);
    };
    push(arcs[0] * 40 + arcs[1]);
    for arc in &arcs[2..] {
        push(*arc);
    }
    tlv(0x06, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PrivateKey;
    use crate::spec::KeySpec;

    #[test]
    fn csr_codes_and_key_parameters() {
        let key = PrivateKey::generate(KeySpec::Ecdsa(384)).unwrap();
        let der = key
            .csr_der("a.example.com", &["a.example.com".to_string()])
            .unwrap();
        let text = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.clone()));
        let csr = parse_csr(&text).unwrap();
        assert_eq!(
            (csr.algorithm, csr.parameter.as_str(), csr.bits),
            ("EC", "P-384", 384)
        );
        assert_eq!(csr.common_name.as_deref(), Some("a.example.com"));
        use base64::Engine as _;
        let bare = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(parse_csr(&bare).unwrap(), csr);
        assert_eq!(parse_csr("not base64 !!").unwrap_err().code, -9);
        assert_eq!(parse_csr("AAAA").unwrap_err().code, -10);
        let mut tampered = der.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        let tampered = base64::engine::general_purpose::STANDARD.encode(&tampered);
        assert_eq!(parse_csr(&tampered).unwrap_err().code, -138);
        let ed = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let ed_pem = pem::encode(&pem::Pem::new(
            "CERTIFICATE REQUEST",
            ed.csr_der("a.example.com", &[]).unwrap(),
        ));
        assert_eq!(parse_csr(&ed_pem).unwrap_err().code, -11);
    }

    #[test]
    fn oid_and_lengths() {
        assert_eq!(oid(&[2, 5, 29, 32]), vec![0x06, 0x03, 0x55, 0x1d, 0x20]);
        assert_eq!(&tlv(0x04, &[0u8; 300])[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
