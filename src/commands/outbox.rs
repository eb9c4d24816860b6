//! `ocpoll outbox list|show|retry|drop`: inspect and act on pending and dead-lettered
//! notifications. These work beside a running daemon or tick (short transactions, no poller
//! lock); the delivery worker re-reads the outbox, so a retry or a drop takes effect at its next
//! look. Bodies are the provider's data and are shown; the state holds no signature key, and
//! stored errors hold a status and a body excerpt only, so nothing here can print a secret.

use crate::cli::{OutboxDropArgs, OutboxListArgs, OutboxSelectArgs, OutboxShowArgs};
use crate::commands::exit;
use crate::commands::state::{confirm, with_store};
use crate::commands::write_table;
use crate::config::Config;
use crate::state::{DropTarget, OutboxFilter, OutboxRow, OutboxSelection, RetryTarget, StateError};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use std::io::Write;
use std::process::ExitCode;

/// One row of `outbox list --json`.
#[derive(Debug, Serialize)]
struct ListedNotification<'a> {
    id: &'a str,
    instance: &'a str,
    state: &'static str,
    events: u32,
    bytes: u64,
    created_at: String,
    attempts: u32,
    next_attempt_at: Option<String>,
    last_error: Option<&'a str>,
}

pub fn list(args: &OutboxListArgs, config: &Config) -> ExitCode {
    let filter = OutboxFilter {
        instance: args.instance.clone(),
        selection: if args.dead {
            OutboxSelection::Dead
        } else {
            OutboxSelection::All
        },
        limit: None,
    };
    let rows = match config.open_store(super::Access::Existing) {
        Ok(store) => store.outbox_list(&filter),
        // No state yet: nothing was ever queued.
        Err(StateError::Missing { .. }) => Ok(Vec::new()),
        Err(error) => Err(error),
    };
    let rows = match rows {
        Ok(rows) => rows,
        Err(error) => return state_failure(&error),
    };
    let listed: Vec<ListedNotification> = rows.iter().map(listed).collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = serde_json::to_writer_pretty(&mut out, &listed);
        let _ = writeln!(out);
        return ExitCode::from(exit::SUCCESS);
    }
    let table: Vec<[String; 7]> = listed
        .iter()
        .map(|row| {
            [
                row.id.to_owned(),
                row.instance.to_owned(),
                row.state.to_owned(),
                row.events.to_string(),
                row.attempts.to_string(),
                row.next_attempt_at
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
                row.last_error.unwrap_or("-").to_owned(),
            ]
        })
        .collect();
    let header = [
        "ID",
        "INSTANCE",
        "STATE",
        "EVENTS",
        "ATTEMPTS",
        "NEXT ATTEMPT",
        "LAST ERROR",
    ];
    let _ = write_table(&mut out, &header, &table);
    let dead = rows.iter().filter(|row| row.dead).count();
    let _ = writeln!(
        out,
        "{} notifications: {} pending, {dead} dead-lettered.",
        rows.len(),
        rows.len() - dead
    );
    ExitCode::from(exit::SUCCESS)
}

fn listed(row: &OutboxRow) -> ListedNotification<'_> {
    let time = |t: &chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    ListedNotification {
        id: &row.id,
        instance: &row.instance,
        state: if row.dead { "dead" } else { "pending" },
        events: row.events,
        bytes: row.body_bytes,
        created_at: time(&row.created_at),
        attempts: row.attempts,
        // A dead letter has no next attempt until `outbox retry`.
        next_attempt_at: (!row.dead).then(|| time(&row.next_attempt_at)),
        last_error: row.last_error.as_deref(),
    }
}

pub fn show(args: &OutboxShowArgs, config: &Config) -> ExitCode {
    with_store(config, |store| match store.outbox_body(&args.id)? {
        Some(body) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&body);
            let _ = writeln!(out);
            Ok(ExitCode::from(exit::SUCCESS))
        }
        None => Ok(not_found(&args.id)),
    })
}

pub fn retry(args: &OutboxSelectArgs, config: &Config) -> ExitCode {
    let target = match &args.id {
        Some(id) => RetryTarget::Id(id.clone()),
        None => RetryTarget::AllDead,
    };
    with_store(config, |store| {
        let changed = store.outbox_retry(&target, Utc::now())?;
        if let RetryTarget::Id(id) = &target
            && changed == 0
        {
            return Ok(not_found(id));
        }
        println!(
            "{changed} notification(s) due now; the next `ocpoll tick` (or the daemon) sends them."
        );
        Ok(ExitCode::from(exit::SUCCESS))
    })
}

pub fn drop(args: &OutboxDropArgs, config: &Config) -> ExitCode {
    let (target, what) = match (&args.id, &args.instance) {
        (Some(id), _) => (
            DropTarget::Id(id.clone()),
            format!("delete notification {id} for good"),
        ),
        (None, Some(instance)) => (
            DropTarget::Instance(instance.clone()),
            format!("delete every notification of {instance}, pending and dead, for good"),
        ),
        (None, None) => (
            DropTarget::AllDead,
            "delete every dead-lettered notification for good".to_owned(),
        ),
    };
    if let Err(code) = confirm(&what, args.yes) {
        return code;
    }
    with_store(config, |store| {
        let dropped = store.outbox_drop(&target)?;
        if let DropTarget::Id(id) = &target
            && dropped == 0
        {
            return Ok(not_found(id));
        }
        println!("{dropped} notification(s) deleted.");
        Ok(ExitCode::from(exit::SUCCESS))
    })
}

fn not_found(id: &str) -> ExitCode {
    eprintln!("ocpoll: no notification {id:?} in the outbox (see `ocpoll outbox list`)");
    ExitCode::from(exit::FAILURE)
}

fn state_failure(error: &StateError) -> ExitCode {
    eprintln!("ocpoll: {error}");
    ExitCode::from(super::state_exit_code(error))
}
