//! Killed runs: `apply` killed right after a reissue reached the CA (local CA and the DigiCert
//! simulator), and a randomized campaign that SIGKILLs the whole process group of `apply` after
//! a random delay, again and again, through creates, reissues and renewals.
//!
//! After each phase of the campaign a normal `apply` must converge at once, and then: one order
//! per certificate per create or renewal and one reissue per reissue (counted at the CA), every
//! deployed key matches its certificate, no private key in any git object, no lock or other
//! leftover that stops the next run (never `unlock --force`), no lock or temp file left at all,
//! `git status` clean and `git fsck` happy. The seed is printed first (shown when a test fails); `CERTFORM_CRASH_SEED` replays
//! a run. `benches/crash_random.rs` runs the same campaign with more kills.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use certform::sim::digicert::{DomainSeed, Limits, RateWindow, Seed};

use crate::digicert_sim::Sim;
use crate::sandbox::Sandbox;

/// A small seeded generator (SplitMix64): the same seed replays the same delays and changes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }
}

/// The seed of this run: `CERTFORM_CRASH_SEED`, else from the clock.
pub fn seed_from_env() -> u64 {
    std::env::var("CERTFORM_CRASH_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// How a run of certform ended.
pub struct Ended {
    /// Killed while still running (else it finished on its own).
    pub killed: bool,
    pub code: Option<i32>,
    pub output: String,
}

/// certform with the sandbox's hermetic environment, in its own process group.
fn certform_command(sandbox: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = sandbox.hermetic(env!("CARGO_BIN_EXE_certform"));
    command
        .args(args)
        .arg("-c")
        .arg(&sandbox.dir)
        .process_group(0)
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Run certform and SIGKILL its whole process group after `delay` unless it finished first.
pub fn run_killed_after(
    sandbox: &Sandbox,
    args: &[&str],
    env: &[(&str, &str)],
    delay: Duration,
) -> Ended {
    let out = sandbox.path(".run-output");
    let file = std::fs::File::create(&out).expect("output file");
    let started = Instant::now();
    let mut child = certform_command(sandbox, args, env)
        .stdout(file.try_clone().expect("output file"))
        .stderr(file)
        .spawn()
        .expect("run certform");
    let deadline = started + delay;
    let mut finished = child.try_wait().expect("wait").is_some();
    while !finished && Instant::now() < deadline {
        std::thread::sleep(
            Duration::from_millis(2).min(deadline.saturating_duration_since(Instant::now())),
        );
        finished = child.try_wait().expect("wait").is_some();
    }
    let killed = !finished;
    if killed {
        let group = i32::try_from(child.id()).expect("pid fits");
        // SAFETY: kill(2) with a negative pid signals the process group certform leads.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
    let status = child.wait().expect("wait");
    let output = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    Ended {
        killed,
        code: status.code(),
        output,
    }
}

/// Run certform to the end.
pub fn run_to_end(sandbox: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Ended {
    run_killed_after(sandbox, args, env, Duration::from_secs(600))
}

/// The DER `SubjectPublicKeyInfo` of a PEM certificate (x509-parser) or PKCS#8 key (rcgen),
/// and the certificate's serial as lowercase hex without leading zeros.
fn public_key(path: &Path, is_key: bool) -> (Vec<u8>, String) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let block = pem::parse(&text).unwrap_or_else(|e| panic!("{} is not PEM: {e}", path.display()));
    if is_key {
        use rcgen::PublicKeyData as _;
        let pair = rcgen::KeyPair::try_from(block.contents())
            .unwrap_or_else(|e| panic!("{} is not a PKCS#8 key: {e}", path.display()));
        return (pair.subject_public_key_info(), String::new());
    }
    let (_, certificate) = x509_parser::parse_x509_certificate(block.contents())
        .unwrap_or_else(|e| panic!("{} is not a certificate: {e}", path.display()));
    let serial = hex::encode(certificate.raw_serial());
    (
        certificate.public_key().raw.to_vec(),
        serial.trim_start_matches('0').to_string(),
    )
}

/// The deployed key of `name` belongs to the deployed certificate, which is the one in state,
/// and the key in keys_dir recorded in state is that key too.
#[track_caller]
fn assert_pair_matches(sandbox: &Sandbox, name: &str) {
    let out = sandbox.path(&format!("out/{name}"));
    let (cert_key, serial) = public_key(&out.join("cert.pem"), false);
    assert!(
        public_key(&out.join("privkey.pem"), true).0 == cert_key,
        "the deployed key of `{name}` does not match its certificate"
    );
    let key_id = sandbox.state_field(name, "key_id");
    assert!(!key_id.is_empty(), "state of `{name}` names no key id");
    assert!(
        public_key(&sandbox.path(&format!("keys/{name}/{key_id}.key")), true).0 == cert_key,
        "the key state names for `{name}` does not match the deployed certificate"
    );
    let recorded = sandbox
        .state_field(name, "serial")
        .replace(':', "")
        .to_lowercase();
    assert_eq!(
        serial,
        recorded.trim_start_matches('0'),
        "`{name}`: the deployed certificate is not the one in state"
    );
}

/// No private key in any object of the state repository, the work tree committed, the
/// repository sound.
#[track_caller]
fn assert_repo_clean(sandbox: &Sandbox) {
    let objects = sandbox.git("state", &["cat-file", "--batch-all-objects", "--batch"]);
    assert!(
        !objects.contains("PRIVATE KEY"),
        "a private key is in a git object of the state repository"
    );
    let status = sandbox.git("state", &["status", "--porcelain", "--untracked-files=all"]);
    assert!(status.trim().is_empty(), "state left uncommitted: {status}");
    sandbox.git("state", &["fsck", "--full", "--no-progress"]);
}

/// Every file below `dir` whose name matches `leftover`.
fn files_named(dir: &Path, leftover: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if leftover(&entry.file_name().to_string_lossy()) {
                found.push(path.display().to_string());
            }
        }
    }
    found.sort();
    found
}

/// After a normal apply nothing a killed run left behind remains: no lock file in the state
/// repository's `.git` (certform's own, the index's, a ref's), no temp file of an atomic write
/// (one may hold a private key) in state, keys_dir or a deploy target.
#[track_caller]
fn assert_no_leftovers(sandbox: &Sandbox) {
    let locks = files_named(&sandbox.path("state/.git"), &|name| name.ends_with(".lock"));
    assert!(locks.is_empty(), "lock files left: {locks:?}");
    for dir in ["state", "keys", "out"] {
        let temps = files_named(&sandbox.path(dir), &|name| name.contains(".tmp-"));
        assert!(temps.is_empty(), "temp files left in `{dir}`: {temps:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// A killed reissue is not sent again.
// ---------------------------------------------------------------------------------------------

/// The first apply after a kill; a lock the dead run left is broken the way a person would
/// have before lock takeover (the holder is dead, so `unlock --force` is safe here).
fn apply_after_kill(sandbox: &Sandbox, env: &[(&str, &str)]) -> crate::sandbox::Run {
    let run = sandbox.certform_env(&["apply", "--auto-approve"], env);
    if run.code != 0 && run.stderr.contains("locked by") {
        sandbox.certform(&["unlock", "--force"]).expect(0);
        return sandbox.certform_env(&["apply", "--auto-approve"], env);
    }
    run
}

#[test]
fn killed_local_reissue_is_adopted_not_sent_again() {
    let sandbox = Sandbox::with_config(crate::sandbox::WEB);
    sandbox.apply().expect(0);
    let order = sandbox.state_field("web", "order_id");
    let serial = sandbox.state_field("web", "serial");

    sandbox.write_config(&crate::sandbox::WEB.replace(
        "sans = [\"example.test\"]",
        "sans = [\"example.test\", \"shop.example.test\"]",
    ));
    let killed = sandbox.certform_env(
        &["apply", "--auto-approve"],
        &[("CERTFORM_FAILPOINT", "after-reissue")],
    );
    assert_eq!(killed.code, 99, "fail point not reached: {}", killed.all());

    let plan = sandbox.certform(&["plan"]);
    assert!(
        plan.stdout.contains("adopting it instead of"),
        "the plan must adopt the reissue: {}",
        plan.all()
    );
    apply_after_kill(&sandbox, &[]).expect(0);
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    let orders = sandbox.local_orders();
    assert_eq!(orders.len(), 1, "a reissue is not a new order");
    let reissues = orders[0]["previous_certificates"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert_eq!(reissues, 1, "exactly one reissue reached the CA");
    assert_eq!(sandbox.state_field("web", "order_id"), order);
    assert_ne!(sandbox.state_field("web", "serial"), serial);
    assert_eq!(
        orders[0]["serial"].as_str().unwrap_or_default(),
        sandbox.state_field("web", "serial"),
        "state holds the reissued certificate"
    );
    assert!(sandbox
        .sans_of("out/web/cert.pem")
        .contains("DNS:shop.example.test"));
    assert_pair_matches(&sandbox, "web");
    sandbox.verify_deployed("out/web");
    assert_repo_clean(&sandbox);
    assert_no_leftovers(&sandbox);
}

const ADMIN: &str = "sim-admin-key";
const REISSUE_ROUTE: &str = "POST /order/certificate/{id}/reissue";

/// The DigiCert simulator seeded with `example.test`, its rate limits out of the way.
fn start_sim() -> Sim {
    let domain: DomainSeed =
        serde_json::from_value(serde_json::json!({ "name": "example.test" })).expect("domain seed");
    let sim = Sim::start(Seed {
        random_seed: Some(21),
        domains: vec![domain],
        ..Seed::default()
    });
    // Dozens of runs in a few seconds: rate limits are tested elsewhere.
    sim.sim()
        .set_limits(Limits {
            windows: vec![RateWindow {
                requests: 1_000_000,
                seconds: 1,
            }],
            retry_after_header: false,
        })
        .expect("limits");
    sim
}

/// A config with the simulator's account `dc` and `(name, common_name, sans)` certificates.
fn sim_config(sim: &Sim, certificates: &[(&str, &str, &[&str])]) -> String {
    let mut text = format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{}\"\n",
        sim.sim().base_url()
    );
    for (name, common_name, sans) in certificates {
        let sans: Vec<String> = sans.iter().map(|s| format!("\"{s}\"")).collect();
        text.push_str(&format!(
            "\n[certificate.{name}]\nca = \"dc\"\ncommon_name = \"{common_name}\"\nsans = [{}]\nproduct = \"ssl_basic\"\norganization = 112233\nvalidity = {{ days = 90 }}\nrenew_before = \"30d\"\ndeploy = [{{ kind = \"files\", dir = \"out/{name}\" }}]\n",
            sans.join(", ")
        ));
    }
    text
}

#[test]
fn killed_digicert_reissue_is_adopted_not_sent_again() {
    let sim = start_sim();
    let sandbox = Sandbox::with_config(&sim_config(
        &sim,
        &[("web", "www.example.test", &["example.test"])],
    ));
    let env = [("DIGICERT_API_KEY", ADMIN)];
    sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    let order = sandbox.state_field("web", "order_id");
    let serial = sandbox.state_field("web", "serial");

    sandbox.write_config(&sim_config(
        &sim,
        &[(
            "web",
            "www.example.test",
            &["example.test", "shop.example.test"],
        )],
    ));
    let killed = sandbox.certform_env(
        &["apply", "--auto-approve"],
        &[
            ("DIGICERT_API_KEY", ADMIN),
            ("CERTFORM_FAILPOINT", "after-reissue"),
        ],
    );
    assert_eq!(killed.code, 99, "fail point not reached: {}", killed.all());
    assert_eq!(sim.requests(REISSUE_ROUTE), 1);

    let again = apply_after_kill(&sandbox, &env).expect(0);
    assert!(
        again
            .stdout
            .contains("adopting it instead of reissuing again"),
        "{}",
        again.stdout
    );
    sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(0);
    assert_eq!(
        sim.requests(REISSUE_ROUTE),
        1,
        "the reissue was sent again after the kill"
    );
    assert_eq!(sim.orders_for("www.example.test"), 1, "no new order");
    assert_eq!(sandbox.state_field("web", "order_id"), order);
    assert_ne!(sandbox.state_field("web", "serial"), serial);
    assert!(sandbox
        .sans_of("out/web/cert.pem")
        .contains("DNS:shop.example.test"));
    assert_pair_matches(&sandbox, "web");
    assert_repo_clean(&sandbox);
    assert_no_leftovers(&sandbox);
}

// ---------------------------------------------------------------------------------------------
// The randomized campaign.
// ---------------------------------------------------------------------------------------------

/// Which CA the campaign orders from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ca {
    Local,
    Digicert,
}

/// The size of a campaign.
#[derive(Debug, Clone, Copy)]
pub struct Campaign {
    pub seed: u64,
    pub ca: Ca,
    /// Killed runs wanted (runs that finished before their kill do not count).
    pub kills: usize,
    pub certificates: usize,
    /// Killed runs per phase (one phase = one config and clock).
    pub kills_per_phase: usize,
    /// Each kill comes after a delay drawn uniformly up to this (a run that finishes first
    /// ends its phase).
    pub max_delay_ms: u64,
}

/// Renewal phases at most (70 days each): the local CA's intermediate lives five years, the
/// simulator's organization validation one.
fn max_renewals(ca: Ca) -> i64 {
    match ca {
        Ca::Local => 8,
        Ca::Digicert => 3,
    }
}

/// What a campaign did.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub kills: usize,
    /// Runs that finished before their kill came.
    pub finished: usize,
    pub phases: usize,
    pub orders: u64,
    pub reissues: u64,
    pub renewals: u64,
    /// Orders and reissues an interrupted run left behind that a later run adopted.
    pub adopted_orders: usize,
    pub adopted_reissues: usize,
    pub elapsed: Duration,
}

impl Outcome {
    /// Count the adoptions a finished run's plan announced.
    fn count_adoptions(&mut self, output: &str) {
        self.adopted_orders += output
            .matches("adopting it instead of ordering again")
            .count();
        self.adopted_reissues += output
            .matches("adopting it instead of reissuing again")
            .count();
    }
}

/// What one phase changes.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Create,
    /// New SANs for the certificate with this index.
    Reissue(usize),
    /// The clock moved 70 days on: every certificate is due.
    Renew,
}

const NAMES: [&str; 6] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];

fn common_name(index: usize) -> String {
    format!("{}.example.test", NAMES[index % NAMES.len()])
}

fn local_config(sans: &[usize]) -> String {
    let mut text = String::from(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.local]\nkind = \"local\"\n",
    );
    for (index, version) in sans.iter().enumerate() {
        text.push_str(&format!(
            "\n[certificate.{name}]\ncommon_name = \"{cn}\"\nsans = [\"v{version}.{cn}\"]\nvalidity = {{ days = 90 }}\nrenew_before = \"30d\"\ndeploy = [{{ kind = \"files\", dir = \"out/{name}\" }}]\n",
            name = NAMES[index],
            cn = common_name(index),
        ));
    }
    text
}

/// Orders at the CA per common name, and reissues over all of them.
fn counts_at_ca(sandbox: &Sandbox, sim: Option<&Sim>, certificates: usize) -> Vec<(u64, u64)> {
    (0..certificates)
        .map(|index| {
            let cn = common_name(index);
            match sim {
                None => {
                    let orders: Vec<serde_json::Value> = sandbox
                        .local_orders()
                        .into_iter()
                        .filter(|o| o["common_name"].as_str() == Some(cn.as_str()))
                        .collect();
                    let reissues: usize = orders
                        .iter()
                        .map(|o| {
                            o["previous_certificates"]
                                .as_array()
                                .map(Vec::len)
                                .unwrap_or(0)
                        })
                        .sum();
                    (orders.len() as u64, reissues as u64)
                }
                Some(sim) => (sim.orders_for(&cn), 0),
            }
        })
        .collect()
}

/// Run a campaign; panics (with the seed) when an invariant breaks.
pub fn run_campaign(campaign: Campaign) -> Outcome {
    eprintln!(
        "random crash campaign: seed {} ({:?}, {} kills); replay with CERTFORM_CRASH_SEED={}",
        campaign.seed, campaign.ca, campaign.kills, campaign.seed
    );
    let started = Instant::now();
    let mut rng = Rng::new(campaign.seed);
    let sim = (campaign.ca == Ca::Digicert).then(start_sim);
    let sandbox = Sandbox::new();
    let mut sans = vec![0usize; campaign.certificates];
    let config = |sans: &[usize]| match &sim {
        None => local_config(sans),
        Some(sim) => {
            let names: Vec<(String, String, Vec<String>)> = sans
                .iter()
                .enumerate()
                .map(|(index, version)| {
                    let cn = common_name(index);
                    (
                        NAMES[index].to_string(),
                        cn.clone(),
                        vec![format!("v{version}.{cn}")],
                    )
                })
                .collect();
            let borrowed: Vec<(&str, &str, Vec<&str>)> = names
                .iter()
                .map(|(n, c, s)| {
                    (
                        n.as_str(),
                        c.as_str(),
                        s.iter().map(String::as_str).collect(),
                    )
                })
                .collect();
            let rows: Vec<(&str, &str, &[&str])> = borrowed
                .iter()
                .map(|(n, c, s)| (*n, *c, s.as_slice()))
                .collect();
            sim_config(sim, &rows)
        }
    };
    let base = time::OffsetDateTime::now_utc();
    let mut renewals_done = 0i64;
    let mut expected_orders = vec![0u64; campaign.certificates];
    let mut expected_reissues = vec![0u64; campaign.certificates];
    let mut reissue_requests = 0u64;
    let mut outcome = Outcome::default();
    let mut phase_index = 0usize;

    while outcome.kills < campaign.kills {
        let phase = match phase_index {
            0 => Phase::Create,
            n if n % 2 == 0 && renewals_done < max_renewals(campaign.ca) => Phase::Renew,
            _ => Phase::Reissue(rng.below(campaign.certificates as u64) as usize),
        };
        match phase {
            Phase::Create => {
                for expected in expected_orders.iter_mut() {
                    *expected += 1;
                }
            }
            Phase::Reissue(index) => {
                sans[index] += 1;
                expected_reissues[index] += 1;
                reissue_requests += 1;
            }
            Phase::Renew => {
                renewals_done += 1;
                if let Some(sim) = &sim {
                    // The simulator issues by its own clock: keep it with certform's.
                    assert!(sim.sim().advance_clock(Duration::from_secs(70 * 86_400)));
                }
                for expected in expected_orders.iter_mut() {
                    *expected += 1;
                }
            }
        }
        sandbox.write_config(&config(&sans));
        let now = (base + time::Duration::days(70 * renewals_done))
            .format(&time::format_description::well_known::Rfc3339)
            .expect("time formats");
        let env = [("CERTFORM_NOW", now.as_str()), ("DIGICERT_API_KEY", ADMIN)];

        let mut phase_kills = 0;
        while phase_kills < campaign.kills_per_phase && outcome.kills < campaign.kills {
            let delay = Duration::from_millis(rng.below(campaign.max_delay_ms + 1));
            let ended = run_killed_after(&sandbox, &["apply", "--auto-approve"], &env, delay);
            if ended.killed {
                phase_kills += 1;
                outcome.kills += 1;
                continue;
            }
            outcome.finished += 1;
            outcome.count_adoptions(&ended.output);
            assert_eq!(
                ended.code,
                Some(0),
                "seed {}: phase {phase_index} ({phase:?}): an apply after a killed run failed (it must recover on its own):\n{}",
                campaign.seed,
                ended.output
            );
            // The work of this phase is done: kill the next phase instead.
            break;
        }

        // Converge: the next normal apply finishes the work at once.
        let converged = run_to_end(&sandbox, &["apply", "--auto-approve"], &env);
        outcome.count_adoptions(&converged.output);
        assert_eq!(
            converged.code,
            Some(0),
            "seed {}: phase {phase_index} ({phase:?}): the apply after the kills failed:\n{}",
            campaign.seed,
            converged.output
        );
        let plan = run_to_end(&sandbox, &["plan", "--detailed-exitcode"], &env);
        assert_eq!(
            plan.code,
            Some(0),
            "seed {}: phase {phase_index} ({phase:?}): not converged after one apply:\n{}",
            campaign.seed,
            plan.output
        );

        let counts = counts_at_ca(&sandbox, sim.as_ref(), campaign.certificates);
        for (index, (orders, reissues)) in counts.iter().enumerate() {
            assert_eq!(
                *orders,
                expected_orders[index],
                "seed {}: phase {phase_index} ({phase:?}): orders for {}",
                campaign.seed,
                common_name(index)
            );
            if sim.is_none() {
                assert_eq!(
                    *reissues,
                    expected_reissues[index],
                    "seed {}: phase {phase_index} ({phase:?}): reissues of {}",
                    campaign.seed,
                    common_name(index)
                );
            }
        }
        if let Some(sim) = &sim {
            assert_eq!(
                sim.requests(REISSUE_ROUTE),
                reissue_requests,
                "seed {}: phase {phase_index} ({phase:?}): reissue requests at DigiCert",
                campaign.seed
            );
        }
        for name in NAMES.iter().take(campaign.certificates) {
            assert_pair_matches(&sandbox, name);
        }
        assert_repo_clean(&sandbox);
        assert_no_leftovers(&sandbox);
        phase_index += 1;
    }

    outcome.phases = phase_index;
    outcome.orders = expected_orders.iter().sum();
    outcome.reissues = expected_reissues.iter().sum();
    outcome.renewals = renewals_done as u64 * campaign.certificates as u64;
    outcome.elapsed = started.elapsed();
    outcome
}

#[test]
fn random_kills_with_the_local_ca_converge_safely() {
    let outcome = run_campaign(Campaign {
        seed: seed_from_env(),
        ca: Ca::Local,
        kills: 30,
        certificates: 3,
        kills_per_phase: 3,
        max_delay_ms: 500,
    });
    assert!(outcome.kills >= 30);
    eprintln!("{outcome:?}");
}

#[test]
fn random_kills_with_the_digicert_simulator_converge_safely() {
    let outcome = run_campaign(Campaign {
        seed: seed_from_env(),
        ca: Ca::Digicert,
        kills: 12,
        certificates: 2,
        kills_per_phase: 3,
        max_delay_ms: 400,
    });
    assert!(outcome.kills >= 12);
    eprintln!("{outcome:?}");
}

#[test]
fn killed_revoke_is_neither_requested_twice_nor_lost() {
    const ORDERS_KEY: &str = "sim-orders-key";
    const REVOKE_ROUTE: &str = "PUT /certificate/{id}/revoke";
    let sim = start_sim();
    let web = sim_config(&sim, &[("web", "www.example.test", &["example.test"])]);
    let api = sim_config(&sim, &[("api", "api.example.test", &["example.test"])]);
    for (key, config) in [(ORDERS_KEY, &web), (ADMIN, &api)] {
        let name = if key == ADMIN { "api" } else { "web" };
        let sandbox = Sandbox::with_config(config);
        sandbox
            .certform_env(&["apply", "--auto-approve"], &[("DIGICERT_API_KEY", ADMIN)])
            .expect(0);
        let before = sim.requests(REVOKE_ROUTE);
        sandbox.write_config(&format!("{config}revoke = true\n"));
        let killed = sandbox.certform_env(
            &["apply", "--auto-approve"],
            &[
                ("DIGICERT_API_KEY", key),
                ("CERTFORM_FAILPOINT", "after-revoke"),
            ],
        );
        assert_eq!(killed.code, 99, "{key}: {}", killed.all());
        assert_eq!(sim.requests(REVOKE_ROUTE), before + 1);

        let env = [("DIGICERT_API_KEY", key)];
        let again = apply_after_kill(&sandbox, &env).expect(0);
        if key == ADMIN {
            // Revoked at once: the next run records what the CA reports.
            assert!(again.stdout.contains("already revoked"), "{}", again.stdout);
            assert_eq!(sandbox.state_field(name, "status"), "revoked");
            sandbox
                .certform_env(&["plan", "--detailed-exitcode"], &env)
                .expect(0);
        } else {
            // The request awaits an approver: the next runs report it, never ask again.
            assert!(again.stdout.contains("awaits approval"), "{}", again.stdout);
            let third = sandbox
                .certform_env(&["apply", "--auto-approve"], &env)
                .expect(0);
            assert!(third.stdout.contains("awaits approval"), "{}", third.stdout);
        }
        assert_eq!(
            sim.requests(REVOKE_ROUTE),
            before + 1,
            "{key}: the revoke was requested again"
        );
        assert_repo_clean(&sandbox);
    }
}

#[test]
fn the_apply_summary_says_what_failed() {
    let config = |names: &[&str]| {
        let mut text = local_config(&vec![0; names.len()]);
        for (index, name) in names.iter().enumerate() {
            text = text.replace(&format!("out/{}\"", NAMES[index]), &format!("{name}\""));
        }
        text
    };
    // A deploy dir that is a regular file fails that certificate's change.
    let sandbox = Sandbox::with_config(&config(&["blocked/a", "blocked/b"]));
    std::fs::write(sandbox.path("blocked"), "not a directory").expect("file");
    let all = sandbox.apply().expect(3);
    assert!(
        all.stderr.contains("error: all 2 changes failed") && !all.stderr.contains("others"),
        "{}",
        all.all()
    );

    let sandbox = Sandbox::with_config(&config(&["out/a", "blocked/b"]));
    std::fs::write(sandbox.path("blocked"), "not a directory").expect("file");
    let some = sandbox.apply().expect(3);
    assert!(
        some.stderr
            .contains("error: 1 of 2 changes failed; the other change was applied"),
        "{}",
        some.all()
    );
}
