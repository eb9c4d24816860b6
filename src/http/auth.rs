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

use crate::http::token;
use crate::instance::mask::Masker;
use crate::instance::{Auth, Instance, OAuth2, Secret};
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
    /// The grant's record (docs/design.md#oauth-grants): the code already sent, a revocation.
    fn grant(&self, instance: &str, credentials_hash: &str) -> GrantRecord;
    /// Records a token request's outcome, saving `token` with it (one transaction).
    fn record(
        &self,
        instance: &str,
        credentials_hash: &str,
        event: &GrantEvent,
        token: Option<&StoredToken>,
    );
}

/// What the state remembers of an OAuth grant besides its tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantRecord {
    /// SHA-256 (hex) of the `providerData.code` already sent: that code is never sent again.
    pub code_hash: Option<String>,
    /// The token endpoint refused that code.
    pub code_rejected: bool,
    pub last_token_at: Option<DateTime<Utc>>,
    /// `refreshed`, `code exchanged`, `authorized`, or the (masked) error of the last request.
    pub last_token_result: Option<String>,
    /// The provider answered `invalid_grant` to a refresh: no poll until `ocpoll auth`.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The outcome of one token request, as recorded in the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantEvent {
    Refreshed,
    /// `ocpoll auth` stored new tokens; a revocation is over.
    Authorized,
    CodeExchanged {
        code_hash: String,
    },
    CodeRejected {
        code_hash: String,
        reason: String,
    },
    Failed {
        reason: String,
    },
    Revoked {
        reason: String,
    },
}

impl GrantEvent {
    /// The text `status` shows as the last token result; reasons are masked already.
    pub fn summary(&self) -> String {
        match self {
            GrantEvent::Refreshed => "refreshed".to_owned(),
            GrantEvent::Authorized => "authorized by `ocpoll auth`".to_owned(),
            GrantEvent::CodeExchanged { .. } => "providerData.code exchanged".to_owned(),
            GrantEvent::CodeRejected { reason, .. } => {
                format!("providerData.code rejected: {reason}")
            }
            GrantEvent::Failed { reason } => format!("failed: {reason}"),
            GrantEvent::Revoked { reason } => format!("revoked: {reason}"),
        }
    }

    /// The code this event used up, and whether it was rejected.
    pub fn code(&self) -> Option<(&str, bool)> {
        match self {
            GrantEvent::CodeExchanged { code_hash } => Some((code_hash, false)),
            GrantEvent::CodeRejected { code_hash, .. } => Some((code_hash, true)),
            _ => None,
        }
    }
}

/// SHA-256 (hex) of an authorization code: what the state keeps instead of the code.
pub fn code_hash(code: &Secret) -> String {
    hex::encode(Sha256::digest(code.expose().as_bytes()))
}

/// A [`TokenStore`] in memory, for tests and for commands that keep no state.
#[derive(Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<HashMap<String, (String, StoredToken)>>,
    grants: Mutex<HashMap<String, GrantRecord>>,
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

    fn grant(&self, instance: &str, _credentials_hash: &str) -> GrantRecord {
        let grants = self.grants.lock();
        grants
            .ok()
            .and_then(|grants| grants.get(instance).cloned())
            .unwrap_or_default()
    }

    fn record(
        &self,
        instance: &str,
        credentials_hash: &str,
        event: &GrantEvent,
        token: Option<&StoredToken>,
    ) {
        if let Ok(mut grants) = self.grants.lock() {
            let grant = grants.entry(instance.to_owned()).or_default();
            grant.last_token_at = Some(Utc::now());
            grant.last_token_result = Some(event.summary());
            grant.revoked_at = matches!(event, GrantEvent::Revoked { .. }).then(Utc::now);
            if let Some((hash, rejected)) = event.code() {
                grant.code_hash = Some(hash.to_owned());
                grant.code_rejected = rejected;
            }
        }
        if matches!(event, GrantEvent::Revoked { .. })
            && let Ok(mut tokens) = self.tokens.lock()
        {
            tokens.remove(instance);
        }
        if let Some(token) = token {
            self.save(instance, credentials_hash, token);
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
    #[error(
        "OAuth token endpoint answered HTTP {status} with {what}, not a token; is \
         `oauth.token.url` the provider's token endpoint?"
    )]
    NotAToken { status: u16, what: String },
    /// A refresh got `invalid_grant`: the refresh token was revoked or expired. Polls of the
    /// instance stop (no request is sent) until `ocpoll auth` stores new tokens.
    #[error(
        "the provider no longer accepts the OAuth grant of instance {instance:?} ({reason}); \
         its polls are stopped until `ocpoll auth {instance}` stores new tokens"
    )]
    Revoked { instance: String, reason: String },
    #[error(
        "providerData.code of instance {instance:?} was refused ({reason}); codes are single-use \
         and expire within minutes, and it is never sent again: run `ocpoll auth {instance}`"
    )]
    CodeRejected { instance: String, reason: String },
    #[error(
        "instance {instance:?} has no OAuth token yet: run `ocpoll auth {instance}` (or put a \
         fresh authorization code in its providerData.code)"
    )]
    NeedsAuthorization { instance: String },
    #[error("OAuth token request failed: {reason}")]
    TokenTransport {
        reason: String,
        /// Whether trying again within the poll can help (not after a DNS or TLS failure).
        retried: bool,
    },
}

impl AuthError {
    /// The endpoint's answer means the grant itself is dead (RFC 6749 section 5.2), not that
    /// the request was wrong: `invalid_grant`.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, AuthError::TokenRejected { error: Some(error), .. } if error == "invalid_grant")
    }

    /// Worth trying again within the poll: the token endpoint was unreachable or had a 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            AuthError::TokenTransport { retried, .. } => *retried,
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
    settings: OAuth2,
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
        Auth::OAuth2(settings) => Scheme::OAuth(Box::new(OAuthSession {
            instance: instance_name.to_owned(),
            settings: (**settings).clone(),
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
            Scheme::OAuth(oauth) => Some(&oauth.settings.token_url),
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

    /// Makes sure a usable token is at hand: the one in memory, else the stored one (which
    /// `ocpoll auth` may just have replaced), else a fresh one from the token endpoint. Cheap
    /// when a valid token is loaded; a revoked grant fails at once, without a request.
    pub async fn prepare(&self, client: &Client, timeout: Duration) -> Result<(), AuthError> {
        let Scheme::OAuth(oauth) = &self.scheme else {
            return Ok(());
        };
        if oauth.usable_in_memory() {
            return Ok(());
        }
        let _refreshing = oauth.refreshing.lock().await;
        // Another request may have refreshed while this one waited for the lock.
        if oauth.usable_in_memory() {
            return Ok(());
        }
        oauth.obtain(client, timeout, self.masker(), None).await
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
        let current = oauth.current_token();
        if current
            .as_ref()
            .is_some_and(|token| token.generation != rejected_generation)
        {
            return Ok(());
        }
        let rejected = current.map(|token| token.stored.access_token);
        oauth
            .obtain(client, timeout, self.masker(), rejected.as_ref())
            .await
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
    if !matches!(instance.auth, Auth::OAuth2(_)) {
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

    fn usable_in_memory(&self) -> bool {
        self.current_token()
            .is_some_and(|token| !token.expires_soon())
    }

    /// A usable token, by the cheapest way left (the caller holds `refreshing`): the stored
    /// one unless it is `rejected` or expiring, else a refresh, else the exchange of an
    /// unused `providerData.code`. A revoked grant stops here, before any request.
    async fn obtain(
        &self,
        client: &Client,
        timeout: Duration,
        masker: &Masker,
        rejected: Option<&Secret>,
    ) -> Result<(), AuthError> {
        let grant = self.store.grant(&self.instance, &self.credentials_hash);
        if let Some(reason) = grant.revoked_at.and(grant.last_token_result.as_ref()) {
            self.clear_current();
            return Err(AuthError::Revoked {
                instance: self.instance.clone(),
                reason: reason.trim_start_matches("revoked: ").to_owned(),
            });
        }
        let stored = self.store.load(&self.instance, &self.credentials_hash);
        if let Some(stored) = &stored
            && rejected != Some(&stored.access_token)
            && let Ok(header) = bearer_header(&stored.access_token)
        {
            let token = CurrentToken {
                stored: stored.clone(),
                header,
                generation: self.next_generation(),
            };
            if !token.expires_soon() {
                self.set_current(token);
                return Ok(());
            }
        }
        // The stored refresh token first: it is at least as new as the one in memory, and
        // `ocpoll auth` may have replaced both (a provider may revoke the old grant then).
        let refresh_token = stored
            .and_then(|stored| stored.refresh_token)
            .or_else(|| {
                self.current_token()
                    .and_then(|token| token.stored.refresh_token)
            })
            .or_else(|| self.settings.refresh_token.clone());
        match refresh_token {
            Some(refresh_token) => self.refresh(client, timeout, masker, &refresh_token).await,
            None => self.exchange_code(client, timeout, masker, &grant).await,
        }
    }

    /// The refresh-token grant (RFC 6749 section 6). `invalid_grant` revokes the grant in the
    /// state: the instance's polls stop until `ocpoll auth`.
    async fn refresh(
        &self,
        client: &Client,
        timeout: Duration,
        masker: &Masker,
        refresh_token: &Secret,
    ) -> Result<(), AuthError> {
        let grant = token::Grant::Refresh { refresh_token };
        match token::request_token(client, &self.settings, grant, timeout, masker).await {
            Ok(mut stored) => {
                // A provider that does not rotate keeps the refresh token it gave before.
                if stored.refresh_token.is_none() {
                    stored.refresh_token = Some(refresh_token.clone());
                }
                self.store.record(
                    &self.instance,
                    &self.credentials_hash,
                    &GrantEvent::Refreshed,
                    Some(&stored),
                );
                self.install(stored)
            }
            Err(error) if error.is_invalid_grant() => {
                let reason = error.to_string();
                self.store.record(
                    &self.instance,
                    &self.credentials_hash,
                    &GrantEvent::Revoked {
                        reason: reason.clone(),
                    },
                    None,
                );
                self.clear_current();
                Err(AuthError::Revoked {
                    instance: self.instance.clone(),
                    reason,
                })
            }
            Err(error) => {
                self.store.record(
                    &self.instance,
                    &self.credentials_hash,
                    &GrantEvent::Failed {
                        reason: error.to_string(),
                    },
                    None,
                );
                Err(error)
            }
        }
    }

    /// The first poll of an instance with `providerData.code` and no token: exchanges the
    /// code once (docs/instances.md#oauth-2). A code the endpoint answered for, accepted or
    /// not, is marked used and never sent again; one that never reached an answer (the
    /// endpoint was unreachable) is tried again by the next poll.
    async fn exchange_code(
        &self,
        client: &Client,
        timeout: Duration,
        masker: &Masker,
        grant: &GrantRecord,
    ) -> Result<(), AuthError> {
        let instance = self.instance.clone();
        let (Some(code), Some(callback)) = (&self.settings.code, &self.settings.callback_url)
        else {
            return Err(AuthError::NeedsAuthorization { instance });
        };
        let hash = code_hash(code);
        if grant.code_hash.as_deref() == Some(hash.as_str()) {
            return Err(match (grant.code_rejected, &grant.last_token_result) {
                (true, Some(reason)) => AuthError::CodeRejected {
                    instance,
                    reason: reason
                        .trim_start_matches("providerData.code rejected: ")
                        .to_owned(),
                },
                _ => AuthError::NeedsAuthorization { instance },
            });
        }
        let request = token::Grant::Code {
            code,
            redirect_uri: callback.as_str(),
            verifier: None,
        };
        let answer = token::request_token(client, &self.settings, request, timeout, masker).await;
        let rejected = |reason: String| {
            let event = GrantEvent::CodeRejected {
                code_hash: hash.clone(),
                reason: reason.clone(),
            };
            self.store
                .record(&self.instance, &self.credentials_hash, &event, None);
            AuthError::CodeRejected {
                instance: self.instance.clone(),
                reason,
            }
        };
        match answer {
            Ok(stored) if stored.refresh_token.is_none() => Err(rejected(
                "the token endpoint issued no refresh token, so polls would stop within the \
                 hour; nothing was stored"
                    .to_owned(),
            )),
            Ok(stored) => {
                let event = GrantEvent::CodeExchanged {
                    code_hash: hash.clone(),
                };
                self.store.record(
                    &self.instance,
                    &self.credentials_hash,
                    &event,
                    Some(&stored),
                );
                self.install(stored)
            }
            Err(error @ AuthError::TokenTransport { .. }) => Err(error),
            Err(error) => Err(rejected(error.to_string())),
        }
    }

    fn install(&self, stored: StoredToken) -> Result<(), AuthError> {
        let header = bearer_header(&stored.access_token)?;
        self.set_current(CurrentToken {
            stored,
            header,
            generation: self.next_generation(),
        });
        Ok(())
    }

    fn next_generation(&self) -> u64 {
        self.current.read().ok().map_or(1, |current| {
            current.as_ref().map_or(1, |token| token.generation + 1)
        })
    }

    fn clear_current(&self) {
        if let Ok(mut current) = self.current.write() {
            *current = None;
        }
    }
}

impl CurrentToken {
    fn expires_soon(&self) -> bool {
        self.stored
            .expires_at
            .is_some_and(|expires_at| expires_at - EXPIRY_MARGIN <= Utc::now())
    }
}

/// Hex SHA-256 of the OAuth settings (every field length-prefixed, so no two different
/// settings hash alike). Other families have nothing stored, so they hash their kind only.
/// The refresh flow hashes as it always did, so an upgrade keeps its stored (rotated)
/// tokens; the code flow adds a marker instead of a refresh token. The code, the scope and
/// the token parameters are left out: removing a used code from the file keeps the tokens.
pub fn credentials_hash(auth: &Auth) -> String {
    fn field(hasher: &mut Sha256, value: &str) {
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    }
    let mut hasher = Sha256::new();
    match auth {
        Auth::OAuth2(oauth) => {
            field(&mut hasher, oauth.token_url.as_str());
            field(&mut hasher, oauth.client_id.expose());
            field(&mut hasher, oauth.client_secret.expose());
            match &oauth.refresh_token {
                Some(refresh_token) => field(&mut hasher, refresh_token.expose()),
                // Not length-prefixed: no refresh token's field can equal it.
                None => hasher.update(b"authorization-code"),
            }
        }
        other => field(&mut hasher, other.kind()),
    }
    hex::encode(hasher.finalize())
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

    fn oauth(refresh_token: &str) -> Auth {
        Auth::OAuth2(Box::new(OAuth2 {
            token_url: Url::parse("https://auth.example/token").unwrap(),
            client_id: Secret::new("id"),
            client_secret: Secret::new("secret"),
            refresh_token: Some(Secret::new(refresh_token)).filter(|r| !r.expose().is_empty()),
            client_auth: Default::default(),
            token_params: Vec::new(),
            authorization_url: None,
            callback_url: None,
            scope: None,
            code: None,
        }))
    }

    #[test]
    fn credentials_hash_changes_with_any_credential() {
        let first = credentials_hash(&oauth("r1"));
        assert_eq!(first.len(), 64);
        assert_eq!(first, credentials_hash(&oauth("r1")));
        assert_ne!(first, credentials_hash(&oauth("r2")));
        // The code flow (no refresh token in the file) is another grant.
        assert_ne!(credentials_hash(&oauth("")), credentials_hash(&oauth("r1")));
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
