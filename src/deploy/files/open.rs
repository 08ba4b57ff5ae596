//! The deployer of a `kind = "files"` target.

use super::settings::Settings;
use crate::apply::FailPoints;
use crate::deploy::Deployer;

/// The deployer writing `target`, stopping at `failpoints` (crash tests) when given.
pub(crate) fn deployer(target: &Settings, failpoints: Option<&FailPoints>) -> Box<dyn Deployer> {
    let deployer = super::FilesDeployer::new(target.clone());
    match failpoints {
        Some(failpoints) => Box::new(deployer.with_failpoints(failpoints.clone())),
        None => Box::new(deployer),
    }
}
