//! What every provider error says to the code that acts on it: one `ErrorClass`, shared by the
//! HTTP layer, the CA clients and the DNS providers. Performs no I/O.

/// How a caller should treat an error: retry, wait, give up, or fix something first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// Network trouble, timeouts, 5xx, answers cut off: worth trying again later.
    Transient,
    /// 429 and friends: wait until the `Retry-After` the server gave, when it gave one.
    RateLimited,
    /// The server refused this request (bad CSR, unknown product, not allowed) or the setup is
    /// wrong (bundle, proxy): retrying the same request will not help.
    Rejected,
    /// Credentials wrong or lacking permission.
    Auth,
    /// The server answered something certform does not understand.
    Protocol,
    /// The server (or this provider) does not support the operation.
    Unsupported,
    /// certform built a request that cannot be sent: a defect, not the server's doing.
    Bug,
}

impl ErrorClass {
    /// The class as users see it (`rate-limited`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited => "rate-limited",
            ErrorClass::Rejected => "rejected",
            ErrorClass::Auth => "auth",
            ErrorClass::Protocol => "protocol",
            ErrorClass::Unsupported => "unsupported",
            ErrorClass::Bug => "bug",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
