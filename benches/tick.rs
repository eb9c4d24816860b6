//! `cargo bench --bench tick`: `ocpoll tick --all` (the release binary) against loopback
//! providers served from this process, in two shapes (docs/benchmarks.md#budget, issue 4):
//!
//! - **fleet**: 10,000 instance files, each with one resource on the shared mock provider
//!   (`tests/support/mock_provider.rs`; a distinct filter per instance), one changed record
//!   each. A baseline tick first (not measured as the figure, but reported), then one record
//!   changes, then the measured tick: 10,000 polls, 10,000 events, 10,000 notifications.
//!   Budget: under 10 s and under 100 MiB (goal 5 s, 50 MiB).
//! - **bulk**: one resource with 200,000 changed records in pages of 1,000: events per second
//!   into the outbox and notifications written (default batches: 1000 events / 1 MiB).
//!   Budget: under 100 MiB. The mock provider renders its whole record set on every request
//!   (fine for tests, quadratic here: 200 pages x 200,000 records would time the mock, not
//!   ocpoll), so this shape uses a minimal page server with the same Open Connectors page-token
//!   protocol and pre-rendered pages.
//!
//! - **page**: one resource whose one page holds 1,100,000 small records (about 62 MiB of JSON,
//!   under the default 64 MiB `max_page_bytes`), every one a change: what one large page costs
//!   in memory (issue 13, defect 6: records are read out of the page one at a time). No budget
//!   of its own; the figure to watch is peak RSS against the page's size.
//!
//! Peak RSS is the child's own `ru_maxrss` from `wait4` (each run alone, rather than the
//! maximum over every child that `RUSAGE_CHILDREN` reports). Both outboxes are read back to
//! check the tick did the work it is timed for. Callbacks go to a loopback receiver answering
//! 204, so the figures stay meaningful once `tick` delivers. Figures go to stdout and to
//! `target/bench/tick.json`.

#[path = "support/bulk_provider.rs"]
mod bulk_provider;
#[path = "../tests/support/mock_provider.rs"]
mod mock_provider;
#[path = "support/process.rs"]
mod process;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use bulk_provider::BulkServer;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use mock_provider::{MockProvider, Paging};
use ocpoll::config::Synchronous;
use ocpoll::state::{OutboxFilter, Store};
use process::{isolate, whole_millis, write_report};
use serde_json::json;
use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const FLEET_INSTANCES: usize = 10_000;
const FLEET_BUDGET: Duration = Duration::from_secs(10);
const BULK_RECORDS: usize = 200_000;
const BULK_PAGE: usize = 1_000;
const RSS_BUDGET_MIB: f64 = 100.0;
const DATE_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'";

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter this bench ignores.
    let binary = process::bench_binary(env!("CARGO_BIN_EXE_ocpoll"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let receiver = runtime.block_on(Receiver::start());

    // BENCH_TICK_ONLY=fleet, =bulk or =page runs one shape (when profiling).
    let only = std::env::var("BENCH_TICK_ONLY").unwrap_or_default();
    let runs = |shape: &str| only.is_empty() || only == shape;
    let fleet = runs("fleet").then(|| fleet(&binary, &runtime, &receiver));
    let bulk = runs("bulk").then(|| bulk(&binary, &runtime, &receiver));
    let page = runs("page").then(|| big_page(&binary, &runtime, &receiver));

    let report = json!({
        "benchmark": "tick",
        "fleet": fleet,
        "bulk": bulk,
        "page": page,
        "budget_fleet_seconds": FLEET_BUDGET.as_secs_f64(),
        "budget_rss_mib": RSS_BUDGET_MIB,
    });
    write_report(Path::new(env!("CARGO_BIN_EXE_ocpoll")), "tick", &report);
}

// -------------------------------------------------------------------------------------------
// Fleet: 10,000 instances, one changed record each
// -------------------------------------------------------------------------------------------

fn fleet(
    binary: &Path,
    runtime: &tokio::runtime::Runtime,
    receiver: &Receiver,
) -> serde_json::Value {
    let dir = bench_dir("fleet");
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
        mock.upsert(&format!("c{index}"), updated, json!({"name": "unchanged"}));
    }
    let instances = dir.path().join("instances.d");
    std::fs::create_dir(&instances).unwrap();
    for index in 0..FLEET_INSTANCES {
        let text = fleet_instance(index, &mock.resource_url(), &receiver.url());
        std::fs::write(instances.join(format!("fleet-{index:05}.json")), text).unwrap();
    }

    let served = || mock.request_count();
    let whole_tick = Progress {
        served: &served,
        total: FLEET_INSTANCES as u64,
    };
    let baseline = run_tick(binary, dir.path(), "baseline", &whole_tick);
    baseline.assert_success();
    mock.upsert("c-changed", now, json!({"name": "changed"}));
    let requests_before = mock.request_count();
    let received_before = receiver.received();
    let served = || mock.request_count() - requests_before;
    let whole_tick = Progress {
        served: &served,
        total: FLEET_INSTANCES as u64,
    };
    let measured = run_tick(binary, dir.path(), "measured", &whole_tick);
    measured.assert_success();
    let outbox = outbox_totals(&dir.path().join("state.db"));
    let arrivals = receiver.since(received_before.0);
    let delivered = arrivals.events();
    let in_flight = check_one_event_each(&outbox, &arrivals);
    let requests = mock.request_count() - requests_before;
    let seconds = measured.wall.as_secs_f64();
    let events_per_second = FLEET_INSTANCES as f64 / seconds;

    println!("tick fleet: {FLEET_INSTANCES} instances, one changed record each");
    println!(
        "  baseline    {:.3?} wall ({:.2}s user, {:.2}s system), {:.1} MiB peak RSS",
        baseline.wall,
        baseline.user,
        baseline.system,
        baseline.rss_mib()
    );
    println!(
        "  measured    {:.3?} wall ({:.2}s user, {:.2}s system), {requests} provider requests",
        measured.wall, measured.user, measured.system
    );
    println!(
        "  throughput  {events_per_second:.0} events/s, {:.0} polls/s",
        FLEET_INSTANCES as f64 / seconds
    );
    println!(
        "  outbox      {} events in {} notifications pending; {delivered} events delivered \
         ({in_flight} of them also still pending: sent as the delivery deadline passed)",
        outbox.events, outbox.notifications,
    );
    println!("  time split  {}", measured.split(&arrivals));
    println!("  peak RSS    {}", measured.rss_line());
    println!(
        "  budget      {} (< {FLEET_BUDGET:?} and < {RSS_BUDGET_MIB} MiB)",
        verdict(measured.wall < FLEET_BUDGET && measured.rss_mib() < RSS_BUDGET_MIB)
    );
    json!({
        "instances": FLEET_INSTANCES,
        "baseline_seconds": baseline.wall.as_secs_f64(),
        "baseline_cpu_user_seconds": baseline.user,
        "baseline_cpu_system_seconds": baseline.system,
        "baseline_peak_rss_mib": baseline.rss_mib(),
        "seconds": seconds,
        "cpu_user_seconds": measured.user,
        "cpu_system_seconds": measured.system,
        "provider_requests": requests,
        "events": FLEET_INSTANCES,
        "notifications_pending": outbox.notifications,
        "events_delivered": delivered,
        "delivered_and_still_pending": in_flight,
        "time_split": measured.split_json(&arrivals),
        "events_per_second": events_per_second,
        "peak_rss_mib": measured.rss_mib(),
        "rss": measured.rss_json(),
    })
}

/// Every instance has its one event, pending or delivered; none has two. A notification both
/// delivered and pending is one whose answer came after the tick's delivery deadline: it goes
/// again next time (at least once), so it is counted, not failed. Returns how many.
fn check_one_event_each(outbox: &OutboxTotals, arrivals: &Arrivals) -> usize {
    let mut per_instance: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, instance, events) in &outbox.rows {
        assert_eq!(
            *events, 1,
            "{instance}: a notification with {events} events"
        );
        per_instance.entry(instance).or_default().push(id);
    }
    for (id, instance, events) in &arrivals.notifications {
        assert_eq!(
            *events, 1,
            "{instance}: a notification with {events} events"
        );
        per_instance.entry(instance).or_default().push(id);
    }
    assert_eq!(
        per_instance.len(),
        FLEET_INSTANCES,
        "some instances have no event"
    );
    let mut in_flight = 0;
    for (instance, ids) in per_instance {
        let distinct: std::collections::HashSet<&&str> = ids.iter().collect();
        assert_eq!(
            distinct.len(),
            1,
            "{instance}: two different notifications {ids:?}"
        );
        in_flight += ids.len() - 1;
    }
    in_flight
}

fn fleet_instance(index: usize, resource: &url::Url, callback: &str) -> String {
    // A filter per instance (ignored by the mock), so no two instances poll the same URL.
    let url =
        format!("{resource}?where=updated_at>='${{gmtDate:{DATE_FORMAT}}}'&owner=fleet-{index:05}");
    serde_json::to_string_pretty(&json!({
        "element": {"key": "fleetcrm"},
        "name": format!("fleet-{index:05}"),
        "tags": ["bench"],
        "configuration": {
            "event.notification.enabled": true,
            "event.notification.callback.url": format!("{callback}/{index}"),
            "event.notification.signature.key": format!("bench-signature-key-{index}"),
            "event.poller.refresh_interval": 15,
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
        }
    }))
    .unwrap()
}

// -------------------------------------------------------------------------------------------
// Bulk: one resource, 200,000 changed records
// -------------------------------------------------------------------------------------------

fn bulk(
    binary: &Path,
    runtime: &tokio::runtime::Runtime,
    receiver: &Receiver,
) -> serde_json::Value {
    let dir = bench_dir("bulk");
    let pages = BulkPages::render(whole_millis(Utc::now()) - TimeDelta::seconds(30));
    let bytes: usize = pages.pages.iter().map(|page| page.len()).sum();
    let server = runtime.block_on(BulkServer::start(pages.pages));
    write_bulk_instance(dir.path(), &server.url(), &receiver.url());

    // The baseline sees no records (its watermark: the provider's Date minus a minute); then
    // all 200,000 appear, newer than that.
    let served = || server.requests();
    let pages = Progress {
        served: &served,
        total: (BULK_RECORDS / BULK_PAGE) as u64,
    };
    let baseline = run_tick(binary, dir.path(), "baseline", &pages);
    baseline.assert_success();
    server.show_records();
    let received_before = receiver.received();
    let measured = run_tick(binary, dir.path(), "measured", &pages);
    measured.assert_success();
    let outbox = outbox_totals(&dir.path().join("state.db"));
    let arrivals = receiver.since(received_before.0);
    let delivered = (arrivals.notifications.len() as u64, arrivals.events());
    assert_eq!(
        outbox.events + delivered.1,
        BULK_RECORDS as u64,
        "the measured tick should turn every record into an event"
    );
    let seconds = measured.wall.as_secs_f64();
    let events_per_second = BULK_RECORDS as f64 / seconds;
    let state_bytes = std::fs::metadata(dir.path().join("state.db"))
        .map(|m| m.len())
        .unwrap_or(0);

    println!("tick bulk: one resource, {BULK_RECORDS} changed records in pages of {BULK_PAGE}");
    println!(
        "  provider    {} pages, {:.1} MiB of JSON",
        server.requests(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "  measured    {:.3?} wall ({:.2}s user, {:.2}s system)",
        measured.wall, measured.user, measured.system
    );
    println!(
        "  throughput  {events_per_second:.0} events/s (the whole tick: fetch, commit, deliver)"
    );
    println!("  time split  {}", measured.split(&arrivals));
    println!(
        "  outbox      {} events in {} notifications pending ({:.1} MiB of bodies), {} in {} \
         delivered; state file {:.1} MiB",
        outbox.events,
        outbox.notifications,
        outbox.body_bytes as f64 / (1024.0 * 1024.0),
        delivered.1,
        delivered.0,
        state_bytes as f64 / (1024.0 * 1024.0)
    );
    println!("  peak RSS    {}", measured.rss_line());
    println!(
        "  budget      {} (< {RSS_BUDGET_MIB} MiB)",
        verdict(measured.rss_mib() < RSS_BUDGET_MIB)
    );
    json!({
        "records": BULK_RECORDS,
        "page_size": BULK_PAGE,
        "provider_json_bytes": bytes,
        "seconds": seconds,
        "cpu_user_seconds": measured.user,
        "cpu_system_seconds": measured.system,
        "events": outbox.events + delivered.1,
        "notifications": outbox.notifications + delivered.0,
        "notifications_delivered": delivered.0,
        "notification_body_bytes_pending": outbox.body_bytes,
        "time_split": measured.split_json(&arrivals),
        "state_file_bytes": state_bytes,
        "events_per_second": events_per_second,
        "peak_rss_mib": measured.rss_mib(),
        "rss": measured.rss_json(),
        "baseline_seconds": baseline.wall.as_secs_f64(),
    })
}

/// `instances.d/bulk.json` in `dir`: the one resource of the bulk and page shapes.
fn write_bulk_instance(dir: &Path, server: &str, callback: &str) {
    let instances = dir.join("instances.d");
    std::fs::create_dir(&instances).unwrap();
    std::fs::write(instances.join("bulk.json"), bulk_instance(server, callback)).unwrap();
}

fn bulk_instance(server: &str, callback: &str) -> String {
    let url = format!(
        "{server}/bulk/contacts?where=updated_at>='${{gmtDate:{DATE_FORMAT}}}'&pageSize={BULK_PAGE}"
    );
    serde_json::to_string_pretty(&json!({
        "element": {"key": "bulkcrm"},
        "name": "bulk",
        "configuration": {
            "event.notification.enabled": true,
            "event.notification.callback.url": callback,
            "event.notification.signature.key": "bench-signature-key",
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

// -------------------------------------------------------------------------------------------
// Page: one page of 1,100,000 small records
// -------------------------------------------------------------------------------------------

const PAGE_RECORDS: usize = 1_100_000;

fn big_page(
    binary: &Path,
    runtime: &tokio::runtime::Runtime,
    receiver: &Receiver,
) -> serde_json::Value {
    let dir = bench_dir("page");
    let page = render_big_page(whole_millis(Utc::now()) - TimeDelta::seconds(30));
    let page_bytes = page.len();
    let server = runtime.block_on(BulkServer::start(vec![page]));
    write_bulk_instance(dir.path(), &server.url(), &receiver.url());
    let served = || server.requests();
    let pages = Progress {
        served: &served,
        total: 1,
    };
    run_tick(binary, dir.path(), "baseline", &pages).assert_success();
    server.show_records();
    let received_before = receiver.received();
    let measured = run_tick(binary, dir.path(), "measured", &pages);
    measured.assert_success();
    let outbox = outbox_totals(&dir.path().join("state.db"));
    let arrivals = receiver.since(received_before.0);
    let events = outbox.events + arrivals.events();
    assert_eq!(
        events, PAGE_RECORDS as u64,
        "the measured tick should turn every record of the page into an event"
    );
    let page_mib = page_bytes as f64 / (1024.0 * 1024.0);
    println!("tick page: one resource, one page of {PAGE_RECORDS} changed records");
    println!("  provider    one page, {page_mib:.1} MiB of JSON");
    println!(
        "  measured    {:.3?} wall ({:.2}s user, {:.2}s system)",
        measured.wall, measured.user, measured.system
    );
    println!(
        "  peak RSS    {} = {:.1}x the page",
        measured.rss_line(),
        measured.rss_mib() / page_mib
    );
    json!({
        "records": PAGE_RECORDS,
        "page_bytes": page_bytes,
        "seconds": measured.wall.as_secs_f64(),
        "cpu_user_seconds": measured.user,
        "cpu_system_seconds": measured.system,
        "events": events,
        "peak_rss_mib": measured.rss_mib(),
        "peak_rss_per_page_byte": measured.rss_mib() / page_mib,
        "rss": measured.rss_json(),
    })
}

/// One JSON array of small records (an id and an update time within the last 30 s), written
/// straight to bytes.
fn render_big_page(first_updated: DateTime<Utc>) -> bytes::Bytes {
    let mut page = Vec::with_capacity(PAGE_RECORDS * 60);
    page.push(b'[');
    for index in 0..PAGE_RECORDS {
        if index > 0 {
            page.push(b',');
        }
        let updated = first_updated + TimeDelta::milliseconds((index % 25_000) as i64);
        let updated = updated.to_rfc3339_opts(SecondsFormat::Millis, true);
        page.extend_from_slice(
            format!(r#"{{"id":"r{index:07}","updated_at":"{updated}"}}"#).as_bytes(),
        );
    }
    page.push(b']');
    bytes::Bytes::from(page)
}

/// The 200,000 records, pre-rendered as JSON pages: a record is a CRM contact of about 250
/// bytes, updated one millisecond after the previous one.
struct BulkPages {
    pages: Vec<bytes::Bytes>,
}

impl BulkPages {
    /// Rendered page by page, straight to bytes: the bench's own memory stays near the 46 MiB
    /// of JSON it serves.
    fn render(first_updated: DateTime<Utc>) -> BulkPages {
        let created = first_updated - TimeDelta::days(30);
        let record = |index: usize| {
            let updated = first_updated + TimeDelta::milliseconds(index as i64);
            json!({
                "id": format!("r{index:06}"),
                "first_name": "Ada",
                "last_name": format!("Lovelace-{index}"),
                "email": format!("ada.{index}@example.com"),
                "company": "Analytical Engines Ltd",
                "title": "Head of Computation",
                "created_at": created.to_rfc3339_opts(SecondsFormat::Millis, true),
                "updated_at": updated.to_rfc3339_opts(SecondsFormat::Millis, true),
            })
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
}

// -------------------------------------------------------------------------------------------
// The callback receiver
// -------------------------------------------------------------------------------------------

/// Answers every notification with 204 and counts them and their events (a delivered
/// notification leaves the outbox, so the events the tick produced are the outbox's plus these).
struct Receiver {
    addr: SocketAddr,
    counts: Arc<ReceiverCounts>,
}

struct Received {
    at: Instant,
    event_id: String,
    instance: String,
    events: usize,
}

#[derive(Default)]
struct ReceiverCounts {
    notifications: AtomicU64,
    events: AtomicU64,
    /// Every notification received, in order.
    log: std::sync::Mutex<Vec<Received>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let counts = Arc::new(ReceiverCounts::default());
        let shared = Arc::clone(&counts);
        let app = Router::new().fallback(post(move |body: bytes::Bytes| {
            let counts = Arc::clone(&shared);
            async move {
                let value = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
                let message = &value["message"];
                let events = message["events"].as_array().map_or(0, Vec::len);
                let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
                if let Ok(mut log) = counts.log.lock() {
                    log.push(Received {
                        at: Instant::now(),
                        event_id: text(&message["eventId"]),
                        instance: text(&message["instanceId"]),
                        events,
                    });
                }
                counts.notifications.fetch_add(1, Ordering::SeqCst);
                counts.events.fetch_add(events as u64, Ordering::SeqCst);
                StatusCode::NO_CONTENT
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, counts }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// What arrived after the first `skip` notifications: (eventId, instance, events) and the
    /// times of the first and last arrival.
    fn since(&self, skip: u64) -> Arrivals {
        let log = self.counts.log.lock();
        let Ok(log) = log else {
            return Arrivals::default();
        };
        let new = log.get(skip as usize..).unwrap_or_default();
        Arrivals {
            first: new.first().map(|r| r.at),
            last: new.last().map(|r| r.at),
            notifications: new
                .iter()
                .map(|r| (r.event_id.clone(), r.instance.clone(), r.events))
                .collect(),
        }
    }

    /// (notifications, events) received so far.
    fn received(&self) -> (u64, u64) {
        (
            self.counts.notifications.load(Ordering::SeqCst),
            self.counts.events.load(Ordering::SeqCst),
        )
    }
}

#[derive(Default)]
struct Arrivals {
    first: Option<Instant>,
    last: Option<Instant>,
    notifications: Vec<(String, String, usize)>,
}

impl Arrivals {
    fn events(&self) -> u64 {
        self.notifications.iter().map(|n| n.2 as u64).sum()
    }
}

// -------------------------------------------------------------------------------------------
// Running the binary
// -------------------------------------------------------------------------------------------

struct TickRun {
    started: Instant,
    wall: Duration,
    /// When the provider served the last request of the tick (the end of fetching).
    last_request_after: Option<Duration>,
    /// The child's VmHWM at the last sample before it exited (samples every 2 ms; the
    /// high-water mark only grows, so only the last 2 ms can escape it).
    high_water_kib: u64,
    /// The child's resident set when the provider had served its last request (end of the
    /// page loop; what follows is the final commits and the summary).
    rss_at_last_request: Option<Resident>,
    /// The largest resident set sampled (every 2 ms), split by kind.
    rss_sampled_peak: Option<Resident>,
    user: f64,
    system: f64,
    max_rss_kib: i64,
    status: i32,
    stderr: String,
    stdout_tail: String,
}

impl TickRun {
    /// Where the wall time went: fetching (to the provider's last request), then commits and
    /// the first delivery, then deliveries, then the exit.
    fn split(&self, arrivals: &Arrivals) -> String {
        let at = |instant: Option<Instant>| {
            instant.map_or("-".to_owned(), |i| {
                format!("{:.2}s", i.duration_since(self.started).as_secs_f64())
            })
        };
        format!(
            "last provider request at {}, first delivery at {}, last at {}, exit at {:.2}s",
            self.last_request_after
                .map_or("-".to_owned(), |d| format!("{:.2}s", d.as_secs_f64())),
            at(arrivals.first),
            at(arrivals.last),
            self.wall.as_secs_f64()
        )
    }

    fn split_json(&self, arrivals: &Arrivals) -> serde_json::Value {
        let at = |i: Option<Instant>| i.map(|i| i.duration_since(self.started).as_secs_f64());
        json!({
            "last_provider_request_seconds": self.last_request_after.map(|d| d.as_secs_f64()),
            "first_delivery_seconds": at(arrivals.first),
            "last_delivery_seconds": at(arrivals.last),
            "exit_seconds": self.wall.as_secs_f64(),
        })
    }
    /// The peak resident set of the tick itself. Not `ru_maxrss`: Linux folds the spawning
    /// process's own high-water mark into a child's `ru_maxrss` at exec (exec_mmap keeps the
    /// old mm's peak), so a bench that holds 200,000 rendered records would be charged for them.
    fn rss_mib(&self) -> f64 {
        mib(self.high_water_kib)
    }

    /// `ru_maxrss` from wait4 (KiB on Linux), for comparison: an upper bound, see `rss_mib`.
    fn ru_maxrss_mib(&self) -> f64 {
        self.max_rss_kib as f64 / 1024.0
    }

    fn rss_at_last_request_mib(&self) -> Option<f64> {
        self.rss_at_last_request.map(|r| mib(r.total))
    }

    fn rss_line(&self) -> String {
        let mut line = format!("{:.1} MiB", self.rss_mib());
        if let Some(peak) = self.rss_sampled_peak {
            line.push_str(&format!(
                "; sampled peak {:.1} MiB = anon {:.1} + file {:.1} + shmem {:.1}",
                mib(peak.total),
                mib(peak.anon),
                mib(peak.file),
                mib(peak.shmem)
            ));
        }
        if let Some(at) = self.rss_at_last_request_mib() {
            line.push_str(&format!("; {at:.1} MiB when the last page was requested"));
        }
        line.push_str(&format!(
            " (ru_maxrss {:.1} MiB, includes the bench's own)",
            self.ru_maxrss_mib()
        ));
        line
    }

    fn rss_json(&self) -> serde_json::Value {
        let split = |r: Option<Resident>| {
            r.map(|r| {
                json!({"total_mib": mib(r.total), "anon_mib": mib(r.anon),
                       "file_mib": mib(r.file), "shmem_mib": mib(r.shmem)})
            })
        };
        json!({
            "peak_mib": self.rss_mib(),
            "ru_maxrss_mib": self.ru_maxrss_mib(),
            "sampled_peak": split(self.rss_sampled_peak),
            "at_last_provider_request": split(self.rss_at_last_request),
        })
    }

    fn assert_success(&self) {
        let exited = libc::WIFEXITED(self.status);
        let code = libc::WEXITSTATUS(self.status);
        assert!(
            exited && code == 0,
            "tick failed (wait status {}):\n{}\n{}",
            self.status,
            self.stderr,
            self.stdout_tail
        );
    }
}

/// How far the provider side got: requests served so far, and how many a whole tick makes.
struct Progress<'a> {
    served: &'a (dyn Fn() -> u64 + Sync),
    total: u64,
}

/// `ocpoll tick --all --instances instances.d --state state.db` in `dir`, with a clean
/// environment (plus any `OCPOLL_*` variable of the bench's, to compare settings); waits with
/// `wait4` to get this child's own resource usage, while a thread samples its resident set.
fn run_tick(binary: &Path, dir: &Path, label: &str, progress: &Progress<'_>) -> TickRun {
    let stdout_path = dir.join(format!("{label}.stdout"));
    let stderr_path = dir.join(format!("{label}.stderr"));
    // BENCH_TICK_WRAPPER="perf record -g -o /tmp/{label}.perf" (or heaptrack...) profiles the
    // child, `{label}` being baseline or measured; the resource figures are then the wrapper's.
    let wrapper = std::env::var("BENCH_TICK_WRAPPER")
        .unwrap_or_default()
        .replace("{label}", label);
    let mut words: Vec<&str> = wrapper.split_whitespace().collect();
    let program = if words.is_empty() {
        binary.as_os_str()
    } else {
        std::ffi::OsStr::new(words.remove(0))
    };
    let mut command = Command::new(program);
    if !words.is_empty() {
        command.args(&words).arg(binary);
    } else if !wrapper.is_empty() {
        command.arg(binary);
    }
    isolate(&mut command, dir);
    let started = Instant::now();
    let child = command
        .args([
            "tick",
            "--all",
            "--instances",
            "instances.d",
            "--state",
            "state.db",
        ])
        .envs(std::env::vars().filter(|(name, _)| name.starts_with("OCPOLL_")))
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .expect("run ocpoll");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 writes only into the two locals we pass; the child is ours and not yet
    // reaped (std's Child is dropped without waiting).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let done = AtomicBool::new(false);
    let (waited, wall, (rss_at_last_request, rss_sampled_peak, high_water_kib, last_request_after)) =
        std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut at_last_request = None;
                let mut last_request_after = None;
                let mut peak: Option<Resident> = None;
                let mut high_water = 0;
                while !done.load(Ordering::SeqCst) {
                    let now = Resident::of(pid);
                    high_water = now.map_or(high_water, |now| now.high_water.max(high_water));
                    if last_request_after.is_none() && (progress.served)() >= progress.total {
                        at_last_request = now;
                        last_request_after = Some(started.elapsed());
                    }
                    if let Some(now) = now
                        && peak.is_none_or(|peak| now.total > peak.total)
                    {
                        peak = Some(now);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                (at_last_request, peak, high_water, last_request_after)
            });
            let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            let wall = started.elapsed();
            done.store(true, Ordering::SeqCst);
            (
                waited,
                wall,
                sampler.join().unwrap_or((None, None, 0, None)),
            )
        });
    assert_eq!(waited, pid, "wait4 failed");
    drop(child);
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let tail: Vec<&str> = stdout.lines().rev().take(3).collect();
    TickRun {
        started,
        wall,
        last_request_after,
        rss_at_last_request,
        rss_sampled_peak,
        high_water_kib,
        user: seconds(usage.ru_utime),
        system: seconds(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss,
        status,
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        stdout_tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    }
}

/// A live process's resident set in KiB, from /proc: anonymous memory (heap, stacks), file
/// pages mapped (the binary, mmapped files) and shared memory (SQLite's WAL index), and its
/// high-water mark.
#[derive(Clone, Copy, Debug)]
struct Resident {
    /// VmHWM: the peak resident set of the process since its exec.
    high_water: u64,
    total: u64,
    anon: u64,
    file: u64,
    shmem: u64,
}

impl Resident {
    fn of(pid: libc::pid_t) -> Option<Resident> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|line| line.starts_with(name))?;
            line.split_whitespace().nth(1)?.parse().ok()
        };
        Some(Resident {
            high_water: field("VmHWM:")?,
            total: field("VmRSS:")?,
            anon: field("RssAnon:")?,
            file: field("RssFile:")?,
            shmem: field("RssShmem:")?,
        })
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct OutboxTotals {
    notifications: u64,
    events: u64,
    body_bytes: u64,
    /// (eventId, instance, events) of every notification still in the outbox.
    rows: Vec<(String, String, u32)>,
}

fn outbox_totals(state: &Path) -> OutboxTotals {
    let store = Store::open_existing(state, Synchronous::Full).expect("open the state");
    let rows = store
        .outbox_list(&OutboxFilter::default())
        .expect("list the outbox");
    OutboxTotals {
        notifications: rows.len() as u64,
        events: rows.iter().map(|row| u64::from(row.events)).sum(),
        body_bytes: rows.iter().map(|row| row.body_bytes).sum(),
        rows: rows
            .iter()
            .map(|row| (row.id.clone(), row.instance.clone(), row.events))
            .collect(),
    }
}

fn bench_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("ocpoll-bench-tick-{name}-"))
        .tempdir()
        .expect("temporary folder")
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}
