//! The demo's sample contacts API, on loopback: an Open Connectors style `GET /contacts` with a
//! `where=updated_at>='DATE'` filter and page-token pagination (`pageSize`, `nextPage` in, the
//! `elements-next-page-token` header out). A background task creates or updates a contact every
//! [`CHANGE_EVERY`] and remembers when, so the receiver can show each event's latency.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a contact is created or updated.
pub const CHANGE_EVERY: Duration = Duration::from_millis(1500);
const NAMES: [&str; 8] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken",
];

#[derive(Clone, Debug)]
struct Contact {
    id: String,
    name: String,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

/// The records and when each (id, updated) change happened, shared with the receiver.
#[derive(Default)]
pub struct Records {
    contacts: Vec<Contact>,
    changed_at: HashMap<(String, String), Instant>,
}

impl Records {
    /// When the change the receiver got (`objectId`, event `date`) was made, if it was.
    pub fn changed_at(&self, id: &str, date: &str) -> Option<Instant> {
        let date = DateTime::parse_from_rfc3339(date).ok()?.with_timezone(&Utc);
        self.changed_at.get(&(id.to_owned(), render(date))).copied()
    }

    fn change(&mut self, step: usize) {
        let now = Utc::now();
        // Mostly new contacts at first, then a mix of updates.
        if self.contacts.len() < 3 || step.is_multiple_of(3) {
            let id = format!("{}", 1000 + self.contacts.len());
            let name = NAMES
                .get(self.contacts.len() % NAMES.len())
                .copied()
                .unwrap_or("Ada");
            self.contacts.push(Contact {
                id,
                name: name.to_owned(),
                created: now,
                updated: now,
            });
        } else if let Some(contact) = self.contacts.get_mut(step % 3) {
            contact.updated = now;
            contact.name = format!("{} ({step})", contact.name.split(' ').next().unwrap_or(""));
        }
        if let Some(contact) = self.contacts.iter().max_by_key(|c| c.updated) {
            let key = (contact.id.clone(), render(contact.updated));
            self.changed_at.insert(key, Instant::now());
        }
    }
}

pub type SharedRecords = Arc<Mutex<Records>>;

/// Starts the API on an ephemeral loopback port and the task that changes its records.
pub async fn start(records: SharedRecords) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/contacts", get(list))
        .with_state(Arc::clone(&records));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    tokio::spawn(async move {
        let mut step = 0;
        loop {
            tokio::time::sleep(CHANGE_EVERY).await;
            lock(&records).change(step);
            step += 1;
        }
    });
    Ok(addr)
}

/// The URL the instance file points at: the seeds' filter, with the demo's date format.
pub fn resource_url(addr: SocketAddr) -> String {
    format!("http://{addr}/contacts?where=updated_at>='${{date:yyyy-MM-dd'T'HH:mm:ss.SSSXXX}}'")
}

/// The record date format, for the instance's `datesConfiguration`.
pub const DATE_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX";

fn render(date: DateTime<Utc>) -> String {
    date.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn lock(records: &Mutex<Records>) -> std::sync::MutexGuard<'_, Records> {
    records
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn list(
    State(records): State<SharedRecords>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let since = match params.get("where").map(|filter| since_of(filter)) {
        Some(Some(since)) => since,
        Some(None) => return (StatusCode::BAD_REQUEST, "bad where filter").into_response(),
        None => DateTime::<Utc>::MIN_UTC,
    };
    let page_size: usize = params
        .get("pageSize")
        .and_then(|size| size.parse().ok())
        .unwrap_or(200)
        .clamp(1, 500);
    let offset: usize = params
        .get("nextPage")
        .and_then(|token| token.parse().ok())
        .unwrap_or(0);
    let mut matching: Vec<Contact> = lock(&records)
        .contacts
        .iter()
        .filter(|contact| contact.updated >= since)
        .cloned()
        .collect();
    matching.sort_by(|a, b| (a.updated, &a.id).cmp(&(b.updated, &b.id)));
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(page_size)
        .map(|c| {
            json!({"id": c.id, "name": c.name, "created_at": render(c.created),
                   "updated_at": render(c.updated)})
        })
        .collect();
    let mut headers = HeaderMap::new();
    if offset + page_size < matching.len()
        && let Ok(token) = HeaderValue::from_str(&(offset + page_size).to_string())
    {
        headers.insert("elements-next-page-token", token);
    }
    (headers, Json(page)).into_response()
}

/// The date of `updated_at>='DATE'`.
fn since_of(filter: &str) -> Option<DateTime<Utc>> {
    let (_, rest) = filter.split_once(">='")?;
    let date = rest.strip_suffix('\'')?;
    Some(DateTime::parse_from_rfc3339(date).ok()?.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_where_filter_reads_the_date() {
        let since = since_of("updated_at>='2026-11-25T12:00:00.000Z'").unwrap();
        assert_eq!(render(since), "2026-11-25T12:00:00.000Z");
        assert!(since_of("updated_at>='yesterday'").is_none());
        assert!(since_of("name='x'").is_none());
    }

    #[test]
    fn each_change_is_remembered_with_its_time() {
        let mut records = Records::default();
        for step in 0..6 {
            records.change(step);
        }
        assert_eq!(records.contacts.len(), 4);
        let newest = records.contacts.iter().max_by_key(|c| c.updated).unwrap();
        assert!(
            records
                .changed_at(&newest.id, &render(newest.updated))
                .is_some()
        );
        assert!(
            records
                .changed_at("nobody", "2026-11-25T12:00:00Z")
                .is_none()
        );
    }
}
