//! `ocpoll tick`: poll every due resource once, commit, deliver the due notifications within
//! `--deliver-timeout`, print a summary, exit (for cron). What is not delivered by then stays in
//! the outbox for the next tick.

use crate::cli::TickArgs;
use crate::commands::{exit, open_state, runtime, take_lock};
use crate::config::Config;
use crate::http::{HttpClient, Redirects};
use crate::instance::{self, Instance, LoadedFile, SystemSecrets, UnresolvedSecrets};
use crate::outbox::deliver::{DeliverError, Delivery, DeliverySummary, Recipient, deliver_due};
use crate::poll::{self, PollContext, PollReport, PollTarget, StateTokens};
use crate::state::Store;
use chrono::{SecondsFormat, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

/// The interval assumed for an instance without one (validate reports it missing when events
/// are enabled, so this only covers odd cases).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);

pub fn run(args: &TickArgs, config: &Config) -> ExitCode {
    let Some(loaded) = load_instances(config) else {
        return ExitCode::from(exit::CONFIG);
    };
    let invalid = report_invalid(&loaded);
    let invalid_names = invalid_instance_names(&loaded);
    let mut instances: Vec<Arc<Instance>> = loaded
        .into_iter()
        .filter_map(|file| file.instance)
        .filter(|instance| args.instances.is_empty() || args.instances.contains(&instance.name))
        .map(Arc::new)
        .collect();
    // The collect reuses the loaded files' buffer (744 bytes a file) for 8-byte pointers.
    instances.shrink_to_fit();
    let unknown = unknown_names(&args.instances, &instances);
    let (_lock, store, runtime) = match take_lock(config, args.wait)
        .and_then(|lock| Ok((lock, open_state(config)?, runtime()?)))
    {
        Ok(ready) => ready,
        Err(stop) => return stop.print(),
    };
    let store = Arc::new(Mutex::new(store));
    let deliver = DeliverRun {
        args,
        config,
        instances: instances
            .iter()
            .map(|instance| (instance.name.as_str(), instance))
            .collect(),
        invalid_names: &invalid_names,
    };
    // Delivery starts with the first commit rather than after the last poll: the two overlap,
    // as in the daemon.
    let polling = Polling::default();
    let (polled, delivered) = runtime.block_on(async {
        let polls = async {
            let results = poll_all(config, args, Arc::clone(&store), &instances, &polling).await;
            polling.finished();
            results
        };
        tokio::join!(polls, deliver.run(Arc::clone(&store), &polling))
    });
    let results = match polled {
        Ok(results) => results,
        Err(message) => {
            eprintln!("ocpoll: {message}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let failed = results.iter().any(|(_, report)| report.error.is_some());
    print_summary(&results, &config.state);
    let dead_lettered = match delivered {
        Ok(summary) => {
            print_delivery_summary(&summary);
            summary.dead_lettered > 0
        }
        Err(error) => {
            eprintln!("ocpoll: delivery: {error}");
            true
        }
    };
    if failed || invalid > 0 || unknown > 0 || dead_lettered {
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

/// Runs every due poll, bounded globally and per provider host, and returns the reports in a
/// stable order.
async fn poll_all(
    config: &Config,
    args: &TickArgs,
    store: Arc<Mutex<Store>>,
    instances: &[Arc<Instance>],
    polling: &Polling,
) -> Result<Vec<(PollTarget, PollReport)>, String> {
    let client = HttpClient::with_egress(Redirects::Follow, config.http.egress())
        .map_err(|error| error.to_string())?;
    let ctx = Arc::new(PollContext {
        client,
        tokens: Arc::new(StateTokens(Arc::clone(&store))),
        store: Arc::clone(&store),
        retry: config.retry_policy(),
        limits: config.record_limits(),
    });
    let due = due_targets(&store, instances, args.all)?;
    let progress = Progress::new(due.len());
    let global = Arc::new(Semaphore::new(config.poll.max_in_flight.max(1) as usize));
    let mut per_host: HashMap<String, Arc<Semaphore>> = HashMap::new();
    // Finished polls are collected as they end: a finished task that nobody has joined keeps
    // its whole future's allocation (3.5 KiB), 35 MiB over 10,000 polls.
    let mut tasks = JoinSet::new();
    let mut results = Vec::with_capacity(due.len());
    for (index, target) in due.into_iter().enumerate() {
        let host = per_host
            .entry(poll::provider_host(&target))
            .or_insert_with(|| Arc::new(Semaphore::new(config.poll.per_host.max(1) as usize)))
            .clone();
        // A poll is spawned only when a slot is free: 10,000 waiting tasks would hold their
        // futures in memory for nothing. Semaphores are never closed: acquiring cannot fail.
        let global = Arc::clone(&global).acquire_owned().await.ok();
        while let Some(finished) = tasks.try_join_next() {
            results.push(finished.map_err(|error| format!("a poll stopped: {error}"))?);
        }
        let (ctx, bar) = (Arc::clone(&ctx), progress.bar(&target));
        let committed = Arc::clone(&polling.committed);
        tasks.spawn(async move {
            let _global = global;
            let _host = host.acquire_owned().await.ok();
            let interval = target.instance.refresh_interval.unwrap_or(DEFAULT_INTERVAL);
            let update = |pages: u64, records: u64| {
                if let Some(bar) = &bar {
                    bar.set_message(format!("{pages} pages, {records} records"));
                }
            };
            let report = poll::run(&ctx, &target, interval, &update).await;
            committed.notify_one();
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            (index, target, report)
        });
    }
    while let Some(finished) = tasks.join_next().await {
        results.push(finished.map_err(|error| format!("a poll stopped: {error}"))?);
    }
    progress.clear();
    // The summary lists polls in the order they were due, not the order they ended.
    results.sort_unstable_by_key(|(index, _, _)| *index);
    let results = results
        .into_iter()
        .map(|(_, target, report)| (target, report))
        .collect();
    // The polls committed without waiting for the disk: each delivery pass syncs before it sends.
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

    /// A bar on a terminal; none otherwise (even hidden ones cost memory per poll).
    fn bar(&self, target: &PollTarget) -> Option<ProgressBar> {
        let bars = self.bars.as_ref()?;
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
        Some(bar)
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

// -------------------------------------------------------------------------------------------
// Delivery beside polling
// -------------------------------------------------------------------------------------------

/// What delivery needs to know of the polls running beside it.
#[derive(Default)]
struct Polling {
    /// Woken when a poll ends (committed or failed) and when the last one has ended.
    committed: Arc<Notify>,
    finished: AtomicBool,
}

impl Polling {
    fn finished(&self) {
        self.finished.store(true, Ordering::SeqCst);
        self.committed.notify_one();
    }

    fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

/// What the delivery part of a tick needs to know about this run.
struct DeliverRun<'a> {
    args: &'a TickArgs,
    config: &'a Config,
    /// By name: delivery asks once per notification, and a tick may have 10,000 instances.
    instances: HashMap<&'a str, &'a Arc<Instance>>,
    /// Names of instance files that failed to load, with their path.
    invalid_names: &'a HashMap<String, std::path::PathBuf>,
}

impl DeliverRun<'_> {
    /// Delivery passes while the polls run, each woken by a poll's end, then one last pass
    /// after the last poll, which gets the whole `--deliver-timeout`.
    async fn run(
        &self,
        store: Arc<Mutex<Store>>,
        polling: &Polling,
    ) -> Result<DeliverySummary, DeliverError> {
        let delivery = Arc::new(Delivery::with_egress(
            store,
            self.config.delivery_policy(),
            self.config.http.egress(),
        )?);
        let mut total = DeliverySummary::default();
        loop {
            let last = polling.is_finished();
            let deadline = tokio::time::Instant::now() + self.args.deliver_timeout;
            let pass = deliver_due(&delivery, |name| self.recipient(name), deadline).await?;
            total.absorb(pass);
            if last {
                return Ok(total);
            }
            polling.committed.notified().await;
        }
    }

    /// Where `name`'s notifications go in this tick; `None` when `--instance` left it out.
    fn recipient(&self, name: &str) -> Option<Recipient> {
        if !self.args.instances.is_empty() && !self.args.instances.iter().any(|n| n == name) {
            return None;
        }
        if let Some(instance) = self.instances.get(name) {
            return Some(match instance.callback_url {
                Some(_) => Recipient::Ready(Arc::clone(instance)),
                None => Recipient::Held("no event.notification.callback.url".to_owned()),
            });
        }
        Some(Recipient::Held(match self.invalid_names.get(name) {
            Some(path) => format!(
                "{} is invalid (see the errors above); its notifications wait",
                path.display()
            ),
            None => format!(
                "no instance file is named {name:?} (orphaned); `ocpoll outbox drop --instance \
                 {name}` removes its notifications"
            ),
        }))
    }
}

/// Names of instance files with errors: the decoded name, else the file's `name` member, else
/// its stem (SPEC 1's rule, good enough to tell "invalid" from "missing" in the summary).
fn invalid_instance_names(loaded: &[LoadedFile]) -> HashMap<String, std::path::PathBuf> {
    loaded
        .iter()
        .filter(|file| file.has_errors() && file.is_file)
        .filter_map(|file| {
            Some((
                file.name.clone().or_else(|| name_in_file(&file.path))?,
                file.path.clone(),
            ))
        })
        .collect()
}

fn name_in_file(path: &std::path::Path) -> Option<String> {
    let named = std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|value| value.get("name")?.as_str().map(str::to_owned))
        .filter(|name| !name.starts_with('<'));
    named.or_else(|| Some(path.file_stem()?.to_string_lossy().into_owned()))
}

fn print_delivery_summary(summary: &DeliverySummary) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Delivery: {} delivered, {} pending, {} dead-lettered.",
        summary.delivered, summary.pending, summary.dead_lettered
    );
    for (instance, reason) in &summary.held {
        let _ = writeln!(out, "Not delivered to {instance}: {reason}");
    }
    if summary.dead_lettered > 0 {
        let _ = writeln!(
            out,
            "See `ocpoll outbox list --dead` for the reasons; `ocpoll outbox retry` sends them again."
        );
    }
}
