//! The parsed-state cache (`.git/certform-state-cache` in the state repository): a state file
//! whose stat data is the recorded one is not parsed again, but a state file edited by hand is
//! read as before (same output, same error with file, line and column), and a broken or
//! foreign cache only costs time. The unit tests in `src/state/store/parsed_cache/tests.rs`
//! pin the stat-data, racy and format rules.

use std::time::Duration;

use crate::sandbox::{Sandbox, WEB};

const CACHE: &str = "state/.git/certform-state-cache";

/// An issued `web` whose state file is old enough (the racy margin, 5 s) to be cached, and a
/// `status` that cached it.
fn cached() -> Sandbox {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    std::thread::sleep(Duration::from_secs(6));
    sandbox.certform(&["status"]).expect(0);
    assert!(
        sandbox.read(CACHE).contains("\nweb\t"),
        "{}",
        sandbox.read(CACHE)
    );
    sandbox
}

/// `touch -d` the file at `relative` back to `mtime`.
fn set_mtime(sandbox: &Sandbox, relative: &str, mtime: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(sandbox.path(relative))
        .and_then(|file| file.set_modified(mtime))
        .expect("set mtime");
}

#[test]
fn the_cache_is_private_untracked_and_changes_no_output() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    // Just written (within the racy margin: the unit tests pin that nothing is recorded).
    let fresh = sandbox.certform(&["status"]).expect(0);
    std::thread::sleep(Duration::from_secs(6));
    let uncached = sandbox.certform(&["status"]).expect(0);
    assert_eq!(uncached.stdout, fresh.stdout);
    let cache = sandbox.read(CACHE);
    assert!(cache.starts_with("certform-state-cache 1 "), "{cache}");
    assert!(cache.contains("\nweb\t"), "{cache}");
    let mode = std::fs::metadata(sandbox.path(CACHE))
        .expect("cache")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let cache_mtime = std::fs::metadata(sandbox.path(CACHE))
        .and_then(|m| m.modified())
        .expect("mtime");
    // From the cache: the same output, byte for byte, and the cache is not written again.
    let from_cache = sandbox.certform(&["status"]).expect(0);
    assert_eq!(from_cache.stdout, fresh.stdout);
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
    assert_eq!(
        std::fs::metadata(sandbox.path(CACHE))
            .and_then(|m| m.modified())
            .expect("mtime"),
        cache_mtime
    );
    let tracked = sandbox.git("state", &["ls-files"]);
    assert!(!tracked.contains("certform-state-cache"), "{tracked}");
    let status = sandbox.git("state", &["status", "--porcelain"]);
    assert!(status.trim().is_empty(), "{status}");
}

#[test]
fn a_hand_edit_under_the_same_size_and_mtime_is_seen() {
    let sandbox = cached();
    let file = "state/certificates/web.toml";
    let before = sandbox.read(file);
    let mtime = std::fs::metadata(sandbox.path(file))
        .and_then(|m| m.modified())
        .expect("mtime");
    let not_after = sandbox.state_field("web", "not_after");
    // One year later, the same number of bytes, the mtime put back (`touch -d`).
    let year: i32 = not_after[..4].parse().expect("year");
    let later = format!("{}{}", year + 1, &not_after[4..]);
    let edited = before.replace(
        &format!("not_after = \"{not_after}\""),
        &format!("not_after = \"{later}\""),
    );
    assert_eq!(edited.len(), before.len());
    assert_ne!(edited, before);
    std::fs::write(sandbox.path(file), &edited).expect("edit");
    set_mtime(&sandbox, file, mtime);
    let status = sandbox.certform(&["status"]).expect(0);
    assert!(status.stdout.contains(&later), "{}", status.stdout);
    assert!(!status.stdout.contains(&not_after), "{}", status.stdout);
}

#[test]
fn a_broken_state_file_gets_the_same_error_with_or_without_the_cache() {
    let sandbox = cached();
    let file = "state/certificates/web.toml";
    let text = sandbox.read(file);
    let mtime = std::fs::metadata(sandbox.path(file))
        .and_then(|m| m.modified())
        .expect("mtime");
    // Not TOML any more, the same number of bytes.
    let broken = text.replacen("status = \"issued\"", "status = +issued+", 1);
    assert_eq!(broken.len(), text.len());
    std::fs::write(sandbox.path(file), &broken).expect("break");
    set_mtime(&sandbox, file, mtime);
    let with_cache = sandbox.certform(&["status"]);
    assert_ne!(with_cache.code, 0, "{}", with_cache.all());
    assert!(
        with_cache.stderr.contains("certificates/web.toml:6:"),
        "{}",
        with_cache.stderr
    );
    std::fs::remove_file(sandbox.path(CACHE)).expect("remove the cache");
    let without = sandbox.certform(&["status"]);
    assert_eq!(without.code, with_cache.code);
    assert_eq!(without.stderr, with_cache.stderr);
}

#[test]
fn a_corrupt_truncated_or_foreign_cache_only_costs_time() {
    let sandbox = cached();
    let expected = sandbox.certform(&["status"]).expect(0).stdout;
    let good = sandbox.read(CACHE);
    let foreign = good.replacen(
        &format!(
            "directory\t{}",
            sandbox.path("state/certificates").display()
        ),
        "directory\t/elsewhere/certificates",
        1,
    );
    assert_ne!(foreign, good);
    for broken in [
        "\u{0}garbage".to_string(),
        String::new(),
        good[..good.len() - 4].to_string(),
        good[..good.len() / 2].to_string(),
        foreign,
    ] {
        std::fs::write(sandbox.path(CACHE), &broken).expect("break the cache");
        let status = sandbox.certform(&["status"]).expect(0);
        assert_eq!(status.stdout, expected);
        assert_eq!(sandbox.read(CACHE), good, "rewritten");
    }
    // A cache copied from another repository (other inodes): nothing in it matches.
    let other = cached();
    std::fs::write(other.path(CACHE), &good).expect("copy the cache");
    other.certform(&["status"]).expect(0);
    assert_ne!(other.read(CACHE), good);
}

/// `status` and `plan` read the state while the certificates are still being validated: an
/// error found after `[state]` fails the run with nothing written to the state repository
/// (its cache included), and the valid configuration reads the same state and caches it.
#[test]
fn status_or_plan_of_an_invalid_configuration_writes_no_cache_and_the_valid_one_does() {
    for command in ["status", "plan"] {
        let sandbox = Sandbox::with_config(WEB);
        sandbox.apply().expect(0);
        std::thread::sleep(Duration::from_secs(6));
        let before = std::fs::read(sandbox.path(CACHE)).ok();
        // An error in a certificate, after `[state]`: the state was read early, and is dropped.
        sandbox.write_config(&format!(
            "{WEB}\n[certificate.broken]\ncommon_name = \"not a name!\"\nca = \"local\"\n"
        ));
        let invalid = sandbox.certform(&[command]).expect(1);
        assert!(
            invalid.stderr.contains("certificate.broken"),
            "{command}: {}",
            invalid.stderr
        );
        assert!(
            std::fs::read(sandbox.path(CACHE)).ok() == before,
            "{command}: the state cache was written for an invalid configuration"
        );
        sandbox.write_config(WEB);
        let valid = sandbox.certform(&[command]).expect(0);
        assert!(
            valid.stdout.contains("web") || valid.stdout.contains("No changes"),
            "{command}: {}",
            valid.stdout
        );
        assert!(
            sandbox.read(CACHE).contains("\nweb\t"),
            "{command}: {}",
            sandbox.read(CACHE)
        );
    }
}
