//! The `DnsProvider` trait: publishing and removing the TXT records that prove domain control.
//!
//! Providers (`rfc2136`, and later `cloudflare`, `route53`, `azure`, `godaddy`, `exec`) speak
//! their own API and map it to these types. A provider only ever removes records it created
//! (by id or exact value): other TXT values at the same name are left alone.

pub mod propagation;
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

pub use crate::error::ErrorClass;

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
        match &settings.kind {
            crate::config::DnsKind::Rfc2136(rfc2136) => {
                let resolve = |reference: &crate::config::SecretRef| {
                    crate::secrets::resolve(reference)
                        .map(|secret| secret.expose().as_bytes().to_vec())
                        .map_err(|e| e.to_string())
                };
                let provider = rfc2136::Rfc2136::new(name, rfc2136, &resolve)?;
                providers.insert(name.clone(), std::sync::Arc::new(provider));
            }
        }
    }
    Ok(providers)
}
