//! DigiCert benchmark: `cargo bench --bench digicert`.
//!
//! 10,000 issued orders in the simulator, all imported into state; then, with 20 ms added
//! latency per request and the default rate limits (100 per 5 s, 1000 per 3 min), time a
//! `certform plan` (refresh + plan) and count the API requests it made. One GET per order
//! would need ~30 minutes under those limits.

use std::process::Command;
use std::time::Instant;

use certform::sim::digicert::{self as sim, Limits, Seed};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("digicert benchmark: run with `cargo bench --bench digicert`");
        return;
    }
    let orders = 10_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let seed = Seed::from_json(&format!(
        r#"{{"random_seed": 7, "domains": [{{"name": "example.test"}}],
            "orders": [{{"count": {orders}, "common_name": "h{{n}}.example.test", "status": "issued"}}],
            "limits": {{"windows": []}}}}"#
    ))
    .expect("seed");
    let started = Instant::now();
    let running = runtime
        .block_on(sim::start(seed, "127.0.0.1:0".parse().expect("addr")))
        .expect("simulator");
    println!(
        "simulator with {orders} orders started in {:.2?}",
        started.elapsed()
    );

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("certform.toml"),
        format!(
            "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{}\"\n",
            running.base_url()
        ),
    )
    .expect("config");
    let certform = |args: &[&str]| {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_certform"))
            .args(args)
            .arg("-c")
            .arg(dir.path())
            .env("DIGICERT_API_KEY", "sim-admin-key")
            .env("NO_COLOR", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("run certform");
        assert!(
            output.status.success(),
            "certform {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        (
            started.elapsed(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };

    let stubs = dir.path().join("imported.toml");
    let stubs_arg = stubs.to_string_lossy().into_owned();
    let (import, _) = certform(&["import", "dc", "--write-config", &stubs_arg]);
    println!("import of {orders} orders (no added latency, no limits): {import:.2?}");

    running
        .set_faults(serde_json::from_str(r#"{"latency_ms": 20}"#).expect("faults"))
        .expect("faults");
    running.set_limits(Limits::default()).expect("limits");
    for round in 1..=3 {
        let before = running.stats().requests_total;
        let (elapsed, stdout) = certform(&["plan"]);
        let requests = running.stats().requests_total - before;
        assert!(
            stdout.contains("No changes"),
            "plan after import is empty: {stdout}"
        );
        println!(
            "plan over {orders} certificates, 20 ms latency, default limits (run {round}): {elapsed:.2?}, {requests} API requests"
        );
    }
    runtime.block_on(running.shutdown()).expect("shutdown");
}
