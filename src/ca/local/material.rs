//! The CA material: the root and intermediate keys and certificates, created on first use,
//! loaded and checked afterwards, never regenerated over what exists.

use std::fs;
use std::io;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyUsagePurpose,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::issue::random_serial;
use super::orders::corrupt;
use super::{
    io_error, CA_BACKDATE, INTERMEDIATE_CERT, INTERMEDIATE_KEY, INTERMEDIATE_LIFETIME_DAYS,
    ROOT_CERT, ROOT_KEY, ROOT_LIFETIME_DAYS,
};
use crate::ca::{CaError, ErrorClass};
use crate::config::model::LocalCaSettings;
use crate::keys::{self, PrivateKey};
use crate::spec::KeySpec;

/// Load the root, repair a root whose key exists without its certificate, or create it.
pub(super) fn load_or_create_root(
    name: &str,
    settings: &LocalCaSettings,
    home: &Path,
    orders_dir: &Path,
    now: OffsetDateTime,
) -> Result<(PrivateKey, String), CaError> {
    let key = read_key(name, home, ROOT_KEY)?;
    let cert = read_text(name, home, ROOT_CERT)?;
    match (key, cert) {
        (Some(key), Some(cert)) => {
            check_key_matches(name, ROOT_CERT, &cert, &key)?;
            let (info, _) =
                keys::inspect_chain(&cert).map_err(|error| corrupt(name, ROOT_CERT, error))?;
            if info.common_name.as_deref() != Some(settings.root_common_name.as_str()) {
                tracing::warn!(
                    ca = name,
                    "the existing root keeps its common name; `root_common_name` applies only to a new CA"
                );
            }
            Ok((key, cert))
        }
        (Some(key), None) => {
            // The key was written (and fsynced) but the run died before the certificate: the
            // certificate was never seen by anyone, so making it again from the same key is safe.
            let cert = root_certificate(name, settings, &key, now)?;
            write_file(name, home, ROOT_CERT, &cert, 0o644)?;
            Ok((key, cert))
        }
        (None, Some(_)) => Err(broken(
            name,
            home,
            format!("`{ROOT_CERT}` exists but its key `{ROOT_KEY}` is missing"),
        )),
        (None, None) => {
            for other in [INTERMEDIATE_KEY, INTERMEDIATE_CERT] {
                if home.join(other).exists() {
                    return Err(broken(
                        name,
                        home,
                        format!("`{other}` exists but the root (`{ROOT_KEY}`) is missing"),
                    ));
                }
            }
            refuse_if_orders_exist(name, home, orders_dir, "the root is missing")?;
            let key = generate_ca_key(name)?;
            write_file(name, home, ROOT_KEY, key.pem(), 0o600)?;
            let cert = root_certificate(name, settings, &key, now)?;
            write_file(name, home, ROOT_CERT, &cert, 0o644)?;
            Ok((key, cert))
        }
    }
}

/// Load the intermediate, repair one whose key exists without its certificate, or create it.
pub(super) fn load_or_create_intermediate(
    name: &str,
    home: &Path,
    orders_dir: &Path,
    root_key: &PrivateKey,
    root_pem: &str,
    now: OffsetDateTime,
) -> Result<(PrivateKey, String), CaError> {
    let key = read_key(name, home, INTERMEDIATE_KEY)?;
    let cert = read_text(name, home, INTERMEDIATE_CERT)?;
    match (key, cert) {
        (Some(key), Some(cert)) => {
            check_key_matches(name, INTERMEDIATE_CERT, &cert, &key)?;
            Ok((key, cert))
        }
        (Some(key), None) => {
            let cert = intermediate_certificate(name, &key, root_key, root_pem, now)?;
            write_file(name, home, INTERMEDIATE_CERT, &cert, 0o644)?;
            Ok((key, cert))
        }
        (None, Some(_)) => Err(broken(
            name,
            home,
            format!("`{INTERMEDIATE_CERT}` exists but its key `{INTERMEDIATE_KEY}` is missing"),
        )),
        (None, None) => {
            refuse_if_orders_exist(name, home, orders_dir, "the intermediate is missing")?;
            let key = generate_ca_key(name)?;
            write_file(name, home, INTERMEDIATE_KEY, key.pem(), 0o600)?;
            let cert = intermediate_certificate(name, &key, root_key, root_pem, now)?;
            write_file(name, home, INTERMEDIATE_CERT, &cert, 0o644)?;
            Ok((key, cert))
        }
    }
}

fn root_certificate(
    name: &str,
    settings: &LocalCaSettings,
    key: &PrivateKey,
    now: OffsetDateTime,
) -> Result<String, CaError> {
    let mut params = ca_params(
        &settings.root_common_name,
        BasicConstraints::Unconstrained,
        now,
    )?;
    params.not_after = now + Duration::days(ROOT_LIFETIME_DAYS);
    let cert = params
        .self_signed(key.key_pair())
        .map_err(|error| ca_creation_error(name, "root", error))?;
    Ok(cert.pem())
}

fn intermediate_certificate(
    name: &str,
    key: &PrivateKey,
    root_key: &PrivateKey,
    root_pem: &str,
    now: OffsetDateTime,
) -> Result<String, CaError> {
    let (root_info, _) =
        keys::inspect_chain(root_pem).map_err(|error| corrupt(name, ROOT_CERT, error))?;
    let mut params = ca_params(
        &format!("certform local intermediate ({name})"),
        BasicConstraints::Constrained(0),
        now,
    )?;
    params.not_after = (now + Duration::days(INTERMEDIATE_LIFETIME_DAYS)).min(root_info.not_after);
    params.use_authority_key_identifier_extension = true;
    let root_issuer = Issuer::from_ca_cert_pem(root_pem, root_key.key_pair())
        .map_err(|error| corrupt(name, ROOT_CERT, error))?;
    let cert = params
        .signed_by(key.key_pair(), &root_issuer)
        .map_err(|error| ca_creation_error(name, "intermediate", error))?;
    Ok(cert.pem())
}

fn ca_params(
    common_name: &str,
    constraints: BasicConstraints,
    now: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - CA_BACKDATE;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    Ok(params)
}

fn generate_ca_key(name: &str) -> Result<PrivateKey, CaError> {
    PrivateKey::generate(KeySpec::Ecdsa(256)).map_err(|error| {
        CaError::new(
            ErrorClass::Protocol,
            format!("local CA `{name}`: failed to generate a key"),
        )
        .with_source(error)
    })
}

fn ca_creation_error(name: &str, what: &str, error: rcgen::Error) -> CaError {
    CaError::new(
        ErrorClass::Protocol,
        format!("local CA `{name}`: failed to create the {what} certificate"),
    )
    .with_source(error)
}

/// Check that `cert_pem` carries the public key of `key`.
fn check_key_matches(
    name: &str,
    file: &str,
    cert_pem: &str,
    key: &PrivateKey,
) -> Result<(), CaError> {
    let (info, _) = keys::inspect_chain(cert_pem).map_err(|error| corrupt(name, file, error))?;
    if info.spki_sha256 != key.spki_sha256() {
        return Err(CaError::new(
            ErrorClass::Protocol,
            format!("local CA `{name}`: `{file}` does not match its key file"),
        ));
    }
    Ok(())
}

/// Check that the intermediate is a CA certificate signed by the root.
pub(super) fn check_issued_by(
    name: &str,
    intermediate_pem: &str,
    root_pem: &str,
) -> Result<(), CaError> {
    let intermediate =
        pem::parse(intermediate_pem).map_err(|error| corrupt(name, INTERMEDIATE_CERT, error))?;
    let root = pem::parse(root_pem).map_err(|error| corrupt(name, ROOT_CERT, error))?;
    let (_, intermediate) = X509Certificate::from_der(intermediate.contents())
        .map_err(|error| corrupt(name, INTERMEDIATE_CERT, error))?;
    let (_, root) = X509Certificate::from_der(root.contents())
        .map_err(|error| corrupt(name, ROOT_CERT, error))?;
    let root_key: &SubjectPublicKeyInfo = root.public_key();
    if !intermediate.is_ca() || intermediate.verify_signature(Some(root_key)).is_err() {
        return Err(CaError::new(
            ErrorClass::Protocol,
            format!("local CA `{name}`: `{INTERMEDIATE_CERT}` is not a CA certificate issued by `{ROOT_CERT}`"),
        ));
    }
    Ok(())
}

fn refuse_if_orders_exist(
    name: &str,
    home: &Path,
    orders_dir: &Path,
    problem: &str,
) -> Result<(), CaError> {
    let has_orders = match fs::read_dir(orders_dir) {
        Ok(mut entries) => entries.any(|entry| {
            entry
                .ok()
                .and_then(|entry| entry.file_name().to_str().map(|n| n.ends_with(".json")))
                .unwrap_or(false)
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => false,
        Err(error) => return Err(io_error(name, "list", orders_dir, error)),
    };
    if has_orders {
        return Err(broken(
            name,
            home,
            format!("{problem} but orders exist; a new CA would not match them"),
        ));
    }
    Ok(())
}

fn broken(name: &str, home: &Path, problem: String) -> CaError {
    CaError::new(
        ErrorClass::Protocol,
        format!(
            "local CA `{name}` in `{}` is damaged: {problem}; restore the missing file from a \
             backup, or move the directory away to start a new CA",
            home.display()
        ),
    )
}

fn read_text(name: &str, home: &Path, file: &str) -> Result<Option<String>, CaError> {
    let path = home.join(file);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error(name, "read", &path, error)),
    }
}

fn read_key(name: &str, home: &Path, file: &str) -> Result<Option<PrivateKey>, CaError> {
    read_text(name, home, file)?
        .map(|text| PrivateKey::from_pem(&text).map_err(|error| corrupt(name, file, error)))
        .transpose()
}

fn write_file(name: &str, home: &Path, file: &str, text: &str, mode: u32) -> Result<(), CaError> {
    let path = home.join(file);
    crate::atomic_file::write(&path, text.as_bytes(), mode)
        .map_err(|error| io_error(name, "write", &path, error))
}
