//! Domain-control validation: turns a CA's challenges into DNS records (TXT or CNAME) and HTTP
//! files, and removes exactly what it added afterwards.
//!
//! `requested` and `choose` are pure: the first tells a CA, when the order is placed, how each
//! name will prove control; the second matches each domain of an order to the certificate's
//! `dcv` rules and picks the challenge of that method. `Validator` does the I/O through the `DnsProvider`
//! trait, a webroot, or the built-in HTTP responder.

pub mod http;
pub mod journal;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::ca::{Challenge, ChallengeKind, DomainValidation, ValidationMethod};
use crate::deploy::web_root::WellKnownPath;
use crate::dns::{DnsProvider, DnsRecord, RecordData};
use crate::spec::{DcvMethod, DcvRule};
use journal::{Journal, Place, Placed};

/// Why validation could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no `dcv` rule covers `{0}`")]
    NoRule(String),
    #[error("`{domain}` needs {method} validation, but the CA offers only: {offered}")]
    NotOffered {
        domain: String,
        method: &'static str,
        offered: String,
    },
    #[error("DNS provider `{0}` is not configured")]
    UnknownProvider(String),
    #[error("cannot publish `{name}` through `{provider}`: {message}")]
    Dns {
        provider: String,
        name: String,
        message: String,
    },
    #[error("cannot write the challenge file `{path}`")]
    Webroot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serve HTTP challenges on `{listen}`")]
    Listen {
        listen: String,
        #[source]
        source: std::io::Error,
    },
}

/// Timeout of one DNS query made while checking propagation.
const DNS_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// One challenge chosen for one domain, with the rule's method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub challenge: Challenge,
    pub method: DcvMethod,
}

/// The method name as users write it in config.
fn method_name(method: &DcvMethod) -> &'static str {
    match method {
        DcvMethod::Dns { .. } => "dns",
        DcvMethod::Http { .. } => "http",
        DcvMethod::Email { .. } => "email",
    }
}

fn kind_name(kind: &ChallengeKind) -> &'static str {
    kind.method().as_str()
}

/// Whether a challenge of `kind` can be answered the way `method` says: a `dns` rule publishes
/// TXT or CNAME records through its provider.
fn answers(method: &DcvMethod, kind: &ChallengeKind) -> bool {
    matches!(
        (method, kind),
        (
            DcvMethod::Dns { .. },
            ChallengeKind::DnsTxt { .. } | ChallengeKind::DnsCname { .. }
        ) | (DcvMethod::Http { .. }, ChallengeKind::Http { .. })
            | (DcvMethod::Email { .. }, ChallengeKind::Email { .. })
    )
}

/// The validation method a CA is told at order time for a rule (a `dns` rule: TXT, which every
/// CA offers; CNAME only where the CA asks for it in its challenges).
fn requested_method(method: &DcvMethod) -> ValidationMethod {
    match method {
        DcvMethod::Dns { .. } => ValidationMethod::DnsTxt,
        DcvMethod::Http { .. } => ValidationMethod::Http,
        DcvMethod::Email { .. } => ValidationMethod::Email,
    }
}

/// How each name of an order (`common_name`, then `sans`, each once) will prove control, from
/// the certificate's `dcv` rules; names no rule covers are left out (the CA picks, and
/// `choose` reports them when challenges come, or lets them wait when the CA picked email).
/// Pure.
pub fn requested(rules: &[DcvRule], common_name: &str, sans: &[String]) -> Vec<DomainValidation> {
    let mut seen: Vec<&str> = Vec::new();
    let mut validations = Vec::new();
    for name in std::iter::once(common_name).chain(sans.iter().map(String::as_str)) {
        if name.is_empty() || seen.contains(&name) {
            continue;
        }
        seen.push(name);
        if let Some(rule) = rule_for(rules, name) {
            validations.push(DomainValidation {
                domain: name.to_string(),
                method: requested_method(&rule.method),
                approver_email: match &rule.method {
                    DcvMethod::Email { approver } => approver.clone(),
                    _ => None,
                },
            });
        }
    }
    validations
}

/// The rule covering `domain`: the rule naming it, else the rule without `names`.
pub fn rule_for<'a>(rules: &'a [DcvRule], domain: &str) -> Option<&'a DcvRule> {
    rules
        .iter()
        .find(|rule| rule.names.iter().any(|n| n.as_str() == domain))
        .or_else(|| rules.iter().find(|rule| rule.names.is_empty()))
}

/// Pick, for each domain with a challenge still to answer, the challenge matching its rule.
/// A domain no rule covers is an error (`NoRule`): certform cannot guess where to publish;
/// except when the CA offers it only email (it picked email DCV itself, as DigiCert does by
/// default): that domain waits for its approval, as with an `email` rule. Pure.
pub fn choose(rules: &[DcvRule], challenges: &[Challenge]) -> Result<Vec<Chosen>, Error> {
    let mut by_domain: BTreeMap<&str, Vec<&Challenge>> = BTreeMap::new();
    for challenge in challenges {
        by_domain
            .entry(challenge.domain.as_str())
            .or_default()
            .push(challenge);
    }
    let mut chosen = Vec::new();
    for (domain, offered) in by_domain {
        if offered.iter().any(|c| c.status == "valid") {
            continue;
        }
        let Some(rule) = rule_for(rules, domain) else {
            // The CA chose email for a name no rule covers (DigiCert's default DCV when the
            // order names no method): there is nothing to publish and nothing to guess, the
            // approval comes by email. The name waits like one with an `email` rule.
            if let Some(email) = only_email(&offered) {
                chosen.push(Chosen {
                    challenge: email.clone(),
                    method: DcvMethod::Email { approver: None },
                });
                continue;
            }
            return Err(Error::NoRule(domain.to_string()));
        };
        let wanted = method_name(&rule.method);
        // TXT before CNAME when a CA offers both for a `dns` rule.
        let challenge = offered
            .iter()
            .filter(|c| answers(&rule.method, &c.kind))
            .min_by_key(|c| c.kind.method())
            .ok_or_else(|| Error::NotOffered {
                domain: domain.to_string(),
                method: wanted,
                offered: offered
                    .iter()
                    .map(|c| kind_name(&c.kind))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let mut challenge = (*challenge).clone();
        // A CA that does not say where it sent the email (DigiCert sends to its own list):
        // name the approver the certificate names, so messages say whose inbox to check.
        if let (
            ChallengeKind::Email { approver: None },
            DcvMethod::Email {
                approver: Some(configured),
            },
        ) = (&challenge.kind, &rule.method)
        {
            challenge.kind = ChallengeKind::Email {
                approver: Some(configured.clone()),
            };
        }
        chosen.push(Chosen {
            challenge,
            method: rule.method.clone(),
        });
    }
    Ok(chosen)
}

/// The email challenge of a domain whose every offered challenge is email, if so.
fn only_email<'a>(offered: &[&'a Challenge]) -> Option<&'a Challenge> {
    let all_email = offered
        .iter()
        .all(|c| matches!(c.kind, ChallengeKind::Email { .. }));
    if all_email {
        offered.first().copied()
    } else {
        None
    }
}

/// What `publish` put in place, so `cleanup` removes exactly that.
#[derive(Debug, Default)]
pub struct Published {
    records: Vec<(Arc<dyn DnsProvider>, DnsRecord)>,
    served: Vec<(Arc<http::Responder>, String)>,
    /// Files put in web roots (a `webroot` directory or a deploy target's), in order.
    placed: Vec<Placed>,
}

impl std::fmt::Debug for dyn DnsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DnsProvider({})", self.name())
    }
}

/// Publishes challenges through DNS providers, webroots and built-in HTTP responders.
pub struct Validator {
    providers: BTreeMap<String, Arc<dyn DnsProvider>>,
    responders: tokio::sync::Mutex<BTreeMap<String, Arc<http::Responder>>>,
    /// How long to wait for a TXT record on the zone's authoritative servers.
    pub propagation_timeout: Duration,
    /// Resolver used to follow `_acme-challenge` CNAMEs and find authoritative servers;
    /// `None` skips both (records are published at the challenge name as given).
    pub resolver: Option<std::net::SocketAddr>,
    /// Where files placed in web roots are recorded until removed (`journal::sweep` removes
    /// what a killed run left); `None` records nothing.
    journal: Option<Journal>,
}

impl Validator {
    pub fn new(providers: BTreeMap<String, Arc<dyn DnsProvider>>) -> Self {
        Self {
            providers,
            responders: tokio::sync::Mutex::new(BTreeMap::new()),
            propagation_timeout: Duration::from_secs(120),
            resolver: None,
            journal: None,
        }
    }

    /// Record the files placed in web roots at `path` until they are removed.
    pub fn with_journal(mut self, path: PathBuf) -> Self {
        self.journal = Some(Journal::new(path));
        self
    }

    /// Put `content` at `file` in the web root of `place`: recorded first, so that a run
    /// killed from here on leaves a record the next run sweeps.
    async fn place(
        &self,
        place: Place,
        file: &WellKnownPath,
        content: &str,
        published: &mut Published,
    ) -> Result<(), Error> {
        let root = place.web_root().ok_or_else(|| Error::Webroot {
            path: PathBuf::from(place.describe()),
            source: std::io::Error::other("the target has no web root"),
        })?;
        let entry = Placed {
            place,
            file: file.clone(),
        };
        if let Some(journal) = &self.journal {
            journal.add(&entry).map_err(|source| Error::Webroot {
                path: PathBuf::from(root.describe(file)),
                source,
            })?;
        }
        published.placed.push(entry);
        root.put(file, content.as_bytes())
            .await
            .map_err(|message| Error::Webroot {
                path: PathBuf::from(root.describe(file)),
                source: std::io::Error::other(message),
            })
    }

    /// Put every chosen challenge in place. On failure, what was already published is removed.
    pub async fn publish(&self, chosen: &[Chosen]) -> Result<Published, Error> {
        let mut published = Published::default();
        for item in chosen {
            if let Err(error) = self.publish_one(item, &mut published).await {
                self.cleanup(published).await;
                return Err(error);
            }
        }
        Ok(published)
    }

    async fn publish_one(&self, item: &Chosen, published: &mut Published) -> Result<(), Error> {
        match (&item.method, &item.challenge.kind) {
            (DcvMethod::Dns { provider }, ChallengeKind::DnsTxt { .. })
            | (DcvMethod::Dns { provider }, ChallengeKind::DnsCname { .. }) => {
                let dns = self
                    .providers
                    .get(provider)
                    .cloned()
                    .ok_or_else(|| Error::UnknownProvider(provider.clone()))?;
                let servers = dns.propagation_servers();
                let (target, data) = match &item.challenge.kind {
                    ChallengeKind::DnsTxt { name, value } => {
                        // Follow a CNAME at the challenge name (delegated validation zones),
                        // asking the configured resolver, else the provider's own server.
                        let resolver = self.resolver.or_else(|| servers.first().copied());
                        let target = match resolver {
                            Some(resolver) => crate::dns::propagation::resolve_cname(
                                resolver,
                                name,
                                DNS_QUERY_TIMEOUT,
                            )
                            .await
                            .unwrap_or_else(|_| name.clone()),
                            None => name.clone(),
                        };
                        (target, RecordData::Txt(value.clone()))
                    }
                    // The CNAME is the proof itself: published at the name as given.
                    ChallengeKind::DnsCname { name, target } => {
                        (name.clone(), RecordData::Cname(target.clone()))
                    }
                    ChallengeKind::Http { .. } | ChallengeKind::Email { .. } => {
                        return Err(Error::NotOffered {
                            domain: item.challenge.domain.clone(),
                            method: method_name(&item.method),
                            offered: kind_name(&item.challenge.kind).to_string(),
                        })
                    }
                };
                let record = dns
                    .add_record(&target, &data)
                    .await
                    .map_err(|e| Error::Dns {
                        provider: provider.clone(),
                        name: target.clone(),
                        message: e.to_string(),
                    })?;
                published.records.push((Arc::clone(&dns), record));
                let servers = match self.resolver {
                    Some(resolver) => crate::dns::propagation::authoritative_servers(
                        resolver,
                        &target,
                        DNS_QUERY_TIMEOUT,
                    )
                    .await
                    .unwrap_or_else(|_| servers.clone()),
                    None => servers,
                };
                if !servers.is_empty() {
                    crate::dns::propagation::wait_for_record(
                        &servers,
                        &target,
                        &data,
                        self.propagation_timeout,
                        Duration::from_millis(100),
                    )
                    .await
                    .map_err(|e| Error::Dns {
                        provider: provider.clone(),
                        name: target.clone(),
                        message: e.to_string(),
                    })?;
                }
                Ok(())
            }
            (DcvMethod::Http { via, webroot, .. }, ChallengeKind::Http { path, content })
                if !via.is_empty() || webroot.is_some() =>
            {
                let file = WellKnownPath::from_url_path(path).ok_or_else(|| Error::Webroot {
                    path: PathBuf::from(path),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "the CA asked for a path outside `/.well-known/`",
                    ),
                })?;
                let places: Vec<Place> = match webroot {
                    Some(root) if via.is_empty() => vec![Place::Webroot(root.clone())],
                    _ => via
                        .iter()
                        .map(|target| Place::Target(Box::new(target.clone())))
                        .collect(),
                };
                for place in places {
                    self.place(place, &file, content, published).await?;
                }
                Ok(())
            }
            (DcvMethod::Http { listen, .. }, ChallengeKind::Http { path, content }) => {
                let listen = listen.clone().unwrap_or_else(|| "0.0.0.0:80".to_string());
                let responder = self.responder(&listen).await?;
                responder.serve(path, content);
                published.served.push((responder, path.clone()));
                Ok(())
            }
            (method, _) => Err(Error::NotOffered {
                domain: item.challenge.domain.clone(),
                method: method_name(method),
                offered: kind_name(&item.challenge.kind).to_string(),
            }),
        }
    }

    async fn responder(&self, listen: &str) -> Result<Arc<http::Responder>, Error> {
        let mut responders = self.responders.lock().await;
        if let Some(responder) = responders.get(listen) {
            return Ok(Arc::clone(responder));
        }
        let responder =
            Arc::new(
                http::Responder::start(listen)
                    .await
                    .map_err(|source| Error::Listen {
                        listen: listen.to_string(),
                        source,
                    })?,
            );
        responders.insert(listen.to_string(), Arc::clone(&responder));
        Ok(responder)
    }

    /// Remove exactly what `publish` added (best effort: failures are logged, not fatal).
    pub async fn cleanup(&self, published: Published) {
        for (provider, record) in published.records {
            if let Err(error) = provider.remove_record(&record).await {
                tracing::warn!(provider = provider.name(), name = %record.name, %error, "could not remove a challenge record");
            }
        }
        for (responder, path) in published.served {
            responder.forget(&path);
        }
        for entry in published.placed {
            let removed = match entry.place.web_root() {
                Some(root) => root.remove(&entry.file).await,
                None => Err("the target has no web root".to_string()),
            };
            match removed {
                Ok(()) => {
                    if let Some(journal) = &self.journal {
                        if let Err(error) = journal.forget(&entry) {
                            tracing::warn!(%error, "could not update the record of validation files");
                        }
                    }
                }
                // Kept in the record: the next run tries again.
                Err(error) => {
                    tracing::warn!(place = %entry.place.describe(), path = entry.file.as_str(), %error, "could not remove a challenge file");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DnsName;

    fn challenge(domain: &str, kind: ChallengeKind) -> Challenge {
        Challenge {
            id: format!("{domain}-{}", kind_name(&kind)),
            domain: domain.into(),
            kind,
            status: "pending".into(),
        }
    }

    fn offers(domain: &str) -> Vec<Challenge> {
        vec![
            challenge(
                domain,
                ChallengeKind::DnsTxt {
                    name: format!("_acme-challenge.{}", domain.trim_start_matches("*.")),
                    value: "v".into(),
                },
            ),
            challenge(
                domain,
                ChallengeKind::Http {
                    path: "/.well-known/acme-challenge/t".into(),
                    content: "t.k".into(),
                },
            ),
        ]
    }

    #[test]
    fn per_name_rules_pick_their_method_and_the_default_rule_the_rest() {
        let rules = vec![
            DcvRule {
                names: vec![DnsName::new_unchecked("*.a.example")],
                method: DcvMethod::Dns {
                    provider: "bind".into(),
                },
            },
            DcvRule {
                names: Vec::new(),
                method: DcvMethod::Http {
                    webroot: Some("/var/www".into()),
                    listen: None,
                    via: Vec::new(),
                },
            },
        ];
        let mut challenges = offers("*.a.example");
        challenges.extend(offers("b.example"));
        let chosen = choose(&rules, &challenges).expect("choose");
        assert_eq!(chosen.len(), 2);
        assert_eq!(chosen[0].challenge.domain, "*.a.example");
        assert!(matches!(
            chosen[0].challenge.kind,
            ChallengeKind::DnsTxt { .. }
        ));
        assert_eq!(chosen[1].challenge.domain, "b.example");
        assert!(matches!(
            chosen[1].challenge.kind,
            ChallengeKind::Http { .. }
        ));
    }

    #[test]
    fn valid_domains_are_skipped_and_missing_methods_are_errors() {
        let rules = vec![DcvRule {
            names: Vec::new(),
            method: DcvMethod::Email { approver: None },
        }];
        let mut done = offers("a.example");
        for c in &mut done {
            c.status = "valid".into();
        }
        assert!(choose(&rules, &done).expect("nothing to do").is_empty());
        let error = choose(&rules, &offers("b.example")).expect_err("email not offered");
        assert_eq!(
            error.to_string(),
            "`b.example` needs email validation, but the CA offers only: dns, http"
        );
        assert!(matches!(
            choose(&[], &offers("c.example")),
            Err(Error::NoRule(domain)) if domain == "c.example"
        ));
    }

    #[test]
    fn an_email_challenge_names_the_approver_the_ca_used_else_the_configured_one() {
        let rules = vec![DcvRule {
            names: Vec::new(),
            method: DcvMethod::Email {
                approver: Some("admin@example".into()),
            },
        }];
        let unnamed = challenge("a.example", ChallengeKind::Email { approver: None });
        let named = challenge(
            "b.example",
            ChallengeKind::Email {
                approver: Some("webmaster@b.example".into()),
            },
        );
        let chosen = choose(&rules, &[unnamed, named]).expect("email offered");
        let approvers: Vec<&ChallengeKind> = chosen.iter().map(|c| &c.challenge.kind).collect();
        assert_eq!(
            approvers,
            [
                &ChallengeKind::Email {
                    approver: Some("admin@example".into())
                },
                &ChallengeKind::Email {
                    approver: Some("webmaster@b.example".into())
                },
            ]
        );
    }

    #[test]
    fn a_dns_rule_answers_a_cname_challenge_and_prefers_txt() {
        let rules = vec![DcvRule {
            names: Vec::new(),
            method: DcvMethod::Dns {
                provider: "bind".into(),
            },
        }];
        let cname = challenge(
            "a.example",
            ChallengeKind::DnsCname {
                name: "_hash.a.example".into(),
                target: "hash.sectigo.test".into(),
            },
        );
        let email = challenge("a.example", ChallengeKind::Email { approver: None });
        let chosen = choose(&rules, &[email.clone(), cname.clone()]).expect("choose");
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].challenge, cname);

        let mut both = offers("a.example");
        both.insert(0, cname);
        let chosen = choose(&rules, &both).expect("choose");
        assert!(matches!(
            chosen[0].challenge.kind,
            ChallengeKind::DnsTxt { .. }
        ));
        let error = choose(&rules, &[email]).expect_err("no dns challenge");
        assert_eq!(
            error.to_string(),
            "`a.example` needs dns validation, but the CA offers only: email"
        );
    }

    /// A DNS provider that records what it was asked to add and remove.
    #[derive(Default)]
    struct Recording {
        calls: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl DnsProvider for Recording {
        fn name(&self) -> &str {
            "fake"
        }

        async fn add_record(
            &self,
            name: &str,
            data: &RecordData,
        ) -> Result<DnsRecord, crate::dns::DnsError> {
            let line = format!("add {name} {} {}", data.type_name(), data.value());
            self.calls.lock().expect("calls").push(line);
            Ok(DnsRecord {
                name: name.to_string(),
                data: data.clone(),
                zone: "a.example".to_string(),
                id: Some("r1".to_string()),
            })
        }

        async fn remove_record(&self, record: &DnsRecord) -> Result<(), crate::dns::DnsError> {
            let line = format!(
                "remove {} {} {:?}",
                record.name,
                record.data.type_name(),
                record.id
            );
            self.calls.lock().expect("calls").push(line);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_cname_challenge_is_published_at_its_name_and_removed_exactly() {
        let fake = Arc::new(Recording::default());
        let provider: Arc<dyn DnsProvider> = fake.clone();
        let validator = Validator::new(BTreeMap::from([("fake".to_string(), provider)]));
        let chosen = [Chosen {
            challenge: challenge(
                "a.example",
                ChallengeKind::DnsCname {
                    name: "_hash.a.example".into(),
                    target: "hash.sectigo.test".into(),
                },
            ),
            method: DcvMethod::Dns {
                provider: "fake".into(),
            },
        }];
        let published = validator.publish(&chosen).await.expect("publish");
        validator.cleanup(published).await;
        assert_eq!(
            *fake.calls.lock().expect("calls"),
            [
                "add _hash.a.example CNAME hash.sectigo.test",
                "remove _hash.a.example CNAME Some(\"r1\")",
            ]
        );
    }

    #[test]
    fn requested_methods_follow_the_rules_once_per_name() {
        let rules = vec![
            DcvRule {
                names: vec![DnsName::new_unchecked("mail.example")],
                method: DcvMethod::Email {
                    approver: Some("hostmaster@example".into()),
                },
            },
            DcvRule {
                names: vec![DnsName::new_unchecked("www.example")],
                method: DcvMethod::Http {
                    webroot: None,
                    listen: None,
                    via: Vec::new(),
                },
            },
            DcvRule {
                names: Vec::new(),
                method: DcvMethod::Dns {
                    provider: "bind".into(),
                },
            },
        ];
        let sans = vec![
            "www.example".to_string(),
            "mail.example".to_string(),
            "*.example".to_string(),
        ];
        let requested = requested(&rules, "www.example", &sans);
        let shown: Vec<(&str, ValidationMethod)> = requested
            .iter()
            .map(|v| (v.domain.as_str(), v.method))
            .collect();
        assert_eq!(
            shown,
            [
                ("www.example", ValidationMethod::Http),
                ("mail.example", ValidationMethod::Email),
                ("*.example", ValidationMethod::DnsTxt),
            ]
        );
        let approvers: Vec<Option<&str>> = requested
            .iter()
            .map(|v| v.approver_email.as_deref())
            .collect();
        assert_eq!(approvers, [None, Some("hostmaster@example"), None]);
        // Without a default rule, uncovered names are left to the CA.
        assert_eq!(requested_names(&rules[..1], &sans), ["mail.example"]);
    }

    #[test]
    fn a_name_no_rule_covers_waits_when_the_ca_offers_only_email() {
        // DigiCert's default DCV: the order named no method, the CA emails its approvers.
        let email = challenge("a.example", ChallengeKind::Email { approver: None });
        let chosen = choose(&[], std::slice::from_ref(&email)).expect("email waits");
        assert_eq!(
            chosen,
            [Chosen {
                challenge: email.clone(),
                method: DcvMethod::Email { approver: None },
            }]
        );
        // A rule covering other names leaves this one to the CA's email too.
        let rules = vec![DcvRule {
            names: vec![DnsName::new_unchecked("b.example")],
            method: DcvMethod::Dns {
                provider: "bind".into(),
            },
        }];
        assert_eq!(
            choose(&rules, std::slice::from_ref(&email))
                .expect("waits")
                .len(),
            1
        );
        // Any other challenge on offer means certform would have to guess: still an error.
        let mut mixed = offers("a.example");
        mixed.push(email);
        assert!(matches!(
            choose(&[], &mixed),
            Err(Error::NoRule(domain)) if domain == "a.example"
        ));
        let dns_only = offers("a.example").into_iter().take(1).collect::<Vec<_>>();
        assert!(matches!(
            choose(&[], &dns_only),
            Err(Error::NoRule(domain)) if domain == "a.example"
        ));
    }

    fn requested_names(rules: &[DcvRule], sans: &[String]) -> Vec<String> {
        requested(rules, &sans[0], sans)
            .into_iter()
            .map(|v| v.domain)
            .collect()
    }

    fn files_target(dir: &std::path::Path, web_root: &str) -> crate::spec::DeployTarget {
        crate::spec::DeployTarget::Files(crate::spec::FilesTarget {
            dir: dir.join("out"),
            relative_dir: None,
            cert: "cert.pem".into(),
            chain: "chain.pem".into(),
            fullchain: "fullchain.pem".into(),
            key: "privkey.pem".into(),
            mode: 0o644,
            key_mode: 0o600,
            owner: None,
            group: None,
            reload: None,
            reload_timeout: time::Duration::seconds(60),
            combined: None,
            cleanup: false,
            web_root: Some(dir.join(web_root)),
            verify: None,
        })
    }

    fn http(domain: &str, path: &str, via: Vec<crate::spec::DeployTarget>) -> Chosen {
        Chosen {
            challenge: challenge(
                domain,
                ChallengeKind::Http {
                    path: path.into(),
                    content: format!("{domain}.key"),
                },
            ),
            method: DcvMethod::Http {
                webroot: None,
                listen: None,
                via,
            },
        }
    }

    #[tokio::test]
    async fn http_files_go_to_every_target_listed_and_are_removed_and_unrecorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = dir.path().join(journal::FILE_NAME);
        let validator = Validator::new(BTreeMap::new()).with_journal(record.clone());
        let (one, two) = (
            files_target(dir.path(), "www1"),
            files_target(dir.path(), "www2"),
        );
        let chosen = [
            http(
                "a.example",
                "/.well-known/acme-challenge/ta",
                vec![one.clone(), two.clone()],
            ),
            http(
                "b.example",
                "/.well-known/pki-validation/fileauth.txt",
                vec![two],
            ),
        ];
        let published = validator.publish(&chosen).await.expect("publish");
        let at = |root: &str, path: &str| dir.path().join(root).join(".well-known").join(path);
        for (root, path, content) in [
            ("www1", "acme-challenge/ta", "a.example.key"),
            ("www2", "acme-challenge/ta", "a.example.key"),
            ("www2", "pki-validation/fileauth.txt", "b.example.key"),
        ] {
            assert_eq!(
                std::fs::read_to_string(at(root, path)).ok().as_deref(),
                Some(content),
                "{root}/{path}"
            );
        }
        assert!(!at("www1", "pki-validation/fileauth.txt").exists());
        assert!(record.exists(), "placed files are recorded");
        validator.cleanup(published).await;
        for (root, path) in [
            ("www1", "acme-challenge/ta"),
            ("www2", "acme-challenge/ta"),
            ("www2", "pki-validation/fileauth.txt"),
        ] {
            assert!(!at(root, path).exists(), "{root}/{path}");
        }
        assert!(!record.exists(), "nothing left to sweep");

        // A path the CA gives outside `/.well-known/`: nothing is written anywhere.
        let error = validator
            .publish(&[http("c.example", "/.well-known/../../etc/x", vec![one])])
            .await
            .expect_err("escape");
        assert!(matches!(error, Error::Webroot { .. }), "{error:?}");
        assert!(!dir.path().join("etc").exists());
        assert!(!record.exists());
    }
}
