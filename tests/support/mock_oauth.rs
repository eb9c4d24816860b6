//! A mock OAuth 2 authorization server on loopback, for the authorization-code flow.
//!
//! `GET /authorize` records the PKCE challenge and the redirect URI and redirects the "browser"
//! back with a fresh code and the request's `state` (or with `error=access_denied`).
//! `POST /token` takes the code grant (the code once, the same redirect URI, and the verifier
//! whose S256 is the recorded challenge) and the refresh grant (rotated refresh tokens by
//! default; `revoke_all` turns every refresh token into `invalid_grant`). Its answer can be
//! switched to form encoding, an HTML page, a slow one, or one without a refresh token. The
//! access tokens it issues are shared with the mock provider (`MockAuth::AccessTokens`).

#![allow(dead_code)]

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use url::Url;

/// How the token endpoint answers a good request.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenAnswer {
    Json,
    /// `application/x-www-form-urlencoded`, as GitHub answers by default.
    Form,
    /// `200 text/html`: a login page where the token endpoint should be.
    Html,
    /// Answers after this long.
    Slow(Duration),
    /// A token without `refresh_token`.
    NoRefreshToken,
}

#[derive(Clone, Debug)]
pub struct OAuthConfig {
    pub client_id: String,
    pub client_secret: String,
    /// The client authenticates with HTTP Basic instead of form fields.
    pub basic_auth: bool,
    pub answer: TokenAnswer,
    /// `expires_in` as sent (a number or a string), or none.
    pub expires_in: Option<Value>,
    /// A new refresh token with each refresh (the old one then fails).
    pub rotate: bool,
    /// `/authorize` redirects with `error=access_denied`.
    pub deny: bool,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            client_id: "client-id-1".into(),
            client_secret: "client-secret-1".into(),
            basic_auth: false,
            answer: TokenAnswer::Json,
            expires_in: Some(json!(3600)),
            rotate: true,
            deny: false,
        }
    }
}

#[derive(Default)]
struct Live {
    /// code -> (redirect URI, PKCE challenge when one was sent)
    codes: HashMap<String, (String, Option<String>)>,
    refresh_tokens: HashSet<String>,
    issued: u64,
    /// Every token request's grant type and the code or refresh token it carried.
    token_requests: Vec<HashMap<String, String>>,
    authorize_requests: Vec<HashMap<String, String>>,
}

struct Shared {
    config: Mutex<OAuthConfig>,
    live: Mutex<Live>,
    access_tokens: Arc<Mutex<HashSet<String>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct MockOAuth {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockOAuth {
    pub async fn start(config: OAuthConfig) -> MockOAuth {
        let shared = Arc::new(Shared {
            config: Mutex::new(config),
            live: Mutex::new(Live::default()),
            access_tokens: Arc::new(Mutex::new(HashSet::new())),
        });
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockOAuth { addr, shared }
    }

    pub fn authorize_url(&self) -> Url {
        Url::parse(&format!("http://{}/authorize", self.addr)).unwrap()
    }

    pub fn token_url(&self) -> Url {
        Url::parse(&format!("http://{}/token", self.addr)).unwrap()
    }

    /// The set of access tokens in force, for `MockAuth::AccessTokens`.
    pub fn access_tokens(&self) -> Arc<Mutex<HashSet<String>>> {
        Arc::clone(&self.shared.access_tokens)
    }

    /// A code issued elsewhere (as `providerData.code` is), for `redirect_uri`, without PKCE.
    pub fn add_code(&self, code: &str, redirect_uri: &str) {
        lock(&self.shared.live)
            .codes
            .insert(code.to_owned(), (redirect_uri.to_owned(), None));
    }

    /// Every refresh token now answers `invalid_grant`; access tokens stop working too.
    pub fn revoke_all(&self) {
        lock(&self.shared.live).refresh_tokens.clear();
        lock(&self.shared.access_tokens).clear();
    }

    pub fn set_answer(&self, answer: TokenAnswer) {
        lock(&self.shared.config).answer = answer;
    }

    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        lock(&self.shared.live).token_requests.clone()
    }

    pub fn authorize_requests(&self) -> Vec<HashMap<String, String>> {
        lock(&self.shared.live).authorize_requests.clone()
    }

    /// Every token issued so far (access and refresh): none may appear in ocpoll's output.
    pub fn issued_secrets(&self) -> Vec<String> {
        let issued = lock(&self.shared.live).issued;
        (1..=issued)
            .flat_map(|n| [format!("access-{n}-"), format!("refresh-{n}-")])
            .collect()
    }
}

async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let config = lock(&shared.config).clone();
    let mut live = lock(&shared.live);
    live.authorize_requests.push(params.clone());
    let field = |name: &str| params.get(name).cloned().unwrap_or_default();
    if field("client_id") != config.client_id || field("response_type") != "code" {
        return (StatusCode::BAD_REQUEST, "unknown client").into_response();
    }
    let Ok(mut redirect) = Url::parse(&field("redirect_uri")) else {
        return (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response();
    };
    if config.deny {
        redirect
            .query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "The user denied access")
            .append_pair("state", &field("state"));
    } else {
        live.issued += 1;
        let code = format!("code-{}-secret", live.issued);
        let challenge = (field("code_challenge_method") == "S256")
            .then(|| field("code_challenge"))
            .filter(|challenge| !challenge.is_empty());
        live.codes
            .insert(code.clone(), (field("redirect_uri"), challenge));
        redirect
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &field("state"));
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, redirect.to_string())],
    )
        .into_response()
}

fn invalid(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": error, "error_description": description}).to_string(),
    )
        .into_response()
}

async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let config = lock(&shared.config).clone();
    lock(&shared.live).token_requests.push(form.clone());
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let (id, secret) = if config.basic_auth {
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|value| base64::engine::general_purpose::STANDARD.decode(value).ok())
            .and_then(|value| String::from_utf8(value).ok())
            .unwrap_or_default();
        let (id, secret) = basic.split_once(':').unwrap_or(("", ""));
        (id.to_owned(), secret.to_owned())
    } else {
        (field("client_id"), field("client_secret"))
    };
    if id != config.client_id || secret != config.client_secret {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": "invalid_client"}).to_string(),
        )
            .into_response();
    }
    if let TokenAnswer::Slow(delay) = &config.answer {
        tokio::time::sleep(*delay).await;
    }
    let mut live = lock(&shared.live);
    match field("grant_type").as_str() {
        "authorization_code" => {
            // A code works once, whatever happens next (RFC 6749 section 4.1.2).
            let Some((redirect_uri, challenge)) = live.codes.remove(&field("code")) else {
                return invalid("invalid_grant", "unknown or used code");
            };
            if redirect_uri != field("redirect_uri") {
                return invalid("invalid_grant", "redirect_uri differs");
            }
            if let Some(challenge) = challenge {
                let verifier = field("code_verifier");
                let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(Sha256::digest(verifier.as_bytes()));
                if computed != challenge {
                    return invalid("invalid_grant", "PKCE verifier does not match");
                }
            }
        }
        "refresh_token" => {
            if !live.refresh_tokens.contains(&field("refresh_token")) {
                return invalid("invalid_grant", "Token has been expired or revoked.");
            }
            if config.rotate {
                live.refresh_tokens.remove(&field("refresh_token"));
            }
        }
        _ => return invalid("unsupported_grant_type", "what grant is this"),
    }
    live.issued += 1;
    let n = live.issued;
    let access = format!("access-{n}-secret");
    lock(&shared.access_tokens).insert(access.clone());
    let mut body = json!({"access_token": access, "token_type": "Bearer"});
    let new_refresh = field("grant_type") == "authorization_code" || config.rotate;
    if new_refresh && config.answer != TokenAnswer::NoRefreshToken {
        let refresh = format!("refresh-{n}-secret");
        live.refresh_tokens.insert(refresh.clone());
        body["refresh_token"] = json!(refresh);
    }
    if let Some(expires_in) = &config.expires_in {
        body["expires_in"] = expires_in.clone();
    }
    match config.answer {
        TokenAnswer::Html => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Sign in</body></html>".to_owned(),
        )
            .into_response(),
        TokenAnswer::Form => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in body.as_object().unwrap() {
                let text = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                form.append_pair(name, &text);
            }
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
                form.finish(),
            )
                .into_response()
        }
        _ => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
    }
}
