//! `cargo bench --bench deliver`: end to end, from a loopback provider to acknowledged,
//! signature-verified callbacks, through the release binary
//! (`ocpoll tick --all --instances DIR --state FILE --config FILE`; issue 5, docs/benchmarks.md#budget).
//!
//! Each scenario runs a baseline tick (no events), makes the provider's records change, then
//! measures the tick that carries the changes: poll, write the outbox, deliver, exit.
//!
//! - **fleet**: 1,000 instances with 100 changed records each (100,000 events), all on the
//!   shared mock provider (`tests/support/mock_provider.rs`) and one callback receiver.
//! - **bulk**: one instance with 200,000 changed records in pages of 1,000, with the default
//!   `[state] synchronous = "full"`.
//! - **bulk-normal**: the same with `synchronous = "normal"`: the cost of durability.
//!
//! The receiver is `tests/support/mock_receiver.rs`: it verifies both signatures of every
//! request itself. The bench counts the events inside the bodies it received, deduplicated by
//! `eventId`, and checks that every changed record arrived. The figure is events acknowledged
//! per second of the measured tick's wall time. Budget (docs/benchmarks.md#budget): at least 20,000 events/s
//! and under 100 MiB peak RSS (goals: 100,000 events/s, 50 MiB).
//!
//! Peak RSS is the child's own VmHWM, sampled from /proc every 2 ms, not `ru_maxrss`: the child
//! is spawned with vfork semantics, and Linux folds the spawning process's high-water mark into
//! the child's `ru_maxrss` at exec, so the bench's own memory (rendered pages, received bodies)
//! would be charged to ocpoll. `ru_maxrss` is reported beside it for comparison.
//!
//! Where the time goes: the child's stdout is read line by line as it comes, so the end of the
//! poll phase (the "N polled, ..." line, printed before delivery starts) splits the tick into
//! poll and delivery, each with its largest resident set. The bench also reports its own CPU
//! during the tick (the mock servers share the machine's two cores with ocpoll), how long the
//! child's threads ran and waited in the run queue (/proc/PID/task/*/schedstat), and the load
//! average before the tick: a wall time far above the CPU time with a long run-queue wait
//! means a busy machine, not a slow ocpoll.
//!
//! Knobs: `BENCH_DELIVER_ONLY=fleet,bulk,bulk-normal` (a subset);
//! `BENCH_DELIVER_WRAPPER="perf record -g -o FILE"` wraps the measured tick only (its resource
//! figures are then the wrapper's). Figures go to stdout and `target/bench/deliver.json`.

#[path = "support/bulk_provider.rs"]
mod bulk_provider;
#[path = "../tests/support/mock_provider.rs"]
mod mock_provider;
#[path = "../tests/support/mock_receiver.rs"]
mod mock_receiver;
#[path = "support/process.rs"]
mod process;

use bulk_provider::BulkServer;
use chrono::{SecondsFormat, TimeDelta, Utc};
use mock_provider::{MockProvider, Paging};
use mock_receiver::{MockReceiver, Received};
use process::{
    isolate, load_average, memory_kib, own_cpu_seconds, seconds, whole_millis, write_report,
};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const FLEET_INSTANCES: usize = 1_000;
const FLEET_RECORDS: usize = 100;
const BULK_RECORDS: usize = 200_000;
const BULK_PAGE: usize = 1_000;
const FLOOR_EVENTS_PER_SECOND: f64 = 20_000.0;
const GOAL_EVENTS_PER_SECOND: f64 = 100_000.0;
const FLOOR_RSS_MIB: f64 = 100.0;
const GOAL_RSS_MIB: f64 = 50.0;
const DATE_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'";
/// One key for every instance: the mock receiver verifies with a fixed key list.
const SIGNATURE_KEY: &str = "bench-signature-key";
/// Worker threads of the runtime that serves the mocks: enough that a busy mock never makes
/// ocpoll wait for a thread (the machine has two cores; the mocks mostly wait on sockets).
const MOCK_WORKERS: usize = 4;

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter this bench ignores.
    let binary = process::bench_binary(env!("CARGO_BIN_EXE_ocpoll"));
    let only = std::env::var("BENCH_DELIVER_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|n| n.trim() == name);

    let fleet = wanted("fleet").then(|| fleet(&binary));
    let pages = (wanted("bulk") || wanted("bulk-normal")).then(BulkPages::render);
    if let Some(pages) = &pages {
        eprintln!(
            "bulk provider: {} pages, {:.1} MiB of JSON, pre-rendered",
            pages.pages.len(),
            pages.bytes() as f64 / (1024.0 * 1024.0)
        );
    }
    let bulk_full = pages
        .as_ref()
        .filter(|_| wanted("bulk"))
        .map(|pages| bulk(&binary, pages, "full"));
    let bulk_normal = pages
        .as_ref()
        .filter(|_| wanted("bulk-normal"))
        .map(|pages| bulk(&binary, pages, "normal"));

    let durability = match (&bulk_full, &bulk_normal) {
        (Some(full), Some(normal)) => {
            let ratio = normal.events_per_second() / full.events_per_second();
            println!("durability: synchronous=full vs normal on the bulk scenario");
            println!(
                "  full        {:.3?}, {:.0} events/s",
                full.run.wall,
                full.events_per_second()
            );
            println!(
                "  normal      {:.3?}, {:.0} events/s ({ratio:.2}x full)",
                normal.run.wall,
                normal.events_per_second()
            );
            Some(json!({
                "full_seconds": full.run.wall.as_secs_f64(),
                "normal_seconds": normal.run.wall.as_secs_f64(),
                "full_events_per_second": full.events_per_second(),
                "normal_events_per_second": normal.events_per_second(),
                "normal_over_full": ratio,
            }))
        }
        _ => None,
    };

    let report = json!({
        "benchmark": "deliver",
        // A subset or a profiler around the measured tick: not figures to compare.
        "only": only,
        "wrapper": std::env::var("BENCH_DELIVER_WRAPPER").unwrap_or_default(),
        "fleet": fleet.as_ref().map(Measured::to_json),
        "bulk": bulk_full.as_ref().map(Measured::to_json),
        "bulk_normal": bulk_normal.as_ref().map(Measured::to_json),
        "durability": durability,
        "floor_events_per_second": FLOOR_EVENTS_PER_SECOND,
        "goal_events_per_second": GOAL_EVENTS_PER_SECOND,
        "floor_rss_mib": FLOOR_RSS_MIB,
        "goal_rss_mib": GOAL_RSS_MIB,
    });
    write_report(Path::new(env!("CARGO_BIN_EXE_ocpoll")), "deliver", &report);
}

/// A runtime for one scenario's mock servers; dropping it stops them and frees what they
/// kept (the receiver keeps every body), so one scenario's memory never weighs on the next.
fn mock_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(MOCK_WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// -------------------------------------------------------------------------------------------
// Fleet: 1,000 instances, 100 changed records each
// -------------------------------------------------------------------------------------------

fn fleet(binary: &Path) -> Measured {
    let runtime = mock_runtime();
    let dir = bench_dir("fleet");
    let receiver = runtime.block_on(MockReceiver::start(&[SIGNATURE_KEY]));
    let mock = runtime.block_on(
        MockProvider::builder()
            .resource_path("/hubs/crm/contacts")
            .date_format(DATE_FORMAT, "UTC")
            .paging(Paging::PageToken { page_size: 200 })
            .start(),
    );
    let now = whole_millis(Utc::now());
    // What the baseline sees: its watermark becomes the newest of these.
    for index in 0..5 {
        let updated = now - TimeDelta::minutes(10) + TimeDelta::seconds(index);
        mock.upsert(
            &format!("old-{index}"),
            updated,
            contact_fields(index as usize),
        );
    }
    let instances = dir.path().join("instances.d");
    std::fs::create_dir(&instances).unwrap();
    for index in 0..FLEET_INSTANCES {
        let text = fleet_instance(index, &mock.resource_url(), &receiver.url());
        std::fs::write(instances.join(format!("fleet-{index:04}.json")), text).unwrap();
    }
    write_config(dir.path(), "full");

    let baseline = run_tick(binary, dir.path(), "baseline", &Counters::none(), false);
    baseline.assert_success();
    // Every instance reads the same 100 changes (state is per instance, so each one's 100
    // records are its own events).
    for index in 0..FLEET_RECORDS {
        let updated = now - TimeDelta::minutes(5) + TimeDelta::milliseconds(index as i64);
        mock.upsert(&format!("c{index:03}"), updated, contact_fields(index));
    }
    let provider_before = mock.request_count();
    let receiver_before = receiver.request_count();
    let provider = || mock.request_count() - provider_before;
    let received = || receiver.request_count() - receiver_before;
    let counters = Counters {
        provider: &provider,
        provider_total: FLEET_INSTANCES as u64,
        receiver: &received,
    };
    let run = run_tick(binary, dir.path(), "measured", &counters, true);
    run.assert_success();
    let tally = Tally::of(&receiver.received(), receiver_before);
    let measured = Measured {
        name: "fleet",
        description: format!(
            "{FLEET_INSTANCES} instances x {FLEET_RECORDS} changed records (default batches)"
        ),
        expected_events: (FLEET_INSTANCES * FLEET_RECORDS) as u64,
        provider_requests: mock.request_count() - provider_before,
        baseline,
        run,
        tally,
    };
    measured.print();
    measured.check();
    measured
}

fn fleet_instance(index: usize, resource: &url::Url, callback: &str) -> String {
    // A filter per instance (ignored by the mock), so no two instances poll the same URL.
    let url =
        format!("{resource}?where=updated_at>='${{gmtDate:{DATE_FORMAT}}}'&owner=fleet-{index:04}");
    instance_json(&format!("fleet-{index:04}"), &url, callback)
}

/// A contact as a CRM would have it (about 250 bytes of JSON with the id and updated date).
fn contact_fields(index: usize) -> serde_json::Value {
    json!({
        "first_name": "Ada",
        "last_name": format!("Lovelace-{index}"),
        "email": format!("ada.{index}@example.com"),
        "company": "Analytical Engines Ltd",
        "title": "Head of Computation",
        "created_at": "2026-01-02T03:04:05.000Z",
    })
}

fn instance_json(name: &str, url: &str, callback: &str) -> String {
    serde_json::to_string_pretty(&json!({
        "element": {"key": "benchcrm"},
        "name": name,
        "tags": ["bench"],
        "configuration": {
            "event.notification.enabled": true,
            "event.notification.callback.url": callback,
            "event.notification.signature.key": SIGNATURE_KEY,
            "event.poller.refresh_interval": 15,
            "event.poller.configuration": {
                "contacts": {
                    "url": url,
                    "idField": "id",
                    "datesConfiguration": {
                        "updatedDateField": "updated_at",
                        "updatedDateFormat": DATE_FORMAT,
                        "updatedDateTimezone": "GMT",
                        "createdDateField": "created_at",
                        "createdDateFormat": DATE_FORMAT,
                        "createdDateTimezone": "GMT",
                    }
                }
            }
        }
    }))
    .unwrap()
}

fn write_config(dir: &Path, synchronous: &str) {
    std::fs::write(
        dir.join("config.toml"),
        format!("[state]\nsynchronous = \"{synchronous}\"\n"),
    )
    .unwrap();
}

// -------------------------------------------------------------------------------------------
// Bulk: one instance, 200,000 changed records
// -------------------------------------------------------------------------------------------

fn bulk(binary: &Path, pages: &BulkPages, synchronous: &str) -> Measured {
    let runtime = mock_runtime();
    let dir = bench_dir(&format!("bulk-{synchronous}"));
    let receiver = runtime.block_on(MockReceiver::start(&[SIGNATURE_KEY]));
    let server = runtime.block_on(BulkServer::start(pages.pages.clone()));
    let instances = dir.path().join("instances.d");
    std::fs::create_dir(&instances).unwrap();
    let url = format!(
        "{}/bulk/contacts?where=updated_at>='${{gmtDate:{DATE_FORMAT}}}'&pageSize={BULK_PAGE}",
        server.url()
    );
    std::fs::write(
        instances.join("bulk.json"),
        instance_json("bulk", &url, &receiver.url()),
    )
    .unwrap();
    write_config(dir.path(), synchronous);

    // The baseline sees no records (its watermark: the provider's Date minus a minute); then
    // all 200,000 appear, dated after that.
    let baseline = run_tick(binary, dir.path(), "baseline", &Counters::none(), false);
    baseline.assert_success();
    server.show_records();
    let receiver_before = receiver.request_count();
    let provider = || server.requests();
    let received = || receiver.request_count() - receiver_before;
    let counters = Counters {
        provider: &provider,
        provider_total: pages.pages.len() as u64,
        receiver: &received,
    };
    let run = run_tick(binary, dir.path(), "measured", &counters, true);
    run.assert_success();
    let tally = Tally::of(&receiver.received(), receiver_before);
    let measured = Measured {
        name: if synchronous == "full" {
            "bulk"
        } else {
            "bulk-normal"
        },
        description: format!(
            "one instance, {BULK_RECORDS} changed records in pages of {BULK_PAGE}, \
             synchronous = \"{synchronous}\""
        ),
        expected_events: BULK_RECORDS as u64,
        provider_requests: provider(),
        baseline,
        run,
        tally,
    };
    measured.print();
    measured.check();
    measured
}

/// The 200,000 records as pre-rendered JSON pages. The shared mock provider renders and sorts
/// its whole record set on every request (fine for tests, quadratic here: 200 pages x 200,000
/// records would time the mock, not ocpoll), so the bulk scenarios serve these instead, with
/// the same Open Connectors page-token protocol.
struct BulkPages {
    pages: Vec<bytes::Bytes>,
}

impl BulkPages {
    fn render() -> BulkPages {
        // Dated 30 s ago: after the baseline's watermark (the provider's Date minus a minute),
        // one millisecond apart.
        let start = whole_millis(Utc::now()) - TimeDelta::seconds(30);
        let record = |index: usize| {
            let updated = start + TimeDelta::milliseconds(index as i64);
            let mut fields = json!({"id": format!("b{index:06}")});
            if let (Some(record), serde_json::Value::Object(contact)) =
                (fields.as_object_mut(), contact_fields(index))
            {
                record.extend(contact);
            }
            fields["updated_at"] = json!(updated.to_rfc3339_opts(SecondsFormat::Millis, true));
            fields
        };
        let pages = (0..BULK_RECORDS)
            .step_by(BULK_PAGE)
            .map(|first| {
                let page: Vec<serde_json::Value> = (first..(first + BULK_PAGE).min(BULK_RECORDS))
                    .map(record)
                    .collect();
                bytes::Bytes::from(serde_json::to_vec(&page).unwrap())
            })
            .collect();
        BulkPages { pages }
    }

    fn bytes(&self) -> usize {
        self.pages.iter().map(bytes::Bytes::len).sum()
    }
}

// -------------------------------------------------------------------------------------------
// What the receiver got
// -------------------------------------------------------------------------------------------

/// The measured tick's requests at the receiver, checked the way a receiver would.
#[derive(Default)]
struct Tally {
    requests: u64,
    /// Distinct `eventId`s (notifications acknowledged, retries folded).
    notifications: u64,
    /// Events inside the distinct notifications.
    events: u64,
    /// Distinct (instanceId, objectId) pairs among them: every changed record, once.
    distinct_records: u64,
    duplicate_notifications: u64,
    bad_signatures: u64,
    body_bytes: u64,
}

impl Tally {
    fn of(received: &[Received], numbered_after: u64) -> Tally {
        let mut tally = Tally::default();
        let mut event_ids = HashSet::new();
        let mut records = HashSet::new();
        for request in received.iter().filter(|r| r.number > numbered_after) {
            tally.requests += 1;
            if request.elements_valid != Some(true) || request.standard_valid != Some(true) {
                tally.bad_signatures += 1;
            }
            let body = request.json();
            let message = &body["message"];
            let event_id = message["eventId"].as_str().unwrap_or_default().to_owned();
            if !event_ids.insert(event_id) {
                tally.duplicate_notifications += 1;
                continue;
            }
            tally.notifications += 1;
            tally.body_bytes += request.body.len() as u64;
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
}

// -------------------------------------------------------------------------------------------
// One scenario's figures
// -------------------------------------------------------------------------------------------

struct Measured {
    name: &'static str,
    description: String,
    expected_events: u64,
    provider_requests: u64,
    baseline: TickRun,
    run: TickRun,
    tally: Tally,
}

impl Measured {
    /// Events acknowledged by the receiver per second of the measured tick.
    fn events_per_second(&self) -> f64 {
        self.tally.events as f64 / self.run.wall.as_secs_f64()
    }

    fn print(&self) {
        let run = &self.run;
        let tally = &self.tally;
        println!("deliver {}: {}", self.name, self.description);
        println!(
            "  baseline    {:.3?} wall, {:.1} MiB peak RSS",
            self.baseline.wall,
            self.baseline.rss_mib()
        );
        println!(
            "  measured    {:.3?} wall ({:.2}s user, {:.2}s system); bench process (mocks) \
             {:.2}s CPU meanwhile",
            run.wall, run.user, run.system, run.bench_cpu
        );
        println!(
            "  scheduling  threads ran {:.2}s and waited {:.2}s for a CPU (run queue); \
             machine load average {:.2} before the tick",
            run.sched.0, run.sched.1, run.load_before
        );
        println!(
            "  phases      {}",
            run.phases
                .describe(run.wall, run.first_callback, run.last_page)
        );
        println!(
            "  provider    {} requests; receiver {} requests",
            self.provider_requests, tally.requests
        );
        println!(
            "  delivered   {} events in {} notifications ({:.1} MiB of bodies), {} distinct \
             records of {} expected; {} duplicates, {} bad signatures",
            tally.events,
            tally.notifications,
            tally.body_bytes as f64 / (1024.0 * 1024.0),
            tally.distinct_records,
            self.expected_events,
            tally.duplicate_notifications,
            tally.bad_signatures
        );
        println!("  tick says   {}", run.summary_lines());
        println!(
            "  throughput  {:.0} events/s end to end",
            self.events_per_second()
        );
        println!("  peak RSS    {}", run.rss_line());
        println!("  budget      {}", self.verdict());
    }

    fn verdict(&self) -> String {
        let rate = self.events_per_second();
        let rss = self.run.rss_mib();
        let level = |value_ok_goal: bool, value_ok_floor: bool| {
            if value_ok_goal {
                "goal met"
            } else if value_ok_floor {
                "floor met, goal missed"
            } else {
                "MISSED"
            }
        };
        let complete = if self.tally.distinct_records == self.expected_events {
            ""
        } else {
            "; INCOMPLETE: not every changed record arrived"
        };
        format!(
            "events/s {} (floor {FLOOR_EVENTS_PER_SECOND:.0}, goal {GOAL_EVENTS_PER_SECOND:.0}); \
             RSS {} (floor {FLOOR_RSS_MIB} MiB, goal {GOAL_RSS_MIB} MiB){complete}",
            level(
                rate >= GOAL_EVENTS_PER_SECOND,
                rate >= FLOOR_EVENTS_PER_SECOND
            ),
            level(rss < GOAL_RSS_MIB, rss < FLOOR_RSS_MIB),
        )
    }

    /// The tick must have done the work it is timed for, correctly signed, nothing extra.
    fn check(&self) {
        assert_eq!(
            self.tally.bad_signatures, 0,
            "{}: bad signatures",
            self.name
        );
        assert!(
            self.tally.distinct_records <= self.expected_events
                && self.tally.events == self.tally.distinct_records,
            "{}: events that were not changes, or a record twice: {} events, {} distinct, {} \
             expected",
            self.name,
            self.tally.events,
            self.tally.distinct_records,
            self.expected_events
        );
    }

    fn to_json(&self) -> serde_json::Value {
        let run = &self.run;
        json!({
            "description": self.description,
            "expected_events": self.expected_events,
            "baseline_seconds": self.baseline.wall.as_secs_f64(),
            "baseline_peak_rss_mib": self.baseline.rss_mib(),
            "seconds": run.wall.as_secs_f64(),
            "cpu_user_seconds": run.user,
            "cpu_system_seconds": run.system,
            "bench_cpu_seconds_during_tick": run.bench_cpu,
            "poll_phase_seconds": run.phases.polled.map(|t| t.as_secs_f64()),
            "first_callback_seconds": run.first_callback.map(|t| t.as_secs_f64()),
            "last_provider_page_seconds": run.last_page.map(|t| t.as_secs_f64()),
            "provider_requests": self.provider_requests,
            "receiver_requests": self.tally.requests,
            "notifications_delivered": self.tally.notifications,
            "events_delivered": self.tally.events,
            "distinct_records_delivered": self.tally.distinct_records,
            "duplicate_notifications": self.tally.duplicate_notifications,
            "bad_signatures": self.tally.bad_signatures,
            "body_bytes": self.tally.body_bytes,
            "events_per_second": self.events_per_second(),
            "peak_rss_mib": run.rss_mib(),
            "poll_phase_rss_mib": run.poll_phase_rss_kib as f64 / 1024.0,
            "delivery_phase_rss_mib": run.delivery_phase_rss_kib as f64 / 1024.0,
            "thread_run_seconds": run.sched.0,
            "run_queue_wait_seconds": run.sched.1,
            "load_average_before": run.load_before,
            "ru_maxrss_mib": run.max_rss_kib as f64 / 1024.0,
            "tick_summary": run.summary_lines(),
            "verdict": self.verdict(),
        })
    }
}

// -------------------------------------------------------------------------------------------
// Running the binary
// -------------------------------------------------------------------------------------------

/// Progress counters the sampler watches during a tick (requests since the tick began).
struct Counters<'a> {
    provider: &'a (dyn Fn() -> u64 + Sync),
    /// Provider requests of a whole tick: reaching it ends the page loop.
    provider_total: u64,
    receiver: &'a (dyn Fn() -> u64 + Sync),
}

impl Counters<'_> {
    fn none() -> Counters<'static> {
        Counters {
            provider: &|| 0,
            provider_total: u64::MAX,
            receiver: &|| 0,
        }
    }
}

/// When the child printed its two summaries, from the start of the tick.
#[derive(Default)]
struct Phases {
    /// "N polled, ...": every poll committed, delivery about to start.
    polled: Option<Duration>,
    /// "Delivery: ...": delivery finished.
    delivered: Option<Duration>,
}

impl Phases {
    fn describe(
        &self,
        wall: Duration,
        first_callback: Option<Duration>,
        last_page: Option<Duration>,
    ) -> String {
        let at =
            |t: Option<Duration>| t.map_or("?".to_owned(), |t| format!("{:.3}s", t.as_secs_f64()));
        let delivery = match (self.polled, self.delivered) {
            (Some(polled), Some(delivered)) => {
                format!("{:.3}s", (delivered - polled).as_secs_f64())
            }
            _ => "?".to_owned(),
        };
        format!(
            "last provider page at {}, polls committed at {}, delivery {delivery} (first \
             callback at {}, done at {}), exit at {:.3}s",
            at(last_page),
            at(self.polled),
            at(first_callback),
            at(self.delivered),
            wall.as_secs_f64()
        )
    }
}

struct TickRun {
    wall: Duration,
    user: f64,
    system: f64,
    /// `ru_maxrss` from wait4 (KiB): includes the bench's own high-water mark, see the top.
    max_rss_kib: i64,
    /// VmHWM at the last sample before exit (every 2 ms; it only grows).
    high_water_kib: u64,
    /// Largest VmRSS sampled while polling, and while delivering.
    poll_phase_rss_kib: u64,
    delivery_phase_rss_kib: u64,
    /// Seconds the child's threads ran on a CPU, and waited runnable in the run queue.
    sched: (f64, f64),
    /// The machine's one-minute load average just before the tick.
    load_before: f64,
    phases: Phases,
    first_callback: Option<Duration>,
    last_page: Option<Duration>,
    /// CPU seconds the bench process (the mock servers) used during the tick.
    bench_cpu: f64,
    status: i32,
    stdout: Vec<String>,
    stderr: String,
}

impl TickRun {
    fn rss_mib(&self) -> f64 {
        self.high_water_kib as f64 / 1024.0
    }

    fn rss_line(&self) -> String {
        format!(
            "{:.1} MiB (VmHWM; largest VmRSS sampled: {:.1} MiB while polling, {:.1} MiB while \
             delivering; ru_maxrss {:.1} MiB includes the bench's own)",
            self.rss_mib(),
            self.poll_phase_rss_kib as f64 / 1024.0,
            self.delivery_phase_rss_kib as f64 / 1024.0,
            self.max_rss_kib as f64 / 1024.0
        )
    }

    /// The polling and delivery summary lines.
    fn summary_lines(&self) -> String {
        self.stdout
            .iter()
            .filter(|line| line.contains(" polled, ") || line.starts_with("Delivery:"))
            .cloned()
            .collect::<Vec<_>>()
            .join(" / ")
    }

    fn assert_success(&self) {
        let exited = libc::WIFEXITED(self.status);
        let code = libc::WEXITSTATUS(self.status);
        assert!(
            exited && code == 0,
            "tick failed (wait status {}):\n{}\n{}",
            self.status,
            self.stderr,
            self.summary_lines()
        );
    }
}

/// `ocpoll tick --all --instances instances.d --state state.db --config config.toml` in
/// `dir`, with a clean environment; waits with `wait4` for this child's own resource usage
/// while a thread samples its resident set and the mocks' counters, and another reads its
/// stdout as it comes.
fn run_tick(
    binary: &Path,
    dir: &Path,
    label: &str,
    counters: &Counters<'_>,
    measured: bool,
) -> TickRun {
    let mut command = wrapped_command(binary, measured);
    let stderr_path = dir.join(format!("{label}.stderr"));
    let load_before = load_average();
    let bench_cpu_before = own_cpu_seconds();
    let started = Instant::now();
    isolate(&mut command, dir);
    let mut child = command
        .args([
            "tick",
            "--all",
            "--instances",
            "instances.d",
            "--state",
            "state.db",
            "--config",
            "config.toml",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("run ocpoll");
    let stdout = child.stdout.take().expect("piped stdout");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 writes only into the two locals we pass; the child is ours and not yet
    // reaped (std's Child is dropped without waiting).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let done = AtomicBool::new(false);
    let polled = AtomicBool::new(false);
    let (waited, wall, sampled, (lines, phases)) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| read_lines(stdout, started, &polled));
        let sampler = scope.spawn(|| sample(pid, counters, started, &done, &polled));
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        let wall = started.elapsed();
        done.store(true, Ordering::SeqCst);
        let sampled = sampler.join().unwrap_or_default();
        (waited, wall, sampled, reader.join().unwrap_or_default())
    });
    assert_eq!(waited, pid, "wait4 failed");
    drop(child);
    let bench_cpu = own_cpu_seconds() - bench_cpu_before;
    std::fs::write(dir.join(format!("{label}.stdout")), lines.join("\n")).ok();
    TickRun {
        wall,
        user: seconds(usage.ru_utime),
        system: seconds(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss,
        high_water_kib: sampled.high_water_kib,
        poll_phase_rss_kib: sampled.poll_phase_rss_kib,
        delivery_phase_rss_kib: sampled.delivery_phase_rss_kib,
        sched: sampled.cpu_and_wait_seconds(),
        load_before,
        phases,
        first_callback: sampled.first_callback,
        last_page: sampled.last_page,
        bench_cpu,
        status,
        stdout: lines,
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

/// The binary, or `BENCH_DELIVER_WRAPPER` (e.g. `perf record -g -o FILE`) around it for the
/// measured tick.
fn wrapped_command(binary: &Path, measured: bool) -> Command {
    let wrapper = std::env::var("BENCH_DELIVER_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    match words.next().filter(|_| measured) {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(binary);
            command
        }
        None => Command::new(binary),
    }
}

/// Every stdout line, and when the two summary lines arrived (Rust's stdout is line-buffered,
/// so a line arrives when it is printed).
fn read_lines(
    stdout: std::process::ChildStdout,
    started: Instant,
    polled: &AtomicBool,
) -> (Vec<String>, Phases) {
    let mut lines = Vec::new();
    let mut phases = Phases::default();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.contains(" polled, ") && phases.polled.is_none() {
            phases.polled = Some(started.elapsed());
            polled.store(true, Ordering::SeqCst);
        }
        if line.starts_with("Delivery:") {
            phases.delivered = Some(started.elapsed());
        }
        lines.push(line);
    }
    (lines, phases)
}

#[derive(Default)]
struct Sampled {
    high_water_kib: u64,
    /// Largest VmRSS sampled before the poll summary was printed, and after.
    poll_phase_rss_kib: u64,
    delivery_phase_rss_kib: u64,
    first_callback: Option<Duration>,
    last_page: Option<Duration>,
    /// Per thread: (nanoseconds on a CPU, nanoseconds runnable but waiting for one).
    schedstat: HashMap<String, (u64, u64)>,
}

impl Sampled {
    /// Seconds the child's threads ran, and waited in the run queue (CPU contention: from
    /// the mocks, and from whatever else the machine runs).
    fn cpu_and_wait_seconds(&self) -> (f64, f64) {
        let (run, wait) = self
            .schedstat
            .values()
            .fold((0, 0), |(run, wait), (r, w)| (run + r, wait + w));
        (run as f64 / 1e9, wait as f64 / 1e9)
    }
}

fn sample(
    pid: libc::pid_t,
    counters: &Counters<'_>,
    started: Instant,
    done: &AtomicBool,
    polled: &AtomicBool,
) -> Sampled {
    let mut sampled = Sampled::default();
    let mut round = 0u64;
    while !done.load(Ordering::SeqCst) {
        if let Some((high_water, resident)) = memory_kib(pid) {
            sampled.high_water_kib = sampled.high_water_kib.max(high_water);
            let phase = if polled.load(Ordering::SeqCst) {
                &mut sampled.delivery_phase_rss_kib
            } else {
                &mut sampled.poll_phase_rss_kib
            };
            *phase = (*phase).max(resident);
        }
        if sampled.last_page.is_none() && (counters.provider)() >= counters.provider_total {
            sampled.last_page = Some(started.elapsed());
        }
        if sampled.first_callback.is_none() && (counters.receiver)() > 0 {
            sampled.first_callback = Some(started.elapsed());
        }
        // Every 20 ms: reading every thread's file costs more than the two above.
        if round.is_multiple_of(10) {
            read_schedstat(pid, &mut sampled.schedstat);
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    sampled
}

/// Updates each live thread's (run, wait) nanoseconds from /proc/PID/task/TID/schedstat; a
/// thread that ended keeps its last reading (at most 20 ms short).
fn read_schedstat(pid: libc::pid_t, threads: &mut HashMap<String, (u64, u64)>) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let mut numbers = text.split_whitespace().map(|n| n.parse::<u64>().ok());
        if let (Some(Some(run)), Some(Some(wait))) = (numbers.next(), numbers.next()) {
            threads.insert(task.file_name().to_string_lossy().into_owned(), (run, wait));
        }
    }
}

fn bench_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("ocpoll-bench-deliver-{name}-"))
        .tempdir()
        .expect("temporary folder")
}
