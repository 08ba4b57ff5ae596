//! Open a configured `kind = "sectigo"` account for a run.

use std::sync::Arc;

use super::settings::Settings;
use crate::ca::registry::OpenContext;
use crate::ca::{CaError, CertificateAuthority};

/// The Sectigo account `name`. Opening reads nothing from the API: the certificates ordered
/// here are checked against the account by `ca::open_accounts_except` (the generic `check`).
pub(crate) async fn open(
    name: &str,
    settings: &Settings,
    context: &OpenContext<'_>,
) -> Result<Option<Arc<dyn CertificateAuthority>>, CaError> {
    let ca = super::open(name, settings, context.keys_dir, context.now)?;
    Ok(Some(Arc::new(ca)))
}
