//! The soak's callback receiver: verifies both signatures of every notification (with the mock
//! receiver's verifiers, which are checked against docs/events.md's test vector), fails some on
//! purpose (5xx, or no answer within ocpoll's delivery timeout), and records what it
//! acknowledged: only a 2xx answer acknowledges, so only those count as delivered.

use crate::mock_receiver::{verify_elements, verify_standard};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How often each kind of trouble happens, per request.
#[derive(Clone, Copy)]
pub struct Chaos {
    pub server_error: f64,
    /// Answers only after `stall_for` (longer than ocpoll's delivery timeout), with a 503.
    pub stall: f64,
    pub stall_for: Duration,
}

/// One acknowledged record change: instance, objectId, the raw record's updated date.
pub type Acked = (String, String, String);

#[derive(Default, Clone)]
pub struct Tally {
    pub requests: u64,
    pub failed_on_purpose: u64,
    pub stalled_on_purpose: u64,
    /// Signatures that did not verify, stale timestamps, or bodies not shaped as docs/events.md says.
    pub rejected: u64,
    /// 2xx answers, and the events they carried (repeats included).
    pub notifications: u64,
    pub events: u64,
    /// Every change acknowledged, with the eventId that first carried it.
    pub acked: HashMap<Acked, String>,
    pub event_ids: HashSet<String>,
    /// 2xx answers to an eventId that was already acknowledged.
    pub repeated_deliveries: u64,
    /// New eventIds carrying a change an earlier eventId already delivered, and such events.
    pub repeated_change_ids: HashSet<String>,
    pub repeated_change_events: u64,
}

struct Shared {
    keys: Vec<String>,
    chaos: Mutex<Option<Chaos>>,
    tally: Mutex<Tally>,
}

pub struct ChaosReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl ChaosReceiver {
    pub async fn start(key: &str, chaos: Chaos) -> ChaosReceiver {
        let shared = Arc::new(Shared {
            keys: vec![key.to_owned()],
            chaos: Mutex::new(Some(chaos)),
            tally: Mutex::new(Tally::default()),
        });
        let app = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ChaosReceiver { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Acknowledges every valid notification from now on.
    pub fn calm(&self) {
        *lock(&self.shared.chaos) = None;
    }

    pub fn tally(&self) -> Tally {
        lock(&self.shared.tally).clone()
    }

    /// Whether every one of `changes` was acknowledged (cheaper than a whole tally).
    pub fn has_all<'a>(&self, mut changes: impl Iterator<Item = &'a Acked>) -> bool {
        let tally = lock(&self.shared.tally);
        changes.all(|change| tally.acked.contains_key(change))
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    lock(&shared.tally).requests += 1;
    let Some(notification) = verified(&shared.keys, &headers, &body) else {
        lock(&shared.tally).rejected += 1;
        // Not a 4xx: that would dead-letter it. The soak reports rejections; it must be 0.
        return (StatusCode::SERVICE_UNAVAILABLE, "rejected").into_response();
    };
    let chaos = *lock(&shared.chaos);
    if let Some(chaos) = chaos {
        let roll = rand::random::<f64>();
        if roll < chaos.server_error {
            lock(&shared.tally).failed_on_purpose += 1;
            return (StatusCode::INTERNAL_SERVER_ERROR, "chaos").into_response();
        }
        if roll < chaos.server_error + chaos.stall {
            lock(&shared.tally).stalled_on_purpose += 1;
            tokio::time::sleep(chaos.stall_for).await;
            return (StatusCode::SERVICE_UNAVAILABLE, "too late").into_response();
        }
    }
    lock(&shared.tally).acknowledge(notification);
    StatusCode::NO_CONTENT.into_response()
}

/// What one notification carries.
struct Notification {
    event_id: String,
    changes: Vec<Acked>,
}

impl Tally {
    fn acknowledge(&mut self, notification: Notification) {
        self.notifications += 1;
        self.events += notification.changes.len() as u64;
        if !self.event_ids.insert(notification.event_id.clone()) {
            self.repeated_deliveries += 1;
            return;
        }
        for change in notification.changes {
            match self.acked.get(&change) {
                Some(first) if *first != notification.event_id => {
                    self.repeated_change_ids
                        .insert(notification.event_id.clone());
                    self.repeated_change_events += 1;
                }
                Some(_) => {}
                None => {
                    self.acked.insert(change, notification.event_id.clone());
                }
            }
        }
    }
}

/// The notification, when both signatures verify, the Standard Webhooks timestamp is within
/// five minutes, and each event has its raw record (same position, same id).
fn verified(keys: &[String], headers: &HeaderMap, body: &[u8]) -> Option<Notification> {
    if verify_elements(keys, headers, body) != Some(true)
        || verify_standard(keys, headers, body) != Some(true)
    {
        return None;
    }
    let timestamp: i64 = headers
        .get("webhook-timestamp")?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    if (chrono::Utc::now().timestamp() - timestamp).abs() > 300 {
        return None;
    }
    let value: Value = serde_json::from_slice(body).ok()?;
    let message = value.get("message")?;
    let instance = message.get("instanceId")?.as_str()?;
    let events = message.get("events")?.as_array()?;
    let raw = message.get("raw")?.get("contacts")?.as_array()?;
    if events.len() != raw.len() {
        return None;
    }
    let mut changes = Vec::with_capacity(events.len());
    for (event, record) in events.iter().zip(raw) {
        let id = event.get("objectId")?.as_str()?;
        if record.get("id")?.as_str()? != id {
            return None;
        }
        let updated = record.get("updated_at")?.as_str()?;
        changes.push((instance.to_owned(), id.to_owned(), updated.to_owned()));
    }
    Some(Notification {
        event_id: message.get("eventId")?.as_str()?.to_owned(),
        changes,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
