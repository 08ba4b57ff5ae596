//! Apply: one run start to finish (`run`), and the executor that carries out a plan
//! (`executor`).

mod executor;
mod failure;
mod recover;
mod run;
pub mod saved;

pub use executor::{
    error_chain, random_hex, Error, Executor, FailPoints, Outcome, ProgressCallback, Report,
    RetryPolicy,
};
pub use failure::Failure;
pub use recover::recover_interrupted;
pub use run::{apply, take_lock, ApplyOptions, ApplyReport, Notice};

use crate::observed::Observed;
use crate::state::{State, StateStore};

/// Keep in state what refresh learned that must outlive the run (renewal windows with their
/// `Retry-After`), before the plan is carried out. Returns the certificates updated.
pub fn record_observations(
    store: &dyn StateStore,
    state: &mut State,
    observed: &Observed,
) -> Result<Vec<String>, crate::state::Error> {
    let mut updated = Vec::new();
    for (name, certificate) in state.certificates.iter_mut() {
        let Some(window) = observed
            .certificates
            .get(name)
            .and_then(|o| o.renewal_window.as_deref())
        else {
            continue;
        };
        if certificate.renewal_window.as_ref() != Some(window) {
            certificate.renewal_window = Some(window.clone());
            store.save_certificate(certificate)?;
            updated.push(name.clone());
        }
    }
    Ok(updated)
}

/// Keep in state what the inventory listings of this run found (`ca/<account>.inventory.toml`,
/// committed with the run, when it reports something new; the listing time beside the
/// repository); a failed listing leaves the account's last record as it was.
pub fn record_inventory(
    store: &dyn StateStore,
    state: &State,
    observed: &Observed,
) -> Result<(), crate::state::Error> {
    for (ca, listing) in &observed.ca_inventory {
        if let crate::ca_inventory::Listing::Listed(inventory) = listing {
            crate::state::store::save_inventory(store, inventory, state.ca_inventory.get(ca))?;
        }
    }
    Ok(())
}
