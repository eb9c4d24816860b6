//! `kill -9` during `ocpoll tick` never loses or duplicates a change (issue 4, the state store).
//!
//! A loop against the real binary. Three mock providers (contacts: CEQL `where` filter, page
//! tokens, `lookbackSeconds` so every poll re-reads every record; accounts: a provider that
//! ignores the filter, `Link` pagination; leads: like contacts but everything in one page, so
//! its polls take the path that stages nothing and commits the page from memory) serve 240
//! records at first and about 330 at the end, in pages of 8 (leads: one page), to two
//! instances (batch sizes 1 and 4), so one tick is six concurrent polls and 48 to 72 page
//! requests. Between rounds a scripted history changes records: new ids,
//! updates of old ones, and changes stamped with exactly the newest date already seen (ties at
//! the watermark, which only the seen pairs can tell apart). Each round starts `ocpoll tick --all` and SIGKILLs it at
//! a point chosen to cover every phase:
//! - a random delay shorter than the time to the first request (loading the instances, opening
//!   the state, discarding the staging of the previous victim);
//! - right after a random page request reached the mock (fetching, judging, staging pages, and
//!   the final commits of the polls that already finished);
//! - a random delay after the last page request (the last polls' final commits, the delivery
//!   attempts that follow them and record their failures, the exit).
//!
//! After every round the outbox is read back (every body decoded) and compared with the mock's
//! history; at the end one tick runs to completion and the full comparison is made. The test
//! is deterministic given its seed except for the kill timing; a failure prints the seed and the
//! round (`OCPOLL_CRASH_SEED=... cargo test --test tick_crash` replays the same history).

mod support;
mod util;

use chrono::{DateTime, SecondsFormat, TimeDelta, TimeZone, Utc};
use ocpoll::config::Synchronous;
use ocpoll::state::{OutboxFilter, Store};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use support::mock_provider::{MockProvider, Paging, SinceFilter};

/// Rounds with a changing history (`OCPOLL_CRASH_ROUNDS` overrides it for a soak run). A
/// round costs about half a tick of the debug binary, and a tick costs 0.15 to 0.35 s on this
/// shared 2-core machine (about 90 ms of it before the first request: process start, loading,
/// opening the state), so 200 rounds keep the file under a minute.
const ROUNDS: usize = 200;
/// Every this many rounds the tick runs to completion: the versions served then become
/// required, including ones a later change overwrites.
const COMPLETE_EVERY: usize = 25;
/// Killed rounds before the baseline is known to be complete: no changes yet, so any event
/// they leave is a baseline leak.
const BASELINE_ROUNDS: usize = 20;
const PAGE_SIZE: usize = 8;
const DATE_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss'Z'";
/// Instance name and `event.notification.batch.size`: 1 makes a notification per event, so a
/// poll's commit writes many rows; 4 puts several events in one and splits the larger polls.
const INSTANCES: [(&str, usize); 2] = [("crash-a", 1), ("crash-b", 4)];

// -------------------------------------------------------------------------------------------
// The history: what the providers served, and therefore which events must exist
// -------------------------------------------------------------------------------------------

/// (instance, objectType, objectId, date): one event as a receiver would identify it.
type EventKey = (String, String, String, String);

/// One version of one record, as the provider served it.
#[derive(Clone, Debug)]
struct Version {
    id: String,
    updated: DateTime<Utc>,
    /// 0 for the records that existed before the baseline (never an event).
    number: u32,
}

/// One mock provider resource and the complete history of its records.
struct Feed {
    resource: &'static str,
    mock: MockProvider,
    /// Records per page the provider serves (`usize::MAX`: one page).
    page_size: usize,
    /// The newest updated date served so far: a change is never older than it, because a
    /// provider that back-dates changes past a watermark is out of scope without lookback.
    clock: DateTime<Utc>,
    current: BTreeMap<String, Version>,
    next_id: u32,
    next_version: u32,
}

impl Feed {
    fn new(
        resource: &'static str,
        mock: MockProvider,
        page_size: usize,
        prefix: char,
        count: u32,
    ) -> Feed {
        let start = start_of_history();
        let mut feed = Feed {
            resource,
            mock,
            page_size,
            clock: start,
            current: BTreeMap::new(),
            next_id: 0,
            next_version: 1,
        };
        for index in 0..count {
            // Pairs of records share a second, so ties straddle page boundaries.
            let updated = start - TimeDelta::seconds(i64::from(count - index) / 2);
            let id = format!("{prefix}{index:04}");
            feed.serve(Version {
                id,
                updated,
                number: 0,
            });
        }
        feed.next_id = count;
        feed.clock = feed
            .current
            .values()
            .map(|v| v.updated)
            .max()
            .unwrap_or(start);
        feed
    }

    fn serve(&mut self, version: Version) {
        let fields = json!({"name": format!("{} v{}", version.id, version.number)});
        self.mock.upsert(&version.id, version.updated, fields);
        self.current.insert(version.id.clone(), version);
    }

    /// One scripted change: a new record or an update of any record, stamped either with the
    /// newest date already served (a tie at the watermark) or a second or two later.
    fn change(&mut self, rng: &mut Rng) -> Version {
        let tie = rng.below(4) == 0;
        let target = if rng.below(3) == 0 {
            let id = format!("{}{:04}", self.prefix(), self.next_id);
            self.next_id += 1;
            id
        } else {
            let ids: Vec<&String> = self.current.keys().collect();
            ids[rng.below(ids.len() as u64) as usize].clone()
        };
        // A record's own updated date always moves forward: the same (id, updated) twice
        // would be the same change.
        let own = self.current.get(&target).map(|v| v.updated);
        if !tie || own == Some(self.clock) {
            self.clock += TimeDelta::seconds(1 + rng.below(2) as i64);
        }
        let version = Version {
            id: target,
            updated: self.clock,
            number: self.next_version,
        };
        self.next_version += 1;
        self.serve(version.clone());
        version
    }

    fn prefix(&self) -> char {
        self.resource.chars().next().unwrap_or('r')
    }

    /// Page requests one poll of this feed makes: every record is read on every poll (the
    /// contacts and leads polls look back past all of them, the accounts provider ignores the
    /// filter).
    fn pages_per_poll(&self) -> u64 {
        self.current.len().div_ceil(self.page_size).max(1) as u64
    }

    fn newest(&self) -> DateTime<Utc> {
        self.clock
    }
}

/// Well inside the hour the baseline reads, and far enough back that the whole history (at
/// most two seconds a change) stays in the past.
fn start_of_history() -> DateTime<Utc> {
    let now = Utc::now().timestamp();
    Utc.timestamp_opt(now - 40 * 60, 0).single().unwrap()
}

fn event_date(updated: DateTime<Utc>) -> String {
    // The format has no fraction, so the event date has none (docs/events.md).
    updated.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Which events may exist and which must.
#[derive(Default)]
struct Expected {
    /// Every version created after the baseline, for every instance.
    allowed: HashSet<EventKey>,
    /// Versions that were being served while some tick ran to completion: that tick read them,
    /// so they must be in the outbox.
    required: HashSet<EventKey>,
}

impl Expected {
    fn keys(resource: &str, version: &Version) -> impl Iterator<Item = EventKey> {
        let (resource, id, date) = (
            resource.to_owned(),
            version.id.clone(),
            event_date(version.updated),
        );
        INSTANCES.iter().map(move |(instance, _)| {
            (
                (*instance).to_owned(),
                resource.clone(),
                id.clone(),
                date.clone(),
            )
        })
    }

    fn allow(&mut self, resource: &str, version: &Version) {
        self.allowed.extend(Expected::keys(resource, version));
    }

    /// A tick completed while `feeds` served what they serve now.
    fn tick_completed(&mut self, feeds: &[Feed]) {
        for feed in feeds {
            for version in feed.current.values().filter(|v| v.number > 0) {
                self.required.extend(Expected::keys(feed.resource, version));
            }
        }
    }
}

/// Everything wrong with the outbox's events compared with the history. Each kind of problem
/// is what a specific non-atomic step would leave behind after a kill:
/// - a duplicate: the notifications were committed in one transaction and the watermark (or the
///   seen pairs at the watermark instant) in another, and the kill fell between them, so the
///   next tick read the same records again from the old watermark; or a killed poll's staging
///   survived and a later poll committed it together with its own reading of the same records;
///   or two of one poll's notifications carried the same record (a page read twice);
/// - a missing event: the watermark moved without the notifications (the reverse order), a
///   staged page was lost while the poll still committed, or a tie at the watermark was
///   dismissed as already seen;
/// - an invented event: a baseline poll emitted what it should only remember (a baseline
///   repeated after a kill that no longer knows it is one), or an event names a record version
///   the provider never served.
fn problems(found: &HashMap<EventKey, u32>, expected: &Expected, complete: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, count) in found {
        if *count > 1 {
            problems.push(format!("duplicated {count} times: {key:?}"));
        }
        if !expected.allowed.contains(key) {
            problems.push(format!(
                "invented (no such change after the baseline): {key:?}"
            ));
        }
    }
    if complete {
        for key in &expected.required {
            if !found.contains_key(key) {
                problems.push(format!("missing: {key:?}"));
            }
        }
    }
    problems.sort();
    problems
}

// -------------------------------------------------------------------------------------------
// The outbox as a receiver would see it
// -------------------------------------------------------------------------------------------

/// Reads the outbox incrementally: bodies of notifications already decoded are not decoded
/// again, but every earlier notification must still be there.
#[derive(Default)]
struct OutboxReader {
    known: HashSet<String>,
    found: HashMap<EventKey, u32>,
}

impl OutboxReader {
    fn refresh(&mut self, state: &Path) -> Result<(), String> {
        let store = Store::open_existing(state, Synchronous::Full).map_err(|e| e.to_string())?;
        let rows = store
            .outbox_list(&OutboxFilter::default())
            .map_err(|e| e.to_string())?;
        let ids: HashSet<&String> = rows.iter().map(|row| &row.id).collect();
        // A notification that vanished was acknowledged to nobody (no callback answers here).
        if let Some(lost) = self.known.iter().find(|id| !ids.contains(id)) {
            return Err(format!("notification {lost} disappeared from the outbox"));
        }
        let new: Vec<_> = rows
            .iter()
            .filter(|row| !self.known.contains(&row.id))
            .collect();
        for row in new {
            let body = store
                .outbox_body(&row.id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("notification {} has no body", row.id))?;
            let events = decode_body(&body)
                .map_err(|problem| format!("notification {}: {problem}", row.id))?;
            if events.len() != row.events as usize {
                return Err(format!(
                    "notification {} says {} events, its body has {}",
                    row.id,
                    row.events,
                    events.len()
                ));
            }
            if events.iter().any(|key| key.0 != row.instance) {
                return Err(format!("notification {} names another instance", row.id));
            }
            for key in events {
                *self.found.entry(key).or_default() += 1;
            }
            self.known.insert(row.id.clone());
        }
        Ok(())
    }

    fn notifications(&self) -> usize {
        self.known.len()
    }

    fn events(&self) -> u32 {
        self.found.values().sum()
    }
}

/// The events of one docs/events.md body, checking that it is whole: one resource, as many raw
/// records as events, each raw record the version its event names.
fn decode_body(body: &[u8]) -> Result<Vec<EventKey>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let message = &value["message"];
    let instance = message["instanceId"].as_str().ok_or("no instanceId")?;
    let events = message["events"].as_array().ok_or("no events array")?;
    if events.is_empty() {
        return Err("an empty notification".to_owned());
    }
    let mut keys = Vec::new();
    for event in events {
        let field = |name: &str| {
            event[name]
                .as_str()
                .map(str::to_owned)
                .ok_or(format!("an event without {name}: {event}"))
        };
        keys.push((
            instance.to_owned(),
            field("objectType")?,
            field("objectId")?,
            field("date")?,
        ));
    }
    let object_type = &keys[0].1;
    if keys.iter().any(|key| &key.1 != object_type) {
        return Err("events of two resources in one notification".to_owned());
    }
    let raw = message["raw"][object_type.as_str()]
        .as_array()
        .ok_or("no raw records")?;
    if raw.len() != keys.len() {
        return Err(format!(
            "{} events but {} raw records",
            keys.len(),
            raw.len()
        ));
    }
    for (key, record) in keys.iter().zip(raw) {
        let served = record["updated_at"].as_str().unwrap_or_default();
        if record["id"].as_str() != Some(key.2.as_str()) || served != key.3 {
            return Err(format!("raw record {record} is not the version of {key:?}"));
        }
    }
    Ok(keys)
}

/// Rows of unfinished polls. Right after a completed tick there must be none: a leftover would
/// be a poll that neither committed nor was discarded.
fn staging_rows(state: &Path) -> i64 {
    let conn = rusqlite::Connection::open(state).unwrap();
    conn.query_row(
        "SELECT (SELECT count(*) FROM poll) + (SELECT count(*) FROM staged_event)
              + (SELECT count(*) FROM staged_snapshot)",
        [],
        |row| row.get(0),
    )
    .unwrap()
}

// -------------------------------------------------------------------------------------------
// Running and killing ticks
// -------------------------------------------------------------------------------------------

/// Where to kill a tick.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// After this long: before the first page request (loading, opening the state).
    Early(Duration),
    /// Just after the n-th page request (1-based) reached a mock, plus a jitter.
    AtPage(u64, Duration),
    /// This long after the last page request reached its mock: the final commits and exit.
    AfterLastPage(Duration),
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Phase {
    BeforeFirstPage,
    Pages,
    AfterLastPage,
    Completed,
}

/// Timing of a completed tick, to aim the next kills.
#[derive(Clone, Copy, Debug)]
struct Timing {
    to_first_page: Duration,
    last_page_to_exit: Duration,
}

struct Rig {
    dir: util::Dir,
    feeds: Vec<Feed>,
    rng: Rng,
    seed: u64,
    timing: Timing,
}

impl Rig {
    fn state(&self) -> PathBuf {
        self.dir.join("state.db")
    }

    fn requests(&self) -> u64 {
        self.feeds
            .iter()
            .map(|feed| feed.mock.request_count())
            .sum()
    }

    fn pages_per_tick(&self) -> u64 {
        INSTANCES.len() as u64 * self.feeds.iter().map(Feed::pages_per_poll).sum::<u64>()
    }

    fn spawn_tick(&self) -> Child {
        self.dir
            .std_command()
            .args([
                "tick",
                "--all",
                "--instances",
                "instances.d",
                "--state",
                "state.db",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ocpoll tick")
    }

    /// Runs one tick, killing it as `kill` says (None: let it finish). Returns the phase the
    /// kill landed in and, for a tick that finished, its timing.
    fn tick(&self, kill: Option<Kill>) -> (Phase, Option<Timing>) {
        let pages = self.pages_per_tick();
        let before = self.requests();
        let started = Instant::now();
        let mut child = self.spawn_tick();
        let mut first_page = None;
        let mut last_page = None;
        let mut exited = None;
        let served = |rig: &Rig| rig.requests() - before;
        // Watch the mocks until the kill point (or the exit).
        loop {
            if let Some(status) = child.try_wait().expect("wait for ocpoll") {
                exited = Some(status);
                break;
            }
            let now = served(self);
            if now > 0 && first_page.is_none() {
                first_page = Some(started.elapsed());
            }
            if now >= pages && last_page.is_none() {
                last_page = Some(Instant::now());
            }
            let fire = match kill {
                None => false,
                Some(Kill::Early(delay)) => started.elapsed() >= delay,
                Some(Kill::AtPage(page, jitter)) => {
                    now >= page && {
                        std::thread::sleep(jitter);
                        true
                    }
                }
                Some(Kill::AfterLastPage(delay)) => {
                    last_page.is_some_and(|at: Instant| at.elapsed() >= delay)
                }
            };
            if fire {
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let served_at_kill = served(self);
        // SIGKILL; harmless when the tick has just exited by itself (it is not reaped yet).
        let _ = child.kill();
        let output = child.wait_with_output().expect("reap ocpoll");
        let status = exited.unwrap_or(output.status);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if status.code() == Some(0) {
            let timing = Timing {
                to_first_page: first_page.unwrap_or_default(),
                last_page_to_exit: last_page.map(|at| at.elapsed()).unwrap_or_default(),
            };
            return (Phase::Completed, Some(timing));
        }
        assert!(
            killed(status),
            "seed {}: tick ended with {status} instead of 0 or SIGKILL:\n{stderr}",
            self.seed
        );
        let phase = match served_at_kill {
            0 => Phase::BeforeFirstPage,
            n if n < pages => Phase::Pages,
            _ => Phase::AfterLastPage,
        };
        (phase, None)
    }

    /// A tick that must complete.
    fn complete_tick(&mut self) {
        let (phase, timing) = self.tick(None);
        assert_eq!(phase, Phase::Completed);
        if let Some(timing) = timing {
            self.timing = timing;
        }
    }

    /// A kill point spread over the phases of a tick, aimed with the last completed tick's
    /// timing (the ticks grow slowly as records are added).
    fn random_kill(&mut self) -> Kill {
        let pages = self.pages_per_tick();
        let fraction =
            |rng: &mut Rng, max: Duration| max.mul_f64(rng.below(1_001) as f64 / 1_000.0);
        match self.rng.below(10) {
            0..=1 => Kill::Early(fraction(&mut self.rng, self.timing.to_first_page)),
            2..=6 => {
                let page = 1 + self.rng.below(pages);
                Kill::AtPage(page, fraction(&mut self.rng, Duration::from_micros(500)))
            }
            _ => {
                // A little past the measured window too: the exit itself is a phase.
                let window = self.timing.last_page_to_exit.mul_f64(1.2);
                Kill::AfterLastPage(fraction(&mut self.rng, window))
            }
        }
    }
}

#[cfg(unix)]
fn killed(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(libc::SIGKILL)
}

/// xorshift64*: a seeded, dependency-free generator, so a failing history can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn seed() -> u64 {
    std::env::var("OCPOLL_CRASH_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            (nanos as u64) | 1
        })
}

// -------------------------------------------------------------------------------------------
// Setting up
// -------------------------------------------------------------------------------------------

/// A loopback port nothing listens on: connections are refused at once. Not a port bound and
/// released (another test's server may take it meanwhile and answer 404): port 1, below the
/// ephemeral range every test server binds in, which nothing on these machines serves.
fn closed_port() -> u16 {
    1
}

fn instance_file(name: &str, batch: usize, feeds: &[Feed], callback_port: u16) -> String {
    let dates = json!({
        "updatedDateField": "updated_at",
        "updatedDateFormat": DATE_FORMAT,
        "updatedDateTimezone": "GMT",
    });
    let macro_ = format!("${{gmtDate:{DATE_FORMAT}}}");
    let mut resources = serde_json::Map::new();
    for feed in feeds {
        let base = feed.mock.resource_url();
        let resource = match feed.resource {
            "contacts" => json!({
                "url": format!("{base}?where=updated_at>='{macro_}'&pageSize={PAGE_SIZE}"),
                "idField": "id",
                // Longer than the whole history: every poll re-reads every record, and the
                // seen pairs alone keep the old ones from becoming events again.
                "lookbackSeconds": 7200,
                "datesConfiguration": dates,
            }),
            "leads" => json!({
                "url": format!("{base}?where=updated_at>='{macro_}'"),
                "idField": "id",
                "lookbackSeconds": 7200,
                "pagination": {"type": "none"},
                "datesConfiguration": dates,
            }),
            _ => json!({
                "url": format!("{base}?updatedSince={macro_}"),
                "idField": "id",
                "datesConfiguration": dates,
            }),
        };
        resources.insert(feed.resource.to_owned(), resource);
    }
    serde_json::to_string_pretty(&json!({
        "element": {"key": "crashcrm"},
        "name": name,
        "configuration": {
            "event.notification.enabled": true,
            "event.notification.callback.url": format!("http://127.0.0.1:{callback_port}/hook"),
            "event.notification.batch.size": batch,
            "event.poller.refresh_seconds": 1,
            "event.poller.configuration": resources,
        }
    }))
    .unwrap()
}

fn start_feeds(runtime: &tokio::runtime::Runtime) -> Vec<Feed> {
    let contacts = runtime.block_on(
        MockProvider::builder()
            .resource_path("/hubs/crm/contacts")
            .paging(Paging::PageToken { page_size: 200 })
            .start(),
    );
    let accounts = runtime.block_on(
        MockProvider::builder()
            .resource_path("/hubs/crm/accounts")
            .since(SinceFilter::None)
            .paging(Paging::Link {
                page_size: PAGE_SIZE,
            })
            .start(),
    );
    let leads = runtime.block_on(
        MockProvider::builder()
            .resource_path("/hubs/crm/leads")
            .paging(Paging::None)
            .start(),
    );
    vec![
        Feed::new("contacts", contacts, PAGE_SIZE, 'c', 100),
        Feed::new("accounts", accounts, PAGE_SIZE, 'a', 80),
        Feed::new("leads", leads, usize::MAX, 'l', 60),
    ]
}

fn rig(runtime: &tokio::runtime::Runtime, seed: u64) -> Rig {
    let dir = util::Dir::new();
    let feeds = start_feeds(runtime);
    let port = closed_port();
    for (name, batch) in INSTANCES {
        dir.create(
            format!("instances.d/{name}.json"),
            &instance_file(name, batch, &feeds, port),
        );
    }
    Rig {
        dir,
        feeds,
        rng: Rng(seed),
        seed,
        timing: Timing {
            to_first_page: Duration::from_millis(20),
            last_page_to_exit: Duration::from_millis(10),
        },
    }
}

fn watermarks(state: &Path) -> HashMap<(String, String), Option<DateTime<Utc>>> {
    let store = Store::open_existing(state, Synchronous::Full).unwrap();
    store
        .statuses()
        .unwrap()
        .into_iter()
        .map(|row| ((row.key.instance, row.key.resource), row.state.watermark))
        .collect()
}

/// Every target's watermark is the newest date its provider served: a watermark behind it would
/// repeat events, one ahead of it would skip some.
fn assert_watermarks(rig: &Rig) {
    let watermarks = watermarks(&rig.state());
    for (instance, _) in INSTANCES {
        for feed in &rig.feeds {
            let key = (instance.to_owned(), feed.resource.to_owned());
            assert_eq!(
                watermarks.get(&key).copied().flatten(),
                Some(feed.newest()),
                "seed {}: watermark of {key:?}",
                rig.seed
            );
        }
    }
}

// -------------------------------------------------------------------------------------------
// The tests
// -------------------------------------------------------------------------------------------

#[test]
fn kill_9_at_any_point_of_a_tick_loses_and_duplicates_no_change() {
    let runtime = util::runtime();
    let seed = seed();
    eprintln!("OCPOLL_CRASH_SEED={seed}");
    let mut rig = rig(&runtime, seed);
    let state = rig.state();
    let mut expected = Expected::default();
    let mut outbox = OutboxReader::default();
    let mut phases: HashMap<String, usize> = HashMap::new();
    let check = |outbox: &mut OutboxReader, expected: &Expected, round: &str, complete: bool| {
        if let Err(problem) = outbox.refresh(&state) {
            panic!("seed {seed}, {round}: {problem}");
        }
        let found = problems(&outbox.found, expected, complete);
        assert!(
            found.is_empty(),
            "seed {seed}, {round}: {} problems, first ones:\n{}",
            found.len(),
            found[..found.len().min(20)].join("\n")
        );
    };

    // Baseline polls killed at random points, then one that completes: no events at all.
    for round in 0..BASELINE_ROUNDS {
        let kill = rig.random_kill();
        let (phase, _) = rig.tick(Some(kill));
        *phases.entry(format!("baseline {phase:?}")).or_default() += 1;
        if state.exists() {
            check(
                &mut outbox,
                &expected,
                &format!("baseline round {round}"),
                false,
            );
        }
    }
    rig.complete_tick();
    check(&mut outbox, &expected, "after the baseline", true);
    assert_eq!(outbox.notifications(), 0, "a baseline emitted events");
    assert_eq!(
        staging_rows(&state),
        0,
        "staging left after a completed tick"
    );
    assert_watermarks(&rig);
    // Two more complete ticks measure where the phases fall; still nothing to report.
    for _ in 0..2 {
        let started = Instant::now();
        rig.complete_tick();
        eprintln!(
            "a complete tick: {:.1?} ({} pages; {:?})",
            started.elapsed(),
            rig.pages_per_tick(),
            rig.timing
        );
    }
    assert_eq!(outbox.notifications(), 0);

    let started = Instant::now();
    let mut completed = 0;
    let rounds = std::env::var("OCPOLL_CRASH_ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(ROUNDS);
    for round in 0..rounds {
        let changes = rig.rng.below(3);
        for _ in 0..changes {
            let feed = rig.rng.below(rig.feeds.len() as u64) as usize;
            let version = rig.feeds[feed].change(&mut rig.rng);
            expected.allow(rig.feeds[feed].resource, &version);
        }
        let kill = (round % COMPLETE_EVERY != COMPLETE_EVERY - 1).then(|| rig.random_kill());
        let (phase, timing) = rig.tick(kill);
        *phases.entry(format!("{phase:?}")).or_default() += 1;
        let complete = phase == Phase::Completed;
        if complete {
            completed += 1;
            expected.tick_completed(&rig.feeds);
            assert_eq!(
                staging_rows(&state),
                0,
                "seed {seed}, round {round}: staging left"
            );
        }
        if let Some(timing) = timing {
            rig.timing = timing;
        }
        check(
            &mut outbox,
            &expected,
            &format!("round {round} ({kill:?})"),
            complete,
        );
    }
    let loop_time = started.elapsed();

    // Run to completion: every change must now be there, once.
    rig.complete_tick();
    expected.tick_completed(&rig.feeds);
    check(&mut outbox, &expected, "the final tick", true);
    // And a tick with nothing new adds nothing.
    let before = outbox.notifications();
    rig.complete_tick();
    check(&mut outbox, &expected, "a tick with no changes", true);
    assert_eq!(
        outbox.notifications(),
        before,
        "a tick without changes wrote notifications"
    );

    assert_eq!(staging_rows(&state), 0, "seed {seed}: staging left behind");
    assert_watermarks(&rig);
    let store = Store::open_existing(&state, Synchronous::Full).unwrap();
    assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
    // Every change of the history, for every instance, is there (required covers all of them
    // now, since the last tick completed while every final version was served).
    let changes = expected.allowed.len() / INSTANCES.len();
    assert!(
        changes > rounds / 2,
        "the history made only {changes} changes"
    );
    eprintln!(
        "{rounds} rounds in {loop_time:.1?} ({completed} ticks completed); \
         kills by phase: {phases:?}; {changes} changes, {} events in {} notifications",
        outbox.events(),
        outbox.notifications()
    );
    // The kills covered every phase (if not, the test proved less than it claims).
    for phase in [Phase::BeforeFirstPage, Phase::Pages, Phase::AfterLastPage] {
        assert!(
            phases.get(&format!("{phase:?}")).copied().unwrap_or(0) > 0,
            "no kill landed in {phase:?}: {phases:?}"
        );
    }
}

/// The checks above can fail: two commits that should be one, simulated on a real state, are
/// caught. A commit of the notifications without the watermark and seen pairs is replayed with
/// `ocpoll state reset --to` (the watermark goes back, the seen pairs go); a commit of the
/// watermark without the notifications by deleting the poll's notifications.
#[test]
fn the_checks_catch_a_poll_committed_in_two_halves() {
    let runtime = util::runtime();
    let mut rig = rig(&runtime, 42);
    let state = rig.state();
    let mut expected = Expected::default();
    rig.complete_tick();
    // Accounts: no lookback, so the rewind below re-reads only what came after it.
    let accounts = &mut rig.feeds[1];
    let before = accounts.newest();
    for _ in 0..5 {
        let version = accounts.change(&mut rig.rng);
        expected.allow(accounts.resource, &version);
    }
    rig.complete_tick();
    expected.tick_completed(&rig.feeds);
    let mut outbox = OutboxReader::default();
    outbox.refresh(&state).unwrap();
    assert_eq!(
        problems(&outbox.found, &expected, true),
        Vec::<String>::new()
    );

    // Half one: the notifications committed, the watermark did not. (One second past the old
    // watermark: `reset` also forgets the seen pairs, which the old record at the watermark
    // instant needs to stay quiet; a real half-commit would have kept them. With lookback,
    // forgetting them would re-emit the whole window, which is what a backfill means.)
    let rewound = before + TimeDelta::seconds(1);
    let reset = rig.dir.run([
        "state",
        "reset",
        "crash-a/accounts",
        "--state",
        "state.db",
        "--to",
        &rewound.to_rfc3339(),
        "--yes",
    ]);
    reset.assert_code(0);
    rig.complete_tick();
    outbox.refresh(&state).unwrap();
    let found = problems(&outbox.found, &expected, true);
    assert!(
        !found.is_empty() && found.iter().all(|p| p.starts_with("duplicated 2 times")),
        "{found:?}"
    );

    // Half two: the watermark moved, the notifications are gone.
    let conn = rusqlite::Connection::open(&state).unwrap();
    conn.execute("DELETE FROM outbox WHERE instance = 'crash-b'", [])
        .unwrap();
    let mut fresh = OutboxReader::default();
    fresh.refresh(&state).unwrap();
    let found = problems(&fresh.found, &expected, true);
    assert!(found.iter().any(|p| p.starts_with("missing")), "{found:?}");

    // And the incremental reader notices a notification that vanished.
    assert!(outbox.refresh(&state).is_err());
}
