//! The `DnsProvider` trait: publishing and removing the records that prove domain control
//! (TXT for ACME dns-01 and DigiCert, CNAME for Sectigo-style CNAME validation).
//!
//! Providers (`rfc2136`, and later `cloudflare`, `route53`, `azure`, `godaddy`, `exec`) speak
//! their own API and map it to these types. A provider only ever removes records it created
//! (by id or exact value): other values at the same name are left alone.

pub mod propagation;
pub mod registry;
pub mod rfc2136;

use async_trait::async_trait;

/// The data of a record certform publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    /// A TXT value (one string; providers split it into 255-byte pieces as the wire needs).
    Txt(String),
    /// A CNAME target: a fully qualified name, no trailing dot.
    Cname(String),
}

impl RecordData {
    /// The record type as DNS names it (`TXT`, `CNAME`).
    pub fn type_name(&self) -> &'static str {
        match self {
            RecordData::Txt(_) => "TXT",
            RecordData::Cname(_) => "CNAME",
        }
    }

    /// The value or target, as messages show it.
    pub fn value(&self) -> &str {
        match self {
            RecordData::Txt(value) | RecordData::Cname(value) => value,
        }
    }
}

/// A record certform created, with what the provider needs to remove exactly it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// Fully qualified name, no trailing dot (e.g. `_acme-challenge.www.example.com`).
    pub name: String,
    pub data: RecordData,
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

/// A DNS account that can publish TXT and CNAME records.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// The provider's name in config (`[dns.NAME]`).
    fn name(&self) -> &str;

    /// Add one record at `name`: a TXT value joins the others at that name; a CNAME is the
    /// only record at its name (a provider refuses one where other data exists).
    async fn add_record(&self, name: &str, data: &RecordData) -> Result<DnsRecord, DnsError>;

    /// Remove exactly a record `add_record` created.
    async fn remove_record(&self, record: &DnsRecord) -> Result<(), DnsError>;

    /// Add one TXT value at `name` (other values at that name stay).
    async fn add_txt(&self, name: &str, value: &str) -> Result<DnsRecord, DnsError> {
        self.add_record(name, &RecordData::Txt(value.to_string()))
            .await
    }

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
