//! Secrets out of URLs and headers before they reach a log line or an error message.

use http::header::{HeaderMap, HeaderName};

/// What a secret is replaced with.
const MASK: &str = "***";

/// Parts of query parameter names that mark their value as secret.
const SECRET_PARAMETERS: [&str; 10] = [
    "token",
    "key",
    "secret",
    "pass",
    "signature",
    "sig",
    "auth",
    "credential",
    "session",
    "code",
];

/// Parts of header names that mark their value as secret (beyond the standard ones).
const SECRET_HEADER_PARTS: [&str; 6] = ["key", "token", "secret", "auth", "session", "password"];

/// A URL for logs and messages: user info (`https://user:pass@host`) becomes `***@`, and the
/// values of query parameters that look secret (`token`, `api_key`, `signature`, ...) become
/// `***`. Everything else is kept as written (no normalisation), so a URL that holds no secret
/// reads exactly as configured.
pub fn redact_url(url: &str) -> String {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (url, None),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (before_fragment, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{MASK}@{}", &rest[at + 1..]),
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_parameter(name) => format!("{name}={MASK}"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn is_secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMETERS.iter().any(|part| name.contains(part))
}

/// Whether a header carries a credential (`Authorization`, `Cookie`, `X-DC-DEVKEY`, ...).
pub fn is_secret_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || SECRET_HEADER_PARTS.iter().any(|part| name.contains(part))
}

/// Headers for logs: `name: value` lines, sorted, secret values as `***`.
pub fn redact_headers(headers: &HeaderMap) -> Vec<String> {
    let mut lines: Vec<String> = headers
        .iter()
        .map(|(name, value)| {
            let shown = if is_secret_header(name) || value.is_sensitive() {
                MASK.to_string()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            format!("{name}: {shown}")
        })
        .collect();
    lines.sort();
    lines
}
