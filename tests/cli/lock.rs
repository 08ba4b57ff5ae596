//! The state lock through the CLI: a killed run's lock is taken over by the next run, a running
//! holder is waited for (`--lock-timeout`) or reported, `unlock --force` never breaks a running
//! holder, and a lock from another host is never taken over.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sandbox::{Run, Sandbox, WEB};

const LOCK: &str = "state/.git/certform.lock";

fn two_certificates() -> String {
    format!(
        "{WEB}\n[certificate.api]\ncommon_name = \"api.example.test\"\ndeploy = [{{ kind = \"files\", dir = \"out/api\" }}]\n"
    )
}

/// certform with the sandbox's hermetic environment, started in the background.
fn spawn(sandbox: &Sandbox, args: &[&str]) -> Child {
    hermetic(sandbox, env!("CARGO_BIN_EXE_certform"))
        .args(args)
        .arg("-c")
        .arg(&sandbox.dir)
        .spawn()
        .expect("start certform")
}

/// `program` in the sandbox's hermetic environment, its output captured.
fn hermetic(sandbox: &Sandbox, program: &str) -> Command {
    let mut command = sandbox.hermetic(program);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn finish(child: Child) -> Run {
    let output = child.wait_with_output().expect("wait for certform");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[track_caller]
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The wait a busy-lock error reports (`...; waited 1.3s`), in seconds.
#[track_caller]
fn reported_wait(stderr: &str) -> f64 {
    let (_, rest) = stderr
        .split_once("; waited ")
        .unwrap_or_else(|| panic!("no wait reported: {stderr}"));
    let (seconds, _) = rest
        .split_once('s')
        .unwrap_or_else(|| panic!("no unit after the wait: {stderr}"));
    seconds
        .parse()
        .unwrap_or_else(|_| panic!("unreadable wait `{seconds}`: {stderr}"))
}

/// Asserts that a run gave up on a busy lock after waiting out `--lock-timeout 1s`: at least
/// the second it was given (the exact figure grows with the machine's load), and not
/// indefinitely.
#[track_caller]
fn assert_waited_out_one_second(stderr: &str) {
    let waited = reported_wait(stderr);
    assert!(
        (1.0..30.0).contains(&waited),
        "waited {waited}s for a 1s lock timeout: {stderr}"
    );
}

/// Field 22 of `/proc/PID/stat`: the process's start time in clock ticks after boot.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let rest = &stat[stat.rfind(')').expect("command") + 1..];
    rest.split_whitespace()
        .nth(19)
        .and_then(|field| field.parse().ok())
        .expect("start time")
}

/// A lock file as certform writes it; `started` and `boot_id` lines only when given.
fn lock_text(pid: u32, host: &str, started: Option<u64>, boot_id: Option<&str>) -> String {
    let mut text = format!(
        "pid = {pid}\nhost = \"{host}\"\nuser = \"someone\"\ncommand = \"certform apply --nightly\"\nsince = \"2026-05-01T12:00:00Z\"\n"
    );
    if let Some(started) = started {
        text.push_str(&format!("started = {started}\n"));
    }
    if let Some(boot_id) = boot_id {
        text.push_str(&format!("boot_id = \"{boot_id}\"\n"));
    }
    text
}

fn this_host() -> certform::state::LockHolder {
    certform::state::LockHolder::current("certform test")
}

/// A process that runs until killed; reaped on drop.
struct Sleeper(Child);

impl Sleeper {
    fn start() -> Self {
        Sleeper(
            Command::new("sleep")
                .arg("600")
                .spawn()
                .expect("start sleep"),
        )
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kill an apply at `point` (it exits as a kill would, leaving its lock); returns its pid.
fn killed_apply(sandbox: &Sandbox, point: &str) -> u32 {
    let run = sandbox.certform_env(
        &["apply", "--auto-approve", "--parallelism", "1"],
        &[("CERTFORM_FAILPOINT", point)],
    );
    assert_eq!(
        run.code,
        99,
        "fail point {point} not reached: {}",
        run.all()
    );
    let text = sandbox.read(LOCK);
    let pid: u32 = text
        .lines()
        .find_map(|line| line.strip_prefix("pid = "))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("the killed run left its lock: {text}"));
    pid
}

#[test]
fn a_killed_runs_lock_is_taken_over_and_the_run_converges() {
    for point in ["after-intent", "after-order", "before-commit"] {
        let sandbox = Sandbox::with_config(&two_certificates());
        let pid = killed_apply(&sandbox, point);
        let run = sandbox.apply().expect(0);
        let takeovers: Vec<&str> = run
            .stderr
            .lines()
            .filter(|line| line.contains("took over the state lock"))
            .collect();
        assert_eq!(takeovers.len(), 1, "{point}: {}", run.stderr);
        assert!(
            takeovers[0].starts_with(&format!(
                "warning: took over the state lock of `certform apply` (pid {pid} on "
            )),
            "{point}: {}",
            takeovers[0]
        );
        assert!(
            takeovers[0].ends_with(&format!("pid {pid} is no longer running")),
            "{point}: {}",
            takeovers[0]
        );
        assert!(!sandbox.path(LOCK).exists(), "{point}: lock released");
        sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
        for (cn, out) in [
            ("www.example.test", "out/web"),
            ("api.example.test", "out/api"),
        ] {
            assert_eq!(sandbox.orders_for(cn), 1, "{point}: one order for {cn}");
            sandbox.verify_deployed(out);
        }
    }
}

#[test]
fn a_running_apply_blocks_another_and_lock_timeout_waits_for_it() {
    // The first apply holds the lock while its reload hook waits for the test's go-ahead.
    let config = WEB.replace(
        "dir = \"out/web\" }",
        "dir = \"out/web\", reload = \"touch held; while [ ! -e go ]; do sleep 0.05; done\" }",
    );
    let sandbox = Sandbox::with_config(&config);
    let first = spawn(&sandbox, &["apply", "--auto-approve"]);
    let holder = first.id();
    wait_for("the first apply's reload hook", || {
        sandbox.path("held").exists()
    });

    let blocked = sandbox.apply().expect(1);
    assert!(
        blocked
            .stderr
            .contains(&format!("is locked by `certform apply` (pid {holder} on ")),
        "{}",
        blocked.stderr
    );
    assert!(
        blocked.stderr.contains("which is still running\n"),
        "no wait with the default `--lock-timeout 0`: {}",
        blocked.stderr
    );
    assert!(
        blocked.stderr.contains("hint:") && blocked.stderr.contains("--lock-timeout"),
        "{}",
        blocked.stderr
    );

    // `unlock --force` leaves a running holder's lock alone.
    let refused = sandbox.certform(&["unlock", "--force"]).expect(1);
    assert!(
        refused
            .stderr
            .contains("refusing to break the lock of state repository"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&format!("(pid {holder} on ")),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("hint:"), "{}", refused.stderr);
    assert!(sandbox.path(LOCK).exists());

    let waiting = spawn(
        &sandbox,
        &["apply", "--auto-approve", "--lock-timeout", "2m"],
    );
    std::thread::sleep(Duration::from_millis(700));
    let mut waiting = waiting;
    assert!(
        waiting.try_wait().expect("poll").is_none(),
        "the second apply waits for the lock"
    );
    std::fs::write(sandbox.path("go"), "").expect("go");
    finish(first).expect(0);
    let second = finish(waiting).expect(0);
    assert!(
        second.stderr.contains(&format!(
            "waiting up to 120s for the state lock held by `certform apply` (pid {holder} on "
        )),
        "{}",
        second.stderr
    );
    assert!(!second.stderr.contains("took over"), "{}", second.stderr);
    assert!(second.stdout.contains("No changes"), "{}", second.stdout);
    assert_eq!(sandbox.orders_for("www.example.test"), 1);
    assert!(!sandbox.path(LOCK).exists());
}

#[test]
fn a_live_process_recorded_as_holder_blocks_until_its_pid_is_reused() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let here = this_host();
    let boot = here.boot_id.as_deref();
    let sleeper = Sleeper::start();
    let started = start_time(sleeper.pid());
    let lock = lock_text(sleeper.pid(), &here.host, Some(started), boot);
    std::fs::write(sandbox.path(LOCK), &lock).expect("write lock");

    let run = sandbox.apply().expect(1);
    assert!(
        run.stderr.contains(&format!(
            "locked by `certform apply --nightly` (pid {} on {}, user someone, since 2026-05-01T12:00:00Z), which is still running",
            sleeper.pid(),
            here.host
        )),
        "{}",
        run.stderr
    );
    sandbox.certform(&["unlock", "--force"]).expect(1);
    let waited = sandbox
        .certform(&["apply", "--auto-approve", "--lock-timeout", "1s"])
        .expect(1);
    assert_waited_out_one_second(&waited.stderr);
    assert_eq!(sandbox.read(LOCK), lock, "the lock is left as it was");

    // The same pid with another start time is another process: the holder is dead.
    let reused = lock_text(sleeper.pid(), &here.host, Some(started + 1), boot);
    std::fs::write(sandbox.path(LOCK), reused).expect("write lock");
    let run = sandbox.apply().expect(0);
    assert!(
        run.stderr.contains(&format!(
            "pid {} now belongs to a process started after the lock was taken",
            sleeper.pid()
        )),
        "{}",
        run.stderr
    );
    assert!(!sandbox.path(LOCK).exists());
}

#[test]
fn unlock_force_breaks_a_dead_holders_lock() {
    let sandbox = Sandbox::with_config(WEB);
    let pid = killed_apply(&sandbox, "after-order");
    let run = sandbox.certform(&["unlock", "--force"]).expect(0);
    assert!(
        run.stdout.contains(&format!(
            "broke the lock held by `certform apply` (pid {pid} on "
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("pid {pid} is no longer running")),
        "{}",
        run.stdout
    );
    assert!(!sandbox.path(LOCK).exists());
    let next = sandbox.apply().expect(0);
    assert!(!next.stderr.contains("took over"), "{}", next.stderr);
    assert_eq!(sandbox.orders_for("www.example.test"), 1);
    let again = sandbox.certform(&["unlock", "--force"]).expect(0);
    assert!(
        again.stdout.contains("the state repository is not locked"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_lock_from_another_host_is_not_taken_over() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    // Pid 1 on the other host may or may not run: it cannot be checked from here.
    let lock = lock_text(1, "build-7.elsewhere.example", Some(12), Some("other-boot"));
    std::fs::write(sandbox.path(LOCK), &lock).expect("write lock");

    let run = sandbox.apply().expect(1);
    assert!(
        run.stderr.contains(
            "locked by `certform apply --nightly` (pid 1 on build-7.elsewhere.example, user someone, since 2026-05-01T12:00:00Z), on another host: certform cannot check from here whether it still runs"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "if that run is gone from `build-7.elsewhere.example`, break the lock with `certform unlock --force`"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(sandbox.read(LOCK), lock, "the lock is left as it was");

    let run = sandbox.certform(&["unlock", "--force"]).expect(0);
    assert!(
        run.stdout.contains("it was taken on another host"),
        "{}",
        run.stdout
    );
    assert!(!sandbox.path(LOCK).exists());
    sandbox.apply().expect(0);
}

#[test]
fn an_old_format_lock_is_judged_by_its_pid() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let host = this_host().host;
    let mut sleeper = Sleeper::start();
    // The previous format: no start time, no boot id.
    let lock = format!(
        "# certform lock: a run holds the state repository; `certform unlock --force` removes it\n{}",
        lock_text(sleeper.pid(), &host, None, None)
    );
    std::fs::write(sandbox.path(LOCK), &lock).expect("write lock");

    let run = sandbox.apply().expect(1);
    assert!(
        run.stderr.contains("whose pid still runs"),
        "{}",
        run.stderr
    );
    let hint = format!("if pid {} is not a certform run, delete `", sleeper.pid());
    assert!(run.stderr.contains(&hint), "{}", run.stderr);
    let refused = sandbox.certform(&["unlock", "--force"]).expect(1);
    assert!(refused.stderr.contains(&hint), "{}", refused.stderr);
    assert_eq!(sandbox.read(LOCK), lock);

    sleeper.stop();
    let run = sandbox.apply().expect(0);
    assert!(
        run.stderr.contains(&format!(
            "took over the state lock of `certform apply --nightly` (pid {} on {host}",
            sleeper.pid()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn a_corrupt_lock_is_reported_and_can_be_broken() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    for content in [&b""[..], b"\xff\x00garbage", b"pid = \"x\"\n"] {
        std::fs::write(sandbox.path(LOCK), content).expect("write lock");
        let run = sandbox.apply().expect(1);
        assert!(
            run.stderr.contains("is locked, but its lock file `")
                && run.stderr.contains("certform.lock` is unreadable"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(
            run.stderr.contains("certform unlock --force"),
            "{}",
            run.stderr
        );
        let broken = sandbox.certform(&["unlock", "--force"]).expect(0);
        assert!(
            broken.stdout.contains("removed an unreadable lock file"),
            "{}",
            broken.stdout
        );
        sandbox.apply().expect(0);
    }
}

#[test]
fn two_runs_racing_for_a_dead_lock_take_it_over_once() {
    let sandbox = Sandbox::with_config(&two_certificates());
    killed_apply(&sandbox, "after-order");
    let runs: Vec<Child> = (0..2)
        .map(|_| {
            spawn(
                &sandbox,
                &["apply", "--auto-approve", "--lock-timeout", "2m"],
            )
        })
        .collect();
    let runs: Vec<Run> = runs.into_iter().map(|run| finish(run).expect(0)).collect();
    let takeovers = runs
        .iter()
        .filter(|run| run.stderr.contains("took over the state lock"))
        .count();
    assert_eq!(takeovers, 1, "{}\n{}", runs[0].all(), runs[1].all());
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    assert_eq!(sandbox.orders_for("www.example.test"), 1);
    assert_eq!(sandbox.orders_for("api.example.test"), 1);
}

#[test]
fn lock_timeout_must_be_a_duration() {
    let sandbox = Sandbox::with_config(WEB);
    let run = sandbox
        .certform(&["apply", "--auto-approve", "--lock-timeout", "soon"])
        .expect(1);
    assert!(run.stderr.contains("--lock-timeout"), "{}", run.stderr);
    assert!(run.stderr.contains("like `10m`"), "{}", run.stderr);
}

#[test]
fn import_waits_for_reports_and_takes_over_the_lock_like_apply() {
    // Nothing listens on the account's URL: import fails at the CA once it holds the lock.
    let sandbox = Sandbox::with_config(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.dc]\nkind = \"digicert\"\napi_key = { env = \"DIGICERT_API_KEY\" }\nurl = \"http://127.0.0.1:9/services/v2/\"\n",
    );
    sandbox.git(".", &["init", "-q", "-b", "main", "state"]);
    let here = this_host();
    let mut sleeper = Sleeper::start();
    let lock = lock_text(
        sleeper.pid(),
        &here.host,
        Some(start_time(sleeper.pid())),
        here.boot_id.as_deref(),
    );
    std::fs::write(sandbox.path(LOCK), &lock).expect("write lock");
    let env = [("DIGICERT_API_KEY", "key")];

    let run = sandbox
        .certform_env(&["import", "dc", "--lock-timeout", "1s"], &env)
        .expect(1);
    assert!(
        run.stderr.contains(&format!(
            "waiting up to 1s for the state lock held by `certform apply --nightly` (pid {} on ",
            sleeper.pid()
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("which is still running; waited "),
        "{}",
        run.stderr
    );
    assert_waited_out_one_second(&run.stderr);
    assert_eq!(sandbox.read(LOCK), lock);

    sleeper.stop();
    let run = sandbox.certform_env(&["import", "dc"], &env).expect(1);
    assert!(
        run.stderr.contains(&format!(
            "warning: took over the state lock of `certform apply --nightly` (pid {} on ",
            sleeper.pid()
        )),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("locked by"),
        "import went on to the CA: {}",
        run.stderr
    );
    assert!(!sandbox.path(LOCK).exists(), "import released the lock");
}

/// `certform apply` under `strace` with `filter`, which kills it at a chosen syscall.
fn apply_killed_by_strace(sandbox: &Sandbox, filter: &[&str]) -> Run {
    let mut command = hermetic(sandbox, "strace");
    command.args(["-f", "-qq"]).args(filter).args([
        env!("CARGO_BIN_EXE_certform"),
        "apply",
        "--auto-approve",
        "-c",
    ]);
    command.arg(&sandbox.dir);
    match command.spawn() {
        Ok(child) => finish(child),
        Err(error) => panic!("strace is needed for this test (apt-get install -y strace): {error}"),
    }
}

#[test]
fn kills_at_the_lock_files_syscalls_never_lock_the_next_run_out() {
    let sandbox = Sandbox::with_config(WEB);
    let lock = sandbox.path(LOCK);
    let lock = lock.to_str().expect("utf-8 path");
    // 1. Killed as it links its new lock into place (the state repository is new).
    let run = apply_killed_by_strace(
        &sandbox,
        &[
            "-P",
            lock,
            "-e",
            "trace=link,linkat",
            "-e",
            "inject=link,linkat:signal=KILL",
        ],
    );
    assert!(
        run.stderr.contains("certform.lock.tmp-") && run.stderr.contains("killed by SIGKILL"),
        "killed at the link: {}",
        run.stderr
    );
    sandbox.apply().expect(0);
    assert_eq!(sandbox.orders_for("www.example.test"), 1);

    // 2. Killed as it removes its lock at the end of a run: the lock stays behind.
    let run = apply_killed_by_strace(
        &sandbox,
        &[
            "-P",
            lock,
            "-e",
            "trace=unlink,unlinkat",
            "-e",
            "inject=unlink,unlinkat:signal=KILL",
        ],
    );
    assert!(run.stderr.contains("killed by SIGKILL"), "{}", run.stderr);
    assert!(sandbox.path(LOCK).exists(), "the killed run left its lock");

    // 3. Killed as it takes that lock over: its first rename.
    let run = apply_killed_by_strace(
        &sandbox,
        &[
            "-e",
            "trace=rename",
            "-e",
            "inject=rename:signal=KILL:when=1",
        ],
    );
    assert!(
        run.stderr.contains("certform.lock.tmp-") && run.stderr.contains("killed by SIGKILL"),
        "killed at the takeover: {}",
        run.stderr
    );

    let run = sandbox.apply().expect(0);
    assert!(
        run.stderr.contains("took over the state lock"),
        "{}",
        run.stderr
    );
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    assert_eq!(sandbox.orders_for("www.example.test"), 1);
    let left: Vec<String> = std::fs::read_dir(sandbox.path("state/.git"))
        .expect("git dir")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("certform.lock"))
        .collect();
    assert!(left.is_empty(), "lock files left: {left:?}");
}
