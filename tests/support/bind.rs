//! Test harness: a real BIND 9 `named` on a free loopback port, serving the zones a test asks
//! for, with TSIG keys allowed to update TXT records in them.
//!
//! Declared once in `tests/cli/main.rs`; tests use `crate::bind`. Each `Bind` is its own server
//! in its own temporary directory, so tests run in parallel; dropping it stops the server. A
//! missing BIND fails the test with the command that installs it: never a silent skip.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

/// The key every zone grants when its spec names no key.
pub const DEFAULT_KEY: &str = "certform-test";

const INSTALL_HINT: &str = "BIND 9 is not installed: apt-get install -y bind9 bind9-utils dnsutils";

/// How long `named` gets to answer its first query.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One zone the server is primary for.
#[derive(Debug, Clone)]
pub struct ZoneSpec {
    /// Zone apex, no trailing dot (`example.test`).
    pub name: String,
    /// Extra zone-file lines, relative to the apex (`www IN A 127.0.0.1`,
    /// `_acme-challenge IN CNAME x.validation.test.`, `txt IN TXT "v"`).
    pub records: Vec<String>,
    /// `(key name, algorithm)` of the keys allowed to update TXT in this zone; empty means
    /// [`DEFAULT_KEY`] with hmac-sha256.
    pub keys: Vec<(String, String)>,
    /// The keys may update CNAME records too (CNAME validation), not only TXT.
    pub cname: bool,
}

impl ZoneSpec {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.trim_end_matches('.').to_string(),
            records: Vec::new(),
            keys: Vec::new(),
            cname: false,
        }
    }

    /// Lets the zone's keys update CNAME records as well as TXT.
    pub fn allow_cname(mut self) -> Self {
        self.cname = true;
        self
    }

    /// Adds a zone-file line.
    pub fn record(mut self, line: &str) -> Self {
        self.records.push(line.to_string());
        self
    }

    /// Grants TXT updates to key `name` (hmac-sha256).
    pub fn key(self, name: &str) -> Self {
        self.key_with_algorithm(name, "hmac-sha256")
    }

    /// Grants TXT updates to key `name` with `algorithm` (`hmac-sha1`, `hmac-sha512`, ...).
    pub fn key_with_algorithm(mut self, name: &str, algorithm: &str) -> Self {
        self.keys.push((name.to_string(), algorithm.to_string()));
        self
    }

    fn granted_keys(&self) -> Vec<(String, String)> {
        if self.keys.is_empty() {
            vec![(DEFAULT_KEY.to_string(), "hmac-sha256".to_string())]
        } else {
            self.keys.clone()
        }
    }
}

/// A TSIG key the server knows.
#[derive(Debug, Clone)]
pub struct TestKey {
    pub name: String,
    pub algorithm: String,
    pub secret_b64: String,
    /// The key as `tsig-keygen` wrote it (`key "name" { algorithm ...; secret "..."; };`).
    pub file: PathBuf,
}

/// A running `named`. Dropping it kills the server.
pub struct Bind {
    pub addr: SocketAddr,
    /// [`DEFAULT_KEY`], always generated.
    pub key_name: String,
    pub secret_b64: String,
    /// Every key by name, the default one included.
    pub keys: BTreeMap<String, TestKey>,
    pub zones: Vec<ZoneSpec>,
    pub dir: TempDir,
    child: Child,
}

impl Bind {
    /// Starts `named` serving `zones` on a free port of 127.0.0.1 and waits until it answers.
    pub fn start(zones: &[ZoneSpec]) -> Bind {
        assert!(!zones.is_empty(), "Bind::start needs at least one zone");
        let named = tool("named");
        let mut dir = tempfile::Builder::new()
            .prefix("certform-bind-")
            .tempdir()
            .expect("create a temporary directory for named");
        // named drops root privileges to `nobody`: it must read and write the directory.
        let as_root = fs::metadata(dir.path()).expect("stat temp dir").uid() == 0;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod temp dir");

        let keys = generate_keys(dir.path(), zones);
        let mut includes = String::new();
        for key in keys.values() {
            writeln!(includes, "include \"{}\";", key.file.display()).unwrap();
        }
        let nonce = nonce();
        for zone in zones {
            write_file(&dir.path().join(zone_file(zone)), &zone_text(zone, &nonce));
        }

        let mut last_failure = String::new();
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.path().join("named.conf");
            write_file(&conf, &named_conf(dir.path(), port, &includes, zones));
            let log_path = dir.path().join("named.log");
            let log = fs::File::create(&log_path).expect("create named.log");
            let mut command = Command::new(&named);
            command.arg("-g").arg("-n").arg("1").arg("-c").arg(&conf);
            if as_root {
                command.arg("-u").arg("nobody");
            }
            let child = command
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|err| panic!("{INSTALL_HINT} (cannot run `named`: {err})"));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut bind = Bind {
                addr,
                key_name: DEFAULT_KEY.to_string(),
                secret_b64: keys[DEFAULT_KEY].secret_b64.clone(),
                keys: keys.clone(),
                zones: zones.to_vec(),
                dir,
                child,
            };
            match bind.wait_until_ready(&zones[0].name, &nonce) {
                Ok(()) => return bind,
                Err(Startup::PortTaken) => {
                    last_failure = bind.log();
                    dir = bind.stop_and_keep_dir();
                }
                Err(Startup::Failed(reason)) => {
                    panic!(
                        "named did not start: {reason}\n--- named.log ---\n{}",
                        bind.log()
                    )
                }
            }
        }
        panic!("named found no free port after 5 tries\n--- named.log ---\n{last_failure}");
    }

    /// The key called `name`.
    pub fn key(&self, name: &str) -> &TestKey {
        self.keys
            .get(name)
            .unwrap_or_else(|| panic!("no TSIG key `{name}` in this BIND"))
    }

    /// The base64 secret of key `name`.
    pub fn secret(&self, name: &str) -> &str {
        &self.key(name).secret_b64
    }

    /// `dig +short` for `name` `record_type` at this server, one line per record.
    pub fn dig(&self, name: &str, record_type: &str) -> Vec<String> {
        self.run_dig("+short", name, record_type)
    }

    /// The answer section as `dig` prints it (`name. TTL IN TYPE data`), one line per record.
    pub fn dig_answer(&self, name: &str, record_type: &str) -> Vec<String> {
        self.run_dig("+noall +answer", name, record_type)
    }

    fn run_dig(&self, format: &str, name: &str, record_type: &str) -> Vec<String> {
        let output = Command::new(tool("dig"))
            .args(format.split(' '))
            .args(["+norecurse", "+time=2", "+tries=1"])
            .arg(format!("@{}", self.addr.ip()))
            .args(["-p", &self.addr.port().to_string(), name, record_type])
            .output()
            .unwrap_or_else(|err| panic!("{INSTALL_HINT} (cannot run `dig`: {err})"));
        assert!(
            output.status.success(),
            "dig failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// What `named` printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }

    fn wait_until_ready(&mut self, zone: &str, nonce: &str) -> Result<(), Startup> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen_ours = false;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll named") {
                return Err(Startup::Failed(format!("named exited with {status}")));
            }
            let log = self.log();
            if log.contains("address in use") || log.contains("interface ignored") {
                return Err(Startup::PortTaken);
            }
            // named listens with SO_REUSEPORT: were another test's server on this port, the
            // kernel would spread queries over both. Several probes must all reach ours.
            let probes: Vec<Probe> = (0..4).map(|_| probe_soa(self.addr, zone, nonce)).collect();
            if probes.contains(&Probe::Other) {
                return Err(Startup::PortTaken);
            }
            if probes.iter().all(|probe| *probe == Probe::Ours) {
                return Ok(());
            }
            seen_ours |= probes.contains(&Probe::Ours);
            std::thread::sleep(Duration::from_millis(50));
        }
        if seen_ours {
            // Ours answered only some probes: something else listens on the port too.
            return Err(Startup::PortTaken);
        }
        Err(Startup::Failed(format!(
            "no SOA answer for `{zone}` at {} within {START_TIMEOUT:?}",
            self.addr
        )))
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stop_and_keep_dir(mut self) -> TempDir {
        self.stop();
        let placeholder = tempfile::tempdir().expect("create a temporary directory");
        std::mem::replace(&mut self.dir, placeholder)
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Startup {
    PortTaken,
    Failed(String),
}

/// The full path of a BIND tool (they live in `/usr/sbin`, often not on a user's `PATH`).
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{INSTALL_HINT} (`{name}` not found)"))
}

fn generate_keys(dir: &Path, zones: &[ZoneSpec]) -> BTreeMap<String, TestKey> {
    let mut wanted = BTreeMap::from([(DEFAULT_KEY.to_string(), "hmac-sha256".to_string())]);
    for zone in zones {
        for (name, algorithm) in zone.granted_keys() {
            let previous = wanted.insert(name.clone(), algorithm.clone());
            if let Some(previous) = previous {
                assert_eq!(
                    previous, algorithm,
                    "key `{name}` asked for with two algorithms ({previous}, {algorithm})"
                );
            }
        }
    }
    let keygen = tool("tsig-keygen");
    wanted
        .into_iter()
        .map(|(name, algorithm)| {
            let output = Command::new(&keygen)
                .args(["-a", &algorithm, &name])
                .output()
                .unwrap_or_else(|err| panic!("{INSTALL_HINT} (cannot run `tsig-keygen`: {err})"));
            assert!(
                output.status.success(),
                "tsig-keygen -a {algorithm} {name} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let text = String::from_utf8(output.stdout).expect("tsig-keygen prints text");
            let secret_b64 = text
                .split("secret \"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("tsig-keygen output has a secret")
                .to_string();
            let file = dir.join(format!("{name}.key"));
            write_file(&file, &text);
            let key = TestKey {
                name: name.clone(),
                algorithm,
                secret_b64,
                file,
            };
            (name, key)
        })
        .collect()
}

fn named_conf(dir: &Path, port: u16, includes: &str, zones: &[ZoneSpec]) -> String {
    let dir = dir.display();
    let mut conf = format!(
        "{includes}
options {{
    directory \"{dir}\";
    pid-file \"{dir}/named.pid\";
    session-keyfile \"{dir}/session.key\";
    managed-keys-directory \"{dir}\";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-query {{ any; }};
    notify no;
}};
controls {{ }};
"
    );
    for zone in zones {
        let grants: String = zone
            .granted_keys()
            .iter()
            .map(|(key, _)| {
                let types = if zone.cname { "TXT CNAME" } else { "TXT" };
                format!("grant {key} zonesub {types}; ")
            })
            .collect();
        writeln!(
            conf,
            "zone \"{}\" {{ type primary; file \"{}\"; update-policy {{ {grants}}}; }};",
            zone.name,
            zone_file(zone)
        )
        .unwrap();
    }
    conf
}

fn zone_file(zone: &ZoneSpec) -> String {
    format!("{}.zone", zone.name)
}

/// The zone file; the SOA's mailbox carries `nonce`, so the readiness probe knows it reached
/// this server and not another test's.
fn zone_text(zone: &ZoneSpec, nonce: &str) -> String {
    let apex = &zone.name;
    let mut text = format!(
        "$ORIGIN {apex}.
$TTL 60
@ IN SOA ns1.{apex}. {nonce}.{apex}. 1 3600 600 86400 60
@ IN NS ns1.{apex}.
ns1 IN A 127.0.0.1
"
    );
    for line in &zone.records {
        writeln!(text, "{line}").unwrap();
    }
    text
}

fn write_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o666))
        .unwrap_or_else(|err| panic!("chmod {}: {err}", path.display()));
}

/// A port free on 127.0.0.1 for both UDP and TCP right now.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
        let port = udp.local_addr().expect("local address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn nonce() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "h{}x{}x{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Our server answered (the SOA carries our nonce).
    Ours,
    /// Some other server answered on this port.
    Other,
    /// No answer (yet).
    Nothing,
}

/// Asks `addr` for the SOA of `zone`, from a fresh source port.
fn probe_soa(addr: SocketAddr, zone: &str, nonce: &str) -> Probe {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return Probe::Nothing;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let mut query = Vec::with_capacity(64);
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&[0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in zone.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 6, 0, 1]);
    if socket.send_to(&query, addr).is_err() {
        return Probe::Nothing;
    }
    let mut buffer = [0u8; 1500];
    let Ok((length, _)) = socket.recv_from(&mut buffer) else {
        return Probe::Nothing;
    };
    let answer = &buffer[..length];
    if length <= 12 || answer[..2] != id.to_be_bytes() {
        return Probe::Nothing;
    }
    if answer[3] & 0x0f != 0 {
        // Not loaded yet (SERVFAIL), or a server without this zone (REFUSED).
        return Probe::Nothing;
    }
    if answer
        .windows(nonce.len())
        .any(|window| window == nonce.as_bytes())
    {
        Probe::Ours
    } else {
        Probe::Other
    }
}
