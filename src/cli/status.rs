//! `certform status`.

use std::io::Write;
use std::mem::ManuallyDrop;

use super::{Context, Failure, EXIT_OK};
use crate::inventory::{self, Filter, Status};

/// List certificates: status in words, CA, order, expiry, days left and last deploy, then the
/// orders at each CA that certform does not manage or holds twice (from state; no network)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show only certificates with this status (repeatable)
    #[arg(long = "status", value_enum, value_name = "STATUS")]
    pub statuses: Vec<Status>,

    /// Show only certificates of this CA account
    #[arg(long, value_name = "NAME")]
    pub ca: Option<String>,

    /// Show only certificates that expire within this span, expired ones included (`30d`, `12h`, `2w`)
    #[arg(long, value_name = "SPAN", value_parser = inventory::parse_span)]
    pub expiring_within: Option<time::Duration>,

    /// Output format: `prometheus` is node_exporter's textfile format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Prometheus,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    // The process exits once this returns: the configuration and the state of every
    // certificate are left to the operating system instead of being freed one allocation
    // at a time (~5 % of a 10,000-certificate `status`).
    let (workspace, early) = context.workspace_reading_state()?;
    let workspace = ManuallyDrop::new(workspace);
    let state = ManuallyDrop::new(workspace.take_state(early)?);
    let filter = Filter {
        statuses: args.statuses.clone(),
        ca: args.ca.clone(),
        expiring_within: args.expiring_within,
    };
    let rows: Vec<inventory::Row> =
        inventory::rows(&workspace.config.certificates, &state, workspace.now)
            .into_iter()
            .filter(|row| filter.matches(row, workspace.now))
            .collect();
    let configured = workspace.config.cas.keys().map(String::as_str).collect();
    let inventories = inventory::inventories(&state, &configured, &filter);
    let text = match args.format {
        Format::Table => {
            let mut text = String::new();
            // `--status unmanaged` alone: only the inventory sections.
            if !rows.is_empty() || !filter.only_inventory() {
                text.push_str(&inventory::render_table(&rows));
            }
            text.push_str(&inventory::render_inventory_table(
                &inventories,
                workspace.now,
            ));
            text
        }
        Format::Json => inventory::render_json(&rows, &inventories, workspace.now),
        Format::Prometheus => inventory::render_prometheus(&rows, &inventories),
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| Failure::new("cannot write to standard output").caused_by(e.to_string()))?;
    Ok(EXIT_OK)
}
