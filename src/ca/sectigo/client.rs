//! The HTTP side of `SectigoCa`: requests with SCM's header authentication, error mapping,
//! the read-only guard, and the reads (profiles, custom fields, organizations, domains,
//! certificates) built on them.

use std::time::Duration as StdDuration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde_json::Value;

use super::wire::{
    self, error_body, int, items, CustomField, Details, Domain, Organization, Profile,
    CREDENTIAL_CODES, FORBIDDEN_CODES,
};
use super::{SectigoCa, SectigoSettings, MAX_BODY, PAGE_SIZE, REQUEST_TIMEOUT};
use crate::ca::{CaError, ErrorClass, Problem};

/// A parsed answer.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) body: Bytes,
    /// `X-Total-Count` of list answers.
    pub(super) total: Option<u64>,
}

impl Answer {
    pub(super) fn json(&self, what: &str) -> Result<Value, CaError> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!("Sectigo answered {what} with a body that is not JSON"),
            )
            .with_source(error)
        })
    }

    /// SCM's error code in the body, when there is one.
    pub(super) fn code(&self) -> Option<i64> {
        error_body(&self.body).map(|(code, _)| code)
    }
}

impl SectigoCa {
    /// An account handle; nothing is sent until a call needs it.
    pub fn new(name: &str, settings: SectigoSettings) -> Result<Self, CaError> {
        let mut options = crate::http::Options::new(name);
        options.proxy = settings.proxy.clone();
        options.timeout = REQUEST_TIMEOUT;
        options.max_body = MAX_BODY;
        options.retry = settings.retry;
        let client = crate::http::Client::new(options).map_err(|error| {
            CaError::new(
                error.class(),
                format!("cannot set up HTTPS for Sectigo account `{name}`"),
            )
            .with_source(error)
        })?;
        let index = settings
            .home
            .as_ref()
            .and_then(|dir| std::fs::read(dir.join(super::INDEX_FILE)).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Ok(Self {
            name: name.to_string(),
            settings,
            client,
            index: std::sync::Mutex::new(index),
            account: tokio::sync::Mutex::new(None),
        })
    }

    /// The three authentication headers. The password header is marked sensitive by the HTTP
    /// layer (`is_secret_header`: never logged or shown).
    fn auth_headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, CaError> {
        let value = |what: &str, text: &str| {
            HeaderValue::from_str(text).map_err(|_| {
                CaError::new(
                    ErrorClass::Auth,
                    format!(
                        "the {what} of `{}` holds characters an HTTP header cannot carry",
                        self.name
                    ),
                )
            })
        };
        Ok(vec![
            (
                HeaderName::from_static("login"),
                value("login", &self.settings.login)?,
            ),
            (
                HeaderName::from_static("password"),
                value("password", self.settings.password.expose().as_str())?,
            ),
            (
                HeaderName::from_static("customeruri"),
                value("customer URI", &self.settings.customer_uri)?,
            ),
        ])
    }

    /// Send a request; the HTTP layer retries it on 5xx, timeouts and 429 when `retry` says it
    /// may be repeated. Answers of any status come back; only a failed exchange is an error.
    pub(super) async fn exchange(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        retry: bool,
    ) -> Result<(Answer, Option<StdDuration>), CaError> {
        let url = format!("{}/{path}", self.settings.url);
        let mut request = crate::http::Request::new(method.clone(), url)
            .header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(
                http::header::ACCEPT,
                HeaderValue::from_static("application/json, */*"),
            )
            .retry(retry);
        for (name, value) in self.auth_headers()? {
            request = request.header(name, value);
        }
        if let Some(value) = body {
            request = request.body(value.to_string());
        }
        let response = self.client.send(request).await.map_err(|error| {
            CaError::new(
                error.class(),
                format!(
                    "Sectigo call {method} /{} for `{}` failed",
                    redact_path(path),
                    self.name
                ),
            )
            .with_source(error)
        })?;
        let retry_after = response.retry_after();
        let total = response
            .headers
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Ok((
            Answer {
                status: response.status,
                body: response.body,
                total,
            },
            retry_after,
        ))
    }

    /// Send a request; a status other than 2xx is an error.
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        retry: bool,
    ) -> Result<Answer, CaError> {
        let (answer, retry_after) = self.exchange(&method, path, body, retry).await?;
        if answer.status.is_success() {
            return Ok(answer);
        }
        Err(self.status_error(&method, path, &answer, retry_after))
    }

    /// The error of a failed answer: classed by SCM's code first (documented codes), then by
    /// the HTTP status.
    pub(super) fn status_error(
        &self,
        method: &Method,
        path: &str,
        answer: &Answer,
        retry_after: Option<StdDuration>,
    ) -> CaError {
        let body = error_body(&answer.body);
        let status = answer.status.as_u16();
        let detail = match &body {
            Some((code, description)) => format!(": {description} ({code})"),
            None => String::new(),
        };
        let what = format!("{method} /{}", redact_path(path));
        let account = &self.name;
        let code = body.as_ref().map(|(code, _)| *code);
        let mut error = if code.is_some_and(|c| CREDENTIAL_CODES.contains(&c)) || status == 401 {
            CaError::new(
                ErrorClass::Auth,
                format!("Sectigo rejected the credentials of `{account}` (HTTP {status}){detail}"),
            )
        } else if code.is_some_and(|c| FORBIDDEN_CODES.contains(&c)) || status == 403 {
            CaError::new(
                ErrorClass::Auth,
                format!("Sectigo refused {what} for `{account}` (HTTP {status}){detail}"),
            )
        } else if status == 429 {
            CaError::new(
                ErrorClass::RateLimited,
                format!("Sectigo rate limit reached for `{account}` (HTTP 429){detail}"),
            )
        } else if status >= 500 {
            CaError::new(
                ErrorClass::Transient,
                format!("Sectigo failed on {what} (HTTP {status}){detail}"),
            )
        } else {
            CaError::new(
                ErrorClass::Rejected,
                format!("Sectigo refused {what} (HTTP {status}){detail}"),
            )
        };
        if status == 429 {
            error.retry_after = Some(
                retry_after
                    .and_then(|d| time::Duration::try_from(d).ok())
                    .unwrap_or(time::Duration::seconds(5)),
            );
        }
        let error = error.with_status(status);
        match body {
            Some((code, description)) => error.with_problem(Problem::Sectigo { code, description }),
            None => error,
        }
    }

    pub(super) async fn get(&self, path: &str) -> Result<Value, CaError> {
        let answer = self.call(Method::GET, path, None, true).await?;
        answer.json(&format!("GET /{}", redact_path(path)))
    }

    pub(super) fn refuse_write(&self, what: &str) -> Result<(), CaError> {
        if self.settings.read_only {
            return Err(CaError::new(
                ErrorClass::Rejected,
                format!(
                    "Sectigo account `{}` is read-only (`mode = \"read-only\"`): refusing to {what}; nothing was sent",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    // ----- reads --------------------------------------------------------------------------------

    /// The certificate profiles ("types") the administrator may use.
    pub async fn profiles(&self) -> Result<Vec<Profile>, CaError> {
        let value = self.get("ssl/v1/types").await?;
        Ok(items(&value)
            .iter()
            .filter_map(Profile::from_json)
            .collect())
    }

    /// The account's custom fields for SSL certificates.
    pub async fn custom_fields(&self) -> Result<Vec<CustomField>, CaError> {
        let value = self.get("ssl/v1/customFields").await?;
        Ok(items(&value)
            .iter()
            .filter_map(CustomField::from_json)
            .collect())
    }

    /// Organizations and their departments.
    pub async fn organizations(&self) -> Result<Vec<Organization>, CaError> {
        let value = self.get("organization/v1").await?;
        Ok(wire::organizations(&value))
    }

    /// Every domain with its validation status: the list (pages of 200), then each domain's
    /// details where the list gives no status.
    pub async fn domains(&self) -> Result<Vec<Domain>, CaError> {
        let mut domains = Vec::new();
        let mut position = 0u64;
        loop {
            let answer = self
                .call(
                    Method::GET,
                    &format!("domain/v1?size={PAGE_SIZE}&position={position}"),
                    None,
                    true,
                )
                .await?;
            let value = answer.json("GET /domain/v1")?;
            let page = items(&value);
            for item in page {
                let Some(mut domain) = Domain::from_json(item) else {
                    continue;
                };
                if domain.validation == "unknown" {
                    if let Some(id) = domain.id {
                        if let Some(full) = self
                            .get(&format!("domain/v1/{id}"))
                            .await
                            .ok()
                            .as_ref()
                            .and_then(Domain::from_json)
                        {
                            domain = full;
                        }
                    }
                }
                domains.push(domain);
            }
            position += page.len() as u64;
            let more = match answer.total {
                Some(total) => position < total,
                None => page.len() as u64 >= PAGE_SIZE,
            };
            if page.is_empty() || !more {
                break;
            }
        }
        Ok(domains)
    }

    /// One certificate record; `None` when the account has none with this id (404, or SCM's
    /// -124 "wrong SSL certificate id").
    pub async fn details(&self, id: u64) -> Result<Option<Details>, CaError> {
        let path = format!("ssl/v1/{id}");
        let (answer, retry_after) = self.exchange(&Method::GET, &path, None, true).await?;
        if answer.status == StatusCode::NOT_FOUND || answer.code() == Some(-124) {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(self.status_error(&Method::GET, &path, &answer, retry_after));
        }
        let value = answer.json("GET /ssl/v1/{id}")?;
        Ok(Details::from_json(&value))
    }

    /// Certificate ids of the list (summaries), optionally filtered (`commonName=...`), pages
    /// of 200 until a short page or `X-Total-Count`.
    pub async fn list_ids(&self, filter: &str) -> Result<Vec<Details>, CaError> {
        let mut out = Vec::new();
        let mut position = 0u64;
        loop {
            let answer = self
                .call(
                    Method::GET,
                    &format!("ssl/v1?size={PAGE_SIZE}&position={position}{filter}"),
                    None,
                    true,
                )
                .await?;
            let value = answer.json("GET /ssl/v1")?;
            let page = items(&value);
            out.extend(page.iter().filter_map(Details::from_json));
            position += page.len() as u64;
            let more = match answer.total {
                Some(total) => position < total,
                None => page.len() as u64 >= PAGE_SIZE,
            };
            if page.is_empty() || !more {
                break;
            }
        }
        Ok(out)
    }

    /// The certificates carrying `tag`'s marker among those named `common_name`, newest first.
    pub(super) async fn find_by_marker(
        &self,
        common_name: &str,
        tag: &str,
        after: Option<u64>,
    ) -> Result<Vec<Details>, CaError> {
        let filter = format!("&commonName={}", encode(common_name));
        let mut ids: Vec<u64> = self
            .list_ids(&filter)
            .await?
            .into_iter()
            .map(|d| d.id)
            .filter(|id| after.is_none_or(|after| *id > after))
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let mut found = Vec::new();
        for id in ids {
            if let Some(details) = self.details(id).await? {
                if wire::has_marker(&details.comments, tag) {
                    found.push(details);
                }
            }
        }
        Ok(found)
    }

    /// The records newer than `old` named `common_name` (renewals of it), oldest first.
    pub(super) async fn newer_records(
        &self,
        common_name: &str,
        old: u64,
    ) -> Result<Vec<Details>, CaError> {
        let filter = format!("&commonName={}", encode(common_name));
        let mut ids: Vec<u64> = self
            .list_ids(&filter)
            .await?
            .into_iter()
            .map(|d| d.id)
            .filter(|id| *id > old)
            .collect();
        ids.sort_unstable();
        let mut found = Vec::new();
        for id in ids {
            if let Some(details) = self.details(id).await? {
                found.push(details);
            }
        }
        Ok(found)
    }

    /// Whether the id is known to the list at all (cheap check for `ca test`).
    pub(super) async fn can_list(&self) -> Result<(), CaError> {
        self.call(Method::GET, "ssl/v1?size=1&position=0", None, true)
            .await
            .map(|_| ())
    }
}

/// Percent-encode a query value.
pub(super) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'*') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A path for messages: the query dropped.
fn redact_path(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// The id of an SCM certificate record.
pub(super) fn ssl_id(order_id: &str) -> Result<u64, CaError> {
    order_id.trim().parse::<u64>().map_err(|_| {
        CaError::new(
            ErrorClass::Rejected,
            format!("`{order_id}` is not a Sectigo certificate id (sslId)"),
        )
    })
}

/// An integer field of an answer, for ids.
pub(super) fn answer_id(value: &Value) -> Option<u64> {
    int(value, "sslId").or_else(|| int(value, "id"))
}
