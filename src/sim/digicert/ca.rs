//! The simulator's certificate authority: a root and one intermediate per signature hash
//! (SHA-256: ECDSA P-256, SHA-384: ECDSA P-384, SHA-512: RSA), issuing real X.509 leaves for
//! the public key of a CSR. Also parses CSRs.

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RsaKeySize, SanType,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;

use super::seed::{CaSeed, ValidationType};
use super::Error;
use crate::keys::{self, PrivateKey};

/// Lifetime of a generated root.
const ROOT_LIFETIME_DAYS: i64 = 3650;
/// Lifetime of the intermediates.
const INTERMEDIATE_LIFETIME_DAYS: i64 = 1825;

/// An issuing CA certificate.
pub(crate) struct Intermediate {
    /// `ca_cert.id` in order info.
    pub(crate) id: String,
    pub(crate) name: String,
    /// The signature hash of the leaves it signs.
    pub(crate) hash: &'static str,
    pub(crate) pem: String,
    pub(crate) der: Vec<u8>,
    pub(crate) not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

/// The root and the intermediates.
pub(crate) struct SimCa {
    pub(crate) root_pem: String,
    pub(crate) root_der: Vec<u8>,
    pub(crate) root_name: String,
    pub(crate) intermediates: Vec<Intermediate>,
}

/// The subject organization of OV/EV leaves.
#[derive(Debug, Clone, Default)]
pub(crate) struct OrganizationSubject {
    pub(crate) name: String,
    pub(crate) city: String,
    pub(crate) state: String,
    pub(crate) country: String,
}

/// What goes into one leaf.
pub(crate) struct LeafSpec<'a> {
    pub(crate) common_name: &'a str,
    pub(crate) sans: &'a [String],
    pub(crate) spki_der: &'a [u8],
    pub(crate) is_rsa: bool,
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
    pub(crate) serial: [u8; 16],
    pub(crate) organization: Option<&'a OrganizationSubject>,
    pub(crate) organization_units: &'a [String],
    pub(crate) validation: ValidationType,
    pub(crate) client_auth: bool,
}

/// An issued leaf.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) der: Vec<u8>,
    /// Uppercase hex, as CertCentral shows serials.
    pub(crate) serial: String,
    /// Uppercase hex SHA-1 of the DER, as CertCentral shows thumbprints.
    pub(crate) thumbprint: String,
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
}

impl SimCa {
    /// Create the intermediates under the seed's root, or under a new root.
    pub(crate) fn new(seed: Option<&CaSeed>, now: OffsetDateTime) -> Result<Self, Error> {
        let (root_pem, root_key) = match seed {
            Some(seed) => load_root(seed)?,
            None => new_root(now)?,
        };
        let (root_info, _) =
            keys::inspect_chain(&root_pem).map_err(|error| ca_error("the root", error))?;
        let root_issuer = Issuer::from_ca_cert_pem(&root_pem, root_key)
            .map_err(|error| ca_error("the root", error))?;
        let root_der = pem::parse(&root_pem)
            .map_err(|error| ca_error("the root", error))?
            .into_contents();
        let root_name = root_info.common_name.clone().unwrap_or_default();
        let specs: [(&'static str, &str, Algorithm); 3] = [
            (
                "sha256",
                "certform DigiCert Simulator TLS ECC P-256 SHA256 CA1",
                Algorithm::P256,
            ),
            (
                "sha384",
                "certform DigiCert Simulator TLS ECC P-384 SHA384 CA1",
                Algorithm::P384,
            ),
            (
                "sha512",
                "certform DigiCert Simulator TLS RSA SHA512 CA1",
                Algorithm::RsaSha512,
            ),
        ];
        let mut intermediates = Vec::new();
        for (hash, name, algorithm) in specs {
            let key = algorithm
                .generate()
                .map_err(|error| ca_error("an intermediate key", error))?;
            let mut params = ca_params(name, BasicConstraints::Constrained(0), now);
            params.not_after =
                (now + Duration::days(INTERMEDIATE_LIFETIME_DAYS)).min(root_info.not_after);
            params.use_authority_key_identifier_extension = true;
            let certificate = params
                .signed_by(&key, &root_issuer)
                .map_err(|error| ca_error(name, error))?;
            let der = certificate.der().to_vec();
            let id = keys::sha256_hex(&der)[..16].to_uppercase();
            intermediates.push(Intermediate {
                id,
                name: name.to_string(),
                hash,
                pem: certificate.pem(),
                der,
                not_after: params.not_after,
                issuer: Issuer::new(params, key),
            });
        }
        Ok(Self {
            root_pem,
            root_der,
            root_name,
            intermediates,
        })
    }

    /// The intermediate named by `ca_cert_id`, else the one for `hash`.
    pub(crate) fn intermediate(
        &self,
        hash: &str,
        ca_cert_id: Option<&str>,
    ) -> Option<&Intermediate> {
        match ca_cert_id {
            Some(id) => self
                .intermediates
                .iter()
                .find(|ica| ica.id.eq_ignore_ascii_case(id)),
            None => self.intermediates.iter().find(|ica| ica.hash == hash),
        }
    }

    /// Sign a leaf with `intermediate`. The error is a sentence for a 400 message.
    pub(crate) fn sign(
        &self,
        intermediate: &Intermediate,
        spec: &LeafSpec<'_>,
    ) -> Result<Leaf, String> {
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        if let Some(organization) = spec.organization {
            if !organization.country.is_empty() {
                subject.push(DnType::CountryName, organization.country.to_uppercase());
            }
            if !organization.state.is_empty() {
                subject.push(DnType::StateOrProvinceName, organization.state.as_str());
            }
            if !organization.city.is_empty() {
                subject.push(DnType::LocalityName, organization.city.as_str());
            }
            subject.push(DnType::OrganizationName, organization.name.as_str());
        }
        for unit in spec.organization_units {
            subject.push(DnType::OrganizationalUnitName, unit.as_str());
        }
        subject.push(DnType::CommonName, spec.common_name);
        params.distinguished_name = subject;
        params.subject_alt_names = spec
            .sans
            .iter()
            .map(|name| {
                rcgen::string::Ia5String::try_from(name.as_str())
                    .map(SanType::DnsName)
                    .map_err(|_| format!("`{name}` is not a valid DNS name"))
            })
            .collect::<Result<_, _>>()?;
        params.not_before = spec.not_before;
        params.not_after = spec.not_after.min(intermediate.not_after);
        params.serial_number = Some(SerialNumber::from_slice(&spec.serial));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = if spec.is_rsa {
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ]
        } else {
            vec![KeyUsagePurpose::DigitalSignature]
        };
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if spec.client_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.use_authority_key_identifier_extension = true;
        if let Some(policy) = policy_oid(spec.validation) {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &[2, 5, 29, 32],
                    der::sequence(&der::sequence(&der::oid(policy))),
                ));
        }
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(spec.spki_der)
            .map_err(|error| format!("the CSR's public key cannot be used: {error}"))?;
        let certificate = params
            .signed_by(&public_key, &intermediate.issuer)
            .map_err(|error| format!("the certificate cannot be signed: {error}"))?;
        let der = certificate.der().to_vec();
        Ok(Leaf {
            serial: crate::serial::Serial::from_bytes(&spec.serial)
                .as_str()
                .to_uppercase(),
            thumbprint: sha1_hex_upper(&der),
            not_before: params.not_before,
            not_after: params.not_after,
            der,
        })
    }
}

/// Uppercase hex SHA-1 (CertCentral thumbprints).
pub(crate) fn sha1_hex_upper(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes);
    hex::encode_upper(digest.as_ref())
}

/// CA/Browser Forum policy OIDs.
fn policy_oid(validation: ValidationType) -> Option<&'static [u64]> {
    match validation {
        ValidationType::Dv => Some(&[2, 23, 140, 1, 2, 1]),
        ValidationType::Ov => Some(&[2, 23, 140, 1, 2, 2]),
        ValidationType::Ev => Some(&[2, 23, 140, 1, 1]),
        ValidationType::Private => None,
    }
}

#[derive(Clone, Copy)]
enum Algorithm {
    P256,
    P384,
    RsaSha512,
}

impl Algorithm {
    fn generate(self) -> Result<KeyPair, rcgen::Error> {
        match self {
            Self::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            Self::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            Self::RsaSha512 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA512, RsaKeySize::_2048)
            }
        }
    }
}

fn new_root(now: OffsetDateTime) -> Result<(String, KeyPair), Error> {
    let key = Algorithm::P384
        .generate()
        .map_err(|error| ca_error("the root key", error))?;
    let mut params = ca_params(
        "certform DigiCert Simulator Root G5",
        BasicConstraints::Unconstrained,
        now,
    );
    params.not_after = now + Duration::days(ROOT_LIFETIME_DAYS);
    let certificate = params
        .self_signed(&key)
        .map_err(|error| ca_error("the root", error))?;
    Ok((certificate.pem(), key))
}

fn load_root(seed: &CaSeed) -> Result<(String, KeyPair), Error> {
    let key = PrivateKey::from_pem(&seed.root_key_pem)
        .map_err(|error| ca_error("`ca.root_key_pem`", error))?;
    let (info, _) = keys::inspect_chain(&seed.root_certificate_pem)
        .map_err(|error| ca_error("`ca.root_certificate_pem`", error))?;
    if info.spki_sha256 != key.spki_sha256() {
        return Err(Error::Ca {
            reason: "`ca.root_key_pem` is not the key of `ca.root_certificate_pem`".to_string(),
        });
    }
    Ok((seed.root_certificate_pem.clone(), key.into_key_pair()))
}

fn ca_params(
    common_name: &str,
    constraints: BasicConstraints,
    now: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CountryName, "US");
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
    let serial = keys::sha256_hex(format!("{common_name}{now}").as_bytes());
    params.serial_number = Some(SerialNumber::from_slice(
        &hex::decode(&serial[..32]).unwrap_or_else(|_| vec![1]),
    ));
    params
}

fn ca_error(what: &str, error: impl std::fmt::Display) -> Error {
    Error::Ca {
        reason: format!("{what}: {error}"),
    }
}

/// A parsed, signature-checked CSR.
#[derive(Debug, Clone)]
pub(crate) struct Csr {
    pub(crate) spki_der: Vec<u8>,
    pub(crate) is_rsa: bool,
    /// RSA modulus bits or EC curve bits.
    pub(crate) key_size: u32,
}

/// Why a CSR was refused: the code and message of the 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CsrProblem {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

fn csr_problem(code: &'static str, message: impl Into<String>) -> CsrProblem {
    CsrProblem {
        code,
        message: message.into(),
    }
}

/// Parse a CSR given as PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`) or as bare
/// base64 DER, check its signature and key.
pub(crate) fn parse_csr(text: &str) -> Result<Csr, CsrProblem> {
    use base64::Engine as _;
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::public_key::PublicKey;

    let unparsable = || csr_problem("csr_invalid_cannot_parse", "The CSR could not be parsed.");
    let trimmed = text.trim();
    let der = if trimmed.contains("-----BEGIN") {
        let block = pem::parse(trimmed).map_err(|_| unparsable())?;
        if !block.tag().ends_with("CERTIFICATE REQUEST") {
            return Err(unparsable());
        }
        block.into_contents()
    } else {
        let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| unparsable())?
    };
    let (rest, csr) = X509CertificationRequest::from_der(&der).map_err(|_| unparsable())?;
    if !rest.is_empty() {
        return Err(unparsable());
    }
    csr.verify_signature().map_err(|_| {
        csr_problem(
            "csr_invalid_signature",
            "The CSR signature does not verify.",
        )
    })?;
    let spki = &csr.certification_request_info.subject_pki;
    let (is_rsa, key_size) = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => (true, rsa.key_size() as u32),
        Ok(PublicKey::EC(point)) => (false, point.key_size() as u32),
        _ => {
            return Err(csr_problem(
                "csr_invalid_key_type",
                "The CSR key must be RSA (2048 bits or more) or ECDSA P-256/P-384.",
            ))
        }
    };
    if is_rsa && key_size < 2048 {
        return Err(csr_problem(
            "csr_invalid_key_size",
            format!("RSA keys must have at least 2048 bits; the CSR's has {key_size}."),
        ));
    }
    if !is_rsa && !matches!(key_size, 256 | 384) {
        return Err(csr_problem(
            "csr_invalid_key_type",
            "The CSR key must be RSA (2048 bits or more) or ECDSA P-256/P-384.",
        ));
    }
    Ok(Csr {
        spki_der: spki.raw.to_vec(),
        is_rsa,
        key_size,
    })
}

/// The few DER encodings the simulator builds by hand.
pub(crate) mod der {
    /// Tag-length-value.
    pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
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

    pub(crate) fn sequence(content: &[u8]) -> Vec<u8> {
        tlv(0x30, content)
    }

    pub(crate) fn set(content: &[u8]) -> Vec<u8> {
        tlv(0x31, content)
    }

    pub(crate) fn oid(arcs: &[u64]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut arcs = arcs.iter().copied();
        let first = arcs.next().unwrap_or(0);
        let second = arcs.next().unwrap_or(0);
        push_base128(&mut body, first * 40 + second);
        for arc in arcs {
            push_base128(&mut body, arc);
        }
        tlv(0x06, &body)
    }

    fn push_base128(out: &mut Vec<u8>, mut value: u64) {
        let mut groups = vec![(value & 0x7f) as u8];
        value >>= 7;
        while value > 0 {
            groups.push(0x80 | (value & 0x7f) as u8);
            value >>= 7;
        }
        groups.reverse();
        out.extend_from_slice(&groups);
    }

    /// A degenerate PKCS#7 SignedData holding `certificates` (a `.p7b`).
    pub(crate) fn pkcs7_certificates(certificates: &[&[u8]]) -> Vec<u8> {
        let signed_data_oid = oid(&[1, 2, 840, 113_549, 1, 7, 2]);
        let data_oid = oid(&[1, 2, 840, 113_549, 1, 7, 1]);
        let version = tlv(0x02, &[1]);
        let digest_algorithms = set(&[]);
        let content_info = sequence(&data_oid);
        let certificates = tlv(0xa0, &certificates.concat());
        let signer_infos = set(&[]);
        let signed_data = sequence(
            &[
                version,
                digest_algorithms,
                content_info,
                certificates,
                signer_infos,
            ]
            .concat(),
        );
        sequence(&[signed_data_oid, tlv(0xa0, &signed_data)].concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::KeySpec;

    #[test]
    fn oid_encoding() {
        assert_eq!(
            der::oid(&[2, 5, 29, 32]),
            vec![0x06, 0x03, 0x55, 0x1d, 0x20]
        );
        assert_eq!(
            der::oid(&[1, 2, 840, 113_549]),
            vec![0x06, 0x06, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]
        );
        let long = der::tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn csr_parsing_accepts_pem_and_base64_and_refuses_garbage() {
        let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
        let der = key
            .csr_der(
                "a.example",
                &["a.example".to_string(), "B.example".to_string()],
            )
            .unwrap();
        let pem_text = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.clone()));
        let csr = parse_csr(&pem_text).unwrap();
        assert_eq!(csr.key_size, 256);
        assert!(!csr.is_rsa);
        use base64::Engine as _;
        let bare = base64::engine::general_purpose::STANDARD.encode(&der);
        assert!(parse_csr(&bare).is_ok());
        assert_eq!(
            parse_csr("nonsense").unwrap_err().code,
            "csr_invalid_cannot_parse"
        );
        let ed = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let ed_pem = pem::encode(&pem::Pem::new(
            "CERTIFICATE REQUEST",
            ed.csr_der("a.example", &[]).unwrap(),
        ));
        assert_eq!(parse_csr(&ed_pem).unwrap_err().code, "csr_invalid_key_type");
    }
}
