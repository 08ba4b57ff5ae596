//! Per-name server mapping through the CLI: named targets declare the names they `serves`,
//! HTTP validation files go to the `web_root` of every target serving each name, and
//! `deploy_to_serving` deploys there. End to end with Pebble's real HTTP-01 validation, against
//! web roots published by a small host-routing HTTP server in the test (one port, as a load
//! balancer in front of several servers); config errors with file and line; a run killed with
//! validation files in place leaves none after the next run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::acme::acme_account;
use crate::pebble::Pebble;
use crate::sandbox::Sandbox;

/// One request the router answered: the host asked for, the path, the status, and which
/// web roots held the file at that moment.
#[derive(Debug, Clone)]
struct Hit {
    host: String,
    path: String,
    status: u16,
    holders: Vec<String>,
}

/// A tiny HTTP/1.1 server on loopback that serves each host from one web root (as a load
/// balancer sends a name to one of its servers) and logs every request.
struct Router {
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Router {
    /// Serve on `listener` (Pebble's HTTP-01 port, already bound): `routes` maps a host to the name of the web root that answers it;
    /// `roots` names every web root (to log which ones hold a requested file).
    fn start(listener: TcpListener, routes: &[(&str, &str)], roots: &[(&str, PathBuf)]) -> Router {
        let routes: BTreeMap<String, String> = routes
            .iter()
            .map(|(host, root)| (host.to_string(), root.to_string()))
            .collect();
        let roots: BTreeMap<String, PathBuf> = roots
            .iter()
            .map(|(name, dir)| (name.to_string(), dir.clone()))
            .collect();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&hits);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (routes, roots, log) = (routes.clone(), roots.clone(), Arc::clone(&log));
                std::thread::spawn(move || answer(stream, &routes, &roots, &log));
            }
        });
        Router { hits }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits
            .lock()
            .map(|hits| hits.clone())
            .unwrap_or_default()
    }
}

fn answer(
    stream: std::net::TcpStream,
    routes: &BTreeMap<String, String>,
    roots: &BTreeMap<String, PathBuf>,
    log: &Mutex<Vec<Hit>>,
) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(stream) => stream,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let mut host = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("host") {
                let value = value.trim();
                host = value
                    .rsplit_once(':')
                    .map_or(value, |(host, _)| host)
                    .to_lowercase();
            }
        }
    }
    let relative = path.trim_start_matches('/');
    let holders: Vec<String> = roots
        .iter()
        .filter(|(_, dir)| !relative.contains("..") && dir.join(relative).is_file())
        .map(|(name, _)| name.clone())
        .collect();
    let body = routes
        .get(&host)
        .and_then(|root| roots.get(root))
        .filter(|_| !relative.contains(".."))
        .and_then(|dir| std::fs::read(dir.join(relative)).ok());
    let status = if body.is_some() { 200 } else { 404 };
    if let Ok(mut hits) = log.lock() {
        hits.push(Hit {
            host,
            path,
            status,
            holders,
        });
    }
    let body = body.unwrap_or_default();
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        if status == 200 { "OK" } else { "Not Found" },
        body.len()
    );
    let _ = stream.write_all(&body);
}

/// Files left under `root/.well-known/` (recursively).
fn left_in(root: &Path) -> Vec<PathBuf> {
    let mut left = Vec::new();
    let mut dirs = vec![root.join(".well-known")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                left.push(path);
            }
        }
    }
    left
}

/// Two named `files` targets, each with its own web root: `web1` serves `a.example.test` and
/// `www.example.test`, `web2` serves `*.b.example.test` and `www.example.test`.
const TARGETS: &str = r#"
[deploy.web1]
kind = "files"
dir = "out/web1/{certificate}"
web_root = "www1"
serves = ["a.example.test", "www.example.test"]

[deploy.web2]
kind = "files"
dir = "out/web2/{certificate}"
web_root = "www2"
serves = ["*.b.example.test", "www.example.test"]
"#;

#[test]
fn each_name_is_validated_through_the_web_roots_of_the_servers_that_serve_it() {
    let pebble = Pebble::start();
    let sandbox = Sandbox::new();
    let (www1, www2) = (sandbox.path("www1"), sandbox.path("www2"));
    // The balancer sends `www` to web2 only: its file must be on web1 as well all the same.
    let router = Router::start(
        pebble.take_http_listener(),
        &[
            ("a.example.test", "web1"),
            ("shop.b.example.test", "web2"),
            ("www.example.test", "web2"),
        ],
        &[("web1", www1.clone()), ("web2", www2.clone())],
    );
    sandbox.write_config(&format!(
        "{}{TARGETS}\n[certificate.shop]\ncommon_name = \"www.example.test\"\nsans = [\"a.example.test\", \"shop.b.example.test\"]\ndcv = {{ method = \"http\" }}\ndeploy_to_serving = true\n",
        acme_account(&pebble)
    ));
    let plan = sandbox.certform(&["plan"]).expect(0);
    for target in ["files:out/web1/shop", "files:out/web2/shop"] {
        assert!(plan.stdout.contains(target), "{}", plan.all());
    }

    let run = sandbox.apply().expect(0);
    let hits = router.hits();
    let holders = |host: &str| -> Vec<Vec<String>> {
        hits.iter()
            .filter(|hit| hit.host == host && hit.path.starts_with("/.well-known/acme-challenge/"))
            .map(|hit| {
                assert_eq!(hit.status, 200, "{hit:?}");
                hit.holders.clone()
            })
            .collect()
    };
    let web1 = vec!["web1".to_string()];
    let web2 = vec!["web2".to_string()];
    let both = vec!["web1".to_string(), "web2".to_string()];
    let (a, b, www) = (
        holders("a.example.test"),
        holders("shop.b.example.test"),
        holders("www.example.test"),
    );
    assert!(
        !a.is_empty() && a.iter().all(|h| *h == web1),
        "{hits:?}\n{}",
        run.all()
    );
    assert!(!b.is_empty() && b.iter().all(|h| *h == web2), "{hits:?}");
    assert!(
        !www.is_empty() && www.iter().all(|h| *h == both),
        "{hits:?}"
    );

    // Validated, issued, deployed to both serving targets; nothing left in the web roots.
    crate::acme::verify_with_pebble(&sandbox, &pebble, "out/web1/shop");
    crate::acme::verify_with_pebble(&sandbox, &pebble, "out/web2/shop");
    assert_eq!(left_in(&www1), Vec::<PathBuf>::new());
    assert_eq!(left_in(&www2), Vec::<PathBuf>::new());
    assert!(!sandbox
        .path("state/.git")
        .join("certform-dcv-files")
        .exists());
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn a_run_killed_with_validation_files_in_place_leaves_none_after_the_next_run() {
    let pebble = Pebble::start();
    let sandbox = Sandbox::new();
    let www1 = sandbox.path("www1");
    let _router = Router::start(
        pebble.take_http_listener(),
        &[("a.example.test", "web1")],
        &[("web1", www1.clone())],
    );
    sandbox.write_config(&format!(
        "{}{TARGETS}\n[certificate.a]\ncommon_name = \"a.example.test\"\ndcv = {{ method = \"http\" }}\ndeploy = [\"web1\"]\n",
        acme_account(&pebble)
    ));
    let killed = sandbox.certform_env(
        &["apply", "--auto-approve"],
        &[("CERTFORM_FAILPOINT", "after-dcv-published")],
    );
    assert_eq!(killed.code, 99, "{}", killed.all());
    let placed = left_in(&www1);
    assert_eq!(placed.len(), 1, "the token file is in place: {placed:?}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&placed[0]).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o644));
    }
    assert!(placed[0].starts_with(www1.join(".well-known/acme-challenge")));
    let record = sandbox.path("state/.git/certform-dcv-files");
    assert!(record.exists(), "the placed file is recorded");

    let run = sandbox.apply().expect(0);
    assert!(
        run.all()
            .contains("removed the validation file `.well-known/acme-challenge/"),
        "{}",
        run.all()
    );
    assert_eq!(left_in(&www1), Vec::<PathBuf>::new());
    assert!(!record.exists());
    // The order the killed run left is finished (validated again, files removed again) and the
    // certificate deployed by the run after.
    assert!(run.stdout.contains("wait a"), "{}", run.all());
    sandbox.apply().expect(0);
    assert_eq!(left_in(&www1), Vec::<PathBuf>::new());
    crate::acme::verify_with_pebble(&sandbox, &pebble, "out/web1/a");
}

/// `certform validate` of `config` after `TARGETS`: the diagnostics (exit 1).
fn invalid(certificate: &str) -> String {
    let sandbox = Sandbox::new();
    sandbox.write_config(&format!(
        "[state]\nrepo = \"state\"\n\n[ca.local]\nkind = \"local\"\n{TARGETS}\n[deploy.store]\nkind = \"jks\"\npath = \"out/{{certificate}}.jks\"\nstore_password = {{ env = \"JKS_PASS\" }}\n{certificate}"
    ));
    sandbox.certform(&["validate"]).expect(1).stderr
}

/// The line of `config` (1-based) holding `needle`, in `invalid`'s file.
fn line_of(certificate: &str, needle: &str) -> usize {
    let text = format!(
        "[state]\nrepo = \"state\"\n\n[ca.local]\nkind = \"local\"\n{TARGETS}\n[deploy.store]\nkind = \"jks\"\npath = \"out/{{certificate}}.jks\"\nstore_password = {{ env = \"JKS_PASS\" }}\n{certificate}"
    );
    text.lines()
        .position(|line| line.contains(needle))
        .map(|index| index + 1)
        .unwrap_or_else(|| panic!("`{needle}` not in the config"))
}

#[test]
fn mapping_errors_name_the_file_line_and_rule_before_anything_runs() {
    let cases: [(&str, &str, &str); 5] = [
        (
            "[certificate.x]\ncommon_name = \"nobody.example.test\"\ndcv = { method = \"http\" }\n",
            "dcv = ",
            "no named deploy target serves `nobody.example.test`",
        ),
        (
            "[certificate.x]\ncommon_name = \"a.example.test\"\ndcv = { method = \"http\", via = [\"web1\", \"web7\"] }\n",
            "dcv = ",
            "unknown deploy target `web7`",
        ),
        (
            "[certificate.x]\ncommon_name = \"a.example.test\"\ndcv = { method = \"http\", via = \"store\" }\n",
            "dcv = ",
            "`jks` targets serve no web root",
        ),
        (
            "[deploy.web3]\nkind = \"files\"\ndir = \"out/web3\"\nweb_root = \"www3\"\nserves = [\"not a name\"]\n",
            "not a name",
            "invalid DNS name `not a name`",
        ),
        (
            "[deploy.web4]\nkind = \"files\"\ndir = \"out/web4\"\nweb_root = \"state/www\"\n",
            "state/www",
            "is inside the state repository",
        ),
    ];
    for (certificate, needle, message) in cases {
        let stderr = invalid(certificate);
        let line = line_of(certificate, needle);
        let at = format!("certform.toml:{line}:");
        let found = stderr
            .lines()
            .any(|l| l.contains(message) && l.contains(&at));
        assert!(found, "expected `{message}` at {at}:\n{stderr}");
    }
}

#[test]
fn the_mapping_example_validates() {
    let sandbox = Sandbox::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/mapping.toml");
    std::fs::copy(&example, sandbox.dir.join("mapping.toml"))
        .expect("examples/deploy/mapping.toml");
    sandbox.certform(&["validate"]).expect(0);
}
