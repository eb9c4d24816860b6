//! A small harness for running the real `ocpoll` binary, after ripgrep's `tests/util.rs`.
//!
//! Every [`TestCommand`] runs in a fresh temporary folder with a clean environment: no
//! `OCPOLL_*` variables, and `HOME`/`XDG_*` pointing inside the folder, so neither the
//! developer's real config nor their instances folder can leak into a test.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod daemon;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `ocpoll` binary Cargo built for these tests.
pub const OCPOLL: &str = env!("CARGO_BIN_EXE_ocpoll");

/// The variables naming the folder layout of [`Dir::with_layout`] (and `state.db`). Variables
/// rather than options: each command reads those it has options for (`validate` has no
/// `--state`, `outbox` no `--instances`), so one layout serves every command.
pub const LAYOUT_ENV: [(&str, &str); 3] = [
    ("OCPOLL_CONFIG", "config.toml"),
    ("OCPOLL_INSTANCES", "instances.d"),
    ("OCPOLL_STATE", "state.db"),
];

/// The runtime a test's mock servers serve on while the binary runs as a child process.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A temporary folder to run `ocpoll` in; deleted when dropped.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        let tmp = tempfile::Builder::new()
            .prefix("ocpoll-test-")
            .tempdir()
            .expect("create a temporary folder");
        let dir = Dir { tmp };
        // HOME and the XDG folders exist but are empty: no config file, no instances.d.
        for sub in [
            "home",
            "home/.config",
            "home/.local/state",
            "home/.local/share",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        dir
    }

    /// A folder with `config.toml` holding `config` and an empty `instances.d/`, the layout
    /// [`LAYOUT_ENV`] names.
    pub fn with_layout(config: &str) -> Dir {
        let dir = Dir::new();
        dir.create("config.toml", config);
        dir.create_dir("instances.d");
        dir
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `name` under the folder (relative names only).
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path().join(name)
    }

    /// Writes a file, creating its parent folders.
    pub fn create(&self, name: impl AsRef<Path>, contents: &str) -> PathBuf {
        self.create_bytes(name, contents.as_bytes())
    }

    pub fn create_bytes(&self, name: impl AsRef<Path>, contents: &[u8]) -> PathBuf {
        let path = self.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn create_dir(&self, name: impl AsRef<Path>) -> PathBuf {
        let path = self.join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    /// A command for the real binary, run in this folder with a clean environment.
    pub fn command(&self) -> TestCommand {
        TestCommand {
            cmd: self.std_command(),
        }
    }

    /// The `std::process::Command` behind [`Dir::command`], for a child that runs while the
    /// test goes on.
    pub fn std_command(&self) -> Command {
        let mut cmd = Command::new(OCPOLL);
        let home = self.join("home");
        cmd.current_dir(self.path())
            .env_clear()
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_STATE_HOME", home.join(".local/state"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("LC_ALL", "C");
        // env_clear already removed every OCPOLL_* variable; keep PATH for completeness.
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd
    }

    /// `ocpoll ARGS...` in this folder.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command().args(args).run()
    }
}

pub struct TestCommand {
    cmd: Command,
}

impl TestCommand {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(name, value);
        self
    }

    /// Names the folder layout of [`Dir::with_layout`] ([`LAYOUT_ENV`]).
    pub fn layout(mut self) -> Self {
        self.cmd.envs(LAYOUT_ENV);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    pub fn run(mut self) -> Run {
        let output = self
            .cmd
            .output()
            .unwrap_or_else(|error| panic!("cannot run {OCPOLL}: {error}"));
        Run {
            description: format!("{:?}", self.cmd),
            output,
        }
    }

    /// [`TestCommand::run`] on a blocking thread, so that the mock servers on this test's
    /// runtime go on serving while the binary runs.
    pub async fn run_async(self) -> Run {
        tokio::task::spawn_blocking(move || self.run())
            .await
            .expect("the binary ran")
    }
}

/// The result of one run of the binary.
pub struct Run {
    description: String,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The exit code; `None` when killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// Everything about the run, for assertion messages.
    pub fn show(&self) -> String {
        format!(
            "command: {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.description,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }

    /// Asserts the exit code, showing the whole run when it differs; never a panic inside.
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(expected),
            "unexpected exit code\n{}",
            self.show()
        );
        self.assert_no_panic()
    }

    pub fn assert_no_panic(&self) -> &Self {
        let stderr = self.stderr();
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "the binary panicked\n{}",
            self.show()
        );
        self
    }

    /// Asserts that stdout contains `needle`.
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout().contains(needle),
            "stdout does not contain {needle:?}\n{}",
            self.show()
        );
        self
    }

    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr().contains(needle),
            "stderr does not contain {needle:?}\n{}",
            self.show()
        );
        self
    }

    /// stdout's lines, without the trailing summary line.
    /// Stdout's lines, without `validate`'s `info` notes (each resource's poll mode, checked
    /// by the tests that are about them).
    pub fn lines(&self) -> Vec<String> {
        self.stdout()
            .lines()
            .filter(|line| !line.contains(": info: "))
            .map(str::to_owned)
            .collect()
    }

    /// The last line of stdout: `N files: A valid, B invalid; E errors, W warnings`.
    pub fn summary(&self) -> String {
        self.lines().last().cloned().unwrap_or_default()
    }

    /// stdout parsed as `validate --format json` output.
    pub fn findings(&self) -> Vec<Finding> {
        self.json_rows()
            .into_iter()
            .filter(|finding| finding.severity != "info")
            .collect()
    }

    /// The `info` rows of `validate --format json`: which mode each resource is polled in.
    pub fn notes(&self) -> Vec<Finding> {
        self.json_rows()
            .into_iter()
            .filter(|finding| finding.severity == "info")
            .collect()
    }

    /// Every row of `validate --format json`.
    fn json_rows(&self) -> Vec<Finding> {
        let value: serde_json::Value = serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON: {error}\n{}", self.show()));
        let items = value
            .as_array()
            .unwrap_or_else(|| panic!("stdout is not a JSON array\n{}", self.show()));
        items.iter().map(Finding::from_json).collect()
    }
}

/// One row of `validate --format json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    pub path: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub severity: String,
    pub message: String,
}

impl Finding {
    fn from_json(value: &serde_json::Value) -> Finding {
        let object = value
            .as_object()
            .unwrap_or_else(|| panic!("a finding is not an object: {value}"));
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["column", "file", "line", "message", "path", "severity"],
            "{value}"
        );
        let text = |key: &str| {
            object[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} is not a string: {value}"))
                .to_owned()
        };
        let number = |key: &str| match &object[key] {
            serde_json::Value::Null => None,
            other => Some(
                other
                    .as_u64()
                    .unwrap_or_else(|| panic!("{key} is not a number or null: {value}")),
            ),
        };
        Finding {
            file: text("file"),
            path: text("path"),
            line: number("line"),
            column: number("column"),
            severity: text("severity"),
            message: text("message"),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == "error"
    }
}

/// The line (1-based) and column (1-based, in characters) where `needle` first starts in `text`.
pub fn position_of(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} is not in the text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Whether this process runs as root, where permission tests mean nothing.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
