//! `certform ca test NAME` and `certform ca info NAME`: check and inspect a CA account.

use clap::ValueEnum;
use serde::Serialize;

use super::{Context, Failure, EXIT_OK};
use crate::ca::digicert::{self, DigicertCa, DomainInfo, OrganizationInfo, ProductInfo};
use crate::ca::{CaError, ErrorClass};

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

/// What `ca info --format json` prints.
#[derive(Debug, Serialize)]
struct Info {
    account: String,
    products: Vec<ProductInfo>,
    organizations: Vec<OrganizationInfo>,
    domains: Vec<DomainInfo>,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    match &args.command {
        CaCommand::Test { name } => test(context, name),
        CaCommand::Info { name, format } => info(context, name, *format),
    }
}

/// Open the DigiCert account `name` of the configuration.
pub(super) fn open_digicert(context: &Context, name: &str) -> Result<DigicertCa, Failure> {
    let workspace = context.workspace()?;
    let Some(settings) = workspace.config.cas.get(name) else {
        let defined: Vec<&str> = workspace.config.cas.keys().map(String::as_str).collect();
        return Err(Failure::new(format!("no CA account `{name}` in config"))
            .hint(format!("defined accounts: {}", defined.join(", "))));
    };
    match &settings.kind {
        crate::config::CaKind::Digicert(digicert_settings) => {
            digicert::open(name, digicert_settings, &workspace.keys_dir)
                .map_err(|e| Failure::from_error(&e))
        }
        _ => Err(Failure::new(format!(
            "`{name}` is not a DigiCert account: this command works with `kind = \"digicert\"` accounts"
        ))),
    }
}

/// A CA error for the user, with the likely causes of 401 and 403 as a hint.
pub(super) fn ca_failure(what: &str, error: &CaError) -> Failure {
    let failure = Failure::new(what.to_string()).caused_by(error.to_string());
    if error.class != ErrorClass::Auth {
        return failure;
    }
    if error.message.contains("(401)") {
        return failure.hint(
            "check the API key: it may be wrong, copied only in part, revoked or expired; create a new key in CertCentral (Automation > API keys) if in doubt",
        );
    }
    let causes: Vec<String> = digicert::FORBIDDEN_CAUSES
        .iter()
        .enumerate()
        .map(|(index, cause)| format!("  {}. {cause}", index + 1))
        .collect();
    failure.hint(format!("the three likely causes:\n{}", causes.join("\n")))
}

fn test(context: &Context, name: &str) -> Result<i32, Failure> {
    let ca = open_digicert(context, name)?;
    let runtime = context.runtime()?;
    let user = runtime
        .block_on(ca.user())
        .map_err(|e| ca_failure(&format!("the API key of `{name}` does not work"), &e))?;
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
        if ca.is_read_only() {
            "; configured read-only: apply will not write"
        } else {
            ""
        }
    );
    Ok(EXIT_OK)
}

fn info(context: &Context, name: &str, format: Format) -> Result<i32, Failure> {
    let ca = open_digicert(context, name)?;
    let runtime = context.runtime()?;
    let info = runtime.block_on(async {
        let products = ca.products().await?;
        let mut detailed = Vec::with_capacity(products.len());
        for product in products {
            match ca.product(&product.name_id).await? {
                Some(full) => detailed.push(full),
                None => detailed.push(product),
            }
        }
        let organizations = ca.organizations().await?;
        let domains = ca.domains().await?;
        Ok::<_, CaError>(Info {
            account: name.to_string(),
            products: detailed,
            organizations,
            domains,
        })
    });
    let mut info = info.map_err(|e| ca_failure(&format!("cannot read account `{name}`"), &e))?;
    info.products.sort_by(|a, b| a.name_id.cmp(&b.name_id));
    info.organizations.sort_by_key(|o| o.id);
    info.domains.sort_by(|a, b| a.name.cmp(&b.name));
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

fn render_text(info: &Info) -> String {
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
