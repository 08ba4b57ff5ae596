//! A throwaway workspace: config dir, HOME, and helpers to run certform, git and openssl.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const WEB: &str = r#"
[state]
repo = "state"
keys_dir = "keys"

[ca.local]
kind = "local"

[certificate.web]
common_name = "www.example.test"
sans = ["example.test"]
validity = { days = 90 }
renew_before = "30d"
deploy = [{ kind = "files", dir = "out/web" }]
"#;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Assert the exit code, showing the output when it differs.
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

pub struct Sandbox {
    _root: tempfile::TempDir,
    pub home: PathBuf,
    pub dir: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let home = root.path().join("home");
        let dir = root.path().join("work");
        std::fs::create_dir_all(&home).expect("home");
        std::fs::create_dir_all(&dir).expect("work");
        Sandbox {
            _root: root,
            home,
            dir,
        }
    }

    pub fn with_config(text: &str) -> Self {
        let sandbox = Self::new();
        sandbox.write_config(text);
        sandbox
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(self.dir.join("certform.toml"), text).expect("write config");
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative))
            .unwrap_or_else(|e| panic!("read {relative}: {e}"))
    }

    /// `program` in the sandbox's hermetic environment (clean env, its own HOME, git identity,
    /// no colour, zero retry delays), started in the sandbox's directory.
    pub fn hermetic(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "test")
            .env("GIT_AUTHOR_EMAIL", "test@example.test")
            .env("GIT_COMMITTER_NAME", "test")
            .env("GIT_COMMITTER_EMAIL", "test@example.test")
            .env("LANG", "C")
            .env("NO_COLOR", "1")
            .env("CERTFORM_RETRY_DELAY_MS", "0")
            .current_dir(&self.dir);
        command
    }

    /// Run certform with `-c <dir>` and extra environment.
    pub fn certform_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.hermetic(env!("CARGO_BIN_EXE_certform"));
        command.args(args).arg("-c").arg(&self.dir);
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().expect("run certform");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn certform(&self, args: &[&str]) -> Run {
        self.certform_env(args, &[])
    }

    pub fn apply(&self) -> Run {
        self.certform(&["apply", "--auto-approve"])
    }

    /// Run a git command in `repo` (relative to the work dir); returns stdout.
    pub fn git(&self, repo: &str, args: &[&str]) -> String {
        let output = self
            .hermetic("git")
            .arg("-C")
            .arg(self.path(repo))
            .args(args)
            .output()
            .expect("git is installed (apt-get install -y git)");
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `openssl` with arguments; panics with an install hint when missing.
    pub fn openssl(&self, args: &[&str]) -> (bool, String) {
        let output = self
            .hermetic("openssl")
            .args(args)
            .output()
            .expect("openssl is installed (apt-get install -y openssl)");
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    }

    /// Verify a deployed chain against the local CA's root published in state.
    #[track_caller]
    pub fn verify_deployed(&self, out_dir: &str) {
        self.verify_deployed_at(out_dir, None);
    }

    /// Verify as of a Unix time (for certificates issued under a pinned future clock).
    #[track_caller]
    pub fn verify_deployed_at(&self, out_dir: &str, at: Option<i64>) {
        let root = self.path("state/ca/local.pem");
        let chain = self.path(&format!("{out_dir}/chain.pem"));
        let cert = self.path(&format!("{out_dir}/cert.pem"));
        let at = at.map(|t| t.to_string());
        let mut args = vec!["verify"];
        if let Some(at) = &at {
            args.extend(["-attime", at.as_str()]);
        }
        args.extend([
            "-CAfile",
            root.to_str().unwrap_or_default(),
            "-untrusted",
            chain.to_str().unwrap_or_default(),
            cert.to_str().unwrap_or_default(),
        ]);
        let (ok, text) = self.openssl(&args);
        assert!(ok && text.contains(": OK"), "openssl verify failed: {text}");
    }

    /// The certificate's subjectAltName extension as openssl prints it.
    pub fn sans_of(&self, cert: &str) -> String {
        let path = self.path(cert);
        let (ok, text) = self.openssl(&[
            "x509",
            "-noout",
            "-ext",
            "subjectAltName",
            "-in",
            path.to_str().unwrap_or_default(),
        ]);
        assert!(ok, "{text}");
        text
    }

    /// State file of a certificate, parsed.
    pub fn state_of(&self, name: &str) -> toml::Table {
        let text = self.read(&format!("state/certificates/{name}.toml"));
        text.parse().expect("state file is TOML")
    }

    pub fn state_field(&self, name: &str, field: &str) -> String {
        match self.state_of(name).get(field) {
            Some(toml::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }

    /// Orders in the local CA's database (`keys/local-ca/local/orders/*.json`).
    pub fn local_orders(&self) -> Vec<serde_json::Value> {
        let dir = self.path("keys/local-ca/local/orders");
        let mut orders = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return orders;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("order file");
            orders.push(serde_json::from_str(&text).expect("order JSON"));
        }
        orders
    }

    /// How many orders the local CA holds for a common name.
    pub fn orders_for(&self, common_name: &str) -> usize {
        self.local_orders()
            .iter()
            .filter(|o| o["common_name"].as_str() == Some(common_name))
            .count()
    }
}

/// Every file below `dir`, with its content, for "nothing changed" assertions.
pub fn snapshot_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // The check cache (`.git/certform-checks`) holds digests, not state, and the
            // parsed-state cache (`.git/certform-state-cache`) copies of state files: any run
            // that plans may write them, whatever else it leaves untouched.
            if path
                .file_name()
                .is_some_and(|name| name == "certform-checks" || name == "certform-state-cache")
            {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}
