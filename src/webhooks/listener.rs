//! The HTTP edge of webhooks instances (`ocpoll run --listen ADDR`, docs/operations.md#webhooks):
//! `POST /webhooks/INSTANCE/TOKEN`, on the same stack as the metrics endpoints (axum on hyper),
//! served connection by connection so that hyper's header read timeout applies.
//!
//! A request is checked in this order, each step answering before the next reads more:
//! 1. instance and token (404, the same answer for an unknown instance, a wrong token or any
//!    other path: no oracle);
//! 2. method (405) and content type (415; any type when `webhook.invalid.body` is `raw`);
//! 3. the instance's rate (429 with `Retry-After`);
//! 4. size: a `Content-Length` above `[listen] max_body_bytes` is 413 before the body is read,
//!    and a body that grows past it is cut off at the limit (413);
//! 5. time: headers must arrive within `header_timeout_seconds` (hyper closes the connection),
//!    the body within `body_timeout_seconds` (408);
//! 6. [`super::receive`]: signature (401, logged without the body), body (400 with the reason);
//! 7. the writer's durable commit, awaited at most `commit_timeout_seconds`: 200 only after it,
//!    503 (with `Retry-After`) when the state did not take it, never 2xx.
//!
//! Neither the token nor the body is ever logged: log lines name the instance and the result.

use super::rate::{Bucket, retry_after_seconds};
use super::token::{Tokens, compare_nothing};
use super::writer::{CommitError, Writer};
use super::{Rejection, Request};
use crate::daemon::catalog::Catalog;
use crate::daemon::shutdown::Shutdown;
use crate::instance::{Instance, InvalidBody, Webhook};
use crate::metrics::Metrics;
use crate::state::{ReceiptOutcome, Store};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::Utc;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

/// `[listen]`: where and within which bounds webhooks are received.
#[derive(Clone, Debug)]
pub struct ListenSettings {
    pub addr: SocketAddr,
    pub max_body_bytes: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub commit_timeout: Duration,
    pub max_connections: usize,
}

/// How old the token cache may get before a request re-reads it from the state: a token made
/// or rotated by `ocpoll webhooks url` works, and a revoked one stops, within this; any
/// traffic, a flood of wrong tokens included, costs at most one small read per interval.
const TOKEN_RELOAD: Duration = Duration::from_millis(250);

#[derive(Debug, Error)]
pub enum ListenError {
    #[error("cannot listen for webhooks on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("webhooks: {0}")]
    State(#[from] crate::state::StateError),
    #[error("webhooks: cannot start the receipts' writer: {0}")]
    Writer(std::io::Error),
}

/// What a receipt's result is called in metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Duplicate,
    BadSignature,
    Unknown,
    TooLarge,
    RateLimited,
    BadRequest,
    Unsupported,
    Timeout,
    Unavailable,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::BadSignature => "bad_signature",
            Outcome::Unknown => "unknown",
            Outcome::TooLarge => "too_large",
            Outcome::RateLimited => "rate_limited",
            Outcome::BadRequest => "bad_request",
            Outcome::Unsupported => "unsupported",
            Outcome::Timeout => "timeout",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// The tokens of every instance, re-read from the state when one is not found.
struct TokenCache {
    store: Mutex<Store>,
    tokens: RwLock<(Instant, HashMap<String, Tokens>)>,
}

impl TokenCache {
    /// Whether `given` is `instance`'s token now. The cache is re-read when it is older than
    /// [`TOKEN_RELOAD`], so a rotation's new token works and a token out of its grace stops
    /// working within that time, whatever the traffic.
    fn accepts(&self, instance: &str, given: &str) -> bool {
        let stale = self
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .elapsed()
            >= TOKEN_RELOAD;
        if stale {
            self.reload();
        }
        let cached = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        match cached.1.get(instance) {
            Some(tokens) => tokens.accepts(given, Utc::now()),
            None => compare_nothing(given),
        }
    }

    fn reload(&self) {
        let read = Store::locked(&self.store).webhook_tokens();
        let mut cached = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        cached.0 = Instant::now();
        match read {
            Ok(rows) => {
                cached.1 = rows
                    .into_iter()
                    .map(|(name, stored)| {
                        let tokens = Tokens {
                            current: stored.current,
                            previous: stored.previous,
                        };
                        (name, tokens)
                    })
                    .collect();
            }
            Err(error) => tracing::warn!(%error, "cannot read the webhook tokens"),
        }
    }
}

/// What the handlers share.
struct Receiving {
    catalog: watch::Receiver<Arc<Catalog>>,
    tokens: TokenCache,
    writer: Writer,
    buckets: Mutex<HashMap<String, Bucket>>,
    metrics: Option<Arc<Metrics>>,
    settings: ListenSettings,
}

impl Receiving {
    fn count(&self, instance: &str, outcome: Outcome) {
        if let Some(metrics) = &self.metrics {
            metrics.webhook_receipt(instance, outcome.as_str());
        }
    }
}

/// The running listener.
pub struct Listener {
    task: JoinHandle<()>,
}

/// Everything the listener needs from the daemon.
pub struct ListenerParts {
    pub settings: ListenSettings,
    /// The daemon's store: the writer commits through it.
    pub store: Arc<Mutex<Store>>,
    /// A connection of the listener's own, for reading tokens.
    pub token_store: Store,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    pub wake: Arc<tokio::sync::Notify>,
    pub metrics: Option<Arc<Metrics>>,
}

impl Listener {
    /// Binds the address and serves until `shutdown`; connections in flight then finish their
    /// request (its commit and answer) and close.
    pub async fn start(parts: ListenerParts, shutdown: Shutdown) -> Result<Listener, ListenError> {
        let addr = parts.settings.addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ListenError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ListenError::Bind { addr, source })?;
        let writer = Writer::start(parts.store, parts.wake).map_err(ListenError::Writer)?;
        let tokens = TokenCache {
            store: Mutex::new(parts.token_store),
            tokens: RwLock::new((Instant::now(), HashMap::new())),
        };
        tokens.reload();
        let receiving = Arc::new(Receiving {
            catalog: parts.catalog,
            tokens,
            writer,
            buckets: Mutex::new(HashMap::new()),
            metrics: parts.metrics,
            settings: parts.settings,
        });
        let router = Router::new()
            .route("/webhooks/{instance}/{token}", any(receive))
            .fallback(unknown)
            .with_state(Arc::clone(&receiving));
        let task = tokio::spawn(accept_loop(listener, router, receiving, shutdown));
        tracing::info!(address = %local_addr, "receiving webhooks at /webhooks/INSTANCE/TOKEN");
        Ok(Listener { task })
    }

    /// Waits for the listener to stop (after the shutdown signal), at most `grace`.
    pub async fn stopped(self, grace: Duration) {
        let abort = self.task.abort_handle();
        if tokio::time::timeout(grace, self.task).await.is_err() {
            abort.abort();
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    receiving: Arc<Receiving>,
    mut shutdown: Shutdown,
) {
    let connections = Arc::new(Semaphore::new(receiving.settings.max_connections.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        // At the connection limit, new ones wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => permit,
            _ = shutdown.wait() => break,
        };
        let Ok(permit) = permit else { break };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and the like: wait a little rather than spin.
                    tracing::warn!(%error, "webhooks: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let header_timeout = receiving.settings.header_timeout;
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.wait() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        // Reap finished connections so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// The one answer for every path, instance or token that is not a receiving URL.
fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn unknown(State(receiving): State<Arc<Receiving>>) -> Response {
    receiving.count("", Outcome::Unknown);
    not_found()
}

async fn receive(
    State(receiving): State<Arc<Receiving>>,
    path: Result<Path<(String, String)>, PathRejection>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(Path((name, token))) = path else {
        return unknown(State(receiving)).await;
    };
    let instance = receiving.catalog.borrow().webhook_instance(&name);
    let accepted = match &instance {
        Some(_) => receiving.tokens.accepts(&name, &token),
        None => compare_nothing(&token),
    };
    // Unknown receipts carry no instance label: the name in the URL is anyone's choice.
    let Some(instance) = instance.filter(|_| accepted) else {
        receiving.count("", Outcome::Unknown);
        return not_found();
    };
    let (outcome, response) = handle(&receiving, &instance, method, &headers, body).await;
    receiving.count(&instance.name, outcome);
    response
}

async fn handle(
    receiving: &Receiving,
    instance: &Instance,
    method: Method,
    headers: &HeaderMap,
    body: Body,
) -> (Outcome, Response) {
    let webhook = instance
        .webhook
        .as_ref()
        .expect("webhook_instance returns webhooks instances only");
    if method != Method::POST {
        let mut response = (StatusCode::METHOD_NOT_ALLOWED, "only POST\n").into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return (Outcome::Unsupported, response);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if webhook.invalid_body == InvalidBody::Reject && !is_json(content_type) {
        let response = (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send application/json\n",
        );
        return (Outcome::Unsupported, response.into_response());
    }
    if let Err(wait) = take_token(receiving, instance, webhook) {
        let seconds = retry_after_seconds(wait);
        let mut response = (StatusCode::TOO_MANY_REQUESTS, "rate limited\n").into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return (Outcome::RateLimited, response);
    }
    let body = match read_body(receiving, headers, body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let received = {
        let header_of = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let request = Request {
            header: &header_of,
            content_type,
            body: &body,
            received_at: Utc::now(),
        };
        // Not held across an await: the request borrows a `dyn Fn`, which is not `Send`.
        super::receive(instance, webhook, &request, rand::random)
    };
    let receipt = match received {
        Ok(receipt) => receipt,
        Err(Rejection::BadSignature(reason)) => {
            tracing::warn!(instance = %instance.name, %reason, "webhook refused: bad signature");
            let response = (StatusCode::UNAUTHORIZED, "bad signature\n").into_response();
            return (Outcome::BadSignature, response);
        }
        Err(Rejection::BadBody(reason)) => {
            tracing::warn!(instance = %instance.name, %reason, "webhook refused: bad body");
            let response = (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response();
            return (Outcome::BadRequest, response);
        }
    };
    let events: u32 = receipt.notifications.iter().map(|n| n.events).sum();
    commit(receiving, instance, receipt, events).await
}

async fn commit(
    receiving: &Receiving,
    instance: &Instance,
    receipt: crate::state::ReceiptWrite,
    events: u32,
) -> (Outcome, Response) {
    let committed = tokio::time::timeout(
        receiving.settings.commit_timeout,
        receiving.writer.commit(receipt),
    )
    .await;
    match committed {
        Ok(Ok(ReceiptOutcome::Enqueued)) => {
            tracing::debug!(instance = %instance.name, events, "webhook accepted");
            let response = (StatusCode::OK, format!("accepted {events} events\n"));
            (Outcome::Accepted, response.into_response())
        }
        Ok(Ok(ReceiptOutcome::Duplicate)) => {
            tracing::info!(instance = %instance.name, "webhook already received; not enqueued again");
            (
                Outcome::Duplicate,
                (StatusCode::OK, "duplicate\n").into_response(),
            )
        }
        Ok(Err(error)) => unavailable(instance, &error.to_string()),
        Err(_) => unavailable(
            instance,
            &CommitError::State(format!(
                "no commit within {} s",
                receiving.settings.commit_timeout.as_secs_f64()
            ))
            .to_string(),
        ),
    }
}

/// 503: the provider retries; if the commit lands later, the retry is a duplicate.
fn unavailable(instance: &Instance, reason: &str) -> (Outcome, Response) {
    tracing::error!(instance = %instance.name, %reason, "webhook not committed; answered 503");
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        "the state is unavailable; retry later\n",
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    (Outcome::Unavailable, response)
}

fn take_token(
    receiving: &Receiving,
    instance: &Instance,
    webhook: &Webhook,
) -> Result<(), Duration> {
    let now = Instant::now();
    let mut buckets = receiving.buckets.lock().unwrap_or_else(|p| p.into_inner());
    buckets
        .entry(instance.name.clone())
        .or_insert_with(|| Bucket::new(webhook.rate_per_minute, now))
        .take(webhook.rate_per_minute, now)
}

/// The body, within the size and time limits.
async fn read_body(
    receiving: &Receiving,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, (Outcome, Response)> {
    let max = receiving.settings.max_body_bytes;
    let too_large = || {
        let mut response = (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {max} bytes\n"),
        )
            .into_response();
        // The rest of the body is not read, so the connection cannot carry another request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        (Outcome::TooLarge, response)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return Err(too_large());
    }
    let read = async {
        let mut body = body;
        let mut bytes = Vec::with_capacity(declared.map_or(8 * 1024, |n| n as usize));
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Err(None);
            };
            if let Some(data) = frame.data_ref() {
                if bytes.len() + data.len() > max {
                    return Err(Some(()));
                }
                bytes.extend_from_slice(data);
            }
        }
        Ok(bytes)
    };
    match tokio::time::timeout(receiving.settings.body_timeout, read).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(Some(()))) => Err(too_large()),
        Ok(Err(None)) => Err((
            Outcome::BadRequest,
            (StatusCode::BAD_REQUEST, "the body could not be read\n").into_response(),
        )),
        Err(_) => {
            let mut response = (
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time\n",
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err((Outcome::Timeout, response))
        }
    }
}

/// `application/json`, or any `+json` type (`application/vnd.api+json`), parameters allowed.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/vnd.github+json"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
    }
}
