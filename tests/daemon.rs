//! The daemon end to end: the real `ocpoll run --foreground` against the mock provider and
//! receiver on loopback, driven with real signals (SIGTERM, SIGHUP) and a real systemd notify
//! socket. Instances poll every second (`event.poller.refresh_seconds`), jitter is zero.
//! Waits are bounded (a stuck daemon fails the test) but nothing asserts how fast anything is.

mod support;
mod util;

use chrono::Utc;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::mock_provider::{Failure, MockProvider};
use support::mock_receiver::MockReceiver;
use util::Dir;
use util::daemon::{Daemon, PATIENCE, layout_command, wait_until};

const KEY: &str = "daemon-test-key";

struct Setup {
    dir: Dir,
    provider: MockProvider,
    receiver: MockReceiver,
}

impl Setup {
    async fn new(config: &str) -> Setup {
        let dir = Dir::with_layout(&format!(
            "[poll]\njitter_seconds = 0\n[delivery]\nbackoff_initial_seconds = 0\n\
             backoff_max_seconds = 0\n{config}\n"
        ));
        Setup {
            dir,
            provider: MockProvider::builder().start().await,
            receiver: MockReceiver::start(&[KEY]).await,
        }
    }

    fn instance_body(&self, name: &str) -> String {
        json!({"element": {"key": "crm"}, "name": name, "configuration": {
            "base.url": self.provider.base_url().as_str(),
            "event.notification.enabled": true,
            "event.notification.callback.url": self.receiver.url(),
            "event.notification.signature.key": KEY,
            "event.poller.refresh_seconds": 1,
            "event.poller.configuration": {"contacts": {
                "url": "/hubs/crm/contacts?where=updated_at>='${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}'",
                "idField": "id",
                "datesConfiguration": {
                    "updatedDateField": "updated_at",
                    "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ss'Z'",
                    "updatedDateTimezone": "GMT"
                }
            }}
        }})
        .to_string()
    }

    fn write_instance(&self, name: &str) {
        self.dir.create(
            format!("instances.d/{name}.json"),
            &self.instance_body(name),
        );
    }

    fn command(&self, args: &[&str]) -> Command {
        layout_command(&self.dir, args)
    }

    /// Starts `ocpoll run --foreground --log-format json`, logging to `<log>`.
    fn start_daemon(&self, log: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::start(&self.dir, log, &[], env)
    }

    /// Every record change the receiver got, as (instance, objectId, date), after dedupe by
    /// eventId; panics on an invalid signature or a change carried twice.
    fn changes(&self) -> BTreeSet<(String, String, String)> {
        let mut bodies: BTreeMap<String, Value> = BTreeMap::new();
        for request in self.receiver.received() {
            assert_eq!(request.elements_valid, Some(true), "elements signature");
            assert_eq!(
                request.standard_valid,
                Some(true),
                "standard webhooks signature"
            );
            bodies.insert(request.event_id(), request.json());
        }
        let mut changes = BTreeSet::new();
        for body in bodies.values() {
            let message = &body["message"];
            for event in message["events"].as_array().unwrap() {
                let change = (
                    message["instanceId"].as_str().unwrap().to_owned(),
                    event["objectId"].as_str().unwrap().to_owned(),
                    event["date"].as_str().unwrap().to_owned(),
                );
                assert!(changes.insert(change.clone()), "{change:?} came twice");
            }
        }
        changes
    }

    fn objects_of(&self, instance: &str) -> BTreeSet<String> {
        self.changes()
            .into_iter()
            .filter(|(name, _, _)| name == instance)
            .map(|(_, id, _)| id)
            .collect()
    }

    fn upsert_now(&self, ids: &[&str]) {
        for id in ids {
            self.provider
                .upsert(id, Utc::now(), json!({"name": format!("contact {id}")}));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_reach_the_receiver_while_it_runs_and_sigterm_exits_0() {
    let setup = Setup::new("").await;
    setup.write_instance("crm");
    let daemon = setup.start_daemon("daemon.log", &[]);
    // Two polls logged: the baseline is committed, so what changes next becomes events.
    wait_until("the baseline", &daemon, || daemon.poll_lines("crm") >= 2).await;
    setup.upsert_now(&["c1", "c2"]);
    wait_until("c1 and c2", &daemon, || {
        setup.objects_of("crm") == BTreeSet::from(["c1".to_owned(), "c2".to_owned()])
    })
    .await;
    setup.upsert_now(&["c3"]);
    wait_until("c3", &daemon, || setup.objects_of("crm").contains("c3")).await;

    let polls = daemon.log_lines();
    let poll = polls
        .iter()
        .find(|line| line["message"] == "poll" && line["events"].as_u64() > Some(0))
        .expect("a poll line with events");
    for field in ["resource", "records", "duration_ms", "watermark"] {
        assert!(!poll[field].is_null(), "poll line without {field}: {poll}");
    }
    assert!(
        !daemon.log_text().contains(KEY),
        "the signature key was logged"
    );

    daemon.signal(libc::SIGTERM);
    let (status, log) = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_poll_exits_0_and_a_restart_loses_and_duplicates_nothing() {
    let setup = Setup::new("[daemon]\ngrace_seconds = 1").await;
    setup.write_instance("crm");
    let daemon = setup.start_daemon("first.log", &[]);
    wait_until("the baseline", &daemon, || daemon.poll_lines("crm") >= 2).await;
    setup.upsert_now(&["early"]);
    wait_until("the first change", &daemon, || {
        setup.objects_of("crm").contains("early")
    })
    .await;

    // The next request hangs far longer than the grace period: SIGTERM arrives mid-poll.
    let hanging = setup.provider.request_count() + 1;
    setup
        .provider
        .fail_on(hanging, Failure::Slow(Duration::from_secs(60)));
    setup.upsert_now(&["m1", "m2", "m3"]);
    wait_until("the hanging request", &daemon, || {
        setup.provider.request_count() >= hanging
    })
    .await;
    daemon.signal(libc::SIGTERM);
    let (status, log) = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("abandoning polls in flight"), "{log}");

    let daemon = setup.start_daemon("second.log", &[]);
    let expected: BTreeSet<String> = ["early", "m1", "m2", "m3"].map(str::to_owned).into();
    wait_until("every change after the restart", &daemon, || {
        setup.objects_of("crm") == expected
    })
    .await;
    daemon.signal(libc::SIGINT);
    let (status, log) = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{log}");
    // `changes` panics on a change delivered in two notifications.
    assert_eq!(setup.changes().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_adds_an_instance_and_a_broken_edit_keeps_the_old_version() {
    let setup = Setup::new("").await;
    setup.write_instance("a");
    let daemon = setup.start_daemon("daemon.log", &[]);
    wait_until("a's baseline", &daemon, || daemon.poll_lines("a") >= 2).await;

    setup.write_instance("b");
    setup
        .dir
        .create("instances.d/a.json", "{ \"name\": \"a\", broken");
    daemon.signal(libc::SIGHUP);
    wait_until("b's baseline", &daemon, || daemon.poll_lines("b") >= 2).await;
    assert!(
        daemon
            .log_text()
            .contains("invalid: its previous version keeps running"),
        "{}",
        daemon.log_text()
    );

    setup.upsert_now(&["x1"]);
    wait_until("x1 at both instances", &daemon, || {
        setup.objects_of("a").contains("x1") && setup.objects_of("b").contains("x1")
    })
    .await;

    // Removing b stops it; its state stays (status still lists it).
    std::fs::remove_file(setup.dir.join("instances.d/b.json")).unwrap();
    daemon.signal(libc::SIGHUP);
    wait_until("the reload without b", &daemon, || {
        daemon
            .log_lines()
            .iter()
            .rfind(|line| line["message"] == "instances loaded")
            .is_some_and(|line| line["resources"] == 1)
    })
    .await;
    let status = setup
        .command(&["status", "--json"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("\"b\""), "{status}");

    daemon.signal(libc::SIGTERM);
    let (status, log) = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_hears_ready_watchdog_and_stopping_and_the_state_is_locked() {
    let setup = Setup::new("").await;
    setup.write_instance("crm");
    let socket_path = setup.dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let daemon = setup.start_daemon(
        "daemon.log",
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    // A reload's status line may come at any point (on a loaded machine the folder watcher
    // can report the files written before the start); it is not what this test checks.
    let next_message = || loop {
        let mut buffer = [0u8; 512];
        let read = socket.recv(&mut buffer).expect("a notify message");
        let message = String::from_utf8_lossy(&buffer[..read]).into_owned();
        if !message.starts_with("STATUS=") {
            return message;
        }
    };
    let first = next_message();
    assert!(first.starts_with("READY=1\n"), "{first}");
    assert!(first.contains("STATUS=1 polled instances"), "{first}");
    assert_eq!(next_message(), "WATCHDOG=1");

    // A cron tick on the same state exits 75 while the daemon holds it.
    let tick = setup.command(&["tick"]).output().unwrap();
    assert_eq!(tick.status.code(), Some(75), "{tick:?}");

    daemon.signal(libc::SIGTERM);
    let mut stopping = None;
    for _ in 0..100 {
        let message = next_message();
        if message.starts_with("STOPPING=1") {
            stopping = Some(message);
            break;
        }
        assert_eq!(message, "WATCHDOG=1");
    }
    assert!(stopping.is_some(), "no STOPPING=1");
    let (status, log) = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_instances_folder_it_exits_78() {
    let setup = Setup::new("").await;
    std::fs::remove_dir(setup.dir.join("instances.d")).unwrap();
    let run = setup
        .command(&["run", "--foreground"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(78), "{run:?}");
    assert!(String::from_utf8_lossy(&run.stderr).contains("instances folder"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_added_to_the_folder_is_polled_without_a_signal() {
    let setup = Setup::new("").await;
    setup.write_instance("a");
    let daemon = setup.start_daemon("daemon.log", &[]);
    wait_until("a's first poll", &daemon, || daemon.poll_lines("a") >= 1).await;
    setup.write_instance("b");
    wait_until("b's first poll", &daemon, || daemon.poll_lines("b") >= 1).await;
    assert!(daemon.log_text().contains("the instances folder changed"));
    daemon.signal(libc::SIGTERM);
    let (status, log) = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{log}");
}

/// docs/design.md#scheduler: a restart schedules from the state. A resource whose next poll
/// is ahead gets no request at the restart; one that is overdue is polled, within the jitter.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_waits_for_saved_due_times_and_polls_the_overdue() {
    let setup = Setup::new("").await;
    let other = MockProvider::builder().start().await;
    // `hourly` polls hourly from the start; `overdue` every second in the first run.
    let instance = |name: &str, provider: &MockProvider, hourly: bool| {
        let mut body: Value = serde_json::from_str(&setup.instance_body(name)).unwrap();
        let configuration = body["configuration"].as_object_mut().unwrap();
        configuration.insert("base.url".into(), json!(provider.base_url().as_str()));
        if hourly {
            configuration.remove("event.poller.refresh_seconds");
            configuration.insert("event.poller.refresh_interval".into(), json!(60));
        }
        setup
            .dir
            .create(format!("instances.d/{name}.json"), &body.to_string());
    };
    instance("hourly", &setup.provider, true);
    instance("overdue", &other, false);
    let daemon = setup.start_daemon("first.log", &[]);
    wait_until("both baselines", &daemon, || {
        daemon.poll_lines("hourly") >= 1 && daemon.poll_lines("overdue") >= 1
    })
    .await;
    let (status, log) = daemon.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    let hourly_requests = setup.provider.request_count();
    assert_eq!(hourly_requests, 1, "{log}");

    // Both hourly now; `overdue` was due a second after its last poll, which has passed.
    instance("overdue", &other, true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let overdue_requests = other.request_count();
    let window = Duration::from_secs(1);
    setup.dir.create(
        "config.toml",
        "[poll]\njitter_seconds = 1\n[delivery]\nbackoff_initial_seconds = 0\n\
         backoff_max_seconds = 0\n",
    );
    let daemon = setup.start_daemon("second.log", &[]);
    wait_until("the overdue resource's poll", &daemon, || {
        daemon.poll_lines("overdue") >= 1
    })
    .await;
    assert_eq!(other.request_count(), overdue_requests + 1);
    // Without the state's due times, `hourly` would be polled within the window too.
    tokio::time::sleep(window + Duration::from_millis(500)).await;
    assert_eq!(
        setup.provider.request_count(),
        hourly_requests,
        "the restart polled a resource that was not due:\n{}",
        daemon.log_text()
    );
    assert_eq!(daemon.poll_lines("hourly"), 0, "{}", daemon.log_text());
    let scheduled = daemon
        .log_lines()
        .into_iter()
        .find(|line| line["waiting"].is_u64())
        .unwrap_or_else(|| panic!("no scheduling line:\n{}", daemon.log_text()));
    assert_eq!(scheduled["waiting"], 1, "{scheduled}");
    assert_eq!(scheduled["due_now"], 1, "{scheduled}");
    let (status, log) = daemon.stop();
    assert_eq!(status.code(), Some(0), "{log}");
}
