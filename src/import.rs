//! Import: adopt a CA account's existing orders into state and write config stubs for them.
//!
//! The library half of `certform import`: it loads the workspace, takes the state lock, lists
//! the account's orders, picks one live order per certificate (`one_live_order_per_certificate`),
//! downloads the chains it does not hold (`CertificateAuthority::download`, in parallel, paced
//! by the account's rate limit), and saves and commits them in batches, so an interrupted
//! import resumes where it stopped. It never prints; the caller renders the `ImportReport` and
//! draws the `Progress`.

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

/// How many downloads run at once (the account's rate limit paces them further).
const PARALLEL_DOWNLOADS: usize = 8;
/// Certificates saved and committed together: an interrupted import keeps every batch
/// committed before it, and a re-run skips those orders.
const BATCH: usize = 1000;

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
    /// Hears the download progress (the caller draws it; the library never prints).
    pub progress: Option<Box<dyn Fn(Progress) + Send + Sync>>,
}

/// Where an import stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The list is read: this many certificates to download.
    Started {
        total: usize,
    },
    /// One more download done (or skipped for want of a certificate).
    Downloaded,
    /// A batch was saved and committed.
    Committed {
        imported: usize,
    },
    Finished,
}

/// One certificate adopted into state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub name: String,
    pub order_id: String,
    pub serial: Serial,
    pub not_after: time::OffsetDateTime,
}

/// One order not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub order_id: String,
    pub common_name: String,
    pub why: String,
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
    /// Orders not imported because another order (or certificate) holds the same names: each
    /// is named, so the user sees which order was adopted instead.
    pub replaced: Vec<Skipped>,
    /// Names of adopted orders that a certificate of this state also covers.
    pub warnings: Vec<String>,
    /// The `[certificate.NAME]` stubs for the imported orders.
    pub stubs: String,
    /// Where the stubs were written (`write_config`), if they were.
    pub stubs_written: Option<PathBuf>,
    /// The last state commit, if anything was imported.
    pub commit: Option<String>,
    /// API requests the downloads needed (one per certificate with DigiCert).
    pub downloads: usize,
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

/// The first line of a stub file `import` wrote: a re-run appends to such a file.
const STUB_HEADER: &str = "# Certificates imported from the `";

/// The sorted, lowercase names of an order (its common name included).
fn name_set(order: &AccountOrder) -> BTreeSet<String> {
    order
        .names
        .iter()
        .chain(std::iter::once(&order.common_name))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Of the orders that hold a certificate, the one live order per certificate: pure, so the
/// rules are tested without a CA.
///
/// - An order a later order renewed (`is_renewed`) is skipped when its renewals reach an
///   issued order (followed through `renewed_order_id` / `renewal_of_order_id`, as far as the
///   list says), or, when the list does not name the renewal, when another order for the same
///   common name is live; an order whose renewal was canceled or has no certificate yet stays.
/// - Of orders for the same names, the one expiring last is adopted (then the highest id).
/// - An order whose names a certificate of this state already covers exactly is skipped.
///
/// Returns the adopted orders (in list order) and the skipped ones with why.
pub fn one_live_order_per_certificate(
    listed: &[AccountOrder],
    candidates: Vec<AccountOrder>,
    managed: &BTreeMap<BTreeSet<String>, String>,
) -> (Vec<AccountOrder>, Vec<Skipped>) {
    let by_id: BTreeMap<&str, &AccountOrder> =
        listed.iter().map(|o| (o.order_id.as_str(), o)).collect();
    // Who renewed whom, from either side of the link.
    let mut successor: BTreeMap<&str, &str> = BTreeMap::new();
    for order in listed {
        if let Some(next) = order.lineage.renewed_by.as_deref() {
            successor.insert(order.order_id.as_str(), next);
        }
    }
    for order in listed {
        if let Some(previous) = order.lineage.renewal_of.as_deref() {
            successor.entry(previous).or_insert(order.order_id.as_str());
        }
    }
    let issued = |order: &AccountOrder| matches!(order.status.as_str(), "issued" | "expired");
    // The newest issued order reached from `id` through its renewals, if any.
    let newest_issued_renewal = |id: &str| -> Option<String> {
        let mut found = None;
        let mut current = id;
        let mut seen = BTreeSet::new();
        while let Some(next) = successor.get(current) {
            if !seen.insert(*next) {
                break;
            }
            if let Some(order) = by_id.get(next) {
                if issued(order) {
                    found = Some((*next).to_string());
                }
            }
            current = next;
        }
        found
    };
    let live_common_names: BTreeSet<String> = candidates
        .iter()
        .filter(|o| !o.lineage.renewed)
        .map(|o| o.common_name.to_ascii_lowercase())
        .collect();
    let mut skipped = Vec::new();
    let skip = |order: &AccountOrder, why: String| Skipped {
        order_id: order.order_id.clone(),
        common_name: order.common_name.clone(),
        why,
    };
    let mut kept = Vec::new();
    for order in candidates {
        if order.lineage.renewed {
            let known = successor.contains_key(order.order_id.as_str());
            if let Some(newer) = newest_issued_renewal(&order.order_id) {
                skipped.push(skip(&order, format!("renewed by order {newer}")));
                continue;
            }
            if !known && live_common_names.contains(&order.common_name.to_ascii_lowercase()) {
                skipped.push(skip(
                    &order,
                    "renewed by a later order (`is_renewed`)".to_string(),
                ));
                continue;
            }
        }
        if let Some(name) = managed.get(&name_set(&order)) {
            skipped.push(skip(
                &order,
                format!("its names are already managed by certificate `{name}`"),
            ));
            continue;
        }
        kept.push(order);
    }
    // One order per name set: the one expiring last, then the highest id.
    let mut best: BTreeMap<BTreeSet<String>, usize> = BTreeMap::new();
    for (index, order) in kept.iter().enumerate() {
        let names = name_set(order);
        match best.get(&names) {
            Some(&other) if !later(order, &kept[other]) => {}
            _ => {
                best.insert(names, index);
            }
        }
    }
    let winners: BTreeSet<usize> = best.values().copied().collect();
    let mut adopted = Vec::new();
    for (index, order) in kept.iter().enumerate() {
        if winners.contains(&index) {
            adopted.push(order.clone());
        } else {
            let winner = &kept[best[&name_set(order)]];
            skipped.push(skip(
                order,
                format!(
                    "same names as order {}, which expires later",
                    winner.order_id
                ),
            ));
        }
    }
    (adopted, skipped)
}

/// Whether `a` is the better order to adopt than `b`: expires later, then the higher id.
fn later(a: &AccountOrder, b: &AccountOrder) -> bool {
    let id = |o: &AccountOrder| o.order_id.parse::<u64>().ok();
    (a.not_after, id(a), &a.order_id) > (b.not_after, id(b), &b.order_id)
}

/// The order ids of the stubs an earlier import wrote to `text`, with their names
/// (`# order ID (status), serial S` then `[certificate.NAME]`).
fn stubbed_orders(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut order: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# order ") {
            order = rest.split_whitespace().next().map(str::to_string);
        } else if let Some(name) = line
            .strip_prefix("[certificate.")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            if let Some(id) = order.take() {
                out.insert(id, name.to_string());
            }
        }
    }
    out
}

/// The warning for an order certform placed (its tag, as the CA inventory reads it; only CAs
/// whose order list carries the tag) for a certificate this state does not hold: another
/// state sharing the account may manage it, and importing it here makes two states renew it.
/// (A certificate this state forgot looks the same: state keeps no record of it.)
fn another_states_order(
    order: &AccountOrder,
    state_ids: &BTreeSet<&str>,
    account: &str,
) -> Option<String> {
    let id = order
        .tag
        .as_deref()
        .and_then(crate::ca_inventory::tagged_certificate)?;
    (!state_ids.contains(id)).then(|| {
        format!(
            "order {} carries certform's tag of certificate `{id}`, which this state does not hold: another state sharing `{account}` may manage it (or this state forgot it), and importing it makes two states renew it",
            order.order_id
        )
    })
}

/// Run one import. `notify` hears configuration warnings, lock waits and repairs.
pub async fn import(
    options: ImportOptions,
    notify: &mut dyn FnMut(Notice),
) -> Result<ImportReport, ImportError> {
    let progress = |event: Progress| {
        if let Some(progress) = &options.progress {
            progress(event);
        }
    };
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
    // The names each certificate of this state covers: an order for exactly those names is
    // that certificate already (adopting it would manage, and renew, it twice).
    let mut managed: BTreeMap<BTreeSet<String>, String> = BTreeMap::new();
    let mut managed_names: BTreeMap<String, String> = BTreeMap::new();
    for certificate in state.certificates.values() {
        let names: BTreeSet<String> = certificate
            .sans
            .iter()
            .chain(std::iter::once(&certificate.common_name))
            .map(|name| name.to_ascii_lowercase())
            .filter(|name| !name.is_empty())
            .collect();
        for name in &names {
            managed_names.insert(name.clone(), certificate.name.clone());
        }
        managed.insert(names, certificate.name.clone());
    }
    let mut taken: BTreeSet<String> = state.certificates.keys().cloned().collect();
    taken.extend(workspace.config.certificates.keys().cloned());
    let excluded: BTreeSet<String> = options
        .exclude_status
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();

    // Where the stubs go; stubs an earlier, interrupted import wrote there are kept.
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
    let earlier_stubs = match &options.write_config {
        Some(_) => std::fs::read_to_string(&stub_path)
            .ok()
            .filter(|text| text.starts_with(STUB_HEADER)),
        None => None,
    };
    let stubbed = earlier_stubs
        .as_deref()
        .map(stubbed_orders)
        .unwrap_or_default();
    taken.extend(stubbed.values().cloned());

    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let orders = ca.list_orders().await.map_err(|source| {
        AccountError::from_call(
            ca.as_ref(),
            "listing orders",
            format!("cannot list the orders of `{account}`"),
            source,
        )
    })?;
    let mut wanted = Vec::new();
    for order in &orders {
        let expired = order
            .not_after
            .is_some_and(|till| till < options.now && order.status == "issued");
        let status_name = if expired {
            "expired".to_string()
        } else {
            order.status.clone()
        };
        let id = &order.order_id;
        if known_orders.contains(id) {
            *skipped.entry("already in state".to_string()).or_default() += 1;
            continue;
        }
        if excluded.contains(&status_name) {
            *skipped.entry(format!("status {status_name}")).or_default() += 1;
            continue;
        }
        if !matches!(status_name.as_str(), "issued" | "expired" | "revoked") {
            *skipped
                .entry(format!("no certificate (status {status_name})"))
                .or_default() += 1;
            continue;
        }
        wanted.push(order.clone());
    }
    let (wanted, replaced) = one_live_order_per_certificate(&orders, wanted, &managed);
    for skip in &replaced {
        let why = if skip.why.starts_with("renewed by") {
            "replaced by a renewal"
        } else if skip.why.starts_with("its names") {
            "names managed by a certificate of this state"
        } else {
            "same names as a later order"
        };
        *skipped.entry(why.to_string()).or_default() += 1;
    }
    let state_ids: BTreeSet<&str> = state.certificates.values().map(|c| c.id.as_str()).collect();
    let mut warnings = Vec::new();
    for order in &wanted {
        let overlap: BTreeSet<String> = name_set(order)
            .into_iter()
            .filter_map(|name| {
                managed_names
                    .get(&name)
                    .map(|c| format!("`{name}` (certificate `{c}`)"))
            })
            .collect();
        if !overlap.is_empty() {
            warnings.push(format!(
                "order {} covers names this state already manages: {}",
                order.order_id,
                overlap.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        warnings.extend(another_states_order(order, &state_ids, account));
    }

    progress(Progress::Started {
        total: wanted.len(),
    });
    let mut sources = crate::workspace::read_sources(&options.config_path)?;
    sources.retain(|s| s.path != stub_path);
    let mut stubs = earlier_stubs.unwrap_or_else(|| stub_header(account, ca.kind()));
    let mut report = ImportReport {
        found: 0,
        imported: Vec::new(),
        skipped,
        replaced,
        warnings,
        stubs: String::new(),
        stubs_written: None,
        commit: None,
        downloads: 0,
    };
    let mut pending = wanted.into_iter();
    loop {
        let batch: Vec<AccountOrder> = pending.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            break;
        }
        let fetched = download_all(&ca, batch, &progress).await;
        let mut candidates = Vec::new();
        for (order, fetched) in fetched {
            report.downloads += 1;
            let id = order.order_id.clone();
            let issued = match fetched.map_err(|source| AccountError::Ca {
                what: format!("cannot fetch order {id}"),
                source,
            })? {
                crate::ca::Fetched::Issued(issued) => issued,
                crate::ca::Fetched::NotYet { detail, .. } => {
                    *report
                        .skipped
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
            let status = if order.status == "revoked" {
                CertificateStatus::Revoked
            } else {
                CertificateStatus::Issued
            };
            // An order an interrupted import already wrote a stub for keeps that name.
            let name = match stubbed.get(&id) {
                Some(name) => name.clone(),
                None => unique_name(&order.common_name, &order.order_id, &mut taken),
            };
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
        if candidates.is_empty() {
            continue;
        }
        let fresh: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| !stubbed.contains_key(&c.order.order_id))
            .collect();
        let text = stub_sections(account, &fresh);
        stubs.push_str(&text);
        report.stubs.push_str(&text);
        // The digest each imported certificate must carry for `plan` to find nothing to
        // change: read the configuration with this batch's stubs added, as the next plan
        // will (earlier batches' stubs are already checked: reading them again for every
        // batch would make a large import quadratic).
        let mut merged_sources = sources.clone();
        merged_sources.push(crate::config::Source {
            path: stub_path.clone(),
            text: format!(
                "{}{}",
                stub_header(account, ca.kind()),
                stub_sections(account, &candidates.iter().collect::<Vec<_>>())
            ),
        });
        let merged = crate::config::load(&merged_sources).map_err(ImportError::InvalidStubs)?;
        // Stubs first, then state: a run killed between the two leaves stubs for orders not
        // in state, which the next run adopts under the same names.
        if options.write_config.is_some() {
            crate::atomic_file::write(&stub_path, stubs.as_bytes(), 0o644).map_err(|source| {
                ImportError::WriteStubs {
                    path: stub_path.clone(),
                    source,
                }
            })?;
            report.stubs_written = Some(stub_path.clone());
        }
        for candidate in &candidates {
            let Some(spec) = merged.certificates.get(&candidate.name) else {
                continue;
            };
            save(&store, account, options.now, candidate, spec)?;
            report.imported.push(Imported {
                name: candidate.name.clone(),
                order_id: candidate.order.order_id.clone(),
                serial: candidate.info.serial.clone(),
                not_after: candidate.info.not_after,
            });
        }
        report.found += candidates.len();
        let commit = store.commit(&format!(
            "certform import {account}: {} certificate{}",
            candidates.len(),
            if candidates.len() == 1 { "" } else { "s" }
        ))?;
        if commit.is_some() {
            report.commit = commit;
        }
        progress(Progress::Committed {
            imported: report.imported.len(),
        });
    }
    progress(Progress::Finished);
    if !report.stubs.is_empty() {
        report.stubs = format!("{}{}", stub_header(account, ca.kind()), report.stubs);
    }
    Ok(report)
}

/// Download the chains of `orders`, `PARALLEL_DOWNLOADS` at a time (the account's rate limit
/// paces them), in the orders' order.
async fn download_all(
    ca: &std::sync::Arc<dyn crate::ca::CertificateAuthority>,
    orders: Vec<AccountOrder>,
    progress: &dyn Fn(Progress),
) -> Vec<(AccountOrder, Result<crate::ca::Fetched, crate::ca::CaError>)> {
    let mut results: Vec<Option<Result<crate::ca::Fetched, crate::ca::CaError>>> =
        (0..orders.len()).map(|_| None).collect();
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = orders.iter().cloned().enumerate();
    loop {
        while tasks.len() < PARALLEL_DOWNLOADS {
            let Some((index, order)) = queue.next() else {
                break;
            };
            let ca = std::sync::Arc::clone(ca);
            tasks.spawn(async move { (index, ca.download(&order).await) });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        progress(Progress::Downloaded);
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            // A download task that panicked: a bug; report it as a failed call.
            Err(error) => {
                return orders
                    .into_iter()
                    .map(|order| {
                        let failed = Err(crate::ca::CaError::new(
                            crate::ca::ErrorClass::Transient,
                            format!("a download task failed: {error}"),
                        ));
                        (order, failed)
                    })
                    .collect()
            }
        }
    }
    orders
        .into_iter()
        .zip(results)
        .map(|(order, result)| {
            let result = result.unwrap_or_else(|| {
                Err(crate::ca::CaError::new(
                    crate::ca::ErrorClass::Transient,
                    "a download did not finish",
                ))
            });
            (order, result)
        })
        .collect()
}

/// Save one adopted certificate (state record and chain); the caller commits.
fn save(
    store: &GitStore,
    account: &str,
    now: time::OffsetDateTime,
    candidate: &Candidate,
    spec: &crate::spec::CertificateSpec,
) -> Result<(), ImportError> {
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
        deployments: Default::default(),
        renewal_window: None,
        retry_after: None,
        plan_until: None,
        backoff: None,
        history: vec![HistoryEntry {
            at: now,
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
    Ok(())
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

/// The comment a stub file starts with.
fn stub_header(account: &str, kind: &str) -> String {
    format!(
        "{STUB_HEADER}{kind}` account `{account}` by `certform import`.\n\
         # certform does not hold their private keys: they cannot be deployed until renewed\n\
         # (or reissued) by certform, which then generates a new key.\n"
    )
}

/// `[certificate.NAME]` stubs for the imported orders.
fn stub_sections(account: &str, candidates: &[&Candidate]) -> String {
    let mut out = String::new();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::Lineage;
    use time::macros::datetime;

    fn order(id: &str, cn: &str, status: &str, days: i64) -> AccountOrder {
        AccountOrder {
            order_id: id.to_string(),
            status: status.to_string(),
            common_name: cn.to_string(),
            names: vec![cn.to_string()],
            serial: None,
            tag: None,
            not_after: Some(datetime!(2027-01-01 00:00 UTC) + time::Duration::days(days)),
            settings: Vec::new(),
            certificate_id: Some(format!("c{id}")),
            lineage: Lineage::default(),
        }
    }

    fn renewed(mut order: AccountOrder, by: Option<&str>) -> AccountOrder {
        order.lineage.renewed = true;
        order.lineage.renewed_by = by.map(str::to_string);
        order
    }

    fn renewal_of(mut order: AccountOrder, of: &str) -> AccountOrder {
        order.lineage.renewal_of = Some(of.to_string());
        order
    }

    fn ids(orders: &[AccountOrder]) -> Vec<&str> {
        orders.iter().map(|o| o.order_id.as_str()).collect()
    }

    fn pick(listed: &[AccountOrder]) -> (Vec<AccountOrder>, Vec<Skipped>) {
        let candidates = listed
            .iter()
            .filter(|o| matches!(o.status.as_str(), "issued" | "expired" | "revoked"))
            .cloned()
            .collect();
        one_live_order_per_certificate(listed, candidates, &BTreeMap::new())
    }

    /// The list names the renewal (`renewed_order_id`): the replaced order is skipped, saying
    /// which order replaced it, even when the renewal has more names.
    #[test]
    fn an_order_certform_placed_for_another_states_certificate_is_a_warning() {
        let ours = BTreeSet::from(["cf-0011223344556677"]);
        let mut tagged = order("7", "www.example", "issued", 30);
        tagged.tag = Some("cf-8899aabbccddeeff.a1b2c3d4e5f6".into());
        assert_eq!(
            another_states_order(&tagged, &ours, "dc").as_deref(),
            Some("order 7 carries certform's tag of certificate `cf-8899aabbccddeeff`, which this state does not hold: another state sharing `dc` may manage it (or this state forgot it), and importing it makes two states renew it")
        );
        // This state's own certificate, a tag certform did not write, no tag: nothing.
        tagged.tag = Some("cf-0011223344556677.a1b2c3d4e5f6".into());
        assert_eq!(another_states_order(&tagged, &ours, "dc"), None);
        tagged.tag = Some("PO-1234".into());
        assert_eq!(another_states_order(&tagged, &ours, "dc"), None);
        tagged.tag = None;
        assert_eq!(another_states_order(&tagged, &ours, "dc"), None);
    }

    #[test]
    fn a_renewed_order_yields_to_its_issued_renewal() {
        let mut new = order("2", "a.test", "issued", 200);
        new.names.push("www.a.test".to_string());
        let listed = [renewed(order("1", "a.test", "issued", 10), Some("2")), new];
        let (adopted, skipped) = pick(&listed);
        assert_eq!(ids(&adopted), ["2"]);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].order_id, "1");
        assert_eq!(skipped[0].why, "renewed by order 2");
    }

    /// Chains are followed to the newest issued order, from either side of the link.
    #[test]
    fn renewal_chains_are_followed_to_the_newest_issued_order() {
        let listed = [
            renewed(order("1", "a.test", "issued", 1), None),
            renewed(
                renewal_of(order("2", "a.test", "issued", 2), "1"),
                Some("3"),
            ),
            order("3", "a.test", "issued", 3),
        ];
        let (adopted, skipped) = pick(&listed);
        assert_eq!(ids(&adopted), ["3"]);
        let why: Vec<(&str, &str)> = skipped
            .iter()
            .map(|s| (s.order_id.as_str(), s.why.as_str()))
            .collect();
        assert_eq!(
            why,
            [("1", "renewed by order 3"), ("2", "renewed by order 3")]
        );
    }

    /// A renewal that has no certificate yet (or was canceled) does not replace the order it
    /// renews: that order still holds the live certificate.
    #[test]
    fn an_order_whose_renewal_is_not_issued_stays() {
        for status in ["pending", "canceled"] {
            let listed = [
                renewed(order("1", "a.test", "issued", 10), Some("2")),
                order("2", "a.test", status, 0),
            ];
            let (adopted, skipped) = pick(&listed);
            assert_eq!(ids(&adopted), ["1"], "{status}");
            assert!(skipped.is_empty(), "{status}");
        }
    }

    /// Only `is_renewed` (the documented list): skipped when another live order has the same
    /// common name, kept when it is the only one.
    #[test]
    fn is_renewed_alone_skips_only_when_a_live_order_remains() {
        let listed = [
            renewed(order("1", "a.test", "issued", 10), None),
            order("2", "a.test", "issued", 200),
        ];
        let (adopted, skipped) = pick(&listed);
        assert_eq!(ids(&adopted), ["2"]);
        assert_eq!(skipped[0].why, "renewed by a later order (`is_renewed`)");
        let alone = [renewed(order("1", "a.test", "issued", 10), None)];
        let (adopted, skipped) = pick(&alone);
        assert_eq!(ids(&adopted), ["1"]);
        assert!(skipped.is_empty());
    }

    /// Unlinked orders for the same names: the one expiring last, then the higher id; names
    /// compare without case; different names are different certificates.
    #[test]
    fn one_order_per_name_set_expiring_last() {
        let listed = [
            order("7", "A.test", "issued", 300),
            order("9", "a.test", "issued", 100),
            order("8", "a.test", "issued", 300),
            order("5", "b.test", "issued", 1),
        ];
        let (adopted, skipped) = pick(&listed);
        assert_eq!(ids(&adopted), ["8", "5"]);
        let why: Vec<(&str, &str)> = skipped
            .iter()
            .map(|s| (s.order_id.as_str(), s.why.as_str()))
            .collect();
        assert_eq!(
            why,
            [
                ("7", "same names as order 8, which expires later"),
                ("9", "same names as order 8, which expires later")
            ]
        );
    }

    /// An order for exactly the names a certificate of this state covers is that certificate.
    #[test]
    fn names_a_state_certificate_covers_are_not_adopted_again() {
        let listed = [
            order("1", "a.test", "issued", 10),
            order("2", "b.test", "issued", 10),
        ];
        let managed: BTreeMap<BTreeSet<String>, String> =
            [(BTreeSet::from(["a.test".to_string()]), "web".to_string())].into();
        let (adopted, skipped) = one_live_order_per_certificate(&listed, listed.to_vec(), &managed);
        assert_eq!(ids(&adopted), ["2"]);
        assert_eq!(
            skipped[0].why,
            "its names are already managed by certificate `web`"
        );
    }

    #[test]
    fn stubs_of_an_earlier_run_map_orders_to_names() {
        let text =
            "# Certificates imported from the `digicert` account `dc` by `certform import`.\n\
                    \n# order 1001 (issued), serial 0a\n[certificate.a-test]\nca = \"dc\"\n\
                    \n# order 1002 (issued), serial 0b\n[certificate.a-test-1002]\n";
        let map = stubbed_orders(text);
        assert_eq!(map.get("1001").map(String::as_str), Some("a-test"));
        assert_eq!(map.get("1002").map(String::as_str), Some("a-test-1002"));
        assert_eq!(map.len(), 2);
    }
}
