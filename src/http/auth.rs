//! How requests to a provider authenticate: the five families of docs/instances.md.
//!
//! An [`AuthSession`] is built once per instance from its [`Auth`] and turns it into request
//! headers. Four families are static headers computed up front (so a credential that cannot be a
//! header value is reported before the first request). OAuth 2 refresh is the only one with a
//! life of its own: the access token is fetched from `oauth.token.url` before first use, again
//! when it is about to expire, and once more when the provider answers 401.
//!
//! Refreshed tokens survive restarts through the [`TokenStore`] trait (the state store implements
//! it; [`MemoryTokenStore`] serves tests). Each stored token is filed under a hash of the
//! credentials it came from, so editing the instance file's credentials drops stale tokens. A
//! provider that rotates refresh tokens hands back a new one; it is stored with the access token
//! and used for the next refresh, never written back to the instance file.

use crate::instance::mask::Masker;
use crate::instance::{Auth, Instance, Secret};
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, RequestBuilder};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use thiserror::Error;
use url::Url;

/// A token is refreshed this long before its announced expiry, so that a request does not
/// leave with a token that dies on the way.
const EXPIRY_MARGIN: TimeDelta = TimeDelta::seconds(30);

/// What the state keeps of an OAuth session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredToken {
    pub access_token: Secret,
    /// A rotated refresh token, when the provider returned one; otherwise the file's is used.
    pub refresh_token: Option<Secret>,
    /// From `expires_in`; `None` when the provider did not say (then only a 401 refreshes).
    pub expires_at: Option<DateTime<Utc>>,
}

/// Where refreshed OAuth tokens live between polls and across restarts.
///
/// `credentials_hash` is [`credentials_hash`] of the instance's OAuth settings: a token stored
/// under another hash belongs to old credentials and must not be returned.
pub trait TokenStore: Send + Sync {
    fn load(&self, instance: &str, credentials_hash: &str) -> Option<StoredToken>;
    /// Failures are the implementation's to report (a lost token costs one refresh).
    fn save(&self, instance: &str, credentials_hash: &str, token: &StoredToken);
}

/// A [`TokenStore`] in memory, for tests and for commands that keep no state.
#[derive(Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<HashMap<String, (String, StoredToken)>>,
}

impl TokenStore for MemoryTokenStore {
    fn load(&self, instance: &str, credentials_hash: &str) -> Option<StoredToken> {
        let tokens = self.tokens.lock().ok()?;
        let (hash, token) = tokens.get(instance)?;
        (hash == credentials_hash).then(|| token.clone())
    }

    fn save(&self, instance: &str, credentials_hash: &str, token: &StoredToken) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(
                instance.to_owned(),
                (credentials_hash.to_owned(), token.clone()),
            );
        }
    }
}

#[derive(Debug, Error)]
pub enum AuthError {
    /// A credential holds characters a header cannot carry (a newline pasted with a token).
    #[error("the {what} cannot be sent as an HTTP header (it contains control characters)")]
    InvalidHeaderValue { what: &'static str },
    #[error("`api.key.header` {name:?} is not a valid HTTP header name")]
    InvalidHeaderName { name: String },
    #[error("OAuth token endpoint answered HTTP {status}{}", describe_oauth_error(.error.as_deref(), .description.as_deref()))]
    TokenRejected {
        status: u16,
        /// The OAuth `error` and `error_description` fields, when present. Never the raw body,
        /// which could echo the credentials back.
        error: Option<String>,
        description: Option<String>,
    },
    /// A 3xx from the token endpoint: never followed, since the form carries the refresh
    /// token and the client secret. `endpoint` and `location` are shown without their query.
    #[error(
        "OAuth token endpoint {endpoint} answered HTTP {status} redirecting to {location}; \
         ocpoll does not follow redirects of the token endpoint (the refresh token and client \
         secret would go with them): set `oauth.token.url` to the final URL"
    )]
    TokenRedirect {
        endpoint: String,
        status: u16,
        location: String,
    },
    #[error("OAuth token endpoint answered without an `access_token`")]
    NoAccessToken,
    #[error("OAuth token request failed: {reason}")]
    TokenTransport { reason: String },
}

impl AuthError {
    /// Worth trying again within the poll: the token endpoint was unreachable or had a 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            AuthError::TokenTransport { .. } => true,
            AuthError::TokenRejected { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

fn describe_oauth_error(error: Option<&str>, description: Option<&str>) -> String {
    match (error, description) {
        (Some(error), Some(description)) => format!(": {error} ({description})"),
        (Some(error), None) => format!(": {error}"),
        (None, Some(description)) => format!(": {description}"),
        (None, None) => String::new(),
    }
}

/// One instance's authentication, shared by all of its polls.
pub struct AuthSession {
    scheme: Scheme,
    /// Whose secrets a provider could echo back in an error body (docs/design.md#guarantees).
    secrets: SecretsOf,
    /// Built from `secrets` the first time an answer needs masking: most polls never do, and a
    /// tick runs ten thousand of them.
    masker: std::sync::OnceLock<Masker>,
}

/// What the masker of a session hides.
enum SecretsOf {
    /// Those of the authentication alone ([`AuthSession::new`]).
    Auth(Auth),
    /// Every secret of the instance ([`AuthSession::for_instance`]).
    Instance(Arc<Instance>),
}

enum Scheme {
    /// Basic, API key, Bearer, hub, or nothing: headers fixed for the session's life.
    Static(HeaderMap),
    OAuth(Box<OAuthSession>),
}

struct OAuthSession {
    instance: String,
    token_url: Url,
    client_id: Secret,
    client_secret: Secret,
    file_refresh_token: Secret,
    credentials_hash: String,
    store: Arc<dyn TokenStore>,
    current: RwLock<Option<CurrentToken>>,
    /// Serialises refreshes: concurrent polls that all see a 401 refresh once, not N times.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct CurrentToken {
    stored: StoredToken,
    header: HeaderValue,
    /// Bumped on every refresh, so a request can tell whether its 401 is already handled.
    generation: u64,
}

impl AuthSession {
    pub fn new(
        instance_name: &str,
        auth: &Auth,
        token_store: Arc<dyn TokenStore>,
    ) -> Result<AuthSession, AuthError> {
        let scheme = scheme(instance_name, auth, token_store)?;
        Ok(AuthSession {
            scheme,
            secrets: SecretsOf::Auth(auth.clone()),
            masker: std::sync::OnceLock::new(),
        })
    }

    /// The session of `instance`, masking every secret of the instance (not only those of
    /// its authentication) in the provider text it hands out: what polls and `try` use.
    pub fn for_instance(
        instance: &Arc<Instance>,
        token_store: Arc<dyn TokenStore>,
    ) -> Result<AuthSession, AuthError> {
        Ok(AuthSession {
            scheme: scheme(&instance.name, &instance.auth, token_store)?,
            secrets: SecretsOf::Instance(Arc::clone(instance)),
            masker: std::sync::OnceLock::new(),
        })
    }

    fn masker(&self) -> &Masker {
        self.masker.get_or_init(|| match &self.secrets {
            SecretsOf::Auth(auth) => Masker::for_requests(auth, &[]),
            SecretsOf::Instance(instance) => Masker::for_instance(instance),
        })
    }
}

/// The headers (or the OAuth session) that authenticate `auth`'s requests.
fn scheme(
    instance_name: &str,
    auth: &Auth,
    token_store: Arc<dyn TokenStore>,
) -> Result<Scheme, AuthError> {
    let scheme = match auth {
        Auth::None => Scheme::Static(HeaderMap::new()),
        Auth::Basic { username, password } => {
            let pair = format!("{username}:{}", password.expose());
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            authorization(format!("Basic {encoded}"), "username or password")?
        }
        Auth::ApiKey { header, key } => {
            let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                AuthError::InvalidHeaderName {
                    name: header.clone(),
                }
            })?;
            let mut headers = HeaderMap::new();
            headers.insert(name, secret_header(key.expose(), "API key")?);
            Scheme::Static(headers)
        }
        Auth::Bearer { token } => {
            authorization(format!("Bearer {}", token.expose()), "access token")?
        }
        Auth::Hub {
            user,
            organization,
            element,
        } => authorization(
            format!(
                "User {}, Organization {}, Element {}",
                user.expose(),
                organization.expose(),
                element.expose()
            ),
            "Open Connectors secrets",
        )?,
        Auth::OAuthRefresh {
            token_url,
            client_id,
            client_secret,
            refresh_token,
        } => Scheme::OAuth(Box::new(OAuthSession {
            instance: instance_name.to_owned(),
            token_url: token_url.clone(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            file_refresh_token: refresh_token.clone(),
            credentials_hash: credentials_hash(auth),
            store: token_store,
            current: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        })),
    };
    Ok(scheme)
}

impl AuthSession {
    /// `text` (a provider's error body) with every secret of the session replaced by `***`:
    /// the configured credentials and, with OAuth, the access and refresh tokens in use. Every
    /// excerpt of a provider answer goes through here before it enters an error.
    pub fn mask(&self, text: &str) -> String {
        match &self.scheme {
            Scheme::OAuth(oauth) => match oauth.current_token() {
                Some(token) => self.masker().with(token_secrets(&token.stored)).text(text),
                None => self.masker().text(text),
            },
            Scheme::Static(_) => self.masker().text(text),
        }
    }

    /// Adds the authentication headers, replacing any of the same name set before (an
    /// `Authorization` in `http.headers` loses to the configured credentials).
    pub fn apply(&self, builder: RequestBuilder) -> RequestBuilder {
        match &self.scheme {
            Scheme::Static(headers) => builder.headers(headers.clone()),
            Scheme::OAuth(oauth) => match oauth.current_token() {
                Some(token) => builder.header(AUTHORIZATION, token.header),
                // `prepare` always runs first; without a token the provider's 401 says why.
                None => builder,
            },
        }
    }

    /// Where tokens come from (OAuth 2 refresh), for the outbound policy's check.
    pub fn token_url(&self) -> Option<&Url> {
        match &self.scheme {
            Scheme::OAuth(oauth) => Some(&oauth.token_url),
            Scheme::Static(_) => None,
        }
    }

    /// True when a 401 can be answered by refreshing the token (OAuth 2 refresh).
    pub fn refreshes_on_unauthorized(&self) -> bool {
        matches!(self.scheme, Scheme::OAuth(_))
    }

    /// Which token `apply` sends now; pass it to [`AuthSession::refresh_after_unauthorized`].
    pub fn token_generation(&self) -> u64 {
        match &self.scheme {
            Scheme::OAuth(oauth) => oauth.current_token().map_or(0, |token| token.generation),
            Scheme::Static(_) => 0,
        }
    }

    /// Makes sure a usable token is at hand: the one in memory, else the stored one, else a
    /// fresh one from the token endpoint. Cheap when a valid token is loaded.
    pub async fn prepare(&self, client: &Client, timeout: Duration) -> Result<(), AuthError> {
        let Scheme::OAuth(oauth) = &self.scheme else {
            return Ok(());
        };
        if oauth
            .current_token()
            .is_some_and(|token| !token.expires_soon())
        {
            return Ok(());
        }
        let _refreshing = oauth.refreshing.lock().await;
        // Another request may have refreshed while this one waited for the lock.
        if oauth
            .current_token()
            .is_some_and(|token| !token.expires_soon())
        {
            return Ok(());
        }
        if oauth.current_token().is_none()
            && let Some(stored) = oauth.store.load(&oauth.instance, &oauth.credentials_hash)
            && let Ok(header) = bearer_header(&stored.access_token)
        {
            let token = CurrentToken {
                stored,
                header,
                generation: 1,
            };
            if !token.expires_soon() {
                oauth.set_current(token);
                return Ok(());
            }
        }
        oauth.refresh(client, timeout, self.masker()).await
    }

    /// After a 401 sent with token `rejected_generation`: refreshes, unless another request
    /// already did since.
    pub async fn refresh_after_unauthorized(
        &self,
        client: &Client,
        timeout: Duration,
        rejected_generation: u64,
    ) -> Result<(), AuthError> {
        let Scheme::OAuth(oauth) = &self.scheme else {
            return Ok(());
        };
        let _refreshing = oauth.refreshing.lock().await;
        if oauth
            .current_token()
            .is_some_and(|token| token.generation != rejected_generation)
        {
            return Ok(());
        }
        oauth.refresh(client, timeout, self.masker()).await
    }
}

/// The access token and rotated refresh token of a stored session, for masking.
pub fn token_secrets(token: &StoredToken) -> Vec<String> {
    std::iter::once(&token.access_token)
        .chain(token.refresh_token.as_ref())
        .map(|secret| secret.expose().to_owned())
        .collect()
}

/// Every secret of `instance` plus the OAuth tokens `tokens` holds for it: what a poll's
/// error is masked with before it is printed, logged or stored.
pub fn instance_masker(instance: &Instance, tokens: &dyn TokenStore) -> Masker {
    let masker = Masker::for_instance(instance);
    if !matches!(*instance.auth, Auth::OAuthRefresh { .. }) {
        return masker;
    }
    match tokens.load(&instance.name, &credentials_hash(&instance.auth)) {
        Some(token) => masker.with(token_secrets(&token)),
        None => masker,
    }
}

impl OAuthSession {
    fn current_token(&self) -> Option<CurrentToken> {
        self.current.read().ok()?.clone()
    }

    fn set_current(&self, token: CurrentToken) {
        if let Ok(mut current) = self.current.write() {
            *current = Some(token);
        }
    }

    /// The refresh-token grant (RFC 6749 section 6), client credentials in the form body.
    async fn refresh(
        &self,
        client: &Client,
        timeout: Duration,
        masker: &Masker,
    ) -> Result<(), AuthError> {
        let previous = self.current_token();
        let stored_refresh = previous
            .as_ref()
            .and_then(|token| token.stored.refresh_token.clone())
            .or_else(|| {
                self.store
                    .load(&self.instance, &self.credentials_hash)
                    .and_then(|stored| stored.refresh_token)
            });
        let refresh_token = stored_refresh.unwrap_or_else(|| self.file_refresh_token.clone());
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", self.client_id.expose()),
            ("client_secret", self.client_secret.expose()),
        ];
        let response = client
            .post(self.token_url.clone())
            .timeout(timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|error| AuthError::TokenTransport {
                reason: error.without_url().to_string(),
            })?;
        let status = response.status();
        // The client follows no redirect by itself (see `http::client`): a 3xx stops here.
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|location| self.token_url.join(location).ok())
                .map_or_else(
                    || "nowhere (no Location)".to_owned(),
                    |url| without_query(&url),
                );
            return Err(AuthError::TokenRedirect {
                endpoint: without_query(&self.token_url),
                status: status.as_u16(),
                location,
            });
        }
        let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            // The endpoint may quote what it was sent (the refresh token, the client secret).
            let masker = masker.with([refresh_token.expose().to_owned()]);
            let field = |name: &str| {
                body.get(name)
                    .and_then(serde_json::Value::as_str)
                    .map(|text| {
                        let text: String =
                            text.chars().filter(|c| !c.is_control()).take(200).collect();
                        masker.text(&text)
                    })
            };
            return Err(AuthError::TokenRejected {
                status: status.as_u16(),
                error: field("error"),
                description: field("error_description"),
            });
        }
        let stored = token_from_response(&body, Utc::now())?;
        let header = bearer_header(&stored.access_token)?;
        self.store
            .save(&self.instance, &self.credentials_hash, &stored);
        self.set_current(CurrentToken {
            stored,
            header,
            generation: previous.map_or(1, |token| token.generation + 1),
        });
        Ok(())
    }
}

impl CurrentToken {
    fn expires_soon(&self) -> bool {
        self.stored
            .expires_at
            .is_some_and(|expires_at| expires_at - EXPIRY_MARGIN <= Utc::now())
    }
}

/// Reads an OAuth token response: `access_token`, optional `expires_in` (seconds, a number or
/// a numeric string) and an optional rotated `refresh_token`.
fn token_from_response(
    body: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<StoredToken, AuthError> {
    let text = |name: &str| {
        body.get(name)
            .and_then(serde_json::Value::as_str)
            .filter(|text| !text.is_empty())
    };
    let access_token = text("access_token").ok_or(AuthError::NoAccessToken)?;
    let expires_in = match body.get("expires_in") {
        Some(serde_json::Value::Number(number)) => number.as_i64(),
        Some(serde_json::Value::String(text)) => text.trim().parse().ok(),
        _ => None,
    };
    Ok(StoredToken {
        access_token: Secret::new(access_token),
        refresh_token: text("refresh_token").map(Secret::new),
        expires_at: expires_in
            .filter(|seconds| *seconds > 0)
            .and_then(TimeDelta::try_seconds)
            .and_then(|lifetime| now.checked_add_signed(lifetime)),
    })
}

/// Hex SHA-256 of the OAuth settings (every field length-prefixed, so no two different
/// settings hash alike). Other families have nothing stored, so they hash their kind only.
pub fn credentials_hash(auth: &Auth) -> String {
    let mut hasher = Sha256::new();
    let mut field = |value: &str| {
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    };
    match auth {
        Auth::OAuthRefresh {
            token_url,
            client_id,
            client_secret,
            refresh_token,
        } => {
            field(token_url.as_str());
            field(client_id.expose());
            field(client_secret.expose());
            field(refresh_token.expose());
        }
        other => field(other.kind()),
    }
    hex::encode(hasher.finalize())
}

/// A URL as shown in a message: scheme, host, port and path, never the query (it may carry a
/// credential).
fn without_query(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

fn authorization(value: String, what: &'static str) -> Result<Scheme, AuthError> {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, secret_header(&value, what)?);
    Ok(Scheme::Static(headers))
}

fn bearer_header(token: &Secret) -> Result<HeaderValue, AuthError> {
    secret_header(&format!("Bearer {}", token.expose()), "OAuth access token")
}

/// A header value marked sensitive, so that hyper never logs it.
fn secret_header(value: &str, what: &'static str) -> Result<HeaderValue, AuthError> {
    let mut header =
        HeaderValue::from_str(value).map_err(|_| AuthError::InvalidHeaderValue { what })?;
    header.set_sensitive(true);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn oauth(refresh_token: &str) -> Auth {
        Auth::OAuthRefresh {
            token_url: Url::parse("https://auth.example/token").unwrap(),
            client_id: Secret::new("id"),
            client_secret: Secret::new("secret"),
            refresh_token: Secret::new(refresh_token),
        }
    }

    #[test]
    fn credentials_hash_changes_with_any_credential() {
        let first = credentials_hash(&oauth("r1"));
        assert_eq!(first.len(), 64);
        assert_eq!(first, credentials_hash(&oauth("r1")));
        assert_ne!(first, credentials_hash(&oauth("r2")));
    }

    #[test]
    fn token_response_reads_expiry_and_rotation() {
        let now = Utc::now();
        let token = token_from_response(
            &json!({"access_token": "a", "expires_in": "3600", "refresh_token": "r2"}),
            now,
        )
        .unwrap();
        assert_eq!(token.access_token.expose(), "a");
        assert_eq!(token.refresh_token.unwrap().expose(), "r2");
        assert_eq!(token.expires_at, Some(now + TimeDelta::seconds(3600)));

        let bare = token_from_response(&json!({"access_token": "a"}), now).unwrap();
        assert_eq!((bare.refresh_token, bare.expires_at), (None, None));

        assert!(matches!(
            token_from_response(&json!({"token": "a"}), now),
            Err(AuthError::NoAccessToken)
        ));
    }

    #[test]
    fn memory_store_forgets_tokens_of_other_credentials() {
        let store = MemoryTokenStore::default();
        let token = StoredToken {
            access_token: Secret::new("a"),
            refresh_token: None,
            expires_at: None,
        };
        store.save("crm", "hash-1", &token);
        assert_eq!(store.load("crm", "hash-1"), Some(token));
        assert_eq!(store.load("crm", "hash-2"), None);
        assert_eq!(store.load("other", "hash-1"), None);
    }

    #[test]
    fn a_newline_in_a_credential_is_reported_without_the_value() {
        let auth = Auth::Bearer {
            token: Secret::new("abc\ndef"),
        };
        let error = AuthSession::new("crm", &auth, Arc::new(MemoryTokenStore::default()))
            .err()
            .unwrap();
        let message = error.to_string();
        assert!(message.contains("access token"), "{message}");
        assert!(!message.contains("abc"), "{message}");
    }

    #[test]
    fn token_errors_show_the_oauth_fields_only() {
        let error = AuthError::TokenRejected {
            status: 400,
            error: Some("invalid_grant".into()),
            description: None,
        };
        assert_eq!(
            error.to_string(),
            "OAuth token endpoint answered HTTP 400: invalid_grant"
        );
        assert!(!error.is_transient());
    }
}
