//! Sectigo Certificate Manager (SCM) accounts, spoken through its REST API with header
//! authentication (`login`, `password`, `customerUri`).
//!
//! One `SectigoCa` is one SCM administrator on one customer. What it relies on, from the
//! references (`../shared/reference/sectigo.md`, checked by `sectigo-check.md`, which wins):
//!
//! - **No duplicate requests.** SCM stores no client tag and no enroll is idempotent. Before
//!   an enroll, renewal or replace is sent, its intent (tag, common name, the record it renews
//!   or replaces and that record's serial) is written to an index beside the keys
//!   (`<keys_dir>/sectigo/<account>/intents.json`, atomically); if that write fails nothing is
//!   sent. Every enrollment carries `certform <tag>` in its `comments`. `refresh` by tag reads
//!   the intent and finds the request: by the id recorded after the answer, else by listing
//!   the records of that common name and matching the marker (renewals, which carry no
//!   comments, by the renewed record's newer sibling). No intent: nothing was ever sent.
//! - **Statuses.** `Requested` (awaiting approval), `Approved`/`SAApproved`, `Applied` and
//!   `Init` are in progress; `Issued`; `Declined` is canceled; `Rejected`/`Invalid` rejected;
//!   `Revoked`, `Expired`; `Replaced` is a superseded record. Collect answers -183 ("not
//!   collectable"), -109 or -1400 while the certificate is not ready: `Fetched::NotYet`.
//! - **Approval.** A request that waits for approval is approved by certform where the
//!   administrator may (`approve`); where it may not, it stays "awaiting approval".
//! - **Account data** (profiles, custom fields, organizations, domains) is cached in
//!   `<keys_dir>/sectigo/<account>/account.json` with its age; `ca info --refresh` or an age
//!   over a week reads it again, and plan re-reads it once when a certificate names something
//!   the cache does not hold.
//! - **HTTP** goes through `crate::http` (proxy, retries of reads, redaction: the `password`
//!   header is secret). Writes are sent once.
//! - **Read-only accounts** refuse every write before a request leaves the process.

mod account;
mod client;
pub(crate) mod open;
pub mod settings;
pub mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ca::{
    AccountOrder, CaError, Capabilities, CertificateAuthority, Challenge, ChallengeKind,
    Credentials, ErrorClass, Fetched, IssuedCertificate, OrderQuery, OrderRequest, RevokeOutcome,
};
use crate::observed::{DcvStatus, OrderStatus, OrderView};
use crate::serial::Serial;
use crate::spec::{CertificateSpec, RevocationReason, Validity};
use account::AccountData;
use client::{answer_id, ssl_id};
use settings::{Options, Reference};
use wire::{map_status, Details, Profile};

pub use crate::secrets::Secret;

/// Bound on one HTTP exchange.
const REQUEST_TIMEOUT: StdDuration = StdDuration::from_secs(60);
/// Largest answer body read.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Largest page the list endpoints serve.
const PAGE_SIZE: u64 = 200;
/// The intent index file.
const INDEX_FILE: &str = "intents.json";

/// What Sectigo can do.
pub const CAPABILITIES: Capabilities = Capabilities {
    reissue_same_order: true,
    cancel: true,
    revoke: true,
    duplicates: crate::capabilities::DuplicatePrevention::TagAtCa,
    cancel_refunds: false,
    // The lifetime is the profile's term (`term`), not `validity`.
    honours_validity: false,
    max_orders_per_run: None,
    // The profile's terms bound the lifetime (`ca info` lists them); no date table here.
    max_lifetime: &[],
    // Rate limits undocumented (reference/sectigo.md): a conservative four.
    parallel_certificates: 4,
};

/// An SCM account's settings, resolved from config (the password already read).
#[derive(Clone)]
pub struct SectigoSettings {
    /// API base URL without a trailing `/`.
    pub url: String,
    pub customer_uri: String,
    pub login: String,
    pub password: Secret,
    pub read_only: bool,
    pub retry: crate::http::RetryPolicy,
    /// `<keys_dir>/sectigo/<account>`: intents and the account cache; `None` keeps them in
    /// memory only.
    pub home: Option<PathBuf>,
    pub proxy: Option<String>,
    /// The run's clock (ages of the account cache).
    pub now: time::OffsetDateTime,
}

impl fmt::Debug for SectigoSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SectigoSettings")
            .field("url", &self.url)
            .field("customer_uri", &self.customer_uri)
            .field("login", &self.login)
            .field("password", &self.password)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl SectigoSettings {
    pub fn new(
        url: impl Into<String>,
        customer_uri: impl Into<String>,
        login: impl Into<String>,
        password: Secret,
    ) -> Self {
        Self {
            url: url.into().trim_end_matches('/').to_string(),
            customer_uri: customer_uri.into(),
            login: login.into(),
            password,
            read_only: false,
            retry: crate::http::RetryPolicy::from_env(),
            home: None,
            proxy: None,
            now: time::OffsetDateTime::now_utc(),
        }
    }
}

/// What certform asked of SCM under one tag, written before the request is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Intent {
    common_name: String,
    /// The record a renewal renews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    renewal_of: Option<u64>,
    /// The record a replace reissues, and its serial before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replace_of: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    serial_before: Option<Serial>,
    /// The record the request made, once SCM answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ssl_id: Option<u64>,
}

/// One SCM account.
pub struct SectigoCa {
    name: String,
    settings: SectigoSettings,
    client: crate::http::Client,
    index: Mutex<BTreeMap<String, Intent>>,
    /// The account data, once read (from the cache file or the API).
    account: tokio::sync::Mutex<Option<AccountData>>,
}

impl fmt::Debug for SectigoCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SectigoCa")
            .field("name", &self.name)
            .field("url", &self.settings.url)
            .field("read_only", &self.settings.read_only)
            .finish_non_exhaustive()
    }
}

impl SectigoCa {
    pub fn is_read_only(&self) -> bool {
        self.settings.read_only
    }

    // ----- intents ------------------------------------------------------------------------------

    fn intent(&self, tag: &str) -> Option<Intent> {
        self.with_index(|index| index.get(tag).cloned())
    }

    fn with_index<T>(&self, change: impl FnOnce(&mut BTreeMap<String, Intent>) -> T) -> T {
        let mut index = match self.index.lock() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(&mut index)
    }

    /// Write the index; an error when it cannot be written (the request is then not sent).
    fn save_index(&self) -> Result<(), CaError> {
        let Some(dir) = &self.settings.home else {
            return Ok(());
        };
        let bytes = self.with_index(|index| serde_json::to_vec_pretty(index).unwrap_or_default());
        crate::atomic_file::create_dir_all(dir, 0o700)
            .and_then(|()| crate::atomic_file::write(&dir.join(INDEX_FILE), &bytes, 0o600))
            .map_err(|error| {
                CaError::new(
                    ErrorClass::Transient,
                    format!(
                        "cannot record the request intent of Sectigo account `{}`; nothing was sent",
                        self.name
                    ),
                )
                .with_source(error)
            })
    }

    /// Record `intent` under `tag` before the request is sent.
    fn record_intent(&self, tag: &str, intent: Intent) -> Result<(), CaError> {
        self.with_index(|index| index.insert(tag.to_string(), intent));
        self.save_index()
    }

    /// Remember the record the request under `tag` made (best effort: the marker finds it).
    fn record_answer(&self, tag: &str, id: u64) {
        self.with_index(|index| {
            if let Some(intent) = index.get_mut(tag) {
                intent.ssl_id = Some(id);
            }
        });
        if let Err(error) = self.save_index() {
            tracing::warn!(account = %self.name, %error, "cannot record the Sectigo request id");
        }
    }

    /// The record made under `tag`, found again: by the id recorded, else by the marker in
    /// the comments (enrollments) or as the renewed record's newer sibling (renewals).
    async fn find_tag(&self, tag: &str) -> Result<Option<Details>, CaError> {
        let Some(intent) = self.intent(tag) else {
            // No intent: certform never sent a request under this tag from this keys_dir.
            return Ok(None);
        };
        if let Some(id) = intent.ssl_id {
            return self.details(id).await;
        }
        if intent.replace_of.is_some() {
            return Ok(None);
        }
        let found = match intent.renewal_of {
            None => self
                .find_by_marker(&intent.common_name, tag, None)
                .await?
                .into_iter()
                .next(),
            Some(old) => {
                let renewed = self.details(old).await?.is_some_and(|d| d.renewed);
                let claimed: Vec<u64> = self.with_index(|index| {
                    index.values().filter_map(|i| i.ssl_id).collect::<Vec<_>>()
                });
                let mut candidates = self.newer_records(&intent.common_name, old).await?;
                candidates.retain(|d| !claimed.contains(&d.id));
                match candidates
                    .iter()
                    .position(|d| wire::has_marker(&d.comments, tag))
                {
                    Some(at) => Some(candidates.swap_remove(at)),
                    None if renewed => candidates.into_iter().next(),
                    None => None,
                }
            }
        };
        if let Some(details) = &found {
            tracing::info!(account = %self.name, ssl_id = details.id, "a request sent earlier under this tag reached Sectigo; adopting it");
            self.record_answer(tag, details.id);
        }
        Ok(found)
    }

    // ----- views --------------------------------------------------------------------------------

    fn view(&self, details: &Details) -> OrderView {
        OrderView {
            order_id: details.id.to_string(),
            status: map_status(&details.status),
            serial: details
                .serial
                .clone()
                .filter(|_| !map_status(&details.status).is_in_progress()),
            not_after: details.expires,
            dcv: Vec::new(),
            // SCM has no multi-year plan covering reissues: a renewal is `renewById`.
            plan_until: None,
        }
    }

    /// The current view of record `id`, with each name's DCV status while it is pending.
    async fn current_view(&self, id: u64) -> Result<OrderView, CaError> {
        let details = self.details(id).await?.ok_or_else(|| {
            CaError::new(
                ErrorClass::Rejected,
                format!("Sectigo account `{}` has no certificate {id}", self.name),
            )
        })?;
        self.view_with_dcv(&details).await
    }

    async fn view_with_dcv(&self, details: &Details) -> Result<OrderView, CaError> {
        let mut view = self.view(details);
        if wire::awaits_approval(&details.status) {
            // Shown per name where pending orders show what they wait for.
            view.dcv = std::iter::once(&details.common_name)
                .chain(details.names.iter().filter(|n| **n != details.common_name))
                .filter(|name| !name.is_empty())
                .map(|name| DcvStatus {
                    domain: name.clone(),
                    method: "SCM approval".to_string(),
                    status: "awaiting approval".to_string(),
                })
                .collect();
        } else if view.status == OrderStatus::Pending {
            if let Ok(entries) = self.dcv_entries(details.id).await {
                view.dcv = entries
                    .iter()
                    .map(|entry| DcvStatus {
                        domain: entry.domain.clone(),
                        method: entry.mode.clone().unwrap_or_default().to_ascii_lowercase(),
                        status: if wire::dcv_done(&entry.status) {
                            "valid".to_string()
                        } else {
                            "pending".to_string()
                        },
                    })
                    .collect();
            }
        }
        Ok(view)
    }

    /// The per-certificate DCV entries (`GET /ssl/v1/{id}/dcv`); none when SCM has none.
    async fn dcv_entries(&self, id: u64) -> Result<Vec<wire::DcvEntry>, CaError> {
        let path = format!("ssl/v1/{id}/dcv");
        let (answer, retry_after) = self.exchange(&Method::GET, &path, None, true).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !answer.status.is_success() {
            return Err(self.status_error(&Method::GET, &path, &answer, retry_after));
        }
        Ok(wire::dcv_entries(&answer.json("the DCV details")?))
    }

    // ----- writes -------------------------------------------------------------------------------

    /// Approve a request that waits for approval, where the administrator may; `false` when
    /// SCM refused (the request keeps waiting for someone who may).
    async fn approve(&self, id: u64) -> Result<bool, CaError> {
        let body = json!({ "message": "approved by certform" });
        match self
            .call(
                Method::POST,
                &format!("ssl/v1/approve/{id}"),
                Some(&body),
                false,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if matches!(error.class, ErrorClass::Auth | ErrorClass::Rejected) => {
                tracing::info!(account = %self.name, ssl_id = id, %error, "the request awaits approval by an SCM administrator");
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// Approve `details` when it waits for approval; the record as it is afterwards.
    async fn approve_if_requested(&self, details: Details) -> Result<Details, CaError> {
        if !wire::awaits_approval(&details.status) || self.settings.read_only {
            return Ok(details);
        }
        if self.approve(details.id).await? {
            if let Some(after) = self.details(details.id).await? {
                return Ok(after);
            }
        }
        Ok(details)
    }

    /// The profile, organization and term of a request, resolved against the account.
    async fn resolve(
        &self,
        options: &Options,
        validity: Validity,
    ) -> Result<(Profile, u64, u32), CaError> {
        let data = self.account_data(false).await?;
        let data = match (
            data.profile(options.profile.as_ref()),
            data.organization(options.organization.as_ref()),
        ) {
            (Some(_), Some(_)) => data,
            // Not in the cache: read the account again once.
            _ => self.account_data(true).await?,
        };
        let profile = data
            .profile(options.profile.as_ref())
            .cloned()
            .ok_or_else(|| {
                CaError::new(
                    ErrorClass::Rejected,
                    format!(
                        "Sectigo account `{}` has no profile {}",
                        self.name,
                        options
                            .profile
                            .as_ref()
                            .map(Reference::describe)
                            .unwrap_or_else(|| "(none given)".to_string())
                    ),
                )
            })?;
        let organization = data
            .organization(options.organization.as_ref())
            .map(|o| o.id)
            .ok_or_else(|| {
                CaError::new(
                    ErrorClass::Rejected,
                    format!(
                        "Sectigo account `{}` has no organization {}",
                        self.name,
                        options
                            .organization
                            .as_ref()
                            .map(Reference::describe)
                            .unwrap_or_else(|| "(none given)".to_string())
                    ),
                )
            })?;
        let profile = profile.profile();
        let term = term_for(options.term, validity, &profile).map_err(|message| {
            CaError::new(ErrorClass::Rejected, format!("{message} (`{}`)", self.name))
        })?;
        Ok((profile, organization, term))
    }

    /// The enroll body of a request.
    fn enroll_body(
        &self,
        request: &OrderRequest,
        profile: u64,
        organization: u64,
        term: u32,
    ) -> Value {
        let options = Options::of(&request.options);
        let sans: Vec<&str> = request
            .sans
            .iter()
            .map(String::as_str)
            .filter(|name| *name != request.common_name)
            .collect();
        let mut body = json!({
            "orgId": organization,
            "csr": wire::csr_pem(&request.csr_der),
            "certType": profile,
            "term": term,
            "comments": wire::comments(options.comments.as_deref(), &request.tag),
        });
        if !sans.is_empty() {
            body["subjAltNames"] = json!(sans.join(","));
        }
        if !options.external_requesters.is_empty() {
            body["externalRequester"] = json!(options.external_requesters.join(", "));
        }
        if !options.custom_fields.is_empty() {
            body["customFields"] = Value::Array(
                options
                    .custom_fields
                    .iter()
                    .map(|(name, value)| json!({ "name": name, "value": value }))
                    .collect(),
            );
        }
        self.add_dcv(&mut body, request);
        body
    }

    /// `dcvMode`/`dcvEmail` from the certificate's DCV rules.
    fn add_dcv(&self, body: &mut Value, request: &OrderRequest) {
        let options = Options::of(&request.options);
        if let Some(mode) = options.dcv_mode {
            body["dcvMode"] = json!(mode.as_str());
        }
        if options.dcv_mode == Some(settings::DcvMode::Email) {
            // SCM needs the address for EMAIL (-7 without it): the one configured, else the
            // first constructed address of the common name (`admin@<name>`).
            let email = request
                .dcv
                .iter()
                .find_map(|d| d.approver_email.clone())
                .unwrap_or_else(|| {
                    format!(
                        "{}@{}",
                        crate::spec::CONSTRUCTED_APPROVERS[0],
                        request.common_name.trim_start_matches("*.")
                    )
                });
            body["dcvEmail"] = json!(email);
        }
    }

    /// Plan-time checks of the certificates ordered here, every problem at once.
    pub async fn check_specs(&self, specs: &[&CertificateSpec]) -> Result<(), CaError> {
        if specs.is_empty() {
            return Ok(());
        }
        let mut data = self.account_data(false).await?;
        if !account::problems(&self.name, &data, specs).is_empty() && !data.fresh {
            // The cache may predate a change at SCM: read the account again once.
            data = self.account_data(true).await?;
        }
        let problems = account::problems(&self.name, &data, specs);
        if problems.is_empty() {
            return Ok(());
        }
        Err(CaError::new(
            ErrorClass::Rejected,
            format!(
                "configuration does not fit Sectigo account `{}`:\n  {}",
                self.name,
                problems.join("\n  ")
            ),
        ))
    }
}

/// The term of a request: `term` when given (it must be one of the profile's), else the
/// validity in days when the profile offers it, else the profile's shortest term.
pub fn term_for(term: Option<u32>, validity: Validity, profile: &Profile) -> Result<u32, String> {
    let terms = &profile.terms;
    let describe = || {
        terms
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(term) = term {
        if terms.is_empty() || terms.contains(&term) {
            return Ok(term);
        }
        return Err(format!(
            "profile `{}` does not offer a term of {term} days; its terms: {}",
            profile.name,
            describe()
        ));
    }
    let days = match validity {
        Validity::Days(days) => Some(days),
        Validity::Years(years) => years.checked_mul(365),
        Validity::Until(_) => None,
    };
    if let Some(days) = days.filter(|d| terms.contains(d)) {
        return Ok(days);
    }
    terms
        .iter()
        .min()
        .copied()
        .ok_or_else(|| format!("profile `{}` lists no terms: set `term`", profile.name))
}

#[async_trait]
impl CertificateAuthority for SectigoCa {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "sectigo"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn check_credentials(&self) -> Result<Credentials, CaError> {
        self.check_access().await
    }

    async fn account_info(&self) -> Result<crate::ca::AccountInfo, CaError> {
        self.read_account_info(false).await
    }

    async fn account_info_refreshed(&self) -> Result<crate::ca::AccountInfo, CaError> {
        self.read_account_info(true).await
    }

    async fn list_orders(&self) -> Result<Vec<AccountOrder>, CaError> {
        self.account_orders().await
    }

    async fn check(&self, specs: &[&CertificateSpec]) -> Result<(), CaError> {
        self.check_specs(specs).await
    }

    async fn refresh(&self, queries: &[OrderQuery]) -> Result<Vec<Option<OrderView>>, CaError> {
        let mut out = Vec::with_capacity(queries.len());
        for query in queries {
            let details = match (&query.order_id, &query.tag) {
                (Some(id), _) => self.details(ssl_id(id)?).await?,
                (None, Some(tag)) => self.find_tag(tag).await?,
                (None, None) => None,
            };
            out.push(match details {
                Some(details) => Some(self.view_with_dcv(&details).await?),
                None => None,
            });
        }
        Ok(out)
    }

    async fn place_order(&self, request: &OrderRequest) -> Result<OrderView, CaError> {
        self.refuse_write("enroll a certificate")?;
        let options = Options::of(&request.options);
        let renewal_of = match &request.renewal_of {
            Some(old) => Some(ssl_id(old)?),
            None => None,
        };
        let answer = match renewal_of {
            Some(old) => {
                self.record_intent(
                    &request.tag,
                    Intent {
                        common_name: request.common_name.clone(),
                        renewal_of: Some(old),
                        ..Intent::default()
                    },
                )?;
                let mut body = json!({ "csr": wire::csr_pem(&request.csr_der) });
                self.add_dcv(&mut body, request);
                self.call(
                    Method::POST,
                    &format!("ssl/v1/renewById/{old}"),
                    Some(&body),
                    false,
                )
                .await?
            }
            None => {
                let (profile, organization, term) = self.resolve(options, request.validity).await?;
                let body = self.enroll_body(request, profile.id, organization, term);
                self.record_intent(
                    &request.tag,
                    Intent {
                        common_name: request.common_name.clone(),
                        ..Intent::default()
                    },
                )?;
                // Sent once: the executor looks the tag up (`refresh`) before sending again.
                self.call(Method::POST, "ssl/v1/enroll", Some(&body), false)
                    .await?
            }
        };
        let value = answer.json("the enrollment")?;
        let id = answer_id(&value).ok_or_else(|| {
            CaError::new(
                ErrorClass::Protocol,
                "Sectigo answered the enrollment without an `sslId`",
            )
        })?;
        self.record_answer(&request.tag, id);
        let details = self.details(id).await?.ok_or_else(|| {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "Sectigo answered the enrollment with certificate {id}, which it does not show"
                ),
            )
        })?;
        let details = self.approve_if_requested(details).await?;
        self.view_with_dcv(&details).await
    }

    async fn fetch(&self, order_id: &str) -> Result<Fetched, CaError> {
        let id = ssl_id(order_id)?;
        let details = self.details(id).await?.ok_or_else(|| {
            CaError::new(
                ErrorClass::Rejected,
                format!("Sectigo account `{}` has no certificate {id}", self.name),
            )
        })?;
        let status = map_status(&details.status);
        if status.is_in_progress() {
            return Ok(Fetched::NotYet {
                status,
                detail: wire::pending_detail(&details.status),
            });
        }
        let path = format!("ssl/v1/collect/{id}?format=x509");
        let (answer, retry_after) = self.exchange(&Method::GET, &path, None, true).await?;
        if !answer.status.is_success() {
            if answer
                .code()
                .is_some_and(|code| wire::NOT_YET_CODES.contains(&code))
            {
                return Ok(Fetched::NotYet {
                    status: OrderStatus::Pending,
                    detail: "issued, not collectable yet".to_string(),
                });
            }
            return Err(self.status_error(&Method::GET, &path, &answer, retry_after));
        }
        let chain_pem = chain_of(&answer.body).map_err(|message| {
            CaError::new(
                ErrorClass::Protocol,
                format!("certificate {id} collected from Sectigo: {message}"),
            )
        })?;
        Ok(Fetched::Issued(IssuedCertificate {
            order_id: id.to_string(),
            certificate_id: Some(id.to_string()),
            chain_pem,
        }))
    }

    async fn reissue(&self, order_id: &str, request: &OrderRequest) -> Result<OrderView, CaError> {
        self.refuse_write("replace a certificate")?;
        let id = ssl_id(order_id)?;
        let before = self.details(id).await?.ok_or_else(|| {
            CaError::new(
                ErrorClass::Rejected,
                format!("Sectigo account `{}` has no certificate {id}", self.name),
            )
        })?;
        self.record_intent(
            &request.tag,
            Intent {
                common_name: request.common_name.clone(),
                replace_of: Some(id),
                serial_before: before.serial.clone(),
                ..Intent::default()
            },
        )?;
        let sans: Vec<&str> = request
            .sans
            .iter()
            .map(String::as_str)
            .filter(|name| *name != request.common_name)
            .collect();
        let mut body = json!({
            "csr": wire::csr_pem(&request.csr_der),
            "reason": wire::marker(&request.tag),
            "commonName": request.common_name,
            "subjectAlternativeNames": sans,
        });
        self.add_dcv(&mut body, request);
        self.call(
            Method::POST,
            &format!("ssl/v1/replace/{id}"),
            Some(&body),
            false,
        )
        .await?;
        self.record_answer(&request.tag, id);
        let details = self.details(id).await?.unwrap_or(before);
        let details = self.approve_if_requested(details).await?;
        self.view_with_dcv(&details).await
    }

    /// A replace keeps the record: it reached SCM when the intent says it was answered, or
    /// when the record's serial changed or it is in progress again since the intent.
    async fn find_reissue(&self, order_id: &str, tag: &str) -> Result<Option<OrderView>, CaError> {
        let id = ssl_id(order_id)?;
        let Some(intent) = self.intent(tag) else {
            return Ok(None);
        };
        if intent.replace_of != Some(id) {
            return Ok(None);
        }
        let Some(details) = self.details(id).await? else {
            return Ok(None);
        };
        let moved = intent.ssl_id.is_some()
            || map_status(&details.status).is_in_progress()
            || details.serial != intent.serial_before;
        if !moved {
            return Ok(None);
        }
        tracing::info!(account = %self.name, ssl_id = id, "a replace requested earlier for this tag reached Sectigo; adopting it");
        self.view_with_dcv(&details).await.map(Some)
    }

    async fn revoke(
        &self,
        order_id: &str,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<RevokeOutcome, CaError> {
        self.refuse_write("revoke a certificate")?;
        let id = ssl_id(order_id)?;
        if let Some(details) = self.details(id).await? {
            // Revoked already (a run that died before recording it asks again): done.
            if map_status(&details.status) == OrderStatus::Revoked {
                return Ok(RevokeOutcome::Revoked);
            }
        }
        tracing::debug!(account = %self.name, ssl_id = id, %serial, "revoking");
        let body = json!({
            "reasonCode": wire::reason_code(reason),
            "reason": wire::reason_text(reason),
        });
        match self
            .call(
                Method::POST,
                &format!("ssl/v1/revoke/{id}"),
                Some(&body),
                false,
            )
            .await
        {
            Ok(_) => Ok(RevokeOutcome::Revoked),
            // -159: already revoked.
            Err(error)
                if error.problem.as_deref().and_then(Problem::sectigo_code) == Some(-159) =>
            {
                Ok(RevokeOutcome::Revoked)
            }
            Err(error) => Err(error),
        }
    }

    /// Cancel a pending request: decline it (SCM deletes only imported or discovered records).
    async fn cancel(&self, order_id: &str) -> Result<(), CaError> {
        self.refuse_write("cancel a request")?;
        let id = ssl_id(order_id)?;
        if let Some(details) = self.details(id).await? {
            match map_status(&details.status) {
                OrderStatus::Canceled | OrderStatus::Rejected => return Ok(()),
                OrderStatus::Issued | OrderStatus::Revoked | OrderStatus::Expired => {
                    return Err(CaError::new(
                        ErrorClass::Rejected,
                        format!(
                            "Sectigo certificate {id} is `{}`: only a pending request can be canceled",
                            details.status
                        ),
                    ));
                }
                _ => {}
            }
        }
        let body = json!({ "message": "canceled by certform" });
        match self
            .call(
                Method::POST,
                &format!("ssl/v1/decline/{id}"),
                Some(&body),
                true,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.class == ErrorClass::Rejected => match self.details(id).await? {
                Some(d) if map_status(&d.status) == OrderStatus::Canceled => Ok(()),
                _ => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    async fn challenges(&self, order: &OrderView) -> Result<Vec<Challenge>, CaError> {
        let id = ssl_id(&order.order_id)?;
        let entries = self.dcv_entries(id).await?;
        Ok(entries
            .into_iter()
            .filter_map(|entry| challenge_of(id, entry))
            .collect())
    }

    /// Ask SCM to check the DCV of the record again (`dcv/recheck`); emails need no call.
    async fn respond(&self, order: &OrderView, challenges: &[Challenge]) -> Result<(), CaError> {
        self.refuse_write("ask for a DCV check")?;
        let id = ssl_id(&order.order_id)?;
        if let Some(details) = self.details(id).await? {
            self.approve_if_requested(details).await?;
        }
        if challenges
            .iter()
            .all(|c| matches!(c.kind, ChallengeKind::Email { .. }))
        {
            return Ok(());
        }
        self.call(
            Method::POST,
            &format!("ssl/v1/{id}/dcv/recheck"),
            None,
            true,
        )
        .await
        .map(|_| ())
    }

    async fn finalize(&self, order: &OrderView, _csr_der: &[u8]) -> Result<OrderView, CaError> {
        // SCM takes the CSR with the enrollment: answer with the record as it is now.
        self.current_view(ssl_id(&order.order_id)?).await
    }
}

use crate::ca::Problem;

/// One DCV entry as a challenge; `None` when SCM gave nothing to act on.
fn challenge_of(id: u64, entry: wire::DcvEntry) -> Option<Challenge> {
    let status = if wire::dcv_done(&entry.status) {
        "valid"
    } else {
        "pending"
    };
    let mode = entry.mode.clone().unwrap_or_default().to_ascii_uppercase();
    let kind = match mode.as_str() {
        "CNAME" => ChallengeKind::DnsCname {
            name: entry.host.clone()?,
            target: entry.point.clone()?,
        },
        "TXT" => ChallengeKind::DnsTxt {
            name: entry.host.clone()?,
            value: entry.point.clone()?,
        },
        "HTTP" | "HTTPS" => {
            let url = entry.url.clone()?;
            let path = url
                .split_once("://")
                .and_then(|(_, rest)| rest.find('/').map(|at| rest[at..].to_string()))
                .unwrap_or(url);
            ChallengeKind::Http {
                path,
                content: entry.file.clone().unwrap_or_default(),
            }
        }
        "EMAIL" => ChallengeKind::Email {
            approver: entry.email.clone(),
        },
        _ if status == "valid" => ChallengeKind::Email { approver: None },
        _ => return None,
    };
    Some(Challenge {
        id: format!("{id}/{}", entry.domain),
        domain: entry.domain,
        kind,
        status: status.to_string(),
    })
}

/// A certificate's raw subject, raw issuer, and whether it is a CA.
type Names = (Vec<u8>, Vec<u8>, bool);

/// The chain of a collect answer: leaf first, intermediates after, a self-signed root
/// dropped; `\r\n` accepted.
pub fn chain_of(body: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let blocks = pem::parse_many(text.as_bytes()).map_err(|_| "not PEM".to_string())?;
    let certificates: Vec<Vec<u8>> = blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.contents().to_vec())
        .collect();
    if certificates.is_empty() {
        return Err("the download holds no certificate".to_string());
    }
    // The leaf: the one certificate that issued none of the others.
    let parsed: Vec<Option<Names>> = certificates
        .iter()
        .map(|der| {
            use x509_parser::prelude::{FromDer, X509Certificate};
            X509Certificate::from_der(der).ok().map(|(_, cert)| {
                (
                    cert.subject().as_raw().to_vec(),
                    cert.issuer().as_raw().to_vec(),
                    cert.is_ca(),
                )
            })
        })
        .collect();
    let leaf_at = parsed
        .iter()
        .position(|p| p.as_ref().is_some_and(|(_, _, ca)| !ca))
        .unwrap_or(0);
    let mut ordered = vec![leaf_at];
    let mut issuer = parsed[leaf_at].as_ref().map(|(_, i, _)| i.clone());
    while let Some(wanted) = issuer.take() {
        let next = parsed.iter().enumerate().position(|(at, p)| {
            !ordered.contains(&at) && p.as_ref().is_some_and(|(s, _, _)| *s == wanted)
        });
        if let Some(at) = next {
            ordered.push(at);
            issuer = parsed[at].as_ref().map(|(_, i, _)| i.clone());
        }
    }
    for at in 0..certificates.len() {
        if !ordered.contains(&at) {
            ordered.push(at);
        }
    }
    Ok(ordered
        .into_iter()
        .enumerate()
        .filter(|(position, at)| {
            // A self-signed root after the leaf is not sent to clients.
            *position == 0 || parsed[*at].as_ref().is_none_or(|(s, i, _)| s != i)
        })
        .map(|(_, at)| crate::keys::encode_certificate(&certificates[at]))
        .collect())
}

/// Open the configured account `name`: resolve its password; intents and the cache live
/// under `keys_dir`.
pub fn open(
    name: &str,
    settings: &settings::Settings,
    keys_dir: &std::path::Path,
    now: time::OffsetDateTime,
) -> Result<SectigoCa, CaError> {
    let password = crate::secrets::resolve(&settings.password).map_err(|e| {
        CaError::new(
            ErrorClass::Auth,
            format!("cannot read the password of `{name}`"),
        )
        .with_source(e)
    })?;
    let mut resolved = SectigoSettings::new(
        settings.url.clone(),
        settings.customer_uri.clone(),
        settings.login.clone(),
        password,
    );
    resolved.read_only = settings.read_only;
    resolved.home = Some(keys_dir.join("sectigo").join(name));
    resolved.proxy = settings.proxy.clone();
    resolved.now = now;
    SectigoCa::new(name, resolved)
}

#[cfg(test)]
mod tests;
