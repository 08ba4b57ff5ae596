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
            .and_then(|o| o.renewal_window.as_ref())
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
