//! The git-backed state store against real repositories, checked with the `git` CLI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Once, OnceLock};

use certform::config::StateSettings;
use certform::spec::{Location, OnRemove};
use certform::state::{
    check_keys_dir_outside_git, CertificateState, CertificateStatus, DeployRecord, Error, GitStore,
    HistoryEntry, Intent, IntentKind, StateStore,
};
use tempfile::TempDir;
use time::macros::datetime;

const CHAIN: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

/// An empty directory used as `HOME` for `git` and as libgit2's config search path, so neither
/// reads the real user's or the system's configuration. The search path is global to the test
/// binary: every test that uses libgit2 in this process (not through the `certform` binary)
/// calls this first.
pub(crate) fn hermetic_home() -> &'static Path {
    static HOME: OnceLock<TempDir> = OnceLock::new();
    static LIBGIT2: Once = Once::new();
    let home = HOME.get_or_init(|| tempfile::tempdir().unwrap()).path();
    LIBGIT2.call_once(|| {
        for level in [
            git2::ConfigLevel::System,
            git2::ConfigLevel::XDG,
            git2::ConfigLevel::Global,
            git2::ConfigLevel::ProgramData,
        ] {
            // SAFETY: runs once, before any test of this binary uses libgit2 (every test
            // that uses it in this process calls `hermetic_home` first, here through `git` or
            // `settings`; `Once` makes the others wait until it is done).
            unsafe { git2::opts::set_search_path(level, home).unwrap() };
        }
    });
    home
}

/// Run `git` in `dir` hermetically; panics with its output on failure.
fn git(dir: &Path, args: &[&str]) -> String {
    let home = hermetic_home();
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "User")
        .env("GIT_AUTHOR_EMAIL", "user@example.com")
        .env("GIT_COMMITTER_NAME", "User")
        .env("GIT_COMMITTER_EMAIL", "user@example.com")
        .output()
        .unwrap_or_else(|error| {
            panic!("`git` is needed for these tests (apt install git): {error}")
        });
    assert!(
        output.status.success(),
        "git {args:?} failed in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn settings(repo: &Path, dir: &str) -> StateSettings {
    hermetic_home();
    StateSettings {
        repo: repo.to_path_buf(),
        dir: PathBuf::from(dir),
        keys_dir: None,
        push: false,
        remote: "origin".to_string(),
        push_auth: Default::default(),
        keys: Default::default(),
        location: Location::default(),
    }
}

/// A user's repository with one commit of their own.
fn user_repo() -> (TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("config");
    fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    fs::write(repo.join("certificates.toml"), "[certificate.www]\n").unwrap();
    git(&repo, &["add", "certificates.toml"]);
    git(&repo, &["commit", "-q", "-m", "user config"]);
    (temp, repo)
}

fn certificate(name: &str) -> CertificateState {
    CertificateState {
        format: 1,
        name: name.to_string(),
        id: format!("cf-{name}-0001"),
        ca: "local".to_string(),
        status: CertificateStatus::New,
        order_id: None,
        certificate_id: None,
        serial: None,
        not_before: None,
        not_after: None,
        sha256_fingerprint: None,
        spki_sha256: None,
        common_name: format!("{name}.example.com"),
        sans: vec![format!("{name}.example.com")],
        key_algorithm: "ecdsa-p256".to_string(),
        key_id: None,
        legacy_key_file: None,
        spec_digest: "sha256:aaaa".to_string(),
        spec_fields: Default::default(),
        on_remove: OnRemove::Forget,
        prevent_destroy: false,
        revoke_reason: None,
        intent: None,
        deployments: Default::default(),
        renewal_window: Some(certform::observed::RenewalWindow {
            serial: "0a1b".into(),
            start: datetime!(2027-01-10 00:00 UTC),
            end: datetime!(2027-01-12 00:00 UTC),
            next_check: datetime!(2026-11-24 06:00 UTC),
        }),
        retry_after: None,
        plan_until: None,
        backoff: None,
        history: Vec::new(),
    }
}

fn full_certificate(name: &str) -> CertificateState {
    let spec_fields: certform::small_map::SmallMap<String, String> = [
        ("ca", "local"),
        ("common_name", "www.example.com"),
        ("key", "ecdsa-p256"),
        ("sans", "api.example.com, www.example.com"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect();
    CertificateState {
        status: CertificateStatus::Issued,
        order_id: Some("order-42".to_string()),
        certificate_id: Some("cert-7".to_string()),
        serial: Some("0a1b2c".into()),
        not_before: Some(datetime!(2026-01-01 00:00:00 UTC)),
        not_after: Some(datetime!(2026-04-01 00:00:00 UTC)),
        sha256_fingerprint: Some("ab".repeat(32)),
        spki_sha256: Some("cd".repeat(32)),
        sans: vec!["api.example.com".to_string(), "www.example.com".to_string()],
        key_id: Some("create-2026010100".to_string()),
        legacy_key_file: None,
        spec_fields: spec_fields.clone(),
        on_remove: OnRemove::Revoke,
        prevent_destroy: true,
        revoke_reason: None,
        intent: Some(Box::new(Intent {
            kind: IntentKind::Renew,
            ca: "local-2".to_string(),
            started: datetime!(2026-03-01 10:00:00.5 UTC),
            tag: "cf-www-0001-r2".to_string(),
            key_algorithm: "ecdsa-p256".to_string(),
            common_name: "www.example.com".to_string(),
            sans: vec!["api.example.com".to_string(), "www.example.com".to_string()],
            spec_digest: "sha256:bbbb".to_string(),
            spec_fields,
            order_id: Some("order-43".to_string()),
        })),
        deployments: certform::small_map::SmallMap::from([
            (
                "files-nginx".to_string(),
                Box::new(DeployRecord {
                    sha256_fingerprint: "ab".repeat(32),
                    target_digest: "sha256:cccc".to_string(),
                    files: certform::small_map::SmallMap::from([
                        ("/etc/nginx/www.crt".to_string(), "11".repeat(32)),
                        ("/etc/nginx/www.key".to_string(), "22".repeat(32)),
                    ]),
                    deployed_at: datetime!(2026-01-01 00:05:00 UTC),
                    reload_error: None,
                    serial: None,
                    verified: None,
                    paths: Vec::new(),
                    cleanup: false,
                    verify_error: None,
                    ssh: None,
                }),
            ),
            (
                "pkcs12-app".to_string(),
                Box::new(DeployRecord {
                    sha256_fingerprint: "ab".repeat(32),
                    target_digest: "sha256:dddd".to_string(),
                    files: certform::small_map::SmallMap::from([(
                        "/srv/app.p12".to_string(),
                        "33".repeat(32),
                    )]),
                    deployed_at: datetime!(2026-01-01 00:06:00 UTC),
                    reload_error: Some("`systemctl reload app` exited with 1".to_string()),
                    serial: None,
                    verified: None,
                    paths: Vec::new(),
                    cleanup: false,
                    verify_error: None,
                    ssh: None,
                }),
            ),
        ]),
        retry_after: Some(datetime!(2026-03-01 11:00:00 +02:00)),
        plan_until: None,
        history: vec![
            HistoryEntry {
                at: datetime!(2026-01-01 00:00:00 UTC),
                action: "create".to_string(),
                serial: Some("0a1b2c".into()),
                note: "ordered at `local`".to_string(),
            },
            HistoryEntry {
                at: datetime!(2026-03-01 10:00:00 UTC),
                action: "renew".to_string(),
                serial: None,
                note: "renewal window reached \"30 days\"\nsecond line".to_string(),
            },
        ],
        ..certificate(name)
    }
}

/// Paths changed by the HEAD commit.
fn head_paths(repo: &Path) -> Vec<String> {
    let out = git(repo, &["show", "--name-status", "--format=", "HEAD"]);
    out.lines().map(str::to_string).collect()
}

fn porcelain(repo: &Path) -> String {
    git(repo, &["status", "--porcelain", "--untracked-files=all"])
}

#[test]
fn full_certificate_round_trips_through_the_work_tree() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("state");
    let store = GitStore::open(&settings(&repo, ".")).unwrap();
    assert_eq!(store.root(), repo);
    assert!(store.load().unwrap().certificates.is_empty());

    let www = full_certificate("www");
    let api = certificate("api");
    store.save_certificate(&www).unwrap();
    store.save_certificate(&api).unwrap();
    store.save_chain("www", CHAIN).unwrap();

    // Read back from the work tree, before any commit.
    let state = store.load().unwrap();
    assert_eq!(state.certificates.len(), 2);
    assert_eq!(state.certificates["www"], www);
    assert_eq!(state.certificates["api"], api);
    assert_eq!(store.read_chain("www").unwrap().as_deref(), Some(CHAIN));
    assert_eq!(store.read_chain("api").unwrap(), None);

    let path = repo.join("certificates/www.toml");
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("# managed by certform; edit with care\n"),
        "{text}"
    );
    assert!(text.contains("format = 1\nname = \"www\"\n"), "{text}");
    // Deterministic: saving again writes the same bytes.
    store.save_certificate(&www).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // A new repository starts on `main`.
    assert_eq!(
        git(&repo, &["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/main"
    );
}

#[test]
fn load_reads_state_files_linked_in_and_skips_directories_named_like_them() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("state");
    let store = GitStore::open(&settings(&repo, ".")).unwrap();
    store.save_certificate(&certificate("www")).unwrap();
    let certificates = repo.join("certificates");
    // The listing's file types decide without a `stat` per file; a symbolic link is followed
    // (as before), and a directory whose name ends in `.toml` is not a state file.
    let elsewhere = temp.path().join("api.toml");
    let mut api = fs::read_to_string(certificates.join("www.toml")).unwrap();
    api = api.replace("name = \"www\"", "name = \"api\"");
    fs::write(&elsewhere, &api).unwrap();
    std::os::unix::fs::symlink(&elsewhere, certificates.join("api.toml")).unwrap();
    fs::create_dir(certificates.join("dir.toml")).unwrap();
    let state = store.load().unwrap();
    assert_eq!(
        state.certificates.keys().collect::<Vec<_>>(),
        ["api", "www"],
        "{state:?}"
    );
    assert_eq!(state.certificates["api"].name, "api");
    // A dangling link is an error naming it, as a file that cannot be read.
    fs::remove_file(&elsewhere).unwrap();
    let error = store.load().unwrap_err().to_string();
    assert!(error.contains("api.toml"), "{error}");
}

#[test]
fn corrupt_state_file_names_file_line_and_column() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("state");
    let store = GitStore::open(&settings(&repo, ".")).unwrap();
    store.save_certificate(&certificate("www")).unwrap();
    let path = repo.join("certificates/www.toml");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace("status = \"new\"", "status = new")).unwrap();
    let line = text
        .lines()
        .position(|line| line == "status = \"new\"")
        .unwrap()
        + 1;

    let error = store.load().unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Corrupt { .. }), "{message}");
    assert!(
        message.contains(&format!("{}:{line}:", path.display())),
        "{message}"
    );

    // Wrong type of a field: the toml error is in the message.
    fs::write(&path, text.replace("format = 1", "format = \"one\"")).unwrap();
    let message = store.load().unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("invalid type"), "{message}");

    // A file written by a newer certform.
    fs::write(&path, text.replace("format = 1", "format = 99")).unwrap();
    let message = store.load().unwrap_err().to_string();
    assert!(message.contains("format 99"), "{message}");

    // A file whose recorded name differs from its file name.
    fs::write(&path, text.replace("name = \"www\"", "name = \"api\"")).unwrap();
    let message = store.load().unwrap_err().to_string();
    assert!(
        message.contains("`api`") && message.contains("`www`"),
        "{message}"
    );

    fs::write(&path, b"\xff\xfe").unwrap();
    let message = store.load().unwrap_err().to_string();
    assert!(message.contains(":1:1"), "{message}");
}

#[test]
fn refuses_names_and_paths_that_escape_and_private_keys() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("state");
    let store = GitStore::open(&settings(&repo, ".")).unwrap();
    assert!(store.save_certificate(&certificate("../evil")).is_err());
    assert!(store.save_chain("a/b", CHAIN).is_err());
    assert!(store.write_public_file("/etc/x.pem", CHAIN).is_err());
    assert!(store.write_public_file("ca/../../x.pem", CHAIN).is_err());
    assert!(store.write_public_file("notes.txt", "x").is_err());
    let key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
    assert!(matches!(
        store.save_chain("www", &format!("{CHAIN}{key}")),
        Err(Error::PrivateKeyMaterial { .. })
    ));
    assert!(store.write_public_file("ca/local.key", key).is_err());
    assert!(!repo.join("certificates").exists() && !repo.join("ca").exists());
    store.write_public_file("ca/local.pem", CHAIN).unwrap();
    assert_eq!(
        fs::read_to_string(repo.join("ca/local.pem")).unwrap(),
        CHAIN
    );
}

#[test]
fn commit_takes_only_certform_files_and_keeps_user_changes() {
    let (_temp, repo) = user_repo();
    // The user's own work in progress: an unstaged edit and a staged new file.
    fs::write(repo.join("certificates.toml"), "[certificate.api]\n").unwrap();
    fs::write(repo.join("new.toml"), "[certificate.new]\n").unwrap();
    git(&repo, &["add", "new.toml"]);
    let before = porcelain(&repo);
    assert_eq!(before, " M certificates.toml\nA  new.toml\n");

    let store = GitStore::open(&settings(&repo, ".")).unwrap();
    store.save_certificate(&full_certificate("www")).unwrap();
    store.save_chain("www", CHAIN).unwrap();
    store.write_public_file("ca/local.pem", CHAIN).unwrap();
    let id = store
        .commit("certform apply: create `www`")
        .unwrap()
        .expect("a commit");

    assert_eq!(git(&repo, &["rev-parse", "HEAD"]).trim(), id);
    assert_eq!(
        head_paths(&repo),
        [
            "A\tca/local.pem",
            "A\tcertificates/www.pem",
            "A\tcertificates/www.toml"
        ]
    );
    let stat = git(&repo, &["show", "--stat", "--format=%s", "HEAD"]);
    assert!(!stat.contains("new.toml") && !stat.contains("certificates.toml "));
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%s%n%an <%ae>"]),
        "certform apply: create `www`\ncertform <certform@localhost>\n"
    );
    // The user's changes are exactly as they were; certform's files are clean.
    assert_eq!(porcelain(&repo), before);
    assert_eq!(
        git(&repo, &["show", "HEAD:certificates.toml"]),
        "[certificate.www]\n"
    );

    // Nothing of certform's changed: no commit.
    assert_eq!(store.commit("certform apply: nothing").unwrap(), None);
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]).trim(), id);

    // A change and a removal.
    store.save_certificate(&certificate("api")).unwrap();
    store.remove_certificate("www").unwrap();
    assert!(!repo.join("certificates/www.toml").exists());
    assert!(!repo.join("certificates/www.pem").exists());
    store
        .commit("certform apply: forget `www`")
        .unwrap()
        .unwrap();
    assert_eq!(
        head_paths(&repo),
        [
            "A\tcertificates/api.toml",
            "D\tcertificates/www.pem",
            "D\tcertificates/www.toml"
        ]
    );
    assert_eq!(porcelain(&repo), before);
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]).trim(), "3");
}

#[test]
fn commit_uses_the_configured_identity() {
    let (_temp, repo) = user_repo();
    git(&repo, &["config", "user.name", "Ops Bot"]);
    git(&repo, &["config", "user.email", "ops@example.com"]);
    let store = GitStore::open(&settings(&repo, ".")).unwrap();
    store.save_certificate(&certificate("www")).unwrap();
    store.commit("certform apply").unwrap().unwrap();
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%an <%ae>|%cn <%ce>"]).trim(),
        "Ops Bot <ops@example.com>|Ops Bot <ops@example.com>"
    );
}

#[test]
fn state_in_a_sub_directory_of_a_repository_without_commits() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("config");
    fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "trunk"]);
    fs::write(repo.join("staged.toml"), "x = 1\n").unwrap();
    git(&repo, &["add", "staged.toml"]);
    fs::create_dir_all(repo.join("infra")).unwrap();
    fs::write(repo.join("infra/notes.md"), "mine\n").unwrap();

    let store = GitStore::open(&settings(&repo, "infra/certs")).unwrap();
    assert_eq!(store.root(), repo.join("infra/certs"));
    store.save_certificate(&full_certificate("www")).unwrap();
    store.save_chain("www", CHAIN).unwrap();
    store.write_public_file("ca/local.pem", CHAIN).unwrap();
    assert_eq!(store.load().unwrap().certificates.len(), 1);

    store.commit("certform apply").unwrap().unwrap();
    // The first commit of the repository holds certform's files only, on the user's branch.
    assert_eq!(
        git(&repo, &["ls-tree", "-r", "--name-only", "trunk"]),
        "infra/certs/ca/local.pem\ninfra/certs/certificates/www.pem\n\
         infra/certs/certificates/www.toml\n"
    );
    assert_eq!(porcelain(&repo), "A  staged.toml\n?? infra/notes.md\n");
    assert_eq!(store.commit("again").unwrap(), None);
}

#[test]
fn open_refuses_to_nest_a_new_repository_in_a_work_tree() {
    let (_temp, repo) = user_repo();
    let error = GitStore::open(&settings(&repo.join("state"), ".")).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::NestedRepository { .. }), "{message}");
    assert!(message.contains("`dir` to `state`"), "{message}");
    assert!(!repo.join("state").exists());

    fs::write(repo.join(".gitignore"), "/state/\n").unwrap();
    let store = GitStore::open(&settings(&repo.join("state"), ".")).unwrap();
    assert!(store.root().join(".git").is_dir());
    // Opening again reuses it.
    GitStore::open(&settings(&repo.join("state"), ".")).unwrap();
}

#[test]
fn lock_is_exclusive_names_its_holder_and_can_be_broken() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("state");
    let store = GitStore::open(&settings(&repo, ".")).unwrap();
    let other = GitStore::open(&settings(&repo, ".")).unwrap();

    let guard = store.lock("certform apply").unwrap();
    assert!(repo.join(".git/certform.lock").is_file());
    assert_eq!(guard.holder().pid, std::process::id());

    let error = other.lock("certform apply").unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Locked { .. }), "{message}");
    assert!(
        message.starts_with(&format!(
            "state repository `{}` is locked by `certform apply` (pid {} on ",
            repo.display(),
            std::process::id()
        )),
        "{message}"
    );
    assert!(message.contains(", since 20"), "{message}");

    // The lock file is never part of the repository's content.
    assert_eq!(porcelain(&repo), "");

    drop(guard);
    assert!(!repo.join(".git/certform.lock").exists());
    let guard = other.lock("certform apply --nightly").unwrap();

    // A holder that still runs on this host is never broken.
    let error = store.break_lock().unwrap_err();
    assert!(matches!(error, Error::LockHeld { .. }), "{error}");
    assert!(error.to_string().contains("--nightly"), "{error}");
    drop(guard);
    assert_eq!(store.break_lock().unwrap(), None);
    let _again = store.lock("certform apply").unwrap();
    assert!(repo.join(".git/certform.lock").is_file());
}

#[test]
fn push_to_a_bare_repository() {
    let temp = tempfile::tempdir().unwrap();
    let bare = temp.path().join("bare.git");
    fs::create_dir(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    let repo = temp.path().join("state");

    // A path used directly.
    let mut by_path = settings(&repo, ".");
    by_path.remote = bare.display().to_string();
    let store = GitStore::open(&by_path).unwrap();
    store.push().unwrap(); // nothing committed yet: nothing to push
    store.save_certificate(&certificate("www")).unwrap();
    let first = store
        .commit("certform apply: create `www`")
        .unwrap()
        .unwrap();
    store.push().unwrap();
    assert_eq!(
        git(&bare, &["log", "--format=%H %s", "main"]),
        format!("{first} certform apply: create `www`\n")
    );

    // A remote configured in the repository, by name.
    git(
        &repo,
        &["remote", "add", "origin", &bare.display().to_string()],
    );
    let store = GitStore::open(&settings(&repo, ".")).unwrap();
    store.save_chain("www", CHAIN).unwrap();
    let second = store
        .commit("certform apply: fetch `www`")
        .unwrap()
        .unwrap();
    store.push().unwrap();
    assert_eq!(
        git(&bare, &["log", "--oneline", "--format=%H", "main"]),
        format!("{second}\n{first}\n")
    );

    // A remote that moved on with other files: this store's commit is replayed on it.
    let clone = temp.path().join("clone");
    git(
        temp.path(),
        &["clone", "-q", &bare.display().to_string(), "clone"],
    );
    fs::write(clone.join("other"), "x").unwrap();
    git(&clone, &["add", "other"]);
    git(&clone, &["commit", "-q", "-m", "elsewhere"]);
    git(&clone, &["push", "-q", "origin", "main"]);
    store.save_certificate(&certificate("api")).unwrap();
    store
        .commit("certform apply: create `api`")
        .unwrap()
        .unwrap();
    store.push().unwrap();
    assert_eq!(
        git(&bare, &["log", "--format=%s", "main"]),
        "certform apply: create `api`\nelsewhere\ncertform apply: fetch `www`\n\
         certform apply: create `www`\n"
    );
    assert_eq!(fs::read_to_string(repo.join("other")).unwrap(), "x");

    // One that changed the same file is a conflict, not a silent overwrite.
    git(&clone, &["pull", "-q", "origin", "main"]);
    fs::write(clone.join("certificates/api.toml"), "# theirs\n").unwrap();
    git(&clone, &["commit", "-q", "-am", "theirs"]);
    git(&clone, &["push", "-q", "origin", "main"]);
    let mut changed = certificate("api");
    changed.serial = Some("0a0b".into());
    store.save_certificate(&changed).unwrap();
    let ours = store
        .commit("certform apply: renew `api`")
        .unwrap()
        .unwrap();
    let error = store.push().unwrap_err();
    assert!(matches!(error, Error::PushConflict { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "remote `origin` moved on and its new commits change `certificates/api.toml` this \
         run changed too: not pushed"
    );
    let kept = format!("certform/unpushed-{}", &ours[..12]);
    assert_eq!(git(&repo, &["rev-parse", &kept]).trim(), ours);
    assert_eq!(
        fs::read_to_string(repo.join("certificates/api.toml")).unwrap(),
        "# theirs\n"
    );
}

#[test]
fn push_errors_name_the_remote_without_credentials() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("state");

    let store = GitStore::open(&settings(&repo, ".")).unwrap();
    store.save_certificate(&certificate("www")).unwrap();
    store.commit("certform apply").unwrap().unwrap();
    let message = store.push().unwrap_err().to_string();
    assert!(
        message.contains("remote `origin` is not configured"),
        "{message}"
    );

    let mut with_token = settings(&repo, ".");
    with_token.remote = "https://deploy:s3cr3t-token@git.invalid/state.git".to_string();
    let store = GitStore::open(&with_token).unwrap();
    let error = store.push().unwrap_err();
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        chain.push_str(&format!("\ncaused by: {cause}"));
        source = cause.source();
    }
    assert!(!chain.contains("s3cr3t"), "{chain}");
    assert!(
        chain.contains("https://***@git.invalid/state.git"),
        "{chain}"
    );
}

#[test]
fn keys_dir_must_not_be_committable() {
    let (_temp, repo) = user_repo();
    let keys = repo.join("keys");

    // Inside the work tree, not ignored (whether it exists yet or not).
    let error = check_keys_dir_outside_git(&keys).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, Error::KeysDirInRepository { .. }),
        "{message}"
    );
    assert!(message.contains("`keys/`"), "{message}");
    let hint = error.hint().expect("a hint");
    assert!(hint.contains("out of every git work tree"), "{hint}");
    assert!(hint.contains("`keys/` to"), "{hint}");
    assert!(hint.contains(".gitignore"), "{hint}");
    fs::create_dir(&keys).unwrap();
    assert!(check_keys_dir_outside_git(&keys).is_err());
    assert!(check_keys_dir_outside_git(&repo.join("keys/nested/deeper")).is_err());

    // Ignored: fine, in its several spellings.
    for rule in ["keys/\n", "/keys\n", "keys/*\n", "*\n"] {
        fs::write(repo.join(".gitignore"), rule).unwrap();
        check_keys_dir_outside_git(&keys).unwrap_or_else(|error| panic!("{rule:?}: {error}"));
    }
    fs::write(repo.join(".gitignore"), "keys/\n").unwrap();
    check_keys_dir_outside_git(&repo.join("keys/nested")).unwrap();

    // Outside any repository: fine.
    let outside = tempfile::tempdir().unwrap();
    check_keys_dir_outside_git(outside.path()).unwrap();
    check_keys_dir_outside_git(&outside.path().join("not/yet/there")).unwrap();
}

#[test]
fn commit_takes_exactly_the_paths_the_store_wrote() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("state");
    let store = GitStore::open(&settings(&repo, ".")).unwrap();
    store.save_certificate(&certificate("www")).unwrap();
    store.commit("first").unwrap().unwrap();

    // Files certform did not write in this run: a user's note and hand edit, a stray key.
    fs::write(repo.join("certificates/notes.md"), "mine\n").unwrap();
    let edited = fs::read_to_string(repo.join("certificates/www.toml"))
        .unwrap()
        .replace("status = \"new\"", "status = \"issued\"");
    fs::write(repo.join("certificates/www.toml"), edited).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    fs::create_dir_all(repo.join("ca")).unwrap();
    fs::write(repo.join("ca/backup.key"), key.serialize_pem()).unwrap();
    assert_eq!(store.commit("nothing of ours").unwrap(), None);

    store.save_chain("www", CHAIN).unwrap();
    store.commit("chain").unwrap().unwrap();
    assert_eq!(head_paths(&repo), ["A\tcertificates/www.pem"]);
    assert_eq!(
        porcelain(&repo),
        " M certificates/www.toml\n?? ca/backup.key\n?? certificates/notes.md\n"
    );
}

#[test]
fn commit_refuses_a_private_key_and_leaves_everything_in_place() {
    let (_temp, repo) = user_repo();
    let store = GitStore::open(&settings(&repo, ".")).unwrap();
    store.save_certificate(&certificate("www")).unwrap();
    store.save_chain("www", CHAIN).unwrap();
    // Between the write and the commit the chain became a key: DER PKCS#8, no PEM label.
    let key = rcgen::KeyPair::generate().unwrap();
    fs::write(repo.join("certificates/www.pem"), key.serialize_der()).unwrap();
    let head = git(&repo, &["rev-parse", "HEAD"]);

    let error = store.commit("certform apply").unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, Error::PrivateKeyInCommit { .. }),
        "{message}"
    );
    assert_eq!(
        message,
        format!(
            "refusing to commit `{}`: it holds a PKCS#8 private key",
            repo.join("certificates/www.pem").display()
        )
    );
    assert!(error.hint().unwrap().starts_with("nothing was committed"));
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        porcelain(&repo),
        "?? certificates/www.pem\n?? certificates/www.toml\n"
    );
    assert!(repo.join("certificates/www.pem").exists());
    // No object of the repository holds the key either.
    let objects = git(
        &repo,
        &[
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname)",
        ],
    );
    for id in objects.lines() {
        let content = Command::new("git")
            .current_dir(&repo)
            .args(["cat-file", "-p", id])
            .output()
            .unwrap()
            .stdout;
        assert_eq!(
            certform::state::key_scan::find_private_key(&content),
            None,
            "{id}"
        );
    }

    // Refused again by a later run (the path stays pending), until the chain is fixed.
    let later = GitStore::open(&settings(&repo, ".")).unwrap();
    assert!(later.commit("again").is_err());
    fs::write(repo.join("certificates/www.pem"), CHAIN).unwrap();
    later.commit("fixed").unwrap().unwrap();
    assert_eq!(
        head_paths(&repo),
        ["A\tcertificates/www.pem", "A\tcertificates/www.toml"]
    );
    assert_eq!(porcelain(&repo), "");
}

#[test]
fn a_killed_runs_writes_are_committed_by_the_next_run() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("state");
    let killed = GitStore::open(&settings(&repo, ".")).unwrap();
    killed.save_certificate(&certificate("www")).unwrap();
    killed.write_public_file("ca/local.pem", CHAIN).unwrap();
    drop(killed);
    // A journal line cut short by the kill is ignored.
    let mut journal = fs::OpenOptions::new()
        .append(true)
        .open(repo.join(".git/certform-pending"))
        .unwrap();
    std::io::Write::write_all(&mut journal, b"certificates/ap").unwrap();

    let next = GitStore::open(&settings(&repo, ".")).unwrap();
    next.commit("certform apply: interrupted run")
        .unwrap()
        .unwrap();
    assert_eq!(
        git(&repo, &["ls-tree", "-r", "--name-only", "HEAD"]),
        "ca/local.pem\ncertificates/www.toml\n"
    );
    assert!(!repo.join(".git/certform-pending").exists());
    assert_eq!(next.commit("again").unwrap(), None);
}

#[test]
fn recover_removes_a_killed_commits_locks_and_repairs_the_index() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("state");
    let store = GitStore::open(&settings(&repo, ".")).unwrap();
    store.save_certificate(&certificate("www")).unwrap();
    store.commit("first").unwrap().unwrap();

    // A run killed after moving the branch, before the index: the index still holds the old
    // `www.toml` and lacks `www.pem` (a user's next `git commit` would revert the state), and
    // git's lock files are left.
    let mut issued = certificate("www");
    issued.status = CertificateStatus::Issued;
    store.save_certificate(&issued).unwrap();
    store.save_chain("www", CHAIN).unwrap();
    git(&repo, &["add", "certificates"]);
    git(&repo, &["commit", "-q", "-m", "the killed run's commit"]);
    git(&repo, &["read-tree", "HEAD~1"]);
    let before = porcelain(&repo);
    assert!(
        before.contains("D  certificates/www.pem") && before.contains("certificates/www.toml"),
        "{before}"
    );
    fs::write(repo.join(".git/index.lock"), "").unwrap();
    fs::write(repo.join(".git/refs/heads/main.lock"), "").unwrap();

    // Without certform's marker the locks may be a running git's: reported, kept.
    let error = store.recover().unwrap_err();
    assert!(matches!(error, Error::GitLocked { .. }), "{error}");
    assert!(error.to_string().contains("index.lock"), "{error}");
    assert!(repo.join(".git/index.lock").exists());

    // The pack writer killed mid-write leaves its temp files beside the real packs.
    let packs = repo.join(".git/objects/pack");
    fs::create_dir_all(&packs).unwrap();
    let real_packs = fs::read_dir(&packs).unwrap().count();
    fs::write(packs.join("pack_git2_0b670d493c5e"), "half a pack").unwrap();
    fs::write(packs.join("pack_git2_0b670d493c5eidx.lock"), "").unwrap();

    fs::write(
        repo.join(".git/certform-commit"),
        "pid = 1\nhost = \"elsewhere\"\n",
    )
    .unwrap();
    let notes = store.recover().unwrap();
    assert_eq!(notes.len(), 5, "{notes:?}");
    assert!(notes[0].contains("index.lock") && notes[1].contains("main.lock"));
    assert!(
        notes[2].contains("pack_git2_0b670d493c5e`") && notes[3].contains("idx.lock"),
        "{notes:?}"
    );
    assert!(
        notes[4].contains("`certificates/www.pem`, `certificates/www.toml`"),
        "{notes:?}"
    );
    assert_eq!(fs::read_dir(&packs).unwrap().count(), real_packs);
    assert!(!repo.join(".git/certform-commit").exists());
    assert_eq!(porcelain(&repo), "");
    assert!(store.recover().unwrap().is_empty());
    assert_eq!(store.commit("nothing left").unwrap(), None);
    assert!(!repo.join(".git/certform-pending").exists());
    git(&repo, &["fsck", "--strict"]);
}

/// Loose objects counted over every fan-out directory of `repo`'s object store.
fn loose_objects(repo: &Path) -> usize {
    let objects = repo.join(".git/objects");
    (0..=255u8)
        .map(|n| {
            fs::read_dir(objects.join(format!("{n:02x}")))
                .map(|entries| entries.count())
                .unwrap_or(0)
        })
        .sum()
}

#[test]
fn loose_objects_past_the_threshold_are_packed_and_none_below_it() {
    let (_temp, repo) = user_repo();
    let store = GitStore::open(&settings(&repo, "state")).unwrap();
    let below = loose_objects(&repo);
    assert!(
        !store.pack_loose_objects(below, usize::MAX),
        "nothing past the threshold"
    );
    assert_eq!(loose_objects(&repo), below);
    // Committed objects, few enough that the one-directory sample `git gc --auto` uses would
    // usually miss them.
    for n in 0..60 {
        fs::write(repo.join(format!("file{n}.txt")), format!("object {n}\n")).unwrap();
    }
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "sixty files"]);
    assert!(loose_objects(&repo) > 60);
    assert!(store.pack_loose_objects(32, usize::MAX));
    assert_eq!(
        loose_objects(&repo),
        0,
        "every loose object went into the pack"
    );
    let packs = fs::read_dir(repo.join(".git/objects/pack"))
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".pack"))
        .count();
    assert_eq!(packs, 1);
    // The repository is intact: git still reads every commit and object.
    git(&repo, &["fsck", "--no-progress"]);
    assert!(
        !store.pack_loose_objects(32, usize::MAX),
        "nothing left to pack"
    );
}

#[test]
fn packs_past_the_threshold_are_merged_into_one_and_every_commit_stays_readable() {
    let (_temp, repo) = user_repo();
    let store = GitStore::open(&settings(&repo, "state")).unwrap();
    // Certform's own commits, one pack each.
    for n in 0..6 {
        store
            .write_public_file(&format!("ca/note{n}.txt"), &format!("note {n}\n"))
            .unwrap();
        store.commit(&format!("note {n}")).unwrap().unwrap();
    }
    assert!(
        loose_objects(&repo) < 6,
        "certform's commits wrote no loose object"
    );
    let before = packs(&repo).len();
    assert!(before >= 6, "{before} packs");
    assert!(
        !store.pack_loose_objects(usize::MAX, before),
        "not past the threshold"
    );
    assert_eq!(packs(&repo).len(), before);
    assert!(store.pack_loose_objects(usize::MAX, before - 1));
    assert_eq!(packs(&repo).len(), 1, "{:?}", packs(&repo));
    assert_eq!(loose_objects(&repo), 0);
    git(&repo, &["fsck", "--strict", "--no-progress"]);
    let log = git(&repo, &["log", "--format=%s"]);
    assert!(log.contains("note 0") && log.contains("note 5"), "{log}");
    // No lock is left for the next run.
    assert!(store.recover().unwrap().is_empty());
}

/// The packs in `repo`'s object store.
fn packs(repo: &Path) -> Vec<String> {
    let mut packs: Vec<String> = fs::read_dir(repo.join(".git/objects/pack"))
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".pack"))
        .collect();
    packs.sort();
    packs
}

#[test]
fn a_commit_writes_its_objects_as_one_pack_and_no_loose_object() {
    let (_temp, repo) = user_repo();
    let store = GitStore::open(&settings(&repo, "state")).unwrap();
    let loose_before = loose_objects(&repo);
    assert!(packs(&repo).is_empty());
    for name in ["www", "api", "mail"] {
        store.save_certificate(&full_certificate(name)).unwrap();
        store.save_chain(name, CHAIN).unwrap();
    }
    let id = store.commit("certform apply").unwrap().expect("a commit");
    assert_eq!(
        loose_objects(&repo),
        loose_before,
        "no loose object written"
    );
    let written = packs(&repo);
    assert_eq!(written.len(), 1, "{written:?}");
    let idx = written[0].replace(".pack", ".idx");
    assert!(repo.join(".git/objects/pack").join(&idx).is_file());
    // The pack holds the commit, its new trees and blobs; git reads all of them.
    let verify = git(
        &repo,
        &["verify-pack", "-v", &format!(".git/objects/pack/{idx}")],
    );
    assert!(verify.contains(&id), "the commit is in the pack:\n{verify}");
    // The three state files and the one chain they share; the user's file is HEAD's.
    assert_eq!(verify.matches(" blob ").count(), 4, "{verify}");
    git(&repo, &["fsck", "--strict", "--no-progress"]);
    assert_eq!(
        git(&repo, &["show", "HEAD:state/certificates/www.pem"]),
        CHAIN
    );
    assert_eq!(porcelain(&repo), "");

    // Nothing changed: no commit, no pack.
    assert_eq!(store.commit("certform apply: nothing").unwrap(), None);
    assert_eq!(packs(&repo), written);

    // The next change: one more pack, still no loose object.
    store.save_certificate(&certificate("www")).unwrap();
    store
        .commit("certform apply: www")
        .unwrap()
        .expect("a commit");
    let now = packs(&repo);
    assert_eq!(now.len(), 2);
    // Only the new objects: one blob, the trees on its path, the commit; not the whole tree.
    let new = now.iter().find(|pack| !written.contains(pack)).unwrap();
    let verify = git(
        &repo,
        &[
            "verify-pack",
            "-v",
            &format!(".git/objects/pack/{}", new.replace(".pack", ".idx")),
        ],
    );
    assert_eq!(verify.matches(" blob ").count(), 1, "{verify}");
    assert_eq!(verify.matches(" tree ").count(), 3, "{verify}");
    assert_eq!(loose_objects(&repo), loose_before);
    git(&repo, &["fsck", "--strict", "--no-progress"]);
}

#[test]
fn recover_removes_the_temp_packs_of_a_repack_whose_process_is_gone() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("state");
    let store = GitStore::open(&settings(&repo, ".")).unwrap();
    store.save_certificate(&certificate("www")).unwrap();
    store.commit("first").unwrap().unwrap();
    let packs = repo.join(".git/objects/pack");
    fs::create_dir_all(&packs).unwrap();
    // A process that has exited, and one that is running (this test).
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    let running = std::process::id();
    let dead_files: Vec<String> = ["pack", "idx", "rev"]
        .iter()
        .map(|extension| format!(".tmp-{gone}-pack-ee7a282b.{extension}"))
        .collect();
    for name in &dead_files {
        fs::write(packs.join(name), "half").unwrap();
    }
    let live = format!(".tmp-{running}-pack-0b670d49.pack");
    fs::write(packs.join(&live), "being written").unwrap();
    fs::write(packs.join("tmp_pack_abcdef"), "git's other temp name").unwrap();

    let notes = store.recover().unwrap();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(notes
        .iter()
        .all(|note| note.contains("interrupted `git repack`")));
    for name in &dead_files {
        assert!(!packs.join(name).exists(), "{name}");
    }
    assert!(packs.join(&live).exists());
    assert!(packs.join("tmp_pack_abcdef").exists());
    assert!(store.recover().unwrap().is_empty());
}
