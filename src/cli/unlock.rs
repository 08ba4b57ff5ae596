//! `certform unlock`, and how the writing commands (`apply`, `import`) report lock errors and
//! what they notice on their way.

use std::time::Duration;

use super::{Context, Failure, EXIT_OK};
use crate::apply::Notice;
use crate::state::{BrokenLock, Error, GitStore, Liveness};

/// Break the lock of a certform run that died or that ran on another host
///
/// A run that dies on this host leaves a lock the next `apply` takes over by itself; this
/// command is for a lock taken on another host, or an unreadable one. It refuses while the
/// holder still runs on this host.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Confirm that the holder is gone (still checked on this host)
    #[arg(long)]
    pub force: bool,
}

pub fn run(context: &Context, args: &Args) -> Result<i32, Failure> {
    let workspace = context.workspace()?;
    if !args.force {
        return Err(
            Failure::new("refusing to break the lock without `--force`").hint(
                "a dead run's lock is taken over by the next `certform apply`; for a lock \
                 from another host, make sure that run is gone, then run `certform unlock --force`",
            ),
        );
    }
    if !workspace.config.state.repo.exists() {
        println!("no state repository yet: nothing is locked");
        return Ok(EXIT_OK);
    }
    let store = GitStore::open(&workspace.config.state).map_err(|e| Failure::from_error(&e))?;
    match store.break_lock().map_err(|e| lock_failure(&e))? {
        Some(BrokenLock {
            holder: Some(holder),
            liveness: Some(Liveness::OtherHost),
        }) => println!(
            "broke the lock held by {holder}; it was taken on another host, so certform could \
             not check whether that run still goes on"
        ),
        Some(BrokenLock {
            holder: Some(holder),
            liveness: Some(Liveness::Dead(death)),
        }) => println!(
            "broke the lock held by {holder}: {}",
            death.describe(holder.pid)
        ),
        Some(BrokenLock {
            holder: Some(holder),
            ..
        }) => println!("broke the lock held by {holder}"),
        Some(BrokenLock { holder: None, .. }) => println!("removed an unreadable lock file"),
        None => println!("the state repository is not locked"),
    }
    Ok(EXIT_OK)
}

/// Parse `--lock-timeout`: `0` (do not wait) or a whole number and a unit, like `90s` or `10m`.
pub(super) fn parse_lock_timeout(text: &str) -> Result<Duration, String> {
    let shape = "expected `0` or a whole number and a unit (`s`, `m`, `h`), like `10m`";
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let count: u64 = digits.parse().map_err(|_| shape.to_string())?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "" if count == 0 => 0,
        _ => return Err(shape.to_string()),
    };
    count
        .checked_mul(unit_seconds)
        .filter(|seconds| *seconds <= 7 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| "at most a week (`168h`)".to_string())
}

/// Print what a run tells on its way (lock waits and takeovers, repairs, warnings) to stderr.
pub(super) fn print_notice(context: &Context, notice: Notice) {
    match notice {
        Notice::ConfigWarning(warning) => eprintln!(
            "{}: {}",
            context.paint("\x1b[33m", "warning"),
            crate::config::escaped(&warning)
        ),
        Notice::WaitingForLock { holder, timeout } => eprintln!(
            "waiting up to {}s for the state lock held by {holder}",
            timeout.as_secs()
        ),
        Notice::LockTakenOver { holder, reason } => eprintln!(
            "{}: took over the state lock of {holder}: {reason}",
            context.paint("\x1b[33m", "warning"),
        ),
        Notice::Recovered(note) => eprintln!("warning: {note}"),
        Notice::InventoryFailed { ca, why } => eprintln!(
            "{}: {}",
            context.paint("\x1b[33m", "warning"),
            crate::config::escaped(&crate::ca_inventory::Listing::warning(&ca, &why))
        ),
        Notice::Keys(line) => eprintln!("keys: {line}"),
    }
}

/// A lock error for the user, with what to do about it.
pub(super) fn lock_failure(error: &Error) -> Failure {
    let failure = Failure::from_error(error);
    match lock_hint(error) {
        Some(hint) => failure.hint(hint),
        None => failure,
    }
}

/// What to do about a lock error; `None` for other errors.
pub(super) fn lock_hint(error: &Error) -> Option<String> {
    let wait = "wait for it to finish, or let this run wait for it with `--lock-timeout 10m`";
    let not_certform = |pid: u32, path: &std::path::Path| {
        format!(
            "if pid {pid} is not a certform run, delete `{}`; if it is, wait for it to finish",
            path.display()
        )
    };
    Some(match error {
        Error::Locked {
            liveness: Liveness::PidRunning,
            holder,
            path,
            ..
        } => not_certform(holder.pid, path),
        Error::Locked {
            liveness: Liveness::OtherHost,
            holder,
            ..
        } => format!(
            "{wait}; if that run is gone from `{}`, break the lock with `certform unlock --force`",
            holder.host
        ),
        Error::Locked { .. } => wait.to_string(),
        Error::LockHeld {
            liveness: Liveness::PidRunning,
            holder: Some(holder),
            path,
            ..
        } => not_certform(holder.pid, path),
        Error::LockHeld { .. } => "wait for it to finish; if it dies, the next `certform apply` \
                                   takes its lock over by itself"
            .to_string(),
        Error::LockUnreadable { .. } => {
            "if no certform is running, remove it with `certform unlock --force`".to_string()
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_timeouts() {
        assert_eq!(parse_lock_timeout("0"), Ok(Duration::ZERO));
        assert_eq!(parse_lock_timeout("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_lock_timeout("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_lock_timeout("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_lock_timeout("2h"), Ok(Duration::from_secs(7_200)));
        for bad in [
            "",
            "10",
            "m",
            "-1s",
            "1.5m",
            "3d",
            "99999999999999999999h",
            "200h",
        ] {
            assert!(parse_lock_timeout(bad).is_err(), "{bad}");
        }
    }
}
