//! `certform plan`.

use clap::ValueEnum;

use super::{Context, Failure, EXIT_CHANGES, EXIT_OK};
use crate::plan::render::{self, TextOptions};

/// Show what apply would do: refresh what the CAs hold and compare with the configuration
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Exit 2 when the plan has changes (0: none, 1: error)
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
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
    match args.format {
        Format::Text => print!(
            "{}",
            render::text(
                &planned.plan,
                TextOptions {
                    color: context.color
                }
            )
        ),
        Format::Json => print!("{}", render::json(&planned.plan)),
    }
    if args.detailed_exitcode && !planned.plan.is_empty() {
        Ok(EXIT_CHANGES)
    } else {
        Ok(EXIT_OK)
    }
}
