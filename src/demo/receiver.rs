//! The demo's callback receiver, on loopback: verifies both signatures of each notification
//! (Open Connectors' `Elements-Webhook-Signature` and Standard Webhooks' `webhook-signature`,
//! recomputed with the demo's key), answers 200, and prints each event with its latency from
//! the change on the sample API. A receiver of your own does the same checks (README).

use super::sample_api::SharedRecords;
use crate::instance::Secret;
use crate::outbox::sign;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Router, routing::post};
use serde_json::Value;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// What the receiver has seen so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    pub notifications: u64,
    pub events: u64,
    /// Notifications whose two signatures both matched.
    pub verified: u64,
    pub rejected: u64,
    /// Notifications seen again (a retry after a lost answer): counted once.
    pub duplicates: u64,
}

pub struct Receiver {
    pub key: String,
    pub records: SharedRecords,
    pub totals: Mutex<Totals>,
    seen: Mutex<HashSet<String>>,
}

impl Receiver {
    pub fn new(key: &str, records: SharedRecords) -> Arc<Receiver> {
        Arc::new(Receiver {
            key: key.to_owned(),
            records,
            totals: Mutex::new(Totals::default()),
            seen: Mutex::new(HashSet::new()),
        })
    }

    pub fn totals(&self) -> Totals {
        lock(&self.totals).clone()
    }

    /// Checks one notification; `Ok` holds the lines to print.
    fn receive(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<String>, String> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let key = Secret::new(self.key.clone());
        let id = header("webhook-id").ok_or("no webhook-id")?;
        let elements = header("elements-webhook-signature").ok_or("no elements signature")?;
        if elements != sign::elements_signature(&key, body) {
            return Err("Elements-Webhook-Signature does not match".to_owned());
        }
        let timestamp: i64 = header("webhook-timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or("no webhook-timestamp")?;
        let expected = sign::standard_webhooks_signature(&[key], id, timestamp, body)
            .map_err(|error| error.to_string())?;
        if header("webhook-signature") != Some(expected.as_str()) {
            return Err("webhook-signature does not match".to_owned());
        }
        let message: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let events = message["message"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let first_time = lock(&self.seen).insert(id.to_owned());
        let mut totals = lock(&self.totals);
        totals.notifications += 1;
        totals.verified += 1;
        if !first_time {
            totals.duplicates += 1;
            return Ok(Vec::new());
        }
        totals.events += events.len() as u64;
        drop(totals);
        Ok(events.iter().map(|event| self.describe(event)).collect())
    }

    /// `CREATED  contacts 1003  latency 1.2s  (both signatures verified)`
    fn describe(&self, event: &Value) -> String {
        let text = |name: &str| event[name].as_str().unwrap_or("?").to_owned();
        let (kind, object, id, date) = (
            text("eventType"),
            text("objectType"),
            text("objectId"),
            text("date"),
        );
        let latency = lock(&self.records)
            .changed_at(&id, &date)
            .map(|at| format!("{:.1}s", at.elapsed().as_secs_f64()))
            .unwrap_or_else(|| "?".to_owned());
        format!("{kind:<8} {object} {id:<6} latency {latency:>5}  signatures verified")
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the receiver at `http://ADDR/hook`; each verified event is handed to `print`.
pub async fn start(
    receiver: Arc<Receiver>,
    print: Arc<dyn Fn(&str) + Send + Sync>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route(
            "/hook",
            post(
                move |State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes| {
                    let print = Arc::clone(&print);
                    async move {
                        match receiver.receive(&headers, &body) {
                            Ok(lines) => {
                                for line in lines {
                                    print(&line);
                                }
                                StatusCode::OK
                            }
                            Err(reason) => {
                                lock(&receiver.totals).rejected += 1;
                                print(&format!("REJECTED {reason}"));
                                StatusCode::UNAUTHORIZED
                            }
                        }
                    }
                },
            ),
        )
        .with_state(receiver);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}
