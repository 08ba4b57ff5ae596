//! `certform import NAME`: adopt a CA account's existing orders into state and write config
//! stubs for them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::ca::{ca_failure, open_digicert};
use super::{Context, Failure, EXIT_OK};
use crate::ca::digicert::OrderInfo;
use crate::ca::CertificateAuthority;
use crate::state::{CertificateState, CertificateStatus, HistoryEntry, StateStore};

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

/// One order to import, with its chain.
struct Candidate {
    name: String,
    order: OrderInfo,
    certificate_id: Option<String>,
    chain_pem: String,
    info: crate::keys::CertificateInfo,
    key: (&'static str, Option<u32>),
    status: CertificateStatus,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    let workspace = context.workspace()?;
    let ca = open_digicert(context, &args.name)?;
    let store = crate::state::GitStore::open(&workspace.config.state)
        .map_err(|e| Failure::from_error(&e))?;
    let _lock = super::unlock::take_lock(context, &store, "certform import", args.lock_timeout)?;
    for note in store.recover().map_err(|e| Failure::from_error(&e))? {
        eprintln!("warning: {note}");
    }
    let state = store.load().map_err(|e| Failure::from_error(&e))?;
    let known_orders: BTreeSet<String> = state
        .certificates
        .values()
        .filter(|c| c.ca == args.name)
        .flat_map(|c| {
            c.order_id
                .iter()
                .chain(c.intent.iter().flat_map(|i| i.order_id.iter()))
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    let mut taken: BTreeSet<String> = state.certificates.keys().cloned().collect();
    taken.extend(workspace.config.certificates.keys().cloned());
    let excluded: BTreeSet<String> = args
        .exclude_status
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();

    let runtime = context.runtime()?;
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let candidates = runtime.block_on(async {
        let orders = ca
            .list_orders(&[])
            .await
            .map_err(|e| ca_failure(&format!("cannot list the orders of `{}`", args.name), &e))?;
        let mut candidates = Vec::new();
        for order in orders {
            let expired = order
                .valid_till
                .is_some_and(|till| till < context.now && order.status == "issued");
            let status_name = if expired {
                "expired".to_string()
            } else {
                order.status.clone()
            };
            let id = order.id.to_string();
            if excluded.contains(&status_name) || known_orders.contains(&id) {
                *skipped
                    .entry(if known_orders.contains(&id) {
                        "already in state".to_string()
                    } else {
                        format!("status {status_name}")
                    })
                    .or_default() += 1;
                continue;
            }
            let status = match status_name.as_str() {
                "issued" | "expired" => CertificateStatus::Issued,
                "revoked" => CertificateStatus::Revoked,
                other => {
                    *skipped
                        .entry(format!("no certificate (status {other})"))
                        .or_default() += 1;
                    continue;
                }
            };
            let issued = ca
                .fetch(&id)
                .await
                .map_err(|e| ca_failure(&format!("cannot fetch order {id}"), &e))?;
            let (info, _) = crate::keys::inspect_chain(&issued.chain_pem).map_err(|e| {
                Failure::new(format!("order {id} holds no readable certificate"))
                    .caused_by(e.to_string())
            })?;
            let key = key_of(&issued.chain_pem);
            let name = unique_name(&order.common_name, order.id, &mut taken);
            candidates.push(Candidate {
                name,
                certificate_id: issued.certificate_id.clone(),
                chain_pem: issued.chain_pem,
                info,
                key,
                status,
                order,
            });
        }
        Ok::<_, Failure>(candidates)
    })?;

    let stubs = stub_text(&args.name, &candidates);
    // The digest each imported certificate must carry for `plan` to find nothing to change:
    // read the configuration with the stubs added, exactly as the next plan will.
    let mut sources =
        crate::workspace::read_sources(&context.config_path).map_err(Failure::from)?;
    let stub_path = match &args.write_config {
        Some(path) => std::path::absolute(path).map_err(|e| {
            Failure::new(format!("bad path `{}`", path.display())).caused_by(e.to_string())
        })?,
        None => workspace
            .config
            .files
            .first()
            .and_then(|f| f.parent())
            .map(|dir| dir.join("certform-import.toml"))
            .unwrap_or_else(|| PathBuf::from("certform-import.toml")),
    };
    sources.retain(|s| s.path != stub_path);
    sources.push(crate::config::Source {
        path: stub_path.clone(),
        text: stubs.clone(),
    });
    let merged = crate::config::load(&sources).map_err(|diagnostics| {
        let mut failure = Failure::new("the generated config stubs do not validate");
        failure.diagnostics = diagnostics;
        failure
    })?;

    for candidate in &candidates {
        let Some(spec) = merged.certificates.get(&candidate.name) else {
            continue;
        };
        let info = &candidate.info;
        let state = CertificateState {
            format: crate::state::FORMAT,
            name: candidate.name.clone(),
            id: format!("cf-{}", crate::apply::random_hex(8)),
            ca: args.name.clone(),
            status: candidate.status,
            order_id: Some(candidate.order.id.to_string()),
            certificate_id: candidate.certificate_id.clone(),
            serial: Some(info.serial.clone()),
            not_before: Some(info.not_before),
            not_after: Some(info.not_after),
            sha256_fingerprint: Some(info.sha256_fingerprint.clone()),
            spki_sha256: Some(info.spki_sha256.clone()),
            common_name: info
                .common_name
                .clone()
                .unwrap_or_else(|| candidate.order.common_name.clone()),
            sans: info.sans.clone(),
            key_algorithm: spec.key.label(),
            // certform never held this key: no key id, so a deploy fails loudly saying so.
            key_id: None,
            legacy_key_file: None,
            spec_digest: spec.issuance_digest(),
            spec_fields: spec.issuance_fields().into_iter().collect(),
            on_remove: spec.on_remove,
            prevent_destroy: spec.prevent_destroy,
            intent: None,
            deployments: BTreeMap::new(),
            renewal_window: None,
            retry_after: None,
            history: vec![HistoryEntry {
                at: context.now,
                action: "import".to_string(),
                serial: Some(info.serial.clone()),
                note: format!(
                    "adopted order {} from `{}`; certform does not hold its private key",
                    candidate.order.id, args.name
                ),
            }],
        };
        store
            .save_certificate(&state)
            .map_err(|e| Failure::from_error(&e))?;
        store
            .save_chain(&candidate.name, &candidate.chain_pem)
            .map_err(|e| Failure::from_error(&e))?;
        println!(
            "imported {} (order {}, serial {}, expires {})",
            candidate.name,
            candidate.order.id,
            info.serial,
            crate::plan::render::format_time(info.not_after)
        );
    }
    for (why, count) in &skipped {
        println!(
            "skipped {count} order{}: {why}",
            if *count == 1 { "" } else { "s" }
        );
    }
    if candidates.is_empty() {
        println!("nothing to import from `{}`", args.name);
        return Ok(EXIT_OK);
    }
    match &args.write_config {
        Some(_) => {
            crate::atomic_file::write(&stub_path, stubs.as_bytes(), 0o644).map_err(|e| {
                Failure::new(format!("cannot write `{}`", stub_path.display()))
                    .caused_by(e.to_string())
            })?;
            println!("config stubs written to {}", stub_path.display());
        }
        None => {
            println!("\n# config stubs (save them next to your configuration, or use --write-config FILE):\n{stubs}");
        }
    }
    let commit = store
        .commit(&format!(
            "certform import {}: {} certificate{}",
            args.name,
            candidates.len(),
            if candidates.len() == 1 { "" } else { "s" }
        ))
        .map_err(|e| Failure::from_error(&e))?;
    if let Some(commit) = commit {
        println!("state committed: {}", &commit[..commit.len().min(12)]);
    }
    eprintln!(
        "warning: certform does not hold the private keys of imported certificates: they cannot be deployed; each gets a new key at its next renewal (or reissue)"
    );
    Ok(EXIT_OK)
}

/// A certificate name from a common name: `www.example.com` → `www-example-com`.
fn unique_name(common_name: &str, order_id: u64, taken: &mut BTreeSet<String>) -> String {
    let mut base: String = common_name
        .trim_start_matches("*.")
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if common_name.starts_with("*.") {
        base = format!("wildcard-{base}");
    }
    let base = base.trim_matches('-').to_string();
    let base = if base.is_empty() || !base.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        format!("order-{order_id}")
    } else {
        base.chars().take(50).collect()
    };
    let name = if taken.contains(&base) {
        format!("{base}-{order_id}")
    } else {
        base
    };
    taken.insert(name.clone());
    name
}

/// The key algorithm of the leaf: (`rsa`|`ecdsa`|`ed25519`, size).
fn key_of(chain_pem: &str) -> (&'static str, Option<u32>) {
    use x509_parser::prelude::{FromDer, X509Certificate};
    use x509_parser::public_key::PublicKey;
    let Ok(blocks) = pem::parse_many(chain_pem) else {
        return ("ecdsa", Some(256));
    };
    let Some(first) = blocks.first() else {
        return ("ecdsa", Some(256));
    };
    let Ok((_, certificate)) = X509Certificate::from_der(first.contents()) else {
        return ("ecdsa", Some(256));
    };
    match certificate.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => ("rsa", u32::try_from(rsa.key_size()).ok()),
        Ok(PublicKey::EC(ec)) => ("ecdsa", u32::try_from(ec.key_size()).ok()),
        _ if certificate.public_key().algorithm.algorithm.to_id_string() == "1.3.101.112" => {
            ("ed25519", None)
        }
        _ => ("ecdsa", Some(256)),
    }
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// `[certificate.NAME]` stubs for the imported orders.
fn stub_text(account: &str, candidates: &[Candidate]) -> String {
    let mut out = format!(
        "# Certificates imported from the DigiCert account `{account}` by `certform import`.\n\
         # certform does not hold their private keys: they cannot be deployed until renewed\n\
         # (or reissued) by certform, which then generates a new key.\n"
    );
    for candidate in candidates {
        let order = &candidate.order;
        let info = &candidate.info;
        let common_name = info
            .common_name
            .clone()
            .unwrap_or_else(|| order.common_name.clone());
        let sans: Vec<String> = info
            .sans
            .iter()
            .filter(|s| **s != common_name)
            .map(|s| toml_string(s))
            .collect();
        let days = ((info.not_after - info.not_before).whole_days()).clamp(1, 199);
        out.push_str(&format!(
            "\n# order {} ({}), serial {}\n[certificate.{}]\nca = {}\ncommon_name = {}\n",
            order.id,
            order.status,
            info.serial,
            candidate.name,
            toml_string(account),
            toml_string(&common_name)
        ));
        if !sans.is_empty() {
            out.push_str(&format!("sans = [{}]\n", sans.join(", ")));
        }
        match candidate.key {
            ("ed25519", _) => out.push_str("key = { algorithm = \"ed25519\" }\n"),
            (algorithm, Some(size)) => out.push_str(&format!(
                "key = {{ algorithm = \"{algorithm}\", size = {size} }}\n"
            )),
            (algorithm, None) => {
                out.push_str(&format!("key = {{ algorithm = \"{algorithm}\" }}\n"))
            }
        }
        out.push_str(&format!("validity = {{ days = {days} }}\n"));
        if let Some(product) = &order.product {
            out.push_str(&format!("product = {}\n", toml_string(product)));
        }
        if let Some(organization) = order.organization {
            out.push_str(&format!("organization = {organization}\n"));
        }
        if let Some(hash) = &order.signature_hash {
            if matches!(hash.as_str(), "sha256" | "sha384" | "sha512") {
                out.push_str(&format!("signature_hash = {}\n", toml_string(hash)));
            }
        }
        if candidate.status == CertificateStatus::Revoked {
            out.push_str("revoke = true\n");
        }
    }
    out
}
