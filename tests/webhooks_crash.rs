//! The webhooks crash loop: a GitHub-like provider posts a numbered sequence of webhooks,
//! retrying each on anything but a 2xx (connection errors included), while the real daemon is
//! killed with SIGKILL at random moments and restarted on the same address. At the end every
//! numbered webhook must have reached the callback receiver, none twice (after deduplication
//! by eventId, which at-least-once delivery allows), whatever moment the kills hit: before the
//! commit, between the commit and the answer, during delivery.
//!
//! `OCPOLL_CRASH_WEBHOOKS=N` sends more (default 600).

mod support;
mod util;

use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use support::mock_receiver::MockReceiver;
use support::webhook_sender::GitHubSender;
use util::Dir;
use util::daemon::{Daemon, wait_until};
use util::hooks::{listen_base, token_of, webhook_url};

const KEY: &str = "crash-test-key";
const SECRET: &str = "crash-provider-secret";

/// A port every daemon of the loop listens on, in turn. Below Linux's ephemeral range
/// (32768 and up), so that while the daemon is down no other process's outgoing connection or
/// `bind(:0)` server takes it and answers the provider in its place.
fn free_port() -> u16 {
    for _ in 0..100 {
        let port = rand::random_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

#[test]
fn every_numbered_webhook_is_delivered_once_across_kill_9() {
    let count: u64 = std::env::var("OCPOLL_CRASH_WEBHOOKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(600);
    util::runtime().block_on(async move {
        let dir = Dir::with_layout(
            "[delivery]\nbackoff_initial_seconds = 0\nbackoff_max_seconds = 0\n\
             [daemon]\ngrace_seconds = 1\n",
        );
        let receiver = MockReceiver::start(&[KEY]).await;
        let body = json!({"element": {"key": "github"}, "name": "seq", "configuration": {
            "event.notification.enabled": true,
            "event.vendor.type": "webhooks",
            "event.notification.callback.url": receiver.url(),
            "event.notification.signature.key": KEY,
            "webhook.signature.header": "X-Hub-Signature-256",
            "webhook.signature.key": SECRET,
            "webhook.signature.prefix": "sha256=",
            "webhook.delivery.header": "X-GitHub-Delivery",
            "webhook.configuration": {"recordsPath": "issue", "idField": "number", "objectType": "issues"}
        }});
        dir.create("instances.d/seq.json", &body.to_string());
        let token = token_of(&webhook_url(&dir, "seq", &[]));
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let url = format!("http://{listen}/webhooks/seq/{token}");

        // The provider: each webhook until it is acknowledged, then the next.
        let done = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicU64::new(0));
        let sender = GitHubSender::new(&url, SECRET);
        let provider = {
            let (done, attempts) = (Arc::clone(&done), Arc::clone(&attempts));
            tokio::spawn(async move {
                for number in 1..=count {
                    let body = format!(r#"{{"action":"opened","issue":{{"number":{number}}}}}"#);
                    loop {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        match sender.send(&format!("delivery-{number}"), &body).await {
                            Ok(response) if response.status().is_success() => break,
                            _ => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                }
                done.store(true, Ordering::Release);
            })
        };

        let mut rounds = 0;
        while !done.load(Ordering::Acquire) {
            rounds += 1;
            let mut daemon =
                Daemon::start(&dir, &format!("daemon-{rounds}.log"), &["--listen", &listen], &[]);
            listen_base(&daemon);
            // A daemon runs until it is killed: a random moment of its receiving.
            let wait = Duration::from_millis(rand::random_range(10..150));
            tokio::time::sleep(wait).await;
            let child = daemon.child_mut();
            assert!(child.try_wait().unwrap().is_none(), "the daemon died on its own");
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            assert!(rounds < 1000, "the provider never finished");
        }
        provider.await.unwrap();

        // One more daemon, left alone, delivers what is still pending.
        let daemon = Daemon::start(&dir, "daemon-final.log", &["--listen", &listen], &[]);
        let delivered = || -> BTreeMap<String, serde_json::Value> {
            receiver
                .received()
                .into_iter()
                .map(|request| {
                    assert_eq!(request.elements_valid, Some(true));
                    (request.event_id(), request.json())
                })
                .collect()
        };
        let numbers = |bodies: &BTreeMap<String, serde_json::Value>| -> Vec<u64> {
            bodies
                .values()
                .flat_map(|body| body["message"]["events"].as_array().unwrap().clone())
                .map(|event| event["objectId"].as_str().unwrap().parse().unwrap())
                .collect()
        };
        wait_until("every webhook delivered", &daemon, || {
            numbers(&delivered()).into_iter().collect::<BTreeSet<_>>().len() as u64 >= count
        })
        .await;
        let mut seen = numbers(&delivered());
        seen.sort_unstable();
        let unique: BTreeSet<u64> = seen.iter().copied().collect();
        assert_eq!(unique, (1..=count).collect(), "every numbered webhook arrived");
        assert_eq!(seen.len() as u64, count, "none arrived twice under different eventIds");
        daemon.stop();
        eprintln!(
            "{count} webhooks, {} posts, {rounds} daemons killed",
            attempts.load(Ordering::Relaxed)
        );
        assert!(rounds > 1, "no daemon was killed while the provider sent");
        assert!(
            attempts.load(Ordering::Relaxed) > count,
            "no webhook had to be retried: the kills never hit a send"
        );
    });
}
