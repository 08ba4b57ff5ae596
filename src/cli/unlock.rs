//! `certform unlock`.

use super::{Context, Failure, EXIT_ERROR, EXIT_OK};

/// Break a stale apply lock left by a certform that was killed
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Confirm that no other certform is running against this state
    #[arg(long)]
    pub force: bool,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    let workspace = context.workspace()?;
    if !args.force {
        return Err(Failure::new("refusing to break the lock without `--force`")
            .hint("make sure no certform apply is running, then run `certform unlock --force`"));
    }
    if !workspace.config.state.repo.exists() {
        println!("no state repository yet: nothing is locked");
        return Ok(EXIT_OK);
    }
    let store = crate::state::GitStore::open(&workspace.config.state)
        .map_err(|e| Failure::from_error(&e))?;
    match store.break_lock().map_err(|e| Failure::from_error(&e))? {
        Some(holder) => {
            println!("broke the lock held by {holder}");
            Ok(EXIT_OK)
        }
        None => {
            println!("the state repository is not locked");
            let _ = EXIT_ERROR;
            Ok(EXIT_OK)
        }
    }
}
