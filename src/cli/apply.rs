//! `certform apply`.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use super::{Context, Failure, EXIT_OK, EXIT_PARTIAL};
use crate::apply::{Executor, FailPoints, RetryPolicy};
use crate::keys::KeyStore;
use crate::plan::render::{self, TextOptions};
use crate::state::{GitStore, StateStore};

/// Refresh, plan, and carry out the plan; then commit the new state to git
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Apply without asking for confirmation (required when not on a terminal)
    #[arg(long)]
    pub auto_approve: bool,

    /// How many certificates to work on at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,

    /// How long to wait for another run's state lock (`0`: fail at once), like `10m`
    ///
    /// A lock whose holder died on this host is taken over at once, without waiting.
    #[arg(long, default_value = "0", value_name = "DURATION", value_parser = super::unlock::parse_lock_timeout)]
    pub lock_timeout: std::time::Duration,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    let workspace = context.workspace()?;
    workspace.check_keys_dir()?;
    let mut store = GitStore::open(&workspace.config.state).map_err(|e| Failure::from_error(&e))?;
    store.set_failpoints(FailPoints::new(std::env::var("CERTFORM_FAILPOINT").ok()));
    let store = Arc::new(store);
    // Again now that the state repository exists: keys never go inside it.
    store
        .check_keys_dir(&workspace.keys_dir)
        .map_err(|e| Failure::from_error(&e))?;
    let _lock = super::unlock::take_lock(context, &store, "certform apply", args.lock_timeout)?;
    // What a killed run left behind is repaired first: the git repository (a killed commit),
    // then interrupted deploys and stale temp files.
    for note in store.recover().map_err(|e| Failure::from_error(&e))? {
        eprintln!("warning: {note}");
    }
    for warning in crate::apply::recover_interrupted(
        &workspace.config,
        &KeyStore::new(workspace.keys_dir.clone()),
        store.root(),
    ) {
        eprintln!("warning: {warning}");
    }
    let state = store.load().map_err(|e| Failure::from_error(&e))?;
    let runtime = context.runtime()?;
    runtime.block_on(async {
        let existing =
            crate::ca::open_accounts(&workspace.config, &workspace.keys_dir, workspace.now, false)
                .await
                .map_err(|e| Failure::from_error(&e))?;
        let mut planned = workspace.plan(state, &existing).await;
        crate::apply::record_observations(store.as_ref(), &mut planned.state, &planned.observed)
            .map_err(|e| Failure::from_error(&e))?;
        print!(
            "{}",
            render::text(
                &planned.plan,
                TextOptions {
                    color: context.color
                }
            )
        );
        if planned.plan.is_empty() {
            // Renewal windows just learned, or state a run killed before its commit left behind.
            let leftover = store
                .commit(
                    "certform apply: record refreshed state (renewal windows, interrupted runs)",
                )
                .map_err(|e| Failure::from_error(&e))?;
            if let Some(commit) = leftover {
                println!(
                    "refreshed state committed: {}",
                    &commit[..commit.len().min(12)]
                );
            }
            return Ok(EXIT_OK);
        }
        if !args.auto_approve {
            confirm()?;
        }
        let accounts =
            crate::ca::open_accounts(&workspace.config, &workspace.keys_dir, workspace.now, true)
                .await
                .map_err(|e| Failure::from_error(&e))?;
        let progress = progress_bar(planned.plan.changes.len());
        let on_done = progress.clone().map(|bar| {
            Arc::new(move |outcome: &crate::apply::Outcome| {
                bar.set_message(outcome.certificate.clone());
                bar.inc(1);
            }) as crate::apply::ProgressCallback
        });
        let executor = Arc::new(Executor {
            config: Arc::clone(&workspace.config),
            store: store.clone() as Arc<dyn StateStore>,
            keys: Arc::new(KeyStore::new(workspace.keys_dir.clone())),
            accounts,
            now: workspace.now,
            parallelism: usize::from(args.parallelism),
            retry: retry_policy(),
            failpoints: FailPoints::new(std::env::var("CERTFORM_FAILPOINT").ok()),
            dcv: Arc::new(crate::dcv::Validator::new(
                crate::dns::open_providers(&workspace.config)
                    .map_err(|e| Failure::from_error(&e))?,
            )),
            on_done,
        });
        let report = executor
            .run(&planned.plan, &planned.state)
            .await
            .map_err(|e| match &e {
                crate::apply::Error::State(inner) => Failure::from_error(inner),
                _ => Failure::from_error(&e),
            })?;
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
        println!();
        for outcome in &report.outcomes {
            match &outcome.result {
                Ok(summary) => println!(
                    "{} {} {}: {}",
                    context.paint("\x1b[32m", "✓"),
                    outcome.verb,
                    crate::config::escaped(&outcome.certificate),
                    crate::config::escaped(summary)
                ),
                Err(error) => println!(
                    "{} {} {}: {}",
                    context.paint("\x1b[31m", "✗"),
                    outcome.verb,
                    crate::config::escaped(&outcome.certificate),
                    crate::config::escaped(error)
                ),
            }
        }
        match &report.commit {
            Some(commit) => println!(
                "\nstate committed: {}{}",
                &commit[..commit.len().min(12)],
                if report.pushed { " (pushed)" } else { "" }
            ),
            None => println!("\nstate unchanged: nothing to commit"),
        }
        match summary(report.outcomes.len(), report.failures()) {
            Summary::Failed(line) => {
                eprintln!("error: {line}");
                Ok(EXIT_PARTIAL)
            }
            Summary::Complete(line) => {
                println!("{line}");
                Ok(EXIT_OK)
            }
        }
    })
}

/// The last line of an apply.
#[derive(Debug, PartialEq, Eq)]
enum Summary {
    /// Every change was applied.
    Complete(String),
    /// Some or all changes failed (printed after `error: `).
    Failed(String),
}

/// The last line for `failed` failures among `total` changes: it never speaks of other
/// changes that do not exist.
fn summary(total: usize, failed: usize) -> Summary {
    let changes = |n: usize| format!("{n} change{}", if n == 1 { "" } else { "s" });
    let applied = total.saturating_sub(failed);
    match (failed, applied) {
        (0, _) => Summary::Complete(format!("Apply complete: {} applied.", changes(total))),
        // Not "nothing was applied": a failed change may have made progress (an order placed,
        // recorded and committed) that the next run continues.
        (1, 0) => Summary::Failed("the only change failed".to_string()),
        (_, 0) => Summary::Failed(format!("all {} failed", changes(failed))),
        (_, 1) => Summary::Failed(format!(
            "{failed} of {} failed; the other change was applied",
            changes(total)
        )),
        (_, _) => Summary::Failed(format!(
            "{failed} of {} failed; the other {applied} were applied",
            changes(total)
        )),
    }
}

fn confirm() -> Result<(), Failure> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::new(
            "refusing to apply without confirmation: standard input is not a terminal",
        )
        .hint("review the plan above, then run `certform apply --auto-approve`"));
    }
    print!("\nDo you want to perform these actions? Only `yes` will be accepted: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new("cannot read the answer").caused_by(e.to_string()))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::new("apply cancelled"))
    }
}

fn progress_bar(len: usize) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    Some(bar)
}

/// Retry policy; `CERTFORM_RETRY_DELAY_MS` sets the first delay (0 in tests).
fn retry_policy() -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    if let Some(ms) = std::env::var("CERTFORM_RETRY_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        policy.base_delay = std::time::Duration::from_millis(ms);
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::{summary, Summary};

    #[test]
    fn the_summary_matches_what_happened() {
        let cases = [
            (
                1,
                0,
                Summary::Complete("Apply complete: 1 change applied.".into()),
            ),
            (
                3,
                0,
                Summary::Complete("Apply complete: 3 changes applied.".into()),
            ),
            (1, 1, Summary::Failed("the only change failed".into())),
            (15, 15, Summary::Failed("all 15 changes failed".into())),
            (
                15,
                14,
                Summary::Failed("14 of 15 changes failed; the other change was applied".into()),
            ),
            (
                15,
                1,
                Summary::Failed("1 of 15 changes failed; the other 14 were applied".into()),
            ),
            (
                2,
                1,
                Summary::Failed("1 of 2 changes failed; the other change was applied".into()),
            ),
        ];
        for (total, failed, expected) in cases {
            assert_eq!(summary(total, failed), expected, "{failed} of {total}");
        }
    }
}
