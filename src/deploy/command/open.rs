//! The deployer of a `kind = "command"` target.

use super::settings::Settings;
use crate::apply::FailPoints;
use crate::deploy::Deployer;

/// The deployer running `target`.
pub(crate) fn deployer(target: &Settings, _failpoints: Option<&FailPoints>) -> Box<dyn Deployer> {
    Box::new(super::CommandDeployer::new(target.clone()))
}
