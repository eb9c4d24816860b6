//! A loopback server that records every request it gets (method, path and query, headers,
//! body) and answers with a closure: a provider that echoes what it was sent, a host a
//! credential must never reach, a redirector.
//!
//! ```ignore
//! let other = Recorder::start("127.0.0.2", |_| json_answer(200, "[]")).await;
//! // ... ocpoll runs ...
//! assert!(other.requests().is_empty());
//! ```

#![allow(dead_code)] // Each test file uses a different part of it.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// One request as the recorder saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Recorded {
    /// The value of header `name`, if it came.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }
}

type Answer = dyn Fn(&Recorded) -> Response + Send + Sync;

struct Shared {
    answer: Box<Answer>,
    seen: Mutex<Vec<Recorded>>,
}

pub struct Recorder {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Recorder {
    /// Listens on `ip` (a loopback address: 127.0.0.2 stands in for another host) at a free
    /// port, answering every request with `answer`.
    pub async fn start(
        ip: &str,
        answer: impl Fn(&Recorded) -> Response + Send + Sync + 'static,
    ) -> Recorder {
        let shared = Arc::new(Shared {
            answer: Box::new(answer),
            seen: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind the recorder");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Recorder { addr, shared }
    }

    /// `http://IP:PORT`, the origin of everything it serves.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

async fn record(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, 1 << 20).await.unwrap_or_default();
    let seen = Recorded {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(String::new, ToString::to_string),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let response = (shared.answer)(&seen);
    shared
        .seen
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(seen);
    response
}

/// A response with `status`, a JSON content type and `body`.
pub fn json_answer(status: u16, body: &str) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("a status"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .expect("a response")
}

/// A redirect with `status` to `location`.
pub fn redirect(status: u16, location: &str) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("a status"))
        .header(header::LOCATION, location)
        .body(Body::empty())
        .expect("a response")
}
