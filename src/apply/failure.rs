//! Why one certificate failed, kept for the report: the error, each cause once, the hint, and
//! for CA errors the class, HTTP status and the CA's typed problem. Never prints.

use serde::Serialize;

use crate::ca::{CaError, ErrorClass, Problem};

/// One certificate's failure as the report carries it (and the CLI prints it: `error:`,
/// `caused by:` per cause, `hint:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// What certform was doing (`failed to place order at `dc``).
    pub message: String,
    /// The source chain, outermost first, each cause once.
    pub causes: Vec<String>,
    /// What the user can do about it, chosen from the typed error (never from message text).
    pub hint: Option<String>,
    /// The class of the CA error in the chain, when there is one.
    pub class: Option<ErrorClass>,
    /// The HTTP status the CA answered with, when it answered.
    pub status: Option<u16>,
    /// The CA's account of the failure (ACME problem, DigiCert `errors[]`).
    pub problem: Option<Problem>,
}

impl Failure {
    /// Keep `error` with its causes and hint.
    pub fn from_error(error: &super::Error) -> Self {
        let mut causes: Vec<String> = Vec::new();
        let mut ca: Option<&CaError> = None;
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            if ca.is_none() {
                ca = cause.downcast_ref::<CaError>();
            }
            push_once(&mut causes, cause.to_string());
            source = cause.source();
        }
        let hint = match error {
            super::Error::State(state) => state.hint(),
            super::Error::Key(key) => key.hint(),
            _ => ca.and_then(CaError::hint),
        };
        Self {
            message: error.to_string(),
            causes,
            hint,
            class: ca.map(|ca| ca.class),
            status: ca.and_then(|ca| ca.status),
            problem: ca.and_then(|ca| ca.problem.as_deref().cloned()),
        }
    }
}

/// Add `cause` unless the chain already holds that exact text (an error whose message repeats
/// its source's is a defect of that error; this keeps the output readable meanwhile).
fn push_once(causes: &mut Vec<String>, cause: String) {
    if !causes.contains(&cause) {
        causes.push(cause);
    }
}

impl std::fmt::Display for Failure {
    /// The message and its causes on one line (commit messages, the per-certificate line).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        for cause in &self.causes {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::DigicertProblem;

    fn digicert_401() -> CaError {
        CaError::new(
            ErrorClass::Auth,
            "DigiCert rejected the API key of `dc` (HTTP 401): The specified API key is invalid. (invalid_api_key)",
        )
        .with_status(401)
        .with_problem(Problem::Digicert {
            errors: vec![DigicertProblem {
                code: "invalid_api_key".into(),
                message: "The specified API key is invalid.".into(),
            }],
        })
    }

    #[test]
    fn a_ca_failure_keeps_class_status_problem_causes_and_hint() {
        let error = super::super::Error::Ca {
            context: "failed to place order at `dc`".into(),
            source: digicert_401(),
        };
        let failure = Failure::from_error(&error);
        assert_eq!(failure.message, "failed to place order at `dc`");
        assert_eq!(
            failure.causes,
            vec!["DigiCert rejected the API key of `dc` (HTTP 401): The specified API key is invalid. (invalid_api_key)"]
        );
        assert_eq!(failure.class, Some(ErrorClass::Auth));
        assert_eq!(failure.status, Some(401));
        assert!(failure
            .problem
            .as_ref()
            .is_some_and(|p| p.has_digicert_code("invalid_api_key")));
        assert!(
            failure
                .hint
                .as_deref()
                .is_some_and(|h| h.starts_with("check the API key")),
            "{failure:?}"
        );
        assert_eq!(
            failure.to_string(),
            "failed to place order at `dc`: DigiCert rejected the API key of `dc` (HTTP 401): The specified API key is invalid. (invalid_api_key)"
        );
        let json = serde_json::to_value(&failure).expect("JSON");
        assert_eq!(json["class"], "auth");
        assert_eq!(json["status"], 401);
        assert_eq!(json["problem"]["vendor"], "digicert");
        assert_eq!(json["problem"]["errors"][0]["code"], "invalid_api_key");
    }

    #[test]
    fn a_failure_without_a_ca_error_has_no_class_or_hint() {
        let failure = Failure::from_error(&super::super::Error::Other("no such key".into()));
        assert_eq!(failure.message, "no such key");
        assert!(failure.causes.is_empty());
        assert_eq!(
            (failure.class, failure.status, failure.hint),
            (None, None, None)
        );
    }
}
