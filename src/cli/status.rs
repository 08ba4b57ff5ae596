//! `certform status`.

use std::collections::BTreeSet;

use super::{Context, Failure, EXIT_OK};
use crate::plan::render::format_time;

/// List certificates with their CA, status, expiry and days left (from state; no network)
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(context: &Context, _args: &Args) -> Result<i32, Failure> {
    let workspace = context.workspace()?;
    let state = workspace.read_state()?;
    let names: BTreeSet<&String> = workspace
        .config
        .certificates
        .keys()
        .chain(state.certificates.keys())
        .collect();
    let mut rows = vec![[
        "NAME".to_string(),
        "CA".to_string(),
        "STATUS".to_string(),
        "NOT AFTER".to_string(),
        "DAYS LEFT".to_string(),
    ]];
    for name in names {
        let spec = workspace.config.certificates.get(name);
        let row = match state.certificates.get(name) {
            Some(certificate) => {
                let mut status = match certificate.status {
                    crate::state::CertificateStatus::New => "new",
                    crate::state::CertificateStatus::Issued => "issued",
                    crate::state::CertificateStatus::Revoked => "revoked",
                    crate::state::CertificateStatus::Canceled => "canceled",
                }
                .to_string();
                if let Some(not_after) = certificate.not_after {
                    if not_after <= workspace.now
                        && certificate.status == crate::state::CertificateStatus::Issued
                    {
                        status = "expired".to_string();
                    }
                }
                if let Some(intent) = &certificate.intent {
                    status.push_str(&format!(" ({} in flight)", intent.kind.as_str()));
                }
                if spec.is_none() {
                    status.push_str(" (not in config)");
                }
                [
                    name.clone(),
                    certificate.ca.clone(),
                    status,
                    certificate
                        .not_after
                        .map(format_time)
                        .unwrap_or_else(|| "-".into()),
                    certificate
                        .not_after
                        .map(|t| (t - workspace.now).whole_days().to_string())
                        .unwrap_or_else(|| "-".into()),
                ]
            }
            None => [
                name.clone(),
                spec.map(|s| s.ca.clone()).unwrap_or_default(),
                "not created".to_string(),
                "-".to_string(),
                "-".to_string(),
            ],
        };
        rows.push(row);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<width$}", width = widths[i]))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(EXIT_OK)
}
