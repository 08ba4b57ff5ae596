//! `certform plan`.

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
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    let workspace = context.workspace()?;
    workspace.check_keys_dir()?;
    if let Some(mode) = crate::keys::KeyStore::new(workspace.keys_dir.clone()).exposed_mode() {
        eprintln!(
            "warning: keys_dir `{}` has mode {mode:04o} (others can reach the private keys); apply sets it to 0700",
            workspace.keys_dir.display()
        );
    }
    // The same warnings as `validate`: a missing secret fails the account that needs it.
    super::validate::print_findings(context, &crate::preflight::check(&workspace.config), false);
    let state = workspace.read_state()?;
    let runtime = context.runtime()?;
    let planned = runtime.block_on(async {
        let accounts =
            crate::ca::open_accounts(&workspace.config, &workspace.keys_dir, workspace.now, false)
                .await
                .map_err(|e| Failure::from_error(&e))?;
        Ok::<_, Failure>(workspace.plan(state, &accounts).await)
    })?;
    let files = crate::workspace::config_files(&context.config_path).map_err(Failure::from)?;
    let saved = SavedPlan::new(
        planned.plan.clone(),
        planned.fingerprint(&files, &workspace.config),
    );
    if let Some(out) = &args.out {
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
        Format::Json => print!("{}", saved.to_json()),
    }
    if args.detailed_exitcode && !planned.plan.is_empty() {
        Ok(EXIT_CHANGES)
    } else {
        Ok(EXIT_OK)
    }
}
