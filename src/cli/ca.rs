//! `certform ca test NAME` and `certform ca info NAME`: check and inspect a CA account.

use clap::ValueEnum;

use super::{Context, Failure, EXIT_OK};
use crate::account::{self, AccountCheck, AccountError, AccountInfo};
use crate::ca::CaError;

/// Check or inspect a CA account
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Check that the account's API key works (DigiCert: `GET /user/me`)
    Test {
        /// The account's name (`[ca.NAME]`)
        name: String,
    },
    /// Show the account's products, organizations and domains with their validation status
    Info {
        /// The account's name (`[ca.NAME]`)
        name: String,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
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
        CaCommand::Info { name, format } => info(context, name, *format),
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
        other @ AccountError::NotDigicert(_) => Failure::from_error(&other),
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
    let AccountCheck { user, read_only } = runtime
        .block_on(account::test(&workspace, name))
        .map_err(account_failure)?;
    println!(
        "ok: `{name}` answers as user `{}` (id {}{}), roles: {}{}",
        user.username,
        user.id,
        user.account_id
            .map(|id| format!(", account {id}"))
            .unwrap_or_default(),
        if user.roles.is_empty() {
            "none".to_string()
        } else {
            user.roles.join(", ")
        },
        if read_only {
            "; configured read-only: apply will not write"
        } else {
            ""
        }
    );
    Ok(EXIT_OK)
}

fn info(context: &Context, name: &str, format: Format) -> Result<i32, Failure> {
    let workspace = context.workspace()?;
    let runtime = context.runtime()?;
    let info = runtime
        .block_on(account::info(&workspace, name))
        .map_err(account_failure)?;
    match format {
        Format::Json => {
            let text = serde_json::to_string_pretty(&info)
                .map_err(|e| Failure::new("cannot render JSON").caused_by(e.to_string()))?;
            println!("{text}");
        }
        Format::Text => print!("{}", render_text(&info)),
    }
    Ok(EXIT_OK)
}

fn render_text(info: &AccountInfo) -> String {
    let mut out = format!("DigiCert account `{}`\n\nProducts:\n", info.account);
    for product in &info.products {
        out.push_str(&format!(
            "  {:<24} {} ({}){}{}\n",
            product.name_id,
            product.name,
            product
                .validation_type
                .as_deref()
                .unwrap_or("?")
                .to_uppercase(),
            if product.allowed_validity_years.is_empty() {
                String::new()
            } else {
                format!(
                    ", years: {}",
                    product
                        .allowed_validity_years
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join("/")
                )
            },
            if product.signature_hashes.is_empty() {
                String::new()
            } else {
                format!(", hashes: {}", product.signature_hashes.join("/"))
            }
        ));
    }
    out.push_str("\nOrganizations:\n");
    if info.organizations.is_empty() {
        out.push_str("  none\n");
    }
    for organization in &info.organizations {
        out.push_str(&format!(
            "  {:<10} {} [{}] validated: {}\n",
            organization.id,
            organization.name,
            organization.status,
            if organization.validated.is_empty() {
                "none".to_string()
            } else {
                organization.validated.join(", ")
            }
        ));
    }
    out.push_str("\nDomains:\n");
    if info.domains.is_empty() {
        out.push_str("  none\n");
    }
    for domain in &info.domains {
        out.push_str(&format!(
            "  {:<32} dcv: {}{}\n",
            domain.name,
            domain.dcv_status,
            if domain.validated.is_empty() {
                String::new()
            } else {
                format!(", validated for: {}", domain.validated.join(", "))
            }
        ));
    }
    out
}
