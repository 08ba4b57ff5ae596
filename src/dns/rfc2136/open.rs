//! Open a configured `kind = "rfc2136"` provider for a run: resolve its TSIG secrets.

use std::sync::Arc;

use super::settings::Settings;
use crate::config::SecretRef;
use crate::dns::{DnsError, DnsProvider};

/// The provider `name`, its secrets read now.
pub(crate) fn open(name: &str, settings: &Settings) -> Result<Arc<dyn DnsProvider>, DnsError> {
    let resolve = |reference: &SecretRef| {
        crate::secrets::resolve(reference)
            .map(|secret| secret.expose().as_bytes().to_vec())
            .map_err(|e| e.to_string())
    };
    let provider = super::Rfc2136::new(name, settings, &resolve)?;
    Ok(Arc::new(provider))
}
