//! `ocpoll tick`: poll every due resource once, commit, deliver the due notifications within
//! `--deliver-timeout`, print a summary, exit (for cron). What is not delivered by then stays in
//! the outbox for the next tick.

use crate::cli::TickArgs;
use crate::commands::{Access, CommandError, exit, open_state, runtime, take_lock};
use crate::config::Config;
use crate::daemon::logging;
use crate::fleet::Skipped;
use crate::instance::{self, Instance, LoadedFile, UnresolvedSecrets};
use crate::outbox::deliver::{DeliverError, Delivery, DeliverySummary, Recipient};
use crate::poll::{PollReport, PollTarget};
use crate::runner::delivery::{self, PollsEnded, Recipients};
use crate::runner::{PollRunner, PollWatch};
use crate::state::Store;
use chrono::SecondsFormat;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn run(args: &TickArgs, config: &Config, verbose: u8, quiet: u8) -> ExitCode {
    // The same log as the daemon's (docs/operations.md#ocpoll-tick): stderr, `-v`/`-q`,
    // `--log-format`; the summary stays on stdout.
    logging::init(&config.log, verbose, quiet);
    match tick(args, config) {
        Ok(code) => ExitCode::from(code),
        Err(stop) => stop.log(),
    }
}

/// The tick: load, poll, deliver, print the summary; the exit code, or why it could not run.
fn tick(args: &TickArgs, config: &Config) -> Result<u8, CommandError> {
    let loaded = load_instances(config)?;
    let mut why = Failures {
        invalid: report_invalid(&loaded),
        ..Failures::default()
    };
    let no_files = !loaded.iter().any(|file| file.is_file);
    let invalid_names = invalid_instance_names(&loaded);
    // A shared (PostgreSQL) state: this tick claims each poll and delivery like a daemon.
    let fleet = config
        .fleet()
        .map(|fleet| if args.all { fleet.polling_now() } else { fleet })
        .map(Arc::new);
    if let Some(fleet) = &fleet {
        fleet.refresh_versions(loaded.iter().filter_map(|file| {
            let instance = file.instance.as_ref()?;
            Some((instance.name.as_str(), file.path.as_path()))
        }));
    }
    let mut instances: Vec<Arc<Instance>> = loaded
        .into_iter()
        .filter_map(|file| file.instance)
        .filter(|instance| args.instances.is_empty() || args.instances.contains(&instance.name))
        .collect();
    // The collect reuses the loaded files' buffer (about 110 bytes a file) for 8-byte pointers.
    instances.shrink_to_fit();
    why.unknown = unknown_names(&args.instances, &instances);
    // Declared first, so dropped after the store (see state::lock).
    let mut lock = take_lock(config, args.wait)?;
    let mut store = open_state(config, &mut lock, Access::Create)?;
    if let Some(fleet) = &fleet {
        store.set_node(&fleet.node);
    }
    let store = Arc::new(Mutex::new(store));
    let runtime = runtime()?;
    let recipients = TickRecipients {
        wanted: &args.instances,
        instances: instances
            .iter()
            .map(|instance| (instance.name.as_str(), instance))
            .collect(),
        invalid_names: &invalid_names,
    };
    let (results, delivered) = runtime
        .block_on(poll_and_deliver(
            args,
            config,
            store,
            fleet,
            &instances,
            &recipients,
        ))
        .map_err(|message| CommandError::new(exit::CONFIG, message))?;
    why.failed_polls = results
        .iter()
        .filter(|(_, report)| report.error.is_some())
        .count();
    let mut out = std::io::stdout().lock();
    if no_files {
        let _ = writeln!(
            out,
            "No instance files: {} holds no *.json files.",
            config.instances.display()
        );
    }
    print_summary(&mut out, &results, &config.state_location().display());
    if why.invalid > 0 {
        let _ = writeln!(
            out,
            "Skipped: {} (the errors are on stderr).",
            count(
                why.invalid,
                "instance file invalid",
                "instance files invalid"
            )
        );
    }
    match delivered {
        Ok(summary) => {
            print_delivery_summary(&mut out, &summary);
            why.dead_lettered = summary.dead_lettered;
        }
        Err(error) => {
            tracing::error!("delivery: {error}");
            why.delivery = Some(error.to_string());
        }
    }
    Ok(match why.reasons() {
        Some(reasons) => {
            let _ = writeln!(out, "exit 1: {reasons}");
            exit::FAILURE
        }
        None => exit::SUCCESS,
    })
}

/// Why a tick exits 1 (docs/operations.md#ocpoll-tick), for the summary's last line.
#[derive(Default)]
struct Failures {
    /// Instance files (or a folder) that failed to load.
    invalid: usize,
    /// `--instance` names no valid instance has.
    unknown: usize,
    failed_polls: usize,
    dead_lettered: u64,
    /// Delivery stopped (the state failed under it).
    delivery: Option<String>,
}

impl Failures {
    /// "2 instance files invalid, 1 poll failed", or `None` when nothing failed.
    fn reasons(&self) -> Option<String> {
        let mut reasons = Vec::new();
        if self.invalid > 0 {
            reasons.push(count(
                self.invalid,
                "instance file invalid",
                "instance files invalid",
            ));
        }
        if self.unknown > 0 {
            reasons.push(count(
                self.unknown,
                "--instance name unknown",
                "--instance names unknown",
            ));
        }
        if self.failed_polls > 0 {
            reasons.push(count(self.failed_polls, "poll failed", "polls failed"));
        }
        if self.dead_lettered > 0 {
            reasons.push(count(
                usize::try_from(self.dead_lettered).unwrap_or(usize::MAX),
                "notification dead-lettered",
                "notifications dead-lettered",
            ));
        }
        if let Some(error) = &self.delivery {
            reasons.push(format!("delivery stopped: {error}"));
        }
        (!reasons.is_empty()).then(|| reasons.join(", "))
    }
}

/// "1 poll failed", "2 polls failed".
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The tick itself: every due poll once through the runner, with delivery beside it from the
/// first commit on, as in the daemon.
async fn poll_and_deliver(
    args: &TickArgs,
    config: &Config,
    store: Arc<Mutex<Store>>,
    fleet: Option<Arc<crate::fleet::Fleet>>,
    instances: &[Arc<Instance>],
    recipients: &TickRecipients<'_>,
) -> Result<
    (
        Vec<(PollTarget, PollReport)>,
        Result<DeliverySummary, DeliverError>,
    ),
    String,
> {
    let mut runner = PollRunner::new(config, Arc::clone(&store))
        .map_err(|e| e.to_string())?
        .with_fleet(fleet.clone());
    // In a fleet, this tick's leases are renewed while it runs, as a daemon's are.
    let (stop_renewal, renewal_stopped) = tokio::sync::oneshot::channel::<()>();
    let renewal = fleet.clone().map(|fleet| {
        let stopped = async move {
            let _ = renewal_stopped.await;
        };
        tokio::spawn(fleet.renew_until(Arc::clone(&store), stopped))
    });
    let delivery = Delivery::with_egress(store, config.delivery_policy(), config.http.egress())
        .map(|delivery| Arc::new(delivery.with_fleet(fleet)))
        .map_err(|error| error.to_string())?;
    let due = runner
        .due_targets(instances, args.all)
        .map_err(|error| error.to_string())?;
    let committed = runner.committed();
    let ended = PollsEnded::default();
    let progress = Progress::new(due.len());
    let polls = async {
        let results = runner.run_all(due, |target| progress.bar(target)).await;
        progress.clear();
        ended.set(&committed);
        results
    };
    let deliveries = delivery::beside_polls(
        &delivery,
        recipients,
        &committed,
        &ended,
        args.deliver_timeout,
    );
    let results = tokio::join!(polls, deliveries);
    let _ = stop_renewal.send(());
    if let Some(renewal) = renewal {
        let _ = renewal.await;
    }
    Ok(results)
}

fn load_instances(config: &Config) -> Result<Vec<LoadedFile>, CommandError> {
    if !config.instances.is_dir() {
        return Err(CommandError::new(
            exit::CONFIG,
            format!(
                "the instances folder {} does not exist (set --instances, OCPOLL_INSTANCES or \
                 `instances` in config.toml)",
                config.instances.display()
            ),
        ));
    }
    let paths = [config.instances.clone()];
    Ok(instance::load_all(
        &paths,
        UnresolvedSecrets::Fail,
        &config.secret_source(),
    ))
}

/// Logs the errors of instances that cannot run; returns how many there are. The others
/// still run.
fn report_invalid(loaded: &[LoadedFile]) -> usize {
    let mut invalid = 0;
    for file in loaded.iter().filter(|file| file.has_errors()) {
        invalid += 1;
        for finding in file.findings.iter().filter(|f| f.is_error()) {
            tracing::error!("{}", finding.display_for(&file.path));
        }
        tracing::warn!(file = %file.path.display(), "skipped: the instance is invalid");
    }
    invalid
}

fn unknown_names(wanted: &[String], instances: &[Arc<Instance>]) -> usize {
    let unknown: Vec<&String> = wanted
        .iter()
        .filter(|name| !instances.iter().any(|instance| &instance.name == *name))
        .collect();
    for name in &unknown {
        tracing::error!("no valid instance is named {name:?}");
    }
    unknown.len()
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
    fn bar(&self, target: &PollTarget) -> Option<Box<dyn PollWatch>> {
        let bars = self.bars.as_ref()?;
        let bar = bars.add(ProgressBar::new_spinner());
        let style = ProgressStyle::with_template("{spinner} {prefix}: {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(format!("{}/{}", target.key.instance, target.label()));
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(Box::new(Bar(bar)))
    }

    fn clear(&self) {
        if let Some(bars) = &self.bars {
            let _ = bars.clear();
        }
    }
}

/// A running poll's progress bar.
struct Bar(ProgressBar);

impl PollWatch for Bar {
    fn progress(&self, pages: u64, records: u64) {
        self.0
            .set_message(format!("{pages} pages, {records} records"));
    }

    fn finished(&self) {
        self.0.finish_and_clear();
    }
}

fn print_summary(out: &mut impl Write, results: &[(PollTarget, PollReport)], state: &str) {
    let rows: Vec<[String; 6]> = results
        .iter()
        .map(|(target, report)| {
            [
                target.key.instance.clone(),
                target.label(),
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
    let _ = super::write_table(out, &header, &rows);
    let failed = results.iter().filter(|(_, r)| r.error.is_some()).count();
    let skipped = results.iter().filter(|(_, r)| r.skipped.is_some()).count();
    let events: u64 = results.iter().map(|(_, r)| r.events).sum();
    let notifications: u64 = results.iter().map(|(_, r)| r.notifications).sum();
    // Only a fleet skips: there, what other nodes polled is said apart.
    let others = if skipped > 0 {
        format!(", {skipped} left to other nodes")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{} polled{others}, {} failed; {events} events in {notifications} notifications written to the outbox ({}).",
        results.len() - skipped,
        failed,
        state
    );
}

fn result_text(report: &PollReport) -> String {
    if let Some(error) = &report.error {
        return format!("failed: {error}");
    }
    match &report.skipped {
        Some(Skipped::NotDue(_)) => return "skipped: another node polled it".to_owned(),
        Some(Skipped::Held { node, .. }) => return format!("skipped: {node} polls it"),
        Some(Skipped::StaleConfig) => {
            return "skipped: another node has a newer copy of the instance file".to_owned();
        }
        None => {}
    }
    let outcome = if report.baseline { "baseline" } else { "ok" };
    if report.problem_count == 0 {
        return outcome.to_owned();
    }
    // "problems", as `status` calls a poll that committed but skipped records.
    let first = report.problems.first().map(String::as_str).unwrap_or("");
    format!(
        "problems ({outcome}): {} {}, first: {first}",
        report.problem_count,
        report.problems_noun()
    )
}

// -------------------------------------------------------------------------------------------
// Delivery beside polling
// -------------------------------------------------------------------------------------------

/// Where a tick delivers: the valid instances it loaded, those `--instance` asked for.
struct TickRecipients<'a> {
    /// `--instance` names; empty for all.
    wanted: &'a [String],
    /// By name: delivery asks once per notification, and a tick may have 10,000 instances.
    instances: HashMap<&'a str, &'a Arc<Instance>>,
    /// Names of instance files that failed to load, with their path.
    invalid_names: &'a HashMap<String, std::path::PathBuf>,
}

impl Recipients for TickRecipients<'_> {
    /// Where `name`'s notifications go in this tick; `None` when `--instance` left it out.
    fn recipient(&self, name: &str) -> Option<Recipient> {
        if !self.wanted.is_empty() && !self.wanted.iter().any(|n| n == name) {
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
/// its stem (the naming rule of docs/design.md#words, good enough to tell "invalid" from "missing" in the summary).
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

fn print_delivery_summary(out: &mut impl Write, summary: &DeliverySummary) {
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
