//! DigiCert benchmark: `cargo bench --bench digicert`.
//!
//! 10,000 issued orders in the simulator, with CertCentral's rate limits (100 requests per
//! 5 s and 1,000 per 3 min, rolling) run 20 times faster (`limits_time_scale`), and certform's
//! budget (`rate_limit`) scaled the same way. It imports every order (one list page per 1,000
//! orders, then one download per order: ~10,010 requests, so the 1,000 per 3 min window bounds
//! it at ~30 minutes of real time, ~90 s here), asserts zero 429s and reports the requests
//! made, the wall time and its real-time equivalent; then times a `certform plan` (refresh +
//! plan, 20 ms added latency per request) and counts its requests (the list, never one request
//! per order; the account's inventory listing, another page per 1,000 orders, is off here).

use std::process::Command;
use std::time::Instant;

use certform::sim::digicert::{self as sim, Seed};

/// How much faster than real time the simulator's limits (and certform's budget) run.
const SCALE: u32 = 20;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("digicert benchmark: run with `cargo bench --bench digicert`");
        return;
    }
    let orders: usize = std::env::var("CERTFORM_BENCH_ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let seed = Seed::from_json(&format!(
        r#"{{"random_seed": 7, "domains": [{{"name": "example.test"}}],
            "orders": [{{"count": {orders}, "common_name": "h{{n}}.example.test", "status": "issued", "age_days": 3}}],
            "limits": {{"windows": [{{"requests": 100, "seconds": 5}}, {{"requests": 1000, "seconds": 180}}]}},
            "limits_time_scale": {SCALE}}}"#
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
    // CertCentral's windows divided by SCALE: 100 per 0.25 s, 1,000 per 9 s.
    let per_5s = 5.0 / f64::from(SCALE);
    let per_3min = 180.0 / f64::from(SCALE);
    std::fs::write(
        dir.path().join("certform.toml"),
        format!(
            "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{}\"\ninventory = \"off\"\nrate_limit = [{{ requests = 100, seconds = {per_5s} }}, {{ requests = 1000, seconds = {per_3min} }}]\n",
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
    let before = running.stats();
    let (import, stdout) = certform(&["import", "dc", "--write-config", &stubs_arg]);
    let after = running.stats();
    let requests = after.requests_total - before.requests_total;
    let limited = after.rate_limited - before.rate_limited;
    let imported = stdout.matches("imported h").count();
    println!(
        "import of {orders} orders, limits {SCALE}x faster: {import:.2?} wall, {requests} API requests, {limited} answered 429; real-time equivalent {:.1} min (the 1,000 per 3 min window: {:.1} min for {requests} requests)",
        import.as_secs_f64() * f64::from(SCALE) / 60.0,
        requests as f64 * 180.0 / 1000.0 / 60.0
    );
    assert_eq!(imported, orders, "every order imported");
    assert_eq!(limited, 0, "no 429 within the budget");

    running
        .set_faults(serde_json::from_str(r#"{"latency_ms": 20}"#).expect("faults"))
        .expect("faults");
    for round in 1..=3 {
        let before = running.stats();
        let (elapsed, stdout) = certform(&["plan"]);
        let after = running.stats();
        let requests = after.requests_total - before.requests_total;
        assert!(
            stdout.contains("No changes"),
            "plan after import is empty: {stdout}"
        );
        println!(
            "plan over {orders} certificates, 20 ms latency, limits {SCALE}x faster (run {round}): {elapsed:.2?}, {requests} API requests, {} answered 429",
            after.rate_limited - before.rate_limited
        );
        assert!(
            requests <= 15,
            "refresh of {orders} orders takes at most 15 requests, not {requests}"
        );
    }
    runtime.block_on(running.shutdown()).expect("shutdown");
}
