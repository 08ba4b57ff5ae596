//! Scale benchmark: `cargo bench --bench scale` (release build of the binary).
//!
//! The commands a fleet runs, through the binary, on configurations of 1,000 and 10,000
//! certificates with the local CA (ECDSA P-256, one files deploy each):
//!
//! 1. `apply` from nothing with the clock pinned (`CERTFORM_NOW`), which builds the state;
//! 2. `validate` and `status` over that state, then one untimed no-op `apply` (the nightly
//!    run: it records the day's inventory listing of the CA and fills the check cache,
//!    `.git/certform-checks`), then `plan` and a no-op `apply` the same day, and a no-op
//!    `apply` on each of the next days (the daily inventory listing due: the nightly run as it
//!    is), each run `SCALE_RUNS` times (default 5): median wall time, median CPU time (user +
//!    system) and the largest peak RSS of a run;
//! 3. on the 1,000 configuration, an `apply` 80 days later that renews all 1,000 (one commit),
//!    each run on a fresh copy of the issued workspace, the copies made first and each run
//!    started 65 s after the last write (see `settle_frees`).
//!
//! Before each timed series the benchmark runs `sync`, so the writeback of the setup (or of the
//! copy) does not land in a timed run, and waits 6 s, past the caches' racy margin.
//!
//! `SCALE_SIZES=1000` limits the sizes (comma-separated). Peak RSS is the child's own
//! (`wait4`), not the benchmark's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The clock of the first apply; the renewal run is 80 days later (90-day certificates).
const ISSUED_AT: &str = "2027-01-04T00:00:00Z";
const RENEW_AT: &str = "2027-03-25T00:00:00Z";

fn config_text(n: usize) -> String {
    let mut text = String::from(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.local]\nkind = \"local\"\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "\n[certificate.c{i}]\ncommon_name = \"host{i}.example.test\"\nsans = [\"alt{i}.example.test\"]\ndeploy = [{{ kind = \"files\", dir = \"out/c{i}\" }}]\n"
        ));
    }
    text
}

/// One finished run of the binary: wall time, CPU time (user + system), peak RSS in KiB,
/// exit code.
struct Run {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: i64,
    code: i32,
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

/// Run certform with `args` in `dir` at `now`; the child's own peak RSS comes from `wait4`.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by `wait4`, which also returns its own resource usage"
)]
fn certform(dir: &Path, now: &str, args: &[&str]) -> Run {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_certform"))
        .args(args)
        .arg("-c")
        .arg(dir)
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("CERTFORM_NOW", now)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start certform");
    let pid = child.id() as libc::pid_t;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not reaped yet (Child is never waited on).
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed");
    let wall = started.elapsed();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    assert!(
        code == 0 || code == 2,
        "certform {args:?} exited {code}: {stderr}"
    );
    Run {
        wall,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss,
        code,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn row(what: &str, runs: &[Run]) {
    let walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    let max = walls.iter().max().copied().unwrap_or_default();
    let rss = runs.iter().map(|r| r.max_rss_kib).max().unwrap_or(0);
    let cpu = median(runs.iter().map(|r| r.cpu).collect());
    println!(
        "  {what:<34} {:>9.3} s  {:>9.3} s  {:>9.3} s  {:>7.1} MB   (n={})",
        median(walls).as_secs_f64(),
        max.as_secs_f64(),
        cpu.as_secs_f64(),
        rss as f64 / 1024.0,
        runs.len()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(status.success(), "cp -a failed");
}

/// Flush dirty pages, so a timed run does not share the disk with the writeback of the setup
/// or of a copy made just before it, and wait past the caches' racy margin (5 s: a file
/// changed less than that before a run is read, never recorded), as a scheduled run finds
/// files written hours before it.
fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(6));
}

/// `settle`, and past the minute in which ext4 without a journal skips freed inodes (its
/// `recently_deleted`: 60 s once the inode table is written back, which `sync` does), so a
/// renewal run does not walk the inodes the previous one freed.
fn settle_frees() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(65));
}

fn main() {
    // `cargo test --all-targets` runs benches in test mode with `--bench` absent: keep it fast.
    if !std::env::args().any(|a| a == "--bench") {
        println!("scale benchmark: run with `cargo bench --bench scale`");
        return;
    }
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("SCALE_SIZES: numbers"))
        .collect();
    let repeat: usize = std::env::var("SCALE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let base = tempfile::tempdir().expect("temp dir");
    for n in sizes {
        let dir = base.path().join(format!("n{n}"));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("certform.toml"), config_text(n)).expect("config");
        println!("{n} certificates, local CA, release build:");
        println!(
            "  {:<34} {:>11}  {:>11}  {:>11}  {:>10}",
            "command", "median", "max", "median CPU", "peak RSS"
        );
        let setup = certform(
            &dir,
            ISSUED_AT,
            &["apply", "--auto-approve", "--parallelism", "8"],
        );
        row("apply from nothing (setup)", &[setup]);
        settle();
        let times = |args: &[&str]| -> Vec<Run> {
            (0..repeat)
                .map(|_| certform(&dir, ISSUED_AT, args))
                .collect()
        };
        row("validate", &times(&["validate"]));
        row("status", &times(&["status"]));
        // The nightly run: lists the CA for the day's inventory (an apply from nothing
        // creates the CA and has nothing to list yet), fills the check cache.
        let nightly = certform(&dir, ISSUED_AT, &["apply", "--auto-approve"]);
        assert_eq!(nightly.code, 0, "the nightly apply failed");
        let plans = times(&["plan", "--detailed-exitcode"]);
        assert!(plans.iter().all(|r| r.code == 0), "plan has changes");
        row("plan, nothing due", &plans);
        row("apply, nothing due", &times(&["apply", "--auto-approve"]));
        // The next days' nightly runs: the daily inventory listing is due in each.
        let next_days: Vec<Run> = (1..=repeat.min(26))
            .map(|day| {
                let now = format!("2027-01-{:02}T00:00:00Z", 4 + day);
                certform(&dir, &now, &["apply", "--auto-approve"])
            })
            .collect();
        assert!(
            next_days.iter().all(|r| r.code == 0),
            "a nightly apply failed"
        );
        row("apply, nothing due, next day", &next_days);
        if n <= 1_000 {
            // Every copy is made first and removed only at the end: removing one frees its
            // ~25,000 inodes, and an ext4 without a journal (the reference machine's) walks
            // the inodes freed in the last minute on each file it creates, so a run started
            // seconds after a removal paid for the benchmark's own clean-up (a scheduled
            // run does not follow a mass deletion by seconds).
            let copies: Vec<_> = (0..repeat.min(3))
                .map(|i| {
                    let copy = base.path().join(format!("n{n}-renew{i}"));
                    copy_dir(&dir, &copy);
                    copy
                })
                .collect();
            let runs: Vec<Run> = copies
                .iter()
                .map(|copy| {
                    settle_frees();
                    let run = certform(copy, RENEW_AT, &["apply", "--auto-approve"]);
                    let plan = certform(copy, RENEW_AT, &["plan", "--detailed-exitcode"]);
                    assert_eq!(plan.code, 0, "the renewal left work undone");
                    run
                })
                .collect();
            for copy in &copies {
                let _ = std::fs::remove_dir_all(copy);
            }
            row(&format!("apply renewing all {n} (1 commit)"), &runs);
        }
    }
}
