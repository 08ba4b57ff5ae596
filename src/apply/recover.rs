//! Before an apply plans: repair what a killed run left behind, so nothing else starts from a
//! half-done state. Finishes interrupted switches of deployed files, removes stale temp files
//! (one may hold a private key) and narrows a keys directory others can read.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::keys::KeyStore;

/// Run every repair and return one warning line per thing repaired or not repairable (the
/// apply goes on: a deploy that still cannot proceed fails loudly on its own).
pub fn recover_interrupted(config: &Config, keys: &KeyStore, state_root: &Path) -> Vec<String> {
    let mut warnings = Vec::new();
    match keys.secure_dir() {
        Ok(Some(mode)) => warnings.push(format!(
            "keys_dir `{}` had mode {mode:04o} (others could reach the private keys); set to 0700",
            keys.dir().display()
        )),
        Ok(None) => {}
        Err(error) => warnings.push(crate::apply::error_chain(&error)),
    }

    let mut temp_dirs: Vec<(PathBuf, usize)> = vec![
        (keys.dir().to_path_buf(), 0),
        (state_root.to_path_buf(), 0),
        (state_root.join("certificates"), 0),
        (state_root.join("ca"), 0),
    ];
    // The keys directory's tree (four levels) as one item per subdirectory, so that its
    // 10,000 certificate directories and the local CA's orders spread over the threads.
    if let Ok(listing) = std::fs::read_dir(keys.dir()) {
        for entry in listing.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                temp_dirs.push((entry.path(), 3));
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut targets = Vec::new();
    for spec in config.certificates.values() {
        for target in &spec.deploy {
            let id = target.id();
            if seen.insert(id.clone()) {
                targets.push((id, target));
            }
        }
    }
    for (_, target) in &targets {
        temp_dirs.extend(target.dirs().into_iter().map(|dir| (dir, 0)));
    }
    temp_dirs.sort();
    temp_dirs.dedup();
    // The stale temp files first (a temp file is never what a recovery reads: journals and
    // staged files have names of their own), noting from the same listing which directories
    // hold certform's hidden files.
    let scanned = crate::par::map(&temp_dirs, |(dir, depth)| {
        crate::atomic_file::sweep(dir, *depth).map_err(|error| {
            format!(
                "cannot clean stale temp files in `{}`: {error}",
                dir.display()
            )
        })
    });
    let mut removed = Vec::new();
    // Reported after the recoveries' lines, as before the sweep came first.
    let mut sweep_warnings = Vec::new();
    // Directories whose listing failed count as marked: their targets are recovered as usual.
    let mut marked = std::collections::BTreeSet::new();
    for ((dir, _), result) in temp_dirs.iter().zip(scanned) {
        match result {
            Ok(swept) => {
                removed.extend(swept.removed);
                if swept.certform_files {
                    marked.insert(dir.as_path());
                }
            }
            Err(warning) => {
                sweep_warnings.push(warning);
                marked.insert(dir.as_path());
            }
        }
    }
    // One target's repair touches only its own files: a few threads at fleet size. A target
    // whose kind keeps all it recovers from in hidden files of its directories (`files`:
    // the switch journal and staged files) is not looked at when none of them holds one.
    let repaired = crate::par::map(&targets, |(id, target)| {
        let deployer = crate::deploy::deployer_for(target);
        if deployer.recovers_from_hidden_files()
            && !target
                .dirs()
                .iter()
                .any(|dir| marked.contains(dir.as_path()))
        {
            return None;
        }
        match deployer.recover() {
            Ok(switched) if switched.is_empty() => None,
            Ok(switched) => Some(format!(
                "finished the interrupted deploy to `{id}`: switched in {}",
                switched.join(", ")
            )),
            Err(error) => Some(format!(
                "cannot finish the interrupted deploy to `{id}`: {}",
                crate::apply::error_chain(&error)
            )),
        }
    });
    warnings.extend(repaired.into_iter().flatten());
    warnings.extend(sweep_warnings);
    removed.sort();
    removed.dedup();
    if !removed.is_empty() {
        let names: Vec<String> = removed
            .iter()
            .map(|path| format!("`{}`", path.display()))
            .collect();
        warnings.push(format!(
            "removed {} stale temp file{} left by an interrupted run: {}",
            removed.len(),
            if removed.len() == 1 { "" } else { "s" },
            names.join(", ")
        ));
    }
    warnings
}
