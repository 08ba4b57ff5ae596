//! `AcmeHttp`: `instant-acme`'s HTTP client over `crate::http`, remembering the last answer of
//! the current task.

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use bytes::Bytes;
use instant_acme::{Account, BodyWrapper, BytesResponse, HttpClient};
use serde::Deserialize;
use time::Duration;

use super::chain::alternate_links;
use super::{AcmeSettings, READ_TIMEOUT, REQUEST_TIMEOUT};
use crate::ca::{CaError, ErrorClass};

/// An account builder whose HTTP client is `AcmeHttp`.
pub(super) fn builder(
    name: &str,
    settings: &AcmeSettings,
    sent: &Arc<AtomicU64>,
) -> Result<instant_acme::AccountBuilder, CaError> {
    let http =
        AcmeHttp::new(name, settings.ca_bundle.as_deref(), Arc::clone(sent)).map_err(|error| {
            let message = match &settings.ca_bundle {
                Some(bundle) => format!(
                    "ACME account `{name}`: CA bundle `{}` cannot be used",
                    bundle.display()
                ),
                None => {
                    format!(
                        "ACME account `{name}`: cannot set up TLS with the system's trust store"
                    )
                }
            };
            let mut failure = CaError::new(ErrorClass::Rejected, message);
            failure.source = Some(Box::new(error));
            failure
        })?;
    Ok(Account::builder_with_http(Box::new(http)))
}

/// What the HTTP layer saw of the last answer in the current task.
#[derive(Debug, Clone, Default)]
pub(super) struct LastResponse {
    pub(super) status: Option<u16>,
    pub(super) retry_after: Option<Duration>,
    /// `Link: <...>;rel="alternate"` targets, absolute.
    pub(super) alternates: Vec<String>,
    /// `Location` (where a created resource lives).
    pub(super) location: Option<String>,
    pub(super) body: Bytes,
}

tokio::task_local! {
    static LAST_RESPONSE: RefCell<LastResponse>;
}

/// Run `future` with its own record of the last HTTP answer (see `last_response`).
pub(super) async fn scoped<F: Future>(future: F) -> F::Output {
    LAST_RESPONSE
        .scope(RefCell::new(LastResponse::default()), future)
        .await
}

/// The last HTTP answer seen in this task's `scoped` call (empty outside one).
pub(super) fn last_response() -> LastResponse {
    LAST_RESPONSE
        .try_with(|last| last.borrow().clone())
        .unwrap_or_default()
}

/// The HTTPS client `instant-acme` sends through: `crate::http`, trusting either the account's
/// `ca_bundle` (only it) or the platform's verifier. Every exchange is bounded by
/// `REQUEST_TIMEOUT` and leaves its status, headers and body in `LAST_RESPONSE`.
///
/// A POST-as-GET (an empty JWS payload: a read, RFC 8555 §6.3) is idempotent, so it is bounded
/// by the shorter `read_timeout` and may be sent again by the HTTP layer's one retry policy: a
/// CA that never answers one read (Pebble under concurrent reads) costs `read_timeout`, not a
/// hung run. A repeated read whose nonce the CA already spent answers `badNonce` with a fresh
/// nonce, which `instant-acme` then signs again with. Every other POST is sent once.
pub(super) struct AcmeHttp {
    client: crate::http::Client,
    read_timeout: StdDuration,
    /// Requests `instant-acme` sent (a retry by the HTTP layer counts once), for
    /// `AcmeCa::requests_sent`.
    sent: Arc<AtomicU64>,
}

impl AcmeHttp {
    pub(super) fn new(
        name: &str,
        ca_bundle: Option<&Path>,
        sent: Arc<AtomicU64>,
    ) -> Result<Self, crate::http::Error> {
        let mut options = crate::http::Options::new(name);
        options.trust = match ca_bundle {
            Some(path) => crate::http::Trust::Only(path.to_path_buf()),
            None => crate::http::Trust::System,
        };
        options.timeout = REQUEST_TIMEOUT;
        Self::with_options(options, READ_TIMEOUT, sent)
    }

    pub(super) fn with_options(
        options: crate::http::Options,
        read_timeout: StdDuration,
        sent: Arc<AtomicU64>,
    ) -> Result<Self, crate::http::Error> {
        Ok(Self {
            client: crate::http::Client::new(options)?,
            read_timeout,
            sent,
        })
    }
}

/// Whether a JWS request body is a POST-as-GET: its payload is the empty string.
pub(super) fn is_post_as_get(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Jws<'a> {
        #[serde(borrow)]
        payload: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<Jws<'_>>(body)
        .ok()
        .and_then(|jws| jws.payload)
        .is_some_and(|payload| payload.is_empty())
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        let sent = Arc::clone(&self.sent);
        Box::pin(async move {
            let _ = LAST_RESPONSE.try_with(|last| *last.borrow_mut() = LastResponse::default());
            let (parts, body) = request.into_parts();
            let url = parts.uri.to_string();
            // A request body is already in memory: this only unwraps it.
            let body = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX)
                .await
                .map_err(|error| instant_acme::Error::Other(Box::new(error)))?;
            let read = parts.method == http::Method::POST && is_post_as_get(&body);
            let mut request = crate::http::Request::new(parts.method, url.clone())
                .headers(parts.headers)
                .body(body);
            if read {
                request = request.retry(true).timeout(read_timeout);
            }
            sent.fetch_add(1, Ordering::Relaxed);
            let response = client
                .send(request)
                .await
                .map_err(|error| instant_acme::Error::Other(Box::new(error)))?;
            let seen = LastResponse {
                status: Some(response.status.as_u16()),
                retry_after: response
                    .retry_after()
                    .and_then(|wait| Duration::try_from(wait).ok()),
                alternates: response
                    .headers
                    .get_all(http::header::LINK)
                    .iter()
                    .filter_map(|value| value.to_str().ok())
                    .flat_map(|value| alternate_links(value, &url))
                    .collect(),
                location: response
                    .headers
                    .get(http::header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_string),
                body: response.body.clone(),
            };
            let _ = LAST_RESPONSE.try_with(|last| *last.borrow_mut() = seen);
            let mut answer = http::Response::new(());
            *answer.status_mut() = response.status;
            *answer.headers_mut() = response.headers;
            let (parts, ()) = answer.into_parts();
            Ok(BytesResponse {
                parts,
                body: Box::new(response.body),
            })
        })
    }
}
