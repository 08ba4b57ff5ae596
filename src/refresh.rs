//! Refresh: read back what each CA holds for the certificates in state, and what the deploy
//! targets hold on disk. The only place CAs are read; nothing is written.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ca::{Accounts, CertificateAuthority, OrderQuery};
use crate::config::Config;
use crate::deploy;
use crate::observed::{Observed, ObservedCertificate, OrderStatus, OrderView};
use crate::state::{CertificateStatus, State};

/// One CA's queries, and for each the certificate it is for and whether it asks about the
/// in-flight order (`true`) or the current certificate (`false`).
type Batch = (Vec<OrderQuery>, Vec<(String, bool)>);

/// Build the observed world for `state`: one batched `refresh` call per CA account, run
/// concurrently; a CA that fails marks only its own certificates with `refresh_error`.
pub async fn refresh(config: &Config, state: &State, accounts: &Accounts) -> Observed {
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
                        }),
                        (None, None) => None,
                    };
                    if is_intent {
                        entry.intent_order = view;
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

    for (name, certificate) in &state.certificates {
        let Some(spec) = config.certificates.get(name) else {
            continue;
        };
        for target in &spec.deploy {
            let id = target.id();
            if let Some(record) = certificate.deployments.get(&id) {
                let observation = deploy::deployer_for(target).observe(Some(record));
                observed
                    .certificates
                    .entry(name.clone())
                    .or_default()
                    .deployments
                    .insert(id, observation);
            }
        }
    }
    observed
}

fn mark_error(observed: &mut Observed, keys: Vec<(String, bool)>, message: &str) {
    for (name, _) in keys {
        let entry: &mut ObservedCertificate = observed.certificates.entry(name).or_default();
        entry.refresh_error = Some(message.to_string());
    }
}
