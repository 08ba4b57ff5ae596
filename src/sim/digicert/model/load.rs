//! The account as the seed describes it: keys and users, products, organizations, domains,
//! and seeded orders (whose certificates are issued at start-up).

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime, Time};

use super::times::{end_of_day, parse_date, whole_seconds};
use super::{
    is_dns_name, normalize_name, Account, CertParams, Certificate, Counters, Domain, Key, Order,
    OrderStatus, Organization, OrganizationValidation, Request, RequestKind, RequestStatus,
    Settings, User, Validity,
};
use crate::sim::digicert::ca::SimCa;
use crate::sim::digicert::seed::{DcvStatus, OrderSeed, Seed};
use crate::sim::digicert::Error;
use crate::sim::random::Rng;

impl Account {
    /// Build the account from the seed (issuing the certificates of seeded orders).
    pub(crate) fn new(seed: &Seed, ca: SimCa, rng: Rng) -> Result<Self, Error> {
        let now = whole_seconds(OffsetDateTime::now_utc());
        let mut account = Self {
            settings: Settings {
                account: seed.account.clone(),
                dcv: seed.dcv.clone(),
                policy: seed.policy.clone(),
                quirks: seed.quirks.clone(),
            },
            ca,
            keys: Vec::new(),
            users: BTreeMap::new(),
            products: seed
                .products
                .clone()
                .unwrap_or_else(super::super::seed::default_products),
            organizations: BTreeMap::new(),
            domains: BTreeMap::new(),
            orders: BTreeMap::new(),
            certificates: BTreeMap::new(),
            requests: BTreeMap::new(),
            counters: Counters::default(),
            rng,
            next_order_id: seed.account.first_order_id,
            next_certificate_id: seed.account.first_certificate_id,
            next_request_id: seed.account.first_request_id,
            next_domain_id: seed.account.first_domain_id,
            clock_offset: Duration::ZERO,
            next_event: None,
        };
        account.load_keys(seed)?;
        account.load_products()?;
        account.load_organizations(seed, now)?;
        account.load_domains(seed, now)?;
        for order in &seed.orders {
            account.load_orders(order, now)?;
        }
        Ok(account)
    }

    fn load_keys(&mut self, seed: &Seed) -> Result<(), Error> {
        let invalid = |reason: String| Error::Seed { reason };
        if seed.api_keys.is_empty() {
            return Err(invalid(
                "`api_keys` is empty: no client could call the API".into(),
            ));
        }
        let mut next_user_id = seed.account.first_user_id;
        for key in &seed.api_keys {
            if key.key.trim().is_empty() {
                return Err(invalid(format!(
                    "API key `{}` has an empty `key`",
                    key.name
                )));
            }
            if self.keys.iter().any(|other| other.key == key.key) {
                return Err(invalid(format!(
                    "API key `{}` repeats the `key` of another entry",
                    key.name
                )));
            }
            let id = match key.user.id {
                Some(id) => id,
                None => {
                    next_user_id += 1;
                    next_user_id - 1
                }
            };
            let slug: String = key
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '.'
                    }
                })
                .collect();
            let user = User {
                id,
                username: key.user.username.clone().unwrap_or_else(|| slug.clone()),
                first_name: key.user.first_name.clone().unwrap_or_else(|| "Sim".into()),
                last_name: key
                    .user
                    .last_name
                    .clone()
                    .unwrap_or_else(|| key.name.clone()),
                email: key
                    .user
                    .email
                    .clone()
                    .unwrap_or_else(|| format!("{slug}@example.test")),
                role: key.role,
            };
            self.users.entry(id).or_insert(user);
            self.keys.push(Key {
                name: key.name.clone(),
                key: key.key.clone(),
                role: key.role,
                user_id: id,
            });
        }
        Ok(())
    }

    fn load_products(&mut self) -> Result<(), Error> {
        for product in &self.products {
            if !product
                .signature_hashes
                .contains(&product.default_signature_hash)
            {
                return Err(Error::Seed {
                    reason: format!(
                        "product `{}`: `default_signature_hash` `{}` is not in `signature_hashes`",
                        product.name_id, product.default_signature_hash
                    ),
                });
            }
            if let Some(hash) = product
                .signature_hashes
                .iter()
                .find(|hash| !matches!(hash.as_str(), "sha256" | "sha384" | "sha512"))
            {
                return Err(Error::Seed {
                    reason: format!(
                        "product `{}`: signature hash `{hash}` is not one of sha256, sha384, sha512",
                        product.name_id
                    ),
                });
            }
        }
        Ok(())
    }

    fn load_organizations(&mut self, seed: &Seed, now: OffsetDateTime) -> Result<(), Error> {
        for organization in &seed.organizations {
            let validations = organization
                .validations
                .iter()
                .map(|validation| {
                    Ok(OrganizationValidation {
                        kind: validation.r#type.to_ascii_lowercase(),
                        status: validation.status,
                        validated_until: seed_date(
                            validation.validated_until.as_deref(),
                            now + Duration::days(397),
                        )?,
                        date_created: now - Duration::days(30),
                    })
                })
                .collect::<Result<_, Error>>()?;
            self.organizations.insert(
                organization.id,
                Organization {
                    id: organization.id,
                    name: organization.name.clone(),
                    assumed_name: organization.assumed_name.clone(),
                    display_name: organization
                        .display_name
                        .clone()
                        .unwrap_or_else(|| organization.name.clone()),
                    is_active: organization.is_active,
                    address: organization.address.clone(),
                    address2: organization.address2.clone(),
                    city: organization.city.clone(),
                    state: organization.state.clone(),
                    zip: organization.zip.clone(),
                    country: organization.country.clone(),
                    telephone: organization.telephone.clone(),
                    validations,
                },
            );
        }
        Ok(())
    }

    fn load_domains(&mut self, seed: &Seed, now: OffsetDateTime) -> Result<(), Error> {
        for domain in &seed.domains {
            let name = normalize_name(&domain.name);
            if !is_dns_name(&name) || name.starts_with("*.") {
                return Err(Error::Seed {
                    reason: format!("domain `{}` is not a DNS name", domain.name),
                });
            }
            if let Some(organization) = domain.organization_id {
                if !self.organizations.contains_key(&organization) {
                    return Err(Error::Seed {
                        reason: format!(
                            "domain `{name}` names organization {organization}, which the seed does not define"
                        ),
                    });
                }
            }
            let id = match domain.id {
                Some(id) => id,
                None => self.next_domain_id(),
            };
            let complete = domain.dcv_status == DcvStatus::Complete;
            let token = domain
                .dcv_token
                .clone()
                .unwrap_or_else(|| self.rng.alphanumeric(32));
            self.domains.insert(
                id,
                Domain {
                    id,
                    name,
                    organization_id: domain.organization_id,
                    is_active: domain.is_active,
                    date_created: now - Duration::days(30),
                    dcv_status: domain.dcv_status,
                    dcv_method: domain.dcv_method.clone(),
                    validation_types: domain.validations.clone(),
                    validated_until: if complete {
                        Some(seed_date(
                            domain.validated_until.as_deref(),
                            now + Duration::days(397),
                        )?)
                    } else {
                        None
                    },
                    dcv_approval: complete.then_some(now - Duration::days(30)),
                    token,
                    token_expires: now
                        + Duration::days(i64::from(self.settings.dcv.token_lifetime_days)),
                },
            );
        }
        Ok(())
    }

    fn load_orders(&mut self, seed: &OrderSeed, now: OffsetDateTime) -> Result<(), Error> {
        let invalid = |reason: String| Error::Seed { reason };
        let status = OrderStatus::parse(&seed.status)
            .filter(|status| *status != OrderStatus::ReissuePending)
            .ok_or_else(|| {
                invalid(format!(
                    "seeded order status `{}` is not supported",
                    seed.status
                ))
            })?;
        let product = self.product(&seed.product).cloned().ok_or_else(|| {
            invalid(format!(
                "seeded orders name unknown product `{}`",
                seed.product
            ))
        })?;
        let user_id = match &seed.api_key {
            Some(name) => self
                .keys
                .iter()
                .find(|key| &key.name == name)
                .map(|key| key.user_id)
                .ok_or_else(|| invalid(format!("seeded orders name unknown API key `{name}`")))?,
            None => self.keys.first().map(|key| key.user_id).unwrap_or_default(),
        };
        let organization_id = match seed.organization_id {
            Some(id) if !self.organizations.contains_key(&id) => {
                return Err(invalid(format!(
                    "seeded orders name unknown organization {id}"
                )))
            }
            Some(id) => Some(id),
            None if product.validation_type.needs_organization() => {
                self.organizations.keys().next().copied()
            }
            None => None,
        };
        // One key for all seeded certificates: they are for listing, not for serving TLS.
        let key = crate::keys::PrivateKey::generate(crate::spec::KeySpec::Ecdsa(256))
            .map_err(|error| invalid(format!("cannot make a key for seeded orders: {error}")))?;
        for n in 1..=seed.count {
            let expand = |text: &str| text.replace("{n}", &n.to_string());
            let common_name = normalize_name(&expand(&seed.common_name));
            let mut dns_names = vec![common_name.clone()];
            for name in &seed.dns_names {
                let name = normalize_name(&expand(name));
                if !dns_names.contains(&name) {
                    dns_names.push(name);
                }
            }
            if let Some(bad) = dns_names.iter().find(|name| !is_dns_name(name)) {
                return Err(invalid(format!(
                    "seeded order name `{bad}` is not a DNS name"
                )));
            }
            let csr_der = key.csr_der(&common_name, &dns_names).map_err(|error| {
                invalid(format!("cannot make a CSR for `{common_name}`: {error}"))
            })?;
            let csr_text = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", csr_der));
            let csr = super::super::ca::parse_csr(&csr_text)
                .map_err(|problem| invalid(problem.message))?;
            let created = now - Duration::days(i64::from(seed.age_days));
            let params = CertParams {
                common_name: common_name.clone(),
                dns_names,
                csr_text,
                csr,
                signature_hash: product.default_signature_hash.clone(),
                server_platform_id: -1,
                organization_units: Vec::new(),
                profile_option: None,
                ca_cert_id: None,
            };
            let order_id = self.next_order_id();
            let certificate_id = self.next_certificate_id();
            let request_id = self.next_request_id();
            let days = seed.validity_days.max(1);
            let order = Order {
                id: order_id,
                product: product.name_id.clone(),
                status,
                status_last_updated: created,
                date_created: created,
                user_id,
                params: params.clone(),
                reissue: None,
                awaiting_approval: status == OrderStatus::NeedsApproval,
                organization_id,
                cert_validity: Validity::Days(days),
                order_valid_from: created,
                order_valid_till: created + Duration::days(i64::from(days)),
                validity_years: None,
                payment_method: "balance".into(),
                disable_renewal_notifications: false,
                disable_ct: false,
                container_id: self.settings.account.container_id,
                custom_fields: Vec::new(),
                alternative_order_id: seed.alternative_order_id.as_deref().map(expand),
                renewal_of_order_id: seed.renewal_of_order_id,
                renewed_order_id: None,
                dcv_method: self.settings.dcv.default_method.clone(),
                dcv_random_value: None,
                dcv_random_value_expires: None,
                certificate_id,
                certificate_ids: vec![certificate_id],
                request_ids: vec![request_id],
                issue_at: None,
                price: product.price,
            };
            self.count_new_order(&order);
            self.certificates.insert(
                certificate_id,
                Certificate {
                    id: certificate_id,
                    order_id,
                    params,
                    date_created: created,
                    issued: None,
                    revoked: None,
                },
            );
            let request_status = match status {
                OrderStatus::NeedsApproval => RequestStatus::Pending,
                OrderStatus::Rejected => RequestStatus::Rejected,
                OrderStatus::Pending | OrderStatus::WaitingPickup => RequestStatus::Pending,
                _ => RequestStatus::Approved,
            };
            self.requests.insert(
                request_id,
                Request {
                    status: request_status,
                    ..Request::pending(
                        request_id,
                        RequestKind::NewRequest,
                        order_id,
                        user_id,
                        created,
                        String::new(),
                    )
                },
            );
            self.orders.insert(order_id, order);
            if let Some(old) = seed
                .renewal_of_order_id
                .and_then(|old| self.orders.get_mut(&old))
            {
                old.renewed_order_id = Some(order_id);
            }
            if matches!(
                status,
                OrderStatus::Issued | OrderStatus::Revoked | OrderStatus::Expired
            ) {
                self.issue(order_id, created).map_err(|error| {
                    invalid(format!("cannot issue seeded order: {}", error.message))
                })?;
                let order = self
                    .orders
                    .get_mut(&order_id)
                    .ok_or_else(|| invalid("lost a seeded order".into()))?;
                order.status = status;
                order.status_last_updated = created;
                if status == OrderStatus::Revoked {
                    if let Some(certificate) = self.certificates.get_mut(&certificate_id) {
                        certificate.revoked = Some(created);
                    }
                }
            }
        }
        Ok(())
    }
}

fn seed_date(text: Option<&str>, default: OffsetDateTime) -> Result<OffsetDateTime, Error> {
    match text {
        None => Ok(default),
        Some(text) => parse_date(text)
            .map(|day| end_of_day(day.with_time(Time::MIDNIGHT).assume_utc()))
            .ok_or_else(|| Error::Seed {
                reason: format!("`{text}` is not a YYYY-MM-DD date"),
            }),
    }
}
