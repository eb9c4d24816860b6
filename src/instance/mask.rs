//! Keeping an instance's secrets out of everything ocpoll prints, logs or stores
//! (docs/design.md#guarantees: secrets never printed).
//!
//! Providers and receivers echo what they were sent: an API gateway in debug mode answers a
//! 401 or a 500 with the request's headers in its body, and that body's excerpt becomes the
//! poll's error, which `tick` prints, the daemon logs and the state keeps. A [`Masker`] knows
//! the instance's secret values and replaces them with `***`:
//! - in a URL, a query value that equals or contains a secret, or whose parameter name says
//!   it is a credential (`api_key`, `access_token`, `password`, ...), becomes `***`;
//! - in any text (a URL's path, an error excerpt echoed by the provider), every occurrence of
//!   a secret, raw, percent-encoded or JSON-escaped, becomes `***`.
//!
//! One masker serves every path: `ocpoll try`'s output, a provider's error excerpt as it
//! enters a `FetchError` (`http::AuthSession::mask`), a poll's error before it is logged and
//! stored (`poll::run`), and a callback's answer before delivery logs and stores it. OAuth
//! tokens that are not in the instance file (refreshed ones, kept in the state) are added by
//! the callers that know them ([`Masker::with`]).

use crate::instance::{Auth, Instance};
use base64::Engine;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use std::fmt;
use url::Url;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Secrets shorter than this are only masked where they are a whole query value: replacing
/// every "ab" in a text would garble it and hide nothing useful.
const MIN_SUBSTRING_LEN: usize = 4;

/// Parameter names that carry credentials, matched anywhere in the lowercased name.
const CREDENTIAL_NAME_PARTS: [&str; 9] = [
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "api_key",
    "api-key",
    "credential",
    "signature",
];

/// Parameter names that are credentials only as a whole name (as parts they are too common).
const CREDENTIAL_NAMES: [&str; 5] = ["key", "sig", "auth", "code", "pass"];

/// Pagination parameters are not credentials even when named like one (`pageToken`).
const PAGINATION_NAME_PARTS: [&str; 3] = ["page", "next", "cursor"];

/// An instance's secret values, for masking. `Debug` shows only how many it holds.
pub struct Masker {
    /// Longest first, so that a secret containing another is masked whole.
    secrets: Vec<String>,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Masker({} secrets)", self.secrets.len())
    }
}

impl Masker {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Masker {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        Masker { secrets }
    }

    /// This masker with more secrets (OAuth tokens the state holds).
    pub fn with(&self, more: impl IntoIterator<Item = String>) -> Masker {
        Masker::new(self.secrets.iter().cloned().chain(more))
    }

    /// The credentials of `auth` and the `http.headers` values: what goes into a provider
    /// request, so what a provider can echo. Basic's password goes in twice: as is, and as
    /// the base64 of `username:password` that the `Authorization` header carries.
    pub fn for_requests(auth: &Auth, http_headers: &[(String, crate::instance::Secret)]) -> Masker {
        let mut secrets = auth_secrets(auth);
        secrets.extend(
            http_headers
                .iter()
                .map(|(_, value)| value.expose().to_owned()),
        );
        Masker::new(secrets)
    }

    /// Every credential of the instance: authentication (Basic's base64 form too),
    /// `http.headers` values, signature keys, and credentials written into its URLs (a
    /// password in the user info, a query value named like a credential: `?api_key=...` in
    /// `base.url`, a resource URL or the callback URL).
    pub fn for_instance(instance: &Instance) -> Masker {
        let mut secrets = auth_secrets(&instance.auth);
        secrets.extend(
            instance
                .http
                .headers
                .iter()
                .map(|(_, value)| value.expose().to_owned()),
        );
        secrets.extend(
            instance
                .signature_keys
                .iter()
                .map(|key| key.expose().to_owned()),
        );
        let urls = instance
            .base_url
            .iter()
            .chain(instance.callback_url.iter())
            .map(|url| url.as_str().to_owned())
            .chain(
                instance
                    .resources
                    .iter()
                    .map(|resource| resource.url.raw().to_owned()),
            );
        for url in urls {
            secrets.extend(url_credentials(&url));
        }
        Masker::new(secrets)
    }

    /// The URL as text with credentials in its query replaced by `***`, and any secret left
    /// elsewhere (the path, user info) masked too.
    pub fn url(&self, url: &Url) -> String {
        let mut shown = url.clone();
        if let Some(query) = url.query() {
            let pairs: Vec<String> = query.split('&').map(|pair| self.query_pair(pair)).collect();
            shown.set_query(Some(&pairs.join("&")));
        }
        if !shown.password().unwrap_or("").is_empty() {
            // `set_password` only fails for URLs that cannot have one, which this one has.
            let _ = shown.set_password(Some(MASK));
        }
        self.text(shown.as_str())
    }

    fn query_pair(&self, pair: &str) -> String {
        let Some((name, value)) = pair.split_once('=') else {
            return pair.to_owned();
        };
        let decoded_name = decode(name);
        let decoded_value = decode(value);
        if is_credential_name(&decoded_name) || self.holds_secret(&decoded_value) {
            format!("{name}={MASK}")
        } else {
            pair.to_owned()
        }
    }

    fn holds_secret(&self, value: &str) -> bool {
        self.secrets.iter().any(|secret| {
            value == secret || (secret.len() >= MIN_SUBSTRING_LEN && value.contains(secret))
        })
    }

    /// `text` with every occurrence of a secret (as is, or percent-encoded) replaced by `***`.
    pub fn text(&self, text: &str) -> String {
        let mut masked = text.to_owned();
        for secret in &self.secrets {
            if secret.len() < MIN_SUBSTRING_LEN {
                continue;
            }
            masked = masked.replace(secret.as_str(), MASK);
            // Percent-encoded (echoed URLs), JSON-escaped (echoed headers in a JSON body, some
            // servers writing `/` as `\/`).
            let encoded = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
            let json = serde_json::to_string(secret).unwrap_or_default();
            let json = json.trim_matches('"').to_owned();
            let slashes = json.replace('/', "\\/");
            for form in [encoded, json, slashes] {
                if form != *secret && !form.is_empty() {
                    masked = masked.replace(&form, MASK);
                }
            }
        }
        masked
    }
}

/// The secrets of one authentication family, as configured and as sent.
fn auth_secrets(auth: &Auth) -> Vec<String> {
    match auth {
        Auth::None => Vec::new(),
        Auth::Basic { username, password } => {
            let pair = format!("{username}:{}", password.expose());
            vec![
                password.expose().to_owned(),
                base64::engine::general_purpose::STANDARD.encode(pair),
            ]
        }
        Auth::ApiKey { key, .. } => vec![key.expose().to_owned()],
        Auth::Bearer { token } => vec![token.expose().to_owned()],
        Auth::OAuth2(oauth) => [&oauth.client_id, &oauth.client_secret]
            .into_iter()
            .chain(&oauth.refresh_token)
            .chain(&oauth.code)
            .map(|secret| secret.expose().to_owned())
            .collect(),
        Auth::Hub {
            user,
            organization,
            element,
        } => [user, organization, element]
            .map(|secret| secret.expose().to_owned())
            .to_vec(),
    }
}

/// Credentials written into a URL (a template's macros left as they are): the user info's
/// password and the values of query parameters named like credentials.
fn url_credentials(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(parsed) = Url::parse(url)
        && let Some(password) = parsed.password()
    {
        found.push(decode(password));
    }
    let query = url.split_once('?').map_or("", |(_, query)| query);
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    for pair in query.split('&') {
        if let Some((name, value)) = pair.split_once('=')
            && is_credential_name(&decode(name))
            && !value.contains("${")
        {
            found.push(decode(value));
        }
    }
    found
}

/// A query name or value as the provider reads it (`+` is a space in forms).
fn decode(raw: &str) -> String {
    percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// True for parameter names that carry credentials (`api_key`, `access_token`, `key`), but
/// not for pagination parameters named like them (`pageToken`, `next_token`).
pub fn is_credential_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if PAGINATION_NAME_PARTS.iter().any(|part| name.contains(part)) {
        return false;
    }
    CREDENTIAL_NAMES.contains(&name.as_str())
        || CREDENTIAL_NAME_PARTS.iter().any(|part| name.contains(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn query_values_equal_to_a_secret_are_masked() {
        let masker = Masker::new(["hunter2-pass".to_owned(), "ab".to_owned()]);
        assert_eq!(
            masker.url(&url("https://p.example/c?q=hunter2-pass&x=1&y=ab&z=abc")),
            "https://p.example/c?q=***&x=1&y=***&z=abc"
        );
        // Contained in a value (a filter expression), percent-encoded or not.
        assert_eq!(
            masker.url(&url("https://p.example/c?where=pw%3D%27hunter2-pass%27")),
            "https://p.example/c?where=***"
        );
    }

    #[test]
    fn credential_names_are_masked_whatever_their_value() {
        let masker = Masker::new(Vec::new());
        assert_eq!(
            masker.url(&url(
                "https://p.example/c?api_key=k1&access_token=t1&key=k2&pageToken=p1&keyword=x&nextPage=n"
            )),
            "https://p.example/c?api_key=***&access_token=***&key=***&pageToken=p1&keyword=x&nextPage=n"
        );
    }

    #[test]
    fn secrets_outside_the_query_are_masked_too() {
        let masker = Masker::new(["s3cr3t-path".to_owned()]);
        assert_eq!(
            masker.url(&url("https://user:pw@p.example/s3cr3t-path/contacts")),
            "https://user:***@p.example/***/contacts"
        );
        assert_eq!(
            masker.text("HTTP 401: bad key s3cr3t-path, and s3cr3t%2Dpath"),
            "HTTP 401: bad key ***, and ***"
        );
    }

    #[test]
    fn short_secrets_are_not_masked_inside_text() {
        let masker = Masker::new(["ab".to_owned()]);
        assert_eq!(masker.text("about"), "about");
    }

    #[test]
    fn instance_secrets_are_collected_and_debug_hides_them() {
        use crate::instance::Secret;
        let masker = Masker::new(["one-secret".to_owned(), "two-secret".to_owned()]);
        assert_eq!(masker.text("x two-secret one-secret"), "x *** ***");
        assert_eq!(format!("{masker:?}"), "Masker(2 secrets)");
        let secret = Secret::new("abcd-efgh");
        let masker = Masker::new([secret.expose().to_owned()]);
        assert!(!format!("{masker:?}").contains("abcd"));
    }

    #[test]
    fn basic_auth_is_masked_as_a_password_and_as_its_header_base64() {
        use crate::instance::Secret;
        let auth = Auth::Basic {
            username: "ada".to_owned(),
            password: Secret::new("pa/ss+word"),
        };
        let masker = Masker::for_requests(&auth, &[]);
        // base64("ada:pa/ss+word") = YWRhOnBhL3NzK3dvcmQ=
        assert_eq!(
            masker.text("Authorization: Basic YWRhOnBhL3NzK3dvcmQ= (pa/ss+word)"),
            "Authorization: Basic *** (***)"
        );
        // Quoted in JSON, with the slash escaped as some servers write it.
        assert_eq!(masker.text(r#"{"pw": "pa\/ss+word"}"#), r#"{"pw": "***"}"#);
    }

    #[test]
    fn credentials_written_in_urls_are_secrets() {
        assert_eq!(
            url_credentials("https://u:pw-1234@p.example/c?api_key=k-5678&q=${date:yyyy}&x=1"),
            ["pw-1234", "k-5678"]
        );
        assert_eq!(
            url_credentials("/contacts?token=${env:X}&page=2"),
            Vec::<String>::new()
        );
    }
}
