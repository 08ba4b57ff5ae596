//! `verify` on local targets (`files`, `pkcs12`) against a real TLS server (`openssl s_server
//! -www`) that the target's reload command restarts on the deployed files; `cleanup` and the
//! reload time limit of `ssh` targets against a real `sshd` on loopback.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration as StdDuration, Instant};

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::deploy_remote::{normalise_serial, served_serial, ServerGuard};
use crate::push::{user_name, Sshd};
use crate::sandbox::{Run, Sandbox};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// `days` from now, for `CERTFORM_NOW` (90-day certificates renew in a window from 60 days
/// after issue, spread per certificate; 85 days is past any point in it).
fn later(days: i64) -> String {
    (OffsetDateTime::now_utc() + Duration::days(days))
        .format(&Rfc3339)
        .expect("format")
}

fn at(sandbox: &Sandbox, days: i64, args: &[&str]) -> Run {
    sandbox.certform_env(args, &[("CERTFORM_NOW", later(days).as_str())])
}

/// A shell command that (re)starts `openssl s_server` on `port` serving `cert` and `key`,
/// recording its pid in `pid`.
fn restart_server(pid: &Path, port: u16, cert: &Path, key: &Path) -> String {
    format!(
        "if [ -f {pid} ]; then kill $(cat {pid}) 2>/dev/null; fi; \
         nohup openssl s_server -quiet -accept 127.0.0.1:{port} -cert {cert} -key {key} -www </dev/null >/dev/null 2>&1 & \
         echo $! > {pid}",
        pid = pid.display(),
        cert = cert.display(),
        key = key.display(),
    )
}

fn files_config(reload: &str, port: u16, timeout: &str) -> String {
    format!(
        r#"
[state]
repo = "state"
keys_dir = "keys"

[ca.local]
kind = "local"

[certificate.web]
common_name = "www.example.test"
validity = {{ days = 90 }}
renew_before = "30d"
deploy = [{{ kind = "files", dir = "out/web", reload = "{reload}", verify = {{ connect = "127.0.0.1:{port}", sni = "www.example.test", timeout = "{timeout}" }} }}]
"#
    )
}

#[test]
fn a_files_target_is_verified_after_reload_renewal_and_hand_switch() {
    let sandbox = Sandbox::new();
    let port = free_port();
    let out = sandbox.path("out/web");
    let pid = sandbox.path("server.pid");
    let _server = ServerGuard(pid.clone());
    let restart = restart_server(
        &pid,
        port,
        &out.join("fullchain.pem"),
        &out.join("privkey.pem"),
    );
    sandbox.write_config(&files_config(&restart, port, "20s"));

    let run = sandbox.apply().expect(0);
    assert!(run.stdout.contains("reloaded, verified"), "{}", run.all());
    let first = sandbox.state_field("web", "serial");
    assert_eq!(served_serial(port), normalise_serial(&first));
    assert!(
        sandbox
            .read("state/certificates/web.toml")
            .contains("verified = true"),
        "the receipt says so"
    );
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    let old = sandbox.path("old");
    std::fs::create_dir_all(&old).unwrap();
    for name in ["fullchain.pem", "privkey.pem"] {
        std::fs::copy(out.join(name), old.join(name)).unwrap();
    }

    // Renewal: the reload restarts the server on the new files, which serves the new serial.
    let run = at(&sandbox, 85, &["apply", "--auto-approve"]).expect(0);
    assert!(run.stdout.contains("reloaded, verified"), "{}", run.all());
    let second = sandbox.state_field("web", "serial");
    assert_ne!(first, second);
    assert_eq!(served_serial(port), normalise_serial(&second));
    at(&sandbox, 85, &["plan", "--detailed-exitcode"]).expect(0);

    // Someone restarts the server on the old certificate by hand: drift at plan, and apply
    // runs the reload although no file changed, then verifies again.
    let restart_old = restart_server(
        &pid,
        port,
        &old.join("fullchain.pem"),
        &old.join("privkey.pem"),
    );
    let status = Command::new("sh").arg("-c").arg(&restart_old).status();
    assert!(status.is_ok_and(|status| status.success()));
    // Until the hand-started server listens (each plan's handshake is the wait).
    let plan = (0..100)
        .map(|_| at(&sandbox, 85, &["plan", "--detailed-exitcode"]))
        .find(|plan| !plan.stdout.contains("cannot be checked"))
        .expect("the server started by hand listens")
        .expect(2);
    assert!(
        plan.stdout.contains(&format!(
            "endpoint `127.0.0.1:{port}` still serves old serial {}",
            normalise_serial(&first)
        )),
        "{}",
        plan.stdout
    );
    let run = at(&sandbox, 85, &["apply", "--auto-approve"]).expect(0);
    assert!(
        run.stdout.contains("up to date, reloaded, verified"),
        "{}",
        run.all()
    );
    assert_eq!(served_serial(port), normalise_serial(&second));
    at(&sandbox, 85, &["plan", "--detailed-exitcode"]).expect(0);

    // A reload that does not restart the server: the renewal's deploy fails (exit 3) naming
    // what is still served, and the plan shows it again.
    sandbox.write_config(&files_config("true", port, "1s"));
    let run = at(&sandbox, 170, &["apply", "--auto-approve"]).expect(3);
    let third = sandbox.state_field("web", "serial");
    assert_ne!(third, second);
    assert!(
        run.all().contains(&format!(
            "still serves old serial {}",
            normalise_serial(&second)
        )),
        "{}",
        run.all()
    );
    assert!(
        sandbox
            .read("state/certificates/web.toml")
            .contains("verified = false"),
        "the receipt says so"
    );
    let plan = at(&sandbox, 170, &["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout.contains("still serves old serial"),
        "{}",
        plan.stdout
    );
}

#[test]
fn a_pkcs12_target_is_verified_by_a_server_reading_the_keystore() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.path("p12.pass"), "correct horse battery staple\n").unwrap();
    let port = free_port();
    let pid = sandbox.path("server.pid");
    let _server = ServerGuard(pid.clone());
    let pem = sandbox.path("server.pem");
    // The "server" reads the keystore the way a Java server would: with its password.
    let reload = format!(
        "umask 077; openssl pkcs12 -in {p12} -passin file:{pass} -nodes -clcerts -out {pem} && {{ {restart}; }}",
        p12 = sandbox.path("out/app.p12").display(),
        pass = sandbox.path("p12.pass").display(),
        pem = pem.display(),
        restart = restart_server(&pid, port, &pem, &pem),
    );
    sandbox.write_config(&format!(
        r#"
[state]
repo = "state"
keys_dir = "keys"

[ca.local]
kind = "local"

[certificate.web]
common_name = "www.example.test"
deploy = [{{ kind = "pkcs12", path = "out/app.p12", password = {{ file = "p12.pass" }}, reload = "{reload}", verify = {{ connect = "127.0.0.1:{port}", sni = "www.example.test", timeout = "20s" }} }}]
"#
    ));
    let run = sandbox.apply().expect(0);
    assert!(run.stdout.contains("reloaded, verified"), "{}", run.all());
    assert_eq!(
        served_serial(port),
        normalise_serial(&sandbox.state_field("web", "serial"))
    );
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    // The server stops: at plan the endpoint cannot be checked, which is drift too.
    drop(_server);
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "the server stopped");
        std::thread::sleep(StdDuration::from_millis(20));
    }
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(
        plan.stdout
            .contains(&format!("endpoint `127.0.0.1:{port}`")),
        "{}",
        plan.stdout
    );
}

/// A config with certificate `web` deployed over SSH to `remote` (with `extra` fields on the
/// target, when `web` is kept) and certificate `other` deployed to local files.
fn ssh_config(sshd: &Sshd, remote: &Path, extra: &str, with_web: bool) -> String {
    let web = format!(
        r#"
[certificate.web]
common_name = "www.example.test"
deploy = [{{ kind = "ssh", host = "127.0.0.1", port = {port}, user = "{user}", identity = "{key}", known_hosts = "{known_hosts}", dir = "{remote}"{extra} }}]
"#,
        port = sshd.port,
        user = user_name(),
        key = sshd.key.display(),
        known_hosts = sshd.known_hosts.display(),
        remote = remote.display(),
    );
    format!(
        r#"
[state]
repo = "state"
keys_dir = "keys"

[ca.local]
kind = "local"

[certificate.other]
common_name = "other.example.test"
deploy = [{{ kind = "files", dir = "out/other" }}]
{}"#,
        if with_web { web.as_str() } else { "" }
    )
}

#[test]
fn ssh_cleanup_removes_the_remote_files_key_first_and_retries_an_unreachable_host() {
    let sandbox = Sandbox::new();
    let sshd = Sshd::start(&sandbox.path("sshd"));
    let remote = sandbox.path("remote/web");
    sandbox.write_config(&ssh_config(&sshd, &remote, ", cleanup = true", true));
    sandbox.apply().expect(0);
    assert!(remote.join("privkey.pem").exists());

    // `web` leaves the config (forgotten by default): the plan lists the files on the host.
    sandbox.write_config(&ssh_config(&sshd, &remote, "", false));
    let id = format!(
        "ssh:{}@127.0.0.1:{}{}",
        user_name(),
        sshd.port,
        remote.display()
    );
    let plan = sandbox.certform(&["plan"]).expect(0);
    let listed = format!(
        "`{id}` cleanup removes `{dir}/privkey.pem`, `{dir}/cert.pem`, `{dir}/chain.pem`, `{dir}/fullchain.pem`",
        dir = remote.display()
    );
    assert!(plan.stdout.contains(&listed), "{}", plan.stdout);

    // The host cannot be reached (its key is not trusted any more): that target fails, exit
    // 3, nothing is forgotten, and the cleanup is planned again.
    let known_hosts = std::fs::read_to_string(&sshd.known_hosts).unwrap();
    std::fs::write(&sshd.known_hosts, "").unwrap();
    let run = sandbox.apply().expect(3);
    assert!(
        run.all().contains("Host key verification failed"),
        "{}",
        run.all()
    );
    assert!(run.all().contains(&id), "{}", run.all());
    assert!(remote.join("privkey.pem").exists());
    let plan = sandbox.certform(&["plan"]).expect(0);
    assert!(plan.stdout.contains(&listed), "{}", plan.stdout);

    // Reachable again: one session removes the four files; the commit names them.
    std::fs::write(&sshd.known_hosts, known_hosts).unwrap();
    sandbox.apply().expect(0);
    for name in ["privkey.pem", "cert.pem", "chain.pem", "fullchain.pem"] {
        assert!(!remote.join(name).exists(), "{name} removed");
    }
    assert!(sandbox.path("out/other/privkey.pem").exists());
    let log = sandbox.git("state", &["log", "-1", "--format=%B"]);
    let key = log
        .find(&format!("{}/privkey.pem", remote.display()))
        .unwrap_or_else(|| panic!("{log}"));
    let cert = log
        .find(&format!("{}/cert.pem", remote.display()))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(key < cert, "key first: {log}");
    assert!(log.contains("removed"), "{log}");
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn an_ssh_reload_past_its_timeout_is_killed_on_the_host() {
    let sandbox = Sandbox::new();
    let sshd = Sshd::start(&sandbox.path("sshd"));
    let remote = sandbox.path("remote/web");
    let marker = sandbox.path("reload-finished-marker");
    // A sleep length unique to this test run, to find its process on the host.
    let seconds = 300 + u32::from(free_port() % 600);
    let extra = format!(
        ", reload = \"sleep {seconds}; touch {}\", reload_timeout = \"1s\"",
        marker.display()
    );
    sandbox.write_config(&ssh_config(&sshd, &remote, &extra, true));
    let started = Instant::now();
    let run = sandbox.apply().expect(3);
    // Far sooner than the reload's own sleep (the run also issues two certificates, which
    // takes a while on a loaded machine); that the host killed it is shown below.
    assert!(
        started.elapsed() < StdDuration::from_secs(150),
        "{:?}",
        started.elapsed()
    );
    assert!(
        run.all()
            .contains("timed out after 1s (killed with its process group on the host)"),
        "{}",
        run.all()
    );
    for pattern in [format!("sleep {seconds}"), marker.display().to_string()] {
        let left = Command::new("pgrep")
            .args(["-f", &pattern])
            .output()
            .expect("pgrep (apt-get install -y procps)");
        assert!(
            left.stdout.is_empty(),
            "`{pattern}` still runs: {}",
            String::from_utf8_lossy(&left.stdout)
        );
    }
    assert!(!marker.exists());
    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("deploy web"), "{}", plan.stdout);
}
