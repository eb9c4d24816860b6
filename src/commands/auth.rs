//! `ocpoll auth INSTANCE`: run the authorization-code flow (`authorize`) for one instance,
//! exchange the code, store the tokens in the state (docs/instances.md#ocpoll-auth).
//!
//! It takes no poller lock, so it works beside the daemon: the tokens go into the state in
//! one short SQLite transaction (as `state reset` writes), and the daemon reads them at its
//! next poll. Only one `ocpoll auth` runs per state at a time (`authorize::guard`). It
//! prints which instance has a token and when it expires, never a token or the code.

use crate::authorize::{
    self, AuthorizationRequest, AuthorizeError, Pkce, RedirectPlan, browser, guard, listener,
};
use crate::cli::AuthArgs;
use crate::commands::{CommandError, exit, runtime};
use crate::config::Config;
use crate::http::auth::credentials_hash;
use crate::http::token::{self, Grant};
use crate::http::{GrantEvent, HttpClient, Redirects, StoredToken};
use crate::instance::mask::Masker;
use crate::instance::{self, Auth, Instance, OAuth2, Secret, UnresolvedSecrets};
use chrono::{SecondsFormat, Utc};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

pub fn run(args: &AuthArgs, config: &Config) -> ExitCode {
    match authorize(args, config) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(stop) => stop.print(),
    }
}

fn authorize(args: &AuthArgs, config: &Config) -> Result<(), CommandError> {
    let instance = find_instance(&args.instance, config)?;
    let oauth = oauth_of(&instance)?;
    let base = oauth.authorization_url.as_ref().ok_or_else(|| {
        unusable(format!(
            "instance {:?} has no oauth.authorization.url: set it to the provider's \
             authorization endpoint (Google: https://accounts.google.com/o/oauth2/v2/auth)",
            instance.name
        ))
    })?;
    let plan = authorize::plan_redirect(oauth.callback_url.as_ref(), args.no_browser).ok_or_else(
        || {
            unusable(
                "--no-browser needs oauth.callback.url: the redirect URI registered with the \
                 provider, whose address you paste back",
            )
        },
    )?;
    let http = HttpClient::with_egress(Redirects::Follow, config.http.egress())
        .map_err(|error| failure(error.to_string()))?;
    let client = http
        .token_client(&oauth.token_url, &instance.http)
        .map_err(|error| failure(format!("oauth.token.url: {error}")))?;
    // One `auth` per state file; a database has no file to put the guard beside.
    let file = match config.state_location() {
        crate::state::StateLocation::File(path) => Some(path),
        crate::state::StateLocation::Postgres(_) => None,
    };
    let _guard = file
        .as_deref()
        .map(guard::acquire)
        .transpose()
        .map_err(|error| match error {
            guard::GuardError::Held { pid } => CommandError {
                code: exit::LOCKED,
                message: format!(
                    "another `ocpoll auth`{} is waiting for its redirect on this state; let it \
                 finish (or stop it) first",
                    pid.map_or_else(String::new, |pid| format!(" (pid {pid})"))
                ),
            },
            guard::GuardError::Io { path, error } => {
                unusable(format!("cannot lock {}: {error}", path.display()))
            }
        })?;
    let pkce = Pkce::generate();
    let state = authorize::random_state();
    let flow = Flow {
        instance: &instance,
        oauth,
        base,
        pkce: &pkce,
        state: &state,
        args,
    };
    let token = runtime()?.block_on(async {
        let (code, redirect_uri) = flow.code(plan).await?;
        flow.exchange(&client, &code, &redirect_uri).await
    })?;
    store(config, &instance, &token)?;
    report(&instance.name, &token);
    Ok(())
}

/// The instance named `wanted` in the instances folder, or the instance file `wanted`.
fn find_instance(wanted: &str, config: &Config) -> Result<Arc<Instance>, CommandError> {
    let secrets = config.secret_source();
    let path = Path::new(wanted);
    let loaded = if path.is_file() {
        instance::load_file(path, UnresolvedSecrets::Fail, &secrets)
    } else {
        instance::load_all(
            std::slice::from_ref(&config.instances),
            UnresolvedSecrets::Fail,
            &secrets,
        )
        .into_iter()
        .find(|file| file.is_file && file.name.as_deref() == Some(wanted))
        .ok_or_else(|| {
            unusable(format!(
                "no instance named {wanted:?} in {} (give its name or its file)",
                config.instances.display()
            ))
        })?
    };
    if loaded.has_errors() {
        for finding in &loaded.findings {
            eprintln!("{}", finding.display_for(&loaded.path));
        }
    }
    loaded.instance.ok_or_else(|| {
        unusable(format!(
            "{} has errors; fix them first (`ocpoll validate` shows them)",
            loaded.path.display()
        ))
    })
}

fn oauth_of(instance: &Instance) -> Result<&OAuth2, CommandError> {
    match &*instance.auth {
        Auth::OAuth2(oauth) => Ok(oauth),
        other => Err(unusable(format!(
            "instance {:?} does not use OAuth 2 (its authentication: {}); `ocpoll auth` needs \
             oauth.token.url, oauth.api.key, oauth.api.secret and oauth.authorization.url",
            instance.name,
            other.kind()
        ))),
    }
}

/// One run of the flow's parts.
struct Flow<'a> {
    instance: &'a Instance,
    oauth: &'a OAuth2,
    base: &'a Url,
    pkce: &'a Pkce,
    state: &'a str,
    args: &'a AuthArgs,
}

impl Flow<'_> {
    /// Prints the URL, then waits for the redirect (listening, or reading a pasted URL).
    async fn code(&self, plan: RedirectPlan) -> Result<(Secret, Url), CommandError> {
        let listening = match &plan {
            RedirectPlan::Configured { port, .. } => {
                Some(listener::bind(*port).await.map_err(|error| {
                    failure(format!(
                        "cannot listen on 127.0.0.1:{port}, the port of oauth.callback.url: \
                             {error} (is another program, or another `ocpoll auth`, using it?)"
                    ))
                })?)
            }
            RedirectPlan::Ephemeral => Some(
                listener::bind(0)
                    .await
                    .map_err(|error| failure(format!("cannot listen on 127.0.0.1: {error}")))?,
            ),
            RedirectPlan::Paste { .. } => None,
        };
        let redirect_uri = match (&plan, &listening) {
            (RedirectPlan::Configured { redirect_uri, .. }, _)
            | (RedirectPlan::Paste { redirect_uri }, _) => redirect_uri.clone(),
            (RedirectPlan::Ephemeral, Some(listener)) => {
                let port = listener
                    .local_addr()
                    .map_err(|error| failure(error.to_string()))?
                    .port();
                authorize::ephemeral_redirect_uri(port)
            }
            (RedirectPlan::Ephemeral, None) => unreachable!("an ephemeral plan listens"),
        };
        let url = authorize::authorization_url(
            self.base,
            &AuthorizationRequest {
                client_id: self.oauth.client_id.expose(),
                redirect_uri: &redirect_uri,
                scope: self.oauth.scope.as_deref(),
                state: self.state,
                challenge: &self.pkce.challenge,
            },
        );
        let timeout = self.args.timeout;
        println!(
            "To authorize instance {}, open this URL in a browser:\n\n  {url}\n",
            self.instance.name
        );
        if matches!(plan, RedirectPlan::Ephemeral) {
            println!(
                "oauth.callback.url is not a loopback URL, so ocpoll listens on {redirect_uri} \
                 instead: that redirect URI must be registered with the provider."
            );
        }
        let code = match listening {
            Some(listening) => {
                if let Err(reason) =
                    browser::open(url.as_str(), std::env::var("BROWSER").ok().as_deref())
                {
                    eprintln!("ocpoll: no browser opened ({reason}); open the URL yourself");
                }
                println!(
                    "Waiting up to {} for the redirect to {redirect_uri} ...",
                    humantime::format_duration(timeout)
                );
                listener::wait_for_redirect(listening, redirect_uri.path(), self.state, timeout)
                    .await
            }
            None => {
                println!(
                    "Then paste here the address the browser was sent to (it starts with \
                     {redirect_uri}; the page itself may fail to load):"
                );
                read_pasted(timeout)
                    .await
                    .and_then(|line| authorize::pasted_query(&line))
                    .and_then(|query| authorize::read_redirect(&query, self.state))
            }
        }
        .map_err(|error: AuthorizeError| failure(error.to_string()))?;
        Ok((code, redirect_uri))
    }

    /// Exchanges the code; a missing refresh token stores nothing (the instance would stop
    /// polling within the hour, and the code is spent either way).
    async fn exchange(
        &self,
        client: &reqwest::Client,
        code: &Secret,
        redirect_uri: &Url,
    ) -> Result<StoredToken, CommandError> {
        let masker = Masker::for_instance(self.instance);
        let grant = Grant::Code {
            code,
            redirect_uri: redirect_uri.as_str(),
            verifier: Some(&self.pkce.verifier),
        };
        let token = token::request_token(
            client,
            self.oauth,
            grant,
            self.instance.http.timeout,
            &masker,
        )
        .await
        .map_err(|error| {
            failure(format!(
                "exchanging the authorization code failed: {error}; nothing was stored"
            ))
        })?;
        if token.refresh_token.is_none() && self.oauth.refresh_token.is_none() {
            return Err(failure(
                "the token endpoint issued no refresh token, so polls would stop when the \
                 access token expires; nothing was stored. Providers issue one for offline \
                 access: Google with access_type=offline&prompt=consent in \
                 oauth.authorization.url's query, others with a scope such as offline_access",
            ));
        }
        Ok(token)
    }
}

/// A line of stdin, read on a thread of its own (stdin cannot be cancelled), within `timeout`.
async fn read_pasted(timeout: Duration) -> Result<String, AuthorizeError> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().read_line(&mut line).map(|_| line);
        let _ = sender.send(read);
    });
    match tokio::time::timeout(timeout, receiver).await {
        Ok(Ok(Ok(line))) => Ok(line),
        Ok(Ok(Err(error))) => Err(AuthorizeError::Pasted {
            reason: error.to_string(),
        }),
        Ok(Err(_)) => Err(AuthorizeError::Pasted {
            reason: "stdin closed".to_owned(),
        }),
        Err(_) => Err(AuthorizeError::Timeout {
            seconds: timeout.as_secs(),
        }),
    }
}

/// The tokens into the state, with the grant's record (a revocation ends here), in one
/// transaction.
fn store(config: &Config, instance: &Instance, token: &StoredToken) -> Result<(), CommandError> {
    let mut store = config
        .open_store(super::Access::Create)
        .map_err(|error| CommandError {
            code: super::state_exit_code(&error),
            message: format!("the tokens could not be stored: {error}"),
        })?;
    store
        .record_grant(
            &instance.name,
            &credentials_hash(&instance.auth),
            &GrantEvent::Authorized,
            Some(token),
        )
        .map_err(|error| failure(format!("the tokens could not be stored: {error}")))
}

fn report(name: &str, token: &StoredToken) {
    let expiry = match token.expires_at {
        Some(at) => {
            let left = (at - Utc::now()).to_std().unwrap_or_default();
            let left = Duration::from_secs(left.as_secs());
            format!(
                "its access token expires at {} (in {})",
                at.to_rfc3339_opts(SecondsFormat::Secs, true),
                humantime::format_duration(left)
            )
        }
        None => "the provider did not say when its access token expires".to_owned(),
    };
    let renewal = if token.refresh_token.is_some() {
        "ocpoll renews it with the stored refresh token"
    } else {
        "ocpoll renews it with the file's oauth.user.refresh_token"
    };
    println!(
        "Instance {name} now has an OAuth token in the state: {expiry}; {renewal}. \
         A running daemon uses it from its next poll."
    );
}

fn unusable(message: impl Into<String>) -> CommandError {
    CommandError {
        code: exit::CONFIG,
        message: message.into(),
    }
}

fn failure(message: impl Into<String>) -> CommandError {
    CommandError {
        code: exit::FAILURE,
        message: message.into(),
    }
}
