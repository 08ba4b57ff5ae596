//! Import: adopt a CA account's existing orders into state and write config stubs for them.
//!
//! The library half of `certform import`: it loads the workspace, takes the state lock, lists
//! and fetches the account's orders, saves them to state and commits. It never prints; the
//! caller renders the `ImportReport`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::account::AccountError;
use crate::apply::Notice;
use crate::ca::AccountOrder;
use crate::config::Diagnostic;
use crate::serial::Serial;
use crate::state::{CertificateState, CertificateStatus, GitStore, HistoryEntry, StateStore};
use crate::workspace::{RunError, Workspace};

/// How to run one import; the caller resolves every setting.
pub struct ImportOptions {
    /// Configuration file or directory.
    pub config_path: PathBuf,
    /// The run's clock.
    pub now: time::OffsetDateTime,
    /// The account's name (`[ca.NAME]`).
    pub account: String,
    /// Order statuses to skip (`expired`, `revoked`, ...).
    pub exclude_status: Vec<String>,
    /// Write the config stubs to this file (else the report carries them for printing).
    pub write_config: Option<PathBuf>,
    /// How long to wait for another run's state lock (zero: fail at once).
    pub lock_timeout: Duration,
}

/// One certificate adopted into state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub name: String,
    pub order_id: String,
    pub serial: Serial,
    pub not_after: time::OffsetDateTime,
}

/// What an import did.
#[derive(Debug)]
pub struct ImportReport {
    /// Orders found to import (those not skipped).
    pub found: usize,
    /// Certificates adopted into state, in order.
    pub imported: Vec<Imported>,
    /// Orders not imported, counted by why.
    pub skipped: BTreeMap<String, usize>,
    /// The `[certificate.NAME]` stubs for the imported orders.
    pub stubs: String,
    /// Where the stubs were written (`write_config`), if they were.
    pub stubs_written: Option<PathBuf>,
    /// The state commit, if anything was imported.
    pub commit: Option<String>,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("order {order_id} holds no readable certificate")]
    Unreadable {
        order_id: String,
        #[source]
        source: crate::keys::KeyError,
    },
    #[error("the generated config stubs do not validate")]
    InvalidStubs(Vec<Diagnostic>),
    #[error("bad path `{}`", .path.display())]
    BadPath {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write `{}`", .path.display())]
    WriteStubs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::state::Error> for ImportError {
    fn from(error: crate::state::Error) -> Self {
        Self::Run(RunError::State(error))
    }
}

impl From<crate::workspace::Error> for ImportError {
    fn from(error: crate::workspace::Error) -> Self {
        Self::Run(RunError::Workspace(error))
    }
}

/// One order to import, with its chain.
struct Candidate {
    name: String,
    order: AccountOrder,
    certificate_id: Option<String>,
    chain_pem: String,
    info: crate::keys::CertificateInfo,
    key: (&'static str, Option<u32>),
    status: CertificateStatus,
}

/// Run one import. `notify` hears configuration warnings, lock waits and repairs.
pub async fn import(
    options: ImportOptions,
    notify: &mut dyn FnMut(Notice),
) -> Result<ImportReport, ImportError> {
    let workspace = Workspace::load(&options.config_path, options.now)?;
    for warning in &workspace.config.warnings {
        notify(Notice::ConfigWarning(warning.to_string()));
    }
    let account = options.account.as_str();
    let ca = crate::account::open(&workspace, account).await?;
    let store = GitStore::open(&workspace.config.state)?;
    let _lock = crate::apply::take_lock(&store, "certform import", options.lock_timeout, notify)?;
    for note in store.recover()? {
        notify(Notice::Recovered(note));
    }
    let state = store.load()?;
    let known_orders: BTreeSet<String> = state
        .certificates
        .values()
        .filter(|c| c.ca == account)
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
    let excluded: BTreeSet<String> = options
        .exclude_status
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();

    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let orders = ca.list_orders().await.map_err(|source| {
        AccountError::from_call(
            ca.as_ref(),
            "listing orders",
            format!("cannot list the orders of `{account}`"),
            source,
        )
    })?;
    let mut candidates = Vec::new();
    for order in orders {
        let expired = order
            .not_after
            .is_some_and(|till| till < options.now && order.status == "issued");
        let status_name = if expired {
            "expired".to_string()
        } else {
            order.status.clone()
        };
        let id = order.order_id.clone();
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
        let fetched = ca.fetch(&id).await.map_err(|source| AccountError::Ca {
            what: format!("cannot fetch order {id}"),
            source,
        })?;
        let issued = match fetched {
            crate::ca::Fetched::Issued(issued) => issued,
            crate::ca::Fetched::NotYet { detail, .. } => {
                *skipped
                    .entry(format!("no certificate yet ({detail})"))
                    .or_default() += 1;
                continue;
            }
        };
        let (info, _) = crate::keys::inspect_chain(&issued.chain_pem).map_err(|source| {
            ImportError::Unreadable {
                order_id: id.clone(),
                source,
            }
        })?;
        let key = key_of(&issued.chain_pem);
        let name = unique_name(&order.common_name, &order.order_id, &mut taken);
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

    let stubs = stub_text(account, ca.kind(), &candidates);
    // The digest each imported certificate must carry for `plan` to find nothing to change:
    // read the configuration with the stubs added, exactly as the next plan will.
    let mut sources = crate::workspace::read_sources(&options.config_path)?;
    let stub_path = match &options.write_config {
        Some(path) => std::path::absolute(path).map_err(|source| ImportError::BadPath {
            path: path.clone(),
            source,
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
    let merged = crate::config::load(&sources).map_err(ImportError::InvalidStubs)?;

    let mut imported = Vec::new();
    for candidate in &candidates {
        let Some(spec) = merged.certificates.get(&candidate.name) else {
            continue;
        };
        let info = &candidate.info;
        let state = CertificateState {
            format: crate::state::FORMAT,
            name: candidate.name.clone(),
            id: format!("cf-{}", crate::apply::random_hex(8)),
            ca: account.to_string(),
            status: candidate.status,
            order_id: Some(candidate.order.order_id.clone()),
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
            revoke_reason: spec.revoke_reason,
            intent: None,
            deployments: BTreeMap::new(),
            renewal_window: None,
            retry_after: None,
            plan_until: None,
            backoff: None,
            history: vec![HistoryEntry {
                at: options.now,
                action: "import".to_string(),
                serial: Some(info.serial.clone()),
                note: format!(
                    "adopted order {} from `{account}`; certform does not hold its private key",
                    candidate.order.order_id
                ),
            }],
        };
        store.save_certificate(&state)?;
        store.save_chain(&candidate.name, &candidate.chain_pem)?;
        imported.push(Imported {
            name: candidate.name.clone(),
            order_id: candidate.order.order_id.clone(),
            serial: info.serial.clone(),
            not_after: info.not_after,
        });
    }
    let mut report = ImportReport {
        found: candidates.len(),
        imported,
        skipped,
        stubs,
        stubs_written: None,
        commit: None,
    };
    if candidates.is_empty() {
        return Ok(report);
    }
    if options.write_config.is_some() {
        crate::atomic_file::write(&stub_path, report.stubs.as_bytes(), 0o644).map_err(
            |source| ImportError::WriteStubs {
                path: stub_path.clone(),
                source,
            },
        )?;
        report.stubs_written = Some(stub_path);
    }
    report.commit = store.commit(&format!(
        "certform import {account}: {} certificate{}",
        candidates.len(),
        if candidates.len() == 1 { "" } else { "s" }
    ))?;
    Ok(report)
}

/// `text` as a certificate name: lowercase, anything but letters, digits, `_` and `-` as `-`.
fn name_chars(text: &str) -> String {
    text.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A certificate name from a common name: `www.example.com` → `www-example-com`.
fn unique_name(common_name: &str, order_id: &str, taken: &mut BTreeSet<String>) -> String {
    let order_id = name_chars(order_id);
    let mut base = name_chars(common_name.trim_start_matches("*."));
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
fn stub_text(account: &str, kind: &str, candidates: &[Candidate]) -> String {
    let mut out = format!(
        "# Certificates imported from the `{kind}` account `{account}` by `certform import`.\n\
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
            order.order_id,
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
        for (key, value) in &order.settings {
            out.push_str(&format!("{key} = {value}\n"));
        }
        if candidate.status == CertificateStatus::Revoked {
            out.push_str("revoke = true\n");
        }
    }
    out
}
