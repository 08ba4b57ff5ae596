//! The built-in local CA under contract: in process, its database in a temp dir. Orders issue
//! at once (no DCV); there is no network between certform and it, so no faults to inject.

use async_trait::async_trait;
use certform::ca::local::LocalCa;
use certform::ca::{CertificateAuthority, Challenge};
use certform::config::LocalCaSettings;
use time::OffsetDateTime;

use super::{ContractTarget, Fault};

pub struct LocalTarget {
    _dir: tempfile::TempDir,
    home: std::path::PathBuf,
    ca: LocalCa,
}

async fn start() -> LocalTarget {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("local-ca");
    let ca = open(&home);
    LocalTarget {
        _dir: dir,
        home,
        ca,
    }
}

fn open(home: &std::path::Path) -> LocalCa {
    let settings = LocalCaSettings {
        root_common_name: "certform contract root".to_string(),
        simulate_failures_ppm: 0,
    };
    LocalCa::open(
        "local",
        &settings,
        home.to_path_buf(),
        OffsetDateTime::now_utc(),
    )
    .expect("open the local CA")
}

#[async_trait]
impl ContractTarget for LocalTarget {
    fn label(&self) -> &'static str {
        "local"
    }

    fn ca(&self) -> &dyn CertificateAuthority {
        &self.ca
    }

    async fn reopen(&self) -> Box<dyn CertificateAuthority> {
        Box::new(open(&self.home))
    }

    fn needs_dcv(&self) -> bool {
        false
    }

    async fn satisfy(&self, challenges: &[Challenge]) -> Vec<Challenge> {
        panic!("the local CA asks for no DCV, yet offered {challenges:?}")
    }

    async fn anchor_pem(&self) -> String {
        self.ca
            .trust_anchor_pem()
            .expect("the local CA publishes its root")
    }

    async fn renewal_of(&self, order_id: &str) -> Result<Option<String>, String> {
        let orders = self.ca.orders().expect("read the order database");
        let order = orders
            .iter()
            .find(|order| order.order_id == order_id)
            .expect("the order is in the database");
        Ok(order.renewal_of.clone())
    }

    async fn orders_for(&self, common_name: &str) -> Result<usize, String> {
        let orders = self.ca.orders().expect("read the order database");
        Ok(orders
            .iter()
            .filter(|order| order.common_name == common_name)
            .count())
    }

    async fn inject(&self, fault: Fault) -> Result<(), String> {
        Err(format!(
            "the local CA runs in process, with no network in between: no {fault:?} to inject"
        ))
    }

    async fn clear_faults(&self) {}
}

contract_cases!(start);
