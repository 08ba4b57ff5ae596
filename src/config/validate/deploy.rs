//! `deploy`: where an issued certificate is written; each kind checks its own entry
//! (`deploy::registry`).

use super::*;

impl<'a> Validator<'a> {
    pub(super) fn deploy(
        &mut self,
        origin: Origin<'_>,
        certificate: &KeyPath,
        targets: &[DeployTable],
    ) -> Vec<DeployTarget> {
        let mut built = Vec::new();
        let mut dirs: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for (index, target) in targets.iter().enumerate() {
            let path = certificate.key("deploy").index(index);
            if let Some(target) = target.validate(self, origin, &path, &mut dirs, index) {
                built.push(target);
            }
        }
        built
    }
}
