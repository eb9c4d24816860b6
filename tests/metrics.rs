//! Metrics and health end to end: the real `ocpoll run --foreground` with a metrics address,
//! against the mock provider and receiver on loopback, scraped over HTTP like Prometheus would.
//! The metrics address is `127.0.0.1:0`; the daemon logs the port it got. Waits are bounded (a
//! stuck daemon fails the test) but nothing asserts how fast anything is.

mod support;
mod util;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::json;
use std::time::{Duration, Instant};
use support::mock_provider::{MockAuth, MockProvider};
use support::mock_receiver::{MockReceiver, Reply};
use util::Dir;
use util::daemon::{Daemon, PATIENCE, wait_until};

const SIGNATURE_KEY: &str = "sig-key-7c1e-do-not-leak";
const PASSWORD: &str = "password-93af-do-not-leak";
const HEADER_TOKEN: &str = "token-5b2d-do-not-leak";

struct Setup {
    dir: Dir,
    provider: MockProvider,
    receiver: MockReceiver,
}

impl Setup {
    async fn new(config: &str) -> Setup {
        let dir = Dir::with_layout(&format!(
            "[poll]\njitter_seconds = 0\n[delivery]\nbackoff_initial_seconds = 1\n\
             backoff_max_seconds = 1\n{config}\n"
        ));
        let provider = MockProvider::builder()
            .auth(MockAuth::Basic {
                username: "metrics-user".to_owned(),
                password: PASSWORD.to_owned(),
            })
            .start()
            .await;
        let setup = Setup {
            dir,
            provider,
            receiver: MockReceiver::start(&[SIGNATURE_KEY]).await,
        };
        setup.write_instance("crm");
        setup
    }

    fn write_instance(&self, name: &str) {
        let body = json!({"element": {"key": "crm"}, "name": name, "configuration": {
            "base.url": self.provider.base_url().as_str(),
            "username": "metrics-user",
            "password": PASSWORD,
            "http.headers": {"X-Token": HEADER_TOKEN},
            "event.notification.enabled": true,
            "event.notification.callback.url": self.receiver.url(),
            "event.notification.signature.key": SIGNATURE_KEY,
            "event.poller.refresh_seconds": 1,
            "event.poller.configuration": {"contacts": {
                "url": "/hubs/crm/contacts?where=updated_at>='${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}'",
                "idField": "id",
                "datesConfiguration": {
                    "updatedDateField": "updated_at",
                    "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ss'Z'",
                    "updatedDateTimezone": "GMT",
                    "createdDateField": "created_at"
                }
            }}
        }});
        self.dir
            .create(format!("instances.d/{name}.json"), &body.to_string());
    }

    /// A record updated at `updated` and created at `created`.
    fn upsert(&self, id: &str, updated: DateTime<Utc>, created: DateTime<Utc>) {
        let created = created.to_rfc3339_opts(SecondsFormat::Secs, true);
        self.provider
            .upsert(id, updated, json!({"created_at": created}));
    }

    /// Starts `ocpoll run --foreground --log-format json` with `args` and `env`.
    fn start_daemon(&self, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start(&self.dir, "daemon.log", args, env)
    }
}

/// The address the daemon serves metrics on, from its log.
async fn metrics_address(daemon: &Daemon) -> String {
    let mut address = None;
    wait_until("the metrics address in the log", daemon, || {
        address = daemon
            .log_lines()
            .iter()
            .find_map(|line| line["address"].as_str().map(str::to_owned));
        address.is_some()
    })
    .await;
    address.unwrap()
}

/// GET `path` on the metrics address: (status, body).
async fn get(address: &str, path: &str) -> (u16, String) {
    // reqwest's TLS has no crypto provider of its own (Cargo.toml): without one, building the
    // client fails, and the "refused" check below would pass for that reason.
    ocpoll::http::crypto::install_provider();
    let response = reqwest::get(format!("http://{address}{path}"))
        .await
        .expect("the metrics server answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// One scrape of /metrics.
struct Scrape(String);

impl Scrape {
    async fn take(address: &str) -> Scrape {
        let (status, text) = get(address, "/metrics").await;
        assert_eq!(status, 200, "{text}");
        Scrape(text)
    }

    /// The value of one series, name and labels exactly as encoded; 0 when absent (a counter
    /// that never moved has no series yet).
    fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.parse().expect("a number"))
            .unwrap_or(0.0)
    }

    fn has(&self, series: &str) -> bool {
        self.0.lines().any(|line| line.starts_with(series))
    }
}

/// Waits until a scrape satisfies `done`, and returns it.
async fn scrape_until(
    what: &str,
    daemon: &Daemon,
    address: &str,
    done: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let start = Instant::now();
    loop {
        let scrape = Scrape::take(address).await;
        if done(&scrape) {
            return scrape;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "timed out waiting for {what}; last scrape:\n{}\nthe daemon's log:\n{}",
            scrape.0,
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const POLLS_OK: &str = r#"ocpoll_polls_total{instance_name="crm",resource="contacts",result="ok"}"#;
const BASELINES: &str =
    r#"ocpoll_polls_total{instance_name="crm",resource="contacts",result="baseline"}"#;
const RECORDS: &str = r#"ocpoll_records_read_total{instance_name="crm",resource="contacts"}"#;
const CREATED: &str =
    r#"ocpoll_events_total{instance_name="crm",resource="contacts",type="CREATED"}"#;
const UPDATED: &str =
    r#"ocpoll_events_total{instance_name="crm",resource="contacts",type="UPDATED"}"#;
const DELIVERED: &str = r#"ocpoll_notifications_delivered_total{instance_name="crm"}"#;
const FAILED: &str = r#"ocpoll_notifications_failed_total{instance_name="crm"}"#;
const DEAD_LETTERED: &str = r#"ocpoll_notifications_dead_lettered_total{instance_name="crm"}"#;
const LATENCY_COUNT: &str = "ocpoll_delivery_latency_seconds_count";
const PENDING: &str = r#"ocpoll_outbox_pending_notifications{instance_name="crm"}"#;
const DEAD_LETTERS: &str = r#"ocpoll_outbox_dead_letters{instance_name="crm"}"#;
const OLDEST_AGE: &str = r#"ocpoll_outbox_oldest_pending_age_seconds{instance_name="crm"}"#;
const LAG: &str = r#"ocpoll_watermark_lag_seconds{instance_name="crm",resource="contacts"}"#;
const PROVIDER_200: &str =
    r#"ocpoll_http_responses_total{side="provider",instance_name="crm",code="200"}"#;
const RECEIVER_200: &str =
    r#"ocpoll_http_responses_total{side="receiver",instance_name="crm",code="200"}"#;
const RECEIVER_503: &str =
    r#"ocpoll_http_responses_total{side="receiver",instance_name="crm",code="503"}"#;

#[tokio::test(flavor = "multi_thread")]
async fn counters_move_as_records_change_and_no_secret_or_url_is_scraped() {
    let setup = Setup::new("").await;
    let daemon = setup.start_daemon(&["--metrics-addr", "127.0.0.1:0"], &[]);
    let address = metrics_address(&daemon).await;

    // Ready once the daemon runs; healthy while the state takes writes.
    let mut ready = get(&address, "/readyz").await;
    let start = Instant::now();
    while ready.0 != 200 && start.elapsed() < PATIENCE {
        assert_eq!(ready.0, 503, "{ready:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        ready = get(&address, "/readyz").await;
    }
    assert_eq!(ready, (200, "ready\n".to_owned()));
    assert_eq!(get(&address, "/healthz").await, (200, "ok\n".to_owned()));

    // The baseline and one ordinary poll: what changes next becomes events.
    let before = scrape_until("the baseline and a poll after it", &daemon, &address, |s| {
        s.value(BASELINES) == 1.0 && s.value(POLLS_OK) >= 1.0
    })
    .await;
    assert_eq!(before.value(CREATED), 0.0);
    assert!(before.value(PROVIDER_200) >= 2.0, "{}", before.0);
    assert!(before.has(LAG), "{}", before.0);
    assert_eq!(before.value(PENDING), 0.0, "{}", before.0);

    let now = Utc::now();
    setup.upsert("c1", now, now);
    setup.upsert("c2", now, now);
    let created = scrape_until("two CREATED events delivered", &daemon, &address, |s| {
        s.value(CREATED) == 2.0 && s.value(DELIVERED) >= 1.0
    })
    .await;
    assert!(created.value(RECORDS) >= before.value(RECORDS) + 2.0);
    assert!(created.value(POLLS_OK) > before.value(POLLS_OK));
    assert!(created.value(LATENCY_COUNT) >= 1.0, "{}", created.0);
    assert!(created.value(RECEIVER_200) >= 1.0, "{}", created.0);

    // An update of c1 (created before the watermark): UPDATED.
    setup.upsert("c1", now + TimeDelta::seconds(2), now - TimeDelta::hours(1));
    // Delivered counts at the 2xx; the row leaves the outbox when the pass writes its batch of
    // acknowledgements, a moment later: wait for both.
    let updated = scrape_until("an UPDATED event delivered", &daemon, &address, |s| {
        s.value(UPDATED) == 1.0
            && s.value(DELIVERED) > created.value(DELIVERED)
            && s.value(PENDING) == 0.0
    })
    .await;
    assert_eq!(updated.value(CREATED), 2.0);
    assert_eq!(updated.value(PENDING), 0.0, "{}", updated.0);
    assert_eq!(updated.value(DEAD_LETTERS), 0.0, "{}", updated.0);

    let text = &updated.0;
    for secret in [PASSWORD, SIGNATURE_KEY, HEADER_TOKEN, "metrics-user"] {
        assert!(!text.contains(secret), "{secret} in the scrape:\n{text}");
    }
    let provider = setup.provider.base_url();
    let provider_host = provider.authority();
    let receiver_port = format!(":{}", setup.receiver.port());
    for url_part in [
        "http://",
        "https://",
        provider_host,
        &receiver_port,
        "/hubs/crm",
        "/hook",
    ] {
        assert!(
            !text.contains(url_part),
            "{url_part} in the scrape:\n{text}"
        );
    }

    let (status, log) = daemon.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    ocpoll::http::crypto::install_provider();
    let refused = reqwest::get(format!("http://{address}/healthz")).await;
    assert!(refused.is_err(), "the metrics server outlived the daemon");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_moves_the_failed_counter_outbox_depth_and_dead_letters() {
    let setup = Setup::new("").await;
    setup.receiver.reply_by_default(Reply::Status(503));
    let daemon = setup.start_daemon(&[], &[("OCPOLL_DAEMON_METRICS_ADDR", "127.0.0.1:0")]);
    let address = metrics_address(&daemon).await;
    scrape_until("the baseline", &daemon, &address, |s| {
        s.value(BASELINES) == 1.0 && s.value(POLLS_OK) >= 1.0
    })
    .await;

    let now = Utc::now();
    setup.upsert("f1", now, now);
    let failing = scrape_until("failed attempts", &daemon, &address, |s| {
        s.value(FAILED) >= 2.0 && s.value(PENDING) == 1.0
    })
    .await;
    assert!(failing.value(RECEIVER_503) >= 2.0, "{}", failing.0);
    assert!(failing.has(OLDEST_AGE), "{}", failing.0);
    assert_eq!(failing.value(DELIVERED), 0.0, "{}", failing.0);

    // A 400 gives up at once: a dead letter, nothing pending.
    setup.receiver.reply_by_default(Reply::Status(400));
    let dead = scrape_until("a dead letter", &daemon, &address, |s| {
        s.value(DEAD_LETTERED) == 1.0 && s.value(DEAD_LETTERS) == 1.0
    })
    .await;
    assert_eq!(dead.value(PENDING), 0.0, "{}", dead.0);
    assert_eq!(dead.value(OLDEST_AGE), 0.0, "{}", dead.0);

    let (status, log) = daemon.stop();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_in_use_stops_the_daemon_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let setup = Setup::new(&format!("[daemon]\nmetrics_addr = \"{address}\"")).await;
    let daemon = setup.start_daemon(&[], &[]);
    let (status, log) = daemon.wait_exit();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("cannot serve metrics on {address}")),
        "{log}"
    );
}
