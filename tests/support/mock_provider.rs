//! A mock provider API on loopback, with the habits of real ones: an updated-since filter in a
//! provider's date format, the pagination styles ocpoll follows, the five authentication
//! schemes, and failures switched on by request number.
//!
//! ```ignore
//! let mock = MockProvider::builder().paging(Paging::PageToken { page_size: 10 }).start().await;
//! mock.upsert("c1", at("2026-03-01T10:00:00Z"), json!({"name": "Ada"}));
//! mock.fail_on(1, Failure::Status(503));      // the first resource request fails
//! let url = mock.url_since(at("2026-03-01T00:00:00Z"));
//! ```
//!
//! Request numbers count every request to the resource path from 1, including failed ones
//! (token requests are counted apart). Records are rendered as
//! `{"id": ..., <updated field>: <formatted date>, ...fields}`, sorted by (updated, id), and
//! re-read from the live record set on every request, so a test can change them mid-poll.

#![allow(dead_code)] // Each test file uses a different part of it.

use axum::Router;
use axum::body::Body;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::stream;
use ocpoll::dates::{DateFormat, Zone};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use url::Url;

/// The path the OAuth token endpoint listens on.
pub const TOKEN_PATH: &str = "/oauth/token";

/// How the updated-since value reaches the mock.
#[derive(Clone, Debug)]
pub enum SinceFilter {
    /// Open Connectors' `where=<field>>='<date>'` (CEQL).
    Where { field: String },
    /// A plain parameter, `updatedSince=<date>`.
    Param { name: String },
    /// No filter: every record, every time.
    None,
}

#[derive(Clone, Debug)]
pub enum Paging {
    /// Open Connectors: `pageSize` (default `page_size`), `nextPage=<token>` in, the
    /// `elements-next-page-token` header out.
    PageToken { page_size: usize },
    /// `Link: <...&offset=N>; rel="next"`, a relative link, after a `rel="prev"` one.
    Link { page_size: usize },
    /// `{records_member: [...], "meta": {"next": <cursor>|null}}`, cursor sent back as `param`.
    Cursor { page_size: usize, param: String },
    /// `param=1,2,3...` until an empty page.
    PageNumber { page_size: usize, param: String },
    /// Everything in one page.
    None,
}

#[derive(Clone, Debug)]
pub enum MockAuth {
    None,
    Basic {
        username: String,
        password: String,
    },
    ApiKey {
        header: String,
        value: String,
    },
    Bearer {
        token: String,
    },
    /// Tokens come from `POST /oauth/token` (refresh-token grant); `rotate` issues a new refresh
    /// token with each access token and rejects the old one; `expires_in` is announced if set.
    OAuth {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        rotate: bool,
        expires_in: Option<u64>,
    },
    Hub {
        user: String,
        organization: String,
        element: String,
    },
    /// Bearer tokens issued by another server (`mock_oauth::MockOAuth::access_tokens`).
    AccessTokens(Arc<Mutex<HashSet<String>>>),
}

#[derive(Clone, Debug)]
pub enum RetryAfter {
    Seconds(u64),
    Date(SystemTime),
}

/// What the mock does instead of (or before) answering normally.
#[derive(Clone, Debug)]
pub enum Failure {
    TooManyRequests(Option<RetryAfter>),
    Unavailable(Option<RetryAfter>),
    Status(u16),
    /// Waits, then answers normally.
    Slow(Duration),
    /// Sends the headers and part of the body, then closes the connection.
    DropConnection,
    /// `200 text/html`, a maintenance page.
    Html,
    /// `200` with a body that never ends (until the client goes away).
    EndlessBody,
}

/// One request the mock saw.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub number: u64,
    pub path_and_query: String,
    pub headers: HeaderMap,
}

impl SeenRequest {
    /// The decoded value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        let query = self.path_and_query.split_once('?').map_or("", |(_, q)| q);
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

struct MockRecord {
    updated: DateTime<Utc>,
    fields: Value,
    /// Late-committed: invisible to requests numbered below this.
    visible_from_request: u64,
}

struct Config {
    resource_path: String,
    records_member: Option<String>,
    updated_field: String,
    date_format: DateFormat,
    zone: Zone,
    since: SinceFilter,
    paging: Paging,
    auth: MockAuth,
    date_skew: TimeDelta,
    page_token_loops: bool,
    endless_pages: bool,
}

#[derive(Default)]
struct Live {
    records: BTreeMap<String, MockRecord>,
    failures: HashMap<u64, Failure>,
    requests: Vec<SeenRequest>,
    access_tokens: HashSet<String>,
    refresh_token: Option<String>,
    tokens_issued: u64,
}

struct Shared {
    config: Config,
    live: Mutex<Live>,
    resource_requests: AtomicU64,
    token_requests: AtomicU64,
    /// Bytes an endless body has produced so far.
    endless_bytes: AtomicU64,
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, Live> {
        // A panicking test thread must not hide the mock's state from the next assertion.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct MockBuilder {
    config: Config,
    failures: HashMap<u64, Failure>,
}

impl MockBuilder {
    pub fn resource_path(mut self, path: &str) -> Self {
        self.config.resource_path = path.to_owned();
        self
    }
    /// Wrap the records in `{member: [...]}` instead of answering a bare array.
    pub fn records_member(mut self, member: &str) -> Self {
        self.config.records_member = Some(member.to_owned());
        self
    }
    pub fn updated_field(mut self, field: &str) -> Self {
        self.config.updated_field = field.to_owned();
        self
    }
    /// The SimpleDateFormat of the records' updated field and of the since filter.
    pub fn date_format(mut self, pattern: &str, zone: &str) -> Self {
        self.config.date_format = DateFormat::new(pattern).expect("mock date format");
        self.config.zone = Zone::parse(zone).expect("mock zone");
        self
    }
    pub fn since(mut self, filter: SinceFilter) -> Self {
        self.config.since = filter;
        self
    }
    pub fn paging(mut self, paging: Paging) -> Self {
        self.config.paging = paging;
        self
    }
    pub fn auth(mut self, auth: MockAuth) -> Self {
        self.config.auth = auth;
        self
    }
    /// The provider's clock (its `Date` header) runs this far ahead of the real one.
    pub fn date_skew(mut self, skew: TimeDelta) -> Self {
        self.config.date_skew = skew;
        self
    }
    /// Every page hands out a new next-page token, forever (past the records, pages are
    /// empty): a hostile provider that no loop check catches.
    pub fn endless_pages(mut self) -> Self {
        self.config.endless_pages = true;
        self
    }

    /// Every page hands back the same page token, forever.
    pub fn page_token_loops(mut self) -> Self {
        self.config.page_token_loops = true;
        self
    }
    pub fn fail_on(mut self, request_number: u64, failure: Failure) -> Self {
        self.failures.insert(request_number, failure);
        self
    }

    pub async fn start(self) -> MockProvider {
        let refresh_token = match &self.config.auth {
            MockAuth::OAuth { refresh_token, .. } => Some(refresh_token.clone()),
            _ => None,
        };
        let shared = Arc::new(Shared {
            config: self.config,
            live: Mutex::new(Live {
                failures: self.failures,
                refresh_token,
                ..Live::default()
            }),
            resource_requests: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            endless_bytes: AtomicU64::new(0),
        });
        let app = Router::new()
            .route(TOKEN_PATH, post(token_endpoint))
            .fallback(resource)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockProvider { addr, shared }
    }
}

/// A running mock. It stops with the test's runtime.
pub struct MockProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockProvider {
    pub fn builder() -> MockBuilder {
        MockBuilder {
            config: Config {
                resource_path: "/hubs/crm/contacts".to_owned(),
                records_member: None,
                updated_field: "updated_at".to_owned(),
                date_format: DateFormat::new("yyyy-MM-dd'T'HH:mm:ss'Z'").expect("format"),
                zone: Zone::utc(),
                since: SinceFilter::Where {
                    field: "updated_at".to_owned(),
                },
                paging: Paging::PageToken { page_size: 200 },
                auth: MockAuth::None,
                date_skew: TimeDelta::zero(),
                page_token_loops: false,
                endless_pages: false,
            },
            failures: HashMap::new(),
        }
    }

    pub fn base_url(&self) -> Url {
        Url::parse(&format!("http://{}", self.addr)).expect("mock url")
    }

    /// The resource URL without any filter.
    pub fn resource_url(&self) -> Url {
        self.base_url()
            .join(&self.shared.config.resource_path)
            .expect("resource url")
    }

    /// The resource URL with the since filter set to `since`, as a poll would expand it.
    pub fn url_since(&self, since: DateTime<Utc>) -> Url {
        let config = &self.shared.config;
        let date = config.date_format.format(since, &config.zone);
        let mut url = self.resource_url();
        match &config.since {
            SinceFilter::Where { field } => {
                url.query_pairs_mut()
                    .append_pair("where", &format!("{field}>='{date}'"));
            }
            SinceFilter::Param { name } => {
                url.query_pairs_mut().append_pair(name, &date);
            }
            SinceFilter::None => {}
        }
        url
    }

    pub fn token_url(&self) -> Url {
        self.base_url().join(TOKEN_PATH).expect("token url")
    }

    /// Adds or replaces a record.
    pub fn upsert(&self, id: &str, updated: DateTime<Utc>, fields: Value) {
        self.upsert_late(id, updated, fields, 0);
    }

    /// Adds or replaces a record that only requests numbered `visible_from_request` or later
    /// see: a record committed late with an updated date in the past.
    pub fn upsert_late(
        &self,
        id: &str,
        updated: DateTime<Utc>,
        fields: Value,
        visible_from_request: u64,
    ) {
        self.shared.live().records.insert(
            id.to_owned(),
            MockRecord {
                updated,
                fields,
                visible_from_request,
            },
        );
    }

    pub fn delete(&self, id: &str) {
        self.shared.live().records.remove(id);
    }

    pub fn fail_on(&self, request_number: u64, failure: Failure) {
        self.shared.live().failures.insert(request_number, failure);
    }

    /// Invalidates every access token issued so far: the next request gets a 401.
    pub fn expire_tokens(&self) {
        self.shared.live().access_tokens.clear();
    }

    pub fn request_count(&self) -> u64 {
        self.shared.resource_requests.load(Ordering::SeqCst)
    }

    pub fn token_request_count(&self) -> u64 {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    pub fn endless_bytes_sent(&self) -> u64 {
        self.shared.endless_bytes.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.live().requests.clone()
    }
}

// -------------------------------------------------------------------------------------------
// Serving
// -------------------------------------------------------------------------------------------

async fn resource(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let config = &shared.config;
    if uri.path() != config.resource_path {
        return (StatusCode::NOT_FOUND, "no such resource").into_response();
    }
    if method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let number = shared.resource_requests.fetch_add(1, Ordering::SeqCst) + 1;
    let failure = {
        let mut live = shared.live();
        live.requests.push(SeenRequest {
            number,
            path_and_query: uri
                .path_and_query()
                .map_or_else(String::new, |pq| pq.to_string()),
            headers: headers.clone(),
        });
        live.failures.remove(&number)
    };
    let mut response = match failure {
        Some(Failure::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            answer(&shared, number, &uri, &headers)
        }
        Some(failure) => fail(&shared, failure),
        None => answer(&shared, number, &uri, &headers),
    };
    let provider_now = SystemTime::from(Utc::now() + config.date_skew);
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(provider_now)) {
        response.headers_mut().insert(header::DATE, date);
    }
    response
}

fn fail(shared: &Arc<Shared>, failure: Failure) -> Response {
    let retry_after = |after: Option<RetryAfter>| match after {
        Some(RetryAfter::Seconds(seconds)) => seconds.to_string(),
        Some(RetryAfter::Date(when)) => httpdate::fmt_http_date(when),
        None => String::new(),
    };
    match failure {
        Failure::TooManyRequests(after) => {
            with_retry_after(StatusCode::TOO_MANY_REQUESTS, retry_after(after))
        }
        Failure::Unavailable(after) => {
            with_retry_after(StatusCode::SERVICE_UNAVAILABLE, retry_after(after))
        }
        Failure::Status(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                json_body(&json!({"message": "mock failure", "status": status.as_u16()})),
            )
                .into_response()
        }
        Failure::Html => (
            [(header::CONTENT_TYPE, "text/html")],
            "<!DOCTYPE html>\n<html><body><h1>Down for maintenance</h1></body></html>",
        )
            .into_response(),
        Failure::DropConnection => {
            // The pause lets the headers and the first bytes reach the client, so the
            // connection breaks in the middle of the body rather than before the response.
            let parts = stream::unfold(0, |step| async move {
                match step {
                    0 => Some((Ok(bytes::Bytes::from_static(b"[{\"id\": \"partial\", ")), 1)),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let reset = std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "mock drops the connection",
                        );
                        Some((Err(reset), 2))
                    }
                    _ => None,
                }
            });
            json_response(Body::from_stream(parts))
        }
        Failure::EndlessBody => {
            let shared = shared.clone();
            let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
            let endless = stream::repeat_with(move || {
                shared
                    .endless_bytes
                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
                Ok::<_, std::io::Error>(chunk.clone())
            });
            json_response(Body::from_stream(endless))
        }
        Failure::Slow(_) => unreachable!("handled by the caller"),
    }
}

fn with_retry_after(status: StatusCode, retry_after: String) -> Response {
    let mut response = (status, json_body(&json!({"message": "slow down"}))).into_response();
    if let Ok(value) = HeaderValue::from_str(&retry_after)
        && !retry_after.is_empty()
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// A normal answer: authenticate, filter, sort, page.
fn answer(shared: &Shared, number: u64, uri: &Uri, headers: &HeaderMap) -> Response {
    if let Err(reason) = check_auth(shared, headers) {
        return (
            StatusCode::UNAUTHORIZED,
            json_body(&json!({"message": reason})),
        )
            .into_response();
    }
    let config = &shared.config;
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let since = match since_value(config, &params) {
        Ok(since) => since,
        Err(reason) => {
            return (
                StatusCode::BAD_REQUEST,
                json_body(&json!({"message": reason})),
            )
                .into_response();
        }
    };
    let matching = matching_records(shared, number, since);
    let (offset, page_size) = page_window(config, &params);
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(page_size)
        .cloned()
        .collect();
    let next_offset =
        (config.endless_pages || offset + page_size < matching.len()).then_some(offset + page_size);
    page_response(config, uri, page, next_offset)
}

fn since_value(
    config: &Config,
    params: &HashMap<String, String>,
) -> Result<Option<DateTime<Utc>>, String> {
    let text = match &config.since {
        SinceFilter::None => return Ok(None),
        SinceFilter::Param { name } => params.get(name).cloned(),
        SinceFilter::Where { field } => match params.get("where") {
            Some(clause) => Some(
                clause
                    .strip_prefix(&format!("{field}>='"))
                    .and_then(|rest| rest.strip_suffix('\''))
                    .ok_or_else(|| format!("unsupported where clause {clause:?}"))?
                    .to_owned(),
            ),
            None => None,
        },
    };
    match text {
        None => Ok(None),
        Some(text) => config
            .date_format
            .parse(&text, &config.zone)
            .map(Some)
            .map_err(|error| format!("bad date {text:?}: {error}")),
    }
}

fn matching_records(shared: &Shared, number: u64, since: Option<DateTime<Utc>>) -> Vec<Value> {
    let config = &shared.config;
    let live = shared.live();
    let mut visible: Vec<(&String, &MockRecord)> = live
        .records
        .iter()
        .filter(|(_, record)| record.visible_from_request <= number)
        .filter(|(_, record)| since.is_none_or(|since| record.updated >= since))
        .collect();
    visible.sort_by(|a, b| (a.1.updated, a.0).cmp(&(b.1.updated, b.0)));
    visible
        .into_iter()
        .map(|(id, record)| {
            let mut object = serde_json::Map::new();
            object.insert("id".into(), json!(id));
            object.insert(
                config.updated_field.clone(),
                json!(config.date_format.format(record.updated, &config.zone)),
            );
            if let Value::Object(fields) = &record.fields {
                object.extend(fields.clone());
            }
            Value::Object(object)
        })
        .collect()
}

/// Which slice of the matching records this request asked for.
fn page_window(config: &Config, params: &HashMap<String, String>) -> (usize, usize) {
    let number = |name: &str| params.get(name).and_then(|v| v.parse::<usize>().ok());
    match &config.paging {
        Paging::PageToken { page_size } => {
            let size = number("pageSize").unwrap_or(*page_size).max(1);
            let offset = params
                .get("nextPage")
                .and_then(|token| decode_token(token))
                .unwrap_or(0);
            (offset, size)
        }
        Paging::Link { page_size } => (number("offset").unwrap_or(0), *page_size),
        Paging::Cursor { page_size, param } => {
            let offset = params
                .get(param)
                .and_then(|cursor| cursor.strip_prefix("c").and_then(|n| n.parse().ok()));
            (offset.unwrap_or(0), *page_size)
        }
        Paging::PageNumber { page_size, param } => {
            let page = number(param).unwrap_or(1).max(1);
            ((page - 1) * page_size, *page_size)
        }
        Paging::None => (0, usize::MAX),
    }
}

fn page_response(
    config: &Config,
    uri: &Uri,
    page: Vec<Value>,
    next_offset: Option<usize>,
) -> Response {
    let records = Value::Array(page);
    let mut body = match &config.records_member {
        Some(member) => json!({ member.as_str(): records }),
        None => records,
    };
    let mut headers = Vec::new();
    match &config.paging {
        Paging::PageToken { .. } => {
            let token = if config.page_token_loops {
                Some("same/token==".to_owned())
            } else {
                next_offset.map(encode_token)
            };
            if let Some(token) = token {
                headers.push(("elements-next-page-token".to_owned(), token));
            }
        }
        Paging::Link { .. } => {
            let mut link = format!("<{}>; rel=\"prev\"; title=\"previous, page\"", uri.path());
            if let Some(offset) = next_offset {
                let query: Vec<String> = uri
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .filter(|pair| !pair.is_empty() && !pair.starts_with("offset="))
                    .map(str::to_owned)
                    .chain([format!("offset={offset}")])
                    .collect();
                // Relative, and without the path's directory, to exercise resolution.
                let file = uri.path().rsplit('/').next().unwrap_or("");
                link.push_str(&format!(", <{file}?{}>; rel=\"next\"", query.join("&")));
            }
            headers.push(("link".to_owned(), link));
        }
        Paging::Cursor { .. } => {
            let cursor = next_offset.map_or(Value::Null, |offset| json!(format!("c{offset}")));
            body = match body {
                Value::Array(records) => json!({"data": records, "meta": {"next": cursor}}),
                Value::Object(mut object) => {
                    object.insert("meta".into(), json!({"next": cursor}));
                    Value::Object(object)
                }
                other => other,
            };
        }
        Paging::PageNumber { .. } | Paging::None => {}
    }
    let mut response = json_body(&body).into_response();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Page tokens look opaque and need percent-encoding, like real ones.
fn encode_token(offset: usize) -> String {
    format!("o/{offset}+==")
}

fn decode_token(token: &str) -> Option<usize> {
    token.strip_prefix("o/")?.strip_suffix("+==")?.parse().ok()
}

fn check_auth(shared: &Shared, headers: &HeaderMap) -> Result<(), String> {
    let header_value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let authorization = header_value("authorization");
    let expected = match &shared.config.auth {
        MockAuth::None => return Ok(()),
        MockAuth::Basic { username, password } => {
            use base64::Engine;
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            format!("Basic {encoded}")
        }
        MockAuth::ApiKey { header, value } => {
            return if header_value(header) == value {
                Ok(())
            } else {
                Err(format!("bad {header}"))
            };
        }
        MockAuth::Bearer { token } => format!("Bearer {token}"),
        MockAuth::Hub {
            user,
            organization,
            element,
        } => {
            format!("User {user}, Organization {organization}, Element {element}")
        }
        MockAuth::AccessTokens(tokens) => {
            let token = authorization.strip_prefix("Bearer ").unwrap_or("");
            let known = tokens
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .contains(token);
            return if known {
                Ok(())
            } else {
                Err("invalid or expired access token".into())
            };
        }
        MockAuth::OAuth { .. } => {
            let token = authorization.strip_prefix("Bearer ").unwrap_or("");
            return if shared.live().access_tokens.contains(token) {
                Ok(())
            } else {
                Err("invalid or expired access token".into())
            };
        }
    };
    if authorization == expected {
        Ok(())
    } else {
        Err("bad authorization".into())
    }
}

async fn token_endpoint(
    State(shared): State<Arc<Shared>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    shared.token_requests.fetch_add(1, Ordering::SeqCst);
    let MockAuth::OAuth {
        client_id,
        client_secret,
        rotate,
        expires_in,
        ..
    } = &shared.config.auth
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let mut live = shared.live();
    let refresh_ok = live.refresh_token.as_deref() == Some(field("refresh_token"));
    if field("grant_type") != "refresh_token"
        || field("client_id") != client_id
        || field("client_secret") != client_secret
        || !refresh_ok
    {
        return (
            StatusCode::BAD_REQUEST,
            json_body(&json!({"error": "invalid_grant", "error_description": "refresh token not recognised"})),
        )
            .into_response();
    }
    live.tokens_issued += 1;
    let access_token = format!("access-{}", live.tokens_issued);
    live.access_tokens.insert(access_token.clone());
    let mut body = json!({"access_token": access_token, "token_type": "bearer"});
    if *rotate {
        let next_refresh = format!("refresh-{}", live.tokens_issued);
        live.refresh_token = Some(next_refresh.clone());
        body["refresh_token"] = json!(next_refresh);
    }
    if let Some(seconds) = expires_in {
        body["expires_in"] = json!(seconds);
    }
    json_body(&body).into_response()
}

fn json_body(value: &Value) -> Response {
    json_response(Body::from(value.to_string()))
}

fn json_response(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
