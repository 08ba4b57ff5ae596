//! Tests of the `ssh` deploy target that need no server: settings, the ssh command line, and
//! the remote scripts run by a local `sh` (the same POSIX tools the host runs them with).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use time::Duration;

use super::*;
use crate::config::{load, Source};
use crate::spec::{DeployTarget, VerifyEndpoint};

fn target(dir: &str) -> SshTarget {
    SshTarget {
        host: "web1.example.test".to_string(),
        port: 2222,
        user: Some("deploy".to_string()),
        identity: Some(PathBuf::from("/keys/id ed25519")),
        known_hosts: PathBuf::from("/keys/known_hosts"),
        accept_new_host_key: false,
        dir: dir.to_string(),
        cert: "cert.pem".to_string(),
        chain: "chain.pem".to_string(),
        fullchain: "full chain.pem".to_string(),
        key: "it's.key".to_string(),
        mode: 0o644,
        key_mode: 0o600,
        reload: None,
        reload_timeout: Duration::seconds(60),
        connect_timeout: Duration::seconds(7),
        verify: None,
        web_root: None,
        cleanup: false,
    }
}

fn bundle() -> Bundle {
    Bundle {
        cert_pem: "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----".to_string(),
        chain_pem: "-----BEGIN CERTIFICATE-----\nINTERMEDIATE\n-----END CERTIFICATE-----\n"
            .to_string(),
        key_pem: "-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n".to_string(),
        sha256_fingerprint: "fp".to_string(),
        name: "web".to_string(),
        serial: None,
        not_after: None,
        sans: Vec::new(),
    }
}

fn run_local(script: &str, stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn ssh_is_strict_batch_and_uses_the_configured_files() {
    let deployer = SshDeployer::new(target("/etc/ssl/web"));
    let args = deployer.ssh_args();
    let joined = args.join(" ");
    assert!(joined.contains("-o BatchMode=yes"), "{joined}");
    assert!(joined.contains("-o StrictHostKeyChecking=yes"), "{joined}");
    assert!(
        joined.contains("-o UserKnownHostsFile=\"/keys/known_hosts\""),
        "{joined}"
    );
    assert!(joined.contains("-o ConnectTimeout=7"), "{joined}");
    assert!(joined.contains("-p 2222"), "{joined}");
    assert!(
        joined.contains("-o IdentitiesOnly=yes -i /keys/id ed25519"),
        "{joined}"
    );
    assert!(joined.contains("-l deploy"), "{joined}");
    assert_eq!(&args[args.len() - 2..], ["--", "web1.example.test"]);

    let mut trusting = target("/etc/ssl/web");
    trusting.accept_new_host_key = true;
    trusting.identity = None;
    trusting.user = None;
    let joined = SshDeployer::new(trusting).ssh_args().join(" ");
    assert!(
        joined.contains("StrictHostKeyChecking=accept-new"),
        "{joined}"
    );
    assert!(
        !joined.contains("-i ") && !joined.contains("-l "),
        "{joined}"
    );
}

#[test]
fn id_and_digest() {
    let ssh = target("/etc/ssl/web");
    let target = DeployTarget::Ssh(ssh.clone());
    assert_eq!(target.id(), "ssh:deploy@web1.example.test:2222/etc/ssl/web");
    let mut moved_keys = ssh.clone();
    moved_keys.known_hosts = PathBuf::from("/elsewhere/known_hosts");
    moved_keys.identity = None;
    assert_eq!(DeployTarget::Ssh(moved_keys).digest(), target.digest());
    let mut other_mode = ssh;
    other_mode.mode = 0o640;
    assert_ne!(DeployTarget::Ssh(other_mode).digest(), target.digest());
    assert!(!target.is_legacy_id("files:/etc/ssl/web"));
}

#[test]
fn the_write_script_stages_renames_and_sets_modes_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("remote dir/site");
    let deployer = SshDeployer::new(target(remote.to_str().unwrap()));
    let bundle = bundle();
    let contents = deployer.contents(&bundle);
    let all: Vec<&FileContent<'_>> = contents.iter().collect();
    let script = deployer.write_script(&all, &contents);
    assert!(
        !script.contains("SECRET"),
        "the key never enters the script"
    );
    let input: Vec<u8> = contents
        .iter()
        .flat_map(|file| file.content.as_bytes().to_vec())
        .collect();
    let output = run_local(&script, &input);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        fs::read_to_string(remote.join("cert.pem")).unwrap(),
        "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n"
    );
    assert!(fs::read_to_string(remote.join("full chain.pem"))
        .unwrap()
        .ends_with("INTERMEDIATE\n-----END CERTIFICATE-----\n"));
    assert_eq!(
        fs::read_to_string(remote.join("it's.key")).unwrap(),
        bundle.key_pem
    );
    assert_eq!(mode(&remote.join("it's.key")), 0o600);
    assert_eq!(mode(&remote.join("cert.pem")), 0o644);
    assert_eq!(mode(&remote), 0o755);
    let leftovers: Vec<String> = fs::read_dir(&remote)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The hash script reports exactly what was written, and nothing for absent files.
    let hashes = run_local(&deployer.hash_script(), b"");
    let listed: BTreeMap<String, String> = String::from_utf8_lossy(&hashes.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(hash, name)| (name.to_string(), hash.to_string()))
        .collect();
    for file in &contents {
        assert_eq!(
            listed.get(file.name),
            Some(&sha256_hex(file.content.as_bytes())),
            "{}",
            file.name
        );
    }
    fs::remove_file(remote.join("chain.pem")).unwrap();
    fs::set_permissions(remote.join("it's.key"), fs::Permissions::from_mode(0o644)).unwrap();
    let hashes = run_local(&deployer.hash_script(), b"");
    assert!(!String::from_utf8_lossy(&hashes.stdout)
        .lines()
        .any(|line| line.split_once(' ').map(|(_, name)| name) == Some("chain.pem")));

    // Only the changed file is sent; every mode is fixed.
    let chain = &contents[1];
    let script = deployer.write_script(&[chain], &contents);
    let output = run_local(&script, chain.content.as_bytes());
    assert!(output.status.success(), "{output:?}");
    assert!(fs::read_to_string(remote.join("chain.pem"))
        .unwrap()
        .contains("INTERMEDIATE"));
    assert_eq!(mode(&remote.join("it's.key")), 0o600);
}

#[test]
fn the_hash_script_of_a_missing_directory_lists_nothing() {
    let deployer = SshDeployer::new(target("/nonexistent/certform/dir"));
    let output = run_local(&deployer.hash_script(), b"");
    assert!(output.status.success());
    assert!(output.stdout.is_empty());
}

#[test]
fn the_reload_command_quotes_every_argument() {
    let mut ssh = target("/etc/ssl/web");
    ssh.reload = Some("systemctl reload 'nginx'".to_string());
    let deployer = SshDeployer::new(ssh);
    let command = deployer.reload_command("systemctl reload 'nginx'");
    assert!(command.starts_with("ssh '-o' 'BatchMode=yes'"), "{command}");
    assert!(command.contains("'-i' '/keys/id ed25519'"), "{command}");
    // Unquoted once by the local shell and once by the remote one.
    let once = run_local(
        &format!(
            "printf '%s' {}",
            shell_quote(&format!("sh -c {}", shell_quote("echo 'it''s'")))
        ),
        b"",
    );
    assert_eq!(
        String::from_utf8_lossy(&once.stdout),
        "sh -c 'echo '\\''it'\\'''\\''s'\\'''"
    );
}

#[tokio::test]
async fn an_unreachable_host_is_a_remote_error_naming_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    fs::write(&known_hosts, "").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut ssh = target("/srv/tls");
    ssh.host = "127.0.0.1".to_string();
    ssh.port = port;
    ssh.identity = None;
    ssh.known_hosts = known_hosts;
    ssh.connect_timeout = Duration::seconds(2);
    let deployer = SshDeployer::new(ssh);
    let error = deployer
        .deploy(&bundle(), None, "d", OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, DeployError::Remote { .. }), "{text}");
    assert!(
        text.contains(&format!("ssh:deploy@127.0.0.1:{port}/srv/tls")),
        "{text}"
    );
    assert!(text.contains("ssh failed"), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
    let record = DeployRecord {
        sha256_fingerprint: "fp".to_string(),
        target_digest: "d".to_string(),
        files: Default::default(),
        deployed_at: OffsetDateTime::UNIX_EPOCH,
        reload_error: None,
        serial: None,
        verified: None,
        verify_error: None,
        paths: Vec::new(),
        cleanup: false,
        ssh: None,
    };
    let observed = deployer.observe(Some(&record));
    assert!(
        matches!(&observed, DeployObservation::Drift(why) if why.contains("cannot check the files")),
        "{observed:?}"
    );
}

fn config_with(deploy: &str) -> Result<crate::config::Config, Vec<crate::config::Diagnostic>> {
    load(&[Source {
        path: PathBuf::from("/etc/certform/certform.toml"),
        text: format!(
            "[state]\nrepo = \"state\"\n\n[certificate.web]\ncommon_name = \"www.example.test\"\ndeploy = [{deploy}]\n"
        ),
    }])
}

#[test]
fn settings_map_with_defaults() {
    let config = config_with(
        "{ kind = \"ssh\", host = \"web1.example.test\", known_hosts = \"ssh/known_hosts\", identity = \"ssh/id\", dir = \"/etc/ssl/web/\", reload = \"systemctl reload nginx\", verify = { connect = \"web1.example.test:443\" } }",
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    let DeployTarget::Ssh(ssh) = &config.certificates["web"].deploy[0] else {
        panic!("not ssh");
    };
    assert_eq!(ssh.port, 22);
    assert_eq!(ssh.user, None);
    assert_eq!(ssh.dir, "/etc/ssl/web");
    assert_eq!(
        ssh.known_hosts,
        PathBuf::from("/etc/certform/ssh/known_hosts")
    );
    assert_eq!(ssh.identity, Some(PathBuf::from("/etc/certform/ssh/id")));
    assert!(!ssh.accept_new_host_key);
    assert_eq!(ssh.key, "privkey.pem");
    assert_eq!((ssh.mode, ssh.key_mode), (0o644, 0o600));
    assert_eq!(ssh.reload_timeout, Duration::seconds(60));
    assert_eq!(ssh.connect_timeout, Duration::seconds(10));
    assert_eq!(
        ssh.verify,
        Some(VerifyEndpoint {
            connect: "web1.example.test:443".to_string(),
            sni: "web1.example.test".to_string(),
            timeout: Duration::seconds(10),
        })
    );
}

#[test]
fn bad_settings_are_reported_with_their_key() {
    for (deploy, key, phrase) in [
        (
            "host = \"-oProxyCommand=x\", dir = \"/srv\"",
            "host",
            "must not start with `-`",
        ),
        ("host = \"web\", dir = \"srv/tls\"", "dir", "absolute path"),
        ("host = \"web\", dir = \"/srv/../etc\"", "dir", "`..`"),
        ("host = \"web\", dir = \"/\"", "dir", "must not be `/`"),
        (
            "host = \"web\", user = \"a b\", dir = \"/srv\"",
            "user",
            "spaces",
        ),
        (
            "host = \"web\", dir = \"/srv\", key = \"../k\"",
            "key",
            "plain file name",
        ),
        (
            "host = \"web\", dir = \"/srv\", port = 0",
            "port",
            "1 to 65535",
        ),
        (
            "host = \"web\", dir = \"/srv\", reload_timeout = \"0s\"",
            "reload_timeout",
            "must be positive",
        ),
        (
            "host = \"web\", dir = \"/srv\", verify = { connect = \"web\" }",
            "verify.connect",
            "host:port",
        ),
        (
            "host = \"web\", dir = \"/srv\", verify = { connect = \"web:443\", sni = \"\" }",
            "verify.sni",
            "must not be empty",
        ),
    ] {
        let diagnostics = config_with(&format!(
            "{{ kind = \"ssh\", known_hosts = \"k\", {deploy} }}"
        ))
        .expect_err(deploy);
        let wanted = format!("certificate.web.deploy[0].{key}");
        assert!(
            diagnostics
                .iter()
                .any(|d| d.key == wanted && d.message.contains(phrase)),
            "{deploy}: {diagnostics:?}"
        );
    }
    let diagnostics = config_with("{ kind = \"ssh\", host = \"web\", dir = \"/srv\" }")
        .expect_err("no known_hosts");
    assert!(
        diagnostics
            .iter()
            .any(|d| d.message.contains("known_hosts")),
        "{diagnostics:?}"
    );
}

#[test]
fn split_host_port_forms() {
    use super::settings::split_host_port;
    assert_eq!(split_host_port("web:443"), Ok(("web", 443)));
    assert_eq!(split_host_port("[::1]:8443"), Ok(("::1", 8443)));
    assert!(split_host_port(":443").is_err());
    assert!(split_host_port("web:x").is_err());
    assert!(split_host_port("web:0").is_err());
}

/// `sh -c script` as sshd runs a session's command: leading its own process group.
fn run_as_session(script: &str) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .output()
        .unwrap()
}

#[test]
fn the_remote_watchdog_kills_a_reload_past_its_time_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("finished");
    let seconds = 300 + std::process::id() % 500;
    let reload = format!("sleep {seconds}; touch '{}'", marker.display());
    let started = std::time::Instant::now();
    let output = run_as_session(&reload_script(&reload, 1));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(REMOTE_TIMEOUT),
        "{output:?}"
    );
    let left = Command::new("pgrep")
        .args(["-f", &format!("sleep {seconds}")])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "{left:?}");
    assert!(!marker.exists());
}

#[test]
fn the_remote_watchdog_passes_a_quick_reload_through_and_leaves_nothing_behind() {
    let seconds = 600 + std::process::id() % 500;
    let started = std::time::Instant::now();
    let output = run_as_session(&reload_script(
        "echo 'it''s done'; exit 4",
        u64::from(seconds),
    ));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the session ends with the reload: {:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "its done\n");
    assert!(output.stderr.is_empty(), "{output:?}");
    let left = Command::new("pgrep")
        .args(["-fx", &format!("sleep {seconds}")])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "the watchdog's sleep is gone: {left:?}"
    );
}

#[test]
fn the_remove_script_deletes_in_order_and_names_what_it_removed() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("it's.key");
    let cert = dir.path().join("cert.pem");
    fs::write(&key, "k").unwrap();
    fs::write(&cert, "c").unwrap();
    let paths: Vec<String> = [&key, &dir.path().join("gone.pem"), &cert]
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    let output = run_local(&remove_script(&paths), b"");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n{}\n", key.display(), cert.display())
    );
    assert!(!key.exists() && !cert.exists());
}

#[test]
fn an_ssh_record_lists_the_remote_files_and_with_cleanup_how_to_reach_the_host() {
    let mut ssh = target("/etc/ssl/web");
    let deployer = SshDeployer::new(ssh.clone());
    assert_eq!(
        deployer.remote_paths(),
        ["it's.key", "cert.pem", "chain.pem", "full chain.pem"]
            .map(|name| PathBuf::from(format!("/etc/ssl/web/{name}")))
    );
    ssh.cleanup = true;
    let host = SshDeployer::new(ssh).host();
    assert_eq!(host.port, 2222);
    assert_eq!(host.connect_timeout, 7);
    assert_eq!(host.known_hosts, PathBuf::from("/keys/known_hosts"));
    // The deployer rebuilt from the record connects the same way.
    assert_eq!(
        SshDeployer::for_host(&host).ssh_args(),
        SshDeployer::new(target("/etc/ssl/web")).ssh_args()
    );
}

#[test]
fn a_removal_deletes_only_files_in_the_directory_of_the_host_its_id_names() {
    let host = SshDeployer::new(target("/etc/ssl/web")).host();
    let id = "ssh:deploy@web1.example.test:2222/etc/ssl/web";
    let paths = |names: &[&str]| -> Vec<PathBuf> { names.iter().map(PathBuf::from).collect() };
    assert_eq!(
        SshDeployer::check_removal(
            id,
            &host,
            &paths(&["/etc/ssl/web/privkey.pem", "/etc/ssl/web/cert.pem"])
        ),
        Ok(())
    );
    for bad in [
        "/etc/ssl/webx/privkey.pem",
        "/etc/ssl/web/../shadow",
        "/etc/ssl/web/sub/key.pem",
        "/etc/passwd",
        "/etc/ssl/web/",
    ] {
        let error = SshDeployer::check_removal(id, &host, &paths(&[bad])).expect_err(bad);
        assert!(
            error.contains("not a file in `/etc/ssl/web`"),
            "{bad}: {error}"
        );
    }
    let elsewhere = SshHost {
        host: "db.example.test".to_string(),
        ..host.clone()
    };
    assert!(SshDeployer::check_removal(id, &elsewhere, &[]).is_err());
    let other_port = SshHost { port: 22, ..host };
    assert!(SshDeployer::check_removal(id, &other_port, &[]).is_err());
}
