//! Configuration that could hurt an unattended run: credentials over plain HTTP, keys or
//! deployed files inside the state repository, files that block or never end, oversized or
//! over-deep documents, names that reorder the terminal, world-readable key modes. Each is
//! refused (or warned about) by every command before anything is written or sent.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::sandbox::{snapshot_tree, Run, Sandbox, WEB};

/// Run certform with `-c config` (any path, not the sandbox's directory); fail the test rather
/// than hang if it does not finish in time.
fn certform_at(sandbox: &Sandbox, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = sandbox.hermetic(env!("CARGO_BIN_EXE_certform"));
    command
        .args(args)
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("run certform");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "certform {args:?} -c {} did not finish in 30 s",
                config.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo is installed");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn fifos_devices_and_directories_are_refused_without_blocking() {
    let sandbox = Sandbox::new();
    let fifo = sandbox.path("pipe.toml");
    mkfifo(&fifo);
    for (config, what) in [
        (fifo.as_path(), "is a named pipe (FIFO), not a regular file"),
        (
            Path::new("/dev/zero"),
            "is a character device, not a regular file",
        ),
    ] {
        for command in [
            &["validate"][..],
            &["plan"][..],
            &["apply", "--auto-approve"][..],
        ] {
            let run = certform_at(&sandbox, config, command, &[]).expect(1);
            assert!(
                run.stderr
                    .contains(&format!("configuration `{}` {what}", config.display())),
                "{command:?} -c {}: {}",
                config.display(),
                run.stderr
            );
        }
    }

    // In a configuration directory, a config-named entry that is not a regular file is an
    // error too, not silently skipped (the FIFO above is one); so is a directory named so.
    let run = sandbox.certform(&["validate"]).expect(1);
    assert!(
        run.stderr.contains("pipe.toml` is a named pipe"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(&fifo).expect("remove fifo");
    sandbox.write_config(WEB);
    std::fs::create_dir(sandbox.path("extra.yaml")).expect("dir named like a config file");
    let run = sandbox.certform(&["validate"]).expect(1);
    assert!(
        run.stderr
            .contains("extra.yaml` is a directory, not a regular file"),
        "{}",
        run.stderr
    );
    std::fs::remove_dir(sandbox.path("extra.yaml")).expect("remove dir");
    // An editor's lock file, a dangling symlink, is still skipped.
    std::os::unix::fs::symlink("user@host.1234", sandbox.path(".#certform.toml")).expect("link");
    sandbox.certform(&["validate"]).expect(0);
    assert!(!sandbox.path("state").exists(), "nothing may be created");
}

#[test]
fn config_files_are_capped_in_size() {
    let sandbox = Sandbox::with_config(WEB);
    let size = std::fs::metadata(sandbox.path("certform.toml"))
        .expect("config")
        .len();
    let limit = (size - 1).to_string();
    for command in [
        &["validate"][..],
        &["plan"][..],
        &["apply", "--auto-approve"][..],
    ] {
        let run = sandbox
            .certform_env(command, &[("CERTFORM_MAX_CONFIG_BYTES", &limit)])
            .expect(1);
        assert!(
            run.stderr
                .contains(&format!("is larger than {limit} bytes")),
            "{command:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(
                "hint: if the file is meant to be this large, set `CERTFORM_MAX_CONFIG_BYTES`"
            ),
            "{}",
            run.stderr
        );
    }
    let exact = size.to_string();
    sandbox
        .certform_env(&["validate"], &[("CERTFORM_MAX_CONFIG_BYTES", &exact)])
        .expect(0);
    let run = sandbox
        .certform_env(&["validate"], &[("CERTFORM_MAX_CONFIG_BYTES", "64MB")])
        .expect(1);
    assert!(
        run.stderr
            .contains("`CERTFORM_MAX_CONFIG_BYTES` must be a number of bytes, found `64MB`"),
        "{}",
        run.stderr
    );
    assert!(!sandbox.path("state").exists(), "nothing may be created");
}

#[test]
fn deep_yaml_is_refused_at_once() {
    // 400 KB of nested flow sequences: the YAML parser would take minutes on it.
    let sandbox = Sandbox::new();
    let depth = 200_000;
    let text = format!("certificate: {}{}\n", "[".repeat(depth), "]".repeat(depth));
    std::fs::write(sandbox.path("certform.yaml"), text).expect("write");
    let run = sandbox.certform(&["validate"]).expect(1);
    assert!(
        run.stderr.contains(
            "certform.yaml:1:46: invalid YAML: tables and arrays nest deeper than 32 levels"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn keys_dir_inside_the_state_repository_is_refused_before_it_exists() {
    // Issue 7, item 1: this keys_dir used to get the local CA's keys committed on first apply.
    let config = WEB.replace("keys_dir = \"keys\"", "keys_dir = \"state/certificates/k\"");
    let sandbox = Sandbox::with_config(&config);
    for command in [
        &["validate"][..],
        &["plan"][..],
        &["apply", "--auto-approve"][..],
    ] {
        let run = sandbox.certform(command).expect(1);
        assert!(
            run.stderr
                .contains("certform.toml:4:12: `state.keys_dir`: `keys_dir`")
                && run.stderr.contains("is inside the state repository"),
            "{command:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("hint: move `keys_dir` outside"),
            "{}",
            run.stderr
        );
    }
    assert!(
        !sandbox.path("state").exists(),
        "no state repository may be created"
    );

    // A deploy target inside an existing state repository: refused, nothing deployed.
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let before = snapshot_tree(&sandbox.path("state"));
    sandbox.write_config(&WEB.replace("dir = \"out/web\"", "dir = \"state/live/web\""));
    let run = sandbox.apply().expect(1);
    assert!(
        run.stderr
            .contains("`certificate.web.deploy[0].dir`: deploy directory")
            && run.stderr.contains("is inside the state repository"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot_tree(&sandbox.path("state")), before);
}

#[test]
fn plain_http_to_a_remote_host_is_refused_and_loopback_is_not() {
    let dc = |url: &str| {
        format!(
            "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = {{ env = \"DIGICERT_API_KEY\" }}\nurl = \"{url}\"\n\n[certificate.shop]\ncommon_name = \"shop.example.test\"\ndcv = {{ method = \"email\" }}\n"
        )
    };
    let sandbox = Sandbox::with_config(&dc("http://www.digicert.com/services/v2/"));
    for command in [
        &["validate"][..],
        &["plan"][..],
        &["apply", "--auto-approve"][..],
    ] {
        let run = sandbox
            .certform_env(command, &[("DIGICERT_API_KEY", "not-sent")])
            .expect(1);
        assert!(
            run.stderr
                .contains("certform.toml:8:7: `ca.dc.url`: `url` must be an `https://` URL"),
            "{command:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("hint: use `https://`"),
            "{}",
            run.stderr
        );
        assert!(!run.all().contains("not-sent"));
    }
    for url in [
        "http://127.0.0.1:9/services/v2/",
        "http://localhost:9/",
        "http://[::1]:9/",
    ] {
        sandbox.write_config(&dc(url));
        sandbox.certform(&["validate"]).expect(0);
    }
}

#[test]
fn names_with_control_characters_are_escaped_in_errors() {
    let sandbox = Sandbox::with_config(
        "[certificate.\"web\u{202e}lmth.exe\"]\ncommon_name = \"www.example.test\"\n\n[certificate.\"a\\u001b[2Jb\"]\ncommon_name = \"www.example.test\"\n",
    );
    let run = sandbox.certform(&["plan"]).expect(1);
    assert!(
        run.stderr
            .contains("invalid certificate name `web\\u{202e}lmth.exe`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`a\\u{1b}[2Jb`"), "{}", run.stderr);
    assert!(
        !run.stderr.contains(['\u{202e}', '\u{1b}']),
        "raw control characters in: {:?}",
        run.stderr
    );
}

#[test]
fn readable_key_modes_are_warned_about_in_validate_and_plan() {
    let sandbox = Sandbox::with_config(&WEB.replace(
        "dir = \"out/web\" }",
        "dir = \"out/web\", key_mode = \"0644\" }",
    ));
    let warning = "warning: ";
    let wanted = "`certificate.web.deploy[0].key_mode`: `key_mode = \"0644\"` lets every user read the private key";
    for command in [&["validate"][..], &["plan"][..]] {
        let run = sandbox.certform(command);
        assert!(run.code == 0 || run.code == 2, "{command:?}: {}", run.all());
        assert!(
            run.stderr.lines().any(|line| line.starts_with(warning)
                && line.contains("certform.toml:")
                && line.contains(wanted)),
            "{command:?}: {}",
            run.stderr
        );
    }
    sandbox.write_config(WEB);
    let run = sandbox.certform(&["validate"]).expect(0);
    assert!(!run.stderr.contains("key_mode"), "{}", run.stderr);
}
