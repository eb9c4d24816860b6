//! A mock callback receiver on loopback: records every request's headers and body, verifies
//! both signatures (docs/events.md) by recomputing the HMACs itself, and answers per request number.
//!
//! ```ignore
//! let receiver = MockReceiver::start(&["abcd1234efgh5678"]).await;
//! receiver.reply_on(1, Reply::Status(503));   // the first POST fails, later ones get 200
//! let url = receiver.url();                    // the callback URL for an instance file
//! ```
//!
//! Request numbers count every request from 1. The receiver never uses ocpoll's signing code:
//! it re-derives the signatures from the configured keys, like a real receiver would.

#![allow(dead_code)] // Each test file uses a different part of it.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{StreamExt, stream};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// This status, with a short text body (200 by default).
    Status(u16),
    /// 503 with `Retry-After: <seconds>`.
    RetryAfter(u64),
    /// 301 to this Location.
    Redirect(String),
    /// Waits, then answers 200 (slower than ocpoll's timeout means ocpoll gave up first).
    Slow(Duration),
    /// 200 and a body that breaks off: the connection closes mid-body.
    BrokenBody,
    /// Never answers and never closes the connection.
    Never,
    /// Drops the connection without answering (the handler panics, which aborts it).
    Hangup,
    /// 200 with a large JSON body ocpoll does not care about.
    ChattyOk,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub number: u64,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `Elements-Webhook-Signature` matched the first key (None: no header sent).
    pub elements_valid: Option<bool>,
    /// Every `v1,` signature of `webhook-signature` matched its key (None: no header sent).
    pub standard_valid: Option<bool>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub fn event_id(&self) -> String {
        self.json()["message"]["eventId"]
            .as_str()
            .expect("message.eventId")
            .to_owned()
    }
}

#[derive(Default)]
struct Live {
    replies: HashMap<u64, Reply>,
    default: Option<Reply>,
    received: Vec<Received>,
}

struct Shared {
    keys: Vec<String>,
    live: Mutex<Live>,
    requests: AtomicU64,
    /// Requests being answered right now, and the most there ever were at once.
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, Live> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running receiver. It stops with the test's runtime.
pub struct MockReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockReceiver {
    /// Starts a receiver that verifies with `keys` (the instance's configured strings).
    pub async fn start(keys: &[&str]) -> MockReceiver {
        let shared = Arc::new(Shared {
            keys: keys.iter().map(|key| (*key).to_owned()).collect(),
            live: Mutex::new(Live::default()),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        });
        let app = Router::new().fallback(receive).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockReceiver { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn reply_on(&self, request_number: u64, reply: Reply) {
        self.shared.live().replies.insert(request_number, reply);
    }

    /// The reply for every request without its own (200 when never set).
    pub fn reply_by_default(&self, reply: Reply) {
        self.shared.live().default = Some(reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.live().received.clone()
    }

    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The most requests this receiver was answering at the same moment.
    pub fn max_in_flight(&self) -> u64 {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let now_in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared
        .max_in_flight
        .fetch_max(now_in_flight, Ordering::SeqCst);
    let response = record_and_answer(&shared, headers, body).await;
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn record_and_answer(shared: &Shared, headers: HeaderMap, body: Bytes) -> Response {
    let number = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let received = Received {
        number,
        elements_valid: verify_elements(&shared.keys, &headers, &body),
        standard_valid: verify_standard(&shared.keys, &headers, &body),
        headers,
        body,
    };
    let reply = {
        let mut live = shared.live();
        live.received.push(received);
        live.replies
            .remove(&number)
            .or_else(|| live.default.clone())
            .unwrap_or(Reply::Status(200))
    };
    answer(reply).await
}

async fn answer(reply: Reply) -> Response {
    match reply {
        Reply::Status(code) => {
            let status = StatusCode::from_u16(code).expect("a status code");
            (status, format!("mock receiver says {code}")).into_response()
        }
        Reply::RetryAfter(seconds) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, seconds.to_string())],
            "busy",
        )
            .into_response(),
        Reply::Redirect(location) => (
            StatusCode::MOVED_PERMANENTLY,
            [(header::LOCATION, location)],
            "moved",
        )
            .into_response(),
        Reply::Slow(wait) => {
            tokio::time::sleep(wait).await;
            (StatusCode::OK, "ok, eventually").into_response()
        }
        Reply::BrokenBody => {
            // The pause lets the status line and first chunk leave before the break.
            let chunks = stream::iter([true, false]).then(|first| async move {
                if first {
                    Ok(Bytes::from_static(b"{\"received\":"))
                } else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err(std::io::Error::other("receiver crashed mid-body"))
                }
            });
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_LENGTH, "1000")
                .body(Body::from_stream(chunks))
                .expect("a response")
        }
        Reply::Never => std::future::pending().await,
        Reply::Hangup => panic!("mock receiver hangs up (aborts the connection on purpose)"),
        Reply::ChattyOk => {
            let body = serde_json::json!({"status": "thanks", "padding": "x".repeat(100_000)});
            (StatusCode::OK, body.to_string()).into_response()
        }
    }
}

fn hmac_base64(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    BASE64.encode(mac.finalize().into_bytes())
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// `sha256=<base64 HMAC of the body>` with the first key's UTF-8 bytes.
pub fn verify_elements(keys: &[String], headers: &HeaderMap, body: &[u8]) -> Option<bool> {
    let sent = header_text(headers, "elements-webhook-signature")?;
    let key = keys.first()?;
    let expected = format!("sha256={}", hmac_base64(key.as_bytes(), &[body]));
    Some(sent == expected)
}

/// One `v1,<sig>` per key, in order, over `id.timestamp.body`; `whsec_` keys are base64.
pub fn verify_standard(keys: &[String], headers: &HeaderMap, body: &[u8]) -> Option<bool> {
    let sent = header_text(headers, "webhook-signature")?;
    let (Some(id), Some(timestamp)) = (
        header_text(headers, "webhook-id"),
        header_text(headers, "webhook-timestamp"),
    ) else {
        return Some(false);
    };
    let expected: Vec<String> = keys
        .iter()
        .map(|key| {
            let key_bytes = match key.strip_prefix("whsec_") {
                Some(encoded) => BASE64.decode(encoded).expect("whsec key"),
                None => key.as_bytes().to_vec(),
            };
            let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
            format!("v1,{}", hmac_base64(&key_bytes, &signed))
        })
        .collect();
    Some(sent.split(' ').collect::<Vec<_>>() == expected)
}

/// The receiver's own check against docs/events.md's test vector, so the verifier above is known to
/// compute what the contract says (and not merely what ocpoll computes).
pub fn verify_events_md_vector() {
    const BODY: &str = r#"{"message":{"eventId":"01JDQ3Z8W6B0S5V8M4K2N7P9QX","instanceId":"salesloft-prod","elementKey":"salesloft","instanceTags":["crm"],"eventDate":"2026-11-25T13:00:05.123Z","events":[{"eventType":"UPDATED","objectType":"contacts","objectId":"4711","elementKey":"salesloft","date":"2026-11-25T12:59:58.123456Z"}],"raw":{"contacts":[{"id":4711,"first_name":"Ada","updated_at":"2026-11-25T12:59:58.123456+00:00","created_at":"2026-01-02T03:04:05.000000+00:00"}]}}}"#;
    let mut headers = HeaderMap::new();
    headers.insert(
        "elements-webhook-signature",
        "sha256=3MXata7aNIbTkbrz4VStIZXe+Vugh9HSHE1ohBDGQ/M="
            .parse()
            .unwrap(),
    );
    headers.insert("webhook-id", "01JDQ3Z8W6B0S5V8M4K2N7P9QX".parse().unwrap());
    headers.insert("webhook-timestamp", "1795957205".parse().unwrap());
    headers.insert(
        "webhook-signature",
        "v1,p16VeBP2+nJ5+atMf1RSFUHwbyaOIJ8ARzPGsMIlGQk="
            .parse()
            .unwrap(),
    );
    let plain = ["abcd1234efgh5678".to_owned()];
    assert_eq!(
        verify_elements(&plain, &headers, BODY.as_bytes()),
        Some(true)
    );
    assert_eq!(
        verify_standard(&plain, &headers, BODY.as_bytes()),
        Some(true)
    );
    headers.insert(
        "webhook-signature",
        "v1,ocD0DNCYxVpf4+4hvawnMcPBjeVYKwXRT0WTIEQ93qY="
            .parse()
            .unwrap(),
    );
    let whsec = ["whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned()];
    assert_eq!(
        verify_standard(&whsec, &headers, BODY.as_bytes()),
        Some(true)
    );
    assert_eq!(
        verify_standard(&plain, &headers, BODY.as_bytes()),
        Some(false)
    );
}
