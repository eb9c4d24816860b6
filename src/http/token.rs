//! The OAuth 2 token endpoint on the wire: one request per grant (RFC 6749 sections 4.1.3 and
//! 6), and reading the answers providers really give.
//!
//! Both grants go through [`request_token`]: the refresh of a running session and the
//! authorization-code exchange of `providerData.code` and `ocpoll auth`. It sends the client
//! credentials in the form or as HTTP Basic (`oauth.client.auth`), adds `oauth.token.params`,
//! never follows a redirect (the form carries the code or the refresh token and the client
//! secret; the client of `http::client` follows none by itself), and reads JSON or
//! form-encoded answers (GitHub's default) with `expires_in` as a number or a string. What it
//! puts in an error is the OAuth `error` and `error_description` only, masked, never the body.

use crate::http::auth::{AuthError, StoredToken};
use crate::http::transport::{TransportFailure, TransportKind};
use crate::instance::mask::Masker;
use crate::instance::{ClientAuth, OAuth2, Secret};
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Client;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION};
use serde_json::{Map, Value};
use std::time::Duration;
use url::Url;

/// The most of a token answer read: real ones are a few hundred bytes.
const MAX_TOKEN_BODY: usize = 64 * 1024;

/// What is exchanged for tokens.
pub enum Grant<'a> {
    /// `grant_type=refresh_token`.
    Refresh { refresh_token: &'a Secret },
    /// `grant_type=authorization_code`, with the redirect URI the code was issued for and,
    /// from `ocpoll auth`, the PKCE verifier (`providerData.code` has none).
    Code {
        code: &'a Secret,
        redirect_uri: &'a str,
        verifier: Option<&'a Secret>,
    },
}

impl Grant<'_> {
    /// The secrets this grant sends, for masking what the endpoint answers.
    fn secrets(&self) -> Vec<String> {
        match self {
            Grant::Refresh { refresh_token } => vec![refresh_token.expose().to_owned()],
            Grant::Code { code, verifier, .. } => std::iter::once(*code)
                .chain(*verifier)
                .map(|secret| secret.expose().to_owned())
                .collect(),
        }
    }
}

/// Requests tokens from `oauth.token_url` with `grant`. Errors carry nothing secret: the
/// masker hides the instance's secrets and those of the grant in the fields quoted.
pub async fn request_token(
    client: &Client,
    oauth: &OAuth2,
    grant: Grant<'_>,
    timeout: Duration,
    masker: &Masker,
) -> Result<StoredToken, AuthError> {
    let form = form(oauth, &grant);
    let mut request = client
        .post(oauth.token_url.clone())
        .timeout(timeout)
        .header(ACCEPT, "application/json")
        .form(&form);
    if oauth.client_auth == ClientAuth::Basic {
        request = request.header(AUTHORIZATION, basic_credentials(oauth)?);
    }
    let response = request
        .send()
        .await
        .map_err(|error| transport(error, timeout))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(redirect_error(&oauth.token_url, &response));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = read_limited(response, timeout).await?;
    let parsed = parse_token_body(content_type.as_deref(), &body);
    if !status.is_success() {
        let masker = masker.with(grant.secrets());
        let fields = parsed.unwrap_or_default();
        let field = |name: &str| {
            fields.get(name).and_then(Value::as_str).map(|text| {
                let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
                masker.text(&text)
            })
        };
        return Err(AuthError::TokenRejected {
            status: status.as_u16(),
            error: field("error"),
            description: field("error_description"),
        });
    }
    let fields = parsed.map_err(|what| AuthError::NotAToken {
        status: status.as_u16(),
        what,
    })?;
    token_from_fields(&fields, Utc::now())
}

/// The form of a token request: the grant, the client in the body unless Basic is chosen,
/// then `oauth.token.params` (which the decoder keeps off the fields set here).
fn form<'a>(oauth: &'a OAuth2, grant: &'a Grant<'a>) -> Vec<(&'a str, &'a str)> {
    let mut form = match grant {
        Grant::Refresh { refresh_token } => vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ],
        Grant::Code {
            code,
            redirect_uri,
            verifier,
        } => {
            let mut form = vec![
                ("grant_type", "authorization_code"),
                ("code", code.expose()),
                ("redirect_uri", *redirect_uri),
            ];
            if let Some(verifier) = verifier {
                form.push(("code_verifier", verifier.expose()));
            }
            form
        }
    };
    match oauth.client_auth {
        ClientAuth::Body => {
            form.push(("client_id", oauth.client_id.expose()));
            form.push(("client_secret", oauth.client_secret.expose()));
        }
        // RFC 6749 2.3.1 still wants the client identified in the code grant's body when it
        // does not authenticate there; sending the id (never the secret) is harmless.
        ClientAuth::Basic => form.push(("client_id", oauth.client_id.expose())),
    }
    for (name, value) in &oauth.token_params {
        form.push((name.as_str(), value.as_str()));
    }
    form
}

/// `Basic base64(urlencode(id):urlencode(secret))`, RFC 6749 section 2.3.1, marked sensitive.
fn basic_credentials(oauth: &OAuth2) -> Result<HeaderValue, AuthError> {
    let encode = |secret: &Secret| {
        url::form_urlencoded::byte_serialize(secret.expose().as_bytes()).collect::<String>()
    };
    let pair = format!(
        "{}:{}",
        encode(&oauth.client_id),
        encode(&oauth.client_secret)
    );
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    );
    let mut header = HeaderValue::from_str(&value).map_err(|_| AuthError::InvalidHeaderValue {
        what: "OAuth client credentials",
    })?;
    header.set_sensitive(true);
    Ok(header)
}

fn transport(error: reqwest::Error, timeout: Duration) -> AuthError {
    let failure = TransportFailure::of(&error, None);
    let reason = match failure.kind {
        TransportKind::Timeout => format!("no answer within {} s", timeout.as_secs()),
        _ => failure.to_string(),
    };
    AuthError::TokenTransport {
        reason,
        retried: failure.kind.is_retried(),
    }
}

fn redirect_error(token_url: &Url, response: &reqwest::Response) -> AuthError {
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|location| token_url.join(location).ok())
        .map_or_else(
            || "nowhere (no Location)".to_owned(),
            |url| without_query(&url),
        );
    AuthError::TokenRedirect {
        endpoint: without_query(token_url),
        status: response.status().as_u16(),
        location,
    }
}

/// The body, up to [`MAX_TOKEN_BODY`]: a token endpoint that streams forever is cut off.
async fn read_limited(
    mut response: reqwest::Response,
    timeout: Duration,
) -> Result<Vec<u8>, AuthError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| transport(error, timeout))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_TOKEN_BODY {
            return Err(AuthError::NotAToken {
                status: response.status().as_u16(),
                what: format!("a body over {} KiB", MAX_TOKEN_BODY / 1024),
            });
        }
    }
    Ok(body)
}

/// The fields of a token answer, JSON or form-encoded; `Err` says what it was instead (an
/// HTML page is the usual mistake: a login page, or `oauth.token.url` naming a web page).
pub fn parse_token_body(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, String> {
    let media = content_type
        .and_then(|value| value.split(';').next())
        .map(|media| media.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    if media == "text/html" || trimmed.starts_with('<') {
        return Err("an HTML page".to_owned());
    }
    if media.ends_with("json") || trimmed.starts_with('{') {
        return match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(fields)) => Ok(fields),
            Ok(other) => Err(format!("JSON {}", crate::json::a_type(&other))),
            Err(_) => Err("malformed JSON".to_owned()),
        };
    }
    let form_like = media == "application/x-www-form-urlencoded"
        || (media.is_empty() || media == "text/plain") && trimmed.contains('=');
    if form_like {
        return Ok(url::form_urlencoded::parse(trimmed.as_bytes())
            .map(|(name, value)| (name.into_owned(), Value::String(value.into_owned())))
            .collect());
    }
    if trimmed.is_empty() {
        return Err("an empty body".to_owned());
    }
    Err(format!("a {media} body"))
}

/// Reads a token answer: `access_token`, optional `expires_in` (seconds, a number or a
/// numeric string) and an optional (new or rotated) `refresh_token`.
pub fn token_from_fields(
    fields: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<StoredToken, AuthError> {
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
    };
    let access_token = text("access_token").ok_or(AuthError::NoAccessToken)?;
    let expires_in = match fields.get("expires_in") {
        Some(Value::Number(number)) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|seconds| seconds as i64)),
        Some(Value::String(text)) => text.trim().parse().ok(),
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

/// A URL as shown in a message: scheme, host, port and path, never the query (it may carry a
/// credential).
pub fn without_query(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn reads_expiry_as_number_or_string_and_a_rotated_refresh_token() {
        let now = Utc::now();
        let token = token_from_fields(
            &fields(json!({"access_token": "a", "expires_in": "3600", "refresh_token": "r2"})),
            now,
        )
        .unwrap();
        assert_eq!(token.access_token.expose(), "a");
        assert_eq!(token.refresh_token.unwrap().expose(), "r2");
        assert_eq!(token.expires_at, Some(now + TimeDelta::seconds(3600)));

        let number =
            token_from_fields(&fields(json!({"access_token": "a", "expires_in": 60})), now);
        assert_eq!(
            number.unwrap().expires_at,
            Some(now + TimeDelta::seconds(60))
        );

        let bare = token_from_fields(&fields(json!({"access_token": "a"})), now).unwrap();
        assert_eq!((bare.refresh_token, bare.expires_at), (None, None));

        assert!(matches!(
            token_from_fields(&fields(json!({"token": "a"})), now),
            Err(AuthError::NoAccessToken)
        ));
    }

    #[test]
    fn parses_json_and_form_encoded_answers() {
        let json_body = parse_token_body(
            Some("application/json; charset=utf-8"),
            br#"{"access_token":"a","expires_in":10}"#,
        )
        .unwrap();
        assert_eq!(json_body["access_token"], "a");

        // GitHub's default answer.
        let form = parse_token_body(
            Some("application/x-www-form-urlencoded"),
            b"access_token=a%2Bb&scope=repo&token_type=bearer&expires_in=28800",
        )
        .unwrap();
        assert_eq!(form["access_token"], "a+b");
        let token = token_from_fields(&form, Utc::now()).unwrap();
        assert!(token.expires_at.is_some());

        // No content type at all, form-shaped.
        assert!(parse_token_body(None, b"access_token=a").is_ok());
    }

    #[test]
    fn says_what_a_non_token_answer_was() {
        assert_eq!(
            parse_token_body(Some("text/html"), b"<html>login</html>").unwrap_err(),
            "an HTML page"
        );
        assert_eq!(
            parse_token_body(Some("application/json"), b"<!doctype html>").unwrap_err(),
            "an HTML page"
        );
        assert_eq!(
            parse_token_body(Some("application/json"), b"{oops").unwrap_err(),
            "malformed JSON"
        );
        assert_eq!(
            parse_token_body(Some("application/json"), b"[1]").unwrap_err(),
            "JSON an array"
        );
        assert_eq!(
            parse_token_body(Some("image/png"), b"\x89PNG").unwrap_err(),
            "a image/png body"
        );
        assert_eq!(parse_token_body(None, b"").unwrap_err(), "an empty body");
    }

    fn oauth(client_auth: ClientAuth) -> OAuth2 {
        OAuth2 {
            token_url: Url::parse("https://auth.example/token").unwrap(),
            client_id: Secret::new("id:1"),
            client_secret: Secret::new("s&cret"),
            refresh_token: None,
            client_auth,
            token_params: vec![("audience".into(), "api".into())],
            authorization_url: None,
            callback_url: None,
            scope: None,
            code: None,
        }
    }

    #[test]
    fn the_form_carries_the_grant_the_client_and_the_extra_params() {
        let code = Secret::new("c");
        let verifier = Secret::new("v");
        let settings = oauth(ClientAuth::Body);
        let grant = Grant::Code {
            code: &code,
            redirect_uri: "http://127.0.0.1:1/cb",
            verifier: Some(&verifier),
        };
        assert_eq!(
            form(&settings, &grant),
            [
                ("grant_type", "authorization_code"),
                ("code", "c"),
                ("redirect_uri", "http://127.0.0.1:1/cb"),
                ("code_verifier", "v"),
                ("client_id", "id:1"),
                ("client_secret", "s&cret"),
                ("audience", "api"),
            ]
        );
        let basic = oauth(ClientAuth::Basic);
        let refresh = Secret::new("r");
        let refresh_grant = Grant::Refresh {
            refresh_token: &refresh,
        };
        let form = form(&basic, &refresh_grant);
        assert!(!form.iter().any(|(name, _)| *name == "client_secret"));
        let header = basic_credentials(&basic).unwrap();
        assert!(header.is_sensitive());
        let encoded = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        // Form-encoded before joining, so a ':' in the id cannot split the pair wrongly.
        assert_eq!(decoded, b"id%3A1:s%26cret");
    }
}
