//! `certform init`.

use std::path::PathBuf;

use super::{Context, Failure, EXIT_OK};

/// Write a starter configuration (local CA, one certificate, files deploy) into a directory
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to scaffold (default: the `--config` directory)
    pub dir: Option<PathBuf>,
}

const STARTER: &str = r#"#:schema ../schemas/config.schema.json
# certform configuration. Reference: https://github.com/certform/certform#configuration

[state]
repo = "state"        # git repository for state (created on first apply)
keys_dir = "keys"     # private keys (0700/0600); keep it out of git

[defaults]
ca = "local"
renew_before = "33%"
key = { algorithm = "ecdsa", size = 256 }

[ca.local]
kind = "local"        # built-in private CA: no account needed

[certificate.web]
common_name = "www.example.test"
sans = ["example.test"]
validity = { days = 90 }
deploy = [{ kind = "files", dir = "out/web" }]
"#;

const GITIGNORE: &str = "state/\nkeys/\nout/\n";

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| context.config_path.clone());
    let file = dir.join("certform.toml");
    if file.exists() {
        return Err(Failure::new(format!("`{}` already exists", file.display()))
            .hint("edit it, or run `certform init` in an empty directory"));
    }
    std::fs::create_dir_all(&dir).map_err(|e| {
        Failure::new(format!("cannot create `{}`", dir.display())).caused_by(e.to_string())
    })?;
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|e| {
            Failure::new(format!("cannot write `{}`", path.display())).caused_by(e.to_string())
        })
    };
    write(file.clone(), STARTER)?;
    let gitignore = dir.join(".gitignore");
    if !gitignore.exists() {
        write(gitignore, GITIGNORE)?;
    }
    println!("wrote {}", file.display());
    println!(
        "next: certform plan -c {0} && certform apply -c {0}",
        dir.display()
    );
    Ok(EXIT_OK)
}
