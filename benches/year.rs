//! The simulated year: `cargo bench --bench year` (10,000 certificates, 365 days), or
//! `cargo bench --bench year -- CERTIFICATES DAYS` for another size.
//!
//! Certificates on the local CA with 47-day lifetimes renewing at a third of the lifetime
//! left, declared in three bursts, one scheduled `apply` a day with the clock advanced in
//! process, 2 % of orders refused transiently by the CA (`simulate_failures`), a CA budget of
//! twice the expected daily renewals. Prints renewals per day (max against mean after the
//! first window), certificates that ever expired, renewals per certificate per lifetime, CA
//! writes per day against the budget, CPU time, the state repository's size and the slowest
//! day, and exits non-zero when a property does not hold.

use certform::sim::year::{run, YearOptions};

fn main() {
    // `cargo test --all-targets` runs benches in test mode with `--bench` absent: a full year
    // there would take hours in a debug build (the CI-size year is a test in tests/cli).
    if !std::env::args().any(|a| a == "--bench") {
        println!("year benchmark: run with `cargo bench --bench year [-- CERTIFICATES DAYS]`");
        return;
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let certificates = args.first().copied().unwrap_or(10_000);
    let days = args
        .get(1)
        .copied()
        .and_then(|d| u32::try_from(d).ok())
        .unwrap_or(365);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = YearOptions::new(dir.path().to_path_buf(), certificates, days);
    options.progress = true;
    let budget = options.max_orders_per_run as usize;
    let report = match run(options) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: the simulated year failed: {error}");
            std::process::exit(1);
        }
    };
    println!("{}", report.describe());
    let (mean, max) = report.renewals_per_day();
    let mut broken = Vec::new();
    if max as f64 > 2.0 * mean {
        broken.push(format!("renewal storm: max {max} > 2 x mean {mean:.1}"));
    }
    if !report.expired.is_empty() {
        broken.push(format!("{} certificates expired", report.expired.len()));
    }
    if report.max_renewals_per_lifetime > 2 {
        broken.push(format!(
            "a certificate renewed {} times within one lifetime",
            report.max_renewals_per_lifetime
        ));
    }
    if report.days.iter().any(|d| d.ca_writes > budget) {
        broken.push("a day exceeded the CA budget".to_string());
    }
    if !broken.is_empty() {
        for line in broken {
            eprintln!("error: {line}");
        }
        std::process::exit(1);
    }
}
