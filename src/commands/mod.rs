//! One module per subcommand, each thin: it loads what it needs, calls the library, prints,
//! and returns the exit code.

pub mod auth;
pub mod demo;
pub mod outbox;
pub mod run;
pub mod state;
pub mod status;
pub mod tick;
pub mod try_resource;
pub mod validate;
pub mod webhooks;

pub use crate::config::Access;
use crate::state::{LockError, StateLocation, StateLock, Store};
use std::io::Write;
use std::process::ExitCode;

/// Exit codes (docs/operations.md#exit-codes).
pub mod exit {
    pub const SUCCESS: u8 = 0;
    /// Some instance invalid, or some poll or delivery failed (the rest still ran).
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    /// The state is locked by another ocpoll process.
    pub const LOCKED: u8 = 75;
    /// The configuration is unusable.
    pub const CONFIG: u8 = 78;
    /// `run` stopped at once by a second SIGTERM or SIGINT (128 + SIGINT, as shells report).
    pub const INTERRUPTED: u8 = 130;

    /// Every code ocpoll exits with and what it means: the man page's EXIT STATUS.
    pub const MEANINGS: &[(u8, &str)] = &[
        (
            SUCCESS,
            "Success (warnings allowed; a tick that leaves notifications pending).",
        ),
        (
            FAILURE,
            "Some instance file is invalid, or some poll or delivery failed or was dead-lettered \
             (the rest still ran); try: a request or a record failed.",
        ),
        (USAGE, "Usage error: an unknown option or a bad value."),
        (
            LOCKED,
            "The state is locked by another ocpoll process (tick and run; --wait waits instead).",
        ),
        (
            CONFIG,
            "The configuration is unusable: the config file, the instances folder, the state \
             file or the state database (its URL, or a schema to migrate) cannot be read or used.",
        ),
        (
            INTERRUPTED,
            "run was stopped at once by a second SIGTERM or SIGINT during its graceful stop.",
        ),
    ];
}

/// A plain left-aligned table; the last column is not padded.
pub fn write_table<const N: usize>(
    out: &mut impl Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[index]));
            }
        }
        text
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// Why a command cannot go on: the message printed once for the user, and the exit code.
pub struct CommandError {
    pub code: u8,
    pub message: String,
}

impl CommandError {
    fn new(code: u8, message: impl Into<String>) -> CommandError {
        CommandError {
            code,
            message: message.into(),
        }
    }

    /// Prints the message on stderr (commands that do not log) and gives the exit code.
    pub fn print(self) -> ExitCode {
        eprintln!("ocpoll: {}", self.message);
        ExitCode::from(self.code)
    }

    /// Logs the message (the daemon, whose stderr is its log) and gives the exit code.
    pub fn log(self) -> ExitCode {
        tracing::error!("{}", self.message);
        ExitCode::from(self.code)
    }
}

/// The poller lock that `tick` and `run` take (docs/design.md#state; the demo keeps a private
/// state of its own): exit 75 when
/// another ocpoll holds it and `wait` is off.
/// The configuration cannot be loaded: says why once, in the log format the command line or
/// `OCPOLL_LOG_FORMAT` asked for (config.toml's own `[log]` may be what failed), and exits 78.
pub fn config_unusable(
    log_format: Option<crate::cli::LogFormat>,
    error: &crate::config::ConfigError,
) -> ExitCode {
    let format = crate::daemon::logging::requested_format(
        log_format,
        std::env::var("OCPOLL_LOG_FORMAT").ok().as_deref(),
    );
    let line =
        crate::daemon::logging::early_error_line(format, &error.to_string(), chrono::Utc::now());
    eprintln!("{line}");
    ExitCode::from(exit::CONFIG)
}

/// The poller lock beside a SQLite state file; `None` for a database, where several daemons
/// share the work through leases instead.
pub fn take_lock(
    config: &crate::config::Config,
    wait: bool,
) -> Result<Option<StateLock>, CommandError> {
    match config.state_location() {
        StateLocation::File(path) => StateLock::acquire(&path, wait)
            .map(Some)
            .map_err(lock_failure),
        StateLocation::Postgres(_) => Ok(None),
    }
}

fn lock_failure(error: LockError) -> CommandError {
    match error {
        LockError::Held { .. } => {
            CommandError::new(exit::LOCKED, format!("{error}; use --wait to wait for it"))
        }
        other => CommandError::new(exit::CONFIG, other.to_string()),
    }
}

/// The state file, with the staging of polls a crash interrupted discarded (they simply run
/// again). An unusable file exits 78 and is never replaced. `lock` (from [`take_lock`]) then
/// also locks the file itself, which this call may just have created (docs/design.md#lock).
pub fn open_state(
    config: &crate::config::Config,
    lock: &mut Option<StateLock>,
    access: Access,
) -> Result<Store, CommandError> {
    let mut store = config.open_store(access).map_err(state_error)?;
    if let Some(lock) = lock {
        lock.hold_state_file().map_err(lock_failure)?;
    }
    store
        .discard_unfinished_polls()
        .map_err(|error| CommandError::new(exit::FAILURE, error.to_string()))?;
    Ok(store)
}

/// The exit code of a state file that cannot be used: 78 (configuration) for a file that is
/// damaged, foreign or from a newer ocpoll, which waiting will not fix; 1 otherwise.
pub fn state_exit_code(error: &crate::state::StateError) -> u8 {
    if error.is_unusable_file() {
        exit::CONFIG
    } else {
        exit::FAILURE
    }
}

/// A state error as a command's error, with [`state_exit_code`].
pub fn state_error(error: crate::state::StateError) -> CommandError {
    CommandError::new(state_exit_code(&error), error.to_string())
}

/// The async runtime of the commands that poll and deliver.
pub fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| CommandError::new(exit::FAILURE, format!("cannot start: {error}")))
}
