//! Delivery end to end: the real `ocpoll tick` polls the mock provider and delivers to the mock
//! receiver on loopback. Backoffs are zero (or an hour, where a test wants no retry within the
//! tick), so no test waits through real backoff; only the timeout tests wait for a 1 s timeout.

mod support;
mod util;

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use std::path::PathBuf;
use support::mock_provider::MockProvider;
use support::mock_receiver::{MockReceiver, Received, Reply, verify_events_md_vector};
use util::{Dir, Run};

const KEY: &str = "abcd1234efgh5678";
const WHSEC_KEY: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A test folder with config.toml, instances.d and the state, plus the mock provider.
struct Setup {
    dir: Dir,
    provider: MockProvider,
}

impl Setup {
    async fn new(delivery_config: &str) -> Setup {
        let dir = Dir::with_layout(&format!("[delivery]\n{delivery_config}\n"));
        let provider = MockProvider::builder().start().await;
        Setup { dir, provider }
    }

    /// Writes `instances.d/<name>.json` pointing at the mock provider and `callback`.
    fn instance(&self, name: &str, callback: &str, keys: Value, extra: Value) -> PathBuf {
        let mut configuration = json!({
            "base.url": self.provider.base_url().as_str(),
            "event.notification.enabled": true,
            "event.notification.callback.url": callback,
            "event.notification.timeout.seconds": 1,
            "event.notification.batch.size": 1,
            "event.poller.refresh_interval": 1,
            "event.poller.configuration": {"contacts": {
                "url": "/hubs/crm/contacts?where=updated_at>='${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}'",
                "idField": "id",
                "datesConfiguration": {
                    "updatedDateField": "updated_at",
                    "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ss'Z'",
                    "updatedDateTimezone": "GMT"
                }
            }}
        });
        if !keys.is_null() {
            configuration["event.notification.signature.key"] = keys;
        }
        for (key, value) in extra.as_object().into_iter().flatten() {
            configuration[key] = value.clone();
        }
        let body = json!({"element": {"key": "crm"}, "name": name, "tags": ["crm"],
                          "configuration": configuration});
        self.dir
            .create(format!("instances.d/{name}.json"), &body.to_string())
    }

    /// `ocpoll tick ARGS` with this folder's config, instances and state.
    async fn tick(&self, args: &[&str]) -> Run {
        let mut all = vec!["tick", "--all"];
        all.extend_from_slice(args);
        self.ocpoll(&all).await
    }

    async fn ocpoll(&self, args: &[&str]) -> Run {
        self.dir.command().layout().args(args).run_async().await
    }

    /// A baseline tick, then `count` changed records: the next tick has `count` events.
    async fn baseline_then_changes(&self, count: usize) {
        self.tick(&["--deliver-timeout", "0s"]).await.assert_code(0);
        let now = Utc::now();
        for n in 1..=count {
            self.provider.upsert(
                &n.to_string(),
                now + TimeDelta::seconds(n as i64),
                json!({"name": format!("contact {n}")}),
            );
        }
    }

    /// The last error of the oldest dead letter, as `outbox list --dead --json` shows it.
    async fn first_dead_letter_error(&self) -> String {
        let list = self.ocpoll(&["outbox", "list", "--dead", "--json"]).await;
        let rows = self.outbox_json(&list);
        let first = rows
            .first()
            .unwrap_or_else(|| panic!("no dead letter\n{}", list.show()));
        first["last_error"].as_str().unwrap_or_default().to_owned()
    }

    fn outbox_json(&self, run: &Run) -> Vec<Value> {
        let value: Value = serde_json::from_str(&run.stdout())
            .unwrap_or_else(|e| panic!("not JSON: {e}\n{}", run.show()));
        value.as_array().cloned().unwrap_or_default()
    }
}

fn object_ids(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| {
            r.json()["message"]["events"][0]["objectId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn summary_line(run: &Run) -> String {
    run.lines()
        .into_iter()
        .find(|line| line.starts_with("Delivery:"))
        .unwrap_or_else(|| panic!("no delivery summary\n{}", run.show()))
}

fn assert_no_secret(run: &Run) {
    for secret in [KEY, WHSEC_KEY, "MDEyMzQ1Njc4OWFi"] {
        assert!(!run.stdout().contains(secret), "{}", run.show());
        assert!(!run.stderr().contains(secret), "{}", run.show());
    }
}

#[test]
fn the_receivers_verifier_reproduces_the_events_md_vectors() {
    verify_events_md_vector();
}

#[tokio::test(flavor = "multi_thread")]
async fn delivers_signed_notifications_in_order_with_the_contracts_headers() {
    let setup = Setup::new("backoff_initial_seconds = 0\nbackoff_max_seconds = 0").await;
    let receiver = MockReceiver::start(&[KEY, WHSEC_KEY]).await;
    setup.instance("crm", &receiver.url(), json!([KEY, WHSEC_KEY]), json!({}));
    setup.baseline_then_changes(3).await;
    let run = setup.tick(&[]).await;
    run.assert_code(0);
    assert_eq!(
        summary_line(&run),
        "Delivery: 3 delivered, 0 pending, 0 dead-lettered."
    );
    assert_no_secret(&run);
    let received = receiver.received();
    assert_eq!(object_ids(&received), ["1", "2", "3"], "outbox order");
    for request in &received {
        let id = request.event_id();
        assert_eq!(
            request.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            request.header("user-agent"),
            Some(format!("ocpoll/{}", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(request.header("elements-webhook-id"), Some(id.clone()));
        assert_eq!(request.header("webhook-id"), Some(id));
        assert_eq!(
            request.elements_valid,
            Some(true),
            "Open Connectors signature"
        );
        assert_eq!(
            request.standard_valid,
            Some(true),
            "Standard Webhooks signature"
        );
        let signatures = request.header("webhook-signature").unwrap();
        assert_eq!(
            signatures.split(' ').count(),
            2,
            "one v1 per key: {signatures}"
        );
        let timestamp: i64 = request
            .header("webhook-timestamp")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (Utc::now().timestamp() - timestamp).abs() < 300,
            "a fresh timestamp"
        );
        // Compact JSON with the docs/events.md shape.
        let body = request.json();
        assert_eq!(body["message"]["instanceId"], "crm");
        assert!(body["message"]["raw"]["contacts"][0]["name"].is_string());
        assert!(!request.body.contains(&b'\n'));
    }
    let list = setup.ocpoll(&["outbox", "list", "--json"]).await;
    list.assert_code(0);
    assert!(
        setup.outbox_json(&list).is_empty(),
        "acknowledged ones are gone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_key_no_signature_headers_are_sent() {
    let setup = Setup::new("backoff_initial_seconds = 0\nbackoff_max_seconds = 0").await;
    let receiver = MockReceiver::start(&[]).await;
    setup.instance("crm", &receiver.url(), Value::Null, json!({}));
    setup.baseline_then_changes(1).await;
    setup.tick(&[]).await.assert_code(0);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].elements_valid, None);
    assert_eq!(received[0].standard_valid, None);
    assert_eq!(received[0].header("webhook-timestamp"), None);
    assert_eq!(
        received[0].header("webhook-id"),
        Some(received[0].event_id())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_retry_the_same_bytes_and_id_freshly_signed() {
    let setup = Setup::new("backoff_initial_seconds = 0\nbackoff_max_seconds = 0").await;
    let receiver = MockReceiver::start(&[KEY]).await;
    for (number, reply) in [
        Reply::Status(500),
        Reply::RetryAfter(1),
        Reply::Status(429),
        Reply::Status(408),
        Reply::Status(425),
        Reply::Status(502),
        Reply::Hangup,
    ]
    .into_iter()
    .enumerate()
    {
        receiver.reply_on(number as u64 + 1, reply);
    }
    setup.instance("crm", &receiver.url(), json!(KEY), json!({}));
    setup.baseline_then_changes(1).await;
    let run = setup.tick(&[]).await;
    run.assert_code(0);
    assert_eq!(
        summary_line(&run),
        "Delivery: 1 delivered, 0 pending, 0 dead-lettered."
    );
    let received = receiver.received();
    assert_eq!(received.len(), 8, "seven failures, then the 200");
    let first = &received[0];
    for attempt in &received {
        assert_eq!(attempt.body, first.body, "identical bytes on every retry");
        assert_eq!(attempt.event_id(), first.event_id());
        assert_eq!(attempt.standard_valid, Some(true));
        assert_eq!(attempt.elements_valid, Some(true));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_404_dead_letters_at_once_without_blocking_and_outbox_retry_sends_it_again() {
    let setup = Setup::new("backoff_initial_seconds = 0\nbackoff_max_seconds = 0").await;
    let receiver = MockReceiver::start(&[KEY]).await;
    receiver.reply_on(1, Reply::Status(404));
    setup.instance("crm", &receiver.url(), json!(KEY), json!({}));
    setup.baseline_then_changes(2).await;
    let run = setup.tick(&[]).await;
    run.assert_code(1);
    assert_eq!(
        summary_line(&run),
        "Delivery: 1 delivered, 0 pending, 1 dead-lettered."
    );
    assert_eq!(
        object_ids(&receiver.received()),
        ["1", "2"],
        "the dead letter does not block"
    );
    let dead_id = receiver.received()[0].event_id();

    let list = setup.ocpoll(&["outbox", "list", "--dead", "--json"]).await;
    list.assert_code(0);
    let rows = setup.outbox_json(&list);
    assert_eq!(rows.len(), 1, "{}", list.show());
    assert_eq!(rows[0]["id"], dead_id.as_str());
    assert_eq!(rows[0]["state"], "dead");
    assert_eq!(rows[0]["attempts"], 1);
    let error = rows[0]["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("HTTP 404: mock receiver says 404"),
        "{error}"
    );
    let table = setup.ocpoll(&["outbox", "list"]).await;
    table.assert_code(0).assert_stdout_contains(&dead_id);
    table.assert_stdout_contains("1 notifications: 0 pending, 1 dead-lettered.");
    assert_no_secret(&table);

    let show = setup.ocpoll(&["outbox", "show", &dead_id]).await;
    show.assert_code(0);
    assert_eq!(
        show.stdout().trim_end().as_bytes(),
        &receiver.received()[0].body[..]
    );
    assert_no_secret(&show);
    setup
        .ocpoll(&["outbox", "show", "nope"])
        .await
        .assert_code(1);

    setup
        .ocpoll(&["outbox", "retry", "--all-dead"])
        .await
        .assert_code(0)
        .assert_stdout_contains("1 notification(s) due now");
    let run = setup.tick(&[]).await;
    run.assert_code(0);
    assert_eq!(
        summary_line(&run),
        "Delivery: 1 delivered, 0 pending, 0 dead-lettered."
    );
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert_eq!(received[2].event_id(), dead_id, "the same eventId again");
    assert_eq!(received[2].body, received[0].body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_is_not_followed_and_names_its_location() {
    let setup = Setup::new("backoff_initial_seconds = 0\nbackoff_max_seconds = 0").await;
    let receiver = MockReceiver::start(&[KEY]).await;
    let elsewhere = MockReceiver::start(&[KEY]).await;
    receiver.reply_on(1, Reply::Redirect(elsewhere.url()));
    setup.instance("crm", &receiver.url(), json!(KEY), json!({}));
    setup.baseline_then_changes(1).await;
    setup.tick(&[]).await.assert_code(1);
    assert_eq!(elsewhere.request_count(), 0, "not followed");
    let error = setup.first_dead_letter_error().await;
    assert!(
        error.contains("HTTP 301") && error.contains(&elsewhere.url()),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_413_dead_letters_and_says_to_lower_batch_bytes() {
    let setup = Setup::new("backoff_initial_seconds = 0\nbackoff_max_seconds = 0").await;
    let receiver = MockReceiver::start(&[KEY]).await;
    receiver.reply_on(1, Reply::Status(413));
    setup.instance("crm", &receiver.url(), json!(KEY), json!({}));
    setup.baseline_then_changes(1).await;
    setup.tick(&[]).await.assert_code(1);
    let error = setup.first_dead_letter_error().await;
    assert!(error.contains("event.notification.batch.bytes"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_holds_back_only_its_own_instance() {
    // An hour's backoff: the failed notification is not retried within this tick.
    let setup = Setup::new("backoff_initial_seconds = 3600").await;
    let failing = MockReceiver::start(&[KEY]).await;
    failing.reply_by_default(Reply::Status(503));
    let healthy = MockReceiver::start(&[KEY]).await;
    setup.instance("a-failing", &failing.url(), json!(KEY), json!({}));
    setup.instance("b-healthy", &healthy.url(), json!(KEY), json!({}));
    setup.baseline_then_changes(3).await;
    let run = setup.tick(&[]).await;
    run.assert_code(0);
    assert_eq!(
        summary_line(&run),
        "Delivery: 3 delivered, 3 pending, 0 dead-lettered."
    );
    assert_eq!(
        object_ids(&failing.received()),
        ["1"],
        "one at a time, in order"
    );
    assert_eq!(object_ids(&healthy.received()), ["1", "2", "3"]);
    let list = setup
        .ocpoll(&["outbox", "list", "--instance", "a-failing", "--json"])
        .await;
    let rows = setup.outbox_json(&list);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["attempts"], 1);
    assert!(
        rows[0]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 503")
    );
    assert_eq!(rows[1]["attempts"], 0);
    // Not due yet: the next tick sends nothing to it.
    setup.tick(&[]).await.assert_code(0);
    assert_eq!(
        failing.request_count(),
        1,
        "backoff times hold across ticks"
    );
    // `outbox retry ID` makes a pending one due now.
    let id = rows[0]["id"].as_str().unwrap();
    setup.ocpoll(&["outbox", "retry", id]).await.assert_code(0);
    failing.reply_by_default(Reply::Status(200));
    let run = setup.tick(&[]).await;
    assert_eq!(
        summary_line(&run),
        "Delivery: 3 delivered, 0 pending, 0 dead-lettered."
    );
    assert_eq!(object_ids(&failing.received()), ["1", "1", "2", "3"]);
}

/// Instances deliver in parallel, but never more at once than `per_host` to one callback host
/// nor `max_in_flight` in all. Counted by the receiver, not timed.
#[tokio::test(flavor = "multi_thread")]
async fn deliveries_run_in_parallel_within_the_global_and_per_host_bounds() {
    for (config, bound) in [("per_host = 2", 2), ("max_in_flight = 3\nper_host = 8", 3)] {
        let setup = Setup::new(config).await;
        let receiver = MockReceiver::start(&[KEY]).await;
        // Slow answers keep each request open long enough for the others to pile up.
        receiver.reply_by_default(Reply::Slow(std::time::Duration::from_millis(400)));
        for index in 0..6 {
            setup.instance(&format!("i{index}"), &receiver.url(), json!(KEY), json!({}));
        }
        setup.baseline_then_changes(1).await;
        let run = setup.tick(&[]).await;
        run.assert_code(0);
        assert_eq!(receiver.request_count(), 6);
        let most = receiver.max_in_flight();
        assert!(most <= bound, "{config}: {most} requests at once");
        assert!(most >= 2, "{config}: instances were delivered one by one");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_retry_window_a_failure_dead_letters() {
    let setup = Setup::new("retry_max_age_seconds = 0").await;
    let receiver = MockReceiver::start(&[KEY]).await;
    receiver.reply_by_default(Reply::Status(503));
    setup.instance("crm", &receiver.url(), json!(KEY), json!({}));
    setup.baseline_then_changes(1).await;
    let run = setup.tick(&[]).await;
    run.assert_code(1);
    assert_eq!(
        summary_line(&run),
        "Delivery: 0 delivered, 0 pending, 1 dead-lettered."
    );
    let error = setup.first_dead_letter_error().await;
    assert!(error.starts_with("gave up after 1 attempts"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_silent_and_broken_receivers_get_at_least_once() {
    let setup = Setup::new("backoff_initial_seconds = 0\nbackoff_max_seconds = 0").await;
    let receiver = MockReceiver::start(&[KEY]).await;
    // The first notification: 200 after the 1 s timeout, then no answer at all, then a 200
    // whose body breaks off (the status acknowledged it).
    receiver.reply_on(1, Reply::Slow(std::time::Duration::from_millis(1500)));
    receiver.reply_on(2, Reply::Never);
    receiver.reply_on(3, Reply::BrokenBody);
    // The second: a 200 with a big body, the third: slow but within the timeout.
    receiver.reply_on(4, Reply::ChattyOk);
    receiver.reply_on(5, Reply::Slow(std::time::Duration::from_millis(100)));
    setup.instance("crm", &receiver.url(), json!(KEY), json!({}));
    setup.baseline_then_changes(3).await;
    let run = setup.tick(&[]).await;
    run.assert_code(0);
    assert_eq!(
        summary_line(&run),
        "Delivery: 3 delivered, 0 pending, 0 dead-lettered."
    );
    assert_eq!(object_ids(&receiver.received()), ["1", "1", "1", "2", "3"]);
    let ids: std::collections::BTreeSet<String> =
        receiver.received().iter().map(Received::event_id).collect();
    assert_eq!(ids.len(), 3, "deduplicated on eventId, each change once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_stays_pending_until_the_url_is_fixed_and_retried() {
    let setup = Setup::new("backoff_initial_seconds = 3600").await;
    let receiver = MockReceiver::start(&[KEY]).await;
    // A closed port on loopback stands in for a callback that resolves to nothing.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // With a token in its query, as some receivers want: it must not reach the error.
    let closed_url = format!(
        "http://{}/hook?token=cb-query-secret",
        closed.local_addr().unwrap()
    );
    drop(closed);
    setup.instance("crm", &closed_url, json!(KEY), json!({}));
    setup.baseline_then_changes(1).await;
    let run = setup.tick(&[]).await;
    run.assert_code(0);
    assert_eq!(
        summary_line(&run),
        "Delivery: 0 delivered, 1 pending, 0 dead-lettered."
    );
    let list = setup.ocpoll(&["outbox", "list", "--json"]).await;
    let rows = setup.outbox_json(&list);
    let error = rows[0]["last_error"].as_str().unwrap();
    assert!(error.starts_with("connection failed"), "{error}");
    assert!(!error.contains(&closed_url), "no URL in errors: {error}");
    assert!(
        !error.contains("cb-query-secret"),
        "no URL in errors: {error}"
    );
    // Fix the URL in the instance file, retry, tick: delivered.
    setup.instance("crm", &receiver.url(), json!(KEY), json!({}));
    let id = rows[0]["id"].as_str().unwrap();
    setup.ocpoll(&["outbox", "retry", id]).await.assert_code(0);
    let run = setup.tick(&[]).await;
    assert_eq!(
        summary_line(&run),
        "Delivery: 1 delivered, 0 pending, 0 dead-lettered."
    );
    assert_eq!(receiver.received()[0].event_id(), id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_file_holds_the_instance_until_it_is_back() {
    let setup = Setup::new("backoff_initial_seconds = 0\nbackoff_max_seconds = 0").await;
    let receiver = MockReceiver::start(&[KEY]).await;
    let key_file = setup.dir.create("key.txt", KEY);
    let reference = format!("${{file:{}}}", key_file.display());
    setup.instance("crm", &receiver.url(), json!(reference), json!({}));
    setup.baseline_then_changes(1).await;
    setup
        .tick(&["--deliver-timeout", "0s"])
        .await
        .assert_code(0);
    std::fs::remove_file(&key_file).unwrap();
    let run = setup.tick(&[]).await;
    run.assert_code(1);
    assert_eq!(
        summary_line(&run),
        "Delivery: 0 delivered, 1 pending, 0 dead-lettered."
    );
    run.assert_stdout_contains("Not delivered to crm: ");
    run.assert_stdout_contains("is invalid");
    assert_eq!(receiver.request_count(), 0);
    std::fs::write(&key_file, KEY).unwrap();
    let run = setup.tick(&[]).await;
    run.assert_code(0);
    assert_eq!(
        summary_line(&run),
        "Delivery: 1 delivered, 0 pending, 0 dead-lettered."
    );
    assert_eq!(receiver.received()[0].elements_valid, Some(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_body_is_dead_lettered_and_the_others_flow() {
    let setup = Setup::new("backoff_initial_seconds = 0\nbackoff_max_seconds = 0").await;
    let receiver = MockReceiver::start(&[KEY]).await;
    setup.instance("crm", &receiver.url(), json!(KEY), json!({}));
    setup.baseline_then_changes(3).await;
    setup
        .tick(&["--deliver-timeout", "0s"])
        .await
        .assert_code(0);
    {
        let conn = rusqlite::Connection::open(setup.dir.join("state.db")).unwrap();
        conn.execute(
            "UPDATE outbox SET body = CAST('{\"message\":{\"event' AS BLOB)
             WHERE seq = (SELECT min(seq) FROM outbox)",
            [],
        )
        .unwrap();
        conn.execute(
            "UPDATE outbox SET body = CAST('{\"message\":{\"eventId\":\"other\"}}' AS BLOB)
             WHERE seq = (SELECT max(seq) FROM outbox)",
            [],
        )
        .unwrap();
    }
    let run = setup.tick(&[]).await;
    run.assert_code(1);
    assert_eq!(
        summary_line(&run),
        "Delivery: 1 delivered, 0 pending, 2 dead-lettered."
    );
    assert_eq!(object_ids(&receiver.received()), ["2"]);
    let list = setup.ocpoll(&["outbox", "list", "--dead", "--json"]).await;
    for row in setup.outbox_json(&list) {
        let error = row["last_error"].as_str().unwrap();
        assert!(error.starts_with("corrupted in the state file"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn orphaned_notifications_wait_and_drop_needs_yes_without_a_terminal() {
    let setup = Setup::new("backoff_initial_seconds = 0\nbackoff_max_seconds = 0").await;
    let receiver = MockReceiver::start(&[KEY]).await;
    let file = setup.instance("gone", &receiver.url(), json!(KEY), json!({}));
    setup.instance("other", &receiver.url(), json!(KEY), json!({}));
    setup.baseline_then_changes(1).await;
    setup
        .tick(&["--deliver-timeout", "0s"])
        .await
        .assert_code(0);
    std::fs::remove_file(file).unwrap();
    let run = setup.tick(&[]).await;
    run.assert_code(0);
    run.assert_stdout_contains("Not delivered to gone: no instance file is named \"gone\"");
    assert_eq!(
        summary_line(&run),
        "Delivery: 1 delivered, 1 pending, 0 dead-lettered."
    );
    let drop = setup
        .ocpoll(&["outbox", "drop", "--instance", "gone"])
        .await;
    drop.assert_code(2).assert_stderr_contains("--yes");
    let drop = setup
        .ocpoll(&["outbox", "drop", "--instance", "gone", "--yes"])
        .await;
    drop.assert_code(0)
        .assert_stdout_contains("1 notification(s) deleted.");
    let list = setup.ocpoll(&["outbox", "list", "--json"]).await;
    assert!(setup.outbox_json(&list).is_empty());
}
