//! `--refresh-only`: what refresh found at the CAs that state does not record yet, as state
//! updates. Nothing is ordered, revoked, cancelled or deployed. Performs no I/O.

use serde::Serialize;

use crate::observed::{Observed, OrderStatus};
use crate::state::{CertificateState, CertificateStatus, HistoryEntry, State};

/// One observation for one certificate, and whether it is written to state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observation {
    pub certificate: String,
    /// What was found, in words.
    pub found: String,
    /// Written to state by `apply --refresh-only`; `false`: shown only (it needs an action
    /// `apply` takes, such as fetching a certificate).
    pub recorded: bool,
}

/// What `--refresh-only` records: the observations, sorted by certificate, and the state
/// entries to write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshOnly {
    pub observations: Vec<Observation>,
    pub updates: Vec<CertificateState>,
}

impl RefreshOnly {
    /// Whether anything would be written to state.
    pub fn records_nothing(&self) -> bool {
        self.updates.is_empty()
    }
}

/// Compare what refresh `observed` with `state`, at `now`.
pub fn refresh_only(state: &State, observed: &Observed, now: time::OffsetDateTime) -> RefreshOnly {
    let mut result = RefreshOnly::default();
    for (name, certificate) in &state.certificates {
        let Some(seen) = observed.certificates.get(name) else {
            continue;
        };
        let mut updated = certificate.clone();
        let mut note = |found: String, recorded: bool| {
            result.observations.push(Observation {
                certificate: name.clone(),
                found,
                recorded,
            })
        };
        if let Some(error) = &seen.refresh_error {
            note(
                format!("could not read `{}`: {error}", certificate.ca),
                false,
            );
            continue;
        }
        if let (Some(current), CertificateStatus::Issued) = (&seen.current, certificate.status) {
            let status = match current.status {
                OrderStatus::Revoked => Some(CertificateStatus::Revoked),
                OrderStatus::Canceled => Some(CertificateStatus::Canceled),
                _ => None,
            };
            if let Some(status) = status {
                let found = format!(
                    "`{}` reports order {} as {}",
                    certificate.ca,
                    current.order_id,
                    current.status.as_str()
                );
                updated.status = status;
                updated.history.push(HistoryEntry {
                    at: now,
                    action: "refresh".to_string(),
                    serial: certificate.serial.clone(),
                    note: format!("{found} (`apply --refresh-only`)"),
                });
                note(found, true);
            } else if current.status == OrderStatus::NotFound {
                note(
                    format!(
                        "`{}` holds no order {}; not recorded (`certform apply` orders a replacement)",
                        certificate.ca, current.order_id
                    ),
                    false,
                );
            } else if current.serial.is_some() && current.serial != certificate.serial {
                note(
                    format!(
                        "`{}` holds serial {} but state has {}; not recorded (`certform apply` fetches it)",
                        certificate.ca,
                        current.serial.as_deref().unwrap_or("?"),
                        certificate.serial.as_deref().unwrap_or("none")
                    ),
                    false,
                );
            }
        }
        if let Some(window) = seen.renewal_window.as_deref() {
            if certificate.renewal_window.as_ref() != Some(window) {
                updated.renewal_window = Some(window.clone());
                note(
                    format!(
                        "`{}` suggests renewing between {} and {}",
                        certificate.ca,
                        super::render::format_time(window.start),
                        super::render::format_time(window.end)
                    ),
                    true,
                );
            }
        }
        if &updated != certificate {
            result.updates.push(updated);
        }
    }
    result
}

/// The text `plan --refresh-only` and `apply --refresh-only` print.
pub fn render(refresh: &RefreshOnly) -> String {
    if refresh.observations.is_empty() {
        return "No drift: state matches what the CAs hold.\n".to_string();
    }
    let mut out = String::from("Refresh found (nothing is ordered, revoked or deployed):\n\n");
    for observation in &refresh.observations {
        out.push_str(&format!(
            "  {} {}: {}\n",
            if observation.recorded { "~" } else { "!" },
            crate::config::escaped(&observation.certificate),
            crate::config::escaped(&observation.found)
        ));
    }
    let recorded = refresh.updates.len();
    out.push_str(&format!(
        "\nRefresh: {recorded} certificate{} to record in state.\n",
        if recorded == 1 { "" } else { "s" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::observed::{ObservedCertificate, OrderView, RenewalWindow};
    use crate::serial::Serial;

    const NOW: time::OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

    fn issued(name: &str) -> CertificateState {
        let text = format!(
            "format = 1\nname = \"{name}\"\nid = \"cf-1\"\nca = \"local\"\nstatus = \"issued\"\norder_id = \"o-1\"\nserial = \"01\"\ncommon_name = \"a.example\"\nsans = []\nkey_algorithm = \"ecdsa-p256\"\nspec_digest = \"x\"\n"
        );
        toml::from_str(&text).expect("state")
    }

    fn world(status: OrderStatus, serial: &str) -> (State, Observed) {
        let mut state = State::default();
        state.certificates.insert("web".into(), issued("web"));
        let mut observed = Observed::default();
        observed.certificates.insert(
            "web".into(),
            ObservedCertificate {
                current: Some(OrderView {
                    order_id: "o-1".into(),
                    status,
                    serial: Some(Serial::from(serial)),
                    not_after: None,
                    dcv: Vec::new(),
                    plan_until: None,
                }),
                ..Default::default()
            },
        );
        (state, observed)
    }

    #[test]
    fn a_revocation_at_the_ca_is_recorded_and_nothing_else_changes() {
        let (state, observed) = world(OrderStatus::Revoked, "01");
        let refresh = refresh_only(&state, &observed, NOW);
        assert_eq!(refresh.updates.len(), 1);
        assert_eq!(refresh.updates[0].status, CertificateStatus::Revoked);
        assert_eq!(refresh.updates[0].serial, state.certificates["web"].serial);
        assert_eq!(refresh.updates[0].history.last().map(|h| h.at), Some(NOW));
        assert_eq!(
            refresh.observations,
            vec![Observation {
                certificate: "web".into(),
                found: "`local` reports order o-1 as revoked".into(),
                recorded: true,
            }]
        );
        let (state, observed) = world(OrderStatus::Canceled, "01");
        assert_eq!(
            refresh_only(&state, &observed, NOW).updates[0].status,
            CertificateStatus::Canceled
        );
    }

    #[test]
    fn drift_that_needs_an_action_is_shown_but_not_recorded() {
        let (state, observed) = world(OrderStatus::Issued, "02");
        let refresh = refresh_only(&state, &observed, NOW);
        assert!(refresh.records_nothing());
        assert_eq!(refresh.observations.len(), 1);
        assert!(!refresh.observations[0].recorded);
        assert!(refresh.observations[0].found.contains("holds serial 02"));
        let (state, observed) = world(OrderStatus::NotFound, "01");
        let refresh = refresh_only(&state, &observed, NOW);
        assert!(refresh.records_nothing());
        assert!(refresh.observations[0].found.contains("holds no order o-1"));
        let (state, observed) = world(OrderStatus::Issued, "01");
        let refresh = refresh_only(&state, &observed, NOW);
        assert_eq!(refresh, RefreshOnly::default());
        assert_eq!(
            render(&refresh),
            "No drift: state matches what the CAs hold.\n"
        );
    }

    #[test]
    fn a_new_renewal_window_is_recorded() {
        let (state, mut observed) = world(OrderStatus::Issued, "01");
        let window = RenewalWindow {
            serial: Serial::from("01"),
            start: NOW,
            end: NOW + time::Duration::days(1),
            next_check: NOW,
        };
        observed
            .certificates
            .get_mut("web")
            .expect("web")
            .renewal_window = Some(Box::new(window.clone()));
        let refresh = refresh_only(&state, &observed, NOW);
        assert_eq!(refresh.updates[0].renewal_window, Some(window));
        assert!(render(&refresh).contains("~ web: `local` suggests renewing between"));
        assert!(render(&refresh).ends_with("Refresh: 1 certificate to record in state.\n"));
    }
}
