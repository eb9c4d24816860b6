//! `ocpoll state reset|forget`: rewind or set a watermark (backfill), or delete an instance's
//! state. Both ask first unless `--yes`; both work beside a running daemon (short
//! transactions), and the daemon re-reads watermarks at each poll.

use crate::cli::{StateForgetArgs, StateResetArgs};
use crate::commands::exit;
use crate::config::Config;
use crate::state::{StateError, Store};
use chrono::{DateTime, Utc};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

pub fn reset(args: &StateResetArgs, config: &Config) -> ExitCode {
    // Resource keys may contain '/', instance names may not: split at the first one.
    let (instance, resource) = match args.target.split_once('/') {
        Some((instance, resource)) => (instance, Some(resource)),
        None => (args.target.as_str(), None),
    };
    let to = match args.to.as_deref().map(parse_time).transpose() {
        Ok(to) => to,
        Err(message) => {
            eprintln!("ocpoll: --to {message}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let what = match to {
        Some(to) => format!(
            "set the watermark of {} to {}",
            args.target,
            to.to_rfc3339()
        ),
        None => format!(
            "forget the watermark of {} (its next poll is a new baseline)",
            args.target
        ),
    };
    if let Err(code) = confirm(&what, args.yes) {
        return code;
    }
    with_store(config, |store| {
        let changed = store.reset_watermark(instance, resource, to)?;
        if changed == 0 {
            eprintln!("ocpoll: the state has nothing for {}", args.target);
            return Ok(ExitCode::from(exit::FAILURE));
        }
        println!(
            "Done: {changed} resource(s) changed; it takes effect at their next poll (`ocpoll tick --all` polls now)."
        );
        Ok(ExitCode::from(exit::SUCCESS))
    })
}

pub fn forget(args: &StateForgetArgs, config: &Config) -> ExitCode {
    let what = format!(
        "delete all state of {}, its pending and dead notifications included",
        args.instance
    );
    if let Err(code) = confirm(&what, args.yes) {
        return code;
    }
    with_store(config, |store| {
        store.forget_instance(&args.instance)?;
        println!("Done: {} is forgotten.", args.instance);
        Ok(ExitCode::from(exit::SUCCESS))
    })
}

pub(super) fn with_store(
    config: &Config,
    action: impl FnOnce(&mut Store) -> Result<ExitCode, StateError>,
) -> ExitCode {
    let result = config
        .open_store(super::Access::Existing)
        .and_then(|mut store| action(&mut store));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ocpoll: {error}");
            ExitCode::from(super::state_exit_code(&error))
        }
    }
}

/// RFC 3339 (`2026-11-01T00:00:00Z`) or a bare date (`2026-11-01`, midnight UTC).
fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
        .ok_or_else(|| {
            format!(
                "{text:?} is not a time: use RFC 3339 (2026-11-01T00:00:00Z) or a date (2026-11-01)"
            )
        })
}

/// Asks on the terminal; without one, `--yes` is required (a script must say what it wants).
pub(super) fn confirm(what: &str, yes: bool) -> Result<(), ExitCode> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        eprintln!("ocpoll: about to {what}; pass --yes to confirm without a terminal");
        return Err(ExitCode::from(exit::USAGE));
    }
    eprint!("About to {what}. Continue? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        eprintln!("Nothing changed.");
        Err(ExitCode::from(exit::FAILURE))
    }
}

/// `ocpoll state migrate`: creates or upgrades a PostgreSQL state's schema, under the
/// database's advisory lock (several nodes may run it at once). A SQLite file upgrades itself
/// when it is opened; for one this opens (or creates) it, which does the same.
pub fn migrate(config: &Config) -> ExitCode {
    let location = config.state_location();
    match config.open_store(super::Access::Migrate) {
        Ok(_) => {
            println!("{}: the state's schema is current.", location.display());
            ExitCode::from(exit::SUCCESS)
        }
        Err(error) => {
            eprintln!("ocpoll: {error}");
            ExitCode::from(super::state_exit_code(&error))
        }
    }
}
