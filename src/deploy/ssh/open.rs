//! The deployer of a `kind = "ssh"` target.

use super::settings::Settings;
use crate::apply::FailPoints;
use crate::deploy::Deployer;

/// The deployer writing `target` (no fail points: a killed switch is repaired by the next
/// deploy, which compares the hashes on the host).
pub(crate) fn deployer(target: &Settings, _failpoints: Option<&FailPoints>) -> Box<dyn Deployer> {
    Box::new(super::SshDeployer::new(target.clone()))
}
