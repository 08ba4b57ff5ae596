//! What can go wrong with one HTTP exchange, classified for the caller (retry, wait, give up).

use std::time::Duration;

use http::{Method, StatusCode};

use crate::error::ErrorClass;

/// Longest part of an answer's body kept in an error.
pub const SNIPPET_CHARS: usize = 300;

/// A failed HTTP exchange. URLs are redacted (`redact_url`) before they are stored here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a failure status.
    #[error("{method} `{url}` answered HTTP {status}{}", snippet_suffix(.body))]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
        /// From `Retry-After`, when the answer had one.
        retry_after: Option<Duration>,
        /// The start of the body, whitespace collapsed, at most `SNIPPET_CHARS` characters.
        body: String,
    },
    /// No complete answer within the total timeout.
    #[error("{method} `{url}` got no answer within {}", seconds(*.after))]
    Timeout {
        method: Method,
        url: String,
        after: Duration,
    },
    /// No connection (refused, unreachable, DNS, connect timeout, proxy refused the tunnel).
    #[error("cannot connect to `{url}`")]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server's certificate is not trusted by the account's roots.
    #[error("the TLS certificate of `{url}` is not trusted")]
    Untrusted {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The answer is larger than the client accepts.
    #[error("the answer from `{url}` is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    /// The exchange broke off (connection reset, answer cut short, malformed HTTP).
    #[error("{method} `{url}` failed")]
    Transport {
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The request itself is invalid (not a URL, a header that cannot be sent).
    #[error("invalid request to `{url}`: {reason}")]
    Invalid { url: String, reason: String },
    /// The client cannot be built (unreadable `ca_bundle`, bad proxy URL).
    #[error("{what}")]
    Setup {
        what: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    /// What the caller should do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Status { status, .. } => class_of(*status),
            Error::Timeout { .. } | Error::Connect { .. } | Error::Transport { .. } => {
                ErrorClass::Transient
            }
            Error::Untrusted { .. } | Error::TooLarge { .. } | Error::Setup { .. } => {
                ErrorClass::Rejected
            }
            Error::Invalid { .. } => ErrorClass::Bug,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the server asked to wait (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The redacted URL of the request, when known.
    pub fn url(&self) -> Option<&str> {
        match self {
            Error::Status { url, .. }
            | Error::Timeout { url, .. }
            | Error::Connect { url, .. }
            | Error::Untrusted { url, .. }
            | Error::TooLarge { url, .. }
            | Error::Transport { url, .. }
            | Error::Invalid { url, .. } => Some(url),
            Error::Setup { .. } => None,
        }
    }

    /// The start of the failure answer's body (empty when there was none).
    pub fn body_snippet(&self) -> &str {
        match self {
            Error::Status { body, .. } => body,
            _ => "",
        }
    }
}

/// The class of a failure status.
pub fn class_of(status: StatusCode) -> ErrorClass {
    match status.as_u16() {
        401 | 403 | 407 => ErrorClass::Auth,
        429 => ErrorClass::RateLimited,
        408 | 500 | 502 | 503 | 504 => ErrorClass::Transient,
        code if code >= 500 => ErrorClass::Transient,
        _ => ErrorClass::Rejected,
    }
}

/// The start of a body for messages: UTF-8 (lossy), whitespace collapsed, bounded.
pub fn snippet(body: &[u8]) -> String {
    let head = &body[..body.len().min(SNIPPET_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for (count, word) in text.split_whitespace().enumerate() {
        if count > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() > SNIPPET_CHARS {
            break;
        }
    }
    if out.chars().count() > SNIPPET_CHARS || body.len() > head.len() {
        out = out.chars().take(SNIPPET_CHARS).collect();
        out.push('…');
    }
    out
}

fn snippet_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

fn seconds(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}
