//! The SSL endpoints that change existing certificates: renew (by id, by renew id, manual
//! mark), replace, revoke (by id, serial, manual), approve, decline, delete, update, and the
//! per-certificate DCV details and recheck. Codes and texts are those of Sectigo's error
//! table (D25 `#overview-errors`); the few the table lacks are marked as the simulator's own.

use serde_json::{json, Map, Value};
use time::{Duration, OffsetDateTime};

use super::ca::{parse_csr, Csr};
use super::model::{log_time, Account, ApiError, Certificate, Reply, Status, User};
use super::query::Query;
use super::seed::Privilege;
use super::ssl::{
    check_key, check_names, create, custom_fields, dcv_fields, details, external_requester,
    int_field, object, present, require, required_str, same_serial, str_field, visible, New,
};

fn certificate_id(id: &str) -> Result<u64, ApiError> {
    id.parse::<u64>().map_err(|_| ApiError::wrong_id(id))
}

/// Renew from `old`: a new record with the same parameters (and the new CSR if given).
fn renew_from(
    account: &mut Account,
    user: &User,
    old_id: u64,
    body: &Map<String, Value>,
    now: OffsetDateTime,
) -> Result<u64, ApiError> {
    let Some(old) = account.certificates.get(&old_id).cloned() else {
        return Err(ApiError::wrong_id(old_id));
    };
    if !matches!(old.status, Status::Issued | Status::Expired) {
        return Err(ApiError::bad(
            -105,
            format!(
                "Error was occurred while renewing cert. Status = {}",
                old.status.name(&account.quirks)
            ),
        ));
    }
    let profile = account
        .profile(old.profile_id)
        .cloned()
        .ok_or_else(|| ApiError::bad(-123, "SSL Certificate to renew is invalid (null)"))?;
    if !profile.renewable {
        return Err(ApiError::bad(
            -180,
            "This SSL Certificate Profile doesn't allow renew",
        ));
    }
    let csr = match str_field(body, "csr")?.filter(|text| !text.trim().is_empty()) {
        Some(text) => {
            let csr = parse_csr(&text)?;
            check_key(&csr, &profile)?;
            csr
        }
        None => Csr {
            spki_der: old.spki_der.clone(),
            common_name: Some(old.common_name.clone()),
            algorithm: old.key_algorithm,
            parameter: old.key_parameter.clone(),
            bits: old.key_bits,
        },
    };
    let (dcv_mode, dcv_email) = dcv_fields(body)?;
    let dcv_mode = dcv_mode.or(old.dcv_mode.clone());
    check_names(
        account,
        &old.names(),
        old.org_id,
        dcv_mode.as_deref(),
        "csr",
    )?;
    let id = create(
        account,
        user,
        New {
            common_name: old.common_name.clone(),
            sans: old.sans.clone(),
            org_id: old.org_id,
            profile_id: old.profile_id,
            term: old.term,
            comments: old.comments.clone(),
            external_requester: old.external_requester.clone(),
            custom_fields: old.custom_fields.clone(),
            csr,
            dcv_mode,
            dcv_email: dcv_email.or(old.dcv_email.clone()),
            requested_via: old.requested_via.clone(),
        },
        now,
    );
    if let Some(old) = account.certificates.get_mut(&old_id) {
        old.renewed = true;
        old.renewed_date = Some(now);
    }
    account.counters.renewals += 1;
    Ok(id)
}

/// `POST /api/ssl/v1/renewById/{sslId}` → 200 `{sslId}` (the new record).
pub(crate) fn renew_by_id(
    account: &mut Account,
    user: &User,
    id: &str,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    require(account, user, Privilege::SslRenew, "SSL renewal")?;
    visible(account, user, id)?;
    let body = object(body, true)?;
    let new_id = renew_from(account, user, certificate_id(id)?, &body, now)?;
    Ok(Reply::ok(json!({"sslId": new_id})))
}

/// `POST /api/ssl/v1/renew/{renewId}` → 204.
pub(crate) fn renew_by_renew_id(
    account: &mut Account,
    user: &User,
    renew_id: &str,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    require(account, user, Privilege::SslRenew, "SSL renewal")?;
    let Some(old_id) = account
        .certificates
        .values()
        .find(|certificate| certificate.renew_id == renew_id)
        .map(|certificate| certificate.id)
        .filter(|_| user.role.manages_ssl())
    else {
        return Err(ApiError::bad(
            -123,
            "SSL Certificate to renew is invalid (null)",
        ));
    };
    let body = object(body, true)?;
    renew_from(account, user, old_id, &body, now)?;
    Ok(Reply::no_content())
}

/// `POST /api/ssl/v1/replace/{sslId}` → 204: reissue with a new CSR on the same record.
pub(crate) fn replace(
    account: &mut Account,
    user: &User,
    id: &str,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    require(account, user, Privilege::SslReplace, "SSL replacement")?;
    let old = visible(account, user, id)?.clone();
    if old.status != Status::Issued {
        return Err(ApiError::bad(
            -130,
            format!(
                "SSL state is not 'ISSUED': {}",
                old.status.name(&account.quirks)
            ),
        ));
    }
    let body = object(body, false)?;
    let csr = parse_csr(&required_str(&body, "csr")?)?;
    let reason = required_str(&body, "reason")?;
    if reason.chars().count() > 512 {
        return Err(ApiError::invalid("reason"));
    }
    let profile = account
        .profile(old.profile_id)
        .cloned()
        .ok_or_else(|| ApiError::bad(-39, "The certificate profile id is invalid!"))?;
    check_key(&csr, &profile)?;
    let common_name = str_field(&body, "commonName")?
        .filter(|name| !name.trim().is_empty())
        .map(|name| name.trim().to_ascii_lowercase())
        .unwrap_or_else(|| old.common_name.clone());
    if common_name.len() > 64 {
        return Err(ApiError::invalid("commonName"));
    }
    let sans = match present(&body, "subjectAlternativeNames") {
        None => old.sans.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(|name| name.trim().to_ascii_lowercase())
                    .ok_or_else(ApiError::unparsable)
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(ApiError::unparsable()),
    };
    let (dcv_mode, dcv_email) = dcv_fields(&body)?;
    let dcv_mode = dcv_mode.or(old.dcv_mode.clone());
    let mut names = vec![common_name.clone()];
    names.extend(sans.iter().cloned());
    check_names(
        account,
        &names,
        old.org_id,
        dcv_mode.as_deref(),
        "subjectAlternativeNames",
    )?;
    let dcv = account.dcv_instructions(
        &names,
        old.org_id,
        dcv_mode.as_deref(),
        dcv_email.as_deref(),
    );
    let delay = Duration::seconds(
        i64::try_from(account.workflow.issue_delay_seconds).unwrap_or(i64::MAX / 2),
    );
    let target = if account.quirks.replace_keeps_id {
        old.id
    } else {
        let (new_id, order_number, renew_id) = account.next_certificate_id();
        let mut copy = old.clone();
        copy.id = new_id;
        copy.order_number = order_number;
        copy.renew_id = renew_id;
        copy.requested = now;
        account.certificates.insert(new_id, copy);
        if let Some(previous) = account.certificates.get_mut(&old.id) {
            previous.status = Status::Replaced;
            previous.replaced = Some(now);
        }
        new_id
    };
    if let Some(certificate) = account.certificates.get_mut(&target) {
        certificate.common_name = common_name;
        certificate.sans = sans;
        certificate.spki_der = csr.spki_der;
        certificate.key_algorithm = csr.algorithm;
        certificate.key_parameter = csr.parameter;
        certificate.key_bits = csr.bits;
        certificate.dcv_mode = dcv_mode;
        certificate.dcv_email = dcv_email;
        certificate.dcv = dcv;
        certificate.status = Status::Applied;
        certificate.issue_at = Some(now + delay);
        certificate.leaf = None;
        certificate.issued = None;
        if account.quirks.replace_keeps_id {
            certificate.replaced = Some(now);
        }
    }
    account.counters.replacements += 1;
    account.tick(now);
    Ok(Reply::no_content())
}

/// Which certificate a revoke names.
pub(crate) enum RevokeTarget<'a> {
    Id(&'a str),
    Serial(&'a str),
}

/// `POST /api/ssl/v1/revoke/{sslId}` and `/revoke/serial/{serial}` → 204.
pub(crate) fn revoke(
    account: &mut Account,
    user: &User,
    target: RevokeTarget<'_>,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    require(account, user, Privilege::SslRevoke, "SSL revocation")?;
    let id = match target {
        RevokeTarget::Id(id) => visible(account, user, id)?.id,
        RevokeTarget::Serial(serial) => account
            .certificates
            .values()
            .filter(|_| user.role.manages_ssl())
            .find(|c| {
                c.leaf
                    .as_ref()
                    .is_some_and(|leaf| same_serial(&leaf.serial, serial))
            })
            .map(|c| c.id)
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    -166,
                    "Entered data doesn't match the certificate or no valid certificate found",
                )
            })?,
    };
    let body = object(body, false)?;
    if account.quirks.strict_reason_code
        && matches!(present(&body, "reasonCode"), Some(Value::String(_)))
    {
        return Err(ApiError::unparsable());
    }
    let reason_code = int_field(&body, "reasonCode")?.unwrap_or(0);
    if !matches!(reason_code, 0 | 1 | 3 | 4 | 5) {
        return Err(ApiError::invalid("reasonCode"));
    }
    let reason = required_str(&body, "reason")?;
    if reason.chars().count() > 512 {
        return Err(ApiError::invalid("reason"));
    }
    let Some(certificate) = account.certificates.get_mut(&id) else {
        return Err(ApiError::wrong_id(id));
    };
    match certificate.status {
        Status::Revoked => return Err(ApiError::bad(-159, "Your certificate already revoked")),
        Status::Issued => {}
        _ => {
            return Err(ApiError::bad(
                -102,
                "Only issued certificates could be revoked.",
            ))
        }
    }
    certificate.status = Status::Revoked;
    certificate.revoked = Some(now);
    certificate.reason_code = Some(reason_code as u8);
    account.counters.revocations += 1;
    Ok(Reply::no_content())
}

fn message(body: &[u8]) -> Result<String, ApiError> {
    let body = object(body, true)?;
    let message = required_str(&body, "message")?;
    if message.chars().count() > 512 {
        return Err(ApiError::invalid("message"));
    }
    Ok(message)
}

/// `POST /api/ssl/v1/approve/{sslId}` `{message}` → 204.
pub(crate) fn approve(
    account: &mut Account,
    user: &User,
    id: &str,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    require(account, user, Privilege::SslApprove, "SSL approval")?;
    let certificate = visible(account, user, id)?.clone();
    message(body)?;
    if certificate.status != Status::Requested {
        return Err(ApiError::bad(
            -1112,
            format!(
                "Certificate can't be approved cause it has state = {}",
                certificate.status.name(&account.quirks)
            ),
        ));
    }
    let ev = account
        .profile(certificate.profile_id)
        .is_some_and(|profile| profile.validation == "EV");
    if ev && certificate.requester_id == user.id {
        return Err(ApiError::bad(
            -1140,
            "Since you are a requester of this certificate you can't approve it. For EV certificates the requester and the approver must not be the same person.",
        ));
    }
    account.approve(certificate.id, Some((user.login.clone(), user.id)), now);
    account.counters.approvals += 1;
    Ok(Reply::no_content())
}

/// Decline a request that is not issued yet (the closest thing to "cancel").
pub(crate) fn decline_now(
    account: &mut Account,
    id: u64,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let quirks = account.quirks.clone();
    let Some(certificate) = account.certificates.get_mut(&id) else {
        return Err(ApiError::wrong_id(id));
    };
    if !matches!(
        certificate.status,
        Status::Requested | Status::Approved | Status::SaApproved | Status::Applied | Status::Init
    ) {
        // The simulator's own text (the table has none for declines).
        return Err(ApiError::bad(
            -1112,
            format!(
                "Certificate can't be declined cause it has state = {}",
                certificate.status.name(&quirks)
            ),
        ));
    }
    certificate.status = Status::Declined;
    certificate.declined = Some(now);
    certificate.issue_at = None;
    account.counters.declines += 1;
    Ok(())
}

/// `POST /api/ssl/v1/decline/{sslId}` `{message}` → 204.
pub(crate) fn decline(
    account: &mut Account,
    user: &User,
    id: &str,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    require(account, user, Privilege::SslApprove, "SSL declining")?;
    let id = visible(account, user, id)?.id;
    message(body)?;
    decline_now(account, id, now)?;
    Ok(Reply::no_content())
}

/// `DELETE /api/ssl/v1/{sslId}` → 204 (only imported or discovered certificates).
pub(crate) fn delete(account: &mut Account, user: &User, id: &str) -> Result<Reply, ApiError> {
    require(account, user, Privilege::SslManage, "SSL deletion")?;
    let certificate = visible(account, user, id)?;
    let deletable = matches!(certificate.requested_via.as_str(), "Imported" | "Discovery");
    if !deletable && !account.quirks.delete_any {
        // The documented restriction; the code is the simulator's own.
        return Err(ApiError::bad(
            -1,
            "Only imported or discovered certificates can be deleted.",
        ));
    }
    let id = certificate.id;
    account.certificates.remove(&id);
    account.counters.deletions += 1;
    Ok(Reply::no_content())
}

/// `PUT /api/ssl/v1` → 200 with the details. Comments, external requester and custom fields
/// can always be edited; organization, profile, term, common name, CSR and SANs only in
/// `Requested`, `Declined`, `Rejected` or `Invalid` (D25 `#_update_ssl_certificate_details`).
pub(crate) fn update(
    account: &mut Account,
    user: &User,
    body: &[u8],
    query: &Query,
) -> Result<Reply, ApiError> {
    require(account, user, Privilege::SslManage, "SSL update")?;
    let body = object(body, false)?;
    let id = int_field(&body, "sslId")?.ok_or_else(|| ApiError::missing("sslId"))?;
    let current = visible(account, user, &id.to_string())?.clone();
    let mut updated = current.clone();
    if let Some(comments) = str_field(&body, "comments")? {
        if comments.chars().count() > 1024 {
            return Err(ApiError::invalid("comments"));
        }
        updated.comments = comments;
    }
    if present(&body, "externalRequester").is_some() {
        let saved = account.workflow.require_external_requester;
        account.workflow.require_external_requester = false;
        let result = external_requester(account, &body);
        account.workflow.require_external_requester = saved;
        updated.external_requester = result?;
    }
    if present(&body, "customFields").is_some() {
        updated.custom_fields = custom_fields(account, &body)?;
    }
    let editable = matches!(
        current.status,
        Status::Requested | Status::Declined | Status::Rejected | Status::Invalid
    );
    let restricted = [
        "orgId",
        "certTypeId",
        "term",
        "commonName",
        "csr",
        "subjectAlternativeNames",
    ];
    if let Some(field) = restricted
        .iter()
        .find(|field| present(&body, field).is_some())
    {
        if !editable {
            // The restriction is documented; the code is the simulator's own.
            return Err(ApiError::bad(
                -1601,
                format!(
                    "Field '{field}' has invalid value. It can be edited only in the states Requested, Declined, Rejected or Invalid, not {}.",
                    current.status.name(&account.quirks)
                ),
            ));
        }
        if let Some(org_id) = int_field(&body, "orgId")? {
            let org_id = u64::try_from(org_id).map_err(|_| ApiError::invalid("orgId"))?;
            if account.organization(org_id).is_none() {
                return Err(ApiError::bad(
                    -1023,
                    format!("Organization '{org_id}' not found."),
                ));
            }
            updated.org_id = org_id;
        }
        if let Some(profile_id) = int_field(&body, "certTypeId")? {
            let profile_id = u64::try_from(profile_id)
                .ok()
                .filter(|id| account.profile(*id).is_some())
                .ok_or_else(|| ApiError::bad(-39, "The certificate profile id is invalid!"))?;
            updated.profile_id = profile_id;
        }
        let profile = account
            .profile(updated.profile_id)
            .cloned()
            .ok_or_else(|| ApiError::bad(-39, "The certificate profile id is invalid!"))?;
        if let Some(term) = int_field(&body, "term")? {
            updated.term = u32::try_from(term).map_err(|_| ApiError::invalid("term"))?;
        }
        if !profile.terms.contains(&updated.term) {
            return Err(ApiError::bad(
                -36,
                "The validity period (term) is invalid for this certificate profile.",
            ));
        }
        if let Some(text) = str_field(&body, "csr")?.filter(|text| !text.trim().is_empty()) {
            let csr = parse_csr(&text)?;
            check_key(&csr, &profile)?;
            updated.spki_der = csr.spki_der;
            updated.key_algorithm = csr.algorithm;
            updated.key_parameter = csr.parameter;
            updated.key_bits = csr.bits;
        }
        if let Some(name) = str_field(&body, "commonName")?.filter(|name| !name.trim().is_empty()) {
            updated.common_name = name.trim().to_ascii_lowercase();
        }
        match present(&body, "subjectAlternativeNames") {
            None => {}
            Some(Value::Array(items)) => {
                updated.sans = items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map(|name| name.trim().to_ascii_lowercase())
                            .ok_or_else(ApiError::unparsable)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
            }
            Some(_) => return Err(ApiError::unparsable()),
        }
        check_names(
            account,
            &updated.names(),
            updated.org_id,
            updated.dcv_mode.as_deref(),
            "subjectAlternativeNames",
        )?;
    }
    account.certificates.insert(updated.id, updated);
    details(account, user, &id.to_string(), query)
}

/// `POST /api/ssl/v1/revoke/manual` `{certId | serialNumber + issuer, revokeDate, reasonCode}`
/// → 204: mark revoked without asking the CA.
pub(crate) fn revoke_manual(
    account: &mut Account,
    user: &User,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    require(account, user, Privilege::SslRevoke, "SSL revocation")?;
    let body = object(body, false)?;
    let id = match int_field(&body, "certId")? {
        Some(id) => visible(account, user, &id.to_string())?.id,
        None => {
            let serial = str_field(&body, "serialNumber")?
                .ok_or_else(|| ApiError::bad(-951, "'At least one of the following fields must be filled in: certId, serialNumber."))?;
            account
                .certificates
                .values()
                .filter(|_| user.role.manages_ssl())
                .find(|c| {
                    c.leaf
                        .as_ref()
                        .is_some_and(|leaf| same_serial(&leaf.serial, &serial))
                })
                .map(|c| c.id)
                .ok_or_else(|| {
                    ApiError::new(
                        404,
                        -166,
                        "Entered data doesn't match the certificate or no valid certificate found",
                    )
                })?
        }
    };
    let reason_code = int_field(&body, "reasonCode")?.unwrap_or(0);
    if !matches!(reason_code, 0 | 1 | 3 | 4 | 5) {
        return Err(ApiError::invalid("reasonCode"));
    }
    let revoked_at = match str_field(&body, "revokeDate")? {
        // D25's example: `2025-05-21T12:24:27.916+00:00`.
        Some(text) => OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map_err(|_| ApiError::invalid("revokeDate"))?,
        None => now,
    };
    let Some(certificate) = account.certificates.get_mut(&id) else {
        return Err(ApiError::wrong_id(id));
    };
    if certificate.status == Status::Revoked {
        return Err(ApiError::bad(-159, "Your certificate already revoked"));
    }
    certificate.status = Status::Revoked;
    certificate.revoked = Some(revoked_at);
    certificate.reason_code = Some(reason_code as u8);
    account.counters.revocations += 1;
    Ok(Reply::no_content())
}

/// `POST /api/ssl/v1/renew/manual/{sslId}` `{id?, orderNumber?, dcvMode?, dcvEmail?}` → 204:
/// mark renewed (optionally by a known certificate) without a new request.
pub(crate) fn renew_manual(
    account: &mut Account,
    user: &User,
    id: &str,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    require(account, user, Privilege::SslRenew, "SSL renewal")?;
    let id = visible(account, user, id)?.id;
    let body = object(body, true)?;
    if let Some(other) = int_field(&body, "id")? {
        visible(account, user, &other.to_string())?;
    }
    dcv_fields(&body)?;
    if let Some(certificate) = account.certificates.get_mut(&id) {
        certificate.renewed = true;
        certificate.renewed_date = Some(now);
    }
    Ok(Reply::no_content())
}

fn dcv_log(account: &Account, certificate: &Certificate, now: OffsetDateTime) -> Value {
    let mut domains: Vec<(String, bool)> = Vec::new();
    for name in certificate.names() {
        let Some(domain) = account.covering_domain(&name, certificate.org_id) else {
            continue;
        };
        if !domains.iter().any(|(known, _)| *known == domain.seed.name) {
            domains.push((domain.seed.name.clone(), domain.validated_at.is_some()));
        }
    }
    let log: Vec<Value> = domains
        .iter()
        .map(|(domain, validated)| {
            let at = account
                .domains
                .iter()
                .find(|known| known.seed.name == *domain)
                .and_then(|known| known.validated_at);
            json!({
                "dcvStatus": if *validated { "Validated" } else { "Awaiting Validation" },
                "domainName": domain,
                "lastCheck": log_time(now),
                "nextCheck": log_time(now + Duration::hours(1)),
                "dcvDate": at.map(log_time),
                // A number in D25's example (of a CNAME validation) too.
                "dcvEmailRefNumber": 1,
            })
        })
        .collect();
    json!({"error": {"code": 0, "description": null}, "log": log})
}

/// `GET /api/ssl/v1/{sslId}/dcv` → `{dcvLog, instructions}`.
pub(crate) fn dcv(
    account: &Account,
    user: &User,
    id: &str,
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let certificate = visible(account, user, id)?;
    let instructions: Vec<Value> = certificate
        .dcv
        .iter()
        .filter(|instruction| !account.name_validated(&instruction.domain, certificate.org_id))
        .map(|instruction| {
            let mut item = json!({"domainName": instruction.domain, "dcvMode": instruction.mode});
            match instruction.mode.as_str() {
                "HTTP" | "HTTPS" => {
                    item["url"] = json!(instruction.host);
                    item["file"] = json!(instruction.point);
                }
                "EMAIL" => item["dcvEmail"] = json!(instruction.email),
                _ => {
                    item["host"] = json!(instruction.host);
                    item["point"] = json!(instruction.point);
                }
            }
            item
        })
        .collect();
    Ok(Reply::ok(json!({
        "dcvLog": dcv_log(account, certificate, now),
        "instructions": instructions,
    })))
}

/// `POST /api/ssl/v1/{sslId}/dcv/recheck` → 202 `{dcvLog}` (and issues what became ready).
pub(crate) fn dcv_recheck(
    account: &mut Account,
    user: &User,
    id: &str,
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let certificate_id = visible(account, user, id)?.id;
    account.counters.dcv_rechecks += 1;
    account.tick(now);
    let Some(certificate) = account.certificates.get(&certificate_id) else {
        return Err(ApiError::wrong_id(id));
    };
    Ok(Reply::Json(
        202,
        json!({"dcvLog": dcv_log(account, certificate, now)}),
        Vec::new(),
    ))
}
