//! `cargo bench --bench webhooks`: webhooks accepted per second by the release daemon
//! (`ocpoll run --listen`) on loopback, from 64 concurrent GitHub-like senders (signed bodies,
//! a delivery id each, keep-alive connections), and the accept latency each sender saw: from
//! writing the request to reading the 2xx, which the daemon sends only after the receipt's
//! durable commit (docs/design.md#webhooks).
//!
//! Scenarios: **full** (`[state] synchronous = "full"`, the default: every commit waits for the
//! disk; concurrent receipts share one commit through the listener's writer, group commit) and
//! **normal** (`synchronous = "normal"`: the cost of durability). Eight webhooks instances share
//! the senders (eight callback queues delivering in parallel); their rate limits are set out of
//! the way. The callback receiver (`tests/support/mock_receiver.rs`, verifying both
//! signatures) runs in the bench process, so the daemon delivers while it accepts, as it would
//! in production; after the senders stop, the bench waits until every accepted webhook was
//! delivered and reports how long that took.
//!
//! Figures: accepted/s over the sending window, latency p50/p99/max, peak RSS (the daemon's
//! VmHWM sampled from /proc), the daemon's CPU per accepted webhook, and the bench's own CPU (the
//! senders and the receiver share the machine's two cores with the daemon). Goal
//! (issue 15): 10,000/s with p99 under 20 ms. Knobs: `BENCH_WEBHOOKS_SECONDS` (default 10),
//! `BENCH_WEBHOOKS_ONLY=full,normal`, `BENCH_WEBHOOKS_DELIVER=0` (the callback is a closed port:
//! delivery fails and backs off, so the figures are the accepting alone). Figures go to stdout and `target/bench/webhooks.json`.

#[path = "../tests/support/mock_receiver.rs"]
mod mock_receiver;
#[path = "support/process.rs"]
mod process;

use hmac::{Hmac, KeyInit, Mac};
use mock_receiver::MockReceiver;
use process::{cpu_seconds, isolate, memory_kib, write_report};
use serde_json::json;
use sha2::Sha256;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SENDERS: usize = 64;
const INSTANCES: usize = 8;
const SIGNATURE_KEY: &str = "bench-signature-key";
const PROVIDER_SECRET: &str = "bench-provider-secret";
const GOAL_PER_SECOND: f64 = 10_000.0;
const GOAL_P99_MS: f64 = 20.0;

fn main() {
    let built = PathBuf::from(env!("CARGO_BIN_EXE_ocpoll"));
    let binary = process::bench_binary(env!("CARGO_BIN_EXE_ocpoll"));
    let seconds: u64 = std::env::var("BENCH_WEBHOOKS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let only = std::env::var("BENCH_WEBHOOKS_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|n| n.trim() == name);
    let mut report = serde_json::Map::new();
    for (name, synchronous) in [("full", "full"), ("normal", "normal")] {
        if wanted(name) {
            let measured = scenario(&binary, synchronous, Duration::from_secs(seconds));
            measured.print(name);
            report.insert(name.to_owned(), measured.json());
        }
    }
    // A busy machine (other builds) shows in every figure; say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at the end: {}", load.trim());
    report.insert("load_average".to_owned(), json!(load.trim()));
    report.insert(
        "goal".to_owned(),
        json!({"accepted_per_second": GOAL_PER_SECOND, "p99_ms": GOAL_P99_MS}),
    );
    write_report(&built, "webhooks", &serde_json::Value::Object(report));
}

struct Measured {
    accepted: u64,
    refused: u64,
    seconds: f64,
    latencies_ms: Vec<f64>,
    peak_rss_kib: u64,
    daemon_cpu: f64,
    bench_cpu: f64,
    drain_seconds: f64,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.accepted as f64 / self.seconds
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies_ms.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_ms[index]
    }

    fn print(&self, name: &str) {
        println!(
            "webhooks {name}: {:.0} accepted/s ({} in {:.1} s, {} refused), latency p50 {:.2} ms, \
             p99 {:.2} ms, max {:.1} ms; peak RSS {:.1} MiB; daemon CPU {:.1} s ({:.0} µs per \
             webhook), bench CPU {:.1} s; delivered all {:.1} s after the senders stopped",
            self.per_second(),
            self.accepted,
            self.seconds,
            self.refused,
            self.percentile(0.5),
            self.percentile(0.99),
            self.percentile(1.0),
            self.peak_rss_kib as f64 / 1024.0,
            self.daemon_cpu,
            self.daemon_cpu * 1e6 / self.accepted.max(1) as f64,
            self.bench_cpu,
            self.drain_seconds,
        );
        println!(
            "  goal {GOAL_PER_SECOND:.0}/s and p99 < {GOAL_P99_MS} ms: {}",
            if self.per_second() >= GOAL_PER_SECOND && self.percentile(0.99) < GOAL_P99_MS {
                "met"
            } else {
                "NOT met"
            }
        );
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "senders": SENDERS,
            "instances": INSTANCES,
            "accepted": self.accepted,
            "refused": self.refused,
            "seconds": self.seconds,
            "accepted_per_second": self.per_second(),
            "latency_ms": {"p50": self.percentile(0.5), "p99": self.percentile(0.99), "max": self.percentile(1.0)},
            "peak_rss_mib": self.peak_rss_kib as f64 / 1024.0,
            "daemon_cpu_seconds": self.daemon_cpu,
            "daemon_cpu_us_per_webhook": self.daemon_cpu * 1e6 / self.accepted.max(1) as f64,
            "bench_cpu_seconds": self.bench_cpu,
            "delivered_all_after_seconds": self.drain_seconds,
        })
    }
}

fn scenario(binary: &Path, synchronous: &str, window: Duration) -> Measured {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let receiver = MockReceiver::start(&[SIGNATURE_KEY]).await;
        let deliver = std::env::var("BENCH_WEBHOOKS_DELIVER").map_or(true, |v| v != "0");
        // Port 1 on loopback: connection refused at once (no DNS, nothing listens).
        let callback = if deliver {
            receiver.url()
        } else {
            "http://127.0.0.1:1/closed".to_owned()
        };
        std::fs::create_dir_all(dir.path().join("instances.d")).unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            format!("[state]\nsynchronous = \"{synchronous}\"\n[listen]\nmax_connections = 256\n"),
        )
        .unwrap();
        for index in 0..INSTANCES {
            let body = json!({"element": {"key": "github"}, "name": format!("hooks{index}"),
            "configuration": {
                "event.notification.enabled": true,
                "event.vendor.type": "webhooks",
                "event.notification.callback.url": callback,
                "event.notification.signature.key": SIGNATURE_KEY,
                "webhook.signature.header": "X-Hub-Signature-256",
                "webhook.signature.key": PROVIDER_SECRET,
                "webhook.signature.prefix": "sha256=",
                "webhook.delivery.header": "X-GitHub-Delivery",
                "webhook.rate.per_minute": 1_000_000_000,
                "webhook.configuration": {"recordsPath": "issue", "idField": "id",
                    "objectType": "issues", "eventTypeField": "action",
                    "eventTypeMap": {"opened": "CREATED"}}
            }});
            std::fs::write(
                dir.path().join(format!("instances.d/hooks{index}.json")),
                body.to_string(),
            )
            .unwrap();
        }
        let urls: Vec<String> = (0..INSTANCES)
            .map(|index| token(binary, dir.path(), &format!("hooks{index}")))
            .collect();
        let log = dir.path().join("daemon.log");
        let mut command = Command::new(binary);
        isolate(&mut command, dir.path());
        let mut child = command
            .args([
                "--log-format",
                "json",
                "run",
                "--foreground",
                "--listen",
                "127.0.0.1:0",
            ])
            .args([
                "--config",
                "config.toml",
                "--instances",
                "instances.d",
                "--state",
                "state.db",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        let base = listen_address(&log);
        let urls: Vec<String> = urls
            .iter()
            .enumerate()
            .map(|(index, token)| format!("http://{base}/webhooks/hooks{index}/{token}"))
            .collect();

        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let sampling = Arc::clone(&sampling);
            std::thread::spawn(move || {
                let mut peak = 0;
                while sampling.load(Ordering::Relaxed) {
                    if let Some((hwm, _)) = memory_kib(pid) {
                        peak = peak.max(hwm);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                peak
            })
        };
        let bench_cpu_before = cpu_seconds(std::process::id() as libc::pid_t).unwrap_or(0.0);
        let daemon_cpu_before = cpu_seconds(pid).unwrap_or(0.0);
        ocpoll::http::crypto::install_provider();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(SENDERS)
            .build()
            .unwrap();
        let started = Instant::now();
        let deadline = started + window;
        let senders: Vec<_> = (0..SENDERS)
            .map(|sender| {
                let client = client.clone();
                let url = urls[sender % INSTANCES].clone();
                tokio::spawn(send_until(client, url, sender, deadline))
            })
            .collect();
        let mut accepted = 0;
        let mut refused = 0;
        let mut latencies_ms = Vec::new();
        for sender in senders {
            let (ok, bad, latencies) = sender.await.unwrap();
            accepted += ok;
            refused += bad;
            latencies_ms.extend(latencies);
        }
        let seconds = started.elapsed().as_secs_f64();
        let daemon_cpu = cpu_seconds(pid).unwrap_or(0.0) - daemon_cpu_before;
        let bench_cpu =
            cpu_seconds(std::process::id() as libc::pid_t).unwrap_or(0.0) - bench_cpu_before;
        let stopped = Instant::now();
        let drain_limit = Duration::from_secs(300);
        loop {
            let delivered: HashSet<String> = receiver
                .received()
                .into_iter()
                .map(|request| request.event_id())
                .collect();
            if !deliver || delivered.len() as u64 >= accepted || stopped.elapsed() > drain_limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let drain_seconds = stopped.elapsed().as_secs_f64();
        sampling.store(false, Ordering::Relaxed);
        let peak_rss_kib = sampler.join().unwrap();
        // SAFETY: our own child's pid; SIGTERM stops it gracefully.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let _ = child.wait();
        latencies_ms.sort_by(f64::total_cmp);
        Measured {
            accepted,
            refused,
            seconds,
            latencies_ms,
            peak_rss_kib,
            daemon_cpu,
            bench_cpu,
            drain_seconds,
        }
    })
}

/// One sender: signed GitHub-like webhooks, one after the other, until `deadline`.
async fn send_until(
    client: reqwest::Client,
    url: String,
    sender: usize,
    deadline: Instant,
) -> (u64, u64, Vec<f64>) {
    let (mut ok, mut bad, mut latencies) = (0, 0, Vec::new());
    let mut number = 0u64;
    while Instant::now() < deadline {
        number += 1;
        let id = sender as u64 * 10_000_000 + number;
        let body = format!(
            r#"{{"action":"opened","issue":{{"id":{id},"number":{number},"title":"Bench issue {id}","state":"open","user":{{"login":"octocat","id":1}},"labels":[],"body":"Something is broken and this text makes the body about as long as a small real one."}}}}"#
        );
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(PROVIDER_SECRET.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let start = Instant::now();
        let response = client
            .post(&url)
            .header("Content-Type", "application/json")
            .header("X-GitHub-Delivery", format!("bench-{id}"))
            .header("X-Hub-Signature-256", signature)
            .body(body)
            .send()
            .await;
        let answered = match response {
            Ok(response) if response.status().is_success() => {
                let _ = response.bytes().await;
                true
            }
            _ => false,
        };
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
        if answered {
            ok += 1;
        } else {
            bad += 1;
        }
    }
    (ok, bad, latencies)
}

/// The URL token of `instance` from `ocpoll webhooks url`.
fn token(binary: &Path, dir: &Path, instance: &str) -> String {
    let mut command = Command::new(binary);
    isolate(&mut command, dir);
    let output = command
        .args(["webhooks", "url", instance, "--base", "http://127.0.0.1:1"])
        .args([
            "--config",
            "config.toml",
            "--instances",
            "instances.d",
            "--state",
            "state.db",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let url = String::from_utf8(output.stdout).unwrap();
    url.trim().rsplit('/').next().unwrap().to_owned()
}

/// The address the daemon listens on, from its JSON log.
fn listen_address(log: &Path) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if value["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("receiving webhooks"))
            {
                return value["address"].as_str().unwrap().to_owned();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the daemon did not start: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
