//! DigiCert under contract: the CertCentral simulator on `127.0.0.1:0`, checking
//! `dns-txt-token` DCV against a real BIND where the proofs are published. Rate limits and
//! server errors come from the simulator's own switches; a lost answer from a small proxy that
//! forwards an order's creation or reissue and then cuts the connection before the answer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use certform::ca::digicert::{DigicertCa, DigicertSettings, Retry, Secret};
use certform::ca::{CertificateAuthority, Challenge};
use certform::sim::digicert::{self as sim, DcvSettings, Faults, Limits, RateWindow, Seed};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::{ContractDns, ContractTarget, Fault};

/// The simulator's administrator key (may skip approval).
const ADMIN_KEY: &str = "sim-admin-key";

pub struct DigicertTarget {
    ca: DigicertCa,
    proxy: DropProxy,
    sim: sim::RunningSim,
    dns: ContractDns,
    cache: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start() -> DigicertTarget {
    let dns = ContractDns::start();
    let seed = Seed {
        random_seed: Some(8),
        dcv: DcvSettings {
            dns_server: Some(dns.bind.addr),
            ..DcvSettings::default()
        },
        ..Seed::default()
    };
    let sim = sim::start(seed, "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("the simulator starts");
    let proxy = DropProxy::start(sim.local_addr()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("digicert-cache");
    let ca = open(&proxy, &cache);
    DigicertTarget {
        ca,
        proxy,
        sim,
        dns,
        cache,
        _dir: dir,
    }
}

fn open(proxy: &DropProxy, cache: &std::path::Path) -> DigicertCa {
    let url = format!("http://{}/services/v2/", proxy.addr);
    let mut settings = DigicertSettings::new(url, Secret::new(ADMIN_KEY));
    settings.retry = Retry {
        attempts: 4,
        base_delay: StdDuration::ZERO,
        max_retry_after: StdDuration::ZERO,
    };
    settings.cache_dir = Some(cache.to_path_buf());
    DigicertCa::open("digicert", settings).expect("open")
}

impl DigicertTarget {
    /// `GET order/certificate/{id}` straight from the simulator.
    async fn order_detail(&self, order_id: &str) -> serde_json::Value {
        let url = format!("{}order/certificate/{order_id}", self.sim.base_url());
        let response = reqwest::Client::new()
            .get(&url)
            .header("X-DC-DEVKEY", ADMIN_KEY)
            .send()
            .await
            .expect("GET the order");
        assert!(response.status().is_success(), "GET {url}: {response:?}");
        let body = response.text().await.expect("the order's body");
        serde_json::from_str(&body).expect("the order is JSON")
    }
}

#[async_trait]
impl ContractTarget for DigicertTarget {
    fn label(&self) -> &'static str {
        "digicert"
    }

    fn ca(&self) -> &dyn CertificateAuthority {
        &self.ca
    }

    async fn reopen(&self) -> Box<dyn CertificateAuthority> {
        Box::new(open(&self.proxy, &self.cache))
    }

    fn needs_dcv(&self) -> bool {
        true
    }

    fn options(&self) -> certform::spec::CaOptions {
        use certform::ca::digicert::settings::{DcvMethodWire, Options};
        certform::spec::CaOptions::Digicert(Options {
            product: Some("ssl_basic".to_string()),
            organization: Some(112233),
            dcv_method: Some(DcvMethodWire::DnsTxtToken),
            ..Options::default()
        })
    }

    async fn satisfy(&self, challenges: &[Challenge]) -> Vec<Challenge> {
        self.dns.satisfy(challenges)
    }

    async fn anchor_pem(&self) -> String {
        self.sim.root_pem()
    }

    async fn renewal_of(&self, order_id: &str) -> Result<Option<String>, String> {
        let detail = self.order_detail(order_id).await;
        Ok(detail
            .get("renewal_of_order_id")
            .and_then(serde_json::Value::as_u64)
            .map(|id| id.to_string()))
    }

    async fn orders_for(&self, common_name: &str) -> Result<usize, String> {
        let stats = self.sim.stats();
        let count = stats
            .orders_by_common_name
            .get(common_name)
            .copied()
            .unwrap_or(0);
        Ok(usize::try_from(count).expect("a small count"))
    }

    async fn inject(&self, fault: Fault) -> Result<(), String> {
        match fault {
            Fault::RateLimited => {
                self.sim
                    .set_limits(Limits {
                        windows: vec![RateWindow {
                            requests: 1,
                            seconds: 3600,
                        }],
                        retry_after_header: true,
                    })
                    .expect("set limits");
                // Use up the one request the window allows: every next one is refused.
                let url = format!("{}user/me", self.sim.base_url());
                reqwest::Client::new()
                    .get(&url)
                    .header("X-DC-DEVKEY", ADMIN_KEY)
                    .send()
                    .await
                    .expect("GET user/me");
            }
            Fault::Transient => self
                .sim
                .set_faults(Faults {
                    error_rate: 1.0,
                    error_status: 503,
                    ..Faults::default()
                })
                .expect("set faults"),
            Fault::DroppedAnswer => self.proxy.drop_next_order_answer(),
        }
        Ok(())
    }

    async fn clear_faults(&self) {
        self.sim
            .set_faults(Faults::default())
            .expect("clear faults");
        self.sim
            .set_limits(Limits::default())
            .expect("clear limits");
        self.proxy.armed.store(false, Ordering::SeqCst);
    }
}

/// A TCP proxy in front of the simulator that, when armed, forwards the next order request
/// (`POST .../order/certificate/...`: a creation or a reissue) and closes the connection as its
/// answer starts: the CA acted, the client never hears of it.
struct DropProxy {
    addr: SocketAddr,
    armed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl DropProxy {
    async fn start(upstream: SocketAddr) -> DropProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let armed = Arc::new(AtomicBool::new(false));
        let task = {
            let armed = Arc::clone(&armed);
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(relay(client, upstream, Arc::clone(&armed)));
                }
            })
        };
        DropProxy { addr, armed, task }
    }

    fn drop_next_order_answer(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

impl Drop for DropProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copy one connection both ways; drop it when the answer of an armed order creation starts.
async fn relay(client: TcpStream, upstream: SocketAddr, armed: Arc<AtomicBool>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let cut = AtomicBool::new(false);
    let requests = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            let chunk = &buffer[..read];
            let text = String::from_utf8_lossy(chunk);
            if text.starts_with("POST ")
                && text.contains("/order/certificate/")
                && armed.swap(false, Ordering::SeqCst)
            {
                cut.store(true, Ordering::SeqCst);
            }
            if server_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let answers = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            if cut.load(Ordering::SeqCst) {
                return;
            }
            if client_write.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = requests => {}
        () = answers => {}
    }
}

contract_cases!(start);
