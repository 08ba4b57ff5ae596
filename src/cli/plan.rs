//! `certform plan`.

use std::mem::ManuallyDrop;
use std::path::PathBuf;

use clap::ValueEnum;

use super::{Context, Failure, EXIT_CHANGES, EXIT_OK};
use crate::apply::saved::SavedPlan;
use crate::plan::render::{self, TextOptions};

/// Show what apply would do: refresh what the CAs hold and compare with the configuration
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Exit 2 when the plan has changes (0: none, 1: error)
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// Output format (`markdown`: for a pull-request comment; `json`: schemas/plan.schema.json)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also save the plan to FILE for `certform apply FILE` (refused once the config, state or CA read-back moved)
    #[arg(long, value_name = "FILE", conflicts_with = "refresh_only")]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub selection: SelectionArgs,
}

/// `--target`, `--replace` and `--refresh-only`, shared by `plan` and `apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct SelectionArgs {
    /// Plan only this certificate (repeatable); the others are not refreshed or touched
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,

    /// Renew this certificate now with a new key (repeatable): the recovery for a lost or compromised key
    #[arg(long = "replace", value_name = "NAME")]
    pub replace: Vec<String>,

    /// Only record in state what the CAs hold (revocations, renewal windows); order, revoke and deploy nothing
    #[arg(long, conflicts_with = "replace")]
    pub refresh_only: bool,
}

impl SelectionArgs {
    pub fn selection(&self) -> crate::plan::Selection {
        crate::plan::Selection {
            targets: self.targets.iter().cloned().collect(),
            replace: self.replace.iter().cloned().collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    // The state is read while the configuration is validated; the check cache once it is.
    let (workspace, early) = context.workspace_reading_state()?;
    // The process exits once this returns: the configuration, the state and the observations
    // of every certificate are left to the operating system instead of being freed one
    // allocation at a time (~20 ms of a 10,000-certificate `plan`, after its output).
    let workspace = ManuallyDrop::new(workspace);
    workspace.check_keys_dir()?;
    let keys = workspace.key_store(None);
    if let Some(mode) = keys.exposed_mode() {
        eprintln!(
            "warning: keys_dir `{}` has mode {mode:04o} (others can reach the private keys); apply sets it to 0700",
            workspace.keys_dir.display()
        );
    }
    // The same warnings as `validate`: a missing secret fails the account that needs it.
    super::validate::print_findings(context, &crate::preflight::check(&workspace.config), false);
    let state = workspace.take_state_for_plan(early)?;
    let selection = args.selection.selection();
    selection
        .check(
            workspace.config.certificates.keys(),
            state.certificates.keys(),
        )
        .map_err(|unknown| {
            let failure = Failure::from_error(&unknown);
            match &unknown.hint {
                Some(hint) => failure.hint(hint.clone()),
                None => failure,
            }
        })?;
    let runtime = context.runtime()?;
    let planned = runtime.block_on(async {
        let accounts =
            crate::ca::open_accounts(&workspace.config, &workspace.keys_dir, workspace.now, false)
                .await
                .map_err(|e| Failure::from_error(&e))?;
        Ok::<_, Failure>(workspace.plan(state, &accounts, &selection).await)
    })?;
    let planned = ManuallyDrop::new(planned);
    for (ca, listing) in &planned.observed.ca_inventory {
        if let crate::ca_inventory::Listing::Failed(why) = listing {
            eprintln!(
                "{}: {}",
                context.paint("\x1b[33m", "warning"),
                crate::config::escaped(&crate::ca_inventory::Listing::warning(ca, why))
            );
        }
    }
    if args.selection.refresh_only {
        let refresh = crate::plan::refresh_only::refresh_only(
            &planned.state,
            &planned.observed,
            workspace.now,
        );
        match args.format {
            Format::Text | Format::Markdown => {
                print!("{}", crate::plan::refresh_only::render(&refresh));
                if selection.targets.is_empty() {
                    for line in inventory_lines(&workspace.config, &planned) {
                        println!("\n{line}");
                    }
                }
            }
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&refresh.observations)
                    .map_err(|e| { Failure::new("cannot render JSON").caused_by(e.to_string()) })?
            ),
        }
        return Ok(if args.detailed_exitcode && !refresh.records_nothing() {
            EXIT_CHANGES
        } else {
            EXIT_OK
        });
    }
    // The saved form (and its fingerprint, a digest of the whole state) only when asked for.
    let saved = if args.out.is_some() || args.format == Format::Json {
        let files = crate::workspace::config_files(&context.config_path).map_err(Failure::from)?;
        Some(
            SavedPlan::new(
                planned.plan.clone(),
                planned.fingerprint(&files, &workspace.config),
            )
            .with_selection(&selection),
        )
    } else {
        None
    };
    if let (Some(out), Some(saved)) = (&args.out, &saved) {
        crate::atomic_file::write(out, saved.to_json().as_bytes(), 0o644).map_err(|e| {
            Failure::new(format!("cannot write the plan to `{}`", out.display()))
                .caused_by(e.to_string())
        })?;
        // On stderr: stdout stays the plan alone (a PR comment body).
        eprintln!(
            "plan saved to `{}`; to carry out exactly these actions, run: certform apply {}",
            out.display(),
            out.display()
        );
    }
    match args.format {
        Format::Markdown => print!("{}", crate::plan::markdown::render(&planned.plan)),
        Format::Text => print!(
            "{}",
            render::text(
                &planned.plan,
                TextOptions {
                    color: context.color
                }
            )
        ),
        Format::Json => {
            if let Some(saved) = &saved {
                print!("{}", saved.to_json())
            }
        }
    }
    if matches!(args.format, Format::Text | Format::Markdown) && selection.targets.is_empty() {
        for line in inventory_lines(&workspace.config, &planned) {
            println!("\n{line}");
        }
    }
    let key_tasks = show_key_tasks(&keys, args.format)?;
    if args.detailed_exitcode && (!planned.plan.is_empty() || key_tasks > 0) {
        Ok(EXIT_CHANGES)
    } else {
        Ok(EXIT_OK)
    }
}

/// The inventory's one line per CA account with unmanaged or duplicate orders: from this
/// run's listing, else from the last one recorded in state. Plan acts on none of them.
fn inventory_lines(
    config: &crate::config::Config,
    planned: &crate::workspace::Planned,
) -> Vec<String> {
    let records: Vec<&crate::ca_inventory::CaInventory> = config
        .cas
        .keys()
        .filter_map(|ca| match planned.observed.ca_inventory.get(ca) {
            Some(crate::ca_inventory::Listing::Listed(record)) => Some(record),
            _ => planned.state.ca_inventory.get(ca),
        })
        .collect();
    crate::inventory::plan_lines(&records)
}

/// Show the key store's own work (keys moved or re-encrypted, which apply does first) and
/// whether it can be done; returns how many tasks there are. On stdout after a text plan, on
/// stderr otherwise (stdout stays the plan document).
fn show_key_tasks(keys: &crate::keys::KeyStore, format: Format) -> Result<usize, Failure> {
    let tasks = crate::keys::maintenance::plan(keys).map_err(|e| Failure::from_error(&e))?;
    if tasks.is_empty() {
        return Ok(0);
    }
    let identity_problem = keys.identity_problem().or_else(|| {
        keys.legacy()
            .and_then(crate::keys::KeyStore::identity_problem)
    });
    let mut text = String::from("\nKey store (state only; apply does this first):\n");
    for task in &tasks {
        text.push_str(&format!("  ~ {}\n", task.describe()));
    }
    if let (true, Some(problem)) = (
        tasks
            .iter()
            .any(crate::keys::maintenance::KeyTask::needs_identity),
        identity_problem,
    ) {
        text.push_str(&format!(
            "error: these keys must be decrypted first, but {}\nhint: {}\n",
            problem.reason, problem.hint
        ));
    }
    match format {
        Format::Text => print!("{text}"),
        Format::Markdown | Format::Json => eprint!("{text}"),
    }
    Ok(tasks.len())
}
