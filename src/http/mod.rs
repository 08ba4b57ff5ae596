//! The one HTTP layer: every request certform sends to a CA's API goes through a `Client`
//! built here, on reqwest with rustls (aws-lc-rs, the crate's one crypto provider).
//!
//! A `Client` serves one account and applies to each of its requests:
//!
//! - **Trust**: the platform's verifier, or only the account's `ca_bundle`, or both (`Trust`).
//! - **Proxy**: the account's `proxy` for every request, else `HTTPS_PROXY` / `HTTP_PROXY`,
//!   bypassed for `NO_PROXY` and always for loopback (`ProxyEnv`).
//! - **Bounds**: a connect timeout, a total timeout per attempt, a cap on the answer's size
//!   (read as a stream, so memory stays bounded), `TCP_NODELAY` (without it every signed ACME
//!   POST waited ~40 ms for a delayed ACK).
//! - **Rate limit**: the account's windows (`RateLimiter`), before every attempt.
//! - **Retries**: one policy (`RetryPolicy`, on `backon`). A request that may be repeated (by
//!   its method, or because the caller says so) is retried on connect errors, timeouts, 5xx and
//!   429, waiting what `Retry-After` asks (seconds or HTTP-date) up to a bound; a longer wait
//!   is returned to the caller to schedule. Any other request is sent once: the caller
//!   decides, knowing whether the server may have acted on it.
//! - **Redaction**: URLs and headers pass through `redact_url` / `redact_headers` before any log
//!   line or error; secret headers are marked sensitive before they are sent.
//!
//! It knows nothing of CAs: `send` returns answers of any status after the retries, and
//! `Response::error_for_status` turns a failure status into a classified `Error`.

mod error;
mod limit;
mod proxy;
mod redact;
mod retry;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use backon::Retryable;
use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use crate::error::ErrorClass;

pub use error::{class_of, snippet, Error};
pub use limit::{RateLimiter, Window};
pub use proxy::ProxyEnv;
pub use redact::{is_secret_header, redact_headers, redact_url};
pub use retry::{parse_retry_after, RetryPolicy};

/// Default bound on establishing a connection (TCP, proxy tunnel and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on one attempt, from sending to the last byte of the answer.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on an answer's body.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// Which certificates a client trusts for TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// The platform's trust store and verifier.
    #[default]
    System,
    /// Only the CA certificates of this PEM bundle (a private or test CA, e.g. Pebble).
    Only(PathBuf),
    /// The platform's, plus the CA certificates of this PEM bundle.
    SystemAnd(PathBuf),
}

/// How a `Client` is built.
#[derive(Debug, Clone)]
pub struct Options {
    /// The account the client serves (for messages and logs).
    pub account: String,
    pub trust: Trust,
    /// The account's `proxy` (`http://host:port`), used for every request.
    pub proxy: Option<String>,
    /// The environment's proxies, used when the account names none.
    pub proxy_env: ProxyEnv,
    pub connect_timeout: Duration,
    /// Bound on one attempt (connect, send, answer, body).
    pub timeout: Duration,
    /// Largest answer body accepted (`Error::TooLarge` beyond).
    pub max_body: usize,
    pub retry: RetryPolicy,
    /// Client-side rate limit; empty for none.
    pub limits: Vec<Window>,
    /// How long one request that may be repeated keeps waiting out 429 answers (each wait:
    /// the `Retry-After`, else `rate_limit_pause` doubling up to the longest window) before
    /// the 429 goes back to the caller. Zero (the default): 429 is retried like a 5xx.
    pub rate_limit_wait: Duration,
    /// The first wait after a 429 without `Retry-After`.
    pub rate_limit_pause: Duration,
    /// Host names answered without DNS (simulators, tests).
    pub resolve: Vec<(String, SocketAddr)>,
}

impl Options {
    /// Defaults for `account`: system trust, the environment's proxies, the retry policy from
    /// `CERTFORM_RETRY_DELAY_MS`, no rate limit.
    pub fn new(account: impl Into<String>) -> Self {
        Self {
            account: account.into(),
            trust: Trust::System,
            proxy: None,
            proxy_env: ProxyEnv::from_env(),
            connect_timeout: CONNECT_TIMEOUT,
            timeout: TIMEOUT,
            max_body: MAX_BODY,
            retry: RetryPolicy::from_env(),
            limits: Vec::new(),
            rate_limit_wait: Duration::ZERO,
            rate_limit_pause: Duration::from_secs(5),
            resolve: Vec::new(),
        }
    }
}

/// How the client waits between attempts (tests record the waits instead of sleeping).
pub type Sleeper = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// One account's HTTP client. Cheap to clone; clones share connections and the rate limiter.
#[derive(Clone)]
pub struct Client {
    inner: reqwest::Client,
    shared: Arc<Shared>,
}

struct Shared {
    account: String,
    timeout: Duration,
    max_body: usize,
    retry: RetryPolicy,
    limiter: Option<RateLimiter>,
    sleeper: Sleeper,
    rate_limit_wait: Duration,
    rate_limit_pause: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("account", &self.shared.account)
            .field("retry", &self.shared.retry)
            .finish_non_exhaustive()
    }
}

/// One request. Whether it may be repeated follows from its method (`GET`, `HEAD`, `PUT`,
/// `DELETE`, `OPTIONS`) unless the caller says otherwise with `retry`.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    repeatable: Option<bool>,
    /// Bound on one attempt of this request, when shorter than the client's.
    timeout: Option<Duration>,
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            repeatable: None,
            timeout: None,
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }

    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::POST, url)
    }

    /// Add a header; secret ones (`is_secret_header`) are marked sensitive.
    pub fn header(mut self, name: HeaderName, mut value: HeaderValue) -> Self {
        if is_secret_header(&name) {
            value.set_sensitive(true);
        }
        self.headers.append(name, value);
        self
    }

    /// Add the headers of `headers` (as `header` does).
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        for (name, value) in headers.iter() {
            self = self.header(name.clone(), value.clone());
        }
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Whether the layer may send the request again after a failure: `true` for a request the
    /// caller knows is harmless to repeat (a POST-as-GET), `false` to send it once whatever its
    /// method.
    pub fn retry(mut self, repeatable: bool) -> Self {
        self.repeatable = Some(repeatable);
        self
    }

    /// Bound one attempt of this request by `timeout` (when shorter than the client's): a read
    /// that should answer at once can be given up on, and retried, sooner.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn repeatable(&self) -> bool {
        let by_method = matches!(
            self.method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        self.repeatable.unwrap_or(by_method)
    }
}

/// An answer, with its body read in full.
#[derive(Debug, Clone)]
pub struct Response {
    pub method: Method,
    /// The URL as requested (not redacted: callers resolve relative links against it).
    pub url: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the answer arrived (for `Retry-After` dates).
    pub received: SystemTime,
}

impl Response {
    /// The wait its `Retry-After` asks for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, self.received))
    }

    /// The answer if its status is a success (2xx), else the classified error.
    pub fn error_for_status(self) -> Result<Self, Error> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(self.to_error())
        }
    }

    /// This answer as an error (whatever its status).
    pub fn to_error(&self) -> Error {
        Error::Status {
            method: self.method.clone(),
            url: redact_url(&self.url),
            status: self.status,
            retry_after: self.retry_after(),
            body: snippet(&self.body),
        }
    }

    /// Whether the layer retries after this answer (when the request may be repeated).
    fn worth_retrying(&self) -> bool {
        self.status == StatusCode::TOO_MANY_REQUESTS
            || matches!(self.status.as_u16(), 408 | 500 | 502 | 503 | 504)
    }
}

/// One attempt's outcome as the retry loop sees it.
enum Attempt {
    /// An answer the caller gets, unless a retry replaces it.
    Answer(Response),
    Failed(Error),
}

impl Client {
    /// A client for `options`.
    pub fn new(mut options: Options) -> Result<Self, Error> {
        // `CERTFORM_HTTP_TIMEOUT_MS` caps the time one attempt may take (tests against servers
        // that never answer some requests; a shorter bound for impatient what-if runs).
        if let Some(cap) = std::env::var("CERTFORM_HTTP_TIMEOUT_MS")
            .ok()
            .and_then(|value| value.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(std::time::Duration::from_millis)
        {
            options.timeout = options.timeout.min(cap);
        }
        let mut builder = reqwest::Client::builder()
            .tls_backend_rustls()
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("certform/", env!("CARGO_PKG_VERSION")))
            .no_proxy();
        builder = match &options.trust {
            Trust::System => builder,
            Trust::Only(path) => builder.tls_certs_only(bundle(&options.account, path)?),
            Trust::SystemAnd(path) => builder.tls_certs_merge(bundle(&options.account, path)?),
        };
        for proxy in proxy::proxies(
            &options.account,
            options.proxy.as_deref(),
            &options.proxy_env,
        )? {
            builder = builder.proxy(proxy);
        }
        for (host, addr) in &options.resolve {
            builder = builder.resolve(host, *addr);
        }
        let inner = builder.build().map_err(|error| Error::Setup {
            what: format!("cannot set up HTTPS for account `{}`", options.account),
            source: Some(Box::new(error)),
        })?;
        // A limiter also when no window is set but 429s are waited out: it holds every
        // request of the account while one waits.
        let limiter = (!options.limits.is_empty() || !options.rate_limit_wait.is_zero())
            .then(|| RateLimiter::new(&options.limits));
        Ok(Self {
            inner,
            shared: Arc::new(Shared {
                account: options.account,
                timeout: options.timeout,
                max_body: options.max_body,
                retry: options.retry,
                limiter,
                sleeper: Arc::new(|pause| Box::pin(tokio::time::sleep(pause))),
                rate_limit_wait: options.rate_limit_wait,
                rate_limit_pause: options.rate_limit_pause,
            }),
        })
    }

    /// The same client, waiting between attempts with `sleeper` (tests record the waits).
    pub fn with_sleeper(self, sleeper: Sleeper) -> Self {
        let shared = Shared {
            account: self.shared.account.clone(),
            timeout: self.shared.timeout,
            max_body: self.shared.max_body,
            retry: self.shared.retry,
            limiter: self
                .shared
                .limiter
                .as_ref()
                .map(|limiter| RateLimiter::new(limiter.windows())),
            sleeper,
            rate_limit_wait: self.shared.rate_limit_wait,
            rate_limit_pause: self.shared.rate_limit_pause,
        };
        Self {
            inner: self.inner,
            shared: Arc::new(shared),
        }
    }

    /// Send `request`, retrying it (when it may be repeated) per the policy. Returns the last
    /// answer whatever its status; `Err` only when no answer came (or it was too large).
    ///
    /// With `rate_limit_wait`, a 429 to a request that may be repeated is not one of the
    /// policy's attempts: the request waits (`Retry-After`, else a pause doubling from
    /// `rate_limit_pause` up to the longest window), holding the account's other requests
    /// too, and is sent again, until a wait would end past `rate_limit_wait`.
    pub fn send(
        &self,
        request: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'static>> {
        let repeatable = request.repeatable();
        let request = Arc::new(request);
        let client = self.clone();
        Box::pin(async move {
            let shared = &client.shared;
            let deadline = tokio::time::Instant::now() + shared.rate_limit_wait;
            let longest = shared
                .limiter
                .as_ref()
                .and_then(|limiter| limiter.windows().iter().map(|w| w.per).max())
                .unwrap_or(Duration::from_secs(180))
                .max(shared.rate_limit_pause);
            let mut pause = shared.rate_limit_pause;
            loop {
                let response = match client.retrying(Arc::clone(&request), repeatable).await {
                    Ok(response) | Err(Attempt::Answer(response)) => response,
                    Err(Attempt::Failed(error)) => return Err(error),
                };
                let waits = repeatable
                    && !shared.rate_limit_wait.is_zero()
                    && response.status == StatusCode::TOO_MANY_REQUESTS;
                if !waits {
                    return Ok(response);
                }
                let wait = response.retry_after().unwrap_or(pause);
                if tokio::time::Instant::now() + wait > deadline {
                    return Ok(response);
                }
                tracing::warn!(
                    account = %shared.account,
                    method = %request.method,
                    url = %redact_url(&request.url),
                    "HTTP 429 (rate limited); waiting {wait:?}, then resuming"
                );
                if let Some(limiter) = &shared.limiter {
                    limiter.hold_for(wait);
                }
                (shared.sleeper)(wait).await;
                pause = (pause * 2).min(longest);
            }
        })
    }

    /// The policy's attempts at `request` (429 excluded when the client waits it out).
    fn retrying(
        &self,
        request: Arc<Request>,
        repeatable: bool,
    ) -> Pin<Box<dyn Future<Output = Result<Response, Attempt>> + Send + 'static>> {
        let policy = self.shared.retry;
        let waits_out_429 = !self.shared.rate_limit_wait.is_zero();
        let account = self.shared.account.clone();
        let method = request.method.clone();
        let shown = redact_url(&request.url);
        let client = self.clone();
        // Every closure owns what it uses: the retry future then holds no borrowed state.
        let attempt = move || {
            let client = client.clone();
            let request = Arc::clone(&request);
            let attempt: Pin<Box<dyn Future<Output = Result<Response, Attempt>> + Send>> =
                Box::pin(async move { client.attempt(&request).await });
            attempt
        };
        let sleeper = Arc::clone(&self.shared.sleeper);
        // Boxed outside any `async` block: the retry closures take references, and a future
        // holding them inside an `async fn` is not provably `Send` (a compiler limitation).
        Box::pin(
            attempt
                .retry(policy.backoff())
                .sleep(move |pause| sleeper(pause))
                .when(move |failure: &Attempt| {
                    repeatable && !(waits_out_429 && is_429(failure)) && retryable(failure, &policy)
                })
                .adjust(move |failure: &Attempt, backoff: Option<Duration>| {
                    let backoff = backoff?;
                    let retry_after = match failure {
                        Attempt::Answer(response) => response.retry_after(),
                        Attempt::Failed(_) => None,
                    };
                    Some(policy.pause(backoff, retry_after))
                })
                .notify(move |failure: &Attempt, pause: Duration| {
                    let what = match failure {
                        Attempt::Answer(response) => format!("HTTP {}", response.status),
                        Attempt::Failed(error) => error.to_string(),
                    };
                    tracing::warn!(
                        account = %account,
                        method = %method,
                        url = %shown,
                        "{what}; retrying in {pause:?}"
                    );
                }),
        )
    }

    /// One attempt: wait for the rate limiter, send, read the body within the cap.
    async fn attempt(&self, request: &Request) -> Result<Response, Attempt> {
        let slot = match &self.shared.limiter {
            Some(limiter) => limiter.acquire().await,
            None => None,
        };
        let started = Instant::now();
        let result = self.exchange(request).await;
        if let (Some(limiter), Some(slot)) = (&self.shared.limiter, slot) {
            limiter.finished(slot);
        }
        tracing::trace!(
            account = %self.shared.account,
            method = %request.method,
            url = %redact_url(&request.url),
            status = result.as_ref().map(|response| response.status.as_u16()).unwrap_or(0),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "HTTP request"
        );
        match result {
            Ok(response) if response.worth_retrying() => Err(Attempt::Answer(response)),
            Ok(response) => Ok(response),
            Err(error) => Err(Attempt::Failed(error)),
        }
    }

    async fn exchange(&self, request: &Request) -> Result<Response, Error> {
        let url = redact_url(&request.url);
        let built = self
            .inner
            .request(request.method.clone(), request.url.as_str())
            .headers(request.headers.clone())
            .body(request.body.clone())
            .timeout(self.attempt_timeout(request))
            .build()
            .map_err(|error| Error::Invalid {
                url: url.clone(),
                reason: error.without_url().to_string(),
            })?;
        let mut response = self
            .inner
            .execute(built)
            .await
            .map_err(|error| self.transport_error(request, &url, error))?;
        let received = SystemTime::now();
        let limit = self.shared.max_body;
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(Error::TooLarge { url, limit });
        }
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.transport_error(request, &url, error))?
        {
            if body.len() + chunk.len() > limit {
                return Err(Error::TooLarge { url, limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            method: request.method.clone(),
            url: request.url.clone(),
            status,
            headers,
            body: body.freeze(),
            received,
        })
    }

    /// How long one attempt of `request` may take.
    fn attempt_timeout(&self, request: &Request) -> Duration {
        request.timeout.map_or(self.shared.timeout, |timeout| {
            timeout.min(self.shared.timeout)
        })
    }

    fn transport_error(&self, request: &Request, url: &str, error: reqwest::Error) -> Error {
        // reqwest puts the full URL (credentials included) into its errors: drop it.
        let error = error.without_url();
        let url = url.to_string();
        if error.is_timeout() {
            return Error::Timeout {
                method: request.method.clone(),
                url,
                after: self.attempt_timeout(request),
            };
        }
        if is_untrusted(&error) {
            return Error::Untrusted { url, source: error };
        }
        if error.is_connect() {
            return Error::Connect { url, source: error };
        }
        if error.is_builder() {
            return Error::Invalid {
                url,
                reason: error.to_string(),
            };
        }
        Error::Transport {
            method: request.method.clone(),
            url,
            source: error,
        }
    }
}

/// Whether `failure` is a 429 answer.
fn is_429(failure: &Attempt) -> bool {
    matches!(failure, Attempt::Answer(response) if response.status == StatusCode::TOO_MANY_REQUESTS)
}

/// Whether the layer tries again after `failure` (for a request that may be repeated).
fn retryable(failure: &Attempt, policy: &RetryPolicy) -> bool {
    match failure {
        Attempt::Answer(response) => {
            response.worth_retrying() && policy.waits_for(response.retry_after())
        }
        Attempt::Failed(error) => error.class() == ErrorClass::Transient,
    }
}

/// Whether a transport error is a certificate the trust roots refused.
fn is_untrusted(error: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        // `io::Error::source` skips the error it wraps; look inside instead.
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    false
}

/// The CA certificates of a PEM bundle.
fn bundle(account: &str, path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, Error> {
    let setup =
        |reason: &str, source: Option<Box<dyn std::error::Error + Send + Sync>>| Error::Setup {
            what: format!(
                "CA bundle `{}` of account `{account}` {reason}",
                path.display()
            ),
            source,
        };
    let text =
        std::fs::read(path).map_err(|error| setup("cannot be read", Some(Box::new(error))))?;
    let blocks =
        pem::parse_many(&text).map_err(|error| setup("is not PEM", Some(Box::new(error))))?;
    let mut certificates = Vec::new();
    for block in blocks.iter().filter(|block| block.tag() == "CERTIFICATE") {
        let certificate = reqwest::Certificate::from_der(block.contents())
            .map_err(|error| setup("holds an invalid certificate", Some(Box::new(error))))?;
        certificates.push(certificate);
    }
    if certificates.is_empty() {
        return Err(setup("holds no `CERTIFICATE` block", None));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests;
