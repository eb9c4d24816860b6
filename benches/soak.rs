//! `cargo bench --bench soak`: the daemon under trouble for `SOAK_SECONDS` (default 600), then
//! the reliability figures of issue 6: changes made on the provider, changes acknowledged,
//! lost (must be 0), duplicates before dedupe, peak RSS, and CPU while idle.
//!
//! Everything runs on loopback and stops by itself:
//! - a chaos provider (`support/chaos_provider.rs`): 200 instances, one contacts resource each
//!   polled every minute, a `${date:...}` filter and the Open Connectors page token (pages of
//!   2, so changes straddle pages). Once an instance's baseline is committed, its records are
//!   created and updated a few times a minute, in bursts sharing one timestamp. 10% of
//!   requests get a 5xx, 5% a 429 with `Retry-After` of 1 to 3 s, every request 0-500 ms of
//!   latency. It keeps every change it made as the ground truth.
//! - a chaos receiver (`support/chaos_receiver.rs`): verifies both signatures, answers 20% with
//!   a 5xx and 3% only after the delivery timeout, and records what it acknowledged (2xx only).
//! - the release binary, `ocpoll run --foreground`, with its own config, instances folder and
//!   state in a temporary folder: SIGHUP every 30 s (every other time after editing an instance
//!   file, else after touching one) and SIGKILL plus restart every 2 minutes.
//!
//! Then the provider stops changing, the daemon catches up (until the receiver has every change,
//! or 3 minutes), and SIGTERM stops it. Last, the idle phase: chaos off, a fresh daemon on the
//! same state makes its start-up polls (nothing new), and its CPU is measured from 20 s to 50 s
//! after start, while no poll is due (the next ones are a minute after start).
//!
//! Ground truth: a resource's first poll is a baseline (docs/design.md#change-detection: no events for what existed),
//! so an instance gets changes only after the provider has seen a request filtered from its
//! watermark, which only a committed baseline sends. A change is (instance, id, updated);
//! versions a poll could never see (overwritten before any poll) cannot happen, as a record is
//! updated again only 150 s after its last change.
//!
//! Figures go to stdout and `target/bench/soak.json`; daemon logs stay in the temporary folder
//! when `SOAK_KEEP=1`.

#[path = "support/chaos_provider.rs"]
mod chaos_provider;
#[path = "support/chaos_receiver.rs"]
mod chaos_receiver;
#[path = "../tests/support/mock_receiver.rs"]
mod mock_receiver;
#[path = "support/process.rs"]
mod process;

use chaos_provider::{Change, ChaosProvider, ProviderCounts};
use chaos_receiver::{Acked, ChaosReceiver, Tally};
use process::{cpu_seconds, isolate, memory_kib, write_report};
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const INSTANCES: usize = 200;
const KEY: &str = "soak-signature-key";
const PAGE_SIZE: usize = 2;
const SIGHUP_EVERY: Duration = Duration::from_secs(30);
const KILL_EVERY: Duration = Duration::from_secs(120);
const DRAIN_DEADLINE: Duration = Duration::from_secs(180);
/// The idle window, measured from the idle daemon's start.
const IDLE_FROM: Duration = Duration::from_secs(20);
const IDLE_UNTIL: Duration = Duration::from_secs(50);
/// Changes: every tick, each instance makes a burst with this chance (3 bursts a minute).
const CHANGE_TICK: Duration = Duration::from_millis(200);
const BURST_CHANCE: f64 = 1.0 / 100.0;
const DELIVERY_TIMEOUT_SECONDS: u64 = 2;
const CONFIG: &str = "\
[poll]
# 200 instances share one loopback host; the default 4 polls per host cannot keep a
# one-minute interval with 0-500 ms latency and Retry-After waits.
per_host = 32
[delivery]
timeout_seconds = 2
backoff_initial_seconds = 1
backoff_max_seconds = 5
";

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter this bench ignores.
    let soak = Duration::from_secs(
        std::env::var("SOAK_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600),
    );
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_ocpoll"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let provider = Arc::new(runtime.block_on(ChaosProvider::start(
        INSTANCES,
        chaos_provider::Chaos {
            server_error: 0.10,
            too_many_requests: 0.05,
            max_latency: Duration::from_millis(500),
            retry_after_seconds: (1, 3),
        },
    )));
    let receiver = runtime.block_on(ChaosReceiver::start(
        KEY,
        chaos_receiver::Chaos {
            server_error: 0.20,
            stall: 0.03,
            stall_for: Duration::from_secs(DELIVERY_TIMEOUT_SECONDS + 1),
        },
    ));
    let dir = tempfile::Builder::new()
        .prefix("ocpoll-bench-soak-")
        .tempdir()
        .expect("temporary folder");
    write_setup(dir.path(), &provider, &receiver);
    println!(
        "soak: {INSTANCES} instances for {}s in {}",
        soak.as_secs(),
        dir.path().display()
    );

    let began = Instant::now();
    let mut run = Run::default();
    let changer = runtime.spawn(Arc::clone(&provider).change_records(CHANGE_TICK, BURST_CHANCE));
    let daemon = chaos_phase(
        &binary,
        dir.path(),
        soak,
        &provider,
        &receiver.url(),
        &mut run,
    );
    provider.stop_changes();
    runtime.block_on(changer).ok();
    let changes = provider.changes();
    let daemon = drain(daemon, &changes, &receiver, &mut run);
    run.last_exit = Some(daemon.terminate(&mut run));
    let counts = provider.counts();
    let tally = receiver.tally();

    provider.calm();
    receiver.calm();
    let idle = idle_phase(&binary, dir.path(), &provider, &mut run);
    let total = began.elapsed();
    let logs = LogCounts::read(dir.path());

    let figures = Figures::compute(&changes, &tally, &counts, &run, &idle, &logs, total);
    figures.print();
    write_report(&binary, "soak", &figures.to_json(soak));
    if std::env::var_os("SOAK_KEEP").is_some() {
        println!("kept {}", dir.keep().display());
    }
}

// -------------------------------------------------------------------------------------------
// Setup
// -------------------------------------------------------------------------------------------

fn write_setup(dir: &Path, provider: &ChaosProvider, receiver: &ChaosReceiver) {
    std::fs::write(dir.join("config.toml"), CONFIG).expect("write config.toml");
    let instances = dir.join("instances.d");
    std::fs::create_dir(&instances).expect("create instances.d");
    for n in 0..INSTANCES {
        let body = instance_json(n, &provider.resource_url(n), &receiver.url(), 0);
        std::fs::write(instance_path(dir, n), body).expect("write an instance");
    }
}

fn instance_path(dir: &Path, n: usize) -> PathBuf {
    dir.join("instances.d")
        .join(format!("{}.json", chaos_provider::instance_name(n)))
}

/// Instance `n`; `edit` changes only its tags (a real edit the daemon reloads).
fn instance_json(n: usize, resource: &str, callback: &str, edit: u32) -> String {
    let format = chaos_provider::format_spec(n);
    serde_json::to_string_pretty(&json!({
        "element": {"key": "soakcrm"},
        "name": chaos_provider::instance_name(n),
        "tags": ["soak", format!("edit-{edit}")],
        "configuration": {
            "event.notification.enabled": true,
            "event.notification.callback.url": callback,
            "event.notification.signature.key": KEY,
            "event.poller.refresh_interval": 1,
            "event.poller.configuration": {
                "contacts": {
                    "url": format!("{resource}?where=updated_at>='${{date:{format}}}'&pageSize={PAGE_SIZE}"),
                    "idField": "id",
                    "datesConfiguration": {
                        "updatedDateField": "updated_at",
                        "updatedDateFormat": format,
                        "updatedDateTimezone": "UTC",
                    }
                }
            }
        }
    }))
    .expect("an instance as JSON")
}

// -------------------------------------------------------------------------------------------
// The phases
// -------------------------------------------------------------------------------------------

/// What the driver did and saw of the daemon, over every incarnation.
#[derive(Default)]
struct Run {
    incarnations: u32,
    sighups: u32,
    edits: u32,
    kills: u32,
    peak_kib: u64,
    /// Incarnations that exited by themselves (they should not).
    unexpected_exits: Vec<String>,
    last_exit: Option<String>,
    drain: Duration,
    drained: bool,
}

/// SIGHUP every 30 s, SIGKILL and restart every 2 minutes, until `soak` has passed.
fn chaos_phase(
    binary: &Path,
    dir: &Path,
    soak: Duration,
    provider: &ChaosProvider,
    callback: &str,
    run: &mut Run,
) -> Daemon {
    let began = Instant::now();
    let mut daemon = Daemon::start(binary, dir, run);
    let mut next_hup = SIGHUP_EVERY;
    let mut next_kill = KILL_EVERY;
    let mut next_report = Duration::from_secs(30);
    while began.elapsed() < soak {
        std::thread::sleep(Duration::from_millis(250));
        daemon = daemon.keep_alive(binary, dir, run);
        run.peak_kib = run.peak_kib.max(daemon.high_water());
        let now = began.elapsed();
        if now >= next_hup {
            next_hup += SIGHUP_EVERY;
            touch_or_edit(dir, provider, callback, run);
            daemon.signal(libc::SIGHUP);
            run.sighups += 1;
        }
        if now >= next_kill {
            next_kill += KILL_EVERY;
            daemon.kill(run);
            run.kills += 1;
            daemon = Daemon::start(binary, dir, run);
        }
        if now >= next_report {
            next_report += Duration::from_secs(30);
            println!(
                "  {:>4}s  {} instances past baseline, {} changes, {} provider requests, \
                 incarnation {}, peak {:.1} MiB",
                now.as_secs(),
                provider.past_baseline(),
                provider.changes().len(),
                provider.counts().requests,
                run.incarnations,
                run.peak_kib as f64 / 1024.0
            );
        }
    }
    daemon
}

/// Every other SIGHUP follows a real edit of a random instance file, else a touch.
fn touch_or_edit(dir: &Path, provider: &ChaosProvider, callback: &str, run: &mut Run) {
    let n = rand::random_range(0..INSTANCES);
    let path = instance_path(dir, n);
    if run.sighups.is_multiple_of(2) {
        run.edits += 1;
        let body = instance_json(n, &provider.resource_url(n), callback, run.edits);
        std::fs::write(&path, body).expect("edit an instance");
    } else if let Ok(file) = std::fs::File::options().append(true).open(&path) {
        file.set_modified(SystemTime::now()).ok();
    }
}

/// Waits until the receiver acknowledged every change, or the drain deadline.
fn drain(
    mut daemon: Daemon,
    changes: &[Change],
    receiver: &ChaosReceiver,
    run: &mut Run,
) -> Daemon {
    let expected: Vec<Acked> = changes.iter().map(as_acked).collect();
    let began = Instant::now();
    while began.elapsed() < DRAIN_DEADLINE {
        if receiver.has_all(expected.iter()) {
            run.drained = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        run.peak_kib = run.peak_kib.max(daemon.high_water());
        if daemon.exited() {
            run.unexpected_exits
                .push(format!("incarnation {} during the drain", run.incarnations));
            return daemon;
        }
    }
    run.drain = began.elapsed();
    println!(
        "  drain: {} after {:.1}s",
        if run.drained {
            "everything acknowledged"
        } else {
            "DEADLINE PASSED"
        },
        run.drain.as_secs_f64()
    );
    daemon
}

fn as_acked(change: &Change) -> Acked {
    (
        change.instance.clone(),
        change.id.clone(),
        change.updated.clone(),
    )
}

struct Idle {
    cpu_seconds: f64,
    wall_seconds: f64,
    provider_requests: u64,
    exit: String,
}

/// A fresh daemon on the same state, chaos off, nothing changing: CPU over a window when no
/// poll is due.
fn idle_phase(binary: &Path, dir: &Path, provider: &ChaosProvider, run: &mut Run) -> Idle {
    let mut daemon = Daemon::start(binary, dir, run);
    std::thread::sleep(IDLE_FROM);
    let requests_before = provider.counts().requests;
    let cpu_before = cpu_seconds(daemon.pid).unwrap_or(f64::NAN);
    let window = Instant::now();
    std::thread::sleep(IDLE_UNTIL - IDLE_FROM);
    let cpu_after = cpu_seconds(daemon.pid).unwrap_or(f64::NAN);
    let wall_seconds = window.elapsed().as_secs_f64();
    let provider_requests = provider.counts().requests - requests_before;
    run.peak_kib = run.peak_kib.max(daemon.high_water());
    let exit = daemon.terminate(run);
    Idle {
        cpu_seconds: cpu_after - cpu_before,
        wall_seconds,
        provider_requests,
        exit,
    }
}

// -------------------------------------------------------------------------------------------
// The daemon
// -------------------------------------------------------------------------------------------

struct Daemon {
    child: Child,
    pid: libc::pid_t,
    incarnation: u32,
    high_water_kib: u64,
}

impl Daemon {
    /// `ocpoll run --foreground`, logging JSON to `daemon-<incarnation>.log`.
    fn start(binary: &Path, dir: &Path, run: &mut Run) -> Daemon {
        run.incarnations += 1;
        let log = dir.join(format!("daemon-{}.log", run.incarnations));
        let mut command = Command::new(binary);
        isolate(&mut command, dir);
        let child = command
            .args(["--log-format", "json", "run", "--foreground"])
            .args(["--config", "config.toml", "--instances", "instances.d"])
            .args(["--state", "state.db"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("create the daemon log"))
            .spawn()
            .expect("start ocpoll run");
        Daemon {
            pid: child.id() as libc::pid_t,
            child,
            incarnation: run.incarnations,
            high_water_kib: 0,
        }
    }

    /// This incarnation's VmHWM, remembered so a last reading survives its exit.
    fn high_water(&mut self) -> u64 {
        if let Some((high_water, _)) = memory_kib(self.pid) {
            self.high_water_kib = self.high_water_kib.max(high_water);
        }
        self.high_water_kib
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill only sends a signal to our own child, not yet reaped.
        unsafe { libc::kill(self.pid, signal) };
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Restarts the daemon if it exited by itself (noting it: it should not).
    fn keep_alive(mut self, binary: &Path, dir: &Path, run: &mut Run) -> Daemon {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                run.unexpected_exits
                    .push(format!("incarnation {}: {status}", self.incarnation));
                Daemon::start(binary, dir, run)
            }
            _ => self,
        }
    }

    fn kill(mut self, run: &mut Run) {
        run.peak_kib = run.peak_kib.max(self.high_water());
        self.signal(libc::SIGKILL);
        self.child.wait().ok();
    }

    /// SIGTERM; the exit status, or a note that it had to be killed after the grace period.
    fn terminate(mut self, run: &mut Run) -> String {
        run.peak_kib = run.peak_kib.max(self.high_water());
        self.signal(libc::SIGTERM);
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return describe(status, began.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal(libc::SIGKILL);
        self.child.wait().ok();
        "did not exit within 30 s of SIGTERM (killed)".to_owned()
    }
}

fn describe(status: ExitStatus, after: Duration) -> String {
    format!("{status} {:.1}s after SIGTERM", after.as_secs_f64())
}

/// What the daemons logged: polls, failed polls, events they produced, errors.
#[derive(Default)]
struct LogCounts {
    polls: u64,
    baselines: u64,
    failed_polls: u64,
    events: u64,
    notifications: u64,
    errors: u64,
}

impl LogCounts {
    fn read(dir: &Path) -> LogCounts {
        let mut counts = LogCounts::default();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return counts;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("daemon-") && name.ends_with(".log")) {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for line in text.lines() {
                let value: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                let number = |field: &str| value[field].as_u64().unwrap_or(0);
                match value["message"].as_str() {
                    Some("poll") => {
                        counts.polls += 1;
                        counts.events += number("events");
                        counts.notifications += number("notifications");
                        counts.baselines += u64::from(value["baseline"].as_bool() == Some(true));
                    }
                    Some("poll failed") => counts.failed_polls += 1,
                    _ => {}
                }
                counts.errors += u64::from(value["level"].as_str() == Some("ERROR"));
            }
        }
        counts
    }
}

// -------------------------------------------------------------------------------------------
// Figures
// -------------------------------------------------------------------------------------------

struct Figures {
    rows: Vec<(&'static str, String)>,
    lost: Vec<Acked>,
    json: serde_json::Value,
}

impl Figures {
    fn compute(
        changes: &[Change],
        tally: &Tally,
        counts: &ProviderCounts,
        run: &Run,
        idle: &Idle,
        logs: &LogCounts,
        total: Duration,
    ) -> Figures {
        let made: HashSet<Acked> = changes.iter().map(as_acked).collect();
        let mut lost: Vec<Acked> = made
            .iter()
            .filter(|change| !tally.acked.contains_key(*change))
            .cloned()
            .collect();
        lost.sort();
        // Acknowledged changes the provider never made would be invented events.
        let unknown = tally.acked.keys().filter(|a| !made.contains(*a)).count();
        let acked = made.len() - lost.len();
        let idle_cpu = idle.cpu_seconds / idle.wall_seconds;
        let mib = run.peak_kib as f64 / 1024.0;
        let rows = vec![
            ("changes made on the provider", made.len().to_string()),
            ("changes acknowledged (distinct)", acked.to_string()),
            ("LOST", lost.len().to_string()),
            ("acknowledged but never made", unknown.to_string()),
            (
                "duplicates: deliveries of an acked eventId",
                tally.repeated_deliveries.to_string(),
            ),
            (
                "duplicates: new eventIds with an acked change",
                format!(
                    "{} ({} events)",
                    tally.repeated_change_ids.len(),
                    tally.repeated_change_events
                ),
            ),
            (
                "notifications / events acknowledged",
                format!("{} / {}", tally.notifications, tally.events),
            ),
            (
                "receiver: requests, 5xx on purpose, stalled, rejected",
                format!(
                    "{}, {}, {}, {}",
                    tally.requests,
                    tally.failed_on_purpose,
                    tally.stalled_on_purpose,
                    tally.rejected
                ),
            ),
            (
                "provider: requests, 5xx, 429, pages served",
                format!(
                    "{}, {}, {}, {}",
                    counts.requests,
                    counts.server_errors,
                    counts.too_many_requests,
                    counts.pages_served
                ),
            ),
            (
                "daemon: polls ok (baselines), failed, events, errors",
                format!(
                    "{} ({}), {}, {}, {}",
                    logs.polls, logs.baselines, logs.failed_polls, logs.events, logs.errors
                ),
            ),
            (
                "SIGHUPs (edits), SIGKILLs, incarnations",
                format!(
                    "{} ({}), {}, {}",
                    run.sighups, run.edits, run.kills, run.incarnations
                ),
            ),
            (
                "unexpected exits",
                if run.unexpected_exits.is_empty() {
                    "0".to_owned()
                } else {
                    run.unexpected_exits.join("; ")
                },
            ),
            (
                "drain after changes stopped",
                format!(
                    "{:.1}s ({})",
                    run.drain.as_secs_f64(),
                    if run.drained {
                        "all acknowledged"
                    } else {
                        "deadline passed"
                    }
                ),
            ),
            ("last SIGTERM", run.last_exit.clone().unwrap_or_default()),
            ("peak RSS (max VmHWM)", format!("{mib:.1} MiB")),
            (
                "CPU while idle",
                format!(
                    "{:.2}% ({:.3} CPU s over {:.1} s, {} provider requests in it)",
                    idle_cpu * 100.0,
                    idle.cpu_seconds,
                    idle.wall_seconds,
                    idle.provider_requests
                ),
            ),
            ("idle daemon's SIGTERM", idle.exit.clone()),
            ("whole run", format!("{:.0}s", total.as_secs_f64())),
        ];
        let json = json!({
            "changes_made": made.len(),
            "changes_acknowledged": acked,
            "lost": lost.len(),
            "lost_first": lost.iter().take(20).collect::<Vec<_>>(),
            "acknowledged_never_made": unknown,
            "duplicate_deliveries_of_acked_event_id": tally.repeated_deliveries,
            "duplicate_event_ids_with_acked_change": tally.repeated_change_ids.len(),
            "duplicate_events_with_acked_change": tally.repeated_change_events,
            "notifications_acknowledged": tally.notifications,
            "events_acknowledged": tally.events,
            "receiver_requests": tally.requests,
            "receiver_failed_on_purpose": tally.failed_on_purpose,
            "receiver_stalled_on_purpose": tally.stalled_on_purpose,
            "receiver_rejected": tally.rejected,
            "provider_requests": counts.requests,
            "provider_5xx": counts.server_errors,
            "provider_429": counts.too_many_requests,
            "provider_pages_served": counts.pages_served,
            "daemon_polls_ok": logs.polls,
            "daemon_baselines": logs.baselines,
            "daemon_polls_failed": logs.failed_polls,
            "daemon_events": logs.events,
            "daemon_notifications": logs.notifications,
            "daemon_error_lines": logs.errors,
            "sighups": run.sighups,
            "edits": run.edits,
            "sigkills": run.kills,
            "incarnations": run.incarnations,
            "unexpected_exits": run.unexpected_exits,
            "drain_seconds": run.drain.as_secs_f64(),
            "drained": run.drained,
            "last_sigterm": run.last_exit,
            "peak_rss_mib": mib,
            "idle_cpu_fraction": idle_cpu,
            "idle_cpu_seconds": idle.cpu_seconds,
            "idle_window_seconds": idle.wall_seconds,
            "idle_window_provider_requests": idle.provider_requests,
            "whole_run_seconds": total.as_secs_f64(),
        });
        Figures { rows, lost, json }
    }

    fn print(&self) {
        println!("soak figures");
        for (name, value) in &self.rows {
            println!("  {name:<54} {value}");
        }
        for change in self.lost.iter().take(10) {
            println!("  lost: {change:?}");
        }
    }

    fn to_json(&self, soak: Duration) -> serde_json::Value {
        let mut json = self.json.clone();
        json["benchmark"] = json!("soak");
        json["soak_seconds"] = json!(soak.as_secs());
        json["instances"] = json!(INSTANCES);
        json
    }
}
