//! A running `ocpoll run --foreground` for end-to-end tests: the child process and the file its
//! JSON log goes to, signals, bounded waits that show the log when they fail, and a kill when
//! the test ends, whether it passed or panicked.

use super::{Dir, LAYOUT_ENV};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The most any wait on the daemon may take before the test fails. A bound, so that a stuck
/// daemon fails the test; never a claim about how fast anything should be.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// `ocpoll ARGS...` in `dir` with the layout's config, instances and state ([`LAYOUT_ENV`]), with
/// the clean environment of [`Dir::command`], no stdin and no stdout: a child that runs while the
/// test goes on.
pub fn layout_command(dir: &Dir, args: &[&str]) -> Command {
    let mut command = dir.std_command();
    command
        .envs(LAYOUT_ENV)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `ocpoll run --foreground --log-format json ARGS...` in `dir`'s layout with `env`
    /// added, logging to the file `log` in `dir`.
    pub fn start(dir: &Dir, log: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = dir.join(log);
        let mut command = layout_command(dir, &["--log-format", "json", "run", "--foreground"]);
        command
            .args(args)
            .stderr(std::fs::File::create(&log).expect("create the daemon's log"));
        for (name, value) in env {
            command.env(name, value);
        }
        Daemon {
            child: command.spawn().expect("the daemon starts"),
            log,
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with our own child's pid and a valid signal number.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log so far, one JSON object per line.
    pub fn log_lines(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// How many `poll` lines the log has for `instance`.
    pub fn poll_lines(&self, instance: &str) -> usize {
        self.log_lines()
            .iter()
            .filter(|line| line["message"] == "poll" && line["instance"] == instance)
            .count()
    }

    /// Waits for the exit (up to [`PATIENCE`]) and returns it with the log; kills the daemon
    /// and fails when it does not come.
    pub fn wait_exit(mut self) -> (ExitStatus, String) {
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the daemon did not exit; its log:\n{}", self.log_text());
    }

    /// SIGTERM, then [`Daemon::wait_exit`].
    pub fn stop(self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `done` holds, up to [`PATIENCE`]; the test fails with `what` and the daemon's log
/// otherwise.
pub async fn wait_until(what: &str, daemon: &Daemon, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < PATIENCE,
            "timed out waiting for {what}; the daemon's log:\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills a process at a random point of its run, for the `kill -9` loops: the delay is drawn
/// below a bound that follows how long the process takes on this machine (shorter after a run
/// that ended first, longer after one that was killed), so most runs die mid-way in debug and
/// release builds, on an idle machine as on a loaded one.
pub struct KillTimer {
    bound_ms: f64,
}

impl KillTimer {
    pub fn new(start_ms: f64) -> KillTimer {
        KillTimer { bound_ms: start_ms }
    }

    /// Waits a random delay, then SIGKILLs `child`; true when it was still running.
    pub async fn kill(&mut self, child: &mut std::process::Child) -> bool {
        let wait = Duration::from_millis(rand::random_range(0..=self.bound_ms as u64));
        tokio::time::sleep(wait).await;
        let running = child.try_wait().unwrap().is_none();
        self.bound_ms = if running {
            (self.bound_ms * 1.1).min(2000.0)
        } else {
            (self.bound_ms * 0.8).max(5.0)
        };
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        running
    }
}

/// Runs `ocpoll tick --all` in `dir`'s layout until a tick leaves nothing pending and nothing
/// dead-lettered (at most five ticks), each exiting 0: what the kill -9 loops do at the end.
pub fn tick_until_drained(dir: &Dir) {
    for _ in 0..5 {
        let output = layout_command(dir, &["tick", "--all"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .output()
            .expect("ocpoll tick runs");
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        if String::from_utf8_lossy(&output.stdout).contains(" 0 pending, 0 dead-lettered.") {
            return;
        }
    }
    panic!("the outbox did not drain in five ticks");
}
