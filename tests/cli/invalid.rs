//! Every invalid fixture: exit 1 naming file:line:col and the rule, before any network call,
//! with state, keys and deployed files untouched.

use std::path::{Path, PathBuf};

use crate::sandbox::{snapshot_tree, Sandbox, WEB};

struct Fixture {
    path: PathBuf,
    /// File the error must name (for multi-file fixtures), line:col, and message substring.
    file: Option<String>,
    position: String,
    message: String,
}

fn fixtures() -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut fixtures = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/invalid")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let (expect_file, multi) = if path.is_dir() {
            (path.join("expect"), true)
        } else {
            (path.clone(), false)
        };
        let text = std::fs::read_to_string(&expect_file).expect("fixture");
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("# expect:"))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", expect_file.display()))
            .trim()
            .to_string();
        let mut words = line.splitn(if multi { 3 } else { 2 }, ' ');
        let file = if multi {
            words.next().map(String::from)
        } else {
            None
        };
        let position = words.next().unwrap_or_default().to_string();
        let message = words.next().unwrap_or_default().to_string();
        fixtures.push(Fixture {
            path,
            file,
            position,
            message,
        });
    }
    fixtures
}

/// Replace the sandbox's configuration with the fixture's file(s).
fn install(sandbox: &Sandbox, fixture: &Fixture) -> String {
    for entry in std::fs::read_dir(&sandbox.dir).expect("work dir").flatten() {
        let path = entry.path();
        if path.is_file() {
            std::fs::remove_file(path).expect("remove old config");
        }
    }
    if fixture.path.is_dir() {
        for entry in std::fs::read_dir(&fixture.path)
            .expect("fixture dir")
            .flatten()
        {
            let name = entry.file_name();
            if name != "expect" {
                std::fs::copy(entry.path(), sandbox.dir.join(&name)).expect("copy fixture");
            }
        }
        fixture.file.clone().unwrap_or_default()
    } else {
        let name = fixture
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::fs::copy(&fixture.path, sandbox.dir.join(&name)).expect("copy fixture");
        name
    }
}

#[test]
fn every_invalid_fixture_fails_with_its_location_and_leaves_state_untouched() {
    let fixtures = fixtures();
    assert!(
        fixtures.len() >= 30,
        "only {} invalid fixtures",
        fixtures.len()
    );

    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let head = sandbox.git("state", &["rev-parse", "HEAD"]);
    let before = snapshot_tree(&sandbox.dir);

    for fixture in &fixtures {
        let file = install(&sandbox, fixture);
        for command in [
            &["validate"][..],
            &["plan"][..],
            &["apply", "--auto-approve"][..],
        ] {
            let run = sandbox.certform(command);
            let name = fixture.path.display();
            assert_eq!(
                run.code,
                1,
                "{name}: `{command:?}` exit code\n{}",
                run.all()
            );
            let located = format!("{file}:{}", fixture.position);
            assert!(
                run.stderr
                    .lines()
                    .any(|l| l.contains(&located) && l.contains(&fixture.message)),
                "{name}: `{command:?}` should report `{located}` with `{}`\n{}",
                fixture.message,
                run.stderr
            );
            assert!(
                !run.stderr.contains("panicked"),
                "{name}: panic\n{}",
                run.stderr
            );
        }
    }

    sandbox.write_config(WEB);
    let config_files = |files: Vec<(PathBuf, Vec<u8>)>| -> Vec<(PathBuf, Vec<u8>)> {
        files
            .into_iter()
            .filter(|(p, _)| p.parent() != Some(sandbox.dir.as_path()))
            .collect()
    };
    assert_eq!(
        config_files(snapshot_tree(&sandbox.dir)),
        config_files(before),
        "state, keys or deployed files changed"
    );
    assert_eq!(sandbox.git("state", &["rev-parse", "HEAD"]), head);
}
