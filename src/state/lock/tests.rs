//! Tests of the state lock: liveness of holders, takeover, waiting, breaking.

use std::sync::{Arc, Barrier};

use super::*;

const REPO: &str = "/x/state";

fn repo() -> &'static Path {
    Path::new(REPO)
}

/// A pid that no longer runs: a child spawned and reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn holder_for(pid: u32) -> LockHolder {
    LockHolder {
        pid,
        command: "certform apply --test".to_string(),
        ..LockHolder::current("x")
    }
}

fn write_lock(dir: &Path, holder: &LockHolder) {
    let content = render(holder, dir).unwrap();
    fs::write(dir.join(LOCK_FILE), content).unwrap();
}

#[test]
fn holder_display_names_command_pid_host_user_and_time() {
    let holder = LockHolder {
        pid: 123,
        host: "ci-7".to_string(),
        user: Some("alice".to_string()),
        command: "certform apply".to_string(),
        since: time::macros::datetime!(2026-05-01 12:00:00 UTC),
        started: Some(42),
        boot_id: None,
    };
    assert_eq!(
        holder.to_string(),
        "`certform apply` (pid 123 on ci-7, user alice, since 2026-05-01T12:00:00Z)"
    );
}

#[test]
fn the_current_process_is_running() {
    let holder = LockHolder::current("certform apply");
    assert!(holder.started.is_some(), "Linux records the start time");
    assert!(holder.boot_id.is_some(), "Linux records the boot id");
    assert_eq!(holder.liveness(), Liveness::Running);
}

#[test]
fn a_reaped_child_is_dead() {
    let holder = holder_for(dead_pid());
    assert_eq!(holder.liveness(), Liveness::Dead(Death::Exited));
}

#[test]
fn a_zombie_is_dead() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let holder = holder_for(child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while holder.liveness() != Liveness::Dead(Death::Exited) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(holder.liveness(), Liveness::Dead(Death::Exited));
    child.wait().unwrap();
}

#[test]
fn a_reused_pid_is_told_apart_by_its_start_time() {
    let mut holder = LockHolder::current("certform apply");
    holder.started = holder.started.map(|started| started + 1);
    assert_eq!(holder.liveness(), Liveness::Dead(Death::PidReused));
}

#[test]
fn a_reboot_kills_every_recorded_pid() {
    let mut holder = LockHolder::current("certform apply");
    holder.boot_id = Some("00000000-0000-0000-0000-000000000000".to_string());
    assert_eq!(holder.liveness(), Liveness::Dead(Death::Rebooted));
}

#[test]
fn another_host_cannot_be_checked() {
    let mut holder = holder_for(dead_pid());
    holder.host = "elsewhere.example".to_string();
    assert_eq!(holder.liveness(), Liveness::OtherHost);
}

#[test]
fn an_old_lock_is_judged_by_its_pid_alone() {
    let mut alive = LockHolder::current("certform apply");
    alive.started = None;
    alive.boot_id = None;
    assert_eq!(alive.liveness(), Liveness::PidRunning);
    let mut dead = holder_for(dead_pid());
    dead.started = None;
    dead.boot_id = None;
    assert_eq!(dead.liveness(), Liveness::Dead(Death::Exited));
    // The previous format reads: no start time, no boot id.
    let old = "# certform lock\npid = 4194000\nhost = \"h\"\ncommand = \"certform apply\"\n\
               since = \"2026-05-01T12:00:00Z\"\n";
    let parsed: LockHolder = toml::from_str(old).unwrap();
    assert_eq!((parsed.started, parsed.boot_id), (None, None));
}

#[test]
fn a_dead_holders_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let dead = holder_for(dead_pid());
    write_lock(dir.path(), &dead);
    let guard = acquire(dir.path(), repo(), "certform apply", Duration::ZERO).unwrap();
    assert_eq!(guard.taken_over(), Some(&(dead, Death::Exited)));
    let text = fs::read_to_string(guard.path()).unwrap();
    assert!(
        text.contains(&format!("pid = {}", std::process::id())),
        "{text}"
    );
    drop(guard);
    assert!(!dir.path().join(LOCK_FILE).exists());
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
}

#[test]
fn a_running_holder_is_reported_after_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let _guard = acquire(dir.path(), repo(), "certform apply --first", Duration::ZERO).unwrap();
    let started = Instant::now();
    let error = acquire(
        dir.path(),
        repo(),
        "certform apply",
        Duration::from_millis(500),
    )
    .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(500));
    match &error {
        Error::Locked {
            holder, liveness, ..
        } => {
            assert_eq!(holder.command, "certform apply --first");
            assert_eq!(*liveness, Liveness::Running);
        }
        other => panic!("unexpected: {other}"),
    }
}

#[test]
fn a_held_flock_means_running_whatever_the_pid_says() {
    let dir = tempfile::tempdir().unwrap();
    let guard = acquire(dir.path(), repo(), "certform apply", Duration::ZERO).unwrap();
    // Rewrite the record to a dead pid in place: the holder's `flock` still stands.
    write_lock(dir.path(), &holder_for(dead_pid()));
    let error = acquire(dir.path(), repo(), "certform apply", Duration::ZERO).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Locked {
                liveness: Liveness::Running,
                ..
            }
        ),
        "{error}"
    );
    assert!(matches!(
        break_lock(dir.path(), repo()),
        Err(Error::LockHeld { .. })
    ));
    drop(guard);
}

#[test]
fn a_waiting_run_gets_the_lock_once_the_holder_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let guard = acquire(dir.path(), repo(), "certform apply", Duration::ZERO).unwrap();
    let begin = OffsetDateTime::now_utc();
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(3_000));
        drop(guard);
    });
    let second = acquire(
        dir.path(),
        repo(),
        "certform apply",
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(second.taken_over(), None);
    // `since` says when the lock was taken, not when the wait began. It is kept to whole
    // seconds and stamped just before the holder record is written (an fsync, which can take
    // a second or more on a busy disk) ahead of the attempt that wins; the holder let go 3 s
    // after `begin`, so it reads at least the second after `begin`'s.
    let earliest = (begin + time::Duration::seconds(1))
        .replace_nanosecond(0)
        .unwrap();
    assert!(
        second.holder().since >= earliest,
        "{} vs {begin}",
        second.holder()
    );
    let recorded = read_holder(&mut File::open(second.path()).unwrap()).unwrap();
    assert_eq!(&recorded, second.holder());
    release.join().unwrap();
    drop(second);
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert!(names.is_empty(), "files left: {names:?}");
}

#[test]
fn racing_takeovers_of_a_dead_lock_have_one_winner() {
    for _ in 0..20 {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        write_lock(dir.path(), &holder_for(dead_pid()));
        let runs = 8;
        let barrier = Arc::new(Barrier::new(runs));
        let done = Arc::new(Barrier::new(runs));
        let threads: Vec<_> = (0..runs)
            .map(|_| {
                let (dir, barrier, done) = (dir.clone(), barrier.clone(), done.clone());
                thread::spawn(move || {
                    barrier.wait();
                    let result = acquire(dir.path(), repo(), "certform apply", Duration::ZERO);
                    let won = match &result {
                        Ok(guard) => guard.taken_over().is_some(),
                        Err(Error::Locked { liveness, .. }) => {
                            assert_eq!(*liveness, Liveness::Running);
                            false
                        }
                        Err(other) => panic!("unexpected: {other}"),
                    };
                    // Hold the lock until every racer has tried.
                    done.wait();
                    won
                })
            })
            .collect();
        let winners = threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .filter(|won| *won)
            .count();
        assert_eq!(winners, 1);
    }
}

#[test]
fn unlock_refuses_a_running_holder_and_breaks_a_dead_or_remote_one() {
    let dir = tempfile::tempdir().unwrap();
    let guard = acquire(dir.path(), repo(), "certform apply", Duration::ZERO).unwrap();
    let error = break_lock(dir.path(), repo()).unwrap_err();
    assert!(matches!(error, Error::LockHeld { .. }), "{error}");
    assert!(guard.path().exists());
    drop(guard);

    let dead = holder_for(dead_pid());
    write_lock(dir.path(), &dead);
    let broken = break_lock(dir.path(), repo()).unwrap().unwrap();
    assert_eq!(broken.holder, Some(dead));
    assert_eq!(broken.liveness, Some(Liveness::Dead(Death::Exited)));

    let mut remote = LockHolder::current("certform apply");
    remote.host = "elsewhere.example".to_string();
    write_lock(dir.path(), &remote);
    let error = acquire(dir.path(), repo(), "certform apply", Duration::ZERO).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Locked {
                liveness: Liveness::OtherHost,
                ..
            }
        ),
        "{error}"
    );
    let broken = break_lock(dir.path(), repo()).unwrap().unwrap();
    assert_eq!(broken.liveness, Some(Liveness::OtherHost));
    assert_eq!(break_lock(dir.path(), repo()).unwrap(), None);
}

#[test]
fn an_old_lock_with_a_live_pid_is_not_broken() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = LockHolder::current("certform apply");
    old.started = None;
    old.boot_id = None;
    write_lock(dir.path(), &old);
    let error = acquire(dir.path(), repo(), "certform apply", Duration::ZERO).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Locked {
                liveness: Liveness::PidRunning,
                ..
            }
        ),
        "{error}"
    );
    assert!(matches!(
        break_lock(dir.path(), repo()),
        Err(Error::LockHeld {
            liveness: Liveness::PidRunning,
            ..
        })
    ));
}

#[test]
fn unreadable_lock_is_reported_and_can_be_broken() {
    for content in [&b"garbage"[..], b"", b"\xff\xfe", b"pid = -1\nhost = 3\n"] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LOCK_FILE), content).unwrap();
        let error = acquire(dir.path(), repo(), "certform apply", Duration::ZERO).unwrap_err();
        assert!(
            matches!(error, Error::LockUnreadable { .. }),
            "unexpected: {error}"
        );
        assert!(error.to_string().contains("certform.lock"), "{error}");
        let broken = break_lock(dir.path(), repo()).unwrap().unwrap();
        assert_eq!(broken.holder, None);
        let guard = acquire(dir.path(), repo(), "certform apply", Duration::ZERO).unwrap();
        assert!(guard.path().exists());
    }
}

#[test]
fn temporary_files_of_dead_runs_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir
        .path()
        .join(format!("{TEMPORARY_PREFIX}{}-0", dead_pid()));
    fs::write(&stale, "x").unwrap();
    let guard = acquire(dir.path(), repo(), "certform apply", Duration::ZERO).unwrap();
    assert!(!stale.exists());
    drop(guard);
}
