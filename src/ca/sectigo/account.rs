//! Account-level reads of an SCM account: the account data (profiles, custom fields,
//! organizations, domains) with its cache file, the plan-time checks built on it, `ca test`,
//! `ca info` and the orders `import` adopts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::settings::{Options, Reference};
use super::wire::{self, CustomField, Domain, Organization, Profile};
use super::SectigoCa;
use crate::ca::{
    AccountInfo, AccountOrder, CaError, Credentials, ErrorClass, InfoItem, InfoSection,
};
use crate::spec::CertificateSpec;

/// The cache file of the account data.
const ACCOUNT_FILE: &str = "account.json";
/// The account data is read again when older than this.
pub const MAX_AGE: time::Duration = time::Duration::weeks(1);

/// What the account offers, as read at `read_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountData {
    #[serde(with = "time::serde::rfc3339")]
    pub read_at: OffsetDateTime,
    pub profiles: Vec<CachedProfile>,
    pub custom_fields: Vec<CachedField>,
    pub organizations: Vec<CachedOrganization>,
    pub domains: Vec<CachedDomain>,
    /// Read from the API in this run (not from the cache file).
    #[serde(skip)]
    pub fresh: bool,
}

/// The cached forms (the wire records are plain data with the same fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedProfile {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub terms: Vec<u32>,
    pub key_types: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedField {
    pub name: String,
    pub mandatory: bool,
    pub input_type: Option<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedOrganization {
    pub id: u64,
    pub name: String,
    pub parent: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedDomain {
    pub name: String,
    pub validation: String,
    pub method: Option<String>,
    pub expires: Option<String>,
}

impl CachedProfile {
    pub fn profile(&self) -> Profile {
        Profile {
            id: self.id,
            name: self.name.clone(),
            description: self.description.clone(),
            terms: self.terms.clone(),
            key_types: self.key_types.clone(),
        }
    }
}

impl CachedField {
    fn field(&self) -> CustomField {
        CustomField {
            id: None,
            name: self.name.clone(),
            mandatory: self.mandatory,
            input_type: self.input_type.clone(),
            options: self.options.clone(),
        }
    }
}

impl AccountData {
    /// The profile `reference` names.
    pub fn profile(&self, reference: Option<&Reference>) -> Option<&CachedProfile> {
        let reference = reference?;
        self.profiles
            .iter()
            .find(|p| reference.matches(p.id, &p.name))
    }

    /// The organization or department `reference` names.
    pub fn organization(&self, reference: Option<&Reference>) -> Option<&CachedOrganization> {
        let reference = reference?;
        self.organizations
            .iter()
            .find(|o| reference.matches(o.id, &o.name))
    }

    fn age(&self, now: OffsetDateTime) -> time::Duration {
        now - self.read_at
    }
}

/// Every way the certificates `specs` do not fit the account `data`, one line each.
pub fn problems(account: &str, data: &AccountData, specs: &[&CertificateSpec]) -> Vec<String> {
    let mut problems = Vec::new();
    let list = |names: Vec<String>| {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    for spec in specs {
        let at = format!("certificate `{}` ({})", spec.name, spec.location);
        let options = Options::of(&spec.ca_options);
        match data.profile(options.profile.as_ref()) {
            None => problems.push(format!(
                "{at}: Sectigo account `{account}` has no profile {}; profiles: {}",
                options
                    .profile
                    .as_ref()
                    .map(Reference::describe)
                    .unwrap_or_default(),
                list(
                    data.profiles
                        .iter()
                        .map(|p| format!("{} `{}`", p.id, p.name))
                        .collect()
                )
            )),
            Some(cached) => {
                let profile = cached.profile();
                if let Err(message) = super::term_for(options.term, spec.validity, &profile) {
                    problems.push(format!("{at}: {message}"));
                }
                if !profile.allows_key(&spec.key) {
                    problems.push(format!(
                        "{at}: profile `{}` does not allow a {} key; its key types: {}",
                        profile.name,
                        spec.key.label(),
                        profile.describe_keys()
                    ));
                }
            }
        }
        if data.organization(options.organization.as_ref()).is_none() {
            problems.push(format!(
                "{at}: Sectigo account `{account}` has no organization or department {}; organizations: {}",
                options
                    .organization
                    .as_ref()
                    .map(Reference::describe)
                    .unwrap_or_default(),
                list(
                    data.organizations
                        .iter()
                        .map(|o| format!("{} `{}`", o.id, o.name))
                        .collect()
                )
            ));
        }
        for (name, value) in &options.custom_fields {
            match data.custom_fields.iter().find(|f| &f.name == name) {
                None => problems.push(format!(
                    "{at}: Sectigo account `{account}` has no custom field `{name}`; its custom fields: {}",
                    list(data.custom_fields.iter().map(|f| format!("`{}`", f.name)).collect())
                )),
                Some(field) => {
                    if let Some(why) = field.field().refuses(value) {
                        problems.push(format!(
                            "{at}: custom field `{name}`: `{value}` {why}"
                        ));
                    }
                }
            }
        }
        for field in data.custom_fields.iter().filter(|f| f.mandatory) {
            if !options.custom_fields.contains_key(&field.name) {
                problems.push(format!(
                    "{at}: custom field `{}` is mandatory in Sectigo account `{account}`: set `custom_fields.\"{}\"`",
                    field.name, field.name
                ));
            }
        }
    }
    problems
}

impl SectigoCa {
    /// The account data: from the cache file when younger than a week (and `refresh` is not
    /// asked), else read from the API and written to the cache.
    pub(super) async fn account_data(&self, refresh: bool) -> Result<AccountData, CaError> {
        let mut slot = self.account.lock().await;
        if let Some(data) = slot.as_ref() {
            if !refresh || data.fresh {
                return Ok(data.clone());
            }
        }
        if !refresh {
            if let Some(data) = self.read_cache() {
                if data.age(self.settings.now) < MAX_AGE && data.age(self.settings.now) >= -MAX_AGE
                {
                    *slot = Some(data.clone());
                    return Ok(data);
                }
            }
        }
        let data = self.read_account().await?;
        self.write_cache(&data);
        *slot = Some(data.clone());
        Ok(data)
    }

    fn read_cache(&self) -> Option<AccountData> {
        let dir = self.settings.home.as_ref()?;
        let bytes = std::fs::read(dir.join(ACCOUNT_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Write the cache (best effort: a lost cache only costs requests).
    fn write_cache(&self, data: &AccountData) {
        let Some(dir) = &self.settings.home else {
            return;
        };
        let Ok(bytes) = serde_json::to_vec_pretty(data) else {
            return;
        };
        let result = crate::atomic_file::create_dir_all(dir, 0o700)
            .and_then(|()| crate::atomic_file::write(&dir.join(ACCOUNT_FILE), &bytes, 0o600));
        if let Err(error) = result {
            tracing::debug!(account = %self.name, %error, "cannot write the Sectigo account cache");
        }
    }

    /// Read profiles, custom fields, organizations and domains from the API. Domains need the
    /// domain privilege: without it the list is left empty.
    async fn read_account(&self) -> Result<AccountData, CaError> {
        let profiles = self.profiles().await?;
        let custom_fields = self.custom_fields().await?;
        let organizations = self.organizations().await?;
        let domains = match self.domains().await {
            Ok(domains) => domains,
            Err(error) if error.class == ErrorClass::Auth => {
                tracing::warn!(account = %self.name, %error, "cannot list the domains");
                Vec::new()
            }
            Err(error) => return Err(error),
        };
        Ok(AccountData {
            read_at: self.settings.now,
            profiles: profiles
                .into_iter()
                .map(|p| CachedProfile {
                    id: p.id,
                    name: p.name,
                    description: p.description,
                    terms: p.terms,
                    key_types: p.key_types,
                })
                .collect(),
            custom_fields: custom_fields
                .into_iter()
                .map(|f| CachedField {
                    name: f.name,
                    mandatory: f.mandatory,
                    input_type: f.input_type,
                    options: f.options,
                })
                .collect(),
            organizations: organizations
                .into_iter()
                .map(|o: Organization| CachedOrganization {
                    id: o.id,
                    name: o.name,
                    parent: o.parent,
                })
                .collect(),
            domains: domains
                .into_iter()
                .map(|d: Domain| CachedDomain {
                    name: d.name,
                    validation: d.validation,
                    method: d.method,
                    expires: d.expires,
                })
                .collect(),
            fresh: true,
        })
    }

    /// `ca test`: the credentials work (profiles answer), and the administrator may list and
    /// manage SSL certificates (the list answers; organizations are visible).
    pub(super) async fn check_access(&self) -> Result<Credentials, CaError> {
        // SCM filters every answer by the administrator's role (D25 overview): without an SSL
        // role the profiles and organizations come back empty rather than refused.
        let missing_role = |what: &str| {
            CaError::new(
                ErrorClass::Auth,
                format!(
                    "Sectigo administrator `{}` of `{}` sees no {what}: it holds no SSL role (RAO SSL, DRAO SSL or MRAO)",
                    self.settings.login, self.name
                ),
            )
            .with_problem(crate::ca::Problem::Sectigo {
                code: -3,
                description: format!("no {what} visible to this administrator"),
            })
        };
        if self.profiles().await?.is_empty() {
            return Err(missing_role("SSL certificate profile"));
        }
        self.can_list().await?;
        let organizations = self.organizations().await?;
        if organizations.is_empty() {
            return Err(missing_role("organization"));
        }
        let top = organizations.iter().filter(|o| o.parent.is_none()).count();
        Ok(Credentials {
            identity: format!(
                "{} at customer `{}` ({top} organization{}, {} department{})",
                self.settings.login,
                self.settings.customer_uri,
                if top == 1 { "" } else { "s" },
                organizations.len() - top,
                if organizations.len() - top == 1 {
                    ""
                } else {
                    "s"
                }
            ),
            read_only: self.settings.read_only,
        })
    }

    /// `ca info`: profiles, organizations, custom fields and domains, with the cache's age.
    pub(super) async fn read_account_info(&self, refresh: bool) -> Result<AccountInfo, CaError> {
        let data = self.account_data(refresh).await?;
        let age = data.age(self.settings.now);
        let described_age = if data.fresh {
            "read now".to_string()
        } else if age.whole_days() >= 1 {
            format!("cached {} days ago", age.whole_days())
        } else if age.whole_hours() >= 1 {
            format!("cached {} hours ago", age.whole_hours())
        } else {
            format!("cached {} minutes ago", age.whole_minutes().max(0))
        };
        let mut profiles = data.profiles.clone();
        profiles.sort_by_key(|p| p.id);
        let profiles = profiles
            .iter()
            .map(|p| {
                let profile = p.profile();
                let line = format!(
                    "{:<8} {} (terms: {} days; keys: {})",
                    p.id,
                    p.name,
                    p.terms
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join("/"),
                    if profile.key_types.is_empty() {
                        "any".to_string()
                    } else {
                        profile.describe_keys()
                    }
                );
                InfoItem::new(line, p)
            })
            .collect();
        let organizations = data
            .organizations
            .iter()
            .map(|o| {
                let line = match &o.parent {
                    Some(parent) => format!("{:<8} {} (department of {parent})", o.id, o.name),
                    None => format!("{:<8} {}", o.id, o.name),
                };
                InfoItem::new(line, o)
            })
            .collect();
        let mut domains = data.domains.clone();
        domains.sort_by(|a, b| a.name.cmp(&b.name));
        let domains = domains
            .iter()
            .map(|d| {
                let line = format!(
                    "{:<32} {}{}{}",
                    d.name,
                    d.validation,
                    d.method
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default(),
                    d.expires
                        .as_deref()
                        .map(|e| format!(", until {e}"))
                        .unwrap_or_default()
                );
                InfoItem::new(line, d)
            })
            .collect();
        let fields = data
            .custom_fields
            .iter()
            .map(|f| {
                let line = format!(
                    "{}{}{}",
                    f.name,
                    if f.mandatory { " (mandatory)" } else { "" },
                    f.input_type
                        .as_deref()
                        .map(|t| format!(", {t}"))
                        .unwrap_or_default()
                );
                InfoItem::new(line, f)
            })
            .collect();
        let section = |key: &str, title: &str, items| InfoSection {
            key: key.to_string(),
            title: title.to_string(),
            items,
        };
        Ok(AccountInfo {
            account: self.name.clone(),
            heading: format!(
                "Sectigo account `{}` ({described_age}; `ca info --refresh` reads it again)",
                self.name
            ),
            sections: vec![
                section("profiles", "Profiles", profiles),
                section("organizations", "Organizations", organizations),
                section("custom_fields", "Custom fields", fields),
                section("domains", "Domains", domains),
            ],
        })
    }

    /// The records `import` may adopt: one live record per common name (the newest issued
    /// one, else the newest), replaced and renewed records left out. Revoked and expired ones
    /// are listed with their status (import skips them on request).
    pub(super) async fn account_orders(&self) -> Result<Vec<AccountOrder>, CaError> {
        let data = self.account_data(false).await.ok();
        let mut by_name: BTreeMap<String, Vec<wire::Details>> = BTreeMap::new();
        for summary in self.list_ids("").await? {
            let Some(details) = self.details(summary.id).await? else {
                continue;
            };
            if details.is_superseded() {
                continue;
            }
            by_name
                .entry(details.common_name.to_ascii_lowercase())
                .or_default()
                .push(details);
        }
        let mut orders = Vec::new();
        for (_, mut records) in by_name {
            // Newest first; an issued record wins over the others.
            records.sort_by_key(|record| std::cmp::Reverse(record.id));
            let live = records
                .iter()
                .position(|d| {
                    wire::map_status(&d.status) == crate::observed::OrderStatus::Issued
                        && !d.renewed
                })
                .or_else(|| {
                    records.iter().position(|d| {
                        wire::map_status(&d.status) == crate::observed::OrderStatus::Issued
                    })
                })
                .unwrap_or(0);
            let details = records.swap_remove(live);
            orders.push(account_order(details, data.as_ref()));
        }
        Ok(orders)
    }
}

/// A record in the provider-neutral form `import` adopts, with the settings of its stub.
fn account_order(details: wire::Details, data: Option<&AccountData>) -> AccountOrder {
    let status = match wire::map_status(&details.status) {
        crate::observed::OrderStatus::Issued => "issued".to_string(),
        crate::observed::OrderStatus::Revoked => "revoked".to_string(),
        crate::observed::OrderStatus::Expired => "expired".to_string(),
        crate::observed::OrderStatus::Canceled => "canceled".to_string(),
        crate::observed::OrderStatus::Rejected => "rejected".to_string(),
        _ => wire::normalize(&details.status),
    };
    let mut settings = Vec::new();
    let profile = details.profile_id.and_then(|id| {
        data.and_then(|d| d.profiles.iter().find(|p| p.id == id))
            .map(|p| p.name.clone())
            .or_else(|| details.profile_name.clone())
            .map(toml::Value::String)
            .or_else(|| i64::try_from(id).ok().map(toml::Value::Integer))
    });
    if let Some(profile) = profile {
        settings.push(("profile".to_string(), profile));
    }
    if let Some(org) = details.org_id.and_then(|id| i64::try_from(id).ok()) {
        settings.push(("organization".to_string(), toml::Value::Integer(org)));
    }
    if let Some(term) = details.term {
        settings.push(("term".to_string(), toml::Value::Integer(i64::from(term))));
    }
    let tag = details
        .comments
        .split_whitespace()
        .skip_while(|word| *word != "certform")
        .nth(1)
        .filter(|tag| tag.starts_with("cf-"))
        .map(str::to_string);
    let mut names = vec![details.common_name.clone()];
    for name in &details.names {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    AccountOrder {
        order_id: details.id.to_string(),
        status,
        common_name: details.common_name,
        names,
        serial: details.serial,
        tag,
        not_after: details.expires,
        settings,
        // Collect goes by the record id: no separate certificate id to download by.
        certificate_id: None,
        // SCM's record details name no renewal link (see the contract suite).
        lineage: crate::ca::account::Lineage::default(),
    }
}
