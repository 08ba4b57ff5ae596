//! `certform validate`.

use super::{Context, Failure, EXIT_OK};

/// Check the configuration without contacting any CA or touching state
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(context: &Context, _args: &Args) -> Result<i32, Failure> {
    let workspace = context.workspace()?;
    let config = &workspace.config;
    println!(
        "{} {} file{}, {} certificate{}, {} CA account{}",
        context.paint("\x1b[32m", "configuration is valid:"),
        config.files.len(),
        plural(config.files.len()),
        config.certificates.len(),
        plural(config.certificates.len()),
        config.cas.len(),
        plural(config.cas.len()),
    );
    Ok(EXIT_OK)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
