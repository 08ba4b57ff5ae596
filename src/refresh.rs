//! Refresh: read back what each CA holds for the certificates in state, what the deploy
//! targets hold on disk, and whether state's chain files hold the issued certificates. The
//! only place CAs are read; nothing is written.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ca::{Accounts, CertificateAuthority, OrderQuery};
use crate::check_cache::Chain;
use crate::config::Config;
use crate::deploy;
use crate::observed::{ChainDrift, Observed, ObservedCertificate, OrderStatus, OrderView};
use crate::state::{CertificateState, CertificateStatus, IntentKind, State};

/// Reads the public chain file state keeps for a certificate (its text, or its leaf facts when
/// the check cache knows the file unchanged: `check_cache::chain_at`): `Ok(None)` when there
/// is none, `Err` with the reason when it cannot be read.
pub type ReadChain<'a> = &'a (dyn Fn(&str) -> Result<Option<Chain>, String> + Sync);

/// One CA's queries, and for each the certificate it is for and whether it asks about the
/// in-flight order (`true`) or the current certificate (`false`).
type Batch = (Vec<OrderQuery>, Vec<(String, bool)>);

/// Build the observed world for `state`: one batched `refresh` call per CA account, run
/// concurrently; a CA that fails marks only its own certificates with `refresh_error`.
pub async fn refresh(
    config: &Config,
    state: &State,
    read_chain: ReadChain<'_>,
    accounts: &Accounts,
    now: time::OffsetDateTime,
) -> Observed {
    let mut batches: BTreeMap<&str, Batch> = BTreeMap::new();
    for (name, certificate) in &state.certificates {
        let batch = batches.entry(certificate.ca.as_str()).or_default();
        if certificate.status != CertificateStatus::New {
            if let Some(order_id) = &certificate.order_id {
                batch.0.push(OrderQuery {
                    order_id: Some(order_id.clone()),
                    tag: None,
                });
                batch.1.push((name.clone(), false));
            }
        }
        if let Some(intent) = &certificate.intent {
            let batch = batches.entry(intent.ca.as_str()).or_default();
            batch.0.push(OrderQuery {
                order_id: intent.order_id.clone(),
                tag: Some(intent.tag.clone()),
            });
            batch.1.push((name.clone(), true));
        }
    }

    let mut tasks = tokio::task::JoinSet::new();
    for (ca_name, (queries, keys)) in batches {
        let Some(ca) = accounts.get(ca_name) else {
            continue;
        };
        if queries.is_empty() {
            continue;
        }
        let ca: Arc<dyn CertificateAuthority> = Arc::clone(ca);
        tasks.spawn(async move {
            let result = ca.refresh(&queries).await;
            (ca.name().to_string(), queries, keys, result)
        });
    }

    let mut observed = Observed::default();
    while let Some(joined) = tasks.join_next().await {
        let Ok((ca_name, queries, keys, result)) = joined else {
            continue;
        };
        match result {
            Ok(views) if views.len() == queries.len() => {
                for ((name, is_intent), (query, view)) in
                    keys.into_iter().zip(queries.into_iter().zip(views))
                {
                    let entry = observed.certificates.entry(name).or_default();
                    let view = match (view, query.order_id) {
                        (Some(view), _) => Some(view),
                        // Asked for a known order id and the CA does not have it.
                        (None, Some(order_id)) => Some(OrderView {
                            order_id,
                            status: OrderStatus::NotFound,
                            serial: None,
                            not_after: None,
                            dcv: Vec::new(),
                            plan_until: None,
                        }),
                        (None, None) => None,
                    };
                    if is_intent {
                        entry.intent_order = view.map(Box::new);
                    } else {
                        entry.current = view;
                    }
                }
            }
            Ok(views) => {
                let message = format!(
                    "`{ca_name}` answered {} results for {} queries",
                    views.len(),
                    queries.len()
                );
                mark_error(&mut observed, keys, &message);
            }
            Err(error) => mark_error(&mut observed, keys, &error.to_string()),
        }
    }

    // An interrupted reissue on the same order: the tag may not name the order (DigiCert keeps
    // it on the reissue request), so ask the CA whether the reissue reached it. Without an
    // answer the certificate is blocked rather than reissued a second time.
    let mut reissues = tokio::task::JoinSet::new();
    for (name, certificate) in &state.certificates {
        let Some(intent) = &certificate.intent else {
            continue;
        };
        let (IntentKind::Reissue, None, Some(order_id)) =
            (intent.kind, &intent.order_id, &certificate.order_id)
        else {
            continue;
        };
        let seen = observed.certificates.get(name);
        if intent.ca != certificate.ca
            || seen.is_some_and(|o| o.intent_order.is_some() || o.refresh_error.is_some())
        {
            continue;
        }
        let Some(ca) = accounts.get(&intent.ca) else {
            continue;
        };
        if !ca.capabilities().reissue_same_order {
            continue;
        }
        let ca: Arc<dyn CertificateAuthority> = Arc::clone(ca);
        let (name, order_id, tag) = (name.clone(), order_id.clone(), intent.tag.clone());
        reissues.spawn(async move {
            let found = ca.find_reissue(&order_id, &tag).await;
            (name, found)
        });
    }
    while let Some(joined) = reissues.join_next().await {
        let Ok((name, found)) = joined else {
            continue;
        };
        let entry = observed.certificates.entry(name).or_default();
        match found {
            Ok(view) => entry.intent_order = view.map(Box::new),
            Err(error) => {
                entry.refresh_error = Some(format!(
                    "cannot tell whether the interrupted reissue reached the CA: {error}"
                ))
            }
        }
    }

    // Renewal windows (ACME ARI) of issued certificates: the one kept in state while its
    // Retry-After holds, else asked again.
    let mut windows = tokio::task::JoinSet::new();
    for (name, certificate) in &state.certificates {
        let (CertificateStatus::Issued, Some(order_id), Some(serial)) = (
            certificate.status,
            certificate.order_id.clone(),
            certificate.serial.clone(),
        ) else {
            continue;
        };
        if let Some(kept) = &certificate.renewal_window {
            if kept.serial == serial && kept.next_check > now {
                observed
                    .certificates
                    .entry(name.clone())
                    .or_default()
                    .renewal_window = Some(Box::new(kept.clone()));
                continue;
            }
        }
        let Some(ca) = accounts
            .get(&certificate.ca)
            .filter(|ca| ca.offers_renewal_windows())
        else {
            continue;
        };
        let ca: Arc<dyn CertificateAuthority> = Arc::clone(ca);
        let name = name.clone();
        windows.spawn(async move {
            let window = ca.renewal_window(&order_id, now).await;
            (name, serial, window)
        });
    }
    while let Some(joined) = windows.join_next().await {
        let Ok((name, serial, result)) = joined else {
            continue;
        };
        match result {
            Ok(Some(window)) if window.serial == serial => {
                observed
                    .certificates
                    .entry(name)
                    .or_default()
                    .renewal_window = Some(Box::new(window));
            }
            Ok(_) => {}
            // ARI is advisory: without it the renew_before rule applies.
            Err(error) => tracing::warn!(certificate = %name, %error, "no renewal window"),
        }
    }

    // The chain files and deployed files, read and checked on a few threads: at fleet size
    // these local reads are most of the refresh.
    let certificates: Vec<(&String, &CertificateState)> = state.certificates.iter().collect();
    let local = crate::par::map(&certificates, |(name, certificate)| {
        let drift = check_chain(certificate, read_chain(name));
        let mut deployments = Vec::new();
        if let Some(spec) = config.certificates.get(*name) {
            for target in &spec.deploy {
                let id = target.id();
                if let Some(record) = certificate.deployments.get(&id) {
                    deployments.push((id, deploy::deployer_for(target).observe(Some(record))));
                }
            }
        }
        (drift, deployments)
    });
    for ((name, _), (drift, deployments)) in certificates.into_iter().zip(local) {
        if drift.is_none() && deployments.is_empty() {
            continue;
        }
        let entry = observed.certificates.entry(name.clone()).or_default();
        if drift.is_some() {
            entry.chain = drift;
        }
        entry.deployments.extend(deployments);
    }
    observed
}

/// Whether the chain file of an issued certificate holds that certificate: it must parse as
/// PEM certificates, hold no private key, and its leaf must have state's serial and
/// fingerprint. Certificates not issued yet have no chain to check.
fn check_chain(
    certificate: &CertificateState,
    chain: Result<Option<Chain>, String>,
) -> Option<ChainDrift> {
    if certificate.status != CertificateStatus::Issued {
        return None;
    }
    let leaf = match chain {
        // Recorded only for a chain without a private key that parsed.
        Ok(Some(Chain::Known(leaf))) => Ok(leaf),
        Ok(Some(Chain::Text(text))) if text.contains("PRIVATE KEY-----") => {
            return Some(ChainDrift::PrivateKey)
        }
        // Parsed once per content (`check_cache`): the key check finds this leaf by the
        // chain's digest.
        Ok(Some(Chain::Text(text))) => crate::check_cache::chain_leaf(&text),
        Ok(None) => return Some(ChainDrift::Missing),
        Err(why) => return Some(ChainDrift::Unreadable(why)),
    };
    match leaf {
        Err(error) => Some(ChainDrift::Unreadable(error.to_string())),
        Ok(leaf)
            if Some(&leaf.serial) != certificate.serial.as_ref()
                || Some(&leaf.sha256_fingerprint) != certificate.sha256_fingerprint.as_ref() =>
        {
            Some(ChainDrift::OtherCertificate {
                serial: leaf.serial,
            })
        }
        Ok(_) => None,
    }
}

fn mark_error(observed: &mut Observed, keys: Vec<(String, bool)>, message: &str) {
    for (name, _) in keys {
        let entry: &mut ObservedCertificate = observed.certificates.entry(name).or_default();
        entry.refresh_error = Some(message.to_string());
    }
}

/// List the orders of every CA account whose `inventory` schedule is due (its last record
/// in `state`), one `inventory_orders` call per account, concurrently, and classify them
/// against `state`. An account that cannot list at a bounded cost (`Unsupported`) is skipped
/// silently; any other failure is a `Listing::Failed`, never an error of the run. `state`
/// must be the whole state (not a `--target` selection), or every other certificate's order
/// would look unmanaged.
pub async fn list_inventories(
    config: &Config,
    state: &State,
    accounts: &Accounts,
    now: time::OffsetDateTime,
) -> BTreeMap<String, crate::ca_inventory::Listing> {
    use crate::ca_inventory::{classify, Listing};

    let mut tasks = tokio::task::JoinSet::new();
    for (name, settings) in &config.cas {
        if !settings.inventory.is_due(state.ca_inventory.get(name), now) {
            continue;
        }
        let Some(ca) = accounts.get(name) else {
            continue;
        };
        let ca: Arc<dyn CertificateAuthority> = Arc::clone(ca);
        let name = name.clone();
        tasks.spawn(async move { (name, ca.inventory_orders().await) });
    }
    let mut listings = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((name, result)) = joined else {
            continue;
        };
        let listing = match result {
            Ok(orders) => Listing::Listed(classify(&name, &orders, state, now)),
            Err(error) if error.class == crate::error::ErrorClass::Unsupported => continue,
            Err(error) => {
                let mut message = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    message.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                Listing::Failed(message)
            }
        };
        listings.insert(name, listing);
    }
    listings
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::ca::Capabilities;
    use crate::observed::RenewalWindow;
    use crate::state::CertificateState;
    use crate::testing::{FakeCa, Fault, Op};

    const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

    fn config() -> Config {
        let source = crate::config::Source {
            path: "/etc/certform/certform.toml".into(),
            text: "[certificate.web]\ncommon_name = \"a.example\"\n".into(),
        };
        crate::config::load(&[source]).expect("config")
    }

    /// An ACME-like account (no reissue of the same order) named `acme` that offers renewal
    /// windows, holding one issued order; returns the CA and state recording that order.
    fn acme_with_issued_order() -> (Arc<FakeCa>, State) {
        let capabilities = Capabilities {
            reissue_same_order: false,
            cancel: false,
            revoke: true,
            duplicates: crate::capabilities::DuplicatePrevention::LocalIndex,
            cancel_refunds: false,
            honours_validity: true,
            max_orders_per_run: None,
            max_lifetime: &[],
            parallel_certificates: 4,
        };
        let ca = Arc::new(FakeCa::new("acme", capabilities, None));
        ca.offer_renewal_windows(true);
        let (order_id, serial) = ca.add_issued_order(&["cf-1"]);
        (ca, issued_state("acme", &order_id, &serial, None))
    }

    fn issued_state(
        ca: &str,
        order_id: &str,
        serial: &str,
        window: Option<RenewalWindow>,
    ) -> State {
        let text = format!(
            "format = 1\nname = \"web\"\nid = \"cf-1\"\nca = \"{ca}\"\nstatus = \"issued\"\norder_id = \"{order_id}\"\nserial = \"{serial}\"\ncommon_name = \"a.example\"\nsans = [\"a.example\"]\nkey_algorithm = \"ecdsa-p256\"\nspec_digest = \"x\"\n"
        );
        let mut certificate: CertificateState = toml::from_str(&text).expect("state");
        certificate.renewal_window = window;
        State {
            certificates: BTreeMap::from([("web".to_string(), certificate)]),
            ..State::default()
        }
    }

    fn accounts(ca: &Arc<FakeCa>) -> Accounts {
        let mut accounts: Accounts = BTreeMap::new();
        accounts.insert(ca.name().to_string(), Arc::clone(ca) as _);
        accounts
    }

    fn no_chain(_: &str) -> Result<Option<Chain>, String> {
        Ok(None)
    }

    /// A self-signed certificate's PEM, its serial and fingerprint as `inspect_chain` reads
    /// them, and its key's PEM.
    fn certificate() -> (String, crate::serial::Serial, String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).expect("params");
        let pem = params.self_signed(&key).expect("certificate").pem();
        let (info, _) = crate::keys::inspect_chain(&pem).expect("chain");
        (
            pem,
            info.serial,
            info.sha256_fingerprint,
            key.serialize_pem(),
        )
    }

    fn recorded(serial: &str, fingerprint: &str) -> CertificateState {
        let mut certificate =
            issued_state("acme", "order-1", serial, None).certificates["web"].clone();
        certificate.sha256_fingerprint = Some(fingerprint.to_string());
        certificate
    }

    #[test]
    fn a_chain_holding_the_recorded_certificate_is_in_sync() {
        let (pem, serial, fingerprint, _) = certificate();
        let state = recorded(&serial, &fingerprint);
        assert_eq!(check_chain(&state, Ok(Some(Chain::Text(pem)))), None);
    }

    #[test]
    fn every_broken_chain_is_drift() {
        let (pem, serial, fingerprint, key) = certificate();
        let state = recorded(&serial, &fingerprint);
        assert_eq!(check_chain(&state, Ok(None)), Some(ChainDrift::Missing));
        assert_eq!(
            check_chain(&state, Err("permission denied".into())),
            Some(ChainDrift::Unreadable("permission denied".into()))
        );
        assert_eq!(
            check_chain(&state, Ok(Some(Chain::Text(format!("{pem}{key}"))))),
            Some(ChainDrift::PrivateKey)
        );
        let garbage = check_chain(&state, Ok(Some(Chain::Text("not a pem\n".into()))));
        assert!(
            matches!(garbage, Some(ChainDrift::Unreadable(_))),
            "{garbage:?}"
        );
        let truncated = check_chain(
            &state,
            Ok(Some(Chain::Text(pem[..pem.len() / 2].to_string()))),
        );
        assert!(
            matches!(truncated, Some(ChainDrift::Unreadable(_))),
            "{truncated:?}"
        );
        let (other, other_serial, _, _) = certificate();
        assert_eq!(
            check_chain(&state, Ok(Some(Chain::Text(other)))),
            Some(ChainDrift::OtherCertificate {
                serial: other_serial
            })
        );
        let same_serial_other_fingerprint = recorded(&serial, "ff");
        assert_eq!(
            check_chain(&same_serial_other_fingerprint, Ok(Some(Chain::Text(pem)))),
            Some(ChainDrift::OtherCertificate { serial })
        );
    }

    #[test]
    fn certificates_not_issued_have_no_chain_to_check() {
        let mut state = recorded(&crate::serial::Serial::parse("0a"), "ff");
        state.status = CertificateStatus::New;
        assert_eq!(check_chain(&state, Ok(None)), None);
    }

    #[tokio::test]
    async fn refresh_reports_chain_drift_per_certificate() {
        let (ca, state) = acme_with_issued_order();
        let observed = refresh(&config(), &state, &no_chain, &accounts(&ca), NOW).await;
        assert_eq!(
            observed.certificates["web"].chain,
            Some(ChainDrift::Missing)
        );
    }

    #[tokio::test]
    async fn windows_are_fetched_then_reused_until_retry_after() {
        let (ca, state) = acme_with_issued_order();
        let observed = refresh(&config(), &state, &no_chain, &accounts(&ca), NOW).await;
        let window = *observed.certificates["web"]
            .renewal_window
            .clone()
            .expect("window fetched");
        assert_eq!(window.start, NOW + Duration::days(50));
        assert_eq!(ca.count(Op::RenewalWindow), 1);

        let mut kept = state.clone();
        if let Some(web) = kept.certificates.get_mut("web") {
            web.renewal_window = Some(window.clone());
        }
        let later = NOW + Duration::hours(1);
        let again = refresh(&config(), &kept, &no_chain, &accounts(&ca), later).await;
        assert_eq!(
            again.certificates["web"].renewal_window.as_deref(),
            Some(&window)
        );
        assert_eq!(ca.count(Op::RenewalWindow), 1, "Retry-After honoured");

        let after_retry = NOW + Duration::hours(7);
        refresh(&config(), &kept, &no_chain, &accounts(&ca), after_retry).await;
        assert_eq!(
            ca.count(Op::RenewalWindow),
            2,
            "asked again after Retry-After"
        );
    }

    /// An issued certificate at `dc` (order `order_id`) whose reissue (tag `cf-1.bb`) was
    /// interrupted.
    fn interrupted_reissue(order_id: &str) -> State {
        let text = format!("format = 1\nname = \"web\"\nid = \"cf-1\"\nca = \"dc\"\nstatus = \"issued\"\norder_id = \"{order_id}\"\nserial = \"0a\"\ncommon_name = \"a.example\"\nsans = [\"a.example\"]\nkey_algorithm = \"ecdsa-p256\"\nspec_digest = \"x\"\n\n[intent]\nkind = \"reissue\"\nca = \"dc\"\nstarted = \"2026-11-23T12:00:00Z\"\ntag = \"cf-1.bb\"\nkey_file = \"web/reissue-bb.key\"\nkey_algorithm = \"ecdsa-p256\"\ncommon_name = \"a.example\"\nsans = [\"a.example\", \"b.example\"]\nspec_digest = \"y\"\n");
        let certificate: CertificateState = toml::from_str(&text).expect("state");
        State {
            certificates: BTreeMap::from([("web".to_string(), certificate)]),
            ..State::default()
        }
    }

    #[tokio::test]
    async fn an_interrupted_reissue_is_looked_up_at_the_ca() {
        // A CA that reissues in place and, like DigiCert, shows a reissue's tag only through
        // `find_reissue`. `reissued`: the tag the reissue reached it with (`None`: it did not),
        // or `Err` when `find_reissue` fails.
        let observe = |reissued: Option<Result<&'static str, ()>>| async move {
            let capabilities = Capabilities {
                reissue_same_order: true,
                cancel: true,
                revoke: true,
                duplicates: crate::capabilities::DuplicatePrevention::TagAtCa,
                cancel_refunds: true,
                honours_validity: true,
                max_orders_per_run: None,
                max_lifetime: &[],
                parallel_certificates: 4,
            };
            let ca = Arc::new(FakeCa::new("dc", capabilities, None));
            ca.hide_reissue_tags(true);
            let (order_id, serial) = match reissued {
                Some(Ok(tag)) => ca.add_issued_order(&["cf-1", tag]),
                None | Some(Err(())) => ca.add_issued_order(&["cf-1"]),
            };
            if reissued == Some(Err(())) {
                ca.inject(Op::FindReissue, &[Fault::Transient]);
            }
            let state = interrupted_reissue(&order_id);
            let observed = refresh(&config(), &state, &no_chain, &accounts(&ca), NOW)
                .await
                .certificates
                .remove("web")
                .unwrap_or_default();
            assert_eq!(ca.count(Op::FindReissue), 1, "{reissued:?}");
            (observed, order_id, serial)
        };
        let (found, order_id, serial) = observe(Some(Ok("cf-1.bb"))).await;
        let view = found.intent_order.expect("the reissue reached the CA");
        assert_eq!(
            (view.order_id.as_str(), view.serial.as_deref()),
            (order_id.as_str(), Some(serial.as_str()))
        );
        assert!(found.refresh_error.is_none());

        let (other_tag, _, _) = observe(Some(Ok("cf-1.zz"))).await;
        assert!(other_tag.intent_order.is_none() && other_tag.refresh_error.is_none());
        let (nothing, _, _) = observe(None).await;
        assert!(nothing.intent_order.is_none() && nothing.refresh_error.is_none());

        // Without an answer the certificate is blocked, never reissued blindly.
        let (failed, _, _) = observe(Some(Err(()))).await;
        assert!(failed.intent_order.is_none());
        assert!(
            failed
                .refresh_error
                .as_deref()
                .is_some_and(|e| e.contains("cannot tell whether the interrupted reissue")),
            "{:?}",
            failed.refresh_error
        );
    }

    #[tokio::test]
    async fn a_failing_ca_marks_only_its_certificates() {
        let (failing, mut state) = acme_with_issued_order();
        failing.inject(Op::Refresh, &[Fault::Transient]);
        // A second account, `other`, answering normally for its certificate `api`.
        let other = Arc::new(FakeCa::new("other", failing.capabilities(), None));
        let (order_id, serial) = other.add_issued_order(&["cf-2"]);
        let mut api = issued_state("other", &order_id, &serial, None).certificates["web"].clone();
        api.name = "api".to_string();
        state.certificates.insert("api".to_string(), api);
        let mut both = accounts(&failing);
        both.extend(accounts(&other));

        let observed = refresh(&config(), &state, &no_chain, &both, NOW).await;
        assert_eq!(
            observed.certificates["web"].refresh_error.as_deref(),
            Some("connection reset by peer")
        );
        let api = &observed.certificates["api"];
        assert_eq!(api.refresh_error, None);
        let current = api.current.as_ref().expect("`other` answered");
        assert_eq!(current.serial.as_deref(), Some(serial.as_str()));
    }
}
