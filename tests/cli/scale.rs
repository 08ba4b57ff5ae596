//! Past 64 certificates the local reads of a plan (state files, chains, deployed files, keys)
//! run on several threads: what each certificate's reads find must land on that certificate.
//! Timings are in `benches/scale.rs`, not here.

use crate::sandbox::Sandbox;

/// Enough certificates for more than one reading thread (64 per thread at least).
const CERTIFICATES: usize = 130;

fn config() -> String {
    let mut text = String::from(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.local]\nkind = \"local\"\n",
    );
    for i in 0..CERTIFICATES {
        text.push_str(&format!(
            "\n[certificate.c{i}]\ncommon_name = \"host{i}.example.test\"\ndeploy = [{{ kind = \"files\", dir = \"out/c{i}\" }}]\n"
        ));
    }
    text
}

#[test]
fn drift_found_by_the_parallel_reads_is_reported_on_its_own_certificate() {
    let sandbox = Sandbox::with_config(&config());
    sandbox
        .certform(&["apply", "--auto-approve", "--parallelism", "8"])
        .expect(0);
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    // One drift in each part of the list: a deployed file gone, one edited, a key lost.
    std::fs::remove_file(sandbox.path("out/c3/cert.pem")).expect("remove cert.pem");
    let fullchain = sandbox.path("out/c120/fullchain.pem");
    let mut edited = std::fs::read(&fullchain).expect("read fullchain.pem");
    edited.extend_from_slice(b"\n");
    std::fs::write(&fullchain, edited).expect("edit fullchain.pem");
    std::fs::remove_dir_all(sandbox.path("keys/c77")).expect("remove the key of c77");

    let plan = sandbox.certform(&["plan", "--detailed-exitcode"]).expect(2);
    let headers: Vec<&str> = plan
        .stdout
        .lines()
        .filter(|line| line.starts_with("  ") && !line.starts_with("    "))
        .map(str::trim)
        .collect();
    assert_eq!(
        headers,
        [
            "→ deploy c120 (ca `local`)",
            "→ deploy c3 (ca `local`)",
            "→ deploy c77 (ca `local`)",
        ],
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("`files:out/c120`: drift: changed on disk: fullchain.pem"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("`files:out/c3`: drift: missing on disk: cert.pem"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("certform holds no private key") && plan.stdout.contains("keys/c77/"),
        "{}",
        plan.stdout
    );

    // The two deploys that can run are repaired; the lost key still blocks c77 alone.
    let apply = sandbox.certform(&[
        "apply",
        "--auto-approve",
        "--target",
        "c3",
        "--target",
        "c120",
    ]);
    apply.expect(0);
    sandbox
        .certform(&[
            "plan",
            "--detailed-exitcode",
            "--target",
            "c3",
            "--target",
            "c120",
        ])
        .expect(0);
}
