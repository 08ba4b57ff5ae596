//! ACME under contract: a real Pebble that validates DNS-01 against a real BIND, where the
//! proofs are published. The client reaches Pebble through a small TLS proxy that answers
//! `newOrder` with a `rateLimited` (429) or `serverInternal` (503) problem when asked (Pebble
//! keeps building its URLs from the `Host` the client sent, so every request passes the proxy),
//! and counts the orders Pebble created, per name.
//! Debian's Pebble has no ARI (no `replaces`), so the renewal link says so instead of passing.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use certform::ca::acme::{AcmeCa, AcmeSettings, Polling};
use certform::ca::{CertificateAuthority, Challenge};

use super::{ContractDns, ContractTarget, Fault};
use crate::pebble::{Pebble, PebbleOptions};

pub struct AcmeTarget {
    // Field order is drop order: the CA before the servers it talks to.
    ca: AcmeCa,
    proxy: FaultProxy,
    pebble: Pebble,
    dns: ContractDns,
    home: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start() -> AcmeTarget {
    let dns = ContractDns::start();
    let pebble = Pebble::start_with(PebbleOptions {
        dns_server: Some(dns.bind.addr),
        // Nonce robustness has its own tests (`tests/acme_pebble.rs`).
        nonce_reject: Some(0),
        ..PebbleOptions::default()
    });
    let proxy = FaultProxy::start(&pebble);
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("acme");
    let ca = open(&pebble, &proxy, &home).await;
    AcmeTarget {
        ca,
        proxy,
        pebble,
        dns,
        home,
        _dir: dir,
    }
}

async fn open(pebble: &Pebble, proxy: &FaultProxy, home: &Path) -> AcmeCa {
    let settings = AcmeSettings {
        directory: format!("https://{}/dir", proxy.addr),
        contact: vec!["mailto:ops@contract.test".to_string()],
        ca_bundle: Some(pebble.ca_bundle().to_path_buf()),
        ..AcmeSettings::default()
    };
    AcmeCa::open("pebble", settings, home.to_path_buf())
        .await
        .unwrap_or_else(|error| panic!("open: {error:?}\n{}", pebble.log_text()))
        .with_polling(Polling {
            initial_delay: StdDuration::from_millis(20),
            backoff: 1.5,
            timeout: StdDuration::from_secs(30),
        })
}

#[async_trait]
impl ContractTarget for AcmeTarget {
    fn label(&self) -> &'static str {
        "acme"
    }

    fn ca(&self) -> &dyn CertificateAuthority {
        &self.ca
    }

    async fn reopen(&self) -> Box<dyn CertificateAuthority> {
        Box::new(open(&self.pebble, &self.proxy, &self.home).await)
    }

    fn needs_dcv(&self) -> bool {
        true
    }

    async fn satisfy(&self, challenges: &[Challenge]) -> Vec<Challenge> {
        self.dns.satisfy(challenges)
    }

    async fn anchor_pem(&self) -> String {
        self.pebble.issuing_roots().0
    }

    async fn renewal_of(&self, _order_id: &str) -> Result<Option<String>, String> {
        Err(
            "Debian's Pebble has no ARI, so a renewal cannot name the certificate it replaces"
                .to_string(),
        )
    }

    async fn orders_for(&self, common_name: &str) -> Result<usize, String> {
        let placed = self.proxy.placed.lock().expect("placed lock");
        Ok(placed
            .iter()
            .filter(|names| names.iter().any(|name| name == common_name))
            .count())
    }

    async fn inject(&self, fault: Fault) -> Result<(), String> {
        match fault {
            Fault::RateLimited | Fault::Transient => {
                *self.proxy.fault.lock().expect("fault lock") = Some(fault);
                Ok(())
            }
            // A lost `newOrder` answer leaves an order the local tag index never learns of
            // (`ca/acme.rs`: that window cannot be closed on the client side).
            Fault::DroppedAnswer => Err(
                "ACME orders carry no tag at the CA: an order whose answer is lost cannot be \
                 found again (duplicates are prevented by a local index written after the answer)"
                    .to_string(),
            ),
        }
    }

    async fn clear_faults(&self) {
        *self.proxy.fault.lock().expect("fault lock") = None;
    }
}

/// A TLS proxy in front of Pebble (with Pebble's listener certificate, so the client trusts
/// it through the same `ca_bundle`). Each request goes to Pebble on a new connection, except a
/// `newOrder` while a fault is set: that one is answered with the fault's ACME problem.
struct FaultProxy {
    addr: SocketAddr,
    fault: Arc<Mutex<Option<Fault>>>,
    /// The names of every order Pebble created (`newOrder` answered 201), in order.
    placed: Arc<Mutex<Vec<Vec<String>>>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    fn start(pebble: &Pebble) -> FaultProxy {
        let pem_file = |name: &str| {
            let text = std::fs::read(pebble.dir().join(name)).expect("read a listener PEM");
            pem::parse(text).expect("PEM").into_contents()
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![pem_file("listener-cert.pem").into()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(pem_file("listener-key.pem").into()),
            )
            .expect("the proxy's certificate");
        let mut roots = rustls::RootCertStore::empty();
        let bundle = std::fs::read(pebble.ca_bundle()).expect("read the CA bundle");
        roots
            .add(pem::parse(bundle).expect("PEM").into_contents().into())
            .expect("trust the listener CA");
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let upstream: SocketAddr = pebble
            .directory_url()
            .trim_start_matches("https://")
            .trim_end_matches("/dir")
            .parse()
            .expect("Pebble's address");
        let proxy = FaultProxy {
            addr,
            fault: Arc::default(),
            placed: Arc::default(),
            stop: Arc::default(),
        };
        let (server, client) = (Arc::new(server), Arc::new(client));
        let shared = Shared {
            fault: Arc::clone(&proxy.fault),
            placed: Arc::clone(&proxy.placed),
        };
        let stop = Arc::clone(&proxy.stop);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (server, client, shared) =
                    (Arc::clone(&server), Arc::clone(&client), shared.clone());
                thread::spawn(move || {
                    let _ = serve(stream, &server, &client, upstream, &shared);
                });
            }
        });
        proxy
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
    }
}

/// What the connection threads share with the target.
#[derive(Clone)]
struct Shared {
    fault: Arc<Mutex<Option<Fault>>>,
    placed: Arc<Mutex<Vec<Vec<String>>>>,
}

/// Serve one client connection, request by request.
fn serve(
    stream: TcpStream,
    server: &Arc<rustls::ServerConfig>,
    client: &Arc<rustls::ClientConfig>,
    upstream: SocketAddr,
    shared: &Shared,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(StdDuration::from_secs(30)))?;
    let connection =
        rustls::ServerConnection::new(Arc::clone(server)).map_err(std::io::Error::other)?;
    let mut tls = BufReader::new(rustls::StreamOwned::new(connection, stream));
    loop {
        // Request line and headers, then the body (`Content-Length`; the ACME client sends no
        // chunked bodies).
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if tls.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let end = line == "\r\n";
            if !line.to_ascii_lowercase().starts_with("connection:") {
                head.push_str(&line);
            }
            if end {
                break;
            }
        }
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        tls.read_exact(&mut body)?;
        let new_order = head.starts_with("POST /order-plz ");
        let injected = if new_order {
            *shared.fault.lock().expect("fault lock")
        } else {
            None
        };
        let answer = match injected {
            Some(Fault::RateLimited) => problem(429, "rateLimited", &[("Retry-After", "120")]),
            Some(_) => problem(503, "serverInternal", &[]),
            None => forward(&head, &body, client, upstream)?,
        };
        if new_order && answer.starts_with(b"HTTP/1.1 201") {
            shared
                .placed
                .lock()
                .expect("placed lock")
                .push(order_names(&body));
        }
        let stream = tls.get_mut();
        stream.write_all(&answer)?;
        stream.flush()?;
    }
}

/// Send one request to Pebble on a new connection; its whole answer.
fn forward(
    head: &str,
    body: &[u8],
    client: &Arc<rustls::ClientConfig>,
    upstream: SocketAddr,
) -> std::io::Result<Vec<u8>> {
    let name = rustls::pki_types::ServerName::IpAddress(upstream.ip().into());
    let connection =
        rustls::ClientConnection::new(Arc::clone(client), name).map_err(std::io::Error::other)?;
    let socket = TcpStream::connect(upstream)?;
    socket.set_read_timeout(Some(StdDuration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(connection, socket);
    let head = head.trim_end_matches("\r\n");
    tls.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())?;
    tls.write_all(body)?;
    tls.flush()?;
    let mut answer = Vec::new();
    match tls.read_to_end(&mut answer) {
        Ok(_) => {}
        // Pebble closes without a TLS close_notify.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(error) => return Err(error),
    }
    Ok(answer)
}

/// The identifiers of a `newOrder` request (the payload of its flattened JWS).
fn order_names(body: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    let jws: serde_json::Value = serde_json::from_slice(body).expect("a JWS");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jws["payload"].as_str().expect("a payload"))
        .expect("base64url");
    let order: serde_json::Value = serde_json::from_slice(&payload).expect("a JSON payload");
    order["identifiers"]
        .as_array()
        .expect("identifiers")
        .iter()
        .filter_map(|identifier| identifier["value"].as_str().map(str::to_string))
        .collect()
}

/// An ACME problem answer (RFC 8555 §6.7).
fn problem(status: u16, kind: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let body = format!(
        "{{\"type\":\"urn:ietf:params:acme:error:{kind}\",\"detail\":\"injected by the contract proxy\",\"status\":{status}}}"
    );
    let mut answer = format!(
        "HTTP/1.1 {status} Injected\r\nContent-Type: application/problem+json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        answer.push_str(&format!("{name}: {value}\r\n"));
    }
    answer.push_str("\r\n");
    answer.push_str(&body);
    answer.into_bytes()
}

contract_cases!(start);
