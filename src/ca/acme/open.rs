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
    let state_root = context.config.state.root();
    let seal = match &context.config.state.keys {
        crate::config::KeyBackend::Age(age) => {
            Some(crate::keys::SealedAccount::new(&state_root, age, name))
        }
        crate::config::KeyBackend::Files { .. } => {
            let sealed = state_root
                .join(crate::state::store::KEYS_DIR)
                .join(crate::keys::sealed_account_path(name));
            if sealed.is_file() && !home.join("account.json").exists() {
                // Never register a second account while the first one's key is in the repository.
                return Err(CaError::new(
                    ErrorClass::Auth,
                    format!(
                        "ACME account `{name}`: its key is in the state repository (`{}`, from `keys = \"age\"`), not in keys_dir; set `keys = \"age\"` again, or decrypt it into keys_dir: `age -d -i IDENTITY {} > {}` (mode 0600)",
                        sealed.display(),
                        sealed.display(),
                        home.join("account.json").display()
                    ),
                ));
            }
            None
        }
    };
    // Plan never registers an account: without one, nothing was ordered from it.
    if !context.create
        && !home.join("account.json").exists()
        && !seal
            .as_ref()
            .is_some_and(crate::keys::SealedAccount::exists)
    {
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
    let ca = match seal {
        Some(seal) => {
            super::AcmeCa::open_sealed(name, client_settings, home, Arc::new(seal), context.create)
                .await?
        }
        None => super::AcmeCa::open(name, client_settings, home).await?,
    };
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
