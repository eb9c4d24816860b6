//! Webhooks instances end to end: the real `ocpoll run --listen` receiving from test providers
//! that sign like GitHub and like Standard Webhooks, delivering to the mock receiver, and every
//! kind of bad input through a real HTTP client (or a raw socket, for what clients will not
//! send). Waits are bounded; nothing asserts how fast anything is.

mod support;
mod util;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use support::mock_receiver::MockReceiver;
use support::webhook_sender::{GitHubSender, StandardSender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use util::Dir;
use util::daemon::{Daemon, layout_command, wait_until};
use util::hooks::{listen_base, token_of, webhook_url};

/// The key ocpoll signs its notifications with.
const KEY: &str = "webhooks-test-key";
/// What the GitHub-like provider signs with.
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const WHSEC: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

struct Hooks {
    dir: Dir,
    receiver: MockReceiver,
    daemon: Daemon,
    base: String,
}

impl Hooks {
    /// A daemon receiving webhooks for `instances` (name, `webhook.*` keys), with `config`
    /// added to config.toml; each instance's token is made before the daemon starts.
    async fn start(config: &str, instances: &[(&str, Value)], args: &[&str]) -> Hooks {
        let dir = Dir::with_layout(&format!(
            "[delivery]\nbackoff_initial_seconds = 0\nbackoff_max_seconds = 0\n{config}\n"
        ));
        let receiver = MockReceiver::start(&[KEY]).await;
        for (name, keys) in instances {
            let mut configuration = json!({
                "event.notification.enabled": true,
                "event.vendor.type": "webhooks",
                "event.notification.callback.url": receiver.url(),
                "event.notification.signature.key": KEY,
            });
            for (key, value) in keys.as_object().unwrap() {
                configuration[key] = value.clone();
            }
            let body =
                json!({"element": {"key": "github"}, "name": name, "configuration": configuration});
            dir.create(format!("instances.d/{name}.json"), &body.to_string());
            // Made before the daemon starts, which reads the tokens once at start.
            webhook_url(&dir, name, &[]);
        }
        let mut daemon_args = vec!["--listen", "127.0.0.1:0"];
        daemon_args.extend_from_slice(args);
        let daemon = Daemon::start(&dir, "daemon.log", &daemon_args, &[]);
        let base = listen_base(&daemon);
        Hooks {
            dir,
            receiver,
            daemon,
            base,
        }
    }

    /// The receiving URL of `name`, on this daemon's address.
    fn url(&self, name: &str) -> String {
        let token = token_of(&webhook_url(&self.dir, name, &[]));
        format!("{}/webhooks/{name}/{token}", self.base)
    }

    /// Every notification the receiver got, checked for ocpoll's signatures, by eventId.
    fn notifications(&self) -> Vec<Value> {
        let mut seen = BTreeSet::new();
        let mut bodies = Vec::new();
        for request in self.receiver.received() {
            assert_eq!(request.elements_valid, Some(true));
            assert_eq!(request.standard_valid, Some(true));
            if seen.insert(request.event_id()) {
                bodies.push(request.json());
            }
        }
        bodies
    }

    async fn wait_for_notifications(&self, count: usize) -> Vec<Value> {
        wait_until(&format!("{count} notifications"), &self.daemon, || {
            self.notifications().len() >= count
        })
        .await;
        self.notifications()
    }

    fn status(&self) -> Value {
        let output = layout_command(&self.dir, &["status", "--json"])
            .stdout(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

fn github_keys() -> Value {
    json!({
        "webhook.signature.header": "X-Hub-Signature-256",
        "webhook.signature.key": GITHUB_SECRET,
        "webhook.signature.prefix": "sha256=",
        "webhook.delivery.header": "X-GitHub-Delivery",
        "webhook.configuration": {
            "recordsPath": "issue",
            "idField": "id",
            "objectType": "issues",
            "eventTypeField": "action",
            "eventTypeMap": {"opened": "CREATED", "deleted": "DELETED"}
        }
    })
}

async fn text(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[test]
fn a_github_like_provider_is_verified_standardized_delivered_and_deduplicated() {
    util::runtime().block_on(async {
        let hooks = Hooks::start(
            "",
            &[("gh", github_keys())],
            &["--metrics-addr", "127.0.0.1:0"],
        )
        .await;
        let sender = GitHubSender::new(&hooks.url("gh"), GITHUB_SECRET);
        let opened = r#"{"action":"opened","issue":{"id":1347,"title":"Found a bug"}}"#;
        let (status, body) = text(sender.send("delivery-1", opened).await.unwrap()).await;
        assert_eq!((status, body.as_str()), (200, "accepted 1 events\n"));

        let notifications = hooks.wait_for_notifications(1).await;
        let message = &notifications[0]["message"];
        assert_eq!(message["instanceId"], "gh");
        assert_eq!(message["elementKey"], "github");
        assert_eq!(message["events"][0]["eventType"], "CREATED");
        assert_eq!(message["events"][0]["objectType"], "issues");
        assert_eq!(message["events"][0]["objectId"], "1347");
        assert_eq!(
            message["raw"],
            json!({"issues": [{"id": 1347, "title": "Found a bug"}]})
        );

        // GitHub's retry of the same delivery: 2xx, not enqueued again.
        let (status, body) = text(sender.send("delivery-1", opened).await.unwrap()).await;
        assert_eq!((status, body.as_str()), (200, "duplicate\n"));
        // A later delivery arrives after anything the retry could have enqueued (one
        // instance's notifications are delivered in order).
        let deleted = r#"{"action":"deleted","issue":{"id":1347}}"#;
        assert_eq!(
            sender.send("delivery-2", deleted).await.unwrap().status(),
            200
        );
        let notifications = hooks.wait_for_notifications(2).await;
        assert_eq!(notifications.len(), 2, "the retry was not delivered");
        assert_eq!(
            notifications[1]["message"]["events"][0]["eventType"],
            "DELETED"
        );

        let status = hooks.status();
        let line = status
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["instance"] == "gh")
            .unwrap();
        assert_eq!(line["kind"], "webhooks");
        assert_eq!(
            line["receipts"],
            json!({"accepted": 2, "duplicates": 1, "has_url": true}),
            "{status:#}"
        );
        assert!(line["last_receipt_at"].is_string(), "{line}");
        hooks.daemon.stop();
    });
}

#[test]
fn a_standard_webhooks_provider_is_verified_and_replays_are_not_enqueued() {
    util::runtime().block_on(async {
        let keys = json!({
            "webhook.signature.type": "standard-webhooks",
            "webhook.signature.key": WHSEC,
        });
        let hooks = Hooks::start("", &[("sw", keys)], &[]).await;
        let sender = StandardSender::new(&hooks.url("sw"), WHSEC);
        let body = r#"{"type":"invoice.paid","data":{"id":"in_1"}}"#;
        assert_eq!(sender.send("msg_1", body).await.unwrap().status(), 200);
        // The same webhook-id again (a retry, or a replay within the tolerance): not enqueued.
        let (status, answer) = text(sender.send("msg_1", body).await.unwrap()).await;
        assert_eq!((status, answer.as_str()), (200, "duplicate\n"));
        // A timestamp outside the 5-minute tolerance, correctly signed: refused.
        let stale = chrono::Utc::now().timestamp() - 600;
        assert_eq!(
            sender.send_at("msg_2", stale, body).await.unwrap().status(),
            401
        );
        // Signed with another secret: refused.
        let forger = StandardSender::new(&sender.url, "whsec_b3RoZXI=");
        assert_eq!(forger.send("msg_3", body).await.unwrap().status(), 401);
        assert_eq!(
            sender.send("msg_4", r#"{"n":4}"#).await.unwrap().status(),
            200
        );

        let notifications = hooks.wait_for_notifications(2).await;
        assert_eq!(notifications.len(), 2);
        // No webhook.configuration: the whole body is one event of objectType webhook.
        let message = &notifications[0]["message"];
        assert_eq!(message["events"][0]["objectType"], "webhook");
        assert!(
            message["events"][0]["objectId"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
        assert_eq!(message["raw"]["webhook"][0]["data"]["id"], "in_1");
        hooks.daemon.stop();
    });
}

/// Every 404 looks the same: unknown instance, wrong or missing token, any other path.
#[test]
fn wrong_tokens_and_unknown_instances_are_the_same_404() {
    util::runtime().block_on(async {
        let hooks = Hooks::start("", &[("gh", github_keys())], &[]).await;
        let good = hooks.url("gh");
        let token = token_of(&good);
        let client = support::webhook_sender::client();
        let mut answers = BTreeSet::new();
        for url in [
            format!("{}/webhooks/gh/{}x", hooks.base, token),
            format!("{}/webhooks/gh/", hooks.base),
            format!("{}/webhooks/gh", hooks.base),
            format!("{}/webhooks/nobody/{token}", hooks.base),
            format!("{}/anything", hooks.base),
        ] {
            let response = client
                .post(&url)
                .header("Content-Type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let headers: Vec<_> = response
                .headers()
                .iter()
                .filter(|(name, _)| *name != "date")
                .map(|(name, value)| format!("{name}: {value:?}"))
                .collect();
            let (status, body) = text(response).await;
            answers.insert((status, body, headers));
        }
        assert_eq!(answers.len(), 1, "{answers:#?}");
        assert_eq!(answers.first().unwrap().0, 404);
        // The token never reaches the log.
        assert!(!hooks.daemon.log_text().contains(&token));
        hooks.daemon.stop();
    });
}

#[test]
fn bad_requests_are_refused_with_their_status_and_never_enqueued() {
    util::runtime().block_on(async {
        let instances = [
            ("gh", github_keys()),
            ("items", json!({"webhook.configuration": {"recordsPath": "items", "idField": "id"}})),
            ("raw", json!({"webhook.invalid.body": "raw"})),
        ];
        let hooks = Hooks::start("[listen]\nmax_body_bytes = 4096\n", &instances, &[]).await;
        let gh = hooks.url("gh");
        let client = support::webhook_sender::client();
        let sender = GitHubSender::new(&gh, GITHUB_SECRET);

        // A bad signature: 401, logged without the body.
        let marker = "body-marker-that-must-not-be-logged";
        let body = format!(r#"{{"action":"opened","issue":{{"id":1,"note":"{marker}"}}}}"#);
        let forged = client
            .post(&gh)
            .header("Content-Type", "application/json")
            .header("X-Hub-Signature-256", GitHubSender::new(&gh, "guess").signature(body.as_bytes()))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(text(forged).await, (401, "bad signature\n".to_owned()));
        let unsigned = client
            .post(&gh)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 401);

        // GET: 405; a form body: 415.
        let get = client.get(&gh).send().await.unwrap();
        assert_eq!(get.status(), 405);
        assert_eq!(get.headers()["allow"], "POST");
        let form = client
            .post(&gh)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("payload=%7B%7D")
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 415);

        // Not JSON, or JSON without the configured records: 400 with the reason.
        let items = hooks.url("items");
        let post = |url: &str, body: &str| {
            client
                .post(url)
                .header("Content-Type", "application/json")
                .body(body.to_owned())
                .send()
        };
        let (status, reason) = text(post(&items, "{not json").await.unwrap()).await;
        assert_eq!(status, 400);
        assert!(reason.starts_with("the body is not JSON"), "{reason}");
        let (status, reason) = text(post(&items, r#"{"data":[]}"#).await.unwrap()).await;
        assert_eq!((status, reason.as_str()), (400, "the body has no records at items (recordsPath)\n"));
        // ... unless the instance keeps such bodies as raw events.
        let raw = hooks.url("raw");
        let kept = client
            .post(&raw)
            .header("Content-Type", "text/plain")
            .body("plain words")
            .send()
            .await
            .unwrap();
        assert_eq!(kept.status(), 200);

        // Over max_body_bytes: 413, declared or not.
        let big = "x".repeat(5000);
        assert_eq!(post(&items, &big).await.unwrap().status(), 413);
        // Chunked, so no Content-Length to refuse it by: cut off when it passes the limit.
        let path = items.strip_prefix(&hooks.base).unwrap();
        let mut stream = TcpStream::connect(hooks.base.strip_prefix("http://").unwrap()).await.unwrap();
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        for _ in 0..10 {
            request.push_str(&format!("3e8\r\n{}\r\n", "y".repeat(1000)));
        }
        request.push_str("0\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

        // Only the raw event reached the receiver; the valid signature test below proves the
        // instance works, so nothing else was enqueued either.
        assert_eq!(sender.send("d-1", r#"{"action":"opened","issue":{"id":2}}"#).await.unwrap().status(), 200);
        let notifications = hooks.wait_for_notifications(2).await;
        assert_eq!(notifications.len(), 2);
        let raw_record = &notifications
            .iter()
            .find(|n| n["message"]["instanceId"] == "raw")
            .unwrap()["message"]["raw"]["webhook"][0];
        assert_eq!(raw_record, &json!({"contentType": "text/plain", "body": "plain words"}));
        let (_, log) = hooks.daemon.stop();
        assert!(log.contains("bad signature"), "{log}");
        assert!(!log.contains(marker), "the body was logged");
    });
}

/// A body over the limit is refused from its Content-Length, before it is sent at all.
#[test]
fn a_declared_oversize_body_is_refused_without_reading_it() {
    util::runtime().block_on(async {
        let hooks = Hooks::start("[listen]\nmax_body_bytes = 1024\n", &[("open", json!({}))], &[]).await;
        let url = hooks.url("open");
        let path = url.strip_prefix(&hooks.base).unwrap();
        let mut stream = TcpStream::connect(hooks.base.strip_prefix("http://").unwrap()).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // 100 MB announced, one byte sent: the answer comes anyway.
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        hooks.daemon.stop();
    });
}

/// Slowloris: headers or a body one byte at a time are cut off by the read timeouts.
#[test]
fn slow_clients_are_cut_off() {
    util::runtime().block_on(async {
        let config = "[listen]\nheader_timeout_seconds = 1\nbody_timeout_seconds = 1\n";
        let hooks = Hooks::start(config, &[("open", json!({}))], &[]).await;
        let url = hooks.url("open");
        let path = url.strip_prefix(&hooks.base).unwrap().to_owned();
        let addr = hooks.base.strip_prefix("http://").unwrap().to_owned();

        // Headers, one byte every 200 ms: 120 bytes would take 24 s.
        let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n", "p".repeat(40));
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let mut cut_off = false;
        for byte in head.bytes() {
            if stream.write_all(&[byte]).await.is_err() {
                cut_off = true;
                break;
            }
            let mut buffer = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    cut_off = true;
                    break;
                }
                // hyper answers 408 before it closes.
                Ok(Ok(_)) => {}
                Err(_) => {}
            }
        }
        assert!(cut_off, "the slow headers were never cut off");

        // A body, one byte every 200 ms: 408.
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        for _ in 0..100 {
            if stream.write_all(b" ").await.is_err() {
                break;
            }
            let mut buffer = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
                Err(_) => {}
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        hooks.daemon.stop();
    });
}

#[test]
fn a_flood_from_one_instance_is_rate_limited_and_the_others_go_on() {
    util::runtime().block_on(async {
        let instances = [
            ("slow", json!({"webhook.rate.per_minute": 1})),
            ("other", json!({})),
        ];
        let hooks = Hooks::start("", &instances, &["--metrics-addr", "127.0.0.1:0"]).await;
        let client = support::webhook_sender::client();
        let post = |url: String, n: u32| {
            client
                .post(url)
                .header("Content-Type", "application/json")
                .body(format!(r#"{{"n":{n}}}"#))
                .send()
        };
        let slow = hooks.url("slow");
        assert_eq!(post(slow.clone(), 1).await.unwrap().status(), 200);
        let limited = post(slow.clone(), 2).await.unwrap();
        assert_eq!(limited.status(), 429);
        let wait: u64 = limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(post(slow, 3).await.unwrap().status(), 429);
        assert_eq!(post(hooks.url("other"), 4).await.unwrap().status(), 200);

        // Counted by result.
        let metrics_address = hooks
            .daemon
            .log_lines()
            .into_iter()
            .find_map(|line| {
                (line["message"].as_str()?.starts_with("serving /metrics"))
                    .then(|| line["address"].as_str().map(str::to_owned))?
            })
            .unwrap();
        let scrape = reqwest::get(format!("http://{metrics_address}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for series in [
            r#"ocpoll_webhook_receipts_total{instance_name="slow",result="accepted"} 1"#,
            r#"ocpoll_webhook_receipts_total{instance_name="slow",result="rate_limited"} 2"#,
            r#"ocpoll_webhook_receipts_total{instance_name="other",result="accepted"} 1"#,
        ] {
            assert!(scrape.contains(series), "{series} missing in\n{scrape}");
        }
        hooks.daemon.stop();
    });
}

/// `webhooks url --rotate`: the new URL works at once, the old one until its grace ends, and
/// `status` shows until when.
#[test]
fn a_rotated_token_keeps_the_old_url_for_its_grace_period() {
    util::runtime().block_on(async {
        let hooks = Hooks::start("", &[("a", json!({})), ("b", json!({}))], &[]).await;
        let client = support::webhook_sender::client();
        let post = |url: String| {
            client
                .post(url)
                .header("Content-Type", "application/json")
                .body(format!(r#"{{"at":"{}"}}"#, chrono::Utc::now()))
                .send()
        };
        let old_a = hooks.url("a");
        let new_a = webhook_url(&hooks.dir, "a", &["--rotate"]);
        let new_a = format!("{}/webhooks/a/{}", hooks.base, token_of(&new_a));
        assert_ne!(old_a, new_a);
        // The daemon re-reads the tokens on a miss, at most every quarter of a second.
        let mut answers = Vec::new();
        while answers.last() != Some(&200) {
            assert!(
                answers.len() < 80,
                "the new token never worked: {answers:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            answers.push(post(new_a.clone()).await.unwrap().status().as_u16());
        }
        assert!(
            answers.iter().all(|s| *s == 404 || *s == 200),
            "{answers:?}"
        );
        assert_eq!(post(old_a).await.unwrap().status(), 200);
        let status = hooks.status();
        let line = status
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["instance"] == "a")
            .unwrap();
        assert!(line["previous_token_until"].is_string(), "{line}");

        // No grace: the old URL stops at once.
        let old_b = hooks.url("b");
        let new_b = webhook_url(&hooks.dir, "b", &["--rotate", "--grace", "0s"]);
        let mut status = 200;
        for _ in 0..80 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            status = post(old_b.clone()).await.unwrap().status().as_u16();
            if status != 200 {
                break;
            }
        }
        assert_eq!(status, 404, "the old token still works");
        let new_b = format!("{}/webhooks/b/{}", hooks.base, token_of(&new_b));
        let mut status = 404;
        for _ in 0..80 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            status = post(new_b.clone()).await.unwrap().status().as_u16();
            if status == 200 {
                break;
            }
        }
        assert_eq!(status, 200);
        hooks.daemon.stop();
    });
}

/// The state does not take the commit in time (here another process holds its write lock):
/// 503, never 2xx; once it works again, the provider's retry is accepted and delivered once.
#[test]
fn an_unavailable_state_is_503_and_the_retry_is_delivered_once() {
    util::runtime().block_on(async {
        let config = "[listen]\ncommit_timeout_seconds = 1\n";
        let hooks = Hooks::start(config, &[("gh", github_keys())], &[]).await;
        let sender = GitHubSender::new(&hooks.url("gh"), GITHUB_SECRET);
        let blocker = rusqlite::Connection::open(hooks.dir.join("state.db")).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let body = r#"{"action":"opened","issue":{"id":77}}"#;
        let (status, _) = text(sender.send("d-77", body).await.unwrap()).await;
        assert_eq!(status, 503, "{}", hooks.daemon.log_text());
        blocker.execute_batch("COMMIT").unwrap();
        drop(blocker);
        // The provider retries until it gets a 2xx.
        let mut answers = Vec::new();
        for _ in 0..40 {
            let (status, body) = text(sender.send("d-77", body).await.unwrap()).await;
            answers.push(status);
            if status == 200 {
                assert!(
                    ["accepted 1 events\n", "duplicate\n"].contains(&body.as_str()),
                    "{body}"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(answers.last(), Some(&200), "{answers:?}");
        assert!(
            answers.iter().all(|s| *s == 200 || *s == 503),
            "{answers:?}"
        );
        // A later webhook arrives after anything the first could have enqueued twice.
        assert_eq!(
            sender
                .send("d-78", r#"{"action":"x","issue":{"id":78}}"#)
                .await
                .unwrap()
                .status(),
            200
        );
        let notifications = hooks.wait_for_notifications(2).await;
        let ids: Vec<_> = notifications
            .iter()
            .map(|n| {
                n["message"]["events"][0]["objectId"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids, ["77", "78"]);
        hooks.daemon.stop();
    });
}

/// `ocpoll webhooks url` without a daemon: the same URL each time, `[listen] public_url` as
/// the default base, and clear refusals for what is not a webhooks instance.
#[test]
fn webhooks_url_prints_a_stable_url_and_refuses_what_it_cannot_serve() {
    let dir = Dir::with_layout("[listen]\npublic_url = \"https://hooks.example.com/\"\n");
    dir.create(
        "instances.d/hooks.json",
        r#"{"name": "hooks", "configuration": {"event.notification.enabled": true,
            "event.vendor.type": "webhooks", "event.notification.callback.url": "https://x.example/in"}}"#,
    );
    dir.create(
        "instances.d/polled.json",
        r#"{"name": "polled", "configuration": {"base.url": "https://api.example", "event.notification.enabled": false}}"#,
    );
    let run = |args: &[&str]| {
        layout_command(&dir, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap()
    };
    let first = run(&["webhooks", "url", "hooks"]);
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let url = String::from_utf8(first.stdout).unwrap();
    assert!(
        url.starts_with("https://hooks.example.com/webhooks/hooks/"),
        "{url}"
    );
    assert_eq!(token_of(url.trim()).len(), 43);
    let again = run(&["webhooks", "url", "hooks"]);
    assert_eq!(
        String::from_utf8(again.stdout).unwrap(),
        url,
        "the same token"
    );

    for (args, code, message) in [
        (
            &["webhooks", "url", "polled"][..],
            1,
            "is not a webhooks instance",
        ),
        (
            &["webhooks", "url", "nobody"][..],
            1,
            "no instance named \"nobody\"",
        ),
        (
            &["webhooks", "url", "hooks", "--base", "ftp://x"][..],
            2,
            "not an absolute http(s) URL",
        ),
        (
            &["webhooks", "url", "hooks", "--grace", "1h"][..],
            2,
            "--rotate",
        ),
    ] {
        let output = run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

/// A webhooks instance added while the daemon runs is received once the folder is reloaded,
/// and a name that needs escaping in a URL works through `webhooks url`'s escaping.
#[test]
fn an_instance_added_at_runtime_is_received_after_the_reload() {
    util::runtime().block_on(async {
        let hooks = Hooks::start("", &[("first", json!({}))], &[]).await;
        let body = json!({"name": "second one", "configuration": {
            "event.notification.enabled": true,
            "event.vendor.type": "webhooks",
            "event.notification.callback.url": hooks.receiver.url(),
            "event.notification.signature.key": KEY,
        }});
        hooks
            .dir
            .create("instances.d/second.json", &body.to_string());
        hooks.daemon.signal(libc::SIGHUP);
        let url = webhook_url(&hooks.dir, "second one", &[]);
        assert!(url.contains("/webhooks/second%20one/"), "{url}");
        let url = format!("{}/webhooks/second%20one/{}", hooks.base, token_of(&url));
        let client = support::webhook_sender::client();
        // The reload and the token cache each take a moment: retried like a provider would.
        let mut answers = Vec::new();
        while answers.last() != Some(&200) {
            assert!(answers.len() < 100, "never received: {answers:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            let response = client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(r#"{"hello":"again"}"#)
                .send()
                .await
                .unwrap();
            answers.push(response.status().as_u16());
        }
        assert!(
            answers.iter().all(|s| *s == 404 || *s == 200),
            "{answers:?}"
        );
        let notifications = hooks.wait_for_notifications(1).await;
        assert_eq!(notifications[0]["message"]["instanceId"], "second one");
        hooks.daemon.stop();
    });
}
