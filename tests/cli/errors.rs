//! How failures reach the user: for each failed certificate `error:`, each cause once under
//! `caused by:`, and a `hint:` chosen from the CA's typed answer (HTTP status, DigiCert error
//! codes), against the DigiCert simulator.

use certform::sim::digicert::{self as sim, DomainSeed, Limits, RateWindow, Seed};

use crate::sandbox::Sandbox;

/// A simulator on its own runtime, alive as long as this value.
struct Sim {
    running: Option<sim::RunningSim>,
    runtime: tokio::runtime::Runtime,
}

impl Sim {
    fn start() -> Sim {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let domain: DomainSeed =
            serde_json::from_value(serde_json::json!({ "name": "example.test" })).expect("domain");
        let seed = Seed {
            random_seed: Some(11),
            domains: vec![domain],
            ..Seed::default()
        };
        let running = runtime
            .block_on(sim::start(seed, "127.0.0.1:0".parse().expect("addr")))
            .expect("simulator starts");
        Sim {
            running: Some(running),
            runtime,
        }
    }

    fn url(&self) -> String {
        self.running.as_ref().expect("running").base_url()
    }

    fn stats(&self) -> sim::Stats {
        self.running.as_ref().expect("running").stats()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = self.runtime.block_on(running.shutdown());
        }
    }
}

fn config(url: &str) -> String {
    format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{url}\"\n\n[certificate.web]\nca = \"dc\"\ncommon_name = \"www.example.test\"\nproduct = \"ssl_basic\"\norganization = 112233\nvalidity = {{ days = 90 }}\ndeploy = [{{ kind = \"files\", dir = \"out/web\" }}]\n"
    )
}

fn apply(sandbox: &Sandbox, key: &str) -> crate::sandbox::Run {
    sandbox.certform_env(&["apply", "--auto-approve"], &[("DIGICERT_API_KEY", key)])
}

#[test]
fn a_refused_create_prints_error_each_cause_once_and_the_403_hint() {
    let sim = Sim::start();
    let sandbox = Sandbox::with_config(&config(&sim.url()));
    // A View Only key reads (plan passes) but may not order: the create gets 403.
    let run = apply(&sandbox, "sim-view-only-key").expect(3);
    let stderr = &run.stderr;
    assert!(
        stderr.contains("error: certificate `web` (create): failed to place order at `dc`\n"),
        "{stderr}"
    );
    let cause = "caused by: DigiCert refused POST /order/certificate/ssl_basic for `dc` (HTTP 403)";
    assert_eq!(stderr.matches(cause).count(), 1, "{stderr}");
    assert_eq!(stderr.matches("caused by:").count(), 1, "{stderr}");
    let hint = stderr.find("hint: the three likely causes:").expect("hint");
    assert!(
        stderr.find(cause).is_some_and(|at| at < hint),
        "error, causes, then hint: {stderr}"
    );
    assert!(
        stderr.contains("  1. the key's role does not allow this call"),
        "{stderr}"
    );
    assert!(stderr.contains("  3. "), "{stderr}");
    // The per-certificate line on stdout names the failure too; the summary comes last.
    assert!(
        run.stdout
            .contains("✗ create web: failed to place order at `dc`\n"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("HTTP 403"),
        "the cause is on stderr, once"
    );
    assert!(
        stderr.trim_end().ends_with("failed"),
        "summary last: {stderr}"
    );
    assert!(!run.all().contains("sim-view-only-key"));
    // One create request: the executor does not repeat a refused create.
    assert_eq!(
        sim.stats()
            .requests_by_route
            .get("POST /order/certificate/{product}")
            .copied(),
        Some(1),
        "{:?}",
        sim.stats().requests_by_route
    );
}

#[test]
fn a_rejected_api_key_prints_the_key_hint_once() {
    let sim = Sim::start();
    let sandbox = Sandbox::with_config(&config(&sim.url()));
    let run = apply(&sandbox, "wrong-key-123").expect(1);
    let stderr = &run.stderr;
    assert!(
        stderr.contains("DigiCert rejected the API key of `dc` (HTTP 403)"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("DigiCert rejected the API key").count(),
        1,
        "each cause once: {stderr}"
    );
    assert_eq!(stderr.matches("hint:").count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "hint: check the API key: it may be wrong, copied only in part, revoked or expired"
        ),
        "{stderr}"
    );
    assert!(!run.all().contains("wrong-key-123"));
}

#[test]
fn a_rate_limited_create_prints_the_wait_as_a_hint_and_is_sent_once() {
    let sim = Sim::start();
    // An apply reads the organization, the product and the user (3 requests, each once: the
    // account is checked once per run) before its create: a window of 3 requests a minute
    // answers the create with 429 and `Retry-After`. The inventory's order list, a fourth
    // read, is off here.
    sim.running
        .as_ref()
        .expect("running")
        .set_limits(Limits {
            windows: vec![RateWindow {
                requests: 3,
                seconds: 60,
            }],
            retry_after_header: true,
        })
        .expect("limits");
    let sandbox = Sandbox::with_config(&config(&sim.url()).replace(
        "kind = \"digicert\"\n",
        "kind = \"digicert\"\ninventory = \"off\"\n",
    ));
    let run = apply(&sandbox, "sim-admin-key").expect(3);
    let stderr = &run.stderr;
    assert!(
        stderr.contains("error: certificate `web` (create): failed to place order at `dc`\n"),
        "{stderr}"
    );
    assert_eq!(
        stderr
            .matches("caused by: DigiCert rate limit reached for `dc` (HTTP 429)")
            .count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: the CA asked to wait ")
            && stderr.contains("s; certform retries on the next run after that"),
        "{stderr}"
    );
    // The create was sent once and refused (the simulator counts refused requests apart):
    // neither the HTTP layer nor the executor repeats it.
    let stats = sim.stats();
    assert_eq!(stats.rate_limited, 1, "{:?}", stats.requests_by_route);
    assert_eq!(stats.requests_by_route.get("rate_limited"), Some(&1));
    assert_eq!(stats.orders_total, 0);
}
