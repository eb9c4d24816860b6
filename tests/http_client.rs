//! The HTTP side of a poll against the loopback mock provider: authentication, retries, limits
//! and every pagination style, end to end.

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use ocpoll::http::auth::credentials_hash;
use ocpoll::http::{
    AuthSession, FetchError, HttpClient, MemoryTokenStore, Page, PaginationError, Paginator,
    Redirects, RetryCause, RetryPolicy, TokenStore, parse_body, read_records,
};
use ocpoll::instance::{Auth, ClientAuth, FieldPath, HttpOptions, OAuth2, Pagination, Secret};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use support::mock_provider::{Failure, MockAuth, MockProvider, Paging, RetryAfter, SinceFilter};
use url::Url;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// Backoff in milliseconds: tests never sleep through real backoff.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        retries: 3,
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..RetryPolicy::default()
    }
}

fn http_options() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_secs(10),
        ..HttpOptions::default()
    }
}

fn session(auth: &Auth) -> AuthSession {
    AuthSession::new("crm", auth, Arc::new(MemoryTokenStore::default())).unwrap()
}

fn client() -> HttpClient {
    HttpClient::new(Redirects::Follow).unwrap()
}

async fn get(mock_url: &Url, auth: &Auth) -> Result<Page, FetchError> {
    client()
        .get(mock_url, &session(auth), &http_options(), &fast_retry())
        .await
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|record| record["id"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// One whole poll: every page from `url`, the way the poller will walk them.
async fn poll(
    url: Url,
    pagination: &Pagination,
    records_path: Option<&FieldPath>,
) -> Result<Vec<Value>, String> {
    let client = client();
    let session = session(&Auth::None);
    let mut paginator = Paginator::new(pagination, url);
    let mut next = Some(paginator.first_url());
    let mut all = Vec::new();
    while let Some(url) = next {
        let page = client
            .get(&url, &session, &http_options(), &fast_retry())
            .await
            .map_err(|e| e.to_string())?;
        let found = read_records(&page, records_path).map_err(|e| e.to_string())?;
        next = paginator
            .next_url(&page, &found.rest, found.records.len())
            .map_err(|e| e.to_string())?;
        for record in found.records {
            all.push(serde_json::from_str(record.get()).map_err(|e| e.to_string())?);
        }
    }
    Ok(all)
}

/// The records of one page, decoded.
fn decoded_records(page: &Page) -> Vec<Value> {
    let found = read_records(page, None).unwrap();
    found
        .records
        .iter()
        .map(|record| serde_json::from_str(record.get()).unwrap())
        .collect()
}

/// 25 records a minute apart from 10:00, ids c00..c24.
fn add_records(mock: &MockProvider, count: usize) {
    for n in 0..count {
        let updated = at("2026-03-01T10:00:00Z") + TimeDelta::minutes(n as i64);
        mock.upsert(
            &format!("c{n:02}"),
            updated,
            json!({"name": format!("n{n}")}),
        );
    }
}

fn expected_ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("c{n:02}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn basic_auth_is_accepted_and_a_wrong_password_is_a_401_without_the_password() {
    let mock = MockProvider::builder()
        .auth(MockAuth::Basic {
            username: "ada".into(),
            password: "pa:ss w0rd".into(),
        })
        .start()
        .await;
    add_records(&mock, 1);
    let good = Auth::Basic {
        username: "ada".into(),
        password: Secret::new("pa:ss w0rd"),
    };
    let page = get(&mock.resource_url(), &good).await.unwrap();
    assert_eq!(page.status, 200);

    let bad = Auth::Basic {
        username: "ada".into(),
        password: Secret::new("wrong-secret-value"),
    };
    let error = get(&mock.resource_url(), &bad).await.unwrap_err();
    assert!(
        matches!(error, FetchError::Status { status: 401, .. }),
        "{error}"
    );
    let message = format!("{error} {error:?}");
    assert!(!message.contains("wrong-secret-value"), "{message}");
    // A 401 without OAuth is not retried.
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn api_key_goes_in_its_header_as_is() {
    let mock = MockProvider::builder()
        .auth(MockAuth::ApiKey {
            header: "X-Api-Key".into(),
            value: "key 123".into(),
        })
        .start()
        .await;
    let auth = Auth::ApiKey {
        header: "X-Api-Key".into(),
        key: Secret::new("key 123"),
    };
    assert_eq!(get(&mock.resource_url(), &auth).await.unwrap().status, 200);
    let seen = &mock.requests()[0];
    assert_eq!(seen.headers["x-api-key"], "key 123");
    assert!(seen.headers.get("authorization").is_none());
}

#[tokio::test]
async fn bearer_token_wins_over_an_authorization_in_http_headers() {
    let mock = MockProvider::builder()
        .auth(MockAuth::Bearer {
            token: "tok-1".into(),
        })
        .start()
        .await;
    let auth = Auth::Bearer {
        token: Secret::new("tok-1"),
    };
    let http = HttpOptions {
        headers: vec![
            ("Authorization".into(), Secret::new("Bearer stale")),
            ("X-Tenant".into(), Secret::new("acme")),
        ],
        ..http_options()
    };
    let page = client()
        .get(&mock.resource_url(), &session(&auth), &http, &fast_retry())
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    let seen = &mock.requests()[0];
    let authorizations: Vec<_> = seen.headers.get_all("authorization").iter().collect();
    assert_eq!(authorizations, ["Bearer tok-1"]);
    assert_eq!(seen.headers["x-tenant"], "acme");
    assert_eq!(
        seen.headers["user-agent"],
        concat!("ocpoll/", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn open_connectors_hub_header() {
    let mock = MockProvider::builder()
        .auth(MockAuth::Hub {
            user: "u-secret".into(),
            organization: "o-secret".into(),
            element: "e-token".into(),
        })
        .start()
        .await;
    let auth = Auth::Hub {
        user: Secret::new("u-secret"),
        organization: Secret::new("o-secret"),
        element: Secret::new("e-token"),
    };
    assert_eq!(get(&mock.resource_url(), &auth).await.unwrap().status, 200);
    assert_eq!(
        mock.requests()[0].headers["authorization"],
        "User u-secret, Organization o-secret, Element e-token"
    );
}

fn oauth_mock_auth(rotate: bool) -> MockAuth {
    MockAuth::OAuth {
        client_id: "client".into(),
        client_secret: "shh".into(),
        refresh_token: "refresh-0".into(),
        rotate,
        expires_in: Some(3600),
    }
}

fn oauth_auth(mock: &MockProvider, refresh_token: &str) -> Auth {
    oauth_refresh(mock.token_url(), "client", "shh", refresh_token)
}

/// The OAuth 2 refresh flow with these credentials, client credentials in the form.
fn oauth_refresh(token_url: Url, id: &str, secret: &str, refresh_token: &str) -> Auth {
    Auth::OAuth2(Box::new(OAuth2 {
        token_url,
        client_id: Secret::new(id),
        client_secret: Secret::new(secret),
        refresh_token: Some(Secret::new(refresh_token)),
        client_auth: ClientAuth::Body,
        token_params: Vec::new(),
        authorization_url: None,
        callback_url: None,
        scope: None,
        code: None,
    }))
}

#[tokio::test]
async fn oauth_refreshes_before_first_use_and_once_on_a_401() {
    let mock = MockProvider::builder()
        .auth(oauth_mock_auth(true))
        .start()
        .await;
    let auth = oauth_auth(&mock, "refresh-0");
    let store = Arc::new(MemoryTokenStore::default());
    let session = AuthSession::new("crm", &auth, store.clone()).unwrap();
    let client = client();
    let url = mock.resource_url();

    let first = client
        .get(&url, &session, &http_options(), &fast_retry())
        .await
        .unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(mock.token_request_count(), 1);
    client
        .get(&url, &session, &http_options(), &fast_retry())
        .await
        .unwrap();
    assert_eq!(mock.token_request_count(), 1, "a valid token is reused");

    // The provider expires the token: a 401, one refresh (with the rotated refresh token, the
    // mock rejects the old one), and the request is repeated.
    mock.expire_tokens();
    let after = client
        .get(&url, &session, &http_options(), &fast_retry())
        .await
        .unwrap();
    assert_eq!(after.status, 200);
    assert_eq!(mock.token_request_count(), 2);
    assert_eq!(
        after
            .retries
            .iter()
            .map(|note| note.cause.clone())
            .collect::<Vec<_>>(),
        [RetryCause::TokenRefreshed]
    );
    let authorizations: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        authorizations,
        [
            "Bearer access-1",
            "Bearer access-1",
            "Bearer access-1",
            "Bearer access-2"
        ]
    );

    // The token went to the store under the credentials' hash, with the rotated refresh token.
    let stored = store.load("crm", &credentials_hash(&auth)).unwrap();
    assert_eq!(stored.access_token.expose(), "access-2");
    assert_eq!(stored.refresh_token.unwrap().expose(), "refresh-2");
    assert!(stored.expires_at.is_some());
}

#[tokio::test]
async fn a_stored_token_is_reused_across_sessions_and_dropped_when_credentials_change() {
    let mock = MockProvider::builder()
        .auth(oauth_mock_auth(false))
        .start()
        .await;
    let store: Arc<MemoryTokenStore> = Arc::new(MemoryTokenStore::default());
    let auth = oauth_auth(&mock, "refresh-0");
    let url = mock.resource_url();
    let first = AuthSession::new("crm", &auth, store.clone()).unwrap();
    client()
        .get(&url, &first, &http_options(), &fast_retry())
        .await
        .unwrap();
    assert_eq!(mock.token_request_count(), 1);

    // A restart: a new session finds the token in the store.
    let restarted = AuthSession::new("crm", &auth, store.clone()).unwrap();
    client()
        .get(&url, &restarted, &http_options(), &fast_retry())
        .await
        .unwrap();
    assert_eq!(mock.token_request_count(), 1);

    // The instance file's refresh token changed: the stored token belongs to the old
    // credentials and is not used; the new refresh token is (and the mock rejects it).
    let edited = oauth_auth(&mock, "refresh-edited");
    let session = AuthSession::new("crm", &edited, store).unwrap();
    let error = client()
        .get(&url, &session, &http_options(), &fast_retry())
        .await
        .unwrap_err();
    assert_eq!(mock.token_request_count(), 2);
    let message = error.to_string();
    // `invalid_grant` is a revoked grant: the instance's polls stop until `ocpoll auth`.
    assert_eq!(
        message,
        "authentication: the provider no longer accepts the OAuth grant of instance \"crm\" \
         (OAuth token endpoint answered HTTP 400: invalid_grant (refresh token not recognised)); \
         its polls are stopped until `ocpoll auth crm` stores new tokens"
    );
}

#[tokio::test]
async fn a_second_401_after_refreshing_fails() {
    let mock = MockProvider::builder()
        .auth(oauth_mock_auth(false))
        .start()
        .await;
    let auth = oauth_auth(&mock, "refresh-0");
    let session = session(&auth);
    // Every access token is revoked right after it is issued: refresh once, then give up.
    let url = mock.resource_url();
    let client = client();
    client
        .get(&url, &session, &http_options(), &fast_retry())
        .await
        .unwrap();
    mock.expire_tokens();
    mock.fail_on(3, Failure::Status(401));
    let error = client
        .get(&url, &session, &http_options(), &fast_retry())
        .await
        .unwrap_err();
    assert!(
        matches!(error, FetchError::Status { status: 401, .. }),
        "{error}"
    );
    assert_eq!(mock.token_request_count(), 2);
    assert_eq!(mock.request_count(), 3);
}

// ---------------------------------------------------------------------------------------------
// Retries and limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn status_429_with_retry_after_seconds_is_honoured() {
    let mock = MockProvider::builder()
        .fail_on(1, Failure::TooManyRequests(Some(RetryAfter::Seconds(0))))
        .start()
        .await;
    add_records(&mock, 2);
    let page = get(&mock.resource_url(), &Auth::None).await.unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(mock.request_count(), 2);
    assert_eq!(page.retries.len(), 1);
    assert_eq!(
        page.retries[0].cause,
        RetryCause::Status {
            status: 429,
            retry_after: true
        }
    );
    assert_eq!(page.retries[0].waited, Duration::ZERO);
}

#[tokio::test]
async fn status_429_with_retry_after_date_is_honoured_or_fails_when_too_far() {
    let past = SystemTime::now() - Duration::from_secs(60);
    let mock = MockProvider::builder()
        .fail_on(1, Failure::TooManyRequests(Some(RetryAfter::Date(past))))
        .start()
        .await;
    let page = get(&mock.resource_url(), &Auth::None).await.unwrap();
    assert_eq!(page.retries[0].waited, Duration::ZERO);
    assert_eq!(mock.request_count(), 2);

    // An hour away is past the 5-minute maximum: the poll fails at once, saying until when.
    let later = SystemTime::UNIX_EPOCH
        + Duration::from_secs(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + 3600,
        );
    mock.fail_on(3, Failure::TooManyRequests(Some(RetryAfter::Date(later))));
    let error = get(&mock.resource_url(), &Auth::None).await.unwrap_err();
    match error {
        FetchError::RetryAfterTooLong { until } => {
            assert_eq!(until, DateTime::<Utc>::from(later))
        }
        other => panic!("expected RetryAfterTooLong, got {other}"),
    }
    assert_eq!(mock.request_count(), 3);
}

#[tokio::test]
async fn status_503_then_success() {
    let mock = MockProvider::builder()
        .fail_on(1, Failure::Unavailable(None))
        .fail_on(2, Failure::Unavailable(Some(RetryAfter::Seconds(0))))
        .start()
        .await;
    add_records(&mock, 3);
    let page = get(&mock.resource_url(), &Auth::None).await.unwrap();
    let records = decoded_records(&page);
    assert_eq!(ids(&records), expected_ids(0..3));
    let causes: Vec<RetryCause> = page.retries.iter().map(|n| n.cause.clone()).collect();
    assert_eq!(
        causes,
        [
            RetryCause::Status {
                status: 503,
                retry_after: false
            },
            RetryCause::Status {
                status: 503,
                retry_after: true
            },
        ]
    );
}

#[tokio::test]
async fn server_errors_beyond_the_retries_fail_with_the_status_and_an_excerpt() {
    let mut builder = MockProvider::builder();
    for n in 1..=4 {
        builder = builder.fail_on(n, Failure::Status(500));
    }
    let mock = builder.start().await;
    let error = get(&mock.resource_url(), &Auth::None).await.unwrap_err();
    match &error {
        FetchError::Status { status, excerpt } => {
            assert_eq!(*status, 500);
            assert_eq!(excerpt, r#"{"message":"mock failure","status":500}"#);
        }
        other => panic!("expected a status error, got {other}"),
    }
    assert_eq!(mock.request_count(), 4, "one attempt and 3 retries");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let mock = MockProvider::builder()
        .fail_on(1, Failure::Status(404))
        .start()
        .await;
    let error = get(&mock.resource_url(), &Auth::None).await.unwrap_err();
    assert!(matches!(error, FetchError::Status { status: 404, .. }));
    assert_eq!(mock.request_count(), 1);
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let mock = MockProvider::builder()
        .fail_on(1, Failure::Slow(Duration::from_secs(20)))
        .start()
        .await;
    add_records(&mock, 1);
    let http = HttpOptions {
        timeout: Duration::from_millis(300),
        ..HttpOptions::default()
    };
    let page = client()
        .get(
            &mock.resource_url(),
            &session(&Auth::None),
            &http,
            &fast_retry(),
        )
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(page.retries[0].cause, RetryCause::Timeout);
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let mock = MockProvider::builder()
        .fail_on(1, Failure::DropConnection)
        .start()
        .await;
    add_records(&mock, 2);
    let page = get(&mock.resource_url(), &Auth::None).await.unwrap();
    let records = decoded_records(&page);
    assert_eq!(ids(&records), expected_ids(0..2));
    assert_eq!(page.retries[0].cause, RetryCause::Body);
}

#[tokio::test]
async fn a_refused_connection_fails_after_the_retries() {
    // Port 1 on loopback: nothing listens there, and no test's server can take it.
    let url = Url::parse("http://127.0.0.1:1/c?token=query-secret").unwrap();
    let retry = RetryPolicy {
        retries: 1,
        ..fast_retry()
    };
    let error = client()
        .get(&url, &session(&Auth::None), &http_options(), &retry)
        .await
        .unwrap_err();
    match &error {
        FetchError::Transport {
            cause, attempts, ..
        } => {
            assert_eq!(*cause, RetryCause::Connection);
            assert_eq!(*attempts, 2);
        }
        other => panic!("expected a transport error, got {other}"),
    }
    // Issue 14: short, and says what happened where; no URL, no five-level chain.
    assert_eq!(
        error.to_string(),
        "connection refused by 127.0.0.1:1 (2 attempts)"
    );
}

/// Issue 14: a name that does not resolve (`.invalid` never does, RFC 6761) fails at once,
/// without the retries, in a few words.
#[tokio::test]
async fn a_dns_failure_is_said_in_a_few_words_and_not_retried() {
    let url = Url::parse("https://api.acme.invalid/v1/contacts?api_key=query-secret").unwrap();
    let retry = RetryPolicy {
        retries: 3,
        ..fast_retry()
    };
    let error = client()
        .get(&url, &session(&Auth::None), &http_options(), &retry)
        .await
        .unwrap_err();
    match &error {
        FetchError::Transport { attempts, .. } => assert_eq!(*attempts, 1, "{error}"),
        other => panic!("expected a transport error, got {other}"),
    }
    assert_eq!(error.to_string(), "DNS lookup failed for api.acme.invalid");
}

#[tokio::test]
async fn an_endless_body_stops_at_the_limit() {
    let mock = MockProvider::builder()
        .fail_on(1, Failure::EndlessBody)
        .start()
        .await;
    let retry = RetryPolicy {
        max_page_bytes: 1024 * 1024,
        ..fast_retry()
    };
    let error = client()
        .get(
            &mock.resource_url(),
            &session(&Auth::None),
            &http_options(),
            &retry,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, FetchError::TooLarge { limit: 1_048_576 }),
        "{error}"
    );
    assert_eq!(mock.request_count(), 1, "too large is not retried");
    // The mock produced the limit plus what socket buffers hold, not gigabytes.
    let sent = mock.endless_bytes_sent();
    assert!(sent < 32 * 1024 * 1024, "the mock sent {sent} bytes");
}

#[tokio::test]
async fn an_html_page_with_200_is_a_clear_error() {
    let mock = MockProvider::builder()
        .fail_on(1, Failure::Html)
        .start()
        .await;
    let page = get(&mock.resource_url(), &Auth::None).await.unwrap();
    let error = parse_body(&page).unwrap_err().to_string();
    assert!(error.starts_with("the response is not JSON"), "{error}");
    assert!(
        error.contains("<!DOCTYPE html> <html><body><h1>Down for maintenance"),
        "{error}"
    );
}

#[tokio::test]
async fn the_provider_clock_comes_from_the_date_header() {
    let mock = MockProvider::builder()
        .date_skew(TimeDelta::hours(2))
        .start()
        .await;
    let page = get(&mock.resource_url(), &Auth::None).await.unwrap();
    let skew = page.date.unwrap() - Utc::now();
    // The Date header has whole seconds; allow for them and for the request's own time.
    assert!(
        skew > TimeDelta::minutes(119) && skew < TimeDelta::minutes(121),
        "{skew}"
    );
}

// ---------------------------------------------------------------------------------------------
// Pagination, end to end
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn page_token_pagination_reads_every_page_with_the_same_filter() {
    let mock = MockProvider::builder()
        .paging(Paging::PageToken { page_size: 200 })
        .start()
        .await;
    add_records(&mock, 25);
    let since = at("2026-03-01T10:03:00Z");
    let records = poll(
        mock.url_since(since),
        &Pagination::Auto { page_size: 10 },
        None,
    )
    .await
    .unwrap();
    assert_eq!(ids(&records), expected_ids(3..25));

    let requests = mock.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(
            request.param("where").unwrap(),
            "updated_at>='2026-03-01T10:03:00Z'"
        );
        assert_eq!(request.param("pageSize").unwrap(), "10");
    }
    let tokens: Vec<Option<String>> = requests.iter().map(|r| r.param("nextPage")).collect();
    assert_eq!(
        tokens,
        [None, Some("o/10+==".into()), Some("o/20+==".into())]
    );
}

#[tokio::test]
async fn records_sharing_a_timestamp_across_a_page_boundary_all_arrive() {
    let mock = MockProvider::builder()
        .paging(Paging::PageToken { page_size: 200 })
        .start()
        .await;
    let same = at("2026-03-01T10:00:00Z");
    for n in 0..7 {
        mock.upsert(&format!("c{n:02}"), same, json!({}));
    }
    let records = poll(
        mock.url_since(same),
        &Pagination::Auto { page_size: 3 },
        None,
    )
    .await
    .unwrap();
    assert_eq!(ids(&records), expected_ids(0..7));
}

#[tokio::test]
async fn link_header_pagination_follows_relative_next_links() {
    let mock = MockProvider::builder()
        .resource_path("/api/v2/people")
        .records_member("results")
        .since(SinceFilter::Param {
            name: "updatedSince".into(),
        })
        .date_format("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "Europe/Paris")
        .paging(Paging::Link { page_size: 4 })
        .start()
        .await;
    add_records(&mock, 10);
    let records = poll(
        mock.url_since(at("2026-03-01T10:01:00Z")),
        &Pagination::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(ids(&records), expected_ids(1..10));
    // The mock renders dates in its zone; the record keeps them as sent.
    assert_eq!(records[0]["updated_at"], "2026-03-01T11:01:00.000+01:00");
    let offsets: Vec<Option<String>> = mock.requests().iter().map(|r| r.param("offset")).collect();
    assert_eq!(offsets, [None, Some("4".into()), Some("8".into())]);
    assert!(
        mock.requests()
            .iter()
            .all(|r| r.path_and_query.starts_with("/api/v2/people?"))
    );
}

#[tokio::test]
async fn cursor_pagination_reads_the_cursor_from_the_body() {
    let mock = MockProvider::builder()
        .paging(Paging::Cursor {
            page_size: 4,
            param: "after".into(),
        })
        .start()
        .await;
    add_records(&mock, 9);
    let pagination = Pagination::Cursor {
        cursor_path: FieldPath::parse("meta.next"),
        cursor_param: "after".into(),
    };
    let records = poll(mock.resource_url(), &pagination, None).await.unwrap();
    assert_eq!(ids(&records), expected_ids(0..9));
    let cursors: Vec<Option<String>> = mock.requests().iter().map(|r| r.param("after")).collect();
    assert_eq!(cursors, [None, Some("c4".into()), Some("c8".into())]);
}

#[tokio::test]
async fn page_number_pagination_stops_at_the_first_empty_page() {
    let mock = MockProvider::builder()
        .records_member("data")
        .paging(Paging::PageNumber {
            page_size: 5,
            param: "page".into(),
        })
        .start()
        .await;
    add_records(&mock, 10);
    let pagination = Pagination::Page {
        page_param: "page".into(),
    };
    let records = poll(
        mock.url_since(at("2026-03-01T09:00:00Z")),
        &pagination,
        Some(&FieldPath::parse("data")),
    )
    .await
    .unwrap();
    assert_eq!(ids(&records), expected_ids(0..10));
    let pages: Vec<Option<String>> = mock.requests().iter().map(|r| r.param("page")).collect();
    assert_eq!(
        pages,
        [Some("1".into()), Some("2".into()), Some("3".into())]
    );
}

#[tokio::test]
async fn no_pagination_reads_one_page() {
    let mock = MockProvider::builder().paging(Paging::None).start().await;
    add_records(&mock, 30);
    let records = poll(mock.resource_url(), &Pagination::None, None)
        .await
        .unwrap();
    assert_eq!(records.len(), 30);
    assert_eq!(mock.request_count(), 1);
}

#[tokio::test]
async fn a_looping_page_token_is_detected() {
    let mock = MockProvider::builder()
        .paging(Paging::PageToken { page_size: 200 })
        .page_token_loops()
        .start()
        .await;
    add_records(&mock, 3);
    let error = poll(mock.resource_url(), &Pagination::default(), None)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        PaginationError::Loop {
            page: 2,
            what: "page token"
        }
        .to_string()
    );
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn late_committed_records_appear_on_a_later_request() {
    let mock = MockProvider::builder().start().await;
    add_records(&mock, 2);
    mock.upsert_late("late", at("2026-03-01T09:59:00Z"), json!({}), 2);
    let url = mock.url_since(at("2026-03-01T09:00:00Z"));
    let first = poll(url.clone(), &Pagination::default(), None)
        .await
        .unwrap();
    assert_eq!(ids(&first), ["c00", "c01"]);
    let second = poll(url, &Pagination::default(), None).await.unwrap();
    assert_eq!(ids(&second), ["late", "c00", "c01"]);
}

#[tokio::test]
async fn concurrent_requests_that_meet_a_401_refresh_once() {
    let mock = MockProvider::builder()
        .auth(oauth_mock_auth(true))
        .start()
        .await;
    let session = session(&oauth_auth(&mock, "refresh-0"));
    let client = client();
    let url = mock.resource_url();
    client
        .get(&url, &session, &http_options(), &fast_retry())
        .await
        .unwrap();
    mock.expire_tokens();
    let (http, retry) = (http_options(), fast_retry());
    let (first, second) = tokio::join!(
        client.get(&url, &session, &http, &retry),
        client.get(&url, &session, &http, &retry),
    );
    assert_eq!((first.unwrap().status, second.unwrap().status), (200, 200));
    // One refresh for both: a second one would have used the rotated-away refresh token.
    assert_eq!(mock.token_request_count(), 2);
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_use() {
    let mock = MockProvider::builder()
        .auth(MockAuth::OAuth {
            client_id: "client".into(),
            client_secret: "shh".into(),
            refresh_token: "refresh-0".into(),
            rotate: false,
            // Inside the 30-second safety margin: never worth sending.
            expires_in: Some(10),
        })
        .start()
        .await;
    let session = session(&oauth_auth(&mock, "refresh-0"));
    let client = client();
    for _ in 0..2 {
        client
            .get(
                &mock.resource_url(),
                &session,
                &http_options(),
                &fast_retry(),
            )
            .await
            .unwrap();
    }
    assert_eq!(mock.token_request_count(), 2);
    assert_eq!(
        mock.request_count(),
        2,
        "no request left with a dying token"
    );
}

#[tokio::test]
async fn an_unusable_ca_file_is_reported_with_its_path() {
    let folder = tempfile::tempdir().unwrap();
    let not_pem = folder.path().join("roots.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let missing = folder.path().join("missing.pem");
    for ca_file in [not_pem, missing] {
        let http = HttpOptions {
            ca_file: Some(ca_file.clone()),
            ..http_options()
        };
        let url = Url::parse("https://127.0.0.1:9/").unwrap();
        let error = client()
            .get(&url, &session(&Auth::None), &http, &fast_retry())
            .await
            .unwrap_err();
        assert!(matches!(error, FetchError::CaFile { .. }), "{error}");
        assert!(
            error.to_string().contains(&ca_file.display().to_string()),
            "{error}"
        );
    }
}

// -------------------------------------------------------------------------------------------
// Credentials stay on their origin (issue 13, defect 3)
// -------------------------------------------------------------------------------------------

/// An API key, a custom header and a query secret, for the redirect tests.
fn credentialed() -> (Auth, HttpOptions) {
    let auth = Auth::ApiKey {
        header: "X-Api-Key".into(),
        key: Secret::new("api-key-s3cr3t-9921"),
    };
    let http = HttpOptions {
        headers: vec![("X-Tenant-Token".into(), Secret::new("tenant-s3cr3t-31"))],
        ..http_options()
    };
    (auth, http)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_another_origin_carries_no_credentials_custom_headers_or_referer() {
    use support::recorder::{Recorder, json_answer, redirect};
    let other = Recorder::start("127.0.0.2", |_| json_answer(200, "[]")).await;
    let elsewhere = format!("{}/moved/contacts", other.origin());
    let provider = Recorder::start("127.0.0.1", move |request| {
        match request.path_and_query.as_str() {
            // Within the origin first, then away from it.
            path if path.starts_with("/contacts") => redirect(301, "/v2/contacts"),
            _ => redirect(302, &elsewhere),
        }
    })
    .await;
    let (auth, http) = credentialed();
    let url = Url::parse(&format!(
        "{}/contacts?sig=query-s3cr3t-55",
        provider.origin()
    ))
    .unwrap();
    let page = client()
        .get(&url, &session(&auth), &http, &fast_retry())
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(&page.body[..], b"[]");

    // The provider's own origin got the credentials on both of its hops.
    let own = provider.requests();
    assert_eq!(own.len(), 2, "{own:?}");
    for request in &own {
        assert_eq!(
            request.header("x-api-key").as_deref(),
            Some("api-key-s3cr3t-9921")
        );
        assert_eq!(
            request.header("x-tenant-token").as_deref(),
            Some("tenant-s3cr3t-31")
        );
        assert_eq!(request.header("referer"), None, "{request:?}");
    }
    // The other origin got the request, and none of them.
    let away = other.requests();
    assert_eq!(away.len(), 1, "{away:?}");
    assert_eq!(away[0].path_and_query, "/moved/contacts");
    for name in ["x-api-key", "x-tenant-token", "authorization", "referer"] {
        assert_eq!(away[0].header(name), None, "{name} went to another origin");
    }
    let everything = format!("{:?}", away[0]);
    for secret in ["api-key-s3cr3t-9921", "tenant-s3cr3t-31", "query-s3cr3t-55"] {
        assert!(!everything.contains(secret), "{everything}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_an_allowed_origin_keeps_the_credentials() {
    use support::recorder::{Recorder, json_answer, redirect};
    let other = Recorder::start("127.0.0.2", |_| json_answer(200, "[]")).await;
    let elsewhere = format!("{}/contacts", other.origin());
    let provider = Recorder::start("127.0.0.1", move |_| redirect(307, &elsewhere)).await;
    let (auth, mut http) = credentialed();
    http.allowed_origins = vec![Url::parse(&other.origin()).unwrap().origin()];
    let url = Url::parse(&format!("{}/contacts", provider.origin())).unwrap();
    client()
        .get(&url, &session(&auth), &http, &fast_retry())
        .await
        .unwrap();
    let away = other.requests();
    assert_eq!(away.len(), 1, "{away:?}");
    assert_eq!(
        away[0].header("x-api-key").as_deref(),
        Some("api-key-s3cr3t-9921")
    );
    assert_eq!(away[0].header("referer"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_endpoint_redirect_is_an_error_and_the_other_host_gets_nothing() {
    use support::recorder::{Recorder, json_answer, redirect};
    let other = Recorder::start("127.0.0.2", |_| {
        json_answer(200, r#"{"access_token": "stolen", "expires_in": 3600}"#)
    })
    .await;
    let elsewhere = format!("{}/oauth/token?x=1", other.origin());
    let provider = Recorder::start("127.0.0.1", move |request| {
        if request.method == "POST" {
            redirect(307, &elsewhere)
        } else {
            json_answer(200, "[]")
        }
    })
    .await;
    let token_url = Url::parse(&format!("{}/oauth/token", provider.origin())).unwrap();
    let auth = oauth_refresh(
        token_url.clone(),
        "oauth-client-id-3391",
        "oauth-client-s3cr3t-2280",
        "refresh-tok-s3cr3t-6612",
    );
    let url = Url::parse(&format!("{}/contacts", provider.origin())).unwrap();
    let error = client()
        .get(&url, &session(&auth), &http_options(), &fast_retry())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            FetchError::Auth(ocpoll::http::AuthError::TokenRedirect { .. })
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "OAuth token endpoint {token_url} answered HTTP 307 redirecting to {}/oauth/token;",
            other.origin()
        )),
        "{message}"
    );
    assert!(
        message.contains("does not follow redirects of the token endpoint"),
        "{message}"
    );
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    // Only the one token request: no retry re-posts the credentials, no page was asked for.
    let own = provider.requests();
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0].method, "POST");
}
