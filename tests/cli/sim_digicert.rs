//! The DigiCert CertCentral simulator over real HTTP: every request goes through a small
//! HTTP/1.1 client on a loopback socket, certificates are checked with `openssl`, DNS DCV runs
//! against a real BIND 9 (see `tests/support/bind.rs`), HTTP DCV against a loopback web server.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certform::config::model::{Rfc2136Settings, SecretRef, TsigAlgorithm, TsigKey};
use certform::dns::rfc2136::Rfc2136;
use certform::dns::DnsProvider;
use certform::keys::{inspect_chain, PrivateKey};
use certform::sim::digicert::{self, RunningSim, Seed};
use certform::spec::KeySpec;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::bind::{Bind, ZoneSpec, DEFAULT_KEY};

const ADMIN: &str = "sim-admin-key";
const ORDERS: &str = "sim-orders-key";
const VIEW_ONLY: &str = "sim-view-only-key";
const ORG: u64 = 112_233;

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client.

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The first error code of a DigiCert error body.
    fn code(&self) -> String {
        let body = self.json();
        let errors = body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors array: {body}"));
        assert!(!errors.is_empty(), "{body}");
        assert!(errors[0]["message"].is_string(), "{body}");
        errors[0]["code"].as_str().unwrap().to_string()
    }
}

/// One request on a fresh connection; `Err` when the server closed without answering.
async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Resp, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(body).await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .map_err(|e| e.to_string())?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no response ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or("bad status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap().trim(), 16)
                .unwrap();
            rest = &rest[end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// Talks to one simulator with one key.
#[derive(Clone)]
struct Client {
    addr: SocketAddr,
    key: Option<String>,
}

impl Client {
    fn new(sim: &RunningSim, key: &str) -> Self {
        Self {
            addr: sim.local_addr(),
            key: Some(key.to_string()),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        extra: &[(&str, &str)],
    ) -> Resp {
        let mut headers: Vec<(&str, &str)> = vec![("Content-Type", "application/json")];
        if let Some(key) = &self.key {
            headers.push(("X-DC-DEVKEY", key));
        }
        headers.extend_from_slice(extra);
        let full = format!("/services/v2/{}", path.trim_start_matches('/'));
        raw_request(self.addr, method, &full, &headers, body.unwrap_or_default())
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None, &[]).await
    }

    async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, Some(body.to_string().as_bytes()), &[])
            .await
    }

    async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send("PUT", path, Some(body.to_string().as_bytes()), &[])
            .await
    }
}

async fn admin(sim: &RunningSim, method: &str, path: &str, body: &Value) -> Resp {
    raw_request(
        sim.local_addr(),
        method,
        &format!("/_sim/{path}"),
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

/// A seed: the defaults plus `extra` (top-level keys replaced), fixed random seed.
fn seed(extra: Value) -> Seed {
    let mut base = json!({
        "random_seed": 42,
        "domains": [
            {"name": "example.com", "organization_id": ORG, "dcv_status": "complete"},
        ],
    });
    for (key, value) in extra.as_object().unwrap() {
        base[key] = value.clone();
    }
    Seed::from_json(&base.to_string()).unwrap()
}

async fn start(seed: Seed) -> RunningSim {
    digicert::start(seed, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A new P-256 key and its CSR (PEM) for `common_name` and `sans`.
fn csr(common_name: &str, sans: &[&str]) -> (PrivateKey, String) {
    let key = PrivateKey::generate(KeySpec::Ecdsa(256)).unwrap();
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let der = key.csr_der(common_name, &sans).unwrap();
    let pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    (key, pem)
}

/// An order body for an OV product.
fn order(common_name: &str, sans: &[&str], csr: &str, extra: Value) -> Value {
    let mut body = json!({
        "certificate": {
            "common_name": common_name,
            "dns_names": sans,
            "csr": csr,
            "signature_hash": "sha256",
            "server_platform": {"id": -1},
        },
        "organization": {"id": ORG},
        "validity_days": 199,
        "payment_method": "balance",
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

/// Place an order for names under the pre-validated `example.com`: issued at once.
async fn issued_order(client: &Client, common_name: &str) -> (u64, u64, PrivateKey) {
    let (key, csr_pem) = csr(common_name, &[common_name]);
    let resp = client
        .post(
            "order/certificate/ssl_basic",
            &order(common_name, &[], &csr_pem, json!({})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let body = resp.json();
    (
        body["id"].as_u64().unwrap(),
        body["certificate_id"].as_u64().unwrap(),
        key,
    )
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run `openssl` ({error}); install it with `apt-get install openssl`")
        })
}

/// `openssl verify` of `leaf` with `intermediates` against `root`.
fn verify(dir: &Path, root: &str, intermediates: &str, leaf: &str) -> String {
    std::fs::write(dir.join("root.pem"), root).unwrap();
    std::fs::write(dir.join("ica.pem"), intermediates).unwrap();
    std::fs::write(dir.join("leaf.pem"), leaf).unwrap();
    let output = openssl(&[
        "verify",
        "-CAfile",
        dir.join("root.pem").to_str().unwrap(),
        "-untrusted",
        dir.join("ica.pem").to_str().unwrap(),
        dir.join("leaf.pem").to_str().unwrap(),
    ]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn status_of(client: &Client, order_id: u64) -> String {
    let resp = client.get(&format!("order/certificate/{order_id}")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["status"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread")]
async fn pre_validated_domain_issues_at_once_with_a_chain_openssl_accepts() {
    let sim = start(seed(json!({}))).await;
    let client = Client::new(&sim, ADMIN);
    let (key, csr_pem) = csr(
        "shop.example.com",
        &["shop.example.com", "www.shop.example.com"],
    );
    let resp = client
        .post(
            "order/certificate/ssl_basic",
            &order(
                "shop.example.com",
                &["www.shop.example.com"],
                &csr_pem,
                json!({"alternative_order_id": "cf-shop-1"}),
            ),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let body = resp.json();
    let order_id = body["id"].as_u64().unwrap();
    let certificate_id = body["certificate_id"].as_u64().unwrap();
    assert_eq!(body["requests"][0]["status"], "approved");
    assert!(body.get("dcv_random_value").is_none(), "{body}");
    let chain = body["certificate_chain"].as_array().unwrap();
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[0]["subject_common_name"], "shop.example.com");
    let leaf = chain[0]["pem"].as_str().unwrap();
    assert!(leaf.contains("\r\n"), "PEMs use CRLF");

    let dir = tempfile::tempdir().unwrap();
    let root = sim.root_pem();
    let served_root = admin(&sim, "GET", "root.pem", &json!({})).await.text();
    assert_eq!(served_root, root);
    let verdict = verify(dir.path(), &root, chain[1]["pem"].as_str().unwrap(), leaf);
    assert!(verdict.contains(": OK"), "{verdict}");

    // The certificate holds the CSR's key and the requested names.
    let (info, _) = inspect_chain(leaf).unwrap();
    assert_eq!(info.spki_sha256, key.spki_sha256());
    assert_eq!(info.sans, vec!["shop.example.com", "www.shop.example.com"]);
    assert_eq!(info.common_name.as_deref(), Some("shop.example.com"));

    // pem_all: leaf, intermediate, root.
    let resp = client
        .get(&format!(
            "certificate/{certificate_id}/download/format/pem_all"
        ))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/x-pem-file"));
    let (_, pems) = inspect_chain(&resp.text()).unwrap();
    assert_eq!(pems.len(), 3);
    let verdict = verify(dir.path(), &pems[2], &pems[1], &pems[0]);
    assert!(verdict.contains(": OK"), "{verdict}");
    let noroot = client
        .get(&format!(
            "certificate/{certificate_id}/download/format/pem_noroot"
        ))
        .await;
    assert_eq!(inspect_chain(&noroot.text()).unwrap().1.len(), 2);
    let p7b = client
        .get(&format!("certificate/{certificate_id}/download/format/p7b"))
        .await;
    assert_eq!(p7b.status, 200);
    std::fs::write(dir.path().join("bundle.p7b"), &p7b.body).unwrap();
    let printed = openssl(&[
        "pkcs7",
        "-print_certs",
        "-in",
        dir.path().join("bundle.p7b").to_str().unwrap(),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout)
            .matches("BEGIN CERTIFICATE")
            .count(),
        3
    );
    let zip = client
        .get(&format!(
            "certificate/{certificate_id}/download/format/default"
        ))
        .await;
    assert_eq!(zip.header("content-type"), Some("application/zip"));
    assert_eq!(&zip.body[..4], b"PK\x03\x04");
    let bad = client
        .get(&format!(
            "certificate/{certificate_id}/download/format/nonsense"
        ))
        .await;
    assert_eq!(bad.status, 400);

    // Order info, also by serial number.
    let info_resp = client.get(&format!("order/certificate/{order_id}")).await;
    let detail = info_resp.json();
    assert_eq!(detail["status"], "issued");
    assert_eq!(detail["certificate"]["id"], certificate_id);
    assert_eq!(
        detail["certificate"]["dns_names"],
        json!(["shop.example.com", "www.shop.example.com"])
    );
    assert_eq!(detail["product"]["name_id"], "ssl_basic");
    assert_eq!(detail["organization"]["id"], ORG);
    let serial = detail["certificate"]["serial_number"].as_str().unwrap();
    assert_eq!(serial.to_lowercase(), info.serial.as_str());
    let by_serial = client
        .get(&format!("order/certificate/{serial}"))
        .await
        .json();
    assert_eq!(by_serial["id"], order_id);
    let chain_resp = client
        .get(&format!("certificate/{certificate_id}/chain"))
        .await
        .json();
    assert_eq!(chain_resp["intermediates"].as_array().unwrap().len(), 2);

    assert_eq!(sim.stats().orders_by_common_name["shop.example.com"], 1);
    sim.shutdown().await.unwrap();
}

fn rfc2136(bind: &Bind) -> Rfc2136 {
    let settings = Rfc2136Settings {
        server: bind.addr.to_string(),
        key: Some(TsigKey {
            key_name: DEFAULT_KEY.to_string(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: SecretRef::Env(DEFAULT_KEY.to_string()),
        }),
        zones: Vec::new(),
    };
    let secrets = |secret: &SecretRef| match secret {
        SecretRef::Env(name) => Ok(bind.secret(name).as_bytes().to_vec()),
        SecretRef::File(path) => std::fs::read(path).map_err(|e| e.to_string()),
    };
    Rfc2136::new("bind", &settings, &secrets)
        .unwrap()
        .with_timeout(Duration::from_secs(2))
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_order_issues_once_the_dns_txt_record_exists() {
    let bind = Bind::start(&[ZoneSpec::new("dns.test")]);
    let sim = start(seed(
        json!({"dcv": {"dns_server": bind.addr.to_string(), "dns_timeout_ms": 2000}}),
    ))
    .await;
    let client = Client::new(&sim, ADMIN);
    let (_, csr_pem) = csr("app.dns.test", &["app.dns.test"]);
    let resp = client
        .post(
            "order/certificate/ssl_basic",
            &order(
                "app.dns.test",
                &[],
                &csr_pem,
                json!({"dcv_method": "dns-txt-token"}),
            ),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let body = resp.json();
    let order_id = body["id"].as_u64().unwrap();
    assert_eq!(body["requests"][0]["status"], "pending");
    assert!(body.get("certificate_chain").is_none());
    let token = body["dcv_random_value"].as_str().unwrap().to_string();
    assert_eq!(body["domains"][0]["dns_name"], "app.dns.test");
    assert_eq!(body["domains"][0]["dcv_token"]["token"], token);
    let domain_id = body["domains"][0]["id"].as_u64().unwrap();
    assert_eq!(status_of(&client, order_id).await, "pending");
    let caa = client
        .get(&format!(
            "order/certificate/{order_id}?include_caa_status=true"
        ))
        .await
        .json();
    assert!(
        caa["caa_status_message"]["app.dns.test"].is_string(),
        "{caa}"
    );

    // No record yet: 400 invalid_dns_txt, still pending.
    let check = client
        .put(
            &format!("order/certificate/{order_id}/check-dcv"),
            &json!({}),
        )
        .await;
    assert_eq!(check.status, 400, "{}", check.text());
    assert_eq!(check.code(), "invalid_dns_txt");
    let domain = client
        .get(&format!(
            "domain/{domain_id}?include_dcv=true&include_validation=true"
        ))
        .await
        .json();
    assert_eq!(domain["dcv_token"]["token"], token);
    assert_eq!(domain["is_pending_validation"], true);

    // Publish the token in the real BIND, then check again.
    rfc2136(&bind)
        .add_txt("app.dns.test", &token)
        .await
        .unwrap();
    let check = client
        .put(
            &format!("order/certificate/{order_id}/check-dcv"),
            &json!({}),
        )
        .await;
    assert_eq!(check.status, 200, "{}", check.text());
    let checked = check.json();
    assert_eq!(checked["dcv_status"], "valid");
    assert_eq!(checked["order_status"], "issued");
    assert_eq!(
        checked["dns_name_validations"][0]["dns_name"],
        "app.dns.test"
    );
    assert_eq!(status_of(&client, order_id).await, "issued");

    // The domain is validated now: a second order for it issues at once.
    let domains = client.get("domain?include_validation=true").await.json();
    let validated = domains["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "app.dns.test")
        .unwrap()
        .clone();
    // The documented listing: `status` only, no `dcv_status`.
    assert_eq!(validated["validations"][0]["status"], "active");
    assert!(validated["validations"][0].get("dcv_status").is_none());
    let (_, csr_pem) = csr("app.dns.test", &["app.dns.test"]);
    let again = client
        .post(
            "order/certificate/ssl_basic",
            &order(
                "app.dns.test",
                &[],
                &csr_pem,
                json!({"dcv_method": "dns-txt-token"}),
            ),
        )
        .await
        .json();
    assert!(again["certificate_chain"].is_array(), "{again}");
    sim.shutdown().await.unwrap();
}

/// A web server answering `/.well-known/pki-validation/fileauth.txt` with `content` (404
/// while it is `None`); returns its address and the Host headers it saw.
async fn token_server(
    content: Arc<Mutex<Option<String>>>,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hosts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&hosts);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let content = Arc::clone(&content);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                let mut read = 0;
                while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let request = String::from_utf8_lossy(&buffer[..read]).into_owned();
                if let Some(host) = request.lines().find_map(|line| line.strip_prefix("Host: ")) {
                    seen.lock().unwrap().push(host.trim().to_string());
                }
                let wanted = request.starts_with("GET /.well-known/pki-validation/fileauth.txt ");
                let body = content.lock().unwrap().clone();
                let response = match (wanted, body) {
                    (true, Some(body)) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    ),
                    _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
                };
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, hosts)
}

#[tokio::test(flavor = "multi_thread")]
async fn http_token_is_fetched_from_the_web_server() {
    let content = Arc::new(Mutex::new(None));
    let (web, hosts) = token_server(Arc::clone(&content)).await;
    let sim = start(seed(json!({"dcv": {
        "http_port": web.port(),
        "http_hosts": {"web.http.test": "127.0.0.1"},
    }})))
    .await;
    let client = Client::new(&sim, ORDERS);
    let (_, csr_pem) = csr("web.http.test", &["web.http.test"]);
    let body = client
        .post(
            "order/certificate/ssl_basic",
            &order(
                "web.http.test",
                &[],
                &csr_pem,
                json!({"dcv_method": "http-token"}),
            ),
        )
        .await
        .json();
    let order_id = body["id"].as_u64().unwrap();
    let token = body["dcv_random_value"].as_str().unwrap().to_string();

    let check = client
        .put(
            &format!("order/certificate/{order_id}/check-dcv"),
            &json!({}),
        )
        .await;
    assert_eq!(check.status, 400);
    assert_eq!(check.code(), "file_random_value_not_found");
    assert_eq!(status_of(&client, order_id).await, "pending");

    *content.lock().unwrap() = Some(format!("{token}\n"));
    let check = client
        .put(
            &format!("order/certificate/{order_id}/check-dcv"),
            &json!({}),
        )
        .await;
    assert_eq!(check.status, 200, "{}", check.text());
    assert_eq!(check.json()["order_status"], "issued");
    assert!(hosts
        .lock()
        .unwrap()
        .contains(&format!("web.http.test:{}", web.port())));
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn email_dcv_is_approved_through_the_admin_endpoint() {
    let sim = start(seed(json!({}))).await;
    let client = Client::new(&sim, ADMIN);
    let (_, csr_pem) = csr("mail.email.test", &["mail.email.test"]);
    let body = client
        .post(
            "order/certificate/ssl_dv_geotrust",
            &json!({
                "certificate": {"common_name": "mail.email.test", "csr": csr_pem},
                "validity_years": 1,
                "dcv_method": "email",
            }),
        )
        .await
        .json();
    let order_id = body["id"].as_u64().unwrap();
    assert!(body.get("dcv_random_value").is_none(), "{body}");
    assert_eq!(status_of(&client, order_id).await, "pending");

    let check = client
        .put(
            &format!("order/certificate/{order_id}/check-dcv"),
            &json!({}),
        )
        .await;
    assert_eq!(check.status, 400);
    assert_eq!(check.code(), "invalid_dns_method");

    let approved = admin(
        &sim,
        "POST",
        &format!("approve-email/{order_id}"),
        &json!({}),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert_eq!(
        approved.json()["approved_names"],
        json!(["mail.email.test"])
    );
    let detail = client
        .get(&format!("order/certificate/{order_id}"))
        .await
        .json();
    assert_eq!(detail["status"], "issued");
    assert_eq!(detail["product"]["validation_type"], "dv");
    let certificate_id = detail["certificate"]["id"].as_u64().unwrap();
    let pem_all = client
        .get(&format!(
            "certificate/{certificate_id}/download/format/pem_all"
        ))
        .await;
    assert_eq!(inspect_chain(&pem_all.text()).unwrap().1.len(), 3);

    let unknown = admin(&sim, "POST", "approve-email/999", &json!({})).await;
    assert_eq!(unknown.status, 404);
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn list_filters_and_pages_of_at_most_1000() {
    let sim = start(seed(json!({
        "orders": [
            {"count": 1150, "common_name": "host{n}.bulk.test", "alternative_order_id": "bulk-{n}"},
            {"count": 40, "common_name": "wait{n}.bulk.test", "status": "pending"},
            {"count": 9, "common_name": "old{n}.bulk.test", "status": "expired", "age_days": 300},
            {"count": 1, "common_name": "gone.bulk.test", "status": "revoked"},
        ],
    })))
    .await;
    let client = Client::new(&sim, VIEW_ONLY);
    let first = client.get("order/certificate?limit=1000").await.json();
    assert_eq!(first["page"]["total"], 1200);
    assert_eq!(first["page"]["limit"], 1000);
    assert_eq!(first["orders"].as_array().unwrap().len(), 1000);
    let second = client
        .get("order/certificate?limit=1000&offset=1000")
        .await
        .json();
    assert_eq!(second["orders"].as_array().unwrap().len(), 200);
    assert_eq!(second["page"]["offset"], 1000);
    let all_ids: std::collections::BTreeSet<u64> = first["orders"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["orders"].as_array().unwrap())
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert_eq!(all_ids.len(), 1200, "pages overlap");

    let capped = client.get("order/certificate?limit=5000").await.json();
    assert_eq!(capped["page"]["limit"], 1000);
    let bad = client.get("order/certificate?limit=lots").await;
    assert_eq!(bad.status, 400);
    assert!(bad.code().starts_with("invalid_param"));

    let pending = client
        .get("order/certificate?filters[status]=pending")
        .await
        .json();
    assert_eq!(pending["page"]["total"], 40);
    assert!(pending["orders"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["status"] == "pending"));
    // `issued` also matches expired orders.
    let issued = client
        .get("order/certificate?filters%5Bstatus%5D=issued")
        .await
        .json();
    assert_eq!(issued["page"]["total"], 1159);
    let revoked = client
        .get("order/certificate?filters[status]=revoked")
        .await
        .json();
    assert_eq!(revoked["page"]["total"], 1);

    let one = client
        .get("order/certificate?filters[common_name]=host7.bulk.test")
        .await
        .json();
    assert_eq!(one["page"]["total"], 1);
    assert_eq!(
        one["orders"][0]["certificate"]["common_name"],
        "host7.bulk.test"
    );
    let contains = client
        .get("order/certificate?filters[common_name]=%25host115&sort=-id")
        .await
        .json();
    // host115, host1150..host1159 that exist (1150).
    assert_eq!(contains["page"]["total"], 2);
    let ids: Vec<u64> = contains["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert!(ids[0] > ids[1], "sorted descending: {ids:?}");
    let combined = client
        .get("order/certificate?filters[status]=pending&filters[common_name]=host7.bulk.test")
        .await
        .json();
    assert_eq!(combined["page"]["total"], 0);
    let unknown = client.get("order/certificate?filters[colour]=red").await;
    assert_eq!(unknown.status, 400);

    let csv = client
        .send(
            "GET",
            "order/certificate?filters[status]=revoked",
            None,
            &[("Accept", "text/csv")],
        )
        .await;
    assert_eq!(csv.header("content-type"), Some("text/csv"));
    assert!(csv.text().contains("gone.bulk.test"));

    let changes = client
        .get("order/certificate/status-changes?seconds=3600")
        .await
        .json();
    assert!(changes["orders"].as_array().unwrap().len() >= 1000);
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_are_found_by_alternative_order_id() {
    let sim = start(seed(json!({}))).await;
    let client = Client::new(&sim, ADMIN);
    let (_, csr_pem) = csr("alt.example.com", &["alt.example.com"]);
    let placed = client
        .post(
            "order/certificate/ssl_basic",
            &order(
                "alt.example.com",
                &[],
                &csr_pem,
                json!({"alternative_order_id": "certform-7f3a"}),
            ),
        )
        .await
        .json();
    let found = client.get("order/alternate/certform-7f3a").await;
    assert_eq!(found.status, 200, "{}", found.text());
    let found = found.json();
    assert_eq!(found["page"]["total"], 1);
    assert_eq!(found["orders"][0]["order_id"], placed["id"]);
    assert_eq!(
        found["orders"][0]["certificate_id"],
        placed["certificate_id"]
    );
    assert_eq!(found["orders"][0]["status"], "issued");
    let missing = client.get("order/alternate/never-placed").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.code(), "not_found|order");
    assert_eq!(
        sim.stats().orders_by_alternative_order_id["certform-7f3a"],
        1
    );
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn reissue_keeps_the_order_id_and_mints_a_new_certificate_id() {
    let sim = start(seed(json!({}))).await;
    let client = Client::new(&sim, ADMIN);
    let (order_id, first_certificate, _) = issued_order(&client, "re.example.com").await;

    let (new_key, new_csr) = csr("re.example.com", &["re.example.com", "api.example.com"]);
    let resp = client
        .post(
            &format!("order/certificate/{order_id}/reissue"),
            &json!({"certificate": {"common_name": "re.example.com", "dns_names": ["api.example.com"], "csr": new_csr}}),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["id"], order_id);
    let second_certificate = body["certificate_id"].as_u64().unwrap();
    assert_ne!(second_certificate, first_certificate);
    let detail = client
        .get(&format!("order/certificate/{order_id}"))
        .await
        .json();
    assert_eq!(detail["status"], "issued");
    assert_eq!(detail["certificate"]["id"], second_certificate);
    let pem = client
        .get(&format!(
            "certificate/{second_certificate}/download/format/pem_all"
        ))
        .await
        .text();
    let (info, _) = inspect_chain(&pem).unwrap();
    assert_eq!(info.spki_sha256, new_key.spki_sha256());
    assert_eq!(info.sans, vec!["api.example.com", "re.example.com"]);
    // The old certificate stays downloadable.
    let old = client
        .get(&format!(
            "certificate/{first_certificate}/download/format/pem_all"
        ))
        .await;
    assert_eq!(old.status, 200);

    // A reissue adding a name without DCV waits in reissue_pending; cancelling it goes back
    // to issued with the same certificate.
    let (_, csr3) = csr("re.example.com", &["re.example.com", "new.other.test"]);
    let resp = client
        .post(
            &format!("order/certificate/{order_id}/reissue"),
            &json!({"certificate": {"dns_names": ["new.other.test"], "csr": csr3}}),
        )
        .await;
    assert_eq!(resp.status, 201);
    assert!(resp.json().get("certificate_chain").is_none());
    assert_eq!(status_of(&client, order_id).await, "reissue_pending");
    let revoke = client
        .put(
            &format!("order/certificate/{order_id}/revoke"),
            &json!({"skip_approval": true}),
        )
        .await;
    assert_eq!(revoke.status, 400, "no revoke while a reissue is pending");
    let cancel = client
        .put(
            &format!("order/certificate/{order_id}/status"),
            &json!({"status": "canceled", "note": "wrong names"}),
        )
        .await;
    assert_eq!(cancel.status, 204, "{}", cancel.text());
    let detail = client
        .get(&format!("order/certificate/{order_id}"))
        .await
        .json();
    assert_eq!(detail["status"], "issued");
    assert_eq!(detail["certificate"]["id"], second_certificate);
    let requests = detail["requests"].as_array().unwrap();
    assert_eq!(requests.last().unwrap()["status"], "rejected");
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_is_204_with_skip_approval_and_201_with_a_request_otherwise() {
    let sim = start(seed(json!({}))).await;
    let admin_client = Client::new(&sim, ADMIN);
    let orders_client = Client::new(&sim, ORDERS);

    let (order_id, certificate_id, _) = issued_order(&admin_client, "r1.example.com").await;
    let resp = admin_client
        .put(
            &format!("order/certificate/{order_id}/revoke"),
            &json!({"skip_approval": true, "comments": "done", "revocation_reason": "superseded"}),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert!(resp.body.is_empty());
    assert_eq!(status_of(&admin_client, order_id).await, "revoked");
    let again = admin_client
        .put(
            &format!("certificate/{certificate_id}/revoke"),
            &json!({"skip_approval": true}),
        )
        .await;
    assert_eq!(again.status, 400);

    // An orders-only key cannot skip approval: a pending revoke request.
    let (order_id, certificate_id, _) = issued_order(&orders_client, "r2.example.com").await;
    let resp = orders_client
        .put(
            &format!("certificate/{certificate_id}/revoke"),
            &json!({"skip_approval": true, "comments": "key lost", "revocation_reason": "key_compromise"}),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let request = resp.json();
    assert_eq!(request["type"], "revoke");
    assert_eq!(request["status"], "pending");
    let request_id = request["id"].as_u64().unwrap();
    assert_eq!(status_of(&orders_client, order_id).await, "issued");
    let denied = orders_client
        .put(
            &format!("request/{request_id}/status"),
            &json!({"status": "approved"}),
        )
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.code(), "access_denied|invalid_approver");
    let approved = admin_client
        .put(
            &format!("request/{request_id}/status"),
            &json!({"status": "approved", "processor_comment": "ok"}),
        )
        .await;
    assert_eq!(approved.status, 204, "{}", approved.text());
    assert_eq!(status_of(&orders_client, order_id).await, "revoked");
    let seen = admin_client
        .get(&format!("request/{request_id}"))
        .await
        .json();
    assert_eq!(seen["status"], "approved");

    // Revoking a pending order is refused.
    let (_, csr_pem) = csr("p.pending.test", &["p.pending.test"]);
    let pending = admin_client
        .post(
            "order/certificate/ssl_basic",
            &order("p.pending.test", &[], &csr_pem, json!({})),
        )
        .await
        .json();
    let refused = admin_client
        .put(
            &format!("order/certificate/{}/revoke", pending["id"]),
            &json!({"skip_approval": true}),
        )
        .await;
    assert_eq!(refused.status, 400);
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_only_from_the_allowed_statuses() {
    let sim = start(seed(json!({}))).await;
    let client = Client::new(&sim, ORDERS);
    let (_, csr_pem) = csr("c.pending.test", &["c.pending.test"]);
    let pending = client
        .post(
            "order/certificate/ssl_basic",
            &order("c.pending.test", &[], &csr_pem, json!({})),
        )
        .await
        .json();
    let order_id = pending["id"].as_u64().unwrap();
    let path = format!("order/certificate/{order_id}/status");

    let no_note = client.put(&path, &json!({"status": "canceled"})).await;
    assert_eq!(no_note.status, 400);
    let wrong_case = client
        .put(&path, &json!({"status": "Canceled", "note": "x"}))
        .await;
    assert_eq!(wrong_case.status, 400);
    let british = client
        .put(&path, &json!({"status": "cancelled", "note": "x"}))
        .await;
    assert_eq!(british.status, 400);
    let ok = client
        .put(&path, &json!({"status": "canceled", "note": "not needed"}))
        .await;
    assert_eq!(ok.status, 204, "{}", ok.text());
    assert_eq!(status_of(&client, order_id).await, "canceled");
    let twice = client
        .put(&path, &json!({"status": "canceled", "note": "again"}))
        .await;
    assert_eq!(twice.status, 400);
    assert_eq!(twice.code(), "invalid_order_status");

    // waiting_pickup is cancellable; issued is not.
    let (_, csr_pem) = csr("w.pending.test", &["w.pending.test"]);
    let waiting = client
        .post(
            "order/certificate/ssl_basic",
            &order("w.pending.test", &[], &csr_pem, json!({})),
        )
        .await
        .json();
    let forced = admin(
        &sim,
        "PUT",
        &format!("orders/{}/status", waiting["id"]),
        &json!({"status": "waiting_pickup"}),
    )
    .await;
    assert_eq!(forced.status, 200);
    let ok = client
        .put(
            &format!("order/certificate/{}/status", waiting["id"]),
            &json!({"status": "canceled", "note": "x"}),
        )
        .await;
    assert_eq!(ok.status, 204);
    let (issued_id, _, _) = issued_order(&client, "i.example.com").await;
    let refused = client
        .put(
            &format!("order/certificate/{issued_id}/status"),
            &json!({"status": "canceled", "note": "x"}),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(status_of(&client, issued_id).await, "issued");
    let missing = client
        .put(
            "order/certificate/424242/status",
            &json!({"status": "canceled", "note": "x"}),
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.code(), "not_found|order");
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_roles() {
    let sim = start(seed(json!({}))).await;
    let viewer = Client::new(&sim, VIEW_ONLY);
    let me = viewer.get("user/me").await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["access_roles"][0]["name"], "View Only");
    assert_eq!(viewer.get("product").await.status, 200);
    assert_eq!(
        viewer
            .get("organization?include_validation=true")
            .await
            .status,
        200
    );
    let (_, csr_pem) = csr("v.example.com", &["v.example.com"]);
    let write = viewer
        .post(
            "order/certificate/ssl_basic",
            &order("v.example.com", &[], &csr_pem, json!({})),
        )
        .await;
    assert_eq!(write.status, 403);
    assert_eq!(write.code(), "access_denied|missing_permission");
    let write = viewer
        .put(
            "order/certificate/1000001/status",
            &json!({"status": "canceled", "note": "x"}),
        )
        .await;
    assert_eq!(write.status, 403);
    assert_eq!(sim.stats().orders_total, 0);

    let orders = Client::new(&sim, ORDERS);
    let denied = orders.get("domain").await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.code(), "access_denied|missing_permission");
    assert_eq!(
        orders.get("user/me").await.json()["access_roles"][0]["id"],
        100
    );
    let admin_me = Client::new(&sim, ADMIN).get("user/me").await.json();
    assert_eq!(admin_me["access_roles"][0]["name"], "Administrator");

    let nobody = Client {
        addr: sim.local_addr(),
        key: None,
    };
    let missing = nobody.get("user/me").await;
    assert_eq!(missing.status, 403);
    missing.code();
    let wrong = Client::new(&sim, "not-a-key");
    let resp = wrong.get("order/certificate").await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.code(), "access_denied_invalid_key");
    assert_eq!(sim.stats().unauthorized, 2);

    let route = Client::new(&sim, ADMIN).get("no/such/endpoint").await;
    assert_eq!(route.status, 404);
    assert_eq!(route.code(), "not_found|route");
    let product = Client::new(&sim, ADMIN)
        .post("order/certificate/ssl_nothing", &json!({"certificate": {}}))
        .await;
    assert_eq!(product.status, 404);
    assert_eq!(product.code(), "not_found|product");
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_over_the_rolling_window_get_429() {
    let sim = start(seed(json!({"limits": {
        "windows": [{"requests": 5, "seconds": 60}, {"requests": 50, "seconds": 600}],
        "retry_after_header": true,
    }})))
    .await;
    let client = Client::new(&sim, VIEW_ONLY);
    for _ in 0..5 {
        assert_eq!(client.get("product").await.status, 200);
    }
    let limited = client.get("product").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.code(), "request_limit_exceeded");
    assert_eq!(
        limited.json()["errors"][0]["message"],
        "Service unavailable, please limit request volume"
    );
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((55..=60).contains(&retry), "{retry}");
    // Limits are per key.
    assert_eq!(Client::new(&sim, ADMIN).get("product").await.status, 200);
    assert_eq!(sim.stats().rate_limited, 1);

    // The defaults: 100 per 5 s.
    sim.set_limits(digicert::Limits::default()).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..101 {
        statuses.push(client.get("user/me").await.status);
    }
    assert!(statuses[..100].iter().all(|s| *s == 200));
    assert_eq!(statuses[100], 429);
    let no_header = client.get("user/me").await;
    assert!(
        no_header.header("retry-after").is_none(),
        "Retry-After is off by default"
    );
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_digicert_errors() {
    let sim = start(seed(json!({}))).await;
    let client = Client::new(&sim, ADMIN);
    for body in [
        "{not json",
        "",
        "[1, 2]",
        "{\"certificate\": {\"common_name\": 7}}",
    ] {
        let resp = client
            .send(
                "POST",
                "order/certificate/ssl_basic",
                Some(body.as_bytes()),
                &[],
            )
            .await;
        assert_eq!(resp.status, 400, "{body}: {}", resp.text());
        assert_eq!(resp.code(), "bad_request_format", "{body}");
        assert!(resp.json()["errors"].is_array());
    }
    let resp = client
        .post(
            "order/certificate/ssl_basic",
            &order(
                "x.example.com",
                &[],
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                json!({}),
            ),
        )
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.code(), "csr_invalid_cannot_parse");
    let (_, csr_pem) = csr("x.example.com", &["x.example.com"]);
    let cases = [
        (
            json!({"certificate": {"csr": csr_pem}, "validity_days": 10, "organization": {"id": ORG}}),
            "missing_param|certificate.common_name",
        ),
        (
            order("not a name", &[], &csr_pem, json!({})),
            "invalid_dns_name",
        ),
        (
            order(
                "x.example.com",
                &[],
                &csr_pem,
                json!({"organization": {"id": 1}}),
            ),
            "invalid_param|organization.id",
        ),
        (
            order(
                "x.example.com",
                &[],
                &csr_pem,
                json!({"dcv_method": "carrier-pigeon"}),
            ),
            "invalid_dcv_method",
        ),
        (
            order(
                "x.example.com",
                &[],
                &csr_pem,
                json!({"validity_years": 9, "validity_days": null}),
            ),
            "invalid_param|validity_years",
        ),
        (
            order(
                "x.example.com",
                &[],
                &csr_pem,
                json!({"payment_method": "iou"}),
            ),
            "invalid_param|payment_method",
        ),
    ];
    for (body, code) in cases {
        let resp = client.post("order/certificate/ssl_basic", &body).await;
        assert_eq!(resp.status, 400, "{body}: {}", resp.text());
        assert_eq!(resp.code(), code, "{body}");
    }
    let bad_hash = client
        .post(
            "order/certificate/ssl_basic",
            &json!({"certificate": {"common_name": "x.example.com", "csr": csr_pem, "signature_hash": "md5"}, "organization": {"id": ORG}, "validity_years": 1}),
        )
        .await;
    assert_eq!(bad_hash.code(), "invalid_param|certificate.signature_hash");
    let bad_query = client.get("order/certificate?offset=-1").await;
    assert_eq!(bad_query.status, 400);
    let not_json_put = client
        .send(
            "PUT",
            "order/certificate/1/status",
            Some(b"status=canceled"),
            &[],
        )
        .await;
    assert_eq!(not_json_put.code(), "bad_request_format");
    assert_eq!(sim.stats().orders_total, 0);
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_capped_at_199_days_and_expire_with_the_clock() {
    let sim = start(seed(json!({}))).await;
    let client = Client::new(&sim, ADMIN);
    let (_, csr_pem) = csr("long.example.com", &["long.example.com"]);
    let body = client
        .post(
            "order/certificate/ssl_basic",
            &order(
                "long.example.com",
                &[],
                &csr_pem,
                json!({"validity_days": null, "validity_years": 3}),
            ),
        )
        .await
        .json();
    let leaf = body["certificate_chain"][0]["pem"].as_str().unwrap();
    let (info, _) = inspect_chain(leaf).unwrap();
    let days = (info.not_after - info.not_before).whole_seconds() as f64 / 86_400.0;
    assert!(days <= 199.0 && days > 198.0, "{days}");
    let detail = client
        .get(&format!("order/certificate/{}", body["id"]))
        .await
        .json();
    let order_till = detail["order_valid_till"].as_str().unwrap();
    let cert_till = detail["certificate"]["valid_till"].as_str().unwrap();
    assert!(order_till > cert_till, "{order_till} vs {cert_till}");
    assert_eq!(detail["validity_years"], 3);

    let (_, csr_pem) = csr("short.example.com", &["short.example.com"]);
    let too_long = client
        .post(
            "order/certificate/ssl_basic",
            &order(
                "short.example.com",
                &[],
                &csr_pem,
                json!({"validity_days": 30, "certificate": {"common_name": "short.example.com", "csr": csr_pem, "cert_validity": {"days": 90}}}),
            ),
        )
        .await;
    assert_eq!(too_long.status, 400);
    assert_eq!(too_long.code(), "cert_validity_exceeds_order_validity");

    sim.advance_clock(Duration::from_secs(200 * 86_400));
    assert_eq!(
        status_of(&client, body["id"].as_u64().unwrap()).await,
        "expired"
    );
    let issued = client
        .get("order/certificate?filters[status]=issued")
        .await
        .json();
    assert_eq!(
        issued["page"]["total"], 1,
        "`issued` matches expired orders"
    );
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_wait_for_approval_when_the_account_requires_it() {
    let sim = start(seed(json!({"account": {"require_approval": true}}))).await;
    let orders = Client::new(&sim, ORDERS);
    let admin_client = Client::new(&sim, ADMIN);
    let (_, csr_pem) = csr("ap.example.com", &["ap.example.com"]);
    let body = orders
        .post(
            "order/certificate/ssl_basic",
            &order("ap.example.com", &[], &csr_pem, json!({})),
        )
        .await
        .json();
    let order_id = body["id"].as_u64().unwrap();
    assert_eq!(status_of(&orders, order_id).await, "needs_approval");
    let request_id = body["requests"][0]["id"].as_u64().unwrap();
    let pending = admin_client
        .get("request?filters[status]=pending")
        .await
        .json();
    assert_eq!(pending["requests"][0]["id"], request_id);
    let resp = admin_client
        .put(
            &format!("request/{request_id}/status"),
            &json!({"status": "approved"}),
        )
        .await;
    assert_eq!(resp.status, 204);
    assert_eq!(status_of(&orders, order_id).await, "issued");

    // An admin key with skip_approval issues at once.
    let (_, csr_pem) = csr("ap2.example.com", &["ap2.example.com"]);
    let body = admin_client
        .post(
            "order/certificate/ssl_basic",
            &order(
                "ap2.example.com",
                &[],
                &csr_pem,
                json!({"skip_approval": true}),
            ),
        )
        .await
        .json();
    assert!(body["certificate_chain"].is_array(), "{body}");
    sim.shutdown().await.unwrap();
}

async fn statuses_under_faults(random_seed: u64) -> Vec<u16> {
    let sim = start(seed(json!({"random_seed": random_seed}))).await;
    let put = admin(
        &sim,
        "PUT",
        "faults",
        &json!({"error_rate": 0.5, "error_status": 503}),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let client = Client::new(&sim, VIEW_ONLY);
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(client.get("product").await.status);
    }
    assert_eq!(
        sim.stats().injected_errors as usize,
        statuses.iter().filter(|s| **s == 503).count()
    );
    sim.shutdown().await.unwrap();
    statuses
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_are_injected_deterministically() {
    let a = statuses_under_faults(7).await;
    let b = statuses_under_faults(7).await;
    assert_eq!(a, b, "same seed, same faults");
    assert!(a.contains(&503) && a.contains(&200), "{a:?}");
    assert_ne!(a, statuses_under_faults(8).await);

    let sim = start(seed(json!({"faults": {"latency_ms": 150}}))).await;
    let client = Client::new(&sim, VIEW_ONLY);
    let started = Instant::now();
    assert_eq!(client.get("user/me").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let injected = admin(&sim, "GET", "faults", &json!({})).await.json();
    assert_eq!(injected["latency_ms"], 150);

    // Dropped after running: the order exists, the client never hears of it.
    sim.set_faults(digicert::Faults {
        drop_rate: 1.0,
        ..digicert::Faults::default()
    })
    .unwrap();
    let (_, csr_pem) = csr("drop.example.com", &["drop.example.com"]);
    let body = order(
        "drop.example.com",
        &[],
        &csr_pem,
        json!({"alternative_order_id": "drop-1"}),
    )
    .to_string();
    let lost = raw_request(
        sim.local_addr(),
        "POST",
        "/services/v2/order/certificate/ssl_basic",
        &[("X-DC-DEVKEY", ADMIN), ("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert!(lost.is_err(), "{lost:?}");
    sim.set_faults(digicert::Faults::default()).unwrap();
    let found = Client::new(&sim, ADMIN).get("order/alternate/drop-1").await;
    assert_eq!(
        found.status, 200,
        "the order was placed before the connection dropped"
    );
    let stats = sim.stats();
    assert_eq!(stats.dropped_connections, 1);
    assert_eq!(stats.orders_by_common_name["drop.example.com"], 1);
    assert!(stats.duplicate_common_names().is_empty());
    let bad = admin(&sim, "PUT", "faults", &json!({"error_rate": 2})).await;
    assert_eq!(bad.status, 400);
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn catalogue_endpoints() {
    let sim = start(seed(json!({}))).await;
    let client = Client::new(&sim, ADMIN);
    let products = client.get("product").await.json();
    assert!(products["products"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name_id"] == "ssl_basic"));
    let detail = client.get("product/ssl_basic").await.json();
    assert_eq!(detail["allowed_validity_years"], json!([1, 2, 3]));
    assert_eq!(
        detail["signature_hash_types"]["default_hash_type_id"],
        "sha256"
    );
    assert!(detail["server_platforms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == -1));
    assert_eq!(client.get("product/nope").await.code(), "not_found|product");
    let organizations = client
        .get("organization?include_validation=true")
        .await
        .json();
    assert_eq!(organizations["organizations"][0]["id"], ORG);
    assert_eq!(
        organizations["organizations"][0]["validations"][0]["status"],
        "active"
    );
    let validation = client
        .get(&format!("organization/{ORG}/validation"))
        .await
        .json();
    assert_eq!(validation["validations"][0]["type"], "ov");
    let domains = client.get("domain?include_validation=true").await.json();
    assert_eq!(domains["domains"][0]["name"], "example.com");
    assert_eq!(domains["domains"][0]["validations"][0]["status"], "active");
    assert!(domains["domains"][0]["validations"][0]
        .get("dcv_status")
        .is_none());
    sim.shutdown().await.unwrap();
}

#[test]
fn cli_runs_the_simulator_in_the_foreground() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.toml");
    std::fs::write(
        &seed_path,
        "random_seed = 1\n[[api_keys]]\nname = \"ci\"\nkey = \"ci-test-key\"\nrole = \"admin\"\n",
    )
    .unwrap();
    let root_path = dir.path().join("root.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_certform"))
        .args(["sim", "digicert", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed_path)
        .arg("--root-out")
        .arg(&root_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let done = line.starts_with("press Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let text = printed.join("\n");
    let base = printed
        .iter()
        .find_map(|line| line.trim().strip_prefix("base URL:"))
        .unwrap_or_else(|| panic!("no base URL in:\n{text}"))
        .trim()
        .to_string();
    assert!(
        text.contains("ci-test-key") && text.contains("ci"),
        "{text}"
    );
    let addr: SocketAddr = base
        .trim_start_matches("http://")
        .trim_end_matches("/services/v2/")
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let me = runtime
        .block_on(raw_request(
            addr,
            "GET",
            "/services/v2/user/me",
            &[("X-DC-DEVKEY", "ci-test-key")],
            b"",
        ))
        .unwrap();
    assert_eq!(me.status, 200, "{}", me.text());
    assert!(std::fs::read_to_string(&root_path)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn signature_hashes_subjects_and_renewals() {
    let sim = start(seed(json!({}))).await;
    let client = Client::new(&sim, ADMIN);
    let dir = tempfile::tempdir().unwrap();
    let root = sim.root_pem();
    for (hash, algorithm) in [
        ("sha256", "ecdsa-with-SHA256"),
        ("sha384", "ecdsa-with-SHA384"),
        ("sha512", "sha512WithRSAEncryption"),
    ] {
        let name = format!("{hash}.example.com");
        let (_, csr_pem) = csr(&name, &[&name]);
        let mut body = order(&name, &[], &csr_pem, json!({}));
        body["certificate"]["signature_hash"] = json!(hash);
        let placed = client
            .post("order/certificate/ssl_basic", &body)
            .await
            .json();
        let chain = placed["certificate_chain"].as_array().unwrap();
        let leaf = chain[0]["pem"].as_str().unwrap();
        let verdict = verify(dir.path(), &root, chain[1]["pem"].as_str().unwrap(), leaf);
        assert!(verdict.contains(": OK"), "{hash}: {verdict}");
        let text = openssl(&[
            "x509",
            "-noout",
            "-text",
            "-in",
            dir.path().join("leaf.pem").to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&text.stdout).into_owned();
        assert!(
            text.contains(&format!("Signature Algorithm: {algorithm}")),
            "{hash}: {text}"
        );
        assert!(
            text.contains("O=Example Inc") || text.contains("O = Example Inc"),
            "{text}"
        );
        assert!(text.contains("2.23.140.1.2.2"), "OV policy: {text}");
        let detail = client
            .get(&format!("order/certificate/{}", placed["id"]))
            .await
            .json();
        assert_eq!(detail["certificate"]["signature_hash"], hash);
        assert!(detail["certificate"]["ca_cert"]["name"]
            .as_str()
            .unwrap()
            .contains(&hash.to_uppercase()));
    }

    // A renewal is a new order linked both ways.
    let (old_id, _, _) = issued_order(&client, "renew.example.com").await;
    let (_, csr_pem) = csr("renew.example.com", &["renew.example.com"]);
    let renewal = client
        .post(
            "order/certificate/ssl_basic",
            &order(
                "renew.example.com",
                &[],
                &csr_pem,
                json!({"renewal_of_order_id": old_id}),
            ),
        )
        .await
        .json();
    let new_id = renewal["id"].as_u64().unwrap();
    assert_ne!(new_id, old_id);
    let old = client
        .get(&format!("order/certificate/{old_id}"))
        .await
        .json();
    assert_eq!(old["is_renewed"], true);
    assert_eq!(old["renewed_order_id"], new_id);
    let new = client
        .get(&format!("order/certificate/{new_id}"))
        .await
        .json();
    assert_eq!(new["is_renewal"], true);
    let renewed = client
        .get("order/certificate?filters[is_renewed]=1")
        .await
        .json();
    assert_eq!(renewed["page"]["total"], 1);
    let unknown = client
        .post(
            "order/certificate/ssl_basic",
            &order(
                "renew.example.com",
                &[],
                &csr_pem,
                json!({"renewal_of_order_id": 1}),
            ),
        )
        .await;
    assert_eq!(unknown.code(), "invalid_param|renewal_of_order_id");
    assert_eq!(sim.stats().orders_by_common_name["renew.example.com"], 2);
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn domain_validate_token_with_dns_cname_and_txt() {
    let bind = Bind::start(&[ZoneSpec::new("cname.test")
        .record("_dnsauth IN CNAME fixedtokenabc.dcv.digicert.com.")
        .record("txt IN TXT \"not-the-token\"")]);
    let sim = start(seed(json!({
        "dcv": {"dns_server": bind.addr.to_string()},
        "domains": [
            {"id": 900, "name": "cname.test", "dcv_status": "pending",
             "dcv_method": "dns-cname-token", "dcv_token": "fixedtokenabc"},
            {"id": 901, "name": "txt.cname.test", "dcv_status": "pending",
             "dcv_method": "dns-txt-token", "dcv_token": "expectedtoken"},
        ],
    })))
    .await;
    let client = Client::new(&sim, ADMIN);
    let txt = client
        .put("domain/901/dcv/validate-token", &json!({}))
        .await;
    assert_eq!(txt.status, 200, "{}", txt.text());
    assert_eq!(
        txt.json(),
        json!({"token": "expectedtoken", "status": "pending"})
    );
    let cname = client
        .put("domain/900/dcv/validate-token", &json!({}))
        .await;
    assert_eq!(
        cname.json(),
        json!({"token": "fixedtokenabc", "status": "active"})
    );
    let domain = client
        .get("domain/900?include_validation=true&include_dcv=true")
        .await
        .json();
    assert_eq!(domain["is_pending_validation"], false);
    assert!(domain.get("dcv_token").is_none(), "{domain}");
    // www. names are validated on the base domain.
    let (_, csr_pem) = csr("www.cname.test", &["www.cname.test"]);
    let placed = client
        .post(
            "order/certificate/ssl_basic",
            &order("www.cname.test", &[], &csr_pem, json!({})),
        )
        .await
        .json();
    assert!(placed["certificate_chain"].is_array(), "{placed}");
    let unknown = client.put("domain/5/dcv/validate-token", &json!({})).await;
    assert_eq!(unknown.code(), "not_found|domain");
    // Orders-only keys have no domain access.
    let orders = Client::new(&sim, ORDERS);
    assert_eq!(
        orders
            .put("domain/901/dcv/validate-token", &json!({}))
            .await
            .status,
        403
    );
    sim.shutdown().await.unwrap();
}

/// The simulator reads DNS with its own reader: against the real BIND, a TXT RRset too large
/// for a 512-octet UDP answer (so BIND sets TC and the reader retries over TCP) holding the
/// token split across two character-strings validates the domain.
#[tokio::test(flavor = "multi_thread")]
async fn dns_txt_token_is_found_in_a_large_rrset_over_tcp_and_split_strings() {
    let filler = |n: usize| format!("_dnsauth IN TXT \"{}\"", "f".repeat(200 + n));
    let bind = Bind::start(&[ZoneSpec::new("big.test")
        .record(&filler(1))
        .record(&filler(2))
        .record(&filler(3))
        .record("_dnsauth IN TXT \"expected\" \"token42\"")]);
    let sim = start(seed(json!({
        "dcv": {"dns_server": bind.addr.to_string()},
        "domains": [
            {"id": 902, "name": "big.test", "dcv_status": "pending",
             "dcv_method": "dns-txt-token", "dcv_token": "expectedtoken42"},
            {"id": 903, "name": "www.big.test", "dcv_status": "pending",
             "dcv_method": "dns-txt-token", "dcv_token": "expected"},
        ],
    })))
    .await;
    let client = Client::new(&sim, ADMIN);
    let found = client
        .put("domain/902/dcv/validate-token", &json!({}))
        .await;
    assert_eq!(found.status, 200, "{}", found.text());
    assert_eq!(
        found.json(),
        json!({"token": "expectedtoken42", "status": "active"})
    );
    // `www.big.test` is checked at `big.test` too, where half of a split record is not a token.
    let missing = client
        .put("domain/903/dcv/validate-token", &json!({}))
        .await;
    assert_eq!(
        missing.json(),
        json!({"token": "expected", "status": "pending"})
    );
    sim.shutdown().await.unwrap();
}
