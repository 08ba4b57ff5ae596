//! `certform init`.

use std::path::PathBuf;

use super::{Context, Failure, EXIT_OK};

/// Write a starter configuration for a pull-request workflow: config and state in one git
/// repository, keys outside it (local CA, one certificate, files deploy)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to scaffold (default: the `--config` directory)
    pub dir: Option<PathBuf>,
}

/// Where the JSON Schema is copied, relative to the scaffolded directory: inside the
/// repository, so the `#:schema` line resolves in every checkout.
const SCHEMA: &str = ".certform/config.schema.json";

const STARTER: &str = r#"#:schema .certform/config.schema.json
# certform configuration. Reference: https://github.com/certform/certform#configuration
#
# This directory is one git repository holding the configuration and certform's state: a pull
# request changes a certificate here, CI posts `certform plan`, the merge runs `certform apply`,
# which commits the new state under `state/` in the same repository.

[state]
repo = "."            # this directory is the state repository (created on first apply)
dir = "state"         # certform's files inside it; committed, never ignored
# Private keys stay outside every repository: by default in
# $XDG_DATA_HOME/certform/keys/<id of this repository> (set `keys_dir` to choose another place
# outside this repository).

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
# Deploy targets hold private keys, so they must be outside this repository.
deploy = [{ kind = "files", dir = "../certform-out/web" }]
"#;

/// Keys and deploy output only: `state/` is what the repository is for.
const GITIGNORE: &str = "\
# Private keys and deployed certificates never belong in git. certform keeps keys outside this
# repository and refuses a `keys_dir` or deploy `dir` inside it; these lines catch copies made
# by hand. Never ignore `state/`: it is the record `certform apply` commits.
/keys/
/out/
*.key
privkey.pem
";

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
    let create = |path: &PathBuf| {
        std::fs::create_dir_all(path).map_err(|e| {
            Failure::new(format!("cannot create `{}`", path.display())).caused_by(e.to_string())
        })
    };
    let write = |path: &PathBuf, text: &str| {
        std::fs::write(path, text).map_err(|e| {
            Failure::new(format!("cannot write `{}`", path.display())).caused_by(e.to_string())
        })
    };
    create(&dir)?;
    let schema = dir.join(SCHEMA);
    if let Some(parent) = schema.parent() {
        create(&parent.to_path_buf())?;
    }
    write(&schema, &crate::config::json_schema())?;
    write(&file, STARTER)?;
    let gitignore = dir.join(".gitignore");
    let gitignore_note = if gitignore.exists() {
        format!(
            "kept the existing {} (it must not ignore `state/`)",
            gitignore.display()
        )
    } else {
        write(&gitignore, GITIGNORE)?;
        format!("wrote {}", gitignore.display())
    };
    println!("wrote {}", file.display());
    println!("wrote {}", schema.display());
    println!("{gitignore_note}");
    println!(
        "next: certform plan -c {0} && certform apply -c {0}",
        dir.display()
    );
    Ok(EXIT_OK)
}
