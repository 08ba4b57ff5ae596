//! The simulated year: a fleet on the local CA renewed by one scheduled `apply` a day, with
//! the clock pinned and advanced in process, and transient CA failures injected
//! (`simulate_failures`). Used by the CLI test at CI size and by `benches/year.rs` at full
//! size; it reports what a fleet owner wants to know: renewals per day (storms), certificates
//! that ever expired, renewals per certificate per lifetime, CA writes per day against the
//! budget, CPU time, the state repository's size and the slowest day.
//!
//! It drives the library's `apply::apply` exactly as the CLI does (state in a git repository,
//! lock, plan, executor, commit), with no deploy targets so that only scheduling is measured.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration as StdDuration, Instant};

use time::{Duration, OffsetDateTime};

use crate::apply::{ApplyOptions, ApplyReport, RetryPolicy};
use crate::plan::{Action, Plan};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct YearOptions {
    /// An empty directory for the config, the state repository and the keys.
    pub dir: PathBuf,
    pub certificates: usize,
    pub days: u32,
    /// The local CA's `validity`, in days.
    pub lifetime_days: u32,
    /// `renew_before` as written in config (`33%`).
    pub renew_before: String,
    /// Share of orders the local CA refuses with a transient error.
    pub fail_rate: f64,
    /// `[ca.local] max_orders_per_run`.
    pub max_orders_per_run: u32,
    /// The days on which a third of the certificates is added to config (three bursts).
    pub bursts: [u32; 3],
    /// The first day, at the hour the scheduled run starts.
    pub start: OffsetDateTime,
    pub parallelism: usize,
    /// Print one line per day to standard error as it ends (a long run's figures so far).
    pub progress: bool,
}

impl YearOptions {
    /// `certificates` on 47-day lifetimes for `days`, renewing at a third of the lifetime
    /// left, 2 % of orders failing, a CA budget of twice the expected daily renewals.
    pub fn new(dir: PathBuf, certificates: usize, days: u32) -> Self {
        // One renewal per certificate every ~34 days (47 days less the third before expiry,
        // plus the spread): twice that daily mean, and never less than 10. The budget is what
        // flattens the peaks left by the bursts; the spread alone halves them.
        let budget = (certificates * 2 / 34).max(10);
        YearOptions {
            dir,
            certificates,
            days,
            lifetime_days: 47,
            renew_before: "33%".to_string(),
            fail_rate: 0.02,
            max_orders_per_run: u32::try_from(budget).unwrap_or(u32::MAX),
            bursts: [0, 9, 20],
            start: time::macros::datetime!(2029-03-15 02:00 UTC),
            parallelism: 4,
            progress: false,
        }
    }
}

/// One day's run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Day {
    pub day: u32,
    /// Renewals that succeeded.
    pub renewals: usize,
    /// Creates that succeeded.
    pub creates: usize,
    /// Orders that failed (each backs off).
    pub failures: usize,
    /// Orders sent to the CA (creates, renewals, reissues; failed ones too): its writes.
    pub ca_writes: usize,
    /// Orders the budget held for a later run.
    pub waiting: usize,
    /// Certificates the plan reported at risk of expiring.
    pub at_risk: usize,
    /// Whether the run committed.
    pub committed: bool,
    pub wall: StdDuration,
}

/// What a simulated year measured.
#[derive(Debug, Clone)]
pub struct YearReport {
    pub options: YearOptions,
    pub days: Vec<Day>,
    /// Certificates seen past their `not_after` at a run.
    pub expired: BTreeSet<String>,
    /// The most renewals any certificate had within one lifetime.
    pub max_renewals_per_lifetime: usize,
    /// User and system CPU time of the process over the run.
    pub cpu: StdDuration,
    pub wall: StdDuration,
    /// Bytes under the state repository's `.git`, and its loose objects and packs at the end.
    pub repo_bytes: u64,
    pub loose_objects: usize,
    pub packs: usize,
}

impl YearReport {
    /// The day from which renewals are counted for storms: after the first renewal window
    /// of the last burst (its certificates renew for the first time by then).
    pub fn steady_from(&self) -> u32 {
        self.options.bursts[2] + self.options.lifetime_days
    }

    /// Mean and maximum renewals per day from `steady_from` on.
    pub fn renewals_per_day(&self) -> (f64, usize) {
        let steady: Vec<usize> = self
            .days
            .iter()
            .filter(|d| d.day >= self.steady_from())
            .map(|d| d.renewals)
            .collect();
        if steady.is_empty() {
            return (0.0, 0);
        }
        let mean = steady.iter().sum::<usize>() as f64 / steady.len() as f64;
        (mean, steady.iter().copied().max().unwrap_or(0))
    }

    pub fn slowest(&self) -> Option<&Day> {
        self.days.iter().max_by_key(|d| d.wall)
    }

    /// The figures, one per line, for the bench and for failing assertions.
    pub fn describe(&self) -> String {
        let (mean, max) = self.renewals_per_day();
        let total: usize = self.days.iter().map(|d| d.renewals).sum();
        let failures: usize = self.days.iter().map(|d| d.failures).sum();
        let writes = self.days.iter().map(|d| d.ca_writes).max().unwrap_or(0);
        let commits = self.days.iter().filter(|d| d.committed).count();
        let at_risk: Vec<String> = self
            .days
            .iter()
            .filter(|d| d.at_risk > 0)
            .map(|d| format!("day {}: {}", d.day, d.at_risk))
            .collect();
        let waited = self.days.iter().map(|d| d.waiting).max().unwrap_or(0);
        let slowest = self
            .slowest()
            .map(|d| {
                format!(
                    "day {} ({:.2} s, {} renewals, {} creates)",
                    d.day,
                    d.wall.as_secs_f64(),
                    d.renewals,
                    d.creates
                )
            })
            .unwrap_or_default();
        format!(
            "certificates: {} on {}-day lifetimes, renew_before {}, {} days, bursts on days {:?}\n\
             renewals: {total} ({failures} failed orders, backed off and retried)\n\
             renewals per day from day {}: mean {mean:.1}, max {max} ({:.2} x mean)\n\
             certificates that ever expired: {}\n\
             most renewals of one certificate within one lifetime: {}\n\
             CA writes per day: max {writes} (budget {}); most orders waiting for budget: {waited}\n\
             days with certificates at risk: {}\n\
             runs that committed: {commits} of {}\n\
             CPU time: {:.1} s (wall {:.1} s)\n\
             state repository: {:.1} MiB, {} loose objects, {} packs\n\
             slowest day: {slowest}",
            self.options.certificates,
            self.options.lifetime_days,
            self.options.renew_before,
            self.options.days,
            self.options.bursts,
            self.steady_from(),
            if mean > 0.0 { max as f64 / mean } else { 0.0 },
            self.expired.len(),
            self.max_renewals_per_lifetime,
            self.options.max_orders_per_run,
            if at_risk.is_empty() { "none".to_string() } else { at_risk.join(", ") },
            self.days.len(),
            self.cpu.as_secs_f64(),
            self.wall.as_secs_f64(),
            self.repo_bytes as f64 / (1024.0 * 1024.0),
            self.loose_objects,
            self.packs,
        )
    }
}

/// Run the simulation. Errors are the run's (a failed apply), as text.
pub fn run(options: YearOptions) -> Result<YearReport, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))?;
    let config_path = options.dir.join("certform.toml");
    let cpu_before = cpu_time();
    let started = Instant::now();
    let mut days = Vec::new();
    let mut expired = BTreeSet::new();
    let mut renewed_on: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for day in 0..options.days {
        if let Some(burst) = options.bursts.iter().position(|b| *b == day) {
            let declared = options.certificates * (burst + 1) / 3;
            std::fs::write(&config_path, config(&options, declared))
                .map_err(|error| format!("cannot write the config: {error}"))?;
        }
        let now = options.start + Duration::days(i64::from(day));
        let apply_options = ApplyOptions {
            config_path: config_path.clone(),
            now,
            parallelism: Some(options.parallelism),
            lock_timeout: StdDuration::ZERO,
            failpoints: None,
            retry: RetryPolicy {
                attempts: 2,
                base_delay: StdDuration::ZERO,
            },
            progress: None,
            selection: crate::plan::Selection::default(),
            refresh_only: false,
            saved: None,
            force: true,
        };
        let began = Instant::now();
        let ended = runtime
            .block_on(crate::apply::apply(apply_options, &mut |_| {}, |_| true))
            .map_err(|error| format!("day {day}: {error}"))?;
        let wall = began.elapsed();
        let mut record = Day {
            day,
            wall,
            ..Day::default()
        };
        let plan = match &ended {
            ApplyReport::Unchanged { plan, .. } => plan,
            ApplyReport::Applied { plan, report } => {
                record.committed = report.commit.is_some();
                for outcome in &report.outcomes {
                    let orders = matches!(outcome.verb, "create" | "renew" | "reissue");
                    record.ca_writes += usize::from(orders);
                    match (&outcome.result, outcome.verb) {
                        (Ok(_), "renew") => {
                            record.renewals += 1;
                            renewed_on
                                .entry(outcome.certificate.clone())
                                .or_default()
                                .push(day);
                        }
                        (Ok(_), "create") => record.creates += 1,
                        (Err(_), _) => record.failures += 1,
                        _ => {}
                    }
                }
                plan
            }
            _ => return Err(format!("day {day}: the apply did not run")),
        };
        record_expired(plan, now, &mut expired);
        record.waiting = plan
            .blocked
            .iter()
            .filter(|b| b.reason.starts_with("waiting for budget"))
            .count();
        record.at_risk = plan.at_risk.len();
        if options.progress {
            eprintln!(
                "day {day}: {} renewals, {} creates, {} failed, {} CA writes, {} waiting, {} at risk, {} expired so far, {:.2} s, CPU so far {:.1} s",
                record.renewals,
                record.creates,
                record.failures,
                record.ca_writes,
                record.waiting,
                record.at_risk,
                expired.len(),
                wall.as_secs_f64(),
                cpu_time().saturating_sub(cpu_before).as_secs_f64()
            );
        }
        days.push(record);
    }
    let lifetime = options.lifetime_days;
    let max_renewals_per_lifetime = renewed_on
        .values()
        .map(|days| {
            days.iter()
                .map(|start| {
                    days.iter()
                        .filter(|d| **d >= *start && **d < start + lifetime)
                        .count()
                })
                .max()
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    let git = options.dir.join("state").join(".git");
    let (loose_objects, packs) = object_counts(&git);
    Ok(YearReport {
        repo_bytes: bytes_below(&git),
        loose_objects,
        packs,
        cpu: cpu_time().saturating_sub(cpu_before),
        wall: started.elapsed(),
        options,
        days,
        expired,
        max_renewals_per_lifetime,
    })
}

/// Certificates the plan shows past their `not_after` at `now`.
fn record_expired(plan: &Plan, now: OffsetDateTime, expired: &mut BTreeSet<String>) {
    for scheduled in &plan.schedule {
        if scheduled.not_after <= now {
            expired.insert(scheduled.certificate.clone());
        }
    }
    for change in &plan.changes {
        if let Action::Renew { not_after, .. } = change.action {
            if not_after <= now {
                expired.insert(change.certificate.clone());
            }
        }
    }
}

/// The configuration with the first `count` certificates.
fn config(options: &YearOptions, count: usize) -> String {
    let mut text = format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[defaults]\nca = \"local\"\nrenew_before = \"{}\"\nvalidity = {{ days = {} }}\n\n[ca.local]\nkind = \"local\"\nmax_orders_per_run = {}\nsimulate_failures = {}\n",
        options.renew_before, options.lifetime_days, options.max_orders_per_run, options.fail_rate
    );
    for n in 0..count {
        text.push_str(&format!(
            "\n[certificate.c{n:05}]\ncommon_name = \"c{n:05}.example.test\"\n"
        ));
    }
    text
}

/// User plus system CPU time of this process.
fn cpu_time() -> StdDuration {
    // SAFETY: `getrusage` only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return StdDuration::ZERO;
    }
    let micros = |t: libc::timeval| {
        StdDuration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + StdDuration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

fn bytes_below(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => stack.push(entry.path()),
                Ok(meta) => total += meta.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Loose objects and pack files in a git directory.
fn object_counts(git: &Path) -> (usize, usize) {
    let objects = git.join("objects");
    let mut loose = 0;
    if let Ok(entries) = std::fs::read_dir(&objects) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.len() == 2 && name.chars().all(|c| c.is_ascii_hexdigit()) {
                loose += std::fs::read_dir(entry.path())
                    .map(|e| e.count())
                    .unwrap_or(0);
            }
        }
    }
    let packs = std::fs::read_dir(objects.join("pack"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
                .count()
        })
        .unwrap_or(0);
    (loose, packs)
}
