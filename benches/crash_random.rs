//! Randomized crash benchmark: `cargo bench --bench crash_random`.
//!
//! The campaign of `tests/cli/random_crash.rs` at a larger size: `apply` SIGKILLed (its whole
//! process group) after a random delay, phase after phase of creates, reissues and renewals,
//! with every invariant checked after each phase (one order per certificate per operation,
//! deployed keys match, no private key in git, no blocking lock, clean and sound repository).
//! `CERTFORM_CRASH_KILLS` sets the kills per CA (default 150 with the local CA, a third of that
//! with the DigiCert simulator); `CERTFORM_CRASH_SEED` replays a run. Prints a summary.

#[path = "../tests/cli/sandbox.rs"]
#[expect(
    dead_code,
    reason = "shared with the CLI tests; the benchmark uses part of it"
)]
mod sandbox;

#[path = "../tests/cli/digicert_sim.rs"]
#[expect(
    dead_code,
    reason = "shared with the CLI tests; the benchmark uses part of it"
)]
mod digicert_sim;

#[path = "../tests/cli/random_crash.rs"]
#[expect(
    dead_code,
    reason = "shared with the CLI tests; the benchmark uses the campaign"
)]
mod random_crash;

use random_crash::{run_campaign, seed_from_env, Ca, Campaign};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("crash benchmark: run with `cargo bench --bench crash_random`");
        return;
    }
    let kills: usize = std::env::var("CERTFORM_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(150);
    let seed = seed_from_env();
    println!("crash_random: seed {seed} (replay with CERTFORM_CRASH_SEED={seed})");
    for (ca, kills, certificates, max_delay_ms) in [
        (Ca::Local, kills, 4, 500),
        (Ca::Digicert, kills.div_ceil(3).max(1), 3, 400),
    ] {
        let outcome = run_campaign(Campaign {
            seed,
            ca,
            kills,
            certificates,
            kills_per_phase: 3,
            max_delay_ms,
        });
        let seconds = outcome.elapsed.as_secs_f64();
        println!(
            "{ca:?}: {} killed runs, {} runs finished before their kill, {} phases converged; \
             {} orders, {} reissues, {} renewals ({} orders and {} reissues left by a killed run \
             adopted), every invariant held; {seconds:.1} s ({:.2} s per kill)",
            outcome.kills,
            outcome.finished,
            outcome.phases,
            outcome.orders,
            outcome.reissues,
            outcome.renewals,
            outcome.adopted_orders,
            outcome.adopted_reissues,
            seconds / outcome.kills.max(1) as f64,
        );
    }
}
