//! A provider for the 200,000-record benchmarks: pages rendered once, served by index with
//! Open Connectors' page-token protocol (`nextPage=<token>` in, `elements-next-page-token`
//! out). The shared mock provider renders and sorts every record on every request, which would
//! time the mock rather than ocpoll.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The path the pages are served at.
pub const PATH: &str = "/bulk/contacts";

pub struct BulkServer {
    addr: SocketAddr,
    state: Arc<BulkState>,
}

struct BulkState {
    pages: Vec<bytes::Bytes>,
    /// Until set, every request gets `[]` (the baseline tick sees no records).
    visible: AtomicBool,
    requests: AtomicU64,
}

impl BulkServer {
    pub async fn start(pages: Vec<bytes::Bytes>) -> BulkServer {
        let state = Arc::new(BulkState {
            pages,
            visible: AtomicBool::new(false),
            requests: AtomicU64::new(0),
        });
        let app = Router::new()
            .route(PATH, get(bulk_page))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        BulkServer { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on the pages are served.
    pub fn show_records(&self) {
        self.state.visible.store(true, Ordering::SeqCst);
    }

    /// Page requests answered with records.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }
}

async fn bulk_page(
    State(state): State<Arc<BulkState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if !state.visible.load(Ordering::SeqCst) {
        return json_page(bytes::Bytes::from_static(b"[]"), None);
    }
    state.requests.fetch_add(1, Ordering::SeqCst);
    let index = params
        .get("nextPage")
        .and_then(|token| token.strip_prefix("p"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let Some(page) = state.pages.get(index) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let next = (index + 1 < state.pages.len()).then(|| format!("p{}", index + 1));
    json_page(page.clone(), next)
}

fn json_page(body: bytes::Bytes, next_token: Option<String>) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(token) = next_token.and_then(|t| HeaderValue::from_str(&t).ok()) {
        headers.insert("elements-next-page-token", token);
    }
    response
}
