//! `ocpoll status`: every instance and resource with its last poll, watermark, next due time,
//! outbox depth and last error. Reads the state beside a running daemon (no lock); never
//! prints a secret (the state holds none but OAuth tokens, which are not read here).

use crate::cli::StatusArgs;
use crate::commands::{exit, write_table};
use crate::config::Config;
use crate::instance::{self, UnresolvedSecrets};
use crate::state::{OutboxDepth, ResourceKey, ResourceState, StateError, Store};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;

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
            }
        })
        .collect();
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
            });
        }
    }
    Ok(lines)
}

/// What the instance files say: every instance that has a file (polled or not, valid or not:
/// only a missing file makes state orphaned), and every resource they poll.
struct Configured {
    instances: BTreeSet<String>,
    polled: Vec<ResourceKey>,
}

impl Configured {
    fn read(config: &Config) -> Configured {
        let mut configured = Configured {
            instances: BTreeSet::new(),
            polled: Vec::new(),
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
            let Some(instance) = file.instance.filter(|instance| instance.is_polled()) else {
                continue;
            };
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
