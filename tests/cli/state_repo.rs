//! The git state repository: the user's own repo, sub-directories, push, lock, keys outside git.

use crate::sandbox::{Sandbox, WEB};

#[test]
fn commit_in_the_users_config_repo_holds_only_certforms_files() {
    // Keys and deployed files may not live in the state repository: here, outside the config repo.
    let config = WEB
        .replace("repo = \"state\"", "repo = \".\"\ndir = \"infra/certs\"")
        .replace("keys_dir = \"keys\"", "keys_dir = \"../keys\"")
        .replace("dir = \"out/web\"", "dir = \"../out/web\"");
    let sandbox = Sandbox::with_config(&config);
    std::fs::write(sandbox.path(".gitignore"), "keys/\nout/\n").expect("gitignore");
    std::fs::write(sandbox.path("README"), "mine\n").expect("readme");
    sandbox.git(".", &["init", "-q", "-b", "main"]);
    sandbox.git(".", &["add", "."]);
    sandbox.git(".", &["commit", "-qm", "user commit"]);
    std::fs::write(sandbox.path("README"), "mine, edited\n").expect("edit");
    std::fs::write(sandbox.path("notes.txt"), "staged\n").expect("notes");
    sandbox.git(".", &["add", "notes.txt"]);

    sandbox.apply().expect(0);
    let files = sandbox.git(".", &["show", "--name-only", "--format=", "HEAD"]);
    assert!(!files.is_empty());
    for file in files.lines() {
        assert!(
            file.starts_with("infra/certs/"),
            "commit holds `{file}`:\n{files}"
        );
    }
    let status = sandbox.git(".", &["status", "--porcelain"]);
    assert!(status.contains(" M README"), "{status}");
    assert!(status.contains("A  notes.txt"), "{status}");
    assert_eq!(sandbox.git(".", &["log", "--format=%s"]).lines().count(), 2);
}

#[test]
fn state_is_pushed_to_a_bare_remote() {
    let sandbox = Sandbox::new();
    let bare = sandbox.path("remote.git");
    std::fs::create_dir_all(&bare).expect("bare dir");
    sandbox.git("remote.git", &["init", "-q", "--bare", "-b", "main"]);
    let config = WEB.replace(
        "keys_dir = \"keys\"",
        &format!(
            "keys_dir = \"keys\"\npush = true\nremote = \"{}\"",
            bare.display()
        ),
    );
    sandbox.write_config(&config);
    let run = sandbox.apply().expect(0);
    assert!(run.stdout.contains("(pushed)"), "{}", run.stdout);
    let remote_log = sandbox.git("remote.git", &["log", "--format=%s", "main"]);
    assert!(remote_log.contains("certform apply"), "{remote_log}");
    assert_eq!(
        sandbox.git("remote.git", &["rev-parse", "main"]),
        sandbox.git("state", &["rev-parse", "HEAD"])
    );
}

#[test]
fn held_lock_blocks_apply_and_names_the_holder() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    // libgit2 in this process: its global search path is set once, before any use.
    crate::state_store::hermetic_home();
    let settings = certform::config::StateSettings {
        repo: sandbox.path("state"),
        dir: ".".into(),
        keys_dir: None,
        push: false,
        remote: "origin".into(),
        push_auth: Default::default(),
        keys: Default::default(),
        location: Default::default(),
    };
    let store = certform::state::GitStore::open(&settings).expect("open store");
    let guard = store.lock("certform apply (test)").expect("lock");
    let run = sandbox.apply().expect(1);
    assert!(run.stderr.contains("locked by"), "{}", run.stderr);
    assert!(
        run.stderr.contains("certform apply (test)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--lock-timeout"), "{}", run.stderr);
    drop(guard);
    sandbox.apply().expect(0);
}

#[test]
fn keys_dir_inside_a_work_tree_must_be_ignored() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.git(".", &["init", "-q", "-b", "main"]);
    let run = sandbox.certform(&["plan"]).expect(1);
    assert!(run.stderr.contains("keys"), "{}", run.stderr);
    assert!(run.stderr.contains(".gitignore"), "{}", run.stderr);
    std::fs::write(sandbox.path(".gitignore"), "keys/\nstate/\nout/\n").expect("gitignore");
    sandbox.certform(&["plan"]).expect(0);
    sandbox.apply().expect(0);
}

#[test]
fn default_keys_dir_lives_outside_the_repositories() {
    let sandbox = Sandbox::with_config(&WEB.replace("keys_dir = \"keys\"\n", ""));
    sandbox.apply().expect(0);
    let key_file = format!("web/{}.key", sandbox.state_field("web", "key_id"));
    let keys_root = sandbox.home.join(".local/share/certform/keys");
    let found = std::fs::read_dir(&keys_root)
        .expect("default keys dir under XDG_DATA_HOME")
        .flatten()
        .any(|dir| dir.path().join(&key_file).exists());
    assert!(found, "key `{key_file}` not under {}", keys_root.display());
    sandbox.apply().expect(0);
}
