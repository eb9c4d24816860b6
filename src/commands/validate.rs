//! `ocpoll validate`: load instance files, print every finding, exit 0 or 1.
//!
//! Besides the file's own rules, the URLs whose host is written literally (callback, base,
//! OAuth token, absolute resource URLs) are judged against config.toml's outbound policy
//! (`[http] allow`/`deny`). A refused host is a warning, not an error: files are often validated
//! on another machine than the one that runs them, with another config.toml; `--strict` makes
//! it (and every other warning) an error where the check must hold.
//!
//! Each resource of a valid file also gets a note (severity `info`, never an error, even under
//! `--strict`) saying which mode it is polled in: watermark, window or snapshot
//! (docs/design.md#change-detection); a URL with a date filter and no `datesConfiguration`
//! behaves very differently from one with it, and the file alone does not show it.

use crate::cli::{OutputFormat, ValidateArgs};
use crate::commands::exit;
use crate::config::Config;
use crate::http::Egress;
use crate::instance::{
    self, Auth, Finding, Instance, JsonPath, LoadedFile, Severity, UnresolvedSecrets,
};
use std::io::Write;
use url::Url;

use std::process::ExitCode;

pub fn run(args: &ValidateArgs, config: &Config) -> ExitCode {
    let paths = if args.paths.is_empty() {
        if !config.instances.exists() {
            eprintln!(
                "ocpoll: the instances folder {} does not exist; give files or folders to validate, \
                 or set --instances, OCPOLL_INSTANCES or `instances` in config.toml",
                config.instances.display()
            );
            return ExitCode::from(exit::CONFIG);
        }
        vec![config.instances.clone()]
    } else {
        args.paths.clone()
    };
    let egress = config.http.egress();
    let refused_hosts = |instance: &Instance| refused_hosts(instance, &egress);
    let mut loaded = instance::load::check_all_with(
        &paths,
        UnresolvedSecrets::Warn,
        &config.secret_source(),
        &refused_hosts,
    );
    if args.strict {
        for finding in loaded.iter_mut().flat_map(|file| file.findings.iter_mut()) {
            finding.severity = Severity::Error;
        }
    }
    // Buffered: thousands of files print tens of thousands of lines.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match args.format {
        OutputFormat::Text => print_text(&mut out, &loaded),
        OutputFormat::Json => print_json(&mut out, &loaded),
    };
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = written.and_then(|()| out.flush());
    if loaded.iter().any(LoadedFile::has_errors) {
        ExitCode::from(exit::FAILURE)
    } else {
        ExitCode::from(exit::SUCCESS)
    }
}

/// A warning for each URL of `instance` whose literal host the outbound policy refuses.
fn refused_hosts(instance: &Instance, egress: &Egress) -> Vec<Finding> {
    let configuration = JsonPath::root().key("configuration");
    let mut urls: Vec<(JsonPath, &str, Option<Url>)> = vec![
        (
            configuration.key("event.notification.callback.url"),
            "notifications to it would be dead-lettered",
            instance.callback_url.clone(),
        ),
        (
            configuration.key("base.url"),
            "polls would fail",
            instance.base_url.clone(),
        ),
    ];
    if let Auth::OAuth2(oauth) = &instance.auth {
        urls.push((
            configuration.key("oauth.token.url"),
            "polls would fail",
            Some(oauth.token_url.clone()),
        ));
    }
    let resources = configuration.key("event.poller.configuration");
    for resource in &instance.resources {
        // Relative URLs go to base.url's host, judged above; macros do not touch the host.
        let absolute = Url::parse(resource.url.raw()).ok();
        urls.push((
            resources.key(&resource.key).key("url"),
            "polls would fail",
            absolute,
        ));
    }
    urls.into_iter()
        .filter_map(|(path, consequence, url)| {
            let blocked = egress.check_url(&url?).err()?;
            Some(Finding::warning(path, format!("{blocked}; {consequence}")))
        })
        .collect()
}

fn print_text(out: &mut impl Write, loaded: &[LoadedFile]) -> std::io::Result<()> {
    let mut errors = 0;
    let mut warnings = 0;
    let mut invalid_files = 0;
    let mut file_count = 0;
    for file in loaded {
        file_count += usize::from(file.is_file);
        for finding in &file.findings {
            writeln!(out, "{}", finding.display_for(&file.path))?;
        }
        for (path, note) in &file.notes {
            writeln!(out, "{}: {path}: info: {note}", file.path.display())?;
        }
        let file_errors = file.findings.iter().filter(|f| f.is_error()).count();
        let file_warnings = file.findings.len() - file_errors;
        errors += file_errors;
        warnings += file_warnings;
        if file_errors > 0 {
            invalid_files += usize::from(file.is_file);
        } else if !file.is_file {
            // A folder with nothing to validate: its warning says so.
        } else if file_warnings > 0 {
            writeln!(
                out,
                "{}: OK ({})",
                file.path.display(),
                plural(file_warnings, "warning")
            )?;
        } else {
            writeln!(out, "{}: OK", file.path.display())?;
        }
    }
    writeln!(
        out,
        "{}: {} valid, {} invalid; {}, {}",
        plural(file_count, "file"),
        file_count - invalid_files,
        invalid_files,
        plural(errors, "error"),
        plural(warnings, "warning"),
    )
}

fn print_json(out: &mut impl Write, loaded: &[LoadedFile]) -> std::io::Result<()> {
    let mut reports = Vec::new();
    for file in loaded {
        for finding in &file.findings {
            reports.push(serde_json::to_value(finding.to_report(&file.path))?);
        }
        for (path, note) in &file.notes {
            reports.push(serde_json::json!({
                "file": file.path,
                "path": path.to_string(),
                "line": null,
                "column": null,
                "severity": "info",
                "message": note,
            }));
        }
    }
    serde_json::to_writer_pretty(&mut *out, &reports)?;
    writeln!(out)
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
