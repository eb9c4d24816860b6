//! One provider GET with everything around it: the shared reqwest client (one per process, plus
//! one per extra CA file), authentication, `http.headers`, timeouts, retries and the page-size
//! limit, and the outbound policy (`[http] allow`/`deny`, see [`super::egress`]): the URL, the
//! OAuth token URL and every redirect hop are checked before they are requested, and names are
//! resolved through the policy's resolver. Whether a failure is worth another try is decided in one place, [`classify_status`] and
//! [`classify_transport`]; how long to wait is [`RetryPolicy::backoff`] or the provider's
//! `Retry-After`.
//!
//! Errors never carry credentials: header values are not printed, transport errors drop the
//! URL (an instance URL may carry an API key in its query), and a provider's error body, which
//! may echo the request's headers, is masked with the session's secrets
//! ([`AuthSession::mask`]) before its excerpt enters a [`FetchError`].
//!
//! Credentials and `http.headers` go only to the origin (scheme, host, port) of the URL asked
//! for, or to an origin the instance lists in `http.allowed.origins`. Redirects are therefore
//! followed here, by hand, rather than by reqwest: reqwest's redirect policy can only follow,
//! stop or fail a hop, not change its headers, and on a hop to another host it removes
//! `Authorization` and cookies but keeps an API-key header and every custom header, and adds a
//! `Referer` with the previous URL (query secrets included). Here each hop is checked against
//! the outbound policy, carries the credentials only when its origin may have them, and no
//! request ever has a `Referer`. The OAuth token endpoint is never redirected
//! ([`AuthError::TokenRedirect`](super::AuthError::TokenRedirect)).

use crate::http::auth::{AuthError, AuthSession};
use crate::http::egress::{self, Blocked, Egress, GuardedResolver, SystemResolver};
use crate::http::transport::{TransportFailure, TransportKind};
use crate::instance::HttpOptions;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Response, StatusCode};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use thiserror::Error;
use url::Url;

/// How hard one GET tries. Tests shrink the backoff to milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`[poll] retries`, default 3).
    pub retries: u32,
    /// The first backoff's ceiling; each retry doubles it, up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// The longest `Retry-After` honoured within a poll (default 5 minutes); a longer one fails
    /// the poll with [`FetchError::RetryAfterTooLong`] so the scheduler can wait instead.
    pub max_retry_after: Duration,
    /// The most body bytes one page may have, after decompression (`[http] max_page_bytes`,
    /// default 64 MiB); a larger page fails at once, without a retry.
    pub max_page_bytes: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(5 * 60),
            max_page_bytes: 64 * 1024 * 1024,
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter: a random wait between zero and
    /// `backoff_initial * 2^retry`, capped at `backoff_max`. Full jitter spreads out the polls of
    /// many instances that failed together against the same provider.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .backoff_initial
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.backoff_max);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=ceiling_ms))
    }
}

/// Whether redirects are followed: yes for provider GETs, never for callbacks (docs/design.md#the-outbox-and-delivery).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redirects {
    Follow,
    Never,
}

/// One page as the provider sent it.
#[derive(Clone, Debug)]
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The provider's clock (`Date` header), for the baseline watermark.
    pub date: Option<DateTime<Utc>>,
    /// The retries it took to get this page, for logs and the poll summary.
    pub retries: Vec<RetryNote>,
}

/// One retry: why, and how long ocpoll waited before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryNote {
    pub cause: RetryCause,
    pub waited: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryCause {
    /// 429, 503 or another 5xx; `retry_after` when the provider set the wait.
    Status {
        status: u16,
        retry_after: bool,
    },
    Timeout,
    Connection,
    /// The connection broke while the body was being read.
    Body,
    /// The token endpoint failed transiently.
    TokenEndpoint,
    /// A 401 that an OAuth refresh answered (not counted against `retries`).
    TokenRefreshed,
}

impl fmt::Display for RetryCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryCause::Status {
                status,
                retry_after: true,
            } => write!(f, "HTTP {status} with Retry-After"),
            RetryCause::Status { status, .. } => write!(f, "HTTP {status}"),
            RetryCause::Timeout => f.write_str("timeout"),
            RetryCause::Connection => f.write_str("connection failed"),
            RetryCause::Body => f.write_str("connection broke while reading the body"),
            RetryCause::TokenEndpoint => f.write_str("OAuth token endpoint failed"),
            RetryCause::TokenRefreshed => f.write_str("401, OAuth token refreshed"),
        }
    }
}

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("HTTP {status}{}", excerpt_suffix(.excerpt))]
    Status { status: u16, excerpt: String },
    #[error(
        "the provider asked to wait until {until} (Retry-After), longer than ocpoll waits within a poll"
    )]
    RetryAfterTooLong { until: DateTime<Utc> },
    #[error("the response is larger than {limit} bytes ([http] max_page_bytes); stopped reading")]
    TooLarge { limit: usize },
    #[error("{0}")]
    Blocked(Blocked),
    /// Below HTTP: `failure` says what and where in a few words.
    #[error("{failure}{}", attempts_suffix(*.attempts))]
    Transport {
        cause: RetryCause,
        attempts: u32,
        failure: TransportFailure,
    },
    #[error("cannot use `http.ca.file` {}: {reason}", .path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error(
        "`http.headers`: {name:?} is not a valid header name, or its value has control characters"
    )]
    InvalidHeader { name: String },
    #[error("authentication: {0}")]
    Auth(#[from] AuthError),
    #[error("cannot build the HTTP client: {reason}")]
    Setup { reason: String },
    #[error("redirect: {reason}")]
    Redirect { reason: String },
}

impl FetchError {
    fn after_attempts(self, attempts: u32) -> FetchError {
        match self {
            FetchError::Transport { cause, failure, .. } => FetchError::Transport {
                cause,
                attempts,
                failure,
            },
            other => other,
        }
    }
}

fn attempts_suffix(attempts: u32) -> String {
    if attempts > 1 {
        format!(" ({attempts} attempts)")
    } else {
        String::new()
    }
}

fn excerpt_suffix(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(": {excerpt}")
    }
}

/// The process's HTTP clients: one shared client, plus one per extra CA file (reqwest fixes
/// the trusted roots when a client is built). Cheap to share behind an `Arc`.
pub struct HttpClient {
    default: Client,
    redirects: Redirects,
    egress: Arc<Egress>,
    resolver: Arc<GuardedResolver>,
    with_extra_roots: Mutex<HashMap<PathBuf, Client>>,
}

impl HttpClient {
    /// A client under the default outbound policy (link-local and metadata addresses denied).
    pub fn new(redirects: Redirects) -> Result<HttpClient, FetchError> {
        HttpClient::with_egress(redirects, Arc::new(Egress::default()))
    }

    /// A client under `egress` (`Config::http.egress()`), resolving names with the system.
    pub fn with_egress(
        redirects: Redirects,
        egress: Arc<Egress>,
    ) -> Result<HttpClient, FetchError> {
        HttpClient::with_resolver(redirects, egress, Arc::new(SystemResolver))
    }

    /// A client under `egress` that resolves names with `resolver` (tests map names to
    /// addresses without DNS); the policy filters what `resolver` answers.
    pub fn with_resolver(
        redirects: Redirects,
        egress: Arc<Egress>,
        resolver: Arc<dyn reqwest::dns::Resolve>,
    ) -> Result<HttpClient, FetchError> {
        let resolver = Arc::new(GuardedResolver::new(Arc::clone(&egress), resolver));
        Ok(HttpClient {
            default: build_client(&resolver, Vec::new())?,
            redirects,
            egress,
            resolver,
            with_extra_roots: Mutex::new(HashMap::new()),
        })
    }

    /// Checks the hosts a GET will start with, before anything is sent: the page's URL and
    /// the OAuth token URL. IP literals are judged here (no resolver sees them); names are
    /// judged again by the resolver, on their addresses.
    fn check_destinations(&self, url: &Url, session: &AuthSession) -> Result<(), FetchError> {
        self.egress.check_url(url).map_err(FetchError::Blocked)?;
        if let Some(token_url) = session.token_url() {
            self.egress
                .check_url(token_url)
                .map_err(FetchError::Blocked)?;
        }
        Ok(())
    }

    /// GETs one page: authenticates, retries what is worth retrying, and reads the body up to
    /// the policy's limit. A non-2xx answer left after the retries is [`FetchError::Status`].
    pub async fn get(
        &self,
        url: &Url,
        session: &AuthSession,
        http: &HttpOptions,
        retry: &RetryPolicy,
    ) -> Result<Page, FetchError> {
        self.get_observed(url, session, http, retry, &mut |_| {})
            .await
    }

    /// [`HttpClient::get`], telling `on_status` the status of every response it gets, those
    /// it retries included (a poll's report carries them to the metrics).
    pub async fn get_observed(
        &self,
        url: &Url,
        session: &AuthSession,
        http: &HttpOptions,
        retry: &RetryPolicy,
        on_status: &mut (dyn FnMut(u16) + Send),
    ) -> Result<Page, FetchError> {
        self.check_destinations(url, session)?;
        let client = self.client_for(http.ca_file.as_deref())?;
        let extra_headers = extra_headers(http)?;
        let mut notes = Vec::new();
        let mut retries_left = retry.retries;
        let mut refreshed_after_401 = false;
        loop {
            let request = Request {
                client: &client,
                url,
                session,
                http,
                extra_headers: &extra_headers,
                egress: &self.egress,
                follow: self.redirects == Redirects::Follow,
            };
            let attempt = attempt(request, retry, on_status).await;
            let (cause, wait) = match attempt {
                Attempt::Done(mut page) => {
                    page.retries = notes;
                    return Ok(page);
                }
                Attempt::Unauthorized {
                    generation,
                    excerpt,
                } => {
                    if refreshed_after_401 || !session.refreshes_on_unauthorized() {
                        return Err(FetchError::Status {
                            status: 401,
                            excerpt,
                        });
                    }
                    refreshed_after_401 = true;
                    session
                        .refresh_after_unauthorized(&client, http.timeout, generation)
                        .await?;
                    notes.push(RetryNote {
                        cause: RetryCause::TokenRefreshed,
                        waited: Duration::ZERO,
                    });
                    continue;
                }
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry {
                    cause,
                    retry_after,
                    error,
                } => {
                    if retries_left == 0 {
                        return Err(error.after_attempts(retry.retries + 1));
                    }
                    let attempt_number = retry.retries - retries_left;
                    let wait = retry_after.unwrap_or_else(|| retry.backoff(attempt_number));
                    (cause, wait)
                }
            };
            retries_left -= 1;
            tokio::time::sleep(wait).await;
            notes.push(RetryNote {
                cause,
                waited: wait,
            });
        }
    }

    /// The client for a request to an OAuth token endpoint outside a poll (`ocpoll auth`):
    /// the outbound policy is checked on `token_url` first; like every client here it
    /// follows no redirect.
    pub fn token_client(&self, token_url: &Url, http: &HttpOptions) -> Result<Client, FetchError> {
        self.egress
            .check_url(token_url)
            .map_err(FetchError::Blocked)?;
        self.client_for(http.ca_file.as_deref())
    }

    fn client_for(&self, ca_file: Option<&Path>) -> Result<Client, FetchError> {
        let Some(path) = ca_file else {
            return Ok(self.default.clone());
        };
        let mut clients = self
            .with_extra_roots
            .lock()
            .map_err(|_| FetchError::Setup {
                reason: "client cache poisoned".into(),
            })?;
        if let Some(client) = clients.get(path) {
            return Ok(client.clone());
        }
        let ca_error = |reason: String| FetchError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|error| ca_error(error.to_string()))?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|error| ca_error(error.to_string()))?;
        if roots.is_empty() {
            return Err(ca_error("no PEM certificate in it".into()));
        }
        let client = build_client(&self.resolver, roots)?;
        clients.insert(path.to_owned(), client.clone());
        Ok(client)
    }
}

/// A reqwest client that follows no redirect (provider GETs follow them by hand, see the
/// module's documentation; the token endpoint never) and never sends a `Referer`.
fn build_client(
    resolver: &Arc<GuardedResolver>,
    extra_roots: Vec<reqwest::Certificate>,
) -> Result<Client, FetchError> {
    super::crypto::install_provider();
    Client::builder()
        .user_agent(concat!("ocpoll/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .dns_resolver(Arc::clone(resolver))
        .tls_certs_merge(extra_roots)
        .build()
        .map_err(|error| FetchError::Setup {
            reason: error.to_string(),
        })
}

/// `http.headers` as a header map, checked once per GET rather than per attempt.
fn extra_headers(http: &HttpOptions) -> Result<HeaderMap, FetchError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &http.headers {
        let invalid = || FetchError::InvalidHeader { name: name.clone() };
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let mut header_value = HeaderValue::from_str(value.expose()).map_err(|_| invalid())?;
        header_value.set_sensitive(true);
        headers.insert(header_name, header_value);
    }
    Ok(headers)
}

/// What one attempt came to.
enum Attempt {
    Done(Page),
    Unauthorized {
        generation: u64,
        excerpt: String,
    },
    Retry {
        cause: RetryCause,
        /// The provider's `Retry-After`, already checked against the policy's maximum.
        retry_after: Option<Duration>,
        /// What to report if no retry is left.
        error: FetchError,
    },
    Fail(FetchError),
}

/// One request as [`attempt`] sends it.
#[derive(Clone, Copy)]
struct Request<'a> {
    client: &'a Client,
    url: &'a Url,
    session: &'a AuthSession,
    http: &'a HttpOptions,
    extra_headers: &'a HeaderMap,
    egress: &'a Egress,
    /// Follow redirects (provider GETs) or answer with the 3xx.
    follow: bool,
}

/// The most redirects one request follows.
const MAX_REDIRECTS: usize = 10;

/// Sends the GET, following redirects when the request does: each hop is checked against the
/// outbound policy before it is requested, and carries the credentials and `http.headers`
/// only when its origin may have them ([`carries_credentials`]).
async fn send(request: Request<'_>) -> Result<Response, Attempt> {
    let Request {
        client,
        url,
        session,
        http,
        extra_headers,
        egress,
        follow,
    } = request;
    let mut current = url.clone();
    let mut hops = 0;
    loop {
        let mut builder = client.get(current.clone()).timeout(http.timeout);
        if carries_credentials(url, &current, http) {
            builder = session.apply(builder.headers(extra_headers.clone()));
        }
        let response = builder
            .send()
            .await
            .map_err(|error| classify_transport(&error, &current))?;
        let status = response.status().as_u16();
        if !follow || !matches!(status, 301 | 302 | 303 | 307 | 308) {
            return Ok(response);
        }
        let Some(location) = response.headers().get(reqwest::header::LOCATION) else {
            return Ok(response);
        };
        if hops == MAX_REDIRECTS {
            return Err(Attempt::Fail(FetchError::Redirect {
                reason: format!("more than {MAX_REDIRECTS} redirects in a row"),
            }));
        }
        let next = location
            .to_str()
            .ok()
            .and_then(|location| current.join(location).ok())
            .filter(|next| matches!(next.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Attempt::Fail(FetchError::Redirect {
                    reason: format!("HTTP {status} whose Location is not an http(s) URL"),
                })
            })?;
        egress
            .check_url(&next)
            .map_err(|blocked| Attempt::Fail(FetchError::Blocked(blocked)))?;
        current = next;
        hops += 1;
    }
}

/// Credentials and `http.headers` go to the origin of the URL asked for (a page's URL, which
/// pagination keeps on the resource's origin or an allowed one) and to the origins of
/// `http.allowed.origins`; a redirect anywhere else is followed without them.
fn carries_credentials(asked: &Url, target: &Url, http: &HttpOptions) -> bool {
    let origin = target.origin();
    origin == asked.origin() || http.allowed_origins.contains(&origin)
}

async fn attempt(
    request: Request<'_>,
    retry: &RetryPolicy,
    on_status: &mut (dyn FnMut(u16) + Send),
) -> Attempt {
    let Request {
        client,
        session,
        http,
        ..
    } = request;
    if let Err(error) = session.prepare(client, http.timeout).await {
        return if error.is_transient() {
            Attempt::Retry {
                cause: RetryCause::TokenEndpoint,
                retry_after: None,
                error: error.into(),
            }
        } else {
            Attempt::Fail(error.into())
        };
    }
    let generation = session.token_generation();
    let response = match send(request).await {
        Ok(response) => response,
        Err(attempt) => return attempt,
    };
    let status = response.status();
    on_status(status.as_u16());
    if status.is_success() {
        return match read_page(response, retry.max_page_bytes).await {
            Ok(page) => Attempt::Done(page),
            Err(ReadError::TooLarge) => Attempt::Fail(FetchError::TooLarge {
                limit: retry.max_page_bytes,
            }),
            Err(ReadError::Transport(error)) => classify_transport(&error, request.url),
        };
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    // The one place a provider's error body enters an error: masked here, for every path.
    let excerpt = session.mask(&read_excerpt(response).await);
    if status == StatusCode::UNAUTHORIZED {
        return Attempt::Unauthorized {
            generation,
            excerpt,
        };
    }
    classify_status(
        status,
        retry_after.as_deref(),
        excerpt,
        SystemTime::now(),
        retry,
    )
}

/// Decides what a non-2xx status means: 429 and 503 wait as the provider says, other 5xx back
/// off, everything else fails at once.
fn classify_status(
    status: StatusCode,
    retry_after: Option<&str>,
    excerpt: String,
    now: SystemTime,
    retry: &RetryPolicy,
) -> Attempt {
    let error = FetchError::Status {
        status: status.as_u16(),
        excerpt,
    };
    let honours_retry_after =
        status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE;
    if !honours_retry_after && !status.is_server_error() {
        return Attempt::Fail(error);
    }
    let wait = match retry_after.filter(|_| honours_retry_after) {
        Some(header) => match super::retry_after::until(header, now) {
            Some(until) => {
                let wait = until.duration_since(now).unwrap_or(Duration::ZERO);
                if wait > retry.max_retry_after {
                    return Attempt::Fail(FetchError::RetryAfterTooLong {
                        until: until.into(),
                    });
                }
                Some(wait)
            }
            // An unreadable Retry-After is treated as absent.
            None => None,
        },
        None => None,
    };
    Attempt::Retry {
        cause: RetryCause::Status {
            status: status.as_u16(),
            retry_after: wait.is_some(),
        },
        retry_after: wait,
        error,
    }
}

/// Timeouts, refused or reset connections and broken bodies are retried; a name that does not
/// resolve, a failed TLS handshake and anything else (a URL reqwest cannot send) fail at once
/// ([`TransportKind::is_retried`]).
fn classify_transport(error: &reqwest::Error, url: &Url) -> Attempt {
    // Refused by the outbound policy (a name that resolved to a denied address, a redirect to
    // one): a configuration decision, not worth a retry.
    if let Some(blocked) = egress::find_blocked(error) {
        return Attempt::Fail(FetchError::Blocked(blocked.clone()));
    }
    let failure = TransportFailure::of(error, Some(url));
    let cause = match failure.kind {
        TransportKind::Timeout => RetryCause::Timeout,
        _ if error.is_body() || error.is_decode() => RetryCause::Body,
        _ => RetryCause::Connection,
    };
    let retried = failure.kind.is_retried()
        && (error.is_timeout()
            || error.is_connect()
            || error.is_body()
            || error.is_decode()
            // Sending failed after connecting (the server closed the connection).
            || error.is_request());
    let error = FetchError::Transport {
        cause: cause.clone(),
        attempts: 1,
        failure,
    };
    if !retried {
        return Attempt::Fail(error);
    }
    Attempt::Retry {
        error,
        cause,
        retry_after: None,
    }
}

enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads the body chunk by chunk and stops as soon as it passes `limit`: an endless body costs
/// `limit` bytes and no more.
async fn read_page(mut response: Response, limit: usize) -> Result<Page, ReadError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(ReadError::TooLarge);
    }
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let date = headers
        .get(reqwest::header::DATE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| httpdate::parse_http_date(text).ok())
        .map(DateTime::<Utc>::from);
    Ok(Page {
        status,
        headers,
        body: body.freeze(),
        date,
        retries: Vec::new(),
    })
}

/// The first ~200 characters of an error body, control characters removed, for the message.
async fn read_excerpt(mut response: Response) -> String {
    const EXCERPT_BYTES: usize = 1024;
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    excerpt(&bytes)
}

/// A printable excerpt of a body: lossy UTF-8, control characters dropped, whitespace runs
/// collapsed, at most 200 characters.
pub fn excerpt(bytes: &[u8]) -> String {
    const EXCERPT_CHARS: usize = 200;
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for word in text.split_whitespace() {
        let clean: String = word.chars().filter(|c| !c.is_control()).collect();
        if clean.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&clean);
        if out.chars().count() >= EXCERPT_CHARS {
            let mut cut: String = out.chars().take(EXCERPT_CHARS).collect();
            cut.push('…');
            return cut;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn status_429_waits_as_told_and_fails_past_the_maximum() {
        let now = at(1_784_000_000);
        let retry = policy();
        match classify_status(
            StatusCode::TOO_MANY_REQUESTS,
            Some("7"),
            String::new(),
            now,
            &retry,
        ) {
            Attempt::Retry { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            _ => panic!("429 should be retried"),
        }
        match classify_status(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("301"),
            String::new(),
            now,
            &retry,
        ) {
            Attempt::Fail(FetchError::RetryAfterTooLong { until }) => {
                assert_eq!(until, DateTime::<Utc>::from(at(1_784_000_301)))
            }
            _ => panic!("a Retry-After past 5 minutes fails the poll"),
        }
    }

    #[test]
    fn retry_after_is_ignored_on_500_and_a_date_in_the_past_waits_zero() {
        let now = at(1_784_000_000);
        let retry = policy();
        match classify_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("9999"),
            String::new(),
            now,
            &retry,
        ) {
            Attempt::Retry { retry_after, .. } => assert_eq!(retry_after, None),
            _ => panic!("500 should be retried"),
        }
        match classify_status(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            String::new(),
            now,
            &retry,
        ) {
            Attempt::Retry { retry_after, .. } => assert_eq!(retry_after, Some(Duration::ZERO)),
            _ => panic!("429 should be retried"),
        }
    }

    #[test]
    fn client_errors_fail_at_once() {
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::NOT_FOUND,
            StatusCode::FORBIDDEN,
        ] {
            assert!(matches!(
                classify_status(status, None, "no".into(), at(0), &policy()),
                Attempt::Fail(FetchError::Status { .. })
            ));
        }
    }

    /// The poller spawns polls on a multi-threaded runtime: `get` must stay `Send`.
    #[allow(dead_code)]
    fn get_future_is_send(
        client: &HttpClient,
        url: &Url,
        session: &AuthSession,
        http: &HttpOptions,
        retry: &RetryPolicy,
    ) {
        fn is_send<T: Send>(_: &T) {}
        is_send(&client.get(url, session, http, retry));
    }

    #[test]
    fn backoff_stays_under_its_doubling_ceiling() {
        let retry = RetryPolicy {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(350),
            ..policy()
        };
        for _ in 0..200 {
            assert!(retry.backoff(0) <= Duration::from_millis(100));
            assert!(retry.backoff(1) <= Duration::from_millis(200));
            assert!(retry.backoff(5) <= Duration::from_millis(350));
            assert!(retry.backoff(60) <= Duration::from_millis(350));
        }
    }

    #[test]
    fn excerpt_is_short_and_printable() {
        let body = format!("<html>\n\t<body>\x1b[31m{}</body>", "x".repeat(500));
        let shown = excerpt(body.as_bytes());
        assert!(shown.starts_with("<html> <body>[31mxxx"), "{shown}");
        assert_eq!(shown.chars().count(), 201);
        assert!(!shown.chars().any(char::is_control));
    }
}
