//! `cargo bench --bench fleet`: a fleet (SPEC 13, issue 18) of release binaries sharing one
//! PostgreSQL state (`ocpoll::testing::postgres`: a real server on loopback, started by this
//! process and gone with it; the bench is skipped, saying so, where PostgreSQL is not
//! installed, and fails instead with `OCPOLL_REQUIRE_POSTGRES=1`). Three scenarios:
//!
//! - **tick**: instances ticked per second with 1, 2 and 3 nodes. 2,000 instances, one
//!   resource each on the shared loopback mock provider, one changed record each after a
//!   baseline. For each node count: a fresh database, `ocpoll state migrate`, a baseline tick
//!   (one process), the resources' next-due times cleared in the database (as if the interval
//!   had passed), one record changed, then N `ocpoll tick` processes started at once.
//!   They split the polls by leases: a poll claimed by one is `Held` (being polled) or `NotDue`
//!   (polled already) for the others. Figures: wall time from the start to the last exit,
//!   instances/s, CPU seconds per node and in total, CPU per instance, and the database
//!   server's CPU over the same time.
//! - **events**: events per second end to end with 1, 2 and 3 nodes: 200 instances x 100
//!   changed records (20,000 events), default batches (up to 1,000 events a notification),
//!   the verifying receiver (`tests/support/mock_receiver.rs`), N concurrent ticks as above.
//!   Figures: events/s, CPU per event per node and in total.
//! - **takeover**: two daemons (`ocpoll run --foreground`), one resource polled every second
//!   (`event.poller.refresh_seconds: 1`) whose provider answers after 600 ms, so a poll holds
//!   its lease most of each second. The bench reads `poll_lease` until a node holds the lease,
//!   SIGKILLs that node, and measures the time until the other node's next successful poll of
//!   the resource (from its JSON log: the poll's start and its commit), with `[state]
//!   lease_seconds` at its default (30) and at 5. The killed node is restarted before the next
//!   kill; a record changes at each kill and must reach the receiver.
//!
//! Correctness is checked inside the bench, so a broken fleet cannot produce a good figure:
//! every changed record must reach the receiver (deduplicated by eventId), with valid
//! signatures, no change under two eventIds, each instance polled once per tick round (the
//! provider's requests are counted per instance), and every tick must exit 0; after a kill, the
//! other node must not poll before the lease it was told expires, and must log the takeover.
//!
//! When a round's changes did not all arrive, the bench prints the outbox rows left in the
//! database with their instance's delivery lease (`UNDELIVERED ...`) before it fails.
//!
//! The test server runs with `fsync` and `synchronous_commit` off (src/testing/postgres.rs):
//! the database's figures are its CPU and round trips, not a disk's syncs.
//!
//! Knobs: `BENCH_FLEET_ONLY=tick,events,takeover`; `BENCH_FLEET_NODES=1,2,3`;
//! `BENCH_FLEET_TICK_INSTANCES=2000`; `BENCH_FLEET_EVENTS_INSTANCES=200`,
//! `BENCH_FLEET_EVENTS_RECORDS=100`; `BENCH_FLEET_LEASES=30,5` (`default` or seconds),
//! `BENCH_FLEET_KILLS=2` (kills per lease setting); `BENCH_FLEET_KEEP=1` keeps the folders
//! (logs, instance files) and databases; `BENCH_FLEET_LOG_STATEMENTS=1` counts the statements
//! of the measured ticks in the server's log (logging them costs server CPU: not for
//! figures); `BENCH_FLEET_WRAPPER="strace -c -f -o /tmp/n{node}"` wraps each measured tick
//! (`{node}`: its number); `BENCH_BINARY` as in the other benches. Figures go to stdout and
//! `target/bench/fleet.json`.

#[path = "../tests/support/mock_provider.rs"]
mod mock_provider;
#[path = "../tests/support/mock_receiver.rs"]
mod mock_receiver;
#[path = "support/process.rs"]
mod process;

use chrono::{DateTime, TimeDelta, Utc};
use mock_provider::{Failure, MockProvider, Paging};
use mock_receiver::{MockReceiver, Received};
use ocpoll::testing::postgres::{TestServer, database_name};
use process::{
    cpu_seconds, isolate, load_average, memory_kib, own_cpu_seconds, seconds, whole_millis,
    write_report,
};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const DATE_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'";
const SIGNATURE_KEY: &str = "bench-fleet-signature-key";
/// Worker threads serving the mocks (they mostly wait on sockets).
const MOCK_WORKERS: usize = 4;
/// How long the takeover scenario's provider takes to answer: a poll holds its lease that long.
const SLOW_POLL: Duration = Duration::from_millis(600);

fn main() {
    let binary = process::bench_binary(env!("CARGO_BIN_EXE_ocpoll"));
    let only = std::env::var("BENCH_FLEET_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|n| n.trim() == name);
    let Some(pg) = ocpoll::testing::postgres::server() else {
        println!("fleet: skipped, PostgreSQL is not installed (see CONTRIBUTING.md)");
        return;
    };
    println!(
        "fleet: PostgreSQL test server on 127.0.0.1:{} (started in {:.1?})",
        pg.port(),
        pg.startup_time()
    );
    let db_server = DbServer::find(pg);
    let nodes = list_env("BENCH_FLEET_NODES", "1,2,3");
    let nodes: Vec<usize> = nodes
        .iter()
        .map(|n| n.parse().expect("BENCH_FLEET_NODES: numbers"))
        .collect();

    let tick = wanted("tick").then(|| {
        let instances = number_env("BENCH_FLEET_TICK_INSTANCES", 2_000);
        let shape = Shape {
            name: "tick",
            instances,
            records: 1,
        };
        nodes
            .iter()
            .map(|&n| round(&binary, pg, &db_server, &shape, n))
            .collect::<Vec<_>>()
    });
    let events = wanted("events").then(|| {
        let shape = Shape {
            name: "events",
            instances: number_env("BENCH_FLEET_EVENTS_INSTANCES", 200),
            records: number_env("BENCH_FLEET_EVENTS_RECORDS", 100),
        };
        nodes
            .iter()
            .map(|&n| round(&binary, pg, &db_server, &shape, n))
            .collect::<Vec<_>>()
    });
    let takeover = wanted("takeover").then(|| {
        let kills = number_env("BENCH_FLEET_KILLS", 2);
        list_env("BENCH_FLEET_LEASES", "default,5")
            .iter()
            .map(|lease| {
                let lease = match lease.as_str() {
                    "default" | "30" | "" => None,
                    seconds => Some(seconds.parse::<u64>().expect("BENCH_FLEET_LEASES")),
                };
                takeover(&binary, pg, lease, kills)
            })
            .collect::<Vec<_>>()
    });

    if let Some(rounds) = &tick {
        summary("tick: instances ticked per second", rounds, "instance");
    }
    if let Some(rounds) = &events {
        summary("events: end to end", rounds, "event");
    }
    if let Some(results) = &takeover {
        println!("takeover after SIGKILL of the node holding the poll lease:");
        for result in results {
            println!("  {}", result.line());
        }
    }
    let report = json!({
        "benchmark": "fleet",
        "only": only,
        "postgres": "ocpoll::testing::postgres (fsync, synchronous_commit and full_page_writes off)",
        "tick": tick.as_ref().map(|r| r.iter().map(Round::to_json).collect::<Vec<_>>()),
        "events": events.as_ref().map(|r| r.iter().map(Round::to_json).collect::<Vec<_>>()),
        "takeover": takeover.as_ref().map(|r| r.iter().map(Takeover::to_json).collect::<Vec<_>>()),
    });
    write_report(Path::new(env!("CARGO_BIN_EXE_ocpoll")), "fleet", &report);
}

fn list_env(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .ok()
        .filter(|text| !text.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
        .split(',')
        .map(|item| item.trim().to_owned())
        .collect()
}

fn number_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(default)
}

fn mock_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(MOCK_WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bench_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("ocpoll-bench-fleet-{name}-"))
        .tempdir()
        .expect("temporary folder")
}

/// `BENCH_FLEET_KEEP=1`: the folder (logs, instance files) and the database stay.
fn keep() -> bool {
    std::env::var_os("BENCH_FLEET_KEEP").is_some()
}

fn finish(dir: tempfile::TempDir, pg: &TestServer, db: &str) {
    if keep() {
        println!("  kept: {} and database {db}", dir.keep().display());
    } else {
        pg.psql("postgres", &format!("DROP DATABASE \"{db}\" WITH (FORCE)"));
    }
}

// -------------------------------------------------------------------------------------------
// The database server's CPU
// -------------------------------------------------------------------------------------------

/// The test server's postmaster, found by its data folder on its command line (other test
/// processes on the machine may run their own servers).
struct DbServer {
    postmaster: Option<libc::pid_t>,
}

impl DbServer {
    fn find(pg: &TestServer) -> DbServer {
        let folder = pg.log_path().parent().map(Path::to_path_buf);
        let postmaster = folder.and_then(|folder| {
            let folder = folder.to_string_lossy().into_owned();
            let mut found = None;
            for entry in std::fs::read_dir("/proc").ok()?.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
                    continue;
                };
                let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                    continue;
                };
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                if cmdline.contains("postgres")
                    && cmdline.contains(&folder)
                    && !cmdline.contains("pg_ctl")
                    && parent_of(pid).is_some_and(|p| !is_postgres(p, &folder))
                {
                    found = Some(pid);
                }
            }
            found
        });
        if postmaster.is_none() {
            println!("fleet: the database server's process was not found; its CPU is not reported");
        }
        DbServer { postmaster }
    }

    /// CPU seconds the server has used: the postmaster, its reaped children (backends that
    /// ended) and its live children (backends, background workers).
    fn cpu_seconds(&self) -> Option<f64> {
        let postmaster = self.postmaster?;
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let stat = std::fs::read_to_string(format!("/proc/{postmaster}/stat")).ok()?;
        let fields: Vec<u64> = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
        let mut total = (fields[11] + fields[12] + fields[13] + fields[14]) as f64 / ticks;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
                continue;
            };
            if parent_of(pid) == Some(postmaster) {
                total += cpu_seconds(pid).unwrap_or(0.0);
            }
        }
        Some(total)
    }
}

fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn is_postgres(pid: libc::pid_t, folder: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("postgres") && c.contains(folder)
        })
        .unwrap_or(false)
}

// -------------------------------------------------------------------------------------------
// Tick and events: N concurrent `ocpoll tick`
// -------------------------------------------------------------------------------------------

struct Shape {
    name: &'static str,
    instances: usize,
    /// Changed records per instance after the baseline.
    records: usize,
}

impl Shape {
    fn expected_events(&self) -> u64 {
        (self.instances * self.records) as u64
    }
}

fn instance_file(name: &str, resource: &url::Url, callback: &str, refresh: &str) -> String {
    // A filter per instance (ignored by the mock), so each instance's requests are told apart.
    let url = format!("{resource}?where=updated_at>='${{gmtDate:{DATE_FORMAT}}}'&owner={name}");
    let mut configuration = json!({
        "event.notification.enabled": true,
        "event.notification.callback.url": callback,
        "event.notification.signature.key": SIGNATURE_KEY,
        "event.poller.configuration": {
            "contacts": {
                "url": url,
                "idField": "id",
                "datesConfiguration": {
                    "updatedDateField": "updated_at",
                    "updatedDateFormat": DATE_FORMAT,
                    "updatedDateTimezone": "GMT",
                }
            }
        }
    });
    let (key, value) = match refresh {
        "1s" => ("event.poller.refresh_seconds", json!(1)),
        _ => ("event.poller.refresh_interval", json!(15)),
    };
    configuration[key] = value;
    serde_json::to_string_pretty(&json!({
        "element": {"key": "benchcrm"},
        "name": name,
        "tags": ["bench"],
        "configuration": configuration,
    }))
    .unwrap()
}

fn contact(index: usize) -> serde_json::Value {
    json!({
        "first_name": "Ada",
        "last_name": format!("Lovelace-{index}"),
        "email": format!("ada.{index}@example.com"),
        "company": "Analytical Engines Ltd",
    })
}

/// `ocpoll ARGS` in `dir` with a clean environment and the layout's three paths.
fn ocpoll(binary: &Path, dir: &Path, url: &str) -> Command {
    let mut command = Command::new(binary);
    isolate(&mut command, dir);
    command
        .env("OCPOLL_CONFIG", "config.toml")
        .env("OCPOLL_INSTANCES", "instances.d")
        .env("OCPOLL_STATE", url)
        .stdin(Stdio::null());
    command
}

fn run_ok(binary: &Path, dir: &Path, url: &str, args: &[&str], what: &str) -> Duration {
    let started = Instant::now();
    let out = ocpoll(binary, dir, url)
        .args(args)
        .output()
        .expect("run ocpoll");
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// One node of a round: its process figures and what its log says it did.
struct Node {
    wall: Duration,
    user: f64,
    system: f64,
    peak_rss_kib: u64,
    /// `poll` lines in its log (polls it ran and committed).
    polls: usize,
    /// Its summary lines: "N polled, M left to other nodes, ..." and "Delivery: ...".
    polled_line: String,
    delivery_line: String,
}

impl Node {
    fn cpu(&self) -> f64 {
        self.user + self.system
    }
}

struct Round {
    shape: &'static str,
    nodes: usize,
    instances: usize,
    expected_events: u64,
    wall: Duration,
    baseline: Duration,
    load_before: f64,
    load_after: f64,
    per_node: Vec<Node>,
    db_cpu: Option<f64>,
    bench_cpu: f64,
    provider_requests: u64,
    /// Instances the provider saw more than one request for in the measured round.
    polled_twice: usize,
    /// Database transactions during the round, and statements (`BENCH_FLEET_LOG_STATEMENTS`).
    transactions: u64,
    statements: Option<usize>,
    tally: Tally,
}

impl Round {
    fn total_cpu(&self) -> f64 {
        self.per_node.iter().map(Node::cpu).sum()
    }

    fn per_second(&self, unit: &str) -> f64 {
        let count = if unit == "event" {
            self.tally.events as f64
        } else {
            self.instances as f64
        };
        count / self.wall.as_secs_f64()
    }

    fn units(&self, unit: &str) -> f64 {
        if unit == "event" {
            self.expected_events as f64
        } else {
            self.instances as f64
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let unit = if self.shape == "events" {
            "event"
        } else {
            "instance"
        };
        json!({
            "scenario": self.shape,
            "nodes": self.nodes,
            "instances": self.instances,
            "expected_events": self.expected_events,
            "seconds": self.wall.as_secs_f64(),
            "baseline_seconds": self.baseline.as_secs_f64(),
            "per_second": self.per_second(unit),
            "unit": unit,
            "cpu_seconds_total": self.total_cpu(),
            "cpu_microseconds_per_unit": self.total_cpu() / self.units(unit) * 1e6,
            "database_cpu_seconds": self.db_cpu,
            "bench_cpu_seconds": self.bench_cpu,
            "load_average_before": self.load_before,
            "load_average_after": self.load_after,
            "provider_requests": self.provider_requests,
            "instances_polled_twice": self.polled_twice,
            "database_transactions": self.transactions,
            "database_statements": self.statements,
            "nodes_detail": self.per_node.iter().map(|node| json!({
                "seconds": node.wall.as_secs_f64(),
                "cpu_user_seconds": node.user,
                "cpu_system_seconds": node.system,
                "cpu_microseconds_per_unit_of_its_polls": if node.polls > 0 {
                    Some(node.cpu() / (node.polls as f64 * self.units(unit) / self.instances as f64) * 1e6)
                } else { None },
                "peak_rss_mib": node.peak_rss_kib as f64 / 1024.0,
                "polls": node.polls,
                "polled": node.polled_line,
                "delivery": node.delivery_line,
            })).collect::<Vec<_>>(),
            "receiver": self.tally.to_json(),
        })
    }
}

fn round(binary: &Path, pg: &TestServer, db: &DbServer, shape: &Shape, nodes: usize) -> Round {
    let runtime = mock_runtime();
    let dir = bench_dir(&format!("{}-{nodes}", shape.name));
    let url = pg.fresh_database();
    let receiver = runtime.block_on(MockReceiver::start(&[SIGNATURE_KEY]));
    let mock = runtime.block_on(
        MockProvider::builder()
            .resource_path("/hubs/crm/contacts")
            .date_format(DATE_FORMAT, "UTC")
            .paging(Paging::PageToken { page_size: 200 })
            .start(),
    );
    let now = whole_millis(Utc::now());
    for index in 0..5 {
        let updated = now - TimeDelta::minutes(10) + TimeDelta::seconds(index);
        mock.upsert(&format!("old-{index}"), updated, contact(index as usize));
    }
    let instances = dir.path().join("instances.d");
    std::fs::create_dir(&instances).unwrap();
    let names: Vec<String> = (0..shape.instances)
        .map(|i| format!("{}-{i:05}", shape.name))
        .collect();
    for name in &names {
        let text = instance_file(name, &mock.resource_url(), &receiver.url(), "15min");
        std::fs::write(instances.join(format!("{name}.json")), text).unwrap();
    }
    std::fs::write(
        dir.path().join("config.toml"),
        "[poll]\njitter_seconds = 0\n",
    )
    .unwrap();
    run_ok(
        binary,
        dir.path(),
        &url,
        &["state", "migrate"],
        "state migrate",
    );
    let baseline = run_ok(
        binary,
        dir.path(),
        &url,
        &["tick", "--all"],
        "the baseline tick",
    );
    // As if the interval had passed: every resource due again. The measured ticks run without
    // `--all`: in a fleet `tick --all` polls even what another node has just polled.
    pg.psql(
        database_name(&url),
        "UPDATE resource_state SET next_due_at = NULL",
    );
    for index in 0..shape.records {
        let updated = now - TimeDelta::minutes(5) + TimeDelta::milliseconds(index as i64);
        mock.upsert(&format!("c{index:03}"), updated, contact(index));
    }
    let requests_before = mock.request_count();
    let seen_before = mock.requests().len();
    let received_before = receiver.request_count();

    let log_statements = std::env::var_os("BENCH_FLEET_LOG_STATEMENTS").is_some();
    if log_statements {
        pg.psql(
            database_name(&url),
            &format!(
                "ALTER DATABASE \"{}\" SET log_statement = 'all'",
                database_name(&url)
            ),
        );
    }
    let log_before = std::fs::metadata(pg.log_path()).map_or(0, |m| m.len());
    let xacts_before = transactions(pg, &url);
    let load_before = load_average();
    let db_before = db.cpu_seconds();
    let bench_before = own_cpu_seconds();
    let started = Instant::now();
    let mut children: Vec<Child> = (0..nodes)
        .map(|n| {
            wrapped(binary, dir.path(), &url, n)
                .args(["--log-format", "json", "-v", "tick"])
                .stdout(std::fs::File::create(dir.path().join(format!("node{n}.stdout"))).unwrap())
                .stderr(std::fs::File::create(dir.path().join(format!("node{n}.log"))).unwrap())
                .spawn()
                .expect("run ocpoll tick")
        })
        .collect();
    let pids: Vec<libc::pid_t> = children.iter().map(|c| c.id() as libc::pid_t).collect();
    let done = AtomicBool::new(false);
    let (waited, peaks) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peaks = vec![0u64; pids.len()];
            while !done.load(Ordering::SeqCst) {
                for (peak, pid) in peaks.iter_mut().zip(&pids) {
                    if let Some((high_water, _)) = memory_kib(*pid) {
                        *peak = (*peak).max(high_water);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peaks
        });
        let waiters: Vec<_> = pids
            .iter()
            .map(|&pid| {
                scope.spawn(move || {
                    let mut status = 0;
                    // SAFETY: wait4 writes only into the two locals; the child is ours and not
                    // yet reaped (std's Child is never waited on).
                    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
                    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
                    assert_eq!(got, pid, "wait4");
                    (started.elapsed(), status, usage)
                })
            })
            .collect();
        let waited: Vec<_> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        done.store(true, Ordering::SeqCst);
        (waited, sampler.join().unwrap())
    });
    let wall = started.elapsed();
    let bench_cpu = own_cpu_seconds() - bench_before;
    children.clear(); // reaped above
    // Backends end with their connections; give them a moment so their CPU is counted.
    std::thread::sleep(Duration::from_millis(300));
    let db_cpu = db
        .cpu_seconds()
        .zip(db_before)
        .map(|(after, before)| after - before);
    let load_after = load_average();
    // Committed and rolled-back transactions in the database (the statistics of a backend are
    // flushed when it ends; the psql reading them is one more).
    let transactions = transactions(pg, &url).saturating_sub(xacts_before + 1);
    let statements = log_statements.then(|| {
        let log = std::fs::read(pg.log_path()).unwrap_or_default();
        let new = &log[(log_before as usize).min(log.len())..];
        let text = String::from_utf8_lossy(new);
        let statements: Vec<&str> = text
            .lines()
            .filter_map(|line| {
                line.split_once("statement: ")
                    .or_else(|| line.split_once("execute "))
                    .map(|(_, sql)| sql)
            })
            .collect();
        let mut kinds: HashMap<String, usize> = HashMap::new();
        for sql in &statements {
            // `execute s12: SELECT ...`: the prepared statement's name differs per prepare.
            let sql = match sql.split_once(": ") {
                Some((name, rest)) if name.starts_with('s') || name.starts_with("<unnamed>") => {
                    rest
                }
                _ => sql,
            };
            let sql: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            *kinds.entry(sql.chars().take(100).collect()).or_default() += 1;
        }
        let mut kinds: Vec<_> = kinds.into_iter().collect();
        kinds.sort_by_key(|kind| std::cmp::Reverse(kind.1));
        for (sql, count) in kinds.iter().take(25) {
            println!("  statement   {count:6}  {sql}");
        }
        statements.len()
    });

    let mut per_node = Vec::new();
    for (n, (node_wall, status, usage)) in waited.into_iter().enumerate() {
        let log =
            std::fs::read_to_string(dir.path().join(format!("node{n}.log"))).unwrap_or_default();
        let stdout =
            std::fs::read_to_string(dir.path().join(format!("node{n}.stdout"))).unwrap_or_default();
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{} round, {nodes} nodes: node {n} failed (wait status {status}):\n{}\n{}",
            shape.name,
            tail(&stdout, 10),
            tail(&log, 20)
        );
        let polls = log
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["message"] == "poll")
            .count();
        let line_with = |needle: &str| {
            stdout
                .lines()
                .find(|line| line.contains(needle))
                .unwrap_or("")
                .to_owned()
        };
        per_node.push(Node {
            wall: node_wall,
            user: seconds(usage.ru_utime),
            system: seconds(usage.ru_stime),
            peak_rss_kib: peaks[n],
            polls,
            polled_line: line_with(" polled, "),
            delivery_line: line_with("Delivery:"),
        });
    }

    // What the provider and the receiver saw.
    let provider_requests = mock.request_count() - requests_before;
    let mut per_instance: HashMap<String, u64> = HashMap::new();
    for request in mock.requests().iter().skip(seen_before) {
        if let Some(owner) = request.param("owner") {
            *per_instance.entry(owner).or_default() += 1;
        }
    }
    let polled_twice = per_instance.values().filter(|&&count| count > 1).count();
    let unpolled = names
        .iter()
        .filter(|name| !per_instance.contains_key(*name))
        .count();
    let tally = Tally::of(&receiver.received(), received_before);
    if tally.distinct_records < shape.expected_events() {
        undelivered(pg, &url, log_statements.then_some(log_before));
    }
    let result = Round {
        shape: shape.name,
        nodes,
        instances: shape.instances,
        expected_events: shape.expected_events(),
        wall,
        baseline,
        load_before,
        load_after,
        per_node,
        db_cpu,
        bench_cpu,
        provider_requests,
        polled_twice,
        transactions,
        statements,
        tally,
    };
    result.print();
    finish(dir, pg, database_name(&url));
    // Checked after printing, so a failure shows the figures that led to it.
    assert_eq!(unpolled, 0, "{} instances were never polled", unpolled);
    // Each poll claimed once: a second poll of an instance means a lease did not hold.
    assert_eq!(
        result.polled_twice, 0,
        "instances polled by more than one node"
    );
    result.tally.check(shape.expected_events());
    result
}

/// What the database says of the notifications no node delivered: each one, its instance's
/// delivery lease, and (with `BENCH_FLEET_LOG_STATEMENTS`) the server's log lines naming that
/// instance since `log_from`, which show which backend claimed its lease when.
fn undelivered(pg: &TestServer, url: &str, log_from: Option<u64>) {
    let db = database_name(url);
    let rows = pg.psql(
        db,
        "SELECT o.instance, o.id, o.created_at, o.attempts, o.next_attempt_at, o.dead, \
         l.node, l.expires_at FROM outbox o LEFT JOIN delivery_lease l USING (instance) \
         ORDER BY o.seq",
    );
    println!(
        "  UNDELIVERED (instance | id | created | attempts | next attempt | dead | lease node | lease until):"
    );
    for row in rows.lines() {
        println!("    {row}");
    }
    let Some(from) = log_from else { return };
    let log = std::fs::read(pg.log_path()).unwrap_or_default();
    let text = String::from_utf8_lossy(&log[(from as usize).min(log.len())..]).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    for row in rows.lines() {
        let instance = row.split('|').next().unwrap_or_default();
        println!("  server log naming {instance} (with the statement before each):");
        for (index, line) in lines.iter().enumerate() {
            if line.contains(&format!("'{instance}'")) {
                if index > 0 {
                    println!("    {}", lines[index - 1]);
                }
                println!("    {line}");
            }
        }
    }
}

/// Transactions committed and rolled back in the round's database so far.
fn transactions(pg: &TestServer, url: &str) -> u64 {
    let db = database_name(url);
    pg.psql(
        db,
        &format!("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{db}'"),
    )
    .trim()
    .parse()
    .unwrap_or(0)
}

/// A measured node: the binary, or `BENCH_FLEET_WRAPPER` around it (e.g. `strace -c -f -o
/// /tmp/node{node}.strace` or `perf record -g -o /tmp/node{node}.perf`; `{node}` is the node's
/// number); its CPU figures are then the wrapper's.
fn wrapped(binary: &Path, dir: &Path, url: &str, node: usize) -> Command {
    let wrapper = std::env::var("BENCH_FLEET_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let Some(program) = words.next() else {
        return ocpoll(binary, dir, url);
    };
    let mut command = ocpoll(Path::new(program), dir, url);
    command
        .args(words.map(|word| word.replace("{node}", &node.to_string())))
        .arg(binary);
    command
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Round {
    fn print(&self) {
        let unit = if self.shape == "events" {
            "event"
        } else {
            "instance"
        };
        println!(
            "fleet {} with {} node{}: {} instances, {} changed records",
            self.shape,
            self.nodes,
            if self.nodes == 1 { "" } else { "s" },
            self.instances,
            self.expected_events
        );
        println!(
            "  baseline    {:.2?} (one tick; not measured)",
            self.baseline
        );
        println!(
            "  measured    {:.3?} wall to the last exit, {:.0} {unit}s/s; CPU {:.2}s in all \
             ({:.1} µs per {unit}); database server {}; mocks {:.2}s; load average {:.2} \
             before, {:.2} after",
            self.wall,
            self.per_second(unit),
            self.total_cpu(),
            self.total_cpu() / self.units(unit) * 1e6,
            self.db_cpu
                .map_or("?".to_owned(), |cpu| format!("{cpu:.2}s CPU")),
            self.bench_cpu,
            self.load_before,
            self.load_after
        );
        for (n, node) in self.per_node.iter().enumerate() {
            println!(
                "  node {n}      {:.3?}, CPU {:.2}s ({:.2} user, {:.2} system), {} polls, \
                 {:.1} MiB peak; {} / {}",
                node.wall,
                node.cpu(),
                node.user,
                node.system,
                node.polls,
                node.peak_rss_kib as f64 / 1024.0,
                node.polled_line,
                node.delivery_line
            );
        }
        println!(
            "  provider    {} requests, {} instances polled more than once",
            self.provider_requests, self.polled_twice
        );
        println!(
            "  database    {} transactions ({:.1} per instance){}",
            self.transactions,
            self.transactions as f64 / self.instances as f64,
            self.statements.map_or(String::new(), |n| format!(
                ", {n} statements ({:.1} per instance)",
                n as f64 / self.instances as f64
            ))
        );
        println!("  receiver    {}", self.tally.line(self.expected_events));
    }
}

fn summary(title: &str, rounds: &[Round], unit: &str) {
    println!("{title}");
    println!(
        "  nodes | wall s | {unit}s/s | CPU s per node | CPU s total | µs CPU per {unit} | DB CPU s | load"
    );
    for round in rounds {
        let per_node: Vec<String> = round
            .per_node
            .iter()
            .map(|node| format!("{:.2}", node.cpu()))
            .collect();
        println!(
            "  {} | {:.2} | {:.0} | {} | {:.2} | {:.1} | {} | {:.2}",
            round.nodes,
            round.wall.as_secs_f64(),
            round.per_second(unit),
            per_node.join(" + "),
            round.total_cpu(),
            round.total_cpu() / round.units(unit) * 1e6,
            round.db_cpu.map_or("?".to_owned(), |c| format!("{c:.2}")),
            round.load_before
        );
    }
}

// -------------------------------------------------------------------------------------------
// What the receiver got
// -------------------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    requests: u64,
    /// Distinct eventIds.
    notifications: u64,
    /// Events inside the distinct notifications.
    events: u64,
    /// Distinct (instanceId, objectId) pairs among them.
    distinct_records: u64,
    /// Requests whose eventId had come before (at-least-once resends).
    repeated_event_ids: u64,
    /// An eventId seen with two different bodies.
    changed_bodies: u64,
    bad_signatures: u64,
}

impl Tally {
    fn of(received: &[Received], numbered_after: u64) -> Tally {
        let mut tally = Tally::default();
        let mut bodies: HashMap<String, bytes::Bytes> = HashMap::new();
        let mut records = HashSet::new();
        for request in received.iter().filter(|r| r.number > numbered_after) {
            tally.requests += 1;
            if request.elements_valid != Some(true) || request.standard_valid != Some(true) {
                tally.bad_signatures += 1;
            }
            let body = request.json();
            let message = &body["message"];
            let event_id = message["eventId"].as_str().unwrap_or_default().to_owned();
            if let Some(earlier) = bodies.get(&event_id) {
                tally.repeated_event_ids += 1;
                if *earlier != request.body {
                    tally.changed_bodies += 1;
                }
                continue;
            }
            bodies.insert(event_id, request.body.clone());
            tally.notifications += 1;
            let instance = message["instanceId"].as_str().unwrap_or_default();
            for event in message["events"].as_array().into_iter().flatten() {
                tally.events += 1;
                let object = event["objectId"].as_str().unwrap_or_default();
                records.insert(format!("{instance}/{object}"));
            }
        }
        tally.distinct_records = records.len() as u64;
        tally
    }

    fn line(&self, expected: u64) -> String {
        format!(
            "{} requests, {} notifications (distinct eventIds), {} events, {} distinct records \
             of {expected} expected; {} repeated eventIds, {} bad signatures",
            self.requests,
            self.notifications,
            self.events,
            self.distinct_records,
            self.repeated_event_ids,
            self.bad_signatures
        )
    }

    /// Every change arrived, once per eventId, signed; no change under two eventIds.
    fn check(&self, expected: u64) {
        assert_eq!(self.bad_signatures, 0, "bad signatures");
        assert_eq!(self.changed_bodies, 0, "an eventId arrived with two bodies");
        assert_eq!(
            self.distinct_records,
            expected,
            "not every changed record arrived: {}",
            self.line(expected)
        );
        assert_eq!(
            self.events,
            self.distinct_records,
            "a change arrived under two eventIds: {}",
            self.line(expected)
        );
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "requests": self.requests,
            "notifications": self.notifications,
            "events": self.events,
            "distinct_records": self.distinct_records,
            "repeated_event_ids": self.repeated_event_ids,
            "bad_signatures": self.bad_signatures,
        })
    }
}

// -------------------------------------------------------------------------------------------
// Takeover: two daemons, SIGKILL of the lease holder
// -------------------------------------------------------------------------------------------

struct Daemon {
    child: Child,
    log: PathBuf,
    node: String,
}

impl Daemon {
    fn start(binary: &Path, dir: &Path, url: &str, log: &str) -> Daemon {
        let log = dir.join(log);
        let child = ocpoll(binary, dir, url)
            .args(["--log-format", "json", "run", "--foreground"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("run ocpoll run");
        let deadline = Instant::now() + Duration::from_secs(30);
        let node = loop {
            let found = log_lines(&log)
                .into_iter()
                .find_map(|line| line["node"].as_str().map(str::to_owned));
            if let Some(node) = found {
                break node;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not say its node id:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Daemon { child, log, node }
    }

    fn stop(mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn log_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// A successful poll of the instance in `log` that started after `after`: (started, committed).
fn poll_after(
    log: &Path,
    instance: &str,
    after: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    log_lines(log).into_iter().find_map(|line| {
        if line["message"] != "poll" || line["instance"] != instance {
            return None;
        }
        let ended: DateTime<Utc> = line["timestamp"].as_str()?.parse().ok()?;
        let took = line["duration_ms"].as_u64().unwrap_or(0);
        let started = ended - TimeDelta::milliseconds(took as i64);
        (started > after).then_some((started, ended))
    })
}

struct Kill {
    /// From the SIGKILL to the survivor's next poll starting, and committing.
    to_start: Duration,
    to_commit: Duration,
    /// What `poll_lease` said when the victim was chosen: seconds of lease left.
    lease_left: f64,
    /// Whether the survivor logged a takeover.
    takeover_logged: bool,
    load: f64,
}

struct Takeover {
    lease: u64,
    default: bool,
    kills: Vec<Kill>,
    changes: usize,
    delivered: u64,
    survivor_cpu: f64,
}

impl Takeover {
    fn line(&self) -> String {
        let times: Vec<String> = self
            .kills
            .iter()
            .map(|k| {
                format!(
                    "{:.2}s (commit {:.2}s, lease left {:.2}s, load {:.2})",
                    k.to_start.as_secs_f64(),
                    k.to_commit.as_secs_f64(),
                    k.lease_left,
                    k.load
                )
            })
            .collect();
        format!(
            "lease_seconds {}{}: {}; {} changes made at the kills, {} delivered",
            self.lease,
            if self.default { " (default)" } else { "" },
            times.join(", "),
            self.changes,
            self.delivered
        )
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "lease_seconds": self.lease,
            "default": self.default,
            "slow_poll_ms": SLOW_POLL.as_millis() as u64,
            "kills": self.kills.iter().map(|k| json!({
                "seconds_to_next_poll_start": k.to_start.as_secs_f64(),
                "seconds_to_next_poll_commit": k.to_commit.as_secs_f64(),
                "lease_left_at_kill_seconds": k.lease_left,
                "takeover_logged": k.takeover_logged,
                "load_average": k.load,
            })).collect::<Vec<_>>(),
            "changes": self.changes,
            "delivered": self.delivered,
            "survivors_cpu_seconds": self.survivor_cpu,
        })
    }
}

fn takeover(binary: &Path, pg: &TestServer, lease: Option<u64>, kills: usize) -> Takeover {
    let runtime = mock_runtime();
    let lease_seconds = lease.unwrap_or(30);
    let dir = bench_dir(&format!("takeover-{lease_seconds}"));
    let url = pg.fresh_database();
    let db = database_name(&url).to_owned();
    let receiver = runtime.block_on(MockReceiver::start(&[SIGNATURE_KEY]));
    let mock = runtime.block_on(
        MockProvider::builder()
            .resource_path("/hubs/crm/contacts")
            .date_format(DATE_FORMAT, "UTC")
            .paging(Paging::PageToken { page_size: 200 })
            .start(),
    );
    // Every answer is slow, so a poll holds its lease most of each second.
    let expected_requests = 200 + kills as u64 * (lease_seconds + 20) * 2;
    for number in 1..=expected_requests {
        mock.fail_on(number, Failure::Slow(SLOW_POLL));
    }
    mock.upsert(
        "old",
        whole_millis(Utc::now()) - TimeDelta::minutes(10),
        contact(0),
    );
    let instances = dir.path().join("instances.d");
    std::fs::create_dir(&instances).unwrap();
    let instance = "takeover";
    std::fs::write(
        instances.join("takeover.json"),
        instance_file(instance, &mock.resource_url(), &receiver.url(), "1s"),
    )
    .unwrap();
    let mut config = String::from(
        "[poll]\njitter_seconds = 0\n[delivery]\nbackoff_initial_seconds = 0\nbackoff_max_seconds = 1\n",
    );
    if let Some(lease) = lease {
        config.push_str(&format!("[state]\nlease_seconds = {lease}\n"));
    }
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    run_ok(
        binary,
        dir.path(),
        &url,
        &["state", "migrate"],
        "state migrate",
    );

    let mut nodes = vec![
        Daemon::start(binary, dir.path(), &url, "node0.0.log"),
        Daemon::start(binary, dir.path(), &url, "node1.0.log"),
    ];
    let mut restarts = [0usize; 2];
    let mut results = Vec::new();
    let mut changes = Vec::new();
    let mut survivor_cpu = 0.0;
    // Settle: both nodes running, the baseline taken by one of them.
    std::thread::sleep(Duration::from_secs(3));
    for kill in 0..kills {
        // The node holding the lease, read from the database.
        let deadline = Instant::now() + Duration::from_secs(lease_seconds + 30);
        let (victim, lease_left) = loop {
            let row = pg.psql(
                &db,
                "SELECT node, expires_at FROM poll_lease WHERE node IS NOT NULL LIMIT 1",
            );
            if let Some((node, until)) = row.split_once('|')
                && let Some(victim) = nodes.iter().position(|d| d.node == node)
            {
                let until: DateTime<Utc> = until.parse().unwrap_or_else(|_| Utc::now());
                break (
                    victim,
                    (until - Utc::now()).num_milliseconds() as f64 / 1000.0,
                );
            }
            assert!(
                Instant::now() < deadline,
                "no node ever held the poll lease"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let load = load_average();
        let survivor = 1 - victim;
        let survivor_pid = nodes[survivor].child.id() as libc::pid_t;
        let cpu_before = cpu_seconds(survivor_pid).unwrap_or(0.0);
        let _ = nodes[victim].child.kill(); // SIGKILL
        let killed_at = Utc::now();
        let killed = Instant::now();
        let _ = nodes[victim].child.wait();
        // A change the survivor must deliver after taking over.
        let id = format!("k{kill}");
        mock.upsert(&id, whole_millis(Utc::now()), contact(kill));
        changes.push(id);
        let deadline = Instant::now() + Duration::from_secs(lease_seconds + 30);
        let (started, ended) = loop {
            if let Some(found) = poll_after(&nodes[survivor].log, instance, killed_at) {
                break found;
            }
            assert!(
                Instant::now() < deadline,
                "the surviving node never polled again after the kill:\n{}",
                std::fs::read_to_string(&nodes[survivor].log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        survivor_cpu += cpu_seconds(survivor_pid).unwrap_or(0.0) - cpu_before;
        let to = |at: DateTime<Utc>| (at - killed_at).to_std().unwrap_or_default();
        let takeover_logged = log_lines(&nodes[survivor].log).iter().any(|line| {
            let after = line["timestamp"]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                .is_some_and(|t| t > killed_at);
            after
                && line["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("took over the poll"))
        });
        let result = Kill {
            to_start: to(started),
            to_commit: to(ended),
            lease_left,
            takeover_logged,
            load,
        };
        println!(
            "takeover, lease_seconds {lease_seconds}: kill {} of node {victim} (lease left \
             {lease_left:.2}s): node {survivor} polled {:.2}s later (committed at {:.2}s; {:.1?} \
             of bench wall); takeover logged: {takeover_logged}; load {load:.2}",
            kill + 1,
            result.to_start.as_secs_f64(),
            result.to_commit.as_secs_f64(),
            killed.elapsed()
        );
        // A lease that did not hold would make a fine figure: the other node must have waited
        // for the expiry it was told (a clock's worth of slack), and said it took over.
        assert!(
            result.to_start.as_secs_f64() >= lease_left - 0.1,
            "the other node polled {:.2}s after the kill, before the lease's expiry ({lease_left:.2}s)",
            result.to_start.as_secs_f64()
        );
        assert!(takeover_logged, "the other node did not log a takeover");
        results.push(result);
        restarts[victim] += 1;
        nodes[victim] = Daemon::start(
            binary,
            dir.path(),
            &url,
            &format!("node{victim}.{}.log", restarts[victim]),
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    // Every change made at a kill reaches the receiver.
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivered = loop {
        let tally = delivered_ids(&receiver.received());
        let all = changes.iter().all(|id| tally.contains_key(id));
        if all || Instant::now() > deadline {
            break tally;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for node in nodes {
        node.stop();
    }
    let result = Takeover {
        lease: lease_seconds,
        default: lease.is_none(),
        kills: results,
        changes: changes.len(),
        delivered: changes
            .iter()
            .filter(|id| delivered.contains_key(*id))
            .count() as u64,
        survivor_cpu,
    };
    finish(dir, pg, &db);
    let missing: Vec<&String> = changes
        .iter()
        .filter(|id| !delivered.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "changes never delivered: {missing:?}");
    let under_two: Vec<_> = delivered.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        under_two.is_empty(),
        "changes under two eventIds: {under_two:?}"
    );
    result
}

/// objectId -> the distinct eventIds it arrived under.
fn delivered_ids(received: &[Received]) -> BTreeMap<String, HashSet<String>> {
    let mut out: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for request in received {
        let body = request.json();
        let event_id = body["message"]["eventId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for event in body["message"]["events"].as_array().into_iter().flatten() {
            if let Some(object) = event["objectId"].as_str() {
                out.entry(object.to_owned())
                    .or_default()
                    .insert(event_id.clone());
            }
        }
    }
    out
}
