//! ACME problem documents (RFC 8555 §6.7) and HTTP failures mapped onto `CaError` classes.

use instant_acme::Problem;
use time::{Duration, OffsetDateTime};

use super::transport::{last_response, LastResponse};
use super::{Operation, PROBLEM_PREFIX};
use crate::ca::{CaError, ErrorClass};

pub(super) fn is_bad_nonce(error: &instant_acme::Error) -> bool {
    matches!(error, instant_acme::Error::Api(problem) if problem_type(problem) == Some("badNonce"))
}

/// The short problem type (`rateLimited` for `urn:ietf:params:acme:error:rateLimited`).
pub(super) fn problem_type(problem: &Problem) -> Option<&str> {
    problem
        .r#type
        .as_deref()
        .map(|kind| kind.strip_prefix(PROBLEM_PREFIX).unwrap_or(kind))
}

/// The problem document as certform keeps it (typed kind, detail, subproblems).
pub(super) fn typed_problem(problem: &Problem) -> crate::ca::Problem {
    crate::ca::Problem::Acme {
        kind: crate::ca::AcmeProblemKind::parse(problem.r#type.as_deref()),
        detail: problem.detail.clone(),
        subproblems: problem
            .subproblems
            .iter()
            .map(|subproblem| crate::ca::AcmeSubproblem {
                kind: crate::ca::AcmeProblemKind::parse(subproblem.r#type.as_deref()),
                detail: subproblem.detail.clone(),
                identifier: subproblem
                    .identifier
                    .as_ref()
                    .map(|identifier| identifier.authorized(false).to_string()),
            })
            .collect(),
    }
}

/// Turn an `instant-acme` error into a classified `CaError`, using what the HTTP layer saw.
pub(super) fn classify(name: &str, operation: Operation, error: instant_acme::Error) -> CaError {
    classify_with(name, operation, error, &last_response())
}

pub(super) fn classify_with(
    name: &str,
    operation: Operation,
    error: instant_acme::Error,
    last: &LastResponse,
) -> CaError {
    let what = operation.describe();
    match error {
        instant_acme::Error::Api(problem) => {
            let kind = problem_type(&problem).unwrap_or("");
            let status = last.status.or(problem.status).unwrap_or(0);
            let class = match kind {
                "rateLimited" => ErrorClass::RateLimited,
                _ if status == 429 => ErrorClass::RateLimited,
                "badNonce" | "serverInternal" => ErrorClass::Transient,
                _ if status >= 500 => ErrorClass::Transient,
                "externalAccountRequired" | "accountDoesNotExist" | "badPublicKey" => {
                    ErrorClass::Auth
                }
                "unauthorized" if operation == Operation::Account => ErrorClass::Auth,
                "malformed" if operation == Operation::Account && status == 401 => ErrorClass::Auth,
                _ => ErrorClass::Rejected,
            };
            let typed = typed_problem(&problem);
            let mut error = CaError::new(
                class,
                format!(
                    "ACME account `{name}`: the CA refused to {what}: {}",
                    typed.describe()
                ),
            )
            .with_problem(typed);
            if status != 0 {
                error = error.with_status(status);
            }
            if class == ErrorClass::RateLimited {
                error.retry_after = last.retry_after.or_else(|| {
                    problem
                        .detail
                        .as_deref()
                        .and_then(|detail| retry_after_in(detail, OffsetDateTime::now_utc()))
                });
            }
            error
        }
        // A body that is no problem document: the status says what happened.
        instant_acme::Error::Json(source) => {
            let (class, message) = match last.status {
                Some(429) => (
                    ErrorClass::RateLimited,
                    format!("ACME account `{name}`: the CA answered HTTP 429 to {what}"),
                ),
                Some(status) if status >= 500 => (
                    ErrorClass::Transient,
                    format!("ACME account `{name}`: the CA answered HTTP {status} to {what}"),
                ),
                Some(status) if status >= 400 => (
                    ErrorClass::Rejected,
                    format!(
                        "ACME account `{name}`: the CA answered HTTP {status} without a problem document to {what}"
                    ),
                ),
                _ => (
                    ErrorClass::Protocol,
                    format!(
                        "ACME account `{name}`: the CA's answer to {what} is not the expected JSON"
                    ),
                ),
            };
            let mut error = CaError::new(class, message).with_source(source);
            if let Some(status) = last.status {
                error = error.with_status(status);
            }
            if class == ErrorClass::RateLimited {
                error.retry_after = last.retry_after;
            }
            error
        }
        instant_acme::Error::Timeout(_) => CaError::new(
            ErrorClass::Transient,
            format!("ACME account `{name}`: timed out trying to {what}"),
        ),
        instant_acme::Error::Unsupported(feature) => CaError::new(
            ErrorClass::Unsupported,
            format!("ACME account `{name}`: the CA does not support {feature}"),
        ),
        instant_acme::Error::Crypto | instant_acme::Error::KeyRejected => CaError::new(
            ErrorClass::Auth,
            format!("ACME account `{name}`: the account key cannot be used to {what}"),
        ),
        instant_acme::Error::Str(message) => {
            let class = match last.status {
                Some(status) if status >= 500 => ErrorClass::Transient,
                _ => ErrorClass::Protocol,
            };
            CaError::new(
                class,
                format!("ACME account `{name}`: failed to {what}: {message}"),
            )
        }
        instant_acme::Error::Http(source) => CaError::new(
            ErrorClass::Protocol,
            format!("ACME account `{name}`: failed to {what}: invalid request"),
        )
        .with_source(source),
        instant_acme::Error::InvalidUri(source) => CaError::new(
            ErrorClass::Protocol,
            format!("ACME account `{name}`: failed to {what}: invalid URL"),
        )
        .with_source(source),
        // Connection refused, TLS failures, resets, timeouts: as the HTTP layer classed them.
        instant_acme::Error::Other(source) => {
            let class = source
                .downcast_ref::<crate::http::Error>()
                .map_or(ErrorClass::Transient, |error| error.class());
            let status = source
                .downcast_ref::<crate::http::Error>()
                .and_then(crate::http::Error::status);
            let mut error = CaError::new(class, format!("ACME account `{name}`: failed to {what}"));
            error.status = status.map(|status| status.as_u16());
            error.source = Some(source);
            error
        }
        other => CaError::new(
            ErrorClass::Transient,
            format!("ACME account `{name}`: failed to {what}"),
        )
        .with_source(other),
    }
}

/// The wait a `rateLimited` detail names: Let's Encrypt writes
/// "retry after 2025-01-01 00:00:00 UTC" (or an RFC 3339 time).
pub(super) fn retry_after_in(detail: &str, now: OffsetDateTime) -> Option<Duration> {
    let lower = detail.to_ascii_lowercase();
    let start = lower.find("retry after ")? + "retry after ".len();
    let rest = detail.get(start..)?;
    let spaced =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    let at = rest
        .get(..23)
        .and_then(|text| time::PrimitiveDateTime::parse(text, spaced).ok())
        .map(|at| at.assume_utc())
        .or_else(|| {
            let token = rest.split_whitespace().next()?;
            let token = token.trim_end_matches([',', ';', '.', ':']);
            OffsetDateTime::parse(token, &time::format_description::well_known::Rfc3339).ok()
        })?;
    Some((at - now).max(Duration::ZERO))
}
