//! `ocpoll status`: every instance and resource with its last poll, watermark, next due time,
//! outbox depth and last error. Reads the state beside a running daemon (no lock); never
//! prints a secret (the state holds none but OAuth tokens, which are not read here).

use crate::cli::StatusArgs;
use crate::commands::{exit, write_table};
use crate::config::Config;
use crate::instance::{self, Instance, UnresolvedSecrets};
use crate::state::{OutboxDepth, ResourceKey, ResourceState, StateError, Store, TokenOverview};
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
    /// The instance's OAuth standing (docs/operations.md#oauth-tokens), on each of its lines;
    /// absent for instances without stored OAuth state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthStatus>,
}

/// Whether an instance has a token, when it expires, the last token request's result, and
/// a revocation. Never a token.
#[derive(Clone, Debug, Serialize)]
pub struct OAuthStatus {
    pub has_token: bool,
    pub has_refresh_token: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_token_at: Option<DateTime<Utc>>,
    pub last_token_result: Option<String>,
    /// The provider answered `invalid_grant`: polls are stopped until `ocpoll auth`.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<TokenOverview> for OAuthStatus {
    fn from(row: TokenOverview) -> OAuthStatus {
        OAuthStatus {
            has_token: row.has_token,
            has_refresh_token: row.has_refresh_token,
            expires_at: row.expires_at,
            last_token_at: row.grant.last_token_at,
            last_token_result: row.grant.last_token_result,
            revoked_at: row.grant.revoked_at,
        }
    }
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
    let configured = Configured::read(config);
    let lines = match collect(&configured, store.as_ref()) {
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
        if let Some(note) = why_so_few(&configured, &lines, config) {
            println!("{note}");
        }
    }
    ExitCode::from(exit::SUCCESS)
}

/// Configured resources (from the instance files) joined with what the state remembers.
fn collect(configured: &Configured, store: Option<&Store>) -> Result<Vec<StatusLine>, StateError> {
    let mut rows: BTreeMap<ResourceKey, ResourceState> = BTreeMap::new();
    let mut depth: HashMap<String, OutboxDepth> = HashMap::new();
    let mut oauth: HashMap<String, OAuthStatus> = HashMap::new();
    if let Some(store) = store {
        for row in store.statuses()? {
            rows.insert(row.key, row.state);
        }
        depth = store.outbox_depth()?;
        oauth = store
            .oauth_overview()?
            .into_iter()
            .map(|row| (row.instance.clone(), row.into()))
            .collect();
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
                resource: key.resource,
                path_params: key.path_params,
                last_poll_at: state.last_poll_at,
                last_result: state.last_result.map(|r| format!("{r:?}").to_lowercase()),
                watermark: state.watermark,
                next_due_at: state.next_due_at,
                outbox_pending: outbox.pending,
                outbox_dead: outbox.dead,
                last_error: state.last_error,
                oauth: oauth.get(&key.instance).cloned(),
                instance: key.instance,
            }
        })
        .collect();
    // Instances with notifications but no resource rows (all forgotten but the outbox).
    for (instance, outbox) in depth {
        if !lines.iter().any(|line| line.instance == instance) {
            lines.push(StatusLine {
                orphaned: !configured.instances.contains(&instance),
                oauth: oauth.get(&instance).cloned(),
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
    /// The instances folder exists (a folder that does not is not an error for `status`).
    folder_exists: bool,
}

impl Configured {
    fn read(config: &Config) -> Configured {
        let mut configured = Configured {
            instances: BTreeSet::new(),
            polled: Vec::new(),
            folder_exists: config.instances.is_dir(),
        };
        if !configured.folder_exists {
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

/// Why the table shows no configured resource, when it shows none (issue 14): the instances
/// folder is missing or has no instance files, or none of them polls; and how many of the
/// state's resources belong to instances whose files are gone.
fn why_so_few(configured: &Configured, lines: &[StatusLine], config: &Config) -> Option<String> {
    if !configured.polled.is_empty() {
        return None;
    }
    let folder = config.instances.display();
    let mut note = if !configured.folder_exists {
        format!(
            "The instances folder {folder} does not exist (set --instances, OCPOLL_INSTANCES or \
             `instances` in config.toml)."
        )
    } else if configured.instances.is_empty() {
        format!("No instance files (*.json) in {folder}.")
    } else {
        format!(
            "{} in {folder}, none polled (event.notification.enabled false, no resources, or \
             invalid: see `ocpoll validate`).",
            plural(configured.instances.len(), "instance file")
        )
    };
    let orphaned: BTreeSet<&str> = lines
        .iter()
        .filter(|line| line.orphaned)
        .map(|line| line.instance.as_str())
        .collect();
    let resources = lines
        .iter()
        .filter(|line| line.orphaned && line.resource != "-")
        .count();
    if !orphaned.is_empty() {
        note.push_str(&format!(
            " The state file {} has {} of {} no longer present (orphaned); `ocpoll state forget \
             INSTANCE` removes one's state.",
            config.state.display(),
            plural(resources, "resource"),
            plural(orphaned.len(), "instance"),
        ));
    }
    Some(note)
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
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
    print_oauth(lines);
}

/// A second table, one row per instance with OAuth state: token, expiry, last request.
fn print_oauth(lines: &[StatusLine]) {
    let mut seen = BTreeSet::new();
    let rows: Vec<[String; 4]> = lines
        .iter()
        .filter_map(|line| Some((line.instance.as_str(), line.oauth.as_ref()?)))
        .filter(|(instance, _)| seen.insert(*instance))
        .map(|(instance, oauth)| {
            let token = match (oauth.revoked_at, oauth.has_token) {
                (Some(_), _) => format!("REVOKED: run `ocpoll auth {instance}`"),
                (None, true) if oauth.has_refresh_token => "yes (refreshable)".to_owned(),
                (None, true) => "yes".to_owned(),
                (None, false) => format!("none: run `ocpoll auth {instance}`"),
            };
            let time = |t: Option<DateTime<Utc>>| {
                t.map_or_else(
                    || "-".to_owned(),
                    |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
                )
            };
            let last = match (&oauth.last_token_result, oauth.last_token_at) {
                (Some(result), at) => format!("{} {result}", time(at)),
                (None, _) => "-".to_owned(),
            };
            [instance.to_owned(), token, time(oauth.expires_at), last]
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    println!();
    let header = ["INSTANCE", "OAUTH TOKEN", "EXPIRES", "LAST TOKEN REQUEST"];
    let _ = write_table(&mut std::io::stdout().lock(), &header, &rows);
}
