//! Order endpoints: the request bodies, and reissue, revoke, cancel and request decisions here;
//! placing orders in `create.rs`, reading them in `view.rs`, certificate downloads in
//! `download.rs`.

mod create;
mod download;
mod view;

use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

pub(crate) use self::create::create;
use self::create::{certificate_params, skip_approval};
pub(crate) use self::download::{chain, download, download_by_order};
pub(crate) use self::view::{alternate, info, list, paging, status_changes};
use super::model::{
    Account, ApiError, Key, OrderStatus, Reply, Request, RequestKind, RequestStatus,
};
use super::query;
use super::render;
use super::seed::ReasonSpelling;

/// Revocation reasons as DigiCert documents them (snake_case: `superseded` in the CertCentral
/// revoke example, the rest in DigiCert's revocation reason table).
const REVOCATION_REASONS: [&str; 5] = [
    "unspecified",
    "key_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
];

/// The same in RFC 5280's camelCase (`quirks.revocation_reasons = "camel"`).
const CAMEL_REVOCATION_REASONS: [&str; 5] = [
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
];

#[derive(Debug, Default, Deserialize)]
pub(crate) struct IdRef {
    pub(crate) id: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PlatformRef {
    pub(crate) id: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ValidityBody {
    pub(crate) years: Option<u32>,
    pub(crate) days: Option<u32>,
    pub(crate) custom_expiration_date: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CertificateBody {
    pub(crate) common_name: Option<String>,
    pub(crate) dns_names: Option<Vec<String>>,
    pub(crate) csr: Option<String>,
    pub(crate) signature_hash: Option<String>,
    pub(crate) server_platform: Option<PlatformRef>,
    pub(crate) organization_units: Option<Vec<String>>,
    pub(crate) profile_option: Option<String>,
    pub(crate) ca_cert_id: Option<String>,
    pub(crate) cert_validity: Option<ValidityBody>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CustomField {
    pub(crate) metadata_id: u64,
    pub(crate) value: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ProductHint {
    pub(crate) type_hint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OrderBody {
    pub(crate) certificate: Option<CertificateBody>,
    pub(crate) organization: Option<IdRef>,
    pub(crate) validity_years: Option<u32>,
    pub(crate) validity_days: Option<u32>,
    pub(crate) custom_expiration_date: Option<String>,
    pub(crate) order_validity: Option<ValidityBody>,
    pub(crate) comments: Option<String>,
    pub(crate) disable_renewal_notifications: Option<bool>,
    pub(crate) renewal_of_order_id: Option<u64>,
    pub(crate) payment_method: Option<String>,
    pub(crate) dcv_method: Option<String>,
    pub(crate) skip_approval: Option<bool>,
    pub(crate) disable_ct: Option<Value>,
    pub(crate) container: Option<IdRef>,
    pub(crate) custom_fields: Option<Vec<CustomField>>,
    pub(crate) alternative_order_id: Option<String>,
    pub(crate) product: Option<ProductHint>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReissueBody {
    pub(crate) certificate: Option<CertificateBody>,
    pub(crate) skip_approval: Option<bool>,
    pub(crate) comments: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RevokeBody {
    pub(crate) comments: Option<String>,
    pub(crate) comment: Option<String>,
    pub(crate) skip_approval: Option<bool>,
    pub(crate) revocation_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StatusBody {
    pub(crate) status: Option<String>,
    pub(crate) note: Option<String>,
    #[serde(rename = "send_emails")]
    pub(crate) _send_emails: Option<bool>,
}

/// `POST /order/certificate/{order_id}/reissue`.
pub(crate) fn reissue(
    account: &mut Account,
    key: &Key,
    id: &str,
    bytes: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let body: ReissueBody = query::optional_body(bytes)?;
    let order_id = id
        .parse::<u64>()
        .ok()
        .filter(|id| account.orders.contains_key(id))
        .ok_or_else(ApiError::order_not_found)?;
    let skip = skip_approval(account, key, body.skip_approval)?;
    let order = account
        .orders
        .get(&order_id)
        .ok_or_else(ApiError::order_not_found)?;
    let allowed = order.status == OrderStatus::Issued
        || (order.status == OrderStatus::Revoked && account.settings.account.reissue_after_revoke);
    if !allowed {
        return Err(ApiError::wrong_status(order.status, "reissued"));
    }
    if now > order.order_valid_till {
        return Err(ApiError::bad_request(
            "order_expired",
            "The order's validity has ended; place a renewal order instead.",
        ));
    }
    let product = account
        .product(&order.product)
        .cloned()
        .ok_or_else(|| ApiError::new(500, "internal_error", "The order's product is gone."))?;
    let params = certificate_params(
        account,
        &product,
        Some(&order.params),
        &body.certificate.unwrap_or_default(),
    )?;
    let needs_approval = account.settings.account.require_approval && !skip;
    let request_id = account.next_request_id();
    account.requests.insert(
        request_id,
        Request::pending(
            request_id,
            RequestKind::Reissue,
            order_id,
            key.user_id,
            now,
            body.comments.clone().unwrap_or_default(),
        ),
    );
    if let Some(order) = account.orders.get_mut(&order_id) {
        order.reissue = Some(params);
        order.status = OrderStatus::ReissuePending;
        order.status_last_updated = now;
        order.awaiting_approval = needs_approval;
        order.issue_at = None;
        order.request_ids.push(request_id);
    }
    let issued = account.progress(order_id, now)?;
    let request_status = account
        .requests
        .get(&request_id)
        .map_or("pending", |request| request.status.as_str());
    let mut out = serde_json::Map::new();
    out.insert("id".into(), json!(order_id));
    out.insert(
        "requests".into(),
        json!([{"id": request_id, "status": request_status}]),
    );
    if issued {
        if let Some(certificate) = account
            .orders
            .get(&order_id)
            .and_then(|order| account.certificates.get(&order.certificate_id))
        {
            out.insert("certificate_id".into(), json!(certificate.id));
            out.insert(
                "certificate_chain".into(),
                render::certificate_chain(account, certificate),
            );
        }
    }
    Ok(Reply::Json(201, Value::Object(out)))
}

/// What a revoke targets.
pub(crate) enum RevokeTarget<'a> {
    Order(&'a str),
    Certificate(&'a str),
}

/// `PUT /order/certificate/{order_id}/revoke` and `PUT /certificate/{id_or_serial}/revoke`.
pub(crate) fn revoke(
    account: &mut Account,
    key: &Key,
    target: RevokeTarget<'_>,
    bytes: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let body: RevokeBody = query::optional_body(bytes)?;
    let skip = skip_approval(account, key, body.skip_approval)?;
    if let Some(reason) = &body.revocation_reason {
        let known = match account.settings.quirks.revocation_reasons {
            ReasonSpelling::Snake => Some(REVOCATION_REASONS),
            ReasonSpelling::Camel => Some(CAMEL_REVOCATION_REASONS),
            ReasonSpelling::Any => None,
        };
        if let Some(known) = known.filter(|known| !known.contains(&reason.as_str())) {
            return Err(ApiError::invalid(
                "revocation_reason",
                format!(
                    "`{reason}` is not a revocation reason ({}).",
                    known.join(", ")
                ),
            ));
        }
    }
    let (order_id, certificate_id) = match target {
        RevokeTarget::Order(id) => (
            id.parse::<u64>()
                .ok()
                .filter(|id| account.orders.contains_key(id))
                .ok_or_else(ApiError::order_not_found)?,
            None,
        ),
        RevokeTarget::Certificate(text) => {
            let certificate = account
                .certificates
                .values()
                .find(|certificate| {
                    text.parse::<u64>().is_ok_and(|id| id == certificate.id)
                        || certificate
                            .issued
                            .as_ref()
                            .is_some_and(|issued| issued.serial.eq_ignore_ascii_case(text))
                })
                .ok_or_else(certificate_not_found)?;
            if certificate.issued.is_none() {
                return Err(ApiError::bad_request(
                    "certificate_not_issued",
                    "The certificate has not been issued; cancel the order instead.",
                ));
            }
            if certificate.revoked.is_some() {
                return Err(ApiError::bad_request(
                    "certificate_already_revoked",
                    "The certificate is already revoked.",
                ));
            }
            (certificate.order_id, Some(certificate.id))
        }
    };
    let order = account
        .orders
        .get(&order_id)
        .ok_or_else(ApiError::order_not_found)?;
    match order.status {
        OrderStatus::Issued => {}
        OrderStatus::ReissuePending => {
            return Err(ApiError::bad_request(
                "reissue_pending",
                "A certificate with a pending reissue cannot be revoked.",
            ))
        }
        other => return Err(ApiError::wrong_status(other, "revoked")),
    }
    let pending_revoke = order.request_ids.iter().any(|id| {
        account.requests.get(id).is_some_and(|request| {
            request.kind == RequestKind::Revoke && request.status == RequestStatus::Pending
        })
    });
    if skip {
        match certificate_id {
            Some(id) => account.revoke_certificate(id, now),
            None => account.revoke_order(order_id, now),
        }
        return Ok(Reply::Empty);
    }
    if pending_revoke {
        return Err(ApiError::bad_request(
            "duplicate_request",
            "A revoke request for this order is already pending approval.",
        ));
    }
    let request_id = account.next_request_id();
    let request = Request {
        certificate_id,
        revocation_reason: body.revocation_reason,
        ..Request::pending(
            request_id,
            RequestKind::Revoke,
            order_id,
            key.user_id,
            now,
            body.comments.or(body.comment).unwrap_or_default(),
        )
    };
    let rendered = json!({
        "id": request.id,
        "date": super::model::iso(now),
        "type": "revoke",
        "status": "pending",
        "requester": account.users.get(&key.user_id).map_or_else(|| json!({"id": key.user_id}), |user| json!({
            "id": user.id,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "email": user.email,
        })),
        "comments": request.comments,
    });
    account.requests.insert(request_id, request);
    if let Some(order) = account.orders.get_mut(&order_id) {
        order.request_ids.push(request_id);
    }
    Ok(Reply::Json(201, rendered))
}

pub(crate) fn certificate_not_found() -> ApiError {
    ApiError::new(
        404,
        "not_found|certificate",
        "The specified certificate was not found.",
    )
}

/// `PUT /order/certificate/{order_id}/status` (cancel).
pub(crate) fn update_status(
    account: &mut Account,
    id: &str,
    bytes: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let body: StatusBody = query::body(bytes)?;
    let order_id = id
        .parse::<u64>()
        .ok()
        .filter(|id| account.orders.contains_key(id))
        .ok_or_else(ApiError::order_not_found)?;
    let status = body.status.ok_or_else(|| ApiError::missing("status"))?;
    match status.as_str() {
        "canceled" => {}
        "renewed" | "not_renewed" => {
            return Err(ApiError::bad_request(
                "invalid_status_change",
                format!("`{status}` applies only to migrated orders."),
            ))
        }
        other => {
            return Err(ApiError::invalid(
                "status",
                format!(
                    "`{other}` is not a status an order can be set to (values are case-sensitive)."
                ),
            ))
        }
    }
    let note = body.note.unwrap_or_default();
    if note.trim().is_empty() {
        return Err(ApiError::missing("note"));
    }
    let order = account
        .orders
        .get(&order_id)
        .ok_or_else(ApiError::order_not_found)?;
    let request_ids = order.request_ids.clone();
    match order.status {
        OrderStatus::Pending | OrderStatus::WaitingPickup => {
            for id in request_ids {
                if let Some(request) = account.requests.get_mut(&id) {
                    if request.status == RequestStatus::Pending {
                        request.status = RequestStatus::Rejected;
                        request.processor_comment = note.clone();
                        request.date_processed = Some(now);
                    }
                }
            }
            if let Some(order) = account.orders.get_mut(&order_id) {
                order.status = OrderStatus::Canceled;
                order.status_last_updated = now;
                order.issue_at = None;
            }
        }
        OrderStatus::ReissuePending => {
            for id in request_ids {
                if let Some(request) = account.requests.get_mut(&id) {
                    if request.kind == RequestKind::Reissue
                        && request.status == RequestStatus::Pending
                    {
                        request.status = RequestStatus::Rejected;
                        request.processor_comment = note.clone();
                        request.date_processed = Some(now);
                    }
                }
            }
            if let Some(order) = account.orders.get_mut(&order_id) {
                order.reissue = None;
                order.awaiting_approval = false;
                order.issue_at = None;
                order.status = OrderStatus::Issued;
                order.status_last_updated = now;
            }
        }
        other => return Err(ApiError::wrong_status(other, "canceled")),
    }
    Ok(Reply::Empty)
}

/// Approve or reject a request (`PUT /request/{id}/status`), running what it asked for.
pub(crate) fn decide_request(
    account: &mut Account,
    key: &Key,
    request_id: u64,
    approve: bool,
    comment: String,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let request = account.requests.get(&request_id).ok_or_else(|| {
        ApiError::new(
            404,
            "not_found|request",
            "The specified request was not found.",
        )
    })?;
    if request.status != RequestStatus::Pending {
        return Err(ApiError::bad_request(
            "request_already_processed",
            format!("The request is already {}.", request.status.as_str()),
        ));
    }
    let (kind, order_id, certificate_id) = (request.kind, request.order_id, request.certificate_id);
    if let Some(request) = account.requests.get_mut(&request_id) {
        request.status = if approve {
            RequestStatus::Approved
        } else {
            RequestStatus::Rejected
        };
        request.processor_id = Some(key.user_id);
        request.processor_comment = comment;
        request.date_processed = Some(now);
    }
    match (kind, approve) {
        (RequestKind::Revoke, true) => {
            let issued = account
                .orders
                .get(&order_id)
                .is_some_and(|order| order.status == OrderStatus::Issued);
            if issued {
                match certificate_id {
                    Some(id) => account.revoke_certificate(id, now),
                    None => account.revoke_order(order_id, now),
                }
            }
        }
        (RequestKind::Revoke, false) => {}
        (RequestKind::NewRequest, true) | (RequestKind::Reissue, true) => {
            if let Some(order) = account.orders.get_mut(&order_id) {
                order.awaiting_approval = false;
                if order.status == OrderStatus::NeedsApproval {
                    order.status = OrderStatus::Pending;
                    order.status_last_updated = now;
                }
            }
            account.progress(order_id, now)?;
        }
        (RequestKind::NewRequest, false) => {
            if let Some(order) = account.orders.get_mut(&order_id) {
                order.status = OrderStatus::Rejected;
                order.status_last_updated = now;
                order.awaiting_approval = false;
            }
        }
        (RequestKind::Reissue, false) => {
            if let Some(order) = account.orders.get_mut(&order_id) {
                order.reissue = None;
                order.awaiting_approval = false;
                order.status = OrderStatus::Issued;
                order.status_last_updated = now;
            }
        }
    }
    Ok(())
}
