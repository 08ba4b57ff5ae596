//! `certform state list|show|rm|mv`: read and edit state without a plan or a CA call.

use std::io::Write;
use std::sync::Arc;

use super::{Context, Failure, EXIT_OK};
use crate::state::{GitStore, LockGuard, StateStore};
use crate::state_ops;

/// Inspect and edit state: list entries, show one, forget one, rename one (no CA is contacted)
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    List(ListArgs),
    Show(ShowArgs),
    Rm(RmArgs),
    Mv(MvArgs),
}

/// List the certificates in state: name, CA, status and order
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Show one certificate's state entry (as TOML, or JSON with `--json`); it holds no secret
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The certificate's name
    pub name: String,
    /// Print JSON instead of TOML
    #[arg(long)]
    pub json: bool,
}

/// Forget a certificate: drop its state entry without contacting the CA (nothing is revoked)
///
/// The CA keeps the certificate and keys_dir keeps its keys. While an order is in flight the
/// entry is kept unless `--force`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// The certificate's name
    pub name: String,
    /// Forget it without asking for confirmation (required when not on a terminal)
    #[arg(long)]
    pub auto_approve: bool,
    /// Forget it even while an order is in flight (certform then loses track of that order)
    #[arg(long)]
    pub force: bool,
    /// How long to wait for another run's state lock (`0`: fail at once), like `10m`
    #[arg(long, default_value = "0", value_name = "DURATION", value_parser = super::unlock::parse_lock_timeout)]
    pub lock_timeout: std::time::Duration,
}

/// Rename a certificate in state without a new order; its private keys move with it
///
/// Rename the `[certificate.OLD]` block of the configuration to NEW as well. A killed move is
/// finished by running the same command again.
#[derive(Debug, clap::Args)]
pub struct MvArgs {
    /// The current name
    pub old: String,
    /// The new name
    pub new: String,
    /// How long to wait for another run's state lock (`0`: fail at once), like `10m`
    #[arg(long, default_value = "0", value_name = "DURATION", value_parser = super::unlock::parse_lock_timeout)]
    pub lock_timeout: std::time::Duration,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    match &args.command {
        StateCommand::List(args) => list(context, args),
        StateCommand::Show(args) => show(context, args),
        StateCommand::Rm(args) => rm(context, args),
        StateCommand::Mv(args) => mv(context, args),
    }
}

fn failure(error: &state_ops::Error) -> Failure {
    let failure = Failure::from_error(error);
    match error.hint() {
        Some(hint) => failure.hint(hint),
        None => failure,
    }
}

fn list(context: &Context, args: &ListArgs) -> Result<i32, Failure> {
    let workspace = context.workspace()?;
    let state = workspace.read_state()?;
    let entries = state_ops::list(&state);
    if args.json {
        let text = serde_json::to_string_pretty(&entries)
            .map_err(|e| Failure::new("cannot render JSON").caused_by(e.to_string()))?;
        write_out(&format!("{text}\n"))?;
        return Ok(EXIT_OK);
    }
    if entries.is_empty() {
        write_out("state holds no certificates\n")?;
        return Ok(EXIT_OK);
    }
    let rows: Vec<[String; 4]> = entries
        .iter()
        .map(|e| {
            [
                crate::config::escaped(&e.name).into_owned(),
                crate::config::escaped(&e.ca).into_owned(),
                e.status.clone(),
                crate::config::escaped(e.order_id.as_deref().unwrap_or("-")).into_owned(),
            ]
        })
        .collect();
    let header = ["NAME", "CA", "STATUS", "ORDER"].map(str::to_string);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    write_out(&out)?;
    Ok(EXIT_OK)
}

fn show(context: &Context, args: &ShowArgs) -> Result<i32, Failure> {
    let workspace = context.workspace()?;
    let state = workspace.read_state()?;
    let entry = state_ops::show(&state, &args.name).map_err(|e| failure(&e))?;
    let text = if args.json {
        serde_json::to_string_pretty(entry)
            .map(|t| format!("{t}\n"))
            .map_err(|e| Failure::new("cannot render JSON").caused_by(e.to_string()))?
    } else {
        toml::to_string(entry)
            .map_err(|e| Failure::new("cannot render TOML").caused_by(e.to_string()))?
    };
    write_out(&text)?;
    Ok(EXIT_OK)
}

/// Open the state repository and take its lock for `command`, repairing what a killed run
/// left behind, as `apply` does.
fn open_locked(
    context: &Context,
    command: &str,
    timeout: std::time::Duration,
) -> Result<(crate::workspace::Workspace, Arc<GitStore>, LockGuard), Failure> {
    let workspace = context.workspace()?;
    workspace.check_keys_dir()?;
    if !workspace.config.state.repo.exists() {
        return Err(Failure::new(format!(
            "no state repository at `{}` yet: state holds no certificates",
            workspace.config.state.repo.display()
        )));
    }
    let store = GitStore::open(&workspace.config.state).map_err(|e| Failure::from_error(&e))?;
    store
        .check_keys_dir(&workspace.keys_dir)
        .map_err(|e| Failure::from_error(&e))?;
    let store = Arc::new(store);
    let mut notify = |notice| super::unlock::print_notice(context, notice);
    let lock = crate::apply::take_lock(&store, command, timeout, &mut notify)
        .map_err(|e| super::unlock::lock_failure(&e))?;
    for note in store.recover().map_err(|e| Failure::from_error(&e))? {
        super::unlock::print_notice(context, crate::apply::Notice::Recovered(note));
    }
    Ok((workspace, store, lock))
}

fn rm(context: &Context, args: &RmArgs) -> Result<i32, Failure> {
    let (_workspace, store, _lock) = open_locked(context, "certform state rm", args.lock_timeout)?;
    let mut state = store.load().map_err(|e| Failure::from_error(&e))?;
    let entry = state_ops::check_remove(&state, &args.name, args.force).map_err(|e| failure(&e))?;
    println!(
        "certform will forget `{}` ({} at `{}`{}): no CA is contacted, the certificate stays valid at the CA, and its keys stay in keys_dir",
        crate::config::escaped(&args.name),
        state_ops::describe_status(entry),
        crate::config::escaped(&entry.ca),
        entry
            .serial
            .as_ref()
            .map(|s| format!(", serial {s}"))
            .unwrap_or_default()
    );
    if !args.auto_approve {
        confirm(&format!(
            "run `certform state rm {} --auto-approve`",
            args.name
        ))?;
    }
    state_ops::remove(store.as_ref(), &mut state, &args.name, args.force)
        .map_err(|e| failure(&e))?;
    let commit = store
        .commit(&format!("certform state rm {}", args.name))
        .map_err(|e| Failure::from_error(&e))?;
    println!(
        "Forgot `{}`{}.",
        crate::config::escaped(&args.name),
        commit
            .map(|c| format!(" (commit {})", &c[..c.len().min(12)]))
            .unwrap_or_default()
    );
    Ok(EXIT_OK)
}

fn mv(context: &Context, args: &MvArgs) -> Result<i32, Failure> {
    let (workspace, store, _lock) = open_locked(context, "certform state mv", args.lock_timeout)?;
    let mut state = store.load().map_err(|e| Failure::from_error(&e))?;
    let keys = workspace.key_store(Some(store.clone() as Arc<dyn crate::state::StateStore>));
    // Crash tests stop the move at its steps (`state-mv-after-keys`, `-after-new`, `-before-commit`).
    let failpoints = crate::apply::FailPoints::new(std::env::var("CERTFORM_FAILPOINT").ok());
    let renamed = state_ops::rename(
        store.as_ref(),
        &keys,
        &mut state,
        &args.old,
        &args.new,
        context.now,
        &failpoints,
    )
    .map_err(|e| failure(&e))?;
    failpoints.hit("state-mv-before-commit");
    if keys.is_age() {
        // Key files in the repository: the old names go in the same (atomic) commit.
        state_ops::finish_rename(&keys, &args.old, &renamed).map_err(|e| failure(&e))?;
    }
    let commit = store
        .commit(&format!("certform state mv {} {}", args.old, args.new))
        .map_err(|e| Failure::from_error(&e))?;
    if !keys.is_age() {
        state_ops::finish_rename(&keys, &args.old, &renamed).map_err(|e| failure(&e))?;
    }
    println!(
        "Moved `{}` to `{}` with {} key file{}{}.",
        crate::config::escaped(&args.old),
        crate::config::escaped(&args.new),
        renamed.keys.len(),
        if renamed.keys.len() == 1 { "" } else { "s" },
        commit
            .map(|c| format!(" (commit {})", &c[..c.len().min(12)]))
            .unwrap_or_default()
    );
    if !workspace.config.certificates.contains_key(&args.new) {
        eprintln!(
            "hint: the configuration has no `[certificate.{}]` yet: rename the block too, or the next plan forgets it",
            crate::config::escaped(&args.new)
        );
    }
    Ok(EXIT_OK)
}

/// Write `text` to standard output; a closed pipe (`| head`) is not an error.
fn write_out(text: &str) -> Result<(), Failure> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::new("cannot write to standard output").caused_by(error.to_string()))
        }
        _ => Ok(()),
    }
}

/// Ask on the terminal; only `yes` accepts. Off a terminal, refuse with `hint`.
fn confirm(hint: &str) -> Result<(), Failure> {
    super::ask_yes(
        "Do you want to forget it?",
        "refusing to change state",
        hint,
        "state rm cancelled",
    )
}
