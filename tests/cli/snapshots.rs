//! Snapshots of what users see: each run of the `certform` binary is one snapshot in
//! `tests/cli/snapshots/` holding the command, the exit code, stdout and stderr. A changed word,
//! line or exit code fails the test with a diff; review it, then accept it (README,
//! "Development": `INSTA_UPDATE=always cargo test --test cli snapshots::`, or `cargo insta
//! review`). CI sets `INSTA_UPDATE=no`, so a changed snapshot fails there and nothing is written.
//!
//! Runs are hermetic (the sandbox's clean environment) with the clock pinned by `CERTFORM_NOW`.
//! What still differs between runs and machines is replaced before comparing: the sandbox's
//! paths (`[WORK]`, `[HOME]`), times (`[TIME]`), serials (`[SERIAL]`), the version in plan
//! documents (`[VERSION]`), fingerprints, hex ids such as commit hashes (`[HEX]`), durations
//! (`[DURATION]`) and loopback ports (`[PORT]`).

use certform::sim::digicert::{self as sim, Seed};

use crate::sandbox::{Run, Sandbox};

/// The pinned clock of every run.
const NOW: &str = "2026-01-15T12:00:00Z";
/// 71 days later: `web` (90 days, renew at 33% left: the window opens on day 60.3 and
/// renewals spread to day 70.2, by serial) is overdue, `api` (30 days) has expired.
const LATER: &str = "2026-03-27T12:00:00Z";

const QUICKSTART: &str = include_str!("../../examples/quickstart/certform.toml");

/// Unknown keys and values: rejected while reading the file, with "did you mean".
const BAD_SCHEMA: &str = r#"[state]
repo = "state"
keys_dir = "keys"

[ca.local]
kind = "local"

[certificate.web]
common_name = "www.example.test"
validty = { days = 90 }
deploy = [{ kind = "ftp", dir = "out/web" }]
"#;

/// Well-formed but breaking the rules: every problem reported in one pass.
const BAD_RULES: &str = r#"[state]
repo = "state"
keys_dir = "keys"

[ca.local]
kind = "local"

[certificate.web]
common_name = "www.example.test"
sans = ["example.test", "bad name.test"]
renew_before = "30 days"
deploy = [{ kind = "files", dir = "out/web" }]

[certificate.api]
ca = "lokal"
common_name = "api.example.test"
key = { algorithm = "rsa", size = 1024 }
deploy = [{ kind = "files", dir = "out/api" }]
"#;

/// Not TOML at all.
const BAD_SYNTAX: &str = "[state]\nrepo = \"state\nkeys_dir = \"keys\"\n";

/// Replacements for what varies between runs and machines, most specific first.
const FILTERS: &[(&str, &str)] = &[
    (
        r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "[TIME]",
    ),
    (r"\bserial [0-9A-Fa-f:]+", "serial [SERIAL]"),
    (r#""serial": "[0-9A-Fa-f:]+""#, r#""serial": "[SERIAL]""#),
    (
        r#""certform_version": "[^"]+""#,
        r#""certform_version": "[VERSION]""#,
    ),
    (r"\b([0-9A-Fa-f]{2}:){7,}[0-9A-Fa-f]{2}\b", "[FINGERPRINT]"),
    (r"\b[0-9a-f]{12,}\b", "[HEX]"),
    (r"\b[0-9A-F]{12,}\b", "[HEX]"),
    (r"\b\d+(\.\d+)?(ns|µs|us|ms|s)\b", "[DURATION]"),
    (r"\b(127\.0\.0\.1|localhost|\[::1\]):\d+", "$1:[PORT]"),
];

/// One run as a snapshot: the command line (with the environment it adds to the sandbox's),
/// exit code, stdout and stderr.
fn transcript(sandbox: &Sandbox, command: &str, run: &Run) -> String {
    let mut text = format!(
        "$ {command}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.stdout, run.stderr
    );
    // The sandbox's own paths first, whole (also as the kernel spells them, should the temp
    // dir be reached through a symbolic link), so nothing of them is left for the filters.
    for (path, name) in [(&sandbox.dir, "[WORK]"), (&sandbox.home, "[HOME]")] {
        if let Ok(canonical) = std::fs::canonicalize(path) {
            text = text.replace(&canonical.display().to_string(), name);
        }
        text = text.replace(&path.display().to_string(), name);
    }
    text
}

/// The snapshot settings: no assertion expression in the file, and the filters.
fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_omit_expression(true);
    for (pattern, replacement) in FILTERS {
        settings.add_filter(pattern, *replacement);
    }
    settings
}

/// Compare a transcript with the snapshot `name`, after the filters.
#[track_caller]
fn assert_transcript(name: &str, transcript: &str) {
    settings().bind(|| insta::assert_snapshot!(name, transcript));
}

/// Run `certform ARGS -c <sandbox>` at `now` with extra environment, and snapshot it.
#[track_caller]
fn snapshot_at(name: &str, sandbox: &Sandbox, args: &[&str], now: &str, env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.push(("CERTFORM_NOW", now));
    let run = sandbox.certform_env(args, &env);
    let assignments: Vec<String> = env
        .iter()
        .map(|(key, value)| format!("{key}={value} "))
        .collect();
    let command = format!(
        "{}certform {} -c {}",
        assignments.concat(),
        args.join(" "),
        sandbox.dir.display()
    );
    assert_transcript(name, &transcript(sandbox, &command, &run));
}

#[track_caller]
fn snapshot(name: &str, sandbox: &Sandbox, args: &[&str]) {
    snapshot_at(name, sandbox, args, NOW, &[]);
}

/// The filters replace what varies, and only that.
#[test]
fn filters_replace_what_varies_between_runs() {
    let varying = "\
expires 2026-02-14T12:00:00Z, at 2026-02-14T12:00:00.123+01:00
serial 6cebd68004a23f92b2a168acd16796a2 and serial 6C:EB:D6:80
\"serial\": \"5920f31ce2a4cf9ea6aa6d16513b32ae\"
sha256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89
state committed: 713fcbf1b37e, key 0123456789ABCDEF
took 1.25s, 300ms, 12µs
https://127.0.0.1:39123/services/v2/ and localhost:8080
";
    let kept = "\
names: example.test, www.example.test
key: rsa-3072, validity: 30 days, renew_before 33%, like `10m` or `30d`
exit: 3, 25 days left, organization 112233, deadbeef
";
    settings().bind(|| {
        insta::assert_snapshot!(format!("{varying}{kept}"), @r#"
        expires [TIME], at [TIME]
        serial [SERIAL] and serial [SERIAL]
        "serial": "[SERIAL]"
        sha256 [FINGERPRINT]
        state committed: [HEX], key [HEX]
        took [DURATION], [DURATION], [DURATION]
        https://127.0.0.1:[PORT]/services/v2/ and localhost:[PORT]
        names: example.test, www.example.test
        key: rsa-3072, validity: 30 days, renew_before 33%, like `10m` or `30d`
        exit: 3, 25 days left, organization 112233, deadbeef
        "#);
    });
}

#[test]
fn help_of_every_command() {
    let sandbox = Sandbox::new();
    let commands = [
        "", "init", "validate", "plan", "apply", "status", "unlock", "schema", "ca", "import",
        "sim",
    ];
    for command in commands {
        let mut args: Vec<&str> = command.split_whitespace().collect();
        args.push("--help");
        // Without `-c`: the help is what a user sees, and `--help` never reads a config.
        let output = sandbox
            .hermetic(env!("CARGO_BIN_EXE_certform"))
            .args(&args)
            .output()
            .expect("run certform");
        let run = Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        let name = match command {
            "" => "help".to_string(),
            command => format!("help_{command}"),
        };
        let command = format!("certform {}", args.join(" "));
        assert_transcript(&name, &transcript(&sandbox, &command, &run));
    }
}

#[test]
fn validate_plan_and_status_of_the_quickstart() {
    let sandbox = Sandbox::with_config(QUICKSTART);
    snapshot("validate_quickstart", &sandbox, &["validate"]);
    snapshot("plan_quickstart", &sandbox, &["plan"]);
    snapshot(
        "plan_quickstart_json",
        &sandbox,
        &["plan", "--format", "json"],
    );
    snapshot(
        "plan_quickstart_markdown",
        &sandbox,
        &["plan", "--format", "markdown"],
    );
    snapshot(
        "plan_quickstart_detailed_exitcode",
        &sandbox,
        &["plan", "--detailed-exitcode"],
    );
    snapshot("status_quickstart_before_apply", &sandbox, &["status"]);
}

/// The README's day: apply from nothing, nothing left to do, then the renewal due 71 days on.
#[test]
fn apply_of_the_quickstart_then_no_changes_then_renewal() {
    let sandbox = Sandbox::with_config(QUICKSTART);
    snapshot("apply_quickstart", &sandbox, &["apply", "--auto-approve"]);
    snapshot("status_quickstart", &sandbox, &["status"]);
    snapshot(
        "apply_quickstart_again",
        &sandbox,
        &["apply", "--auto-approve"],
    );
    snapshot("plan_quickstart_no_changes", &sandbox, &["plan"]);
    snapshot_at(
        "plan_quickstart_renewal_due",
        &sandbox,
        &["plan"],
        LATER,
        &[],
    );
    snapshot_at(
        "plan_quickstart_renewal_due_json",
        &sandbox,
        &["plan", "--format", "json"],
        LATER,
        &[],
    );
    snapshot_at(
        "plan_quickstart_renewal_due_markdown",
        &sandbox,
        &["plan", "--format", "markdown"],
        LATER,
        &[],
    );
    snapshot_at(
        "status_quickstart_renewal_due",
        &sandbox,
        &["status"],
        LATER,
        &[],
    );
}

/// The PR comment of a change that reissues one certificate and revokes another (shown in
/// the README), and the same plan as JSON.
#[test]
fn markdown_and_json_plans_of_a_reissue_and_a_revocation() {
    let sandbox = Sandbox::with_config(QUICKSTART);
    snapshot_at(
        "apply_quickstart_for_review",
        &sandbox,
        &["apply", "--auto-approve"],
        NOW,
        &[],
    );
    sandbox.write_config(
        &QUICKSTART
            .replace(
                r#"sans = ["example.test"]"#,
                r#"sans = ["example.test", "shop.example.test"]"#,
            )
            .replace(
                r#"renew_before = "10d""#,
                "renew_before = \"10d\"\nrevoke = true\nrevoke_reason = \"superseded\"",
            ),
    );
    snapshot(
        "plan_reissue_and_revoke_markdown",
        &sandbox,
        &["plan", "--format", "markdown", "--detailed-exitcode"],
    );
    snapshot(
        "plan_reissue_and_revoke_json",
        &sandbox,
        &["plan", "--format", "json"],
    );
}

/// A deploy that cannot be written: the certificate is issued, the run reports the failure and
/// exits 3.
#[test]
fn apply_that_partly_fails() {
    let sandbox = Sandbox::with_config(QUICKSTART);
    std::fs::create_dir_all(sandbox.path("out")).expect("out dir");
    std::fs::write(
        sandbox.path("out/api"),
        "a file where the deploy dir should be",
    )
    .expect("block the deploy dir");
    snapshot("apply_partly_fails", &sandbox, &["apply", "--auto-approve"]);
}

#[test]
fn invalid_configurations() {
    let sandbox = Sandbox::with_config(BAD_SCHEMA);
    snapshot("validate_unknown_key_and_value", &sandbox, &["validate"]);
    snapshot("plan_unknown_key_and_value", &sandbox, &["plan"]);
    sandbox.write_config(BAD_RULES);
    snapshot("validate_broken_rules", &sandbox, &["validate"]);
    sandbox.write_config(BAD_SYNTAX);
    snapshot("validate_not_toml", &sandbox, &["validate"]);
    sandbox.write_config(QUICKSTART);
    snapshot_at(
        "plan_bad_pinned_clock",
        &sandbox,
        &["plan"],
        "yesterday",
        &[],
    );
}

/// The DigiCert simulator on its own runtime, alive as long as this value.
struct Simulator {
    running: Option<sim::RunningSim>,
    runtime: tokio::runtime::Runtime,
}

impl Simulator {
    fn start() -> Simulator {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let seed = Seed {
            random_seed: Some(3),
            ..Seed::default()
        };
        let running = runtime
            .block_on(sim::start(seed, "127.0.0.1:0".parse().expect("addr")))
            .expect("simulator starts");
        Simulator {
            running: Some(running),
            runtime,
        }
    }

    fn base_url(&self) -> String {
        self.running.as_ref().expect("running").base_url()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = self.runtime.block_on(running.shutdown());
        }
    }
}

#[test]
fn ca_command_errors() {
    let simulator = Simulator::start();
    let config = format!(
        "{QUICKSTART}\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{}\"\n",
        simulator.base_url()
    );
    let sandbox = Sandbox::with_config(&config);
    snapshot("ca_test_unknown_account", &sandbox, &["ca", "test", "nope"]);
    snapshot("ca_test_local", &sandbox, &["ca", "test", "local"]);
    snapshot("ca_info_local", &sandbox, &["ca", "info", "local"]);
    snapshot_at(
        "ca_test_wrong_key",
        &sandbox,
        &["ca", "test", "dc"],
        NOW,
        &[("DIGICERT_API_KEY", "wrong-key-123")],
    );
    snapshot_at(
        "ca_info_key_without_permission",
        &sandbox,
        &["ca", "info", "dc"],
        NOW,
        &[("DIGICERT_API_KEY", "sim-orders-key")],
    );
    snapshot("ca_test_key_not_set", &sandbox, &["ca", "test", "dc"]);
}
