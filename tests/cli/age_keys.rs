//! `[state] keys = "age"`: private keys kept in the state repository, encrypted with age, so an
//! ephemeral runner with a clone of the repository (and the identity) can deploy and renew.
//! Identities come from the real `age-keygen`; ciphertexts are checked with the real `age`.

use std::path::Path;
use std::process::Command;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::sandbox::{Sandbox, WEB};

const IDENTITY_VAR: &str = "CERTFORM_AGE_IDENTITY";

/// Make an identity file with `age-keygen`; returns (identity text, recipient).
fn keygen(sandbox: &Sandbox, name: &str) -> (String, String) {
    let path = sandbox.path(name);
    let output = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run `age-keygen` ({error}); install age (e.g. `apt-get install age`)")
        });
    assert!(output.status.success(), "age-keygen failed");
    let text = std::fs::read_to_string(&path).expect("identity file");
    let recipient = text
        .lines()
        .find_map(|line| line.strip_prefix("# public key: "))
        .expect("public key line")
        .to_string();
    (text, recipient)
}

/// The `AGE-SECRET-KEY-1...` line of an identity file.
fn secret_of(identity: &str) -> &str {
    identity
        .lines()
        .find(|line| line.starts_with("AGE-SECRET-KEY-"))
        .expect("secret line")
}

/// `WEB` with its keys in the repository, encrypted to `recipients`.
fn age_config(recipients: &[&str]) -> String {
    let list: Vec<String> = recipients.iter().map(|r| format!("\"{r}\"")).collect();
    WEB.replace(
        "keys_dir = \"keys\"\n",
        &format!(
            "keys_dir = \"keys\"\nkeys = \"age\"\nage_recipients = [{}]\nage_identity = {{ env = \"{IDENTITY_VAR}\" }}\n",
            list.join(", ")
        ),
    )
}

/// Whether `age -d -i identity file` decrypts (the plaintext is never shown).
fn age_decrypts(identity: &Path, file: &Path) -> bool {
    Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run `age` ({error}); install age (e.g. `apt-get install age`)")
        })
        .status
        .success()
}

/// Every blob of every commit of the state repository holds no plaintext key.
fn assert_no_plaintext_key_in_history(sandbox: &Sandbox) {
    let objects = sandbox.git("state", &["rev-list", "--all", "--objects"]);
    let mut blobs = 0;
    for line in objects.lines() {
        let id = line.split_whitespace().next().expect("object id");
        if sandbox.git("state", &["cat-file", "-t", id]).trim() != "blob" {
            continue;
        }
        blobs += 1;
        let content = sandbox.git("state", &["cat-file", "-p", id]);
        assert!(
            !content.contains("PRIVATE KEY") && !content.contains("AGE-SECRET-KEY"),
            "blob {line} holds a plaintext key"
        );
    }
    assert!(
        blobs > 3,
        "the history holds the state files ({blobs} blobs)"
    );
}

/// The `.age` files of certificate `name` in the work tree.
fn age_files(sandbox: &Sandbox, name: &str) -> Vec<std::path::PathBuf> {
    let dir = sandbox.path(&format!("state/keys/{name}"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|listing| {
            listing
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// A second workspace whose state repository is a clone of `origin`'s (a fresh CI runner: no
/// keys_dir, no deploy targets yet).
fn runner(origin: &Sandbox, config: &str) -> Sandbox {
    let runner = Sandbox::with_config(config);
    let status = runner
        .hermetic("git")
        .arg("clone")
        .arg("-q")
        .arg(origin.path("state"))
        .arg(runner.path("state"))
        .status()
        .expect("git clone");
    assert!(status.success());
    runner
}

fn later(days: i64) -> String {
    (OffsetDateTime::now_utc() + Duration::days(days))
        .format(&Rfc3339)
        .expect("format")
}

#[test]
fn keys_are_committed_only_encrypted_and_a_clone_with_the_identity_deploys_and_renews() {
    let origin = Sandbox::new();
    let (identity, recipient) = keygen(&origin, "id.txt");
    let config = age_config(&[&recipient]);
    origin.write_config(&config);
    let env = [(IDENTITY_VAR, identity.as_str())];
    let run = origin
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert!(!run.all().contains(secret_of(&identity)), "{}", run.all());
    origin.verify_deployed("out/web");
    let files = age_files(&origin, "web");
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].extension().is_some_and(|e| e == "age"));
    assert!(
        !origin.path("keys/web").exists(),
        "no plaintext key in keys_dir"
    );
    let tracked = origin.git("state", &["ls-files"]);
    assert!(tracked.contains("keys/web/"), "{tracked}");
    assert!(tracked.contains("keys/recipients.txt"), "{tracked}");
    assert!(origin.git("state", &["status", "--porcelain"]).is_empty());
    assert!(age_decrypts(&origin.path("id.txt"), &files[0]));
    assert_no_plaintext_key_in_history(&origin);

    // A fresh runner with the identity deploys the same key, ordering nothing.
    let clone = runner(&origin, &config);
    let plan = clone
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(2);
    assert!(plan.stdout.contains("deploy web"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("replace"), "{}", plan.stdout);
    clone
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert_eq!(
        clone.read("out/web/privkey.pem"),
        origin.read("out/web/privkey.pem")
    );
    assert_eq!(
        clone.state_field("web", "serial"),
        origin.state_field("web", "serial")
    );
    assert!(!clone.path("keys/web").exists());

    // Renewal on the runner: a new key, committed encrypted only.
    let renew_env = [
        (IDENTITY_VAR, identity.as_str()),
        ("CERTFORM_NOW", &later(70)),
    ];
    clone
        .certform_env(&["apply", "--auto-approve"], &renew_env)
        .expect(0);
    assert_ne!(
        clone.state_field("web", "serial"),
        origin.state_field("web", "serial")
    );
    assert_eq!(age_files(&clone, "web").len(), 2);
    assert_ne!(
        clone.read("out/web/privkey.pem"),
        origin.read("out/web/privkey.pem")
    );
    assert!(!clone.path("keys/web").exists());
    assert!(clone.git("state", &["status", "--porcelain"]).is_empty());
    assert_no_plaintext_key_in_history(&clone);
}

#[test]
fn a_clone_without_the_identity_says_why_and_never_makes_a_new_key() {
    let origin = Sandbox::new();
    let (identity, recipient) = keygen(&origin, "id.txt");
    let config = age_config(&[&recipient]);
    origin.write_config(&config);
    origin
        .certform_env(&["apply", "--auto-approve"], &[(IDENTITY_VAR, &identity)])
        .expect(0);

    let clone = runner(&origin, &config);
    let head = clone.git("state", &["rev-parse", "HEAD"]);
    let plan = clone.certform(&["plan"]);
    assert!(
        plan.stdout.contains(IDENTITY_VAR) && plan.stdout.contains("cannot decrypt"),
        "{}",
        plan.all()
    );
    assert!(plan.stdout.contains("age-keygen"), "hint: {}", plan.stdout);
    assert!(
        plan.stderr.contains("`state.age_identity`")
            && plan
                .stderr
                .contains(&format!("`{IDENTITY_VAR}` is not set")),
        "preflight warning: {}",
        plan.stderr
    );
    let run = clone.apply();
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(run.all().contains(IDENTITY_VAR), "{}", run.all());
    assert!(!run.all().contains(secret_of(&identity)), "{}", run.all());
    assert_eq!(age_files(&clone, "web").len(), 1, "no new key was made");
    assert!(!clone.path("keys/web").exists());
    assert!(!clone.path("out/web/privkey.pem").exists());
    assert_eq!(
        clone.state_field("web", "serial"),
        origin.state_field("web", "serial")
    );
    let log = clone.git(
        "state",
        &["log", "--format=%H", &format!("{}..", head.trim())],
    );
    assert!(
        clone
            .git(
                "state",
                &["diff", "--stat", head.trim(), "HEAD", "--", "keys"]
            )
            .is_empty(),
        "no key file changed: {log}"
    );

    // A new certificate can still be created: encrypting needs only the recipients.
    let with_new = format!(
        "{config}\n[certificate.api]\ncommon_name = \"api.example.test\"\ndeploy = [{{ kind = \"files\", dir = \"out/api\" }}]\n"
    );
    clone.write_config(&with_new);
    clone
        .certform(&["apply", "--auto-approve", "--target", "api"])
        .expect(0);
    let public = |args: &[&str]| {
        let (ok, text) = clone.openssl(args);
        assert!(ok, "{text}");
        text
    };
    let cert = clone.path("out/api/cert.pem");
    let key = clone.path("out/api/privkey.pem");
    assert_eq!(
        public(&[
            "x509",
            "-noout",
            "-pubkey",
            "-in",
            cert.to_str().unwrap_or_default()
        ]),
        public(&["pkey", "-pubout", "-in", key.to_str().unwrap_or_default()]),
        "the deployed key is the certificate's"
    );
    assert_eq!(age_files(&clone, "api").len(), 1);
    assert!(age_decrypts(
        &origin.path("id.txt"),
        &age_files(&clone, "api")[0]
    ));
}

#[test]
fn changed_recipients_are_planned_and_the_keys_re_encrypted() {
    let sandbox = Sandbox::new();
    let (old_identity, old_recipient) = keygen(&sandbox, "old.txt");
    let (new_identity, new_recipient) = keygen(&sandbox, "new.txt");
    let old_env = [(IDENTITY_VAR, old_identity.as_str())];
    let new_env = [(IDENTITY_VAR, new_identity.as_str())];
    sandbox.write_config(&age_config(&[&old_recipient]));
    sandbox
        .certform_env(&["apply", "--auto-approve"], &old_env)
        .expect(0);
    let before = age_files(&sandbox, "web");
    assert!(age_decrypts(&sandbox.path("old.txt"), &before[0]));

    // Step 1: add the new recipient; the runner still has the old identity.
    sandbox.write_config(&age_config(&[&old_recipient, &new_recipient]));
    let plan = sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &old_env)
        .expect(2);
    assert!(
        plan.stdout
            .contains("web: re-encrypt 1 key to new recipients"),
        "{}",
        plan.stdout
    );
    // Without an identity that reads the current files, the re-encryption cannot happen.
    let blocked = sandbox.certform(&["plan"]).expect(0);
    assert!(
        blocked.stdout.contains("re-encrypt 1 key") && blocked.stdout.contains(IDENTITY_VAR),
        "{}",
        blocked.stdout
    );
    let refused = sandbox.certform(&["apply", "--auto-approve"]);
    assert_ne!(refused.code, 0);
    assert!(refused.all().contains(IDENTITY_VAR), "{}", refused.all());
    assert!(age_decrypts(&sandbox.path("old.txt"), &before[0]));
    assert!(!age_decrypts(&sandbox.path("new.txt"), &before[0]));

    let run = sandbox
        .certform_env(&["apply", "--auto-approve"], &old_env)
        .expect(0);
    assert!(run.all().contains("keys: web: re-encrypt"), "{}", run.all());
    let message = sandbox.git("state", &["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with("certform apply: key store")
            && message.contains("- web: re-encrypt 1 key to new recipients"),
        "{message}"
    );
    assert!(age_decrypts(&sandbox.path("old.txt"), &before[0]));
    assert!(age_decrypts(&sandbox.path("new.txt"), &before[0]));
    sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &new_env)
        .expect(0);

    // Step 2: drop the old recipient; the runner has the new identity.
    sandbox.write_config(&age_config(&[&new_recipient]));
    sandbox
        .certform_env(&["apply", "--auto-approve"], &new_env)
        .expect(0);
    let after = age_files(&sandbox, "web");
    assert_eq!(after, before, "same file names, new contents");
    assert!(!age_decrypts(&sandbox.path("old.txt"), &after[0]));
    assert!(age_decrypts(&sandbox.path("new.txt"), &after[0]));
    let recorded = sandbox.read("state/keys/recipients.txt");
    assert!(recorded.contains(&new_recipient) && !recorded.contains(&old_recipient));
    let committed = sandbox.git("state", &["show", "HEAD:keys/recipients.txt"]);
    assert_eq!(committed, recorded);
    let committed_key = sandbox.git(
        "state",
        &[
            "show",
            &format!(
                "HEAD:keys/web/{}",
                after[0].file_name().expect("name").to_string_lossy()
            ),
        ],
    );
    assert_eq!(
        committed_key,
        std::fs::read_to_string(&after[0]).expect("read")
    );
    assert!(sandbox.git("state", &["status", "--porcelain"]).is_empty());
    // The new identity deploys; the old one no longer reads the key.
    std::fs::remove_dir_all(sandbox.path("out/web")).expect("remove deployed");
    let stale = sandbox.certform_env(&["plan"], &old_env);
    assert!(stale.stdout.contains("cannot decrypt"), "{}", stale.all());
    sandbox
        .certform_env(&["apply", "--auto-approve"], &new_env)
        .expect(0);
    sandbox.verify_deployed("out/web");
    sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &new_env)
        .expect(0);
    assert_no_plaintext_key_in_history(&sandbox);
}

#[test]
fn a_wrong_identity_or_a_garbled_file_is_a_clear_error() {
    let sandbox = Sandbox::new();
    let (identity, recipient) = keygen(&sandbox, "id.txt");
    let (stranger, _) = keygen(&sandbox, "stranger.txt");
    sandbox.write_config(&age_config(&[&recipient]));
    sandbox
        .certform_env(&["apply", "--auto-approve"], &[(IDENTITY_VAR, &identity)])
        .expect(0);
    std::fs::remove_dir_all(sandbox.path("out/web")).expect("remove deployed");

    let wrong = sandbox.certform_env(&["plan"], &[(IDENTITY_VAR, &stranger)]);
    assert!(
        wrong
            .stdout
            .contains("`age_identity` is not one of the recipients"),
        "{}",
        wrong.all()
    );
    let file = age_files(&sandbox, "web").remove(0);
    let text = std::fs::read_to_string(&file).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    let garbled = format!(
        "{}\n{}\n",
        lines[0],
        lines[1..].join("\n").replace('A', "B")
    );
    std::fs::write(&file, garbled).expect("garble");
    let plan = sandbox.certform_env(&["plan"], &[(IDENTITY_VAR, &identity)]);
    assert!(
        plan.stdout.contains("cannot decrypt") && plan.stdout.contains("web/"),
        "{}",
        plan.all()
    );
    let run = sandbox.certform_env(&["apply", "--auto-approve"], &[(IDENTITY_VAR, &identity)]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(run.all().contains("cannot decrypt"), "{}", run.all());
    assert_eq!(age_files(&sandbox, "web").len(), 1, "no new key");
    assert!(!sandbox.path("out/web/privkey.pem").exists());
}

#[test]
fn switching_files_to_age_and_back_moves_the_keys() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let key_dir = sandbox.path("keys/web");
    let original: Vec<_> = std::fs::read_dir(&key_dir)
        .expect("keys_dir")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    assert_eq!(original.len(), 1);
    let plaintext = std::fs::read(&original[0]).expect("key");

    let (identity, recipient) = keygen(&sandbox, "id.txt");
    let env = [(IDENTITY_VAR, identity.as_str())];
    sandbox.write_config(&age_config(&[&recipient]));
    let plan = sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(2);
    assert!(
        plan.stdout
            .contains("web: move 1 key from keys_dir into the state repository"),
        "{}",
        plan.stdout
    );
    sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert!(!original[0].exists(), "the plaintext copy is gone");
    assert_eq!(age_files(&sandbox, "web").len(), 1);
    assert!(sandbox
        .git("state", &["ls-tree", "-r", "--name-only", "HEAD"])
        .contains("keys/web/"));
    sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(0);
    assert_no_plaintext_key_in_history(&sandbox);

    // Back to files: the identity is still needed to read them out.
    let files_again = WEB.replace(
        "keys_dir = \"keys\"\n",
        &format!("keys_dir = \"keys\"\nage_identity = {{ env = \"{IDENTITY_VAR}\" }}\n"),
    );
    sandbox.write_config(&files_again);
    let plan = sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(2);
    assert!(
        plan.stdout
            .contains("web: move 1 key from the state repository into keys_dir"),
        "{}",
        plan.stdout
    );
    sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert_eq!(std::fs::read(&original[0]).expect("key back"), plaintext);
    let tree = sandbox.git("state", &["ls-tree", "-r", "--name-only", "HEAD"]);
    assert!(!tree.contains("keys/"), "{tree}");
    sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(0);
}

#[test]
fn recipients_are_checked_when_the_config_loads() {
    let sandbox = Sandbox::new();
    let (identity, recipient) = keygen(&sandbox, "id.txt");
    let secret = secret_of(&identity);
    sandbox.write_config(&age_config(&[&recipient, "age1nope", secret]));
    let run = sandbox.certform(&["validate"]);
    assert_ne!(run.code, 0);
    let all = run.all();
    assert!(all.contains("state.age_recipients[1]"), "{all}");
    assert!(
        all.contains("`age1nope` is not an age X25519 recipient"),
        "{all}"
    );
    assert!(all.contains("state.age_recipients[2]"), "{all}");
    assert!(!all.contains(secret), "the identity is never echoed: {all}");
    assert!(all.contains("certform.toml:"), "{all}");

    sandbox.write_config(&WEB.replace(
        "keys_dir = \"keys\"\n",
        &format!("keys_dir = \"keys\"\nage_recipients = [\"{recipient}\"]\n"),
    ));
    let run = sandbox.certform(&["validate"]);
    assert_ne!(run.code, 0);
    assert!(
        run.all().contains("only with `keys = \"age\"`"),
        "{}",
        run.all()
    );
    sandbox.write_config(&WEB.replace(
        "keys_dir = \"keys\"\n",
        "keys_dir = \"keys\"\nkeys = \"age\"\n",
    ));
    let run = sandbox.certform(&["validate"]);
    assert_ne!(run.code, 0);
    assert!(
        run.all().contains("needs `age_recipients`"),
        "{}",
        run.all()
    );
}

#[test]
fn the_acme_account_key_is_sealed_in_the_repository_and_used_by_a_clone() {
    let pebble = crate::pebble::Pebble::start();
    drop(pebble.take_http_listener());
    let origin = Sandbox::new();
    let (identity, recipient) = keygen(&origin, "id.txt");
    let env = [(IDENTITY_VAR, identity.as_str())];
    let certificate = |name: &str| {
        format!(
            "\n[certificate.{name}]\nca = \"pebble\"\ncommon_name = \"{name}.example.test\"\ndcv = {{ method = \"http\", listen = \"127.0.0.1:{}\" }}\ndeploy = [{{ kind = \"files\", dir = \"out/{name}\" }}]\n",
            pebble.http_port()
        )
    };
    let base = format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\nkeys = \"age\"\nage_recipients = [\"{recipient}\"]\nage_identity = {{ env = \"{IDENTITY_VAR}\" }}\n\n[ca.pebble]\nkind = \"acme\"\ndirectory = \"{}\"\ncontact = [\"ops@example.test\"]\nca_bundle = \"{}\"\n",
        pebble.directory_url(),
        pebble.ca_bundle().display()
    );
    let config = format!("{base}{}", certificate("web"));
    origin.write_config(&config);
    origin
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert!(
        !origin.path("keys/acme/pebble/account.json").exists(),
        "no plaintext account key in keys_dir"
    );
    let sealed = origin.path("state/keys/acme/pebble/account.age");
    assert!(age_decrypts(&origin.path("id.txt"), &sealed));
    let tracked = origin.git("state", &["ls-files"]);
    assert!(
        tracked.contains("keys/acme/pebble/account.age"),
        "{tracked}"
    );
    assert_no_plaintext_key_in_history(&origin);
    let history = origin.git("state", &["log", "-p", "--all"]);
    assert!(!history.contains("key_pkcs8"), "an account key in git");

    // A runner without the identity cannot use the account, and says why.
    let config_two = format!("{config}{}", certificate("api"));
    let blind = runner(&origin, &config_two);
    let refused = blind.certform(&["plan"]);
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(
        refused.all().contains("account.age") && refused.all().contains(IDENTITY_VAR),
        "{}",
        refused.all()
    );
    assert!(!blind.path("keys/acme/pebble/account.json").exists());

    // A runner with it orders with the same account: no new registration.
    let clone = runner(&origin, &config_two);
    let before = std::fs::read(clone.path("state/keys/acme/pebble/account.age")).expect("read");
    clone
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    let public = |args: &[&str]| {
        let (ok, text) = clone.openssl(args);
        assert!(ok, "{text}");
        text
    };
    let cert = clone.path("out/api/cert.pem");
    let key = clone.path("out/api/privkey.pem");
    assert_eq!(
        public(&[
            "x509",
            "-noout",
            "-pubkey",
            "-in",
            cert.to_str().unwrap_or_default()
        ]),
        public(&["pkey", "-pubout", "-in", key.to_str().unwrap_or_default()]),
        "the deployed key is the certificate's"
    );
    assert_eq!(
        std::fs::read(clone.path("state/keys/acme/pebble/account.age")).expect("read"),
        before,
        "the sealed account was reused"
    );
    assert!(!clone.path("keys/acme/pebble/account.json").exists());
    assert!(clone.git("state", &["status", "--porcelain"]).is_empty());
}

#[test]
fn state_mv_renames_the_encrypted_keys_in_one_commit() {
    let sandbox = Sandbox::new();
    let (identity, recipient) = keygen(&sandbox, "id.txt");
    let env = [(IDENTITY_VAR, identity.as_str())];
    let config = age_config(&[&recipient]);
    sandbox.write_config(&config);
    sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    let names: Vec<_> = age_files(&sandbox, "web")
        .iter()
        .map(|path| path.file_name().expect("name").to_owned())
        .collect();
    let moved = sandbox
        .certform_env(&["state", "mv", "web", "www"], &env)
        .expect(0);
    assert!(moved.stdout.contains("with 1 key file"), "{}", moved.stdout);
    assert!(age_files(&sandbox, "web").is_empty());
    let renamed: Vec<_> = age_files(&sandbox, "www")
        .iter()
        .map(|path| path.file_name().expect("name").to_owned())
        .collect();
    assert_eq!(renamed, names);
    let tree = sandbox.git("state", &["ls-tree", "-r", "--name-only", "HEAD"]);
    assert!(
        tree.contains("keys/www/") && !tree.contains("keys/web/"),
        "{tree}"
    );
    assert!(sandbox.git("state", &["status", "--porcelain"]).is_empty());
    sandbox.write_config(&config.replace("[certificate.web]", "[certificate.www]"));
    std::fs::remove_dir_all(sandbox.path("out/web")).expect("remove deployed");
    sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    sandbox.verify_deployed("out/web");
    sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(0);
}
