//! `certform apply`.

use std::io::IsTerminal;
use std::sync::Arc;

use std::sync::Mutex;

use super::{Context, Failure, EXIT_OK, EXIT_PARTIAL};
use crate::apply::{self, ApplyOptions, ApplyReport, Notice, RetryPolicy};
use crate::plan::render::{self, TextOptions};
use crate::plan::Plan;

/// Refresh, plan, and carry out the plan; then commit the new state to git
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A plan saved by `certform plan --out FILE`: carry out exactly its actions, without
    /// asking (it was reviewed), and refuse it when the configuration, the state or the CA
    /// read-back it was made from changed
    #[arg(value_name = "PLAN_FILE", conflicts_with_all = ["targets", "replace", "refresh_only"])]
    pub plan: Option<std::path::PathBuf>,

    /// Apply without asking for confirmation (required when not on a terminal)
    #[arg(long)]
    pub auto_approve: bool,

    /// How many certificates to work on at once [default: each CA account's own: 16 for the
    /// local CA, 8 for ACME, 4 for DigiCert and Sectigo]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: Option<u16>,

    /// How long to wait for another run's state lock (`0`: fail at once), like `10m`
    ///
    /// A lock whose holder died on this host is taken over at once, without waiting.
    #[arg(long, default_value = "0", value_name = "DURATION", value_parser = super::unlock::parse_lock_timeout)]
    pub lock_timeout: std::time::Duration,

    #[command(flatten)]
    pub selection: super::plan::SelectionArgs,
    /// Carry out a plan that exceeds a safety threshold (`[defaults] max_destructive`,
    /// `max_reissue_percent`); without it such a plan is refused before any change
    #[arg(long)]
    pub force: bool,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    let progress: Arc<Mutex<Option<indicatif::ProgressBar>>> = Arc::default();
    let on_done = {
        let progress = Arc::clone(&progress);
        Arc::new(move |outcome: &apply::Outcome| {
            if let Some(bar) = lock_bar(&progress).as_ref() {
                bar.set_message(outcome.certificate.clone());
                bar.inc(1);
            }
        }) as apply::ProgressCallback
    };
    let saved = args.plan.as_deref().map(read_saved).transpose()?;
    let approved = args.auto_approve || saved.is_some();
    let options = ApplyOptions {
        config_path: context.config_path.clone(),
        now: context.now,
        parallelism: args.parallelism.map(usize::from),
        lock_timeout: args.lock_timeout,
        failpoints: std::env::var("CERTFORM_FAILPOINT").ok(),
        retry: retry_policy(),
        progress: Some(on_done),
        selection: args.selection.selection(),
        refresh_only: args.selection.refresh_only,
        saved,
        force: args.force,
    };
    let mut notify = |notice: Notice| super::unlock::print_notice(context, notice);
    let mut refusal = None;
    let confirm = |plan: &Plan| {
        print_plan(context, plan);
        if !approved {
            if let Err(failure) = ask() {
                refusal = Some(failure);
                return false;
            }
        }
        *lock_bar(&progress) = progress_bar(plan.changes.len());
        true
    };
    let runtime = context.runtime()?;
    let ended = runtime.block_on(apply::apply(options, &mut notify, confirm))?;
    let (plan, report) = match ended {
        ApplyReport::Unchanged { plan, commit } => {
            print_plan(context, &plan);
            if let Some(commit) = commit {
                println!(
                    "refreshed state committed: {}",
                    &commit[..commit.len().min(12)]
                );
            }
            return Ok(missed_renewals(&plan, None).unwrap_or(EXIT_OK));
        }
        ApplyReport::Guarded { plan } => {
            print_plan(context, &plan);
            let mut failure = Failure::new(
                "the plan exceeds a safety threshold; nothing was changed".to_string(),
            );
            for guard in &plan.guards {
                failure = failure.caused_by(guard.message.clone());
            }
            return Err(failure.hint(
                "review the plan, then run `certform apply --force` to carry it out, or raise the threshold in `[defaults]`"
                    .to_string(),
            ));
        }
        ApplyReport::Declined { .. } => {
            return Err(refusal.unwrap_or_else(|| Failure::new("apply cancelled")))
        }
        ApplyReport::Applied { plan, report } => (plan, report),
        ApplyReport::Refreshed { refresh, commit } => {
            print!("{}", crate::plan::refresh_only::render(&refresh));
            if let Some(commit) = commit {
                println!(
                    "refreshed state committed: {}",
                    &commit[..commit.len().min(12)]
                );
            }
            return Ok(EXIT_OK);
        }
    };
    if let Some(bar) = lock_bar(&progress).take() {
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
                crate::config::escaped(&error.message)
            ),
        }
    }
    for outcome in &report.outcomes {
        if let Err(error) = &outcome.result {
            certificate_failure(&outcome.certificate, outcome.verb, error).report();
        }
    }
    match &report.commit {
        Some(commit) => println!(
            "\nstate committed: {}{}",
            &commit[..commit.len().min(12)],
            match (report.pushed, report.replayed) {
                (true, true) => " (pushed, replayed on the remote's newer commits)",
                (true, false) => " (pushed)",
                _ => "",
            }
        ),
        None => println!("\nstate unchanged: nothing to commit"),
    }
    let missed = missed_renewals(&plan, Some(&report));
    match summary(report.outcomes.len(), report.failures()) {
        Summary::Failed(line) => {
            eprintln!("error: {line}");
            Ok(EXIT_PARTIAL)
        }
        Summary::Complete(line) => {
            println!("{line}");
            Ok(missed.unwrap_or(EXIT_OK))
        }
    }
}

/// A certificate at risk of expiring that this run did not renew is never silent: an error
/// line and exit code 3, even when everything else succeeded.
fn missed_renewals(plan: &Plan, report: Option<&apply::Report>) -> Option<i32> {
    let renewed = |name: &String| {
        report.is_some_and(|report| {
            report
                .outcomes
                .iter()
                .any(|o| &o.certificate == name && o.result.is_ok())
        })
    };
    let missed: Vec<String> = plan
        .at_risk
        .iter()
        .filter(|name| !renewed(name))
        .map(|name| format!("`{}`", crate::config::escaped(name)))
        .collect();
    if missed.is_empty() {
        return None;
    }
    Failure::new(format!(
        "{} at risk of expiring and not renewed by this run: {}",
        if missed.len() == 1 {
            "a certificate is"
        } else {
            "certificates are"
        },
        missed.join(", ")
    ))
    .hint(
        "see the plan's warnings above; `certform status --status at-risk` lists them".to_string(),
    )
    .report();
    Some(EXIT_PARTIAL)
}

/// Read a saved plan, refusing one of another format version.
fn read_saved(path: &std::path::Path) -> Result<apply::saved::SavedPlan, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(format!("cannot read the saved plan `{}`", path.display()))
            .caused_by(e.to_string())
    })?;
    apply::saved::SavedPlan::parse(&text).map_err(|refusal| {
        Failure::new(format!("cannot apply `{}`", path.display()))
            .caused_by(refusal.to_string())
            .hint(refusal.hint())
    })
}

/// One failed certificate for stderr: `error:`, each cause once, the hint.
fn certificate_failure(certificate: &str, verb: &str, error: &apply::Failure) -> Failure {
    let mut failure = Failure::new(format!(
        "certificate `{certificate}` ({verb}): {}",
        error.message
    ));
    for cause in &error.causes {
        failure = failure.caused_by(cause.clone());
    }
    if let Some(hint) = &error.hint {
        failure = failure.hint(hint.clone());
    }
    failure
}

fn print_plan(context: &Context, plan: &Plan) {
    print!(
        "{}",
        render::text(
            plan,
            TextOptions {
                color: context.color
            }
        )
    );
}

/// The progress bar, shared with the executor's callback (a poisoned lock still holds it).
fn lock_bar(
    progress: &Mutex<Option<indicatif::ProgressBar>>,
) -> std::sync::MutexGuard<'_, Option<indicatif::ProgressBar>> {
    progress
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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

/// Ask on the terminal whether to carry out the plan printed above; only `yes` accepts.
fn ask() -> Result<(), Failure> {
    super::ask_yes(
        "Do you want to perform these actions?",
        "refusing to apply",
        "review the plan above, then run `certform apply --auto-approve`",
        "apply cancelled",
    )
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
