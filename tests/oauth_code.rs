//! The OAuth 2 authorization-code flow end to end (issue 16): `ocpoll auth` against a mock
//! authorization server, with an HTTP client as the browser (it follows the printed URL and
//! the provider's redirect); `providerData.code` exchanged on the first poll; a revoked grant
//! stopping an instance's polls until `ocpoll auth`; `ocpoll auth` beside a running daemon.
//!
//! A real headless browser is not used: no `chromium` on the development machine or in CI,
//! and the listener speaks plain HTTP/1.1, which the client exercises the same way.

mod support;
mod util;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::mock_oauth::{MockOAuth, OAuthConfig, TokenAnswer};
use support::mock_provider::{MockAuth, MockProvider};
use tokio::runtime::Runtime;
use url::Url;
use util::daemon::{Daemon, PATIENCE, wait_until};
use util::{Dir, LAYOUT_ENV, Run};

const CLIENT_ENV: [(&str, &str); 2] = [
    ("TEST_CLIENT_ID", "client-id-1"),
    ("TEST_CLIENT_SECRET", "client-secret-1"),
];

struct Env {
    dir: Dir,
    rt: Runtime,
    oauth: MockOAuth,
    provider: MockProvider,
}

impl Env {
    fn new(config: OAuthConfig) -> Env {
        let dir = Dir::with_layout(
            "[poll]\nretries = 1\nbackoff_initial_seconds = 0\nbackoff_max_seconds = 0\n",
        );
        let rt = util::runtime();
        let oauth = rt.block_on(MockOAuth::start(config));
        let provider = rt.block_on(
            MockProvider::builder()
                .auth(MockAuth::AccessTokens(oauth.access_tokens()))
                .start(),
        );
        Env {
            dir,
            rt,
            oauth,
            provider,
        }
    }

    /// Writes `instances.d/<name>.json`: a snapshot-mode resource on the mock provider, the
    /// authorization-code flow on the mock server, `extra` merged into `configuration`.
    fn instance(&self, name: &str, extra: Value) {
        let mut authorize = self.oauth.authorize_url();
        authorize.set_query(Some("access_type=offline"));
        let mut instance = json!({
            "name": name,
            "element": {"key": "googlesuite"},
            "configuration": {
                "oauth.token.url": self.oauth.token_url().as_str(),
                "oauth.authorization.url": authorize.as_str(),
                "oauth.api.key": "${env:TEST_CLIENT_ID}",
                "oauth.api.secret": "${env:TEST_CLIENT_SECRET}",
                "oauth.callback.url": "https://auth.example.com/oauth",
                "oauth.scope": "calendar.readonly",
                "http.timeout.seconds": 2,
                "event.notification.enabled": true,
                "event.notification.callback.url": "http://127.0.0.1:1/callback",
                "event.poller.refresh_seconds": 1,
                "event.poller.configuration": {
                    "contacts": {"url": self.provider.resource_url().as_str(), "idField": "id"}
                }
            }
        });
        if let (Value::Object(config), Value::Object(extra)) =
            (&mut instance["configuration"], extra)
        {
            config.extend(extra);
        }
        if let Some(code) = instance["configuration"]
            .as_object_mut()
            .unwrap()
            .remove("providerData.code")
        {
            instance["providerData"] = json!({"code": code});
        }
        self.dir.create(
            format!("instances.d/{name}.json"),
            &serde_json::to_string_pretty(&instance).unwrap(),
        );
    }

    fn ocpoll(&self, args: &[&str]) -> Run {
        let mut command = self.dir.command().layout().args(args);
        for (name, value) in CLIENT_ENV {
            command = command.env(name, value);
        }
        command.run()
    }

    fn status(&self) -> Value {
        let run = self.ocpoll(&["status", "--json"]);
        run.assert_code(0);
        serde_json::from_slice(&run.output.stdout).unwrap()
    }

    /// The `oauth` member of `instance`'s lines in `status --json`.
    fn token_status(&self, instance: &str) -> Value {
        let status = self.status();
        status
            .as_array()
            .and_then(|lines| lines.iter().find(|line| line["instance"] == instance))
            .map_or(Value::Null, |line| line["oauth"].clone())
    }

    /// `ocpoll auth ARGS...` running, its stdout read line by line. No browser: the test is
    /// the browser.
    fn spawn_auth(&self, args: &[&str]) -> AuthRun {
        self.spawn_auth_with_browser(args, Path::new("/nonexistent/browser"))
    }

    /// `ocpoll auth ARGS...` with `$BROWSER` set to `browser`.
    fn spawn_auth_with_browser(&self, args: &[&str], browser: &Path) -> AuthRun {
        let mut command = self.dir.std_command();
        command
            .envs(LAYOUT_ENV)
            .arg("auth")
            .args(args)
            .env("BROWSER", browser)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in CLIENT_ENV {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("ocpoll auth starts");
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        AuthRun {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The "browser": GETs `url` and returns where the authorization server redirected.
    fn authorize(&self, url: &Url) -> Url {
        self.rt.block_on(async {
            let response = client().get(url.clone()).send().await.unwrap();
            assert_eq!(response.status(), 302, "the authorization server redirects");
            let location = response.headers()["location"].to_str().unwrap();
            Url::parse(location).unwrap()
        })
    }

    /// The browser following the redirect to ocpoll's listener: status and page.
    fn follow(&self, url: &Url) -> (u16, String) {
        self.rt.block_on(async {
            let response = client().get(url.clone()).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    }

    /// Every token the mock issued, none of which may show anywhere.
    fn assert_no_secret_in(&self, text: &str) {
        for secret in self.oauth.issued_secrets() {
            assert!(!text.contains(&secret), "{secret} leaked:\n{text}");
        }
        assert!(
            !text.contains("client-secret-1"),
            "client secret leaked:\n{text}"
        );
    }
}

fn client() -> reqwest::Client {
    // reqwest's TLS brings no crypto provider of its own (Cargo.toml, src/http/crypto.rs).
    ocpoll::http::crypto::install_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct AuthRun {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl AuthRun {
    /// The authorization URL it printed.
    fn url(&mut self) -> Url {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(url) = line.strip_prefix("  http") {
                        return Url::parse(&format!("http{url}")).unwrap();
                    }
                }
                Err(_) => panic!(
                    "no authorization URL printed; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn paste(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
    }

    /// Waits for the exit (bounded): the code, all of stdout, stderr.
    fn finish(mut self) -> (i32, String, String) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("ocpoll auth did not end; saw:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (status.code().unwrap_or(-1), self.seen.join("\n"), stderr)
    }
}

/// The whole flow through the listener: the code comes back to ocpoll, is exchanged with
/// the PKCE verifier, and the tokens go to the state; the next tick polls with them.
fn authorize_through_the_listener(env: &Env, name: &str) -> (i32, String, String) {
    let mut auth = env.spawn_auth(&[name]);
    let url = auth.url();
    let back = env.authorize(&url);
    let (status, page) = env.follow(&back);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You can close this tab"), "{page}");
    auth.finish()
}

#[test]
fn auth_runs_the_flow_with_pkce_and_stores_the_tokens_in_the_state() {
    let env = Env::new(OAuthConfig::default());
    env.instance("google", json!({}));
    let (code, stdout, stderr) = authorize_through_the_listener(&env, "google");
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Instance google now has an OAuth token"),
        "{stdout}"
    );
    assert!(stdout.contains("expires at"), "{stdout}");
    // No loopback callback URL: an ephemeral port, printed for registration.
    assert!(
        stdout.contains("must be registered with the provider"),
        "{stdout}"
    );
    assert!(stderr.contains("no browser opened"), "{stderr}");
    env.assert_no_secret_in(&stdout);
    env.assert_no_secret_in(&stderr);

    let authorize = &env.oauth.authorize_requests()[0];
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_eq!(authorize["scope"], "calendar.readonly");
    assert_eq!(
        authorize["access_type"], "offline",
        "the URL's own query is kept"
    );
    assert!(authorize["redirect_uri"].starts_with("http://127.0.0.1:"));
    assert_eq!(authorize["state"].len(), 22, "128 random bits");
    let exchange = &env.oauth.token_requests()[0];
    assert_eq!(exchange["grant_type"], "authorization_code");
    assert_eq!(exchange["code_verifier"].len(), 43);
    assert_eq!(exchange["redirect_uri"], authorize["redirect_uri"]);

    let token = env.token_status("google");
    assert_eq!(token["has_token"], true, "{token}");
    assert_eq!(token["has_refresh_token"], true);
    assert!(token["expires_at"].is_string());
    assert_eq!(token["last_token_result"], "authorized by `ocpoll auth`");

    // The tokens were never written to the instance file, and the tick uses them.
    let file = std::fs::read_to_string(env.dir.join("instances.d/google.json")).unwrap();
    env.assert_no_secret_in(&file);
    env.ocpoll(&["tick", "--all"]).assert_code(0);
    assert_eq!(env.provider.request_count(), 1);
    assert_eq!(env.oauth.token_requests().len(), 1, "no refresh needed");
    let status = env.ocpoll(&["status"]);
    env.assert_no_secret_in(&status.stdout());
}

/// A real browser: Debian's headless Chromium, started by `ocpoll auth` itself through
/// `$BROWSER`, loads the authorization URL and follows the authorization server's redirect to
/// the loopback listener. Skipped, saying so, where Chromium is not installed (`.ci/run`
/// installs it).
#[test]
fn a_real_headless_chromium_completes_the_flow() {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|name| {
        Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        eprintln!("skipped: Chromium is not installed (Debian: apt-get install chromium)");
        return;
    };
    let env = Env::new(OAuthConfig::default());
    env.instance("google", json!({}));
    let profile = env.dir.join("chromium-profile");
    let browser = env.dir.join("browser.sh");
    std::fs::write(
        &browser,
        format!(
            "#!/bin/sh\nexec {chromium} --headless=new --no-sandbox --disable-gpu \
             --user-data-dir='{}' --dump-dom \"$1\" >/dev/null 2>&1\n",
            profile.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &browser,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (code, stdout, stderr) = env.spawn_auth_with_browser(&["google"], &browser).finish();
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Instance google now has an OAuth token"),
        "{stdout}"
    );
    assert!(!stderr.contains("no browser opened"), "{stderr}");
    assert_eq!(env.oauth.authorize_requests().len(), 1);
    assert_eq!(env.token_status("google")["has_token"], true);
    env.assert_no_secret_in(&stdout);
    env.assert_no_secret_in(&stderr);
}

#[test]
fn a_loopback_callback_url_is_listened_on_at_its_own_port() {
    let env = Env::new(OAuthConfig::default());
    // A port free a moment ago; the binary binds it right away.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let callback = format!("http://127.0.0.1:{port}/oauth/callback");
    env.instance("loop", json!({"oauth.callback.url": callback}));
    let mut auth = env.spawn_auth(&["loop"]);
    let url = auth.url();
    let redirect: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert!(redirect.contains(&("redirect_uri".into(), callback.clone())));
    // Another path on the listener is not the redirect and does not end the wait.
    let (status, _) =
        env.follow(&Url::parse(&format!("http://127.0.0.1:{port}/favicon.ico")).unwrap());
    assert_eq!(status, 404);
    let back = env.authorize(&url);
    assert!(back.as_str().starts_with(&callback));
    assert_eq!(env.follow(&back).0, 200);
    let (code, stdout, stderr) = auth.finish();
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stdout.contains("must be registered"), "{stdout}");
}

#[test]
fn a_wrong_state_is_refused_and_nothing_is_exchanged() {
    let env = Env::new(OAuthConfig::default());
    env.instance("google", json!({}));
    let mut auth = env.spawn_auth(&["google"]);
    let url = auth.url();
    let mut back = env.authorize(&url);
    let code: String = back
        .query_pairs()
        .find(|(name, _)| name == "code")
        .unwrap()
        .1
        .into_owned();
    back.set_query(Some(&format!("code={code}&state=forged")));
    let (status, page) = env.follow(&back);
    assert_eq!(status, 400);
    assert!(page.contains("does not match"), "{page}");
    assert!(!page.contains(&code), "{page}");
    let (exit, stdout, stderr) = auth.finish();
    assert_eq!(exit, 1, "{stdout}\n{stderr}");
    assert!(stderr.contains("`state` does not match"), "{stderr}");
    assert!(!stderr.contains(&code), "the code never shows: {stderr}");
    assert!(env.oauth.token_requests().is_empty(), "nothing exchanged");
    assert_eq!(env.token_status("google"), Value::Null);
}

#[test]
fn a_denied_authorization_says_so() {
    let env = Env::new(OAuthConfig {
        deny: true,
        ..OAuthConfig::default()
    });
    env.instance("google", json!({}));
    let mut auth = env.spawn_auth(&["google"]);
    let url = auth.url();
    let back = env.authorize(&url);
    assert_eq!(env.follow(&back).0, 400);
    let (exit, _, stderr) = auth.finish();
    assert_eq!(exit, 1);
    assert!(
        stderr.contains(
            "the provider refused the authorization: access_denied (The user denied access)"
        ),
        "{stderr}"
    );
    assert!(env.oauth.token_requests().is_empty());
}

#[test]
fn no_browser_reads_the_pasted_redirect_and_basic_client_auth_with_a_form_answer_works() {
    let env = Env::new(OAuthConfig {
        basic_auth: true,
        answer: TokenAnswer::Form,
        expires_in: Some(json!("3599")),
        ..OAuthConfig::default()
    });
    env.instance("gh", json!({"oauth.client.auth": "basic"}));
    let mut auth = env.spawn_auth(&["gh", "--no-browser"]);
    let url = auth.url();
    let redirect: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert!(redirect.contains(&(
        "redirect_uri".into(),
        "https://auth.example.com/oauth".into()
    )));
    let back = env.authorize(&url);
    auth.paste(back.as_str());
    let (exit, stdout, stderr) = auth.finish();
    assert_eq!(exit, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("paste here the address"), "{stdout}");
    assert!(
        !stderr.contains("browser"),
        "--no-browser opens none: {stderr}"
    );
    let exchange = &env.oauth.token_requests()[0];
    assert!(
        !exchange.contains_key("client_secret"),
        "Basic, not the body"
    );
    let token = env.token_status("gh");
    assert_eq!(token["has_token"], true, "{token}");
    assert!(token["expires_at"].is_string(), "expires_in as a string");
}

#[test]
fn token_endpoint_failures_are_clear_and_store_nothing() {
    let cases = [
        (TokenAnswer::Html, "with an HTML page, not a token"),
        (
            TokenAnswer::Slow(Duration::from_secs(5)),
            "no answer within 2 s",
        ),
        (TokenAnswer::NoRefreshToken, "issued no refresh token"),
    ];
    for (answer, message) in cases {
        let env = Env::new(OAuthConfig {
            answer: answer.clone(),
            ..OAuthConfig::default()
        });
        env.instance("google", json!({}));
        let (exit, stdout, stderr) = authorize_through_the_listener(&env, "google");
        assert_eq!(exit, 1, "{answer:?}: {stdout}\n{stderr}");
        assert!(stderr.contains(message), "{answer:?}: {stderr}");
        assert!(
            stderr.contains("nothing was stored"),
            "{answer:?}: {stderr}"
        );
        env.assert_no_secret_in(&stderr);
        assert_eq!(env.token_status("google"), Value::Null, "{answer:?}");
    }
}

#[test]
fn a_second_auth_while_the_first_waits_is_refused_and_the_wait_times_out() {
    let env = Env::new(OAuthConfig::default());
    env.instance("google", json!({}));
    let mut first = env.spawn_auth(&["google", "--timeout", "3s"]);
    first.url();
    let second = env.ocpoll(&["auth", "google", "--no-browser"]);
    second.assert_code(75);
    second.assert_stderr_contains("another `ocpoll auth`");
    let (exit, _, stderr) = first.finish();
    assert_eq!(exit, 1);
    assert!(
        stderr.contains("no redirect arrived within 3 s"),
        "{stderr}"
    );
    assert!(env.oauth.token_requests().is_empty());
}

#[test]
fn auth_refuses_instances_it_cannot_authorize() {
    let env = Env::new(OAuthConfig::default());
    env.instance("no-url", json!({"oauth.authorization.url": null}));
    let run = env.ocpoll(&["auth", "no-url"]);
    run.assert_code(78);
    run.assert_stderr_contains("has no oauth.authorization.url");
    env.ocpoll(&["auth", "missing"]).assert_code(78);
}

#[test]
fn provider_data_code_is_exchanged_once_on_the_first_poll() {
    let env = Env::new(OAuthConfig::default());
    env.oauth
        .add_code("pasted-code-secret", "https://auth.example.com/oauth");
    env.instance("google", json!({"providerData.code": "pasted-code-secret"}));
    env.ocpoll(&["tick", "--all"]).assert_code(0);
    let requests = env.oauth.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["grant_type"], "authorization_code");
    assert_eq!(
        requests[0]["redirect_uri"],
        "https://auth.example.com/oauth"
    );
    assert!(!requests[0].contains_key("code_verifier"));
    assert_eq!(env.provider.request_count(), 1);
    env.ocpoll(&["tick", "--all"]).assert_code(0);
    assert_eq!(
        env.oauth.token_requests().len(),
        1,
        "the code is never sent again"
    );
    assert_eq!(env.provider.request_count(), 2);
    let token = env.token_status("google");
    assert_eq!(token["last_token_result"], "providerData.code exchanged");
}

#[test]
fn a_rejected_provider_data_code_fails_the_instance_naming_ocpoll_auth_and_is_not_resent() {
    let env = Env::new(OAuthConfig::default());
    env.instance("google", json!({"providerData.code": "stale-code-secret"}));
    let run = env.ocpoll(&["tick", "--all"]);
    run.assert_code(1);
    let output = format!("{}{}", run.stdout(), run.stderr());
    assert!(output.contains("ocpoll auth google"), "{output}");
    assert!(!output.contains("stale-code-secret"), "{output}");
    env.ocpoll(&["tick", "--all"]).assert_code(1);
    assert_eq!(env.oauth.token_requests().len(), 1, "sent once");
    assert_eq!(env.provider.request_count(), 0);
}

#[test]
fn a_revoked_grant_stops_the_polls_until_ocpoll_auth() {
    // Tokens that always look about to expire: every poll refreshes.
    let env = Env::new(OAuthConfig {
        expires_in: Some(json!(1)),
        ..OAuthConfig::default()
    });
    env.instance("google", json!({}));
    assert_eq!(authorize_through_the_listener(&env, "google").0, 0);
    env.ocpoll(&["tick", "--all"]).assert_code(0);
    assert_eq!(
        env.oauth.token_requests().len(),
        2,
        "code, then one refresh"
    );
    assert_eq!(env.oauth.token_requests()[1]["grant_type"], "refresh_token");

    env.oauth.revoke_all();
    let run = env.ocpoll(&["tick", "--all"]);
    run.assert_code(1);
    let output = format!("{}{}", run.stdout(), run.stderr());
    assert!(output.contains("ocpoll auth google"), "{output}");
    let requests = env.oauth.token_requests().len();
    let polls = env.provider.request_count();
    let token = env.token_status("google");
    assert!(token["revoked_at"].is_string(), "{token}");
    assert_eq!(token["has_token"], false);
    let status = env.ocpoll(&["status"]).stdout();
    assert!(status.contains("REVOKED"), "{status}");
    env.assert_no_secret_in(&status);

    // Stopped: another tick sends nothing, to the token endpoint or the provider.
    env.ocpoll(&["tick", "--all"]).assert_code(1);
    assert_eq!(env.oauth.token_requests().len(), requests);
    assert_eq!(env.provider.request_count(), polls);

    assert_eq!(authorize_through_the_listener(&env, "google").0, 0);
    env.ocpoll(&["tick", "--all"]).assert_code(0);
    assert_eq!(env.provider.request_count(), polls + 1);
    assert_eq!(env.token_status("google")["revoked_at"], Value::Null);
}

#[test]
fn auth_works_beside_a_running_daemon_which_uses_the_tokens_at_its_next_poll() {
    let env = Env::new(OAuthConfig::default());
    env.instance("google", json!({}));
    let daemon = Daemon::start(&env.dir, "daemon.log", &[], &CLIENT_ENV);
    env.rt.block_on(wait_until("a failed poll", &daemon, || {
        daemon.log_text().contains("ocpoll auth google")
    }));
    assert_eq!(env.provider.request_count(), 0, "no token, no request");
    let (exit, stdout, stderr) = authorize_through_the_listener(&env, "google");
    assert_eq!(exit, 0, "{stdout}\n{stderr}");
    let provider = &env.provider;
    env.rt
        .block_on(wait_until("a poll with the new token", &daemon, || {
            provider.request_count() > 0
        }));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    env.assert_no_secret_in(&log);
}
