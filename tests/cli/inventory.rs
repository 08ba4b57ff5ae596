//! The inventory and the newcomer path through the binary: `status` formats and filters, a
//! closed pipe, shell completions and the manual page, `init`'s layout, and `validate`'s
//! preflight of secret references.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use certform::sim::digicert::{self as sim, Seed};

use crate::sandbox::{Sandbox, WEB};

/// The clock of the first apply in these tests; the local CA issues 90 days from it.
const T0: &str = "2027-01-01T00:00:00Z";

fn at(days: i64) -> String {
    let t0 = time::OffsetDateTime::parse(T0, &time::format_description::well_known::Rfc3339)
        .expect("T0");
    (t0 + time::Duration::days(days))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time")
}

fn status_at(sandbox: &Sandbox, days: i64, args: &[&str]) -> crate::sandbox::Run {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    sandbox
        .certform_env(&all, &[("CERTFORM_NOW", at(days).as_str())])
        .expect(0)
}

/// Names in the first column of a table, header left out.
fn names(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Apply only `web` (the `api` block is added afterwards), at `T0`.
fn web_applied_then_api_configured() -> Sandbox {
    let sandbox = Sandbox::with_config(WEB);
    sandbox
        .certform_env(&["apply", "--auto-approve"], &[("CERTFORM_NOW", T0)])
        .expect(0);
    sandbox.write_config(&format!(
        "{WEB}\n[defaults]\nca = \"local\"\n\n[ca.other]\nkind = \"local\"\n\n[certificate.api]\nca = \"other\"\ncommon_name = \"api.example.test\"\ndeploy = [{{ kind = \"files\", dir = \"out/api\" }}]\n"
    ));
    sandbox
}

#[test]
fn status_table_says_in_words_where_each_certificate_stands() {
    let sandbox = web_applied_then_api_configured();
    let fresh = status_at(&sandbox, 1, &[]);
    let header = fresh.stdout.lines().next().unwrap_or_default().to_string();
    for column in [
        "NAME",
        "CA",
        "STATUS",
        "ORDER",
        "NOT AFTER",
        "DAYS LEFT",
        "LAST DEPLOY",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let web = fresh
        .stdout
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_default()
        .to_string();
    let order = sandbox.state_field("web", "order_id");
    assert!(!order.is_empty());
    assert!(web.contains(&order), "order id shown: {web}");
    assert!(
        web.contains("valid, renews from 2027-03-"),
        "renewal window (90 days, renew_before 30d) opens 2027-03-02, spread to 2027-03-12: {web}"
    );
    assert!(web.contains(" 89 "), "days left: {web}");
    assert!(web.contains("2027-01-01T00:00:00Z"), "last deploy: {web}");
    assert!(fresh.stdout.contains("not created yet"), "{}", fresh.stdout);

    let due = status_at(&sandbox, 70, &[]);
    assert!(
        due.stdout.contains("renewal overdue: due from 2027-03-"),
        "{}",
        due.stdout
    );
    let expired = status_at(&sandbox, 91, &[]);
    let web = expired
        .stdout
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_default()
        .to_string();
    assert!(web.contains("expired on 2027-04-01"), "{web}");
    assert!(web.contains(" -1 "), "negative once expired: {web}");
}

#[test]
fn status_filters_by_status_ca_and_expiry() {
    let sandbox = web_applied_then_api_configured();
    let only = |days, args: &[&str]| names(&status_at(&sandbox, days, args).stdout);
    assert_eq!(only(1, &[]), ["api", "web"]);
    assert_eq!(only(1, &["--status", "valid"]), ["web"]);
    assert_eq!(only(1, &["--status", "not-created"]), ["api"]);
    assert_eq!(
        only(
            70,
            &["--status", "renewal-overdue", "--status", "not-created"]
        ),
        ["api", "web"]
    );
    assert_eq!(only(70, &["--status", "valid"]), Vec::<String>::new());
    assert_eq!(only(1, &["--ca", "other"]), ["api"]);
    assert_eq!(only(1, &["--ca", "local"]), ["web"]);
    assert_eq!(only(1, &["--expiring-within", "30d"]), Vec::<String>::new());
    assert_eq!(only(61, &["--expiring-within", "30d"]), ["web"]);
    assert_eq!(
        only(100, &["--expiring-within", "1h"]),
        ["web"],
        "expired ones included"
    );

    let bad = sandbox
        .certform(&["status", "--status", "issued"])
        .expect(1);
    assert!(bad.stderr.contains("renewal-due"), "{}", bad.stderr);
    let bad = sandbox
        .certform(&["status", "--expiring-within", "30"])
        .expect(1);
    assert!(bad.stderr.contains("like `30d`"), "{}", bad.stderr);
}

#[test]
fn status_json_carries_every_field() {
    let sandbox = web_applied_then_api_configured();
    let run = status_at(&sandbox, 70, &["--format", "json"]);
    let document: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(document["now"], at(70));
    let rows = document["certificates"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    let web = &rows[1];
    assert_eq!(web["name"], "web");
    assert_eq!(web["ca"], "local");
    assert_eq!(web["status"], "renewal-overdue");
    assert_eq!(web["days_left"], 20);
    assert_eq!(web["order_id"], sandbox.state_field("web", "order_id"));
    assert_eq!(web["serial"], sandbox.state_field("web", "serial"));
    assert_eq!(web["not_after"], sandbox.state_field("web", "not_after"));
    // The window opens on 2027-03-02; this certificate's point lies in its first ten days.
    let renewal_at = web["renewal_at"].as_str().unwrap_or_default();
    assert!(
        renewal_at.starts_with("2027-03-") && renewal_at.len() == "2027-03-02T00:00:00Z".len(),
        "{renewal_at}"
    );
    assert_eq!(web["last_deploy"], T0);
    assert_eq!(web["in_config"], true);
    assert_eq!(web["ready"], true);
    assert_eq!(rows[0]["ready"], false);
    assert_eq!(rows[0]["status"], "not-created");
    assert!(rows[0]["not_after"].is_null());
    let filtered = status_at(&sandbox, 70, &["--format", "json", "--ca", "other"]);
    let document: serde_json::Value = serde_json::from_str(&filtered.stdout).expect("JSON");
    assert_eq!(document["certificates"].as_array().map(Vec::len), Some(1));
}

#[test]
fn status_prometheus_is_a_textfile_for_node_exporter() {
    let sandbox = web_applied_then_api_configured();
    let run = status_at(&sandbox, 70, &["--format", "prometheus"]);
    let text = run.stdout;
    let not_after = time::OffsetDateTime::parse(
        &sandbox.state_field("web", "not_after"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("not_after");
    assert!(
        text.contains(&format!(
            "certform_certificate_expiration_timestamp_seconds{{name=\"web\",ca=\"local\"}} {}\n",
            not_after.unix_timestamp()
        )),
        "{text}"
    );
    // The renewal window opens on 2027-03-02 and spreads over its first ten days.
    let opens = time::OffsetDateTime::parse(
        "2027-03-02T00:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .expect("renewal")
    .unix_timestamp();
    let renewal: i64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "certform_certificate_renewal_timestamp_seconds{name=\"web\",ca=\"local\"} ",
            )
        })
        .and_then(|n| n.parse().ok())
        .expect("a renewal timestamp");
    assert!((opens..opens + 10 * 86_400).contains(&renewal), "{text}");
    for line in [
        "certform_certificate_ready_status{name=\"web\",ca=\"local\",condition=\"True\"} 1",
        "certform_certificate_ready_status{name=\"api\",ca=\"other\",condition=\"True\"} 0",
        "certform_certificate_status{name=\"web\",ca=\"local\",status=\"renewal-overdue\"} 1",
        "certform_certificate_status{name=\"web\",ca=\"local\",status=\"valid\"} 0",
        "certform_certificate_status{name=\"api\",ca=\"other\",status=\"not-created\"} 1",
    ] {
        assert!(text.contains(&format!("{line}\n")), "{line}\n{text}");
    }
    assert!(
        !text.contains("expiration_timestamp_seconds{name=\"api\""),
        "no expiry for what was never issued: {text}"
    );
    // Every sample belongs to a family announced with HELP and TYPE before it.
    let mut announced = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap_or_default().to_string();
            assert_eq!(parts.next(), Some("gauge"), "{line}");
            assert!(text.contains(&format!("# HELP {name} ")), "HELP for {name}");
            announced.push(name);
        } else if !line.starts_with('#') {
            let name = line.split('{').next().unwrap_or_default();
            assert_eq!(announced.last().map(String::as_str), Some(name), "{line}");
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
    assert_eq!(announced.len(), 4, "{text}");
}

/// A DigiCert simulator on its own runtime, alive as long as this value.
struct Sim {
    running: Option<sim::RunningSim>,
    runtime: tokio::runtime::Runtime,
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = self.runtime.block_on(running.shutdown());
        }
    }
}

#[test]
fn an_order_waiting_for_email_approval_says_so_with_its_order_id() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let domain: sim::DomainSeed =
        serde_json::from_value(serde_json::json!({ "name": "mail.test", "dcv_status": "pending" }))
            .expect("domain seed");
    let seed = Seed {
        random_seed: Some(11),
        domains: vec![domain],
        ..Seed::default()
    };
    let running = runtime
        .block_on(sim::start(seed, "127.0.0.1:0".parse().expect("addr")))
        .expect("simulator starts");
    let url = running.base_url();
    let sim = Sim {
        running: Some(running),
        runtime,
    };
    let sandbox = Sandbox::with_config(&format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{url}\"\n\n[certificate.mail]\nca = \"dc\"\ncommon_name = \"mail.test\"\nproduct = \"ssl_basic\"\norganization = 112233\nvalidity = {{ days = 90 }}\ndcv = {{ method = \"email\" }}\ndeploy = [{{ kind = \"files\", dir = \"out/mail\" }}]\n"
    ));
    sandbox
        .certform_env(
            &["apply", "--auto-approve"],
            &[("DIGICERT_API_KEY", "sim-admin-key")],
        )
        .expect(0);
    let order = sandbox
        .state_of("mail")
        .get("intent")
        .and_then(|i| i.get("order_id"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .expect("intent order id");
    let run = sandbox.certform(&["status"]).expect(0);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("mail "))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains(&format!("order {order} awaiting email approval")),
        "{}",
        run.stdout
    );
    assert!(!line.contains("in flight"), "{line}");
    let waiting = sandbox
        .certform(&[
            "status",
            "--status",
            "awaiting-approval",
            "--format",
            "json",
        ])
        .expect(0);
    let document: serde_json::Value = serde_json::from_str(&waiting.stdout).expect("JSON");
    assert_eq!(document["certificates"][0]["order_id"], order.as_str());
    drop(sim);
}

/// A config with `count` certificates, so that `status` and `plan` print far more than a
/// pipe buffer holds.
fn many(count: usize) -> String {
    let mut text = String::from(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.local]\nkind = \"local\"\n",
    );
    for i in 0..count {
        text.push_str(&format!(
            "\n[certificate.c{i}]\ncommon_name = \"c{i}.example.test\"\ndeploy = [{{ kind = \"files\", dir = \"out/c{i}\" }}]\n"
        ));
    }
    text
}

/// Run certform with its standard output a pipe whose reader is already gone.
fn into_closed_pipe(sandbox: &Sandbox, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe` writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    let mut child = sandbox
        .hermetic(env!("CARGO_BIN_EXE_certform"))
        .args(args)
        .arg("-c")
        .arg(&sandbox.dir)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start certform");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    (child.wait().expect("wait"), stderr)
}

#[test]
fn a_closed_pipe_ends_any_command_quietly() {
    let sandbox = Sandbox::with_config(&many(1500));
    for args in [
        &["status"][..],
        &["status", "--format", "json"],
        &["status", "--format", "prometheus"],
        &["plan"],
        &["plan", "--format", "json"],
        &["validate"],
        &["schema"],
        &["completions", "bash"],
        &["man"],
    ] {
        let (status, stderr) = into_closed_pipe(&sandbox, args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            status.signal() == Some(libc::SIGPIPE),
            "{args:?}: ends by SIGPIPE like other CLIs, got {status:?}: {stderr}"
        );
        assert_eq!(stderr, "", "{args:?}: nothing said on stderr");
    }

    // The real thing: a reader that leaves after the first line, while certform still writes.
    for command in ["status", "plan"] {
        let output = sandbox
            .hermetic("bash")
            .arg("-c")
            .arg(r#""$0" "$@" | head -1; echo "exit=${PIPESTATUS[0]}""#)
            .arg(env!("CARGO_BIN_EXE_certform"))
            .arg(command)
            .arg("-c")
            .arg(&sandbox.dir)
            .output()
            .expect("bash is installed");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
        assert_eq!(stdout.lines().count(), 2, "{command}: {stdout}");
        assert!(stdout.ends_with("exit=141\n"), "{command}: {stdout}");
    }
}

#[test]
fn completions_and_man_page_come_from_the_commands() {
    let sandbox = Sandbox::new();
    let bash = sandbox.certform(&["completions", "bash"]).expect(0);
    assert!(bash.stdout.contains("complete -F"), "{}", bash.stdout);
    for command in [
        "apply",
        "plan",
        "status",
        "completions",
        "--expiring-within",
    ] {
        assert!(bash.stdout.contains(command), "{command}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let run = sandbox.certform(&["completions", shell]).expect(0);
        assert!(run.stdout.contains("apply"), "{shell}");
    }
    sandbox.certform(&["completions", "tcsh"]).expect(1);

    let man = sandbox.certform(&["man"]).expect(0);
    assert!(man.stdout.contains(".TH certform 1"), "{}", man.stdout);
    assert!(man.stdout.contains(".SH SUBCOMMANDS"), "{}", man.stdout);
    for command in [
        "init",
        "validate",
        "plan",
        "apply",
        "status",
        "completions",
        "man",
    ] {
        assert!(
            man.stdout.contains(&format!("certform\\-{command}(1)")),
            "{command}: {}",
            man.stdout
        );
    }
    // groff reads it without a warning (`-ww`: all warnings; `-z`: no output).
    let page = sandbox.path("certform.1");
    std::fs::write(&page, &man.stdout).expect("write page");
    let output = sandbox
        .hermetic("groff")
        .args(["-man", "-ww", "-z", "-Tutf8"])
        .arg(&page)
        .output()
        .expect("groff is installed (apt-get install -y groff-base)");
    assert!(output.status.success(), "groff failed");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "",
        "groff warnings"
    );
}

#[test]
fn init_scaffolds_one_repository_for_config_and_state_with_keys_outside() {
    let sandbox = Sandbox::new();
    let run = sandbox.certform(&["init"]).expect(0);
    assert!(run.stdout.contains("certform.toml"), "{}", run.stdout);
    let config = sandbox.read("certform.toml");
    assert!(
        config.starts_with("#:schema .certform/config.schema.json\n"),
        "{config}"
    );
    assert!(config.contains("repo = \".\""), "{config}");
    assert!(config.contains("dir = \"state\""), "{config}");
    assert!(
        !config.contains("\nkeys_dir"),
        "keys stay in the default place: {config}"
    );
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/config.schema.json"),
    )
    .expect("schemas/config.schema.json");
    assert_eq!(
        sandbox.read(".certform/config.schema.json"),
        shipped,
        "the #:schema line resolves to the schema inside the repository"
    );
    let gitignore = sandbox.read(".gitignore");
    assert!(gitignore.contains("/keys/"), "{gitignore}");
    assert!(
        gitignore
            .lines()
            .all(|line| line.starts_with('#') || !line.contains("state")),
        "state is never ignored: {gitignore}"
    );

    sandbox.certform(&["validate", "--strict"]).expect(0);
    let applied = sandbox.apply().expect(0);
    assert!(
        applied.stdout.contains("state committed"),
        "{}",
        applied.stdout
    );
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);

    // State landed in the config repository, under `state/`, and nothing git ignores there.
    let tracked = sandbox.git(".", &["ls-files"]);
    assert!(tracked.contains("state/certificates/web.toml"), "{tracked}");
    assert!(tracked.contains("state/certificates/web.pem"), "{tracked}");
    let ignored = sandbox.git(".", &["status", "--ignored", "--porcelain"]);
    assert!(!ignored.contains("!! state"), "{ignored}");
    sandbox.git(".", &["add", "--all"]);
    let staged = sandbox.git(".", &["ls-files"]);
    assert!(staged.contains("certform.toml"), "{staged}");
    assert!(staged.contains(".certform/config.schema.json"), "{staged}");
    assert!(
        !staged.contains(".key"),
        "no key in the repository: {staged}"
    );
    // The key lives outside the repository, the deployed files beside it.
    let keys = sandbox.home.join(".local/share/certform/keys");
    assert!(keys.is_dir(), "default keys dir {}", keys.display());
    assert!(sandbox.path("../certform-out/web/privkey.pem").exists());
    sandbox.verify_deployed("../certform-out/web");
}

#[test]
fn validate_warns_about_missing_secrets_and_strict_fails() {
    let sandbox = Sandbox::with_config(
        "[state]\nrepo = \"state\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = { env = \"DIGICERT_API_KEY\" }\nurl = \"http://127.0.0.1:9/services/v2\"\n\n[dns.bind]\nkind = \"rfc2136\"\nserver = \"127.0.0.1:53\"\nkey_name = \"certform.\"\nalgorithm = \"hmac-sha256\"\nsecret = { file = \"tsig.secret\" }\n",
    );
    let lenient = sandbox.certform(&["validate"]).expect(0);
    assert!(
        lenient.stdout.contains("configuration is valid"),
        "{}",
        lenient.stdout
    );
    assert!(
        lenient.stderr.contains("warning: ")
            && lenient.stderr.contains("certform.toml:")
            && lenient
                .stderr
                .contains("`ca.dc.api_key`: environment variable `DIGICERT_API_KEY` is not set"),
        "{}",
        lenient.stderr
    );
    assert!(
        lenient
            .stderr
            .contains("`dns.bind.secret`: cannot read secret file")
            && lenient.stderr.contains("tsig.secret"),
        "{}",
        lenient.stderr
    );
    let strict = sandbox.certform(&["validate", "--strict"]).expect(1);
    assert!(
        strict
            .stderr
            .contains("error: 2 referenced environment variables or files missing"),
        "{}",
        strict.stderr
    );
    assert!(
        !strict.stdout.contains("configuration is valid"),
        "{}",
        strict.stdout
    );

    std::fs::write(sandbox.path("tsig.secret"), "dHNpZy1zZWNyZXQtdmFsdWU=\n").expect("write");
    let run = sandbox
        .certform_env(
            &["validate", "--strict"],
            &[("DIGICERT_API_KEY", "very-secret-api-key")],
        )
        .expect(0);
    assert_eq!(run.stderr, "", "nothing missing, nothing said");
    assert!(!run.all().contains("very-secret-api-key"));
    assert!(!run.all().contains("dHNpZy1zZWNyZXQtdmFsdWU="));
    // An empty variable is as good as unset; its (empty) value is never shown either way.
    let empty = sandbox
        .certform_env(&["validate", "--strict"], &[("DIGICERT_API_KEY", "")])
        .expect(1);
    assert!(
        empty.stderr.contains("`DIGICERT_API_KEY`"),
        "{}",
        empty.stderr
    );
}

#[test]
fn plan_shows_the_same_warnings_as_validate() {
    let sandbox = Sandbox::with_config(&format!(
        "{WEB}\n[dns.bind]\nkind = \"rfc2136\"\nserver = \"127.0.0.1:53\"\nkey_name = \"certform.\"\nalgorithm = \"hmac-sha256\"\nsecret = {{ env = \"TSIG_SECRET\" }}\n"
    ));
    let run = sandbox.certform(&["plan"]).expect(0);
    assert!(run.stdout.contains("+ create web"), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("`dns.bind.secret`: environment variable `TSIG_SECRET` is not set"),
        "{}",
        run.stderr
    );
    let set = sandbox
        .certform_env(&["plan"], &[("TSIG_SECRET", "c2VjcmV0LXZhbHVl")])
        .expect(0);
    assert_eq!(set.stderr, "");
    assert!(!set.all().contains("c2VjcmV0LXZhbHVl"));
}
