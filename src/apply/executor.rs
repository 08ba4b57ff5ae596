//! The executor: carries out exactly the plan it is given, one task per certificate with
//! bounded concurrency, recording an intent in state (fsynced) before every side effect at a
//! CA and the result after it, so a run killed at any point converges on the next run without
//! a second order and without losing a key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::Failure;
use crate::ca::{
    Accounts, CaError, CertificateAuthority, ErrorClass, Fetched, OrderQuery, OrderRequest,
    RevokeOutcome,
};
use crate::config::Config;
use crate::deploy::{self, Bundle};
use crate::keys::{self, KeyStore, PrivateKey};
use crate::observed::{OrderStatus, OrderView};
use crate::plan::render::format_time;
use crate::plan::{Action, Change, Plan};
use crate::spec::CertificateSpec;
use crate::state::{
    model::DeployRecord, Backoff, CertificateState, CertificateStatus, HistoryEntry, Intent,
    IntentKind, LifecycleSettings, State, StateStore,
};

/// Remove the files the `cleanup = true` targets of `state` hold, in the receipt's order (the
/// private key first); `"; removed ..."` for the summary (and so the commit), empty when none.
/// A file already gone is fine. Local files are removed directly; an `ssh` target's files in
/// one session on the host its record names. Every target is tried; any failure (a file that
/// cannot be removed, a host that cannot be reached) stops the forget, so state keeps the
/// records and the next run tries again. Relative paths in receipts start at the
/// configuration's directory (where `-c` points).
async fn remove_deployed(state: &CertificateState, config: &Config) -> Result<String, Error> {
    let base = config
        .files
        .first()
        .and_then(|file| file.parent())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let mut removed = Vec::new();
    let mut failed: Vec<Error> = Vec::new();
    for (id, record) in state.deployments.iter().filter(|(_, r)| r.cleanup) {
        if let Some(host) = &record.ssh {
            let paths: Vec<String> = record
                .paths
                .iter()
                .map(|path| path.display().to_string())
                .collect();
            let removal = match deploy::ssh::SshDeployer::check_removal(id, host, &record.paths) {
                Ok(()) => {
                    deploy::ssh::SshDeployer::for_host(host)
                        .remove_files(&paths)
                        .await
                }
                Err(problem) => Err(format!("{problem}: nothing removed")),
            };
            match removal {
                Ok(gone) => removed.extend(gone.iter().map(|path| format!("`{path}` on `{id}`"))),
                Err(message) => failed.push(Error::Deploy(deploy::DeployError::Remote {
                    target: id.clone(),
                    action: "remove the files of",
                    message,
                })),
            }
            continue;
        }
        if id.starts_with("ssh:") {
            // A record written before ssh records said how to reach the host: nothing to do.
            continue;
        }
        for recorded in &record.paths {
            let path = base.join(recorded);
            match std::fs::remove_file(&path) {
                Ok(()) => removed.push(format!("`{}`", recorded.display())),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    failed.push(Error::Deploy(deploy::DeployError::Io {
                        target: id.clone(),
                        action: "remove",
                        path,
                        source,
                    }));
                    break;
                }
            }
        }
    }
    match failed.len() {
        0 => Ok(if removed.is_empty() {
            String::new()
        } else {
            format!("; removed {}", removed.join(", "))
        }),
        1 => Err(failed.remove(0)),
        _ => Err(Error::Other(
            failed
                .iter()
                .map(|error| error_chain(error))
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

/// How often a create or reissue that failed in transit is tried again (each time after a
/// lookup by tag). Reads are not retried here: the HTTP layer already retried them.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    /// First delay; doubled after each attempt. Zero in tests.
    pub base_delay: StdDuration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base_delay: StdDuration::from_secs(2),
        }
    }
}

/// Hooks that let tests kill the process at named points (`CERTFORM_FAILPOINT`).
#[derive(Debug, Clone, Default)]
pub struct FailPoints {
    active: Option<String>,
}

impl FailPoints {
    /// Every fail point a create passes, in order. A reissue on the same order also passes
    /// `after-reissue`, right after the CA accepted the request and before state records it
    /// (just before `after-order`); a revoke passes `after-revoke` at the same moment. An order
    /// whose challenges are answered passes `after-dcv-published` once they are in place.
    pub const ALL: [&'static str; 7] = [
        "after-intent",
        "after-key",
        "after-order",
        "after-order-recorded",
        "after-fetch",
        "after-deploy",
        "before-commit",
    ];

    pub fn new(active: Option<String>) -> Self {
        Self { active }
    }

    /// Exit the process at once, as a kill would, when `name` is the active fail point.
    pub fn hit(&self, name: &str) {
        if self.active.as_deref() == Some(name) {
            // Unit tests run in-process: unwind the task (the test sees a killed run) instead of
            // ending the test binary.
            #[cfg(test)]
            panic!("fail point `{name}` reached");
            #[cfg(not(test))]
            {
                eprintln!("certform: fail point `{name}` reached; exiting");
                std::process::exit(99);
            }
        }
    }
}

/// What happened to one certificate.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub certificate: String,
    pub verb: &'static str,
    pub result: Result<String, Failure>,
}

/// The result of an apply.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    pub commit: Option<String>,
    pub pushed: bool,
    /// The remote had moved on: the commit was replayed on its newer commits before the push
    /// (`commit` is the replayed one).
    pub replayed: bool,
}

impl Report {
    pub fn failures(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_err()).count()
    }
}

/// An error while carrying out one change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}")]
    Ca {
        context: String,
        #[source]
        source: CaError,
    },
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    #[error(transparent)]
    State(#[from] crate::state::Error),
    #[error(transparent)]
    Deploy(#[from] deploy::DeployError),
    #[error("domain validation failed")]
    Dcv(#[from] crate::dcv::Error),
    #[error("{0}")]
    Other(String),
}

/// Called after each certificate finishes (progress display).
pub type ProgressCallback = Arc<dyn Fn(&Outcome) + Send + Sync>;

/// Everything the executor needs.
pub struct Executor {
    pub config: Arc<Config>,
    pub store: Arc<dyn StateStore>,
    pub keys: Arc<KeyStore>,
    pub accounts: Accounts,
    pub now: OffsetDateTime,
    /// How many certificates the run works on at once, in all.
    pub parallelism: usize,
    /// How many of one CA account's certificates the run works on at once, by account (an
    /// account not listed: only `parallelism` bounds it).
    pub per_ca: BTreeMap<String, usize>,
    pub retry: RetryPolicy,
    pub failpoints: FailPoints,
    /// Publishes domain-control challenges for pending orders.
    pub dcv: Arc<crate::dcv::Validator>,
    /// Called after each certificate finishes (progress display).
    pub on_done: Option<ProgressCallback>,
}

impl Executor {
    /// Carry out `plan` against `state`, then commit (and push) once.
    pub async fn run(self: Arc<Self>, plan: &Plan, state: &State) -> Result<Report, Error> {
        let semaphore = Arc::new(Semaphore::new(self.parallelism.max(1)));
        let per_ca: BTreeMap<&str, Arc<Semaphore>> = self
            .per_ca
            .iter()
            .map(|(ca, limit)| (ca.as_str(), Arc::new(Semaphore::new((*limit).max(1)))))
            .collect();
        let runtime = tokio::runtime::Handle::current();
        let mut tasks = tokio::task::JoinSet::new();
        for (index, change) in plan.changes.iter().enumerate() {
            let executor = Arc::clone(&self);
            let change = change.clone();
            let current = state.certificates.get(&change.certificate).cloned();
            let semaphore = Arc::clone(&semaphore);
            let ca_semaphore = per_ca.get(change.ca.as_str()).cloned();
            let runtime = runtime.clone();
            tasks.spawn(async move {
                // Every task takes its account's permit before the run's: in one order, so
                // no two tasks wait on each other.
                let _ca_permit = match ca_semaphore {
                    Some(ca_semaphore) => Some(ca_semaphore.acquire_owned().await),
                    None => None,
                };
                let _permit = semaphore.acquire_owned().await;
                // A certificate's work blocks on file I/O (keys, state and deployed files are
                // written and fsynced): it runs on the blocking pool, driven there by the
                // runtime's handle, so `parallelism` certificates really proceed at once and
                // the runtime's few worker threads stay free for CA requests in flight.
                let worker = Arc::clone(&executor);
                let work = change.clone();
                let result = match tokio::task::spawn_blocking(move || {
                    runtime.block_on(worker.execute(&work, current))
                })
                .await
                {
                    Ok(result) => result.map_err(|error| Failure::from_error(&error)),
                    Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    Err(error) => Err(Failure::from_error(&Error::Other(format!(
                        "an apply task failed: {error}"
                    )))),
                };
                let outcome = Outcome {
                    certificate: change.certificate.clone(),
                    verb: change.action.verb(),
                    result,
                };
                if let Some(callback) = &executor.on_done {
                    callback(&outcome);
                }
                (index, outcome)
            });
        }
        let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(done) => outcomes.push(done),
                Err(error) => {
                    return Err(Error::Other(format!("an apply task failed: {error}")));
                }
            }
        }
        outcomes.sort_by_key(|(index, _)| *index);
        let outcomes: Vec<Outcome> = outcomes.into_iter().map(|(_, o)| o).collect();

        for (name, account) in &self.accounts {
            if let Some(pem) = account.trust_anchor_pem() {
                self.store
                    .write_public_file(&format!("ca/{name}.pem"), &pem)?;
            }
        }
        self.failpoints.hit("before-commit");
        let mut commit = self.store.commit(&commit_message(&outcomes))?;
        let mut replayed = false;
        let pushed = if self.config.state.push && (commit.is_some() || self.store.push_pending()) {
            if let Some(head) = self.store.push()? {
                replayed = true;
                commit = commit.map(|_| head);
            }
            true
        } else {
            false
        };
        Ok(Report {
            outcomes,
            commit,
            pushed,
            replayed,
        })
    }

    async fn execute(
        &self,
        change: &Change,
        current: Option<CertificateState>,
    ) -> Result<String, Error> {
        let name = &change.certificate;
        // A certificate still in config records its lifecycle settings with whatever this run
        // saves for it, so removal later acts on the settings it last had.
        let current = match (self.config.certificates.get(name), current) {
            (Some(spec), Some(mut state)) => {
                state.record_settings(LifecycleSettings::of_spec(spec));
                Some(state)
            }
            (_, current) => current,
        };
        match &change.action {
            Action::Create { .. } => self.order(change, current, IntentKind::Create, None).await,
            // A renewal the order's plan covers is a reissue on that order (no new payment).
            Action::Renew {
                on_order: Some(coverage),
                ..
            } => {
                let order_id = Some(coverage.order_id.clone());
                self.order(change, current, IntentKind::Reissue, order_id)
                    .await
            }
            Action::Renew { .. } => self.order(change, current, IntentKind::Renew, None).await,
            Action::Reissue { same_order, .. } => {
                let order_id = current
                    .as_ref()
                    .and_then(|s| s.order_id.clone())
                    .filter(|_| *same_order);
                self.order(change, current, IntentKind::Reissue, order_id)
                    .await
            }
            Action::Adopt { order_id, .. } => {
                let mut state = require(current, name)?;
                let ca = self.account(intent_ca(&state))?;
                if let Some(intent) = state.intent.as_mut() {
                    intent.order_id = Some(order_id.clone());
                }
                self.store.save_certificate(&state)?;
                let view = self.poll(ca.as_ref(), order_id).await?;
                self.settle(change, &mut state, ca.as_ref(), &view)
                    .await
                    .map(|summary| format!("adopted order {order_id}; {summary}"))
            }
            Action::Wait { order_id, .. } => {
                let mut state = require(current, name)?;
                let ca = self.account(intent_ca(&state))?;
                let view = self.poll(ca.as_ref(), order_id).await?;
                self.settle(change, &mut state, ca.as_ref(), &view).await
            }
            Action::Fetch { order_id } => {
                let mut state = require(current, name)?;
                let ca = self.account(intent_ca(&state))?;
                if let Collected::NotYet(waiting) = self
                    .collect(&mut state, ca.as_ref(), order_id, None)
                    .await?
                {
                    return Ok(waiting);
                }
                self.deploy(change, &mut state).await
            }
            Action::Deploy => {
                let mut state = require(current, name)?;
                self.deploy(change, &mut state).await
            }
            Action::Revoke {
                serial,
                reason,
                record_only,
                forget,
                cancel_order,
                ..
            } => {
                let mut state = require(current, name)?;
                let ca = self.account(&state.ca)?;
                let mut summary = if *record_only {
                    format!(
                        "serial {serial} already revoked at `{}`; recorded",
                        state.ca
                    )
                } else {
                    let order_id = state.order_id.clone().unwrap_or_default();
                    let outcome = self
                        .ca_call("revoke", ca.revoke(&order_id, serial, *reason))
                        .await?;
                    self.failpoints.hit("after-revoke");
                    match outcome {
                        RevokeOutcome::Revoked => format!("revoked serial {serial}"),
                        RevokeOutcome::Requested { request_id } => {
                            push_history(
                                &mut state,
                                self.now,
                                "revoke-requested",
                                &format!("request {request_id} awaits approval"),
                            );
                            self.store.save_certificate(&state)?;
                            return Ok(format!(
                                "revocation request {request_id} for serial {serial} awaits approval at `{}`",
                                state.ca
                            ));
                        }
                    }
                };
                if let Some(order_id) = cancel_order {
                    self.ca_call("cancel", ca.cancel(order_id)).await?;
                    summary.push_str(&format!("; cancelled pending order {order_id}"));
                }
                state.intent = None;
                state.status = CertificateStatus::Revoked;
                push_history(&mut state, self.now, "revoke", reason.as_str());
                self.store.save_certificate(&state)?;
                if *forget {
                    summary.push_str(&remove_deployed(&state, &self.config).await?);
                    self.store.remove_certificate(name)?;
                    summary.push_str("; forgotten");
                }
                Ok(summary)
            }
            Action::Cancel {
                order_id, forget, ..
            } => {
                let mut state = require(current, name)?;
                let ca = self.account(intent_ca(&state))?;
                self.ca_call("cancel", ca.cancel(order_id)).await?;
                state.intent = None;
                if state.status == CertificateStatus::New {
                    state.status = CertificateStatus::Canceled;
                }
                push_history(&mut state, self.now, "cancel", &format!("order {order_id}"));
                self.store.save_certificate(&state)?;
                if *forget {
                    let removed = remove_deployed(&state, &self.config).await?;
                    self.store.remove_certificate(name)?;
                    return Ok(format!("cancelled order {order_id}{removed}; forgotten"));
                }
                Ok(format!("cancelled order {order_id}"))
            }
            Action::UpdateSettings { changes } => {
                let state = require(current, name)?;
                self.store.save_certificate(&state)?;
                let changed: Vec<String> = changes
                    .iter()
                    .map(|c| {
                        format!(
                            "`{}` {} -> {}",
                            c.field,
                            c.old.as_deref().unwrap_or("-"),
                            c.new.as_deref().unwrap_or("-")
                        )
                    })
                    .collect();
                Ok(format!("recorded settings: {}", changed.join(", ")))
            }
            Action::Forget => {
                let removed = match &current {
                    Some(state) => remove_deployed(state, &self.config).await?,
                    None => String::new(),
                };
                self.store.remove_certificate(name)?;
                Ok(format!(
                    "forgotten (the CA keeps the certificate; the key stays in keys_dir){removed}"
                ))
            }
        }
    }

    /// Create, renew or reissue (`order_steps`); a failure is recorded in state as a backoff
    /// (`Backoff`), which the next plans respect.
    async fn order(
        &self,
        change: &Change,
        current: Option<CertificateState>,
        kind: IntentKind,
        reissue_order: Option<String>,
    ) -> Result<String, Error> {
        let spec = self.spec(&change.certificate)?;
        // A read-only account refuses the order: say so before an intent, a key or a backoff
        // is recorded, so state (and its git history) stays as it was.
        let ca = self.account(&spec.ca)?;
        if ca.is_read_only() {
            return Err(Error::Ca {
                context: format!("cannot {} at `{}`", kind.as_str(), ca.name()),
                source: CaError::new(
                    ErrorClass::Rejected,
                    format!(
                        "`{}` is read-only (`mode = \"read-only\"`): no order was sent and state is unchanged",
                        ca.name()
                    ),
                ),
            });
        }
        let mut state = current.unwrap_or_else(|| new_state(spec));
        let result = self
            .order_steps(change, &mut state, kind, reissue_order)
            .await;
        if let Err(error) = &result {
            let class = Failure::from_error(error).class;
            state.backoff = Some(Backoff::after_failure(
                state.backoff.as_ref(),
                class,
                self.now,
            ));
            if let Err(saving) = self.store.save_certificate(&state) {
                tracing::warn!(certificate = %state.name, %saving, "could not record the backoff");
            }
        }
        result
    }

    /// Intent → key → order → record → fetch → deploy.
    async fn order_steps(
        &self,
        change: &Change,
        state: &mut CertificateState,
        kind: IntentKind,
        reissue_order: Option<String>,
    ) -> Result<String, Error> {
        let spec = self.spec(&change.certificate)?;
        let ca = self.account(&spec.ca)?;
        let digest = spec.issuance_digest();
        let reusable = state
            .intent
            .as_ref()
            .filter(|i| i.order_id.is_none() && i.spec_digest == digest && i.ca == spec.ca)
            .cloned();
        let resumed = reusable.is_some();
        let intent = match reusable {
            Some(intent) => intent,
            None => {
                let suffix = random_hex(6);
                Box::new(Intent {
                    kind,
                    ca: spec.ca.clone(),
                    started: self.now,
                    tag: format!("{}.{suffix}", state.id),
                    key_algorithm: spec.key.label(),
                    common_name: spec.common_name.to_string(),
                    sans: spec.sans.iter().map(|n| n.to_string()).collect(),
                    spec_digest: digest,
                    spec_fields: spec.issuance_fields().into_iter().collect(),
                    order_id: None,
                })
            }
        };
        state.intent = Some(intent.clone());
        state.record_settings(LifecycleSettings::of_spec(spec));
        self.store.save_certificate(state)?;
        self.failpoints.hit("after-intent");

        let key_file = intent_key_file(state, &intent)?;
        let key = if self.keys.exists(&key_file) {
            self.keys.read(&key_file)?
        } else {
            let key = PrivateKey::generate(spec.key)?;
            self.keys.write(&key_file, &key)?;
            key
        };
        self.failpoints.hit("after-key");

        let request = OrderRequest {
            dcv: crate::dcv::requested(&spec.dcv, &intent.common_name, &intent.sans),
            tag: intent.tag.clone(),
            common_name: intent.common_name.clone(),
            sans: intent.sans.clone(),
            csr_der: key.csr_der(&intent.common_name, &intent.sans)?,
            validity: spec.validity,
            renewal_of: (kind == IntentKind::Renew)
                .then(|| state.order_id.clone())
                .flatten(),
            options: spec.ca_options.clone(),
            now: self.now,
        };
        let placed = match &reissue_order {
            Some(order_id) => self.reissue(ca.as_ref(), order_id, &request, resumed).await,
            None => self.place(ca.as_ref(), &request, resumed).await,
        };
        let view = match placed {
            Ok(view) => view,
            Err(error) => {
                if let Error::Ca { source, .. } = &error {
                    if source.class == ErrorClass::RateLimited {
                        let wait = source.retry_after.unwrap_or(time::Duration::hours(1));
                        state.retry_after = Some(self.now + wait);
                        self.store.save_certificate(state)?;
                    }
                    // A CA that cannot find orders by tag keeps the intent only while the
                    // outcome is unknown (the next plan asks the user); an answer that says
                    // no order was made lets the next run order again.
                    let refused =
                        !matches!(source.class, ErrorClass::Transient | ErrorClass::Protocol);
                    if refused && !ca.capabilities().duplicates.finds_by_tag() {
                        state.intent = None;
                        self.store.save_certificate(state)?;
                    }
                }
                return Err(error);
            }
        };
        if reissue_order.is_some() {
            self.failpoints.hit("after-reissue");
        }
        self.failpoints.hit("after-order");
        if let Some(intent) = state.intent.as_mut() {
            intent.order_id = Some(view.order_id.clone());
        }
        // The order's id is recorded before anything else is asked of the CA, except for an
        // order that came back issued from a CA that finds orders by tag: `collect` records it
        // with its certificate right away, and a run killed in between finds the order again
        // by the intent's tag (durable since before the order). One state write, two fsyncs
        // and a rename fewer per renewal at such a CA.
        let collected_next =
            view.status == OrderStatus::Issued && ca.capabilities().duplicates.finds_by_tag();
        if !collected_next {
            self.store.save_certificate(state)?;
        }
        self.failpoints.hit("after-order-recorded");
        self.settle(change, state, ca.as_ref(), &view).await
    }

    /// Place an order, looking its tag up first when the intent is resumed (an earlier run
    /// may have placed it) and after a transient failure before trying again, so a request that
    /// reached the CA is never placed twice. This is the only place a tag is looked up before a
    /// create: CA clients send a create as asked.
    /// A CA that cannot find orders by tag gets the request once: whether it arrived is for
    /// the user to check.
    async fn place(
        &self,
        ca: &dyn CertificateAuthority,
        request: &OrderRequest,
        resumed: bool,
    ) -> Result<OrderView, Error> {
        let finds_by_tag = ca.capabilities().duplicates.finds_by_tag();
        if resumed && finds_by_tag {
            if let Some(view) = self.find_by_tag(ca, &request.tag).await? {
                tracing::info!(
                    ca = ca.name(),
                    order = view.order_id,
                    "the interrupted order reached the CA; adopting it"
                );
                return Ok(view);
            }
        }
        let mut delay = self.retry.base_delay;
        let mut attempt = 1;
        loop {
            match ca.place_order(request).await {
                Ok(view) => return Ok(view),
                Err(error) if error.class == ErrorClass::Transient && !finds_by_tag => {
                    return Err(Error::Ca {
                        context: format!(
                            "the order request to `{}` failed and may have reached it; `{}` cannot find orders by certform's tag, so it is not sent again: check the account's orders before the next run",
                            ca.name(),
                            ca.name()
                        ),
                        source: error,
                    })
                }
                Err(error)
                    if error.class == ErrorClass::Transient && attempt < self.retry.attempts =>
                {
                    tracing::warn!(ca = ca.name(), %error, "order request failed; checking by tag before retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                    // A lookup that cannot answer stops here: the order may have reached the
                    // CA, and the next run adopts it by its tag instead of ordering again.
                    if let Some(view) = self.find_by_tag(ca, &request.tag).await? {
                        return Ok(view);
                    }
                }
                Err(error) => {
                    return Err(Error::Ca {
                        context: format!("failed to place order at `{}`", ca.name()),
                        source: error,
                    })
                }
            }
        }
    }

    /// The live order carrying `tag` at the CA (in progress or issued), if any: one that was
    /// canceled or rejected does not stop a new order.
    async fn find_by_tag(
        &self,
        ca: &dyn CertificateAuthority,
        tag: &str,
    ) -> Result<Option<OrderView>, Error> {
        let query = OrderQuery {
            order_id: None,
            tag: Some(tag.to_string()),
        };
        let found = self
            .read_call("look up the interrupted order by its tag", || {
                ca.refresh(std::slice::from_ref(&query))
            })
            .await?;
        Ok(found
            .into_iter()
            .next()
            .flatten()
            .filter(|view| view.status.is_in_progress() || view.status == OrderStatus::Issued))
    }

    /// Reissue `order_id` at most once per intent: a resumed intent first asks the CA whether
    /// its reissue already arrived, and a reissue lost in transit is looked up before it is
    /// sent again.
    async fn reissue(
        &self,
        ca: &dyn CertificateAuthority,
        order_id: &str,
        request: &OrderRequest,
        resumed: bool,
    ) -> Result<OrderView, Error> {
        let lookup = || async {
            self.read_call("look up the interrupted reissue", || {
                ca.find_reissue(order_id, &request.tag)
            })
            .await
        };
        let finds_by_tag = ca.capabilities().duplicates.finds_by_tag();
        if resumed && finds_by_tag {
            if let Some(view) = lookup().await? {
                tracing::info!(
                    ca = ca.name(),
                    order = order_id,
                    "the interrupted reissue reached the CA; adopting it"
                );
                return Ok(view);
            }
        }
        let mut delay = self.retry.base_delay;
        let mut attempt = 1;
        loop {
            match ca.reissue(order_id, request).await {
                Ok(view) => return Ok(view),
                Err(error) if error.class == ErrorClass::Transient && !finds_by_tag => {
                    return Err(Error::Ca {
                        context: format!(
                            "the reissue request for order {order_id} to `{}` failed and may have reached it; `{}` cannot find requests by certform's tag, so it is not sent again: check the order before the next run",
                            ca.name(),
                            ca.name()
                        ),
                        source: error,
                    })
                }
                Err(error)
                    if error.class == ErrorClass::Transient && attempt < self.retry.attempts =>
                {
                    tracing::warn!(ca = ca.name(), %error, "reissue request failed; checking by tag before retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                    if let Some(view) = lookup().await? {
                        return Ok(view);
                    }
                }
                Err(error) => {
                    return Err(Error::Ca {
                        context: format!("failed to reissue order {order_id} at `{}`", ca.name()),
                        source: error,
                    })
                }
            }
        }
    }

    /// Read an order's status (retried: reading is idempotent).
    async fn poll(
        &self,
        ca: &dyn CertificateAuthority,
        order_id: &str,
    ) -> Result<OrderView, Error> {
        let query = OrderQuery {
            order_id: Some(order_id.to_string()),
            tag: None,
        };
        let views = self
            .read_call("read order", || ca.refresh(std::slice::from_ref(&query)))
            .await?;
        views
            .into_iter()
            .next()
            .flatten()
            .ok_or_else(|| Error::Other(format!("`{}` has no order {order_id}", ca.name())))
    }

    /// After an order call: fetch and deploy when issued; report when still pending.
    async fn settle(
        &self,
        change: &Change,
        state: &mut CertificateState,
        ca: &dyn CertificateAuthority,
        view: &OrderView,
    ) -> Result<String, Error> {
        let plan_until = view.plan_until;
        match view.status {
            OrderStatus::Issued => {
                if let Collected::NotYet(waiting) =
                    self.collect(state, ca, &view.order_id, plan_until).await?
                {
                    // The order's id, which `order_steps` left for `collect` to record.
                    self.store.save_certificate(state)?;
                    return Ok(waiting);
                }
                self.deploy(change, state).await
            }
            OrderStatus::Pending | OrderStatus::Ready => {
                let view = self.validate(change, state, ca, view).await?;
                if view.status == OrderStatus::Issued {
                    if let Collected::NotYet(waiting) = self
                        .collect(state, ca, &view.order_id, view.plan_until.or(plan_until))
                        .await?
                    {
                        return Ok(waiting);
                    }
                    return self.deploy(change, state).await;
                }
                let spec = self.spec(&change.certificate).ok();
                let pending: Vec<String> = view
                    .dcv
                    .iter()
                    .map(|d| {
                        // Whose inbox to check, when the certificate names an approver.
                        let approver = spec
                            .and_then(|spec| crate::dcv::rule_for(&spec.dcv, &d.domain))
                            .and_then(|rule| match &rule.method {
                                crate::spec::DcvMethod::Email { approver } => approver.as_deref(),
                                _ => None,
                            });
                        match approver {
                            Some(approver) => format!(
                                "{} {} ({}, approver `{approver}`)",
                                d.domain, d.status, d.method
                            ),
                            None => format!("{} {} ({})", d.domain, d.status, d.method),
                        }
                    })
                    .collect();
                Ok(format!(
                    "order {} is {} at `{}`{}",
                    view.order_id,
                    view.status.as_str(),
                    ca.name(),
                    if pending.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", pending.join(", "))
                    }
                ))
            }
            status => Err(Error::Other(format!(
                "order {} is {} at `{}`",
                view.order_id,
                status.as_str(),
                ca.name()
            ))),
        }
    }

    /// Prove control of the order's domains, then hand the CA the CSR. Published records and
    /// files are removed afterwards, whether validation worked or not.
    async fn validate(
        &self,
        change: &Change,
        state: &CertificateState,
        ca: &dyn CertificateAuthority,
        view: &OrderView,
    ) -> Result<OrderView, Error> {
        let spec = self.spec(&change.certificate)?;
        let order_id = view.order_id.as_str();
        let challenges = self
            .read_call("read the order's challenges", || ca.challenges(view))
            .await?;
        let chosen = crate::dcv::choose(&spec.dcv, &challenges)?;
        if chosen
            .iter()
            .any(|c| matches!(c.method, crate::spec::DcvMethod::Email { .. }))
        {
            return Ok(view.clone());
        }
        let intent = state.intent.as_ref().ok_or_else(|| {
            Error::Other(format!(
                "order {order_id} has no recorded key to finalize with"
            ))
        })?;
        let key = self.keys.read(&intent_key_file(state, intent)?)?;
        let csr = key.csr_der(&intent.common_name, &intent.sans)?;
        let published = self.dcv.publish(&chosen).await?;
        // A run killed here leaves validation files in web roots; the next apply sweeps them.
        self.failpoints.hit("after-dcv-published");
        let result = async {
            if !chosen.is_empty() {
                let answered: Vec<crate::ca::Challenge> =
                    chosen.iter().map(|c| c.challenge.clone()).collect();
                self.ca_call("answer the challenges", ca.respond(view, &answered))
                    .await?;
            }
            self.ca_call("finalize the order", ca.finalize(view, &csr))
                .await
        }
        .await;
        self.dcv.cleanup(published).await;
        result
    }

    /// Fetch an issued certificate and make it the current one; when the CA has none to
    /// collect yet, leave state as it is (the intent keeps the order) and say so: a later run
    /// fetches it. That is a wait, not a failure.
    /// `plan_until`: the end of the order's plan as the CA last reported it (`None`: not
    /// reported; what state holds for the same order is kept).
    async fn collect(
        &self,
        state: &mut CertificateState,
        ca: &dyn CertificateAuthority,
        order_id: &str,
        plan_until: Option<time::OffsetDateTime>,
    ) -> Result<Collected, Error> {
        let fetched = self
            .read_call("fetch certificate", || ca.fetch(order_id))
            .await?;
        let issued = match fetched {
            Fetched::Issued(issued) => issued,
            Fetched::NotYet { status, detail } => {
                return Ok(Collected::NotYet(format!(
                    "order {order_id} is {} at `{}` but its certificate is not ready ({detail}); fetched on a later run",
                    status.as_str(),
                    ca.name()
                )))
            }
        };
        let (info, _) = keys::inspect_chain(&issued.chain_pem)?;
        let intent = state.intent.clone();
        // The key of the issued certificate, by its public key: the one generated for the
        // intent, or (a reissue that kept the key) the current one. Never a path from state.
        let intent_key = intent.as_ref().and_then(|intent| {
            let key_id = intent.key_id(&state.id)?;
            let relative = keys::certificate_key_path(&state.name, &key_id).ok()?;
            self.keys.exists(&relative).then_some((key_id, relative))
        });
        let current_key = state.current_key_id();
        let key_id = match (intent_key, current_key) {
            (Some((key_id, relative)), _)
                if self.keys.read(&relative)?.spki_sha256() == info.spki_sha256 =>
            {
                key_id
            }
            (_, Some(key_id))
                if self
                    .keys
                    .certificate_key(&state.name, Some(&key_id), &info.spki_sha256)
                    .is_ok() =>
            {
                key_id
            }
            _ => {
                return Err(Error::Other(format!(
                    "order {order_id} at `{}` holds serial {} for a key certform does not hold (changed outside certform?)",
                    ca.name(),
                    info.serial
                )))
            }
        };
        let action = intent.as_ref().map(|i| i.kind.as_str()).unwrap_or("fetch");
        if let Some(intent) = &intent {
            state.ca = intent.ca.clone();
            state.spec_digest = intent.spec_digest.clone();
            state.spec_fields = intent.spec_fields.clone();
            state.key_algorithm = intent.key_algorithm.clone();
        }
        state.status = CertificateStatus::Issued;
        if state.order_id.as_deref() != Some(issued.order_id.as_str()) {
            state.plan_until = None;
        }
        if plan_until.is_some() {
            state.plan_until = plan_until;
        }
        state.order_id = Some(issued.order_id.clone());
        state.certificate_id = issued.certificate_id.clone();
        state.serial = Some(info.serial.clone());
        state.not_before = Some(info.not_before);
        state.not_after = Some(info.not_after);
        state.sha256_fingerprint = Some(info.sha256_fingerprint.clone());
        state.spki_sha256 = Some(info.spki_sha256.clone());
        state.common_name = info.common_name.clone().unwrap_or_default();
        state.sans = info.sans.clone();
        state.key_id = Some(key_id);
        state.legacy_key_file = None;
        state.intent = None;
        state.retry_after = None;
        state.backoff = None;
        state.renewal_window = None;
        push_history(
            state,
            self.now,
            action,
            &format!(
                "serial {}, expires {}",
                info.serial,
                format_time(info.not_after)
            ),
        );
        if let Some(last) = state.history.last_mut() {
            last.serial = Some(info.serial.clone());
        }
        self.store.save_chain(&state.name, &issued.chain_pem)?;
        self.failpoints.hit("after-chain");
        self.store.save_certificate(state)?;
        self.failpoints.hit("after-fetch");
        Ok(Collected::Done)
    }

    /// Write the current certificate to the change's deploy targets.
    async fn deploy(&self, change: &Change, state: &mut CertificateState) -> Result<String, Error> {
        let spec = self.spec(&change.certificate)?;
        let mut summary = vec![format!(
            "serial {}, expires {}",
            state.serial.as_deref().unwrap_or("?"),
            state.not_after.map(format_time).unwrap_or_default()
        )];
        for id in &change.undeploy {
            state.deployments.remove(id);
        }
        // A certificate already expired at this run's time (a clock pinned with
        // `CERTFORM_NOW` past the CA's, or a CA clock behind): deployed all the same, because
        // what it replaces is no newer, but said loudly.
        if let Some(not_after) = state.not_after.filter(|t| *t <= self.now) {
            if !change.deploy.is_empty() {
                tracing::warn!(certificate = %state.name, "deploying a certificate that already expired at the run's time");
                summary.push(format!(
                    "warning: it expired on {}, before this run's time {} (is `CERTFORM_NOW` pinned past the CA's clock?); deployed anyway, as nothing newer exists",
                    format_time(not_after),
                    format_time(self.now)
                ));
            }
        }
        let mut failures = Vec::new();
        if !change.deploy.is_empty() {
            let chain_pem = self.store.read_chain(&state.name)?.ok_or_else(|| {
                Error::Other(format!(
                    "state has no certificate chain for `{}`",
                    state.name
                ))
            })?;
            let (leaf, blocks) = keys::inspect_chain(&chain_pem)?;
            // The key is found from the certificate's name and key id, never from a path in
            // state, and must hold the certificate's public key: nothing else is deployed.
            let key = self.keys.certificate_key(
                &state.name,
                state.current_key_id().as_deref(),
                &leaf.spki_sha256,
            )?;
            let bundle = Bundle {
                cert_pem: blocks.first().cloned().unwrap_or_default(),
                chain_pem: blocks.iter().skip(1).cloned().collect::<Vec<_>>().concat(),
                key_pem: key.pem().to_string(),
                sha256_fingerprint: state.sha256_fingerprint.clone().unwrap_or_default(),
                name: state.name.clone(),
                serial: state.serial.as_ref().map(ToString::to_string),
                not_after: state.not_after.and_then(|at| {
                    at.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                }),
                sans: spec
                    .sans
                    .iter()
                    .map(|name| name.as_str().to_string())
                    .collect(),
            };
            for target in spec
                .deploy
                .iter()
                .filter(|t| change.deploy.contains(&t.id()))
            {
                let deployer = deploy::deployer_with_failpoints(target, &self.failpoints);
                let id = target.id();
                let outcome = match deployer
                    .deploy(
                        &bundle,
                        state.deployments.get(&id).map(Box::as_ref),
                        &target.digest(),
                        self.now,
                    )
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        // One target failing leaves the others to deploy; its record keeps
                        // the error, so the plan shows the deploy again next run.
                        let message = format!("deploy failed: {}", error_chain(&error));
                        failures.push(format!("{id}: {message}"));
                        let record = match state.deployments.get(&id) {
                            Some(previous) => DeployRecord {
                                reload_error: Some(message),
                                ..DeployRecord::clone(previous)
                            },
                            // Nothing deployed yet: the record names the certificate tried
                            // and no file, so every kind deploys in full next run.
                            None => DeployRecord {
                                sha256_fingerprint: bundle.sha256_fingerprint.clone(),
                                target_digest: target.digest(),
                                files: Default::default(),
                                deployed_at: self.now,
                                reload_error: Some(message),
                                serial: None,
                                verified: None,
                                verify_error: None,
                                paths: Vec::new(),
                                cleanup: target.cleanup(),
                                ssh: None,
                            },
                        };
                        state.deployments.insert(id, Box::new(record));
                        continue;
                    }
                };
                let mut note = if outcome.changed_files.is_empty() {
                    format!("{id}: up to date")
                } else {
                    format!("{id}: wrote {}", outcome.changed_files.join(", "))
                };
                if let Some(reload) = &outcome.reload {
                    if reload.success {
                        note.push_str(", reloaded");
                    } else {
                        failures.push(format!(
                            "reload `{}` for {id} failed: {}",
                            reload.command,
                            outcome.record.reload_error.as_deref().unwrap_or("failed")
                        ));
                    }
                }
                if let Some(error) = &outcome.record.verify_error {
                    failures.push(format!("verify for {id} failed: {error}"));
                } else if outcome.record.verified == Some(true) {
                    note.push_str(", verified");
                }
                summary.push(note);
                state.deployments.insert(id, Box::new(outcome.record));
            }
        }
        self.store.save_certificate(state)?;
        self.failpoints.hit("after-deploy");
        if failures.is_empty() {
            Ok(summary.join("; "))
        } else {
            Err(Error::Other(format!(
                "{} (retried on the next run)",
                failures.join("; ")
            )))
        }
    }

    /// Run a CA call once (orders, revocations and cancellations are not blindly retried).
    async fn ca_call<T, F>(&self, what: &str, call: F) -> Result<T, Error>
    where
        F: std::future::Future<Output = Result<T, CaError>>,
    {
        call.await.map_err(|source| Error::Ca {
            context: format!("failed to {what}"),
            source,
        })
    }

    /// Run an idempotent CA read once: the HTTP layer already retried it (5xx, timeouts, 429)
    /// per its policy, so a transient error here is the last word for this run.
    async fn read_call<T, F, Fut>(&self, what: &str, call: F) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, CaError>>,
    {
        call().await.map_err(|source| Error::Ca {
            context: format!("failed to {what}"),
            source,
        })
    }

    fn spec(&self, name: &str) -> Result<&CertificateSpec, Error> {
        self.config
            .certificates
            .get(name)
            .ok_or_else(|| Error::Other(format!("certificate `{name}` is not in config")))
    }

    fn account(&self, name: &str) -> Result<Arc<dyn CertificateAuthority>, Error> {
        self.accounts
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Other(format!("CA account `{name}` is not configured")))
    }
}

/// What `collect` did.
enum Collected {
    /// The certificate is the current one.
    Done,
    /// The CA has no certificate to collect yet (why, for the report).
    NotYet(String),
}

fn intent_ca(state: &CertificateState) -> &str {
    state
        .intent
        .as_ref()
        .map(|i| i.ca.as_str())
        .filter(|ca| !ca.is_empty())
        .unwrap_or(&state.ca)
}

/// The key file of `intent`'s key, derived from the certificate's name, id and the intent's
/// kind and tag.
fn intent_key_file(state: &CertificateState, intent: &Intent) -> Result<String, Error> {
    let key_id = intent.key_id(&state.id).ok_or_else(|| {
        Error::Other(format!(
            "the in-flight order of `{}` has tag `{}`, not `{}.<hex>`; its key cannot be located",
            state.name, intent.tag, state.id
        ))
    })?;
    Ok(keys::certificate_key_path(&state.name, &key_id)?)
}

fn require(current: Option<CertificateState>, name: &str) -> Result<CertificateState, Error> {
    current.ok_or_else(|| Error::Other(format!("certificate `{name}` is not in state")))
}

fn new_state(spec: &CertificateSpec) -> CertificateState {
    CertificateState {
        format: crate::state::FORMAT,
        name: spec.name.clone(),
        id: format!("cf-{}", random_hex(8)),
        ca: spec.ca.clone(),
        status: CertificateStatus::New,
        order_id: None,
        certificate_id: None,
        serial: None,
        not_before: None,
        not_after: None,
        sha256_fingerprint: None,
        spki_sha256: None,
        common_name: spec.common_name.to_string(),
        sans: spec.sans.iter().map(|n| n.to_string()).collect(),
        key_algorithm: spec.key.label(),
        key_id: None,
        legacy_key_file: None,
        spec_digest: String::new(),
        spec_fields: Default::default(),
        on_remove: spec.on_remove,
        prevent_destroy: spec.prevent_destroy,
        revoke_reason: spec.revoke_reason,
        intent: None,
        deployments: Default::default(),
        renewal_window: None,
        retry_after: None,
        plan_until: None,
        backoff: None,
        history: Vec::new(),
    }
}

fn push_history(state: &mut CertificateState, at: OffsetDateTime, action: &str, note: &str) {
    state.history.push(HistoryEntry {
        at,
        action: action.to_string(),
        serial: state.serial.clone(),
        note: note.to_string(),
    });
}

/// `n` random bytes as hex (ids and tags must not repeat across runs, even with a pinned clock).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to time and pid, still unique per run.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = format!("{nanos}-{}", std::process::id());
        let digest = <sha2::Sha256 as sha2::Digest>::digest(seed.as_bytes());
        return hex::encode(&digest[..n.min(32)]);
    }
    hex::encode(bytes)
}

/// Render an error with its `source` chain, one cause per `: `.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn commit_message(outcomes: &[Outcome]) -> String {
    let ok = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let failed = outcomes.len() - ok;
    let mut message = format!("certform apply: {ok} done");
    if failed > 0 {
        message.push_str(&format!(", {failed} failed"));
    }
    message.push_str("\n\n");
    for outcome in outcomes {
        match &outcome.result {
            Ok(summary) => message.push_str(&format!(
                "{} {}: {summary}\n",
                outcome.verb, outcome.certificate
            )),
            Err(error) => message.push_str(&format!(
                "{} {} FAILED: {error}\n",
                outcome.verb, outcome.certificate
            )),
        }
    }
    message
}

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
