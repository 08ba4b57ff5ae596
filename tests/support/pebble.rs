//! A real Pebble (Let's Encrypt's ACME test server) per test, on free loopback ports.
//!
//! Declared once in `tests/cli/main.rs`; tests use `crate::pebble`. Each `Pebble` gets its own
//! directory, a throwaway CA plus a `localhost`/`127.0.0.1`/`::1` certificate for its listener
//! (clients trust `ca_bundle()`), its own ports and, optionally, its own `pebble-challtestsrv`
//! as DNS server (every A query answers 127.0.0.1; TXT records through `set_txt`). Everything is
//! killed on drop. A missing `pebble` binary fails the test with an install hint: nothing is
//! skipped silently. Uses only std (threads, no async runtime), tempfile, rcgen and the
//! `openssl` CLI (HTTPS GETs to the management interface; `s_server` for the ARI stub).
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

const INSTALL_HINT: &str = "Pebble is not installed: apt-get install -y pebble";
/// How long Pebble and challtestsrv get to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Start attempts (a port picked as free can be taken before the server binds it).
const START_ATTEMPTS: usize = 3;

/// How to run Pebble.
#[derive(Debug, Clone)]
pub struct PebbleOptions {
    /// `certificateValidityPeriod` in seconds (Pebble's default: 5 years).
    pub validity_seconds: Option<u64>,
    /// `externalAccountBindingRequired`.
    pub eab_required: bool,
    /// `externalAccountMACKeys`: key id → base64url HMAC key.
    pub eab_keys: Vec<(String, String)>,
    /// `PEBBLE_VA_ALWAYS_VALID=1`: every challenge passes without a check.
    pub always_valid: bool,
    /// `PEBBLE_WFE_NONCEREJECT`; `None` keeps Pebble's default (5 % of nonces are rejected).
    pub nonce_reject: Option<u8>,
    /// `PEBBLE_AUTHZREUSE` (percent); `None` keeps Pebble's default (50).
    pub authz_reuse: Option<u8>,
    /// `PEBBLE_ALTERNATE_ROOTS`.
    pub alternate_roots: Option<u8>,
    /// Start `pebble-challtestsrv` and point Pebble's `-dnsserver` at it.
    pub dns: bool,
    /// Point Pebble's `-dnsserver` at this server instead (e.g. a test BIND); takes precedence
    /// over `dns`.
    pub dns_server: Option<std::net::SocketAddr>,
}

impl Default for PebbleOptions {
    fn default() -> Self {
        Self {
            validity_seconds: None,
            eab_required: false,
            eab_keys: Vec::new(),
            always_valid: false,
            nonce_reject: None,
            authz_reuse: None,
            alternate_roots: None,
            dns: true,
            dns_server: None,
        }
    }
}

/// A running Pebble; killed (with its challtestsrv) on drop.
pub struct Pebble {
    dir: tempfile::TempDir,
    child: Child,
    dns: Option<ChallTestSrv>,
    directory_url: String,
    management_url: String,
    ca_bundle: PathBuf,
    http_port: u16,
    /// Bound here so no other test takes the port before the responder does.
    http_listener: Mutex<Option<TcpListener>>,
    log: PathBuf,
}

impl Pebble {
    /// Start Pebble with default options (real validation through challtestsrv).
    pub fn start() -> Pebble {
        Self::start_with(PebbleOptions::default())
    }

    pub fn start_with(options: PebbleOptions) -> Pebble {
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&options) {
                Ok(pebble) => return pebble,
                Err(log) => last_log = log,
            }
        }
        panic!("pebble did not start after {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    fn try_start(options: &PebbleOptions) -> Result<Pebble, String> {
        let dir = tempfile::tempdir().expect("temp dir for pebble");
        let ca_bundle = write_listener_certificates(dir.path());

        let dns = if options.dns && options.dns_server.is_none() {
            Some(ChallTestSrv::start(dir.path())?)
        } else {
            None
        };

        let (listen, management, tls) = (free_port(), free_port(), free_port());
        let http_listener = TcpListener::bind("127.0.0.1:0").expect("bind the HTTP-01 port");
        let http_port = http_listener.local_addr().expect("local addr").port();

        let mut config = format!(
            "{{\n  \"pebble\": {{\n    \"listenAddress\": \"127.0.0.1:{listen}\",\n    \
             \"managementListenAddress\": \"127.0.0.1:{management}\",\n    \
             \"certificate\": \"{cert}\",\n    \"privateKey\": \"{key}\",\n    \
             \"httpPort\": {http_port},\n    \"tlsPort\": {tls},\n    \
             \"ocspResponderURL\": \"\",\n    \"externalAccountBindingRequired\": {eab}",
            cert = dir.path().join("listener-cert.pem").display(),
            key = dir.path().join("listener-key.pem").display(),
            eab = options.eab_required,
        );
        if let Some(seconds) = options.validity_seconds {
            config.push_str(&format!(",\n    \"certificateValidityPeriod\": {seconds}"));
        }
        if !options.eab_keys.is_empty() {
            let keys: Vec<String> = options
                .eab_keys
                .iter()
                .map(|(kid, key)| format!("\"{kid}\": \"{key}\""))
                .collect();
            config.push_str(&format!(
                ",\n    \"externalAccountMACKeys\": {{ {} }}",
                keys.join(", ")
            ));
        }
        config.push_str("\n  }\n}\n");
        let config_path = dir.path().join("pebble-config.json");
        fs::write(&config_path, config).expect("write pebble config");

        let log = dir.path().join("pebble.log");
        let log_file = fs::File::create(&log).expect("create pebble log");
        let mut command = Command::new("pebble");
        command
            .arg("-config")
            .arg(&config_path)
            .arg("-strict=false")
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .env_remove("PEBBLE_WFE_NONCEREJECT")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file);
        if let Some(server) = options.dns_server {
            command.arg("-dnsserver").arg(server.to_string());
        } else if let Some(dns) = &dns {
            command
                .arg("-dnsserver")
                .arg(format!("127.0.0.1:{}", dns.dns_port));
        }
        if options.always_valid {
            command.env("PEBBLE_VA_ALWAYS_VALID", "1");
        }
        if let Some(percent) = options.nonce_reject {
            command.env("PEBBLE_WFE_NONCEREJECT", percent.to_string());
        }
        if let Some(percent) = options.authz_reuse {
            command.env("PEBBLE_AUTHZREUSE", percent.to_string());
        }
        if let Some(roots) = options.alternate_roots {
            command.env("PEBBLE_ALTERNATE_ROOTS", roots.to_string());
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(error) => panic!("cannot start `pebble` ({error}); {INSTALL_HINT}"),
        };
        let mut pebble = Pebble {
            dir,
            child,
            dns,
            directory_url: format!("https://127.0.0.1:{listen}/dir"),
            management_url: format!("https://127.0.0.1:{management}"),
            ca_bundle,
            http_port,
            http_listener: Mutex::new(Some(http_listener)),
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(_)) = pebble.child.try_wait() {
                return Err(pebble.log_text());
            }
            if port_open(listen) && port_open(management) {
                // Listening; make sure it answers the directory over TLS we trust.
                match pebble.try_https_get(&pebble.directory_url) {
                    Ok((200, body)) if body.contains("newOrder") => return Ok(pebble),
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                return Err(format!("timed out\n{}", pebble.log_text()));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `https://127.0.0.1:PORT/dir`.
    pub fn directory_url(&self) -> &str {
        &self.directory_url
    }

    /// `https://127.0.0.1:PORT` of the management interface.
    pub fn management_url(&self) -> &str {
        &self.management_url
    }

    /// PEM of the throwaway CA that signed Pebble's listener certificate.
    pub fn ca_bundle(&self) -> &Path {
        &self.ca_bundle
    }

    /// The port Pebble connects to for HTTP-01 (on 127.0.0.1).
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The already-bound HTTP-01 listener (once).
    pub fn take_http_listener(&self) -> TcpListener {
        self.http_listener
            .lock()
            .unwrap()
            .take()
            .expect("HTTP-01 listener already taken")
    }

    /// Serve HTTP-01 answers on Pebble's `httpPort`.
    pub fn start_http_responder(&self) -> HttpResponder {
        HttpResponder::start(self.take_http_listener())
    }

    /// Pebble's output so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A scratch directory that lives as long as this Pebble.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Issuing root and intermediate, PEM (new at every Pebble start).
    pub fn issuing_roots(&self) -> (String, String) {
        let root = self.management_get("/roots/0");
        let intermediate = self.management_get("/intermediates/0");
        (root, intermediate)
    }

    /// The JSON of `/cert-status-by-serial/HEX` (`"Status": "Valid" | "Revoked"`).
    pub fn cert_status(&self, serial_hex: &str) -> String {
        self.management_get(&format!("/cert-status-by-serial/{serial_hex}"))
    }

    /// GET a management path; panics unless it answers 200.
    pub fn management_get(&self, path: &str) -> String {
        let url = format!("{}{path}", self.management_url);
        let (status, body) = self.https_get(&url);
        assert_eq!(status, 200, "GET {url}: {body}");
        body
    }

    /// GET an HTTPS URL on this Pebble, trusting only its listener CA: status and body.
    pub fn https_get(&self, url: &str) -> (u16, String) {
        self.try_https_get(url)
            .unwrap_or_else(|error| panic!("GET {url}: {error}"))
    }

    fn try_https_get(&self, url: &str) -> Result<(u16, String), String> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("not https: {url}"))?;
        let (authority, path) = match rest.find('/') {
            Some(index) => (&rest[..index], &rest[index..]),
            None => (rest, "/"),
        };
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
            .arg(authority)
            .arg("-CAfile")
            .arg(&self.ca_bundle)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| {
                format!("cannot run `openssl` ({error}): apt-get install -y openssl")
            })?;
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        child
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(request.as_bytes())
            .map_err(|error| error.to_string())?;
        let output = child
            .wait_with_output()
            .map_err(|error| error.to_string())?;
        parse_http_response(&output.stdout).ok_or_else(|| {
            format!(
                "no HTTP response: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }

    /// Publish TXT `value` at `host` (e.g. `_acme-challenge.example.test`) in challtestsrv.
    pub fn set_txt(&self, host: &str, value: &str) {
        let dns = self
            .dns
            .as_ref()
            .expect("pebble started without challtestsrv");
        let host = fqdn(host);
        dns.post(
            "/set-txt",
            &format!("{{\"host\":\"{host}\",\"value\":\"{value}\"}}"),
        );
    }

    /// Remove the TXT records of `host`.
    pub fn clear_txt(&self, host: &str) {
        let dns = self
            .dns
            .as_ref()
            .expect("pebble started without challtestsrv");
        let host = fqdn(host);
        dns.post("/clear-txt", &format!("{{\"host\":\"{host}\"}}"));
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pebble-challtestsrv` as a DNS server: A 127.0.0.1 for every name, TXT on request.
struct ChallTestSrv {
    child: Child,
    dns_port: u16,
    management_port: u16,
}

impl ChallTestSrv {
    fn start(dir: &Path) -> Result<ChallTestSrv, String> {
        let dns_port = free_udp_and_tcp_port();
        let management_port = free_port();
        let log = dir.join("challtestsrv.log");
        let log_file = fs::File::create(&log).expect("create challtestsrv log");
        let child = Command::new("pebble-challtestsrv")
            .arg("-management")
            .arg(format!("127.0.0.1:{management_port}"))
            .arg("-dns01")
            .arg(format!("127.0.0.1:{dns_port}"))
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) if error.kind() == io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(error) => panic!("cannot start `pebble-challtestsrv` ({error}); {INSTALL_HINT}"),
        };
        let mut server = ChallTestSrv {
            child,
            dns_port,
            management_port,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !port_open(management_port) {
            if let Ok(Some(_)) = server.child.try_wait() {
                return Err(fs::read_to_string(&log).unwrap_or_default());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "challtestsrv timed out\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            thread::sleep(Duration::from_millis(25));
        }
        Ok(server)
    }

    fn post(&self, path: &str, body: &str) {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.management_port)).expect("connect challtestsrv");
        let request = format!(
            "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("write request");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read response");
        let (status, text) = parse_http_response(&response).expect("HTTP response");
        assert_eq!(status, 200, "POST {path} {body}: {text}");
    }
}

impl Drop for ChallTestSrv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stub ACME directory with ARI (`renewalInfo`), for what Debian's Pebble lacks: `openssl
/// s_server -HTTP` serving files that hold whole HTTP responses. Only `GET`s work (directory
/// and renewal information); killed on drop.
pub struct AriStub {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    ca_bundle: PathBuf,
}

impl AriStub {
    pub fn start() -> AriStub {
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("temp dir for the ARI stub");
            let ca_bundle = write_listener_certificates(dir.path());
            let www = dir.path().join("www");
            fs::create_dir_all(www.join("ari")).expect("create stub dirs");
            let port = free_port();
            let base = format!("https://127.0.0.1:{port}");
            let directory = format!(
                "{{\"newNonce\":\"{base}/nonce\",\"newAccount\":\"{base}/account\",\
                 \"newOrder\":\"{base}/order\",\"revokeCert\":\"{base}/revoke\",\
                 \"renewalInfo\":\"{base}/ari\"}}"
            );
            fs::write(www.join("dir"), http_response(200, &[], &directory))
                .expect("write the stub directory");
            let log = dir.path().join("s_server.log");
            let log_file = fs::File::create(&log).expect("create stub log");
            let child = Command::new("openssl")
                .args(["s_server", "-quiet", "-HTTP", "-accept"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(dir.path().join("listener-cert.pem"))
                .arg("-key")
                .arg(dir.path().join("listener-key.pem"))
                .current_dir(&www)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("clone log handle"))
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|error| {
                    panic!("cannot run `openssl` ({error}): apt-get install -y openssl")
                });
            let mut stub = AriStub {
                dir,
                child,
                port,
                ca_bundle,
            };
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if port_open(port) {
                    return stub;
                }
                if let Ok(Some(_)) = stub.child.try_wait() {
                    last_log = fs::read_to_string(&log).unwrap_or_default();
                    break;
                }
                if Instant::now() > deadline {
                    last_log = "timed out".to_string();
                    break;
                }
                thread::sleep(Duration::from_millis(25));
            }
        }
        panic!("the ARI stub did not start: {last_log}");
    }

    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The account URL to put into hand-written credentials.
    pub fn account_url(&self) -> String {
        format!("https://127.0.0.1:{}/account/1", self.port)
    }

    pub fn ca_bundle(&self) -> &Path {
        &self.ca_bundle
    }

    /// Answer `GET {renewalInfo}/{cert_id}` with this window (RFC 3339 times).
    pub fn set_window(&self, cert_id: &str, start: &str, end: &str, retry_after: Option<&str>) {
        let body = format!(
            "{{\"suggestedWindow\":{{\"start\":\"{start}\",\"end\":\"{end}\"}},\
             \"explanationURL\":\"https://example.com/ari\"}}"
        );
        let headers: Vec<(&str, &str)> = retry_after
            .map(|value| vec![("Retry-After", value)])
            .unwrap_or_default();
        self.set_raw(cert_id, &http_response(200, &headers, &body));
    }

    /// Answer `GET {renewalInfo}/{cert_id}` with a problem document and `status`.
    pub fn set_problem(&self, cert_id: &str, status: u16, kind: &str, detail: &str) {
        let body = format!(
            "{{\"type\":\"urn:ietf:params:acme:error:{kind}\",\"detail\":\"{detail}\",\"status\":{status}}}"
        );
        self.set_raw(
            cert_id,
            &http_response(status, &[("Retry-After", "60")], &body),
        );
    }

    fn set_raw(&self, cert_id: &str, response: &str) {
        let path = self.dir.path().join("www/ari").join(cert_id);
        fs::write(path, response).expect("write stub answer");
    }
}

impl Drop for AriStub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_response(status: u16, headers: &[(&str, &str)], body: &str) -> String {
    let mut response = format!(
        "HTTP/1.0 {status} Stub\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(body);
    response
}

/// A tiny HTTP server for HTTP-01 answers: `GET path` → the content set for it, else 404.
pub struct HttpResponder {
    answers: Arc<Mutex<HashMap<String, String>>>,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    address: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl HttpResponder {
    pub fn start(listener: TcpListener) -> HttpResponder {
        let address = listener.local_addr().expect("responder address");
        let answers: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let answers = Arc::clone(&answers);
            let requests = Arc::clone(&requests);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let answers = Arc::clone(&answers);
                    let requests = Arc::clone(&requests);
                    thread::spawn(move || serve(stream, &answers, &requests));
                }
            })
        };
        HttpResponder {
            answers,
            requests,
            stop,
            address,
            thread: Some(thread),
        }
    }

    /// Serve `content` at `path` (`/.well-known/acme-challenge/TOKEN`).
    pub fn set(&self, path: &str, content: &str) {
        self.answers
            .lock()
            .unwrap()
            .insert(path.to_string(), content.to_string());
    }

    /// Paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for HttpResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    answers: &Mutex<HashMap<String, String>>,
    requests: &Mutex<Vec<String>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(clone) => clone,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    requests.lock().unwrap().push(path.clone());
    let answer = answers.lock().unwrap().get(&path).cloned();
    let response = match answer {
        Some(body) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_string(),
    };
    let mut stream = stream;
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

/// Write `ca.pem` (the bundle clients trust), `listener-cert.pem` and `listener-key.pem`.
fn write_listener_certificates(dir: &Path) -> PathBuf {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "certform test listener CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().expect("listener key");
    let mut params =
        CertificateParams::new(vec!["localhost".to_string()]).expect("listener params");
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.subject_alt_names.push(SanType::IpAddress(
        "127.0.0.1".parse().expect("loopback v4"),
    ));
    params
        .subject_alt_names
        .push(SanType::IpAddress("::1".parse().expect("loopback v6")));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let leaf = params
        .signed_by(&leaf_key, &issuer)
        .expect("listener certificate");

    let bundle = dir.join("ca.pem");
    fs::write(&bundle, ca_cert.pem()).expect("write ca.pem");
    fs::write(dir.join("listener-cert.pem"), leaf.pem()).expect("write listener cert");
    fs::write(dir.join("listener-key.pem"), leaf_key.serialize_pem()).expect("write key");
    bundle
}

/// Status and body of a raw HTTP/1.x response.
fn parse_http_response(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, body.to_string()))
}

fn fqdn(host: &str) -> String {
    if host.ends_with('.') {
        host.to_string()
    } else {
        format!("{host}.")
    }
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// A TCP port nobody listens on right now (the OS hands out ephemeral ports in turn, so a
/// parallel test is unlikely to get the same one before the server binds it; start retries).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// A port free for both UDP and TCP (DNS listens on both).
fn free_udp_and_tcp_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        let port = udp.local_addr().expect("UDP address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
