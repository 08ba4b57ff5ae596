//! The deployer of a `kind = "jks"` target.

use super::settings::Settings;
use crate::apply::FailPoints;
use crate::deploy::keystore::StoreDeployer;
use crate::deploy::Deployer;
use crate::spec::DeployTarget;

/// The deployer writing `target` (a single atomic write: no fail points between steps).
pub(crate) fn deployer(target: &Settings, _failpoints: Option<&FailPoints>) -> Box<dyn Deployer> {
    let id = DeployTarget::Jks(target.clone()).id();
    let settings = target.clone();
    let encoder_id = id.clone();
    Box::new(StoreDeployer::new(
        id,
        target.file.clone(),
        Box::new(move |bundle, now| super::encode(&encoder_id, &settings, bundle, now)),
    ))
}
