//! The state commit is safe to run unattended: only certform's own files are committed, never
//! a private key; a kill anywhere in the commit is healed by the next apply; two applies on a
//! brand-new state repository do not collide.

use std::path::Path;
use std::process::{Output, Stdio};

use certform::state::key_scan::find_private_key;

use crate::sandbox::{Run, Sandbox, WEB};

fn run(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `certform apply --auto-approve` under `strace`, killed at the `when`-th `link` call (libgit2
/// moves objects, the branch and the index into place with `link`).
fn apply_killed_at_link(sandbox: &Sandbox, when: usize) -> Run {
    let output = sandbox
        .hermetic("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=link"])
        .arg("-e")
        .arg(format!("inject=link:signal=KILL:when={when}"))
        .arg(env!("CARGO_BIN_EXE_certform"))
        .args(["apply", "--auto-approve", "-c"])
        .arg(&sandbox.dir)
        .output()
        .expect("strace is installed (apt-get install -y strace)");
    run(output)
}

/// Every git object in `repo` (reachable or not): `(id, type, content)`.
fn git_objects(sandbox: &Sandbox, repo: &str) -> Vec<(String, String, Vec<u8>)> {
    let output = sandbox
        .hermetic("git")
        .arg("-C")
        .arg(sandbox.path(repo))
        .args(["cat-file", "--batch-all-objects", "--unordered", "--batch"])
        .stdin(Stdio::null())
        .output()
        .expect("git is installed");
    assert!(output.status.success(), "{output:?}");
    let mut objects = Vec::new();
    let mut rest = output.stdout.as_slice();
    while !rest.is_empty() {
        let newline = rest.iter().position(|&byte| byte == b'\n').expect("header");
        let header = String::from_utf8_lossy(&rest[..newline]).into_owned();
        let fields: Vec<&str> = header.split(' ').collect();
        assert_eq!(fields.len(), 3, "unexpected header {header:?}");
        let size: usize = fields[2].parse().expect("size");
        let content = rest[newline + 1..newline + 1 + size].to_vec();
        objects.push((fields[0].to_string(), fields[1].to_string(), content));
        rest = &rest[newline + 1 + size + 1..];
    }
    objects
}

/// No blob of `repo`, reachable or dangling, holds private key material.
#[track_caller]
fn assert_no_private_key_in_git(sandbox: &Sandbox, repo: &str) {
    let objects = git_objects(sandbox, repo);
    let blobs = objects.iter().filter(|(_, kind, _)| kind == "blob").count();
    assert!(blobs > 0, "no blobs in `{repo}`: the scan proves nothing");
    for (id, kind, content) in &objects {
        if let Some(found) = find_private_key(content) {
            panic!("{kind} {id} in `{repo}` holds {found}");
        }
    }
}

/// The keys the sandbox's local CA and certificates hold are real and found by the scan (so
/// the absence of a finding in git means something).
#[track_caller]
fn assert_scan_finds_the_keys(sandbox: &Sandbox) {
    for key in [
        "keys/local-ca/local/root.key",
        "keys/local-ca/local/intermediate.key",
    ] {
        let bytes = std::fs::read(sandbox.path(key)).expect(key);
        assert!(find_private_key(&bytes).is_some(), "`{key}` not recognised");
    }
}

/// Apply until the run is not refused by the killed run's apply lock (taken over automatically,
/// or broken here as `crash.rs` does), then expect success.
#[track_caller]
fn converge(sandbox: &Sandbox) -> Run {
    let first = sandbox.apply();
    if first.code == 0 {
        return first;
    }
    assert!(first.stderr.contains("locked by"), "{}", first.all());
    sandbox.certform(&["unlock", "--force"]).expect(0);
    sandbox.apply().expect(0)
}

/// The state repository after convergence: certform's files committed and clean in the index
/// and the work tree, `git fsck` happy, no git lock or commit marker left, the next plan empty.
#[track_caller]
fn assert_healed(sandbox: &Sandbox) {
    let status = sandbox.git("state", &["status", "--porcelain", "--untracked-files=all"]);
    assert!(status.is_empty(), "state not clean:\n{status}");
    assert!(sandbox
        .git("state", &["diff", "--cached", "--name-only"])
        .is_empty());
    sandbox.git("state", &["fsck", "--no-progress", "--strict"]);
    let tree = sandbox.git("state", &["ls-tree", "-r", "--name-only", "HEAD"]);
    assert_eq!(
        tree,
        "ca/local.pem\ncertificates/web.pem\ncertificates/web.toml\n"
    );
    for leftover in [
        "index.lock",
        "HEAD.lock",
        "config.lock",
        "refs/heads/main.lock",
        "certform-commit",
        "certform-pending",
    ] {
        assert!(
            !sandbox.path(&format!("state/.git/{leftover}")).exists(),
            "`.git/{leftover}` left behind"
        );
    }
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    assert_no_private_key_in_git(sandbox, "state");
}

fn openssl_key(sandbox: &Sandbox, out: &Path, der: bool) {
    let mut args = vec![
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ];
    if der {
        args.extend(["-outform", "DER"]);
    }
    let out = out.to_str().expect("UTF-8 path");
    args.extend(["-out", out]);
    let (ok, text) = sandbox.openssl(&args);
    assert!(ok, "{text}");
}

const API: &str = "\n[certificate.api]\ncommon_name = \"api.example.test\"\n\
                   deploy = [{ kind = \"files\", dir = \"out/api\" }]\n";

#[test]
fn keys_left_in_the_state_folder_are_never_committed() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    // A user's stray backup key, a key under a public-looking name, a DER key, and a deploy
    // of the local CA's key: none of them was written by certform.
    openssl_key(
        &sandbox,
        &sandbox.path("state/certificates/backup.key"),
        false,
    );
    openssl_key(&sandbox, &sandbox.path("state/ca/intermediate.pem"), false);
    openssl_key(&sandbox, &sandbox.path("state/certificates/web.der"), true);
    std::fs::create_dir_all(sandbox.path("state/certificates/k")).expect("dir");
    std::fs::copy(
        sandbox.path("keys/local-ca/local/root.key"),
        sandbox.path("state/certificates/k/root.key"),
    )
    .expect("copy");

    // A run that commits (a new certificate), and one that has nothing to commit.
    sandbox.write_config(&format!("{WEB}{API}"));
    let run = sandbox.apply().expect(0);
    assert!(run.stdout.contains("state committed"), "{}", run.stdout);
    sandbox.apply().expect(0);

    let tree = sandbox.git("state", &["ls-tree", "-r", "--name-only", "HEAD"]);
    assert_eq!(
        tree,
        "ca/local.pem\ncertificates/api.pem\ncertificates/api.toml\n\
         certificates/web.pem\ncertificates/web.toml\n"
    );
    // The user's files stay where they were, untracked.
    let status = sandbox.git("state", &["status", "--porcelain", "--untracked-files=all"]);
    assert_eq!(
        status,
        "?? ca/intermediate.pem\n?? certificates/backup.key\n?? certificates/k/root.key\n\
         ?? certificates/web.der\n"
    );
    assert_scan_finds_the_keys(&sandbox);
    assert_no_private_key_in_git(&sandbox, "state");
}

#[test]
fn keys_dir_inside_the_state_folder_is_refused_even_when_ignored() {
    // The state repository exists, and ignores the keys folder.
    let sandbox = Sandbox::with_config(
        &WEB.replace("keys_dir = \"keys\"", "keys_dir = \"state/certificates/k\""),
    );
    std::fs::create_dir_all(sandbox.path("state")).expect("state");
    sandbox.git("state", &["init", "-q", "-b", "main"]);
    std::fs::write(sandbox.path("state/.gitignore"), "certificates/k/\n").expect("ignore");
    sandbox.git("state", &["add", ".gitignore"]);
    sandbox.git("state", &["commit", "-qm", "ignore keys"]);

    let run = sandbox.apply().expect(1);
    assert!(
        run.stderr.contains("state/certificates/k"),
        "{}",
        run.stderr
    );
    assert!(
        !sandbox.path("state/certificates/k").exists(),
        "keys written"
    );
    assert_eq!(
        sandbox.git("state", &["rev-list", "--count", "HEAD"]),
        "1\n"
    );
    assert_no_private_key_in_git(&sandbox, "state");

    // Not there yet (the check ran before the repository existed): refused all the same.
    let fresh = Sandbox::with_config(
        &WEB.replace("keys_dir = \"keys\"", "keys_dir = \"state/certificates/k\""),
    );
    let run = fresh.apply().expect(1);
    assert!(
        run.stderr.contains("state/certificates/k"),
        "{}",
        run.stderr
    );
    assert!(!fresh.path("state/certificates/k").exists(), "keys written");
}

#[test]
fn a_key_staged_by_the_user_in_the_config_repo_is_never_committed() {
    // One repository for config and state; keys and deploy output outside it (`validate`
    // refuses them inside the state repository, ignored or not).
    let config = WEB
        .replace("repo = \"state\"", "repo = \".\"\ndir = \"infra/certs\"")
        .replace("keys_dir = \"keys\"", "keys_dir = \"../keys\"")
        .replace("dir = \"out/", "dir = \"../out/");
    let api = API.replace("dir = \"out/", "dir = \"../out/");
    let sandbox = Sandbox::with_config(&config);
    std::fs::write(sandbox.path(".gitignore"), "stray/\n").expect("gitignore");
    sandbox.git(".", &["init", "-q", "-b", "main"]);
    sandbox.git(".", &["add", "."]);
    sandbox.git(".", &["commit", "-qm", "user commit"]);
    sandbox.apply().expect(0);
    // Even a user who copies a key into the repository and force-adds it to the index does not
    // get it committed by certform.
    std::fs::create_dir_all(sandbox.path("stray")).expect("mkdir");
    std::fs::copy(
        sandbox.path("../keys/local-ca/local/root.key"),
        sandbox.path("stray/root.key"),
    )
    .expect("copy");
    sandbox.git(".", &["add", "-f", "stray/root.key"]);
    sandbox.write_config(&format!("{config}{api}"));
    sandbox.apply().expect(0);
    let committed = sandbox.git(".", &["ls-tree", "-r", "--name-only", "HEAD"]);
    assert!(!committed.contains("stray/"), "{committed}");
    assert!(
        committed.contains("infra/certs/certificates/api.toml"),
        "{committed}"
    );
    // The user's staged key is still only staged (their business), never in a commit.
    let status = sandbox.git(".", &["status", "--porcelain"]);
    assert_eq!(status, " M certform.toml\nA  stray/root.key\n");
    let bytes = std::fs::read(sandbox.path("stray/root.key")).expect("key");
    assert!(
        find_private_key(&bytes).is_some(),
        "the copied key is not recognised"
    );
    // The user's `git add` stored the key as a blob; no commit reaches it.
    let reachable = sandbox.git(".", &["rev-list", "--objects", "--all"]);
    let reachable: Vec<&str> = reachable
        .lines()
        .filter_map(|line| line.split(' ').next())
        .collect();
    let mut staged_key_found = false;
    for (id, kind, content) in git_objects(&sandbox, ".") {
        if let Some(found) = find_private_key(&content) {
            assert!(
                !reachable.contains(&id.as_str()),
                "committed {kind} {id} holds {found}"
            );
            staged_key_found = true;
        }
    }
    assert!(staged_key_found, "the scan missed the staged key");
}

#[test]
fn a_key_in_a_file_certform_wrote_is_repaired_never_committed() {
    let sandbox = Sandbox::with_config(WEB);
    let killed = sandbox.certform_env(
        &["apply", "--auto-approve"],
        &[("CERTFORM_FAILPOINT", "before-commit")],
    );
    assert_eq!(killed.code, 99, "{}", killed.all());
    // Before the next run commits them, the chain certform wrote is replaced by a key. The
    // next run sees the chain file as drift and fetches it again from the CA, so the key is
    // neither committed nor kept (refusing a commit that holds a key is tested in
    // `tests/cli/state_store.rs`, where no repair stands before it).
    std::fs::copy(
        sandbox.path("keys/local-ca/local/intermediate.key"),
        sandbox.path("state/certificates/web.pem"),
    )
    .expect("copy");
    let repaired = sandbox.apply();
    assert_eq!(repaired.code, 0, "{}", repaired.all());
    assert!(
        repaired.stdout.contains("holds a private key"),
        "{}",
        repaired.stdout
    );
    let chain = sandbox.read("state/certificates/web.pem");
    assert!(!chain.contains("PRIVATE KEY"), "{chain}");
    assert!(chain.contains("BEGIN CERTIFICATE"), "{chain}");
    assert_no_private_key_in_git_or_empty(&sandbox);
    converge(&sandbox);
    assert_healed(&sandbox);
}

/// Like `assert_no_private_key_in_git`, for a repository that may hold no blob yet.
#[track_caller]
fn assert_no_private_key_in_git_or_empty(sandbox: &Sandbox) {
    for (id, kind, content) in git_objects(sandbox, "state") {
        assert!(
            find_private_key(&content).is_none(),
            "{kind} {id} holds a key"
        );
    }
}

#[test]
fn killed_commit_heals_at_every_commit_fail_point() {
    for point in certform::state::store::COMMIT_FAIL_POINTS {
        let sandbox = Sandbox::with_config(WEB);
        let killed = sandbox.certform_env(
            &["apply", "--auto-approve"],
            &[("CERTFORM_FAILPOINT", point)],
        );
        assert_eq!(killed.code, 99, "{point}: {}", killed.all());
        assert!(
            sandbox.path("state/.git/certform-commit").exists(),
            "{point}: no commit marker"
        );
        // A kill inside libgit2 at that point would also leave its lock files.
        std::fs::write(sandbox.path("state/.git/index.lock"), "").expect("lock");
        std::fs::write(sandbox.path("state/.git/refs/heads/main.lock"), "0000\n").expect("lock");
        let run = converge(&sandbox);
        assert!(
            run.stderr.contains("index.lock") && run.stderr.contains("killed while committing"),
            "{point}: recovery not reported:\n{}",
            run.all()
        );
        assert_healed(&sandbox);
    }
}

#[test]
fn killed_inside_libgit2_heals() {
    // Count the `link` calls of a full first apply (objects, branch, index).
    let probe = Sandbox::with_config(WEB);
    let output = probe
        .hermetic("strace")
        .args(["-f", "-qq", "-e", "trace=link", "-o"])
        .arg(probe.path("trace"))
        .arg(env!("CARGO_BIN_EXE_certform"))
        .args(["apply", "--auto-approve", "-c"])
        .arg(&probe.dir)
        .output()
        .expect("strace is installed (apt-get install -y strace)");
    assert!(output.status.success(), "{output:?}");
    let trace = probe.read("trace");
    let links = trace.lines().filter(|line| line.contains("link(")).count();
    assert!(
        trace.contains("refs/heads/main.lock") && trace.contains("index.lock"),
        "{trace}"
    );

    let mut recovered = Vec::new();
    for when in 1..=links {
        let sandbox = Sandbox::with_config(WEB);
        let killed = apply_killed_at_link(&sandbox, when);
        assert_eq!(killed.code, -1, "link {when} of {links}: {}", killed.all());
        let run = converge(&sandbox);
        if run.stderr.contains("killed while committing") {
            recovered.push(when);
        }
        assert_healed(&sandbox);
        assert_eq!(sandbox.orders_for("www.example.test"), 1, "link {when}");
    }
    // The kills while moving the branch and the index into place left git lock files that
    // the next run removed (and said so).
    assert!(
        recovered.contains(&(links - 1)) && recovered.contains(&links),
        "recovered after kills at links {recovered:?} of {links}"
    );
}

/// The commit's objects go into one pack (libgit2's indexer moves the index, then the pack,
/// into `objects/pack` with `link`): a kill at either leaves a repository the next run commits
/// to, and no loose object is written.
#[test]
fn killed_while_writing_the_pack_heals() {
    let probe = Sandbox::with_config(WEB);
    let output = probe
        .hermetic("strace")
        .args(["-f", "-qq", "-e", "trace=link", "-o"])
        .arg(probe.path("trace"))
        .arg(env!("CARGO_BIN_EXE_certform"))
        .args(["apply", "--auto-approve", "-c"])
        .arg(&probe.dir)
        .output()
        .expect("strace is installed (apt-get install -y strace)");
    assert!(output.status.success(), "{output:?}");
    let trace = probe.read("trace");
    let links: Vec<&str> = trace
        .lines()
        .filter(|line| line.contains("link("))
        .collect();
    let into_pack: Vec<usize> = links
        .iter()
        .enumerate()
        .filter(|(_, line)| line.contains("objects/pack/pack-"))
        .map(|(index, _)| index + 1)
        .collect();
    assert!(
        !into_pack.is_empty(),
        "no link into `objects/pack`:\n{trace}"
    );
    let loose = std::fs::read_dir(probe.path("state/.git/objects"))
        .expect("objects")
        .flatten()
        .filter(|entry| entry.file_name().len() == 2)
        .count();
    assert_eq!(loose, 0, "a loose object directory was created");
    for when in into_pack {
        let sandbox = Sandbox::with_config(WEB);
        let killed = apply_killed_at_link(&sandbox, when);
        assert_eq!(killed.code, -1, "link {when}: {}", killed.all());
        converge(&sandbox);
        assert_healed(&sandbox);
        assert_eq!(sandbox.orders_for("www.example.test"), 1, "link {when}");
    }
}

#[test]
fn a_git_lock_without_certforms_marker_is_reported_not_removed() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    for lock in ["index.lock", "refs/heads/main.lock"] {
        let path = sandbox.path(&format!("state/.git/{lock}"));
        std::fs::write(&path, "").expect("lock");
        let run = sandbox.apply().expect(1);
        assert!(
            run.stderr
                .contains(&format!("git lock file `{}` exists", path.display())),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("hint: wait for that git command"),
            "{}",
            run.stderr
        );
        assert!(path.exists(), "a user's lock was removed");
        std::fs::remove_file(&path).expect("remove");
    }
    sandbox.apply().expect(0);
    assert_healed(&sandbox);
}

#[test]
fn two_applies_on_a_new_state_repository_do_not_collide() {
    for round in 0..10 {
        let sandbox = Sandbox::with_config(WEB);
        let spawn = || {
            sandbox
                .hermetic(env!("CARGO_BIN_EXE_certform"))
                .args(["apply", "--auto-approve", "-c"])
                .arg(&sandbox.dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn certform")
        };
        let (first, second) = (spawn(), spawn());
        let runs = [first, second].map(|child| run(child.wait_with_output().expect("wait")));
        for run in &runs {
            assert!(
                !run.all().contains("config.lock"),
                "round {round}: {}",
                run.all()
            );
            assert!(
                run.code == 0 || (run.code == 1 && run.stderr.contains("locked by")),
                "round {round}: {}",
                run.all()
            );
        }
        assert!(runs.iter().any(|run| run.code == 0), "round {round}");
        if runs.iter().any(|run| run.code != 0) {
            sandbox.apply().expect(0);
        }
        assert!(!sandbox.path("state/.certform-init.lock").exists());
        assert_eq!(sandbox.orders_for("www.example.test"), 1, "round {round}");
        assert_healed(&sandbox);
    }
}
