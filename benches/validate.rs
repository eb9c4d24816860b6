//! `cargo bench --bench validate`: `ocpoll validate` over 10,000 generated instance files.
//!
//! Runs the release binary three times on the same folder and prints the files, wall time per
//! run (best and median), files per second and the child's peak RSS; the figures also go to
//! `target/bench/validate.json`. Budget (docs/benchmarks.md#budget): under 1 s and under 100 MiB
//! (goals: 0.5 s, 50 MiB).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FILES: usize = 10_000;
const RUNS: usize = 3;
const BUDGET: Duration = Duration::from_secs(1);
const RSS_BUDGET_MIB: f64 = 100.0;

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter this bench ignores.
    let binary = Path::new(env!("CARGO_BIN_EXE_ocpoll"));
    let dir = tempfile::Builder::new()
        .prefix("ocpoll-bench-")
        .tempdir()
        .expect("temporary folder");
    let instances = dir.path().join("instances.d");
    std::fs::create_dir(&instances).unwrap();
    let generated = Instant::now();
    let mut bytes = 0;
    for index in 0..FILES {
        let text = instance(index);
        bytes += text.len();
        std::fs::write(instances.join(format!("crm-{index:05}.json")), text).unwrap();
    }
    eprintln!(
        "generated {FILES} files ({:.1} MiB) in {:.2?}",
        bytes as f64 / (1024.0 * 1024.0),
        generated.elapsed()
    );

    let mut times = Vec::new();
    for run in 0..RUNS {
        let started = Instant::now();
        let output = Command::new(binary)
            .arg("validate")
            .arg(&instances)
            .current_dir(dir.path())
            .env_clear()
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .output()
            .expect("run ocpoll");
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let summary = stdout.lines().last().unwrap_or_default();
        assert_eq!(
            output.status.code(),
            Some(0),
            "validate failed: {summary}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            summary.starts_with(&format!(
                "{FILES} files: {FILES} valid, 0 invalid; 0 errors, "
            )),
            "unexpected summary: {summary}"
        );
        eprintln!("run {}: {elapsed:.3?} ({summary})", run + 1);
        times.push(elapsed);
    }
    times.sort();
    let best = times[0];
    let median = times[times.len() / 2];
    let usage = children_usage();
    // Linux reports ru_maxrss in KiB.
    let rss_mib = usage.ru_maxrss as f64 / 1024.0;
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let user = seconds(usage.ru_utime) / RUNS as f64;
    let system = seconds(usage.ru_stime) / RUNS as f64;
    let files_per_second = FILES as f64 / median.as_secs_f64();

    println!("validate: {FILES} files, {RUNS} runs");
    println!("  wall time   best {best:.3?}, median {median:.3?}");
    println!("  throughput  {files_per_second:.0} files/s (median)");
    println!("  CPU per run user {user:.3}s, system {system:.3}s");
    println!("  peak RSS    {rss_mib:.1} MiB");
    println!(
        "  budget      {} (< {:?} and < {RSS_BUDGET_MIB} MiB)",
        if median < BUDGET && rss_mib < RSS_BUDGET_MIB {
            "met"
        } else {
            "MISSED"
        },
        BUDGET
    );

    let report = serde_json::json!({
        "benchmark": "validate",
        "files": FILES,
        "bytes": bytes,
        "runs": times.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        "best_seconds": best.as_secs_f64(),
        "median_seconds": median.as_secs_f64(),
        "files_per_second": files_per_second,
        "cpu_user_seconds_per_run": user,
        "cpu_system_seconds_per_run": system,
        "peak_rss_mib": rss_mib,
        "budget_seconds": BUDGET.as_secs_f64(),
        "budget_rss_mib": RSS_BUDGET_MIB,
    });
    let out = target_dir(binary).join("bench");
    std::fs::create_dir_all(&out).unwrap();
    let file = out.join("validate.json");
    std::fs::write(&file, serde_json::to_string_pretty(&report).unwrap() + "\n").unwrap();
    println!("  written to  {}", file.display());
}

/// Resource usage of the children waited for so far (here: only the validate runs): CPU times
/// summed, `ru_maxrss` the largest resident set of any of them.
fn children_usage() -> libc::rusage {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let result = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(result, 0, "getrusage failed");
    usage
}

/// `target/` of this build: the binary lives in `target/<profile>/ocpoll`.
fn target_dir(binary: &Path) -> PathBuf {
    binary
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// A realistic instance, like instances.d/salesloft.json: unique name, 1 to 3 resources, and
/// every third file with warnings (unset `${env:..}` secrets, a dotless fraction format).
fn instance(index: usize) -> String {
    let resources = 1 + index % 3;
    let warned = index.is_multiple_of(3);
    let mut poller = Vec::new();
    for (n, resource) in ["contacts", "accounts", "opportunities"]
        .iter()
        .take(resources)
        .enumerate()
    {
        let format = if warned && n == 0 {
            "yyyy-MM-dd'T'HH:mm:ssSSSSSSXXX"
        } else {
            "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"
        };
        poller.push(format!(
            r#"      "{resource}": {{
        "url": "/hubs/crm/{resource}?where=updated_at>='${{date:yyyy-MM-dd'T'HH:mm:ssXXX}}'",
        "idField": "id",
        "lookbackSeconds": 60,
        "datesConfiguration": {{
          "updatedDateField": "updated_at",
          "updatedDateFormat": "{format}",
          "updatedDateTimezone": "GMT",
          "createdDateField": "created_at",
          "createdDateFormat": "{format}",
          "createdDateTimezone": "GMT"
        }}
      }}"#
        ));
    }
    let secret = |name: &str, literal: &str| {
        if warned {
            format!("${{env:BENCH_{name}_{index}}}")
        } else {
            format!("{literal}-{index:05}-c0ffee")
        }
    };
    format!(
        r#"{{
  "element": {{ "key": "salesloft" }},
  "name": "salesloft-{index:05}",
  "tags": ["crm", "bench"],
  "configuration": {{
    "base.url": "https://api.openconnectors.us2.ext.hana.ondemand.com/elements/api-v2",
    "elements.user.secret": "{user}",
    "elements.organization.secret": "{organization}",
    "elements.instance.token": "{token}",
    "filter.response.nulls": "true",
    "event.vendor.type": "polling",
    "event.notification.enabled": true,
    "event.notification.callback.url": "https://hooks.example.com/ocpoll/{index}",
    "event.notification.signature.key": "{signature}",
    "event.notification.batch.size": "10",
    "event.poller.refresh_interval": "15",
    "event.poller.configuration": {{
{poller}
    }}
  }}
}}
"#,
        user = secret("USER", "user"),
        organization = secret("ORG", "organization"),
        token = secret("TOKEN", "token"),
        signature = secret("SIGNATURE", "signature"),
        poller = poller.join(",\n"),
    )
}
