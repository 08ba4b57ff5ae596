//! The DigiCert simulator for CLI tests: started in this process on `127.0.0.1:0`, on its own
//! runtime, shut down when dropped.

use certform::sim::digicert::{self as sim, Seed};

/// A simulator on its own runtime, alive as long as this value.
pub struct Sim {
    running: Option<sim::RunningSim>,
    runtime: tokio::runtime::Runtime,
}

impl Sim {
    pub fn start(seed: Seed) -> Sim {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let running = runtime
            .block_on(sim::start(seed, "127.0.0.1:0".parse().expect("addr")))
            .expect("simulator starts");
        Sim {
            running: Some(running),
            runtime,
        }
    }

    pub fn sim(&self) -> &sim::RunningSim {
        self.running.as_ref().expect("running")
    }

    /// Orders placed for `common_name`.
    pub fn orders_for(&self, common_name: &str) -> u64 {
        self.sim()
            .stats()
            .orders_by_common_name
            .get(common_name)
            .copied()
            .unwrap_or(0)
    }

    /// Requests served on `route` (e.g. `POST /order/certificate/{id}/reissue`).
    pub fn requests(&self, route: &str) -> u64 {
        self.sim()
            .stats()
            .requests_by_route
            .get(route)
            .copied()
            .unwrap_or(0)
    }

    /// Approve the email DCV of `order_id` through the simulator's control endpoint.
    pub fn approve_email(&self, order_id: &str) {
        let url = format!("{}approve-email/{order_id}", self.sim().admin_url());
        let status = self.runtime.block_on(async {
            let address = self.sim().local_addr();
            let path = url.splitn(4, '/').nth(3).unwrap_or_default().to_string();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
            let request = format!(
                "POST /{path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.expect("send");
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.expect("read");
            answer
        });
        assert!(status.starts_with("HTTP/1.1 2"), "{status}");
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = self.runtime.block_on(running.shutdown());
        }
    }
}
