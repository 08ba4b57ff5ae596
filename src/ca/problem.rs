//! The vendor's own account of a failure, kept typed: an ACME problem document (RFC 8555 §6.7)
//! or DigiCert's `errors[]`. Hints are chosen from these fields, never from message text.
//! Performs no I/O.

use serde::{Deserialize, Serialize};

/// The `urn:ietf:params:acme:error:` prefix of standard ACME problem types.
pub const ACME_PREFIX: &str = "urn:ietf:params:acme:error:";

/// What the CA said went wrong, as it said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "vendor", rename_all = "kebab-case")]
pub enum Problem {
    /// An ACME problem document.
    Acme {
        kind: AcmeProblemKind,
        detail: Option<String>,
        subproblems: Vec<AcmeSubproblem>,
    },
    /// DigiCert's `{"errors":[{"code","message"}]}` (empty when the body had none).
    Digicert { errors: Vec<DigicertProblem> },
    /// Sectigo SCM's `{"code": <negative>, "description"}`.
    Sectigo { code: i64, description: String },
}

/// The ACME problem types certform acts on; anything else keeps its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AcmeProblemKind {
    AccountDoesNotExist,
    BadCsr,
    BadNonce,
    BadPublicKey,
    BadRevocationReason,
    Caa,
    Connection,
    Dns,
    ExternalAccountRequired,
    IncorrectResponse,
    Malformed,
    RateLimited,
    RejectedIdentifier,
    ServerInternal,
    Unauthorized,
    UnsupportedIdentifier,
    UserActionRequired,
    /// A type certform does not know (the short form for standard ones, else the whole URI).
    Other(String),
    /// The document named no type.
    Missing,
}

impl AcmeProblemKind {
    /// Parse a problem `type` (`urn:ietf:params:acme:error:rateLimited`).
    pub fn parse(kind: Option<&str>) -> Self {
        let Some(kind) = kind else {
            return AcmeProblemKind::Missing;
        };
        match kind.strip_prefix(ACME_PREFIX).unwrap_or(kind) {
            "accountDoesNotExist" => AcmeProblemKind::AccountDoesNotExist,
            "badCSR" => AcmeProblemKind::BadCsr,
            "badNonce" => AcmeProblemKind::BadNonce,
            "badPublicKey" => AcmeProblemKind::BadPublicKey,
            "badRevocationReason" => AcmeProblemKind::BadRevocationReason,
            "caa" => AcmeProblemKind::Caa,
            "connection" => AcmeProblemKind::Connection,
            "dns" => AcmeProblemKind::Dns,
            "externalAccountRequired" => AcmeProblemKind::ExternalAccountRequired,
            "incorrectResponse" => AcmeProblemKind::IncorrectResponse,
            "malformed" => AcmeProblemKind::Malformed,
            "rateLimited" => AcmeProblemKind::RateLimited,
            "rejectedIdentifier" => AcmeProblemKind::RejectedIdentifier,
            "serverInternal" => AcmeProblemKind::ServerInternal,
            "unauthorized" => AcmeProblemKind::Unauthorized,
            "unsupportedIdentifier" => AcmeProblemKind::UnsupportedIdentifier,
            "userActionRequired" => AcmeProblemKind::UserActionRequired,
            other => AcmeProblemKind::Other(other.to_string()),
        }
    }
}

/// One subproblem: what went wrong for one identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcmeSubproblem {
    pub kind: AcmeProblemKind,
    pub detail: Option<String>,
    /// The identifier's value (`www.example.com`).
    pub identifier: Option<String>,
}

/// One entry of DigiCert's `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigicertProblem {
    /// `invalid_api_key`, `access_denied`, `not_found|order`, ...
    pub code: String,
    pub message: String,
}

impl Problem {
    /// Parse an ACME problem document (`application/problem+json`); `None` when the body is
    /// not one.
    pub fn from_acme_json(body: &[u8]) -> Option<Problem> {
        #[derive(Deserialize)]
        struct Identifier {
            value: Option<String>,
        }
        #[derive(Deserialize)]
        struct Sub {
            #[serde(rename = "type")]
            kind: Option<String>,
            detail: Option<String>,
            identifier: Option<Identifier>,
        }
        #[derive(Deserialize)]
        struct Document {
            #[serde(rename = "type")]
            kind: Option<String>,
            detail: Option<String>,
            #[serde(default)]
            subproblems: Vec<Sub>,
        }
        let document: Document = serde_json::from_slice(body).ok()?;
        if document.kind.is_none() && document.detail.is_none() {
            return None;
        }
        Some(Problem::Acme {
            kind: AcmeProblemKind::parse(document.kind.as_deref()),
            detail: document.detail,
            subproblems: document
                .subproblems
                .into_iter()
                .map(|sub| AcmeSubproblem {
                    kind: AcmeProblemKind::parse(sub.kind.as_deref()),
                    detail: sub.detail,
                    identifier: sub.identifier.and_then(|identifier| identifier.value),
                })
                .collect(),
        })
    }

    /// Parse DigiCert's error body `{"errors":[{code,message}]}`, tolerating a single object
    /// instead of the array; a body without errors gives an empty list.
    pub fn from_digicert_json(body: &[u8]) -> Problem {
        let errors = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .map(|value| match value.get("errors") {
                Some(serde_json::Value::Array(items)) => {
                    items.iter().map(DigicertProblem::from_value).collect()
                }
                Some(item @ serde_json::Value::Object(_)) => {
                    vec![DigicertProblem::from_value(item)]
                }
                _ => Vec::new(),
            })
            .unwrap_or_default();
        Problem::Digicert { errors }
    }

    /// The ACME problem type, when this is an ACME problem.
    pub fn acme_kind(&self) -> Option<&AcmeProblemKind> {
        match self {
            Problem::Acme { kind, .. } => Some(kind),
            Problem::Digicert { .. } | Problem::Sectigo { .. } => None,
        }
    }

    /// Sectigo's error code, when this is a Sectigo problem.
    pub fn sectigo_code(&self) -> Option<i64> {
        match self {
            Problem::Sectigo { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether DigiCert answered with error `code`.
    pub fn has_digicert_code(&self, code: &str) -> bool {
        matches!(self, Problem::Digicert { errors } if errors.iter().any(|e| e.code == code))
    }

    /// The problem as one line for messages: DigiCert's `message (code)` entries, or ACME's
    /// detail, short type and subproblems.
    pub fn describe(&self) -> String {
        match self {
            Problem::Sectigo { code, description } => format!("{description} ({code})"),
            Problem::Digicert { errors } => errors
                .iter()
                .map(|e| format!("{} ({})", e.message, e.code))
                .collect::<Vec<_>>()
                .join("; "),
            Problem::Acme {
                kind,
                detail,
                subproblems,
            } => {
                let mut text = detail.clone().unwrap_or_else(|| "no detail".to_string());
                if let Some(name) = kind.name() {
                    text.push_str(&format!(" (`{name}`)"));
                }
                for sub in subproblems {
                    text.push_str("; ");
                    if let Some(identifier) = &sub.identifier {
                        text.push_str(&format!("`{identifier}`: "));
                    }
                    text.push_str(sub.detail.as_deref().unwrap_or("no detail"));
                    if let Some(name) = sub.kind.name() {
                        text.push_str(&format!(" (`{name}`)"));
                    }
                }
                text
            }
        }
    }
}

impl AcmeProblemKind {
    /// The short type name as the CA wrote it (`rateLimited`), `None` when there was none.
    pub fn name(&self) -> Option<&str> {
        Some(match self {
            AcmeProblemKind::AccountDoesNotExist => "accountDoesNotExist",
            AcmeProblemKind::BadCsr => "badCSR",
            AcmeProblemKind::BadNonce => "badNonce",
            AcmeProblemKind::BadPublicKey => "badPublicKey",
            AcmeProblemKind::BadRevocationReason => "badRevocationReason",
            AcmeProblemKind::Caa => "caa",
            AcmeProblemKind::Connection => "connection",
            AcmeProblemKind::Dns => "dns",
            AcmeProblemKind::ExternalAccountRequired => "externalAccountRequired",
            AcmeProblemKind::IncorrectResponse => "incorrectResponse",
            AcmeProblemKind::Malformed => "malformed",
            AcmeProblemKind::RateLimited => "rateLimited",
            AcmeProblemKind::RejectedIdentifier => "rejectedIdentifier",
            AcmeProblemKind::ServerInternal => "serverInternal",
            AcmeProblemKind::Unauthorized => "unauthorized",
            AcmeProblemKind::UnsupportedIdentifier => "unsupportedIdentifier",
            AcmeProblemKind::UserActionRequired => "userActionRequired",
            AcmeProblemKind::Other(other) => other,
            AcmeProblemKind::Missing => return None,
        })
    }
}

impl DigicertProblem {
    fn from_value(item: &serde_json::Value) -> Self {
        let text = |key: &str| match item.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        DigicertProblem {
            code: text("code"),
            message: text("message"),
        }
    }
}

/// CertCentral's code for a key it does not know (wrong, revoked or expired), sent with 403.
pub const INVALID_KEY_CODE: &str = "access_denied_invalid_key";

/// The hint for a key DigiCert does not accept (401, or 403 `access_denied_invalid_key`).
const INVALID_KEY_HINT: &str = "check the API key: it may be wrong, copied only in part, revoked or expired; create a new key in CertCentral (Automation > API keys) if in doubt";

/// Whether `error` carries the DigiCert error `code`.
fn digicert_code(error: &super::CaError, code: &str) -> bool {
    error
        .problem
        .as_deref()
        .is_some_and(|problem| problem.has_digicert_code(code))
}

/// The likely causes of a DigiCert 403, as users need them.
pub const FORBIDDEN_CAUSES: [&str; 3] = [
    "the key's role does not allow this call (a View Only key can only read; an Orders key cannot list organizations or domains): use a key with the needed API key restriction",
    "the account restricts API access by IP address and this host's address is not on the list",
    "the user behind the key lacks the permission or is no longer active",
];

/// The hint for `error`, from its class, HTTP status and typed problem (never its message).
pub(super) fn hint(error: &super::CaError) -> Option<String> {
    use super::ErrorClass;
    match error.problem.as_deref() {
        Some(Problem::Digicert { .. }) => match error.status {
            Some(401) => Some(INVALID_KEY_HINT.to_string()),
            Some(403) if digicert_code(error, INVALID_KEY_CODE) => Some(INVALID_KEY_HINT.to_string()),
            Some(403) => {
                let causes: Vec<String> = FORBIDDEN_CAUSES
                    .iter()
                    .enumerate()
                    .map(|(index, cause)| format!("  {}. {cause}", index + 1))
                    .collect();
                Some(format!("the three likely causes:\n{}", causes.join("\n")))
            }
            Some(429) => Some(rate_limit_hint(error)),
            _ => None,
        },
        Some(Problem::Sectigo { code, .. }) => sectigo_hint(*code, error.status),
        Some(Problem::Acme { kind, .. }) => match kind {
            AcmeProblemKind::RateLimited => Some(rate_limit_hint(error)),
            AcmeProblemKind::ExternalAccountRequired => Some(
                "this CA requires external account binding: set `eab = { kid = \"...\", hmac = { env = \"...\" } }` on the account".to_string(),
            ),
            AcmeProblemKind::Unauthorized | AcmeProblemKind::AccountDoesNotExist
                if error.class == ErrorClass::Auth =>
            {
                Some("the CA does not accept the account key: check the account's `directory`, and its `eab` credentials if the CA requires them".to_string())
            }
            AcmeProblemKind::Caa => Some(
                "a CAA record of the domain does not allow this CA: add the CA's issuer domain to the domain's CAA records".to_string(),
            ),
            AcmeProblemKind::Dns
            | AcmeProblemKind::Connection
            | AcmeProblemKind::IncorrectResponse
            | AcmeProblemKind::Unauthorized => Some(
                "the CA could not validate the domain: check that the challenge record or file is reachable from the internet".to_string(),
            ),
            AcmeProblemKind::RejectedIdentifier | AcmeProblemKind::UnsupportedIdentifier => Some(
                "the CA will not issue for one of the names: check the names and the CA's policy".to_string(),
            ),
            _ => None,
        },
        None if error.class == ErrorClass::RateLimited => Some(rate_limit_hint(error)),
        None => None,
    }
}

/// The hint for a Sectigo error code (D25's code table; sectigo-check.md §2.4, §4).
fn sectigo_hint(code: i64, status: Option<u16>) -> Option<String> {
    Some(match code {
        -16 => "SCM did not accept the login, password or customer URI (it does not say which): check `password` (a new administrator must first change the temporary password in the SCM web interface), `login`, and `customer_uri` (the segment in `https://cert-manager.com/customer/<customer_uri>`)".to_string(),
        -970 => "SCM refused the login and password: check `password` (a new administrator must first change the temporary password in the SCM web interface)".to_string(),
        -3 | -25 | -37 | -226 => "the administrator lacks a role or privilege this needs: give it the RAO or DRAO SSL role (or MRAO) for the organization, and enable \"Enable Web / Rest API\" in the organization's SSL settings".to_string(),
        -738 => "the administrator may not manage this domain: delegate the domain to its organization in SCM".to_string(),
        -36 | -39 | -111 => "the profile does not allow this term or type: `certform ca info ACCOUNT` lists each profile's terms".to_string(),
        -62 => "a mandatory custom field is missing: `certform ca info ACCOUNT` lists the custom fields".to_string(),
        -139 => "this account requires `external_requesters` on every request".to_string(),
        -170 => "the profile does not allow ECC keys: use `key = { algorithm = \"rsa\" }`".to_string(),
        _ if status == Some(401) => "check `login`, `password` and `customer_uri` of the account".to_string(),
        _ => return None,
    })
}

fn rate_limit_hint(error: &super::CaError) -> String {
    match error.retry_after {
        Some(wait) if wait.whole_seconds() > 0 => format!(
            "the CA asked to wait {}s; certform retries on the next run after that",
            wait.whole_seconds()
        ),
        _ => "the CA limits how fast certform may send requests; certform retries on the next run"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acme_problem_documents_parse_with_subproblems() {
        let body = br#"{
            "type": "urn:ietf:params:acme:error:rejectedIdentifier",
            "detail": "Error creating new order :: Cannot issue for these names",
            "status": 400,
            "subproblems": [
                {"type": "urn:ietf:params:acme:error:caa", "detail": "CAA forbids",
                 "identifier": {"type": "dns", "value": "www.example.com"}},
                {"type": "urn:example:custom", "detail": "nope"}
            ]
        }"#;
        let problem = Problem::from_acme_json(body).expect("a problem");
        let Problem::Acme {
            kind,
            detail,
            subproblems,
        } = &problem
        else {
            panic!("not ACME: {problem:?}");
        };
        assert_eq!(*kind, AcmeProblemKind::RejectedIdentifier);
        assert_eq!(
            detail.as_deref(),
            Some("Error creating new order :: Cannot issue for these names")
        );
        assert_eq!(subproblems.len(), 2);
        assert_eq!(subproblems[0].kind, AcmeProblemKind::Caa);
        assert_eq!(
            subproblems[0].identifier.as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            subproblems[1].kind,
            AcmeProblemKind::Other("urn:example:custom".into())
        );
        assert_eq!(
            problem.describe(),
            "Error creating new order :: Cannot issue for these names (`rejectedIdentifier`); \
             `www.example.com`: CAA forbids (`caa`); nope (`urn:example:custom`)"
        );
    }

    #[test]
    fn acme_problem_types_parse_with_or_without_prefix() {
        for (text, kind) in [
            (
                Some("urn:ietf:params:acme:error:rateLimited"),
                AcmeProblemKind::RateLimited,
            ),
            (Some("badNonce"), AcmeProblemKind::BadNonce),
            (
                Some("urn:ietf:params:acme:error:badCSR"),
                AcmeProblemKind::BadCsr,
            ),
            (
                Some("urn:ietf:params:acme:error:unauthorized"),
                AcmeProblemKind::Unauthorized,
            ),
            (None, AcmeProblemKind::Missing),
        ] {
            assert_eq!(AcmeProblemKind::parse(text), kind, "{text:?}");
        }
    }

    #[test]
    fn bodies_that_are_not_problems_are_none() {
        assert_eq!(Problem::from_acme_json(b"<html>bad gateway</html>"), None);
        assert_eq!(Problem::from_acme_json(br#"{"status":"valid"}"#), None);
    }

    #[test]
    fn digicert_errors_parse_as_array_or_object() {
        let array = br#"{"errors":[{"code":"invalid_api_key","message":"The specified API key is invalid."},{"code":"access_denied","message":"no"}]}"#;
        let problem = Problem::from_digicert_json(array);
        assert!(problem.has_digicert_code("invalid_api_key"));
        assert!(problem.has_digicert_code("access_denied"));
        assert!(!problem.has_digicert_code("not_found"));
        assert_eq!(
            problem.describe(),
            "The specified API key is invalid. (invalid_api_key); no (access_denied)"
        );
        let object = br#"{"errors":{"code":"not_found|order","message":"gone"}}"#;
        assert!(Problem::from_digicert_json(object).has_digicert_code("not_found|order"));
        assert_eq!(
            Problem::from_digicert_json(b"not json"),
            Problem::Digicert { errors: Vec::new() }
        );
    }

    fn ca_error(
        class: super::super::ErrorClass,
        status: Option<u16>,
        problem: Option<Problem>,
    ) -> super::super::CaError {
        let mut error = super::super::CaError::new(class, "DigiCert said (401)");
        error.status = status;
        error.problem = problem.map(Box::new);
        error
    }

    fn digicert(code: &str) -> Option<Problem> {
        Some(Problem::Digicert {
            errors: vec![DigicertProblem {
                code: code.into(),
                message: "m".into(),
            }],
        })
    }

    fn acme(kind: AcmeProblemKind) -> Option<Problem> {
        Some(Problem::Acme {
            kind,
            detail: None,
            subproblems: Vec::new(),
        })
    }

    #[test]
    fn hints_come_from_status_and_problem_never_from_message_text() {
        use super::super::ErrorClass::{Auth, RateLimited, Rejected, Transient};
        let hint = |error: super::super::CaError| error.hint().unwrap_or_default();
        // The message says "(401)" but nothing typed does: no API key hint.
        assert_eq!(ca_error(Auth, None, None).hint(), None);
        assert!(hint(ca_error(Auth, Some(401), digicert("invalid_api_key")))
            .starts_with("check the API key"));
        let forbidden = hint(ca_error(Auth, Some(403), digicert("access_denied")));
        assert!(
            forbidden.starts_with("the three likely causes:\n  1. "),
            "{forbidden}"
        );
        assert_eq!(forbidden.lines().count(), 4, "{forbidden}");
        // CertCentral's answer to a wrong or revoked key is a 403: the key hint, not roles.
        let bad_key = ca_error(Auth, Some(403), digicert("access_denied_invalid_key"));
        assert!(bad_key.is_unauthorized());
        assert!(!bad_key.is_forbidden());
        let bad_key = hint(bad_key);
        assert!(bad_key.starts_with("check the API key"), "{bad_key}");
        assert!(!bad_key.contains("role"), "{bad_key}");
        let missing = hint(ca_error(
            Auth,
            Some(403),
            digicert("access_denied|missing_permission"),
        ));
        assert!(missing.starts_with("the three likely causes:"), "{missing}");
        let mut limited = ca_error(RateLimited, Some(429), digicert("rate_limit"));
        limited.retry_after = Some(time::Duration::seconds(30));
        assert!(hint(limited).contains("asked to wait 30s"));
        assert!(hint(ca_error(
            RateLimited,
            Some(429),
            acme(AcmeProblemKind::RateLimited)
        ))
        .contains("retries on the next run"));
        assert!(hint(ca_error(
            Auth,
            Some(403),
            acme(AcmeProblemKind::ExternalAccountRequired)
        ))
        .contains("`eab"));
        assert!(hint(ca_error(
            Auth,
            Some(403),
            acme(AcmeProblemKind::Unauthorized)
        ))
        .contains("account key"));
        assert!(hint(ca_error(
            Rejected,
            Some(403),
            acme(AcmeProblemKind::Unauthorized)
        ))
        .contains("could not validate"));
        assert!(hint(ca_error(Rejected, Some(403), acme(AcmeProblemKind::Caa))).contains("CAA"));
        assert_eq!(
            ca_error(Transient, Some(503), acme(AcmeProblemKind::ServerInternal)).hint(),
            None
        );
        assert_eq!(
            ca_error(Rejected, Some(404), digicert("not_found|order")).hint(),
            None
        );
    }

    #[test]
    fn typed_helpers_read_status_and_problem() {
        use super::super::ErrorClass::{Auth, RateLimited, Rejected};
        assert!(ca_error(Auth, Some(401), digicert("invalid_api_key")).is_unauthorized());
        assert!(
            ca_error(Auth, Some(400), acme(AcmeProblemKind::AccountDoesNotExist)).is_unauthorized()
        );
        assert!(!ca_error(Auth, None, None).is_unauthorized());
        assert!(ca_error(Auth, Some(403), digicert("access_denied")).is_forbidden());
        assert!(ca_error(RateLimited, None, None).is_rate_limited());
        assert!(
            ca_error(Rejected, Some(400), acme(AcmeProblemKind::RateLimited)).is_rate_limited()
        );
        assert!(!ca_error(Rejected, Some(400), acme(AcmeProblemKind::Malformed)).is_rate_limited());
    }

    #[test]
    fn fixture_bodies_parse() {
        let key = Problem::from_digicert_json(include_bytes!(
            "../../tests/fixtures/digicert/error-invalid-api-key.json"
        ));
        assert!(key.has_digicert_code("invalid_api_key"));
        let several = Problem::from_digicert_json(include_bytes!(
            "../../tests/fixtures/digicert/error-several.json"
        ));
        let Problem::Digicert { errors } = &several else {
            panic!("{several:?}");
        };
        let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["invalid_dns_name", "missing_param"]);
        let rejected = Problem::from_acme_json(include_bytes!(
            "../../tests/fixtures/acme/problem-rejected-identifier.json"
        ))
        .expect("problem");
        assert_eq!(
            rejected.acme_kind(),
            Some(&AcmeProblemKind::RejectedIdentifier)
        );
        let Problem::Acme { subproblems, .. } = &rejected else {
            panic!("{rejected:?}");
        };
        assert_eq!(subproblems[0].identifier.as_deref(), Some("bad.example"));
        let limited = Problem::from_acme_json(include_bytes!(
            "../../tests/fixtures/acme/problem-rate-limited.json"
        ))
        .expect("problem");
        assert_eq!(limited.acme_kind(), Some(&AcmeProblemKind::RateLimited));
    }
}
