//! `certform import NAME`: adopt a CA account's existing orders into state and write config
//! stubs for them.

use std::path::PathBuf;

use super::ca::account_failure;
use super::{Context, Failure, EXIT_OK};
use crate::import::{ImportError, ImportOptions, Progress};

/// Adopt the account's existing orders into state and write config stubs for them
///
/// Imported certificates have no private key in `keys_dir` (the CA never had it): they are
/// tracked, renewed with a new key when due, and cannot be deployed until then.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The account's name (`[ca.NAME]`)
    pub name: String,

    /// Order statuses to skip, comma-separated (e.g. `expired,revoked`)
    #[arg(long, value_delimiter = ',')]
    pub exclude_status: Vec<String>,

    /// Write the config stubs to this file (else they are printed)
    #[arg(long)]
    pub write_config: Option<PathBuf>,

    /// How long to wait for another run's state lock (`0`: fail at once), like `10m`
    #[arg(long, default_value = "0", value_name = "DURATION", value_parser = super::unlock::parse_lock_timeout)]
    pub lock_timeout: std::time::Duration,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    let bar = progress_bar();
    let shown = bar.clone();
    let progress = move |event: Progress| {
        let Some(bar) = &shown else {
            return;
        };
        match event {
            Progress::Started { total } => {
                bar.set_length(total as u64);
                bar.set_message("certificates downloaded");
            }
            Progress::Downloaded => bar.inc(1),
            Progress::Committed { imported } => {
                bar.set_message(format!("certificates downloaded, {imported} committed"));
            }
            Progress::Finished => bar.finish_and_clear(),
        }
    };
    let options = ImportOptions {
        config_path: context.config_path.clone(),
        now: context.now,
        account: args.name.clone(),
        exclude_status: args.exclude_status.clone(),
        write_config: args.write_config.clone(),
        lock_timeout: args.lock_timeout,
        progress: Some(Box::new(progress)),
    };
    let runtime = context.runtime()?;
    let report = runtime
        .block_on(crate::import::import(options, &mut |notice| {
            super::unlock::print_notice(context, notice)
        }))
        .map_err(failure);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = report?;
    for imported in &report.imported {
        println!(
            "imported {} (order {}, serial {}, expires {})",
            imported.name,
            imported.order_id,
            imported.serial,
            crate::plan::render::format_time(imported.not_after)
        );
    }
    for (why, count) in &report.skipped {
        println!(
            "skipped {count} order{}: {why}",
            if *count == 1 { "" } else { "s" }
        );
    }
    for skip in &report.replaced {
        println!(
            "  not imported: order {} ({}): {}",
            skip.order_id, skip.common_name, skip.why
        );
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if report.found == 0 {
        println!("nothing to import from `{}`", args.name);
        return Ok(EXIT_OK);
    }
    match &report.stubs_written {
        Some(path) => println!("config stubs written to {}", path.display()),
        None => println!(
            "\n# config stubs (save them next to your configuration, or use --write-config FILE):\n{}",
            report.stubs
        ),
    }
    if let Some(commit) = &report.commit {
        println!("state committed: {}", &commit[..commit.len().min(12)]);
    }
    eprintln!(
        "warning: certform does not hold the private keys of imported certificates: they cannot be deployed; each gets a new key at its next renewal (or reissue)"
    );
    Ok(EXIT_OK)
}

/// The download progress on stderr; none when stderr is not a terminal.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} {msg} ({elapsed}, ~{eta} left)",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// An import error for the user: CA errors with their likely causes, stubs with locations.
fn failure(error: ImportError) -> Failure {
    match error {
        ImportError::Run(inner) => Failure::from(inner),
        ImportError::Account(inner) => account_failure(inner),
        ImportError::Unreadable { order_id, source } => {
            Failure::new(format!("order {order_id} holds no readable certificate"))
                .caused_by(source.to_string())
        }
        ImportError::InvalidStubs(diagnostics) => {
            let mut failure = Failure::new("the generated config stubs do not validate");
            failure.diagnostics = diagnostics;
            failure
        }
        ImportError::BadPath { path, source } => {
            Failure::new(format!("bad path `{}`", path.display())).caused_by(source.to_string())
        }
        ImportError::WriteStubs { path, source } => {
            Failure::new(format!("cannot write `{}`", path.display())).caused_by(source.to_string())
        }
    }
}
