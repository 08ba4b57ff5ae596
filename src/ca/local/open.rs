//! Open a configured `kind = "local"` CA for a run.

use std::sync::Arc;

use super::settings::Settings;
use crate::ca::registry::OpenContext;
use crate::ca::{local_ca_home, CaError, CertificateAuthority};

/// The local CA `name`; `None` on plan when it was never used (nothing to refresh from it).
pub(crate) async fn open(
    name: &str,
    settings: &Settings,
    context: &OpenContext<'_>,
) -> Result<Option<Arc<dyn CertificateAuthority>>, CaError> {
    let home = local_ca_home(context.keys_dir, name);
    if !context.create && !home.exists() {
        return Ok(None);
    }
    let ca = super::LocalCa::open(name, settings, home, context.now)?;
    Ok(Some(Arc::new(ca)))
}
