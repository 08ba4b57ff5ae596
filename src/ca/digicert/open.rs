//! Open a configured `kind = "digicert"` account for a run.

use std::sync::Arc;

use super::settings::Settings;
use crate::ca::registry::OpenContext;
use crate::ca::{CaError, CertificateAuthority};

/// The DigiCert account `name`. On plan, the certificates ordered here are checked against the
/// account (apply opens it once, for its plan, so it checks too).
pub(crate) async fn open(
    name: &str,
    settings: &Settings,
    context: &OpenContext<'_>,
) -> Result<Option<Arc<dyn CertificateAuthority>>, CaError> {
    let ca = super::open(name, settings, context.keys_dir)?;
    if !context.create {
        let specs: Vec<&crate::spec::CertificateSpec> = context
            .config
            .certificates
            .values()
            .filter(|spec| spec.ca == name)
            .collect();
        ca.check_specs(&specs).await?;
    }
    Ok(Some(Arc::new(ca)))
}
