//! Whether a process runs on this host, and since when: `/proc/PID/stat` (state and start time,
//! so a zombie or a reused pid does not pass for the process), `kill(pid, 0)` where there is no
//! `/proc`, the kernel's boot id and the host name.

use std::fs;
use std::io;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
    Gone,
    /// The process runs; its start time when `/proc` tells it.
    Running {
        started: Option<u64>,
    },
}

/// Whether a process with `pid` runs (a zombie does not), and since when.
pub(super) fn probe(pid: u32) -> Probe {
    // Pid 0 and pids beyond `i32` would address process groups in `kill`; no process has them.
    let Ok(signed) = i32::try_from(pid) else {
        return Probe::Gone;
    };
    if signed == 0 {
        return Probe::Gone;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match parse_stat(&stat) {
            Some((state, _)) if state == 'Z' || state == 'X' => Probe::Gone,
            Some((_, started)) => Probe::Running {
                started: Some(started),
            },
            None => Probe::Running { started: None },
        },
        Err(error) if error.kind() == io::ErrorKind::NotFound && proc_mounted() => Probe::Gone,
        Err(_) => {
            // No `/proc`: ask the kernel whether the pid exists (EPERM: it does, not ours).
            // SAFETY: signal 0 sends nothing; it only checks that `signed` (> 0) exists.
            if unsafe { libc::kill(signed, 0) } == 0
                || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
            {
                Probe::Running { started: None }
            } else {
                Probe::Gone
            }
        }
    }
}

fn proc_mounted() -> bool {
    Path::new("/proc/self/stat").exists()
}

/// State (field 3) and start time (field 22) from the text of `/proc/PID/stat`. The command
/// (field 2) is in parentheses and may itself hold spaces and parentheses: fields are counted
/// after the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 was the state; field 22 is 19 further on.
    let started = fields.nth(18)?.parse().ok()?;
    Some((state, started))
}

pub(super) fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
}

/// Start time of process `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`),
/// `None` when it does not exist.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, started)| started)
}

pub(crate) fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: `buffer` is valid for writes of `buffer.len()` bytes for the whole call.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return "unknown host".to_string();
    }
    // Without a NUL the name was truncated to the whole buffer.
    let end = buffer
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let mut fields = vec!["0"; 50];
        fields[0] = "R";
        fields[19] = "98765";
        let stat = format!("77 (a) b (c)) {}\n", fields.join(" "));
        assert_eq!(parse_stat(&stat), Some(('R', 98765)));
        assert_eq!(parse_stat("77 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
        let own = fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat(&own).is_some(), "{own}");
    }
}
