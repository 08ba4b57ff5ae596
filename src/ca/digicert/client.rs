//! The HTTP client side of `DigicertCa`: requests, error mapping, the read-only guard, the
//! seen-certificate cache, and the account, product, domain and order reads built on them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use serde_json::Value;
use time::Duration;

use super::wire::{
    encode, int, list, map_status, text, DomainInfo, OrderInfo, OrganizationInfo, ProductInfo,
    RandomValue, UserInfo,
};
use super::{Cache, DigicertCa, DigicertSettings, Seen, MAX_BODY, PAGE_LIMIT, REQUEST_TIMEOUT};
use crate::ca::{CaError, ErrorClass, Problem};
use crate::observed::{DcvStatus, OrderStatus, OrderView};

impl DigicertCa {
    /// An account handle; nothing is sent until a call needs it.
    pub fn open(name: &str, settings: DigicertSettings) -> Result<Self, CaError> {
        let mut options = crate::http::Options::new(name);
        options.proxy = settings.proxy.clone();
        options.timeout = REQUEST_TIMEOUT;
        options.max_body = MAX_BODY;
        options.retry = settings.retry;
        options.limits = settings.limits.clone();
        options.rate_limit_wait = settings.rate_limit_wait;
        // After a 429 without `Retry-After`: the shortest window first (5 s at CertCentral).
        options.rate_limit_pause = settings
            .limits
            .iter()
            .map(|window| window.per)
            .min()
            .unwrap_or(StdDuration::from_secs(5));
        let client = crate::http::Client::new(options).map_err(|error| {
            CaError::new(
                error.class(),
                format!("cannot set up HTTPS for DigiCert account `{name}`"),
            )
            .with_source(error)
        })?;
        let cache = settings
            .cache_dir
            .as_ref()
            .and_then(|dir| std::fs::read(dir.join("cache.json")).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Ok(Self {
            name: name.to_string(),
            settings,
            client,
            cache: Mutex::new(cache),
            admin: tokio::sync::OnceCell::new(),
            cache_saved: Mutex::new(None),
            cache_dirty: std::sync::atomic::AtomicBool::new(false),
            listed: Mutex::new(None),
        })
    }

    pub fn is_read_only(&self) -> bool {
        self.settings.read_only
    }

    /// Send a request; the HTTP layer retries it on 5xx, timeouts and 429 when `retry` says it
    /// may be repeated (reads, and writes that are safe to repeat). Answers of any status come
    /// back; only a failed exchange is an error.
    async fn exchange(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        retry: bool,
    ) -> Result<(Answer, Option<StdDuration>), CaError> {
        let url = format!("{}{path}", self.settings.url);
        let key = HeaderValue::from_str(self.settings.api_key.expose().as_str()).map_err(|_| {
            CaError::new(
                ErrorClass::Auth,
                format!(
                    "the API key of `{}` holds characters an HTTP header cannot carry",
                    self.name
                ),
            )
        })?;
        let mut request = crate::http::Request::new(method.clone(), url)
            .header(http::HeaderName::from_static("x-dc-devkey"), key)
            .header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(
                http::header::ACCEPT,
                HeaderValue::from_static("application/json, */*"),
            )
            .retry(retry);
        if let Some(value) = body {
            request = request.body(value.to_string());
        }
        let response = self.client.send(request).await.map_err(|error| {
            CaError::new(
                error.class(),
                format!(
                    "DigiCert call {method} /{} for `{}` failed",
                    redact_path(path),
                    self.name
                ),
            )
            .with_source(error)
        })?;
        let retry_after = response.retry_after();
        Ok((
            Answer {
                status: response.status,
                body: response.body,
            },
            retry_after,
        ))
    }

    /// Send a request (see `exchange`); a status other than 2xx is an error.
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        retry: bool,
    ) -> Result<Answer, CaError> {
        self.call_accepting(method, path, body, retry, false).await
    }

    /// `call`; with `accept_404`, a 404 is an answer rather than an error.
    async fn call_accepting(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        retry: bool,
        accept_404: bool,
    ) -> Result<Answer, CaError> {
        let (answer, retry_after) = self.exchange(&method, path, body, retry).await?;
        let status = answer.status;
        if status.is_success() || (accept_404 && status == StatusCode::NOT_FOUND) {
            return Ok(answer);
        }
        Err(self.status_error(&method, path, &answer, retry_after))
    }

    fn status_error(
        &self,
        method: &Method,
        path: &str,
        answer: &Answer,
        retry_after: Option<StdDuration>,
    ) -> CaError {
        let problem = Problem::from_digicert_json(&answer.body);
        let described = problem.describe();
        let detail = if described.is_empty() {
            String::new()
        } else {
            format!(": {described}")
        };
        let status = answer.status.as_u16();
        let what = format!("{method} /{}", redact_path(path));
        let account = &self.name;
        let mut error = match status {
            401 => CaError::new(
                ErrorClass::Auth,
                format!("DigiCert rejected the API key of `{account}` (HTTP 401){detail}"),
            ),
            403 if problem.has_digicert_code(crate::ca::problem::INVALID_KEY_CODE) => CaError::new(
                ErrorClass::Auth,
                format!("DigiCert rejected the API key of `{account}` (HTTP 403){detail}"),
            ),
            403 => CaError::new(
                ErrorClass::Auth,
                format!("DigiCert refused {what} for `{account}` (HTTP 403){detail}"),
            ),
            429 => CaError::new(
                ErrorClass::RateLimited,
                format!("DigiCert rate limit reached for `{account}` (HTTP 429){detail}"),
            ),
            code if code >= 500 => CaError::new(
                ErrorClass::Transient,
                format!("DigiCert failed on {what} (HTTP {code}){detail}"),
            ),
            code => CaError::new(
                ErrorClass::Rejected,
                format!("DigiCert refused {what} (HTTP {code}){detail}"),
            ),
        };
        if status == 429 {
            error.retry_after = Some(
                retry_after
                    .and_then(|d| Duration::try_from(d).ok())
                    .unwrap_or(Duration::seconds(5)),
            );
        }
        error.with_status(status).with_problem(problem)
    }

    pub(super) async fn get(&self, path: &str) -> Result<Value, CaError> {
        let answer = self.call(Method::GET, path, None, true).await?;
        answer.json(&format!("GET /{}", redact_path(path)))
    }

    /// `GET`, with 404 as `None`.
    pub(super) async fn get_optional(&self, path: &str) -> Result<Option<Value>, CaError> {
        let answer = self
            .call_accepting(Method::GET, path, None, true, true)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(answer.json(&format!("GET /{}", redact_path(path)))?))
    }

    pub(super) fn refuse_write(&self, what: &str) -> Result<(), CaError> {
        if self.settings.read_only {
            return Err(CaError::new(
                ErrorClass::Rejected,
                format!(
                    "DigiCert account `{}` is read-only (`mode = \"read-only\"`): refusing to {what}; nothing was sent",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn with_cache<T>(&self, change: impl FnOnce(&mut Cache) -> T) -> T {
        let mut cache = match self.cache.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(&mut cache)
    }

    /// Write the cache unless it was written less than a second ago (then when the account is
    /// dropped, or by the next write): an import of 10,000 downloads rewrote the whole file,
    /// fsynced, after every one of them.
    pub(super) fn save_cache_soon(&self) {
        let now = std::time::Instant::now();
        let recent = {
            let mut saved = match self.cache_saved.lock() {
                Ok(saved) => saved,
                Err(poisoned) => poisoned.into_inner(),
            };
            let recent = saved.is_some_and(|at| now.duration_since(at) < StdDuration::from_secs(1));
            if !recent {
                *saved = Some(now);
            }
            recent
        };
        if recent {
            self.cache_dirty
                .store(true, std::sync::atomic::Ordering::Relaxed);
        } else {
            self.save_cache();
        }
    }

    /// Write the cache (best effort: a lost cache only costs requests).
    pub(super) fn save_cache(&self) {
        self.cache_dirty
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let Some(dir) = &self.settings.cache_dir else {
            return;
        };
        let bytes = self.with_cache(|cache| serde_json::to_vec(cache).unwrap_or_default());
        let result = crate::atomic_file::create_dir_all(dir, 0o700)
            .and_then(|()| crate::atomic_file::write(&dir.join("cache.json"), &bytes, 0o600));
        if let Err(error) = result {
            tracing::debug!(account = %self.name, %error, "cannot write the DigiCert cache");
        }
    }

    /// `PUT /order/certificate/{id}/dcv-random-value`: the order's current DCV random value
    /// (CertCentral answers the valid one, or a new one when it expired), remembered in the
    /// cache. `None` where the account is read-only or the endpoint does not exist (404).
    pub(super) async fn order_random_value(&self, id: u64) -> Result<Option<String>, CaError> {
        if self.settings.read_only {
            return Ok(None);
        }
        let path = format!("order/certificate/{id}/dcv-random-value");
        let answer = self
            .call_accepting(Method::PUT, &path, None, true, true)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let value = answer.json(&format!("PUT /{path}"))?;
        let Some(random) = RandomValue::from_json(&value) else {
            return Err(CaError::new(
                ErrorClass::Protocol,
                format!("DigiCert answered PUT /{path} without `dcv_random_value`"),
            ));
        };
        self.with_cache(|cache| cache.tokens.insert(id, random.value.clone()));
        self.save_cache();
        Ok(Some(random.value))
    }

    /// `GET /user/me`: the user behind the key.
    pub async fn user(&self) -> Result<UserInfo, CaError> {
        let value = self.get("user/me").await?;
        Ok(UserInfo::from_json(&value))
    }

    pub(super) async fn is_admin(&self) -> bool {
        *self
            .admin
            .get_or_init(|| async { self.user().await.map(|u| u.is_admin()).unwrap_or(false) })
            .await
    }

    /// Every product enabled for the account (summary fields only).
    pub async fn products(&self) -> Result<Vec<ProductInfo>, CaError> {
        let value = self.get("product").await?;
        Ok(list(&value, "products")
            .iter()
            .filter_map(ProductInfo::from_json)
            .collect())
    }

    /// One product's details; `None` when the account has no such product.
    pub async fn product(&self, name_id: &str) -> Result<Option<ProductInfo>, CaError> {
        Ok(self
            .get_optional(&format!("product/{}", encode(name_id)))
            .await?
            .as_ref()
            .and_then(ProductInfo::from_json))
    }

    /// Every organization with its validations.
    pub async fn organizations(&self) -> Result<Vec<OrganizationInfo>, CaError> {
        let value = self.get("organization?include_validation=true").await?;
        Ok(list(&value, "organizations")
            .iter()
            .filter_map(OrganizationInfo::from_json)
            .collect())
    }

    /// Every domain with its validation status (pages of 1000).
    pub async fn domains(&self) -> Result<Vec<DomainInfo>, CaError> {
        let mut domains = Vec::new();
        let mut offset = 0;
        loop {
            let value = self
                .get(&format!(
                    "domain?include_validation=true&limit={PAGE_LIMIT}&offset={offset}"
                ))
                .await?;
            let page = list(&value, "domains");
            domains.extend(page.iter().filter_map(DomainInfo::from_json));
            let total = value.get("page").and_then(|p| int(p, "total")).unwrap_or(0);
            offset += page.len() as u64;
            if page.is_empty() || offset >= total {
                break;
            }
        }
        Ok(domains)
    }

    /// Every order of the account (pages of 1000), optionally with `filters[...]`.
    pub async fn list_orders(&self, filters: &[(&str, &str)]) -> Result<Vec<OrderInfo>, CaError> {
        let mut orders = Vec::new();
        let mut offset = 0;
        let mut query = String::new();
        for (key, value) in filters {
            query.push_str(&format!("&filters%5B{}%5D={}", encode(key), encode(value)));
        }
        loop {
            let value = self
                .get(&format!(
                    "order/certificate?limit={PAGE_LIMIT}&offset={offset}{query}"
                ))
                .await?;
            let page = list(&value, "orders");
            orders.extend(page.iter().filter_map(OrderInfo::from_json));
            let total = value.get("page").and_then(|p| int(p, "total")).unwrap_or(0);
            offset += page.len() as u64;
            if page.is_empty() || offset >= total {
                break;
            }
        }
        Ok(orders)
    }

    /// One order's details; `None` when the account has no such order.
    pub async fn order(&self, id: u64) -> Result<Option<OrderInfo>, CaError> {
        let value = self
            .get_optional(&format!("order/certificate/{id}"))
            .await?;
        let info = value.as_ref().and_then(OrderInfo::from_json);
        if let Some(info) = &info {
            self.remember(info);
        }
        Ok(info)
    }

    pub(super) fn remember(&self, info: &OrderInfo) {
        self.with_cache(|cache| {
            if let Some(value) = &info.dcv_random_value {
                cache.tokens.insert(info.id, value.clone());
            }
            if info.serial.is_some() {
                cache.orders.insert(
                    info.id,
                    Seen {
                        certificate_id: info.certificate_id,
                        serial: info.serial.clone(),
                    },
                );
            }
        });
    }

    /// The orders carrying `tag` as `alternative_order_id` (404: none).
    async fn orders_by_tag(&self, tag: &str) -> Result<Vec<(u64, String)>, CaError> {
        let Some(value) = self
            .get_optional(&format!("order/alternate/{}", encode(tag)))
            .await?
        else {
            return Ok(Vec::new());
        };
        let mut found: Vec<(u64, String)> = list(&value, "orders")
            .iter()
            .filter_map(|o| {
                Some((
                    int(o, "order_id").or_else(|| int(o, "id"))?,
                    text(o, "status").unwrap_or_default(),
                ))
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// The order placed for `tag`, preferring one that is not canceled or rejected.
    pub(super) async fn order_for_tag(&self, tag: &str) -> Result<Option<u64>, CaError> {
        let found = self.orders_by_tag(tag).await?;
        let live = found
            .iter()
            .find(|(_, status)| !matches!(status.as_str(), "canceled" | "rejected"));
        Ok(live.or(found.first()).map(|(id, _)| *id))
    }

    /// The view of a detailed order; the DCV status of each name while it is pending.
    pub(super) fn view(&self, info: &OrderInfo, domains: Option<&[DomainInfo]>) -> OrderView {
        let status = map_status(&info.status);
        let dcv = match (status, domains) {
            (OrderStatus::Pending, Some(domains)) => {
                let method = info.dcv_method.clone().unwrap_or_else(|| "email".into());
                info.dns_names
                    .iter()
                    .map(|name| DcvStatus {
                        domain: name.clone(),
                        method: method.clone(),
                        status: if domains
                            .iter()
                            .any(|d| d.covers(name) && d.dcv_status == "complete")
                        {
                            "valid".to_string()
                        } else {
                            "pending".to_string()
                        },
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        OrderView {
            order_id: info.id.to_string(),
            status,
            serial: info.serial.clone(),
            not_after: info.valid_till,
            dcv,
            plan_until: info.order_valid_till,
        }
    }

    /// Detailed views of `ids` (pending orders get per-domain DCV status).
    pub(super) async fn detailed(
        &self,
        ids: &[u64],
    ) -> Result<BTreeMap<u64, Option<OrderInfo>>, CaError> {
        let mut out = BTreeMap::new();
        for id in ids {
            out.insert(*id, self.order(*id).await?);
        }
        Ok(out)
    }

    pub(super) async fn views_of(
        &self,
        infos: &BTreeMap<u64, Option<OrderInfo>>,
    ) -> Result<BTreeMap<u64, OrderView>, CaError> {
        let pending = infos
            .values()
            .flatten()
            .any(|i| map_status(&i.status) == OrderStatus::Pending);
        let domains = if pending {
            // Per-domain status is shown in the plan; without the domains role it is omitted.
            match self.domains().await {
                Ok(domains) => Some(domains),
                Err(error) if error.class == ErrorClass::Auth => None,
                Err(error) => return Err(error),
            }
        } else {
            None
        };
        Ok(infos
            .iter()
            .filter_map(|(id, info)| {
                info.as_ref()
                    .map(|info| (*id, self.view(info, domains.as_deref())))
            })
            .collect())
    }

    /// The current view of order `id` (details).
    pub(super) async fn current_view(&self, id: u64) -> Result<OrderView, CaError> {
        let infos = self.detailed(&[id]).await?;
        self.views_of(&infos).await?.remove(&id).ok_or_else(|| {
            CaError::new(
                ErrorClass::Rejected,
                format!("DigiCert account `{}` has no order {id}", self.name),
            )
        })
    }
}

/// A parsed answer.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) body: Bytes,
}

impl Answer {
    pub(super) fn json(&self, what: &str) -> Result<Value, CaError> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!("DigiCert answered {what} with a body that is not JSON"),
            )
            .with_source(error)
        })
    }
}

/// Whether an order's detail lists a live reissue request certform sent under `tag`.
pub(super) fn has_reissue_request(order: &Value, tag: &str) -> bool {
    let comments = reissue_comments(tag);
    list(order, "requests").iter().any(|request| {
        text(request, "type").as_deref() == Some("reissue")
            && text(request, "comments").as_deref() == Some(comments.as_str())
            && text(request, "status").as_deref() != Some("rejected")
    })
}

/// The id of a revoke request on an order's detail that still awaits approval.
pub(super) fn pending_revoke_request(order: &Value) -> Option<u64> {
    list(order, "requests")
        .iter()
        .find(|request| {
            text(request, "type").as_deref() == Some("revoke")
                && text(request, "status").as_deref() == Some("pending")
        })
        .and_then(|request| int(request, "id"))
}

/// The comments of a reissue request: how a reissue is found again after a crash.
pub(super) fn reissue_comments(tag: &str) -> String {
    format!("certform {tag}")
}

/// A path for messages: query strings dropped (they hold nothing secret, but may be long).
fn redact_path(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}
