//! Open a configured `kind = "acme"` account for a run: resolve its EAB key, load or register
//! the account.

use std::sync::Arc;

use super::settings::Settings;
use crate::ca::registry::OpenContext;
use crate::ca::{CaError, CertificateAuthority, ErrorClass};

/// The ACME account `name`; `None` on plan when it was never registered (nothing was ordered
/// from it).
pub(crate) async fn open(
    name: &str,
    settings: &Settings,
    context: &OpenContext<'_>,
) -> Result<Option<Arc<dyn CertificateAuthority>>, CaError> {
    let home = context.keys_dir.join("acme").join(name);
    // Plan never registers an account: without one, nothing was ordered from it.
    if !context.create && !home.join("account.json").exists() {
        return Ok(None);
    }
    let eab = match &settings.eab {
        Some(eab) => {
            let text = crate::secrets::resolve(&eab.hmac).map_err(|e| {
                CaError::new(
                    ErrorClass::Auth,
                    format!("cannot read the EAB key of `{name}`"),
                )
                .with_source(e)
            })?;
            Some((
                eab.kid.clone(),
                decode_eab_key(text.expose())
                    .map(crate::secrets::Secret::new)
                    .ok_or_else(|| {
                        CaError::new(
                            ErrorClass::Auth,
                            format!("the EAB key of `{name}` is not base64url"),
                        )
                    })?,
            ))
        }
        None => None,
    };
    let client_settings = super::AcmeSettings {
        directory: settings.directory.clone(),
        contact: settings
            .contact
            .iter()
            .map(|c| format!("mailto:{c}"))
            .collect(),
        ca_bundle: settings.ca_bundle.clone(),
        eab,
        profile: settings.profile.clone(),
        preferred_chain: settings.preferred_chain.clone(),
    };
    let ca = super::AcmeCa::open(name, client_settings, home).await?;
    Ok(Some(Arc::new(ca)))
}

/// An EAB HMAC key as CAs hand it out: base64url (padding optional; standard base64 accepted).
fn decode_eab_key(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let trimmed = text.trim().trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .ok()
        .filter(|key| !key.is_empty())
}
