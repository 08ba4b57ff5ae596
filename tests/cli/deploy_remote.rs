//! The `ssh` deploy target and `verify` through the CLI, against a real `sshd` on loopback
//! (throwaway host and client keys) and a TLS endpoint (`openssl s_server`) that the remote
//! reload command restarts.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::push::{user_name, Sshd};
use crate::sandbox::Sandbox;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// A config with certificate `web` deployed over SSH to `remote` (plus `extra` fields on the
/// target and `more` config after it).
fn config(sshd: &Sshd, remote: &Path, extra: &str, more: &str) -> String {
    format!(
        r#"
[state]
repo = "state"
keys_dir = "keys"

[ca.local]
kind = "local"

[certificate.web]
common_name = "www.example.test"
sans = ["example.test"]
validity = {{ days = 90 }}
renew_before = "30d"
deploy = [{{ kind = "ssh", host = "127.0.0.1", port = {port}, user = "{user}", identity = "{key}", known_hosts = "{known_hosts}", dir = "{remote}"{extra} }}]
{more}"#,
        port = sshd.port,
        user = user_name(),
        key = sshd.key.display(),
        known_hosts = sshd.known_hosts.display(),
        remote = remote.display(),
    )
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The serial a TLS endpoint serves, normalised like state's (`openssl s_client`).
pub(crate) fn served_serial(port: u16) -> String {
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername www.example.test </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .expect("openssl (apt-get install -y openssl)");
    normalise_serial(
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .trim_start_matches("serial="),
    )
}

pub(crate) fn normalise_serial(text: &str) -> String {
    let hex: String = text.replace(':', "").to_ascii_lowercase();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Kills the TLS server the reload command started (its pid is in `pid_file`).
pub(crate) struct ServerGuard(pub(crate) PathBuf);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// A reload command that (re)starts `openssl s_server` on `port` with the deployed files.
fn restart_tls_server(remote: &Path, port: u16) -> String {
    let dir = remote.display();
    format!(
        "if [ -f {dir}/server.pid ]; then kill $(cat {dir}/server.pid) 2>/dev/null; fi; \
         nohup openssl s_server -quiet -accept 127.0.0.1:{port} -cert {dir}/cert.pem -key {dir}/privkey.pem -cert_chain {dir}/chain.pem -www </dev/null >/dev/null 2>&1 & \
         echo $! > {dir}/server.pid; echo reloaded >> {dir}/reloads.log"
    )
}

#[test]
fn deploys_over_ssh_detects_remote_drift_and_never_leaks_the_key() {
    let sandbox = Sandbox::new();
    let sshd = Sshd::start(&sandbox.path("sshd"));
    let remote = sandbox.path("remote/etc/ssl/web");
    let reload = format!(
        ", reload = \"echo reloaded >> {}/reloads.log\"",
        remote.display()
    );
    sandbox.write_config(&config(&sshd, &remote, &reload, ""));

    let run = sandbox.apply().expect(0);
    let id = format!(
        "ssh:{}@127.0.0.1:{}{}",
        user_name(),
        sshd.port,
        remote.display()
    );
    assert!(run.stdout.contains(&id), "{}", run.all());
    assert!(run.stdout.contains("reloaded"), "{}", run.all());
    for name in ["cert.pem", "chain.pem", "fullchain.pem"] {
        assert_eq!(mode(&remote.join(name)), 0o644, "{name}");
    }
    assert_eq!(mode(&remote.join("privkey.pem")), 0o600);
    let key = std::fs::read_to_string(remote.join("privkey.pem")).expect("key");
    assert!(key.contains("PRIVATE KEY"));
    let (ok, _) = sandbox.openssl(&[
        "verify",
        "-CAfile",
        sandbox.path("state/ca/local.pem").to_str().unwrap(),
        "-untrusted",
        remote.join("chain.pem").to_str().unwrap(),
        remote.join("cert.pem").to_str().unwrap(),
    ]);
    assert!(ok, "the deployed chain verifies");
    let body = key.lines().nth(1).expect("key body").to_string();
    assert!(!run.all().contains(&body), "key in output");
    let state = sandbox.read("state/certificates/web.toml");
    assert!(state.contains(&id), "{state}");
    assert!(!state.contains(&body));
    assert_eq!(
        std::fs::read_to_string(remote.join("reloads.log"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    let staged: Vec<String> = std::fs::read_dir(&remote)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(staged.is_empty(), "{staged:?}");

    // In sync: nothing planned, nothing written, no reload.
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    // A file changed and one deleted on the host: drift over SSH, and apply repairs them.
    std::fs::write(remote.join("cert.pem"), "tampered\n").unwrap();
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout.contains("drift: changed on disk: cert.pem"),
        "{}",
        plan.stdout
    );
    std::fs::remove_file(remote.join("chain.pem")).unwrap();
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout.contains("drift: missing on disk: chain.pem"),
        "{}",
        plan.stdout
    );
    let run = sandbox.apply().expect(0);
    assert!(
        run.stdout.contains("wrote cert.pem, chain.pem"),
        "{}",
        run.all()
    );
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    assert_eq!(
        std::fs::read_to_string(remote.join("reloads.log"))
            .unwrap()
            .lines()
            .count(),
        2
    );
}

#[test]
fn an_unknown_host_key_or_unreachable_host_fails_only_its_target() {
    let sandbox = Sandbox::new();
    let sshd = Sshd::start(&sandbox.path("sshd"));
    let remote = sandbox.path("remote/web");
    // A known_hosts that does not hold the server's key: strict checking refuses.
    std::fs::write(&sshd.known_hosts, "").unwrap();
    let other = "\n[certificate.other]\ncommon_name = \"other.example.test\"\ndeploy = [{ kind = \"files\", dir = \"out/other\" }]\n";
    sandbox.write_config(&config(&sshd, &remote, "", other));
    let run = sandbox.apply().expect(3);
    assert!(
        run.all().contains("Host key verification failed"),
        "{}",
        run.all()
    );
    assert!(!remote.join("privkey.pem").exists());
    assert!(
        sandbox.path("out/other/cert.pem").exists(),
        "the other certificate deployed"
    );
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(plan.stdout.contains("deploy web"), "{}", plan.stdout);

    // Nothing listens on the port: a per-target failure again, never a crash.
    let closed = config(&sshd, &remote, "", other).replace(
        &format!("port = {}", sshd.port),
        &format!("port = {}", free_port()),
    );
    sandbox.write_config(&closed);
    let run = sandbox.apply().expect(3);
    assert!(run.all().contains("ssh failed"), "{}", run.all());
    assert!(!run.all().contains("panicked"), "{}", run.all());
}

#[test]
fn verify_sees_the_new_serial_served_after_the_remote_reload() {
    let sandbox = Sandbox::new();
    let sshd = Sshd::start(&sandbox.path("sshd"));
    let remote = sandbox.path("remote/web");
    let port = free_port();
    let _server = ServerGuard(remote.join("server.pid"));
    let extra = format!(
        ", reload = \"{}\", verify = {{ connect = \"127.0.0.1:{port}\", sni = \"www.example.test\", timeout = \"20s\" }}",
        restart_tls_server(&remote, port)
    );
    sandbox.write_config(&config(&sshd, &remote, &extra, ""));
    let run = sandbox.apply().expect(0);
    assert!(run.stdout.contains("reloaded, verified"), "{}", run.all());
    let first = sandbox.state_field("web", "serial");
    assert_eq!(served_serial(port), normalise_serial(&first));
    let state = sandbox.read("state/certificates/web.toml");
    assert!(state.contains("verified = true"), "{state}");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    // A reissue (new name): the reload restarts the server, which then serves the new serial.
    let reissue = sandbox.read("certform.toml").replace(
        "sans = [\"example.test\"]",
        "sans = [\"example.test\", \"api.example.test\"]",
    );
    sandbox.write_config(&reissue);
    let run = sandbox.apply().expect(0);
    assert!(run.stdout.contains("verified"), "{}", run.all());
    let second = sandbox.state_field("web", "serial");
    assert_ne!(first, second);
    assert_eq!(served_serial(port), normalise_serial(&second));

    // Another server takes the port behind certform's back, serving another certificate:
    // refresh sees it.
    let pid = std::fs::read_to_string(remote.join("server.pid")).unwrap();
    let _ = Command::new("kill").arg(pid.trim()).status();
    let other = sandbox.path("other");
    std::fs::create_dir_all(&other).unwrap();
    let ca_cert = other.join("cert.pem");
    let ca_key = other.join("key.pem");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=www.example.test", "-days", "1", "-keyout"])
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca_cert)
        .output()
        .expect("openssl req");
    assert!(made.status.success(), "{made:?}");
    let mut stale = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&ca_cert)
        .arg("-key")
        .arg(&ca_key)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    std::fs::write(remote.join("server.pid"), stale.id().to_string()).unwrap();
    let plan = loop {
        let plan = sandbox.certform(&["plan"]).expect(0);
        if !plan.stdout.contains("cannot be checked") {
            break plan;
        }
    };
    assert!(
        plan.stdout.contains("still serves old serial"),
        "{}",
        plan.stdout
    );
    // Apply reloads (restarting the real server) and verifies again.
    let run = sandbox.apply().expect(0);
    assert!(run.stdout.contains("reloaded, verified"), "{}", run.all());
    assert_eq!(served_serial(port), normalise_serial(&second));
    let _ = stale.kill();
    let _ = stale.wait();
}

#[test]
fn a_server_that_keeps_the_old_certificate_fails_verify_and_is_retried() {
    let sandbox = Sandbox::new();
    let sshd = Sshd::start(&sandbox.path("sshd"));
    let remote = sandbox.path("remote/web");
    let port = free_port();
    let _server = ServerGuard(remote.join("server.pid"));
    // The reload does not restart anything: nothing serves the new certificate.
    let extra = format!(
        ", reload = \"true\", verify = {{ connect = \"127.0.0.1:{port}\", timeout = \"1s\" }}"
    );
    sandbox.write_config(&config(&sshd, &remote, &extra, ""));
    let run = sandbox.apply().expect(3);
    assert!(run.all().contains("verify for ssh:"), "{}", run.all());
    assert!(run.all().contains("cannot connect"), "{}", run.all());
    let state = sandbox.read("state/certificates/web.toml");
    assert!(state.contains("verified = false"), "{state}");
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout.contains("endpoint check failed last run"),
        "{}",
        plan.stdout
    );

    // The server now starts on reload: the retry verifies.
    let fixed = sandbox
        .read("certform.toml")
        .replace(
            "reload = \"true\"",
            &format!("reload = \"{}\"", restart_tls_server(&remote, port)),
        )
        .replace("timeout = \"1s\"", "timeout = \"20s\"");
    sandbox.write_config(&fixed);
    let run = sandbox.apply().expect(0);
    assert!(run.stdout.contains("verified"), "{}", run.all());
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn a_named_target_serves_several_certificates_each_in_its_own_directory() {
    let sandbox = Sandbox::new();
    let sshd = Sshd::start(&sandbox.path("sshd"));
    let remote = sandbox.path("remote");
    sandbox.write_config(&format!(
        r#"
[state]
repo = "state"
keys_dir = "keys"

[deploy.web1]
kind = "ssh"
host = "127.0.0.1"
port = {port}
user = "{user}"
identity = "{key}"
known_hosts = "{known_hosts}"
dir = "{remote}/{{certificate}}"

[certificate.shop]
common_name = "shop.example.test"
deploy = ["web1"]

[certificate.api]
common_name = "api.example.test"
deploy = ["web1", {{ kind = "files", dir = "out/api" }}]
"#,
        port = sshd.port,
        user = user_name(),
        key = sshd.key.display(),
        known_hosts = sshd.known_hosts.display(),
        remote = remote.display(),
    ));
    sandbox.apply().expect(0);
    for name in ["shop", "api"] {
        let (ok, subject) = sandbox.openssl(&[
            "x509",
            "-noout",
            "-subject",
            "-in",
            remote.join(name).join("cert.pem").to_str().unwrap(),
        ]);
        assert!(
            ok && subject.contains(&format!("{name}.example.test")),
            "{subject}"
        );
        assert_eq!(mode(&remote.join(name).join("privkey.pem")), 0o600);
    }
    assert!(sandbox.path("out/api/cert.pem").exists());
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    // An unknown name is a config error at its file and line, before anything runs.
    let text = sandbox
        .read("certform.toml")
        .replace("deploy = [\"web1\"]", "deploy = [\"web2\"]");
    sandbox.write_config(&text);
    let run = sandbox.certform(&["plan"]).expect(1);
    assert!(
        run.stderr.contains("certform.toml:17:11:")
            && run.stderr.contains("unknown deploy target `web2`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("named targets: `web1`"),
        "{}",
        run.stderr
    );
}

#[test]
fn http_01_files_go_to_the_web_root_of_an_ssh_target_and_are_removed() {
    use crate::acme::{acme_account, http_port, verify_with_pebble, StaticServer};
    let pebble = crate::pebble::Pebble::start();
    let sandbox = Sandbox::new();
    let sshd = Sshd::start(&sandbox.path("sshd"));
    // The host's web root, served on the port Pebble validates HTTP-01 on.
    let web_root = sandbox.path("remote/www");
    std::fs::create_dir_all(&web_root).expect("web root");
    let _server = StaticServer::start(&web_root, http_port(&pebble));
    let remote = sandbox.path("remote/tls");
    sandbox.write_config(&format!(
        r#"{account}
[deploy.web1]
kind = "ssh"
host = "127.0.0.1"
port = {port}
user = "{user}"
identity = "{key}"
known_hosts = "{known_hosts}"
dir = "{remote}/{{certificate}}"
web_root = "{web_root}"

[certificate.web]
common_name = "www.example.test"
dcv = {{ method = "http", via = "web1" }}
deploy = ["web1"]
"#,
        account = acme_account(&pebble),
        port = sshd.port,
        user = user_name(),
        key = sshd.key.display(),
        known_hosts = sshd.known_hosts.display(),
        remote = remote.display(),
        web_root = web_root.display(),
    ));
    let run = sandbox.apply().expect(0);
    assert!(run.stdout.contains("ssh:"), "{}", run.all());
    verify_with_pebble(&sandbox, &pebble, "remote/tls/web");
    let challenges = web_root.join(".well-known/acme-challenge");
    assert!(challenges.is_dir(), "the token file was placed over SSH");
    let left: Vec<_> = std::fs::read_dir(&challenges)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "token files left behind: {left:?}");

    // A web root nobody serves: validation fails, and the token file is removed all the same.
    let text = sandbox.read("certform.toml");
    let unserved = sandbox.path("remote/unserved");
    sandbox.write_config(&format!(
        "{text}\n[deploy.web9]\nkind = \"ssh\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\nidentity = \"{key}\"\nknown_hosts = \"{known_hosts}\"\ndir = \"{remote}/{{certificate}}\"\nweb_root = \"{unserved}\"\n\n[certificate.lost]\ncommon_name = \"lost.example.test\"\ndcv = {{ method = \"http\", via = \"web9\" }}\ndeploy = [\"web9\"]\n",
        port = sshd.port,
        user = user_name(),
        key = sshd.key.display(),
        known_hosts = sshd.known_hosts.display(),
        remote = remote.display(),
        unserved = unserved.display(),
    ));
    let run = sandbox.apply().expect(3);
    assert!(run.all().contains("lost"), "{}", run.all());
    let challenges = unserved.join(".well-known/acme-challenge");
    assert!(challenges.is_dir(), "the token file was placed");
    let left: Vec<_> = std::fs::read_dir(&challenges)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "token files left after a failure: {left:?}"
    );

    // `via` must name an ssh target with a web root: checked before anything runs.
    sandbox.write_config(&text.replace("via = \"web1\"", "via = \"web2\""));
    let run = sandbox.certform(&["plan"]).expect(1);
    assert!(
        run.stderr.contains("unknown deploy target `web2`"),
        "{}",
        run.stderr
    );
    sandbox.write_config(&text.replace(&format!("web_root = \"{}\"\n", web_root.display()), ""));
    let run = sandbox.certform(&["plan"]).expect(1);
    assert!(run.stderr.contains("has no `web_root`"), "{}", run.stderr);
}

#[test]
fn the_remote_deploy_example_validates() {
    let sandbox = Sandbox::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/remote.toml");
    std::fs::copy(&example, sandbox.dir.join("remote.toml")).expect("examples/deploy/remote.toml");
    sandbox.certform(&["validate"]).expect(0);
}
