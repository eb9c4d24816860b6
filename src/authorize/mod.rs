//! `ocpoll auth`, the OAuth 2 authorization-code flow for an operator (RFC 6749 section 4.1
//! with PKCE, RFC 7636, and loopback redirects, RFC 8252), as `rclone authorize` and
//! `gcloud auth login` run it (docs/instances.md#ocpoll-auth).
//!
//! This module holds the pure steps: the PKCE pair and `state` ([`Pkce`], [`random_state`]),
//! where the redirect goes ([`RedirectPlan`]), the authorization URL ([`authorization_url`]),
//! and reading the redirect back ([`read_redirect`]: `state` checked first, then the
//! provider's `error`, then the code). `listener` waits for the redirect on 127.0.0.1,
//! `browser` opens the URL; the command (`commands::auth`) exchanges the code and stores the
//! tokens. A code and the verifier are [`Secret`]s: nothing here prints them.

pub mod browser;
pub mod guard;
pub mod listener;

use crate::instance::Secret;
use base64::Engine;
use rand::RngExt;
use sha2::{Digest, Sha256};
use thiserror::Error;
use url::Url;

/// Why the flow stopped before a code was in hand.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The redirect carried another `state` than this run sent: an old browser tab, another
    /// run's redirect, or a forged one (RFC 6749 section 10.12). Nothing is exchanged.
    #[error(
        "the redirect's `state` does not match the one this run sent (an old tab, another \
         `ocpoll auth`, or a forged request); nothing was exchanged: run `ocpoll auth` again"
    )]
    StateMismatch,
    #[error("the provider refused the authorization: {error}{}", describe(.description.as_deref()))]
    Denied {
        error: String,
        description: Option<String>,
    },
    #[error("the redirect carries no `code` (nor an `error`): {what}")]
    NoCode { what: String },
    #[error("no redirect arrived within {} s; run `ocpoll auth` again (or raise --timeout)", .seconds)]
    Timeout { seconds: u64 },
    #[error("cannot read the pasted redirect URL: {reason}")]
    Pasted { reason: String },
}

fn describe(description: Option<&str>) -> String {
    description.map_or_else(String::new, |text| format!(" ({text})"))
}

/// A PKCE verifier and its S256 challenge (RFC 7636 section 4).
pub struct Pkce {
    pub verifier: Secret,
    pub challenge: String,
}

impl Pkce {
    pub fn generate() -> Pkce {
        let verifier = random_text(32);
        let challenge = challenge_of(&verifier);
        Pkce {
            verifier: Secret::new(verifier),
            challenge,
        }
    }
}

/// `BASE64URL(SHA256(verifier))`, unpadded.
pub fn challenge_of(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An unguessable `state` (128 bits).
pub fn random_state() -> String {
    random_text(16)
}

/// `bytes` random bytes as unpadded base64url: 32 give the 43 characters PKCE asks for.
fn random_text(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill(&mut buffer[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

/// Where the provider sends the browser back, and whether ocpoll listens for it.
#[derive(Debug, PartialEq, Eq)]
pub enum RedirectPlan {
    /// `oauth.callback.url` is loopback: listen on 127.0.0.1 at its port, redirect URI as
    /// configured (it is the one registered).
    Configured { port: u16, redirect_uri: Url },
    /// No loopback callback URL: listen on a free 127.0.0.1 port; the redirect URI
    /// `http://127.0.0.1:PORT/` must be registered with the provider (Google's desktop
    /// clients accept any loopback port).
    Ephemeral,
    /// `--no-browser`: nothing listens; the operator pastes the URL the browser ended on.
    Paste { redirect_uri: Url },
}

/// Chooses the redirect for `callback` (`oauth.callback.url`). `None` for `--no-browser`
/// without a callback URL: there is nothing to redirect to.
pub fn plan_redirect(callback: Option<&Url>, no_browser: bool) -> Option<RedirectPlan> {
    match (callback, no_browser) {
        (Some(url), true) => Some(RedirectPlan::Paste {
            redirect_uri: url.clone(),
        }),
        (None, true) => None,
        (Some(url), false) if is_loopback(url) => Some(RedirectPlan::Configured {
            port: url.port_or_known_default().unwrap_or(80),
            redirect_uri: url.clone(),
        }),
        (_, false) => Some(RedirectPlan::Ephemeral),
    }
}

/// Plain-http loopback (RFC 8252 section 7.3): 127.0.0.1, `localhost` or `[::1]`. ocpoll
/// listens on 127.0.0.1 only, whatever the name says.
pub fn is_loopback(url: &Url) -> bool {
    url.scheme() == "http"
        && matches!(
            url.host_str(),
            Some("127.0.0.1") | Some("localhost") | Some("[::1]")
        )
}

/// The redirect URI of a listener on 127.0.0.1:`port` without a configured one.
pub fn ephemeral_redirect_uri(port: u16) -> Url {
    Url::parse(&format!("http://127.0.0.1:{port}/")).expect("a loopback URL parses")
}

/// What the authorization URL carries.
pub struct AuthorizationRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a Url,
    pub scope: Option<&'a str>,
    pub state: &'a str,
    pub challenge: &'a str,
}

/// `base` (`oauth.authorization.url`, its own query kept: Google's `access_type=offline` and
/// `prompt=consent` live there) with the code request's parameters. The client id is not a
/// secret (RFC 6749 section 2.2): the URL is printed and handed to the browser.
pub fn authorization_url(base: &Url, request: &AuthorizationRequest<'_>) -> Url {
    const OURS: [&str; 7] = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    ];
    let kept: Vec<(String, String)> = base
        .query_pairs()
        .filter(|(name, _)| !OURS.contains(&name.as_ref()))
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let mut url = base.clone();
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        query.extend_pairs(&kept);
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", request.client_id)
            .append_pair("redirect_uri", request.redirect_uri.as_str());
        if let Some(scope) = request.scope {
            query.append_pair("scope", scope);
        }
        query
            .append_pair("state", request.state)
            .append_pair("code_challenge", request.challenge)
            .append_pair("code_challenge_method", "S256");
    }
    url
}

/// The code from a redirect's query, after checking `state`. The provider's `error` (its
/// `access_denied` when the user clicks "Cancel") is reported, not the query itself.
pub fn read_redirect(query: &str, expected_state: &str) -> Result<Secret, AuthorizeError> {
    let field = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let state_matches = field("state").is_some_and(|state| {
        // Constant-time: the state is the run's only proof the redirect is its own.
        state.len() == expected_state.len()
            && state
                .bytes()
                .zip(expected_state.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !state_matches {
        return Err(AuthorizeError::StateMismatch);
    }
    let printable =
        |text: String| -> String { text.chars().filter(|c| !c.is_control()).take(200).collect() };
    if let Some(error) = field("error") {
        return Err(AuthorizeError::Denied {
            error: printable(error),
            description: field("error_description").map(printable),
        });
    }
    match field("code") {
        Some(code) if !code.is_empty() => Ok(Secret::new(code)),
        _ => Err(AuthorizeError::NoCode {
            what: "the provider sent the browser back without one".to_owned(),
        }),
    }
}

/// The query of what the operator pasted: the whole redirected URL, or its query alone.
pub fn pasted_query(line: &str) -> Result<String, AuthorizeError> {
    let line = line.trim();
    if line.is_empty() {
        return Err(AuthorizeError::Pasted {
            reason: "nothing was pasted".to_owned(),
        });
    }
    match Url::parse(line) {
        Ok(url) => url
            .query()
            .map(str::to_owned)
            .ok_or(AuthorizeError::Pasted {
                reason: "the URL has no query (copy the whole address the browser ended on)"
                    .to_owned(),
            }),
        Err(_) => Ok(line.trim_start_matches('?').to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636s_s256() {
        // RFC 7636 appendix B.
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let pkce = Pkce::generate();
        assert_eq!(pkce.verifier.expose().len(), 43);
        assert_eq!(pkce.challenge, challenge_of(pkce.verifier.expose()));
        assert_ne!(random_state(), random_state());
    }

    #[test]
    fn the_redirect_listens_on_a_loopback_callbacks_port_else_on_a_free_one() {
        let loopback = Url::parse("http://127.0.0.1:8976/oauth").unwrap();
        assert_eq!(
            plan_redirect(Some(&loopback), false),
            Some(RedirectPlan::Configured {
                port: 8976,
                redirect_uri: loopback.clone()
            })
        );
        let localhost = Url::parse("http://localhost/cb").unwrap();
        assert!(matches!(
            plan_redirect(Some(&localhost), false),
            Some(RedirectPlan::Configured { port: 80, .. })
        ));
        let public = Url::parse("https://auth.example.com/oauth").unwrap();
        assert_eq!(
            plan_redirect(Some(&public), false),
            Some(RedirectPlan::Ephemeral)
        );
        // https on loopback is not something a plain listener can answer.
        let tls = Url::parse("https://127.0.0.1:8443/").unwrap();
        assert_eq!(
            plan_redirect(Some(&tls), false),
            Some(RedirectPlan::Ephemeral)
        );
        assert_eq!(plan_redirect(None, false), Some(RedirectPlan::Ephemeral));
        assert!(matches!(
            plan_redirect(Some(&public), true),
            Some(RedirectPlan::Paste { .. })
        ));
        assert_eq!(plan_redirect(None, true), None);
        assert_eq!(
            ephemeral_redirect_uri(4242).as_str(),
            "http://127.0.0.1:4242/"
        );
    }

    #[test]
    fn the_authorization_url_keeps_the_providers_parameters_and_adds_the_requests() {
        let base = Url::parse(
            "https://accounts.example/auth?access_type=offline&prompt=consent&state=stale",
        )
        .unwrap();
        let redirect = Url::parse("http://127.0.0.1:1/").unwrap();
        let url = authorization_url(
            &base,
            &AuthorizationRequest {
                client_id: "client 1",
                redirect_uri: &redirect,
                scope: Some("openid email"),
                state: "st",
                challenge: "ch",
            },
        );
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("access_type", "offline"),
                ("prompt", "consent"),
                ("response_type", "code"),
                ("client_id", "client 1"),
                ("redirect_uri", "http://127.0.0.1:1/"),
                ("scope", "openid email"),
                ("state", "st"),
                ("code_challenge", "ch"),
                ("code_challenge_method", "S256"),
            ]
        );
    }

    #[test]
    fn a_redirect_is_checked_for_its_state_before_anything_else() {
        assert_eq!(read_redirect("code=c&state=s", "s").unwrap().expose(), "c");
        assert_eq!(
            read_redirect("code=c&state=other", "s").unwrap_err(),
            AuthorizeError::StateMismatch
        );
        assert_eq!(
            read_redirect("code=c", "s").unwrap_err(),
            AuthorizeError::StateMismatch
        );
        // A forged error with a wrong state is a state mismatch, not a denial.
        assert_eq!(
            read_redirect("error=access_denied&state=x", "s").unwrap_err(),
            AuthorizeError::StateMismatch
        );
        let denied = read_redirect(
            "error=access_denied&error_description=The+user+said+no&state=s",
            "s",
        )
        .unwrap_err();
        assert_eq!(
            denied.to_string(),
            "the provider refused the authorization: access_denied (The user said no)"
        );
        assert!(matches!(
            read_redirect("state=s", "s"),
            Err(AuthorizeError::NoCode { .. })
        ));
    }

    #[test]
    fn a_pasted_redirect_may_be_the_url_or_its_query() {
        assert_eq!(
            pasted_query(" http://127.0.0.1:1/cb?code=c&state=s \n").unwrap(),
            "code=c&state=s"
        );
        assert_eq!(pasted_query("?code=c&state=s").unwrap(), "code=c&state=s");
        assert!(pasted_query("http://127.0.0.1:1/cb").is_err());
        assert!(pasted_query("  ").is_err());
    }

    #[test]
    fn errors_never_show_the_code() {
        let error = read_redirect("code=secret-code&state=x", "s").unwrap_err();
        assert!(!error.to_string().contains("secret-code"));
    }
}
