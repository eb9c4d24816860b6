//! What the benches share about the ocpoll process they run: a clean environment for the
//! release binary, its memory and CPU read from /proc, and where figures are written.

#![allow(dead_code)] // Each bench uses a different part of it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs in `dir` with nothing from the bench's environment but `PATH`, and with the platform
/// folders (config, state) inside `dir`, so no user file changes a figure.
pub fn isolate(command: &mut Command, dir: &Path) {
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"));
}

/// VmHWM (peak resident set since exec) and VmRSS of a live process, in KiB.
pub fn memory_kib(pid: libc::pid_t) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// CPU seconds (user + system) a live process has used so far, from /proc/PID/stat.
pub fn cpu_seconds(pid: libc::pid_t) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its `)` are plain numbers.
    let after_name = stat.rsplit_once(')')?.1;
    let mut fields = after_name.split_whitespace();
    // utime and stime are fields 14 and 15 of the line, the 12th and 13th after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
}

/// The ocpoll binary a bench measures: `BENCH_BINARY` when set (a copy of an earlier build,
/// to compare two builds in one session, A B A B, on a machine whose load changes), else
/// `built`, this build's release binary. Reports still go to this build's `target/bench/`.
pub fn bench_binary(built: &str) -> PathBuf {
    match std::env::var_os("BENCH_BINARY") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            println!("BENCH_BINARY: measuring {}", path.display());
            path
        }
        _ => PathBuf::from(built),
    }
}

/// `target/` of this build: the binary lives in `target/<profile>/ocpoll`.
pub fn target_dir(binary: &Path) -> PathBuf {
    binary
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Writes `report` to `target/bench/<name>.json` and says where.
pub fn write_report(binary: &Path, name: &str, report: &serde_json::Value) {
    let out = target_dir(binary).join("bench");
    std::fs::create_dir_all(&out).expect("create target/bench");
    let file = out.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(report).expect("a JSON report") + "\n";
    std::fs::write(&file, text).expect("write the report");
    println!("written to {}", file.display());
}

/// The machine's one-minute load average (other builds share the two cores), beside every wall
/// time a bench prints.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// User plus system CPU of this process (the mocks) so far.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let result = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(result, 0, "getrusage failed");
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// A `timeval` in seconds.
pub fn seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// `instant` cut to whole milliseconds, as the mock provider's dates carry it.
pub fn whole_millis(instant: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(instant.timestamp_millis()).unwrap_or(instant)
}
