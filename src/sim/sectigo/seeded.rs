//! The certificates a seed says exist before the first request (for import tests): issued by
//! the simulator's CA with one throw-away key per seed entry, in any status.

use time::{Duration, OffsetDateTime};

use super::ca::{parse_csr, LeafRequest};
use super::model::{Account, Certificate, Status};
use super::seed::Seed;
use super::Error;
use crate::keys::PrivateKey;
use crate::spec::KeySpec;

/// Create the seed's pre-existing certificates (one throw-away key per seed entry).
pub(crate) fn seed_certificates(
    account: &mut Account,
    seed: &Seed,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let invalid = |reason: String| Error::Seed { reason };
    for (index, entry) in seed.certificates.iter().enumerate() {
        let status = Status::parse(&entry.status).ok_or_else(|| {
            invalid(format!(
                "certificates[{index}]: unknown status `{}`",
                entry.status
            ))
        })?;
        let profile_id = entry
            .profile_id
            .or_else(|| account.profiles.first().map(|profile| profile.id))
            .ok_or_else(|| invalid("certificates need a profile".to_string()))?;
        let term = account
            .profile(profile_id)
            .and_then(|profile| profile.terms.first().copied())
            .ok_or_else(|| {
                invalid(format!(
                    "certificates[{index}]: unknown profile {profile_id}"
                ))
            })?;
        let org_id = entry
            .org_id
            .or_else(|| account.organizations.first().map(|org| org.id))
            .ok_or_else(|| invalid("certificates need an organization".to_string()))?;
        let key = PrivateKey::generate(KeySpec::Ecdsa(256))
            .map_err(|error| invalid(format!("certificates[{index}]: {error}")))?;
        let csr_der = key
            .csr_der("seed.example", &[])
            .map_err(|error| invalid(format!("certificates[{index}]: {error}")))?;
        use base64::Engine as _;
        let csr = parse_csr(&base64::engine::general_purpose::STANDARD.encode(csr_der))
            .map_err(|error| invalid(error.description))?;
        for n in 1..=entry.count {
            let name = |text: &str| text.replace("{n}", &n.to_string()).to_ascii_lowercase();
            let (id, order_number, renew_id) = account.next_certificate_id();
            let issued_at = now - Duration::days(i64::from(entry.age_days));
            let common_name = name(&entry.common_name);
            let sans: Vec<String> = entry
                .subject_alternative_names
                .iter()
                .map(|s| name(s))
                .collect();
            let mut certificate = Certificate {
                id,
                renew_id,
                order_number,
                common_name: common_name.clone(),
                sans,
                org_id,
                profile_id,
                term,
                comments: entry.comments.replace("{n}", &n.to_string()),
                external_requester: String::new(),
                custom_fields: Vec::new(),
                spki_der: csr.spki_der.clone(),
                key_algorithm: csr.algorithm,
                key_parameter: csr.parameter.clone(),
                key_bits: csr.bits,
                dcv_mode: None,
                dcv_email: None,
                requester: "seed@example.com".to_string(),
                requester_id: 1,
                requested_via: entry.requested_via.clone(),
                owner: Some(("seed".to_string(), 1)),
                status,
                requested: issued_at,
                approved: None,
                issued: None,
                declined: None,
                revoked: None,
                replaced: None,
                reason_code: None,
                renewed: false,
                renewed_date: None,
                issue_at: None,
                leaf: None,
                dcv: Vec::new(),
            };
            if matches!(
                status,
                Status::Issued | Status::Revoked | Status::Expired | Status::Replaced
            ) {
                let organization = account
                    .organization(org_id)
                    .map(|(organization, _)| organization.name.clone());
                let names = certificate.names();
                let leaf = account
                    .ca
                    .sign(&LeafRequest {
                        common_name: &common_name,
                        sans: &names,
                        spki_der: &csr.spki_der,
                        is_rsa: false,
                        organization: organization.as_deref(),
                        not_before: issued_at,
                        not_after: issued_at + Duration::days(i64::from(term)),
                        serial: account.rng.bytes::<16>(),
                    })
                    .map_err(|reason| invalid(format!("certificates[{index}]: {reason}")))?;
                certificate.approved = Some(issued_at);
                certificate.issued = Some(issued_at);
                if status == Status::Revoked {
                    certificate.revoked = Some(now);
                    certificate.reason_code = Some(4);
                }
                if status == Status::Replaced {
                    certificate.replaced = Some(now);
                }
                let expired = leaf.not_after <= now;
                certificate.leaf = Some(leaf);
                if status == Status::Issued && expired {
                    certificate.status = Status::Expired;
                }
            } else if status == Status::Applied {
                certificate.approved = Some(issued_at);
                certificate.issue_at = Some(now);
            }
            account.certificates.insert(id, certificate);
        }
    }
    Ok(())
}
