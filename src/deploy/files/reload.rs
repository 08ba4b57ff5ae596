//! The reload command: `sh -c` in its own process group, killed as a group at the timeout,
//! its stdout and stderr captured up to `RELOAD_OUTPUT_LIMIT` bytes (the rest drained so the
//! command never blocks on a full pipe).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::deploy::ReloadReport;

/// Most output kept from a reload command.
pub const RELOAD_OUTPUT_LIMIT: usize = 4096;
/// How long to wait for a reload's output after it exited (a background child may hold the pipe).
const OUTPUT_GRACE: StdDuration = StdDuration::from_millis(250);

pub(super) const TRUNCATED: &str = "\n[output truncated]";

/// Run `command` with `sh -c` in its own process group; on timeout kill the whole group.
/// Returns the report and, when it failed, the message to record.
pub(crate) async fn run_reload(
    command: &str,
    timeout: StdDuration,
) -> (ReloadReport, Option<String>) {
    run_shell("reload command", command, timeout, &[]).await
}

/// Run `command` (called `label` in messages) with `sh -c` and the extra environment `env`,
/// in its own process group; on timeout kill the whole group.
pub(crate) async fn run_shell(
    label: &str,
    command: &str,
    timeout: StdDuration,
    env: &[(String, String)],
) -> (ReloadReport, Option<String>) {
    let started = Instant::now();
    let report = |success: bool, output: String| ReloadReport {
        command: command.to_string(),
        success,
        output,
        duration: started.elapsed(),
    };
    let mut child = match tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            let message = format!("failed to start the {label}: {error}");
            return (report(false, String::new()), Some(message));
        }
    };
    let pid = child.id();
    let stdout = Arc::new(Mutex::new(Captured::default()));
    let stderr = Arc::new(Mutex::new(Captured::default()));
    let readers = [
        child
            .stdout
            .take()
            .map(|pipe| capture(pipe, Arc::clone(&stdout))),
        child
            .stderr
            .take()
            .map(|pipe| capture(pipe, Arc::clone(&stderr))),
    ];

    let failure = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => None,
        Ok(Ok(status)) => Some(match (status.code(), signal_of(&status)) {
            (Some(code), _) => format!("{label} exited with status {code}"),
            (None, Some(signal)) => format!("{label} was killed by signal {signal}"),
            (None, None) => format!("{label} failed"),
        }),
        Ok(Err(error)) => Some(format!("failed to wait for the {label}: {error}")),
        Err(_) => {
            if let Some(pid) = pid.and_then(|pid| libc::pid_t::try_from(pid).ok()) {
                // SAFETY: plain syscall; a negative pid names the process group the child leads
                // (it was started with `process_group(0)`), so no unrelated process is signalled.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.kill().await;
            Some(format!(
                "{label} timed out after {timeout:?} (killed with its process group)"
            ))
        }
    };

    for reader in readers.into_iter().flatten() {
        if tokio::time::timeout(OUTPUT_GRACE, reader).await.is_err() {
            // A background process still holds the pipe; keep what was read so far.
        }
    }
    let output = combine(&stdout, &stderr);
    (report(failure.is_none(), output), failure)
}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

/// Output read from one pipe, capped.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

/// Read `pipe` to its end in a task, keeping the first `RELOAD_OUTPUT_LIMIT` bytes (and draining
/// the rest so the command never blocks on a full pipe).
fn capture(
    mut pipe: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<Captured>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buffer = [0u8; 1024];
        loop {
            match pipe.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    let mut captured = into.lock().unwrap_or_else(|p| p.into_inner());
                    let room = RELOAD_OUTPUT_LIMIT.saturating_sub(captured.bytes.len());
                    let kept = read.min(room);
                    captured.bytes.extend_from_slice(&buffer[..kept]);
                    if kept < read {
                        captured.truncated = true;
                    }
                }
            }
        }
    })
}

/// stdout then stderr, cut to `RELOAD_OUTPUT_LIMIT` bytes on a character boundary.
fn combine(stdout: &Mutex<Captured>, stderr: &Mutex<Captured>) -> String {
    let stdout = stdout.lock().unwrap_or_else(|p| p.into_inner());
    let stderr = stderr.lock().unwrap_or_else(|p| p.into_inner());
    let mut text = String::from_utf8_lossy(&stdout.bytes).into_owned();
    if !text.is_empty() && !stderr.bytes.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&String::from_utf8_lossy(&stderr.bytes));
    let mut truncated = stdout.truncated || stderr.truncated;
    if text.len() > RELOAD_OUTPUT_LIMIT {
        truncated = true;
    }
    if truncated {
        let mut end = RELOAD_OUTPUT_LIMIT
            .saturating_sub(TRUNCATED.len())
            .min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(TRUNCATED);
    }
    text
}
