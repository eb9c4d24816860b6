//! `ocpoll tick`: poll every due resource once, commit, print a summary, exit (for cron).
//!
//! Delivery of the outbox arrives with the next release; until then the notifications wait in
//! the outbox and the summary says so.

use crate::cli::TickArgs;
use crate::commands::exit;
use crate::config::Config;
use crate::http::{HttpClient, Redirects, RetryPolicy};
use crate::instance::{self, Instance, LoadedFile, SystemSecrets, UnresolvedSecrets};
use crate::poll::{self, PollContext, PollReport, PollTarget, StateTokens};
use crate::state::{LockError, StateLock, Store};
use chrono::{SecondsFormat, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The interval assumed for an instance without one (validate reports it missing when events
/// are enabled, so this only covers odd cases).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);

pub fn run(args: &TickArgs, config: &Config) -> ExitCode {
    let Some(loaded) = load_instances(config) else {
        return ExitCode::from(exit::CONFIG);
    };
    let invalid = report_invalid(&loaded);
    let instances: Vec<Arc<Instance>> = loaded
        .into_iter()
        .filter_map(|file| file.instance)
        .filter(|instance| args.instances.is_empty() || args.instances.contains(&instance.name))
        .map(Arc::new)
        .collect();
    let unknown = unknown_names(&args.instances, &instances);
    let _lock = match StateLock::acquire(&config.state, args.wait) {
        Ok(lock) => lock,
        Err(error @ LockError::Held { .. }) => {
            eprintln!("ocpoll: {error}; use --wait to wait for it");
            return ExitCode::from(exit::LOCKED);
        }
        Err(error) => {
            eprintln!("ocpoll: {error}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let store = match open_store(config) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ocpoll: cannot start: {error}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let results = match runtime.block_on(poll_all(config, args, store, &instances)) {
        Ok(results) => results,
        Err(message) => {
            eprintln!("ocpoll: {message}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let failed = results.iter().any(|(_, report)| report.error.is_some());
    print_summary(&results, &config.state);
    if failed || invalid > 0 || unknown > 0 {
        ExitCode::from(exit::FAILURE)
    } else {
        ExitCode::from(exit::SUCCESS)
    }
}

fn load_instances(config: &Config) -> Option<Vec<LoadedFile>> {
    if !config.instances.is_dir() {
        eprintln!(
            "ocpoll: the instances folder {} does not exist (set --instances, OCPOLL_INSTANCES \
             or `instances` in config.toml)",
            config.instances.display()
        );
        return None;
    }
    let paths = [config.instances.clone()];
    Some(instance::load_all(
        &paths,
        UnresolvedSecrets::Fail,
        &SystemSecrets,
    ))
}

/// Prints the errors of instances that cannot run; returns how many there are. The others
/// still run.
fn report_invalid(loaded: &[LoadedFile]) -> usize {
    let mut invalid = 0;
    for file in loaded.iter().filter(|file| file.has_errors()) {
        invalid += 1;
        for finding in file.findings.iter().filter(|f| f.is_error()) {
            eprintln!("{}", finding.display_for(&file.path));
        }
        eprintln!("{}: skipped: the instance is invalid", file.path.display());
    }
    invalid
}

fn unknown_names(wanted: &[String], instances: &[Arc<Instance>]) -> usize {
    let unknown: Vec<&String> = wanted
        .iter()
        .filter(|name| !instances.iter().any(|instance| &instance.name == *name))
        .collect();
    for name in &unknown {
        eprintln!("ocpoll: no valid instance is named {name:?}");
    }
    unknown.len()
}

/// Opens the state; an unusable file exits 78 and is never replaced.
fn open_store(config: &Config) -> Result<Store, ExitCode> {
    let mut store = Store::open(&config.state, config.synchronous).map_err(|error| {
        eprintln!("ocpoll: {error}");
        ExitCode::from(if error.is_unusable_file() {
            exit::CONFIG
        } else {
            exit::FAILURE
        })
    })?;
    // Staging of polls a crash interrupted: those polls simply run again.
    store.discard_unfinished_polls().map_err(|error| {
        eprintln!("ocpoll: {error}");
        ExitCode::from(exit::FAILURE)
    })?;
    Ok(store)
}

/// Runs every due poll, bounded globally and per provider host, and returns the reports in a
/// stable order.
async fn poll_all(
    config: &Config,
    args: &TickArgs,
    store: Store,
    instances: &[Arc<Instance>],
) -> Result<Vec<(PollTarget, PollReport)>, String> {
    let store = Arc::new(Mutex::new(store));
    let client = HttpClient::new(Redirects::Follow).map_err(|error| error.to_string())?;
    let ctx = Arc::new(PollContext {
        client,
        tokens: Arc::new(StateTokens(Arc::clone(&store))),
        store: Arc::clone(&store),
        retry: RetryPolicy::from(&config.poll),
    });
    let due = due_targets(&store, instances, args.all)?;
    let progress = Progress::new(due.len());
    let global = Arc::new(Semaphore::new(config.poll.max_in_flight.max(1) as usize));
    let mut per_host: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut tasks = Vec::new();
    for target in due {
        let host = per_host
            .entry(provider_host(&target))
            .or_insert_with(|| Arc::new(Semaphore::new(config.poll.per_host.max(1) as usize)))
            .clone();
        let (ctx, global, bar) = (Arc::clone(&ctx), Arc::clone(&global), progress.bar(&target));
        tasks.push(tokio::spawn(async move {
            // Semaphores are never closed, so acquiring cannot fail.
            let _global = global.acquire_owned().await.ok();
            let _host = host.acquire_owned().await.ok();
            let interval = target.instance.refresh_interval.unwrap_or(DEFAULT_INTERVAL);
            let update = |pages: u64, records: u64| {
                bar.set_message(format!("{pages} pages, {records} records"));
            };
            let report = poll::run(&ctx, &target, interval, &update).await;
            bar.finish_and_clear();
            (target, report)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(
            task.await
                .map_err(|error| format!("a poll stopped: {error}"))?,
        );
    }
    progress.clear();
    Ok(results)
}

/// The polled resources that are due (or all with `--all`), in instance file order.
fn due_targets(
    store: &Mutex<Store>,
    instances: &[Arc<Instance>],
    all: bool,
) -> Result<Vec<PollTarget>, String> {
    let now = Utc::now();
    let store = store
        .lock()
        .map_err(|_| "the state is unavailable".to_owned())?;
    let mut due = Vec::new();
    for instance in instances.iter().filter(|instance| instance.is_polled()) {
        for target in poll::targets(instance) {
            let state = store
                .resource_state(&target.key)
                .map_err(|error| error.to_string())?;
            let next_due = state.and_then(|state| state.next_due_at);
            if all || next_due.is_none_or(|next| next <= now) {
                due.push(target);
            }
        }
    }
    Ok(due)
}

/// The host a poll's requests go to, for the per-host limit.
fn provider_host(target: &PollTarget) -> String {
    let raw = target.resource().url.raw();
    url::Url::parse(raw)
        .ok()
        .or_else(|| target.instance.base_url.clone())
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A progress bar per running poll on a terminal; nothing otherwise.
struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    fn new(polls: usize) -> Progress {
        let on_terminal = std::io::stderr().is_terminal() && polls > 0;
        Progress {
            bars: on_terminal
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    fn bar(&self, target: &PollTarget) -> ProgressBar {
        let Some(bars) = &self.bars else {
            return ProgressBar::hidden();
        };
        let bar = bars.add(ProgressBar::new_spinner());
        let style = ProgressStyle::with_template("{spinner} {prefix}: {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(format!(
            "{}/{}",
            target.key.instance,
            resource_label(target)
        ));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    fn clear(&self) {
        if let Some(bars) = &self.bars {
            let _ = bars.clear();
        }
    }
}

fn resource_label(target: &PollTarget) -> String {
    if target.key.path_params.is_empty() {
        target.key.resource.clone()
    } else {
        format!("{} [{}]", target.key.resource, target.key.path_params)
    }
}

fn print_summary(results: &[(PollTarget, PollReport)], state: &std::path::Path) {
    let mut out = std::io::stdout().lock();
    let rows: Vec<[String; 6]> = results
        .iter()
        .map(|(target, report)| {
            [
                target.key.instance.clone(),
                resource_label(target),
                report.records_read.to_string(),
                report.events.to_string(),
                report
                    .watermark
                    .map(|w| w.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                    .unwrap_or_else(|| "-".to_owned()),
                result_text(report),
            ]
        })
        .collect();
    let header = [
        "INSTANCE",
        "RESOURCE",
        "RECORDS",
        "EVENTS",
        "WATERMARK",
        "RESULT",
    ];
    let _ = super::write_table(&mut out, &header, &rows);
    let failed = results.iter().filter(|(_, r)| r.error.is_some()).count();
    let events: u64 = results.iter().map(|(_, r)| r.events).sum();
    let notifications: u64 = results.iter().map(|(_, r)| r.notifications).sum();
    let _ = writeln!(
        out,
        "{} polled, {} failed; {events} events in {notifications} notifications written to the outbox ({}).",
        results.len(),
        failed,
        state.display()
    );
    if notifications > 0 {
        let _ = writeln!(
            out,
            "Delivery is not available yet in this version: the notifications wait in the outbox."
        );
    }
}

fn result_text(report: &PollReport) -> String {
    if let Some(error) = &report.error {
        return format!("failed: {error}");
    }
    let outcome = if report.baseline { "baseline" } else { "ok" };
    if report.problem_count == 0 {
        return outcome.to_owned();
    }
    // "problems", as `status` calls a poll that committed but skipped records.
    let first = report.problems.first().map(String::as_str).unwrap_or("");
    format!(
        "problems ({outcome}): {} unreadable records, first: {first}",
        report.problem_count
    )
}
