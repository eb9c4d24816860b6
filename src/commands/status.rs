//! `ocpoll status`: every instance and resource with its last poll, watermark, next due time,
//! outbox depth and last error. Reads the state beside a running daemon (no lock); never
//! prints a secret (the state holds none but OAuth tokens, which are not read here).

use crate::cli::StatusArgs;
use crate::commands::{exit, write_table};
use crate::config::Config;
use crate::instance::{self, Instance, UnresolvedSecrets};
use crate::state::{OutboxDepth, ResourceKey, ResourceState, StateError, Store};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;
use std::sync::Arc;

/// One line of the status: a resource as configured and/or as the state knows it.
#[derive(Debug, Serialize)]
pub struct StatusLine {
    pub instance: String,
    pub resource: String,
    pub path_params: String,
    /// The instance file is gone (or renamed): its state and outbox are kept.
    pub orphaned: bool,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_result: Option<String>,
    pub watermark: Option<DateTime<Utc>>,
    pub next_due_at: Option<DateTime<Utc>>,
    pub outbox_pending: u64,
    pub outbox_dead: u64,
    pub last_error: Option<String>,
    /// `poll` for a polled resource, `webhooks` for a webhooks instance (resource `(webhooks)`).
    pub kind: &'static str,
    /// Webhooks: when the last webhook was received (accepted or a provider's retry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_receipt_at: Option<DateTime<Utc>>,
    /// Webhooks: receipts enqueued and provider retries recognised, since the start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipts: Option<Receipts>,
    /// Webhooks: until when the token replaced by `webhooks url --rotate` still works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_token_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct Receipts {
    pub accepted: u64,
    pub duplicates: u64,
    /// Whether `ocpoll webhooks url` has made the instance's URL yet.
    pub has_url: bool,
}

pub fn run(args: &StatusArgs, config: &Config) -> ExitCode {
    let store = match Store::open_existing(&config.state, config.synchronous) {
        Ok(store) => Some(store),
        Err(StateError::Missing { .. }) => None,
        Err(error) => {
            eprintln!("ocpoll: {error}");
            return ExitCode::from(if error.is_unusable_file() {
                exit::CONFIG
            } else {
                exit::FAILURE
            });
        }
    };
    let lines = match collect(config, store.as_ref()) {
        Ok(lines) => lines,
        Err(error) => {
            eprintln!("ocpoll: {error}");
            return ExitCode::from(if error.is_unusable_file() {
                exit::CONFIG
            } else {
                exit::FAILURE
            });
        }
    };
    if args.json {
        let _ = serde_json::to_writer_pretty(std::io::stdout().lock(), &lines);
        println!();
    } else {
        print_table(&lines);
        if store.is_none() {
            println!(
                "No state yet at {}: nothing has been polled.",
                config.state.display()
            );
        }
    }
    ExitCode::from(exit::SUCCESS)
}

/// Configured resources (from the instance files) joined with what the state remembers.
fn collect(config: &Config, store: Option<&Store>) -> Result<Vec<StatusLine>, StateError> {
    let configured = Configured::read(config);
    let mut rows: BTreeMap<ResourceKey, ResourceState> = BTreeMap::new();
    let mut depth: HashMap<String, OutboxDepth> = HashMap::new();
    if let Some(store) = store {
        for row in store.statuses()? {
            rows.insert(row.key, row.state);
        }
        depth = store.outbox_depth()?;
    }
    for key in &configured.polled {
        rows.entry(key.clone()).or_default();
    }
    let mut lines: Vec<StatusLine> = rows
        .into_iter()
        .map(|(key, state)| {
            let outbox = depth.get(&key.instance).cloned().unwrap_or_default();
            StatusLine {
                orphaned: !configured.instances.contains(&key.instance),
                instance: key.instance,
                resource: key.resource,
                path_params: key.path_params,
                last_poll_at: state.last_poll_at,
                last_result: state.last_result.map(|r| format!("{r:?}").to_lowercase()),
                watermark: state.watermark,
                next_due_at: state.next_due_at,
                outbox_pending: outbox.pending,
                outbox_dead: outbox.dead,
                last_error: state.last_error,
                kind: "poll",
                last_receipt_at: None,
                receipts: None,
                previous_token_until: None,
            }
        })
        .collect();
    let webhooks = match store {
        Some(store) => store.webhook_statuses()?,
        None => Vec::new(),
    };
    lines.extend(webhook_lines(&configured, webhooks, &depth));
    // Instances with notifications but no resource rows (all forgotten but the outbox).
    for (instance, outbox) in depth {
        if !lines.iter().any(|line| line.instance == instance) {
            lines.push(StatusLine {
                orphaned: !configured.instances.contains(&instance),
                instance,
                resource: "-".to_owned(),
                path_params: String::new(),
                last_poll_at: None,
                last_result: None,
                watermark: None,
                next_due_at: None,
                outbox_pending: outbox.pending,
                outbox_dead: outbox.dead,
                last_error: None,
                kind: "poll",
                last_receipt_at: None,
                receipts: None,
                previous_token_until: None,
            });
        }
    }
    Ok(lines)
}

/// One line per webhooks instance, configured or known to the state.
fn webhook_lines(
    configured: &Configured,
    rows: Vec<crate::state::WebhookStatusRow>,
    depth: &HashMap<String, OutboxDepth>,
) -> Vec<StatusLine> {
    let mut by_name: BTreeMap<String, Option<crate::state::WebhookStatusRow>> = configured
        .webhooks
        .iter()
        .map(|name| (name.clone(), None))
        .collect();
    for row in rows {
        by_name.insert(row.instance.clone(), Some(row));
    }
    let now = Utc::now();
    by_name
        .into_iter()
        .map(|(instance, row)| {
            let outbox = depth.get(&instance).cloned().unwrap_or_default();
            StatusLine {
                orphaned: !configured.instances.contains(&instance),
                resource: WEBHOOKS_RESOURCE.to_owned(),
                path_params: String::new(),
                last_poll_at: None,
                last_result: None,
                watermark: None,
                next_due_at: None,
                outbox_pending: outbox.pending,
                outbox_dead: outbox.dead,
                last_error: None,
                kind: "webhooks",
                last_receipt_at: row.as_ref().and_then(|row| row.last_receipt_at),
                receipts: Some(Receipts {
                    accepted: row.as_ref().map_or(0, |row| row.accepted),
                    duplicates: row.as_ref().map_or(0, |row| row.duplicates),
                    has_url: row.as_ref().is_some_and(|row| row.has_token),
                }),
                previous_token_until: row
                    .and_then(|row| row.previous_token_until)
                    .filter(|until| *until > now),
                instance,
            }
        })
        .collect()
}

/// The resource column of a webhooks instance's line.
const WEBHOOKS_RESOURCE: &str = "(webhooks)";

/// What the instance files say: every instance that has a file (polled or not, valid or not:
/// only a missing file makes state orphaned), every resource they poll, and the webhooks
/// instances.
struct Configured {
    instances: BTreeSet<String>,
    polled: Vec<ResourceKey>,
    webhooks: BTreeSet<String>,
}

impl Configured {
    fn read(config: &Config) -> Configured {
        let mut configured = Configured {
            instances: BTreeSet::new(),
            polled: Vec::new(),
            webhooks: BTreeSet::new(),
        };
        if !config.instances.is_dir() {
            return configured;
        }
        let loaded = instance::load_all(
            std::slice::from_ref(&config.instances),
            UnresolvedSecrets::Warn,
            &config.secret_source(),
        );
        for file in loaded.into_iter().filter(|file| file.is_file) {
            // An invalid file has no decoded name; its stem is the best guess.
            let stem = file
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            configured.instances.extend(file.name.clone().or(stem));
            if let Some(instance) = file.instance.as_ref().filter(|i| i.receives_webhooks()) {
                configured.webhooks.insert(instance.name.clone());
            }
            let Some(instance) = file.instance.filter(Instance::is_polled) else {
                continue;
            };
            let instance = Arc::new(instance);
            configured
                .polled
                .extend(crate::poll::targets(&instance).into_iter().map(|t| t.key));
        }
        configured
    }
}

fn print_table(lines: &[StatusLine]) {
    let time = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_else(|| "-".to_owned())
    };
    let rows: Vec<[String; 8]> = lines
        .iter()
        .map(|line| {
            let mut instance = line.instance.clone();
            if line.orphaned {
                instance.push_str(" (orphaned)");
            }
            let mut resource = line.resource.clone();
            if !line.path_params.is_empty() {
                resource.push_str(&format!(" [{}]", line.path_params));
            }
            if let Some(receipts) = &line.receipts {
                return webhook_row(line, instance, receipts, time);
            }
            [
                instance,
                resource,
                time(line.last_poll_at),
                line.last_result
                    .clone()
                    .unwrap_or_else(|| "never polled".to_owned()),
                line.watermark
                    .map(|w| w.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                    .unwrap_or_else(|| "-".to_owned()),
                time(line.next_due_at),
                format!("{} pending, {} dead", line.outbox_pending, line.outbox_dead),
                line.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "INSTANCE",
        "RESOURCE",
        "LAST POLL",
        "RESULT",
        "WATERMARK",
        "NEXT DUE",
        "OUTBOX",
        "LAST ERROR",
    ];
    let _ = write_table(&mut std::io::stdout().lock(), &header, &rows);
}

/// A webhooks instance in the table: its last receipt in the LAST POLL column, its counts as
/// the result, and the previous token's grace as a note.
fn webhook_row(
    line: &StatusLine,
    instance: String,
    receipts: &Receipts,
    time: impl Fn(Option<DateTime<Utc>>) -> String,
) -> [String; 8] {
    let result = match (receipts.has_url, receipts.accepted + receipts.duplicates) {
        (false, 0) => "no URL yet (ocpoll webhooks url)".to_owned(),
        (_, 0) => "nothing received".to_owned(),
        _ => format!(
            "received {} ({} retries)",
            receipts.accepted, receipts.duplicates
        ),
    };
    let note = line
        .previous_token_until
        .map(|until| {
            format!(
                "previous token works until {}",
                until.to_rfc3339_opts(SecondsFormat::Secs, true)
            )
        })
        .unwrap_or_default();
    [
        instance,
        line.resource.clone(),
        time(line.last_receipt_at),
        result,
        "-".to_owned(),
        "-".to_owned(),
        format!("{} pending, {} dead", line.outbox_pending, line.outbox_dead),
        note,
    ]
}
