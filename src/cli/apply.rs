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
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    let workspace = context.workspace()?;
    workspace.check_keys_dir()?;
    let store =
        Arc::new(GitStore::open(&workspace.config.state).map_err(|e| Failure::from_error(&e))?);
    let _lock = store
        .lock("certform apply")
        .map_err(|e| Failure::from(crate::workspace::RunError::State(e)))?;
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
            .map_err(|e| Failure::from_error(&e))?;
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
        let failures = report.failures();
        if failures > 0 {
            eprintln!(
                "error: {failures} of {} change{} failed; the others were applied",
                report.outcomes.len(),
                if report.outcomes.len() == 1 { "" } else { "s" }
            );
            return Ok(EXIT_PARTIAL);
        }
        println!(
            "Apply complete: {} change{} applied.",
            report.outcomes.len(),
            if report.outcomes.len() == 1 { "" } else { "s" }
        );
        Ok(EXIT_OK)
    })
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
