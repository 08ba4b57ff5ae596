//! `certform schema`.

use super::{Context, Failure, EXIT_OK};

/// Print the JSON Schema of a configuration file (the source of schemas/config.schema.json)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the schema of the plan document instead (`plan --format json`, `plan --out`;
    /// the source of schemas/plan.schema.json)
    #[arg(long)]
    pub plan: bool,
}

pub fn run(_context: &Context, args: &Args) -> Result<i32, Failure> {
    if args.plan {
        print!("{}", crate::apply::saved::json_schema());
    } else {
        print!("{}", crate::config::json_schema());
    }
    Ok(EXIT_OK)
}
