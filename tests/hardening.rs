//! Hardening end to end: the outbound policy (`[http] allow`/`deny` and the default denies),
//! the page and record size limits, and `validate --strict`, with the real binary against the
//! loopback mock provider and receiver.
//!
//! Nothing here may leave 127.0.0.0/8, and a refused destination must be refused before any
//! connection is attempted. Both are checked with listeners nobody serves: a connection to a
//! bound listener completes in the kernel whether or not it is accepted, so a listener whose
//! queue is empty afterwards proves that nothing connected. Where the refused address is outside
//! loopback (169.254.169.254), the binary runs with `HTTP_PROXY` pointing at such a listener on
//! 127.0.0.1: had ocpoll tried to send the request, it would have gone there, and never out.

mod support;
mod util;

use chrono::{DateTime, TimeDelta, Utc};
use ocpoll::http::egress::{Egress, GuardedResolver, HostRule};
use ocpoll::http::{AuthSession, FetchError, HttpClient, MemoryTokenStore, Redirects, RetryPolicy};
use ocpoll::instance::{Auth, HttpOptions};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use support::mock_provider::{MockProvider, Paging};
use support::mock_receiver::MockReceiver;
use url::Url;
use util::{Dir, Run};

const FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss'Z'";

/// A bound, never-accepted TCP listener: afterwards, [`Tripwire::connections`] says how many
/// connections reached it.
struct Tripwire {
    listener: TcpListener,
}

impl Tripwire {
    fn on(ip: &str) -> Tripwire {
        let listener = TcpListener::bind((ip, 0)).expect("bind a loopback tripwire");
        listener.set_nonblocking(true).expect("nonblocking");
        Tripwire { listener }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("local addr")
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    fn connections(&self) -> usize {
        std::iter::from_fn(|| self.listener.accept().ok()).count()
    }
}

/// A test folder with config.toml, instances.d and the state, plus the mock provider.
struct Setup {
    dir: Dir,
    provider: MockProvider,
    /// Where a request would go if ocpoll sent one to a non-loopback address.
    proxy: Tripwire,
}

impl Setup {
    async fn new(config: &str) -> Setup {
        Setup::with_provider(config, MockProvider::builder().start().await)
    }

    fn with_provider(config: &str, provider: MockProvider) -> Setup {
        let dir = Dir::with_layout(&format!(
            "[poll]\nretries = 0\n[delivery]\nbackoff_initial_seconds = 0\n\
             backoff_max_seconds = 0\n{config}\n"
        ));
        Setup {
            dir,
            provider,
            proxy: Tripwire::on("127.0.0.1"),
        }
    }

    /// Writes `instances.d/<name>.json` polling the mock provider (or `base_url`) and
    /// delivering to `callback`.
    fn instance(&self, name: &str, base_url: Option<&str>, callback: &str) {
        let base = self.provider.base_url();
        let body = json!({"element": {"key": "crm"}, "name": name, "configuration": {
            "base.url": base_url.unwrap_or(base.as_str()),
            "http.timeout.seconds": 2,
            "event.notification.enabled": true,
            "event.notification.callback.url": callback,
            "event.notification.timeout.seconds": 2,
            "event.notification.batch.size": 1,
            "event.poller.refresh_interval": 1,
            "event.poller.configuration": {"contacts": {
                "url": format!("/hubs/crm/contacts?where=updated_at>='${{gmtDate:{FORMAT}}}'"),
                "idField": "id",
                "datesConfiguration": {
                    "updatedDateField": "updated_at",
                    "updatedDateFormat": FORMAT,
                    "updatedDateTimezone": "GMT"
                }
            }}
        }});
        self.dir
            .create(format!("instances.d/{name}.json"), &body.to_string());
    }

    /// `ocpoll ARGS` with this folder's config, instances and state, and a proxy that catches
    /// anything sent off loopback.
    async fn ocpoll(&self, args: &[&str]) -> Run {
        self.dir
            .command()
            .env("HTTP_PROXY", self.proxy.url())
            .env("HTTPS_PROXY", self.proxy.url())
            .env("NO_PROXY", "127.0.0.1,127.0.0.2,localhost")
            .layout()
            .args(args)
            .run_async()
            .await
    }

    async fn tick(&self) -> Run {
        self.ocpoll(&["tick", "--all", "--deliver-timeout", "10s"])
            .await
    }

    /// A baseline tick, then one changed record per id: the next tick has events.
    async fn baseline_then_changes(&self, ids: &[&str]) {
        self.tick().await.assert_code(0);
        let now = Utc::now();
        for (n, id) in ids.iter().enumerate() {
            let updated = now + TimeDelta::seconds(n as i64 + 1);
            self.provider.upsert(id, updated, json!({"name": id}));
        }
    }

    async fn status_line(&self, instance: &str) -> Value {
        let run = self.ocpoll(&["status", "--json"]).await;
        run.assert_code(0);
        let lines: Vec<Value> = serde_json::from_str(&run.stdout()).expect("status JSON");
        lines
            .into_iter()
            .find(|line| line["instance"] == instance)
            .unwrap_or_else(|| panic!("no status line for {instance}\n{}", run.show()))
    }

    /// The last errors of the dead letters, oldest first.
    async fn dead_letter_errors(&self) -> Vec<String> {
        let run = self.ocpoll(&["outbox", "list", "--dead", "--json"]).await;
        run.assert_code(0);
        let rows: Vec<Value> = serde_json::from_str(&run.stdout()).expect("outbox JSON");
        rows.iter()
            .map(|row| row["last_error"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn assert_nothing_left_loopback(&self) {
        assert_eq!(
            self.proxy.connections(),
            0,
            "a request was sent towards a refused address"
        );
    }
}

fn watermark(line: &Value) -> Option<DateTime<Utc>> {
    line["watermark"].as_str().map(|text| {
        DateTime::parse_from_rfc3339(text)
            .expect("RFC 3339 watermark")
            .to_utc()
    })
}

// -------------------------------------------------------------------------------------------
// The outbound policy
// -------------------------------------------------------------------------------------------

/// The harness's own check: a request to a host outside `NO_PROXY` does reach the proxy
/// tripwire (127.0.0.5 is loopback and allowed), so an empty tripwire elsewhere means something.
#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_tripwire_catches_requests_it_is_meant_to_catch() {
    let setup = Setup::new("").await;
    setup.instance("crm", Some("http://127.0.0.5:9"), "http://127.0.0.1:9/hook");
    setup.tick().await.assert_code(1);
    assert!(setup.proxy.connections() > 0, "the proxy was not used");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_at_the_metadata_address_fails_the_poll_without_a_connection() {
    let setup = Setup::new("").await;
    let receiver = MockReceiver::start(&[]).await;
    setup.instance(
        "metadata",
        Some("http://169.254.169.254/latest/meta-data"),
        &receiver.url(),
    );
    let run = setup.tick().await;
    run.assert_code(1);
    run.assert_stdout_contains("169.254.169.254 is blocked by http.deny 169.254.0.0/16");
    let line = setup.status_line("metadata").await;
    assert_eq!(line["last_result"], "failed", "{line}");
    assert!(
        line["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("http.deny 169.254.0.0/16")),
        "{line}"
    );
    assert_eq!(watermark(&line), None, "a refused poll sets no watermark");
    setup.assert_nothing_left_loopback();
    assert_eq!(receiver.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_at_the_metadata_address_is_dead_lettered_without_a_connection() {
    let setup = Setup::new("").await;
    setup.instance(
        "crm",
        None,
        "http://169.254.169.254/hook?token=callback-secret",
    );
    setup.baseline_then_changes(&["c1"]).await;
    let run = setup.tick().await;
    // A dead letter makes the tick exit 1 (docs/design.md#the-outbox-and-delivery): cron notices.
    run.assert_code(1);
    run.assert_stdout_contains("1 dead-lettered");
    let errors = setup.dead_letter_errors().await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("169.254.169.254 is blocked by http.deny 169.254.0.0/16"),
        "{errors:?}"
    );
    for text in [run.stdout(), run.stderr(), errors.join("\n")] {
        assert!(
            !text.contains("callback-secret"),
            "the URL's query leaked: {text}"
        );
    }
    setup.assert_nothing_left_loopback();
}

/// Issue 13, item 10: the IPv4-compatible (`::a.b.c.d`) and NAT64 (`64:ff9b::/96`) forms of the
/// metadata address are that address, refused before any connection (the proxy tripwire would
/// catch a request to them otherwise).
#[tokio::test(flavor = "multi_thread")]
async fn ipv6_forms_of_the_metadata_address_fail_the_poll_without_a_connection() {
    let setup = Setup::new("").await;
    let receiver = MockReceiver::start(&[]).await;
    for (name, base) in [
        ("compatible", "http://[::169.254.169.254]/latest/meta-data"),
        ("nat64", "http://[64:ff9b::a9fe:a9fe]/latest/meta-data"),
        (
            "nat64-dotted",
            "http://[64:ff9b::169.254.169.254]/latest/meta-data",
        ),
    ] {
        setup.instance(name, Some(base), &receiver.url());
    }
    let run = setup.tick().await;
    run.assert_code(1);
    for host in ["::a9fe:a9fe", "64:ff9b::a9fe:a9fe"] {
        run.assert_stdout_contains(&format!(
            "{host} (resolved to 169.254.169.254) is blocked by http.deny 169.254.0.0/16"
        ));
    }
    for name in ["compatible", "nat64", "nat64-dotted"] {
        let line = setup.status_line(name).await;
        assert_eq!(line["last_result"], "failed", "{line}");
    }
    setup.assert_nothing_left_loopback();
    assert_eq!(receiver.request_count(), 0);
}

/// The same for a callback in a private range denied by config.toml: dead-lettered at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_callback_at_a_nat64_form_of_a_denied_address_is_dead_lettered_without_a_connection() {
    let setup = Setup::new("[http]\ndeny = [\"10.0.0.0/8\"]").await;
    setup.instance("crm", None, "http://[64:ff9b::10.1.2.3]/hook");
    setup.baseline_then_changes(&["c1"]).await;
    let run = setup.tick().await;
    run.assert_code(1);
    run.assert_stdout_contains("1 dead-lettered");
    let errors = setup.dead_letter_errors().await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("(resolved to 10.1.2.3) is blocked by http.deny 10.0.0.0/8"),
        "{errors:?}"
    );
    setup.assert_nothing_left_loopback();
}

/// `allow = ["127.0.0.1/32"]`: localhost-only callbacks. 127.0.0.2 is loopback too, but not in
/// the list, so nothing ever leaves the machine in this test.
#[tokio::test(flavor = "multi_thread")]
async fn an_allow_list_lets_its_hosts_through_and_refuses_the_others_before_connecting() {
    let setup = Setup::new("[http]\nallow = [\"127.0.0.1/32\"]").await;
    let allowed = MockReceiver::start(&[]).await;
    let elsewhere = Tripwire::on("127.0.0.2");
    setup.instance("near", None, &allowed.url());
    setup.instance("far", None, &format!("{}/hook", elsewhere.url()));
    setup.baseline_then_changes(&["c1", "c2"]).await;
    let run = setup.tick().await;
    run.assert_code(1);
    run.assert_stdout_contains("2 delivered");
    assert_eq!(
        allowed.request_count(),
        2,
        "the allowed receiver got both events"
    );
    let errors = setup.dead_letter_errors().await;
    assert_eq!(errors.len(), 2, "{errors:?}");
    for error in &errors {
        assert!(
            error.contains("127.0.0.2 is blocked: it is not in http.allow"),
            "{errors:?}"
        );
    }
    assert_eq!(elsewhere.connections(), 0, "127.0.0.2 was connected to");
    setup.assert_nothing_left_loopback();
    // After fixing the policy, `outbox retry` delivers what was dead-lettered.
    setup.dir.create(
        "config.toml",
        "[http]\nallow = [\"127.0.0.1/32\", \"127.0.0.2\"]\n",
    );
    let retry = setup.ocpoll(&["outbox", "retry", "--all-dead"]).await;
    retry.assert_code(0);
    // (The tripwire never answers; the attempt now reaches it, which is the point.)
    let _ = setup.ocpoll(&["tick", "--deliver-timeout", "1s"]).await;
    assert!(
        elsewhere.connections() > 0,
        "the fixed policy lets 127.0.0.2 through"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deny_rule_wins_over_the_default_allowance_of_loopback() {
    let provider = MockProvider::builder().start().await;
    let setup = Setup::with_provider("[http]\ndeny = [\"127.0.0.0/8\"]", provider);
    setup.instance("crm", None, "http://127.0.0.1:9/hook");
    let run = setup.tick().await;
    run.assert_code(1);
    run.assert_stdout_contains("127.0.0.1 is blocked by http.deny 127.0.0.0/8");
    assert_eq!(setup.provider.request_count(), 0, "the provider was asked");
}

/// A redirect to the metadata address is refused at the hop, before it is followed.
#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_the_metadata_address_fails_the_poll() {
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::FOUND,
            [(
                axum::http::header::LOCATION,
                "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            )],
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirector = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let setup = Setup::new("").await;
    setup.instance("crm", Some(&redirector), "http://127.0.0.1:9/hook");
    let run = setup.tick().await;
    run.assert_code(1);
    run.assert_stdout_contains("169.254.169.254 is blocked by http.deny 169.254.0.0/16");
    setup.assert_nothing_left_loopback();
}

/// Names resolve through the policy: a resolver maps test names to addresses (there is no DNS
/// here), and the client must refuse a name whose addresses are all denied before connecting.
struct StaticResolver(HashMap<&'static str, Vec<SocketAddr>>);

impl Resolve for StaticResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let addresses = self.0.get(name.as_str()).cloned().unwrap_or_default();
        Box::pin(async move { Ok(Box::new(addresses.into_iter()) as Addrs) })
    }
}

fn rules(texts: &[&str]) -> Vec<HostRule> {
    texts.iter().map(|text| text.parse().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_that_resolves_to_a_denied_address_is_refused_before_connecting() {
    let internal = Tripwire::on("127.0.0.3");
    let provider = MockProvider::builder().start().await;
    let provider_addr = SocketAddr::new("127.0.0.1".parse().unwrap(), 0);
    let resolver = Arc::new(StaticResolver(HashMap::from([
        ("internal.test", vec![internal.addr()]),
        ("provider.test", vec![provider_addr]),
    ])));
    let egress = Arc::new(Egress::new(Vec::new(), rules(&["127.0.0.3"])));
    let client = HttpClient::with_resolver(Redirects::Follow, egress, resolver).unwrap();
    let session =
        AuthSession::new("t", &Auth::None, Arc::new(MemoryTokenStore::default())).unwrap();
    let http = HttpOptions {
        timeout: Duration::from_secs(2),
        ..HttpOptions::default()
    };
    let retry = RetryPolicy {
        retries: 2,
        ..RetryPolicy::default()
    };

    let url = Url::parse(&format!(
        "http://internal.test:{}/x",
        internal.addr().port()
    ))
    .unwrap();
    let error = client.get(&url, &session, &http, &retry).await.unwrap_err();
    assert!(matches!(error, FetchError::Blocked(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "internal.test (resolved to 127.0.0.3) is blocked by http.deny 127.0.0.3"
    );
    assert_eq!(
        internal.connections(),
        0,
        "a denied address was connected to"
    );

    // The same client reaches an allowed name.
    let mut url = provider.resource_url();
    url.set_host(Some("provider.test")).unwrap();
    let page = client.get(&url, &session, &http, &retry).await.unwrap();
    assert_eq!(page.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_resolver_drops_metadata_addresses_and_keeps_the_others() {
    let metadata: SocketAddr = "169.254.169.254:80".parse().unwrap();
    let loopback: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let inner = Arc::new(StaticResolver(HashMap::from([
        ("metadata.test", vec![metadata]),
        ("mixed.test", vec![metadata, loopback]),
    ])));
    let guarded = GuardedResolver::new(Arc::new(Egress::default()), inner);
    let error = match guarded.resolve("metadata.test".parse().unwrap()).await {
        Ok(_) => panic!("metadata.test resolved"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.starts_with(
            "metadata.test (resolved to 169.254.169.254) is blocked by http.deny 169.254.0.0/16"
        ),
        "{error}"
    );
    let kept: Vec<SocketAddr> = match guarded.resolve("mixed.test".parse().unwrap()).await {
        Ok(addresses) => addresses.collect(),
        Err(error) => panic!("{error}"),
    };
    assert_eq!(kept, [loopback]);
    // A denied name is not even looked up.
    let error = match guarded
        .resolve("metadata.google.internal".parse().unwrap())
        .await
    {
        Ok(_) => panic!("metadata.google.internal resolved"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("http.deny metadata.google.internal"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oauth_token_url_at_the_metadata_address_fails_the_poll() {
    let setup = Setup::new("").await;
    setup.instance("crm", None, "http://127.0.0.1:9/hook");
    let path = setup.dir.join("instances.d/crm.json");
    let mut body: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (key, value) in [
        ("oauth.token.url", "http://169.254.169.254/token"),
        ("oauth.api.key", "client"),
        ("oauth.api.secret", "client-secret-value"),
        ("oauth.user.refresh_token", "refresh-secret-value"),
    ] {
        body["configuration"][key] = json!(value);
    }
    std::fs::write(&path, body.to_string()).unwrap();
    let run = setup.tick().await;
    run.assert_code(1);
    run.assert_stdout_contains("169.254.169.254 is blocked by http.deny 169.254.0.0/16");
    assert!(!run.stdout().contains("secret-value"), "{}", run.show());
    assert_eq!(setup.provider.request_count(), 0);
    setup.assert_nothing_left_loopback();
}

// -------------------------------------------------------------------------------------------
// Size limits
// -------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_page_over_max_page_bytes_fails_the_poll_and_keeps_the_watermark() {
    let provider = MockProvider::builder().paging(Paging::None).start().await;
    let setup = Setup::with_provider("[http]\nmax_page_bytes = 2048", provider);
    let receiver = MockReceiver::start(&[]).await;
    setup.instance("crm", None, &receiver.url());
    setup.baseline_then_changes(&["c1"]).await;
    let before = watermark(&setup.status_line("crm").await);
    for n in 0..40 {
        setup.provider.upsert(
            &format!("bulk{n}"),
            Utc::now() + TimeDelta::seconds(5),
            json!({"name": "x".repeat(60)}),
        );
    }
    let run = setup.tick().await;
    run.assert_code(1);
    run.assert_stdout_contains("larger than 2048 bytes ([http] max_page_bytes)");
    let line = setup.status_line("crm").await;
    assert_eq!(watermark(&line), before, "the watermark moved: {line}");
    assert_eq!(receiver.request_count(), 0);
}

/// After a baseline with `[http] max_record_bytes = 200`: a small record changed one second
/// after `base`, and a 500-byte one two seconds after.
async fn small_and_huge_records() -> (Setup, MockReceiver, DateTime<Utc>) {
    let setup = Setup::new("[http]\nmax_record_bytes = 200").await;
    let receiver = MockReceiver::start(&[]).await;
    setup.instance("crm", None, &receiver.url());
    setup.baseline_then_changes(&[]).await;
    let base = Utc::now();
    setup.provider.upsert(
        "small",
        base + TimeDelta::seconds(1),
        json!({"name": "Ada"}),
    );
    setup.provider.upsert(
        "huge",
        base + TimeDelta::seconds(2),
        json!({"name": "y".repeat(500)}),
    );
    (setup, receiver, base)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_over_max_record_bytes_is_a_problem_of_that_record() {
    let (setup, receiver, base) = small_and_huge_records().await;
    let run = setup.tick().await;
    run.assert_code(0);
    run.assert_stdout_contains(
        "1 unreadable records, first: record huge: its JSON is larger than 200 bytes \
         ([http] max_record_bytes)",
    );
    let received = receiver.received();
    assert_eq!(received.len(), 1, "only the small record is sent");
    assert_eq!(
        received[0].json()["message"]["events"][0]["objectId"],
        "small"
    );
    let line = setup.status_line("crm").await;
    assert_eq!(line["last_result"], "problems", "{line}");
    // The oversized record does not move the watermark, as an unreadable date would not.
    let watermark = watermark(&line).expect("a watermark");
    assert!(
        watermark < base + TimeDelta::seconds(2),
        "the watermark passed the oversized record: {line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn try_reports_a_record_over_max_record_bytes_as_a_poll_does() {
    let (setup, _receiver, _) = small_and_huge_records().await;
    let problem =
        "record huge: its JSON is larger than 200 bytes ([http] max_record_bytes)".to_owned();

    // Both read the page with the same reader: the dry run names the record in the poll's words.
    let trial = setup
        .ocpoll(&["try", "instances.d/crm.json", "contacts", "--json"])
        .await;
    trial.assert_code(1);
    let report: Value = serde_json::from_str(&trial.stdout()).expect("try --json");
    let target = &report["targets"][0];
    assert_eq!(target["records_found"], 2, "{}", trial.show());
    assert_eq!(target["outcomes"]["UNREADABLE"], 1, "{}", trial.show());
    let problems: Vec<&Value> = target["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["outcome"] == "UNREADABLE")
        .collect();
    assert_eq!(problems.len(), 1, "{}", trial.show());
    assert_eq!(problems[0]["id"], "huge");
    assert_eq!(problems[0]["problem"], problem.as_str());
    let text = setup.ocpoll(&["try", "instances.d/crm.json"]).await;
    text.assert_stdout_contains(&problem);

    let run = setup.tick().await;
    run.assert_code(0);
    run.assert_stdout_contains(&format!("1 unreadable records, first: {problem}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_dated_in_the_future_is_sent_once_and_moves_no_watermark() {
    let setup = Setup::new("").await;
    let receiver = MockReceiver::start(&[]).await;
    setup.instance("crm", None, &receiver.url());
    setup.baseline_then_changes(&[]).await;
    let base = Utc::now();
    let far_future = DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
        .unwrap()
        .with_timezone(&Utc);
    setup
        .provider
        .upsert("future", far_future, json!({"name": "from 9999"}));
    // A provider whose records run a day ahead of its own clock does the same, less visibly.
    setup.provider.upsert(
        "tomorrow",
        base + TimeDelta::days(1),
        json!({"name": "fast"}),
    );
    setup
        .provider
        .upsert("now", base + TimeDelta::seconds(1), json!({"name": "Ada"}));
    let run = setup.tick().await;
    run.assert_code(0);
    run.assert_stdout_contains(
        "2 records dated in the future, first: record tomorrow: dated in the future",
    );
    run.assert_stdout_contains("sent, but the watermark does not move past it");
    let line = setup.status_line("crm").await;
    assert_eq!(line["last_result"], "problems", "{line}");
    assert!(
        line["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("dated in the future")),
        "{line}"
    );
    let watermark = watermark(&line).expect("a watermark");
    assert!(
        watermark < base + TimeDelta::minutes(10),
        "the watermark followed a record from the future: {line}"
    );

    // A later change is still found, and the future records are not sent again.
    setup.provider.upsert(
        "later",
        base + TimeDelta::seconds(2),
        json!({"name": "Bob"}),
    );
    setup.tick().await.assert_code(0);
    let mut sent: Vec<String> = receiver
        .received()
        .iter()
        .flat_map(|request| {
            request.json()["message"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|event| event["objectId"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    sent.sort();
    assert_eq!(sent, ["future", "later", "now", "tomorrow"]);
}

// -------------------------------------------------------------------------------------------
// validate
// -------------------------------------------------------------------------------------------

fn validate_instance(callback: &str) -> String {
    json!({"element": {"key": "crm"}, "name": "crm", "configuration": {
        "event.notification.enabled": true,
        "event.notification.callback.url": callback,
        "event.poller.refresh_interval": 15,
        "api.key": "${env:CRM_API_KEY}",
        "event.poller.configuration": {"contacts": {
            "url": "http://169.254.169.254/latest/meta-data",
            "idField": "id"
        }}
    }})
    .to_string()
}

#[test]
fn validate_warns_about_refused_hosts_and_strict_makes_warnings_errors() {
    let dir = Dir::new();
    dir.create("crm.json", &validate_instance("http://127.0.0.1:8080/hook"));
    let run = dir.run(["validate", "crm.json"]);
    run.assert_code(0);
    run.assert_stdout_contains(
        "configuration.event.poller.configuration.contacts.url: warning: 169.254.169.254 is \
         blocked by http.deny 169.254.0.0/16",
    );
    run.assert_stdout_contains("polls would fail");
    run.assert_stdout_contains("CRM_API_KEY");
    assert!(
        run.summary().ends_with("0 errors, 2 warnings"),
        "{}",
        run.show()
    );
    // The finding points at the line of the URL.
    let line = run
        .lines()
        .into_iter()
        .find(|line| line.contains("contacts.url"))
        .unwrap();
    assert!(line.starts_with("crm.json:1:"), "{line}");

    let strict = dir.run(["validate", "--strict", "crm.json"]);
    strict.assert_code(1);
    assert!(!strict.stdout().contains("warning:"), "{}", strict.show());
    assert!(
        strict
            .summary()
            .ends_with("0 valid, 1 invalid; 2 errors, 0 warnings"),
        "{}",
        strict.show()
    );
    let json = dir.run(["validate", "--strict", "--format", "json", "crm.json"]);
    json.assert_code(1);
    assert!(json.findings().iter().all(util::Finding::is_error));
}

#[test]
fn validate_judges_callbacks_against_the_configured_allow_list() {
    let dir = Dir::new();
    dir.create(
        "config.toml",
        "[http]\nallow = [\"127.0.0.1/32\", \"169.254.169.254\"]\n",
    );
    dir.create("crm.json", &validate_instance("http://127.0.0.2:8080/hook"));
    let run = dir.run(["validate", "--config", "config.toml", "crm.json"]);
    run.assert_code(0);
    run.assert_stdout_contains(
        "configuration.event.notification.callback.url: warning: 127.0.0.2 is blocked: it is \
         not in http.allow; notifications to it would be dead-lettered",
    );
    // The explicit allow unlocks the metadata address.
    assert!(
        !run.stdout().contains("169.254.169.254 is blocked"),
        "{}",
        run.show()
    );
}

#[test]
fn strict_validation_of_clean_files_passes() {
    let dir = Dir::new();
    let clean = json!({"element": {"key": "crm"}, "name": "crm", "configuration": {
        "event.notification.enabled": true,
        "event.notification.callback.url": "http://127.0.0.1:8080/hook",
        "event.poller.refresh_interval": 15,
        "event.poller.configuration": {"contacts": {
            "url": "http://127.0.0.1:8081/contacts",
            "idField": "id"
        }}
    }});
    dir.create("crm.json", &clean.to_string());
    let run = dir.run(["validate", "--strict", "crm.json"]);
    run.assert_code(0);
    run.assert_stdout_contains("crm.json: OK");
}

// -------------------------------------------------------------------------------------------
// Secrets a provider echoes back (issue 13, defect 2)
// -------------------------------------------------------------------------------------------

/// Every secret of the instances [`echo_instances`] writes, and what their headers carry.
const ECHOED_SECRETS: [&str; 14] = [
    "basic-pass-s3cr3t",
    "custom-header-s3cr3t",
    "api-key-s3cr3t-9921",
    "bearer-tok-s3cr3t-4410",
    "hub-user-s3cr3t-1",
    "hub-org-s3cr3t-2",
    "hub-element-s3cr3t-3",
    "oauth-client-id-3391",
    "oauth-client-s3cr3t-2280",
    "refresh-tok-s3cr3t-6612",
    // From the token endpoint: the state keeps these (in `oauth_token`), nowhere else.
    "oauth-access-tok-7781",
    "rotated-refresh-tok-5512",
    // base64("ada:basic-pass-s3cr3t"), what the Basic `Authorization` header carries.
    "YWRhOmJhc2ljLXBhc3MtczNjcjN0",
    // The callback URL's token.
    "callback-tok-s3cr3t-77",
];

/// The OAuth tokens the state keeps on purpose (table `oauth_token`).
const STORED_TOKENS: [&str; 2] = ["oauth-access-tok-7781", "rotated-refresh-tok-5512"];

/// A provider in an API gateway's debug mode: a 401 (paths under `/s401`) or a 500 (`/s500`)
/// whose body quotes the request's headers, the credentials first. Its token endpoint answers.
async fn echoing_provider() -> support::recorder::Recorder {
    use support::recorder::{Recorder, json_answer};
    Recorder::start("127.0.0.1", |request| {
        if request.method == "POST" {
            return json_answer(
                200,
                r#"{"access_token": "oauth-access-tok-7781", "expires_in": 3600,
                    "refresh_token": "rotated-refresh-tok-5512"}"#,
            );
        }
        const BORING: [&str; 5] = [
            "host",
            "user-agent",
            "accept",
            "accept-encoding",
            "content-length",
        ];
        let echoed: Vec<String> = request
            .headers
            .iter()
            .filter(|(name, _)| !BORING.contains(&name.as_str()))
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
            .collect();
        let status = if request.path_and_query.starts_with("/s500") {
            500
        } else {
            401
        };
        json_answer(status, &format!("denied; you sent {}", echoed.join("; ")))
    })
    .await
}

/// Five instances, one per authentication family, polling `provider` (401s and 500s).
fn echo_instances(setup: &Setup, provider: &str) {
    let callback = "http://127.0.0.1:9/hook?token=callback-tok-s3cr3t-77";
    let instances = [
        (
            "basic",
            "s401",
            json!({"username": "ada", "password": "basic-pass-s3cr3t",
                   "http.headers": {"X-Debug-Secret": "custom-header-s3cr3t"}}),
        ),
        (
            "apikey",
            "s500",
            json!({"api.key": "api-key-s3cr3t-9921", "api.key.header": "X-Api-Key"}),
        ),
        (
            "bearer",
            "s401",
            json!({"oauth.access.token": "bearer-tok-s3cr3t-4410"}),
        ),
        (
            "hub",
            "s500",
            json!({"elements.user.secret": "hub-user-s3cr3t-1",
                   "elements.organization.secret": "hub-org-s3cr3t-2",
                   "elements.instance.token": "hub-element-s3cr3t-3"}),
        ),
        (
            "oauth",
            "s401",
            json!({"oauth.token.url": format!("{provider}/oauth/token"),
                   "oauth.api.key": "oauth-client-id-3391",
                   "oauth.api.secret": "oauth-client-s3cr3t-2280",
                   "oauth.user.refresh_token": "refresh-tok-s3cr3t-6612"}),
        ),
    ];
    for (name, prefix, auth) in instances {
        let mut configuration = json!({
            "base.url": format!("{provider}/{prefix}"),
            "http.timeout.seconds": 2,
            "event.notification.enabled": true,
            "event.notification.callback.url": callback,
            "event.poller.refresh_interval": 1,
            "event.poller.configuration": {"contacts": {
                "url": format!("/contacts?where=updated_at>='${{gmtDate:{FORMAT}}}'"),
                "idField": "id",
                "datesConfiguration": {
                    "updatedDateField": "updated_at",
                    "updatedDateFormat": FORMAT,
                    "updatedDateTimezone": "GMT"
                }
            }}
        });
        for (key, value) in auth.as_object().unwrap() {
            configuration[key] = value.clone();
        }
        let body = json!({"element": {"key": "crm"}, "name": name, "configuration": configuration});
        setup
            .dir
            .create(format!("instances.d/{name}.json"), &body.to_string());
    }
}

/// Fails naming the secret and where it was found.
fn assert_no_secret(place: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{place} shows the secret {secret:?}:\n{text}"
        );
    }
}

/// The daemon's log until every instance's poll failed once, then the daemon stopped.
async fn daemon_log_of_failed_polls(setup: &Setup, log: &str, json_format: bool) -> String {
    let log_path = setup.dir.join(log);
    let format = if json_format { "json" } else { "text" };
    // A fresh state: the daemon starts each target from its saved due time, and the ticks
    // before saved them a minute ahead.
    for file in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(setup.dir.join(file));
    }
    let mut child =
        util::daemon::layout_command(&setup.dir, &["--log-format", format, "run", "--foreground"])
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("the daemon starts");
    let started = std::time::Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.matches("poll failed").count() >= 5 {
            break text;
        }
        if started.elapsed() > util::daemon::PATIENCE {
            let _ = child.kill();
            panic!("not every poll failed in time; the log:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_a_provider_echoes_are_never_printed_logged_or_stored() {
    let provider = echoing_provider().await;
    let setup = Setup::new("").await;
    echo_instances(&setup, &provider.origin());

    let tick = setup.tick().await;
    tick.assert_code(1);
    // The echoes did arrive, and were masked: the test would prove nothing otherwise.
    tick.assert_stdout_contains(
        "HTTP 401: denied; you sent x-debug-secret: ***; authorization: Basic ***",
    );
    tick.assert_stdout_contains("HTTP 500: denied; you sent x-api-key: ***");
    tick.assert_stdout_contains("User ***, Organization ***, Element ***");
    assert_no_secret("tick's output", &tick.show(), &ECHOED_SECRETS);

    let status = setup.ocpoll(&["status"]).await;
    status.assert_code(0);
    assert_no_secret("status", &status.show(), &ECHOED_SECRETS);
    let status_json = setup.ocpoll(&["status", "--json"]).await;
    status_json.assert_code(0);
    assert_no_secret("status --json", &status_json.show(), &ECHOED_SECRETS);
    for instance in ["basic", "apikey", "bearer", "hub", "oauth"] {
        let line = setup.status_line(instance).await;
        let error = line["last_error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains("***"), "{instance}: {line}");
    }

    // The state file as bytes: the errors it keeps hold no secret. (The OAuth tokens the
    // token endpoint issued are kept on purpose, in `oauth_token`; only there.)
    let mut state = std::fs::read(setup.dir.join("state.db")).unwrap();
    state.extend(std::fs::read(setup.dir.join("state.db-wal")).unwrap_or_default());
    let state = String::from_utf8_lossy(&state).into_owned();
    let configured: Vec<&str> = ECHOED_SECRETS
        .iter()
        .copied()
        .filter(|secret| !STORED_TOKENS.contains(secret))
        .collect();
    assert_no_secret("the state file", &state, &configured);
    let db = rusqlite::Connection::open(setup.dir.join("state.db")).unwrap();
    let errors: Vec<String> = db
        .prepare("SELECT coalesce(last_error, '') FROM resource_state")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(errors.len(), 5, "{errors:?}");
    assert_no_secret(
        "resource_state.last_error",
        &errors.join("\n"),
        &ECHOED_SECRETS,
    );
    drop(db);

    // `try` masks the same way (Basic's base64 included).
    for args in [
        &["try", "instances.d/basic.json"][..],
        &["try", "instances.d/basic.json", "--json"][..],
    ] {
        let trial = setup.ocpoll(args).await;
        trial.assert_stdout_contains("***");
        assert_no_secret("try", &trial.show(), &ECHOED_SECRETS);
    }

    let json_log = daemon_log_of_failed_polls(&setup, "daemon.json.log", true).await;
    assert!(json_log.contains("\"poll failed\""), "{json_log}");
    assert_no_secret("the daemon's JSON log", &json_log, &ECHOED_SECRETS);
    let text_log = daemon_log_of_failed_polls(&setup, "daemon.log", false).await;
    assert_no_secret("the daemon's text log", &text_log, &ECHOED_SECRETS);
}

// -------------------------------------------------------------------------------------------
// Credentials stay on their origin (issue 13, defect 3)
// -------------------------------------------------------------------------------------------

/// A provider whose first page links its next page to `next` (another host), and the host
/// there, which records what reaches it and answers an empty last page.
async fn provider_paging_to(
    other_ip: &str,
) -> (support::recorder::Recorder, support::recorder::Recorder) {
    use support::recorder::{Recorder, json_answer};
    let other = Recorder::start(other_ip, |_| json_answer(200, "[]")).await;
    let next = format!("{}/contacts?page=2", other.origin());
    let provider = Recorder::start("127.0.0.1", move |_| {
        let mut answer = json_answer(200, "[]");
        answer
            .headers_mut()
            .insert("link", format!("<{next}>; rel=\"next\"").parse().unwrap());
        answer
    })
    .await;
    (provider, other)
}

/// An instance of `provider` with an API key, a custom header, and `extra` configuration.
fn credentialed_instance(setup: &Setup, provider: &str, extra: Value) {
    setup.instance("crm", Some(provider), "http://127.0.0.1:9/hook");
    let path = setup.dir.join("instances.d/crm.json");
    let mut body: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    body["configuration"]["api.key"] = json!("api-key-s3cr3t-9921");
    body["configuration"]["api.key.header"] = json!("X-Api-Key");
    body["configuration"]["http.headers"] = json!({"X-Tenant-Token": "tenant-s3cr3t-31"});
    for (key, value) in extra.as_object().unwrap() {
        body["configuration"][key] = value.clone();
    }
    std::fs::write(&path, body.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_next_page_on_another_origin_fails_the_poll_and_gets_nothing() {
    let (provider, other) = provider_paging_to("127.0.0.2").await;
    let setup = Setup::new("").await;
    credentialed_instance(&setup, &provider.origin(), json!({}));
    let run = setup.tick().await;
    run.assert_code(1);
    run.assert_stdout_contains(&format!(
        "the `Link` header's next page is on another origin, {}",
        other.origin()
    ));
    run.assert_stdout_contains("http.allowed.origins");
    assert_eq!(provider.requests().len(), 1, "{}", run.show());
    assert!(
        other.requests().is_empty(),
        "the other host was asked: {:?}",
        other.requests()
    );
    let line = setup.status_line("crm").await;
    assert_eq!(line["last_result"], "failed", "{line}");
    assert_eq!(
        watermark(&line),
        None,
        "a failed baseline sets no watermark"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_next_page_on_an_allowed_origin_is_read_with_the_credentials() {
    let (provider, other) = provider_paging_to("127.0.0.2").await;
    let setup = Setup::new("").await;
    credentialed_instance(
        &setup,
        &provider.origin(),
        json!({"http.allowed.origins": [other.origin()]}),
    );
    let validate = setup.ocpoll(&["validate", "instances.d/crm.json"]).await;
    validate.assert_code(0);
    assert!(
        !validate.stdout().contains("allowed.origins"),
        "{}",
        validate.show()
    );
    let run = setup.tick().await;
    run.assert_code(0);
    let asked = other.requests();
    assert_eq!(asked.len(), 1, "{}", run.show());
    assert_eq!(asked[0].path_and_query, "/contacts?page=2");
    assert_eq!(
        asked[0].header("x-api-key").as_deref(),
        Some("api-key-s3cr3t-9921")
    );
    assert_eq!(
        asked[0].header("x-tenant-token").as_deref(),
        Some("tenant-s3cr3t-31")
    );
}

#[test]
fn validate_rejects_allowed_origins_that_are_not_origins() {
    let dir = Dir::new();
    for (name, origins) in [
        ("path", json!(["https://api.example/v2"])),
        ("query", json!(["https://api.example?x=1"])),
        ("scheme", json!(["ftp://api.example"])),
        ("number", json!([7])),
        ("object", json!({"a": 1})),
    ] {
        let body = json!({"element": {"key": "crm"}, "name": name, "configuration": {
            "event.notification.enabled": true,
            "event.notification.callback.url": "http://127.0.0.1:8080/hook",
            "event.poller.refresh_interval": 15,
            "http.allowed.origins": origins,
            "event.poller.configuration": {"contacts": {
                "url": "http://127.0.0.1:8081/contacts",
                "idField": "id"
            }}
        }});
        dir.create(format!("{name}.json"), &body.to_string());
        let run = dir.run(["validate", &format!("{name}.json")]);
        run.assert_code(1);
        run.assert_stdout_contains("http.allowed.origins");
    }
    let good = json!({"element": {"key": "crm"}, "name": "good", "configuration": {
        "event.notification.enabled": true,
        "event.notification.callback.url": "http://127.0.0.1:8080/hook",
        "event.poller.refresh_interval": 15,
        "http.allowed.origins": ["https://cdn.api.example", "http://127.0.0.2:8443/"],
        "event.poller.configuration": {"contacts": {
            "url": "http://127.0.0.1:8081/contacts",
            "idField": "id"
        }}
    }});
    dir.create("good.json", &good.to_string());
    let run = dir.run(["validate", "--strict", "good.json"]);
    run.assert_code(0);
}

// -------------------------------------------------------------------------------------------
// [secrets]: what instance files' references may read (issue 13, item 11)
// -------------------------------------------------------------------------------------------

const OUTSIDE_CONTENT: &str = "outside-the-roots-5ecret";
const INSIDE_CONTENT: &str = "inside-the-root-5ecret";

/// The references of the scope tests, by instance name: the first two are inside the scope.
fn scope_references(root: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("env-allowed", "${env:CRM_SIGNING_KEY}".to_owned()),
        ("file-allowed", format!("${{file:{}/key}}", root.display())),
        ("env-home", "${env:HOME}".to_owned()),
        ("file-etc", "${file:/etc/hostname}".to_owned()),
        (
            "file-dotdot",
            format!("${{file:{}/../outside}}", root.display()),
        ),
    ]
}

/// `secrets/key` inside the root, `outside` beside it, and a config.toml scoped to `CRM_` and
/// `secrets/`. Returns the root.
fn scoped_folder(dir: &Dir, other_config: &str) -> std::path::PathBuf {
    dir.create("secrets/key", &format!("{INSIDE_CONTENT}\n"));
    dir.create("outside", OUTSIDE_CONTENT);
    let root = dir.join("secrets");
    dir.create(
        "config.toml",
        &format!(
            "{other_config}\n[secrets]\nenv_prefixes = [\"CRM_\"]\nfile_roots = [\"{}\"]\n",
            root.display()
        ),
    );
    root
}

fn with_signature_key(path: &std::path::Path, reference: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut body: Value = serde_json::from_str(&text).unwrap();
    body["configuration"]["event.notification.signature.key"] = json!(reference);
    // Pretty-printed: every key on its own line, so the finding's line names the key.
    std::fs::write(path, serde_json::to_string_pretty(&body).unwrap()).unwrap();
}

#[test]
fn validate_with_a_secrets_scope_refuses_references_outside_it() {
    let dir = Dir::with_layout("");
    let root = scoped_folder(&dir, "");
    for (name, reference) in scope_references(&root) {
        let body = json!({"element": {"key": "crm"}, "name": name, "configuration": {
            "event.notification.enabled": true,
            "event.notification.callback.url": "http://127.0.0.1:8080/hook",
            "event.notification.signature.key": reference,
            "event.poller.refresh_interval": 15,
            "event.poller.configuration": {"contacts": {
                "url": "http://127.0.0.1:8081/contacts",
                "idField": "id"
            }}
        }});
        dir.create(
            format!("instances.d/{name}.json"),
            &serde_json::to_string_pretty(&body).unwrap(),
        );
    }
    let run = dir
        .command()
        .env("CRM_SIGNING_KEY", "env-signing-5ecret")
        .args(["validate", "--config", "config.toml", "--format", "json"])
        .arg("instances.d")
        .run();
    run.assert_code(1);
    let findings = run.findings();
    let key = "configuration.event.notification.signature.key";
    let refused = |file: &str| {
        findings
            .iter()
            .find(|f| f.file.ends_with(&format!("{file}.json")))
            .unwrap_or_else(|| panic!("no finding for {file}\n{}", run.show()))
    };
    for (file, phrase) in [
        (
            "env-home",
            "${env:HOME}: environment variable HOME is outside [secrets] env_prefixes (\"CRM_\")",
        ),
        (
            "file-etc",
            "${file:/etc/hostname}: /etc/hostname is outside [secrets] file_roots",
        ),
        ("file-dotdot", "/../outside is outside [secrets] file_roots"),
    ] {
        let finding = refused(file);
        assert!(finding.is_error(), "{finding:?}");
        assert_eq!(finding.path, key, "{finding:?}");
        assert!(finding.message.contains(phrase), "{finding:?}");
        // The line of the key in the pretty-printed file.
        let text = std::fs::read_to_string(dir.join(format!("instances.d/{file}.json"))).unwrap();
        let (line, column) = util::position_of(&text, "\"event.notification.signature.key\"");
        assert_eq!(
            (finding.line, finding.column),
            (Some(line as u64), Some(column as u64)),
            "{finding:?}"
        );
    }
    for allowed in ["env-allowed", "file-allowed"] {
        assert!(
            !findings.iter().any(|f| f.file.contains(allowed)),
            "{allowed} should be clean: {findings:?}"
        );
    }
    let shown = format!("{}{}", run.stdout(), run.stderr());
    for secret in [OUTSIDE_CONTENT, INSIDE_CONTENT, "env-signing-5ecret"] {
        assert!(!shown.contains(secret), "{secret} was printed: {shown}");
    }

    // Without [secrets], everything is allowed, as before.
    dir.create("open.toml", "");
    let open = dir
        .command()
        .env("CRM_SIGNING_KEY", "env-signing-5ecret")
        .args(["validate", "--config", "open.toml", "instances.d"])
        .run();
    open.assert_code(0);
    assert!(!open.stdout().contains("outside"), "{}", open.show());
}

#[tokio::test(flavor = "multi_thread")]
async fn tick_with_a_secrets_scope_runs_only_instances_whose_references_are_inside_it() {
    let setup = Setup::new("").await;
    let root = scoped_folder(
        &setup.dir,
        "[poll]\nretries = 0\n[delivery]\nbackoff_initial_seconds = 0\nbackoff_max_seconds = 0",
    );
    let receiver = MockReceiver::start(&[]).await;
    for (name, reference) in scope_references(&root) {
        setup.instance(name, None, &receiver.url());
        with_signature_key(
            &setup.dir.join(format!("instances.d/{name}.json")),
            &reference,
        );
    }
    let run = setup
        .dir
        .command()
        .env("CRM_SIGNING_KEY", "env-signing-5ecret")
        .layout()
        .args(["tick", "--all", "--deliver-timeout", "10s"])
        .run_async()
        .await;
    // Instances that cannot run make the tick exit 1; the others polled.
    run.assert_code(1);
    let key = "configuration.event.notification.signature.key";
    for phrase in [
        format!(
            "{key}: ${{env:HOME}}: environment variable HOME is outside [secrets] env_prefixes"
        ),
        format!("{key}: ${{file:/etc/hostname}}: /etc/hostname is outside [secrets] file_roots"),
        "/../outside is outside [secrets] file_roots".to_owned(),
    ] {
        run.assert_stderr_contains(&phrase);
    }
    for allowed in ["env-allowed", "file-allowed"] {
        let line = setup.status_line(allowed).await;
        assert_eq!(line["last_result"], "ok", "{line}\n{}", run.show());
    }
    let shown = format!("{}{}", run.stdout(), run.stderr());
    for secret in [OUTSIDE_CONTENT, INSIDE_CONTENT, "env-signing-5ecret"] {
        assert!(!shown.contains(secret), "{secret} was printed: {shown}");
    }
    // The refused instances were never polled: only the two allowed ones asked the provider.
    let status = setup.ocpoll(&["status", "--json"]).await;
    status.assert_code(0);
    let lines: Vec<Value> = serde_json::from_str(&status.stdout()).expect("status JSON");
    for refused in ["env-home", "file-etc", "file-dotdot"] {
        assert!(
            !lines
                .iter()
                .any(|line| line["instance"] == refused && line["last_result"] == "ok"),
            "{refused} was polled: {lines:?}"
        );
    }

    // The daemon loads its instances with the same scope.
    let log_path = setup.dir.join("daemon.log");
    let mut daemon = util::daemon::layout_command(&setup.dir, &["run", "--foreground"])
        .env("CRM_SIGNING_KEY", "env-signing-5ecret")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("the daemon starts");
    let started = std::time::Instant::now();
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("ocpoll is running") || started.elapsed() > util::daemon::PATIENCE {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        log.contains("environment variable HOME is outside [secrets] env_prefixes"),
        "{log}"
    );
    assert!(
        log.contains("/etc/hostname is outside [secrets] file_roots"),
        "{log}"
    );
    assert!(log.contains("2 polled instances"), "{log}");
}
