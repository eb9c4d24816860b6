//! Every command and option of `ocpoll`, defined once with clap's derive API.
//!
//! Help text, the man pages in `man/` and the shell completions in `completions/` are all
//! generated from these definitions (see `assets`), so documentation cannot drift from the code.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Polls APIs that have no webhooks and delivers signed change events to your callback URL.
///
/// ocpoll reads Open Connectors instance files (the JSON body of `POST /instances`) from an
/// instances folder, polls every configured resource on its interval, remembers a watermark per
/// resource in a local state file, and POSTs signed events to each instance's callback URL, at
/// least once.
#[derive(Debug, Parser)]
#[command(
    name = "ocpoll",
    version,
    propagate_version = true,
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts: how much to log, and how.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More log output (-v debug, -vv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log output (-q warnings and errors only, -qq errors only)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,

    /// Log format: text for people, json for journald and log shippers
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        env = "OCPOLL_LOG_FORMAT",
        hide_env_values = true
    )]
    pub log_format: Option<LogFormat>,
}

// Where things are: each command flattens only the options it uses, so `validate --help`
// offers no `--state`. Each can also come from config.toml or `OCPOLL_*`; the command line wins.

/// `--config`, for every command that reads the configuration.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArg {
    /// Config file (TOML) [default: ocpoll/config.toml in the platform config folder]
    #[arg(
        long,
        value_name = "FILE",
        env = "OCPOLL_CONFIG",
        hide_env_values = true
    )]
    pub config: Option<PathBuf>,
}

/// `--instances`, for the commands that read the instances folder.
#[derive(Debug, Clone, Default, Args)]
pub struct InstancesArg {
    /// Folder of instance files [default: ./instances.d if it exists, else instances.d in the
    /// config folder]
    #[arg(
        long,
        value_name = "DIR",
        env = "OCPOLL_INSTANCES",
        hide_env_values = true
    )]
    pub instances: Option<PathBuf>,
}

/// `--state`, for the commands that read or write the state file.
#[derive(Debug, Clone, Default, Args)]
pub struct StateArg {
    /// State file (SQLite), or postgres://USER@HOST/DB for a database several daemons share
    /// [default: state.db in the platform state folder]
    #[arg(
        long,
        value_name = "PATH|URL",
        env = "OCPOLL_STATE",
        hide_env_values = true
    )]
    pub state: Option<PathBuf>,
}

/// What the command line says about where things are, for `Config::load`: a field is `None`
/// when the option was not given or the command has no such option.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFlags {
    pub config: Option<PathBuf>,
    pub instances: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
}

impl Cli {
    /// The location options of the command given, and `--log-format`.
    pub fn config_flags(&self) -> ConfigFlags {
        let (config, instances, state) = self.command.locations();
        ConfigFlags {
            config: config.and_then(|arg| arg.config.clone()),
            instances: instances.and_then(|arg| arg.instances.clone()),
            state: state.and_then(|arg| arg.state.clone()),
            log_format: self.global.log_format,
        }
    }
}

impl Command {
    /// The location options this command has (`None`: it has no such option).
    fn locations(&self) -> (Option<&ConfigArg>, Option<&InstancesArg>, Option<&StateArg>) {
        match self {
            Command::Validate(args) => (Some(&args.config), Some(&args.instances), None),
            Command::Tick(args) => (Some(&args.config), Some(&args.folder), Some(&args.state)),
            Command::Run(args) => (Some(&args.config), Some(&args.instances), Some(&args.state)),
            Command::Status(args) => (Some(&args.config), Some(&args.instances), Some(&args.state)),
            Command::Try(args) => (Some(&args.config), None, None),
            Command::Auth(args) => (Some(&args.config), Some(&args.instances), Some(&args.state)),
            Command::Webhooks(WebhooksCommand::Url(args)) => {
                (Some(&args.config), Some(&args.instances), Some(&args.state))
            }
            Command::State(StateCommand::Reset(StateResetArgs { location, .. }))
            | Command::State(StateCommand::Forget(StateForgetArgs { location, .. }))
            | Command::State(StateCommand::Migrate(StateMigrateArgs { location }))
            | Command::Outbox(OutboxCommand::List(OutboxListArgs { location, .. }))
            | Command::Outbox(OutboxCommand::Show(OutboxShowArgs { location, .. }))
            | Command::Outbox(OutboxCommand::Retry(OutboxSelectArgs { location, .. }))
            | Command::Outbox(OutboxCommand::Drop(OutboxDropArgs { location, .. })) => {
                (Some(&location.config), None, Some(&location.state))
            }
            Command::Demo(args) => (Some(&args.config), None, None),
            Command::GenerateAssets(_) => (None, None, None),
        }
    }
}

/// `--config` and `--state`: the commands that work on the state file alone.
#[derive(Debug, Clone, Default, Args)]
pub struct StateLocation {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub state: StateArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One line per problem: path:line:col: json.path: message
    Text,
    /// A JSON array of findings (file, path, line, column, severity, message)
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check instance files and report every problem with file, JSON path, line and column
    ///
    /// Reads the files and folders given (only *.json files in a folder), or the instances
    /// folder when none are given. Exits 0 when every file is valid (warnings allowed), 1 when
    /// any file has an error.
    Validate(ValidateArgs),

    /// Poll due resources once, deliver due notifications, exit (for cron)
    Tick(TickArgs),

    /// Run the daemon that polls and delivers (what systemd runs)
    ///
    /// Polls every resource at start and then on its interval, delivers notifications as soon
    /// as a poll commits them, logs to stderr. SIGHUP, and any change in the instances folder,
    /// reloads it (an invalid file keeps its previous version running); SIGTERM or SIGINT stops gracefully within
    /// `[daemon] grace_seconds`, a second one at once. Tells systemd READY/STOPPING and pets
    /// its watchdog when NOTIFY_SOCKET is set.
    Run(RunArgs),

    /// Show last poll, watermark, next due time, outbox depth
    Status(StatusArgs),

    /// Poll one resource once as a dry run and show what a poll would do
    ///
    /// Requests the real provider with the instance's credentials and prints the expanded URL
    /// and the watermark it used, each request (secrets masked as ***) with its status, size and
    /// the pagination it followed, where the records were found, and for the first records the
    /// id, the raw and parsed dates and the event each would produce. A date that does not
    /// parse with the configured format is shown beside the pattern, with a common pattern
    /// that reads it. Reads and writes no state file and sends no notification. Exits 0 when
    /// every request succeeded and every record was read, 1 when not (or when the instance
    /// file has errors), 2 for a usage error, 78 when the file cannot be read.
    Try(TryArgs),

    /// Authorize an OAuth 2 instance in a browser and keep its tokens in the state
    ///
    /// Prints the provider's authorization URL (PKCE S256 and a random state) and opens it in
    /// a browser ($BROWSER, else xdg-open) when one is available, then waits on 127.0.0.1 for
    /// the redirect: on the port of oauth.callback.url when it is a loopback URL, else on a
    /// free port it prints (register that redirect URI with the provider). The code is
    /// exchanged at oauth.token.url and the tokens are stored in the state, never printed
    /// and never written to the instance file. Works while the daemon runs: it uses the new
    /// tokens from its next poll. With --no-browser, paste the URL the browser was
    /// redirected to (for servers without a browser).
    Auth(AuthArgs),

    /// Inspect or change the saved state
    #[command(subcommand)]
    State(StateCommand),

    /// Inspect and act on pending and dead-lettered notifications
    #[command(subcommand)]
    Outbox(OutboxCommand),

    /// Poll a local sample API and print each verified event
    ///
    /// Starts, on loopback, a sample contacts API whose records change every few seconds and a
    /// callback receiver that verifies both signatures, writes an instance file for them in a
    /// temporary folder, and runs the daemon against them. Exits 0 when events arrived and
    /// every notification was verified.
    Demo(DemoArgs),

    /// Webhooks instances: the URL to give the provider
    #[command(subcommand)]
    Webhooks(WebhooksCommand),

    /// Write the man pages and shell completions (for maintainers)
    #[command(hide = true)]
    GenerateAssets(GenerateAssetsArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Instance files or folders [default: the instances folder]
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,

    /// Treat warnings as errors (exit 1), for CI pipelines that check files before deploy
    #[arg(long)]
    pub strict: bool,

    #[command(flatten)]
    pub config: ConfigArg,

    #[command(flatten)]
    pub instances: InstancesArg,
}

#[derive(Debug, Args)]
pub struct TickArgs {
    /// Poll only this instance (repeatable)
    #[arg(long = "instance", id = "instance", value_name = "NAME")]
    pub instances: Vec<String>,

    /// Poll every resource now, whether or not it is due
    #[arg(long)]
    pub all: bool,

    /// Wait for the state lock instead of exiting 75 when another ocpoll holds it
    #[arg(long)]
    pub wait: bool,

    /// How long to wait for deliveries before leaving the rest in the outbox
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub deliver_timeout: Duration,

    #[command(flatten)]
    pub config: ConfigArg,

    // `--instances` (the folder); `--instance` above picks instances in it.
    #[command(flatten)]
    pub folder: InstancesArg,

    #[command(flatten)]
    pub state: StateArg,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Stay in the foreground and log to stderr (what systemd expects; ocpoll never forks, so
    /// this is also what happens without it)
    #[arg(long)]
    pub foreground: bool,

    /// Wait for the state lock instead of exiting 75 when another ocpoll holds it
    #[arg(long)]
    pub wait: bool,

    /// With a PostgreSQL state: create or upgrade its schema first (as `ocpoll state migrate`)
    #[arg(long)]
    pub migrate: bool,

    /// Serve Prometheus metrics (/metrics) and health checks (/healthz, /readyz) on this
    /// address, e.g. 127.0.0.1:9464 (also `[daemon] metrics_addr`)
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Receive webhooks at POST /webhooks/INSTANCE/TOKEN on this address, e.g. 127.0.0.1:8480
    /// (also `[listen] addr`); put a TLS reverse proxy in front of it
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,

    #[command(flatten)]
    pub config: ConfigArg,

    #[command(flatten)]
    pub instances: InstancesArg,

    #[command(flatten)]
    pub state: StateArg,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub config: ConfigArg,

    #[command(flatten)]
    pub instances: InstancesArg,

    #[command(flatten)]
    pub state: StateArg,
}

#[derive(Debug, Args)]
pub struct TryArgs {
    /// The instance file
    #[arg(value_name = "INSTANCE_FILE")]
    pub file: PathBuf,

    /// The resource to try (a key of event.poller.configuration); required when the instance
    /// has several
    #[arg(value_name = "RESOURCE")]
    pub resource: Option<String>,

    /// The watermark to pretend: RFC 3339 (2026-11-01T00:00:00Z), a date (2026-11-01), or a
    /// duration before now (1h, 30m, 2days) [default: one hour ago, as a first poll]
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Stop after this many pages (of each pathParams value)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub pages: u64,

    /// Show this many records (of each pathParams value)
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub records: usize,

    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Args)]
pub struct AuthArgs {
    /// The instance: its name (in the instances folder) or its file
    #[arg(value_name = "INSTANCE")]
    pub instance: String,

    /// Do not open a browser nor listen: print the URL and read the redirected URL from stdin
    #[arg(long)]
    pub no_browser: bool,

    /// How long to wait for the redirect
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,

    #[command(flatten)]
    pub config: ConfigArg,

    #[command(flatten)]
    pub instances: InstancesArg,

    #[command(flatten)]
    pub state: StateArg,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Rewind or set a watermark, to poll a period again (backfill)
    Reset(StateResetArgs),

    /// Delete all state of an instance (watermarks and its pending notifications)
    Forget(StateForgetArgs),

    /// Create or upgrade a PostgreSQL state's schema (a SQLite file upgrades itself)
    Migrate(StateMigrateArgs),
}

#[derive(Debug, Args)]
pub struct StateMigrateArgs {
    #[command(flatten)]
    pub location: StateLocation,
}

#[derive(Debug, Args)]
pub struct StateResetArgs {
    /// INSTANCE or INSTANCE/RESOURCE (split at the first '/')
    #[arg(value_name = "INSTANCE[/RESOURCE]")]
    pub target: String,

    /// New watermark (RFC 3339, e.g. 2026-11-01T00:00:00Z) [default: forget it; the next
    /// poll is a new baseline]
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,

    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,

    #[command(flatten)]
    pub location: StateLocation,
}

#[derive(Debug, Args)]
pub struct StateForgetArgs {
    /// The instance name
    #[arg(value_name = "INSTANCE")]
    pub instance: String,

    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,

    #[command(flatten)]
    pub location: StateLocation,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Print the URL a provider posts a webhooks instance's events to
    ///
    /// The URL ends in a secret token of the instance (256 random bits), made on first use and
    /// kept in the state; treat the URL as a password. Works while the daemon runs.
    Url(WebhooksUrlArgs),
}

#[derive(Debug, Args)]
pub struct WebhooksUrlArgs {
    /// The webhooks instance (its `name`, or its file's stem)
    #[arg(value_name = "INSTANCE")]
    pub instance: String,

    /// What comes before /webhooks/... : the public address of the reverse proxy, e.g.
    /// https://hooks.example.com (default: `[listen] public_url`, else http://`[listen] addr`)
    #[arg(long, value_name = "URL")]
    pub base: Option<String>,

    /// Replace the token; the old URL keeps working for --grace
    #[arg(long)]
    pub rotate: bool,

    /// How long the old token keeps working after --rotate
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration, requires = "rotate")]
    pub grace: Duration,

    #[command(flatten)]
    pub config: ConfigArg,

    #[command(flatten)]
    pub instances: InstancesArg,

    #[command(flatten)]
    pub state: StateArg,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List pending (or dead-lettered) notifications
    List(OutboxListArgs),

    /// Print one notification's body
    Show(OutboxShowArgs),

    /// Make dead-lettered (or pending) notifications due again
    Retry(OutboxSelectArgs),

    /// Delete notifications for good
    Drop(OutboxDropArgs),
}

#[derive(Debug, Args)]
pub struct OutboxListArgs {
    /// Only dead letters
    #[arg(long)]
    pub dead: bool,

    /// Only this instance's notifications
    #[arg(long, value_name = "NAME")]
    pub instance: Option<String>,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub location: StateLocation,
}

#[derive(Debug, Args)]
pub struct OutboxShowArgs {
    /// Notification id (the eventId)
    #[arg(value_name = "ID")]
    pub id: String,

    #[command(flatten)]
    pub location: StateLocation,
}

#[derive(Debug, Args)]
pub struct OutboxSelectArgs {
    /// Notification id (the eventId)
    #[arg(
        value_name = "ID",
        required_unless_present = "all_dead",
        conflicts_with = "all_dead"
    )]
    pub id: Option<String>,

    /// Every dead letter
    #[arg(long)]
    pub all_dead: bool,

    #[command(flatten)]
    pub location: StateLocation,
}

#[derive(Debug, Args)]
pub struct OutboxDropArgs {
    /// Notification id (the eventId)
    #[arg(value_name = "ID", required_unless_present_any = ["all_dead", "instance"])]
    pub id: Option<String>,

    /// Every dead letter
    #[arg(long, conflicts_with = "id")]
    pub all_dead: bool,

    /// Every notification of this instance (pending and dead)
    #[arg(long, value_name = "NAME", conflicts_with = "id")]
    pub instance: Option<String>,

    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,

    #[command(flatten)]
    pub location: StateLocation,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Stop after this long (e.g. 30s) [default: until Ctrl-C]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Args)]
pub struct GenerateAssetsArgs {
    /// Project folder to write man/ and completions/ into
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("{error} (examples: 30s, 5m, 1h)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn location_options_follow_the_subcommand() {
        let cli =
            Cli::try_parse_from(["ocpoll", "validate", "--instances", "x", "a.json"]).unwrap();
        assert_eq!(cli.config_flags().instances, Some(PathBuf::from("x")));
        let Command::Validate(args) = cli.command else {
            panic!("expected validate");
        };
        assert_eq!(args.paths, vec![PathBuf::from("a.json")]);
        assert_eq!(args.format, OutputFormat::Text);
    }

    #[test]
    fn durations_are_human() {
        let cli = Cli::try_parse_from(["ocpoll", "demo", "--duration", "5s"]).unwrap();
        let Command::Demo(args) = cli.command else {
            panic!("expected demo");
        };
        assert_eq!(args.duration, Some(Duration::from_secs(5)));
        assert!(Cli::try_parse_from(["ocpoll", "demo", "--duration", "soon"]).is_err());
    }

    #[test]
    fn tick_instance_filter_is_repeatable_beside_the_global_instances_folder() {
        let cli = Cli::try_parse_from([
            "ocpoll",
            "tick",
            "--instances",
            "dir",
            "--instance",
            "a",
            "--instance",
            "b",
        ])
        .unwrap();
        assert_eq!(cli.config_flags().instances, Some(PathBuf::from("dir")));
        let Command::Tick(args) = cli.command else {
            panic!("expected tick");
        };
        assert_eq!(args.instances, vec!["a", "b"]);
    }

    /// Issue 14: an option is offered only where it means something; the log options stay global.
    #[test]
    fn each_command_has_only_the_location_options_it_uses() {
        let command = Cli::command();
        let has = |path: &[&str], option: &str| {
            let mut sub = &command;
            for name in path {
                sub = sub.find_subcommand(name).unwrap();
            }
            sub.get_arguments()
                .any(|arg| arg.get_long() == Some(option))
        };
        let all = ["config", "instances", "state"];
        let expected: [(&[&str], &[&str]); 12] = [
            (&["validate"], &["config", "instances"]),
            (&["tick"], &all),
            (&["run"], &all),
            (&["status"], &all),
            (&["try"], &["config"]),
            (&["demo"], &["config"]),
            (&["state", "reset"], &["config", "state"]),
            (&["state", "forget"], &["config", "state"]),
            (&["outbox", "list"], &["config", "state"]),
            (&["outbox", "show"], &["config", "state"]),
            (&["outbox", "retry"], &["config", "state"]),
            (&["outbox", "drop"], &["config", "state"]),
        ];
        for (path, options) in expected {
            for option in all {
                assert_eq!(
                    has(path, option),
                    options.contains(&option),
                    "ocpoll {} --{option}",
                    path.join(" ")
                );
            }
        }
        // Before the subcommand they are unknown now; the log options still work there.
        assert!(Cli::try_parse_from(["ocpoll", "--state", "s.db", "status"]).is_err());
        let cli = Cli::try_parse_from(["ocpoll", "-q", "--log-format", "json", "status"]).unwrap();
        assert_eq!(cli.config_flags().log_format, Some(LogFormat::Json));
        let cli = Cli::try_parse_from(["ocpoll", "outbox", "list", "--state", "s.db"]).unwrap();
        assert_eq!(
            cli.config_flags(),
            ConfigFlags {
                state: Some(PathBuf::from("s.db")),
                ..ConfigFlags::default()
            }
        );
    }

    #[test]
    fn outbox_retry_needs_an_id_or_all_dead() {
        assert!(Cli::try_parse_from(["ocpoll", "outbox", "retry"]).is_err());
        assert!(Cli::try_parse_from(["ocpoll", "outbox", "retry", "--all-dead"]).is_ok());
        assert!(Cli::try_parse_from(["ocpoll", "outbox", "retry", "X", "--all-dead"]).is_err());
    }
}
