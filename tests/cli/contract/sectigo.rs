//! Sectigo Certificate Manager under contract: the SCM simulator on `127.0.0.1:0` with the
//! contract zone pre-validated (SCM customers enroll from validated domains), so requests issue
//! at once. Rate limits and server errors come from the simulator's own switches; a lost answer
//! from a small proxy that forwards an enrollment, renewal or replace and then cuts the
//! connection before the answer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use certform::ca::sectigo::{Secret, SectigoCa, SectigoSettings};
use certform::ca::{CertificateAuthority, Challenge};
use certform::sim::sectigo::{self as sim, DomainSeed, Faults, Limits, RateWindow, Seed};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::{ContractTarget, Fault, ZONE};

const LOGIN: &str = "certform-admin";
const PASSWORD: &str = "sim-admin-password";

pub struct SectigoTarget {
    ca: SectigoCa,
    proxy: DropProxy,
    sim: sim::RunningSim,
    home: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start() -> SectigoTarget {
    let mut domains = sim::default_domains();
    domains.push(
        serde_json::from_value::<DomainSeed>(serde_json::json!({
            "id": 990, "name": ZONE, "validation": "validated"
        }))
        .expect("domain seed"),
    );
    let seed = Seed {
        random_seed: Some(9),
        domains,
        ..Seed::default()
    };
    let sim = sim::start(seed, "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("the simulator starts");
    let proxy = DropProxy::start(sim.local_addr()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("sectigo");
    let ca = open(&proxy, &home, &sim.customer_uri());
    SectigoTarget {
        ca,
        proxy,
        sim,
        home,
        _dir: dir,
    }
}

fn open(proxy: &DropProxy, home: &std::path::Path, customer: &str) -> SectigoCa {
    let url = format!("http://{}/api", proxy.addr);
    let mut settings = SectigoSettings::new(url, customer, LOGIN, Secret::new(PASSWORD));
    settings.retry = certform::http::RetryPolicy {
        attempts: 4,
        base_delay: StdDuration::ZERO,
        max_retry_after: StdDuration::ZERO,
    };
    settings.home = Some(home.to_path_buf());
    SectigoCa::new("sectigo", settings).expect("open")
}

#[async_trait]
impl ContractTarget for SectigoTarget {
    fn label(&self) -> &'static str {
        "sectigo"
    }

    fn ca(&self) -> &dyn CertificateAuthority {
        &self.ca
    }

    async fn reopen(&self) -> Box<dyn CertificateAuthority> {
        Box::new(open(&self.proxy, &self.home, &self.sim.customer_uri()))
    }

    fn needs_dcv(&self) -> bool {
        false
    }

    fn options(&self) -> certform::spec::CaOptions {
        use certform::ca::sectigo::settings::{Options, Reference};
        certform::spec::CaOptions::Sectigo(Options {
            profile: Some(Reference::Name("OV Multi-Domain".to_string())),
            organization: Some(Reference::Name("Example Inc".to_string())),
            ..Options::default()
        })
    }

    async fn satisfy(&self, _challenges: &[Challenge]) -> Vec<Challenge> {
        Vec::new()
    }

    async fn anchor_pem(&self) -> String {
        self.sim.root_pem()
    }

    async fn renewal_of(&self, _order_id: &str) -> Result<Option<String>, String> {
        Err("SCM's details of a renewed certificate do not name the record it renews".to_string())
    }

    async fn orders_for(&self, common_name: &str) -> Result<usize, String> {
        let stats = self.sim.stats();
        let count = stats
            .enrollments_by_common_name
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
                let url = format!("{}/ssl/v1/types", self.sim.base_url());
                reqwest::Client::new()
                    .get(&url)
                    .header("login", LOGIN)
                    .header("password", PASSWORD)
                    .header("customerUri", self.sim.customer_uri())
                    .send()
                    .await
                    .expect("GET types");
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

/// A TCP proxy in front of the simulator that, when armed, forwards the next request that
/// creates or changes a certificate (`POST /api/ssl/v1/enroll`, `renewById`, `replace`) and
/// closes the connection as its answer starts: SCM acted, the client never hears of it.
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
            let writes = ["/ssl/v1/enroll", "/ssl/v1/renewById/", "/ssl/v1/replace/"];
            if text.starts_with("POST ")
                && writes.iter().any(|path| text.contains(path))
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
