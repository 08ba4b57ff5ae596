//! Engine benchmark: `cargo bench --bench engine`.
//!
//! 1. Pure core: load + validate a configuration of N certificates and plan against a state
//!    where every certificate is issued and deployed (the nightly "nothing due" case), N up to
//!    10,000.
//! 2. End to end through the binary with the local CA: apply 200 certificates from nothing,
//!    then the scheduled run that finds nothing due (`apply` with no changes).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use certform::config::{self, Source};
use certform::observed::Observed;
use certform::plan::{self, PlanInput};
use certform::state::{CertificateState, CertificateStatus, DeployRecord, State};
use time::OffsetDateTime;

fn config_text(n: usize) -> String {
    let mut text = String::from(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.local]\nkind = \"local\"\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "\n[certificate.c{i}]\ncommon_name = \"host{i}.example.test\"\nsans = [\"alt{i}.example.test\"]\ndeploy = [{{ kind = \"files\", dir = \"out/c{i}\" }}]\n"
        ));
    }
    text
}

fn issued_state(config: &config::Config, now: OffsetDateTime) -> State {
    let mut state = State::default();
    for (name, spec) in &config.certificates {
        let fingerprint = format!("fp-{name}");
        let deployments = spec
            .deploy
            .iter()
            .map(|t| {
                (
                    t.id(),
                    Box::new(DeployRecord {
                        sha256_fingerprint: fingerprint.clone(),
                        target_digest: t.digest(),
                        files: Default::default(),
                        deployed_at: now,
                        reload_error: None,
                        serial: None,
                        verified: None,
                        paths: Vec::new(),
                        cleanup: false,
                        verify_error: None,
                        ssh: None,
                    }),
                )
            })
            .collect();
        state.certificates.insert(
            name.clone(),
            CertificateState {
                format: 1,
                name: name.clone(),
                id: format!("id-{name}"),
                ca: spec.ca.clone(),
                status: CertificateStatus::Issued,
                order_id: Some(format!("o-{name}")),
                certificate_id: None,
                serial: Some("01".into()),
                not_before: Some(now - time::Duration::days(1)),
                not_after: Some(now + time::Duration::days(89)),
                sha256_fingerprint: Some(fingerprint),
                spki_sha256: None,
                common_name: spec.common_name.to_string(),
                sans: spec.sans.iter().map(|s| s.to_string()).collect(),
                key_algorithm: spec.key.label(),
                key_id: None,
                legacy_key_file: None,
                spec_digest: spec.issuance_digest(),
                spec_fields: spec.issuance_fields().into_iter().collect(),
                on_remove: spec.on_remove,
                prevent_destroy: false,
                revoke_reason: None,
                intent: None,
                deployments,
                renewal_window: None,
                retry_after: None,
                plan_until: None,
                backoff: None,
                history: Vec::new(),
            },
        );
    }
    state
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn pure_core() {
    println!("pure core (median of 5):");
    println!("  {:>7}  {:>12}  {:>12}", "certs", "load+check", "plan");
    let now = OffsetDateTime::now_utc();
    for n in [100, 1_000, 10_000] {
        let source = Source {
            path: std::path::PathBuf::from("/bench/certform.toml"),
            text: config_text(n),
        };
        let mut loads = Vec::new();
        let mut plans = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let config = config::load(std::slice::from_ref(&source)).expect("valid config");
            loads.push(started.elapsed());
            let state = issued_state(&config, now);
            let observed = Observed::default();
            let capabilities = BTreeMap::new();
            let started = Instant::now();
            let plan = plan::plan(&PlanInput {
                certificates: &config.certificates,
                state: &state,
                observed: &observed,
                capabilities: &capabilities,
                replace: &std::collections::BTreeSet::new(),
                now,
                thresholds: config.thresholds,
            });
            plans.push(started.elapsed());
            assert!(plan.is_empty(), "nothing is due");
        }
        println!(
            "  {n:>7}  {:>12.2?}  {:>12.2?}",
            median(loads),
            median(plans)
        );
    }
}

fn end_to_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = 200;
    std::fs::write(dir.path().join("certform.toml"), config_text(n)).expect("config");
    let run = |args: &[&str]| {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_certform"))
            .args(args)
            .arg("-c")
            .arg(dir.path())
            .env("NO_COLOR", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("run certform");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        started.elapsed()
    };
    println!("end to end, local CA, {n} certificates (ECDSA P-256, files deploy):");
    let apply = run(&["apply", "--auto-approve", "--parallelism", "8"]);
    println!(
        "  apply from nothing:       {apply:>10.2?}  ({:.1} ms per certificate)",
        apply.as_secs_f64() * 1000.0 / n as f64
    );
    let idle: Vec<Duration> = (0..5).map(|_| run(&["apply", "--auto-approve"])).collect();
    println!(
        "  scheduled run, none due:  {:>10.2?}  (median of 5)",
        median(idle)
    );
    let plans: Vec<Duration> = (0..5).map(|_| run(&["plan"])).collect();
    println!(
        "  plan, none due:           {:>10.2?}  (median of 5)",
        median(plans)
    );
}

fn main() {
    // `cargo test --all-targets` runs benches in test mode with `--bench` absent: keep that fast.
    if !std::env::args().any(|a| a == "--bench") {
        println!("engine benchmark: run with `cargo bench --bench engine`");
        return;
    }
    pure_core();
    end_to_end();
}
