//! The `DnsProvider` trait: publishing and removing the TXT records that prove domain control.
//!
//! Providers (`rfc2136`, and later `cloudflare`, `route53`, `azure`, `godaddy`, `exec`) speak
//! their own API and map it to these types. A provider only ever removes records it created
//! (by id or exact value): other TXT values at the same name are left alone.

pub mod propagation;
pub mod registry;
pub mod rfc2136;

use async_trait::async_trait;

/// A TXT record certform created, with what the provider needs to remove exactly it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtRecord {
    /// Fully qualified name, no trailing dot (e.g. `_acme-challenge.www.example.com`).
    pub name: String,
    pub value: String,
    /// Zone the record was written to.
    pub zone: String,
    /// Provider's record id, where it has one.
    pub id: Option<String>,
}

/// How the executor should treat a DNS provider error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Transient,
    RateLimited,
    /// Refused: wrong key, not authorised for the zone, zone not found.
    Rejected,
    Auth,
}

/// An error from a DNS provider, naming server/zone/key where relevant.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DnsError {
    pub class: ErrorClass,
    pub message: String,
}

/// A DNS account that can publish TXT records.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// The provider's name in config (`[dns.NAME]`).
    fn name(&self) -> &str;

    /// Add one TXT value at `name` (other values at that name stay).
    async fn add_txt(&self, name: &str, value: &str) -> Result<TxtRecord, DnsError>;

    /// Remove exactly a record `add_txt` created.
    async fn remove_txt(&self, record: &TxtRecord) -> Result<(), DnsError>;

    /// Servers to check for propagation before a CA is told to look (the provider's own
    /// authoritative servers, where it knows them).
    fn propagation_servers(&self) -> Vec<std::net::SocketAddr> {
        Vec::new()
    }
}

/// Open every configured DNS provider, resolving its secrets now.
pub fn open_providers(
    config: &crate::config::Config,
) -> Result<std::collections::BTreeMap<String, std::sync::Arc<dyn DnsProvider>>, DnsError> {
    let mut providers: std::collections::BTreeMap<String, std::sync::Arc<dyn DnsProvider>> =
        std::collections::BTreeMap::new();
    for (name, settings) in &config.dns {
        providers.insert(name.clone(), settings.kind.open(name)?);
    }
    Ok(providers)
}
