//! `ocpoll status`: every instance and resource with its last poll, watermark, next due time,
//! outbox depth and last error. Reads the state beside a running daemon (no lock); never
//! prints a secret (the state holds none but OAuth tokens, which are not read here).

use crate::cli::StatusArgs;
use crate::commands::{exit, write_table};
use crate::config::Config;
use crate::instance::{self, UnresolvedSecrets};
use crate::state::{OutboxDepth, ResourceKey, ResourceState, StateError, Store, TokenOverview};
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

#[derive(Debug, Serialize)]
pub struct Receipts {
    pub accepted: u64,
    pub duplicates: u64,
    /// Whether `ocpoll webhooks url` has made the instance's URL yet.
    pub has_url: bool,
}

pub fn run(args: &StatusArgs, config: &Config) -> ExitCode {
    let store = match config.open_store(super::Access::Existing) {
        Ok(store) => Some(store),
        Err(StateError::Missing { .. }) => None,
        Err(error) => {
            eprintln!("ocpoll: {error}");
            return ExitCode::from(super::state_exit_code(&error));
        }
    };
    let configured = Configured::read(config);
    let lines = match collect(&configured, store.as_ref()) {
        Ok(lines) => lines,
        Err(error) => {
            eprintln!("ocpoll: {error}");
            return ExitCode::from(super::state_exit_code(&error));
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
                config.state_location().display()
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
                kind: "poll",
                last_receipt_at: None,
                receipts: None,
                previous_token_until: None,
                instance: key.instance,
            }
        })
        .collect();
    let webhooks = match store {
        Some(store) => store.webhook_statuses()?,
        None => Vec::new(),
    };
    lines.extend(webhook_lines(configured, webhooks, &depth));
    // Instances with notifications but no resource rows (all forgotten but the outbox).
    for (instance, outbox) in depth {
        if !lines.iter().any(|line| line.instance == instance) {
            lines.push(StatusLine {
                oauth: oauth.get(&instance).cloned(),
                ..StatusLine::without_poll(configured, instance, "-", "poll", &outbox)
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
                last_receipt_at: row.as_ref().and_then(|row| row.last_receipt_at),
                receipts: Some(Receipts {
                    accepted: row.as_ref().map_or(0, |row| row.accepted),
                    duplicates: row.as_ref().map_or(0, |row| row.duplicates),
                    has_url: row.as_ref().is_some_and(|row| row.has_token),
                }),
                previous_token_until: row
                    .and_then(|row| row.previous_token_until)
                    .filter(|until| *until > now),
                ..StatusLine::without_poll(
                    configured,
                    instance,
                    WEBHOOKS_RESOURCE,
                    "webhooks",
                    &outbox,
                )
            }
        })
        .collect()
}

impl StatusLine {
    /// A line of an instance without a polled resource (a webhooks instance, or one the state
    /// knows only by its outbox): its outbox counts and nothing else.
    fn without_poll(
        configured: &Configured,
        instance: String,
        resource: &str,
        kind: &'static str,
        outbox: &OutboxDepth,
    ) -> StatusLine {
        StatusLine {
            orphaned: !configured.instances.contains(&instance),
            instance,
            resource: resource.to_owned(),
            path_params: String::new(),
            last_poll_at: None,
            last_result: None,
            watermark: None,
            next_due_at: None,
            outbox_pending: outbox.pending,
            outbox_dead: outbox.dead,
            last_error: None,
            kind,
            last_receipt_at: None,
            receipts: None,
            previous_token_until: None,
            oauth: None,
        }
    }
}

/// The resource column of a webhooks instance's line.
const WEBHOOKS_RESOURCE: &str = "(webhooks)";

/// What the instance files say: every instance that has a file (polled or not, valid or not:
/// only a missing file makes state orphaned), every resource they poll, and the webhooks
/// instances.
struct Configured {
    instances: BTreeSet<String>,
    polled: Vec<ResourceKey>,
    /// The instances folder exists (a folder that does not is not an error for `status`).
    folder_exists: bool,
    webhooks: BTreeSet<String>,
}

impl Configured {
    fn read(config: &Config) -> Configured {
        let mut configured = Configured {
            instances: BTreeSet::new(),
            polled: Vec::new(),
            folder_exists: config.instances.is_dir(),
            webhooks: BTreeSet::new(),
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
            if let Some(instance) = file.instance.as_ref().filter(|i| i.receives_webhooks()) {
                configured.webhooks.insert(instance.name.clone());
            }
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

/// Why the table shows no configured resource, when it shows none (issue 14): the instances
/// folder is missing or has no instance files, or none of them polls; and how many of the
/// state's resources belong to instances whose files are gone.
fn why_so_few(configured: &Configured, lines: &[StatusLine], config: &Config) -> Option<String> {
    if !configured.polled.is_empty() || !configured.webhooks.is_empty() {
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
            config.state_location().display(),
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
