//! `[state] push = true` against real remotes: `git http-backend` behind a small HTTP server
//! with basic auth on loopback, an `sshd` on loopback with throwaway keys, and file remotes;
//! another runner pushing in between (different certificate: replayed and pushed; same
//! certificate: stopped, nothing lost, the next run plans from the remote), and a kill while
//! catching up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use base64::Engine;

use crate::sandbox::{Run, Sandbox};

const TOKEN: &str = "tok-3f9a1c2e-right";
const WRONG: &str = "tok-77d0b4aa-wrong";

/// The config of one runner: the certificates as `(name, first SAN, CA)`; two local CAs so a
/// runner can move a certificate to a new order. Keys (and so the local CAs' databases) live
/// in one directory both runners share (`keys`, absolute), as they would share age-encrypted
/// keys in the state repository.
fn config(keys: &Path, remote: &str, extra: &str, certificates: &[(&str, &str, &str)]) -> String {
    let mut text = format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"{}\"\npush = true\nremote = \"{remote}\"\n{extra}\n\n\
         [ca.local]\nkind = \"local\"\n\n[ca.other]\nkind = \"local\"\n",
        keys.display()
    );
    for (name, san, ca) in certificates {
        text.push_str(&format!(
            "\n[certificate.{name}]\ncommon_name = \"{name}.example.test\"\nsans = [\"{san}\"]\n\
             ca = \"{ca}\"\nvalidity = {{ days = 90 }}\nrenew_before = \"30d\"\n"
        ));
    }
    text
}

const WEB: (&str, &str, &str) = ("web", "web.example.test", "local");
const API: (&str, &str, &str) = ("api", "api.example.test", "local");
const WEB2: (&str, &str, &str) = ("web", "web2.example.test", "local");

fn apply_env(sandbox: &Sandbox, env: &[(&str, &str)]) -> Run {
    sandbox.certform_env(&["apply", "--auto-approve"], env)
}

/// `git` in the sandbox's hermetic environment, in an absolute directory.
fn git_at(sandbox: &Sandbox, dir: &Path, args: &[&str]) -> String {
    let output = sandbox
        .hermetic("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git is installed (apt-get install -y git)");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn bare_repo(sandbox: &Sandbox, path: &Path) {
    std::fs::create_dir_all(path).expect("bare dir");
    git_at(sandbox, path, &["init", "-q", "--bare", "-b", "main"]);
}

/// Every object of `repo` (loose and packed) and its config: none may hold `secret`.
fn assert_not_in_repo(sandbox: &Sandbox, git_dir: &Path, secret: &str) {
    let mut command = sandbox.hermetic("git");
    command
        .arg("--git-dir")
        .arg(git_dir)
        .args(["cat-file", "--batch-all-objects", "--batch"]);
    let objects = command.output().expect("git cat-file");
    assert!(
        !String::from_utf8_lossy(&objects.stdout).contains(secret),
        "`{secret}` in an object of {}",
        git_dir.display()
    );
    let config = std::fs::read_to_string(git_dir.join("config")).unwrap_or_default();
    assert!(
        !config.contains(secret),
        "`{secret}` in {}/config",
        git_dir.display()
    );
}

// ---------------------------------------------------------------------------------------------
// A git smart-HTTP server: `git http-backend` as CGI behind HTTP basic auth, on loopback.

struct GitHttp {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl GitHttp {
    /// Serve the bare repositories under `root`, to `user:password` only.
    fn start(root: &Path, user: &str, password: &str) -> GitHttp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let root = root.to_path_buf();
        let user = user.to_string();
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (root, user, expected) = (root.clone(), user.clone(), expected.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &root, &user, &expected);
                });
            }
        });
        GitHttp { port, stop }
    }

    fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One request, then the connection is closed.
fn serve(stream: TcpStream, root: &Path, user: &str, expected: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let mut out = stream;
    if header("authorization").as_deref() != Some(expected) {
        out.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
              Content-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
        body
    } else {
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        body
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut command = Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", root)
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, variable) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(value) = header(name) {
            command.env(variable, value);
        }
    }
    let mut child = command.spawn()?;
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let mut output = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut output)?;
    let _ = writer.join();
    child.wait()?;
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, 2))
        });
    let (head, rest) = match split {
        Some((at, skip)) => (
            String::from_utf8_lossy(&output[..at]).into_owned(),
            &output[at + skip..],
        ),
        None => (String::new(), &output[..]),
    };
    let mut status = "200 OK".to_string();
    let mut response_headers = String::new();
    for line in head.lines() {
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => {
                status = value.trim().to_string();
            }
            Some(_) => {
                response_headers.push_str(line.trim_end());
                response_headers.push_str("\r\n");
            }
            None => {}
        }
    }
    write!(
        out,
        "HTTP/1.1 {status}\r\n{response_headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        rest.len()
    )?;
    out.write_all(rest)?;
    out.flush()
}

// ---------------------------------------------------------------------------------------------
// An sshd on loopback with a throwaway host key and one authorized client key.

pub(crate) struct Sshd {
    child: Child,
    pub(crate) port: u16,
    /// The client's private key and a `known_hosts` naming the server's host key.
    pub(crate) key: PathBuf,
    pub(crate) known_hosts: PathBuf,
}

impl Sshd {
    pub(crate) fn start(dir: &Path) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "sshd is needed for the SSH push tests (apt-get install -y openssh-server)"
        );
        std::fs::create_dir_all(dir).expect("ssh dir");
        let keygen = |path: &Path| {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path)
                .status()
                .expect("ssh-keygen (apt-get install -y openssh-client)");
            assert!(status.success(), "ssh-keygen failed");
        };
        let host_key = dir.join("host_key");
        let key = dir.join("client_key");
        keygen(&host_key);
        keygen(&key);
        let authorized = dir.join("authorized_keys");
        std::fs::copy(dir.join("client_key.pub"), &authorized).expect("authorized_keys");
        // Running as root, sshd wants its privilege separation directory.
        if unsafe_is_root() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile {}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 LogLevel INFO\n",
                host_key.display(),
                authorized.display(),
                dir.join("sshd.pid").display()
            ),
        )
        .expect("sshd_config");
        let mut child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sshd");
        // Ready once it says it listens (no sleeping).
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut said = String::new();
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                panic!("sshd exited before listening:\n{said}");
            }
            said.push_str(&line);
            if line.contains("Server listening on") {
                break;
            }
        }
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stderr.read_to_string(&mut sink);
        });
        let host_public = std::fs::read_to_string(dir.join("host_key.pub")).expect("host key");
        let known_hosts = dir.join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{port} {}", host_public.trim()),
        )
        .expect("known_hosts");
        Sshd {
            child,
            port,
            key,
            known_hosts,
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

pub(crate) fn user_name() -> String {
    let output = Command::new("id").arg("-un").output().expect("id");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn pushes_over_https_with_a_token_from_the_environment() {
    let sandbox = Sandbox::new();
    let root = sandbox.path("server");
    bare_repo(&sandbox, &root.join("state.git"));
    let server = GitHttp::start(&root, "ci", TOKEN);
    let extra = "push_token = { env = \"STATE_TOKEN\" }\npush_user = \"ci\"";
    let keys = sandbox.path("keys");
    sandbox.write_config(&config(&keys, &server.url("state.git"), extra, &[WEB, API]));
    let run = apply_env(&sandbox, &[("STATE_TOKEN", TOKEN)]).expect(0);
    assert!(run.stdout.contains("(pushed)"), "{}", run.all());
    assert_eq!(
        git_at(&sandbox, &root.join("state.git"), &["rev-parse", "main"]),
        sandbox.git("state", &["rev-parse", "HEAD"])
    );
    assert!(!run.all().contains(TOKEN), "{}", run.all());
    assert_not_in_repo(&sandbox, &sandbox.path("state/.git"), TOKEN);
    assert!(!sandbox.path("state/.git/certform-push-pending").exists());
}

#[test]
fn a_wrong_token_is_a_clear_error_that_never_shows_the_token() {
    let sandbox = Sandbox::new();
    let root = sandbox.path("server");
    bare_repo(&sandbox, &root.join("state.git"));
    let server = GitHttp::start(&root, "ci", TOKEN);
    let keys = sandbox.path("keys");
    sandbox.write_config(&config(
        &keys,
        &server.url("state.git"),
        "push_token = { env = \"STATE_TOKEN\" }\npush_user = \"ci\"",
        &[WEB, API],
    ));
    let run = apply_env(&sandbox, &[("STATE_TOKEN", WRONG)]);
    let output = run.all();
    assert_ne!(run.code, 0, "{output}");
    assert!(
        output.contains(&format!("failed to push to `{}`", server.url("state.git"))),
        "{output}"
    );
    assert!(
        output.contains("authentication failed: the server refused `push_token`"),
        "{output}"
    );
    assert!(output.contains("check `[state] push_token`"), "{output}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ci:{WRONG}"));
    for secret in [WRONG, basic.as_str()] {
        assert!(!output.contains(secret), "`{secret}` shown:\n{output}");
        assert_not_in_repo(&sandbox, &sandbox.path("state/.git"), secret);
    }
    // Nothing reached the server; the commit is kept and pushed by the next run.
    let refs = git_at(&sandbox, &root.join("state.git"), &["for-each-ref"]);
    assert!(refs.is_empty(), "{refs}");
    assert!(sandbox.path("state/.git/certform-push-pending").exists());
    let again = apply_env(&sandbox, &[("STATE_TOKEN", TOKEN)]).expect(0);
    assert!(
        again
            .all()
            .contains("pushed the state commits an earlier run left unpushed"),
        "{}",
        again.all()
    );
    assert_eq!(
        git_at(&sandbox, &root.join("state.git"), &["rev-parse", "main"]),
        sandbox.git("state", &["rev-parse", "HEAD"])
    );

    // A missing variable is named before anything is issued.
    sandbox.write_config(&config(
        &keys,
        &server.url("state.git"),
        "push_token = { env = \"STATE_TOKEN\" }\npush_user = \"ci\"",
        &[WEB2, API],
    ));
    let missing = apply_env(&sandbox, &[]);
    assert_ne!(missing.code, 0, "{}", missing.all());
    assert!(
        missing.all().contains("cannot read `[state] push_token`"),
        "{}",
        missing.all()
    );
    assert!(
        missing
            .all()
            .contains("environment variable `STATE_TOKEN` is not set"),
        "{}",
        missing.all()
    );
}

#[test]
fn pushes_over_ssh_with_a_key_file_and_strict_host_keys() {
    let sandbox = Sandbox::new();
    let sshd = Sshd::start(&sandbox.path("ssh"));
    let bare = sandbox.path("remote.git");
    bare_repo(&sandbox, &bare);
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        user_name(),
        sshd.port,
        bare.display()
    );
    let extra = format!(
        "push_ssh_key = {{ file = \"{}\" }}\npush_known_hosts = \"{}\"",
        sshd.key.display(),
        sshd.known_hosts.display()
    );
    let keys = sandbox.path("keys");
    sandbox.write_config(&config(&keys, &url, &extra, &[WEB]));
    let run = sandbox.apply().expect(0);
    assert!(run.stdout.contains("(pushed)"), "{}", run.all());
    assert_eq!(
        git_at(&sandbox, &bare, &["rev-parse", "main"]),
        sandbox.git("state", &["rev-parse", "HEAD"])
    );

    // A host key that is not the one in `known_hosts` stops the push.
    std::fs::write(
        &sshd.known_hosts,
        format!(
            "[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBqVfQFQ2ghh0gd5n1Uz0xPFYP4nr6tCM2b5Qe2hXbCp",
            sshd.port
        ),
    )
    .expect("known_hosts");
    sandbox.write_config(&config(
        &keys,
        &url,
        &extra,
        &[("web", "web2.example.test", "local")],
    ));
    let run = sandbox.apply();
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.all().contains("Host key verification failed"),
        "{}",
        run.all()
    );
    assert!(run.all().contains("push_known_hosts"), "{}", run.all());
}

/// Runner A (the sandbox `a`) and runner B (`b`, a clone of the remote) share config and keys.
struct TwoRunners {
    a: Sandbox,
    b: Sandbox,
    remote: String,
    remote_dir: PathBuf,
    keys: PathBuf,
    extra: String,
    env: Vec<(String, String)>,
    _server: Option<GitHttp>,
}

impl TwoRunners {
    fn over_https() -> TwoRunners {
        let a = Sandbox::new();
        let root = a.path("server");
        bare_repo(&a, &root.join("state.git"));
        let server = GitHttp::start(&root, "ci", TOKEN);
        Self::finish(
            a,
            server.url("state.git"),
            root.join("state.git"),
            "push_token = { env = \"STATE_TOKEN\" }\npush_user = \"ci\"".to_string(),
            vec![("STATE_TOKEN".to_string(), TOKEN.to_string())],
            Some(server),
        )
    }

    fn over_a_file_remote() -> TwoRunners {
        let a = Sandbox::new();
        let bare = a.path("remote.git");
        bare_repo(&a, &bare);
        Self::finish(
            a,
            bare.display().to_string(),
            bare,
            String::new(),
            Vec::new(),
            None,
        )
    }

    fn finish(
        a: Sandbox,
        remote: String,
        remote_dir: PathBuf,
        extra: String,
        env: Vec<(String, String)>,
        server: Option<GitHttp>,
    ) -> TwoRunners {
        let keys = a.path("keys");
        let runners = TwoRunners {
            b: Sandbox::new(),
            a,
            remote,
            remote_dir,
            keys,
            extra,
            env,
            _server: server,
        };
        runners.run_a(&[WEB]).expect(0);
        // B starts from a clone of what A pushed, like a fresh CI runner.
        git_at(
            &runners.b,
            &runners.b.dir,
            &[
                "clone",
                "-q",
                &runners.remote_dir.display().to_string(),
                "state",
            ],
        );
        runners
    }

    fn run(&self, sandbox: &Sandbox, certificates: &[(&str, &str, &str)]) -> Run {
        sandbox.write_config(&config(&self.keys, &self.remote, &self.extra, certificates));
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        apply_env(sandbox, &env)
    }

    fn run_a(&self, certificates: &[(&str, &str, &str)]) -> Run {
        self.run(&self.a, certificates)
    }

    fn run_b(&self, certificates: &[(&str, &str, &str)]) -> Run {
        self.run(&self.b, certificates)
    }

    fn remote_head(&self) -> String {
        git_at(&self.a, &self.remote_dir, &["rev-parse", "main"])
    }
}

fn another_runner_touching_a_different_certificate_is_replayed_on(runners: TwoRunners) {
    // B adds `api` and pushes first; A, still on the old remote state, reissues `web`.
    let b = runners.run_b(&[WEB, API]).expect(0);
    assert!(b.stdout.contains("(pushed)"), "{}", b.all());
    let a = runners.run_a(&[WEB2]).expect(0);
    let head = runners.remote_head();
    assert!(
        a.stdout.contains(&format!(
            "state committed: {} (pushed, replayed on the remote's newer commits)",
            &head[..12]
        )),
        "{}",
        a.all()
    );

    // The remote has both runs, linear, and A's work tree has B's `api`.
    let log = git_at(
        &runners.a,
        &runners.remote_dir,
        &["log", "--format=%s", "main"],
    );
    assert_eq!(log.lines().count(), 3, "{log}");
    assert_eq!(
        git_at(
            &runners.a,
            &runners.remote_dir,
            &["rev-list", "--merges", "main"]
        ),
        ""
    );
    assert_eq!(
        runners.remote_head(),
        runners.a.git("state", &["rev-parse", "HEAD"])
    );
    assert_eq!(
        runners.a.read("state/certificates/api.toml"),
        runners.b.read("state/certificates/api.toml")
    );
    assert_eq!(runners.a.git("state", &["status", "--porcelain"]), "");
    assert_eq!(
        runners.a.git("state", &["for-each-ref", "refs/certform"]),
        ""
    );
    // Every file at the remote's tip is A's or B's latest.
    let show = |path: &str| {
        git_at(
            &runners.a,
            &runners.remote_dir,
            &["show", &format!("main:{path}")],
        )
    };
    assert_eq!(
        show("certificates/web.toml"),
        runners.a.read("state/certificates/web.toml")
    );
    assert_eq!(
        show("certificates/api.toml"),
        runners.b.read("state/certificates/api.toml")
    );

    // A's next run, with both changes in its config, has nothing to do and pushes nothing.
    let next = runners.run_a(&[WEB2, API]).expect(0);
    assert!(!next.stdout.contains("state committed"), "{}", next.all());
    assert_eq!(
        runners.remote_head(),
        runners.a.git("state", &["rev-parse", "HEAD"])
    );
}

#[test]
fn another_runner_on_a_different_certificate_over_https_is_rebased_and_pushed() {
    another_runner_touching_a_different_certificate_is_replayed_on(TwoRunners::over_https());
}

#[test]
fn another_runner_on_the_same_certificate_stops_the_push_and_loses_nothing() {
    let runners = TwoRunners::over_a_file_remote();
    // B moves `web` to another CA (a new order); A reissues it where it was.
    runners
        .run_b(&[("web", "web-b.example.test", "other")])
        .expect(0);
    let remote_before = runners.remote_head();
    let a = runners.run_a(&[("web", "web-a.example.test", "local")]);
    let output = a.all();
    assert_ne!(a.code, 0, "{output}");
    assert!(
        output.contains("moved on and its new commits change `certificates/web.pem`, `certificates/web.toml` this run changed too: not pushed"),
        "{output}"
    );
    // Nothing overwritten at the remote.
    assert_eq!(runners.remote_head(), remote_before);
    // A's commit is kept on a branch; A's `main` is the remote's now.
    let branches = runners
        .a
        .git("state", &["branch", "--format=%(refname:short)"]);
    let kept = branches
        .lines()
        .find(|name| name.starts_with("certform/unpushed-"))
        .unwrap_or_else(|| panic!("no kept branch in:\n{branches}"))
        .to_string();
    assert!(
        output.contains(&format!("kept on branch `{kept}`")),
        "{output}"
    );
    let kept_web = runners
        .a
        .git("state", &["show", &format!("{kept}:certificates/web.toml")]);
    assert!(kept_web.contains("web-a.example.test"), "{kept_web}");
    assert_eq!(
        runners.a.git("state", &["rev-parse", "main"]),
        format!("{remote_before}")
    );
    assert_eq!(runners.a.git("state", &["status", "--porcelain"]), "");
    assert_eq!(
        runners.a.read("state/certificates/web.toml"),
        runners.b.read("state/certificates/web.toml")
    );

    // The next run plans from the remote's state: it reissues `web` again and pushes.
    let next = runners
        .run_a(&[("web", "web-a.example.test", "local")])
        .expect(0);
    assert!(next.stdout.contains("(pushed)"), "{}", next.all());
    assert_eq!(
        runners.remote_head(),
        runners.a.git("state", &["rev-parse", "HEAD"])
    );
    let log = git_at(
        &runners.a,
        &runners.remote_dir,
        &["log", "--format=%s", "main"],
    );
    assert_eq!(log.lines().count(), 3, "{log}");
}

#[test]
fn uncommitted_changes_in_the_way_stop_the_catch_up_and_the_next_run_pushes() {
    let runners = TwoRunners::over_a_file_remote();
    // Someone adds `README` at the remote; A has an untracked `README` of its own.
    let clone = runners.b.path("state");
    std::fs::write(clone.join("README"), "theirs\n").expect("README");
    git_at(&runners.b, &clone, &["add", "README"]);
    git_at(&runners.b, &clone, &["commit", "-q", "-m", "readme"]);
    git_at(&runners.b, &clone, &["push", "-q", "origin", "main"]);
    let remote_before = runners.remote_head();
    std::fs::write(runners.a.path("state/README"), "mine\n").expect("README");

    let run = runners.run_a(&[WEB2]);
    let output = run.all();
    assert_ne!(run.code, 0, "{output}");
    assert!(
        output.contains("cannot catch up with it: the work tree has uncommitted changes"),
        "{output}"
    );
    assert!(output.contains("commit or stash your changes"), "{output}");
    assert_eq!(runners.remote_head(), remote_before);
    assert_eq!(runners.a.read("state/README"), "mine\n");
    assert!(runners.a.path("state/.git/certform-push-pending").exists());

    // Once the file is out of the way, the next run (nothing else to do) catches up and pushes.
    std::fs::remove_file(runners.a.path("state/README")).expect("remove");
    let next = runners.run_a(&[WEB2]).expect(0);
    assert!(
        next.all()
            .contains("pushed the state commits an earlier run left unpushed"),
        "{}",
        next.all()
    );
    assert_eq!(
        runners.remote_head(),
        runners.a.git("state", &["rev-parse", "HEAD"])
    );
    assert_eq!(runners.a.read("state/README"), "theirs\n");
}

#[test]
fn a_kill_before_the_push_is_pushed_by_the_next_run() {
    let sandbox = Sandbox::new();
    let bare = sandbox.path("remote.git");
    bare_repo(&sandbox, &bare);
    let keys = sandbox.path("keys");
    sandbox.write_config(&config(&keys, &bare.display().to_string(), "", &[WEB]));
    let killed = sandbox.certform_env(
        &["apply", "--auto-approve"],
        &[("CERTFORM_FAILPOINT", "push-started")],
    );
    assert_eq!(killed.code, 99, "{}", killed.all());
    assert!(sandbox.path("state/.git/certform-commit").exists());
    assert_eq!(git_at(&sandbox, &bare, &["for-each-ref"]), "");

    let next = sandbox.apply().expect(0);
    assert!(
        next.all()
            .contains("pushed the state commits an earlier run left unpushed"),
        "{}",
        next.all()
    );
    assert_eq!(
        git_at(&sandbox, &bare, &["rev-parse", "main"]),
        sandbox.git("state", &["rev-parse", "HEAD"])
    );
    assert!(!sandbox.path("state/.git/certform-commit").exists());
    assert!(!sandbox.path("state/.git/certform-push-pending").exists());
    // And the run after that has nothing to push.
    let quiet = sandbox.apply().expect(0);
    assert!(!quiet.all().contains("pushed"), "{}", quiet.all());
}

#[test]
fn a_kill_while_catching_up_is_finished_by_the_next_run() {
    let runners = TwoRunners::over_a_file_remote();
    runners.run_b(&[WEB, API]).expect(0);
    runners
        .a
        .write_config(&config(&runners.keys, &runners.remote, "", &[WEB2]));
    let killed = runners.a.certform_env(
        &["apply", "--auto-approve"],
        &[("CERTFORM_FAILPOINT", "push-before-ref")],
    );
    assert_eq!(killed.code, 99, "{}", killed.all());
    assert!(runners.a.path("state/.git/certform-move").exists());

    // The next run finishes the move, then pushes the replayed commit (and has nothing else
    // to do with B's `api` in its config too).
    let next = runners.run_a(&[WEB2, API]).expect(0);
    assert!(
        next.all().contains("finished moving `refs/heads/main`"),
        "{}",
        next.all()
    );
    assert!(
        next.all()
            .contains("pushed the state commits an earlier run left unpushed"),
        "{}",
        next.all()
    );
    assert_eq!(
        runners.remote_head(),
        runners.a.git("state", &["rev-parse", "HEAD"])
    );
    assert_eq!(runners.a.git("state", &["status", "--porcelain"]), "");
    assert!(!runners.a.path("state/.git/certform-move").exists());
    assert_eq!(
        runners.a.read("state/certificates/api.toml"),
        runners.b.read("state/certificates/api.toml")
    );
}

// ---------------------------------------------------------------------------------------------
// The scheduled-renewal examples.

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/ci")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Kubernetes CronJob forbids overlapping runs, takes its secrets from a Secret, and its
/// script, run for real against the smart-HTTP server, clones with the token, applies, and
/// pushes the state commit back.
#[test]
fn the_cronjob_example_clones_applies_and_pushes_over_https() {
    let cronjob: serde_yaml::Value =
        serde_yaml::from_str(&example("cronjob.yaml")).expect("cronjob.yaml parses");
    assert_eq!(cronjob["kind"].as_str(), Some("CronJob"));
    assert_eq!(
        cronjob["spec"]["concurrencyPolicy"].as_str(),
        Some("Forbid")
    );
    let pod = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env = container["env"].as_sequence().expect("env");
    for secret in ["CERTFORM_PUSH_TOKEN", "CERTFORM_AGE_IDENTITY"] {
        let entry = env
            .iter()
            .find(|e| e["name"].as_str() == Some(secret))
            .unwrap_or_else(|| panic!("no {secret}"));
        assert!(
            entry["valueFrom"]["secretKeyRef"]["name"].is_string(),
            "{secret}"
        );
    }
    let script = container["args"][0].as_str().expect("script");
    assert!(
        script.contains("exec certform apply --auto-approve"),
        "{script}"
    );

    // The script, with /work in a temp directory and our certform first on PATH.
    let sandbox = Sandbox::new();
    let root = sandbox.path("server");
    let bare = root.join("certs.git");
    bare_repo(&sandbox, &bare);
    let seed = sandbox.path("seed");
    std::fs::create_dir_all(&seed).expect("seed");
    std::fs::write(
        seed.join("certform.toml"),
        format!(
            "[state]\nrepo = \".\"\ndir = \"state\"\nkeys_dir = \"{}\"\npush = true\n\
             remote = \"origin\"\npush_token = {{ env = \"CERTFORM_PUSH_TOKEN\" }}\n\n\
             [certificate.web]\ncommon_name = \"web.example.test\"\nvalidity = {{ days = 90 }}\n",
            sandbox.path("keys").display()
        ),
    )
    .expect("config");
    git_at(&sandbox, &seed, &["init", "-q", "-b", "main"]);
    git_at(&sandbox, &seed, &["add", "certform.toml"]);
    git_at(&sandbox, &seed, &["commit", "-q", "-m", "config"]);
    git_at(
        &sandbox,
        &seed,
        &["push", "-q", &bare.display().to_string(), "main"],
    );
    let server = GitHttp::start(&root, "x-access-token", TOKEN);

    let work = sandbox.path("pod");
    std::fs::create_dir_all(&work).expect("work");
    let script = script.replace("/work", &work.display().to_string());
    let bin = Path::new(env!("CARGO_BIN_EXE_certform"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = sandbox
        .hermetic("sh")
        .args(["-ec", &script])
        .env("PATH", path)
        .env("HOME", &work)
        .env("REPO_URL", server.url("certs.git"))
        .env("CERTFORM_PUSH_TOKEN", TOKEN)
        .env("CERTFORM_AGE_IDENTITY", "unused by this config")
        .output()
        .expect("sh");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(said.contains("(pushed)"), "{said}");
    assert!(!said.contains(TOKEN), "{said}");
    let files = git_at(&sandbox, &bare, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(files.contains("state/certificates/web.toml"), "{files}");
    assert_not_in_repo(&sandbox, &work.join("repo/.git"), TOKEN);
}

/// The systemd units pass `systemd-analyze verify`, are hardened, and run apply nightly.
#[test]
fn the_systemd_example_verifies_and_is_hardened() {
    let service = example("certform-renew.service");
    let timer = example("certform-renew.timer");
    for line in [
        "Type=oneshot",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "UMask=0077",
        "LoadCredential=age-identity:",
    ] {
        assert!(service.lines().any(|l| l.starts_with(line)), "no `{line}`");
    }
    assert!(
        service.contains("certform apply --auto-approve"),
        "{service}"
    );
    for line in ["OnCalendar=", "Persistent=true", "RandomizedDelaySec="] {
        assert!(timer.lines().any(|l| l.starts_with(line)), "no `{line}`");
    }

    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(
        analyze.exists(),
        "systemd-analyze checks the systemd example (apt-get install -y systemd)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    // Our binary where the unit expects certform, so verify can check the executable.
    let service = service.replace("/usr/local/bin/certform", env!("CARGO_BIN_EXE_certform"));
    std::fs::write(dir.path().join("certform-renew.service"), service).expect("service");
    std::fs::write(dir.path().join("certform-renew.timer"), timer).expect("timer");
    let output = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(dir.path().join("certform-renew.service"))
        .arg(dir.path().join("certform-renew.timer"))
        .output()
        .expect("systemd-analyze");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(said.trim().is_empty(), "{said}");
}

/// The GitHub Actions workflow's nightly job: scheduled, one apply at a time, the age identity
/// from a secret, a full clone without checkout's credentials, then apply (which pushes).
#[test]
fn the_github_actions_example_has_a_nightly_apply_that_pushes() {
    let workflow: serde_yaml::Value =
        serde_yaml::from_str(&example("github-actions.yml")).expect("workflow parses");
    assert!(workflow["on"]["schedule"][0]["cron"].is_string());
    let renew = &workflow["jobs"]["renew"];
    assert!(renew["if"]
        .as_str()
        .is_some_and(|c| c.contains("github.event_name == 'schedule'")));
    assert_eq!(
        renew["concurrency"]["group"].as_str(),
        Some("certform-apply")
    );
    assert_eq!(
        renew["env"]["CERTFORM_AGE_IDENTITY"].as_str(),
        Some("${{ secrets.CERTFORM_AGE_IDENTITY }}")
    );
    let steps = renew["steps"].as_sequence().expect("steps");
    let checkout = &steps[0];
    assert_eq!(checkout["uses"].as_str(), Some("actions/checkout@v4"));
    assert_eq!(checkout["with"]["fetch-depth"].as_i64(), Some(0));
    assert_eq!(
        checkout["with"]["persist-credentials"].as_bool(),
        Some(false)
    );
    assert!(steps
        .iter()
        .any(|s| s["run"].as_str() == Some("certform apply --auto-approve")));
    // The review jobs do not run on the schedule.
    assert!(workflow["jobs"]["plan"]["if"]
        .as_str()
        .is_some_and(|c| c.contains("github.event_name == 'pull_request'")));
    let text = example("github-actions.yml");
    for line in [
        "push = true",
        "push_token = { env = \"CERTFORM_PUSH_TOKEN\" }",
        "keys = \"age\"",
        "age_identity = { env = \"CERTFORM_AGE_IDENTITY\" }",
    ] {
        assert!(text.contains(line), "no `{line}` in the config shown");
    }
}

/// Bad push settings are reported by file, line and key, all in one pass, before anything
/// runs; a plaintext token is refused without being shown.
#[test]
fn bad_push_settings_are_named_by_file_line_and_rule() {
    let sandbox = Sandbox::with_config(
        "[state]\nrepo = \"state\"\npush = true\nremote = \"https://git.example.com/x.git\"\n\
         push_token = \"hunter2-plain\"\npush_user = \"a:b\"\npush_ssh_key = { env = \"SSH_KEY\" }\n\
         push_known_hosts = \"\"\n\n[certificate.web]\ncommon_name = \"web.example.test\"\n",
    );
    let run = sandbox.certform(&["validate"]);
    let output = run.all();
    assert_eq!(run.code, 1, "{output}");
    let config = sandbox.path("certform.toml").display().to_string();
    for expected in [
        format!("{config}:5:14: `state.push_token`: plaintext secret in config"),
        format!("{config}:6:13: `state.push_user`: `push_user` must be a non-empty name"),
        format!("{config}:7:16: `state.push_ssh_key`: `push_ssh_key` must name a key file"),
        format!("{config}:8:20: `state.push_known_hosts`: `push_known_hosts` must not be empty"),
    ] {
        assert!(output.contains(&expected), "no `{expected}` in:\n{output}");
    }
    assert!(!output.contains("hunter2"), "{output}");

    // A token for a remote it must not travel to is refused before any CA is asked.
    sandbox.write_config(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\npush = true\n\
         remote = \"http://git.example.com/x.git\"\npush_token = { env = \"STATE_TOKEN\" }\n\n\
         [certificate.web]\ncommon_name = \"web.example.test\"\n",
    );
    let run = sandbox.certform_env(&["apply", "--auto-approve"], &[("STATE_TOKEN", TOKEN)]);
    let output = run.all();
    assert_ne!(run.code, 0, "{output}");
    assert!(
        output.contains("`[state] push_token` is only sent to an `https://` remote"),
        "{output}"
    );
    assert!(!output.contains(TOKEN), "{output}");
    assert!(
        !sandbox.path("state/certificates/web.toml").exists(),
        "nothing issued"
    );
}

/// A state repository started on its own (not cloned) next to a remote with history: nothing
/// is pushed over the remote's history; the local commits are kept on a branch.
#[test]
fn a_remote_with_unrelated_history_is_never_overwritten() {
    let sandbox = Sandbox::new();
    let bare = sandbox.path("remote.git");
    bare_repo(&sandbox, &bare);
    let seed = sandbox.path("seed");
    std::fs::create_dir_all(&seed).expect("seed");
    std::fs::write(seed.join("README"), "theirs\n").expect("README");
    git_at(&sandbox, &seed, &["init", "-q", "-b", "main"]);
    git_at(&sandbox, &seed, &["add", "README"]);
    git_at(&sandbox, &seed, &["commit", "-q", "-m", "theirs"]);
    git_at(
        &sandbox,
        &seed,
        &["push", "-q", &bare.display().to_string(), "main"],
    );
    let remote_before = git_at(&sandbox, &bare, &["rev-parse", "main"]);

    let keys = sandbox.path("keys");
    sandbox.write_config(&config(&keys, &bare.display().to_string(), "", &[WEB]));
    let run = sandbox.apply();
    let output = run.all();
    assert_ne!(run.code, 0, "{output}");
    assert!(
        output.contains("moved on and its history shares no commit with this one: not pushed"),
        "{output}"
    );
    assert_eq!(
        git_at(&sandbox, &bare, &["rev-parse", "main"]),
        remote_before
    );
    let branches = sandbox.git("state", &["branch", "--format=%(refname:short)"]);
    let kept = branches
        .lines()
        .find(|name| name.starts_with("certform/unpushed-"))
        .unwrap_or_else(|| panic!("no kept branch in:\n{branches}"));
    let files = sandbox.git("state", &["ls-tree", "-r", "--name-only", kept]);
    assert!(files.contains("certificates/web.toml"), "{files}");
}

/// Without `push_token`, git's own credential helper answers (here `store`, in the sandbox's
/// HOME): certform's push honours the user's git setup.
#[test]
fn without_a_token_the_users_credential_helper_answers() {
    let sandbox = Sandbox::new();
    let root = sandbox.path("server");
    bare_repo(&sandbox, &root.join("state.git"));
    let server = GitHttp::start(&root, "ci", TOKEN);
    std::fs::write(
        sandbox.home.join(".gitconfig"),
        "[credential]\n\thelper = store\n",
    )
    .expect("gitconfig");
    std::fs::write(
        sandbox.home.join(".git-credentials"),
        format!("http://ci:{TOKEN}@127.0.0.1:{}\n", server.port),
    )
    .expect("git-credentials");
    let keys = sandbox.path("keys");
    sandbox.write_config(&config(&keys, &server.url("state.git"), "", &[WEB]));
    let run = sandbox.apply().expect(0);
    assert!(run.stdout.contains("(pushed)"), "{}", run.all());
    assert!(!run.all().contains(TOKEN), "{}", run.all());
    assert_eq!(
        git_at(&sandbox, &root.join("state.git"), &["rev-parse", "main"]),
        sandbox.git("state", &["rev-parse", "HEAD"])
    );
}

/// Without `git` on PATH the push says what to install; the commit is kept for the next run.
#[test]
fn a_missing_git_is_named_with_an_install_hint() {
    let sandbox = Sandbox::new();
    let bare = sandbox.path("remote.git");
    bare_repo(&sandbox, &bare);
    let keys = sandbox.path("keys");
    sandbox.write_config(&config(&keys, &bare.display().to_string(), "", &[WEB]));
    let empty = sandbox.path("no-tools");
    std::fs::create_dir_all(&empty).expect("dir");
    let run = sandbox.certform_env(
        &["apply", "--auto-approve"],
        &[("PATH", &empty.display().to_string())],
    );
    let output = run.all();
    assert_ne!(run.code, 0, "{output}");
    assert!(
        output.contains("cannot run `git` to push the state repository"),
        "{output}"
    );
    assert!(output.contains("install git"), "{output}");
    assert!(sandbox.path("state/.git/certform-push-pending").exists());
    let next = sandbox.apply().expect(0);
    assert!(
        next.all()
            .contains("pushed the state commits an earlier run left unpushed"),
        "{}",
        next.all()
    );
}
