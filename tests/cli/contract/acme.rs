//! ACME under contract: a real Pebble that validates DNS-01 against a real BIND, where the
//! proofs are published. Pebble cannot inject rate limits or server errors, and Debian's
//! Pebble has no ARI (no `replaces`), so those parts say so instead of passing.

use std::path::PathBuf;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use certform::ca::acme::{AcmeCa, AcmeSettings, Polling};
use certform::ca::{CertificateAuthority, Challenge};

use super::{ContractDns, ContractTarget, Fault};
use crate::pebble::{Pebble, PebbleOptions};

pub struct AcmeTarget {
    // Field order is drop order: the CA before the servers it talks to.
    ca: AcmeCa,
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
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("acme");
    let ca = open(&pebble, &home).await;
    AcmeTarget {
        ca,
        pebble,
        dns,
        home,
        _dir: dir,
    }
}

async fn open(pebble: &Pebble, home: &std::path::Path) -> AcmeCa {
    let settings = AcmeSettings {
        directory: pebble.directory_url().to_string(),
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
        Box::new(open(&self.pebble, &self.home).await)
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
        Err("Debian's Pebble has no ARI, so a renewal cannot name the certificate it replaces"
            .to_string())
    }

    async fn orders_for(&self, _common_name: &str) -> Result<usize, String> {
        Err("Pebble cannot list an account's orders".to_string())
    }

    async fn inject(&self, fault: Fault) -> Result<(), String> {
        Err(format!(
            "Pebble cannot inject {fault:?} (no fault-injecting proxy in front of it yet)"
        ))
    }

    async fn clear_faults(&self) {}
}

contract_cases!(start);
