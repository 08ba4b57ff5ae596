//! Certificate downloads: by certificate id or order id in a named format, and the chain as JSON.

use serde_json::{json, Value};

use super::certificate_not_found;
use crate::sim::digicert::formats;
use crate::sim::digicert::model::{Account, ApiError, Certificate, Reply};
use crate::sim::digicert::render;
use crate::sim::digicert::seed::KeyStyle;

/// `GET /certificate/{id}/download/format/{format}`.
pub(crate) fn download(account: &Account, id: &str, format: &str) -> Result<Reply, ApiError> {
    let certificate = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.certificates.get(&id))
        .ok_or_else(certificate_not_found)?;
    download_certificate(account, certificate, format)
}

/// `GET /certificate/download/order/{order_id}[/format/{format}]` (UNCONFIRMED; quirk).
pub(crate) fn download_by_order(
    account: &Account,
    id: &str,
    format: &str,
) -> Result<Reply, ApiError> {
    let certificate = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.orders.get(&id))
        .and_then(|order| account.certificates.get(&order.certificate_id))
        .ok_or_else(ApiError::order_not_found)?;
    download_certificate(account, certificate, format)
}

fn download_certificate(
    account: &Account,
    certificate: &Certificate,
    format: &str,
) -> Result<Reply, ApiError> {
    let chain = account.chain_der(certificate).ok_or_else(|| {
        ApiError::new(
            404,
            "not_found|certificate",
            "The certificate has not been issued yet.",
        )
    })?;
    formats::render(format, &certificate.params.common_name, &chain).ok_or_else(|| {
        ApiError::invalid("format", format!("`{format}` is not a certificate format."))
    })
}

/// `GET /certificate/{id}/chain` (intermediates; key style per quirk).
pub(crate) fn chain(account: &Account, id: &str) -> Result<Reply, ApiError> {
    let certificate = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.certificates.get(&id))
        .ok_or_else(certificate_not_found)?;
    let issued = certificate.issued.as_ref().ok_or_else(|| {
        ApiError::new(
            404,
            "not_found|certificate",
            "The certificate has not been issued yet.",
        )
    })?;
    let intermediate = account
        .ca
        .intermediates
        .get(issued.intermediate)
        .ok_or_else(certificate_not_found)?;
    let entries = [
        (
            intermediate.name.clone(),
            render::pem_crlf(&intermediate.der),
        ),
        (
            account.ca.root_name.clone(),
            render::pem_crlf(&account.ca.root_der),
        ),
    ];
    let body = match account.settings.quirks.chain_key_style {
        KeyStyle::Snake => {
            let list: Vec<Value> = entries
                .iter()
                .map(|(name, pem)| json!({"subject_common_name": name, "pem": pem}))
                .collect();
            json!({"intermediates": list})
        }
        KeyStyle::Pascal => {
            let list: Vec<Value> = entries
                .iter()
                .map(|(name, pem)| json!({"SubjectCommonName": name, "PEM": pem}))
                .collect();
            json!({"Intermediates": list})
        }
    };
    Ok(Reply::Json(200, body))
}
