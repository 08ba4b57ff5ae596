//! `certform schema`.

use super::{Context, Failure, EXIT_OK};

/// Print the JSON Schema of a configuration file (the source of schemas/config.schema.json)
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_context: &Context, _args: &Args) -> Result<i32, Failure> {
    print!("{}", crate::config::json_schema());
    Ok(EXIT_OK)
}
