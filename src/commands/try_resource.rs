//! `ocpoll try INSTANCE_FILE [RESOURCE]`: load one instance file, pick the resource, run the
//! dry run (`trial`), print the report, exit 0 when the configuration worked.
//!
//! No state file is opened and no lock is taken: `try` runs beside the daemon, and against
//! an instance the daemon does not know yet.

use crate::cli::TryArgs;
use crate::commands::{CommandError, exit, runtime};
use crate::config::Config;
use crate::http::{HttpClient, Redirects};
use crate::instance::mask::Masker;
use crate::instance::{self, Instance, LoadedFile, UnresolvedSecrets};
use crate::trial::{self, TrialOptions, TrialReport, inspect::parse_since};
use chrono::{SubsecRound, Utc};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(args: &TryArgs, config: &Config) -> ExitCode {
    match try_resource(args, config) {
        Ok(code) => ExitCode::from(code),
        Err(stop) => stop.print(),
    }
}

fn try_resource(args: &TryArgs, config: &Config) -> Result<u8, CommandError> {
    // Whole seconds: the watermark is printed, and a fraction of a second changes no query.
    let now = Utc::now().trunc_subsecs(0);
    let since = match &args.since {
        Some(text) => {
            Some(parse_since(text, now).map_err(|error| usage(format!("--since: {error}")))?)
        }
        None => None,
    };
    check_readable(&args.file)?;
    // Secrets must resolve: the requests are real.
    let loaded = instance::load_file(&args.file, UnresolvedSecrets::Fail, &config.secret_source());
    for finding in &loaded.findings {
        eprintln!("{}", finding.display_for(&loaded.path));
    }
    let instance = match instance_of(loaded.instance.as_ref(), &loaded) {
        Some(instance) => Arc::new(instance.clone()),
        None => return Ok(exit::FAILURE),
    };
    let resource_index = pick_resource(&instance, args.resource.as_deref())?;
    let options = TrialOptions {
        since,
        max_pages: args.pages,
        max_records: args.records,
        now,
    };
    let masker = Masker::for_instance(&instance);
    // The same outbound rules and size limits as `tick` and `run` (config.toml's `[http]`).
    let client =
        HttpClient::with_egress(Redirects::Follow, config.http.egress()).map_err(|error| {
            CommandError {
                code: exit::FAILURE,
                message: error.to_string(),
            }
        })?;
    let fetching = trial::Fetching {
        client,
        retry: config.retry_policy(),
        limits: config.record_limits(),
        caps: config.poll_caps(),
    };
    let targets = runtime()?.block_on(trial::run(
        &fetching,
        &instance,
        resource_index,
        &options,
        &masker,
    ));
    let findings = loaded
        .findings
        .iter()
        .map(|finding| finding.to_report(&loaded.path))
        .collect();
    let resource = &instance.resources[resource_index];
    let report = TrialReport::new(&args.file, &instance, resource, &options, findings, targets);
    print(&report, args.json);
    Ok(if report.ok {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// A file that cannot be read at all is configuration trouble (78), not an invalid instance.
fn check_readable(path: &std::path::Path) -> Result<(), CommandError> {
    let unreadable = |reason: String| CommandError {
        code: exit::CONFIG,
        message: format!("{}: {reason}", path.display()),
    };
    let metadata = std::fs::metadata(path).map_err(|error| unreadable(error.to_string()))?;
    if metadata.is_dir() {
        return Err(unreadable("is a folder; give one instance file".to_owned()));
    }
    std::fs::File::open(path).map_err(|error| unreadable(error.to_string()))?;
    Ok(())
}

/// The instance, unless the file has errors (already printed, as `validate` prints them).
fn instance_of<'a>(instance: Option<&'a Instance>, loaded: &LoadedFile) -> Option<&'a Instance> {
    if loaded.has_errors() {
        let errors = loaded.findings.iter().filter(|f| f.is_error()).count();
        // The lines above are `validate`'s; an unresolved secret is among the errors here
        // (`UnresolvedSecrets::severity`): the requests are real.
        eprintln!(
            "ocpoll: {} is not tried: {} above",
            loaded.path.display(),
            if errors == 1 {
                "1 error".to_owned()
            } else {
                format!("{errors} errors")
            }
        );
        return None;
    }
    instance
}

/// The index of the resource to try: the one named, or the only one.
fn pick_resource(instance: &Instance, wanted: Option<&str>) -> Result<usize, CommandError> {
    let keys: Vec<&str> = instance.resources.iter().map(|r| r.key.as_str()).collect();
    let listed = || keys.join(", ");
    match wanted {
        Some(name) => keys.iter().position(|key| *key == name).ok_or_else(|| {
            usage(format!(
                "instance {} has no resource {name:?}; its resources: {}",
                instance.name,
                listed()
            ))
        }),
        None => match keys.len() {
            0 => Err(usage(format!(
                "instance {} has no resources (event.poller.configuration)",
                instance.name
            ))),
            1 => Ok(0),
            _ => Err(usage(format!(
                "instance {} has several resources; name one: {}",
                instance.name,
                listed()
            ))),
        },
    }
}

fn usage(message: String) -> CommandError {
    CommandError {
        code: exit::USAGE,
        message,
    }
}

fn print(report: &TrialReport, json: bool) {
    let mut out = std::io::stdout().lock();
    let written = if json {
        serde_json::to_writer_pretty(&mut out, report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        out.write_all(trial::render::render(report).as_bytes())
    };
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = written.and_then(|()| out.flush());
}
