//! The soak's provider: one contacts resource per instance (`/i/<n>/contacts`), records that
//! change while it runs, and the failures real APIs have (5xx, 429 with `Retry-After`, slow
//! answers). It keeps every change it makes as the ground truth the receiver is checked against.
//!
//! Protocol: `where=updated_at>='<date>'` (Open Connectors' CEQL), `pageSize`, and the
//! Open Connectors page token (`nextPage=` in, `elements-next-page-token` out). The token is a
//! keyset (the last record's updated date and id), not an offset: a record updated mid-poll
//! moves to the end of the order, and an offset would then skip the record after it, a loss no
//! client could prevent. Records are sorted by (updated, id) and filtered on every request.
//!
//! Instances alternate two date formats: milliseconds, and whole seconds (where several
//! changes share one timestamp, also across polls, so the watermark's tie handling is used).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, TimeDelta, Utc};
use ocpoll::dates::{DateFormat, Zone};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub const MILLIS_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'";
pub const SECONDS_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss'Z'";
/// Records present before the soak: old enough that a baseline (an hour back) sees them and a
/// later poll (from the watermark, their date) is told apart from a baseline by its filter.
const INITIAL_RECORDS: usize = 5;
const INITIAL_AGE: TimeDelta = TimeDelta::minutes(10);
/// A record is updated again only after this long, so every version stays visible to at least
/// two polls at a one-minute interval (polling cannot see a version overwritten before a poll).
const QUIET_BEFORE_UPDATE: TimeDelta = TimeDelta::seconds(150);

/// How often each kind of trouble happens, per request.
#[derive(Clone, Copy)]
pub struct Chaos {
    pub server_error: f64,
    pub too_many_requests: f64,
    pub max_latency: Duration,
    /// The `Retry-After` of a 429: from the first to the second, in whole seconds.
    pub retry_after_seconds: (u64, u64),
}

/// One change the provider made: the record's instance, id and rendered updated date.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Change {
    pub instance: String,
    pub id: String,
    pub updated: String,
}

#[derive(Default, Clone, Copy)]
pub struct ProviderCounts {
    pub requests: u64,
    pub server_errors: u64,
    pub too_many_requests: u64,
    pub pages_served: u64,
}

struct Record {
    updated: DateTime<Utc>,
    version: u32,
}

#[derive(Default)]
struct Resource {
    records: HashMap<String, Record>,
    next_id: u64,
    /// Set when a request's filter shows the baseline was committed (see `note_filter`).
    past_baseline: bool,
}

struct Shared {
    chaos: Mutex<Option<Chaos>>,
    resources: Vec<Mutex<Resource>>,
    baseline_before: DateTime<Utc>,
    changes: Mutex<Vec<Change>>,
    changing: AtomicBool,
    requests: AtomicU64,
    server_errors: AtomicU64,
    too_many_requests: AtomicU64,
    pages_served: AtomicU64,
}

pub struct ChaosProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl ChaosProvider {
    pub async fn start(instances: usize, chaos: Chaos) -> ChaosProvider {
        let now = Utc::now();
        let resources = (0..instances)
            .map(|n| {
                let mut resource = Resource::default();
                for _ in 0..INITIAL_RECORDS {
                    let id = resource.new_id(n);
                    let updated = truncate(now - INITIAL_AGE, n);
                    resource.records.insert(
                        id,
                        Record {
                            updated,
                            version: 0,
                        },
                    );
                }
                Mutex::new(resource)
            })
            .collect();
        let shared = Arc::new(Shared {
            chaos: Mutex::new(Some(chaos)),
            resources,
            // A baseline filters from an hour before ocpoll's clock; a later poll from the
            // watermark, at least INITIAL_AGE ago. Halfway between tells them apart.
            baseline_before: now - TimeDelta::minutes(35),
            changes: Mutex::new(Vec::new()),
            changing: AtomicBool::new(true),
            requests: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            too_many_requests: AtomicU64::new(0),
            pages_served: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/i/{n}/contacts", get(serve_page))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ChaosProvider { addr, shared }
    }

    /// The resource URL of instance `n`, without its query.
    pub fn resource_url(&self, n: usize) -> String {
        format!("http://{}/i/{n}/contacts", self.addr)
    }

    /// Runs until [`ChaosProvider::stop_changes`]: every `tick`, each instance whose baseline
    /// is committed makes a burst of 1 to 4 changes (one timestamp) with probability `chance`.
    pub async fn change_records(self: Arc<Self>, tick: Duration, chance: f64) {
        let mut interval = tokio::time::interval(tick);
        while self.shared.changing.load(Ordering::SeqCst) {
            interval.tick().await;
            for n in 0..self.shared.resources.len() {
                if rand::random::<f64>() < chance {
                    self.burst(n);
                }
            }
        }
    }

    fn burst(&self, n: usize) {
        let Some(slot) = self.shared.resources.get(n) else {
            return;
        };
        let mut resource = lock(slot);
        if !resource.past_baseline || !self.shared.changing.load(Ordering::SeqCst) {
            return;
        }
        let updated = truncate(Utc::now(), n);
        let mut made = Vec::new();
        for _ in 0..rand::random_range(1..=4) {
            let eligible: Vec<String> = resource
                .records
                .iter()
                .filter(|(_, record)| updated - record.updated >= QUIET_BEFORE_UPDATE)
                .map(|(id, _)| id.clone())
                .collect();
            let pick = (!eligible.is_empty() && rand::random::<bool>())
                .then(|| eligible.get(rand::random_range(0..eligible.len())).cloned())
                .flatten();
            let id = pick.unwrap_or_else(|| resource.new_id(n));
            let record = resource.records.entry(id.clone()).or_insert(Record {
                updated,
                version: 0,
            });
            record.updated = updated;
            record.version += 1;
            made.push(Change {
                instance: instance_name(n),
                id,
                updated: format_for(n).format(updated, &Zone::utc()),
            });
        }
        // Recorded while the resource is locked: no poll can see a change not yet recorded.
        lock(&self.shared.changes).extend(made);
    }

    pub fn stop_changes(&self) {
        self.shared.changing.store(false, Ordering::SeqCst);
        // Taking every lock waits out a burst in progress.
        for resource in &self.shared.resources {
            drop(lock(resource));
        }
    }

    /// Answers every request at once and correctly from now on.
    pub fn calm(&self) {
        *lock(&self.shared.chaos) = None;
    }

    pub fn changes(&self) -> Vec<Change> {
        lock(&self.shared.changes).clone()
    }

    /// How many instances have had a poll after their baseline.
    pub fn past_baseline(&self) -> usize {
        self.shared
            .resources
            .iter()
            .filter(|resource| lock(resource).past_baseline)
            .count()
    }

    pub fn counts(&self) -> ProviderCounts {
        let load = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
        ProviderCounts {
            requests: load(&self.shared.requests),
            server_errors: load(&self.shared.server_errors),
            too_many_requests: load(&self.shared.too_many_requests),
            pages_served: load(&self.shared.pages_served),
        }
    }
}

impl Resource {
    fn new_id(&mut self, n: usize) -> String {
        self.next_id += 1;
        format!("{n}-{}", self.next_id)
    }
}

pub fn instance_name(n: usize) -> String {
    format!("soak-{n:03}")
}

/// The updated-date format of instance `n`: milliseconds for even, whole seconds for odd.
pub fn format_spec(n: usize) -> &'static str {
    if n.is_multiple_of(2) {
        MILLIS_FORMAT
    } else {
        SECONDS_FORMAT
    }
}

fn format_for(n: usize) -> DateFormat {
    DateFormat::new(format_spec(n)).expect("a valid date format")
}

/// `instant` at the precision instance `n` renders, so the stored date is the rendered one.
fn truncate(instant: DateTime<Utc>, n: usize) -> DateTime<Utc> {
    let millis = instant.timestamp_millis();
    let millis = if n.is_multiple_of(2) {
        millis
    } else {
        millis - millis.rem_euclid(1000)
    };
    DateTime::from_timestamp_millis(millis).unwrap_or(instant)
}

async fn serve_page(
    State(shared): State<Arc<Shared>>,
    Path(n): Path<usize>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let Some(slot) = shared.resources.get(n) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let since = query.get("where").and_then(|filter| since_of(filter, n));
    let Some(since) = since else {
        return (
            StatusCode::BAD_REQUEST,
            "where=updated_at>='<date>' expected",
        )
            .into_response();
    };
    if since > shared.baseline_before {
        lock(slot).past_baseline = true;
    }
    let chaos = *lock(&shared.chaos);
    if let Some(chaos) = chaos {
        let latency = rand::random_range(0..=chaos.max_latency.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(latency)).await;
        let roll = rand::random::<f64>();
        if roll < chaos.server_error {
            shared.server_errors.fetch_add(1, Ordering::SeqCst);
            let code = [500, 502, 503][rand::random_range(0..3)];
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, "chaos").into_response();
        }
        if roll < chaos.server_error + chaos.too_many_requests {
            shared.too_many_requests.fetch_add(1, Ordering::SeqCst);
            let (least, most) = chaos.retry_after_seconds;
            let wait = rand::random_range(least..=most);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, wait.to_string())],
                "slow down",
            )
                .into_response();
        }
    }
    let page_size = query
        .get("pageSize")
        .and_then(|size| size.parse().ok())
        .unwrap_or(200usize)
        .max(1);
    let after = query.get("nextPage").and_then(|token| parse_token(token));
    let (body, next) = render_page(&lock(slot), n, since, after, page_size);
    shared.pages_served.fetch_add(1, Ordering::SeqCst);
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some(token) = next.and_then(|token| HeaderValue::from_str(&token).ok()) {
        response
            .headers_mut()
            .insert("elements-next-page-token", token);
    }
    response
}

/// The records of one page, and the token of the next when there are more.
fn render_page(
    resource: &Resource,
    n: usize,
    since: DateTime<Utc>,
    after: Option<(DateTime<Utc>, String)>,
    page_size: usize,
) -> (String, Option<String>) {
    let in_order: BTreeMap<(DateTime<Utc>, &str), &Record> = resource
        .records
        .iter()
        .filter(|(_, record)| record.updated >= since)
        .map(|(id, record)| ((record.updated, id.as_str()), record))
        .collect();
    let start = after.as_ref().map(|(at, id)| (*at, id.as_str()));
    let mut page = Vec::new();
    let mut rest = in_order
        .iter()
        .filter(|(key, _)| start.is_none_or(|start| **key > start));
    let format = format_for(n);
    let mut last = None;
    for ((updated, id), record) in rest.by_ref().take(page_size) {
        page.push(serde_json::json!({
            "id": id,
            "name": format!("contact {id} v{}", record.version),
            "version": record.version,
            "updated_at": format.format(*updated, &Zone::utc()),
        }));
        last = Some((*updated, *id));
    }
    let next = last
        .filter(|_| rest.next().is_some())
        .map(|(updated, id)| format!("{}_{id}", updated.timestamp_millis()));
    (serde_json::Value::Array(page).to_string(), next)
}

fn parse_token(token: &str) -> Option<(DateTime<Utc>, String)> {
    let (millis, id) = token.split_once('_')?;
    Some((
        DateTime::from_timestamp_millis(millis.parse().ok()?)?,
        id.to_owned(),
    ))
}

/// The date of `updated_at>='<date>'`, in instance `n`'s format.
fn since_of(filter: &str, n: usize) -> Option<DateTime<Utc>> {
    let date = filter.strip_prefix("updated_at>='")?.strip_suffix('\'')?;
    format_for(n).parse(date, &Zone::utc()).ok()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
