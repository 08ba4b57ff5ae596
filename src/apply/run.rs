//! One `apply` run, start to finish: load the workspace, open the state repository, take its
//! lock, repair what a killed run left behind, refresh and plan, ask for confirmation, carry
//! out the plan and commit. The caller (the CLI) decides how to ask, what to print and which
//! exit code to return; this module never prints, reads the terminal or the environment.
//!
//! Nothing is written to state before the caller confirms: what refresh observed (renewal
//! windows) is recorded in the same commit as the plan's actions.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::saved::SavedPlan;
use super::{Executor, FailPoints, ProgressCallback, Report, RetryPolicy};
use crate::keys::KeyStore;
use crate::plan::Plan;
use crate::state::{GitStore, LockGuard, StateStore};
use crate::workspace::{RunError, Workspace};

/// Loose objects in the state repository beyond which an apply that committed packs them.
pub const LOOSE_OBJECTS_BEFORE_PACKING: usize = 1024;

/// Packs in the state repository's object store past which a committing run merges them into
/// one (each commit writes one pack).
pub const PACKS_BEFORE_MERGING: usize = 50;

/// How to run one apply; the caller resolves every setting (flags, environment, clock).
pub struct ApplyOptions {
    /// Configuration file or directory.
    pub config_path: PathBuf,
    /// The run's clock.
    pub now: time::OffsetDateTime,
    /// How many certificates to work on at once (at least 1); `None`: each CA account's
    /// own number (`Capabilities::parallel_certificates`).
    pub parallelism: Option<usize>,
    /// How long to wait for another run's state lock (zero: fail at once).
    pub lock_timeout: Duration,
    /// Crash points to trigger (tests), for both the state store and the executor.
    pub failpoints: Option<String>,
    /// How the executor retries transient CA errors.
    pub retry: RetryPolicy,
    /// Called after each certificate finishes (progress display).
    pub progress: Option<ProgressCallback>,
    /// Which certificates to plan (`--target`) and to renew now with a new key (`--replace`).
    pub selection: crate::plan::Selection,
    /// Record in state what refresh found at the CAs and act on nothing (`--refresh-only`).
    pub refresh_only: bool,
    /// Carry out this saved plan instead of a new one, refusing it when its inputs changed.
    pub saved: Option<SavedPlan>,
    /// Carry out a plan that exceeds a safety threshold (`Plan::guards`).
    pub force: bool,
}

/// Something the caller may want to show while the run goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A configuration warning (deprecated or suspicious settings).
    ConfigWarning(String),
    /// Another run holds the state lock; this run waits for it up to `timeout`.
    WaitingForLock { holder: String, timeout: Duration },
    /// The lock of a run that died was taken over; `reason` says how it is known dead.
    LockTakenOver { holder: String, reason: String },
    /// Something a killed run left behind was repaired, or could not be.
    Recovered(String),
    /// A CA account could not list its orders for the inventory; the run goes on.
    InventoryFailed { ca: String, why: String },
    /// Work on the key store itself (keys moved or re-encrypted), done before planning.
    Keys(String),
}

/// How an apply ended, short of an error.
pub enum ApplyReport {
    /// The plan was empty: nothing to confirm. `commit` holds the refreshed state recorded
    /// (renewal windows, state a killed run left uncommitted), if any.
    Unchanged { plan: Plan, commit: Option<String> },
    /// The caller did not confirm the plan; nothing was written to state.
    Declined { plan: Plan },
    /// The plan exceeds a safety threshold (`Plan::guards`) and `force` was not set; nothing
    /// was asked and nothing was written to state.
    Guarded { plan: Plan },
    /// The plan was carried out (each certificate's outcome, the commit and push).
    Applied { plan: Plan, report: Report },
    /// `--refresh-only`: what refresh found was recorded (`commit`), nothing else was done.
    Refreshed {
        refresh: crate::plan::refresh_only::RefreshOnly,
        commit: Option<String>,
    },
}

/// Move or re-encrypt keys as `[state] keys` and `age_recipients` now ask (state-only work,
/// shown by plan) and commit that on its own; then drop the plaintext copies moved into the
/// repository. Refused, changing nothing, when a task must decrypt and the identity is missing.
fn maintain_keys(
    workspace: &Workspace,
    keys: &KeyStore,
    store: &GitStore,
    notify: &mut dyn FnMut(Notice),
) -> Result<(), RunError> {
    let key_error = |error: crate::keys::KeyError| RunError::Apply(super::Error::Key(error));
    if keys.is_age() {
        // ACME account files from before `keys = "age"`: sealed into the repository (the
        // plaintext stays in keys_dir with the account's order index).
        for (name, settings) in &workspace.config.cas {
            let relative = crate::keys::sealed_account_path(name);
            let plain = workspace
                .keys_dir
                .join("acme")
                .join(name)
                .join("account.json");
            if !matches!(settings.kind, crate::config::CaKind::Acme(_))
                || keys.holds(&relative)
                || !plain.is_file()
            {
                continue;
            }
            let bytes = std::fs::read(&plain).map_err(|source| {
                key_error(crate::keys::KeyError::Io {
                    action: "read",
                    path: plain.clone(),
                    source,
                })
            })?;
            keys.write_sealed(&relative, &bytes).map_err(key_error)?;
            notify(Notice::Keys(format!(
                "ACME account `{name}`: account key sealed into the state repository"
            )));
        }
    }
    let tasks = crate::keys::maintenance::plan(keys).map_err(key_error)?;
    let identity_problem = keys
        .identity_problem()
        .or_else(|| keys.legacy().and_then(KeyStore::identity_problem));
    if let (Some(task), Some(problem)) = (
        tasks.iter().find(|task| task.needs_identity()),
        identity_problem,
    ) {
        return Err(key_error(crate::keys::KeyError::NoIdentity {
            path: keys.dir().join(&task.certificate),
            reason: format!(
                "{} must be done first, but {}",
                task.describe(),
                problem.reason
            ),
            hint: problem.hint.clone(),
        }));
    }
    let done = crate::keys::maintenance::run(keys, &tasks).map_err(key_error)?;
    if tasks.is_empty() {
        // Only `keys/recipients.txt`, if anything: committed with the run's own commit.
        return Ok(());
    }
    for line in &done.lines {
        notify(Notice::Keys(line.clone()));
    }
    let mut message = String::from("certform apply: key store (state only)\n\n");
    for line in &done.lines {
        message.push_str(&format!("- {line}\n"));
    }
    store.commit(&message)?;
    done.cleanup(keys).map_err(key_error)
}

/// Run one apply. `notify` hears what the run does before the plan exists; `confirm` sees
/// the plan (only when it has changes) and returns whether to carry it out.
pub async fn apply(
    options: ApplyOptions,
    notify: &mut dyn FnMut(Notice),
    confirm: impl FnOnce(&Plan) -> bool,
) -> Result<ApplyReport, RunError> {
    let workspace = Workspace::load(&options.config_path, options.now)?;
    for warning in &workspace.config.warnings {
        notify(Notice::ConfigWarning(warning.to_string()));
    }
    workspace.check_keys_dir()?;
    let mut store = GitStore::open(&workspace.config.state)?;
    store.set_failpoints(FailPoints::new(options.failpoints.clone()));
    let store = Arc::new(store);
    // Again now that the state repository exists: keys never go inside it.
    store.check_keys_dir(&workspace.keys_dir)?;
    let _lock = take_lock(&store, "certform apply", options.lock_timeout, notify)?;
    // The plan's check cache is read while the repair and the state load run.
    crate::check_cache::prefetch(store.git_dir());
    // What a killed run left behind is repaired first: the git repository (a killed commit),
    // then interrupted deploys and stale temp files.
    for note in store.recover()? {
        notify(Notice::Recovered(note));
    }
    if workspace.config.state.push {
        store.check_push_credentials()?;
    }
    let keys = workspace.key_store(Some(store.clone() as Arc<dyn StateStore>));
    for warning in super::recover_interrupted(&workspace.config, &keys, store.root()) {
        notify(Notice::Recovered(warning));
    }
    // HTTP validation files a killed run left in web roots.
    let dcv_journal = store.git_dir().join(crate::dcv::journal::FILE_NAME);
    for note in crate::dcv::journal::sweep(&dcv_journal).await {
        notify(Notice::Recovered(note));
    }
    maintain_keys(&workspace, &keys, store.as_ref(), notify)?;
    let state = store.load()?;
    options.selection.check(
        workspace.config.certificates.keys(),
        state.certificates.keys(),
    )?;
    // Accounts that exist already are opened once, for the plan, and reused to apply it.
    let mut accounts =
        crate::ca::open_accounts(&workspace.config, &workspace.keys_dir, workspace.now, false)
            .await?;
    // A saved plan is replanned with the selection it was made with (`--target`/`--replace`).
    let selection = match &options.saved {
        Some(saved) => saved.selection(),
        None => options.selection.clone(),
    };
    let mut planned = workspace.plan(state, &accounts, &selection).await;
    for (ca, listing) in &planned.observed.ca_inventory {
        if let crate::ca_inventory::Listing::Failed(why) = listing {
            notify(Notice::InventoryFailed {
                ca: ca.clone(),
                why: why.clone(),
            });
        }
    }
    if options.refresh_only {
        let refresh = crate::plan::refresh_only::refresh_only(
            &planned.state,
            &planned.observed,
            workspace.now,
        );
        for update in &refresh.updates {
            store.save_certificate(update)?;
        }
        super::record_inventory(store.as_ref(), &planned.state, &planned.observed)?;
        let commit = store.commit("certform apply --refresh-only: record what the CAs hold")?;
        return Ok(ApplyReport::Refreshed { refresh, commit });
    }
    if let Some(saved) = options.saved {
        // Exactly the reviewed plan, or nothing: the inputs it was made from must not have
        // moved, and no action of the fresh plan is added.
        let files = crate::workspace::config_files(&options.config_path)?;
        saved.check(&planned.fingerprint(&files, &workspace.config))?;
        // The same inputs at the plan's own clock give the same actions, unless the file was
        // edited: a saved plan cannot smuggle in an action its inputs do not call for.
        let capabilities = workspace.capabilities();
        let mut certificates = workspace.config.certificates.clone();
        certificates.retain(|name, _| selection.includes(name));
        let replanned = crate::plan::plan(&crate::plan::PlanInput {
            certificates: &certificates,
            state: &planned.state,
            observed: &planned.observed,
            capabilities: &capabilities,
            replace: &selection.replace,
            now: saved.plan.now,
            thresholds: workspace.config.thresholds,
        });
        saved.check_actions(&replanned)?;
        planned.plan = saved.plan;
    }
    if planned.plan.is_empty() {
        // Renewal windows just learned, or state a run killed before its commit left behind.
        super::record_observations(store.as_ref(), &mut planned.state, &planned.observed)?;
        super::record_inventory(store.as_ref(), &planned.state, &planned.observed)?;
        let commit = store
            .commit("certform apply: record refreshed state (renewal windows, CA inventory, interrupted runs)")?;
        if workspace.config.state.push && (commit.is_some() || store.push_pending()) {
            let earlier = commit.is_none();
            store.push()?;
            if earlier {
                notify(Notice::Recovered(
                    "pushed the state commits an earlier run left unpushed".to_string(),
                ));
            }
        }
        return Ok(ApplyReport::Unchanged {
            plan: planned.plan,
            commit,
        });
    }
    if !planned.plan.guards.is_empty() && !options.force {
        return Ok(ApplyReport::Guarded { plan: planned.plan });
    }
    if !confirm(&planned.plan) {
        return Ok(ApplyReport::Declined { plan: planned.plan });
    }
    // Observations are written now, and committed with the plan's actions.
    super::record_observations(store.as_ref(), &mut planned.state, &planned.observed)?;
    super::record_inventory(store.as_ref(), &planned.state, &planned.observed)?;
    // Accounts the plan did not find (never used) are created only now, after confirmation.
    let created = crate::ca::open_accounts_except(
        &workspace.config,
        &workspace.keys_dir,
        workspace.now,
        true,
        &accounts,
    )
    .await?;
    accounts.extend(created);
    // ACME account files sealed in the repository (`keys = "age"`) go into the state commit.
    for (name, settings) in &workspace.config.cas {
        if matches!(settings.kind, crate::config::CaKind::Acme(_)) {
            keys.record_sealed(&crate::keys::sealed_account_path(name))
                .map_err(|error| RunError::Apply(super::Error::Key(error)))?;
        }
    }
    let (parallelism, per_ca) = match options.parallelism {
        Some(parallelism) => (parallelism.max(1), std::collections::BTreeMap::new()),
        None => {
            let per_ca: std::collections::BTreeMap<String, usize> = workspace
                .capabilities()
                .into_iter()
                .map(|(ca, capabilities)| (ca, capabilities.parallel_certificates.max(1)))
                .collect();
            (per_ca.values().sum::<usize>().max(1), per_ca)
        }
    };
    let executor = Arc::new(Executor {
        config: Arc::clone(&workspace.config),
        store: store.clone() as Arc<dyn StateStore>,
        keys: Arc::new(keys),
        accounts,
        now: workspace.now,
        parallelism,
        per_ca,
        retry: options.retry,
        failpoints: FailPoints::new(options.failpoints),
        dcv: Arc::new(
            crate::dcv::Validator::new(crate::dns::open_providers(&workspace.config)?)
                .with_journal(dcv_journal),
        ),
        on_done: options.progress,
    });
    let report = executor.run(&planned.plan, &planned.state).await?;
    if report.commit.is_some() {
        store.pack_loose_objects(LOOSE_OBJECTS_BEFORE_PACKING, PACKS_BEFORE_MERGING);
    }
    Ok(ApplyReport::Applied {
        plan: planned.plan,
        report,
    })
}

/// Take the state lock for `command`, waiting up to `timeout` for a holder that runs; tell
/// `notify` when it waits and when a dead holder's lock is taken over.
pub fn take_lock(
    store: &GitStore,
    command: &str,
    timeout: Duration,
    notify: &mut dyn FnMut(Notice),
) -> Result<LockGuard, crate::state::Error> {
    let guard = match store.lock(command) {
        Err(crate::state::Error::Locked { holder, .. }) if !timeout.is_zero() => {
            notify(Notice::WaitingForLock {
                holder: holder.to_string(),
                timeout,
            });
            store.lock_waiting(command, timeout)
        }
        other => other,
    }?;
    if let Some((holder, death)) = guard.taken_over() {
        notify(Notice::LockTakenOver {
            holder: holder.to_string(),
            reason: death.describe(holder.pid),
        });
    }
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const CONFIG: &str = r#"
[state]
repo = "state"
keys_dir = "keys"

[ca.local]
kind = "local"

[certificate.web]
common_name = "www.example.test"
deploy = [{ kind = "files", dir = "out/web" }]
"#;

    fn options(dir: &Path) -> ApplyOptions {
        ApplyOptions {
            config_path: dir.join("certform.toml"),
            now: time::OffsetDateTime::now_utc(),
            parallelism: Some(1),
            lock_timeout: Duration::ZERO,
            failpoints: None,
            retry: RetryPolicy::default(),
            progress: None,
            selection: crate::plan::Selection::default(),
            refresh_only: false,
            saved: None,
            force: false,
        }
    }

    fn files_below(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(current) = stack.pop() {
            for entry in std::fs::read_dir(&current).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push((path.clone(), std::fs::read(&path).unwrap()));
                }
            }
        }
        files.sort();
        files
    }

    #[tokio::test]
    async fn a_declined_plan_writes_nothing_and_a_confirmed_one_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("certform.toml"), CONFIG).unwrap();

        let mut asked = Vec::new();
        let ended = apply(options(dir.path()), &mut |_| {}, |plan| {
            asked.push(plan.changes.len());
            false
        })
        .await
        .unwrap();
        assert!(matches!(ended, ApplyReport::Declined { .. }));
        assert_eq!(asked, [1]);
        // The local CA is created only once the plan is confirmed.
        assert!(!dir.path().join("keys/local-ca/local").exists());

        let before = files_below(&dir.path().join("state"));
        let ended = apply(options(dir.path()), &mut |_| {}, |_| false)
            .await
            .unwrap();
        assert!(matches!(ended, ApplyReport::Declined { .. }));
        assert!(before == files_below(&dir.path().join("state")));

        let ended = apply(options(dir.path()), &mut |_| {}, |_| true)
            .await
            .unwrap();
        let ApplyReport::Applied { report, .. } = ended else {
            panic!("the confirmed plan was not applied");
        };
        assert_eq!(report.failures(), 0);
        assert!(report.commit.is_some());
        assert!(dir.path().join("out/web/cert.pem").exists());

        let ended = apply(options(dir.path()), &mut |_| {}, |_| {
            panic!("an empty plan is not confirmed")
        })
        .await
        .unwrap();
        assert!(matches!(ended, ApplyReport::Unchanged { commit: None, .. }));
    }

    #[tokio::test]
    async fn accounts_the_plan_opened_are_not_opened_again() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::load(&[crate::config::Source {
            path: dir.path().join("certform.toml"),
            text: CONFIG.to_string(),
        }])
        .unwrap();
        let keys = dir.path().join("keys");
        let now = time::OffsetDateTime::now_utc();
        let opened = crate::ca::open_accounts(&config, &keys, now, true)
            .await
            .unwrap();
        assert_eq!(opened.keys().collect::<Vec<_>>(), ["local"]);
        let again = crate::ca::open_accounts_except(&config, &keys, now, true, &opened)
            .await
            .unwrap();
        assert!(again.is_empty());
        let all = crate::ca::open_accounts_except(&config, &keys, now, true, &Default::default())
            .await
            .unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["local"]);
    }
}
