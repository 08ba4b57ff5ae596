//! `certform ca test NAME` and `certform ca info NAME`: check and inspect a CA account.

use clap::ValueEnum;

use super::{Context, Failure, EXIT_OK};
use crate::account::{self, AccountError, Credentials};
use crate::ca::CaError;

/// Check or inspect a CA account
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Check that the account's credentials work (DigiCert: `GET /user/me`; ACME: the account exists; local: its keys are readable)
    Test {
        /// The account's name (`[ca.NAME]`)
        name: String,
    },
    /// Show what the account holds (DigiCert: products, organizations and domains with their validation status; Sectigo: profiles, organizations, custom fields and domains; local: its certificates and orders)
    Info {
        /// The account's name (`[ca.NAME]`)
        name: String,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Read the account again where its data is cached (Sectigo: profiles, organizations,
        /// custom fields and domains, otherwise read again after a week)
        #[arg(long)]
        refresh: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    match &args.command {
        CaCommand::Test { name } => test(context, name),
        CaCommand::Info {
            name,
            format,
            refresh,
        } => info(context, name, *format, *refresh),
    }
}

/// An account error for the user: CA errors with the likely causes of 401 and 403.
pub(super) fn account_failure(error: AccountError) -> Failure {
    match error {
        AccountError::Unknown { name, defined } => {
            Failure::new(format!("no CA account `{name}` in config"))
                .hint(format!("defined accounts: {}", defined.join(", ")))
        }
        AccountError::Open { source, .. } => Failure::from_error(&source),
        AccountError::Ca { what, source } => ca_failure(&what, &source),
        other @ (AccountError::Unsupported { .. } | AccountError::NotCreated { .. }) => {
            Failure::from_error(&other)
        }
    }
}

/// A CA error for the user, with the hint its class, status and problem call for.
fn ca_failure(what: &str, error: &CaError) -> Failure {
    let failure = Failure::new(what.to_string()).caused_by(error.to_string());
    match error.hint() {
        Some(hint) => failure.hint(hint),
        None => failure,
    }
}

fn test(context: &Context, name: &str) -> Result<i32, Failure> {
    let workspace = context.workspace()?;
    let runtime = context.runtime()?;
    let Credentials {
        identity,
        read_only,
    } = runtime
        .block_on(account::test(&workspace, name))
        .map_err(account_failure)?;
    println!(
        "ok: `{name}` answers as {identity}{}",
        if read_only {
            "; configured read-only: apply will not write"
        } else {
            ""
        }
    );
    Ok(EXIT_OK)
}

fn info(context: &Context, name: &str, format: Format, refresh: bool) -> Result<i32, Failure> {
    let workspace = context.workspace()?;
    let runtime = context.runtime()?;
    let info = runtime
        .block_on(account::info(&workspace, name, refresh))
        .map_err(account_failure)?;
    match format {
        Format::Json => {
            let text = serde_json::to_string_pretty(&info)
                .map_err(|e| Failure::new("cannot render JSON").caused_by(e.to_string()))?;
            println!("{text}");
        }
        Format::Text => print!("{}", info.text()),
    }
    Ok(EXIT_OK)
}
