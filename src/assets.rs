//! The generated documentation: man pages (`man/`) and shell completions (`completions/`),
//! rendered from the clap definition in `cli`. `ocpoll generate-assets` writes them; a test
//! renders them again and fails when the committed files are stale.
//!
//! Every part comes from the code it describes, so none can drift: the options from `cli`, the
//! EXIT STATUS section from `commands::exit::MEANINGS`, the `OCPOLL_*` variables from the
//! arguments' `env` and `config::section_variables`, and `ocpoll-instance(5)` from
//! `instance::reference` (checked against the decoder's key lists).

use crate::cli::Cli;
use crate::commands::exit;
use crate::instance::reference;
use clap::CommandFactory;
use clap_complete::Shell;
use roff::{Roff, bold, italic, roman};
use std::path::{Path, PathBuf};

/// Every generated file: its path relative to the project folder and its contents.
pub fn render() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut command = Cli::command();
    // Building propagates the version and global options into every subcommand and names
    // them `ocpoll-state-reset` (page) and `ocpoll state reset` (synopsis).
    command.build();
    render_man_pages(&command, &mut files);
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        let mut command = completion_command();
        let mut buffer = Vec::new();
        clap_complete::generate(shell, &mut command, "ocpoll", &mut buffer);
        let name = match shell {
            Shell::Bash => "ocpoll.bash",
            Shell::Zsh => "_ocpoll",
            Shell::Fish => "ocpoll.fish",
            Shell::Elvish => "ocpoll.elv",
            _ => "_ocpoll.ps1",
        };
        files.push((Path::new("completions").join(name), buffer));
    }
    files.push((
        Path::new("man").join("ocpoll-instance.5"),
        instance_page().into_bytes(),
    ));
    files
}

/// The command as the completions offer it: without hidden subcommands (`generate-assets`),
/// which clap_complete would list (it hides hidden options and values, not subcommands).
fn completion_command() -> clap::Command {
    let mut command = Cli::command();
    let hidden: Vec<String> = command
        .get_subcommands()
        .filter(|sub| sub.is_hide_set())
        .map(|sub| sub.get_name().to_owned())
        .collect();
    // clap cannot remove a subcommand; the same command is rebuilt from its visible parts.
    let visible: Vec<clap::Command> = command
        .get_subcommands()
        .filter(|sub| !hidden.contains(&sub.get_name().to_owned()))
        .cloned()
        .collect();
    let arguments: Vec<clap::Arg> = command.get_arguments().cloned().collect();
    let mut bare = clap::Command::new(command.get_name().to_owned());
    if let Some(version) = command.get_version() {
        bare = bare.version(version.to_owned());
    }
    if let Some(about) = command.get_about() {
        bare = bare.about(about.clone());
    }
    command = bare
        .propagate_version(true)
        .disable_help_subcommand(true)
        .args(arguments)
        .subcommands(visible);
    command
}

/// One page for the command and one per visible subcommand, nested ones included. The
/// top page also has EXIT STATUS, ENVIRONMENT, FILES and EXAMPLES.
fn render_man_pages(command: &clap::Command, files: &mut Vec<(PathBuf, Vec<u8>)>) {
    let man = clap_mangen::Man::new(command.clone());
    let mut buffer = Vec::new();
    // Rendering into a Vec cannot fail.
    let _ = man.render(&mut buffer);
    if command.get_name() == "ocpoll" {
        buffer = with_sections(buffer, &top_page_sections(command));
    }
    files.push((Path::new("man").join(man.get_filename()), buffer));
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        render_man_pages(sub, files);
    }
}

/// `page` with `sections` inserted before its VERSION section (at the end when it has none).
fn with_sections(page: Vec<u8>, sections: &Roff) -> Vec<u8> {
    let page = String::from_utf8(page).expect("clap_mangen writes UTF-8");
    let extra = without_preamble(sections);
    let at = page.find(".SH VERSION").unwrap_or(page.len());
    format!("{}{extra}{}", &page[..at], &page[at..]).into_bytes()
}

/// Rendered roff without the apostrophe preamble that every rendering starts with (the page
/// has it once already).
fn without_preamble(roff: &Roff) -> String {
    let preamble = Roff::new().render();
    let text = roff.render();
    text.strip_prefix(&preamble).unwrap_or(&text).to_owned()
}

fn top_page_sections(command: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in exit::MEANINGS {
        roff.control("TP", []).text([bold(code.to_string())]);
        roff.text([roman(*meaning)]);
    }
    environment_section(command, &mut roff);
    files_section(&mut roff);
    examples_section(&mut roff);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "ocpoll-instance(5), the ocpoll-COMMAND(1) pages, and docs/ in the source: \
         instances.md, operations.md, events.md.",
    )]);
    roff
}

fn environment_section(command: &clap::Command, roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    roff.text([roman(
        "Options and config.toml keys can be set by environment variables; an option on the \
         command line wins over the variable, which wins over the file.",
    )]);
    for (name, help) in option_variables(command) {
        roff.control("TP", []).text([bold(name)]);
        roff.text([roman(help)]);
    }
    for (name, section, key) in crate::config::section_variables() {
        roff.control("TP", []).text([bold(name)]);
        roff.text([roman(format!("config.toml [{section}] {key}"))]);
    }
    for (name, meaning) in OTHER_VARIABLES {
        roff.control("TP", []).text([bold(*name)]);
        roff.text([roman(*meaning)]);
    }
}

/// Every option's variable (`env = ...` in `cli`), once, with the option's help.
fn option_variables(command: &clap::Command) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut add = |arg: &clap::Arg| {
        let Some(name) = arg.get_env() else { return };
        let name = name.to_string_lossy().into_owned();
        if found.iter().any(|(seen, _)| *seen == name) {
            return;
        }
        let option = arg
            .get_long()
            .map(|long| format!("--{long}: "))
            .unwrap_or_default();
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        found.push((name, format!("{option}{help}")));
    };
    fn walk(command: &clap::Command, add: &mut dyn FnMut(&clap::Arg)) {
        command.get_arguments().for_each(&mut *add);
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            walk(sub, add);
        }
    }
    walk(command, &mut add);
    found
}

/// Variables ocpoll reads besides its own (`daemon::systemd`, reqwest's system proxy,
/// `directories`).
const OTHER_VARIABLES: &[(&str, &str)] = &[
    (
        "NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID",
        "Set by systemd: run tells it READY and STOPPING and pets its watchdog.",
    ),
    (
        "HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY",
        "Proxies for provider and callback requests (lower case too).",
    ),
    (
        "XDG_CONFIG_HOME, XDG_STATE_HOME, HOME",
        "Where the platform config and state folders are (FILES).",
    ),
    (
        "any variable named by ${env:NAME}",
        "Secrets of instance files, within config.toml [secrets] env_prefixes.",
    ),
];

fn files_section(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    for (path, meaning) in [
        (
            "$XDG_CONFIG_HOME/ocpoll/config.toml",
            "The config file (~/.config/ocpoll/config.toml; /etc/ocpoll/config.toml without a \
             home folder), optional; --config names another, which must exist.",
        ),
        (
            "./instances.d/, else $XDG_CONFIG_HOME/ocpoll/instances.d/",
            "The instances folder: one JSON instance file per instance (ocpoll-instance(5)).",
        ),
        (
            "$XDG_STATE_HOME/ocpoll/state.db",
            "The state (SQLite, mode 0600; /var/lib/ocpoll/state.db without a home folder): \
             watermarks, OAuth tokens and the outbox. state.db-wal and state.db-shm belong to it.",
        ),
        (
            "state.db.lock",
            "Beside the state: the poller lock of tick and run, holding the holder's pid.",
        ),
    ] {
        roff.control("TP", []).text([italic(path)]);
        roff.text([roman(meaning)]);
    }
}

fn examples_section(roff: &mut Roff) {
    roff.control("SH", ["EXAMPLES"]);
    for (command, meaning) in [
        (
            "ocpoll demo",
            "A sample API and receiver on loopback, polled by the daemon.",
        ),
        (
            "ocpoll validate --strict instances.d/",
            "Check every instance file; warnings count as errors (for CI).",
        ),
        (
            "ocpoll try instances.d/my-crm.json contacts",
            "One real poll of one resource as a dry run: pages, records, dates, events.",
        ),
        (
            "ocpoll run --foreground --config /etc/ocpoll/config.toml",
            "The daemon, as systemd runs it.",
        ),
        (
            "ocpoll tick --state /var/lib/ocpoll/state.db",
            "Poll what is due once, deliver, exit (cron).",
        ),
        (
            "ocpoll state reset my-crm/contacts --to 2026-11-01T00:00:00Z --yes",
            "Backfill: the next poll of contacts starts from that time.",
        ),
        (
            "ocpoll outbox retry --all-dead",
            "Send every dead letter again.",
        ),
    ] {
        roff.control("TP", []).text([bold(command)]);
        roff.text([roman(meaning)]);
    }
}

/// `ocpoll-instance(5)`: the instance-file format, from [`reference`].
fn instance_page() -> String {
    let mut roff = Roff::new();
    let version = format!("ocpoll {}", env!("CARGO_PKG_VERSION"));
    roff.control("TH", ["ocpoll-instance", "5", "", version.as_str()]);
    roff.control("SH", ["NAME"]);
    roff.text([roman(
        "ocpoll-instance - the instance files ocpoll polls for",
    )]);
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([roman(
        "An instance file is one JSON object, the body of Open Connectors' POST /instances: \
         which API to poll, with which credentials, and where to send the events. ocpoll reads \
         every *.json file of its instances folder. ocpoll validate checks them and reports \
         each problem with file, JSON path, line and column.",
    )]);
    for group in reference::GROUPS {
        roff.control("SH", [group.title]);
        roff.text([roman(group.intro)]);
        for doc in group.keys {
            roff.control("TP", []).text([bold(doc.key)]);
            match doc.default {
                Some(default) => roff.text([
                    roman(doc.meaning),
                    roman(" Default: "),
                    italic(default),
                    roman("."),
                ]),
                None => roff.text([roman(doc.meaning)]),
            };
        }
    }
    roff.control("SH", ["SECRETS"]);
    roff.text([roman(reference::SECRETS)]);
    roff.control("SH", ["EXAMPLE"]);
    roff.control("nf", []);
    for line in reference::EXAMPLE.lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "ocpoll(1), ocpoll-validate(1), ocpoll-try(1); docs/instances.md in the source.",
    )]);
    roff.render()
}

/// Writes every generated file under `project_dir`.
pub fn write_all(project_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (relative, contents) in render() {
        let path = project_dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents)?;
        written.push(relative);
    }
    Ok(written)
}
