//! The `files` target's `combined` PEM, the `pkcs12`, `jks` and `command` targets, receipts
//! and drift, and `cleanup` on removal, through the CLI, checked with `openssl` and `keytool`.

use std::os::unix::fs::PermissionsExt;

use crate::sandbox::{Run, Sandbox, WEB};

const PASSWORD: &str = "p12-Secret-Pass";

/// WEB with `target` (an inline table's fields) as its only deploy target.
fn config_with(target: &str) -> String {
    WEB.replace(
        "deploy = [{ kind = \"files\", dir = \"out/web\" }]",
        &format!("deploy = [{{ {target} }}]"),
    )
}

/// A sandbox whose config deploys to `target`, with the password file `store.pass`.
fn sandbox_with(target: &str) -> Sandbox {
    let sandbox = Sandbox::with_config(&config_with(target));
    std::fs::write(sandbox.path("store.pass"), format!("{PASSWORD}\n")).expect("password file");
    sandbox
}

/// `keytool` with arguments in the sandbox; panics with an install hint when missing.
fn keytool(sandbox: &Sandbox, args: &[&str]) -> (bool, String) {
    let output = sandbox
        .hermetic("keytool")
        .args(args)
        .output()
        .expect("keytool is installed (apt-get install -y default-jre-headless)");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn mode_of(sandbox: &Sandbox, relative: &str) -> u32 {
    std::fs::metadata(sandbox.path(relative))
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

/// The password appears in no output of `runs`, in no file of the state repository's
/// history, and in no deployed receipt.
#[track_caller]
fn password_never_shown(sandbox: &Sandbox, runs: &[&Run]) {
    for run in runs {
        assert!(
            !run.all().contains(PASSWORD),
            "password in output: {}",
            run.all()
        );
    }
    let history = sandbox.git("state", &["log", "-p", "--all"]);
    assert!(
        !history.contains(PASSWORD),
        "password in the state repository"
    );
}

/// Serial of the certificate issued for `web` (hex, as openssl prints it, uppercase).
fn issued_serial(sandbox: &Sandbox) -> String {
    sandbox.state_field("web", "serial").to_uppercase()
}

#[test]
fn combined_pem_is_key_then_fullchain_and_private() {
    let sandbox = sandbox_with(r#"kind = "files", dir = "out/web", combined = "haproxy.pem""#);
    sandbox.apply().expect(0);
    let combined = sandbox.read("out/web/haproxy.pem");
    let key = sandbox.read("out/web/privkey.pem");
    let fullchain = sandbox.read("out/web/fullchain.pem");
    assert_eq!(combined, format!("{key}{fullchain}"));
    assert!(combined.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(mode_of(&sandbox, "out/web/haproxy.pem"), 0o600);
    // The key in the combined file is the certificate's (HAProxy refuses otherwise).
    let (ok, key_pub) = sandbox.openssl(&["pkey", "-in", "out/web/haproxy.pem", "-pubout"]);
    assert!(ok, "{key_pub}");
    let (ok, cert_pub) =
        sandbox.openssl(&["x509", "-in", "out/web/haproxy.pem", "-noout", "-pubkey"]);
    assert!(ok, "{cert_pub}");
    assert_eq!(key_pub, cert_pub);
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    std::fs::remove_file(sandbox.path("out/web/haproxy.pem")).expect("delete");
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout.contains("missing on disk: haproxy.pem"),
        "{}",
        plan.stdout
    );
    sandbox.apply().expect(0);
    assert_eq!(sandbox.read("out/web/haproxy.pem"), combined);
}

#[test]
fn pkcs12_opens_with_openssl_and_keytool_and_hides_its_password() {
    let sandbox = sandbox_with(
        r#"kind = "pkcs12", path = "out/web.p12", password = { env = "P12_PASSWORD" }, alias = "web-tls""#,
    );
    let env = [("P12_PASSWORD", PASSWORD)];
    let plan = sandbox.certform_env(&["plan"], &env).expect(0);
    assert!(
        plan.stdout.contains("pkcs12:out/web.p12"),
        "{}",
        plan.stdout
    );
    let apply = sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert_eq!(mode_of(&sandbox, "out/web.p12"), 0o600);

    let (ok, info) = sandbox.openssl(&[
        "pkcs12",
        "-info",
        "-nokeys",
        "-in",
        "out/web.p12",
        "-passin",
        &format!("pass:{PASSWORD}"),
    ]);
    assert!(ok, "{info}");
    assert!(info.contains("PBES2, PBKDF2, AES-256-CBC"), "{info}");
    assert!(info.contains("MAC: sha256"), "{info}");
    assert!(info.contains("subject=CN = www.example.test"), "{info}");
    assert!(
        info.contains("issuer=CN = certform local intermediate"),
        "the chain is included: {info}"
    );
    // The key bag carries the alias (the key itself is printed encrypted, never in clear).
    let (ok, key_info) = sandbox.openssl(&[
        "pkcs12",
        "-info",
        "-nocerts",
        "-in",
        "out/web.p12",
        "-passin",
        &format!("pass:{PASSWORD}"),
        "-passout",
        "pass:reencrypted",
    ]);
    assert!(ok, "{key_info}");
    assert!(key_info.contains("friendlyName: web-tls"), "{key_info}");
    assert!(
        key_info.contains("Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC"),
        "{key_info}"
    );
    let (ok, wrong) = sandbox.openssl(&[
        "pkcs12",
        "-info",
        "-nokeys",
        "-in",
        "out/web.p12",
        "-passin",
        "pass:wrong",
    ]);
    assert!(!ok, "a wrong password must fail the MAC: {wrong}");

    let (ok, listed) = keytool(
        &sandbox,
        &[
            "-list",
            "-v",
            "-storetype",
            "PKCS12",
            "-keystore",
            "out/web.p12",
            "-storepass",
            PASSWORD,
        ],
    );
    assert!(ok, "{listed}");
    assert!(listed.contains("Alias name: web-tls"), "{listed}");
    assert!(listed.contains("Entry type: PrivateKeyEntry"), "{listed}");
    let serial = issued_serial(&sandbox);
    assert!(
        listed.to_uppercase().contains(&format!(
            "SERIAL NUMBER: {}",
            serial.trim_start_matches('0')
        )),
        "serial {serial} in {listed}"
    );

    // Nothing changed: no rewrite (a keystore is re-encoded with fresh salts, so equal bytes
    // prove it was left alone).
    let before = std::fs::read(sandbox.path("out/web.p12")).expect("read");
    let again = sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert_eq!(
        std::fs::read(sandbox.path("out/web.p12")).expect("read"),
        before
    );
    sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(0);
    password_never_shown(&sandbox, &[&plan, &apply, &again]);
}

#[test]
fn pkcs12_legacy_uses_3des_and_a_sha1_mac() {
    let sandbox = sandbox_with(
        r#"kind = "pkcs12", path = "out/legacy.pfx", password = { file = "store.pass" }, legacy = true"#,
    );
    sandbox.apply().expect(0);
    let (ok, info) = sandbox.openssl(&[
        "pkcs12",
        "-info",
        "-nokeys",
        "-in",
        "out/legacy.pfx",
        "-passin",
        "file:store.pass",
    ]);
    // OpenSSL 3 reads 3DES without `-legacy` (only RC2-40 needs the legacy provider).
    assert!(ok, "{info}");
    assert!(info.contains("pbeWithSHA1And3-KeyTripleDES-CBC"), "{info}");
    assert!(info.contains("MAC: sha1"), "{info}");
    let (ok, key_info) = sandbox.openssl(&[
        "pkcs12",
        "-info",
        "-nocerts",
        "-in",
        "out/legacy.pfx",
        "-passin",
        "file:store.pass",
        "-passout",
        "pass:reencrypted",
    ]);
    assert!(ok, "{key_info}");
    assert!(
        key_info.contains("Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC"),
        "{key_info}"
    );
    assert!(
        key_info.contains("friendlyName: legacy"),
        "default alias is the file stem: {key_info}"
    );
    let (ok, listed) = keytool(
        &sandbox,
        &[
            "-list",
            "-storetype",
            "PKCS12",
            "-keystore",
            "out/legacy.pfx",
            "-storepass",
            PASSWORD,
        ],
    );
    assert!(
        ok && listed.contains("legacy, ") && listed.contains("PrivateKeyEntry"),
        "{listed}"
    );
}

#[test]
fn jks_lists_with_keytool_and_its_key_password_opens_the_key() {
    let sandbox = sandbox_with(
        r#"kind = "jks", path = "out/tomcat.jks", store_password = { file = "store.pass" }, key_password = { file = "key.pass" }, alias = "tomcat""#,
    );
    std::fs::write(sandbox.path("key.pass"), "key-Pass-2\n").expect("key password");
    let apply = sandbox.apply().expect(0);
    assert_eq!(mode_of(&sandbox, "out/tomcat.jks"), 0o600);
    let (ok, listed) = keytool(
        &sandbox,
        &[
            "-list",
            "-v",
            "-keystore",
            "out/tomcat.jks",
            "-storetype",
            "JKS",
            "-storepass",
            PASSWORD,
        ],
    );
    assert!(ok, "{listed}");
    assert!(listed.contains("Alias name: tomcat"), "{listed}");
    assert!(listed.contains("Entry type: PrivateKeyEntry"), "{listed}");
    let expected = format!("Certificate chain length: {}", chain_length(&sandbox));
    assert!(listed.contains(&expected), "{expected} in {listed}");
    // A wrong store password fails the integrity check.
    let (ok, _) = keytool(
        &sandbox,
        &[
            "-list",
            "-keystore",
            "out/tomcat.jks",
            "-storetype",
            "JKS",
            "-storepass",
            "wrong-pass",
        ],
    );
    assert!(!ok, "integrity check");
    // The key opens with the key password (keytool recovers it to convert the store).
    let (ok, converted) = keytool(
        &sandbox,
        &[
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            "out/tomcat.jks",
            "-srcstoretype",
            "JKS",
            "-srcstorepass",
            PASSWORD,
            "-srcalias",
            "tomcat",
            "-srckeypass",
            "key-Pass-2",
            "-destkeystore",
            "converted.p12",
            "-deststoretype",
            "PKCS12",
            "-deststorepass",
            "dest-pass",
            "-destkeypass",
            "dest-pass",
        ],
    );
    assert!(ok, "{converted}");
    let (ok, key) = sandbox.openssl(&[
        "pkcs12",
        "-in",
        "converted.p12",
        "-nocerts",
        "-nodes",
        "-passin",
        "pass:dest-pass",
    ]);
    assert!(ok, "{key}");
    let deployed_key = std::fs::read_to_string(sandbox.path("keys").join(key_file(&sandbox)))
        .expect("key in keys_dir");
    let body = |pem: &str| -> String {
        pem.lines()
            .skip_while(|line| !line.starts_with("-----BEGIN PRIVATE KEY"))
            .take_while(|line| !line.starts_with("-----END"))
            .collect()
    };
    assert_eq!(
        body(&key),
        body(&deployed_key),
        "the JKS holds the certificate's key"
    );
    password_never_shown(&sandbox, &[&apply]);
}

/// Number of certificates in the chain state holds for `web`.
fn chain_length(sandbox: &Sandbox) -> usize {
    let dir = sandbox.path("state");
    let chain = walk(&dir)
        .into_iter()
        .find(|path| path.ends_with("web.pem") || path.ends_with("web/chain.pem"))
        .map(|path| std::fs::read_to_string(path).expect("chain"))
        .expect("a chain for web in state");
    chain.matches("-----BEGIN CERTIFICATE-----").count()
}

/// The key file of `web` in keys_dir, relative to it.
fn key_file(sandbox: &Sandbox) -> std::path::PathBuf {
    let keys = sandbox.path("keys");
    walk(&keys)
        .into_iter()
        .find(|path| path.to_string_lossy().contains("web"))
        .and_then(|path| {
            path.strip_prefix(&keys)
                .ok()
                .map(std::path::Path::to_path_buf)
        })
        .expect("a key for web")
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|name| name == ".git") {
            continue;
        }
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn keystore_drift_is_planned_and_repaired_for_each_kind() {
    for (target, file) in [
        (
            r#"kind = "pkcs12", path = "out/app.p12", password = { file = "store.pass" }"#,
            "out/app.p12",
        ),
        (
            r#"kind = "jks", path = "out/app.jks", store_password = { file = "store.pass" }"#,
            "out/app.jks",
        ),
    ] {
        let sandbox = sandbox_with(target);
        sandbox.apply().expect(0);
        sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
        let name = file.trim_start_matches("out/");

        std::fs::write(sandbox.path(file), b"edited by hand").expect("tamper");
        let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
        assert!(
            plan.stdout
                .contains(&format!("drift: changed on disk: {name}")),
            "{}",
            plan.stdout
        );
        sandbox.apply().expect(0);
        assert_ne!(
            std::fs::read(sandbox.path(file)).expect("read"),
            b"edited by hand"
        );
        sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

        std::fs::remove_file(sandbox.path(file)).expect("delete");
        let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
        assert!(
            plan.stdout
                .contains(&format!("drift: missing on disk: {name}")),
            "{}",
            plan.stdout
        );
        sandbox.apply().expect(0);
        assert!(sandbox.path(file).exists());
        sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    }
}

#[test]
fn command_hook_gets_the_certificate_and_a_failure_is_retried() {
    let sandbox = Sandbox::with_config(&config_with(
        r#"kind = "files", dir = "out/web" }, { kind = "command", command = "test ! -e broken && sh hook.sh", timeout = "30s""#,
    ));
    std::fs::write(
        sandbox.path("hook.sh"),
        "echo \"$CERTFORM_NAME $CERTFORM_SERIAL $CERTFORM_NOT_AFTER $CERTFORM_SANS\" >> hook.log\n\
         echo \"$CERTFORM_KEY_PATH\" >> hook.log\n\
         stat -c %a \"$CERTFORM_KEY_PATH\" >> hook.log\n\
         cmp -s \"$CERTFORM_FULLCHAIN_PATH\" out/web/fullchain.pem && echo same-fullchain >> hook.log\n",
    )
    .expect("hook");
    std::fs::write(sandbox.path("broken"), "").expect("marker");
    let run = sandbox.apply().expect(3);
    assert!(
        run.all().contains("command exited with status 1"),
        "{}",
        run.all()
    );
    assert!(
        sandbox.path("out/web/cert.pem").exists(),
        "the files target still deployed"
    );
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(
        plan.stdout.contains("command:test ! -e broken"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("failed last run"), "{}", plan.stdout);

    std::fs::remove_file(sandbox.path("broken")).expect("fix");
    sandbox.apply().expect(0);
    let log = sandbox.read("hook.log");
    let lines: Vec<&str> = log.lines().collect();
    let serial = sandbox.state_field("web", "serial");
    assert!(lines[0].starts_with(&format!("web {serial} 20")), "{log}");
    assert!(
        lines[0].ends_with(" example.test,www.example.test"),
        "{log}"
    );
    assert!(
        !std::path::Path::new(lines[1]).exists(),
        "temporary key removed: {log}"
    );
    assert_eq!(lines[2], "600");
    assert_eq!(lines[3], "same-fullchain");
    // Ran once for this certificate: the next run leaves it alone.
    sandbox.apply().expect(0);
    assert_eq!(sandbox.read("hook.log").lines().count(), 4);
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn a_hung_reload_and_a_hung_hook_are_killed_per_target() {
    let sandbox = sandbox_with(
        r#"kind = "pkcs12", path = "out/app.p12", password = { file = "store.pass" }, reload = "sleep 120 & sleep 120", reload_timeout = "1s" }, { kind = "command", command = "sleep 120", timeout = "1s""#,
    );
    let started = std::time::Instant::now();
    let run = sandbox.apply().expect(3);
    // Each sleeps 120 s; the bound leaves room for a loaded machine.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "timeouts not enforced"
    );
    assert!(
        run.all().contains("reload command timed out after 1s"),
        "{}",
        run.all()
    );
    assert!(
        run.all().contains("command timed out after 1s"),
        "{}",
        run.all()
    );
    assert!(sandbox.path("out/app.p12").exists());
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(
        plan.stdout
            .contains("`pkcs12:out/app.p12`: reload failed last run"),
        "{}",
        plan.stdout
    );
}

#[test]
fn a_missing_password_fails_its_target_only() {
    let sandbox = Sandbox::with_config(&config_with(
        r#"kind = "pkcs12", path = "out/app.p12", password = { env = "UNSET_P12_PASSWORD" } }, { kind = "files", dir = "out/web""#,
    ));
    let run = sandbox.apply().expect(3);
    assert!(run.all().contains("UNSET_P12_PASSWORD"), "{}", run.all());
    assert!(
        sandbox.path("out/web/cert.pem").exists(),
        "the other target deployed"
    );
    assert!(!sandbox.path("out/app.p12").exists());
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(
        plan.stdout.contains("pkcs12:out/app.p12"),
        "{}",
        plan.stdout
    );
    let run = sandbox
        .certform_env(
            &["apply", "--auto-approve"],
            &[("UNSET_P12_PASSWORD", PASSWORD)],
        )
        .expect(0);
    assert!(sandbox.path("out/app.p12").exists(), "{}", run.all());
}

#[test]
fn bad_keystore_settings_are_refused_before_any_call() {
    let sandbox = Sandbox::with_config(&config_with(
        r#"kind = "jks", path = "out/app.jks", alias = "Tomcat" }, { kind = "pkcs12", path = "out/app.jks", password = "inline""#,
    ));
    let run = sandbox.certform(&["plan"]).expect(1);
    let text = run.all();
    assert!(text.contains("missing `store_password`"), "{text}");
    assert!(text.contains("has uppercase letters"), "{text}");
    assert!(text.contains("already written by `deploy[0]`"), "{text}");
    assert!(text.contains("plaintext secret"), "{text}");
    assert!(!text.contains("inline"), "{text}");
    assert!(
        !sandbox.path("state").exists()
            || sandbox.git("state", &["log", "--oneline"]).lines().count() <= 1
    );
}

#[test]
fn removal_lists_the_files_left_and_cleanup_removes_them_key_first() {
    let api = "\n[certificate.api]\ncommon_name = \"api.example.test\"\ndeploy = [\
        { kind = \"files\", dir = \"out/api\", cleanup = true }, \
        { kind = \"pkcs12\", path = \"out/api.p12\", password = { file = \"store.pass\" }, cleanup = true }, \
        { kind = \"jks\", path = \"out/api.jks\", store_password = { file = \"store.pass\" } }]\n";
    let sandbox = Sandbox::with_config(&format!("{WEB}{api}"));
    std::fs::write(sandbox.path("store.pass"), PASSWORD).expect("password");
    sandbox.apply().expect(0);
    assert!(sandbox.path("out/api.p12").exists());

    // `api` removed from config (`on_remove` defaults to forget).
    sandbox.write_config(WEB);
    let plan = sandbox.certform(&["plan"]).expect(0);
    let out = &plan.stdout;
    assert!(out.contains("`jks:out/api.jks` leaves"), "{out}");
    assert!(
        out.contains("`pkcs12:out/api.p12` cleanup removes"),
        "{out}"
    );
    assert!(out.contains("`files:out/api` cleanup removes"), "{out}");
    // Named as config wrote them (relative), so the receipt holds in any checkout.
    assert!(
        out.contains("removes `out/api/privkey.pem`, `out/api/cert.pem`"),
        "{out}"
    );
    let key = out.find("out/api/privkey.pem").expect("key listed");
    let cert = out.find("out/api/cert.pem").expect("cert listed");
    assert!(key < cert, "key first: {out}");

    sandbox.apply().expect(0);
    for gone in [
        "out/api/privkey.pem",
        "out/api/cert.pem",
        "out/api/fullchain.pem",
        "out/api.p12",
    ] {
        assert!(!sandbox.path(gone).exists(), "{gone} removed");
    }
    assert!(
        sandbox.path("out/api.jks").exists(),
        "no cleanup: left in place"
    );
    assert!(
        sandbox.path("out/web/privkey.pem").exists(),
        "another certificate's files stay"
    );
    let log = sandbox.git("state", &["log", "-1", "--format=%B"]);
    assert!(
        log.contains("removed") && log.contains("out/api.p12"),
        "{log}"
    );
    assert!(!log.contains("out/api.jks"), "{log}");
}

#[test]
fn the_shipped_deploy_example_applies() {
    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/certform.toml");
    let text = std::fs::read_to_string(source).expect("examples/deploy/certform.toml");
    let sandbox = Sandbox::with_config(&text);
    let env = [("KEYSTORE_PASSWORD", PASSWORD)];
    let run = sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    for file in [
        "out/haproxy/site.pem",
        "out/app.p12",
        "out/app-legacy.pfx",
        "out/tomcat.jks",
    ] {
        assert_eq!(mode_of(&sandbox, file), 0o600, "{file}");
    }
    assert_eq!(sandbox.read("out/reloads.log"), "haproxy reloaded\n");
    assert!(sandbox.read("out/hooks.log").starts_with("app "));
    // The RSA key of `tomcat` goes into the JKS as well as ECDSA keys do.
    let (ok, listed) = keytool(
        &sandbox,
        &[
            "-list",
            "-v",
            "-keystore",
            "out/tomcat.jks",
            "-storepass",
            PASSWORD,
        ],
    );
    assert!(ok && listed.contains("Alias name: tomcat"), "{listed}");
    assert!(
        listed.contains("Signature algorithm name") && listed.contains("2048-bit RSA key"),
        "{listed}"
    );
    sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(0);
    password_never_shown(&sandbox, &[&run]);
}
